"""Run a sweep: ``convexnn.sweep(spec, out, scheduler=...)``.

Where the tasks run (``scheduler``):

* ``"processes"`` (default) — a pool of ``workers`` local processes
  (:class:`concurrent.futures.ProcessPoolExecutor`, started with ``spawn``): nothing to
  start or configure, no network port;
* ``"local"`` — a Dask ``LocalCluster`` on 127.0.0.1 with ``workers`` single-threaded
  worker processes: the cluster code path on one machine;
* an address (``"tcp://host:8786"``) — the workers of a running Dask scheduler;
* ``"serial"`` — one task after the other in this process (debugging).

Every worker runs BLAS on one thread. The client plans the tasks
(:func:`convexnn.sweeps.tasks.plan_sweep`), skips those whose record is in
``DIR/runs/``, submits the others, and writes each record as its result arrives;
at the end it rebuilds the tables from the records (:mod:`convexnn.sweeps.results`).
Stopping a sweep (Ctrl-C, SIGTERM) stops its workers and loses only the tasks in
flight; running it again resumes.
"""

from __future__ import annotations

import atexit
import concurrent.futures.process  # noqa: F401 - its exit handler must run after ours
import concurrent.futures.thread  # noqa: F401 - likewise
import contextlib
import os
import re
import sys
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError
from .results import (
    RUNS_DIR,
    build_table,
    check_spec,
    failed_record,
    read_record,
    summarize,
    write_record,
    write_spec,
    write_tables,
)
from .spec import SweepSpec, load_sweep, parse_sweep
from .tasks import Plan, Task, init_worker, one_line, plan_sweep, run_task, worker_version

__all__ = ["sweep", "SweepResult", "SCHEDULERS", "resolve_scheduler"]

SCHEDULERS = ("processes", "local", "serial")
#: A task whose worker process dies this many times is recorded as failed.
MAX_DEATHS = 2
_ADDRESS = re.compile(r"^([a-z][a-z0-9+.-]*://)?[^\s:/]+:\d+/?$")


# ---------------------------------------------------------------------------
# Stopping the workers when the process ends
# ---------------------------------------------------------------------------

_ACTIVE: set[Any] = set()
_THREADS: set[threading.Thread] = set()
_LOCK = threading.Lock()
_STOP = threading.Event()
#: Seconds the ending process waits for a sweep's thread to stop at a safe point.
STOP_WAIT = 10.0


def _abort_active() -> None:
    """The process is ending (Ctrl-C or SIGTERM in the command line, whose command runs in
    another thread): stop the workers of every running sweep, and let the threads running
    sweeps stop at a safe point — not inside native code the interpreter's exit would
    tear down under them."""
    _STOP.set()
    with _LOCK:
        active, threads = list(_ACTIVE), list(_THREADS)
    for backend in active:
        with contextlib.suppress(Exception):
            backend.abort()
    deadline = time.monotonic() + STOP_WAIT
    for thread in threads:
        if thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))


def _check_stop() -> None:
    """Raise KeyboardInterrupt when the process is ending (a safe point of a sweep)."""
    if _STOP.is_set():
        raise KeyboardInterrupt("the process is ending")


# The exit handlers of concurrent.futures wait for every submitted task; this one,
# registered after them, runs before them and stops the workers first.
getattr(threading, "_register_atexit", atexit.register)(_abort_active)


# ---------------------------------------------------------------------------
# Backends: run tasks, hand each record to `deliver`
# ---------------------------------------------------------------------------

Deliver = Callable[[dict[str, Any]], None]


class _Serial:
    label = "serial"

    def __init__(self) -> None:
        self.aborted = False

    def run(self, tasks: list[Task], uci_root: str | None, deliver: Deliver) -> None:
        for task in tasks:
            if self.aborted:
                return
            deliver(run_task(dict(task.spec), uci_root))

    def abort(self) -> None:
        self.aborted = True

    def close(self) -> None:
        pass


