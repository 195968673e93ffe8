"""Deblur a video file as a stream: decode thread → bounded queue → engine → bounded queue → encode thread.

The engine runs on the caller's thread, the one that receives signals: while a run lasts, Ctrl-C,
SIGTERM and SIGHUP are noted there and stop every stage at its next check, never raised mid-step;
decoding and encoding run on their own threads, and since PyAV releases the GIL inside FFmpeg the three overlap.
Queues are bounded (memory stays flat, a slow stage pushes back), end of stream is a sentinel, and
the first exception in any stage stops the others and is re-raised in the caller. Whatever ends the
run (end of file, Ctrl-C, ``RunOptions.stop``, an error), the encode thread writes every frame
already deblurred and finalises the container, so the output always plays; only a writer blocked on
a pipe or stream that takes nothing more after a stop is left behind (:class:`RunInterrupted` says so).
"""
from __future__ import annotations

import collections
import dataclasses
import math
import numbers
import os
import queue
import select
import stat
import threading
import time
from pathlib import Path
from typing import Any, Callable, Deque

import torch

from videodeblur.deep import add_change
from videodeblur.errors import ConfigError, DecodeError, EncodeError
from videodeblur.pipeline.engine import Engine, EngineResult
from videodeblur.pipeline.plan import check_part
from videodeblur.pipeline.resume import finished_output, frames_in, kept_frame_check, nothing_left, set_aside
from videodeblur.pipeline.side_by_side import side_by_side
from videodeblur.pipeline.stats import RunStats, StatsRecorder
from videodeblur.signals import signals_noted
from videodeblur.video.feed import PacketFeed
from videodeblur.video.info import VideoInfo
from videodeblur.video.locations import is_named_pipe, is_stdin, is_url
from videodeblur.video.reader import DecodedFrame, FrameReader
from videodeblur.video.outputs import check_output_path
from videodeblur.video.writer import FrameWriter

__all__ = ["RunOptions", "RunInterrupted", "deblur_file", "run_pipeline"]

