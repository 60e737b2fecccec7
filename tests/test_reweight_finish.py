"""Reweighting finished through the gated-ReLU fast solver (λ ↔ μ map), BLAS threads.

References are independent of the code under test: the interior-point solution of the
group lasso, the cvxpy duals of the group lasso and of the Lanckriet SOCP solved by
Clarabel, and primal/dual values recomputed here with explicit loops over patterns.
"""

from __future__ import annotations

import dataclasses
import importlib

import numpy as np
import pytest
from threadpoolctl import threadpool_info

import convexnn as cn
from convexnn.formulations import gated_relu as gr
from convexnn.formulations import mkl as mk
from convexnn.methods.reweight import HISTORY_COLUMNS
from convexnn.problem import prepare

rw = importlib.import_module("convexnn.methods.reweight")

CASES = {
    "planted": dict(n=60, d=4, P=40, c=1, seed=3),
    "multi": dict(n=40, d=3, P=25, c=2, seed=6),
}


def case(name):
    spec = CASES[name]
    ds = cn.planted_relu(spec["n"], spec["d"], outputs=spec["c"], seed=spec["seed"])
    data = prepare(ds.X, ds.y, patterns=spec["P"])
    return ds, data


# --- independent values: explicit loops over the patterns -------------------------


def _loop_residual(data, W):
    pred = np.zeros_like(data.Y)
    for i in range(data.P):
        pred += data.M[:, [i]] * (data.X @ W[i])
    return data.Y - pred


def _loop_top(data, Z):
    """max_i ||Xᵀ D_i Z||_F."""
    return max(np.linalg.norm(data.X.T @ (data.M[:, [i]] * Z)) for i in range(data.P))


def _norm_sum(W):
    return sum(np.linalg.norm(W[i]) for i in range(W.shape[0]))


def loop_gated_gap(data, W, lam):
    """Relative gap of the group lasso: primal of W, dual at the scaled residual."""
    R = _loop_residual(data, W)
    primal = 0.5 * np.sum(R * R) + lam * _norm_sum(W)
    Z = R * min(1.0, lam / _loop_top(data, R))
    return (primal - (np.sum(data.Y * Z) - 0.5 * np.sum(Z * Z))) / primal, primal


def loop_mkl_gap(data, W, mu):
    """Relative gap of simplex MKL: primal of W, Lanckriet dual at the best multiple of R."""
    R = _loop_residual(data, W)
    primal = 0.5 * np.sum(R * R) + 0.5 * mu * _norm_sum(W) ** 2
    yz, quad = np.sum(data.Y * R), np.sum(R * R) + _loop_top(data, R) ** 2 / mu
    return (primal - 0.5 * yz * yz / quad) / primal, primal


def gated_dual_value(data, lam):
    dual = gr.build_dual(data.X, data.Y, data.M)
    dual.lam.value = lam
    dual.problem.solve(solver="CLARABEL")
    return dual.problem.value


def mkl_dual_value(data, mu):
    dual = mk.build_dual(data.X, data.Y, data.M)
    dual.inv_mu.value = 1.0 / mu
    dual.problem.solve(solver="CLARABEL")
    return dual.problem.value


def monotone(values, sign=1.0):
    v = sign * np.asarray(values)
    return bool(np.all(np.diff(v) <= 1e-12 * np.abs(v[:-1])))


# --- agreement of the finish with the pure iteration and the gated solve -------------


@pytest.mark.parametrize("name", list(CASES))
def test_lam_mode_finish_agrees_with_pure_iteration_and_gated_solve(name):
    ds, data = case(name)
    kw = dict(patterns=data.patterns)
    ref = cn.solve("gated_relu", ds.X, ds.y, lam_ratio=0.1, method="ipm", **kw)
    lam = ref.lam
    pure = cn.reweight(ds.X, ds.y, lam=lam, finish="none", **kw)
    fin = cn.reweight(ds.X, ds.y, lam=lam, finish="gated", **kw)
    assert pure.finished_by == "reweighting" and fin.finished_by == "gated"
    assert pure.converged and fin.converged and fin.finish_steps == 1
    for res in (pure, fin):
        assert res.solution.objective == pytest.approx(ref.objective, rel=1e-6)
        gap, primal = loop_gated_gap(data, res.solution.weights["W"], lam)
        assert gap <= 1e-6 and primal == pytest.approx(res.solution.objective, rel=1e-12)
    # the finish's own certificate is the gated one, recomputed from its arrays
    assert fin.certificate is fin.solution.certificate
    assert fin.certificate.formulation == "reweight" and fin.certificate.certified
    # an independently solved dual bounds it from below
    dual = gated_dual_value(data, lam)
    assert fin.solution.objective >= dual * (1 - 1e-8)
    assert fin.solution.objective <= dual * (1 + 1e-6)
    # η and μ are read from the certified solution: ||w_i*|| / Σ||w_j*||, λ / Σ||w_j*||
    norms = cn.ops.group_norms(ref.weights["W"])
    assert np.max(np.abs(fin.eta - norms / norms.sum())) <= 1e-5
    assert fin.mu == pytest.approx(cn.lam_to_mu(lam, ref), rel=1e-6)
    assert fin.eta == pytest.approx(cn.ops.group_norms(fin.weights) / _norm_sum(fin.weights))
    h = fin.history
    assert tuple(h.columns) == HISTORY_COLUMNS
    assert h["stage"].iloc[-1] == "gated" and (h["stage"].iloc[:-1] == "reweight").all()
    assert monotone(h["objective"]) and monotone(h["lower_bound"], -1.0)
    assert h["gap"].iloc[-1] == pytest.approx(fin.certificate.relative_gap, rel=1e-6, abs=1e-12)


