"""Gated-ReLU network training as a group lasso, exact and unconstrained.

Mathematics: ``docs/math/gated_relu.md``.

Primal:  p_G = min_W ½||Σ_i D_i X W_i − Y||² + λ Σ_i ||W_i||_F
Dual:    d_G = max_Z ⟨Y, Z⟩ − ½||Z||²   s.t.  ||X^T D_i Z||_F ≤ λ  for every pattern i.

Both are built once per pattern set as DPP cvxpy problems with ``λ`` a
``cp.Parameter``; the design ``A = [D_1 X, …, D_P X]`` is one sparse matrix and the
P group norms are one vectorised ``norm(·, axis=0)`` — no Python loop over patterns.
The certificate (:func:`gated_relu_certificate`) is defined here once and used by every
method, by ``convexnn verify`` and by the global check.
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
    ball_scale,
    best_candidate,
    best_multiple,
    finite_candidates,
    make_certificate,
)
from ..networks import GatedReLUNetwork
from ..ops import adjoint, as_blocks, design_matrix, forward, group_norms
from ..problem import ProblemData
from ..solvers import factorisation
from .base import Formulation, Primal, check_dpp

__all__ = [
    "GatedReLU",
    "GatedReLUReweight",
    "GroupLassoFormulation",
    "GatedReLUProgram",
    "GatedReLUDual",
    "build_primal",
    "build_dual",
    "ball_dual_value",
    "gated_relu_objective",
    "gated_relu_certificate",
    "AUTO_IPM_MAX_SIZE",
]

#: ``method="auto"`` uses the interior-point program while ``n·d·P·c`` is at most this,
#: and the fast method above it. Measured (``benchmarks/bench_gated.py --sections auto``,
#: CPU medians, planted teacher, λ/λ_max = 0.1 and 0.01): the fast method is faster at
#: every size — 1.4–2.1× at 40×3×19×1 (IPM 11–15 ms), 1.8–3× at 100×4×50×1 (IPM 29–31 ms),
#: 4–11× at 200×5×100×1 (IPM 115–131 ms), 15–20× at 100×4×50×3, 90–200× at 100×4×50×10 —
#: because the interior point's cost grows with the outputs like c² (its KKT factor couples
#: them). Up to this size the IPM takes at most about 30 ms, so the reference program (and
#: the solver the user named) is kept there; above it the fast method.
AUTO_IPM_MAX_SIZE = 20_000

MATH = """\
Gated-ReLU network  f(x) = Σ_j 1[g_j^T x ≥ 0] (x^T u_j) a_j  trained with
    ½||f(X) − y||² + (λ/2) Σ_j (||u_j||² + a_j²)
is exactly the group lasso over the activation patterns D_i = diag(1[X g_i ≥ 0]):

    p_G = min_W  ½ || Σ_i D_i X w_i − y ||²  +  λ Σ_i ||w_i||₂

Dual:  d_G = max_z  yᵀz − ½||z||²   s.t.  ||Xᵀ D_i z||₂ ≤ λ  for every i,
with z* = y − ŷ* (the residual). Certificate from ANY W: r = y − ŷ; every multiple
s·r with 0 ≤ s ≤ λ / max_i ||Xᵀ D_i r|| is dual feasible, and the best one is taken;
gap = p(W) − d(s·r) ≥ 0. λ_max = max_i ||Xᵀ D_i y|| is the smallest λ with W = 0 optimal.
Network from W: each w_i ≠ 0 gives a neuron (gate g_i, u = w_i/√||w_i||, a = √||w_i||),
and its training objective equals the convex objective exactly.
"""

REWEIGHT_MATH = """\
The gated-ReLU group lasso at λ, reached from the NTK by iterative reweighting.
For kernel weights η ≥ 0 on the patterns, K_η = Σ_i η_i D_i X Xᵀ D_i and
    p_G(λ) = min_{η ≥ 0}  (λ/2) yᵀ(K_η + λI)⁻¹y + (λ/2) Σ_i η_i     (at η_i = ||w_i*||).
