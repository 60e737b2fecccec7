"""Human-readable reports: Markdown tables, the ``summary.md`` of a result, CSV + Markdown.

Nothing here computes a number; it formats numbers that were computed and certified
elsewhere, and says what they mean.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["markdown_table", "summary_markdown", "verdict_text", "write_table", "describe",
           "describe_method", "verify_command"]


def markdown_table(rows: list[Mapping[str, Any]] | list[list[Any]],
                   columns: list[str]) -> str:
    """A GitHub-flavoured Markdown table (floats in ``%.6g``; None as an empty cell)."""
    def cell(v: Any) -> str:
        if v is None:
            return ""
        if isinstance(v, float):
            return f"{v:.6g}"
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(columns) + " |", "| " + " | ".join("---" for _ in columns) + " |"]
    for r in rows:
        vals = [r.get(c, "") for c in columns] if isinstance(r, Mapping) else list(r)
        lines.append("| " + " | ".join(cell(v) for v in vals) + " |")
    return "\n".join(lines) + "\n"


def verdict_text(rec: Mapping[str, Any]) -> str:
    scope = rec.get("scope")
    among = ("the global optimum of the non-convex training problem (every activation "
             "pattern is in the program: scope `all`)" if scope == "all" else
             "optimal among networks whose activation patterns lie in the "
             f"{rec['patterns']['count']} sampled patterns (scope `sampled`)")
    rel, tol = rec.get("relative_gap"), rec.get("tolerance")
    rel_s = "n/a" if rel is None else f"{rel:.2e}"
    if rec.get("certified"):
        return f"**CERTIFIED**: {among}; relative duality gap {rel_s} ≤ tolerance {tol:.0e}."
    failed = rec.get("failed") or []
    why = f" failed checks: {', '.join(failed)};" if failed else ""
    return (f"**NOT CERTIFIED**:{why} relative duality gap {rel_s} against tolerance "
            f"{tol:.0e}. The weights are a feasible point, not a proven optimum.")


def _num(value: Any, fmt: str = ".10g") -> str:
    return "n/a" if value is None else format(value, fmt)


def describe_patterns(rec: Mapping[str, Any]) -> str:
    """What the pattern count means (distinct patterns, gates drawn, scope)."""
    p = rec["patterns"]
    count, method, draws = p["count"], p["method"], p.get("draws")
    if method == "enumerate":
        return (f"{count}: every cell of the hyperplane arrangement of the data "
                f"(scope {p['scope']})")
    if method == "augmented":
        return (f"{count}: a working set grown by pattern augmentation (the certificate's "
                f"scope, `{rec['scope']}`, says what it is optimal among)")
    if method == "sample" and draws:
        merged = (f"; {draws - count} duplicates or all-zero patterns merged away"
                  if draws > count else "")
        return (f"{count} distinct patterns from {draws} Gaussian gates (seed "
                f"{p.get('seed')}{merged}; scope {p['scope']})")
    return f"{count} ({method}, scope {p['scope']})"


def describe_regularisation(rec: Mapping[str, Any]) -> str:
    """The regularisation and, when it was given as a ratio, its unit."""
    reg = rec.get("reg_name", "lam")
    value = rec[reg]
    model = (rec.get("spec") or {}).get("model") or {}
    ratio = model.get(f"{reg}_ratio")
    if reg == "mu":
        text = f"μ = {value:.6g}"
        if ratio:
            text += (f" = mu_ratio {ratio:g} × ‖X‖₂² ({value / ratio:.6g}, the largest "
                     "eigenvalue any kernel of the simplex can have)")
        return text
    text = f"λ = {value:.6g}"
    if ratio:
        text += (f" = lam_ratio {ratio:g} × λ_max ({value / ratio:.6g}, the smallest λ at "
                 "which w = 0 is optimal)")
    return text


def describe_method(rec: Mapping[str, Any]) -> str:
    """What ran: the method, the solver it used, its iteration counts."""
    method, solver, info = rec.get("method"), rec.get("solver"), rec.get("info") or {}
    its = info.get("iterations")
    if method == "ipm":
        return f"interior point ({solver})" + (f", {its} iterations" if its is not None else "")
    if method == "fast" and isinstance(info.get("working_set"), Mapping):  # ReLU
        ws = info["working_set"]
        if ws.get("inner") == "newton":
            return (f"working set solved on the faces of the cones (numpy): "
                    f"{ws.get('rounds')} rounds, {ws.get('blocks')} blocks, "
                    f"{ws.get('fista_steps')} FISTA and {ws.get('newton_steps')} Newton "
                    "steps, certified over every pattern")
        return (f"working-set interior point ({solver}): {ws.get('rounds')} rounds, "
                f"{ws.get('blocks')} blocks, {ws.get('ipm_iterations')} interior-point "
                "iterations, certified over every pattern")
    if method == "fast":
        polish = info.get("polish_rounds") or 0
        cg, dense = info.get("cg_iterations"), info.get("dense_newton_steps")
        how = ("" if cg is None else
               f" ({cg} conjugate-gradient iterations, {dense or 0} exact steps)")
        return (f"first-order on a working set (numpy): {its} iterations, then "
                f"{info.get('newton_steps', 0)} Newton steps over all groups{how}"
                + (f", {polish} interior-point polish round(s) with "
                   f"{str(solver).partition('+')[2]}" if polish else ", no interior point"))
    if method == "reweight":
        extra = info.get("finished_by")
        return (f"iterative reweighting (numpy): {its} updates"
                + (f", finished by the {extra} solver" if extra == "gated" else ""))
    if method == "cholesky":
        return "closed form (one Cholesky factorisation, numpy)"
    if method == "closed_form":
        return "none needed: the regularisation is at least its maximum, so w = 0 is optimal"
    return f"{method} ({solver})"


def describe_network(rec: Mapping[str, Any]) -> str:
    """The recovered network and what its training objective is, in words."""
    net = rec["network"]
    if net.get("neurons") is None:
        return "none"
    text = f"{net['neurons']} neurons"
    obj = net.get("objective")
    reg = rec.get("reg_name", "lam")
    if obj is None:
        return text + (" (one per pattern; kernel regression has no weight decay λ)"
                       if rec["formulation"] == "ntk" else "")
    if reg == "mu":
        lam = (rec.get("info") or {}).get("lam")
        return (text + f"; its weight-decay training objective {obj:.10g} is taken at the "
                f"matched λ = μ Σ‖w_i‖ = {_num(lam, '.6g')}, where it equals the gated-ReLU "
                "optimum p_G(λ) = p_MKL(μ) + λ²/(2μ)")
    if rec.get("outputs", 1) > 1:
        return (text + f"; its training objective {obj:.10g} is at least the convex objective "
                "(with several outputs a block costs its nuclear norm, or for ReLU the sum of "
                "its column norms; equal only for rank-one blocks)")
    return text + f"; its training objective {obj:.10g} equals the convex objective"


def verify_command(rec: Mapping[str, Any], directory: str) -> str:
    """The command that re-derives this result, with the options it needs."""
    source = str(((rec.get("spec") or {}).get("data") or {}).get("source", ""))
    extra = ""
    if source.startswith("uci:"):
        extra = " --uci-root PATH  (unless $CONVEXNN_UCI points at the UCI collection)"
    elif source.startswith(("npz:/", "csv:/")):
        extra = f" --data-root {Path(source.partition(':')[2]).parent}"
    elif not source:
        extra = " --spec SPEC.toml  (no data spec was recorded)"
    return f"convexnn verify {directory}{extra}"


def describe(rec: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The quantities of a certificate record, each with its meaning, as rows."""
    data = rec.get("data") or {}
    t = rec["timings"]
    return [
        ("formulation", f"{rec['formulation']} — {rec.get('title', '')}"),
        ("data", f"{data.get('name') or ''} ({data.get('source') or 'arrays'}): n = "
                 f"{rec['n']}, d = {rec['d']}, outputs = {rec['outputs']}, bias = "
                 f"{str(rec.get('bias', False)).lower()}"),
        ("patterns", describe_patterns(rec)),
        ("regularisation", describe_regularisation(rec)),
        ("method", describe_method(rec) + f"; status {rec['status']}"),
        ("objective", f"{_num(rec['objective'], '.12g')} (primal, recomputed in numpy)"),
        ("dual objective", f"{_num(rec['dual_objective'], '.12g')} (at a dual-feasible point "
                           "built in numpy)"),
        ("relative gap", f"{_num(rec['relative_gap'], '.3e')} (tolerance "
                         f"{rec['tolerance']:.0e})"),
        ("network", describe_network(rec)),
        ("time", f"build {t['build_s']:.3f} s, solve {t['solve_s']:.3f} s, certify "
                 f"{t['certify_s']:.3f} s"),
    ]


