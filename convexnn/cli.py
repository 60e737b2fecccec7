"""The ``convexnn`` command line.

Subcommands: ``solve``, ``verify``, ``list``, ``explain``, ``reproduce``. Exit codes:

===  ====================================================================
0    success (``verify``: the certificate re-derives)
1    verification failed (``verify`` names each failed check)
2    bad input: one line on stderr naming the file, key, shape or value
3    ``solve --require-certified``: the certificate missed its tolerance
4    the solver returned no solution (infeasible, unbounded, failed)
5    internal error (a bug: ``--debug`` shows the traceback to report)
130  interrupted (Ctrl-C); 143: terminated (SIGTERM) — temporary files are removed
===  ====================================================================

``--debug`` shows the traceback of an error. The command runs in a worker thread so that
Ctrl-C and SIGTERM are answered at once, even while a solver is busy in native code.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import sys
import threading
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path

from .errors import (
    InvalidInputError,
    ProblemTooLargeError,
    SolverFailedError,
    SolverUnavailableError,
    VerificationError,
)

__all__ = ["main", "build_parser", "EXIT_OK", "EXIT_INVALID", "EXIT_BAD_INPUT",
           "EXIT_NOT_CERTIFIED", "EXIT_SOLVER_FAILED", "EXIT_INTERNAL"]

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_BAD_INPUT = 2
EXIT_NOT_CERTIFIED = 3
EXIT_SOLVER_FAILED = 4
EXIT_INTERNAL = 5
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143

PROG = "convexnn"


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2) instead of usage + error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"{PROG}: error: {message} (see {self.prog} --help)\n")


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", str(text)).strip()


def _out(text: str = "") -> None:
    """Print a line; a reader that went away (``convexnn verify DIR | head``) silences the
    rest of the output but not the command, whose exit code stays its own."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        with contextlib.suppress(OSError, ValueError):
            os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _table(rows: Sequence[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)


# ---------------------------------------------------------------------------
# solve
# ---------------------------------------------------------------------------


def _spec_path(arg: str) -> Path:
    from .spec import find_problem

    p = Path(arg)
    if not p.exists() and p.suffix == "":
        bundled = find_problem(arg)
        if bundled is not None:
            return bundled
    return p


def _progress_mode(args: argparse.Namespace) -> str:
    return "quiet" if args.quiet else "verbose" if args.verbose else "auto"


def _cmd_solve(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from .files import CERTIFICATE_FILE, check_output_dir
    from .problems import solve_spec
    from .report import describe, verify_command
    from .results import save
    from .solvers import resolve_solver
    from .spec import load_spec

    spec = load_spec(_spec_path(args.spec))
    if args.solver or args.method:  # the spec recorded with the result is what ran
        spec = dataclasses.replace(spec, solver=dataclasses.replace(
            spec.solver, name=args.solver or spec.solver.name,
            method=args.method or spec.solver.method))
    out = check_output_dir(Path(args.out) if args.out else Path("results") / spec.name)
    sol, ds = solve_spec(spec, uci_root=args.uci_root, verbose=args.verbose,
                         progress=_progress_mode(args))
    save(sol, out, ds, spec=spec)
    rec = json.loads((out / CERTIFICATE_FILE).read_text(encoding="utf-8"))
    cert = sol.certificate
    verdict = ("CERTIFIED" if cert.certified else "NOT CERTIFIED") + (
        " — global optimum (all patterns)" if cert.scope == "all" and cert.certified else
        " — optimal among the sampled patterns" if cert.certified else "")
    rows = [("problem", f"{spec.name} ({spec.path})"), *describe(rec),
            ("certificate", verdict + (f"; failed: {list(cert.failed)}" if cert.failed else "")),
            ("saved", f"{out}/ (certificate.json, solution.npz, summary.md)"),
            ("verify with", verify_command(rec, str(out)))]
    requested = resolve_solver(spec.solver.name)
    if requested not in str(sol.solver):
        rows.insert(-2, ("note", f"the requested solver {requested} was not used: method "
                                 f"{sol.method!r} solved this in {sol.solver}"))
    _out(_table(rows))
    if args.require_certified and not cert.certified:
        print(f"{PROG}: not certified: relative gap {cert.relative_gap:.3e} > tolerance "
              f"{cert.tolerance:.0e}" + (f", failed checks {list(cert.failed)}"
                                         if cert.failed else "") + " (--require-certified)",
              file=sys.stderr)
        return EXIT_NOT_CERTIFIED
    return EXIT_OK


# ---------------------------------------------------------------------------
# verify
# ---------------------------------------------------------------------------


def _cmd_verify(args: argparse.Namespace) -> int:
    from .spec import load_spec
    from .verification import verify

    spec = load_spec(_spec_path(args.spec)) if args.spec else None
    result = verify(args.dir, spec=spec, uci_root=args.uci_root, data_root=args.data_root,
                    tolerance=args.tolerance)
    _out(str(result))
    if not result.valid:
        details = "; ".join(f"{c.name}: {c.detail}" for c in result.checks if not c.ok)
        print(f"{PROG}: verification failed: {_one_line(details)}", file=sys.stderr)
        return EXIT_INVALID
    return EXIT_OK


# ---------------------------------------------------------------------------
# list
# ---------------------------------------------------------------------------


def _cmd_list(args: argparse.Namespace) -> int:
    import tomllib

    from .data import list_uci, uci_root
    from .formulations import REGISTRY
    from .reproduce import REPRODUCTIONS
    from .solvers import (
        CERTIFYING_SOLVERS,
        DEFAULT_SOLVER,
        available_solvers,
        factorisation,
        mosek_licensed,
    )
    from .spec import PROBLEMS_DIR, bundled_problems

    _out("Formulations (convexnn explain NAME):")
    _out(_table([(name, f"{f.title}  [{f.reg_name}; methods {', '.join(f.methods)}]")
                 for name, f in sorted(REGISTRY.items())]))
    _out("\nSolvers (installed conic solvers):")
    rows = []
    for s in available_solvers():
        note = "default, " if s == DEFAULT_SOLVER else ""
        note += ("interior point, certifies" if s in CERTIFYING_SOLVERS else
                 "usable; the numpy certificate decides whether an answer is certified")
        if s == "CLARABEL":
            names = {"mkl": "MKL Pardiso", None: "qdldl", "faer": "faer"}
            one, many = (names[factorisation(c)] for c in (1, 2))
            note += (f"; KKT systems: {one}" if one == many else
                     f"; KKT systems: {one} (one output), {many} (gated ReLU, several)")
            if many != "MKL Pardiso":
                note += " (Pardiso for gated ReLU with several outputs: " \
                        "pip install 'convexnn[mkl]')"
        if s == "MOSEK":
            ok, why = mosek_licensed()
            note = "licensed, interior point, certifies" if ok else f"NOT usable: {why}"
        rows.append((s.lower(), note))
    if "MOSEK" not in available_solvers():
        rows.append(("mosek", "not installed (pip install 'convexnn[mosek]' + a licence file)"))
    _out(_table(rows))
    problems = bundled_problems()
    _out(f"\nBundled problems ({PROBLEMS_DIR}; convexnn solve NAME):")
    if not problems:
        _out("  none found (the problems/ folder ships with the source checkout)")
    else:
        rows = []
        for name, (path, first) in problems.items():
            try:
                form = tomllib.loads(path.read_text(encoding="utf-8"))["model"]["formulation"]
            except (tomllib.TOMLDecodeError, KeyError, TypeError):
                form = "?"
            mark = "" if form in REGISTRY else " (formulation not available)"
            rows.append((name, f"[{form}{mark}] {first}"))
        _out(_table(rows))
    try:
        root = uci_root(args.uci_root)
        uci = f"{root} ({len(list_uci(root))} data sets)"
    except InvalidInputError:
        uci = "not found (--uci-root PATH or CONVEXNN_UCI=PATH; see the README)"
    _out(f"\nUCI collection: {uci}")
    _out("\nResult sets (convexnn reproduce NAME):")
    _out(_table([(r.name, r.description) for r in REPRODUCTIONS.values()]))
    return EXIT_OK


# ---------------------------------------------------------------------------
# explain
# ---------------------------------------------------------------------------


def _cmd_explain(args: argparse.Namespace) -> int:
    from .explain import explain

    fmt = "latex" if args.latex else "markdown" if args.markdown else "text"
    _out(explain(args.formulation, fmt).rstrip("\n"))
    return EXIT_OK


# ---------------------------------------------------------------------------
# reproduce
# ---------------------------------------------------------------------------


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from .reproduce import REPRODUCTIONS, reproduce

    if args.list or args.name is None:
        if args.name is None and not args.list:
            raise InvalidInputError("name a result set (convexnn reproduce --list shows them).")
        _out(_table([(r.name, r.description) for r in REPRODUCTIONS.values()]))
        return EXIT_OK
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()] \
        if args.datasets else None
    path, notes = reproduce(args.name, args.out, uci_root=args.uci_root, datasets=datasets,
                            quick=args.quick, scheduler=args.scheduler, workers=args.workers)
    _out(f"{args.name}: wrote {path}/ — " + ", ".join(notes.get("files", []))
         + " (and reproduce.json: what ran, with which version, how long)")
    if "figures" in notes:
        _out(f"  figures {notes['figures']}")
    if notes.get("skipped"):
        _out(f"  SKIPPED: {', '.join(notes['skipped'])} (see the note column of the table)")
    return EXIT_OK


# ---------------------------------------------------------------------------
# sweep
# ---------------------------------------------------------------------------


def _cmd_sweep(args: argparse.Namespace) -> int:
    from .sweeps.run import sweep

    result = sweep(args.spec, args.out, scheduler=args.scheduler, workers=args.workers,
                   force=args.force, retry_failed=args.retry_failed, uci_root=args.uci_root,
                   log=_out)
    rows = []
    for m in result.models.to_dict("records"):
        if m["datasets"]:
            rows.append((str(m["model"]), f"mean test {m['metric']} {m['mean_test']:.4g} over "
                                          f"{m['datasets']} data set(s); certified "
                                          f"{m['certified']:.0%} at the selected values"))
    _out(_table(rows + [
        ("tasks", f"{result.tasks}: {result.ran} run now, {result.skipped} done before, "
                  f"{result.failed} failed"),
        ("time", f"{result.seconds:.1f} s on {result.where}"),
        ("saved", f"{result.out}/ ({', '.join(result.files)}, runs/)"),
    ]))
    if result.failed:
        print(f"{PROG}: {result.failed} of {result.tasks} tasks failed; their one-line errors "
              f"are in {result.out}/results.csv (column error); --retry-failed runs them again",
              file=sys.stderr)
    return EXIT_OK


# ---------------------------------------------------------------------------
# parser and entry point
# ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks of errors")
    parser = _Parser(
        prog=PROG,
        description="Certified global optima of two-layer (gated) ReLU networks through "
                    "their exact convex reformulations.",
        epilog="Exit codes: 0 ok, 1 verification failed, 2 bad input, 3 not certified "
               "(--require-certified), 4 solver returned no solution.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    uci = argparse.ArgumentParser(add_help=False)
    uci.add_argument("--uci-root", metavar="PATH", default=None,
                     help="folder of the UCI collection (default: $CONVEXNN_UCI, then "
                          "uci/ in the per-user data folder, ~/.local/share/convexnn/uci "
                          "on Linux)")

    p = sub.add_parser("solve", parents=[common, uci], help="solve a TOML problem spec",
                       description="Solve a problem spec, certify it in numpy and save "
                                   "certificate.json, solution.npz and summary.md.")
    p.add_argument("spec", metavar="SPEC.toml", help="problem spec (or a bundled name)")
    p.add_argument("--out", metavar="DIR", help="output directory (default results/<stem>/)")
    p.add_argument("--solver", metavar="NAME", help="override [solver] name")
    p.add_argument("--method", metavar="METHOD",
                   help="override [solver] method (auto, ipm, fast, …: convexnn list)")
    p.add_argument("--require-certified", action="store_true",
                   help="exit 3 when the certificate misses its tolerance")
    p.add_argument("--verbose", action="store_true",
                   help="show the solver's output and a progress line per update")
    p.add_argument("--quiet", action="store_true",
                   help="no progress line (by default one is shown on a terminal)")
    p.set_defaults(func=_cmd_solve)

    p = sub.add_parser("verify", parents=[common, uci], help="re-derive a saved certificate",
                       description="Re-derive the certificate in DIR from its arrays and the "
                                   "data alone (no solver). Exit 0 valid, 1 invalid.")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--spec", metavar="SPEC.toml",
                   help="take the data from this spec instead of the recorded one")
    p.add_argument("--data-root", metavar="FOLDER",
                   help="also read data files of the recorded spec inside FOLDER (by default "
                        "only inside the result folder)")
    p.add_argument("--tolerance", metavar="TOL", type=float,
                   help="the loosest tolerance accepted (default 1e-6)")
    p.set_defaults(func=_cmd_verify)

    p = sub.add_parser("list", parents=[common, uci],
                       help="formulations, solvers, bundled problems")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("explain", parents=[common], help="the math and a tiny worked instance",
                       description="Show a formulation's mathematics, its cvxpy problems on a "
                                   "tiny instance with the values they solve to, the solution "
                                   "and its numpy certificate (plain text by default).")
    p.add_argument("formulation", metavar="FORMULATION")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--markdown", action="store_true", help="print Markdown (with $$ math)")
    fmt.add_argument("--latex", action="store_true",
                     help="print a LaTeX fragment for lecture notes (needs amsmath)")
    p.set_defaults(func=_cmd_explain)

    p = sub.add_parser("reproduce", parents=[common, uci], help="regenerate a result set",
                       description="Regenerate results/NAME/ (tables as CSV and Markdown, "
                                   "figures as PNG when matplotlib is installed).")
    p.add_argument("name", metavar="NAME", nargs="?")
    p.add_argument("--list", action="store_true", help="name the result sets")
    p.add_argument("--out", metavar="DIR", help="output directory (default results/NAME/)")
    p.add_argument("--quick", action="store_true",
                   help="the small version of the set (minutes; used by the tests and CI)")
    p.add_argument("--datasets", metavar="A,B,C",
                   help="UCI data sets to use (default: every one found)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="sweep engine: 'processes' (default: a local process pool), "
                        "'local' (a Dask LocalCluster), 'serial' or a Dask scheduler "
                        "address tcp://HOST:8786")
    p.add_argument("--workers", metavar="N", type=int, help="sweep engine: local workers")
    p.set_defaults(func=_cmd_reproduce)

    p = sub.add_parser("sweep", parents=[common, uci], help="run data sets × models × a grid",
                       description="Run every task of a sweep spec that has no record in DIR "
                                   "yet (locally, or on a Dask cluster), then write "
                                   "results.csv and the model-selection summary.")
    p.add_argument("spec", metavar="SWEEP.toml", help="sweep spec (or a bundled name)")
    p.add_argument("--out", metavar="DIR", help="sweep folder (default results/<stem>/)")
    p.add_argument("--scheduler", metavar="ADDRESS|local|processes", default="processes",
                   help="processes: a local process pool (default); local: a Dask "
                        "LocalCluster on 127.0.0.1; tcp://HOST:8786: a running Dask scheduler")
    p.add_argument("--workers", metavar="N", type=int,
                   help="local worker processes (default: the available cores)")
    p.add_argument("--force", action="store_true",
                   help="accept a spec that differs from DIR/sweep.json")
    p.add_argument("--retry-failed", action="store_true",
                   help="run the tasks recorded as failed again")
    p.set_defaults(func=_cmd_sweep)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"{PROG}: warning: {_one_line(message)}", file=sys.stderr, flush=True)


