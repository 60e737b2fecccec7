"""Sweeps: the spec, the splits, the scores and predictions, and runs that resume.

The truths are independent of the code under test: hand-made labels for the scores, the
closed-form kernel ridge prediction for the NTK, the convex program's own fit for the
gated network, the split files of the UCI collection, scikit-learn's Ridge for the
estimator plug-in, and the history of which run finished which task.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_helpers import REPO, run, uci_available, write_spec

import convexnn as cn
from convexnn.errors import InvalidInputError
from convexnn.sweeps.models import ESTIMATORS, EstimatorModel, scores
from convexnn.sweeps.results import HISTORY_FILE, TIMING_COLUMNS, summarize
from convexnn.sweeps.spec import SWEEPS_DIR, load_sweep, parse_sweep
from convexnn.sweeps.tasks import load_source, plan_sweep, task_key

SMALL = """\
# Two scikit-learn sets × gated ReLU and the NTK.
[data]
sources = ["sklearn:iris", "sklearn:diabetes"]
standardize = true
bias = true

[protocol]
kind = "kfold"
folds = 2
seed = 0
test_fraction = 0.25

[patterns]
count = 20

[grid]
lam_ratios = [0.3, 0.05]

[[model]]
formulation = "gated_relu"

[[model]]
formulation = "ntk"
mu_ratios = [0.1, 0.01]
"""

needs_uci = pytest.mark.skipif(not uci_available(), reason="the UCI collection is not here")


def sigint_default() -> None:
    """``preexec_fn`` of children that get Ctrl-C: Python's handler even where the tests
    themselves run with SIGINT ignored (a background job of a shell without job control)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def small_spec(tmp_path: Path, text: str = SMALL) -> Path:
    return write_spec(tmp_path / "small.toml", text)


def without_timing(table: pd.DataFrame) -> pd.DataFrame:
    return table.drop(columns=list(TIMING_COLUMNS)).reset_index(drop=True)


# ---------------------------------------------------------------------------
# The spec
# ---------------------------------------------------------------------------


def test_the_spec_reads_into_models_grids_and_a_protocol(tmp_path):
    spec = load_sweep(small_spec(tmp_path))
    assert [m.name for m in spec.models] == ["gated_relu", "ntk"]
    assert spec.models[0].grid.key == "lam_ratios" and spec.models[0].grid.values == (0.3, 0.05)
    assert spec.models[1].grid.key == "mu_ratios"  # a μ model does not take the λ grid
    assert spec.protocol.as_dict() == {"kind": "kfold", "folds": 2, "seed": 0,
                                       "test_fraction": 0.25}
    assert [e.source for e in spec.data.entries] == ["sklearn:iris", "sklearn:diabetes"]
    assert spec.description.startswith("Two scikit-learn sets")
    # the stored form reads back into the same spec
    again = parse_sweep(json.loads(json.dumps(spec.as_dict())), name=spec.name)
    assert again.as_dict() == spec.as_dict()


@pytest.mark.parametrize("edit, words", [
    (("[grid]", "[grids]"), ["unknown section", "grids"]),
    (("folds = 2", "folds = 2\nfold_count = 3"), ["fold_count", "[protocol]"]),
    (("formulation = \"gated_relu\"", "formulation = \"gated_relu\"\nlam_ratio = 0.1"),
     ["lam_ratio", "lam_ratios = [...]"]),
    (("lam_ratios = [0.3, 0.05]", "lam_ratios = [0.3, -1]"), ["lam_ratios", "positive"]),
    (("lam_ratios = [0.3, 0.05]", "lam_ratios = []"), ["lam_ratios", "non-empty"]),
    (("formulation = \"gated_relu\"", "formulation = \"gated\""), ["formulation", "gated_relu"]),
    (("formulation = \"gated_relu\"", "formulation = \"gated_relu\"\nmethod = \"cholesky\""),
     ["method", "cholesky"]),
    (("formulation = \"gated_relu\"", "formulation = \"gated_relu\"\noptions = { iters = 3 }"),
     ["iters", "options"]),
    (("standardize = true", "standardize = true\nmax_n = 100"), ["max_n", "uci:*"]),
    (("kind = \"kfold\"", "kind = \"uci\""), ["kfold", "sklearn:iris"]),
    (("[[model]]\nformulation = \"ntk\"",
      "[[model]]\nname = \"gated_relu\"\nformulation = \"ntk\""), ["named", "gated_relu"]),
    (("mu_ratios = [0.1, 0.01]\n", ""), ["ntk", "mu_ratios"]),
    (("standardize = true", "standardize = true\nsplit = \"train\""), ["split", "[protocol]"]),
])
def test_bad_specs_name_the_key(tmp_path, edit, words):
    old, new = edit
    assert old in SMALL
    path = small_spec(tmp_path, SMALL.replace(old, new, 1))
    with pytest.raises(InvalidInputError) as info:
        load_sweep(path)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_the_bundled_sweeps_parse():
    specs = sorted(SWEEPS_DIR.glob("*.toml"))
    assert specs, "problems/sweeps/ holds at least one sweep"
    for path in specs:
        spec = load_sweep(path.stem)  # a bundled name resolves
        assert spec.path == path.resolve() and spec.description


