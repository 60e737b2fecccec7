"""The gated-ReLU group lasso by a structured first-order method (``method="fast"``).

    min_W  F(W) = ½ ||Σ_i D_i X W_i − Y||² + λ Σ_i ||W_i||_F

Accelerated proximal gradient (FISTA) with group soft-thresholding

    W⁺_i = (1 − (λ/L) / ||U_i||)_+ U_i,   U = V + (1/L) Aᵀ(Y − A V),

adaptive restart (O'Donoghue & Candès 2015: restart the momentum when ``F`` increases
or the step and the momentum disagree, ``⟨V − W⁺, W⁺ − W⟩ > 0``) and a step ``1/L``
from a power iteration on ``AᵀA`` (× ``LIPSCHITZ_SAFETY``, with backtracking on the
descent lemma as a safety net), run on a *working set* of groups: the active groups
plus the strongest violators of the dual constraint ``||Xᵀ D_i R|| ≤ λ``, grown until
the certificate on the full pattern set holds. Groups are discarded for good only by
the gap-safe rule (Ndiaye et al. 2017), which is exact.

Both operators are single GEMMs (:func:`convexnn.ops.forward`, :func:`~convexnn.ops.adjoint`)
with the cached float copy ``Mf`` of the pattern matrix and weights stored as rows
``W (P, d·c)``:

* ``A W  = Σ_i D_i X W_i``: ``T = Mf W`` (n × d·c), then ``Ŷ_{nk} = Σ_j X_{nj} T_{n,jk}``;
* ``Aᵀ R = [Xᵀ D_i R]_i``:  ``Mfᵀ B`` with ``B_{n, jk} = X_{nj} R_{nk}``.

The certificate is free: the gradient at ``V`` is ``−Aᵀ R_V``, whose group norms are
exactly what the residual-scaled dual point ``Z = R_V · min(1, λ / max_i ||Xᵀ D_i R_V||)``
needs, so the relative duality gap (:func:`~convexnn.formulations.gated_relu.ball_dual_value`,
the certificate's own dual value) is evaluated at every iteration.

That dual point's gap is of the order of the *square root* of the primal
suboptimality (the scaling loses ``(1 − s)·λΣ||w_i||`` with ``1 − s = O(||R − R*||)``):
a gap of 1e-6 needs a primal error near 1e-12, i.e. many first-order iterations. So once
the gap is below ``NEWTON_GAP`` and the support looks identified, a damped Newton
method on the support (where ``F`` is smooth) finishes quadratically when its dense
Hessian is small (``NEWTON_MAX_FLOPS``, ``NEWTON_MAX_DIM``).

When first-order progress stalls (the observed linear rate predicts more than
``stall_iter`` further iterations), a caller-supplied *polisher* — the interior-point
program on the working set and the nearly active groups — finishes the job. Every
result is re-certified on the full pattern set; violators are added and the loop
repeats.

:func:`run` is the method behind ``solve(..., method="fast")`` for the group-lasso
formulations (options :class:`Options`); :func:`run_path` reuses one operator along a λ
path with warm starts. The mathematics: ``docs/math/fast_methods.md``.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.linalg

from ..certificate import relative_gap
from ..errors import ConvexNNError, InvalidInputError, SolverFailedError
from ..formulations.base import Formulation, SolveOptions
from ..formulations.gated_relu import ball_dual_value
from ..memory import dense_bytes
from ..ops import adjoint, forward
from ..problem import ProblemData, ipm_scales, scaled_data
from ..progress import Progress
from ..solution import Solution
from ..solvers import InaccurateSolutionWarning, run_problem
from ..threads import blas_threads
from ..validation import Options as OptionsBase
from ..validation import boolean, integer, threads

__all__ = [
    "Options",
    "run",
    "run_path",
    "memory_estimate",
    "GroupLassoOperator",
    "GroupLassoResult",
    "lipschitz",
    "solve_group_lasso",
    "full_certificate",
    "FullCheck",
]

#: Multiplier on the power-iteration estimate of ``||A||²`` (it converges from below).
LIPSCHITZ_SAFETY = 1.05
#: Step-size halvings tried per iteration before the values are declared not finite.
MAX_BACKTRACKS = 64
#: Outer rounds (working sets, Newton refinements, polishes) of one solve at most.
MAX_OUTER = 10_000
#: Smallest working set (groups).
MIN_WORKING_SET = 10
#: A working-set problem is solved to ``max(INNER_FRACTION · tol, GAP_FRACTION · gap)``
#: with ``gap`` the current full-set relative gap (early working sets are rough).
INNER_FRACTION = 0.3
GAP_FRACTION = 0.1


class GroupLassoOperator:
    """``A = [D_1 X, …, D_P X]`` as two GEMMs; weights are rows ``W (P, d·c)``.

    Holds C-contiguous float64 copies of ``X`` and of the pattern matrix ``Mf``.
    """

    def __init__(self, X: np.ndarray, M: np.ndarray, c: int):
        self.X = np.ascontiguousarray(X, dtype=np.float64)
        self.Mf = np.ascontiguousarray(M, dtype=np.float64)
        self.n, self.d = self.X.shape
        self.P = self.Mf.shape[1]
        self.c = int(c)
        self._gram_groups = np.zeros(0, dtype=np.int64)  # groups of the cached Gram
        self._gram = np.zeros((0, 0))
        #: last power-iteration vector per group (warm starts the next working set's)
        self.power_vector = np.zeros((self.P, self.d * self.c))

    def subset(self, idx: np.ndarray) -> GroupLassoOperator:
        """The operator of the groups ``idx`` (a contiguous copy of those columns)."""
        sub = object.__new__(GroupLassoOperator)
        sub.X, sub.n, sub.d, sub.c = self.X, self.n, self.d, self.c
        sub.Mf = np.ascontiguousarray(self.Mf[:, idx])
        sub.P = sub.Mf.shape[1]
        sub._gram_groups, sub._gram = np.zeros(0, dtype=np.int64), np.zeros((0, 0))
        sub.power_vector = self.power_vector[idx]
        return sub

    def design(self, idx: np.ndarray) -> np.ndarray:
        """Dense ``[D_i X]_{i ∈ idx}`` (n × |idx|·d), the design of one output."""
        return (self.Mf[:, idx][:, :, None] * self.X[:, None, :]).reshape(self.n, -1)

    def support_gram(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(A_S, A_SᵀA_S)`` for the groups ``idx`` (one output), Gram blocks cached.

        The cache holds the Gram matrix of every group seen since it was last reset
        (when it would exceed ``GRAM_CACHE_COLUMNS`` columns); a new support only costs
        its new blocks — along a path the support changes by a few groups per λ.
        """
        idx = np.asarray(idx, dtype=np.int64)
        d = self.d
        Q = self.design(idx)
        cached = self._gram_groups
        new = np.setdiff1d(idx, cached)
        if len(new) and (len(cached) + len(new)) * d > GRAM_CACHE_COLUMNS:
            cached, new = np.zeros(0, dtype=np.int64), np.unique(idx)
            self._gram = np.zeros((0, 0))
        if len(new):
            Qn = self.design(new)
            cross = Qn.T @ self.design(cached)
            self._gram = np.block([[self._gram, cross.T], [cross, Qn.T @ Qn]])
            cached = np.concatenate([cached, new])
        self._gram_groups = cached
        pos = np.empty(self.P, dtype=np.int64)
        pos[cached] = np.arange(len(cached))
        cols = (pos[idx][:, None] * d + np.arange(d)).ravel()
        return Q, self._gram[np.ix_(cols, cols)]

    def forward(self, W: np.ndarray) -> np.ndarray:
        """``Σ_i D_i X W_i`` (n, c) for rows ``W (P, d·c)``."""
        return forward(self.X, self.Mf, W.reshape(self.P, self.d, self.c))

    def adjoint(self, R: np.ndarray) -> np.ndarray:
        """``[Xᵀ D_i R]_i`` as rows (P, d·c) for ``R (n, c)``."""
        return adjoint(self.X, self.Mf, R).reshape(self.P, self.d * self.c)


