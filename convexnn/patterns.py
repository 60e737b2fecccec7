"""Activation patterns of a two-layer network (``docs/math/notation.md``).

A gate ``g ∈ R^d`` induces the pattern ``D = diag(1[X g ≥ 0])`` (ties count as
active). A :class:`Patterns` record stacks the distinct non-zero patterns as the
columns of the boolean ``n × P`` matrix ``masks`` together with one representative
gate per pattern and how many drawn gates produced it.

Three ways to get them:

* :func:`sample_patterns` — Gaussian gates ``g ~ N(0, I_d)``; the convex program is
  then exact among networks whose patterns lie in the sample (scope ``"sampled"``).
* :func:`patterns_from_gates` — patterns of given gates (e.g. a trained network's).
* :func:`enumerate_patterns` — every cell of the hyperplane arrangement
  ``{x_k^T g = 0}``; the convex program is then the exact non-convex training
  problem (scope ``"all"``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from itertools import combinations, islice

import numpy as np

from .errors import InvalidInputError, ProblemTooLargeError
from .memory import require_memory
from .validation import integer, validate_X
from .validation import seed as check_seed

__all__ = [
    "Patterns",
    "sample_patterns",
    "patterns_from_gates",
    "enumerate_patterns",
    "iter_arrangement",
    "arrangement_size",
    "Arrangement",
    "count_arrangement_cells",
    "unique_columns",
    "data_fingerprint",
]

_RAY_TOL = 1e-9
_DEFAULT_MAX_PATTERNS = 100_000


@dataclass(frozen=True, repr=False)
class Patterns:
    """Distinct non-zero activation patterns of a data matrix.

    Attributes
    ----------
    masks : ndarray of bool, shape (n, P)
        Column ``i`` is the diagonal of ``D_i = diag(1[X g_i ≥ 0])``.
    gates : ndarray, shape (d, P)
        A gate realising each pattern (the first one drawn).
    counts : ndarray of int, shape (P,)
        How many drawn gates produced each pattern (duplicates merged).
    draws : int
        Number of gates drawn in total, including those whose pattern was all-zero
        and dropped; ``counts / draws`` is the Monte Carlo pattern frequency.
    method : {"sample", "gates", "enumerate", "augmented"}
        How the set was made: Gaussian gates, given gates, every cell of the arrangement,
        or a working set grown by pattern augmentation (``solve(..., augment=True)``).
    scope : {"sampled", "all"}
        ``"all"`` when every cell of the arrangement is present. This describes the pattern
        set; what a *solution* is optimal among is its certificate's scope — an augmented
        working set (scope ``"sampled"``) can carry a certificate of scope ``"all"`` when the
        check over every pattern of the arrangement passed.
    probabilities : ndarray or None
        Exact Gaussian probability of each pattern when known (d ≤ 2 enumeration).
        Not renormalised after dropping the all-zero pattern (``docs/math/ntk.md``).
    seed : int or None
    fingerprint : str
        :func:`data_fingerprint` of the data the patterns were built on. Scope ``"all"``
        (and exact probabilities) hold for those data only: patterns used on other data
        count as sampled there (see :func:`convexnn.problem.prepare`).
    """

    masks: np.ndarray
    gates: np.ndarray
    counts: np.ndarray
    draws: int
    method: str
    scope: str
    probabilities: np.ndarray | None = None
    seed: int | None = None
    fingerprint: str = ""

    @property
    def n(self) -> int:
        return int(self.masks.shape[0])

    @property
    def d(self) -> int:
        return int(self.gates.shape[0])

    @property
    def P(self) -> int:
        return int(self.masks.shape[1])

    def __len__(self) -> int:
        return self.P

    @property
    def frequencies(self) -> np.ndarray:
        """Monte Carlo frequencies ``counts / draws`` (zero pattern not renormalised away)."""
        return self.counts / max(self.draws, 1)

    @property
    def standard_errors(self) -> np.ndarray:
        """Standard errors of :attr:`frequencies`: ``√(f(1 − f)/draws)`` (binomial)."""
        f = self.frequencies
        return np.sqrt(f * (1.0 - f) / max(self.draws, 1))

    def masks_for(self, X: np.ndarray) -> np.ndarray:
        """Patterns of new points under the stored gates: ``1[X G ≥ 0]`` (m × P, bool)."""
        X = validate_X(X, "X", d=self.d)
        return (X @ self.gates) >= 0

    def subset(self, index: np.ndarray) -> Patterns:
        """The patterns at ``index`` (a working set); scope becomes ``"sampled"``."""
        index = np.asarray(index)
        probs = None if self.probabilities is None else self.probabilities[index]
        scope = self.scope if len(np.unique(index)) == self.P else "sampled"
        return replace(self, masks=self.masks[:, index], gates=self.gates[:, index],
                       counts=self.counts[index], probabilities=probs, scope=scope)

    def __repr__(self) -> str:
        active = self.masks.mean() if self.masks.size else 0.0
        return (
            f"Patterns(P={self.P}, n={self.n}, d={self.d}, method={self.method!r}, "
            f"scope={self.scope!r}, draws={self.draws}, mean_active={active:.3f})"
        )


def data_fingerprint(X: np.ndarray) -> str:
    """SHA-256 of the shape and float64 contents of ``X`` (with its bias column)."""
    import hashlib

    X = np.ascontiguousarray(X, dtype=np.float64)
    return hashlib.sha256(str(X.shape).encode() + X.tobytes()).hexdigest()


def unique_columns(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct columns of a boolean matrix, in order of first appearance.

    Returns ``(first, inverse, counts)``: indices of the first occurrence of each
    distinct column, the distinct-column id of every column, and multiplicities.
    """
    if masks.shape[1] == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    packed = np.ascontiguousarray(np.packbits(masks, axis=0).T)
    keys = packed.view(np.dtype((np.void, packed.shape[1]))).ravel()
    _, first, inverse, counts = np.unique(
        keys, return_index=True, return_inverse=True, return_counts=True
    )
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return first[order], rank[inverse.ravel()], counts[order]


