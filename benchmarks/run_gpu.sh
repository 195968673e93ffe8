#!/usr/bin/env bash
# Everything a session with the GPU machine should do first, in one go (see the brief: GPU work first).
# On the device machine: copy ../shared/wheels/av-*.whl into .whl/ (git-ignored), carry it, then:
#   bash benchmarks/run_gpu.sh "$OUT" 1     (CUDA tests, 1080p, lprn-rt candidates, 720p, camera 1080p30, 4K tiled: under 9 min)
#   bash benchmarks/run_gpu.sh "$OUT" 2     (4K whole, torch.compile, CUDA graphs, peers, the other models)
# Each part fits one 10-minute device call; the device budget is 15 minutes, so part 1 comes first.
# Every step has its own time limit (killed 10 s after it, if SIGTERM does not end it) and a failing
# step does not stop the ones after it; a step that would end past BUDGET_S (default 570 s from the
# start) is skipped, so the script ends, and its files are there, before a 600 s call limit kills it.
# What comes back: the device tool returns at most 8 files from $OUT, so OUT holds two: steps.txt
# (each step's exit status and seconds) and results-partN.tar.gz (every step's output NAME and its
# stderr NAME.err, versions, nvidia-smi, lscpu), rewritten after each step so a killed call keeps
# what finished. Read it with `tar -xzf OUT/results-part1.tar.gz -C somewhere`. A failing step's
# last stderr lines are printed too (the call's output tail).
# Without a CUDA GPU that torch sees, or without PyAV, it says so in one line and exits 2 at once.
set -uo pipefail
OUT="${1:-runs/gpu}"
PART="${2:-1}"
BUDGET_S="${BUDGET_S:-570}"
mkdir -p "$OUT"
RAW="$(mktemp -d "${TMPDIR:-/tmp}/videodeblur-gpu-part$PART.XXXXXX")" \
  || { echo "run_gpu.sh: cannot make a scratch folder in ${TMPDIR:-/tmp}" | tee -a "$OUT/steps.txt"; exit 2; }
TARBALL="$OUT/results-part$PART.tar.gz"

pack() {  # the raw folder into OUT's one tarball, replaced whole (a call killed mid-write keeps the last)
  tar -czf "$TARBALL.tmp" -C "$RAW" . && mv -f "$TARBALL.tmp" "$TARBALL"
}

stop() {  # stop MESSAGE: one clear line, on stdout and in steps.txt, the files packed, exit 2
  echo "run_gpu.sh: $1" | tee -a "$OUT/steps.txt"
  pack
  rm -rf "$RAW"
  exit 2
}

# No internet there: PyAV from the carried wheel into /tmp/site (the device README's recipe), and this
# project from the working tree by PYTHONPATH. `pip install -e .` would try to fetch setuptools for
# its isolated build and fail, leaving no `videodeblur` command, so every step below runs
# `python3 -m videodeblur` instead.
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    > "$RAW/pip.txt" 2>&1 || echo "PyAV wheel install failed (pip.txt)" >> "$OUT/steps.txt"
fi
export PYTHONPATH="$PWD:/tmp/site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi > "$RAW/nvidia-smi.txt" 2>&1
lscpu > "$RAW/lscpu.txt" 2>&1
# One interpreter for every check (a cold import of torch takes seconds there); its exit status says
# which one failed.
python3 - > "$RAW/versions.txt" 2>&1 <<'CHECKS'
import sys
try:
    import torch
except Exception as exc:
    print(exc); sys.exit(10)
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if not torch.cuda.is_available():
    sys.exit(11)
print(torch.cuda.get_device_name())
try:
    import av
except Exception as exc:
    print(exc); sys.exit(12)
print("av", av.__version__)
try:
    import videodeblur
except Exception as exc:
    print(exc); sys.exit(13)
CHECKS
case $? in
  0) ;;
  10) stop "python3 cannot import torch (versions.txt in $TARBALL)" ;;
  11) stop "no CUDA GPU that torch can use here (torch.cuda.is_available() is False): nothing measured" ;;
  12) stop "PyAV is not importable: copy ../shared/wheels/av-*.whl into .whl/ and carry it (see this script's head)" ;;
  13) stop "videodeblur does not import from $PWD (versions.txt in $TARBALL)" ;;
  *) stop "python3 failed before any check (versions.txt in $TARBALL)" ;;
