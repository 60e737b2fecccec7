"""Solver-independent optimality certificates, computed in numpy.

A certificate never trusts the solver's report. From the returned primal point it
recomputes the primal objective; from the residual (and, when offered, the solver's
dual point) it builds a point that is *exactly* feasible for the dual by scaling,
evaluates the dual objective there and reports the gap. Weak duality makes
``gap ≥ 0`` an upper bound on the suboptimality of the primal point.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from .ops import adjoint, forward, group_norms

__all__ = ["Certificate", "make_certificate", "gated_relu_certificate", "scale_to_ball"]

DEFAULT_TOLERANCE = 1e-6


@dataclass(frozen=True, repr=False)
class Certificate:
    """A duality-gap certificate.

    ``gap = objective − dual_objective``, ``relative_gap = gap / max(|objective|, 1e-12)``;
    ``certified`` is true iff ``relative_gap ≤ tolerance`` and every feasibility check
    in ``checks`` passed. ``scope`` says what the optimum is optimal among:
    ``"sampled"`` (networks whose activation patterns lie in the pattern set) or
    ``"all"`` (every network: the global optimum of training).
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
    rel = gap / max(abs(objective), 1e-12)
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


def scale_to_ball(Z: np.ndarray, norms: np.ndarray, radius: float) -> np.ndarray:
    """Scale ``Z`` so that ``max(norms) · scale ≤ radius`` (norms are of linear maps of Z)."""
    top = float(np.max(norms, initial=0.0))
    return Z if top <= radius else Z * (radius / top)


def gated_relu_certificate(
    X: np.ndarray,
    Y: np.ndarray,
    M: np.ndarray,
    W: np.ndarray,
    lam: float,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    scope: str = "sampled",
    duals: Iterable[np.ndarray] = (),
    formulation: str = "gated_relu",
) -> tuple[Certificate, np.ndarray]:
    """Certificate of the group lasso of SPEC §1 for any primal ``W`` (P, d, c).

    Primal ``½||Σ D_i X W_i − Y||² + λ Σ ||W_i||_F``. Dual-feasible point: the residual
    ``R = Y − Ŷ`` (or any candidate in ``duals``) scaled by ``min(1, λ / max_i
    ||X^T D_i R||_F)``; dual value ``⟨Y, Z⟩ − ½||Z||²``. The best candidate is kept.

    Returns
    -------
    certificate : Certificate
    Z : ndarray (n, c) — the dual-feasible point that produced ``dual_objective``.
    """
    R = Y - forward(X, M, W)
    primal = 0.5 * float(np.sum(R * R)) + lam * float(np.sum(group_norms(W)))
    best_val, best_Z = -np.inf, np.zeros_like(Y)
    for cand in (R, *duals):
        cand = np.asarray(cand, dtype=np.float64).reshape(Y.shape)
        if not np.all(np.isfinite(cand)):
            continue
        Z = scale_to_ball(cand, group_norms(adjoint(X, M, cand)), lam)
        val = float(np.sum(Y * Z) - 0.5 * np.sum(Z * Z))
        if val > best_val:
            best_val, best_Z = val, Z
    cert = make_certificate(formulation, primal, best_val, tolerance=tolerance, scope=scope)
    return cert, best_Z
