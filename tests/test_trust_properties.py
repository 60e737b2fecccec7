"""Properties of certificates and saved results over random problems and scalings.

* the duality gap is ≥ 0 up to rounding, for every solve and every scaling;
* a certificate does not depend on the units: under ``X·10^kx``, ``y·10^ky`` (λ given by
  ``lam_ratio``) the verdict and the relative gap are those at unit scale, the relative gap
  is ``gap/|objective|``, and a certified objective is ``10^(2 ky)`` times the optimum;
* the network the weights encode has the convex objective (to the certificate's tolerance);
* ``verify(save(solve))`` passes, and fails after any single field of ``certificate.json``
  or any single array of ``solution.npz`` is edited.

The explicit examples are cases that once broke a property. Only the public API is used.
"""

from __future__ import annotations

import functools
import json
import math
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from record_edits import arrays_digest

import convexnn as cn
from convexnn.cli import main

pytestmark = [
    pytest.mark.filterwarnings("ignore::RuntimeWarning"),
    pytest.mark.filterwarnings("ignore::convexnn.InaccurateSolutionWarning"),
]

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])



# ---------------------------------------------------------------------------
# random problems and their references (cached: each is solved once)
# ---------------------------------------------------------------------------

METHODS = [("gated_relu", "ipm"), ("gated_relu", "fast"), ("relu", "ipm")]
seeds = st.integers(0, 5)
lam_ratios = st.sampled_from([0.03, 0.1, 0.3])
powers = st.integers(-8, 8)


@functools.cache
def problem(seed: int):
    ds = cn.planted_relu(40, 3, seed=seed)
    return ds.X, ds.y


@functools.cache
def solved(form: str, method: str, seed: int, lam_ratio: float, kx: int = 0, ky: int = 0):
    X, y = problem(seed)
    return cn.solve(form, X * 10.0**kx, y * 10.0**ky, patterns=20, lam_ratio=lam_ratio,
                    method=method)


@functools.cache
def optimum(form: str, seed: int, lam_ratio: float) -> float:
    """The optimum at unit scale, from a tight interior-point solve."""
    X, y = problem(seed)
    ref = cn.solve(form, X, y, patterns=20, lam_ratio=lam_ratio, method="ipm", tol=1e-10)
    assert ref.certified
    return ref.objective


@SETTINGS
@given(fm=st.sampled_from(METHODS), seed=seeds, lam_ratio=lam_ratios, kx=powers, ky=powers)
def test_gap_is_nonnegative_up_to_rounding(fm, seed, lam_ratio, kx, ky):
    c = solved(*fm, seed, lam_ratio, kx, ky).certificate
    assert math.isfinite(c.objective) and math.isfinite(c.dual_objective)
    assert c.gap == c.objective - c.dual_objective
    assert c.gap >= -1e-9 * abs(c.objective)
    assert c.relative_gap >= -1e-9


@SETTINGS
@example(fm=("gated_relu", "fast"), seed=2, lam_ratio=0.1, kx=0, ky=-8)
@given(fm=st.sampled_from(METHODS), seed=seeds, lam_ratio=lam_ratios, kx=powers, ky=powers)
def test_certificate_does_not_depend_on_units(fm, seed, lam_ratio, kx, ky):
    form, method = fm
    base = solved(form, method, seed, lam_ratio).certificate
    sol = solved(form, method, seed, lam_ratio, kx, ky)
    c = sol.certificate
    assert c.certified == base.certified
    assert abs(c.relative_gap - base.relative_gap) <= 1e-6
    assert c.relative_gap == pytest.approx(c.gap / abs(c.objective), rel=1e-9)
    if c.certified:
        truth = optimum(form, seed, lam_ratio) * 10.0 ** (2 * ky)
        assert truth * (1 - 1e-8) <= c.objective <= truth * (1 + 2e-6), (
            f"certified {c.objective:.6e}, optimum {truth:.6e}")


