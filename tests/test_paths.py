"""``solve_path`` for every formulation: each value certified and equal to an independent
single solve at that value (warm starts and a shared build must not change an answer)."""

from __future__ import annotations

import numpy as np
import pytest

import convexnn as cn


@pytest.fixture(scope="module")
def problem():
    ds = cn.planted_relu(30, 3, neurons=2, noise=0.1, seed=8)
    pats = cn.sample_patterns(ds.X, 10, seed=2)
    return ds.X, ds.y, pats


@pytest.mark.parametrize("formulation, reg, single, method", [
    ("relu", "lam", "relu", "ipm"),
    ("relu", "lam", "relu", "fast"),
    ("reweight", "lam", "gated_relu", "auto"),
    ("mkl", "mu", "mkl", "auto"),
    ("ntk", "mu", "ntk", "auto"),
])
def test_every_value_of_the_path_is_certified_and_equals_a_single_solve(
        problem, formulation, reg, single, method):
    X, y, pats = problem
    ratios = [0.5, 0.02, 0.1]  # not sorted: the path returns them in the given order
    path = cn.solve_path(formulation, X, y, patterns=pats, method=method,
                         **{f"{reg}_ratios": ratios})
    assert len(path) == 3 and path.certified
    assert path.formulation == formulation
    scale = cn.REGISTRY[formulation].reg_scale(cn.problem.prepare(X, y, patterns=pats))
    np.testing.assert_allclose(path.regs, np.array(ratios) * scale, rtol=1e-12)
    for value, sol in zip(path.regs, path, strict=True):
        assert sol.reg == value and sol.certified and sol.formulation == formulation
        ref = cn.solve(single, X, y, patterns=pats, **{reg: float(value)})
        assert ref.certified
        # both are certified to 1e-6 of their own objective: they agree to about that
        assert sol.objective == pytest.approx(ref.objective, rel=3e-6)
    # a smaller regularisation never has a larger optimum
    by_reg = np.argsort(path.regs)
    assert np.all(np.diff(path.objectives[by_reg]) >= -1e-9 * path.objectives.max())
    assert path.relative_gaps.max() <= 1e-6
    assert "certified 3/3" in repr(path)


def test_path_arguments_are_checked(problem):
    X, y, pats = problem
    with pytest.raises(cn.InvalidInputError, match="either"):
        cn.solve_path("relu", X, y, patterns=pats, lams=[1.0], lam_ratios=[0.1])
    with pytest.raises(cn.InvalidInputError, match="mu_ratios"):
        cn.solve_path("mkl", X, y, patterns=pats, mu_ratios=[0.1, -1.0])
    with pytest.raises(cn.InvalidInputError, match="non-empty"):
        cn.solve_path("ntk", X, y, patterns=pats, mu_ratios=[])


def test_mu_formulations_take_mus_and_mu_ratios_as_in_solve(problem):
    # solve() accepts mu=/mu_ratio= for ntk and mkl, and solve_path's own messages name
    # mus/mu_ratios: both spellings give the same path
    X, y, pats = problem
    a = cn.solve_path("mkl", X, y, patterns=pats, mu_ratios=[0.1, 0.3])
    b = cn.solve_path("mkl", X, y, patterns=pats, lam_ratios=[0.1, 0.3])
    np.testing.assert_array_equal(a.regs, b.regs)
    np.testing.assert_allclose(a.objectives, b.objectives, rtol=1e-9)
    with pytest.raises(cn.InvalidInputError, match="not both"):
        cn.solve_path("ntk", X, y, patterns=pats, mus=[1.0], lam_ratios=[0.1])
