"""Hand-written mutants of the certificate rules, each of which a test must kill.

mutmut's operators change one token at a time; the bugs below are the ones the suite once
let through (results/mutation.md), some of them wider than one token. Each is applied to
a copy of the package in a temporary folder and the given tests are run against it: the
mutant is killed when they fail.

    python tests/listed_mutants.py            # every mutant, with the default tests
    python tests/listed_mutants.py --tests tests/test_rules.py ...   # other tests
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: (name, file, original text, mutated text)
MUTANTS = [
    ("relative gap over |dual_objective|", "convexnn/certificate.py",
     "    return gap / abs(objective)\n", "    return gap / abs(dual_objective)\n"),
    ("tolerance exclusive (<)", "convexnn/certificate.py",
     "certified = finite and rel <= tolerance and not failed",
     "certified = finite and rel < tolerance and not failed"),
    ("failed checks ignored by the verdict", "convexnn/certificate.py",
     "certified = finite and rel <= tolerance and not failed",
     "certified = finite and rel <= tolerance"),
    ("weak duality never fails", "convexnn/certificate.py",
     'checks["weak_duality"] = max(0.0, -rel)', 'checks["weak_duality"] = 0.0'),
    ("global check skips the last pattern", "convexnn/global_check.py",
     "    values = form.dual_constraint_values(sd.X, checked.masks, R) * unit\n",
     "    values = form.dual_constraint_values(sd.X, checked.masks, R) * unit\n"
     "    values[-1] = 0.0\n"),
    ("certify_global drops its last candidate, scope kept", "convexnn/global_check.py",
     "                               fallback=max(1000, 10 * data.P))\n",
     "                               fallback=max(1000, 10 * data.P))\n"
     "    cands = replace(cands.subset(np.arange(cands.P - 1)), scope=cands.scope)\n"),
    ("the certificate of scope 'all' drops the primal's checks", "convexnn/global_check.py",
     "tolerance=check.tolerance, scope=\"all\", checks=dict(check.checks))",
     "tolerance=check.tolerance, scope=\"all\")"),
    ("global check ignores the cone violation", "convexnn/global_check.py",
     "passed = bool(rel <= tolerance and feasible and np.isfinite(objective))",
     "passed = bool(rel <= tolerance and np.isfinite(objective))"),
    ("masks_for: ties at zero inactive (>)", "convexnn/patterns.py",
     "        return (X @ self.gates) >= 0\n", "        return (X @ self.gates) > 0\n"),
    ("patterns of gates: ties at zero inactive (>)", "convexnn/patterns.py",
     "    masks = (X @ G) >= 0\n", "    masks = (X @ G) > 0\n"),
    ("verify: the dual-point check always passes", "convexnn/verification.py",
     'checks.add("dual_point", not mism,', 'checks.add("dual_point", True,'),
    ("verify: the verdict is not compared", "convexnn/verification.py",
     'ok = rec["certified"] == cert.certified', "ok = True"),
    ("verify: ties at zero inactive in the pattern check", "convexnn/verification.py",
     "elif not np.array_equal(pats.masks, (Xb @ pats.gates) >= 0):",
     "elif not np.array_equal(pats.masks, (Xb @ pats.gates) > 0):"),
    ("relu certificate drops the cone check", "convexnn/formulations/relu.py",
     'checks={"cone_violation": violation, "dual_violation": dual_violation},',
     'checks={"dual_violation": dual_violation},'),
    ("gated certificate ignores the given dual points", "convexnn/formulations/gated_relu.py",
     "finite_candidates(Y.shape, (*duals, R))", "finite_candidates(Y.shape, (R,))"),
]

DEFAULT_TESTS = ["tests/test_rules.py", "tests/test_verify_rules.py"]


def run_mutant(name: str, path: str, old: str, new: str, tests: list[str]) -> bool:
    """True when the tests fail on the mutant (killed)."""
    with tempfile.TemporaryDirectory(prefix="convexnn-mutant.") as tmp:
        shutil.copytree(ROOT / "convexnn", Path(tmp) / "convexnn",
                        ignore=shutil.ignore_patterns("__pycache__"))
        target = Path(tmp) / path
        text = target.read_text(encoding="utf-8")
        if text.count(old) != 1:
            raise SystemExit(f"{name}: the original text is not found once in {path}")
        target.write_text(text.replace(old, new), encoding="utf-8")
        env = dict(os.environ, PYTHONPATH=tmp, PYTHONDONTWRITEBYTECODE="1")
        code = subprocess.run(
            [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
             "-W", "ignore", *tests], cwd=ROOT / "tests", env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=1800).returncode
        check = subprocess.run([sys.executable, "-c", "import convexnn; print(convexnn.__file__)"],
                               cwd=ROOT / "tests", env=env, capture_output=True, text=True)
        assert check.stdout.startswith(tmp), check.stdout  # the mutant was the one tested
    return code != 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", nargs="+", default=DEFAULT_TESTS)
    args = parser.parse_args()
    tests = [str((ROOT / t).resolve()) for t in args.tests]
    if run_mutant("control (no change)", "convexnn/certificate.py", "def relative_gap(",
                  "def relative_gap(", tests):
        print("the tests fail on the unchanged package: fix them first")
        return 2
    survived = 0
    for name, path, old, new in MUTANTS:
        killed = run_mutant(name, path, old, new, tests)
        survived += not killed
        print(f"{'killed  ' if killed else 'SURVIVED'}  {name}  ({path})", flush=True)
    print(f"{len(MUTANTS) - survived} killed, {survived} survived")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
