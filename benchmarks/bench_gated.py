#!/usr/bin/env python
"""Benchmark the gated-ReLU fast method against its previous algorithm and the IPM.

In ONE process and on the same data, with BLAS pinned to one thread, each case is solved
``--repeats`` times by

* **new** — ``method="fast"`` of this checkout (greedy FISTA to a support estimate, then
  Newton over all groups);
* **baseline** — the previous ``method="fast"`` (FISTA with restart, a bounded Newton
  refinement and the interior-point polish), loaded from git (``--baseline-commit``, by
  default 0cd0fd4: ``git show COMMIT:convexnn/methods/group_lasso.py``) as a module of
  this package; it is never shipped;
* **ipm** — ``method="ipm"`` where asked (Clarabel on the declarative program).

Every table gives wall-clock and CPU (process) medians, the ratio baseline/new of each,
the relative duality gap of every answer recomputed here by plain float64 numpy over all
P patterns (``independent_gap``: nothing from the solver is used but ``W``), and the peak
memory of one more solve in a fresh subprocess (peak RSS ``VmHWM`` reset just before the
solve, minus the resident set size at that moment). CPU time is the work done: on a
shared machine wall-clock times move with the load (recorded in the header).

Sections (``--sections``, default all):

* ``single`` — planted-ReLU teacher, one output, λ = 0.01·λ_max, sizes ``--sizes``;
* ``multi`` — ±1 one-hot classes from a planted ReLU rule, c = 1, 3, 10 at 750×9×200 and
  c = 100 at 1000×20×200, λ/λ_max = 0.1, 0.01, 0.001; baseline runs that would take
  minutes (its interior-point polish at small λ) run in a subprocess cut at
  ``--baseline-timeout`` seconds and are reported as a lower bound;
* ``uci`` — ``led-display`` (c = 10) and ``plant-margin`` (c = 100) from the UCI
  collection (``$CONVEXNN_UCI``; skipped when absent), with a bias column, 200 patterns;
* ``path`` — 20 values of λ/λ_max geometric from 1 to 0.01 at 2000×20×500, warm-started;
* ``reweight`` — reweighting from the NTK with the gated finish (λ and μ modes) at
  500×10×200, the finish done by the new and by the baseline fast method;
* ``auto`` — ``method="ipm"`` against the new ``"fast"`` on small problems (the data
  behind ``GatedReLU.choose_method``).

``--quick`` runs a small subset with one repeat and no memory subprocesses.

Writes a Markdown report to ``--out`` (default: a new ``results/benchmarks-DATE.md``; the
committed ``results/benchmarks.md`` is replaced only when named)::

    python benchmarks/bench_gated.py --out results/benchmarks.md     # the full run
    python benchmarks/bench_gated.py --quick
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

from _common import classes, fmt, new_report_path, parse_sizes, write_text  # noqa: E402

import convexnn as cn  # noqa: E402
from convexnn.formulations import get_formulation  # noqa: E402
from convexnn.formulations.base import SolveOptions  # noqa: E402
from convexnn.methods import group_lasso  # noqa: E402
from convexnn.problem import ProblemData, prepare  # noqa: E402

GATED = get_formulation("gated_relu")
DEFAULT_SIZES = "2000x20x500,10000x50x1000,20000x50x2000"
BASELINE_COMMIT = "0cd0fd4"
SECTIONS = ("single", "multi", "uci", "path", "reweight", "auto")


# ---------------------------------------------------------------------------
# problems
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One benchmark problem: how to build it and at which λ/λ_max."""

    kind: str  # planted | classes | uci
    n: int
    d: int  # features (before the bias column)
    P: int
    c: int
    ratio: float
    name: str = ""  # UCI set
    bias: bool = False
    baseline: str = "inproc"  # inproc | child | skip
    ipm: bool = False

    def label(self) -> str:
        what = self.name or self.kind
        return f"{what} {self.n}×{self.d + self.bias}×{self.P}×{self.c}"

    def as_json(self) -> str:
        return json.dumps(self.__dict__)


