"""A formulation taught on a tiny instance (``convexnn explain NAME``).

For a registered formulation this shows, in order: its mathematics (plain text, and its
programs in LaTeX for the Markdown and LaTeX formats), a tiny data set, its declarative
cvxpy problems in cvxpy's own notation with every data matrix named (``X``, ``y``, the
masks ``M``, the signs ``S = 2M − 1``, the design ``A = [D_1 X, …, D_P X]``) and printed
as plain numbers below it, the values the solver finds for each problem, the package's
solution and its numpy certificate, and the network the solution encodes.

Three formats: ``"text"`` (default, for a terminal), ``"markdown"`` and ``"latex"`` (for
lecture notes; the LaTeX fragment needs ``amsmath``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from .formulations import get_formulation
from .ops import design_matrix, group_norms
from .problem import ProblemData, prepare
from .solution import Solution
from .validation import choice, integer, positive
from .validation import seed as valid_seed

__all__ = ["FORMATS", "Explanation", "NamedArray", "ShownProblem", "explain", "explanation",
           "render"]

#: Output formats of :func:`explain`.
FORMATS = ("text", "markdown", "latex")

#: Arrays with at most this many entries are printed in full.
_FULL = 64


@dataclass(frozen=True, eq=False)
class NamedArray:
    """A data matrix of a cvxpy problem, the symbol it is printed as and what it is."""

    symbol: str
    meaning: str
    value: np.ndarray


@dataclass(frozen=True, eq=False)
class ShownProblem:
    """One declarative cvxpy problem of a formulation, built and solved on the instance.

    Attributes
    ----------
    label : str
        ``"primal"`` or ``"dual"``.
    text : str
        The problem in cvxpy's notation, data matrices replaced by their symbols.
    dpp : bool
        Whether the problem is DPP (re-solves for a new regularisation without
        re-compiling).
    scalar_variables, constraints : int
        Its size.
    parameters : tuple of (str, float or ndarray)
        The parameters and their values.
    status : str
        The solver's status for this problem.
    value : float or None
        The optimal value the solver reports for this problem.
    variables : tuple of (str, ndarray)
        The solved variables.
    """

    label: str
    text: str
    dpp: bool
    scalar_variables: int
    constraints: int
    parameters: tuple[tuple[str, Any], ...]
    status: str
    value: float | None
    variables: tuple[tuple[str, np.ndarray], ...]


@dataclass(frozen=True, eq=False)
class Explanation:
    """Everything :func:`explain` prints about one formulation (see :func:`render`)."""

    name: str
    title: str
    math: str
    latex: tuple[str, ...]
    docs: str
    instance: str
    arrays: tuple[NamedArray, ...]
    problems: tuple[ShownProblem, ...]
    solution: Solution
    network_objective: float | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def __repr__(self) -> str:
        return (f"Explanation({self.name}: {len(self.problems)} cvxpy problem(s), "
                f"{self.solution.certificate!r})")


# ---------------------------------------------------------------------------
# Naming the data matrices of a cvxpy problem
# ---------------------------------------------------------------------------


def _dense(value: Any) -> np.ndarray:
    value = value.toarray() if sp.issparse(value) else value
    return np.asarray(value, dtype=np.float64)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal arrays; vectors compare as vectors whatever their orientation."""
    if a.shape == b.shape:
        return bool(np.array_equal(a, b))
    vector = a.size == b.size and max(a.shape, default=1) == a.size \
        and max(b.shape, default=1) == b.size
    return vector and bool(np.array_equal(a.ravel(), b.ravel()))


def _known_arrays(data: ProblemData) -> list[NamedArray]:
    """The arrays the programs are built from, with their symbols."""
    X, Y, M = data.X, data.Y, data.M
    y = "y" if data.c == 1 else "Y"
    A = design_matrix(X, M).toarray()
    return [
        NamedArray("X", f"the inputs, n × d = {X.shape[0]} × {X.shape[1]}", X),
        NamedArray(y, "the targets" + (" (one column per output)" if data.c > 1 else ""), Y),
        NamedArray("M", "the masks: column i is the diagonal of D_i = diag(1[X g_i ≥ 0])", M),
        NamedArray("S", "the signs S = 2M − 1 (+1 where pattern i is active, −1 elsewhere)",
                   2.0 * M - 1.0),
        NamedArray("A", "the design [D_1 X, …, D_P X] (n × dP)", A),
    ]


