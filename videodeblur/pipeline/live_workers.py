"""Inference for the live loop: one thread per engine, each taking the newest frame from the slot, with
the results handed back in capture order.

Why more than one engine on a CPU: the camera runs at batch 1, and one engine's OpenMP threads then
sleep and wake around every operator (``OMP_WAIT_POLICY=PASSIVE``). Measured on the 2-core Zen 3 VM,
``lprn-fast`` 640×360 uint8 in and out: one engine with 2 threads 23.3–26.4 frames/s; two engines with
1 thread each, side by side, 38.4–40.2 frames/s at 49–52 ms a frame (docs/BENCHMARKS.md). With one
engine (CUDA, or a single core) this is the old loop with the model on its own thread.

Frames are numbered as they are taken, under one lock, so numbering follows capture order; a result
that finishes before an older one is held back until the older one is out.
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, Sequence

import numpy as np

from videodeblur.pipeline.live_capture import LatestFrameSlot
from videodeblur.pipeline.stats import StageClock
from videodeblur.video.capture import CapturedFrame

if TYPE_CHECKING:
    from videodeblur.pipeline.engine import Engine, EngineOptions

__all__ = ["FrameProcessor", "Processed", "InferenceWorkers", "live_engines"]

_TAKE_POLL_S = 0.05


class FrameProcessor(Protocol):
    """What the live loop needs of ``videodeblur.pipeline.Engine``."""

    def process(self, frames: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Processed:
    """One frame back from the model (``output`` None when ``error`` is set)."""

    frame: CapturedFrame
    output: np.ndarray | None
    error: BaseException | None


class InferenceWorkers:
    """Runs ``engines`` (one thread each) on the slot's frames until the slot is closed and empty, or
    ``stop`` is set, or an engine raises (the error comes back as a ``Processed`` and ends that thread)."""

    def __init__(self, engines: Sequence[FrameProcessor], slot: LatestFrameSlot, stop: threading.Event) -> None:
        if not engines:
            raise ValueError("at least one engine is needed")
        self._slot = slot
        self._stop = stop
        self._take_lock = threading.Lock()
        self._taken = 0  # frames taken from the slot, numbered in that order
        self._results: queue.Queue[tuple[int, Processed] | None] = queue.Queue()
        self._held: dict[int, Processed] = {}
        self._next = 0  # number of the next frame to hand back
        self._running = len(engines)
        self.infer = StageClock("infer")
        self._threads = [threading.Thread(target=self._work, args=(engine,), name=f"videodeblur-infer-{i}", daemon=True)
                         for i, engine in enumerate(engines)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    @property
    def not_handed_back(self) -> int:
        """Frames taken from the slot that ``next`` has not returned (in the model, or held back)."""
        return self._taken - self._next

    @property
    def finished(self) -> bool:
        """Every thread has ended and every result has been handed back."""
        return self._running == 0 and self._next == self._taken and self._results.empty()

    def next(self, timeout: float) -> Processed | None:
        """The next frame in capture order, waiting up to ``timeout`` seconds; None if it is not ready."""
        deadline = time.monotonic() + timeout
        while self._next not in self._held:
            try:
                item = self._results.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return None
            if item is None:
                self._running -= 1
                if self._running == 0 and self._next not in self._held and self._results.empty():
                    return None
                continue
            number, processed = item
            self._held[number] = processed
        self._next += 1
        return self._held.pop(self._next - 1)

    def join(self, timeout: float) -> None:
        for thread in self._threads:
            if thread.ident is not None:
                thread.join(timeout)

    def _work(self, engine: Any) -> None:
        try:
            while not self._stop.is_set():
                with self._take_lock:  # numbering in the order frames are taken = capture order
                    frame = self._slot.take(_TAKE_POLL_S)
                    if frame is None:
                        if self._slot.closed:
                            return
                        continue
                    number = self._taken
                    self._taken += 1
                started = time.perf_counter()
                try:
                    output, error = engine.process(frame.image[np.newaxis])[0], None
                except BaseException as err:  # handed to the loop, which raises it after a clean stop
                    output, error = None, err
                self.infer.add(time.perf_counter() - started)
                self._results.put((number, Processed(frame, output, error)))
                if error is not None:
                    return
        finally:
            self._results.put(None)


def live_engines(model: str | None, options: "EngineOptions", count: int | None = None) -> list["Engine"]:
    """The engines for a live run at batch 1: ``count`` on a CPU (None: two with two cores or more,
    else one; never more than the cores), splitting the cores between them (``options.threads``,
    if set, is each one's share); one elsewhere (CUDA overlaps with its own streams)."""
    import dataclasses

    from videodeblur.pipeline.engine import Engine, engine_count, resolve_device, usable_cores

    options = dataclasses.replace(options, batch_size=1)
    cores = usable_cores()
    count = engine_count(count, cores)  # as the file runner's lanes
    if resolve_device(options.device).type != "cpu" or count == 1:
        return [Engine.from_name(model, options)]
    options = dataclasses.replace(options, threads=options.threads or max(1, cores // count))
    first = Engine.from_name(model, options)
    # one model loaded; each engine copies its network
    return [first, *(Engine(first.model, options) for _ in range(count - 1))]
