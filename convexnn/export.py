"""Save, load and verify certified optima.

A result directory holds three files:

* ``certificate.json`` — the certificate (every key of the DESIGN.md contract) and what
  is needed to re-derive it: the regularisation, tolerance, bias, the data hash and,
  when the problem came from a spec, the spec itself (so the data can be rebuilt);
* ``solution.npz`` — weights, pattern masks, gates and counts, the dual-feasible point
  and the network's arrays, written with ``np.savez`` (no object arrays: it loads with
  ``allow_pickle=False``);
* ``summary.md`` — a human-readable table.

:func:`verify` trusts none of the saved numbers: it rebuilds the problem data from the
data alone, recomputes the patterns from the saved gates, and calls the formulation's
``certify`` (numpy, no solver) on the saved weights and dual point. Every saved number
is compared with its re-derived value; the :class:`Verification` names each check that
failed.

Writes are atomic: the files are written into a temporary directory beside the target,
which then replaces the target by renaming, so an interrupted save leaves the previous
result (or nothing), never half of one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import hashlib
import json
import math
import os
import shutil
import tempfile
import uuid
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .data import Dataset, add_bias, data_sha256, validate_xy
from .errors import ConvexNNError, InvalidInputError, ProblemTooLargeError, VerificationError
from .patterns import Patterns, enumerate_patterns

__all__ = [
    "CERTIFICATE_FILE",
    "SOLUTION_FILE",
    "SUMMARY_FILE",
    "REPRODUCE_FILE",
    "REQUIRED_KEYS",
    "Check",
    "SavedResult",
    "Verification",
    "atomic_directory",
    "certificate_record",
    "check_output_dir",
    "load",
    "markdown_table",
    "save",
    "solution_arrays",
    "verify",
]

CERTIFICATE_FILE = "certificate.json"
SOLUTION_FILE = "solution.npz"
SUMMARY_FILE = "summary.md"
#: Written by ``convexnn reproduce``; marks a directory convexnn may replace.
REPRODUCE_FILE = "reproduce.json"

#: Top-level keys of the contract (plus ``lam`` or ``mu``, named by ``reg_name``).
REQUIRED_KEYS = (
    "formulation", "solver", "status", "objective", "dual_objective", "gap", "relative_gap",
    "tolerance", "certified", "n", "d", "outputs", "patterns", "network", "timings",
    "data_sha256", "version",
)
NESTED_KEYS = {
    "patterns": ("count", "method", "scope"),
    "network": ("neurons", "objective"),
    "timings": ("build_s", "solve_s", "certify_s"),
}
#: Re-derived values must match the saved ones to this relative accuracy (re-running the
#: same numpy arithmetic agrees to rounding, ~1e-15).
RTOL = 1e-10

DataLike = Dataset | tuple[Any, Any]


# ---------------------------------------------------------------------------
# Atomic writes
# ---------------------------------------------------------------------------


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _is_result_dir(path: Path) -> bool:
    return (path / CERTIFICATE_FILE).is_file() or (path / REPRODUCE_FILE).is_file()


def check_output_dir(path: str | os.PathLike) -> Path:
    """Check that ``path`` may receive a result: new, empty, or a previous convexnn result.

    Raises :class:`InvalidInputError` otherwise, so a mistyped ``--out`` never replaces a
    folder of other files.
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise InvalidInputError(f"output path {p} exists and is not a directory.")
    if p.is_dir() and any(p.iterdir()) and not _is_result_dir(p):
        raise InvalidInputError(
            f"output directory {p} exists, is not empty and holds no {CERTIFICATE_FILE}; "
            "refusing to replace it. Choose a new or empty directory."
        )
    return p


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``path`` when the block succeeds.

    On any exception (including KeyboardInterrupt) the temporary directory is removed
    and ``path`` is left as it was. The swap is two renames on the same file system; the
    previous result is deleted only after the new one is in place.
    """
    target = check_output_dir(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private; results are not
        yield tmp
        old = None
        if target.exists():
            old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(target, old)
        try:
            os.rename(tmp, target)
        except BaseException:
            if old is not None:
                os.rename(old, target)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_bytes_atomic(path: Path, payload: bytes) -> None:
    """Write a file atomically: a temporary file in the same directory, then os.replace."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_bytes_atomic(path, buffer.getvalue())


# ---------------------------------------------------------------------------
# JSON helpers
# ---------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """Plain JSON values: floats stay floats, non-finite numbers become null."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, str):
        return value
    return str(value)


