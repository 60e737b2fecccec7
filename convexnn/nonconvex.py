"""Training the non-convex networks directly, by full-batch gradient methods.

The baseline the certified optima are compared with. Both networks are trained on the
weight-decay objective of ``docs/math/gated_relu.md`` and ``docs/math/relu.md``,

    L(U, A) = ½ ||f(X) − Y||² + (λ/2) Σ_j (||u_j||² + ||a_j||²),

with ``f(x) = Σ_j 1[g_jᵀx ≥ 0] (xᵀu_j) a_jᵀ`` (gated ReLU, fixed Gaussian gates ``g_j``)
or ``f(x) = Σ_j (xᵀu_j)_+ a_jᵀ`` (ReLU). Whatever the optimiser reaches, its objective is
that of a feasible network, so it is never below the certified global optimum of the
matching convex program (the ReLU program over all patterns, or the gated program over
the patterns of the gates); the gap between the two is what training left on the table.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import InvalidInputError
from .networks import GatedReLUNetwork, ReLUNetwork
from .validation import choice, integer, non_negative, positive, validate_xy
from .validation import seed as valid_seed

__all__ = ["TrainResult", "train_network", "objective_and_gradient", "KINDS", "OPTIMIZERS",
           "ADAM_BETAS", "ADAM_EPS", "MAX_EPOCHS"]

#: Network kinds: the gated ReLU network (fixed gates) and the ReLU network.
KINDS = ("gated_relu", "relu")
#: Optimisers: Adam (default) and plain gradient descent.
OPTIMIZERS = ("adam", "gd")
#: Adam's decay rates of the first and second moment estimates.
ADAM_BETAS = (0.9, 0.999)
#: Adam's denominator guard.
ADAM_EPS = 1e-8
#: The largest number of epochs accepted (every loop is bounded).
MAX_EPOCHS = 10_000_000


@dataclass(frozen=True, eq=False)
class TrainResult:
    """The outcome of :func:`train_network`.

    Attributes
    ----------
    kind : {"gated_relu", "relu"}
        The network trained.
    network : GatedReLUNetwork or ReLUNetwork
        The trained network (its ``objective(X, y, lam)`` is ``objectives[-1]``).
    objectives : ndarray of shape (epochs + 1,)
        The training objective ``½||f(X) − y||² + (λ/2) Σ_j (||u_j||² + ||a_j||²)`` at the
        initial point and after every epoch.
    lam : float
        The weight decay ``λ``.
    width : int
        The number of hidden neurons ``m``.
    epochs : int
        Full-batch gradient steps taken.
    lr : float
        The step size.
    seed : int or None
        The seed of the initial weights (and of the gates).
    optimizer : {"adam", "gd"}
        The optimiser.
    seconds : float
        Wall-clock time of the training loop.
    """

    kind: str
    network: GatedReLUNetwork | ReLUNetwork
    objectives: np.ndarray
    lam: float
    width: int
    epochs: int
    lr: float
    seed: int | None
    optimizer: str
    seconds: float

    @property
    def objective(self) -> float:
        """The final training objective."""
        return float(self.objectives[-1])

    @property
    def best_objective(self) -> float:
        """The smallest training objective met along the run."""
        return float(np.min(self.objectives))

    def __repr__(self) -> str:
        return (f"TrainResult({self.kind}, width={self.width}, {self.optimizer}, "
                f"lr={self.lr:g}, {self.epochs} epochs, seed={self.seed}: objective "
                f"{self.objectives[0]:.6g} → {self.objective:.10g}, {self.seconds:.2f} s)")


def _masks(kind: str, X: np.ndarray, XU: np.ndarray, gates: np.ndarray | None) -> np.ndarray:
    if kind == "gated_relu":
        return (X @ gates >= 0).astype(np.float64)
    return (XU > 0).astype(np.float64)


def objective_and_gradient(kind: str, X: np.ndarray, Y: np.ndarray, lam: float,
                           U: np.ndarray, A: np.ndarray, gates: np.ndarray | None = None
                           ) -> tuple[float, np.ndarray, np.ndarray]:
    """The training objective and its gradient in ``(U, A)``.

    With ``H = mask ∘ (XU)`` (``mask = 1[XG ≥ 0]`` for gated ReLU, ``1[XU > 0]`` for ReLU)
    and the residual ``R = HA − Y``,

    ``L = ½||R||² + (λ/2)(||U||² + ||A||²)``, ``∂L/∂A = HᵀR + λA`` and
    ``∂L/∂U = Xᵀ((RAᵀ) ∘ mask) + λU``.

    For ReLU at a kink (``xᵀu_j = 0``) this is the subgradient with slope 0.

    Parameters
    ----------
    kind : {"gated_relu", "relu"}
        The network.
    X : ndarray of shape (n, d)
        Inputs (append a column of ones for a bias).
    Y : ndarray of shape (n, c)
        Targets.
    lam : float
        Weight decay ``λ ≥ 0``.
    U : ndarray of shape (d, m)
        First-layer weights, one column per neuron.
    A : ndarray of shape (m, c)
        Second-layer weights.
    gates : ndarray of shape (d, m), optional
        The fixed gates (gated ReLU only).

    Returns
    -------
    value : float
        ``L(U, A)``.
    grad_U : ndarray of shape (d, m)
        ``∂L/∂U``.
    grad_A : ndarray of shape (m, c)
        ``∂L/∂A``.
    """
    XU = X @ U
    mask = _masks(kind, X, XU, gates)
    H = mask * XU
    R = H @ A - Y
    value = 0.5 * float(np.sum(R * R)) + 0.5 * lam * float(np.sum(U * U) + np.sum(A * A))
    grad_A = H.T @ R + lam * A
    grad_U = X.T @ ((R @ A.T) * mask) + lam * U
    return value, grad_U, grad_A


def train_network(kind: str, X: Any, y: Any, lam: float, width: int, *, epochs: int = 2000,
                  lr: float = 1e-2, seed: int | None = 0, optimizer: str = "adam"
                  ) -> TrainResult:
    """Train a two-layer (gated) ReLU network on the weight-decay objective directly.

    Minimises ``½||f(X) − y||² + (λ/2) Σ_j (||u_j||² + ||a_j||²)`` by full-batch gradient
    steps (:func:`objective_and_gradient`) from a seeded random start: gates
    ``g_j ~ N(0, I_d)``, ``u_j ~ N(0, I_d/d)``, ``a_j ~ N(0, I_c/m)``. ``optimizer="adam"``
    uses Adam with decay rates :data:`ADAM_BETAS` and guard :data:`ADAM_EPS`;
    ``optimizer="gd"`` takes plain steps ``−lr · ∇L``. Nothing is tuned behind the
    caller's back: the run is exactly ``epochs`` steps of the chosen optimiser.

    The objective of any network is an upper bound on the certified optimum of its convex
    program, so ``result.objectives`` never falls below it (``docs/math/relu.md``).

    Parameters
    ----------
    kind : {"gated_relu", "relu"}
        The network to train.
    X : array_like of shape (n, d)
        Inputs (append a column of ones, :func:`convexnn.add_bias`, for a bias).
    y : array_like of shape (n,) or (n, c)
        Targets.
    lam : float
        Weight decay ``λ ≥ 0`` (the ``lam`` of :func:`convexnn.solve`).
    width : int
        Number of hidden neurons ``m ≥ 1``.
    epochs : int, default 2000
        Number of full-batch steps (at most :data:`MAX_EPOCHS`).
    lr : float, default 1e-2
        Step size.
    seed : int or None, default 0
        Seed of the initial weights and gates.
    optimizer : {"adam", "gd"}, default "adam"
        The optimiser.

    Returns
    -------
    TrainResult
        The trained network and the objective after every epoch.

    Raises
    ------
    InvalidInputError
        For a bad argument, or a step size so large that the objective became non-finite
        (the message names the epoch; use a smaller ``lr``).

    Examples
    --------
    >>> import convexnn as cn
    >>> from convexnn.nonconvex import train_network
    >>> data = cn.planted_relu(n=40, d=2, seed=0)
    >>> run = train_network("relu", data.X, data.y, lam=0.1, width=20, epochs=200, lr=0.01)
    >>> run.objectives.shape
    (201,)
    >>> bool(run.objective < run.objectives[0])
    True
    """
    kind = choice(kind, "kind", KINDS)
    optimizer = choice(optimizer, "optimizer", OPTIMIZERS)
    X, Y = validate_xy(X, y)
    single = np.ndim(y) == 1
    lam = non_negative(lam, "lam")
    width = integer(width, "width", minimum=1)
    epochs = integer(epochs, "epochs", minimum=1, maximum=MAX_EPOCHS)
    lr = positive(lr, "lr")
    seed_ = valid_seed(seed)
    d, c = X.shape[1], Y.shape[1]
    rng = np.random.default_rng(seed_)
    gates = rng.standard_normal((d, width)) if kind == "gated_relu" else None
    U = rng.standard_normal((d, width)) / np.sqrt(d)
    A = rng.standard_normal((width, c)) / np.sqrt(width)

    objectives = np.empty(epochs + 1)
    start = time.perf_counter()
    with np.errstate(over="ignore", invalid="ignore"):  # divergence is detected below
        U, A = _run(kind, X, Y, lam, U, A, gates, objectives, lr, optimizer)
    seconds = time.perf_counter() - start
    if kind == "gated_relu":
        network: GatedReLUNetwork | ReLUNetwork = GatedReLUNetwork(
            U=U, A=A, gates=gates, single_output=single)
    else:
        network = ReLUNetwork(U=U, A=A, single_output=single)
    return TrainResult(kind=kind, network=network, objectives=objectives, lam=lam,
                       width=width, epochs=epochs, lr=lr, seed=seed_, optimizer=optimizer,
                       seconds=seconds)


def _diverged(lr: float, epoch: int) -> InvalidInputError:
    return InvalidInputError(f"lr={lr:g} made the training objective non-finite at epoch "
                             f"{epoch}; use a smaller lr.", argument="lr")


def _run(kind: str, X: np.ndarray, Y: np.ndarray, lam: float, U: np.ndarray, A: np.ndarray,
         gates: np.ndarray | None, objectives: np.ndarray, lr: float, optimizer: str
         ) -> tuple[np.ndarray, np.ndarray]:
    """The training loop: ``len(objectives) − 1`` steps; fills ``objectives`` in place."""
    epochs = len(objectives) - 1
    b1, b2 = ADAM_BETAS
    mU, vU = np.zeros_like(U), np.zeros_like(U)
    mA, vA = np.zeros_like(A), np.zeros_like(A)
    for t in range(1, epochs + 1):
        value, gU, gA = objective_and_gradient(kind, X, Y, lam, U, A, gates)
        if not np.isfinite(value):
            raise _diverged(lr, t - 1)
        objectives[t - 1] = value
        if optimizer == "gd":
            U = U - lr * gU
            A = A - lr * gA
            continue
        mU = b1 * mU + (1 - b1) * gU
        vU = b2 * vU + (1 - b2) * gU * gU
        mA = b1 * mA + (1 - b1) * gA
        vA = b2 * vA + (1 - b2) * gA * gA
        c1, c2 = 1 - b1**t, 1 - b2**t
        U = U - lr * (mU / c1) / (np.sqrt(vU / c2) + ADAM_EPS)
        A = A - lr * (mA / c1) / (np.sqrt(vA / c2) + ADAM_EPS)
    value = objective_and_gradient(kind, X, Y, lam, U, A, gates)[0]
    if not np.isfinite(value):
        raise _diverged(lr, epochs)
    objectives[epochs] = value
    return U, A
