#!/usr/bin/env python
"""Benchmark interior-point formulations of the multi-output gated-ReLU program.

The program ``min ½||Σ_i D_i X W_i − Y||² + λ Σ_i ||W_i||_F`` (W_i of size d × c) can be
handed to a conic solver in several equivalent ways. For c = 1, 3, 10, 30, 100 outputs
(``--outputs``) on ±1 one-hot classes from a planted ReLU rule (n × d × P, default
750 × 9 × 200, λ = 0.03·λ_max) each variant is built and solved by Clarabel (tolerance
1e-8, as ``method="ipm"`` asks at tol = 1e-6) in a fresh subprocess cut at
``--timeout`` seconds, and its answer certified by the package's numpy certificate:

* ``primal`` — the package's program below ``ROTATED_CONES_FROM`` outputs
  (``convexnn.formulations.gated_relu.build_primal``): variable (d·c, P), the fit as c
  products ``A vec(W_k)`` with ``A = [D_1 X, …, D_P X]``, one cone per group;
* ``primal-gemm`` — variable ``V`` (P·d, c), the fit as one product ``A V`` and the
  group norms over ``reshape(V, (P, d·c), order="C")``;
* ``primal-kron`` — the fit as one sparse product ``(I_c ⊗ A) vec(V)``;
* ``primal-rsoc`` — ``||W_i||_F ≤ t_i`` as ``||W_ik||² ≤ s_ik t_i``, ``Σ_k s_ik ≤ t_i``
  (rotated cones per output; the outputs meet only in P scalars) — the package's program
  from ``ROTATED_CONES_FROM`` outputs on;
* ``dual`` — ``max ⟨Y, Z⟩ − ½||Z||²`` s.t. ``||Xᵀ D_i Z||_F ≤ λ`` (n·c variables, P
  second-order cones of size d·c + 1), W read from the cones' multipliers.

Each row gives wall and CPU seconds of build + solve, Clarabel's iterations, the relative
gap of the numpy certificate of the returned W, and the peak resident memory of the
subprocess. MOSEK is tried when ``--mosek`` is given (it needs a licence).
Writes Markdown to ``--out`` (default: a new ``results/benchmarks_gated_ipm-DATE.md``).

    python benchmarks/bench_gated_ipm.py --out results/benchmarks_gated_ipm.md
    python benchmarks/bench_gated_ipm.py --outputs 1,3 --variants primal,dual
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from _common import classes, fmt, new_report_path, write_text  # noqa: E402

VARIANTS = ("primal", "primal-gemm", "primal-kron", "primal-rsoc", "dual")


def build(variant: str, X: np.ndarray, Y: np.ndarray, M: np.ndarray):
    """(problem, λ parameter, function returning W (P, d, c)) of one variant."""
    import cvxpy as cp
    import scipy.sparse as sp

    from convexnn.formulations.gated_relu import build_primal
    from convexnn.ops import design_matrix

    n, d = X.shape
    P, c = M.shape[1], Y.shape[1]
    if variant == "primal":  # the package's program with the norms themselves
        prog = build_primal(X, Y, M, rotated=False)
        return prog.problem, prog.lam, prog.weights
    A = design_matrix(X, M)
    lam = cp.Parameter(nonneg=True)
    if variant == "dual":
        Z = cp.Variable((n, c))
        con = cp.SOC(lam * np.ones(P), cp.reshape(A.T @ Z, (P, d * c), order="C"), axis=1)
        prob = cp.Problem(cp.Maximize(cp.sum(cp.multiply(Y, Z)) - 0.5 * cp.sum_squares(Z)),
                          [con])
        # the multiplier of ||G_i|| ≤ λ at G_i = Xᵀ D_i Z is (·, −W_i)
        return prob, lam, lambda: -np.asarray(con.dual_value[1]).reshape(P, d, c)
    V = cp.Variable((P * d, c))
    weights = lambda: np.asarray(V.value).reshape(P, d, c)  # noqa: E731
    if variant == "primal-gemm":
        norms = cp.norm(cp.reshape(V, (P, d * c), order="C"), 2, axis=1)
        return (cp.Problem(cp.Minimize(0.5 * cp.sum_squares(A @ V - Y) + lam * cp.sum(norms))),
                lam, weights)
    if variant == "primal-kron":
        B = sp.kron(sp.eye(c), A, format="csc")
        v = cp.vec(V, order="F")
        norms = cp.norm(cp.reshape(V, (P, d * c), order="C"), 2, axis=1)
        return (cp.Problem(cp.Minimize(0.5 * cp.sum_squares(B @ v - Y.ravel(order="F"))
                                       + lam * cp.sum(norms))), lam, weights)
    if variant == "primal-rsoc":
        S, T = cp.Variable((P, c)), cp.Variable(P)
        Trep = cp.vec(cp.reshape(T, (P, 1), order="F") @ np.ones((1, c)), order="F")
        Sf = cp.vec(S, order="F")
        Wcols = cp.reshape(V, (d, P * c), order="F")  # column i + P·k is W_ik
        cons = [cp.SOC(Sf + Trep, cp.vstack([2 * Wcols,
                                             cp.reshape(Sf - Trep, (1, P * c), order="F")]),
                       axis=0),
                cp.sum(S, axis=1) <= T]
        return (cp.Problem(cp.Minimize(0.5 * cp.sum_squares(A @ V - Y) + lam * cp.sum(T)),
                           cons), lam, weights)
    raise ValueError(variant)


def child(spec: dict) -> dict:
    """Build and solve one variant here; certify its W with the package's certificate."""
    from threadpoolctl import threadpool_limits

    import convexnn as cn
    from convexnn.formulations.gated_relu import gated_relu_certificate
    from convexnn.memory import ipm_bytes, require_memory
    from convexnn.problem import ipm_scales, prepare, scaled_data
    from convexnn.solvers import CANON_BACKEND, _tolerance_options, pardiso_available

    X, Y = classes(spec["n"], spec["d"], spec["c"], spec["seed"])
    data = prepare(X, Y, patterns=spec["P"], seed=spec["seed"])
    form = cn.REGISTRY["gated_relu"]
    # the package's guard (its estimate; measured peaks were about twice it at c = 10)
    require_memory(ipm_bytes(*form.ipm_size(data)), what="gated_relu", method="ipm",
                   sizes={"n": data.n, "d": data.d, "P": data.P, "c": data.c},
                   limit=spec["memory_limit"])
    lam = spec["ratio"] * form.reg_max(data)
    a, s = ipm_scales(data)
    scaled = scaled_data(data, a, s)
    with threadpool_limits(1):
        t, c0 = time.perf_counter(), time.process_time()
        prob, lam_p, weights = build(spec["variant"], scaled.X, scaled.Y, scaled.M)
        lam_p.value = lam / (a * s)
        built = time.perf_counter() - t
        opts = _tolerance_options(spec["solver"], 1e-6)
        if spec["solver"] == "CLARABEL":
            if spec["factor"] == "mkl" and not pardiso_available():
                raise RuntimeError("MKL Pardiso does not load here (pip install mkl)")
            opts["direct_solve_method"] = spec["factor"]
        prob.solve(solver=spec["solver"], canon_backend=CANON_BACKEND, **opts)
        wall, cpu = time.perf_counter() - t, time.process_time() - c0
    W = weights() * (s / a)
    cert, _ = gated_relu_certificate(data.X, data.Y, data.M, W, lam)
    with open("/proc/self/status") as fh:
        peak = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmHWM:"))
    return {"wall": wall, "cpu": cpu, "build": built, "iterations": prob.solver_stats.num_iters,
            "status": prob.status, "gap": cert.relative_gap, "peak_mb": peak / 2**20}


