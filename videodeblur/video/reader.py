"""Decode a video file with PyAV into numpy frames with their exact timestamps.

Opening validates the input by decoding its first frame: FFmpeg opens many non-videos (a text file
opens as a ``tty`` "video"), so ``av.open`` succeeding proves nothing. Every failure a user can
cause is a typed, one-line error.

Decoding is threaded inside FFmpeg (``thread_type="AUTO"``) and PyAV releases the GIL while it
decodes and converts, so a reader on its own thread overlaps with inference for real.
A truncated or corrupt stream yields what decodes; ``frames_lost`` / ``decode_errors`` say how much
did not.
"""
from __future__ import annotations

import dataclasses
import errno
import functools
import math
import os
import stat
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterator, Literal, TypeVar

import av
import numpy as np

from videodeblur.errors import ConfigError, DecodeError, InputNotFoundError, OutputError, UnreadableInputError
from videodeblur.video.colour import AVCOL_RANGE_JPEG, ColourTags, RgbConverter, has_no_matrix
from videodeblur.video.feed import PacketFeed
from videodeblur.video.hdr import HdrMetadata, hdr_metadata

__all__ = ["STDIN", "cover_streams", "has_no_matrix", "is_chapter_track", "is_cover", "is_named_pipe", "is_stdin", "is_url", "pick_video_stream", "short_error", "VideoInfo", "DecodedFrame", "FrameReader", "probe"]

Layout = Literal["rgb", "i420"]
_T = TypeVar("_T")
STDIN = "-"  # the input (or output) given as "-": the video piped in (or out)
_NOT_VIDEO_FORMATS = {"tty"}  # FFmpeg's text "demuxer": opens any text file as video
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
    interlaced: bool = False  # the first frame holds two fields (1080i broadcast, DV): combing the network cannot undo
    has_alpha: bool = False  # transparency (ProRes 4444, PNG or VP9 with alpha): the output is opaque
    # the first frame's time in seconds, exact: where the video starts (an MPEG-TS rarely at 0); None: unknown
    start_s: Fraction | None = None


@dataclasses.dataclass
class DecodedFrame:
    """One frame: ``image`` is uint8 ``H×W×3`` RGB (layout ``rgb``) or ``(3H/2)×W`` I420 (``i420``);
    ``pts`` in ``time_base`` units; ``decoded_at`` is ``time.perf_counter()`` when it came out."""

    index: int
    pts: int
    time_base: Fraction
    image: np.ndarray
    decoded_at: float
    deep: np.ndarray | None = None  # with ``deep=True``: the frame as uint16 RGB; ``image`` is it at 8 bits
    duration: int | None = None  # how long it shows, in ``time_base`` units, as the source says (None: not said)

    @property
    def pts_seconds(self) -> float:
        return float(self.pts * self.time_base)


