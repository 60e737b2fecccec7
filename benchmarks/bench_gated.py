#!/usr/bin/env python
"""Benchmark the gated-ReLU program: declarative IPM vs the structured fast path.

In ONE process, on the same data (a planted-ReLU teacher, ``convexnn.planted_relu``),
for each size (n, d, P) it solves with ``method="ipm"`` (cvxpy + Clarabel) and
``method="fast"`` ``--repeats`` times, and prints medians, speed-up ratios, relative
duality gaps (computed by convexnn's numpy certificate) and the agreement of the two
objectives. It also times a warm-started λ path of ``--path-values`` values (from
``λ_max`` down to the single solve's λ) against one solve at the first size.

Peak memory: a process-wide high-water mark cannot separate two methods run in one
process, so each (size, method) is also solved once in a fresh subprocess, which resets
its peak-RSS mark (``/proc/self/clear_refs``) just before the solve and reports
``VmHWM`` minus the resident set size at that moment (data, imports and a tiny warm-up
solve excluded; ``ru_maxrss`` where ``/proc`` is missing). This is the solve's peak
resident memory, including BLAS/solver allocations that ``tracemalloc`` would not see.

Writes a Markdown report to ``--out`` (default: a new ``results/benchmarks-DATE.md``).

Examples::

    python benchmarks/bench_gated.py          # full run (IPM at 2000×20×500: minutes)
    python benchmarks/bench_gated.py --quick --repeats 1
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

from _common import fmt, new_report_path, parse_sizes, write_text  # noqa: E402

import convexnn as cn  # noqa: E402

DEFAULT_SIZES = "500x10x200,2000x20x500"


def make_problem(n: int, d: int, P: int, seed: int):
    ds = cn.planted_relu(n, d, seed=seed)
    pats = cn.sample_patterns(ds.X, P, seed=seed)
    return ds.X, ds.y, pats


def rss_bytes() -> int:
    """Current resident set size (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def reset_peak() -> bool:
    """Reset this process's peak-RSS mark (Linux ≥ 4.0: ``/proc/self/clear_refs``)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_bytes() -> int:
    """Peak RSS of this process: ``VmHWM`` (per address space), else ``ru_maxrss``.

    ``ru_maxrss`` alone is not enough for a subprocess: Linux carries the parent's
    high-water mark across fork + exec.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r if sys.platform == "darwin" else r * 1024


def child_main(args: argparse.Namespace) -> None:
    """Run one solve and print its peak-memory delta as JSON (subprocess mode)."""
    n, d, P = args.child_size
    # a tiny warm-up solve loads what the method imports lazily (solver, BLAS control)
    Xw, yw, pw = make_problem(40, 3, 20, args.seed)
    cn.solve("gated_relu", Xw, yw, patterns=pw, method=args.child_method)
    X, y, pats = make_problem(n, d, P, args.seed)
    reset_peak()
    before = rss_bytes()
    sol = cn.solve("gated_relu", X, y, patterns=pats, lam_ratio=args.lam_ratio,
                   tol=args.tol, method=args.child_method)
    peak = peak_bytes() - before
    print(json.dumps({"peak_bytes": max(peak, 0), "certified": sol.certified}))


def measure_peak(method: str, size: tuple[int, int, int], args: argparse.Namespace
                 ) -> float | None:
    """Peak RSS (MB) of one solve in a fresh subprocess, or None when it failed."""
    cmd = [sys.executable, __file__, "--child-method", method,
           "--child-size", "x".join(map(str, size)), "--seed", str(args.seed),
           "--lam-ratio", str(args.lam_ratio), "--tol", str(args.tol)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=True,
                             timeout=args.timeout)
        return json.loads(out.stdout.strip().splitlines()[-1])["peak_bytes"] / 2**20
    except (subprocess.SubprocessError, ValueError, KeyError, IndexError) as exc:
        print(f"  (peak-memory subprocess for {method} {size} failed: {exc})", file=sys.stderr)
        return None


def time_solves(X, y, pats, method: str, args: argparse.Namespace):
    times, sols = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        sol = cn.solve("gated_relu", X, y, patterns=pats, lam_ratio=args.lam_ratio,
                       tol=args.tol, method=method)
        times.append(time.perf_counter() - start)
        sols.append(sol)
    return times, sols[-1]


def time_path(X, y, pats, method: str, args: argparse.Namespace):
    ratios = np.geomspace(1.0, args.lam_ratio, args.path_values)
    times, path = [], None
    for _ in range(args.repeats):
        start = time.perf_counter()
        path = cn.solve_path("gated_relu", X, y, patterns=pats, lam_ratios=ratios,
                             tol=args.tol, method=method)
        times.append(time.perf_counter() - start)
    return times, path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=parse_sizes, default=parse_sizes(DEFAULT_SIZES),
                    help=f"comma-separated NxDxP (default {DEFAULT_SIZES})")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats (default 3)")
    ap.add_argument("--quick", action="store_true",
                    help="skip the IPM at every size but the first, and the IPM path")
    ap.add_argument("--lam-ratio", type=float, default=0.1, help="λ/λ_max (default 0.1)")
    ap.add_argument("--tol", type=float, default=1e-6, help="relative gap (default 1e-6)")
    ap.add_argument("--path-values", type=int, default=20,
                    help="λ values on the path (default 20; 0 skips the path)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-memory", action="store_true",
                    help="skip the peak-memory subprocesses")
    ap.add_argument("--timeout", type=float, default=1800, help="per subprocess (s)")
    ap.add_argument("--out", type=Path, default=None,
                    help="report file (default: a new results/benchmarks-DATE.md; the committed "
                         "results/benchmarks.md is replaced only when named here)")
    ap.add_argument("--child-method", help=argparse.SUPPRESS)
    ap.add_argument("--child-size", type=lambda s: parse_sizes(s)[0], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child_method:
        child_main(args)
        return 0
    if args.repeats < 1:
        ap.error("--repeats must be ≥ 1")

    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    started = _dt.datetime.now().isoformat(timespec="seconds")
    rows, path_rows = [], []
    for k, (n, d, P) in enumerate(args.sizes):
        X, y, pats = make_problem(n, d, P, args.seed)
        methods = ["fast"] if args.quick and k > 0 else ["fast", "ipm"]
        result = {}
        for method in methods:
            print(f"[{n}x{d}x{P}] {method}: {args.repeats} solve(s)…", flush=True)
            times, sol = time_solves(X, y, pats, method, args)
            peak = None if args.no_memory else measure_peak(method, (n, d, P), args)
            result[method] = (times, sol, peak)
            print(f"  median {statistics.median(times):.3f}s, relative gap "
                  f"{sol.certificate.relative_gap:.2e}, certified {sol.certified}, "
                  f"peak {fmt(peak, '.0f')} MB", flush=True)
        ipm_med = (statistics.median(result["ipm"][0]) if "ipm" in result else None)
        for method, (times, sol, peak) in result.items():
            med = statistics.median(times)
            agree = None
            if "ipm" in result and method != "ipm":
                ref = result["ipm"][1].objective
                agree = abs(sol.objective - ref) / abs(ref)
            rows.append({
                "size": f"{n}×{d}×{P}", "method": method, "median": med, "min": min(times),
                "speedup": None if ipm_med is None else ipm_med / med,
                "gap": sol.certificate.relative_gap, "certified": sol.certified,
                "objective": sol.objective, "agree": agree, "peak": peak,
                "info": {key: sol.info.get(key) for key in
                         ("iterations", "newton_steps", "polish_rounds", "working_set")
                         if key in sol.info},
            })
        if k == 0 and args.path_values > 0:
            for method in (["fast"] if args.quick else ["fast", "ipm"]):
                one = statistics.median(result[method][0])
                print(f"[{n}x{d}x{P}] {method} path of {args.path_values}…", flush=True)
                times, path = time_path(X, y, pats, method, args)
                med = statistics.median(times)
                path_rows.append({"size": f"{n}×{d}×{P}", "method": method, "one": one,
                                  "path": med, "ratio": med / one,
                                  "certified": path.certified,
                                  "worst_gap": float(path.relative_gaps.max())})
                print(f"  median {med:.3f}s = {med / one:.2f}× one solve, all certified "
                      f"{path.certified}", flush=True)

    lines = [
        "# Gated-ReLU benchmark: declarative IPM vs fast path",
        "",
        f"Generated by `benchmarks/bench_gated.py {' '.join(sys.argv[1:])}` on {started}.",
        f"Machine: {platform.platform()}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, load average at start {load[0]:.2f}/{load[1]:.2f}/"
        f"{load[2]:.2f}; numpy {np.__version__}, convexnn {cn.__version__}.",
        f"Data: `planted_relu(n, d, seed={args.seed})`, `sample_patterns(X, P, "
        f"seed={args.seed})`, λ = {args.lam_ratio}·λ_max, tolerance {args.tol:g} "
        "(relative duality gap of the numpy certificate). "
        f"Times are wall-clock medians of {args.repeats} solve(s) in one process "
        "(data preparation excluded; build, solve and certificate included).",
        "Peak memory: each (size, method) solved once more in a fresh subprocess "
        "(after a tiny warm-up solve that loads lazy imports); peak RSS (`VmHWM`, reset "
        "just before the solve) minus the resident set size just before the solve.",
        "",
        "| size n×d×P | method | median (s) | min (s) | speed-up vs ipm | relative gap | "
        "certified | objective | rel. Δ objective vs ipm | peak RSS (MB) | details |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['size']} | {r['method']} | {r['median']:.3f} | {r['min']:.3f} | "
            f"{fmt(r['speedup'], '.1f')} | {r['gap']:.2e} | {r['certified']} | "
            f"{r['objective']:.8g} | {fmt(r['agree'], '.1e')} | {fmt(r['peak'], '.0f')} | "
            f"{', '.join(f'{k}={v}' for k, v in r['info'].items())} |")
    if path_rows:
        lines += [
            "",
            f"λ path: {args.path_values} values of λ/λ_max geometric from 1 to "
            f"{args.lam_ratio} (ending at the single solve's λ), warm-started, every value "
            "certified independently.",
            "",
            "| size n×d×P | method | one solve (s) | path (s) | path / one | all certified | "
            "worst relative gap |",
            "|---|---|---:|---:|---:|---|---:|",
        ]
        for r in path_rows:
            lines.append(f"| {r['size']} | {r['method']} | {r['one']:.3f} | {r['path']:.3f} | "
                         f"{r['ratio']:.2f} | {r['certified']} | {r['worst_gap']:.2e} |")
    text = "\n".join(lines) + "\n"
    write_text(args.out or new_report_path("benchmarks"), text)
    print()
    print(text)
    print(f"written to {args.out or 'results/'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
