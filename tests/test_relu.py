"""ReLU cone-constrained program (docs/math/relu.md) and global optimality: checked against
independent truths — an independently solved dual, per-pattern SOCPs solved by cvxpy,
dense per-pattern loops, the gated program, and exact enumeration of all patterns."""

from __future__ import annotations

import dataclasses

import cvxpy as cp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convexnn as cn
from convexnn.formulations.relu import build_dual, build_primal, relu_certificate
from convexnn.global_check import check_patterns
from convexnn.networks import ReLUNetwork
from convexnn.ops import forward, group_norms
from convexnn.problem import prepare

RELU = cn.REGISTRY["relu"]


# ---------------------------------------------------------------------------
# independent references (dense loops and cvxpy problems written here)
# ---------------------------------------------------------------------------


def dense_dual_norms(X, M, Z, alpha, beta):
    """||Xᵀ(D_i z + S_i α_i)||_F and ||Xᵀ(−D_i z + S_i β_i)||_F, one pattern at a time."""
    out_a, out_b = [], []
    for i in range(M.shape[1]):
        D = np.diag(M[:, i].astype(float))
        S = 2 * D - np.eye(len(D))
        out_a.append(np.linalg.norm(X.T @ (D @ Z + S @ alpha[i])))
        out_b.append(np.linalg.norm(X.T @ (-D @ Z + S @ beta[i])))
    return np.array(out_a), np.array(out_b)


def socp_constraint_value(X, mask, z):
    """max_{||u|| ≤ 1, S X u ≥ 0} |zᵀ D X u| by two cvxpy SOCPs (one output)."""
    s = np.where(mask, 1.0, -1.0)
    c = X.T @ (mask * z)
    u = cp.Variable(X.shape[1])
    vals = []
    for sign in (1.0, -1.0):
        prob = cp.Problem(cp.Maximize(sign * c @ u), [cp.norm(u) <= 1, cp.multiply(s, X @ u) >= 0])
        prob.solve(solver="CLARABEL")
        vals.append(prob.value)
    return max(vals)


