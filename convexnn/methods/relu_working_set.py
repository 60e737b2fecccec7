"""The working-set method for the ReLU program (``method="fast"``).

Two ways to solve the reduced programs (option ``inner``): ``"newton"`` (default) —
FISTA with exact cone proximal maps and Newton on the faces of the cones, every block
with all of its rows (:func:`solve_active_set`, :mod:`convexnn.methods.relu_active_set`)
— and ``"ipm"``, the interior point on a subset of rows per block described below
(:func:`solve_working_set`). The outer loop, the screens and the certificate are shared.

The full program has ``2·n·P·c`` cone rows ``s_k x_k^T v ≥ 0`` and ``2·P`` blocks, yet
at the optimum few blocks are non-zero and each block's cone ``K_i = {u : S_i X u ≥ 0}``
touches only a handful of its ``n`` half-spaces. The method solves the program on a
*working set* of blocks ``(pattern i, sign σ)`` (σ = +1 for ``v_i``, −1 for ``u_i``),
each with a subset of its cone rows, and grows both by cutting planes:

1. **Seed** — blocks whose dual constraint is most violated at ``z = y`` (``"correlation"``),
   or the active groups of the gated-ReLU optimum (``"gated"``).
2. **Solve** the reduced program with the interior point method:
   ``min ½||Σ_b σ_b D_{i_b} X W_b − Y||² + λ Σ_b ||W_b||_F`` s.t. the kept rows.
   The fit enters through the Gram matrix ``H = A^T A`` of the reduced design
   ``A = [σ_b D_{i_b} X]_b`` (Kd × Kd), never through the n residual rows.
3. **Rows** — every row of every block is checked in numpy; violated rows are added.
4. **Patterns** — the dual constraint of every block outside the working set is checked
   at ``z = y − ŷ``, vectorised: ``||X^T D_i z||_F ≤ λ``, the bound from the previous
   round's multipliers ``||X^T(±D_i z + S_i α_i)||_F ≤ λ`` and a few greedy steps on
   ``α`` (one GEMM each) prove most of them hold — the cone-restricted support value
   never exceeds such bounds; only blocks failing them get the exact value (NNLS), in
   order of decreasing bound, until the most violated ones are known
   (:func:`convexnn.cones.screen_values`). The most violated blocks are added; blocks
   the solve left at zero are dropped (once each, so the loop cannot cycle).
5. Repeat until nothing is added. While many blocks are still missing the reduced
   program is solved loosely (relative gap 1e-5); the last solve is always tight. Then
   the blocks are projected onto their cones (exact feasibility over all rows) and
   certified over the FULL pattern set by the formulation's numpy certificate. When only
   rows are violated, the projection is certified first and the re-solve skipped if it
   passes. An unfinished loop is reported, and certified only if the gap says so.

The reduced problem changes shape every round (new blocks, new rows), so it is rebuilt
rather than re-parameterised; with Clarabel it is passed to the solver directly in conic
form (milliseconds; cvxpy's canonicalisation of the same problem took 0.3–1 s), other
solvers get the same problem through cvxpy.

:func:`run` is the method behind ``solve("relu", ..., method="fast")`` (options
:class:`Options`); it works on the data rescaled by powers of two like the
interior-point method and certifies over every pattern with the formulation's
certificate. The mathematics: ``docs/math/fast_methods.md``.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field, replace
from typing import Any

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from ..cones import project_to_cones, screen_values, signs
from ..errors import InvalidInputError
from ..formulations.base import Formulation, SolveOptions
from ..memory import dense_bytes
from ..ops import adjoint, group_norms
from ..problem import ProblemData, ipm_scales, scaled_data
from ..progress import Progress
from ..solution import Solution
from ..solvers import InaccurateSolutionWarning, _tolerance_options, map_status, run_problem
from ..threads import blas_threads
from ..validation import Options as OptionsBase
from ..validation import choice, integer
from ..validation import threads as check_threads

__all__ = ["Options", "run", "memory_estimate", "WorkingSetResult", "solve_working_set",
           "WARM_STARTS"]

#: How the first working set is chosen.
WARM_STARTS = ("correlation", "gated")
#: How each reduced program is solved: proximal gradient and Newton on the faces of the
#: cones (all rows of every block), or the interior point (a subset of rows per block).
INNER_SOLVERS = ("newton", "ipm")
#: Blocks below this fraction of the largest norm are interior-point fuzz: their rows
#: are not generated (the final projection makes them feasible). They are NOT zeroed:
#: together they shift the residual enough to matter (measured: zeroing blocks below
#: 1e-8·max raised the certified gap from 7e-10 to 3e-7 at λ = 0.01 λ_max).
_LIVE = 1e-6
#: Greedy steps of the screens in the working-set loop with Newton inner solves.
_SCREEN_STEPS = 25
#: Relative gap of the reduced solves while many blocks are still missing (Newton inner).
_LOOSE = 1e-5
#: A cone row counts as violated below this relative margin s x^T w / (||x|| ||w||).
_ROW_TOL = 1e-9


@dataclass
class _WorkingSet:
    """Blocks ``(pattern, sign)`` with the cone rows kept for each."""

    pat: np.ndarray  # (K,) pattern index
    sgn: np.ndarray  # (K,) +1 (block of V) or −1 (block of U)
    rows: list[np.ndarray] = field(default_factory=list)

    @property
    def K(self) -> int:
        return int(self.pat.size)

    def keep(self, idx: np.ndarray) -> None:
        self.pat, self.sgn = self.pat[idx], self.sgn[idx]
        self.rows = [self.rows[b] for b in idx]

    def add(self, pat: int, sgn: int, rows: np.ndarray) -> None:
        self.pat = np.append(self.pat, pat).astype(np.int64)
        self.sgn = np.append(self.sgn, sgn).astype(np.int64)
        self.rows.append(np.asarray(rows, dtype=np.int64))


@dataclass(frozen=True)
class WorkingSetResult:
    """What :func:`solve_working_set` returns to :class:`~convexnn.formulations.relu.ReLU`.

    ``weights`` are ``{"V", "U"}`` over the full pattern set (zero outside the working
    set); ``dual`` is ``{"z", "alpha", "beta"}`` with the multipliers found by the
    screens (a candidate for the certificate); ``info`` records every round.
    """

    weights: dict[str, np.ndarray]
    dual: dict[str, np.ndarray]
    info: dict[str, Any]
    status: str
    solver: str
    build_s: float
    solve_s: float
    converged: bool


# ---------------------------------------------------------------------------
# the reduced program
# ---------------------------------------------------------------------------


def _design(X: np.ndarray, M: np.ndarray, ws: _WorkingSet) -> np.ndarray:
    """Dense reduced design ``A = [σ_b D_{i_b} X]_b`` (n × Kd), block b in columns b·d…"""
    n, d = X.shape
    Ms = M[:, ws.pat] * ws.sgn.astype(np.float64)  # (n, K)
    return (Ms[:, :, None] * X[:, None, :]).reshape(n, ws.K * d)


def _row_matrix(X: np.ndarray, M: np.ndarray, ws: _WorkingSet, c: int) -> sp.csc_matrix:
    """Kept cone rows as a sparse matrix G on ``[w_0; …; w_{c−1}]`` (``G w ≥ 0``).

    ``w_j`` (Kd) stacks column j of every block; a row is ``s_k x_k^T W_b[:, j]``.
    """
    n, d = X.shape
    K = ws.K
    counts = np.array([r.size for r in ws.rows], dtype=np.int64)
    L = int(counts.sum())
    if L == 0:
        return sp.csc_matrix((0, c * K * d))
    blk = np.repeat(np.arange(K), counts)
    rows = np.concatenate(ws.rows)
    vals = signs(M)[rows, ws.pat[blk]][:, None] * X[rows]  # (L, d)
    cols = blk[:, None] * d + np.arange(d)[None, :]  # (L, d)
    r_idx = np.concatenate([np.repeat(j * L + np.arange(L), d) for j in range(c)])
    c_idx = np.concatenate([(j * K * d + cols).ravel() for j in range(c)])
    return sp.csc_matrix((np.tile(vals.ravel(), c), (r_idx, c_idx)), shape=(c * L, c * K * d))


_CLARABEL_STATUS = {
    "Solved": cp.OPTIMAL,
    "AlmostSolved": cp.OPTIMAL_INACCURATE,
    "PrimalInfeasible": cp.INFEASIBLE,
    "AlmostPrimalInfeasible": cp.INFEASIBLE_INACCURATE,
    "DualInfeasible": cp.UNBOUNDED,
    "AlmostDualInfeasible": cp.UNBOUNDED_INACCURATE,
    "MaxIterations": cp.USER_LIMIT,
    "MaxTime": cp.USER_LIMIT,
}  # anything else (numerical error, insufficient progress): solver error, as in cvxpy


def _solve_clarabel(H: np.ndarray, Q: np.ndarray, G: sp.csc_matrix, K: int, d: int, c: int,
                    lam: float, options: SolveOptions, offset: float, scale: float,
                    loose: bool = False) -> tuple[np.ndarray, str, int]:
    """The reduced program in Clarabel's conic form, variables ``x = [w_0; …; w_{c−1}; t]``.

    ``min ½ Σ_j w_j^T H w_j − Q_j^T w_j + λ Σ_b t_b``  s.t. ``G w ≥ 0``,
    ``(t_b, vec W_b) ∈ SOC`` — i.e. ``½||A W − Y||² − offset + λ Σ ||W_b||_F`` with
    ``offset = ½||Y||²``. Clarabel measures its relative gap against this shifted value
    (about ``offset``), so the tolerances are rescaled to hold relative to ``scale``, an
    estimate of the true objective. ``loose`` asks for a relative gap of 1e-5 only.
    """
    import clarabel

    Kd = K * d
    nv = c * Kd + K
    Hu = sp.triu(sp.csc_matrix(H), format="csc")
    Pm = sp.block_diag([Hu] * c + [sp.csc_matrix((K, K))], format="csc")
    q = np.concatenate([-Q.T.ravel(), np.full(K, lam)])
    # second-order cones (t_b, W_b[:, 0], …, W_b[:, c−1]) written as s = E x, −E x + s = 0
    width = 1 + d * c
    e_rows = np.arange(K * width)
    e_cols = np.empty((K, width), dtype=np.int64)
    e_cols[:, 0] = c * Kd + np.arange(K)
    blockcol = np.arange(K)[:, None] * d + np.arange(d)[None, :]  # (K, d)
    for j in range(c):
        e_cols[:, 1 + j * d:1 + (j + 1) * d] = j * Kd + blockcol
    E = sp.csc_matrix((np.ones(K * width), (e_rows, e_cols.ravel())), shape=(K * width, nv))
    Gx = sp.hstack([G, sp.csc_matrix((G.shape[0], K))], format="csc")
    A = sp.vstack([-Gx, -E], format="csc")
    cones = ([clarabel.NonnegativeConeT(G.shape[0])] if G.shape[0] else []) + \
        [clarabel.SecondOrderConeT(width)] * K
    settings = clarabel.DefaultSettings()
    settings.verbose = bool(options.verbose)
    # The certificate needs the residual y − ŷ accurate, not only the objective: a gap
    # a thousand times below the tolerance (measured: 1e-8 left dual violations of 2e-7
    # at λ = 0.01 λ_max, 1e-9 gives 5e-8).
    t = 1e-5 if loose else max(min(options.tol * 1e-3, 1e-9), 1e-10)
    opts = _tolerance_options("CLARABEL", options.tol)
    opts.update({"tol_gap_abs": t * max(scale, 1e-300),
                 "tol_gap_rel": max(t * min(1.0, scale / max(offset, 1e-300)), 1e-15)})
    if loose:
        opts["tol_feas"] = 1e-6
    opts.update(options.solver_options)
    for key, value in opts.items():
        if not hasattr(settings, key):
            raise InvalidInputError(f"unknown Clarabel option {key!r} in solver_options.")
        setattr(settings, key, value)
    result = clarabel.DefaultSolver(Pm, q, A, np.zeros(A.shape[0]), cones, settings).solve()
    status = _CLARABEL_STATUS.get(str(result.status).split(".")[-1], cp.SOLVER_ERROR)
    map_status(status, "CLARABEL")
    x = np.asarray(result.x, dtype=np.float64)
    W = x[:c * Kd].reshape(c, K, d).transpose(1, 2, 0)  # (K, d, c)
    return np.ascontiguousarray(W), status, int(result.iterations)


def _solve_cvxpy(H: np.ndarray, Q: np.ndarray, G: sp.csc_matrix, K: int, d: int, c: int,
                 lam: float, options: SolveOptions) -> tuple[np.ndarray, str, int]:
    """The same reduced program through cvxpy (any conic solver), DPP in ``λ``.

    ``H = R^T R`` with ``R = Λ^{1/2} Q_H^T`` from the eigendecomposition (exact even
    when H is singular), so the fit is ``½||R w_j||² − Q_j^T w_j``.
    """
    evals, evecs = np.linalg.eigh(H)
    keep = evals > 1e-12 * max(float(evals.max(initial=0.0)), 1e-300)
    R = np.sqrt(evals[keep])[:, None] * evecs[:, keep].T
    W = cp.Variable((K * d, c), name="W")
    lam_p = cp.Parameter(nonneg=True, name="lam", value=lam)
    norms = cp.norm(cp.reshape(W.T, (c * d, K), order="F"), 2, axis=0)
    fit = 0.5 * cp.sum_squares(R @ W) - cp.sum(cp.multiply(Q, W))
    constraints = [G @ cp.vec(W, order="F") >= 0] if G.shape[0] else []
    problem = cp.Problem(cp.Minimize(fit + lam_p * cp.sum(norms)), constraints)
    run = run_problem(problem, options.solver, tol=options.tol, verbose=options.verbose,
                      options=dict(options.solver_options))
    Wv = np.asarray(W.value, dtype=np.float64)  # (Kd, c)
    return np.ascontiguousarray(Wv.reshape(K, d, c)), run.status, int(run.iterations or 0)


def _solve_reduced(X: np.ndarray, Y: np.ndarray, M: np.ndarray, ws: _WorkingSet, lam: float,
                   options: SolveOptions, scale: float, loose: bool = False
                   ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Solve on the working set; returns blocks (K, d, c), the prediction and a record.

    ``scale`` estimates the optimal value (it sets the solver's gap tolerance);
    ``loose`` solves to a relative gap of about 1e-5 (enough to find violated blocks)."""
    start = time.perf_counter()
    d, c, K = X.shape[1], Y.shape[1], ws.K
    if K == 0:  # every block was dropped: W = 0 is the (trivial) solution
        return np.zeros((0, d, c)), np.zeros_like(Y), {"status": cp.OPTIMAL, "iterations": 0,
                                                       "build_s": 0.0, "solve_s": 0.0}
    A = _design(X, M, ws)
    H = A.T @ A
    Q = A.T @ Y  # (Kd, c)
    G = _row_matrix(X, M, ws, c)
    built = time.perf_counter()
    with warnings.catch_warnings():
        # an inaccurate intermediate solve only steers the loop; the status is recorded
        # and the warning repeated for the final solve (see solve_working_set)
        warnings.simplefilter("ignore", InaccurateSolutionWarning)
        if options.solver == "CLARABEL":
            W, status, iters = _solve_clarabel(H, Q, G, K, d, c, lam, options,
                                               offset=0.5 * float(np.sum(Y * Y)), scale=scale,
                                               loose=loose)
        else:
            W, status, iters = _solve_cvxpy(H, Q, G, K, d, c, lam,
                                            replace(options, tol=1e-3) if loose else options)
    done = time.perf_counter()
    Yhat = A @ W.reshape(K * d, c)
    return W, Yhat, {"status": status, "iterations": iters, "build_s": built - start,
                     "solve_s": done - built}


