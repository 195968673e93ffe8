"""What a video file holds (:class:`VideoInfo`), described from its container, its video stream and
its first decoded frame: the facts a writer is made to match (size, timing, colour, tracks, tags)
and the reader checks its reading against (frame count, duration)."""
from __future__ import annotations

import dataclasses
import struct
from fractions import Fraction
from typing import Any

import av

from videodeblur.video.colour import ColourTags, frame_range, has_no_matrix
from videodeblur.video.hdr import HdrMetadata, hdr_metadata
from videodeblur.video.streams import cover_streams, is_chapter_track, is_cover

__all__ = ["VideoInfo", "describe", "file_end_s", "nominal_step"]

# formats whose demuxers give the header's duration as the end time, counted from 0, not from start_time:
# a Matroska segment's clock starts at 0 whatever its first timestamp, and NUT gives its last timestamp
_DURATION_FROM_ZERO = {"matroska", "webm", "nut"}


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """What a file holds, read from its container and its first decoded frame.

    ``fps`` is the average frame rate (nominal for variable-rate video; timing comes from each
    frame's ``pts``). ``frames`` is the container's count or an estimate from the duration (None when
    unknown). ``rotation`` is the display rotation in degrees counter-clockwise. ``bit_depth`` is of
    the decoded pixel format (10-bit input is read as 8-bit frames).
    """

    path: str
    format_name: str
    codec: str
    width: int
    height: int
    pix_fmt: str
    bit_depth: int
    chroma_subsampling: tuple[int, int]
    time_base: Fraction
    fps: Fraction | None
    frames: int | None
    frames_exact: bool
    duration_s: float | None
    rotation: int
    colour: ColourTags
    has_audio: bool
    audio_codec: str | None
    has_subtitles: bool = False
    has_data: bool = False  # data tracks: GoPro telemetry, timecode
    has_attachments: bool = False  # attached files (a Matroska file's fonts) or a cover picture
    tags: dict[str, str] = dataclasses.field(default_factory=dict)  # the file's: title, creation_time, location...
    video_tags: dict[str, str] = dataclasses.field(default_factory=dict)  # the video stream's: language, title
    chapters: tuple[dict[str, Any], ...] = ()  # as PyAV's ``chapters()`` gives them: id, start, end, time_base, metadata
    # the file's other moving-picture streams ("stream 0: mjpeg 32x32"): one video is deblurred, these are left out
    other_videos: tuple[str, ...] = ()
    hdr: HdrMetadata | None = None  # HDR10's mastering display and light levels, from the first frame
    # pixel shape, width / height of one pixel, where it is not square (anamorphic DV, HDV, DVD); None: square
    sample_aspect_ratio: Fraction | None = None
    # the first frame holds two fields (1080i broadcast, DV), or a later one read does (FrameReader says so
    # once it has read it): combing the network cannot undo
    interlaced: bool = False
    has_alpha: bool = False  # transparency (ProRes 4444, PNG or VP9 with alpha): the output is opaque
    # the first frame's time in seconds, exact: where the video starts (an MPEG-TS rarely at 0); None: unknown
    start_s: Fraction | None = None
    # a display matrix that mirrors the picture (a selfie camera's, or a flip in an editor), its nine
    # 16.16/2.30 fixed-point numbers as stored; None: no mirror (``rotation`` says the turn, if any)
    mirror_matrix: tuple[int, ...] | None = None


def describe(container: av.container.InputContainer, stream: av.video.stream.VideoStream, first: av.VideoFrame,
             *, path: str, file_end_s: float | None) -> VideoInfo:
    """What the file holds, from its container, its video ``stream`` and that stream's ``first`` decoded
    frame. ``file_end_s``: where the file ends (:func:`file_end_s`), for a stream that does not say."""
    s = stream
    fmt = first.format
    depth = max((c.bits for c in fmt.components), default=8)
    colour = frame_colour(first)
    fps = _nominal_rate(s)
    duration_s = None
    if s.duration is not None and s.time_base is not None:
        duration_s = float(s.duration * s.time_base)
    elif file_end_s is not None:
        # from the video's own start: a stream that starts late (or after the audio) spans less
        # than the file, and its frame count is estimated from this
        start_s = (float(s.start_time * s.time_base) if s.start_time is not None and s.time_base is not None
                   else (container.start_time or 0) / av.time_base)
        duration_s = file_end_s - start_s if file_end_s > start_s else None
    frames_exact = bool(s.frames)
    frames = int(s.frames) if s.frames else (round(duration_s * float(fps)) if duration_s and fps else None)
    audio = container.streams.audio
    subsampling = _subsampling(fmt, first.width, first.height)
    return VideoInfo(
        path=path, format_name=container.format.name, codec=s.codec_context.name,
        width=first.width, height=first.height, pix_fmt=fmt.name, bit_depth=depth,
        chroma_subsampling=subsampling, time_base=s.time_base or Fraction(1, 90000),
        fps=Fraction(fps) if fps else None, frames=frames, frames_exact=frames_exact, duration_s=duration_s,
        rotation=int(first.rotation or 0), mirror_matrix=mirror_matrix(first), colour=colour, has_audio=bool(audio),
        audio_codec=audio[0].codec_context.name if audio and audio[0].codec_context is not None else None,
        has_subtitles=any(not is_chapter_track(container, t) for t in container.streams.subtitles),
        has_data=any(not is_chapter_track(container, t) for t in container.streams.data),
        has_attachments=bool(container.streams.attachments or cover_streams(container)),
        tags=dict(container.metadata), video_tags=track_tags(s),
        chapters=tuple(container.chapters()), hdr=hdr_metadata(first), sample_aspect_ratio=pixel_shape(s),
        interlaced=bool(first.interlaced_frame),
        has_alpha=has_alpha(fmt, s, first),
        start_s=None if first.pts is None else first.pts * Fraction(s.time_base or Fraction(1, 90000)),
        other_videos=tuple(f"stream {v.index}: {v.codec_context.name} {v.codec_context.width}x{v.codec_context.height}"
                           for v in container.streams.video if v.index != s.index and not is_cover(v)))


