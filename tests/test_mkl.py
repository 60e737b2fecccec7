"""Simplex MKL (docs/math/mkl.md): primal, Lanckriet dual and closed-form inner problem agree;
the exact λ ↔ μ map to the gated-ReLU group lasso holds both ways; NTK ≥ MKL (C2)."""

from __future__ import annotations

import numpy as np
import pytest
from builders import planted_problem
from hypothesis import given, settings
from hypothesis import strategies as st

import convexnn as cn
from convexnn.formulations.mkl import build_primal, mkl_dual_value, mkl_objective
from convexnn.formulations.ntk import (
    build_kernel_ridge,
    kernel_ridge_certificate,
    kernel_ridge_objective,
)
from convexnn.kernels import kernel_ridge_weights
from convexnn.ops import group_norms

PROBLEMS = {
    "sampled": dict(n=50, d=4, P=40, c=1, bias=False, seed=1),
    "bias": dict(n=40, d=3, P=30, c=1, bias=True, seed=2),
    "multi": dict(n=40, d=3, P=25, c=2, bias=False, seed=3),
    "all_d2": dict(n=20, d=2, P="all", c=1, bias=False, seed=4),
}


def problem(name):
    spec = PROBLEMS[name]
    ds, data = planted_problem(spec)
    return ds, data, spec


class _Dual:
    def __init__(self, Z, s):
        self.Z, self.s = Z, s


def solve_dual(data, mu):
    """The Lanckriet dual max ⟨Y, Z⟩ − ½||Z||² − s²/(2μ) s.t. ||Xᵀ D_i Z||_F ≤ s, written here
    from the raw arrays (masks recomputed from the gates)."""
    import cvxpy as cp

    X, Y = np.asarray(data.X, dtype=float), np.asarray(data.Y, dtype=float)
    M = X @ data.patterns.gates >= 0
    assert np.array_equal(M, data.M)
    Z, s = cp.Variable(Y.shape), cp.Variable()
    cons = [cp.norm(X.T @ cp.multiply(M[:, [i]].astype(float), Z), "fro") <= s
            for i in range(M.shape[1])]
    prob = cp.Problem(cp.Maximize(cp.sum(cp.multiply(Y, Z)) - 0.5 * cp.sum_squares(Z)
                                  - cp.square(s) / (2 * mu)), cons)
    prob.solve(solver="CLARABEL")
    return prob.value, _Dual(Z, s)


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_primal_dual_and_closed_form_inner_agree(name):
    ds, data, spec = problem(name)
    mu = 0.05 * cn.REGISTRY["mkl"].reg_max(data)
    sol = cn.solve("mkl", ds.X, ds.y, patterns=data.patterns, bias=spec["bias"], mu=mu)
    assert sol.certified and sol.reg_name == "mu" and sol.reg == mu
    assert sol.certificate.checks["eta_simplex"] <= 1e-7
    dual_value, dual = solve_dual(data, mu)
    assert dual_value == pytest.approx(sol.objective, rel=1e-6)
    # the optimal kernel's closed-form ridge value is the MKL optimum
    J, alpha = cn.kernel_ridge(data.X, data.Y, data.M, sol.weights["eta"], mu)
    assert J == pytest.approx(sol.objective, rel=1e-6)
    # at the optimum the Lanckriet z is the residual μα and s² = max_i ||Xᵀ D_i z||² = λ²
    assert np.linalg.norm(dual.Z.value - mu * alpha) <= 1e-3 * np.linalg.norm(mu * alpha)
    lam = cn.mu_to_lam(mu, sol)
    assert float(dual.s.value) == pytest.approx(lam, rel=1e-4)


