"""The live loop: capture thread → latest-frame slot → engine at batch 1 → preview / recorder.

Latency comes first. The capture thread writes into a single slot; a newer frame overwrites an
unprocessed one and counts a drop, so a model slower than the camera processes the freshest frame
instead of working through a backlog. The loop runs on the caller's thread (the main thread in the
CLI, where OpenCV's window has to live) and calls ``on_frame`` there after every processed frame.
Recording runs in its own thread behind a small bounded queue, so encoding does not add to latency,
and every processed frame is recorded at its time on the source's own clock (a stream's, a file's
or a lavfi graph's pts), as the ffmpeg tool records a stream, so the source's sound, timed by the
same clock, stays in step; a webcam, which has no clock of its own, records its capture times.

Latency is capture-to-output: from ``time.monotonic()`` at grab to the moment the deblurred frame
is back from the engine (before it is drawn or encoded), in milliseconds.
"""
from __future__ import annotations

import contextlib
import dataclasses
import queue
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Protocol

import cv2
import numpy as np

from videodeblur.errors import SourceError
from videodeblur.signals import signals_noted
from videodeblur.pipeline.side_by_side import side_by_side
from videodeblur.pipeline.stats import StageClock, percentiles
from videodeblur.video.capture import CapturedFrame, LiveSource
from videodeblur.video.feed import PacketFeed
from videodeblur.video.locations import is_url

__all__ = ["LiveOptions", "LiveFrame", "LiveStats", "LatestFrameSlot", "run_live"]

RECORD_TIME_BASE = Fraction(1, 1000)  # recorded pts are capture-time milliseconds
_POLL_S = 0.05  # how often the loop wakes to check --max-seconds and a stalled source
_JOIN_TIMEOUT_S = 5.0
_RECORD_QUEUE = 8
_STREAM_CLOSE_GRACE_S = 3.0  # a --record URL's writer making no progress this long at the end is left