Start from the NTK weights η⁰ = p (target-blind) and repeat
    α = (K_η + λI)⁻¹ y,   w_i = η_i Xᵀ D_i α,   η ← (||w_i||)_i
— exact block-coordinate descent on a jointly convex function, so the objective
½||y − Σ D_i X w_i||² + λ Σ ||w_i|| never increases. Each step also gives a lower
bound: the residual λα scaled into the dual ball ||Xᵀ D_i z|| ≤ λ. The loop stops on
the certified relative gap; once the support settles it hands over to the gated-ReLU
fast solver at the same λ. In μ mode (the MKL formulation) η stays on the simplex and
λ = μ Σ_i ||w_i|| is found on the way.
"""

#: The programs in LaTeX (amsmath), shown by ``convexnn explain --latex`` / ``--markdown``.
LATEX = (
    r"L(u, a) = \tfrac12\lVert f(X) - y\rVert_2^2 + \tfrac{\lambda}{2}\sum_{j=1}^m"
    r"\big(\lVert u_j\rVert_2^2 + a_j^2\big),\quad"
    r" f(x) = \sum_{j=1}^m \mathbb{1}[g_j^\top x \ge 0]\,(x^\top u_j)\,a_j",
    r"p_G = \min_{W}\ \tfrac12\Big\lVert \sum_{i=1}^P D_iXw_i - y\Big\rVert_2^2"
    r" + \lambda\sum_{i=1}^P \lVert w_i\rVert_2",
    r"d_G = \max_{z}\ y^\top z - \tfrac12\lVert z\rVert_2^2 \quad\text{s.t.}\quad"
    r" \lVert X^\top D_i z\rVert_2 \le \lambda,\quad i = 1,\dots,P",
    r"\text{gap} = p(W) - d(s\,r) \ge 0,\quad r = y - \sum_i D_iXw_i,\quad"
    r" 0 \le s \le \lambda/\max_i\lVert X^\top D_i r\rVert_2",
)

#: Iterative reweighting in LaTeX.
REWEIGHT_LATEX = (
    r"p_G(\lambda) = \min_{\eta \ge 0}\ \tfrac{\lambda}{2}\,y^\top(K_\eta + \lambda I)^{-1}y"
    r" + \tfrac{\lambda}{2}\sum_i \eta_i,\quad K_\eta = \sum_i \eta_i D_iXX^\top D_i",
    r"\alpha = (K_\eta + \lambda I)^{-1}y,\quad w_i = \eta_i X^\top D_i\alpha,\quad"
    r" \eta_i \leftarrow \lVert w_i\rVert_2,\qquad \eta^0 = p \ \text{(the NTK weights)}",
)

# ---------------------------------------------------------------------------
# Declarative programs
# ---------------------------------------------------------------------------


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

    def set_reg(self, reg: float, a: float = 1.0, s: float = 1.0) -> None:
        """``λ' = λ/(a s)`` on data ``(X/a, Y/s)``."""
        self.lam.value = reg / (a * s)

    def solution(self, a: float = 1.0, s: float = 1.0) -> tuple[dict, dict]:
        """``W = (s/a) W'``; no dual candidate (the residual is the certificate's)."""
        if self.W.value is None:
            return {}, {}
        return {"W": self.weights() * (s / a)}, {}


@dataclass
class GatedReLUDual:
    """The built dual: ``Z`` (n × c) with ``lam`` a parameter."""

    problem: cp.Problem
    lam: cp.Parameter
    Z: cp.Variable

    def set_reg(self, reg: float, a: float = 1.0, s: float = 1.0) -> None:
        self.lam.value = reg / (a * s)

    def solution(self, a: float = 1.0, s: float = 1.0) -> tuple[dict, dict]:
        """No primal weights; the dual point ``z = s z'``."""
        return {}, ({} if self.Z.value is None else {"z": np.asarray(self.Z.value) * s})


def per_output_blocks(A: Any, var: cp.Expression, d: int, P: int, c: int,
                      transpose: bool) -> list[cp.Expression]:
    """Per output k: ``A vec(W_k)`` (primal) or ``reshape(Aᵀ z_k)`` (dual) as expressions."""
    out = []
    for k in range(c):
        if transpose:
            out.append(cp.reshape(A.T @ var[:, k], (d, P), order="F"))
        else:
            out.append(A @ cp.vec(var[k * d:(k + 1) * d, :], order="F"))
    return out


