"""``ntk-vs-optimal`` (claims C2, C3) on UCI data sets.

* C2 — the NTK is one target-blind point of the MKL simplex, so NTK kernel regression's
  training objective ``J(p)`` is never below the optimal kernel's ``p_MKL(μ)``: both are
  solved and certified across a grid of μ, and their ratio is reported.
* C3 — iterative reweighting from the NTK weights reaches the optimal kernel (the
  certified gated-ReLU group lasso at the matched λ): its history (objective and the
  certified lower bound per iteration) is drawn, and the optimal kernel weights are
  compared with the NTK's (total variation, entropy, active patterns).

Same data treatment as the ``uci`` set: the collection's standardised features with a
bias column, ±1 one-hot targets (one ±1 column for two classes), 100 sampled Gaussian
gates (seed 0). ``mu_ratio`` is relative to ``‖X‖₂²``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data import add_bias, load_uci, one_hot
from ..errors import InvalidInputError
from ..kernels import mu_scale, ntk_weights
from ..methods.reweight import reweight
from ..patterns import sample_patterns
from ..solving import solve
from ._common import NO_FIGURES, Context, pyplot, save_figure, write_table

__all__ = ["run", "DEFAULT_DATASETS", "signed_targets"]

DEFAULT_DATASETS = ("iris", "wine", "breast-cancer-wisc-diag", "blood",
                    "vertebral-column-2clases", "ilpd-indian-liver")
QUICK_DATASETS = ("iris", "wine")
MU_RATIOS = (0.3, 0.1, 0.03, 0.01, 0.003)
QUICK_MU_RATIOS = (0.1, 0.01)
GATES = 100


def signed_targets(labels: np.ndarray) -> np.ndarray:
    """±1 one-hot targets; one ±1 column (+1 for the larger label) for two classes."""
    Y = one_hot(labels, centered=True)
    return Y[:, 1] if Y.shape[1] == 2 else Y


def _entropy(w: np.ndarray) -> float:
    w = w[w > 0] / w.sum()
    return float(-(w * np.log(w)).sum())


def run(ctx: Context) -> dict[str, Any]:
    names = list(ctx.datasets or (QUICK_DATASETS if ctx.quick else DEFAULT_DATASETS))
    ratios = QUICK_MU_RATIOS if ctx.quick else MU_RATIOS
    objective_rows, weight_rows, histories = [], [], {}
    for name in names:
        try:
            ds = load_uci(name, ctx.uci_root)
        except InvalidInputError as exc:
            if ctx.datasets:
                raise
            ctx.log(f"reproduce ntk-vs-optimal: {name}: SKIPPED ({exc})")
            continue
        X, Y = ds.X, signed_targets(ds.y)
        if ctx.quick:
            X, Y = X[:120], Y[:120]
        pats = sample_patterns(add_bias(X), 40 if ctx.quick else GATES, seed=0)
        scale = mu_scale(add_bias(X))
        for k, ratio in enumerate(ratios):
            mu = ratio * scale
            ctx.log(f"reproduce ntk-vs-optimal: {name} μ = {ratio:g}·‖X‖₂²")
            ntk = solve("ntk", X, Y, patterns=pats, bias=True, mu=mu)
            opt = reweight(X, Y, patterns=pats, bias=True, mu=mu)
            cert = opt.certificate
            objective_rows.append({
                "dataset": name, "n": X.shape[0], "d": X.shape[1],
                "outputs": 1 if Y.ndim == 1 else Y.shape[1], "patterns": pats.P,
                "mu_ratio": ratio, "mu": mu,
                "ntk_objective": ntk.objective, "ntk_certified": ntk.certified,
                "optimal_objective": cert.objective, "optimal_lower_bound": cert.dual_objective,
                "optimal_certified": cert.certified,
                "ntk_over_optimal": ntk.objective / cert.objective,
                "matched_lam": opt.lam, "gated_certified": opt.solution.certified,
                "reweight_iterations": opt.iterations, "finished_by": opt.finished_by,
                "seconds": opt.seconds + sum(ntk.timings.values()),
            })
            if k == len(ratios) // 2:
                histories[name] = opt.history
                p = ntk_weights(pats, add_bias(X))[0]
                p_hat, eta = p / p.sum(), opt.eta
                active = eta > 1e-6 * eta.max()
                weight_rows.append({
                    "dataset": name, "mu_ratio": ratio, "patterns": pats.P,
                    "total_variation": 0.5 * float(np.abs(eta - p_hat).sum()),
                    "entropy_ntk": _entropy(p_hat), "entropy_optimal": _entropy(eta),
                    "active_ntk": int(np.count_nonzero(p_hat)),
                    "active_optimal": int(active.sum()),
                    "ntk_mass_on_optimal_support": float(p_hat[active].sum()),
                })
    if not objective_rows:
        raise InvalidInputError("ntk-vs-optimal: none of the data sets was found; point "
                                "--uci-root (or $CONVEXNN_UCI) at the UCI collection.")
    files = write_table(ctx.out, "objectives", objective_rows, list(objective_rows[0]),
                        "C2: NTK kernel regression J(p) vs the optimal MKL kernel p_MKL(μ), "
                        "both certified")
    files += write_table(ctx.out, "kernel_weights", weight_rows, list(weight_rows[0]),
                         "C3: the optimal kernel weights η against the NTK's p (normalised)")
    ratio = np.array([r["ntk_over_optimal"] for r in objective_rows])
    notes: dict[str, Any] = {
        "datasets": sorted({r["dataset"] for r in objective_rows}),
        "ntk_never_below_optimal": bool(np.all(ratio >= 1 - 1e-6)),
        "ntk_over_optimal_min": float(ratio.min()), "ntk_over_optimal_max": float(ratio.max()),
        "all_certified": all(r["ntk_certified"] and r["optimal_certified"]
                             for r in objective_rows),
    }
    plt = pyplot()
    if plt is None:
        notes["figures"] = NO_FIGURES
    else:
        fig, ax = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
        for name in notes["datasets"]:
            sel = [r for r in objective_rows if r["dataset"] == name]
            ax[0].semilogx([r["mu_ratio"] for r in sel], [r["ntk_over_optimal"] for r in sel],
                           "o-", label=name)
        ax[0].axhline(1.0, color="grey", lw=0.8)
        ax[0].set(xlabel="μ / ‖X‖₂²", ylabel="J(p) / p_MKL(μ)",
                  title="C2: the NTK's training objective over the optimal kernel's")
        ax[0].legend(fontsize=7)
        for name, h in histories.items():
            excess = np.maximum(h["objective"] - h["lower_bound"].max(), 1e-16)
            line, = ax[1].semilogy(h["iteration"], excess,
                                   label=f"{name}: objective − final lower bound")
            ax[1].semilogy(h["iteration"], np.maximum(h["gap"], 1e-16), ":",
                           color=line.get_color(), label=f"{name}: certified relative gap")
        ax[1].set(xlabel="iteration (reweighting, then the gated finish)",
                  ylabel="objective excess / relative gap",
                  title="C3: reweighting from the NTK weights")
        ax[1].legend(fontsize=7)
        files.append(save_figure(fig, ctx.out / "ntk_vs_optimal.png"))
    notes["files"] = files
    return notes