def _as_xy(data: DataLike) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(data, Dataset):
        return data.X, data.y
    if isinstance(data, tuple) and len(data) == 2:
        return data
    raise InvalidInputError(
        f"data must be a Dataset or a tuple (X, y); got {type(data).__name__}."
    )


# ---------------------------------------------------------------------------
# Building the record and the arrays
# ---------------------------------------------------------------------------


def _numeric_array(value: Any, name: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise ConvexNNError(f"cannot save {name}: dtype {arr.dtype} is not numeric.")
    return np.ascontiguousarray(arr)


def solution_arrays(solution: Any) -> dict[str, np.ndarray]:
    """Every array of a solution, keyed ``weights.*``, ``dual.*``, ``patterns.*``,
    ``network.*`` and ``info.*`` (numeric dtypes only)."""
    out: dict[str, np.ndarray] = {}
    for k, v in solution.weights.items():
        out[f"weights.{k}"] = _numeric_array(v, f"weights[{k!r}]")
    for k, v in solution.dual.items():
        out[f"dual.{k}"] = _numeric_array(v, f"dual[{k!r}]")
    p = solution.patterns
    out["patterns.masks"] = np.ascontiguousarray(p.masks, dtype=bool)
    out["patterns.gates"] = np.ascontiguousarray(p.gates, dtype=np.float64)
    out["patterns.counts"] = np.ascontiguousarray(p.counts, dtype=np.int64)
    if p.probabilities is not None:
        out["patterns.probabilities"] = np.ascontiguousarray(p.probabilities, dtype=np.float64)
    net = solution.network
    if net is not None and dataclasses.is_dataclass(net):
        for f in dataclasses.fields(net):
            v = getattr(net, f.name)
            if isinstance(v, np.ndarray) and v.dtype != object:
                out[f"network.{f.name}"] = np.ascontiguousarray(v)
    for k, v in (solution.info or {}).items():
        if isinstance(v, np.ndarray) and v.dtype.kind in "biuf":
            out[f"info.{k}"] = np.ascontiguousarray(v)
    return out


def _arrays_sha256(arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 over the names, dtypes, shapes and contents of the arrays."""
    h = hashlib.sha256()
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k])
        h.update(f"{k}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _network_objective(solution: Any, net: Any, X: np.ndarray, y: np.ndarray) -> float | None:
    """The network's weight-decay training objective at λ (None without a network or λ)."""
    if net is None or not hasattr(net, "objective"):
        return None
    lam = solution.reg if solution.reg_name == "lam" else (solution.info or {}).get("lam")
    if lam is None:
        return None
    return float(net.objective(X, y, float(lam)))


def certificate_record(solution: Any, data: DataLike, *, spec: Any = None,
                       source: str | None = None) -> dict[str, Any]:
    """The ``certificate.json`` contents of a solution (a plain, JSON-ready dict).

    Raises :class:`InvalidInputError` when ``data`` are not the data the solution was
    computed on (their SHA-256 differs from ``solution.data_sha256``).
    """
    from . import __version__
    from .formulations import REGISTRY

    X, y = _as_xy(data)
    Xv, Y = validate_xy(X, y)
    sha = data_sha256(Xv, Y)
    if solution.data_sha256 and sha != solution.data_sha256:
        raise InvalidInputError(
            f"the data given to save() (sha256 {sha[:12]}…) are not the data the solution "
            f"was computed on (sha256 {solution.data_sha256[:12]}…)."
        )
    cert = solution.certificate
    net = solution.network
    form = REGISTRY.get(solution.formulation)
    info = {k: v for k, v in (solution.info or {}).items()
            if v is None or isinstance(v, (bool, int, float, str, np.integer, np.floating))}
    if source is None:
        meta = getattr(data, "meta", {}) if isinstance(data, Dataset) else {}
        source = meta.get("source")
    record: dict[str, Any] = {
        "formulation": solution.formulation,
        "title": getattr(form, "title", ""),
        "solver": solution.solver,
        "method": solution.method,
        "status": solution.status,
        "objective": cert.objective,
        "dual_objective": cert.dual_objective,
        "gap": cert.gap,
        "relative_gap": cert.relative_gap,
        "tolerance": cert.tolerance,
        "certified": bool(cert.certified),
        "scope": cert.scope,
        "checks": dict(cert.checks),
        "failed": list(cert.failed),
        solution.reg_name: float(solution.reg),
        "reg_name": solution.reg_name,
        "n": solution.n,
        "d": solution.d,
        "outputs": solution.outputs,
        "bias": bool(solution.bias),
        "single_output": bool(solution.single_output),
        "patterns": {
            "count": solution.patterns.P,
            "method": solution.patterns.method,
            "scope": solution.patterns.scope,
            "draws": solution.patterns.draws,
            "seed": solution.patterns.seed,
        },
        "network": {
            "neurons": getattr(net, "neurons", None),
            "objective": _network_objective(solution, net, X, y),
        },
        "timings": {k: float(solution.timings.get(k, 0.0))
                    for k in ("build_s", "solve_s", "certify_s")},
        "data_sha256": sha,
        "data": {"source": source, "name": getattr(data, "name", None)},
        "solution_sha256": _arrays_sha256(solution_arrays(solution)),
        "info": info,
        "version": __version__,
        "created": _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat(),
    }
    if spec is not None:
        record["spec"] = spec.as_dict() if hasattr(spec, "as_dict") else dict(spec)
        record["problem"] = getattr(spec, "name", None)
    return _jsonable(record)


# ---------------------------------------------------------------------------
# Summary
# ---------------------------------------------------------------------------


def markdown_table(rows: list[Mapping[str, Any]] | list[list[Any]],
                   columns: list[str]) -> str:
    """A GitHub-flavoured Markdown table (floats in ``%.6g``)."""
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.6g}"
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(columns) + " |", "| " + " | ".join("---" for _ in columns) + " |"]
    for r in rows:
        vals = [r.get(c, "") for c in columns] if isinstance(r, Mapping) else list(r)
        lines.append("| " + " | ".join(cell(v) for v in vals) + " |")
    return "\n".join(lines) + "\n"


