"""The live loop: capture thread → latest-frame slot → engine(s) at batch 1 → preview / recorder.

Latency comes first. The capture thread writes into a single slot; a newer frame overwrites an
unprocessed one and counts a drop, so a model slower than the camera processes the freshest frame
instead of working through a backlog. The model runs on its own thread, one per engine given (two on
a CPU: ``live_workers`` says why), each taking the newest frame when it is free; results come back in
capture order. The loop runs on the caller's thread (the main thread in the
CLI, where OpenCV's window has to live) and calls ``on_frame`` there after every processed frame.
Recording runs in its own thread behind a small bounded queue, so encoding does not add to latency,
and every processed frame is recorded at its time on the source's own clock, so its sound stays in
step (``live_record``). The slot and the capture thread are in ``live_capture``.

Latency is capture-to-output: from ``time.monotonic()`` at grab to the moment the deblurred frame
is back from the engine (before it is drawn or encoded), in milliseconds.
"""
from __future__ import annotations

import array
import dataclasses
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from videodeblur.errors import ConfigError
from videodeblur.signals import signals_noted
from videodeblur.pipeline.live_capture import CaptureThread, LatestFrameSlot
from videodeblur.pipeline.live_record import Recorder
from videodeblur.pipeline.live_workers import FrameProcessor, InferenceWorkers
from videodeblur.pipeline.side_by_side import side_by_side
from videodeblur.pipeline.stats import percentiles
from videodeblur.video.capture import LiveSource
from videodeblur.video.locations import is_url, redacted, scheme_not_sent

__all__ = ["FrameProcessor", "LiveOptions", "LiveFrame", "LiveStats", "run_live"]

_POLL_S = 0.05  # how often the loop wakes to check --max-seconds and a stalled source
_JOIN_TIMEOUT_S = 5.0
_CAPTURE_JOIN_S = 1.0  # a capture that is not blocked ends within a frame's read


@dataclasses.dataclass(frozen=True)
class LiveOptions:
    """``max_seconds``: stop after this long (None: run until the source ends or the user quits).
    ``record_path``: also write the deblurred feed there (``side_by_side``: source | deblurred, twice
    as wide). ``stall_timeout_s``: a source that delivers
    nothing for this long counts as lost (a hung camera or network read). ``reconnect_s``: a lost
    source is opened again (``run_live``'s ``reopen``), every second for up to this long, and the
    run goes on with the same size and recording (0: a lost source ends the run)."""

    max_seconds: float | None = None
    record_path: Path | str | None = None  # a file, or a live stream's URL (rtmp://, srt://, udp://...)
    stall_timeout_s: float = 5.0
    warmup: bool = True
    reconnect_s: float = 0.0
    side_by_side: bool = False  # record the source and its deblurred picture side by side, as video --side-by-side

    def __post_init__(self) -> None:
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise ConfigError(f"max_seconds must be positive, got {self.max_seconds}")
        if self.stall_timeout_s <= 0:
            raise ConfigError(f"stall_timeout_s must be positive, got {self.stall_timeout_s}")
        if self.reconnect_s < 0:
            raise ConfigError(f"reconnect_s must be >= 0, got {self.reconnect_s}")
        if isinstance(self.record_path, str) and (why := scheme_not_sent(self.record_path)):
            raise ConfigError(why)


@dataclasses.dataclass(frozen=True)
class LiveFrame:
    """One processed frame as handed to ``on_frame``: both pictures H×W×3 uint8 RGB."""

    source: np.ndarray
    output: np.ndarray
    index: int
    latency_ms: float
    fps: float  # processed frames per second over the last second or so


