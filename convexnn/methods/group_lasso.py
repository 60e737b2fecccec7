"""The gated-ReLU group lasso by a structured numpy method (``method="fast"``).

    min_W  F(W) = ½ ||Σ_i D_i X W_i − Y||² + λ Σ_i ||W_i||_F

Two phases, each certified over **all** P groups in float64 by the certificate's own
dual value (the best feasible multiple of the residual,
:func:`~convexnn.formulations.gated_relu.ball_dual_value`):

1. **Support estimate.** Working sets — the active groups plus the strongest violators
   of the dual constraint ``||Xᵀ D_i R|| ≤ λ`` (at least ``MIN_WORKING_SET``) — each
   solved by greedy FISTA (Liang, Luo & Schönlieb 2022: momentum 1, step
   ``GREEDY_STEP/L``, restart when the step and the momentum disagree, step shrunk when
   steps grow) with group soft-thresholding

       W⁺_i = (1 − (γλ)/||U_i||)_+ U_i,   U = V + γ Aᵀ(Y − A V),

   until the restricted gap is below ``NEWTON_SWITCH``; after each round the full-set
   certificate adds violators, and gap-safe screening (Ndiaye et al. 2017) discards
   groups for good.
2. **Finish.** Newton's method on the support over all groups
   (:func:`~convexnn.methods.group_lasso_newton.newton_phase`), quadratically
   convergent once the support is right: conjugate gradients with a two-level
   preconditioner, or for small ``n`` exact steps through an ``n × n`` Cholesky factor
   (then phase 1 is cut to ``DENSE_FISTA_ITERS`` iterations).

The residual-scaled dual point's gap is of the order of the *square root* of the primal
suboptimality, so a gap of 1e-6 needs a primal error near 1e-12: first-order methods
alone take thousands of iterations at small λ, the Newton finish a handful of steps.

**Precision.** Products with the working set's masks run in float32 (masks stored
transposed, exact 0/1) when ``n·s·d·c ≥ MIXED_MIN_SIZE``, *only* inside FISTA and the
conjugate-gradient solves; every gradient, line search and certificate is float64
(:mod:`~convexnn.methods.group_lasso_ops`). A float32 error can slow the solve down, never
certify it. **Fallback.** When the numpy solve stalls or its budget runs out, the
formulation's interior-point program on the active and nearly active groups
(``polish``) finishes; the full-set certificate decides as always.

Every loop is bounded (the constants below, ``max_iter``, ``MAX_NEWTON``, ``MAX_CG``).
:func:`run` is the method behind ``solve(..., method="fast")`` for the group-lasso
formulations; :func:`run_path` reuses one operator along a λ path with warm starts. The
mathematics: ``docs/math/fast_methods.md``.
"""

from __future__ import annotations

import functools
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..errors import ConvexNNError, InvalidInputError, SolverFailedError
from ..formulations.base import Formulation, SolveOptions
from ..memory import dense_bytes
from ..problem import ProblemData, ipm_scales, scaled_data
from ..progress import Progress
from ..solution import Solution
from ..solvers import InaccurateSolutionWarning, run_problem
from ..threads import blas_threads
from ..validation import Options as OptionsBase
from ..validation import boolean, choice, integer, threads
from .group_lasso_newton import (
    DENSE_MAX_N,
    Counters,
    dense_step_cheaper,
    newton_phase,
)
from .group_lasso_ops import CHUNK_BYTES, Check, GroupLassoOperator, SubOperator, check, row_norms

__all__ = [
    "Options",
    "run",
    "run_path",
    "memory_estimate",
    "GroupLassoOperator",
    "GroupLassoResult",
    "solve_group_lasso",
    "PRECISIONS",
]