def _verdict(rec: Mapping[str, Any]) -> str:
    scope = rec.get("scope")
    among = ("the global optimum of the non-convex training problem (every activation "
             "pattern is in the program: scope `all`)" if scope == "all" else
             "optimal among networks whose activation patterns lie in the "
             f"{rec['patterns']['count']} sampled patterns (scope `sampled`)")
    rel, tol = rec.get("relative_gap"), rec.get("tolerance")
    rel_s = "n/a" if rel is None else f"{rel:.2e}"
    if rec.get("certified"):
        return f"**CERTIFIED**: {among}; relative duality gap {rel_s} ≤ tolerance {tol:.0e}."
    failed = rec.get("failed") or []
    why = f" failed checks: {', '.join(failed)};" if failed else ""
    return (f"**NOT CERTIFIED**:{why} relative duality gap {rel_s} against tolerance "
            f"{tol:.0e}. The weights are a feasible point, not a proven optimum.")


def summary_markdown(rec: Mapping[str, Any], directory: str | None = None) -> str:
    """The ``summary.md`` text of a certificate record."""
    reg = rec.get("reg_name", "lam")
    sym = {"lam": "λ", "mu": "μ"}.get(reg, reg)
    pat, net, t = rec["patterns"], rec["network"], rec["timings"]
    data = rec.get("data") or {}
    net_s = "none" if net.get("neurons") is None else f"{net['neurons']} neurons"
    if net.get("objective") is not None:
        net_s += f", training objective {net['objective']:.10g}"
    rows = [
        ["formulation", f"`{rec['formulation']}` — {rec.get('title', '')}"],
        ["data", f"{data.get('name') or ''} (`{data.get('source') or 'arrays'}`): "
                 f"n = {rec['n']}, d = {rec['d']}, outputs = {rec['outputs']}, "
                 f"bias = {str(rec.get('bias', False)).lower()}"],
        ["data sha256", f"`{rec['data_sha256']}`"],
        ["patterns", f"{pat['count']} ({pat['method']}, scope {pat['scope']})"],
        [f"{sym} ({reg})", f"{rec[reg]:.10g}"],
        ["solver", f"{rec['solver']} ({rec.get('method', '')}), status {rec['status']}"],
        ["objective (primal, recomputed in numpy)", f"{rec['objective']:.12g}"],
        ["dual objective (numpy dual-feasible point)", f"{rec['dual_objective']:.12g}"],
        ["gap", f"{rec['gap']:.3e}"],
        ["relative gap", f"{rec['relative_gap']:.3e} (tolerance {rec['tolerance']:.0e})"],
        ["certified", str(rec["certified"]).lower()],
        ["network", net_s],
        ["timings", f"build {t['build_s']:.3f} s, solve {t['solve_s']:.3f} s, "
                    f"certify {t['certify_s']:.3f} s"],
        ["convexnn", rec["version"]],
    ]
    title = rec.get("problem") or rec["formulation"]
    where = directory or "DIR"
    return (
        f"# convexnn result: {title}\n\n{_verdict(rec)}\n\n"
        + markdown_table(rows, ["quantity", "value"])
        + f"\nRe-derive this certificate from the saved arrays and the data alone (no "
        f"solver): `convexnn verify {where}`.\n"
    )


