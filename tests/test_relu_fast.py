"""The working-set interior point method for the ReLU program (method="fast"), checked
against independent truths: the declarative program over every pattern and row, a
fresh NNLS certificate over the full pattern set, scipy's NNLS on all n rows, the KKT
conditions of a Euclidean projection, and the reduced program written a second way."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import nnls

import convexnn as cn
from convexnn.cones import project_to_cones, screen_values, signs
from convexnn.errors import InvalidInputError
from convexnn.formulations import SolveOptions
from convexnn.formulations.relu import relu_certificate, relu_objective, relu_reg_max
from convexnn.methods.relu_working_set import (
    _design,
    _row_matrix,
    _solve_clarabel,
    _solve_cvxpy,
    _WorkingSet,
)
from convexnn.ops import adjoint, group_norms
from convexnn.problem import prepare

RELU = cn.REGISTRY["relu"]


def exact_support(X, M, C):
    """max_{||U||_F ≤ 1, S_i X U ≥ 0} ⟨C_i, U⟩ by scipy's NNLS on ALL n rows, column by column."""
    S = signs(M)
    out = np.zeros(M.shape[1])
    for i in range(M.shape[1]):
        B = (X * S[:, i:i + 1]).T
        total = 0.0
        for k in range(C.shape[2]):
            a, _ = nnls(B, -C[i, :, k], maxiter=50 * B.shape[1])
            total += np.sum((C[i, :, k] + B @ a) ** 2)
        out[i] = np.sqrt(total)
    return out


CASES = [  # n, d, P, outputs, bias, lam_ratio
    (60, 4, 40, 1, False, 0.1),
    (80, 3, 50, 1, True, 0.05),
    (70, 4, 30, 2, False, 0.1),
    (90, 5, 40, 1, False, 0.01),
]


@pytest.mark.parametrize("n, d, P, c, bias, ratio", CASES)
def test_fast_agrees_with_the_full_program(n, d, P, c, bias, ratio):
    ds = cn.planted_relu(n, d, outputs=c, seed=n + d)
    kw = dict(patterns=P, lam_ratio=ratio, bias=bias)
    ipm = cn.solve("relu", ds.X, ds.y, method="ipm", **kw)
    fast = cn.solve("relu", ds.X, ds.y, method="fast", **kw)
    assert ipm.certified and fast.certified and fast.method == "fast"
    assert fast.lam == ipm.lam
    assert fast.objective == pytest.approx(ipm.objective, rel=1e-6)
    # each certificate bounds the other's objective (weak duality across methods)
    assert fast.certificate.dual_objective <= ipm.objective * (1 + 1e-9)
    assert ipm.certificate.dual_objective <= fast.objective * (1 + 1e-9)
    ws = fast.info["working_set"]
    assert ws["converged"] and ws["rows"] <= ws["full_rows"]
    assert ws["rounds"] == len(ws["history"]) - 1
    assert fast.weights["V"].shape == (fast.patterns.P, d + bias, c) == ipm.weights["V"].shape


def test_certificate_is_the_full_numpy_certificate():
    ds = cn.planted_relu(120, 5, seed=2)
    sol = cn.solve("relu", ds.X, ds.y, patterns=60, lam_ratio=0.05, method="fast")
    data = prepare(ds.X, ds.y, patterns=60)
    assert sol.patterns.P == data.P == 60  # certified over every pattern, not the working set
    V, U = sol.weights["V"], sol.weights["U"]
    fresh, dual = relu_certificate(data.X, data.Y, data.M, V, U, sol.lam)
    cert = sol.certificate
    assert cert.objective == pytest.approx(fresh.objective, rel=1e-13)
    assert cert.dual_objective == pytest.approx(fresh.dual_objective, rel=1e-11)
    assert cert.certified == fresh.certified and cert.scope == fresh.scope == "sampled"
    # the dual objective is that of t·(y − ŷ), t set by the largest constraint value over
    # ALL patterns, each computed here by scipy's NNLS on all n rows
    obj, R = relu_objective(data.X, data.Y, data.M, V, U, sol.lam)
    C = adjoint(data.X, data.M, R)
    top = max(exact_support(data.X, data.M, C).max(), exact_support(data.X, data.M, -C).max())
    t = min(1.0, sol.lam / top)
    dual_value = t * np.sum(data.Y * R) - 0.5 * t * t * np.sum(R * R)
    assert cert.dual_objective == pytest.approx(dual_value, rel=1e-9)
    # the network's training objective is the certified objective
    assert sol.network.objective(ds.X, ds.y, sol.lam) == pytest.approx(obj, rel=1e-8)


