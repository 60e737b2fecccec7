"""Load and validate training data.

Everything that enters convexnn goes through :func:`convexnn.validation.validate_xy`:
``X`` must be a finite, numeric, non-empty ``n × d`` array and ``y`` a finite vector of
length ``n`` (or an ``n × c`` matrix for ``c`` outputs). Loaders return a
:class:`Dataset` with the arrays, a name and a content hash that certificates record.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InvalidInputError
from .memory import require_memory
from .validation import integer, non_negative, validate_X, validate_xy

__all__ = [
    "Dataset",
    "validate_xy",
    "validate_X",
    "add_bias",
    "data_sha256",
    "one_hot",
    "planted_relu",
    "load_npz",
    "load_csv",
    "load_sklearn",
    "load_uci",
    "uci_root",
    "list_uci",
    "SKLEARN_DATASETS",
    "UCI_ENV",
]

SKLEARN_DATASETS = ("iris", "wine", "breast_cancer", "diabetes", "digits")
UCI_ENV = "CONVEXNN_UCI"


@dataclass(frozen=True, repr=False)
class Dataset:
    """A validated data set: features ``X`` (n×d), targets ``y`` (n or n×c).

    Attributes
    ----------
    X : ndarray of shape (n, d)
        The features.
    y : ndarray of shape (n,) or (n, c)
        The targets.
    name : str
        A description (the source, or the generator's arguments).
    meta : dict
        Whatever the loader records (the source, the class labels, a teacher's weights).
    """

    X: np.ndarray
    y: np.ndarray
    name: str = "data"
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.X.shape[0])

    @property
    def d(self) -> int:
        return int(self.X.shape[1])

    @property
    def outputs(self) -> int:
        return 1 if self.y.ndim == 1 else int(self.y.shape[1])

    @cached_property
    def sha256(self) -> str:
        """SHA-256 of the arrays (computed once: the arrays of a Dataset are not edited)."""
        return data_sha256(self.X, self.y)

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, n={self.n}, d={self.d}, outputs={self.outputs}, "
            f"sha256={self.sha256[:12]}…)"
        )


def add_bias(X: np.ndarray) -> np.ndarray:
    """Append a column of ones: ``[X, 1]`` (gates then get a bias entry too).

    Parameters
    ----------
    X : array_like of shape (n, d)
        The inputs.

    Returns
    -------
    ndarray of shape (n, d + 1)
        ``X`` as float64 with a last column of ones.

    Examples
    --------
    >>> import convexnn as cn
    >>> cn.add_bias([[2.0], [3.0]])
    array([[2., 1.],
           [3., 1.]])
    """
    X = np.asarray(X, dtype=np.float64)
    return np.hstack([X, np.ones((X.shape[0], 1))])


def data_sha256(X: np.ndarray, y: np.ndarray) -> str:
    """SHA-256 of the float64 contents and shapes of ``X`` and ``y``.

    The hash is independent of memory layout and of whether ``y`` is a vector or a
    single column, so the same numbers always give the same hash.
    """
    h = hashlib.sha256()
    X = np.ascontiguousarray(X, dtype=np.float64)
    Y = np.ascontiguousarray(y, dtype=np.float64)
    if Y.ndim == 1:
        Y = Y[:, None]
    for arr in (X, Y):
        h.update(str(arr.shape).encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def one_hot(labels: Any, *, centered: bool = False) -> np.ndarray:
    """Encode integer labels 0..c−1 as an ``n × c`` indicator matrix.

    With ``centered=True`` the entries are ``±1`` (1 for the class, −1 otherwise) — the
    usual squared-loss target for classification.
    """
    lab = np.asarray(labels)
    if lab.ndim != 1:
        raise InvalidInputError(f"labels must be 1-D; got shape {lab.shape}.")
    classes, codes = np.unique(lab, return_inverse=True)
    Y = np.zeros((lab.shape[0], classes.shape[0]))
    Y[np.arange(lab.shape[0]), codes] = 1.0
    return 2.0 * Y - 1.0 if centered else Y


def planted_relu(
    n: int = 200,
    d: int = 5,
    *,
    neurons: int = 3,
    noise: float = 0.1,
    seed: int = 0,
    outputs: int = 1,
) -> Dataset:
    """A seeded synthetic teacher: ``y = Σ_j (x^T u_j)_+ a_j + noise·ε``.

    The inputs ``X`` and the noise ``ε`` are standard Gaussian; the teacher's first-layer
    weights are ``u_j ~ N(0, I_d/d)`` and its output weights ``a_j = ±(1 + U[0, 1))`` with
    alternating signs (``+`` for the first neuron). Everything is drawn from one
    generator seeded with ``seed``.

    Parameters
    ----------
    n, d : int, default 200, 5
        Number of samples and of features.
    neurons : int, default 3
        Hidden neurons of the teacher.
    noise : float, default 0.1
        Standard deviation of the additive Gaussian noise.
    seed : int, default 0
        The seed.
    outputs : int, default 1
        Number of outputs ``c`` (``y`` is then n × c).

    Returns
    -------
    Dataset
        ``X`` (n × d), ``y`` (n,) or (n × c), and the teacher's weights in
        ``meta["teacher_U"]`` (d × neurons) and ``meta["teacher_A"]`` (neurons × c).

    Examples
    --------
    >>> import convexnn as cn
    >>> data = cn.planted_relu(n=50, d=3, seed=1)
    >>> data.X.shape, data.y.shape
    ((50, 3), (50,))
    """
    for name, val in (("n", n), ("d", d), ("neurons", neurons), ("outputs", outputs)):
        integer(val, name, minimum=1)
    noise = non_negative(noise, "noise")
    require_memory(8 * (3 * n * d + 3 * n * outputs + n * neurons), what="planted_relu",
                   sizes={"n": n, "d": d, "outputs": outputs})
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    U = rng.standard_normal((d, neurons)) / np.sqrt(d)
    signs = np.where(np.arange(neurons) % 2 == 0, 1.0, -1.0)
    A = signs[:, None] * (1.0 + rng.random((neurons, outputs)))
    Y = np.maximum(X @ U, 0.0) @ A + noise * rng.standard_normal((n, outputs))
    y = Y[:, 0] if outputs == 1 else Y
    return Dataset(
        X=X,
        y=y,
        name=f"planted_relu(n={n}, d={d}, neurons={neurons}, noise={noise}, seed={seed})",
        meta={"teacher_U": U, "teacher_A": A},
    )


def _resolve_path(path: str | os.PathLike, what: str) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise InvalidInputError(f"{what} file not found: {p}")
    if not p.is_file():
        raise InvalidInputError(f"{what} path is not a file: {p}")
    return p


def load_npz(path: str | os.PathLike, *, x_key: str = "X", y_key: str = "y") -> Dataset:
    """Load ``X`` and ``y`` from a ``.npz`` archive (``allow_pickle=False``)."""
    p = _resolve_path(path, "npz")
    if not zipfile.is_zipfile(p):
        raise InvalidInputError(f"{p}: not a readable .npz archive (not a zip file).")
    try:
        with np.load(p, allow_pickle=False) as f:
            keys = list(f.keys())
            missing = [k for k in (x_key, y_key) if k not in keys]
            if missing:
                raise InvalidInputError(
                    f"{p}: missing array(s) {missing}; found {keys}. "
                    f"Save with np.savez(path, {x_key}=X, {y_key}=y)."
                )
            X, y = f[x_key], f[y_key]
    except InvalidInputError:
        raise
    except ValueError as exc:  # object arrays refused without pickle
        raise InvalidInputError(f"{p}: cannot read without pickle ({exc}).") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise InvalidInputError(f"{p}: not a readable .npz archive ({exc}).") from None
    X, Y = validate_xy(X, y)
    return Dataset(X=X, y=Y[:, 0] if np.ndim(y) == 1 else Y, name=p.stem,
                   meta={"source": f"npz:{p}"})


def load_csv(
    path: str | os.PathLike, *, target: str | Sequence[str] | None = None
) -> Dataset:
    """Load a CSV with a header row; ``target`` names the target column(s) (default: last).

    Feature columns must be numeric. A non-numeric target column is encoded as
    integer class codes (the classes are kept in ``meta["classes"]``).
    """
    import pandas as pd

    p = _resolve_path(path, "csv")
    try:
        frame = pd.read_csv(p)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{p}: not a readable CSV file ({exc}).") from None
    if frame.shape[1] < 2:
        raise InvalidInputError(
            f"{p}: needs at least one feature column and one target column; "
            f"found columns {list(frame.columns)}."
        )
    targets = [frame.columns[-1]] if target is None else (
        [target] if isinstance(target, str) else list(target)
    )
    unknown = [t for t in targets if t not in frame.columns]
    if unknown:
        raise InvalidInputError(
            f"{p}: target column(s) {unknown} not found; columns are {list(frame.columns)}."
        )
    features = frame.drop(columns=targets)
    non_numeric = [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    if non_numeric:
        raise InvalidInputError(
            f"{p}: feature column(s) {non_numeric} are not numeric; encode them first."
        )
    meta: dict[str, Any] = {"source": f"csv:{p}", "features": list(features.columns),
                            "target": targets}
    tframe = frame[targets]
    if len(targets) == 1 and not pd.api.types.is_numeric_dtype(tframe.iloc[:, 0]):
        codes, classes = pd.factorize(tframe.iloc[:, 0], sort=True)
        if (codes < 0).any():
            raise InvalidInputError(f"{p}: target column {targets[0]!r} has missing values.")
        y = codes.astype(np.float64)
        meta["classes"] = [str(c) for c in classes]
    else:
        y = tframe.to_numpy(dtype=np.float64)
        y = y[:, 0] if len(targets) == 1 else y
    X, _ = validate_xy(features.to_numpy(dtype=np.float64), y)
    return Dataset(X=X, y=np.asarray(y, dtype=np.float64), name=p.stem, meta=meta)


def load_sklearn(name: str) -> Dataset:
    """Load one of scikit-learn's bundled data sets: iris, wine, breast_cancer, diabetes, digits."""
    from sklearn import datasets

    if name not in SKLEARN_DATASETS:
        raise InvalidInputError(
            f"unknown scikit-learn dataset {name!r}; choose one of {list(SKLEARN_DATASETS)}."
        )
    bunch = getattr(datasets, f"load_{name}")()
    X, _ = validate_xy(bunch.data, bunch.target)
    return Dataset(X=X, y=np.asarray(bunch.target, dtype=np.float64), name=name,
                   meta={"source": f"sklearn:{name}"})


def user_data_dir() -> Path:
    """convexnn's per-user data folder: ``$XDG_DATA_HOME/convexnn`` (default
    ``~/.local/share/convexnn``) on Linux, ``~/Library/Application Support/convexnn`` on
    macOS, ``%LOCALAPPDATA%\\convexnn`` on Windows."""
    if sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    elif os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "convexnn"


def uci_root(root: str | os.PathLike | None = None) -> Path:
    """The folder holding the UCI collection (``<name>/<name>_R.dat`` files).

    Looked up in order: the ``root`` argument (``--uci-root``), the ``CONVEXNN_UCI``
    environment variable, then ``uci/`` in the per-user data folder
    (:func:`user_data_dir`). The public archive of the collection (Fernández-Delgado et
    al., JMLR 2014, as preprocessed by Arora et al., ICLR 2020) is linked from ``docs/cli.md``.
    """
    if root is not None:
        where, how = Path(root).expanduser(), "--uci-root"
    elif os.environ.get(UCI_ENV):
        where, how = Path(os.environ[UCI_ENV]).expanduser(), f"${UCI_ENV}"
    else:
        where, how = user_data_dir() / "uci", "the default location"
    if where.is_dir():
        return where.resolve()
    raise InvalidInputError(
        f"UCI collection not found at {where} ({how}). Unpack the archive (see the README) "
        f"and point convexnn at the folder holding <name>/<name>_R.dat: --uci-root PATH, "
        f"or {UCI_ENV}=PATH, or put it at {user_data_dir() / 'uci'}."
    )


def list_uci(root: str | os.PathLike | None = None) -> list[str]:
    """Names of the UCI data sets available under :func:`uci_root`."""
    base = uci_root(root)
    return sorted(p.name for p in base.iterdir() if (p / f"{p.name}_R.dat").is_file())


def _read_index_lines(path: Path, n: int) -> list[np.ndarray]:
    out = []
    for k, line in enumerate(path.read_text().splitlines()):
        if not line.strip():
            continue
        try:
            idx = np.array([int(t) for t in line.split()], dtype=np.int64)
        except ValueError:
            raise InvalidInputError(f"{path}: line {k + 1} holds a non-integer index.") from None
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise InvalidInputError(f"{path}: line {k + 1} has an index outside 0..{n - 1}.")
        out.append(idx)
    return out


def load_uci(name: str, root: str | os.PathLike | None = None) -> Dataset:
    """Load a data set in the standard UCI layout (see the README of the data folder).

    ``meta`` holds ``"validation"`` (train, validation) index arrays and ``"folds"`` — a
    list of 4 (train, test) pairs — when the split files are present.
    """
    import pandas as pd

    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]*", name) \
            or ".." in name:
        raise InvalidInputError(f"{name!r} is not a UCI data set name (letters, digits, "
                                "'_', '-', '.', '+'; no path).")
    base = uci_root(root)
    folder = base / name
    dat = folder / f"{name}_R.dat"
    if not dat.is_file():
        known = list_uci(base)
        hint = ", ".join(known[:8]) + (" …" if len(known) > 8 else "")
        raise InvalidInputError(f"unknown UCI dataset {name!r} under {base} (known: {hint}).")
    try:
        frame = pd.read_csv(dat, sep="\t", index_col=0)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{dat}: unreadable ({exc}).") from None
    values = frame.to_numpy(dtype=np.float64)
    X, labels = values[:, :-1], values[:, -1]
    X, _ = validate_xy(X, labels)
    n = X.shape[0]
    meta: dict[str, Any] = {"source": f"uci:{name}", "root": str(base),
                            "classes": int(np.unique(labels).size)}
    split = folder / "conxuntos.dat"
    if split.is_file():
        lines = _read_index_lines(split, n)
        if len(lines) >= 2:
            meta["validation"] = (lines[0], lines[1])
    kfold = folder / "conxuntos_kfold.dat"
    if kfold.is_file():
        lines = _read_index_lines(kfold, n)
        meta["folds"] = [(lines[2 * k], lines[2 * k + 1]) for k in range(len(lines) // 2)]
    return Dataset(X=X, y=labels, name=name, meta=meta)
