"""Measurement primitives for the benchmark: timed windows, peak memory, the machine.

Latency figures are not here: every run is summarised by ``pipeline.stats.percentiles``, as ``video``'s are.

Units are in the names: ``*_s`` seconds, ``*_ms`` milliseconds, ``*_mb`` mebibytes.
"""
from __future__ import annotations

import dataclasses
import os
import platform
import re
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from videodeblur.heap import heap_setting

__all__ = ["FrameClock", "Window", "PeakMemory", "call_times_s", "rss_scope", "machine_info", "cpu_model"]



def call_times_s(call: Callable[[], object], *, repeat: int, warmup: int) -> list[float]:
    """Seconds each of ``repeat`` calls of ``call`` took, after ``warmup`` untimed ones: what the
    benchmark scripts time of one step alone (the network, a colour conversion), back to back."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times

@dataclasses.dataclass(frozen=True)
class Window:
    """The measured part of a run: frames completed after warm-up and the seconds they took."""

    frames: int
    seconds: float
    warmup_frames: int
    warmup_s: float
    """From the start of the run to the completion of the last warm-up frame (compilation included)."""
    latencies_ms: tuple[float, ...]
    """Per measured frame: from the start of its first stage to the end of its last."""
    stage_busy_s: dict[str, float]
    """Per stage: time spent inside the stage during the window (operations that started after it began)."""

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


class FrameClock:
    """Records, for one single-threaded run, when each frame started and completed and how long each stage
    was busy, then cuts the warm-up off.

    Usage: ``t = clock.now()`` before a stage, ``clock.stage("infer", t, frames=n)`` after it;
    ``clock.begin(n)`` when ``n`` frames enter the run, ``clock.complete(n)`` when ``n`` frames leave it.
    Frames complete in order (the runs here are first-in first-out), so frame ``i``'s latency is its
    completion time minus its begin time.
    """

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self._begins: list[float] = []
        self._completions: list[float] = []
        self._stages: list[tuple[str, float, float]] = []

    @staticmethod
    def now() -> float:
        return time.perf_counter()

    def begin(self, frames: int = 1, at: float | None = None) -> None:
        t = self.now() if at is None else at
        self._begins.extend([t] * frames)

    def complete(self, frames: int = 1, at: float | None = None) -> float:
        t = self.now() if at is None else at
        self._completions.extend([t] * frames)
        return t

    def stage(self, name: str, started: float, ended: float | None = None) -> float:
        """Record that ``name`` was busy from ``started`` to ``ended`` (now); returns ``ended``."""
        ended = self.now() if ended is None else ended
        self._stages.append((name, started, ended))
        return ended

    def window(self, warmup_frames: int, stage_names: Sequence[str] = ()) -> Window:
        """Cut the first ``warmup_frames`` completions off. The window runs from the completion of the last
        warm-up frame (or the run's start when there is none) to the completion of the last frame: the
        window ``ThroughputClock.sustained_fps`` gives the runner, except that a warm-up leaving nothing is
        an error here (the bench chose it) where the runner falls back to the whole run."""
        n = len(self._completions)
        if not 0 <= warmup_frames < n:
            raise ValueError(f"warm-up of {warmup_frames} frames leaves nothing to measure out of {n}")
        window_start = self._completions[warmup_frames - 1] if warmup_frames else self.start
        window_end = self._completions[-1]
        latencies = tuple((self._completions[i] - self._begins[i]) * 1e3 for i in range(warmup_frames, n))
        busy = {name: 0.0 for name in stage_names}
        for name, started, ended in self._stages:
            if started >= window_start:
                busy[name] = busy.get(name, 0.0) + (ended - started)
        return Window(frames=n - warmup_frames, seconds=window_end - window_start, warmup_frames=warmup_frames,
                      warmup_s=window_start - self.start, latencies_ms=latencies, stage_busy_s=busy)


class PeakMemory:
    """Peak host RSS and peak CUDA memory over one run.

    Host: Linux keeps one high-water mark per process (``VmHWM``); writing ``5`` to
    ``/proc/self/clear_refs`` (Linux >= 4.0) resets it to the current RSS, so each run gets its own peak.
    Where that is refused, the figure is the process's peak so far and ``rss_scope`` says ``"process"``
    (the runs' order is then the order of ``runs`` in the result). CUDA: ``max_memory_allocated`` after
    ``reset_peak_memory_stats`` (memory held by tensors, not the caching allocator's reserve).
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.rss_scope = "process"
        self.peak_rss_mb: float | None = None
        self.cuda_peak_mb: float | None = None

    def __enter__(self) -> "PeakMemory":
        self.rss_scope = rss_scope()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        return self

    def __exit__(self, *exc: object) -> None:
        self.peak_rss_mb = _peak_rss_mb()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.cuda_peak_mb = torch.cuda.max_memory_allocated(self.device) / 2**20


def rss_scope() -> str:
    """Reset the process's peak RSS to its current RSS: ``"run"`` where that works (peaks measured from
    here on belong to what runs next), ``"process"`` where it is refused (peaks are the process's so far)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return "process"
    return "run"


def _peak_rss_mb() -> float:
    try:
        match = re.search(r"^VmHWM:\s+(\d+)\s+kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    except OSError:
        match = None
    if match:
        return int(match.group(1)) / 1024
    import resource  # not on Windows; ru_maxrss is kB on Linux, bytes on macOS

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if platform.system() == "Darwin" else peak / 1024


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: torch.device) -> dict[str, Any]:
    """What a benchmark figure depends on: CPU model and usable cores, GPU, library versions."""
    import av
    import numpy

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 1
    gpu = None
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        gpu = {"name": props.name, "memory_gb": round(props.total_memory / 1e9, 1),
               "capability": f"{props.major}.{props.minor}", "cuda": torch.version.cuda}
    return {
        "cpu": cpu_model(),
        "cores": usable,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": gpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "av": av.__version__,
        "ffmpeg": _ffmpeg_version(av),
        "numpy": numpy.__version__,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "heap": heap_setting(),
    }


def _ffmpeg_version(av_module: Any) -> str | None:
    try:
        libavcodec = av_module.library_versions.get("libavcodec")
        return ".".join(map(str, libavcodec)) if libavcodec else None
    except AttributeError:
        return None
