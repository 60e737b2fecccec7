#!/usr/bin/env python
"""Benchmark certified GLOBAL optima beyond d = 2: pattern augmentation from a few sampled
patterns, with the dual check streamed over every cell of the arrangement.

For each problem (a planted-ReLU teacher ``planted_relu(n, d, seed)`` with d = 3 or 4
columns, so that the arrangement of its n hyperplanes through the origin has
``2 Σ_{j<d} C(n−1, j)`` cells: 39 802 at n = 200, d = 3; 323 600 at n = 100, d = 4) and
each program (gated ReLU, ReLU) it runs, in ONE process,

    solve(form, X, y, patterns=sample_patterns(X, --start, seed), lam_ratio=..,
          method="fast", augment=True, candidates="all", max_patterns=10**6)

and reports the median time, the rounds, the patterns the final working set holds, the
cells checked, and the certificate (scope ``"all"``: optimal over every network). The
answer is then checked again, independently, by ``certify_global(sol, X, y,
candidates="all", max_patterns=10**6)``. Peak memory of the Python heap (numpy arrays
included) during one more solve is measured with ``tracemalloc``. For d = 3 the streamed
check is also timed against the check of the cells enumerated at once.

The report is printed; ``--out FILE`` also writes it. ``--quick``: one repeat, no memory
pass.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from _common import emit, fmt, load, machine  # noqa: E402

import convexnn as cn  # noqa: E402
from convexnn.global_check import check_patterns  # noqa: E402
from convexnn.patterns import arrangement_size, enumerate_patterns  # noqa: E402
from convexnn.problem import prepare  # noqa: E402

PROBLEMS = [(200, 3), (100, 4)]
FORMS = ["gated_relu", "relu"]


def global_solve(form: str, X, y, start, args):
    return cn.solve(form, X, y, patterns=start, lam_ratio=args.lam_ratio, method="fast",
                    augment=True, candidates="all", max_patterns=10**6,
                    max_rounds=args.max_rounds, add_per_round=args.add)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--start", type=int, default=50, help="sampled patterns to start from")
    ap.add_argument("--lam-ratio", type=float, default=0.1,
                    help="λ / λ_max of the starting patterns")
    ap.add_argument("--add", type=int, default=20, help="patterns added per round")
    ap.add_argument("--max-rounds", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="one repeat, no memory pass")
    ap.add_argument("--out", type=Path, default=None,
                    help="also write the report here (default: print only)")
    args = ap.parse_args(argv)
    repeats = 1 if args.quick else args.repeats
    started = _dt.datetime.now().isoformat(timespec="seconds")
    warm = cn.planted_relu(30, 3, seed=0)
    for form in FORMS:
        cn.solve(form, warm.X, warm.y, patterns=5, method="fast")
    rows, checks = [], []
    for n, d in PROBLEMS:
        ds = cn.planted_relu(n, d, seed=args.seed)
        start = cn.sample_patterns(ds.X, args.start, seed=args.seed)
        cells = arrangement_size(ds.X)
        for form in FORMS:
            times, sol = [], None
            for _ in range(repeats):
                t = time.perf_counter()
                sol = global_solve(form, ds.X, ds.y, start, args)
                times.append(time.perf_counter() - t)
                print(f"{form} {n}×{d}: {times[-1]:.1f} s, {sol.certificate!r}, load {load()}",
                      flush=True)
            t = time.perf_counter()
            again = cn.certify_global(sol, ds.X, ds.y, candidates="all", max_patterns=10**6)
            check_s = time.perf_counter() - t
            peak = None
            if not args.quick:
                tracemalloc.start()
                global_solve(form, ds.X, ds.y, start, args)
                peak = tracemalloc.get_traced_memory()[1] / 2**20
                tracemalloc.stop()
            aug = sol.info["augment"]
            rows.append((f"{n}×{d}", cells, form, statistics.median(times), min(times),
                         len(times), aug["rounds"], sol.patterns.P,
                         aug["global_check"]["checked"], sol.certificate, again.passed,
                         check_s, peak))
        if d == 3:  # the streamed check against the enumeration at once
            sol = global_solve("relu", ds.X, ds.y, start, args)
            data = prepare(ds.X, ds.y, patterns=sol.patterns)
            t = time.perf_counter()
            every = enumerate_patterns(ds.X, max_patterns=10**6)
            full = check_patterns("relu", data, sol.weights, sol.lam, every)
            at_once = time.perf_counter() - t
            t = time.perf_counter()
            streamed = cn.certify_global(sol, ds.X, ds.y, candidates="all",
                                         max_patterns=10**6)
            stream_s = time.perf_counter() - t
            checks.append((f"{n}×{d}", every.P, at_once, stream_s, full.lower_bound,
                           streamed.lower_bound))
    out = ["# Certified global optima beyond d = 2", "",
           f"Generated by `benchmarks/bench_global.py {' '.join(sys.argv[1:])}` on {started}.",
           f"Machine: {machine()}; convexnn {cn.__version__}. Load average at the start of "
           f"the report {load()}.", "",
           f"Data: `planted_relu(n, d, seed={args.seed})` (no bias: d columns, the "
           f"arrangement of n hyperplanes through the origin of R^d). Start: "
           f"`sample_patterns(X, {args.start}, seed={args.seed})`, λ = {args.lam_ratio}·λ_max "
           f"of those patterns; `method='fast', augment=True, candidates='all'` (the "
           f"arrangement streamed in chunks, {args.add} most violated cells added per "
           f"round). Times: medians of {repeats} run(s) in one process, everything "
           "included (λ_max, every solve, every scan of the arrangement, the final "
           "certificate). `certify_global` re-checks the answer over every cell, streamed.",
           "",
           "| n×d | cells | program | median (s) | min (s) | runs | rounds | patterns at the "
           "end | cells checked | relative gap | scope | certified | certify_global passed "
           "| its time (s) | peak Python heap (MB) |",
           "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---|---|---:|---:|"]
    for (size, cells, form, med, mn, runs, rounds, P, checked, cert, passed, cs,
         peak) in rows:
        out.append(f"| {size} | {cells:,} | {form} | {med:.1f} | {mn:.1f} | {runs} | "
                   f"{rounds} | {P} | {checked:,} | {cert.relative_gap:.1e} | {cert.scope} | "
                   f"{cert.certified} | {passed} | {cs:.1f} | {fmt(peak, '.0f')} |")
    if checks:
        out += ["", "The check of one ReLU solution over every cell: enumerated at once "
                "(`enumerate_patterns` + `check_patterns`: every cell's value exact) against "
                "streamed (`certify_global`: chunks, the norm bound first, NNLS above λ "
                "only).", "",
                "| n×d | cells | at once (s) | streamed (s) | ratio | lower bound at once | "
                "lower bound streamed |", "|---|---:|---:|---:|---:|---:|---:|"]
        for size, cells, a, b, lb1, lb2 in checks:
            out.append(f"| {size} | {cells:,} | {a:.2f} | {b:.2f} | {a / b:.1f}× | "
                       f"{lb1:.10g} | {lb2:.10g} |")
    out += ["", f"Load average at the end {load()}."]
    emit("\n".join(out), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
