"""Sweep specs: a TOML file naming data sets × models × a regularisation grid × a protocol.

This module is the schema only (validation into frozen objects); planning the tasks is
:mod:`convexnn.sweeps.tasks` and running them :mod:`convexnn.sweeps.run`. A sweep spec::

    # Small UCI sets × gated ReLU, ReLU and the NTK.   (first comment: the description)
    [data]
    sources = ["uci:iris", "uci:wine"]  # any [data] source; "uci:*" = every UCI set
    bias = true                         # bias, standardize, target: as in a problem spec
    max_n = 500                         # filters of "uci:*": max_n, min_n, max_d,
    exclude = ["zoo"]                   #   max_classes, exclude

    [protocol]
    kind = "uci"         # uci: select on conxuntos.dat, test on the 4 conxuntos_kfold.dat pairs
                         # kfold: folds = 5, seed = 0, test_fraction = 0.2

    [patterns]           # as in a problem spec; gates are drawn on each training split
    count = 50

    [grid]               # the default grid of every model (a model may give its own)
    lam_ratios = [1.0, 0.1, 0.01]       # or lams; mu_ratios / mus for μ-regularised models

    [[model]]
    formulation = "gated_relu"          # any name in convexnn.formulations.REGISTRY
    [[model]]
    estimator = "NTKRegressor"          # or an estimator (convexnn.sweeps.models.ESTIMATORS)
    [[model]]
    name = "ntk"                        # a label (default: the formulation), unique
    formulation = "ntk"
    mu_ratios = [0.1, 0.01]
    method = "auto"                     # any method of the formulation
    options = {}                        # its options, as [model.options] of a problem spec

    [solver]
    name = "clarabel"
    tolerance = 1e-6
    options = {}

Unknown sections and keys, and values of the wrong type or range, raise
:class:`~convexnn.errors.InvalidInputError` naming the file, the key and what is allowed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..errors import InvalidInputError
from ..spec import (
    PROBLEMS_DIR,
    SOURCE_KINDS,
    DataSpec,
    PatternSpec,
    _parse_patterns,
    _read_toml,
    _Section,
    parse_data,
)

__all__ = [
    "SweepSpec",
    "DataSelection",
    "ProtocolSpec",
    "Grid",
    "ModelEntry",
    "SweepSolver",
    "load_sweep",
    "parse_sweep",
    "find_sweep",
    "SWEEPS_DIR",
    "PROTOCOLS",
    "UCI_ALL",
]

#: Folder of the bundled sweep specs (present in a source checkout).
SWEEPS_DIR = PROBLEMS_DIR / "sweeps"
PROTOCOLS = ("uci", "kfold")
SECTIONS = ("data", "protocol", "patterns", "grid", "model", "solver")
#: The source that stands for every data set of the UCI collection.
UCI_ALL = "uci:*"
#: The most values a grid (or a list of sources) may hold.
MAX_LIST = 1000
_FILTERS = ("max_n", "min_n", "max_d", "max_classes", "exclude")


# ---------------------------------------------------------------------------
# Frozen spec objects
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DataSelection:
    """The data sets of a sweep: ``entries`` in the order given — a :class:`DataSpec`
    per named source, or :data:`UCI_ALL` for the collection (expanded when planning,
    with the filters). ``shared`` holds the other ``[data]`` keys, applied to every
    source."""

    entries: tuple[DataSpec | str, ...]
    shared: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    max_n: int | None = None
    min_n: int | None = None
    max_d: int | None = None
    max_classes: int | None = None
    exclude: tuple[str, ...] = ()

    def uci_spec(self, name: str) -> DataSpec:
        """The :class:`DataSpec` of the UCI set ``name`` with the shared keys."""
        return parse_data({"source": f"uci:{name}", **self.shared}, origin="[data]")

    def admits(self, n: int, d: int, classes: int | None) -> bool:
        """Whether a UCI set of this size passes the filters of ``"uci:*"``."""
        return ((self.max_n is None or n <= self.max_n)
                and (self.min_n is None or n >= self.min_n)
                and (self.max_d is None or d <= self.max_d)
                and (self.max_classes is None or classes is None
                     or classes <= self.max_classes))

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"sources": [e if isinstance(e, str) else e.source
                                           for e in self.entries], **self.shared}
        for key in _FILTERS:
            value = getattr(self, key)
            if value not in (None, ()):
                out[key] = list(value) if isinstance(value, tuple) else value
        return out


@dataclass(frozen=True)
class ProtocolSpec:
    """How each data set is split.

    ``"uci"``: fold 0 trains on the first half of the collection's ``conxuntos.dat`` and
    is scored on the second (validation: model selection); folds 1–4 train and test on
    the pairs of ``conxuntos_kfold.dat``. ``"kfold"``: a seeded stratified hold-out of
    ``test_fraction`` of the points is the test set; the rest is split into ``folds``
    folds, fold ``k`` (1-based) trains on the others and is scored on fold ``k``
    (validation) and on the test set.
    """

    kind: str = "uci"
    folds: int | None = None
    seed: int | None = None
    test_fraction: float | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        if self.kind == "kfold":
            out.update(folds=self.folds, seed=self.seed, test_fraction=self.test_fraction)
        return out


@dataclass(frozen=True)
class Grid:
    """Regularisation values of a path: ``reg_name`` (``"lam"``, ``"mu"``, or an
    estimator's parameter) and its ``values`` — ratios of ``reg_max`` when ``ratio``."""

    reg_name: str
    values: tuple[float, ...]
    ratio: bool = True

    @property
    def key(self) -> str:
        """The spec key: ``lam_ratios``, ``lams``, ``mu_ratios``, ``mus``, …"""
        return f"{self.reg_name}_ratios" if self.ratio else f"{self.reg_name}s"

    def as_dict(self) -> dict[str, Any]:
        return {self.key: list(self.values)}


@dataclass(frozen=True)
class ModelEntry:
    """One model of a sweep: a registered formulation (``kind = "formulation"``) or a
    registered estimator (``kind = "estimator"``, :data:`convexnn.sweeps.models.ESTIMATORS`),
    its label, grid, method and options."""

    name: str
    kind: str
    target: str
    grid: Grid
    method: str = "auto"
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, self.kind: self.target, **self.grid.as_dict()}
        if self.kind == "formulation":
            out["method"] = self.method
        if self.options:
            out["options"] = dict(self.options)
        return out


