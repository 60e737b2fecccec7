"""Pattern augmentation: cutting planes over the activation patterns of the arrangement.

Round r checks the current solution against candidate patterns (the whole arrangement,
or fresh sampled gates when it is too large) with the formulation's dual constraint
(:func:`convexnn.global_check.check_patterns`; an arrangement of more than
``STREAM_ABOVE`` cells, up to ``max_patterns``, is scanned in chunks by
:func:`convexnn.global_check.scan_arrangement` and never held whole), adds up to
``add_per_round`` violating
patterns to the working set and re-solves with the chosen method, until the check passes
or ``max_rounds`` re-solves were made. The returned solution's certificate has scope
``"all"`` — with the lower bound over every pattern as its dual objective — only when
the final check covered the whole arrangement and passed. ``info["augment"]`` records
every round. Applies to formulations with a pattern-wise dual constraint
(``form.global_check``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..errors import InvalidInputError, ProblemTooLargeError
from ..formulations.base import Formulation, SolveOptions
from ..global_check import (
    DEFAULT_MAX_PATTERNS,
    STREAM_ABOVE,
    check_patterns,
    global_certificate,
    resolve_candidates,
    scan_arrangement,
)
from ..patterns import (
    Arrangement,
    Patterns,
    arrangement_size,
    enumerate_patterns,
    sample_patterns,
)
from ..problem import ProblemData
from ..solution import Solution
from ..validation import Options as OptionsBase
from ..validation import boolean, integer

__all__ = ["Options", "run"]


@dataclass(frozen=True)
class Options(OptionsBase):
    """Options of the augmentation loop (any method of a formulation with a global check).

    ``augment``: run the loop. ``candidates``: the patterns checked — ``"all"`` (the
    arrangement), an int (that many fresh Gaussian gates each round) or None (the
    arrangement when it has at most ``max_patterns`` cells, else ``max(1000, 10 P)``
    sampled gates per round). ``max_rounds``: re-solves allowed. ``add_per_round``:
    violating patterns added per round (the most violated first).
    """

    augment: bool = False
    candidates: Any = None
    max_rounds: int = 20
    add_per_round: int = 20
    max_patterns: int = DEFAULT_MAX_PATTERNS

    def __post_init__(self) -> None:
        boolean(self.augment, "augment")
        integer(self.max_rounds, "max_rounds", minimum=0)
        integer(self.add_per_round, "add_per_round", minimum=1)
        integer(self.max_patterns, "max_patterns", minimum=1)
        c = self.candidates
        if isinstance(c, (int, np.integer)) and not isinstance(c, bool):
            integer(c, "candidates", minimum=1)
        elif not (c is None or c == "all" or isinstance(c, Patterns)):
            raise InvalidInputError(
                f"candidates must be a Patterns, a number of gates to sample, 'all' or None; "
                f"got {c!r}."
            )
        if c is not None and not self.augment:
            raise InvalidInputError("candidates only apply with augment=True.")


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


def run(form: Formulation, data: ProblemData, reg: float, options: SolveOptions,
        first: Solution, resolve: Callable[[ProblemData], Solution], aug: Options) -> Solution:
    """Cutting planes from the solution ``first``; ``resolve(data)`` re-solves on a
    working set with the chosen method."""
    seed = data.patterns.seed
    count, fixed, stream = max(1000, 10 * data.P), None, None
    everything = aug.candidates is None or (isinstance(aug.candidates, str)
                                            and aug.candidates == "all")
    if everything and STREAM_ABOVE < arrangement_size(data.X) <= aug.max_patterns:
        # the whole arrangement, scanned in chunks every round (kept packed when it fits)
        stream = Arrangement(data.X, max_patterns=aug.max_patterns)
    elif isinstance(aug.candidates, (int, np.integer)):
        count = int(aug.candidates)
    elif aug.candidates is None:
        try:
            fixed = enumerate_patterns(data.X, max_patterns=aug.max_patterns)
        except ProblemTooLargeError:
            fixed = None  # arrangement too large: fresh sampled candidates every round
    else:
        fixed = resolve_candidates(data.X, aug.candidates, max_patterns=aug.max_patterns,
                                   seed=seed, fallback=count)

    sol, current = first, data
    timings = {k: float(v) for k, v in first.timings.items()}
    history: list[dict[str, Any]] = []
    check = None
    for rnd in range(aug.max_rounds + 1):
        start = time.perf_counter()
        if stream is not None:
            check = scan_arrangement(form, current, sol.weights, reg, stream,
                                     tolerance=options.tol, keep=4 * aug.add_per_round)
        else:
            cands = fixed if fixed is not None else sample_patterns(
                current.X, int(count), None if seed is None else seed + 1 + rnd)
            check = check_patterns(form, current, sol.weights, reg, cands,
                                   tolerance=options.tol)
        timings["certify_s"] += time.perf_counter() - start
        entry = {"round": rnd, "patterns": current.P, "objective": sol.objective,
                 "lower_bound": check.lower_bound, "relative_gap": check.relative_gap,
                 "max_violation": check.max_violation, "violating": check.violating.P,
                 "added": 0}
        history.append(entry)
        if check.passed or rnd == aug.max_rounds:
            break
        known = {current.M[:, j].tobytes() for j in range(current.P)}
        new = [j for j in range(check.violating.P)
               if check.violating.masks[:, j].tobytes() not in known][:aug.add_per_round]
        if not new:
            break
        entry["added"] = len(new)
        current = current.with_patterns(_add(current.patterns,
                                             check.violating.subset(np.asarray(new))))
        sol = resolve(current)
        for key in ("build_s", "solve_s", "certify_s"):
            timings[key] += float(sol.timings[key])
    info = dict(sol.info)
    info["augment"] = {"rounds": len(history) - 1, "converged": bool(check.passed),
                       "scope": check.scope, "history": history,
                       "global_check": check.as_dict()}
    sol = replace(sol, timings=timings, info=info)
    if check.passed and check.scope == "all":
        cert, dual = global_certificate(form, current, sol.weights, check)
        sol = replace(sol, certificate=cert, dual=dual)
    return sol