def test_a_task_key_changes_with_every_part_of_the_task():
    task = {"data": {"source": "uci:iris"}, "fold": 1, "model": {"lam_ratios": [0.1]},
            "data_sha256": "a" * 64}
    same = json.loads(json.dumps(task))
    assert task_key(task) == task_key(same)
    for edit in ({"fold": 2}, {"model": {"lam_ratios": [0.1, 0.01]}}, {"data_sha256": "b" * 64}):
        assert task_key({**task, **edit}) != task_key(task)


# ---------------------------------------------------------------------------
# Splits, scores and predictions
# ---------------------------------------------------------------------------


def test_kfold_splits_partition_the_points_outside_the_test_set(tmp_path):
    spec = load_sweep(small_spec(tmp_path, SMALL.replace("folds = 2", "folds = 3")))
    src = load_source(spec.data.entries[0], spec.protocol)
    n = src.data.n
    test = src.splits[0].test
    assert len(test) == round(0.25 * n) or abs(len(test) - 0.25 * n) < 1
    validation = np.concatenate([s.validation for s in src.splits])
    assert len(src.splits) == 3
    assert sorted(validation) == sorted(set(range(n)) - set(test))  # each point once
    for s in src.splits:
        assert np.array_equal(s.test, test)
        assert not set(s.train) & set(s.validation) and not set(s.train) & set(test)
        assert len(s.train) + len(s.validation) + len(test) == n
    # stratified: every fold of iris's three balanced classes holds each class
    labels = np.argmax(src.data.y, axis=1)
    for s in src.splits:
        assert len(np.unique(labels[s.validation])) == 3


@needs_uci
def test_uci_folds_are_the_collection_split_files():
    from convexnn.data import uci_root

    root = uci_root()
    spec = parse_sweep({"data": {"sources": ["uci:fertility"]},
                        "model": [{"formulation": "gated_relu", "lam_ratios": [0.1]}]})
    src = load_source(spec.data.entries[0], spec.protocol)
    lines = [[int(t) for t in ln.split()] for ln in
             (root / "fertility" / "conxuntos.dat").read_text().splitlines() if ln.strip()]
    assert src.splits[0].fold == 0
    assert sorted(src.splits[0].train) == sorted(lines[0])
    assert sorted(src.splits[0].validation) == sorted(lines[1]) and not len(src.splits[0].test)
    pairs = [[int(t) for t in ln.split()] for ln in
             (root / "fertility" / "conxuntos_kfold.dat").read_text().splitlines() if ln.strip()]
    assert [s.fold for s in src.splits[1:]] == [1, 2, 3, 4]
    for k, s in enumerate(src.splits[1:]):
        assert sorted(s.train) == sorted(pairs[2 * k])
        assert sorted(s.test) == sorted(pairs[2 * k + 1])
        assert not len(s.validation)


def test_scores_count_hand_made_predictions():
    Y = np.array([[1, -1, -1], [-1, 1, -1], [-1, -1, 1], [1, -1, -1]], dtype=float)
    P = np.array([[0.9, 0.1, 0], [0.2, 0.1, 0.5], [0, 0, 1], [0, 0.4, 0.3]])
    acc, mse = scores(Y, P, True)
    assert acc == 0.5  # rows 0 and 2 right
    assert mse == pytest.approx(np.sum((P - Y) ** 2) / 12)
    acc, _ = scores(np.array([1.0, -1.0, 1.0]), np.array([0.2, 0.0, -3.0]), True)
    assert acc == pytest.approx(2 / 3)  # a zero score is the smaller label
    acc, mse = scores(np.array([1.0, 2.0]), np.array([1.5, 2.0]), False)
    assert np.isnan(acc) and mse == pytest.approx(0.125)
    assert all(np.isnan(scores(np.zeros((0, 2)), np.zeros((0, 2)), True)))


