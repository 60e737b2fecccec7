"""Multiple kernel learning over the pattern kernels (``docs/math/mkl.md``).

The gated-ReLU group lasso is, up to an exact change of regularisation, the simplex
MKL problem with the pattern kernels ``K_i = D_i X Xᵀ D_i``:

    p_MKL(μ) = min_{η∈Δ} min_W ½||Σ_i D_i X W_i − Y||² + (μ/2) Σ_i ||W_i||²/η_i
             = min_W ½||Σ_i D_i X W_i − Y||² + (μ/2) (Σ_i ||W_i||)²

For fixed ``η`` the inner problem is kernel ridge regression (:mod:`convexnn.kernels`,
the NTK formulation at ``η = p``). Its dual is the Lanckriet SOCP
``max_Z ⟨Y, Z⟩ − ½||Z||² − (1/2μ) max_i ||Xᵀ D_i Z||²``.

This module has the numpy certificate of simplex MKL, the declarative cvxpy programs
(joint primal and Lanckriet dual, both DPP), the exact ``λ ↔ μ`` map to the group
lasso, and the registered formulation ``"mkl"``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import cvxpy as cp
import numpy as np

from ..certificate import (
    DEFAULT_TOLERANCE,
    Certificate,
    best_candidate,
    finite_candidates,
    make_certificate,
)
from ..errors import InvalidInputError
from ..kernels import lanckriet_value, mu_scale
from ..networks import GatedReLUNetwork
from ..ops import adjoint, as_blocks, design_matrix, forward, group_norms
from ..problem import ProblemData
from ..solution import Solution
from ..validation import Options
from .base import Formulation, Primal, check_dpp
from .gated_relu import per_output_blocks, squared_fit

__all__ = [
    "MKL",
    "MKLProgram",
    "MKLDual",
    "build_primal",
    "build_dual",
    "mkl_objective",
    "mkl_dual_value",
    "mkl_certificate",
    "lam_to_mu",
    "mu_to_lam",
    "mkl_value_from_gated",
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

#: The programs in LaTeX (amsmath), shown by ``convexnn explain --latex`` / ``--markdown``.
LATEX = (
    r"p_{\mathrm{MKL}}(\mu) = \min_{\eta\in\Delta}\ \frac{\mu}{2}\,y^\top(K_\eta + \mu I)^{-1}y"
    r" = \min_W\ \tfrac12\Big\lVert\sum_i D_iXw_i - y\Big\rVert_2^2"
    r" + \frac{\mu}{2}\Big(\sum_i\lVert w_i\rVert_2\Big)^2",
    r"p_{\mathrm{MKL}}(\mu) = \max_{z,\,s}\ y^\top z - \tfrac12\lVert z\rVert_2^2"
    r" - \frac{s^2}{2\mu}\quad\text{s.t.}\quad \lVert X^\top D_iz\rVert_2 \le s\ \ \forall i",
    r"\mu = \frac{\lambda}{\sum_i\lVert w_i^\star\rVert_2},\qquad"
    r" p_{\mathrm{MKL}}(\mu) = p_G(\lambda) - \frac{\lambda^2}{2\mu}",
)


# ---------------------------------------------------------------------------
# The certificate
# ---------------------------------------------------------------------------


def mkl_objective(X: np.ndarray, Y: np.ndarray, M: np.ndarray, W: np.ndarray, mu: float
                  ) -> float:
    """``½||Σ D_i X W_i − Y||² + (μ/2)(Σ_i ||W_i||)²`` — the MKL value of W at its best η."""
    R = Y - forward(X, M, W)
    return 0.5 * float(np.sum(R * R)) + 0.5 * mu * float(np.sum(group_norms(W))) ** 2


def mkl_dual_value(X: np.ndarray, Y: np.ndarray, M: np.ndarray, Z: np.ndarray, mu: float
                   ) -> tuple[float, np.ndarray]:
    """Lanckriet dual at the best multiple of ``Z``: a lower bound on ``p_MKL(μ)``.

    ``D(Z) = ⟨Y, Z⟩ − ½||Z||² − (1/2μ) max_i ||Xᵀ D_i Z||²`` for every Z (with ``Z = μα``
    from any α); the value at ``s*Z`` with the optimal ``s* ≥ 0`` is returned with that
    point (:func:`convexnn.kernels.lanckriet_value`).
    """
    Z = np.asarray(Z, dtype=np.float64).reshape(Y.shape)
    top = float(np.max(group_norms(adjoint(X, M, Z)), initial=0.0))
    return lanckriet_value(Y, Z, top, mu)


def eta_simplex_distance(eta: np.ndarray) -> float:
    """How far reported kernel weights are from the simplex (sum 1, non-negative)."""
    eta = np.asarray(eta, dtype=np.float64)
    return float(max(abs(eta.sum() - 1.0), -min(eta.min(initial=0.0), 0.0)))


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
    :func:`mkl_dual_value` at the residual and at each candidate in ``duals``, the best
    kept. When the reported kernel weights ``eta`` are given, their distance to the
    simplex is the check ``eta_simplex``.
    """
    primal = mkl_objective(X, Y, M, W, mu)
    R = Y - forward(X, M, W)
    best, best_Z = best_candidate(finite_candidates(Y.shape, (*duals, R)),
                                  lambda Z: mkl_dual_value(X, Y, M, Z, mu))
    if best_Z is None:
        best, best_Z = 0.0, np.zeros_like(Y)
    checks = {} if eta is None else {"eta_simplex": eta_simplex_distance(eta)}
    cert = make_certificate(formulation, primal, best, tolerance=tolerance, scope=scope,
                            checks=checks)
    return cert, best_Z


