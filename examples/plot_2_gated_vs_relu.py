"""
Gated ReLU against ReLU on a real data set
==========================================

The same activation patterns give two convex programs. The **gated ReLU** network keeps
its gates fixed, and training it is a group lasso. The **ReLU** network chooses its own
patterns, so each group is split by sign and constrained to the cone of weights that
really have its pattern. On the same patterns the ReLU program can only be worse on the
training objective (``p_R ≥ p_G``), since every ReLU network is a gated network whose gates
equal its weights.

Both are solved here on scikit-learn's wine data (178 wines, 13 chemical measurements,
standardised, a bias column; the task: is the wine of the first cultivar, label ±1),
over the same 100 sampled patterns, and both come with a numpy certificate: the primal
objective, the value of a dual-feasible point, and their gap.
"""

# %%
# The data and the shared patterns
# --------------------------------
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import convexnn as cn

features, labels = load_wine(return_X_y=True)
y_all = np.where(labels == 0, 1.0, -1.0)
X_train, X_test, y_train, y_test = train_test_split(features, y_all, test_size=0.3,
                                                    random_state=0, stratify=labels)
scaler = StandardScaler().fit(X_train)
X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
Xb = cn.add_bias(X_train)  # the gates see the bias column too
patterns = cn.sample_patterns(Xb, 100, seed=0)
print(patterns)

# %%
# Both programs at the same λ
# ---------------------------
# ``λ`` is 5% of the gated program's ``λ_max`` (the smallest λ at which zero is
# optimal), the same value for both programs so that their objectives compare.
gated = cn.solve("gated_relu", X_train, y_train, patterns=patterns, bias=True,
                 lam_ratio=0.05)
relu = cn.solve("relu", X_train, y_train, patterns=patterns, bias=True, lam=gated.lam)
for sol in (gated, relu):
    print(sol.formulation, sol.certificate)
assert relu.objective >= gated.certificate.dual_objective  # p_R ≥ p_G ≥ gated dual bound


def accuracy(sol, X, y):
    return float(np.mean(np.sign(sol.network.predict(X)) == y))


for sol in (gated, relu):
    print(f"{sol.formulation:>10}: {sol.network.neurons} neurons, train accuracy "
          f"{accuracy(sol, X_train, y_train):.3f}, "
          f"test accuracy {accuracy(sol, X_test, y_test):.3f}")

# %%
# The certificates and the solutions
# ----------------------------------
# Left: each objective with the dual value that certifies it (the bar is the primal,
# the tick the dual-feasible lower bound). Middle: the group norms of the solutions —
# only a few patterns carry weight. Right: accuracy of the networks the solutions encode.
fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), layout="constrained")
names = ["gated ReLU", "ReLU"]
sols = [gated, relu]
ax = axes[0]
ax.bar(names, [s.objective for s in sols], color=["C0", "C1"], alpha=0.7, label="objective")
ax.hlines([s.certificate.dual_objective for s in sols], [-0.4, 0.6], [0.4, 1.4], colors="k",
          lw=2, label="dual objective (lower bound)", zorder=3)
for i, s in enumerate(sols):
    ax.annotate(f"relative gap\n{s.certificate.relative_gap:.1e}", (i, s.objective),
                textcoords="offset points", xytext=(0, 6), ha="center", fontsize=9)
ax.set(ylabel="training objective", title=f"both certified at λ = {gated.lam:.3g}")
ax.set_ylim(0, 1.2 * max(s.objective for s in sols))
ax.legend(loc="lower center", fontsize=8)

ax = axes[1]
norms_g = np.sort(np.linalg.norm(gated.weights["W"].reshape(patterns.P, -1), axis=1))[::-1]
blocks_r = np.concatenate([relu.weights["V"], relu.weights["U"]]).reshape(2 * patterns.P, -1)
norms_r = np.sort(np.linalg.norm(blocks_r, axis=1))[::-1]
ax.semilogy(np.arange(1, norms_g.size + 1), np.maximum(norms_g, 1e-12), "o-", ms=3,
            label="gated: ||w_i||")
ax.semilogy(np.arange(1, norms_r.size + 1), np.maximum(norms_r, 1e-12), "s-", ms=3,
            label="ReLU: ||v_i||, ||u_i||")
ax.set(xlabel="group (sorted)", ylabel="norm", xlim=(0, 40),
       title="group sparsity of the optimum")
ax.legend(fontsize=8)

ax = axes[2]
width = 0.35
for k, (split, X, y) in enumerate((("train", X_train, y_train), ("test", X_test, y_test))):
    ax.bar(np.arange(2) + (k - 0.5) * width, [accuracy(s, X, y) for s in sols], width,
           label=split)
ax.set(xticks=range(2), xticklabels=names, ylim=(0.8, 1.02), ylabel="accuracy",
       title="the encoded networks")
ax.legend(fontsize=8)
plt.show()
