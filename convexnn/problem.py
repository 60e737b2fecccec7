"""The data a convex program is built on: validated arrays, the bias column, the patterns.

The data path of every solve starts here::

    X, y ──prepare──▶ ProblemData(X with its bias column, Y (n × c), Patterns, hash)
                      ──formulation builds its program──▶ method solves ──▶ certificate

:func:`prepare` validates ``X, y`` once, hashes them once, appends the bias column once
and resolves ``patterns`` (a count to sample, ``"all"`` to enumerate, or a
:class:`~convexnn.patterns.Patterns` built on the same data).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .data import add_bias, data_sha256
from .errors import InvalidInputError
from .patterns import Patterns, data_fingerprint, enumerate_patterns, sample_patterns
from .validation import boolean, validate_xy

__all__ = ["ProblemData", "prepare", "ipm_scales", "scaled_data", "DEFAULT_PATTERN_COUNT"]

#: Number of Gaussian gates drawn when ``patterns`` is not given.
DEFAULT_PATTERN_COUNT = 100


@dataclass(frozen=True, repr=False)
class ProblemData:
    """Validated training data with its activation patterns.

    ``X`` already carries the bias column when ``bias`` is true; ``Y`` is (n, c).
    ``sha256`` hashes the data as given by the user (before the bias column).
    """

    X: np.ndarray
    Y: np.ndarray
    patterns: Patterns
    bias: bool = False
    single_output: bool = True
    sha256: str = ""

    @property
    def n(self) -> int:
        return int(self.X.shape[0])

    @property
    def d(self) -> int:
        return int(self.X.shape[1])

    @property
    def c(self) -> int:
        return int(self.Y.shape[1])

    @property
    def M(self) -> np.ndarray:
        return self.patterns.masks

    @property
    def P(self) -> int:
        return self.patterns.P

    def with_patterns(self, patterns: Patterns) -> ProblemData:
        return ProblemData(self.X, self.Y, patterns, self.bias, self.single_output, self.sha256)

    def __repr__(self) -> str:
        return (f"ProblemData(n={self.n}, d={self.d}, c={self.c}, P={self.P}, bias={self.bias}, "
                f"scope={self.patterns.scope!r})")


def _power_of_two(value: float) -> float:
    if not (np.isfinite(value) and value > 0):
        return 1.0
    return float(2.0 ** round(float(np.log2(value))))


def ipm_scales(data: ProblemData) -> tuple[float, float]:
    """Powers of two ``a ≈ rms(X)`` and ``s ≈ rms(Y)`` an interior-point solve works in.

    Interior-point solvers stop on absolute gap and feasibility tolerances sized for
    data of order one: on ``X·1e-6`` or ``y·1e-3`` they stop far from the optimum (or
    report a feasible problem infeasible). The programs are homogeneous, so they are
    solved on ``(X/a, Y/s)`` and the answer is mapped back by the program itself (see
    ``Program.set_reg`` and ``Program.solution``). Powers of two make the rescaling
    exact in floating point and leave data whose entries are of order one untouched
    (``a = s = 1``).
    """
    return _power_of_two(_rms(data.X)), _power_of_two(_rms(data.Y))


def _rms(A: np.ndarray) -> float:
    """Root mean square of the entries, without underflow or overflow of the squares."""
    top = float(np.max(np.abs(A), initial=0.0))
    if not 0.0 < top < np.inf:
        return top
    return top * float(np.sqrt(np.mean(np.square(A / top))))


def scaled_data(data: ProblemData, a: float, s: float) -> ProblemData:
    """``data`` with ``X/a`` and ``Y/s`` (``a > 0`` keeps every activation pattern)."""
    if a == 1.0 and s == 1.0:
        return data
    return ProblemData(data.X / a, data.Y / s, data.patterns, data.bias, data.single_output,
                       data.sha256)


def _check_range(X: np.ndarray, Y: np.ndarray) -> None:
    """Refuse data whose objective ``½||y||²`` (or the products ``x·y`` of the dual
    constraints) cannot be represented in floating point, naming the fix."""
    tiny, huge = np.finfo(np.float64).tiny * 1e6, np.finfo(np.float64).max / 1e6
    ry, rx = _rms(Y), _rms(X)
    scale = ry * ry * Y.size
    if ry > 0 and not tiny < scale < huge:
        raise InvalidInputError(
            f"y is too {'large' if scale >= huge else 'small'} for floating point (½||y||² "
            f"≈ {0.5 * ry * ry * Y.size:.1e}); rescale y towards entries of order one.")
    if rx > 0 and ry > 0 and not tiny < rx * ry < huge:
        raise InvalidInputError(
            f"X and y are too {'large' if rx * ry >= huge else 'small'} together for floating "
            f"point (|x|·|y| ≈ {rx * ry:.1e}); rescale them towards entries of order one.")


def _check_patterns(pats: Patterns, Xb: np.ndarray, bias: bool) -> Patterns:
    """``pats`` checked against ``Xb``: shapes, masks equal to ``1[X g ≥ 0]`` of the gates.

    Patterns built on other data (a different fingerprint) may still be used — they are
    the activation patterns of their gates on these data — but what held for the data they
    were built on does not carry over: scope ``"all"`` becomes ``"sampled"`` (the
    arrangement of these data may have other cells) and exact probabilities are dropped.
    """
    if pats.masks.shape[0] != Xb.shape[0] or pats.gates.shape[0] != Xb.shape[1]:
        raise InvalidInputError(
            f"patterns were built for data of shape ({pats.n}, {pats.d}) but the data "
            f"{'with its bias column ' if bias else ''}has shape {Xb.shape}; build them "
            f"from the same X{' with the bias column (add_bias(X))' if bias else ''}."
        )
    if not np.array_equal(pats.masks, pats.masks_for(Xb)):
        raise InvalidInputError(
            "patterns.masks do not match 1[X gates ≥ 0] on this X; the patterns were "
            "built on different data."
        )
    fingerprint = data_fingerprint(Xb)
    if pats.fingerprint != fingerprint:
        if pats.scope == "all" or pats.probabilities is not None:
            warnings.warn(
                "these patterns were built on other data: on this X they count as sampled "
                "patterns (scope 'sampled'); enumerate the patterns of this X for scope 'all'.",
                UserWarning, stacklevel=3)
        pats = replace(pats, scope="sampled", probabilities=None, fingerprint=fingerprint)
    return pats


def prepare(
    X: Any,
    y: Any,
    *,
    patterns: Patterns | int | str | None = None,
    bias: bool = False,
    seed: int | None = 0,
    max_patterns: int | None = None,
) -> ProblemData:
    """Validate ``X, y``, append the bias column, and resolve ``patterns``.

    ``patterns`` may be a :class:`Patterns` (built on the same, bias-augmented ``X``),
    an integer (that many Gaussian gates are sampled with ``seed``), ``"all"`` (exact
    enumeration, at most ``max_patterns`` cells) or ``None`` (sample
    ``DEFAULT_PATTERN_COUNT`` gates).
    """
    X, Y = validate_xy(X, y)
    _check_range(X, Y)
    single = np.ndim(y) == 1
    sha = data_sha256(X, Y)
    bias = boolean(bias, "bias")
    Xb = add_bias(X) if bias else X
    if patterns is None:
        pats = sample_patterns(Xb, DEFAULT_PATTERN_COUNT, seed)
    elif isinstance(patterns, Patterns):
        pats = _check_patterns(patterns, Xb, bias)
    elif isinstance(patterns, str):
        if patterns != "all":
            raise InvalidInputError(
                f"patterns must be a Patterns, a count, 'all' or None; got {patterns!r}."
            )
        kw = {} if max_patterns is None else {"max_patterns": max_patterns}
        pats = enumerate_patterns(Xb, **kw)
    elif isinstance(patterns, (int, np.integer)) and not isinstance(patterns, bool):
        pats = sample_patterns(Xb, int(patterns), seed)
    else:
        raise InvalidInputError(
            f"patterns must be a Patterns, a count, 'all' or None; got {type(patterns).__name__}."
        )
    if pats.P == 0:
        raise InvalidInputError("no non-zero activation pattern: draw more gates.")
    return ProblemData(Xb, Y, pats, bias, single, sha)
