"""Multiple kernel learning over the pattern kernels (SPEC §3).

The gated-ReLU group lasso is, up to an exact change of regularisation, the simplex
MKL problem with the pattern kernels ``K_i = D_i X Xᵀ D_i``:

    p_MKL(μ) = min_{η∈Δ} min_W ½||Σ_i D_i X W_i − Y||² + (μ/2) Σ_i ||W_i||²/η_i
             = min_W ½||Σ_i D_i X W_i − Y||² + (μ/2) (Σ_i ||W_i||)²

For fixed ``η`` the inner problem is kernel ridge regression with
``K_η = Σ_i η_i K_i = (X Xᵀ) ∘ (M diag(η) Mᵀ)``:

    J(η) = (μ/2) ⟨Y, (K_η + μI)⁻¹ Y⟩,   α = (K_η + μI)⁻¹ Y,   W_i = η_i Xᵀ D_i α.

Its dual is the Lanckriet SOCP ``max_Z ⟨Y, Z⟩ − ½||Z||² − (1/2μ) max_i ||Xᵀ D_i Z||²``.

This module has the closed forms and numpy certificates (kernel ridge for a fixed
``η``, and simplex MKL), the three declarative cvxpy programs (joint primal, inner
kernel ridge with ``η`` a parameter, Lanckriet dual — all DPP), the exact
``λ ↔ μ`` map to the group lasso, and the registered formulation ``"mkl"``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import cvxpy as cp
import numpy as np
import scipy.linalg as sla

from ..certificate import DEFAULT_TOLERANCE, Certificate, make_certificate
from ..errors import ConvexNNError, InvalidInputError
from ..ops import adjoint, design_matrix, forward, group_norms, masked_gram
from ..solution import Solution
from ..solvers import run_problem
from .base import ProblemData, SolveOptions, check_dpp, ipm_scales, scaled_data
from .gated_relu import GroupLassoFormulation, _per_output_blocks

__all__ = [
    "MKL",
    "MKLProgram",
    "MKLDual",
    "KernelRidgeProgram",
    "build_primal",
    "build_dual",
    "build_kernel_ridge",
    "kernel_ridge",
    "kernel_ridge_weights",
    "kernel_ridge_objective",
    "kernel_ridge_dual_value",
    "kernel_ridge_certificate",
    "mkl_objective",
    "mkl_dual_value",
    "mkl_certificate",
    "lam_to_mu",
    "mu_to_lam",
    "mkl_value_from_gated",
    "mu_scale",
]

MATH = """\
Simplex multiple kernel learning over the pattern kernels K_i = D_i X Xᵀ D_i:

    p_MKL(μ) = min_{η∈Δ} min_W ½||Σ_i D_i X w_i − y||² + (μ/2) Σ_i ||w_i||²/η_i
             = min_W  ½||Σ_i D_i X w_i − y||² + (μ/2) (Σ_i ||w_i||₂)²

(the variational identity (Σ||w_i||)² = min_{η∈Δ} Σ ||w_i||²/η_i, attained at
η_i = ||w_i||/Σ||w_j||). For fixed η the inner problem is kernel ridge regression:
    J(η) = (μ/2) yᵀ(K_η + μI)⁻¹y,  α = (K_η + μI)⁻¹y,  w_i = η_i Xᵀ D_i α,
with K_η = Σ η_i K_i = (XXᵀ) ∘ (M diag(η) Mᵀ).
Lanckriet dual (an SOCP):  p_MKL = max_{z,s} yᵀz − ½||z||² − s²/(2μ)
                                      s.t. ||Xᵀ D_i z|| ≤ s  for every i.
