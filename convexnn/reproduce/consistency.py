"""``consistency``: how fast the certified group-lasso estimate learns a planted gated-ReLU
teacher, against the rate the theory gives (``docs/math/consistency.md``).

A teacher ``f*(x) = Σ_j 1[g_jᵀx ≥ 0] xᵀu_j`` with ``s`` neurons; its gates are among the
``P`` patterns of the program (the other ``P − s`` are Gaussian), so the truth ``w*`` is a
point of the group lasso with ``s`` non-zero groups; targets ``y = f*(X) + σ ε``. At
``λ = 2σ max_i (‖D_i X‖_F + ‖D_i X‖₂ √(2 log P))`` — a bound on ``2 max_i ‖(D_i X)ᵀ ε‖``
that holds with high probability — the group-lasso oracle inequalities bound the in-sample
prediction error ``(1/n)‖Σ_i D_i X (ŵ_i − w*_i)‖²`` by ``C σ² s (d + log P) / n`` under a
compatibility condition (Lounici, Pontil, van de Geer & Tsybakov, Ann. Statist. 2011;
Bühlmann & van de Geer 2011, ch. 8). The set measures that error, certified, over a grid
of n for several (d, P) and seeds, and fits its log-log slope (the rate predicts −1).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..formulations import REGISTRY
from ..ops import forward
from ..patterns import patterns_from_gates
from ..problem import prepare
from ..solving import solve_data
from ._common import NO_FIGURES, Context, pyplot, save_figure, write_table

__all__ = ["run", "theory_lambda"]

NEURONS = 3
NOISE = 0.5
SETTINGS = ((5, 50), (5, 400), (20, 200))
QUICK_SETTINGS = ((5, 50),)
SIZES = (100, 200, 400, 800, 1600, 3200, 6400)
QUICK_SIZES = (100, 200, 400)
SEEDS = (0, 1, 2)


def theory_lambda(X: np.ndarray, M: np.ndarray, sigma: float) -> float:
    """``2σ max_i (‖D_i X‖_F + ‖D_i X‖₂ √(2 log P))``: with probability at least
    ``1 − 1/P`` it is at least ``2 max_i ‖(D_i X)ᵀ ε‖`` for ``ε ~ N(0, σ²I)`` (Gaussian
    concentration of a Lipschitz function, and a union bound over the P groups)."""
    P = M.shape[1]
    top = 0.0
    for i in range(P):
        DX = X[M[:, i]]
        top = max(top, float(np.linalg.norm(DX)) + float(np.linalg.norm(DX, 2))
                  * np.sqrt(2 * np.log(max(P, 2))))
    return 2.0 * sigma * top


def _teacher(d: int, P: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(10_000 + seed)
    gates = rng.standard_normal((d, P))  # the first NEURONS are the teacher's
    U = rng.standard_normal((NEURONS, d)) / np.sqrt(d) * 2.0
    return gates, U


def _one(n: int, d: int, P: int, seed: int) -> dict[str, Any]:
    gates, U = _teacher(d, P, seed)
    rng = np.random.default_rng(seed * 100_003 + n)
    X = rng.standard_normal((n, d))
    pats = patterns_from_gates(X, gates)  # distinct non-zero patterns, in gate order
    # the teacher's groups: the patterns of its gates (drawn first, so kept first)
    W_star = np.zeros((pats.P, d, 1))
    truth = X @ np.zeros(d)
    for j in range(NEURONS):
        mask = (X @ gates[:, j]) >= 0
        k = int(np.flatnonzero(np.all(pats.masks == mask[:, None], axis=0))[0])
        W_star[k, :, 0] += U[j]
        truth += mask * (X @ U[j])
    y = truth + NOISE * rng.standard_normal(n)
    data = prepare(X, y, patterns=pats)
    lam = theory_lambda(X, data.M, NOISE)
    sol = solve_data(REGISTRY["gated_relu"], data, lam, method="fast")
    fit = forward(X, data.M, sol.weights["W"])[:, 0]
    # fresh points: the out-of-sample error of the network the certificate is about
    X_new = rng.standard_normal((2000, d))
    truth_new = sum(((X_new @ gates[:, j]) >= 0) * (X_new @ U[j]) for j in range(NEURONS))
    test = float(np.mean((sol.network.predict(X_new) - truth_new) ** 2))
    return {
        "d": d, "P": P, "patterns": pats.P, "n": n, "seed": seed, "lam": lam,
        "prediction_error": float(np.mean((fit - truth) ** 2)),
        "test_error": test,
        "rate": NOISE**2 * NEURONS * (d + np.log(P)) / n,
        "active_groups": int(np.sum(np.linalg.norm(sol.weights["W"], axis=(1, 2)) > 0)),
        "relative_gap": sol.certificate.relative_gap, "certified": sol.certified,
        "teacher_norm": float(np.linalg.norm(W_star)),
    }


def run(ctx: Context) -> dict[str, Any]:
    settings = QUICK_SETTINGS if ctx.quick else SETTINGS
    sizes = QUICK_SIZES if ctx.quick else SIZES
    seeds = SEEDS[:2] if ctx.quick else SEEDS
    rows = []
    for d, P in settings:
        for n in sizes:
            ctx.log(f"reproduce consistency: d={d}, P={P}, n={n}")
            rows += [_one(n, d, P, seed) for seed in seeds]
    files = write_table(ctx.out, "prediction_error", rows, list(rows[0]),
                        "Group-lasso prediction error against n (planted gated-ReLU teacher)")
    slopes = []
    for d, P in settings:
        sel = [r for r in rows if r["d"] == d and r["P"] == P]
        slope = np.polyfit(np.log([r["n"] for r in sel]),
                           np.log([r["prediction_error"] for r in sel]), 1)[0]
        ratio = np.array([r["prediction_error"] / r["rate"] for r in sel])
        slopes.append({"d": d, "P": P, "fitted_slope": float(slope), "rate_slope": -1.0,
                       "error_over_rate_min": float(ratio.min()),
                       "error_over_rate_max": float(ratio.max()),
                       "certified": f"{sum(r['certified'] for r in sel)}/{len(sel)}"})
    files += write_table(ctx.out, "slopes", slopes, list(slopes[0]),
                         "Fitted log-log slopes against the rate σ² s (d + log P)/n")
    notes: dict[str, Any] = {"slopes": {f"d={s['d']},P={s['P']}": s["fitted_slope"]
                                        for s in slopes},
                             "all_certified": all(r["certified"] for r in rows)}
    plt = pyplot()
    if plt is None:
        notes["figures"] = NO_FIGURES
    else:
        fig, ax = plt.subplots(figsize=(6.5, 4.5), constrained_layout=True)
        for d, P in settings:
            sel = [r for r in rows if r["d"] == d and r["P"] == P]
            ns = sorted({r["n"] for r in sel})
            med = [np.median([r["prediction_error"] for r in sel if r["n"] == n]) for n in ns]
            line, = ax.loglog(ns, med, "o-", label=f"measured, d={d}, P={P}")
            ax.loglog(ns, [NOISE**2 * NEURONS * (d + np.log(P)) / n for n in ns], "--",
                      color=line.get_color(), alpha=0.7, label=f"σ² s (d + log P)/n, d={d}, P={P}")
        ax.set(xlabel="n (training points)", ylabel="(1/n)‖Σ D_iX(ŵ_i − w*_i)‖²",
               title="certified group lasso vs the prediction-error rate")
        ax.legend(fontsize=7)
        files.append(save_figure(fig, ctx.out / "consistency.png"))
    notes["files"] = files
    return notes
