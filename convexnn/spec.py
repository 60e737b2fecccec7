"""Problem specs: a TOML file → validated, frozen objects.

This module is the schema only: it validates a TOML document into frozen objects and
names every bad key. Loading the data a spec describes and solving it is
:mod:`convexnn.problems`. A spec has four sections (``[data]`` and ``[model]`` are
required)::

    [data]
    source = "synthetic:planted_relu"  # npz:PATH | csv:PATH | sklearn:NAME | uci:NAME
    n = 200                            # synthetic only: n, d, seed, neurons, noise, outputs
    bias = false                       # append a column of ones (every source)
    standardize = false                # zero-mean, unit-variance feature columns
    target = "auto"                    # auto | raw | onehot | signed (class labels → outputs)

    [patterns]
    method = "sample"                  # sample (count, seed) | enumerate (max_patterns)
    count = 100
    seed = 0

    [model]
    formulation = "gated_relu"         # any name in convexnn.formulations.REGISTRY
    lam_ratio = 0.1                    # exactly one of lam, lam_ratio (mu, mu_ratio for μ)
    [model.options]                    # formulation-specific keyword options

    [solver]
    name = "clarabel"
    tolerance = 1e-6                   # relative duality gap the certificate must reach
    method = "auto"
    [solver.options]                   # passed to the solver (e.g. max_iter)

Source-specific ``[data]`` keys: ``npz``: ``x_key``, ``y_key`` (default ``"X"``, ``"y"``);
``csv``: ``target_column`` (a column name or a list; default the last column);
``uci``: ``split`` = ``"all"`` (default) | ``"train"`` | ``"validation"`` (the two halves
of the collection's ``conxuntos.dat`` validation split). Relative paths resolve against
the spec file. Class labels are encoded by ``target``: ``"signed"`` gives ±1 one-hot
columns — one ±1 column (+1 for the larger label) for two classes; ``"onehot"`` gives 0/1
indicator columns; ``"raw"`` keeps the values as they are; ``"auto"`` (the default) is
``"signed"`` for classification sources (scikit-learn's iris, wine, breast_cancer and
digits, every UCI set, a CSV file whose target column holds text) and ``"raw"``
otherwise.

Every unknown section or key, and every value of the wrong type or outside its range,
raises :class:`~convexnn.errors.InvalidInputError` naming the file, the key, the value and
what is allowed.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .data import SKLEARN_DATASETS, Dataset, planted_relu
from .errors import InvalidInputError

__all__ = [
    "DataSpec",
    "PatternSpec",
    "ModelSpec",
    "SolverSpec",
    "ProblemSpec",
    "load_spec",
    "parse_spec",
    "parse_data",
    "bundled_problems",
    "find_problem",
    "PROBLEMS_DIR",
    "SOURCE_KINDS",
    "TARGET_ENCODINGS",
    "SYNTHETIC",
]

#: Folder of the bundled problem specs (present in a source checkout).
PROBLEMS_DIR = Path(__file__).resolve().parent.parent / "problems"

SOURCE_KINDS = ("npz", "csv", "sklearn", "uci", "synthetic")
TARGET_ENCODINGS = ("auto", "raw", "onehot", "signed")
UCI_SPLITS = ("all", "train", "validation")
PATTERN_METHODS = ("sample", "enumerate")
SECTIONS = ("data", "patterns", "model", "solver")
#: Synthetic data generators by name (``source = "synthetic:NAME"``).
SYNTHETIC: Mapping[str, Callable[..., Dataset]] = MappingProxyType({"planted_relu": planted_relu})
#: scikit-learn data sets whose target is a class label.
SKLEARN_CLASSIFICATION = ("iris", "wine", "breast_cancer", "digits")

#: More distinct target values than this are taken for a real-valued target, not labels.
MAX_CLASSES = 100

_COMMON_DATA_KEYS = ("source", "bias", "standardize", "target")
_DATA_KEYS = {
    "synthetic": ("n", "d", "seed", "neurons", "noise", "outputs"),
    "npz": ("x_key", "y_key"),
    "csv": ("target_column",),
    "sklearn": (),
    "uci": ("split",),
}
_SYNTHETIC_DEFAULTS = {"n": 200, "d": 5, "seed": 0, "neurons": 3, "noise": 0.1, "outputs": 1}


# ---------------------------------------------------------------------------
# Frozen spec objects
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DataSpec:
    """Where the data come from and how they are encoded.

    ``location`` is the resolved absolute path (``npz``, ``csv``) or the data set name
    (``sklearn``, ``uci``, ``synthetic``). Fields that do not apply to ``kind`` are None.
    """

    kind: str
    location: str
    bias: bool = False
    standardize: bool = False
    target: str = "auto"
    n: int | None = None
    d: int | None = None
    seed: int | None = None
    neurons: int | None = None
    noise: float | None = None
    outputs: int | None = None
    x_key: str | None = None
    y_key: str | None = None
    target_column: str | tuple[str, ...] | None = None
    split: str | None = None

    @property
    def source(self) -> str:
        return f"{self.kind}:{self.location}"

    def as_dict(self) -> dict[str, Any]:
        """The section as TOML-ready values (absolute paths), re-parsable by :func:`parse_data`."""
        out: dict[str, Any] = {"source": self.source, "bias": self.bias,
                               "standardize": self.standardize, "target": self.target}
        for key in _DATA_KEYS[self.kind]:
            value = getattr(self, key)
            if value is not None:
                out[key] = list(value) if isinstance(value, tuple) else value
        return out


@dataclass(frozen=True)
class PatternSpec:
    """``method = "sample"`` (``count`` Gaussian gates, ``seed``) or ``"enumerate"``."""

    method: str = "sample"
    count: int | None = 100
    seed: int | None = 0
    max_patterns: int | None = None

    def as_dict(self) -> dict[str, Any]:
        keys = ("count", "seed") if self.method == "sample" else ("max_patterns",)
        out: dict[str, Any] = {"method": self.method}
        out.update({k: getattr(self, k) for k in keys if getattr(self, k) is not None})
        return out


@dataclass(frozen=True)
class ModelSpec:
    """Formulation and regularisation: ``reg`` itself or ``reg_ratio · reg_max(data)``."""

    formulation: str
    reg_name: str = "lam"
    reg: float | None = None
    reg_ratio: float | None = None
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"formulation": self.formulation}
        if self.reg is not None:
            out[self.reg_name] = self.reg
        if self.reg_ratio is not None:
            out[f"{self.reg_name}_ratio"] = self.reg_ratio
        if self.options:
            out["options"] = dict(self.options)
        return out


@dataclass(frozen=True)
class SolverSpec:
    """Solver name, certificate tolerance, method and solver options."""

    name: str = "clarabel"
    tolerance: float = 1e-6
    method: str = "auto"
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "tolerance": self.tolerance,
                               "method": self.method}
        if self.options:
            out["options"] = dict(self.options)
        return out


@dataclass(frozen=True)
class ProblemSpec:
    """A validated problem spec; ``name`` is the file stem, ``path`` the file."""

    name: str
    data: DataSpec
    patterns: PatternSpec
    model: ModelSpec
    solver: SolverSpec
    path: Path | None = None
    description: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"data": self.data.as_dict(), "patterns": self.patterns.as_dict(),
                "model": self.model.as_dict(), "solver": self.solver.as_dict()}


# ---------------------------------------------------------------------------
# Validation helpers
# ---------------------------------------------------------------------------


class _Section:
    """Typed reads from one TOML table; leftover keys are reported as unknown."""

    def __init__(self, table: Any, name: str, origin: str):
        self.name, self.origin = name, origin
        if not isinstance(table, Mapping):
            self.fail_raw(f"[{name}] must be a table (a [{name}] section); "
                          f"got {type(table).__name__} {table!r}.")
        self.table = dict(table)
        self.used: set[str] = set()

    def fail_raw(self, message: str) -> None:
        raise InvalidInputError(f"{self.origin}: {message}")

    def fail(self, key: str, value: Any, expected: str) -> None:
        text = repr(value)
        if len(text) > 60:
            text = text[:40] + f"… ({len(text)} characters)"
        self.fail_raw(f"[{self.name}] {key} = {text}: expected {expected}.")

    def has(self, key: str) -> bool:
        return key in self.table

    def get(self, key: str) -> Any:
        self.used.add(key)
        return self.table.get(key)

    def integer(self, key: str, default: int | None, minimum: int | None = None) -> int | None:
        if key not in self.table:
            return default
        value = self.get(key)
        below = minimum is not None and isinstance(value, int) and value < minimum
        huge = isinstance(value, int) and abs(value) >= 2**63
        if isinstance(value, bool) or not isinstance(value, int) or below or huge:
            bound = f" ≥ {minimum}" if minimum is not None else ""
            self.fail(key, value, f"an integer{bound} below 2^63")
        return int(value)

    def number(self, key: str, default: float | None, *, low: float | None = None,
               high: float | None = None, open_low: bool = False) -> float | None:
        if key not in self.table:
            return default
        value = self.get(key)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        try:
            ok = ok and math.isfinite(float(value))
        except OverflowError:  # an integer beyond the float range
            ok = False
        if ok and low is not None:
            ok = float(value) > low if open_low else float(value) >= low
        if ok and high is not None:
            ok = float(value) < high
        if not ok:
            rng = []
            if low is not None:
                rng.append(f"{'>' if open_low else '≥'} {low:g}")
            if high is not None:
                rng.append(f"< {high:g}")
            self.fail(key, value, "a finite number" + (f" {' and '.join(rng)}" if rng else ""))
        return float(value)

    def boolean(self, key: str, default: bool) -> bool:
        if key not in self.table:
            return default
        value = self.get(key)
        if not isinstance(value, bool):
            self.fail(key, value, "true or false")
        return value

    def string(self, key: str, default: str | None, choices: tuple[str, ...] | None = None
               ) -> str | None:
        if key not in self.table:
            return default
        value = self.get(key)
        if not isinstance(value, str) or not value.strip():
            self.fail(key, value, "a non-empty string" + (
                f", one of {list(choices)}" if choices else ""))
        if choices is not None and value not in choices:
            self.fail(key, value, f"one of {list(choices)}")
        return value

    def table_of_scalars(self, key: str) -> Mapping[str, Any]:
        if key not in self.table:
            return MappingProxyType({})
        value = self.get(key)
        if not isinstance(value, Mapping):
            self.fail(key, value, f"a table ([{self.name}.{key}])")
        for k, v in value.items():
            if not _plain(v):
                self.fail_raw(f"[{self.name}.{key}] {k} = {v!r}: expected a number, string, "
                              "boolean or a list of them.")
        return MappingProxyType(dict(value))

    def finish(self, allowed: tuple[str, ...], hint: Mapping[str, str] | None = None) -> None:
        extra = [k for k in self.table if k not in self.used]
        if not extra:
            return
        key = extra[0]
        why = (hint or {}).get(key)
        if why:
            self.fail_raw(f"[{self.name}] {key}: {why}")
        self.fail_raw(f"unknown key {key!r} in [{self.name}]; allowed keys: {list(allowed)}.")


def _plain(value: Any) -> bool:
    if isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, list):
        return all(isinstance(v, (bool, int, float, str)) for v in value)
    return False


def _resolve(path_text: str, base_dir: Path | None) -> Path:
    p = Path(path_text).expanduser()
    if not p.is_absolute() and base_dir is not None:
        p = base_dir / p
    return p.resolve()


# ---------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------


def parse_data(table: Any, *, base_dir: Path | None = None, origin: str = "spec") -> DataSpec:
    """Validate a ``[data]`` table into a :class:`DataSpec` (relative paths → ``base_dir``)."""
    sec = _Section(table, "data", origin)
    source = sec.string("source", None)
    if source is None:
        sec.fail_raw(f"[data] source is missing; give one of {[k + ':…' for k in SOURCE_KINDS]}"
                     ", e.g. source = \"synthetic:planted_relu\".")
    kind, sep, location = source.partition(":")
    if not sep or kind not in SOURCE_KINDS or not location.strip():
        sec.fail("source", source, "'KIND:WHAT' with KIND one of "
                 f"{list(SOURCE_KINDS)} (npz:PATH, csv:PATH, sklearn:NAME, uci:NAME, "
                 f"synthetic:{'|'.join(SYNTHETIC)})")
    location = location.strip()
    allowed = _COMMON_DATA_KEYS + _DATA_KEYS[kind]
    hint = {k: f"applies only to {other} sources (this source is {kind}:); allowed keys "
               f"here: {list(allowed)}."
            for other, keys in _DATA_KEYS.items() if other != kind for k in keys
            if k not in allowed}

    fields: dict[str, Any] = {}
    if kind in ("npz", "csv"):
        path = _resolve(location, base_dir)
        if not path.is_file():
            sec.fail_raw(f"[data] source = {source!r}: file not found: {path}")
        location = str(path)
    elif kind == "sklearn":
        if location not in SKLEARN_DATASETS:
            sec.fail("source", source, f"a scikit-learn data set, one of "
                     f"{['sklearn:' + s for s in SKLEARN_DATASETS]}")
    elif kind == "synthetic":
        if location not in SYNTHETIC:
            sec.fail("source", source, f"one of {['synthetic:' + s for s in SYNTHETIC]}")
        d = _SYNTHETIC_DEFAULTS
        fields.update(
            n=sec.integer("n", d["n"], 1), d=sec.integer("d", d["d"], 1),
            seed=sec.integer("seed", d["seed"], 0),
            neurons=sec.integer("neurons", d["neurons"], 1),
            noise=sec.number("noise", d["noise"], low=0.0),
            outputs=sec.integer("outputs", d["outputs"], 1),
        )
    if kind == "npz":
        fields.update(x_key=sec.string("x_key", "X"), y_key=sec.string("y_key", "y"))
    if kind == "csv" and sec.has("target_column"):
        col = sec.get("target_column")
        if isinstance(col, str) and col:
            fields["target_column"] = col
        elif isinstance(col, list) and col and all(isinstance(c, str) and c for c in col):
            fields["target_column"] = tuple(col)
        else:
            sec.fail("target_column", col, "a column name or a list of column names")
    if kind == "uci":
        fields["split"] = sec.string("split", "all", UCI_SPLITS)

    target = sec.string("target", "auto", TARGET_ENCODINGS)
    if kind == "synthetic" and target not in ("auto", "raw"):
        sec.fail("target", target, "'auto' or 'raw' (synthetic targets are real-valued)")
    spec = DataSpec(
        kind=kind, location=location,
        bias=sec.boolean("bias", False),
        standardize=sec.boolean("standardize", False),
        target=target,
        **fields,
    )
    sec.finish(allowed, hint)
    return spec


def _parse_patterns(table: Any, origin: str) -> PatternSpec:
    sec = _Section(table, "patterns", origin)
    method = sec.string("method", "sample", PATTERN_METHODS)
    if method == "sample":
        spec = PatternSpec("sample", count=sec.integer("count", 100, 1),
                           seed=sec.integer("seed", 0, 0))
        allowed = ("method", "count", "seed")
        hint = {"max_patterns": "applies only to method = \"enumerate\"."}
    else:
        spec = PatternSpec("enumerate", count=None, seed=None,
                           max_patterns=sec.integer("max_patterns", None, 1))
        allowed = ("method", "max_patterns")
        hint = {k: "applies only to method = \"sample\" (enumerate finds every pattern)."
                for k in ("count", "seed")}
    sec.finish(allowed, hint)
    return spec


def _parse_model(table: Any, origin: str) -> ModelSpec:
    from .formulations import REGISTRY

    sec = _Section(table, "model", origin)
    name = sec.string("formulation", None)
    if name is None:
        sec.fail_raw(f"[model] formulation is missing; choose one of {sorted(REGISTRY)}.")
    if name not in REGISTRY:
        sec.fail("formulation", name, f"a registered formulation, one of {sorted(REGISTRY)}")
    reg_name = REGISTRY[name].reg_name
    names = ["lam", "lam_ratio"] + (["mu", "mu_ratio"] if reg_name == "mu" else [])
    foreign = [k for k in ("mu", "mu_ratio") if k not in names and sec.has(k)]
    if foreign:
        sec.fail_raw(f"[model] {foreign[0]}: {name} is regularised by {reg_name}, not mu; "
                     f"use one of {names}.")
    given = [k for k in names if sec.has(k)]
    if len(given) != 1:
        what = "none" if not given else " and ".join(given)
        sec.fail_raw(f"[model] needs exactly one of {names} for {name}; got {what}.")
    key = given[0]
    value = sec.number(key, None, low=0.0, open_low=True)
    ratio = key.endswith("_ratio")
    options = sec.table_of_scalars("options")
    sec.finish(("formulation", *names, "options"))
    return ModelSpec(name, reg_name, None if ratio else value, value if ratio else None,
                     options)


def _parse_solver(table: Any, origin: str) -> SolverSpec:
    sec = _Section(table, "solver", origin)
    spec = SolverSpec(
        name=sec.string("name", "clarabel"),
        tolerance=sec.number("tolerance", 1e-6, low=0.0, high=1.0, open_low=True),
        method=sec.string("method", "auto"),
        options=sec.table_of_scalars("options"),
    )
    sec.finish(("name", "tolerance", "method", "options"))
    return spec


def parse_spec(document: Mapping[str, Any], *, base_dir: Path | None = None,
               name: str = "problem", origin: str = "spec", path: Path | None = None,
               description: str = "") -> ProblemSpec:
    """Validate a parsed TOML document (a mapping of sections) into a :class:`ProblemSpec`."""
    if not isinstance(document, Mapping):
        raise InvalidInputError(f"{origin}: a spec is a TOML document with sections "
                                f"{['[' + s + ']' for s in SECTIONS]}.")
    unknown = [k for k in document if k not in SECTIONS]
    if unknown:
        raise InvalidInputError(
            f"{origin}: unknown section or key {unknown[0]!r}; allowed sections: "
            f"{['[' + s + ']' for s in SECTIONS]}."
        )
    for required in ("data", "model"):
        if required not in document:
            raise InvalidInputError(f"{origin}: missing section [{required}].")
    from .formulations import REGISTRY

    model = _parse_model(document["model"], origin)
    solver = _parse_solver(document.get("solver", {}), origin)
    methods = ["auto", *REGISTRY[model.formulation].methods]
    if solver.method not in methods:
        raise InvalidInputError(f"{origin}: [solver] method = {solver.method!r}: expected one "
                                f"of {methods} for {model.formulation}.")
    return ProblemSpec(
        name=name,
        data=parse_data(document["data"], base_dir=base_dir, origin=origin),
        patterns=_parse_patterns(document.get("patterns", {}), origin),
        model=model,
        solver=solver,
        path=path,
        description=description,
    )


def _description(text: str) -> str:
    """The leading comment block of a spec file, joined into one paragraph."""
    lines = []
    for line in text.splitlines():
        s = line.strip()
        if not s.startswith("#"):
            break
        lines.append(s.lstrip("#").strip())
    return " ".join(x for x in lines if x)


def _read_toml(p: Path) -> tuple[dict[str, Any], str]:
    """The parsed TOML document of the file ``p`` and its description (:func:`_description`).

    A file that is not UTF-8 text or not valid TOML raises
    :class:`~convexnn.errors.InvalidInputError` naming the file.
    """
    try:
        text = p.read_text(encoding="utf-8")
        document = tomllib.loads(text)
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{p}: not a UTF-8 text file ({exc}).") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInputError(f"{p}: not valid TOML ({exc}).") from None
    return document, _description(text)


def load_spec(path: str | Path) -> ProblemSpec:
    """Read and validate a TOML problem spec (relative data paths resolve against it).

    The format (sections ``[data]``, ``[patterns]``, ``[model]``, ``[solver]``) is
    described in the documentation's page on the command line and specs; unknown keys
    and values of the wrong type or range are errors naming the key.

    Parameters
    ----------
    path : str or path
        The ``.toml`` file.

    Returns
    -------
    ProblemSpec
        The validated spec (frozen), ready for :func:`convexnn.solve_spec`.

    Raises
    ------
    InvalidInputError
        A missing file, malformed TOML, or a bad key or value (named).
    """
    p = Path(path).expanduser()
    if not p.is_file():
        hint = ""
        if not p.suffix and find_problem(str(path)) is None and bundled_problems():
            hint = f" (bundled problems: {sorted(bundled_problems())})"
        raise InvalidInputError(f"spec file not found: {p}{hint}")
    document, description = _read_toml(p)
    return parse_spec(document, base_dir=p.resolve().parent, name=p.stem, origin=str(p),
                      path=p.resolve(), description=description)


def bundled_problems(directory: Path | None = None) -> dict[str, tuple[Path, str]]:
    """The bundled specs: ``{name: (path, first line of the leading comment)}``."""
    folder = PROBLEMS_DIR if directory is None else Path(directory)
    if not folder.is_dir():
        return {}
    out = {}
    for p in sorted(folder.glob("*.toml")):
        text = p.read_text(encoding="utf-8", errors="replace")
        first = next((ln.strip().lstrip("#").strip() for ln in text.splitlines()
                      if ln.strip().startswith("#") and ln.strip().lstrip("#").strip()), "")
        out[p.stem] = (p, first)
    return out


def find_problem(name: str) -> Path | None:
    """The bundled spec called ``name`` (``"quickstart"``), or None."""
    entry = bundled_problems().get(name)
    return None if entry is None else entry[0]
