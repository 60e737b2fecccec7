"""What every result set shares: its context, figures, tables, bundled specs."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError
from ..report import write_table
from ..spec import find_problem, load_spec

__all__ = ["Context", "Reproduction", "pyplot", "bundled_spec", "write_table", "stderr",
           "save_figure"]

Log = Callable[[str], None]


def stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Context:
    """Where and how a result set runs.

    ``out`` is the folder being written (it becomes ``target``); ``quick`` asks for the
    small version that fits in a test or CI (minutes, not hours); ``datasets`` selects UCI
    data sets by name; ``scheduler``/``workers`` are passed to the sweep engine.
    """

    out: Path
    target: Path
    uci_root: Any = None
    log: Log = stderr
    quick: bool = False
    datasets: Sequence[str] | None = None
    scheduler: str | None = None
    workers: int | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Reproduction:
    """A named result set: ``run(context)`` writes it into ``context.out`` and returns notes
    (``files`` lists what it wrote; they are the files a later run replaces)."""

    name: str
    description: str
    run: Callable[[Context], dict[str, Any]]


def pyplot():
    """matplotlib.pyplot with a file-only backend, or None when matplotlib is absent."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path) -> str:
    """Save and close a figure; returns its file name."""
    fig.savefig(path, dpi=130)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path.name


NO_FIGURES = "skipped: matplotlib is not installed (pip install 'convexnn[plot]')"


def bundled_spec(name: str):
    path = find_problem(name)
    if path is None:
        raise InvalidInputError(
            f"bundled problem {name!r} not found; the problems/ folder ships with the source "
            "checkout (git clone, then pip install -e .)."
        )
    return load_spec(path)