def _row_norms(W: np.ndarray) -> np.ndarray:
    return np.sqrt(np.einsum("ij,ij->i", W, W))


def lipschitz(op: GroupLassoOperator, *, iters: int = 50, rtol: float = 1e-3,
              start: np.ndarray | None = None, seed: int = 0) -> tuple[float, np.ndarray]:
    """``||A||² = λ_max(AᵀA)`` by power iteration (a lower estimate; stops at ``rtol``).

    ``start`` (rows (P, d·c)) warm-starts the iteration, e.g. with the previous
    working set's vector. Returns the estimate and the last vector.
    """
    v = np.random.default_rng(seed).standard_normal((op.P, op.d * op.c))
    size = 0.0 if start is None else float(np.linalg.norm(start))
    if size > 0.0:  # keep a little randomness: the start may miss the top eigenspace
        v = start + (1e-2 * size / max(float(np.linalg.norm(v)), 1e-300)) * v
    if op.P == 0:
        return 0.0, v
    v /= np.linalg.norm(v)
    L = 0.0
    for _ in range(iters):
        w = op.adjoint(op.forward(v))
        L_new = float(np.linalg.norm(w))
        if L_new == 0.0:
            return 0.0, v
        v = w / L_new
        if abs(L_new - L) <= rtol * L_new:
            return L_new, v
        L = L_new
    return L, v


