"""The command line as a newcomer meets it: what ran is reported honestly, numbers come
with their meaning, long solves show progress, skips are said, files are not overwritten."""

from __future__ import annotations

import json

import pytest
from cli_helpers import PROBLEMS, SMALL_SPEC, run, uci_available, write_spec

import convexnn as cn
from convexnn.data import uci_root


def _rows(text: str) -> dict[str, str]:
    """The solve table as {quantity: value}."""
    out = {}
    for line in text.splitlines():
        key, _, value = line.strip().partition("  ")
        if value:
            out[key] = value.strip()
    return out


def test_the_method_that_ran_is_reported_and_a_solver_it_did_not_need_is_said(tmp_path, capsys):
    spec = write_spec(tmp_path / "s.toml", SMALL_SPEC)
    code, text, err = run(["solve", spec, "--out", tmp_path / "a", "--method", "fast",
                           "--solver", "scs"], capsys)
    assert code == 0, err
    rows = _rows(text)
    assert rows["method"].startswith("first-order on a working set (numpy)")
    assert "SCS was not used" in rows["note"] and "'fast'" in rows["note"]
    rec = json.loads((tmp_path / "a" / "certificate.json").read_text())
    assert rec["method"] == "fast" and rec["spec"]["solver"]["method"] == "fast"
    assert rec["spec"]["solver"]["name"] == "scs"  # the overrides are what was recorded
    # the iteration counts the method reported are in the record
    assert rec["info"]["iterations"] >= 1 and "newton_steps" in rec["info"]
    assert run(["verify", tmp_path / "a"], capsys)[0] == 0

    code, text, _ = run(["solve", spec, "--out", tmp_path / "b", "--method", "ipm"], capsys)
    rows = _rows(text)
    assert code == 0 and rows["method"].startswith("interior point (CLARABEL)")
    assert "note" not in rows
    code, _, err = run(["solve", spec, "--out", tmp_path / "c", "--method", "newton"], capsys)
    assert code == 2 and "newton" in err and err.count("\n") == 1


def test_relu_fast_records_its_rounds(tmp_path, capsys):
    spec = write_spec(tmp_path / "s.toml", SMALL_SPEC.replace('"gated_relu"', '"relu"'))
    code, text, err = run(["solve", spec, "--out", tmp_path / "r", "--method", "fast"], capsys)
    assert code == 0, err
    rec = json.loads((tmp_path / "r" / "certificate.json").read_text())
    ws = rec["info"]["working_set"]
    assert ws["rounds"] >= 0 and ws["blocks"] >= 1 and len(ws["history"]) == ws["rounds"] + 1
    assert f"{ws['rounds']} rounds" in _rows(text)["method"]


def test_verbose_shows_progress_quiet_shows_none(tmp_path, capsys):
    spec = write_spec(tmp_path / "s.toml", SMALL_SPEC)
    code, _, err = run(["solve", spec, "--out", tmp_path / "v", "--method", "fast",
                        "--verbose"], capsys)
    assert code == 0
    lines = [ln for ln in err.splitlines() if ln.startswith("gated_relu fast:")]
    assert lines and "iteration" in lines[0] and "relative_gap" in lines[0] and " s" in lines[0]
    code, _, err = run(["solve", spec, "--out", tmp_path / "q", "--method", "fast",
                        "--quiet"], capsys)
    assert code == 0 and "gated_relu fast:" not in err
    # not a terminal and not verbose: silent by default
    code, _, err = run(["solve", spec, "--out", tmp_path / "d", "--method", "fast"], capsys)
    assert code == 0 and err == ""


def test_numbers_come_with_their_meaning(tmp_path, capsys):
    """The MKL network objective is the gated objective at the matched λ; checked with the
    identity p_G(λ) = p_MKL(μ) + λ²/(2μ) on the printed numbers themselves."""
    code, text, err = run(["solve", PROBLEMS / "ntk-vs-mkl.toml", "--out", tmp_path / "m"],
                          capsys)
    assert code == 0, err
    rows = _rows(text)
    rec = json.loads((tmp_path / "m" / "certificate.json").read_text())
    assert "p_G(λ) = p_MKL(μ) + λ²/(2μ)" in rows["network"]
    lam, mu = rec["info"]["lam"], rec["mu"]
    assert rec["network"]["objective"] == pytest.approx(rec["objective"] + lam**2 / (2 * mu),
                                                        rel=1e-6)
    assert "‖X‖₂²" in rows["regularisation"] and "mu_max" not in text

    code, text, _ = run(["solve", PROBLEMS / "iris.toml", "--out", tmp_path / "i"], capsys)
    rec = json.loads((tmp_path / "i" / "certificate.json").read_text())
    assert code == 0 and rec["outputs"] == 3
    assert "at least the convex objective" in _rows(text)["network"]
    assert rec["network"]["objective"] >= rec["objective"]


