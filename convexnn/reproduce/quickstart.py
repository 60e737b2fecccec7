"""``quickstart``: the bundled quick-start problem, its certificate files and the λ path
around it (objective, duality gap, neurons, training error; the network's training
objective against the convex optimum, equal by the exact reformulation)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..problems import solve_spec
from ..results import write_result
from ._common import NO_FIGURES, Context, bundled_spec, pyplot, write_table

PATH_RATIOS = (0.5, 0.2, 0.1, 0.05, 0.02, 0.01)


def run(ctx: Context) -> dict[str, Any]:
    out, target, uci_root, log = ctx.out, ctx.target, ctx.uci_root, ctx.log
    spec = bundled_spec("quickstart")
    log(f"reproduce quickstart: solving {spec.path}")
    sol, ds = solve_spec(spec, uci_root=uci_root)
    write_result(sol, out, ds, spec=spec, label=str(target))
    files = ["certificate.json", "solution.npz", "summary.md"]
    cert_cols = ["formulation", "n", "d", "patterns", "lam", "objective", "dual_objective",
                 "relative_gap", "certified", "neurons", "network_objective"]
    net_obj = sol.network.objective(ds.X, ds.y, sol.lam)
    files += write_table(out, "certificate", [{
        "formulation": sol.formulation, "n": sol.n, "d": sol.d, "patterns": sol.patterns.P,
        "lam": sol.lam, "objective": sol.objective,
        "dual_objective": sol.certificate.dual_objective,
        "relative_gap": sol.certificate.relative_gap, "certified": sol.certified,
        "neurons": sol.network.neurons, "network_objective": net_obj,
    }], cert_cols, "Quick start: certificate")

    rows = []
    for k, ratio in enumerate(PATH_RATIOS, 1):
        log(f"reproduce quickstart: λ path {k}/{len(PATH_RATIOS)} (lam_ratio {ratio})")
        s = dataclasses.replace(spec, model=dataclasses.replace(spec.model, reg_ratio=ratio))
        p, _ = solve_spec(s, data=ds)
        net = p.network
        pred = net.predict(ds.X)
        rows.append({
            "lam_ratio": ratio, "lam": p.lam, "objective": p.objective,
            "dual_objective": p.certificate.dual_objective,
            "relative_gap": p.certificate.relative_gap, "certified": p.certified,
            "neurons": net.neurons,
            "train_mse": float(np.mean((pred - ds.y) ** 2)),
            "network_vs_convex": abs(net.objective(ds.X, ds.y, p.lam) - p.objective)
            / abs(p.objective),
            "seconds": float(sum(p.timings.values())),
        })
    cols = list(rows[0])
    files += write_table(out, "lambda_path", rows, cols,
                         "Quick start: λ path (network_vs_convex = |L(network) − p*| / p*)")
    notes: dict[str, Any] = {"certified": bool(sol.certified),
                             "path_certified": all(r["certified"] for r in rows)}
    plt = pyplot()
    if plt is None:
        notes["figures"] = NO_FIGURES
    else:
        fig, ax = plt.subplots(1, 2, figsize=(9, 3.4), constrained_layout=True)
        lam = [r["lam"] for r in rows]
        ax[0].semilogx(lam, [r["neurons"] for r in rows], "o-")
        ax[0].set(xlabel="λ", ylabel="neurons of the certified optimum",
                  title="sparsity along the λ path")
        ax[1].loglog(lam, [r["train_mse"] for r in rows], "o-", label="training MSE")
        ax[1].loglog(lam, [max(r["relative_gap"], 1e-16) for r in rows], "s--",
                     label="relative duality gap")
        ax[1].axhline(spec.solver.tolerance, color="grey", lw=0.8, label="tolerance")
        ax[1].set(xlabel="λ", title="fit and certificate")
        ax[1].legend(fontsize=8)
        fig.savefig(out / "lambda_path.png", dpi=120)
        plt.close(fig)
        files.append("lambda_path.png")
    notes["files"] = files
    return notes
