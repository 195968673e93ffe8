"""What ``videodeblur bench`` found: one record per run and one for the whole bench, and their JSON.

Apart from the runs because the ``--json`` object (and the table the CLI draws from it) must keep its
keys whatever a run measures and however: every run ends here, in the same terms.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from videodeblur.measure import PeakMemory, Window
from videodeblur.pipeline.stats import percentiles

__all__ = ["BenchResult", "RunResult", "result_from_run_stats", "result_from_window"]


@dataclasses.dataclass(frozen=True)
class RunResult:
    """One measured run. ``stages`` maps a stage to ``{"busy_s", "share"}`` (share of the window, in [0, 1]);
    ``queue_depth`` maps a queue to ``{"mean", "max"}`` frames (empty for single-threaded runs)."""

    mode: str
    model: str | None
    batch: int | None
    frames: int
    seconds: float
    warmup_frames: int
    warmup_s: float
    latency_ms: dict[str, float]
    stages: dict[str, dict[str, float]]
    queue_depth: dict[str, dict[str, float]]
    peak_rss_mb: float | None
    cuda_peak_mb: float | None
    timing: str = "wall"
    """``wall`` (perf_counter around synchronous calls) or ``cuda-events``."""
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = {"mode": self.mode, "model": self.model, "batch": self.batch, "fps": round(self.fps, 3),
               "frames": self.frames, "seconds": round(self.seconds, 6), "warmup_frames": self.warmup_frames,
               "warmup_s": round(self.warmup_s, 6),
               "latency_ms": {k: round(v, 3) for k, v in self.latency_ms.items()},
               "stages": {k: {"busy_s": round(v["busy_s"], 6), "share": round(v["share"], 4)}
                          for k, v in self.stages.items()},
               "queue_depth": self.queue_depth, "peak_rss_mb": _round(self.peak_rss_mb, 1),
               "cuda_peak_mb": _round(self.cuda_peak_mb, 1), "timing": self.timing}
        out.update(self.extra)
        return out


@dataclasses.dataclass(frozen=True)
class BenchResult:
    machine: dict[str, Any]
    model: str
    device: str
    precision: str
    layout: str
    size: tuple[int, int]
    input: str | None
    runs: tuple[RunResult, ...]
    bound: str
    overlap: float | None
    rss_scope: str
    peers: dict[str, dict[str, Any]]
    date: str
    tile: int | None = None
    compile: bool = False  # the network was torch.compiled
    cuda_graphs: bool = False  # the engine replayed captured CUDA graphs
    notes: tuple[str, ...] = ()  # what makes these figures less than they look (a short input, few frames)
    auto_tile: tuple[str, ...] = ()  # why and how engines tiled frames too big for memory (no --tile)
    # model-only fps at the start and the end of the file runs, and the relative change: the machine's drift
    drift: dict[str, float | None] | None = None

    def run(self, mode: str, batch: int | None = None, model: str | None = None) -> RunResult:
        """The first run of ``mode`` (at ``batch`` / for ``model`` where given)."""
        for r in self.runs:
            if r.mode == mode and (batch is None or r.batch == batch) and (model is None or r.model == model):
                return r
        raise KeyError(f"no {mode} run (batch {batch}, model {model})")

    def to_dict(self) -> dict[str, Any]:
        return {"machine": self.machine, "model": self.model, "device": self.device, "precision": self.precision,
                "layout": self.layout, "size": list(self.size), "tile": self.tile, "auto_tile": list(self.auto_tile),
                "compile": self.compile, "cuda_graphs": self.cuda_graphs, "notes": list(self.notes),
                "input": self.input,
                "date": self.date,
                "rss_scope": self.rss_scope,
                "runs": [r.to_dict() for r in self.runs], "bound": self.bound,
                "overlap": _round(self.overlap, 4), "drift": self.drift, "peers": self.peers}


def result_from_window(mode: str, model: str | None, batch: int | None, window: Window, memory: PeakMemory, *,
                       timing: str = "wall", extra: dict[str, Any] | None = None) -> RunResult:
    """A single-threaded run's measured ``window`` and ``memory`` as a ``RunResult`` (no queues)."""
    stages = {name: {"busy_s": busy, "share": min(1.0, busy / window.seconds) if window.seconds > 0 else 0.0}
              for name, busy in window.stage_busy_s.items()}
    return RunResult(mode=mode, model=model, batch=batch, frames=window.frames, seconds=window.seconds,
                     warmup_frames=window.warmup_frames, warmup_s=window.warmup_s,
                     latency_ms=percentiles(window.latencies_ms), stages=stages, queue_depth={},
                     peak_rss_mb=memory.peak_rss_mb, cuda_peak_mb=memory.cuda_peak_mb, timing=timing,
                     extra=extra or {})


def result_from_run_stats(stats: dict[str, Any], model: str, batch: int, memory: PeakMemory) -> RunResult:
    """The runner's ``RunStats.to_dict()`` as the pipelined ``RunResult``: its ``window`` is the measured
    window (frames after warm-up, their seconds, and stage busy time counted from the end of warm-up), and
    its ``latency_ms`` already summarises the frames after warm-up by the rule the other runs use."""
    window = stats["window"]
    frames, seconds = window["frames"], window["seconds"]
    stages = {name: {"busy_s": s["busy_s"], "share": min(1.0, s["share"])} for name, s in window["stages"].items()}
    queues = {name: {"mean": s["queue_mean"], "max": s["queue_max"]}
              for name, s in stats["stages"].items() if "queue_mean" in s}
    return RunResult(mode="pipelined", model=model, batch=batch, frames=frames, seconds=seconds,
                     warmup_frames=stats["frames"] - frames, warmup_s=max(0.0, stats["seconds"] - seconds),
                     latency_ms=dict(stats["latency_ms"]), stages=stages, queue_depth=queues,
                     peak_rss_mb=memory.peak_rss_mb, cuda_peak_mb=memory.cuda_peak_mb,
                     extra={k: stats[k] for k in ("encoder", "device", "warnings") if k in stats})


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
