"""Regularisation paths: many λ, one problem, warm starts.

``solve_path("gated_relu", X, y, patterns=200, lam_ratios=np.geomspace(1, 0.01, 20))``
solves the program at every λ from the largest to the smallest and returns a
:class:`SolutionPath` of independently certified :class:`~convexnn.solution.Solution` s.

* ``method="ipm"``: the cvxpy problem is built once; each λ only sets the ``λ``
  :class:`cvxpy.Parameter` and re-solves (no re-canonicalisation, DPP).
* ``method="fast"``: the pattern operator (its float copy of ``M`` and the cached
  Gram blocks of the Newton refinement) is built once; each λ starts from the
  previous weights, whose support seeds the working set; every answer is certified on
  the full pattern set. (Sequential strong rules, ``||Xᵀ D_i R(λ_prev)|| ≥ 2λ − λ_prev``,
  were measured and left out: with sampled patterns many inactive groups sit at the
  dual boundary, so the rule keeps most of them and the path ran 2× slower.)

Other formulations are solved one λ at a time (still certified), until they register
a path solver in ``PATH_SOLVERS``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import InvalidInputError
from .formulations import Formulation, ProblemData, SolveOptions, get_formulation, prepare
from .group_lasso import GroupLassoOperator
from .patterns import Patterns
from .solution import Solution
from .solve import _positive, reg_scale
from .solvers import resolve_solver

__all__ = ["SolutionPath", "solve_path", "PATH_SOLVERS", "DEFAULT_PATH_RATIOS"]

#: Default path: 20 values of ``λ / λ_max`` from 1 down to 0.01 (geometric).
DEFAULT_PATH_RATIOS = np.geomspace(1.0, 0.01, 20)


@dataclass(frozen=True, repr=False)
class SolutionPath:
    """Certified solutions along a regularisation path (in the order of ``regs`` given).

    Attributes
    ----------
    formulation, method : str
    regs : ndarray
        The regularisation values (``lams``), in the order they were given.
    solutions : tuple of Solution
        One certified (or honestly uncertified) solution per value.
    seconds : float
        Wall time of the whole path (setup included).
    info : dict
        ``setup_s`` (building the problem or operator once) and per-method details.
    """

    formulation: str
    method: str
    regs: np.ndarray
    solutions: tuple[Solution, ...]
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def lams(self) -> np.ndarray:
        return self.regs

    @property
    def objectives(self) -> np.ndarray:
        return np.array([s.objective for s in self.solutions])

    @property
    def relative_gaps(self) -> np.ndarray:
        return np.array([s.certificate.relative_gap for s in self.solutions])

    @property
    def certified(self) -> bool:
        """True when every solution on the path is certified."""
        return all(s.certified for s in self.solutions)

    def __len__(self) -> int:
        return len(self.solutions)

    def __iter__(self) -> Iterator[Solution]:
        return iter(self.solutions)

    def __getitem__(self, i: int) -> Solution:
        return self.solutions[i]

    def __repr__(self) -> str:
        n_cert = sum(s.certified for s in self.solutions)
        worst = float(self.relative_gaps.max(initial=0.0))
        return (f"SolutionPath({self.formulation}, {self.method}, {len(self)} values of "
                f"{self.solutions[0].reg_name if self.solutions else 'lam'} in "
                f"[{self.regs.min():.4g}, {self.regs.max():.4g}], certified {n_cert}/{len(self)}, "
                f"worst relative_gap={worst:.2e}, time={self.seconds:.3f}s)")


PathSolver = Callable[[Formulation, ProblemData, np.ndarray, SolveOptions, dict],
                      tuple[list[Solution], dict]]


def _gated_relu_path(form: Any, data: ProblemData, regs: np.ndarray, opts: SolveOptions,
                     options: dict) -> tuple[list[Solution], dict]:
    """Gated-ReLU path for both methods; ``regs`` are in decreasing order."""
    form.check_options(opts.method, options)
    form.check_memory(data, opts.method, options.get("memory_limit"))
    start = time.perf_counter()
    if opts.method == "ipm":
        from .formulations.base import ipm_scales, scaled_data
        from .formulations.gated_relu import build_primal

        scaled = scaled_data(data, *ipm_scales(data))  # what solve_ipm expects a program on
        program = build_primal(scaled.X, scaled.Y, scaled.M)
        setup = time.perf_counter() - start
        sols = [form.solve_ipm(data, lam, opts, program=program) for lam in regs]
        return sols, {"setup_s": setup}
    op = GroupLassoOperator(data.X, data.M, data.c)
    setup = time.perf_counter() - start
    W = options.pop("init", None)
    sols = []
    for lam in regs:
        sol = form.solve_fast(data, lam, opts, init=W, operator=op, **options)
        sols.append(sol)
        W = sol.weights["W"]
    return sols, {"setup_s": setup}


#: Formulations with a warm-started path solver (others are solved value by value).
PATH_SOLVERS: dict[str, PathSolver] = {"gated_relu": _gated_relu_path}


def _regs(form: Formulation, data: ProblemData, lams: Any, lam_ratios: Any) -> np.ndarray:
    name = form.reg_name
    if lams is not None and lam_ratios is not None:
        raise InvalidInputError(f"give either {name}s or {name}_ratios, not both.")
    given, label = (lams, f"{name}s") if lams is not None else (
        DEFAULT_PATH_RATIOS if lam_ratios is None else lam_ratios, f"{name}_ratios")
    try:
        vals = np.asarray(given, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{label} must be a sequence of positive numbers.") from None
    if vals.ndim != 1 or vals.size == 0:
        raise InvalidInputError(f"{label} must be a non-empty 1-D sequence; got shape "
                                f"{vals.shape}.")
    for v in vals:
        _positive(float(v), label)
    if lams is not None:
        return vals
    return vals * reg_scale(form, data)


def solve_path(
    formulation: str,
    X: Any,
    y: Any,
    *,
    patterns: Patterns | int | str | None = None,
    lams: Sequence[float] | np.ndarray | None = None,
    lam_ratios: Sequence[float] | np.ndarray | None = None,
    bias: bool = False,
    solver: str = "clarabel",
    tol: float = 1e-6,
    method: str = "auto",
    seed: int | None = 0,
    verbose: bool = False,
    solver_options: dict[str, Any] | None = None,
    **options: Any,
) -> SolutionPath:
    """Solve a program along a regularisation path with warm starts, certifying each value.

    Parameters
    ----------
    formulation, X, y, patterns, bias, solver, tol, seed, verbose, solver_options
        As in :func:`convexnn.solve`; the patterns are resolved once for the whole path.
    lams : sequence of float, optional
        Regularisation values (any order; they are solved from the largest down and
        returned in the given order).
    lam_ratios : sequence of float, optional
        Values relative to ``λ_max`` instead (default ``DEFAULT_PATH_RATIOS``:
        20 values from 1 to 0.01).
    method : {"auto", "ipm", "fast"}
        ``"auto"`` is resolved once, on the problem size, as in :func:`convexnn.solve`.
    **options
        Method options as in :func:`convexnn.solve` (``init`` warm-starts the first value).

    Returns
    -------
    SolutionPath
    """
    start = time.perf_counter()
    form = get_formulation(formulation)
    tol = _positive(tol, "tol")
    if tol >= 1:
        raise InvalidInputError(f"tol is a relative gap and must be < 1; got {tol!r}.")
    data = prepare(X, y, patterns=patterns, bias=bias, seed=seed)
    regs = _regs(form, data, lams, lam_ratios)
    chosen = form.choose_method(data, method)
    opts = SolveOptions(solver=resolve_solver(solver), tol=tol, method=chosen, verbose=verbose,
                        solver_options=dict(solver_options or {}))
    order = np.argsort(-regs, kind="stable")
    path_solver = PATH_SOLVERS.get(form.name)
    if path_solver is not None:
        sols, info = path_solver(form, data, regs[order], opts, dict(options))
    else:
        sols, info = [form.solve(data, float(r), opts, **options) for r in regs[order]], {}
    out: list[Solution | None] = [None] * len(regs)
    for k, i in enumerate(order):
        out[i] = sols[k]
    return SolutionPath(form.name, chosen, regs, tuple(out), time.perf_counter() - start, info)
