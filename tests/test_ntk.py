"""The gated-ReLU NTK (docs/math/ntk.md): analytic Gram vs pattern sums, Monte Carlo rates,
regression."""

from __future__ import annotations

import numpy as np
import pytest

import convexnn as cn
from convexnn.data import add_bias
from convexnn.ops import masked_gram
from convexnn.problem import prepare


def angle_kernel_loop(A, X):
    """x_kᵀx_l (π − θ)/(2π) entry by entry, θ from math.acos (independent of ntk_gram)."""
    import math

    K = np.zeros((A.shape[0], X.shape[0]))
    for j, a in enumerate(A):
        for k, x in enumerate(X):
            c = float(a @ x) / (math.hypot(*a) * math.hypot(*x))
            K[j, k] = float(a @ x) * (math.pi - math.acos(max(-1.0, min(1.0, c)))) / (2 * math.pi)
    return K


# ---------------------------------------------------------------------------
# C1: the analytic NTK is the probability-weighted sum of all pattern kernels
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ntk_equals_sum_over_all_patterns_d2(seed):
    X = np.random.default_rng(seed).standard_normal((15, 2))
    pats = cn.enumerate_patterns(X)
    assert pats.scope == "all" and pats.probabilities is not None
    assert pats.probabilities.sum() == pytest.approx(1.0, abs=1e-12)  # no zero pattern
    K_sum = masked_gram(X, pats.masks, pats.probabilities)
    assert np.max(np.abs(cn.ntk_gram(X) - K_sum)) <= 1e-12