@dataclass(frozen=True)
class _Check:
    """The certificate's gap at a primal point from its residual and the adjoint of it."""

    primal: float
    dual: float
    rel: float
    scale: float
    top: float  # max_i ||Xᵀ D_i R||


def _gap(Y: np.ndarray, R: np.ndarray, G: np.ndarray, Wnorm_sum: float, lam: float) -> _Check:
    gn_max = float(np.sqrt(np.max(np.einsum("ij,ij->i", G, G), initial=0.0)))
    primal = 0.5 * float(np.vdot(R, R)) + lam * Wnorm_sum
    dual, s = ball_dual_value(Y, R, gn_max, lam)
    return _Check(primal, dual, relative_gap(primal, dual), s, gn_max)


@dataclass(frozen=True)
class FullCheck:
    """The certificate on every group and the dual scores it used."""

    primal: float
    dual: float
    rel: float
    Z: np.ndarray  # the best dual-feasible point (a multiple of R or of the candidate)
    R: np.ndarray  # the residual Y − A W
    scale: float  # scale · R is dual feasible with value dual_R
    dual_R: float
    scores: np.ndarray  # ||Xᵀ D_i R|| / λ for the unscaled residual R


def full_certificate(op: GroupLassoOperator, Y: np.ndarray, W: np.ndarray, lam: float,
                     candidate: np.ndarray | None = None) -> FullCheck:
    """Relative gap at rows ``W (P, d·c)`` over every group of ``op``.

    ``R = Y − A W``; dual points: the best feasible multiple of ``R`` and of the
    candidate — the numbers of :func:`convexnn.formulations.gated_relu.gated_relu_certificate`
    with ``duals=[candidate]``.
    """
    R = Y - op.forward(W)
    G = op.adjoint(R)
    chk = _gap(Y, R, G, float(_row_norms(W).sum()), lam)
    scores = _row_norms(G) / lam
    dual, Z = chk.dual, chk.scale * R
    if candidate is not None:
        alt = _gap(Y, candidate, op.adjoint(candidate), 0.0, lam)
        if alt.dual > dual:
            dual, Z = alt.dual, alt.scale * candidate
    return FullCheck(chk.primal, dual, relative_gap(chk.primal, dual), Z, R, chk.scale,
                     chk.dual, scores)


@dataclass(frozen=True, repr=False)
class GroupLassoResult:
    """Outcome of :func:`solve_group_lasso`.

    ``relative_gap`` is the full-set gap of ``(W, Z)`` as computed by the solver;
    callers re-certify ``W`` with the formulation's certificate.
    """

    W: np.ndarray  # (P, d, c)
    Z: np.ndarray  # (n, c) dual-feasible point (the scaled residual)
    objective: float
    dual_objective: float
    relative_gap: float
    status: str  # "converged" | "max_iter" | "stalled"
    iterations: int
    restarts: int
    newton_steps: int
    backtracks: int
    outer_iterations: int
    polish_rounds: int
    lipschitz: float
    working_set: int
    screened: int
    seconds: float
    history: tuple[tuple[int, float], ...] = field(default=())

    @property
    def converged(self) -> bool:
        return self.status == "converged"

    def __repr__(self) -> str:
        return (f"GroupLassoResult(status={self.status!r}, relative_gap={self.relative_gap:.2e}, "
                f"iterations={self.iterations}, restarts={self.restarts}, "
                f"outer={self.outer_iterations}, polish_rounds={self.polish_rounds}, "
                f"working_set={self.working_set}, seconds={self.seconds:.3f})")


@dataclass
class _Inner:
    W: np.ndarray
    Z: np.ndarray  # dual point feasible for these groups (scaled)
    primal: float
    dual: float
    iterations: int
    restarts: int
    backtracks: int
    L: float
    stalled: bool
    failed: bool = False  # values stopped being finite


