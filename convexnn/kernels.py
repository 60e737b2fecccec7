"""Kernel algebra in closed form: the NTK, pattern kernels, kernel ridge, Lanckriet values.

* The gated-ReLU NTK: the analytic infinite-width Gram :func:`ntk_gram`
  ``K(x, x') = xᵀx' (π − θ)/(2π)``, the width-N empirical NTK :func:`empirical_ntk`, and the
  NTK weights of a pattern set :func:`ntk_weights` (``docs/math/ntk.md``).
* Pattern kernels ``K_η = Σ_i η_i D_i X Xᵀ D_i = (XXᵀ) ∘ (M diag(η) Mᵀ)`` formed with one
  GEMM (:class:`PatternKernels`; never P dense n×n matrices), and kernel ridge with them in
  closed form: ``J(η) = (μ/2)⟨Y, (K_η + μI)⁻¹Y⟩`` (:func:`kernel_ridge`), its weights
  ``W_i = η_i Xᵀ D_i α`` (:func:`kernel_ridge_weights`).
* Dual values along a ray (lower bounds from any point ``Z``): the kernel-ridge dual
  (:func:`kernel_ridge_dual_value`) and the Lanckriet dual of simplex MKL
  (:func:`lanckriet_value`) — ``docs/math/mkl.md``.
* One kernel, many ridges: :class:`SpectralRidge` factors ``K_η`` once (the small Gram of
  its features when ``d·P < n``, else its eigendecomposition) and gives ``α(μ)`` for any
  ``μ`` in O(n·rank) — the NTK along a μ path.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg as sla

from .certificate import best_multiple
from .data import add_bias
from .errors import InvalidInputError
from .memory import require_memory
from .ops import adjoint, forward, group_norms, masked_gram
from .patterns import Patterns
from .validation import integer, validate_X

__all__ = [
    "ntk_gram",
    "empirical_ntk",
    "ntk_weights",
    "mu_scale",
    "check_eta",
    "PatternKernels",
    "cholesky_solve",
    "kernel_ridge",
    "kernel_ridge_weights",
    "kernel_ridge_dual_value",
    "lanckriet_value",
    "SpectralRidge",
]


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
    X : array_like of shape (n, d)
        The inputs.
    Z : array_like of shape (m, d), optional
        New points: returns the cross kernel ``K[j, l] = z_jᵀx_l (π − θ)/(2π)`` (m × n).
    bias : bool, default False
        Append a column of ones to X (and Z) first; the gates then have a bias entry too.

    Returns
    -------
    ndarray of shape (n, n) or (m, n)
        The kernel, ``θ_kl`` the angle between ``x_k`` and ``x_l``. It equals
        ``Σ_i p_i D_i X Xᵀ D_i`` over every pattern of the data, ``p_i`` their Gaussian
        probabilities (``docs/math/ntk.md``).

    Notes
    -----
    ``θ = arccos(cos θ)`` loses accuracy for nearly (anti)parallel pairs; there the angle
    is recomputed as ``2 atan2(||u − v||, ||u + v||)`` from the unit vectors, so the
    diagonal is exactly ``||x_k||²/2``. Rows of zeros have a zero kernel row.
    """
    X, Zv = _inputs(X, Z, bias)
    A = X if Zv is None else Zv
    require_memory(8 * 5 * A.shape[0] * X.shape[0], what="ntk_gram",
                   sizes={"m": A.shape[0], "n": X.shape[0]},
                   hint="the Gram matrix is dense: use fewer points")
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

    Parameters
    ----------
    X : array_like of shape (n, d)
        The inputs.
    width : int, optional
        Number ``N`` of Gaussian gates to draw (give this or ``gates``).
    gates : array_like of shape (d, N), optional
        The gates themselves (with the bias entry when ``bias``).
    seed : int or None, default 0
        Seed of the drawn gates.
    bias : bool, default False
        Append a column of ones to ``X`` (and ``Z``) first.
    Z : array_like of shape (m, d), optional
        New points: return the cross kernel (m × n) instead.
    return_se : bool, default False
        Also return the entrywise standard errors.

    Returns
    -------
    K : ndarray of shape (n, n) or (m, n)
        The empirical NTK.
    se : ndarray, same shape as ``K``
        Its standard errors (only with ``return_se=True``).

    Examples
    --------
    >>> import numpy as np
    >>> import convexnn as cn
    >>> X = cn.planted_relu(n=20, d=3, seed=0).X
    >>> K = cn.empirical_ntk(X, width=20000, seed=0)
    >>> bool(np.abs(K - cn.ntk_gram(X)).max() < 0.05 * np.abs(cn.ntk_gram(X)).max())
    True
    """
    X, Zv = _inputs(X, Z, bias)
    d = X.shape[1]
    if (width is None) == (gates is None):
        raise InvalidInputError("give exactly one of width (a number of gates) or gates.")
    if gates is None:
        width = integer(width, "width", minimum=1)
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
    m, n = A.shape[0], X.shape[0]
    require_memory(8 * (4 * m * n + 2 * (m + n) * min(N, _CHUNK)), what="empirical_ntk",
                   sizes={"m": m, "n": n, "width": N},
                   hint="the Gram matrix is dense: use fewer points")
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

    Never renormalised after dropping the all-zero pattern (``docs/math/ntk.md``).

    Parameters
    ----------
    patterns : Patterns
        From :func:`convexnn.sample_patterns` or :func:`convexnn.enumerate_patterns`.
    X : ndarray of shape (n, d), optional
        The data the patterns were built on (needed only for a Monte Carlo estimate).
    draws : int, default 100000
        Gaussian gates of the Monte Carlo estimate.
    seed : int or None, default 0
        Seed of the Monte Carlo estimate.

    Returns
    -------
    p : ndarray of shape (P,)
        The weight of each pattern in the NTK.
    se : ndarray of shape (P,)
        Its standard error (0 for exact probabilities).
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


def mu_scale(X: np.ndarray) -> float:
    """``||X||₂²``: the largest eigenvalue any simplex kernel ``K_η`` (η ∈ Δ) can have.

    ``K_η ⪯ Σ η_i ||D_i X||₂² I ⪯ ||X||₂² I``, so ``μ`` is naturally measured against it;
    there is no finite ``μ`` at which the zero solution is optimal.
    """
    return float(np.linalg.norm(X, 2) ** 2)


def check_eta(eta: Any, P: int, name: str = "eta") -> np.ndarray:
    """Kernel weights: a finite, non-negative array of shape (P,)."""
    eta = np.asarray(eta, dtype=np.float64)
    if eta.shape != (P,):
        raise InvalidInputError(f"{name} must have shape ({P},) (one weight per pattern); "
                                f"got {eta.shape}.")
    if not np.all(np.isfinite(eta)) or np.any(eta < 0):
        raise InvalidInputError(f"{name} must be finite and non-negative.")
    return eta


def kernel_ridge(X: np.ndarray, Y: np.ndarray, M: np.ndarray, eta: np.ndarray, mu: float
                 ) -> tuple[float, np.ndarray]:
    """Kernel ridge with ``K_η`` in closed form: ``J(η) = (μ/2)⟨Y, α⟩``, ``α = (K_η + μI)⁻¹Y``.

    One Cholesky factorisation of the n×n matrix ``K_η + μI``; the kernel
    ``K_η = Σ_i η_i D_i X Xᵀ D_i = (X Xᵀ) ∘ (M diag(η) Mᵀ)`` is formed by that Hadamard/GEMM
    identity (never P n×n matrices).

    Parameters
    ----------
    X : ndarray of shape (n, d)
        The inputs.
    Y : ndarray of shape (n, c)
        The targets, one column per output.
    M : ndarray of shape (n, P)
        The masks: column ``i`` is the diagonal of ``D_i`` (``Patterns.masks``).
    eta : ndarray of shape (P,)
        Non-negative kernel weights.
    mu : float
        The ridge ``μ > 0``.

    Returns
    -------
    value : float
        ``J(η) = (μ/2)⟨Y, α⟩``.
    alpha : ndarray of shape (n, c)
        ``(K_η + μI)⁻¹Y``; the weights are ``w_i = η_i Xᵀ D_i α``.
    """
    eta = check_eta(eta, M.shape[1])
    K = masked_gram(X, M, eta)
    K[np.diag_indices_from(K)] += mu
    _, alpha = cholesky_solve(K, Y)
    return 0.5 * mu * float(np.sum(Y * alpha)), alpha


def kernel_ridge_weights(X: np.ndarray, M: np.ndarray, eta: np.ndarray, alpha: np.ndarray
                         ) -> np.ndarray:
    """The weights of the kernel-ridge solution: ``W_i = η_i Xᵀ D_i α`` (P, d, c)."""
    return np.asarray(eta, dtype=np.float64)[:, None, None] * adjoint(X, M, alpha)


def cholesky_solve(K: np.ndarray, Y: np.ndarray) -> tuple[tuple, np.ndarray]:
    """Factor the symmetric positive definite ``K`` (overwritten) and solve ``K A = Y``."""
    factor = sla.cho_factor(K, lower=True, overwrite_a=True, check_finite=False)
    return factor, sla.cho_solve(factor, Y, check_finite=False)


class PatternKernels:
    """``XXᵀ`` and the float pattern matrix, formed once, for kernels ``K_η`` and the
    correlations ``Xᵀ D_i A`` of many weight vectors ``η`` (reweighting, the MKL bounds).

    :meth:`ridge` solves ``(K_η + μI) A = Y`` by whichever is cheaper: the n×n Cholesky,
    or — when the active patterns have fewer features than there are points,
    ``m = d·|{η_i > 0}| < n`` — the m×m system of the features ``F = [√η_i D_i X]``,
    ``A = (Y − F (FᵀF + μI)⁻¹ FᵀY)/μ``, whose Gram ``FᵀF = S (DᵀD) S`` comes from the Gram
    ``DᵀD`` of the whole design ``D = [D_i X]_i`` (dP × dP), formed ONCE and reused for
    every η and every μ (and ``DᵀY`` once per Y).
    """

    #: Largest design Gram (dP)² kept for the feature form, in entries.
    FEATURE_GRAM_MAX = 4_000_000

    def __init__(self, X: np.ndarray, M: np.ndarray):
        self.X = X
        self._XXt: np.ndarray | None = None
        self.Mf = np.asarray(M, dtype=np.float64, order="F")
        self.n = X.shape[0]
        self._design_gram: np.ndarray | None = None
        self._DtY: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def XXt(self) -> np.ndarray:
        if self._XXt is None:
            self._XXt = self.X @ self.X.T
        return self._XXt

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

    def uses_features(self, eta: np.ndarray) -> bool:
        """Whether :meth:`ridge` takes the feature form for these weights."""
        d, P = self.X.shape[1], self.Mf.shape[1]
        return d * int(np.count_nonzero(eta > 0)) < self.n and (d * P) ** 2 <= \
            self.FEATURE_GRAM_MAX

    def _features(self, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``DᵀD`` (dP × dP, column i·d + j = pattern i, feature j) and ``DᵀY`` (dP × c)."""
        if self._design_gram is None:
            n, d = self.X.shape
            D = (self.Mf[:, :, None] * self.X[:, None, :]).reshape(n, -1)
            self._design_gram = D.T @ D
        if self._DtY is None or self._DtY[0] is not Y:
            DtY = self.correlations(Y)  # (P, d, c): rows i·d + j of DᵀY
            self._DtY = (Y, DtY.reshape(-1, Y.shape[1]))
        return self._design_gram, self._DtY[1]

    def ridge(self, eta: np.ndarray, shift: float, Y: np.ndarray) -> np.ndarray:
        """``A = (K_η + shift·I)⁻¹ Y`` (n, c) by the cheaper of the two forms (class doc)."""
        if not self.uses_features(eta):
            return cholesky_solve(self.gram(eta, shift), Y)[1]
        DtD, DtY = self._features(Y)
        d = self.X.shape[1]
        active = np.flatnonzero(eta > 0)
        idx = (active[:, None] * d + np.arange(d)).ravel()
        s = np.repeat(np.sqrt(eta[active]), d)
        small = DtD[np.ix_(idx, idx)] * s[:, None] * s[None, :]
        small[np.diag_indices_from(small)] += shift
        z = sla.cho_solve(sla.cho_factor(small, lower=True, check_finite=False),
                          s[:, None] * DtY[idx], check_finite=False)  # (FᵀF + μI)⁻¹ FᵀY
        Wz = np.zeros((self.Mf.shape[1], d, Y.shape[1]))
        Wz[active] = (s[:, None] * z).reshape(active.size, d, Y.shape[1])
        return (Y - forward(self.X, self.Mf, Wz)) / shift


