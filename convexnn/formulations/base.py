"""The contract every formulation implements, and the data it receives.

A formulation is one convex program of SPEC.md. It knows

* ``reg_max(data)``: the smallest regularisation at which the zero solution is optimal
  (``lam_ratio`` is relative to it);
* ``solve(data, reg, options)``: a :class:`~convexnn.solution.Solution` whose
  certificate was computed by ``certify``;
* ``certify(data, reg, weights, dual)``: the numpy certificate from saved arrays
  alone (used again by ``convexnn verify``);
* ``network(data, weights)``: the non-convex network the weights encode.

Adding a formulation = one module with a subclass + one line in the registry
(``convexnn/formulations/__init__.py``).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..certificate import Certificate
from ..data import add_bias, data_sha256, validate_xy
from ..errors import ConvexNNError, InvalidInputError
from ..patterns import Patterns, enumerate_patterns, sample_patterns
from ..solution import Solution

__all__ = ["ProblemData", "SolveOptions", "Formulation", "prepare", "check_dpp", "ipm_scales",
           "scaled_data"]

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
    solved on ``(X/a, Y/s)`` and the answer is mapped back (group lasso and ReLU
    program: ``λ' = λ/(a s)``, ``W = (s/a) W'``, dual points ``z = s z'``; MKL:
    ``μ' = μ/a²``). Powers of two make the rescaling exact in floating point and leave
    data whose entries are of order one untouched (``a = s = 1``).
    """
    n = max(data.n, 1)
    a = _power_of_two(float(np.linalg.norm(data.X)) / np.sqrt(n * data.d))
    s = _power_of_two(float(np.linalg.norm(data.Y)) / np.sqrt(n * data.c))
    return a, s


def scaled_data(data: ProblemData, a: float, s: float) -> ProblemData:
    """``data`` with ``X/a`` and ``Y/s`` (``a > 0`` keeps every activation pattern)."""
    if a == 1.0 and s == 1.0:
        return data
    return ProblemData(data.X / a, data.Y / s, data.patterns, data.bias, data.single_output,
                       data.sha256)


def prepare(
    X: Any,
    y: Any,
    *,
    patterns: Patterns | int | str | None = None,
    bias: bool = False,
    seed: int | None = 0,
) -> ProblemData:
    """Validate ``X, y``, append the bias column, and resolve ``patterns``.

    ``patterns`` may be a :class:`Patterns` (built on the same, bias-augmented ``X``),
    an integer (that many Gaussian gates are sampled with ``seed``), ``"all"`` (exact
    enumeration) or ``None`` (sample ``DEFAULT_PATTERN_COUNT`` gates).
    """
    X, Y = validate_xy(X, y)
    single = np.ndim(y) == 1
    sha = data_sha256(X, Y)
    if not isinstance(bias, (bool, np.bool_)):
        raise InvalidInputError(f"bias must be True or False; got {bias!r}.")
    Xb = add_bias(X) if bias else X
    if patterns is None:
        pats = sample_patterns(Xb, DEFAULT_PATTERN_COUNT, seed)
    elif isinstance(patterns, Patterns):
        pats = patterns
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
    elif isinstance(patterns, str):
        if patterns != "all":
            raise InvalidInputError(
                f"patterns must be a Patterns, a count, 'all' or None; got {patterns!r}."
            )
        pats = enumerate_patterns(Xb)
    elif isinstance(patterns, (int, np.integer)) and not isinstance(patterns, bool):
        pats = sample_patterns(Xb, int(patterns), seed)
    else:
        raise InvalidInputError(
            f"patterns must be a Patterns, a count, 'all' or None; got {type(patterns).__name__}."
        )
    if pats.P == 0:
        raise InvalidInputError("no non-zero activation pattern: draw more gates.")
    return ProblemData(Xb, Y, pats, bool(bias), single, sha)


