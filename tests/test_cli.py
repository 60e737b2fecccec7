"""The command line: bundled problems solve and verify, exit codes, list/explain/reproduce."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib

import numpy as np
import pytest
from cli_helpers import (
    PROBLEMS,
    REPO,
    SMALL_SPEC,
    bundled_params,
    run,
    write_spec,
)

from convexnn.formulations import REGISTRY
from convexnn.solvers import available_solvers
from convexnn.spec import bundled_problems


@pytest.mark.parametrize("spec", bundled_params())
def test_every_bundled_problem_solves_certifies_and_verifies(spec, tmp_path, capsys):
    out = tmp_path / spec.stem
    code, text, err = run(["solve", spec, "--out", out, "--require-certified"], capsys)
    assert code == 0, err
    assert "CERTIFIED" in text and str(out) in text
    rec = json.loads((out / "certificate.json").read_text())
    doc = tomllib.loads(spec.read_text())
    assert rec["formulation"] == doc["model"]["formulation"]
    assert rec["certified"] is True and rec["relative_gap"] <= rec["tolerance"]
    # the certificate's own identities (DESIGN.md), from the saved numbers
    assert rec["gap"] == pytest.approx(rec["objective"] - rec["dual_objective"], abs=1e-12)
    expected_scope = "all" if doc.get("patterns", {}).get("method") == "enumerate" else "sampled"
    assert rec["patterns"]["scope"] == expected_scope
    code, text, err = run(["verify", out], capsys)
    assert code == 0, text + err
    assert "VALID" in text and "INVALID" not in text


def test_bundled_specs_describe_themselves():
    for path in PROBLEMS.glob("*.toml"):
        first = path.read_text().splitlines()[0]
        assert first.startswith("# ") and len(first) > 20, path


def test_solve_and_verify_as_subprocesses(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = tmp_path / "qs"
    solve = subprocess.run(
        [sys.executable, "-m", "convexnn", "solve", "problems/quickstart.toml", "--out",
         str(out), "--require-certified"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert solve.returncode == 0, solve.stderr
    assert "CERTIFIED" in solve.stdout
    assert {p.name for p in out.iterdir()} >= {"certificate.json", "solution.npz", "summary.md"}
    check = subprocess.run([sys.executable, "-m", "convexnn", "verify", str(out)],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert check.returncode == 0, check.stdout + check.stderr
    bad = subprocess.run([sys.executable, "-m", "convexnn", "solve", "nope.toml"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "nope.toml" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_default_output_is_results_stem_and_bundled_names_resolve(tmp_path, capsys,
                                                                  monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = write_spec(tmp_path / "tiny.toml", SMALL_SPEC)
    code, _, err = run(["solve", spec], capsys)
    assert code == 0, err
    assert (tmp_path / "results" / "tiny" / "certificate.json").is_file()
    code, _, err = run(["solve", "quickstart"], capsys)  # a bundled problem by name
    assert code == 0, err
    assert (tmp_path / "results" / "quickstart" / "certificate.json").is_file()


@pytest.mark.skipif("SCS" not in available_solvers(), reason="scs is not installed")
def test_require_certified_exits_3_when_the_gap_is_not_reached(tmp_path, capsys):
    # 20 SCS iterations cannot reach a 1e-6 relative gap; the numpy certificate says so
    spec = write_spec(tmp_path / "loose.toml", SMALL_SPEC + """
