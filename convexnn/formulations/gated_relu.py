"""Gated-ReLU network training as a group lasso (SPEC §1), exact and unconstrained.

Primal:  p_G = min_W ½||Σ_i D_i X W_i − Y||² + λ Σ_i ||W_i||_F
Dual:    d_G = max_Z ⟨Y, Z⟩ − ½||Z||²   s.t.  ||X^T D_i Z||_F ≤ λ  for every pattern i.

Both are built once per pattern set as DPP cvxpy problems with ``λ`` a
``cp.Parameter``; the design ``A = [D_1 X, …, D_P X]`` is one sparse matrix and the
P group norms are one vectorised ``norm(·, axis=0)`` — no Python loop over patterns.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cvxpy as cp
import numpy as np

from ..certificate import Certificate, gated_relu_certificate
from ..errors import ConvexNNError, InvalidInputError
from ..group_lasso import (
    GRAM_CACHE_COLUMNS,
    NEWTON_MAX_DIM,
    GroupLassoOperator,
    solve_group_lasso,
)
from ..memory import dense_bytes, ipm_bytes, require_memory
from ..networks import GatedReLUNetwork
from ..ops import adjoint, design_matrix, group_norms
from ..solution import Solution
from ..solvers import InaccurateSolutionWarning, run_problem
from .base import Formulation, ProblemData, SolveOptions, check_dpp, ipm_scales, scaled_data

__all__ = [
    "GatedReLU",
    "GroupLassoFormulation",
    "GatedReLUProgram",
    "GatedReLUDual",
    "build_primal",
    "build_dual",
    "memory_estimates",
    "AUTO_IPM_MAX_SIZE",
]

#: ``method="auto"`` uses the interior-point program while ``n·d·P·c`` is at most this
#: (it then takes a fraction of a second), and the first-order method above it.
AUTO_IPM_MAX_SIZE = 100_000

MATH = """\
Gated-ReLU network  f(x) = Σ_j 1[g_j^T x ≥ 0] (x^T u_j) a_j  trained with
    ½||f(X) − y||² + (λ/2) Σ_j (||u_j||² + a_j²)
is exactly the group lasso over the activation patterns D_i = diag(1[X g_i ≥ 0]):

    p_G = min_W  ½ || Σ_i D_i X w_i − y ||²  +  λ Σ_i ||w_i||₂

