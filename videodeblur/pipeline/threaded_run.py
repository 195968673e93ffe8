"""The threads of a file run: decode thread → bounded queue → engine → bounded queue → encode thread.

Apart from the runner's entry points (which open, check and resume files) because this is the one
place that owns threads, queues and signals. The engine loop runs on the caller's thread, the one
that receives signals (on a CPU the network itself runs on the lanes of
:mod:`~videodeblur.pipeline.engine_lanes`, this run's own, joined at its end): while a run lasts,
Ctrl-C, SIGTERM and SIGHUP are noted there and stop every stage at its next check, never raised
mid-step; decoding and encoding run on their own threads, and since PyAV releases the GIL inside
FFmpeg the stages overlap. Queues are bounded (memory stays flat, a slow stage pushes back), end of
stream is a sentinel, and the first exception in any stage stops the others and is re-raised in the
caller. Whatever ends the run (end of file, Ctrl-C, ``RunOptions.stop``, an error), the batches the
engine already took and the frames already deblurred are written and the container finalised, so the
output always plays; only a writer blocked on a pipe or stream that takes nothing more after a stop
is left behind (:class:`RunInterrupted` says so).
"""
from __future__ import annotations

import collections
import math
import queue
import threading
import time
from typing import Any, Callable, Deque

from videodeblur.deep import VIDEO_STEP, add_change
from videodeblur.pipeline.engine import Engine, EngineResult
from videodeblur.pipeline.engine_lanes import EngineLanes, lanes_for
from videodeblur.pipeline.options import RunOptions
from videodeblur.pipeline.output_drain import output_drains
from videodeblur.pipeline.run_summary import summarise_run
from videodeblur.pipeline.side_by_side import side_by_side
from videodeblur.pipeline.stats import RunStats, StatsRecorder
from videodeblur.signals import signals_noted
from videodeblur.video.outputs import ONE_RATE_MUXERS
from videodeblur.video.reader import DecodedFrame, FrameReader
from videodeblur.video.writer import FrameWriter

__all__ = ["RunInterrupted", "ThreadedRun"]