class FrameReader:
    """Iterate the decoded frames of ``path``'s video stream (the one FFmpeg picks; one pass).

    ``layout="i420"`` yields the planes as stored (converted to 8-bit 4:2:0 only when the stream is
    not that already) for colour conversion on the device; it needs even width and height.
    ``threads``: FFmpeg decoding threads (0: automatic). ``deep`` (``rgb`` layout): also keep each
    frame at 16 bits per sample (``DecodedFrame.deep``), for 10-bit output from a 10-bit source.
    ``deinterlace``: interlaced frames through bwdif first. Before iterating, :meth:`trim` limits it
    to a part of the file and :meth:`skip` passes over frames an interrupted run already wrote.
    ``close()`` may be called from any thread. ``path`` ``"-"`` reads standard input (a pipe: read
    once, never sought); :meth:`feed` then hands the tracks beside the video on to the writer.
    """

    def __init__(self, path: str | Path, *, layout: Layout = "rgb", threads: int = 0, deep: bool = False,
                 deinterlace: bool = False) -> None:
        # a URL or "-" as given (pathlib would turn // into /), a file's path as a Path
        self.path: Path | str = str(path) if is_url(path) or is_stdin(path) else Path(path)
        self.name = "standard input" if is_stdin(path) else str(self.path)  # for messages
        self.layout = _checked_layout(layout)
        self.deep = deep and layout == "rgb"
        self.frames_decoded = 0
        self.packets_read = 0  # video packets demuxed (flush packets excluded)
        self.packets_discarded = 0  # marked "discard" by the demuxer (before an edit list's start)
        # packets before the first keyframe: a file cut mid-GOP begins with frames no decoder can make,
        # which are how it was cut, not loss (None: no keyframe seen yet)
        self.packets_before_keyframe: int | None = None
        self.decode_errors = 0
        self.first_error: str | None = None
        self.frames_resized = 0  # frames after a mid-stream size change, scaled to the first frame's size
        self.first_resize: str | None = None  # "WxH at frame N", for the warning
        self._packets_end: int | None = None  # latest pts + duration of a packet read, in time_base units
        self._packets_start: int | None = None  # earliest pts of a packet read, in time_base units
        self._sought = False  # read from a seek's keyframe on, not from the stream's start
        self._packet_durations = True  # every packet read carried its duration (else one frame is added)
        self._others_end_s: float | None = None  # where the other streams' packets (audio, subtitles) end
        # a pipe's or URL's packets beside the video, kept from the start for feed(): a pipe cannot be
        # read again, and a URL should not be fetched twice (a live one would not even send the same)
        pipe = is_stdin(path) or is_named_pipe(path)  # read once: never opened again, never sought
        self._others: list[tuple[int, av.Packet]] | None = [] if pipe or is_url(path) else None
        self._feed: PacketFeed | None = None
        self._closed = False
        self._lock = threading.Lock()
        self._threads = threads
        self._deinterlace = deinterlace
        self._rgb, self._deep_rgb = RgbConverter(), RgbConverter()  # one each: their swscale set-ups differ
        self._container: av.container.InputContainer | None = None
        opening = functools.partial(self._open_to_first_frame, layout, deep)
        # a pipe may stall before its first frame: opened on a thread of its own, a signal still ends the run
        first = _interruptibly(opening, abandon=self.close) if pipe else opening()
        self._last_pts: int | None = None
        self._first_s = float((first.pts or 0) * self.info.time_base)
        self.window: tuple[float, float | None] | None = None  # (start, end) in the stream's seconds, by trim()
        self._to_skip = 0
        self._skip_until_s: float | None = None
        self._looks_like: Callable[[np.ndarray], bool] | None = None
        self.frames_skipped = 0
        self.last_skipped_s: float | None = None  # the last skipped frame's time, to check a resume against

    @property
    def stream_index(self) -> int:
        """The index of the video stream read, among all the file's streams."""
        return self._stream_index

    def set_layout(self, layout: Layout, *, deep: bool = False) -> None:
        """Yield frames in ``layout`` (and at 16 bits with ``deep``) from now on: chosen once the input
        is known (its bit depth, its size), without opening it again, which a pipe or a live URL
        could not do (call before iterating)."""
        if _checked_layout(layout) == "i420" and (self.info.width % 2 or self.info.height % 2):
            raise ConfigError(f"layout 'i420' needs even width and height, got {self.info.width}x{self.info.height}")
        self.layout = layout
        self.deep = deep and layout == "rgb"

    def feed(self) -> PacketFeed:
        """The packets beside the video (audio, subtitles, cover pictures) as this reader demuxes them,
        from the input's start on, for a writer to copy (call before iterating). For standard input,
        which cannot be opened a second time for them as a file is, and URLs, which are then
        downloaded once."""
        if self._others is None:
            raise ValueError("feed() is for a reader of standard input or a URL, before it is iterated")
        self._feed = PacketFeed(self._container, self._others)
        self._others = None
        return self._feed

    def skip(self, frames: int, *, last_s: float | None = None,
             looks_like: Callable[[np.ndarray], bool] | None = None) -> None:
        """Decode but do not yield the first ``frames`` frames (call before iterating): they are the
        ones an interrupted run already wrote. Decoding them (not seeking) keeps the timestamps, the
        loss count and every frame after them exactly as in a run from the start. ``last_s``: where
        that run's last frame was; iterating raises OutputError if this file's frame there is not at
        the same time (within half a frame), or the file ends first, or ``looks_like`` (given the
        last skipped frame's luma) says it is not that frame: that output came from another video."""
        self._to_skip = max(0, frames)
        self._skip_until_s = last_s
        self._looks_like = looks_like

    def trim(self, start_s: float = 0.0, duration_s: float | None = None) -> tuple[float | None, float | None]:
        """Read only ``duration_s`` seconds (None: to the end) from ``start_s`` seconds after the
        first frame (call before iterating); returns ``(start, end)`` in the stream's own seconds,
        start None for none (0: the file's own start, its timing untouched). A start is reached by
        seeking to the keyframe before it and decoding up to it; frames before it are not yielded,
        and the file is not read past the end. ``frames_lost`` is then counted from the keyframe
        sought to, and not at all for a part that ends before the file does."""
        begin = self._first_s + max(0.0, start_s)
        self.window = (begin, None if duration_s is None else begin + duration_s)
        if start_s > 0:
            with self._lock:
                self._go_to(begin)
        return (begin if start_s > 0 else None), self.window[1]

    def _go_to(self, at_s: float) -> None:
        """Seek to the keyframe before ``at_s`` and check where that landed, by decoding its first
        frame now (before a writer is made from what was read): a seek that lands past it (an
        MPEG-TS seek into a long GOP) is undone by going back to the start, and one that leaves the
        input unreadable (a Matroska file from a server that ignores byte ranges: FFmpeg reports
        the seek done, then every read fails) or lands past it again (an MPEG-TS seek to its start
        can: one read from -0.5 s landed on its keyframe at -0.1 s) by opening it again; either way
        it is then read from its top, the frames before the window dropped as they come."""
        def landed(first: av.VideoFrame | None) -> bool:
            return first is not None and (first.pts is None or float(first.pts * self.info.time_base) <= at_s + 1e-9)

        if not self._seek(at_s):
            return  # it cannot seek (a pipe, such a server with MPEG-TS): read on from where it is
        if landed(first := next(self._frames, None)):
            self._first = first
            return
        if self._seek(None) and landed(first := next(self._frames, None)):
            self._first = first
            return
        self._open_again()

    def _open_again(self) -> None:
        """Open the input anew, at its start, forgetting what was read (a failed seek's errors too)."""
        self._container.close()
        self._container = _open(self.path)
        self._use_video_stream()
        self._forget_reads()
        self._sought = False
        self._others_end_s = None
        if self._others is not None:
            self._others = []
        self._last_pts = None
        self._frames = self._frame_source()
        self._first = next(self._frames, None)  # read up to it now, as an opening does: a cover comes first

    def _forget_reads(self) -> None:
        """Count the reading anew: it starts again from a seek's keyframe or the top of the file."""
        self.frames_decoded = self.packets_read = self.packets_discarded = self.decode_errors = 0
        self.first_error = None
        self.packets_before_keyframe = None
        self._packets_end = self._packets_start = None
        self._packet_durations = True

    @property
    def first_s(self) -> float:
        """The first frame's time in the stream's seconds (where ``trim``'s start counts from)."""
        return self._first_s

    @property
    def window_frames(self) -> int | None:
        """Frames expected in the window read (the header's count when there is none)."""
        fps, frames = self.info.fps, self.info.frames
        if self.window is None or not fps:
            return frames if self.window is None else None
        start, end = self.window
        if end is not None:
            return max(0, round((end - start) * float(fps)))
        return None if frames is None else max(0, frames - round((start - self._first_s) * float(fps)))

    def _seek(self, at_s: float | None) -> bool:
        """Go to the keyframe at or before ``at_s`` (the stream's seconds; None: its start) and decode
        on from there, counting anew. A source that cannot seek (a server without byte ranges, a
        pipe) is read on from where it is, the frames before the window dropped as they come."""
        if is_stdin(self.path) or is_named_pipe(self.path):
            return False  # FFmpeg may report success on a pipe and then read on from wherever it was
        # not before the stream's start, which may be below 0 (an MPEG-TS whose clock wraps reads so)
        floor = self._stream_start if self._stream_start is not None else 0
        try:
            target = floor if at_s is None else max(floor, math.floor(at_s / self.info.time_base))
            self._container.seek(target, stream=self._stream, backward=True)
        except (av.FFmpegError, OSError):
            return False
        self._stream.codec_context.flush_buffers()
        self._forget_reads()  # the frames decoded before (the first, on opening) come again: not counted twice
        self._sought = True
        if self._feed is not None:  # what was read before the seek comes again, or is not wanted
            self._feed.clear()
        if self._others is not None:  # but a cover picture is kept: the writer's header, still to come, wants it
            covers = {v.index for v in cover_streams(self._container)}
            self._others = [(index, packet) for index, packet in self._others if index in covers]
        self._first = None
        self._last_pts = None
        self._frames = self._frame_source()
        return True

    def _in_window(self, frame: av.VideoFrame) -> bool | None:
        """Whether ``frame`` is in the window (True), before it (False), or past its end (None)."""
        if self.window is None or frame.pts is None:
            return True
        start, end = self.window
        at = float(frame.pts * self.info.time_base)
        if end is not None and at >= end - 1e-9:
            return None
        return at >= start - 1e-9

    def _check_skipped(self, ended: bool) -> None:
        expected = self._skip_until_s
        if ended and self.frames_skipped < self._to_skip:
            raise OutputError(f"the output to resume holds {self._to_skip} frames but {self.name} has only "
                              f"{self.frames_skipped}: it was made from another video; run without --resume")
        tolerance = 0.5 / float(self.info.fps) if self.info.fps else 0.02
        if (not ended and expected is not None and self.last_skipped_s is not None
                and abs(self.last_skipped_s - expected) > tolerance):
            raise OutputError(f"the output to resume ends at {expected:.3f} s but frame {self.frames_skipped} of "
                              f"{self.name} is at {self.last_skipped_s:.3f} s: it was made from another video; "
                              "run without --resume")

    def __enter__(self) -> "FrameReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[DecodedFrame]:
        index = 0
        step = _default_step(self.info)
        if self._feed is None:
            self._others = None  # no one takes them: not kept
        while True:
            with self._lock:
                if self._closed:
                    return
                if self._first is not None:
                    frame, self._first = self._first, None
                else:
                    frame = next(self._frames, None)
                if frame is None:
                    self._check_skipped(ended=True)
                    return
                inside = self._in_window(frame)
                if inside is None:
                    self._read_on_for_feed()
                    return
                if not inside:
                    continue
                if self.frames_skipped < self._to_skip:
                    self._last_pts = self._fixed_pts(frame.pts, step)
                    self.last_skipped_s = float(self._last_pts * self.info.time_base)
                    self.frames_skipped += 1
                    if self.frames_skipped == self._to_skip:
                        self._check_skipped(ended=False)
                        if self._looks_like is not None and not self._looks_like(frame.to_ndarray(format="gray")):
                            raise OutputError(f"the output to resume does not show frame {self.frames_skipped} of "
                                              f"{self.name} where it ends: it was made from another video; "
                                              "run without --resume")
                    continue
                image, deep = self._convert(frame)
            pts = self._last_pts = self._fixed_pts(frame.pts, step)
            yield DecodedFrame(index, pts, self.info.time_base, image, time.perf_counter(), deep,
                               getattr(frame, "duration", None) or None)
            index += 1

    def _read_on_for_feed(self) -> None:
        """At a window's end, go on reading a second past it for the feed: a file stores audio up to
        a second away from the video of the same time, and what belongs in the window must come."""
        if self._feed is None or self.window is None or self.window[1] is None:
            return
        for frame in self._frames:
            if frame.pts is not None and float(frame.pts * self.info.time_base) > self.window[1] + 1.0:
                return

    def _fixed_pts(self, pts: int | None, step: int) -> int:
        """Missing or repeated timestamps would make the encoder refuse the frame: keep them
        strictly increasing, stepping by one nominal frame."""
        if pts is None:
            return 0 if self._last_pts is None else self._last_pts + step
        if self._last_pts is not None and pts <= self._last_pts:
            return self._last_pts + 1
        return pts

    @property
    def frames_lost(self) -> int:
        """Frames that should have come out but did not, once the file has been read to its end:
        packets the container indexes but the file no longer holds (truncation), plus packets read
        that decoded to nothing (corruption). Packets an edit list discards on purpose do not count.
        A count estimated from the duration (no index) only counts when clearly short (> 2 %). Fewer
        packets than the header's count whose timestamps still reach the stream's end are the file's
        own timing, not loss: an AVI counts its empty, dropped-frame slots (OpenCV's ``tree.avi``
        holds 68 frames in 444 slots), and variable-rate video has gaps by design. Nor are the
        packets before the first keyframe of a file cut mid-GOP (:attr:`packets_before_keyframe`):
        no decoder makes frames of them. After a window's seek, what is expected is counted from
        the keyframe it landed on."""
        if self.window is not None and self.window[1] is not None:
            return 0  # it stopped mid-stream, with packets still in the decoder
        missing, _ = self._missing_packets()
        undecoded = max(self.packets_read - self.packets_discarded - (self.packets_before_keyframe or 0)
                        - self.frames_decoded, 0)
        return missing + undecoded

    @property
    def frames_lost_estimated(self) -> bool:
        """Whether ``frames_lost`` is an estimate: frames are missing, and the file's header counts no
        frames (Matroska, MPEG-TS: the count comes from the duration) or counts empty frame slots (a
        gappy AVI cut short), so how many real frames the missing part held is not known."""
        return (self.window is None or self.window[1] is None) and self._missing_packets()[1]

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._container is not None:
                self._container.close()

    # --- helpers ---------------------------------------------------------------------------------
    def _open_to_first_frame(self, layout: Layout, deep: bool) -> av.VideoFrame:
        """Open the input, choose its video stream and decode its first frame, which validates it."""
        self._container = _open(self.path)
        self._file_end_s = _file_end_s(self._container)  # kept: the loss is worked out after the file is closed
        try:
            self._use_video_stream()
            # kept: PyAV's stream objects may not be read once the file is closed, and the loss is
            # worked out after that (a closed file's stream once read back a stream index of 477663792)
            self._stream_index = self._stream.index
            self._stream_start = self._stream.start_time
            self._stream_duration = self._stream.duration
            self._frames = self._frame_source()
            try:
                first = next(self._frames)
            except StopIteration:
                if is_stdin(self.path) and self._container.format.name.startswith("mov"):
                    raise DecodeError("standard input is an MP4/MOV that is not fragmented: its frames are found by "
                                      "seeking, which a pipe cannot do; pipe MKV, NUT, MPEG-TS or a fragmented MP4, "
                                      "or give the file itself") from None
                hint = ("; over the network this is also what an MP4 with its index at the end gives when the server "
                        "cannot serve byte ranges") if isinstance(self.path, str) and not is_stdin(self.path) else ""
                raise DecodeError(f"{self.name} has a video stream but no frame could be decoded "
                                  f"({self.first_error or 'zero frames'}); the file is empty or corrupt{hint}") from None
            self.info = self._describe(first)
            self.set_layout(layout, deep=deep)
            self._first: av.VideoFrame | None = first
        except BaseException:
            self.close()
            raise
        return first

    def _use_video_stream(self) -> None:
        """Decode the open input's video stream, with FFmpeg's own threads (``threads`` of them)."""
        self._stream = self._video_stream()
        self._stream.thread_type = "AUTO"
        self._stream.thread_count = self._threads

    def _video_stream(self) -> av.video.stream.VideoStream:
        name = self._container.format.name
        if name in _NOT_VIDEO_FORMATS:
            raise UnreadableInputError(f"{self.name} is not a video (FFmpeg reads it as text); give a video file")
        if name == "image2" or name.endswith("_pipe"):  # FFmpeg's still-image readers (PNG, JPEG, BMP...)
            kind = name.removesuffix("_pipe").upper() if name != "image2" else (
                PurePosixPath(str(self.path)).suffix.lstrip(".").upper() or "image")
            raise UnreadableInputError(f"{self.name} is a still image ({kind}), not a video; deblur it with "
                                       "`videodeblur image`")
        stream = pick_video_stream(self._container)
        if stream is None:
            kinds = sorted({s.type for s in self._container.streams if s.type != "video"})
            kinds += ["a cover picture"] if self._container.streams.video else []
            raise UnreadableInputError(f"{self.name} has no video stream (it holds: {', '.join(kinds) or 'no streams'})")
        return stream

    def _frame_source(self) -> Iterator[av.VideoFrame]:
        """The decoded frames, through FFmpeg's bwdif deinterlacer when asked (``deinterlace``): each
        interlaced frame becomes one progressive frame at its own time, so the count and timing
        stay the source's; progressive frames pass through it unchanged (``deint=interlaced``)."""
        frames = self._decode()
        return _deinterlaced(frames, self._stream) if self._deinterlace else frames

    def _decode(self) -> Iterator[av.VideoFrame]:
        """Frames in presentation order; a bad packet is skipped and counted, a broken container ends it."""
        try:
            # Every stream is demuxed (only the video is decoded) so the reader knows whether the
            # audio or subtitles run on past the video: then a short video is how the file was made.
            for packet in self._container.demux():
                if packet.stream.index != self._stream.index:
                    self._note_other_end(packet)
                    self._keep_other(packet)
                    continue
                if packet.size:
                    self.packets_read += 1
                    self.packets_discarded += packet.is_discard
                    if self.packets_before_keyframe is None and packet.is_keyframe:
                        self.packets_before_keyframe = self.packets_read - 1
                    if packet.pts is not None:
                        self._packet_durations &= bool(packet.duration)
                        end = packet.pts + (packet.duration or 0)
                        self._packets_end = end if self._packets_end is None else max(self._packets_end, end)
                        self._packets_start = (packet.pts if self._packets_start is None
                                               else min(self._packets_start, packet.pts))
                try:
                    frames = self._stream.decode(packet)
                except av.FFmpegError as err:
                    self._note_error(err)
                    continue
                for frame in frames:
                    self.frames_decoded += 1
                    yield frame
        except av.FFmpegError as err:  # truncated file: demuxing stops here
            self._note_error(err)

    def _keep_other(self, packet: av.Packet) -> None:
        """A pipe's packet beside the video, into the feed (or kept for it, before it is made)."""
        if packet.dts is None and not packet.size:  # the demuxer's end-of-stream flush packet
            return
        if self._feed is not None:
            self._feed.put(packet.stream.index, packet)
        elif self._others is not None:
            self._others.append((packet.stream.index, packet))

    def _note_other_end(self, packet: av.Packet) -> None:
        if packet.size and packet.pts is not None and packet.time_base is not None:
            end_s = float((packet.pts + (packet.duration or 0)) * packet.time_base)
            self._others_end_s = end_s if self._others_end_s is None else max(self._others_end_s, end_s)

    def _others_outlast_video(self) -> bool:
        """Whether the other streams were read to the file's end and past the video's last packet:
        the file is whole, and the duration it declares is theirs, not a count of lost frames. Past
        it by more than a frame: sound that ends with the picture (a few milliseconds after it, as
        codecs frame it) says nothing of frames missing before (a WebM that lost 7 of its 40 frames
        in the middle read as whole, its Opus ending 1 ms after the last frame)."""
        file_end_s = self._file_end_s
        if self._others_end_s is None or file_end_s is None or self._packets_end is None:
            return False
        video_end_s = float(self._packets_end * self.info.time_base)
        frame_s = 1 / float(self.info.fps) if self.info.fps else 0.0
        return (self._others_end_s >= file_end_s - max(0.5, 0.02 * file_end_s)
                and self._others_end_s > video_end_s + frame_s)

    def _reaches_stream_end(self) -> bool:
        """Whether the packets read cover the stream's whole duration (to within half a frame). A
        header that counts more frame slots than that duration spans is believed over it: FFmpeg
        measures an AVI cut before its index by the frames the file still holds (27 of 40 read as
        a whole 27-frame stream)."""
        if self._packets_end is None or self._stream_duration is None:
            return False  # unknown: the header's count stands
        step = _default_step(self.info)
        end = self._packets_end + (0 if self._packet_durations else step)
        duration = self._stream_duration
        if self.info.frames_exact and self.info.frames:
            duration = max(duration, self.info.frames * step)
        return end + step / 2 >= (self._stream_start or 0) + duration

    def _missing_packets(self) -> tuple[int, bool]:
        """Packets the header counts that never came (``frames_lost`` explains when they count), and
        whether that number is an estimate: from the duration, where the header counts no frames,
        or from the density of the part read of a gappy file whose header counts empty slots."""
        expected = max((self.info.frames or 0) - self._slots_before(), 0)
        missing = max(expected - self.packets_read, 0)
        if not self.info.frames_exact and missing <= max(1, expected // 50):
            return 0, False
        if not missing or self._reaches_stream_end():
            return 0, False
        if not self.info.frames_exact and self._others_outlast_video():
            return 0, False
        if self.info.frames_exact and (density := self._slot_density()) is not None:
            # cut short *and* gappy: the header's count holds empty slots, so count the missing part
            # of the stream at the density of the part that was read. Not from a count estimated
            # from the duration: it holds no empty slots, and a Matroska file that lost the middle
            # third of its frames read as "about 1 lost" (23 read over 40 slots, 1 slot left)
            return round((expected - self._slots_covered()) * density), True
        return missing, not self.info.frames_exact

    def _slots_covered(self) -> float:
        """How many of the header's frame slots the packets read span, from where reading began."""
        start = self._read_from()
        return (self._packets_end - start) / _default_step(self.info) if self._packets_end is not None else 0.0

    def _read_from(self) -> int:
        """Where the packets read begin, in ``time_base`` units: the stream's start, or after a seek
        the earliest packet read since."""
        if self._sought and self._packets_start is not None:
            return self._packets_start
        return self._stream_start or 0

    def _slots_before(self) -> int:
        """The header's frame slots before where reading began (none unless a window sought past them)."""
        return max(0, round((self._read_from() - (self._stream_start or 0)) / _default_step(self.info)))

    def _slot_density(self) -> float | None:
        """Packets read per frame slot they span, when clearly below one (< 0.9: the file leaves
        slots empty); None for ordinary files, where every slot holds a frame."""
        covered = self._slots_covered()
        if self.packets_read < 2 or covered <= 0:
            return None
        density = self.packets_read / covered
        return density if density < 0.9 else None

    def _note_error(self, err: Exception) -> None:
        self.decode_errors += 1
        if self.first_error is None:
            self.first_error = " ".join(str(err).split())

    def _convert(self, frame: av.VideoFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """The frame in the reader's layout, and with ``deep`` its 16-bit RGB too. The network's 8-bit
        frame is converted on its own, exactly, not rounded from the 16-bit one, whose white swscale
        puts at 65280 for YUV and at 65535 or 65472 for other formats."""
        size: dict[str, int] = {}
        if (frame.width, frame.height) != (self.info.width, self.info.height):
            # The size changed mid-stream (spliced or adaptive streams): scale back to the first
            # frame's size, as the ffmpeg tool does, since one output stream has one size.
            size = {"width": self.info.width, "height": self.info.height}
            self.frames_resized += 1
            if self.first_resize is None:
                self.first_resize = f"{frame.width}x{frame.height} at frame {self.frames_decoded - 1}"
        if self.layout == "rgb":  # the frame's own matrix and range
            deep = self._deep_rgb.to_rgb(frame, deep=True, **size) if self.deep else None
            return self._rgb.to_rgb(frame, **size), deep
        if frame.format.name in ("yuv420p", "yuvj420p") and not size:
            return frame.to_ndarray(), None
        return frame.to_ndarray(format="yuv420p", dst_color_range=frame.color_range or None, **size), None

    def _describe(self, first: av.VideoFrame) -> VideoInfo:
        s = self._stream
        fmt = first.format
        depth = max((c.bits for c in fmt.components), default=8)
        color_range = AVCOL_RANGE_JPEG if fmt.name.startswith("yuvj") else int(first.color_range)
        colour = ColourTags(colorspace=int(first.colorspace), color_range=color_range,
                            color_primaries=int(first.color_primaries), color_trc=int(first.color_trc))
        fps = _nominal_rate(s)
        duration_s = None
        if s.duration is not None and s.time_base is not None:
            duration_s = float(s.duration * s.time_base)
        elif self._file_end_s is not None:
            # from the video's own start: a stream that starts late (or after the audio) spans less
            # than the file, and its frame count is estimated from this
            start_s = (float(s.start_time * s.time_base) if s.start_time is not None and s.time_base is not None
                       else (self._container.start_time or 0) / av.time_base)
            duration_s = self._file_end_s - start_s if self._file_end_s > start_s else None
        frames_exact = bool(s.frames)
        frames = int(s.frames) if s.frames else (round(duration_s * float(fps)) if duration_s and fps else None)
        audio = self._container.streams.audio
        subsampling = _subsampling(fmt, first.width, first.height)
        return VideoInfo(
            path=str(self.path), format_name=self._container.format.name, codec=s.codec_context.name,
            width=first.width, height=first.height, pix_fmt=fmt.name, bit_depth=depth,
            chroma_subsampling=subsampling, time_base=s.time_base or Fraction(1, 90000),
            fps=Fraction(fps) if fps else None, frames=frames, frames_exact=frames_exact, duration_s=duration_s,
            rotation=int(first.rotation or 0), colour=colour, has_audio=bool(audio),
            audio_codec=audio[0].codec_context.name if audio else None,
            has_subtitles=any(not is_chapter_track(self._container, t) for t in self._container.streams.subtitles),
            has_data=any(not is_chapter_track(self._container, t) for t in self._container.streams.data),
            has_attachments=bool(self._container.streams.attachments or cover_streams(self._container)),
            tags=dict(self._container.metadata), video_tags=dict(s.metadata),
            chapters=tuple(self._container.chapters()), hdr=hdr_metadata(first), sample_aspect_ratio=_pixel_shape(s),
            interlaced=bool(first.interlaced_frame),
            has_alpha=not fmt.has_palette and len(fmt.components) in (2, 4),
            start_s=None if first.pts is None else first.pts * Fraction(s.time_base or Fraction(1, 90000)),
            other_videos=tuple(f"stream {v.index}: {v.codec_context.name} {v.codec_context.width}x{v.codec_context.height}"
                               for v in self._container.streams.video if v.index != s.index and not is_cover(v)))


URL_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt", "rtp")
NETWORK_TIMEOUTS_S = (10.0, 30.0)  # open, then each read: a dead server is an error, not a hang


def _interruptibly(work: Callable[[], _T], *, abandon: Callable[[], None]) -> _T:
    """``work()`` on a thread of its own while this one waits, so that Ctrl-C or SIGTERM still ends
    the run while it is blocked: FFmpeg retries a read from a pipe that a signal interrupted, and
    never comes back to Python for the signal's handler to act (a producer that stalls before its
    first frame held the run until it sent again). Interrupted, ``work`` is left to its thread, as
    the pipeline leaves a read blocked on a pipe, and ``abandon()`` runs once it has returned."""
    done = threading.Event()
    lock = threading.Lock()
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = work()
        except BaseException as err:  # noqa: BLE001 - carried to the waiting thread
            result["error"] = err
        with lock:
            done.set()
            left = result.get("left", False)
        if left and "value" in result:
            abandon()

    threading.Thread(target=run, name="videodeblur-open", daemon=True).start()
    try:
        while not done.wait(0.1):
            pass
    except BaseException:
        with lock:
            result["left"] = not done.is_set()
        if not result["left"] and "value" in result:
            abandon()
        raise
    if "error" in result:
        raise result["error"]
    return result["value"]


def _checked_layout(layout: str) -> Layout:
    """``rgb`` or ``i420``: anything else was read as I420 planes without a word."""
    if layout not in ("rgb", "i420"):
        raise ConfigError(f"layout must be 'rgb' or 'i420', got {layout!r}")
    return layout  # type: ignore[return-value]


def is_url(spec: str | Path) -> bool:
    """``scheme://...`` with a scheme FFmpeg reads over the network (a URL, not a file path)."""
    scheme, sep, _ = str(spec).partition("://")
    return bool(sep) and scheme.lower() in URL_SCHEMES


def is_stdin(spec: str | Path | None) -> bool:
    """``-``: standard input (or output), the Unix way of naming a pipe."""
    return spec is not None and str(spec) == STDIN


def is_named_pipe(spec: str | Path | None) -> bool:
    """A path that is a FIFO (``mkfifo``, or bash's ``<(...)``): a pipe under a name, read once as
    standard input is; opening it again would wait for ever for a writer that has gone."""
    if spec is None or is_stdin(spec) or is_url(spec):
        return False
    try:
        return stat.S_ISFIFO(os.stat(spec).st_mode)
    except (OSError, ValueError):
        return False


def short_error(err: BaseException) -> str:
    """An FFmpeg error in one line, without the file name its ``str()`` repeats."""
    text = getattr(err, "strerror", None) or str(err)
    return " ".join(str(text).split()) or type(err).__name__


def _deinterlaced(frames: Iterator[av.VideoFrame], stream: av.video.stream.VideoStream) -> Iterator[av.VideoFrame]:
    """``frames`` through bwdif (one frame of look-ahead: it is flushed at the end), the graph set up
    from the first frame's size and format."""
    graph: av.filter.Graph | None = None
    time_base = stream.time_base

    def drained() -> Iterator[av.VideoFrame]:
        while graph is not None:
            try:
                out = graph.pull()
            except (av.error.BlockingIOError, av.error.EOFError):
                return
            if out.pts is not None and out.time_base is not None and out.time_base != time_base:
                # bwdif halves the time base (it could send a frame per field): back to the stream's
                out.pts = round(out.pts * out.time_base / time_base)
                if getattr(out, "duration", None):
                    out.duration = round(out.duration * out.time_base / time_base)
                out.time_base = time_base
            yield out

    for frame in frames:
        if graph is None:
            time_base = frame.time_base or stream.time_base
            graph = av.filter.Graph()
            source = graph.add_buffer(width=frame.width, height=frame.height, format=frame.format.name,
                                      time_base=time_base)
            bwdif = graph.add("bwdif", "mode=send_frame:parity=auto:deint=interlaced")
            sink = graph.add("buffersink")
            source.link_to(bwdif)
            bwdif.link_to(sink)
            graph.configure()
        graph.push(frame)
        yield from drained()
    if graph is not None:
        graph.push(None)
        yield from drained()


def _pixel_shape(stream: av.video.stream.VideoStream) -> Fraction | None:
    """The stream's sample aspect ratio (the container's, else the codec's) when pixels are not square."""
    for sar in (stream.sample_aspect_ratio, stream.codec_context.sample_aspect_ratio):
        if sar and sar.numerator > 0 and sar.denominator > 0 and sar != 1:
            return Fraction(sar)
    return None


def is_cover(stream: av.stream.Stream) -> bool:
    """Whether a video stream is a still picture attached to the file (artwork), not video."""
    return bool(stream.disposition & av.stream.Disposition.attached_pic)


def is_chapter_track(container: av.container.InputContainer, stream: av.stream.Stream) -> bool:
    """Whether ``stream`` is an MP4/MOV's chapter track: QuickTime text that the muxer writes from
    the file's chapters (which are read, and written again, as chapters), not subtitles or data to
    copy. From a file the demuxer marks it discarded (a ``bin_data`` track without packets); from a
    pipe it cannot, and the track reads as ``mov_text`` subtitles tagged ``text``, which a muxer
    never enables (no default disposition), in a file with chapters."""
    if stream.type not in ("data", "subtitle") or not container.format.name.startswith("mov"):
        return False
    if stream.discard == av.stream.Discard.all:
        return True
    codec = stream.codec_context
    return (codec is not None and codec.name == "mov_text" and codec.codec_tag == "text"
            and not stream.disposition & av.stream.Disposition.default and bool(container.chapters()))


def cover_streams(container: av.container.InputContainer) -> list[av.video.stream.VideoStream]:
    """The file's cover pictures (artwork stored as video streams of one picture)."""
    return [s for s in container.streams.video if is_cover(s)]


def pick_video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream | None:
    """The stream to deblur: FFmpeg's own choice (av_find_best_stream, as the ffmpeg tool makes it)
    among the moving-picture streams, so neither a thumbnail track stored first nor a cover picture
    (an MP3's or M4A's artwork, disposition attached_pic) is taken for the video. None if there is none."""
    videos = [s for s in container.streams.video if not is_cover(s)]
    best = container.streams.best("video")
    return best if any(best is s for s in videos) else (videos[0] if videos else None)


def probe(path: str | Path) -> VideoInfo:
    """Open, validate (decode one frame) and describe a video file."""
    with FrameReader(path) as reader:
        return reader.info


def _open(path: Path | str) -> av.container.InputContainer:
    if is_stdin(path):
        if sys.stdin is None or sys.stdin.isatty():
            raise UnreadableInputError("standard input is a terminal, not a video: pipe one in "
                                       "(... | videodeblur video - -o out.mkv), or give a file")
        try:
            return av.open("pipe:0", "r", metadata_errors="replace")
        except (av.FFmpegError, OSError) as err:
            _end_if_interrupted(err)
            raise UnreadableInputError(f"standard input is not a video FFmpeg can read ({short_error(err)})") from err
    if isinstance(path, str):  # a URL
        try:
            return av.open(path, "r", metadata_errors="replace", timeout=NETWORK_TIMEOUTS_S)
        except (av.FFmpegError, OSError) as err:
            _end_if_interrupted(err)
            raise UnreadableInputError(f"cannot open {path}: {short_error(err)}") from err
    if not path.exists():
        raise InputNotFoundError(f"input not found: {path}")
    if path.is_dir():
        raise UnreadableInputError(f"{path} is a folder; give a video file")
    try:
        return av.open(str(path), "r", metadata_errors="replace")  # tags in Latin-1 etc. are common in old files
    except av.FFmpegError as err:
        _end_if_interrupted(err)
        if _mp4_without_index(path):
            raise UnreadableInputError(
                f"{path} is an MP4/MOV cut short before its index (moov) was written, so no frame can be "
                "located: a recording or copy that did not finish") from err
        reason = " ".join(str(err).split())
        raise UnreadableInputError(f"{path} is not a video file FFmpeg can read ({reason})") from err
    except (OSError, UnicodeDecodeError) as err:
        _end_if_interrupted(err)
        raise UnreadableInputError(f"cannot open {path}: {err}") from err


def _end_if_interrupted(err: BaseException) -> None:
    """A signal (Ctrl-C, SIGTERM) that came while the open waited (on a named pipe with no writer
    yet): its handler ran inside PyAV, whose EINTR error took the place of the KeyboardInterrupt it
    raised, so end as a signal mid-run does, not as an unreadable input."""
    if getattr(err, "errno", None) == errno.EINTR:
        raise KeyboardInterrupt from err


def _file_end_s(container: av.container.InputContainer) -> float | None:
    """Where the file's streams end, in seconds of their timestamps (None when not known). FFmpeg's
    ``duration`` runs from ``start_time``, except in the formats of ``_DURATION_FROM_ZERO``."""
    if container.duration is None:
        return None
    from_zero = not _DURATION_FROM_ZERO.isdisjoint(container.format.name.split(","))
    return ((0 if from_zero else container.start_time or 0) + container.duration) / av.time_base


def _nominal_rate(stream: av.video.stream.VideoStream) -> Fraction | None:
    """The average frame rate (right for variable-rate video too), unless it is far above FFmpeg's
    guess: a remuxed MKV can carry 1/time-base as its default frame duration (an "average" of 12800
    fps for a 25 fps clip), which would make the frame count estimate and the output's rate absurd."""
    average, guessed = stream.average_rate, stream.guessed_rate
    if average and guessed and average > 8 * guessed:
        return Fraction(guessed)
    return average or guessed or stream.base_rate


def _mp4_without_index(path: Path) -> bool:
    """True for an ISO-BMFF file (``ftyp`` first) whose top-level boxes hold no ``moov``: the index
    is written last unless the file was made "faststart", so a cut-short recording lacks it. Only a
    regular file is looked into: a named pipe, its bytes read once already, would be waited on for ever."""
    if not path.is_file():
        return False
    try:
        with open(path, "rb") as f:
            size_total = path.stat().st_size
            offset, first = 0, True
            while offset + 8 <= size_total:
                f.seek(offset)
                header = f.read(16)
                size, kind = int.from_bytes(header[:4], "big"), header[4:8]
                if first and kind != b"ftyp":
                    return False
                if kind == b"moov":
                    return False
                first = False
                if size == 1:  # 64-bit size follows
                    size = int.from_bytes(header[8:16], "big")
                elif size == 0:  # the box runs to the end of the file
                    break
                if size < 8:
                    return False  # not a box structure after all
                offset += size
            return not first
    except OSError:
        return False


def _subsampling(fmt: av.VideoFormat, width: int, height: int) -> tuple[int, int]:
    """Chroma subsampling factors (x, y): (2, 2) for 4:2:0, (2, 1) for 4:2:2, (1, 1) for 4:4:4/RGB."""
    if has_no_matrix(fmt):
        return (1, 1)
    comps = fmt.components
    cw, ch = comps[1].width, comps[1].height
    return (max(1, round(width / cw)) if cw else 1, max(1, round(height / ch)) if ch else 1)


def _default_step(info: VideoInfo) -> int:
    """One nominal frame duration in ``time_base`` units (at least 1)."""
    if info.fps:
        return max(1, round(1 / (info.fps * info.time_base)))
    return 1