@SETTINGS
@given(fm=st.sampled_from(METHODS), seed=seeds, lam_ratio=lam_ratios, kx=powers, ky=powers)
def test_network_objective_matches_the_convex_objective(fm, seed, lam_ratio, kx, ky):
    sol = solved(*fm, seed, lam_ratio, kx, ky)
    X, y = problem(seed)
    X, y = X * 10.0**kx, y * 10.0**ky
    net = sol.network.objective(X, y, sol.lam)
    c = sol.certificate
    assert math.isfinite(net)
    if c.certified:
        # the network is a point of the non-convex problem: between the dual bound and
        # the certified objective, up to the certificate's tolerance
        assert abs(net - c.objective) <= c.tolerance * abs(c.objective)
        assert net >= c.dual_objective - 1e-9 * abs(c.objective)
    np.testing.assert_allclose(sol.predict(X[:5]), sol.network.predict(X[:5]))


# ---------------------------------------------------------------------------
# saved results
# ---------------------------------------------------------------------------

FORMULATIONS = ["gated_relu", "relu", "ntk", "mkl", "reweight"]


def spec_text(formulation: str, *, seed: int = 3, patterns: str = "count = 12",
              extra: str = "") -> str:
    reg = "mu_ratio = 0.1" if formulation in ("ntk", "mkl") else "lam_ratio = 0.1"
    return (f'[data]\nsource = "synthetic:planted_relu"\nn = 24\nd = 2\nseed = {seed}\n\n'
            f'[patterns]\n{patterns}\n\n[model]\nformulation = "{formulation}"\n{reg}\n'
            f"{extra}\n")


BASES = {
    **{f: spec_text(f) for f in FORMULATIONS},
    "all": spec_text("gated_relu", patterns='method = "enumerate"'),
    "relu-all": spec_text("relu", patterns='method = "enumerate"'),
    "uncertified": spec_text("gated_relu", extra='\n[model.options]\nmax_iter = 1\n'
                                                 'polish = false\n\n[solver]\nmethod = "fast"'),
}


def save_spec(directory: Path, text: str) -> Path:
    spec_path = directory.with_suffix(".toml")
    spec_path.write_text(text, encoding="utf-8")
    spec = cn.load_spec(spec_path)
    sol, ds = cn.solve_spec(spec)
    cn.save(sol, directory, ds, spec=spec)
    return directory


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("trust-properties")


@pytest.fixture(scope="module")
def bases(workdir):
    return {name: save_spec(workdir / name, text) for name, text in BASES.items()}


@functools.cache
def _saved(root: str, form: str, seed: int, patterns: str) -> Path:
    name = f"{form}-{seed}-{'all' if 'enumerate' in patterns else 'sampled'}"
    return save_spec(Path(root) / name, spec_text(form, seed=seed, patterns=patterns))


SAMPLED, ENUMERATED = "count = 12", 'method = "enumerate"'


def assert_round_trip(out: Path) -> None:
    result = cn.verify(out)
    assert result.valid, str(result)
    rec = json.loads((out / "certificate.json").read_text(encoding="utf-8"))
    assert result.certificate.objective == pytest.approx(rec["objective"], rel=1e-12)
    assert result.certificate.certified == rec["certified"]
    assert cn.load(out).certified == rec["certified"]
    assert main(["verify", str(out)]) == 0


@SETTINGS
@given(form=st.sampled_from(["gated_relu", "ntk", "mkl", "reweight"]), seed=st.integers(0, 5))
def test_save_verify_round_trip(workdir, form, seed):
    assert_round_trip(_saved(str(workdir), form, seed, SAMPLED))


@SETTINGS
@given(seed=st.integers(0, 5))
def test_save_verify_round_trip_over_all_patterns(workdir, seed):
    assert_round_trip(_saved(str(workdir), "gated_relu", seed, ENUMERATED))


@SETTINGS
@example(seed=2, patterns=SAMPLED)
@given(seed=st.integers(0, 11), patterns=st.sampled_from([SAMPLED, ENUMERATED]))
def test_save_verify_round_trip_relu(workdir, seed, patterns):
    assert_round_trip(_saved(str(workdir), "relu", seed, patterns))


@pytest.mark.parametrize("form", ["ntk", "mkl", "reweight"])
def test_save_verify_round_trip_over_all_patterns_for_kernel_formulations(workdir, form):
    assert_round_trip(_saved(str(workdir), form, 3, ENUMERATED))