def independent_dual(X, Y, M, lam):
    """max ⟨Y, Z⟩ − ½||Z||² s.t. ||Xᵀ(D_i Z + S_i α_i)||_F ≤ λ, ||Xᵀ(−D_i Z + S_i β_i)||_F ≤ λ,
    α_i, β_i ≥ 0 — written here from the raw arrays (column i of a d × P matrix per output
    is pattern i; the Frobenius norm stacks the outputs)."""
    n, c = Y.shape
    P = M.shape[1]
    D = M.astype(float)
    S = 2.0 * D - 1.0
    Z = cp.Variable((n, c))
    A = [cp.Variable((n, P), nonneg=True) for _ in range(c)]
    B = [cp.Variable((n, P), nonneg=True) for _ in range(c)]
    ga, gb = [], []
    for k in range(c):
        DZ = cp.multiply(D, cp.reshape(Z[:, k], (n, 1), order="F") @ np.ones((1, P)))
        ga.append(X.T @ (DZ + cp.multiply(S, A[k])))
        gb.append(X.T @ (cp.multiply(S, B[k]) - DZ))
    cons = [cp.norm(cp.vstack(g), 2, axis=0) <= lam for g in (ga, gb)]
    prob = cp.Problem(cp.Maximize(cp.sum(cp.multiply(Y, Z)) - 0.5 * cp.sum_squares(Z)), cons)
    prob.solve(solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    assert prob.status == "optimal"
    return prob.value, {"z": Z.value}


def raw_problem(X, y, gates, bias):
    """X (with its bias column), Y (n × c) and the masks 1[X g ≥ 0], in plain numpy."""
    Xb = np.hstack([X, np.ones((X.shape[0], 1))]) if bias else np.asarray(X, dtype=float)
    return Xb, np.asarray(y, dtype=float).reshape(X.shape[0], -1), Xb @ gates >= 0


def convex_objective(X, Y, M, V, U, lam):
    R = Y - forward(X, M, V - U)
    return 0.5 * np.sum(R * R) + lam * (group_norms(V).sum() + group_norms(U).sum())


def planar(n=30, bias=False, seed=5):
    ds = cn.planted_relu(n, 2, neurons=3, noise=0.1, seed=seed)
    return ds.X, ds.y, (cn.add_bias(ds.X) if bias else ds.X)


# ---------------------------------------------------------------------------
# the cone program and its certificate
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n, d, P, c, bias",
    [(40, 3, 20, 1, False), (80, 5, 60, 1, True), (60, 4, 30, 3, False), (200, 5, 100, 1, False)],
)
def test_certified_equals_independent_dual_and_dominates_gated(n, d, P, c, bias):
    ds = cn.planted_relu(n, d, outputs=c, seed=n + d)
    sol = cn.solve("relu", ds.X, ds.y, patterns=P, lam_ratio=0.05, bias=bias)
    cert = sol.certificate
    assert sol.formulation == "relu" and cert.scope == "sampled" and sol.scope == "sampled"
    assert cert.certified and 0 <= cert.relative_gap <= 1e-6
    assert set(sol.weights) == {"V", "U"}
    assert sol.weights["V"].shape == (sol.patterns.P, d + bias, c)
    X, Y, M = raw_problem(ds.X, ds.y, sol.patterns.gates, bias)
    np.testing.assert_array_equal(M, sol.patterns.masks)
    V, U = sol.weights["V"], sol.weights["U"]
    # the objective is recomputed from the weights, not copied from the solver
    R = Y - sum(M[:, [i]] * (X @ (V[i] - U[i])) for i in range(M.shape[1]))
    penalty = sum(np.linalg.norm(V[i]) + np.linalg.norm(U[i]) for i in range(M.shape[1]))
    assert cert.objective == pytest.approx(0.5 * np.sum(R * R) + sol.lam * penalty, rel=1e-12)
    # primal = independently solved dual
    value, mult = independent_dual(X, Y, M, sol.lam)
    assert abs(value - sol.objective) <= 1e-6 * abs(sol.objective)
    # docs/math/relu.md: the dual optimum z* is the residual
    assert np.linalg.norm(mult["z"] - R) <= 1e-3 * np.linalg.norm(R)
    # the returned dual point is feasible, checked one pattern at a time
    z, a, b = sol.dual["z"], sol.dual["alpha"], sol.dual["beta"]
    assert a.min() >= 0 and b.min() >= 0
    na, nb = dense_dual_norms(X, M, z, a, b)
    assert max(na.max(), nb.max()) <= sol.lam * (1 + 1e-12)
    assert cert.dual_objective == pytest.approx(np.sum(Y * z) - 0.5 * np.sum(z * z), rel=1e-12)
    # p_R ≥ p_G on the same patterns
    gated = cn.solve("gated_relu", ds.X, ds.y, patterns=P, lam=sol.lam, bias=bias)
    assert sol.objective >= gated.objective * (1 - 1e-7)


def test_multi_output_network_and_columnwise_cones():
    ds = cn.planted_relu(50, 3, outputs=2, seed=4)
    sol = cn.solve("relu", ds.X, ds.y, patterns=20, lam_ratio=0.1)
    assert sol.certified and sol.outputs == 2 and sol.predict(ds.X).shape == (50, 2)
    data = prepare(ds.X, ds.y, patterns=20)
    V, U = sol.weights["V"], sol.weights["U"]
    S = np.where(data.M, 1.0, -1.0)
    for W in (V, U):  # every column of every block lies in its pattern's cone
        for i in range(data.P):
            assert (S[:, i:i + 1] * (data.X @ W[i])).min() >= -1e-12 * np.abs(W).max()
    # one neuron per column: same predictions, penalty Σ_k ||v_ik|| ≥ ||V_i||_F
    net = sol.network
    assert np.allclose(net.predict(ds.X), forward(data.X, data.M, V - U), atol=1e-6)
    assert net.objective(ds.X, ds.y, sol.lam) >= sol.objective * (1 - 1e-8)


