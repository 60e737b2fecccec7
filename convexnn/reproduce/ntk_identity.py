"""``ntk-identity`` (claim C1): the NTK Gram is the probability-weighted sum of the
pattern kernels, ``K_NTK = Σ_i p_i D_i X Xᵀ D_i`` (``docs/math/ntk.md``).

* Exact: on 2-D data every activation pattern is enumerated with its Gaussian
  probability (arc length / 2π); the analytic kernel ``xᵀx'(π − θ)/(2π)`` and the weighted
  sum agree to rounding, with and without a bias column.
* Monte Carlo: in higher dimension the NTK weights are pattern frequencies of N Gaussian
  gates (the width-N empirical NTK). Its relative error against the analytic kernel on a
  UCI data set decays like ``N^{-1/2}``: the log-log slope is fitted over several seeds.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data import add_bias, load_uci, planted_relu
from ..errors import InvalidInputError
from ..kernels import empirical_ntk, ntk_gram
from ..ops import masked_gram
from ..patterns import enumerate_patterns, sample_patterns
from ._common import NO_FIGURES, Context, pyplot, save_figure, write_table

__all__ = ["run"]

DEFAULT_DATASET = "wine"


def _exact_rows(ctx: Context) -> list[dict[str, Any]]:
    rows = []
    sizes = (20, 60) if ctx.quick else (20, 60, 150, 400)
    for n in sizes:
        for bias in (False, True):
            rng = np.random.default_rng(n)
            X = rng.standard_normal((n, 1 if bias else 2))  # 2 columns with the bias
            Xb = add_bias(X) if bias else X
            pats = enumerate_patterns(Xb)
            K_sum = masked_gram(Xb, pats.masks, pats.probabilities)
            K = ntk_gram(X, bias=bias)
            err = float(np.max(np.abs(K - K_sum)) / np.max(np.abs(K)))
            rows.append({"n": n, "columns": Xb.shape[1], "bias": bias, "patterns": pats.P,
                         "probability_mass": float(pats.probabilities.sum()),
                         "max_relative_difference": err})
    return rows


def _data(ctx: Context) -> tuple[np.ndarray, str]:
    """A UCI data set (standardised features, with a bias column), or a synthetic one."""
    names = list(ctx.datasets or [DEFAULT_DATASET])
    try:
        ds = load_uci(names[0], ctx.uci_root)
        X = ds.X
        label = f"uci:{names[0]}"
    except InvalidInputError as exc:
        if ctx.datasets:
            raise
        ctx.log(f"reproduce ntk-identity: {exc}; using synthetic data instead")
        X = planted_relu(178, 13, seed=0).X
        label = "synthetic (planted_relu n=178, d=13)"
    if ctx.quick:
        X = X[:80]
    return X, label


def _monte_carlo_rows(ctx: Context, X: np.ndarray) -> list[dict[str, Any]]:
    K = ntk_gram(X, bias=True)
    norm = float(np.linalg.norm(K))
    widths = (10, 100, 1000) if ctx.quick else (10, 30, 100, 300, 1000, 3000, 10_000, 30_000)
    seeds = range(2 if ctx.quick else 5)
    rows = []
    Xb = add_bias(X)
    for N in widths:
        for seed in seeds:
            K_N = empirical_ntk(X, N, seed=seed, bias=True)
            # the same N gates as patterns with their frequencies: Σ f_i K_i is the same matrix
            pats = sample_patterns(Xb, N, seed)
            K_f = masked_gram(Xb, pats.masks, pats.frequencies)
            rows.append({"gates": N, "seed": seed,
                         "relative_error": float(np.linalg.norm(K_N - K) / norm),
                         "frequencies_vs_empirical": float(np.max(np.abs(K_f - K_N))
                                                           / np.max(np.abs(K)))})
    return rows


def run(ctx: Context) -> dict[str, Any]:
    ctx.log("reproduce ntk-identity: exact identity on 2-D data")
    exact = _exact_rows(ctx)
    files = write_table(ctx.out, "exact", exact, list(exact[0]),
                        "C1, exact: analytic NTK vs Σ p_i K_i over every pattern (2 columns)")
    X, label = _data(ctx)
    ctx.log(f"reproduce ntk-identity: Monte Carlo on {label} (n={X.shape[0]}, d={X.shape[1]})")
    mc = _monte_carlo_rows(ctx, X)
    files += write_table(ctx.out, "monte_carlo", mc, list(mc[0]),
                         f"C1, Monte Carlo on {label}: ‖K_N − K‖_F / ‖K‖_F for N gates")
    N = np.array([r["gates"] for r in mc], dtype=float)
    err = np.array([r["relative_error"] for r in mc])
    slope, intercept = np.polyfit(np.log(N), np.log(err), 1)
    notes: dict[str, Any] = {
        "exact_max_relative_difference": max(r["max_relative_difference"] for r in exact),
        "monte_carlo_data": label, "monte_carlo_slope": float(slope),
        "frequencies_equal_empirical": max(r["frequencies_vs_empirical"] for r in mc),
    }
    plt = pyplot()
    if plt is None:
        notes["figures"] = NO_FIGURES
    else:
        fig, ax = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
        rng = np.random.default_rng(7)
        X2 = rng.standard_normal((60, 2))
        pats = enumerate_patterns(X2)
        ax[0].plot(ntk_gram(X2).ravel(), masked_gram(X2, pats.masks, pats.probabilities).ravel(),
                   ".", ms=2)
        lim = ax[0].get_xlim()
        ax[0].plot(lim, lim, color="grey", lw=0.8)
        ax[0].set(xlabel="analytic NTK  xᵀx′(π − θ)/(2π)",
                  ylabel="Σᵢ pᵢ (DᵢX XᵀDᵢ) over all patterns",
                  title=f"exact on 2-D data ({pats.P} patterns)")
        for seed in sorted({r["seed"] for r in mc}):
            sel = [r for r in mc if r["seed"] == seed]
            ax[1].loglog([r["gates"] for r in sel], [r["relative_error"] for r in sel], "o-",
                         alpha=0.6, label=f"seed {seed}")
        grid = np.geomspace(N.min(), N.max(), 20)
        ax[1].loglog(grid, np.exp(intercept) * grid ** slope, "k--",
                     label=f"fitted slope {slope:.3f}")
        ax[1].loglog(grid, np.exp(intercept) * grid[0] ** (slope + 0.5) * grid ** -0.5, ":",
                     color="grey", label="slope −1/2")
        ax[1].set(xlabel="number of gates N (width)", ylabel="‖K_N − K‖_F / ‖K‖_F",
                  title=f"Monte Carlo NTK on {label}")
        ax[1].legend(fontsize=7)
        files.append(save_figure(fig, ctx.out / "ntk_identity.png"))
    notes["files"] = files
    return notes
