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
import functools
import math
import threading
import time
from fractions import Fraction
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator, Literal

import av
import numpy as np

from videodeblur.errors import ConfigError, DecodeError, OutputError, UnreadableInputError
from videodeblur.video.colour import RgbConverter
from videodeblur.video.deinterlace import deinterlaced
from videodeblur.video.feed import PacketFeed
from videodeblur.video.info import VideoInfo, describe, file_end_s, nominal_step
from videodeblur.video.inputs import interruptibly, open_input
from videodeblur.video.locations import is_named_pipe, is_stdin, is_url, redacted
from videodeblur.video.lost_frames import ReadTally, StreamSpan
from videodeblur.video.streams import cover_streams, pick_video_stream

__all__ = ["DecodedFrame", "FrameReader", "probe"]

Layout = Literal["rgb", "i420"]
_NOT_VIDEO_FORMATS = {"tty"}  # FFmpeg's text "demuxer": opens any text file as video


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


def _tallied(name: str) -> property:
    """A count of what the reader has read, kept in its tally (where each is explained)."""
    return property(lambda self: getattr(self._tally, name))


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

    # what has been read, counted anew after a seek (:class:`~videodeblur.video.lost_frames.ReadTally`)
    frames_decoded = _tallied("frames_decoded")
    packets_read = _tallied("packets_read")
    packets_discarded = _tallied("packets_discarded")
    packets_before_keyframe = _tallied("packets_before_keyframe")
    decode_errors = _tallied("decode_errors")
    first_error = _tallied("first_error")

    def __init__(self, path: str | Path, *, layout: Layout = "rgb", threads: int = 0, deep: bool = False,
                 deinterlace: bool = False) -> None:
        # a URL or "-" as given (pathlib would turn // into /), a file's path as a Path
        self.path: Path | str = str(path) if is_url(path) or is_stdin(path) else Path(path)
        self.name = "standard input" if is_stdin(path) else redacted(self.path)  # for messages: a URL's secrets hidden
        self.layout = _checked_layout(layout)
        self.deep = deep and layout == "rgb"
        self._tally = ReadTally()  # what was read: packets, frames, errors (see frames_lost)
        self.first_interlaced: int | None = None  # the first interlaced frame yielded, where it is not the first
        self.frames_resized = 0  # frames after a mid-stream size change, scaled to the first frame's size
        self.first_resize: str | None = None  # "WxH at frame N", for the warning
        # a pipe's or URL's packets beside the video, kept from the start for feed(): a pipe cannot be
        # read again, and a URL should not be fetched twice (a live one would not even send the same)
        pipe = is_stdin(path) or is_named_pipe(path)  # read once: never opened again, never sought
        self._others: list[tuple[int, av.Packet]] | None = [] if pipe or is_url(path) else None
        self._feed: PacketFeed | None = None
        self._closed = False
        self._lock = threading.Lock()
        self._threads = threads
        self._deinterlace = deinterlace
        self._rgb = RgbConverter()
        self._container: av.container.InputContainer | None = None
        opening = functools.partial(self._open_to_first_frame, layout, deep)
        # a pipe may stall before its first frame: opened on a thread of its own, a signal still ends the run
        first = interruptibly(opening, abandon=self.close) if pipe else opening()
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
        self._container = open_input(self.path)
        self._use_video_stream()
        self._tally = ReadTally()
        if self._others is not None:
            self._others = []
        self._last_pts = None
        self._frames = self._frame_source()
        self._first = next(self._frames, None)  # read up to it now, as an opening does: a cover comes first

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
        floor = self._span.start if self._span.start is not None else 0
        try:
            target = floor if at_s is None else max(floor, math.floor(at_s / self.info.time_base))
            self._container.seek(target, stream=self._stream, backward=True)
        except (av.FFmpegError, OSError):
            return False
        self._stream.codec_context.flush_buffers()
        # the frames decoded before (the first, on opening) come again: not counted twice
        self._tally = ReadTally(sought=True, others_end_s=self._tally.others_end_s)
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
        step = nominal_step(self.info)
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
                if frame.interlaced_frame and not self.info.interlaced:
                    self._interlaced_from(index)
            pts = self._last_pts = self._fixed_pts(frame.pts, step)
            yield DecodedFrame(index, pts, self.info.time_base, image, time.perf_counter(), deep,
                               getattr(frame, "duration", None) or None)
            index += 1

    def _interlaced_from(self, index: int) -> None:
        """The video turns interlaced at frame ``index`` (a broadcast recording whose programme
        follows a progressive one, a PAFF stream whose first picture is progressive): ``info`` says
        so from now on, as it does for one interlaced from its first frame, where the run's summary
        reads it. Judged by the first frame alone, 12 combed frames of 24 went without a word."""
        self.info = dataclasses.replace(self.info, interlaced=True)
        self.first_interlaced = index

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
        return self._tally.frames_lost(self.info, self._span)

    @property
    def frames_lost_estimated(self) -> bool:
        """Whether ``frames_lost`` is an estimate: frames are missing, and the file's header counts no
        frames (Matroska, MPEG-TS: the count comes from the duration) or counts empty frame slots (a
        gappy AVI cut short), so how many real frames the missing part held is not known."""
        return (self.window is None or self.window[1] is None) and self._tally.missing_packets(self.info, self._span)[1]

    @property
    def loss_may_be_a_pause(self) -> bool:
        """Whether an estimated loss (``frames_lost_estimated``) may as well be the video pausing: the
        file was read to the end its header states, with no stretch skipped and no decode error
        (:meth:`~videodeblur.video.lost_frames.ReadTally.read_to_its_end`)."""
        return (self.frames_lost_estimated and not self.decode_errors
                and self._tally.read_to_its_end(self.info, self._span))

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
        self._container = open_input(self.path)
        try:
            self._use_video_stream()
            # kept: PyAV's stream objects may not be read once the file is closed (see StreamSpan)
            self._stream_index = self._stream.index
            self._span = StreamSpan(self._stream.start_time, self._stream.duration, file_end_s(self._container))
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
            self.info = describe(self._container, self._stream, first, path=str(self.path),
                                 file_end_s=self._span.file_end_s)
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
        return deinterlaced(frames, self._stream) if self._deinterlace else frames

    def _decode(self) -> Iterator[av.VideoFrame]:
        """Frames in presentation order; a bad packet is skipped and counted, a broken container ends it."""
        try:
            # Every stream is demuxed (only the video is decoded) so the reader knows whether the
            # audio or subtitles run on past the video: then a short video is how the file was made.
            for packet in self._container.demux():
                if packet.stream.index != self._stream.index:
                    self._tally.count_other_packet(packet)
                    self._keep_other(packet)
                    continue
                self._tally.count_video_packet(packet)
                try:
                    frames = self._stream.decode(packet)
                except av.FFmpegError as err:
                    self._tally.count_error(err)
                    continue
                for frame in frames:
                    self._tally.frames_decoded += 1
                    yield frame
        except av.FFmpegError as err:  # truncated file: demuxing stops here
            self._tally.count_error(err)

    def _keep_other(self, packet: av.Packet) -> None:
        """A pipe's packet beside the video, into the feed (or kept for it, before it is made)."""
        if packet.dts is None and not packet.size:  # the demuxer's end-of-stream flush packet
            return
        if self._feed is not None:
            self._feed.put(packet.stream.index, packet)
        elif self._others is not None:
            self._others.append((packet.stream.index, packet))

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
            if self.deep:
                rgb, deep = self._rgb.to_rgb_depths(frame, (False, True), **size)
                return rgb, deep
            return self._rgb.to_rgb(frame, **size), None
        if frame.format.name in ("yuv420p", "yuvj420p") and not size:
            return frame.to_ndarray(), None
        return frame.to_ndarray(format="yuv420p", dst_color_range=frame.color_range or None, **size), None


def probe(path: str | Path) -> VideoInfo:
    """Open, validate (decode one frame) and describe a video file."""
    with FrameReader(path) as reader:
        return reader.info


def _checked_layout(layout: str) -> Layout:
    """``rgb`` or ``i420``: anything else was read as I420 planes without a word."""
    if layout not in ("rgb", "i420"):
        raise ConfigError(f"layout must be 'rgb' or 'i420', got {layout!r}")
    return layout  # type: ignore[return-value]