# ---------------------------------------------------------------------------
# save / load
# ---------------------------------------------------------------------------


def write_result(solution: Any, directory: Path, data: DataLike, *, spec: Any = None,
                 source: str | None = None, label: str | None = None) -> dict[str, Any]:
    """Write the three result files into an existing ``directory`` (no swap); return the record."""
    record = certificate_record(solution, data, spec=spec, source=source)
    arrays = solution_arrays(solution)
    _write_npz(directory / SOLUTION_FILE, arrays)
    text = json.dumps(record, indent=2, allow_nan=False, ensure_ascii=False) + "\n"
    write_bytes_atomic(directory / CERTIFICATE_FILE, text.encode())
    write_bytes_atomic(directory / SUMMARY_FILE,
                 summary_markdown(record, label or str(directory)).encode())
    return record


def save(solution: Any, directory: str | os.PathLike, data: DataLike, *, spec: Any = None,
         source: str | None = None) -> Path:
    """Save a solution as ``certificate.json``, ``solution.npz`` and ``summary.md``.

    Parameters
    ----------
    solution : Solution
    directory : path
        Created, or replaced when it holds a previous result (never a folder of other
        files). The replacement is atomic.
    data : Dataset or (X, y)
        The data the solution was computed on (checked by hash); used for the network's
        training objective and recorded by hash.
    spec : ProblemSpec, optional
        Recorded so that ``verify`` can rebuild the data without being given it.
    source : str, optional
        Description of the data (default: ``data.meta["source"]``).

    Returns
    -------
    Path of the directory.
    """
    target = Path(directory)
    with atomic_directory(target) as tmp:
        write_result(solution, tmp, data, spec=spec, source=source, label=str(target))
    return target


def _read_record(directory: Path) -> dict[str, Any]:
    path = directory / CERTIFICATE_FILE
    if not directory.is_dir():
        raise InvalidInputError(f"result directory not found: {directory}")
    if not path.is_file():
        raise InvalidInputError(f"{path}: missing (not a convexnn result directory?).")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"{path}: not valid JSON ({exc}).") from None
    if not isinstance(record, dict):
        raise InvalidInputError(f"{path}: expected a JSON object, got {type(record).__name__}.")
    return record