_END = object()
_POLL_S = 0.05
# how long a stopped run waits for its reader to notice: one blocked on a pipe or stream that sends
# nothing more is left waiting (a daemon thread), not waited for until the sender sends again
_READER_GRACE_S = 2.0
# how long a stopped run waits for a writer that makes no progress on an output that does not drain
# (``-o - | sleep 40``): it is left blocked (a daemon thread), so Ctrl-C and SIGTERM end the run. A
# regular file is always waited for: a write to one finishes, and its container must be finalised.
_WRITER_GRACE_S = 3.0


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C ended the run after the output was finalised; ``stats`` describes what was written.
    ``output_stalled``: it was not finalised, because the program reading the output pipe (or the
    server taking the stream) stopped taking data and the writer was left blocked."""

    def __init__(self, stats: RunStats, *, output_stalled: bool = False) -> None:
        super().__init__(f"interrupted after {stats.frames} frames")
        self.stats = stats
        self.output_stalled = output_stalled


class _Stopped(Exception):
    """Internal: a queue wait gave up because the run is being torn down."""


class ThreadedRun:
    """One run of an opened reader through the engine into an opened writer: :meth:`run` once."""

    def __init__(self, reader: FrameReader, writer: FrameWriter, engine: Engine, options: RunOptions) -> None:
        self.reader, self.writer, self.options = reader, writer, options
        # a CPU engine runs as two side by side (engine_lanes); they are this run's, closed at its end
        lanes = lanes_for(engine, options.engines)
        self.lanes = EngineLanes(engine, lanes) if lanes > 1 else None
        self.engine: Any = self.lanes or engine
        # Whole batches: a frame that finishes in the last warm-up frame's batch would enter the
        # window at no cost and inflate the fps (bench --batch 3: 246 fps measured against 167 alone).
        warmup = math.ceil(options.warmup_frames / self.engine.batch_size) * self.engine.batch_size
        self.stats = StatsRecorder(("decode", "infer", "encode"), queue_capacity=options.queue_size,
                                   warmup_frames=warmup)
        self.q_in: queue.Queue[Any] = queue.Queue(maxsize=options.queue_size)
        self.q_out: queue.Queue[Any] = queue.Queue(maxsize=options.queue_size)
        self.abort = threading.Event()  # set on any failure or interruption: producers stop
        self.inference_done = threading.Event()
        self.error: BaseException | None = None
        self.interrupted = False  # Ctrl-C: re-raised as KeyboardInterrupt after finalising
        self.cut_short = False  # options.stop or max_frames ended the read before the end of the file
        self.reached_end = False
        self.complete = False  # read to the end with no failure: the writer copies all the audio
        # Engine loop state: submitted batches not yet collected, and collected frames not yet queued.
        self.in_flight: Deque[tuple[EngineResult, list[DecodedFrame], float]] = collections.deque()
        self.ready: Deque[tuple[DecodedFrame, Any]] = collections.deque()
        self._error_lock = threading.Lock()
        self.output_stalled = False  # the writer was left blocked on an output that did not drain
        self._wrote_at = time.monotonic()  # the encode thread's last progress
        self._stuck_since: float | None = None  # since when, after a stop, the writer has made none
        self._drains = output_drains(writer.path)
        # the engine outlives the run: only a tiling during this run is this run's to report
        self._tiled_before = dict(getattr(self.engine, "auto_tiled", {}))  # engines in tests may be stand-ins

    # --- orchestration ------------------------------------------------------------------------
    def run(self) -> RunStats:
        """Stream every frame and finalise the output; return the stats, or raise the first stage's
        error, or :class:`RunInterrupted` after a stop by signal or Ctrl-C."""
        decode = threading.Thread(target=self._guard, args=(self._decode_loop,), name="videodeblur-decode", daemon=True)
        encode = threading.Thread(target=self._guard, args=(self._encode_loop,), name="videodeblur-encode", daemon=True)
        self.stats.throughput.restart()
        # Ctrl-C, SIGTERM and SIGHUP are only noted, for the whole run: the stages stop at their next
        # check. Raised into the engine loop, one between a frame's queueing and its removal from
        # ``ready`` wrote the frame twice (the run then failed at its end), one between a batch's
        # collection and its queueing lost the batch (a gap in the file), and a second one while the
        # output was finalised ended the process with the container unwritten.
        with signals_noted(self._note_interrupt):
            try:
                decode.start()
                encode.start()
                self._infer_loop(encode)
            except _Stopped:
                pass
            except KeyboardInterrupt:  # raised by the engine or a caller's code, not by a signal
                self.interrupted = True
            except BaseException as err:  # noqa: BLE001 - carried to the caller below
                self._fail(err)
            if self.interrupted:
                self.abort.set()
            self._salvage(encode)
            self.complete = (self.reached_end and not self.cut_short and self.error is None
                             and not self.interrupted)
            try:
                self._finish(decode, encode)
            finally:
                if self.lanes is not None:  # after a failure, waits for the batches the lanes are on
                    self.lanes.close()
            stats = self._summary() if self.error is None else None
        if self.error is not None:
            raise self.error
        assert stats is not None
        if self.interrupted:
            raise RunInterrupted(stats, output_stalled=self.output_stalled)
        return stats

    def _note_interrupt(self) -> None:
        self.interrupted = True
        self.abort.set()

    def _finish(self, decode: threading.Thread, encode: threading.Thread) -> None:
        """Send end-of-stream to the writer and wait for both threads (further Ctrl-C are only noted
        meanwhile, :func:`signals_noted`), so the container is always finalised."""
        if not self.complete:
            self.abort.set()
        if encode.is_alive():
            try:
                self._put(self.q_out, _END, give_up=lambda: self._writer_gone(encode))
            except _Stopped:
                pass
        self.inference_done.set()
        if encode.ident is None:  # the encode thread never ran: finalise here (close is idempotent)
            self.writer.close(complete=False)
        # the file first: it is finalised whatever the reader does; a writer blocked on a pipe that
        # takes nothing more is left to the process's end, as a reader blocked on one is below
        while encode.ident is not None and encode.is_alive() and not self._writer_gone(encode):
            encode.join(0.1)
        waited_since = time.monotonic()
        while decode.ident is not None and decode.is_alive():
            if self.abort.is_set() and time.monotonic() - waited_since > _READER_GRACE_S:
                # blocked in a read from a pipe or stream that sends nothing: closing the input
                # under it is not safe, so it is left to the process's end
                self.stats.warn(f"{self.reader.name} sent nothing more after the stop; its read was left waiting")
                return
            decode.join(0.1)
        self.reader.close()

    def _guard(self, loop: Callable[[], None]) -> None:
        try:
            loop()
        except _Stopped:
            pass
        except KeyboardInterrupt:  # a caller's progress callback cancelling: an interruption, with stats
            self._note_interrupt()
        except BaseException as err:  # noqa: BLE001 - carried to the caller
            self._fail(err)

    def _fail(self, err: BaseException) -> None:
        with self._error_lock:
            if self.error is None:
                self.error = err
        self.abort.set()

    # --- stages ---------------------------------------------------------------------------------
    def _decode_loop(self) -> None:
        clock = self.stats.stage("decode")
        frames = iter(self.reader)
        stop, limit = self.options.stop, self.options.max_frames
        count = 0
        while not self.abort.is_set():
            if (stop is not None and stop.is_set()) or (limit is not None and count >= limit):
                self.cut_short = True
                break
            start = time.perf_counter()
            frame = next(frames, None)
            if frame is None:
                break
            clock.add(time.perf_counter() - start)
            self.stats.queues["infer"].sample(self.q_in.qsize())
            self._put(self.q_in, frame, give_up=self.abort.is_set)
            count += 1
        else:
            return  # aborted: no end-of-stream, the engine loop stops on the abort flag
        self._put(self.q_in, _END, give_up=self.abort.is_set)

    def _infer_loop(self, encode: threading.Thread) -> None:
        engine, bs = self.engine, self.engine.batch_size
        layout, colour = self.reader.layout, self.reader.info.colour
        ended = False
        while not ended:
            batch: list[DecodedFrame] = []
            while len(batch) < bs:
                item = self._get(self.q_in)
                if item is _END:
                    ended = True
                    break
                batch.append(item)
            if batch:
                start = time.perf_counter()
                handle = engine.submit([f.image for f in batch], layout=layout, colour=colour)
                self.in_flight.append((handle, batch, time.perf_counter() - start))
            while self.in_flight and (ended or len(self.in_flight) > engine.max_in_flight):
                self._collect_oldest()
                self._hand_over(encode)
        self.reached_end = True

    def _collect_oldest(self) -> None:
        """Wait for the oldest in-flight batch, account its busy time, and line its frames up for the writer."""
        handle, batch, submit_s = self.in_flight[0]
        start = time.perf_counter()
        images = handle.result()
        host_s = submit_s + time.perf_counter() - start
        # On CUDA the host only enqueued work: the device time between the batch's events is its busy time.
        # Lanes work side by side: the stage's busy time is their mean, so its share stays within [0, 1]
        # and its ms per frame is what the lanes together take for one.
        lane_s = getattr(handle, "busy_s", None)  # a LaneResult's: only lanes give one
        if handle.gpu_ms is not None:
            busy_s = handle.gpu_ms / 1000.0
        elif lane_s is not None and self.lanes is not None:
            busy_s = lane_s / self.lanes.lanes
        else:
            busy_s = host_s
        self.stats.stage("infer").add(busy_s, len(batch))
        self.in_flight.popleft()
        self.ready.extend(zip(batch, images))

    def _hand_over(self, encode: threading.Thread) -> None:
        """Queue the deblurred frames for the writer, one at a time (a frame leaves ``ready`` only once queued)."""
        while self.ready:
            self.stats.queues["encode"].sample(self.q_out.qsize())
            self._put(self.q_out, self.ready[0], give_up=lambda: self._writer_gone(encode))
            self.ready.popleft()

    def _writer_gone(self, encode: threading.Thread) -> bool:
        """Whether to stop waiting for the encode thread: it has ended, or, once a stop was asked for
        (Ctrl-C, a signal, ``RunOptions.stop``) or a stage failed, it has made no progress for
        ``_WRITER_GRACE_S`` while its output did not drain (then ``output_stalled``)."""
        if not encode.is_alive() or self.output_stalled:
            return True
        stop = self.options.stop
        stopping = self.interrupted or self.error is not None or (stop is not None and stop.is_set())
        if not stopping or self._drains is True:
            self._stuck_since = None
            return False
        now = time.monotonic()
        if self._drains is not None and self._drains():  # room in the pipe: the reader reads
            self._stuck_since = None
            return False
        self._stuck_since = max(self._stuck_since or now, self._wrote_at)
        self.output_stalled = now - self._stuck_since > _WRITER_GRACE_S
        return self.output_stalled

    def _salvage(self, encode: threading.Thread) -> None:
        """After Ctrl-C or another stage's failure: what the engine already took still reaches the
        writer (in order, up to a batch that failed in the engine: its error is already the run's)."""
        try:
            while self.in_flight:
                self._collect_oldest()
        except BaseException:  # noqa: BLE001 - a batch that failed: the frames before it still go
            pass
        try:
            self._hand_over(encode)
        except _Stopped:
            pass

    def _encode_loop(self) -> None:
        clock, writer, progress = self.stats.stage("encode"), self.writer, self.options.progress
        info, limit = self.reader.info, self.options.max_frames
        interval_s = float(1 / info.fps) if info.fps else 0.0
        first_pts: int | None = None
        # the progress total counts this run's frames: a resumed run's earlier ones are left out
        before, until_s = writer.resumed_frames, writer.resumed_until_s or 0.0
        header_frames, length_s = self.reader.window_frames, _window_length(self.reader)
        total_frames = header_frames - before if header_frames else None
        estimated = not info.frames_exact or info.format_name in ONE_RATE_MUXERS  # a count the timestamps correct
        remaining_s = length_s - until_s if length_s else None
        try:
            while True:
                try:
                    item = self.q_out.get(timeout=_POLL_S)
                except queue.Empty:
                    if self.inference_done.is_set():
                        break  # safety net: the engine loop ended without a sentinel
                    continue
                if item is _END:
                    break
                frame, image = item
                start = time.perf_counter()
                deep = frame.deep is not None and writer.deep
                if deep:  # 10-bit out: the network's change onto the source
                    image = add_change(frame.deep, frame.image, image, step=VIDEO_STEP)
                if self.options.side_by_side:
                    image = side_by_side(frame.deep if deep else frame.image, image, info.rotation,
                                         info.mirror_matrix)
                writer.write(image, pts=frame.pts, duration=frame.duration)
                self._wrote_at = time.monotonic()
                done = time.perf_counter()
                clock.add(done - start)
                self.stats.latency.add_since(frame.decoded_at, done)
                self.stats.mark_done(at=done)
                if progress is not None:
                    first_pts = frame.pts if first_pts is None else first_pts
                    media_s = float((frame.pts - first_pts) * frame.time_base) + interval_s
                    new = writer.frames_written - before
                    total = _expected_frames(total_frames, new, media_s, remaining_s, estimated=estimated)
                    progress(new, total if limit is None or total is None else min(total, limit))
        except BaseException:
            try:
                writer.close(complete=False)
            except Exception:  # noqa: BLE001 - the first error is the one to report
                pass
            raise
        self._wrote_at = time.monotonic()  # the flush and the trailer get a grace of their own
        start = time.perf_counter()
        writer.close(complete=self.complete)
        clock.add(time.perf_counter() - start, items=0)  # the flush encodes what the encoder held back
        self.stats.throughput.finished_at()  # and its frames are done only now

    # --- queue helpers --------------------------------------------------------------------------
    def _put(self, q: queue.Queue[Any], item: Any, *, give_up: Callable[[], bool]) -> None:
        while True:
            try:
                q.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                if give_up():
                    raise _Stopped from None

    def _get(self, q: queue.Queue[Any]) -> Any:
        """The next item; _Stopped once the run is torn down (a stop noted, a stage failed), even
        while items are waiting: a stop does not wait for a full queue to be deblurred."""
        while not self.abort.is_set():
            try:
                return q.get(timeout=_POLL_S)
            except queue.Empty:
                pass
        raise _Stopped

    # --- result ---------------------------------------------------------------------------------
    def _summary(self) -> RunStats:
        """The run's statistics and warnings, once its threads are done."""
        # a run stopped by a signal before the input's end read only part of it: the rest is not lost
        stopped = self.cut_short or (self.interrupted and not self.reached_end)
        return summarise_run(self.stats, self.reader, self.writer, self.engine, self.options,
                             cut_short=stopped, output_stalled=self.output_stalled,
                             tiled_before=self._tiled_before)


def _window_length(reader: FrameReader) -> float | None:
    """Seconds of video the run will read: the window's, else the stream's."""
    info, window = reader.info, reader.window
    if window is None:
        return info.duration_s
    start, end = window
    if end is not None:
        return end - start
    return None if info.duration_s is None else max(0.0, info.duration_s - (start - reader.first_s))


def _expected_frames(header: int | None, done: int, media_s: float, duration_s: float | None, *,
                     estimated: bool = False) -> int | None:
    """The progress line's total: the container's frame count, or where it has none, the frames done
    so far scaled from the ``media_s`` seconds they cover to the stream's ``duration_s``. A count that
    is not of frames (``estimated``: an AVI counts its empty dropped-frame slots, and OpenCV's
    ``tree.avi`` holds 68 frames in 444; a Matroska file's is its duration times its nominal rate)
    is replaced by that estimate where they differ by more than a tenth. Ten frames are needed before
    the timestamps are trusted. An exact count is kept: a pause in the video (a gap in its timestamps)
    made a 1500-frame MP4's total 15346, with an ETA ten times too long."""
    if not duration_s or media_s <= 0 or done < 10 or (header is not None and not estimated):
        return header
    by_time = max(done, round(done * duration_s / media_s))
    if header is None or abs(by_time - header) > header / 10:
        return by_time
    return header

