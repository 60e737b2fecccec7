"""The structured gated-ReLU solver, λ paths and the memory guard.

Truths checked: agreement with the interior-point program and with an independently
solved dual (docs/math/gated_relu.md); the certificate re-derived from the returned arrays
through the
sparse design matrix (not through the solver's operators); weak duality against the
IPM optimum for uncertified answers; monotonicity of the optimal value in λ.
"""

from __future__ import annotations

import numpy as np
import pytest

import convexnn as cn
from convexnn.formulations import get_formulation
from convexnn.formulations.gated_relu import AUTO_IPM_MAX_SIZE, build_dual
from convexnn.memory import format_bytes, parse_bytes, require_memory
from convexnn.methods import memory_estimates
from convexnn.ops import design_matrix
from convexnn.problem import prepare


def problem(n, d, P, c=1, bias=False, seed=0):
    ds = cn.planted_relu(n, d, outputs=c, seed=seed)
    Xb = cn.add_bias(ds.X) if bias else ds.X
    return ds.X, ds.y, cn.sample_patterns(Xb, P, seed=seed)


def independent_dual(X, Y, M, lam):
    dual = build_dual(X, Y, M)
    dual.lam.value = lam
    dual.problem.solve(solver="CLARABEL")
    return dual.problem.value


def rederived_certificate(sol, X, y, bias):
    """Primal and dual values from the saved arrays via the sparse A = [D_1 X, …]."""
    data = prepare(X, y, patterns=sol.patterns, bias=bias)
    A = design_matrix(data.X, data.M)
    W, Z, lam = sol.weights["W"], sol.dual["z"], sol.lam
    P, d, c = W.shape
    fit = np.column_stack([A @ W[:, :, k].ravel() for k in range(c)])
    primal = 0.5 * np.sum((fit - data.Y) ** 2) + lam * np.sum(np.sqrt(np.sum(W**2, (1, 2))))
    corr = np.stack([(A.T @ Z[:, k]).reshape(P, d) for k in range(c)], axis=2)
    feasibility = np.sqrt(np.sum(corr**2, axis=(1, 2))).max() / lam
    dual = np.sum(data.Y * Z) - 0.5 * np.sum(Z * Z)
    return primal, dual, feasibility


@pytest.mark.parametrize(
    "n, d, P, c, bias, ratio",
    [(60, 4, 30, 1, False, 0.1), (80, 5, 40, 1, True, 0.05), (70, 4, 30, 3, False, 0.1),
     (120, 6, 60, 2, True, 0.02), (200, 8, 80, 1, False, 0.01)],
)
def test_fast_agrees_with_ipm_and_independent_dual(n, d, P, c, bias, ratio):
    X, y, pats = problem(n, d, P, c, bias, seed=n + P)
    fast = cn.solve("gated_relu", X, y, patterns=pats, lam_ratio=ratio, bias=bias,
                    method="fast")
    ipm = cn.solve("gated_relu", X, y, patterns=pats, lam_ratio=ratio, bias=bias,
                   method="ipm")
    assert fast.method == "fast" and ipm.method == "ipm"
    assert fast.certified and ipm.certified
    assert fast.certificate.relative_gap <= 1e-6
    assert abs(fast.objective - ipm.objective) <= 1e-6 * abs(ipm.objective)
    data = prepare(X, y, patterns=pats, bias=bias)
    d_star = independent_dual(data.X, data.Y, data.M, fast.lam)
    assert d_star - 1e-9 * abs(d_star) <= fast.objective <= d_star * (1 + 1e-6)
    assert fast.weights["W"].shape == (pats.P, data.d, c)
    # docs/math/gated_relu.md (for c > 1 the network's penalty is the blocks' nuclear norm)
    if c == 1:
        assert fast.network.objective(X, y, fast.lam) == pytest.approx(fast.objective,
                                                                        rel=1e-9)


def test_fast_certificate_is_the_numpy_one():
    X, y, pats = problem(150, 5, 60, seed=7)
    sol = cn.solve("gated_relu", X, y, patterns=pats, lam_ratio=0.05, method="fast")
    primal, dual, feasibility = rederived_certificate(sol, X, y, bias=False)
    cert = sol.certificate
    assert feasibility <= 1 + 1e-12  # the returned dual point is feasible
    assert cert.objective == pytest.approx(primal, rel=1e-12)
    assert cert.dual_objective == pytest.approx(dual, rel=1e-12)
    assert cert.gap == pytest.approx(primal - dual, abs=1e-9 * abs(primal))
    # the solver's fused in-loop certificate reports the same gap as the numpy one
    assert sol.info["solver_relative_gap"] == pytest.approx(cert.relative_gap, abs=1e-12)
    assert sol.solver == "numpy" and sol.status == "converged"