def _fista(op: GroupLassoOperator, Y: np.ndarray, lam: float, W0: np.ndarray, L: float, *,
           tol: float, max_iter: int, stall_iter: int, window: int = 100,
           report: Callable[[int, float, float], None] | None = None) -> _Inner:
    """FISTA with adaptive restart on ``op``'s groups, certified at every iteration.

    The gap is ``min`` over primal values seen (at ``V`` and at ``W⁺``, both free) minus
    ``max`` over dual values seen (the scaled residual at ``V``, free): any primal
    value bounds ``p*`` from above and any feasible dual value from below.
    ``stalled`` is set when the observed rate predicts more than ``stall_iter``
    further iterations to reach ``tol``.
    """
    W = W0.copy()
    AW = op.forward(W)
    FW = 0.5 * float(np.vdot(Y - AW, Y - AW)) + lam * float(_row_norms(W).sum())
    V, AV, t = W, AW, 1.0
    best_p, best_W = FW, W
    best_d, best_Z = -math.inf, np.zeros_like(Y)
    rel = math.inf
    restarts = backtracks = 0
    marks: list[float] = []  # gap at the end of each window
    stalled = failed = False
    k = 0
    for k in range(1, max_iter + 1):
        R = Y - AV
        G = op.adjoint(R)
        vn_sum = float(_row_norms(V).sum())
        chk = _gap(Y, R, G, vn_sum, lam)
        if chk.primal < best_p:
            best_p, best_W = chk.primal, V
        if chk.dual > best_d:
            best_d, best_Z = chk.dual, chk.scale * R
        rel = relative_gap(best_p, best_d)
        if rel <= tol:
            break
        if k % window == 0:
            if report is not None:
                report(k, best_p, rel)
            marks.append(rel)
            if len(marks) >= 3:
                ratio = marks[-3] / max(rel, 1e-300)  # progress over two windows
                need = (2 * window * math.log(rel / tol) / math.log(ratio)
                        if ratio > 1.0 else math.inf)
                if need > stall_iter:
                    stalled = True
                    break
        fV = 0.5 * float(np.vdot(R, R))
        for _ in range(MAX_BACKTRACKS):
            U = V + G * (1.0 / L)
            un = _row_norms(U)
            shrink = np.maximum(0.0, 1.0 - (lam / L) / np.maximum(un, 1e-300))
            Wn = U * shrink[:, None]
            AWn = op.forward(Wn)
            Rn = Y - AWn
            fWn = 0.5 * float(np.vdot(Rn, Rn))
            D = Wn - V
            bound = fV - float(np.vdot(G, D)) + 0.5 * L * float(np.vdot(D, D))
            # the descent lemma up to rounding, relative to the values compared (no floor:
            # the test must not depend on the units of the data)
            if fWn <= bound + 1e-12 * abs(fV):
                break
            L *= 2.0
            backtracks += 1
        else:  # no step satisfies the descent lemma: values are not finite
            failed = True
            break
        if not (math.isfinite(fWn) and math.isfinite(L)):
            failed = True
            break
        FWn = fWn + lam * float((un * shrink).sum())
        if FWn < best_p:
            best_p, best_W = FWn, Wn
        if FWn > FW or float(np.vdot(V - Wn, Wn - W)) > 0.0:
            restarts += 1
            t = 1.0
            V, AV = Wn, AWn
        else:
            t_next = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t))
            beta = (t - 1.0) / t_next
            V = Wn + beta * (Wn - W)
            AV = AWn + beta * (AWn - AW)
            t = t_next
        W, AW, FW = Wn, AWn, FWn
    return _Inner(best_W.copy(), best_Z, best_p, best_d, k, restarts, backtracks, L, stalled,
                  failed)


#: Newton refinement on the support when its dense Hessian costs at most this many
#: flops to form (``n·(s·d)²``) and has at most this dimension (``s·d·c``).
NEWTON_MAX_FLOPS = 4e8
NEWTON_MAX_DIM = 1500
#: Newton refinement is tried once the full-set relative gap is below this and no
#: inactive group violates its dual constraint (the support looks identified).
NEWTON_GAP = 1e-2
#: Newton refinements tried per solve before first-order iterations finish alone.
NEWTON_ATTEMPTS = 3
#: Columns (groups × d) of the Gram matrix the operator keeps for Newton refinements.
GRAM_CACHE_COLUMNS = 2000


