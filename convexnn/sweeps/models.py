"""The models of a sweep: fit a regularisation path on a training split, then predict.

A model kind is one function ``fit(X, y, model, context) → [Fit, …]`` (one
:class:`Fit` per grid value, in the grid's order) registered in :data:`FITTERS`:

* ``"formulation"`` — any registered formulation: :func:`convexnn.solve_path` on the
  training split (warm starts along the grid, every value certified in numpy); its
  predictions are those of the recovered network (:func:`predictor`).
* ``"estimator"`` — a scikit-learn style estimator registered in :data:`ESTIMATORS`
  with one line, ``ESTIMATORS["NAME"] = EstimatorModel(Class, reg="lam",
  ratio="lam_ratio")``: one ``fit`` per grid value, ``predict`` for the scores; its
  ``certificate_`` (or ``solution_``) supplies the certificate. The regressors of
  :mod:`convexnn.estimators` are registered (``GatedReLURegressor``, ``ReLURegressor``,
  ``NTKRegressor`` — the analytic infinite-width kernel by default —,
  ``OptimalKernelRegressor``).

Targets are those of the data set: classes as ±1 columns (one column for two classes),
fitted with the squared loss and scored by :func:`scores` (arg max, or the sign of the
single column).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InvalidInputError

__all__ = ["Fit", "FitContext", "EstimatorModel", "ESTIMATORS", "FITTERS", "fit_formulation",
           "fit_estimator", "predictor", "scores"]


@dataclass(frozen=True, repr=False)
class Fit:
    """One fitted grid value: the regularisation ``reg``, a ``predict`` function (raw
    features n × d → outputs n or n × c), the fitting time and, when the model has one,
    its numpy certificate and training objective."""

    reg: float
    predict: Callable[[np.ndarray], np.ndarray]
    seconds: float
    method: str = ""
    certificate: Any = None
    objective: float = math.nan

    def __repr__(self) -> str:
        cert = "no certificate" if self.certificate is None else (
            f"relative_gap={self.certificate.relative_gap:.1e}, "
            f"certified={self.certificate.certified}")
        return f"Fit(reg={self.reg:.6g}, {self.method or 'model'}, {cert}, {self.seconds:.3f}s)"


@dataclass(frozen=True)
class FitContext:
    """What every model of a sweep shares: the bias column, the patterns and the solver
    (``patterns`` a :class:`~convexnn.spec.PatternSpec`, ``solver`` a
    :class:`~convexnn.sweeps.spec.SweepSolver`)."""

    bias: bool
    patterns: Any
    solver: Any


def predictor(solution: Any) -> Callable[[np.ndarray], np.ndarray]:
    """Predictions of a solved formulation on new points: its recovered network.

    The network reproduces the convex predictions exactly (``Σ_i 1[Z g_i ≥ 0] Z W_i``
    for the gated programs, the NTK and MKL kernel regressions included — for the NTK
    this is the kernel prediction ``K(Z, X) α``; the ReLU network for ``relu``).
    """
    net = solution.network
    if net is None:
        raise InvalidInputError(f"a {solution.formulation} solution carries no network to "
                                "predict with.")
    return net.predict


def fit_formulation(X: np.ndarray, y: np.ndarray, model: Any, ctx: FitContext) -> list[Fit]:
    """Solve ``model.target`` along ``model.grid`` on ``(X, y)`` with warm starts."""
    from ..path import solve_path
    from ..problem import prepare

    pats = ctx.patterns
    if pats.method == "enumerate":
        patterns: Any = prepare(X, y, patterns="all", bias=ctx.bias,
                                max_patterns=pats.max_patterns).patterns
        seed = 0
    else:
        patterns, seed = pats.count, pats.seed
    options = dict(model.options)
    memory_limit = options.pop("memory_limit", None)
    grid = model.grid
    values = {("lam_ratios" if grid.ratio else "lams"): list(grid.values)}
    path = solve_path(model.target, X, y, patterns=patterns, bias=ctx.bias, seed=seed,
                      solver=ctx.solver.name, tol=ctx.solver.tolerance, method=model.method,
                      solver_options=dict(ctx.solver.options), memory_limit=memory_limit,
                      **values, **options)
    return [Fit(reg=float(s.reg), predict=predictor(s),
                seconds=float(sum(float(v) for v in s.timings.values())), method=s.method,
                certificate=s.certificate, objective=float(s.objective)) for s in path]


@dataclass(frozen=True)
class EstimatorModel:
    """A scikit-learn style estimator as a sweep model.

    ``factory(**shared(context), **options, reg=value)`` (or ``ratio=value`` for a grid
    of ratios) builds an estimator for one grid value; ``fit(X, y)`` and ``predict(X)``
    are called on the raw features and the encoded targets (±1 columns for classes).
    ``shared`` maps the sweep's :class:`FitContext` (bias, patterns, solver) to
    constructor arguments, so that an estimator fits on the same terms as the
    formulations of the sweep; the model's ``options`` override them. The certificate is
    the estimator's ``certificate_`` (or its ``solution_``'s), and the regularisation it
    solved at its ``{reg}_`` attribute.
    """

    factory: Callable[..., Any]
    reg: str
    ratio: str | None = None
    shared: Callable[[FitContext], Mapping[str, Any]] | None = None

    def fit(self, X: np.ndarray, y: np.ndarray, model: Any, ctx: FitContext) -> list[Fit]:
        base = dict(self.shared(ctx)) if self.shared is not None else {}
        base.update(model.options)
        fits = []
        for value in model.grid.values:
            arg = self.ratio if model.grid.ratio else self.reg
            est = self.factory(**{**base, arg: value})
            start = time.perf_counter()
            est.fit(X, y)
            seconds = time.perf_counter() - start
            sol = getattr(est, "solution_", None)
            cert = getattr(est, "certificate_", None) or getattr(sol, "certificate", None)
            reg = getattr(est, f"{self.reg}_", None)
            if reg is None:
                reg = sol.reg if sol is not None else (
                    math.nan if model.grid.ratio else value)
            fits.append(Fit(reg=float(reg), predict=est.predict, seconds=seconds,
                            method=getattr(sol, "method", "") or "", certificate=cert,
                            objective=math.nan if cert is None else float(cert.objective)))
        return fits


def _convexnn_terms(ctx: FitContext) -> dict[str, Any]:
    """The sweep's bias, patterns, seed, solver and tolerance as constructor arguments of
    the estimators of :mod:`convexnn.estimators`."""
    pats = ctx.patterns
    return {"bias": ctx.bias, "patterns": "all" if pats.method == "enumerate" else pats.count,
            "random_state": pats.seed if pats.method == "sample" else 0,
            "solver": ctx.solver.name, "tol": ctx.solver.tolerance}


def _convexnn(name: str) -> Callable[..., Any]:
    """The estimator class ``convexnn.estimators.<name>``, imported when first built."""
    def build(**kwargs: Any) -> Any:
        from .. import estimators

        return getattr(estimators, name)(**kwargs)

    build.__name__ = build.__qualname__ = name
    return build


#: Estimators a sweep can name (``[[model]] estimator = "NAME"``); one line each. The
#: regressors fit the encoded targets (±1 columns for classes, squared loss) — what the
#: classifiers of :mod:`convexnn.estimators` fit — and the sweep scores their outputs.
ESTIMATORS: dict[str, EstimatorModel] = {
    "GatedReLURegressor": EstimatorModel(_convexnn("GatedReLURegressor"), "lam", "lam_ratio",
                                         _convexnn_terms),
    "ReLURegressor": EstimatorModel(_convexnn("ReLURegressor"), "lam", "lam_ratio",
                                    _convexnn_terms),
    "NTKRegressor": EstimatorModel(_convexnn("NTKRegressor"), "mu", "mu_ratio",
                                   _convexnn_terms),
    "OptimalKernelRegressor": EstimatorModel(_convexnn("OptimalKernelRegressor"), "mu",
                                             "mu_ratio", _convexnn_terms),
}


def fit_estimator(X: np.ndarray, y: np.ndarray, model: Any, ctx: FitContext) -> list[Fit]:
    """Fit the registered estimator ``model.target`` at every grid value."""
    return ESTIMATORS[model.target].fit(X, y, model, ctx)


#: Model kind → its fitting function.
FITTERS: Mapping[str, Callable[..., list[Fit]]] = {
    "formulation": fit_formulation,
    "estimator": fit_estimator,
}


def scores(Y: np.ndarray, P: np.ndarray, classification: bool) -> tuple[float, float]:
    """``(accuracy, mse)`` of predictions ``P`` against targets ``Y`` (both n × c).

    ``mse = ||P − Y||²_F / (n c)`` (the mean over entries). ``accuracy`` (NaN for a
    real-valued target) compares ``argmax`` of the rows, or for one ±1 column the signs
    (a score of exactly 0 counts as the smaller label, as ``argmax`` breaks ties
    towards the first class). Empty sets give ``(NaN, NaN)``.
    """
    if len(Y) == 0:
        return math.nan, math.nan
    Y = np.asarray(Y, dtype=np.float64).reshape(len(Y), -1)
    P = np.asarray(P, dtype=np.float64).reshape(Y.shape)
    mse = float(np.mean((P - Y) ** 2))
    if not classification:
        return math.nan, mse
    if Y.shape[1] == 1:
        hit = (P[:, 0] > 0) == (Y[:, 0] > 0)
    else:
        hit = np.argmax(P, axis=1) == np.argmax(Y, axis=1)
    return float(np.mean(hit)), mse
