"""The scikit-learn estimators: scikit-learn's own estimator checks, predictions on new
points against independent computations (the recovered networks, scikit-learn's
KernelRidge, the masked cross kernel), and the scikit-learn workflow (GridSearchCV,
Pipeline, clone, pickle, multi-output, string labels, pandas, sample_weight)."""

from __future__ import annotations

import pickle
import runpy
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.kernel_ridge import KernelRidge
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks
from sklearn.utils.validation import check_is_fitted

import convexnn as cn
from convexnn.data import add_bias
from convexnn.errors import InvalidInputError
from convexnn.estimators import analytic_kernel_ridge_certificate
from convexnn.formulations.mkl import mu_to_lam
from convexnn.kernels import kernel_ridge, ntk_weights
from convexnn.ops import masked_gram

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "plot_estimators_cv.py"

#: Every estimator with settings that keep scikit-learn's checks fast (few patterns).
ESTIMATORS = [
    cn.GatedReLURegressor(patterns=10),
    cn.GatedReLUClassifier(patterns=10),
    cn.GatedReLURegressorCV(patterns=10, lam_ratios=[0.3, 0.1], cv=2),
    cn.GatedReLUClassifierCV(patterns=10, lam_ratios=[0.3, 0.1], cv=2),
    cn.ReLURegressor(patterns=10),
    cn.ReLUClassifier(patterns=10),
    cn.NTKRegressor(),
    cn.NTKClassifier(),
    cn.NTKRegressor(kernel="patterns", patterns=10),
    cn.NTKClassifier(kernel="patterns", patterns=10),
    cn.OptimalKernelRegressor(patterns=10),
    cn.OptimalKernelClassifier(patterns=10),
]


@parametrize_with_checks(ESTIMATORS)
def test_scikit_learn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        # a solver's 'optimal_inaccurate' on the checks' tiny data; the certificate decides
        warnings.simplefilter("ignore", cn.InaccurateSolutionWarning)
        check(estimator)


