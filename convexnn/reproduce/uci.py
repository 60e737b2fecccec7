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
  ``relu``), on a shorter λ grid (``RELU_LAM_RATIOS``) and, over the whole collection,
  on the data sets within ``RELU_LIMITS`` (data sets named with ``datasets`` all get it).

Why the ReLU column is narrower: below λ = 0.03·λ_max the ReLU program with several
outputs is slow — measured on training halves with 100 gates, ``method="auto"``:
heart-cleveland (151 × 14, 5 classes) 11 s at 0.03, 228 s at 0.01; led-display
(500 × 8, 10 classes) 17 s and 187 s; abalone (2088 × 9, 3 classes) 36 s at 0.003 and
more than 7 minutes at 0.001; plant-margin (800 × 65, 100 classes) more than 200 s at
0.3; arrhythmia (226 × 263, 13 classes) more than 8 minutes for three values from 0.3;
with fewer outputs the cost grows with the features: breast-cancer-wisc-prog (99 × 34)
54 s for 0.3…0.03, conn-bench-sonar-mines-rocks (104 × 61) more than 7 minutes.
Five folds of the full grid over the collection would take days on two cores; the
kernel models and the optimal kernel run on every data set and their full grids.

Why ``GATES`` = 100 sampled gates: the sampled kernel ``K_p`` approaches the analytic NTK
at the Monte Carlo rate ``P^(-1/2)`` (the ``ntk-identity`` set measures it: on wine, 100
gates leave a relative Frobenius error of 11–16%, 1000 gates 4–5%), so 100 gates keep
``ntk_sampled`` recognisably the NTK while the optimal kernel, chosen over the same
patterns, has room to differ from it; the cost of the group lasso and of the ReLU
program grows linearly with the patterns, and 100 keeps the whole collection (five folds,
every grid value, four models) within hours on two cores. Enumerating every pattern is
out of reach beyond tiny d.

Outputs: ``datasets.csv/.md`` (per data set and model: the chosen value, validation and
mean test accuracy, certified solves, seconds), ``accuracy.csv/.md`` (test accuracy, one
column per model), ``summary.csv/.md`` (mean accuracy, wins/ties/losses against the NTK,
mean rank, a paired Wilcoxon signed-rank test), ``pairs.csv/.md`` (every pair of models,
e.g. the optimal kernel against ``K_p`` on the same patterns), ``uncertified.csv`` when a
solve is not certified, ``results.csv`` (every fold and grid value), ``uci_scatter.png``.
The sweeps' records stay in ``<out>.sweep/`` and ``<out>.sweep-relu/`` so that an
interrupted run resumes where it stopped.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidInputError
from ..files import write_bytes_atomic
from ._common import NO_FIGURES, Context, pyplot, save_figure, write_table

__all__ = ["run", "sweep_document", "MODELS", "GATES", "LAM_RATIOS", "MU_RATIOS",
           "RELU_LAM_RATIOS", "RELU_LIMITS", "compare", "pairs", "REFERENCE"]

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
#: The λ grid of ``relu`` on the full run, and the ``uci:*`` filters of its data sets.
RELU_LAM_RATIOS = (0.3, 0.1, 0.03)
RELU_LIMITS = {"max_n": 1000, "max_d": 20, "max_classes": 15}

QUICK_DATASETS = ("fertility", "iris", "hepatitis")
QUICK_GATES = 20
QUICK_LAM_RATIOS = (0.1, 0.01)
QUICK_MU_RATIOS = (0.1, 0.01)


