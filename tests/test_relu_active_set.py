"""The reduced ReLU programs solved without an interior point (method="fast", inner="newton")
and the batched cone projections behind it, checked against independent truths: the
declarative program over every pattern (interior point at tight tolerance), the reduced
program solved by Clarabel, scipy's NNLS on all n rows, the KKT conditions of a Euclidean
projection, and the numpy certificate."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.optimize import nnls

import convexnn as cn
from convexnn.cones import project_batch, project_to_cones, signs
from convexnn.formulations import SolveOptions
from convexnn.formulations.relu import relu_certificate
from convexnn.methods.relu_active_set import Blocks, FaceCache, reduced_gap, solve_reduced
from convexnn.methods.relu_working_set import _design, _row_matrix, _solve_clarabel, _WorkingSet
from convexnn.ops import group_norms
from convexnn.problem import prepare

CASES = [  # n, d, P, outputs, bias, lam_ratio
    (80, 4, 40, 1, False, 0.05),
    (100, 5, 50, 1, True, 0.01),
    (90, 4, 30, 3, False, 0.05),
    (120, 6, 60, 2, True, 0.02),
]


@pytest.mark.parametrize("n, d, P, c, bias, ratio", CASES)
def test_newton_inner_reaches_the_interior_point_optimum(n, d, P, c, bias, ratio):
    ds = cn.planted_relu(n, d, outputs=c, seed=n + c)
    kw = dict(patterns=P, lam_ratio=ratio, bias=bias)
    with warnings.catch_warnings():  # at 1e-9 Clarabel may say "inaccurate": the gap decides
        warnings.simplefilter("ignore", cn.InaccurateSolutionWarning)
        ref = cn.solve("relu", ds.X, ds.y, method="ipm", tol=1e-9, **kw)
    sol = cn.solve("relu", ds.X, ds.y, method="fast", inner="newton", **kw)
    assert ref.certified and sol.certified and sol.solver == "numpy"
    assert sol.objective == pytest.approx(ref.objective, rel=2e-8)
    # weak duality across the two methods: each dual bound lies below the other's value
    assert sol.certificate.dual_objective <= ref.objective * (1 + 1e-12)
    assert ref.certificate.dual_objective <= sol.objective * (1 + 1e-12)
    # the certificate over ALL patterns, recomputed from the arrays alone
    data = prepare(ds.X, ds.y, patterns=P, bias=bias)
    fresh, _ = relu_certificate(data.X, data.Y, data.M, sol.weights["V"], sol.weights["U"],
                                sol.lam, tolerance=1e-6)
    assert fresh.certified and fresh.relative_gap <= 1e-9
    assert fresh.objective == pytest.approx(sol.objective, rel=1e-13)
    ws = sol.info["working_set"]
    assert ws["converged"] and ws["inner"] == "newton" and ws["rounds"] == len(ws["history"]) - 1


def _random_working_set(data, K, rng):
    pairs = {(int(i), int(s)) for i, s in zip(rng.integers(0, data.P, 3 * K),
                                               rng.choice([1, -1], 3 * K), strict=True)}
    pat, sgn = map(np.array, zip(*sorted(pairs)[:K], strict=True))
    return pat, sgn


@pytest.mark.parametrize("c", [1, 2])
def test_reduced_program_matches_clarabel(c):
    rng = np.random.default_rng(c)
    ds = cn.planted_relu(150, 5, outputs=c, seed=3)
    data = prepare(ds.X, ds.y, patterns=40)
    X, Y, M = data.X, data.Y, data.M
    pat, sgn = _random_working_set(data, 25, rng)
    K, d = pat.size, data.d
    lam = 0.02 * cn.REGISTRY["relu"].reg_max(data)
    # Clarabel on the same reduced program with every cone row kept
    ws = _WorkingSet(pat, sgn, [np.arange(data.n) for _ in range(K)])
    A = _design(X, M, ws)
    W1, status, _ = _solve_clarabel(A.T @ A, A.T @ Y, _row_matrix(X, M, ws, c), K, d, c, lam,
                                    SolveOptions(tol=1e-8), offset=0.5 * np.sum(Y * Y),
                                    scale=0.5 * np.sum(Y * Y))
    assert status == "optimal"
    blocks = Blocks(X, M[:, pat] * sgn.astype(float), signs(M[:, pat]), c)
    res = solve_reduced(blocks, FaceCache(blocks), FaceCache(blocks), Y, np.zeros((K, d, c)),
                        lam, tol=1e-12)

    def value(W):
        R = Y - A @ W.reshape(K * d, c)
        return 0.5 * np.sum(R * R) + lam * group_norms(W).sum()

    assert res.info["gap"] <= 1e-12
    assert value(res.W) <= value(W1) * (1 + 1e-9)  # at least as good as the interior point
    assert value(res.W) == pytest.approx(value(W1), rel=1e-7)
    assert np.allclose(res.Yhat, A @ res.W.reshape(K * d, c))
    # feasible on every row of every block (relative to the block's size)
    margins = signs(M[:, pat])[:, :, None] * np.einsum("nd,kdc->nkc", X, res.W)
    assert margins.min() >= -1e-12 * np.abs(res.W).max() * np.abs(X).max()
    # the reported gap is the dual value of the scaled residual with exact support values
    gap, F, values, _ = reduced_gap(blocks, FaceCache(blocks), Y, res.W, res.Yhat, lam)
    assert F == pytest.approx(value(res.W), rel=1e-13) and gap <= 1e-12
    assert values.max() <= lam * (1 + 1e-10)


def _nnls_projection(X, s, v):
    """Π_K(v) for K = {u : s_k x_kᵀ u ≥ 0} by scipy's NNLS on all n rows."""
    B = (X * s[:, None]).T
    a, _ = nnls(B, -v, maxiter=50 * B.shape[1])
    return v + B @ a