def test_ntk_predictions_are_the_kernel_ridge_predictions_on_new_points():
    """The network the sweep predicts with equals K(Z, X) (K + μI)⁻¹ y, formed here from
    the masked Gram matrices of the training and new points."""
    from convexnn.kernels import ntk_weights
    from convexnn.ops import masked_gram
    from convexnn.sweeps.models import predictor

    ds = cn.planted_relu(70, 3, seed=5)
    X, Z, y = ds.X[:50], ds.X[50:], ds.y[:50]
    sol = cn.solve("ntk", X, y, patterns=30, bias=True, mu_ratio=0.05)
    Xb, Zb = cn.add_bias(X), cn.add_bias(Z)
    p = ntk_weights(sol.patterns, Xb)[0]
    M = sol.patterns.masks
    alpha = np.linalg.solve(masked_gram(Xb, M, p) + sol.reg * np.eye(50), y)
    expected = masked_gram(Xb, M, p, Zb, sol.patterns.masks_for(Zb)) @ alpha
    assert np.allclose(predictor(sol)(Z), expected, rtol=1e-7, atol=1e-9)


def test_gated_predictions_on_the_training_points_are_the_programs_fit():
    from convexnn.ops import forward
    from convexnn.sweeps.models import predictor

    ds = cn.planted_relu(60, 3, seed=2)
    sol = cn.solve("gated_relu", ds.X, ds.y, patterns=25, bias=True, lam_ratio=0.05)
    fit = forward(cn.add_bias(ds.X), sol.patterns.masks, np.asarray(sol.weights["W"]))[:, 0]
    assert np.allclose(predictor(sol)(ds.X), fit, rtol=1e-7, atol=1e-9)


# ---------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------


def test_summary_selects_on_validation_and_averages_the_test_folds():
    rows = []
    for fold, val, tests in ((1, [0.6, 0.9, 0.9], [0.5, 0.8, 0.7]),
                             (2, [0.7, 0.8, 0.9], [0.6, 0.9, 0.2])):
        for g in range(3):
            rows.append({"dataset": "a", "model": "m", "classes": 2, "status": "ok",
                         "reg_name": "lam", "grid_point": g, "reg_ratio": [1, 0.1, 0.01][g],
                         "reg": 1.0, "fold": fold, "validation_accuracy": val[g],
                         "test_accuracy": tests[g], "certified": True, "key": f"k{fold}"})
    per, models = summarize(pd.DataFrame(rows))
    # mean validation 0.65, 0.85, 0.9 → grid point 2; its tests 0.7 and 0.2
    assert per.loc[0, "grid_point"] == 2 and per.loc[0, "grid_value"] == 0.01
    assert per.loc[0, "test_mean"] == pytest.approx(0.45)
    assert per.loc[0, "test_std"] == pytest.approx(np.std([0.7, 0.2], ddof=1))
    assert models.loc[0, "mean_test"] == pytest.approx(0.45)


def test_a_sweep_runs_serially_resumes_and_rebuilds_the_same_table(tmp_path):
    path = small_spec(tmp_path)
    out = tmp_path / "out"
    first = cn.sweep(path, out, scheduler="serial")
    assert (first.tasks, first.ran, first.skipped, first.failed) == (8, 8, 0, 0)
    assert len(first.table) == 8 * 2 and first.table["certified"].all()
    assert set(first.files) >= {"results.csv", "summary.csv", "summary.md"}
    again = cn.sweep(path, out, scheduler="serial")
    assert (again.ran, again.skipped) == (0, 8)
    pd.testing.assert_frame_equal(again.table, first.table)
    saved = pd.read_csv(out / "results.csv")
    assert len(saved) == 16 and set(saved["fold"]) == {1, 2}
    iris = first.table[first.table["dataset"] == "iris"]
    assert iris["test_accuracy"].notna().all() and iris["validation_accuracy"].notna().all()
    diabetes = first.table[first.table["dataset"] == "diabetes"]
    assert diabetes["test_accuracy"].isna().all() and diabetes["test_mse"].notna().all()
    assert (first.table["peak_rss_mb"] > 0).all()


