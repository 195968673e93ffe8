"""Going on from an interrupted run's output (``video --resume``): where the old file goes while the
new one is written, and how to tell that there is nothing left to do.

Why apart from the runner: these are file moves and counts around a run, not the run itself; the
frames are copied by :meth:`videodeblur.video.FrameWriter.resume_from` and skipped by
:meth:`videodeblur.video.FrameReader.skip`.
"""
from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

import av
import cv2
import numpy as np

from videodeblur.errors import OutputError
from videodeblur.pipeline.side_by_side import side_by_side as side_by_side_picture
from videodeblur.pipeline.stats import RunStats, StatsRecorder
from videodeblur.video.info import VideoInfo
from videodeblur.video.inputs import ffmpeg_name
from videodeblur.video.metadata import made_by_mark, made_elsewhere, made_otherwise
from videodeblur.video.outputs import ONE_RATE_MUXERS, check_output_path
from videodeblur.video.streams import pick_video_stream

if TYPE_CHECKING:
    from videodeblur.pipeline.engine import Engine

__all__ = ["FinishedOutput", "set_aside", "drop_stale_partial", "finished_output", "nothing_left", "found_finished", "frames_in",
           "input_frame_times", "kept_frame_check", "last_picture", "same_picture", "shows_source"]

_LIKENESS_SIDE = 32  # pixels across the thumbnails compared: deblurring and coding leave them alike
_LIKENESS_DB = 18.0  # measured: one video through crf 51 >= 23 dB; another scene of the same clip <= 14 dB


def set_aside(output: Path, info: VideoInfo) -> Path | None:
    """For a resumed run: move an existing output to ``<name>.partial<suffix>`` beside it (the new
    output is written where it was) and return that path; None when there is nothing to resume: no
    output, an empty one, or one that holds no video frame (a header: a run stopped before its
    first), which the run then writes anew from the first frame (:func:`held_no_frame` says so).
    A ``.partial`` file already there is left by a resume that was itself killed while copying: it,
    not the output, holds the frames."""
    check_output_path(output, input_path=info.path)  # never set the input itself aside
    partial = _partial(output)
    if partial.exists():
        output.unlink(missing_ok=True)
        return partial
    if output.exists() and output.stat().st_size > 0 and not _holds_no_frame(output):
        output.replace(partial)
        return partial
    return None


def drop_stale_partial(output: Path) -> None:
    """Remove the ``.partial`` file beside ``output`` (:func:`set_aside`) where ``output`` holds more
    frames than it: a run since (without --resume, or a resume killed after it went on past the
    copy) made the output, and the old frames are stale. Kept, they were taken over the output's: a
    whole output was deleted for them, or put back as them when they were refused."""
    partial = _partial(output)
    if partial.exists() and output.exists() and frames_in(output) > frames_in(partial):
        partial.unlink()


@dataclasses.dataclass(frozen=True)
class FinishedOutput:
    """What a finished output holds: its frames, its picture size as stored ([W, H]: a side-by-side
    output is twice the source's) and what made it (:func:`made_by_mark`)."""

    frames: int
    size: list[int]
    made_by: str


def finished_output(output: Path, info: VideoInfo, made_by: str | None = None, *,
                    side_by_side: bool = False) -> FinishedOutput | None:
    """A finished output: one that holds as many frames as the input's header counts (exactly), so a
    resumed batch does not decode each finished video again to find that out; else None.
    OutputError when it is finished but not marked as videodeblur's (:func:`made_by_mark`: a copy
    of the input, say), or marked as made otherwise than ``made_by`` (another model,
    deinterlaced or side by side), or when its last frame does not show the input's (``side_by_side``:
    it holds the source twice as wide): resuming it would keep frames this run would not have made."""
    if not (info.frames_exact and info.frames) or not output.exists() or _partial(output).exists():
        return None
    held = _read_output(output)
    if held is None or held.frames != info.frames:
        return None  # more would be another video's: the full check says so
    if made_elsewhere(held.made_by):  # another copy of the input, say: not ours to keep
        raise OutputError(f"cannot resume {output}: it was not made by videodeblur (its video track says "
                          f"{held.made_by!r}): run without --resume to write it anew, or choose another output")
    if made_otherwise(held.made_by, made_by):
        raise OutputError(f"cannot resume {output}: it is finished, made by {held.made_by}; this run's would be "
                          f"made by {made_by}: run without --resume to make it again")
    kept, source = last_picture(output), last_picture(info.path)
    if kept is not None and source is not None and not shows_source(kept, source, info, side_by_side=side_by_side):
        raise OutputError(f"cannot resume {output}: it holds as many frames as {info.path}, but its last one does "
                          "not show the input's last: it was made from another video; run without --resume")
    tolerance = 0.5 / float(info.fps) if info.fps else 0.02  # as a resume checks the frame it goes on from
    if (index := first_time_apart(frame_times(info.path), frame_times(output), tolerance)) is not None:
        raise OutputError(f"cannot resume {output}: it holds as many frames as {info.path}, but its frame {index} "
                          "is shown at another time: it was made from another video; run without --resume")
    return held


