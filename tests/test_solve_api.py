"""The solve entry point: solver discovery, status mapping and argument errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import convexnn as cn
from convexnn.solvers import (
    InaccurateSolutionWarning,
    available_solvers,
    map_status,
    resolve_solver,
)


def test_clarabel_is_available_and_default():
    assert "CLARABEL" in available_solvers()
    assert resolve_solver(None) == "CLARABEL" and resolve_solver("clarabel") == "CLARABEL"


def test_unknown_solver_names_the_installed_ones(small):
    X, y, pats = small
    with pytest.raises(cn.SolverUnavailableError, match="clarabel"):
        cn.solve("gated_relu", X, y, patterns=pats, solver="nosuchsolver")


def test_scs_answer_is_judged_by_the_numpy_certificate(small):
    X, y, pats = small
    if "SCS" not in available_solvers():
        pytest.skip("scs is not installed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InaccurateSolutionWarning)
        loose = cn.solve("gated_relu", X, y, patterns=pats, solver="scs",
                         solver_options={"eps_abs": 1e-2, "eps_rel": 1e-2, "max_iters": 50})
    exact = cn.solve("gated_relu", X, y, patterns=pats)
    # the certificate bounds the true suboptimality from the loose point...
    assert loose.objective - loose.certificate.gap <= exact.objective * (1 + 1e-7)
    # ...and a 50-iteration SCS answer does not pass as certified
    assert not loose.certified and loose.certificate.relative_gap > 1e-6


def test_status_mapping():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert map_status("optimal", "X") is None
    with pytest.warns(InaccurateSolutionWarning, match="certificate"):
        map_status("optimal_inaccurate", "X")
    with pytest.raises(cn.InfeasibleError):
        map_status("infeasible", "X")
    with pytest.raises(cn.UnboundedError):
        map_status("unbounded_inaccurate", "X")
    with pytest.raises(cn.SolverFailedError) as info:
        map_status("solver_error", "X")
    assert info.value.status == "solver_error"


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"lam": -1.0}, ["lam", "positive"]),
        ({"lam": 0.0}, ["lam", "positive"]),
        ({"lam": float("nan")}, ["lam"]),
        ({"lam": 1.0, "lam_ratio": 0.1}, ["either"]),
        ({"lam_ratio": -0.5}, ["lam_ratio"]),
        ({"tol": 2.0}, ["tol"]),
        ({"tol": -1e-6}, ["tol"]),
        ({"patterns": "some"}, ["patterns", "'all'"]),
        ({"patterns": 0}, ["count"]),
        ({"patterns": 2.5}, ["patterns"]),
        ({"method": "magic"}, ["method", "magic"]),
        ({"bias": "yes"}, ["bias"]),
        # these two used to escape as numpy's raw TypeError / ValueError
        ({"seed": "abc"}, ["seed", "non-negative integer"]),
        ({"seed": -1}, ["seed", "non-negative integer"]),
        # and this one as Clarabel's raw TypeError
        ({"solver_options": {"bogus": 1}}, ["solver_options", "bogus", "CLARABEL"]),
    ],
)
def test_bad_arguments_raise_named_errors(small, kwargs, words):
    X, y, _ = small
    with pytest.raises(cn.InvalidInputError) as info:
        cn.solve("gated_relu", X, y, **{"patterns": 10, **kwargs})
    for w in words:
        assert w in str(info.value)


def test_unknown_formulation_lists_registry(small):
    X, y, _ = small
    with pytest.raises(cn.InvalidInputError, match="gated_relu"):
        cn.solve("gated_relux", X, y)


def test_patterns_from_other_data_are_refused(small):
    X, y, pats = small
    with pytest.raises(cn.InvalidInputError, match="bias column"):
        cn.solve("gated_relu", X, y, patterns=pats, bias=True)
    other = cn.sample_patterns(X[::-1].copy(), 10, seed=0)
    with pytest.raises(cn.InvalidInputError, match="different data"):
        cn.solve("gated_relu", X, y, patterns=other)


def test_solution_repr_and_fields(small):
    X, y, pats = small
    sol = cn.solve("gated_relu", X, y, patterns=pats)
    text = repr(sol)
    assert "certified" in text and "gated_relu" in text and len(text.splitlines()) <= 4
    assert set(sol.timings) == {"build_s", "solve_s", "certify_s"}
    assert sol.n == 60 and sol.d == 4 and sol.outputs == 1 and sol.status == "optimal"
    assert sol.objective == sol.certificate.objective
    # the certificate's numbers from the arrays, with numpy written here
    c = sol.certificate
    W, M, z = sol.weights["W"], pats.masks, sol.dual["z"][:, 0]
    r = y - sum(M[:, i] * (X @ W[i, :, 0]) for i in range(pats.P))
    primal = 0.5 * r @ r + sol.lam * sum(np.linalg.norm(W[i]) for i in range(pats.P))
    dual = y @ z - 0.5 * z @ z
    assert max(np.linalg.norm(X.T @ (M[:, i] * z)) for i in range(pats.P)) <= sol.lam * (1 + 1e-12)
    assert c.objective == pytest.approx(primal, rel=1e-12, abs=0)
    assert c.dual_objective == pytest.approx(dual, rel=1e-12, abs=0)
    assert c.gap == pytest.approx(primal - dual, rel=1e-6, abs=1e-12 * primal)
    with pytest.raises(dataclass_error()):
        sol.objective = 0.0  # frozen


def dataclass_error():
    import dataclasses

    return dataclasses.FrozenInstanceError


def test_default_patterns_and_enumeration(small):
    X, y, _ = small
    sol = cn.solve("gated_relu", X, y)
    assert sol.patterns.method == "sample" and sol.patterns.draws == 100
    X2 = np.random.default_rng(0).standard_normal((12, 2))
    y2 = np.random.default_rng(1).standard_normal(12)
    full = cn.solve("gated_relu", X2, y2, patterns="all")
    assert full.scope == "all" and full.certified


def test_clarabel_factorisation_is_faer_when_available_and_qdldl_on_request(small):
    """``method="ipm"`` asks for Clarabel's supernodal ``faer`` factorisation when this build
    has it; ``solver_options`` can ask for the default ``qdldl``; both answers certify
    to the same optimum."""
    from convexnn.solvers import _tolerance_options, faer_available

    opts = _tolerance_options("CLARABEL", 1e-6)
    assert (opts.get("direct_solve_method") == "faer") == faer_available()
    X, y, pats = small
    a = cn.solve("gated_relu", X, y, patterns=pats, lam_ratio=0.1, method="ipm")
    b = cn.solve("gated_relu", X, y, patterns=pats, lam_ratio=0.1, method="ipm",
                 solver_options={"direct_solve_method": "qdldl"})
    assert a.certificate.certified and b.certificate.certified
    assert abs(a.objective - b.objective) <= 1e-6 * abs(b.objective)