@dataclasses.dataclass(frozen=True)
class LiveStats:
    """What a live run did. ``captured == processed + dropped`` always holds (a frame still in the
    slot, or in the model, when the run stops counts as dropped). ``fps`` is processed frames per second between the
    first and the last output (a single output: from the run's start to it);
    ``latency_p95_ms_by_minute`` shows whether latency grows over a long run; ``infer_ms`` is the
    engine's mean time per frame (each engine's, where several run side by side). ``end_reason``: ``source ended``, ``source lost: ...``,
    ``max-seconds``, ``quit`` or ``interrupted``."""

    captured: int
    processed: int
    dropped: int
    fps: float
    seconds: float
    latency_ms: dict[str, float | None]  # None: no frame was processed
    latency_p95_ms_by_minute: list[float]
    infer_ms: float
    end_reason: str
    source: str
    width: int
    height: int
    recorded: int
    record_path: str | None
    reconnects: int  # times a lost source was opened again (reconnect_s)
    record_dropped: int  # frames left out of a live stream (--record URL) because the network fell behind
    model: str | None
    device: str | None
    # what the recording changed or left out of the source's tracks (AAC re-encoded as Opus for .webm)
    warnings: list[str] = dataclasses.field(default_factory=list)

    @property
    def interrupted(self) -> bool:
        return self.end_reason == "interrupted"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def run_live(source: LiveSource, engine: FrameProcessor | Sequence[FrameProcessor],
             options: LiveOptions = LiveOptions(),
             on_frame: Callable[[LiveFrame], bool] | None = None,
             reopen: Callable[[], LiveSource] | None = None,
             interrupt: threading.Event | None = None) -> LiveStats:
    """Deblur ``source`` live until it ends, ``on_frame`` returns False, ``max_seconds`` pass, or
    Ctrl-C (returned as ``end_reason="interrupted"`` so the caller can still report and exit 130).
    ``engine`` may be several engines (same model), each run on its own thread.

    Takes ownership of ``source``: it is closed when the run ends. ``reopen`` opens the source again
    after it is lost (with ``options.reconnect_s``): a network camera that drops, a webcam replugged. Errors that are not the source
    going away (a failing engine, an unwritable recording) are raised after every thread is joined
    and the recording is finalised.

    ``interrupt``: the caller's own note of a Ctrl-C, set when it lands before the run has begun to
    note them itself (the CLI notes them from before the run until its stats are said); the run ends
    at its next turn, as at Ctrl-C.
    """
    engines = list(engine) if isinstance(engine, Sequence) else [engine]
    stop = threading.Event()
    slot = LatestFrameSlot()
    workers = InferenceWorkers(engines, slot, stop)
    recorder: Recorder | None = None
    capture = CaptureThread(source, slot, stop, reopen=reopen if options.reconnect_s > 0 else None,
                             reconnect_s=options.reconnect_s,
                             reopened=lambda again, run: recorder.follow(run, again) if recorder is not None else None)
    latencies = array.array("d")  # 8 bytes a frame: a camera may run for weeks
    output_times = array.array("d")
    end_reason = "source ended"
    played_whole = False  # the source ended and every frame taken was handed back: not a stop, nor an error
    start = time.monotonic()
    # Ctrl-C (SIGTERM, SIGHUP) is noted, not raised, and the loop stops at its next turn: raised
    # between counting a frame and queueing it for the recording, it left the file a frame short
    interrupted = interrupt if interrupt is not None else threading.Event()
    with signals_noted(interrupted.set):
        try:
            if options.warmup:
                for each in engines:
                    if hasattr(each, "warmup"):
                        each.warmup(source.height, source.width)  # keep cudnn/compile warm-up out of the latency
            if options.record_path is not None:
                # side by side as a player shows it: one above the other where the picture is turned a quarter
                turned = source.rotation % 180 != 0
                width = source.width * (2 if options.side_by_side and not turned else 1)
                height = source.height * (2 if options.side_by_side and turned else 1)
                recorder = Recorder(options.record_path, width, height, source.fps, source_path=source.path,
                                     rotation=source.rotation, colour=source.colour,
                                     sample_aspect_ratio=source.sample_aspect_ratio,
                                     audio_from=source.audio_from,
                                     audio_feed=source.take_audio() if source.audio_from is None else None)
            start = time.monotonic()
            if not interrupted.is_set():  # a Ctrl-C in the warm-up: no capture begun
                capture.start()
                workers.start()
            while True:
                if interrupted.is_set():
                    break
                if options.max_seconds is not None and time.monotonic() - start >= options.max_seconds:
                    end_reason = "max-seconds"
                    break
                processed = workers.next(_POLL_S)
                if processed is None:
                    if workers.finished:  # the slot was closed and every frame taken is out
                        end_reason = capture.end_reason
                        played_whole = end_reason == "source ended"
                        break
                    # while the capture thread reconnects, it gets its own time on top; a paced file or
                    # lavfi graph's wait for its next frame's time is counted out (a still held 6 s)
                    if (workers.not_handed_back == 0
                            and time.monotonic() - max(slot.last_put_time, start, capture.paced_until)
                            > options.stall_timeout_s + options.reconnect_s):
                        end_reason = f"source lost: {source.description} delivered nothing for {options.stall_timeout_s:g} s"
                        break
                    continue
                if processed.error is not None:
                    slot.count_dropped()  # taken, never processed
                    raise processed.error
                frame, output = processed.frame, processed.output
                done = time.monotonic()  # handed back: a frame held behind an older one waited too
                latencies.append((done - frame.capture_time) * 1000.0)
                output_times.append(done)
                if recorder is not None:
                    picture = side_by_side(frame.image, output, source.rotation) if options.side_by_side else output
                    recorder.write(picture, frame.capture_time, stream_s=frame.stream_s, run=frame.run)
                if on_frame is not None:
                    live = LiveFrame(frame.image, output, frame.index, latencies[-1], _recent_fps(output_times))
                    if on_frame(live) is False:
                        end_reason = "quit"
                        break
        except KeyboardInterrupt:  # raised by a caller's on_frame or an engine, not by a signal
            end_reason = "interrupted"
        finally:
            end = time.monotonic()  # the run's length ends at the stop, not after the threads are let go
            # a second Ctrl-C (or a SIGTERM) while the capture stops and the recording is finalised is
            # only noted too: raised here, it cut the recording's close short and the stats were never said
            stop.set()
            slot.close()
            if capture.started:
                # a read blocked on a stalled stream returns only at its own timeout (5 s): the
                # capture thread (a daemon, closing its source when it returns) is left to it
                capture.join(_CAPTURE_JOIN_S)
            else:
                source.close()
            workers.join(_JOIN_TIMEOUT_S)  # each ends its frame in the model first
            slot.discard()
            for _ in range(workers.not_handed_back):
                slot.count_dropped()  # taken, never processed: the run stopped while it was in the model
            recorded = recorder.close(whole=played_whole) if recorder is not None else 0
            record_dropped = recorder.dropped if recorder is not None else 0
            warnings = recorder.warnings if recorder is not None else []
    # read once the signals are no longer noted: one noted after this was read was swallowed, unsaid
    if interrupted.is_set():
        end_reason = "interrupted"
    capture.raise_error()
    if recorder is not None:
        recorder.raise_error()
    if recorder is not None and not recorded and not is_url(str(options.record_path)):
        # the writer opens its file with the first frame: none came, so there is no file to name
        warnings = [*warnings, f"nothing recorded: no frame was processed, so {options.record_path} was not written"]
    return LiveStats(
        captured=slot.captured, processed=len(latencies), dropped=slot.dropped,
        fps=_sustained_fps(output_times, start), seconds=round(end - start, 3),
        # none measured is no latency, not 0 ms
        latency_ms={k: round(v, 2) if latencies else None for k, v in percentiles(latencies).items()},
        latency_p95_ms_by_minute=_p95_by_minute(latencies, output_times, start),
        infer_ms=round(1000.0 * workers.infer.busy_s / workers.infer.items, 2) if workers.infer.items else 0.0,
        end_reason=end_reason, source=source.description,
        width=source.width, height=source.height, recorded=recorded, record_dropped=record_dropped,
        reconnects=capture.reconnects,
        record_path=redacted(options.record_path) if options.record_path is not None else None,
        model=getattr(engines[0], "model_name", None), device=_device(engines), warnings=warnings,
    )


