"""Re-derive a saved certificate from its arrays and the data alone (no solver).

:func:`verify` trusts none of the saved numbers: it rebuilds the problem data from the
data alone, recomputes the patterns from the saved gates, and calls the formulation's
``certify`` (numpy) on the saved weights and dual point — or, for a certificate of scope
``"all"`` over a working set of patterns, re-runs the check over every pattern of the
arrangement. Every saved number is compared with its re-derived value; the
:class:`Verification` names each check that failed.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .data import add_bias, data_sha256
from .errors import InvalidInputError, ProblemTooLargeError, VerificationError
from .files import CERTIFICATE_FILE, SOLUTION_FILE
from .formulations import REGISTRY, Formulation
from .global_check import check_patterns, global_certificate
from .patterns import Patterns, enumerate_patterns
from .problem import ProblemData
from .problems import load_dataset
from .results import (
    NESTED_KEYS,
    REQUIRED_KEYS,
    DataLike,
    arrays_sha256,
    as_xy,
    group_arrays,
    missing_keys,
    patterns_from,
    read_arrays,
    read_record,
)
from .spec import parse_data
from .validation import validate_xy

__all__ = ["Check", "Verification", "verify", "load", "SavedResult", "RTOL"]

#: Re-derived values must match the saved ones to this relative accuracy (re-running the
#: same numpy arithmetic agrees to rounding, ~1e-15).
RTOL = 1e-10


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


def _num(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def _close(saved: Any, derived: float, scale: float) -> bool:
    if saved is None:
        return not math.isfinite(derived)
    if not _num(saved):
        return False
    if not math.isfinite(derived):
        return False
    return abs(float(saved) - derived) <= RTOL * max(scale, 1e-300)


def _type_problems(rec: Mapping[str, Any]) -> list[str]:
    bad = []
    reg = rec.get("reg_name", "lam")
    for k in ("objective", "dual_objective", "gap", "relative_gap", "tolerance", reg):
        if k in rec and not _num(rec[k]):
            bad.append(f"{k}={rec[k]!r} is not a number")
    for k in ("n", "d", "outputs"):
        if k in rec and (isinstance(rec[k], bool) or not isinstance(rec[k], int)):
            bad.append(f"{k}={rec[k]!r} is not an integer")
    if "certified" in rec and not isinstance(rec["certified"], bool):
        bad.append(f"certified={rec['certified']!r} is not true/false")
    for k in ("formulation", "solver", "status", "data_sha256", "version"):
        if k in rec and not isinstance(rec[k], str):
            bad.append(f"{k}={rec[k]!r} is not a string")
    for k in NESTED_KEYS:
        if k in rec and not isinstance(rec[k], Mapping):
            bad.append(f"{k} is not an object")
    return bad


def _load_data_for(rec: Mapping[str, Any], path: Path, spec: Any, uci_root: Any) -> Any:
    if spec is not None:
        return load_dataset(spec.data, uci_root=uci_root)
    section = (rec.get("spec") or {}).get("data") if isinstance(rec.get("spec"), Mapping) else None
    if section is None:
        raise InvalidInputError(
            f"{path / CERTIFICATE_FILE} records no data spec; pass the data "
            "(verify(DIR, (X, y)) or convexnn verify DIR --spec SPEC.toml)."
        )
    data_spec = parse_data(section, origin=f"{path / CERTIFICATE_FILE} [spec]")
    return load_dataset(data_spec, uci_root=uci_root)


def _global(form: Formulation, data: ProblemData, weights: dict, reg: float, tol: float
            ) -> tuple[Any, tuple[str, bool, str]]:
    """A claim of scope "all" is re-derived, not trusted: the saved solution's dual point
    must satisfy the dual constraint of EVERY pattern of the arrangement of the data.
    Returns the check (None when it cannot be made) and the verification line."""
    try:
        every = enumerate_patterns(data.X)
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


def verify(directory: str | os.PathLike, data: DataLike | None = None, *, spec: Any = None,
           uci_root: str | os.PathLike | None = None, strict: bool = False) -> Verification:
    """Re-derive a saved certificate from its arrays and the data alone (no solver).

    The data are ``data`` when given, else loaded from ``spec`` (a ProblemSpec), else
    from the spec recorded in ``certificate.json``. Checks, each reported by name:
    contract keys and value types; no pickled objects; arrays unchanged since the
    certificate was issued (``solution_sha256``); data hash; sizes; patterns equal to
    ``1[X g ≥ 0]`` of the saved gates; then the formulation's ``certify`` re-derives the
    primal objective, the dual-feasible point, the gap and the verdict, and each is
    compared with the saved value (relative accuracy ``RTOL``); finally the network.

    Returns
    -------
    Verification
        ``.valid``, ``.failed`` (names), ``.checks``; ``strict=True`` raises
        :class:`VerificationError` instead of returning an invalid one.

    Raises
    ------
    InvalidInputError
        Unreadable or missing files, data that cannot be loaded.
    """
    path = Path(directory)
    rec = read_record(path)
    arrays, pickled = read_arrays(path)
    checks: list[Check] = []

    def add(name: str, ok: bool, detail: str) -> None:
        checks.append(Check(name, bool(ok), detail))

    def done(certificate: Any = None) -> Verification:
        result = Verification(path, tuple(checks), certificate, rec)
        if strict:
            result.raise_if_invalid()
        return result

    missing = missing_keys(rec)
    add("keys", not missing, f"missing {missing}" if missing else
        f"all {len(REQUIRED_KEYS) + 1} contract keys present")
    bad = _type_problems(rec)
    add("types", not bad, "; ".join(bad) if bad else "numbers are numbers")
    add("no_pickle", not pickled,
        f"{SOLUTION_FILE} holds pickled object arrays {pickled} (refused: allow_pickle=False)"
        if pickled else "every array loads with allow_pickle=False")
    saved_digest = rec.get("solution_sha256")
    if saved_digest is not None:
        ok = saved_digest == arrays_sha256(arrays)
        add("solution_sha256", ok, "arrays are those the certificate was issued for" if ok
            else f"arrays in {SOLUTION_FILE} were changed after the certificate was issued")

    name = rec.get("formulation")
    form = REGISTRY.get(name) if isinstance(name, str) else None
    add("formulation", form is not None, f"{name!r} is registered" if form is not None else
        f"{name!r} is not a registered formulation ({sorted(REGISTRY)})")
    reg_name = rec.get("reg_name", "lam")
    needed = ["tolerance", reg_name, "patterns"]
    if form is None or bad or any(k not in rec for k in needed):
        add("rederive", False, "not attempted: the record lacks what re-derivation needs")
        return done()
    absent = [k for k in ("patterns.masks", "patterns.gates", "patterns.counts")
              if k not in arrays]
    weights, dual = group_arrays(arrays, "weights"), group_arrays(arrays, "dual")
    if absent or not weights:
        add("arrays", False, f"{SOLUTION_FILE} lacks {absent or ['weights.*']}")
        return done()

    # --- data -----------------------------------------------------------------------
    if data is None:
        data = _load_data_for(rec, path, spec, uci_root)
    X, y = as_xy(data)
    Xv, Y = validate_xy(X, y)
    sha = data_sha256(Xv, Y)
    ok = sha == rec.get("data_sha256")
    add("data_sha256", ok, f"data hash {sha[:16]}… matches" if ok else
        f"data hash {sha[:16]}… differs from the saved {str(rec.get('data_sha256'))[:16]}… "
        "(the data changed)")
    sizes = {"n": Xv.shape[0], "d": Xv.shape[1], "outputs": Y.shape[1]}
    wrong = [f"{k}: saved {rec.get(k)!r}, data {v}" for k, v in sizes.items() if rec.get(k) != v]
    add("sizes", not wrong, "; ".join(wrong) if wrong else
        f"n={sizes['n']}, d={sizes['d']}, outputs={sizes['outputs']}")
    if wrong:
        return done()

    # --- patterns -------------------------------------------------------------------
    bias = bool(rec.get("bias", False))
    Xb = add_bias(Xv) if bias else Xv
    pats = patterns_from(arrays, rec)
    prec = rec["patterns"]
    problems = []
    if pats.gates.shape[0] != Xb.shape[1] or pats.masks.shape != (Xb.shape[0], pats.P):
        problems.append(f"gates {pats.gates.shape} / masks {pats.masks.shape} do not fit "
                        f"data {Xb.shape}")
    elif not np.array_equal(pats.masks, (Xb @ pats.gates) >= 0):
        cols = int(np.sum(np.any(pats.masks != ((Xb @ pats.gates) >= 0), axis=0)))
        problems.append(f"{cols} saved masks differ from 1[X g ≥ 0] of their gates")
    if prec.get("count") != pats.P:
        problems.append(f"count: saved {prec.get('count')!r}, arrays hold {pats.P}")
    add("patterns", not problems, "; ".join(problems) if problems else
        f"{pats.P} masks = 1[X g ≥ 0] of the saved gates ({pats.method}, scope {pats.scope})")
    if problems:
        return done()

    # --- certificate ----------------------------------------------------------------
    single = bool(rec.get("single_output", Y.shape[1] == 1))
    pdata = ProblemData(Xb, Y, pats, bias, single, sha)
    reg, tol = float(rec[reg_name]), float(rec["tolerance"])
    claimed = rec.get("scope", pats.scope)
    global_line = None
    try:
        if claimed == "all" and pats.scope != "all" and form.global_check:
            # scope "all" over a working set (pattern augmentation): the lower bound over
            # every pattern of the arrangement is the certificate's dual objective
            check, global_line = _global(form, pdata, weights, reg, tol)
            if check is None:
                add(*global_line)
                return done()
            cert, dual_point = global_certificate(form, pdata, weights, check)
        else:
            cert, dual_point = form.certify(pdata, reg, weights, dual or None, tol=tol)
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        add("certify", False, f"the saved arrays do not fit {name}: "
            f"{type(exc).__name__}: {exc}")
        return done()
    scale = max(abs(cert.objective), 1e-12)
    for key, value, sc in (("objective", cert.objective, scale),
                           ("dual_objective", cert.dual_objective, scale),
                           ("gap", cert.gap, scale),
                           ("relative_gap", cert.relative_gap, 1.0)):
        saved = rec.get(key)
        ok = _close(saved, value, sc)
        add(key, ok, f"re-derived {value:.12g} {'=' if ok else '≠'} saved {saved!r}")
    ok = rec.get("certified") == cert.certified
    verdict = "certified" if cert.certified else "not certified"
    add("certified", ok, f"re-derived: {verdict}" + ("" if ok else
        f", saved certified={rec.get('certified')!r}") +
        (f" (failed: {list(cert.failed)})" if cert.failed else ""))
    scope_ok = claimed == cert.scope and prec.get("scope") == pats.scope
    add("scope", scope_ok, f"{cert.scope}" if scope_ok else
        f"re-derived {cert.scope!r}, saved {rec.get('scope')!r}/{prec.get('scope')!r}")
    if scope_ok and cert.scope == "all":
        add(*(global_line or _global(form, pdata, weights, reg, tol)[1]))

    mism = []
    for k, v in dual_point.items():
        sv = dual.get(k)
        v = np.asarray(v, dtype=np.float64)
        if sv is None or np.shape(sv) != v.shape:
            mism.append(f"{k}: saved {None if sv is None else np.shape(sv)}, re-derived {v.shape}")
        elif not np.allclose(sv, v, rtol=1e-8, atol=1e-10 * max(np.abs(v).max(initial=0), 1)):
            mism.append(f"{k}: max difference {np.abs(sv - v).max():.2e}")
    add("dual_point", not mism, "; ".join(mism) if mism else
        f"saved dual point {sorted(dual_point)} is the re-derived dual-feasible point")

    # --- network --------------------------------------------------------------------
    nrec = rec["network"]
    try:
        net = form.network(pdata, weights)
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        add("network", False, f"cannot rebuild the network: {exc}")
        return done(cert)
    neurons = getattr(net, "neurons", None)
    problems = []
    if nrec.get("neurons") != neurons:
        problems.append(f"neurons: saved {nrec.get('neurons')!r}, re-derived {neurons}")
    if nrec.get("objective") is not None:
        lam = reg if reg_name == "lam" else (rec.get("info") or {}).get("lam")
        if net is None or lam is None:
            problems.append("network objective saved but no network/λ to re-derive it")
        else:
            value = float(net.objective(X, y, float(lam)))
            if not _close(nrec["objective"], value, max(abs(value), 1e-12)):
                problems.append(f"objective: saved {nrec['objective']!r}, re-derived {value:.12g}")
    add("network", not problems, "; ".join(problems) if problems else
        f"{neurons} neurons" + ("" if nrec.get("objective") is None else
                                f", training objective {nrec['objective']:.12g}"))
    return done(cert)


# ---------------------------------------------------------------------------
# load
# ---------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class SavedResult:
    """A result directory read back: the record and the arrays (no data, no solver)."""

    path: Path
    record: Mapping[str, Any]
    weights: Mapping[str, np.ndarray]
    dual: Mapping[str, np.ndarray]
    patterns: Patterns
    network: Mapping[str, np.ndarray] = field(default_factory=dict)
    info: Mapping[str, np.ndarray] = field(default_factory=dict)

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


def load(directory: str | os.PathLike, data: DataLike | None = None) -> SavedResult:
    """Read a result directory, checking that it is complete and unmodified.

    With ``data`` the certificate is also re-derived (``verify(directory, data,
    strict=True)``) before the result is returned.

    Raises
    ------
    InvalidInputError
        Missing or unreadable files, pickled objects in ``solution.npz``.
    VerificationError
        Missing contract keys, or arrays that are not those the certificate was issued for.
    """
    d = Path(directory)
    record = read_record(d)
    arrays, pickled = read_arrays(d)
    if pickled:
        raise InvalidInputError(
            f"{d / SOLUTION_FILE}: holds pickled object arrays {pickled}; refused "
            "(allow_pickle=False)."
        )
    missing = missing_keys(record)
    if missing:
        raise VerificationError(f"{d / CERTIFICATE_FILE}: missing keys {missing}.")
    saved = record.get("solution_sha256")
    if saved is not None and saved != arrays_sha256(arrays):
        raise VerificationError(
            f"{d / SOLUTION_FILE}: arrays differ from those the certificate was issued for."
        )
    absent = [k for k in ("patterns.masks", "patterns.gates", "patterns.counts")
              if k not in arrays]
    if absent:
        raise VerificationError(f"{d / SOLUTION_FILE}: missing arrays {absent}.")
    if data is not None:
        verify(d, data, strict=True)
    return SavedResult(d, record, group_arrays(arrays, "weights"), group_arrays(arrays, "dual"),
                       patterns_from(arrays, record), group_arrays(arrays, "network"),
                       group_arrays(arrays, "info"))