def sweep_document(datasets: Any = None, *, quick: bool = False,
                   models: Any = None) -> dict[str, Any]:
    """The sweep spec of the chosen models as a mapping (what ``sweep.json`` stores).

    ``datasets`` names UCI sets (default: every set of the collection, or the quick
    subset); ``models`` restricts the models by label. ``relu`` with its own grid and data
    filters runs as a separate sweep (:func:`sweep_documents`); asked for alone here it
    gets the common λ grid.
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


def sweep_documents(datasets: Any = None, *, quick: bool = False
                    ) -> list[tuple[str, dict[str, Any]]]:
    """The two sweeps of the set as ``(folder suffix, spec)``: the kernel models and the
    optimal kernel on every data set and their full grids (``""``), and ``relu`` on
    ``RELU_LAM_RATIOS`` over the data sets within ``RELU_LIMITS`` (``"-relu"``; the quick
    run keeps its grid, named data sets are all kept)."""
    kernels = sweep_document(datasets, quick=quick,
                             models=[m for m, _, _ in MODELS if m != "relu"])
    relu = sweep_document(datasets, quick=quick, models=["relu"])
    if not quick:
        relu["model"][0]["lam_ratios"] = list(RELU_LAM_RATIOS)
    if relu["data"]["sources"] == ["uci:*"]:
        relu["data"].update(RELU_LIMITS)
    return [("", kernels), ("-relu", relu)]


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


def _paired(first: np.ndarray, second: np.ndarray) -> dict[str, Any]:
    """Wins/ties/losses of ``first`` over ``second`` (a tie is an equal score), the mean
    difference and the two-sided paired Wilcoxon signed-rank p-value (zero differences
    dropped; NaN when no non-zero difference remains)."""
    from scipy.stats import wilcoxon

    diff = np.asarray(first, dtype=float) - np.asarray(second, dtype=float)
    nonzero = diff[diff != 0]
    return {"wins": int((diff > 0).sum()), "ties": int((diff == 0).sum()),
            "losses": int((diff < 0).sum()),
            "mean_difference": float(diff.mean()) if len(diff) else None,
            "wilcoxon_p": float(wilcoxon(nonzero).pvalue) if len(nonzero) else math.nan}


def compare(accuracy: Any, reference: str = REFERENCE) -> list[dict[str, Any]]:
    """Per model: on the data sets it was scored on, its mean test accuracy and the
    reference's on the same sets, wins/ties/losses against ``reference`` and the paired
    Wilcoxon p-value (:func:`_paired`); and the mean rank (1 = best, ties share their mean
    rank) over the data sets every model was scored on.

    ``accuracy`` is a DataFrame, one row per data set, one column per model (NaN where a
    model did not run).
    """
    from scipy.stats import rankdata

    full = accuracy.dropna()
    ranks = rankdata(-full.to_numpy(dtype=float), axis=1) if len(full) else np.zeros((0, 0))
    rows = []
    for j, model in enumerate(accuracy.columns):
        paired = model != reference and reference in accuracy
        both = accuracy[[model, reference] if paired else [model]].dropna()
        acc = both[model].to_numpy(dtype=float)
        row: dict[str, Any] = {
            "model": model, "datasets": int(len(both)),
            "mean_test_accuracy": float(acc.mean()) if len(acc) else math.nan,
            "mean_rank": float(ranks[:, j].mean()) if len(full) else math.nan}
        if paired:
            ref = both[reference].to_numpy(dtype=float)
            row["reference_mean_test_accuracy"] = float(ref.mean()) if len(ref) else None
            row.update(_paired(acc, ref))
        else:
            row.update(reference_mean_test_accuracy=row["mean_test_accuracy"]
                       if model == reference else None,
                       wins=None, ties=None, losses=None, mean_difference=None,
                       wilcoxon_p=None)
        rows.append(row)
    return rows


def pairs(accuracy: Any) -> list[dict[str, Any]]:
    """Every pair of models ``(model, other)``, on the data sets both were scored on:
    wins/ties/losses of ``model`` over ``other``, the mean difference of test accuracy
    and the paired Wilcoxon p-value (:func:`_paired`)."""
    columns = list(accuracy.columns)
    rows = []
    for i, model in enumerate(columns):
        for other in columns[i + 1:]:
            both = accuracy[[model, other]].dropna()
            rows.append({"model": model, "other": other, "datasets": int(len(both)),
                         **_paired(both[model], both[other])})
    return rows


PAIR_COLUMNS = ["model", "other", "datasets", "wins", "ties", "losses", "mean_difference",
                "wilcoxon_p"]
SUMMARY_COLUMNS = ["model", "datasets", "mean_test_accuracy", "reference_mean_test_accuracy",
                   "mean_rank", "wins", "ties",
                   "losses", "mean_difference", "wilcoxon_p", "certified_solves",
                   "uncertified_solves", "failed_tasks", "seconds"]
DATASET_COLUMNS = ["dataset", "n", "d", "classes", "model", "reg_name", "chosen_ratio",
                   "validation_accuracy", "test_accuracy", "test_std", "test_folds",
                   "certified", "failed_tasks", "seconds"]


def _scatter(plt: Any, accuracy: Any, path: Path) -> str:
    others = [m for m in accuracy.columns if m != REFERENCE]
    fig, axes = plt.subplots(1, len(others), figsize=(4.2 * len(others), 4.2),
                             constrained_layout=True, squeeze=False)
    for ax, model in zip(axes[0], others, strict=True):
        pair = accuracy[[REFERENCE, model]].dropna()
        x, y = 100 * pair[REFERENCE], 100 * pair[model]
        ax.scatter(x, y, s=14, alpha=0.75)
        lo = float(min(x.min(), y.min(), 100)) if len(pair) else 0.0
        ax.plot([lo, 100], [lo, 100], color="grey", lw=0.8)
        above, below = int((y > x).sum()), int((y < x).sum())
        ax.set(xlabel="NTK (analytic kernel) test accuracy, %",
               ylabel=f"{model} test accuracy, %",
               title=f"{model} vs NTK, {len(pair)} sets:\n{above} above, {below} below")
        ax.set_aspect("equal")
    fig.suptitle("UCI collection: mean test accuracy over the four test pairs at the "
                 "validation-chosen regularisation", fontsize=10)
    return save_figure(fig, path)


def run(ctx: Context) -> dict[str, Any]:
    import pandas as pd

    from ..sweeps.run import sweep

    quick = ctx.quick
    base = ctx.options.get("work") or f"{ctx.target}.sweep"
    results, documents = [], {}
    for suffix, document in sweep_documents(ctx.datasets, quick=quick):
        work = Path(f"{base}{suffix}" + ("-quick" if quick else ""))
        ctx.log(f"reproduce uci: the sweep's records are kept in {work} (a rerun resumes "
                "there)")
        results.append(sweep(document, work, scheduler=ctx.scheduler or "processes",
                             workers=ctx.workers, force=True, uci_root=ctx.uci_root,
                             log=ctx.log))
        documents[suffix] = document
    table = pd.concat([r.table for r in results], ignore_index=True)
    summary = pd.concat([r.summary for r in results], ignore_index=True)
    if table.empty:
        raise InvalidInputError("uci: no task finished; see the errors above.")
    labels = [m for m, _, _ in MODELS if m in set(table["model"])]

    per = _per_dataset(table, summary)
    files = write_table(ctx.out, "datasets", per, DATASET_COLUMNS,
                        "Per data set and model: the regularisation chosen on the validation "
                        "split, validation accuracy, mean test accuracy over the four pairs")
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
                         "UCI collection: test accuracy against the NTK "
                         f"({REFERENCE}) on the data sets each model ran on; mean rank over "
                         f"the {len(accuracy.dropna())} data sets with every model scored")
    files += write_table(ctx.out, "pairs", pairs(accuracy), PAIR_COLUMNS,
                         "Every pair of models on the data sets both ran on: wins/ties/losses "
                         "of the first over the second in mean test accuracy")
    bad = ok[~cert]
    if len(bad):
        files += write_table(ctx.out, "uncertified",
                             bad[["dataset", "model", "fold", "reg_ratio", "relative_gap",
                                  "method", "status"]].to_dict("records"),
                             ["dataset", "model", "fold", "reg_ratio", "relative_gap",
                              "method", "status"],
                             "Solves that are not certified (listed, never hidden)")
    write_bytes_atomic(ctx.out / "results.csv", table.to_csv(index=False).encode())
    files.append("results.csv")

    notes: dict[str, Any] = {
        "protocol": "regularisation chosen by validation accuracy on conxuntos.dat; "
                    "test accuracy = mean over the 4 pairs of conxuntos_kfold.dat",
        "gates": documents[""]["patterns"]["count"],
        "grids": {m["name"]: m.get("lam_ratios") or m.get("mu_ratios")
                  for d in documents.values() for m in d["model"]},
        "relu_data": {k: v for k, v in documents["-relu"]["data"].items()
                      if k in RELU_LIMITS} or "every data set named",
        "datasets": int(table["dataset"].nunique()),
        "relu_datasets": int(table.loc[table["model"] == "relu", "dataset"].nunique()),
        "tasks": sum(r.tasks for r in results),
        "failed_tasks": sum(r.failed for r in results), "solves": int(len(ok)),
        "certified_solves": int(cert.sum()), "uncertified_solves": int((~cert).sum()),
        "task_seconds": float(table.drop_duplicates("key")["task_seconds"].sum()),
        "sweep_wall_seconds_this_run": sum(r.seconds for r in results),
        "where": next((r.where for r in results if r.ran), results[0].where),
        "tasks_run_now": sum(r.ran for r in results),
        "tasks_done_before": sum(r.skipped for r in results),
        "mean_test_accuracy": {r["model"]: r["mean_test_accuracy"] for r in rows},
    }
    plt = pyplot()
    if plt is None:
        notes["figures"] = NO_FIGURES
    elif REFERENCE in accuracy and len(labels) > 1:
        files.append(_scatter(plt, accuracy, ctx.out / "uci_scatter.png"))
    notes["files"] = files
    return notes