def leaves(value, path=()):
    """Every leaf of a JSON document (empty containers count as leaves)."""
    if isinstance(value, dict) and value:
        for k, v in value.items():
            yield from leaves(v, (*path, k))
    else:
        yield path, value


def changed(value):
    """A different value of the same kind."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 1.5 if value else 1e-3
    if isinstance(value, str):
        return value + "x"
    if value is None:
        return 0.5
    if isinstance(value, list):
        return value[:-1] if value else ["x"]
    if isinstance(value, dict):
        return {"x": 1}
    raise TypeError(type(value))


def edit_leaf(rec: dict, path: tuple) -> None:
    holder = rec
    for k in path[:-1]:
        holder = holder[k]
    holder[path[-1]] = changed(holder[path[-1]])


def verdict(out: Path) -> str:
    try:
        return "VALID" if cn.verify(out).valid else "INVALID"
    except cn.ConvexNNError:
        return "REFUSED"


NAMED_FIELDS = ["status", "solver", "tolerance", "title", "created", "failed", "checks",
                "method", "data", "spec", "info", "timings", "single_output", "problem"]


@SETTINGS
@example(base="gated_relu", field="status")
@given(base=st.sampled_from(sorted(BASES)),
       field=st.one_of(st.sampled_from(NAMED_FIELDS), st.integers(0, 10**6)))
def test_any_single_field_edit_does_not_verify(bases, workdir, base, field):
    rec = json.loads((bases[base] / "certificate.json").read_text(encoding="utf-8"))
    paths = [p for p, _ in leaves(rec)]
    if isinstance(field, str):
        paths = [p for p in paths if p[0] == field] or paths
        path = paths[0]
    else:
        path = paths[field % len(paths)]
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        out = Path(tmp) / base
        shutil.copytree(bases[base], out)
        edit_leaf(rec, path)
        (out / "certificate.json").write_text(json.dumps(rec, indent=2), encoding="utf-8")
        assert verdict(out) != "VALID", f"{'.'.join(map(str, path))} edited, still VALID"


#: Arrays a verifier re-derives from the data and the other arrays; for the others an
#: edit is caught only by the digest (kept, or dropped, which must fail by itself).
REDERIVABLE = ("weights.", "dual.", "network.", "patterns.masks", "patterns.probabilities")


def edited_array(a: np.ndarray, how: str) -> np.ndarray:
    a = a.copy()
    if a.dtype == bool:
        a.flat[0] = not a.flat[0]
        return a
    if how == "negate" and np.any(a != 0) and a.dtype.kind != "u":
        return -a
    a = a.astype(np.float64) if a.dtype.kind == "f" else a
    a.flat[int(np.argmax(np.abs(a)))] += 1
    return a


@SETTINGS
@example(base="gated_relu", key="network.A", how="negate", digest="drop")
@given(base=st.sampled_from(sorted(BASES)),
       key=st.one_of(st.sampled_from(["network.A", "network.U", "weights.eta",
                                      "patterns.probabilities"]), st.integers(0, 10**6)),
       how=st.sampled_from(["perturb", "negate"]),
       digest=st.sampled_from(["keep", "drop", "recompute"]))
def test_any_single_array_edit_does_not_verify(bases, workdir, base, key, how, digest):
    with np.load(bases[base] / "solution.npz", allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    names = sorted(arrays)
    if isinstance(key, int) or key not in arrays:
        key = names[(key if isinstance(key, int) else len(key)) % len(names)]
    if digest == "recompute" and not key.startswith(REDERIVABLE):
        digest = "drop"
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        out = Path(tmp) / base
        shutil.copytree(bases[base], out)
        arrays[key] = edited_array(arrays[key], how)
        np.savez(out / "solution.npz", **arrays)
        rec = json.loads((out / "certificate.json").read_text(encoding="utf-8"))
        if digest == "drop":
            rec.pop("solution_sha256", None)
        elif digest == "recompute":
            rec["solution_sha256"] = arrays_digest(arrays)
        (out / "certificate.json").write_text(json.dumps(rec, indent=2), encoding="utf-8")
        assert verdict(out) != "VALID", f"{key} edited ({how}, digest {digest}), still VALID"
