#!/usr/bin/env bash
# One-command self-check for a machine with a CUDA build of torch (docs/performance.md, "GPU").
#
#   bash scripts/gpu-check.sh OUTDIR [--device cuda|cpu] [--budget SECONDS] [--reduced]
#
# Runs `ltbench doctor`, the CUDA tests, `ltbench bench` for ERM / SCL / SMCL and, when Fashion-MNIST's raw
# files are found ($LTBENCH_FASHION_MNIST_DIR, else ltbench's usual places), ERM / DRW / DRW+SMCL on
# Fashion-MNIST-LT at the paper preset. Every step is recorded (a failing step does not stop the others);
# OUTDIR gets at most 8 flat files: summary.json, summary.md, doctor.json, pytest.log, bench-*.json, train.json.
# It never installs or upgrades torch and needs no network.
set -u

if [ $# -lt 1 ] || [ "${1#-}" != "$1" ]; then
    echo "usage: bash scripts/gpu-check.sh OUTDIR [--device cuda|cpu] [--budget SECONDS] [--reduced]" >&2
    exit 2
fi
OUTDIR=$1
shift
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-python3}
mkdir -p "$OUTDIR" || { echo "error: cannot create $OUTDIR" >&2; exit 2; }
OUTDIR=$(cd "$OUTDIR" && pwd)

# How ltbench is imported, without touching torch:
#   1. already importable (an earlier `pip install -e .`),
#   2. `pip install --no-deps --no-build-isolation --no-index -e .` (offline; needs setuptools in the env),
#   3. a copy of the tree with methods/ placed at ltbench/methods, run from there with PYTHONPATH.
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ltbench-gpu-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
RUNDIR=$REPO
INSTALL="importable"
if ! (cd "$REPO" && "$PY" -c "import ltbench.methods" >/dev/null 2>&1); then
    INSTALL="pip-editable"
    if ! (cd "$REPO" && timeout 180 "$PY" -m pip install --no-deps --no-build-isolation --no-index -q -e . \
            >"$WORK/pip.log" 2>&1 && "$PY" -c "import ltbench.methods" >/dev/null 2>&1); then
        INSTALL="pythonpath-copy"
        RUNDIR=$WORK/tree
        mkdir -p "$RUNDIR"
        cp -r "$REPO/ltbench" "$REPO/tests" "$REPO/pyproject.toml" "$RUNDIR/"
        [ -d "$REPO/experiments" ] && cp -r "$REPO/experiments" "$RUNDIR/"
        [ -d "$REPO/scripts" ] && cp -r "$REPO/scripts" "$RUNDIR/"
        rm -rf "$RUNDIR/ltbench/methods"
        cp -r "$REPO/methods" "$RUNDIR/ltbench/methods"
        export PYTHONPATH="$RUNDIR${PYTHONPATH:+:$PYTHONPATH}"
    fi
fi

cd "$RUNDIR" || exit 2
"$PY" "$RUNDIR/scripts/gpu_check.py" "$OUTDIR" --install "$INSTALL" --work "$WORK" "$@"
exit $?
