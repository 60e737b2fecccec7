"""The polyhedral cones of the ReLU program (SPEC §2), in numpy.

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
  left-hand side of the dual constraint of SPEC §2, whose multiplier is ``a*``:
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
           "dual_norms"]


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
    for i, k in zip(*np.nonzero(todo), strict=True):
        B = (X * S[:, i:i + 1]).T  # (d, n): columns s_k x_k
        a = _nnls(B, W[i, :, k])
        alpha[i, :, k] = a
        Pi[i, :, k] = W[i, :, k] + B @ a
    return Pi, alpha


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
        res = lsq_linear(Bs, b, bounds=(0.0, np.inf), method="bvls")
        if not res.success:
            return a
        x = np.maximum(res.x, 0.0)
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
    """Left-hand sides of the dual constraints of SPEC §2 for given multipliers.

    ``(||X^T (D_i Z + S_i α_i)||_F, ||X^T (−D_i Z + S_i β_i)||_F)`` for every i; each (P,).
    ``Z`` is (n, c); ``alpha``, ``beta`` are (P, n, c).
    """
    Mf = M.T.astype(np.float64)[:, :, None]  # (P, n, 1)
    S = signs(M).T[:, :, None]
    DZ = Mf * Z[None, :, :]
    ga = np.einsum("nd,pnc->pdc", X, DZ + S * alpha, optimize=True)
    gb = np.einsum("nd,pnc->pdc", X, -DZ + S * beta, optimize=True)
    return group_norms(ga), group_norms(gb)
