"""How long the command line takes to answer ``--help`` and ``--version``.

Each command runs in a fresh process (``python -m convexnn …``, the same program as the
``convexnn`` script) ``--repeats`` times; the table gives the medians, next to the bare
interpreter's start (``python -c pass``) measured the same way in the same run, so the
difference is what convexnn adds. The goal is ≤ 0.3 s: the command line imports no solver
and no numerical library before a command needs one.

    python benchmarks/bench_cli_startup.py [--repeats 15] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fmt, new_report_path, write_text  # noqa: E402

COMMANDS = {
    "python -c pass (the interpreter alone)": [sys.executable, "-c", "pass"],
    "convexnn --version": [sys.executable, "-m", "convexnn", "--version"],
    "convexnn --help": [sys.executable, "-m", "convexnn", "--help"],
    "convexnn solve --help": [sys.executable, "-m", "convexnn", "solve", "--help"],
}
GOAL_S = 0.3


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--out", type=Path, default=None,
                    help="report file (default: a new results/benchmarks_cli-DATE.md)")
    args = ap.parse_args(argv)
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.repeats):  # interleaved: the same load for every command
        for name, cmd in COMMANDS.items():
            start = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times[next(iter(COMMANDS))])
    rows = ["| command | median (s) | min (s) | added to the interpreter (s) | ≤ 0.3 s |",
            "|---|---:|---:|---:|---|"]
    for name, ts in times.items():
        med = statistics.median(ts)
        rows.append(f"| `{name}` | {fmt(med)} | {fmt(min(ts))} | {fmt(med - base)} | "
                    f"{'yes' if med <= GOAL_S else 'NO'} |")
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    text = "\n".join([
        "# Command-line start-up", "",
        f"`python benchmarks/bench_cli_startup.py --repeats {args.repeats}` on "
        f"{platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"load average {load}. Fresh process per run, commands interleaved, medians.", "",
        *rows, ""])
    print(text)
    out = args.out or new_report_path("benchmarks_cli")
    write_text(out, text)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