# ---------------------------------------------------------------------------
# checks: rows of the working set, dual constraints of all other blocks
# ---------------------------------------------------------------------------


def _violated_rows(X: np.ndarray, M: np.ndarray, ws: _WorkingSet, W: np.ndarray,
                   xnorm: np.ndarray, limit: int) -> list[np.ndarray]:
    """Per block, up to ``limit`` cone rows not kept and violated (relative margin)."""
    S = signs(M[:, ws.pat])  # (n, K)
    norms = np.sqrt(np.einsum("bdc,bdc->bc", W, W))  # (K, c) column norms
    top = float(np.max(norms, initial=0.0))
    out = []
    for b in range(ws.K):
        live = norms[b] > _LIVE * top
        if not live.any():
            out.append(np.empty(0, dtype=np.int64))
            continue
        margin = (S[:, b, None] * (X @ W[b][:, live])) / (xnorm[:, None] * norms[b, live])
        worst = margin.min(axis=1)
        bad = np.nonzero(worst < -_ROW_TOL)[0]
        bad = bad[~np.isin(bad, ws.rows[b])]
        out.append(bad[np.argsort(worst[bad], kind="stable")[:limit]])
    return out


def _initial_rows(X: np.ndarray, M: np.ndarray, gates: np.ndarray, pat: int,
                  direction: np.ndarray, xnorm: np.ndarray, count: int) -> np.ndarray:
    """The ``count`` rows of pattern ``pat`` nearest to ``direction`` (d, c) — the
    facets of ``K_pat`` a point there meets first (``S_pat X u`` smallest, normalised).
    A zero direction is replaced by the pattern's gate (a point of ``K_pat``)."""
    s = signs(M[:, pat:pat + 1])[:, 0]
    norms = np.linalg.norm(direction, axis=0)
    direction = direction[:, norms > 0] / norms[norms > 0]
    if direction.shape[1] == 0:
        direction = gates[:, pat:pat + 1]
    margin = (s[:, None] * (X @ direction)).min(axis=1) / xnorm
    return np.sort(np.argsort(margin, kind="stable")[:min(count, X.shape[0])])