Certificate from any W and any z: primal ½||y − ŷ||² + (μ/2)(Σ||w_i||)², dual value at
the best multiple of z (the residual, or the solver's z): ⟨y,z⟩²/(2(||z||² + max_i||Xᵀ D_i z||²/μ)).
Exact map to the group lasso (gated ReLU, §1): the optimum W* at λ solves MKL at
μ = λ/Σ||w_i*||; conversely λ = μ Σ||w_i^MKL||; p_MKL(μ) = p_G(λ) − λ²/(2μ).
"""


# ---------------------------------------------------------------------------
# Closed forms
# ---------------------------------------------------------------------------


def mu_scale(X: np.ndarray) -> float:
    """``||X||₂²``: the largest eigenvalue any simplex kernel ``K_η`` (η ∈ Δ) can have.

    ``K_η ⪯ Σ η_i ||D_i X||₂² I ⪯ ||X||₂² I``, so ``μ`` is naturally measured against it;
    there is no finite ``μ`` at which the zero solution is optimal.
    """
    return float(np.linalg.norm(X, 2) ** 2)


def _check_eta(eta: Any, P: int, name: str = "eta") -> np.ndarray:
    eta = np.asarray(eta, dtype=np.float64)
    if eta.shape != (P,):
        raise InvalidInputError(f"{name} must have shape ({P},) (one weight per pattern); "
                                f"got {eta.shape}.")
    if not np.all(np.isfinite(eta)) or np.any(eta < 0):
        raise InvalidInputError(f"{name} must be finite and non-negative.")
    return eta


def kernel_ridge(X: np.ndarray, Y: np.ndarray, M: np.ndarray, eta: np.ndarray, mu: float
                 ) -> tuple[float, np.ndarray]:
    """Kernel ridge with ``K_η`` in closed form: ``J(η) = (μ/2)⟨Y, α⟩``, ``α = (K_η + μI)⁻¹Y``.

    One Cholesky factorisation of the n×n matrix ``K_η + μI``; the kernel is formed by
    the Hadamard/GEMM identity (never P n×n matrices).

    Returns
    -------
    value : float — ``J(η)``
    alpha : ndarray (n, c)
    """
    eta = _check_eta(eta, M.shape[1])
    K = masked_gram(X, M, eta)
    K[np.diag_indices_from(K)] += mu
    factor = sla.cho_factor(K, lower=True, overwrite_a=True, check_finite=False)
    alpha = sla.cho_solve(factor, Y, check_finite=False)
    return 0.5 * mu * float(np.sum(Y * alpha)), alpha


def kernel_ridge_weights(X: np.ndarray, M: np.ndarray, eta: np.ndarray, alpha: np.ndarray
                         ) -> np.ndarray:
    """The weights of the kernel-ridge solution: ``W_i = η_i Xᵀ D_i α`` (P, d, c)."""
    return np.asarray(eta, dtype=np.float64)[:, None, None] * adjoint(X, M, alpha)


def _weighted_penalty(W: np.ndarray, eta: np.ndarray) -> float:
    """``Σ_i ||W_i||²/η_i`` with 0/0 = 0 and (w ≠ 0)/0 = ∞."""
    sq = group_norms(W) ** 2
    on = eta > 0
    if np.any(sq[~on] > 0):
        return float("inf")
    return float(np.sum(sq[on] / eta[on]))


def kernel_ridge_objective(X: np.ndarray, Y: np.ndarray, M: np.ndarray, W: np.ndarray,
                           eta: np.ndarray, mu: float) -> float:
    """``½||Σ D_i X W_i − Y||² + (μ/2) Σ_i ||W_i||²/η_i`` for any W (P, d, c)."""
    R = Y - forward(X, M, W)
    return 0.5 * float(np.sum(R * R)) + 0.5 * mu * _weighted_penalty(W, eta)


def _best_multiple(Z: np.ndarray, yz: float, quad: float) -> tuple[float, np.ndarray]:
    """``max_{s ≥ 0} s·yz − ½ s² quad`` (a dual value along the ray of Z) and ``s*Z``."""
    if yz <= 0 or quad <= 0:
        return 0.0, np.zeros_like(Z)
    return 0.5 * yz * yz / quad, Z * (yz / quad)


def kernel_ridge_dual_value(X: np.ndarray, Y: np.ndarray, M: np.ndarray, Z: np.ndarray,
                            eta: np.ndarray, mu: float) -> tuple[float, np.ndarray]:
    """Dual of the kernel ridge at the best multiple of ``Z``.

    Dual: ``max_Z ⟨Y, Z⟩ − ½||Z||² − (1/2μ) Σ_i η_i ||Xᵀ D_i Z||²`` (unconstrained, so every
    Z is feasible); at the optimum ``Z = μα`` = the residual. Returns the value at
    ``s*Z`` with the optimal ``s* ≥ 0`` and that point.
    """
    Z = np.asarray(Z, dtype=np.float64).reshape(Y.shape)
    q = float(np.sum(eta * group_norms(adjoint(X, M, Z)) ** 2))
    return _best_multiple(Z, float(np.sum(Y * Z)), float(np.sum(Z * Z)) + q / mu)


def _finite_candidates(Y: np.ndarray, cands: Iterable[np.ndarray]) -> list[np.ndarray]:
    out = []
    for cand in cands:
        cand = np.asarray(cand, dtype=np.float64)
        if cand.size == Y.size and np.all(np.isfinite(cand)):
            out.append(cand.reshape(Y.shape))
    return out


def kernel_ridge_certificate(
    X: np.ndarray,
    Y: np.ndarray,
    M: np.ndarray,
    W: np.ndarray,
    eta: np.ndarray,
    mu: float,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    scope: str = "sampled",
    duals: Iterable[np.ndarray] = (),
    formulation: str = "kernel_ridge",
    checks: Mapping[str, float] | None = None,
    limits: Mapping[str, float] | None = None,
) -> tuple[Certificate, np.ndarray]:
    """Certificate of the kernel ridge with fixed weights ``η`` for any W (P, d, c).

    Primal ``½||Y − Ŷ||² + (μ/2) Σ ||W_i||²/η_i`` recomputed from W; dual value at the best
    multiple of the residual ``Y − Ŷ`` (or of a candidate in ``duals``). The problem is
    strictly convex and its dual unconstrained, so the gap bounds the suboptimality of W.
    ``checks``/``limits`` are passed to :func:`make_certificate`.
    """
    eta = _check_eta(eta, M.shape[1])
    R = Y - forward(X, M, W)
    primal = 0.5 * float(np.sum(R * R)) + 0.5 * mu * _weighted_penalty(W, eta)
    best, best_Z = -np.inf, np.zeros_like(Y)
    for cand in _finite_candidates(Y, (R, *duals)):
        val, Z = kernel_ridge_dual_value(X, Y, M, cand, eta, mu)
        if val > best:
            best, best_Z = val, Z
    cert = make_certificate(formulation, primal, best, tolerance=tolerance, scope=scope,
                            checks=checks, limits=limits)
    return cert, best_Z


def mkl_objective(X: np.ndarray, Y: np.ndarray, M: np.ndarray, W: np.ndarray, mu: float
                  ) -> float:
    """``½||Σ D_i X W_i − Y||² + (μ/2)(Σ_i ||W_i||)²`` — the MKL value of W at its best η."""
    R = Y - forward(X, M, W)
    return 0.5 * float(np.sum(R * R)) + 0.5 * mu * float(np.sum(group_norms(W))) ** 2


def mkl_dual_value(X: np.ndarray, Y: np.ndarray, M: np.ndarray, Z: np.ndarray, mu: float
                   ) -> tuple[float, np.ndarray]:
    """Lanckriet dual at the best multiple of ``Z``: a lower bound on ``p_MKL(μ)``.

    ``D(Z) = ⟨Y, Z⟩ − ½||Z||² − (1/2μ) max_i ||Xᵀ D_i Z||²`` for every Z (SPEC §3, with
    ``Z = μα`` from any α); the value at ``s*Z`` with the optimal ``s* ≥ 0`` is returned
    with that point.
    """
    Z = np.asarray(Z, dtype=np.float64).reshape(Y.shape)
    top = float(np.max(group_norms(adjoint(X, M, Z)), initial=0.0)) ** 2
    return _best_multiple(Z, float(np.sum(Y * Z)), float(np.sum(Z * Z)) + top / mu)


def mkl_certificate(
    X: np.ndarray,
    Y: np.ndarray,
    M: np.ndarray,
    W: np.ndarray,
    mu: float,
    *,
    eta: np.ndarray | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    scope: str = "sampled",
    duals: Iterable[np.ndarray] = (),
    formulation: str = "mkl",
) -> tuple[Certificate, np.ndarray]:
    """Certificate of simplex MKL for any W (P, d, c).

    Primal :func:`mkl_objective` (the value of W with its optimal kernel weights); dual
    :func:`mkl_dual_value` at the residual and at each candidate in ``duals``. When the
    reported kernel weights ``eta`` are given, their distance to the simplex is the
    check ``eta_simplex``.
    """
    R = Y - forward(X, M, W)
    primal = 0.5 * float(np.sum(R * R)) + 0.5 * mu * float(np.sum(group_norms(W))) ** 2
    best, best_Z = -np.inf, np.zeros_like(Y)
    for cand in _finite_candidates(Y, (R, *duals)):
        val, Z = mkl_dual_value(X, Y, M, cand, mu)
        if val > best:
            best, best_Z = val, Z
    checks = {}
    if eta is not None:
        eta = np.asarray(eta, dtype=np.float64)
        checks["eta_simplex"] = float(max(abs(eta.sum() - 1.0), -min(eta.min(initial=0.0), 0.0)))
    cert = make_certificate(formulation, primal, best, tolerance=tolerance, scope=scope,
                            checks=checks)
    return cert, best_Z


# ---------------------------------------------------------------------------
# The exact λ ↔ μ map (SPEC §3)
# ---------------------------------------------------------------------------


def _total_norm(W: Any) -> float:
    if isinstance(W, Solution):
        W = W.weights["W"]
    W = np.asarray(W, dtype=np.float64)
    if W.ndim == 2:
        W = W[:, :, None]
    if W.ndim != 3:
        raise InvalidInputError(f"W must be weights of shape (P, d[, c]) or a Solution; got "
                                f"shape {W.shape}.")
    return float(np.sum(group_norms(W)))


def lam_to_mu(lam: float, W: Any) -> float:
    """``μ = λ / Σ_i ||W_i||`` for the group-lasso optimum ``W`` at ``λ`` (SPEC §3).

    ``W`` is the weight array (P, d[, c]) or a gated-ReLU :class:`Solution`. That W then
    also solves simplex MKL at ``μ`` with ``η_i = ||W_i||/Σ||W_j||``.
    """
    total = _total_norm(W)
    if not total > 0:
        raise InvalidInputError(
            "W is zero (λ ≥ λ_max): the zero solution corresponds to μ = ∞; no finite μ."
        )
    return float(lam) / total


def mu_to_lam(mu: float, W: Any) -> float:
    """``λ = μ Σ_i ||W_i||`` for the simplex-MKL optimum ``W`` at ``μ`` (SPEC §3).

    ``W`` then also solves the gated-ReLU group lasso at ``λ``.
    """
    return float(mu) * _total_norm(W)


def mkl_value_from_gated(p_gated: float, lam: float, mu: float) -> float:
    """``p_MKL(μ) = p_G(λ) − λ²/(2μ)`` at matched ``(λ, μ)``."""
    return float(p_gated) - float(lam) ** 2 / (2.0 * float(mu))


# ---------------------------------------------------------------------------
# Declarative cvxpy programs (all DPP)
# ---------------------------------------------------------------------------


def _blocks_from_columns(V: np.ndarray, P: int, d: int, c: int) -> np.ndarray:
    """(d·c, P) with column i = vec(W_i) (column-major) → blocks (P, d, c)."""
    return np.ascontiguousarray(np.asarray(V).T.reshape(P, c, d).transpose(0, 2, 1))


def _fit(A: Any, W: cp.Expression, Y: np.ndarray, d: int, P: int) -> cp.Expression:
    return sum(cp.sum_squares(e - Y[:, k]) for k, e in
               enumerate(_per_output_blocks(A, W, d, P, Y.shape[1], transpose=False)))


@dataclass
class MKLProgram:
    """Joint convex MKL primal over (W, η, t); set ``mu.value`` and re-solve."""

    problem: cp.Problem
    mu: cp.Parameter
    W: cp.Variable  # (d·c, P), column i = vec(W_i)
    eta: cp.Variable  # (P,)
    P: int
    d: int
    c: int

    def weights(self) -> np.ndarray:
        return _blocks_from_columns(self.W.value, self.P, self.d, self.c)


def build_primal(X: np.ndarray, Y: np.ndarray, M: np.ndarray) -> MKLProgram:
    """``min ½||A vec(W) − Y||² + (μ/2) Σ_i t_i  s.t. ||W_i||² ≤ t_i η_i, η ∈ Δ`` (DPP).

    ``||W_i||² ≤ t_i η_i`` (the epigraph of ``quad_over_lin``) is one vectorised
    second-order cone ``||(2W_i, t_i − η_i)|| ≤ t_i + η_i`` over the P columns.
    """
    n, d = X.shape
    P, c = M.shape[1], Y.shape[1]
    A = design_matrix(X, M)
    mu = cp.Parameter(nonneg=True, name="mu")
    W = cp.Variable((d * c, P), name="W")
    eta = cp.Variable(P, nonneg=True, name="eta")
    t = cp.Variable(P, name="t")
    cone = cp.SOC(t + eta, cp.vstack([2 * W, cp.reshape(t - eta, (1, P), order="F")]), axis=0)
    problem = cp.Problem(
        cp.Minimize(0.5 * _fit(A, W, Y, d, P) + 0.5 * mu * cp.sum(t)),
        [cone, cp.sum(eta) == 1],
    )
    check_dpp(problem, "MKL primal")
    return MKLProgram(problem, mu, W, eta, P, d, c)


@dataclass
class KernelRidgeProgram:
    """Kernel ridge for fixed η as a cvxpy problem; ``root_eta`` = √η and ``mu`` are parameters.

    With the substitution ``W_i = √η_i V_i`` the penalty ``Σ ||W_i||²/η_i`` becomes
    ``||V||²`` and η enters only as a parameter multiplying a variable (DPP), also for
    ``η_i = 0``.
    """

    problem: cp.Problem
    mu: cp.Parameter
    root_eta: cp.Parameter
    V: cp.Variable
    P: int
    d: int
    c: int

    def set(self, eta: np.ndarray, mu: float) -> None:
        self.root_eta.value = np.sqrt(_check_eta(eta, self.P))
        self.mu.value = float(mu)

    def weights(self) -> np.ndarray:
        V = _blocks_from_columns(self.V.value, self.P, self.d, self.c)
        return np.asarray(self.root_eta.value)[:, None, None] * V


def build_kernel_ridge(X: np.ndarray, Y: np.ndarray, M: np.ndarray) -> KernelRidgeProgram:
    """``min_V ½||Σ D_i X √η_i V_i − Y||² + (μ/2)||V||²`` (value ``J(η)``), DPP in (√η, μ)."""
    n, d = X.shape
    P, c = M.shape[1], Y.shape[1]
    A = design_matrix(X, M)
    mu = cp.Parameter(nonneg=True, name="mu")
    root_eta = cp.Parameter(P, nonneg=True, name="root_eta")
    V = cp.Variable((d * c, P), name="V")
    W = cp.multiply(V, cp.reshape(root_eta, (1, P), order="F"))
    problem = cp.Problem(cp.Minimize(0.5 * _fit(A, W, Y, d, P) + 0.5 * mu * cp.sum_squares(V)))
    check_dpp(problem, "kernel ridge")
    return KernelRidgeProgram(problem, mu, root_eta, V, P, d, c)


@dataclass
class MKLDual:
    """The Lanckriet dual SOCP; ``inv_mu`` = 1/μ is the parameter (DPP)."""

    problem: cp.Problem
    inv_mu: cp.Parameter
    Z: cp.Variable
    s: cp.Variable


def build_dual(X: np.ndarray, Y: np.ndarray, M: np.ndarray) -> MKLDual:
    """``max ⟨Y, Z⟩ − ½||Z||² − s²/(2μ)  s.t. ||Xᵀ D_i Z||_F ≤ s ∀i`` (DPP in 1/μ)."""
    n, d = X.shape
    P, c = M.shape[1], Y.shape[1]
    A = design_matrix(X, M)
    inv_mu = cp.Parameter(nonneg=True, name="inv_mu")
    Z = cp.Variable((n, c), name="Z")
    s = cp.Variable(name="s")
    G = cp.vstack(_per_output_blocks(A, Z, d, P, c, transpose=True))  # (d·c, P)
    problem = cp.Problem(
        cp.Maximize(cp.sum(cp.multiply(Y, Z)) - 0.5 * cp.sum_squares(Z)
                    - 0.5 * inv_mu * cp.square(s)),
        [cp.norm(G, 2, axis=0) <= s],
    )
    check_dpp(problem, "MKL dual")
    return MKLDual(problem, inv_mu, Z, s)


# ---------------------------------------------------------------------------
# The registered formulation
# ---------------------------------------------------------------------------


class MKL(GroupLassoFormulation):
    """Simplex MKL over the pattern kernels (SPEC §3); regularisation ``μ``.

    ``reg_max`` is the kernel scale ``||X||₂²`` (``mu_ratio`` is relative to it): no
    finite μ makes zero optimal. Methods: ``"ipm"`` (the joint cvxpy program) and
    ``"reweight"`` (the iterative reweighting of SPEC §5, numpy only).
    """

    name = "mkl"
    title = "Simplex multiple kernel learning over the pattern kernels"
    reg_name = "mu"
    methods = ("ipm", "reweight")
    math = MATH

    def reg_max(self, data: ProblemData) -> float:
        return mu_scale(data.X)

    def certify(self, data: ProblemData, reg: float, weights: Mapping[str, np.ndarray],
                dual: Mapping[str, np.ndarray] | None = None, *, tol: float = 1e-6
                ) -> tuple[Certificate, dict[str, np.ndarray]]:
        duals = [dual["z"]] if dual is not None and "z" in dual else []
        cert, Z = mkl_certificate(
            data.X, data.Y, data.M, weights["W"], reg, eta=weights.get("eta"),
            tolerance=tol, scope=data.patterns.scope, duals=duals, formulation=self.name,
        )
        return cert, {"z": Z}

    def solve(self, data: ProblemData, reg: float, options: SolveOptions, **kwargs: Any
              ) -> Solution:
        if options.method == "reweight":
            from ..reweight import reweight_data

            result = reweight_data(data, mu=reg, tol=options.tol, progress=options.progress,
                                   solver=options.solver, **kwargs)
            return self.make_solution(
                data, reg, {"W": result.weights, "eta": result.eta}, options,
                status=result.status, solver="numpy", method="reweight",
                build_s=0.0, solve_s=result.seconds, dual={"z": result.dual},
                info={"iterations": result.iterations, "lam": result.lam},
            )
        self.reject_options(kwargs, context=" with method='ipm'")
        start = time.perf_counter()
        # solved on X/a, Y/s at μ/a² (base.ipm_scales); W maps back by s/a, η unchanged
        a, s = ipm_scales(data)
        scaled = scaled_data(data, a, s)
        program = build_primal(scaled.X, scaled.Y, scaled.M)
        program.mu.value = reg / (a * a)
        build_s = time.perf_counter() - start
        run = run_problem(program.problem, options.solver, tol=options.tol,
                          verbose=options.verbose, options=dict(options.solver_options))
        if program.W.value is None or program.eta.value is None:
            raise ConvexNNError(f"{run.solver} returned no primal point for the MKL problem.")
        W = program.weights() * (s / a)
        return self.make_solution(
            data, reg, {"W": W, "eta": np.asarray(program.eta.value, dtype=np.float64)},
            options, status=run.status, solver=run.solver, method="ipm",
            build_s=build_s + run.compile_s, solve_s=run.solve_s,
            info={"iterations": run.iterations,
                  "solver_objective": (None if run.solver_objective is None
                                       else run.solver_objective * s * s),
                  "lam": mu_to_lam(reg, W), "scaling": {"X": a, "y": s}},
        )