class FrameProcessor(Protocol):
    """What the live loop needs of ``videodeblur.pipeline.Engine``."""

    def process(self, frames: np.ndarray) -> np.ndarray: ...


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
            raise ValueError(f"max_seconds must be positive, got {self.max_seconds}")
        if self.stall_timeout_s <= 0:
            raise ValueError(f"stall_timeout_s must be positive, got {self.stall_timeout_s}")
        if self.reconnect_s < 0:
            raise ValueError(f"reconnect_s must be >= 0, got {self.reconnect_s}")


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
    slot when the run stops counts as dropped). ``fps`` is processed frames per second between the
    first and the last output (a single output: from the run's start to it);
    ``latency_p95_ms_by_minute`` shows whether latency grows over a long run; ``infer_ms`` is the
    engine's mean time per frame. ``end_reason``: ``source ended``, ``source lost: ...``,
    ``max-seconds``, ``quit`` or ``interrupted``."""

    captured: int
    processed: int
    dropped: int
    fps: float
    seconds: float
    latency_ms: dict[str, float]
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


class LatestFrameSlot:
    """A one-frame mailbox between the capture thread and the loop (a lock and a condition).

    ``put`` replaces a frame nobody has taken yet and counts it as dropped; with ``wait=True`` it
    instead blocks until the slot is empty (a file read in lockstep; such a frame's ``capture_time``
    is when it is taken). ``close`` wakes everyone; a
    frame still inside can be taken, then ``take`` returns None.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: CapturedFrame | None = None
        self._closed = False
        self.captured = 0
        self.dropped = 0
        self.last_put_time = time.monotonic()
        self._in_step = False  # the frame inside was put with wait=True

    def put(self, frame: CapturedFrame, *, wait: bool = False) -> bool:
        """Store ``frame``; False if the slot is closed (the frame is then not counted)."""
        with self._cond:
            if wait:
                self._cond.wait_for(lambda: self._frame is None or self._closed)
            self._in_step = wait
            if self._closed:
                return False
            if self._frame is not None:
                self.dropped += 1
            self._frame = frame
            self.captured += 1
            self.last_put_time = time.monotonic()
            self._cond.notify_all()
            return True

    def take(self, timeout: float) -> CapturedFrame | None:
        """The newest frame, waiting up to ``timeout`` seconds; None on timeout or when closed and empty."""
        with self._cond:
            self._cond.wait_for(lambda: self._frame is not None or self._closed, timeout)
            frame, self._frame = self._frame, None
            self._cond.notify_all()
        if frame is not None and self._in_step:
            # a file read in step was not captured live: its life starts when it is taken (it was
            # read ahead, and its wait for the previous frame's turn in the model is no latency)
            frame = dataclasses.replace(frame, capture_time=time.monotonic())
        return frame

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        with self._cond:
            return self._closed

    def count_dropped(self) -> None:
        """Count a frame that was taken but never processed (the run stopped while it was in the model)."""
        with self._cond:
            self.dropped += 1

    def discard(self) -> None:
        """Count a frame left in the slot at shutdown as dropped."""
        with self._cond:
            if self._frame is not None:
                self._frame = None
                self.dropped += 1


def run_live(source: LiveSource, engine: FrameProcessor, options: LiveOptions = LiveOptions(),
             on_frame: Callable[[LiveFrame], bool] | None = None,
             reopen: Callable[[], LiveSource] | None = None) -> LiveStats:
    """Deblur ``source`` live until it ends, ``on_frame`` returns False, ``max_seconds`` pass, or
    Ctrl-C (returned as ``end_reason="interrupted"`` so the caller can still report and exit 130).

    Takes ownership of ``source``: it is closed when the run ends. ``reopen`` opens the source again
    after it is lost (with ``options.reconnect_s``): a network camera that drops, a webcam replugged. Errors that are not the source
    going away (a failing engine, an unwritable recording) are raised after every thread is joined
    and the recording is finalised.
    """
    stop = threading.Event()
    slot = LatestFrameSlot()
    recorder: _Recorder | None = None
    capture = _CaptureThread(source, slot, stop, reopen=reopen if options.reconnect_s > 0 else None,
                             reconnect_s=options.reconnect_s,
                             reopened=lambda again, run: recorder.follow(run, again) if recorder is not None else None)
    latencies: list[float] = []
    infer = StageClock("infer")
    output_times: list[float] = []
    end_reason = "source ended"
    start = time.monotonic()
    in_hand: int | None = None  # len(latencies) when the frame now in the model was taken
    try:
        if options.warmup and hasattr(engine, "warmup"):
            engine.warmup(source.height, source.width)  # keep cudnn/compile warm-up out of the latency
        if options.record_path is not None:
            width = source.width * (2 if options.side_by_side else 1)
            recorder = _Recorder(options.record_path, width, source.height, source.fps, source_path=source.path,
                                 audio_from=source.audio_from,
                                 audio_feed=source.take_audio() if source.audio_from is None else None)
        start = time.monotonic()
        capture.start()
        while True:
            if options.max_seconds is not None and time.monotonic() - start >= options.max_seconds:
                end_reason = "max-seconds"
                break
            frame = slot.take(_POLL_S)
            if frame is None:
                if slot.closed:
                    end_reason = capture.end_reason
                    break
                # while the capture thread reconnects, it gets its own time on top
                if time.monotonic() - max(slot.last_put_time, start) > options.stall_timeout_s + options.reconnect_s:
                    end_reason = f"source lost: {source.description} delivered nothing for {options.stall_timeout_s:g} s"
                    break
                continue
            in_hand = len(latencies)  # this frame is counted once: processed, or dropped if the run stops first
            with infer.time():
                output = engine.process(frame.image[np.newaxis])[0]
            done = time.monotonic()
            latencies.append((done - frame.capture_time) * 1000.0)
            output_times.append(done)
            if recorder is not None:
                picture = side_by_side(frame.image, output, 0) if options.side_by_side else output
                recorder.write(picture, frame.capture_time, stream_s=frame.stream_s, run=frame.run)
            if on_frame is not None:
                live = LiveFrame(frame.image, output, frame.index, latencies[-1], _recent_fps(output_times))
                if on_frame(live) is False:
                    end_reason = "quit"
                    break
    except KeyboardInterrupt:
        end_reason = "interrupted"
    finally:
        stopped: list[int] = []
        # a second Ctrl-C (or a SIGTERM) while the capture stops and the recording is finalised is
        # only noted: raised here, it cut the recording's close short and the stats were never said
        with signals_noted(lambda: stopped.append(1)):
            stop.set()
            slot.close()
            if capture.started:
                capture.join(_JOIN_TIMEOUT_S)
            else:
                source.close()
            slot.discard()
            if in_hand is not None and len(latencies) == in_hand:
                slot.count_dropped()  # Ctrl-C while it was in the model: taken, never processed
            recorded = recorder.close() if recorder is not None else 0
            record_dropped = recorder.dropped if recorder is not None else 0
            warnings = recorder.warnings if recorder is not None else []
        if stopped:
            end_reason = "interrupted"
    capture.raise_error()
    if recorder is not None:
        recorder.raise_error()
    end = time.monotonic()
    return LiveStats(
        captured=slot.captured, processed=len(latencies), dropped=slot.dropped,
        fps=_sustained_fps(output_times, start), seconds=round(end - start, 3),
        latency_ms={k: round(v, 2) for k, v in percentiles(latencies).items()},
        latency_p95_ms_by_minute=_p95_by_minute(latencies, output_times, start),
        infer_ms=round(1000.0 * infer.busy_s / infer.items, 2) if infer.items else 0.0,
        end_reason=end_reason, source=source.description,
        width=source.width, height=source.height, recorded=recorded, record_dropped=record_dropped,
        reconnects=capture.reconnects,
        record_path=str(options.record_path) if options.record_path is not None else None,
        model=getattr(engine, "model_name", None), device=_device(engine), warnings=warnings,
    )


class _CaptureThread(threading.Thread):
    """Pulls frames from the source into the slot; closes the slot and the source when it ends.

    A SourceError while running (camera unplugged, stream gone) ends the run cleanly and is
    reported as ``end_reason``, unless ``reopen`` opens the source again within ``reconnect_s``:
    then frames flow on, scaled to the first source's size; any other exception is kept and
    re-raised by the caller.
    """

    def __init__(self, source: LiveSource, slot: LatestFrameSlot, stop: threading.Event, *,
                 reopen: Callable[[], LiveSource] | None = None, reconnect_s: float = 0.0,
                 reopened: Callable[[LiveSource, int], None] | None = None) -> None:
        super().__init__(name="videodeblur-capture", daemon=True)  # daemon: a read hung in a driver cannot block exit
        self._source, self._slot, self._stop_event = source, slot, stop
        self._reopen, self._reconnect_s = reopen, reconnect_s
        self._reopened = reopened  # told of each new opening (and its run number) before its first frame
        self._size = (source.width, source.height)
        self.end_reason = "source ended"
        self.started = False
        self.reconnects = 0
        self._error: BaseException | None = None

    def start(self) -> None:
        self.started = True
        super().start()

    def run(self) -> None:
        try:
            while True:
                try:
                    self._pump()
                    if self._stop_event.is_set() or not (self._source.live and self._reopen is not None):
                        return  # a file or lavfi graph that ended, or the run stopping
                    lost = f"{self._source.description} ended"  # a camera or stream should not end
                except SourceError as err:
                    lost = str(err)
                if not self._reconnected():
                    again = f"; not back within {self._reconnect_s:g} s" if self._reopen is not None else ""
                    self.end_reason = f"source lost: {lost}{again}"
                    return
        except BaseException as err:  # carried to the caller's thread
            self._error = err
        finally:
            self._slot.close()
            self._source.close()

    def _pump(self) -> None:
        """Frames from the current source into the slot until it ends (or the run stops)."""
        wait = not self._source.drops_allowed
        for frame in self._source.frames(self._stop_event):
            if (frame.image.shape[1], frame.image.shape[0]) != self._size:  # a reopened source at another size
                frame = dataclasses.replace(frame, image=cv2.resize(frame.image, self._size, interpolation=cv2.INTER_AREA))
            if self.reconnects:
                frame = dataclasses.replace(frame, run=self.reconnects)
            if not self._slot.put(frame, wait=wait):
                return
            time.sleep(0)  # hand the GIL to the waiting loop now, not after the 5 ms switch interval

    def _reconnected(self) -> bool:
        """Open the source again, once a second, until ``reconnect_s`` have passed or the run stops."""
        if self._reopen is None:
            return False
        deadline = time.monotonic() + self._reconnect_s
        while time.monotonic() < deadline and not self._stop_event.wait(min(1.0, self._reconnect_s)):
            try:
                source = self._reopen()
            except SourceError:
                continue
            self._source.close()
            self._source = source
            self.reconnects += 1
            if self._reopened is not None:
                self._reopened(source, self.reconnects)
            return True
        return False

    def raise_error(self) -> None:
        if self._error is not None:
            raise self._error


class _Recorder:
    """Encodes processed frames on its own thread, each at its pts from :class:`_RecordClock`.

    A file keeps every processed frame: when the encoder falls behind, the live loop waits for it.
    A stream (a URL) must not hold the live picture back when the network does: a frame that finds
    the queue full is left out of the stream and counted in ``dropped``, as a broadcaster drops.
    Sound comes from a file source (``audio_from``: its path, opened again, and its first frame's time) or from a live source's ``audio_feed``, whose clock is tied to the recording's at
    the first frame written (and again at the first frame after each reconnect, :meth:`follow`).
    """

    def __init__(self, path: Path | str, width: int, height: int, fps: float | None, *,
                 source_path: Path | None = None, audio_from: tuple[Path, float] | None = None,
                 audio_feed: PacketFeed | None = None) -> None:
        from videodeblur.video import FrameWriter

        # a live recording cannot be run again: a file survives kill -9 (fragmented); a stream's URL
        # (rtmp://, srt://, udp://) is sent on as it is encoded
        # a file source brings its sound: the track from its first frame on, in step.
        # The writer's window moves source times back by its start, so pts count from the file's
        # first frame time here (a file need not start at 0: MPEG-TS rarely does)
        sound_only = {"subtitles": False, "data": False, "attachments": False}
        audio = ({"copy_from": audio_from[0], "window": (audio_from[1], None), **sound_only} if audio_from is not None
                 else {"copy_from": audio_feed, **sound_only} if audio_feed is not None else {})
        self._feeds: dict[int, PacketFeed | None] = {0: audio_feed}  # by run: the source's openings
        self._opening = 0  # the run (opening of the source) its sound now comes from
        self._aligned = audio_feed is None  # a live source's clock not yet tied to the recording's
        self._clock = _RecordClock(0 if audio_from is None else round(audio_from[1] / RECORD_TIME_BASE))
        self._writer = FrameWriter(path, width=width, height=height, time_base=RECORD_TIME_BASE,
                                   fps=Fraction(fps or 30).limit_denominator(1001), input_path=source_path,
                                   fragmented=True, **audio)
        self._queue: queue.Queue[tuple[np.ndarray, int, float | None, int] | None] = queue.Queue(maxsize=_RECORD_QUEUE)
        self._stream = is_url(path)
        self.dropped = 0
        self.cut_off = False  # a stream's writer left blocked at close (see close)
        self._written = 0
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="videodeblur-record", daemon=True)
        self._thread.start()

    def write(self, image: np.ndarray, capture_time: float, *, stream_s: float | None = None, run: int = 0) -> None:
        """Queue a processed frame, timed by ``stream_s`` (its time on the source's clock; None: it has
        none, and ``capture_time`` serves) and ``run`` (which opening of the source), which also put
        the source's sound in step."""
        self.raise_error()
        pts = self._clock.pts(capture_time, stream_s, run)
        item = (image, pts, stream_s, run)
        if not self._stream:
            self._queue.put(item)  # blocks when the encoder falls behind: every processed frame is kept
            return
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1

    @property
    def warnings(self) -> list[str]:
        """The source's tracks the recording left out or re-encoded, one sentence each."""
        cut = [f"the recording was cut off: the receiver took nothing for {_STREAM_CLOSE_GRACE_S:g} s"
               ] if self.cut_off else []
        return [*(f"left out {skipped}" for skipped in self._writer.skipped), *self._writer.converted, *cut]

    def follow(self, run: int, source: LiveSource) -> None:
        """The source was opened again (``run``): its sound, if a recording of it was begun, comes from
        the new opening from that run's first frame on. Called from the capture thread."""
        if self._feeds[0] is not None:
            self._feeds[run] = source.take_audio()

    def close(self) -> int:
        """Flush and finalise the file; returns the number of frames written. A stream whose receiver
        stops taking data is left to its (daemon) writer after a grace without progress, and said in
        :attr:`warnings`: a network write can block for ever, and the run must still end."""
        if not self._thread.is_alive():
            return self._written
        if not self._stream:
            self._queue.put(None)
            self._thread.join()
            return self._written
        ended, written, since = False, self._written, time.monotonic()
        while self._thread.is_alive():
            if not ended:
                with contextlib.suppress(queue.Full):
                    self._queue.put_nowait(None)
                    ended = True
            self._thread.join(_POLL_S)
            if self._written != written:
                written, since = self._written, time.monotonic()
            elif time.monotonic() - since > _STREAM_CLOSE_GRACE_S:
                self.cut_off = True
                break
        return self._written

    def raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        try:
            while (item := self._queue.get()) is not None:
                if self._error is None:
                    image, pts, stream_s, run = item
                    self._keep_sound_in_step(pts, stream_s, run)
                    self._writer.write(image, pts=pts)
                    self._written += 1
        except BaseException as err:
            self._error = err
            while self._queue.get() is not None:  # drain so the producer never blocks
                pass
        finally:
            try:
                self._writer.close(complete=False)  # a file source's sound only as far as the frames went
            except BaseException as err:  # finishing the file failed (a full disk): the run reports it,
                self._error = self._error or err  # not the thread, as a raw traceback


    def _keep_sound_in_step(self, pts: int, stream_s: float | None, run: int) -> None:
        """Tie a live source's clock to the recording's at its first frame written, and at the first
        frame from each new opening of it (whose clock starts anew)."""
        if run != self._opening:
            self._opening = run
            self._writer.follow_copied(self._feeds.get(run))
            self._aligned = self._feeds.get(run) is None
        if not self._aligned and stream_s is not None:
            self._writer.align_copied(stream_s - float(pts * RECORD_TIME_BASE))
            self._aligned = True


