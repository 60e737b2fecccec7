"""Iterative reweighting (docs/math/reweighting.md, C3): monotone from the NTK to the certified
exact optimum."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from builders import planted_problem

import convexnn as cn
from convexnn.formulations.mkl import build_dual
from convexnn.methods.reweight import FLUSH_RATIO, HISTORY_COLUMNS
from convexnn.ops import group_norms
from convexnn.problem import prepare

CASES = {
    "planted": dict(n=60, d=4, P=40, c=1, bias=False, seed=3),
    "bias": dict(n=50, d=3, P=30, c=1, bias=True, seed=5),
    "multi": dict(n=40, d=3, P=25, c=2, bias=False, seed=6),
    "all_d2": dict(n=25, d=2, P="all", c=1, bias=False, seed=7),
}


def case(name):
    spec = CASES[name]
    ds, data = planted_problem(spec)
    return ds, dict(patterns=data.patterns, bias=spec["bias"]), data


def monotone(values):
    v = np.asarray(values)
    return bool(np.all(np.diff(v) <= 1e-12 * np.abs(v[:-1])))


@pytest.mark.parametrize("finish", ["none", "gated"])
@pytest.mark.parametrize("name", list(CASES))
def test_C3_mu_mode_from_ntk_reaches_the_gated_optimum(name, finish):
    ds, kw, data = case(name)
    gated = cn.solve("gated_relu", ds.X, ds.y, lam_ratio=0.1, **kw)
    mu = cn.lam_to_mu(gated.lam, gated)
    res = cn.reweight(ds.X, ds.y, mu=mu, start="ntk", tol=1e-6, finish=finish, **kw)
    h = res.history
    assert isinstance(h, pd.DataFrame) and tuple(h.columns) == HISTORY_COLUMNS
    assert res.converged and res.certificate.certified and res.certificate.relative_gap <= 1e-6
    assert h["gap"].iloc[-1] <= 1e-6 and len(h) == res.iterations + 1 + res.finish_steps
    assert (h["stage"] == "gated").sum() == res.finish_steps
    assert res.finished_by == ("reweighting" if finish == "none" else "gated")
    assert monotone(h["objective"]) and monotone(-h["lower_bound"])
    # the first row is NTK kernel regression: J(p)
    ntk = cn.solve("ntk", ds.X, ds.y, mu=mu, **kw)
    assert h["objective"].iloc[0] == pytest.approx(ntk.objective, rel=1e-12)
    # every lower bound lies below the MKL optimum of an independent cvxpy dual solve
    dual = build_dual(data.X, data.Y, data.M)
    dual.inv_mu.value = 1.0 / mu
    dual.problem.solve(solver="CLARABEL")
    assert h["lower_bound"].max() <= dual.problem.value * (1 + 1e-8)
    assert h["objective"].min() >= dual.problem.value * (1 - 1e-8)
    # p_MKL(μ) = p_G(λ) − λ²/(2μ)
    p_mkl = cn.mkl_value_from_gated(gated.objective, gated.lam, mu)
    assert h["objective"].iloc[-1] == pytest.approx(p_mkl, rel=2e-6)
    # the map returns λ, and the gated-ReLU solution at that λ is the optimum there
    assert res.lam == pytest.approx(gated.lam, rel=1e-5)
    sol = res.solution
    assert sol.certified and sol.reg == res.lam and sol.network is not None
    at_lam = cn.solve("gated_relu", ds.X, ds.y, lam=res.lam, **kw)
    assert sol.objective == pytest.approx(at_lam.objective, rel=1e-6)
    # the optimal kernel weights are ||w_i*||/Σ||w_j*|| of the gated solve
    norms = group_norms(gated.weights["W"])
    assert np.max(np.abs(res.eta - norms / norms.sum())) <= 1e-4
    assert res.eta.sum() == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("finish", ["none", "gated"])
@pytest.mark.parametrize("name", ["planted", "multi"])
def test_C3_lam_mode_solves_the_group_lasso_at_the_given_lam(name, finish):
    ds, kw, data = case(name)
    gated = cn.solve("gated_relu", ds.X, ds.y, lam_ratio=0.1, **kw)
    res = cn.reweight(ds.X, ds.y, lam=gated.lam, tol=1e-6, finish=finish, **kw)
    assert res.mode == "lam" and res.lam == gated.lam and res.converged
    assert monotone(res.history["objective"])
    assert res.certificate is res.solution.certificate and res.solution.certified
    assert res.solution.objective == pytest.approx(gated.objective, rel=1e-6)
    # the μ found on the way is the λ → μ map of the gated solution
    assert res.mu == pytest.approx(cn.lam_to_mu(gated.lam, gated), rel=1e-5)
    # the NTK start is the best multiple of p: better than the unscaled μ-mode start
    assert res.history["objective"].iloc[0] >= gated.objective


@pytest.mark.parametrize("finish", ["none", "gated"])
def test_tight_tolerance_pins_the_optimal_kernel(finish):
    ds, kw, _ = case("planted")
    gated = cn.solve("gated_relu", ds.X, ds.y, lam_ratio=0.1, **kw)
    mu = cn.lam_to_mu(gated.lam, gated)
    res = cn.reweight(ds.X, ds.y, mu=mu, tol=1e-10, finish=finish, **kw)
    assert res.converged and res.solution.certificate.relative_gap <= 1e-10
    norms = group_norms(gated.weights["W"])
    eta_star = norms / norms.sum()
    # now limited by the accuracy of the interior-point reference (about 1e-8 in the gap)
    assert np.max(np.abs(res.eta - eta_star)) <= 5e-6
    assert res.lam == pytest.approx(gated.lam, rel=1e-7)
    # support: the active patterns of both solutions coincide
    big = eta_star > 1e-4
    assert np.array_equal(res.eta > 1e-4, big)


def test_solve_reweight_is_a_certified_gated_solution():
    ds, kw, _ = case("bias")
    sol = cn.solve("reweight", ds.X, ds.y, lam_ratio=0.2, **kw)
    ref = cn.solve("gated_relu", ds.X, ds.y, lam_ratio=0.2, **kw)
    assert sol.formulation == "reweight" and sol.method == "reweight" and sol.solver == "numpy"
    assert sol.reg_name == "lam" and sol.reg == ref.reg
    assert sol.certified and sol.objective == pytest.approx(ref.objective, rel=1e-6)
    assert np.allclose(sol.predict(ds.X), ref.predict(ds.X), atol=1e-2 * np.std(ds.y))
    # the saved arrays alone re-derive the certificate
    data = prepare(ds.X, ds.y, **kw)
    cert, _ = cn.REGISTRY["reweight"].certify(data, sol.reg, sol.weights, sol.dual)
    assert cert.certified and cert.objective == pytest.approx(sol.objective, rel=1e-14)
    with pytest.raises(cn.InvalidInputError, match="allowed"):
        cn.solve("reweight", ds.X, ds.y, lam_ratio=0.2, bogus=1, **kw)


def test_lam_at_or_above_lam_max_gives_the_certified_zero_solution():
    ds, kw, _ = case("planted")
    res = cn.reweight(ds.X, ds.y, lam_ratio=1.0, **kw)
    assert res.converged and res.iterations == 0
    assert not res.weights.any() and res.solution.certified
    assert res.solution.objective == pytest.approx(0.5 * np.sum(ds.y**2), rel=1e-12)


def test_starts_callback_progress_and_max_iter(capsys):
    ds, kw, data = case("planted")
    mu = 2.0
    seen = []

    def stop_at_five(state):
        seen.append(state)
        assert set(state) == {*HISTORY_COLUMNS, "eta"}
        return state["iteration"] >= 5

    res = cn.reweight(ds.X, ds.y, mu=mu, start="uniform", callback=stop_at_five, **kw)
    assert res.status == "stopped" and res.iterations == 5 and len(seen) == 6
    assert res.finish_steps == 0 and res.finished_by == "reweighting"
    assert np.allclose(seen[0]["eta"], 1.0 / data.P)
    capped = cn.reweight(ds.X, ds.y, mu=mu, max_iter=3, progress=True, finish="none", **kw)
    assert capped.status == "max_iter" and capped.iterations == 3 and len(capped.history) == 4
    assert not capped.certificate.certified  # 3 iterations do not reach 1e-6
    # with the gated finish, max_iter caps the reweighting; the finish still certifies
    fin = cn.reweight(ds.X, ds.y, mu=mu, max_iter=3, **kw)
    assert fin.converged and fin.iterations == 3 and fin.finished_by == "gated"
    assert fin.certificate.certified and len(fin.history) == 4 + fin.finish_steps
    given = cn.reweight(ds.X, ds.y, mu=mu, start=np.arange(1.0, data.P + 1), max_iter=2, **kw)
    assert given.start == "given"
    for bad in ("warm", np.ones(3), -np.ones(data.P), np.zeros(data.P)):
        with pytest.raises(cn.InvalidInputError, match="start"):
            cn.reweight(ds.X, ds.y, mu=mu, start=bad, **kw)
    with pytest.raises(cn.InvalidInputError, match="not both"):
        cn.reweight(ds.X, ds.y, mu=mu, lam=1.0, **kw)
    with pytest.raises(cn.InvalidInputError, match="max_iter"):
        cn.reweight(ds.X, ds.y, mu=mu, max_iter=-1, **kw)


def test_small_kernel_weights_are_flushed_to_zero():
    """Inactive patterns decay geometrically; they must become exact zeros, not subnormals."""
    ds, kw, _ = case("planted")
    smallest = []

    def watch(state):
        eta = state["eta"]
        pos = eta[eta > 0]
        smallest.append(pos.min() / eta.max())

    res = cn.reweight(ds.X, ds.y, mu=0.05, tol=1e-9, callback=watch, max_iter=4000,
                      finish="none", **kw)
    # without the flush the smallest ratio reaches ~1e-323 (subnormal) on this problem
    assert res.converged and min(smallest) >= FLUSH_RATIO
    assert np.count_nonzero(res.eta == 0) > 0


@pytest.mark.slow
def test_n500_d10_p200_pure_reweighting_certifies():
    """The pure iteration at the size of the performance target (sublinear: minutes).

    The default suite checks this size with the gated finish
    (tests/test_reweight_finish.py::test_n500_d10_p200_gated_finish_certifies).
    """
    ds = cn.planted_relu(500, 10, seed=0)
    pats = cn.sample_patterns(ds.X, 200, seed=0)
    gated = cn.solve("gated_relu", ds.X, ds.y, patterns=pats, lam_ratio=0.1)
    res = cn.reweight(ds.X, ds.y, patterns=pats, lam=gated.lam, finish="none")
    assert res.converged and res.solution.certified and res.finished_by == "reweighting"
    assert res.solution.objective == pytest.approx(gated.objective, rel=1e-6)


def test_zero_targets_give_a_certified_zero_with_eta_on_the_simplex():
    # y = 0: W = 0 is optimal (value 0) with every η of the simplex; the reported η used
    # to be all zeros, failing the eta_simplex check of an exact answer
    X = np.random.default_rng(0).standard_normal((12, 3))
    sol = cn.solve("mkl", X, np.zeros(12), patterns=8, mu=1.0, method="reweight")
    eta = sol.weights["eta"]
    assert sol.certificate.certified and sol.objective == 0.0
    assert eta.min() >= 0 and eta.sum() == pytest.approx(1.0)
