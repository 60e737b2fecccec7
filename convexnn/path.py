"""Regularisation paths: many λ, one problem, warm starts.

``solve_path("gated_relu", X, y, patterns=200, lam_ratios=np.geomspace(1, 0.01, 20))``
solves the program at every λ from the largest to the smallest and returns a
:class:`SolutionPath` of independently certified :class:`~convexnn.solution.Solution` s.

A method with a ``run_path`` solves the whole path at once:

* ``method="ipm"`` (every formulation with a declarative program): the cvxpy problem is
  built once; each value only sets the regularisation :class:`cvxpy.Parameter` and
  re-solves (no re-canonicalisation, DPP);
* ``method="fast"`` of the gated-ReLU program: the pattern operator (the rescaled
  ``X`` in float64 and float32 and a reference to ``M``) is built once; each λ starts
  from the previous weights, usually close enough to go straight to the Newton phase;
  every answer is certified on the full pattern set.

Other methods are run one value at a time (still certified).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import InvalidInputError
from .formulations import Formulation, SolveOptions, get_formulation
from .methods import algorithm
from .patterns import Patterns
from .problem import ProblemData, prepare
from .solution import Solution
from .solvers import resolve_solver
from .solving import check_memory, mu_alias, split_options
from .validation import boolean, positive, tolerance

__all__ = ["SolutionPath", "solve_path", "DEFAULT_PATH_RATIOS"]

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
        positive(float(v), label)
    if lams is not None:
        return vals
    return vals * form.reg_scale(data)


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
    memory_limit: Any = None,
    **options: Any,
) -> SolutionPath:
    """Solve a program along a regularisation path with warm starts, certifying each value.

    Parameters
    ----------
    formulation, X, y, patterns, bias, solver, tol, seed, verbose, solver_options, memory_limit
        As in :func:`convexnn.solve`; the patterns are resolved once for the whole path.
    lams : sequence of float, optional
        Regularisation values (any order; they are solved from the largest down and
        returned in the given order).
    lam_ratios : sequence of float, optional
        Values relative to ``λ_max`` instead (default ``DEFAULT_PATH_RATIOS``:
        20 values from 1 to 0.01). For the formulations regularised by ``μ`` (``ntk``,
        ``mkl``) these set ``μ``; ``mus=`` and ``mu_ratios=`` are accepted as synonyms.
    method : str
        ``"auto"`` is resolved once, on the problem size, as in :func:`convexnn.solve`.
    **options
        Method options as in :func:`convexnn.solve` (``init`` warm-starts the first value).

    Returns
    -------
    SolutionPath
        One certified :class:`~convexnn.Solution` per value, with ``objectives``,
        ``relative_gaps`` and ``certified`` (every value certified).

    Examples
    --------
    >>> import numpy as np
    >>> import convexnn as cn
    >>> data = cn.planted_relu(n=60, d=3, seed=0)
    >>> path = cn.solve_path("gated_relu", data.X, data.y, patterns=30,
    ...                      lam_ratios=np.geomspace(1, 0.05, 6))
    >>> path.certified, len(path)
    (True, 6)
    >>> bool(np.all(np.diff(path.objectives) < 0))  # smaller λ, smaller objective
    True
    """
    start = time.perf_counter()
    form = get_formulation(formulation)
    lams, lam_ratios = mu_alias(form, options, lams, lam_ratios, plural="s")
    tol = tolerance(tol)
    data = prepare(X, y, patterns=patterns, bias=bias, seed=seed)
    regs = _regs(form, data, lams, lam_ratios)
    chosen = form.choose_method(data, method)
    method_opts, form_opts, aug = split_options(form, chosen, options)
    if aug.augment:
        raise InvalidInputError("augment applies to solve(), not to solve_path().")
    opts = SolveOptions(solver=resolve_solver(solver), tol=tol, method=chosen,
                        verbose=boolean(verbose, "verbose"),
                        solver_options=dict(solver_options or {}), memory_limit=memory_limit,
                        method_options=method_opts, form_options=form_opts)
    impl = algorithm(form, chosen)
    check_memory(form, data, chosen, memory_limit)
    order = np.argsort(-regs, kind="stable")
    path_solver = getattr(impl, "run_path", None)
    if path_solver is not None:
        sols, info = path_solver(form, data, regs[order], opts)
    else:
        sols = [impl.run(form, data, float(r), opts) for r in regs[order]]
        info = {}
    out: list[Solution | None] = [None] * len(regs)
    for k, i in enumerate(order):
        out[i] = sols[k]
    return SolutionPath(form.name, chosen, regs, tuple(out), time.perf_counter() - start, info)
