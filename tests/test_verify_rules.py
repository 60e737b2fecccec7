"""The lines of ``verify`` that decide a verdict, and the file writes, each made to decide
once: an edit that keeps both digests valid (so only re-derivation can catch it) must fail
exactly the check that owns it; an interrupted or failing write leaves the previous
result and no temporary file."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from record_edits import rewrite

import convexnn as cn
from convexnn import files
from convexnn.global_check import certify_global, check_patterns
from convexnn.problem import prepare
from convexnn.results import read_arrays, read_record


@pytest.fixture(scope="module")
def gated(tmp_path_factory):
    ds = cn.planted_relu(30, 3, outputs=2, seed=6)
    sol = cn.solve("gated_relu", ds.X, ds.y, patterns=10, lam_ratio=0.1)
    return ds, sol, tmp_path_factory.mktemp("gated")


def fresh(gated, name):
    ds, sol, root = gated
    out = cn.save(sol, root / name, ds)
    assert cn.verify(out, ds).valid
    return ds, out


@pytest.mark.parametrize("name, edit, failed", [
    ("unregistered", lambda r: r.update(formulation="nope"), ["formulation"]),
    ("regname", lambda r: r.update(reg_name="mu", mu=r["lam"]), ["formulation"]),
    ("scope", lambda r: r.update(scope="everything"), ["formulation"]),
    ("method", lambda r: r.update(method="cholesky"), ["formulation"]),
    ("single", lambda r: r.update(single_output=True), ["sizes"]),
    ("objective_null", lambda r: r.update(objective=None), ["objective"]),
    ("gap", lambda r: r.update(gap=r["gap"] * 2 + 1e-3), ["gap"]),
    # at a certified point gap/|dual| and gap/|objective| differ by rounding only; an edit
    # beyond rounding is caught (the denominator is pinned at an uncertified point in
    # test_rules.py)
    ("relgap", lambda r: r.update(relative_gap=r["relative_gap"] + 1e-8), ["relative_gap"]),
    ("checks", lambda r: r["checks"].update(weak_duality=1e-3), ["checks"]),
    ("failed", lambda r: r.update(failed=["weak_duality"]), ["checks"]),
    ("tolerance", lambda r: r.update(tolerance=1e-3), ["tolerance"]),
])
def test_a_digest_consistent_edit_fails_its_own_check(gated, name, edit, failed):
    ds, out = fresh(gated, name)
    rewrite(out, edit=edit)
    res = cn.verify(out, ds)
    assert res.failed == failed, str(res)
    assert not res.valid and "INVALID" in str(res)
    with pytest.raises(cn.VerificationError, match=failed[0]):
        res.raise_if_invalid()


def test_non_finite_gates_fail_the_pattern_check(gated):
    ds, out = fresh(gated, "gates")
    with np.load(out / "solution.npz") as f:
        G = f["patterns.gates"].copy()
    G[0, 0] = np.nan
    rewrite(out, {"patterns.gates": G})
    assert cn.verify(out, ds).failed == ["patterns"]


def test_weights_that_do_not_fit_fail_the_certify_check(gated):
    ds, out = fresh(gated, "shape")
    with np.load(out / "solution.npz") as f:
        W = f["weights.W"]
    rewrite(out, {"weights.W": np.concatenate([W, W[:1]])})
    assert cn.verify(out, ds).failed == ["certify"]


def test_a_spec_of_another_formulation_fails_the_spec_check(tmp_path):
    spec_path = tmp_path / "s.toml"
    spec_path.write_text('[data]\nsource = "synthetic:planted_relu"\nn = 30\nd = 3\n\n'
                         '[patterns]\ncount = 10\n\n[model]\nformulation = "gated_relu"\n'
                         'lam_ratio = 0.1\n')
    spec = cn.load_spec(spec_path)
    sol, ds = cn.solve_spec(spec)
    out = cn.save(sol, tmp_path / "R", ds, spec=spec)
    assert cn.verify(out).valid
    rewrite(out, edit=lambda r: r["spec"]["model"].update(formulation="reweight"))
    assert cn.verify(out).failed == ["spec"]


def test_an_augmented_result_is_rederived_over_the_whole_arrangement(tmp_path):
    """Scope "all" over a working set: verify re-runs the check over every pattern."""
    rng = np.random.default_rng(2)
    X, y = rng.standard_normal((14, 2)), rng.standard_normal(14)
    sol = cn.solve("gated_relu", X, y, patterns=3, lam_ratio=0.05, augment=True)
    assert sol.certified and sol.certificate.scope == "all"
    every = cn.enumerate_patterns(X)
    assert sol.patterns.P < every.P  # a working set, not the arrangement
    out = cn.save(sol, tmp_path / "aug", (X, y))
    res = cn.verify(out, (X, y))
    assert res.valid and "global" not in res.failed
    line = next(c for c in res.checks if c.name == "global")
    assert line.ok and f"all {every.P} patterns" in line.detail
    # the same weights with another λ: the record is rebuilt consistently, but the
    # solution is no longer dual feasible over the arrangement
    lam = json.loads((out / "certificate.json").read_text())["lam"]
    rewrite(out, edit=lambda r: r.update(lam=lam * 0.5))
    bad = cn.verify(out, (X, y))
    assert "global" in bad.failed and not bad.valid


def test_verify_without_data_on_a_recorded_spec_is_named(gated):
    ds, out = fresh(gated, "nospec")
    with pytest.raises(cn.InvalidInputError, match="records no data spec"):
        cn.verify(out)


# ---------------------------------------------------------------------------
# reading a result folder
# ---------------------------------------------------------------------------


def test_reading_broken_result_folders_is_named(tmp_path, gated):
    with pytest.raises(cn.InvalidInputError, match="not found"):
        read_record(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(cn.InvalidInputError, match="missing"):
        read_record(tmp_path / "empty")
    with pytest.raises(cn.InvalidInputError, match="missing"):
        read_arrays(tmp_path / "empty")
    (tmp_path / "empty" / "certificate.json").write_text("[1, 2]")
    with pytest.raises(cn.InvalidInputError, match="JSON object"):
        read_record(tmp_path / "empty")
    (tmp_path / "empty" / "solution.npz").write_text("not a zip")
    with pytest.raises(cn.InvalidInputError, match="npz"):
        read_arrays(tmp_path / "empty")


# ---------------------------------------------------------------------------
# the global check's argument errors and its fallback
# ---------------------------------------------------------------------------


def test_global_check_refuses_programs_without_a_pattern_constraint(small):
    X, y, pats = small
    data = prepare(X, y, patterns=pats)
    sol = cn.solve("mkl", X, y, patterns=pats, mu_ratio=0.1)
    with pytest.raises(cn.InvalidInputError, match="pattern-wise dual constraint"):
        check_patterns("mkl", data, sol.weights, sol.reg, pats)
    other = cn.sample_patterns(np.hstack([X, np.ones((len(X), 1))]), 5)
    with pytest.raises(cn.InvalidInputError, match="same X"):
        check_patterns("gated_relu", data, {"W": np.zeros((pats.P, 4, 1))}, 1.0, other)


def test_certify_global_samples_when_the_arrangement_is_too_large(small):
    from convexnn.global_check import merge_patterns

    X, y, pats = small
    sol = cn.solve("gated_relu", X, y, patterns=pats, lam_ratio=0.1)
    check = certify_global(sol, X, y, max_patterns=50)
    assert check.scope == "sampled" and check.patterns.P >= pats.P
    # max(1000, 10 P) gates: 1000 here, 10 P for a solution of more than 100 patterns
    many = cn.sample_patterns(X, 400, seed=3)
    assert many.P > 100
    big = cn.solve("gated_relu", X, y, patterns=many, lam_ratio=0.1, method="fast")
    got = certify_global(big, X, y, max_patterns=50)
    want = merge_patterns(cn.sample_patterns(X, 10 * many.P, seed=0), many)
    assert got.patterns.P == want.P
    assert got.patterns.P != merge_patterns(cn.sample_patterns(X, 1000, seed=0), many).P
    with pytest.raises(cn.ProblemTooLargeError):
        certify_global(sol, X, y, candidates="all", max_patterns=50)
    with pytest.raises(cn.InvalidInputError, match="candidates"):
        certify_global(sol, X, y, candidates="some")
    with pytest.raises(cn.InvalidInputError, match="Solution"):
        certify_global(object(), X, y)
    with pytest.raises(cn.InvalidInputError, match="sha256"):
        certify_global(sol, X, y + 1.0)


# ---------------------------------------------------------------------------
# writing: atomic, and nothing left behind when a write fails
# ---------------------------------------------------------------------------


def hidden(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_a_failing_replace_keeps_the_previous_result(tmp_path, gated, monkeypatch):
    ds, sol, _ = gated
    out = cn.save(sol, tmp_path / "R", ds)
    before = (out / "certificate.json").read_bytes()
    real_rename = os.rename

    def failing(src, dst):
        if str(src).endswith(".tmp"):
            raise OSError(28, "No space left on device")
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", failing)
    with pytest.raises(OSError, match="space"):
        cn.save(sol, out, ds)
    monkeypatch.undo()
    assert (out / "certificate.json").read_bytes() == before
    assert hidden(tmp_path) == [] and cn.verify(out, ds).valid


def test_a_failing_file_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    target = tmp_path / "f.json"
    target.write_bytes(b"old")

    def failing(src, dst):
        raise OSError(5, "I/O error")

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(OSError):
        files.write_bytes_atomic(target, b"new")
    monkeypatch.undo()
    assert target.read_bytes() == b"old" and hidden(tmp_path) == []
    files.write_bytes_atomic(target, b"new")
    assert target.read_bytes() == b"new" and hidden(tmp_path) == []


def test_an_interrupt_inside_a_save_removes_the_temporary_folder(tmp_path):
    target = tmp_path / "R"
    with pytest.raises(KeyboardInterrupt):
        with files.atomic_directory(target) as tmp:
            (tmp / "x").write_text("partial")
            files.remove_active()  # what the command line's Ctrl-C handler calls
            assert not tmp.exists()
            raise KeyboardInterrupt
    assert not target.exists() and hidden(tmp_path) == []


def test_stale_folders_of_a_killed_run_are_cleaned_or_restored(tmp_path, gated):
    ds, sol, _ = gated
    # a process id above the kernel's largest cannot belong to a running process
    try:
        with open("/proc/sys/kernel/pid_max") as fh:
            pid = int(fh.read()) + 1
    except OSError:
        pid = 2**22 + 1  # Linux's upper limit of pid_max
    # killed while writing: a .tmp beside the target; killed between the two renames of
    # the swap: the previous result as .old and no target
    (tmp_path / f".R.{pid}.abc123.tmp").mkdir()
    previous = cn.save(sol, tmp_path / "prev", ds)
    os.rename(previous, tmp_path / f".R.{pid}.def456.old")
    files._clean_stale(tmp_path, "R")
    assert hidden(tmp_path) == [] and cn.verify(tmp_path / "R", ds).valid
    # a temporary folder of a live process is left alone
    live = tmp_path / f".R.{os.getpid()}.fff000.tmp"
    live.mkdir()
    files._clean_stale(tmp_path, "R")
    assert live.exists()


def test_user_files_and_links_are_carried_into_the_new_result(tmp_path, gated, monkeypatch):
    ds, sol, _ = gated
    out = cn.save(sol, tmp_path / "R", ds)
    (out / "notes.txt").write_text("mine")
    (out / "link").symlink_to(out / "notes.txt")
    (out / "reproduce.json").write_text("{not json")  # a broken listing owns nothing more
    monkeypatch.setattr(os, "link", lambda a, b: (_ for _ in ()).throw(OSError("no links")))
    cn.save(sol, out, ds)
    assert (out / "notes.txt").read_text() == "mine" and (out / "link").is_symlink()
    assert cn.verify(out, ds).valid


def test_an_existing_file_is_refused_as_output_folder(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(cn.InvalidInputError, match="not a folder"):
        files.check_output_dir(f)


def test_malformed_pattern_arrays_fail_the_pattern_check(gated):
    ds, out = fresh(gated, "counts")
    with np.load(out / "solution.npz") as f:
        P = f["patterns.counts"].shape[0]
    rewrite(out, {"patterns.counts": np.array(["x"] * P)})
    assert cn.verify(out, ds).failed == ["patterns"]


def test_scope_all_that_cannot_be_rederived_fails_the_global_check(tmp_path):
    # 60 points in R⁵: about a million cells, beyond what verify enumerates
    ds = cn.planted_relu(60, 5, seed=3)
    sol = cn.solve("gated_relu", ds.X, ds.y, patterns=10, lam_ratio=0.1)
    out = cn.save(sol, tmp_path / "R", ds)
    rewrite(out, edit=lambda r: r.update(scope="all"))
    res = cn.verify(out, ds)
    assert res.failed == ["global"], str(res)
    assert "cannot be re-derived" in next(c.detail for c in res.checks if c.name == "global")


def test_a_network_objective_without_its_lambda_fails_the_network_check(tmp_path):
    ds = cn.planted_relu(30, 3, seed=6)
    sol = cn.solve("mkl", ds.X, ds.y, patterns=10, mu_ratio=0.1)
    out = cn.save(sol, tmp_path / "R", ds)
    assert cn.verify(out, ds).valid
    rewrite(out, edit=lambda r: r["info"].pop("lam"))
    res = cn.verify(out, ds)
    assert res.failed == ["network"] and "no network/λ" in str(res)


def test_a_data_file_too_large_to_copy_is_verified_from_data_root(tmp_path, monkeypatch):
    from cli_helpers import npz_problem

    from convexnn import results

    spec_path, X, y = npz_problem(tmp_path)
    monkeypatch.setattr(results, "COPY_DATA_BYTES", 10)  # every file is "too large"
    spec = cn.load_spec(spec_path)
    sol, ds = cn.solve_spec(spec)
    out = cn.save(sol, tmp_path / "out" / "R", ds, spec=spec)
    assert not (out / "certified-data").exists()
    source = json.loads((out / "certificate.json").read_text())["spec"]["data"]["source"]
    assert source == f"npz:{tmp_path / 'data' / 'train.npz'}"
    with pytest.raises(cn.InvalidInputError, match="outside the result folder"):
        cn.verify(out)
    assert cn.verify(out, data_root=tmp_path / "data").valid


def test_scope_all_of_a_kernel_program_is_the_arrangement_itself(tmp_path):
    rng = np.random.default_rng(5)
    X, y = rng.standard_normal((12, 2)), rng.standard_normal(12)
    full = cn.solve("mkl", X, y, patterns="all", mu_ratio=0.1)
    out = cn.save(full, tmp_path / "all", (X, y))
    res = cn.verify(out, (X, y))
    line = next(c for c in res.checks if c.name == "global")
    assert res.valid and line.ok
    assert line.detail == f"the saved patterns are the {cn.enumerate_patterns(X).P} cells of " \
                          "the arrangement of the data"
    # a sampled set claimed as the arrangement
    sampled = cn.solve("mkl", X, y, patterns=5, mu_ratio=0.1)
    out = cn.save(sampled, tmp_path / "sampled", (X, y))

    def claim(r):
        r.update(scope="all")
        r["patterns"]["scope"] = "all"

    rewrite(out, edit=claim)
    res = cn.verify(out, (X, y))
    assert res.failed == ["global"], str(res)
    assert "not the cells of the arrangement" in next(
        c.detail for c in res.checks if c.name == "global")