def test_tiny_budget_is_reported_uncertified():
    X, y, pats = problem(150, 5, 60, seed=3)
    sol = cn.solve("gated_relu", X, y, patterns=pats, lam_ratio=0.05, method="fast",
                   max_iter=2, polish=False)
    assert sol.status == "max_iter" and not sol.certified
    assert sol.certificate.relative_gap > 1e-6
    assert "NOT certified" in repr(sol)
    # the gap it reports is a true upper bound on its suboptimality
    ref = cn.solve("gated_relu", X, y, patterns=pats, lam_ratio=0.05, method="ipm")
    assert sol.objective - ref.objective <= sol.certificate.gap + 1e-9
    primal, dual, feasibility = rederived_certificate(sol, X, y, bias=False)
    assert feasibility <= 1 + 1e-12 and sol.certificate.dual_objective == pytest.approx(dual)


def test_polishing_certifies_a_hard_case():
    """Small λ: many active and near-active groups; first-order progress stalls."""
    X, y, pats = problem(100, 3, 60, seed=0)
    alone = cn.solve("gated_relu", X, y, patterns=pats, lam_ratio=1e-5, method="fast",
                     polish=False)
    assert alone.status == "stalled" and not alone.certified
    sol = cn.solve("gated_relu", X, y, patterns=pats, lam_ratio=1e-5, method="fast")
    assert sol.certified and sol.info["polish_rounds"] >= 1
    assert sol.solver == "numpy+CLARABEL" and sol.info["polish_seconds"] > 0
    ipm = cn.solve("gated_relu", X, y, patterns=pats, lam_ratio=1e-5, method="ipm")
    assert abs(sol.objective - ipm.objective) <= 1e-6 * ipm.objective


def test_budget_exhausted_hands_over_to_polish():
    X, y, pats = problem(120, 4, 50, seed=5)
    sol = cn.solve("gated_relu", X, y, patterns=pats, lam_ratio=0.01, method="fast",
                   max_iter=5)
    assert sol.info["polish_rounds"] >= 1 and sol.certified


def test_warm_start_from_the_optimum_is_immediate():
    X, y, pats = problem(150, 5, 60, seed=11)
    first = cn.solve("gated_relu", X, y, patterns=pats, lam_ratio=0.05, method="fast")
    again = cn.solve("gated_relu", X, y, patterns=pats, lam_ratio=0.05, method="fast",
                     init=first.weights["W"][:, :, 0])
    assert again.certified and again.info["iterations"] <= 1
    assert again.objective == pytest.approx(first.objective, rel=1e-9)


def test_path_monotone_certified_and_equal_to_single_solves():
    X, y, pats = problem(150, 5, 60, seed=2)
    ratios = [0.02, 0.5, 0.1, 0.05, 0.2]  # any order; returned in this order
    path = cn.solve_path("gated_relu", X, y, patterns=pats, lam_ratios=ratios, method="fast")
    assert isinstance(path, cn.SolutionPath) and len(path) == 5 and path.certified
    lam_max = get_formulation("gated_relu").reg_max(prepare(X, y, patterns=pats))
    assert np.allclose(path.lams, np.array(ratios) * lam_max)
    order = np.argsort(path.lams)
    assert np.all(np.diff(path.objectives[order]) > 0)  # p(λ) increases with λ
    for sol, r in zip(path, ratios, strict=True):
        single = cn.solve("gated_relu", X, y, patterns=pats, lam_ratio=r, method="fast")
        assert sol.lam == pytest.approx(single.lam)
        assert abs(sol.objective - single.objective) <= 1e-6 * single.objective
    assert "certified 5/5" in repr(path)


def test_ipm_path_reuses_the_built_problem(monkeypatch):
    import convexnn.formulations.gated_relu as gr

    calls = []
    original = gr.build_primal
    monkeypatch.setattr(gr, "build_primal", lambda *a: calls.append(1) or original(*a))
    X, y, pats = problem(60, 4, 30, seed=4)
    lams = [0.3, 0.1, 0.03]
    path = cn.solve_path("gated_relu", X, y, patterns=pats, lam_ratios=lams, method="ipm")
    assert len(calls) == 1 and path.certified and path.method == "ipm"
    fast = cn.solve_path("gated_relu", X, y, patterns=pats, lam_ratios=lams, method="fast")
    assert np.allclose(path.objectives, fast.objectives, rtol=1e-6)


