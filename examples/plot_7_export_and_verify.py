"""
Exporting a certified optimum and verifying it
==============================================

A certificate is worth something only if someone else can check it. :func:`convexnn.save`
writes a result as three files — ``certificate.json`` (the claims), ``solution.npz`` (the
weights, the dual point, the patterns and the network, plain arrays that load without
pickle) and ``summary.md`` — and :func:`convexnn.verify` re-derives every number from
the arrays and the data alone, with no solver. A result that was edited afterwards fails
verification and says which check caught it.
"""

# %%
# Solve and save
# --------------
import json
import shutil
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import convexnn as cn

data = cn.planted_relu(n=40, d=2, neurons=3, noise=0.1, seed=0)
X, y = data.X, data.y
sol = cn.solve("relu", X, y, patterns="all", lam_ratio=0.1)
folder = Path(tempfile.mkdtemp()) / "relu-2d"
cn.save(sol, folder, (X, y))
print(sorted(p.name for p in folder.iterdir()))
record = json.loads((folder / "certificate.json").read_text())
print({k: record[k] for k in ("formulation", "objective", "dual_objective", "relative_gap",
                              "certified", "scope")})

# %%
# The exported network is plain arrays
# ------------------------------------
# Anyone can evaluate it without convexnn: ``f(x) = (xᵀU)₊ A``.
with np.load(folder / "solution.npz", allow_pickle=False) as arrays:
    print([k for k in arrays.files if k.startswith("network.")])
    U, A = arrays["network.U"], arrays["network.A"]
by_hand = np.maximum(X @ U, 0.0) @ A
assert np.allclose(by_hand[:, 0], sol.network.predict(X))

# %%
# Verify, then tamper
# -------------------
# Two edited copies: one weight of the solution changed by 1%, and a claim of the
# certificate (its relative gap) made to look better than it is.
original = cn.verify(folder, (X, y))
print(original)

edited_weight = folder.with_name("edited-weight")
shutil.copytree(folder, edited_weight)
with np.load(edited_weight / "solution.npz", allow_pickle=False) as arrays:
    saved = {k: arrays[k] for k in arrays.files}
block = int(np.argmax(np.abs(saved["weights.V"]).sum(axis=(1, 2))))
saved["weights.V"][block] *= 1.01
np.savez(edited_weight / "solution.npz", **saved)

edited_claim = folder.with_name("edited-claim")
shutil.copytree(folder, edited_claim)
claims = json.loads((edited_claim / "certificate.json").read_text())
claims["relative_gap"] = 0.0
(edited_claim / "certificate.json").write_text(json.dumps(claims, indent=2))

results = {"as saved": original,
           "a weight edited": cn.verify(edited_weight, (X, y)),
           "a claim edited": cn.verify(edited_claim, (X, y))}
for label, result in results.items():
    print(f"{label:>16}: {'VALID' if result.valid else 'INVALID'}; failed {result.failed}")
assert original.valid and not results["a weight edited"].valid
assert not results["a claim edited"].valid

# %%
# The picture
# -----------
# Every check ``verify`` made (rows) for each copy (columns): green passed, red failed.
names = [c.name for c in original.checks]
grid = np.array([[next((c.ok for c in result.checks if c.name == name), np.nan)
                  for result in results.values()] for name in names], dtype=float)
fig, ax = plt.subplots(figsize=(6.5, 0.28 * len(names) + 1.5), layout="constrained")
ax.imshow(grid, cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
ax.set(xticks=range(len(results)), xticklabels=list(results), yticks=range(len(names)),
       yticklabels=names, title="convexnn.verify: every number re-derived")
ax.tick_params(axis="y", labelsize=8)
plt.show()
