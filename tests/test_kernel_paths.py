"""μ paths of the kernel programs from one factorisation: the spectral/feature forms of the
kernel ridge against a direct solve, the NTK path against single solves, the feature form
of the reweighting's ridge against the n×n Cholesky, and the MKL path against single
solves — every answer certified by the numpy certificates."""

from __future__ import annotations

import numpy as np
import pytest

import convexnn as cn
from convexnn.kernels import PatternKernels, SpectralRidge, cholesky_solve
from convexnn.ops import masked_gram
from convexnn.problem import prepare


@pytest.mark.parametrize("form", ["features", "spectral"])
def test_spectral_ridge_solves_the_ridge_system(form):
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((60, 3)), rng.standard_normal((60, 2))
    M = cn.sample_patterns(X, 12, seed=1).masks
    eta = rng.random(M.shape[1]) * (rng.random(M.shape[1]) < 0.8)
    ridge = SpectralRidge(X, M, eta, Y, form=form)
    K = masked_gram(X, M, eta)
    for mu in (10.0, 0.3, 1e-3):
        direct = np.linalg.solve(K + mu * np.eye(60), Y)
        assert np.allclose(ridge.alpha(mu), direct, rtol=1e-8, atol=1e-10 * np.abs(direct).max())
        value, _ = ridge.solve(mu)
        assert value == pytest.approx(0.5 * mu * np.sum(Y * direct), rel=1e-10)


@pytest.mark.parametrize("n, d, P", [(150, 3, 20), (60, 4, 40)])  # d·P < n, d·P ≥ n
def test_ntk_path_equals_single_solves(n, d, P):
    ds = cn.planted_relu(n, d, outputs=2, seed=n)
    ratios = np.geomspace(1.0, 1e-4, 6)
    path = cn.solve_path("ntk", ds.X, ds.y, patterns=P, lam_ratios=ratios, method="cholesky")
    assert path.certified and path.info["form"] == ("features" if d * path[0].patterns.P < n
                                                     else "spectral")
    for sol, ratio in zip(path, ratios, strict=True):
        one = cn.solve("ntk", ds.X, ds.y, patterns=P, mu_ratio=ratio, method="cholesky")
        assert sol.reg == pytest.approx(one.reg, rel=1e-14)
        assert sol.objective == pytest.approx(one.objective, rel=1e-9)
        assert sol.certificate.relative_gap <= 1e-9
        W = one.weights["W"]
        assert np.allclose(sol.weights["W"], W, atol=1e-8 * np.abs(W).max())


def test_feature_form_of_the_reweighting_ridge():
    rng = np.random.default_rng(3)
    data = prepare(rng.standard_normal((200, 3)), rng.standard_normal((200, 2)), patterns=30)
    kern = PatternKernels(data.X, data.M)
    eta = rng.random(data.P) * (rng.random(data.P) < 0.7)
    assert kern.uses_features(eta)
    for mu in (1.0, 1e-3):
        dense = cholesky_solve(kern.gram(eta, mu), data.Y)[1]
        assert np.allclose(kern.ridge(eta, mu, data.Y), dense, rtol=1e-8,
                           atol=1e-10 * np.abs(dense).max())


def test_mkl_path_shares_the_kernels_and_equals_single_solves():
    ds = cn.planted_relu(120, 3, seed=5)
    ratios = [0.1, 0.03, 0.01]
    path = cn.solve_path("mkl", ds.X, ds.y, patterns=20, lam_ratios=ratios, method="reweight")
    assert path.certified and path.info["feature_form"]
    for sol, ratio in zip(path, ratios, strict=True):
        one = cn.solve("mkl", ds.X, ds.y, patterns=20, mu_ratio=ratio, method="reweight")
        assert sol.objective == pytest.approx(one.objective, rel=1e-6)
        # each certificate bounds the other's objective
        assert sol.certificate.dual_objective <= one.objective * (1 + 1e-9)
        assert one.certificate.dual_objective <= sol.objective * (1 + 1e-9)
