#!/usr/bin/env python
"""Benchmark the ReLU program: the working set with Newton on the faces of the cones
(``method="fast"``), the same working set with an interior point per round
(``inner="ipm"``, the method before) and the declarative program (``method="ipm"``).

Everything runs in ONE process on the same data, the methods interleaved repeat by repeat
so that the load of a shared machine falls on all of them alike; the report gives
medians, their ratios, the relative duality gaps computed by convexnn's numpy
certificate over every pattern, and the agreement of the objectives. Sections:

* ``sizes`` — planted-ReLU teachers ``planted_relu(n, d, seed)``, patterns
  ``sample_patterns(X, P, seed)``, λ = ``--lam-ratio``·λ_max (default 0.01);
* ``wine`` — scikit-learn's wine data, standardised, a bias column, ±1 one-hot targets
  (three outputs: one cone per output column), 100 sampled patterns, λ = 0.1 λ_max; and
  its first output alone;
* ``uci`` (``--uci``) — UCI classification sets with several classes (``$CONVEXNN_UCI``;
  default heart-cleveland, c = 5, at λ = 0.03 and 0.01·λ_max and led-display, c = 10, at
  0.03): the first half of the rows, a bias column, ±1 one-hot targets, 100 sampled
  patterns, ``fast`` against ``ipm``, one run each (``--uci-methods`` to choose), and
  ``fast`` on each output column alone (at the same λ/λ_max of that column): the cost
  of c outputs together against c single-output programs;
* ``cost model`` (``--cost-model``) — both methods on a grid of small problems and the
  log-linear fit that ``method="auto"`` uses (``ReLU.choose_method``).

The report is printed; ``--out FILE`` also writes it (atomically). ``--quick``: one
repeat, and the slow references (the interior point per round at 2000×20×500, the
declarative program beyond n = 500) are left out.

Examples::

    python benchmarks/bench_relu.py --quick
    python benchmarks/bench_relu.py --repeats 3 --out results/benchmarks_relu.md
    python benchmarks/bench_relu.py --cost-model
    python benchmarks/bench_relu.py --no-sizes --no-wine --uci
    python benchmarks/bench_relu.py --no-sizes --no-wine --uci --uci-methods fast
"""

from __future__ import annotations

import argparse
import datetime as _dt
import itertools
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

from _common import emit, fmt, load, machine, parse_sizes  # noqa: E402

import convexnn as cn  # noqa: E402

DEFAULT_SIZES = "500x10x200,2000x20x500"
#: (label, solve keywords) of the methods compared.
METHODS = {
    "fast": {"method": "fast"},
    "fast, inner=ipm": {"method": "fast", "inner": "ipm"},
    "ipm": {"method": "ipm"},
}