ProgressCallback = Callable[[int, "int | None"], None]
_END = object()
_POLL_S = 0.05
# how long a stopped run waits for its reader to notice: one blocked on a pipe or stream that sends
# nothing more is left waiting (a daemon thread), not waited for until the sender sends again
_READER_GRACE_S = 2.0
# how long a stopped run waits for a writer that makes no progress on an output that does not drain
# (``-o - | sleep 40``): it is left blocked (a daemon thread), so Ctrl-C and SIGTERM end the run. A
# regular file is always waited for: a write to one finishes, and its container must be finalised.
_WRITER_GRACE_S = 3.0


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How a file is streamed through the engine.

    ``encoder``: ``auto`` (hardware if it opens, else libx264) or an FFmpeg encoder name; ``crf`` is the
    quality (lower is better) for every encoder with a constant-quality knob, ``preset`` x264/x265's
    speed. ``queue_size``: frames each bounded queue holds. ``progress(done,
    total_or_None)`` is called from the encode thread after each frame. ``warmup_frames`` (rounded up
    to whole batches) are left out of the sustained fps and latency percentiles.
    ``colour_on_device``: move YUV 4:2:0 planes to the engine and convert colour there (None: on CUDA when the video is 4:2:0 with even size).
    ``decode_threads`` / ``encode_threads``: FFmpeg threads; 0 is automatic: one each when the
    engine runs on the CPU (its cores belong to the model; measured on 2 cores, FFmpeg's own choice
    oversubscribed them and cost ~20 % fps), FFmpeg's choice (frame threads) when it runs on a GPU.
    ``audio``: copy the audio
    stream. ``stop``: set it from another thread to end the run early (the output is finalised and
    the stats say ``stopped_early``; one set before any frame was written leaves no file and returns
    stats of 0 frames). ``max_frames``: stop after this many frames. ``fragmented``: write
    so that even a killed process leaves a playable file: an MP4/MOV as a fragment a second (no
    B-frames), Matroska as a cluster a second, every container flushed to disk as it is written.
    ``start_s`` / ``duration_s``: deblur only that part of the file (seconds from its first frame;
    duration None: to the end), written as a file of its own that starts at 0, audio with it.
    ``deinterlace``: run interlaced frames through FFmpeg's bwdif first (one progressive frame each,
    same count and times), so the network sees pictures, not two fields' combing.
    ``resume``: an existing output is an interrupted run's: its frames are kept as they are (remuxed)
    and the run goes on after them (the frames before are decoded, not deblurred again).
    ``deep``: a source with more than 8 bits per sample (10-bit video) is written at 10 bits, the
    network's 8-bit change added to the source's samples (None: yes, where the encoder takes
    10-bit; it needs the colour conversion on the CPU, so it wins over ``colour_on_device=None``).
    ``side_by_side``: write the source and the deblurred picture next to each other (twice as wide,
    the source on the left), to compare them frame by frame.
    ``pipe_format``: the container written to standard output (output ``-``): ``mkv``, ``mp4``
    (fragmented), ``mov``, ``nut``, ``ts`` or ``webm``. An input ``-`` is read from standard input.
    """

    encoder: str = "auto"
    crf: int = 18
    preset: str = "veryfast"
    queue_size: int = 8
    progress: ProgressCallback | None = dataclasses.field(default=None, compare=False)
    warmup_frames: int = 8
    colour_on_device: bool | None = None
    decode_threads: int = 0
    encode_threads: int = 0
    audio: bool = True
    stop: threading.Event | None = dataclasses.field(default=None, compare=False)
    max_frames: int | None = None
    fragmented: bool = False
    deep: bool | None = None
    resume: bool = False
    start_s: float = 0.0
    duration_s: float | None = None
    deinterlace: bool = False
    pipe_format: str = "mkv"
    side_by_side: bool = False

    def __post_init__(self) -> None:
        if self.queue_size < 1:
            raise ConfigError(f"queue_size must be >= 1, got {self.queue_size}")
        if not isinstance(self.encoder, str):
            raise ConfigError(f"encoder must be a name such as 'auto' or 'libx264', got {self.encoder!r}")
        if isinstance(self.crf, bool) or not isinstance(self.crf, numbers.Real):  # "18" failed untyped below
            raise ConfigError(f"crf must be a number in [0, 51], got {self.crf!r}")
        if not 0 <= self.crf <= 51:
            raise ConfigError(f"crf must be in [0, 51], got {self.crf}")
        if self.warmup_frames < 0:
            raise ConfigError(f"warmup_frames must be >= 0, got {self.warmup_frames}")
        if self.decode_threads < 0 or self.encode_threads < 0:
            raise ConfigError("decode_threads and encode_threads must be >= 0 (0: automatic)")
        if self.max_frames is not None and self.max_frames < 1:
            raise ConfigError(f"max_frames must be >= 1, got {self.max_frames}")
        check_part(self.start_s, self.duration_s, self.resume)

    @property
    def trimmed(self) -> bool:
        return bool(self.start_s) or self.duration_s is not None


def deblur_file(input_path: str | Path, output_path: str | Path, engine: Engine,
                options: RunOptions | None = None) -> RunStats:
    """Deblur ``input_path`` into ``output_path`` (same frames, timestamps, rotation, colour tags and
    audio) and return the run's statistics. Raises typed errors for bad input or output; on Ctrl-C
    raises :class:`RunInterrupted` (a KeyboardInterrupt carrying the stats) after finalising the output."""
    options = options or RunOptions()
    decode_threads, encode_threads = _ffmpeg_threads(engine, options)
    deinterlace = options.deinterlace
    reader = FrameReader(input_path, layout="rgb", threads=decode_threads, deinterlace=deinterlace)
    try:
        deep = (reader.info.bit_depth > 8 and options.deep is not False
                and not (options.deep is None and options.colour_on_device))
        if deep:
            reader.set_layout("rgb", deep=True)
        elif not options.side_by_side and choose_layout(reader.info, engine.device,
                                                        options.colour_on_device) == "i420":
            reader.set_layout("i420")
        if options.resume and (is_stdin(input_path) or is_stdin(output_path)):
            raise ConfigError("--resume needs the input and the output as files: a pipe cannot be read again up to "
                              "where the interrupted run stopped")
        window = _trim(reader, options) if options.trimmed else None
        made_by = _made_by(engine, options)
        if options.resume:  # first: the input itself would count as a finished output
            check_output_path(output_path, input_path=input_path)
        if options.resume and (done := finished_output(Path(output_path), reader.info, made_by,
                                                                 side_by_side=options.side_by_side)):
            reader.close()
            return nothing_left(reader.info, Path(output_path), engine, options.queue_size, done)
        partial = set_aside(Path(output_path), reader.info) if options.resume else None
        try:
            writer = FrameWriter.like(output_path, reader.info, audio=options.audio, encoder=options.encoder,
                                      feed=_one_pass_feed(reader, input_path, options),
                                      crf=options.crf, preset=options.preset, threads=encode_threads,
                                      layout=reader.layout, fragmented=options.fragmented, deep=deep, window=window,
                                      made_by=made_by, pipe_format=options.pipe_format,
                                      side_by_side=options.side_by_side)
            if partial is not None:
                try:
                    frames, last_s = writer.resume_from(partial, name=output_path, made_by=made_by,
                                                        first_s=reader.first_s)
                except BaseException:
                    writer.close(complete=False)
                    raise
                reader.skip(frames, last_s=last_s, looks_like=kept_frame_check(
                    partial, last_s, reader.info, side_by_side=options.side_by_side))
        except BaseException:
            if partial is not None:  # the interrupted run's output goes back where it was
                partial.replace(output_path)
            raise
    except BaseException:
        reader.close()
        raise
    stopped: list[int] = []  # a stop noted while the old output was checked, after a finished run
    try:
        stats = run_pipeline(reader, writer, engine, options)
    except KeyboardInterrupt as stop:
        if not isinstance(stop, RunInterrupted):  # before the pipeline could finalise: a file with only
            writer.close(complete=False)  # its header would not open (none is left with no frame in it)
        raise
    except EncodeError as err:  # a full disk, a file size limit, a write error: is what it left any use?
        if is_stdin(output_path) or is_url(output_path):
            raise
        raise EncodeError(f"{err}; {_left_behind(Path(output_path), options.fragmented)}") from err
    finally:
        if partial is not None:
            # counting a long output's frames takes seconds: a stop then (or just before) left the old
            # output beside the new, and the next --resume took the old one's frames over the new ones
            try:
                with signals_noted(lambda: stopped.append(1)):
                    _drop_partial(partial, Path(output_path), writer)
            except KeyboardInterrupt:  # one that came as the noting began
                stopped.append(1)
                _drop_partial(partial, Path(output_path), writer)
    if stopped:  # the output is finalised all the same: the stop is reported with what it holds
        raise RunInterrupted(stats)
    if not writer.frames_written and not stats.extra.get("stopped_early"):
        # the writer removed its empty file: say so, not "wrote 0 frames" (a stop asked for is no failure)
        where = (f"from {options.start_s:g} s on (it is {reader.info.duration_s:.2f} s long)"
                 if options.start_s and reader.info.duration_s else "in the part asked for" if options.trimmed else "")
        raise DecodeError(f"no frame of {reader.name} {where or 'could be decoded'}: nothing was written")
    return stats


def _drop_partial(partial: Path, output: Path, writer: FrameWriter) -> None:
    """Remove a resumed run's old output once the new one holds every frame it held."""
    if frames_in(output) >= writer.resumed_frames:
        partial.unlink(missing_ok=True)