[solver]
name = "scs"
tolerance = 1e-6
options = { max_iters = 20 }
""")
    code, _, err = run(["solve", spec, "--out", tmp_path / "a", "--require-certified"], capsys)
    assert code == 3
    assert "not certified" in err and "relative gap" in err
    rec = json.loads((tmp_path / "a" / "certificate.json").read_text())
    assert rec["certified"] is False and rec["relative_gap"] > 1e-6
    assert "NOT CERTIFIED" in (tmp_path / "a" / "summary.md").read_text()
    # without the flag the uncertified answer is saved, labelled, and exits 0
    code, text, _ = run(["solve", spec, "--out", tmp_path / "b"], capsys)
    assert code == 0 and "NOT CERTIFIED" in text
    # and verify confirms the (honest) uncertified claim
    code, text, _ = run(["verify", tmp_path / "b"], capsys)
    assert code == 0 and "NOT certified" in text


def test_solver_override_from_the_command_line(tmp_path, capsys):
    spec = write_spec(tmp_path / "s.toml", SMALL_SPEC)
    code, _, err = run(["solve", spec, "--out", tmp_path / "o", "--solver", "nosuch"], capsys)
    assert code == 2 and "nosuch" in err and err.count("\n") == 1


def test_list_shows_formulations_solvers_and_problems(capsys):
    code, text, _ = run(["list"], capsys)
    assert code == 0
    for name, form in REGISTRY.items():
        assert name in text and form.title in text
    for path in PROBLEMS.glob("*.toml"):
        assert path.stem in text
    assert "clarabel" in text and "mosek" in text.lower()
    from convexnn.solvers import pardiso_available

    line = next(x for x in text.splitlines() if x.strip().startswith("clarabel"))
    assert "KKT systems:" in line
    assert ("MKL Pardiso" in line) == pardiso_available()


def test_explain_shows_math_problem_solution_and_certificate(capsys):
    code, text, _ = run(["explain", "gated_relu"], capsys)
    assert code == 0
    form = REGISTRY["gated_relu"]
    assert form.math.splitlines()[0] in text
    assert "minimize" in text and "maximize" in text  # the primal and the dual cvxpy problems
    assert "DPP: True" in text and "Certificate(CERTIFIED" in text
    code, _, err = run(["explain", "no_such_formulation"], capsys)
    assert code == 2 and "no_such_formulation" in err


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_explain_runs_for_every_registered_formulation(name, capsys):
    code, text, err = run(["explain", name], capsys)
    assert code == 0, err
    assert name in text and "Certificate(" in text


def test_reproduce_quickstart(tmp_path, capsys):
    code, text, _ = run(["reproduce", "--list"], capsys)
    assert code == 0 and "quickstart" in text
    out = tmp_path / "qs"
    code, text, err = run(["reproduce", "quickstart", "--out", out], capsys)
    assert code == 0, err
    for f in ("certificate.json", "solution.npz", "summary.md", "lambda_path.csv",
              "lambda_path.md", "certificate.csv", "reproduce.json"):
        assert (out / f).is_file(), f
    import pandas as pd

    path = pd.read_csv(out / "lambda_path.csv")
    assert path["certified"].all()
    # docs/math/gated_relu.md: the recovered network's training objective equals the convex optimum
    assert (path["network_vs_convex"] < 1e-6).all()
    # sparsity grows with λ: fewer neurons at the largest λ than at the smallest
    assert path.sort_values("lam")["neurons"].iloc[0] > path.sort_values("lam")["neurons"].iloc[-1]
    try:
        import matplotlib  # noqa: F401
        assert (out / "lambda_path.png").stat().st_size > 0
    except ImportError:
        assert "matplotlib" in json.loads((out / "reproduce.json").read_text())["figures"]
    code, _, _ = run(["verify", out], capsys)
    assert code == 0
    code, _, err = run(["reproduce", "nosuch", "--out", tmp_path / "x"], capsys)
    assert code == 2 and "nosuch" in err


def test_usage_errors_are_one_line_exit_2(capsys):
    for argv in (["frobnicate"], ["solve"], ["verify"], ["solve", "a.toml", "--bogus"]):
        code, _, err = run(argv, capsys)
        assert code == 2, argv
        assert err.count("\n") == 1 and "Traceback" not in err, err


def test_debug_shows_the_traceback(tmp_path, capsys):
    code, _, err = run(["solve", tmp_path / "missing.toml"], capsys)
    assert code == 2 and "Traceback" not in err
    code, _, err = run(["solve", tmp_path / "missing.toml", "--debug"], capsys)
    assert code == 2 and "Traceback" in err and "missing.toml" in err


def test_uci_problem_exits_2_cleanly_without_the_collection(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CONVEXNN_UCI", str(tmp_path / "no-uci-here"))
    code, _, err = run(["solve", PROBLEMS / "uci-blood.toml", "--out", tmp_path / "u"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "CONVEXNN_UCI" in err and "no-uci-here" in err
    assert not (tmp_path / "u").exists()


def test_a_folder_of_other_files_keeps_them(tmp_path, capsys):
    spec = write_spec(tmp_path / "s.toml", SMALL_SPEC)
    keep = tmp_path / "mine"
    (keep / "plots").mkdir(parents=True)
    (keep / "notes.txt").write_text("precious")
    (keep / "plots" / "a.txt").write_text("mine too")
    code, _, err = run(["solve", spec, "--out", keep], capsys)
    assert code == 0, err
    assert (keep / "notes.txt").read_text() == "precious"
    assert (keep / "plots" / "a.txt").read_text() == "mine too"
    assert (keep / "certificate.json").exists() and run(["verify", keep], capsys)[0] == 0


def test_solving_twice_replaces_the_previous_result(tmp_path, capsys):
    spec = write_spec(tmp_path / "s.toml", SMALL_SPEC)
    out = tmp_path / "o"
    assert run(["solve", spec, "--out", out], capsys)[0] == 0
    first = json.loads((out / "certificate.json").read_text())
    write_spec(spec, SMALL_SPEC.replace("lam_ratio = 0.1", "lam_ratio = 0.3"))
    assert run(["solve", spec, "--out", out], capsys)[0] == 0
    second = json.loads((out / "certificate.json").read_text())
    assert second["lam"] == pytest.approx(3 * first["lam"], rel=1e-12)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".o.")]  # no leftovers
    assert run(["verify", out], capsys)[0] == 0
    arrays = np.load(out / "solution.npz", allow_pickle=False)
    assert all(arrays[k].dtype != object for k in arrays.files)


def test_reproduce_problems_solves_verifies_and_skips(tmp_path, capsys, monkeypatch):
    import convexnn.reproduce.problems as rep

    folder = tmp_path / "problems"
    folder.mkdir()
    write_spec(folder / "tiny.toml", "# a tiny problem\n" + SMALL_SPEC)
    write_spec(folder / "future.toml", "# not yet available\n" + SMALL_SPEC.replace(
        '"gated_relu"', '"no_such_formulation"'))
    monkeypatch.setattr(rep, "bundled_problems", lambda: bundled_problems(folder))
    out = tmp_path / "out"
    code, _, err = run(["reproduce", "problems", "--out", out], capsys)
    assert code == 0, err
    import pandas as pd

    table = pd.read_csv(out / "problems.csv").set_index("problem")
    assert bool(table.loc["tiny", "certified"]) and bool(table.loc["tiny", "verified"])
    assert table.loc["future", "status"].startswith("skipped")
    assert run(["verify", out / "tiny"], capsys)[0] == 0