def _newton(op: GroupLassoOperator, Y: np.ndarray, lam: float, W: np.ndarray,
            idx: np.ndarray, *, tol: float = 0.0, max_steps: int = 8
            ) -> tuple[np.ndarray, int]:
    """Damped Newton on the groups ``idx`` (all non-zero), where ``F`` is smooth.

    ``F_S(w) = ½||A_S w − Y||² + λ Σ ||w_i||`` has gradient ``−A_Sᵀ R + λ u`` and Hessian
    ``A_SᵀA_S ⊗ I_c + λ blockdiag((I − u_i u_iᵀ)/||w_i||)`` (``u_i = w_i/||w_i||``).
    Once the support is right this converges quadratically, which the residual-scaled
    dual point needs: its gap is of the order of the *square root* of the primal
    suboptimality. Steps are backtracked on ``F_S``; a short step (a group heading
    for zero: the support is wrong) ends the refinement and first-order iterations
    resume. Stops early once the gap restricted to the support is at most ``tol``.
    Returns rows for ``idx`` and the number of steps taken.
    """
    d, c = op.d, op.c
    dc = d * c
    s = len(idx)
    Q, G = op.support_gram(idx)
    w = np.array(W, dtype=np.float64).reshape(s, dc)
    R = Y - Q @ w.reshape(s * d, c)
    F = 0.5 * float(np.vdot(R, R)) + lam * float(_row_norms(w).sum())
    eye = np.eye(dc)
    steps = 0
    for _ in range(max_steps):
        nrm = _row_norms(w)
        if not np.all(nrm > 0.0):
            break
        u = w / nrm[:, None]
        corr = (Q.T @ R).reshape(s, dc)  # Xᵀ D_i R on the support
        if tol > 0.0 and _gap(Y, R, corr, float(nrm.sum()), lam).rel <= tol:
            break  # certified on the support; the caller checks every group
        grad = (lam * u - corr).ravel()
        H = np.kron(G, np.eye(c)) if c > 1 else G.copy()
        # block-diagonal curvature of the group norms, added through a 4-d view of H
        blocks = (lam / nrm)[:, None, None] * (eye - u[:, :, None] * u[:, None, :])
        diag = np.arange(s)
        H.reshape(s, dc, s, dc)[diag, :, diag, :] += blocks
        try:
            step = -scipy.linalg.cho_solve(scipy.linalg.cho_factor(H, check_finite=False),
                                           grad, check_finite=False)
        except (np.linalg.LinAlgError, ValueError):
            break
        slope = float(grad @ step)
        if not slope < 0.0 or -0.5 * slope <= 1e-15 * abs(F):  # Newton decrement: done
            break
        t, accepted = 1.0, False
        while t >= 1.0 / 16:
            w_new = w + t * step.reshape(s, dc)
            R_new = Y - Q @ w_new.reshape(s * d, c)
            F_new = 0.5 * float(np.vdot(R_new, R_new)) + lam * float(_row_norms(w_new).sum())
            if F_new <= F + 1e-4 * t * slope:
                accepted = True
                break
            t *= 0.5
        if not accepted:
            break
        w, R, F = w_new, R_new, F_new
        steps += 1
    return w, steps


def _sigma_max(X: np.ndarray) -> float:
    """``||X||₂``, an upper bound of every ``||D_i X||₂`` (D_i is a projection)."""
    return float(np.sqrt(np.linalg.eigvalsh(X.T @ X)[-1])) if X.size else 0.0


Polisher = Callable[[np.ndarray, np.ndarray], np.ndarray]


