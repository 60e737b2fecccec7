"""Global optimality over every cell of the arrangement, streamed: the chunked enumeration
against the enumeration at once, the streamed check against the check over all cells,
and pattern augmentation that streams the arrangement against the program solved over
every pattern by the interior point."""

from __future__ import annotations

import numpy as np
import pytest

import convexnn as cn
import convexnn.global_check as gc
import convexnn.methods.augment as augment_module
from convexnn.patterns import Arrangement, arrangement_size, enumerate_patterns, iter_arrangement
from convexnn.problem import prepare


def _cells(pats):
    return [pats.masks[:, j].tobytes() for j in range(pats.P)]


@pytest.mark.parametrize("n, d, bias", [(30, 3, False), (20, 3, True), (16, 4, False)])
def test_chunks_are_exactly_the_cells(n, d, bias):
    X = np.random.default_rng(n + d).standard_normal((n, d))
    if bias:
        X = np.hstack([X, np.ones((n, 1))])
    full = enumerate_patterns(X)
    streamed = [cell for part in iter_arrangement(X, chunk=5) for cell in _cells(part)]
    assert len(streamed) == len(set(streamed))  # no cell twice ...
    assert set(streamed) == set(_cells(full))  # ... and every cell once
    for part in iter_arrangement(X, chunk=50):  # every gate realises its mask
        assert np.array_equal(part.masks, X @ part.gates >= 0) and part.scope == "sampled"
    assert arrangement_size(X) >= full.P


def test_arrangement_keeps_the_cells_packed_between_scans():
    X = np.random.default_rng(1).standard_normal((25, 3))
    cells = Arrangement(X, chunk=7)
    first = [c for part in cells.chunks() for c in _cells(part)]
    again = [c for part in cells.chunks() for c in _cells(part)]
    assert first == again and cells.cells == len(first) == enumerate_patterns(X).P
    nothing_kept = Arrangement(X, chunk=7, keep_bytes=0)
    assert [c for part in nothing_kept.chunks() for c in _cells(part)] == first
    with pytest.raises(cn.ProblemTooLargeError, match="max_patterns"):
        next(iter_arrangement(X, max_patterns=10))


@pytest.mark.parametrize("form", ["gated_relu", "relu"])
def test_streamed_check_equals_the_check_over_all_cells(form):
    ds = cn.planted_relu(40, 3, seed=4)
    sol = cn.solve(form, ds.X, ds.y, patterns=15, lam_ratio=0.05)
    data = prepare(ds.X, ds.y, patterns=sol.patterns)
    every = enumerate_patterns(data.X)
    full = gc.check_patterns(form, data, sol.weights, sol.lam, every)
    streamed = gc.scan_arrangement(form, data, sol.weights, sol.lam, keep=5)
    assert not full.passed and not streamed.passed and streamed.scope == "all"
    assert streamed.lower_bound == pytest.approx(full.lower_bound, rel=1e-10)
    assert streamed.max_violation == pytest.approx(full.max_violation, rel=1e-9)
    assert streamed.checked == full.checked
    # the five most violated cells, most violated first, with their exact values
    assert streamed.violating.P == 5
    assert np.allclose(streamed.violations, full.violations[:5], rtol=1e-9)
    assert set(_cells(streamed.violating)) <= set(_cells(full.violating))


def test_relu_bounds_are_exact_above_the_threshold():
    ds = cn.planted_relu(60, 4, seed=2)
    data = prepare(ds.X, ds.y, patterns=80)
    relu = cn.REGISTRY["relu"]
    R = np.random.default_rng(0).standard_normal((60, 1))
    exact = relu.dual_constraint_values(data.X, data.M, R)
    threshold = float(np.quantile(exact, 0.6))
    bounds = relu.dual_constraint_bounds(data.X, data.M, R, threshold)
    above = exact > threshold * (1 + 1e-9)
    assert above.any() and np.allclose(bounds[above], exact[above], rtol=1e-9)
    assert np.all(bounds >= exact * (1 - 1e-9))  # upper bounds everywhere ...
    assert np.all(bounds[~above] <= threshold * (1 + 1e-9))  # ... at most the threshold


@pytest.mark.parametrize("form", ["gated_relu", "relu"])
def test_augmentation_streaming_the_arrangement_reaches_the_global_optimum(form, monkeypatch):
    # a small arrangement (~900 cells) takes the streamed path when the threshold is low
    monkeypatch.setattr(augment_module, "STREAM_ABOVE", 100)
    monkeypatch.setattr(gc, "STREAM_ABOVE", 100)
    ds = cn.planted_relu(30, 3, seed=6)
    full = cn.solve(form, ds.X, ds.y, patterns="all", lam_ratio=0.05, method="ipm", tol=1e-8)
    start = cn.sample_patterns(ds.X, 5, seed=0)
    sol = cn.solve(form, ds.X, ds.y, patterns=start, lam=full.lam, method="fast", augment=True,
                   candidates="all", max_rounds=40)
    assert sol.certified and sol.certificate.scope == "all"
    assert sol.objective == pytest.approx(full.objective, rel=1e-6)
    assert sol.certificate.dual_objective <= full.objective * (1 + 1e-9)
    assert sol.info["augment"]["global_check"]["checked"] >= full.patterns.P
    # the public check, streamed as well, agrees
    check = cn.certify_global(sol, ds.X, ds.y, candidates="all")
    assert check.passed and check.scope == "all" and check.checked_count is not None