#: Restricted relative gap at which FISTA hands over to Newton.
NEWTON_SWITCH = 0.05
#: Full-set relative gap below which the Newton phase starts (after a round that reached
#: its switch gap, or at once from a warm start).
PHASE2_GAP = 0.3
#: Smallest working set (groups); at most max(MIN_WORKING_SET, active) violators enter
#: per round.
MIN_WORKING_SET = 100
#: A working-set round is solved to ``max(INNER_FRACTION·tol, GAP_FRACTION·gap)``.
INNER_FRACTION = 0.2
GAP_FRACTION = 0.2
#: Working-set rounds of one solve at most.
MAX_OUTER = 60
#: Power iterations for ``||A_S||²`` at most.
POWER_ITERS = 12
#: Greedy FISTA: step GREEDY_STEP / L, shrunk by GREEDY_SHRINK when a step exceeds the first.
GREEDY_STEP = 1.3
GREEDY_SHRINK = 0.96
#: FISTA stops when its best gap has not improved by 10% within this many iterations.
STALL_WINDOW = 100
#: The solve stops (status "stalled") when the full-set gap has not improved by 10% in
#: this many working-set rounds.
STALL_OUTER = 6
#: Float32 products (mixed precision) when ``n·s·d·c`` is at least this.
MIXED_MIN_SIZE = 2_000_000
#: When an exact Newton step costs less than this many CG iterations, FISTA hands over
#: at ``NEWTON_SWITCH`` or after ``DENSE_FISTA_ITERS`` iterations (a support estimate).
DENSE_SWITCH_PRODUCTS = 60
DENSE_FISTA_ITERS = 50
#: Interior-point polish rounds at most; groups with ``||Xᵀ D_i R|| ≥ NEAR_ACTIVE·λ`` join.
MAX_POLISH = 3
NEAR_ACTIVE = 0.9
#: Progress is reported every this many FISTA iterations.
REPORT_EVERY = 100
#: ``precision``: float32 products where safe when large (auto), always, or never.
PRECISIONS = ("auto", "mixed", "double")

Polisher = Callable[[np.ndarray, np.ndarray], np.ndarray]
Report = Callable[[int, float, float, int], None]


@dataclass(frozen=True, repr=False)
class GroupLassoResult:
    """Outcome of :func:`solve_group_lasso` (on the data it was given).

    ``relative_gap`` is the full-set gap of ``(W, Z)`` as computed by the solver; callers
    re-certify ``W`` with the formulation's certificate. ``history`` holds
    ``(iterations, seconds, relative gap)`` after every full-set certificate.
    """

    W: np.ndarray  # (P, d, c)
    Z: np.ndarray  # (n, c) dual-feasible point (the scaled residual)
    objective: float
    dual_objective: float
    relative_gap: float
    status: str  # converged | max_iter | stalled | numerical_error
    iterations: int  # FISTA iterations
    restarts: int
    newton_steps: int
    cg_iterations: int
    dense_newton_steps: int
    outer_iterations: int
    polish_rounds: int
    working_set: int
    support: int
    screened: int
    full_checks: int
    partial_checks: int
    mixed_precision: bool
    seconds: float
    history: tuple[tuple[int, float, float], ...] = field(default=())

    @property
    def converged(self) -> bool:
        return self.status == "converged"

    def __repr__(self) -> str:
        return (f"GroupLassoResult(status={self.status!r}, relative_gap={self.relative_gap:.2e}, "
                f"iterations={self.iterations}, newton_steps={self.newton_steps}, "
                f"cg_iterations={self.cg_iterations}, polish_rounds={self.polish_rounds}, "
                f"support={self.support}, seconds={self.seconds:.3f})")


# ---------------------------------------------------------------------------
# Phase 1: greedy FISTA on a working set
# ---------------------------------------------------------------------------


def _lipschitz(sub: SubOperator, c: int, cnt: Counters) -> float:
    """``||A_S||²`` by power iteration from the common mode, × 1.1 (a lower estimate).

    The start is every group carrying the top eigenvector of ``Xᵀ diag(m²) X``
    (``m = Σ_{i ∈ S} M[:, i]``), near the top eigenvector of ``A_SᵀA_S`` when masks overlap.
    """
    s = sub.s
    m = sub.MT.sum(axis=0, dtype=np.float64)
    Xm = sub.op.X * m[:, None]
    _, V = np.linalg.eigh(Xm.T @ Xm)
    v = np.tile(np.repeat(V[:, -1], c)[None, :], (s, 1))
    v += 1e-2 * np.random.default_rng(0).standard_normal(v.shape) * np.abs(v).max()
    v /= np.linalg.norm(v)
    L = 0.0
    for _ in range(POWER_ITERS):
        w = sub.adj(sub.fwd(v))
        cnt.power += 1
        L_new = float(np.linalg.norm(w))
        if not math.isfinite(L_new) or L_new == 0.0:
            break
        v = w / L_new
        converged = abs(L_new - L) <= 1e-2 * L_new
        L = L_new
        if converged:
            break
    # ||A_S||² ≤ Σ_i ||D_i X||₂² ≤ s ||X||₂² bounds a failed estimate
    return 1.1 * L if L > 0.0 else float(s) * sub.op.sigma ** 2


