"""Benchmark the ReLU program: declarative interior point (method="ipm") against the
working-set interior point (method="fast"), on the same synthetic data.

Usage::

    python benchmarks/bench_relu.py                  # both sizes, both methods, 3 repeats
    python benchmarks/bench_relu.py --quick          # skip the IPM at the large size
    python benchmarks/bench_relu.py --sizes 500,10,200 --repeats 5 --out results/x.md

Data: ``planted_relu(n, d, seed)`` (three-neuron teacher, noise 0.1), ``P`` Gaussian
gates sampled with ``seed``, ``λ = lam_ratio · λ_max``. Every run happens in a fresh
child process (``multiprocessing``, spawn) so that runs do not share memory or caches;
the child rebuilds the data from the seeds (the data hash is checked to be identical
across runs). Timing: wall clock of ``convexnn.solve`` (including λ_max and the
certificate). Peak memory: the child's peak resident set size, ``VmHWM`` from
``/proc/<pid>/status`` read by the parent just before the child exits (also for runs
stopped at ``--timeout``), falling back to the child's own ``getrusage`` maximum.
Medians over ``--repeats`` are printed and appended to a Markdown file.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(n: int, d: int, P: int, ratio: float, method: str, seed: int, queue: mp.Queue,
         release: mp.Event) -> None:
    """Child process: one solve; reports its numbers, then waits for the parent to read
    its peak memory."""
    import resource

    sys.path.insert(0, str(ROOT))
    import convexnn as cn

    ds = cn.planted_relu(n, d, seed=seed)
    pats = cn.sample_patterns(ds.X, P, seed=seed)
    if method == "none":  # baseline: interpreter, imports and data only
        queue.put({"seconds": 0.0, "objective": None, "relative_gap": None, "certified": None,
                   "sha": None, "P": pats.P, "rounds": None, "blocks": None, "rows": None,
                   "full_rows": None,
                   "rusage_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0})
        release.wait(60)
        return
    start = time.perf_counter()
    sol = cn.solve("relu", ds.X, ds.y, patterns=pats, lam_ratio=ratio, method=method)
    seconds = time.perf_counter() - start
    ws = sol.info.get("working_set", {})
    queue.put({
        "seconds": seconds,
        "objective": sol.objective,
        "relative_gap": sol.certificate.relative_gap,
        "certified": sol.certificate.certified,
        "sha": sol.data_sha256,
        "P": sol.patterns.P,
        "rounds": ws.get("rounds"),
        "blocks": ws.get("blocks"),
        "rows": ws.get("rows"),
        "full_rows": ws.get("full_rows", 2 * n * sol.patterns.P),
        "rusage_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    })
    release.wait(60)


def _peak_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def run_once(n: int, d: int, P: int, ratio: float, method: str, seed: int, timeout: float
             ) -> dict:
    ctx = mp.get_context("spawn")
    queue, release = ctx.Queue(), ctx.Event()
    proc = ctx.Process(target=_run, args=(n, d, P, ratio, method, seed, queue, release))
    start = time.perf_counter()
    proc.start()
    result, peak = None, None
    while time.perf_counter() - start < timeout:
        try:
            result = queue.get(timeout=0.5)
            break
        except Exception:  # noqa: BLE001 - queue.Empty: keep waiting while the child lives
            peak = _peak_mb(proc.pid) or peak
            if not proc.is_alive():
                break
    peak = _peak_mb(proc.pid) or peak
    release.set()
    if result is None:
        proc.terminate()
        proc.join()
        return {"finished": False, "seconds": time.perf_counter() - start, "peak_mb": peak,
                "exitcode": proc.exitcode}
    proc.join()
    result.update(finished=True, peak_mb=peak or result["rusage_mb"])
    return result


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _fmt(value, spec: str, missing: str = "—") -> str:
    return missing if value is None else format(value, spec)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["500,10,200", "2000,20,500"],
                        help="n,d,P triples (default: 500,10,200 2000,20,500)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--lam-ratio", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true",
                        help="skip the declarative IPM at sizes with n ≥ 2000")
    parser.add_argument("--methods", nargs="+", default=["ipm", "fast"],
                        choices=["ipm", "fast"])
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="seconds after which a run is stopped and reported unfinished")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "benchmarks_relu.md")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the output file instead of appending a section")
    args = parser.parse_args(argv)

    sizes = [tuple(int(v) for v in s.split(",")) for s in args.sizes]
    rows = []
    base = run_once(*sizes[0], args.lam_ratio, "none", args.seed, args.timeout)
    args.baseline_mb = base["peak_mb"]
    for n, d, P in sizes:
        runs: dict[str, list[dict]] = {}
        for method in args.methods:
            if method == "ipm" and args.quick and n >= 2000:
                continue
            runs[method] = []
            for r in range(args.repeats):
                res = run_once(n, d, P, args.lam_ratio, method, args.seed, args.timeout)
                runs[method].append(res)
                state = (f"{res['seconds']:.2f} s, gap {res['relative_gap']:.1e}"
                         if res["finished"] else f"stopped after {res['seconds']:.0f} s")
                print(f"({n}, {d}, {P}) {method:4s} run {r + 1}/{args.repeats}: {state}, "
                      f"peak {_fmt(res['peak_mb'], '.0f')} MB", flush=True)
                if not res["finished"]:
                    break  # a run that times out is not repeated
        shas = {x["sha"] for rs in runs.values() for x in rs if x["finished"]}
        assert len(shas) <= 1, "runs saw different data"
        summary = {}
        for method, rs in runs.items():
            done = [x for x in rs if x["finished"]]
            summary[method] = {
                "runs": len(rs), "finished": len(done),
                "seconds": _median([x["seconds"] for x in done]),
                "gap": _median([x["relative_gap"] for x in done]),
                "max_gap": max((x["relative_gap"] for x in done), default=None),
                "certified": sum(x["certified"] for x in done),
                "objective": _median([x["objective"] for x in done]),
                "peak_mb": max((x["peak_mb"] for x in rs if x["peak_mb"]), default=None),
                "rounds": _median([x["rounds"] for x in done]),
                "blocks": _median([x["blocks"] for x in done]),
                "rows": _median([x["rows"] for x in done]),
                "full_rows": _median([x["full_rows"] for x in done]) or 2 * n * P,
                "stopped_after": None if done else max(x["seconds"] for x in rs),
            }
        ipm, fast = summary.get("ipm"), summary.get("fast")
        speedup = None
        if ipm and fast and fast["seconds"]:
            if ipm["seconds"]:
                speedup = f"{ipm['seconds'] / fast['seconds']:.1f}×"
            elif ipm["stopped_after"]:
                speedup = f"> {ipm['stopped_after'] / fast['seconds']:.0f}×"
        agree = (abs(fast["objective"] - ipm["objective"]) / abs(ipm["objective"])
                 if ipm and fast and ipm["objective"] and fast["objective"] else None)
        rows.append(((n, d, P), summary, speedup, agree))

    lines = _markdown(rows, args)
    print("\n".join(lines))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    mode = "w" if args.overwrite or not args.out.exists() else "a"
    with open(args.out, mode, encoding="utf-8") as fh:
        if mode == "w":
            fh.write("# ReLU program: declarative IPM vs working-set IPM\n\n"
                     "Written by `benchmarks/bench_relu.py` (method in its docstring).\n")
        fh.write("\n" + "\n".join(lines) + "\n")
    print(f"\nwritten to {args.out}")
    return 0


def _markdown(rows, args) -> list[str]:
    import clarabel
    import cvxpy
    import numpy
    import scipy

    try:
        load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        load = "?"
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    out = [
        f"## {_dt.datetime.now().isoformat(timespec='seconds')}",
        "",
        f"`python benchmarks/bench_relu.py {' '.join(sys.argv[1:])}` — {os.cpu_count()} cores "
        f"({cpu}), load average at the end {load}; numpy {numpy.__version__}, scipy "
        f"{scipy.__version__}, cvxpy {cvxpy.__version__}, clarabel {clarabel.__version__}. "
        f"planted_relu teacher, seed {args.seed}, λ = {args.lam_ratio} λ_max, sampled "
        f"patterns; medians of {args.repeats} runs, each in a fresh process. Peak RSS "
        f"includes the interpreter with its imports and the data "
        f"({_fmt(args.baseline_mb, '.0f')} MB without solving).",
        "",
        "| n, d, P | method | runs done | time (s) | relative gap (median / max) | certified "
        "| peak RSS (MB) | rounds | blocks | cone rows kept | speed-up | objectives agree |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (n, d, P), summary, speedup, agree in rows:
        for method, s in summary.items():
            time_s = (_fmt(s["seconds"], ".2f") if s["finished"]
                      else f"> {s['stopped_after']:.0f} (stopped)")
            rows_kept = (f"{s['rows']:.0f} / {s['full_rows']:.0f}"
                         if s["rows"] is not None else f"all {_fmt(s['full_rows'], '.0f')}")
            out.append(
                f"| {n}, {d}, {P} | {method} | {s['finished']}/{s['runs']} | {time_s} | "
                f"{_fmt(s['gap'], '.1e')} / {_fmt(s['max_gap'], '.1e')} | "
                f"{s['certified']}/{s['finished']} | {_fmt(s['peak_mb'], '.0f')} | "
                f"{_fmt(s['rounds'], '.0f')} | {_fmt(s['blocks'], '.0f')} | {rows_kept} | "
                f"{speedup if method == 'fast' and speedup else ''} | "
                f"{_fmt(agree, '.1e') if method == 'fast' and agree is not None else ''} |"
            )
    out.append("")
    out.append("speed-up = median IPM time / median fast time (a lower bound when the IPM "
               "was stopped); objectives agree = |p_fast − p_ipm| / |p_ipm|.")
    return out


if __name__ == "__main__":
    raise SystemExit(main())
