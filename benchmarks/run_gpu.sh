#!/usr/bin/env bash
# Everything a session with the GPU machine should do first, in one go (see the brief: GPU work first).
# On the device machine: copy ../shared/wheels/av-*.whl into .whl/ (git-ignored), carry it, then:
#   bash benchmarks/run_gpu.sh "$OUT"
set -euo pipefail
OUT="${1:-runs/gpu}"
mkdir -p "$OUT"
pip install --no-deps -q .whl/*.whl
pip install --no-deps -q -e .
nvidia-smi > "$OUT/nvidia-smi.txt" || true
python -m pytest -q -m cuda tests 2>&1 | tail -30 > "$OUT/cuda-tests.txt"
for size in 1280x720 1920x1080; do
  videodeblur bench --device cuda --precision fp16 --model lprn-rt --size "$size" --frames 300 --batch 1,4,8,16 --json \
    > "$OUT/bench-lprn-rt-$size.json"
done
videodeblur bench --device cuda --precision fp16 --model lprn-rt --size 1920x1080 --frames 150 --compare --json \
  > "$OUT/bench-lprn-rt-1080-compare.json"
videodeblur bench --device cuda --precision fp16 --model lprn-rt --size 3840x2160 --frames 60 --batch 1,2 --json \
  > "$OUT/bench-lprn-rt-2160.json"
videodeblur bench --device cuda --precision fp16 --model lprn-rt --size 3840x2160 --frames 60 --batch 1,2 --tile 1024 \
  --json > "$OUT/bench-lprn-rt-2160-tiled.json"
ls -la "$OUT"
