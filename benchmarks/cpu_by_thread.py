"""CPU seconds per pipeline thread of one ``video`` run: where a 2-core machine's time goes.

Why: the bench's "overlap" (pipelined fps over model-only fps) on a CPU whose cores the model fills
is bounded by the model's share of all the CPU work, not by how well the stages overlap. Busy times
cannot show that (a stage waiting for a core looks busy); CPU seconds per thread can.

    python benchmarks/cpu_by_thread.py CLIP [--model lprn-fast] [--engines N] [--batch B] [--json]

Each Python thread's CPU time is read on that thread as it ends (``time.thread_time``), so nothing
is sampled and nothing is lost when a thread exits; "other" is the rest of the process's CPU time
in the run: FFmpeg's and torch's own worker threads and the threads of the run that are not Python's.
Model loading and import happen before the run and are not counted.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
import threading
import time
from pathlib import Path

_ended: dict[str, float] = {}
_lock = threading.Lock()
_original_run = threading.Thread.run


def _run_and_note(self: threading.Thread) -> None:
    started = time.thread_time()
    try:
        _original_run(self)
    finally:
        group = re.sub(r"[_-]?\d+$", "", self.name.split(" (")[0])  # videodeblur-infer_0 -> videodeblur-infer
        with _lock:
            _ended[group] = _ended.get(group, 0.0) + time.thread_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", type=Path)
    parser.add_argument("--model", default="lprn-fast")
    parser.add_argument("--engines", type=int, default=None)
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from videodeblur.api import Deblurrer

    deblurrer = Deblurrer(args.model, device="cpu", batch_size=args.batch)
    deblurrer.engine  # load the weights now, outside the measured run
    threading.Thread.run = _run_and_note  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as tmp:
        main_cpu, process_cpu, wall = time.thread_time(), time.process_time(), time.perf_counter()
        stats = deblurrer.file(args.clip, Path(tmp) / "out.mp4", engines=args.engines)
        wall = time.perf_counter() - wall
        main_cpu, process_cpu = time.thread_time() - main_cpu, time.process_time() - process_cpu
    threading.Thread.run = _original_run  # type: ignore[method-assign]
    groups = dict(sorted(_ended.items(), key=lambda item: -item[1]))
    groups["main"] = main_cpu
    groups["other"] = max(0.0, process_cpu - sum(groups.values()))
    frames = stats.frames
    report = {"clip": str(args.clip), "model": args.model, "frames": frames, "fps": round(stats.fps, 2),
              "wall_s": round(wall, 3), "cpu_s": round(process_cpu, 3), "cores": len(os.sched_getaffinity(0)),
              "threads": {name: {"cpu_s": round(s, 3), "ms_per_frame": round(1000 * s / frames, 2),
                                 "share": round(s / process_cpu, 4)} for name, s in groups.items()}}
    if args.json:
        print(json.dumps(report))
        return
    print(f"{frames} frames in {wall:.2f} s ({stats.fps:.1f} fps sustained), {process_cpu:.2f} CPU s "
          f"on {report['cores']} cores ({process_cpu / wall:.2f} cores busy)")
    for name, row in report["threads"].items():
        print(f"  {name:22s} {row['cpu_s']:7.2f} s  {row['ms_per_frame']:6.2f} ms/frame  {100 * row['share']:5.1f} %")


if __name__ == "__main__":
    main()
