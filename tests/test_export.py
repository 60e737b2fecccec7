"""Saved certificates: contract keys, independent re-derivation, tampering, atomic writes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from cli_helpers import CONTRACT_KEYS, CONTRACT_NESTED, SMALL_SPEC, npz_problem, run, write_spec

import convexnn as cn
from convexnn import files, results
from convexnn.errors import InvalidInputError, VerificationError


@pytest.fixture
def saved(tmp_path, capsys):
    """A spec solved and saved from the command line: (dir, spec path, X, y)."""
    spec, X, y = npz_problem(tmp_path)
    out = tmp_path / "result"
    code, _, err = run(["solve", spec, "--out", out], capsys)
    assert code == 0, err
    return out, spec, X, y


def _edit_json(out, change, redigest=True):
    """Edit certificate.json; with ``redigest`` also recompute both digests, as a tamperer
    who knows the format would (so only the re-derivation can catch the edit)."""
    path = out / "certificate.json"
    rec = json.loads(path.read_text())
    change(rec)
    if redigest:
        _redigest(out, rec)
    path.write_text(json.dumps(rec, indent=2))


def _redigest(out, rec):
    with np.load(out / "solution.npz", allow_pickle=True) as f:
        arrays = {k: f[k] for k in f.files}
    if "solution_sha256" in rec:
        rec["solution_sha256"] = results.arrays_sha256(arrays)
    if "record_sha256" in rec:
        rec["record_sha256"] = results.record_sha256(rec)


def _rewrite_npz(out, change, redigest=False):
    with np.load(out / "solution.npz", allow_pickle=True) as f:  # the tamperer's side
        arrays = {k: f[k] for k in f.files}
    change(arrays)
    np.savez(out / "solution.npz", **arrays)
    if redigest:
        _edit_json(out, lambda r: None)


def test_certificate_json_has_every_contract_key_as_plain_json(saved):
    out = saved[0]
    rec = json.loads((out / "certificate.json").read_text())
    for key in CONTRACT_KEYS + [rec["reg_name"]]:
        assert key in rec, key
    for outer, inner in CONTRACT_NESTED.items():
        for key in inner:
            assert key in rec[outer], f"{outer}.{key}"
    for key in ("objective", "dual_objective", "gap", "relative_gap", "tolerance", "lam"):
        assert type(rec[key]) is float, key
    assert type(rec["certified"]) is bool and rec["reg_name"] == "lam"
    assert rec["patterns"]["scope"] in ("sampled", "all")
    assert rec["version"] == cn.__version__ and rec["bias"] is True
    assert (out / "summary.md").read_text().startswith("# convexnn result")


def test_saved_numbers_match_an_independent_computation(saved):
    """Recompute primal and dual values from the raw npz arrays with plain numpy
    (docs/math/gated_relu.md)."""
    out, _, X, y = saved
    rec = json.loads((out / "certificate.json").read_text())
    with np.load(out / "solution.npz", allow_pickle=False) as f:
        assert all(f[k].dtype != object for k in f.files)
        W, G, M, z = f["weights.W"], f["patterns.gates"], f["patterns.masks"], f["dual.z"]
    Xb = np.hstack([X, np.ones((len(X), 1))])  # bias = true in the spec
    np.testing.assert_array_equal(M, Xb @ G >= 0)
    lam = rec["lam"]
    pred = sum(M[:, i] * (Xb @ W[i, :, 0]) for i in range(W.shape[0]))
    primal = 0.5 * np.sum((pred - y) ** 2) + lam * sum(np.linalg.norm(W[i]) for i in range(len(W)))
    assert rec["objective"] == pytest.approx(primal, rel=1e-12)
    z = z[:, 0]
    worst = max(np.linalg.norm(Xb.T @ (M[:, i] * z)) for i in range(M.shape[1]))
    assert worst <= lam * (1 + 1e-12)  # the saved dual point is feasible
    dual = y @ z - 0.5 * z @ z
    assert rec["dual_objective"] == pytest.approx(dual, rel=1e-12)
    assert rec["dual_objective"] <= rec["objective"]  # weak duality
    # the contract's gap and relative gap, from these independent values
    assert rec["gap"] == pytest.approx(primal - dual, rel=1e-6, abs=1e-12 * primal)
    assert rec["relative_gap"] == pytest.approx((primal - dual) / primal, rel=1e-6, abs=1e-15)
    assert rec["certified"] is True and (primal - dual) / primal <= rec["tolerance"]


def test_load_returns_the_saved_arrays(saved):
    out, spec, X, y = saved
    res = cn.load(out)
    sol, ds = cn.solve_spec(cn.load_spec(spec))
    np.testing.assert_array_equal(res.weights["W"], sol.weights["W"])
    np.testing.assert_array_equal(res.patterns.masks, sol.patterns.masks)
    assert res.reg == sol.lam and res.certified and res.formulation == "gated_relu"
    assert cn.load(out, (X, y)).certified  # re-derived with the data
    with pytest.raises(VerificationError, match="data_sha256"):
        cn.load(out, (X, y + 1e-3))


def test_python_save_verify_round_trip(tmp_path):
    ds = cn.planted_relu(50, 3, seed=7, outputs=2)
    sol = cn.solve("gated_relu", ds.X, ds.y, patterns=20)
    out = cn.save(sol, tmp_path / "r", ds)
    result = cn.verify(out, ds)
    assert result.valid, str(result)
    assert result.certificate.objective == sol.objective
    with pytest.raises(InvalidInputError, match="record"):
        cn.verify(out)  # no spec recorded and no data given: says how to pass the data
    with pytest.raises(InvalidInputError, match="not the data"):
        cn.save(sol, tmp_path / "s", (ds.X + 1.0, ds.y))


def test_global_scope_is_re_derived_not_trusted(tmp_path):
    """A genuine scope "all" verifies; a sampled result relabelled "all" does not."""
    rng = np.random.default_rng(4)
    X = rng.standard_normal((25, 2))
    y = np.maximum(X @ np.array([1.0, -0.5]), 0) - np.maximum(X @ np.array([-0.3, 1.0]), 0)
    full = cn.solve("relu", X, y, patterns="all", lam_ratio=0.05)
    out = cn.save(full, tmp_path / "all", (X, y))
    result = cn.verify(out, (X, y))
    assert result.valid and "global" in str(result)

    few = cn.solve("relu", X, y, patterns=cn.sample_patterns(X, 3, seed=0), lam_ratio=0.05)
    out = cn.save(few, tmp_path / "few", (X, y))

    def relabel(r):
        r["scope"] = "all"
        r["patterns"]["scope"] = "all"

    _edit_json(out, relabel)
    result = cn.verify(out, (X, y))
    assert not result.valid and "global" in result.failed


# --- tampering --------------------------------------------------------------------------


def test_flipped_weight_is_caught(saved, capsys):
    out = saved[0]

    def flip(a):
        W = a["weights.W"]
        k = np.argmax(np.abs(W))
        W.flat[k] = -W.flat[k]

    _rewrite_npz(out, flip)
    code, text, err = run(["verify", out], capsys)
    assert code == 1
    assert "solution_sha256" in err and "objective" in err
    # with both digests recomputed the re-derivation alone still catches it
    _edit_json(out, lambda r: None)
    result = cn.verify(out)
    assert not result.valid and "objective" in result.failed
    assert "solution_sha256" not in result.failed and "record_sha256" not in result.failed
    # and without the digest the result is refused outright
    _edit_json(out, lambda r: r.pop("solution_sha256"))
    assert "keys" in cn.verify(out).failed


def test_changed_data_value_is_caught(saved, capsys):
    out, _, X, y = saved
    X2 = X.copy()
    X2[3, 1] += 0.25
    copy = out / "certified-data" / "train.npz"  # the result carries its data
    assert copy.is_file()
    np.savez(copy, X=X2, y=y)
    code, _, err = run(["verify", out], capsys)
    assert code == 1 and "data_sha256" in err and "the data changed" in err
    assert not cn.verify(out, (X2, y)).valid
    assert cn.verify(out, (X, y)).valid  # the original data still verify


def test_edited_objective_is_caught(saved, capsys):
    out = saved[0]
    _edit_json(out, lambda r: r.update(objective=r["objective"] * (1 + 1e-6)), redigest=False)
    code, _, err = run(["verify", out], capsys)
    assert code == 1 and "objective" in err and "record_sha256" in err
    _edit_json(out, lambda r: None)  # digests recomputed: the number alone is caught
    assert cn.verify(out).failed == ["objective"]


@pytest.mark.parametrize("edit, failed", [
    (lambda r: r.update(certified=False), "certified"),
    (lambda r: r.update(relative_gap=r["relative_gap"] / 10), "relative_gap"),
    (lambda r: r.update(lam=r["lam"] * 1.01), "objective"),
    (lambda r: r.update(n=r["n"] + 1), "sizes"),
    (lambda r: r["patterns"].update(count=r["patterns"]["count"] + 1), "patterns"),
    (lambda r: r["network"].update(neurons=r["network"]["neurons"] + 1), "network"),
    (lambda r: r.update(objective="1.0"), "types"),
])
def test_other_edits_are_caught(saved, edit, failed):
    out = saved[0]
    _edit_json(out, edit)
    result = cn.verify(out)
    assert failed in result.failed, str(result)
    with pytest.raises(VerificationError, match=failed):
        result.raise_if_invalid()


@pytest.mark.parametrize("key", ["dual_objective", "timings.solve_s", "lam", "version"])
def test_dropped_key_is_caught(saved, capsys, key):
    out = saved[0]

    def drop(r):
        outer, _, inner = key.partition(".")
        (r[outer] if inner else r).pop(inner or outer)

    _edit_json(out, drop)
    code, _, err = run(["verify", out], capsys)
    assert code == 1 and "keys" in err and key in err.replace("'", "")


def test_pickled_object_in_npz_is_refused(saved, capsys):
    out = saved[0]
    _rewrite_npz(out, lambda a: a.update(extra=np.array([{"run": "os.system"}], dtype=object)))
    code, _, err = run(["verify", out], capsys)
    assert code == 1 and "no_pickle" in err and "extra" in err
    with pytest.raises(VerificationError, match="pickled"):
        cn.load(out)
    # a pickled weight array: refused, and nothing can be re-derived from it
    _rewrite_npz(out, lambda a: a.update({"weights.W": np.array([object()], dtype=object)}))
    result = cn.verify(out)
    assert "no_pickle" in result.failed and not result.valid


def test_malformed_files_exit_2(saved, capsys, tmp_path):
    out = saved[0]
    (out / "certificate.json").write_text("{ not json")
    code, _, err = run(["verify", out], capsys)
    assert code == 2 and "certificate.json" in err and err.count("\n") == 1
    code, _, err = run(["verify", tmp_path / "nowhere"], capsys)
    assert code == 2 and "nowhere" in err


def test_truncated_npz_exits_2(saved, capsys):
    out = saved[0]
    (out / "solution.npz").write_bytes(b"PK\x03\x04 truncated")
    code, _, err = run(["verify", out], capsys)
    assert code == 2 and "solution.npz" in err


# --- atomic writes -----------------------------------------------------------------------


def _leftovers(parent):
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("exc", [OSError("disk full"), KeyboardInterrupt()])
def test_interrupted_save_keeps_the_previous_result(tmp_path, monkeypatch, exc):
    ds = cn.planted_relu(40, 3, seed=1)
    first = cn.solve("gated_relu", ds.X, ds.y, patterns=15, lam_ratio=0.2)
    second = cn.solve("gated_relu", ds.X, ds.y, patterns=15, lam_ratio=0.05)
    out = tmp_path / "r"
    cn.save(first, out, ds)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    real = files.write_bytes_atomic
    written = []

    def failing(path, payload):
        if path.name == files.SUMMARY_FILE:  # npz and json are already written
            raise exc
        written.append(path.name)
        real(path, payload)

    monkeypatch.setattr(files, "write_bytes_atomic", failing)
    with pytest.raises(type(exc)):
        cn.save(second, out, ds)
    assert written == [files.SOLUTION_FILE, files.CERTIFICATE_FILE]  # it was mid-save
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert _leftovers(tmp_path) == []
    monkeypatch.setattr(files, "write_bytes_atomic", real)
    assert cn.verify(out, ds).valid
    assert json.loads((out / "certificate.json").read_text())["lam"] == first.lam


def test_interrupted_first_save_leaves_nothing(tmp_path, monkeypatch):
    ds = cn.planted_relu(40, 3, seed=1)
    sol = cn.solve("gated_relu", ds.X, ds.y, patterns=15)

    def boom(path, arrays):
        (path.parent / "partial.npz").write_bytes(b"half")
        raise OSError("interrupted")

    monkeypatch.setattr(files, "write_npz", boom)
    with pytest.raises(OSError):
        cn.save(sol, tmp_path / "new", ds)
    assert not (tmp_path / "new").exists() and _leftovers(tmp_path) == []


def test_interrupted_cli_solve_leaves_no_partial_result(tmp_path, capsys, monkeypatch):
    spec = write_spec(tmp_path / "s.toml", SMALL_SPEC)

    def boom(path, payload):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(files, "write_bytes_atomic", boom)
    code, _, err = run(["solve", spec, "--out", tmp_path / "o"], capsys)
    assert code == 2 and "No space left" in err
    assert not (tmp_path / "o").exists() and _leftovers(tmp_path) == []


def test_non_finite_numbers_are_not_written_as_nan(tmp_path):
    assert results._jsonable({"a": math.inf, "b": [np.float64("nan"), 1.5]}) == {
        "a": None, "b": [None, 1.5]}