def _fista(sub: SubOperator, Yt: np.ndarray, lam: float, W0: np.ndarray, *, tol: float,
           max_iter: int, cnt: Counters, report: Callable[[int, float, float], None] | None
           ) -> tuple[np.ndarray, float]:
    """Greedy FISTA with restart on the working set (fast products).

    Stops at restricted relative gap ``tol`` (as computed with the fast products — a
    stopping rule, never a certificate), after ``max_iter`` iterations, or when the best
    gap has not improved by 10% in ``STALL_WINDOW`` iterations. Returns the best point
    and its restricted gap.
    """
    W = W0.copy()
    AW = sub.fwd(W)
    V, AV = W, AW
    best_W, best_rel = W, math.inf
    mark, mark_k = math.inf, 0
    L: float | None = None
    gamma = 0.0
    first_step: float | None = None
    for k in range(max_iter + 1):
        Rt = Yt - AV
        G = sub.adj(Rt)
        chk = check(Yt, Rt, G, float(row_norms(V).sum()), lam)
        if not math.isfinite(chk.rel):
            break
        if chk.rel < best_rel:
            best_W, best_rel = V, chk.rel
        if chk.rel <= tol or k == max_iter:
            break
        if best_rel < 0.9 * mark:
            mark, mark_k = best_rel, k
        elif k - mark_k > STALL_WINDOW:
            break
        if report is not None and k and k % REPORT_EVERY == 0:
            report(k, chk.primal, best_rel)
        cnt.fista += 1
        if L is None:  # only when an iteration is needed
            L = _lipschitz(sub, Yt.shape[0], cnt)
            gamma = GREEDY_STEP / L
        U = V + G * gamma
        shrink = np.maximum(0.0, 1.0 - (lam * gamma) / np.maximum(row_norms(U), 1e-300))
        Wn = U * shrink[:, None]
        AWn = sub.fwd(Wn)
        step = float(np.linalg.norm(Wn - W))
        if first_step is None:
            first_step = step
        elif step > first_step:
            gamma = max(1.0 / L, GREEDY_SHRINK * gamma)
        if float(np.vdot(V - Wn, Wn - W)) >= 0.0:
            cnt.restarts += 1
            V, AV = Wn, AWn
        else:
            V, AV = 2.0 * Wn - W, 2.0 * AWn - AW
        W, AW = Wn, AWn
    return best_W.copy(), best_rel


# ---------------------------------------------------------------------------
# The solver
# ---------------------------------------------------------------------------


def _report_fista(progress: Report, work: Callable[[], int], ws: int, k: int, objective: float,
                  rel: float) -> None:
    progress(work(), objective, rel, ws)


