"""Global optimality of a solution over ALL activation patterns (SPEC §2).

A solution computed on a set of patterns is optimal among networks whose neurons
have those patterns. It is the optimum over *every* network when its dual point
stays feasible for every pattern of the hyperplane arrangement of ``X``:

    ReLU:        max_{||u|| ≤ 1, S_i X u ≥ 0} |z^T D_i X u| ≤ λ   for every pattern i,
    gated ReLU:  ||X^T D_i z|| ≤ λ                                 for every pattern i,

with ``z = y − ŷ`` (Frobenius norms for several outputs). For the ReLU program the
left-hand side is ``max(||Π_{K_i}(X^T D_i z)||, ||Π_{K_i}(−X^T D_i z)||)`` with
``K_i = {u : S_i X u ≥ 0}``: one small non-negative least-squares problem per pattern
and sign (exact active-set method; skipped when the unconstrained maximiser already
lies in the cone). The multipliers it returns are the ``α_i, β_i`` of SPEC §2, so
``t z`` with ``t = min(1, λ / max_i value_i)`` is exactly feasible for the dual over
every checked pattern and ``⟨y, tz⟩ − ½||tz||²`` is a lower bound on the optimum over
all of them — for one output and the full arrangement, on the training objective of
every ReLU network. The check reports that bound, the gap to the solution's objective,
and which patterns violate, by how much.

:func:`certify_global` checks a :class:`~convexnn.solution.Solution`;
:func:`check_patterns` is the same check on arrays (for ``convexnn verify``);
:func:`augment_loop` is the cutting-plane loop behind ``solve("relu", …, augment=True)``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .certificate import DEFAULT_TOLERANCE, make_certificate
from .cones import cone_violation, dual_norms, support_values
from .errors import InvalidInputError, ProblemTooLargeError
from .formulations.base import Formulation, ProblemData, SolveOptions, prepare
from .ops import adjoint, as_blocks, forward, group_norms
from .patterns import Patterns, enumerate_patterns, sample_patterns, unique_columns
from .solution import Solution

__all__ = ["GlobalCheck", "certify_global", "check_patterns", "augment_loop",
           "check_augment_options", "DEFAULT_MAX_PATTERNS"]

#: Largest arrangement enumerated by default before falling back to sampled candidates.
DEFAULT_MAX_PATTERNS = 20_000
_FORMULATIONS = ("relu", "gated_relu")


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
        ``objective − lower_bound`` and ``gap / max(|objective|, 1e-12)``.
    tolerance : float
    passed : bool
        ``relative_gap ≤ tolerance`` and the primal's cone violation ≤ tolerance: the
        solution is optimal (to the tolerance) among networks with the checked patterns.
    values : ndarray (P,)
        Left-hand side of the dual constraint of each checked pattern at ``z = y − ŷ``.
    max_violation : float
        ``max_i values_i / λ − 1`` clipped at 0.
    patterns : Patterns
        The patterns checked (the candidates plus the solution's own).
    violating : Patterns
        Checked patterns with ``values_i > λ (1 + tolerance)``, most violated first.
    violations : ndarray
        ``values_i / λ − 1`` of the violating patterns, in the same order.
    scale : float
        ``t = min(1, λ / max_i values_i)``: ``t (y − ŷ)`` is the dual point of ``lower_bound``.
    cone_violation : float
        The primal's relative cone violation (0 for the gated program).
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
            "checked": int(self.patterns.P),
            "violating": int(self.violating.P),
            "max_violation": float(self.max_violation),
            "scale": float(self.scale),
            "cone_violation": float(self.cone_violation),
        }

    def __repr__(self) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        return (
            f"GlobalCheck({verdict} [{self.scope}], {self.formulation}: checked "
            f"{self.patterns.P} patterns, {self.violating.P} violating, max_violation="
            f"{self.max_violation:.3e};\n  objective={self.objective:.10g}, lower_bound="
            f"{self.lower_bound:.10g}, relative_gap={self.relative_gap:.3e} "
            f"(tolerance {self.tolerance:.1e}))"
        )


def _merge(first: Patterns, second: Patterns) -> Patterns:
    """``first`` then the patterns of ``second`` not in it; scope taken from ``first``."""
    masks = np.hstack([first.masks, second.masks])
    gates = np.hstack([first.gates, second.gates])
    idx, _, _ = unique_columns(masks)
    return Patterns(masks=np.ascontiguousarray(masks[:, idx]),
                    gates=np.ascontiguousarray(gates[:, idx]),
                    counts=np.ones(idx.size, dtype=np.int64), draws=int(idx.size),
                    method=first.method, scope=first.scope)


def _constraint_values(formulation: str, X: np.ndarray, M: np.ndarray, R: np.ndarray
                       ) -> np.ndarray:
    """Left-hand side of the dual constraint of every pattern at ``z = R``."""
    C = adjoint(X, M, R)
    if formulation == "gated_relu":
        return group_norms(C)
    va, _ = support_values(X, M, C)
    vb, _ = support_values(X, M, -C)
    return np.maximum(va, vb)


def check_patterns(
    formulation: str,
    X: np.ndarray,
    Y: np.ndarray,
    patterns: Patterns,
    weights: Mapping[str, np.ndarray],
    lam: float,
    candidates: Patterns,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
) -> GlobalCheck:
    """Check the dual constraints of a solution over ``candidates``, from arrays alone.

    Parameters
    ----------
    formulation : {"relu", "gated_relu"}
    X : (n, d) data with the bias column already appended when the model has one.
    Y : (n, c)
    patterns : Patterns the weights live on (built on ``X``).
    weights : ``{"V", "U"}`` (relu) or ``{"W"}`` (gated_relu), blocks (P, d, c).
    lam : float
    candidates : Patterns built on the same ``X`` — typically
        ``enumerate_patterns(X)`` (scope ``"all"``). The solution's own patterns are
        added to them so that the lower bound applies to the solution's program too.
    tolerance : float
    """
    if formulation not in _FORMULATIONS:
        raise InvalidInputError(
            f"the global check applies to {list(_FORMULATIONS)}; got {formulation!r}."
        )
    if candidates.masks.shape[0] != X.shape[0] or candidates.d != X.shape[1]:
        raise InvalidInputError(
            f"candidates were built for data of shape ({candidates.n}, {candidates.d}) but X "
            f"has shape {X.shape}; build them from the same X (with its bias column)."
        )
    M = patterns.masks
    P, d = M.shape[1], X.shape[1]
    if formulation == "relu":
        V, U = (as_blocks(weights[k], P, d) for k in ("V", "U"))
        R = Y - forward(X, M, V - U)
        penalty = group_norms(V).sum() + group_norms(U).sum()
        violation = cone_violation(X, M, V, U) / max(float(np.linalg.norm(Y)), 1e-12)
    else:
        W = as_blocks(weights["W"], P, d)
        R = Y - forward(X, M, W)
        penalty, violation = group_norms(W).sum(), 0.0
    objective = 0.5 * float(np.sum(R * R)) + lam * float(penalty)

    checked = _merge(candidates, patterns)
    values = _constraint_values(formulation, X, checked.masks, R)
    top = float(values.max(initial=0.0))
    t = 1.0 if top <= lam else lam / top
    lower = t * float(np.sum(Y * R)) - 0.5 * t * t * float(np.sum(R * R))
    gap = objective - lower
    rel = gap / max(abs(objective), 1e-12)
    ratio = values / lam - 1.0
    order = np.argsort(-ratio, kind="stable")
    bad = order[ratio[order] > tolerance]
    violating = checked.subset(bad)
    passed = bool(rel <= tolerance and violation <= tolerance and np.isfinite(objective))
    return GlobalCheck(
        formulation=formulation, scope=candidates.scope, lam=float(lam),
        objective=objective, lower_bound=lower, gap=gap, relative_gap=rel,
        tolerance=float(tolerance), passed=passed, values=values,
        max_violation=max(0.0, top / lam - 1.0), patterns=checked,
        violating=replace(violating, scope="sampled"), violations=ratio[bad],
        scale=t, cone_violation=violation,
    )


def _resolve_candidates(X: np.ndarray, candidates: Patterns | int | str | None, *,
                        max_patterns: int, seed: int | None, fallback: int) -> Patterns:
    if isinstance(candidates, Patterns):
        if candidates.masks.shape[0] != X.shape[0] or candidates.d != X.shape[1] or \
                not np.array_equal(candidates.masks, candidates.masks_for(X)):
            raise InvalidInputError(
                "candidates were not built on this X (with its bias column when the "
                "solution has one); build them with enumerate_patterns/sample_patterns on it."
            )
        return candidates
    if isinstance(candidates, (int, np.integer)) and not isinstance(candidates, bool):
        return sample_patterns(X, _check_int(candidates, "candidates", minimum=1), seed)
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

    Checks the dual constraint of SPEC §2 (or §1 for ``gated_relu``) at ``z = y − ŷ``
    for every pattern of the arrangement of ``X`` (bias column appended when the
    solution has one) and returns the largest violation, the violating patterns and a
    lower bound on the optimum over all patterns. ``passed`` with scope ``"all"`` means
    the solution is the global optimum of training (one output) to ``tol``.

    Parameters
    ----------
    solution : Solution of ``"relu"`` or ``"gated_relu"``
    X, y : the data the solution was computed on (checked against its hash)
    candidates : Patterns, int, "all" or None
        The patterns to check: ``"all"`` enumerates the arrangement (raises
        :class:`~convexnn.errors.ProblemTooLargeError` beyond ``max_patterns`` cells);
        an int samples that many Gaussian gates (scope ``"sampled"``: how far the
        solution is from optimal among a larger sample); None enumerates when possible
        and otherwise samples ``max(1000, 10 P)`` gates.
    tol : float, default the solution certificate's tolerance
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
    cands = _resolve_candidates(data.X, candidates, max_patterns=max_patterns, seed=seed,
                                fallback=max(1000, 10 * data.P))
    return check_patterns(solution.formulation, data.X, data.Y, data.patterns, solution.weights,
                          solution.reg, cands, tolerance=tol)


def augment_loop(
    form: Formulation,
    data: ProblemData,
    reg: float,
    options: SolveOptions,
    first: Solution,
    *,
    candidates: Patterns | int | str | None = None,
    max_rounds: int = 20,
    add_per_round: int = 20,
    max_patterns: int = DEFAULT_MAX_PATTERNS,
    repair: bool = True,
) -> Solution:
    """Cutting planes over patterns: add the most violated ones and re-solve.

    Round r checks the current solution against the candidates (the arrangement, or
    fresh sampled gates when it is too large), adds up to ``add_per_round`` violating
    patterns to the working set and re-solves, until the check passes or
    ``max_rounds`` re-solves were made. The returned solution's certificate has scope
    ``"all"`` — with the lower bound over every pattern as its dual objective — only
    when the final check covered the whole arrangement and passed.
    ``info["augment"]`` records every round.
    """
    check_augment_options(candidates, max_rounds, add_per_round)
    seed = data.patterns.seed
    count, fixed = max(1000, 10 * data.P), None
    if isinstance(candidates, (int, np.integer)) and not isinstance(candidates, bool):
        count = _check_int(candidates, "candidates", minimum=1)
    elif candidates is None:
        try:
            fixed = enumerate_patterns(data.X, max_patterns=max_patterns)
        except ProblemTooLargeError:
            fixed = None  # arrangement too large: fresh sampled candidates every round
    else:
        fixed = _resolve_candidates(data.X, candidates, max_patterns=max_patterns, seed=seed,
                                    fallback=count)

    sol, current = first, data
    timings = {k: float(v) for k, v in first.timings.items()}
    history: list[dict[str, Any]] = []
    check = None
    for rnd in range(max_rounds + 1):
        start = time.perf_counter()
        cands = fixed if fixed is not None else sample_patterns(
            current.X, int(count), None if seed is None else seed + 1 + rnd)
        check = check_patterns(form.name, current.X, current.Y, current.patterns, sol.weights, reg,
                               cands, tolerance=options.tol)
        timings["certify_s"] += time.perf_counter() - start
        entry = {"round": rnd, "patterns": current.P, "objective": sol.objective,
                 "lower_bound": check.lower_bound, "relative_gap": check.relative_gap,
                 "max_violation": check.max_violation, "violating": check.violating.P,
                 "added": 0}
        history.append(entry)
        if check.passed or rnd == max_rounds:
            break
        known = {current.M[:, j].tobytes() for j in range(current.P)}
        new = [j for j in range(check.violating.P)
               if check.violating.masks[:, j].tobytes() not in known][:add_per_round]
        if not new:
            break
        entry["added"] = len(new)
        working = _add(current.patterns, check.violating.subset(np.asarray(new)))
        current = current.with_patterns(working)
        sol = form.solve(current, reg, options, repair=repair)
        for key in ("build_s", "solve_s", "certify_s"):
            timings[key] += float(sol.timings[key])
    info = dict(sol.info)
    info["augment"] = {"rounds": len(history) - 1, "converged": bool(check.passed),
                       "scope": check.scope, "history": history,
                       "global_check": check.as_dict()}
    sol = replace(sol, timings=timings, info=info)
    if check.passed and check.scope == "all":
        sol = _with_global_certificate(sol, current, check)
    return sol


def _with_global_certificate(sol: Solution, data: ProblemData, check: GlobalCheck) -> Solution:
    """``sol`` with a certificate of scope ``"all"`` whose dual point is ``t (y − ŷ)``.

    ``t`` makes the point feasible for every checked pattern, so its value is
    ``check.lower_bound``; the stored multipliers are those of the working set
    (the others are re-derived by :func:`check_patterns`).
    """
    V, U = sol.weights["V"], sol.weights["U"]
    R = data.Y - forward(data.X, data.M, V - U)
    C = adjoint(data.X, data.M, R)
    alpha, beta = support_values(data.X, data.M, C)[1], support_values(data.X, data.M, -C)[1]
    t = check.scale
    dual = {"z": t * R, "alpha": t * alpha, "beta": t * beta}
    na, nb = dual_norms(data.X, data.M, dual["z"], dual["alpha"], dual["beta"])
    checks = {
        "cone_violation": sol.certificate.checks.get("cone_violation", check.cone_violation),
        "dual_violation": max(0.0, max(na.max(initial=0.0), nb.max(initial=0.0)) / check.lam - 1),
    }
    cert = make_certificate(sol.formulation, sol.objective, check.lower_bound,
                            tolerance=check.tolerance, scope="all", checks=checks)
    return replace(sol, certificate=cert, dual=dual)


def check_augment_options(candidates: Any, max_rounds: Any, add_per_round: Any) -> None:
    """Raise :class:`InvalidInputError` for options of the loop that cannot work."""
    _check_int(max_rounds, "max_rounds", minimum=0)
    _check_int(add_per_round, "add_per_round", minimum=1)
    if isinstance(candidates, (int, np.integer)) and not isinstance(candidates, bool):
        _check_int(candidates, "candidates", minimum=1)
    elif not (candidates is None or candidates == "all" or isinstance(candidates, Patterns)):
        raise InvalidInputError(
            f"candidates must be a Patterns, a number of gates to sample, 'all' or None; "
            f"got {candidates!r}."
        )


def _check_int(value: Any, name: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InvalidInputError(f"{name} must be an integer ≥ {minimum}; got {value!r}.")
    return int(value)


def _add(base: Patterns, extra: Patterns) -> Patterns:
    """The working set ``base`` extended by ``extra`` (method "augmented", scope "sampled")."""
    return Patterns(
        masks=np.ascontiguousarray(np.hstack([base.masks, extra.masks])),
        gates=np.ascontiguousarray(np.hstack([base.gates, extra.gates])),
        counts=np.concatenate([base.counts, np.ones(extra.P, dtype=np.int64)]),
        draws=base.draws + extra.P,
        method="augmented",
        scope="sampled",
        probabilities=None,
        seed=base.seed,
    )