def build(case: Case, seed: int = 0) -> tuple[ProblemData, float]:
    """The prepared data of ``case`` and its λ."""
    if case.kind == "planted":
        ds = cn.planted_relu(case.n, case.d, seed=seed)
        X, Y = ds.X, ds.y
    elif case.kind == "classes":
        X, Y = classes(case.n, case.d, case.c, seed)
    else:
        from convexnn.data import load_uci, one_hot

        ds = load_uci(case.name)
        X, Y = ds.X, one_hot(ds.y, centered=True)
    data = prepare(X, Y, patterns=case.P, bias=case.bias, seed=seed)
    return data, case.ratio * GATED.reg_max(data)


def uci_cases(ratios: list[float], timeout_note: bool = True) -> list[Case]:
    out = []
    for name, n, d, c in (("led-display", 1000, 7, 10), ("plant-margin", 1600, 64, 100)):
        for r in ratios:
            slow = c >= 100 or r <= 0.001
            out.append(Case("uci", n, d, 200, c, r, name=name, bias=True,
                            baseline="child" if slow else "inproc"))
    return out


# ---------------------------------------------------------------------------
# solvers
# ---------------------------------------------------------------------------


def load_baseline(commit: str) -> types.ModuleType:
    """The previous fast method, from git, as ``convexnn.methods._baseline_group_lasso``."""
    name = "convexnn.methods._baseline_group_lasso"
    if name in sys.modules:
        return sys.modules[name]
    src = subprocess.run(["git", "-C", str(ROOT), "show",
                          f"{commit}:convexnn/methods/group_lasso.py"],
                         capture_output=True, text=True, check=True).stdout
    spec = importlib.util.spec_from_loader(name, loader=None)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "convexnn.methods"
    sys.modules[name] = module
    exec(compile(src, f"<{commit}:convexnn/methods/group_lasso.py>", "exec"), module.__dict__)
    return module


def solve_with(solver: str, data: ProblemData, lam: float, tol: float, commit: str,
               **options: Any):
    """One solve by ``solver`` (new | baseline | ipm) → Solution."""
    if solver == "ipm":
        from convexnn.methods import ipm

        return ipm.run(GATED, data, lam, SolveOptions(method="ipm", tol=tol))
    module = group_lasso if solver == "new" else load_baseline(commit)
    opts = SolveOptions(method="fast", tol=tol, method_options=module.Options(**options))
    return module.run(GATED, data, lam, opts)


def independent_gap(data: ProblemData, W: np.ndarray, lam: float) -> float:
    """Relative gap of the residual-scaled dual point, plain float64 numpy, every pattern."""
    X, Y, M = data.X, data.Y, data.M
    n, d = X.shape
    c = Y.shape[1]
    P = M.shape[1]
    W = np.asarray(W, dtype=np.float64).reshape(P, d, c)
    fit = np.zeros((n, c))
    for i in np.flatnonzero(np.any(W != 0, axis=(1, 2))):
        fit += M[:, i, None] * (X @ W[i])
    R = Y - fit
    B = (X[:, :, None] * R[:, None, :]).reshape(n, d * c)
    top = 0.0
    for j0 in range(0, P, 64):
        G = M[:, j0:j0 + 64].astype(np.float64).T @ B
        top = max(top, float(np.sqrt(np.einsum("pj,pj->p", G, G).max())))
    primal = 0.5 * float(np.sum(R * R)) + lam * float(
        np.sqrt(np.einsum("pdc,pdc->p", W, W)).sum())
    yr, rr = float(np.sum(Y * R)), float(np.sum(R * R))
    s = max(0.0, min(lam / top if top > 0 else np.inf, yr / rr if rr > 0 else 0.0))
    gap = primal - (s * yr - 0.5 * s * s * rr)
    return gap / abs(primal) if primal != 0 else (0.0 if gap == 0 else float("inf"))


def details(sol) -> str:
    info = sol.info
    keys = ("iterations", "newton_steps", "cg_iterations", "dense_newton_steps",
            "polish_rounds", "working_set", "support")
    return ", ".join(f"{k}={info[k]}" for k in keys if k in info) + f", status={sol.status}"


# ---------------------------------------------------------------------------
# measurements
# ---------------------------------------------------------------------------


@dataclass
class Timing:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    sol: Any = None
    note: str = ""
    lower_bound: bool = False

    @property
    def wall_med(self) -> float:
        return statistics.median(self.wall) if self.wall else float("nan")

    @property
    def cpu_med(self) -> float:
        return statistics.median(self.cpu) if self.cpu else float("nan")


