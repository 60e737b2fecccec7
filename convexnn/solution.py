"""The result record returned by every solve."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .certificate import Certificate
from .patterns import Patterns

__all__ = ["Solution"]


@dataclass(frozen=True, repr=False)
class Solution:
    """A solved convex program, its numpy certificate and the network it encodes.

    Attributes
    ----------
    formulation : str
        Registry name (``"gated_relu"``, ``"relu"``, …).
    status : str
        The solver's status (``"optimal"``, ``"optimal_inaccurate"``, …) or the
        driver's (``"converged"``, ``"max_iter"``) for non-cvxpy methods.
    solver : str
        Solver that produced the primal point (``"CLARABEL"``, …, or ``"numpy"``).
    method : str
        ``"ipm"`` (declarative cvxpy program) or a structured method.
    objective : float
        Primal objective recomputed in numpy (equals ``certificate.objective``).
    certificate : Certificate
        Duality-gap certificate computed in numpy from the solution.
    weights : Mapping[str, ndarray]
        Primal variables; for the group programs ``"W"`` of shape (P, d, c).
    dual : Mapping[str, ndarray]
        The dual-feasible point of the certificate (``"z"``: n × c, …).
    reg, reg_name : float, str
        The regularisation value and its name (``"lam"`` or ``"mu"``).
    patterns : Patterns
        The activation patterns the program was built on.
    network : object or None
        The non-convex network built from the weights (``predict``, ``objective``).
    timings : Mapping[str, float]
        ``build_s``, ``solve_s``, ``certify_s`` in seconds.
    """

    formulation: str
    status: str
    solver: str
    method: str
    objective: float
    certificate: Certificate
    weights: Mapping[str, np.ndarray]
    dual: Mapping[str, np.ndarray]
    reg: float
    reg_name: str
    patterns: Patterns
    network: Any
    timings: Mapping[str, float]
    n: int
    d: int
    outputs: int
    bias: bool = False
    single_output: bool = True
    data_sha256: str = ""
    info: Mapping[str, Any] = field(default_factory=dict)

    @property
    def lam(self) -> float:
        return self.reg

    @property
    def certified(self) -> bool:
        return self.certificate.certified

    @property
    def scope(self) -> str:
        return self.certificate.scope

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions of the recovered network on new inputs (raw features; bias added)."""
        if self.network is None:
            raise AttributeError(f"the {self.formulation} solution carries no network")
        return self.network.predict(X)

    def __repr__(self) -> str:
        c = self.certificate
        verdict = "certified" if c.certified else "NOT certified"
        neurons = getattr(self.network, "neurons", None)
        t = self.timings
        total = sum(float(v) for v in t.values())
        return (
            f"Solution({self.formulation}, {self.method}/{self.solver}, status={self.status!r},\n"
            f"  objective={self.objective:.10g}, dual_objective={c.dual_objective:.10g}, "
            f"relative_gap={c.relative_gap:.2e} → {verdict} (tol {c.tolerance:.0e}, "
            f"scope {c.scope!r}),\n"
            f"  {self.reg_name}={self.reg:.6g}, n={self.n}, d={self.d}, outputs={self.outputs}, "
            f"patterns={self.patterns.P}, neurons={neurons}, time={total:.3f}s)"
        )