Dual:  d_G = max_z  yᵀz − ½||z||²   s.t.  ||Xᵀ D_i z||₂ ≤ λ  for every i,
with z* = y − ŷ* (the residual). Certificate from ANY W: r = y − ŷ,
z = r · min(1, λ / max_i ||Xᵀ D_i r||) is dual feasible; gap = p(W) − d(z) ≥ 0.
λ_max = max_i ||Xᵀ D_i y|| is the smallest λ with W = 0 optimal.
Network from W: each w_i ≠ 0 gives a neuron (gate g_i, u = w_i/√||w_i||, a = √||w_i||),
and its training objective equals the convex objective exactly.
"""


@dataclass
class GatedReLUProgram:
    """The built primal: set ``lam.value`` and call ``problem.solve`` to re-solve cheaply."""

    problem: cp.Problem
    lam: cp.Parameter
    W: cp.Variable  # (d·c, P): column i is vec(W_i) in column-major order
    P: int
    d: int
    c: int

    def weights(self) -> np.ndarray:
        """The solution as blocks (P, d, c)."""
        return np.ascontiguousarray(
            np.asarray(self.W.value).T.reshape(self.P, self.c, self.d).transpose(0, 2, 1)
        )

    def set_weights(self, W: np.ndarray) -> None:
        """Warm-start value from blocks (P, d, c)."""
        self.W.value = W.transpose(0, 2, 1).reshape(self.P, self.d * self.c).T


@dataclass
class GatedReLUDual:
    """The built dual: ``Z`` (n × c) with ``lam`` a parameter."""

    problem: cp.Problem
    lam: cp.Parameter
    Z: cp.Variable


def _per_output_blocks(A: Any, var: cp.Expression, d: int, P: int, c: int,
                       transpose: bool) -> list[cp.Expression]:
    """Per output k: ``A vec(W_k)`` (primal) or ``reshape(Aᵀ z_k)`` (dual) as expressions."""
    out = []
    for k in range(c):
        if transpose:
            out.append(cp.reshape(A.T @ var[:, k], (d, P), order="F"))
        else:
            out.append(A @ cp.vec(var[k * d:(k + 1) * d, :], order="F"))
    return out


def build_primal(X: np.ndarray, Y: np.ndarray, M: np.ndarray) -> GatedReLUProgram:
    """``min ½||A vec(W) − Y||² + λ Σ_i ||W_i||_F`` as a DPP cvxpy problem."""
    n, d = X.shape
    P, c = M.shape[1], Y.shape[1]
    A = design_matrix(X, M)
    lam = cp.Parameter(nonneg=True, name="lam")
    W = cp.Variable((d * c, P), name="W")
    fit = sum(cp.sum_squares(e - Y[:, k]) for k, e in
              enumerate(_per_output_blocks(A, W, d, P, c, transpose=False)))
    problem = cp.Problem(cp.Minimize(0.5 * fit + lam * cp.sum(cp.norm(W, 2, axis=0))))
    check_dpp(problem, "gated-ReLU primal")
    return GatedReLUProgram(problem, lam, W, P, d, c)


def build_dual(X: np.ndarray, Y: np.ndarray, M: np.ndarray) -> GatedReLUDual:
    """``max ⟨Y, Z⟩ − ½||Z||² s.t. ||X^T D_i Z||_F ≤ λ`` as a DPP cvxpy problem."""
    n, d = X.shape
    P, c = M.shape[1], Y.shape[1]
    A = design_matrix(X, M)
    lam = cp.Parameter(nonneg=True, name="lam")
    Z = cp.Variable((n, c), name="Z")
    G = cp.vstack(_per_output_blocks(A, Z, d, P, c, transpose=True))  # (d·c, P)
    problem = cp.Problem(
        cp.Maximize(cp.sum(cp.multiply(Y, Z)) - 0.5 * cp.sum_squares(Z)),
        [cp.norm(G, 2, axis=0) <= lam],
    )
    check_dpp(problem, "gated-ReLU dual")
    return GatedReLUDual(problem, lam, Z)


def memory_estimates(data: ProblemData) -> dict[str, int]:
    """Estimated peak bytes of each method on ``data`` (see :mod:`convexnn.memory`).

    ``"ipm"``: ``nnz(A) = c·d·nnz(M)`` non-zeros, ``n·c + P·(2·d·c + 1)`` rows/variables.
    ``"fast"``: ``O(nP + n·d·c + P·d·c)`` — the float copy of ``M``, one working-set copy
    of it, the GEMM temporaries and a dozen iterate-sized arrays — plus the bounded
    Newton refinement (cached Gram blocks and one Hessian, see
    :mod:`convexnn.group_lasso`).
    """
    n, d, P, c = data.n, data.d, data.P, data.c
    nnz = int(np.count_nonzero(data.M)) * d * c
    newton = (min(GRAM_CACHE_COLUMNS, P * d) ** 2 + 2 * min(NEWTON_MAX_DIM, P * d * c) ** 2
              + 2 * n * min(GRAM_CACHE_COLUMNS, P * d))
    return {
        "ipm": ipm_bytes(nnz, n * c + P * (2 * d * c + 1)),
        "fast": dense_bytes(2 * n * P, 4 * n * d * c, 16 * P * d * c, 12 * n * c, newton)
        + 2**20,
    }


_FAST_OPTIONS = ("init", "max_iter", "polish", "working_set", "threads", "memory_limit")
_IPM_OPTIONS = ("memory_limit",)


class GroupLassoFormulation(Formulation):
    """Formulations whose weights are the group-lasso blocks ``W`` (P, d, c) of SPEC §1.

    They share ``λ_max``, the numpy certificate of the group lasso and the gated-ReLU
    network the blocks encode; subclasses differ in how they reach the optimum.
    """

    def reg_max(self, data: ProblemData) -> float:
        """``λ_max = max_i ||X^T D_i Y||_F``."""
        return float(group_norms(adjoint(data.X, data.M, data.Y)).max())

    def certify(self, data: ProblemData, reg: float, weights: Mapping[str, np.ndarray],
                dual: Mapping[str, np.ndarray] | None = None, *, tol: float = 1e-6
                ) -> tuple[Certificate, dict[str, np.ndarray]]:
        duals = [dual["z"]] if dual is not None and "z" in dual else []
        cert, Z = gated_relu_certificate(
            data.X, data.Y, data.M, weights["W"], reg, tolerance=tol,
            scope=data.patterns.scope, duals=duals, formulation=self.name,
        )
        return cert, {"z": Z}

    def network(self, data: ProblemData, weights: Mapping[str, np.ndarray]) -> GatedReLUNetwork:
        return GatedReLUNetwork.from_weights(
            weights["W"], data.patterns.gates, bias=data.bias, single_output=data.single_output
        )


class GatedReLU(GroupLassoFormulation):
    """Group lasso of SPEC §1 (gated-ReLU networks).

    Methods: ``"ipm"`` builds the declarative cvxpy program and solves it with an
    interior-point solver (the reference); ``"fast"`` runs the structured solver of
    :mod:`convexnn.group_lasso` (accelerated proximal gradient with restart on a
    working set, a Newton refinement on the support, and the interior-point program on
    the working set when first-order progress stalls). ``"auto"`` picks ``"ipm"`` when
    ``n·d·P·c ≤ AUTO_IPM_MAX_SIZE`` and ``"fast"`` otherwise. Both certify with the same
    numpy code.

    Options (``solve(..., **options)``): ``memory_limit`` (bytes or ``"2G"``; both
    methods) and, for ``"fast"``, ``init`` (warm-start weights, shape (P, d[, c])),
    ``max_iter`` (proximal-gradient iterations, default 20000), ``polish`` (default
    True), ``working_set`` (default True) and ``threads`` (BLAS threads during the
    solve, default 1: its GEMMs are small and threads contend on shared machines; None
    leaves BLAS as configured).
    """

    name = "gated_relu"
    title = "Gated-ReLU network ↔ group lasso"
    reg_name = "lam"
    methods = ("ipm", "fast")
    math = MATH

    def choose_method(self, data: ProblemData, method: str) -> str:
        """``"auto"``: ``"ipm"`` for ``n·d·P·c ≤ AUTO_IPM_MAX_SIZE``, else ``"fast"``."""
        if method == "auto":
            size = data.n * data.d * data.P * data.c
            return "ipm" if size <= AUTO_IPM_MAX_SIZE else "fast"
        return super().choose_method(data, method)

    def check_memory(self, data: ProblemData, method: str, limit: Any = None) -> None:
        """Raise ProblemTooLargeError when ``method`` would not fit (see ``memory_estimates``)."""
        est = memory_estimates(data)
        require_memory(
            est[method], what=self.name, method=method,
            sizes={"n": data.n, "d": data.d, "P": data.P, "c": data.c},
            alternatives={m: v for m, v in est.items() if m != method}, limit=limit,
        )

    def check_options(self, method: str, kwargs: Mapping[str, Any]) -> None:
        """Refuse options the method does not take (naming the allowed ones)."""
        allowed = _FAST_OPTIONS if method == "fast" else _IPM_OPTIONS
        hint = "" if method == "fast" else " (init, max_iter, polish, working_set and threads " \
            "belong to method='fast')"
        self.reject_options(kwargs, allowed, context=f" with method={method!r}{hint}")

    def solve(self, data: ProblemData, reg: float, options: SolveOptions, **kwargs: Any
              ) -> Solution:
        method = options.method
        self.check_options(method, kwargs)
        self.check_memory(data, method, kwargs.get("memory_limit"))
        if method == "fast":
            return self.solve_fast(data, reg, options, **kwargs)
        return self.solve_ipm(data, reg, options)

    def solve_ipm(self, data: ProblemData, reg: float, options: SolveOptions,
                  program: GatedReLUProgram | None = None) -> Solution:
        """The declarative program (built here unless a built ``program`` is given).

        The solver works on the data rescaled by :func:`~convexnn.formulations.base.ipm_scales`
        (``X/a``, ``Y/s``, ``λ/(a s)``; ``W = (s/a) W'``), so a given ``program`` must be
        built on ``scaled_data(data, *ipm_scales(data))``. The certificate is computed on
        the original data.
        """
        start = time.perf_counter()
        a, s = ipm_scales(data)
        if program is None:
            scaled = scaled_data(data, a, s)
            program = build_primal(scaled.X, scaled.Y, scaled.M)
        program.lam.value = reg / (a * s)
        build_s = time.perf_counter() - start
        run = run_problem(program.problem, options.solver, tol=options.tol,
                          verbose=options.verbose, options=dict(options.solver_options))
        solver_objective = (None if run.solver_objective is None
                            else run.solver_objective * s * s)
        return self.make_solution(
            data, reg, {"W": program.weights() * (s / a)}, options,
            status=run.status, solver=run.solver, method="ipm",
            build_s=build_s + run.compile_s, solve_s=run.solve_s,
            info={"iterations": run.iterations, "solver_objective": solver_objective,
                  "scaling": {"X": a, "y": s}},
        )

    def solve_fast(
        self,
        data: ProblemData,
        reg: float,
        options: SolveOptions,
        *,
        init: Any = None,
        max_iter: int = 20_000,
        polish: bool = True,
        working_set: Any = True,
        threads: int | None = 1,
        memory_limit: Any = None,
        operator: GroupLassoOperator | None = None,
    ) -> Solution:
        """The structured first-order path (:func:`convexnn.group_lasso.solve_group_lasso`).

        ``operator`` (a prebuilt :class:`~convexnn.group_lasso.GroupLassoOperator`) is
        reused along paths. ``working_set`` may also be a boolean mask (P,) of groups to
        start from (e.g. a screening rule's survivors; the answer is always certified
        on the full pattern set).
        """
        W0 = _check_init(init, data) if init is not None else None
        if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) \
                or max_iter < 0:
            raise InvalidInputError(f"max_iter must be an integer ≥ 0; got {max_iter!r}.")
        if not isinstance(polish, (bool, np.bool_)):
            raise InvalidInputError(f"polish must be True or False; got {polish!r}.")
        if threads is not None and (isinstance(threads, bool) or not isinstance(
                threads, (int, np.integer)) or threads < 1):
            raise InvalidInputError(f"threads must be an integer ≥ 1 or None; got {threads!r}.")
        seed_ws = None
        if isinstance(working_set, (bool, np.bool_)):
            use_ws = bool(working_set)
        else:
            seed_ws = np.asarray(working_set)
            if seed_ws.dtype != bool or seed_ws.shape != (data.P,):
                raise InvalidInputError(
                    f"working_set must be True, False or a boolean mask of shape ({data.P},)."
                )
            use_ws = True
        polisher = _Polisher(self, data, reg, options, memory_limit) if polish else None
        with _blas_threads(threads):
            start = time.perf_counter()
            res = solve_group_lasso(
                data.X, data.Y, data.M, reg, W0=W0, tol=options.tol, max_iter=int(max_iter),
                polish=polisher, working_set=seed_ws, use_working_set=use_ws,
                operator=operator,
            )
            solve_s = time.perf_counter() - start
            solver = "numpy" if res.polish_rounds == 0 else f"numpy+{options.solver}"
            info = {
                "iterations": res.iterations,
                "restarts": res.restarts,
                "newton_steps": res.newton_steps,
                "backtracks": res.backtracks,
                "outer_iterations": res.outer_iterations,
                "polish_rounds": res.polish_rounds,
                "polish_seconds": polisher.seconds if polisher else 0.0,
                "polish_error": polisher.error if polisher else None,
                "working_set": res.working_set,
                "screened": res.screened,
                "lipschitz": res.lipschitz,
                "solver_relative_gap": res.relative_gap,
                "history": [list(h) for h in res.history],
                "threads": threads,
            }
            return self.make_solution(
                data, reg, {"W": res.W}, options, status=res.status, solver=solver,
                method="fast", build_s=0.0, solve_s=solve_s, dual={"z": res.Z}, info=info,
            )


def _check_init(init: Any, data: ProblemData) -> np.ndarray:
    W = np.asarray(init, dtype=np.float64)
    if W.ndim == 2 and data.c == 1:
        W = W[:, :, None]
    if W.shape != (data.P, data.d, data.c):
        raise InvalidInputError(
            f"init must have shape ({data.P}, {data.d}"
            f"{', ' + str(data.c) if data.c > 1 else '[, 1]'}) (patterns, features"
            f"{' with the bias column' if data.bias else ''}, outputs); got {W.shape}."
        )
    if not np.all(np.isfinite(W)):
        raise InvalidInputError("init contains NaN or infinite values.")
    return W


class _blas_threads:
    """Limit BLAS threads inside a block (no-op for None).

    One ``ThreadpoolController`` is kept for the process: building it scans the loaded
    libraries, which costs milliseconds — too much to repeat for every λ of a path.
    """

    _controller: Any = None

    def __init__(self, threads: int | None):
        self.threads = threads
        self._ctx = None

    def __enter__(self):
        if self.threads is not None:
            if _blas_threads._controller is None:
                from threadpoolctl import ThreadpoolController

                _blas_threads._controller = ThreadpoolController()
            self._ctx = _blas_threads._controller.limit(limits=int(self.threads),
                                                        user_api="blas")
        return self

    def __exit__(self, *exc):
        if self._ctx is not None:
            self._ctx.restore_original_limits()
        return False


class _Polisher:
    """Interior-point program on a working set of groups (called when FISTA stalls)."""

    def __init__(self, form: GatedReLU, data: ProblemData, reg: float, options: SolveOptions,
                 memory_limit: Any):
        self.form, self.data, self.reg, self.options = form, data, reg, options
        self.memory_limit = memory_limit
        self.seconds = 0.0
        self.error: str | None = None

    def __call__(self, idx: np.ndarray, W_idx: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        try:
            sub = self.data.with_patterns(self.data.patterns.subset(idx))
            self.form.check_memory(sub, "ipm", self.memory_limit)
            program = build_primal(sub.X, sub.Y, sub.M)
            program.lam.value = self.reg
            with warnings.catch_warnings():
                # the full-set certificate decides; an inaccurate polish is just not used
                warnings.simplefilter("ignore", InaccurateSolutionWarning)
                run_problem(program.problem, self.options.solver, tol=self.options.tol,
                            verbose=self.options.verbose,
                            options=dict(self.options.solver_options))
            return program.weights()
        except ConvexNNError as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self.seconds += time.perf_counter() - start
