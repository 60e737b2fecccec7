"""Iterative reweighting: from the NTK to the exact convex optimum (SPEC §5).

Start from the NTK pattern weights ``η⁰ = p`` and repeat

    α = (K_η + μI)⁻¹ y        (one Cholesky of an n×n matrix)
    J = (μ/2) yᵀα              (the kernel-ridge value J(η), an upper bound on p_MKL(μ))
    ||w_i|| = η_i ||Xᵀ D_i α||  (one GEMM for all i)
    η ← ||w|| / Σ_j ||w_j||

This is exact block-coordinate descent on the jointly convex
``½||Σ D_i X w_i − y||² + (μ/2) Σ ||w_i||²/η_i`` over ``W`` and ``η ∈ Δ``: J is
non-increasing and converges to ``p_MKL(μ)``; the limit η is the optimal MKL kernel and
its W the gated-ReLU optimum at ``λ = μ Σ||w_i||`` (SPEC §3). Each iteration also gives
the Lanckriet lower bound ``D(μα) ≤ p_MKL(μ)``, and the loop stops on the certified gap
``(J − max_t D_t)/J ≤ tol`` — in μ mode only once the gated-ReLU certificate of the same
W at the mapped ``λ = μ Σ||w_i||`` is within ``tol`` too (usually already the case), so
the returned gated solution is certified as well.

Two modes:

* ``mu=…`` — the MKL problem at ``μ`` exactly as above; the result reports the
  equivalent ``λ = μ Σ||w_i||`` and the gated-ReLU solution at that λ.
* ``lam=…`` — the group lasso at the user's ``λ`` through its unnormalised form
  ``p_G(λ) = min_{η ≥ 0} (λ/2) yᵀ(K_η + λI)⁻¹y + (λ/2) Σ η_i`` (SPEC §3): the same
  iteration with ``η ← ||w||`` (not normalised) and ridge ``λ``. Writing ``η = S·η̂``
  with ``η̂ ∈ Δ`` it is the μ-iteration with ``μ_t = λ/S_t`` adapted each step, so the
  λ ↔ μ map is found on the way; the objective is the group-lasso value of ``W_t``
  (non-increasing) and the lower bound the gated-ReLU dual at the scaled residual.
  The NTK start is ``c·p`` with the scale ``c`` minimising the objective along ``p``.

Kernels use the Hadamard/GEMM identity ``K_η = (XXᵀ) ∘ (B Bᵀ)``, ``B = M diag(√η)``
(never P n×n matrices); cost per iteration O(n²P + n³), memory O(n² + nP).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.linalg as sla
from tqdm.auto import tqdm

from .certificate import Certificate, gated_relu_certificate
from .errors import InvalidInputError
from .formulations.base import Formulation, ProblemData, SolveOptions, prepare
from .formulations.mkl import mkl_certificate
from .formulations.ntk import ntk_weights
from .networks import GatedReLUNetwork
from .ops import adjoint, group_norms
from .patterns import Patterns
from .solution import Solution

__all__ = ["reweight", "reweight_data", "ReweightResult", "Reweight", "HISTORY_COLUMNS"]

HISTORY_COLUMNS = ("iteration", "objective", "lower_bound", "gap", "seconds")
#: Kernel weights below this fraction of the largest are set to zero: they would
#: otherwise decay into subnormal numbers, which slow BLAS down by orders of magnitude.
FLUSH_RATIO = 1e-20
DEFAULT_MAX_ITER = 20_000


@dataclass(frozen=True, repr=False)
class ReweightResult:
    """The outcome of :func:`reweight`.

    Attributes
    ----------
    history : pandas.DataFrame
        One row per iteration: ``iteration, objective, lower_bound, gap, seconds``
        (``lower_bound`` is the best bound so far, ``gap`` relative, ``seconds``
        cumulative). Objective: ``J(η_t)`` in μ mode, the group-lasso value of ``W_t``
        in λ mode; both are non-increasing.
    eta : ndarray (P,)
        The kernel weights on the simplex, ``η_i = ||w_i||/Σ||w_j||`` (the optimal MKL
        kernel at convergence).
    mu, lam : float
        The matched pair of the exact map ``λ = μ Σ||w_i||``.
    solution : Solution
        The equivalent gated-ReLU solution at ``lam``, certified by the gated-ReLU numpy
        certificate, network included.
    certificate : Certificate
        Numpy certificate of the program iterated on: simplex MKL at ``mu`` (μ mode) or
        the group lasso at ``lam`` (λ mode, the same as ``solution.certificate``).
    weights : ndarray (P, d, c)
        The final ``W``.
    dual : ndarray (n, c)
        The dual point of ``certificate``.
    iterations : int
        Number of reweighting updates performed.
    status : {"converged", "max_iter", "stopped"}
    mode : {"mu", "lam"}
    start : str
    seconds : float
    """

    history: pd.DataFrame
    eta: np.ndarray
    mu: float
    lam: float
    solution: Solution
    certificate: Certificate
    weights: np.ndarray
    dual: np.ndarray
    iterations: int
    status: str
    mode: str
    start: str
    seconds: float

    @property
    def converged(self) -> bool:
        return self.status == "converged"

    def __repr__(self) -> str:
        h = self.history
        first = h["objective"].iloc[0] if len(h) else float("nan")
        return (
            f"ReweightResult({self.status} after {self.iterations} iterations in "
            f"{self.seconds:.3f}s, mode={self.mode!r}, start={self.start!r},\n"
            f"  mu={self.mu:.6g}, lam={self.lam:.6g}, objective {first:.10g} → "
            f"{h['objective'].iloc[-1]:.10g}, relative_gap={self.certificate.relative_gap:.2e},\n"
            f"  certificate: {'CERTIFIED' if self.certificate.certified else 'NOT CERTIFIED'}; "
            f"gated-ReLU solution: {'certified' if self.solution.certified else 'NOT certified'}"
            f" (relative gap {self.solution.certificate.relative_gap:.2e}), "
            f"active patterns {int(np.count_nonzero(self.eta))}/{self.eta.size})"
        )


# ---------------------------------------------------------------------------
# The iteration
# ---------------------------------------------------------------------------


class _Kernels:
    """``XXᵀ`` and the float pattern matrix, formed once."""

    def __init__(self, X: np.ndarray, M: np.ndarray):
        self.X = X
        self.XXt = X @ X.T
        self.Mf = np.asarray(M, dtype=np.float64, order="F")
        self.n = X.shape[0]

    def gram(self, eta: np.ndarray, shift: float) -> np.ndarray:
        """``(XXᵀ) ∘ (B Bᵀ) + shift·I`` with ``B = M diag(√η)`` over the active patterns."""
        active = np.flatnonzero(eta > 0)
        B = self.Mf[:, active] * np.sqrt(eta[active])
        K = B @ B.T  # one SYRK (numpy detects the transposed operand)
        K *= self.XXt
        K.flat[:: self.n + 1] += shift
        return K

    def correlations(self, A: np.ndarray) -> np.ndarray:
        """``[Xᵀ D_i A]_i`` as (P, d, c): one GEMM ``(X ∘ a)ᵀ M`` per output."""
        c = A.shape[1]
        G = np.empty((self.Mf.shape[1], self.X.shape[1], c))
        for k in range(c):
            G[:, :, k] = ((self.X * A[:, k:k + 1]).T @ self.Mf).T
        return G


def _solve(K: np.ndarray, Y: np.ndarray) -> tuple[tuple, np.ndarray]:
    factor = sla.cho_factor(K, lower=True, overwrite_a=True, check_finite=False)
    return factor, sla.cho_solve(factor, Y, check_finite=False)


def _best_scale(kern: _Kernels, eta: np.ndarray, Y: np.ndarray, lam: float) -> float:
    """``argmin_{c>0} (λ/2)⟨Y, (cK_η + λI)⁻¹Y⟩ + (λ/2) c Σ η`` by safeguarded Newton.

    The derivative is ``(λ/2) h(c)`` with ``h(c) = Σ η − ⟨A, K A⟩``, ``A = (cK + λI)⁻¹Y``,
    increasing and concave in c, so Newton steps from the left of the root increase
    monotonically to it; a step past 0 is replaced by ``c/10``.
    """
    K = kern.gram(eta, 0.0)
    total = float(eta.sum())
    c0 = lam * kern.n / max(float(np.trace(K)), np.finfo(float).tiny)
    c = c0
    for _ in range(40):
        Kc = c * K
        Kc.flat[:: kern.n + 1] += lam
        factor, A = _solve(Kc, Y)
        KA = K @ A
        h = total - float(np.sum(A * KA))
        if abs(h) <= 1e-8 * total:
            break
        slope = 2.0 * float(np.sum(KA * sla.cho_solve(factor, KA, check_finite=False)))
        step = c - h / slope if slope > 0 else c / 10
        c = step if step > 0 else c / 10
        if c < 1e-12 * c0:
            break
    return c


def _start_weights(start: Any, data: ProblemData, mode: str) -> tuple[np.ndarray, str, bool]:
    """η⁰, its label, and whether it should be rescaled (λ mode) by :func:`_best_scale`."""
    P = data.P
    if isinstance(start, str):
        if start == "ntk":
            return ntk_weights(data.patterns, data.X)[0].copy(), "ntk", True
        if start == "uniform":
            return np.full(P, 1.0 / P), "uniform", True
        raise InvalidInputError(f"start must be 'ntk', 'uniform' or an array of {P} "
                                f"non-negative weights; got {start!r}.")
    eta = np.asarray(start, dtype=np.float64)
    if eta.shape != (P,) or not np.all(np.isfinite(eta)) or np.any(eta < 0) or eta.sum() <= 0:
        raise InvalidInputError(
            f"start must be 'ntk', 'uniform' or an array of {P} finite non-negative weights "
            f"(not all zero), one per pattern; got shape {eta.shape}."
        )
    if mode == "mu":
        eta = eta / eta.sum()
    return eta.copy(), "given", False


def _flush(eta: np.ndarray) -> np.ndarray:
    top = eta.max(initial=0.0)
    eta[eta < FLUSH_RATIO * top] = 0.0
    return eta


def _gated_certified(kern: _Kernels, Y: np.ndarray, eta: np.ndarray, G: np.ndarray,
                     mu: float, tol: float) -> bool:
    """Whether ``W = η ∘ G`` also has a gated-ReLU gap ≤ tol at ``λ = μ Σ||w_i||``.

    In μ mode the loop stops only when both certificates agree: the MKL gap alone
    bounds the MKL suboptimality, not the group-lasso one at the mapped λ.
    """
    W = eta[:, None, None] * G
    lam = mu * float(np.sum(group_norms(W)))
    cert, _ = gated_relu_certificate(kern.X, Y, kern.Mf, W, lam, tolerance=tol)
    return cert.relative_gap <= tol


@dataclass
class _State:
    eta: np.ndarray  # the η that produced alpha (unnormalised in λ mode)
    alpha: np.ndarray
    G: np.ndarray  # [Xᵀ D_i α]_i
    best_z: np.ndarray
    rows: list
    status: str
    iterations: int


def _iterate(kern: _Kernels, Y: np.ndarray, eta: np.ndarray, *, mode: str, reg: float,
             tol: float, max_iter: int, callback: Callable | None, progress: bool,
             clock: float) -> _State:
    rows: list[tuple[int, float, float, float, float]] = []
    best, best_z = -np.inf, np.zeros_like(Y)
    status = "max_iter"
    bar = tqdm(total=max_iter, desc=f"reweight ({mode})", unit="it", disable=not progress,
               leave=False)
    it = 0
    try:
        while True:
            _, alpha = _solve(kern.gram(eta, reg), Y)
            G = kern.correlations(alpha)
            g = np.sqrt(np.einsum("pdc,pdc->p", G, G))  # ||Xᵀ D_i α||
            z = reg * alpha  # the residual Y − K_η α
            yz, zz = float(np.sum(Y * z)), float(np.sum(z * z))
            top = reg * float(g.max(initial=0.0))  # max_i ||Xᵀ D_i z||
            if mode == "mu":
                objective = 0.5 * yz  # J(η) = (μ/2)⟨Y, α⟩
                quad = zz + top * top / reg
                scale = yz / quad if yz > 0 else 0.0
                bound = scale * yz - 0.5 * scale * scale * quad
            else:
                objective = 0.5 * zz + reg * float(np.dot(eta, g))  # ½||r||² + λ Σ||w_i||
                scale = 0.0 if yz <= 0 else min(yz / zz, reg / top if top > 0 else np.inf)
                bound = scale * yz - 0.5 * scale * scale * zz
            if bound > best:
                best, best_z = bound, scale * z
            gap = (objective - best) / max(abs(objective), 1e-300)
            seconds = time.perf_counter() - clock
            rows.append((it, objective, best, gap, seconds))
            if progress and it % 10 == 0:
                bar.set_postfix(gap=f"{gap:.2e}", refresh=False)
            if gap <= tol and (mode == "lam" or _gated_certified(kern, Y, eta, G, reg, tol)):
                status = "converged"
                break
            if callback is not None and callback({
                "iteration": it, "objective": objective, "lower_bound": best, "gap": gap,
                "seconds": seconds, "eta": eta,
            }):
                status = "stopped"
                break
            if it >= max_iter:
                break
            w = eta * g
            total = float(w.sum())
            if not total > 0:
                status = "converged" if gap <= tol else "max_iter"
                break
            eta = _flush(w / total if mode == "mu" else w)
            it += 1
            bar.update(1)
    finally:
        bar.close()
    return _State(eta, alpha, G, best_z, rows, status, it)


# ---------------------------------------------------------------------------
# Public driver
# ---------------------------------------------------------------------------


def _positive(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise InvalidInputError(f"{name} must be a positive number; got {value!r}.")
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise InvalidInputError(f"{name} must be a positive finite number; got {value!r}.")
    return v


def reweight_data(
    data: ProblemData,
    *,
    mu: float | None = None,
    lam: float | None = None,
    start: str | np.ndarray = "ntk",
    tol: float = 1e-6,
    max_iter: int = DEFAULT_MAX_ITER,
    callback: Callable[[dict], Any] | None = None,
    progress: bool = False,
) -> ReweightResult:
    """:func:`reweight` on prepared :class:`ProblemData` (exactly one of ``mu``, ``lam``)."""
    if (mu is None) == (lam is None):
        raise InvalidInputError("give exactly one of mu (simplex MKL) or lam (group lasso).")
    mode = "mu" if mu is not None else "lam"
    reg = _positive(mu if mode == "mu" else lam, mode)
    tol = _positive(tol, "tol")
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 0:
        raise InvalidInputError(f"max_iter must be a non-negative integer; got {max_iter!r}.")
    if callback is not None and not callable(callback):
        raise InvalidInputError("callback must be callable (it receives one dict per iteration).")
    clock = time.perf_counter()
    X, Y, M = data.X, data.Y, data.M
    eta0, label, rescale = _start_weights(start, data, mode)
    kern = _Kernels(X, M)
    if mode == "lam":
        lam_max = float(group_norms(adjoint(X, M, Y)).max(initial=0.0))
        if reg >= lam_max:
            eta0 = np.zeros(data.P)  # W = 0 is optimal: the certificate below proves it
        elif rescale:
            eta0 = eta0 * _best_scale(kern, eta0, Y, reg)
    build_s = time.perf_counter() - clock
    state = _iterate(kern, Y, _flush(eta0), mode=mode, reg=reg, tol=tol,
                     max_iter=int(max_iter), callback=callback, progress=progress, clock=clock)
    W = state.eta[:, None, None] * state.G
    norms = group_norms(W)
    S = float(norms.sum())
    eta = norms / S if S > 0 else np.zeros_like(norms)
    if mode == "mu":
        mu_v, lam_v = reg, reg * S
    else:
        mu_v, lam_v = (reg / S if S > 0 else float("inf")), reg
    solve_s = time.perf_counter() - clock - build_s
    options = SolveOptions(solver="NUMPY", tol=tol, method="reweight", progress=progress)
    z_candidates = [state.best_z, reg * state.alpha]
    solution = REWEIGHT.make_solution(
        data, lam_v, {"W": W, "eta": eta}, options, status=state.status, solver="numpy",
        method="reweight", build_s=build_s, solve_s=solve_s,
        dual={"z": state.best_z}, info={"iterations": state.iterations, "mu": mu_v,
                                        "start": label, "mode": mode},
    )
    if mode == "mu":
        cert, dual = mkl_certificate(X, Y, M, W, reg, tolerance=tol, scope=data.patterns.scope,
                                     duals=z_candidates)
    else:
        cert, dual = solution.certificate, solution.dual["z"]
    history = pd.DataFrame(state.rows, columns=list(HISTORY_COLUMNS))
    history["iteration"] = history["iteration"].astype(np.int64)
    return ReweightResult(
        history=history, eta=eta, mu=mu_v, lam=lam_v, solution=solution, certificate=cert,
        weights=W, dual=dual, iterations=state.iterations, status=state.status, mode=mode,
        start=label, seconds=time.perf_counter() - clock,
    )


def reweight(
    X: Any,
    y: Any,
    *,
    patterns: Patterns | int | str | None = None,
    mu: float | None = None,
    lam: float | None = None,
    lam_ratio: float | None = None,
    bias: bool = False,
    seed: int | None = 0,
    start: str | np.ndarray = "ntk",
    tol: float = 1e-6,
    max_iter: int = DEFAULT_MAX_ITER,
    callback: Callable[[dict], Any] | None = None,
    progress: bool = False,
) -> ReweightResult:
    """Iterative reweighting from the NTK to the optimal MKL kernel (SPEC §5).

    Parameters
    ----------
    X : array (n, d)
    y : array (n,) or (n, c)
    patterns : Patterns, int, "all" or None
        As in :func:`convexnn.solve`.
    mu : float
        Run simplex MKL at ``μ`` (SPEC §5 exactly); the result reports ``λ = μ Σ||w_i||``.
    lam, lam_ratio : float
        Run the group lasso at ``λ`` (or ``λ = lam_ratio · λ_max``) through the
        unnormalised form of SPEC §3 (``μ = λ/Σ||w_i||`` is found on the way). Default,
        when neither ``mu`` nor ``lam`` is given: ``lam_ratio = 0.1``.
    bias : bool
        Append a column of ones to X (and a bias entry to the gates).
    start : "ntk", "uniform" or array (P,)
        Initial kernel weights: the NTK pattern weights ``p`` (probabilities or
        frequencies, not renormalised), uniform ``1/P``, or given weights (scaled onto
        the simplex in μ mode; used as the unnormalised ``η ≈ ||w_i||`` in λ mode).
    tol : float
        Stop when the certified relative gap ``(objective − max_t D_t)/objective ≤ tol``.
    max_iter : int
        Largest number of reweighting updates.
    callback : callable, optional
        Called after every iteration with a dict ``iteration, objective, lower_bound,
        gap, seconds, eta``; returning a true value stops the loop (status "stopped").
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    ReweightResult
        ``history`` (DataFrame), ``eta``, ``mu``, ``lam``, ``solution`` (the gated-ReLU
        Solution at ``lam`` with its network) and ``certificate``.
    """
    if mu is not None and (lam is not None or lam_ratio is not None):
        raise InvalidInputError("give either mu or lam/lam_ratio, not both.")
    data = prepare(X, y, patterns=patterns, bias=bias, seed=seed)
    if mu is None:
        from .solve import resolve_reg

        lam = resolve_reg(REWEIGHT, data, lam, lam_ratio)
    return reweight_data(data, mu=mu, lam=lam, start=start, tol=tol, max_iter=max_iter,
                         callback=callback, progress=progress)


class Reweight(Formulation):
    """The gated-ReLU group lasso at ``λ`` solved by iterative reweighting (numpy only).

    ``convexnn.solve("reweight", X, y, lam=…)`` runs :func:`reweight` in λ mode and
    returns its gated-ReLU :class:`Solution` (certified by the group-lasso certificate).
    Options: ``start``, ``max_iter``, ``callback``.
    """

    name = "reweight"
    title = "Iterative reweighting from the NTK to the gated-ReLU optimum"
    reg_name = "lam"
    methods = ("reweight",)
    math = __doc__ or ""

    def reg_max(self, data: ProblemData) -> float:
        """``λ_max = max_i ||Xᵀ D_i Y||_F``."""
        return float(group_norms(adjoint(data.X, data.M, data.Y)).max())

    def certify(self, data: ProblemData, reg: float, weights: Mapping[str, np.ndarray],
                dual: Mapping[str, np.ndarray] | None = None, *, tol: float = 1e-6
                ) -> tuple[Certificate, dict[str, np.ndarray]]:
        duals = [dual["z"]] if dual is not None and "z" in dual else []
        cert, Z = gated_relu_certificate(
            data.X, data.Y, data.M, weights["W"], reg, tolerance=tol,
            scope=data.patterns.scope, duals=duals, formulation=self.name,
        )
        return cert, {"z": Z}

    def network(self, data: ProblemData, weights: Mapping[str, np.ndarray]) -> GatedReLUNetwork:
        return GatedReLUNetwork.from_weights(
            weights["W"], data.patterns.gates, bias=data.bias, single_output=data.single_output
        )

    def solve(self, data: ProblemData, reg: float, options: SolveOptions, **kwargs: Any
              ) -> Solution:
        allowed = {"start", "max_iter", "callback"}
        if set(kwargs) - allowed:
            raise TypeError(f"unexpected options for reweight: {sorted(set(kwargs) - allowed)};"
                            f" allowed: {sorted(allowed)}")
        return reweight_data(data, lam=reg, tol=options.tol, progress=options.progress,
                             **kwargs).solution


REWEIGHT = Reweight()
