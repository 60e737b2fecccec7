"""NTK-weighted kernel regression: the MKL inner problem at the NTK weights.

Mathematics: ``docs/math/ntk.md``. For the gated network ``f(x) = m^{-1/2} Σ_j 1[h_jᵀx ≥ 0]
w_jᵀx`` with ``h_j ~ N(0, I)`` the infinite-width NTK is ``Σ_{all i} p_i K_i`` with ``p_i``
the Gaussian probability of pattern ``i`` (:mod:`convexnn.kernels`). NTK kernel regression
is the kernel ridge with those fixed weights:

    J(p) = (μ/2) yᵀ(K_p + μI)⁻¹y = min_W ½||Σ D_i X w_i − y||² + (μ/2) Σ ||w_i||²/p_i

and therefore never beats the optimal MKL kernel: ``J(p) ≥ p_MKL(μ)``. This module holds
the kernel-ridge program with fixed weights (declarative, DPP in ``√η`` and ``μ``), its
numpy certificate, and the registered formulation ``"ntk"``.
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
from ..kernels import check_eta, kernel_ridge_dual_value, mu_scale, ntk_weights
from ..networks import GatedReLUNetwork
from ..ops import as_blocks, design_matrix, forward, group_norms
from ..problem import ProblemData
from ..validation import Options
from .base import Formulation, Primal, check_dpp
from .gated_relu import squared_fit

__all__ = [
    "NTK",
    "KernelRidgeProgram",
    "build_kernel_ridge",
    "kernel_ridge_objective",
    "kernel_ridge_certificate",
]

MATH = """\
Infinite-width NTK of a gated ReLU network (gates h ~ N(0, I)):
    K_NTK(x, x') = xᵀx' · P(hᵀx ≥ 0, hᵀx' ≥ 0) = xᵀx' (π − θ)/(2π) = Σ_{all i} p_i D_i X Xᵀ D_i
with θ the angle between x and x' and p_i the Gaussian probability of pattern i
(exact for d = 2, Monte Carlo frequencies otherwise: the width-N empirical NTK).
NTK kernel regression = the MKL inner problem at η = p:
    J(p) = (μ/2) yᵀ(K_p + μI)⁻¹y = min_W ½||Σ_i D_i X w_i − y||² + (μ/2) Σ_i ||w_i||²/p_i,
α = (K_p + μI)⁻¹y, w_i = p_i Xᵀ D_i α (a gated-ReLU network with one neuron per
pattern). Dual (unconstrained): max_z yᵀz − ½||z||² − (1/2μ) Σ_i p_i ||Xᵀ D_i z||²,
optimal at z = μα = the residual. Because p is one point of the simplex,
J(p) ≥ p_MKL(μ): the NTK never beats the optimal MKL kernel on the training objective.
"""

#: The programs in LaTeX (amsmath), shown by ``convexnn explain --latex`` / ``--markdown``.
LATEX = (
    r"K_{\mathrm{NTK}}(x, x') = x^\top x'\,\frac{\pi - \theta}{2\pi}"
    r" = \sum_{\text{all } i} p_i\,D_iXX^\top D_i",
    r"J(p) = \frac{\mu}{2}\,y^\top(K_p + \mu I)^{-1}y = \min_W\ \tfrac12\Big\lVert"
    r"\sum_i D_iXw_i - y\Big\rVert_2^2 + \frac{\mu}{2}\sum_i\frac{\lVert w_i\rVert_2^2}{p_i}"
    r" \;\ge\; p_{\mathrm{MKL}}(\mu)",
)


# ---------------------------------------------------------------------------
# The kernel-ridge program with fixed weights η
# ---------------------------------------------------------------------------


def _blocks_from_columns(V: np.ndarray, P: int, d: int, c: int) -> np.ndarray:
    """(d·c, P) with column i = vec(W_i) (column-major) → blocks (P, d, c)."""
    return np.ascontiguousarray(np.asarray(V).T.reshape(P, c, d).transpose(0, 2, 1))


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
        self.root_eta.value = np.sqrt(check_eta(eta, self.P))
        self.mu.value = float(mu)

    def set_reg(self, reg: float, a: float = 1.0, s: float = 1.0) -> None:
        """``μ' = μ/a²`` on data ``(X/a, Y/s)`` (the kernel scales by ``a²``)."""
        self.mu.value = reg / (a * a)

    def weights(self) -> np.ndarray:
        V = _blocks_from_columns(self.V.value, self.P, self.d, self.c)
        return np.asarray(self.root_eta.value)[:, None, None] * V

    def solution(self, a: float = 1.0, s: float = 1.0) -> tuple[dict, dict]:
        """``W = (s/a) W'``; no dual candidate."""
        if self.V.value is None:
            return {}, {}
        return {"W": self.weights() * (s / a)}, {}


def build_kernel_ridge(X: np.ndarray, Y: np.ndarray, M: np.ndarray) -> KernelRidgeProgram:
    """``min_V ½||Σ D_i X √η_i V_i − Y||² + (μ/2)||V||²`` (value ``J(η)``), DPP in (√η, μ)."""
    n, d = X.shape
    P, c = M.shape[1], Y.shape[1]
    A = design_matrix(X, M)
    mu = cp.Parameter(nonneg=True, name="mu")
    root_eta = cp.Parameter(P, nonneg=True, name="root_eta")
    V = cp.Variable((d * c, P), name="V")
    W = cp.multiply(V, cp.reshape(root_eta, (1, P), order="F"))
    problem = cp.Problem(cp.Minimize(0.5 * squared_fit(A, W, Y, d, P)
                                     + 0.5 * mu * cp.sum_squares(V)))
    check_dpp(problem, "kernel ridge")
    return KernelRidgeProgram(problem, mu, root_eta, V, P, d, c)


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
    ``checks``/``limits`` are passed to :func:`~convexnn.certificate.make_certificate`.
    """
    eta = check_eta(eta, M.shape[1])
    R = Y - forward(X, M, W)
    primal = 0.5 * float(np.sum(R * R)) + 0.5 * mu * _weighted_penalty(W, eta)
    best, best_Z = best_candidate(
        finite_candidates(Y.shape, (*duals, R)),
        lambda Z: kernel_ridge_dual_value(X, Y, M, Z, eta, mu))
    if best_Z is None:
        best, best_Z = 0.0, np.zeros_like(Y)
    cert = make_certificate(formulation, primal, best, tolerance=tolerance, scope=scope,
                            checks=checks, limits=limits)
    return cert, best_Z


# ---------------------------------------------------------------------------
# The registered formulation
# ---------------------------------------------------------------------------


class NTK(Formulation):
    """NTK-weighted kernel regression on the chosen patterns; regularisation ``μ``.

    The program is kernel ridge with ``K_p = Σ_i p_i K_i`` (``p`` from
    :func:`~convexnn.kernels.ntk_weights`) and ridge ``μ``: ``J(p) = (μ/2) yᵀ(K_p + μI)⁻¹y``,
    the MKL inner problem at ``η = p`` (so its value is directly comparable with
    ``p_MKL(μ)``). ``reg_max`` is the kernel scale ``||X||₂²`` (``mu_ratio`` is relative
    to it). Methods: ``"cholesky"`` (closed form, :mod:`convexnn.methods.cholesky`) and
    ``"ipm"`` (the declarative kernel ridge). Weights: ``W_i = p_i Xᵀ D_i α`` — a
    gated-ReLU network with one neuron per pattern whose predictions on new points use
    the same pattern weights with the gates evaluated on the new points.
    """

    name = "ntk"
    title = "NTK-weighted kernel regression"
    reg_name = "mu"
    methods = {"cholesky": "cholesky", "ipm": "ipm"}
    math = MATH
    latex = LATEX
    docs = "docs/math/ntk.md"

    def reg_max(self, data: ProblemData) -> float:
        return mu_scale(data.X)

    def kernel_weights(self, data: ProblemData) -> np.ndarray:
        """The fixed kernel weights ``p`` (NTK weights of the patterns)."""
        return ntk_weights(data.patterns, data.X)[0]

    def primal(self, data: ProblemData, reg: float, weights: Mapping[str, np.ndarray]
               ) -> Primal:
        W = as_blocks(weights["W"], data.P, data.d)
        R = data.Y - forward(data.X, data.M, W)
        value = kernel_ridge_objective(data.X, data.Y, data.M, W, self.kernel_weights(data),
                                       reg)
        return Primal(value, R)

    def _certify(self, data: ProblemData, reg: float, weights: Mapping[str, np.ndarray],
                dual: Mapping[str, np.ndarray] | None = None, *, tol: float = 1e-6
                ) -> tuple[Certificate, dict[str, np.ndarray]]:
        p = self.kernel_weights(data)
        checks = {}
        if "p" in weights:
            # the weights say which kernel they were fitted with: it must be this one
            stored = np.asarray(weights["p"], dtype=np.float64)
            checks["p_matches_patterns"] = (float(np.max(np.abs(stored - p)))
                                            if stored.shape == p.shape else float("inf"))
        duals = [dual["z"]] if dual is not None and "z" in dual else []
        cert, Z = kernel_ridge_certificate(
            data.X, data.Y, data.M, as_blocks(weights["W"], data.P, data.d), p, reg,
            tolerance=tol, scope=data.patterns.scope, duals=duals, formulation=self.name,
            checks=checks, limits={"p_matches_patterns": 1e-12},
        )
        return cert, {"z": Z}

    def network(self, data: ProblemData, weights: Mapping[str, np.ndarray]) -> GatedReLUNetwork:
        # kernel regression is dense: every pattern is a neuron, none is pruned
        return GatedReLUNetwork.from_weights(weights["W"], data.patterns.gates, bias=data.bias,
                                             single_output=data.single_output, prune=0.0)

    def build_primal(self, data: ProblemData) -> KernelRidgeProgram:
        program = build_kernel_ridge(data.X, data.Y, data.M)
        program.root_eta.value = np.sqrt(self.kernel_weights(data))
        return program

    def ipm_size(self, data: ProblemData) -> tuple[int, int]:
        n, d, P, c = data.n, data.d, data.P, data.c
        return int(np.count_nonzero(data.M)) * d * c, n * c + P * d * c

    def finalize(self, data: ProblemData, reg: float, weights: dict[str, np.ndarray],
                 dual: Mapping[str, np.ndarray], options: Options
                 ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The weights record the kernel they were fitted with (``p``)."""
        return {"W": weights["W"], "p": self.kernel_weights(data)}, {}
