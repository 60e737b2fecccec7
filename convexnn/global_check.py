"""Global optimality of a solution over ALL activation patterns (``docs/math/relu.md``).

A solution computed on a set of patterns is optimal among networks whose neurons
have those patterns. It is the optimum over *every* network when its dual point
stays feasible for every pattern of the hyperplane arrangement of ``X``:

    ReLU:        max_{||u|| ≤ 1, S_i X u ≥ 0} |z^T D_i X u| ≤ λ   for every pattern i,
    gated ReLU:  ||X^T D_i z|| ≤ λ                                 for every pattern i,

with ``z = y − ŷ`` (Frobenius norms for several outputs). For the ReLU program the
left-hand side is ``max(||Π_{K_i}(X^T D_i z)||, ||Π_{K_i}(−X^T D_i z)||)`` with
``K_i = {u : S_i X u ≥ 0}``: one small non-negative least-squares problem per pattern
and sign (exact active-set method; skipped when the unconstrained maximiser already
lies in the cone). The multipliers it returns are the ``α_i, β_i`` of the dual, so
``t z`` with ``0 ≤ t ≤ λ / max_i value_i`` is exactly feasible for the dual over every
checked pattern and its value ``⟨y, tz⟩ − ½||tz||²`` (at the best such ``t``) is a lower
bound on the optimum over all of them — for one output and the full arrangement, on the
training objective of every network. The check reports that bound, the gap to the
solution's objective, and which patterns violate, by how much.

Each formulation says what its dual constraint is (``dual_constraint_values``); nothing
here knows a formulation by name. :func:`certify_global` checks a
:class:`~convexnn.solution.Solution`; :func:`check_patterns` is the same check on
prepared data (for ``convexnn verify``); :func:`global_certificate` turns a passed check
over the whole arrangement into a certificate of scope ``"all"`` (the augmentation loop
of :mod:`convexnn.methods.augment` and ``verify`` both use it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .certificate import DEFAULT_TOLERANCE, Certificate, make_certificate, relative_gap
from .errors import InvalidInputError, ProblemTooLargeError
from .formulations import Formulation, get_formulation
from .formulations.base import Primal
from .formulations.gated_relu import ball_dual_value
from .patterns import (
    Arrangement,
    Patterns,
    arrangement_size,
    enumerate_patterns,
    sample_patterns,
    unique_columns,
)
from .problem import ProblemData, ipm_scales, prepare, scaled_data
from .solution import Solution
from .threads import blas_threads
from .validation import integer

__all__ = ["GlobalCheck", "certify_global", "check_patterns", "scan_arrangement",
           "global_certificate",
           "resolve_candidates", "merge_patterns", "DEFAULT_MAX_PATTERNS"]

#: Largest arrangement enumerated by default before falling back to sampled candidates.
DEFAULT_MAX_PATTERNS = 20_000
#: Arrangements with more cells than this are checked streamed (:func:`scan_arrangement`)
#: rather than enumerated at once.
STREAM_ABOVE = 20_000


@dataclass(frozen=True, repr=False)
class GlobalCheck:
    """The dual constraints of a solution checked over a (large) set of patterns.

    Attributes
    ----------
    formulation : str
    scope : {"all", "sampled"}
        ``"all"`` when the checked patterns are the whole arrangement of ``X``.
    lam : float
    objective : float
        The solution's primal objective (recomputed in numpy).
    lower_bound : float
        Dual value of ``t (y − ŷ)``, exactly feasible for every checked pattern: a lower
        bound on the optimum over all of them.
    gap, relative_gap : float
        ``objective − lower_bound`` and the certificate's relative gap.
    tolerance : float
    passed : bool
        ``relative_gap ≤ tolerance`` and the primal's cone violation ≤ tolerance: the
        solution is optimal (to the tolerance) among networks with the checked patterns.
    values : ndarray (P,)
        Left-hand side of the dual constraint of each checked pattern at ``z = y − ŷ``.
    max_violation : float
        ``max_i values_i / λ − 1`` clipped at 0.
    patterns : Patterns
        The patterns checked (the candidates plus the solution's own) — for a streamed
        scan of the arrangement (:func:`scan_arrangement`) only the violating ones, with
        ``values`` theirs; ``checked`` counts all.
    violating : Patterns
        Checked patterns with ``values_i > λ (1 + tolerance)``, most violated first.
    violations : ndarray
        ``values_i / λ − 1`` of the violating patterns, in the same order.
    scale : float
        ``t ≤ λ / max_i values_i``: ``t (y − ŷ)`` is the dual point of ``lower_bound``.
    cone_violation : float
        The primal's relative cone violation (0 for the gated program).
    checks : mapping
        The primal's feasibility checks (the cone violation for the ReLU program).
    """

    formulation: str
    scope: str
    lam: float
    objective: float
    lower_bound: float
    gap: float
    relative_gap: float
    tolerance: float
    passed: bool
    values: np.ndarray
    max_violation: float
    patterns: Patterns
    violating: Patterns
    violations: np.ndarray
    scale: float = 1.0
    cone_violation: float = 0.0
    checks: Mapping[str, float] = field(default_factory=dict)
    checked_count: int | None = None

    @property
    def checked(self) -> int:
        """Number of patterns checked (a streamed scan keeps only the violating ones)."""
        return self.patterns.P if self.checked_count is None else int(self.checked_count)

    def as_dict(self) -> dict[str, Any]:
        """Scalars and counts as plain Python values (for JSON)."""
        return {
            "formulation": self.formulation,
            "scope": self.scope,
            "lam": float(self.lam),
            "objective": float(self.objective),
            "lower_bound": float(self.lower_bound),
            "gap": float(self.gap),
            "relative_gap": float(self.relative_gap),
            "tolerance": float(self.tolerance),
            "passed": bool(self.passed),
            "checked": self.checked,
            "violating": int(self.violating.P),
            "max_violation": float(self.max_violation),
            "scale": float(self.scale),
            "cone_violation": float(self.cone_violation),
        }

    def __repr__(self) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        return (
            f"GlobalCheck({verdict} [{self.scope}], {self.formulation}: checked "
            f"{self.checked} patterns, {self.violating.P} violating, max_violation="
            f"{self.max_violation:.3e};\n  objective={self.objective:.10g}, lower_bound="
            f"{self.lower_bound:.10g}, relative_gap={self.relative_gap:.3e} "
            f"(tolerance {self.tolerance:.1e}))"
        )


def _checkable(form: Formulation | str) -> Formulation:
    """The formulation, refused unless it has a pattern-wise dual constraint to check."""
    form = get_formulation(form)
    if not form.global_check:
        raise InvalidInputError(
            f"the global check applies to formulations with a pattern-wise dual constraint "
            f"(gated_relu, relu); got {form.name!r}."
        )
    return form


@dataclass(frozen=True)
class _ScaledPrimal:
    """A solution's primal on the data rescaled by powers of two (exact; see
    ``Formulation.certify``): ``X → X/a``, ``Y → Y/s``, the regularisation in ``unit``."""

    data: ProblemData
    primal: Primal
    unit: float
    s: float

    @classmethod
    def of(cls, form: Formulation, data: ProblemData, weights: Mapping[str, np.ndarray],
           lam: float) -> _ScaledPrimal:
        a, s = ipm_scales(data)
        unit = form.reg_unit(a, s)
        sd = scaled_data(data, a, s)
        w = {k: np.asarray(v, dtype=np.float64) * (1.0 if k in form.unscaled_weights else a / s)
             for k, v in weights.items()}
        return cls(sd, form.primal(sd, lam / unit, w), unit, s)

    def check(self, form: Formulation, lam: float, top: float, tolerance: float,
              **found: Any) -> GlobalCheck:
        """The :class:`GlobalCheck` whose largest dual-constraint value is ``top``.

        The lower bound is the dual value of ``t z`` with ``z = y − ŷ`` and the best
        ``0 ≤ t ≤ λ / top`` (``ball_dual_value``), mapped back to the data's scale (``s²``);
        ``found`` holds what the check found (scope, values, patterns, violations, …).
        """
        primal, s = self.primal, self.s
        lower, t = ball_dual_value(self.data.Y, primal.residual, top / self.unit,
                                   lam / self.unit)
        lower *= s * s
        objective = primal.objective * s * s
        rel = relative_gap(objective, lower)
        feasible = all(v <= tolerance for v in primal.checks.values())
        passed = bool(rel <= tolerance and feasible and np.isfinite(objective))
        return GlobalCheck(
            formulation=form.name, lam=float(lam), objective=objective, lower_bound=lower,
            gap=objective - lower, relative_gap=rel, tolerance=float(tolerance),
            passed=passed, max_violation=max(0.0, top / lam - 1.0), scale=t,
            cone_violation=float(primal.checks.get("cone_violation", 0.0)),
            checks=dict(primal.checks), **found,
        )


def merge_patterns(first: Patterns, second: Patterns) -> Patterns:
    """``first`` then the patterns of ``second`` not in it; scope taken from ``first``."""
    masks = np.hstack([first.masks, second.masks])
    gates = np.hstack([first.gates, second.gates])
    idx, _, _ = unique_columns(masks)
    return Patterns(masks=np.ascontiguousarray(masks[:, idx]),
                    gates=np.ascontiguousarray(gates[:, idx]),
                    counts=np.ones(idx.size, dtype=np.int64), draws=int(idx.size),
                    method=first.method, scope=first.scope)


def check_patterns(
    form: Formulation | str,
    data: ProblemData,
    weights: Mapping[str, np.ndarray],
    lam: float,
    candidates: Patterns,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
) -> GlobalCheck:
    """Check the dual constraints of a solution over ``candidates``, from arrays alone.

    Parameters
    ----------
    form : a formulation with a pattern-wise dual constraint (or its registered name).
    data : the prepared data the weights live on (X with its bias column, its patterns).
    weights : the formulation's weights (``{"W"}``, ``{"V", "U"}``), blocks (P, d, c).
    lam : float
    candidates : Patterns built on ``data.X`` — typically ``enumerate_patterns(data.X)``
        (scope ``"all"``). The solution's own patterns are added to them so that the
        lower bound applies to the solution's program too.
    tolerance : float
    """
    form = _checkable(form)
    X = data.X
    if candidates.masks.shape[0] != X.shape[0] or candidates.d != X.shape[1]:
        raise InvalidInputError(
            f"candidates were built for data of shape ({candidates.n}, {candidates.d}) but X "
            f"has shape {X.shape}; build them from the same X (with its bias column)."
        )
    # computed on the data rescaled by powers of two (exact; see Formulation.certify)
    sp = _ScaledPrimal.of(form, data, weights, lam)
    sd, unit, R = sp.data, sp.unit, sp.primal.residual
    checked = merge_patterns(candidates, data.patterns)
    values = form.dual_constraint_values(sd.X, checked.masks, R) * unit
    top = float(values.max(initial=0.0))
    ratio = values / lam - 1.0
    order = np.argsort(-ratio, kind="stable")
    bad = order[ratio[order] > tolerance]
    violating = checked.subset(bad)
    return sp.check(form, lam, top, tolerance, scope=candidates.scope, values=values,
                    patterns=checked, violating=replace(violating, scope="sampled"),
                    violations=ratio[bad])


def scan_arrangement(
    form: Formulation | str,
    data: ProblemData,
    weights: Mapping[str, np.ndarray],
    lam: float,
    cells: Arrangement | None = None,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    max_patterns: int = DEFAULT_MAX_PATTERNS,
    keep: int = 10_000,
) -> GlobalCheck:
    """:func:`check_patterns` over EVERY cell of the arrangement of ``data.X``, streamed.

    The cells come chunk by chunk (:class:`~convexnn.patterns.Arrangement`, or
    :func:`~convexnn.patterns.iter_arrangement` when ``cells`` is None), so memory does
    not grow with their number. Each chunk is screened against the dual: the gated
    constraint ``||Xᵀ D_i r||`` is one GEMM; for the ReLU program that norm bounds the
    cone-restricted value, and only cells whose bound (after a few greedy steps) exceeds
    λ get the exact NNLS (``form.dual_constraint_bounds``). The lower bound needs only
    the largest value, and every value above λ is exact, so the certificate is that of
    :func:`check_patterns` over the whole arrangement. The ``keep`` most violated cells
    are kept (most violated first) as ``violating``; ``patterns`` and ``values`` hold
    them, ``checked`` counts every cell. BLAS runs on one thread (small GEMMs).
    """
    form = _checkable(form)
    keep = integer(keep, "keep", minimum=1)
    if cells is None:
        cells = Arrangement(data.X, max_patterns=max_patterns, keep_bytes=0)
    elif cells.X.shape != data.X.shape or not np.array_equal(cells.X, data.X):
        raise InvalidInputError("the arrangement was built on other data than data.X.")
    sp = _ScaledPrimal.of(form, data, weights, lam)
    sd, unit, R = sp.data, sp.unit, sp.primal.residual
    threshold = lam / unit
    bounds = getattr(form, "dual_constraint_bounds", None)

    def values_of(M: np.ndarray) -> np.ndarray:
        vals = (bounds(sd.X, M, R, threshold) if bounds is not None
                else form.dual_constraint_values(sd.X, M, R))
        return vals * unit

    kept_v: list[np.ndarray] = []
    kept_m: list[np.ndarray] = []
    kept_g: list[np.ndarray] = []
    # the solution's own patterns are checked too (the bound then covers its program);
    # those that are cells of the arrangement are counted once
    width = (data.n + 7) // 8
    key_type = np.dtype((np.void, width))

    def keys_of(M: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.packbits(M, axis=0).T).view(key_type).ravel()

    own_keys = np.unique(keys_of(data.M))  # sorted; those found in a chunk are removed
    with blas_threads(1):
        own = values_of(data.M)
        top = float(own.max(initial=0.0))
        checked = 0
        for part in cells.chunks():
            vals = values_of(part.masks)
            checked += part.P
            if own_keys.size:
                found = keys_of(part.masks)
                at = np.minimum(np.searchsorted(own_keys, found), own_keys.size - 1)
                hit = own_keys[at] == found
                if hit.any():
                    own_keys = np.delete(own_keys, np.unique(at[hit]))
            top = max(top, float(vals.max(initial=0.0)))
            bad = np.nonzero(vals / lam - 1.0 > tolerance)[0]
            if bad.size:
                kept_v.append(vals[bad])
                kept_m.append(part.masks[:, bad])
                kept_g.append(part.gates[:, bad])
                if sum(v.size for v in kept_v) > 2 * keep:  # bounded: keep the worst
                    kept_v, kept_m, kept_g = _worst(kept_v, kept_m, kept_g, keep)
    checked += own_keys.size
    kept_v, kept_m, kept_g = _worst(kept_v, kept_m, kept_g, keep)
    values = kept_v[0] if kept_v else np.zeros(0)
    n, d = data.X.shape
    violating = Patterns(
        masks=kept_m[0] if kept_m else np.zeros((n, 0), dtype=bool),
        gates=kept_g[0] if kept_g else np.zeros((d, 0)),
        counts=np.ones(values.size, dtype=np.int64), draws=int(values.size),
        method="enumerate", scope="sampled", fingerprint=cells.fingerprint)
    return sp.check(form, lam, top, tolerance, scope="all", values=values,
                    patterns=violating, violating=violating, violations=values / lam - 1.0,
                    checked_count=checked)


def _worst(values: list[np.ndarray], masks: list[np.ndarray], gates: list[np.ndarray],
           keep: int) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """The ``keep`` largest values (largest first) with their masks and gates, as one
    array each (in lists, for appending)."""
    if not values:
        return [], [], []
    v = np.concatenate(values)
    m = np.concatenate(masks, axis=1)
    g = np.concatenate(gates, axis=1)
    order = np.argsort(-v, kind="stable")[:keep]
    return [v[order]], [np.ascontiguousarray(m[:, order])], [np.ascontiguousarray(g[:, order])]


def global_certificate(form: Formulation, data: ProblemData, weights: Mapping[str, np.ndarray],
                       check: GlobalCheck) -> tuple[Certificate, dict[str, np.ndarray]]:
    """The certificate of scope ``"all"`` of a check over the whole arrangement.

    Its dual objective is ``check.lower_bound``, the value of ``t (y − ŷ)`` — exactly
    feasible for every pattern — and its dual point is that ``z`` with the formulation's
    multipliers on the solution's own patterns (``form.dual_point``).
    """
    sp = _ScaledPrimal.of(form, data, weights, check.lam)  # like check_patterns
    dual = {k: v * sp.s
            for k, v in form.dual_point(sp.data, check.scale * sp.primal.residual).items()}
    cert = make_certificate(form.name, check.objective, check.lower_bound,
                            tolerance=check.tolerance, scope="all", checks=dict(check.checks))
    return cert, dual


def resolve_candidates(X: np.ndarray, candidates: Patterns | int | str | None, *,
                       max_patterns: int, seed: int | None, fallback: int) -> Patterns:
    """The patterns a check covers: given, sampled, or the arrangement (when it fits)."""
    if isinstance(candidates, Patterns):
        if candidates.masks.shape[0] != X.shape[0] or candidates.d != X.shape[1] or \
                not np.array_equal(candidates.masks, candidates.masks_for(X)):
            raise InvalidInputError(
                "candidates were not built on this X (with its bias column when the "
                "solution has one); build them with enumerate_patterns/sample_patterns on it."
            )
        return candidates
    if isinstance(candidates, (int, np.integer)) and not isinstance(candidates, bool):
        return sample_patterns(X, integer(candidates, "candidates", minimum=1), seed)
    if candidates is None or (isinstance(candidates, str) and candidates == "all"):
        try:
            return enumerate_patterns(X, max_patterns=max_patterns)
        except ProblemTooLargeError:
            if candidates == "all":
                raise
            return sample_patterns(X, fallback, seed)
    raise InvalidInputError(
        f"candidates must be a Patterns, a number of gates to sample, 'all' or None; "
        f"got {candidates!r}."
    )


def certify_global(
    solution: Solution,
    X: Any,
    y: Any,
    *,
    candidates: Patterns | int | str | None = None,
    max_patterns: int = DEFAULT_MAX_PATTERNS,
    tol: float | None = None,
    seed: int | None = 0,
) -> GlobalCheck:
    """Is ``solution`` optimal over every activation pattern of ``X``?

    Checks the formulation's dual constraint at ``z = y − ŷ``
    for every pattern of the arrangement of ``X`` (bias column appended when the
    solution has one) and returns the largest violation, the violating patterns and a
    lower bound on the optimum over all patterns. ``passed`` with scope ``"all"`` means
    the solution is the global optimum of training (one output) to ``tol``.

    Parameters
    ----------
    solution : Solution
        A solution of ``"relu"`` or ``"gated_relu"`` from :func:`convexnn.solve`.
    X, y : array_like
        The data the solution was computed on (checked against its hash).
    candidates : Patterns, int, "all" or None, optional
        The patterns to check: ``"all"`` enumerates the arrangement (raises
        :class:`~convexnn.errors.ProblemTooLargeError` beyond ``max_patterns`` cells;
        above ``STREAM_ABOVE`` cells it is streamed in chunks, :func:`scan_arrangement`,
        and the check keeps only the violating cells);
        an int samples that many Gaussian gates (scope ``"sampled"``: how far the
        solution is from optimal among a larger sample); None enumerates when possible
        and otherwise samples ``max(1000, 10 P)`` gates.
    max_patterns : int, default 20000
        The largest arrangement that is enumerated.
    tol : float, optional
        Relative tolerance of the check (default: the solution certificate's).
    seed : int or None, default 0
        Seed of the sampled gates, when gates are sampled.

    Returns
    -------
    GlobalCheck
        ``passed``, ``scope``, the largest violation of the dual constraint, the violating
        patterns and a lower bound on the optimum over the checked patterns.

    Examples
    --------
    >>> import convexnn as cn
    >>> data = cn.planted_relu(n=30, d=2, seed=0)
    >>> sol = cn.solve("relu", data.X, data.y, patterns=8, lam_ratio=0.1)
    >>> check = cn.certify_global(sol, data.X, data.y, candidates="all")
    >>> check.scope
    'all'
    """
    if not isinstance(solution, Solution):
        raise InvalidInputError(
            f"certify_global needs a Solution from convexnn.solve; got {type(solution).__name__}."
        )
    data = prepare(X, y, patterns=solution.patterns, bias=solution.bias)
    if solution.data_sha256 and data.sha256 != solution.data_sha256:
        raise InvalidInputError(
            "X, y are not the data this solution was computed on (their sha256 differs); "
            "pass the same arrays given to convexnn.solve."
        )
    tol = solution.certificate.tolerance if tol is None else float(tol)
    max_patterns = integer(max_patterns, "max_patterns", minimum=1)
    if candidates is None or (isinstance(candidates, str) and candidates == "all"):
        size = arrangement_size(data.X)
        if STREAM_ABOVE < size <= max_patterns:
            return scan_arrangement(solution.formulation, data, solution.weights, solution.reg,
                                    tolerance=tol, max_patterns=max_patterns)
    cands = resolve_candidates(data.X, candidates, max_patterns=max_patterns, seed=seed,
                               fallback=max(1000, 10 * data.P))
    return check_patterns(solution.formulation, data, solution.weights, solution.reg, cands,
                          tolerance=tol)