def solve_group_lasso(
    X: np.ndarray,
    Y: np.ndarray,
    M: np.ndarray,
    lam: float,
    *,
    W0: np.ndarray | None = None,
    tol: float = 1e-6,
    max_iter: int = 20_000,
    polish: Polisher | None = None,
    max_polish: int = 3,
    stall_iter: int = 4_000,
    working_set: np.ndarray | None = None,
    use_working_set: bool = True,
    operator: GroupLassoOperator | None = None,
    near_active: float = 0.9,
    progress: Callable[[int, float, float, int], None] | None = None,
) -> GroupLassoResult:
    """Solve the group lasso to a certified relative gap ``tol``.

    Parameters
    ----------
    X : (n, d) ndarray
    Y : (n, c) ndarray
    M : (n, P) bool ndarray
        Pattern matrix (``D_i = diag(M[:, i])``).
    lam : float
        ``λ > 0``.
    W0 : (P, d, c) ndarray, optional
        Warm start.
    tol : float
        Target relative duality gap on the full pattern set.
    max_iter : int
        Budget of proximal-gradient iterations (over all working sets; Newton steps,
        at most ``NEWTON_ATTEMPTS × 8``, are counted apart).
    polish : callable, optional
        ``polish(idx, W_idx) -> W_idx`` solving the program restricted to the groups
        ``idx`` (e.g. the interior-point program); called when first-order progress
        stalls or the budget runs out, at most ``max_polish`` times. A
        :class:`~convexnn.errors.ConvexNNError` from it ends the solve (status
        ``"stalled"``) with the best point so far.
    stall_iter : int
        Progress counts as stalled when the observed rate predicts more than this many
        further iterations.
    working_set : (P,) bool ndarray, optional
        Groups to start from besides the active groups of ``W0`` (e.g. a screening
        rule's survivors); the answer is always checked on the full set.
    use_working_set : bool
        False runs FISTA on every group (no working set).
    operator : GroupLassoOperator, optional
        A prebuilt operator on ``X, M`` (reused along paths).
    near_active : float
        Polishing includes inactive groups with ``||Xᵀ D_i R|| ≥ near_active · λ`` (``R``
        the residual: every violator of the dual constraint and the nearly tight ones).
    progress : callable, optional
        ``progress(iterations, objective, relative_gap, working_set)`` is called every
        window of iterations (and after every full-set check).

    Returns
    -------
    GroupLassoResult
    """
    start = time.perf_counter()
    n, d = X.shape
    c = Y.shape[1]
    Y = np.ascontiguousarray(Y, dtype=np.float64)
    op = operator if operator is not None else GroupLassoOperator(X, M, c)
    P = op.P
    W = np.zeros((P, d * c)) if W0 is None else np.array(W0, dtype=np.float64).reshape(P, d * c)
    sigma = _sigma_max(op.X)
    screened = np.zeros(P, dtype=bool)
    ws = (np.zeros(P, dtype=bool) if working_set is None
          else np.asarray(working_set, dtype=bool).copy())
    iterations = restarts = backtracks = outer = polish_rounds = 0
    L_used = 0.0
    history: list[tuple[int, float]] = []
    want_polish = False
    Z_cand = None
    newton_steps = newton_failures = 0
    just_newton = False

    def newton_fits(k: int) -> bool:
        return n * (k * d) ** 2 <= NEWTON_MAX_FLOPS and k * d * c <= NEWTON_MAX_DIM

    status = "max_iter"
    best: tuple[FullCheck, np.ndarray] | None = None  # best full-set check and its W
    for outer in range(1, MAX_OUTER + 1):  # noqa: B007 - the count is reported
        chk = full_certificate(op, Y, W, lam, Z_cand)
        rel, scores, scale = chk.rel, chk.scores, chk.scale
        history.append((iterations, rel))
        if best is None or rel < best[0].rel:
            best = (chk, W.copy())
        if progress is not None:
            progress(iterations, chk.primal, rel, int(np.count_nonzero(ws)))
        if not (math.isfinite(chk.primal) and np.all(np.isfinite(scores))):
            status = "numerical_error"  # the values overflowed: report the best point seen
            break
        if rel <= tol:
            status = "converged"
            break
        # Gap-safe screening (exact): ||Xᵀ D_i Z*|| ≤ ||Xᵀ D_i Z|| + ||X||₂ ||Z − Z*||
        # and ||Z − Z*|| ≤ √(2·gap) by 1-strong concavity of the dual.
        radius = sigma * math.sqrt(2.0 * max(chk.primal - chk.dual_R, 0.0))
        screened |= (scale * scores * lam + radius < lam) & ~np.any(W != 0.0, axis=1)
        active = np.any(W != 0.0, axis=1)
        budget = max_iter - iterations
        if just_newton:
            newton_failures += 1
        elif (newton_failures < NEWTON_ATTEMPTS and rel <= NEWTON_GAP and active.any()
              and newton_fits(int(active.sum()))):
            # The support looks identified: refine on it with Newton. A few violators of
            # the dual constraint enter with one proximal-gradient step; with many (e.g.
            # after a change of λ) Newton on the current support is a predictor and the
            # first-order iterations add the groups that really enter.
            viol = np.flatnonzero(~active & (scores > 1.0))
            if 0 < len(viol) <= max(3, int(active.sum()) // 4) and newton_fits(
                    int(active.sum()) + len(viol)):
                g = op.subset(viol).adjoint(chk.R)
                gn = _row_norms(g)
                W[viol] = g * ((gn - lam) / (sigma**2 * gn))[:, None]
            act = np.flatnonzero(np.any(W != 0.0, axis=1))
            W_act, steps = _newton(op, Y, lam, W[act], act, tol=INNER_FRACTION * tol)
            newton_steps += steps
            W = np.zeros_like(W)
            W[act] = W_act
            just_newton = True
            continue
        just_newton = False
        if want_polish or budget <= 0:
            if polish is None or polish_rounds >= max_polish:
                status = "stalled" if want_polish else "max_iter"
                break
            idx = np.flatnonzero((active | ws | (scores >= near_active)) & ~screened)
            try:
                W_idx = polish(idx, W[idx].reshape(-1, d, c))
            except ConvexNNError:  # e.g. the working set is too large for the IPM
                status = "stalled"
                break
            W = np.zeros_like(W)
            W[idx] = np.asarray(W_idx, dtype=np.float64).reshape(len(idx), d * c)
            polish_rounds += 1
            want_polish = False
            ws = np.zeros(P, dtype=bool)
            ws[idx] = True
            continue
        if use_working_set:
            # active groups, the previous working set, and the strongest violators of
            # the dual constraint (at most as many as there are active groups, ≥ 10)
            keep = (active | ws) & ~(screened & ~active)
            room = max(MIN_WORKING_SET, int(active.sum()))
            cand = np.flatnonzero(~keep & ~screened & (scores > 1.0))
            cand = cand[np.argsort(-scores[cand], kind="stable")[:room]]
            ws = keep.copy()
            ws[cand] = True
            if not ws.any():
                ws[np.argsort(-scores, kind="stable")[:MIN_WORKING_SET]] = True
        else:
            ws = ~screened | active
        idx = np.flatnonzero(ws)
        sub = op.subset(idx) if len(idx) < P else op
        L, vec = lipschitz(sub, start=op.power_vector[idx])
        op.power_vector[idx] = vec
        # ||A_S||² ≤ Σ_i ||D_i X||₂² ≤ |S|·||X||₂² bounds a failed estimate
        L = L * LIPSCHITZ_SAFETY if L > 0.0 else len(idx) * sigma**2
        inner_tol = max(INNER_FRACTION * tol, GAP_FRACTION * rel) if len(idx) < P else tol
        report = None
        if progress is not None:
            def report(k: int, p: float, r: float, done: int = iterations,
                       m: int = len(idx)) -> None:
                progress(done + k, p, r, m)
        inner = _fista(sub, Y, lam, W[idx], max(L, np.finfo(np.float64).tiny), tol=inner_tol,
                       max_iter=budget, stall_iter=stall_iter, report=report)
        iterations += inner.iterations
        restarts += inner.restarts
        backtracks += inner.backtracks
        L_used = inner.L
        W = np.zeros_like(W)
        W[idx] = inner.W
        Z_cand = inner.Z
        want_polish = inner.stalled
        if inner.failed:
            status = "numerical_error"
            break
    chk, W_best = best
    return GroupLassoResult(
        W=W_best.reshape(P, d, c), Z=chk.Z, objective=chk.primal, dual_objective=chk.dual,
        relative_gap=chk.rel, status=status, iterations=iterations, restarts=restarts,
        newton_steps=newton_steps, backtracks=backtracks, outer_iterations=outer,
        polish_rounds=polish_rounds,
        lipschitz=L_used, working_set=int(ws.sum()), screened=int(screened.sum()),
        seconds=time.perf_counter() - start, history=tuple(history),
    )


