#!/usr/bin/env bash
# Runs every ablation row with the same budget, one after another (resumes a row if interrupted).
# Usage: bash docs/run_ablations.sh [RECIPE] [SEED ...]   (default: configs/train/ablation.toml, seed 0)
# Rows land in runs/<recipe name>/seed<SEED>/<row>/; tables by benchmarks/ablation_table.py runs/<recipe name>.
cd "$(dirname "$0")/.."  # repository root
recipe=${1:-configs/train/ablation.toml}
[ $# -gt 0 ] && shift
seeds=("${@:-0}")
name=$(basename "$recipe" .toml)
for seed in "${seeds[@]}"; do
  for m in lprn-t6-none lprn-t6-channel lprn-t6-spatial lprn-t6-both lprn-t5-both lprn-t7-both; do
    out=runs/$name/seed$seed/$m
    [ -f "$out/$m.pt" ] && continue
    resume=""; [ -f "$out/last.pt" ] && resume="--resume $out/last.pt"
    .venv/bin/videodeblur train --config "$recipe" --model-config configs/models/ablation/$m.toml \
      --out-dir "$out" --seed "$seed" $resume
  done
done
