"""Copies of a CPU engine side by side (two by default) behind one ``submit``: how the file runner
and the benchmark's model run use the cores of a CPU.

Why: one engine's OpenMP threads sleep and wake around every operator (``OMP_WAIT_POLICY=PASSIVE``,
which the package sets so that two runs at once do not starve each other), so one engine with two
threads leaves much of the second core idle. Measured on the 2-core Zen 3 VM, ``lprn-fast`` 640×360,
uint8 in and out, one process: one engine with 2 threads 28.1–31.4 frames/s at batch 2 (33–36 at
batch 4); two engines with 1 thread each, side by side, 39.2–42.5 at batch 2 (docs/BENCHMARKS.md).
The camera does the same at batch 1 (``live_workers``).

Each lane is an :class:`~videodeblur.pipeline.engine.Engine` of the same loaded model, built on the
lane's own thread (torch's thread count belongs to the thread that sets it, so the caller's engine
keeps its own), with the caller's threads and memory budget divided between lanes
(``memory_share``). A batch goes to whichever lane is free; results are collected in submission
order by the caller. Lanes run one frame a batch unless a batch size was asked for: on the same VM,
same sitting, ``lprn-rt`` 1280×720 ran 1.49 / 1.58 fps at batch 1 against 1.01 / 1.06 at batch 2
(two lanes of two frames each crowd the caches), and ``lprn-fast`` 640×360 43.1 / 42.6 / 35.1
against 45.1 / 42.0 / 38.6, with a fifth less latency (p50 280 against 335–391 ms).
"""
from __future__ import annotations

import dataclasses
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from videodeblur.pipeline.engine import Engine, EngineOptions, Layout, engine_count, grey_batch

__all__ = ["EngineLanes", "LaneResult", "lanes_for"]


def lanes_for(engine: Any, requested: int | None = None) -> int:
    """How many lanes to run ``engine`` in: ``requested`` if given (1: the engine alone); else two
    for a real engine on a CPU with at least two threads and no ``torch.compile`` (which would
    compile once per lane), one otherwise (CUDA overlaps batches with its own streams)."""
    if not isinstance(engine, Engine) or engine.device.type != "cpu":
        return 1
    if requested is None and engine.options.compile:
        return 1
    return engine_count(requested, engine.threads or 1)


class LaneResult:
    """A batch handed to a lane: ``result()`` waits for it; ``busy_s`` is the lane's time on it."""

    gpu_ms: float | None = None

    def __init__(self, future: "Future[tuple[np.ndarray, float]]") -> None:
        self._future = future
        self.busy_s: float | None = None

    def ready(self) -> bool:
        return self._future.done()

    def result(self) -> np.ndarray:
        output, self.busy_s = self._future.result()
        return output


class EngineLanes:
    """``lanes`` copies of ``engine`` on threads of their own, behind the engine's ``submit`` contract
    (``max_in_flight`` batches may be held before collecting one). :meth:`close` joins the threads."""

    def __init__(self, engine: Engine, lanes: int = 2) -> None:
        if lanes < 1:
            raise ValueError(f"lanes must be >= 1, got {lanes}")
        self.engine = engine
        self.lanes = lanes
        share = max(1, (engine.threads or 1) // lanes)
        self._options: EngineOptions = dataclasses.replace(
            engine.options, threads=share, memory_share=engine.options.memory_share * lanes,
            batch_size=engine.options.batch_size or 1)
        self._local = threading.local()
        self._engines: list[Engine] = []
        self._engines_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=lanes, thread_name_prefix="videodeblur-infer")

    # what the runner and its summary read of an engine
    @property
    def batch_size(self) -> int:
        """The engine's batch size if one was asked for, else 1 (module docstring)."""
        return self._options.batch_size or 1

    @property
    def max_in_flight(self) -> int:
        """One batch per lane and one waiting, so a lane that finishes never waits for the caller."""
        return self.lanes

    @property
    def device(self) -> Any:
        return self.engine.device

    @property
    def precision(self) -> str:
        return self.engine.precision

    @property
    def model(self) -> Any:
        return self.engine.model

    @property
    def model_name(self) -> str:
        return self.engine.model_name

    @property
    def threads(self) -> int:
        return self._options.threads or 1

    def describe(self) -> str:
        plural = "" if self.threads == 1 else "s"
        return f"cpu ({self.threads} thread{plural}) × {self.lanes} engines"

    @property
    def auto_tiled(self) -> dict[tuple[int, ...], int]:
        """Batches run in tiles for memory, by shape, over every lane."""
        merged: dict[tuple[int, ...], int] = {}
        for lane in self._lane_engines():
            for shape, count in lane.auto_tiled.items():
                merged[shape] = merged.get(shape, 0) + count
        return merged

    @property
    def auto_tile_note(self) -> str | None:
        return next((lane.auto_tile_note for lane in self._lane_engines() if lane.auto_tile_note), None)

    def auto_tile_note_for(self, shape: tuple[int, ...]) -> str | None:
        return next((note for lane in self._lane_engines() if (note := lane.auto_tile_note_for(shape))), None)

    def warmup(self, height: int, width: int, *, layout: Layout = "rgb", colour: Any = None, batches: int = 2) -> None:
        """Warm every lane: ``batches`` full batches each, all lanes at once."""
        dummy = grey_batch(self.batch_size, height, width, layout)
        for _ in range(batches):
            handles = [self.submit(dummy, layout=layout, colour=colour) for _ in range(self.lanes)]
            for handle in handles:
                handle.result()

    # --- the contract ------------------------------------------------------------------------------
    def submit(self, batch: Any, *, layout: str = "rgb", colour: Any = None) -> LaneResult:
        """Hand ``batch`` to the next free lane; the engine's errors come back from ``result()``."""
        return LaneResult(self._pool.submit(self._run, batch, layout, colour))

    process = Engine.process  # the same checks and batching, over the lanes' submit

    def close(self) -> None:
        """Drop batches not yet started and wait for the lanes' threads to end. A lane's engine set
        torch's process-wide thread count (MKL's, and the one new threads start with) to its share:
        it goes back to the caller's engine's."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self._lane_engines() and self.engine.threads:
            torch.set_num_threads(self.engine.threads)

    def __enter__(self) -> "EngineLanes":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- on a lane's thread --------------------------------------------------------------------------
    def _run(self, batch: Any, layout: str, colour: Any) -> tuple[np.ndarray, float]:
        lane = getattr(self._local, "engine", None)
        if lane is None:  # the lane's first batch: its engine is built here, with this thread's torch threads
            lane = Engine(self.engine.model, self._options)
            self._local.engine = lane
            with self._engines_lock:
                self._engines.append(lane)
        started = time.perf_counter()
        output = lane.submit(batch, layout=layout, colour=colour).result()  # type: ignore[arg-type]
        return output, time.perf_counter() - started

    def _lane_engines(self) -> list[Engine]:
        with self._engines_lock:
            return list(self._engines)
