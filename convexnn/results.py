"""Save and load certified optima.

A result folder holds three files:

* ``certificate.json`` — the certificate (every key of the contract, ``docs/certificates.md``)
  and what is needed to re-derive it: the regularisation, tolerance, bias, the data hash
  and, when the problem came from a spec, the spec itself (so the data can be rebuilt);
* ``solution.npz`` — weights, pattern masks, gates and counts, the dual-feasible point
  and the network's arrays, written with ``np.savez`` (no object arrays: it loads with
  ``allow_pickle=False``);
* ``summary.md`` — a human-readable table (:mod:`convexnn.report`).

Writes are atomic (:mod:`convexnn.files`). :func:`convexnn.verify.verify` re-derives
every saved number from the arrays and the data alone.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import math
import os
import shutil
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from . import files
from .data import Dataset, data_sha256
from .errors import ConvexNNError, InvalidInputError
from .files import CERTIFICATE_FILE, DATA_DIR, SOLUTION_FILE, SUMMARY_FILE, atomic_directory
from .patterns import Patterns
from .report import summary_markdown
from .validation import validate_xy

__all__ = [
    "REQUIRED_KEYS",
    "NESTED_KEYS",
    "certificate_record",
    "save",
    "solution_arrays",
    "write_result",
    "read_record",
    "read_arrays",
    "as_xy",
    "arrays_sha256",
    "group_arrays",
    "patterns_from",
    "missing_keys",
    "record_sha256",
    "RECORD_DIGEST",
]

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

DataLike = Dataset | tuple[Any, Any]

#: Longest list of a method's ``info`` kept in the record (first and last halves).
MAX_INFO_ITEMS = 200
#: The key of the record's own digest.
RECORD_DIGEST = "record_sha256"
#: A certificate.json larger than this is refused unread (a real one is a few kB).
MAX_RECORD_BYTES = 16 * 2**20
#: Data files up to this size are copied into the result (``certified-data/``), so that
#: anyone can verify it without other files.
COPY_DATA_BYTES = 100 * 2**20


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


def _compact(value: Any, depth: int = 0) -> Any:
    """What a method reported in ``info``, made JSON-sized: scalars, strings and nested
    records are kept (iteration counts, rounds, the solver's status); arrays are dropped
    and lists longer than ``MAX_INFO_ITEMS`` keep their first and last entries."""
    if value is None or isinstance(value, (bool, int, float, str, np.bool_, np.integer,
                                           np.floating)):
        return value
    if depth >= 4 or isinstance(value, np.ndarray):
        return None
    if isinstance(value, Mapping):
        out = {str(k): _compact(v, depth + 1) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not None or value.get(k) is None}
    if isinstance(value, (list, tuple)):
        items = list(value)
        if len(items) > MAX_INFO_ITEMS:
            half = MAX_INFO_ITEMS // 2
            items = items[:half] + items[-half:]
        return [_compact(v, depth + 1) for v in items]
    return str(value)


def as_xy(data: DataLike) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(data, Dataset):
        return data.X, data.y
    if isinstance(data, tuple) and len(data) == 2:
        return data
    raise InvalidInputError(
        f"data must be a Dataset or a tuple (X, y); got {type(data).__name__}."
    )


def _numeric_array(value: Any, name: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise ConvexNNError(f"cannot save {name}: dtype {arr.dtype} is not numeric.")
    return np.ascontiguousarray(arr)


def solution_arrays(solution: Any) -> dict[str, np.ndarray]:
    """Every array of a solution, keyed ``weights.*``, ``dual.*``, ``patterns.*`` and
    ``network.*`` (numeric dtypes only) — each of them re-derivable by ``verify``."""
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


def record_sha256(record: Mapping[str, Any]) -> str:
    """SHA-256 of the record's canonical JSON, without its own ``record_sha256`` field.

    With ``solution_sha256`` (the arrays) inside it, it covers every byte of the result:
    an edit that does not recompute both is caught. It is not a signature — anyone can
    recompute it — so ``verify`` also re-derives every number and verdict it can.
    """
    body = {k: v for k, v in record.items() if k != RECORD_DIGEST}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def arrays_sha256(arrays: Mapping[str, np.ndarray]) -> str:
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
                       source: str | None = None,
                       recorded_spec: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``certificate.json`` contents of a solution (a plain, JSON-ready dict).

    ``recorded_spec`` replaces ``spec.as_dict()`` in the record (e.g. pointing at a copy
    of the data file inside the result).

    Raises :class:`InvalidInputError` when ``data`` are not the data the solution was
    computed on (their SHA-256 differs from ``solution.data_sha256``).
    """
    from . import __version__
    from .formulations import REGISTRY

    X, y = as_xy(data)
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
    info = _compact(solution.info or {})
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
        "solution_sha256": arrays_sha256(solution_arrays(solution)),
        "info": info,
        "version": __version__,
        "created": _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat(),
    }
    if spec is not None:
        record["spec"] = (dict(recorded_spec) if recorded_spec is not None else
                          spec.as_dict() if hasattr(spec, "as_dict") else dict(spec))
        record["problem"] = getattr(spec, "name", None)
    record = _jsonable(record)
    record[RECORD_DIGEST] = record_sha256(record)
    return record


