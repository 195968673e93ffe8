"""The streaming engine: inference engine, file runner, tiling and run statistics."""
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