@pytest.mark.parametrize("seed", [0, 1])
def test_ntk_with_bias_keeps_zero_pattern_mass_out(seed):
    """One feature + bias = 2 columns: exact arcs. The zero pattern is dropped and the
    remaining probabilities are NOT renormalised (docs/math/ntk.md pitfall)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((14, 1))
    Xb = add_bias(x)
    pats = cn.enumerate_patterns(Xb)
    p0 = 1.0 - pats.probabilities.sum()
    assert p0 > 0.05  # the all-zero pattern has visible probability with a bias
    # p0 checked independently by brute-force Monte Carlo (5 standard errors)
    draws = 400_000
    zero = np.mean(np.all(Xb @ rng.standard_normal((2, draws)) < 0, axis=0))
    assert abs(zero - p0) <= 5 * np.sqrt(p0 * (1 - p0) / draws)
    K = cn.ntk_gram(x, bias=True)
    assert np.max(np.abs(K - masked_gram(Xb, pats.masks, pats.probabilities))) <= 1e-12
    renormalised = masked_gram(Xb, pats.masks, pats.probabilities / (1.0 - p0))
    assert np.max(np.abs(K - renormalised)) > 0.05 * np.max(np.abs(K))


def test_ntk_rank_two_data_in_three_columns():
    """Gates live in R³ but X has rank 2: the exact arc probabilities still apply."""
    X = np.random.default_rng(4).standard_normal((12, 2))
    X3 = np.hstack([X, X @ np.array([[1.0], [2.0]])])
    pats = cn.enumerate_patterns(X3)
    K = masked_gram(X3, pats.masks, pats.probabilities)
    assert np.max(np.abs(cn.ntk_gram(X3) - K)) <= 1e-12


def test_ntk_gram_against_entrywise_formula_and_cross_kernel():
    rng = np.random.default_rng(5)
    X, Z = rng.standard_normal((9, 4)), rng.standard_normal((5, 4))
    off = ~np.eye(9, dtype=bool)  # on the diagonal acos(1 − ε) ≈ √ε would spoil the loop
    assert np.allclose(cn.ntk_gram(X)[off], angle_kernel_loop(X, X)[off], atol=1e-12, rtol=0)
    assert np.allclose(cn.ntk_gram(X, Z), angle_kernel_loop(Z, X), atol=1e-12, rtol=0)
    Zb, Xb = add_bias(Z), add_bias(X)
    assert np.allclose(cn.ntk_gram(X, Z, bias=True), angle_kernel_loop(Zb, Xb), atol=1e-12)
    K = cn.ntk_gram(X)
    assert np.array_equal(K, K.T)
    assert np.allclose(np.diag(K), 0.5 * np.sum(X * X, axis=1), rtol=1e-15, atol=0)


def test_ntk_gram_near_parallel_and_zero_rows():
    x = np.array([[1.0, 2.0, 3.0]])
    X = np.vstack([x, x * (1 + 1e-13), -x, np.zeros((1, 3)), x + 1e-9])
    K = cn.ntk_gram(X)
    sq = float(np.sum(x * x))
    assert K[0, 1] == pytest.approx(0.5 * sq * (1 + 1e-13), rel=1e-14)  # θ = 0 exactly
    assert abs(K[0, 2]) <= 1e-15 * sq  # θ = π: no shared half-space
    assert np.all(K[3] == 0) and np.all(K[:, 3] == 0)
    # a tiny angle is resolved to first order, not lost to arccos(1 − ε) ≈ √ε
    u, v = X[0] / np.linalg.norm(X[0]), X[4] / np.linalg.norm(X[4])
    theta = 2 * np.arctan2(np.linalg.norm(u - v), np.linalg.norm(u + v))
    assert K[0, 4] == pytest.approx(float(X[0] @ X[4]) * (np.pi - theta) / (2 * np.pi), rel=1e-15)


def test_bad_inputs_are_named():
    with pytest.raises(cn.InvalidInputError, match="Z"):
        cn.ntk_gram(np.ones((3, 2)), np.ones((2, 3)))
    with pytest.raises(cn.InvalidInputError, match="width"):
        cn.empirical_ntk(np.ones((3, 2)), 0)
    with pytest.raises(cn.InvalidInputError, match="exactly one"):
        cn.empirical_ntk(np.ones((3, 2)))


# ---------------------------------------------------------------------------
# C1: Monte Carlo — the width-N empirical NTK and its N^{-1/2} convergence
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("bias", [False, True])
def test_empirical_ntk_is_the_frequency_weighted_pattern_sum(bias):
    X = np.random.default_rng(6).standard_normal((20, 4))
    Xb = add_bias(X) if bias else X
    pats = cn.sample_patterns(Xb, 3000, seed=7)
    K_freq = masked_gram(Xb, pats.masks, pats.frequencies)
    assert np.max(np.abs(cn.empirical_ntk(X, 3000, seed=7, bias=bias) - K_freq)) <= 1e-12
    G = np.random.default_rng(1).standard_normal((Xb.shape[1], 500))
    from_gates = cn.patterns_from_gates(Xb, G)
    assert np.max(np.abs(cn.empirical_ntk(Xb, gates=G)
                         - masked_gram(Xb, from_gates.masks, from_gates.frequencies))) <= 1e-12
    if bias:  # frequencies are counts/draws: the zero pattern's share is not given away
        assert pats.frequencies.sum() < 1.0


@pytest.mark.parametrize("bias", [False, True])
def test_monte_carlo_ntk_converges_at_rate_one_half(bias):
    rng = np.random.default_rng(8)
    X = rng.standard_normal((25, 5))
    K = cn.ntk_gram(X, bias=bias)
    widths = np.array([250, 1000, 4000, 16000, 64000])
    errors = []
    for N in widths:
        e = [np.linalg.norm(cn.empirical_ntk(X, int(N), seed=s, bias=bias) - K)
             for s in range(6)]
        errors.append(np.sqrt(np.mean(np.square(e))))
    slope = np.polyfit(np.log(widths), np.log(errors), 1)[0]
    assert -0.6 <= slope <= -0.4, slope


def test_monte_carlo_standard_errors_cover_the_error():
    rng = np.random.default_rng(9)
    X, Z = rng.standard_normal((30, 6)), rng.standard_normal((10, 6))
    for A, K in ((None, cn.ntk_gram(X)), (Z, cn.ntk_gram(X, Z))):
        K_mc, se = cn.empirical_ntk(X, 20000, seed=3, Z=A, return_se=True)
        covered = np.abs(K_mc - K) <= 3 * se + 1e-12
        assert covered.mean() >= 0.95


def test_pattern_frequencies_match_exact_probabilities_within_standard_errors():
    X = np.random.default_rng(10).standard_normal((10, 2))
    exact = cn.enumerate_patterns(X)
    sampled = cn.sample_patterns(X, 200_000, seed=11)
    where = {exact.masks[:, i].tobytes(): i for i in range(exact.P)}
    idx = np.array([where[sampled.masks[:, j].tobytes()] for j in range(sampled.P)])
    f, se = sampled.frequencies, sampled.standard_errors
    p = exact.probabilities[idx]
    assert np.all(np.abs(f - p) <= 5 * np.sqrt(p * (1 - p) / sampled.draws))
    assert np.allclose(se, np.sqrt(p * (1 - p) / sampled.draws), rtol=0.05)
    w, w_se = cn.ntk_weights(sampled)
    assert np.array_equal(w, f) and np.array_equal(w_se, se)
    w, w_se = cn.ntk_weights(exact)
    assert np.array_equal(w, exact.probabilities) and not w_se.any()


def test_enumerated_patterns_in_d3_get_monte_carlo_weights():
    X = np.random.default_rng(12).standard_normal((8, 3))
    pats = cn.enumerate_patterns(X)
    assert pats.probabilities is None
    with pytest.raises(cn.InvalidInputError, match="pass X"):
        cn.ntk_weights(pats)
    p, se = cn.ntk_weights(pats, X, draws=200_000, seed=1)
    assert p.sum() == pytest.approx(1.0, abs=1e-12)  # no bias: no zero pattern
    K = cn.ntk_gram(X)
    assert np.linalg.norm(masked_gram(X, pats.masks, p) - K) <= 0.01 * np.linalg.norm(K)


# ---------------------------------------------------------------------------
# NTK-weighted kernel regression (the "ntk" formulation)
# ---------------------------------------------------------------------------


def independent_ridge_value(K, y, mu):
    return 0.5 * mu * float(y @ np.linalg.solve(K + mu * np.eye(len(y)), y))


def test_ntk_regression_with_all_patterns_is_analytic_ntk_ridge():
    rng = np.random.default_rng(13)
    X, y = rng.standard_normal((25, 2)), rng.standard_normal(25)
    for mu in (0.1, 1.0, 10.0):
        sol = cn.solve("ntk", X, y, patterns="all", mu=mu)
        assert sol.certified and sol.scope == "all"
        assert sol.objective == pytest.approx(independent_ridge_value(cn.ntk_gram(X), y, mu),
                                              rel=1e-12)


def test_ntk_regression_with_bias_uses_unrenormalised_probabilities():
    rng = np.random.default_rng(14)
    x, y = rng.standard_normal((20, 1)), rng.standard_normal(20)
    sol = cn.solve("ntk", x, y, patterns="all", bias=True, mu=0.5)
    value = independent_ridge_value(cn.ntk_gram(x, bias=True), y, 0.5)
    assert sol.objective == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize("c, bias", [(1, False), (3, True)])
def test_cholesky_and_cvxpy_agree_and_certify(c, bias):
    ds = cn.planted_relu(50, 3, outputs=c, seed=15)
    closed = cn.solve("ntk", ds.X, ds.y, patterns=30, bias=bias, mu_ratio=0.05)
    ipm = cn.solve("ntk", ds.X, ds.y, patterns=30, bias=bias, mu_ratio=0.05, method="ipm")
    assert closed.reg_name == "mu" and closed.method == "cholesky" and ipm.method == "ipm"
    assert closed.certified and ipm.certified
    assert abs(closed.certificate.relative_gap) <= 1e-12
    assert ipm.objective == pytest.approx(closed.objective, rel=1e-7)
    assert closed.info["closed_form_objective"] == pytest.approx(closed.objective, rel=1e-12)
    W_gap = np.linalg.norm(ipm.weights["W"] - closed.weights["W"])
    assert W_gap <= 1e-3 * np.linalg.norm(closed.weights["W"])


def test_ntk_predictions_use_the_same_pattern_weights():
    rng = np.random.default_rng(16)
    ds = cn.planted_relu(40, 3, seed=16)
    Z = rng.standard_normal((7, 3))
    sol = cn.solve("ntk", ds.X, ds.y, patterns=50, bias=True, mu=2.0)
    data = prepare(ds.X, ds.y, patterns=50, bias=True)
    p = sol.weights["p"]
    _, alpha = cn.kernel_ridge(data.X, data.Y, data.M, p, 2.0)
    # training points: K_p α = y − μα; new points: cross kernel with gates on the new points
    assert np.allclose(sol.predict(ds.X), ds.y - 2.0 * alpha[:, 0], atol=1e-10)
    Zb = add_bias(Z)
    cross = masked_gram(data.X, data.M, p, Z=Zb, MZ=data.patterns.masks_for(Zb))
    assert np.allclose(sol.predict(Z), cross @ alpha[:, 0], atol=1e-10)
    assert sol.network.neurons == data.P  # kernel regression is dense: nothing pruned


def test_ntk_certificate_detects_a_foreign_kernel_or_bad_weights():
    ds = cn.planted_relu(30, 3, seed=17)
    sol = cn.solve("ntk", ds.X, ds.y, patterns=20, mu=1.0)
    data = prepare(ds.X, ds.y, patterns=20)
    form = cn.REGISTRY["ntk"]
    forged = dict(sol.weights, p=sol.weights["p"] * 1.01)
    cert, _ = form.certify(data, 1.0, forged)
    assert not cert.certified and "p_matches_patterns" in cert.failed
    shaken = dict(sol.weights, W=sol.weights["W"] * 1.05)
    cert, _ = form.certify(data, 1.0, shaken)
    assert cert.gap > 0 and not cert.certified