def test_path_arguments_are_validated():
    X, y, pats = problem(40, 3, 20)
    for kwargs, word in [({"lams": [1.0], "lam_ratios": [0.1]}, "either"),
                         ({"lams": []}, "non-empty"), ({"lam_ratios": [0.1, -1]}, "lam_ratios"),
                         ({"lams": [[1.0, 2.0]]}, "1-D"), ({"lams": ["a"]}, "lams")]:
        with pytest.raises(cn.InvalidInputError, match=word):
            cn.solve_path("gated_relu", X, y, patterns=pats, **kwargs)


def test_memory_guard_names_sizes_and_the_method_that_fits():
    X, y, pats = problem(200, 6, 80)
    data = prepare(X, y, patterns=pats)
    est = memory_estimates(get_formulation("gated_relu"), data)
    assert est["fast"] < est["ipm"]
    limit = (est["fast"] + est["ipm"]) // 2
    with pytest.raises(cn.ProblemTooLargeError) as info:
        cn.solve("gated_relu", X, y, patterns=pats, method="ipm", memory_limit=limit)
    msg = str(info.value)
    for word in ("n=200", "d=6", "P=80", "c=1", "method='ipm'", "method='fast'",
                 format_bytes(est["ipm"])):
        assert word in msg
    assert isinstance(info.value, MemoryError)
    sol = cn.solve("gated_relu", X, y, patterns=pats, method="fast", memory_limit=limit)
    assert sol.certified
    with pytest.raises(cn.ProblemTooLargeError, match="no method fits"):
        cn.solve("gated_relu", X, y, patterns=pats, method="fast", memory_limit="1K")


def test_memory_guard_for_absurd_sizes_and_environment(monkeypatch):
    with pytest.raises(cn.ProblemTooLargeError, match=r"n=10000000.*P=100000.*TB"):
        require_memory(2**50, what="gated_relu", method="ipm",
                       sizes={"n": 10_000_000, "d": 100, "P": 100_000}, limit="16G")
    require_memory(2**20, what="gated_relu", method="ipm", sizes={"n": 1}, limit="16G")
    X, y, pats = problem(60, 4, 30)
    monkeypatch.setenv("CONVEXNN_MEMORY_LIMIT", "2K")
    with pytest.raises(cn.ProblemTooLargeError, match="CONVEXNN_MEMORY_LIMIT"):
        cn.solve("gated_relu", X, y, patterns=pats)
    assert parse_bytes("1.5G") == int(1.5 * 2**30) and parse_bytes(4096) == 4096
    for bad in ("lots", -1, 0, True, "0M"):
        with pytest.raises(cn.InvalidInputError, match="memory_limit"):
            parse_bytes(bad)


@pytest.mark.parametrize(
    "kwargs, words",
    [({"method": "magic"}, ["method", "magic", "fast", "ipm"]),
     ({"method": "ipm", "init": np.zeros((30, 4))}, ["init", "method='fast'"]),
     ({"method": "fast", "nonsense": 1}, ["nonsense", "allowed"]),
     ({"method": "fast", "init": np.zeros((3, 4))}, ["init", "shape"]),
     ({"method": "fast", "init": np.full((30, 4), np.nan)}, ["init", "NaN"]),
     ({"method": "fast", "max_iter": -1}, ["max_iter"]),
     ({"method": "fast", "max_iter": 2.5}, ["max_iter"]),
     ({"method": "fast", "polish": "yes"}, ["polish"]),
     ({"method": "fast", "threads": 0}, ["threads"]),
     ({"method": "fast", "precision": "half"}, ["precision", "mixed", "double"]),
     ({"method": "fast", "working_set": np.ones(3, dtype=bool)}, ["working_set"])],
)
def test_method_and_option_validation(kwargs, words):
    X, y, pats = problem(60, 4, 30)
    with pytest.raises(cn.InvalidInputError) as info:
        cn.solve("gated_relu", X, y, patterns=pats, **kwargs)
    for w in words:
        assert w in str(info.value)


def test_auto_picks_by_size():
    form = get_formulation("gated_relu")
    small = prepare(*problem(60, 4, 30)[:2], patterns=30)
    assert small.n * small.d * small.P <= AUTO_IPM_MAX_SIZE
    assert form.choose_method(small, "auto") == "ipm"
    X, y, pats = problem(400, 10, 100)
    big = prepare(X, y, patterns=pats)
    assert big.n * big.d * big.P > AUTO_IPM_MAX_SIZE
    assert form.choose_method(big, "auto") == "fast"
    sol = cn.solve("gated_relu", X, y, patterns=pats)
    assert sol.method == "fast" and sol.certified


