"""The wall-clock runs of ``videodeblur bench``: decode, model (per batch), encode, sequential and
pipelined, each on the shared clip and each into one ``RunResult``.

Apart from the orchestration (``videodeblur.bench.run_bench``) so that each run's timing rules read
in one place; the network-only run, timed on the device, is ``videodeblur.bench.network``.
"""
from __future__ import annotations

import collections
import contextlib
import itertools
import math
import time
from pathlib import Path
from typing import Any, Deque, Iterator

import numpy as np
import torch

from videodeblur.bench.clip import BenchIO, read_frames
from videodeblur.bench.results import RunResult, result_from_run_stats, result_from_window
from videodeblur.measure import FrameClock, PeakMemory
from videodeblur.pipeline.engine_lanes import EngineLanes, lanes_for

__all__ = ["MIN_STAGE_WINDOW_S", "decode_run", "encode_run", "model_run", "pipelined_run", "round_up",
           "sequential_run"]


# The decode-only, encode-only and model runs go over the clip again and again (as timeit repeats) until
# their window lasts this long: 16 frames of 160x96 decode in about 3 ms, a window so short that a
# scheduler hiccup swung its fps 30x between runs and named decode the bound of a model-bound pipeline;
# 20 frames of 64x48 through the model took 30-100 ms, and its fps moved 3.5x between a run and its repeat.
MIN_STAGE_WINDOW_S = 0.5
MIN_MODEL_BATCHES = 4  # batches measured per engine at least, however short the clip


def decode_run(io: BenchIO, warmup: int) -> RunResult:
    """The first ``warmup`` frames decoded as warm-up, then the whole clip decoded again and again
    until the window lasts ``MIN_STAGE_WINDOW_S``, every frame counted (``repeats``: the passes).
    Each pass opens the file, which decodes its first frame: that falls in the first frame's time."""
    with PeakMemory(torch.device("cpu")) as memory:
        clock = FrameClock()
        window_start = _decode_pass(io, clock, warmup) if warmup else clock.start
        repeats = 0
        while True:
            repeats += 1
            done = _decode_pass(io, clock, io.frames)
            if done - window_start >= MIN_STAGE_WINDOW_S:
                break
    return result_from_window("decode", None, None, clock.window(warmup, ("decode",)), memory,
                              extra={"repeats": repeats})


def _decode_pass(io: BenchIO, clock: FrameClock, frames: int) -> float:
    """Decode the clip's first ``frames`` into ``clock``; returns when the last one was done."""
    started = clock.now()
    with io.reader() as reader:
        for _ in read_frames(reader, frames):
            clock.begin(1, at=started)
            started = clock.complete(1, at=clock.stage("decode", started))
    return started


def model_run(engine: Any, io: BenchIO, frames: list[np.ndarray], batch: int, warmup: int,
              engines: int | None = None) -> RunResult:
    """Whole batches of the clip's frames (taken cyclically, so every batch is full, at least
    ``MIN_MODEL_BATCHES`` per engine measured, and the window at least ``MIN_STAGE_WINDOW_S``) through the engine
    as the pipeline calls it (same layout, host uint8 in and out, as many batches in flight as the
    runner keeps; on a CPU the same lanes, ``engines`` as ``RunOptions.engines``); ``engine.warmup``
    and the warm-up batches fall before the window. A batch is busy from its submission, or the
    previous batch's completion if later, to its own completion."""
    warmup = round_up(warmup, batch)
    lanes = lanes_for(engine, engines)
    # a short clip is gone round again: with one batch measured, the lanes' overlap with the warm-up
    # made a window of a few ms (3225 fps for batches that took 25 ms each)
    total = round_up(max(len(frames), warmup + batch * MIN_MODEL_BATCHES * lanes), batch)
    with PeakMemory(engine.device) as memory, _lanes(engine, lanes) as runner:
        started = time.perf_counter()
        runner.warmup(io.info.height, io.info.width, layout=io.layout, colour=io.info.colour)
        engine_warmup_s = time.perf_counter() - started
        clock = FrameClock()  # after the engine's warm-up (cudnn autotune, compilation): never in a window
        in_flight: Deque[tuple[Any, float]] = collections.deque()
        last_done = clock.start
        completed, window_start = 0, clock.start if warmup == 0 else None
        for i in itertools.count(0, batch):
            chunk = np.stack([frames[(i + k) % len(frames)] for k in range(batch)])
            started = clock.now()
            clock.begin(batch, at=started)
            in_flight.append((io.submit(runner, chunk), started))
            # the last batch: the clip and MIN_MODEL_BATCHES done, and the window as long as decode's at least
            last = i + batch >= total and window_start is not None and started - window_start >= MIN_STAGE_WINDOW_S
            while in_flight and (len(in_flight) > runner.max_in_flight or last):
                handle, submitted = in_flight.popleft()
                handle.result()  # waits for host uint8: the wall clock is honest
                done = clock.now()
                clock.complete(batch, at=clock.stage("infer", max(submitted, last_done), done))
                last_done = done
                completed += batch
                if completed == warmup:
                    window_start = done
            if last:
                break
    return result_from_window("model", engine.model_name, batch, clock.window(warmup, ("infer",)), memory,
                              extra={"engine_warmup_s": round(engine_warmup_s, 6), "engines": lanes})