def _copy_data(spec: Any, directory: Path) -> dict[str, Any] | None:
    """A spec's data file (npz/csv, up to ``COPY_DATA_BYTES``) copied into the result, and
    the recorded spec pointing at the copy (relative to the result folder)."""
    if spec is None or not hasattr(spec, "as_dict"):
        return None
    recorded = spec.as_dict()
    kind = getattr(spec.data, "kind", None)
    if kind not in ("npz", "csv"):
        return recorded
    source = Path(spec.data.location)
    if not source.is_file() or source.stat().st_size > COPY_DATA_BYTES:
        return recorded  # verified with --data-root (the path stays absolute)
    (directory / DATA_DIR).mkdir(exist_ok=True)
    shutil.copyfile(source, directory / DATA_DIR / source.name)
    recorded["data"]["source"] = f"{kind}:{DATA_DIR}/{source.name}"
    return recorded


def write_result(solution: Any, directory: Path, data: DataLike, *, spec: Any = None,
                 source: str | None = None, label: str | None = None) -> dict[str, Any]:
    """Write the result files into an existing ``directory`` (no swap); return the record.

    A spec's data file is copied into ``certified-data/`` (when not too large) so that the
    result verifies anywhere.
    """
    record = certificate_record(solution, data, spec=spec, source=source,
                                recorded_spec=_copy_data(spec, directory))
    arrays = solution_arrays(solution)
    files.write_npz(directory / SOLUTION_FILE, arrays)
    text = json.dumps(record, indent=2, allow_nan=False, ensure_ascii=False) + "\n"
    files.write_bytes_atomic(directory / CERTIFICATE_FILE, text.encode())
    files.write_bytes_atomic(directory / SUMMARY_FILE,
                 summary_markdown(record, label or str(directory)).encode())
    return record


def save(solution: Any, directory: str | os.PathLike, data: DataLike, *, spec: Any = None,
         source: str | None = None) -> Path:
    """Save a solution as ``certificate.json``, ``solution.npz`` and ``summary.md``.

    Parameters
    ----------
    solution : Solution or estimator
        A solution from :func:`convexnn.solve` (or any method), or a fitted estimator of
        :mod:`convexnn.estimators`: it is saved as its certified optimum (``solution_``),
        with ``data`` encoded as it was fitted (class labels as ±1 targets).
    directory : str or path
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
    Path
        The directory.
    """
    export = getattr(solution, "_convexnn_export", None)
    if export is not None:  # a fitted estimator (convexnn.estimators): its certified optimum
        solution, data = export(data)
    target = Path(directory)
    with atomic_directory(target) as tmp:
        write_result(solution, tmp, data, spec=spec, source=source, label=str(target))
    return target