def test_unfinished_working_set_is_reported_not_certified():
    ds = cn.planted_relu(100, 4, seed=8)
    full = cn.solve("relu", ds.X, ds.y, patterns=50, lam_ratio=0.02, method="ipm")
    with pytest.warns(RuntimeWarning, match="did not converge"):
        sol = cn.solve("relu", ds.X, ds.y, patterns=50, lam_ratio=0.02, method="fast",
                       working_set_rounds=0, working_set_add=1)
    ws = sol.info["working_set"]
    assert not ws["converged"] and ws["rounds"] == 0 and ws["history"][0]["violating"] > 0
    cert = sol.certificate
    assert not cert.certified and cert.relative_gap > cert.tolerance
    # still an honest bound: the optimum lies between the two values
    assert cert.dual_objective <= full.objective * (1 + 1e-9)
    assert cert.objective >= full.objective * (1 - 1e-9)
    assert "NOT CERTIFIED" in repr(cert)


@pytest.mark.parametrize("seed", range(4))
def test_screen_never_skips_a_violating_pattern(seed):
    rng = np.random.default_rng(seed)
    n, d, c = 80, 4, 1 + seed % 2
    X = rng.standard_normal((n, d))
    pats = cn.sample_patterns(X, 60, seed=seed)
    M = pats.masks
    C = adjoint(X, M, rng.standard_normal((n, c)))
    exact = exact_support(X, M, C)
    lam = float(np.quantile(exact, 0.7))  # about 30% of the patterns violate
    warm = rng.random((M.shape[1], n, c)) * (rng.random((M.shape[1], n, c)) < 0.05)
    violating = exact > lam * (1 + 1e-9)
    for alpha, want, limit in ((None, None, None), (warm.copy(), None, None), (None, 3, None),
                               (warm.copy(), 3, 16)):
        values, is_exact, mult, _ = screen_values(X, M, C, lam, alpha=alpha, want=want,
                                                  limit=limit)
        assert np.all(values >= exact - 1e-9 * lam)  # every value is an upper bound ...
        attained = group_norms(C + np.einsum("nd,pnc->pdc", X, signs(M).T[:, :, None] * mult))
        assert np.allclose(attained, values, rtol=1e-10, atol=1e-12)  # ... attained by α ≥ 0
        assert mult.min() >= 0
        assert np.allclose(values[is_exact], exact[is_exact], rtol=1e-9, atol=1e-12)
        if want is None:  # every violating pattern is found and evaluated exactly
            assert np.all(is_exact[violating])
        elif limit is None:  # the `want` largest values are exact
            top = np.argsort(-exact)[:want]
            assert np.all(is_exact[top])
            assert np.allclose(values[top], exact[top], rtol=1e-9)
        else:  # violations exist, so at least `want` are reported exactly
            assert np.sum(is_exact & (values > lam)) >= min(want, violating.sum())


def test_projection_satisfies_kkt_conditions():
    rng = np.random.default_rng(3)
    n, d = 300, 6
    X = rng.standard_normal((n, d))
    M = cn.sample_patterns(X, 30, seed=1).masks
    W = 3 * rng.standard_normal((M.shape[1], d, 2))
    Pi, alpha = project_to_cones(X, M, W)
    S = signs(M)
    for i in range(M.shape[1]):
        for k in range(2):
            G = X * S[:, i:i + 1]
            slack = G @ Pi[i, :, k]
            scale = np.abs(W[i, :, k]).max() * np.linalg.norm(X, axis=1).max()
            assert slack.min() >= -1e-9 * scale  # Π ∈ K
            assert alpha[i, :, k].min() >= 0
            assert np.allclose(Pi[i, :, k], W[i, :, k] + G.T @ alpha[i, :, k], atol=1e-9)
            assert abs(alpha[i, :, k] @ slack) <= 1e-8 * scale * (1 + alpha[i, :, k].sum())


