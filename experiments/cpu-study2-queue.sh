#!/usr/bin/env bash
# The CPU study's second round (issue 20, docs/cpu-study.md) and the BCL / ConCutMix rows (issue 21), in
# priority order. Every sweep resumes: finished runs are skipped, interrupted ones continue from their
# checkpoint, so this can be stopped (SIGTERM) and rerun at any time, on any machine with the records.
#   bash experiments/cpu-study2-queue.sh          # about 8 core-hours in all on 2 cores (-j 2)
# Commit each run directory that has a final.json (spec.json, final.json, predictions.npz) as it finishes.
set -euo pipefail
cd "$(dirname "$0")/.."
LTBENCH=${LTBENCH:-ltbench}
RUNS=${RUNS:-results/cpu-study}
JOBS=${JOBS:-2}
# Cheapest question first: the locator runs (DRW+SMCL, batch 128) take about half an SMCL run's time.
for grid in cpu-study2 cpu-study-bcl cpu-study2-steps cpu-study2-locator cpu-study2-early \
            cpu-study2-sources cpu-study2-maskprob cpu-study2-long; do
    echo "=== $(date -u +%H:%M) $grid"
    "$LTBENCH" sweep "experiments/$grid.yaml" --results-dir "$RUNS" -j "$JOBS"
done