@dataclass(frozen=True)
class SweepSolver:
    """Solver name, certificate tolerance and solver options (the method is per model)."""

    name: str = "clarabel"
    tolerance: float = 1e-6
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "tolerance": self.tolerance}
        if self.options:
            out["options"] = dict(self.options)
        return out


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep spec; ``name`` is the file stem."""

    name: str
    data: DataSelection
    protocol: ProtocolSpec
    patterns: PatternSpec
    models: tuple[ModelEntry, ...]
    solver: SweepSolver
    path: Path | None = None
    description: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The spec as plain values: what ``DIR/sweep.json`` stores and compares."""
        return {"data": self.data.as_dict(), "protocol": self.protocol.as_dict(),
                "patterns": self.patterns.as_dict(),
                "model": [m.as_dict() for m in self.models], "solver": self.solver.as_dict()}

    def __repr__(self) -> str:
        return (f"SweepSpec({self.name!r}, sources={len(self.data.entries)}, "
                f"models={[m.name for m in self.models]}, protocol={self.protocol.kind!r})")


# ---------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------


def _numbers(sec: _Section, key: str) -> tuple[float, ...]:
    """A non-empty list (at most MAX_LIST) of positive finite numbers."""
    value = sec.get(key)
    ok = isinstance(value, list) and 0 < len(value) <= MAX_LIST
    if ok:
        for v in value:
            try:
                ok = (isinstance(v, (int, float)) and not isinstance(v, bool)
                      and math.isfinite(float(v)) and float(v) > 0)
            except OverflowError:
                ok = False
            if not ok:
                break
    if not ok:
        sec.fail(key, value, f"a non-empty list (at most {MAX_LIST}) of positive finite "
                             "numbers, e.g. [1.0, 0.1, 0.01]")
    return tuple(float(v) for v in value)


