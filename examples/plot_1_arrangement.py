"""
The hyperplane arrangement of a 2-D data set
============================================

A ReLU neuron ``x ↦ (xᵀu)₊`` enters the training problem only through its *activation
pattern* on the data, ``D(u) = diag(1[Xu ≥ 0])``. Each data point ``x_k`` splits the
plane of weights ``u`` by the line ``x_kᵀu = 0``; the lines cut the plane into cells, and
all the weights of one cell share one pattern. So there are finitely many patterns — for
``n`` points in the plane in general position, ``2n`` cells — and convexnn can enumerate
them all (``patterns="all"``). Over all of them the convex program *is* the training
problem, and its certificate is a certificate of **global** optimality.

This example draws the arrangement, the enumerated patterns, and the certified global
optimum of a ReLU network as the function it learns.
"""

# %%
# A small data set in the plane
# -----------------------------
# A planted two-neuron ReLU teacher with a little noise; no bias, so every cell of the
# arrangement is a sector around the origin.
import matplotlib.pyplot as plt
import numpy as np

import convexnn as cn

data = cn.planted_relu(n=10, d=2, neurons=2, noise=0.05, seed=4)
X, y = data.X, data.y

# %%
# Every activation pattern
# ------------------------
# ``enumerate_patterns`` finds one representative gate per cell (the all-zero pattern,
# which contributes nothing, is dropped). We recover the same cells from the geometry:
# the lines ``x_kᵀu = 0`` have directions at angles ``θ_k ± π/2``; between two
# consecutive directions lies one sector, whose pattern we read off at its middle.
patterns = cn.enumerate_patterns(X)
print(patterns)

normal = np.arctan2(X[:, 1], X[:, 0])
edges = np.sort(np.mod(np.concatenate([normal + np.pi / 2, normal - np.pi / 2]), 2 * np.pi))
middles = (edges + np.diff(np.append(edges, edges[0] + 2 * np.pi)) / 2) % (2 * np.pi)
directions = np.stack([np.cos(middles), np.sin(middles)])
sector_masks = (X @ directions >= 0).astype(int)  # n × (number of sectors)

enumerated = {tuple(col) for col in patterns.masks.T.astype(int)}
from_geometry = {tuple(col) for col in sector_masks.T if col.any()}
assert enumerated == from_geometry
print(f"{len(edges)} sectors; {len(enumerated)} non-zero patterns, the same set both ways")

# %%
# The certified global optimum
# ----------------------------
# The ReLU program over every pattern. Its certificate has scope ``"all"``: no ReLU
# network of any width reaches a lower training objective.
sol = cn.solve("relu", X, y, patterns="all", lam_ratio=0.05)
print(sol.certificate)
net = sol.network
print(net)

# %%
# The picture
# -----------
# Left: the weight plane cut by the lines ``x_kᵀu = 0`` (one per data point), each
# sector labelled with its pattern (which points it activates); the weights ``u_j`` of
# the optimal network are the arrows, each inside the cell of its pattern. Middle: the
# mask matrix of the enumerated patterns. Right: the learned function ``f(x)`` with the
# data, coloured by target.
column = [next(i for i in range(patterns.P)
               if np.array_equal(patterns.masks[:, i], sector_masks[:, s]))
          for s in range(len(edges))]  # sector → its column of the masks

fig, axes = plt.subplots(1, 3, figsize=(15, 4.8), layout="constrained")
ax = axes[0]
R = 1.0
cmap = plt.get_cmap("tab20")
for s, (a0, a1) in enumerate(zip(edges, np.append(edges[1:], edges[0] + 2 * np.pi),
                                 strict=True)):
    t = np.linspace(a0, a1, 30)
    ax.fill(np.r_[0, R * np.cos(t)], np.r_[0, R * np.sin(t)], color=cmap(s % 20), alpha=0.35)
    mid = (a0 + a1) / 2
    ax.text(0.88 * R * np.cos(mid), 0.88 * R * np.sin(mid), str(s), fontsize=7,
            ha="center", va="center")
for theta in normal:
    d = np.array([-np.sin(theta), np.cos(theta)])
    ax.plot([-R * d[0], R * d[0]], [-R * d[1], R * d[1]], color="0.3", lw=0.8)
for j in range(net.neurons):
    u = net.U[:, j] / np.linalg.norm(net.U[:, j]) * 0.6
    ax.annotate("", xy=u, xytext=(0, 0),
                arrowprops=dict(arrowstyle="->", lw=2,
                                color="C3" if net.A[j, 0] > 0 else "C0"))
ax.set(xlim=(-R, R), ylim=(-R, R), aspect="equal", xticks=[], yticks=[],
       title=f"weight plane: {len(edges)} cells cut by the lines $x_k^\\top u = 0$\n"
             "arrows: the optimal neurons (red $a_j > 0$, blue $a_j < 0$)")

ax = axes[1]
ax.imshow(patterns.masks[:, column], cmap="Greys", aspect="auto", interpolation="nearest")
ax.set(xlabel="cell (numbered as on the left)", ylabel="data point k",
       xticks=range(0, len(edges), 2),
       title=f"the {patterns.P} enumerated patterns $D_i$ (black: active)")

ax = axes[2]
g = np.linspace(-2.5, 2.5, 201)
G1, G2 = np.meshgrid(g, g)
F = net.predict(np.column_stack([G1.ravel(), G2.ravel()])).reshape(G1.shape)
top = np.abs(F).max()
mesh = ax.pcolormesh(G1, G2, F, cmap="RdBu_r", vmin=-top, vmax=top, shading="auto")
ax.scatter(X[:, 0], X[:, 1], c=y, cmap="RdBu_r", vmin=-top, vmax=top, edgecolor="k", s=50)
fig.colorbar(mesh, ax=ax, label="f(x)")
cert = sol.certificate
ax.set(aspect="equal", title=f"certified global optimum ({net.neurons} neurons)\n"
       f"relative gap {cert.relative_gap:.1e}, scope '{cert.scope}'")
plt.show()
