"""
The λ path of the group lasso
=============================

Weight decay ``λ`` decides how many neurons the optimal network uses. Above
``λ_max = max_i ||Xᵀ D_i y||`` the zero network is optimal; as ``λ`` decreases, groups
(patterns, that is neurons) enter one by one, exactly as in a lasso path.
:func:`convexnn.solve_path` solves the gated-ReLU program along a grid of ``λ``,
warm-starting each value from the previous one, and certifies **every** point of the
path with its own duality gap.

The data: scikit-learn's diabetes regression (442 patients, 10 features, standardised,
with a bias), split into a training and a held-out set.
"""

# %%
# The path
# --------
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_diabetes
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import convexnn as cn

features, target = load_diabetes(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(features, target, test_size=0.3,
                                                    random_state=0)
scaler = StandardScaler().fit(X_train)
X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
mean, scale = y_train.mean(), y_train.std()
y_train, y_test = (y_train - mean) / scale, (y_test - mean) / scale

ratios = np.geomspace(1.0, 1e-2, 25)
path = cn.solve_path("gated_relu", X_train, y_train, patterns=200, bias=True,
                     lam_ratios=ratios, method="fast")
print(path)
assert path.certified

# %%
# Along the path
# --------------
# For every ``λ``: the objective and its certified lower bound, the norm of every group
# ``||w_i||`` (each non-zero group is one neuron of the network), and the mean squared
# error of the network on the training and the held-out data.
norms = np.array([np.linalg.norm(s.weights["W"].reshape(s.patterns.P, -1), axis=1)
                  for s in path])
train_mse = [np.mean((s.network.predict(X_train) - y_train) ** 2) for s in path]
test_mse = [np.mean((s.network.predict(X_test) - y_test) ** 2) for s in path]
best = int(np.argmin(test_mse))
print(f"best held-out MSE {test_mse[best]:.3f} at λ/λ_max = {ratios[best]:.3g} "
      f"({path[best].network.neurons} neurons)")

fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), layout="constrained")
ax = axes[0]
ax.loglog(ratios, path.objectives, "o-", ms=3, label="objective p(W)")
ax.loglog(ratios, [s.certificate.dual_objective for s in path], "k--", lw=1,
          label="dual objective d(z)")
ax.set(xlabel="λ / λ_max", ylabel="objective", title="certified at every λ")
ax.invert_xaxis()
ax.legend(loc="upper left", fontsize=8)
twin = ax.twinx()
twin.semilogy(ratios, np.maximum(path.relative_gaps, 1e-16), "C2.", ms=4)
twin.axhline(1e-6, color="C2", ls=":", lw=1)
twin.set_ylabel("relative gap", color="C2")

ax = axes[1]
ax.semilogx(ratios, norms, lw=0.8)
ax.set(xlabel="λ / λ_max", ylabel="||w_i||", title="group norms: neurons enter one by one")
ax.invert_xaxis()
counts = [s.network.neurons for s in path]
twin = ax.twinx()
twin.semilogx(ratios, counts, "k:", lw=1.5)
twin.set_ylabel("neurons (dotted)")

ax = axes[2]
ax.semilogx(ratios, train_mse, "o-", ms=3, label="training")
ax.semilogx(ratios, test_mse, "s-", ms=3, label="held out")
ax.axvline(ratios[best], color="0.5", ls=":")
ax.set(xlabel="λ / λ_max", ylabel="mean squared error (standardised)",
       title="choosing λ on held-out data")
ax.invert_xaxis()
ax.legend(fontsize=8)
plt.show()