def check_dpp(problem: Any, what: str) -> None:
    """Refuse a built cvxpy problem that is not DPP (λ, η must re-solve without re-compiling)."""
    if not problem.is_dcp(dpp=True):
        raise ConvexNNError(f"internal error: the {what} is not DPP; please report it.")


@dataclass(frozen=True)
class SolveOptions:
    """How to solve: solver (canonical cvxpy name), tolerance, method and extras."""

    solver: str = "CLARABEL"
    tol: float = 1e-6
    method: str = "ipm"
    verbose: bool = False
    solver_options: Mapping[str, Any] = field(default_factory=dict)
    progress: bool = False


class Formulation(ABC):
    """Base class of the registered convex programs."""

    name: ClassVar[str]
    title: ClassVar[str]
    reg_name: ClassVar[str] = "lam"
    methods: ClassVar[tuple[str, ...]] = ("ipm",)
    #: Plain-text mathematics shown by ``convexnn explain``.
    math: ClassVar[str] = ""

    @abstractmethod
    def reg_max(self, data: ProblemData) -> float:
        """Smallest regularisation at which zero is optimal."""

    @abstractmethod
    def solve(self, data: ProblemData, reg: float, options: SolveOptions, **kwargs: Any
              ) -> Solution:
        """Solve at regularisation ``reg`` and certify."""

    @abstractmethod
    def certify(self, data: ProblemData, reg: float, weights: Mapping[str, np.ndarray],
                dual: Mapping[str, np.ndarray] | None = None, *, tol: float = 1e-6
                ) -> tuple[Certificate, dict[str, np.ndarray]]:
        """Numpy certificate of ``weights`` (and optionally a candidate dual point)."""

    def network(self, data: ProblemData, weights: Mapping[str, np.ndarray]) -> Any:
        """The non-convex network encoded by ``weights`` (None when there is none)."""
        return None

    def reject_options(self, given: Mapping[str, Any], allowed: Any = (),
                       context: str = "") -> None:
        """Raise :class:`InvalidInputError` naming options outside ``allowed``."""
        unknown = sorted(set(given) - set(allowed))
        if unknown:
            raise InvalidInputError(
                f"unexpected option(s) {unknown} for {self.name}{context}; "
                f"allowed: {sorted(allowed) or 'none'}."
            )

    def choose_method(self, data: ProblemData, method: str) -> str:
        """Resolve ``"auto"`` and check that ``method`` is offered."""
        if method == "auto":
            return self.methods[0]
        if method not in self.methods:
            raise InvalidInputError(
                f"method {method!r} is not available for {self.name}; choose one of "
                f"{['auto', *self.methods]}."
            )
        return method

    def make_solution(
        self,
        data: ProblemData,
        reg: float,
        weights: Mapping[str, np.ndarray],
        options: SolveOptions,
        *,
        status: str,
        solver: str,
        method: str,
        build_s: float,
        solve_s: float,
        dual: Mapping[str, np.ndarray] | None = None,
        info: Mapping[str, Any] | None = None,
    ) -> Solution:
        """Certify ``weights``, build the network and assemble the :class:`Solution`."""
        start = time.perf_counter()
        cert, dual_point = self.certify(data, reg, weights, dual, tol=options.tol)
        net = self.network(data, weights)
        certify_s = time.perf_counter() - start
        return Solution(
            formulation=self.name,
            status=status,
            solver=solver,
            method=method,
            objective=cert.objective,
            certificate=cert,
            weights=dict(weights),
            dual=dual_point,
            reg=float(reg),
            reg_name=self.reg_name,
            patterns=data.patterns,
            network=net,
            timings={"build_s": build_s, "solve_s": solve_s, "certify_s": certify_s},
            n=data.n,
            d=data.d - int(data.bias),
            outputs=data.c,
            bias=data.bias,
            single_output=data.single_output,
            data_sha256=data.sha256,
            info=dict(info or {}),
        )
