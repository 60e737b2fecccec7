"""Shared fixtures: small seeded problems built by the tests themselves."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import convexnn as cn

# The UCI collection is not shipped: tests that need it use $CONVEXNN_UCI, pointed here at
# the copy beside the checkout when there is one (they skip without it).
_SHARED_UCI = Path(__file__).resolve().parents[2] / "shared" / "data" / "uci"
if not os.environ.get("CONVEXNN_UCI") and _SHARED_UCI.is_dir():
    os.environ["CONVEXNN_UCI"] = str(_SHARED_UCI)


@pytest.fixture(scope="session")
def small():
    """A planted-ReLU problem with n=60, d=4 and 40 sampled patterns."""
    ds = cn.planted_relu(60, 4, neurons=3, noise=0.1, seed=3)
    pats = cn.sample_patterns(ds.X, 40, seed=1)
    return ds.X, ds.y, pats


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
