"""Data validation and loaders: every bad input names the argument."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from convexnn import InvalidInputError
from convexnn.data import (
    SKLEARN_DATASETS,
    add_bias,
    data_sha256,
    list_uci,
    load_csv,
    load_npz,
    load_sklearn,
    load_uci,
    one_hot,
    planted_relu,
    uci_root,
    validate_xy,
)


def test_valid_input_is_returned_as_float_matrices():
    X, Y = validate_xy([[1, 2], [3, 4]], [1, 0])
    assert X.dtype == np.float64 and X.shape == (2, 2)
    assert Y.shape == (2, 1)
    X, Y = validate_xy(np.ones((3, 2)), np.ones((3, 4)))
    assert Y.shape == (3, 4)


@pytest.mark.parametrize(
    "X, y, words",
    [
        (np.array([[1.0, np.nan]]), [1.0], ["X", "NaN"]),
        (np.array([[1.0, 2.0]]), [np.inf], ["y", "infinite"]),
        (np.ones(3), np.ones(3), ["X", "2-D"]),
        (np.ones((3, 2, 1)), np.ones(3), ["X", "2-D"]),
        (np.zeros((0, 3)), np.zeros(0), ["X", "empty"]),
        (np.zeros((3, 0)), np.zeros(3), ["X", "empty"]),
        (np.ones((3, 2)), np.ones(4), ["3 rows", "4"]),
        (np.ones((3, 2)), np.ones((3, 2, 2)), ["y", "1-D or 2-D"]),
        (np.ones((3, 2)), 1.0, ["y", "scalar"]),
        (np.ones((3, 2)), np.ones((3, 0)), ["y", "zero columns"]),
        (np.array([["a", "b"]]), [1.0], ["X", "numeric"]),
        (np.ones((2, 2)), ["a", "b"], ["y", "numeric"]),
        (None, [1.0], ["X", "None"]),
        (np.ones((2, 2)) * 1j, [1.0, 2.0], ["X", "complex"]),
    ],
)
def test_bad_inputs_raise_named_errors(X, y, words):
    with pytest.raises(InvalidInputError) as info:
        validate_xy(X, y)
    assert isinstance(info.value, ValueError)
    for w in words:
        assert w in str(info.value)


def test_bias_and_hash():
    X = np.arange(6.0).reshape(3, 2)
    Xb = add_bias(X)
    assert Xb.shape == (3, 3) and np.all(Xb[:, -1] == 1)
    y = np.array([1.0, 2.0, 3.0])
    assert data_sha256(X, y) == data_sha256(np.asfortranarray(X), y[:, None])
    y2 = y.copy()
    y2[1] += 1e-12
    assert data_sha256(X, y) != data_sha256(X, y2)


def test_planted_relu_is_seeded_and_validated():
    a, b = planted_relu(30, 3, seed=4), planted_relu(30, 3, seed=4)
    assert np.array_equal(a.X, b.X) and np.array_equal(a.y, b.y)
    assert not np.array_equal(a.y, planted_relu(30, 3, seed=5).y)
    assert planted_relu(10, 2, outputs=3).y.shape == (10, 3)
    # noise-free teacher: y is exactly Σ (x^T u)_+ a
    clean = planted_relu(20, 3, noise=0.0, seed=1)
    U, A = clean.meta["teacher_U"], clean.meta["teacher_A"]
    assert np.allclose(clean.y, (np.maximum(clean.X @ U, 0) @ A)[:, 0])
    for kwargs, word in [({"n": 0}, "n"), ({"d": 2.5}, "d"), ({"noise": -1}, "noise"),
                         ({"neurons": 0}, "neurons")]:
        with pytest.raises(InvalidInputError, match=word):
            planted_relu(**{"n": 5, "d": 2, **kwargs})


def test_one_hot():
    Y = one_hot([0, 2, 1, 2])
    assert Y.shape == (4, 3) and np.all(Y.sum(1) == 1)
    assert set(np.unique(one_hot([0, 1], centered=True))) == {-1.0, 1.0}


def test_npz_roundtrip_and_errors(tmp_path):
    X, y = np.random.default_rng(0).standard_normal((5, 2)), np.arange(5.0)
    good = tmp_path / "good.npz"
    np.savez(good, X=X, y=y)
    ds = load_npz(good)
    assert np.array_equal(ds.X, X) and np.array_equal(ds.y, y)

    np.savez(tmp_path / "nokey.npz", X=X)
    with pytest.raises(InvalidInputError, match="missing array"):
        load_npz(tmp_path / "nokey.npz")

    np.savez(tmp_path / "obj.npz", X=np.array([{"a": 1}] * 5, dtype=object), y=y)
    with pytest.raises(InvalidInputError, match="pickle"):
        load_npz(tmp_path / "obj.npz")

    (tmp_path / "corrupt.npz").write_bytes(b"not a zip at all")
    with pytest.raises(InvalidInputError, match="not a readable"):
        load_npz(tmp_path / "corrupt.npz")

    with pytest.raises(InvalidInputError, match="not found"):
        load_npz(tmp_path / "missing.npz")

    np.savez(tmp_path / "nan.npz", X=np.full((2, 2), np.nan), y=np.ones(2))
    with pytest.raises(InvalidInputError, match="NaN"):
        load_npz(tmp_path / "nan.npz")

    # a pickle file renamed .npz is refused, not executed
    (tmp_path / "pickle.npz").write_bytes(pickle.dumps({"X": X}))
    with pytest.raises(InvalidInputError):
        load_npz(tmp_path / "pickle.npz")


def test_csv_target_by_name_and_default(tmp_path):
    frame = pd.DataFrame({"a": [1.0, 2, 3], "label": [0, 1, 0], "b": [4.0, 5, 6]})
    path = tmp_path / "d.csv"
    frame.to_csv(path, index=False)
    last = load_csv(path)
    assert np.array_equal(last.y, [4.0, 5, 6]) and last.X.shape == (3, 2)
    named = load_csv(path, target="label")
    assert np.array_equal(named.y, [0, 1, 0]) and named.meta["features"] == ["a", "b"]
    with pytest.raises(InvalidInputError, match="'nope'"):
        load_csv(path, target="nope")

    pd.DataFrame({"a": ["x", "y"], "t": [1, 2]}).to_csv(tmp_path / "s.csv", index=False)
    with pytest.raises(InvalidInputError, match=r"\['a'\].*not numeric"):
        load_csv(tmp_path / "s.csv")

    pd.DataFrame({"a": [1.0, 2.0, 3.0], "t": ["cat", "dog", "cat"]}).to_csv(
        tmp_path / "c.csv", index=False)
    cls = load_csv(tmp_path / "c.csv")
    assert cls.meta["classes"] == ["cat", "dog"] and np.array_equal(cls.y, [0, 1, 0])

    pd.DataFrame({"a": [1.0, None], "t": [1, 2]}).to_csv(tmp_path / "n.csv", index=False)
    with pytest.raises(InvalidInputError, match="NaN"):
        load_csv(tmp_path / "n.csv")


@pytest.mark.parametrize("name", SKLEARN_DATASETS)
def test_sklearn_datasets(name):
    ds = load_sklearn(name)
    assert ds.n > 100 and ds.d >= 4 and ds.y.shape == (ds.n,)


def test_sklearn_unknown():
    with pytest.raises(InvalidInputError, match="iris"):
        load_sklearn("mnist")


def test_uci_layout(tmp_path, monkeypatch):
    """A UCI-style folder written by the test is read with its splits."""
    folder = tmp_path / "toy"
    folder.mkdir()
    rows = ["\tf1\tf2\tclase"] + [f"{i + 1}\t{i * 0.5}\t{-i}\t{i % 2}" for i in range(8)]
    (folder / "toy_R.dat").write_text("\n".join(rows) + "\n")
    (folder / "conxuntos.dat").write_text("0 1 2 3\n4 5 6 7\n")
    (folder / "conxuntos_kfold.dat").write_text("0 1 2 3 4 5\n6 7\n" * 4)
    ds = load_uci("toy", root=tmp_path)
    assert ds.X.shape == (8, 2) and np.array_equal(ds.y, np.arange(8) % 2)
    assert len(ds.meta["folds"]) == 4 and list(ds.meta["validation"][1]) == [4, 5, 6, 7]
    monkeypatch.setenv("CONVEXNN_UCI", str(tmp_path))
    assert uci_root() == tmp_path.resolve() and list_uci() == ["toy"]
    with pytest.raises(InvalidInputError, match="unknown UCI dataset 'nope'"):
        load_uci("nope")
    (folder / "conxuntos.dat").write_text("0 1 99\n")
    with pytest.raises(InvalidInputError, match="outside"):
        load_uci("toy")
    with pytest.raises(InvalidInputError, match="CONVEXNN_UCI"):
        uci_root(tmp_path / "absent")


def test_shared_uci_collection_when_present():
    try:
        root = uci_root()
    except InvalidInputError:
        pytest.skip("the UCI collection is not available on this machine")
    names = list_uci(root)
    assert len(names) >= 1
    ds = load_uci(names[0], root)
    assert ds.n == len(ds.y) and np.all(np.isfinite(ds.X))
