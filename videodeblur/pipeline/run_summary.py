"""A finished run's statistics: its counters frozen, with a warning for each thing the user should know.

Apart from the thread machinery because it only reads what the run left behind (the reader's
losses, the writer's choices, the engine's tiling) and says it in words; the threads never wait on it.
"""
from __future__ import annotations

from typing import Iterator

from videodeblur.pipeline.engine import Engine
from videodeblur.pipeline.options import RunOptions
from videodeblur.pipeline.stats import RunStats, StatsRecorder
from videodeblur.video.info import VideoInfo
from videodeblur.video.locations import is_stdin, redacted
from videodeblur.video.output_format import output_subsampling
from videodeblur.video.reader import FrameReader
from videodeblur.video.writer import FrameWriter

__all__ = ["summarise_run", "four_four_four_warning"]


def summarise_run(stats: StatsRecorder, reader: FrameReader, writer: FrameWriter, engine: Engine,
                  options: RunOptions, *, cut_short: bool, output_stalled: bool,
                  tiled_before: dict[tuple[int, ...], int]) -> RunStats:
    """Freeze ``stats`` once the run's threads are done, after warning of what was lost, left out,
    converted or cut off. ``cut_short``: a stop, ``max_frames`` or a signal ended the read early (its
    unread frames are no loss); ``tiled_before``: the engine's tiling counts before the run (it outlives it)."""
    lost = 0 if cut_short else reader.frames_lost
    for warning in _warnings(reader, writer, engine, options, lost=lost, cut_short=cut_short,
                             output_stalled=output_stalled, tiled_before=tiled_before):
        stats.warn(warning)
    info = reader.info
    return stats.freeze(
        device=engine.describe(), model=engine.model_name,
        precision=engine.precision, batch_size=engine.batch_size, encoder=writer.encoder_name,
        input=redacted(info.path), output=writer.shown, size=[writer.width, writer.height],
        frames_decoded=reader.frames_decoded, frames_written=writer.frames_written, frames_lost=lost,
        audio_packets=writer.audio_packets, subtitle_packets=writer.subtitle_packets,
        data_packets=writer.data_packets, resumed_frames=writer.resumed_frames,
        window_s=list(reader.window) if reader.window else None,
        colour_on_device=reader.layout == "i420",
        queue_size=options.queue_size, stopped_early=cut_short)


def _warnings(reader: FrameReader, writer: FrameWriter, engine: Engine, options: RunOptions, *, lost: int,
              cut_short: bool, output_stalled: bool, tiled_before: dict[tuple[int, ...], int]) -> Iterator[str]:
    """The run's warnings, in the order the summary prints them."""
    info = reader.info
    if lost and not cut_short and reader.loss_may_be_a_pause:
        # a whole file with a pause looks like one that lost frames: both are said (counted as lost)
        rate = f" at {float(info.fps):g} fps" if info.fps else ""
        yield (f"{reader.name} holds {reader.frames_decoded} frames where its duration{rate} would hold about "
               f"{reader.frames_decoded + lost}: about {lost} were lost (a damaged or cut file), or its frame "
               "rate varies (the video pauses)")
    elif lost or reader.decode_errors:
        estimated = not cut_short and reader.frames_lost_estimated
        expected = (f" of about {reader.frames_decoded + lost}" if estimated
                    else f" of {info.frames}" if info.frames else "")
        detail = f"; first error: {reader.first_error}" if reader.first_error else ""
        yield (f"{reader.name} is truncated or corrupt: {reader.frames_decoded}{expected} frames decoded, "
               f"{'about ' if estimated else ''}{lost} lost, {reader.decode_errors} decode error(s){detail}")
    if output_stalled:
        where = "standard output" if is_stdin(writer.path) else writer.shown
        yield (f"{where} took nothing more after the stop (the program reading it stopped reading): "
               "the video there is cut off unfinished")
    for skipped in writer.skipped:
        yield f"left out {skipped}"
    yield from writer.converted
    if info.other_videos:
        yield (f"left out {len(info.other_videos)} other video stream(s) ({'; '.join(info.other_videos)}): "
               f"the video deblurred is stream {reader.stream_index}, the one FFmpeg picks")
    if note := _tiling_note(engine, tiled_before):
        yield note
    if reader.frames_resized:
        yield (f"{reader.name} changes size mid-stream (first to {reader.first_resize}): "
               f"{reader.frames_resized} frame(s) scaled to {info.width}x{info.height}")
    if info.interlaced:
        # where it turns interlaced after a progressive start: the frames before it are clean
        since = f" from frame {reader.first_interlaced}" if reader.first_interlaced is not None else ""
        yield (f"{reader.name} is interlaced{since}: each frame's two fields were deblurred as one picture and "
               "written progressive, so moving edges keep their combing; --deinterlace gives a clean "
               "result")
    if info.has_alpha:
        yield (f"{reader.name} has an alpha channel ({info.pix_fmt}): transparency is not kept, the output "
               "is opaque")
    if info.bit_depth > 8 and not writer.deep:
        yield f"{reader.name} is {info.bit_depth}-bit ({info.pix_fmt}); {_eight_bit_why(info, writer, options)}"
    if info.hdr is not None and not writer.hdr_kept:
        yield (f"{reader.name} carries HDR10 mastering display and light levels; only 10-bit HEVC output "
               "(.mp4, .mkv, .mov, without --eight-bit) keeps them, this output has none")
    if note := _four_four_four_note(info, writer):
        yield note
    if writer.quality_control is None and not writer.lossless:
        yield (f"encoder {writer.encoder_name} has no constant-quality setting: crf {options.crf} "
               "was not applied (the encoder's default quality)")
    ran = getattr(engine, "lanes", 1)  # EngineLanes: the copies side by side; an Engine alone: one
    if options.engines is not None and ran < options.engines:
        device = getattr(getattr(engine, "device", None), "type", "cpu")
        threads = engine.engine.threads if ran > 1 else getattr(engine, "threads", None) or 1
        why = (f"{threads} thread{'s' if threads != 1 else ''} to share, one for each engine at least" if device == "cpu"
               else f"on {device} one engine overlaps its batches with its own streams")
        yield f"--engines {options.engines}: {ran} ran ({why})"
    if writer.speed_control is None and not writer.lossless and options.preset != RunOptions.preset:
        yield (f"encoder {writer.encoder_name} has no speed presets: --preset {options.preset} was not applied "
               "(the encoder's own speed)")