@dataclass
class _Best:
    """The best point seen (smallest full-set gap) and its check."""

    W: np.ndarray
    chk: Check

    def offer(self, W: np.ndarray, chk: Check) -> None:
        if chk.rel < self.chk.rel or not math.isfinite(self.chk.rel):
            self.W, self.chk = W.copy(), chk


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
    working_set: np.ndarray | None = None,
    use_working_set: bool = True,
    precision: str = "auto",
    operator: GroupLassoOperator | None = None,
    progress: Report | None = None,
) -> GroupLassoResult:
    """Solve the group lasso to a certified relative gap ``tol`` (see the module docstring).

    Parameters
    ----------
    X : (n, d) ndarray
        Data of order one (:func:`run` rescales by powers of two first).
    Y : (n, c) ndarray
    M : (n, P) bool ndarray
        Pattern matrix (``D_i = diag(M[:, i])``).
    lam : float
        ``λ > 0``.
    W0 : (P, d, c) ndarray, optional
        Warm start; a start whose full-set gap is at most ``PHASE2_GAP`` goes straight
        to the Newton phase (paths).
    tol : float
        Target relative duality gap on the full pattern set.
    max_iter : int
        Budget of iterations: FISTA iterations plus conjugate-gradient iterations plus
        exact Newton steps (each about one product pair with ``A``).
    polish : callable, optional
        ``polish(idx, W_idx) -> W_idx`` solving the program restricted to the groups
        ``idx`` (the interior-point program), called when the numpy solve stalls or runs
        out of budget, at most ``MAX_POLISH`` times. A
        :class:`~convexnn.errors.ConvexNNError` from it ends the solve with the best point.
    working_set : (P,) bool ndarray, optional
        Groups to start from besides the active groups of ``W0``.
    use_working_set : bool
        False runs phase 1 on every group not screened out.
    precision : {"auto", "mixed", "double"}
        Float32 products inside FISTA and CG when ``n·s·d·c ≥ MIXED_MIN_SIZE`` (auto),
        always (mixed) or never (double). Certificates are float64 in every case.
    operator : GroupLassoOperator, optional
        A prebuilt operator on ``X, M`` (reused along paths).
    progress : callable, optional
        ``progress(iterations, objective, relative_gap, working_set)``.

    Returns
    -------
    GroupLassoResult
    """
    start = time.perf_counter()
    op = operator if operator is not None else GroupLassoOperator(X, M)
    n, d, P = op.n, op.d, op.P
    Yt = np.ascontiguousarray(np.asarray(Y, dtype=np.float64).T)
    c = Yt.shape[0]
    cnt = Counters()
    history: list[tuple[int, float, float]] = []
    W = np.zeros((P, d * c)) if W0 is None else np.array(W0, dtype=np.float64).reshape(P, d * c)
    screened = np.zeros(P, dtype=bool)
    ws_prev = (np.zeros(P, dtype=bool) if working_set is None
               else np.asarray(working_set, dtype=bool).copy())
    polish_rounds = 0

    def work() -> int:
        return cnt.fista + cnt.cg + cnt.dense

    def full_check(Wfull: np.ndarray) -> Check:
        act = np.flatnonzero(np.any(Wfull != 0.0, axis=1))
        Rt = Yt - (op.forward(Wfull[act], act) if len(act) else 0.0)
        cnt.full_checks += 1
        return check(Yt, Rt, op.correlations(Rt), float(row_norms(Wfull).sum()), lam)

    def mixed_for(s: int) -> bool:
        return precision == "mixed" or (precision == "auto" and n * s * d * c >= MIXED_MIN_SIZE)

    def record(chk: Check, ws: int) -> None:
        history.append((work(), time.perf_counter() - start, chk.rel))
        if progress is not None:
            progress(work(), chk.primal, chk.rel, ws)

    chk = full_check(W)
    best = _Best(W.copy(), chk)
    newton_ready = W0 is not None
    dense_start = False
    last_progress = 0
    status = "max_iter"
    for outer in range(MAX_OUTER):
        cnt.outer = outer + 1
        record(chk, int(ws_prev.sum()))
        if not math.isfinite(chk.rel):
            status = "numerical_error"
            break
        if chk.rel < 0.9 * best.chk.rel:
            last_progress = outer
        best.offer(W, chk)
        if chk.rel <= tol:
            status = "converged"
            break
        if outer - last_progress >= STALL_OUTER:
            status = "stalled"
            break
        if work() >= max_iter:
            status = "max_iter"
            break
        if newton_ready and (chk.rel <= PHASE2_GAP or dense_start):
            # phase 2: Newton on the support, certified over all groups at every step
            s = int(np.any(W != 0.0, axis=1).sum())
            W, chk, status = newton_phase(
                op, Yt, lam, W, tol=tol, cnt=cnt, budget=max_iter - work(),
                mixed=mixed_for(s), screened=screened,
                dense_first=dense_step_cheaper(n, max(s, 1), d, c, DENSE_SWITCH_PRODUCTS),
                report=None if progress is None else
                lambda ck, s_: progress(work(), ck.primal, ck.rel, s_))
            history.append((work(), time.perf_counter() - start, chk.rel))
            best.offer(W, chk)
            break
        # gap-safe screening (exact): ||Xᵀ D_i Z*|| ≤ ||Xᵀ D_i Z|| + ||X||₂ √(2·gap)
        active = np.any(W != 0.0, axis=1)
        radius = op.sigma * math.sqrt(2.0 * max(chk.primal - chk.dual, 0.0))
        screened |= (chk.scale * chk.scores * lam + radius < lam) & ~active
        scores = chk.scores
        if use_working_set:
            # active groups, the previous working set, the strongest violators
            keep = (active | ws_prev) & ~screened
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
        ws_prev = ws
        mixed = mixed_for(len(idx))
        cnt.mixed = cnt.mixed or mixed
        sub = op.sub(idx, mixed)
        outside = int(np.sum(~ws & ~screened & (scores > 1.0)))
        inner_tol = (INNER_FRACTION * tol if outside == 0
                     else max(INNER_FRACTION * tol, GAP_FRACTION * chk.rel))
        budget = max(0, max_iter - work())
        dense_ok = n <= DENSE_MAX_N and dense_step_cheaper(n, len(idx), d, c,
                                                           DENSE_SWITCH_PRODUCTS)
        done = cnt.fista
        Ws, rel1 = _fista(sub, Yt, lam, W[idx], tol=max(inner_tol, NEWTON_SWITCH),
                          max_iter=min(budget, DENSE_FISTA_ITERS) if dense_ok else budget,
                          cnt=cnt, report=None if progress is None else
                          functools.partial(_report_fista, progress, work, len(idx)))
        if dense_ok and (rel1 <= NEWTON_SWITCH or cnt.fista - done >= DENSE_FISTA_ITERS):
            newton_ready = dense_start = True  # exact Newton steps are cheap: no more rounds
        newton_ready = newton_ready or rel1 <= NEWTON_SWITCH
        W = np.zeros_like(W)
        W[idx] = Ws
        sub = None
        chk = full_check(W)
    else:
        record(chk, int(ws_prev.sum()))
        best.offer(W, chk)
    W, chk = best.W, best.chk
    if status == "converged" and not chk.rel <= tol:
        status = "max_iter"
    if polish is not None and status in ("stalled", "max_iter"):
        W, chk, polish_rounds, status = _polish_rounds(op, Yt, lam, W, chk, polish, screened,
                                                       ws_prev, tol, status, full_check)
        history.append((work(), time.perf_counter() - start, chk.rel))
    act = np.flatnonzero(np.any(W != 0.0, axis=1))
    Rt = Yt - (op.forward(W[act], act) if len(act) else 0.0)
    return GroupLassoResult(
        W=W.reshape(P, d, c), Z=np.ascontiguousarray((chk.scale * Rt).T),
        objective=chk.primal, dual_objective=chk.dual, relative_gap=chk.rel, status=status,
        iterations=cnt.fista, restarts=cnt.restarts, newton_steps=cnt.newton,
        cg_iterations=cnt.cg, dense_newton_steps=cnt.dense, outer_iterations=cnt.outer,
        polish_rounds=polish_rounds, working_set=int(ws_prev.sum()), support=len(act),
        screened=int(screened.sum()), full_checks=cnt.full_checks,
        partial_checks=cnt.partial_checks, mixed_precision=cnt.mixed,
        seconds=time.perf_counter() - start, history=tuple(history),
    )


