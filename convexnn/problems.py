"""From a problem spec to its data and its certified solution.

:func:`load_dataset` loads, selects, encodes and standardises the data a
:class:`~convexnn.spec.DataSpec` describes; :func:`solve_spec` prepares them once (bias
column, patterns) and solves the model with :func:`convexnn.solve.solve_data`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .data import Dataset, load_csv, load_npz, load_sklearn, load_uci, one_hot
from .errors import InvalidInputError
from .formulations import get_formulation
from .problem import prepare
from .solution import Solution
from .solving import solve_data, split_options
from .spec import MAX_CLASSES, SKLEARN_CLASSIFICATION, SYNTHETIC, DataSpec, ProblemSpec
from .validation import validate_xy

__all__ = ["load_dataset", "solve_spec"]

def _standardize(X: np.ndarray) -> np.ndarray:
    """Columns to zero mean and unit variance (constant columns are only centred)."""
    sd = X.std(axis=0)
    return (X - X.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def _encode(y: np.ndarray, target: str, source: str) -> np.ndarray:
    if target == "raw":
        return y
    if y.ndim != 1:
        raise InvalidInputError(
            f"[data] target = {target!r} needs one column of class labels; {source} has "
            f"{y.shape[1]} target columns. Use target = \"raw\"."
        )
    classes = np.unique(y)
    if classes.size > MAX_CLASSES or not np.array_equal(classes, np.round(classes)):
        raise InvalidInputError(
            f"[data] target = {target!r} needs integer class labels (at most {MAX_CLASSES} "
            f"classes); {source} has {classes.size} distinct values"
            f"{'' if np.array_equal(classes, np.round(classes)) else ', not all integers'}. "
            "Use target = \"raw\" for a real-valued target."
        )
    if classes.size < 2:
        raise InvalidInputError(f"[data] target = {target!r}: {source} has a single class.")
    Y = one_hot(y, centered=(target == "signed"))
    return Y[:, 1] if target == "signed" and classes.size == 2 else Y


def load_dataset(spec: DataSpec, *, uci_root: str | Path | None = None) -> Dataset:
    """Load, select, encode and standardise the data a :class:`DataSpec` describes.

    The returned ``X`` has no bias column (the solve adds it when ``spec.bias``);
    ``meta["source"]`` is the spec's source string.
    """
    kind, loc = spec.kind, spec.location
    if kind == "synthetic":
        ds = SYNTHETIC[loc](spec.n, spec.d, neurons=spec.neurons, noise=spec.noise,
                            seed=spec.seed, outputs=spec.outputs)
    elif kind == "npz":
        ds = load_npz(loc, x_key=spec.x_key or "X", y_key=spec.y_key or "y")
    elif kind == "csv":
        target = spec.target_column
        ds = load_csv(loc, target=list(target) if isinstance(target, tuple) else target)
    elif kind == "sklearn":
        ds = load_sklearn(loc)
    else:
        ds = load_uci(loc, uci_root)
    X, y = ds.X, np.asarray(ds.y, dtype=np.float64)
    if kind == "uci" and spec.split not in (None, "all"):
        if "validation" not in ds.meta:
            raise InvalidInputError(
                f"[data] split = {spec.split!r}: {loc} has no conxuntos.dat validation split; "
                "use split = \"all\"."
            )
        idx = ds.meta["validation"][0 if spec.split == "train" else 1]
        X, y = X[idx], y[idx]
    target = spec.target
    if target == "auto":  # a CSV's target is known to be a label only once read
        labels = kind == "uci" or (kind == "sklearn" and loc in SKLEARN_CLASSIFICATION)
        target = "signed" if labels or "classes" in ds.meta else "raw"
    y = _encode(y, target, spec.source)
    if spec.standardize:
        X = _standardize(X)
    X, _ = validate_xy(X, y)
    meta = {"source": spec.source, "target": target, "standardize": spec.standardize}
    if kind == "uci":
        meta["split"] = spec.split
    if "classes" in ds.meta:
        meta["classes"] = ds.meta["classes"]
    name = ds.name if kind != "uci" or spec.split in (None, "all") else f"{ds.name}[{spec.split}]"
    return Dataset(X=X, y=y, name=name, meta=meta)


def solve_spec(spec: ProblemSpec, *, solver: str | None = None,
               uci_root: str | Path | None = None, verbose: bool = False,
               data: Dataset | None = None, method: str | None = None,
               progress: bool | str = False) -> tuple[Solution, Dataset]:
    """Load the data of ``spec`` and solve it.

    The data are validated, hashed and given their bias column and patterns once
    (``convexnn.problem.prepare``).

    Parameters
    ----------
    spec : ProblemSpec
        From :func:`convexnn.load_spec`.
    solver : str, optional
        Overrides ``[solver] name``.
    uci_root : str or path, optional
        The UCI collection, for ``uci:`` sources.
    verbose : bool, default False
        Show the solver's output.
    data : Dataset, optional
        Skip loading: the data set the spec's ``[data]`` section describes.
    method : str, optional
        Overrides ``[solver] method``.
    progress : bool or str, default False
        As in :func:`convexnn.solve`.

    Returns
    -------
    solution : Solution
        The certified solution.
    dataset : Dataset
        The data it was computed on (for :func:`convexnn.save`).
    """
    origin = str(spec.path) if spec.path is not None else spec.name
    if data is None:
        try:
            ds = load_dataset(spec.data, uci_root=uci_root)
        except InvalidInputError as exc:
            raise InvalidInputError(f"{origin}: [data] source = {spec.data.source!r}: {exc}"
                                    ) from None
    else:
        ds = data
    model, sv = spec.model, spec.solver
    form = get_formulation(model.formulation)
    pats = spec.patterns
    prepared = prepare(ds.X, ds.y, patterns="all" if pats.method == "enumerate" else pats.count,
                       bias=spec.data.bias, seed=pats.seed, max_patterns=pats.max_patterns)
    reg = form.resolve_reg(prepared, model.reg, model.reg_ratio)
    options = dict(model.options)
    memory_limit = options.pop("memory_limit", None)  # a solve option, allowed here too
    method = method or sv.method
    try:  # options a method does not take are named with their section
        split_options(form, form.choose_method(prepared, method), options)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{origin}: [model.options]: {exc}") from None
    try:
        sol = solve_data(form, prepared, reg, solver=solver or sv.name, tol=sv.tolerance,
                         method=method, verbose=verbose, progress=progress,
                         solver_options=dict(sv.options), memory_limit=memory_limit,
                         **options)
    except InvalidInputError as exc:
        if getattr(exc, "argument", None) == "solver_options":
            raise InvalidInputError(f"{origin}: [solver.options]: {exc}") from None
        raise
    return sol, ds
