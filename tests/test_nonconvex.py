"""Direct training of the non-convex networks (convexnn.nonconvex): its gradient against
central finite differences, its networks against the independent objective of
convexnn.networks, and its objective against the certified lower bound of the convex
programs (docs/math/relu.md, docs/math/gated_relu.md), which no network can beat."""

from __future__ import annotations

import numpy as np
import pytest

import convexnn as cn
from convexnn.errors import InvalidInputError
from convexnn.nonconvex import objective_and_gradient, train_network


def _finite_differences(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[idx] = h
        g[idx] = (f(x + e) - f(x - e)) / (2 * h)
    return g


@pytest.mark.parametrize("kind", ["gated_relu", "relu"])
@pytest.mark.parametrize("c", [1, 3])
def test_gradient_matches_finite_differences(kind, c):
    rng = np.random.default_rng(7)
    n, d, m, lam = 12, 3, 5, 0.3
    X, Y = rng.standard_normal((n, d)), rng.standard_normal((n, c))
    U, A = rng.standard_normal((d, m)), rng.standard_normal((m, c))
    G = rng.standard_normal((d, m)) if kind == "gated_relu" else None
    assert np.min(np.abs(X @ U)) > 1e-3  # away from the kinks of the ReLU
    _, gU, gA = objective_and_gradient(kind, X, Y, lam, U, A, G)
    fdU = _finite_differences(lambda V: objective_and_gradient(kind, X, Y, lam, V, A, G)[0], U)
    fdA = _finite_differences(lambda B: objective_and_gradient(kind, X, Y, lam, U, B, G)[0], A)
    np.testing.assert_allclose(gU, fdU, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(gA, fdA, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind", ["gated_relu", "relu"])
def test_recorded_objective_is_the_networks_objective(kind):
    data = cn.planted_relu(n=30, d=3, neurons=2, noise=0.1, seed=1)
    run = train_network(kind, data.X, data.y, 0.2, 8, epochs=50, lr=0.01, seed=3)
    assert run.objectives.shape == (51,) and run.kind == kind
    # convexnn.networks computes f and the penalty on its own
    assert run.network.objective(data.X, data.y, 0.2) == pytest.approx(run.objective,
                                                                       rel=1e-12)
    assert run.network.predict(data.X).shape == (30,)
    assert run.objective < run.objectives[0]
    again = train_network(kind, data.X, data.y, 0.2, 8, epochs=50, lr=0.01, seed=3)
    np.testing.assert_array_equal(again.objectives, run.objectives)  # seeded
    assert "TrainResult(" in repr(run) and f"{run.objective:.10g}" in repr(run)


@pytest.mark.parametrize("optimizer", ["adam", "gd"])
def test_relu_training_never_beats_the_certified_global_optimum(optimizer):
    """d = 2 with every pattern of the arrangement: the convex optimum is the global
    optimum of training, and its dual objective is a lower bound on every network."""
    data = cn.planted_relu(n=40, d=2, neurons=3, noise=0.1, seed=0)
    sol = cn.solve("relu", data.X, data.y, patterns="all", lam_ratio=0.1)
    cert = sol.certificate
    assert cert.certified and cert.scope == "all"
    lr = 0.02 if optimizer == "adam" else 0.002
    best = np.inf
    for seed in range(3):
        for width in (2, 20):
            run = train_network("relu", data.X, data.y, sol.lam, width, epochs=1500, lr=lr,
                                seed=seed, optimizer=optimizer)
            assert run.best_objective >= cert.dual_objective - 1e-12 * abs(cert.objective)
            best = min(best, run.best_objective)
    # and gradient training does get there on this easy instance
    assert best <= cert.objective * (1 + 1e-4)


def test_gated_training_never_beats_the_program_over_its_gates():
    data = cn.planted_relu(n=40, d=3, neurons=3, noise=0.1, seed=2)
    lam = 0.5
    run = train_network("gated_relu", data.X, data.y, lam, 10, epochs=1500, lr=0.02, seed=0)
    patterns = cn.patterns_from_gates(data.X, run.network.gates)
    sol = cn.solve("gated_relu", data.X, data.y, patterns=patterns, lam=lam)
    assert sol.certificate.certified
    assert run.best_objective >= sol.certificate.dual_objective * (1 - 1e-12)


def test_bad_arguments_are_named():
    data = cn.planted_relu(n=10, d=2, seed=0)
    cases = [
        (dict(kind="sigmoid"), "kind"),
        (dict(optimizer="sgd"), "optimizer"),
        (dict(width=0), "width"),
        (dict(epochs=0), "epochs"),
        (dict(lr=-1.0), "lr"),
        (dict(lam=-1.0), "lam"),
        (dict(seed=-2), "seed"),
    ]
    for change, name in cases:
        args = dict(kind="relu", lam=0.1, width=3, epochs=5, lr=0.01, seed=0) | change
        with pytest.raises(InvalidInputError, match=name):
            train_network(args.pop("kind"), data.X, data.y, args.pop("lam"), args.pop("width"),
                          **args)
    with pytest.raises(InvalidInputError, match="smaller lr"):
        train_network("relu", data.X, data.y, 0.1, 3, epochs=200, lr=1e3, optimizer="gd")