class _Processes:
    """A ``spawn`` process pool with at most one task per worker in flight; a worker that
    dies (killed, out of memory, a crash) breaks the pool, which is restarted — a task
    that was running when that happened :data:`MAX_DEATHS` times is recorded as failed."""

    def __init__(self, workers: int):
        self.workers = workers
        self.label = f"processes ({workers} worker{'s' if workers > 1 else ''})"
        self.executor: Any = None
        self.aborted = False

    def _start(self) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.executor = ProcessPoolExecutor(self.workers,
                                            mp_context=multiprocessing.get_context("spawn"),
                                            initializer=init_worker)

    def run(self, tasks: list[Task], uci_root: str | None, deliver: Deliver) -> None:
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        pending, deaths = deque(tasks), Counter()
        for _ in range(MAX_DEATHS * len(tasks) + 1):  # every restart counts a death
            if not pending or self.aborted:
                return
            self._start()
            running: dict[Any, Task] = {}
            broken = False
            executor, ended = self.executor, False
            try:
                while (pending or running) and not broken and not self.aborted:
                    while pending and len(running) < self.workers:
                        task = pending.popleft()
                        running[executor.submit(run_task, dict(task.spec), uci_root)] = task
                    done, _ = wait(running, timeout=0.25, return_when=FIRST_COMPLETED)
                    for fut in done:
                        if self.aborted or fut.cancelled():
                            return
                        exc = fut.exception()
                        if isinstance(exc, BrokenProcessPool):
                            broken = True
                            continue
                        task = running.pop(fut)
                        if exc is not None and not isinstance(exc, Exception):
                            # a signal interrupted the worker (Ctrl-C before it could ignore
                            # it): the task did not finish, which is not its failure
                            pending.appendleft(task)
                            deaths[task.key] += 1
                            if deaths[task.key] >= MAX_DEATHS:
                                pending.popleft()
                                deliver(failed_record(task, "interrupted twice by a signal "
                                                            f"({type(exc).__name__})"))
                            continue
                        deliver(fut.result() if exc is None else failed_record(
                            task, one_line(f"{type(exc).__name__}: {exc}")))
                ended = True
            except RuntimeError:
                if self.aborted:  # the pool was shut down under us: the process is ending
                    return
                raise
            finally:  # an exception (Ctrl-C) kills the workers instead of waiting for them
                self._shutdown(kill=broken or self.aborted or not ended)
            for fut, task in running.items():  # the pool broke under these tasks
                if self.aborted:
                    return
                if fut.done() and not fut.cancelled() and fut.exception() is None:
                    deliver(fut.result())
                    continue
                deaths[task.key] += 1
                if deaths[task.key] >= MAX_DEATHS:
                    deliver(failed_record(task, f"the worker process died {MAX_DEATHS} times "
                                                "while running this task (killed, out of "
                                                "memory, or a crash)"))
                else:
                    pending.appendleft(task)

    def _shutdown(self, kill: bool) -> None:
        ex = self.executor
        if ex is None:
            return
        if kill:
            # Python ≥ 3.14 has terminate_workers(); before, the pool's process table
            for proc in list((getattr(ex, "_processes", None) or {}).values()):
                with contextlib.suppress(Exception):
                    proc.terminate()
        ex.shutdown(wait=not kill, cancel_futures=True)

    def abort(self) -> None:
        self.aborted = True
        self._shutdown(kill=True)

    def close(self) -> None:
        self._shutdown(kill=self.aborted)


class _Dask:
    """Tasks on a Dask cluster: a ``LocalCluster`` on 127.0.0.1 (``address=None``) or the
    scheduler at ``address``."""

    def __init__(self, address: str | None, workers: int | None):
        import logging

        from distributed import Client, LocalCluster

        self.cluster = None
        self.aborted = False
        self.futures: dict[Any, Task] = {}
        if address is None:
            self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1,
                                        processes=True, host="127.0.0.1",
                                        dashboard_address=None, silence_logs=logging.ERROR)
            self.client = Client(self.cluster)
            self.label = "a Dask LocalCluster on 127.0.0.1"
        else:
            try:
                self.client = Client(address, timeout="20s")
            except (OSError, TimeoutError) as exc:
                raise InvalidInputError(f"cannot reach the Dask scheduler at {address} "
                                        f"({one_line(exc)}).") from None
            self.label = f"the Dask scheduler at {address}"
        try:
            self._check_workers(address)
        except BaseException:
            self.close()
            raise

    def _check_workers(self, address: str | None) -> None:
        from .. import __version__

        try:
            self.client.wait_for_workers(1, timeout=60)
        except (TimeoutError, OSError):
            raise InvalidInputError(f"no worker is connected to the Dask scheduler at "
                                    f"{address}; start one with `dask worker {address} "
                                    "--nthreads 1`.") from None
        try:
            versions = self.client.run(worker_version)
        except Exception as exc:  # noqa: BLE001 - the workers cannot import convexnn
            raise InvalidInputError(f"the Dask workers cannot run convexnn "
                                    f"({one_line(exc)}); install it on every worker.") from None
        other = {w: v for w, v in versions.items() if v != __version__}
        if other:
            raise InvalidInputError(f"Dask workers run convexnn {sorted(set(other.values()))} "
                                    f"and this client {__version__}; install one version.")
        self.label += f", {len(versions)} worker{'s' if len(versions) > 1 else ''}"

    def run(self, tasks: list[Task], uci_root: str | None, deliver: Deliver) -> None:
        from distributed import as_completed

        token = uuid.uuid4().hex[:8]
        self.futures = {self.client.submit(run_task, dict(t.spec), uci_root,
                                           key=f"convexnn-sweep-{t.key}-{token}"): t
                        for t in tasks}
        for fut in as_completed(list(self.futures)):
            if self.aborted:
                return
            task = self.futures[fut]
            if fut.status == "finished":
                deliver(fut.result())
            elif fut.status != "cancelled":
                exc = fut.exception()
                why = ("its worker died while running it (KilledWorker: out of memory or a "
                       "crash)" if type(exc).__name__ == "KilledWorker" else
                       f"{type(exc).__name__}: {exc}")
                deliver(failed_record(task, one_line(why)))

    def abort(self) -> None:
        self.aborted = True
        self.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self.futures:
                self.client.cancel(list(self.futures))
        with contextlib.suppress(Exception):
            self.client.close(timeout=10)
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                self.cluster.close(timeout=10)