def _from_gate_matrix(
    X: np.ndarray,
    G: np.ndarray,
    *,
    method: str,
    scope: str,
    weights: np.ndarray | None = None,
    seed: int | None = None,
) -> Patterns:
    masks = (X @ G) >= 0
    first, inverse, counts = unique_columns(masks)
    keep = masks[:, first].any(axis=0)  # drop the all-zero pattern (its kernel is 0)
    probs = None
    if weights is not None:
        probs = np.bincount(inverse, weights=weights, minlength=first.size)[keep]
    return Patterns(
        masks=np.ascontiguousarray(masks[:, first[keep]]),
        gates=np.ascontiguousarray(G[:, first[keep]]),
        counts=counts[keep].astype(np.int64),
        draws=int(G.shape[1]),
        method=method,
        scope=scope,
        probabilities=probs,
        seed=seed,
        fingerprint=data_fingerprint(X),
    )


def sample_patterns(X: np.ndarray, count: int, seed: int | None = 0) -> Patterns:
    """Patterns of ``count`` Gaussian gates ``g ~ N(0, I_d)``.

    Duplicates are merged (first gate kept, counts added) and the all-zero pattern
    dropped, so ``P ≤ count``. The frequencies ``counts / count`` estimate the Gaussian
    probabilities of the patterns (the NTK's weights).

    Parameters
    ----------
    X : array_like of shape (n, d)
        The inputs (with the bias column, if the model has one).
    count : int
        Number of gates to draw.
    seed : int or None, default 0
        Seed of the gates.

    Returns
    -------
    Patterns
        Scope ``"sampled"``: masks (n × P), one representative gate per pattern (d × P),
        counts.

    Examples
    --------
    >>> import convexnn as cn
    >>> X = cn.planted_relu(n=30, d=3, seed=0).X
    >>> pats = cn.sample_patterns(X, 50, seed=0)
    >>> pats.P <= 50 and pats.masks.shape == (30, pats.P)
    True
    """
    X = validate_X(X, "X")
    count = integer(count, "count", minimum=1)
    seed = check_seed(seed)
    n, d = X.shape
    # the gates, X·G, the boolean masks and their packed keys
    require_memory(8 * count * (d + n) + 2 * n * count, what="sample_patterns",
                   sizes={"n": n, "d": d, "count": count}, hint="draw fewer gates")
    rng = np.random.default_rng(seed)
    G = rng.standard_normal((X.shape[1], count))
    return _from_gate_matrix(X, G, method="sample", scope="sampled", seed=seed)


