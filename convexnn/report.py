"""Human-readable reports: Markdown tables, the ``summary.md`` of a result, CSV + Markdown.

Nothing here computes a number; it formats numbers that were computed and certified
elsewhere, and says what they mean.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["markdown_table", "summary_markdown", "verdict_text", "write_table"]


def markdown_table(rows: list[Mapping[str, Any]] | list[list[Any]],
                   columns: list[str]) -> str:
    """A GitHub-flavoured Markdown table (floats in ``%.6g``)."""
    def cell(v: Any) -> str:
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


def summary_markdown(rec: Mapping[str, Any], directory: str | None = None) -> str:
    """The ``summary.md`` text of a certificate record."""
    reg = rec.get("reg_name", "lam")
    sym = {"lam": "λ", "mu": "μ"}.get(reg, reg)
    pat, net, t = rec["patterns"], rec["network"], rec["timings"]
    data = rec.get("data") or {}
    net_s = "none" if net.get("neurons") is None else f"{net['neurons']} neurons"
    if net.get("objective") is not None:
        net_s += f", training objective {net['objective']:.10g}"
    rows = [
        ["formulation", f"`{rec['formulation']}` — {rec.get('title', '')}"],
        ["data", f"{data.get('name') or ''} (`{data.get('source') or 'arrays'}`): "
                 f"n = {rec['n']}, d = {rec['d']}, outputs = {rec['outputs']}, "
                 f"bias = {str(rec.get('bias', False)).lower()}"],
        ["data sha256", f"`{rec['data_sha256']}`"],
        ["patterns", f"{pat['count']} ({pat['method']}, scope {pat['scope']})"],
        [f"{sym} ({reg})", f"{rec[reg]:.10g}"],
        ["solver", f"{rec['solver']} ({rec.get('method', '')}), status {rec['status']}"],
        ["objective (primal, recomputed in numpy)", f"{rec['objective']:.12g}"],
        ["dual objective (numpy dual-feasible point)", f"{rec['dual_objective']:.12g}"],
        ["gap", f"{rec['gap']:.3e}"],
        ["relative gap", f"{rec['relative_gap']:.3e} (tolerance {rec['tolerance']:.0e})"],
        ["certified", str(rec["certified"]).lower()],
        ["network", net_s],
        ["timings", f"build {t['build_s']:.3f} s, solve {t['solve_s']:.3f} s, "
                    f"certify {t['certify_s']:.3f} s"],
        ["convexnn", rec["version"]],
    ]
    title = rec.get("problem") or rec["formulation"]
    where = directory or "DIR"
    return (
        f"# convexnn result: {title}\n\n{verdict_text(rec)}\n\n"
        + markdown_table(rows, ["quantity", "value"])
        + f"\nRe-derive this certificate from the saved arrays and the data alone (no "
        f"solver): `convexnn verify {where}`.\n"
    )


def write_table(directory: Path, stem: str, rows: list[Mapping[str, Any]],
                columns: list[str], title: str = "") -> list[str]:
    """Write ``stem.csv`` and ``stem.md``; returns the file names."""
    import pandas as pd

    pd.DataFrame(rows, columns=columns).to_csv(directory / f"{stem}.csv", index=False)
    head = f"# {title}\n\n" if title else ""
    (directory / f"{stem}.md").write_text(head + markdown_table(rows, columns), encoding="utf-8")
    return [f"{stem}.csv", f"{stem}.md"]
