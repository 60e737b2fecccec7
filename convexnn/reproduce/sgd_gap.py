"""``sgd-gap``: the weight-decay objective trained as a non-convex network, against the
certified optimum of its convex program.

Each problem is trained by full-batch gradient methods (:func:`convexnn.nonconvex.
train_network`) at several widths from several random starts, and every run is measured
against a certified lower bound that no network of the kind can beat:

* ``relu-planted`` — a planted two-neuron ReLU teacher with noise (``n = 80``, ``d = 2``,
  no bias) and ``relu-uci`` — the UCI set ``haberman-survival`` on its first two
  principal components (``n = 306``, ``d = 2``, ±1 targets, no bias). The ReLU program
  over **every** activation pattern is solved and certified: its optimum is the global
  minimum of ``½||f(X) − y||² + (λ/2) Σ_j (||u_j||² + a_j²)`` over ReLU networks of any
  width, so a network's excess over the certificate's lower bound is what training left
  on the table. A network narrower than the optimal one (``neurons`` in the table) cannot
  reach it: its gap is partly the width's, not the optimiser's.
* ``gated-uci`` — gated ReLU on ``breast-cancer-wisc-diag`` (``n = 569``, ``d = 30``,
  bias column, ±1 targets). A gated network with fixed gates ``g_j`` has exactly the
  group-lasso program over the patterns ``1[X g_j ≥ 0]`` as its convex twin, so each run
  (its own seed, its own gates) is compared with the certified optimum for its gates —
  the global minimum of the non-convex gated objective with those gates.

λ: ``LAM_RATIO`` × λ_max — of the ReLU program over every pattern, and for the gated
problem of the group lasso over 1000 Gaussian gates (seed 0), held fixed across seeds.

Optimisers (documented, not tuned per run): Adam (β = 0.9, 0.999, ε = 1e-8) with step
``ADAM_LR`` and plain gradient descent with the largest step of ``GD_LRS`` whose run
stays finite; ``EPOCHS`` full-batch epochs from ``u_j ~ N(0, I/d)``, ``a_j ~ N(0, I/m)``.

The relative gap of a run is ``(L(final) − lower bound) / lower bound`` — never negative,
since every network's objective is at least the convex optimum, which is at least the
certificate's lower bound (a negative value would be a bug and is checked).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data import add_bias, load_uci, planted_relu
from ..errors import InvalidInputError
from ..nonconvex import train_network
from ..patterns import patterns_from_gates
from ..solving import solve
from ._common import NO_FIGURES, Context, pyplot, save_figure, write_table
from .ntk_vs_optimal import signed_targets

__all__ = ["run", "ADAM_LR", "GD_LRS", "EPOCHS", "LAM_RATIO"]

ADAM_LR = 1e-2
GD_LRS = (1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5)
EPOCHS = 4000
LAM_RATIO = 0.05
RELU_WIDTHS = (1, 2, 4, 16, 64)
GATED_WIDTHS = (10, 50, 200)
SEEDS = 5
#: Reached the optimum: within this relative gap of the lower bound.
REACHED = 1e-3

QUICK_EPOCHS = 600
QUICK_RELU_WIDTHS = (1, 16)
QUICK_GATED_WIDTHS = (20,)
QUICK_SEEDS = 2


def _gd(kind: str, X: np.ndarray, y: np.ndarray, lam: float, width: int, epochs: int,
        seed: int) -> Any:
    """Gradient descent with the largest step of :data:`GD_LRS` that stays finite."""
    for lr in GD_LRS:
        try:
            return train_network(kind, X, y, lam, width, epochs=epochs, lr=lr, seed=seed,
                                 optimizer="gd")
        except InvalidInputError:
            continue
    raise InvalidInputError(f"gradient descent diverged with every step of {GD_LRS}.")


def _both(kind: str, X: np.ndarray, y: np.ndarray, lam: float, width: int, epochs: int,
          seed: int) -> tuple[Any, Any]:
    """The Adam run and the gradient-descent run from the same start."""
    return (train_network(kind, X, y, lam, width, epochs=epochs, lr=ADAM_LR, seed=seed),
            _gd(kind, X, y, lam, width, epochs, seed))


def _problems(ctx: Context) -> list[tuple[str, str, np.ndarray, np.ndarray, str]]:
    """(name, kind, X, y, description) of each problem found."""
    data = planted_relu(n=80, d=2, neurons=2, noise=0.3, seed=0)
    out = [("relu-planted", "relu", data.X, data.y,
            "planted 2-neuron ReLU teacher, n = 80, d = 2, noise 0.3")]
    if ctx.quick:  # a small gated problem instead of the UCI one
        small = planted_relu(n=60, d=4, neurons=2, noise=0.3, seed=1)
        return out + [("gated-planted", "gated_relu", add_bias(small.X), small.y,
                       "planted teacher, n = 60, d = 4, bias column")]
    for name, kind in (("haberman-survival", "relu"), ("breast-cancer-wisc-diag", "gated")):
        try:
            ds = load_uci(name, ctx.uci_root)
        except InvalidInputError as exc:
            ctx.log(f"reproduce sgd-gap: {name}: SKIPPED ({exc})")
            continue
        y = signed_targets(ds.y)
        if kind == "relu":
            Xc = ds.X - ds.X.mean(axis=0)
            _, _, Vt = np.linalg.svd(Xc, full_matrices=False)
            X = Xc @ Vt[:2].T
            out.append(("relu-uci", "relu", X, y,
                        f"UCI {name} on its first two principal components, n = {len(y)}"))
        else:
            out.append(("gated-uci", "gated_relu", add_bias(ds.X), y,
                        f"UCI {name} with a bias column, n = {len(y)}, d = {ds.X.shape[1]}"))
    return out


def _relu_runs(ctx, name, X, y, widths, seeds, epochs):
    sol = _solve_logged(ctx, name, "relu", X, y, patterns="all", lam_ratio=LAM_RATIO)
    cert = sol.certificate
    meta = {"optimum": cert.objective, "lower_bound": cert.dual_objective,
            "certified": cert.certified, "scope": sol.scope, "lam": sol.lam,
            "neurons": sol.network.neurons, "patterns": sol.patterns.P}
    runs = []
    for m in widths:
        for s in range(seeds):
            runs += [(m, s, meta, r) for r in _both("relu", X, y, sol.lam, m, epochs, s)]
    return runs


def _solve_logged(ctx: Context, name: str, formulation: str, X, y, **kwargs):
    sol = solve(formulation, X, y, **kwargs)
    ctx.log(f"reproduce sgd-gap: {name}: {formulation} optimum {sol.objective:.8g} "
            f"({'CERTIFIED' if sol.certified else 'NOT CERTIFIED'}, relative gap "
            f"{sol.certificate.relative_gap:.1e})")
    return sol


def _gated_runs(ctx, name, X, y, widths, seeds, epochs):
    reference = solve("gated_relu", X, y, patterns=1000, seed=0, lam_ratio=LAM_RATIO)
    lam = reference.lam
    runs = []
    for m in widths:
        for s in range(seeds):
            for result in _both("gated_relu", X, y, lam, m, epochs, s):
                pats = patterns_from_gates(X, result.network.gates)
                sol = solve("gated_relu", X, y, patterns=pats, lam=lam)
                cert = sol.certificate
                meta = {"optimum": cert.objective, "lower_bound": cert.dual_objective,
                        "certified": cert.certified, "scope": "its gates", "lam": lam,
                        "neurons": sol.network.neurons, "patterns": pats.P}
                runs.append((m, s, meta, result))
    ctx.log(f"reproduce sgd-gap: {name}: {len(runs)} runs, each against the certified "
            "optimum for its gates")
    return runs


def run(ctx: Context) -> dict[str, Any]:
    quick = ctx.quick
    epochs = QUICK_EPOCHS if quick else EPOCHS
    seeds = QUICK_SEEDS if quick else SEEDS
    rows, curves, problems = [], {}, []
    for name, kind, X, y, what in _problems(ctx):
        ctx.log(f"reproduce sgd-gap: {name} ({what})")
        if kind == "relu":
            runs = _relu_runs(ctx, name, X, y, QUICK_RELU_WIDTHS if quick else RELU_WIDTHS,
                              seeds, epochs)
        else:
            runs = _gated_runs(ctx, name, X, y, QUICK_GATED_WIDTHS if quick else
                               GATED_WIDTHS, seeds, epochs)
        problems.append({"problem": name, "kind": kind, "data": what, "n": X.shape[0],
                         "d": X.shape[1], "lam": runs[0][2]["lam"]})
        for m, s, meta, res in runs:
            bound = meta["lower_bound"]
            gap = (res.objective - bound) / bound
            if gap < -1e-9:
                raise InvalidInputError(f"sgd-gap {name}: a network's objective "
                                        f"{res.objective!r} is below the certified lower "
                                        f"bound {bound!r}; the certificate is wrong.")
            rows.append({"problem": name, "kind": kind, "optimizer": res.optimizer,
                         "lr": res.lr, "width": m, "seed": s, "epochs": res.epochs,
                         "final_objective": res.objective, "best_objective": res.best_objective,
                         "lower_bound": bound, "certified_optimum": meta["optimum"],
                         "certified": meta["certified"], "optimum_scope": meta["scope"],
                         "optimal_neurons": meta["neurons"], "patterns": meta["patterns"],
                         "relative_gap": max(gap, 0.0), "reached": bool(gap <= REACHED),
                         "seconds": res.seconds})
            curves[name, res.optimizer, m, s] = (res.objectives, bound)
    files = write_table(ctx.out, "runs", rows, list(rows[0]),
                        "Every training run against the certified optimum of its convex "
                        "program (relative gap = (final − lower bound) / lower bound)")
    summary = []
    for p in problems:
        for opt in ("adam", "gd"):
            for m in sorted({r["width"] for r in rows if r["problem"] == p["problem"]}):
                sel = [r for r in rows if r["problem"] == p["problem"]
                       and r["optimizer"] == opt and r["width"] == m]
                gaps = np.array([r["relative_gap"] for r in sel])
                summary.append({"problem": p["problem"], "optimizer": opt, "width": m,
                                "runs": len(sel), "reached_optimum": int(sum(r["reached"]
                                                                             for r in sel)),
                                "median_relative_gap": float(np.median(gaps)),
                                "min_relative_gap": float(gaps.min()),
                                "max_relative_gap": float(gaps.max()),
                                "optimal_neurons": sel[0]["optimal_neurons"]})
    files += write_table(ctx.out, "summary", summary, list(summary[0]),
                         f"Final relative gaps by width (reached = within {REACHED:g} of "
                         "the certified lower bound)")
    files += write_table(ctx.out, "problems", problems, list(problems[0]),
                         "The problems and their λ")
    notes: dict[str, Any] = {
        "epochs": epochs, "adam_lr": ADAM_LR, "gd_steps": list(GD_LRS), "seeds": seeds,
        "lam_ratio": LAM_RATIO, "runs": len(rows),
        "all_certified": all(r["certified"] for r in rows),
        "reached_optimum": int(sum(r["reached"] for r in rows)),
    }
    plt = pyplot()
    if plt is None:
        notes["figures"] = NO_FIGURES
    else:
        files.append(_figure(plt, problems, rows, curves, ctx.out / "sgd_gap.png"))
    notes["files"] = files
    return notes


def _figure(plt: Any, problems, rows, curves, path) -> str:
    fig, axes = plt.subplots(len(problems), 2, figsize=(12, 3.8 * len(problems)),
                             constrained_layout=True, squeeze=False)
    for (left, right), p in zip(axes, problems, strict=True):
        name = p["problem"]
        widths = sorted({r["width"] for r in rows if r["problem"] == name})
        for k, m in enumerate(widths):
            for (pname, opt, width, s), (obj, bound) in curves.items():
                if pname != name or width != m or opt != "adam":
                    continue
                left.semilogy(np.maximum(obj / bound - 1, 1e-10), color=f"C{k}", lw=0.8,
                              label=f"width {m}" if s == 0 else None)
        left.axhline(REACHED, color="k", ls="--", lw=0.8, label=f"{REACHED:g} (reached)")
        left.set(xlabel="epoch (Adam, full batch)",
                 ylabel="(objective − lower bound) / lower bound",
                 title=f"{name}: training against the certified optimum")
        left.legend(fontsize=7)
        for j, opt in enumerate(("adam", "gd")):
            for k, m in enumerate(widths):
                gaps = [max(r["relative_gap"], 1e-10) for r in rows
                        if r["problem"] == name and r["width"] == m and r["optimizer"] == opt]
                x = k + (j - 0.5) * 0.3 + np.linspace(-0.08, 0.08, len(gaps))
                right.semilogy(x, gaps, "o" if opt == "adam" else "s", color=f"C{k}",
                               alpha=0.8, label=("Adam" if opt == "adam" else "GD")
                               if k == 0 else None, mfc="none" if opt == "gd" else None)
        right.axhline(REACHED, color="k", ls="--", lw=0.8)
        right.set(xticks=range(len(widths)), xticklabels=[f"width {m}" for m in widths],
                  ylabel="final relative gap",
                  title=f"{name}: final gaps (circles Adam, squares GD)")
        right.legend(fontsize=7)
    return save_figure(fig, path)