def _polish_rounds(op: GroupLassoOperator, Yt: np.ndarray, lam: float, W: np.ndarray,
                   chk: Check, polish: Polisher, screened: np.ndarray, ws: np.ndarray,
                   tol: float, status: str, full_check: Callable[[np.ndarray], Check]
                   ) -> tuple[np.ndarray, Check, int, str]:
    """The interior-point program on the active, working-set and nearly active groups,
    re-certified on every group; violators join the next round (``MAX_POLISH`` at most)."""
    d, c = op.d, Yt.shape[0]
    best = _Best(W.copy(), chk)
    rounds = 0
    members = ws.copy()
    for _ in range(MAX_POLISH):
        members |= np.any(W != 0.0, axis=1) | (chk.scores >= NEAR_ACTIVE)
        idx = np.flatnonzero(members & ~(screened & ~np.any(W != 0.0, axis=1)))
        try:
            W_idx = polish(idx, W[idx].reshape(-1, d, c))
        except ConvexNNError:  # e.g. the working set is too large for the IPM
            break
        rounds += 1
        W = np.zeros_like(W)
        W[idx] = np.asarray(W_idx, dtype=np.float64).reshape(len(idx), d * c)
        chk = full_check(W)
        best.offer(W, chk)
        if chk.rel <= tol:
            status = "converged"
            break
    return best.W, best.chk, rounds, status


