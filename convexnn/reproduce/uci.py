"""``uci``: does fixing the NTK pay off on test sets? The UCI collection, four models.

The protocol of Arora et al. (2020) on the collection of Fernández-Delgado et al. (2014):
for each data set and model, the regularisation is chosen from the model's grid by the
validation accuracy of the collection's ``conxuntos.dat`` split (train on the first half,
score on the second), and the reported test accuracy is the mean over the four
train/test pairs of ``conxuntos_kfold.dat`` at that value. Test sets are never looked at
when choosing. Everything runs through the sweep engine (:mod:`convexnn.sweeps`): one
task per data set × model × fold, resumable, local processes or a Dask cluster.

Models (classes as ±1 one-hot columns, one ±1 column for two classes, squared loss; the
collection's standardised features with a bias column; the same ``GATES`` Gaussian gate
vectors, seed 0, for every model that uses gates):

* ``ntk`` — kernel ridge regression with the analytic infinite-width two-layer ReLU NTK
  (:class:`convexnn.estimators.NTKRegressor`), μ from a grid of ratios of ``‖X‖₂²``;
* ``ntk_sampled`` — kernel ridge with the pattern-weighted kernel
  ``K_p = Σ_i p_i D_i X Xᵀ D_i`` over the sampled gates (formulation ``ntk``), the
  finite-gate NTK that the optimal kernel is compared with on the same patterns;
* ``optimal_kernel`` — the optimal MKL kernel over those patterns, i.e. the certified
  gated-ReLU group lasso (formulation ``gated_relu``), λ from a grid of ratios of λ_max;
* ``relu`` — the certified convex ReLU program over the same patterns (formulation
  ``relu``), the same λ grid.

Why ``GATES`` = 100 sampled gates: the sampled kernel ``K_p`` approaches the analytic NTK
at the Monte Carlo rate ``P^(-1/2)`` (the ``ntk-identity`` set measures it), so 100 gates
leave a relative kernel error of about 10% — close enough for ``ntk_sampled`` to stand
for the NTK on the same patterns — while the cost of the group lasso and of the ReLU
program, linear in the number of patterns, keeps the full collection within hours on two
cores. Enumerating every pattern is out of reach beyond tiny d.

Outputs: ``datasets.csv/.md`` (per data set and model: the chosen value, validation and
mean test accuracy, certified solves, seconds), ``accuracy.csv/.md`` (test accuracy, one
column per model), ``summary.csv/.md`` (mean accuracy, wins/ties/losses against the NTK,
mean rank, a paired Wilcoxon signed-rank test), ``uncertified.csv`` when a solve is not
certified, ``results.csv`` (every fold and grid value), ``uci_scatter.png``. The sweep's
records stay in ``<out>.sweep/`` so that an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidInputError
from ._common import NO_FIGURES, Context, pyplot, save_figure, write_table

__all__ = ["run", "sweep_document", "MODELS", "GATES", "LAM_RATIOS", "MU_RATIOS",
           "compare", "REFERENCE"]

GATES = 100
LAM_RATIOS = (0.3, 0.1, 0.03, 0.01, 0.003, 0.001)
MU_RATIOS = (1.0, 0.3, 0.1, 0.03, 0.01, 0.003, 0.001)
#: The model every other is compared with.
REFERENCE = "ntk"
#: (label, sweep model entry without its grid, grid key) in the order of the tables.
MODELS: tuple[tuple[str, dict[str, Any], str], ...] = (
    ("ntk", {"estimator": "NTKRegressor"}, "mu_ratios"),
    ("ntk_sampled", {"formulation": "ntk"}, "mu_ratios"),
    ("optimal_kernel", {"formulation": "gated_relu"}, "lam_ratios"),
    ("relu", {"formulation": "relu"}, "lam_ratios"),
)

QUICK_DATASETS = ("fertility", "iris", "hepatitis")
QUICK_GATES = 20
QUICK_LAM_RATIOS = (0.1, 0.01)
QUICK_MU_RATIOS = (0.1, 0.01)


def sweep_document(datasets: Any = None, *, quick: bool = False,
                   models: Any = None) -> dict[str, Any]:
    """The sweep spec of this set as a mapping (what ``<out>.sweep/sweep.json`` stores).

    ``datasets`` names UCI sets (default: every set of the collection, or the quick
    subset); ``models`` restricts the models by label.
    """
    chosen = [m for m in MODELS if models is None or m[0] in models]
    if not chosen:
        raise InvalidInputError(f"models: choose among {[m[0] for m in MODELS]}.")
    lam = QUICK_LAM_RATIOS if quick else LAM_RATIOS
    mu = QUICK_MU_RATIOS if quick else MU_RATIOS
    names = list(datasets or (QUICK_DATASETS if quick else ()))
    sources = [f"uci:{n}" for n in names] or ["uci:*"]
    return {
        "data": {"sources": sources, "bias": True},
        "protocol": {"kind": "uci"},
        "patterns": {"count": QUICK_GATES if quick else GATES, "seed": 0},
        "model": [{"name": label, **entry,
                   key: list(lam if key == "lam_ratios" else mu)}
                  for label, entry, key in chosen],
        "solver": {"name": "clarabel", "tolerance": 1e-6},
    }


# ---------------------------------------------------------------------------
# Tables from the sweep's results
# ---------------------------------------------------------------------------


def _per_dataset(table: Any, summary: Any) -> list[dict[str, Any]]:
    """One row per data set and model: the chosen value and its scores, the certified
    solves of the model on the data set (every fold and grid value), the seconds."""
    rows = []
    info = table.drop_duplicates("dataset").set_index("dataset")
    for rec in summary.to_dict("records"):
        group = table[(table["dataset"] == rec["dataset"]) & (table["model"] == rec["model"])]
        ok = group[group["status"] == "ok"]
        cert = ok["certified"].fillna(False).astype(bool)
        meta = info.loc[rec["dataset"]]
        rows.append({
            "dataset": rec["dataset"], "n": int(meta["n"]), "d": int(meta["d"]),
            "classes": int(meta["classes"]), "model": rec["model"],
            "reg_name": rec["reg_name"], "chosen_ratio": rec.get("grid_value"),
            "validation_accuracy": rec.get("validation"),
            "test_accuracy": rec.get("test_mean"), "test_std": rec.get("test_std"),
            "test_folds": rec.get("test_folds"),
            "certified": f"{int(cert.sum())}/{len(group)}",
            "failed_tasks": int(rec["failed_tasks"]),
            "seconds": float(group.drop_duplicates("key")["task_seconds"].sum()),
        })
    return rows


def compare(accuracy: Any, reference: str = REFERENCE) -> list[dict[str, Any]]:
    """Per model: mean test accuracy, wins/ties/losses against ``reference`` (a tie is an
    equal mean test accuracy), mean rank (1 = best, ties share their mean rank) and the
    two-sided paired Wilcoxon signed-rank p-value against ``reference`` (zero differences
    dropped; NaN when fewer than one non-zero difference remains).

    ``accuracy`` is a DataFrame, one row per data set, one column per model; only data
    sets with a score for every model count.
    """
    from scipy.stats import rankdata, wilcoxon

    full = accuracy.dropna()
    ranks = rankdata(-full.to_numpy(dtype=float), axis=1) if len(full) else np.zeros((0, 0))
    rows = []
    for j, model in enumerate(full.columns):
        acc = full[model].to_numpy(dtype=float)
        row: dict[str, Any] = {"model": model, "datasets": int(len(full)),
                               "mean_test_accuracy": float(acc.mean()) if len(acc) else math.nan,
                               "mean_rank": float(ranks[:, j].mean()) if len(acc) else math.nan}
        if model == reference or reference not in full:
            row.update(wins=None, ties=None, losses=None, mean_difference=None,
                       wilcoxon_p=None)
        else:
            diff = acc - full[reference].to_numpy(dtype=float)
            nonzero = diff[diff != 0]
            p = float(wilcoxon(nonzero).pvalue) if len(nonzero) else math.nan
            row.update(wins=int((diff > 0).sum()), ties=int((diff == 0).sum()),
                       losses=int((diff < 0).sum()), mean_difference=float(diff.mean()),
                       wilcoxon_p=p)
        rows.append(row)
    return rows


SUMMARY_COLUMNS = ["model", "datasets", "mean_test_accuracy", "mean_rank", "wins", "ties",
                   "losses", "mean_difference", "wilcoxon_p", "certified_solves",
                   "uncertified_solves", "failed_tasks", "seconds"]
DATASET_COLUMNS = ["dataset", "n", "d", "classes", "model", "reg_name", "chosen_ratio",
                   "validation_accuracy", "test_accuracy", "test_std", "test_folds",
                   "certified", "failed_tasks", "seconds"]


def _scatter(plt: Any, accuracy: Any, path: Path) -> str:
    others = [m for m in accuracy.columns if m != REFERENCE]
    fig, axes = plt.subplots(1, len(others), figsize=(4.2 * len(others), 4.2),
                             constrained_layout=True, squeeze=False)
    full = accuracy.dropna()
    for ax, model in zip(axes[0], others, strict=True):
        x, y = 100 * full[REFERENCE], 100 * full[model]
        ax.scatter(x, y, s=14, alpha=0.75)
        lo = float(min(x.min(), y.min(), 100)) if len(full) else 0.0
        ax.plot([lo, 100], [lo, 100], color="grey", lw=0.8)
        above, below = int((y > x).sum()), int((y < x).sum())
        ax.set(xlabel="NTK (analytic kernel) test accuracy, %",
               ylabel=f"{model} test accuracy, %",
               title=f"{model} vs NTK: {above} above, {below} below the diagonal")
        ax.set_aspect("equal")
    fig.suptitle(f"UCI collection, {len(full)} data sets: mean test accuracy over the "
                 "four test pairs at the validation-chosen regularisation", fontsize=10)
    return save_figure(fig, path)


def run(ctx: Context) -> dict[str, Any]:
    from ..sweeps.run import sweep

    quick = ctx.quick
    document = sweep_document(ctx.datasets, quick=quick)
    work = ctx.options.get("work") or Path(f"{ctx.target}.sweep" + ("-quick" if quick else ""))
    ctx.log(f"reproduce uci: the sweep's records are kept in {work} (a rerun resumes there)")
    result = sweep(document, work, scheduler=ctx.scheduler or "processes",
                   workers=ctx.workers, force=True, uci_root=ctx.uci_root,
                   log=ctx.log)
    table, summary = result.table, result.summary
    if table.empty:
        raise InvalidInputError("uci: no task finished; see the errors above.")
    labels = [m for m, _, _ in MODELS if m in set(table["model"])]

    per = _per_dataset(table, summary)
    files = write_table(ctx.out, "datasets", per, DATASET_COLUMNS,
                        "Per data set and model: the regularisation chosen on the validation "
                        "split, validation accuracy, mean test accuracy over the four pairs")
    import pandas as pd

    frame = pd.DataFrame(per)
    accuracy = frame.pivot(index="dataset", columns="model", values="test_accuracy")
    accuracy = accuracy[labels].astype(float)
    sizes = frame.drop_duplicates("dataset").set_index("dataset")[["n", "d", "classes"]]
    wide = sizes.join(accuracy).reset_index()
    files += write_table(ctx.out, "accuracy", wide.to_dict("records"), list(wide.columns),
                         "Mean test accuracy over the four test pairs, one column per model")

    ok = table[table["status"] == "ok"]
    cert = ok["certified"].fillna(False).astype(bool)
    rows = compare(accuracy)
    for row in rows:
        mine = table["model"] == row["model"]
        row["certified_solves"] = int(cert[ok["model"] == row["model"]].sum())
        row["uncertified_solves"] = int((~cert[ok["model"] == row["model"]]).sum())
        row["failed_tasks"] = int(table.loc[mine & (table["status"] == "failed"),
                                            "key"].nunique())
        row["seconds"] = float(table[mine].drop_duplicates("key")["task_seconds"].sum())
    files += write_table(ctx.out, "summary", rows, SUMMARY_COLUMNS,
                         f"UCI collection ({len(accuracy.dropna())} data sets with every "
                         f"model scored): test accuracy against the NTK ({REFERENCE})")
    bad = ok[~cert]
    if len(bad):
        files += write_table(ctx.out, "uncertified",
                             bad[["dataset", "model", "fold", "reg_ratio", "relative_gap",
                                  "method", "status"]].to_dict("records"),
                             ["dataset", "model", "fold", "reg_ratio", "relative_gap",
                              "method", "status"],
                             "Solves that are not certified (listed, never hidden)")
    shutil.copyfile(work / "results.csv", ctx.out / "results.csv")
    files.append("results.csv")

    notes: dict[str, Any] = {
        "protocol": "regularisation chosen by validation accuracy on conxuntos.dat; "
                    "test accuracy = mean over the 4 pairs of conxuntos_kfold.dat",
        "gates": document["patterns"]["count"],
        "grids": {m["name"]: m.get("lam_ratios") or m.get("mu_ratios")
                  for m in document["model"]},
        "datasets": int(table["dataset"].nunique()), "tasks": result.tasks,
        "failed_tasks": result.failed, "solves": int(len(ok)),
        "certified_solves": int(cert.sum()), "uncertified_solves": int((~cert).sum()),
        "task_seconds": float(table.drop_duplicates("key")["task_seconds"].sum()),
        "sweep_wall_seconds_this_run": result.seconds, "where": result.where,
        "tasks_run_now": result.ran, "tasks_done_before": result.skipped,
        "mean_test_accuracy": {r["model"]: r["mean_test_accuracy"] for r in rows},
    }
    plt = pyplot()
    if plt is None:
        notes["figures"] = NO_FIGURES
    elif REFERENCE in accuracy and len(labels) > 1:
        files.append(_scatter(plt, accuracy, ctx.out / "uci_scatter.png"))
    notes["files"] = files
    return notes