def test_lambda_above_lambda_max_gives_zero():
    X, y, pats = problem(80, 4, 30)
    sol = cn.solve("gated_relu", X, y, patterns=pats, lam_ratio=1.5, method="fast")
    assert sol.certified and not np.any(sol.weights["W"]) and sol.network.neurons == 0
    assert sol.objective == pytest.approx(0.5 * np.sum(y**2))


def test_newton_refinement_and_working_set_are_exercised():
    X, y, pats = problem(300, 8, 120, seed=1)
    sol = cn.solve("gated_relu", X, y, patterns=pats, lam_ratio=0.1, method="fast")
    assert sol.certified and sol.info["newton_steps"] > 0
    assert sol.info["working_set"] < pats.P
    no_ws = cn.solve("gated_relu", X, y, patterns=pats, lam_ratio=0.1, method="fast",
                     working_set=False)
    assert no_ws.certified
    assert abs(no_ws.objective - sol.objective) <= 1e-6 * sol.objective


@pytest.mark.parametrize("c", [1, 3])
def test_operator_products_match_the_design_matrix(c):
    """Every product of the fast solver (all groups, a working set in float64 and in
    float32, a few groups) against the sparse A = [D_1 X, …] applied per output."""
    from convexnn.methods.group_lasso import GroupLassoOperator

    X, _, pats = problem(50, 3, 40, seed=9)
    op = GroupLassoOperator(X, pats.masks)
    A = design_matrix(X, pats.masks).toarray()
    rng = np.random.default_rng(0)
    W = rng.standard_normal((pats.P, 3, c))
    R = rng.standard_normal((50, c))
    fit = np.column_stack([A @ W[:, :, k].ravel() for k in range(c)])  # (n, c)
    corr = np.stack([(A.T @ R[:, k]).reshape(pats.P, 3) for k in range(c)], axis=2)
    rows, Rt = W.reshape(pats.P, 3 * c), np.ascontiguousarray(R.T)
    everything = np.arange(pats.P)
    assert np.allclose(op.forward(rows, everything).T, fit, rtol=1e-12, atol=1e-12)
    assert np.allclose(op.correlations(Rt).reshape(-1, 3, c), corr, rtol=1e-12, atol=1e-12)
    idx = np.sort(rng.choice(pats.P, size=12, replace=False))
    fit_S = np.column_stack([A[:, (idx[:, None] * 3 + np.arange(3)).ravel()]
                             @ W[idx, :, k].ravel() for k in range(c)])
    assert np.allclose(op.correlations(Rt, idx), corr[idx].reshape(12, -1), atol=1e-12)
    for mixed, tol in ((False, 1e-12), (True, 1e-5)):
        sub = op.sub(idx, mixed)
        scale = np.abs(fit_S).max()
        assert np.allclose(sub.fwd(rows[idx]).T, fit_S, rtol=tol, atol=tol * scale)
        assert np.allclose(sub.adj(Rt), corr[idx].reshape(12, -1), rtol=tol,
                           atol=tol * np.abs(corr).max())
        # the float64 products are exact whatever the masks' storage
        assert np.allclose(sub.fwd64(rows[idx]).T, fit_S, rtol=1e-12, atol=1e-12)
        assert np.allclose(sub.adj64(Rt), corr[idx].reshape(12, -1), rtol=1e-12, atol=1e-12)
        few = np.array([0, 5])
        part = np.column_stack([A[:, (idx[few][:, None] * 3 + np.arange(3)).ravel()]
                                @ W[idx[few], :, k].ravel() for k in range(c)])
        assert np.allclose(sub.partial_fwd64(rows[idx[few]], few).T, part, atol=1e-12)
    assert sub.MT.dtype == np.float32 and op.sigma == pytest.approx(np.linalg.norm(X, 2))


def test_ipm_path_certified_on_badly_scaled_data():
    # the path re-solves one program built on the rescaled data (formulations.base.
    # ipm_scales); on X·1e-5, y·1e-3 the unscaled program stopped short of the tolerance
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((12, 3)) * 1e-5, rng.standard_normal(12) * 1e-3
    path = cn.solve_path("gated_relu", X, y, patterns=8, method="ipm",
                         lam_ratios=[0.5, 0.1, 0.01])
    assert all(s.certified for s in path.solutions)
    one = cn.solve("gated_relu", X, y, patterns=8, method="fast", lam=path.regs[-1])
    assert path.solutions[-1].objective == pytest.approx(one.objective, rel=1e-5)
