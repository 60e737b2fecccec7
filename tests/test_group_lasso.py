"""The gated-ReLU fast solver (``method="fast"``): optimum, certificate and bounded behaviour.

Truths checked: the optimum of a tight interior-point solve (``method="ipm"``,
``tol=1e-9``) for one, three and ten outputs; a duality gap recomputed here in plain
float64 numpy over every pattern (einsum over the masks — no solver or package code);
the homogeneity of the program (``X → aX``, ``y → sy`` maps ``W → (s/a) W``); the known
optimum ``W = 0`` for ``y = 0``; and that the float32 products inside the solver never
decide a certificate (corrupting them cannot produce a false one).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import convexnn as cn
from convexnn.formulations import get_formulation
from convexnn.formulations.base import SolveOptions
from convexnn.methods import group_lasso
from convexnn.problem import prepare

GATED = get_formulation("gated_relu")
# the tight reference solves may end 'optimal_inaccurate'; the gaps below decide
pytestmark = pytest.mark.filterwarnings("ignore::convexnn.solvers.InaccurateSolutionWarning")


def independent_gap(X, Y, M, W, lam):
    """Primal value and relative gap of the residual-scaled dual point, over every pattern
    (docs/math/gated_relu.md), in plain numpy."""
    Y = np.asarray(Y, dtype=np.float64).reshape(X.shape[0], -1)
    P, d, c = M.shape[1], X.shape[1], Y.shape[1]
    W = np.asarray(W, dtype=np.float64).reshape(P, d, c)
    Mf = M.astype(np.float64)
    R = Y - np.einsum("np,nd,pdc->nc", Mf, X, W)
    G = np.einsum("np,nd,nc->pdc", Mf, X, R)
    top = float(np.sqrt(np.einsum("pdc,pdc->p", G, G).max()))
    primal = 0.5 * float(np.sum(R * R)) + lam * float(np.sqrt(np.einsum("pdc,pdc->p", W, W)).sum())
    yr, rr = float(np.sum(Y * R)), float(np.sum(R * R))
    s = min(lam / top if top > 0 else math.inf, yr / rr if rr > 0 else 0.0)
    s = max(s, 0.0)
    dual = s * yr - 0.5 * s * s * rr
    gap = primal - dual
    return primal, (gap / abs(primal) if primal != 0 else (0.0 if gap == 0 else math.inf))


def problem(n, d, P, c, seed=0):
    """A ReLU teacher with c outputs and noise."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    Y = np.maximum(X @ rng.standard_normal((d, 3)), 0) @ rng.standard_normal((3, c))
    Y += 0.1 * rng.standard_normal((n, c))
    return X, (Y[:, 0] if c == 1 else Y), cn.sample_patterns(X, P, seed=seed)


def classes(n, d, P, c, seed=0):
    """±1 one-hot targets of c classes from a planted ReLU rule, features with a ones
    column (a small stand-in for a UCI classification set)."""
    rng = np.random.default_rng(seed)
    X = np.hstack([rng.standard_normal((n, d - 1)), np.ones((n, 1))])
    scores = np.maximum(X @ rng.standard_normal((d, 2 * c)), 0) @ rng.standard_normal((2 * c, c))
    labels = (scores + 0.5 * rng.standard_normal((n, c))).argmax(axis=1)
    Y = -np.ones((n, c))
    Y[np.arange(n), labels] = 1.0
    return X, Y, cn.sample_patterns(X, P, seed=seed)


def assert_same_optimum(X, y, pats, lam, fast):
    M = pats.masks
    Y = np.asarray(y, dtype=np.float64).reshape(X.shape[0], -1)
    c = Y.shape[1]
    ref = cn.solve("gated_relu", X, y, patterns=pats, lam=lam, method="ipm", tol=1e-9)
    primal, rel = independent_gap(X, Y, M, fast.weights["W"], lam)
    p_ref, rel_ref = independent_gap(X, Y, M, ref.weights["W"], lam)
    assert rel <= 1e-6 and rel_ref <= 1e-6
    # the package's certificate is the independent one
    assert fast.certificate.relative_gap == pytest.approx(rel, abs=1e-9)
    # both certified: their values bracket the optimum within the gaps
    assert abs(primal - p_ref) <= 2e-6 * abs(p_ref)
    # the fit (hence the residual, the dual optimum) is unique
    Mf = M.astype(np.float64)
    fit = np.einsum("np,nd,pdc->nc", Mf, X, fast.weights["W"].reshape(M.shape[1], -1, c))
    fit_ref = np.einsum("np,nd,pdc->nc", Mf, X, ref.weights["W"].reshape(M.shape[1], -1, c))
    assert np.linalg.norm(fit - fit_ref) <= 1e-2 * max(np.linalg.norm(fit_ref), 1e-12)


