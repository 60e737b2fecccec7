"""Solver discovery, invocation and the one place where solver statuses are mapped.

Solvers are discovered with ``cvxpy.installed_solvers()``, never a hard-coded list.
Clarabel (embedded, no licence) is the default; MOSEK is used when licensed; SCS
and others may be used but their answers are only as good as the numpy
certificate says. ``optimal_inaccurate`` is a warning, never a success or a crash:
the certificate decides.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from functools import cache
from typing import Any

import cvxpy as cp

from .errors import (
    InfeasibleError,
    InvalidInputError,
    SolverFailedError,
    SolverUnavailableError,
    UnboundedError,
)

__all__ = [
    "CERTIFYING_SOLVERS",
    "DEFAULT_SOLVER",
    "InaccurateSolutionWarning",
    "SolverRun",
    "available_solvers",
    "faer_available",
    "factorisation",
    "pardiso_available",
    "resolve_solver",
    "run_problem",
    "map_status",
    "mosek_licensed",
]

DEFAULT_SOLVER = "CLARABEL"
#: cvxpy's canonicalisation backend: its SciPy backend builds the conic data of the large
#: sparse programs here about twice as fast as the default C++ one (gated ReLU
#: 750×9×200×10, 6.5 million non-zeros: 3.2 s against 6.2 s).
CANON_BACKEND = "SCIPY"
#: Interior-point solvers whose answers reach certifiable accuracy.
CERTIFYING_SOLVERS = ("CLARABEL", "MOSEK")
#: Conic solvers able to handle the second-order-cone programs of convexnn.
CONIC_SOLVERS = ("CLARABEL", "MOSEK", "SCS", "ECOS", "CVXOPT", "GUROBI", "COPT")


class InaccurateSolutionWarning(UserWarning):
    """The solver returned ``optimal_inaccurate``; the numpy certificate decides."""


@dataclass(frozen=True)
class SolverRun:
    """What happened in one solver call."""

    solver: str
    status: str
    seconds: float
    iterations: int | None
    solver_objective: float | None
    compile_s: float = 0.0
    #: Clarabel's KKT factorisation (``"faer"``, ``"mkl"``, ``"qdldl"``); None otherwise.
    factorisation: str | None = None

    @property
    def solve_s(self) -> float:
        """Seconds in the solver itself (``seconds`` minus cvxpy's compilation)."""
        return max(self.seconds - self.compile_s, 0.0)


def available_solvers() -> list[str]:
    """Installed cvxpy solvers able to handle convexnn's cone programs.

    Returns
    -------
    list of str
        cvxpy's names (e.g. ``"CLARABEL"``, ``"MOSEK"``, ``"SCS"``), in order of
        preference. Clarabel is installed with convexnn and certifies everything; MOSEK
        is listed when installed, whether or not it has a licence (``convexnn list``
        says which).
    """
    installed = set(cp.installed_solvers())
    return [s for s in CONIC_SOLVERS if s in installed]


@cache
def mosek_licensed() -> tuple[bool, str]:
    """Whether MOSEK can check out a licence, and the reason when it cannot."""
    try:
        import mosek
    except ImportError:
        return False, "the mosek package is not installed (pip install 'convexnn[mosek]')"
    try:
        with mosek.Env() as env:
            env.checkoutlicense(mosek.feature.pts)
    except mosek.Error as exc:
        code = getattr(exc, "errno", None)
        label = str(getattr(code, "name", code)).split(".")[-1]
        number = int(code) if code is not None else "?"
        detail = (getattr(exc, "msg", "") or "").strip()
        missing = "missing" if "missing" in label else "invalid"
        return False, (f"no usable MOSEK licence (licence {missing}: {label}, code {number})"
                       + (f": {detail}" if detail else ""))
    return True, ""


def resolve_solver(name: str | None) -> str:
    """Canonical cvxpy name of an installed, usable solver.

    Raises
    ------
    SolverUnavailableError
        When the solver is not installed, or is MOSEK without a licence.
    """
    if name is None:
        name = DEFAULT_SOLVER
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError(f"solver must be a solver name such as 'clarabel'; got {name!r}.")
    canon = name.strip().upper()
    installed = available_solvers()
    if canon not in installed:
        raise SolverUnavailableError(
            f"solver {name!r} is not installed; installed conic solvers: "
            f"{[s.lower() for s in installed]}. Use solver='clarabel' (the default)."
        )
    if canon == "MOSEK":
        ok, why = mosek_licensed()
        if not ok:
            raise SolverUnavailableError(
                f"MOSEK is installed but cannot run: {why}. Put a licence file at "
                "~/mosek/mosek.lic (or set MOSEKLM_LICENSE_FILE), or use solver='clarabel'."
            )
    return canon


#: Files of a pip-installed MKL that its runtime loads from its own folder.
_MKL_PARTS = ("libmkl_", "libiomp", "libtbb", "libhwloc", "libtcm", "libumf")

#: A 2 × 2 program with a cone, solved by Pardiso in a child process (MKL ends a process
#: that cannot load one of its parts, so the first load is tried away from the caller).
_PARDISO_PROBE = """
import clarabel, numpy as np, scipy.sparse as sp
s = clarabel.DefaultSettings(); s.verbose = False; s.direct_solve_method = "mkl"
r = clarabel.DefaultSolver(sp.csc_matrix(np.eye(2)), np.ones(2), sp.csc_matrix(-np.eye(2)),
                           np.zeros(2), [clarabel.SecondOrderConeT(2)], s).solve()
print(str(r.status).split(".")[-1])
"""


def _mkl_runtime() -> str | None:
    """Path of the versioned ``libmkl_rt.so.N`` that ``pip install mkl`` puts in
    ``<prefix>/lib``, when no unversioned ``libmkl_rt.so`` is there (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    lib = os.path.join(sys.prefix, "lib")
    try:
        names = sorted(f for f in os.listdir(lib) if f.startswith("libmkl_rt.so"))
    except OSError:
        return None
    if not names or "libmkl_rt.so" in names:
        return None
    return os.path.join(lib, names[-1])


def _mkl_folder(runtime: str) -> str:
    """A temporary folder (removed at exit) of links to the MKL files next to ``runtime``,
    with ``libmkl_rt.so`` among them: the name Clarabel looks for."""
    lib = os.path.dirname(runtime)
    folder = tempfile.mkdtemp(prefix="convexnn-mkl-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    for name in os.listdir(lib):
        if name.startswith(_MKL_PARTS):
            os.symlink(os.path.join(lib, name), os.path.join(folder, name))
    os.symlink(runtime, os.path.join(folder, "libmkl_rt.so"))
    return folder


def _clarabel_factor_loads(method: str) -> bool:
    """Whether Clarabel accepts ``direct_solve_method=method`` (a 1 × 1 problem)."""
    import clarabel
    import numpy as np
    import scipy.sparse as sp

    try:
        settings = clarabel.DefaultSettings()
        settings.verbose = False
        settings.direct_solve_method = method
        clarabel.DefaultSolver(sp.csc_matrix(np.eye(1)), np.zeros(1), sp.csc_matrix((0, 1)),
                               np.zeros(0), [], settings)
    except Exception:  # noqa: BLE001 - any failure means: this factorisation cannot be used
        return False
    return True


@cache
def faer_available() -> bool:
    """Whether this Clarabel build has the supernodal (multi-threaded) ``faer`` solver.

    Clarabel's default ``qdldl`` factors the KKT system column by column; ``faer`` does it
    by dense supernodes. Measured on gated-ReLU programs (``method="ipm"``, same
    iterations and certificates): 2.8× faster at n×d×P = 1000×10×200, 10× at
    2000×20×100, and more than 9× with 10 outputs (300×9×100: over 300 s → 33 s).
    """
    return _clarabel_factor_loads("faer")


@cache
def pardiso_available() -> bool:
    """Whether Clarabel can factor its KKT systems with Intel MKL's Pardiso (``"mkl"``).

    Clarabel loads Pardiso at run time from ``libmkl_rt.so`` (on the library path, or
    where ``MKL_PARDISO_PATH`` or ``MKLROOT`` point). ``pip install 'convexnn[mkl]'``
    installs it from PyPI as ``<prefix>/lib/libmkl_rt.so.N``, which Clarabel does not find
    by that name; then links to MKL's files, ``libmkl_rt.so`` among them, are made in a
    temporary folder (removed at exit) and ``MKL_PARDISO_PATH`` points there, once a child
    process has solved a small program with them.

    Pardiso orders the KKT system by nested dissection, which keeps the outputs of a
    multi-output program apart: the gated-ReLU program of 750×9×200 with 10 outputs
    takes 25 s in Clarabel with Pardiso against 376 s with ``faer`` (whose minimum-degree
    ordering couples all n·c residuals into one dense block).
    """
    runtime = None if ("MKL_PARDISO_PATH" in os.environ or "MKLROOT" in os.environ) \
        else _mkl_runtime()
    if runtime is None:
        return _loaded_mkl()
    folder = _mkl_folder(runtime)
    env = {**os.environ, "MKL_PARDISO_PATH": folder}
    try:
        probe = subprocess.run([sys.executable, "-c", _PARDISO_PROBE], env=env, timeout=120,
                               capture_output=True, text=True, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    if probe.returncode != 0 or probe.stdout.strip() != "Solved":
        return False
    # Clarabel reads MKL_PARDISO_PATH once, when it first loads Pardiso; MKL loads its
    # parts from the folder later on, so both stay for the life of the process.
    os.environ["MKL_PARDISO_PATH"] = folder
    return _loaded_mkl()


def _loaded_mkl() -> bool:
    """Load Pardiso into this process; MKL then counts among the BLAS libraries that
    :class:`~convexnn.threads.blas_threads` limits, so its library scan starts afresh."""
    from .threads import blas_threads

    loaded = _clarabel_factor_loads("mkl")
    blas_threads._controller = None
    return loaded


def factorisation(outputs: int = 1) -> str | None:
    """The KKT factorisation ``method="ipm"`` asks Clarabel for, for a program with
    ``outputs`` columns of targets whose formulation wants Pardiso for them (the gated-ReLU
    group lasso; ``Formulation.factor_outputs``).

    ``"mkl"`` (Pardiso, :func:`pardiso_available`) for several outputs: its nested
    dissection keeps the outputs apart (gated ReLU 750×9×200×10: 25 s against 376 s with
    ``faer``; 300×9×100×3: 1.5× faster). ``"faer"`` for one output, where its ordering is
    as good and its factorisation faster (2000×20×100: 9.3 s against 18.5 s with
    Pardiso), or when Pardiso does not load. ``None`` (Clarabel's ``qdldl``) when neither
    is there.
    """
    if outputs > 1 and pardiso_available():
        return "mkl"
    if faer_available():
        return "faer"
    return "mkl" if pardiso_available() else None


def _tolerance_options(solver: str, tol: float, outputs: int = 1) -> dict[str, Any]:
    """Solver accuracy settings a notch tighter than the certificate tolerance (and, for
    Clarabel, the fastest KKT factorisation this machine has for a program with
    ``outputs`` target columns: :func:`factorisation`)."""
    t = max(min(tol * 1e-2, 1e-8), 1e-12)
    if solver == "CLARABEL":
        opts: dict[str, Any] = {"tol_gap_abs": t, "tol_gap_rel": t, "tol_feas": t,
                                "max_iter": 500}
        method = factorisation(outputs)
        if method is not None:
            opts["direct_solve_method"] = method
        return opts
    if solver == "SCS":
        return {"eps_abs": t, "eps_rel": t, "max_iters": 100_000}
    if solver == "MOSEK":
        return {"mosek_params": {"MSK_DPAR_INTPNT_CO_TOL_REL_GAP": t,
                                 "MSK_DPAR_INTPNT_CO_TOL_PFEAS": t,
                                 "MSK_DPAR_INTPNT_CO_TOL_DFEAS": t}}
    return {}


def map_status(status: str | None, solver: str) -> None:
    """Raise the typed error for a status without a solution; warn on inaccurate ones."""
    if status in (cp.OPTIMAL,):
        return
    if status == cp.OPTIMAL_INACCURATE:
        warnings.warn(
            f"{solver} returned 'optimal_inaccurate'; the certificate below decides whether "
            "the answer is usable. Try solver='mosek' or a tighter problem scaling.",
            InaccurateSolutionWarning,
            stacklevel=3,
        )
        return
    if status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE):
        raise InfeasibleError(
            f"{solver} reports the problem infeasible ({status}); check the constraints "
            "(for the ReLU program: the cone constraints of the chosen patterns).",
            status=status,
        )
    if status in (cp.UNBOUNDED, cp.UNBOUNDED_INACCURATE):
        raise UnboundedError(
            f"{solver} reports the problem unbounded ({status}); the regularisation must "
            "be positive.",
            status=status,
        )
    raise SolverFailedError(
        f"{solver} returned status {status!r} without a solution; try another solver "
        f"(installed: {[s.lower() for s in available_solvers()]}).",
        status=status,
    )


def check_solver_options(solver: str, options: dict[str, Any]) -> None:
    """Refuse, before solving, Clarabel settings it does not know or cannot take (a named
    :class:`InvalidInputError`); other solvers judge their own options when called."""
    if solver != "CLARABEL" or not options:
        return
    import clarabel

    settings = clarabel.DefaultSettings()
    for key, value in options.items():
        if not hasattr(settings, key):
            raise InvalidInputError(f"solver_options: {key!r} is not a Clarabel option "
                                    "(CLARABEL settings: see its documentation).",
                                    argument="solver_options")
        try:
            setattr(settings, key, value)
        except (TypeError, ValueError, OverflowError):
            raise InvalidInputError(
                f"solver_options: Clarabel's {key} cannot be {value!r} (wrong type or out of "
                "range).", argument="solver_options") from None
        if key == "direct_solve_method" and value == "mkl" and not pardiso_available():
            raise SolverUnavailableError(
                "solver_options: Clarabel cannot load Intel MKL's Pardiso "
                "(direct_solve_method='mkl'); install it with pip install 'convexnn[mkl]' "
                "(x86-64), or use 'faer' or 'qdldl'.")
        if key in ("max_iter",) and (isinstance(value, bool) or value < 1):
            raise InvalidInputError(f"solver_options: {key} must be a positive integer; "
                                    f"got {value!r}.", argument="solver_options")


def run_problem(
    problem: cp.Problem,
    solver: str,
    *,
    tol: float = 1e-6,
    verbose: bool = False,
    warm_start: bool = True,
    options: dict[str, Any] | None = None,
    outputs: int = 1,
) -> SolverRun:
    """Solve a built cvxpy problem with ``solver`` and map its status.

    ``options`` are passed to the solver and override the accuracy defaults and the
    factorisation chosen for a program with ``outputs`` target columns.
    """
    check_solver_options(solver, dict(options or {}))
    opts = _tolerance_options(solver, tol, outputs)
    opts.update(options or {})
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            # cvxpy's generic "may be inaccurate" warning is replaced by map_status's own.
            warnings.filterwarnings("ignore", message="Solution may be inaccurate")
            problem.solve(solver=solver, verbose=verbose, warm_start=warm_start,
                          canon_backend=CANON_BACKEND, **opts)
    except (TypeError, ValueError, OverflowError) as exc:
        if not options:
            raise
        # a solver rejects an unknown keyword with a TypeError naming it
        why = str(exc).rstrip(".")
        raise InvalidInputError(
            f"solver_options {sorted(options)} were rejected by {solver}: {why}. Pass only "
            f"settings {solver} knows (see its documentation).", argument="solver_options"
        ) from None
    except cp.error.SolverError as exc:
        if solver == "MOSEK":
            ok, why = mosek_licensed()
            if not ok:
                raise SolverUnavailableError(f"MOSEK cannot run: {why}.") from None
        raise SolverFailedError(
            f"{solver} failed: {exc}. Try another solver (installed: "
            f"{[s.lower() for s in available_solvers()]}).",
            status="solver_error",
        ) from None
    except Exception as exc:
        # MOSEK raises its own exception type (e.g. a missing licence, code 1008).
        if type(exc).__module__.startswith("mosek"):
            raise SolverUnavailableError(
                f"MOSEK cannot run: {str(exc).strip()}. Use solver='clarabel'."
            ) from None
        raise
    seconds = time.perf_counter() - start
    stats = problem.solver_stats
    map_status(problem.status, solver)
    return SolverRun(
        solver=solver,
        status=str(problem.status),
        seconds=seconds,
        iterations=getattr(stats, "num_iters", None),
        solver_objective=None if problem.value is None else float(problem.value),
        compile_s=float(getattr(problem, "compilation_time", 0.0) or 0.0),
        factorisation=(opts.get("direct_solve_method") or "qdldl")
        if solver == "CLARABEL" else None,
    )
