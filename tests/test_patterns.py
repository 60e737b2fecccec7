"""Activation patterns: sampling, merging, and exact enumeration against brute force."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linprog

from convexnn import (
    InvalidInputError,
    ProblemTooLargeError,
    enumerate_patterns,
    patterns_from_gates,
    sample_patterns,
)
from convexnn.data import add_bias
from convexnn.patterns import count_arrangement_cells, unique_columns


def brute_force(X, draws=2_000_000, seed=0, chunk=250_000):
    """Distinct non-zero patterns hit by `draws` Gaussian gates."""
    rng = np.random.default_rng(seed)
    found = set()
    for _ in range(draws // chunk):
        masks = (X @ rng.standard_normal((X.shape[1], chunk))) >= 0
        first, _, _ = unique_columns(masks)
        found |= {masks[:, j].tobytes() for j in first if masks[:, j].any()}
    return found


def as_set(p):
    return {p.masks[:, j].tobytes() for j in range(p.P)}


def strict_margin(X, mask):
    """Largest t with s_k x_k^T g ≥ t, |g|∞ ≤ 1 — positive iff the cell is open and non-empty."""
    s = np.where(mask, 1.0, -1.0)
    d = X.shape[1]
    res = linprog(
        np.r_[np.zeros(d), -1.0],
        A_ub=np.hstack([-(s[:, None] * X), np.ones((X.shape[0], 1))]),
        b_ub=np.zeros(X.shape[0]),
        bounds=[(-1, 1)] * d + [(None, 1)],
    )
    return -res.fun


@pytest.mark.parametrize(
    "n, d, bias, seed",
    [(8, 2, False, 0), (12, 2, False, 1), (7, 2, True, 2), (7, 3, False, 0),
     (9, 3, False, 2), (6, 3, True, 3), (6, 4, False, 0)],
)
def test_enumeration_equals_brute_force(n, d, bias, seed):
    X = np.random.default_rng(seed).standard_normal((n, d))
    if bias:
        X = add_bias(X)
    p = enumerate_patterns(X)
    assert p.scope == "all" and p.method == "enumerate"
    assert as_set(p) == brute_force(X, seed=seed)
    assert np.array_equal(p.masks, p.masks_for(X))  # gates realise their patterns
    for j in range(p.P):
        assert strict_margin(X, p.masks[:, j]) > 1e-9


@pytest.mark.parametrize("n, d", [(10, 2), (9, 3), (8, 4), (7, 5)])
def test_general_position_cell_count(n, d):
    X = np.random.default_rng(n * d).standard_normal((n, d))
    p = enumerate_patterns(X)
    zero_cell = strict_margin(X, np.zeros(n, dtype=bool)) > 0
    assert p.P + int(zero_cell) == count_arrangement_cells(n, d)


def test_enumeration_with_degenerate_data_is_exact():
    rng = np.random.default_rng(5)
    base = rng.standard_normal((5, 3))
    X = np.vstack([base, 2 * base[:2], -base[2:3], np.zeros((1, 3)), base[0] + base[1]])
    assert as_set(enumerate_patterns(X)) == brute_force(X)
    # more than d-1 planes through one ray: coordinate and diagonal directions
    C = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1],
                  [1, 1, 1], [1, -1, 0]], float)
    p = enumerate_patterns(C)
    assert as_set(p) == brute_force(C)
    assert all(strict_margin(C, p.masks[:, j]) > 1e-9 for j in range(p.P))


def test_rank_deficient_data_uses_its_row_space():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((7, 2)) @ rng.standard_normal((2, 5))
    p = enumerate_patterns(X)
    assert as_set(p) == brute_force(X)
    assert p.probabilities is not None and p.probabilities.sum() == pytest.approx(1.0)


def test_two_dimensional_probabilities_are_arc_lengths():
    X = np.random.default_rng(0).standard_normal((6, 2))
    p = enumerate_patterns(X)
    probs = p.probabilities
    gates = np.random.default_rng(1).standard_normal((2, 400_000))
    masks = (X @ gates) >= 0
    freq = np.array([np.mean(np.all(masks == p.masks[:, [j]], axis=0)) for j in range(p.P)])
    assert np.max(np.abs(freq - probs)) < 5 * np.sqrt(0.25 / 400_000) * 2
    zero = np.mean(~masks.any(axis=0))
    # the dropped all-zero pattern keeps its mass: probabilities are NOT renormalised
    assert probs.sum() == pytest.approx(1.0 - zero, abs=5e-3)


def test_sampling_merges_duplicates_and_drops_zero():
    X = np.array([[1.0, 0.0], [2.0, 0.0], [-1.0, 0.0]])  # only 2 distinct non-zero patterns
    p = sample_patterns(X, 1000, seed=0)
    assert p.P == 2 and p.draws == 1000 and p.counts.sum() == 1000
    assert np.all(p.masks.any(axis=0))
    again = sample_patterns(X, 1000, seed=0)
    assert np.array_equal(p.gates, again.gates)
    assert np.allclose(p.frequencies.sum(), 1.0)


def test_ties_count_as_active_and_zero_pattern_dropped():
    X = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
    G = np.array([[0.0, 1.0, -1.0, 0.0], [1.0, 1.0, 0.0, 1.0]])
    p = patterns_from_gates(X, G)
    # gate (0,1): x1^T g = 0 is a tie → active
    assert p.masks[:, 0].tolist() == [True, True, False]
    # gates (1, 1) and the repeated (0, 1) give the same pattern: merged into the first
    assert p.P == 2 and p.counts.tolist() == [3, 1]
    assert np.array_equal(p.gates[:, 0], [0.0, 1.0])
    Z = np.array([[1.0, 1.0], [2.0, 1.0]])
    q = patterns_from_gates(Z, np.array([[-1.0], [-1.0]]))
    assert q.P == 0 and q.draws == 1


def test_pattern_errors():
    X = np.ones((4, 2))
    with pytest.raises(InvalidInputError, match="count"):
        sample_patterns(X, 0)
    with pytest.raises(InvalidInputError, match="count"):
        sample_patterns(X, 2.5)
    with pytest.raises(InvalidInputError, match=r"G must have shape \(d, m\) with d = 2"):
        patterns_from_gates(X, np.ones((3, 2)))
    with pytest.raises(InvalidInputError, match="NaN"):
        sample_patterns(np.full((2, 2), np.nan), 3)
    with pytest.raises(InvalidInputError, match="all zeros"):
        enumerate_patterns(np.zeros((3, 3)))
    big = np.random.default_rng(0).standard_normal((200, 6))
    with pytest.raises(ProblemTooLargeError, match=r"max_patterns.*sample_patterns"):
        enumerate_patterns(big)


def test_subset_keeps_columns_and_marks_scope():
    X = np.random.default_rng(0).standard_normal((8, 2))
    p = enumerate_patterns(X)
    s = p.subset(np.arange(3))
    assert s.P == 3 and s.scope == "sampled" and np.array_equal(s.masks, p.masks[:, :3])
    assert p.subset(np.arange(p.P)).scope == "all"