def resolve_scheduler(scheduler: str, workers: int | None) -> tuple[str, int | None]:
    """Check ``scheduler`` (one of :data:`SCHEDULERS` or an address) and ``workers``;
    returns ``(scheduler, workers)`` with the default number of workers filled in."""
    from ..validation import integer

    if not isinstance(scheduler, str) or (scheduler not in SCHEDULERS
                                          and not _ADDRESS.match(scheduler)):
        raise InvalidInputError(f"scheduler must be one of {list(SCHEDULERS)} or the address "
                                f"of a Dask scheduler (tcp://HOST:8786); got {scheduler!r}.")
    if scheduler not in SCHEDULERS:
        if workers is not None:
            raise InvalidInputError(f"workers applies to local runs; the Dask cluster at "
                                    f"{scheduler} has its own workers.")
        return scheduler, None
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
            else (os.cpu_count() or 1)
    return scheduler, integer(workers, "workers", minimum=1)


def _backend(scheduler: str, workers: int | None) -> Any:
    if scheduler == "serial":
        return _Serial()
    if scheduler == "processes":
        return _Processes(int(workers or 1))
    return _Dask(None if scheduler == "local" else scheduler, workers)


# ---------------------------------------------------------------------------
# The sweep
# ---------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class SweepResult:
    """What a sweep did and its tables.

    Attributes
    ----------
    out : Path
        The sweep folder.
    table, summary, models : pandas.DataFrame
        ``results.csv`` (one row per data set × model × fold × grid value), the selected
        grid value per data set and model (``summary.csv``) and the means per model
        (``summary_models.csv``).
    tasks, ran, skipped, failed : int
        Tasks of the spec; run now; finished before and skipped; recorded as failed.
    seconds : float
        Wall time of this run (planning included).
    where : str
        The scheduler and its workers.
    files : tuple of str
        The files written in ``out``.
    """

    out: Path
    table: Any
    summary: Any
    models: Any
    tasks: int
    ran: int
    skipped: int
    failed: int
    seconds: float
    where: str
    files: tuple[str, ...]

    @property
    def complete(self) -> bool:
        """Every task of the spec has a record (failed ones included)."""
        return self.ran + self.skipped == self.tasks

    def __repr__(self) -> str:
        return (f"SweepResult({self.out}: {self.tasks} tasks — {self.ran} run now, "
                f"{self.skipped} done before, {self.failed} failed; {self.seconds:.1f} s on "
                f"{self.where})")


def _as_spec(spec: Any) -> SweepSpec:
    if isinstance(spec, SweepSpec):
        return spec
    if isinstance(spec, Mapping):
        return parse_sweep(spec, base_dir=Path.cwd())
    if isinstance(spec, (str, os.PathLike)):
        return load_sweep(spec)
    raise InvalidInputError(f"spec must be a SweepSpec, a path to a TOML sweep spec or a "
                            f"mapping of its sections; got {type(spec).__name__}.")


def _protocol_text(plan: Plan) -> str:
    p = plan.spec.protocol
    if p.kind == "uci":
        return ("Protocol `uci`: the grid value is chosen by the mean validation score on "
                "fold 0 (the two halves of `conxuntos.dat`); the test score is the mean over "
                "folds 1–4 (the pairs of `conxuntos_kfold.dat`).")
    return (f"Protocol `kfold`: {p.folds} folds (seed {p.seed}) of the points outside a "
            f"held-out test set of {p.test_fraction:g} of them; the grid value is chosen by the "
            "mean validation score over the folds, the test score is the mean over the folds.")


