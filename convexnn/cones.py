"""The polyhedral cones of the ReLU program (``docs/math/relu.md``), in numpy.

Pattern ``i`` with signs ``S_i = 2 D_i − I`` owns the cone

    K_i = {u ∈ R^d : S_i X u ≥ 0}

of first-layer weights whose ReLU really has activation pattern ``D_i``. Its polar
is ``K_i° = −cone{s_k x_k}`` with ``s_k`` the diagonal of ``S_i``, so by Moreau's
decomposition one non-negative least-squares problem (d × n, solved exactly by the
Lawson–Hanson active-set method)

    a* = argmin_{a ≥ 0} ||w + X^T S_i a||,      Π_{K_i}(w) = w + X^T S_i a*,

gives at the same time

* the Euclidean projection of ``w`` onto ``K_i`` (used to repair a primal point);
* the support value ``max_{||u|| ≤ 1, u ∈ K_i} w^T u = ||Π_{K_i}(w)||`` — the
  left-hand side of the dual constraint of ``docs/math/relu.md``, whose multiplier is ``a*``:
  ``min_{α ≥ 0} ||X^T (D_i z + S_i α)|| = ||Π_{K_i}(X^T D_i z)||``.

With ``c`` outputs every column of a d×c block has its own cone constraint, so
the problems separate by column and Frobenius norms are taken over the results.
Blocks already inside their cone (the common case) are recognised in one
vectorised test and need no NNLS at all.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import lsq_linear, nnls

from .ops import group_norms

__all__ = ["signs", "cone_gaps", "cone_violation", "project_to_cones", "support_values",
           "screen_values", "dual_norms"]


def signs(M: np.ndarray) -> np.ndarray:
    """``S = 2M − 1`` (n × P) as floats: the diagonals of the ``S_i``."""
    return np.where(M, 1.0, -1.0)


def _cone_products(X: np.ndarray, M: np.ndarray, W: np.ndarray) -> np.ndarray:
    """``S_i X W_i`` for every pattern: (P, n, c)."""
    return signs(M).T[:, :, None] * np.einsum("nd,pdc->pnc", X, W, optimize=True)


def cone_gaps(X: np.ndarray, M: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Per pattern, ``||(−S_i X W_i)_+||_F``: how far the predictions of ``D_i X W_i``
    are from those of the ReLU neurons ``(X W_i)_+`` (0 iff the block is in its cone).

    Returns (P,).
    """
    neg = np.maximum(-_cone_products(X, M, W), 0.0)
    return np.sqrt(np.einsum("pnc,pnc->p", neg, neg))


def cone_violation(X: np.ndarray, M: np.ndarray, *blocks: np.ndarray) -> float:
    """``Σ_i Σ_blocks ||(−S_i X W_i)_+||_F``.

    By the triangle inequality this bounds ``||Σ_i D_i X (V_i − U_i) − f(X)||_F``, the
    difference between the convex program's predictions and those of the ReLU network
    built from ``(V, U)`` (before pruning).
    """
    return float(sum(cone_gaps(X, M, W).sum() for W in blocks))


