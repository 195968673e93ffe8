#!/usr/bin/env bash
# Runs every ablation row with the same budget, one after another (resumes a row if interrupted).
cd "$(dirname "$0")/.."  # repository root
for m in lprn-t6-none lprn-t6-channel lprn-t6-spatial lprn-t6-both lprn-t5-both lprn-t7-both; do
  out=runs/ablation/$m
  [ -f "$out/$m.pt" ] && continue
  resume=""; [ -f "$out/last.pt" ] && resume="--resume $out/last.pt"
  .venv/bin/videodeblur train --config configs/train/ablation.toml --model-config configs/models/ablation/$m.toml --out-dir $out $resume
done