def read_record(directory: Path) -> dict[str, Any]:
    """``certificate.json`` as a dict; any malformed file is an :class:`InvalidInputError`
    that says what is wrong without echoing its contents."""
    path = directory / CERTIFICATE_FILE
    if not directory.is_dir():
        raise InvalidInputError(f"result folder not found: {directory}")
    if not path.is_file():
        raise InvalidInputError(f"{path}: missing (not a convexnn result folder?).")
    if path.stat().st_size > MAX_RECORD_BYTES:
        raise InvalidInputError(f"{path}: larger than {MAX_RECORD_BYTES >> 20} MB; not a "
                                "certificate written by convexnn.")
    try:
        record = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidInputError(f"{path}: not UTF-8 text.") from None
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{path}: not valid JSON (line {exc.lineno}, column "
                                f"{exc.colno}).") from None
    except (ValueError, RecursionError):
        raise InvalidInputError(f"{path}: not a certificate (nesting or numbers beyond what "
                                "a certificate holds).") from None
    if not isinstance(record, dict):
        raise InvalidInputError(f"{path}: expected a JSON object, got {type(record).__name__}.")
    return record


def _entry_size(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[int, int]:
    """Bytes an ``.npy`` entry claims (from its header) and bytes it holds."""
    with archive.open(info) as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise ValueError(f"npy format version {version}")
        header = fh.tell()
    if dtype.hasobject:
        return 0, -1
    return int(np.prod(shape, dtype=object)) * dtype.itemsize, info.file_size - header


def read_arrays(directory: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """Arrays of ``solution.npz`` and the names of entries refused as pickled objects.

    Each entry's header is read first: an entry claiming more bytes than it holds (a
    crafted shape) is refused before anything is allocated.
    """
    path = directory / SOLUTION_FILE
    if not path.is_file():
        raise InvalidInputError(f"{path}: missing.")
    if not zipfile.is_zipfile(path):
        raise InvalidInputError(f"{path}: not an .npz archive.")
    arrays, pickled = {}, []
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                claimed, held = _entry_size(archive, info)
                if held < 0:
                    pickled.append(info.filename.removesuffix(".npy"))
                elif claimed != held:
                    raise InvalidInputError(
                        f"{path}: entry {info.filename!r} claims {claimed} bytes but holds "
                        f"{held}; the archive is corrupt.")
        with np.load(path, allow_pickle=False) as npz:
            for key in npz.files:
                if key in pickled:
                    continue
                try:
                    arrays[key] = npz[key]
                except ValueError:  # "Object arrays cannot be loaded when allow_pickle=False"
                    pickled.append(key)
    except InvalidInputError:
        raise
    except (OSError, zipfile.BadZipFile, EOFError, ValueError, KeyError) as exc:
        raise InvalidInputError(f"{path}: unreadable ({type(exc).__name__}).") from None
    return arrays, pickled


def group_arrays(arrays: Mapping[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {k[len(prefix) + 1:]: v for k, v in arrays.items() if k.startswith(prefix + ".")}


def patterns_from(arrays: Mapping[str, np.ndarray], rec: Mapping[str, Any]) -> Patterns:
    """The saved patterns (their record fields are checked by ``verify`` beforehand)."""
    p = rec.get("patterns") or {}
    draws = p.get("draws")
    return Patterns(
        masks=np.asarray(arrays["patterns.masks"], dtype=bool),
        gates=np.asarray(arrays["patterns.gates"], dtype=np.float64),
        counts=np.asarray(arrays["patterns.counts"], dtype=np.int64),
        draws=int(draws) if isinstance(draws, int) else int(arrays["patterns.counts"].sum()),
        method=str(p.get("method", "sample")),
        scope=str(p.get("scope", "sampled")),
        probabilities=arrays.get("patterns.probabilities"),
        seed=p.get("seed") if isinstance(p.get("seed"), int) else None,
    )


def missing_keys(rec: Mapping[str, Any]) -> list[str]:
    missing = [k for k in REQUIRED_KEYS if k not in rec]
    reg = rec.get("reg_name", "lam")
    if reg not in rec:
        missing.append(str(reg))
    for outer, inner in NESTED_KEYS.items():
        if isinstance(rec.get(outer), Mapping):
            missing += [f"{outer}.{k}" for k in inner if k not in rec[outer]]
    return missing