def squared_fit(A: Any, W: cp.Expression, Y: np.ndarray, d: int, P: int) -> cp.Expression:
    """``Σ_k ||A vec(W_k) − Y_k||²`` (twice the loss) for the (d·c, P) variable layout."""
    return sum(cp.sum_squares(e - Y[:, k]) for k, e in
               enumerate(per_output_blocks(A, W, d, P, Y.shape[1], transpose=False)))


#: From this many outputs on, the group norms are written with rotated cones per output
#: (when Clarabel factors with faer or qdldl; with Pardiso the norms stay faster).
ROTATED_CONES_FROM = 20


def build_primal(X: np.ndarray, Y: np.ndarray, M: np.ndarray,
                 rotated: bool | None = None) -> GatedReLUProgram:
    """``min ½||A vec(W) − Y||² + λ Σ_i ||W_i||_F`` as a DPP cvxpy problem.

    With ``rotated`` each ``||W_i||_F ≤ t_i`` is written as ``||W_ik||² ≤ s_ik t_i`` (one
    rotated cone per output, of size d + 2) and ``Σ_k s_ik ≤ t_i``: the same program,
    whose outputs meet only in the P scalars ``t_i`` instead of in one cone of size
    d·c + 1 per group. The default is ``rotated`` from ``c ≥ ROTATED_CONES_FROM``
    outputs on, unless Clarabel factors with Pardiso
    (:func:`convexnn.solvers.factorisation`). Measured with Clarabel
    (``benchmarks/bench_gated_ipm.py``, 300×9×100, λ = 0.03·λ_max): with faer, as fast
    at c ≤ 10, 2.3× faster at c = 30 (21 s against 47 s) and 2.3× at c = 100 (66 s
    against 155 s); with Pardiso the norms are faster from c = 3 on (17 s against 21 s at
    c = 30, 72 s against 93 s at c = 100).
    """
    n, d = X.shape
    P, c = M.shape[1], Y.shape[1]
    A = design_matrix(X, M)
    lam = cp.Parameter(nonneg=True, name="lam")
    W = cp.Variable((d * c, P), name="W")
    fit = 0.5 * squared_fit(A, W, Y, d, P)
    if rotated is None:
        rotated = c >= ROTATED_CONES_FROM and factorisation(c) != "mkl"
    if not rotated:
        problem = cp.Problem(cp.Minimize(fit + lam * cp.sum(cp.norm(W, 2, axis=0))))
    else:
        S, T = cp.Variable((c, P), name="s"), cp.Variable(P, name="t")
        cones = [cp.SOC(S[k] + T, cp.vstack([2 * W[k * d:(k + 1) * d, :],
                                             cp.reshape(S[k] - T, (1, P), order="F")]),
                        axis=0) for k in range(c)]
        problem = cp.Problem(cp.Minimize(fit + lam * cp.sum(T)),
                             [*cones, cp.sum(S, axis=0) <= T])
    check_dpp(problem, "gated-ReLU primal")
    return GatedReLUProgram(problem, lam, W, P, d, c)


def build_dual(X: np.ndarray, Y: np.ndarray, M: np.ndarray) -> GatedReLUDual:
    """``max ⟨Y, Z⟩ − ½||Z||² s.t. ||X^T D_i Z||_F ≤ λ`` as a DPP cvxpy problem."""
    n, d = X.shape
    P, c = M.shape[1], Y.shape[1]
    A = design_matrix(X, M)
    lam = cp.Parameter(nonneg=True, name="lam")
    Z = cp.Variable((n, c), name="Z")
    G = cp.vstack(per_output_blocks(A, Z, d, P, c, transpose=True))  # (d·c, P)
    problem = cp.Problem(
        cp.Maximize(cp.sum(cp.multiply(Y, Z)) - 0.5 * cp.sum_squares(Z)),
        [cp.norm(G, 2, axis=0) <= lam],
    )
    check_dpp(problem, "gated-ReLU dual")
    return GatedReLUDual(problem, lam, Z)


