#!/usr/bin/env python
"""Benchmark iterative reweighting: the pure iteration vs the gated-ReLU finish.

In ONE process, on the same data (a planted-ReLU teacher, ``convexnn.planted_relu``),
for each size (n, d, P) and ``λ = lam_ratio · λ_max`` (and the ``μ`` of that λ):

* the plain gated-ReLU fast solve at λ (the reference, ``method="fast"``);
* reweighting from the NTK weights with ``finish="gated"`` in λ and μ mode;
* the pure iteration (``finish="none"``) in λ and μ mode, capped at
  ``--pure-max-iter`` updates (it converges sublinearly: at 500×10×200 thousands of
  iterations do not reach a gap of 1e-6, so it is reported with the gap it reached);
* the cost of one reweighting iteration against the budget of docs/math/notation.md — one n×n
  Cholesky plus the n²P kernel GEMM, ×1.5 — with BLAS pinned to one thread
  (``threads=1``, the default) and left as configured (``threads=None``).

Each timing is repeated ``--repeats`` times; medians are printed with the ratio to the
gated fast solve, iterations and the relative gaps of convexnn's numpy certificates.
The load average before and after is recorded: on a shared machine timings move with
it. Writes a Markdown report to ``--out`` (default: a new
``results/benchmarks_reweight-DATE.md``).

Examples::

    python benchmarks/bench_reweight.py                     # 500×10×200, 3 repeats
    python benchmarks/bench_reweight.py --sizes 500x10x200,2000x20x500 --repeats 1
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import scipy.linalg as sla
from threadpoolctl import threadpool_info, threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

from _common import fmt, new_report_path, parse_sizes, write_text  # noqa: E402

import convexnn as cn  # noqa: E402
from convexnn.formulations import prepare  # noqa: E402


def loadavg() -> str:
    if not hasattr(os, "getloadavg"):
        return "n/a"
    return "/".join(f"{v:.2f}" for v in os.getloadavg())


def blas_threads() -> str:
    found = sorted({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"})
    return ",".join(map(str, found)) or "n/a"


def median_time(fn, repeats: int):
    """Run ``fn`` ``repeats`` times; median seconds and the last result."""
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def budget_ms(X: np.ndarray, M: np.ndarray, threads: int | None, repeats: int = 21
              ) -> tuple[float, float]:
    """Median ms of one n×n Cholesky and of the n²P GEMM ``(M diag η) Mᵀ``."""
    n = X.shape[0]
    K = X @ X.T + np.eye(n) * float(np.trace(X @ X.T)) / n
    Mf = np.asarray(M, dtype=np.float64, order="F")
    eta = np.random.default_rng(0).random(Mf.shape[1])

    def med(f):
        f()
        ts = []
        for _ in range(repeats):
            t = time.perf_counter()
            f()
            ts.append(time.perf_counter() - t)
        return 1e3 * statistics.median(ts)

    ctx = threadpool_limits(threads, user_api="blas") if threads is not None else None
    try:
        return (med(lambda: sla.cho_factor(K, lower=True, check_finite=False)),
                med(lambda: (Mf * eta) @ Mf.T))
    finally:
        if ctx is not None:
            ctx.restore_original_limits()


def per_iteration_ms(X, y, pats, lam: float, threads: int | None, iters: int) -> float:
    """Median ms per reweighting iteration of the pure loop (start-up excluded)."""
    res = cn.reweight(X, y, patterns=pats, lam=lam, finish="none", max_iter=iters,
                      tol=1e-15, threads=threads)
    s = res.history["seconds"].to_numpy()
    return 1e3 * float(np.median(np.diff(s)))


def run_size(size, args) -> tuple[list[dict], dict]:
    n, d, P = size
    ds = cn.planted_relu(n, d, seed=args.seed)
    pats = cn.sample_patterns(ds.X, P, seed=args.seed)
    data = prepare(ds.X, ds.y, patterns=pats)
    lam = args.lam_ratio * cn.REGISTRY["gated_relu"].reg_max(data)
    rows: list[dict] = []

    t, ref = median_time(lambda: cn.solve("gated_relu", ds.X, ds.y, patterns=pats, lam=lam,
                                          method="fast"), args.repeats)
    rows.append(dict(method="gated_relu fast (reference)", mode="λ", seconds=t,
                     iterations=f"{ref.info['iterations']} prox-grad",
                     gap=ref.certificate.relative_gap, certified=ref.certified))
    mu = cn.lam_to_mu(lam, ref)
    regs = {"λ": dict(lam=lam), "μ": dict(mu=mu)}
    for finish, cap in (("gated", cn.reweight.__kwdefaults__["max_iter"]),
                        ("none", args.pure_max_iter)):
        for mode, kw in regs.items():
            reps = args.repeats if finish == "gated" else args.pure_repeats
            t, res = median_time(lambda kw=kw, finish=finish, cap=cap: cn.reweight(
                ds.X, ds.y, patterns=pats, finish=finish, max_iter=cap, **kw), reps)
            it = f"{res.iterations} reweight"
            if res.finish_steps:
                it += f" + {res.finish_steps} gated"
            rows.append(dict(method=f"reweight finish={finish!r}", mode=mode, seconds=t,
                             iterations=it, gap=res.certificate.relative_gap,
                             certified=res.certificate.certified, status=res.status,
                             extra=(f"root residual {res.info['root_residual']:.1e}"
                                    if mode == "μ" and res.finished_by == "gated" else "")))
    for r in rows:
        r["ratio"] = r["seconds"] / rows[0]["seconds"]

    cost = {}
    for threads in (1, None):
        chol, gemm = budget_ms(data.X, data.M, threads)
        per = per_iteration_ms(ds.X, ds.y, pats, lam, threads, args.cost_iters)
        cost[threads] = dict(chol=chol, gemm=gemm, budget=1.5 * (chol + gemm), per=per)
    return rows, cost


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=parse_sizes, default=parse_sizes("500x10x200"),
                    help="comma-separated NxDxP (default 500x10x200)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per method (median)")
    ap.add_argument("--pure-repeats", type=int, default=1,
                    help="timed runs of the (long) pure iteration")
    ap.add_argument("--pure-max-iter", type=int, default=1000,
                    help="cap on the pure iteration's updates (default 1000)")
    ap.add_argument("--cost-iters", type=int, default=40,
                    help="iterations timed for the per-iteration cost")
    ap.add_argument("--lam-ratio", type=float, default=0.1, help="λ / λ_max (default 0.1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None,
                    help="report file (default: a new results/benchmarks_reweight-DATE.md; "
                         "the committed report is replaced only when named here)")
    args = ap.parse_args(argv)
    if args.repeats < 1 or args.pure_repeats < 1 or args.pure_max_iter < 0:
        ap.error("--repeats and --pure-repeats must be ≥ 1, --pure-max-iter ≥ 0")

    load_before, default_threads = loadavg(), blas_threads()
    stamp = _dt.datetime.now().isoformat(timespec="seconds")
    lines = [
        "# Reweighting benchmark",
        "",
        f"Run {stamp}; machine: {platform.platform()}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, BLAS threads as configured: {default_threads}; "
        f"load average (1/5/15 min) before: {load_before}.",
        f"Planted-ReLU teacher, λ = {args.lam_ratio}·λ_max (μ = λ/Σ‖w_i*‖ for μ mode), "
        f"NTK start, tol 1e-6; medians of {args.repeats} runs (pure iteration: "
        f"{args.pure_repeats}, capped at {args.pure_max_iter} updates).",
        "",
    ]
    for size in args.sizes:
        n, d, P = size
        print(f"== n={n}, d={d}, P={P} (load {loadavg()})", flush=True)
        rows, cost = run_size(size, args)
        lines += [f"## n={n}, d={d}, P={P}", "",
                  "| method | mode | median s | × gated fast | iterations | relative gap "
                  "| certified | note |",
                  "|---|---|---:|---:|---|---:|---|---|"]
        for r in rows:
            line = (f"| {r['method']} | {r['mode']} | {fmt(r['seconds'])} | "
                    f"{fmt(r['ratio'], '.1f')} | {r['iterations']} | {r['gap']:.1e} | "
                    f"{'yes' if r['certified'] else 'no'} | {r.get('extra', '')} |")
            lines.append(line)
            print(f"  {r['method']:<30} {r['mode']} {r['seconds']:8.3f}s  ×{r['ratio']:6.1f}  "
                  f"{r['iterations']:<22} gap {r['gap']:.1e}  "
                  f"{'certified' if r['certified'] else 'NOT certified'} {r.get('extra', '')}",
                  flush=True)
        lines += ["", "Per reweighting iteration (median over "
                  f"{args.cost_iters} iterations) against the budget 1.5 × (Cholesky + n²P GEMM) "
                  "measured with the same BLAS threads:", "",
                  "| BLAS threads | Cholesky ms | n²P GEMM ms | budget ms | iteration ms "
                  "| iteration / budget |", "|---|---:|---:|---:|---:|---:|"]
        for threads, c in cost.items():
            label = "1 (threads=1)" if threads == 1 else f"{default_threads} (threads=None)"
            lines.append(f"| {label} | {c['chol']:.2f} | {c['gemm']:.2f} | {c['budget']:.2f} "
                         f"| {c['per']:.2f} | {c['per'] / c['budget']:.2f} |")
            print(f"  iteration with BLAS {label}: {c['per']:.2f} ms (budget {c['budget']:.2f} "
                  f"ms: Cholesky {c['chol']:.2f} + GEMM {c['gemm']:.2f}, ×1.5)", flush=True)
        one, free = cost[1]["per"], cost[None]["per"]
        lines += ["", f"threads=None / threads=1 per iteration: {free / one:.1f}×", ""]
    lines += [f"Load average after: {loadavg()}.", ""]
    write_text(args.out or new_report_path("benchmarks_reweight"), "\n".join(lines))
    print(f"wrote {args.out or 'results/'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