def patterns_from_gates(X: np.ndarray, G: np.ndarray) -> Patterns:
    """Patterns ``1[X g_j ≥ 0]`` of the given gates.

    Duplicates are merged and the all-zero pattern dropped, as in
    :func:`sample_patterns`.

    Parameters
    ----------
    X : array_like of shape (n, d)
        The inputs (with the bias column, if the model has one).
    G : array_like of shape (d, m) or (d,)
        The gates, one per column.

    Returns
    -------
    Patterns
        Scope ``"sampled"`` (method ``"gates"``).
    """
    X = validate_X(X, "X")
    G = np.asarray(G, dtype=np.float64)
    if G.ndim == 1:
        G = G[:, None]
    if G.ndim != 2 or G.shape[0] != X.shape[1]:
        raise InvalidInputError(
            f"G must have shape (d, m) with d = {X.shape[1]} (columns of X); got {G.shape}."
        )
    if G.shape[1] == 0 or not np.all(np.isfinite(G)):
        raise InvalidInputError("G must hold at least one finite gate.")
    return _from_gate_matrix(X, G, method="gates", scope="sampled")


# ---------------------------------------------------------------------------
# Exact enumeration of the central hyperplane arrangement {x_k^T g = 0}
# ---------------------------------------------------------------------------


def _normals(Xr: np.ndarray) -> np.ndarray:
    """Distinct hyperplane normals (unit rows, defined up to sign) of the non-zero rows."""
    norms = np.linalg.norm(Xr, axis=1)
    H = Xr[norms > 1e-12 * max(norms.max(initial=0.0), 1e-300)]
    if H.shape[0] == 0:
        return H
    H = H / np.linalg.norm(H, axis=1, keepdims=True)
    lead = np.argmax(np.abs(H) > 1e-9, axis=1)
    H = H * np.sign(H[np.arange(H.shape[0]), lead])[:, None]
    _, idx = np.unique(np.round(H, 9), axis=0, return_index=True)
    return H[np.sort(idx)]


def count_arrangement_cells(k: int, m: int) -> int:
    """Cells of ``k`` central hyperplanes in general position in ``R^m``.

    ``2 Σ_{j=0}^{m-1} C(k-1, j)`` — an upper bound for any central arrangement.
    """
    if k == 0:
        return 1
    return 2 * sum(math.comb(k - 1, j) for j in range(m))