# ---------------------------------------------------------------------------
# The certificate
# ---------------------------------------------------------------------------


def ball_dual_value(Y: np.ndarray, Z: np.ndarray, top: float, lam: float
                    ) -> tuple[float, float]:
    """Dual value ``⟨Y, sZ⟩ − ½||sZ||²`` at the best feasible multiple of ``Z`` and that ``s``.

    ``top = max_i ||Xᵀ D_i Z||`` (or, for the ReLU program, the largest support value),
    so every ``0 ≤ s ≤ λ/top`` is dual feasible; the concave quadratic in ``s`` is
    maximised over that interval. The one dual value of the group-lasso programs: the
    certificate, the first-order method's stopping rule, reweighting's bound in λ mode
    and the global check all call it.
    """
    return best_multiple(float(np.vdot(Y, Z)), float(np.vdot(Z, Z)), ball_scale(top, lam))


def gated_relu_objective(X: np.ndarray, Y: np.ndarray, M: np.ndarray, W: np.ndarray,
                         lam: float) -> tuple[float, np.ndarray]:
    """``½||Y − Σ D_i X W_i||² + λ Σ ||W_i||_F`` and the residual ``Y − Ŷ``."""
    R = Y - forward(X, M, W)
    return 0.5 * float(np.sum(R * R)) + lam * float(np.sum(group_norms(W))), R


def gated_relu_certificate(
    X: np.ndarray,
    Y: np.ndarray,
    M: np.ndarray,
    W: np.ndarray,
    lam: float,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    scope: str = "sampled",
    duals: Iterable[np.ndarray] = (),
    formulation: str = "gated_relu",
) -> tuple[Certificate, np.ndarray]:
    """Certificate of the group lasso for any primal ``W`` (P, d, c).

    Primal ``½||Σ D_i X W_i − Y||² + λ Σ ||W_i||_F``. Dual-feasible points: the best
    multiple (:func:`ball_dual_value`) of the residual ``R = Y − Ŷ`` and of every
    candidate in ``duals``; the best of them is kept.

    Returns
    -------
    certificate : Certificate
    Z : ndarray (n, c) — the dual-feasible point that produced ``dual_objective``.
    """
    primal, R = gated_relu_objective(X, Y, M, W, lam)

    def value(Z: np.ndarray) -> tuple[float, np.ndarray]:
        top = float(np.max(group_norms(adjoint(X, M, Z)), initial=0.0))
        val, s = ball_dual_value(Y, Z, top, lam)
        return val, s * Z

    best, Z = best_candidate(finite_candidates(Y.shape, (*duals, R)), value)
    if Z is None:  # a non-finite residual: nothing is feasible but 0
        best, Z = 0.0, np.zeros_like(Y)
    cert = make_certificate(formulation, primal, best, tolerance=tolerance, scope=scope)
    return cert, Z


# ---------------------------------------------------------------------------
# The registered formulations
# ---------------------------------------------------------------------------