def frame_times(path: Path | str) -> list[float] | None:
    """The video frames' presentation times in seconds from the first, in order, read from the
    packets (no decoding); None when they cannot all be read, or where the container holds frames at
    one rate (AVI, YUV4MPEG: the writer puts frames in its slots, up to a frame from their times),
    and the check is then left out."""
    times = _packet_times(path, slots=False)
    return [t - times[0] for t in times] if times else None


def input_frame_times(path: str | Path) -> Callable[[int], list[float]]:
    """``times(n)``: the first ``n`` frame times (seconds, in order) of the video at ``path``, read from
    its packets as :func:`frame_times` reads them; empty where they cannot be read."""
    return lambda count: _packet_times(path, first=count) or []


def _packet_times(path: Path | str, *, first: int | None = None, slots: bool = True) -> list[float] | None:
    """Presentation times in seconds, in order, of the video's packets (no decoding): all of them, or
    those of the first ``first`` frames shown (B-frames come out of order: 16 packets more are read);
    None when they cannot be read (a packet without pts too), or, without ``slots``, where the
    container holds frames at one rate."""
    try:
        with av.open(ffmpeg_name(path), metadata_errors="replace") as container:
            video = pick_video_stream(container)
            if video is None or video.time_base is None or (not slots and container.format.name in ONE_RATE_MUXERS):
                return None
            packets = (p for p in container.demux(video) if p.size)
            if first is not None:
                packets = itertools.islice(packets, first + 16)
            times = sorted(float(p.pts * video.time_base) for p in packets)
    except (av.FFmpegError, OSError, TypeError):  # TypeError: a packet without pts
        return None
    return times if first is None else times[:first]


def first_time_apart(expected: list[float] | None, held: list[float] | None, tolerance: float) -> int | None:
    """The first frame whose time in ``held`` is more than ``tolerance`` seconds from its time in
    ``expected`` (both counted from their first frame); None when they agree, or either is unknown
    or they count other numbers of frames (frame counts are checked apart)."""
    if expected is None or held is None or len(expected) != len(held):
        return None
    return next((i for i, (a, b) in enumerate(zip(expected, held)) if abs(a - b) > tolerance), None)


def nothing_left(info: VideoInfo, output: Path, engine: "Engine", queue_size: int, held: FinishedOutput) -> RunStats:
    """The stats of a resumed run that found its output finished: no frame processed, all kept."""
    stats = StatsRecorder(("decode", "infer", "encode"), queue_capacity=queue_size)
    stats.warn(f"{output} already holds all {held.frames} frames of {info.path}: nothing to resume")
    return stats.freeze(device=engine.describe(), model=engine.model_name, precision=engine.precision,
                        batch_size=engine.batch_size, encoder="", input=str(info.path), output=str(output),
                        size=held.size, frames_decoded=0, frames_written=held.frames, frames_lost=0,
                        audio_packets=0, subtitle_packets=0, data_packets=0, resumed_frames=held.frames,
                        colour_on_device=False, queue_size=queue_size, stopped_early=False)


def found_finished(result: Mapping[str, Any]) -> bool:
    """Whether ``result`` (a ``RunStats.to_dict()``) is :func:`nothing_left`'s: a resume that found its
    output finished (no frame made, none encoded), whose one warning and summary line say so."""
    return not result["frames"] and not result.get("encoder") and bool(result.get("resumed_frames"))


def frames_in(path: Path) -> int:
    """Video frames in a finished file: the container's count, or its packets counted."""
    held = _read_output(path)
    return held.frames if held is not None else 0


def _holds_no_frame(path: Path) -> bool:
    """Whether ``path`` holds no video frame to go on from: a readable video whose video track holds
    none (the resume refused it as "h264 64x48 None", a pixel format it had no frame to tell), a
    Matroska or WebM header that ends before its first frame (FFmpeg cannot open it: "End of file"),
    or an MP4 whose empty video track FFmpeg leaves out (no stream left, or only the sound). Read up
    to its first video packet only (a Matroska file's frames are otherwise counted by reading them all)."""
    try:
        with av.open(ffmpeg_name(path), metadata_errors="replace") as container:
            video = pick_video_stream(container)
            if video is None:
                return not any(stream.type == "video" for stream in container.streams)
            if video.codec_context is None:
                return False  # not this case: the resume says what it is
            return not any(packet.size for packet in container.demux(video))
    except av.error.EOFError:  # (not a file cut in the middle of its frames: that opens)
        return True
    except (av.FFmpegError, OSError):
        return False