# ---------------------------------------------------------------------------
# seeds
# ---------------------------------------------------------------------------


def _seed_correlation(X: np.ndarray, Y: np.ndarray, M: np.ndarray, size: int
                      ) -> list[tuple[int, int, np.ndarray, np.ndarray]]:
    """The ``size`` blocks whose dual constraint is largest at ``z = y`` (exact values),
    each with the maximising direction ``Π_{K_i}(σ X^T D_i y)`` and its multipliers
    (n, c)."""
    C = adjoint(X, M, Y)
    picks, mult = [], {}
    for sgn in (1, -1):
        vals, exact, mult[sgn], _ = screen_values(X, M, sgn * C, 0.0, want=size,
                                                  limit=4 * size)
        picks += [(float(vals[i]), int(i), sgn) for i in np.nonzero(exact)[0]]
    picks.sort(reverse=True)
    return [(i, sgn, _maximiser(X, M, sgn * C[i], mult[sgn][i], i), mult[sgn][i])
            for _, i, sgn in picks[:size]]


def _maximiser(X: np.ndarray, M: np.ndarray, C_i: np.ndarray, alpha_i: np.ndarray, i: int
               ) -> np.ndarray:
    """``Π_{K_i}(C_i) = C_i + X^T S_i α_i`` (d, c): the direction of the support value."""
    return C_i + (X * signs(M[:, i:i + 1])).T @ alpha_i


