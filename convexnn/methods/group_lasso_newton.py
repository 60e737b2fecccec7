"""Newton's method on the support of the group lasso, certified over all groups.

Where every ``||W_i|| > 0`` the objective ``F(W) = ½||A W − Y||² + λ Σ_i ||W_i||`` is
smooth, with gradient ``g = λ u − Aᵀ R`` (``u_i = W_i/||W_i||``) and Hessian

    H = AᵀA ⊗ I_c + λ blockdiag((I − u_i u_iᵀ)/||W_i||)          (on the support),

so once the support is identified Newton converges quadratically — which the
residual-scaled dual point needs: its gap is of the order of the *square root* of the
primal suboptimality (``docs/math/fast_methods.md``). :func:`newton_phase` runs Newton
steps over all groups: each step computes the gradient in float64, the certificate over
all ``P`` groups (:class:`~convexnn.methods.group_lasso_ops.FullScores`), lets the
strongest violators of ``||Xᵀ D_i R|| ≤ λ`` enter with a small norm along their
steepest-descent direction (their magnitude is then a Newton variable; none right
after a step where groups left), solves the Newton system, and backtracks with
projection: groups the step sends through zero leave.

The Newton system is solved either

* by preconditioned conjugate gradients (:func:`pcg`) with the fast (float32 when mixed)
  Hessian products; the two-level preconditioner (:class:`Preconditioner`) is the group
  smoother ``a_i I + (λ/||W_i||)(I − u_i u_iᵀ)`` (``a_i = tr(Xᵀ D_i X)/d``), an exact coarse
  solve on the group directions ``Φ = blockdiag(u_i)`` (``ΦᵀHΦ = VᵀV``, ``V = [D_i X u_i]``:
  the penalty has no curvature along ``u_i``) and, for one output, a balancing
  deflation of the common mode ``E = 1 ⊗ I_d`` (the ``d`` outlying eigenvalues of
  ``AᵀA``); or
* exactly, through an ``n × n`` Cholesky factor and a rank-``s`` Woodbury correction
  (:class:`DenseNewton`), when a flop model says that is cheaper (small ``n``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.linalg

from .group_lasso_ops import (
    CHUNK_BYTES,
    Check,
    FullScores,
    GroupLassoOperator,
    SubOperator,
    row_norms,
)

__all__ = ["newton_phase", "Counters", "Preconditioner", "DenseNewton", "pcg",
           "dense_step_cheaper", "DENSE_MAX_N", "MAX_NEWTON", "MAX_CG"]

#: Newton steps of one phase at most.
MAX_NEWTON = 40
#: Conjugate-gradient iterations of one Newton system at most.
MAX_CG = 400
#: Step halvings of one line search at most.
MAX_LINE_SEARCH = 30
#: An entering group starts at this fraction of its block-coordinate step.
ENTER_FRACTION = 0.1
#: Exact Newton solves through an n × n Cholesky factor are considered up to this n
#: (memory ``2·n²·8`` bytes).
DENSE_MAX_N = 4000
#: No group enters at a Newton step that follows a step where groups left.
SETTLE = True
#: The phase stops (status "stalled") when its best gap has not improved by 10% in this
#: many steps (e.g. groups that leave and re-enter in turn when the support's design has
#: more columns than rows).
NEWTON_STALL = 8
#: Forcing term of the inexact Newton steps: CG stops at relative residual
#: ``min(ETA_MAX, max(gap, 0.1·tol/gap))``.
ETA_MAX = 0.1


@dataclass
class Counters:
    """Work done by one solve (reported in ``Solution.info``)."""

    fista: int = 0
    restarts: int = 0
    power: int = 0
    newton: int = 0
    cg: int = 0
    dense: int = 0
    outer: int = 0
    full_checks: int = 0
    partial_checks: int = 0
    last_cg: int = 60  # CG iterations of the last Newton system (the flop model's guess)
    mixed: bool = False  # float32 products were used somewhere


def dense_step_cheaper(n: int, s: int, d: int, c: int, cg_iterations: float) -> bool:
    """Whether an exact Newton step (``2n²s + n³/3 + c(n²s + ns²)`` flops plus four
    products) costs less than ``cg_iterations`` CG iterations (``4·n·s·d·c`` each)."""
    dense = 2.0 * n * n * s + n ** 3 / 3.0 + c * (n * n * s + n * s * s) + 16.0 * n * s * d * c
    return n <= DENSE_MAX_N and dense < cg_iterations * 4.0 * n * s * d * c


def common_mode_gram(sub: SubOperator, m: np.ndarray | None = None) -> np.ndarray:
    """``(AᵀA E)_i = Xᵀ D_i diag(m) X`` (s, d, d) with ``m = Σ_{i ∈ S} M[:, i]``.

    ``2·n·s·d²`` flops (one GEMM per chunk of rows). ``m`` may be given (the column
    sums of the masks of a larger set, when only some groups are new).
    """
    X = sub.op.X
    n, d = X.shape
    MT = sub.MT
    if m is None:
        m = MT.sum(axis=0, dtype=np.float64)
    out = np.zeros((sub.s, d * d))
    step = max(64, int(CHUNK_BYTES // max(1, 8 * d * d)))
    for r0 in range(0, n, step):
        r1 = min(n, r0 + step)
        Xr = X[r0:r1]
        O = (Xr[:, :, None] * (m[r0:r1, None] * Xr)[:, None, :]).reshape(r1 - r0, d * d)
        out += (MT[:, r0:r1] @ O.astype(MT.dtype, copy=False)).astype(np.float64)
    return out.reshape(sub.s, d, d)


class Preconditioner:
    """Two-level preconditioner of the support Hessian (see the module docstring).

    Parameters
    ----------
    sub : SubOperator
        The support's operator.
    u : ndarray (s, d·c)
        Unit directions ``W_i/||W_i||``.
    cw : ndarray (s,)
        ``λ/||W_i||``.
    GE : ndarray (s, d, d) or None
        ``(AᵀA E)_i`` for the common-mode deflation (one output), or None.
    """

    def __init__(self, sub: SubOperator, u: np.ndarray, cw: np.ndarray,
                 GE: np.ndarray | None):
        s, d = sub.s, sub.d
        c = u.shape[1] // d
        self.u, self.cw = u, cw
        self.a = np.maximum(sub.diag_scale, 1e-300)
        # coarse space Φ = blockdiag(u_i): C = Σ_k V_kᵀ V_k, V_k = M ∘ (X U^k)
        X, MT = sub.op.X, sub.MT
        C = np.zeros((s, s))
        U3 = u.reshape(s, d, c)
        rows = max(256, int(CHUNK_BYTES // max(1, 8 * s)))
        for k in range(c):
            Uk = U3[:, :, k].T.astype(MT.dtype)
            for r0 in range(0, X.shape[0], rows):  # by blocks of rows
                Vk = (X[r0:r0 + rows].astype(MT.dtype, copy=False) @ Uk) * MT[:, r0:r0 + rows].T
                C += (Vk.T @ Vk).astype(np.float64)
        C += 1e-10 * max(float(np.trace(C)) / max(s, 1), 1e-300) * np.eye(s)
        try:
            self.coarse = scipy.linalg.cho_factor(C, check_finite=False)
        except (np.linalg.LinAlgError, ValueError):
            self.coarse = None
        # balancing deflation of E = 1_s ⊗ I_d (one output): Y = H E
        self.Y = None
        if GE is not None and c == 1:
            Y = GE + cw[:, None, None] * (np.eye(d)[None] - u[:, :, None] * u[:, None, :])
            EHE = Y.sum(axis=0)
            try:
                self.E = scipy.linalg.cho_factor(0.5 * (EHE + EHE.T), check_finite=False)
                self.Y = Y
            except (np.linalg.LinAlgError, ValueError):
                self.Y = None

    def smoother(self, R: np.ndarray) -> np.ndarray:
        """Group smoother plus the additive coarse correction on ``Φ``."""
        u = self.u
        pu = np.einsum("ij,ij->i", R, u)
        out = (R - u * pu[:, None]) / (self.a + self.cw)[:, None] + u * (pu / self.a)[:, None]
        if self.coarse is not None:
            out += u * scipy.linalg.cho_solve(self.coarse, pu, check_finite=False)[:, None]
        return out

    def __call__(self, R: np.ndarray) -> np.ndarray:
        if self.Y is None:
            return self.smoother(R)
        # balancing: P⁻¹r = E C⁻¹Eᵀr + (I − E C⁻¹Yᵀ) S (I − Y C⁻¹Eᵀ) r,  C = EᵀHE
        Y = self.Y
        q = scipy.linalg.cho_solve(self.E, R.sum(axis=0), check_finite=False)
        z = self.smoother(R - np.einsum("sij,j->si", Y, q))
        corr = scipy.linalg.cho_solve(self.E, np.einsum("sij,si->j", Y, z), check_finite=False)
        return q[None, :] + z - corr[None, :]


class DenseNewton:
    """Exact Newton solves through an ``n × n`` Cholesky factor (small ``n``).

    ``H = K − Φ diag(cw) Φᵀ`` with ``K = (AᵀA + diag(cw) ⊗ I_d) ⊗ I_c`` and
    ``Φ = blockdiag(u_i)``. ``K⁻¹ = Λ⁻¹ − Λ⁻¹Aᵀ N⁻¹ A Λ⁻¹`` with
    ``N = I + A Λ⁻¹ Aᵀ = I + (X Xᵀ) ∘ (M diag(1/cw) Mᵀ)``, and Woodbury on the rank-``s``
    term, whose capacitance is exactly ``diag(cw) Q diag(cw)`` with
    ``Q = Σ_k V_kᵀ N⁻¹ V_k``, ``V_k = M ∘ (X U^k)`` (no cancellation). Every product is
    float64.
    """

    def __init__(self, sub: SubOperator, u: np.ndarray, cw: np.ndarray):
        X = sub.op.X
        n, d = X.shape
        s = sub.s
        c = u.shape[1] // d
        self.sub, self.u, self.cw = sub, u, cw
        Mt = sub.MT.astype(np.float64, copy=False)  # (s, n)
        N = (Mt.T * (1.0 / cw)) @ Mt
        N *= X @ X.T
        N[np.diag_indices(n)] += 1.0
        self.N = scipy.linalg.cho_factor(N, lower=True, check_finite=False)
        U3 = u.reshape(s, d, c)
        Q = np.zeros((s, s))
        for k in range(c):
            Vk = (X @ U3[:, :, k].T) * Mt.T  # (n, s)
            Zk = scipy.linalg.solve_triangular(self.N[0], Vk, lower=True, check_finite=False)
            Q += Zk.T @ Zk
        Q += 1e-13 * max(float(np.trace(Q)) / max(s, 1), 1e-300) * np.eye(s)
        self.Q = scipy.linalg.cho_factor(Q, check_finite=False)

    def _kinv(self, b: np.ndarray) -> np.ndarray:
        b1 = b / self.cw[:, None]
        t = scipy.linalg.cho_solve(self.N, self.sub.fwd64(b1).T, check_finite=False).T
        return b1 - self.sub.adj64(t) / self.cw[:, None]

    def solve(self, b: np.ndarray) -> np.ndarray:
        """``H⁻¹ b`` for rows ``b (s, d·c)``."""
        y = self._kinv(b)
        r = np.einsum("ij,ij->i", self.u, y)
        z = self.cw * scipy.linalg.cho_solve(self.Q, self.cw * r, check_finite=False)
        return y + self._kinv(self.u * z[:, None])


def pcg(Hmul: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
        Pinv: Callable[[np.ndarray], np.ndarray], b: np.ndarray, rtol: float, maxit: int
        ) -> tuple[np.ndarray, int]:
    """Preconditioned conjugate gradients for ``H x = b`` to ``||r|| ≤ rtol·||b||``.

    ``Hmul(p)`` returns ``(H p, A p)``. Stops early at a direction of non-positive
    curvature (which rounding in float32 products may produce). Returns ``x`` and the
    number of iterations.
    """
    x = np.zeros_like(b)
    r = b.copy()
    z = Pinv(r)
    p = z.copy()
    rz = float(np.vdot(r, z))
    bnorm = float(np.linalg.norm(b))
    k = 0
    for k in range(1, maxit + 1):
        Hp, _ = Hmul(p)
        pHp = float(np.vdot(p, Hp))
        if not (pHp > 0.0 and math.isfinite(pHp)):
            k -= 1
            break
        alpha = rz / pHp
        x += alpha * p
        r -= alpha * Hp
        if float(np.linalg.norm(r)) <= rtol * bnorm:
            break
        z = Pinv(r)
        rz_new = float(np.vdot(r, z))
        if not math.isfinite(rz_new):
            break
        p = z + (rz_new / rz) * p
        rz = rz_new
    return x, k


class _Support:
    """The support's sub-operator and common-mode blocks, rebuilt when the support changes
    (the blocks of groups that stay are kept)."""

    def __init__(self, op: GroupLassoOperator, c: int, mixed: bool):
        self.op, self.c, self.mixed = op, c, mixed
        self.sub: SubOperator | None = None
        self.GE: np.ndarray | None = None

    def update(self, act: np.ndarray) -> SubOperator:
        """The sub-operator of the groups ``act`` (the previous one when unchanged)."""
        old = self.sub
        if old is not None and len(old.idx) == len(act) and np.array_equal(old.idx, act):
            return old
        new = self.op.sub(act, self.mixed)
        GE = None
        if self.GE is not None and old is not None:  # keep the blocks of groups that stay
            pos = {int(g): k for k, g in enumerate(old.idx)}
            have = np.array([int(g) in pos for g in act], dtype=bool)
            GE = np.empty((len(act), self.op.d, self.op.d))
            GE[have] = self.GE[[pos[int(g)] for g in act[have]]]
            if (~have).any():
                m = new.MT.sum(axis=0, dtype=np.float64)
                GE[~have] = common_mode_gram(new.take(np.flatnonzero(~have)), m=m)
        self.sub, self.GE = new, GE
        return new

    def common_mode(self) -> np.ndarray | None:
        """``(AᵀA E)_i`` of the current support (one output, d > 1), built when first needed."""
        if self.c != 1 or self.op.d < 2 or self.sub is None:
            return None
        if self.GE is None:
            self.GE = common_mode_gram(self.sub)
        return self.GE


def newton_phase(op: GroupLassoOperator, Yt: np.ndarray, lam: float, W: np.ndarray, *,
                 tol: float, cnt: Counters, budget: int, mixed: bool, screened: np.ndarray,
                 dense_first: bool = False,
                 report: Callable[[Check, int], None] | None = None,
                 ) -> tuple[np.ndarray, Check, str]:
    """Newton steps on the support with the certificate over all ``P`` groups at each step.

    Parameters
    ----------
    op : GroupLassoOperator
    Yt : ndarray (c, n)
        Targets, transposed.
    lam : float
    W : ndarray (P, d·c)
        The starting point (rows); modified in place.
    tol : float
        Target relative gap (over all groups).
    cnt : Counters
        Work counters, updated.
    budget : int
        Iterations available — CG iterations plus exact Newton steps (the solve's
        ``max_iter`` minus the work done).
    mixed : bool
        Fast products in float32.
    screened : ndarray (P,) of bool
        Groups discarded by the gap-safe rule (updated).
    dense_first : bool
        Consider the exact (dense) Newton step from the first step on.
    report : callable, optional
        ``report(check, support_size)`` after every certificate.

    Returns
    -------
    W : ndarray (P, d·c)
        The best point (smallest certified gap).
    check : Check
        Its certificate over all groups.
    status : str
        ``"converged"``, ``"max_iter"`` (budget or ``MAX_NEWTON``), ``"stalled"`` (no
        descent step, or no 10% progress in ``NEWTON_STALL`` steps) or
        ``"numerical_error"``.
    """
    d = op.d
    c = Yt.shape[0]
    act = np.flatnonzero(np.any(W != 0.0, axis=1))
    Rt = Yt - (op.forward(W[act], act) if len(act) else 0.0)
    scorer = FullScores(op, lam)
    chk, Gall = scorer(Yt, Rt, W, act, None)
    best = (chk.rel, W.copy(), chk)
    support = _Support(op, c, mixed)
    settling = False
    cg_start, dense_start = cnt.cg, cnt.dense
    status = "max_iter"
    if dense_first:
        cnt.last_cg = max(cnt.last_cg, MAX_CG)
    mark, mark_step = chk.rel, 0
    for step in range(MAX_NEWTON):
        if report is not None:
            report(chk, len(act))
        if not math.isfinite(chk.rel):
            status = "numerical_error"
            break
        if chk.rel < best[0]:
            best = (chk.rel, W.copy(), chk)
        if chk.rel <= tol:
            status = "converged"
            break
        if chk.rel < 0.9 * mark:
            mark, mark_step = chk.rel, step
        elif step - mark_step >= NEWTON_STALL:
            status = "stalled"
            break
        if (cnt.cg - cg_start) + (cnt.dense - dense_start) >= budget:
            status = "max_iter"
            break
        # gap-safe screening (exact): ||Xᵀ D_i Z*|| ≤ ||Xᵀ D_i Z|| + ||X||₂ √(2 gap)
        nrm = row_norms(W)
        radius = op.sigma * math.sqrt(2.0 * max(chk.primal - chk.dual, 0.0))
        screened |= (chk.scale * chk.scores * lam + radius < lam) & (nrm == 0.0)
        gn = chk.scores * lam
        viol = np.flatnonzero((nrm == 0.0) & (gn > lam) & ~screened)
        room = max(10, int(np.sum(nrm > 0)) // 4)
        if settling:
            viol = viol[:0]
        elif len(viol) > room:
            viol = viol[np.argsort(-gn[viol], kind="stable")[:room]]
        if len(viol):
            # enter at a fraction of the block-coordinate step (Gall is exact there)
            a_v = op.mask_sums(viol)
            size = ENTER_FRACTION * (gn[viol] - lam) / (np.maximum(a_v, 1e-300) * gn[viol])
            W[viol] = Gall[viol] * size[:, None]
            Rt = Rt - op.forward(W[viol], viol)
            nrm = row_norms(W)
        act = np.flatnonzero(nrm > 0)
        if len(act) == 0:
            break
        n, s = op.n, len(act)
        want_dense = dense_step_cheaper(n, s, d, c, max(cnt.last_cg, 20))
        sub = support.update(act)
        G = sub.adj64(Rt) if len(viol) else Gall[act]
        Wa, na = W[act], nrm[act]
        u = Wa / na[:, None]
        cw = lam / na
        g = lam * u - G
        p = None
        k = 0
        if want_dense:
            try:
                p = DenseNewton(sub, u, cw).solve(-g)
                cnt.dense += 1
                if not np.all(np.isfinite(p)):
                    p = None
            except (np.linalg.LinAlgError, ValueError):
                p = None
        if p is None:
            GE = support.common_mode()

            def Hmul(v: np.ndarray, sub: SubOperator = sub, u: np.ndarray = u,
                     cw: np.ndarray = cw) -> tuple[np.ndarray, np.ndarray]:
                Av = sub.fwd(v)
                pu = np.einsum("ij,ij->i", u, v)
                return sub.adj(Av) + cw[:, None] * (v - u * pu[:, None]), Av

            eta = min(ETA_MAX, max(chk.rel, 0.1 * tol / max(chk.rel, 1e-300)))
            used = (cnt.cg - cg_start) + (cnt.dense - dense_start)
            maxit = max(1, min(MAX_CG, budget - used))
            p, k = pcg(Hmul, Preconditioner(sub, u, cw, GE), -g, eta, maxit)
            cnt.last_cg = k
            cnt.mixed = cnt.mixed or mixed
        cnt.cg += k
        cnt.newton += 1
        accepted, Wn, Rn, flip = _line_search(sub, Rt, Wa, na, p, g, lam)
        if not accepted:
            status = "stalled"
            break
        settling = SETTLE and len(flip) > 0
        W[act] = Wn
        Rt = Rn
        G_sub = sub.adj64(Rt)  # exact on the old support ⊇ the new one
        keep = np.any(W[act] != 0.0, axis=1)
        act = act[keep]
        chk, Gall = scorer(Yt, Rt, W, act, G_sub[keep])
    cnt.full_checks += scorer.full_evals
    cnt.partial_checks += scorer.partial_evals
    if chk.rel < best[0]:
        best = (chk.rel, W.copy(), chk)
    return best[1], best[2], status


def _line_search(sub: SubOperator, Rt: np.ndarray, Wa: np.ndarray, na: np.ndarray,
                 p: np.ndarray, g: np.ndarray, lam: float
                 ) -> tuple[bool, np.ndarray, np.ndarray, np.ndarray]:
    """Projected backtracking (Armijo) on ``F`` along the Newton step ``p``.

    First every group the full step sends through zero leaves, at every step length;
    if no length is accepted that way, plain backtracking where the groups that pass
    through zero at the trial length leave. Exact float64 residuals throughout.
    Returns (accepted, new rows, new residual, the groups that left).
    """
    Ap = sub.fwd64(p)
    F0 = 0.5 * float(np.vdot(Rt, Rt)) + lam * float(na.sum())
    slope = min(float(np.vdot(g, p)), 0.0)
    wp = np.einsum("ij,ij->i", Wa, p)
    ww = na * na
    leave = np.flatnonzero(ww + wp <= 0.0)
    t = 1.0
    if len(leave):
        R_leave = sub.partial_fwd64(Wa[leave], leave)  # their current contribution
        Ap_leave = sub.partial_fwd64(p[leave], leave)
        for _ in range(MAX_LINE_SEARCH // 3):
            Wn = Wa + t * p
            Wn[leave] = 0.0
            Rn = Rt - t * Ap + t * Ap_leave + R_leave
            Fn = 0.5 * float(np.vdot(Rn, Rn)) + lam * float(row_norms(Wn).sum())
            if math.isfinite(Fn) and Fn <= F0 + 1e-4 * t * slope:
                return True, Wn, Rn, leave
            t *= 0.5
        t = 1.0
    for _ in range(MAX_LINE_SEARCH):
        Wn = Wa + t * p
        Rn = Rt - t * Ap
        flip = np.flatnonzero(ww + t * wp <= 0.0)
        if len(flip):
            Rn = Rn + sub.partial_fwd64(Wn[flip], flip)
            Wn[flip] = 0.0
        Fn = 0.5 * float(np.vdot(Rn, Rn)) + lam * float(row_norms(Wn).sum())
        if math.isfinite(Fn) and Fn <= F0 + 1e-4 * t * slope:
            return True, Wn, Rn, flip
        t *= 0.5
    return False, Wa, Rt, np.zeros(0, dtype=np.int64)