@pytest.mark.parametrize("c", [1, 3])
@pytest.mark.parametrize("ratio", [0.3, 0.05, 0.005])
def test_fast_matches_a_tight_interior_point_solve(c, ratio):
    X, y, pats = problem(60, 4, 25, c)
    lam = ratio * GATED.reg_max(prepare(X, y, patterns=pats))
    fast = cn.solve("gated_relu", X, y, patterns=pats, lam=lam, method="fast")
    assert fast.status == "converged" and fast.certified and fast.solver == "numpy"
    assert_same_optimum(X, y, pats, lam, fast)


@pytest.mark.parametrize("ratio", [0.1, 0.01])
def test_ten_classes_match_a_tight_interior_point_solve(ratio):
    X, Y, pats = classes(120, 5, 30, 10, seed=1)
    lam = ratio * GATED.reg_max(prepare(X, Y, patterns=pats))
    fast = cn.solve("gated_relu", X, Y, patterns=pats, lam=lam, method="fast")
    assert fast.certified and fast.info["newton_steps"] > 0
    assert_same_optimum(X, Y, pats, lam, fast)


def test_exact_newton_and_conjugate_gradients_are_both_exercised():
    """Small n: the exact (n × n) Newton step; large n: conjugate gradients — same optimum
    either way (the flop model only chooses how the Newton system is solved)."""
    X, y, pats = problem(100, 6, 80, 1, seed=4)
    lam = 0.02 * GATED.reg_max(prepare(X, y, patterns=pats))
    sol = cn.solve("gated_relu", X, y, patterns=pats, lam=lam, method="fast")
    assert sol.certified and sol.info["dense_newton_steps"] > 0
    assert independent_gap(X, y, pats.masks, sol.weights["W"], lam)[1] <= 1e-6
    X, y, pats = problem(5000, 8, 40, 1, seed=4)
    lam = 0.01 * GATED.reg_max(prepare(X, y, patterns=pats))
    big = cn.solve("gated_relu", X, y, patterns=pats, lam=lam, method="fast")
    assert big.certified and big.info["cg_iterations"] > 0
    assert independent_gap(X, y, pats.masks, big.weights["W"], lam)[1] <= 1e-6


@pytest.mark.parametrize("xs, ys", [(1e100, 1.0), (1.0, 1e-10), (1e-50, 1e50), (3.7, 0.3)])
def test_badly_scaled_data_give_the_same_weights_up_to_scale(xs, ys):
    X, y, pats = problem(50, 3, 20, 1, seed=1)
    ref = cn.solve("gated_relu", X, y, patterns=pats, lam_ratio=0.02, method="fast")
    sol = cn.solve("gated_relu", X * xs, y * ys, patterns=pats, lam_ratio=0.02, method="fast")
    assert ref.certified and sol.certified
    assert sol.lam == pytest.approx(ref.lam * xs * ys, rel=1e-12)
    W, W_ref = sol.weights["W"] * (xs / ys), ref.weights["W"]
    assert np.allclose(W, W_ref, rtol=1e-5, atol=1e-8 * np.abs(W_ref).max())
    assert sol.certificate.relative_gap == pytest.approx(ref.certificate.relative_gap,
                                                         abs=1e-9)


def test_zero_targets_give_zero_weights():
    X, _, pats = problem(40, 3, 10, 2)
    data = prepare(X, np.zeros((40, 2)), patterns=pats)
    sol = group_lasso.run(GATED, data, 1.0, SolveOptions(method="fast"))
    assert sol.certified and sol.status == "converged" and not sol.weights["W"].any()
    assert sol.objective == 0.0 and sol.certificate.relative_gap == 0.0


def test_duplicate_rows_with_opposite_targets_are_certified():
    rng = np.random.default_rng(3)
    X0, X1 = rng.standard_normal((30, 4)), rng.standard_normal((20, 4))
    X = np.vstack([X0, X0, X1])
    y0 = rng.standard_normal(30)
    y = np.concatenate([y0, -y0, np.maximum(X1[:, 0], 0)])
    pats = cn.sample_patterns(X, 30, seed=0)
    lam_max = GATED.reg_max(prepare(X, y, patterns=pats))
    for lam in (0.01 * lam_max, 1e-3):
        sol = cn.solve("gated_relu", X, y, patterns=pats, lam=lam, method="fast")
        assert sol.certified
        assert independent_gap(X, y, pats.masks, sol.weights["W"], lam)[1] <= 1e-6