def summary_markdown(rec: Mapping[str, Any], directory: str | None = None) -> str:
    """The ``summary.md`` text of a certificate record."""
    rows = [[k, v] for k, v in describe(rec)]
    rows.insert(2, ["data sha256", f"`{rec['data_sha256']}`"])
    rows += [["certified", str(rec["certified"]).lower()], ["convexnn", rec["version"]]]
    title = rec.get("problem") or rec["formulation"]
    where = directory or "DIR"
    return (
        f"# convexnn result: {title}\n\n{verdict_text(rec)}\n\n"
        + markdown_table(rows, ["quantity", "value"])
        + f"\nRe-derive this certificate from the saved arrays and the data alone (no "
        f"solver): `{verify_command(rec, where)}`.\n"
    )


def write_table(directory: Path, stem: str, rows: list[Mapping[str, Any]],
                columns: list[str], title: str = "") -> list[str]:
    """Write ``stem.csv`` and ``stem.md``; returns the file names."""
    import pandas as pd

    # nullable dtypes: a column of integers with gaps stays integers (not 3.0, NaN)
    frame = pd.DataFrame(rows, columns=columns).convert_dtypes()
    frame.to_csv(directory / f"{stem}.csv", index=False)
    head = f"# {title}\n\n" if title else ""
    (directory / f"{stem}.md").write_text(head + markdown_table(rows, columns), encoding="utf-8")
    return [f"{stem}.csv", f"{stem}.md"]