def wine(outputs: int):
    from sklearn.datasets import load_wine
    from sklearn.preprocessing import StandardScaler

    X, y = load_wine(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    Y = -np.ones((len(y), 3))
    Y[np.arange(len(y)), y] = 1.0
    return X, (Y if outputs == 3 else Y[:, 0])


DEFAULT_UCI = "heart-cleveland:0.03,heart-cleveland:0.01,led-display:0.03"


def uci_half(name: str):
    """The first half of the rows of a UCI set, ±1 one-hot targets (one column for two
    classes)."""
    from convexnn.data import load_uci, one_hot

    ds = load_uci(name)
    half = np.arange(ds.X.shape[0] // 2)
    Y = one_hot(ds.y[half], centered=True)
    return ds.X[half], (Y[:, 0] if Y.shape[1] == 2 else Y)


def run(X, y, pats, methods: list[str], repeats: int, once: tuple[str, ...] = (),
        **kw) -> dict[str, dict]:
    """Interleaved repeats of every method (those in ``once`` only in the first repeat);
    medians and the last solution of each."""
    times: dict[str, list[float]] = {m: [] for m in methods}
    last: dict[str, cn.Solution] = {}
    for rep in range(repeats):
        for m in methods:
            if rep and m in once:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the certificate below is the judge
                start = time.perf_counter()
                sol = cn.solve("relu", X, y, patterns=pats, **METHODS[m], **kw)
                times[m].append(time.perf_counter() - start)
            last[m] = sol
            print(f"  {m:16s} {times[m][-1]:8.2f} s  gap {sol.certificate.relative_gap:.1e}"
                  f"  load {load()}", flush=True)
    return {m: {"median": statistics.median(times[m]), "min": min(times[m]),
                "runs": len(times[m]), "sol": last[m]} for m in methods}


def table(rows: list[tuple[str, dict]], base: str) -> list[str]:
    out = ["| problem | method | runs | median (s) | min (s) | speed-up vs "
           f"`{base}` | relative gap | certified | objective | rel. Δ objective | details |",
           "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---|"]
    for label, res in rows:
        ref = res.get(base)
        for m, r in res.items():
            sol = r["sol"]
            cert = sol.certificate
            ws = sol.info.get("working_set", {})
            details = (f"rounds {ws.get('rounds')}, blocks {ws.get('blocks')}"
                       + (f", FISTA {ws['fista_steps']}, Newton {ws['newton_steps']}"
                          if "fista_steps" in ws else "")) if ws else "declarative"
            speed = ref["median"] / r["median"] if ref else None
            delta = (abs(sol.objective - ref["sol"].objective) / abs(ref["sol"].objective)
                     if ref and m != base else None)
            out.append(f"| {label} | {m} | {r['runs']} | {fmt(r['median'], '.2f')} | "
                       f"{fmt(r['min'], '.2f')} | {fmt(speed, '.1f')}× | "
                       f"{cert.relative_gap:.1e} | {cert.certified} | {sol.objective:.10g} | "
                       f"{fmt(delta, '.1e')} | {details} |")
    return out


def cost_model(repeats: int) -> list[str]:
    """Both methods on a grid; the least-squares fit of log t on log n, P, d, c."""
    rows = []
    for n, d, P, c in itertools.product([40, 100, 250], [3, 8], [20, 60], [1, 3]):
        ds = cn.planted_relu(n, d, outputs=c, seed=1)
        pats = cn.sample_patterns(ds.X, P, seed=1)
        res = run(ds.X, ds.y, pats, ["fast", "ipm"], repeats, lam_ratio=0.1)
        rows.append((n, d, pats.P, c, res["fast"]["min"], res["ipm"]["min"],
                     res["fast"]["sol"].certified and res["ipm"]["sol"].certified))
    A = np.array([[1.0, np.log(n), np.log(P), np.log(d), np.log(c)] for n, d, P, c, *_ in rows])
    out = ["| n | d | P | c | fast (s) | ipm (s) | ipm / fast | both certified |",
           "|---:|---:|---:|---:|---:|---:|---:|---|"]
    out += [f"| {n} | {d} | {P} | {c} | {tf:.3f} | {ti:.3f} | {ti / tf:.2f} | {ok} |"
            for n, d, P, c, tf, ti, ok in rows]
    out += ["", "Fit of log t = β₀ + β_n log n + β_P log P + β_d log d + β_c log c "
            "(best of the repeats):", "",
            "| method | β₀ | β_n | β_P | β_d | β_c | rms error of log t |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for k, m in ((4, "fast"), (5, "ipm")):
        t = np.log([r[k] for r in rows])
        beta = np.linalg.lstsq(A, t, rcond=None)[0]
        rms = float(np.sqrt(np.mean((A @ beta - t) ** 2)))
        out.append(f"| {m} | " + " | ".join(f"{b:.3f}" for b in beta) + f" | {rms:.2f} |")
    out += ["", "`ReLU.COST_MODEL` holds these coefficients (as fitted when it was written; "
            "see the docstring of `ReLU.choose_method`)."]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=parse_sizes, default=parse_sizes(DEFAULT_SIZES))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--lam-ratio", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true",
                    help="one repeat; no slow references (see the module docstring)")
    ap.add_argument("--no-wine", action="store_true", help="skip the wine section")
    ap.add_argument("--no-sizes", action="store_true", help="skip the planted-teacher section")
    ap.add_argument("--uci", nargs="?", const=DEFAULT_UCI, default=None,
                    help=f"add the UCI section: name:ratio,… (default {DEFAULT_UCI}); "
                         "needs $CONVEXNN_UCI")
    ap.add_argument("--uci-methods", default="fast,ipm",
                    help="methods of the UCI section, comma-separated (default fast,ipm)")
    ap.add_argument("--cost-model", action="store_true",
                    help="only the grid behind method='auto' and its fit")
    ap.add_argument("--out", type=Path, default=None,
                    help="also write the report here (default: print only)")
    args = ap.parse_args(argv)
    repeats = 1 if args.quick else args.repeats
    started = _dt.datetime.now().isoformat(timespec="seconds")
    head = [f"Generated by `benchmarks/bench_relu.py {' '.join(sys.argv[1:])}` on {started}.",
            f"Machine: {machine()}; convexnn {cn.__version__}. Load average at the start "
            f"{load()}.", ""]
    # warm-up: lazy imports and first-call costs out of the timings
    ds = cn.planted_relu(40, 3, seed=0)
    for m in METHODS:
        cn.solve("relu", ds.X, ds.y, patterns=10, **METHODS[m])
    if args.cost_model:
        body = cost_model(repeats)
        emit("\n".join(["# ReLU program: the cost model of method='auto'", "", *head, *body,
                        "", f"Load average at the end {load()}."]), args.out)
        return 0
    rows = []
    for n, d, P in ([] if args.no_sizes else args.sizes):
        print(f"{n}×{d}×{P}, λ = {args.lam_ratio} λ_max", flush=True)
        ds = cn.planted_relu(n, d, seed=args.seed)
        pats = cn.sample_patterns(ds.X, P, seed=args.seed)
        methods = ["fast", "fast, inner=ipm"] + (["ipm"] if n <= 500 else [])
        if args.quick and n >= 2000:
            methods = ["fast"]
        once = ("fast, inner=ipm",) if n >= 2000 else ()  # minutes per run: one
        rows.append((f"{n}×{d}×{P}", run(ds.X, ds.y, pats, methods, repeats, once,
                                         lam_ratio=args.lam_ratio)))
    body = [] if args.no_sizes else ["## Planted-ReLU teachers", "",
            f"Data: `planted_relu(n, d, seed={args.seed})`, `sample_patterns(X, P, "
            f"seed={args.seed})`, λ = {args.lam_ratio}·λ_max, tolerance 1e-6 (relative gap of "
            f"the numpy certificate over every pattern). Medians of {repeats} run(s) per "
            "method in one process, the methods interleaved (the interior point per round "
            "at n ≥ 2000 once: minutes per run); the declarative program only up to "
            "n = 500.", "", *table(rows, "fast, inner=ipm"), ""]
    if not args.no_wine:
        wrows = []
        for outputs in (3, 1):
            X, y = wine(outputs)
            print(f"wine, {outputs} output(s)", flush=True)
            methods = ["fast", "fast, inner=ipm", "ipm"]
            if args.quick:
                methods = ["fast", "ipm"]
            wrows.append((f"wine, c = {outputs}", run(
                X, y, 100, methods, repeats, lam_ratio=0.1, bias=True, seed=0)))
        body += ["## Several outputs: wine", "",
                 "scikit-learn's wine data (178×13), standardised, bias column, ±1 one-hot "
                 "targets (c = 3; c = 1: the first column alone), 100 sampled patterns "
                 "(seed 0), λ = 0.1·λ_max.", "", *table(wrows, "ipm"), ""]
    if args.uci:
        urows, alone = [], []
        methods = [m.strip() for m in args.uci_methods.split(",") if m.strip()]
        for item in args.uci.split(","):
            name, _, ratio = item.partition(":")
            X, y = uci_half(name)
            c = 1 if y.ndim == 1 else y.shape[1]
            print(f"{name}, λ = {ratio} λ_max", flush=True)
            label = f"{name} {X.shape[0]}×{X.shape[1] + 1}×100×{c}, λ = {ratio}·λ_max"
            res = run(X, y, 100, methods, 1, lam_ratio=float(ratio), bias=True, seed=0)
            urows.append((label, res))
            if c > 1 and "fast" in res:
                cols = [run(X, y[:, k], 100, ["fast"], 1, lam_ratio=float(ratio), bias=True,
                            seed=0)["fast"] for k in range(c)]
                alone.append((label, res["fast"], cols))
        body += ["## Several outputs: UCI sets", "",
                 "The first half of the rows of each set (`$CONVEXNN_UCI`), a bias column, "
                 "±1 one-hot targets, 100 sampled patterns (seed 0); one run per method.",
                 "", *table(urows, "ipm" if "ipm" in methods else methods[0]), ""]
        if alone:
            body += ["### The outputs together and one at a time", "",
                     "`fast` on the c outputs together against `fast` on each output column "
                     "alone (a single-output program at the same λ/λ_max of that column), "
                     "wall seconds of one run each.", "",
                     "| problem | together | each alone (sum of c) | slowest alone | "
                     "together / sum | all certified |",
                     "|---|---:|---:|---:|---:|---|"]
            for label, together, cols in alone:
                total = sum(r["median"] for r in cols)
                ok = together["sol"].certificate.certified and all(
                    r["sol"].certificate.certified for r in cols)
                body.append(f"| {label} | {together['median']:.2f} | {total:.2f} | "
                            f"{max(r['median'] for r in cols):.2f} | "
                            f"{together['median'] / total:.2f} | {ok} |")
            body.append("")
    emit("\n".join(["# ReLU program: Newton on the faces vs interior points", "", *head,
                    *body, f"Load average at the end {load()}."]), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
