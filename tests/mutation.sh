#!/usr/bin/env bash
# Mutation check of the method code with mutmut 3 (docs/testing.md); a developer tool, not part of CI.
#
#   bash tests/mutation.sh                         # every mutant of [tool.mutmut] only_mutate
#   bash tests/mutation.sh 'ltbench.methods.smcl*'  # a subset (mutmut's name patterns)
#   MUTMUT_WORK=/tmp/x MUTMUT_CHILDREN=2 bash tests/mutation.sh
#
# mutmut names a mutant after its file path and the tests import methods/ as `ltbench.methods` (the
# setuptools package-dir mapping), so the run happens in a scratch copy in which methods/ sits at
# ltbench/methods/. Results: `cd $MUTMUT_WORK && mutmut results` / `mutmut show NAME`.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${MUTMUT_WORK:-/tmp/ltbench-mutmut}
BIN=$(dirname "${PYTHON:-$ROOT/.venv/bin/python}")
mkdir -p "$WORK"
rm -rf "$WORK/ltbench" "$WORK/tests" "$WORK/mutants"
cp -r "$ROOT/ltbench" "$WORK/ltbench"
rm -rf "$WORK/ltbench/methods"
cp -r "$ROOT/methods" "$WORK/ltbench/methods"
cp -r "$ROOT/tests" "$WORK/tests"
cp "$ROOT/pyproject.toml" "$WORK/"
find "$WORK" -name __pycache__ -prune -exec rm -rf {} +
cd "$WORK"
# one thread: mutmut forks its workers from a process that has run torch, and a forked OpenMP pool can
# spin until mutmut's CPU-time limit ends it (a spurious "timeout")
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
exec "$BIN/mutmut" run --max-children "${MUTMUT_CHILDREN:-2}" "$@"