def test_network_objective_equals_convex_objective(small):
    X, y, pats = small
    sol = cn.solve("relu", X, y, patterns=pats, lam_ratio=0.05)
    net = sol.network
    assert isinstance(net, ReLUNetwork) and net.neurons > 0
    violation = sol.certificate.checks["cone_violation"]
    assert violation <= 1e-12  # returned columns were projected onto their cones
    # up to pruning of interior-point noise (groups below 1e-6·max norm)
    assert net.objective(X, y, sol.lam) == pytest.approx(sol.objective, rel=1e-7)
    convex_pred = forward(X, pats.masks, sol.weights["V"] - sol.weights["U"])[:, 0]
    assert np.allclose(net.predict(X), convex_pred, atol=1e-6 * np.abs(y).max())
    # the solver's own point was within the tolerance before the projection
    assert sol.info["solver_cone_violation"] <= 1e-6


def test_unrepaired_solution_network_within_cone_violation(small):
    X, y, pats = small
    sol = cn.solve("relu", X, y, patterns=pats, lam_ratio=0.05, repair=False)
    assert sol.certified
    V, U = sol.weights["V"], sol.weights["U"]
    net = ReLUNetwork.from_weights(V, U, prune=0.0)
    M = pats.masks
    R = y[:, None] - forward(X, M, V - U)
    delta = sol.certificate.checks["cone_violation"] * np.linalg.norm(y)
    bound = delta * np.linalg.norm(R) + 0.5 * delta**2
    assert abs(net.objective(X, y, sol.lam) - sol.objective) <= bound + 1e-12 * sol.objective


def test_network_identity_for_any_weights(rng):
    """f(X) − Σ D_i X (v_i − u_i) = Σ_i (−S_i X v_i)_+ − (−S_i X u_i)_+ exactly, any (v, u)."""
    X = rng.standard_normal((25, 3))
    pats = cn.sample_patterns(X, 10, seed=1)
    V = rng.standard_normal((pats.P, 3, 1))
    U = rng.standard_normal((pats.P, 3, 1))
    net = ReLUNetwork.from_weights(V, U, prune=0.0)
    S = np.where(pats.masks, 1.0, -1.0)
    corr = sum(np.maximum(-S[:, i] * (X @ V[i, :, 0]), 0)
               - np.maximum(-S[:, i] * (X @ U[i, :, 0]), 0) for i in range(pats.P))
    assert np.allclose(net.predict(X), forward(X, pats.masks, V - U)[:, 0] + corr, atol=1e-12)
    assert net.penalty() == pytest.approx(group_norms(V).sum() + group_norms(U).sum(), rel=1e-12)


def test_certificate_rejects_violated_cone(small):
    X, y, pats = small
    sol = cn.solve("relu", X, y, patterns=pats, lam_ratio=0.05)
    data = prepare(X, y, patterns=pats)
    V = sol.weights["V"].copy()
    i = int(np.argmax(group_norms(V)))
    for bad_V in (np.where(np.arange(pats.P)[:, None, None] == i, -V, V),  # flip a neuron
                  V + 1e-3 * np.abs(V).max() * np.random.default_rng(0).standard_normal(V.shape)):
        cert, _ = RELU.certify(data, sol.lam, {"V": bad_V, "U": sol.weights["U"]}, sol.dual)
        assert not cert.certified and "cone_violation" in cert.failed
        assert cert.checks["cone_violation"] > 1e-6
        assert "NOT CERTIFIED" in repr(cert)