# ---------------------------------------------------------------------------
# The method: options, memory, run, path
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Options(OptionsBase):
    """Options of ``method="fast"`` for the group-lasso formulations.

    ``init``: warm-start weights, shape (P, d[, c]). ``max_iter``: proximal-gradient
    iterations (default 20000). ``polish``: the interior-point program on the working set
    when first-order progress stalls (default True). ``working_set``: True, False (every
    group at once) or a boolean mask (P,) of groups to start from (e.g. a screening
    rule's survivors; the answer is always certified on the full pattern set).
    ``threads``: BLAS threads during the solve (default 1; None leaves BLAS as configured).
    """

    init: Any = None
    max_iter: int = 20_000
    polish: bool = True
    working_set: Any = True
    threads: int | None = 1

    def __post_init__(self) -> None:
        integer(self.max_iter, "max_iter", minimum=0)
        boolean(self.polish, "polish")
        threads(self.threads)
        if not isinstance(self.working_set, (bool, np.bool_)):
            mask = np.asarray(self.working_set)
            if mask.dtype != bool or mask.ndim != 1:
                raise InvalidInputError("working_set must be True, False or a boolean mask "
                                        "of shape (P,).")


def memory_estimate(form: Formulation, data: ProblemData) -> int:
    """``O(nP + n·d·c + P·d·c)`` — the float copy of ``M``, one working-set copy of it, the
    GEMM temporaries and a dozen iterate-sized arrays — plus the bounded Newton
    refinement (cached Gram blocks and one Hessian)."""
    n, d, P, c = data.n, data.d, data.P, data.c
    newton = (min(GRAM_CACHE_COLUMNS, P * d) ** 2 + 2 * min(NEWTON_MAX_DIM, P * d * c) ** 2
              + 2 * n * min(GRAM_CACHE_COLUMNS, P * d))
    return dense_bytes(2 * n * P, 4 * n * d * c, 16 * P * d * c, 12 * n * c, newton) + 2**20


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