def timed(fn: Callable[[], Any], repeats: int, stop_after: float = float("inf")) -> Timing:
    out = Timing()
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        out.sol = fn()
        out.wall.append(time.perf_counter() - t)
        out.cpu.append(time.process_time() - c)
        if out.wall[-1] > stop_after:
            break
    return out


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def reset_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def peak_bytes() -> int:
    """``VmHWM`` (per address space; ``ru_maxrss`` carries the parent's across exec)."""
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
    """One solve in this fresh process: its time, gap and peak memory as JSON."""
    case = Case(**json.loads(args.child_case))
    with threadpool_limits(1):
        warm, wlam = build(Case("planted", 60, 3, 20, 1, 0.1))
        solve_with(args.child_solver, warm, wlam, args.tol, args.baseline_commit)
        data, lam = build(case, args.seed)
        reset_peak()
        before = rss_bytes()
        t, c = time.perf_counter(), time.process_time()
        sol = solve_with(args.child_solver, data, lam, args.tol, args.baseline_commit)
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        peak = max(peak_bytes() - before, 0)
    print(json.dumps({"peak": peak, "wall": wall, "cpu": cpu,
                      "gap": independent_gap(data, sol.weights["W"], lam),
                      "details": details(sol)}))


def in_child(case: Case, solver: str, args: argparse.Namespace, timeout: float
             ) -> dict | None:
    cmd = [sys.executable, __file__, "--child-case", case.as_json(), "--child-solver", solver,
           "--tol", str(args.tol), "--seed", str(args.seed),
           "--baseline-commit", args.baseline_commit]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=timeout)
        return json.loads(out.stdout.strip().splitlines()[-1])
    except subprocess.TimeoutExpired:
        return None
    except (subprocess.SubprocessError, ValueError, KeyError, IndexError) as exc:
        print(f"  (subprocess {solver} {case.label()} failed: {exc})", file=sys.stderr)
        return {"error": str(exc)}


@dataclass
class Row:
    case: Case
    solver: str
    timing: Timing
    gap: float
    peak: float | None
    details: str
    speedup_wall: float | None = None
    speedup_cpu: float | None = None


def bench_case(case: Case, args: argparse.Namespace) -> list[Row]:
    data, lam = build(case, args.seed)
    solvers = ["new"]
    if case.baseline != "skip" and not args.no_baseline:
        solvers.insert(0, "baseline")
    if case.ipm:
        solvers.append("ipm")
    rows: dict[str, Row] = {}
    for solver in solvers:
        print(f"{case.label()} λ={case.ratio:g}·λ_max {solver}…", flush=True)
        if solver == "baseline" and case.baseline == "child":
            res = in_child(case, solver, args, args.baseline_timeout)
            t = Timing()
            if res is None:
                t.wall, t.cpu, t.lower_bound = [args.baseline_timeout], [float("nan")], True
                t.note = f"stopped after {args.baseline_timeout:g} s (subprocess)"
                rows[solver] = Row(case, solver, t, float("nan"), None, t.note)
            elif "error" in res:
                rows[solver] = Row(case, solver, t, float("nan"), None, "failed")
            else:
                t.wall, t.cpu, t.note = [res["wall"]], [res["cpu"]], "1 run in a subprocess"
                rows[solver] = Row(case, solver, t, res["gap"], res["peak"] / 2**20,
                                   res["details"] + "; " + t.note)
            continue
        with threadpool_limits(1):
            t = timed(lambda s=solver: solve_with(s, data, lam, args.tol, args.baseline_commit),
                      args.repeats, stop_after=args.baseline_max if solver != "new" else 1e300)
        peak = None
        if not args.no_memory:
            res = in_child(case, solver, args, args.timeout)
            peak = None if not res or "error" in res else res["peak"] / 2**20
        gap = independent_gap(data, t.sol.weights["W"], lam)
        rows[solver] = Row(case, solver, t, gap, peak, details(t.sol))
        print(f"  wall {t.wall_med:.3f}s cpu {t.cpu_med:.3f}s gap {gap:.2e} "
              f"peak {fmt(peak, '.0f')} MB {details(t.sol)}", flush=True)
    new = rows["new"].timing
    for r in rows.values():
        if r.solver != "new":
            r.speedup_wall = r.timing.wall_med / new.wall_med
            r.speedup_cpu = r.timing.cpu_med / new.cpu_med
    return list(rows.values())