def sweep(
    spec: SweepSpec | str | os.PathLike | Mapping[str, Any],
    out: str | os.PathLike | None = None,
    *,
    scheduler: str = "processes",
    workers: int | None = None,
    force: bool = False,
    retry_failed: bool = False,
    uci_root: str | os.PathLike | None = None,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> SweepResult:
    """Run every task of a sweep spec that has no record yet, then rebuild its tables.

    Parameters
    ----------
    spec : SweepSpec, path or mapping
        A sweep spec (:mod:`convexnn.sweeps.spec`): a TOML file, a bundled name
        (``"uci-small"``), or the parsed sections as a dict.
    out : path, optional
        The sweep folder (default ``results/<spec name>``).
    scheduler : str
        ``"processes"`` (default: a local process pool), ``"local"`` (a Dask
        LocalCluster on 127.0.0.1), ``"serial"`` (this process), or the address of a
        Dask scheduler (``"tcp://host:8786"``).
    workers : int, optional
        Local worker processes (default: the cores this process may use).
    force : bool
        Accept a spec that differs from the one in ``out/sweep.json``.
    retry_failed : bool
        Run again the tasks recorded as failed.
    uci_root : path, optional
        The UCI collection (default ``$CONVEXNN_UCI``).
    progress : bool, optional
        Show a progress bar on stderr (default: when stderr is a terminal).
    log : callable, optional
        Receives one line before the tasks run (what will run where).

    Returns
    -------
    SweepResult
    """
    with _LOCK:
        _THREADS.add(threading.current_thread())
    try:
        return _sweep(spec, out, scheduler=scheduler, workers=workers, force=force,
                      retry_failed=retry_failed, uci_root=uci_root, progress=progress, log=log)
    finally:
        with _LOCK:
            _THREADS.discard(threading.current_thread())


def _sweep(spec: Any, out: Any, *, scheduler: str, workers: int | None, force: bool,
           retry_failed: bool, uci_root: Any, progress: bool | None,
           log: Callable[[str], None] | None) -> SweepResult:
    from .. import __version__
    from ..files import check_output_dir

    start = time.perf_counter()
    spec = _as_spec(spec)
    scheduler, workers = resolve_scheduler(scheduler, workers)
    out = check_output_dir(Path("results") / spec.name if out is None else out)
    rewrite = check_spec(out, spec.as_dict(), bool(force))
    plan = plan_sweep(spec, uci_root=uci_root, check=_check_stop)
    # local workers read the UCI collection where this process found it; a cluster's
    # workers where they are told (uci_root) or where they look themselves
    root = None if uci_root is None else str(Path(uci_root).expanduser().resolve())
    if scheduler in SCHEDULERS and root is None:
        from ..data import uci_root as find_uci

        with contextlib.suppress(InvalidInputError):
            root = str(find_uci())
    (out / RUNS_DIR).mkdir(parents=True, exist_ok=True)
    if rewrite:
        write_spec(out, spec.as_dict(), __version__)
    done = []
    for task in plan.tasks:
        rec = read_record(out, task)
        if rec is not None and (rec["status"] == "ok" or not retry_failed):
            done.append(task.key)
    skip = set(done)
    todo = [t for t in plan.tasks if t.key not in skip]
    backend = _backend(scheduler, workers) if todo else None
    where = backend.label if backend is not None else "nothing to run"
    if log is not None:
        log(f"{spec.name}: {len(plan.datasets)} data sets × {len(spec.models)} models → "
            f"{len(plan.tasks)} tasks ({len(skip)} done before, {len(todo)} to run) on "
            f"{where} → {out}")
    ran = _run(backend, todo, plan, out, root, progress, len(skip))
    _check_stop()
    table = build_table(plan, out)
    per, models = summarize(table)
    files = write_tables(out, table, per, models, title=spec.name,
                         protocol=_protocol_text(plan))
    failed = int(table.loc[table["status"] == "failed", "key"].nunique())
    return SweepResult(out, table, per, models, len(plan.tasks), ran, len(skip), failed,
                       time.perf_counter() - start, where, tuple(files))


def _run(backend: Any, todo: list[Task], plan: Plan, out: Path, root: str | None,
         progress: bool | None, skipped: int) -> int:
    """Run ``todo`` on ``backend`` with a progress bar; returns the tasks finished."""
    if backend is None:
        return 0
    from tqdm import tqdm

    run_id = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    show = sys.stderr.isatty() if progress is None else bool(progress)
    bar = tqdm(total=len(plan.tasks), initial=skipped, unit="task", desc=plan.spec.name,
               disable=not show, file=sys.stderr, dynamic_ncols=True, smoothing=0.1)
    count = {"ran": 0, "failed": 0}

    def deliver(record: dict[str, Any]) -> None:
        write_record(out, record, run_id, datetime.now(UTC).isoformat())
        count["ran"] += 1
        count["failed"] += record.get("status") == "failed"
        bar.update(1)
        bar.set_postfix(failed=count["failed"], refresh=False)

    with _LOCK:
        _ACTIVE.add(backend)
    try:
        backend.run(todo, root, deliver)
    except BaseException:
        backend.abort()  # Ctrl-C in this thread, or an error: stop the workers now
        raise
    else:
        backend.close()
    finally:
        with _LOCK:
            _ACTIVE.discard(backend)
        bar.close()
    return count["ran"]