@pytest.mark.parametrize("seed", range(3))
def test_batched_projection_is_exact(seed):
    rng = np.random.default_rng(seed)
    n, d, F = 200, 6, 60
    X = rng.standard_normal((n, d))
    S = signs(X @ rng.standard_normal((d, F)) >= 0)
    # vectors near the cones (the common case) and far from them
    V = rng.standard_normal((F, d)) * np.where(rng.random(F) < 0.5, 1.0, 1e3)[:, None]
    Pi, rows, count, a, done = project_batch(X, S, V)
    assert done.mean() > 0.8
    for f in np.nonzero(done)[0]:
        ref = _nnls_projection(X, S[:, f], V[f])
        assert np.allclose(Pi[f], ref, atol=1e-9 * np.linalg.norm(V[f]))
        G = X[rows[f, :count[f]]] * S[rows[f, :count[f]], f][:, None]
        assert np.allclose(Pi[f], V[f] + G.T @ a[f, :count[f]], atol=1e-12 * np.linalg.norm(V[f]))
        assert a[f, :count[f]].min() >= 0  # KKT: multipliers ≥ 0 ...
        slack = S[:, f] * (X @ Pi[f])
        assert slack.min() >= -1e-9 * np.linalg.norm(V[f]) * np.abs(X).max()  # ... Π ∈ K ...
        assert np.allclose(slack[rows[f, :count[f]]], 0, atol=1e-9 * np.linalg.norm(V[f]))
    # starting faces are only a hint: a wrong start gives the same projections
    wrong = rng.integers(0, n, size=(F, d))
    Pi2, _, _, _, done2 = project_batch(X, S, V, wrong, np.full(F, d // 2))
    both = done & done2
    assert np.allclose(Pi[both], Pi2[both], atol=1e-9 * np.abs(V).max())


def test_project_to_cones_fixes_points_of_the_cone():
    """Blocks of a certified solution lie on faces of their cones (rows at zero up to
    rounding): projecting them must return them (the projection is the identity on K and
    non-expansive), also where rounding makes a row look violated by 1e-17."""
    ds = cn.planted_relu(300, 8, seed=1)
    sol = cn.solve("relu", ds.X, ds.y, patterns=80, lam_ratio=0.01, method="fast")
    data = prepare(ds.X, ds.y, patterns=80)
    for key in ("V", "U"):
        W = sol.weights[key]
        Pi, _ = project_to_cones(data.X, data.M, W)
        assert np.all(group_norms(Pi) <= group_norms(W) * (1 + 1e-12) + 1e-300)
        assert np.allclose(Pi, W, atol=1e-10 * np.abs(W).max())


def test_face_cache_projection_equals_nnls():
    rng = np.random.default_rng(5)
    ds = cn.planted_relu(120, 5, outputs=2, seed=2)
    data = prepare(ds.X, ds.y, patterns=30)
    pat = np.arange(10)
    blocks = Blocks(data.X, data.M[:, pat].astype(float), signs(data.M[:, pat]), 2)
    cache = FaceCache(blocks)
    V = rng.standard_normal((10, 5, 2))
    for _ in range(4):  # cached faces from the previous, nearby vectors
        V = V + 0.05 * rng.standard_normal(V.shape)
        Pi, mult = cache.project(V, multipliers=True)
        for b in range(10):
            for j in range(2):
                s = signs(data.M[:, pat[b]])
                ref = _nnls_projection(data.X, s, V[b, :, j])
                assert np.allclose(Pi[b, :, j], ref, atol=1e-9 * np.linalg.norm(V[b, :, j]))
                rows, a = mult[b * 2 + j]
                G = data.X[rows] * s[rows, None]
                assert np.allclose(Pi[b, :, j], V[b, :, j] + G.T @ a,
                                   atol=1e-9 * np.linalg.norm(V[b, :, j]))


def test_interior_point_inner_still_available():
    ds = cn.planted_relu(80, 4, seed=7)
    a = cn.solve("relu", ds.X, ds.y, patterns=40, lam_ratio=0.05, method="fast", inner="ipm")
    b = cn.solve("relu", ds.X, ds.y, patterns=40, lam_ratio=0.05, method="fast")
    assert a.certified and b.certified and a.solver == "CLARABEL" and b.solver == "numpy"
    assert a.objective == pytest.approx(b.objective, rel=1e-7)
    with pytest.raises(cn.InvalidInputError, match="inner"):
        cn.solve("relu", ds.X, ds.y, patterns=40, method="fast", inner="admm")