def _left_behind(path: Path, fragmented: bool) -> str:
    """What a run whose writer failed left at ``path``, said after its error: a file that plays (how
    many frames), one that will not (an MP4 whose index could not be written), or none."""
    if not path.exists():
        return f"no file was left at {path}"
    if kept := frames_in(path):
        return f"the file left at {path} plays with its first {kept} frames (--resume goes on from there)"
    hint = "" if fragmented else "; --fragmented or .mkv output survives such failures"
    return f"the file left at {path} is incomplete and will not play{hint}"


def _made_by(engine: Engine, options: RunOptions) -> str:
    """What the output's video track says made it: the model, how it was run, and its weights, so
    that --resume never mixes the frames of two models (a fine-tune can carry the shipped name)."""
    model = getattr(engine, "model", None)
    weights = f", weights {model.fingerprint}" if model is not None and hasattr(model, "fingerprint") else ""
    return (f"videodeblur {engine.model_name}{' deinterlaced' if options.deinterlace else ''}"
            f"{' side-by-side' if options.side_by_side else ''}{weights}")


def _one_pass_feed(reader: FrameReader, input_path: str | Path, options: RunOptions) -> PacketFeed | None:
    """Where the tracks beside the video come from, when not from a second opening of the input: a
    pipe cannot be opened twice, and a URL is then downloaded once. A resumed URL is opened twice
    after all, because its copied frames are written before the reader has read their sound, and
    the sound must go in with them (a muxer that got it an hour late would write it badly). A named
    pipe (FIFO) is a pipe too: opening it again would wait for ever for a writer long gone."""
    if is_stdin(input_path) or is_named_pipe(input_path) or (is_url(input_path) and not options.resume):
        return reader.feed()
    return None