def _seed_gated(data: ProblemData, lam: float, options: SolveOptions
                ) -> tuple[list[tuple[int, int, np.ndarray, np.ndarray]], dict[str, Any]]:
    """Blocks from the active groups of the gated-ReLU optimum at the same λ.

    Group ``w_i`` seeds ``(i, +1)`` when its projection onto ``K_i`` keeps at least half
    its norm and ``(i, −1)`` when that of ``−w_i`` does (gated weights need not lie in
    either cone; a group far from both is left to the cutting planes). The gated program
    is solved by :mod:`convexnn.methods.group_lasso` (certified at any size).
    """
    from ..formulations.gated_relu import GatedReLU
    from . import group_lasso

    sol = group_lasso.run(GatedReLU(), data, lam, replace(
        options, method="fast", method_options=group_lasso.Options()))
    W = sol.weights["W"]
    norms = group_norms(W)
    active = np.nonzero(norms > 1e-6 * float(norms.max(initial=0.0)))[0]
    out = []
    for sgn in (1, -1):
        Pi, a = project_to_cones(data.X, data.M[:, active], sgn * W[active])
        keep = group_norms(Pi) >= 0.5 * norms[active]
        out += [(int(i), sgn, Pi[k], a[k]) for k, i in enumerate(active) if keep[k]]
    record = {"method": "fast", "active_groups": int(active.size),
              "relative_gap": float(sol.certificate.relative_gap),
              "seconds": float(sum(sol.timings.values()))}
    return out, record