def _namer(data: ProblemData) -> tuple[Callable[[np.ndarray], str | None], list[NamedArray]]:
    """A function giving the symbol of a constant (or None), and the arrays it named."""
    known = _known_arrays(data)
    used: list[NamedArray] = []
    others: list[NamedArray] = []

    for entry in known[:3]:  # X, y and the masks are always shown
        used.append(entry)

    def use(entry: NamedArray) -> None:
        if all(e is not entry for e in used):
            used.append(entry)
            order = [e.symbol for e in known + others]
            used.sort(key=lambda e: order.index(e.symbol))

    def name(value: np.ndarray) -> str | None:
        if value.size <= 1:
            return None  # scalars print as numbers
        for entry in known:
            for symbol, candidate in ((entry.symbol, entry.value),
                                      (entry.symbol + ".T", entry.value.T)):
                if _same(candidate, value):
                    use(entry)
                    return symbol
        if np.all(value == 1.0):
            return "ones(" + ", ".join(str(k) for k in value.shape) + ")"
        for entry in others:
            if entry.value.shape == value.shape and np.array_equal(entry.value, value):
                return entry.symbol
        entry = NamedArray(f"C{len(others) + 1}", "a constant of the program", value)
        others.append(entry)
        use(entry)
        return entry.symbol

    return name, used


def _renamed(expr: Any, name: Callable[[np.ndarray], str | None]) -> Any:
    """A copy of a cvxpy expression (or constraint) with its constants named."""
    from cvxpy.expressions.constants import Constant

    if isinstance(expr, Constant):
        symbol = name(_dense(expr.value))
        return expr if symbol is None else Constant(expr.value, name=symbol)
    if not expr.args:
        return expr  # variables and parameters
    return expr.copy(args=[_renamed(arg, name) for arg in expr.args])


def _show(label: str, problem: Any, name: Callable[[np.ndarray], str | None],
          solver: str) -> ShownProblem:
    import cvxpy as cp

    readable = cp.Problem(type(problem.objective)(_renamed(problem.objective.expr, name)),
                          [_renamed(c, name) for c in problem.constraints])
    params = tuple((p.name(), float(p.value) if np.size(p.value) == 1 else
                    np.asarray(p.value)) for p in problem.parameters())
    try:
        problem.solve(solver=solver)
        status, value = str(problem.status), problem.value
    except cp.error.SolverError as exc:  # shown, not raised: the certificate comes later
        status, value = f"solver error ({exc})", None
    variables = tuple((v.name(), np.asarray(v.value)) for v in problem.variables()
                      if v.value is not None)
    return ShownProblem(
        label=label, text=str(readable), dpp=bool(problem.is_dcp(dpp=True)),
        scalar_variables=int(problem.size_metrics.num_scalar_variables),
        constraints=len(problem.constraints), parameters=params, status=status,
        value=None if value is None else float(value), variables=variables)


# ---------------------------------------------------------------------------
# Building the explanation
# ---------------------------------------------------------------------------


