#!/usr/bin/env bash
# The CPU figures of docs/BENCHMARKS.md, in one go on a quiet machine: JSON per run in $OUT.
# Usage: bash benchmarks/run_cpu.sh [OUT=runs/bench]
set -euo pipefail
OUT="${1:-runs/bench}"
mkdir -p "$OUT"
bench() { local name=$1; shift; videodeblur bench --device cpu --json "$@" > "$OUT/$name.json"; echo "$name done"; }
bench lprn-fast-640x360 --model lprn-fast --size 640x360 --frames 150 --batch 1,2,4 --compare --peer nafnet-32
bench lprn-fast-1280x720 --model lprn-fast --size 1280x720 --frames 60 --batch 1,2
bench lprn-rt-640x360 --model lprn-rt --size 640x360 --frames 40 --batch 1,2
bench lprn-rt-1280x720 --model lprn-rt --size 1280x720 --frames 20 --batch 1 --warmup 4
bench lprn-640x360 --model lprn --size 640x360 --frames 24 --batch 1 --warmup 4
bench lprn-1280x720 --model lprn --size 1280x720 --frames 12 --batch 1 --warmup 2
