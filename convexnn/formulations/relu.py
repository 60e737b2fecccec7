"""ReLU network training as a cone-constrained group lasso (SPEC §2).

Primal:  p_R = min_{V,U} ½||Σ_i D_i X (V_i − U_i) − Y||² + λ Σ_i (||V_i||_F + ||U_i||_F)
               s.t.  S_i X V_i ≥ 0,  S_i X U_i ≥ 0   (S_i = 2 D_i − I, column by column)
Dual:    d_R = max_{Z, α_i ≥ 0, β_i ≥ 0} ⟨Y, Z⟩ − ½||Z||²
               s.t.  ||X^T (D_i Z + S_i α_i)||_F ≤ λ,  ||X^T (−D_i Z + S_i β_i)||_F ≤ λ.

Both are built once per pattern set as DPP cvxpy problems with ``λ`` a
``cp.Parameter``. Blocks of all patterns and outputs are the columns of one d × Pc
variable (column ``i·c + k`` is output ``k`` of pattern ``i``), so the 2·P·c cone
constraints are two elementwise matrix inequalities and the group norms one
vectorised ``norm(·, axis=0)`` — no Python loop over patterns.

Masks are constants, not parameters: as parameters cvxpy keeps every zero of the
mask as a structural non-zero, which at n=200, d=5, P=100 made compilation 90×
and the Clarabel solve 6× slower. A changed pattern set is therefore a rebuild
(about 0.1 s at that size).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from ..certificate import Certificate, make_certificate
from ..cones import cone_violation, dual_norms, project_to_cones, screen_values
from ..errors import ConvexNNError, InvalidInputError
from ..networks import ReLUNetwork
from ..ops import adjoint, as_blocks, forward, group_norms
from ..patterns import Patterns
from ..solution import Solution
from ..solvers import run_problem
from .base import Formulation, ProblemData, SolveOptions, check_dpp, ipm_scales, scaled_data

__all__ = [
    "ReLU",
    "ReLUProgram",
    "ReLUDual",
    "build_primal",
    "build_dual",
    "relu_certificate",
    "relu_reg_max",
]

MATH = """\
ReLU network  f(x) = Σ_j (x^T u_j)_+ a_j  trained with
    ½||f(X) − y||² + (λ/2) Σ_j (||u_j||² + a_j²)
is, over the activation patterns D_i = diag(1[X g_i ≥ 0]) with S_i = 2D_i − I,
the cone-constrained group lasso

    p_R = min_{v,u}  ½ || Σ_i D_i X (v_i − u_i) − y ||²  +  λ Σ_i (||v_i||₂ + ||u_i||₂)
          s.t.  S_i X v_i ≥ 0,  S_i X u_i ≥ 0      (each neuron really has pattern D_i)

Dual:  d_R = max_{z, α_i ≥ 0, β_i ≥ 0}  yᵀz − ½||z||²
          s.t.  ||Xᵀ(D_i z + S_i α_i)||₂ ≤ λ,  ||Xᵀ(−D_i z + S_i β_i)||₂ ≤ λ  for every i.
