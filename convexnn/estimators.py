"""scikit-learn estimators for every model, each with the numpy certificate of its fit.

A regressor and a classifier per model:

* ``GatedReLURegressor`` / ``GatedReLUClassifier`` — the certified group lasso
  (``gated_relu``); ``GatedReLURegressorCV`` / ``GatedReLUClassifierCV`` choose its λ by
  cross-validation on a warm-started path (like ``LassoCV``);
* ``ReLURegressor`` / ``ReLUClassifier`` — the certified cone-constrained group lasso;
* ``NTKRegressor`` / ``NTKClassifier`` — NTK kernel ridge: the analytic infinite-width
  kernel, or ``K_p`` over the sampled patterns;
* ``OptimalKernelRegressor`` / ``OptimalKernelClassifier`` — kernel ridge with the optimal
  MKL kernel, found by reweighting from the NTK weights.

They fit with :func:`convexnn.solve` / :func:`convexnn.reweight` and predict on new points
through the stored gates: a new point ``z`` gets the pattern ``1[zᵀg_i ≥ 0]`` of every
stored gate (:meth:`~convexnn.patterns.Patterns.masks_for`), so the gated models predict

    f(z) = Σ_i 1[zᵀg_i ≥ 0] zᵀW_i                     (W the certified weights)

the ReLU models ``f(z) = Σ_i (zᵀv_i)₊ − (zᵀu_i)₊`` (a ReLU neuron is its own gate),
and the kernel models ``f(z) = K(z, X) α`` with ``α = (K + μI)⁻¹Y`` and the cross kernel
:func:`~convexnn.kernels.ntk_gram` ``(X, Z)`` (analytic NTK) or
:func:`~convexnn.ops.masked_gram` ``(Z Xᵀ) ∘ (M_Z diag(η) Mᵀ)`` (pattern kernels).
Classifiers train on ±1 targets with the squared loss — a single column ``+1`` for
``classes_[1]`` with two classes, one ±1 column per class otherwise — and predict the
sign, or the argmax, of :meth:`decision_function`.

Every fitted estimator exposes ``certificate_``, the numpy certificate of the program it
solved, and warns with :class:`~sklearn.exceptions.ConvergenceWarning` when that
certificate does not reach ``tol``. ``convexnn.save(estimator, DIR, (X, y))`` saves its
certified optimum (``solution_``) and ``convexnn.verify(estimator, (X, y))`` re-derives it.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np
import scipy.linalg as sla
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import r2_score
from sklearn.model_selection import check_cv
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from .certificate import Certificate, best_candidate, best_multiple, make_certificate
from .data import add_bias
from .errors import InvalidInputError
from .formulations import Formulation, get_formulation
from .kernels import kernel_ridge, mu_scale, ntk_gram
from .methods import reweight as reweight_method
from .networks import PRUNE_RATIO, prune_threshold
from .ops import forward, group_norms, masked_gram
from .path import solve_path
from .problem import ProblemData, prepare
from .solution import Solution
from .solvers import resolve_solver
from .solving import solve_data
from .threads import blas_threads
from .validation import boolean, choice, positive, tolerance
from .validation import seed as check_seed

__all__ = [
    "GatedReLURegressor",
    "GatedReLUClassifier",
    "GatedReLURegressorCV",
    "GatedReLUClassifierCV",
    "ReLURegressor",
    "ReLUClassifier",
    "NTKRegressor",
    "NTKClassifier",
    "OptimalKernelRegressor",
    "OptimalKernelClassifier",
    "analytic_kernel_ridge_certificate",
]

#: ``lam_ratio`` of the network and optimal-kernel models when no regularisation is given.
DEFAULT_LAM_RATIO = 0.1
#: ``mu_ratio`` of the NTK models when no regularisation is given (relative to ``||X||₂²``).
DEFAULT_MU_RATIO = 1e-3
#: BLAS threads while fitting and predicting: the kernels and factorisations are small,
#: and on a shared machine waiting threads made them 5–15× slower (:mod:`convexnn.threads`).
BLAS_THREADS = 1


# ---------------------------------------------------------------------------
# Helpers shared by every model
# ---------------------------------------------------------------------------


def _seed(random_state: Any) -> int | None:
    """An integer seed or None from ``random_state`` (an int, None or a RandomState)."""
    if random_state is None or isinstance(random_state, numbers.Integral):
        return check_seed(random_state, "random_state")
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


def _options(options: Any) -> dict[str, Any]:
    """A copy of the ``options`` parameter (None → no options)."""
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise InvalidInputError(f"options must be a dict of method options or None; got "
                                f"{type(options).__name__}.")
    return dict(options)


def _one_of(values: dict[str, Any], default: tuple[str, float]) -> tuple[str, float]:
    """The single regularisation argument given (name, value), or ``default``."""
    given = {k: v for k, v in values.items() if v is not None}
    if len(given) > 1:
        raise InvalidInputError(
            f"give at most one of {list(values)}; got {sorted(given)}. Set the others to None.")
    return next(iter(given.items())) if given else default


def _resolve(form: Formulation, data: ProblemData, name: str, value: float) -> float:
    """The regularisation of the argument ``name`` given (:func:`_one_of`): ``value``
    itself, or ``value · reg_max(data)`` for a ``*_ratio`` argument."""
    if name.endswith("_ratio"):
        return form.resolve_reg(data, None, value)
    return form.resolve_reg(data, value, None)


def _gated_scores(solution: Solution, Z: np.ndarray, prune: float = PRUNE_RATIO
                  ) -> np.ndarray:
    """``Σ_i 1[zᵀg_i ≥ 0] zᵀW_i`` (m, c): the convex model on new points through its gates.

    Groups with ``||W_i|| ≤ prune · max_j ||W_j||`` are left out, as in the recovered
    network (:data:`~convexnn.networks.PRUNE_RATIO`): they are solver noise, and on a
    point no kept gate activates the score is then exactly 0, not the sign of noise.
    (The NTK's closed-form kernel ridge is dense and noise-free: ``prune=0``.)
    """
    W = solution.weights["W"]
    keep = group_norms(W) > prune_threshold(W, ratio=prune)
    Zb = add_bias(Z) if solution.bias else Z
    M = solution.patterns.masks_for(Zb)
    return forward(Zb, M[:, keep], W[keep])


def _relu_scores(solution: Solution, Z: np.ndarray) -> np.ndarray:
    """``Σ_i (z v_i)_+ − (z u_i)_+`` per output column (m, c): on new points a ReLU neuron's
    own sign decides its activation (on the training points it equals ``D_i``).

    Columns of ``v_i``, ``u_i`` at or below ``1e-6`` of the largest block norm are left
    out, as in the recovered network.
    """
    V, U = solution.weights["V"], solution.weights["U"]
    threshold = prune_threshold(V, U)
    Zb = add_bias(Z) if solution.bias else Z
    out = np.zeros((Zb.shape[0], V.shape[2]))
    for B, sign in ((V, 1.0), (U, -1.0)):
        keep = np.linalg.norm(B, axis=1) > threshold  # (P, c): one neuron per column
        for k in range(B.shape[2]):
            out[:, k] += sign * np.maximum(Zb @ B[keep[:, k], :, k].T, 0.0).sum(axis=1)
    return out


def _warn_uncertified(estimator: BaseEstimator, cert: Certificate, remedy: str) -> None:
    if cert.certified:
        return
    failed = f"; failed checks {list(cert.failed)}" if cert.failed else ""
    warnings.warn(
        f"{type(estimator).__name__}: the fit is NOT certified (relative duality gap "
        f"{cert.relative_gap:.2e} > tol {cert.tolerance:.0e}{failed}). {remedy}",
        ConvergenceWarning, stacklevel=3)


_SOLVE_REMEDY = ("Loosen tol, try method='fast' or method='ipm', or solver='mosek' if "
                 "licensed; certificate_ holds the gap reached.")


def _cholesky(K: np.ndarray, Y: np.ndarray, mu: float) -> np.ndarray:
    """``(K + μI)⁻¹Y`` by one Cholesky factorisation (``K`` is overwritten)."""
    K[np.diag_indices_from(K)] += mu
    try:
        factor = sla.cho_factor(K, lower=True, overwrite_a=True, check_finite=False)
    except sla.LinAlgError:
        raise InvalidInputError(
            f"K + μI is not positive definite at mu={mu:.3g} (the kernel is singular to "
            "rounding): raise mu or mu_ratio.") from None
    return sla.cho_solve(factor, Y, check_finite=False)


def analytic_kernel_ridge_certificate(K: np.ndarray, Y: np.ndarray, alpha: np.ndarray,
                                      mu: float, *, tolerance: float = 1e-6,
                                      formulation: str = "ntk_analytic") -> Certificate:
    """Duality-gap certificate of kernel ridge with a given Gram matrix, computed in numpy.

    Primal over ``f = K α`` (the representer form of ``min_f ½||f(X) − Y||² + (μ/2)||f||²_H``):

        P(α) = ½||Kα − Y||² + (μ/2)⟨α, Kα⟩,

    dual (unconstrained, so every ``Z`` is feasible):

        D(Z) = ⟨Y, Z⟩ − ½||Z||² − (1/2μ)⟨Z, KZ⟩ ≤ P(α) for every α, Z  (K ⪰ 0),

    evaluated at the best multiple of the residual ``Y − Kα`` and of ``μα`` (equal at
    the optimum). The gap bounds how far ``α`` is from the kernel-ridge optimum in
    objective; it certifies the linear solve, not the choice of kernel.
    """
    KA = K @ alpha
    R = Y - KA
    primal = 0.5 * float(np.sum(R * R)) + 0.5 * mu * float(np.sum(alpha * KA))

    def dual(Z: np.ndarray) -> tuple[float, np.ndarray]:
        value, s = best_multiple(float(np.sum(Y * Z)),
                                 float(np.sum(Z * Z)) + float(np.sum(Z * (K @ Z))) / mu)
        return value, s * Z

    best, _ = best_candidate([R, mu * alpha], dual)
    return make_certificate(formulation, primal, max(best, 0.0), tolerance=tolerance,
                            scope="all")


# ---------------------------------------------------------------------------
# Regression and classification faces
# ---------------------------------------------------------------------------


def _reject_fit_params(estimator: BaseEstimator, fit_params: dict[str, Any]) -> None:
    if not fit_params:
        return
    if "sample_weight" in fit_params:
        raise InvalidInputError(
            f"{type(estimator).__name__} does not support sample_weight: its certificate is "
            "for the unweighted squared loss ½||f(X) − y||². Fit without sample_weight "
            "(e.g. repeat rows to weight them by integers).", argument="sample_weight")
    raise InvalidInputError(
        f"{type(estimator).__name__}.fit takes no fit parameters; got "
        f"{sorted(fit_params)}. Set options as constructor parameters.")


class _Model(BaseEstimator):
    """The model half of an estimator: ``_fit(X, Y, single)`` and ``_scores(Z)`` (m, c)."""

    def _fit(self, X: np.ndarray, Y: np.ndarray, single: bool) -> None:
        raise NotImplementedError

    def _scores(self, Z: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _targets(self, y: Any) -> Any:
        """The targets the program was fitted on (classifiers encode labels)."""
        return np.asarray(y, dtype=np.float64)

    def certified_data(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(X, Y)`` exactly as the certificate sees them (targets encoded as in ``fit``).

        Pass them to :func:`convexnn.verify` for a result saved from this estimator.
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return X, self._targets(y)

    def _convexnn_export(self, data: Any) -> tuple[Solution, tuple[np.ndarray, np.ndarray]]:
        """The certified optimum and its data, for :func:`convexnn.save` / ``verify``."""
        check_is_fitted(self)
        if getattr(self, "solution_", None) is None:
            raise InvalidInputError(
                f"{type(self).__name__} with kernel='analytic' solves no finite convex program "
                "(a closed-form kernel ridge over every gate of R^d): there is no solution to "
                "save. Use kernel='patterns' to save a certified K_p program.")
        if data is None:
            raise InvalidInputError(
                f"give the data {type(self).__name__} was fitted on, as (X, y): the "
                "certificate is re-derived from them.")
        X, y = (data.X, data.y) if hasattr(data, "X") else data
        return self.solution_, self.certified_data(X, y)


class _Regressor(RegressorMixin, _Model):
    def __sklearn_tags__(self):
        # the only tag set: y may have several columns (every program is multi-output);
        # no scikit-learn check is skipped
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    @staticmethod
    def _fold_score(Y: np.ndarray, S: np.ndarray) -> float:
        """R² of scores ``S`` (m, c) against targets (averaged over the outputs)."""
        return float(r2_score(Y.reshape(S.shape), S))

    @staticmethod
    def _strata(Y: np.ndarray) -> None:
        return None

    def fit(self, X: Any, y: Any, **fit_params: Any) -> _Regressor:
        """Solve and certify the model on ``X`` (n, d) and ``y`` (n,) or (n, c).

        ``sample_weight`` (and any other fit parameter) is refused: the certificate is for
        the unweighted squared loss.
        """
        _reject_fit_params(self, fit_params)
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, dtype=np.float64,
                             ensure_min_samples=2)
        y = np.asarray(y, dtype=np.float64)
        with blas_threads(BLAS_THREADS):
            self._fit(X, y, y.ndim == 1)
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Predictions on new points: (m,) for a one-column target, else (m, c)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        with blas_threads(BLAS_THREADS):
            S = self._scores(X)
        return S[:, 0] if self._single_output else S


class _Classifier(ClassifierMixin, _Model):
    def _targets(self, y: Any) -> np.ndarray:
        """±1 targets: one column (+1 for ``classes_[1]``) with two classes, else one per class."""
        y = np.asarray(y)
        known = np.isin(y, self.classes_)
        if not np.all(known):
            raise InvalidInputError(f"y has labels outside classes_ {list(self.classes_)}: "
                                    f"{list(np.unique(y[~known]))[:5]}.")
        codes = np.searchsorted(self.classes_, y)
        if self.classes_.size == 2:
            return np.where(codes == 1, 1.0, -1.0)
        Y = -np.ones((y.shape[0], self.classes_.size))
        Y[np.arange(y.shape[0]), codes] = 1.0
        return Y

    @staticmethod
    def _codes(Y: np.ndarray) -> np.ndarray:
        """Class index of ±1 targets or scores: the sign (one column) or the argmax."""
        Y = Y.reshape(Y.shape[0], -1)
        return (Y[:, 0] > 0).astype(np.int64) if Y.shape[1] == 1 else Y.argmax(axis=1)

    @classmethod
    def _fold_score(cls, Y: np.ndarray, S: np.ndarray) -> float:
        """Accuracy of scores ``S`` (m, c) against ±1 targets."""
        return float(np.mean(cls._codes(S) == cls._codes(Y)))

    @classmethod
    def _strata(cls, Y: np.ndarray) -> np.ndarray:
        return cls._codes(Y)

    def fit(self, X: Any, y: Any, **fit_params: Any) -> _Classifier:
        """Solve and certify the model on ``X`` (n, d) and class labels ``y`` (n,).

        Targets are ±1 (one column with two classes, one per class otherwise) and the
        loss is the squared loss. ``sample_weight`` is refused.
        """
        _reject_fit_params(self, fit_params)
        X, y = validate_data(self, X, y, dtype=np.float64, ensure_min_samples=2)
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        if self.classes_.size < 2:
            raise InvalidInputError(
                f"{type(self).__name__} needs at least two classes; y has only one class "
                f"({self.classes_[0]!r}).")
        Y = self._targets(y)
        with blas_threads(BLAS_THREADS):
            self._fit(X, Y, Y.ndim == 1)
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """The model's scores: (m,) with two classes (positive → ``classes_[1]``), else
        (m, n_classes)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        with blas_threads(BLAS_THREADS):
            S = self._scores(X)
        return S[:, 0] if self.classes_.size == 2 else S

    def predict(self, X: Any) -> np.ndarray:
        """Class labels: the sign (two classes) or the argmax of :meth:`decision_function`."""
        scores = self.decision_function(X)  # checks that the estimator is fitted
        return self.classes_[self._codes(scores)]


# ---------------------------------------------------------------------------
# The models
# ---------------------------------------------------------------------------


class _NetworkModel(_Model):
    """A certified two-layer network (the ``gated_relu`` or ``relu`` program)."""

    _formulation = ""

    def __init__(self, patterns: Any = 100, lam: float | None = None,
                 lam_ratio: float | None = None, bias: bool = True, solver: str = "clarabel",
                 tol: float = 1e-6, method: str = "auto", random_state: Any = 0,
                 options: dict[str, Any] | None = None):
        self.patterns = patterns
        self.lam = lam
        self.lam_ratio = lam_ratio
        self.bias = bias
        self.solver = solver
        self.tol = tol
        self.method = method
        self.random_state = random_state
        self.options = options

    def _fit(self, X: np.ndarray, Y: np.ndarray, single: bool) -> None:
        name, value = _one_of({"lam": self.lam, "lam_ratio": self.lam_ratio},
                              ("lam_ratio", DEFAULT_LAM_RATIO))
        self._fit_network(X, Y, single, name, value)

    def _fit_network(self, X: np.ndarray, Y: np.ndarray, single: bool, name: str,
                     value: float) -> None:
        """Solve at ``lam`` or ``lam_ratio`` (``name``) and set the fitted attributes."""
        form = get_formulation(self._formulation)
        data = prepare(X, Y, patterns=self.patterns, bias=self.bias,
                       seed=_seed(self.random_state))
        reg = _resolve(form, data, name, value)
        sol = solve_data(form, data, reg, solver=self.solver, tol=self.tol, method=self.method,
                         **_options(self.options))
        self.solution_ = sol
        self.certificate_ = sol.certificate
        self.network_ = sol.network
        self.patterns_ = sol.patterns
        self.lam_ = sol.lam
        self._single_output = single
        _warn_uncertified(self, sol.certificate, _SOLVE_REMEDY)


class _GatedModel(_NetworkModel):
    _formulation = "gated_relu"

    def _scores(self, Z: np.ndarray) -> np.ndarray:
        return _gated_scores(self.solution_, Z)


class _ReLUModel(_NetworkModel):
    _formulation = "relu"

    def _scores(self, Z: np.ndarray) -> np.ndarray:
        return _relu_scores(self.solution_, Z)


_NETWORK_DOC = """
    Parameters
    ----------
    patterns : int or "all", default 100
        Gaussian gates to sample (with ``random_state``), or ``"all"`` for every activation
        pattern of the training data (small d; the certificate's scope is then ``"all"``).
    lam, lam_ratio : float, optional
        Weight decay ``λ > 0``, or ``λ = lam_ratio · λ_max`` with ``λ_max = max_i ||Xᵀ D_i y||``
        of the training data (at most one; default ``lam_ratio = 0.1``).
    bias : bool, default True
        Append a column of ones to X (the gates get a bias entry too). Unlike
        :func:`convexnn.solve` the default is True, as for scikit-learn's intercepts.
    solver, tol, method
        As in :func:`convexnn.solve`: the conic solver, the relative duality gap the
        certificate must reach, and ``"auto"``, ``"ipm"`` or ``"fast"``.
    random_state : int, RandomState or None, default 0
        Seed of the gate sampling.
    options : dict, optional
        Method options, as the ``**options`` of :func:`convexnn.solve` (e.g.
        ``{{"max_iter": 500}}`` for ``method="fast"``; ``{{"augment": True}}`` adds violated
        patterns until the certificate holds over every pattern).

    Attributes
    ----------
    solution_ : Solution
        The certified convex optimum (``convexnn.save`` writes it).
    certificate_ : Certificate
        Its numpy duality-gap certificate; an uncertified fit warns with
        :class:`~sklearn.exceptions.ConvergenceWarning`.
    network_ : {net}
        The recovered non-convex network; ``network_.predict`` equals :meth:`predict`
        (up to the pruning of groups below ``1e-6`` of the largest).
    patterns_ : Patterns
        The sampled (or enumerated) patterns with their gates.
    lam_ : float
        The resolved λ.
    n_features_in_, feature_names_in_
        As in scikit-learn.
"""


class GatedReLURegressor(_Regressor, _GatedModel):
    __doc__ = """Certified gated-ReLU network (the group lasso ``gated_relu``) as a regressor.

    Fit: ``min_W ½||Σ_i D_i X W_i − y||² + λ Σ_i ||W_i||₂`` over the sampled patterns,
    certified in numpy. Predict: ``f(z) = Σ_i 1[zᵀg_i ≥ 0] zᵀW_i`` through the stored gates.
    """ + _NETWORK_DOC.format(net="GatedReLUNetwork")


class GatedReLUClassifier(_Classifier, _GatedModel):
    __doc__ = """Certified gated-ReLU network (the group lasso ``gated_relu``) as a classifier.

    Trained on ±1 targets (one column for two classes, one per class otherwise) with the
    squared loss; predicts the sign or the argmax of :meth:`decision_function`, the
    network's output ``Σ_i 1[zᵀg_i ≥ 0] zᵀW_i``. ``classes_`` holds the labels.
    """ + _NETWORK_DOC.format(net="GatedReLUNetwork")


class ReLURegressor(_Regressor, _ReLUModel):
    __doc__ = """Certified ReLU network (the cone-constrained group lasso ``relu``) as a regressor.

    Fit: ``min ½||Σ_i D_i X (v_i − u_i) − y||² + λ Σ_i (||v_i|| + ||u_i||)`` subject to the
    cone constraints, certified in numpy. Predict: the ReLU network
    ``f(z) = Σ_i (zᵀv_i)_+ − (zᵀu_i)_+`` (per output column with several outputs).
    """ + _NETWORK_DOC.format(net="ReLUNetwork")


class ReLUClassifier(_Classifier, _ReLUModel):
    __doc__ = """Certified ReLU network (the cone-constrained group lasso ``relu``) as a classifier.

    Trained on ±1 targets with the squared loss; predicts the sign or the argmax of
    :meth:`decision_function`, the network's output ``Σ_i (zᵀv_i)_+ − (zᵀu_i)_+``.
    """ + _NETWORK_DOC.format(net="ReLUNetwork")


#: ``lam_ratios`` of the cross-validated models when none are given.
DEFAULT_CV_RATIOS = tuple(np.geomspace(1.0, 0.01, 10))


class _GatedPathModel(_GatedModel):
    """The gated-ReLU network with λ chosen by K-fold cross-validation along a
    warm-started path of ``lam_ratios`` (:func:`convexnn.solve_path`), then refitted."""

    def __init__(self, lam_ratios: Any = None, cv: Any = 5, patterns: Any = 100,
                 bias: bool = True, solver: str = "clarabel", tol: float = 1e-6,
                 method: str = "auto", random_state: Any = 0,
                 options: dict[str, Any] | None = None):
        self.lam_ratios = lam_ratios
        self.cv = cv
        self.patterns = patterns
        self.bias = bias
        self.solver = solver
        self.tol = tol
        self.method = method
        self.random_state = random_state
        self.options = options

    def _ratios(self) -> np.ndarray:
        ratios = np.asarray(DEFAULT_CV_RATIOS if self.lam_ratios is None else self.lam_ratios,
                            dtype=np.float64)
        if ratios.ndim != 1 or ratios.size == 0 or not np.all(np.isfinite(ratios)) \
                or np.any(ratios <= 0):
            raise InvalidInputError("lam_ratios must be a non-empty 1-D sequence of positive "
                                    f"numbers (λ / λ_max); got {self.lam_ratios!r}.")
        return ratios

    def _fit(self, X: np.ndarray, Y: np.ndarray, single: bool) -> None:
        ratios = self._ratios()
        strata = self._strata(Y)
        splitter = check_cv(self.cv, strata, classifier=strata is not None)
        folds = list(splitter.split(X, strata))
        scores = np.empty((ratios.size, len(folds)))
        for k, (train, test) in enumerate(folds):
            if not np.any(Y[train]):  # zero targets: w = 0 is optimal at every λ
                scores[:, k] = self._fold_score(Y[test], np.zeros((test.size, Y[0].size)))
                continue
            path = solve_path(self._formulation, X[train], Y[train], patterns=self.patterns,
                              lam_ratios=ratios, bias=self.bias, solver=self.solver,
                              tol=self.tol, method=self.method,
                              seed=_seed(self.random_state), **_options(self.options))
            for j, sol in enumerate(path.solutions):
                scores[j, k] = self._fold_score(Y[test], _gated_scores(sol, X[test]))
        mean = scores.mean(axis=1)
        tied = np.flatnonzero(mean >= mean.max() - 1e-12)
        best = int(tied[np.argmax(ratios[tied])])  # among ties, the largest λ
        self.lam_ratios_, self.cv_scores_ = ratios, scores
        self.lam_ratio_ = float(ratios[best])
        self._fit_network(X, Y, single, "lam_ratio", self.lam_ratio_)


_CV_DOC = """
    Each of the ``cv`` folds solves the group lasso along ``lam_ratios`` with warm starts
    (:func:`convexnn.solve_path`; every solution certified), scores it on the held-out
    fold ({score}), and the ratio with the best mean score (the largest among ties) is
    refitted on all the data, like scikit-learn's ``LassoCV``.

    Parameters
    ----------
    lam_ratios : sequence of float, optional
        Values of ``λ / λ_max`` (of each training fold); default 10 values from 1 to 0.01.
    cv : int, cross-validation generator or iterable, default 5
        As in scikit-learn (:func:`~sklearn.model_selection.check_cv`{strat}).
    patterns, bias, solver, tol, method, random_state, options
        As for :class:`GatedReLURegressor` (``options`` go to every solve).

    Attributes
    ----------
    lam_ratio_ : float
        The chosen ratio; ``lam_`` the λ it resolves to on all the data.
    lam_ratios_ : ndarray (r,)
    cv_scores_ : ndarray (r, folds)
        Held-out score of every ratio on every fold.
    solution_, certificate_, network_, patterns_, lam_
        Of the refit, as for :class:`GatedReLURegressor`.
"""


class GatedReLURegressorCV(_Regressor, _GatedPathModel):
    __doc__ = """Certified gated-ReLU regressor with λ chosen by cross-validation.
    """ + _CV_DOC.format(score="R²", strat="")


class GatedReLUClassifierCV(_Classifier, _GatedPathModel):
    __doc__ = """Certified gated-ReLU classifier with λ chosen by cross-validation.
    """ + _CV_DOC.format(score="accuracy", strat=": stratified folds for an integer")


class _NTKModel(_Model):
    """NTK kernel ridge: analytic infinite-width kernel or ``K_p`` over sampled patterns."""

    def __init__(self, kernel: str = "analytic", mu: float | None = None,
                 mu_ratio: float | None = None, patterns: Any = 100, bias: bool = True,
                 solver: str = "clarabel", tol: float = 1e-6, method: str = "auto",
                 random_state: Any = 0, options: dict[str, Any] | None = None):
        self.kernel = kernel
        self.mu = mu
        self.mu_ratio = mu_ratio
        self.patterns = patterns
        self.bias = bias
        self.solver = solver
        self.tol = tol
        self.method = method
        self.random_state = random_state
        self.options = options

    def _fit(self, X: np.ndarray, Y: np.ndarray, single: bool) -> None:
        kernel = choice(self.kernel, "kernel", ("analytic", "patterns"))
        name, value = _one_of({"mu": self.mu, "mu_ratio": self.mu_ratio},
                              ("mu_ratio", DEFAULT_MU_RATIO))
        form = get_formulation("ntk")
        self._single_output = single
        if kernel == "patterns":
            data = prepare(X, Y, patterns=self.patterns, bias=self.bias,
                           seed=_seed(self.random_state))
            mu = _resolve(form, data, name, value)
            sol = solve_data(form, data, mu, solver=self.solver, tol=self.tol,
                             method=self.method, **_options(self.options))
            self.solution_, self.network_, self.patterns_ = sol, sol.network, sol.patterns
            self.certificate_, self.mu_ = sol.certificate, sol.reg
            self.X_fit_ = self.dual_coef_ = None
            _warn_uncertified(self, sol.certificate, _SOLVE_REMEDY)
            return
        tol = tolerance(self.tol)
        Xb = add_bias(X) if boolean(self.bias, "bias") else X
        Y2 = Y.reshape(Y.shape[0], -1)
        mu = positive(value, "mu") if name == "mu" else \
            positive(value, "mu_ratio") * mu_scale(Xb)
        if not mu > 0:
            raise InvalidInputError("mu_ratio cannot be used: X is zero, so the kernel is "
                                    "zero; give mu explicitly.")
        K = ntk_gram(Xb)
        alpha = _cholesky(K.copy(), Y2, mu)
        self.certificate_ = analytic_kernel_ridge_certificate(K, Y2, alpha, mu, tolerance=tol)
        self.X_fit_, self.dual_coef_, self.mu_ = X, alpha, mu
        self.solution_ = self.network_ = self.patterns_ = None
        _warn_uncertified(self, self.certificate_, "Raise mu or mu_ratio (the kernel system "
                          "is ill-conditioned); certificate_ holds the gap reached.")

    def _scores(self, Z: np.ndarray) -> np.ndarray:
        if self.solution_ is not None:
            return _gated_scores(self.solution_, Z, prune=0.0)
        return ntk_gram(self.X_fit_, Z, bias=self.bias) @ self.dual_coef_


_NTK_DOC = """
    Parameters
    ----------
    kernel : {"analytic", "patterns"}, default "analytic"
        ``"analytic"``: the infinite-width NTK ``K(x, x') = xᵀx'(π − θ)/(2π)``
        (:func:`~convexnn.kernels.ntk_gram`, every gate of R^d). ``"patterns"``:
        ``K_p = Σ_i p_i D_i X Xᵀ D_i`` over ``patterns`` sampled gates with their
        frequencies ``p`` — the ``ntk`` formulation, whose network has one neuron per
        pattern and predicts on new points through the stored (first-drawn) gate of each.
    mu, mu_ratio : float, optional
        Ridge ``μ > 0``, or ``μ = mu_ratio · ||X||₂²`` (X with its bias column; at most one;
        default ``mu_ratio = 1e-3``).
    patterns, random_state, options
        Gates, their seed and method options for ``kernel="patterns"`` (ignored by the
        analytic kernel).
    bias : bool, default True
        Append a column of ones to X.
    solver, tol, method
        As in :func:`convexnn.solve` (``method`` ``"cholesky"`` or ``"ipm"`` for
        ``kernel="patterns"``); ``tol`` is the relative gap the certificate must reach.

    Attributes
    ----------
    certificate_ : Certificate
        ``kernel="patterns"``: the ``ntk`` formulation's certificate. ``kernel="analytic"``:
        the kernel ridge's own duality gap computed in numpy from ``α``
        (:func:`analytic_kernel_ridge_certificate`, primal ``½||Kα − Y||² + (μ/2)⟨α, Kα⟩``,
        dual at the residual) — it certifies that ``α`` solves the ridge system with this
        kernel, not a finite pattern program.
    solution_, network_, patterns_ : the ``ntk`` Solution, its network and patterns
        (``kernel="patterns"``); None for the analytic kernel.
    dual_coef_ : ndarray (n, c) or None
        ``α = (K + μI)⁻¹Y`` of the analytic kernel; predictions are ``K(Z, X) α``.
    X_fit_ : ndarray or None
        The training inputs the analytic cross kernel needs.
    mu_ : float
        The resolved μ.
"""


class NTKRegressor(_Regressor, _NTKModel):
    __doc__ = """NTK kernel ridge regression ``f = K(·, X)(K + μI)⁻¹y`` with its certificate.
    """ + _NTK_DOC


class NTKClassifier(_Classifier, _NTKModel):
    __doc__ = """NTK kernel ridge on ±1 targets (squared loss) as a classifier.
    """ + _NTK_DOC


class _OptimalKernelModel(_Model):
    """The optimal MKL kernel by reweighting from the NTK weights (:func:`convexnn.reweight`)."""

    def __init__(self, patterns: Any = 100, mu: float | None = None,
                 mu_ratio: float | None = None, lam: float | None = None,
                 lam_ratio: float | None = None, bias: bool = True, solver: str = "clarabel",
                 tol: float = 1e-6, random_state: Any = 0,
                 options: dict[str, Any] | None = None):
        self.patterns = patterns
        self.mu = mu
        self.mu_ratio = mu_ratio
        self.lam = lam
        self.lam_ratio = lam_ratio
        self.bias = bias
        self.solver = solver
        self.tol = tol
        self.random_state = random_state
        self.options = options

    def _fit(self, X: np.ndarray, Y: np.ndarray, single: bool) -> None:
        name, value = _one_of({"mu": self.mu, "mu_ratio": self.mu_ratio, "lam": self.lam,
                               "lam_ratio": self.lam_ratio}, ("lam_ratio", DEFAULT_LAM_RATIO))
        data = prepare(X, Y, patterns=self.patterns, bias=self.bias,
                       seed=_seed(self.random_state))
        form = get_formulation("mkl" if name.startswith("mu") else "gated_relu")
        reg = _resolve(form, data, name, value)
        options = reweight_method.Options.from_mapping(
            _options(self.options), f"options of {type(self).__name__} (convexnn.reweight)")
        res = reweight_method.reweight_data(
            data, **{"mu" if name.startswith("mu") else "lam": reg}, options=options,
            tol=self.tol, solver=resolve_solver(self.solver))
        if np.isfinite(res.mu):
            _, alpha = kernel_ridge(data.X, data.Y, data.M, res.eta, res.mu)
        else:  # λ ≥ λ_max: W = 0, μ = ∞, the model is zero
            alpha = np.zeros_like(data.Y)
        self.result_ = res
        self.solution_, self.network_ = res.solution, res.solution.network
        self.certificate_, self.history_ = res.certificate, res.history
        self.eta_, self.mu_, self.lam_ = res.eta, res.mu, res.lam
        self.patterns_ = data.patterns
        self.X_fit_, self.dual_coef_ = X, alpha
        self._single_output = single
        _warn_uncertified(self, res.certificate, "Loosen tol, raise options['max_iter'] or "
                          "use options['finish'] = 'gated'; history_ shows the gap reached.")

    def _scores(self, Z: np.ndarray) -> np.ndarray:
        Zb, Xb = (add_bias(Z), add_bias(self.X_fit_)) if self.bias else (Z, self.X_fit_)
        K = masked_gram(Xb, self.patterns_.masks, self.eta_, Zb, self.patterns_.masks_for(Zb))
        return K @ self.dual_coef_


_OPTIMAL_DOC = """
    The kernel ``K_η = Σ_i η_i D_i X Xᵀ D_i`` with the optimal simplex weights ``η`` is found
    by iterative reweighting from the NTK weights (:func:`convexnn.reweight`). The model is
    kernel ridge with it: ``f(z) = K_η(z, X) α``, ``α = (K_η + μI)⁻¹Y``, the cross kernel
    ``(Z Xᵀ) ∘ (M_Z diag(η) Mᵀ)`` with the patterns ``M_Z`` of the new points under the
    stored gates. By the exact λ ↔ μ map its predictions equal those of the certified
    gated-ReLU network at ``λ = μ Σ_i ||W_i||`` (``network_``) — to the accuracy with which
    the certified weights satisfy their optimality conditions (about 1e-9 at ``tol=1e-8``,
    1e-8 at the default; the gap bounds the objective, not that residual).

    Parameters
    ----------
    patterns : int or "all", default 100
        As for :class:`GatedReLURegressor`.
    mu, mu_ratio : float, optional
        Run simplex MKL at ``μ`` (``mu_ratio`` relative to ``||X||₂²``).
    lam, lam_ratio : float, optional
        Or give the equivalent gated-ReLU ``λ`` (``lam_ratio`` relative to ``λ_max``), so
        that the optimal kernel and the gated network are compared at the same λ. At most
        one of the four; default ``lam_ratio = 0.1``.
    bias : bool, default True
    solver : str
        The interior-point solver the gated finish may polish with.
    tol : float
        Relative duality gap the certificate must reach.
    random_state : int, RandomState or None, default 0
    options : dict, optional
        Options of :func:`convexnn.reweight`: ``start``, ``max_iter``, ``finish``
        (``"gated"`` by default, ``"none"`` for the pure iteration), ``threads``.

    Attributes
    ----------
    certificate_ : Certificate
        Simplex MKL at ``μ`` (``mu``/``mu_ratio``) or the group lasso at ``λ``
        (``lam``/``lam_ratio``), computed in numpy.
    solution_, network_ : the certified gated-ReLU solution at ``lam_`` and its network.
    eta_ : ndarray (P,)
        The optimal kernel weights.
    mu_, lam_ : float
        The matched pair of the exact map.
    history_ : pandas.DataFrame
        The reweighting history (objective, lower bound, gap per step).
    dual_coef_ : ndarray (n, c)
        ``α = (K_η + μI)⁻¹Y``.
    patterns_, X_fit_, result_
        The patterns, the training inputs and the whole :class:`ReweightResult`.
"""


class OptimalKernelRegressor(_Regressor, _OptimalKernelModel):
    __doc__ = """Kernel ridge with the optimal MKL kernel, found by reweighting from the NTK.
    """ + _OPTIMAL_DOC


class OptimalKernelClassifier(_Classifier, _OptimalKernelModel):
    __doc__ = """The optimal MKL kernel on ±1 targets (squared loss) as a classifier.
    """ + _OPTIMAL_DOC
