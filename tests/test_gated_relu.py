"""Gated-ReLU group lasso (docs/math/gated_relu.md): certificates checked against independent
truths."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convexnn as cn
from convexnn.formulations.gated_relu import build_primal, gated_relu_certificate
from convexnn.networks import GatedReLUNetwork
from convexnn.ops import adjoint, design_matrix, forward, group_norms
from convexnn.problem import prepare


def raw_problem(X, y, gates, bias):
    """X (with its bias column), Y (n × c) and the masks 1[X g ≥ 0], in plain numpy."""
    Xb = np.hstack([X, np.ones((X.shape[0], 1))]) if bias else np.asarray(X, dtype=float)
    Y = np.asarray(y, dtype=float).reshape(X.shape[0], -1)
    return Xb, Y, Xb @ gates >= 0


def independent_dual_value(X, Y, M, lam):
    """max ⟨Y, Z⟩ − ½||Z||² s.t. ||Xᵀ D_i Z||_F ≤ λ, written here pattern by pattern."""
    import cvxpy as cp

    Z = cp.Variable(Y.shape)
    cons = [cp.norm(X.T @ cp.multiply(M[:, [i]].astype(float), Z), "fro") <= lam
            for i in range(M.shape[1])]
    prob = cp.Problem(cp.Maximize(cp.sum(cp.multiply(Y, Z)) - 0.5 * cp.sum_squares(Z)), cons)
    prob.solve(solver="CLARABEL")
    return prob.value, Z.value


@pytest.mark.parametrize(
    "n, d, P, c, bias",
    [(40, 3, 20, 1, False), (80, 5, 60, 1, True), (60, 4, 30, 3, False),
     pytest.param(500, 10, 200, 1, False, marks=pytest.mark.slow)],
)
def test_certified_and_equal_to_independent_dual(n, d, P, c, bias):
    ds = cn.planted_relu(n, d, outputs=c, seed=n + d)
    sol = cn.solve("gated_relu", ds.X, ds.y, patterns=P, lam_ratio=0.05, bias=bias)
    cert = sol.certificate
    assert cert.certified and cert.relative_gap <= 1e-6 and cert.scope == "sampled"
    assert cert.gap >= -1e-9 * abs(cert.objective)
    X, Y, M = raw_problem(ds.X, ds.y, sol.patterns.gates, bias)
    np.testing.assert_array_equal(M, sol.patterns.masks)
    value, Z = independent_dual_value(X, Y, M, sol.lam)
    assert abs(value - sol.objective) <= 1e-6 * abs(sol.objective)
    # docs/math/gated_relu.md: at the optimum the dual point is the residual y − ŷ
    W = sol.weights["W"]
    R = Y - sum(M[:, [i]] * (X @ W[i]) for i in range(M.shape[1]))
    assert np.linalg.norm(Z - R) <= 1e-3 * np.linalg.norm(R)


def test_n500_d10_p200_certified_quickly():
    """The issue's largest size, kept in the default suite (about a second)."""
    ds = cn.planted_relu(500, 10, seed=0)
    sol = cn.solve("gated_relu", ds.X, ds.y, patterns=200, lam_ratio=0.1)
    assert sol.certified and sol.certificate.relative_gap <= 1e-6


def test_network_objective_and_predictions(small):
    X, y, pats = small
    sol = cn.solve("gated_relu", X, y, patterns=pats, lam_ratio=0.05)
    W, M = sol.weights["W"], pats.masks
    net = sol.network
    assert isinstance(net, GatedReLUNetwork) and 0 < net.neurons <= pats.P
    # predictions on the training points are Σ D_i X w_i of the (pruned) weights
    kept = np.zeros(pats.P, dtype=bool)
    kept[np.unique(np.flatnonzero(group_norms(W) > 1e-6 * group_norms(W).max()))] = True
    Wp = np.where(kept[:, None, None], W, 0.0)
    assert np.allclose(net.predict(X), forward(X, M, Wp)[:, 0], atol=1e-12)
    # network training objective = convex objective of the pruned weights, exactly
    lam = sol.lam
    convex_pruned = 0.5 * np.sum((forward(X, M, Wp)[:, 0] - y) ** 2) + lam * group_norms(Wp).sum()
    assert net.objective(X, y, lam) == pytest.approx(convex_pruned, rel=1e-12)
    # and pruning moved the objective by a negligible amount
    assert net.objective(X, y, lam) == pytest.approx(sol.objective, rel=1e-8)