# ---------------------------------------------------------------------------
# The exact λ ↔ μ map (docs/math/mkl.md)
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
    """``μ = λ / Σ_i ||W_i||`` for the group-lasso optimum ``W`` at ``λ`` (``docs/math/mkl.md``).

    That ``W`` then also solves simplex MKL at ``μ``, with kernel weights
    ``η_i = ||W_i||/Σ||W_j||``.

    Parameters
    ----------
    lam : float
        The group lasso's ``λ``.
    W : ndarray of shape (P, d) or (P, d, c), or Solution
        The group-lasso optimum at ``lam`` (or a gated-ReLU solution holding it).

    Returns
    -------
    float
        The matched ``μ``.

    Raises
    ------
    InvalidInputError
        When ``W = 0`` (``λ ≥ λ_max``): no finite ``μ`` matches.

    Examples
    --------
    >>> import convexnn as cn
    >>> data = cn.planted_relu(n=40, d=3, seed=0)
    >>> gated = cn.solve("gated_relu", data.X, data.y, patterns=20, lam_ratio=0.1)
    >>> mu = cn.lam_to_mu(gated.lam, gated)
    >>> mkl = cn.solve("mkl", data.X, data.y, patterns=gated.patterns, mu=mu)
    >>> abs(mkl.objective - cn.mkl_value_from_gated(gated.objective, gated.lam, mu)) < 1e-6
    True
    """
    total = _total_norm(W)
    if not total > 0:
        raise InvalidInputError(
            "W is zero (λ ≥ λ_max): the zero solution corresponds to μ = ∞; no finite μ."
        )
    return float(lam) / total


def mu_to_lam(mu: float, W: Any) -> float:
    """``λ = μ Σ_i ||W_i||`` for the simplex-MKL optimum ``W`` at ``μ`` (``docs/math/mkl.md``).

    ``W`` then also solves the gated-ReLU group lasso at ``λ``.

    Parameters
    ----------
    mu : float
        Simplex MKL's ``μ``.
    W : ndarray of shape (P, d) or (P, d, c), or Solution
        The MKL optimum at ``mu`` (or a solution holding it).

    Returns
    -------
    float
        The matched ``λ``.
    """
    return float(mu) * _total_norm(W)


def mkl_value_from_gated(p_gated: float, lam: float, mu: float) -> float:
    """``p_MKL(μ) = p_G(λ) − λ²/(2μ)`` at matched ``(λ, μ)``.

    At the group-lasso optimum ``W*`` with ``S = Σ_i ||w_i*||`` and ``μ = λ/S``, the MKL
    objective ``½||r||² + (μ/2)S²`` equals ``½||r||² + λS − (λ/2)S``, which is the identity
    (``docs/math/mkl.md``).

    Parameters
    ----------
    p_gated : float
        The group lasso's optimal value ``p_G(λ)``.
    lam, mu : float
        A matched pair (:func:`lam_to_mu`).

    Returns
    -------
    float
        The simplex-MKL optimal value ``p_MKL(μ)``.
    """
    return float(p_gated) - float(lam) ** 2 / (2.0 * float(mu))


# ---------------------------------------------------------------------------
# Declarative cvxpy programs (all DPP)
# ---------------------------------------------------------------------------


def _blocks_from_columns(V: np.ndarray, P: int, d: int, c: int) -> np.ndarray:
    """(d·c, P) with column i = vec(W_i) (column-major) → blocks (P, d, c)."""
    return np.ascontiguousarray(np.asarray(V).T.reshape(P, c, d).transpose(0, 2, 1))


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

    def set_reg(self, reg: float, a: float = 1.0, s: float = 1.0) -> None:
        """``μ' = μ/a²`` on data ``(X/a, Y/s)``."""
        self.mu.value = reg / (a * a)

    def solution(self, a: float = 1.0, s: float = 1.0) -> tuple[dict, dict]:
        """``W = (s/a) W'``; ``η`` unchanged."""
        if self.W.value is None or self.eta.value is None:
            return {}, {}
        return {"W": self.weights() * (s / a),
                "eta": np.asarray(self.eta.value, dtype=np.float64)}, {}


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
        cp.Minimize(0.5 * squared_fit(A, W, Y, d, P) + 0.5 * mu * cp.sum(t)),
        [cone, cp.sum(eta) == 1],
    )
    check_dpp(problem, "MKL primal")
    return MKLProgram(problem, mu, W, eta, P, d, c)