def _read_output(path: Path) -> FinishedOutput | None:
    """A finished file's video, read once; None when it has none or cannot be read."""
    try:
        with av.open(ffmpeg_name(path), metadata_errors="replace") as container:
            video = pick_video_stream(container)
            if video is None or video.codec_context is None:  # none, or one whose codec FFmpeg cannot tell
                return None
            size = [video.codec_context.width, video.codec_context.height]
            made_by = made_by_mark(video)
            # (by size, not dts: Matroska stores no dts for H.264 with B-frames, keyframes included)
            frames = video.frames or sum(1 for p in container.demux(video) if p.size)
            return FinishedOutput(frames, size, made_by)
    except (av.FFmpegError, OSError):
        return None


def last_picture(path: Path | str, last_s: float | None = None) -> np.ndarray | None:
    """The luma of ``path``'s frame at ``last_s`` seconds (its last kept frame; None: its last frame),
    H×W uint8, decoded from the keyframe before it; None when it cannot be decoded (the check is then
    left out)."""
    try:
        with av.open(ffmpeg_name(path), metadata_errors="replace") as container:
            video = pick_video_stream(container)
            if video is None or video.time_base is None:
                return None
            if last_s is None:
                last_s = float("inf")
                if container.duration is not None:  # near the end: the last GOP, not the whole file
                    end_s = (container.start_time or 0) / av.time_base + container.duration / av.time_base
                    container.seek(max(0, round((end_s - 2.0) / video.time_base)), stream=video, backward=True)
            else:
                container.seek(max(0, round((last_s - 1.0) / video.time_base)), stream=video, backward=True)
            best = None
            for frame in container.decode(video):
                if frame.pts is not None and float(frame.pts * frame.time_base) > last_s + 0.05:
                    break  # past it (a muxer moves times by tens of ms at most)
                best = frame
            return best.to_ndarray(format="gray") if best is not None else None
    except (av.FFmpegError, OSError):
        return None


def kept_frame_check(partial: Path, last_s: float | None, info: VideoInfo, *,
                     side_by_side: bool) -> Callable[[np.ndarray], bool] | None:
    """Whether a source frame (its luma) is the picture an interrupted output ends on (for
    :meth:`videodeblur.video.FrameReader.skip`): frame count and times alone let another take of the
    same length through (GoPro chapters are). None when that frame cannot be decoded. ``last_s``
    is in the source's seconds (:meth:`videodeblur.video.FrameWriter.resume_from`)."""
    kept = last_picture(partial, _on_partial_clock(partial, last_s, info))
    if kept is None:
        return None
    return lambda source: shows_source(kept, source, info, side_by_side=side_by_side)


def _on_partial_clock(partial: Path, last_s: float | None, info: VideoInfo) -> float | None:
    """``last_s``, a time in the source's seconds, on ``partial``'s own clock: its first frame is the
    source's first, moved back to start at 0 (a source read from -0.5 s, or from 10 s) and then by
    its muxer (Matroska by AAC's priming, MPEG-TS by its decode delay). As it is when either start
    is not known."""
    if last_s is None or info.start_s is None:
        return last_s
    try:
        with av.open(ffmpeg_name(partial), metadata_errors="replace") as container:
            video = pick_video_stream(container)
            if video is None or video.start_time is None or video.time_base is None:
                return last_s
            return last_s - float(info.start_s) + float(video.start_time * video.time_base)
    except (av.FFmpegError, OSError):
        return last_s


def shows_source(kept: np.ndarray, source: np.ndarray, info: VideoInfo, *, side_by_side: bool) -> bool:
    """Whether an output frame (its luma) shows the source frame: a side-by-side output holds it
    twice, as far as a thumbnail can tell."""
    if side_by_side:
        source = side_by_side_picture(source[..., None], source[..., None], info.rotation,
                                      info.mirror_matrix)[..., 0]
    return same_picture(source, kept)


def same_picture(source: np.ndarray, kept: np.ndarray) -> bool:
    """Whether a source frame's luma and a kept output frame's show the same picture: their
    thumbnails' PSNR. Deblurring changes detail, not a 32×32 thumbnail."""
    def thumbnail(gray: np.ndarray) -> np.ndarray:
        return cv2.resize(gray.astype(np.float32), (_LIKENESS_SIDE, _LIKENESS_SIDE), interpolation=cv2.INTER_AREA)

    mse = float(np.mean((thumbnail(source) - thumbnail(kept)) ** 2))
    return mse == 0 or 10 * np.log10(255.0 ** 2 / mse) >= _LIKENESS_DB


def _partial(output: Path) -> Path:
    """Where an output is set aside while a resumed run writes it anew: ``out.partial.mp4``."""
    return output.with_name(f"{output.stem}.partial{output.suffix}")