def _names(sec: _Section, key: str) -> tuple[str, ...]:
    value = sec.get(key)
    if not (isinstance(value, list) and len(value) <= MAX_LIST
            and all(isinstance(v, str) and v.strip() for v in value)):
        sec.fail(key, value, f"a list (at most {MAX_LIST}) of non-empty strings")
    return tuple(v.strip() for v in value)


def _parse_data(table: Any, base_dir: Path | None, origin: str) -> DataSelection:
    sec = _Section(table, "data", origin)
    if sec.has("source") and not sec.has("sources"):
        sec.fail_raw("[data] source: a sweep takes a list: sources = [\"uci:iris\", …] "
                     "(\"uci:*\" for every UCI set).")
    if not sec.has("sources"):
        sec.fail_raw("[data] sources is missing; e.g. sources = [\"uci:iris\", \"uci:wine\"] "
                     "or [\"uci:*\"].")
    sources = _names(sec, "sources")
    if not sources:
        sec.fail("sources", [], "at least one source")
    if len(set(sources)) != len(sources):
        dup = next(s for s in sources if sources.count(s) > 1)
        sec.fail("sources", list(sources), f"each source once ({dup!r} is repeated)")
    if "split" in sec.table:
        sec.fail_raw("[data] split: the splits of a sweep are chosen by [protocol].")
    filters: dict[str, Any] = {
        "max_n": sec.integer("max_n", None, 1), "min_n": sec.integer("min_n", None, 1),
        "max_d": sec.integer("max_d", None, 1),
        "max_classes": sec.integer("max_classes", None, 2),
        "exclude": _names(sec, "exclude") if sec.has("exclude") else (),
    }
    given = [k for k in _FILTERS if sec.has(k)]
    if given and UCI_ALL not in sources:
        sec.fail_raw(f"[data] {given[0]}: the filters {list(_FILTERS)} select among the UCI "
                     f"sets of \"{UCI_ALL}\", which sources does not list.")
    shared = {k: v for k, v in sec.table.items() if k not in ("sources", *_FILTERS)}
    sec.used |= set(shared)
    entries: list[DataSpec | str] = []
    for source in sources:
        if source == UCI_ALL:
            entries.append(UCI_ALL)
            probe = {"source": "uci:probe", **shared}  # the shared keys must suit uci sets
            parse_data(probe, base_dir=base_dir, origin=origin)
            continue
        kind = source.partition(":")[0]
        if kind not in SOURCE_KINDS:
            sec.fail("sources", source, f"'KIND:WHAT' with KIND one of {list(SOURCE_KINDS)}, "
                                        f"or \"{UCI_ALL}\"")
        entries.append(parse_data({"source": source, **shared}, base_dir=base_dir,
                                  origin=origin))
    # the shared keys as validated (defaults filled) by the first source that takes them
    first = entries[0] if isinstance(entries[0], DataSpec) else None
    normal = dict(shared)
    if first is not None:
        normal.update({k: v for k, v in first.as_dict().items() if k in shared})
    return DataSelection(tuple(entries), MappingProxyType(normal), **{
        k: v for k, v in filters.items()})


def _parse_protocol(table: Any, data: DataSelection, origin: str) -> ProtocolSpec:
    sec = _Section(table, "protocol", origin)
    all_uci = all(isinstance(e, str) or e.kind == "uci" for e in data.entries)
    kind = sec.string("kind", "uci" if all_uci else "kfold", PROTOCOLS)
    if kind == "uci":
        if not all_uci:
            other = next(e.source for e in data.entries if not isinstance(e, str)
                         and e.kind != "uci")
            sec.fail_raw(f"[protocol] kind = \"uci\" uses the UCI collection's split files; "
                         f"source {other!r} has none: use kind = \"kfold\".")
        sec.finish(("kind",), {k: "applies to kind = \"kfold\"."
                               for k in ("folds", "seed", "test_fraction")})
        return ProtocolSpec("uci")
    spec = ProtocolSpec(
        "kfold", folds=sec.integer("folds", 5, 2), seed=sec.integer("seed", 0, 0),
        test_fraction=sec.number("test_fraction", 0.2, low=0.0, high=1.0),
    )
    sec.finish(("kind", "folds", "seed", "test_fraction"))
    return spec


