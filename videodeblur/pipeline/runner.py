"""Deblur a video file: open and check the input and output, resume an interrupted run, then stream.

The public entry points of the file runner: :func:`deblur_file` (paths in, statistics out) and
:func:`run_pipeline` (an opened reader and writer), and :func:`choose_layout`. What happens around a
run lives here (the layout and threads chosen, a part trimmed, an interrupted output resumed and its
old copy dropped, what a failed writer left behind); the run itself, its threads and queues, is
:mod:`videodeblur.pipeline.threaded_run`.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from videodeblur.errors import ConfigError, DecodeError, EncodeError
from videodeblur.pipeline.engine import Engine
from videodeblur.pipeline.options import RunOptions
from videodeblur.pipeline.resume import (drop_stale_partial, finished_output, frames_in, input_frame_times,
                                         kept_frame_check, nothing_left, set_aside)
from videodeblur.pipeline.stats import RunStats
from videodeblur.pipeline.threaded_run import RunInterrupted, ThreadedRun
from videodeblur.signals import signals_noted
from videodeblur.video.feed import PacketFeed
from videodeblur.video.info import VideoInfo
from videodeblur.video.locations import is_named_pipe, is_stdin, is_url, pipe_refusing_resume
from videodeblur.video.reader import FrameReader
from videodeblur.video.outputs import check_output_path
from videodeblur.video.partial_output import resumable_packets
from videodeblur.video.writer import FrameWriter

__all__ = ["choose_layout", "deblur_file", "run_pipeline"]


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
        if options.resume and (refusal := pipe_refusing_resume(input_path, output_path)):
            raise ConfigError(refusal)
        window = _trim(reader, options) if options.trimmed else None
        made_by = _made_by(engine, options)
        if options.resume:  # first: the input itself would count as a finished output
            check_output_path(output_path, input_path=input_path)
            drop_stale_partial(Path(output_path))
        if options.resume and (done := finished_output(Path(output_path), reader.info, made_by,
                                                                 side_by_side=options.side_by_side)):
            reader.close()
            return nothing_left(reader.info, Path(output_path), engine, options.queue_size, done)
        there = options.resume and Path(output_path).exists()
        partial = set_aside(Path(output_path), reader.info) if options.resume else None
        anew = there and partial is None  # it held no frame: written from the first, said so below
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
                                                        first_s=reader.first_s,
                                                        source_times=None if is_url(input_path)
                                                        else input_frame_times(input_path))
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
    except Exception as err:
        if partial is not None and writer.frames_written == writer.resumed_frames:
            # a resume refused in the run (the input's frames are not the output's: another video), or
            # one that failed before it made a frame: the old output goes back as it was, not remuxed
            partial.replace(output_path)
            partial = None
        if not isinstance(err, EncodeError):
            raise
        # a full disk, a file size limit, a write error: is what it left any use?
        if is_stdin(output_path) or is_url(output_path) or is_named_pipe(output_path):  # nothing to read back
            raise
        raise EncodeError(f"{err}; {_left_behind(Path(output_path), options.fragmented, part=options.trimmed)}") from err
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
    if anew:  # else only the missing "kept" told that --resume found nothing to keep
        stats = dataclasses.replace(stats, warnings=(
            f"{output_path} held no frame to go on from (its run stopped before its first): "
            "written from the first frame", *stats.warnings))
    if not writer.frames_written and not stats.extra.get("stopped_early"):
        # the writer removed its empty file: say so, not "wrote 0 frames" (a stop asked for is no failure)
        start, length = options.start_s or 0.0, reader.info.duration_s
        if options.duration_s is not None and (not length or start < length):  # a part between two frames
            where = f"between {start:g} s and {start + options.duration_s:g} s (give a longer --duration)"
        elif options.start_s and length:
            where = f"from {start:g} s on (it is {length:.2f} s long)"
        else:
            where = "in the part asked for" if options.trimmed else ""
        raise DecodeError(f"no frame of {reader.name} {where or 'could be decoded'}: nothing was written")
    return stats


def _drop_partial(partial: Path, output: Path, writer: FrameWriter) -> None:
    """Remove a resumed run's old output once the new one holds every frame it held."""
    if frames_in(output) >= writer.resumed_frames:
        partial.unlink(missing_ok=True)


def _left_behind(path: Path, fragmented: bool, *, part: bool = False) -> str:
    """What a run whose writer failed left at ``path``, said after its error: a file that plays (how
    many frames), one that will not (an MP4 whose index could not be written), or none."""
    if not path.exists():
        return f"no file was left at {path}"
    held = frames_in(path)
    kept = (resumable_packets(path) or 0) if held else 0  # a file cut mid-group of frames: its whole prefix
    again = "" if part else " (--resume goes on from there)"  # a part (--start) cannot be resumed
    if kept == held and kept:
        return f"the file left at {path} plays with its first {kept} frames{again}"
    if held:  # the last frames written were cut off in the middle of a group: some before them are missing
        resumed = "" if part else (f" (--resume keeps its first {kept} and goes on from there)" if kept
                                   else " (--resume makes them again)")
        return f"the file left at {path} plays {held} frames, cut off in the middle of a group of frames{resumed}"
    hint = "" if fragmented else "; --fragmented or .mkv output survives such failures"
    return f"the file left at {path} is incomplete and will not play{hint}"


def _made_by(engine: Engine, options: RunOptions) -> str:
    """What the output's video track says made it: the model, how it was run, and its weights, so
    that --resume never mixes the frames of two models (a fine-tune can carry the shipped name); and
    where a part of the input starts (--start), so that --resume never goes on with a part as if it
    were the whole (its frames, moved to 0, were taken for the input's first ones)."""
    model = getattr(engine, "model", None)
    weights = f", weights {model.fingerprint}" if model is not None and hasattr(model, "fingerprint") else ""
    return (f"videodeblur {engine.model_name}{' deinterlaced' if options.deinterlace else ''}"
            f"{' side-by-side' if options.side_by_side else ''}"
            f"{f' from {options.start_s:g} s' if options.start_s else ''}{weights}")


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
        reader.close()
        writer.close(complete=False)  # no frame written: the writer removes its file
        raise ConfigError(f"reader layout {reader.layout!r} differs from writer layout {writer.layout!r}: "
                          "open both with the same layout (choose_layout)")
    return ThreadedRun(reader, writer, engine, options).run()


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
