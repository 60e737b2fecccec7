"""Fuzzing of the spec loader and of the result loaders.

Random mutations of a TOML problem spec, of a saved ``certificate.json`` and of a saved
``solution.npz`` (structured edits: keys dropped, values replaced by any JSON/TOML value,
huge integers, NaN, deep nesting, arrays of other dtypes and shapes, headers claiming huge
shapes; and raw byte edits). Whatever the input:

* never a traceback: ``load_spec``, ``verify`` and ``load`` return or raise a
  ``ConvexNNError``; ``convexnn verify`` exits 0, 1 or 2 with at most one line on stderr;
* never a hang: every call answers within a deadline;
* never a false VALID: ``verify`` accepts only a result whose record and arrays are those
  that were saved.

The explicit examples are inputs that once broke a loader. Only the public API and the
command line are used.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import re
import shutil
import signal
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from record_edits import arrays_digest, claim_shape

import convexnn as cn
from convexnn.cli import main

pytestmark = [
    pytest.mark.filterwarnings("ignore::RuntimeWarning"),
    pytest.mark.filterwarnings("ignore::convexnn.InaccurateSolutionWarning"),
]

SETTINGS = dict(deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
#: Seconds one loader call may take before it counts as a hang.
DEADLINE = 20



class Hang(BaseException):
    """Raised by the watchdog: a loader did not answer in time."""


@contextlib.contextmanager
def watchdog(seconds: float = DEADLINE):
    def on_alarm(signum, frame):
        raise Hang(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_cli(argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


# ---------------------------------------------------------------------------
# values
# ---------------------------------------------------------------------------

huge_ints = st.sampled_from([2**63, -(2**63) - 1, 10**400, -(10**30)])
floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [0.0, -0.0, 1e-320, 1e308, -1.0])
scalars = (st.booleans() | st.integers(-10, 10**6) | huge_ints | floats
           | st.text(max_size=12) | st.sampled_from(["", "all", "sampled", "lam", "mu",
                                                     "gated_relu", "csv:/etc/hostname"]))
json_values = st.recursive(st.none() | scalars,
                           lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                           max_leaves=6)
toml_values = st.recursive(scalars,
                           lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                           max_leaves=6)
raw_edits = st.tuples(st.sampled_from(["truncate", "insert", "delete", "replace"]),
                      st.integers(0, 10**6), st.integers(0, 255))


def paths(doc, prefix=()):
    """Every key path of a nested dict/list document."""
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) \
        if isinstance(doc, list) else ()
    for k, v in items:
        yield (*prefix, k)
        yield from paths(v, (*prefix, k))


def apply_edit(doc, op) -> None:
    """("delete", i) | ("set", i, value) | ("add", i, key, value) on the i-th path."""
    all_paths = list(paths(doc))
    if not all_paths:
        return
    path = all_paths[op[1] % len(all_paths)]
    holder = doc
    for k in path[:-1]:
        holder = holder[k]
    if op[0] == "delete":
        del holder[path[-1]]
    elif op[0] == "set":
        holder[path[-1]] = op[2]
    elif isinstance(holder[path[-1]], dict):
        holder[path[-1]][op[2]] = op[3]


def apply_raw(data: bytes, edit) -> bytes:
    kind, pos, byte = edit
    if not data:
        return bytes([byte])
    pos %= len(data)
    if kind == "truncate":
        return data[:pos]
    if kind == "insert":
        return data[:pos] + bytes([byte]) + data[pos:]
    if kind == "delete":
        return data[:pos] + data[pos + 1:]
    return data[:pos] + bytes([byte]) + data[pos + 1:]


def doc_edits(values):
    index = st.integers(0, 10**6)
    return st.lists(st.one_of(st.tuples(st.just("delete"), index),
                              st.tuples(st.just("set"), index, values),
                              st.tuples(st.just("add"), index, st.text(max_size=8), values)),
                    min_size=1, max_size=3)


# ===========================================================================
# TOML problem specs
# ===========================================================================

BASE_SPEC = {
    "data": {"source": "synthetic:planted_relu", "n": 30, "d": 2, "seed": 1, "noise": 0.1,
             "bias": False},
    "patterns": {"method": "sample", "count": 10, "seed": 0},
    "model": {"formulation": "gated_relu", "lam_ratio": 0.1, "options": {"memory_limit": "1G"}},
    "solver": {"name": "clarabel", "tolerance": 1e-6, "method": "auto"},
}


def toml_key(k) -> str:
    k = str(k)
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def toml_dumps(doc: dict) -> str:
    lines = [f"{toml_key(k)} = {toml_value(v)}" for k, v in doc.items()
             if not isinstance(v, dict)]
    for k, v in doc.items():
        if isinstance(v, dict):
            lines.append(f"\n[{toml_key(k)}]")
            lines += [f"{toml_key(kk)} = {toml_value(vv)}" for kk, vv in v.items()]
    return "\n".join(lines) + "\n"


def test_the_base_spec_loads(tmp_path):
    path = tmp_path / "base.toml"
    path.write_text(toml_dumps(BASE_SPEC), encoding="utf-8")
    assert cn.load_spec(path).model.formulation == "gated_relu"


SPEC_TARGETS = [None, ("data", "n"), ("data", "noise"), ("data", "source"),
                ("patterns", "count"), ("model", "lam_ratio"), ("model", "options"),
                ("solver", "tolerance"), ("solver", "name")]


@settings(max_examples=150, **SETTINGS)
@example(target=("model", "lam_ratio"), edits=[("set", 0, 10**400)], raw=[])
@given(target=st.sampled_from(SPEC_TARGETS), edits=doc_edits(toml_values),
       raw=st.lists(raw_edits, max_size=2))
def test_spec_loader_never_tracebacks_or_hangs(target, edits, raw):
    doc = copy.deepcopy(BASE_SPEC)
    if target is not None:  # aim the first edit at a named key
        first, (table, key) = edits[0], target
        if first[0] == "delete":
            doc[table].pop(key, None)
        else:
            doc[table][key] = first[2] if first[0] == "set" else {first[2]: first[3]}
        edits = edits[1:]
    for op in edits:
        apply_edit(doc, op)
    data = toml_dumps(doc).encode("utf-8", "surrogatepass")
    for edit in raw:
        data = apply_raw(data, edit)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "spec.toml"
        path.write_bytes(data)
        with watchdog():
            try:
                cn.load_spec(path)
            except cn.ConvexNNError:
                pass


# ===========================================================================
# saved results: certificate.json and solution.npz
# ===========================================================================

RESULT_SPECS = {
    "sampled": BASE_SPEC,
    "all": {**BASE_SPEC, "patterns": {"method": "enumerate"}},
}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("trust-fuzz")
    made = {}
    for name, doc in RESULT_SPECS.items():
        spec_path = root / f"{name}.toml"
        spec_path.write_text(toml_dumps(doc), encoding="utf-8")
        spec = cn.load_spec(spec_path)
        sol, ds = cn.solve_spec(spec)
        cn.save(sol, root / name, ds, spec=spec)
        assert cn.verify(root / name).valid
        made[name] = root / name
    return root, made


def record_of(text: bytes):
    """The parsed record, or a marker that it is not the same JSON object."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return object()