def test_network_identity_holds_for_any_weights(rng):
    """L(network) = objective(W) exactly, for arbitrary W (not only optima)."""
    X = rng.standard_normal((30, 3))
    y = rng.standard_normal(30)
    pats = cn.sample_patterns(X, 12, seed=2)
    W = rng.standard_normal((pats.P, 3, 1))
    net = GatedReLUNetwork.from_weights(W, pats.gates, prune=0.0)
    convex = 0.5 * np.sum((forward(X, pats.masks, W)[:, 0] - y) ** 2) + 0.7 * group_norms(W).sum()
    assert net.objective(X, y, 0.7) == pytest.approx(convex, rel=1e-12)


def test_bias_network_predicts_on_raw_features():
    ds = cn.planted_relu(50, 3, seed=9)
    sol = cn.solve("gated_relu", ds.X, ds.y, patterns=30, bias=True, lam_ratio=0.05)
    data = prepare(ds.X, ds.y, patterns=30, bias=True)
    assert np.allclose(sol.predict(ds.X), forward(data.X, data.M, sol.weights["W"])[:, 0],
                       atol=1e-6 * np.abs(ds.y).max())
    Xnew = np.random.default_rng(0).standard_normal((5, 3))
    assert sol.predict(Xnew).shape == (5,)
    with pytest.raises(cn.InvalidInputError, match="3"):
        sol.predict(np.ones((2, 4)))


def test_multi_output_matches_separate_closed_form_structure():
    ds = cn.planted_relu(40, 3, outputs=2, seed=1)
    sol = cn.solve("gated_relu", ds.X, ds.y, patterns=15, lam_ratio=0.1)
    assert sol.certified and sol.outputs == 2 and sol.weights["W"].shape[2] == 2
    assert sol.predict(ds.X).shape == (40, 2)
    # the vector-output network pays the nuclear norm of each block: never below convex
    assert sol.network.objective(ds.X, ds.y, sol.lam) >= sol.objective * (1 - 1e-8)


def test_lambda_max_is_the_zero_threshold(small):
    X, y, pats = small
    form = cn.REGISTRY["gated_relu"]
    data = prepare(X, y, patterns=pats)
    lam_max = form.reg_max(data)
    assert lam_max == pytest.approx(np.max(group_norms(adjoint(X, pats.masks, y[:, None]))))
    above = cn.solve("gated_relu", X, y, patterns=pats, lam=1.001 * lam_max)
    assert np.abs(above.weights["W"]).max() < 1e-4 and above.certified
    # W = 0 at λ_max is certified by the numpy certificate without any solver
    cert, _ = gated_relu_certificate(X, y[:, None], pats.masks, np.zeros((pats.P, 4, 1)),
                                     1.001 * lam_max)
    assert cert.certified and cert.gap == pytest.approx(0.0, abs=1e-9)
    below = cn.solve("gated_relu", X, y, patterns=pats, lam=0.9 * lam_max)
    assert group_norms(below.weights["W"]).max() > 1e-3


def test_orthogonal_design_closed_form():
    """One all-active pattern and orthonormal X: w = (1 − λ/||Xᵀy||)₊ Xᵀy."""
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.standard_normal((20, 3)))
    Q[:, 0] = np.abs(Q[:, 0])  # make a gate with every point active exist: X g ≥ 0
    Q, _ = np.linalg.qr(Q)
    Q *= np.sign(Q[:, :1].sum())
    y = rng.standard_normal(20)
    pats = cn.patterns_from_gates(Q, np.linalg.lstsq(Q, np.ones(20), rcond=None)[0][:, None])
    if not pats.masks.all():
        pytest.skip("construction did not give an all-active gate")
    lam = 0.3 * np.linalg.norm(Q.T @ y)
    sol = cn.solve("gated_relu", Q, y, patterns=pats, lam=lam)
    expected = (1 - lam / np.linalg.norm(Q.T @ y)) * (Q.T @ y)
    assert np.allclose(sol.weights["W"][0, :, 0], expected, atol=1e-7)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), lam=st.floats(0.01, 10.0), scale=st.floats(0.0, 3.0))
