"""The tasks of a sweep: plan them from a spec, and run one (on any worker).

One task = one (data set, model, fold) with the model's whole regularisation grid, so
the warm starts along the path stay inside it. A task is a plain JSON-ready mapping;
its key is the SHA-256 of that mapping, which names the data by the digest of the
encoded arrays (``data_sha256``) and of the fold's indices (``split_sha256``). The
client plans the tasks (:func:`plan_sweep`: it loads every data set once); a worker
runs one with :func:`run_task` — a function of the task alone: it loads the data
itself, refuses data whose digests differ from the plan's, fits the path on the
training rows and scores every grid value on the training, validation and test rows.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import socket
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data import Dataset, list_uci, load_uci
from ..errors import InvalidInputError
from ..problems import load_dataset
from ..spec import DataSpec, _parse_patterns, parse_data
from .models import FITTERS, FitContext, scores
from .spec import UCI_ALL, ProtocolSpec, SweepSpec, _parse_model, _parse_solver

__all__ = ["Split", "Source", "Task", "Plan", "plan_sweep", "load_source", "run_task",
           "task_key", "one_line", "init_worker", "worker_version", "BLAS_ENV"]

#: Environment variables that set the threads of BLAS and OpenMP libraries.
BLAS_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
            "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")

_EMPTY = np.zeros(0, dtype=np.int64)


def one_line(text: Any, limit: int = 400) -> str:
    """``text`` on one line, at most ``limit`` characters."""
    s = re.sub(r"\s+", " ", str(text)).strip()
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def task_key(task: Mapping[str, Any]) -> str:
    """The key of a task: the first 32 hex digits of the SHA-256 of its canonical JSON."""
    return hashlib.sha256(_canonical(task).encode()).hexdigest()[:32]


@dataclass(frozen=True, repr=False)
class Split:
    """The rows of one fold: ``train``, ``validation`` and ``test`` (either may be empty)."""

    fold: int
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray

    @property
    def sha256(self) -> str:
        h = hashlib.sha256()
        for part in (self.train, self.validation, self.test):
            arr = np.ascontiguousarray(part, dtype=np.int64)
            h.update(str(arr.shape).encode())
            h.update(arr.tobytes())
        return h.hexdigest()

    def __repr__(self) -> str:
        return (f"Split(fold={self.fold}, train={len(self.train)}, "
                f"validation={len(self.validation)}, test={len(self.test)})")


@dataclass(frozen=True, repr=False)
class Source:
    """A loaded data set with its folds; ``classes`` is None for a real-valued target."""

    spec: DataSpec
    data: Dataset
    splits: tuple[Split, ...]
    classes: int | None

    @property
    def classification(self) -> bool:
        return self.classes is not None

    def __repr__(self) -> str:
        return (f"Source({self.spec.source}, n={self.data.n}, d={self.data.d}, "
                f"classes={self.classes}, folds={len(self.splits)})")


def _labels(Y: np.ndarray) -> np.ndarray:
    """Class indices of ±1 (or 0/1) encoded targets."""
    Y = Y.reshape(len(Y), -1)
    return (Y[:, 0] > 0).astype(np.int64) if Y.shape[1] == 1 else np.argmax(Y, axis=1)


def _uci_splits(spec: DataSpec, uci_root: Any) -> tuple[Split, ...]:
    meta = load_uci(spec.location, uci_root).meta
    if "validation" not in meta or len(meta.get("folds", [])) == 0:
        raise InvalidInputError(
            f"{spec.source}: the uci protocol needs conxuntos.dat and conxuntos_kfold.dat "
            "beside the data file; use [protocol] kind = \"kfold\".")
    train, val = meta["validation"]
    out = [Split(0, np.sort(train), np.sort(val), _EMPTY)]
    out += [Split(k + 1, np.sort(tr), _EMPTY, np.sort(te))
            for k, (tr, te) in enumerate(meta["folds"])]
    return tuple(out)


def _kfold_splits(n: int, labels: np.ndarray | None, protocol: ProtocolSpec,
                  source: str) -> tuple[Split, ...]:
    from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

    idx = np.arange(n)
    k, seed, fraction = int(protocol.folds), int(protocol.seed), float(protocol.test_fraction)
    if fraction > 0:
        try:
            rest, test = train_test_split(idx, test_size=fraction, random_state=seed,
                                          stratify=labels)
        except ValueError:  # a class too small to stratify: a plain seeded hold-out
            rest, test = train_test_split(idx, test_size=fraction, random_state=seed)
        rest, test = np.sort(rest), np.sort(test)
    else:
        rest, test = idx, _EMPTY
    if len(rest) < k:
        raise InvalidInputError(f"{source}: {len(rest)} points are left for {k} folds; "
                                "lower [protocol] folds or test_fraction.")
    counts = None if labels is None else np.bincount(labels[rest])
    stratify = counts is not None and int(counts[counts > 0].min()) >= k
    splitter = (StratifiedKFold if stratify else KFold)(k, shuffle=True, random_state=seed)
    parts = splitter.split(rest, labels[rest] if stratify else None)
    return tuple(Split(j + 1, np.sort(rest[tr]), np.sort(rest[va]), test)
                 for j, (tr, va) in enumerate(parts))


def load_source(spec: DataSpec, protocol: ProtocolSpec, uci_root: Any = None) -> Source:
    """Load, encode and split one data set as the sweep's protocol says."""
    ds = load_dataset(spec, uci_root=uci_root)
    labels = ds.meta.get("target") in ("signed", "onehot")
    classes = None
    if labels:
        outputs = ds.y.shape[1] if ds.y.ndim == 2 else 1
        classes = 2 if outputs == 1 else outputs
    if protocol.kind == "uci":
        splits = _uci_splits(spec, uci_root)
    else:
        splits = _kfold_splits(ds.n, _labels(ds.y) if labels else None, protocol, spec.source)
    return Source(spec, ds, splits, classes)