def test_the_default_and_a_loopback_localcluster_give_the_same_table(tmp_path):
    path = small_spec(tmp_path)
    pool = cn.sweep(path, tmp_path / "pool", workers=2)  # the default: a process pool
    dask = cn.sweep(path, tmp_path / "dask", scheduler="local", workers=1)
    serial = cn.sweep(path, tmp_path / "serial", scheduler="serial")
    assert pool.where.startswith("processes") and "LocalCluster" in dask.where
    assert pool.ran == dask.ran == serial.ran == 8
    pd.testing.assert_frame_equal(without_timing(pool.table), without_timing(dask.table))
    pd.testing.assert_frame_equal(without_timing(pool.table), without_timing(serial.table))
    # the work ran in other processes
    assert not pool.table["worker"].str.endswith(f":{os.getpid()}").any()
    assert not dask.table["worker"].str.endswith(f":{os.getpid()}").any()


def test_a_sweep_runs_on_the_workers_of_a_running_scheduler(tmp_path):
    """The address of a running Dask scheduler (here a LocalCluster on loopback)."""
    from distributed import LocalCluster

    text = SMALL.replace('"sklearn:iris", "sklearn:diabetes"', '"sklearn:iris"').split(
        "[[model]]\nformulation = \"ntk\"")[0]
    path = small_spec(tmp_path, text)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        res = cn.sweep(path, tmp_path / "out", scheduler=cluster.scheduler_address)
        assert cluster.scheduler_address in res.where and "1 worker" in res.where
    serial = cn.sweep(path, tmp_path / "serial", scheduler="serial")
    assert res.ran == 2
    pd.testing.assert_frame_equal(without_timing(res.table), without_timing(serial.table))


def test_a_failing_task_is_recorded_and_the_sweep_goes_on(tmp_path, capsys):
    text = SMALL.replace("formulation = \"gated_relu\"",
                         "formulation = \"gated_relu\"\noptions = { memory_limit = \"1K\" }")
    path = small_spec(tmp_path, text)
    out = tmp_path / "out"
    code, stdout, err = run(["sweep", path, "--out", out, "--scheduler", "serial"], capsys)
    assert code == 0, err
    assert "4 of 8 tasks failed" in err and err.count("\n") == 1
    table = pd.read_csv(out / "results.csv")
    bad = table[table["model"] == "gated_relu"]
    assert (bad["status"] == "failed").all()
    assert bad["error"].str.startswith("ProblemTooLargeError").all()
    assert (table.loc[table["model"] == "ntk", "status"] == "ok").all()
    summary = pd.read_csv(out / "summary.csv")
    assert summary.loc[summary["model"] == "gated_relu", "failed_tasks"].tolist() == [2, 2]
    # re-running skips them; --retry-failed runs only them
    code, stdout, err = run(["sweep", path, "--out", out, "--scheduler", "serial"], capsys)
    assert "0 run now, 8 done before" in stdout
    code, stdout, err = run(["sweep", path, "--out", out, "--scheduler", "serial",
                             "--retry-failed"], capsys)
    assert "4 run now, 4 done before, 4 failed" in stdout


