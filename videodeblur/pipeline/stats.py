"""Run statistics shared by the file runner, the camera loop and the benchmark.

Each stage owns a :class:`StageClock` (busy seconds and items, updated from that stage's thread);
queues are sampled with :class:`DepthGauge`; per-frame latency goes into :class:`LatencyLog`;
frame completions go into :class:`ThroughputClock`, which gives the sustained fps after warm-up.
:class:`StatsRecorder` holds them all and freezes them into :class:`RunStats` (``to_dict()`` is the
``--json`` object). All times are ``time.perf_counter()`` seconds unless a name says ``_ms``.
"""
from __future__ import annotations

import array
import contextlib
import dataclasses
import threading
import time
from typing import Any, Iterator, Sequence

import numpy as np

__all__ = ["StageClock", "DepthGauge", "LatencyLog", "ThroughputClock", "StageStats", "RunStats",
           "StatsRecorder", "percentiles"]

PERCENTILES = (50, 95, 99)
LATENCY_FIGURES = ("p50", "p95", "p99", "mean", "max")


def percentiles(values: Sequence[float] | np.ndarray) -> dict[str, float]:
    """``{"p50", "p95", "p99", "mean", "max"}`` of ``values``; zeros when empty. The project's one rule for
    latency figures (``video`` and ``camera --json``, every ``bench`` run): numpy's default, linear
    interpolation between the two nearest ranks, so the same frames give the same figures everywhere.
    An ``array('d')`` is read through its buffer, never as a list (a week's camera run is 18 M values)."""
    values = np.asarray(values, dtype=np.float64)
    if not values.size:
        return dict.fromkeys(LATENCY_FIGURES, 0.0)
    ranked = np.percentile(values, PERCENTILES)
    return {**{f"p{q}": float(v) for q, v in zip(PERCENTILES, ranked)},
            "mean": float(values.mean()), "max": float(values.max())}


class StageClock:
    """Busy time and item count of one stage (decode, infer, encode, capture, ...)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.busy_s = 0.0
        self.items = 0
        self.calls = 0
        self._lock = threading.Lock()

    def add(self, seconds: float, items: int = 1) -> None:
        with self._lock:
            self.busy_s += seconds
            self.items += items
            self.calls += 1

    @contextlib.contextmanager
    def time(self, items: int = 1) -> Iterator[None]:
        """``with clock.time(items=n): work()`` adds the wall time of the block."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(time.perf_counter() - start, items)


class DepthGauge:
    """Samples of a queue's depth (taken whenever a stage looks at its queue)."""

    def __init__(self, capacity: int | None = None) -> None:
        self.capacity = capacity
        self._sum = 0
        self._count = 0
        self.max = 0
        self._lock = threading.Lock()

    def sample(self, depth: int) -> None:
        with self._lock:
            self._sum += depth
            self._count += 1
            self.max = max(self.max, depth)

    @property
    def mean(self) -> float:
        return self._sum / self._count if self._count else 0.0


class LatencyLog:
    """Per-frame latencies in milliseconds (input time → output time), 8 bytes each (a list of floats
    took 65 a frame: a camera left running for a week held 1.1 GiB)."""

    def __init__(self) -> None:
        self._values = array.array("d")
        self._lock = threading.Lock()

    def add_ms(self, ms: float) -> None:
        with self._lock:
            self._values.append(ms)

    def add_since(self, start: float, end: float | None = None) -> None:
        self.add_ms(((time.perf_counter() if end is None else end) - start) * 1000.0)

    def percentiles(self, *, skip: int = 0) -> dict[str, float]:
        """:func:`percentiles` of the values after the first ``skip`` (of all of them when none is left)."""
        with self._lock:
            values = np.array(self._values, dtype=np.float64)  # a copy: the run may still be adding
        return percentiles(values[skip:] if len(values) > skip else values)

    def __len__(self) -> int:
        return len(self._values)


