"""Non-convex two-layer networks recovered from convex solutions.

Both networks are trained with the weight-decay objective

    L = ½ ||f(X) − y||² + (λ/2) Σ_j (||u_j||² + ||a_j||²),

and both maps below are exact: the network's ``L`` equals the convex objective of
the weights it was built from (``docs/math/gated_relu.md``, ``docs/math/relu.md``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .data import add_bias, validate_X, validate_xy
from .ops import group_norms

__all__ = ["GatedReLUNetwork", "ReLUNetwork", "split_blocks", "prune_threshold", "PRUNE_RATIO"]

#: Groups below this fraction of the largest group norm are interior-point noise.
PRUNE_RATIO = 1e-6


def split_blocks(
    W: np.ndarray, threshold: float, *, columns: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Factor each d×c block ``W_i`` into neurons ``u a^T`` with ``||u|| = ||a||``.

    For one output ``u = w/√||w||``, ``a = √||w||`` so ``(||u||² + a²)/2 = ||w||``.
    For ``c`` outputs each block is split by its SVD ``Σ_k s_k u_k v_k^T`` into neurons
    ``(√s_k u_k, √s_k v_k)``; their penalty is the nuclear norm of ``W_i``, which equals
    the Frobenius norm of the convex program exactly when the block has rank one.
    With ``columns=True`` each column ``W_i[:, k]`` becomes its own neuron feeding output
    ``k`` only (needed for ReLU neurons, whose cone constraint holds column by column).
    Blocks (and singular values or columns) at or below ``threshold`` are pruned.

    Returns ``(group, U, A)``: the group index of each neuron, first-layer weights
    (d × m) and second-layer weights (m × c).
    """
    P, d, c = W.shape
    norms = group_norms(W)
    groups, us, as_ = [], [], []
    for i in np.flatnonzero(norms > threshold):
        if c == 1:
            s = np.sqrt(norms[i])
            groups.append(i)
            us.append(W[i, :, 0] / s)
            as_.append(np.array([s]))
            continue
        if columns:
            sv = np.linalg.norm(W[i], axis=0)
            u, vt = W[i] / np.where(sv > 0, sv, 1.0), np.eye(c)
        else:
            u, sv, vt = np.linalg.svd(W[i], full_matrices=False)
        for k in np.flatnonzero(sv > threshold):
            r = np.sqrt(sv[k])
            groups.append(i)
            us.append(u[:, k] * r)
            as_.append(vt[k] * r)
    if not groups:
        return np.zeros(0, dtype=np.int64), np.zeros((d, 0)), np.zeros((0, c))
    return np.asarray(groups), np.column_stack(us), np.vstack(as_)


def prune_threshold(*blocks: np.ndarray, ratio: float = PRUNE_RATIO) -> float:
    """``ratio · max_i ||W_i||`` over all given block arrays (``docs/math/fast_methods.md``)."""
    return ratio * max((group_norms(W).max(initial=0.0) for W in blocks), default=0.0)