def kernel_ridge_dual_value(X: np.ndarray, Y: np.ndarray, M: np.ndarray, Z: np.ndarray,
                            eta: np.ndarray, mu: float) -> tuple[float, np.ndarray]:
    """Dual of the kernel ridge with weights ``η`` at the best multiple of ``Z``.

    Dual: ``max_Z ⟨Y, Z⟩ − ½||Z||² − (1/2μ) Σ_i η_i ||Xᵀ D_i Z||²`` (unconstrained, so every
    Z is feasible); at the optimum ``Z = μα`` = the residual. Returns the value at
    ``s*Z`` with the optimal ``s* ≥ 0`` and that point.
    """
    Z = np.asarray(Z, dtype=np.float64).reshape(Y.shape)
    q = float(np.sum(eta * group_norms(adjoint(X, M, Z)) ** 2))
    value, s = best_multiple(float(np.sum(Y * Z)), float(np.sum(Z * Z)) + q / mu)
    return value, s * Z


def lanckriet_value(Y: np.ndarray, Z: np.ndarray, top: float, mu: float
                    ) -> tuple[float, np.ndarray]:
    """Lanckriet dual of simplex MKL at the best multiple of ``Z``: a lower bound on ``p_MKL(μ)``.

    ``D(Z) = ⟨Y, Z⟩ − ½||Z||² − (1/2μ) max_i ||Xᵀ D_i Z||²`` for every Z (``top`` is
    ``max_i ||Xᵀ D_i Z||``; ``Z = μα`` from any α); the value at ``s*Z`` with the optimal
    ``s* ≥ 0`` is returned with that point.
    """
    value, s = best_multiple(float(np.sum(Y * Z)), float(np.sum(Z * Z)) + top * top / mu)
    return value, s * Z