def test_projection_with_a_hint_when_there_are_fewer_points_than_features():
    """A multiplier hint is a speed hint only: with n < d (a face has at most n rows) the
    hinted projection equals the plain one (it used to fail on the hint's shape)."""
    rng = np.random.default_rng(4)
    n, d = 7, 12
    X = rng.standard_normal((n, d))
    M = cn.sample_patterns(X, 9, seed=2).masks
    W = rng.standard_normal((M.shape[1], d, 2))
    plain, a_plain = project_to_cones(X, M, W)
    hinted, a_hint = project_to_cones(X, M, W, start=rng.random((M.shape[1], n, 2)))
    assert np.allclose(hinted, plain, atol=1e-10)
    assert np.allclose(X @ hinted[0], X @ plain[0], atol=1e-10)
    ds = cn.planted_relu(20, 30, seed=3)  # and a whole λ path on such data, certified
    path = cn.solve_path("relu", ds.X, ds.y, patterns=10, lam_ratios=[0.3, 0.1],
                         method="fast")
    assert path.certified


def test_lambda_max_and_warm_multipliers_are_exact(rng):
    ds = cn.planted_relu(100, 4, seed=6)
    data = prepare(ds.X, ds.y, patterns=40)
    C = adjoint(data.X, data.M, data.Y)
    full = max(exact_support(data.X, data.M, C).max(), exact_support(data.X, data.M, -C).max())
    assert relu_reg_max(data.X, data.Y, data.M) == pytest.approx(full, rel=1e-10)
    # multipliers tried first never change the certificate
    V = 0.05 * project_to_cones(data.X, data.M, rng.standard_normal((40, 4, 1)))[0]
    U = np.zeros_like(V)
    lam = 0.2 * full
    plain, _ = relu_certificate(data.X, data.Y, data.M, V, U, lam)
    hints = {"alpha": rng.random((40, 100, 1)), "beta": np.zeros((40, 100, 1))}
    hinted, dual = relu_certificate(data.X, data.Y, data.M, V, U, lam, multipliers=hints)
    assert hinted.dual_objective == pytest.approx(plain.dual_objective, rel=1e-12)
    assert hinted.objective == plain.objective
    assert dual["alpha"].min() >= 0


def test_reduced_program_two_ways():
    """The conic form passed to Clarabel equals the same program written in cvxpy."""
    rng = np.random.default_rng(0)
    ds = cn.planted_relu(70, 4, outputs=2, seed=1)
    data = prepare(ds.X, ds.y, patterns=20)
    X, Y, M = data.X, data.Y, data.M
    ws = _WorkingSet(np.array([0, 1, 3, 3, 7]), np.array([1, -1, 1, -1, 1]),
                     [rng.choice(70, 12, replace=False) for _ in range(5)])
    K, d, c = ws.K, data.d, data.c
    A = _design(X, M, ws)
    H, Q, G = A.T @ A, A.T @ Y, _row_matrix(X, M, ws, c)
    assert isinstance(G, sp.csc_matrix) and G.shape == (c * 60, c * K * d)
    lam = 0.1 * RELU.reg_max(data)
    opts = SolveOptions(tol=1e-6)
    W1, status, _ = _solve_clarabel(H, Q, G, K, d, c, lam, opts, offset=0.5 * np.sum(Y * Y),
                                    scale=0.5 * np.sum(Y * Y))
    W2, _, _ = _solve_cvxpy(H, Q, G, K, d, c, lam, opts)
    assert status == "optimal"

    def value(W):
        R = Y - A @ W.reshape(K * d, c)
        return 0.5 * np.sum(R * R) + lam * group_norms(W).sum()

    assert value(W1) == pytest.approx(value(W2), rel=1e-6)
    # kept rows hold: s_k x_k^T W_b[:, j] ≥ 0
    S = signs(M)
    for b in range(K):
        margins = S[ws.rows[b], ws.pat[b], None] * (X[ws.rows[b]] @ W1[b])
        assert margins.min() >= -1e-7 * np.abs(W1).max()


