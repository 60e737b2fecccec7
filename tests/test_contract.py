"""The formulation contract, checked for every entry of the registry.

A new formulation gets this test for free: solve a small problem with its default
method → the certificate re-derives from the weights alone → save → ``verify`` passes →
one tampered weight makes ``verify`` fail → the recovered network reproduces the
program's predictions (and, for the λ-regularised programs with one output, its training
objective equals the convex objective). Also: the package imports only downward.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import convexnn as cn
from convexnn.formulations import REGISTRY
from convexnn.problem import prepare

PACKAGE = Path(cn.__file__).resolve().parent


@pytest.fixture(scope="module")
def data():
    ds = cn.planted_relu(40, 3, seed=3)
    return ds, prepare(ds.X, ds.y, patterns=12, seed=1)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_formulation_keeps_the_contract(name, data, tmp_path):
    ds, prepared = data
    form = REGISTRY[name]
    sol = cn.solve(name, ds.X, ds.y, patterns=prepared.patterns, lam_ratio=0.2)
    assert sol.formulation == name and sol.certified, sol
    assert sol.method in form.methods and sol.reg_name == form.reg_name

    # the certificate re-derives from the weights and dual point alone
    again, _ = form.certify(prepared, sol.reg, sol.weights, sol.dual, tol=1e-6)
    assert again.objective == pytest.approx(sol.objective, rel=1e-12)
    assert again.dual_objective == pytest.approx(sol.certificate.dual_objective, rel=1e-9)
    assert again.certified

    # the primal objective and residual from the contract agree with the certificate
    primal = form.primal(prepared, sol.reg, sol.weights)
    assert primal.objective == pytest.approx(sol.objective, rel=1e-12)

    # save → verify passes → one tampered weight fails
    out = tmp_path / name
    cn.save(sol, out, ds)
    assert cn.verify(out, ds).valid
    arrays = dict(np.load(out / "solution.npz", allow_pickle=False))
    key = next(k for k in sorted(arrays) if k.startswith("weights."))
    flat = arrays[key].reshape(-1).copy()
    flat[np.argmax(np.abs(flat))] *= 1.5
    arrays[key] = flat.reshape(arrays[key].shape)
    np.savez(out / "solution.npz", **arrays)
    assert not cn.verify(out, ds).valid

    # the network reproduces the program's predictions (up to the pruning of blocks below
    # 1e-6 of the largest, interior-point noise) ...
    net = sol.network
    assert net is not None
    convex_prediction = prepared.Y - primal.residual
    assert np.allclose(net.predict(ds.X).reshape(convex_prediction.shape), convex_prediction,
                       rtol=0, atol=1e-5 * np.abs(convex_prediction).max())
    # ... and, regularised by λ with one output, its training objective is the optimum
    if form.reg_name == "lam":
        assert net.objective(ds.X, ds.y, sol.reg) == pytest.approx(sol.objective, rel=1e-7)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_formulation_documents_itself(name):
    form = REGISTRY[name]
    assert form.title and form.math.strip() and form.docs
    assert (PACKAGE.parent / form.docs).is_file(), form.docs
    assert "\\" not in form.math and ":func:" not in form.math  # plain text, not reST
    assert set(form.methods) and form.reg_name in ("lam", "mu")


def _import_graph(package: Path) -> dict[str, set[str]]:
    """Module → modules of the package it imports (inside functions too; a package's
    ``__init__`` importing its own children is a re-export and does not count)."""
    mods = {}
    for f in package.rglob("*.py"):
        name = ".".join(f.relative_to(package.parent).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = f
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for m, f in mods.items():
        base = m.split(".") if f.name == "__init__.py" else m.split(".")[:-1]
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.ImportFrom):
                mod = (".".join(base[:len(base) - node.level + 1]
                                + ([node.module] if node.module else []))
                       if node.level else (node.module or ""))
                names = [mod] + [f"{mod}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            edges[m] |= {t for t in names if t in mods and t != m and not t.startswith(m + ".")}
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the import graph as a list of modules, or None (depth-first search)."""
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                return path + [node, nxt]
            if nxt not in state:
                found = visit(nxt, path + [node])
                if found:
                    return found
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state:
            cycle = visit(start, [])
            if cycle:
                return cycle
    return None


def test_the_package_imports_only_downward():
    edges = _import_graph(PACKAGE)
    assert len(edges) > 20
    cycle = find_cycle(edges)
    assert cycle is None, " → ".join(cycle)


def test_the_cycle_check_sees_a_cycle_through_a_function_import(tmp_path):
    """The check above is not vacuous: an import inside a function closes a cycle too."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from . import a\n")  # a re-export: not an edge
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("def f():\n    from .a import x\n")
    assert find_cycle(_import_graph(pkg)) == ["pkg.a", "pkg.b", "pkg.a"]
    (pkg / "b.py").write_text("def f():\n    return 1\n")
    assert find_cycle(_import_graph(pkg)) is None


def test_formulations_do_not_import_pandas_or_tqdm():
    code = ("import sys, convexnn.formulations, convexnn.methods, convexnn\n"
            "print(sorted(m for m in ('pandas', 'tqdm') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_import_convexnn_loads_no_solver():
    code = ("import sys, convexnn\n"
            "print(sorted(m for m in ('cvxpy', 'clarabel', 'scipy', 'pandas') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
    assert callable(cn.solve) and callable(cn.verify)  # the public functions, not modules
    assert set(cn.__all__) >= {"solve", "verify", "save", "load", "reweight", "REGISTRY"}
