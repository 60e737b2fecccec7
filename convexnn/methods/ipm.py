"""The interior-point method: a formulation's declarative program, solved by a conic solver.

The formulation builds its program (:meth:`~convexnn.formulations.base.Formulation.build_primal`)
on the data rescaled by powers of two (:func:`~convexnn.problem.ipm_scales`: interior-point
solvers stop on absolute tolerances sized for data of order one), the program maps its
answer back, and the formulation certifies it on the original data. Along a path the
program is built once and only its regularisation parameter changes (DPP: cvxpy does not
re-canonicalise).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConvexNNError, SolverFailedError
from ..formulations.base import Formulation, Program, SolveOptions
from ..memory import ipm_bytes
from ..problem import ProblemData, ipm_scales, scaled_data
from ..progress import Progress
from ..solution import Solution
from ..solvers import run_problem
from ..validation import Options as OptionsBase

__all__ = ["Options", "run", "run_path", "memory_estimate"]


@dataclass(frozen=True)
class Options(OptionsBase):
    """``method="ipm"`` takes no options of its own (``solver_options`` go to the solver)."""


def memory_estimate(form: Formulation, data: ProblemData) -> int:
    """Peak bytes of building and solving the program (:func:`convexnn.memory.ipm_bytes`)."""
    return ipm_bytes(*form.ipm_size(data))


def run(form: Formulation, data: ProblemData, reg: float, options: SolveOptions,
        program: Program | None = None) -> Solution:
    """Solve ``form``'s primal program at ``reg`` and certify the answer.

    A given ``program`` must have been built on ``scaled_data(data, *ipm_scales(data))``.
    """
    start = time.perf_counter()
    a, s = ipm_scales(data)
    if program is None:
        program = form.build_primal(scaled_data(data, a, s))
        if program is None:
            raise ConvexNNError(f"{form.name} has no interior-point program.")
    program.set_reg(reg, a, s)
    build_s = time.perf_counter() - start
    bar = Progress(f"{form.name} ipm", "quiet" if options.verbose else options.progress)
    try:
        with bar.ticking(solver=options.solver):
            outcome = run_problem(program.problem, options.solver, tol=options.tol,
                                  verbose=options.verbose, options=dict(options.solver_options),
                                  outputs=form.factor_outputs(data))
    finally:
        bar.close()
    weights, dual = program.solution(a, s)
    if not weights:
        raise SolverFailedError(f"{outcome.solver} returned no primal point for {form.name}.",
                                status=outcome.status)
    weights, extra = form.finalize(data, reg, weights, dual, options.form_options)
    info: dict[str, Any] = {
        "iterations": outcome.iterations,
        "solver_objective": (None if outcome.solver_objective is None
                             else outcome.solver_objective * s * s),
        "scaling": {"X": a, "y": s},
        "factorisation": outcome.factorisation,
        **extra,
    }
    return form.make_solution(data, reg, weights, options, status=outcome.status,
                              solver=outcome.solver, method="ipm",
                              build_s=build_s + outcome.compile_s, solve_s=outcome.solve_s,
                              dual=dual, info=info)


def run_path(form: Formulation, data: ProblemData, regs: Sequence[float],
             options: SolveOptions) -> tuple[list[Solution], dict[str, Any]]:
    """One program for the whole path: each value only sets the parameter and re-solves."""
    start = time.perf_counter()
    program = form.build_primal(scaled_data(data, *ipm_scales(data)))
    setup = time.perf_counter() - start
    return [run(form, data, float(r), options, program=program) for r in regs], \
        {"setup_s": setup}