def explanation(name: str, *, n: int = 8, d: int = 2, gates: int = 4, seed: int = 0,
                ratio: float = 0.1) -> Explanation:
    """Build, solve and certify formulation ``name`` on a tiny planted-ReLU instance.

    Parameters
    ----------
    name : str
        A registered formulation (``convexnn list`` shows them).
    n, d : int, default 8, 2
        Size of the data set ``planted_relu(n, d, neurons=2, noise=0.1, seed=seed)``.
    gates : int, default 4
        Gaussian gates sampled for the patterns (duplicates merge, so ``P ≤ gates``).
    seed : int, default 0
        Seed of the data and of the gates.
    ratio : float, default 0.1
        The regularisation as a fraction of its scale (``λ = ratio · λ_max``, or
        ``μ = ratio · μ_max``).

    Returns
    -------
    Explanation
        The mathematics, the problems as built and solved, the solution and its
        certificate; :func:`render` prints it.
    """
    from .data import planted_relu
    from .solvers import DEFAULT_SOLVER
    from .solving import solve

    form = get_formulation(name)
    n = integer(n, "n", minimum=2, maximum=40)
    d = integer(d, "d", minimum=1, maximum=6)
    gates = integer(gates, "gates", minimum=1, maximum=16)
    seed = valid_seed(seed)
    ratio = positive(ratio, "ratio")
    ds = planted_relu(n, d, neurons=2, noise=0.1, seed=seed)
    data = prepare(ds.X, ds.y, patterns=gates, seed=seed)
    reg = ratio * form.reg_max(data)
    sym = {"lam": "λ", "mu": "μ"}.get(form.reg_name, form.reg_name)
    instance = (f"planted_relu(n={n}, d={d}, neurons=2, noise=0.1, seed={seed}); {gates} "
                f"Gaussian gates give P = {data.P} distinct patterns; {sym} = {ratio:g} · "
                f"{sym}_max = {reg:.6g}.")
    namer, used = _namer(data)
    problems = tuple(_show(label, problem, namer, DEFAULT_SOLVER)
                     for label, problem in form.build_problems(data, reg).items())
    sol = solve(form.name, ds.X, ds.y, patterns=data.patterns, **{form.reg_name: reg})
    net_value = None
    if sol.network is not None and form.reg_name == "lam" and hasattr(sol.network, "objective"):
        net_value = float(sol.network.objective(ds.X, ds.y, sol.lam))
    notes = () if problems else (
        f"{form.name} builds no single cvxpy problem (methods: {', '.join(form.methods)}); "
        "its solve is shown below.",)
    return Explanation(name=form.name, title=form.title, math=form.math.rstrip(),
                       latex=tuple(form.latex), docs=form.docs, instance=instance,
                       arrays=tuple(used), problems=problems, solution=sol,
                       network_objective=net_value, notes=notes)


# ---------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------


def _array(value: np.ndarray, indent: str = "") -> str:
    """Plain numbers (no ``np.float64(…)``), in full for small arrays."""
    value = np.round(_dense(value), 4) + 0.0  # no "-0." for rounding noise
    text = np.array2string(value, precision=4, suppress_small=True, max_line_width=88,
                           threshold=_FULL, edgeitems=3, floatmode="maxprec")
    return text.replace("\n", "\n" + indent)


def _shape(value: np.ndarray) -> str:
    return " × ".join(str(k) for k in np.shape(value)) or "scalar"


def _value(value: Any) -> str:
    if np.size(value) == 1:
        return f"{float(np.asarray(value).ravel()[0]):.10g}"
    return _array(np.asarray(value))


def _verdict(sol: Solution) -> str:
    cert = sol.certificate
    if not cert.certified:
        return "NOT CERTIFIED" + (f" (failed checks: {', '.join(cert.failed)})"
                                  if cert.failed else "")
    scope = ("optimal over every activation pattern of the data" if cert.scope == "all" else
             "optimal for the program over the sampled patterns")
    return f"CERTIFIED — {scope}"


def _certificate_rows(sol: Solution) -> list[tuple[str, str]]:
    cert = sol.certificate
    return [
        ("objective (recomputed in numpy)", f"{cert.objective:.12g}"),
        ("dual objective (feasible point)", f"{cert.dual_objective:.12g}"),
        ("gap", f"{cert.gap:.3e}"),
        ("relative gap", f"{cert.relative_gap:.3e} (tolerance {cert.tolerance:.0e})"),
        ("verdict", _verdict(sol)),
    ]


def _weight_lines(sol: Solution) -> list[str]:
    lines = []
    for key, w in sol.weights.items():
        w = np.asarray(w)
        if w.ndim == 3:
            lines.append(f"{key}: {len(w)} blocks of {w.shape[1]} × {w.shape[2]}; block norms "
                         f"||{key}_i|| = {_array(group_norms(w))}")
        else:
            lines.append(f"{key}: {_array(w)}")
    return lines


def _problem_lines(p: ShownProblem) -> list[str]:
    head = (f"The cvxpy {p.label} problem (DPP: {p.dpp}; {p.scalar_variables} scalar "
            f"variables, {p.constraints} constraint objects):")
    return [head, p.text]


def _solved_lines(p: ShownProblem) -> list[str]:
    out = [f"solved by itself: status {p.status}, optimal value "
           + ("none" if p.value is None else f"{p.value:.10g}")]
    for var, value in p.variables:
        prefix = f"  {var} ({_shape(value)}) = "
        out.append(prefix + (_value(value) if np.size(value) == 1 else
                             _array(value, " " * len(prefix))))
    return out