def test_gated_warm_start_and_other_solvers():
    ds = cn.planted_relu(60, 3, seed=4)
    kw = dict(patterns=30, lam_ratio=0.05)
    ref = cn.solve("relu", ds.X, ds.y, method="fast", **kw)
    gated = cn.solve("relu", ds.X, ds.y, method="fast", warm_start="gated", **kw)
    assert gated.certified and gated.objective == pytest.approx(ref.objective, rel=1e-6)
    assert gated.info["working_set"]["gated"]["active_groups"] > 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SCS may report inaccurate; the certificate decides
        scs = cn.solve("relu", ds.X, ds.y, method="fast", solver="scs", inner="ipm", **kw)
    assert scs.solver == "SCS" and scs.method == "fast"
    assert scs.certificate.dual_objective <= ref.objective * (1 + 1e-9)


def test_auto_method_and_validation(small):
    X, y, pats = small
    data = prepare(X, y, patterns=pats)
    cost = RELU.predicted_seconds(data)  # the measured cost model decides
    assert RELU.choose_method(data, "auto") == min(cost, key=cost.get)
    tiny = prepare(X[:20], y[:20], patterns=cn.sample_patterns(X[:20], 8, seed=1))
    assert RELU.choose_method(tiny, "auto") == "ipm"  # the interior point's fixed cost wins
    rng = np.random.default_rng(1)
    outputs = prepare(rng.standard_normal((100, 4)), rng.standard_normal((100, 3)), patterns=30)
    assert RELU.choose_method(outputs, "auto") == "fast"  # one cone per output: ipm grows c^1.7
    big = prepare(np.random.default_rng(0).standard_normal((500, 5)), np.ones(500), patterns=50)
    assert RELU.choose_method(big, "auto") == "fast"
    assert RELU.choose_method(big, "ipm") == "ipm"
    with pytest.raises(InvalidInputError, match="fast"):
        cn.solve("relu", X, y, patterns=pats, method="newton")
    with pytest.raises(InvalidInputError, match="working_set_rounds.*method='fast'"):
        cn.solve("relu", X, y, patterns=pats, method="ipm", working_set_rounds=3)
    for bad, word in (({"warm_start": "random"}, "warm_start"),
                      ({"working_set_rounds": -1}, "working_set_rounds"),
                      ({"working_set_add": 0}, "working_set_add"),
                      ({"working_set_rows": 2.5}, "working_set_rows")):
        with pytest.raises(InvalidInputError, match=word):
            cn.solve("relu", X, y, patterns=pats, method="fast", **bad)
    with pytest.raises(InvalidInputError, match="Clarabel option"):
        cn.solve("relu", X, y, patterns=pats, method="fast", solver_options={"no_such": 1})


def test_fast_inside_the_augment_loop():
    ds = cn.planted_relu(25, 2, seed=5)
    full = cn.solve("relu", ds.X, ds.y, patterns="all", lam_ratio=0.05, method="ipm")
    sol = cn.solve("relu", ds.X, ds.y, patterns=cn.sample_patterns(ds.X, 3, seed=0),
                   lam=full.lam, method="fast", augment=True)
    assert sol.certified and sol.certificate.scope == "all" and sol.method == "fast"
    assert sol.objective == pytest.approx(full.objective, rel=1e-6)


def test_zero_targets_and_huge_lambda():
    ds = cn.planted_relu(40, 3, seed=2)
    zero = cn.solve("relu", ds.X, np.zeros(40), patterns=15, lam=1.0, method="fast")
    assert zero.certified and zero.objective == 0.0
    assert not zero.weights["V"].any() and not zero.weights["U"].any()
    big = cn.solve("relu", ds.X, ds.y, patterns=15, lam=1e6, method="fast")
    assert big.certified
    assert big.objective == pytest.approx(0.5 * np.sum(ds.y ** 2), rel=1e-6)