@functools.lru_cache(maxsize=4)
def _cached_source(data: str, protocol: str, uci_root: str | None) -> Source:
    """A worker loads each data set once for the tasks it runs on it."""
    spec = parse_data(json.loads(data), origin="task [data]")
    return load_source(spec, ProtocolSpec(**json.loads(protocol)), uci_root)


# ---------------------------------------------------------------------------
# Planning (the client)
# ---------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class Task:
    """A planned task: its ``key``, its JSON-ready ``spec`` and the labels it is shown with."""

    key: str
    spec: Mapping[str, Any]
    dataset: str
    model: str
    fold: int

    def __repr__(self) -> str:
        return f"Task({self.dataset}, {self.model}, fold {self.fold}, key {self.key[:12]}…)"


@dataclass(frozen=True, repr=False)
class Plan:
    """Every task of a sweep, in the order data set × model × fold, and what each data set
    is (``datasets``: label → source, n, d, classes, outputs)."""

    spec: SweepSpec
    tasks: tuple[Task, ...]
    datasets: Mapping[str, Mapping[str, Any]]

    def __repr__(self) -> str:
        return (f"Plan({self.spec.name!r}: {len(self.datasets)} data sets × "
                f"{len(self.spec.models)} models → {len(self.tasks)} tasks)")


def _expand(spec: SweepSpec, uci_root: Any) -> list[DataSpec]:
    """The data sets of the spec, ``uci:*`` replaced by the UCI sets passing its filters."""
    sel = spec.data
    named = {e.location for e in sel.entries if isinstance(e, DataSpec) and e.kind == "uci"}
    out: list[DataSpec] = []
    for entry in sel.entries:
        if isinstance(entry, DataSpec):
            out.append(entry)
            continue
        for name in list_uci(uci_root):
            if name in named or name in sel.exclude:
                continue
            raw = load_uci(name, uci_root)
            if sel.admits(raw.n, raw.d, raw.meta.get("classes")):
                out.append(sel.uci_spec(name))
    if not out:
        raise InvalidInputError(f"{spec.path or spec.name}: no data set passes the filters "
                                f"of {UCI_ALL!r}.")
    return out


def plan_sweep(spec: SweepSpec, uci_root: Any = None,
               check: Callable[[], None] | None = None) -> Plan:
    """Load every data set of ``spec`` once and list its tasks with their keys (``check``
    is called before each data set: it may raise to stop)."""
    sources = []
    for data_spec in _expand(spec, uci_root):
        if check is not None:
            check()
        try:
            sources.append(load_source(data_spec, spec.protocol, uci_root))
        except InvalidInputError as exc:
            raise InvalidInputError(f"{spec.path or spec.name}: [data] source "
                                    f"{data_spec.source!r}: {exc}") from None
    names = [s.data.name for s in sources]
    tasks, datasets = [], {}
    for src, name in zip(sources, names, strict=True):
        label = name if names.count(name) == 1 else src.spec.source
        datasets[label] = {"source": src.spec.source, "n": src.data.n, "d": src.data.d,
                           "classes": src.classes,
                           "outputs": 1 if src.data.y.ndim == 1 else src.data.y.shape[1]}
        for model in spec.models:
            for split in src.splits:
                task = {
                    "dataset": label, "data": src.spec.as_dict(),
                    "data_sha256": src.data.sha256, "protocol": spec.protocol.as_dict(),
                    "fold": split.fold, "split_sha256": split.sha256,
                    "model": model.as_dict(), "patterns": spec.patterns.as_dict(),
                    "solver": spec.solver.as_dict(),
                }
                tasks.append(Task(task_key(task), task, label, model.name, split.fold))
    return Plan(spec, tuple(tasks), datasets)