esac
pack

step() {  # step NAME LIMIT_S COMMAND...: run with a time limit, stdout to NAME, stderr to NAME.err
  local name=$1 limit=$2; shift 2
  if (( SECONDS + limit > BUDGET_S )); then
    echo "$name skipped: ${SECONDS}s gone, its ${limit}s limit would pass the ${BUDGET_S}s budget" >> "$OUT/steps.txt"
    return
  fi
  local start=$SECONDS rc
  timeout -k 10 "$limit" "$@" > "$RAW/$name" 2> "$RAW/$name.err"
  rc=$?
  echo "$name rc=$rc $((SECONDS - start))s" >> "$OUT/steps.txt"
  if (( rc != 0 )); then
    echo "--- $name rc=$rc, last lines of its stderr:"
    tail -n 5 "$RAW/$name.err"
  fi
  pack
}

vd=(python3 -m videodeblur)
bench=("${vd[@]}" bench --device cuda --precision fp16 --json)  # timeout runs programs, not shell functions

if [ "$PART" = 1 ]; then
  # -v: each test's name as it ends (a killed run shows which one hung); faulthandler_timeout (pytest's
  # own) dumps every thread's stack into the .err file if one test runs over 60 s, without stopping it.
  step cuda-tests.txt 150 python3 -m pytest -v -rfEs -m cuda tests -p no:cacheprovider -o faulthandler_timeout=60
  step bench-lprn-rt-1920x1080.json 120 "${bench[@]}" --model lprn-rt --size 1920x1080 --frames 300 --batch 1,4,8,16
  # Picking lprn-rt's knobs by measuring: every candidate's network-only fps at 1080p fp16, batch 1-16
  # (their quality at one equal CPU training budget is in docs/MODEL.md, "Presets").
  step rt-candidates-1920x1080.json 90 python3 benchmarks/rt_candidates.py --device cuda --precision fp16 \
    --size 1920x1080 --batch 1,4,8,16 --json
  step bench-lprn-rt-1280x720.json 60 "${bench[@]}" --model lprn-rt --size 1280x720 --frames 300 --batch 1,4,8
  # The camera target: 1080p30 with p95 latency under 50 ms (a lavfi source stands in for the camera).
  step camera-lprn-rt-1080p30.json 35 "${vd[@]}" camera --source "testsrc2=size=1920x1080:rate=30" \
    --model lprn-rt --device cuda --no-preview --max-seconds 20 --json
  step bench-lprn-rt-2160-tiled.json 75 "${bench[@]}" --model lprn-rt --size 3840x2160 --frames 60 --batch 1,2 --tile 1024
else
  step bench-lprn-rt-2160.json 90 "${bench[@]}" --model lprn-rt --size 3840x2160 --frames 60 --batch 1,2
  step bench-lprn-rt-1080-compile.json 120 "${bench[@]}" --model lprn-rt --size 1920x1080 --frames 300 --batch 8 --compile
  # CUDA graphs (issue 7: "where it pays"): the same batches replayed as captured graphs; compare with
  # part 1's bench-lprn-rt-1920x1080.json (batch 1 is where launch overhead weighs most).
  step bench-lprn-rt-1080-graphs.json 90 "${bench[@]}" --model lprn-rt --size 1920x1080 --frames 300 --batch 1,4,8 --cuda-graphs
  step camera-lprn-rt-1080p30-graphs.json 35 "${vd[@]}" camera --source "testsrc2=size=1920x1080:rate=30" \
    --model lprn-rt --device cuda --no-preview --max-seconds 20 --cuda-graphs --json
  step bench-lprn-rt-1080-compare.json 90 "${bench[@]}" --model lprn-rt --size 1920x1080 --frames 90 --batch 4 --compare
  step bench-lprn-fast-1920x1080.json 45 "${bench[@]}" --model lprn-fast --size 1920x1080 --frames 150 --batch 4,16
  step bench-lprn-1920x1080.json 60 "${bench[@]}" --model lprn --size 1920x1080 --frames 90 --batch 1,4
fi
rm -rf "$RAW"
ls -la "$OUT"
cat "$OUT/steps.txt"
