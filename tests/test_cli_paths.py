"""Command-line paths and exit codes not exercised elsewhere: ``--version``, bare
``convexnn``, ``verify --spec``, ``--uci-root`` (on a UCI-layout folder made here), exit
codes 5, 130 and 143 from the command's own handlers."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from cli_helpers import SMALL_SPEC, npz_problem, run, write_spec

import convexnn as cn
from convexnn import cli


def test_version_prints_the_package_version(capsys):
    code, out, err = run(["--version"], capsys)
    assert code == 0 and out.strip() == f"convexnn {cn.__version__}" and err == ""


def test_bare_convexnn_prints_help_and_exits_2(capsys):
    code, out, err = run([], capsys)
    assert code == 2
    assert out.startswith("usage: convexnn")
    for command in ("solve", "verify", "list", "explain", "reproduce"):
        assert command in out


def test_python_dash_m_is_the_same_program(capsys, monkeypatch):
    import runpy

    monkeypatch.setattr("sys.argv", ["convexnn", "--version"])
    with pytest.raises(SystemExit) as info:
        runpy.run_module("convexnn", run_name="__main__")
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"convexnn {cn.__version__}"


def test_verify_with_an_explicit_spec(tmp_path, capsys):
    spec, X, y = npz_problem(tmp_path)
    out = tmp_path / "R"
    code, _, err = run(["solve", spec, "--out", out], capsys)
    assert code == 0, err
    code, stdout, err = run(["verify", out, "--spec", spec], capsys)
    assert code == 0 and "VALID" in stdout, err
    # a spec whose data differ: the data hash check fails, exit 1, the check named
    other = tmp_path / "other"
    other.mkdir()
    np.savez(other / "train.npz", X=X, y=y + 1.0)
    wrong = write_spec(other / "npz.toml", spec.read_text().replace("data/train.npz",
                                                                     "train.npz"))
    code, stdout, err = run(["verify", out, "--spec", wrong], capsys)
    assert code == 1 and "data_sha256" in err and "INVALID" in stdout
    assert len(err.strip().splitlines()) == 1


def make_uci(root, name="toy", n=40, seed=0):
    """A data set in the UCI layout: <name>/<name>_R.dat (tab-separated, an index column,
    the label last) and the validation split file."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 3))
    labels = (X @ np.array([1.0, -1.0, 0.5]) > 0).astype(int)
    folder = root / name
    folder.mkdir(parents=True)
    lines = ["\tf1\tf2\tf3\tclase"] + [
        f"{i}\t" + "\t".join(f"{v:.6f}" for v in X[i]) + f"\t{labels[i]}" for i in range(n)]
    (folder / f"{name}_R.dat").write_text("\n".join(lines) + "\n")
    half = n // 2
    (folder / "conxuntos.dat").write_text(" ".join(map(str, range(half))) + "\n"
                                          + " ".join(map(str, range(half, n))) + "\n")
    return folder


def test_uci_root_on_the_command_line(tmp_path, capsys, monkeypatch):
    root = tmp_path / "uci"
    make_uci(root)
    monkeypatch.setenv("CONVEXNN_UCI", str(tmp_path / "nowhere"))
    spec = write_spec(tmp_path / "toy.toml", '[data]\nsource = "uci:toy"\n\n[patterns]\n'
                      'count = 10\n\n[model]\nformulation = "gated_relu"\nlam_ratio = 0.1\n')
    out = tmp_path / "R"
    # without --uci-root the environment points nowhere: one line, exit 2
    code, _, err = run(["solve", spec, "--out", out], capsys)
    assert code == 2 and "UCI" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
    code, stdout, err = run(["solve", spec, "--out", out, "--uci-root", root], capsys)
    assert code == 0 and "CERTIFIED" in stdout, err
    rec = json.loads((out / "certificate.json").read_text())
    assert rec["n"] == 40 and rec["d"] == 3 and rec["certified"] is True
    code, stdout, err = run(["verify", out, "--uci-root", root], capsys)
    assert code == 0 and "VALID" in stdout, err
    code, _, err = run(["verify", out], capsys)  # the data cannot be found: bad input
    assert code == 2 and len(err.strip().splitlines()) == 1
    code, stdout, _ = run(["list", "--uci-root", root], capsys)
    assert code == 0 and "(1 data sets)" in stdout


def _raising(exc):
    def command(args):
        raise exc
    return command


@pytest.mark.parametrize("exc, code, words", [
    (KeyboardInterrupt(), 130, "convexnn: interrupted"),
    (cli._Terminated(), 143, "convexnn: terminated"),
    (RuntimeError("boom"), 5, "convexnn: internal error (RuntimeError; rerun with --debug"),
    (cn.SolverFailedError("stopped", status="user_limit"), 4, "convexnn: solver failed"),
    (cn.VerificationError("bad"), 1, "convexnn: verification failed"),
    (MemoryError(), 2, "convexnn: error: out of memory"),
    (PermissionError(13, "denied", "/x"), 2, "convexnn: error /x:"),
])
def test_exit_codes_of_the_handlers(tmp_path, capsys, monkeypatch, exc, code, words):
    """Each exception a command may end with maps to its exit code and one stderr line; an
    interruption removes the temporary folders of an unfinished save."""
    from convexnn import files

    removed = []
    monkeypatch.setattr(files, "remove_active", lambda: removed.append(True))
    monkeypatch.setattr(cli, "_cmd_solve", _raising(exc))
    spec = write_spec(tmp_path / "s.toml", SMALL_SPEC)
    got, out, err = run(["solve", spec], capsys)
    assert got == code
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(words), err
    assert bool(removed) == (code in (130, 143))


def test_debug_adds_the_traceback_of_an_internal_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "_cmd_solve", _raising(RuntimeError("boom")))
    spec = write_spec(tmp_path / "s.toml", SMALL_SPEC)
    code, _, err = run(["solve", spec, "--debug"], capsys)
    assert code == 5 and "Traceback" in err and "RuntimeError: boom" in err


def test_sigterm_handler_is_restored_after_a_command(tmp_path, capsys):
    import signal

    before = signal.getsignal(signal.SIGTERM)
    spec = write_spec(tmp_path / "s.toml", SMALL_SPEC)
    code, _, err = run(["solve", spec, "--out", tmp_path / "R"], capsys)
    assert code == 0, err
    assert signal.getsignal(signal.SIGTERM) is before


def test_require_certified_passes_a_certified_result(tmp_path, capsys):
    spec = write_spec(tmp_path / "s.toml", SMALL_SPEC)
    code, out, err = run(["solve", spec, "--out", tmp_path / "R", "--require-certified"],
                         capsys)
    assert code == 0 and err == "" and "CERTIFIED" in out
    assert os.path.isfile(tmp_path / "R" / "summary.md")
