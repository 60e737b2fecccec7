"""Solver-independent optimality certificates, computed in numpy.

A certificate never trusts the solver's report. From the returned primal point it
recomputes the primal objective; from the residual (and, when offered, the solver's
dual point) it builds a point that is *exactly* feasible for the dual by scaling,
evaluates the dual objective there and reports the gap. Weak duality makes
``gap ≥ 0`` an upper bound on the suboptimality of the primal point.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

__all__ = ["Certificate", "make_certificate", "relative_gap", "best_multiple", "ball_scale",
           "finite_candidates", "best_candidate", "DEFAULT_TOLERANCE"]

DEFAULT_TOLERANCE = 1e-6


@dataclass(frozen=True, repr=False)
class Certificate:
    """A duality-gap certificate.

    ``gap = objective − dual_objective``, ``relative_gap = gap / |objective|`` (no floor);
    ``certified`` is true iff ``relative_gap ≤ tolerance`` and every feasibility check
    in ``checks`` passed. ``scope`` says what the optimum is optimal among:
    ``"sampled"`` (networks whose activation patterns lie in the pattern set) or
    ``"all"`` (every network: the global optimum of training).

    Attributes
    ----------
    formulation : str
        The program certified.
    objective : float
        The primal objective ``p(W)``, recomputed in numpy from the weights.
    dual_objective : float
        The dual objective ``d(z)`` at a point ``z`` made exactly dual feasible in numpy;
        by weak duality ``d(z) ≤ p* ≤ p(W)``.
    gap, relative_gap : float
        ``p(W) − d(z) ≥ 0`` and ``gap / |p(W)|``.
    tolerance : float
        The relative gap the certificate had to reach.
    certified : bool
        ``relative_gap ≤ tolerance`` and no failed check.
    scope : {"sampled", "all"}
        What the optimum is optimal among.
    checks : mapping of str to float
        Feasibility measures of the primal point (e.g. the ReLU program's cone violation).
    failed : tuple of str
        The checks that exceeded the tolerance.
    """

    formulation: str
    objective: float
    dual_objective: float
    gap: float
    relative_gap: float
    tolerance: float
    certified: bool
    scope: str
    checks: Mapping[str, float] = field(default_factory=dict)
    failed: tuple[str, ...] = ()

    def rescaled(self, factor: float) -> Certificate:
        """The same certificate for the program multiplied by ``factor > 0`` (data given in
        other units): values scale, the relative gap, checks and verdict do not."""
        return replace(self, objective=self.objective * factor,
                       dual_objective=self.dual_objective * factor, gap=self.gap * factor)

    def as_dict(self) -> dict:
        return {
            "formulation": self.formulation,
            "objective": float(self.objective),
            "dual_objective": float(self.dual_objective),
            "gap": float(self.gap),
            "relative_gap": float(self.relative_gap),
            "tolerance": float(self.tolerance),
            "certified": bool(self.certified),
            "scope": self.scope,
            "checks": {k: float(v) for k, v in self.checks.items()},
            "failed": list(self.failed),
        }

    def __repr__(self) -> str:
        verdict = "CERTIFIED" if self.certified else "NOT CERTIFIED"
        extra = f", failed={list(self.failed)}" if self.failed else ""
        return (
            f"Certificate({verdict} [{self.scope}], {self.formulation}: "
            f"objective={self.objective:.10g}, dual_objective={self.dual_objective:.10g}, "
            f"relative_gap={self.relative_gap:.3e} (tolerance {self.tolerance:.1e}){extra})"
        )


def make_certificate(
    formulation: str,
    objective: float,
    dual_objective: float,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    scope: str = "sampled",
    checks: Mapping[str, float] | None = None,
    limits: Mapping[str, float] | None = None,
) -> Certificate:
    """Assemble a :class:`Certificate` from a primal and a dual value.

    ``checks`` maps names to non-negative violation measures; a check fails when its
    value exceeds ``limits[name]`` (default: ``tolerance``). A dual value above the
    primal beyond rounding (negative relative gap below ``−tolerance``) means one of the
    two points is not what it claims and fails the ``weak_duality`` check.
    """
    objective, dual_objective = float(objective), float(dual_objective)
    gap = objective - dual_objective
    rel = relative_gap(objective, dual_objective)
    checks = dict(checks or {})
    checks["weak_duality"] = max(0.0, -rel)
    limits = dict(limits or {})
    failed = tuple(
        name for name, value in checks.items()
        if not (math.isfinite(value) and value <= limits.get(name, tolerance))
    )
    finite = math.isfinite(objective) and math.isfinite(dual_objective)
    certified = finite and rel <= tolerance and not failed
    return Certificate(
        formulation=formulation,
        objective=objective,
        dual_objective=dual_objective,
        gap=gap,
        relative_gap=rel,
        tolerance=float(tolerance),
        certified=bool(certified),
        scope=scope,
        checks=checks,
        failed=failed,
    )


def relative_gap(objective: float, dual_objective: float) -> float:
    """``(objective − dual_objective) / |objective|`` — scale-invariant, with no floor.

    Rescaling X or y by any factor scales the objective and the gap alike, so neither the
    relative gap nor the verdict depends on the units of the data. An objective of exactly
    0 with gap 0 gives 0 (``y = 0``: the zero solution is exact); with a non-zero gap,
    ``±inf``.
    """
    gap = objective - dual_objective
    if objective == 0:
        return 0.0 if gap == 0 else math.copysign(math.inf, gap)
    return gap / abs(objective)


def best_multiple(yz: float, zz: float, s_max: float = math.inf) -> tuple[float, float]:
    """``max_{0 ≤ s ≤ s_max} s·yz − ½ s²·zz`` and its maximiser ``s``.

    Every dual value of convexnn has this form along the ray of a candidate point ``Z``:
    ``yz = ⟨Y, Z⟩`` and ``zz`` the quadratic term (``||Z||²``, plus the kernel term of the
    kernel programs); ``s_max`` keeps ``s·Z`` inside a dual ball (``λ / max_i ||Xᵀ D_i Z||``
    for the group programs, unbounded for the kernel programs). ``s = 0`` (the dual
    point 0, value 0) is always allowed.
    """
    if not (yz > 0 and zz > 0 and s_max > 0):
        return 0.0, 0.0
    s = min(yz / zz, s_max)
    return s * yz - 0.5 * s * s * zz, s


def ball_scale(top: float, radius: float) -> float:
    """``λ / top`` (the largest multiple keeping a point with constraint value ``top``
    inside the ball of radius ``λ``), ``inf`` when ``top`` is 0."""
    return radius / top if top > 0 else math.inf


def finite_candidates(shape: tuple[int, ...], candidates: Iterable[Any]) -> list[np.ndarray]:
    """The candidates that are finite arrays of ``shape`` (others are skipped)."""
    size = int(np.prod(shape))
    out = []
    for cand in candidates:
        try:
            arr = np.asarray(cand, dtype=np.float64)
        except (TypeError, ValueError):
            continue
        if arr.size == size and np.all(np.isfinite(arr)):
            out.append(arr.reshape(shape))
    return out


def best_candidate(candidates: Iterable[Any], value: Callable[[Any], tuple[float, Any] | None],
                   *, rtol: float = 1e-12) -> tuple[float, Any]:
    """The largest ``value(c)`` over ``candidates`` and the point it returned.

    ``value`` maps a candidate to ``(dual value, dual-feasible point)`` or None (unusable);
    every certificate keeps the best of its dual candidates this way. A later candidate
    replaces an earlier one only when better beyond rounding (``rtol``), so a certificate
    re-derived from a saved dual point (listed first) keeps that very point. Returns
    ``(-inf, None)`` when no candidate is usable.
    """
    best_val, best_point = -math.inf, None
    for cand in candidates:
        out = value(cand)
        if out is not None and (best_point is None or out[0] > best_val + rtol * abs(best_val)):
            best_val, best_point = out
    return best_val, best_point