def _grid_keys(reg_name: str, ratios: bool) -> list[str]:
    """The grid keys of a model: ``{reg}_ratios`` (when it takes ratios) and ``{reg}s``."""
    return [f"{reg_name}_ratios", f"{reg_name}s"] if ratios else [f"{reg_name}s"]


def _parse_grid(sec: _Section, keys: list[str], defaults: Mapping[str, tuple[float, ...]],
                reg_name: str, what: str) -> Grid:
    given = [k for k in keys if sec.has(k)]
    if len(given) > 1:
        sec.fail_raw(f"[{sec.name}] give one of {keys} for {what}, not {' and '.join(given)}.")
    if given:
        key, values = given[0], _numbers(sec, given[0])
    else:
        found = [k for k in keys if k in defaults]
        if not found:
            sec.fail_raw(f"[{sec.name}] {what} needs a grid: one of {keys} here or in [grid].")
        key, values = found[0], defaults[found[0]]
    return Grid(reg_name, values, ratio=key.endswith("_ratios"))


def _parse_model(table: Any, index: int, defaults: Mapping[str, tuple[float, ...]],
                 origin: str) -> ModelEntry:
    from ..formulations import REGISTRY
    from .models import ESTIMATORS

    sec = _Section(table, "model", origin)
    kinds = [k for k in ("formulation", "estimator") if sec.has(k)]
    if len(kinds) != 1:
        sec.fail_raw(f"[[model]] number {index + 1} needs exactly one of formulation (one of "
                     f"{sorted(REGISTRY)}) or estimator (one of {sorted(ESTIMATORS)}).")
    kind = kinds[0]
    for singular in ("lam", "lam_ratio", "mu", "mu_ratio"):
        if sec.has(singular):
            sec.fail_raw(f"[[model]] {singular}: a sweep takes a grid: {singular}s = [...].")
    if kind == "formulation":
        target = sec.string("formulation", None)
        if target not in REGISTRY:
            sec.fail("formulation", target, f"a registered formulation, one of "
                                            f"{sorted(REGISTRY)}")
        form = REGISTRY[target]
        reg_name = form.reg_name
        keys = _grid_keys(reg_name, True)
        method = sec.string("method", "auto", ("auto", *form.methods))
        extra: tuple[str, ...] = ("method",)
    else:
        target = sec.string("estimator", None)
        if target not in ESTIMATORS:
            sec.fail("estimator", target, f"a registered estimator, one of {sorted(ESTIMATORS)}")
        entry = ESTIMATORS[target]
        reg_name = entry.reg
        keys = _grid_keys(reg_name, entry.ratio is not None)
        method, extra = "auto", ()
    name = sec.string("name", target)
    grid = _parse_grid(sec, keys, defaults, reg_name, f"{kind} {target!r}")
    options = sec.table_of_scalars("options")
    if kind == "formulation":
        _check_options(REGISTRY[target], method, options, origin)
    sec.finish(("name", kind, *keys, *extra, "options"))
    return ModelEntry(name, kind, target, grid, method, options)


def _check_options(form: Any, method: str, options: Mapping[str, Any], origin: str) -> None:
    """Options a method does not take are named now, not in every task."""
    from ..solving import split_options

    opts = {k: v for k, v in options.items() if k != "memory_limit"}
    methods = list(form.methods) if method == "auto" else [method]
    errors = []
    for m in methods:
        try:
            split_options(form, m, opts)
            return
        except InvalidInputError as exc:
            errors.append(str(exc))
    raise InvalidInputError(f"{origin}: [[model]] {form.name} options: {errors[0]}")


def _parse_grid_section(table: Any, origin: str) -> dict[str, tuple[float, ...]]:
    sec = _Section(table, "grid", origin)
    keys = ("lam_ratios", "lams", "mu_ratios", "mus")
    out = {k: _numbers(sec, k) for k in keys if sec.has(k)}
    sec.finish(keys)
    for a, b in (("lam_ratios", "lams"), ("mu_ratios", "mus")):
        if a in out and b in out:
            sec.fail_raw(f"[grid] give one of {a}, {b}, not both.")
    return out