@dataclass
class MKLDual:
    """The Lanckriet dual SOCP; ``inv_mu`` = 1/μ is the parameter (DPP)."""

    problem: cp.Problem
    inv_mu: cp.Parameter
    Z: cp.Variable
    s: cp.Variable

    def set_reg(self, reg: float, a: float = 1.0, s: float = 1.0) -> None:
        self.inv_mu.value = a * a / reg

    def solution(self, a: float = 1.0, s: float = 1.0) -> tuple[dict, dict]:
        return {}, ({} if self.Z.value is None else {"z": np.asarray(self.Z.value) * s})


def build_dual(X: np.ndarray, Y: np.ndarray, M: np.ndarray) -> MKLDual:
    """``max ⟨Y, Z⟩ − ½||Z||² − s²/(2μ)  s.t. ||Xᵀ D_i Z||_F ≤ s ∀i`` (DPP in 1/μ)."""
    n, d = X.shape
    P, c = M.shape[1], Y.shape[1]
    A = design_matrix(X, M)
    inv_mu = cp.Parameter(nonneg=True, name="inv_mu")
    Z = cp.Variable((n, c), name="Z")
    s = cp.Variable(name="s")
    G = cp.vstack(per_output_blocks(A, Z, d, P, c, transpose=True))  # (d·c, P)
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


class MKL(Formulation):
    """Simplex MKL over the pattern kernels; regularisation ``μ``.

    ``reg_max`` is the kernel scale ``||X||₂²`` (``mu_ratio`` is relative to it): no
    finite μ makes zero optimal. Methods: ``"ipm"`` (the joint cvxpy program) and
    ``"reweight"`` (:mod:`convexnn.methods.reweight`, numpy only). The weights encode a
    gated-ReLU network; its training objective is taken at the matched
    ``λ = μ Σ_i ||W_i||`` (recorded as ``info["lam"]``).
    """

    name = "mkl"
    title = "Simplex multiple kernel learning over the pattern kernels"
    reg_name = "mu"
    methods = {"ipm": "ipm", "reweight": "reweight"}
    math = MATH
    latex = LATEX
    docs = "docs/math/mkl.md"

    def reg_max(self, data: ProblemData) -> float:
        return mu_scale(data.X)

    def primal(self, data: ProblemData, reg: float, weights: Mapping[str, np.ndarray]
               ) -> Primal:
        W = as_blocks(weights["W"], data.P, data.d)
        R = data.Y - forward(data.X, data.M, W)
        return Primal(mkl_objective(data.X, data.Y, data.M, W, reg), R)

    def _certify(self, data: ProblemData, reg: float, weights: Mapping[str, np.ndarray],
                dual: Mapping[str, np.ndarray] | None = None, *, tol: float = 1e-6
                ) -> tuple[Certificate, dict[str, np.ndarray]]:
        duals = [dual["z"]] if dual is not None and "z" in dual else []
        cert, Z = mkl_certificate(
            data.X, data.Y, data.M, as_blocks(weights["W"], data.P, data.d), reg,
            eta=weights.get("eta"), tolerance=tol, scope=data.patterns.scope, duals=duals,
            formulation=self.name,
        )
        return cert, {"z": Z}

    def network(self, data: ProblemData, weights: Mapping[str, np.ndarray]) -> GatedReLUNetwork:
        return GatedReLUNetwork.from_weights(
            weights["W"], data.patterns.gates, bias=data.bias, single_output=data.single_output
        )

    def build_primal(self, data: ProblemData) -> MKLProgram:
        return build_primal(data.X, data.Y, data.M)

    def build_dual(self, data: ProblemData) -> MKLDual:
        return build_dual(data.X, data.Y, data.M)

    def ipm_size(self, data: ProblemData) -> tuple[int, int]:
        n, d, P, c = data.n, data.d, data.P, data.c
        return int(np.count_nonzero(data.M)) * d * c, n * c + P * (2 * d * c + 4)

    def finalize(self, data: ProblemData, reg: float, weights: dict[str, np.ndarray],
                 dual: Mapping[str, np.ndarray], options: Options
                 ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Report the kernel weights of W, ``η_i = ||W_i|| / Σ||W_j||`` (optimal for W by the
        variational identity, and re-derivable from W by ``verify``), and record the matched
        ``λ = μ Σ_i ||W_i||`` of the exact map."""
        norms = group_norms(as_blocks(weights["W"], data.P, data.d))
        S = float(norms.sum())
        eta = norms / S if S > 0 else np.full(data.P, 1.0 / data.P)
        info: dict[str, Any] = {"lam": mu_to_lam(reg, weights["W"])}
        if "eta" in weights:  # the method's own η (e.g. the interior-point variable)
            info["method_eta_deviation"] = float(np.max(np.abs(
                np.asarray(weights["eta"], dtype=np.float64) - eta), initial=0.0))
        return {"W": weights["W"], "eta": eta}, info