def _device(engines: list[FrameProcessor]) -> str | None:
    """The engine's own description ("cpu (2 threads)", "cuda:0 (NVIDIA ...)"), as ``video`` reports
    it, with "× N engines" where several ran side by side."""
    engine = engines[0]
    describe = getattr(engine, "describe", None)
    if describe is not None:
        text = str(describe())
    elif hasattr(engine, "device"):
        text = str(engine.device)
    else:
        return None  # a stand-in engine
    return text if len(engines) == 1 else f"{text} × {len(engines)} engines"


def _p95_by_minute(latencies_ms: Sequence[float], output_times: Sequence[float], start: float) -> list[float]:
    if not len(latencies_ms):
        return []
    minute = ((np.asarray(output_times) - start) // 60).astype(np.int64)
    values = np.asarray(latencies_ms)
    return [round(percentiles(values[minute == m])["p95"], 2) for m in np.unique(minute)]


def _sustained_fps(output_times: Sequence[float], start: float) -> float:
    """Frames per second between the first and the last output; a single output over the time from
    the run's start to it (as ``video`` rates a run too short for a window), not 0."""
    if not output_times:
        return 0.0
    if len(output_times) == 1:
        seconds = output_times[0] - start
        return round(1 / seconds, 2) if seconds > 0 else 0.0
    return round((len(output_times) - 1) / (output_times[-1] - output_times[0]), 2)


def _recent_fps(output_times: Sequence[float], window_s: float = 1.0) -> float:
    now = output_times[-1]
    recent = [t for t in output_times[-240:] if now - t <= window_s]
    if len(recent) < 2:
        return 0.0
    return (len(recent) - 1) / (recent[-1] - recent[0])
