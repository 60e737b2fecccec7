"""The single entry point: ``convexnn.solve(formulation, X, y, ...)``.

``solve`` = :func:`~convexnn.problem.prepare` (validate, bias column, patterns) +
:func:`solve_data` (choose the method, route the keyword options to their typed owners,
check the memory estimate, run the method, augment over the arrangement when asked).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .errors import InvalidInputError
from .formulations import Formulation, SolveOptions, get_formulation
from .memory import require_memory
from .methods import algorithm, augment, memory_estimates
from .patterns import Patterns
from .problem import ProblemData, prepare
from .progress import MODES
from .solution import Solution
from .solvers import check_solver_options, resolve_solver
from .validation import Options, boolean, choice, tolerance

__all__ = ["solve", "solve_data", "split_options", "check_memory"]


def split_options(form: Formulation, method: str, options: Mapping[str, Any]
                  ) -> tuple[Options, Options, augment.Options]:
    """Route keyword options to the method's, the formulation's and the augmentation loop's
    typed options; anything left over is an error naming every allowed option (and, for
    an option of another method, the method it belongs to)."""
    impl = algorithm(form, method)
    kwargs = dict(options)
    aug = augment.Options.take(kwargs) if form.global_check else augment.Options()
    form_opts = form.Options.take(kwargs)
    method_opts = impl.Options.take(kwargs)
    if kwargs:
        allowed = set(impl.Options.names()) | set(form.Options.names())
        if form.global_check:
            allowed |= set(augment.Options.names())
        hints = []
        for key in sorted(kwargs):
            owners = [m for m in form.methods if m != method
                      and key in algorithm(form, m).Options.names()]
            if owners:
                hints.append(f"{key} belongs to method={owners[0]!r}")
            elif key in augment.Options.names():
                hints.append(f"{key} applies to formulations with a global check "
                             "(gated_relu, relu)")
        hint = f" ({'; '.join(hints)})" if hints else ""
        raise InvalidInputError(
            f"unexpected option(s) {sorted(kwargs)} for {form.name} with method={method!r}"
            f"{hint}; allowed: {sorted(allowed) or 'none'}."
        )
    return method_opts, form_opts, aug


def progress_mode(progress: Any) -> str:
    """``progress`` as a :mod:`convexnn.progress` mode: True → ``"auto"`` (a line on a
    terminal), False → ``"quiet"``, or one of ``"auto"``, ``"verbose"``, ``"quiet"``."""
    if isinstance(progress, (bool, np.bool_)):
        return "auto" if progress else "quiet"
    return choice(progress, "progress", MODES)


def check_memory(form: Formulation, data: ProblemData, method: str, limit: Any = None) -> None:
    """Raise :class:`~convexnn.errors.ProblemTooLargeError` when ``method`` would not fit,
    naming the methods that would (:func:`convexnn.methods.memory_estimates`)."""
    estimates = memory_estimates(form, data)
    require_memory(estimates[method], what=form.name, method=method,
                   sizes={"n": data.n, "d": data.d, "P": data.P, "c": data.c},
                   alternatives={m: v for m, v in estimates.items() if m != method},
                   limit=limit)


def mu_alias(form: Formulation, options: dict[str, Any], lam: Any, lam_ratio: Any,
             plural: str = "") -> tuple[Any, Any]:
    """``(lam, lam_ratio)``, or the ``mu``/``mu_ratio`` popped from ``options``.

    Formulations regularised by μ (ntk, mkl) also accept it under its own name;
    ``plural = "s"`` reads the path's ``mus``/``mu_ratios`` beside ``lams``/``lam_ratios``.
    Giving both names is an :class:`~convexnn.errors.InvalidInputError`.
    """
    mu, mu_ratio = f"mu{plural}", f"mu_ratio{plural}"
    if form.reg_name != "mu" or (mu not in options and mu_ratio not in options):
        return lam, lam_ratio
    if lam is not None or lam_ratio is not None:
        raise InvalidInputError(f"give either {mu}/{mu_ratio} or lam{plural}/"
                                f"lam_ratio{plural}, not both.")
    return options.pop(mu, None), options.pop(mu_ratio, None)


def solve_data(
    form: Formulation | str,
    data: ProblemData,
    reg: float,
    *,
    solver: str = "clarabel",
    tol: float = 1e-6,
    method: str = "auto",
    verbose: bool = False,
    progress: bool | str = False,
    solver_options: Mapping[str, Any] | None = None,
    memory_limit: Any = None,
    **options: Any,
) -> Solution:
    """Solve ``form`` on prepared ``data`` at regularisation ``reg`` and certify.

    See :func:`solve` for the arguments; ``reg`` is the resolved ``λ`` (or ``μ``).
    """
    form = get_formulation(form)
    chosen = form.choose_method(data, method)
    method_opts, form_opts, aug = split_options(form, chosen, options)
    opts = SolveOptions(
        solver=resolve_solver(solver),
        tol=tolerance(tol),
        method=chosen,
        verbose=boolean(verbose, "verbose"),
        solver_options=dict(solver_options or {}),
        progress=progress_mode(progress),
        memory_limit=memory_limit,
        method_options=method_opts,
        form_options=form_opts,
    )
    zero = form.zero_weights(data)
    if zero is not None and reg >= form.zero_threshold(data):
        # λ ≥ λ_max: w = 0 is optimal (the certificate below proves it); no solver needed,
        # and none could work at, say, λ = 1e300
        return form.make_solution(
            data, reg, zero, opts, status="optimal", solver="numpy", method="closed_form",
            build_s=0.0, solve_s=0.0,
            info={"closed_form": f"{form.reg_name} ≥ {form.reg_name}_max: every weight is 0"})
    check_solver_options(opts.solver, dict(opts.solver_options))
    impl = algorithm(form, chosen)
    check_memory(form, data, chosen, memory_limit)
    sol = impl.run(form, data, reg, opts)
    if aug.augment:
        sol = augment.run(form, data, reg, opts, sol,
                          lambda d: impl.run(form, d, reg, opts), aug)
    return sol


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
    progress: bool | str = False,
    solver_options: dict[str, Any] | None = None,
    memory_limit: Any = None,
    **options: Any,
) -> Solution:
    """Solve a registered convex program and certify the answer in numpy.

    Parameters
    ----------
    formulation : str
        Registry name, e.g. ``"gated_relu"`` (``convexnn.formulations.REGISTRY``).
    X : array_like of shape (n, d)
        The inputs.
    y : array_like of shape (n,) or (n, c)
        The targets (several columns: several outputs).
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
        ``"auto"`` or a method the formulation offers (``REGISTRY[name].methods``:
        ``"ipm"`` the declarative cvxpy program; ``"fast"`` the structured solver;
        ``"reweight"``; ``"cholesky"``). ``"auto"`` picks by size.
    seed : int or None, default 0
        Seed of the sampled gates when ``patterns`` is a number (or None).
    verbose : bool, default False
        Show the solver's output.
    progress : bool, default False
        Show a progress bar (methods that iterate).
    solver_options : dict
        Passed to the solver, overriding accuracy defaults.
    progress : bool or {"auto", "verbose", "quiet"}
        A progress line on stderr for long solves (iteration, objective, relative gap,
        elapsed): True/"auto" on a terminal only, "verbose" always, False/"quiet" never.
    memory_limit : int or str
        Bytes (or ``"8G"``) a solve may plan to use; a
        :class:`~convexnn.errors.ProblemTooLargeError` is raised before building a problem
        that would not fit (default ``$CONVEXNN_MEMORY_LIMIT`` or 80% of the available
        memory).
    **options
        The method's options (e.g. ``init``, ``max_iter``, ``polish``, ``threads`` for the
        gated-ReLU ``"fast"`` method; ``warm_start``, ``working_set_rounds`` for ReLU's),
        the formulation's (ReLU: ``repair``) and, for gated_relu and relu, the
        augmentation loop's (``augment``, ``candidates``, ``max_rounds``,
        ``add_per_round``, ``max_patterns``). Each method module documents its
        ``Options``.

    Returns
    -------
    Solution
        With ``certificate`` computed in numpy from the returned point.

    Examples
    --------
    >>> import convexnn as cn
    >>> data = cn.planted_relu(n=100, d=4, seed=0)
    >>> sol = cn.solve("gated_relu", data.X, data.y, patterns=50, lam_ratio=0.1)
    >>> sol.certificate.certified
    True
    >>> value = sol.network.objective(data.X, data.y, sol.lam)  # the network's training objective
    >>> abs(value - sol.objective) <= 1e-8 * sol.objective      # equals the convex optimum
    True
    """
    form = get_formulation(formulation)
    lam, lam_ratio = mu_alias(form, options, lam, lam_ratio)
    tol = tolerance(tol)
    data = prepare(X, y, patterns=patterns, bias=bias, seed=seed)
    reg = form.resolve_reg(data, lam, lam_ratio)
    return solve_data(form, data, reg, solver=solver, tol=tol, method=method, verbose=verbose,
                      progress=progress, solver_options=solver_options,
                      memory_limit=memory_limit, **options)