def test_certify_from_saved_arrays_reproduces(small):
    X, y, pats = small
    sol = cn.solve("relu", X, y, patterns=pats, lam_ratio=0.05)
    data = prepare(X, y, patterns=pats)
    saved = {k: np.array(v) for k, v in sol.dual.items()}
    cert, _ = RELU.certify(data, sol.lam, dict(sol.weights), saved, tol=sol.certificate.tolerance)
    assert cert.certified and cert.objective == sol.objective
    assert cert.dual_objective >= sol.certificate.dual_objective - 1e-12 * abs(sol.objective)
    # without any dual (residual + NNLS multipliers alone) it still certifies
    alone, _ = RELU.certify(data, sol.lam, dict(sol.weights))
    assert alone.certified
    # the solver's own multipliers were close to feasible already
    assert sol.info["solver_dual_violation"] < 1e-5


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), lam=st.floats(0.05, 5.0), scale=st.floats(0.0, 2.0))
def test_weak_duality_for_any_point(seed, lam, scale):
    """For ANY (v, u) and ANY offered dual, the kept dual point is feasible and gap ≥ 0
    whenever the primal point is feasible (projected onto its cones)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((12, 3))
    Y = rng.standard_normal((12, 2))
    pats = cn.sample_patterns(X, 6, seed=seed)
    from convexnn.cones import project_to_cones

    V = project_to_cones(X, pats.masks, scale * rng.standard_normal((pats.P, 3, 2)))[0]
    U = project_to_cones(X, pats.masks, scale * rng.standard_normal((pats.P, 3, 2)))[0]
    junk = {"z": rng.standard_normal((12, 2)), "alpha": rng.standard_normal((pats.P, 12, 2)),
            "beta": rng.standard_normal((pats.P, 12, 2))}
    cert, dual = relu_certificate(X, Y, pats.masks, V, U, lam, duals=[junk])
    na, nb = dense_dual_norms(X, pats.masks, dual["z"], dual["alpha"], dual["beta"])
    assert max(na.max(), nb.max()) <= lam * (1 + 1e-12)
    assert dual["alpha"].min() >= 0 and dual["beta"].min() >= 0
    assert cert.checks["cone_violation"] <= 1e-12
    assert cert.gap >= -1e-10 * max(1.0, abs(cert.objective))


def test_lambda_max_is_exact_threshold(small):
    X, y, pats = small
    data = prepare(X, y, patterns=pats)
    lam_max = RELU.reg_max(data)
    # independent: per-pattern SOCPs max_{||u||≤1, S X u ≥ 0} |yᵀ D X u|
    socp = max(socp_constraint_value(X, pats.masks[:, i], y) for i in range(pats.P))
    assert lam_max == pytest.approx(socp, rel=1e-6)
    assert lam_max <= cn.REGISTRY["gated_relu"].reg_max(data) * (1 + 1e-12)
    zero = np.zeros((pats.P, 4, 1))
    above, _ = RELU.certify(data, 1.0001 * lam_max, {"V": zero, "U": zero})
    assert above.certified and above.gap == pytest.approx(0.0, abs=1e-12)
    below, _ = RELU.certify(data, 0.9 * lam_max, {"V": zero, "U": zero})
    assert not below.certified
    sol = cn.solve("relu", X, y, patterns=pats, lam=1.001 * lam_max)
    assert max(np.abs(sol.weights["V"]).max(), np.abs(sol.weights["U"]).max()) < 1e-5
    sol = cn.solve("relu", X, y, patterns=pats, lam=0.95 * lam_max)
    assert group_norms(sol.weights["V"]).max() + group_norms(sol.weights["U"]).max() > 1e-3


def test_built_problems_are_dpp_and_resolve(small):
    X, y, pats = small
    Y = y[:, None]
    prog = build_primal(X, Y, pats.masks)
    assert prog.problem.is_dcp(dpp=True) and build_dual(X, Y, pats.masks).problem.is_dcp(dpp=True)
    assert len(prog.problem.constraints) == 2  # all cone constraints in two inequalities
    values = []
    for lam in (4.0, 1.0):
        prog.lam.value = lam
        prog.problem.solve(solver="CLARABEL")
        w = prog.weights()
        cert, _ = relu_certificate(X, Y, pats.masks, w["V"], w["U"], lam,
                                   duals=[{"z": Y - forward(X, pats.masks, w["V"] - w["U"]),
                                           **prog.multipliers()}])
        assert cert.relative_gap < 1e-6
        values.append(cert.objective)
    assert values[1] < values[0]


# ---------------------------------------------------------------------------
# global optimality over all patterns
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("n, bias", [(30, False), (10, True)])
def test_global_check_and_augment_reach_all_patterns_optimum(n, bias):
    X, y, Xb = planar(n, bias)
    full = cn.enumerate_patterns(Xb)
    assert full.scope == "all"
    lam = 0.05 * RELU.reg_max(prepare(X, y, patterns=full, bias=bias))
    best = cn.solve("relu", X, y, patterns=full, lam=lam, bias=bias)
    assert best.certified and best.scope == "all"
    check = cn.certify_global(best, X, y)
    assert check.passed and check.scope == "all" and check.violating.P == 0
    assert check.patterns.P == full.P

    sampled = cn.sample_patterns(Xb, 4, seed=0)
    small_sol = cn.solve("relu", X, y, patterns=sampled, lam=lam, bias=bias)
    assert small_sol.certified and small_sol.scope == "sampled"
    miss = cn.certify_global(small_sol, X, y)
    assert not miss.passed and miss.violating.P > 0 and miss.max_violation > 1e-3
    # the violating patterns are missing from the sample, and the bound is a true lower bound
    have = {sampled.masks[:, j].tobytes() for j in range(sampled.P)}
    assert all(miss.violating.masks[:, j].tobytes() not in have for j in range(miss.violating.P))
    assert miss.lower_bound <= best.objective * (1 + 1e-7) < small_sol.objective
    # the reported violation of the worst pattern agrees with an independent SOCP
    if not bias:
        top = miss.violating.masks[:, 0]
        R = y - small_sol.predict(X)
        assert miss.violations[0] == pytest.approx(socp_constraint_value(Xb, top, R) / lam - 1,
                                                   rel=1e-5)

    aug = cn.solve("relu", X, y, patterns=sampled, lam=lam, bias=bias, augment=True)
    assert aug.certified and aug.scope == "all" and aug.certificate.scope == "all"
    assert aug.objective == pytest.approx(best.objective, rel=1e-6)
    info = aug.info["augment"]
    assert info["converged"] and info["rounds"] >= 1 and info["scope"] == "all"
    assert info["history"][0]["violating"] > 0 and info["history"][-1]["violating"] == 0
    assert sampled.P < aug.patterns.P <= full.P
    again = cn.certify_global(aug, X, y)
    assert again.passed and again.lower_bound == pytest.approx(aug.certificate.dual_objective,
                                                               rel=1e-12)
    # the stored dual point is feasible for its patterns and has the certificate's value
    z = aug.dual["z"]
    data = prepare(X, y, patterns=aug.patterns, bias=bias)
    na, nb = dense_dual_norms(data.X, data.M, z, aug.dual["alpha"], aug.dual["beta"])
    assert max(na.max(), nb.max()) <= lam * (1 + 1e-12)
    assert np.sum(data.Y * z) - 0.5 * np.sum(z * z) == pytest.approx(
        aug.certificate.dual_objective, rel=1e-12)


def test_global_check_values_agree_with_socps():
    X, y, Xb = planar(16)
    sol = cn.solve("relu", X, y, patterns=3, lam_ratio=0.1)
    full = cn.enumerate_patterns(Xb)
    check = cn.certify_global(sol, X, y, candidates=full)
    R = y - sol.predict(X)
    for j in range(0, check.patterns.P, 7):
        mask = check.patterns.masks[:, j]
        expected = socp_constraint_value(Xb, mask, R)
        assert check.values[j] == pytest.approx(expected, rel=1e-6, abs=1e-9)


def test_global_check_with_sampled_candidates_and_records(small):
    X, y, pats = small
    sol = cn.solve("relu", X, y, patterns=pats, lam_ratio=0.05)
    check = cn.certify_global(sol, X, y, candidates=500, seed=3)
    assert check.scope == "sampled" and check.patterns.P >= pats.P
    assert check.lower_bound <= sol.objective
    text = repr(check)
    assert "GlobalCheck(" in text and "sampled" in text and len(text.splitlines()) <= 3
    assert set(check.as_dict()) >= {"passed", "scope", "max_violation", "lower_bound", "checked"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        check.passed = True
    # augment with sampled candidates never claims the global scope
    aug = cn.solve("relu", X, y, patterns=pats, lam_ratio=0.05, augment=True, candidates=200,
                   max_rounds=2)
    assert aug.scope == "sampled" and aug.info["augment"]["scope"] == "sampled"
    assert aug.info["augment"]["rounds"] <= 2


def test_gated_solutions_are_checked_too():
    X, y, Xb = planar(20)
    full = cn.enumerate_patterns(Xb)
    best = cn.solve("gated_relu", X, y, patterns=full, lam_ratio=0.05)
    assert cn.certify_global(best, X, y).passed
    part = cn.solve("gated_relu", X, y, patterns=3, lam=best.lam)
    check = cn.certify_global(part, X, y)
    assert not check.passed and check.lower_bound <= best.objective * (1 + 1e-7)


def test_check_patterns_from_arrays(small):
    X, y, pats = small
    sol = cn.solve("relu", X, y, patterns=pats, lam_ratio=0.05)
    check = check_patterns("relu", prepare(X, y, patterns=pats), sol.weights, sol.lam, pats)
    assert check.passed and check.scope == "sampled" and check.patterns.P == pats.P


# ---------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------


def test_bad_inputs_raise_named_errors(small):
    X, y, pats = small
    sol = cn.solve("relu", X, y, patterns=pats, lam_ratio=0.05)
    data = prepare(X, y, patterns=pats)
    with pytest.raises(cn.InvalidInputError, match="'U'"):
        RELU.certify(data, 1.0, {"V": sol.weights["V"]})
    with pytest.raises(cn.InvalidInputError, match="shape"):
        RELU.certify(data, 1.0, {"V": np.zeros((3, 4, 1)), "U": np.zeros((3, 4, 1))})
    with pytest.raises(cn.InvalidInputError, match="sha256"):
        cn.certify_global(sol, X, y + 1.0)
    with pytest.raises(cn.InvalidInputError, match="Solution"):
        cn.certify_global(sol.certificate, X, y)
    with pytest.raises(cn.InvalidInputError, match="candidates"):
        cn.certify_global(sol, X, y, candidates="some")
    with pytest.raises(cn.InvalidInputError, match="candidates"):
        cn.certify_global(sol, X, y, candidates=cn.sample_patterns(X[::-1].copy(), 5))
    with pytest.raises(cn.ProblemTooLargeError, match="max_patterns"):
        cn.certify_global(sol, X, y, candidates="all", max_patterns=100)
    with pytest.raises(cn.InvalidInputError, match="add_per_round"):
        cn.solve("relu", X, y, patterns=pats, augment=True, add_per_round=0)
    with pytest.raises(cn.InvalidInputError, match="max_rounds"):
        cn.solve("relu", X, y, patterns=pats, augment=True, max_rounds=-1)
    with pytest.raises(cn.InvalidInputError, match="augmnt"):
        cn.solve("relu", X, y, patterns=pats, augmnt=True)
    with pytest.raises(cn.InvalidInputError, match="lam"):
        cn.solve("relu", X, y, patterns=pats, lam=-1.0)


@pytest.mark.parametrize("method", ["ipm", "fast"])
@pytest.mark.parametrize("x_scale, y_scale", [(1e-6, 1.0), (1.0, 1e-3), (1.0, 1e-6)])
def test_certified_at_any_data_scale(method, x_scale, y_scale):
    # homogeneity: (tX, uy) at λ·t·u has the optimum u²·p(λ); badly scaled data used to
    # stop the interior point method far from the optimum (relative gap 1e-3 … 1)
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((12, 3)), rng.standard_normal(12)
    ref = cn.solve("relu", X, y, patterns=8, lam=0.3, method=method)
    sol = cn.solve("relu", X * x_scale, y * y_scale, patterns=8,
                   lam=0.3 * x_scale * y_scale, method=method)
    assert ref.certificate.certified and sol.certificate.certified
    assert sol.objective == pytest.approx(ref.objective * y_scale**2, rel=1e-5)
