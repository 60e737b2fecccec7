"""Gated-ReLU network training as a group lasso (SPEC §1), exact and unconstrained.

Primal:  p_G = min_W ½||Σ_i D_i X W_i − Y||² + λ Σ_i ||W_i||_F
Dual:    d_G = max_Z ⟨Y, Z⟩ − ½||Z||²   s.t.  ||X^T D_i Z||_F ≤ λ  for every pattern i.

Both are built once per pattern set as DPP cvxpy problems with ``λ`` a
``cp.Parameter``; the design ``A = [D_1 X, …, D_P X]`` is one sparse matrix and the
P group norms are one vectorised ``norm(·, axis=0)`` — no Python loop over patterns.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cvxpy as cp
import numpy as np

from ..certificate import Certificate, gated_relu_certificate
from ..errors import ConvexNNError
from ..networks import GatedReLUNetwork
from ..ops import adjoint, design_matrix, group_norms
from ..solution import Solution
from ..solvers import run_problem
from .base import Formulation, ProblemData, SolveOptions

__all__ = ["GatedReLU", "GatedReLUProgram", "GatedReLUDual", "build_primal", "build_dual"]

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


def _check_dpp(problem: cp.Problem, what: str) -> None:
    if not problem.is_dcp(dpp=True):
        raise ConvexNNError(f"internal error: the {what} is not DPP; please report it.")


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
    _check_dpp(problem, "gated-ReLU primal")
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
    _check_dpp(problem, "gated-ReLU dual")
    return GatedReLUDual(problem, lam, Z)


class GatedReLU(Formulation):
    """Group lasso of SPEC §1 (gated-ReLU networks)."""

    name = "gated_relu"
    title = "Gated-ReLU network ↔ group lasso"
    reg_name = "lam"
    methods = ("ipm",)
    math = MATH

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

    def solve(self, data: ProblemData, reg: float, options: SolveOptions, **kwargs: Any
              ) -> Solution:
        if kwargs:
            raise TypeError(f"unexpected options for gated_relu: {sorted(kwargs)}")
        start = time.perf_counter()
        program = build_primal(data.X, data.Y, data.M)
        program.lam.value = reg
        build_s = time.perf_counter() - start
        run = run_problem(program.problem, options.solver, tol=options.tol,
                          verbose=options.verbose, options=dict(options.solver_options))
        compile_s = float(getattr(program.problem, "compilation_time", 0.0) or 0.0)
        return self.make_solution(
            data, reg, {"W": program.weights()}, options,
            status=run.status, solver=run.solver, method="ipm",
            build_s=build_s + compile_s, solve_s=max(run.seconds - compile_s, 0.0),
            info={"iterations": run.iterations, "solver_objective": run.solver_objective},
        )