@pytest.mark.parametrize("name", list(CASES))
def test_mu_mode_finish_finds_the_matching_lam(name):
    ds, data = case(name)
    kw = dict(patterns=data.patterns)
    ref = cn.solve("gated_relu", ds.X, ds.y, lam_ratio=0.1, method="ipm", **kw)
    mu = cn.lam_to_mu(ref.lam, ref)
    pure = cn.reweight(ds.X, ds.y, mu=mu, finish="none", **kw)
    fin = cn.reweight(ds.X, ds.y, mu=mu, finish="gated", **kw)
    assert pure.converged and fin.converged and fin.finished_by == "gated"
    assert fin.finish_steps >= 1 and fin.mu == mu
    p_mkl = mkl_dual_value(data, mu)  # the Lanckriet SOCP, solved by Clarabel
    for res in (pure, fin):
        assert res.certificate.formulation == "mkl" and res.certificate.certified
        assert res.certificate.objective == pytest.approx(p_mkl, rel=1e-6)
        gap, primal = loop_mkl_gap(data, res.weights, mu)
        assert gap <= 1e-6 and primal == pytest.approx(res.certificate.objective, rel=1e-12)
    # the root: λ = μ Σ||w_i(λ)|| for the returned certified gated solution
    W = fin.solution.weights["W"]
    assert abs(fin.lam - mu * _norm_sum(W)) <= 1e-6 * fin.lam
    assert fin.info["root_residual"] <= 1e-6
    assert fin.lam == pytest.approx(ref.lam, rel=1e-5)
    sol_gap, sol_primal = loop_gated_gap(data, W, fin.lam)
    assert fin.solution.certified and sol_gap <= 1e-6
    # p_MKL(μ) = p_G(λ) − λ²/(2μ), both sides certified independently
    assert fin.certificate.objective == pytest.approx(sol_primal - fin.lam**2 / (2 * mu), rel=1e-6)
    assert cn.mkl_value_from_gated(ref.objective, ref.lam, mu) == pytest.approx(p_mkl, rel=1e-6)
    # the optimal kernel: η = ||w_i*|| / Σ||w_j*|| of the interior-point solution
    norms = cn.ops.group_norms(ref.weights["W"])
    assert np.max(np.abs(fin.eta - norms / norms.sum())) <= 1e-4
    assert fin.eta.sum() == pytest.approx(1.0, abs=1e-12)
    h = fin.history
    assert monotone(h["objective"]) and monotone(h["lower_bound"], -1.0)
    assert (h["stage"] == "gated").sum() == fin.finish_steps
    assert h["lower_bound"].max() <= p_mkl * (1 + 1e-8)
    assert "finished by gated" in repr(fin) and "finished by reweighting" in repr(pure)


def test_mkl_and_reweight_formulations_take_the_finish_options():
    ds, data = case("planted")
    kw = dict(patterns=data.patterns)
    a = cn.solve("mkl", ds.X, ds.y, mu=2.0, method="reweight", finish="none", **kw)
    b = cn.solve("mkl", ds.X, ds.y, mu=2.0, method="reweight", threads=None, **kw)
    assert a.certified and b.certified and a.objective == pytest.approx(b.objective, rel=1e-6)
    s = cn.solve("reweight", ds.X, ds.y, lam_ratio=0.2, finish="gated", **kw)
    assert s.certified and s.method == "reweight" and s.info["finished_by"] == "gated"
    with pytest.raises(cn.InvalidInputError, match="finish"):
        cn.solve("reweight", ds.X, ds.y, lam_ratio=0.2, finish="ipm", **kw)


# --- robustness of the finish -------------------------------------------------------


def crippled_gated_solve(real):
    """The gated fast solve limited to one proximal step without polish: uncertified."""
    def solve(form, data_, reg, options, **kw):
        opts = dataclasses.replace(options.method_options, max_iter=1, polish=False)
        return real(form, data_, reg, dataclasses.replace(options, method_options=opts), **kw)
    return solve