class _Polisher:
    """The formulation's interior-point program on a working set of groups (when FISTA
    stalls), solved on data rescaled by powers of two like :mod:`convexnn.methods.ipm`."""

    def __init__(self, form: Formulation, data: ProblemData, reg: float, options: SolveOptions):
        self.form, self.data, self.reg, self.options = form, data, reg, options
        self.seconds = 0.0
        self.error: str | None = None

    def __call__(self, idx: np.ndarray, W_idx: np.ndarray) -> np.ndarray:
        from ..memory import ipm_bytes, require_memory

        start = time.perf_counter()
        try:
            sub = self.data.with_patterns(self.data.patterns.subset(idx))
            require_memory(ipm_bytes(*self.form.ipm_size(sub)), what=self.form.name,
                           method="ipm (polish)", sizes={"n": sub.n, "d": sub.d, "P": sub.P,
                                                         "c": sub.c},
                           limit=self.options.memory_limit)
            a, s = ipm_scales(sub)
            program = self.form.build_primal(scaled_data(sub, a, s))
            program.set_reg(self.reg, a, s)
            with warnings.catch_warnings():
                # the full-set certificate decides; an inaccurate polish is just not used
                warnings.simplefilter("ignore", InaccurateSolutionWarning)
                run_problem(program.problem, self.options.solver, tol=self.options.tol,
                            verbose=self.options.verbose,
                            options=dict(self.options.solver_options))
            weights, _ = program.solution(a, s)
            if not weights:
                raise SolverFailedError("the polish returned no primal point")
            return weights["W"]
        except ConvexNNError as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self.seconds += time.perf_counter() - start


def run(form: Formulation, data: ProblemData, reg: float, options: SolveOptions, *,
        operator: GroupLassoOperator | None = None) -> Solution:
    """Solve the group lasso of ``form`` at ``λ = reg`` by :func:`solve_group_lasso` and
    certify the answer with the formulation's certificate.

    Like the interior-point method it works on ``(X/a, Y/s)`` at ``λ/(a s)`` with ``a, s``
    powers of two (:func:`~convexnn.problem.ipm_scales`), so that neither its stopping
    rule nor its arithmetic depends on the units of the data; ``W = (s/a) W'``. ``operator``
    (a prebuilt :class:`GroupLassoOperator` on ``X/a``, see :func:`run_path`) is reused
    along paths.
    """
    opts = options.method_options
    if not isinstance(opts, Options):
        opts = Options()
    W0 = _check_init(opts.init, data) if opts.init is not None else None
    seed_ws = None
    if isinstance(opts.working_set, (bool, np.bool_)):
        use_ws = bool(opts.working_set)
    else:
        seed_ws = np.asarray(opts.working_set)
        if seed_ws.shape != (data.P,):
            raise InvalidInputError(
                f"working_set must be True, False or a boolean mask of shape ({data.P},)."
            )
        use_ws = True
    a, s = ipm_scales(data)
    scaled, lam = scaled_data(data, a, s), reg / (a * s)
    polisher = _Polisher(form, scaled, lam, options) if opts.polish else None
    bar = Progress(f"{form.name} fast", options.progress)
    report = (lambda it, obj, rel, ws: bar.update(iteration=it, objective=obj * s * s,
                                                  relative_gap=rel, working_set=ws)
              ) if bar.enabled else None
    with blas_threads(opts.threads):
        start = time.perf_counter()
        try:
            res = solve_group_lasso(
                scaled.X, scaled.Y, scaled.M, lam, W0=None if W0 is None else W0 * (a / s),
                tol=options.tol, max_iter=int(opts.max_iter), polish=polisher,
                working_set=seed_ws, use_working_set=use_ws, operator=operator,
                progress=report,
            )
        finally:
            bar.close()
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
            "threads": opts.threads,
            "scaling": {"X": a, "y": s},
        }
        return form.make_solution(
            data, reg, {"W": res.W * (s / a)}, options, status=res.status, solver=solver,
            method="fast", build_s=0.0, solve_s=solve_s, dual={"z": res.Z * s}, info=info,
        )


def run_path(form: Formulation, data: ProblemData, regs: Sequence[float],
             options: SolveOptions) -> tuple[list[Solution], dict[str, Any]]:
    """Decreasing ``regs`` with one operator (its float masks and cached Gram blocks) and
    warm starts: each λ starts from the previous weights, whose support seeds the
    working set. (Sequential strong rules, ``||Xᵀ D_i R(λ_prev)|| ≥ 2λ − λ_prev``, were
    measured and left out: with sampled patterns many inactive groups sit at the dual
    boundary, so the rule keeps most of them and the path ran 2× slower.)"""
    from dataclasses import replace

    start = time.perf_counter()
    a, s = ipm_scales(data)
    op = GroupLassoOperator(scaled_data(data, a, s).X, data.M, data.c)
    setup = time.perf_counter() - start
    opts = options.method_options if isinstance(options.method_options, Options) else Options()
    sols: list[Solution] = []
    for lam in regs:
        sol = run(form, data, float(lam), replace(options, method_options=opts), operator=op)
        sols.append(sol)
        opts = replace(opts, init=sol.weights["W"])
    return sols, {"setup_s": setup}
