"""
From the NTK to the optimal kernel by reweighting
=================================================

The infinite-width Neural Tangent Kernel of a gated ReLU network is a mixture of the
*pattern kernels* ``K_i = D_i X Xᵀ D_i`` with weights ``p_i``, the Gaussian probabilities
of the patterns. Those weights are chosen before the targets are seen. Multiple kernel
learning (MKL) chooses the weights ``η`` on the simplex that minimise the kernel-ridge
objective ``J(η) = (μ/2) yᵀ(K_η + μI)⁻¹y``, and its optimum *is* the gated-ReLU network
trained with weight decay, through the exact map ``μ = λ / Σ_i ||w_i*||``.

Iterative reweighting starts at the NTK, ``η⁰ = p``, and repeats one kernel-ridge solve
and the closed-form update ``η_i ← ||w_i|| / Σ_j ||w_j||``. Each step lowers ``J`` and
also yields a certified lower bound, so the walk from the NTK to the optimum is
certified at every step.
"""

# %%
# The optimum to reach, and the matched μ
# ---------------------------------------
import matplotlib.pyplot as plt
import numpy as np

import convexnn as cn

data = cn.planted_relu(n=120, d=2, neurons=3, noise=0.1, seed=1)
X, y = data.X, data.y
patterns = cn.enumerate_patterns(X)  # in the plane every pattern is cheap to list
print(patterns)

gated = cn.solve("gated_relu", X, y, patterns=patterns, lam_ratio=0.05)
mu = cn.lam_to_mu(gated.lam, gated)  # the exact map
p_mkl = cn.mkl_value_from_gated(gated.objective, gated.lam, mu)  # p_G(λ) − λ²/(2μ)
print(f"λ = {gated.lam:.4g} ↔ μ = {mu:.4g}; p_MKL(μ) = {p_mkl:.8g} from the gated optimum")

# %%
# NTK regression is one point of the simplex
# ------------------------------------------
# ``solve("ntk")`` is kernel ridge regression with the NTK weights of the same patterns.
# With every pattern enumerated, ``p_i`` is the exact Gaussian probability of cell ``i``
# (its angle over ``2π``), and the mixture ``Σ_i p_i D_i X Xᵀ D_i`` is exactly the
# closed-form NTK ``x_kᵀx_l (π − θ_kl)/(2π)``. Its value can only be above the optimal
# kernel's.
ntk = cn.solve("ntk", X, y, patterns=patterns, mu=mu)
p = ntk.weights["p"]
M = patterns.masks
K_p = (X @ X.T) * ((M * p) @ M.T)
print(f"max |Σ p_i K_i − NTK| = {np.abs(K_p - cn.ntk_gram(X)).max():.1e}")
print(f"J(p) = {ntk.objective:.8g} ≥ p_MKL(μ) = {p_mkl:.8g}")
assert ntk.objective >= p_mkl

# %%
# Reweighting, pure and finished
# ------------------------------
# ``finish="none"`` runs the pure iteration (sublinear near the optimum);
# the default ``finish="gated"`` hands over to the gated-ReLU fast solver once the
# support has settled, and stops on a certified gap.
pure = cn.reweight(X, y, patterns=patterns, mu=mu, finish="none", max_iter=300)
finished = cn.reweight(X, y, patterns=patterns, mu=mu)
print(pure)
print(finished.certificate)

# %%
# The picture
# -----------
# Left: the objective ``J(η_t)`` and the best certified lower bound at every step, from
# the NTK's value at ``t = 0`` down to ``p_MKL(μ)``. Middle: the certified relative gap
# of both runs. Right: the kernel weights of every pattern at the start (the NTK's
# ``p``) and at the end (the optimal ``η*``, sorted): the optimal kernel puts its weight
# on a few patterns — the neurons of the optimal network.
h, hf = pure.history, finished.history
fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), layout="constrained")
ax = axes[0]
ax.plot(h.iteration, h.objective, label="objective J(η_t)")
ax.plot(h.iteration, h.lower_bound, label="certified lower bound")
ax.axhline(p_mkl, color="k", ls="--", lw=1, label="p_MKL(μ) (from the gated optimum)")
ax.annotate("NTK: J(p)", (0, ntk.objective), textcoords="offset points", xytext=(10, -4))
ax.set(xlabel="iteration t", ylabel="value", title="from the NTK to the optimal kernel",
       ylim=(0.9 * h.lower_bound.min(), 1.05 * ntk.objective))
ax.legend(fontsize=8)

ax = axes[1]
ax.semilogy(h.iteration, h.gap, label="pure iteration")
ax.semilogy(hf.iteration, np.maximum(hf.gap, 1e-16), "o-", ms=3,
            label="finish='gated' (default)")
ax.axhline(1e-6, color="k", ls=":", lw=1, label="tolerance")
ax.set(xlabel="iteration t", ylabel="relative gap (J − lower bound) / J",
       title="certified at every step")
ax.legend(fontsize=8)

ax = axes[2]
angle = np.degrees(np.mod(np.arctan2(patterns.gates[1], patterns.gates[0]), 2 * np.pi))
order = np.argsort(angle)
ax.plot(angle[order], p[order], "k.-", ms=3, lw=0.8, label="NTK weights p (cell angle / 2π)")
ax.bar(angle[order], finished.eta[order], width=3, color="C1", label="optimal η*")
ax.set(xlabel="pattern (angle of its cell, degrees)", ylabel="kernel weight",
       title=f"{np.count_nonzero(finished.eta > 1e-8)} of {patterns.P} patterns carry the "
             "optimal kernel", xlim=(0, 360))
ax.legend(fontsize=8)
plt.show()