def _seeds(data: ProblemData, lam: float, options: SolveOptions, warm_start: str, size: int,
           info: dict[str, Any]) -> list[tuple[int, int, np.ndarray, np.ndarray]]:
    """The first blocks of the working set: those of the gated-ReLU optimum
    (:func:`_seed_gated`, its record in ``info["gated"]``) when ``warm_start`` is
    ``"gated"`` and it gives any, else the ``size`` of largest correlation
    (:func:`_seed_correlation`)."""
    if warm_start == "gated":
        seeds, info["gated"] = _seed_gated(data, lam, options)
        if seeds:
            return seeds
    return _seed_correlation(data.X, data.Y, data.M, size)


# ---------------------------------------------------------------------------
# the loop
# ---------------------------------------------------------------------------


def _assemble(X: np.ndarray, M: np.ndarray, ws: _WorkingSet, W: np.ndarray, P: int, *,
              repair: bool) -> tuple[np.ndarray, np.ndarray]:
    """Blocks (K, d, c) → ``V, U`` (P, d, c), zero outside the working set; with
    ``repair`` every column is projected onto its cone (exactly feasible over all rows)."""
    _, d, c = W.shape
    V = np.zeros((P, d, c))
    U = np.zeros((P, d, c))
    V[ws.pat[ws.sgn > 0]] = W[ws.sgn > 0]
    U[ws.pat[ws.sgn < 0]] = W[ws.sgn < 0]
    if repair:
        live = np.unique(ws.pat)
        V = project_to_cones(X, M, V, only=live)[0]
        U = project_to_cones(X, M, U, only=live)[0]
    return V, U


@dataclass(frozen=True)
class Options(OptionsBase):
    """Options of ``method="fast"`` for the ReLU program.

    ``warm_start``: the first working set — ``"correlation"`` (the blocks most violated
    at ``z = y``) or ``"gated"`` (the active groups of the gated-ReLU optimum).
    ``working_set_rounds``: re-solves allowed (default 50). ``working_set_add``: blocks
    added per round (default ``max(10, 2d)``). ``working_set_rows``: cone rows kept per
    new block (default ``2d + 10``).
    """

    warm_start: str = "correlation"
    working_set_rounds: int = 50
    working_set_add: int | None = None
    working_set_rows: int | None = None
    inner: str = "newton"
    threads: int | None = 1

    def __post_init__(self) -> None:
        choice(self.warm_start, "warm_start", WARM_STARTS)
        choice(self.inner, "inner", INNER_SOLVERS)
        if self.threads is not None:
            check_threads(self.threads)
        integer(self.working_set_rounds, "working_set_rounds", minimum=0)
        for name in ("working_set_add", "working_set_rows"):
            if getattr(self, name) is not None:
                integer(getattr(self, name), name, minimum=1)


def memory_estimate(form: Formulation, data: ProblemData) -> int:
    """The float masks and signs, the cone multipliers of the screens (2·P·n·c), and the
    reduced programs (bounded by the working set, a few hundred blocks)."""
    n, d, P, c = data.n, data.d, data.P, data.c
    return dense_bytes(3 * n * P, 2 * P * n * c, 4 * P * d * c, 8 * n * d * c) + 2**25