def project_to_cones(
    X: np.ndarray,
    M: np.ndarray,
    W: np.ndarray,
    *,
    only: np.ndarray | None = None,
    start: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Column-wise Euclidean projection of every block ``W_i`` onto ``K_i``.

    ``Π_{K_i}(w) = w + X^T S_i a*`` with ``a* = argmin_{a ≥ 0} ||w + X^T S_i a||``.

    Parameters
    ----------
    X : (n, d)
    M : (n, P) bool patterns
    W : (P, d, c) blocks
    only : optional bool (P,) or index array
        Project only these blocks; the others are returned unchanged with ``a = 0``.
    start : optional (P, n, c)
        Multipliers of a nearby problem: their support seeds the rows of the
        constraint generation (a speed hint; the result is the same).

    Returns
    -------
    Pi : (P, d, c) the projections (``S_i X Pi_i ≥ 0`` up to rounding)
    alpha : (P, n, c) the non-negative multipliers ``a*``
    """
    P, d, c = W.shape
    n = X.shape[0]
    S = signs(M)
    Pi = np.array(W, dtype=np.float64, copy=True)
    alpha = np.zeros((P, n, c))
    inside = _cone_products(X, M, W).min(axis=1) >= 0  # (P, c): column already in its cone
    todo = ~inside
    if only is not None:
        mask = np.zeros(P, dtype=bool)
        mask[np.asarray(only)] = True
        todo &= mask[:, None]
    scale = np.maximum(np.linalg.norm(X, axis=1), np.finfo(np.float64).tiny)
    pi, kk = np.nonzero(todo)  # the columns to project, all at once first
    if pi.size:
        rows = np.zeros((pi.size, d), dtype=np.int64)
        count = np.zeros(pi.size, dtype=np.int64)
        if start is not None:  # the largest multipliers of the hint start each face
            hint = start[pi, :, kk]  # (F, n)
            top = np.argsort(-hint, axis=1)[:, :d]  # min(n, d) rows: fewer when n < d
            rows[:, :top.shape[1]] = top
            count[:] = np.sum(np.take_along_axis(hint, top, axis=1) > 0, axis=1)
        res, rows, count, a, done = project_batch(X, S[:, pi], W[pi, :, kk], rows, count)
        for f in np.nonzero(done)[0]:
            e = count[f]
            alpha[pi[f], rows[f, :e], kk[f]] = np.maximum(a[f, :e], 0.0)
            Pi[pi[f], :, kk[f]] = res[f]
        for f in np.nonzero(~done)[0]:
            i, k = pi[f], kk[f]
            G = X * S[:, i:i + 1]  # (n, d): rows s_k x_k^T
            hint = None if start is None else np.nonzero(start[i, :, k] > 0)[0]
            a = _project_by_rows(G, scale, W[i, :, k], hint)
            alpha[i, :, k] = a
            Pi[i, :, k] = W[i, :, k] + G.T @ a
    return Pi, alpha


#: Columns evaluated exactly at a time by the screens (after the greedy steps).
EVALUATE_CHUNK = 64
#: Steps beyond 3d the batched projection takes before the NNLS takes over.
BATCH_ITERATIONS = 10
#: Relative sizes below which a multiplier or a row margin counts as zero (rounding).
_KKT_TOL = 1e-11


def face_matrices(X: np.ndarray, S: np.ndarray, rows: np.ndarray, count: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The rows of faces and their pseudo-inverses, for many columns at once.

    Column f has cone-row signs ``S[:, f]`` and face rows ``rows[f, :count[f]]`` (the
    rest of ``rows[f]`` is ignored). Returns ``G`` (F, d, d) — row k of ``G_f`` is
    ``s_k x_kᵀ`` for the k-th face row, zero beyond ``count[f]`` — and ``(G_fᵀ)⁺ =
    (G_f G_fᵀ)⁻¹ G_f`` padded the same way (one batched Cholesky and solve; the SVD
    pseudo-inverse when some face has dependent rows).
    """
    F, d = rows.shape
    live = np.arange(d)[None, :] < count[:, None]
    idx = np.where(live, rows, 0)
    G = X[idx] * (S[idx, np.arange(F)[:, None]] * live)[:, :, None]
    gram = G @ G.transpose(0, 2, 1)
    gram[:, np.arange(d), np.arange(d)] += ~live
    try:
        np.linalg.cholesky(gram)
        P = np.linalg.solve(gram, G)
    except np.linalg.LinAlgError:
        P = np.linalg.pinv(G.transpose(0, 2, 1), rcond=1e-12)
    return G, P


def project_batch(X: np.ndarray, S: np.ndarray, V: np.ndarray, rows: np.ndarray | None = None,
                  count: np.ndarray | None = None, *, iters: int | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Projections ``Π_K(v_f)`` onto ``K_f = {u : s_{kf} x_kᵀ u ≥ 0 ∀k}`` for many
    vectors at once: the Lawson–Hanson active-set method for ``min_{a ≥ 0} ||v + Gᵀ a||``
    run on all columns together.

    Each column keeps a passive set ``E`` (at most d rows, the face) with multipliers
    ``a_E ≥ 0``. A step solves the least-squares problem on ``E``,
    ``z = −(G_Eᵀ)⁺ v``: if ``z > 0`` then ``a = z`` and ``Π = v + G_Eᵀ z`` is the exact
    projection when it satisfies every row (the KKT conditions); otherwise the most
    violated row joins ``E``. If some ``z_k ≤ 0``, ``a`` moves towards ``z`` as far as
    ``a ≥ 0`` allows and the rows reaching zero leave (Lawson and Hanson's interpolation,
    which makes the method terminate). All columns take their step together — one
    batched solve and one GEMM ``X Πᵀ`` — never a Python loop over columns. ``rows,
    count`` (F, d), (F,) give starting faces (e.g. the last face of a column, or the
    support of nearby multipliers).

    Returns ``Pi`` (F, d), ``rows`` and ``count`` (the final faces), ``a`` (F, d) the
    multipliers of the face rows, and ``done`` (F,) bool: where the KKT conditions hold.
    Columns not done after ``iters`` steps (default ``3d + BATCH_ITERATIONS``) are left
    to the exact NNLS (:func:`project_to_cones` does that).
    """
    F, d = V.shape
    iters = 3 * d + BATCH_ITERATIONS if iters is None else iters
    xnorm = np.maximum(np.linalg.norm(X, axis=1), np.finfo(np.float64).tiny)
    rows = np.zeros((F, d), dtype=np.int64) if rows is None else np.array(rows, dtype=np.int64)
    count = np.zeros(F, dtype=np.int64) if count is None else np.array(count, dtype=np.int64)
    Pi = np.array(V, dtype=np.float64, copy=True)
    a = np.zeros((F, d))  # current multipliers of the face rows (≥ 0)
    done = np.zeros(F, dtype=bool)
    vnorm = np.linalg.norm(V, axis=1)
    done[vnorm == 0] = True
    count[vnorm == 0] = 0
    live = np.nonzero(vnorm > 0)[0]
    slots = np.arange(d)[None, :]
    fresh = np.full(F, -1, dtype=np.int64)  # the row that joined last
    for _ in range(iters):
        if live.size == 0:
            break
        cnt = count[live]
        on = slots < cnt[:, None]
        G, P = face_matrices(X, S[:, live], rows[live], cnt)
        v = V[live]
        z = -np.einsum("fed,fd->fe", P, v)
        scale = np.linalg.norm(G, axis=2)  # row norms: multipliers in units of v
        tol = _KKT_TOL * vnorm[live]
        low = on & (z * scale <= tol[:, None])  # face rows whose LS multiplier is not > 0
        inner = low.any(axis=1)
        # interpolation towards z, as far as a ≥ 0 allows; rows reaching 0 leave
        al = a[live]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(low, al / (al - z), np.inf)
        step = np.clip(ratio.min(axis=1, initial=np.inf), 0.0, 1.0)
        new_a = np.where(inner[:, None], al + step[:, None] * (z - al), z) * on
        reached = (new_a * scale <= tol[:, None]) | (low & (ratio <= step[:, None]))
        leave = inner[:, None] & on & reached
        # outer step for the others: the projection on the face, then the most violated row
        pi = v + np.einsum("fed,fe->fd", G, new_a)
        margin = (X @ pi.T) * S[:, live] / xnorm[:, None]
        j_bad = np.argmin(margin, axis=0)
        bad = margin[j_bad, np.arange(live.size)] < -tol
        ok = ~inner & ~bad
        fin = live[ok]
        Pi[fin], a[fin], done[fin] = pi[ok], new_a[ok], True
        # a row that leaves at once after joining would join again: a cycle (rounding),
        # left to the NNLS
        newest = np.where(cnt > 0, cnt - 1, 0)
        cycle = inner & (step <= 0) & leave[np.arange(live.size), newest] & (
            rows[live, newest] == fresh[live])
        # compact the faces of the inner columns (the leaving rows drop out, order kept)
        keep = on & ~leave
        order = np.argsort(~keep, axis=1, kind="stable")
        rows[live] = np.take_along_axis(rows[live], order, axis=1)
        a[live] = np.take_along_axis(new_a * keep, order, axis=1)
        count[live] = keep.sum(axis=1)
        add = ~inner & bad & (cnt < d)
        f = live[add]
        rows[f, count[f]] = j_bad[add]
        fresh[f] = j_bad[add]
        a[f, count[f]] = 0.0
        count[f] += 1
        live = live[(inner & ~cycle) | add]
    return Pi, rows, count, a, done


def _smallest(values: np.ndarray, count: int) -> np.ndarray:
    """Indices of the ``count`` smallest entries (unordered)."""
    if count >= values.size:
        return np.arange(values.size)
    return np.argpartition(values, count)[:count]


def _project_by_rows(G: np.ndarray, scale: np.ndarray, w: np.ndarray,
                     hint: np.ndarray | None = None, *, rounds: int = 30) -> np.ndarray:
    """``argmin_{a ≥ 0} ||w + G^T a||`` (the multipliers of ``Π_K(w)``, ``K = {u : G u ≥ 0}``).

    Constraint generation: the NNLS is solved on a few rows of ``G`` (``hint`` and the
    rows ``w`` violates most), and rows the projection still violates are added until
    none does. Then the restricted multipliers, padded with zeros, satisfy the
    optimality conditions of the full problem — ``a ≥ 0``, ``G Π ≥ 0`` with
    ``Π = w + G^T a``, ``a^T G Π = 0`` — so the answer is the exact projection. A cone
    in R^d has few facets near any point, so the restricted problems stay small (tens
    of rows instead of n); after ``rounds`` additions the full NNLS is solved instead.
    ``scale`` holds the row norms of ``G``.
    """
    n, d = G.shape
    a = np.zeros(n)
    margin = (G @ w) / scale  # signed distances of w to the hyperplanes
    first = _smallest(margin, 2 * d)
    # a violation at the level of rounding is none (w lies on the face): its "projection"
    # is an ill-posed NNLS whose answer is w itself
    rows = first[margin[first] < -1e-13 * float(np.linalg.norm(w))]
    if rows.size == 0:
        return a
    if hint is not None and hint.size:
        rows = np.union1d(rows, hint)
    grow = max(d, 8)
    for _ in range(rounds):
        B = G[rows].T
        sub = _nnls(B, w)
        pi = w + B @ sub
        margin = (G @ pi) / scale
        # rounding-level violations do not count: Π = w + G^T a is computed with
        # cancellation, so its error is ~ eps·||w|| (and Π may be 0: w in the polar cone)
        limit = -1e-12 * float(np.linalg.norm(w)) - 1e-10 * float(np.linalg.norm(pi))
        bad = np.nonzero(margin < limit)[0]
        if bad.size == 0:
            a[rows] = sub
            return a
        rows = np.union1d(rows, bad[_smallest(margin[bad], grow)])
    return _nnls(G.T, w)


def _nnls(B: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``argmin_{a ≥ 0} ||w + B a||`` for a d × n matrix ``B``, robustly.

    The problem is positively homogeneous, so it is solved for unit ``w`` and unit
    columns of ``B`` with subnormal entries flushed to zero (scipy's ``nnls`` can
    crash on subnormal input), then scaled back. If the active-set method hits its
    iteration limit, BVLS is tried; failing that ``a = 0`` is returned — always a valid
    (if weaker) multiplier, and certificates recompute every norm from it.
    """
    tiny = np.finfo(np.float64).tiny
    wn = float(np.linalg.norm(w))
    cn = np.linalg.norm(B, axis=0)
    keep = cn > tiny
    a = np.zeros(B.shape[1])
    if wn <= tiny or not keep.any():
        return a
    Bs = B[:, keep] / cn[keep]
    b = -w / wn
    Bs[np.abs(Bs) < tiny] = 0.0
    b[np.abs(b) < tiny] = 0.0
    try:
        x, _ = nnls(Bs, b, maxiter=max(50 * Bs.shape[1], 100))
    except RuntimeError:
        x = None
    # scipy's active-set NNLS can return a point worse than a = 0 on degenerate input
    # (b almost orthogonal to the columns); such an answer is replaced
    if x is None or not np.sum((Bs @ x - b) ** 2) <= np.sum(b * b) * (1 + 1e-12):
        res = lsq_linear(Bs, b, bounds=(0.0, np.inf), method="bvls")
        x = np.maximum(res.x, 0.0) if res.success else None
        if x is None or not np.sum((Bs @ x - b) ** 2) <= np.sum(b * b) * (1 + 1e-12):
            return a
    a[keep] = x * (wn / cn[keep])
    return a


def support_values(X: np.ndarray, M: np.ndarray, C: np.ndarray, *, only: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``max_{||U||_F ≤ 1, S_i X U ≥ 0} ⟨C_i, U⟩ = min_{α ≥ 0} ||C_i + X^T S_i α||_F``.

    Returns the values (P,) and the minimising multipliers (P, n, c). Blocks outside
    ``only`` get the upper bound ``||C_i||_F`` (the value at ``α = 0``).
    """
    Pi, alpha = project_to_cones(X, M, C, only=only)
    return group_norms(Pi), alpha


def dual_norms(X: np.ndarray, M: np.ndarray, Z: np.ndarray, alpha: np.ndarray, beta: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """Left-hand sides of the dual constraints of ``docs/math/relu.md`` for given multipliers.

    ``(||X^T (D_i Z + S_i α_i)||_F, ||X^T (−D_i Z + S_i β_i)||_F)`` for every i; each (P,).
    ``Z`` is (n, c); ``alpha``, ``beta`` are (P, n, c).
    """
    Mf = M.T.astype(np.float64)[:, :, None]  # (P, n, 1)
    S = signs(M).T[:, :, None]
    DZ = Mf * Z[None, :, :]
    return group_norms(_xt_blocks(X, DZ + S * alpha)), group_norms(_xt_blocks(X, S * beta - DZ))


def _xt_blocks(X: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``X^T B_i`` for every block of B (P, n, c) → (P, d, c), as one GEMM."""
    P, n, c = B.shape
    out = X.T @ B.transpose(1, 0, 2).reshape(n, P * c)  # (d, P·c)
    return out.reshape(X.shape[1], P, c).transpose(1, 0, 2)


def _cone_bound(X: np.ndarray, M: np.ndarray, C: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``||C_i + X^T S_i α_i||_F`` for every pattern: an upper bound on the support value."""
    return group_norms(C + _xt_blocks(X, signs(M).T[:, :, None] * alpha))


def screen_values(X: np.ndarray, M: np.ndarray, C: np.ndarray, threshold: float, *,
                  alpha: np.ndarray | None = None, exclude: np.ndarray | None = None,
                  want: int | None = None, limit: int | None = None, steps: int = 10,
                  sharpen: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Support values ``max_{||U||_F ≤ 1, S_i X U ≥ 0} ⟨C_i, U⟩`` where they can exceed
    ``threshold``; cheap upper bounds elsewhere.

    Every pattern first gets the bound ``min(||C_i||_F, ||C_i + X^T S_i α_i||_F)`` — the
    support value is ``min_{α ≥ 0} ||C_i + X^T S_i α||_F``, so any ``α ≥ 0`` (e.g. the
    multipliers of a nearby point) bounds it from above. Patterns whose bound exceeds
    ``threshold`` then get ``steps`` greedy coordinate-descent steps on ``α`` (all at
    once, vectorised), which lower the bound of most of them below the threshold at
    the cost of a few GEMMs. Only patterns still above it and not in ``exclude`` are
    evaluated exactly (NNLS, see :func:`project_to_cones`), in order of decreasing
    bound. With ``want`` the evaluation stops once ``want`` exact values above the
    threshold are known and every remaining bound is below the smallest of them: the
    ``want`` largest are then exact.
    With ``limit`` it also stops once ``want`` are known and ``limit`` patterns were
    evaluated (the largest values among those evaluated, in order of their bounds).

    Parameters
    ----------
    X : (n, d); M : (n, P) bool; C : (P, d, c)
    threshold : float
    alpha : (P, n, c) or None
        Starting multipliers (≥ 0); updated in place and returned.
    exclude : (P,) bool or None
        Patterns never evaluated exactly (they keep their bound).
    want, limit : int or None
    steps : int, greedy steps before the exact evaluation (0: none)
    sharpen : bool
        With ``want``, evaluate the ``max(16, want)`` largest bounds exactly before the
        greedy steps, whose cut-off then becomes the ``want``-th largest known value
        (fewer greedy steps, more exact evaluations); without it the greedy steps run
        against ``threshold``.

    Returns
    -------
    values : (P,) exact where ``exact`` is true, the upper bound elsewhere
    exact : (P,) bool
    alpha : (P, n, c) multipliers attaining them: ``||C_i + X^T S_i α_i||_F = values_i``
    evaluated : int, the number of patterns evaluated exactly
    """
    P, d, c = C.shape
    values = group_norms(C)
    if alpha is None:
        alpha = np.zeros((P, X.shape[0], c))
    elif np.any(alpha):
        warm = _cone_bound(X, M, C, alpha)
        alpha[values <= warm] = 0.0  # the multipliers always attain the reported value
        values = np.minimum(values, warm)
    exact = np.zeros(P, dtype=bool)
    todo = values > threshold
    if exclude is not None:
        todo[exclude] = False
    chunk = max(16, want or 0)
    found: list[float] = []
    evaluated = 0

    def evaluate(idx: np.ndarray) -> None:
        nonlocal evaluated
        Pi, a = project_to_cones(X, M[:, idx], C[idx], start=alpha[idx])
        values[idx] = group_norms(Pi)
        alpha[idx] = a
        exact[idx] = True
        todo[idx] = False
        evaluated += idx.size
        found.extend(values[idx][values[idx] > threshold].tolist())

    def cutoff() -> float:
        """Bounds at or below this cannot matter (the ``want``-th largest known value)."""
        if want is None or len(found) < want:
            return threshold
        return max(threshold, sorted(found, reverse=True)[want - 1])

    def by_bound() -> np.ndarray:
        order = np.nonzero(todo)[0]
        return order[np.argsort(-values[order], kind="stable")]

    if want is not None and sharpen and todo.any():
        evaluate(by_bound()[:chunk])  # the largest first: their values sharpen the cut-off
    if steps and todo.any():
        idx = np.nonzero(todo)[0]
        cut = cutoff()
        values[idx] = _pursuit(X, M[:, idx], C[idx], alpha, idx, cut, steps)
        todo[idx] = values[idx] > cut
    order = by_bound()
    # exact values are computed many columns at a time (project_batch's cost grows far
    # slower than the number of columns), in order of decreasing bound
    chunk = max(EVALUATE_CHUNK, 2 * (want or 0))
    for first in range(0, order.size, chunk):
        if want is not None and len(found) >= want:
            if values[order[first]] <= cutoff():
                break
            if limit is not None and evaluated >= limit:
                break
        evaluate(order[first:first + chunk])
    return values, exact, alpha, evaluated


def _pursuit(X: np.ndarray, M: np.ndarray, C: np.ndarray, alpha: np.ndarray, idx: np.ndarray,
             threshold: float, steps: int) -> np.ndarray:
    """Greedy coordinate steps on ``min_{α ≥ 0} ||C_i + X^T S_i α_i||_F`` for the patterns
    ``idx`` (``M``, ``C`` already restricted to them), all at once.

    Each step raises, in every column of a pattern still above the threshold, the
    coordinate ``k`` with the most negative normalised gradient ``s_k x_k^T r / ||x_k||``
    by its exact line-minimising amount (non-negative matching pursuit) — one GEMM
    ``S ∘ (X R)`` for all columns. ``alpha[idx]`` is updated; returns the attained
    norms ``||C_i + X^T S_i α_i||_F``.
    """
    p, d, c = C.shape
    n = X.shape[0]
    xn2 = np.maximum(np.einsum("nd,nd->n", X, X), np.finfo(np.float64).tiny)
    inv = (1.0 / np.sqrt(xn2))[:, None]
    S = np.repeat(signs(M), c, axis=1)  # (n, Q): column q = (pattern q // c, output q % c)
    A = np.ascontiguousarray(alpha[idx].transpose(1, 0, 2).reshape(n, p * c))
    R = C.transpose(1, 0, 2).reshape(d, p * c) + X.T @ (S * A)
    owner = np.repeat(np.arange(p), c)
    sq = np.einsum("dq,dq->q", R, R)

    def alive(cols: np.ndarray) -> np.ndarray:
        return np.bincount(owner, sq, minlength=p)[owner[cols]] > threshold ** 2

    cols = np.nonzero(alive(np.arange(p * c)))[0]  # live columns, worked on compactly
    Rl, Al, Sl = R[:, cols], A[:, cols], S[:, cols]
    for _ in range(steps):
        if cols.size == 0:
            break
        G = X @ Rl
        G *= Sl  # gradient of ½||r||² in α, per column
        G *= inv  # normalised: the best single-coordinate decrease is (G_k / ||x_k||)²
        k = np.argmin(G, axis=0)
        j = np.arange(cols.size)
        step = np.maximum(-G[k, j], 0.0) * inv[k, 0]  # = max(−s_k x_k^T r, 0) / ||x_k||²
        Al[k, j] += step
        Rl += X[k].T * (Sl[k, j] * step)
        sq[cols] = np.einsum("dq,dq->q", Rl, Rl)
        keep = alive(cols)
        if not keep.all():
            A[:, cols[~keep]], R[:, cols[~keep]] = Al[:, ~keep], Rl[:, ~keep]
            cols, Rl, Al, Sl = cols[keep], Rl[:, keep], Al[:, keep], Sl[:, keep]
    A[:, cols] = Al
    alpha[idx] = A.reshape(n, p, c).transpose(1, 0, 2)
    return np.sqrt(np.bincount(owner, sq, minlength=p))