def _eight_bit_why(info: VideoInfo, writer: FrameWriter, options: RunOptions) -> str:
    """Why a deeper source's output is 8-bit: asked for (--eight-bit), the colours converted on the device
    (8-bit planes), or an encoder that takes no deeper frames (said as the surprise it is)."""
    if options.deep is False:
        return "written as 8-bit, as --eight-bit asks"
    if options.deep is None and options.colour_on_device:
        return "the output is 8-bit: the colours are converted on the device, at 8 bits (colour_on_device)"
    return f"the output is 8-bit: {writer.encoder_name} takes no {info.bit_depth}-bit frames"


def _tiling_note(engine: Engine, tiled_before: dict[tuple[int, ...], int]) -> str | None:
    """Why this run's frames were run in tiles for memory (the note of the shape tiled most: full
    batches, not a short last one), or None where they ran whole."""
    grown = {shape: count - tiled_before.get(shape, 0)
             for shape, count in dict(getattr(engine, "auto_tiled", {})).items()}
    if not grown or max(grown.values()) <= 0:
        return None
    return engine.auto_tile_note_for(max(grown, key=grown.__getitem__))


_PLAYER_CODECS = ("libx264", "libx265", "h264_nvenc", "hevc_nvenc")


def _four_four_four_note(info: VideoInfo, writer: FrameWriter) -> str | None:
    """Why an H.264/HEVC output is 4:4:4 (:func:`four_four_four_warning`): the source is RGB or 4:4:4,
    or odd-sized, which x264, x265 and NVENC cannot write as 4:2:0."""
    if output_subsampling(info.pix_fmt, info.chroma_subsampling) in ((2, 2), (4, 1), (2, 1)):
        why = f"{info.width}x{info.height} is odd-sized, which {writer.encoder_name} cannot write as 4:2:0"
    else:
        why = f"the source is {info.pix_fmt}"
    return four_four_four_warning(writer, why)


def four_four_four_warning(writer: FrameWriter, why: str) -> str | None:
    """That an H.264/HEVC output is 4:4:4 (``why``), which browsers, QuickTime and phones do not play
    (as the ffmpeg tool warns for RGB input); None for any other output."""
    if not writer.pix_fmt.startswith("yuv444") or writer.encoder_name not in _PLAYER_CODECS:
        return None
    return (f"{writer.path} is {writer.pix_fmt} ({why}): browsers, QuickTime and phones do not play 4:4:4 "
            f"{'H.264' if '264' in writer.encoder_name else 'HEVC'}; VLC, mpv and editors do")
