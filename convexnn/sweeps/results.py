"""What a sweep leaves in its folder, and the tables rebuilt from it.

``DIR/sweep.json``
    the sweep spec as plain values; a later run with another spec is refused unless
    forced (:func:`check_spec`).
``DIR/runs/<key>.json``
    one record per finished task (written atomically when its result arrives), failed
    tasks included (``status = "failed"`` and their one-line ``error``).
``DIR/history.jsonl``
    one line per task finished (key, run id, status, time, worker): an audit of which
    run did what.
``DIR/results.csv`` (and ``results.parquet`` when pyarrow is installed)
    the tidy table: one row per data set × model × fold × grid value
    (:data:`COLUMNS`), rebuilt from the records of the spec's tasks by
    :func:`build_table` — a resumed sweep gives the same table as an uninterrupted one.
``DIR/summary.csv``, ``DIR/summary_models.csv``, ``DIR/summary.md``
    model selection (:func:`summarize`): for each data set and model the grid value with
    the best mean validation score, and the mean test score over the folds there.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidInputError
from ..files import write_bytes_atomic
from ..report import markdown_table

__all__ = ["COLUMNS", "TIMING_COLUMNS", "RUNS_DIR", "SPEC_FILE", "HISTORY_FILE",
           "record_path", "read_record", "write_record", "failed_record", "check_spec",
           "write_spec", "build_table", "summarize", "write_tables", "plain"]

RUNS_DIR = "runs"
SPEC_FILE = "sweep.json"
HISTORY_FILE = "history.jsonl"

#: Columns of results.csv, in order.
COLUMNS = [
    "dataset", "source", "n", "d", "classes", "model", "kind", "formulation", "method",
    "fold", "grid_point", "reg_name", "reg_ratio", "reg", "n_train", "n_validation", "n_test",
    "objective", "dual_objective", "gap", "relative_gap", "certified", "scope",
    "train_accuracy", "validation_accuracy", "test_accuracy",
    "train_mse", "validation_mse", "test_mse",
    "status", "error", "seconds", "task_seconds", "peak_rss_mb", "worker", "key",
]
#: Columns that differ between two runs of the same tasks (times, memory, where).
TIMING_COLUMNS = ("seconds", "task_seconds", "peak_rss_mb", "worker")


def plain(obj: Any) -> Any:
    """``obj`` with numpy scalars as Python numbers and NaN/±inf as None (JSON-safe)."""
    if isinstance(obj, Mapping):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(float(obj)) else None
    return obj


# ---------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------


def record_path(out: Path, key: str) -> Path:
    return out / RUNS_DIR / f"{key}.json"


def read_record(out: Path, task: Any) -> dict[str, Any] | None:
    """The record of ``task`` (a :class:`~convexnn.sweeps.tasks.Task`), or None when there is
    none or it does not belong to that task (unreadable, another key or task)."""
    path = record_path(out, task.key)
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(rec, dict) or rec.get("key") != task.key \
            or rec.get("task") != plain(task.spec) or rec.get("status") not in ("ok", "failed"):
        return None
    return rec


def write_record(out: Path, record: Mapping[str, Any], run_id: str, finished: str) -> None:
    """Write a task's record atomically and append its line to the history."""
    rec = plain({**record, "run_id": run_id, "finished": finished})
    payload = json.dumps(rec, indent=1, allow_nan=False).encode()
    write_bytes_atomic(record_path(out, rec["key"]), payload)
    line = json.dumps({k: rec.get(k) for k in ("key", "run_id", "status", "finished",
                                                "worker")}) + "\n"
    fd = os.open(out / HISTORY_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def failed_record(task: Any, error: str, worker: str = "") -> dict[str, Any]:
    """The record of a task that never returned (its worker died, say)."""
    return {"key": task.key, "task": dict(task.spec), "status": "failed", "error": error,
            "worker": worker, "warnings": [], "seconds": None, "peak_rss_mb": None,
            "peak_rss_scope": None}


def _difference(a: Any, b: Any, where: str = "") -> str | None:
    """The first place where two plain values differ (``model[2].lam_ratios``), or None."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for k in sorted(set(a) | set(b)):
            sub = _difference(a.get(k), b.get(k), f"{where}.{k}" if where else str(k))
            if sub is not None:
                return sub
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            sub = _difference(x, y, f"{where}[{i + 1}]")
            if sub is not None:
                return sub
        return None
    return None if a == b else (where or "the spec")


def check_spec(out: Path, spec: Mapping[str, Any], force: bool) -> bool:
    """Whether ``DIR/sweep.json`` must be (re)written; refuse a different spec unless
    ``force``."""
    path = out / SPEC_FILE
    if not path.exists():
        return True
    try:
        stored = json.loads(path.read_text(encoding="utf-8")).get("spec")
    except (OSError, ValueError, AttributeError, RecursionError):
        stored = None
    current = plain(spec)
    if stored == current:
        return False
    if force:
        return True
    where = "unreadable" if stored is None else f"first difference: {_difference(stored, current)}"
    raise InvalidInputError(
        f"{path} holds another sweep spec ({where}); run with --force (force=True) to "
        "accept the changed spec — finished tasks it shares are kept, the others run — or "
        "choose another output folder.")


def write_spec(out: Path, spec: Mapping[str, Any], version: str) -> None:
    payload = json.dumps({"spec": plain(spec), "convexnn": version}, indent=1)
    write_bytes_atomic(out / SPEC_FILE, payload.encode())


# ---------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------


def _rows(task: Any, rec: Mapping[str, Any], info: Mapping[str, Any], model: Any
          ) -> list[dict[str, Any]]:
    grid = model.grid
    base = {"dataset": task.dataset, **{k: info[k] for k in ("source", "n", "d", "classes")},
            "model": task.model, "kind": model.kind, "formulation": model.target,
            "fold": task.fold, "reg_name": grid.reg_name, **(rec.get("split") or {}),
            "status": rec["status"], "error": rec.get("error"),
            "task_seconds": rec.get("seconds"), "peak_rss_mb": rec.get("peak_rss_mb"),
            "worker": rec.get("worker"), "key": task.key}
    found = rec.get("rows") or [{} for _ in grid.values]
    return [{**base, "grid_point": g, "reg_ratio": value if grid.ratio else None,
             **({} if grid.ratio else {"reg": value}), **row}
            for g, (value, row) in enumerate(zip(grid.values, found, strict=True))]


def build_table(plan: Any, out: Path) -> Any:
    """The results table of ``plan``'s tasks from their records (unfinished tasks have no
    rows), as a pandas DataFrame with :data:`COLUMNS`."""
    import pandas as pd

    models = {m.name: m for m in plan.spec.models}
    rows = []
    for task in plan.tasks:
        rec = read_record(out, task)
        if rec is not None:
            rows.extend(_rows(task, rec, plan.datasets[task.dataset], models[task.model]))
    table = pd.DataFrame(rows, columns=COLUMNS)
    for col in ("n", "d", "fold", "grid_point", "n_train", "n_validation", "n_test"):
        table[col] = table[col].astype("Int64")
    table["classes"] = table["classes"].astype("Int64")
    float_cols = ["reg_ratio", "reg", "objective", "dual_objective", "gap", "relative_gap",
                  "seconds", "task_seconds", "peak_rss_mb"] + [
        f"{p}_{m}" for m in ("accuracy", "mse") for p in ("train", "validation", "test")]
    for col in float_cols:
        table[col] = pd.to_numeric(table[col], errors="coerce").astype("float64")
    table["certified"] = table["certified"].astype("boolean")
    return table


# ---------------------------------------------------------------------------
# Model selection and the summary
# ---------------------------------------------------------------------------

SUMMARY_COLUMNS = ["dataset", "model", "metric", "reg_name", "grid_point", "grid_value",
                   "validation", "test_mean", "test_std", "test_folds", "certified",
                   "failed_tasks"]
MODEL_COLUMNS = ["model", "metric", "datasets", "mean_test", "certified", "failed_tasks"]


def summarize(table: Any) -> tuple[Any, Any]:
    """Model selection on the validation scores, test scores at the selected grid value.

    For each data set and model: the grid value whose mean validation score (accuracy
    for classes, MSE otherwise) over the folds that have one is best (ties: the first
    in the grid's order); ``test_mean``/``test_std`` over the folds with a test set at
    that value; ``certified`` the fraction of its solves (all folds) that are certified.
    Returns ``(per data set and model, per model and metric)`` DataFrames; a model's means
    are over the data sets with a test score.
    """
    import pandas as pd

    rows = []
    for (dataset, model), group in table.groupby(["dataset", "model"], sort=False):
        classes = group["classes"].notna().any()
        metric = "accuracy" if classes else "mse"
        ok = group[group["status"] == "ok"]
        val = ok.groupby("grid_point", sort=True)[f"validation_{metric}"].mean().dropna()
        entry: dict[str, Any] = {"dataset": dataset, "model": model, "metric": metric,
                                 "reg_name": group["reg_name"].iloc[0],
                                 "failed_tasks": int(group.loc[group["status"] == "failed",
                                                               "key"].nunique())}
        if len(val):
            g = int(val.idxmax() if classes else val.idxmin())
            at = ok[ok["grid_point"] == g]
            test = at[f"test_{metric}"].dropna()
            given = group.loc[group["grid_point"] == g, ["reg_ratio", "reg"]].iloc[0]
            entry.update(grid_point=g, validation=float(val.loc[g]),
                         grid_value=float(given["reg_ratio"]) if pd.notna(given["reg_ratio"])
                         else float(given["reg"]),
                         test_mean=float(test.mean()) if len(test) else math.nan,
                         test_std=float(test.std(ddof=1)) if len(test) > 1 else math.nan,
                         test_folds=int(len(test)),
                         certified=float(at["certified"].fillna(False).astype(bool).mean()))
        rows.append(entry)
    per = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    models = []
    for (model, metric), group in per.groupby(["model", "metric"], sort=False):
        scored = group[group["test_mean"].notna()]
        models.append({"model": model, "metric": metric, "datasets": int(len(scored)),
                       "mean_test": float(scored["test_mean"].mean()) if len(scored)
                       else math.nan,
                       "certified": float(scored["certified"].mean()) if len(scored)
                       else math.nan,
                       "failed_tasks": int(group["failed_tasks"].sum())})
    return per, pd.DataFrame(models, columns=MODEL_COLUMNS)


def _csv(frame: Any) -> bytes:
    return frame.to_csv(index=False).encode()


def write_tables(out: Path, table: Any, per: Any, models: Any, *, title: str,
                 protocol: str) -> list[str]:
    """Write results.csv (+ .parquet with pyarrow), summary.csv, summary_models.csv and
    summary.md atomically; returns the file names."""
    files = {"results.csv": _csv(table), "summary.csv": _csv(per),
             "summary_models.csv": _csv(models)}
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        pass
    else:
        buffer = io.BytesIO()
        table.to_parquet(buffer, index=False)
        files["results.parquet"] = buffer.getvalue()
    text = (f"# Sweep {title}\n\n{protocol}\n\n## Models (means over data sets)\n\n"
            + markdown_table(models.to_dict("records"), MODEL_COLUMNS)
            + "\n## Selected grid value per data set\n\n"
            + markdown_table(per.to_dict("records"), SUMMARY_COLUMNS))
    files["summary.md"] = text.encode()
    for name, payload in files.items():
        write_bytes_atomic(out / name, payload)
    return list(files)