def _sweep_2d(H: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Interior points and angular measures of the cells of lines through 0 in R²."""
    if H.shape[0] == 0:
        return np.array([[1.0], [0.0]]), np.array([1.0])
    phi = np.arctan2(H[:, 1], H[:, 0])
    bounds = np.sort(np.mod(np.concatenate([phi + np.pi / 2, phi - np.pi / 2]), 2 * np.pi))
    nxt = np.append(bounds[1:], bounds[0] + 2 * np.pi)
    length = nxt - bounds
    keep = length > 1e-13
    mid = (bounds + nxt)[keep] / 2
    return np.vstack([np.cos(mid), np.sin(mid)]), length[keep] / (2 * np.pi)


def _cell_points(H: np.ndarray, m: int, memo: dict) -> np.ndarray:
    """Interior points (m × C, unit columns) of every cell of the essential arrangement H."""
    if m == 1:
        return np.array([[1.0, -1.0]])
    if m == 2:
        return _sweep_2d(H)[0]
    k = H.shape[0]
    return _ray_points(H, m, np.array(list(combinations(range(k), m - 1)), dtype=np.int64),
                       memo)


def _subset_batches(k: int, size: int, batch: int) -> Iterator[np.ndarray]:
    """The ``size``-subsets of ``range(k)`` in lexicographic order, ``batch`` at a time."""
    it = combinations(range(k), size)
    while True:
        block = list(islice(it, batch))
        if not block:
            return
        yield np.array(block, dtype=np.int64)


def _ray_points(H: np.ndarray, m: int, subsets: np.ndarray, memo: dict) -> np.ndarray:
    """Points in every cell next to the rays where the hyperplanes ``subsets`` (B, m−1)
    meet (m ≥ 3): every cell touches such a ray, so all subsets give every cell."""
    k = H.shape[0]
    HS = H[subsets]  # (B, m-1, m)
    _, s, Vt = np.linalg.svd(HS)
    independent = s[:, -1] > 1e-10
    subsets, HS, Vt = subsets[independent], HS[independent], Vt[independent]
    rays = Vt[:, -1, :]  # (B, m): the line where the m-1 hyperplanes meet
    dots = np.abs(H @ rays.T)  # (k, B)
    on_ray = dots <= _RAY_TOL
    generic = on_ray.sum(axis=0) == m - 1
    out: list[np.ndarray] = []

    # General-position rays: the local cells are the 2^(m-1) sign orthants of H_S.
    if generic.any():
        signs = np.array(np.meshgrid(*[[-1.0, 1.0]] * (m - 1), indexing="ij")).reshape(m - 1, -1)
        pinv = np.linalg.pinv(HS[generic])  # (b, m, m-1)
        delta = pinv @ signs  # (b, m, 2^(m-1))
        delta /= np.linalg.norm(delta, axis=1, keepdims=True)
        dist = np.where(on_ray[:, generic], np.inf, dots[:, generic]).min(axis=0, initial=np.inf)
        eps = np.minimum(0.5 * dist, 0.5)[:, None, None]
        r = rays[generic][:, :, None]
        for sgn in (1.0, -1.0):
            pts = sgn * r + eps * delta  # (b, m, 2^(m-1))
            out.append(pts.transpose(1, 0, 2).reshape(m, -1))

    # Degenerate rays (more than m-1 hyperplanes through them): recurse on the local
    # arrangement in the orthogonal complement of the ray.
    for b in np.flatnonzero(~generic):
        T = np.flatnonzero(on_ray[:, b])
        key = tuple(T)
        if key in memo:
            continue
        memo[key] = True
        r = rays[b]
        Q = Vt[b, :-1, :]  # (m-1, m) orthonormal basis of r^⊥
        local = H[T] @ Q.T
        local /= np.linalg.norm(local, axis=1, keepdims=True)
        sub = _cell_points(_normals(local), m - 1, {})
        delta = Q.T @ sub
        delta /= np.linalg.norm(delta, axis=0, keepdims=True)
        rest = np.delete(np.arange(k), T)
        dist = dots[rest, b].min(initial=np.inf)
        eps = min(0.5 * dist, 0.5)
        for sgn in (1.0, -1.0):
            out.append(sgn * r[:, None] + eps * delta)
    return np.hstack(out) if out else np.zeros((m, 0))


def _reduced_normals(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """``X`` reduced to its row space: the basis (d × rank), the distinct hyperplane
    normals there, and the rank."""
    n, d = X.shape
    _, s, Vt = np.linalg.svd(X, full_matrices=False)
    rank = int(np.sum(s > s[0] * max(n, d) * np.finfo(float).eps)) if s[0] > 0 else 0
    if rank == 0:
        raise InvalidInputError("X is all zeros: every gate gives the same pattern.")
    basis = Vt[:rank].T  # (d, rank): gates live in the row space of X
    return basis, _normals(X @ basis), rank


def arrangement_size(X: np.ndarray) -> int:
    """The bound ``2 Σ_{j<r} C(k−1, j)`` on the cells of the arrangement of ``X`` (k
    distinct hyperplanes, rank r) that :func:`enumerate_patterns` checks against."""
    X = validate_X(X, "X")
    _, H, rank = _reduced_normals(X)
    return count_arrangement_cells(H.shape[0], rank)


def iter_arrangement(X: np.ndarray, *, max_patterns: int = _DEFAULT_MAX_PATTERNS,
                     chunk: int = 4096) -> Iterator[Patterns]:
    """Every cell of the arrangement ``{x_kᵀ g = 0}`` of ``X``, in chunks of distinct
    patterns: the same cells as :func:`enumerate_patterns`, without holding them all.

    For rank ≥ 3 the rays where r − 1 hyperplanes meet are taken ``chunk`` subsets at a
    time (each gives the cells around its ray, as in :func:`enumerate_patterns`); a
    chunk's new patterns are yielded (scope ``"sampled"``: each chunk is a part of the
    arrangement) and remembered as packed bits (n/8 bytes per cell) so that no cell is
    yielded twice. Memory: the chunk's masks (``chunk · 2^r · n`` booleans) and the
    packed keys of the cells seen. For rank ≤ 2 the exact sweep gives one chunk.

    Raises
    ------
    ProblemTooLargeError
        When the predicted number of cells exceeds ``max_patterns`` (as
        :func:`enumerate_patterns`).
    """
    X = validate_X(X, "X")
    max_patterns = integer(max_patterns, "max_patterns", minimum=1)
    chunk = integer(chunk, "chunk", minimum=1)
    n, d = X.shape
    basis, H, rank = _reduced_normals(X)
    predicted = count_arrangement_cells(H.shape[0], rank)
    if predicted > max_patterns:
        raise ProblemTooLargeError(
            f"the arrangement of X ({n} points, rank {rank}) has up to {predicted:,} cells, "
            f"above max_patterns={max_patterns:,}; raise max_patterns (the cells are "
            f"checked {chunk:,} rays at a time, memory does not grow with it).")
    if rank <= 2:
        yield replace(enumerate_patterns(X, max_patterns=max_patterns), scope="sampled")
        return
    require_memory(2 * chunk * 2 ** rank * (n + 8 * d), what="iter_arrangement",
                   sizes={"n": n, "rank": rank, "chunk": chunk}, hint="use a smaller chunk")
    fingerprint = data_fingerprint(X)
    width = (n + 7) // 8
    seen = np.zeros(0, dtype=np.dtype((np.void, width)))  # sorted packed keys of the cells
    memo: dict = {}
    for subsets in _subset_batches(H.shape[0], rank - 1, chunk):
        G = basis @ _ray_points(H, rank, subsets, memo)
        masks = (X @ G) >= 0
        first, _, _ = unique_columns(masks)
        first = first[masks[:, first].any(axis=0)]  # the all-zero pattern is no cell
        keys = np.ascontiguousarray(np.packbits(masks[:, first], axis=0).T).view(
            seen.dtype).ravel()
        at = np.searchsorted(seen, keys)
        known = at < seen.size
        known[known] = seen[at[known]] == keys[known]
        if not known.all():
            idx = first[~known]
            seen = np.sort(np.concatenate([seen, keys[~known]]))
            yield Patterns(masks=np.ascontiguousarray(masks[:, idx]),
                           gates=np.ascontiguousarray(G[:, idx]),
                           counts=np.ones(idx.size, dtype=np.int64), draws=int(idx.size),
                           method="enumerate", scope="sampled", fingerprint=fingerprint)


class Arrangement:
    """The cells of the arrangement of ``X`` for repeated scans (pattern augmentation).

    The first scan runs :func:`iter_arrangement`; when the cells fit in ``keep_bytes``
    (their packed masks, n/8 bytes each, and gates) they are kept, packed, and later
    scans unpack them chunk by chunk; otherwise every scan enumerates them again. Either
    way a scan never holds more than one chunk of boolean masks.
    """

    def __init__(self, X: np.ndarray, *, max_patterns: int = _DEFAULT_MAX_PATTERNS,
                 chunk: int = 4096, keep_bytes: int = 2**28):
        self.X = validate_X(X, "X")
        self.max_patterns = integer(max_patterns, "max_patterns", minimum=1)
        self.chunk = chunk
        n, d = self.X.shape
        self.size = arrangement_size(self.X)
        self._keep = self.size * ((n + 7) // 8 + 8 * d) <= keep_bytes
        self._stored: list[tuple[np.ndarray, np.ndarray]] | None = None
        self.cells: int | None = None  # known after the first scan
        self.fingerprint = data_fingerprint(self.X)

    def chunks(self) -> Iterator[Patterns]:
        """The cells, chunk by chunk (each a :class:`Patterns` of scope ``"sampled"``)."""
        if self._stored is not None:
            n = self.X.shape[0]
            for packed, gates in self._stored:
                masks = np.unpackbits(packed, axis=0, count=n).astype(bool)
                yield Patterns(masks=masks, gates=gates,
                               counts=np.ones(gates.shape[1], dtype=np.int64),
                               draws=int(gates.shape[1]), method="enumerate",
                               scope="sampled", fingerprint=self.fingerprint)
            return
        stored: list[tuple[np.ndarray, np.ndarray]] = []
        cells = 0
        for part in iter_arrangement(self.X, max_patterns=self.max_patterns, chunk=self.chunk):
            cells += part.P
            if self._keep:
                stored.append((np.packbits(part.masks, axis=0), part.gates))
            yield part
        self.cells = cells
        if self._keep:
            self._stored = stored


def enumerate_patterns(X: np.ndarray, *, max_patterns: int = _DEFAULT_MAX_PATTERNS) -> Patterns:
    """Every activation pattern of ``X``: one per cell of the arrangement ``{x_k^T g = 0}``.

    d = 2 (after reducing ``X`` to its row space): an exact angular sweep — each arc
    between neighbouring boundary angles ``φ_k ± π/2`` is one cell, with Gaussian
    probability arc/2π. d ≥ 3: every cell touches a ray where d−1 hyperplanes meet;
    each such ray is perturbed into all its neighbouring cells (rays where more
    hyperplanes meet are handled exactly by recursing on the local arrangement).

    Parameters
    ----------
    X : array_like of shape (n, d)
        The inputs (with the bias column, if the model has one).
    max_patterns : int, default 100000
        The largest number of cells enumerated.

    Returns
    -------
    Patterns
        Scope ``"all"``: every non-zero pattern, with exact probabilities when d = 2.
        A program over them is exact over networks of any width (``docs/math/relu.md``).

    Raises
    ------
    ProblemTooLargeError
        When the predicted number of cells, ``2 Σ_{j<d} C(k−1, j)`` for ``k`` distinct
        hyperplanes, exceeds ``max_patterns``.

    Examples
    --------
    >>> import convexnn as cn
    >>> X = cn.planted_relu(n=10, d=2, seed=0).X
    >>> cn.enumerate_patterns(X).P  # 2n cells of 10 lines through the origin
    20
    """
    X = validate_X(X, "X")
    n, d = X.shape
    basis, H, rank = _reduced_normals(X)
    predicted = count_arrangement_cells(H.shape[0], rank)
    if predicted > max_patterns:
        raise ProblemTooLargeError(
            f"enumerating all patterns of X ({n} points, rank {rank}) would give up to "
            f"{predicted:,} cells, above max_patterns={max_patterns:,}. Use "
            f"sample_patterns(X, count) or raise max_patterns."
        )
    if rank == 2:
        pts, probs = _sweep_2d(H)
    else:
        pts, probs = _cell_points(H, rank, {}), None
    G = basis @ pts
    return _from_gate_matrix(X, G, method="enumerate", scope="all", weights=probs)