@pytest.mark.parametrize("mode", ["lam", "mu"])
def test_uncertified_finish_resumes_the_pure_iteration(monkeypatch, mode):
    ds, data = case("planted")
    monkeypatch.setattr(rw.group_lasso, "run", crippled_gated_solve(rw.group_lasso.run))
    reg = {"lam": 0.1 * cn.REGISTRY["gated_relu"].reg_max(data), "mu": 2.0}[mode]
    res = cn.reweight(ds.X, ds.y, patterns=data.patterns, **{mode: reg})
    assert res.finish_steps >= 1 and res.finished_by == "reweighting"
    assert res.converged and res.certificate.certified and res.solution.certified
    stages = list(res.history["stage"])
    first = stages.index("gated")
    assert stages[first + res.finish_steps:] == ["reweight"] * (len(stages) - first
                                                                - res.finish_steps)
    assert monotone(res.history["objective"]) and monotone(res.history["lower_bound"], -1.0)


@pytest.mark.parametrize("mode", ["lam", "mu"])
def test_callback_sees_and_can_stop_an_uncertified_finish(monkeypatch, mode):
    ds, data = case("planted")
    monkeypatch.setattr(rw.group_lasso, "run", crippled_gated_solve(rw.group_lasso.run))
    seen = []

    def stop_in_finish(state):
        seen.append(state["stage"])
        return state["stage"] == "gated"

    reg = {"lam": 0.1 * cn.REGISTRY["gated_relu"].reg_max(data), "mu": 2.0}[mode]
    res = cn.reweight(ds.X, ds.y, patterns=data.patterns, callback=stop_in_finish,
                      **{mode: reg})
    assert res.status == "stopped" and res.finish_steps == 1 and seen[-1] == "gated"
    assert seen.count("gated") == 1 and len(res.history) == len(seen)
    assert not res.certificate.certified and res.finished_by == "reweighting"


def test_max_iter_zero_finishes_from_the_start():
    ds, data = case("planted")
    res = cn.reweight(ds.X, ds.y, patterns=data.patterns, lam_ratio=0.1, max_iter=0)
    assert res.iterations == 0 and res.finished_by == "gated" and res.certificate.certified
    zero = cn.reweight(ds.X, ds.y, patterns=data.patterns, lam_ratio=1.0)
    assert zero.converged and zero.finish_steps == 0 and not zero.weights.any()


# --- BLAS threads -----------------------------------------------------------------


def _blas_threads_now():
    return sorted({info["num_threads"] for info in threadpool_info()
                   if info["user_api"] == "blas"})


def test_threads_pin_blas_inside_the_run_and_restore_it():
    ds, data = case("planted")
    before = _blas_threads_now()
    inside = {}

    def watch(key):
        def cb(state):
            inside.setdefault(key, set()).update(_blas_threads_now())
        return cb

    one = cn.reweight(ds.X, ds.y, patterns=data.patterns, mu=2.0, threads=1,
                      callback=watch(1))
    free = cn.reweight(ds.X, ds.y, patterns=data.patterns, mu=2.0, threads=None,
                       callback=watch(None))
    assert inside[1] == {1}
    assert sorted(inside[None]) == before
    assert _blas_threads_now() == before
    assert one.info["threads"] == 1 and free.info["threads"] is None
    assert one.certificate.objective == pytest.approx(free.certificate.objective, rel=1e-9)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_threads_are_validated(bad):
    ds, data = case("planted")
    with pytest.raises(cn.InvalidInputError, match="threads"):
        cn.reweight(ds.X, ds.y, patterns=data.patterns, mu=2.0, threads=bad)


def test_finish_is_validated():
    ds, data = case("planted")
    with pytest.raises(cn.InvalidInputError, match="finish"):
        cn.reweight(ds.X, ds.y, patterns=data.patterns, mu=2.0, finish="fast")


# --- the size of the performance goal (default suite: about a second each) -----------


@pytest.fixture(scope="module")
def n500():
    ds = cn.planted_relu(500, 10, seed=0)
    pats = cn.sample_patterns(ds.X, 200, seed=0)
    ref = cn.solve("gated_relu", ds.X, ds.y, patterns=pats, lam_ratio=0.1, method="fast",
                   tol=1e-10)
    return ds, pats, ref


def test_n500_d10_p200_gated_finish_certifies_lam_mode(n500):
    ds, pats, ref = n500
    res = cn.reweight(ds.X, ds.y, patterns=pats, lam=ref.lam)
    assert res.converged and res.finished_by == "gated" and res.start == "ntk"
    assert res.certificate.certified and res.certificate.relative_gap <= 1e-6
    assert res.solution.objective == pytest.approx(ref.objective, rel=1e-6)
    norms = cn.ops.group_norms(ref.weights["W"])
    assert np.max(np.abs(res.eta - norms / norms.sum())) <= 1e-6


def test_n500_d10_p200_gated_finish_certifies_mu_mode(n500):
    ds, pats, ref = n500
    mu = cn.lam_to_mu(ref.lam, ref)
    res = cn.reweight(ds.X, ds.y, patterns=pats, mu=mu)
    assert res.converged and res.finished_by == "gated"
    assert res.certificate.certified and res.certificate.relative_gap <= 1e-6
    assert res.solution.certified and res.info["root_residual"] <= 1e-6
    assert res.lam == pytest.approx(ref.lam, rel=1e-6)
    assert res.certificate.objective == pytest.approx(
        cn.mkl_value_from_gated(ref.objective, ref.lam, mu), rel=1e-6)