@contextlib.contextmanager
def _lanes(engine: Any, lanes: int) -> Iterator[Any]:
    """``engine`` itself, or ``lanes`` copies of it side by side (closed after)."""
    if lanes == 1:
        yield engine
        return
    with EngineLanes(engine, lanes) as runner:
        yield runner


def encode_run(io: BenchIO, frames: list[np.ndarray], pts: list[int], output: Path, warmup: int) -> RunResult:
    """Into one file: the first ``warmup`` frames as warm-up, then the whole clip again and again
    (each pass's pts after the one before) until the window lasts ``MIN_STAGE_WINDOW_S``, every
    frame counted (``repeats``: the passes). Frames are complete when handed to the encoder; the
    flush at ``close`` completes the last one, so the encoder's look-ahead is paid inside the window."""
    span = pts[-1] - pts[0] + (pts[-1] - pts[-2] if len(pts) > 1 else 1)  # the clip's length, one frame more
    with PeakMemory(torch.device("cpu")) as memory:
        clock = FrameClock()
        writer = io.writer(output)

        def encode(frame: np.ndarray, frame_pts: int) -> float:
            started = clock.now()
            clock.begin(1, at=started)
            writer.write(frame, pts=frame_pts)
            return clock.stage("encode", started)

        window_start = clock.start
        for frame, frame_pts in zip(frames[:warmup], pts[:warmup]):
            window_start = clock.complete(1, at=encode(frame, frame_pts))
        offset = span if warmup else 0
        repeats = 0
        while True:
            repeats += 1
            for i, (frame, frame_pts) in enumerate(zip(frames, pts)):
                handed = encode(frame, frame_pts + offset)
                if i < len(frames) - 1:
                    clock.complete(1, at=handed)
            if handed - window_start >= MIN_STAGE_WINDOW_S:
                break  # the last frame: completed by the flush below
            clock.complete(1, at=handed)
            offset += span
        started = clock.now()
        writer.close()
        clock.complete(1, at=clock.stage("encode", started))
    return result_from_window("encode", None, None, clock.window(warmup, ("encode",)), memory,
                              extra={"encoder": writer.encoder_name, "repeats": repeats})


def sequential_run(io: BenchIO, output: Path, engine: Any, batch: int, warmup: int) -> RunResult:
    """decode → engine → encode on this thread alone; a frame's latency runs from the start of its decode
    to the end of its encode (it waits for its batch to fill)."""
    warmup = round_up(warmup, batch)
    with PeakMemory(engine.device) as memory:
        clock = FrameClock()
        pending: list[tuple[np.ndarray, int]] = []
        # A batch's completion is recorded once the next frame shows it was not the last one: the last
        # batch completes only after the encoder's flush in close().
        unrecorded, done_at = 0, 0.0
        with io.reader() as reader:
            source = read_frames(reader, io.frames)
            writer = io.writer(output)

            def infer_and_encode() -> None:
                started = clock.now()
                out = io.infer(engine, np.stack([image for image, _ in pending]))
                clock.stage("infer", started)
                for image, (_, frame_pts) in zip(out, pending):
                    started = clock.now()
                    writer.write(image, pts=frame_pts)
                    clock.stage("encode", started)

            while True:
                started = clock.now()
                item = next(source, None)
                if item is None:
                    break
                clock.stage("decode", started)
                clock.begin(1, at=started)
                if unrecorded:
                    clock.complete(unrecorded, at=done_at)
                    unrecorded = 0
                pending.append(item)
                if len(pending) == batch:
                    infer_and_encode()
                    unrecorded, done_at = len(pending), clock.now()
                    pending.clear()
        if pending:
            infer_and_encode()
            unrecorded += len(pending)
        started = clock.now()
        writer.close()
        clock.complete(unrecorded, at=clock.stage("encode", started))
    return result_from_window("sequential", engine.model_name, batch,
                              clock.window(warmup, ("decode", "infer", "encode")), memory)


def pipelined_run(io: BenchIO, output: Path, engine: Any, batch: int, warmup: int) -> RunResult:
    """The real ``video`` runner (``deblur_file``), its stages in their own threads, timed by its own clocks."""
    from videodeblur.pipeline import RunOptions, deblur_file

    options = io.options
    run_options = RunOptions(encoder=options.encoder, crf=options.crf, preset=options.preset,
                             queue_size=options.queue_size,
                             warmup_frames=warmup, max_frames=io.frames, audio=False,
                             colour_on_device=io.layout == "i420", engines=options.engines,
                             deep=False)  # 8-bit out, as the stage runs write: every run times one encoder
    with PeakMemory(engine.device) as memory:
        stats = deblur_file(io.clip, output.with_suffix(io.suffix), engine, run_options)
    return result_from_run_stats(stats.to_dict(), engine.model_name, batch, memory)


def round_up(n: int, multiple: int) -> int:
    """``n`` rounded up to whole ``multiple``s: a warm-up of whole batches."""
    return math.ceil(n / multiple) * multiple
