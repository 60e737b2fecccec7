"""Structured linear algebra of the pattern matrices (``docs/math/notation.md``).

Weights of ``P`` groups for ``c`` outputs are stored as an array ``W`` of shape
``(P, d, c)``: ``W[i]`` is the d×c block ``w_i``. With the boolean pattern matrix
``M`` (n × P) the two maps every formulation needs are GEMMs, never P dense n×n
matrices:

* ``forward``:  ``Σ_i D_i X W_i``            = ``rowsum(M ∘ (X W_k))`` per output k,
* ``adjoint``:  ``[X^T D_i R]_i`` (P × d × c) = ``X^T (M ∘ r_k 1^T)`` per output k.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = [
    "forward",
    "adjoint",
    "group_norms",
    "design_matrix",
    "masked_gram",
    "as_blocks",
]


def as_blocks(W: np.ndarray, P: int, d: int) -> np.ndarray:
    """View weights given as (P, d) or (P, d, c) as a (P, d, c) array."""
    W = np.asarray(W, dtype=np.float64)
    if W.ndim == 2:
        W = W[:, :, None]
    if W.ndim != 3 or W.shape[:2] != (P, d):
        raise ValueError(f"weights must have shape ({P}, {d}[, c]); got {W.shape}")
    return W


def _float_masks(M: np.ndarray) -> np.ndarray:
    """``M`` as float64 (no copy when it already is: pass a cached float copy in loops)."""
    return M if M.dtype == np.float64 else M.astype(np.float64)


def forward(X: np.ndarray, M: np.ndarray, W: np.ndarray) -> np.ndarray:
    """``Σ_i D_i X W_i`` for W of shape (P, d, c); returns (n, c).

    One GEMM: ``T = M · W.reshape(P, d·c)`` (n × d·c), then ``Ŷ_{nk} = Σ_j X_{nj} T_{n,jk}``
    — no n × P temporary.
    """
    P, d, c = W.shape
    n = X.shape[0]
    T = _float_masks(M) @ W.reshape(P, d * c)
    if c == 1:
        T *= X
        return T.sum(axis=1, keepdims=True)
    return np.einsum("nj,njk->nk", X, T.reshape(n, d, c))


def adjoint(X: np.ndarray, M: np.ndarray, R: np.ndarray) -> np.ndarray:
    """All correlations ``X^T D_i R`` at once; R is (n, c), returns (P, d, c).

    One GEMM: ``Mᵀ B`` with ``B_{n, jk} = X_{nj} R_{nk}`` (n × d·c).
    """
    n, d = X.shape
    c = R.shape[1]
    if c == 1:
        B = X * R
    else:
        B = (X[:, :, None] * R[:, None, :]).reshape(n, d * c)
    Mf = _float_masks(M)
    return (Mf.T @ B).reshape(Mf.shape[1], d, c)


def group_norms(W: np.ndarray) -> np.ndarray:
    """Frobenius norm of each d×c block of W (P, d, c) → (P,)."""
    return np.sqrt(np.einsum("pdc,pdc->p", W, W))


def design_matrix(X: np.ndarray, M: np.ndarray) -> sp.csc_matrix:
    """The sparse ``A = [D_1 X, …, D_P X]`` (n × dP), group i in columns i·d … i·d+d−1."""
    n, d = X.shape
    P = M.shape[1]
    rows, pats = np.nonzero(M)  # active (row, pattern) pairs
    r = np.repeat(rows, d)
    cols = (pats[:, None] * d + np.arange(d)[None, :]).ravel()
    vals = X[rows].ravel()
    A = sp.csc_matrix((vals, (r, cols)), shape=(n, d * P))
    A.eliminate_zeros()
    return A


def masked_gram(X: np.ndarray, M: np.ndarray, eta: np.ndarray, Z: np.ndarray | None = None,
                MZ: np.ndarray | None = None) -> np.ndarray:
    """``K_η = Σ_i η_i D_i X X^T D_i = (X X^T) ∘ (M diag(η) M^T)`` in O(n²P).

    With ``Z`` and its masks ``MZ`` (m × P) returns the cross kernel
    ``(Z X^T) ∘ (MZ diag(η) M^T)`` (m × n) for predictions on new points.
    """
    Mf = M.astype(np.float64, copy=False)
    if Z is None:
        return (X @ X.T) * ((Mf * eta) @ Mf.T)
    MZf = np.asarray(MZ, dtype=np.float64)
    return (Z @ X.T) * ((MZf * eta) @ Mf.T)
