#!/usr/bin/env python
"""Benchmark the kernel programs along a μ path at n = 5000: one factorisation shared by
every μ against one solve per μ.

* NTK (``method="cholesky"``): ``solve_path`` factors ``K_p`` once — the Gram of its
  features when ``d·P < n`` (here d = 10, P = 100: m = 1000 < 5000), its
  eigendecomposition otherwise (``--spectral``: P = 600, d·P ≥ n) — and gives every μ in
  O(n·rank); a single solve forms the n×n kernel and factors it (Cholesky) every time.
* MKL (``method="reweight"``): every reweighting step solves ``(K_η + μI)α = y``; in
  feature form it is an m×m system built from the design Gram ``DᵀD`` formed ONCE for the
  whole path (``PatternKernels.ridge``); the n×n form (``--dense``) factors an n×n kernel
  at every step of every μ.

Data: ``planted_relu(5000, 10, seed)``, ``sample_patterns(X, P, seed)``, 20 values of
``μ/||X||₂²`` geometric from 1e-1 to 1e-4 (``--values``). Everything in ONE process; every
answer certified by the numpy certificate. One solve per μ is timed on ``--singles``
values (spread over the path) and the report gives the median and the projection to all
values. The report is printed; ``--out FILE`` also writes it. ``--quick``: 5 values, 2
singles, no spectral and no dense runs.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from _common import emit, load, machine  # noqa: E402

import convexnn as cn  # noqa: E402
from convexnn.kernels import PatternKernels  # noqa: E402


def singles(form: str, method: str, X, y, pats, ratios, count: int):
    idx = np.unique(np.linspace(0, len(ratios) - 1, count).round().astype(int))
    times, sols = [], []
    for i in idx:
        t = time.perf_counter()
        sols.append(cn.solve(form, X, y, patterns=pats, mu_ratio=float(ratios[i]),
                             method=method))
        times.append(time.perf_counter() - t)
        print(f"  single {form} μ/‖X‖² = {ratios[i]:.1e}: {times[-1]:.1f} s, load {load()}",
              flush=True)
    return times, sols, idx


def path(form: str, method: str, X, y, pats, ratios):
    t = time.perf_counter()
    p = cn.solve_path(form, X, y, patterns=pats, lam_ratios=ratios, method=method)
    seconds = time.perf_counter() - t
    print(f"  path {form}: {seconds:.1f} s, certified {p.certified}, load {load()}", flush=True)
    return seconds, p


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--d", type=int, default=10)
    ap.add_argument("--patterns", type=int, default=100)
    ap.add_argument("--values", type=int, default=20)
    ap.add_argument("--singles", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--spectral", type=int, default=600,
                    help="patterns of the NTK run with d·P ≥ n (0: skip)")
    ap.add_argument("--dense", action="store_true",
                    help="also time one MKL solve with n×n kernels (minutes)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=None,
                    help="also write the report here (default: print only)")
    args = ap.parse_args(argv)
    if args.quick:
        args.values, args.singles, args.spectral, args.dense = 5, 2, 0, False
    started = _dt.datetime.now().isoformat(timespec="seconds")
    ratios = np.geomspace(1e-1, 1e-4, args.values)
    ds = cn.planted_relu(args.n, args.d, seed=args.seed)
    pats = cn.sample_patterns(ds.X, args.patterns, seed=args.seed)
    w = cn.planted_relu(60, 3, seed=0)
    cn.solve_path("ntk", w.X, w.y, patterns=10, lam_ratios=[0.1, 0.01], method="cholesky")
    cn.solve_path("mkl", w.X, w.y, patterns=10, lam_ratios=[0.1, 0.01], method="reweight")
    rows = []
    runs = [("ntk", "cholesky", pats, f"d·P = {args.d * pats.P} < n: feature form")]
    if args.spectral:
        big = cn.sample_patterns(ds.X, args.spectral, seed=args.seed)
        runs.append(("ntk", "cholesky", big, f"d·P = {args.d * big.P} ≥ n: eigendecomposition"))
    runs.append(("mkl", "reweight", pats, f"d·P = {args.d * pats.P} < n: feature form, "
                                          "design Gram shared"))
    for form, method, pp, label in runs:
        print(f"{form} ({label})", flush=True)
        seconds, p = path(form, method, ds.X, ds.y, pp, ratios)
        times, sols, idx = singles(form, method, ds.X, ds.y, pp, ratios, args.singles)
        agree = max(abs(p[int(i)].objective - s.objective) / abs(s.objective)
                    for i, s in zip(idx, sols, strict=True))
        rows.append((form, pp.P, label, args.values, seconds, statistics.median(times),
                     len(times), p.certified and all(s.certified for s in sols),
                     float(p.relative_gaps.max()), agree, p.info))
    dense = None
    if args.dense:
        print("mkl, n×n kernels", flush=True)
        saved = PatternKernels.FEATURE_GRAM_MAX
        PatternKernels.FEATURE_GRAM_MAX = 0
        try:
            t = time.perf_counter()
            sol = cn.solve("mkl", ds.X, ds.y, patterns=pats, mu_ratio=float(ratios[0]),
                           method="reweight")
            dense = (time.perf_counter() - t, sol.certified, sol.info.get("iterations"))
        finally:
            PatternKernels.FEATURE_GRAM_MAX = saved
    out = ["# Kernel programs along a μ path", "",
           f"Generated by `benchmarks/bench_kernels.py {' '.join(sys.argv[1:])}` on {started}.",
           f"Machine: {machine()}; convexnn {cn.__version__}. Load average at the end {load()}.",
           "", f"Data: `planted_relu({args.n}, {args.d}, seed={args.seed})`, sampled patterns "
           f"(seed {args.seed}), {args.values} values of μ/‖X‖₂² geometric from 1e-1 to 1e-4; "
           "every answer certified by the numpy certificate (relative gap ≤ 1e-6). "
           "'one solve per μ' is the median over the values timed, projected to all of them.",
           "",
           "| program | P | kernel | values | path (s) | per value on the path (s) | one solve "
           "per μ (s, median) | singles timed | projected per-μ total (s) | speed-up | all "
           "certified | worst relative gap | rel. Δ objective path vs single |",
           "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
    for form, P, label, k, seconds, single, m, ok, gap, agree, _ in rows:
        out.append(f"| {form} | {P} | {label} | {k} | {seconds:.1f} | {seconds / k:.2f} | "
                   f"{single:.1f} | {m} | {single * k:.0f} | {single * k / seconds:.1f}× | "
                   f"{ok} | {gap:.1e} | {agree:.1e} |")
    if dense is not None:
        out += ["", f"MKL with n×n kernels (every reweighting step factors K_η + μI, "
                f"{args.n}×{args.n}), one μ: {dense[0]:.1f} s, {dense[2]} reweighting "
                f"iterations, certified {dense[1]}."]
    out += ["", "NTK path setup (the factorisation) and form: "
            + "; ".join(f"{r[0]} P={r[1]}: {r[10]}" for r in rows)]
    emit("\n".join(out), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
