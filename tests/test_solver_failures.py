"""Error paths driven by real solver outcomes, not invented status strings.

An infeasible and an unbounded cvxpy problem go through the project's one status map
(``convexnn.solvers.run_problem``); Clarabel stopped by an iteration limit returns
``user_limit``, which every interior-point program turns into ``SolverFailedError`` —
exit code 4 on the command line. MOSEK's licence state is asserted, not assumed.
"""

from __future__ import annotations

import warnings

import cvxpy as cp
import numpy as np
import pytest
from cli_helpers import run, write_spec

import convexnn as cn
from convexnn.solvers import mosek_licensed, resolve_solver, run_problem

MOSEK_INSTALLED = "MOSEK" in cp.installed_solvers()
MOSEK_LICENSED = MOSEK_INSTALLED and mosek_licensed()[0]


def test_an_infeasible_problem_raises_infeasible_error():
    x = cp.Variable(2)
    problem = cp.Problem(cp.Minimize(cp.sum(x)), [x >= 1, cp.sum(x) <= 1])
    with pytest.raises(cn.InfeasibleError, match="infeasible") as info:
        run_problem(problem, "CLARABEL")
    assert info.value.status == "infeasible"
    assert isinstance(info.value, cn.ConvexNNError)


def test_an_unbounded_problem_raises_unbounded_error():
    x = cp.Variable(2)
    problem = cp.Problem(cp.Minimize(x[0] - x[1]), [x[0] >= 0])
    with pytest.raises(cn.UnboundedError, match="unbounded") as info:
        run_problem(problem, "CLARABEL")
    assert info.value.status == "unbounded"


def test_a_solved_problem_returns_its_run_without_warnings():
    x = cp.Variable()
    problem = cp.Problem(cp.Minimize(cp.square(x - 3)), [x <= 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = run_problem(problem, "CLARABEL")
    assert out.status == "optimal" and out.solver == "CLARABEL"
    assert out.solver_objective == pytest.approx(4.0, rel=1e-7)
    assert float(x.value) == pytest.approx(1.0, rel=1e-7)
    assert out.iterations is not None and out.iterations >= 1
    assert out.seconds >= out.solve_s >= 0.0


def test_an_iteration_limit_stops_clarabel_with_user_limit():
    x = cp.Variable(3)
    problem = cp.Problem(cp.Minimize(cp.norm(x - np.arange(3.0)) + cp.sum_squares(x)))
    with pytest.raises(cn.SolverFailedError, match="user_limit") as info:
        run_problem(problem, "CLARABEL", options={"max_iter": 1})
    assert info.value.status == "user_limit"


@pytest.mark.parametrize("formulation, reg", [("gated_relu", {"lam_ratio": 0.1}),
                                              ("relu", {"lam_ratio": 0.1}),
                                              ("mkl", {"mu_ratio": 0.1})])
def test_solve_stopped_by_an_iteration_limit_raises_solver_failed(formulation, reg):
    ds = cn.planted_relu(30, 3, seed=1)
    with pytest.raises(cn.SolverFailedError) as info:
        cn.solve(formulation, ds.X, ds.y, patterns=8, method="ipm",
                 solver_options={"max_iter": 1}, **reg)
    assert info.value.status == "user_limit"
    # the same problem without the limit solves and certifies
    assert cn.solve(formulation, ds.X, ds.y, patterns=8, method="ipm", **reg).certified


def test_cli_exits_4_when_the_solver_is_stopped(tmp_path, capsys):
    spec = write_spec(tmp_path / "capped.toml", """\
[data]
source = "synthetic:planted_relu"
n = 30
d = 3
seed = 1

[patterns]
count = 8

[model]
formulation = "gated_relu"
lam_ratio = 0.1

[solver]
method = "ipm"

[solver.options]
max_iter = 1
""")
    out = tmp_path / "R"
    code, stdout, err = run(["solve", spec, "--out", out], capsys)
    assert code == 4, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("convexnn: solver failed:")
    assert "user_limit" in err and "Traceback" not in err
    assert not out.exists()  # nothing is saved without a solution


def test_a_bad_iteration_limit_is_refused_before_solving():
    ds = cn.planted_relu(30, 3, seed=1)
    for bad in (0, -3, True):
        with pytest.raises(cn.InvalidInputError, match="max_iter"):
            cn.solve("gated_relu", ds.X, ds.y, patterns=8, method="ipm",
                     solver_options={"max_iter": bad})


# ---------------------------------------------------------------------------
# MOSEK: the licence state is asserted on this machine, whatever it is
# ---------------------------------------------------------------------------


@pytest.mark.skipif(not MOSEK_INSTALLED, reason="mosek is not installed")
def test_mosek_licence_state_is_reported_consistently():
    ok, why = mosek_licensed()
    assert isinstance(ok, bool) and (why == "") == ok
    if not ok:
        assert "licence" in why and "code" in why


@pytest.mark.skipif(not MOSEK_INSTALLED or MOSEK_LICENSED,
                    reason="needs MOSEK installed without a licence")
def test_mosek_without_a_licence_is_refused_by_name(tmp_path, capsys):
    with pytest.raises(cn.SolverUnavailableError, match="(?i)licen[cs]e"):
        resolve_solver("mosek")
    ds = cn.planted_relu(30, 3, seed=1)
    with pytest.raises(cn.SolverUnavailableError, match="clarabel"):
        cn.solve("gated_relu", ds.X, ds.y, patterns=8, solver="mosek")
    spec = write_spec(tmp_path / "s.toml", '[data]\nsource = "synthetic:planted_relu"\n'
                      'n = 30\nd = 3\n\n[model]\nformulation = "gated_relu"\nlam_ratio = 0.1\n')
    code, _, err = run(["solve", spec, "--solver", "mosek", "--out", tmp_path / "R"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "licence" in err
    code, out, _ = run(["list"], capsys)
    assert code == 0 and "NOT usable" in out


@pytest.mark.skipif(not MOSEK_LICENSED, reason="needs a MOSEK licence")
def test_mosek_with_a_licence_certifies_the_clarabel_optimum():
    ds = cn.planted_relu(30, 3, seed=1)
    sol = cn.solve("gated_relu", ds.X, ds.y, patterns=8, solver="mosek", lam_ratio=0.1)
    ref = cn.solve("gated_relu", ds.X, ds.y, patterns=8, lam_ratio=0.1)
    assert sol.solver == "MOSEK" and sol.certified
    assert sol.objective == pytest.approx(ref.objective, rel=1e-6)