def case_table(rows: list[Row], tol: float) -> list[str]:
    out = ["| problem n×d×P×c | λ/λ_max | solver | wall s (runs) | CPU s | × new (wall) | "
           "× new (CPU) | indep. rel. gap | ≤ tol | peak MB | details |",
           "|---|---:|---|---:|---:|---:|---:|---:|---|---:|---|"]
    for r in rows:
        t = r.timing
        bound = "> " if t.lower_bound else ""
        out.append(
            f"| {r.case.label()} | {r.case.ratio:g} | {r.solver} | {bound}{t.wall_med:.3f} "
            f"({len(t.wall)}) | {fmt(t.cpu_med)} | {bound}{fmt(r.speedup_wall, '.1f')} | "
            f"{fmt(r.speedup_cpu, '.1f')} | {fmt(r.gap, '.2e')} | "
            f"{'—' if r.gap != r.gap else r.gap <= tol} | {fmt(r.peak, '.0f')} | {r.details} |")
    return out


def bench_path(args: argparse.Namespace) -> list[str]:
    n, d, P = (500, 10, 200) if args.quick else (2000, 20, 500)
    values = 10 if args.quick else 20
    case = Case("planted", n, d, P, 1, 0.01)
    data, lam = build(case, args.seed)
    lam_max = GATED.reg_max(data)
    lams = lam_max * np.geomspace(1.0, 0.01, values)
    lines = [f"λ path at {case.label()}: {values} values of λ/λ_max geometric from 1 to 0.01, "
             "warm-started (one operator), every value certified by the numpy certificate; "
             "the single solve is at 0.01·λ_max.", "",
             "| solver | single solve wall s (CPU s) | path wall s (CPU s) | path / single "
             "(wall, CPU) | all certified | worst indep. gap |", "|---|---:|---:|---:|---|---:|"]
    solvers = ["new"] if args.no_baseline else ["baseline", "new"]
    for solver in solvers:
        module = group_lasso if solver == "new" else load_baseline(args.baseline_commit)
        opts = SolveOptions(method="fast", tol=args.tol, method_options=module.Options())
        with threadpool_limits(1):
            one = timed(lambda m=module, o=opts: m.run(GATED, data, lams[-1], o), args.repeats)
            path = timed(lambda m=module, o=opts: m.run_path(GATED, data, lams, o)[0],
                         args.repeats)
        sols = path.sol
        worst = max(independent_gap(data, s.weights["W"], s.lam) for s in sols)
        lines.append(f"| {solver} | {one.wall_med:.3f} ({one.cpu_med:.3f}) | "
                     f"{path.wall_med:.3f} ({path.cpu_med:.3f}) | "
                     f"{path.wall_med / one.wall_med:.2f}, {path.cpu_med / one.cpu_med:.2f} | "
                     f"{all(s.certified for s in sols)} | {worst:.2e} |")
        print(lines[-1], flush=True)
    return lines