def check_loaders(out: Path, unchanged: bool) -> None:
    """No traceback, no hang, and VALID only for the saved result itself."""
    with watchdog():
        try:
            answer = "VALID" if cn.verify(out).valid else "INVALID"
        except cn.ConvexNNError:
            answer = "REFUSED"
        with contextlib.suppress(cn.ConvexNNError):
            cn.load(out)
        code, _, err = run_cli(["verify", out])
    assert code in (0, 1, 2), err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 1, err
    assert (code == 0) == (answer == "VALID")
    if not unchanged:
        assert answer != "VALID", "an edited result verifies as VALID"


@settings(max_examples=60, **SETTINGS)
@example(base="sampled", edits=[("set", 0, "converged")], raw=[], target="status")
@example(base="sampled", edits=[("delete", 0)], raw=[], target="network")
@example(base="sampled", edits=[("set", 0, ["lam"])], raw=[], target="reg_name")
@example(base="all", edits=[("set", 0, 10**400)], raw=[], target="lam")
@given(base=st.sampled_from(sorted(RESULT_SPECS)), edits=doc_edits(json_values),
       raw=st.lists(raw_edits, max_size=2),
       target=st.sampled_from([None, "status", "network", "reg_name", "lam", "tolerance",
                               "spec", "patterns", "certified", "scope"]))
def test_certificate_loader_never_tracebacks_hangs_or_accepts_an_edit(results, base, edits,
                                                                      raw, target):
    root, made = results
    original_text = (made[base] / "certificate.json").read_bytes()
    original = json.loads(original_text)
    doc = copy.deepcopy(original)
    if target is not None:  # aim the first edit at a named key
        first = edits[0]
        if first[0] == "delete":
            doc.pop(target, None)
        else:
            doc[target] = first[2] if first[0] == "set" else {first[2]: first[3]}
        edits = edits[1:]
    for op in edits:
        apply_edit(doc, op)
    try:
        data = json.dumps(doc, indent=2).encode("utf-8", "surrogatepass")
    except (ValueError, RecursionError):
        return
    for edit in raw:
        data = apply_raw(data, edit)
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        out = Path(tmp) / base
        shutil.copytree(made[base], out)
        (out / "certificate.json").write_bytes(data)
        check_loaders(out, unchanged=record_of(data) == original)


