"""ReLU network training as a cone-constrained group lasso (``docs/math/relu.md``).

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

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from ..certificate import Certificate, best_candidate, make_certificate
from ..cones import cone_violation, dual_norms, project_to_cones, screen_values, support_values
from ..errors import ConvexNNError, InvalidInputError
from ..networks import ReLUNetwork
from ..ops import adjoint, as_blocks, forward, group_norms
from ..problem import ProblemData, ipm_scales, scaled_data
from ..validation import Options, boolean
from .base import Formulation, Primal, check_dpp
from .gated_relu import ball_dual_value

__all__ = [
    "ReLU",
    "ReLUOptions",
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

#: The programs in LaTeX (amsmath), shown by ``convexnn explain --latex`` / ``--markdown``.
LATEX = (
    r"L(u, a) = \tfrac12\lVert f(X) - y\rVert_2^2 + \tfrac{\lambda}{2}\sum_{j=1}^m"
    r"\big(\lVert u_j\rVert_2^2 + a_j^2\big),\quad f(x) = \sum_{j=1}^m (x^\top u_j)_+\,a_j",
    r"\begin{aligned} p_R = \min_{v,u}\ & \tfrac12\Big\lVert\sum_{i=1}^P D_iX(v_i - u_i) - y"
    r"\Big\rVert_2^2 + \lambda\sum_{i=1}^P\big(\lVert v_i\rVert_2 + \lVert u_i\rVert_2\big)\\"
    r" \text{s.t. }\ & S_iXv_i \ge 0,\quad S_iXu_i \ge 0,\quad S_i = 2D_i - I \end{aligned}",
    r"\begin{aligned} d_R = \max_{z,\ \alpha_i\ge0,\ \beta_i\ge0}\ & y^\top z"
    r" - \tfrac12\lVert z\rVert_2^2\\ \text{s.t. }\ & \lVert X^\top(D_iz + S_i\alpha_i)"
    r"\rVert_2 \le \lambda,\quad \lVert X^\top(-D_iz + S_i\beta_i)\rVert_2 \le \lambda"
    r" \end{aligned}",
)


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

    def set_reg(self, reg: float, a: float = 1.0, s: float = 1.0) -> None:
        """``λ' = λ/(a s)`` on data ``(X/a, Y/s)``."""
        self.lam.value = reg / (a * s)

    def solution(self, a: float = 1.0, s: float = 1.0) -> tuple[dict, dict]:
        """``V, U = (s/a)·(V', U')``; the cone multipliers ``α, β = s·(α', β')``."""
        if self.V.value is None or self.U.value is None:
            return {}, {}
        weights = {k: v * (s / a) for k, v in self.weights().items()}
        try:
            dual = {k: v * s for k, v in self.multipliers().items()}
        except ConvexNNError:
            dual = {}
        return weights, dual


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

    def set_reg(self, reg: float, a: float = 1.0, s: float = 1.0) -> None:
        self.lam.value = reg / (a * s)

    def solution(self, a: float = 1.0, s: float = 1.0) -> tuple[dict, dict]:
        """No primal weights; the dual point and multipliers, scaled back by ``s``."""
        if self.Z.value is None:
            return {}, {}
        return {}, {k: v * s for k, v in self.multipliers().items()}

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
    """The cone-constrained primal as a DPP cvxpy problem.

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
    """The dual as a DPP cvxpy problem (solved independently of the primal).

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
      negative entries of ``alpha``/``beta`` are clipped to 0; without ``"z"`` the
      multipliers are taken for ``z = Y − Ŷ``).

    Each is scaled by the best ``t ∈ [0, λ / max_i max(||X^T(D_i Z + S_i α_i)||,
    ||X^T(−D_i Z + S_i β_i)||)]`` — the constraints are positively homogeneous in
    ``(Z, α, β)`` — which keeps it exactly feasible; its value is ``⟨Y, tZ⟩ − ½||tZ||²``.

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
    candidates = []  # the given dual points first: a re-derivation keeps them
    for dual in duals:
        try:
            z = np.asarray(dual.get("z", R), dtype=np.float64).reshape(Y.shape)
            a = np.maximum(np.asarray(dual["alpha"], dtype=np.float64).reshape(P, -1, c), 0.0)
            b = np.maximum(np.asarray(dual["beta"], dtype=np.float64).reshape(P, -1, c), 0.0)
        except (KeyError, ValueError, TypeError):
            continue
        if a.shape[1] != X.shape[0] or b.shape != a.shape:
            continue
        if not (np.all(np.isfinite(z)) and np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
            continue
        na, nb = dual_norms(X, M, z, a, b)
        candidates.append((z, a, b, max(na.max(initial=0.0), nb.max(initial=0.0))))
    if np.all(np.isfinite(R)):  # a non-finite point leaves only the given candidates (or 0)
        candidates.append((R, alpha, beta, max(va.max(initial=0.0), vb.max(initial=0.0))))

    def value(cand: tuple) -> tuple[float, tuple]:
        z, a, b, top = cand
        val, t = ball_dual_value(Y, z, top, lam)
        return val, (t * z, t * a, t * b)

    best_val, best = best_candidate(candidates, value)
    if best is None:  # a non-finite residual: nothing is feasible but 0
        best_val, best = 0.0, (np.zeros_like(Y), np.zeros_like(alpha), np.zeros_like(beta))
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


@dataclass(frozen=True)
class ReLUOptions(Options):
    """Options of the ReLU program for every method.

    ``repair``: project each returned column onto its cone (NNLS) so the primal is
    exactly feasible; the solver's own cone violation is kept in ``info``.
    """

    repair: bool = True

    def __post_init__(self) -> None:
        boolean(self.repair, "repair")


class ReLU(Formulation):
    """Cone-constrained group lasso of ReLU networks (``docs/math/relu.md``).

    Methods: ``"ipm"`` (the declarative program over every pattern and cone row) and
    ``"fast"`` (:mod:`convexnn.methods.relu_working_set`: the same program on a working
    set of blocks and cone rows, certified over every pattern). With ``augment=True``
    (:mod:`convexnn.methods.augment`) violated patterns of the arrangement are added
    until the check over all of them passes.
    """

    name = "relu"
    title = "ReLU network ↔ cone-constrained group lasso"
    reg_name = "lam"
    methods = {"ipm": "ipm", "fast": "relu_working_set"}
    Options = ReLUOptions
    math = MATH
    latex = LATEX
    docs = "docs/math/relu.md"
    global_check = True
    #: Measured cost model of ``method="auto"``: ``log t = β₀ + β_n log n + β_P log P +
    #: β_d log d + β_c log c`` (seconds) for each method (see :meth:`choose_method`).
    COST_MODEL: ClassVar[dict[str, tuple[float, float, float, float, float]]] = {
        "fast": (-7.532, 0.515, 0.649, 0.842, 0.377),
        "ipm": (-12.504, 1.533, 0.904, 0.756, 1.666),
    }

    def predicted_seconds(self, data: ProblemData) -> dict[str, float]:
        """The cost model's time of each method on ``data`` (seconds, a 2-core machine)."""
        logs = np.log([data.n, data.P, data.d, data.c])
        return {m: float(np.exp(b[0] + np.dot(b[1:], logs))) for m, b in self.COST_MODEL.items()}

    def choose_method(self, data: ProblemData, method: str) -> str:
        """``"auto"``: the method the measured cost model predicts to be faster.

        Both methods were timed on planted-ReLU teachers (``benchmarks/bench_relu.py
        --cost-model``: n ∈ {40, 100, 250}, d ∈ {3, 8}, P ∈ {20, 60}, c ∈ {1, 3},
        λ = 0.1 λ_max, the best of 2 runs in one process, every answer certified) and a
        log-linear model fitted to each (root-mean-square error of log t: 0.33 for fast,
        0.58 for ipm):

            fast:  t ≈ e^−7.53 · n^0.52 · P^0.65 · d^0.84 · c^0.38
            ipm:   t ≈ e^−12.5 · n^1.53 · P^0.90 · d^0.76 · c^1.67

        The declarative program grows with the number of cone rows ``2nPc`` (its KKT
        system) and steeply with the outputs — one cone per output column; the working
        set grows with the active blocks only. Their ratio is
        ``t_ipm/t_fast ≈ e^−4.97 n^1.02 P^0.26 d^−0.09 c^1.29``: about 1 at n = 60, P = 40,
        c = 1 (both ~0.1 s: measured 0.08 against 0.09 s at n = 40, P = 20) and 49 at
        n = 250, P = 59, c = 3 (0.59 against 28.8 s). ``"ipm"`` is chosen when its
        prediction is the smaller, i.e. for the smallest single-output programs only.
        """
        if method == "auto":
            cost = self.predicted_seconds(data)
            return "ipm" if cost["ipm"] < cost["fast"] else "fast"
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

    def primal(self, data: ProblemData, reg: float, weights: Mapping[str, np.ndarray]
               ) -> Primal:
        V, U = self._weights(data, weights)
        value, R = relu_objective(data.X, data.Y, data.M, V, U, reg)
        violation = cone_violation(data.X, data.M, V, U) / max(float(np.linalg.norm(data.Y)),
                                                               1e-12)
        return Primal(value, R, {"cone_violation": violation})

    def _certify(self, data: ProblemData, reg: float, weights: Mapping[str, np.ndarray],
                dual: Mapping[str, np.ndarray] | None = None, *, tol: float = 1e-6
                ) -> tuple[Certificate, dict[str, np.ndarray]]:
        V, U = self._weights(data, weights)
        duals = [dual] if dual is not None and {"alpha", "beta"} <= set(dual) else []
        return relu_certificate(data.X, data.Y, data.M, V, U, reg, tolerance=tol,
                                scope=data.patterns.scope, duals=duals,
                                multipliers=duals[0] if duals else None,
                                formulation=self.name)

    def zero_weights(self, data: ProblemData) -> dict[str, np.ndarray]:
        zero = np.zeros((data.P, data.d, data.c))
        return {"V": zero, "U": zero.copy()}

    def zero_threshold(self, data: ProblemData) -> float:
        """The gated ``λ_max = max_i ||Xᵀ D_i Y||_F``: the support values over the cones
        never exceed it, so zero is optimal above it (one GEMM instead of NNLS)."""
        a, s = ipm_scales(data)
        sc = scaled_data(data, a, s)
        return float(group_norms(adjoint(sc.X, sc.M, sc.Y)).max(initial=0.0)) * a * s

    def dual_constraint_values(self, X: np.ndarray, M: np.ndarray, R: np.ndarray) -> np.ndarray:
        """``max(||Π_{K_i}(Xᵀ D_i R)||, ||Π_{K_i}(−Xᵀ D_i R)||)`` for every pattern (NNLS)."""
        C = adjoint(X, M, R)
        return np.maximum(support_values(X, M, C)[0], support_values(X, M, -C)[0])

    def dual_constraint_bounds(self, X: np.ndarray, M: np.ndarray, R: np.ndarray,
                               threshold: float) -> np.ndarray:
        """:meth:`dual_constraint_values` where they exceed ``threshold``; elsewhere an upper
        bound at most ``threshold`` (the bounds and greedy steps of
        :func:`~convexnn.cones.screen_values`: ``||Xᵀ D_i R||`` first, NNLS only above it).
        A dual point scaled by ``λ / max_i value_i`` needs nothing more."""
        C = adjoint(X, M, R)
        return np.maximum(screen_values(X, M, C, threshold)[0],
                          screen_values(X, M, -C, threshold)[0])

    def dual_point(self, data: ProblemData, Z: np.ndarray) -> dict[str, np.ndarray]:
        """``z`` with the multipliers ``α, β`` that minimise its constraint values (NNLS)."""
        C = adjoint(data.X, data.M, Z)
        return {"z": Z, "alpha": support_values(data.X, data.M, C)[1],
                "beta": support_values(data.X, data.M, -C)[1]}

    def network(self, data: ProblemData, weights: Mapping[str, np.ndarray]) -> ReLUNetwork:
        V, U = self._weights(data, weights)
        return ReLUNetwork.from_weights(V, U, bias=data.bias, single_output=data.single_output)

    def build_primal(self, data: ProblemData) -> ReLUProgram:
        return build_primal(data.X, data.Y, data.M)

    def build_dual(self, data: ProblemData) -> ReLUDual:
        return build_dual(data.X, data.Y, data.M)

    def ipm_size(self, data: ProblemData) -> tuple[int, int]:
        """Two matrix cone inequalities of ``n·P·c`` rows with ``d`` non-zeros each, the fit."""
        n, d, P, c = data.n, data.d, data.P, data.c
        nnz = 2 * n * P * c * d + 2 * int(np.count_nonzero(data.M)) * d * c
        return nnz, 2 * n * P * c + n * c + 2 * P * (d * c + 1)

    def finalize(self, data: ProblemData, reg: float, weights: dict[str, np.ndarray],
                 dual: Mapping[str, np.ndarray], options: Options
                 ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Record how far the method's point is from feasibility; with ``repair`` project
        every column onto its cone (an exactly feasible point)."""
        V, U = self._weights(data, weights)
        R = data.Y - forward(data.X, data.M, V - U)
        raw = cone_violation(data.X, data.M, V, U)
        info: dict[str, Any] = {
            "solver_cone_violation": raw / max(float(np.linalg.norm(data.Y)), 1e-12)}
        if "alpha" in dual and "beta" in dual:
            # how far the method's own (z = y − ŷ, α, β) is from dual feasibility
            na, nb = dual_norms(data.X, data.M, R, dual["alpha"], dual["beta"])
            top = float(max(na.max(initial=0.0), nb.max(initial=0.0)))
            info["solver_dual_violation"] = max(0.0, top / reg - 1.0)
        if getattr(options, "repair", True) and raw > 0:
            V = project_to_cones(data.X, data.M, V)[0]
            U = project_to_cones(data.X, data.M, U)[0]
        return {"V": V, "U": U}, info