class _RecordClock:
    """A recorded frame's pts (``RECORD_TIME_BASE`` units): its time on the source's own clock where
    it has one (``stream_s``), else its capture time (a webcam), counted from the first frame's, at
    ``first_pts``. Why the source's clock: its sound is timed by it, and the ffmpeg tool, recording a
    stream, keeps its timestamps for every track, moved back together by the input's start
    (fftools/ffmpeg_demux.c). Capture times put an HTTP stream's sound 0.5 s late, plus the time the
    model took to load: FFmpeg reads ahead while it opens a stream, the stream goes on while the
    model loads, and all that came in was decoded in a burst at the start, tens of frames within
    milliseconds, while the sound kept its own time. A file read in step with the model, not
    captured live, keeps its timing the same way (capture times played 30 frames in 0.39 s).

    Each opening of the source (``run``) starts its clock anew: its first frame comes after the last
    one written by the time between their captures (the wait for the reconnect)."""

    def __init__(self, first_pts: int = 0) -> None:
        self._first_pts = first_pts
        self._run: int | None = None  # the opening whose clock is counted
        self._start: tuple[int, float] = (first_pts, 0.0)  # its first frame's pts and time on its clock
        self._last: tuple[int, float] | None = None  # the last frame's pts and capture time

    def pts(self, capture_time: float, stream_s: float | None, run: int) -> int:
        """The pts of a frame captured at ``capture_time`` (monotonic seconds), strictly after the last."""
        at = stream_s if stream_s is not None else capture_time
        if run != self._run:
            self._run = run
            start = (self._first_pts if self._last is None
                     else self._last[0] + round((capture_time - self._last[1]) / RECORD_TIME_BASE))
            self._start = (start, at)
        pts = self._start[0] + round((at - self._start[1]) / RECORD_TIME_BASE)
        if self._last is not None:
            pts = max(pts, self._last[0] + 1)
        self._last = (pts, capture_time)
        return pts


