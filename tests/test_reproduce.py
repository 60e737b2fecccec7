"""The paper's claims as result sets (quick versions): every number they print is checked
against an independent truth here, not against the code that printed it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from cli_helpers import run, uci_available

from convexnn.reproduce.consistency import theory_lambda


def test_ntk_identity_quick(tmp_path, capsys):
    code, _, err = run(["reproduce", "ntk-identity", "--quick", "--out", tmp_path / "c1"],
                       capsys)
    assert code == 0, err
    exact = pd.read_csv(tmp_path / "c1" / "exact.csv")
    assert (exact["max_relative_difference"] < 1e-12).all()
    # with a bias column the all-zero pattern has mass: the sum stays below one
    assert (exact.loc[exact["bias"], "probability_mass"] < 1).all()
    assert np.allclose(exact.loc[~exact["bias"], "probability_mass"], 1.0)
    mc = pd.read_csv(tmp_path / "c1" / "monte_carlo.csv")
    assert (mc["frequencies_vs_empirical"] < 1e-12).all()
    slope = json.loads((tmp_path / "c1" / "reproduce.json").read_text())["monte_carlo_slope"]
    assert -0.75 < slope < -0.3  # N^(-1/2), on a few widths and seeds


@pytest.mark.skipif(not uci_available(), reason="the UCI collection is not available")
def test_ntk_vs_optimal_quick(tmp_path, capsys):
    code, _, err = run(["reproduce", "ntk-vs-optimal", "--quick", "--out", tmp_path / "c2"],
                       capsys)
    assert code == 0, err
    obj = pd.read_csv(tmp_path / "c2" / "objectives.csv")
    assert obj["ntk_certified"].all() and obj["optimal_certified"].all()
    # C2 from the two certificates: J(p) is never below the optimal kernel's lower bound
    assert (obj["ntk_objective"] >= obj["optimal_lower_bound"]).all()
    w = pd.read_csv(tmp_path / "c2" / "kernel_weights.csv")
    assert ((w["total_variation"] >= 0) & (w["total_variation"] <= 1)).all()
    assert (w["active_optimal"] <= w["patterns"]).all()


def test_consistency_quick(tmp_path, capsys):
    code, _, err = run(["reproduce", "consistency", "--quick", "--out", tmp_path / "cons"],
                       capsys)
    assert code == 0, err
    rows = pd.read_csv(tmp_path / "cons" / "prediction_error.csv")
    assert rows["certified"].all()
    med = rows.groupby("n")["prediction_error"].median()
    assert med.iloc[-1] < med.iloc[0]  # more data, smaller error


def test_theory_lambda_bounds_the_noise_correlation():
    """The λ of the consistency set is ≥ 2 max_i ‖(D_iX)ᵀσε‖ in (at least) 1 − 1/P of
    draws: checked by simulation, with the masks built here from raw gates."""
    rng = np.random.default_rng(0)
    n, d, P, sigma = 300, 5, 40, 0.7
    X = rng.standard_normal((n, d))
    M = (X @ rng.standard_normal((d, P))) >= 0
    lam = theory_lambda(X, M, sigma)
    misses = 0
    for _ in range(200):
        eps = sigma * rng.standard_normal(n)
        top = max(np.linalg.norm(X[M[:, i]].T @ eps[M[:, i]]) for i in range(P))
        misses += 2 * top > lam
    assert misses / 200 <= 1 / P + 0.02
