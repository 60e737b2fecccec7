"""Every check of user input in one place.

Arrays: :func:`validate_X` and :func:`validate_xy` (finite, numeric, non-empty, shapes that
fit). Scalars: :func:`positive`, :func:`integer`, :func:`boolean`, :func:`seed`,
:func:`threads`, :func:`choice`, :func:`tolerance`. Keyword options: :class:`Options`, the
base of the frozen dataclasses that hold each method's and formulation's options — its
fields are the allowed names, so no list of names is kept by hand.

Every failure raises :class:`~convexnn.errors.InvalidInputError` naming the argument,
the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import numpy as np

from .errors import InvalidInputError

__all__ = [
    "validate_X",
    "validate_xy",
    "positive",
    "non_negative",
    "integer",
    "boolean",
    "seed",
    "threads",
    "choice",
    "tolerance",
    "Options",
    "NoOptions",
    "reject_unknown",
]


# ---------------------------------------------------------------------------
# Arrays
# ---------------------------------------------------------------------------


def _as_float_array(value: Any, name: str) -> np.ndarray:
    if value is None:
        raise InvalidInputError(f"{name} is None; pass a numeric array.")
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged lists and similar
        raise InvalidInputError(f"{name} could not be converted to an array: {exc}") from None
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise InvalidInputError(
            f"{name} must be numeric; got dtype {arr.dtype}. Encode categorical columns first."
        )
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise InvalidInputError(f"{name} must be real; got complex dtype {arr.dtype}.")
    return np.asarray(arr, dtype=np.float64, order="C")


def _check_finite(arr: np.ndarray, name: str) -> None:
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        where = ", ".join(str(int(i)) for i in bad)
        raise InvalidInputError(
            f"{name} contains NaN or infinite values (first at index [{where}]); "
            "impute or drop them before solving."
        )


def validate_X(X: Any, name: str = "X", d: int | None = None) -> np.ndarray:
    """Return ``X`` as a finite float64 ``n × d`` array or raise :class:`InvalidInputError`."""
    arr = _as_float_array(X, name)
    if arr.ndim != 2:
        raise InvalidInputError(
            f"{name} must be 2-D (n samples × d features); got shape {arr.shape}. "
            "Reshape a single feature with X.reshape(-1, 1)."
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InvalidInputError(f"{name} is empty (shape {arr.shape}); it needs n ≥ 1 and d ≥ 1.")
    if d is not None and arr.shape[1] != d:
        raise InvalidInputError(f"{name} has {arr.shape[1]} columns; expected {d}.")
    _check_finite(arr, name)
    return arr


def validate_xy(X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate a data set: finite, numeric, non-empty, with matching rows.

    Parameters
    ----------
    X : array_like of shape (n, d)
        The inputs.
    y : array_like of shape (n,) or (n, c)
        The targets.

    Returns
    -------
    X : ndarray of shape (n, d), float64
        The inputs.
    Y : ndarray of shape (n, c), float64
        The targets; a 1-D ``y`` becomes one column.

    Raises
    ------
    InvalidInputError
        Naming the argument and what is wrong (shape, NaN, dtype, …).
    """
    X = validate_X(X, "X")
    Y = _as_float_array(y, "y")
    if Y.ndim == 0:
        raise InvalidInputError("y must be a vector of length n or an n×c matrix; got a scalar.")
    if Y.ndim > 2:
        raise InvalidInputError(f"y must be 1-D or 2-D; got shape {Y.shape}.")
    if Y.shape[0] != X.shape[0]:
        raise InvalidInputError(
            f"X has {X.shape[0]} rows but y has {Y.shape[0]}; they must match."
        )
    if Y.ndim == 2 and Y.shape[1] == 0:
        raise InvalidInputError("y has zero columns; it needs at least one output.")
    _check_finite(Y, "y")
    if Y.ndim == 1:
        Y = Y[:, None]
    return X, np.ascontiguousarray(Y)


# ---------------------------------------------------------------------------
# Scalars
# ---------------------------------------------------------------------------