def file_end_s(container: av.container.InputContainer) -> float | None:
    """Where the file's streams end, in seconds of their timestamps (None when not known). FFmpeg's
    ``duration`` runs from ``start_time``, except in the formats of ``_DURATION_FROM_ZERO``."""
    if container.duration is None:
        return None
    from_zero = not _DURATION_FROM_ZERO.isdisjoint(container.format.name.split(","))
    return ((0 if from_zero else container.start_time or 0) + container.duration) / av.time_base


def nominal_step(info: VideoInfo) -> int:
    """One nominal frame duration in ``time_base`` units (at least 1)."""
    if info.fps:
        return max(1, round(1 / (info.fps * info.time_base)))
    return 1


def _nominal_rate(stream: av.video.stream.VideoStream) -> Fraction | None:
    """The average frame rate (right for variable-rate video too), unless it is far above FFmpeg's
    guess: a remuxed MKV can carry 1/time-base as its default frame duration (an "average" of 12800
    fps for a 25 fps clip), which would make the frame count estimate and the output's rate absurd."""
    average, guessed = stream.average_rate, stream.guessed_rate
    if average and guessed and average > 8 * guessed:
        return Fraction(guessed)
    return average or guessed or stream.base_rate


def frame_colour(frame: av.VideoFrame) -> ColourTags:
    """A decoded frame's colour tags (a ``yuvj`` format is full range whatever the frame says)."""
    return ColourTags(colorspace=int(frame.colorspace), color_range=frame_range(frame),
                      color_primaries=int(frame.color_primaries), color_trc=int(frame.color_trc))


def track_tags(stream: av.stream.Stream) -> dict[str, str]:
    """A track's tags, its title under ``title`` wherever it was read from: an MP4 or MOV track's
    title reads back as ``name`` (the muxer writes ``title`` there), so an MP4's video track title
    was lost on the way to any output, as the copied audio tracks' titles are not."""
    tags = dict(stream.metadata)
    if "title" not in tags and "name" in tags:
        tags["title"] = tags.pop("name")
    return tags


def has_alpha(fmt: av.VideoFormat, stream: av.video.stream.VideoStream, first: av.VideoFrame | None = None) -> bool:
    """Whether the video carries transparency: in its decoded pixel format, or beside it, as a WebM's
    VP9 or VP8 with alpha does (the alpha is coded as a second picture that FFmpeg's own decoders
    skip, so the frames decode as plain yuv420p and only the track's ``alpha_mode`` tells it). A GIF
    decodes to BGRA whether or not it has a transparent colour: it has alpha only where ``first``
    shows a transparent pixel (every GIF was said to lose its transparency)."""
    if not fmt.has_palette and len(fmt.components) in (2, 4):
        if stream.codec_context.name == "gif" and first is not None and fmt.name in _GIF_FORMATS:
            return bool((first.to_ndarray()[..., _GIF_FORMATS[fmt.name]] < 255).any())
        return True
    return str(stream.metadata.get("alpha_mode", stream.metadata.get("ALPHA_MODE", ""))).strip() == "1"


_GIF_FORMATS = {"bgra": 3, "rgba": 3, "argb": 0, "abgr": 0}  # where a GIF decoder's frame keeps its alpha


def pixel_shape(stream: av.video.stream.VideoStream) -> Fraction | None:
    """The stream's sample aspect ratio (the container's, else the codec's) when pixels are not square."""
    for sar in (stream.sample_aspect_ratio, stream.codec_context.sample_aspect_ratio):
        if sar and sar.numerator > 0 and sar.denominator > 0 and sar != 1:
            return Fraction(sar)
    return None


def _subsampling(fmt: av.VideoFormat, width: int, height: int) -> tuple[int, int]:
    """Chroma subsampling factors (x, y): (2, 2) for 4:2:0, (2, 1) for 4:2:2, (1, 1) for 4:4:4/RGB."""
    if has_no_matrix(fmt):
        return (1, 1)
    comps = fmt.components
    cw, ch = comps[1].width, comps[1].height
    return (max(1, round(width / cw)) if cw else 1, max(1, round(height / ch)) if ch else 1)


def mirror_matrix(frame: av.VideoFrame) -> tuple[int, ...] | None:
    """``frame``'s display matrix where it mirrors the picture (its 2×2 part has a negative
    determinant), else None. A rotation angle alone cannot say a flip: a horizontal mirror reads as
    180°, and was written back as that turn, upside down."""
    for side in frame.side_data:
        if "DISPLAYMATRIX" in str(side.type).upper():
            raw = bytes(side)
            if len(raw) != 36:
                return None
            m = struct.unpack("<9i", raw)
            return m if m[0] * m[4] - m[1] * m[3] < 0 else None
    return None
