"""Helpers shared by the command-line, spec and export tests."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest

from convexnn import cli
from convexnn.data import uci_root
from convexnn.errors import InvalidInputError
from convexnn.formulations import REGISTRY

REPO = Path(__file__).resolve().parent.parent
PROBLEMS = REPO / "problems"

#: certificate.json keys required by DESIGN.md (written out here, not imported).
CONTRACT_KEYS = [
    "formulation", "solver", "status", "objective", "dual_objective", "gap", "relative_gap",
    "tolerance", "certified", "n", "d", "outputs", "patterns", "network", "timings",
    "data_sha256", "version",
]
CONTRACT_NESTED = {
    "patterns": ["count", "method", "scope"],
    "network": ["neurons", "objective"],
    "timings": ["build_s", "solve_s", "certify_s"],
}


def run(argv, capsys):
    """Run the CLI in-process: (exit code, stdout, stderr)."""
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def uci_available() -> bool:
    try:
        uci_root()
    except InvalidInputError:
        return False
    return True


def bundled_params():
    """One pytest param per bundled spec; skipped when its formulation is not registered
    or its data are not on this machine."""
    params = []
    for path in sorted(PROBLEMS.glob("*.toml")):
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
        form = doc.get("model", {}).get("formulation")
        marks = []
        if form not in REGISTRY:
            marks.append(pytest.mark.skip(reason=f"formulation {form!r} is not registered"))
        if str(doc.get("data", {}).get("source", "")).startswith("uci:") and not uci_available():
            marks.append(pytest.mark.skip(reason="the UCI collection is not on this machine"))
        params.append(pytest.param(path, id=path.stem, marks=marks))
    return params


def write_spec(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


SMALL_SPEC = """\
[data]
source = "synthetic:planted_relu"
n = 60
d = 3
seed = 4

[patterns]
count = 30

[model]
formulation = "gated_relu"
lam_ratio = 0.1
"""


def npz_problem(tmp_path: Path, seed: int = 0) -> tuple[Path, np.ndarray, np.ndarray]:
    """A spec reading data/train.npz (relative path) and the arrays in it."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((50, 3))
    y = np.maximum(X @ np.array([1.0, -0.5, 0.3]), 0) + 0.05 * rng.standard_normal(50)
    (tmp_path / "data").mkdir(exist_ok=True)
    np.savez(tmp_path / "data" / "train.npz", X=X, y=y)
    spec = write_spec(tmp_path / "npz.toml", """\
[data]
source = "npz:data/train.npz"
bias = true

[patterns]
count = 25
seed = 2

[model]
formulation = "gated_relu"
lam_ratio = 0.05
""")
    return spec, X, y