def _parse_solver(table: Any, origin: str) -> SweepSolver:
    sec = _Section(table, "solver", origin)
    spec = SweepSolver(
        name=sec.string("name", "clarabel"),
        tolerance=sec.number("tolerance", 1e-6, low=0.0, high=1.0, open_low=True),
        options=sec.table_of_scalars("options"),
    )
    sec.finish(("name", "tolerance", "options"),
               {"method": "a sweep sets the method per model ([[model]] method = …)."})
    return spec


# ---------------------------------------------------------------------------
# Documents and files
# ---------------------------------------------------------------------------


def parse_sweep(document: Mapping[str, Any], *, base_dir: Path | None = None,
                name: str = "sweep", origin: str = "sweep spec", path: Path | None = None,
                description: str = "") -> SweepSpec:
    """Validate a parsed TOML document into a :class:`SweepSpec`."""
    if not isinstance(document, Mapping):
        raise InvalidInputError(f"{origin}: a sweep spec is a TOML document with sections "
                                f"{['[' + s + ']' for s in SECTIONS]}.")
    unknown = [k for k in document if k not in SECTIONS]
    if unknown:
        hint = " (a sweep lists its models as [[model]] tables)" if unknown[0] == "models" \
            else ""
        raise InvalidInputError(f"{origin}: unknown section or key {unknown[0]!r}{hint}; "
                                f"allowed sections: {['[' + s + ']' for s in SECTIONS]}.")
    for required in ("data", "model"):
        if required not in document:
            raise InvalidInputError(f"{origin}: missing section [{required}]"
                                    + (" (one [[model]] table per model)."
                                       if required == "model" else "."))
    data = _parse_data(document["data"], base_dir, origin)
    defaults = _parse_grid_section(document.get("grid", {}), origin)
    models_doc = document["model"]
    if isinstance(models_doc, Mapping):
        models_doc = [models_doc]
    if not isinstance(models_doc, list) or not models_doc or len(models_doc) > MAX_LIST:
        raise InvalidInputError(f"{origin}: [[model]] must be one or more tables "
                                f"([[model]] per model, at most {MAX_LIST}).")
    models = tuple(_parse_model(t, i, defaults, origin) for i, t in enumerate(models_doc))
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise InvalidInputError(f"{origin}: two [[model]] tables are named {dup!r}; give "
                                "each a distinct name = \"…\".")
    return SweepSpec(
        name=name, data=data,
        protocol=_parse_protocol(document.get("protocol", {}), data, origin),
        patterns=_parse_patterns(document.get("patterns", {}), origin),
        models=models, solver=_parse_solver(document.get("solver", {}), origin),
        path=path, description=description,
    )


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and validate a TOML sweep spec.

    Parameters
    ----------
    path : str or Path
        The spec file (relative data paths resolve against it), or the bare name of a
        bundled sweep (``"uci-small"``, looked up in ``problems/sweeps/``).

    Returns
    -------
    SweepSpec
        The data sets, protocol, patterns, models with their grids, and solver; unknown
        keys and values of the wrong type raise
        :class:`~convexnn.errors.InvalidInputError` naming the key.
    """
    p = Path(path).expanduser()
    if not p.exists() and not p.suffix:
        p = find_sweep(str(path)) or p
    if not p.is_file():
        bundled = sorted(q.stem for q in SWEEPS_DIR.glob("*.toml")) if SWEEPS_DIR.is_dir() \
            else []
        hint = f" (bundled sweeps: {bundled})" if bundled else ""
        raise InvalidInputError(f"sweep spec not found: {p}{hint}")
    document, description = _read_toml(p)
    return parse_sweep(document, base_dir=p.resolve().parent, name=p.stem, origin=str(p),
                       path=p.resolve(), description=description)


def find_sweep(name: str) -> Path | None:
    """The bundled sweep spec called ``name``, or None."""
    p = SWEEPS_DIR / f"{name}.toml"
    return p if p.is_file() else None