class ThroughputClock:
    """Completion times of frames; sustained fps is measured after the first ``warmup`` frames."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self._done = array.array("d")  # 8 bytes a frame, as LatencyLog's
        self._lock = threading.Lock()

    def restart(self) -> None:
        with self._lock:
            self.start = time.perf_counter()
            del self._done[:]

    def mark(self, items: int = 1, at: float | None = None) -> None:
        now = time.perf_counter() if at is None else at
        with self._lock:
            self._done.extend([now] * items)

    def finished_at(self, at: float | None = None) -> None:
        """The output was finished (its encoder flushed) at ``at``: the last frame counts as done
        then. An encoder that holds frames back (VP8's look-ahead) took them when they were handed
        over and encoded them at the flush: a 12-frame window measured the flush alone at 1800 fps."""
        now = time.perf_counter() if at is None else at
        with self._lock:
            if self._done and now > self._done[-1]:
                self._done[-1] = now

    @property
    def count(self) -> int:
        return len(self._done)

    def elapsed_s(self) -> float:
        with self._lock:
            end = self._done[-1] if self._done else time.perf_counter()
        return max(end - self.start, 0.0)

    def sustained_fps(self, warmup: int) -> tuple[float, int, float]:
        """``(fps, frames_in_window, window_seconds)``: frames completed after the ``warmup``-th one,
        over the time since it completed. Falls back to all frames over the whole run when the run is
        too short to leave a frame after the warm-up."""
        with self._lock:
            done = self._done[:]
        if len(done) > warmup > 0:
            window = done[-1] - done[warmup - 1]
            frames = len(done) - warmup
        else:
            window = (done[-1] - self.start) if done else 0.0
            frames = len(done)
        return (frames / window if window > 0 else 0.0), frames, window


@dataclasses.dataclass(frozen=True)
class StageStats:
    """One stage's totals; ``share`` is busy time over the run's wall time (can exceed 1 for a
    stage that runs work in parallel, e.g. multi-threaded encode)."""

    busy_s: float
    items: int
    ms_per_item: float
    share: float
    queue_mean: float | None = None
    queue_max: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items() if v is not None}


@dataclasses.dataclass(frozen=True)
class RunStats:
    """What a run did and how fast. ``fps`` is sustained (after ``warmup_frames``); ``seconds`` is
    the whole run's wall time; ``latency_ms`` is per frame, from decoded to written (:func:`percentiles`);
    ``concurrency`` is the stages' summed busy time over the wall time (1.0: they took turns; more:
    they overlapped, e.g. decode and encode hidden behind the model). ``window`` is the measured
    window alone: ``{"frames", "seconds", "stages": {name: {"busy_s", "share"}}}`` with
    ``fps == frames / seconds`` and busy time counted from the end of warm-up."""

    frames: int
    seconds: float
    fps: float
    stages: dict[str, StageStats]
    latency_ms: dict[str, float]
    device: str = ""
    model: str = ""
    warmup_frames: int = 0
    concurrency: float = 0.0
    window: dict[str, Any] = dataclasses.field(default_factory=dict)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "frames": self.frames,
            "seconds": round(self.seconds, 6),
            "fps": round(self.fps, 3),
            "stages": {name: s.to_dict() for name, s in self.stages.items()},
            "latency_ms": {k: round(v, 3) for k, v in self.latency_ms.items()},
            "device": self.device,
            "model": self.model,
            "warmup_frames": self.warmup_frames,
            "concurrency": round(self.concurrency, 3),
            "window": self.window,
        }
        out.update(self.extra)
        out["warnings"] = list(self.warnings)
        return out


class StatsRecorder:
    """The live counters of one run; ``freeze()`` turns them into a :class:`RunStats`."""

    def __init__(self, stages: Sequence[str], *, queue_capacity: int | None = None, warmup_frames: int = 0) -> None:
        self.stages = {name: StageClock(name) for name in stages}
        self.queues = {name: DepthGauge(queue_capacity) for name in stages}  # the queue feeding each stage
        self.latency = LatencyLog()
        self.throughput = ThroughputClock()
        self.warmup_frames = warmup_frames
        self._busy_at_warmup: dict[str, float] | None = None
        self._warnings: list[str] = []
        self._lock = threading.Lock()

    def mark_done(self, items: int = 1, at: float | None = None) -> None:
        """Frames finished (written or shown). When warm-up ends, each stage's busy time so far is
        noted, so the window's busy shares leave warm-up (first batches, allocator growth) out."""
        self.throughput.mark(items, at=at)
        if self._busy_at_warmup is None and self.throughput.count >= self.warmup_frames:
            self._busy_at_warmup = {name: clock.busy_s for name, clock in self.stages.items()}

    def stage(self, name: str) -> StageClock:
        return self.stages[name]

    def warn(self, message: str) -> None:
        """Record a warning once (repeats of the same text are dropped)."""
        with self._lock:
            if message not in self._warnings:
                self._warnings.append(message)

    @property
    def warnings(self) -> tuple[str, ...]:
        return tuple(self._warnings)

    def freeze(self, *, device: str = "", model: str = "", **extra: Any) -> RunStats:
        seconds = self.throughput.elapsed_s()
        fps, window_frames, window_s = self.throughput.sustained_fps(self.warmup_frames)
        frames = self.throughput.count
        stages = {}
        for name, clock in self.stages.items():
            gauge = self.queues[name]
            stages[name] = StageStats(
                busy_s=clock.busy_s, items=clock.items,
                ms_per_item=1000.0 * clock.busy_s / clock.items if clock.items else 0.0,
                share=clock.busy_s / seconds if seconds > 0 else 0.0,
                queue_mean=gauge.mean if gauge._count else None,
                queue_max=gauge.max if gauge._count else None)
        warmup = self.warmup_frames if frames > self.warmup_frames else 0  # as sustained_fps
        busy = sum(clock.busy_s for clock in self.stages.values())
        before = self._busy_at_warmup if warmup and self._busy_at_warmup is not None else {}
        window_busy = {name: max(0.0, clock.busy_s - before.get(name, 0.0)) for name, clock in self.stages.items()}
        window = {"frames": window_frames, "seconds": round(window_s, 6),
                  "stages": {name: {"busy_s": round(b, 6), "share": round(b / window_s, 4) if window_s > 0 else 0.0}
                             for name, b in window_busy.items()}}
        return RunStats(frames=frames, seconds=seconds, fps=fps, stages=stages,
                        latency_ms=self.latency.percentiles(skip=warmup), device=device, model=model,
                        warmup_frames=warmup, concurrency=busy / seconds if seconds > 0 else 0.0,
                        window=window, extra=dict(extra), warnings=self.warnings)