def _transposes(e: Explanation) -> str:
    """`` (X.T is the transpose of X)`` for the transposed symbols in the problems."""
    names = [a.symbol for a in e.arrays if any(a.symbol + ".T" in p.text for p in e.problems)]
    if not names:
        return ""
    return " (" + ", ".join(f"{k}.T is the transpose of {k}" for k in names) + ")"


def _text(e: Explanation) -> str:
    sol = e.solution
    out = [f"{e.name} — {e.title}", "", e.math or "(this formulation documents no mathematics)"]
    if e.docs:
        out += ["", f"Derivation: {e.docs}"]
    out += ["", f"A tiny instance: {e.instance}"]
    for note in e.notes:
        out += ["", note]
    for p in e.problems:
        out += [""] + _problem_lines(p)
        params = ", ".join(f"{k} = {_value(v)}" for k, v in p.parameters)
        if params:
            out.append(f"with {params}")
        out += _solved_lines(p)
    if e.arrays:
        out += ["", "where" + _transposes(e) + ":"]
        for a in e.arrays:
            out.append(f"  {a.symbol} ({_shape(a.value)}): {a.meaning}")
            out.append("    " + _array(a.value, "    "))
    out += ["", f"Its solution ({sol.solver}, {sol.method}, status {sol.status}):"]
    out += ["  " + line for line in _weight_lines(sol)]
    solver_value = (sol.info or {}).get("solver_objective")
    if solver_value is not None:
        out.append(f"  solver's reported objective {solver_value:.10g}; recomputed in numpy "
                   f"{sol.objective:.10g}")
    out += ["", "Its certificate (numpy, from the solution alone):", f"  {sol.certificate!r}"]
    rows = _certificate_rows(sol)
    width = max(len(k) for k, _ in rows)
    out += [f"  {k:<{width}}  {v}" for k, v in rows]
    if sol.network is not None:
        out += ["", f"The network it encodes: {sol.network!r}"]
        if e.network_objective is not None:
            out.append(f"  its training objective ½||f(X) − y||² + (λ/2) Σ(||u_j||² + a_j²) = "
                       f"{e.network_objective:.10g} (convex optimum {sol.objective:.10g})")
    return "\n".join(out) + "\n"


def _markdown(e: Explanation) -> str:
    sol = e.solution
    out = [f"# `{e.name}` — {e.title}", "", "## The mathematics", ""]
    for eq in e.latex:
        out += ["$$", eq, "$$", ""]
    out += ["```text", e.math or "(this formulation documents no mathematics)", "```", ""]
    if e.docs:
        out += [f"Derivation: `{e.docs}`.", ""]
    out += ["## A tiny instance", "", e.instance, ""]
    out += [note + "\n" for note in e.notes]
    for p in e.problems:
        out += [f"## The cvxpy {p.label} problem", "",
                f"DPP: {p.dpp}; {p.scalar_variables} scalar variables, {p.constraints} "
                "constraint objects.", "", "```text", p.text, "```", ""]
        params = ", ".join(f"`{k}` = {_value(v)}" for k, v in p.parameters)
        if params:
            out += [f"With {params}.", ""]
        out += ["```text"] + _solved_lines(p) + ["```", ""]
    if e.arrays:
        out += ["## The data matrices", "", _transposes(e).strip(" ()").capitalize()
                + ".", ""]
        for a in e.arrays:
            out += [f"`{a.symbol}` ({_shape(a.value)}): {a.meaning}", "", "```text",
                    _array(a.value), "```", ""]
    out += ["## Its solution", "", f"{sol.solver}, method `{sol.method}`, status "
            f"`{sol.status}`.", ""]
    out += [f"- {line}" for line in _weight_lines(sol)] + [""]
    out += ["## Its certificate", "", "Computed in numpy from the solution alone.", "",
            "| quantity | value |", "| --- | --- |"]
    out += [f"| {k} | {v} |" for k, v in _certificate_rows(sol)] + [""]
    if sol.network is not None:
        out += ["## The network it encodes", "", f"`{sol.network!r}`", ""]
        if e.network_objective is not None:
            out += [f"Its training objective is {e.network_objective:.10g}; the convex "
                    f"optimum is {sol.objective:.10g}.", ""]
    return "\n".join(out)


