"""Re-derive a saved certificate from its arrays and the data alone (no solver).

:func:`verify` trusts none of the saved numbers. It checks the files (well-formed, every
field of the right type, no pickled objects, digests of the arrays and of the record),
rebuilds the data (from the data given, an explicit spec, or the spec recorded with the
result — reading files only inside the result folder or an explicit ``data_root``),
regenerates the patterns the recorded spec asks for, recomputes the masks from the saved
gates, calls the formulation's numpy ``certify`` on the saved weights and dual point — or,
for a certificate of scope ``"all"`` over a working set of patterns, re-runs the check
over every pattern of the arrangement — rebuilds the network and the kernel weights, and
compares every saved number, array and verdict with its re-derived value. The verdict is
taken at the result's tolerance, which may not be looser than the verifier accepts
(``DEFAULT_TOLERANCE`` unless ``tolerance=`` says otherwise). What this guarantees, and
what it cannot, is in ``docs/verification.md``.

:func:`load` reads a result back after the checks that need no data (files, types,
digests, tolerance, network and kernel weights re-derived from the weights).
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .certificate import DEFAULT_TOLERANCE, Certificate
from .data import Dataset, add_bias, data_sha256
from .errors import ConvexNNError, InvalidInputError, ProblemTooLargeError, VerificationError
from .files import CERTIFICATE_FILE, SOLUTION_FILE
from .formulations import REGISTRY, Formulation
from .global_check import check_patterns, global_certificate
from .ops import group_norms
from .patterns import Patterns, enumerate_patterns, sample_patterns
from .problem import ProblemData
from .problems import load_dataset
from .results import (
    NESTED_KEYS,
    RECORD_DIGEST,
    REQUIRED_KEYS,
    DataLike,
    arrays_sha256,
    as_xy,
    group_arrays,
    patterns_from,
    read_arrays,
    read_record,
    record_sha256,
    save,
)
from .spec import parse_data, parse_spec
from .validation import tolerance as check_tolerance
from .validation import validate_xy

__all__ = ["Check", "Verification", "verify", "load", "SavedResult", "RTOL"]

#: Re-derived values must match the saved ones to this relative accuracy (re-running the
#: same numpy arithmetic agrees to rounding, ~1e-15).
RTOL = 1e-10
#: Arrays a result may hold besides ``weights.*``, ``dual.*`` and ``network.*``.
PATTERN_ARRAYS = ("patterns.masks", "patterns.gates", "patterns.counts",
                  "patterns.probabilities")
#: Weights derived from the others, re-derived by verify: kernel weights of W, and the
#: NTK weights of the patterns.
DERIVED_WEIGHTS = ("eta", "p")


@dataclass(frozen=True)
class Check:
    """One verification check: its name, whether it passed, and what was compared."""

    name: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True, repr=False)
class Verification:
    """The outcome of :func:`verify`: every check, and the re-derived certificate."""

    path: Path
    checks: tuple[Check, ...]
    certificate: Any = None
    record: Mapping[str, Any] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def failed(self) -> list[str]:
        return [c.name for c in self.checks if not c.ok]

    def raise_if_invalid(self) -> None:
        """Raise :class:`VerificationError` naming the failed checks."""
        if not self.valid:
            lines = "; ".join(f"{c.name}: {c.detail}" for c in self.checks if not c.ok)
            raise VerificationError(f"{self.path}: verification failed — {lines}")

    def __str__(self) -> str:
        width = max((len(c.name) for c in self.checks), default=0)
        lines = [f"  {'ok  ' if c.ok else 'FAIL'}  {c.name:<{width}}  {c.detail}"
                 for c in self.checks]
        if self.valid:
            state = "certified" if self.record.get("certified") else "NOT certified"
            head = f"VALID (every saved number re-derives; the result is {state})"
        else:
            head = f"INVALID (failed: {', '.join(self.failed)})"
        return f"{self.path}: {head}\n" + "\n".join(lines)

    def __repr__(self) -> str:
        state = "valid" if self.valid else f"INVALID, failed={self.failed}"
        return f"Verification({self.path}, {state}, {len(self.checks)} checks)"


class _Checks:
    """The list of checks being made; ``stop`` ends the verification early."""

    def __init__(self) -> None:
        self.items: list[Check] = []

    def add(self, name: str, ok: bool, detail: str) -> bool:
        self.items.append(Check(name, bool(ok), detail))
        return bool(ok)


# ---------------------------------------------------------------------------
# The record: types and digests (no data needed)
# ---------------------------------------------------------------------------


def _finite_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _number_or_null(value: Any) -> bool:
    return value is None or _finite_number(value)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**53


def _type_problems(rec: Mapping[str, Any]) -> list[str]:
    """Every contract field with the type it must have (named with its value's type)."""
    bad: list[str] = []

    def need(key: str, ok: Callable[[Any], bool], what: str, where: Mapping = rec,
             prefix: str = "") -> None:
        if key in where and not ok(where[key]):
            bad.append(f"{prefix}{key} is {type(where[key]).__name__}, not {what}")

    reg = rec.get("reg_name", "lam")
    if reg not in ("lam", "mu"):
        bad.append(f"reg_name is {reg!r}, not 'lam' or 'mu'")
        reg = "lam"
    for k in ("objective", "dual_objective", "gap", "relative_gap"):
        need(k, _number_or_null, "a number or null")
    need("tolerance", _finite_number, "a number")
    need(reg, _finite_number, "a number")
    for k in ("n", "d", "outputs"):
        need(k, _count, "a count")
    for k in ("certified", "bias", "single_output"):
        need(k, lambda v: isinstance(v, bool), "true/false")
    for k in ("formulation", "solver", "status", "method", "scope", "data_sha256", "version",
              "solution_sha256", RECORD_DIGEST):
        need(k, lambda v: isinstance(v, str), "a string")
    need("failed", lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
         "a list of strings")
    need("checks", lambda v: isinstance(v, Mapping) and all(
        isinstance(k, str) and _finite_number(x) for k, x in v.items()),
        "an object of numbers")
    for k in NESTED_KEYS:
        need(k, lambda v: isinstance(v, Mapping), "an object")
    pats = rec.get("patterns")
    if isinstance(pats, Mapping):
        need("count", _count, "a count", pats, "patterns.")
        need("draws", _count, "a count", pats, "patterns.")
        need("seed", lambda v: v is None or _count(v), "a count or null", pats, "patterns.")
        for k in ("method", "scope"):
            need(k, lambda v: isinstance(v, str), "a string", pats, "patterns.")
    net = rec.get("network")
    if isinstance(net, Mapping):
        need("neurons", lambda v: v is None or _count(v), "a count or null", net, "network.")
        need("objective", _number_or_null, "a number or null", net, "network.")
    t = rec.get("timings")
    if isinstance(t, Mapping):
        for k in ("build_s", "solve_s", "certify_s"):
            need(k, _finite_number, "a number", t, "timings.")
    if "spec" in rec and not isinstance(rec["spec"], Mapping):
        bad.append(f"spec is {type(rec['spec']).__name__}, not an object")
    if "info" in rec and not isinstance(rec["info"], Mapping):
        bad.append(f"info is {type(rec['info']).__name__}, not an object")
    return bad


def _missing_keys(rec: Mapping[str, Any]) -> list[str]:
    missing = [k for k in (*REQUIRED_KEYS, "solution_sha256", RECORD_DIGEST, "scope",
                           "reg_name", "method", "checks", "failed", "bias", "single_output")
               if k not in rec]
    reg = rec.get("reg_name", "lam")
    if isinstance(reg, str) and reg not in rec:
        missing.append(reg)
    for outer, inner in NESTED_KEYS.items():
        if isinstance(rec.get(outer), Mapping):
            missing += [f"{outer}.{k}" for k in inner if k not in rec[outer]]
    return missing


def _static(path: Path, rec: dict, arrays: dict, pickled: list[str], accepted: float,
            checks: _Checks) -> Formulation | None:
    """The checks that need no data; returns the formulation when re-derivation can go on."""
    missing = _missing_keys(rec)
    checks.add("keys", not missing, f"missing {missing}" if missing else
               "every contract key and both digests are present")
    bad = _type_problems(rec)
    checks.add("types", not bad, "; ".join(bad) if bad else "every field has its type")
    checks.add("no_pickle", not pickled,
               f"{SOLUTION_FILE} holds pickled object arrays {pickled} (refused: "
               "allow_pickle=False)" if pickled else "every array loads with allow_pickle=False")
    if missing or bad or pickled:
        return None
    ok = rec["solution_sha256"] == arrays_sha256(arrays)
    checks.add("solution_sha256", ok, "the arrays are those the certificate was issued for"
               if ok else f"the arrays in {SOLUTION_FILE} were changed after the certificate "
               "was issued")
    ok = rec[RECORD_DIGEST] == record_sha256(rec)
    checks.add(RECORD_DIGEST, ok, f"{CERTIFICATE_FILE} is unchanged since it was written" if ok
               else f"{CERTIFICATE_FILE} was edited after it was written")
    tol = float(rec["tolerance"])
    ok = 0 < tol <= accepted
    checks.add("tolerance", ok, f"{tol:.1e} ≤ {accepted:.1e} (accepted)" if ok else
               f"the result's tolerance {tol!r} is looser than the accepted {accepted:.1e}; "
               f"pass tolerance={tol!r} (convexnn verify --tolerance {tol!r}) to accept it"
               if 0 < tol < 1 else f"tolerance {tol!r} is not a relative gap in (0, 1)")
    name = rec["formulation"]
    form = REGISTRY.get(name)
    if form is None:
        checks.add("formulation", False, f"{name!r} is not a registered formulation "
                   f"({sorted(REGISTRY)})")
        return None
    problems = []
    if rec["reg_name"] != form.reg_name:
        problems.append(f"{name} is regularised by {form.reg_name}, not {rec['reg_name']}")
    if rec["method"] not in (*form.methods, "closed_form"):
        problems.append(f"method {rec['method']!r} is not one of {name}'s "
                        f"{sorted(form.methods)}")
    if rec["scope"] not in ("sampled", "all") or rec["patterns"]["scope"] not in (
            "sampled", "all"):
        problems.append("scope must be 'sampled' or 'all'")
    checks.add("formulation", not problems, "; ".join(problems) if problems else
               f"{name!r} is registered; method {rec['method']!r}")
    if problems:
        return None
    unknown = sorted(k for k in arrays if not (k.split(".")[0] in ("weights", "dual", "network")
                                               or k in PATTERN_ARRAYS))
    absent = [k for k in PATTERN_ARRAYS[:3] if k not in arrays]
    weights = group_arrays(arrays, "weights")
    ok = not unknown and not absent and bool(weights)
    checks.add("arrays", ok, f"{SOLUTION_FILE}: unexpected {unknown}, missing "
               f"{absent or ([] if weights else ['weights.*'])}" if not ok else
               f"{len(arrays)} arrays, each re-derived below")
    return form if ok else None


# ---------------------------------------------------------------------------
# Data, patterns and the recorded spec
# ---------------------------------------------------------------------------


def _inside(path: Path, roots: list[Path]) -> bool:
    real = path.resolve()
    return any(real == r or r in real.parents for r in roots)


def _load_recorded_data(rec: Mapping[str, Any], path: Path, spec: Any, uci_root: Any,
                        data_root: Any) -> Dataset:
    """The data of an explicit spec (trusted: the caller's), else of the recorded spec —
    whose files must lie inside the result folder or ``data_root``."""
    if spec is not None:
        return load_dataset(spec.data, uci_root=uci_root)
    section = rec["spec"].get("data") if isinstance(rec.get("spec"), Mapping) else None
    if section is None:
        raise InvalidInputError(
            f"{path / CERTIFICATE_FILE} records no data spec; pass the data "
            "(verify(DIR, (X, y)) or convexnn verify DIR --spec SPEC.toml)."
        )
    data_spec = parse_data(section, base_dir=path.resolve(),
                           origin=f"{path / CERTIFICATE_FILE} [spec]")
    if data_spec.kind in ("npz", "csv"):
        roots = [path.resolve()] + ([Path(data_root).expanduser().resolve()]
                                    if data_root is not None else [])
        if not _inside(Path(data_spec.location), roots):
            raise InvalidInputError(
                f"{path / CERTIFICATE_FILE}: the recorded spec reads {data_spec.location}, "
                "outside the result folder; to allow it pass data_root=FOLDER (convexnn "
                "verify DIR --data-root FOLDER) or the spec itself (--spec SPEC.toml)."
            )
    try:
        return load_dataset(data_spec, uci_root=uci_root)
    except InvalidInputError:
        if data_spec.kind in ("npz", "csv"):  # never echo what a file holds
            raise InvalidInputError(
                f"{path / CERTIFICATE_FILE}: the recorded data "
                f"{data_spec.kind}:{Path(data_spec.location).name} cannot be loaded as the "
                "recorded spec says."
            ) from None
        raise


def _data_checks(rec: Mapping[str, Any], X: Any, y: Any, checks: _Checks
                 ) -> tuple[np.ndarray, np.ndarray, str] | None:
    Xv, Y = validate_xy(X, y)
    sha = data_sha256(Xv, Y)
    ok = sha == rec["data_sha256"]
    checks.add("data_sha256", ok, f"data hash {sha[:16]}… matches" if ok else
               f"data hash {sha[:16]}… differs from the saved {str(rec['data_sha256'])[:16]}… "
               "(the data changed: not the data of this result)")
    sizes = {"n": Xv.shape[0], "d": Xv.shape[1], "outputs": Y.shape[1]}
    wrong = [f"{k}: saved {rec[k]!r}, data {v}" for k, v in sizes.items() if rec[k] != v]
    single = Y.shape[1] == 1
    if not single and rec["single_output"]:
        wrong.append("single_output is true for several outputs")
    checks.add("sizes", not wrong, "; ".join(wrong) if wrong else
               f"n={sizes['n']}, d={sizes['d']}, outputs={sizes['outputs']}")
    return None if (wrong or not ok) else (Xv, Y, sha)


def _pattern_checks(rec: Mapping[str, Any], Xb: np.ndarray, pats: Patterns,
                    checks: _Checks) -> bool:
    problems = []
    if pats.gates.ndim != 2 or pats.masks.ndim != 2 or pats.gates.shape[0] != Xb.shape[1] \
            or pats.masks.shape != (Xb.shape[0], pats.gates.shape[1]) \
            or pats.counts.shape != (pats.gates.shape[1],):
        problems.append(f"gates {pats.gates.shape} / masks {pats.masks.shape} / counts "
                        f"{pats.counts.shape} do not fit data {Xb.shape}")
    elif not np.all(np.isfinite(pats.gates)):
        problems.append("gates are not finite")
    elif not np.array_equal(pats.masks, (Xb @ pats.gates) >= 0):
        cols = int(np.sum(np.any(pats.masks != ((Xb @ pats.gates) >= 0), axis=0)))
        problems.append(f"{cols} saved masks differ from 1[X g ≥ 0] of their gates")
    elif rec["patterns"]["count"] != pats.P:
        problems.append(f"count: saved {rec['patterns']['count']!r}, arrays hold {pats.P}")
    elif pats.probabilities is not None:
        if pats.method != "enumerate":
            problems.append("exact probabilities are only known for enumerated patterns")
        else:
            try:
                every = enumerate_patterns(Xb)
            except (ProblemTooLargeError, InvalidInputError) as exc:
                problems.append(f"the probabilities cannot be re-derived: {exc}")
            else:
                if every.probabilities is None or not _same_patterns(every, pats, probs=True):
                    problems.append("the saved probabilities are not those of the "
                                    "arrangement of the data")
    return checks.add("patterns", not problems, "; ".join(problems) if problems else
                      f"{pats.P} masks = 1[X g ≥ 0] of the saved gates ({pats.method}, "
                      f"scope {pats.scope})")


def _same_patterns(a: Patterns, b: Patterns, *, probs: bool = False, prefix: bool = False
                   ) -> bool:
    """``b`` holds the patterns of ``a`` (as its first columns with ``prefix``)."""
    P = a.P
    if b.P < P or (not prefix and b.P != P):
        return False
    same = (np.array_equal(a.masks, b.masks[:, :P]) and np.array_equal(a.gates, b.gates[:, :P])
            and np.array_equal(a.counts, b.counts[:P]))
    if probs:
        same = same and b.probabilities is not None and np.allclose(
            a.probabilities, b.probabilities, rtol=0, atol=1e-12)
    return bool(same)


def _spec_checks(rec: Mapping[str, Any], form: Formulation, pdata: ProblemData,
                 checks: _Checks) -> None:
    """The recorded spec says how the result was made: its model, tolerance, λ (or the
    ratio of λ_max) and patterns must be those of the result."""
    if not isinstance(rec.get("spec"), Mapping):
        return
    try:
        spec = parse_spec({k: v for k, v in rec["spec"].items() if k != "data"}
                          | {"data": {"source": "synthetic:planted_relu"}},
                          origin=f"{CERTIFICATE_FILE} [spec]")
    except InvalidInputError as exc:
        checks.add("spec", False, f"the recorded spec does not parse: {exc}")
        return
    problems = []
    if spec.model.formulation != form.name:
        problems.append(f"spec formulation {spec.model.formulation!r} ≠ {form.name!r}")
    if spec.solver.tolerance != rec["tolerance"]:
        problems.append(f"spec tolerance {spec.solver.tolerance!r} ≠ {rec['tolerance']!r}")
    reg = float(rec[form.reg_name])
    expected = spec.model.reg if spec.model.reg is not None else (
        spec.model.reg_ratio * form.reg_scale(pdata) if spec.model.reg_ratio else None)
    if expected is None or abs(expected - reg) > 1e-9 * abs(reg):
        problems.append(f"{form.reg_name} {reg!r} is not the spec's ({expected!r})")
    p = spec.patterns
    try:
        made = (sample_patterns(pdata.X, p.count, p.seed) if p.method == "sample" else
                enumerate_patterns(pdata.X, **({} if p.max_patterns is None else
                                              {"max_patterns": p.max_patterns})))
    except (InvalidInputError, ProblemTooLargeError) as exc:
        problems.append(f"the spec's patterns cannot be regenerated: {exc}")
    else:
        augmented = pdata.patterns.method == "augmented"
        if not _same_patterns(made, pdata.patterns, prefix=augmented):
            problems.append(f"the saved patterns are not those the spec draws ({p.method}"
                            + (f", count {p.count}, seed {p.seed}" if p.method == "sample"
                               else "") + ")")
    checks.add("spec", not problems, "; ".join(problems) if problems else
               "model, tolerance, regularisation and patterns are those of the recorded spec")


# ---------------------------------------------------------------------------
# The certificate, the derived weights and the network
# ---------------------------------------------------------------------------


def _close(saved: Any, derived: float, scale: float) -> bool:
    if saved is None:
        return not math.isfinite(derived)
    if not _finite_number(saved) or not math.isfinite(derived):
        return False
    return abs(float(saved) - derived) <= RTOL * max(scale, 1e-300)


def _global(form: Formulation, data: ProblemData, weights: dict, reg: float, tol: float
            ) -> tuple[Any, tuple[str, bool, str]]:
    """A claim of scope "all" is re-derived, not trusted: the saved solution's dual point
    must satisfy the dual constraint of EVERY pattern of the arrangement of the data.
    Returns the check (None when it cannot be made) and the verification line."""
    try:
        every = enumerate_patterns(data.X)
        if not form.global_check:  # the program is over every pattern: the set must be it
            same = ({every.masks[:, j].tobytes() for j in range(every.P)}
                    == {data.M[:, j].tobytes() for j in range(data.P)})
            return None, ("global", same, f"the saved patterns are the {every.P} cells of the "
                          "arrangement of the data" if same else "scope 'all' claimed, but "
                          "the saved patterns are not the cells of the arrangement")
        check = check_patterns(form, data, weights, reg, every, tolerance=tol)
    except (ProblemTooLargeError, InvalidInputError) as exc:
        return None, ("global", False, f"scope 'all' cannot be re-derived: {exc}")
    if check.passed:
        return check, ("global", True, f"dual feasible for all {every.P} patterns of the "
                                       f"arrangement (largest violation "
                                       f"{check.max_violation:.1e})")
    return check, ("global", False, f"scope 'all' claimed, but {check.violating.P} of the "
                                    f"{every.P} patterns of the arrangement violate the dual "
                                    f"constraint (worst by {check.max_violation:.2e} of λ)")


def _certificate_checks(rec: Mapping[str, Any], form: Formulation, pdata: ProblemData,
                        weights: dict, dual: dict, checks: _Checks) -> Certificate | None:
    reg, tol = float(rec[form.reg_name]), float(rec["tolerance"])
    claimed = rec["scope"]
    global_line = None
    try:
        if claimed == "all" and pdata.patterns.scope != "all" and form.global_check:
            # scope "all" over a working set (pattern augmentation): the lower bound over
            # every pattern of the arrangement is the certificate's dual objective
            check, global_line = _global(form, pdata, weights, reg, tol)
            if check is None:
                checks.add(*global_line)
                return None
            cert, dual_point = global_certificate(form, pdata, weights, check)
        else:
            cert, dual_point = form.certify(pdata, reg, weights, dual or None, tol=tol)
    except (ValueError, KeyError, IndexError, TypeError, ConvexNNError) as exc:
        checks.add("certify", False, f"the saved arrays do not fit {form.name}: "
                   f"{type(exc).__name__}: {exc}")
        return None
    scale = max(abs(cert.objective), 1e-300)
    for key, value, sc in (("objective", cert.objective, scale),
                           ("dual_objective", cert.dual_objective, scale),
                           ("gap", cert.gap, scale),
                           ("relative_gap", cert.relative_gap, 1.0)):
        ok = _close(rec[key], value, sc)
        checks.add(key, ok, f"re-derived {value:.12g} {'=' if ok else '≠'} saved {rec[key]!r}")
    ok = rec["certified"] == cert.certified
    verdict = "certified" if cert.certified else "not certified"
    checks.add("certified", ok, f"re-derived: {verdict}" + ("" if ok else
               f", saved certified={rec['certified']!r}") +
               (f" (failed: {list(cert.failed)})" if cert.failed else ""))
    saved_checks, saved_failed = rec["checks"], rec["failed"]
    wrong = sorted(set(saved_checks) ^ set(cert.checks))
    # the checks are relative measures (compared with the tolerance): equal up to rounding
    wrong += [k for k in sorted(set(saved_checks) & set(cert.checks))
              if not abs(float(saved_checks[k]) - cert.checks[k])
              <= max(RTOL * abs(cert.checks[k]), 1e-12)]
    if saved_failed != list(cert.failed):
        wrong.append(f"failed {saved_failed} ≠ re-derived {list(cert.failed)}")
    checks.add("checks", not wrong, f"differ: {wrong}" if wrong else
               f"feasibility checks {sorted(cert.checks)} re-derive")
    scope_ok = claimed == cert.scope and rec["patterns"]["scope"] == pdata.patterns.scope
    checks.add("scope", scope_ok, f"{cert.scope}" if scope_ok else
               f"re-derived {cert.scope!r}, saved {claimed!r}/{rec['patterns']['scope']!r}")
    if scope_ok and cert.scope == "all":
        checks.add(*(global_line or _global(form, pdata, weights, reg, tol)[1]))
    mism = []
    for k in sorted(set(dual) | set(dual_point)):
        v, sv = dual_point.get(k), dual.get(k)
        if v is None or sv is None or np.shape(sv) != np.shape(v):
            mism.append(f"{k}: saved {None if sv is None else np.shape(sv)}, re-derived "
                        f"{None if v is None else np.shape(v)}")
        elif not np.allclose(sv, v, rtol=1e-8, atol=1e-10 * max(np.abs(v).max(initial=0), 1)):
            mism.append(f"{k}: max difference {np.abs(sv - v).max():.2e}")
    checks.add("dual_point", not mism, "; ".join(mism) if mism else
               f"the saved dual point {sorted(dual_point)} is the re-derived feasible point")
    return cert


def _derived_weight_checks(form: Formulation, pdata: ProblemData, weights: dict,
                           checks: _Checks) -> None:
    """Kernel weights are functions of the others: η = ||W_i|| / Σ||W_j||; the NTK
    weights ``p`` are compared with the patterns' by the certificate itself."""
    if "eta" not in weights:
        return
    try:
        norms = group_norms(np.asarray(weights["W"], dtype=np.float64).reshape(
            pdata.P, pdata.d, -1))
        S = float(norms.sum())
        expected = norms / S if S > 0 else np.full(pdata.P, 1.0 / pdata.P)
        eta = np.asarray(weights["eta"], dtype=np.float64)
        ok = eta.shape == expected.shape and np.allclose(eta, expected, rtol=1e-9, atol=1e-12)
    except (ValueError, KeyError, TypeError):
        ok = False
    checks.add("eta", ok, "the kernel weights are ||W_i|| / Σ||W_j||" if ok else
               "the saved kernel weights are not ||W_i|| / Σ||W_j|| of the saved W")


def _network_checks(rec: Mapping[str, Any], form: Formulation, pdata: ProblemData,
                    weights: dict, arrays: Mapping[str, np.ndarray], X: Any, y: Any,
                    checks: _Checks) -> None:
    """The network is rebuilt from the weights; its arrays and numbers must be the saved."""
    nrec = rec["network"]
    saved = group_arrays(arrays, "network")
    try:
        net = form.network(pdata, weights)
    except (ValueError, KeyError, IndexError, TypeError, ConvexNNError) as exc:
        checks.add("network", False, f"cannot rebuild the network: {type(exc).__name__}")
        return
    problems = []
    derived = {} if net is None else {
        k: v for k, v in vars(net).items() if isinstance(v, np.ndarray)}
    for k in sorted(set(saved) | set(derived)):
        if k not in saved or k not in derived:
            problems.append(f"network.{k}: {'missing' if k not in saved else 'unexpected'}")
        elif saved[k].shape != derived[k].shape or not np.allclose(
                saved[k], derived[k], rtol=1e-10,
                atol=1e-12 * max(float(np.abs(derived[k]).max(initial=0.0)), 1.0)):
            problems.append(f"network.{k} differs from the network of the weights")
    neurons = getattr(net, "neurons", None)
    if nrec["neurons"] != neurons:
        problems.append(f"neurons: saved {nrec['neurons']!r}, re-derived {neurons}")
    if X is not None and nrec["objective"] is not None:
        lam = rec[form.reg_name] if form.reg_name == "lam" else (rec.get("info") or {}).get("lam")
        if net is None or not _finite_number(lam):
            problems.append("network objective saved but no network/λ to re-derive it")
        else:
            value = float(net.objective(X, y, float(lam)))
            if not _close(nrec["objective"], value, max(abs(value), 1e-300)):
                problems.append(f"objective: saved {nrec['objective']!r}, re-derived {value:.12g}")
    checks.add("network", not problems, "; ".join(problems) if problems else
               f"{neurons} neurons rebuilt from the weights" + (
                   "" if nrec["objective"] is None or X is None else
                   f", training objective {nrec['objective']:.12g}"))


# ---------------------------------------------------------------------------
# verify and load
# ---------------------------------------------------------------------------


def _accepted(tolerance: Any) -> float:
    return DEFAULT_TOLERANCE if tolerance is None else check_tolerance(tolerance, "tolerance")


def verify(directory: str | os.PathLike, data: DataLike | None = None, *, spec: Any = None,
           uci_root: str | os.PathLike | None = None,
           data_root: str | os.PathLike | None = None, tolerance: float | None = None,
           strict: bool = False) -> Verification:
    """Re-derive a saved certificate from its arrays and the data alone (no solver).

    Parameters
    ----------
    directory : str, path or estimator
        The result folder, or a fitted estimator of :mod:`convexnn.estimators` (its
        certified optimum is saved to a temporary folder with ``data`` and verified there;
        ``data`` is then required).
    data : Dataset or (X, y), optional
        The data; else they are loaded from ``spec``, else from the spec recorded in
        ``certificate.json``.
    spec : ProblemSpec, optional
        A spec to take the data from (:func:`convexnn.load_spec`).
    uci_root : str or path, optional
        The UCI collection, for ``uci:`` sources.
    data_root : str or path, optional
        Data files of a recorded spec are read only inside the result folder or this one.
    tolerance : float, optional
        The loosest tolerance accepted (default ``DEFAULT_TOLERANCE``, 1e-6): a result whose
        tolerance is looser fails the ``tolerance`` check.
    strict : bool, default False
        Raise :class:`~convexnn.errors.VerificationError` instead of returning an invalid
        result.

    Returns
    -------
    Verification
        ``.valid``, ``.failed`` (names), ``.checks``, the re-derived ``.certificate``.

    Raises
    ------
    InvalidInputError
        Unreadable or missing files, data that cannot be loaded.
    """
    export = getattr(directory, "_convexnn_export", None)
    if export is not None:  # a fitted estimator: verify its optimum as saved
        solution, data = export(data)
        with tempfile.TemporaryDirectory() as tmp:
            return verify(save(solution, Path(tmp) / "result", data), data,
                          tolerance=tolerance, strict=strict)
    path = Path(directory)
    accepted = _accepted(tolerance)
    rec = read_record(path)
    arrays, pickled = read_arrays(path)
    checks = _Checks()

    def done(certificate: Any = None) -> Verification:
        result = Verification(path, tuple(checks.items), certificate, rec)
        if strict:
            result.raise_if_invalid()
        return result

    form = _static(path, rec, arrays, pickled, accepted, checks)
    if form is None:
        return done()
    if data is None:
        data = _load_recorded_data(rec, path, spec, uci_root, data_root)
    X, y = as_xy(data)
    got = _data_checks(rec, X, y, checks)
    if got is None:
        return done()
    Xv, Y, sha = got
    Xb = add_bias(Xv) if rec["bias"] else Xv
    try:
        pats = patterns_from(arrays, rec)
    except (ValueError, TypeError):
        checks.add("patterns", False, "the pattern arrays are malformed")
        return done()
    if not _pattern_checks(rec, Xb, pats, checks):
        return done()
    pdata = ProblemData(Xb, Y, pats, rec["bias"], rec["single_output"], sha)
    weights, dual = group_arrays(arrays, "weights"), group_arrays(arrays, "dual")
    _spec_checks(rec, form, pdata, checks)
    cert = _certificate_checks(rec, form, pdata, weights, dual, checks)
    if cert is None:
        return done()
    _derived_weight_checks(form, pdata, weights, checks)
    _network_checks(rec, form, pdata, weights, arrays, X, y, checks)
    return done(cert)


@dataclass(frozen=True, repr=False)
class SavedResult:
    """A result folder read back: the record and the arrays (checked, see :func:`load`)."""

    path: Path
    record: Mapping[str, Any]
    weights: Mapping[str, np.ndarray]
    dual: Mapping[str, np.ndarray]
    patterns: Patterns
    network: Mapping[str, np.ndarray] = field(default_factory=dict)

    @property
    def formulation(self) -> str:
        return str(self.record["formulation"])

    @property
    def certified(self) -> bool:
        return bool(self.record.get("certified"))

    @property
    def reg(self) -> float:
        return float(self.record[self.record.get("reg_name", "lam")])

    def __repr__(self) -> str:
        r = self.record
        verdict = "certified" if r.get("certified") else "NOT certified"
        return (f"SavedResult({self.path}, {r.get('formulation')}, objective="
                f"{r.get('objective')}, relative_gap={r.get('relative_gap')} → {verdict})")


def load(directory: str | os.PathLike, data: DataLike | None = None, *,
         tolerance: float | None = None) -> SavedResult:
    """Read a result folder, checking what can be checked without the data.

    The files (types, no pickles), both digests, the tolerance (not looser than
    ``tolerance``, default 1e-6), the formulation, and the network and kernel weights
    re-derived from the saved weights. With ``data`` the certificate is also re-derived
    (``verify(directory, data, strict=True)``).

    Parameters
    ----------
    directory : str or path
        A result folder written by :func:`convexnn.save` or ``convexnn solve``.
    data : Dataset or (X, y), optional
        The data, to re-derive the certificate as well.
    tolerance : float, optional
        The loosest tolerance accepted (default 1e-6).

    Returns
    -------
    SavedResult
        The record (``certificate.json`` as a dict), the arrays, the network and the
        checks made.

    Raises
    ------
    InvalidInputError
        Missing or unreadable files.
    VerificationError
        A failed check (named).
    """
    d = Path(directory)
    if data is not None:
        verify(d, data, tolerance=tolerance, strict=True)
    rec = read_record(d)
    arrays, pickled = read_arrays(d)
    if pickled:
        raise VerificationError(f"{d / SOLUTION_FILE}: holds pickled object arrays {pickled}; "
                                "refused (allow_pickle=False).")
    checks = _Checks()
    form = _static(d, rec, arrays, pickled, _accepted(tolerance), checks)
    if form is not None:
        try:
            pats = patterns_from(arrays, rec)
            n, c = pats.masks.shape[0], max(int(rec["outputs"]), 1)
            skeleton = ProblemData(np.zeros((n, pats.d)), np.zeros((n, c)), pats,
                                   bool(rec["bias"]), bool(rec["single_output"]))
            weights = group_arrays(arrays, "weights")
            _derived_weight_checks(form, skeleton, weights, checks)
            _network_checks(rec, form, skeleton, weights, arrays, None, None, checks)
        except (ValueError, TypeError, IndexError):
            checks.add("arrays", False, "the arrays do not fit the record")
    Verification(d, tuple(checks.items), None, rec).raise_if_invalid()
    return SavedResult(d, rec, group_arrays(arrays, "weights"), group_arrays(arrays, "dual"),
                       patterns_from(arrays, rec), group_arrays(arrays, "network"))