def test_a_changed_spec_is_refused_unless_forced(tmp_path, capsys):
    path = small_spec(tmp_path)
    out = tmp_path / "out"
    code, _, err = run(["sweep", path, "--out", out, "--scheduler", "serial"], capsys)
    assert code == 0, err
    small_spec(tmp_path, SMALL.replace("lam_ratios = [0.3, 0.05]", "lam_ratios = [0.3, 0.01]"))
    code, _, err = run(["sweep", path, "--out", out, "--scheduler", "serial"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "sweep.json" in err and "model[1].lam_ratios" in err and "--force" in err
    code, stdout, err = run(["sweep", path, "--out", out, "--scheduler", "serial", "--force"],
                            capsys)
    assert code == 0, err
    assert "4 run now, 4 done before" in stdout  # the ntk tasks did not change


def test_a_tampered_record_is_run_again(tmp_path):
    path = small_spec(tmp_path)
    out = tmp_path / "out"
    first = cn.sweep(path, out, scheduler="serial")
    record = next((out / "runs").glob("*.json"))
    data = json.loads(record.read_text())
    data["task"]["fold"] = 7
    record.write_text(json.dumps(data))
    again = cn.sweep(path, out, scheduler="serial")
    assert (again.ran, again.skipped) == (1, 7)
    pd.testing.assert_frame_equal(without_timing(again.table), without_timing(first.table))


def test_an_estimator_plugs_in_with_one_line(tmp_path, monkeypatch):
    from sklearn.linear_model import Ridge

    monkeypatch.setitem(ESTIMATORS, "ridge", EstimatorModel(Ridge, reg="alpha"))
    text = SMALL.replace("formulation = \"ntk\"\nmu_ratios = [0.1, 0.01]",
                         "estimator = \"ridge\"\nalphas = [1.0, 10.0]")
    res = cn.sweep(small_spec(tmp_path, text), tmp_path / "out", scheduler="serial")
    rows = res.table[(res.table["model"] == "ridge") & (res.table["dataset"] == "iris")]
    assert rows["certified"].isna().all() and (rows["status"] == "ok").all()
    # the same fit, by hand, on the same rows
    plan = plan_sweep(load_sweep(tmp_path / "small.toml"))
    src = load_source(plan.spec.data.entries[0], plan.spec.protocol)
    for fold, split in enumerate(src.splits, start=1):
        for g, alpha in enumerate([1.0, 10.0]):
            model = Ridge(alpha=alpha).fit(src.data.X[split.train], src.data.y[split.train])
            P = model.predict(src.data.X[split.test])
            acc = np.mean(np.argmax(P, 1) == np.argmax(src.data.y[split.test], 1))
            got = rows[(rows["fold"] == fold) & (rows["grid_point"] == g)]["test_accuracy"]
            assert float(got.iloc[0]) == pytest.approx(acc)


def test_the_estimators_agree_with_the_formulations_they_wrap(tmp_path):
    """Two code paths to one optimum: the gated_relu formulation along a warm-started path
    and GatedReLURegressor fitted once per grid value, on the same folds and patterns."""
    text = SMALL.replace("mu_ratios = [0.1, 0.01]", "mu_ratios = [0.1, 0.01]\n\n[[model]]\n"
                         "estimator = \"GatedReLURegressor\"\n\n[[model]]\n"
                         "estimator = \"NTKRegressor\"\nmu_ratios = [0.1, 0.01]")
    res = cn.sweep(small_spec(tmp_path, text), tmp_path / "out", scheduler="serial")
    t = res.table
    assert res.failed == 0 and t["certified"].all()
    a = t[t["model"] == "gated_relu"].reset_index(drop=True)
    b = t[t["model"] == "GatedReLURegressor"].reset_index(drop=True)
    assert (b["kind"] == "estimator").all() and np.array_equal(a["reg"], b["reg"])
    # both certified at relative gap 1e-6: objectives within that, predictions close
    assert np.allclose(a["objective"], b["objective"], rtol=4e-6)
    for part in ("train", "validation", "test"):
        assert np.allclose(a[f"{part}_mse"], b[f"{part}_mse"], rtol=1e-3)
    ntk = t[t["model"] == "NTKRegressor"]
    assert ntk["test_mse"].notna().all() and (ntk["reg_name"] == "mu").all()


def test_the_command_line_refuses_a_bad_scheduler_and_workers_for_a_cluster(tmp_path, capsys):
    path = small_spec(tmp_path)
    code, _, err = run(["sweep", path, "--out", tmp_path / "o", "--scheduler", "threads"],
                       capsys)
    assert code == 2 and "scheduler" in err and err.count("\n") == 1
    code, _, err = run(["sweep", path, "--out", tmp_path / "o", "--scheduler",
                        "tcp://127.0.0.1:8786", "--workers", "2"], capsys)
    assert code == 2 and "workers" in err
    code, _, err = run(["sweep", path, "--out", tmp_path / "o", "--workers", "0"], capsys)
    assert code == 2 and "workers" in err


def _history(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / HISTORY_FILE).read_text().splitlines()]


def test_an_interrupted_sweep_resumes_and_runs_every_task_once(tmp_path):
    """SIGTERM while tasks run: exit 143 within seconds, no worker left behind, the
    finished records kept; the next run does only the rest."""
    text = SMALL.replace("count = 20", "count = 60").replace(
        "[0.3, 0.05]", "[0.3, 0.1, 0.03, 0.01]").replace("folds = 2", "folds = 4")
    path = small_spec(tmp_path, text)
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "convexnn", "sweep", str(path), "--out", str(out),
           "--workers", "2"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=sigint_default)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if (out / HISTORY_FILE).is_file() and len(_history(out)) >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the sweep ended before it could be interrupted"
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        waited = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 143, err
    assert waited < 20 and "Traceback" not in err
    time.sleep(0.5)
    assert _live(proc.pid) == []  # no worker left behind
    before = _history(out)
    done = len(list((out / "runs").glob("*.json")))
    assert done == len(before) and 2 <= done < 16
    res = cn.sweep(path, out, scheduler="serial")
    assert (res.skipped, res.ran, res.tasks) == (done, 16 - done, 16)
    history = _history(out)
    keys = [h["key"] for h in history]
    assert len(keys) == len(set(keys)) == 16  # every task finished exactly once
    assert len({h["run_id"] for h in history}) == 2
    fresh = cn.sweep(path, tmp_path / "fresh", scheduler="serial")
    pd.testing.assert_frame_equal(without_timing(res.table), without_timing(fresh.table))


