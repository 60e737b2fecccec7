#!/usr/bin/env bash
# Mutation testing of the functions that decide a verdict (results/mutation.md).
# Run from the repository root:
#   bash tests/mutation.sh                   # every group below, one mutmut run each
#   bash tests/mutation.sh certificate relu  # some groups
#   mutmut results; mutmut show NAME         # survivors and their diffs
# mutmut copies the package and the tests into mutants/ and runs, for each mutant, the
# tests of the [tool.mutmut] selection in pyproject.toml that call the mutated function.
# About two hours for every group on 2 free cores (MAX_CHILDREN workers, default 2).
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
for g in "${@:-${order[@]}}"; do
  echo "=== $g"
  # shellcheck disable=SC2086  # the globs are passed to mutmut unexpanded
  set -f; mutmut run --max-children "${MAX_CHILDREN:-2}" ${groups[$g]}; set +f
done
