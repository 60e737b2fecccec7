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
    """``method="ipm"`` asks for Clarabel's supernodal ``faer`` factorisation for one output
    when this build has it; ``solver_options`` can ask for the default ``qdldl``; both
    answers certify to the same optimum."""
    from convexnn.solvers import _tolerance_options, faer_available

    opts = _tolerance_options("CLARABEL", 1e-6)
    assert (opts.get("direct_solve_method") == "faer") == faer_available()
    X, y, pats = small
    a = cn.solve("gated_relu", X, y, patterns=pats, lam_ratio=0.1, method="ipm")
    b = cn.solve("gated_relu", X, y, patterns=pats, lam_ratio=0.1, method="ipm",
                 solver_options={"direct_solve_method": "qdldl"})
    assert a.certificate.certified and b.certificate.certified
    assert abs(a.objective - b.objective) <= 1e-6 * abs(b.objective)


def _classes(n: int = 60, d: int = 4, c: int = 3, seed: int = 3):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    Y = -np.ones((n, c))
    Y[np.arange(n), np.argmax(X @ rng.standard_normal((d, c)), axis=1)] = 1.0
    return X, Y


def test_several_outputs_ask_for_pardiso_when_it_loads():
    """Several outputs: Pardiso (``"mkl"``) when it loads, else ``faer``; one output: faer."""
    from convexnn.solvers import (
        _tolerance_options,
        factorisation,
        faer_available,
        pardiso_available,
    )

    many = _tolerance_options("CLARABEL", 1e-6, outputs=3).get("direct_solve_method")
    one = _tolerance_options("CLARABEL", 1e-6, outputs=1).get("direct_solve_method")
    assert many == factorisation(3) and one == factorisation(1)
    if pardiso_available():
        assert many == "mkl"
        assert one == ("faer" if faer_available() else "mkl")
    else:
        assert many == one == ("faer" if faer_available() else None)


@pytest.mark.skipif("not __import__('convexnn.solvers').solvers.pardiso_available()",
                    reason="MKL Pardiso does not load here (pip install 'convexnn[mkl]')")
@pytest.mark.parametrize("form", ["gated_relu", "relu"])
def test_pardiso_and_faer_reach_the_same_certified_optimum(form):
    """Two factorisations of the same interior point: Pardiso's nested dissection and
    faer's minimum degree give one optimum, each certified by the numpy certificate."""
    X, Y = _classes()
    kw = dict(patterns=12, lam_ratio=0.05, seed=0, method="ipm")
    a = cn.solve(form, X, Y, **kw)
    b = cn.solve(form, X, Y, **kw, solver_options={"direct_solve_method": "faer"})
    c = cn.solve(form, X, Y, **kw, solver_options={"direct_solve_method": "mkl"})
    assert a.certificate.certified and b.certificate.certified and c.certificate.certified
    assert abs(a.objective - b.objective) <= 1e-6 * abs(b.objective)
    assert a.objective == pytest.approx(c.objective, rel=1e-12)


def test_the_solution_names_the_factorisation_gated_with_outputs_relu_on_faer():
    """``info["factorisation"]``: Pardiso (when it loads) for the gated-ReLU program with
    several outputs; the one-output choice for the ReLU program and for one output."""
    from convexnn.solvers import factorisation

    X, Y = _classes(n=30, d=3, c=2)
    kw = dict(patterns=5, lam_ratio=0.1, seed=0, method="ipm")
    gated = cn.solve("gated_relu", X, Y, **kw)
    relu = cn.solve("relu", X, Y, **kw)
    single = cn.solve("gated_relu", X, Y[:, 0], **kw)
    assert gated.info["factorisation"] == (factorisation(2) or "qdldl")
    assert relu.info["factorisation"] == single.info["factorisation"] == \
        (factorisation(1) or "qdldl")
    asked = cn.solve("gated_relu", X, Y, **kw, solver_options={"direct_solve_method": "qdldl"})
    assert asked.info["factorisation"] == "qdldl"
    assert all(s.certificate.certified for s in (gated, relu, single, asked))


def test_asking_for_pardiso_where_it_does_not_load_is_a_named_error(monkeypatch, small):
    import convexnn.solvers as solvers

    monkeypatch.setattr(solvers, "pardiso_available", lambda: False)
    X, y, pats = small
    with pytest.raises(cn.SolverUnavailableError, match=r"convexnn\[mkl\]"):
        cn.solve("gated_relu", X, y, patterns=pats, lam_ratio=0.1, method="ipm",
                 solver_options={"direct_solve_method": "mkl"})
    assert solvers.factorisation(3) == ("faer" if solvers.faer_available() else None)


def test_a_broken_mkl_runtime_is_refused_in_a_child_process(monkeypatch, tmp_path):
    """MKL ends a process that cannot load its parts; the first load of a pip-installed
    runtime is tried in a child, so a broken one only means: no Pardiso."""
    import os

    import convexnn.solvers as solvers

    fake = tmp_path / "libmkl_rt.so.3"
    fake.write_bytes(b"not a shared library")
    monkeypatch.delenv("MKL_PARDISO_PATH", raising=False)
    monkeypatch.delenv("MKLROOT", raising=False)
    monkeypatch.setattr(solvers, "_mkl_runtime", lambda: str(fake))
    assert solvers.pardiso_available.__wrapped__() is False
    assert "MKL_PARDISO_PATH" not in os.environ