def solve_working_set(
    form: Formulation,
    data: ProblemData,
    lam: float,
    options: SolveOptions,
    *,
    warm_start: str = "correlation",
    rounds: int = 50,
    add: int | None = None,
    rows: int | None = None,
) -> WorkingSetResult:
    """Solve the ReLU program by the working-set interior point method (module docstring).

    Parameters
    ----------
    data : ProblemData (all patterns the certificate covers)
    lam : float
    options : SolveOptions (solver, tolerance, solver options)
    warm_start : {"correlation", "gated"}
        First working set: the blocks most violated at ``z = y``, or the active groups of
        the gated-ReLU optimum (solved by :mod:`convexnn.methods.group_lasso`).
    rounds : int
        Re-solves allowed after the first solve; the loop stops earlier when no row and
        no block is added.
    add : int, default ``max(10, 2d)``
        Blocks added per round at most (the most violated first); also the size of the
        ``"correlation"`` seed.
    rows : int, default ``2d + 10``
        Cone rows kept for a new block (those nearest its seed direction); violated rows
        are added ``rows`` per block and round at most.
    """
    X, Y, M, gates = data.X, data.Y, data.M, data.patterns.gates
    n, d = X.shape
    P, c = data.P, data.c
    add = max(10, 2 * d) if add is None else int(add)
    rows = 2 * d + 10 if rows is None else int(rows)
    threshold = lam * (1.0 + 0.1 * options.tol)
    xnorm = np.maximum(np.linalg.norm(X, axis=1), np.finfo(np.float64).tiny)
    t_start = time.perf_counter()
    info: dict[str, Any] = {"warm_start": warm_start, "history": []}

    seeds = _seeds(data, lam, options, warm_start, add, info)
    ws = _WorkingSet(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64))
    for i, sgn, direction, _ in seeds:
        ws.add(i, sgn, _initial_rows(X, M, gates, i, direction, xnorm, rows))
    alpha = np.zeros((P, n, c))
    beta = np.zeros((P, n, c))
    build_s = solve_s = 0.0
    check_s = time.perf_counter() - t_start
    status, converged = cp.OPTIMAL, False
    # the objective at W = 0 bounds the optimum from above; later rounds use their last value
    scale = 0.5 * float(np.sum(Y * Y))
    W = np.zeros((0, d, c))
    Yhat = np.zeros_like(Y)
    # While many blocks are still missing, a loose solve finds them as well as a tight one
    # (with fewer interior-point iterations); once few are missing, and always before
    # stopping, the working set is solved to full accuracy.
    loose = rounds > 0
    dropped: set[tuple[int, int]] = set()
    bar = Progress(f"{form.name} fast", options.progress)
    bar = bar if bar.enabled else None
    for rnd in range(rounds + 1):
        loose = loose and rnd < rounds
        W, Yhat, rec = _solve_reduced(X, Y, M, ws, lam, options, scale=scale, loose=loose)
        status = rec["status"]
        build_s += rec["build_s"]
        solve_s += rec["solve_s"]
        start = time.perf_counter()
        entry = {"round": rnd, "blocks": ws.K, "rows": int(sum(r.size for r in ws.rows)) * c,
                 "iterations": rec["iterations"], "ipm_s": rec["solve_s"], "loose": loose,
                 "status": status}
        info["history"].append(entry)
        if bar is not None:
            bar.update(round=rnd, blocks=ws.K, interior_point_iterations=rec["iterations"])
        norms = group_norms(W)
        top = float(norms.max(initial=0.0))
        entry["active"] = int(np.sum(norms > 1e-6 * top))
        R = Y - Yhat
        entry["objective"] = 0.5 * float(np.sum(R * R)) + lam * float(norms.sum())
        scale = entry["objective"]

        new_rows = _violated_rows(X, M, ws, W, xnorm, rows)
        C = adjoint(X, M, R)
        in_ws = {1: np.zeros(P, dtype=bool), -1: np.zeros(P, dtype=bool)}
        for i, sgn in zip(ws.pat, ws.sgn, strict=True):
            in_ws[int(sgn)][i] = True
        found, nnls = [], 0
        values = {}
        cut = lam * (1.0 + 1e-3) if loose else threshold  # a loose z is known to ~1e-3
        for sgn, mult in ((1, alpha), (-1, beta)):
            vals, exact, _, count = screen_values(X, M, sgn * C, cut, alpha=mult,
                                                  exclude=in_ws[sgn], want=add, limit=2 * add)
            nnls += count
            values[sgn] = vals
            found += [(float(vals[i]), int(i), sgn) for i in
                      np.nonzero(exact & (vals > cut) & ~in_ws[sgn])[0]]
        found.sort(reverse=True)
        new_blocks = found[:add]
        entry.update({"nnls": nnls, "violating": len(found), "added_blocks": len(new_blocks),
                      "added_rows": int(sum(r.size for r in new_rows)) * c,
                      "max_violation": max(0.0, found[0][0] / lam - 1.0) if found else 0.0})
        if loose and len(found) < add:
            loose = False  # few blocks missing: the next solve may be the last
            if not new_blocks and entry["added_rows"] == 0:
                check_s += time.perf_counter() - start
                continue  # same working set, solved again to full accuracy
        if not new_blocks and entry["added_rows"] == 0:
            converged = True
            check_s += time.perf_counter() - start
            break
        if not new_blocks and not entry["loose"]:
            # only rows are violated: projecting the blocks onto their cones may already
            # give a point certified over all patterns, which saves the re-solve
            V, U = _assemble(X, M, ws, W, P, repair=True)
            cert, _ = form.certify(data, lam, {"V": V, "U": U},
                                   {"alpha": alpha, "beta": beta}, tol=options.tol)
            entry["projected_gap"] = cert.relative_gap
            if cert.certified:
                converged = True
                entry["stopped"] = "projection certified"
                check_s += time.perf_counter() - start
                break
        check_s += time.perf_counter() - start
        if rnd == rounds:
            break
        # grow: rows of current blocks; drop the blocks the solve left at zero (a block
        # comes back if violated again, and then stays, so the loop cannot cycle); add
        # the new blocks. Keeping K near the active count matters: each interior-point
        # iteration factors a dense (K·d·c)² matrix.
        for b, extra in enumerate(new_rows):
            if extra.size:
                ws.rows[b] = np.union1d(ws.rows[b], extra)
        again = np.array([key in dropped for key in zip(ws.pat.tolist(), ws.sgn.tolist(),
                                                        strict=True)], dtype=bool)
        keep = np.nonzero((norms > 1e-6 * top) | again)[0]
        dropped.update(zip(ws.pat[~np.isin(np.arange(ws.K), keep)].tolist(),
                           ws.sgn[~np.isin(np.arange(ws.K), keep)].tolist(), strict=True))
        entry["dropped_blocks"] = int(ws.K - keep.size)
        ws.keep(keep)
        for _, i, sgn in new_blocks:
            direction = _maximiser(X, M, sgn * C[i], (alpha if sgn > 0 else beta)[i], i)
            ws.add(i, sgn, _initial_rows(X, M, gates, i, direction, xnorm, rows))

    if bar is not None:
        bar.close()
    start = time.perf_counter()
    V, U = _assemble(X, M, ws, W, P, repair=False)  # the formulation's finalize repairs
    R = Y - Yhat
    check_s += time.perf_counter() - start
    last = info["history"][-1]
    info.update({
        "converged": converged,
        "rounds": len(info["history"]) - 1,
        "blocks": ws.K,
        "rows": last["rows"],
        "full_rows": 2 * n * P * c,
        "ipm_iterations": int(sum(h["iterations"] for h in info["history"])),
        "check_s": check_s,
    })
    if status == cp.OPTIMAL_INACCURATE:
        map_status(status, options.solver)  # the project's one warning for this status
    return WorkingSetResult(
        weights={"V": V, "U": U},
        dual={"z": R, "alpha": alpha, "beta": beta},
        info=info,
        status=status,
        solver=options.solver,
        build_s=build_s,
        solve_s=solve_s + check_s,
        converged=converged,
    )


