#!/usr/bin/env bash
# Mutation testing of the functions that decide a verdict (results/mutation.md).
# Run from the repository root:
#   bash tests/mutation.sh                   # every group below, one mutmut run each
#   bash tests/mutation.sh certificate relu  # some groups
#   bash tests/mutation.sh --summary         # killed / survived / timeout per group
#   mutmut results; mutmut show NAME         # survivors and their diffs
# mutmut copies the package and the tests into mutants/ and runs, for each mutant, the
# tests of the [tool.mutmut] selection in pyproject.toml that call the mutated function.
# Hours for every group on 2 cores (MAX_CHILDREN workers, default 2);
# SAMPLE=0.15 runs (and summarises) a fixed 15 % of each group's mutants, chosen by a hash
# of their names (the same mutants in every checkout).
set -euo pipefail
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
C=convexnn
declare -A groups=(
  [certificate]="$C.certificate.*"
  [global_check]="$C.global_check.x_check_patterns* $C.global_check.x_global_certificate* $C.global_check.x_merge_patterns* $C.global_check.x_certify_global*"
  [patterns]="$C.patterns.xǁPatternsǁmasks_for* $C.patterns.xǁPatternsǁsubset* $C.patterns.x__from_gate_matrix* $C.patterns.x_unique_columns*"
  [gated_relu]="$C.formulations.gated_relu.x_gated_relu_certificate* $C.formulations.gated_relu.x_ball_dual_value*"
  [verification]="$C.verification.x__certificate_checks* $C.verification.x__global__* $C.verification.x__close*"
  [relu]="$C.formulations.relu.x_relu_certificate* $C.formulations.relu.xǁReLUǁdual_point*"
  [results]="$C.results.x_record_sha256* $C.results.x_arrays_sha256*"
)
order=(certificate global_check patterns gated_relu verification relu results)

# The mutants of the globs that have no result yet (a stopped run resumes where it was);
# FRESH=1 runs every mutant of the group again.
pending() {
  python - "$@" <<'PY'
import fnmatch, hashlib, json, os, pathlib, sys
def in_sample(name):
    share = float(os.environ.get("SAMPLE") or 1)
    return int(hashlib.sha256(name.encode()).hexdigest(), 16) % 10_000 < share * 10_000
for meta in sorted(pathlib.Path("mutants").rglob("*.py.meta")):
    for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
        if code is None and any(fnmatch.fnmatch(name, p) for p in sys.argv[1:]) \
                and in_sample(name):
            print(name)
PY
}

if [[ "${1:-}" == "--summary" ]]; then
  for g in "${order[@]}"; do
    set -f
    # shellcheck disable=SC2086
    python - "$g" ${groups[$g]} <<'PY'
import collections, fnmatch, hashlib, json, os, pathlib, sys
from mutmut.stats import status_by_exit_code
def in_sample(name):
    share = float(os.environ.get("SAMPLE") or 1)
    return int(hashlib.sha256(name.encode()).hexdigest(), 16) % 10_000 < share * 10_000
group, pats = sys.argv[1], sys.argv[2:]
count, survivors = collections.Counter(), []
for meta in sorted(pathlib.Path("mutants").rglob("*.py.meta")):
    for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
        if any(fnmatch.fnmatch(name, p) for p in pats) and in_sample(name):
            status = status_by_exit_code[code]
            count[status] += 1
            if status == "survived":
                survivors.append(name)
done = count["killed"] + count["survived"] + count["timeout"] + count["no tests"]
score = f"{(count['killed'] + count['timeout']) / done:.1%}" if done else "-"
print(f"{group:13s} mutants {sum(count.values()):4d}  killed {count['killed']:4d}  "
      f"survived {count['survived']:3d}  timeout {count['timeout']:2d}  "
      f"no tests {count['no tests']:3d}  not run {count['not checked']:4d}  score {score}")
for name in survivors:
    print("    survived:", name)
PY
    set +f
  done
  exit 0
fi

if ! compgen -G "mutants/$C/*.py.meta" > /dev/null; then
  # a first run generates every mutant (and the test statistics) on the way
  mutmut run --max-children "${MAX_CHILDREN:-2}" "$C.certificate.x_ball_scale__mutmut_1"
fi
for g in "${@:-${order[@]}}"; do
  set -f
  if [[ -n "${FRESH:-}" ]]; then
    # shellcheck disable=SC2206  # the globs reach mutmut unexpanded
    names=(${groups[$g]})
  else
    # shellcheck disable=SC2086
    mapfile -t names < <(pending ${groups[$g]})
  fi
  set +f
  echo "=== $g: ${#names[@]} mutants"
  if (( ${#names[@]} )); then
    mutmut run --max-children "${MAX_CHILDREN:-2}" "${names[@]}"
  fi
done
