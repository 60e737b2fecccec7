"""
Gradient training against the certified optimum
===============================================

The usual way to train a two-layer ReLU network is to run a gradient method on the
non-convex objective ``½||f(X) − y||² + (λ/2) Σ_j (||u_j||² + a_j²)`` from a random start.
Nothing tells you how far the result is from the best network. The convex program over
**every** activation pattern answers that question: its optimum is the global minimum of
training over networks of any width, and its numpy certificate gives a lower bound that
no network can beat.

Here :func:`convexnn.nonconvex.train_network` trains ReLU networks of several widths with
Adam (full batch, several seeds) on a 2-D data set, and each run is measured against
the certified global optimum.
"""

# %%
# The certified global optimum
# ----------------------------
import matplotlib.pyplot as plt
import numpy as np

import convexnn as cn
from convexnn.nonconvex import train_network

data = cn.planted_relu(n=60, d=2, neurons=3, noise=0.1, seed=0)
X, y = data.X, data.y
sol = cn.solve("relu", X, y, patterns="all", lam_ratio=0.1)
cert = sol.certificate
print(cert)
print(f"the optimal network has {sol.network.neurons} neurons")

# %%
# Training from random starts
# ---------------------------
# The same λ, Adam with step 0.02 for 3000 full-batch epochs, five seeds per width.
widths = (1, 2, 4, 50)
seeds = range(5)
runs = {(m, s): train_network("relu", X, y, sol.lam, m, epochs=3000, lr=0.02, seed=s)
        for m in widths for s in seeds}
for (m, s), run in runs.items():
    # a network is never below the certified lower bound (up to rounding)
    assert run.best_objective >= cert.dual_objective - 1e-9 * cert.objective
    excess = (run.objective - cert.dual_objective) / cert.objective
    print(f"width {m:>2}, seed {s}: final objective {run.objective:.8g}, "
          f"{excess:.1e} above the certified lower bound (relative)")

# %%
# The picture
# -----------
# Left: the best training objective so far of every run, minus the certified lower
# bound, per epoch (log scale; Adam with a constant step oscillates slightly near a
# minimum); the dashed line is the certificate's own gap. Runs that end on the line
# reached the global optimum; the others stopped at a worse stationary point. Right:
# the final objective of every run above the lower bound, by width. Narrow networks
# can get stuck; wide networks reach the optimum from every seed.
fig, axes = plt.subplots(1, 2, figsize=(13, 4.5), layout="constrained")
ax = axes[0]
for k, m in enumerate(widths):
    for s in seeds:
        run = runs[m, s]
        best = np.minimum.accumulate(run.objectives)
        ax.semilogy(np.maximum(best - cert.dual_objective, 1e-12), color=f"C{k}",
                    lw=0.9, label=f"width {m}" if s == 0 else None)
ax.axhline(cert.gap, color="k", ls="--", lw=1, label="certificate's gap")
ax.set(xlabel="epoch", ylabel="best objective so far − certified lower bound",
       title="Adam on the non-convex objective", ylim=(1e-10, None))
ax.legend(fontsize=8)

ax = axes[1]
for k, m in enumerate(widths):
    excess = [(runs[m, s].objective - cert.dual_objective) / cert.objective for s in seeds]
    ax.semilogy(np.full(len(excess), k) + np.linspace(-0.15, 0.15, len(excess)), excess,
                "o", color=f"C{k}")
ax.axhline(cert.relative_gap, color="k", ls="--", lw=1, label="certificate's relative gap")
ax.set(xticks=range(len(widths)), xticklabels=[f"width {m}" for m in widths],
       ylabel="(final objective − lower bound) / optimum",
       title=f"against the certified global optimum ({sol.network.neurons} neurons)")
ax.legend(fontsize=8)
plt.show()
