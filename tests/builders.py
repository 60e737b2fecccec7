"""Test problems built from a small spec dict (n, d, P, c, bias, seed)."""

from __future__ import annotations

import convexnn as cn
from convexnn.problem import prepare


def planted_problem(spec: dict):
    """A planted-ReLU data set and its prepared problem (patterns sampled or "all")."""
    ds = cn.planted_relu(spec["n"], spec["d"], outputs=spec["c"], seed=spec["seed"])
    return ds, prepare(ds.X, ds.y, patterns=spec["P"], bias=spec["bias"])
