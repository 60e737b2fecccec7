"""TOML problem specs: validation errors name the key, data sources load and encode."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from cli_helpers import PROBLEMS, SMALL_SPEC, npz_problem, run, uci_available, write_spec

import convexnn as cn
from convexnn.errors import InvalidInputError
from convexnn.problems import load_dataset, solve_spec
from convexnn.spec import bundled_problems, load_spec, parse_data, parse_spec


def _bad(tmp_path, capsys, text, *needles):
    """The spec must exit 2 with ONE stderr line naming every needle."""
    spec = write_spec(tmp_path / "bad.toml", text)
    code, out, err = run(["solve", spec, "--out", tmp_path / "out"], capsys)
    assert code == 2, (out, err)
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, (needle, err)
    assert not (tmp_path / "out").exists()
    return err


def test_unknown_key_names_it_and_the_allowed_ones(tmp_path, capsys):
    err = _bad(tmp_path, capsys, SMALL_SPEC.replace("seed = 4", "seed = 4\nsamples = 3"),
               "bad.toml", "'samples'", "[data]", "'n'")
    assert "allowed" in err


def test_unknown_section_and_misplaced_keys(tmp_path, capsys):
    _bad(tmp_path, capsys, SMALL_SPEC + "\n[training]\nepochs = 3\n", "'training'", "[model]")
    _bad(tmp_path, capsys, SMALL_SPEC.replace("count = 30", "count = 30\nmax_patterns = 9"),
         "max_patterns", "enumerate")
    _bad(tmp_path, capsys, SMALL_SPEC.replace("seed = 4", "seed = 4\nsplit = \"train\""),
         "split", "uci")


@pytest.mark.parametrize("old, new, needles", [
    ("n = 60", 'n = "60"', ["[data] n", "'60'", "integer"]),
    ("n = 60", "n = 60.5", ["[data] n", "60.5", "integer"]),
    ("n = 60", "n = 0", ["[data] n", "≥ 1"]),
    ("count = 30", "count = true", ["[patterns] count", "True"]),
    ("lam_ratio = 0.1", "lam_ratio = -0.1", ["lam_ratio", "-0.1", "> 0"]),
    ("lam_ratio = 0.1", 'lam_ratio = "big"', ["lam_ratio", "'big'"]),
    ("lam_ratio = 0.1", "lam = 1.0\nlam_ratio = 0.1", ["exactly one", "lam and lam_ratio"]),
    ("lam_ratio = 0.1", "", ["exactly one", "none"]),
    ("lam_ratio = 0.1", "mu = 1.0", ["mu", "lam"]),
    ('formulation = "gated_relu"', 'formulation = "svm"', ["formulation", "'svm'",
                                                            "gated_relu"]),
    ("[patterns]", '[patterns]\nmethod = "grid"', ["method", "'grid'", "enumerate"]),
])
def test_wrong_types_and_values_name_the_key(tmp_path, capsys, old, new, needles):
    assert old in SMALL_SPEC
    _bad(tmp_path, capsys, SMALL_SPEC.replace(old, new), *needles)


def test_solver_section_is_validated(tmp_path, capsys):
    _bad(tmp_path, capsys, SMALL_SPEC + "\n[solver]\ntolerance = 2.0\n", "tolerance", "< 1")
    _bad(tmp_path, capsys, SMALL_SPEC + "\n[solver]\nname = 3\n", "[solver] name")
    _bad(tmp_path, capsys, SMALL_SPEC + "\n[solver]\nretries = 3\n", "retries")
    _bad(tmp_path, capsys, SMALL_SPEC + "\n[solver]\nmethod = \"newton\"\n",
         "[solver] method", "'newton'", "ipm")
    _bad(tmp_path, capsys, SMALL_SPEC + "\n[solver.options]\nnot_a_setting = 1\n",
         "[solver.options]", "not_a_setting")
    _bad(tmp_path, capsys, SMALL_SPEC + "\n[model.options]\nwidth = 3\n",
         "[model.options]", "width")


def test_missing_files_and_unknown_datasets(tmp_path, capsys):
    _bad(tmp_path, capsys, SMALL_SPEC.replace('"synthetic:planted_relu"', '"npz:nowhere.npz"')
         .replace("n = 60\nd = 3\nseed = 4\n", ""), str(tmp_path / "nowhere.npz"))
    _bad(tmp_path, capsys, SMALL_SPEC.replace('"synthetic:planted_relu"', '"sklearn:mnist"')
         .replace("n = 60\nd = 3\nseed = 4\n", ""), "sklearn:mnist", "iris")
    _bad(tmp_path, capsys, SMALL_SPEC.replace("planted_relu", "spirals"), "synthetic:spirals")
    _bad(tmp_path, capsys, SMALL_SPEC.replace('"synthetic:planted_relu"', '"hdf5:x.h5"'),
         "hdf5:x.h5", "npz")
    code, _, err = run(["solve", tmp_path / "absent.toml"], capsys)
    assert code == 2 and "absent.toml" in err
    write_spec(tmp_path / "broken.toml", "[data\nsource=")
    code, _, err = run(["solve", tmp_path / "broken.toml"], capsys)
    assert code == 2 and "broken.toml" in err and "TOML" in err


def test_unknown_uci_dataset_names_it(tmp_path, capsys, monkeypatch):
    root = tmp_path / "uci"
    (root / "tiny").mkdir(parents=True)
    (root / "tiny" / "tiny_R.dat").write_text("\tf1\tclase\n1\t0.5\t0\n2\t-0.5\t1\n")
    monkeypatch.setenv("CONVEXNN_UCI", str(root))
    _bad(tmp_path, capsys, '[data]\nsource = "uci:nosuch"\n[model]\nformulation = '
         '"gated_relu"\nlam_ratio = 0.1\n', "uci:nosuch", "tiny")


def test_specs_are_frozen_and_round_trip(tmp_path):
    spec = load_spec(write_spec(tmp_path / "s.toml", SMALL_SPEC))
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.data.n = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.model.options["x"] = 1  # type: ignore[index]
    again = parse_spec(spec.as_dict(), name=spec.name)
    assert again.data == spec.data and again.patterns == spec.patterns
    assert again.model.as_dict() == spec.model.as_dict()
    assert spec.data.n == 60 and spec.patterns.count == 30 and spec.model.reg_ratio == 0.1


def test_bundled_problems_parse_when_their_formulation_is_registered():
    found = bundled_problems()
    assert {"quickstart", "relu-2d", "ntk-vs-mkl"} <= set(found)
    for name, (path, first) in found.items():
        assert first, name
        import tomllib

        if tomllib.loads(path.read_text())["model"]["formulation"] in cn.REGISTRY:
            assert load_spec(path).name == name


def test_relative_paths_resolve_against_the_spec_file(tmp_path, capsys, monkeypatch):
    spec, X, y = npz_problem(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    s = load_spec(spec)
    assert s.data.location == str((tmp_path / "data" / "train.npz").resolve())
    ds = load_dataset(s.data)
    np.testing.assert_array_equal(ds.X, X)
    np.testing.assert_array_equal(ds.y, y)
    code, _, err = run(["solve", spec, "--out", tmp_path / "o"], capsys)
    assert code == 0, err


def test_csv_source_with_target_column_and_text_labels(tmp_path):
    rows = ["a,label,b", "1.0,cat,2.0", "2.0,dog,0.5", "0.5,cat,1.0", "3.0,dog,-1.0"]
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    section = {"source": "csv:d.csv", "target_column": "label"}
    ds = load_dataset(parse_data(section, base_dir=tmp_path))
    np.testing.assert_array_equal(ds.X, [[1.0, 2.0], [2.0, 0.5], [0.5, 1.0], [3.0, -1.0]])
    # text labels → classification → "signed": one ±1 column, +1 for the second class
    np.testing.assert_array_equal(ds.y, [-1.0, 1.0, -1.0, 1.0])
    onehot = load_dataset(parse_data(section | {"target": "onehot"}, base_dir=tmp_path))
    np.testing.assert_array_equal(onehot.y, [[1, 0], [0, 1], [1, 0], [0, 1]])


def test_classification_targets_and_standardisation():
    from sklearn.datasets import load_iris

    iris = load_iris()
    ds = load_dataset(parse_data({"source": "sklearn:iris", "standardize": True}))
    assert ds.y.shape == (150, 3)
    np.testing.assert_array_equal(ds.y, np.where(iris.target[:, None] == np.arange(3), 1., -1.))
    np.testing.assert_allclose(ds.X.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(ds.X.std(axis=0), 1, atol=1e-12)
    raw = load_dataset(parse_data({"source": "sklearn:iris", "target": "raw"}))
    np.testing.assert_array_equal(raw.y, iris.target)
    np.testing.assert_array_equal(raw.X, iris.data)
    with pytest.raises(InvalidInputError, match="integer class labels"):
        load_dataset(parse_data({"source": "sklearn:diabetes", "target": "signed"}))
    reg = load_dataset(parse_data({"source": "sklearn:diabetes"}))  # regression: raw
    assert reg.y.ndim == 1 and len(np.unique(reg.y)) > 50


@pytest.mark.skipif(not uci_available(), reason="the UCI collection is not on this machine")
def test_uci_validation_split_selects_the_listed_rows():
    from convexnn.data import uci_root

    lines = (uci_root() / "blood" / "conxuntos.dat").read_text().split("\n")
    train_idx = [int(t) for t in lines[0].split()]
    full = load_dataset(parse_data({"source": "uci:blood", "target": "raw"}))
    train = load_dataset(parse_data({"source": "uci:blood", "split": "train", "target": "raw"}))
    valid = load_dataset(parse_data({"source": "uci:blood", "split": "validation"}))
    assert full.n == 748 and train.n == len(train_idx)
    np.testing.assert_array_equal(train.X, full.X[train_idx])
    assert train.n + valid.n == full.n
    assert set(np.unique(valid.y)) == {-1.0, 1.0}


def test_solve_spec_matches_the_python_api(tmp_path):
    spec = load_spec(write_spec(tmp_path / "s.toml", SMALL_SPEC))
    sol, ds = solve_spec(spec)
    direct = cn.solve("gated_relu", ds.X, ds.y, patterns=30, lam_ratio=0.1, seed=0)
    assert sol.lam == direct.lam and sol.patterns.P == direct.patterns.P
    assert sol.objective == pytest.approx(direct.objective, rel=1e-9)


def test_enumerate_patterns_gives_global_scope(tmp_path):
    text = SMALL_SPEC.replace("d = 3", "d = 2").replace("count = 30", 'method = "enumerate"')
    sol, ds = solve_spec(load_spec(write_spec(tmp_path / "e.toml", text)))
    assert sol.scope == "all" and sol.certified
    # d = 2: n points in general position give 2n cells (docs/math/notation.md)
    assert sol.patterns.P == 2 * ds.n


def test_bundled_quickstart_is_quick():
    import time

    start = time.perf_counter()
    sol, _ = solve_spec(load_spec(PROBLEMS / "quickstart.toml"))
    assert sol.certified and time.perf_counter() - start < 10
