#!/usr/bin/env bash
# Runs every ablation row with the same budget, one after another (resumes a row if interrupted).
# Usage: bash docs/run_ablations.sh [RECIPE] [SEED ...]   (default: configs/train/ablation.toml, seed 0)
# Rows land in runs/<NAME>/seed<SEED>/<row>/; tables by benchmarks/ablation_table.py runs/<NAME>.
# Environment: NAME (default: the recipe's file name), MODELS (the folder of row configs, default
# configs/models/ablation), ROWS (default: the six ablation rows, or every config in MODELS when it is
# given), SET (recipe changes passed to `videodeblur train --set`, space-separated), e.g.
#   NAME=freq0.05 ROWS=lprn-t6-both SET=train.frequency_weight=0.05 bash docs/run_ablations.sh RECIPE 0 1 2
#   NAME=rt-candidates MODELS=configs/models/rt-candidates bash docs/run_ablations.sh RECIPE 0
cd "$(dirname "$0")/.."  # repository root
# the videodeblur on PATH (an activated venv); the project's own .venv where none is
VIDEODEBLUR=$(command -v videodeblur || echo .venv/bin/videodeblur)
recipe=${1:-configs/train/ablation.toml}
[ $# -gt 0 ] && shift
seeds=("${@:-0}")
name=${NAME:-$(basename "$recipe" .toml)}
models=${MODELS:-configs/models/ablation}
default_rows="lprn-t6-none lprn-t6-channel lprn-t6-spatial lprn-t6-both lprn-t5-both lprn-t7-both"
[ -n "${MODELS:-}" ] && default_rows=$(for f in "$models"/*.toml; do basename "$f" .toml; done)
read -r -a rows <<< "$(echo ${ROWS:-$default_rows})"
settings=()
for s in ${SET:-}; do settings+=(--set "$s"); done
for seed in "${seeds[@]}"; do
  for m in "${rows[@]}"; do
    out=runs/$name/seed$seed/$m
    [ -f "$out/$m.pt" ] && continue
    resume=""; [ -f "$out/last.pt" ] && resume="--resume $out/last.pt"
    "$VIDEODEBLUR" train --config "$recipe" --model-config "$models/$m.toml" \
      --out-dir "$out" --seed "$seed" "${settings[@]}" $resume
  done
done
