"""Every certificate rule pinned at a point where its alternatives differ.

docs/certificates.md states the rules: ``gap = objective − dual_objective``,
``relative_gap = gap / |objective|`` (no floor; 0 for 0/0, ±inf for a gap over a zero
objective), ``certified`` iff the relative gap reaches the tolerance AND every feasibility
check passes; a dual value above the primal beyond the tolerance fails ``weak_duality``;
patterns count ties at zero as active (``1[X g ≥ 0]``); the global check covers every
candidate pattern. Each test below uses numbers where a changed rule (another denominator,
``<`` for ``≤``, ``>`` for ``≥``, a skipped pattern, an ignored check) gives another answer,
and computes its expected values with plain numpy loops or exact binary fractions — never
with the function under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from record_edits import rewrite

import convexnn as cn
from convexnn.certificate import (
    ball_scale,
    best_candidate,
    best_multiple,
    finite_candidates,
    make_certificate,
    relative_gap,
)
from convexnn.formulations.gated_relu import gated_relu_certificate
from convexnn.formulations.relu import relu_certificate
from convexnn.global_check import certify_global, check_patterns, merge_patterns
from convexnn.patterns import (
    count_arrangement_cells,
    enumerate_patterns,
    patterns_from_gates,
    sample_patterns,
    unique_columns,
)
from convexnn.problem import prepare

# ---------------------------------------------------------------------------
# plain-numpy references (one pattern at a time)
# ---------------------------------------------------------------------------


def loop_forward(X, M, W):
    """Σ_i D_i X W_i, one pattern at a time."""
    return sum(M[:, i:i + 1] * (X @ W[i]) for i in range(M.shape[1]))


def loop_gated_values(X, M, Z):
    """||Xᵀ D_i Z||_F for every column of M."""
    return np.array([np.linalg.norm(X.T @ (M[:, i:i + 1] * Z)) for i in range(M.shape[1])])


def ray_value(Y, Z, top, lam):
    """max over 0 ≤ s ≤ λ/top of ⟨Y, sZ⟩ − ½||sZ||², written out."""
    yz, zz = float(np.sum(Y * Z)), float(np.sum(Z * Z))
    if yz <= 0 or zz == 0:
        return 0.0, 0.0
    s = yz / zz if top == 0 else min(yz / zz, lam / top)
    return s * yz - 0.5 * s * s * zz, s


# ---------------------------------------------------------------------------
# relative gap, verdict, weak duality, checks
# ---------------------------------------------------------------------------


def test_relative_gap_divides_by_the_primal_objective():
    # 6 / |10| = 0.6, while 6 / |4| would be 1.5
    assert relative_gap(10.0, 4.0) == 0.6
    # a negative primal: 3 / |−2| = 1.5, while 3 / |−5| would be 0.6
    assert relative_gap(-2.0, -5.0) == 1.5
    # a dual above the primal gives a negative relative gap of the same rule
    assert relative_gap(4.0, 10.0) == -1.5
    # no floor: a tiny objective is not rounded up to 1
    assert relative_gap(2.0**-40, 2.0**-41) == 0.5


def test_relative_gap_over_a_zero_objective():
    assert relative_gap(0.0, 0.0) == 0.0
    assert relative_gap(0.0, -1.0) == math.inf
    assert relative_gap(0.0, 1.0) == -math.inf


def test_certificate_fields_at_an_uncertified_point():
    cert = make_certificate("f", 10.0, 4.0, tolerance=1e-6, scope="all")
    assert cert.gap == 6.0 and cert.relative_gap == 0.6
    assert cert.objective == 10.0 and cert.dual_objective == 4.0
    assert not cert.certified and cert.failed == () and cert.scope == "all"
    assert cert.tolerance == 1e-6 and cert.formulation == "f"
    assert cert.checks == {"weak_duality": 0.0}
    assert cert.as_dict() == {
        "formulation": "f", "objective": 10.0, "dual_objective": 4.0, "gap": 6.0,
        "relative_gap": 0.6, "tolerance": 1e-6, "certified": False, "scope": "all",
        "checks": {"weak_duality": 0.0}, "failed": []}
    assert "NOT CERTIFIED [all]" in repr(cert)


@pytest.mark.parametrize("objective", [1.0, -1.0])
def test_the_tolerance_is_inclusive(objective):
    tol = 2.0**-20  # binary fractions: every difference below is exact
    at = make_certificate("f", objective, objective - tol * abs(objective), tolerance=tol)
    assert at.relative_gap == tol and at.certified
    above = make_certificate("f", objective, objective - 2 * tol * abs(objective), tolerance=tol)
    assert above.relative_gap == 2 * tol and not above.certified and above.failed == ()
    assert at.as_dict()["certified"] is True and above.as_dict()["certified"] is False
    exact = make_certificate("f", 1.0, 1.0, tolerance=1e-6)
    assert repr(exact) == ("Certificate(CERTIFIED [sampled], f: objective=1, dual_objective=1, "
                           "relative_gap=0.000e+00 (tolerance 1.0e-06))")


def test_a_dual_value_above_the_primal_fails_weak_duality_beyond_the_tolerance():
    tol = 2.0**-20
    rounding = make_certificate("f", 1.0, 1.0 + tol / 2, tolerance=tol)
    assert rounding.relative_gap == -tol / 2 and rounding.checks["weak_duality"] == tol / 2
    assert rounding.certified and rounding.failed == ()
    at = make_certificate("f", 1.0, 1.0 + tol, tolerance=tol)
    assert at.certified  # the limit itself passes
    beyond = make_certificate("f", 1.0, 1.0 + 4 * tol, tolerance=tol)
    assert beyond.checks["weak_duality"] == 4 * tol
    assert beyond.failed == ("weak_duality",) and not beyond.certified
    assert "failed=['weak_duality']" in repr(beyond)


def test_a_failed_check_alone_decides_the_verdict():
    tol = 2.0**-20
    exact = dict(objective=1.0, dual_objective=1.0, tolerance=tol)  # relative gap 0
    ok = make_certificate("f", checks={"cone_violation": tol}, **exact)
    assert ok.certified and ok.failed == ()
    bad = make_certificate("f", checks={"cone_violation": 2 * tol}, **exact)
    assert bad.relative_gap == 0.0 and not bad.certified and bad.failed == ("cone_violation",)
    # a check's own limit replaces the tolerance for it, and only for it
    loose = make_certificate("f", checks={"cone_violation": 2 * tol, "other": 2 * tol},
                             limits={"cone_violation": 4 * tol}, **exact)
    assert loose.failed == ("other",) and not loose.certified
    for value in (math.nan, math.inf):
        assert make_certificate("f", checks={"c": value}, **exact).failed == ("c",)
    assert make_certificate("f", checks={"c": -1.0}, **exact).certified


def test_rescaling_keeps_the_relative_gap_and_the_verdict():
    cert = make_certificate("f", 10.0, 4.0, checks={"c": 0.5}, tolerance=0.7)
    big = cert.rescaled(4.0)
    assert (big.objective, big.dual_objective, big.gap) == (40.0, 16.0, 24.0)
    assert big.relative_gap == 0.6 and big.certified is cert.certified is True
    assert big.checks == cert.checks and big.failed == cert.failed == ()


# ---------------------------------------------------------------------------
# the dual value along a ray and the choice among candidates
# ---------------------------------------------------------------------------


def test_best_multiple_maximises_the_concave_quadratic_on_the_interval():
    # yz = 2, zz = 4: s* = 1/2, value yz²/(2 zz) = 1/2
    assert best_multiple(2.0, 4.0) == (0.5, 0.5)
    assert best_multiple(2.0, 4.0, 1.0) == (0.5, 0.5)  # the bound does not bind
    # the ball binds: s = 1/4, value 1/4·2 − ½·(1/16)·4 = 3/8
    assert best_multiple(2.0, 4.0, 0.25) == (0.375, 0.25)
    # only s = 0 is available
    for args in ((-1.0, 4.0), (2.0, 0.0), (2.0, 4.0, 0.0), (2.0, 4.0, -1.0)):
        assert best_multiple(*args) == (0.0, 0.0)


def test_ball_scale():
    assert ball_scale(4.0, 1.0) == 0.25
    assert ball_scale(0.0, 1.0) == math.inf
    assert ball_scale(-1.0, 1.0) == math.inf


def test_finite_candidates_keep_only_finite_arrays_of_the_shape():
    got = finite_candidates((2, 1), [[1.0, 2.0], [1.0, np.nan], "text", None, [1.0, 2.0, 3.0],
                                     np.ones((1, 2)), [np.inf, 0.0], object()])
    assert len(got) == 2
    assert all(a.shape == (2, 1) and a.dtype == np.float64 for a in got)
    assert got[0].ravel().tolist() == [1.0, 2.0] and got[1].ravel().tolist() == [1.0, 1.0]


def test_best_candidate_keeps_the_largest_and_the_first_of_ties():
    table = {"a": 1.0, "b": 3.0, "c": 2.0, "d": None}

    def value(c):
        return None if table[c] is None else (table[c], c)

    assert best_candidate(["a", "b", "c", "d"], value) == (3.0, "b")
    assert best_candidate(["d", "c", "a"], value) == (2.0, "c")
    assert best_candidate([], value) == (-math.inf, None)
    assert best_candidate(["d"], value) == (-math.inf, None)
    # a later candidate better only by rounding does not replace the first
    close = {"x": 1.0, "y": 1.0 + 1e-14, "z": 1.0 + 1e-9}
    assert best_candidate(["x", "y"], lambda c: (close[c], c)) == (1.0, "x")
    assert best_candidate(["x", "z"], lambda c: (close[c], c)) == (1.0 + 1e-9, "z")
    # a first candidate of value −inf or 0 is still replaced by a better one
    assert best_candidate(["p", "q"], lambda c: ({"p": 0.0, "q": 1e-300}[c], c))[1] == "q"
    neg = {"m": -2.0, "n": -1.0}
    assert best_candidate(["m", "n"], lambda c: (neg[c], c)) == (-1.0, "n")


# ---------------------------------------------------------------------------
# the numpy certificates at uncertified points (large gaps)
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def random_problem():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((25, 3))
    Y = rng.standard_normal((25, 2))
    G = rng.standard_normal((3, 9))
    M = X @ G >= 0  # the test's own masks
    keep = M.any(axis=0)
    return X, Y, M[:, keep], G[:, keep], rng


def test_gated_certificate_of_a_poor_point_equals_the_loops(random_problem):
    X, Y, M, G, rng = random_problem
    P = M.shape[1]
    W = 0.3 * rng.standard_normal((P, 3, 2))
    lam = 0.4
    cert, Z = gated_relu_certificate(X, Y, M, W, lam, tolerance=1e-6)
    R = Y - loop_forward(X, M, W)
    primal = 0.5 * np.sum(R**2) + lam * sum(np.linalg.norm(W[i]) for i in range(P))
    dual, s = ray_value(Y, R, loop_gated_values(X, M, R).max(), lam)
    assert cert.objective == pytest.approx(primal, rel=1e-12, abs=0)
    assert cert.dual_objective == pytest.approx(dual, rel=1e-12, abs=0)
    assert cert.relative_gap == pytest.approx((primal - dual) / primal, rel=1e-12, abs=0)
    assert abs((primal - dual) / abs(dual) - cert.relative_gap) > 0.1  # the rules differ here
    assert cert.relative_gap > 0.1 and not cert.certified
    np.testing.assert_allclose(Z, s * R, rtol=1e-12, atol=0)
    assert loop_gated_values(X, M, Z).max() <= lam * (1 + 1e-12)


def test_gated_certificate_keeps_a_better_candidate_and_ignores_a_worse(random_problem):
    X, Y, M, G, rng = random_problem
    P = M.shape[1]
    W = np.zeros((P, 3, 2))
    lam = 0.5 * loop_gated_values(X, M, Y).max()
    own, Z0 = gated_relu_certificate(X, Y, M, W, lam)  # residual Y scaled into the ball
    # a better dual point: the optimum of the program at λ (from its own solve)
    sol = cn.solve("gated_relu", X, Y, patterns=patterns_from_gates(X, G), lam=lam)
    better = sol.dual["z"]
    with_better, Zb = gated_relu_certificate(X, Y, M, W, lam, duals=[better])
    best_value, _ = ray_value(Y, better, loop_gated_values(X, M, better).max(), lam)
    assert with_better.dual_objective == pytest.approx(best_value, rel=1e-12)
    assert with_better.dual_objective > own.dual_objective * (1 + 1e-3)
    worse = Z0 + 0.5 * rng.standard_normal(Z0.shape)
    with_worse, Zw = gated_relu_certificate(X, Y, M, W, lam, duals=[worse, [np.nan]])
    assert with_worse.dual_objective == own.dual_objective
    np.testing.assert_array_equal(Zw, Z0)



def test_gated_certificate_of_a_non_finite_point_is_zero_dual(random_problem):
    X, Y, M, _, _ = random_problem
    W = np.full((M.shape[1], 3, 2), np.nan)
    cert, Z = gated_relu_certificate(X, Y, M, W, 0.3)
    assert cert.dual_objective == 0.0 and not cert.certified
    assert np.array_equal(Z, np.zeros_like(Y))


def socp_value(X, mask, z):
    """max_{||u|| ≤ 1, S X u ≥ 0} ±zᵀ D X u by cvxpy SOCPs written here (one output)."""
    import cvxpy as cp

    s = np.where(mask, 1.0, -1.0)
    c = X.T @ (mask * z)
    u = cp.Variable(X.shape[1])
    vals = []
    for sign in (1.0, -1.0):
        prob = cp.Problem(cp.Maximize(sign * c @ u),
                          [cp.norm(u) <= 1, cp.multiply(s, X @ u) >= 0])
        prob.solve(solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
        vals.append(max(prob.value, 0.0))
    return max(vals)


def test_relu_certificate_of_a_poor_point_equals_per_pattern_socps():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((20, 3))
    y = rng.standard_normal(20)
    G = rng.standard_normal((3, 6))
    M = X @ G >= 0
    M = M[:, M.any(axis=0)]
    P = M.shape[1]
    V = np.maximum(0.2 * rng.standard_normal((P, 3, 1)), 0)
    U = np.zeros((P, 3, 1))
    lam = 0.3
    cert, dual = relu_certificate(X, y[:, None], M, V, U, lam, tolerance=1e-6)
    r = y - loop_forward(X, M, V - U)[:, 0]
    primal = 0.5 * r @ r + lam * sum(np.linalg.norm(V[i]) for i in range(P))
    top = max(socp_value(X, M[:, i], r) for i in range(P))
    value, t = ray_value(y, r, top, lam)
    assert cert.objective == pytest.approx(primal, rel=1e-12, abs=0)
    assert cert.dual_objective == pytest.approx(value, rel=1e-6)
    assert cert.relative_gap == pytest.approx((primal - value) / primal, rel=1e-6)
    assert not cert.certified and cert.relative_gap > 0.05
    np.testing.assert_allclose(dual["z"][:, 0], t * r, rtol=1e-6)
    assert cert.checks["dual_violation"] <= 1e-12


def test_a_relu_verdict_decided_by_the_cone_check_alone():
    """The same predictions with a cone-violating pair (V_i + εu, U_i + εu): the gap stays
    within the tolerance, the cone violation does not — not certified, for that reason
    only; the global check fails for the same reason."""
    ds = cn.planted_relu(40, 3, neurons=2, noise=0.1, seed=2)
    sol = cn.solve("relu", ds.X, ds.y, patterns=15, lam_ratio=0.01, tol=1e-8)
    assert sol.certified
    V, U = sol.weights["V"].copy(), sol.weights["U"].copy()
    X, y, M = ds.X, ds.y, sol.patterns.masks
    idle = int(np.argmin(np.linalg.norm(V, axis=(1, 2)) + np.linalg.norm(U, axis=(1, 2))))
    u = -sol.patterns.gates[:, idle]  # S_i X u = −|X g_i| < 0: outside both cones
    tol = 1e-4
    scale_y = np.linalg.norm(y)
    # cone violation 2ε||X u|| / ||y||: pick ε for a violation of 2·tol
    eps = 2 * tol * scale_y / (2 * np.linalg.norm(X @ u))
    V[idle, :, 0] += eps * u
    U[idle, :, 0] += eps * u
    cert, _ = relu_certificate(X, y[:, None], M, V, U, sol.lam, tolerance=tol)
    # independent: predictions unchanged, the penalty grew by 2λε||u||
    r = y - loop_forward(X, M, V - U)[:, 0]
    np.testing.assert_allclose(r, y - sol.predict(X), atol=1e-8 * scale_y)
    S = np.where(M[:, idle], 1.0, -1.0)
    violation = 2 * np.linalg.norm(np.maximum(-S * (X @ (eps * u)), 0)) / scale_y
    assert cert.checks["cone_violation"] == pytest.approx(violation, rel=1e-6)
    assert cert.checks["cone_violation"] > tol and cert.relative_gap <= tol, cert
    assert not cert.certified and cert.failed == ("cone_violation",)
    check = check_patterns("relu", prepare(X, y, patterns=sol.patterns), {"V": V, "U": U},
                           sol.lam, sol.patterns, tolerance=tol)
    assert check.relative_gap <= tol and check.cone_violation > tol and not check.passed
    from convexnn.global_check import global_certificate

    cert_all, _ = global_certificate(cn.REGISTRY["relu"], prepare(X, y, patterns=sol.patterns),
                                     {"V": V, "U": U}, check)
    assert cert_all.scope == "all" and cert_all.failed == ("cone_violation",)
    assert not cert_all.certified


# ---------------------------------------------------------------------------
# patterns: ties at zero are active
# ---------------------------------------------------------------------------


def test_ties_at_zero_are_active():
    X = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0], [0.0, 0.0]])
    G = np.array([[0.0], [1.0]])  # X g = [0, 1, 0, −1, 0]
    pats = patterns_from_gates(X, G)
    expected = np.array([True, True, True, False, True])
    np.testing.assert_array_equal(pats.masks[:, 0], expected)
    np.testing.assert_array_equal(pats.masks_for(X)[:, 0], expected)
    # a new point on the gate's hyperplane is active too
    assert pats.masks_for(np.array([[5.0, 0.0]]))[0, 0]
    assert not pats.masks_for(np.array([[5.0, -1e-300]]))[0, 0]


def test_an_all_inactive_gate_is_dropped_but_counted_as_drawn():
    X = np.array([[1.0, 1.0], [2.0, 1.0], [1.0, 3.0]])
    G = np.array([[-1.0, 1.0, 1.0, 0.0], [-1.0, 1.0, 2.0, 0.0]])  # first: X g < 0 everywhere
    pats = patterns_from_gates(X, G)
    # columns 2 and 3 give the all-active pattern of column 1; gate 0 gives the zero pattern
    assert pats.P == 1 and pats.draws == 4
    np.testing.assert_array_equal(pats.counts, [3])
    np.testing.assert_array_equal(pats.gates[:, 0], G[:, 1])
    assert pats.frequencies.tolist() == [0.75]
    assert pats.standard_errors[0] == pytest.approx(math.sqrt(0.75 * 0.25 / 4), rel=1e-15)


def test_unique_columns_orders_by_first_appearance():
    m = np.array([[1, 0, 1, 0, 1], [0, 1, 0, 1, 1]], dtype=bool)
    first, inverse, counts = unique_columns(m)
    assert first.tolist() == [0, 1, 4] and inverse.tolist() == [0, 1, 0, 1, 2]
    assert counts.tolist() == [2, 2, 1]
    empty = unique_columns(np.zeros((3, 0), dtype=bool))
    assert all(a.size == 0 for a in empty)


def test_subset_scope_and_merge():
    X = np.random.default_rng(0).standard_normal((10, 2))
    every = enumerate_patterns(X)
    assert every.scope == "all" and every.P == 20  # 10 lines through 0 in R²: 2·10 cells
    perm = np.arange(every.P)[::-1]
    assert every.subset(perm).scope == "all"
    assert every.subset(perm[:-1]).scope == "sampled"
    assert every.subset(np.r_[perm[:-1], perm[0]]).scope == "sampled"  # a repeat is no cover
    sampled = sample_patterns(X, 7, seed=1)
    merged = merge_patterns(every.subset(np.arange(3)), sampled)
    np.testing.assert_array_equal(merged.masks[:, :3], every.masks[:, :3])
    keys = {merged.masks[:, j].tobytes() for j in range(merged.P)}
    want = {every.masks[:, j].tobytes() for j in range(3)} | {
        sampled.masks[:, j].tobytes() for j in range(sampled.P)}
    assert keys == want and merged.P == len(want)
    assert merged.scope == "sampled" and merge_patterns(every, sampled).scope == "all"


def test_cell_count_closed_forms():
    assert count_arrangement_cells(0, 3) == 1
    assert count_arrangement_cells(5, 2) == 10  # 2k cells of k lines in the plane
    assert count_arrangement_cells(3, 3) == 8  # three coordinate planes: the octants
    assert count_arrangement_cells(4, 3) == 2 * (1 + 3 + 3)
    assert count_arrangement_cells(4, 1) == 2


# ---------------------------------------------------------------------------
# the global check: exactly one violating pattern, placed last
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def one_violator():
    """W = 0 (residual y) and λ between the two largest ||Xᵀ D_i y|| over the arrangement;
    the candidates are the arrangement ordered so that the one violator is the last."""
    rng = np.random.default_rng(11)
    X = rng.standard_normal((12, 2))
    y = rng.standard_normal(12)
    every = enumerate_patterns(X)
    vals = loop_gated_values(X, every.masks, y[:, None])
    order = np.argsort(vals, kind="stable")
    top, second = vals[order[-1]], vals[order[-2]]
    assert top > second * (1 + 1e-3)
    lam = (top + second) / 2
    cands = every.subset(order)
    assert cands.scope == "all"
    own = every.subset(order[:4])  # the solution's own patterns, none violating
    return X, y, every, cands, own, lam, vals[order]


def test_global_check_finds_the_one_violating_pattern_placed_last(one_violator):
    X, y, every, cands, own, lam, vals = one_violator
    data = prepare(X, y, patterns=own)
    check = check_patterns("gated_relu", data, {"W": np.zeros((own.P, 2, 1))}, lam, cands,
                           tolerance=1e-6)
    assert check.scope == "all" and check.patterns.P == every.P
    np.testing.assert_allclose(check.values, vals, rtol=1e-12)
    assert check.violating.P == 1 and check.violating.scope == "sampled"
    np.testing.assert_array_equal(check.violating.masks[:, 0], cands.masks[:, -1])
    assert check.violations == pytest.approx([vals[-1] / lam - 1], rel=1e-12)
    assert check.max_violation == pytest.approx(vals[-1] / lam - 1, rel=1e-12)
    # the lower bound: y scaled into the ball of the largest value
    objective = 0.5 * y @ y
    lower, t = ray_value(y, y, vals[-1], lam)
    assert check.objective == pytest.approx(objective, rel=1e-14)
    assert check.lower_bound == pytest.approx(lower, rel=1e-12)
    assert check.scale == pytest.approx(t, rel=1e-12)
    assert check.gap == pytest.approx(objective - lower, rel=1e-12)
    assert check.relative_gap == pytest.approx((objective - lower) / objective, rel=1e-12)
    assert not check.passed
    assert check.as_dict()["violating"] == 1 and check.as_dict()["checked"] == every.P
    assert "FAILED [all]" in repr(check) and "1 violating" in repr(check)
    # at a λ below every value, every pattern violates: still a subset of scope "sampled"
    low = check_patterns("gated_relu", data, {"W": np.zeros((own.P, 2, 1))}, vals[0] / 2,
                         cands)
    assert low.violating.P == every.P and low.violating.scope == "sampled"
    assert low.patterns.scope == "all"
    # the one violator at λ just above the largest value: nothing violates
    at = check_patterns("gated_relu", data, {"W": np.zeros((own.P, 2, 1))},
                        vals[-1] * (1 + 1e-9), cands, tolerance=1e-6)
    assert at.violating.P == 0 and at.max_violation == 0.0


def test_global_certificate_of_the_last_pattern_check(one_violator):
    from convexnn.global_check import global_certificate

    X, y, every, cands, own, lam, vals = one_violator
    data = prepare(X, y, patterns=own)
    W = {"W": np.zeros((own.P, 2, 1))}
    check = check_patterns("gated_relu", data, W, lam, cands)
    cert, dual = global_certificate(cn.REGISTRY["gated_relu"], data, W, check)
    assert cert.scope == "all" and cert.dual_objective == check.lower_bound
    assert cert.objective == check.objective and not cert.certified
    # its dual point is feasible for every pattern of the arrangement
    assert loop_gated_values(X, every.masks, dual["z"]).max() <= lam * (1 + 1e-12)


def test_certify_global_checks_every_candidate_of_a_solution(one_violator):
    X, y, every, cands, *_ = one_violator
    sol = cn.solve("gated_relu", X, y, patterns=sample_patterns(X, 3, seed=5), lam_ratio=0.05)
    R = y[:, None] - sol.predict(X)[:, None]
    vals = loop_gated_values(X, every.masks, R)
    order = np.argsort(vals, kind="stable")  # the worst pattern last
    lam = sol.lam
    assert vals.max() > lam * (1 + 1e-3)  # three patterns are not enough here
    check = certify_global(sol, X, y, candidates=every.subset(order))
    assert check.scope == "all" and check.patterns.P == every.P
    assert check.violating.P == int(np.sum(vals > lam * (1 + sol.certificate.tolerance)))
    assert check.max_violation == pytest.approx(vals.max() / lam - 1, rel=1e-8)
    assert check.violating.P >= 2 and np.all(np.diff(check.violations) <= 0)  # worst first
    assert check.violations[0] == pytest.approx(check.max_violation, rel=1e-12)
    assert not check.passed and check.tolerance == sol.certificate.tolerance
    # a tolerance given to the check replaces the solution's
    loose = certify_global(sol, X, y, candidates=every, tol=10.0)
    assert loose.tolerance == 10.0 and loose.passed and loose.violating.P < check.violating.P
    # the same solution checked over all patterns by enumeration agrees
    again = certify_global(sol, X, y, candidates="all")
    assert again.patterns.P == every.P and again.max_violation == pytest.approx(
        check.max_violation, rel=1e-12)


def test_global_check_passes_at_the_global_optimum_and_reports_scope():
    rng = np.random.default_rng(4)
    X, y = rng.standard_normal((10, 2)), rng.standard_normal(10)
    sol = cn.solve("gated_relu", X, y, patterns="all", lam_ratio=0.1)
    check = certify_global(sol, X, y, candidates="all")
    assert check.passed and check.scope == "all" and check.violating.P == 0
    sampled = certify_global(sol, X, y, candidates=50)
    assert sampled.scope == "sampled" and sampled.passed
    with pytest.raises(cn.InvalidInputError, match="candidates"):
        certify_global(sol, X, y, candidates=sample_patterns(X[::-1].copy(), 5))


# ---------------------------------------------------------------------------
# verify: the dual-point check decides on its own
# ---------------------------------------------------------------------------


def test_verify_fails_on_a_different_feasible_dual_point_alone(tmp_path):
    ds = cn.planted_relu(40, 3, seed=6)
    sol = cn.solve("gated_relu", ds.X, ds.y, patterns=12, lam_ratio=0.1)
    out = cn.save(sol, tmp_path / "r", ds)
    assert cn.verify(out, ds).valid
    z = sol.dual["z"]
    other = z + 1e-3 * np.linalg.norm(z) * np.random.default_rng(0).standard_normal(z.shape) \
        / np.sqrt(z.size)
    rewrite(out, {"dual.z": other})
    res = cn.verify(out, ds)
    assert res.failed == ["dual_point"], str(res)


def test_verify_fails_on_an_edited_verdict_alone(tmp_path):
    ds = cn.planted_relu(40, 3, seed=6)
    sol = cn.solve("gated_relu", ds.X, ds.y, patterns=12, lam_ratio=0.1)
    out = cn.save(sol, tmp_path / "r", ds)
    rewrite(out, edit=lambda rec: rec.update(certified=False))
    assert cn.verify(out, ds).failed == ["certified"]


def test_verify_rederives_an_uncertified_result_as_uncertified(tmp_path):
    ds = cn.planted_relu(40, 3, seed=6)
    sol = cn.solve("gated_relu", ds.X, ds.y, patterns=12, lam_ratio=0.1, method="fast",
                   max_iter=2, polish=False)
    assert not sol.certified and sol.certificate.relative_gap > 1e-3
    out = cn.save(sol, tmp_path / "r", ds)
    res = cn.verify(out, ds)
    assert res.valid and not res.certificate.certified
    assert "NOT certified" in str(res)
    rel = (sol.objective - sol.certificate.dual_objective) / abs(sol.objective)
    assert res.certificate.relative_gap == pytest.approx(rel, rel=1e-12, abs=0)
    rewrite(out, edit=lambda rec: rec.update(certified=True))
    assert cn.verify(out, ds).failed == ["certified"]
    # the relative gap over |dual_objective| instead of |objective|: caught here, where the
    # two differ
    rewrite(out, edit=lambda rec: rec.update(
        certified=False, relative_gap=rec["gap"] / abs(rec["dual_objective"])))
    assert cn.verify(out, ds).failed == ["relative_gap"]


def test_verify_counts_ties_at_zero_as_active(tmp_path):
    X = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0], [1.0, 1.0], [2.0, -1.0]])
    y = np.array([1.0, 0.5, -0.3, 0.2, 1.5, 0.7])
    G = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0]])  # the first two put points on zero
    pats = patterns_from_gates(X, G)
    sol = cn.solve("gated_relu", X, y, patterns=pats, lam_ratio=0.1)
    out = cn.save(sol, tmp_path / "ties", (X, y))
    assert cn.verify(out, (X, y)).valid


def test_relu_certificate_skips_unusable_dual_candidates(random_problem):
    X, Y, M, _, rng = random_problem
    P = M.shape[1]
    V = np.maximum(0.2 * rng.standard_normal((P, 3, 2)), 0)
    U = np.zeros_like(V)
    lam = 0.5
    plain, point = relu_certificate(X, Y, M, V, U, lam)
    n = X.shape[0]
    bad = [
        {"z": Y},                                          # no multipliers
        {"alpha": "text", "beta": "text"},                 # not numbers
        {"alpha": np.zeros((P, n + 1, 2)), "beta": np.zeros((P, n + 1, 2))},  # wrong n
        {"alpha": np.zeros((P, n, 2)), "beta": np.zeros((P, n - 1, 2))},      # mismatch
        {"z": np.full_like(Y, np.nan), "alpha": point["alpha"], "beta": point["beta"]},
    ]
    again, same = relu_certificate(X, Y, M, V, U, lam, duals=bad,
                                   multipliers={"alpha": np.full((P, n, 2), np.inf),
                                                "beta": np.zeros((P, n, 2))})
    assert again.dual_objective == plain.dual_objective
    for k in ("z", "alpha", "beta"):
        np.testing.assert_array_equal(same[k], point[k])
    # usable multipliers of the right shape are used as the warm start: same certificate
    warm, _ = relu_certificate(X, Y, M, V, U, lam, multipliers={"alpha": point["alpha"],
                                                                "beta": point["beta"]})
    assert warm.dual_objective == pytest.approx(plain.dual_objective, rel=1e-12)
    assert relu_certificate(X, Y, M, V, U, lam, multipliers={"alpha": 1.0})[0].dual_objective \
        == plain.dual_objective


def test_relu_certificate_of_a_non_finite_point_is_zero_dual(random_problem):
    X, Y, M, _, _ = random_problem
    V = np.full((M.shape[1], 3, 2), np.nan)
    cert, dual = relu_certificate(X, Y, M, V, np.zeros_like(V), 0.3)
    assert cert.dual_objective == 0.0 and not cert.certified
    assert not np.any(dual["z"]) and not np.any(dual["alpha"]) and not np.any(dual["beta"])