@pytest.fixture(scope="module")
def cancer():
    """Breast cancer, split 3:1 (stratified), standardised on the training part."""
    X, y = load_breast_cancer(return_X_y=True)
    rng = np.random.default_rng(0)
    test = np.zeros(y.size, dtype=bool)
    for label in (0, 1):
        idx = np.flatnonzero(y == label)
        test[rng.choice(idx, idx.size // 4, replace=False)] = True
    scaler = StandardScaler().fit(X[~test])
    return scaler.transform(X[~test]), y[~test], scaler.transform(X[test]), y[test]


@pytest.fixture(scope="module")
def wine():
    X, y = load_wine(return_X_y=True)
    return StandardScaler().fit_transform(X), y


# ---------------------------------------------------------------------------
# Must show: predictions on new points against independent computations
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("cls, kwargs", [
    (cn.GatedReLUClassifier, {"patterns": 50}),
    (cn.ReLUClassifier, {"patterns": 10, "method": "fast"}),
    (cn.NTKClassifier, {"kernel": "patterns", "patterns": 50}),
    (cn.OptimalKernelClassifier, {"patterns": 50, "tol": 1e-8}),
])
def test_predictions_equal_the_recovered_network_on_test_points(cancer, cls, kwargs):
    """The estimator's scores (computed from the convex weights and the gates, or the
    kernel) equal the recovered network's output on points it never saw."""
    Xtr, ytr, Xte, _ = cancer
    est = cls(**kwargs).fit(Xtr, ytr)
    assert est.certificate_.certified
    scores, net = est.decision_function(Xte), est.network_.predict(Xte)
    assert np.abs(scores).max() > 0.1  # not a vacuous comparison of zeros
    np.testing.assert_allclose(scores, net, rtol=0, atol=1e-8)
    # the labels are the signs of those scores
    np.testing.assert_array_equal(est.predict(Xte), est.classes_[(net > 0).astype(int)])


def test_optimal_kernel_predicts_what_the_gated_network_predicts(cancer):
    """Kernel ridge with the optimal MKL kernel, ``K_η(Z, X)(K_η + μI)⁻¹y``, predicts what
    the certified gated-ReLU network at the matched ``λ = μ Σ||w_i||`` predicts — its own
    (the reweighting's finish) to 1e-8, and an independent group-lasso solve at the same λ
    to the accuracy both certificates allow.

    The kernel reproduces the network exactly when the weights satisfy the optimality
    conditions on their support exactly; the gap bounds the objective, not that residual,
    so the equality is shown at a certificate of 1e-8 (at the default 1e-6 it is ~1e-8).
    """
    Xtr, ytr, Xte, _ = cancer
    opt = cn.OptimalKernelClassifier(patterns=50, lam_ratio=0.1, tol=1e-8).fit(Xtr, ytr)
    assert opt.certificate_.certified and opt.solution_.certified
    np.testing.assert_allclose(opt.decision_function(Xte), opt.network_.predict(Xte),
                               rtol=0, atol=1e-8)
    # the exact λ ↔ μ map: λ = μ Σ||w_i||
    assert mu_to_lam(opt.mu_, opt.solution_.weights["W"]) == pytest.approx(opt.lam_, rel=1e-9)
    # an independent solve of the group lasso (another method) at the same λ
    gated = cn.GatedReLUClassifier(patterns=50, lam=opt.lam_, method="ipm",
                                   tol=1e-8).fit(Xtr, ytr)
    assert gated.certificate_.certified
    # on the training points the fit is unique: ||ŷ_a − ŷ_b||² ≤ 2 (gap_a + gap_b)
    bound = np.sqrt(2 * (opt.solution_.certificate.gap + gated.certificate_.gap))
    assert np.linalg.norm(opt.decision_function(Xtr) - gated.decision_function(Xtr)) <= bound
    np.testing.assert_allclose(opt.decision_function(Xte), gated.network_.predict(Xte),
                               rtol=0, atol=1e-6)
    np.testing.assert_array_equal(opt.predict(Xte), gated.predict(Xte))


def test_analytic_ntk_regressor_equals_scikit_learn_kernel_ridge():
    """``NTKRegressor`` = scikit-learn's ``KernelRidge(kernel="precomputed", alpha=μ)`` fed
    with ``ntk_gram`` — training and cross kernel — on data drawn here (two outputs)."""
    rng = np.random.default_rng(7)
    X, Z = rng.standard_normal((70, 5)), rng.standard_normal((25, 5))
    Y = np.column_stack([np.sin(X[:, 0]) + X[:, 1] ** 2, np.abs(X[:, 2])])
    for bias in (False, True):
        Xb = add_bias(X) if bias else X
        mu = 0.02 * np.linalg.norm(Xb, 2) ** 2
        est = cn.NTKRegressor(mu_ratio=0.02, bias=bias).fit(X, Y)
        assert est.mu_ == pytest.approx(mu, rel=1e-12)
        ref = KernelRidge(alpha=mu, kernel="precomputed").fit(cn.ntk_gram(X, bias=bias), Y)
        expect = ref.predict(cn.ntk_gram(X, Z, bias=bias))
        np.testing.assert_allclose(est.predict(Z), expect, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(est.dual_coef_, ref.dual_coef_, rtol=1e-9, atol=1e-12)
        # one output: shape (m,)
        one = cn.NTKRegressor(mu=mu, bias=bias).fit(X, Y[:, 0])
        np.testing.assert_allclose(one.predict(Z), expect[:, 0], rtol=1e-9, atol=1e-12)


def test_pattern_ntk_predicts_with_the_masked_cross_kernel(cancer):
    """``kernel="patterns"`` predicts ``K_p(Z, X) α`` with ``α = (K_p + μI)⁻¹y``: the cross
    kernel ``(Z Xᵀ) ∘ (M_Z diag(p) Mᵀ)`` from the stored gates, computed here."""
    Xtr, ytr, Xte, _ = cancer
    est = cn.NTKClassifier(kernel="patterns", patterns=40, mu_ratio=1e-3).fit(Xtr, ytr)
    pats = est.patterns_
    Xb, Zb = add_bias(Xtr), add_bias(Xte)
    p = ntk_weights(pats, Xb)[0]
    y = np.where(ytr == 1, 1.0, -1.0)[:, None]
    _, alpha = kernel_ridge(Xb, y, pats.masks, p, est.mu_)
    expect = masked_gram(Xb, pats.masks, p, Zb, (Zb @ pats.gates) >= 0) @ alpha
    np.testing.assert_allclose(est.decision_function(Xte), expect[:, 0], rtol=0, atol=1e-9)


def test_analytic_certificate_is_the_kernel_ridge_duality_gap():
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((40, 3)), rng.standard_normal(40)
    est = cn.NTKRegressor(mu=0.5, bias=False).fit(X, y)
    cert = est.certificate_
    assert cert.certified and cert.scope == "all"
    K = cn.ntk_gram(X)
    alpha = np.linalg.solve(K + 0.5 * np.eye(40), y)
    # at the optimum P = D = (μ/2)⟨y, α⟩ (docs/math/ntk.md)
    assert cert.objective == pytest.approx(0.25 * y @ alpha, rel=1e-10)
    assert cert.dual_objective == pytest.approx(0.25 * y @ alpha, rel=1e-10)
    # the certificate can fail: a perturbed α has a positive gap
    bad = analytic_kernel_ridge_certificate(K, y[:, None], alpha[:, None] * 1.01, 0.5)
    assert not bad.certified and bad.gap > 0 and bad.relative_gap > 1e-6


def test_uncertified_fit_warns_with_the_remedy():
    ds = cn.planted_relu(60, 4, seed=2)
    est = cn.OptimalKernelRegressor(patterns=20, options={"max_iter": 2, "finish": "none"})
    with pytest.warns(ConvergenceWarning, match="NOT certified.*max_iter"):
        est.fit(ds.X, ds.y)
    assert not est.certificate_.certified
    assert len(est.history_) == 3  # the NTK start and two updates


# ---------------------------------------------------------------------------
# The scikit-learn workflow
# ---------------------------------------------------------------------------


def test_grid_search_over_lam_ratio_in_a_pipeline():
    X, y = load_wine(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), cn.GatedReLUClassifier(patterns=20, method="fast"))
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    grid = {"gatedreluclassifier__lam_ratio": [0.3, 0.1, 0.03]}
    search = GridSearchCV(pipe, grid, cv=cv).fit(X, y)
    best = search.best_params_["gatedreluclassifier__lam_ratio"]
    # the search's score of the best value is the cross-validated accuracy at that value
    direct = cross_val_score(pipe.set_params(gatedreluclassifier__lam_ratio=best), X, y, cv=cv)
    assert search.best_score_ == pytest.approx(direct.mean(), abs=1e-12)
    # refit on everything: the same model as a direct fit
    refit = clone(pipe).fit(X, y)
    np.testing.assert_array_equal(search.predict(X), refit.predict(X))
    assert search.best_estimator_[-1].lam_ == pytest.approx(refit[-1].lam_, rel=1e-12)
    assert search.best_estimator_[-1].certificate_.certified


def test_cv_estimator_scores_every_ratio_as_cross_val_score_does(wine):
    """``GatedReLUClassifierCV`` (one warm-started path per fold) scores each ratio as
    scikit-learn's ``cross_val_score`` scores independent fits at that ratio."""
    X, y = wine
    ratios = [0.5, 0.1, 0.02]
    cv = StratifiedKFold(3, shuffle=True, random_state=1)
    est = cn.GatedReLUClassifierCV(lam_ratios=ratios, cv=cv, patterns=12,
                                   method="fast").fit(X, y)
    for j, r in enumerate(ratios):
        single = cn.GatedReLUClassifier(lam_ratio=r, patterns=12, method="ipm")
        np.testing.assert_array_equal(est.cv_scores_[j], cross_val_score(single, X, y, cv=cv))
    mean = est.cv_scores_.mean(axis=1)
    assert est.lam_ratio_ == max(r for r, m in zip(ratios, mean, strict=True)
                                 if m == mean.max())
    refit = cn.GatedReLUClassifier(lam_ratio=est.lam_ratio_, patterns=12).fit(X, y)
    assert est.lam_ == pytest.approx(refit.lam_, rel=1e-12)
    np.testing.assert_allclose(est.decision_function(X), refit.decision_function(X),
                               atol=1e-5)


def test_clone_and_pickle(wine):
    X, y = wine
    est = cn.OptimalKernelClassifier(patterns=15, lam_ratio=0.05).fit(X, y)
    fresh = clone(est)
    assert fresh.get_params() == est.get_params()
    with pytest.raises(NotFittedError):
        check_is_fitted(fresh)
    back = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(back.decision_function(X), est.decision_function(X))
    assert back.certificate_.relative_gap == est.certificate_.relative_gap
    assert back.history_.equals(est.history_)


@pytest.mark.parametrize("cls, kwargs", [
    (cn.GatedReLURegressor, {"patterns": 20}),
    (cn.ReLURegressor, {"patterns": 8, "method": "fast"}),
    (cn.NTKRegressor, {"kernel": "patterns", "patterns": 20}),
    (cn.OptimalKernelRegressor, {"patterns": 20}),
])
def test_multi_output_regression(cls, kwargs):
    ds = cn.planted_relu(80, 4, outputs=3, noise=0.1, seed=5)
    Z = np.random.default_rng(1).standard_normal((30, 4))
    est = cls(**kwargs).fit(ds.X, ds.y)
    assert ds.y.shape == (80, 3) and est.predict(Z).shape == (30, 3)
    assert est.certificate_.certified
    np.testing.assert_allclose(est.predict(Z), est.network_.predict(Z), rtol=0, atol=1e-8)
    assert est.score(ds.X, ds.y) > 0.5  # R² of the fit, averaged over the outputs


def test_string_labels_give_the_same_model_as_integer_labels(wine):
    X, y = wine
    names = np.array(["barolo", "grignolino", "barbera"])[y]
    a = cn.GatedReLUClassifier(patterns=20).fit(X, y)
    b = cn.GatedReLUClassifier(patterns=20).fit(X, names)
    assert list(b.classes_) == ["barbera", "barolo", "grignolino"]  # sorted labels
    # class k of a is names[k]; b orders its columns by the sorted names
    order = np.argsort(["barolo", "grignolino", "barbera"])
    np.testing.assert_allclose(b.decision_function(X), a.decision_function(X)[:, order],
                               atol=1e-8)
    np.testing.assert_array_equal(b.predict(X), np.array(["barolo", "grignolino",
                                                          "barbera"])[a.predict(X)])


def test_binary_scores_are_one_column_for_the_second_class(cancer):
    Xtr, ytr, Xte, yte = cancer
    labels = np.where(ytr == 1, "benign", "malignant")
    est = cn.NTKClassifier().fit(Xtr, labels)
    assert list(est.classes_) == ["benign", "malignant"]
    scores = est.decision_function(Xte)
    assert scores.shape == (Xte.shape[0],)
    np.testing.assert_array_equal(est.predict(Xte),
                                  np.where(scores > 0, "malignant", "benign"))
    assert est.score(Xte, np.where(yte == 1, "benign", "malignant")) > 0.9


def test_pandas_input_records_feature_names():
    data = load_breast_cancer(as_frame=True)
    X, y = data.data.iloc[:200], data.target.iloc[:200]
    pipe = make_pipeline(StandardScaler(), cn.GatedReLUClassifier(patterns=10)).fit(X, y)
    assert list(pipe.feature_names_in_) == list(X.columns)
    est = cn.NTKRegressor().fit(X, y.astype(float))
    assert list(est.feature_names_in_) == list(X.columns)
    np.testing.assert_array_equal(est.predict(X), est.predict(X.copy()))
    with pytest.raises(ValueError, match="feature names"):
        est.predict(X[X.columns[::-1]])


def test_sample_weight_is_refused_with_the_reason():
    ds = cn.planted_relu(30, 3, seed=0)
    for est in (cn.GatedReLURegressor(patterns=5), cn.NTKRegressor()):
        with pytest.raises(InvalidInputError, match="sample_weight.*unweighted"):
            est.fit(ds.X, ds.y, sample_weight=np.ones(30))
        with pytest.raises(InvalidInputError, match="no fit parameters"):
            est.fit(ds.X, ds.y, weights=np.ones(30))


def test_bad_parameters_name_the_argument():
    ds = cn.planted_relu(30, 3, seed=0)
    with pytest.raises(InvalidInputError, match="at most one of"):
        cn.GatedReLURegressor(lam=1.0, lam_ratio=0.1).fit(ds.X, ds.y)
    with pytest.raises(InvalidInputError, match="at most one of"):
        cn.OptimalKernelRegressor(mu=1.0, lam_ratio=0.1).fit(ds.X, ds.y)
    with pytest.raises(InvalidInputError, match="kernel"):
        cn.NTKRegressor(kernel="rbf").fit(ds.X, ds.y)
    with pytest.raises(InvalidInputError, match="options"):
        cn.GatedReLURegressor(options="fast").fit(ds.X, ds.y)
    with pytest.raises(InvalidInputError, match="unexpected option"):
        cn.GatedReLURegressor(options={"nonsense": 1}).fit(ds.X, ds.y)
    with pytest.raises(InvalidInputError, match="tol"):
        cn.NTKRegressor(tol=2.0).fit(ds.X, ds.y)
    with pytest.raises(InvalidInputError, match="random_state"):
        cn.GatedReLURegressor(random_state=-1).fit(ds.X, ds.y)


def test_optimal_kernel_at_lam_max_is_the_zero_model():
    ds = cn.planted_relu(40, 3, seed=1)
    est = cn.OptimalKernelRegressor(patterns=10, lam_ratio=1.5).fit(ds.X, ds.y)
    assert est.certificate_.certified and not np.isfinite(est.mu_)
    np.testing.assert_array_equal(est.predict(ds.X), 0.0)


# ---------------------------------------------------------------------------
# save / verify a fitted estimator
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("cls, kwargs", [
    (cn.GatedReLUClassifier, {"patterns": 15}),
    (cn.NTKClassifier, {"kernel": "patterns", "patterns": 15}),
    (cn.OptimalKernelClassifier, {"patterns": 15}),
])
def test_save_and_verify_a_fitted_estimator(wine, tmp_path, cls, kwargs):
    X, y = wine
    labels = np.array(["a", "b", "c"])[y]
    est = cls(**kwargs).fit(X, labels)
    folder = cn.save(est, tmp_path / "result", (X, labels))
    assert cn.verify(folder, est.certified_data(X, labels)).valid
    assert cn.verify(est, (X, labels)).valid
    # the labels are not the targets the certificate is about
    wrong = cn.verify(folder, (X, y.astype(float)))
    assert not wrong.valid and "data_sha256" in " ".join(wrong.failed)


def test_the_analytic_ntk_has_no_program_to_save(wine, tmp_path):
    X, y = wine
    est = cn.NTKClassifier().fit(X, y)
    with pytest.raises(InvalidInputError, match="kernel='patterns'"):
        cn.save(est, tmp_path / "result", (X, y))


# ---------------------------------------------------------------------------
# The example
# ---------------------------------------------------------------------------


def test_example_runs_and_the_optimal_kernel_matches_the_gated_network():
    compare = runpy.run_path(str(EXAMPLE), run_name="example")["compare"]
    rows, agreement = compare(patterns=5, folds=2)
    acc = {r["model"]: r["accuracy"] for r in rows}
    assert len(acc) == 6 and all(0.5 < a <= 1.0 for a in acc.values())
    assert acc["optimal kernel (reweighting)"] == acc["gated ReLU network"]
    assert agreement < 1e-7
    assert all(r["certified folds"] == "2/2" for r in rows)