def _live(group: int) -> list[str]:
    """Processes of a process group that are not zombies (those the system reaps)."""
    found = subprocess.run(["pgrep", "-g", str(group)], capture_output=True, text=True)
    return [p for p in found.stdout.split() if "Z" not in subprocess.run(
        ["ps", "-o", "stat=", "-p", p], capture_output=True, text=True).stdout]


LONG = """\
[data]
sources = ["synthetic:planted_relu"]
n = 400
d = 10

[protocol]
folds = 2

[patterns]
count = 300

[[model]]
formulation = "relu"
method = "ipm"
lam_ratios = [0.1, 0.05, 0.03, 0.02, 0.01, 0.005, 0.003, 0.002]
"""

SCRIPT = """
import sys
import convexnn as cn

if __name__ == "__main__":
    try:
        cn.sweep(sys.argv[1], sys.argv[2], workers=2)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(130)
"""


@pytest.mark.parametrize("target", ["parent", "group"])
def test_ctrl_c_in_python_stops_the_workers_at_once(tmp_path, target):
    """SIGINT while convexnn.sweep runs in the main thread — to the parent alone, or to
    the whole process group as Ctrl-C in a terminal sends it: KeyboardInterrupt reaches
    the caller within seconds (the workers are stopped, not waited for), no worker lives
    on, and no task is recorded as failed for it."""
    path = small_spec(tmp_path, LONG)  # tasks of a minute or more
    script = write_spec(tmp_path / "run.py", SCRIPT)
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, str(script), str(path), str(out)], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=sigint_default)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None and len(_live(proc.pid)) < 3:
            time.sleep(0.1)  # the parent and its two workers are up
        time.sleep(4.0)  # the workers are inside their first (minute-long) tasks
        assert proc.poll() is None
        sent = time.monotonic()
        if target == "group":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            os.kill(proc.pid, signal.SIGINT)
        stdout, err = proc.communicate(timeout=60)
        waited = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130 and "interrupted" in stdout, err
    assert waited < 10
    time.sleep(0.5)
    assert _live(proc.pid) == []
    records = [json.loads(p.read_text()) for p in (out / "runs").glob("*.json")]
    assert all(r["status"] == "ok" for r in records)


@needs_uci
def test_a_uci_sweep_uses_the_collection_protocol(tmp_path):
    spec = {"data": {"sources": ["uci:fertility", "uci:balloons"], "bias": True},
            "patterns": {"count": 20},
            "model": [{"formulation": "gated_relu", "lam_ratios": [0.5, 0.05]}]}
    res = cn.sweep(spec, tmp_path / "out", scheduler="serial")
    assert (res.tasks, res.failed) == (10, 0)
    t = res.table
    assert set(t["fold"]) == {0, 1, 2, 3, 4}
    assert t.loc[t["fold"] == 0, "test_accuracy"].isna().all()
    assert t.loc[t["fold"] > 0, "validation_accuracy"].isna().all()
    assert t.loc[t["fold"] > 0, "test_accuracy"].notna().all()
    assert (t.loc[t["dataset"] == "fertility", "n"] == 100).all()
    assert res.summary["test_folds"].tolist() == [4, 4]