def _real(value: Any, name: str, what: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        shape = f" of shape {np.shape(value)}" if isinstance(value, np.ndarray) else ""
        raise InvalidInputError(f"{name} must be {what}; got {type(value).__name__}{shape} "
                                f"{value!r}.")
    return float(value)


def positive(value: Any, name: str) -> float:
    """A finite number ``> 0``."""
    v = _real(value, name, "a positive number")
    if not math.isfinite(v) or v <= 0:
        raise InvalidInputError(f"{name} must be a positive finite number; got {value!r}.")
    return v


def non_negative(value: Any, name: str) -> float:
    """A finite number ``≥ 0``."""
    v = _real(value, name, "a non-negative number")
    if not math.isfinite(v) or v < 0:
        raise InvalidInputError(f"{name} must be a finite number ≥ 0; got {value!r}.")
    return v


def tolerance(value: Any, name: str = "tol") -> float:
    """A relative duality gap: a finite number in ``(0, 1)``."""
    v = positive(value, name)
    if v >= 1:
        raise InvalidInputError(f"{name} is a relative gap and must be < 1; got {value!r}.")
    return v


def integer(value: Any, name: str, minimum: int | None = None,
            maximum: int | None = None) -> int:
    """An integer (not a bool) within ``[minimum, maximum]``."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))
    if ok and minimum is not None and value < minimum:
        ok = False
    if ok and maximum is not None and value > maximum:
        ok = False
    if not ok:
        rng = ("" if minimum is None else f" ≥ {minimum}") + (
            "" if maximum is None else f"{' and' if minimum is not None else ''} ≤ {maximum}")
        raise InvalidInputError(f"{name} must be an integer{rng}; got {value!r}.")
    return int(value)


def boolean(value: Any, name: str) -> bool:
    """``True`` or ``False`` (numpy booleans accepted; 0/1 are not)."""
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidInputError(f"{name} must be True or False; got {value!r}.")
    return bool(value)


def seed(value: Any, name: str = "seed") -> int | None:
    """A random seed: a non-negative integer or None."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) \
            or value < 0:
        raise InvalidInputError(f"{name} must be a non-negative integer or None; got {value!r}.")
    return int(value)


def threads(value: Any, name: str = "threads") -> int | None:
    """BLAS threads: an integer ``≥ 1``, or None to leave BLAS as configured."""
    if value is None:
        return None
    return integer(value, name + " (BLAS threads, or None to leave BLAS as configured)",
                   minimum=1)


def choice(value: Any, name: str, choices: Iterable[Any]) -> Any:
    """One of ``choices``."""
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        raise InvalidInputError(f"{name} must be one of {list(choices)}; got {value!r}.")
    return value


# ---------------------------------------------------------------------------
# Keyword options
# ---------------------------------------------------------------------------


def reject_unknown(given: Iterable[str], allowed: Iterable[str], context: str) -> None:
    """Raise :class:`InvalidInputError` naming options outside ``allowed``."""
    allowed = sorted(set(allowed))
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise InvalidInputError(
            f"unexpected option(s) {unknown} for {context}; allowed: {allowed or 'none'}."
        )


@dataclasses.dataclass(frozen=True)
class Options:
    """Base of the typed keyword options of methods and formulations.

    Subclasses are frozen dataclasses whose fields are the option names and defaults;
    ``__post_init__`` validates them. :meth:`take` pops a subclass's fields from a dict
    of keyword arguments, so that the arguments left over are exactly the unknown ones.
    """

    #: Short name used in messages (e.g. ``"method='fast'"``).
    label: ClassVar[str] = ""

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def take(cls, kwargs: dict[str, Any]) -> Options:
        """Build from the entries of ``kwargs`` that are fields (removing them)."""
        mine = {k: kwargs.pop(k) for k in list(kwargs) if k in cls.names()}
        return cls(**mine)

    @classmethod
    def from_mapping(cls, given: Mapping[str, Any], context: str) -> Options:
        """Build from ``given``; any key that is not a field is an error naming ``context``."""
        reject_unknown(given, cls.names(), context)
        return cls(**dict(given))

    def given(self) -> dict[str, Any]:
        """The options that differ from their defaults."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            default = f.default if f.default is not dataclasses.MISSING else None
            if value is not default and not (np.isscalar(value) and value == default):
                out[f.name] = value
        return out


@dataclasses.dataclass(frozen=True)
class NoOptions(Options):
    """No options."""