@dataclass(frozen=True, repr=False)
class _TwoLayer:
    U: np.ndarray  # (d, m) first-layer weights (bias entry last when bias=True)
    A: np.ndarray  # (m, c) second-layer weights
    bias: bool = False
    single_output: bool = True

    @property
    def neurons(self) -> int:
        return int(self.U.shape[1])

    @property
    def outputs(self) -> int:
        return int(self.A.shape[1])

    def _inputs(self, X: np.ndarray) -> np.ndarray:
        d = self.U.shape[0] - int(self.bias)
        X = validate_X(X, "X", d=d)
        return add_bias(X) if self.bias else X

    def _hidden(self, Xb: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Network output ``f(X)``: shape (n,) for one output, else (n, c)."""
        out = self._hidden(self._inputs(X)) @ self.A
        return out[:, 0] if self.single_output else out

    def penalty(self) -> float:
        """``½ Σ_j (||u_j||² + ||a_j||²)``."""
        return 0.5 * float(np.sum(self.U**2) + np.sum(self.A**2))

    def objective(self, X: np.ndarray, y: np.ndarray, lam: float) -> float:
        """Weight-decay training objective ``½||f(X) − y||² + (λ/2) Σ_j (||u_j||² + ||a_j||²)``."""
        X, Y = validate_xy(X, y)
        R = self._hidden(self._inputs(X)) @ self.A - Y
        return 0.5 * float(np.sum(R * R)) + lam * self.penalty()

    def _repr_extra(self) -> str:
        return ""

    def __repr__(self) -> str:
        d = self.U.shape[0] - int(self.bias)
        return (f"{type(self).__name__}(neurons={self.neurons}, d={d}, outputs={self.outputs}, "
                f"bias={self.bias}{self._repr_extra()})")


@dataclass(frozen=True, repr=False)
class GatedReLUNetwork(_TwoLayer):
    """``f(x) = Σ_j 1[g_j^T x ≥ 0] (x^T u_j) a_j`` with fixed gates ``g_j``.

    Trained with ``½||f(X) − y||² + (λ/2) Σ_j (||u_j||² + ||a_j||²)`` (:meth:`objective`).

    Attributes
    ----------
    U : ndarray of shape (d, m)
        First-layer weights ``u_j``, one column per neuron.
    A : ndarray of shape (m, c)
        Second-layer weights ``a_j``, one row per neuron.
    gates : ndarray of shape (d, m)
        The fixed gates ``g_j``.
    bias : bool
        A one is appended to every input before gates and first layer act (``d``
        counts it).
    single_output : bool
        ``predict`` returns shape (n,) rather than (n, 1).
    """

    gates: np.ndarray = None  # type: ignore[assignment]

    def _hidden(self, Xb: np.ndarray) -> np.ndarray:
        return ((Xb @ self.gates) >= 0) * (Xb @ self.U)

    @classmethod
    def from_weights(cls, W: np.ndarray, gates: np.ndarray, *, bias: bool = False,
                     single_output: bool = True, prune: float = PRUNE_RATIO) -> GatedReLUNetwork:
        """Neurons from the group-lasso weights ``W`` (P, d, c) and pattern gates (d, P)."""
        group, U, A = split_blocks(W, prune_threshold(W, ratio=prune))
        return cls(U=U, A=A, gates=np.asarray(gates)[:, group], bias=bias,
                   single_output=single_output)


@dataclass(frozen=True, repr=False)
class ReLUNetwork(_TwoLayer):
    """``f(x) = Σ_j (x^T u_j)_+ a_j``.

    Trained with ``½||f(X) − y||² + (λ/2) Σ_j (||u_j||² + ||a_j||²)`` (:meth:`objective`).

    Attributes
    ----------
    U : ndarray of shape (d, m)
        First-layer weights ``u_j``, one column per neuron.
    A : ndarray of shape (m, c)
        Second-layer weights ``a_j``, one row per neuron.
    bias : bool
        A one is appended to every input before the first layer acts (``d`` counts it).
    single_output : bool
        ``predict`` returns shape (n,) rather than (n, 1).
    """

    def _hidden(self, Xb: np.ndarray) -> np.ndarray:
        return np.maximum(Xb @ self.U, 0.0)

    @classmethod
    def from_weights(cls, V: np.ndarray, U: np.ndarray, *, bias: bool = False,
                     single_output: bool = True, prune: float = PRUNE_RATIO) -> ReLUNetwork:
        """Neurons from the cone program's ``(v_i, u_i)`` blocks (P, d, c) (``docs/math/relu.md``).

        ``v_i → (v_i/√||v_i||, +√||v_i||)`` and ``u_i → (u_i/√||u_i||, −√||u_i||)``. With
        several outputs every column is its own neuron, so the network's penalty is
        ``Σ_k ||v_i[:, k]||`` ≥ the Frobenius norm of the convex program (equal for c = 1).
        """
        threshold = prune_threshold(V, U, ratio=prune)
        _, Uv, Av = split_blocks(V, threshold, columns=True)
        _, Uu, Au = split_blocks(U, threshold, columns=True)
        return cls(U=np.hstack([Uv, Uu]), A=np.vstack([Av, -Au]), bias=bias,
                   single_output=single_output)