def _trim(reader: FrameReader, options: RunOptions) -> tuple[float | None, float | None]:
    """Point ``reader`` at the part of the file asked for; a start past the end is an error."""
    length = reader.info.duration_s
    if length is not None and options.start_s >= length:
        raise ConfigError(f"--start {options.start_s:g} s is past the end of {reader.name} ({length:.2f} s long)")
    return reader.trim(options.start_s, options.duration_s)


def run_pipeline(reader: FrameReader, writer: FrameWriter, engine: Engine,
                 options: RunOptions | None = None) -> RunStats:
    """Stream an opened reader through ``engine`` into an opened writer (both are closed here).

    The building block under :func:`deblur_file`, for callers that open their own reader/writer
    (e.g. the benchmark on a generated clip). ``reader.layout`` and ``writer.layout`` must match.
    """
    options = options or RunOptions()
    if reader.layout != writer.layout:
        raise ValueError(f"reader layout {reader.layout!r} differs from writer layout {writer.layout!r}")
    return _Pipeline(reader, writer, engine, options).run()


def _ffmpeg_threads(engine: Engine, options: RunOptions) -> tuple[int, int]:
    """(decode, encode) FFmpeg thread counts; see RunOptions for the automatic choice."""
    auto = 1 if engine.device.type == "cpu" else 0
    return options.decode_threads or auto, options.encode_threads or auto


def choose_layout(info: VideoInfo, device: torch.device, colour_on_device: bool | None = None) -> str:
    """``"i420"`` (YUV planes to the device, colour converted there) on CUDA when the video is 4:2:0
    with an even size, else ``"rgb"`` (swscale on the CPU). ``colour_on_device`` forces either way."""
    possible = info.chroma_subsampling == (2, 2) and info.width % 2 == 0 and info.height % 2 == 0
    wanted = device.type == "cuda" if colour_on_device is None else colour_on_device
    return "i420" if wanted and possible else "rgb"


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


