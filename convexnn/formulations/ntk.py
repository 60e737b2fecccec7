"""The gated-ReLU Neural Tangent Kernel and NTK-weighted kernel regression (SPEC §4).

For the gated network ``f(x) = m^{-1/2} Σ_j 1[h_jᵀx ≥ 0] w_jᵀx`` with ``h_j ~ N(0, I)``
the infinite-width NTK (first-layer weights) is

    K_NTK(x, x') = xᵀx' · P(hᵀx ≥ 0, hᵀx' ≥ 0) = xᵀx' (π − θ)/(2π) = Σ_{all i} p_i K_i,

``θ`` the angle between ``x`` and ``x'``, ``p_i`` the Gaussian probability of pattern
``i``: one point of the MKL simplex, chosen without looking at the targets. NTK
kernel regression is the MKL inner problem at ``η = p``:

    J(p) = (μ/2) yᵀ(K_p + μI)⁻¹y = min_W ½||Σ D_i X w_i − y||² + (μ/2) Σ ||w_i||²/p_i

and therefore never beats the optimal MKL kernel: ``J(p) ≥ p_MKL(μ)``.

The pattern weights ``p`` are exact Gaussian probabilities (arc lengths) for a d = 2
enumeration, Monte Carlo frequencies ``counts/draws`` for sampled gates (the width-N
empirical NTK), with binomial standard errors. With a bias column the all-zero
pattern has positive probability; it is dropped (its kernel is 0) and the remaining
``p_i`` are NOT renormalised (that would inflate the NTK by ``1/(1 − p_0)``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..certificate import Certificate
from ..data import add_bias, validate_X
from ..errors import ConvexNNError, InvalidInputError
from ..networks import GatedReLUNetwork
from ..patterns import Patterns
from ..solution import Solution
from ..solvers import run_problem
from .base import Formulation, ProblemData, SolveOptions
from .mkl import (
    build_kernel_ridge,
    kernel_ridge,
    kernel_ridge_certificate,
    kernel_ridge_weights,
    mu_scale,
)

__all__ = ["NTK", "ntk_gram", "empirical_ntk", "ntk_weights"]

MATH = """\
Infinite-width NTK of a gated ReLU network (gates h ~ N(0, I)):
    K_NTK(x, x') = xᵀx' · P(hᵀx ≥ 0, hᵀx' ≥ 0) = xᵀx' (π − θ)/(2π) = Σ_{all i} p_i D_i X Xᵀ D_i
with θ the angle between x and x' and p_i the Gaussian probability of pattern i
(exact for d = 2, Monte Carlo frequencies otherwise: the width-N empirical NTK).
NTK kernel regression = the MKL inner problem at η = p:
    J(p) = (μ/2) yᵀ(K_p + μI)⁻¹y = min_W ½||Σ_i D_i X w_i − y||² + (μ/2) Σ_i ||w_i||²/p_i,
α = (K_p + μI)⁻¹y, w_i = p_i Xᵀ D_i α (a gated-ReLU network with one neuron per
pattern). Dual (unconstrained): max_z yᵀz − ½||z||² − (1/2μ) Σ_i p_i ||Xᵀ D_i z||²,
optimal at z = μα = the residual. Because p is one point of the simplex,
J(p) ≥ p_MKL(μ): the NTK never beats the optimal MKL kernel on the training objective.
"""

#: Pairs closer than this in |cos θ| to ±1 get their angle from vector differences.
_NEAR_PARALLEL = 1e-6
#: Gates per chunk when forming Monte Carlo kernels (bounds memory to n × chunk).
_CHUNK = 8192


def _inputs(X: Any, Z: Any, bias: bool) -> tuple[np.ndarray, np.ndarray | None]:
    X = validate_X(X, "X")
    Zv = None if Z is None else validate_X(Z, "Z", d=X.shape[1])
    if bias:
        X = add_bias(X)
        Zv = None if Zv is None else add_bias(Zv)
    return X, Zv


def ntk_gram(X: Any, Z: Any = None, *, bias: bool = False) -> np.ndarray:
    """Analytic infinite-width gated-ReLU NTK ``K[k, l] = x_kᵀx_l (π − θ_kl)/(2π)``.

    Parameters
    ----------
    X : array (n, d)
    Z : array (m, d), optional
        New points: returns the cross kernel ``K[j, l] = z_jᵀx_l (π − θ)/(2π)`` (m × n).
    bias : bool
        Append a column of ones to X (and Z) first; the gates then have a bias entry too.

    Notes
    -----
    ``θ = arccos(cos θ)`` loses accuracy for nearly (anti)parallel pairs; there the angle
    is recomputed as ``2 atan2(||u − v||, ||u + v||)`` from the unit vectors, so the
    diagonal is exactly ``||x_k||²/2``. Rows of zeros have a zero kernel row.
    """
    X, Zv = _inputs(X, Z, bias)
    A = X if Zv is None else Zv
    G = A @ X.T
    na, nx = np.linalg.norm(A, axis=1), np.linalg.norm(X, axis=1)
    denom = np.outer(na, nx)
    ok = denom > 0
    cos = np.zeros_like(G)
    np.divide(G, denom, out=cos, where=ok)
    np.clip(cos, -1.0, 1.0, out=cos)
    theta = np.arccos(cos)
    rows, cols = np.nonzero(ok & (np.abs(cos) > 1.0 - _NEAR_PARALLEL))
    if rows.size:
        u = A[rows] / na[rows, None]
        v = X[cols] / nx[cols, None]
        theta[rows, cols] = 2.0 * np.arctan2(np.linalg.norm(u - v, axis=1),
                                             np.linalg.norm(u + v, axis=1))
    K = G * (np.pi - theta) / (2.0 * np.pi)
    if Zv is None:
        K = 0.5 * (K + K.T)
    return K


def empirical_ntk(
    X: Any,
    width: int | None = None,
    *,
    gates: Any = None,
    seed: int | None = 0,
    bias: bool = False,
    Z: Any = None,
    return_se: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """The width-N empirical gated-ReLU NTK ``(X Xᵀ) ∘ (H Hᵀ)/N`` with ``H = 1[X h_s ≥ 0]``.

    ``h_s ~ N(0, I)`` are ``width`` Gaussian gates drawn with ``seed`` (the same draws as
    ``sample_patterns(X, width, seed)``, so this equals ``Σ_i f_i K_i`` with the pattern
    frequencies ``f``) or the columns of ``gates`` (d × N). With ``Z`` the cross kernel
    ``(Z Xᵀ) ∘ (H_Z Hᵀ)/N`` (m × n). It is an unbiased Monte Carlo estimate of
    :func:`ntk_gram`, with error ``~ N^{-1/2}``.

    With ``return_se=True`` also returns the entrywise standard errors
    ``|xᵀx'| √(q̂(1 − q̂)/N)``, ``q̂`` the observed fraction of gates active on both points.
    """
    X, Zv = _inputs(X, Z, bias)
    d = X.shape[1]
    if (width is None) == (gates is None):
        raise InvalidInputError("give exactly one of width (a number of gates) or gates.")
    if gates is None:
        if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 1:
            raise InvalidInputError(f"width must be a positive integer; got {width!r}.")
        H = np.random.default_rng(seed).standard_normal((d, int(width)))
    else:
        H = np.asarray(gates, dtype=np.float64)
        if H.ndim != 2 or H.shape[0] != d or H.shape[1] == 0:
            raise InvalidInputError(
                f"gates must have shape ({d}, N){' (with the bias entry)' if bias else ''}; "
                f"got {H.shape}."
            )
    N = H.shape[1]
    A = X if Zv is None else Zv
    Q = np.zeros((A.shape[0], X.shape[0]))
    for start in range(0, N, _CHUNK):
        Hc = H[:, start:start + _CHUNK]
        MX = (X @ Hc >= 0).astype(np.float64)
        MA = MX if Zv is None else (A @ Hc >= 0).astype(np.float64)
        Q += MA @ MX.T
    Q /= N
    G = A @ X.T
    K = G * Q
    if not return_se:
        return K
    return K, np.abs(G) * np.sqrt(Q * (1.0 - Q) / N)


def _pattern_keys(masks: np.ndarray) -> list[bytes]:
    packed = np.ascontiguousarray(np.packbits(masks, axis=0).T)
    return [row.tobytes() for row in packed]


def ntk_weights(patterns: Patterns, X: np.ndarray | None = None, *, draws: int = 100_000,
                seed: int | None = 0) -> tuple[np.ndarray, np.ndarray]:
    """NTK weights ``p`` of the patterns and their standard errors.

    * exact Gaussian probabilities when the patterns carry them (d = 2 enumeration);
      standard errors 0;
    * otherwise, for sampled gates, the frequencies ``counts/draws`` with binomial
      standard errors (the width-``draws`` empirical NTK);
    * for an enumeration without exact probabilities (d ≥ 3), a Monte Carlo estimate
      from ``draws`` Gaussian gates on ``X`` (the data the patterns were built on).

    Never renormalised after dropping the all-zero pattern (SPEC §4).
    """
    if patterns.probabilities is not None:
        return np.asarray(patterns.probabilities, dtype=np.float64), np.zeros(patterns.P)
    if patterns.method != "enumerate":
        return patterns.frequencies, patterns.standard_errors
    if X is None:
        raise InvalidInputError(
            "these enumerated patterns carry no exact probabilities (d ≥ 3): pass X to "
            "estimate them by Monte Carlo."
        )
    X = validate_X(X, "X", d=patterns.d)
    index = {k: i for i, k in enumerate(_pattern_keys(patterns.masks))}
    counts = np.zeros(patterns.P)
    rng = np.random.default_rng(seed)
    for start in range(0, draws, _CHUNK):
        m = min(_CHUNK, draws - start)
        masks = X @ rng.standard_normal((X.shape[1], m)) >= 0
        keys, hits = np.unique(np.packbits(masks, axis=0).T, axis=0, return_counts=True)
        for key, h in zip(keys, hits, strict=True):
            i = index.get(key.tobytes())
            if i is not None:
                counts[i] += h
    p = counts / draws
    return p, np.sqrt(p * (1.0 - p) / draws)


class NTK(Formulation):
    """NTK-weighted kernel regression on the chosen patterns (SPEC §4); regularisation ``μ``.

    The program is kernel ridge with ``K_p = Σ_i p_i K_i`` (``p`` from :func:`ntk_weights`)
    and ridge ``μ``: ``J(p) = (μ/2) yᵀ(K_p + μI)⁻¹y``, the MKL inner problem at ``η = p``
    (so its value is directly comparable with ``p_MKL(μ)``). ``reg_max`` is the kernel
    scale ``||X||₂²`` (``mu_ratio`` is relative to it). Methods: ``"cholesky"`` (closed
    form) and ``"ipm"`` (the declarative cvxpy kernel ridge). Weights: ``W_i = p_i Xᵀ D_i α``
    — a gated-ReLU network with one neuron per pattern whose predictions on new points
    use the same pattern weights with the gates evaluated on the new points.
    """

    name = "ntk"
    title = "NTK-weighted kernel regression"
    reg_name = "mu"
    methods = ("cholesky", "ipm")
    math = MATH

    def reg_max(self, data: ProblemData) -> float:
        return mu_scale(data.X)

    @staticmethod
    def pattern_weights(data: ProblemData) -> np.ndarray:
        return ntk_weights(data.patterns, data.X)[0]

    def certify(self, data: ProblemData, reg: float, weights: Mapping[str, np.ndarray],
                dual: Mapping[str, np.ndarray] | None = None, *, tol: float = 1e-6
                ) -> tuple[Certificate, dict[str, np.ndarray]]:
        p = self.pattern_weights(data)
        checks = {}
        if "p" in weights:
            # the weights say which kernel they were fitted with: it must be this one
            stored = np.asarray(weights["p"], dtype=np.float64)
            checks["p_matches_patterns"] = (float(np.max(np.abs(stored - p)))
                                            if stored.shape == p.shape else float("inf"))
        duals = [dual["z"]] if dual is not None and "z" in dual else []
        cert, Z = kernel_ridge_certificate(
            data.X, data.Y, data.M, weights["W"], p, reg, tolerance=tol,
            scope=data.patterns.scope, duals=duals, formulation=self.name,
            checks=checks, limits={"p_matches_patterns": 1e-12},
        )
        return cert, {"z": Z}

    def network(self, data: ProblemData, weights: Mapping[str, np.ndarray]) -> GatedReLUNetwork:
        # kernel regression is dense: every pattern is a neuron, none is pruned
        return GatedReLUNetwork.from_weights(weights["W"], data.patterns.gates, bias=data.bias,
                                             single_output=data.single_output, prune=0.0)

    def solve(self, data: ProblemData, reg: float, options: SolveOptions, **kwargs: Any
              ) -> Solution:
        self.reject_options(kwargs)
        start = time.perf_counter()
        p = self.pattern_weights(data)
        if options.method == "ipm":
            program = build_kernel_ridge(data.X, data.Y, data.M)
            program.set(p, reg)
            build_s = time.perf_counter() - start
            run = run_problem(program.problem, options.solver, tol=options.tol,
                              verbose=options.verbose, options=dict(options.solver_options))
            if program.V.value is None:
                raise ConvexNNError(f"{run.solver} returned no primal point for kernel ridge.")
            return self.make_solution(
                data, reg, {"W": program.weights(), "p": p}, options,
                status=run.status, solver=run.solver, method="ipm",
                build_s=build_s + run.compile_s, solve_s=run.solve_s,
                info={"iterations": run.iterations, "solver_objective": run.solver_objective},
            )
        build_s = time.perf_counter() - start
        start = time.perf_counter()
        value, alpha = kernel_ridge(data.X, data.Y, data.M, p, reg)
        W = kernel_ridge_weights(data.X, data.M, p, alpha)
        solve_s = time.perf_counter() - start
        return self.make_solution(
            data, reg, {"W": W, "p": p}, options, status="optimal", solver="numpy",
            method="cholesky", build_s=build_s, solve_s=solve_s, dual={"z": reg * alpha},
            info={"closed_form_objective": value},
        )