#: Arrays a verifier re-derives from the data and the other arrays (an edit to one of them
#: must be caught even when the digest is recomputed).
REDERIVABLE = ("weights.", "dual.", "network.", "patterns.masks", "patterns.probabilities")

random_arrays = hnp.arrays(
    dtype=st.sampled_from([np.float64, np.float32, np.int64, np.uint8, np.bool_,
                           np.complex128, np.dtype("<U3")]),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
array_edits = st.one_of(
    st.tuples(st.just("drop"), st.integers(0, 10**6)),
    st.tuples(st.just("replace"), st.integers(0, 10**6), random_arrays),
    st.tuples(st.just("perturb"), st.integers(0, 10**6), floats),
    st.tuples(st.just("add"), st.sampled_from(["extra", "weights.V", "info.x", "dual.w"]),
              random_arrays),
    st.tuples(st.just("claim"), st.integers(0, 10**6),
              st.sampled_from([(10**12,), (2**40, 2**40), (-1,), (3, 0, 10**15)])),
)


def edit_arrays(arrays: dict, op) -> tuple[str, tuple | None]:
    """Apply one edit; returns the key it touched and a header shape to claim, if any."""
    names = sorted(arrays)
    if op[0] == "add":
        arrays[op[1]] = op[2]
        return op[1], None
    key = names[op[1] % len(names)]
    if op[0] == "drop":
        del arrays[key]
    elif op[0] == "replace":
        arrays[key] = op[2]
    elif op[0] == "perturb":
        a = np.array(arrays[key], dtype=np.float64, copy=True)
        if a.size:
            a.flat[op[1] % a.size] = op[2]
        arrays[key] = a
    else:
        return key, op[2]
    return key, None


def read_back(npz: Path) -> dict:
    """The arrays as a plain reader sees them after the edit ({} when unreadable)."""
    try:
        with np.load(npz, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except Exception:
        return {}


def same_arrays(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        a[k].dtype == b[k].dtype and a[k].shape == b[k].shape
        and np.array_equal(a[k], b[k], equal_nan=a[k].dtype.kind in "fc") for k in a)


@settings(max_examples=60, **SETTINGS)
@example(base="sampled", op=("claim", 0, (10**12,)), digest="keep", raw=[])
@example(base="sampled", op=("perturb", 3, 0.5), digest="drop", raw=[])
@example(base="all", op=("replace", 6, np.array(0.0)), digest="keep", raw=[])
@example(base="all", op=("drop", 0), digest="keep", raw=[("insert", 0, 0)])
@example(base="all", op=("drop", 1), digest="drop", raw=[])
@given(base=st.sampled_from(sorted(RESULT_SPECS)), op=array_edits,
       digest=st.sampled_from(["keep", "drop", "recompute"]),
       raw=st.lists(raw_edits, max_size=1))
def test_solution_loader_never_tracebacks_hangs_or_accepts_an_edit(results, base, op, digest,
                                                                   raw):
    root, made = results
    with np.load(made[base] / "solution.npz", allow_pickle=False) as f:
        original = {k: f[k] for k in f.files}
    arrays = dict(original)
    key, claim = edit_arrays(arrays, op)
    if digest == "recompute" and not (key.startswith(REDERIVABLE) and op[0] != "add"):
        digest = "drop"
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        out = Path(tmp) / base
        shutil.copytree(made[base], out)
        npz = out / "solution.npz"
        np.savez(npz, **arrays)
        if claim is not None:
            claim_shape(npz, key, claim)
        if raw:
            npz.write_bytes(apply_raw(npz.read_bytes(), raw[0]))
        saved = json.loads((out / "certificate.json").read_text(encoding="utf-8"))
        rec = dict(saved)
        if digest == "drop":
            rec.pop("solution_sha256", None)
        elif digest == "recompute":
            rec["solution_sha256"] = arrays_digest(arrays)
        (out / "certificate.json").write_text(json.dumps(rec, indent=2), encoding="utf-8")
        unchanged = rec == saved and claim is None and same_arrays(read_back(npz), original)
        check_loaders(out, unchanged=unchanged)