class _Pipeline:
    def __init__(self, reader: FrameReader, writer: FrameWriter, engine: Engine, options: RunOptions) -> None:
        self.reader, self.writer, self.engine, self.options = reader, writer, engine, options
        # Whole batches: a frame that finishes in the last warm-up frame's batch would enter the
        # window at no cost and inflate the fps (bench --batch 3: 246 fps measured against 167 alone).
        warmup = math.ceil(options.warmup_frames / engine.batch_size) * engine.batch_size
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
        self._drains = _output_drains(writer.path)
        # the engine outlives the run: only a tiling during this run is this run's to report
        self._tiled_before = dict(getattr(engine, "auto_tiled", {}))  # engines in tests may be stand-ins

    # --- orchestration ------------------------------------------------------------------------
    def run(self) -> RunStats:
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
            self._finish(decode, encode)
            stats = self._freeze() if self.error is None else None
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
        busy_s = handle.gpu_ms / 1000.0 if handle.gpu_ms is not None else host_s
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
        """After Ctrl-C: what the engine already took still reaches the writer."""
        try:
            while self.in_flight:
                self._collect_oldest()
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
                    image = add_change(frame.deep, frame.image, image)
                if self.options.side_by_side:
                    image = side_by_side(frame.deep if deep else frame.image, image, info.rotation)
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
                    total = _expected_frames(total_frames, new, media_s, remaining_s)
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
    def _tiling_note(self) -> str | None:
        """Why this run's frames were run in tiles for memory (the note of the shape tiled most: full
        batches, not a short last one), or None where they ran whole."""
        grown = {shape: count - self._tiled_before.get(shape, 0)
                 for shape, count in dict(getattr(self.engine, "auto_tiled", {})).items()}
        if not grown or max(grown.values()) <= 0:
            return None
        return self.engine.auto_tile_note_for(max(grown, key=grown.__getitem__))

    def _freeze(self) -> RunStats:
        reader, writer, engine = self.reader, self.writer, self.engine
        info = reader.info
        lost = 0 if self.cut_short else reader.frames_lost
        if lost or reader.decode_errors:
            estimated = not self.cut_short and reader.frames_lost_estimated
            expected = (f" of about {reader.frames_decoded + lost}" if estimated
                        else f" of {info.frames}" if info.frames else "")
            detail = f"; first error: {reader.first_error}" if reader.first_error else ""
            self.stats.warn(f"{reader.name} is truncated or corrupt: {reader.frames_decoded}{expected} frames decoded, "
                            f"{'about ' if estimated else ''}{lost} lost, {reader.decode_errors} decode error(s){detail}")
        if self.output_stalled:
            where = "standard output" if is_stdin(writer.path) else writer.path
            self.stats.warn(f"{where} took nothing more after the stop (the program reading it stopped reading): "
                            "the video there is cut off unfinished")
        for skipped in writer.skipped:
            self.stats.warn(f"left out {skipped}")
        for converted in writer.converted:
            self.stats.warn(converted)
        if info.other_videos:
            self.stats.warn(f"left out {len(info.other_videos)} other video stream(s) ({'; '.join(info.other_videos)}): "
                            f"the video deblurred is stream {reader.stream_index}, the one FFmpeg picks")
        if note := self._tiling_note():
            self.stats.warn(note)
        if reader.frames_resized:
            self.stats.warn(f"{reader.name} changes size mid-stream (first to {reader.first_resize}): "
                            f"{reader.frames_resized} frame(s) scaled to {info.width}x{info.height}")
        if info.interlaced:
            self.stats.warn(f"{reader.name} is interlaced: each frame's two fields were deblurred as one picture and "
                            "written progressive, so moving edges keep their combing; --deinterlace gives a clean "
                            "result")
        if info.has_alpha:
            self.stats.warn(f"{reader.name} has an alpha channel ({info.pix_fmt}): transparency is not kept, the output "
                            "is opaque")
        if info.bit_depth > 8 and not writer.deep:
            self.stats.warn(f"{reader.name} is {info.bit_depth}-bit ({info.pix_fmt}); the output is 8-bit")
        if info.hdr is not None and not writer.hdr_kept:
            self.stats.warn(f"{reader.name} carries HDR10 mastering display and light levels; only 10-bit HEVC output "
                            "(.mp4, .mkv, .mov, without --eight-bit) keeps them, this output has none")
        if note := _four_four_four_note(info, writer):
            self.stats.warn(note)
        if writer.quality_control is None and not writer.lossless:
            self.stats.warn(f"encoder {writer.encoder_name} has no constant-quality setting: crf {self.options.crf} "
                            "was not applied (the encoder's default quality)")
        return self.stats.freeze(
            device=engine.describe(), model=engine.model_name,
            precision=engine.precision, batch_size=engine.batch_size, encoder=writer.encoder_name,
            input=str(info.path), output=str(writer.path), size=[writer.width, writer.height],
            frames_decoded=reader.frames_decoded, frames_written=writer.frames_written, frames_lost=lost,
            audio_packets=writer.audio_packets, subtitle_packets=writer.subtitle_packets,
            data_packets=writer.data_packets, resumed_frames=writer.resumed_frames,
            window_s=list(reader.window) if reader.window else None,
            colour_on_device=reader.layout == "i420",
            queue_size=self.options.queue_size, stopped_early=self.cut_short)