# ---------------------------------------------------------------------------
# The method: options, memory, run, path
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Options(OptionsBase):
    """Options of ``method="fast"`` for the group-lasso formulations.

    ``init``: warm-start weights, shape (P, d[, c]). ``max_iter``: budget of numpy
    iterations — FISTA iterations, conjugate-gradient iterations and exact Newton steps,
    each about one product pair with ``A`` (default 20000). ``polish``: the interior-point
    program on the active and nearly active groups when the numpy solve stalls or runs
    out of budget (default True). ``working_set``: True, False (phase 1 on every group at
    once) or a boolean mask (P,) of groups to start from (e.g. a screening rule's
    survivors; the answer is always certified on the full pattern set). ``precision``:
    ``"auto"`` (float32 products inside FISTA and CG for large problems), ``"mixed"``
    (always) or ``"double"`` (never); certificates are float64 in every case.
    ``threads``: BLAS threads during the solve (default 1; None leaves BLAS as configured).
    """

    init: Any = None
    max_iter: int = 20_000
    polish: bool = True
    working_set: Any = True
    precision: str = "auto"
    threads: int | None = 1

    def __post_init__(self) -> None:
        integer(self.max_iter, "max_iter", minimum=0)
        boolean(self.polish, "polish")
        choice(self.precision, "precision", PRECISIONS)
        threads(self.threads)
        if not isinstance(self.working_set, (bool, np.bool_)):
            mask = np.asarray(self.working_set)
            if mask.dtype != bool or mask.ndim != 1:
                raise InvalidInputError("working_set must be True, False or a boolean mask "
                                        "of shape (P,).")


def memory_estimate(form: Formulation, data: ProblemData) -> int:
    """Peak bytes: the working set's transposed masks (float32 when large, at most all
    ``P`` groups), chunks of float64 masks for the products over all groups, copies of
    ``X``, the GEMM temporaries (``d·c × n``), a dozen iterate-sized arrays, the coarse
    preconditioner (``P × P``), the common-mode blocks (``P·d²``, one output) and, when
    ``n ≤ DENSE_MAX_N``, the exact Newton step (``2·n²`` plus the support's masks).

    Measured peaks (planted data, λ = 0.01·λ_max): 6 MB at 2000×20×500, 53 MB at
    10000×50×1000, 131 MB at 20000×50×2000 — about the size of ``X`` plus ``M`` in float64.
    """
    n, d, P, c = data.n, data.d, data.P, data.c
    mask_entries = n * P * (0.5 if n * P * d * c >= MIXED_MIN_SIZE else 1.0)
    dense = 2 * n * n + n * P if n <= DENSE_MAX_N else 0
    return dense_bytes(mask_entries, 3 * CHUNK_BYTES / 8, 4 * n * d, 6 * n * d * c,
                       16 * P * d * c, 2 * P * P, P * d * d if c == 1 else 0, 12 * n * c,
                       dense) + 2**20


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
    """The formulation's interior-point program on a set of groups (when the numpy solve
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
                            options=dict(self.options.solver_options),
                            outputs=self.form.factor_outputs(sub))
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
    rule nor its arithmetic (float32 products included) depends on the units of the data;
    ``W = (s/a) W'``. ``operator`` (a prebuilt :class:`GroupLassoOperator` on ``X/a``, see
    :func:`run_path`) is reused along paths.
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
                working_set=seed_ws, use_working_set=use_ws, precision=opts.precision,
                operator=operator, progress=report,
            )
        finally:
            bar.close()
        solve_s = time.perf_counter() - start
        solver = "numpy" if res.polish_rounds == 0 else f"numpy+{options.solver}"
        info = {
            "iterations": res.iterations,
            "restarts": res.restarts,
            "newton_steps": res.newton_steps,
            "cg_iterations": res.cg_iterations,
            "dense_newton_steps": res.dense_newton_steps,
            "outer_iterations": res.outer_iterations,
            "polish_rounds": res.polish_rounds,
            "polish_seconds": polisher.seconds if polisher else 0.0,
            "polish_error": polisher.error if polisher else None,
            "working_set": res.working_set,
            "support": res.support,
            "screened": res.screened,
            "full_checks": res.full_checks,
            "partial_checks": res.partial_checks,
            "precision": "mixed" if res.mixed_precision else "double",
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
    """Decreasing ``regs`` with one operator and warm starts: each λ starts from the
    previous weights (their gap at the new λ is usually small enough to go straight to
    the Newton phase). (Sequential strong rules, ``||Xᵀ D_i R(λ_prev)|| ≥ 2λ − λ_prev``,
    were measured and left out: with sampled patterns many inactive groups sit at the
    dual boundary, so the rule keeps most of them.)"""
    start = time.perf_counter()
    a, _ = ipm_scales(data)
    op = GroupLassoOperator(scaled_data(data, a, 1.0).X, data.M)
    setup = time.perf_counter() - start
    opts = options.method_options if isinstance(options.method_options, Options) else Options()
    sols: list[Solution] = []
    for lam in regs:
        sol = run(form, data, float(lam), replace(options, method_options=opts), operator=op)
        sols.append(sol)
        opts = replace(opts, init=sol.weights["W"])
    return sols, {"setup_s": setup}