Strong duality holds; p_R ≥ p_G (the gated program on the same patterns).
Certificate (numpy): z = y − ŷ; for each pattern the best multiplier is a
non-negative least-squares solution, min_{α≥0} ||Xᵀ(D_i z + S_i α)|| =
max_{||u||≤1, S_i X u ≥ 0} zᵀD_i X u; scaling (z, α, β) by min(1, λ / max norm)
makes the point exactly dual feasible, gap = p(v, u) − d(z) ≥ 0. The primal's cone
violation Σ_i ||(−S_i X v_i)_+|| + ||(−S_i X u_i)_+|| (relative to ||y||) is checked too.
λ_max = max_i max(||Π_{K_i}(Xᵀ D_i y)||, ||Π_{K_i}(−Xᵀ D_i y)||), K_i = {u : S_i X u ≥ 0}:
the smallest λ at which v = u = 0 is optimal (≤ the gated λ_max).
Network: v_i → neuron (v_i/√||v_i||, +√||v_i||), u_i → (u_i/√||u_i||, −√||u_i||); its
training objective equals p_R up to the cone violation. With ALL patterns
(patterns="all", or augment=True) the optimum is the global optimum of training.
method="fast" solves the same program on a working set of blocks and cone rows,
adding the violated ones (every block's dual constraint is checked in numpy), and
certifies the result over all patterns with the same certificate.
"""


def _layout(M: np.ndarray, c: int) -> tuple[np.ndarray, np.ndarray, sp.csr_matrix]:
    """Masks and signs repeated per output (n × Pc) and the column → output selector E."""
    P = M.shape[1]
    Mc = np.repeat(M, c, axis=1).astype(np.float64)
    E = sp.csr_matrix(
        (np.ones(P * c), (np.arange(P * c), np.tile(np.arange(c), P))), shape=(P * c, c)
    )
    return Mc, 2.0 * Mc - 1.0, E


def _blocks(value: np.ndarray, rows: int, P: int, c: int) -> np.ndarray:
    """(rows, P·c) with column i·c + k → blocks (P, rows, c)."""
    return np.ascontiguousarray(np.asarray(value).reshape(rows, P, c).transpose(1, 0, 2))


def _columns(W: np.ndarray) -> np.ndarray:
    """Blocks (P, rows, c) → (rows, P·c) with column i·c + k."""
    P, rows, c = W.shape
    return W.transpose(1, 0, 2).reshape(rows, P * c)


@dataclass
class ReLUProgram:
    """The built primal: set ``lam.value`` and call ``problem.solve`` to re-solve.

    ``V`` and ``U`` are d × P·c variables (column ``i·c + k`` = output k of block i);
    ``cone_v`` / ``cone_u`` are the two matrix inequalities ``S ∘ (X V) ≥ 0`` whose
    dual values are the multipliers ``α`` / ``β``.
    """

    problem: cp.Problem
    lam: cp.Parameter
    V: cp.Variable
    U: cp.Variable
    cone_v: cp.Constraint
    cone_u: cp.Constraint
    n: int
    d: int
    P: int
    c: int

    def weights(self) -> dict[str, np.ndarray]:
        """The solution as ``{"V": (P, d, c), "U": (P, d, c)}``."""
        return {"V": _blocks(self.V.value, self.d, self.P, self.c),
                "U": _blocks(self.U.value, self.d, self.P, self.c)}

    def multipliers(self) -> dict[str, np.ndarray]:
        """The solver's cone multipliers ``{"alpha": (P, n, c), "beta": (P, n, c)}`` (≥ 0)."""
        out = {}
        for key, con in (("alpha", self.cone_v), ("beta", self.cone_u)):
            if con.dual_value is None:
                raise ConvexNNError("the problem has not been solved yet: no dual values.")
            out[key] = _blocks(con.dual_value, self.n, self.P, self.c)
        return out

    def set_weights(self, V: np.ndarray, U: np.ndarray) -> None:
        """Starting values from blocks (P, d, c) (used by solvers that warm-start)."""
        self.V.value, self.U.value = _columns(V), _columns(U)


@dataclass
class ReLUDual:
    """The built dual: ``Z`` (n × c), ``alpha``/``beta`` (n × P·c, ≥ 0), ``lam`` a parameter."""

    problem: cp.Problem
    lam: cp.Parameter
    Z: cp.Variable
    alpha: cp.Variable
    beta: cp.Variable
    P: int
    c: int

    def multipliers(self) -> dict[str, np.ndarray]:
        n = self.Z.shape[0]
        return {"z": np.asarray(self.Z.value),
                "alpha": _blocks(self.alpha.value, n, self.P, self.c),
                "beta": _blocks(self.beta.value, n, self.P, self.c)}


def _check_shapes(X: np.ndarray, Y: np.ndarray, M: np.ndarray) -> None:
    if Y.ndim != 2 or M.ndim != 2 or Y.shape[0] != X.shape[0] or M.shape[0] != X.shape[0]:
        raise InvalidInputError(
            f"X (n, d), Y (n, c) and M (n, P) must share n; got {X.shape}, {Y.shape}, {M.shape}."
        )


def build_primal(X: np.ndarray, Y: np.ndarray, M: np.ndarray) -> ReLUProgram:
    """The cone-constrained primal of SPEC §2 as a DPP cvxpy problem.

    ``min ½||Σ_i D_i X (V_i − U_i) − Y||² + λ Σ_i (||V_i||_F + ||U_i||_F)``
    ``s.t. S ∘ (X V) ≥ 0, S ∘ (X U) ≥ 0`` (two matrix inequalities, n × P·c each).
    """
    _check_shapes(X, Y, M)
    n, d = X.shape
    P, c = M.shape[1], Y.shape[1]
    Mc, Sc, E = _layout(M, c)
    lam = cp.Parameter(nonneg=True, name="lam")
    V = cp.Variable((d, P * c), name="V")
    U = cp.Variable((d, P * c), name="U")
    XV, XU = X @ V, X @ U
    Yhat = cp.multiply(Mc, XV - XU) @ E  # (n, c): Σ_i D_i X (V_i − U_i)
    norms = [cp.norm(cp.reshape(W, (d * c, P), order="F"), 2, axis=0) for W in (V, U)]
    cone_v, cone_u = cp.multiply(Sc, XV) >= 0, cp.multiply(Sc, XU) >= 0
    problem = cp.Problem(
        cp.Minimize(0.5 * cp.sum_squares(Yhat - Y) + lam * (cp.sum(norms[0]) + cp.sum(norms[1]))),
        [cone_v, cone_u],
    )
    check_dpp(problem, "ReLU primal")
    return ReLUProgram(problem, lam, V, U, cone_v, cone_u, n, d, P, c)


def build_dual(X: np.ndarray, Y: np.ndarray, M: np.ndarray) -> ReLUDual:
    """The dual of SPEC §2 as a DPP cvxpy problem (solved independently of the primal).

    ``max ⟨Y, Z⟩ − ½||Z||²`` s.t. ``||X^T(D_i Z + S_i α_i)||_F ≤ λ``,
    ``||X^T(−D_i Z + S_i β_i)||_F ≤ λ``, ``α, β ≥ 0``.
    """
    _check_shapes(X, Y, M)
    n, d = X.shape
    P, c = M.shape[1], Y.shape[1]
    Mc, Sc, E = _layout(M, c)
    lam = cp.Parameter(nonneg=True, name="lam")
    Z = cp.Variable((n, c), name="Z")
    alpha = cp.Variable((n, P * c), nonneg=True, name="alpha")
    beta = cp.Variable((n, P * c), nonneg=True, name="beta")
    DZ = cp.multiply(Mc, Z @ E.T)  # column i·c + k is D_i z_k
    Ga = X.T @ (DZ + cp.multiply(Sc, alpha))
    Gb = X.T @ (cp.multiply(Sc, beta) - DZ)
    constraints = [cp.norm(cp.reshape(G, (d * c, P), order="F"), 2, axis=0) <= lam
                   for G in (Ga, Gb)]
    problem = cp.Problem(
        cp.Maximize(cp.sum(cp.multiply(Y, Z)) - 0.5 * cp.sum_squares(Z)), constraints
    )
    check_dpp(problem, "ReLU dual")
    return ReLUDual(problem, lam, Z, alpha, beta, P, c)


def relu_reg_max(X: np.ndarray, Y: np.ndarray, M: np.ndarray) -> float:
    """The smallest λ at which ``V = U = 0`` is optimal.

    Zero is optimal iff ``Z = Y`` is dual feasible for some ``α, β ≥ 0``, i.e.
    ``λ ≥ max_i max(||Π_{K_i}(X^T D_i Y)||_F, ||Π_{K_i}(−X^T D_i Y)||_F)`` with
    ``K_i = {u : S_i X u ≥ 0}`` (column-wise) — computed exactly by NNLS.
    """
    C = adjoint(X, M, Y)
    # only the largest value is needed: NNLS in order of the bound ||X^T D_i Y||_F until
    # no remaining bound can beat the best exact value
    va = screen_values(X, M, C, 0.0, want=1)[0]
    vb = screen_values(X, M, -C, 0.0, want=1)[0]
    return float(max(va.max(initial=0.0), vb.max(initial=0.0)))


def relu_objective(X: np.ndarray, Y: np.ndarray, M: np.ndarray, V: np.ndarray, U: np.ndarray,
                   lam: float) -> tuple[float, np.ndarray]:
    """``½||Y − Σ D_i X (V_i − U_i)||² + λ Σ (||V_i|| + ||U_i||)`` and the residual."""
    R = Y - forward(X, M, V - U)
    value = 0.5 * float(np.sum(R * R)) + lam * float(group_norms(V).sum() + group_norms(U).sum())
    return value, R


def relu_certificate(
    X: np.ndarray,
    Y: np.ndarray,
    M: np.ndarray,
    V: np.ndarray,
    U: np.ndarray,
    lam: float,
    *,
    tolerance: float = 1e-6,
    scope: str = "sampled",
    duals: Iterable[Mapping[str, np.ndarray]] = (),
    multipliers: Mapping[str, np.ndarray] | None = None,
    formulation: str = "relu",
) -> tuple[Certificate, dict[str, np.ndarray]]:
    """Numpy certificate of the ReLU program for any primal ``(V, U)`` (P, d, c).

    Candidates for the dual point, the best one kept:

    * the residual ``Z = Y − Ŷ`` with the optimal multipliers for it, pattern by
      pattern (NNLS, only where ``||X^T D_i Z||_F > λ``; elsewhere ``α_i = 0`` is
      already feasible). ``multipliers`` (``{"alpha", "beta"}``, e.g. from a previous
      check) are tried first: where they already bring the constraint to ≤ λ no NNLS is
      run. This never changes the certificate — the scale ``t`` depends only on the
      largest value, and every value above λ is still computed exactly;
    * every ``{"z", "alpha", "beta"}`` in ``duals`` (e.g. the solver's multipliers;
      negative entries of ``alpha``/``beta`` are clipped to 0).

    Each is scaled by ``t = min(1, λ / max_i max(||X^T(D_i Z + S_i α_i)||,
    ||X^T(−D_i Z + S_i β_i)||))`` — the constraints are positively homogeneous in
    ``(Z, α, β)`` — which makes it exactly feasible; its value is ``⟨Y, tZ⟩ − ½||tZ||²``.

    Checks: ``cone_violation`` = ``Σ_i ||(−S_i X V_i)_+||_F + ||(−S_i X U_i)_+||_F``
    divided by ``||Y||_F`` (a bound on the relative prediction error of the ReLU network
    the point encodes), and ``dual_violation`` = relative excess of the kept dual
    point's norms over λ, recomputed from the point itself.

    Returns
    -------
    certificate : Certificate
    dual : dict with ``z`` (n, c), ``alpha`` (P, n, c), ``beta`` (P, n, c).
    """
    P, d, c = V.shape
    primal, R = relu_objective(X, Y, M, V, U, lam)
    violation = cone_violation(X, M, V, U) / max(float(np.linalg.norm(Y)), 1e-12)

    C = adjoint(X, M, R)
    warm = _multipliers(multipliers, P, X.shape[0], c)
    va, _, alpha, _ = screen_values(X, M, C, lam, alpha=warm[0])
    vb, _, beta, _ = screen_values(X, M, -C, lam, alpha=warm[1])
    candidates = [(R, alpha, beta, max(va.max(initial=0.0), vb.max(initial=0.0)))]
    for dual in duals:
        try:
            z = np.asarray(dual["z"], dtype=np.float64).reshape(Y.shape)
            a = np.maximum(np.asarray(dual["alpha"], dtype=np.float64).reshape(P, -1, c), 0.0)
            b = np.maximum(np.asarray(dual["beta"], dtype=np.float64).reshape(P, -1, c), 0.0)
        except (KeyError, ValueError):
            continue
        if a.shape[1] != X.shape[0] or b.shape != a.shape:
            continue
        if not (np.all(np.isfinite(z)) and np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
            continue
        na, nb = dual_norms(X, M, z, a, b)
        candidates.append((z, a, b, max(na.max(initial=0.0), nb.max(initial=0.0))))

    best_val, best = -np.inf, None
    for z, a, b, top in candidates:
        t = 1.0 if top <= lam else lam / top
        val = t * float(np.sum(Y * z)) - 0.5 * t * t * float(np.sum(z * z))
        if val > best_val:
            best_val, best = val, (t * z, t * a, t * b)
    Z, A, B = best
    na, nb = dual_norms(X, M, Z, A, B)
    dual_violation = max(0.0, max(na.max(initial=0.0), nb.max(initial=0.0)) / lam - 1.0)
    cert = make_certificate(
        formulation, primal, best_val, tolerance=tolerance, scope=scope,
        checks={"cone_violation": violation, "dual_violation": dual_violation},
    )
    return cert, {"z": Z, "alpha": A, "beta": B}


def _multipliers(given: Mapping[str, np.ndarray] | None, P: int, n: int, c: int
                 ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Usable copies of ``given["alpha"]``, ``given["beta"]`` (clipped at 0), else None."""
    if given is None:
        return None, None
    try:
        out = tuple(np.maximum(np.asarray(given[k], dtype=np.float64), 0.0).reshape(P, n, c)
                    for k in ("alpha", "beta"))
    except (KeyError, ValueError, TypeError):
        return None, None
    if not all(np.all(np.isfinite(a)) for a in out):
        return None, None
    return out


class ReLU(Formulation):
    """Cone-constrained group lasso of SPEC §2 (ReLU networks)."""

    name = "relu"
    title = "ReLU network ↔ cone-constrained group lasso"
    reg_name = "lam"
    methods = ("ipm", "fast")
    math = MATH
    #: ``method="auto"`` picks ``"fast"`` when the full program has at least this many
    #: cone rows (2·n·P·c); below it both take a fraction of a second (measured: 0.13 s
    #: against 0.05 s at n=60, P=40) and the declarative program is the reference.
    fast_above_rows = 10_000

    def choose_method(self, data: ProblemData, method: str) -> str:
        """``"auto"``: the working-set method for large programs, the declarative one else."""
        if method == "auto":
            return "fast" if 2 * data.n * data.P * data.c >= self.fast_above_rows else "ipm"
        return super().choose_method(data, method)

    def reg_max(self, data: ProblemData) -> float:
        """``λ_max = max_i max(||Π_{K_i}(X^T D_i Y)||_F, ||Π_{K_i}(−X^T D_i Y)||_F)`` (exact)."""
        return relu_reg_max(data.X, data.Y, data.M)

    def _weights(self, data: ProblemData, weights: Mapping[str, np.ndarray]
                ) -> tuple[np.ndarray, np.ndarray]:
        missing = {"V", "U"} - set(weights)
        if missing:
            raise InvalidInputError(
                f"relu weights need keys 'V' and 'U'; missing {sorted(missing)}."
            )
        try:
            V, U = (as_blocks(weights[k], data.P, data.d) for k in ("V", "U"))
        except ValueError as exc:
            raise InvalidInputError(f"relu weights: {exc}.") from None
        if V.shape != U.shape or V.shape[2] != data.c:
            raise InvalidInputError(
                f"relu weights V and U must both have shape ({data.P}, {data.d}, {data.c}); "
                f"got {V.shape} and {U.shape}."
            )
        return V, U

    def certify(self, data: ProblemData, reg: float, weights: Mapping[str, np.ndarray],
                dual: Mapping[str, np.ndarray] | None = None, *, tol: float = 1e-6
                ) -> tuple[Certificate, dict[str, np.ndarray]]:
        V, U = self._weights(data, weights)
        duals = [dual] if dual is not None and {"z", "alpha", "beta"} <= set(dual) else []
        return relu_certificate(data.X, data.Y, data.M, V, U, reg, tolerance=tol,
                                scope=data.patterns.scope, duals=duals,
                                multipliers=duals[0] if duals else None,
                                formulation=self.name)

    def network(self, data: ProblemData, weights: Mapping[str, np.ndarray]) -> ReLUNetwork:
        V, U = self._weights(data, weights)
        return ReLUNetwork.from_weights(V, U, bias=data.bias, single_output=data.single_output)

    def _solve_once(self, data: ProblemData, reg: float, options: SolveOptions, repair: bool,
                    ) -> tuple[dict, dict, dict, Any, float, float]:
        start = time.perf_counter()
        # solved on X/a, Y/s at λ/(a s) (base.ipm_scales); weights map back by s/a, duals by s
        a, s = ipm_scales(data)
        scaled = scaled_data(data, a, s)
        program = build_primal(scaled.X, scaled.Y, scaled.M)
        program.lam.value = reg / (a * s)
        build_s = time.perf_counter() - start
        run = run_problem(program.problem, options.solver, tol=options.tol,
                          verbose=options.verbose, options=dict(options.solver_options))
        weights = {k: v * (s / a) for k, v in program.weights().items()}
        mult = {k: v * s for k, v in program.multipliers().items()}
        V, U = weights["V"], weights["U"]
        R = data.Y - forward(data.X, data.M, V - U)
        na, nb = dual_norms(data.X, data.M, R, mult["alpha"], mult["beta"])
        raw_violation = cone_violation(data.X, data.M, V, U)
        info = {
            "iterations": run.iterations,
            "solver_objective": (None if run.solver_objective is None
                                 else run.solver_objective * s * s),
            "scaling": {"X": a, "y": s},
            # how far the solver's own (z = y − ŷ, α, β) is from dual feasibility
            "solver_dual_violation": max(0.0, float(max(na.max(), nb.max())) / reg - 1.0),
            "solver_cone_violation": raw_violation / max(float(np.linalg.norm(data.Y)), 1e-12),
        }
        if repair and raw_violation > 0:
            # Euclidean projection of every column onto its cone: an exactly feasible point
            V, U = project_to_cones(data.X, data.M, V)[0], project_to_cones(data.X, data.M, U)[0]
            weights = {"V": V, "U": U}
        dual = {"z": R, **mult}
        return weights, dual, info, run, build_s + run.compile_s, run.solve_s

    def solve(self, data: ProblemData, reg: float, options: SolveOptions, *,
              augment: bool = False, candidates: Patterns | int | str | None = None,
              max_rounds: int = 20, add_per_round: int = 20, max_patterns: int = 20_000,
              repair: bool = True, warm_start: str | None = None,
              working_set_rounds: int | None = None, working_set_add: int | None = None,
              working_set_rows: int | None = None, **kwargs: Any) -> Solution:
        """Solve at ``λ = reg`` and certify; with ``augment`` run the cutting-plane loop.

        ``options.method`` is ``"ipm"`` (the declarative program over every pattern and
        row) or ``"fast"`` (the working-set interior point method of
        :mod:`convexnn.formulations.relu_fast`; its certificate covers every pattern too).

        Parameters
        ----------
        augment : bool
            After solving, check the dual constraint for every pattern of the
            arrangement (:func:`convexnn.global_check.check_patterns`); add the most
            violated patterns (up to ``add_per_round``) and re-solve, until none
            violates beyond the tolerance or ``max_rounds`` re-solves were made.
        candidates : Patterns, int, "all" or None
            Patterns the loop checks: ``"all"`` enumerates the arrangement; an int
            samples that many fresh Gaussian gates each round; None enumerates when the
            arrangement has at most ``max_patterns`` cells and samples
            ``max(1000, 10 P)`` gates per round otherwise. The certificate has scope
            ``"all"`` only when the check over all patterns passed.
        repair : bool
            Project each returned column onto its cone (NNLS) so the primal is exactly
            feasible; the solver's own cone violation is kept in ``info``.
        warm_start : {"correlation", "gated"}, default "correlation"
            ``"fast"`` only: the first working set — the blocks most violated at
            ``z = y``, or the active groups of the gated-ReLU optimum.
        working_set_rounds, working_set_add, working_set_rows : int
            ``"fast"`` only: re-solves allowed (default 50), blocks added per round
            (default ``max(10, 2d)``) and cone rows kept per new block (default ``2d + 10``).
            With ``augment`` the re-solves of the augment loop use ``"fast"`` with these
            at their defaults.
        """
        self.reject_options(kwargs, ("augment", "candidates", "max_rounds", "add_per_round",
                                     "max_patterns", "repair", "warm_start",
                                     "working_set_rounds", "working_set_add",
                                     "working_set_rows"))
        if augment:
            from ..global_check import augment_loop, check_augment_options

            check_augment_options(candidates, max_rounds, add_per_round)
        elif candidates is not None:
            raise InvalidInputError("candidates only apply with augment=True.")
        given = [name for name, v in (("warm_start", warm_start),
                                      ("working_set_rounds", working_set_rounds),
                                      ("working_set_add", working_set_add),
                                      ("working_set_rows", working_set_rows)) if v is not None]
        if given and options.method != "fast":
            raise InvalidInputError(
                f"{', '.join(given)} only apply with method='fast' (method is "
                f"{options.method!r}; pass method='fast')."
            )
        fast = {"warm_start": warm_start, "rounds": working_set_rounds,
                "add": working_set_add, "rows": working_set_rows}
        if options.method == "fast":
            from .relu_fast import solve_working_set

            # solved on X/a, Y/s at λ/(a s) (base.ipm_scales); weights map back by s/a
            a, s = ipm_scales(data)
            res = solve_working_set(scaled_data(data, a, s), reg / (a * s), options,
                                    repair=repair,
                                    **{k: v for k, v in fast.items() if v is not None})
            res = replace(res, weights={k: v * (s / a) for k, v in res.weights.items()},
                          dual={k: v * s for k, v in res.dual.items()},
                          info={**res.info, "scaling": {"X": a, "y": s}})
            sol = self.make_solution(data, reg, res.weights, options, status=res.status,
                                     solver=res.solver, method="fast", build_s=res.build_s,
                                     solve_s=res.solve_s, dual=res.dual,
                                     info={"working_set": res.info})
            if not sol.certificate.certified:
                last = res.info["history"][-1]
                warnings.warn(
                    f"method='fast' is NOT certified (relative gap "
                    f"{sol.certificate.relative_gap:.2e} over all {data.P} patterns)"
                    + ("" if res.converged else
                       f": the working set did not converge in {res.info['rounds']} rounds "
                       f"({last['violating']} violating blocks, {last['added_rows']} violated "
                       "rows left); raise working_set_rounds")
                    + ".", RuntimeWarning, stacklevel=3)
        else:
            weights, dual, info, run, build_s, solve_s = self._solve_once(data, reg, options,
                                                                          repair)
            sol = self.make_solution(data, reg, weights, options, status=run.status,
                                     solver=run.solver, method="ipm", build_s=build_s,
                                     solve_s=solve_s, dual=dual, info=info)
        if not augment:
            return sol
        return augment_loop(self, data, reg, options, sol, candidates=candidates,
                            max_rounds=max_rounds, add_per_round=add_per_round,
                            max_patterns=max_patterns, repair=repair)