def solve_active_set(
    form: Formulation,
    data: ProblemData,
    lam: float,
    options: SolveOptions,
    *,
    warm_start: str = "correlation",
    rounds: int = 50,
    add: int | None = None,
) -> WorkingSetResult:
    """The working-set loop with the reduced programs solved by proximal gradient and
    Newton steps on the faces of the cones (:mod:`convexnn.methods.relu_active_set`).

    Every block of the working set carries all n of its cone rows (the iterates are
    feasible throughout), so only blocks are added: after each reduced solve — warm
    started from the previous one, new blocks at zero with the face of their maximiser —
    every other block's dual constraint is screened at ``z = y − ŷ`` as in
    :func:`solve_working_set`, the most violated ``add`` are added and blocks the solve
    left at zero are dropped (once each). The reduced programs are solved to a relative
    gap of 1e-5 while many blocks are still missing and to ``min(tol·1e-3, 1e-9)`` once
    few are; the loop stops when no block is violated.
    """
    from .relu_active_set import FISTA_BURST, Blocks, FaceCache, solve_reduced

    X, Y, M = data.X, data.Y, data.M
    n, d = X.shape
    P, c = data.P, data.c
    add = max(10, 2 * d) if add is None else int(add)
    threshold = lam * (1.0 + 0.1 * options.tol)
    tight = max(min(options.tol * 1e-3, 1e-9), 1e-12)
    t_start = time.perf_counter()
    info: dict[str, Any] = {"warm_start": warm_start, "inner": "newton", "history": []}
    seeds = _seeds(data, lam, options, warm_start, add, info)
    Mf = M.astype(np.float64)
    Sf = signs(M)
    pat = np.array([i for i, _, _, _ in seeds], dtype=np.int64)
    sgn = np.array([g for _, g, _, _ in seeds], dtype=np.int64)
    blocks = Blocks(X, Mf[:, pat] * sgn, Sf[:, pat], c)
    cache, corr = FaceCache(blocks), FaceCache(blocks)
    for k, (_, _, _, a) in enumerate(seeds):
        for j in range(c):
            rows = np.nonzero(a[:, j] > 0)[0]
            cache.set_face(k * c + j, rows, a[rows, j])
            corr.set_face(k * c + j, rows, a[rows, j])
    W = np.zeros((pat.size, d, c))
    alpha = np.zeros((P, n, c))
    beta = np.zeros((P, n, c))
    solve_s = 0.0
    check_s = time.perf_counter() - t_start
    converged = False
    loose = rounds > 0
    dropped: set[tuple[int, int]] = set()
    res = None
    burst = FISTA_BURST
    for rnd in range(rounds + 1):
        loose = loose and rnd < rounds
        start = time.perf_counter()
        res = solve_reduced(blocks, cache, corr, Y, W, lam, tol=_LOOSE if loose else tight,
                            burst=burst)
        burst = res.info["burst"]  # a longer burst that paid off is kept for the next round
        W = res.W
        solve_s += time.perf_counter() - start
        start = time.perf_counter()
        norms = group_norms(W)
        top = float(norms.max(initial=0.0))
        entry = {"round": rnd, "blocks": int(pat.size), "loose": loose,
                 "active": int(np.sum(norms > 1e-6 * top)), "objective": res.info["objective"],
                 "reduced_gap": res.info["gap"], "seconds": time.perf_counter() - t_start,
                 **{k: res.info[k] for k in ("fista_steps", "newton_steps", "rows_added",
                                             "rounds", "nnls")}}
        entry["inner_rounds"] = entry.pop("rounds")
        entry["inner_nnls"] = entry.pop("nnls")
        info["history"].append(entry)
        R = Y - res.Yhat
        C = adjoint(X, M, R)
        in_ws = {1: np.zeros(P, dtype=bool), -1: np.zeros(P, dtype=bool)}
        for i, g in zip(pat.tolist(), sgn.tolist(), strict=True):
            in_ws[g][i] = True
        found, nnls, mult_of = [], 0, {}
        cut = lam * (1.0 + 1e-3) if loose else threshold
        for g, mult in ((1, alpha), (-1, beta)):
            vals, exact, mult_of[g], count = screen_values(
                X, M, g * C, cut, alpha=mult, exclude=in_ws[g], want=add, limit=add,
                steps=_SCREEN_STEPS, sharpen=False)
            nnls += count
            found += [(float(vals[i]), int(i), g) for i in
                      np.nonzero(exact & (vals > cut) & ~in_ws[g])[0]]
        found.sort(reverse=True)
        new_blocks = found[:add]
        entry.update({"nnls": nnls, "violating": len(found), "added_blocks": len(new_blocks),
                      "max_violation": max(0.0, found[0][0] / lam - 1.0) if found else 0.0})
        if loose and len(found) < add:
            loose = False  # few blocks missing: the next solve may be the last
            if not new_blocks:
                check_s += time.perf_counter() - start
                continue  # same working set, solved again to full accuracy
        if not new_blocks:
            converged = res.info["gap"] <= tight
            check_s += time.perf_counter() - start
            if converged:
                break
            continue  # the reduced solve stopped short: go on from where it is
        if rnd == rounds:
            check_s += time.perf_counter() - start
            break
        keys = list(zip(pat.tolist(), sgn.tolist(), strict=True))
        again = np.array([key in dropped for key in keys], dtype=bool)
        keep = np.nonzero((norms > 1e-6 * top) | again)[0]
        dropped.update(keys[b] for b in range(pat.size) if b not in set(keep.tolist()))
        entry["dropped_blocks"] = int(pat.size - keep.size)
        cache.keep(keep)
        corr.keep(keep)
        pat, sgn, W = pat[keep], sgn[keep], W[keep]
        new_pat = np.array([i for _, i, _ in new_blocks], dtype=np.int64)
        new_sgn = np.array([g for _, _, g in new_blocks], dtype=np.int64)
        pat, sgn = np.concatenate([pat, new_pat]), np.concatenate([sgn, new_sgn])
        W = np.concatenate([W, np.zeros((new_pat.size, d, c))])
        blocks = Blocks(X, Mf[:, pat] * sgn, Sf[:, pat], c)
        old_cache, old_corr = cache, corr
        cache, corr = FaceCache(blocks), FaceCache(blocks)
        for q in range(old_cache.Q):
            cache.set_face(q, old_cache.rows[q])
            corr.set_face(q, old_corr.rows[q])
        base = keep.size * c
        for k, (i, g) in enumerate(zip(new_pat.tolist(), new_sgn.tolist(), strict=True)):
            a = mult_of[g][i]
            for j in range(c):
                rows = np.nonzero(a[:, j] > 0)[0]
                cache.set_face(base + k * c + j, rows, a[rows, j])
                corr.set_face(base + k * c + j, rows, a[rows, j])
        check_s += time.perf_counter() - start

    start = time.perf_counter()
    V = np.zeros((P, d, c))
    U = np.zeros((P, d, c))
    V[pat[sgn > 0]] = W[sgn > 0]
    U[pat[sgn < 0]] = W[sgn < 0]
    # the exact multipliers of the working-set blocks at the returned residual
    for b, (i, g) in enumerate(zip(pat.tolist(), sgn.tolist(), strict=True)):
        target = alpha if g > 0 else beta
        target[i] = 0.0
        for j in range(c):
            rows, a = res.multipliers[b * c + j]
            target[i, rows, j] = np.maximum(a, 0.0)
    R = Y - res.Yhat
    check_s += time.perf_counter() - start
    info.update({
        "converged": converged,
        "rounds": len(info["history"]) - 1,
        "blocks": int(pat.size),
        "rows": int(pat.size) * n * c,
        "full_rows": 2 * n * P * c,
        "fista_steps": int(sum(h["fista_steps"] for h in info["history"])),
        "newton_steps": int(sum(h["newton_steps"] for h in info["history"])),
        "check_s": check_s,
    })
    return WorkingSetResult(
        weights={"V": V, "U": U},
        dual={"z": R, "alpha": alpha, "beta": beta},
        info=info,
        status=cp.OPTIMAL,
        solver="numpy",
        build_s=0.0,
        solve_s=solve_s + check_s,
        converged=converged,
    )


