"""Helpers shared by the benchmark scripts (run them as scripts from a checkout)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

from convexnn.files import write_bytes_atomic  # noqa: E402


def parse_sizes(text: str) -> list[tuple[int, int, int]]:
    """``"500x10x200,2000x20x500"`` → [(500, 10, 200), (2000, 20, 500)]."""
    sizes = []
    for item in text.split(","):
        parts = item.lower().split("x")
        if len(parts) != 3 or not all(p.strip().isdigit() for p in parts):
            raise argparse.ArgumentTypeError(f"size {item!r} is not of the form NxDxP")
        sizes.append(tuple(int(p) for p in parts))
    return sizes


def classes(n: int, d: int, c: int, seed: int = 0):
    """±1 one-hot targets of ``c`` classes: features N(0, 1) and a ones column (``d`` in
    all), labels ``argmax_k Σ_j (xᵀu_j)_+ a_jk + 0.5·noise`` (a planted ReLU rule)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    X = np.hstack([rng.standard_normal((n, d - 1)), np.ones((n, 1))])
    U = rng.standard_normal((d, 2 * c)) / np.sqrt(d - 1)
    scores = np.maximum(X @ U, 0.0) @ rng.standard_normal((2 * c, c))
    labels = (scores + 0.5 * rng.standard_normal((n, c))).argmax(axis=1)
    Y = -np.ones((n, c))
    Y[np.arange(n), labels] = 1.0
    return X, Y


def fmt(x: float | None, spec: str = ".3f") -> str:
    """A number for a Markdown table; ``—`` when missing or not finite."""
    if x is None or (isinstance(x, float) and x != x) or x in (float("inf"), float("-inf")):
        return "—"
    return format(x, spec)


def new_report_path(stem: str) -> Path:
    """Where a report goes unless ``--out`` names a file: a new, time-stamped file under
    ``results/`` (the committed reports are replaced only when asked for by name)."""
    import datetime as _dt

    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return ROOT / "results" / f"{stem}-{stamp}.md"


def write_text(path: Path, text: str) -> None:
    """Write a report atomically (never half a table)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, text.encode())


def machine() -> str:
    """One line describing the machine and the libraries (for a report's header)."""
    import os
    import platform

    import numpy
    import scipy

    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{platform.platform()}, {cpu}, {os.cpu_count()} CPUs; Python "
            f"{platform.python_version()}, numpy {numpy.__version__}, scipy {scipy.__version__}")


def load() -> str:
    """The load averages (1, 5, 15 min) as text."""
    import os

    try:
        return "/".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "?"


def emit(text: str, out: Path | None) -> None:
    """Print a report; write it to ``out`` only when one is named (a committed result is
    never replaced by a run that did not ask for it)."""
    print(text)
    if out is not None:
        write_text(out, text)
        print(f"written to {out}")