def _device(engine: FrameProcessor) -> str | None:
    """The engine's own description ("cpu (2 threads)", "cuda:0 (NVIDIA ...)"), as ``video`` reports it."""
    describe = getattr(engine, "describe", None)
    if describe is not None:
        return str(describe())
    return str(engine.device) if hasattr(engine, "device") else None  # a stand-in engine


def _p95_by_minute(latencies_ms: list[float], output_times: list[float], start: float) -> list[float]:
    minutes: dict[int, list[float]] = {}
    for latency, t in zip(latencies_ms, output_times):
        minutes.setdefault(int((t - start) // 60), []).append(latency)
    return [round(percentiles(minutes[m])["p95"], 2) for m in sorted(minutes)]


def _sustained_fps(output_times: list[float], start: float) -> float:
    """Frames per second between the first and the last output; a single output over the time from
    the run's start to it (as ``video`` rates a run too short for a window), not 0."""
    if not output_times:
        return 0.0
    if len(output_times) == 1:
        seconds = output_times[0] - start
        return round(1 / seconds, 2) if seconds > 0 else 0.0
    return round((len(output_times) - 1) / (output_times[-1] - output_times[0]), 2)


def _recent_fps(output_times: list[float], window_s: float = 1.0) -> float:
    now = output_times[-1]
    recent = [t for t in output_times[-240:] if now - t <= window_s]
    if len(recent) < 2:
        return 0.0
    return (len(recent) - 1) / (recent[-1] - recent[0])