class GroupLassoFormulation(Formulation):
    """Formulations whose weights are the group-lasso blocks ``W`` (P, d, c).

    They share ``λ_max``, the numpy certificate of the group lasso, the dual constraint
    of the global check and the gated-ReLU network the blocks encode.
    """

    global_check = True
    docs = "docs/math/gated_relu.md"

    def reg_max(self, data: ProblemData) -> float:
        """``λ_max = max_i ||X^T D_i Y||_F``."""
        return float(group_norms(adjoint(data.X, data.M, data.Y)).max())

    def primal(self, data: ProblemData, reg: float, weights: Mapping[str, np.ndarray]
               ) -> Primal:
        W = as_blocks(weights["W"], data.P, data.d)
        value, R = gated_relu_objective(data.X, data.Y, data.M, W, reg)
        return Primal(value, R)

    def _certify(self, data: ProblemData, reg: float, weights: Mapping[str, np.ndarray],
                dual: Mapping[str, np.ndarray] | None = None, *, tol: float = 1e-6
                ) -> tuple[Certificate, dict[str, np.ndarray]]:
        duals = [dual["z"]] if dual is not None and "z" in dual else []
        cert, Z = gated_relu_certificate(
            data.X, data.Y, data.M, as_blocks(weights["W"], data.P, data.d), reg,
            tolerance=tol, scope=data.patterns.scope, duals=duals, formulation=self.name,
        )
        return cert, {"z": Z}

    def zero_weights(self, data: ProblemData) -> dict[str, np.ndarray]:
        return {"W": np.zeros((data.P, data.d, data.c))}

    def zero_threshold(self, data: ProblemData) -> float:
        """``λ_max`` itself (computed on the rescaled data: no overflow or underflow)."""
        return self.scaled_reg_max(data)[0]

    def dual_constraint_values(self, X: np.ndarray, M: np.ndarray, R: np.ndarray) -> np.ndarray:
        """``||Xᵀ D_i R||_F`` for every pattern."""
        return group_norms(adjoint(X, M, R))

    def network(self, data: ProblemData, weights: Mapping[str, np.ndarray]) -> GatedReLUNetwork:
        return GatedReLUNetwork.from_weights(
            weights["W"], data.patterns.gates, bias=data.bias, single_output=data.single_output
        )

    def build_primal(self, data: ProblemData) -> GatedReLUProgram:
        return build_primal(data.X, data.Y, data.M)

    def build_dual(self, data: ProblemData) -> GatedReLUDual:
        return build_dual(data.X, data.Y, data.M)

    def ipm_size(self, data: ProblemData) -> tuple[int, int]:
        """``nnz(A) = c·d·nnz(M)``; ``n·c + P·(2·d·c + 1)`` rows and variables."""
        n, d, P, c = data.n, data.d, data.P, data.c
        return int(np.count_nonzero(data.M)) * d * c, n * c + P * (2 * d * c + 1)


class GatedReLU(GroupLassoFormulation):
    """The group lasso of gated-ReLU networks.

    Methods: ``"ipm"`` (the declarative cvxpy program with an interior-point solver, the
    reference), ``"fast"`` (:mod:`convexnn.methods.group_lasso`: greedy FISTA on a working
    set to the support, then Newton over all groups, with the interior-point program as
    the fallback) and ``"reweight"`` (:mod:`convexnn.methods.reweight`: iterative
    reweighting of the kernel weights from the NTK, numpy only). ``"auto"`` picks
    ``"ipm"`` when ``n·d·P·c ≤ AUTO_IPM_MAX_SIZE`` and ``"fast"`` otherwise (the
    measurements are at :data:`AUTO_IPM_MAX_SIZE`). Every method certifies with the same
    numpy code.
    """

    name = "gated_relu"
    title = "Gated-ReLU network ↔ group lasso"
    reg_name = "lam"
    pardiso_outputs = True
    methods = {"ipm": "ipm", "fast": "group_lasso", "reweight": "reweight"}
    math = MATH
    latex = LATEX

    def choose_method(self, data: ProblemData, method: str) -> str:
        """``"auto"``: ``"ipm"`` for ``n·d·P·c ≤ AUTO_IPM_MAX_SIZE``, else ``"fast"``."""
        if method == "auto":
            size = data.n * data.d * data.P * data.c
            return "ipm" if size <= AUTO_IPM_MAX_SIZE else "fast"
        return super().choose_method(data, method)


class GatedReLUReweight(GatedReLU):
    """The gated-ReLU group lasso solved by iterative reweighting (numpy only).

    ``convexnn.solve("reweight", X, y, lam=…)`` is ``solve("gated_relu", …,
    method="reweight")`` under its own name (``docs/math/reweighting.md``).
    """

    name = "reweight"
    title = "Iterative reweighting from the NTK to the gated-ReLU optimum"
    methods = {"reweight": "reweight"}
    math = REWEIGHT_MATH
    latex = REWEIGHT_LATEX
    docs = "docs/math/reweighting.md"

    def choose_method(self, data: ProblemData, method: str) -> str:
        return Formulation.choose_method(self, data, method)