def _read_arrays(directory: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """Arrays of ``solution.npz`` and the names of entries refused as pickled objects."""
    path = directory / SOLUTION_FILE
    if not path.is_file():
        raise InvalidInputError(f"{path}: missing.")
    if not zipfile.is_zipfile(path):
        raise InvalidInputError(f"{path}: not an .npz archive.")
    arrays, pickled = {}, []
    try:
        with np.load(path, allow_pickle=False) as npz:
            for key in npz.files:
                try:
                    arrays[key] = npz[key]
                except ValueError:  # "Object arrays cannot be loaded when allow_pickle=False"
                    pickled.append(key)
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise InvalidInputError(f"{path}: unreadable ({exc}).") from None
    return arrays, pickled


def _group(arrays: Mapping[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {k[len(prefix) + 1:]: v for k, v in arrays.items() if k.startswith(prefix + ".")}


def _patterns_from(arrays: Mapping[str, np.ndarray], rec: Mapping[str, Any]) -> Patterns:
    p = rec.get("patterns") or {}
    return Patterns(
        masks=np.asarray(arrays["patterns.masks"], dtype=bool),
        gates=np.asarray(arrays["patterns.gates"], dtype=np.float64),
        counts=np.asarray(arrays["patterns.counts"], dtype=np.int64),
        draws=int(p.get("draws") or arrays["patterns.counts"].sum()),
        method=str(p.get("method", "sample")),
        scope=str(p.get("scope", "sampled")),
        probabilities=arrays.get("patterns.probabilities"),
        seed=p.get("seed"),
    )


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


def _missing_keys(rec: Mapping[str, Any]) -> list[str]:
    missing = [k for k in REQUIRED_KEYS if k not in rec]
    reg = rec.get("reg_name", "lam")
    if reg not in rec:
        missing.append(str(reg))
    for outer, inner in NESTED_KEYS.items():
        if isinstance(rec.get(outer), Mapping):
            missing += [f"{outer}.{k}" for k in inner if k not in rec[outer]]
    return missing


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
    record = _read_record(d)
    arrays, pickled = _read_arrays(d)
    if pickled:
        raise InvalidInputError(
            f"{d / SOLUTION_FILE}: holds pickled object arrays {pickled}; refused "
            "(allow_pickle=False)."
        )
    missing = _missing_keys(record)
    if missing:
        raise VerificationError(f"{d / CERTIFICATE_FILE}: missing keys {missing}.")
    saved = record.get("solution_sha256")
    if saved is not None and saved != _arrays_sha256(arrays):
        raise VerificationError(
            f"{d / SOLUTION_FILE}: arrays differ from those the certificate was issued for."
        )
    absent = [k for k in ("patterns.masks", "patterns.gates", "patterns.counts")
              if k not in arrays]
    if absent:
        raise VerificationError(f"{d / SOLUTION_FILE}: missing arrays {absent}.")
    if data is not None:
        verify(d, data, strict=True)
    return SavedResult(d, record, _group(arrays, "weights"), _group(arrays, "dual"),
                       _patterns_from(arrays, record), _group(arrays, "network"),
                       _group(arrays, "info"))


# ---------------------------------------------------------------------------
# verify
# ---------------------------------------------------------------------------


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
    from .spec import load_dataset, parse_data

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


def _check_global_scope(name: str, Xb: np.ndarray, Y: np.ndarray, pats: Patterns,
                        weights: dict, reg: float, tol: float) -> tuple[str, bool, str]:
    """A claim of scope "all" is re-derived, not trusted: the saved solution's dual point
    must satisfy the dual constraint of EVERY pattern of the arrangement of the data."""
    from .global_check import check_patterns

    try:
        every = enumerate_patterns(Xb)
        check = check_patterns(name, Xb, Y, pats, weights, reg, every, tolerance=tol)
    except (ProblemTooLargeError, InvalidInputError) as exc:
        return "global", False, f"scope 'all' cannot be re-derived: {exc}"
    if check.passed:
        return "global", True, (f"dual feasible for all {every.P} patterns of the arrangement "
                                f"(largest violation {check.max_violation:.1e})")
    return "global", False, (f"scope 'all' claimed, but {check.violating.P} of the "
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
    from .formulations import REGISTRY, ProblemData

    path = Path(directory)
    rec = _read_record(path)
    arrays, pickled = _read_arrays(path)
    checks: list[Check] = []

    def add(name: str, ok: bool, detail: str) -> None:
        checks.append(Check(name, bool(ok), detail))

    def done(certificate: Any = None) -> Verification:
        result = Verification(path, tuple(checks), certificate, rec)
        if strict:
            result.raise_if_invalid()
        return result

    missing = _missing_keys(rec)
    add("keys", not missing, f"missing {missing}" if missing else
        f"all {len(REQUIRED_KEYS) + 1} contract keys present")
    bad = _type_problems(rec)
    add("types", not bad, "; ".join(bad) if bad else "numbers are numbers")
    add("no_pickle", not pickled,
        f"{SOLUTION_FILE} holds pickled object arrays {pickled} (refused: allow_pickle=False)"
        if pickled else "every array loads with allow_pickle=False")
    saved_digest = rec.get("solution_sha256")
    if saved_digest is not None:
        ok = saved_digest == _arrays_sha256(arrays)
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
    weights, dual = _group(arrays, "weights"), _group(arrays, "dual")
    if absent or not weights:
        add("arrays", False, f"{SOLUTION_FILE} lacks {absent or ['weights.*']}")
        return done()

    # --- data -----------------------------------------------------------------------
    if data is None:
        data = _load_data_for(rec, path, spec, uci_root)
    X, y = _as_xy(data)
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
    pats = _patterns_from(arrays, rec)
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
    reg, tol = rec[reg_name], rec["tolerance"]
    try:
        cert, dual_point = form.certify(pdata, float(reg), weights, dual or None,
                                        tol=float(tol))
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
    scope_ok = rec.get("scope", pats.scope) == cert.scope == prec.get("scope")
    add("scope", scope_ok, f"{cert.scope}" if scope_ok else
        f"re-derived {cert.scope!r}, saved {rec.get('scope')!r}/{prec.get('scope')!r}")
    if scope_ok and cert.scope == "all":
        add(*_check_global_scope(name, Xb, Y, pats, weights, float(reg), float(tol)))

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