def test_inner_cvxpy_ridge_equals_closed_form_for_any_eta():
    ds, data, _ = problem("sampled")
    program = build_kernel_ridge(data.X, data.Y, data.M)
    rng = np.random.default_rng(0)
    for _ in range(3):  # one build, three re-solves with new parameter values (DPP)
        eta = rng.dirichlet(np.ones(data.P))
        eta[rng.random(data.P) < 0.3] = 0.0  # zero weights are allowed
        mu = 10.0 ** rng.uniform(-1, 1)
        program.set(eta, mu)
        program.problem.solve(solver="CLARABEL")
        J, alpha = cn.kernel_ridge(data.X, data.Y, data.M, eta, mu)
        assert program.problem.value == pytest.approx(J, rel=1e-7)
        W = program.weights()
        assert kernel_ridge_objective(data.X, data.Y, data.M, W, eta, mu) == pytest.approx(
            J, rel=1e-7)
        assert np.all(group_norms(W)[eta == 0] == 0)
        # the closed-form weights certify with an essentially zero gap
        W_cf = kernel_ridge_weights(data.X, data.M, eta, alpha)
        cert, Z = kernel_ridge_certificate(data.X, data.Y, data.M, W_cf, eta, mu)
        assert cert.certified and abs(cert.relative_gap) <= 1e-12
        assert cert.objective == pytest.approx(J, rel=1e-12)


def test_joint_primal_is_dpp_and_resolves_along_a_mu_path():
    ds, data, _ = problem("sampled")
    program = build_primal(data.X, data.Y, data.M)
    assert program.problem.is_dcp(dpp=True)
    values = []
    for mu in (0.5, 2.0, 8.0):
        program.mu.value = mu
        program.problem.solve(solver="CLARABEL")
        values.append(program.problem.value)
        assert program.problem.value == pytest.approx(solve_dual(data, mu)[0], rel=1e-6)
    assert values[0] < values[1] < values[2]  # p_MKL increases with μ


@pytest.mark.parametrize("name", ["sampled", "multi", "bias"])
def test_lam_mu_map_both_ways(name):
    ds, data, spec = problem(name)
    kw = dict(patterns=data.patterns, bias=spec["bias"])
    # λ → μ: the group-lasso optimum at λ solves MKL at μ = λ/Σ||w_i*||
    gated = cn.solve("gated_relu", ds.X, ds.y, lam_ratio=0.1, **kw)
    mu = cn.lam_to_mu(gated.lam, gated)
    mkl = cn.solve("mkl", ds.X, ds.y, mu=mu, **kw)
    assert cn.mu_to_lam(mu, mkl) == pytest.approx(gated.lam, rel=1e-5)
    assert mkl.objective == pytest.approx(
        cn.mkl_value_from_gated(gated.objective, gated.lam, mu), rel=1e-6)
    Wg, Wm = gated.weights["W"], mkl.weights["W"]
    assert np.linalg.norm(Wg - Wm) <= 1e-3 * np.linalg.norm(Wg)
    eta_star = group_norms(Wg) / group_norms(Wg).sum()
    assert np.max(np.abs(mkl.weights["eta"] - eta_star)) <= 1e-4
    # μ → λ: the MKL optimum at μ' solves the group lasso at λ' = μ' Σ||w_i||
    mu2 = 3.0 * mu
    mkl2 = cn.solve("mkl", ds.X, ds.y, mu=mu2, **kw)
    lam2 = cn.mu_to_lam(mu2, mkl2)
    gated2 = cn.solve("gated_relu", ds.X, ds.y, lam=lam2, **kw)
    assert cn.lam_to_mu(lam2, gated2) == pytest.approx(mu2, rel=1e-5)
    assert mkl2.objective == pytest.approx(gated2.objective - lam2**2 / (2 * mu2), rel=1e-6)
    # and the MKL network is the gated-ReLU network: same training objective at λ'
    # (equal to the convex objective for one output; SVD-split blocks for several)
    net_value = mkl2.network.objective(ds.X, ds.y, lam2)
    assert net_value == pytest.approx(gated2.network.objective(ds.X, ds.y, lam2), rel=1e-6)
    if spec["c"] == 1:
        assert net_value == pytest.approx(gated2.objective, rel=1e-6)


