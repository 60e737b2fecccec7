"""``problems``: every bundled problem whose formulation is registered and whose data are
available — solved, saved and verified from the saved files (one table)."""

from __future__ import annotations

import time
import tomllib
from typing import Any

from ..errors import InvalidInputError
from ..formulations import REGISTRY
from ..problems import solve_spec
from ..results import write_result
from ..spec import bundled_problems, load_spec
from ..verification import verify
from ._common import Context, write_table


def run(ctx: Context) -> dict[str, Any]:
    out, target, uci_root, log = ctx.out, ctx.target, ctx.uci_root, ctx.log
    rows, files = [], []
    for name, (path, _) in bundled_problems().items():
        row: dict[str, Any] = {"problem": name}
        formulation = tomllib.loads(path.read_text(encoding="utf-8")).get(
            "model", {}).get("formulation")
        row["formulation"] = formulation
        if formulation not in REGISTRY:
            log(f"reproduce problems: {name}: SKIPPED (formulation {formulation!r} is not "
                "available in this version)")
            rows.append(row | {"status": "skipped", "note": "formulation not available"})
            continue
        log(f"reproduce problems: {name}")
        try:
            spec = load_spec(path)
            start = time.perf_counter()
            sol, ds = solve_spec(spec, uci_root=uci_root)
            seconds = time.perf_counter() - start
        except InvalidInputError as exc:  # e.g. the UCI folder is absent
            why = "the UCI collection was not found" if "UCI" in str(exc) else \
                str(exc).split(";")[0][-120:]
            log(f"reproduce problems: {name}: SKIPPED ({why})")
            rows.append(row | {"status": "skipped", "note": why})
            continue
        (out / name).mkdir()
        write_result(sol, out / name, ds, spec=spec, label=str(target / name))
        check = verify(out / name, ds)
        files.append(f"{name}/")
        rows.append(row | {
            "status": sol.status, "n": sol.n, "d": sol.d, "outputs": sol.outputs,
            "patterns": sol.patterns.P, "scope": sol.scope, sol.reg_name: sol.reg,
            "objective": sol.objective, "relative_gap": sol.certificate.relative_gap,
            "certified": sol.certified, "verified": check.valid,
            "neurons": getattr(sol.network, "neurons", None), "seconds": seconds,
        })
    cols = ["problem", "formulation", "status", "n", "d", "outputs", "patterns", "scope",
            "lam", "mu", "objective", "relative_gap", "certified", "verified", "neurons",
            "seconds", "note"]
    cols = [c for c in cols if any(c in r for r in rows)]
    files += write_table(out, "problems", rows, cols, "Bundled problems: certified and verified")
    skipped = [r["problem"] for r in rows if r.get("status") == "skipped"]
    return {"files": files, "solved": sum("verified" in r for r in rows),
            "verified": sum(bool(r.get("verified")) for r in rows), "skipped": skipped}