def run(form: Formulation, data: ProblemData, reg: float, options: SolveOptions) -> Solution:
    """Solve the ReLU program at ``λ = reg`` on a working set and certify over every pattern.

    The loop runs on ``(X/a, Y/s)`` at ``λ/(a s)`` (:func:`~convexnn.problem.ipm_scales`);
    weights map back by ``s/a`` and dual points by ``s``. An uncertified answer is
    returned labelled so, with a warning saying why.
    """
    opts = options.method_options if isinstance(options.method_options, Options) else Options()
    a, s = ipm_scales(data)
    with blas_threads(opts.threads):
        if opts.inner == "newton":
            res = solve_active_set(form, scaled_data(data, a, s), reg / (a * s), options,
                                   warm_start=opts.warm_start, rounds=opts.working_set_rounds,
                                   add=opts.working_set_add)
        else:
            res = solve_working_set(form, scaled_data(data, a, s), reg / (a * s), options,
                                    warm_start=opts.warm_start,
                                    rounds=opts.working_set_rounds, add=opts.working_set_add,
                                    rows=opts.working_set_rows)
        weights = {k: v * (s / a) for k, v in res.weights.items()}
        dual = {k: v * s for k, v in res.dual.items()}
        weights, extra = form.finalize(data, reg, weights, dual, options.form_options)
        sol = form.make_solution(data, reg, weights, options, status=res.status,
                                 solver=res.solver, method="fast", build_s=res.build_s,
                                 solve_s=res.solve_s, dual=dual,
                                 info={"working_set": {**res.info, "scaling": {"X": a, "y": s}},
                                       **extra})
    if not sol.certificate.certified:
        last = res.info["history"][-1]
        warnings.warn(
            f"method='fast' is NOT certified (relative gap "
            f"{sol.certificate.relative_gap:.2e} over all {data.P} patterns)"
            + ("" if res.converged else
               f": the working set did not converge in {res.info['rounds']} rounds "
               f"({last['violating']} violating blocks"
               + (f", {last['added_rows']} violated rows" if "added_rows" in last else "")
               + " left); raise working_set_rounds")
            + ".", RuntimeWarning, stacklevel=3)
    return sol