# ---------------------------------------------------------------------------
# Running one task (a worker)
# ---------------------------------------------------------------------------


def _reset_peak() -> str:
    """Reset the peak resident set size of this process (Linux ``clear_refs``); returns
    ``"task"`` when the peak measured next is this task's, ``"process"`` otherwise."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return "task"
    except OSError:
        return "process"


def _peak_rss_mb() -> float:
    """Peak resident set size of this process in MB (``VmHWM``, else ``ru_maxrss``)."""
    try:
        text = Path("/proc/self/status").read_text()
        m = re.search(r"VmHWM:\s+(\d+)\s+kB", text)
        if m:
            return int(m.group(1)) / 1024.0
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024.0


def _execute(task: Mapping[str, Any], uci_root: str | None) -> dict[str, Any]:
    source = _cached_source(_canonical(task["data"]), _canonical(task["protocol"]), uci_root)
    if source.data.sha256 != task["data_sha256"]:
        raise InvalidInputError(
            f"the data of {task['data']['source']} on this worker (sha256 "
            f"{source.data.sha256[:12]}…) differ from the data the sweep was planned with "
            f"({task['data_sha256'][:12]}…)")
    split = next((s for s in source.splits if s.fold == task["fold"]), None)
    if split is None or split.sha256 != task["split_sha256"]:
        raise InvalidInputError(f"fold {task['fold']} of {task['data']['source']} on this "
                                "worker differs from the fold the sweep was planned with")
    model = _parse_model(task["model"], 0, {}, "task")
    ctx = FitContext(bias=source.spec.bias,
                     patterns=_parse_patterns(task["patterns"], "task"),
                     solver=_parse_solver(task["solver"], "task"))
    X, y = source.data.X, source.data.y
    Y = y.reshape(len(y), -1)
    fits = FITTERS[model.kind](X[split.train], y[split.train], model, ctx)
    rows = []
    for g, fit in enumerate(fits):
        cert = fit.certificate
        row: dict[str, Any] = {
            "grid_point": g, "reg": fit.reg, "method": fit.method, "objective": fit.objective,
            "dual_objective": None if cert is None else float(cert.dual_objective),
            "gap": None if cert is None else float(cert.gap),
            "relative_gap": None if cert is None else float(cert.relative_gap),
            "certified": None if cert is None else bool(cert.certified),
            "scope": None if cert is None else cert.scope,
            "seconds": fit.seconds,
        }
        for part in ("train", "validation", "test"):
            idx = getattr(split, part)
            P = fit.predict(X[idx]) if len(idx) else np.zeros((0, Y.shape[1]))
            acc, mse = scores(Y[idx], P, source.classification)
            row[f"{part}_accuracy"], row[f"{part}_mse"] = acc, mse
        rows.append(row)
    return {"split": {"n_train": len(split.train), "n_validation": len(split.validation),
                      "n_test": len(split.test)}, "rows": rows}


def run_task(task: Mapping[str, Any], uci_root: str | None = None) -> dict[str, Any]:
    """Run one task; returns its record (``status`` ``"ok"`` or ``"failed"`` with a one-line
    ``error``). BLAS runs on one thread; ``peak_rss_mb`` is this worker process's peak
    resident set size during the task (``peak_rss_scope = "task"``; ``"process"`` where
    the peak cannot be reset: then it is the process's peak since it started)."""
    from ..threads import blas_threads

    start = time.perf_counter()
    scope = _reset_peak()
    record: dict[str, Any] = {"key": task_key(task), "task": dict(task), "status": "ok",
                              "error": None, "worker": f"{socket.gethostname()}:{os.getpid()}"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with blas_threads(1):
                record.update(_execute(task, uci_root))
        except Exception as exc:  # noqa: BLE001 - a failed task is a record, the sweep goes on
            record.update(status="failed", error=one_line(f"{type(exc).__name__}: {exc}"))
    messages = list(dict.fromkeys(one_line(f"{w.category.__name__}: {w.message}", 200)
                                  for w in caught))
    record.update(warnings=messages[:5], seconds=time.perf_counter() - start,
                  peak_rss_mb=_peak_rss_mb(), peak_rss_scope=scope)
    return record


def init_worker() -> None:
    """Start of a local worker process: one BLAS thread (for the libraries loaded now and
    later), and Ctrl-C left to the parent, which stops the workers itself."""
    import signal

    from threadpoolctl import threadpool_limits

    for var in BLAS_ENV:
        os.environ[var] = "1"
    threadpool_limits(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def worker_version() -> str:
    """The convexnn version a worker imports (checked before a cluster gets tasks)."""
    from .. import __version__

    return __version__
