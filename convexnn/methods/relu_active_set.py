"""The reduced ReLU program on a working set of blocks, solved by proximal gradient and
Newton steps on the faces of the cones (no interior point, no cone rows left out).

A working set of ``K`` blocks ``b = (pattern i_b, sign σ_b)`` gives the program

    min_W  F(W) = ½||Σ_b σ_b D_b X W_b − Y||² + λ Σ_b ||W_b||_F
    s.t.   S_b X W_b[:, j] ≥ 0   for every column j and all n rows,

with ``W_b`` of shape d × c. Three facts make it cheap (``docs/math/fast_methods.md``):

1. **The proximal map is exact.** For a closed convex cone ``C`` (here ``K_b`` in every
   column) the proximal map of ``τ||·||_F + ι_C`` is ``(1 − τ/||Π_C(V)||)_+ Π_C(V)``: write
   ``W = s U`` with ``||U|| = 1``, ``U ∈ C``; the best ``U`` maximises ``⟨U, V⟩``, which is
   ``Π_C(V)/||Π_C(V)||`` by the Moreau decomposition, and the best ``s`` is then
   ``(||Π_C(V)|| − τ)_+``. So accelerated proximal gradient (FISTA with adaptive restart)
   applies with exact steps.
2. **Projections on a known face are linear.** ``Π_K(v) = v + G_Eᵀ a`` with
   ``a = −(G_Eᵀ)⁺ v`` on the face's rows ``E`` is the exact projection whenever
   ``a ≥ 0`` and the result satisfies every row (the KKT conditions of the projection).
   Faces change rarely between iterations, so the projections of all blocks are two
   batched products and one GEMM for the check; only blocks whose face changed get the
   exact NNLS (:func:`convexnn.cones._project_by_rows`, warm-started from the old face).
3. **On the faces the program is smooth and tiny.** At the optimum a block lies on a
   face of its cone (measured: 7–9 of d = 10 rows active), so with ``W_q = N_q θ_q``
   (``N_q`` an orthonormal basis of the face's null space) the program on the support is a
   smooth group lasso in a few variables per block. Damped Newton steps — with a ratio
   test keeping every other row satisfied (a blocking row joins the face) — converge
   quadratically; proximal steps then confirm the faces (a row whose multiplier turned
   negative leaves, a block that should enter does).

:func:`solve_reduced` alternates bursts of FISTA with Newton on the identified faces
until the relative duality gap of the reduced program — ``z = t·(y − ŷ)`` with the exact
support values of the working-set blocks — is below the requested tolerance, and
returns the weights, the prediction and the exact multipliers of every block. The
caller (:mod:`convexnn.methods.relu_working_set`) checks all other patterns and
certifies over all of them with the formulation's certificate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from ..cones import _project_by_rows, face_matrices, project_batch

__all__ = ["Blocks", "FaceCache", "ReducedResult", "solve_reduced"]

#: Relative size of a row margin (``s_k x_kᵀ w / (||x_k|| ||w||)``) that counts as violated.
_MARGIN_TOL = 1e-11
#: Multipliers above ``-_MULT_TOL · ||v|| / ||x_k||`` count as non-negative (rounding).
_MULT_TOL = 1e-11
#: Blocks below this fraction of the largest norm are treated as zero by the Newton phase.
_ZERO = 1e-12
#: FISTA steps per round of the reduced solve (before Newton on the faces found).
FISTA_BURST = 30
#: A Newton phase of at least this many steps (each blocked by a row that then joins its
#: face) makes the next FISTA burst four times longer, up to ``_MAX_BURST``: the faces were
#: far from identified. Measured with 5 and 10 outputs at λ = 0.01·λ_max: bursts of 300
#: instead of 30 cut the Newton steps from 4388 to 525 and the time from 82 to 30 s
#: (heart-cleveland) and from 81 to 23 s (led-display); where Newton needs few steps,
#: longer bursts only cost (wine, 3 outputs, λ = 0.1·λ_max: 1.9 s against 3.0 s).
_CHURN = 30
_MAX_BURST = 320
#: Up to this many points a face change rebuilds the face program: its Gram products are
#: cheaper than the indexed copies a refresh makes (measured: 0.11 against 0.45 ms at
#: n = 89, m = 200).
_REBUILD_BELOW = 128


@dataclass
class Blocks:
    """The working-set blocks as arrays: ``Ms[:, b] = σ_b m_{i_b}`` (the fit) and
    ``S[:, b] = 2 m_{i_b} − 1`` (the cone rows), both (n, K) floats."""

    X: np.ndarray
    Ms: np.ndarray
    S: np.ndarray
    c: int

    @property
    def K(self) -> int:
        return int(self.Ms.shape[1])

    def forward(self, W: np.ndarray) -> np.ndarray:
        """``Σ_b σ_b D_b X W_b`` (n, c) for W (K, d, c): one GEMM."""
        n, (K, d, c) = self.X.shape[0], W.shape
        XW = (self.X @ W.transpose(1, 0, 2).reshape(d, K * c)).reshape(n, K, c)
        return np.einsum("nk,nkc->nc", self.Ms, XW)

    def correlations(self, R: np.ndarray) -> np.ndarray:
        """``σ_b Xᵀ D_b R`` (K, d, c) (minus the gradient of the fit): one GEMM."""
        n, d = self.X.shape
        K, c = self.K, R.shape[1]
        B = (self.Ms[:, :, None] * R[:, None, :]).reshape(n, K * c)
        return (self.X.T @ B).reshape(d, K, c).transpose(1, 0, 2)


class FaceCache:
    """Column-wise projections onto the cones ``K_b = {u : S_b X u ≥ 0}`` with cached faces.

    Column ``q`` (block ``q // c``, output ``q % c``) remembers the rows ``E_q`` on which its
    last projection had positive multipliers, with ``G_q`` (the rows ``s_k x_k``, padded to
    d × d with zero rows) and ``(G_qᵀ)⁺``. :meth:`project` first tries the linear projection
    onto that face and falls back to the exact NNLS where its KKT conditions fail.
    """

    def __init__(self, blocks: Blocks):
        self.blocks = blocks
        X = blocks.X
        n, d = X.shape
        Q = blocks.K * blocks.c
        self.xnorm = np.maximum(np.linalg.norm(X, axis=1), np.finfo(np.float64).tiny)
        self.owner = np.repeat(np.arange(blocks.K), blocks.c)
        self.rows = [np.empty(0, dtype=np.int64) for _ in range(Q)]
        self.G = np.zeros((Q, d, d))
        self.pinv = np.zeros((Q, d, d))
        self.nnls = 0
        self._dirty: set[int] = set()
        self.basis: list[np.ndarray | None] = [None] * Q

    @property
    def Q(self) -> int:
        return len(self.rows)

    def set_face(self, q: int, rows: np.ndarray, weights: np.ndarray | None = None) -> None:
        """Rows of column q's face (at most d: the largest ``weights`` first); its matrices
        are formed lazily, for all changed columns at once."""
        d = self.blocks.X.shape[1]
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size > d:
            keep = np.argsort(-weights)[:d] if weights is not None else np.arange(d)
            rows = rows[keep]
        self.rows[q] = np.sort(rows)
        self._dirty.add(int(q))
        self.basis[q] = None

    def _refresh(self) -> None:
        """``G_q`` and ``(G_qᵀ)⁺`` of every column whose face changed (batched)."""
        if not self._dirty:
            return
        dirty = np.fromiter(self._dirty, dtype=np.int64)
        self._dirty.clear()
        d = self.G.shape[1]
        rows = np.zeros((dirty.size, d), dtype=np.int64)
        count = np.array([self.rows[q].size for q in dirty], dtype=np.int64)
        for f, q in enumerate(dirty):
            rows[f, :count[f]] = self.rows[q]
        self.G[dirty], self.pinv[dirty] = face_matrices(
            self.blocks.X, self.blocks.S[:, self.owner[dirty]], rows, count)

    def project(self, V: np.ndarray, *, multipliers: bool = False,
                skip: np.ndarray | None = None
                ) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]] | None]:
        """Exact projections of the columns of V (K, d, c); optionally the multipliers
        ``(rows, a)`` of each column (``Π = v + Σ_k a_k s_k x_k``). Columns whose cached
        face fails get the batched Lawson–Hanson method from it
        (:func:`convexnn.cones.project_batch`), and the NNLS where that does not finish;
        their new faces are cached. Blocks in ``skip`` (K,) bool are not projected: their
        columns come back unchanged, with no multipliers, and keep their faces (the
        caller only needs the upper bound ``||V_b||`` there)."""
        self._refresh()
        K, d, c = V.shape
        v = V.transpose(0, 2, 1).reshape(K * c, d)  # row q = column (q // c, q % c)
        a = -np.einsum("qed,qd->qe", self.pinv, v)
        Pi = v + np.einsum("qed,qe->qd", self.G, a)
        vn = np.linalg.norm(v, axis=1)
        margin = (self.blocks.X @ Pi.T) * self.blocks.S[:, self.owner]  # (n, Q)
        margin /= self.xnorm[:, None]
        worst = margin.min(axis=0, initial=np.inf)
        amin = (a * np.linalg.norm(self.G, axis=2)).min(axis=1, initial=0.0)
        bad = (worst < -_MARGIN_TOL * vn) | (amin < -_MULT_TOL * vn)
        if skip is not None and skip.any():
            cols = np.repeat(skip, c)
            bad &= ~cols
            Pi[cols] = v[cols]
            a[cols] = 0.0
        out = [(self.rows[q], a[q, :self.rows[q].size]) for q in range(self.Q)] \
            if multipliers else None
        bad = np.nonzero(bad)[0]
        fixed = np.zeros(bad.size, dtype=bool)
        if bad.size:  # Lawson–Hanson from the cached faces, all columns at once
            start = np.zeros((bad.size, d), dtype=np.int64)
            count = np.array([self.rows[q].size for q in bad], dtype=np.int64)
            for f, q in enumerate(bad):
                start[f, :count[f]] = self.rows[q]
            pis, rows_b, count_b, a_b, fixed = project_batch(
                self.blocks.X, self.blocks.S[:, self.owner[bad]], v[bad], start, count,
                iters=d)
            for f in np.nonzero(fixed)[0]:
                q = int(bad[f])
                rows, af = rows_b[f, :count_b[f]], a_b[f, :count_b[f]]
                Pi[q] = pis[f]
                self.set_face(q, rows, af)
                if multipliers:
                    out[q] = (rows, af)
        for q in bad[~fixed]:
            b = self.owner[q]
            G = self.blocks.X * self.blocks.S[:, b:b + 1]
            full = _project_by_rows(G, self.xnorm, v[q], self.rows[q])
            self.nnls += 1
            rows = np.nonzero(full > 0)[0]
            self.set_face(q, rows, full[rows])
            Pi[q] = v[q] + G.T @ full
            if multipliers:
                out[q] = (rows, full[rows])
        return Pi.reshape(K, c, d).transpose(0, 2, 1), out

    def null_bases(self, cols: np.ndarray) -> list[np.ndarray]:
        """Orthonormal bases (d × m_q) of ``{u : G_q u = 0}`` for the columns ``cols``
        (kept until the column's face changes)."""
        if cols.size == 0:
            return []
        self._refresh()
        todo = np.array([q for q in cols if self.basis[q] is None], dtype=np.int64)
        if todo.size:
            _, s, Vt = np.linalg.svd(self.G[todo])
            d = self.G.shape[1]
            top = np.maximum(s[:, :1], np.finfo(np.float64).tiny)
            rank = np.sum(s > 1e-10 * top * d, axis=1)
            for k, q in enumerate(todo):
                self.basis[q] = np.ascontiguousarray(Vt[k, rank[k]:, :].T)
        return [self.basis[q] for q in cols]

    def keep(self, idx: np.ndarray) -> None:
        """Keep the columns of the blocks ``idx`` (in that order)."""
        c = self.blocks.c
        cols = (np.asarray(idx)[:, None] * c + np.arange(c)).ravel()
        self._refresh()
        self.rows = [self.rows[q] for q in cols]
        self.basis = [self.basis[q] for q in cols]
        self.G, self.pinv = self.G[cols], self.pinv[cols]


@dataclass(frozen=True)
class ReducedResult:
    """Weights (K, d, c), prediction (n, c), the exact multipliers of every column of
    every block for the correlations at the returned residual (``rows``, ``a``), the
    support values ``σ_b`` and a record."""

    W: np.ndarray
    Yhat: np.ndarray
    values: np.ndarray
    multipliers: list[tuple[np.ndarray, np.ndarray]]
    info: dict[str, Any] = field(default_factory=dict)


def _objective(Y: np.ndarray, Yhat: np.ndarray, W: np.ndarray, lam: float
               ) -> tuple[float, np.ndarray]:
    R = Y - Yhat
    return 0.5 * float(np.sum(R * R)) + lam * float(np.sqrt(np.einsum("kdc,kdc->k", W, W))
                                                    .sum()), R


def _shrink(Pi: np.ndarray, tau: float) -> np.ndarray:
    norms = np.sqrt(np.einsum("kdc,kdc->k", Pi, Pi))
    scale = np.where(norms > tau, 1.0 - tau / np.maximum(norms, 1e-300), 0.0)
    return Pi * scale[:, None, None]


def _lipschitz(blocks: Blocks, iters: int = 40, seed: int = 0) -> float:
    """``||A||₂²`` of the reduced design by power iteration (a lower estimate)."""
    d = blocks.X.shape[1]
    v = np.random.default_rng(seed).standard_normal((blocks.K, d, blocks.c))
    v /= np.linalg.norm(v)
    L = 0.0
    for _ in range(iters):
        w = blocks.correlations(blocks.forward(v))
        L_new = float(np.linalg.norm(w))
        if L_new == 0.0:
            return 0.0
        v = w / L_new
        if abs(L_new - L) <= 1e-3 * L_new:
            return L_new
        L = L_new
    return L


def reduced_gap(blocks: Blocks, corr_cache: FaceCache, Y: np.ndarray, W: np.ndarray,
                Yhat: np.ndarray, lam: float
                ) -> tuple[float, float, np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """Relative gap of the reduced program at W: the dual point ``t (Y − Ŷ)`` with
    ``t = min(1, λ / max_b σ_b)`` and the exact support values ``σ_b = ||Π_{K_b}(C_b)||_F``
    of the correlations ``C_b = σ_b Xᵀ D_b (Y − Ŷ)``. Returns the gap, the objective, the
    values and the multipliers of every column."""
    F, R = _objective(Y, Yhat, W, lam)
    C = blocks.correlations(R)
    # a block with ||C_b|| ≤ λ has σ_b ≤ λ: its bound is all the gap and the entering
    # test need (reported as its value, with no multipliers)
    Pi, mult = corr_cache.project(C, multipliers=True,
                                  skip=np.einsum("kdc,kdc->k", C, C) <= lam * lam)
    values = np.sqrt(np.einsum("kdc,kdc->k", Pi, Pi))
    top = float(values.max(initial=0.0))
    t = min(1.0, lam / top) if top > 0 else 1.0
    dual = t * float(np.sum(Y * R)) - 0.5 * t * t * float(np.sum(R * R))
    gap = (F - dual) / F if F > 0 else 0.0
    return max(gap, 0.0), F, values, mult


def _fista(blocks: Blocks, cache: FaceCache, Y: np.ndarray, W: np.ndarray, lam: float,
           L: float, iters: int) -> tuple[np.ndarray, np.ndarray, float, int, int]:
    """``iters`` FISTA steps with adaptive restart from W (feasible). Returns W, Ŷ, L,
    the steps taken and the number of restarts. Stops early when the support and the
    faces have not changed for 10 steps."""
    Yhat = blocks.forward(W)
    F, _ = _objective(Y, Yhat, W, lam)
    Wm, Yhat_m = W, Yhat
    t_mom = 1.0
    restarts = 0
    stable = 0
    faces = [r.tobytes() for r in cache.rows]
    support = np.einsum("kdc,kdc->k", W, W) > 0
    steps = 0
    for _ in range(iters):
        Rm = Y - Yhat_m
        Cm = blocks.correlations(Rm)
        fit_m = 0.5 * float(np.sum(Rm * Rm))
        while True:  # backtracking on the descent lemma (L from power iteration is low)
            V = Wm + Cm / L
            # ||Π(V_b)|| ≤ ||V_b|| ≤ λ/L: the block is zero after the shrink, whatever
            # its exact projection
            Pi, _ = cache.project(V, skip=np.einsum("kdc,kdc->k", V, V) <= (lam / L) ** 2)
            Wn = _shrink(Pi, lam / L)
            Yhat_n = blocks.forward(Wn)
            Rn = Y - Yhat_n
            D = Wn - Wm
            if 0.5 * float(np.sum(Rn * Rn)) <= fit_m - float(np.sum(Cm * D)) + \
                    0.5 * L * float(np.sum(D * D)) * (1 + 1e-12) + 1e-300:
                break
            L *= 2.0
        Fn = 0.5 * float(np.sum(Rn * Rn)) + lam * float(
            np.sqrt(np.einsum("kdc,kdc->k", Wn, Wn)).sum())
        steps += 1
        if Fn > F and t_mom > 1.0:  # function-value restart
            restarts += 1
            t_mom = 1.0
            Wm, Yhat_m = W, Yhat
            continue
        t_next = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t_mom * t_mom))
        beta = (t_mom - 1.0) / t_next
        if float(np.sum((Wm - Wn) * (Wn - W))) > 0:  # gradient restart
            beta, t_next = 0.0, 1.0
            restarts += 1
        Wm = Wn + beta * (Wn - W)
        Yhat_m = Yhat_n + beta * (Yhat_n - Yhat)
        t_mom = t_next
        now_support = np.einsum("kdc,kdc->k", Wn, Wn) > 0
        now_faces = [r.tobytes() for r in cache.rows]
        stable = stable + 1 if (np.array_equal(now_support, support) and now_faces == faces) \
            else 0
        support, faces = now_support, now_faces
        W, Yhat, F = Wn, Yhat_n, Fn
        if stable >= 10:
            break
    return W, Yhat, L, steps, restarts


def _output_sums(var_out: np.ndarray, c: int) -> sp.csr_matrix:
    """The (c, m) 0/1 matrix summing the variables of each output."""
    m = var_out.size
    return sp.csr_matrix((np.ones(m), (var_out, np.arange(m))), shape=(c, m))


def _segments(A: np.ndarray, start: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Sums of the column segments ``A[..., start_k : start_k + sizes_k]`` (0 when empty)."""
    pad = np.concatenate([A, np.zeros(A.shape[:-1] + (1,))], axis=-1)
    out = np.add.reduceat(pad, np.minimum(start, A.shape[-1]), axis=-1)
    out[..., sizes == 0] = 0.0
    return out


@dataclass
class _FaceProgram:
    """The program on the faces of the support blocks, in coordinates ``θ``.

    Column q (of block ``b = sup[k // c]``, output ``k % c``) has ``W_q = N_q θ_q``; the
    variables of all columns are stacked (``var_col``, ``var_blk``, ``var_out`` map a
    variable to its column, its block's position in ``sup`` and its output).
    ``B = [σ_b D_b X N_q]`` (n × m); ``H[j]`` is the Gram matrix of its columns of output
    j (``out[j]``, the variables of output j): the fit does not couple outputs.
    """

    sup: np.ndarray
    cols: np.ndarray
    start: np.ndarray
    sizes: np.ndarray
    N: np.ndarray  # (d, m) the bases side by side
    X: np.ndarray
    B: np.ndarray
    H: list[np.ndarray]
    out: list[np.ndarray]
    out_sums: sp.csr_matrix  # (c, m): row j sums the variables of output j
    var_blk: np.ndarray
    var_out: np.ndarray
    signs: np.ndarray  # (n, #cols) cone-row signs of each column
    face_rows: np.ndarray  # the face rows of every column, and the column of each
    face_cols: np.ndarray

    @classmethod
    def build(cls, blocks: Blocks, cache: FaceCache, sup: np.ndarray) -> _FaceProgram:
        """The program on the faces of the blocks ``sup`` (every column computed)."""
        c = blocks.c
        cols = (sup[:, None] * c + np.arange(c)).ravel()  # block-major
        return cls._assemble(blocks, cache, sup, cols,
                             blocks.S[:, sup[np.arange(cols.size) // c]], None, None)

    def refresh(self, blocks: Blocks, cache: FaceCache, changed: np.ndarray) -> _FaceProgram:
        """The program after the faces of the columns at positions ``changed`` changed.

        Same support: the other columns keep their bases, their columns of ``B`` and their
        entries of ``H``; only the changed columns' products are recomputed (a face
        change costs ``n·m/c`` per new variable instead of a rebuild of ``n·m²/c``).
        """
        return self._assemble(blocks, cache, self.sup, self.cols, self.signs, self, changed)

    @classmethod
    def _assemble(cls, blocks: Blocks, cache: FaceCache, sup: np.ndarray, cols: np.ndarray,
                  signs: np.ndarray, old: _FaceProgram | None, changed: np.ndarray | None
                  ) -> _FaceProgram:
        """Build (``old`` None) or refresh ``old`` where the columns ``changed`` moved."""
        X, c = blocks.X, blocks.c
        d = X.shape[1]
        bases = cache.null_bases(cols)
        sizes = np.array([N.shape[1] for N in bases], dtype=np.int64)
        start = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        m = int(sizes.sum())
        N = np.zeros((d, m))
        for k, Nq in enumerate(bases):
            N[:, start[k]:start[k] + sizes[k]] = Nq
        var_col = np.repeat(np.arange(cols.size), sizes)
        var_blk, var_out = var_col // c, var_col % c
        fresh = np.ones(cols.size, dtype=bool)
        if old is not None:
            fresh[:] = False
            fresh[changed] = True
        keep_new = ~fresh[var_col]
        out = [np.nonzero(var_out == j)[0] for j in range(c)]
        if old is None:
            B = (X @ N) * blocks.Ms[:, sup[var_blk]]
            H = [B.T @ B] if c == 1 else [B[:, o].T @ B[:, o] for o in out]
        else:
            B = np.empty((X.shape[0], m))
            new = np.nonzero(~keep_new)[0]
            B[:, new] = (X @ N[:, new]) * blocks.Ms[:, sup[var_blk[new]]]
            keep_old = ~fresh[old.var_blk * c + old.var_out]
            B[:, keep_new] = old.B[:, keep_old]
            H = []
            for o, o_old, H_old in zip(out, old.out, old.H, strict=True):
                kn, ko = keep_new[o], keep_old[o_old]
                Hj = np.empty((o.size, o.size))
                Hj[np.ix_(kn, kn)] = H_old[np.ix_(ko, ko)]
                f = np.nonzero(~kn)[0]
                if f.size:
                    cross = B[:, o].T @ B[:, o[f]]
                    Hj[:, f] = cross
                    Hj[f, :] = cross.T
                H.append(Hj)
        face = [cache.rows[q] for q in cols]
        face_rows = np.concatenate(face) if face else np.zeros(0, dtype=np.int64)
        face_cols = np.repeat(np.arange(cols.size), [f.size for f in face])
        return cls(sup, cols, start, sizes, N, X, B, H, out, _output_sums(var_out, c),
                   var_blk, var_out, signs, face_rows, face_cols)

    def theta(self, W: np.ndarray) -> np.ndarray:
        c = W.shape[2]
        Wv = W[self.sup[self.var_blk], :, self.var_out]  # (m, d): the column of each variable
        del c
        return np.einsum("dm,md->m", self.N, Wv)

    def weights(self, theta: np.ndarray, K: int) -> np.ndarray:
        d, c = self.N.shape[0], self.out_sums.shape[0]
        W = np.zeros((K, d, c))
        if theta.size == 0:
            return W
        cols = _segments(self.N * theta, self.start, self.sizes)  # (d, #cols)
        W[self.sup[np.arange(self.cols.size) // c], :, np.arange(self.cols.size) % c] = cols.T
        return W

    def fitted(self, theta: np.ndarray) -> np.ndarray:
        """``Σ_q B_q θ_q`` per output (n, c) in O(n·m) (a dense one-hot product would cost
        O(n·m·c))."""
        if self.out_sums.shape[0] == 1:
            return (self.B @ theta)[:, None]
        return np.asarray((self.out_sums @ (self.B * theta).T).T)

    def value(self, Y: np.ndarray, theta: np.ndarray, lam: float
              ) -> tuple[float, np.ndarray, np.ndarray]:
        R = Y - self.fitted(theta)
        nb = np.sqrt(np.bincount(self.var_blk, theta * theta, minlength=self.sup.size))
        return 0.5 * float(np.sum(R * R)) + lam * float(nb.sum()), R, nb

    def change(self, theta: np.ndarray, R: np.ndarray, nb: np.ndarray, step: np.ndarray,
               lam: float) -> float:
        """``F(θ + step) − F(θ)`` computed from the differences (no cancellation):
        ``−⟨R, ΔŶ⟩ + ½||ΔŶ||² + λ Σ_b (2⟨θ_b, δ_b⟩ + ||δ_b||²)/(||θ_b + δ_b|| + ||θ_b||)``.
        Near the optimum the changes that matter for the certificate are far below the
        rounding of F itself."""
        dY = self.fitted(step)
        dot = np.bincount(self.var_blk, theta * step, minlength=self.sup.size)
        sq = np.bincount(self.var_blk, step * step, minlength=self.sup.size)
        new = np.sqrt(np.bincount(self.var_blk, (theta + step) ** 2, minlength=self.sup.size))
        pen = (2.0 * dot + sq) / np.maximum(new + nb, 1e-300)
        return -float(np.sum(R * dY)) + 0.5 * float(np.sum(dY * dY)) + lam * float(pen.sum())

    def margins(self, theta: np.ndarray) -> np.ndarray:
        """``s_k x_kᵀ W_q`` for every row and column (n, #cols)."""
        if theta.size == 0:
            return np.zeros((self.X.shape[0], self.cols.size))
        Wc = _segments(self.N * theta, self.start, self.sizes)  # (d, #cols) the columns
        return (self.X @ Wc) * self.signs


def _newton_direction(prog: _FaceProgram, theta: np.ndarray, nb: np.ndarray,
                      grad: np.ndarray, lam: float) -> np.ndarray:
    """``∇²F(θ)⁻¹ ∇F(θ)`` without forming the Hessian of all outputs at once.

    ``∇²F = D − V Vᵀ`` with ``D = blockdiag_j(H_j) + diag(λ/||θ_b||)`` (the fit couples no
    outputs) and ``V[i, b(i)] = √(λ/||θ_b||) θ_i/||θ_b||`` (the Frobenius norm couples the
    columns of a block, one rank-one term per block). With one output the matrix is
    factored as it is; with ``c`` outputs by Woodbury,
    ``(D − VVᵀ)⁻¹ g = D⁻¹g + D⁻¹V (I − VᵀD⁻¹V)⁻¹ VᵀD⁻¹g`` — c Cholesky factors of size
    ``m/c`` and one of size ``#blocks`` instead of one of size ``m`` (c² fewer flops).
    """
    K = prog.sup.size
    shift = lam / nb[prog.var_blk]
    V = np.zeros((theta.size, K))
    V[np.arange(theta.size), prog.var_blk] = np.sqrt(shift) * theta / nb[prog.var_blk]
    if len(prog.out) == 1:
        Hn = prog.H[0] - V @ V.T
        Hn[np.diag_indices_from(Hn)] += shift
        try:
            return sla.cho_solve(sla.cho_factor(Hn, check_finite=False), grad,
                                 check_finite=False)
        except (np.linalg.LinAlgError, ValueError):
            return np.linalg.lstsq(Hn, grad, rcond=None)[0]
    x = np.empty_like(grad)
    Z = np.zeros_like(V)
    try:
        for o, Hj in zip(prog.out, prog.H, strict=True):
            if o.size == 0:
                continue
            Dj = Hj + np.diag(shift[o])
            fac = sla.cho_factor(Dj, check_finite=False)
            rhs = sla.cho_solve(fac, np.column_stack([grad[o], V[o]]), check_finite=False)
            x[o], Z[o] = rhs[:, 0], rhs[:, 1:]
        C = np.eye(K) - V.T @ Z
        corr = sla.solve(C, V.T @ x, assume_a="pos", check_finite=False)
        return x + Z @ corr
    except (np.linalg.LinAlgError, ValueError):
        Hn = sla.block_diag(*prog.H)
        order = np.concatenate(prog.out)
        full = np.empty_like(Hn)
        full[np.ix_(order, order)] = Hn
        full += np.diag(shift) - V @ V.T
        return np.linalg.lstsq(full, grad, rcond=None)[0]


def _newton(blocks: Blocks, cache: FaceCache, Y: np.ndarray, W: np.ndarray, lam: float,
            max_steps: int = 60) -> tuple[np.ndarray, int, int, int]:
    """Damped Newton on the faces of the support blocks (module docstring, point 3).

    Variables ``θ_q`` with ``W_q = N_q θ_q`` for every column q of every non-zero block;
    ``F(θ) = ½ Σ_j ||Σ_q B_q θ_q − y_j||² + λ Σ_b ||θ_b||`` with ``B_q = σ_b D_b X N_q``,
    gradient ``−Bᵀ R + λ θ_b/||θ_b||`` and Hessian ``H + λ (I − u_b u_bᵀ)/||θ_b||`` per
    block. Steps are capped by a ratio test on the rows outside the faces: a blocking row
    joins its column's face, and a block whose step ends at zero leaves the support
    (every row of its cone blocks at once there). Steps are backtracked on F. Returns W,
    the Newton steps, the rows added and the blocks dropped.
    """
    K = W.shape[0]
    added = dropped = steps = 0
    prog = None
    touched: list[int] = []  # columns (positions in prog.cols) whose face changed
    for _ in range(max_steps):
        norms = np.sqrt(np.einsum("kdc,kdc->k", W, W))
        top = float(norms.max(initial=0.0))
        sup = np.nonzero(norms > _ZERO * top)[0]
        if sup.size == 0:
            return np.zeros_like(W), steps, added, dropped
        if prog is None or not np.array_equal(prog.sup, sup) or (
                touched and blocks.X.shape[0] <= _REBUILD_BELOW):
            prog = _FaceProgram.build(blocks, cache, sup)
        elif touched:
            prog = prog.refresh(blocks, cache, np.unique(touched))
        touched = []
        theta = prog.theta(W)
        F, R, nb = prog.value(Y, theta, lam)
        if theta.size == 0 or np.any(nb <= 0):
            break
        grad = -np.einsum("nm,nm->m", prog.B, R[:, prog.var_out]) + lam * theta / nb[
            prog.var_blk]
        delta = -_newton_direction(prog, theta, nb, grad, lam)
        slope = float(grad @ delta)
        if not slope < 0.0 or float(np.abs(delta).max()) <= 1e-15 * float(np.abs(theta).max()):
            break
        # ratio test on the rows outside each column's face (face rows stay at 0)
        cur = prog.margins(theta)
        dirn = prog.margins(delta)
        dirn[prog.face_rows, prog.face_cols] = 0.0
        dirn[dirn > -1e-14 * np.abs(dirn).max(initial=0.0)] = 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(dirn < 0, np.maximum(cur, 0.0) / -dirn, np.inf)
        col_max = ratio.min(axis=0, initial=np.inf)  # (#cols)
        # blocks the full step takes through zero (on a ray the step is parallel to θ_b:
        # the model's best coefficient has the other sign, outside the cone) leave the
        # support together, and the step is recomputed without them
        dot = np.bincount(prog.var_blk, theta * (theta + delta), minlength=sup.size)
        par = np.bincount(prog.var_blk, np.abs(theta * delta), minlength=sup.size)
        flip = dot < -1e-12 * par
        if flip.any():
            W[sup[flip]] = 0.0
            dropped += int(flip.sum())
            prog = None
            continue
        smax = float(col_max.min(initial=np.inf))
        if smax <= 1e-12:  # rows already tight that the step leaves: they join the face
            rr, kk = np.nonzero(ratio <= 1e-12)
            for k in np.unique(kk):  # rows in increasing order, as one at a time would
                q = prog.cols[k]
                cache.set_face(q, np.append(cache.rows[q], rr[kk == k]))
                touched.append(int(k))
            added += int(rr.size)
            continue
        s = min(1.0, smax)
        accepted = False
        while s > 1e-10:
            th_new = theta + s * delta
            if prog.change(theta, R, nb, s * delta, lam) <= 1e-4 * s * slope:
                accepted = True
                break
            s *= 0.5
        if not accepted:
            break
        steps += 1
        W = prog.weights(th_new, K)
        nb_new = np.sqrt(np.bincount(prog.var_blk, th_new * th_new, minlength=sup.size))
        gone = nb_new <= 1e-12 * max(float(nb.max()), 1e-300)
        if gone.any():  # blocks shrunk to zero leave the support
            W[sup[gone]] = 0.0
            dropped += int(gone.sum())
        if smax < 1.0 and s >= smax * (1 - 1e-12):
            # blocking rows join their faces; a column that reached zero (shrinking along
            # a ray, where every row of its cone blocks at once) is held at zero by d rows
            old_n = np.sqrt(_segments(theta * theta, prog.start, prog.sizes))
            new_n = np.sqrt(_segments(th_new * th_new, prog.start, prog.sizes))
            for k in np.nonzero(col_max <= smax * (1 + 1e-9))[0]:
                q = prog.cols[k]
                hit = np.nonzero(ratio[:, k] <= smax * (1 + 1e-9))[0]
                if prog.sizes[k] and new_n[k] <= 1e-9 * old_n[k]:
                    W[prog.sup[k // blocks.c], :, k % blocks.c] = 0.0
                    cache.set_face(q, hit, -ratio[hit, k])
                else:
                    cache.set_face(q, np.append(cache.rows[q], hit))
                touched.append(int(k))
                added += int(hit.size)
        elif float(np.abs(delta).max()) <= 1e-13 * float(np.abs(th_new).max()):
            break
    return W, steps, added, dropped


def solve_reduced(blocks: Blocks, cache: FaceCache, corr_cache: FaceCache, Y: np.ndarray,
                  W0: np.ndarray, lam: float, *, tol: float, max_rounds: int = 40,
                  burst: int = FISTA_BURST) -> ReducedResult:
    """Solve the reduced program from the feasible ``W0`` (K, d, c) to relative gap ``tol``.

    Rounds of: at most ``burst`` FISTA steps (:func:`_fista`, stopped early once the
    support and every face have been the same for 10 steps) — they identify the faces —
    then Newton on those faces (:func:`_newton`), which solves the program restricted to
    them to machine precision, then the gap (:func:`reduced_gap`). Stops when the gap is
    at most ``tol``, or after ``max_rounds`` rounds (the caller's certificate then says
    how far it is). A Newton phase of ``_CHURN`` steps or more makes the burst four times
    longer (up to ``_MAX_BURST``); ``info["burst"]`` is the last one, for the caller's next
    solve.
    """
    W = W0
    info: dict[str, Any] = {"fista_steps": 0, "restarts": 0, "newton_steps": 0,
                            "rows_added": 0, "left": 0, "rounds": 0}
    nnls0 = cache.nnls + corr_cache.nnls
    Yhat = blocks.forward(W)
    gap, F, values, mult = reduced_gap(blocks, corr_cache, Y, W, Yhat, lam)
    L = None
    for rnd in range(max_rounds):
        if gap <= tol:
            break
        info["rounds"] = rnd + 1
        if L is None:
            L = _lipschitz(blocks) * 1.05
        if L > 0:
            W, Yhat, L, steps, restarts = _fista(blocks, cache, Y, W, lam, L, burst)
            info["fista_steps"] += steps
            info["restarts"] += restarts
        W, steps, added, dropped = _newton(blocks, cache, Y, W, lam)
        if steps >= _CHURN:  # the faces were far off: identify them longer next time
            burst = min(4 * burst, _MAX_BURST)
        info["newton_steps"] += steps
        info["rows_added"] += added
        info["left"] += dropped
        Yhat = blocks.forward(W)
        gap, F, values, mult = reduced_gap(blocks, corr_cache, Y, W, Yhat, lam)
    info.update({"gap": gap, "objective": F, "burst": burst,
                 "nnls": cache.nnls + corr_cache.nnls - nnls0})
    return ReducedResult(W, Yhat, values, mult, info)
