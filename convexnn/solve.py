"""The single entry point: ``convexnn.solve(formulation, X, y, ...)``."""

from __future__ import annotations

import math
from typing import Any

from .errors import InvalidInputError
from .formulations import SolveOptions, get_formulation, prepare
from .patterns import Patterns
from .solution import Solution
from .solvers import resolve_solver

__all__ = ["solve", "resolve_reg"]


def _positive(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(
        value, "__float__"
    ):
        raise InvalidInputError(f"{name} must be a positive number; got {value!r}.")
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise InvalidInputError(f"{name} must be a positive finite number; got {value!r}.")
    return v


def resolve_reg(formulation, data, lam: float | None, lam_ratio: float | None) -> float:
    """``lam`` itself, or ``lam_ratio · reg_max(data)`` (default ratio 0.1)."""
    if lam is not None and lam_ratio is not None:
        raise InvalidInputError("give either lam or lam_ratio, not both.")
    if lam is not None:
        return _positive(lam, formulation.reg_name)
    ratio = _positive(0.1 if lam_ratio is None else lam_ratio, f"{formulation.reg_name}_ratio")
    return ratio * reg_scale(formulation, data)


def reg_scale(formulation, data) -> float:
    """``reg_max(data)``, the unit of ``lam_ratio``; refuses a zero scale with the fix."""
    top = formulation.reg_max(data)
    if top <= 0:
        raise InvalidInputError(
            f"{formulation.reg_name}_max is 0 (y is orthogonal to every pattern): give "
            f"{formulation.reg_name} explicitly."
        )
    return top


def solve(
    formulation: str,
    X: Any,
    y: Any,
    *,
    patterns: Patterns | int | str | None = None,
    lam: float | None = None,
    lam_ratio: float | None = None,
    bias: bool = False,
    solver: str = "clarabel",
    tol: float = 1e-6,
    method: str = "auto",
    seed: int | None = 0,
    verbose: bool = False,
    progress: bool = False,
    solver_options: dict[str, Any] | None = None,
    **options: Any,
) -> Solution:
    """Solve a registered convex program and certify the answer in numpy.

    Parameters
    ----------
    formulation : str
        Registry name, e.g. ``"gated_relu"`` (``convexnn.formulations.REGISTRY``).
    X : array (n, d)
    y : array (n,) or (n, c)
    patterns : Patterns, int, "all" or None
        Activation patterns: a :class:`Patterns` built on ``X`` (with its bias column if
        ``bias``), a number of Gaussian gates to sample (with ``seed``), ``"all"`` for
        exact enumeration (global scope), or None for 100 sampled gates.
    lam, lam_ratio : float
        Regularisation ``λ > 0``, or ``λ = lam_ratio · λ_max`` (default ratio 0.1). For the
        formulations regularised by ``μ`` (``ntk``, ``mkl``) these set ``μ``; ``mu=`` and
        ``mu_ratio=`` are accepted as synonyms there (``μ_ratio`` is relative to ``||X||₂²``).
    bias : bool
        Append a column of ones to ``X`` (the gates get a bias entry too).
    solver : str
        Any installed conic solver; ``"clarabel"`` (default) or ``"mosek"`` certify.
    tol : float
        Relative duality gap the certificate must reach.
    method : str
        ``"auto"`` or a method the formulation offers (``"ipm"``: declarative cvxpy;
        ``"fast"``: the structured solver of gated_relu). ``"auto"`` picks by size.
    solver_options : dict
        Passed to the solver, overriding accuracy defaults.
    **options
        Formulation-specific options, e.g. ``memory_limit`` (bytes or ``"8G"``; a
        :class:`ProblemTooLargeError` is raised before building a problem that would
        not fit) and, for ``method="fast"``, ``init``, ``max_iter``, ``polish``, ``threads``.

    Returns
    -------
    Solution
        With ``certificate`` computed in numpy from the returned point.
    """
    form = get_formulation(formulation)
    if form.reg_name == "mu" and ("mu" in options or "mu_ratio" in options):
        # formulations regularised by μ (ntk, mkl) also accept it under its own name
        if lam is not None or lam_ratio is not None:
            raise InvalidInputError("give either mu/mu_ratio or lam/lam_ratio, not both.")
        lam, lam_ratio = options.pop("mu", None), options.pop("mu_ratio", None)
    tol = _positive(tol, "tol")
    if tol >= 1:
        raise InvalidInputError(f"tol is a relative gap and must be < 1; got {tol!r}.")
    data = prepare(X, y, patterns=patterns, bias=bias, seed=seed)
    reg = resolve_reg(form, data, lam, lam_ratio)
    chosen = form.choose_method(data, method)
    opts = SolveOptions(
        solver=resolve_solver(solver),
        tol=tol,
        method=chosen,
        verbose=verbose,
        solver_options=dict(solver_options or {}),
        progress=progress,
    )
    return form.solve(data, reg, opts, **options)