_LATEX_SPECIAL = str.maketrans({"\\": r"\textbackslash{}", "_": r"\_", "%": r"\%", "&": r"\&",
                                "#": r"\#", "{": r"\{", "}": r"\}", "$": r"\$"})
_LATEX_SYMBOLS = (("λ\\_max", r"$\lambda_{\max}$"), ("μ\\_max", r"$\mu_{\max}$"),
                  ("λ", r"$\lambda$"), ("μ", r"$\mu$"), ("↔", r"$\leftrightarrow$"),
                  ("—", "---"), ("–", "--"), ("·", r"$\cdot$"), ("×", r"$\times$"),
                  ("≤", r"$\le$"), ("||", r"$\|$"))


def _tex(text: str) -> str:
    """Plain text (titles, sentences) for LaTeX's text mode (ASCII output)."""
    text = text.translate(_LATEX_SPECIAL)
    for plain, tex in _LATEX_SYMBOLS:
        text = text.replace(plain, tex)
    return text


def _latex(e: Explanation) -> str:
    sol = e.solution
    out = [f"% convexnn explain {e.name} --latex (needs \\usepackage{{amsmath}})",
           f"\\section*{{\\texttt{{{_tex(e.name)}}}: {_tex(e.title)}}}", ""]
    for eq in e.latex:
        out += [r"\begin{equation*}", eq, r"\end{equation*}"]
    out += ["", f"\\paragraph{{A tiny instance.}} {_tex(e.instance)}", ""]
    for p in e.problems:
        out += [f"\\paragraph{{The cvxpy {p.label} problem}} (DPP: {p.dpp}; "
                f"{p.scalar_variables} scalar variables, {p.constraints} constraint objects)",
                r"\begin{verbatim}", p.text, r"\end{verbatim}"]
        params = ", ".join(f"\\texttt{{{_tex(k)}}} $= {_value(v)}$" for k, v in p.parameters
                           if np.size(v) == 1)
        if params:
            out.append(f"with {params}; solved by itself: status \\texttt{{{_tex(p.status)}}}"
                       + ("" if p.value is None else f", optimal value ${p.value:.10g}$") + ".")
    if e.arrays:
        out += ["", r"\paragraph{The data matrices}" + _tex(_transposes(e)),
                r"\begin{verbatim}"]
        for a in e.arrays:
            out += [f"{a.symbol} ({_shape(a.value).replace('×', 'x')}):", _array(a.value)]
        out.append(r"\end{verbatim}")
    out += ["", r"\paragraph{Its certificate} (numpy, from the solution alone)", "",
            r"\begin{tabular}{ll}"]
    out += [f"{_tex(k)} & {_tex(v)} \\\\" for k, v in _certificate_rows(sol)]
    out += [r"\end{tabular}", ""]
    return "\n".join(out)


_RENDER = {"text": _text, "markdown": _markdown, "latex": _latex}


def render(explanation: Explanation, fmt: str = "text") -> str:
    """The explanation as plain text, Markdown or a LaTeX fragment.

    Parameters
    ----------
    explanation : Explanation
        From :func:`explanation`.
    fmt : {"text", "markdown", "latex"}, default "text"
        The output format.

    Returns
    -------
    str
        The rendered explanation.
    """
    return _RENDER[choice(fmt, "fmt", FORMATS)](explanation)


def explain(name: str, fmt: str = "text", **instance: Any) -> str:
    """A formulation's mathematics, cvxpy problems, solved values and certificate.

    Parameters
    ----------
    name : str
        A registered formulation (``gated_relu``, ``relu``, ``ntk``, ``mkl``,
        ``reweight``).
    fmt : {"text", "markdown", "latex"}, default "text"
        The output format.
    **instance
        The tiny instance (``n``, ``d``, ``gates``, ``seed``, ``ratio``) of
        :func:`explanation`.

    Returns
    -------
    str
        What ``convexnn explain NAME`` prints.

    Examples
    --------
    >>> from convexnn.explain import explain
    >>> text = explain("gated_relu")
    >>> "CERTIFIED" in text and "np.float64(" not in text
    True
    """
    fmt = choice(fmt, "fmt", FORMATS)
    return render(explanation(name, **instance), fmt)
