"""The streaming engine: inference engine, file runner, tiling and run statistics.

Its names are imported on first use (``videodeblur.lazy_exports``), so that the commands' path
checks in ``videodeblur.pipeline.plan`` run before torch loads.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from videodeblur.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from videodeblur.pipeline.engine import Engine, EngineOptions, EngineResult, resolve_device, resolve_precision
    from videodeblur.pipeline.options import RunOptions
    from videodeblur.pipeline.runner import choose_layout, deblur_file, run_pipeline
    from videodeblur.pipeline.stats import (DepthGauge, LatencyLog, RunStats, StageClock, StageStats, StatsRecorder,
                                            ThroughputClock, percentiles)
    from videodeblur.pipeline.threaded_run import RunInterrupted
    from videodeblur.pipeline.tiling import run_tiled

__all__ = ["Engine", "EngineOptions", "EngineResult", "resolve_device", "resolve_precision", "run_tiled",
           "RunOptions", "RunInterrupted", "choose_layout", "deblur_file", "run_pipeline",
           "RunStats", "StageStats", "StageClock", "DepthGauge", "LatencyLog", "ThroughputClock", "StatsRecorder",
           "percentiles"]

__getattr__, __dir__ = lazy_exports(__name__, {
    "engine": ("Engine", "EngineOptions", "EngineResult", "resolve_device", "resolve_precision"),
    "options": ("RunOptions",),
    "runner": ("choose_layout", "deblur_file", "run_pipeline"),
    "stats": ("DepthGauge", "LatencyLog", "RunStats", "StageClock", "StageStats", "StatsRecorder", "ThroughputClock",
              "percentiles"),
    "threaded_run": ("RunInterrupted",),
    "tiling": ("run_tiled",),
})