def test_distinct_patterns_are_explained(tmp_path, capsys):
    spec = write_spec(tmp_path / "s.toml", SMALL_SPEC)
    code, text, _ = run(["solve", spec, "--out", tmp_path / "p"], capsys)
    rec = json.loads((tmp_path / "p" / "certificate.json").read_text())
    count, draws = rec["patterns"]["count"], rec["patterns"]["draws"]
    assert code == 0 and draws == 30
    assert f"{count} distinct patterns from {draws} Gaussian gates" in _rows(text)["patterns"]
    if count < draws:
        assert f"{draws - count} duplicates" in _rows(text)["patterns"]


def test_uci_messages_and_the_verify_hint(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CONVEXNN_UCI", str(tmp_path / "nowhere"))
    with pytest.raises(cn.InvalidInputError) as info:
        uci_root()
    msg = str(info.value)
    assert msg.count(str(tmp_path / "nowhere")) == 1 and "$CONVEXNN_UCI" in msg
    assert "--uci-root PATH" in msg and "root=PATH" not in msg
    monkeypatch.delenv("CONVEXNN_UCI")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    with pytest.raises(cn.InvalidInputError, match="xdg/convexnn/uci"):
        uci_root()
    (tmp_path / "xdg" / "convexnn" / "uci").mkdir(parents=True)
    assert uci_root() == (tmp_path / "xdg" / "convexnn" / "uci").resolve()


@pytest.mark.skipif(not uci_available(), reason="the UCI collection is not available")
def test_a_uci_result_says_how_to_verify_it(tmp_path, capsys):
    code, text, err = run(["solve", PROBLEMS / "uci-blood.toml", "--out", tmp_path / "u"],
                          capsys)
    assert code == 0, err
    assert "--uci-root" in _rows(text)["verify with"]
    assert "--uci-root" in (tmp_path / "u" / "summary.md").read_text()


def test_reproduce_problems_names_what_it_skipped(tmp_path, capsys, monkeypatch):
    import convexnn.reproduce.problems as rep
    from convexnn.spec import bundled_problems

    folder = tmp_path / "problems"
    folder.mkdir()
    write_spec(folder / "tiny.toml", "# a tiny problem\n" + SMALL_SPEC)
    write_spec(folder / "needs-uci.toml", "# needs the collection\n" + SMALL_SPEC.replace(
        'source = "synthetic:planted_relu"\nn = 60\nd = 3\nseed = 4', 'source = "uci:blood"'))
    monkeypatch.setattr(rep, "bundled_problems", lambda: bundled_problems(folder))
    monkeypatch.setenv("CONVEXNN_UCI", str(tmp_path / "nowhere"))
    code, text, err = run(["reproduce", "problems", "--out", tmp_path / "out"], capsys)
    assert code == 0, err
    assert "SKIPPED: needs-uci" in text and "needs-uci: SKIPPED" in err
    table = (tmp_path / "out" / "problems.csv").read_text().splitlines()
    header = table[0].split(",")
    tiny = dict(zip(header, next(r for r in table if r.startswith("tiny")).split(","),
                    strict=False))
    skipped = dict(zip(header, next(r for r in table if r.startswith("needs-uci")).split(","),
                       strict=False))
    assert tiny["n"] == "60" and tiny["patterns"].isdigit()  # integers stay integers
    assert skipped["status"] == "skipped" and len(skipped["note"]) <= 120
    assert "reproduce.json" in text


def test_benchmarks_do_not_overwrite_committed_reports():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "benchmarks/bench_gated.py", "--help"],
                         capture_output=True, text=True, check=True, cwd=PROBLEMS.parent)
    text = " ".join(out.stdout.split())
    assert "a new results/benchmarks-" in text and "replaced only when named" in text
