"""The pattern operator of the group lasso in the layouts its fast solver needs.

``A = [D_1 X, …, D_P X]`` acts on weights stored as rows ``W (P, d·c)`` (row ``i`` is the
block ``W_i`` flattened in C order) and on residuals stored transposed, ``Rᵀ (c, n)``:

* ``A W   = Σ_i D_i X W_i``: ``T = Wᵀ Mᵀ`` (d·c × n), then ``Ŷᵀ_{kn} = Σ_j X_{nj} T_{jk, n}``;
* ``Aᵀ R = [Xᵀ D_i R]_i``:  ``(B Mᵀᵀ)ᵀ`` with ``B_{jk, n} = X_{nj} R_{nk}`` (d·c × n).

:class:`GroupLassoOperator` holds ``Xᵀ`` (float64 and float32) and only a *reference* to
the boolean pattern matrix ``M`` (n × P): products over every group convert ``M`` in
chunks of ``CHUNK_BYTES``, so no float copy of all of ``M`` is ever made.
:class:`SubOperator` is ``A`` restricted to a working set ``S``: its masks are stored
transposed, ``Mᵀ_S (s, n)`` C-contiguous (about twice as fast as the F-ordered view
of ``M``), in float32 when the solver runs mixed precision — a 0/1 mask is exact in
float32. Its ``fwd``/``adj`` are then float32 GEMMs, used only where an error of
about 1e-4 relative is harmless (FISTA far from the optimum, conjugate-gradient
directions); ``fwd64``/``adj64`` are exact float64 products, used for every gradient,
line search and certificate.

:class:`FullScores` evaluates the certificate over all ``P`` groups in float64 while
recomputing only the groups a Lipschitz bound cannot exclude (near convergence most
groups are far inside the dual ball). The certificate's dual value is
:func:`convexnn.formulations.gated_relu.ball_dual_value`, the formulation's own.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..certificate import relative_gap
from ..formulations.gated_relu import ball_dual_value

__all__ = ["GroupLassoOperator", "SubOperator", "Check", "check", "FullScores", "row_norms",
           "CHUNK_BYTES"]

#: Bytes of one chunk of masks converted to floating point for products over all groups.
CHUNK_BYTES = 4 * 2**20


def row_norms(W: np.ndarray) -> np.ndarray:
    """Euclidean norm of every row (the group norms ``||W_i||_F`` of rows ``W (P, d·c)``)."""
    return np.sqrt(np.einsum("ij,ij->i", W, W))


def _collapse(Xt: np.ndarray, Tt: np.ndarray, c: int) -> np.ndarray:
    """``Ŷᵀ_{kn} = Σ_j Xᵀ_{jn} · Tᵀ_{jc+k, n}`` (c, n) from ``T = M W`` stored transposed."""
    d, n = Xt.shape
    if c == 1:
        return np.einsum("jn,jn->n", Xt, Tt)[None, :]
    return np.einsum("jn,jkn->kn", Xt, Tt.reshape(d, c, n))


def _outer_rows(Xt: np.ndarray, Rt: np.ndarray) -> np.ndarray:
    """``B (d·c, n)`` with ``B_{jc+k, n} = Xᵀ_{jn} Rᵀ_{kn}`` (the adjoint's right factor)."""
    d, n = Xt.shape
    c = Rt.shape[0]
    if c == 1:
        return Xt * Rt
    return (Xt[:, None, :] * Rt[None, :, :]).reshape(d * c, n)


class GroupLassoOperator:
    """``A = [D_1 X, …, D_P X]`` for the fast group-lasso solver (no float copy of ``M``).

    Parameters
    ----------
    X : ndarray (n, d)
        The data the solver works on (already rescaled by powers of two, see
        :func:`convexnn.methods.group_lasso.run`).
    M : ndarray (n, P) of bool
        The pattern matrix, kept by reference.

    Attributes
    ----------
    sigma : float
        ``||X||₂``, an upper bound of every ``||D_i X||₂`` (``D_i`` is a projection).
    sqnorm_rows : ndarray (n,)
        ``||x_k||²`` of every row (``tr(Xᵀ D_i X) = Σ_{k ∈ i} ||x_k||²``).
    """

    def __init__(self, X: np.ndarray, M: np.ndarray):
        self.X = np.ascontiguousarray(X, dtype=np.float64)
        M = np.asarray(M)
        self.M = M if M.dtype == bool else M.astype(bool)
        self.n, self.d = self.X.shape
        self.P = int(self.M.shape[1])
        self.Xt = np.ascontiguousarray(self.X.T)
        self.Xt32 = self.Xt.astype(np.float32)
        self.sigma = float(np.linalg.norm(self.X, 2)) if self.X.size else 0.0
        self.sqnorm_rows = np.einsum("ij,ij->i", self.X, self.X)

    def _step(self) -> int:
        return max(8, int(CHUNK_BYTES // max(1, 8 * self.n)))

    def correlations(self, Rt: np.ndarray, idx: np.ndarray | None = None) -> np.ndarray:
        """``[Xᵀ D_i R]_i`` in float64 as rows (k, d·c) for the groups ``idx`` (all by default)."""
        cols = np.arange(self.P) if idx is None else np.asarray(idx)
        Bt = _outer_rows(self.Xt, Rt)
        out = np.empty((len(cols), Bt.shape[0]))
        step = self._step()
        for j0 in range(0, len(cols), step):
            j1 = min(len(cols), j0 + step)
            Mc = (self.M[:, j0:j1] if idx is None else self.M[:, cols[j0:j1]])
            out[j0:j1] = (Bt @ Mc.astype(np.float64)).T
        return out

    def forward(self, W: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """``(Σ_{i ∈ idx} D_i X W_i)ᵀ`` (c, n) in float64 for rows ``W (len(idx), d·c)``."""
        c = W.shape[1] // self.d
        Tt = np.zeros((self.d * c, self.n))
        step = self._step()
        for j0 in range(0, len(idx), step):
            j1 = min(len(idx), j0 + step)
            Tt += W[j0:j1].T @ self.M[:, idx[j0:j1]].T.astype(np.float64)
        return _collapse(self.Xt, Tt, c)

    def mask_sums(self, idx: np.ndarray) -> np.ndarray:
        """``tr(Xᵀ D_i X) = Σ_{k ∈ i} ||x_k||²`` for the groups ``idx``."""
        return self.M[:, idx].T.astype(np.float64) @ self.sqnorm_rows

    def sub(self, idx: np.ndarray, mixed: bool) -> SubOperator:
        """The operator of the groups ``idx`` (a transposed copy of their masks)."""
        return SubOperator(self, np.asarray(idx, dtype=np.int64), mixed)


class SubOperator:
    """``A_S`` for a working set ``S`` (see the module docstring).

    ``mixed``: masks in float32 with float32 GEMMs for :meth:`fwd`/:meth:`adj`; otherwise
    float64 masks and every product exact.
    """

    def __init__(self, op: GroupLassoOperator, idx: np.ndarray, mixed: bool):
        self.op, self.idx, self.mixed = op, idx, mixed
        self.n, self.d, self.s = op.n, op.d, len(idx)
        dtype = np.float32 if mixed else np.float64
        self.MT = np.ascontiguousarray(op.M[:, idx].T, dtype=dtype)
        self.Xt_fast = op.Xt32 if mixed else op.Xt
        #: ``a_i = tr(Xᵀ D_i X) / d`` (the group smoother of the preconditioner)
        self.diag_scale = (self.MT @ op.sqnorm_rows.astype(dtype)).astype(np.float64) / self.d
        self.products = 0.0  # fast product pairs (forward + adjoint)

    def take(self, local: np.ndarray) -> SubOperator:
        """The sub-operator of the groups ``idx[local]`` (a copy of those mask rows)."""
        new = object.__new__(SubOperator)
        new.op, new.idx, new.mixed = self.op, self.idx[local], self.mixed
        new.n, new.d, new.s = self.n, self.d, len(local)
        new.MT = np.ascontiguousarray(self.MT[local])
        new.Xt_fast = self.Xt_fast
        new.diag_scale = self.diag_scale[local]
        new.products = 0.0
        return new

    # -- fast products (float32 when mixed) ----------------------------------------
    def fwd(self, W: np.ndarray) -> np.ndarray:
        """``(A_S W)ᵀ`` (c, n) with the fast products (float32 when mixed)."""
        c = W.shape[1] // self.d
        self.products += 0.5
        Tt = W.astype(self.MT.dtype, copy=False).T @ self.MT
        return _collapse(self.Xt_fast, Tt, c).astype(np.float64, copy=False)

    def adj(self, Rt: np.ndarray) -> np.ndarray:
        """``A_Sᵀ R`` as rows (s, d·c) with the fast products (float32 when mixed)."""
        self.products += 0.5
        Bt = _outer_rows(self.Xt_fast, Rt.astype(self.Xt_fast.dtype, copy=False))
        return (Bt @ self.MT.T).T.astype(np.float64)

    # -- exact float64 products ---------------------------------------------------------
    def _chunks(self) -> Iterator[tuple[int, int]]:
        step = max(8, int(CHUNK_BYTES // max(1, 8 * self.n)))
        for j0 in range(0, self.s, step):
            yield j0, min(self.s, j0 + step)

    def fwd64(self, W: np.ndarray) -> np.ndarray:
        """``(A_S W)ᵀ`` (c, n), exact float64."""
        c = W.shape[1] // self.d
        if not self.mixed:
            return _collapse(self.op.Xt, W.T @ self.MT, c)
        Tt = np.zeros((self.d * c, self.n))
        for j0, j1 in self._chunks():
            Tt += W[j0:j1].T @ self.MT[j0:j1].astype(np.float64)
        return _collapse(self.op.Xt, Tt, c)

    def adj64(self, Rt: np.ndarray) -> np.ndarray:
        """``A_Sᵀ R`` as rows (s, d·c), exact float64."""
        Bt = _outer_rows(self.op.Xt, Rt)
        if not self.mixed:
            return np.ascontiguousarray((Bt @ self.MT.T).T)
        out = np.empty((self.s, Bt.shape[0]))
        for j0, j1 in self._chunks():
            out[j0:j1] = (Bt @ self.MT[j0:j1].astype(np.float64).T).T
        return out

    def partial_fwd64(self, W_rows: np.ndarray, local: np.ndarray) -> np.ndarray:
        """``(Σ_{i ∈ local} D_i X W_i)ᵀ`` (c, n) for a few groups, exact (``n·d·c`` each)."""
        c = W_rows.shape[1] // self.d
        out = np.zeros((c, self.n))
        X = self.op.X
        for k, i in enumerate(local):
            mask = self.MT[i].astype(np.float64)
            out += ((X @ W_rows[k].reshape(self.d, c)) * mask[:, None]).T
        return out


@dataclass(frozen=True)
class Check:
    """The certificate at a primal point: values, its dual scale and the dual scores."""

    primal: float
    dual: float
    rel: float
    scale: float  # scale · R is dual feasible (the best feasible multiple of R)
    scores: np.ndarray  # ||Xᵀ D_i R|| / λ (exact, or an upper bound where noted)


def check(Yt: np.ndarray, Rt: np.ndarray, G: np.ndarray, wsum: float, lam: float) -> Check:
    """The certificate of the group lasso from the residual ``Rᵀ`` and correlations ``G``.

    Primal ``½||R||² + λ Σ_i ||W_i||`` (``wsum = Σ_i ||W_i||``); dual the best feasible
    multiple of ``R`` (:func:`~convexnn.formulations.gated_relu.ball_dual_value` with
    ``top = max_i ||G_i||``).
    """
    gn = row_norms(G)
    top = float(np.max(gn, initial=0.0))
    primal = 0.5 * float(np.vdot(Rt, Rt)) + lam * wsum
    dual, s = ball_dual_value(Yt, Rt, top, lam)
    return Check(primal, dual, relative_gap(primal, dual), s, gn / lam)


class FullScores:
    """The exact certificate over all ``P`` groups with few float64 correlations.

    Keeps the exact scores at a reference residual ``R₀``; for a later ``R`` a group's
    correlation is at most ``||Xᵀ D_i R₀|| + ||X||₂ ||R − R₀||``. Groups whose bound stays
    below ``min(λ, max over the support)`` can be neither the maximum of the certificate
    nor a violator, so only the support (computed by the caller anyway) and the groups
    near the dual boundary are recomputed; everything is recomputed (and becomes the new
    reference) when that set exceeds a third of the groups.
    """

    def __init__(self, op: GroupLassoOperator, lam: float):
        self.op, self.lam = op, lam
        self.R0: np.ndarray | None = None
        self.ref = np.zeros(0)
        self.full_evals = 0
        self.partial_evals = 0

    def __call__(self, Yt: np.ndarray, Rt: np.ndarray, W: np.ndarray, support: np.ndarray,
                 G_support: np.ndarray | None) -> tuple[Check, np.ndarray]:
        """The check over all groups and rows ``G (P, d·c)`` exact on the support and near
        the boundary (zero elsewhere; their scores are upper bounds below the maximum)."""
        op, lam = self.op, self.lam
        wsum = float(row_norms(W).sum())
        if self.R0 is not None and G_support is not None:
            bound = self.ref + op.sigma * float(np.linalg.norm(Rt - self.R0))
            top = float(row_norms(G_support).max(initial=0.0))
            rest = np.ones(op.P, dtype=bool)
            rest[support] = False
            need = np.flatnonzero(rest & (bound >= min(lam, top) * (1.0 - 1e-12)))
            if len(need) <= op.P // 3:
                self.partial_evals += 1
                G = np.zeros((op.P, G_support.shape[1]))
                G[support] = G_support
                if len(need):
                    G[need] = op.correlations(Rt, need)
                chk = check(Yt, Rt, G, wsum, lam)
                other = rest
                other[need] = False
                scores = chk.scores.copy()
                scores[other] = bound[other] / lam
                return Check(chk.primal, chk.dual, chk.rel, chk.scale, scores), G
        G = op.correlations(Rt)
        self.R0, self.ref = Rt.copy(), row_norms(G)
        self.full_evals += 1
        return check(Yt, Rt, G, wsum, lam), G
