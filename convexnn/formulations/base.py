"""The contract every formulation implements.

A formulation is one convex program (its mathematics: ``docs/math/``). It says *what* is
optimal; the algorithms in :mod:`convexnn.methods` say *how* to get there and receive the
formulation as an argument. A formulation knows

* ``reg_max(data)``: the unit of ``lam_ratio`` (the smallest regularisation at which zero
  is optimal, or the kernel scale for the μ-regularised programs);
* ``primal(data, reg, weights)``: the primal objective, residual and feasibility checks
  of any weights;
* ``certify(data, reg, weights, dual)``: the numpy certificate from arrays alone (used
  again by ``convexnn verify``);
* ``network(data, weights)``: the non-convex network the weights encode;
* ``build_primal(data)`` / ``build_dual(data)``: its declarative cvxpy programs as
  :class:`Program` objects (interior-point method, ``convexnn explain``);
* ``dual_constraint_values(X, M, R)``: the left-hand side of its dual constraint for any
  patterns (the global check over every pattern of the arrangement), when it has one,
  and ``dual_point(data, Z)``: the dual point for ``z = Z`` with its multipliers;
* ``finalize(data, reg, weights, dual, options)``: post-processing of a method's weights
  (the ReLU program projects onto its cones) and what to record of it;
* ``methods``: the method names it offers, mapped to the algorithms of
  :mod:`convexnn.methods`, and ``choose_method`` for ``"auto"``.

Adding a formulation = one module with a subclass + one line in the registry
(``convexnn/formulations/__init__.py``); the registry-parametrised tests pick it up.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

from ..certificate import Certificate
from ..errors import ConvexNNError, InvalidInputError
from ..problem import ProblemData, ipm_scales, scaled_data
from ..solution import Solution
from ..validation import NoOptions, Options, positive

if TYPE_CHECKING:
    import cvxpy as cp

__all__ = ["Formulation", "SolveOptions", "Program", "Primal", "check_dpp"]


@dataclass(frozen=True)
class SolveOptions:
    """How to solve: solver (canonical cvxpy name), tolerance, method and its options.

    ``method_options`` are the typed options of the chosen method (e.g.
    :class:`convexnn.methods.group_lasso.Options`), ``form_options`` those of the
    formulation (e.g. ReLU's ``repair``).
    """

    solver: str = "CLARABEL"
    tol: float = 1e-6
    method: str = "ipm"
    verbose: bool = False
    solver_options: Mapping[str, Any] = field(default_factory=dict)
    progress: str = "quiet"  # a convexnn.progress mode
    memory_limit: Any = None
    method_options: Options = field(default_factory=NoOptions)
    form_options: Options = field(default_factory=NoOptions)


class Program(Protocol):
    """A built cvxpy program of a formulation (DPP: the regularisation is a parameter).

    It is built on data rescaled by powers of two (``X/a``, ``Y/s``, see
    :func:`convexnn.problem.ipm_scales`) and maps back itself.
    """

    problem: cp.Problem

    def set_reg(self, reg: float, a: float = 1.0, s: float = 1.0) -> None:
        """Set the regularisation parameter for the original data's ``reg``."""

    def solution(self, a: float = 1.0, s: float = 1.0
                 ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """The solved weights and dual candidates, mapped back to the original data."""


@dataclass(frozen=True)
class Primal:
    """The primal objective of some weights, their residual ``Y − Ŷ`` and feasibility checks."""

    objective: float
    residual: np.ndarray
    checks: Mapping[str, float] = field(default_factory=dict)


def check_dpp(problem: Any, what: str) -> None:
    """Refuse a built cvxpy problem that is not DPP (λ, η must re-solve without re-compiling)."""
    if not problem.is_dcp(dpp=True):
        raise ConvexNNError(f"internal error: the {what} is not DPP; please report it.")


class Formulation(ABC):
    """Base class of the registered convex programs."""

    name: ClassVar[str]
    title: ClassVar[str]
    reg_name: ClassVar[str] = "lam"
    #: Method names offered to users → algorithm names in :mod:`convexnn.methods`.
    methods: ClassVar[Mapping[str, str]] = {"ipm": "ipm"}
    #: The formulation's own typed options (besides the method's).
    Options: ClassVar[type[Options]] = NoOptions
    #: Plain-text mathematics shown by ``convexnn explain``.
    math: ClassVar[str] = ""
    #: Its programs as LaTeX display equations (amsmath), for ``explain --latex``.
    latex: ClassVar[tuple[str, ...]] = ()
    #: The page of ``docs/math/`` with the derivation.
    docs: ClassVar[str] = ""
    #: Whether its interior point with several outputs asks Clarabel for Pardiso when it
    #: loads (:func:`convexnn.solvers.factorisation`): measured faster for the group
    #: lasso's program, not for the ReLU program's cone constraints.
    pardiso_outputs: ClassVar[bool] = False

    # -- the program ------------------------------------------------------------------

    def factor_outputs(self, data: ProblemData) -> int:
        """The number of outputs that chooses Clarabel's factorisation for this
        formulation's interior point (:func:`convexnn.solvers.factorisation`): ``data.c``
        when it wants Pardiso for several outputs (``pardiso_outputs``), else 1."""
        return data.c if self.pardiso_outputs else 1

    @abstractmethod
    def reg_max(self, data: ProblemData) -> float:
        """The unit of ``lam_ratio`` (``λ_max``, or the kernel scale for μ)."""

    @abstractmethod
    def primal(self, data: ProblemData, reg: float, weights: Mapping[str, np.ndarray]
               ) -> Primal:
        """Objective, residual and feasibility checks of ``weights``."""

    #: Weights that do not scale with the data (kernel weights on the simplex).
    unscaled_weights: ClassVar[tuple[str, ...]] = ("eta", "p")

    def certify(self, data: ProblemData, reg: float, weights: Mapping[str, np.ndarray],
                dual: Mapping[str, np.ndarray] | None = None, *, tol: float = 1e-6
                ) -> tuple[Certificate, dict[str, np.ndarray]]:
        """Numpy certificate of ``weights`` (and optionally a candidate dual point).

        The programs are homogeneous: on ``(X/a, Y/s)`` the weights are ``(a/s) W``, the
        dual point ``z/s``, the regularisation ``reg / reg_unit(a, s)`` and every value is
        divided by ``s²``. The certificate is computed there, with ``a, s`` the powers of two
        of :func:`~convexnn.problem.ipm_scales` (an exact rescaling), and mapped back — so
        no square overflows or underflows whatever the units of the data, and the relative
        gap and the verdict are the same for data given in any units.
        """
        a, s = ipm_scales(data)
        if a == 1.0 and s == 1.0:
            return self._certify(data, reg, weights, dual, tol=tol)
        w = {k: (np.asarray(v, dtype=np.float64) if k in self.unscaled_weights
                 else np.asarray(v, dtype=np.float64) * (a / s)) for k, v in weights.items()}
        z = None if dual is None else {k: np.asarray(v, dtype=np.float64) / s
                                       for k, v in dual.items()}
        cert, point = self._certify(scaled_data(data, a, s), reg / self.reg_unit(a, s), w, z,
                                    tol=tol)
        return cert.rescaled(s * s), {k: v * s for k, v in point.items()}

    @abstractmethod
    def _certify(self, data: ProblemData, reg: float, weights: Mapping[str, np.ndarray],
                 dual: Mapping[str, np.ndarray] | None = None, *, tol: float = 1e-6
                 ) -> tuple[Certificate, dict[str, np.ndarray]]:
        """The certificate on ``data`` as given (called by :meth:`certify` on data whose
        entries are of order one)."""

    def network(self, data: ProblemData, weights: Mapping[str, np.ndarray]) -> Any:
        """The non-convex network encoded by ``weights`` (None when there is none)."""
        return None

    def build_primal(self, data: ProblemData) -> Program | None:
        """The declarative primal program (None when the formulation has none)."""
        return None

    def build_dual(self, data: ProblemData) -> Program | None:
        """The declarative dual program (None when the formulation has none)."""
        return None

    def build_problems(self, data: ProblemData, reg: float) -> dict[str, cp.Problem]:
        """The cvxpy problems at ``reg`` on ``data``, by label (for teaching and ``explain``)."""
        out = {}
        for label, program in (("primal", self.build_primal(data)),
                               ("dual", self.build_dual(data))):
            if program is not None:
                program.set_reg(reg)
                out[label] = program.problem
        return out

    def ipm_size(self, data: ProblemData) -> tuple[int, int]:
        """Non-zeros and rows (variables + cone rows) of the primal program (memory guard)."""
        raise NotImplementedError(f"{self.name} has no interior-point program.")

    #: Whether :meth:`dual_constraint_values` exists (global optimality over all patterns).
    global_check: ClassVar[bool] = False

    def dual_constraint_values(self, X: np.ndarray, M: np.ndarray, R: np.ndarray) -> np.ndarray:
        """Left-hand side of the dual constraint of every pattern (columns of M) at ``z = R``."""
        raise InvalidInputError(
            f"the global check over all patterns applies to formulations with a pattern-wise "
            f"dual constraint; {self.name} has none."
        )

    def dual_point(self, data: ProblemData, Z: np.ndarray) -> dict[str, np.ndarray]:
        """The full dual point of the program for ``z = Z`` (with its multipliers, if any)."""
        return {"z": Z}

    def zero_weights(self, data: ProblemData) -> dict[str, np.ndarray] | None:
        """The all-zero weights, when some finite regularisation makes them optimal (None
        otherwise)."""
        return None

    def zero_threshold(self, data: ProblemData) -> float:
        """A regularisation at and above which the zero weights are optimal (an upper bound
        on ``reg_max`` that is cheap to compute); ``inf`` when there is none."""
        return np.inf

    def finalize(self, data: ProblemData, reg: float, weights: dict[str, np.ndarray],
                 dual: Mapping[str, np.ndarray], options: Options
                 ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """A method's weights as the solution reports them, and what to record in ``info``."""
        return weights, {}

    # -- choosing a method and the regularisation -----------------------------------

    def choose_method(self, data: ProblemData, method: str) -> str:
        """Resolve ``"auto"`` (the first method offered) and check that ``method`` is offered."""
        if method == "auto":
            return next(iter(self.methods))
        if method not in self.methods:
            raise InvalidInputError(
                f"method {method!r} is not available for {self.name}; choose one of "
                f"{['auto', *self.methods]}."
            )
        return method

    def reg_unit(self, a: float, s: float) -> float:
        """How the regularisation scales with the data: ``(X, Y) → (aX, sY)`` maps ``λ`` to
        ``a s λ`` (the group programs) and ``μ`` to ``a² μ`` (the kernel programs)."""
        return a * s if self.reg_name == "lam" else a * a

    def scaled_reg_max(self, data: ProblemData) -> tuple[float, float]:
        """``reg_max(data)`` computed on the data rescaled by powers of two (no underflow or
        overflow whatever the units), and the size of the data it is relative to
        (``||X||₂ ||Y||_F`` for λ, ``||X||₂²`` for μ)."""
        a, s = ipm_scales(data)
        scaled = scaled_data(data, a, s)
        unit = self.reg_unit(a, s)
        xnorm = float(np.linalg.norm(scaled.X, 2))
        size = xnorm * float(np.linalg.norm(scaled.Y)) if self.reg_name == "lam" else xnorm ** 2
        return self.reg_max(scaled) * unit, size * unit

    def reg_scale(self, data: ProblemData) -> float:
        """``reg_max(data)``, the unit of ``lam_ratio``; refuses a scale that is zero (up to
        rounding, relative to the size of the data) with the fix."""
        top, size = self.scaled_reg_max(data)
        a, s = ipm_scales(data)
        unit = self.reg_unit(a, s)
        if not 0.0 < unit < np.inf:
            raise InvalidInputError(
                f"{self.reg_name}_max of these data is not representable in floating point "
                f"(the data are scaled by about 2^{np.log2(a):.0f} in X and 2^{np.log2(s):.0f} "
                "in y); rescale X and y towards entries of order one.")
        if not top > 1e-10 * size:
            if self.reg_name == "lam":
                why = ("y is orthogonal to every pattern (λ_max is zero up to rounding, e.g. "
                       "y = 0 or duplicate rows with opposite targets), so w = 0 is optimal for "
                       "every λ > 0")
            else:
                why = "X is zero, so every kernel is zero"
            raise InvalidInputError(
                f"{self.reg_name}_ratio cannot be used: {why}; give {self.reg_name} explicitly."
            )
        return top

    def resolve_reg(self, data: ProblemData, reg: Any = None, ratio: Any = None) -> float:
        """``reg`` itself, or ``ratio · reg_max(data)`` (default ratio 0.1)."""
        name = self.reg_name
        if reg is not None and ratio is not None:
            raise InvalidInputError(f"give either {name} or {name}_ratio, not both.")
        if reg is not None:
            return positive(reg, name)
        ratio = positive(0.1 if ratio is None else ratio, f"{name}_ratio")
        return ratio * self.reg_scale(data)

    # -- the solution -----------------------------------------------------------------

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

    def __repr__(self) -> str:
        return f"<formulation {self.name!r}: {self.title}; methods {list(self.methods)}>"