def _output_drains(path: Path | str) -> "bool | Callable[[], bool] | None":
    """Whether writes to an output always finish: True for a regular file or a device (/dev/null),
    standard output redirected to one included; for standard output that is a pipe or socket, a
    check of whether it has room now (its reader reads); None where that cannot be told (a named
    pipe, a stream's URL): then only the writer's progress counts."""
    if is_url(path):
        return None
    try:
        mode = os.fstat(1).st_mode if is_stdin(path) else os.stat(path).st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode) or stat.S_ISCHR(mode):
        return True
    if not is_stdin(path):
        return None

    def has_room() -> bool:
        try:
            return bool(select.select([], [1], [], 0)[1])
        except (OSError, ValueError):
            return False
    return has_room


def _window_length(reader: FrameReader) -> float | None:
    """Seconds of video the run will read: the window's, else the stream's."""
    info, window = reader.info, reader.window
    if window is None:
        return info.duration_s
    start, end = window
    if end is not None:
        return end - start
    return None if info.duration_s is None else max(0.0, info.duration_s - (start - reader.first_s))


def _expected_frames(header: int | None, done: int, media_s: float, duration_s: float | None) -> int | None:
    """The progress line's total: the container's frame count, unless the timestamps so far say it is
    off by more than a tenth (an AVI counts its empty dropped-frame slots: OpenCV's ``tree.avi`` holds
    68 frames in 444); then the frames done so far, scaled from the ``media_s`` seconds they cover to
    the stream's ``duration_s``. Ten frames are needed before the timestamps are trusted."""
    if not duration_s or media_s <= 0 or done < 10:
        return header
    by_time = max(done, round(done * duration_s / media_s))
    if header is None or abs(by_time - header) > header / 10:
        return by_time
    return header


_PLAYER_CODECS = ("libx264", "libx265", "h264_nvenc", "hevc_nvenc")


def _four_four_four_note(info: VideoInfo, writer: FrameWriter) -> str | None:
    """Why an H.264/HEVC output is 4:4:4, which browsers, QuickTime and phones do not play (as the
    ffmpeg tool warns for RGB input): the source is RGB or 4:4:4, or odd-sized, which 4:2:0 cannot hold."""
    if not writer.pix_fmt.startswith("yuv444") or writer.encoder_name not in _PLAYER_CODECS:
        return None
    if info.chroma_subsampling in ((2, 2), (4, 1), (2, 1)):
        why = f"{info.width}x{info.height} is odd-sized, which 4:2:0 cannot hold"
    else:
        why = f"the source is {info.pix_fmt}"
    return (f"{writer.path} is {writer.pix_fmt} ({why}): browsers, QuickTime and phones do not play 4:4:4 "
            f"{'H.264' if '264' in writer.encoder_name else 'HEVC'}; VLC, mpv and editors do")