def test_map_refuses_the_zero_solution():
    with pytest.raises(cn.InvalidInputError, match="μ = ∞"):
        cn.lam_to_mu(1.0, np.zeros((3, 2)))


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_C2_ntk_never_beats_the_optimal_mkl_kernel(name):
    ds, data, spec = problem(name)
    kw = dict(patterns=data.patterns, bias=spec["bias"])
    for ratio in (0.01, 0.1, 1.0):
        ntk = cn.solve("ntk", ds.X, ds.y, mu_ratio=ratio, **kw)
        mkl = cn.solve("mkl", ds.X, ds.y, mu_ratio=ratio, **kw)
        assert ntk.reg == mkl.reg
        assert ntk.certified and mkl.certified
        # J(p) ≥ MKL primal value ≥ p_MKL(μ); the NTK is one point of the simplex
        assert ntk.objective >= mkl.objective
        # and the gap is substantial, not rounding
        assert ntk.objective >= 1.01 * mkl.objective


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), mu=st.floats(0.05, 20.0))
def test_weak_duality_for_arbitrary_points(seed, mu):
    rng = np.random.default_rng(seed)
    X, y = rng.standard_normal((15, 3)), rng.standard_normal(15)
    pats = cn.sample_patterns(X, 10, seed=seed)
    Y, M = y[:, None], pats.masks
    W = rng.standard_normal((pats.P, 3, 1)) * rng.random()
    Z = rng.standard_normal((15, 1))
    upper = mkl_objective(X, Y, M, W, mu)
    lower, _ = mkl_dual_value(X, Y, M, Z, mu)
    assert lower <= upper + 1e-12 * abs(upper)
    eta = rng.dirichlet(np.ones(pats.P))
    J, _ = cn.kernel_ridge(X, Y, M, eta, mu)
    # J(η) for any η ∈ Δ is an upper bound on p_MKL, the dual value a lower one
    assert lower <= J + 1e-12 * J
    cert, _ = kernel_ridge_certificate(X, Y, M, W, eta, mu)
    assert cert.gap >= -1e-12 * abs(cert.objective)
    assert cert.objective >= J - 1e-12 * J


def test_mkl_reweight_method_matches_ipm():
    ds, data, _ = problem("sampled")
    ipm = cn.solve("mkl", ds.X, ds.y, patterns=data.patterns, mu=2.0)
    rw = cn.solve("mkl", ds.X, ds.y, patterns=data.patterns, mu=2.0, method="reweight")
    assert rw.method == "reweight" and rw.solver == "numpy" and rw.certified
    assert rw.objective == pytest.approx(ipm.objective, rel=1e-6)


def test_mu_and_lam_arguments():
    ds, data, _ = problem("sampled")
    a = cn.solve("mkl", ds.X, ds.y, patterns=data.patterns, mu=1.5)
    b = cn.solve("mkl", ds.X, ds.y, patterns=data.patterns, lam=1.5)
    assert a.reg == b.reg == 1.5 and a.objective == pytest.approx(b.objective, rel=1e-9)
    with pytest.raises(cn.InvalidInputError, match="not both"):
        cn.solve("mkl", ds.X, ds.y, patterns=data.patterns, mu=1.0, lam=1.0)
    with pytest.raises(cn.InvalidInputError, match="mu_ratio"):
        cn.solve("ntk", ds.X, ds.y, patterns=data.patterns, mu_ratio=-1.0)


@pytest.mark.parametrize("x_scale, y_scale", [(1e-6, 1.0), (1e6, 1.0), (1.0, 1e-3),
                                              (1.0, 1e6)])
def test_ipm_certified_at_any_data_scale(x_scale, y_scale):
    # homogeneity: (tX, uy) at μ·t² has the optimum u²·p_MKL(μ); on badly scaled data the
    # interior point method used to fail, stop early, or call the problem infeasible
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((12, 3)), rng.standard_normal(12)
    ref = cn.solve("mkl", X, y, patterns=8, mu=0.5, method="ipm")
    sol = cn.solve("mkl", X * x_scale, y * y_scale, patterns=8, mu=0.5 * x_scale**2,
                   method="ipm")
    assert ref.certificate.certified and sol.certificate.certified
    assert sol.objective == pytest.approx(ref.objective * y_scale**2, rel=1e-5)