class SpectralRidge:
    """Kernel ridge with one kernel ``K_η = Σ_i η_i D_i X Xᵀ D_i`` for many ridges ``μ``
    from ONE factorisation (a regularisation path).

    * **Feature form** when ``m = d·|{η_i > 0}| < n``: ``K_η = F Fᵀ`` with
      ``F = [√η_i D_i X]_i`` (n × m). With the eigendecomposition of the small Gram
      ``FᵀF = V Λ Vᵀ`` (O(n m² + m³), once) and the push-through identity
      ``(FFᵀ + μI)⁻¹ = (I − F (FᵀF + μI)⁻¹ Fᵀ)/μ``,

          α(μ) = (Y − B diag(1/(λ_k + μ)) b) / μ,   B = F V (n × m),  b = Bᵀ Y (m × c),

      so every μ costs O(n·m·c) (``B`` is kept as ``F`` and ``V``: ``B x = F (V x)``).
    * **Spectral form** otherwise: ``K_η = Q Λ Qᵀ`` (one ``eigh``, O(n³)), then
      ``α(μ) = Q diag(1/(λ_k + μ)) Qᵀ Y`` in O(n²c) per μ.

    Both give ``J(μ) = (μ/2)⟨Y, α(μ)⟩``. Eigenvalues below zero (rounding) are set to 0:
    ``K_η`` is positive semidefinite.
    """

    def __init__(self, X: np.ndarray, M: np.ndarray, eta: np.ndarray, Y: np.ndarray, *,
                 form: str | None = None):
        eta = check_eta(eta, M.shape[1])
        n, d = X.shape
        active = np.flatnonzero(eta > 0)
        m = d * active.size
        self.form = form or ("features" if m < n else "spectral")
        self.Y = Y
        if self.form == "features":
            require_memory(8 * (3 * n * m + 2 * m * m), what="SpectralRidge (feature form)",
                           sizes={"n": n, "m": m})
            F = (np.asarray(M[:, active], dtype=np.float64) * np.sqrt(eta[active]))
            F = (F[:, :, None] * X[:, None, :]).reshape(n, m)  # column i·d + j: √η_i D_i x^j
            lam, self.V = np.linalg.eigh(F.T @ F)
            self.B = F
            self.b = self.V.T @ (F.T @ Y)
        elif self.form == "spectral":
            require_memory(8 * 4 * n * n, what="SpectralRidge (eigendecomposition)",
                           sizes={"n": n})
            lam, self.B = np.linalg.eigh(masked_gram(X, M, eta))
            self.b = self.B.T @ Y
        else:
            raise InvalidInputError(f"form must be 'features' or 'spectral'; got {form!r}.")
        self.eigenvalues = np.maximum(lam, 0.0)
        self.rank_bound = m

    def alpha(self, mu: float) -> np.ndarray:
        """``α = (K_η + μI)⁻¹Y`` (n, c)."""
        scaled = self.b / (self.eigenvalues + mu)[:, None]
        if self.form == "features":
            return (self.Y - self.B @ (self.V @ scaled)) / mu
        return self.B @ scaled

    def solve(self, mu: float) -> tuple[float, np.ndarray]:
        """``J(μ) = (μ/2)⟨Y, α⟩`` and ``α``, as :func:`kernel_ridge` returns them."""
        alpha = self.alpha(mu)
        return 0.5 * mu * float(np.sum(self.Y * alpha)), alpha