def label(spec: dict) -> str:
    """``CLARABEL (faer)`` or ``MOSEK``."""
    return f"{spec['solver']} ({spec['factor']})" if spec["factor"] else spec["solver"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--outputs", default="1,3,10,30,100",
                    help="values of c (default 1,3,10,30,100)")
    ap.add_argument("--variants", default=",".join(VARIANTS),
                    help=f"comma-separated subset of {','.join(VARIANTS)}")
    ap.add_argument("--size", default="750x9x200", help="n×d×P (d includes the ones column)")
    ap.add_argument("--ratio", type=float, default=0.03, help="λ/λ_max (default 0.03)")
    ap.add_argument("--timeout", type=float, default=900.0, help="per solve (s, default 900)")
    ap.add_argument("--skip-after-timeout", action="store_true", default=True,
                    help="do not try larger c for a variant that timed out (default)")
    ap.add_argument("--factor", default="mkl,faer",
                    help="Clarabel's KKT factorisations to compare, comma-separated "
                         "(mkl, faer, qdldl; default mkl,faer: what method='ipm' uses with "
                         "several outputs when Pardiso loads, and without it)")
    ap.add_argument("--mosek", action="store_true", help="also solve with MOSEK")
    ap.add_argument("--memory-limit", default="4G",
                    help="the memory guard's limit for each solve (default 4G: the estimate; "
                         "measured peaks are about twice it)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None,
                    help="report file (default: a new results/benchmarks_gated_ipm-DATE.md; "
                         "the committed report is replaced only when named here)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    n, d, P = (int(v) for v in args.size.lower().split("x"))
    outputs = [int(c) for c in args.outputs.split(",")]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    solvers = [f"CLARABEL/{f.strip()}" for f in args.factor.split(",") if f.strip()] + \
        (["MOSEK"] if args.mosek else [])
    load = os.getloadavg()
    rows, timed_out = [], set()
    for c in outputs:
        for solver in solvers:
            for variant in variants:
                key = (variant, solver)
                name, _, factor = solver.partition("/")
                spec = {"variant": variant, "solver": name, "factor": factor, "n": n, "d": d,
                        "P": P, "c": c, "ratio": args.ratio, "seed": args.seed,
                        "memory_limit": args.memory_limit}
                print(f"c={c} {variant} {solver}…", flush=True)
                if key in timed_out:
                    rows.append((spec, None, "not run (timed out at a smaller c)"))
                    continue
                try:
                    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)],
                                         capture_output=True, text=True, timeout=args.timeout)
                    if out.returncode:
                        err = (out.stderr.strip().splitlines() or ["?"])[-1]
                        if "ProblemTooLargeError" in err:
                            err = "refused by the memory guard: " + err.partition(
                                "needs about ")[2].partition(" but")[0] + " estimated"
                        rows.append((spec, None, err[:160]))
                    else:
                        rows.append((spec, json.loads(out.stdout.strip().splitlines()[-1]), ""))
                except subprocess.TimeoutExpired:
                    rows.append((spec, None, f"> {args.timeout:g} s (stopped)"))
                    if args.skip_after_timeout:
                        timed_out.add(key)
                print(f"  {rows[-1][1] or rows[-1][2]}", flush=True)
    stamp = _dt.datetime.now().isoformat(timespec="seconds")
    lines = [
        f"# Multi-output gated ReLU: interior-point formulations at {n}×{d}×{P}",
        "",
        f"Generated by `benchmarks/bench_gated_ipm.py {' '.join(sys.argv[1:])}` on {stamp}; "
        f"{platform.platform()}, {os.cpu_count()} CPUs, load average at start "
        f"{load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f}; BLAS pinned to 1 thread.",
        f"±1 one-hot classes from a planted ReLU rule, n×d×P = {n}×{d}×{P}, "
        f"λ = {args.ratio}·λ_max; every solve in a fresh subprocess (build + solve, "
        "Clarabel at 1e-8 as `method=\"ipm\"` uses, with the KKT factorisation named: "
        "`mkl` (Intel MKL's Pardiso, nested dissection: what `method=\"ipm\"` uses for "
        "several outputs when it loads), `faer` (supernodal, minimum degree: what it uses "
        "otherwise) or `qdldl` (Clarabel's default)); gap = the package's numpy "
        "certificate of the returned W.",
        "",
        "| c | variant | solver | wall s | CPU s | iterations | relative gap | peak MB | note |",
        "|---:|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for spec, res, note in rows:
        if res is None:
            lines.append(f"| {spec['c']} | {spec['variant']} | {label(spec)} | — | — | — | — | "
                         f"— | {note} |")
        else:
            lines.append(f"| {spec['c']} | {spec['variant']} | {label(spec)} | "
                         f"{res['wall']:.2f} | {res['cpu']:.2f} | {res['iterations']} | "
                         f"{res['gap']:.1e} | {fmt(res['peak_mb'], '.0f')} | {res['status']} |")
    text = "\n".join(lines) + "\n"
    out = args.out or new_report_path("benchmarks_gated_ipm")
    write_text(out, text)
    print(text)
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