def test_certificate_is_a_valid_bound_for_any_point(seed, lam, scale):
    """Weak duality: for ANY W, the numpy dual point is feasible and gap ≥ 0."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((15, 3))
    Y = rng.standard_normal((15, 2))
    pats = cn.sample_patterns(X, 8, seed=seed)
    W = scale * rng.standard_normal((pats.P, 3, 2))
    cert, Z = gated_relu_certificate(X, Y, pats.masks, W, lam)
    assert group_norms(adjoint(X, pats.masks, Z)).max() <= lam * (1 + 1e-12)
    assert cert.gap >= -1e-10 * max(1.0, abs(cert.objective))


def test_ops_match_dense_definitions(rng):
    X = rng.standard_normal((9, 3))
    M = rng.random((9, 5)) > 0.4
    W = rng.standard_normal((5, 3, 2))
    R = rng.standard_normal((9, 2))
    dense = sum(np.diag(M[:, i]) @ X @ W[i] for i in range(5))
    assert np.allclose(forward(X, M, W), dense)
    G = adjoint(X, M, R)
    assert all(np.allclose(G[i], X.T @ np.diag(M[:, i]) @ R) for i in range(5))
    A = design_matrix(X, M).toarray()
    assert np.allclose(A, np.hstack([np.diag(M[:, i]) @ X for i in range(5)]))


def test_built_problem_is_dpp_and_resolves_with_parameter(small):
    X, y, pats = small
    prog = build_primal(X, y[:, None], pats.masks)
    assert prog.problem.is_dcp(dpp=True)
    values = []
    for lam in (5.0, 2.0):
        prog.lam.value = lam
        prog.problem.solve(solver="CLARABEL")
        cert, _ = gated_relu_certificate(X, y[:, None], pats.masks, prog.weights(), lam)
        assert cert.relative_gap < 1e-6
        values.append(cert.objective)
    assert values[1] < values[0]  # smaller λ, smaller optimum


@pytest.mark.parametrize("method", ["ipm", "fast"])
@pytest.mark.parametrize("x_scale, y_scale", [(1e-6, 1.0), (1.0, 1e-3), (1.0, 1e-6),
                                              (1e6, 1.0), (1.0, 1e6)])
def test_certified_at_any_data_scale(method, x_scale, y_scale):
    # homogeneity: (tX, uy) at λ·t·u has the optimum u²·p(λ) at W·u/t; the interior point
    # method used to stop early (or fail) on badly scaled data
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((12, 3)), rng.standard_normal(12)
    ref = cn.solve("gated_relu", X, y, patterns=8, lam=0.3, method=method)
    sol = cn.solve("gated_relu", X * x_scale, y * y_scale, patterns=8,
                   lam=0.3 * x_scale * y_scale, method=method)
    assert ref.certificate.certified and sol.certificate.certified
    assert sol.objective == pytest.approx(ref.objective * y_scale**2, rel=1e-5)


def test_ipm_scales_leave_unit_data_alone():
    from convexnn.problem import ipm_scales

    rng = np.random.default_rng(1)
    data = prepare(rng.standard_normal((30, 4)), rng.standard_normal(30), patterns=5)
    assert ipm_scales(data) == (1.0, 1.0)
    a, s = ipm_scales(prepare(data.X * 1e-6, data.Y * 3e4, patterns=5))
    assert a == 2.0 ** -20 and s == 2.0 ** 15  # powers of two: an exact rescaling


def test_many_outputs_program_with_rotated_cones_is_the_same_program():
    """The interior-point program written with rotated cones per output (the default from
    ``ROTATED_CONES_FROM`` outputs on unless Clarabel factors with Pardiso) reaches the
    optimum of the program with the norms themselves, the independent dual's value and
    the fast method's, certified."""
    from convexnn.formulations import gated_relu
    from convexnn.solvers import factorisation

    c = gated_relu.ROTATED_CONES_FROM + 4
    ds = cn.planted_relu(40, 3, outputs=c, seed=7)
    sol = cn.solve("gated_relu", ds.X, ds.y, patterns=10, lam_ratio=0.05, method="ipm")
    assert sol.certificate.certified and sol.certificate.relative_gap <= 1e-6
    X, Y, M = raw_problem(ds.X, ds.y, sol.patterns.gates, False)
    value, _ = independent_dual_value(X, Y, M, sol.lam)
    assert abs(value - sol.objective) <= 1e-6 * abs(sol.objective)
    default = build_primal(X, Y, M)
    rotated = any(isinstance(con, cp.SOC) for con in default.problem.constraints)
    assert rotated == (factorisation(c) != "mkl")
    prog = build_primal(X, Y, M, rotated=True)
    assert any(isinstance(con, cp.SOC) for con in prog.problem.constraints)
    prog.lam.value = sol.lam
    prog.problem.solve(solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10)
    assert abs(prog.problem.value - sol.objective) <= 1e-6 * abs(sol.objective)
    W = prog.weights()
    cert, _ = gated_relu.gated_relu_certificate(X, Y, M, W, sol.lam)
    assert cert.certified
    plain = cn.solve("gated_relu", ds.X, ds.y, patterns=sol.patterns, lam=sol.lam,
                     method="fast")
    assert abs(plain.objective - sol.objective) <= 1e-6 * abs(sol.objective)