def test_only_duplicate_rows_end_with_a_status():
    """Every Xᵀ D_i y is zero up to rounding: λ_ratio is refused, and a λ of the order of
    that rounding ends (bounded) with an honest verdict."""
    rng = np.random.default_rng(3)
    X0 = rng.standard_normal((30, 4))
    X = np.vstack([X0, X0])
    y0 = rng.standard_normal(30)
    y = np.concatenate([y0, -y0])
    pats = cn.sample_patterns(X, 30, seed=0)
    with pytest.raises(cn.InvalidInputError, match="orthogonal"):
        cn.solve("gated_relu", X, y, patterns=pats, lam_ratio=0.01, method="fast")
    lam_max = GATED.reg_max(prepare(X, y, patterns=pats))
    assert lam_max <= 1e-13
    sol = cn.solve("gated_relu", X, y, patterns=pats, lam=0.01 * lam_max, method="fast",
                   polish=False)
    assert sol.status in ("converged", "stalled", "max_iter", "numerical_error")
    assert math.isfinite(sol.certificate.relative_gap)
    primal, rel = independent_gap(X, y, pats.masks, sol.weights["W"], sol.lam)
    assert sol.certified == (rel <= 1e-6) or abs(rel - 1e-6) < 1e-9


def test_a_warm_started_path_equals_single_solves_with_three_outputs():
    X, Y, pats = problem(80, 4, 40, 3, seed=5)
    ratios = np.geomspace(1.0, 0.005, 8)
    path = cn.solve_path("gated_relu", X, Y, patterns=pats, lam_ratios=ratios, method="fast")
    assert path.certified
    for sol in path.solutions[::3]:
        single = cn.solve("gated_relu", X, Y, patterns=pats, lam=sol.lam, method="fast")
        assert abs(sol.objective - single.objective) <= 2e-6 * single.objective
        assert independent_gap(X, Y, pats.masks, sol.weights["W"], sol.lam)[1] <= 1e-6


def test_mixed_and_double_precision_agree():
    X, y, pats = problem(300, 6, 80, 1, seed=2)
    lam = 0.02 * GATED.reg_max(prepare(X, y, patterns=pats))
    mixed = cn.solve("gated_relu", X, y, patterns=pats, lam=lam, method="fast",
                     precision="mixed")
    double = cn.solve("gated_relu", X, y, patterns=pats, lam=lam, method="fast",
                      precision="double")
    assert mixed.info["precision"] == "mixed" and double.info["precision"] == "double"
    for sol in (mixed, double):
        assert sol.certified
        assert independent_gap(X, y, pats.masks, sol.weights["W"], lam)[1] <= 1e-6
    assert abs(mixed.objective - double.objective) <= 2e-6 * abs(double.objective)


@pytest.mark.parametrize("error", [1e-3, 0.3])
def test_float32_products_never_decide_a_certificate(monkeypatch, error):
    """Corrupt every fast (float32) product by a relative error: the solve may get slower
    or fail, but what it reports is the float64 certificate of what it returns."""
    from convexnn.methods.group_lasso_ops import SubOperator

    rng = np.random.default_rng(0)
    fwd, adj = SubOperator.fwd, SubOperator.adj

    def noisy(f):
        def g(self, v):
            out = f(self, v)
            return out * (1.0 + error * rng.standard_normal(out.shape))
        return g

    monkeypatch.setattr(SubOperator, "fwd", noisy(fwd))
    monkeypatch.setattr(SubOperator, "adj", noisy(adj))
    X, y, pats = problem(300, 6, 80, 1, seed=2)
    lam = 0.02 * GATED.reg_max(prepare(X, y, patterns=pats))
    sol = cn.solve("gated_relu", X, y, patterns=pats, lam=lam, method="fast",
                   precision="mixed", polish=False, max_iter=3000)
    _, rel = independent_gap(X, y, pats.masks, sol.weights["W"], lam)
    assert sol.certificate.relative_gap == pytest.approx(rel, rel=1e-6, abs=1e-12)
    assert sol.info["solver_relative_gap"] == pytest.approx(rel, rel=1e-6, abs=1e-12)
    assert sol.certified == (rel <= 1e-6)
    if sol.status == "converged":
        assert rel <= 1e-6


def test_max_iter_zero_and_a_stall_are_reported_honestly():
    X, y, pats = problem(80, 4, 30, 1, seed=6)
    sol = cn.solve("gated_relu", X, y, patterns=pats, lam_ratio=0.01, method="fast",
                   max_iter=0, polish=False)
    assert sol.status == "max_iter" and not sol.certified and not sol.weights["W"].any()
    assert sol.info["iterations"] == 0 and sol.info["newton_steps"] == 0