class _Terminated(BaseException):
    """SIGTERM arrived: end like Ctrl-C (temporary files removed), exit 143."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Terminated()


def _run(func, args: argparse.Namespace) -> int:
    """Run a command in a worker thread and wait for it in the main thread, where signals
    are handled: a solver busy in native code does not delay Ctrl-C or SIGTERM."""
    outcome: dict[str, object] = {}

    def work() -> None:
        try:
            outcome["code"] = func(args)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            outcome["error"] = exc

    worker = threading.Thread(target=work, name="convexnn-command", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.05)
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return int(outcome["code"])  # type: ignore[call-overload]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (see the module docstring)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_BAD_INPUT
    debug = getattr(args, "debug", False)
    if getattr(args, "command", None) is None:
        parser.print_help()
        return EXIT_BAD_INPUT

    def fail(code: int, what: str, exc: BaseException) -> int:
        if debug:
            traceback.print_exception(exc)
        print(f"{PROG}: {what}: {_one_line(exc)}", file=sys.stderr, flush=True)
        return code

    def interrupted(code: int, what: str) -> int:
        from .files import remove_active

        remove_active()
        print(f"{PROG}: {what}", file=sys.stderr, flush=True)
        return code

    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if in_main else None
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            try:
                return _run(args.func, args) if in_main else int(args.func(args))
            except (InvalidInputError, SolverUnavailableError, ProblemTooLargeError) as exc:
                return fail(EXIT_BAD_INPUT, "error", exc)
            except MemoryError as exc:
                return fail(EXIT_BAD_INPUT, "error", MemoryError(
                    f"out of memory ({exc or 'an allocation failed'}); use fewer patterns or "
                    "less data, or set $CONVEXNN_MEMORY_LIMIT so that sizes are refused "
                    "before solving"))
            except SolverFailedError as exc:
                return fail(EXIT_SOLVER_FAILED, "solver failed", exc)
            except VerificationError as exc:
                return fail(EXIT_INVALID, "verification failed", exc)
            except BrokenPipeError:
                return EXIT_OK
            except OSError as exc:  # unwritable --out, full disk, …
                name = f" {exc.filename}" if getattr(exc, "filename", None) else ""
                return fail(EXIT_BAD_INPUT, f"error{name}", exc)
            except KeyboardInterrupt:
                return interrupted(EXIT_INTERRUPTED, "interrupted")
            except _Terminated:
                return interrupted(EXIT_TERMINATED, "terminated")
            except Exception as exc:  # noqa: BLE001 - a bug: one line, the code says so
                return fail(EXIT_INTERNAL, f"internal error ({type(exc).__name__}; rerun "
                                           "with --debug and report it)", exc)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