def bench_reweight(args: argparse.Namespace) -> list[str]:
    """Reweighting with the gated finish, the finish done by the new and the baseline."""
    import convexnn.methods.reweight as rw

    n, d, P = 500, 10, 200
    ds = cn.planted_relu(n, d, seed=args.seed)
    pats = cn.sample_patterns(ds.X, P, seed=args.seed)
    data = prepare(ds.X, ds.y, patterns=pats)
    lam = 0.1 * GATED.reg_max(data)
    ref = cn.solve("gated_relu", ds.X, ds.y, patterns=pats, lam=lam, method="fast")
    mu = cn.lam_to_mu(lam, ref)
    lines = [f"Reweighting from the NTK with `finish=\"gated\"` at planted {n}×{d}×{P}, "
             "λ = 0.1·λ_max (μ = λ/Σ‖w_i*‖ in μ mode); the finish's gated solves by each "
             "fast method (the reweighting iterations are the same code).", "",
             "| finish by | mode | wall s (runs) | CPU s | × new (CPU) | reweight iterations | "
             "gated solves | relative gap | certified |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    original = rw.group_lasso
    results: dict[tuple[str, str], Timing] = {}
    try:
        for solver in (["new"] if args.no_baseline else ["baseline", "new"]):
            if solver == "baseline":
                base = load_baseline(args.baseline_commit)
                rw.group_lasso = types.SimpleNamespace(
                    run=base.run, Options=base.Options, memory_estimate=base.memory_estimate,
                    GroupLassoOperator=lambda X, M, c=data.c, b=base: b.GroupLassoOperator(X, M, c))
            else:
                rw.group_lasso = original
            for mode, kw in (("λ", {"lam": lam}), ("μ", {"mu": mu})):
                with threadpool_limits(1):
                    t = timed(lambda kw=kw: cn.reweight(ds.X, ds.y, patterns=pats, **kw),
                              args.repeats)
                results[(solver, mode)] = t
    finally:
        rw.group_lasso = original
    for (solver, mode), t in results.items():
        res = t.sol
        new = results[("new", mode)]
        lines.append(f"| {solver} | {mode} | {t.wall_med:.3f} ({len(t.wall)}) | {t.cpu_med:.3f} | "
                     f"{t.cpu_med / new.cpu_med:.2f} | {res.iterations} | {res.finish_steps} | "
                     f"{res.certificate.relative_gap:.1e} | {res.certificate.certified} |")
        print(lines[-1], flush=True)
    return lines


AUTO_GRID = [(n, d, P, c) for (n, d, P) in ((40, 3, 20), (100, 4, 50), (200, 5, 100),
                                              (500, 10, 200))
             for c in (1, 3, 10) if n * d * P * c <= 2_000_000]


def bench_auto(args: argparse.Namespace) -> list[str]:
    """``ipm`` against the new ``fast`` on small problems (``choose_method``'s data)."""
    grid = AUTO_GRID[:4] if args.quick else AUTO_GRID
    lines = ["`method=\"ipm\"` against the new `method=\"fast\"` on small problems (planted "
             "teacher with c outputs, λ/λ_max = 0.1 and 0.01; medians of CPU and wall-clock "
             "times, build and certificate included).", "",
             "| n×d×P×c | n·d·P·c | λ/λ_max | ipm CPU s | fast CPU s | ipm / fast (CPU) | "
             "ipm wall s | fast wall s | both certified | fast details |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for n, d, P, c in grid:
        for ratio in (0.1, 0.01):
            ds = cn.planted_relu(n, d, outputs=c, seed=args.seed)
            data = prepare(ds.X, ds.y, patterns=P, seed=args.seed)
            lam = ratio * GATED.reg_max(data)
            with threadpool_limits(1):
                ipm = timed(lambda dt=data, lm=lam: solve_with("ipm", dt, lm, args.tol, ""),
                            args.repeats)
                fast = timed(lambda dt=data, lm=lam: solve_with("new", dt, lm, args.tol, ""),
                             args.repeats)
            lines.append(f"| {n}×{d}×{data.P}×{c} | {n * d * data.P * c} | {ratio:g} | "
                         f"{ipm.cpu_med:.4f} | {fast.cpu_med:.4f} | "
                         f"{ipm.cpu_med / fast.cpu_med:.1f} | {ipm.wall_med:.4f} | "
                         f"{fast.wall_med:.4f} | {ipm.sol.certified and fast.sol.certified} | "
                         f"{details(fast.sol)} |")
            print(lines[-1], flush=True)
    return lines


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------


def cases_for(args: argparse.Namespace) -> dict[str, list[Case]]:
    if args.quick:
        single = [Case("planted", n, d, P, 1, 0.01) for n, d, P in args.sizes[:1]]
        multi = [Case("classes", 750, 9, 200, c, r) for c in (1, 3, 10) for r in (0.1, 0.01)]
        uci = [c for c in uci_cases([0.01]) if c.c == 10]
        return {"single": single, "multi": multi, "uci": uci}
    single = [Case("planted", n, d, P, 1, 0.01, ipm=(n * d * P <= 20_000_000 and args.ipm))
              for n, d, P in args.sizes]
    multi = []
    for c, (n, d, P) in ((1, (750, 9, 200)), (3, (750, 9, 200)), (10, (750, 9, 200)),
                         (100, (1000, 20, 200))):
        for r in (0.1, 0.01, 0.001):
            slow = (c >= 10 and r <= 0.001) or c >= 100
            multi.append(Case("classes", n, d, P, c, r, baseline="child" if slow else "inproc"))
    return {"single": single, "multi": multi, "uci": uci_cases([0.1, 0.01, 0.001])}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=parse_sizes, default=parse_sizes(DEFAULT_SIZES),
                    help=f"single-output sizes NxDxP (default {DEFAULT_SIZES})")
    ap.add_argument("--sections", default=",".join(SECTIONS),
                    help=f"comma-separated subset of {','.join(SECTIONS)}")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats (default 3)")
    ap.add_argument("--quick", action="store_true",
                    help="a small subset, one repeat, no memory subprocesses")
    ap.add_argument("--tol", type=float, default=1e-6, help="relative gap (default 1e-6)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-baseline", action="store_true", help="only the new method")
    ap.add_argument("--ipm", action="store_true",
                    help="also time method='ipm' on single-output sizes up to n·d·P = 2e7")
    ap.add_argument("--baseline-commit", default=BASELINE_COMMIT,
                    help=f"git commit of the previous method (default {BASELINE_COMMIT})")
    ap.add_argument("--baseline-max", type=float, default=120.0,
                    help="stop repeating a baseline once a run exceeds this (s)")
    ap.add_argument("--baseline-timeout", type=float, default=600.0,
                    help="cut baseline runs expected to be long after this (s, subprocess)")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    ap.add_argument("--timeout", type=float, default=1800, help="per subprocess (s)")
    ap.add_argument("--out", type=Path, default=None,
                    help="report file (default: a new results/benchmarks-DATE.md; the committed "
                         "results/benchmarks.md is replaced only when named here)")
    ap.add_argument("--child-case", help=argparse.SUPPRESS)
    ap.add_argument("--child-solver", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child_case:
        child_main(args)
        return 0
    if args.quick:
        args.repeats, args.no_memory = 1, True
    if args.repeats < 1:
        ap.error("--repeats must be ≥ 1")
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        ap.error(f"unknown sections {sorted(unknown)}; choose from {list(SECTIONS)}")

    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    started = _dt.datetime.now().isoformat(timespec="seconds")
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    lines = [
        "# Gated-ReLU benchmark: the fast method against its previous algorithm",
        "",
        f"Generated by `benchmarks/bench_gated.py {' '.join(sys.argv[1:])}` on {started} "
        f"at commit {commit or '?'}; baseline = `method=\"fast\"` of {args.baseline_commit}.",
        f"Machine: {platform.platform()}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, load average at start {load[0]:.2f}/{load[1]:.2f}/"
        f"{load[2]:.2f}; numpy {np.__version__}; BLAS pinned to 1 thread.",
        f"Tolerance {args.tol:g} (relative duality gap). Times: medians of {args.repeats} "
        "solve(s) in one process (build, solve and the package's certificate included; data "
        "preparation excluded), wall-clock and CPU; `× new` = baseline / new. The gap column "
        "is recomputed by plain numpy over every pattern. Peak memory: one more solve in a "
        "fresh subprocess, `VmHWM` reset just before the solve minus the RSS at that moment.",
    ]
    cases = cases_for(args)
    titles = {"single": "Single output (planted ReLU teacher)",
              "multi": "Several outputs (±1 one-hot classes from a planted ReLU rule)",
              "uci": "UCI classification sets (one-hot ±1 targets, bias column)"}
    for section in sections:
        print(f"== {section}", flush=True)
        if section in cases:
            todo = cases[section]
            if section == "uci" and not os.environ.get("CONVEXNN_UCI"):
                lines += ["", f"## {titles[section]}", "", "Skipped: `$CONVEXNN_UCI` is not set."]
                continue
            rows = [r for case in todo for r in bench_case(case, args)]
            lines += ["", f"## {titles[section]}", ""] + case_table(rows, args.tol)
        elif section == "path":
            lines += ["", "## λ path", ""] + bench_path(args)
        elif section == "reweight":
            lines += ["", "## Reweighting's gated finish", ""] + bench_reweight(args)
        elif section == "auto":
            lines += ["", "## `method=\"auto\"`: interior point or fast", ""] + bench_auto(args)
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    lines += ["", f"Load average at the end: {load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f}."]
    text = "\n".join(lines) + "\n"
    out = args.out or new_report_path("benchmarks")
    write_text(out, text)
    print()
    print(text)
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
