"""CPU seconds per pipeline thread of one ``video`` run: where a 2-core machine's time goes.

Why: the bench's "overlap" (pipelined fps over model-only fps) on a CPU whose cores the model fills
depends on the model's share of all the CPU work, not on how well the stages overlap. Busy times
cannot show that (a stage waiting for a core looks busy); CPU seconds per thread can. And on a
machine whose speed drifts (a shared VM), the bench's runs minutes apart cannot compare the two
fps; ``--pairs N`` alternates them instead.

    python benchmarks/cpu_by_thread.py CLIP [--model lprn-fast] [--engines N] [--batch B] [--json]
    python benchmarks/cpu_by_thread.py CLIP --pairs 3     # model-only and pipelined, alternated

Each Python thread's CPU time is read on that thread as it ends (``time.thread_time``), so nothing
is sampled and nothing is lost when a thread exits; "other" is the rest of the process's CPU time
in the run: threads that are not Python's (swscale's workers, FFmpeg's, torch's). Model loading
and import happen before the run and are not counted.

With ``--pairs``, each pair is the bench's own model run (``videodeblur bench``'s "model" mode on the
clip's decoded frames: the same lanes as ``video``, as many batches in flight, warm-up frames out of
its fps) and then the ``video`` pipeline on the clip; each reports its fps and the lanes' CPU per
frame (engine build and warm-up included in both).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

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


class _ThreadClock:
    """CPU seconds of every thread that ends inside the ``with`` block, by thread name, plus the
    block's own thread ("main") and the rest of the process ("other")."""

    def __enter__(self) -> "_ThreadClock":
        _ended.clear()
        threading.Thread.run = _run_and_note  # type: ignore[method-assign]
        self._main, self._process, self._wall = time.thread_time(), time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._wall
        main, self.process = time.thread_time() - self._main, time.process_time() - self._process
        threading.Thread.run = _original_run  # type: ignore[method-assign]
        self.groups = dict(sorted(_ended.items(), key=lambda item: -item[1]))
        self.groups["main"] = main
        self.groups["other"] = max(0.0, self.process - sum(self.groups.values()))


def pipelined(deblurrer: Any, clip: Path, engines: int | None) -> tuple[Any, _ThreadClock]:
    """One ``video`` run of ``clip`` (output thrown away) and the CPU seconds of its threads."""
    with tempfile.TemporaryDirectory() as tmp, _ThreadClock() as clock:
        stats = deblurrer.file(clip, Path(tmp) / "out.mp4", engines=engines)
    return stats, clock


def model_only(engine: Any, io: Any, frames: list[Any], batch: int, warmup: int,
               engines: int | None) -> tuple[float, int, _ThreadClock]:
    """The bench's own model run (``videodeblur.bench.modes.model_run``: the same lanes as ``video``,
    as many batches in flight): its fps, the frames it pushed through (warm-up included) and the
    CPU seconds of its threads."""
    from videodeblur.bench.modes import model_run

    with _ThreadClock() as clock:
        run = model_run(engine, io, frames, batch, warmup, engines)
    return run.fps, run.frames + run.warmup_frames, clock


def _report(clip: Path, model: str, stats: Any, clock: _ThreadClock) -> dict[str, Any]:
    frames = stats.frames
    return {"clip": str(clip), "model": model, "frames": frames, "fps": round(stats.fps, 2),
            "wall_s": round(clock.wall, 3), "cpu_s": round(clock.process, 3), "cores": len(os.sched_getaffinity(0)),
            "threads": {name: {"cpu_s": round(s, 3), "ms_per_frame": round(1000 * s / frames, 2),
                               "share": round(s / clock.process, 4)} for name, s in clock.groups.items()}}


def _lane_ms(clock: _ThreadClock, frames: int) -> float:
    return 1000 * clock.groups.get("videodeblur-infer", 0.0) / frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", type=Path)
    parser.add_argument("--model", default="lprn-fast")
    parser.add_argument("--engines", type=int, default=None)
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--pairs", type=int, default=0, help="alternate N model-only and pipelined runs")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from videodeblur.api import Deblurrer

    deblurrer = Deblurrer(args.model, device="cpu", batch_size=args.batch)
    deblurrer.engine  # load the weights now, outside the measured runs
    if not args.pairs:
        stats, clock = pipelined(deblurrer, args.clip, args.engines)
        report = _report(args.clip, args.model, stats, clock)
        if args.json:
            print(json.dumps(report))
            return
        print(f"{stats.frames} frames in {clock.wall:.2f} s ({stats.fps:.1f} fps sustained), {clock.process:.2f} CPU s "
              f"on {report['cores']} cores ({clock.process / clock.wall:.2f} cores busy)")
        for name, row in report["threads"].items():
            print(f"  {name:22s} {row['cpu_s']:7.2f} s  {row['ms_per_frame']:6.2f} ms/frame  {100 * row['share']:5.1f} %")
        return

    import dataclasses

    import torch

    from videodeblur.bench import BenchOptions
    from videodeblur.bench.clip import decode_all, prepare_input
    from videodeblur.pipeline.engine_lanes import lanes_for

    engine = deblurrer.engine
    # the batch the runner's lanes take (one frame each unless --batch), or the engine's own
    batch = args.batch or (1 if lanes_for(engine, args.engines) > 1 else engine.batch_size)
    options = BenchOptions(model=args.model, input=args.clip, frames=2**31 - 1, batches=(batch,), device="cpu",
                           engines=args.engines)
    with tempfile.TemporaryDirectory() as tmp:
        io = prepare_input(options, torch.device("cpu"), Path(tmp), lambda message: None)
        frames = decode_all(io)[0]
    io = dataclasses.replace(io, frames=len(frames))
    warmup = options.warmup_for(len(frames))
    pairs = []
    for _ in range(args.pairs):
        alone_fps, alone_frames, alone = model_only(engine, io, frames, batch, warmup, args.engines)
        stats, piped = pipelined(deblurrer, args.clip, args.engines)
        pairs.append({"model_fps": round(alone_fps, 2), "pipelined_fps": round(stats.fps, 2),
                      "ratio": round(stats.fps / alone_fps, 4),
                      "model_lane_ms": round(_lane_ms(alone, alone_frames), 2),
                      "pipelined_lane_ms": round(_lane_ms(piped, stats.frames), 2),
                      "pipelined_model_share": round(piped.groups.get("videodeblur-infer", 0.0) / piped.process, 4)})
    summary = {"clip": str(args.clip), "model": args.model, "frames": len(frames), "pairs": pairs,
               "median_ratio": round(statistics.median(p["ratio"] for p in pairs), 4)}
    if args.json:
        print(json.dumps(summary))
        return
    print("pair  model-only fps  pipelined fps  ratio  lane CPU ms/frame alone / in the pipeline  model share")
    for i, p in enumerate(pairs, 1):
        print(f"{i:4d}  {p['model_fps']:14.1f}  {p['pipelined_fps']:13.1f}  {p['ratio']:5.2f}  "
              f"{p['model_lane_ms']:17.1f} / {p['pipelined_lane_ms']:.1f}  {100 * p['pipelined_model_share']:10.1f} %")
    print(f"median ratio {summary['median_ratio']:.2f}")


if __name__ == "__main__":
    main()