def test_saved_fast_solution_verifies(tmp_path):
    ds = cn.planted_relu(80, 4, seed=9)
    sol = cn.solve("relu", ds.X, ds.y, patterns=40, lam_ratio=0.05, method="fast")
    out = cn.save(sol, tmp_path / "fast", (ds.X, ds.y))
    result = cn.verify(out, (ds.X, ds.y))
    assert result.valid


@pytest.mark.parametrize("c", [1, 3, 7])
def test_newton_direction_solves_the_full_hessian(c):
    """The face Newton step with several outputs (c Cholesky factors and a Woodbury
    correction for the Frobenius norms) equals the dense solve with the whole Hessian
    ``blockdiag_j(H_j) + λ Σ_b (I − u_b u_bᵀ)/||θ_b||`` built here entry by entry."""
    from types import SimpleNamespace

    from convexnn.methods.relu_active_set import _newton_direction

    rng = np.random.default_rng(c)
    K, lam = 6, 0.3
    var_blk = np.repeat(np.arange(K), rng.integers(c, 4 * c, size=K))
    m = var_blk.size
    var_out = rng.integers(0, c, size=m)
    out = [np.nonzero(var_out == j)[0] for j in range(c)]
    H = []
    for o in out:
        B = rng.standard_normal((20, o.size))
        H.append(B.T @ B)
    theta = rng.standard_normal(m)
    nb = np.sqrt(np.bincount(var_blk, theta * theta, minlength=K))
    grad = rng.standard_normal(m)
    full = np.zeros((m, m))
    for o, Hj in zip(out, H, strict=True):
        full[np.ix_(o, o)] = Hj
    for b in range(K):
        idx = np.nonzero(var_blk == b)[0]
        u = theta[idx] / nb[b]
        full[np.ix_(idx, idx)] += lam / nb[b] * (np.eye(idx.size) - np.outer(u, u))
    prog = SimpleNamespace(sup=np.arange(K), var_blk=var_blk, out=out, H=H)
    step = _newton_direction(prog, theta, nb, grad, lam)
    np.testing.assert_allclose(step, np.linalg.solve(full, grad), rtol=1e-8, atol=1e-10)


def test_refreshed_face_program_equals_a_rebuilt_one():
    """After faces grow, the face program updated column by column (bases, products and
    Gram blocks of the other columns reused) equals the one built from scratch."""
    from convexnn.methods.relu_active_set import Blocks, FaceCache, _FaceProgram

    rng = np.random.default_rng(3)
    n, d, K, c = 40, 6, 5, 3
    X = np.hstack([rng.standard_normal((n, d - 1)), np.ones((n, 1))])
    M = rng.random((n, K)) < 0.5
    sgn = np.where(rng.random(K) < 0.5, 1.0, -1.0)
    blocks = Blocks(X, M * sgn, 2.0 * M - 1.0, c)
    cache = FaceCache(blocks)
    for q in range(K * c):
        cache.set_face(q, rng.choice(n, size=2, replace=False))
    sup = np.array([0, 2, 3, 4])
    prog = _FaceProgram.build(blocks, cache, sup)
    changed = np.array([1, 5, 7])  # positions in prog.cols
    for k in changed:
        q = prog.cols[k]
        cache.set_face(q, np.append(cache.rows[q], [r for r in range(n)
                                                     if r not in cache.rows[q]][:2]))
    new = prog.refresh(blocks, cache, changed)
    ref = _FaceProgram.build(blocks, cache, sup)
    assert new.B.shape == ref.B.shape and new.B.shape[1] < prog.B.shape[1]
    np.testing.assert_allclose(new.B, ref.B, atol=1e-12)
    for Hn, Hr in zip(new.H, ref.H, strict=True):
        np.testing.assert_allclose(Hn, Hr, atol=1e-10)
    for name in ("sizes", "start", "var_blk", "var_out", "face_rows", "face_cols"):
        np.testing.assert_array_equal(getattr(new, name), getattr(ref, name))
