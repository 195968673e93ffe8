"""Encode numpy frames to a video file with PyAV, keeping the source's timing, rotation, colour tags
and audio.

- Timestamps: each frame is written with the ``pts`` it came with, in the source's ``time_base``
  (which the encoder uses too), so variable frame rate survives. The muxer may pick its own stream
  time base (MP4 does), but every timestamp in seconds is the source's.
- Encoder (:mod:`videodeblur.video.encoders`): ``auto`` probes the hardware encoder (h264_nvenc) by
  opening it for real and falls back to libx264 with frame threads; HEVC for 10-bit output; for a
  container that cannot hold H.264 (WebM), the container's own video codec (VP9), as the ffmpeg
  tool picks. Chroma as the source's (``like``: 4:2:0, 4:2:2; 4:1:1 and 4:1:0 as 4:2:0; 4:4:4 as
  4:4:4, and odd sizes too for an encoder that cannot write them 4:2:0, such as x264); 8-bit, or
  10-bit when asked for (a 10-bit source, ``like(deep=True)``) and the encoder takes it.
- Audio, subtitles and data: every such track of ``copy_from`` is carried over with its language
  and title (:mod:`videodeblur.video.passthrough`: remuxed untouched, audio re-encoded only where
  the container cannot hold its codec), interleaved as the video advances.
- ``path`` may be a live stream's URL; ``resume_from`` begins a file with an interrupted run's frames.
- ``close()`` always flushes the encoder and writes the trailer, so an interrupted run leaves a
  playable file holding every frame written so far.
"""
from __future__ import annotations

import errno
import itertools
import math
import re
import threading
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, Sequence

import av
import av.video.reformatter
import numpy as np

from videodeblur.errors import EncodeError, FrameError, OutputError, short_error
from videodeblur.video.colour import in_whole_blocks
from videodeblur.video.colour import (AVCOL_PRI_UNSPECIFIED, AVCOL_RANGE_JPEG, AVCOL_RANGE_UNSPECIFIED, AVCOL_SPC_UNSPECIFIED,
                                      AVCOL_TRC_UNSPECIFIED, ColourTags, rgb_to_yuv_planes, sws_colorspace, yuv_matrix)
from videodeblur.video.encoders import (SOFTWARE_ENCODER, carries, choose_encoder, coded_rate, containers_for, encodable_pix_fmt, encoder_options,
                                        ffmpeg_errors_said, private_options, takes)
from videodeblur.video.hdr import HdrMetadata
from videodeblur.video.passthrough import Passthrough
from videodeblur.video.partial_output import (annex_b_filter, frame_step, intact_packets, moved_by, resumable_packets,
                                              why_not_resumable, with_decode_times)
from videodeblur.video.feed import PacketFeed
from videodeblur.video.inputs import ffmpeg_name
from videodeblur.video.locations import is_named_pipe, is_stdin, is_url, redacted
from videodeblur.video.metadata import chapters_in, descriptive_tags
from videodeblur.video.output_format import (as_decoders_read, is_deep, like_chroma, output_subsampling, output_tags,
                                             source_tags)
from videodeblur.video.outputs import (MOV_MUXERS, ONE_RATE_MUXERS, PIPE_FORMATS, check_output_path, fragment_options,
                                      movie_timing_options, open_pipe, open_stream, output_kind, release_pipe)
from videodeblur.video.packet_timing import PacketTiming, last_frame_as_keyframe
from videodeblur.video.streams import pick_video_stream

if TYPE_CHECKING:
    from videodeblur.video.info import VideoInfo

__all__ = ["FrameWriter"]

Layout = Literal["rgb", "i420"]


class FrameWriter:
    """Write uint8 frames (RGB ``H×W×3`` or I420 ``(3H/2)×W``; uint16 RGB when ``deep``) with their
    ``pts`` to ``path``.

    ``time_base``: units of the ``pts`` given to :meth:`write`. ``fps``: nominal rate for the
    container (timing still comes from pts). ``crf``: quality (lower is better; 18 is visually
    lossless for libx264), given to every encoder that has a constant-quality knob
    (:func:`encoder_options`); ``quality_control`` names the knob used, None when the encoder has
    none. ``threads``: encoder threads (0: automatic). ``input_path``: the file
    being read (default: ``copy_from``), which ``path`` may not be. ``audio`` / ``subtitles``: copy
    those streams of ``copy_from``; ``data``: its data tracks, such as GoPro telemetry; ``attachments``: its
    attached files (fonts) and cover pictures, where the container holds them. ``fragmented``: an MP4/MOV written as a fragment a second (no
    index at the end), so a process killed outright (kill -9, power loss) still leaves every fragment
    written playable; for live recordings, which cannot be run again. ``tags`` / ``video_tags``: the
    source file's and video stream's metadata, copied as the ffmpeg tool does by default (a phone
    video keeps its creation time and location, which photo libraries sort and map by); the
    container's own technical tags (brands, encoder) are left to the muxer. ``chapters``: the
    source's chapter marks (PyAV's ``chapters()`` dicts), kept as the ffmpeg tool keeps them.
    ``window``: the part of the source written, ``(start, end)`` in its seconds (a reader's
    ``trim()``; either may be None: from the start, to the end): frames' ``pts`` and the copied
    tracks and chapters are moved back by ``start``, so the new file begins at 0, and tracks end
    where the window does. ``source_start_s``: where the source's video starts (its first frame's
    time; :meth:`like` gives it): without a window's start, everything is moved back by the earliest
    of it and the copied tracks' starts, so the new file begins at 0 as the ffmpeg tool's does (an
    MPEG-TS that starts at 10 h made a 10-hour MP4, mostly empty; None: times are written as
    given). ``hdr``: HDR10's static metadata, written into a 10-bit x265 stream
    (other encoders and 8-bit output leave it out). ``sample_aspect_ratio``: the shape of a pixel
    where it is not square (anamorphic DV/HDV/DVD), so the picture keeps its display shape.
    ``path`` may also be a live stream's URL (``rtmp://`` to a streaming server, ``srt://``,
    ``udp://`` or ``tcp://`` as MPEG-TS, ``rtsp://`` to publish); it and ``live`` encode for low
    latency: no B-frames or look-ahead, slice threads, a keyframe every two seconds.
    ``made_by``: what made the frames ("videodeblur lprn-fast"), as the video track's handler name,
    so a file says where it came from and :meth:`resume_from` can refuse to mix two models.
    """

    def __init__(self, path: str | Path, *, width: int, height: int, time_base: Fraction,
                 fps: Fraction | None = None, encoder: str = "auto", crf: int = 18, preset: str = "veryfast",
                 pix_fmt: str | None = None, colour: ColourTags | None = None, rotation: int = 0,
                 copy_from: str | Path | PacketFeed | None = None, threads: int = 0, layout: Layout = "rgb",
                 input_path: str | Path | None = None, tags: dict[str, str] | None = None,
                 video_tags: dict[str, str] | None = None, audio: bool = True, subtitles: bool = True,
                 data: bool = True, attachments: bool = True, fragmented: bool = False, chapters: Sequence[dict[str, Any]] = (),
                 window: tuple[float | None, float | None] | None = None, hdr: HdrMetadata | None = None,
                 sample_aspect_ratio: Fraction | None = None, live: bool = False, made_by: str | None = None,
                 pipe_format: str = "mkv", source_start_s: Fraction | None = None,
                 mirror_matrix: Sequence[int] | None = None) -> None:
        self._stream_url = is_url(path)
        self._pipe = is_stdin(path)  # "-": standard output
        self._named_pipe = not self._pipe and not self._stream_url and is_named_pipe(path)  # mkfifo: read as it comes
        existed = self._stream_url or self._pipe or Path(path).exists()
        # a live stream's URL or "-" as given (pathlib would fold its //), a file's path checked now
        read_from = input_path or (None if isinstance(copy_from, PacketFeed) else copy_from)
        self.path: Path | str = (str(path) if self._stream_url or self._pipe
                                 else check_output_path(path, input_path=read_from))
        self.shown = redacted(self.path)  # for messages: a stream URL's password or token hidden
        if self._pipe and pipe_format not in PIPE_FORMATS:
            raise OutputError(f"cannot write {pipe_format} to standard output; choose one of {', '.join(PIPE_FORMATS)}")
        self._kind = output_kind(path, pipe_format)
        self._live = live or self._stream_url
        self.width, self.height, self.layout = width, height, layout
        self.time_base = Fraction(time_base)
        self.colour = colour or ColourTags()
        self.frames_written = 0
        self.resumed_frames = 0  # of frames_written, those copied from an interrupted run (resume_from)
        self.resumed_until_s: float | None = None  # the last copied frame's time in this file
        self.quality_control: str | None = None
        self.speed_control: str | None = None  # the knob --preset set (x264's preset, libvpx's deadline); None: none
        self.hdr_kept = False  # HDR10's mastering display and light levels went into the stream (x265, 10-bit)
        # a pipe cannot be gone back into for the index at the end: MP4/MOV to it are always fragmented
        muxer_options = ({} if self._stream_url else fragment_options(Path(f"-{self._kind}"), True) if self._pipe
                         else fragment_options(Path(self.path), fragmented or self._named_pipe))
        self._fragmented = "movflags" in muxer_options  # MP4/MOV fragments (other containers are only flushed)
        self._closed = False
        self._lock = threading.Lock()
        self._last_start_s = 0.0  # the last frame's time: the sound is interleaved up to it
        # and where that frame ends: an interrupted file's sound goes on to there, not stopping a frame short
        self._last_end_s = 0.0
        self._slot_rate: Fraction | None = None  # set for containers that hold one rate (see _add_video_stream)
        self._last_pts: int | None = None  # the last frame's pts given to write()
        self._last_slot = -1
        self._previous: av.VideoFrame | None = None  # the last frame encoded, for YUV4MPEG's repeats
        self.repeated_frames = 0  # frames YUV4MPEG output repeats to keep the source's timing
        self._passthrough: Passthrough | None = None
        self._turn_left_out: str | None = None  # the display rotation a container without one dropped (AVI, MPEG-TS)
        # the source's time that becomes the output's 0: the window's start, else the source's (below)
        self._origin_s: float | Fraction = window[0] if window and window[0] is not None else 0.0
        self._pts_offset = round(self._origin_s / self.time_base)
        self._hdr = hdr
        self._sar = sample_aspect_ratio
        try:
            try:
                # YUV4MPEG takes 10-bit and deeper frames (which x264 and SVT-AV1 read) only when told
                # to go past its standard, as `ffmpeg -strict -1` does
                options = {**muxer_options, **({"strict": "-1"} if self._kind.lower() == ".y4m" else {}),
                           **({} if self._stream_url else movie_timing_options(self._kind, self.time_base))}
                if self._kind.lower() == ".avi":
                    # AVI plays its sound from the first sample whatever its time: the muxer's shift of
                    # every stream past AAC's priming (-21 ms) put the second and later frames a slot late
                    options["avoid_negative_ts"] = "disabled"
                self._container = (open_stream(str(self.path)) if self._stream_url
                                   else open_pipe(pipe_format, options) if self._pipe
                                   else av.open(ffmpeg_name(self.path, writing=True), "w", options=options))
            except (av.FFmpegError, ValueError, OSError) as err:
                hint = ("is a server listening there?" if self._stream_url
                        else "use a video extension such as .mp4, .mkv or .mov")
                raise OutputError(f"cannot write {self.shown}: {' '.join(str(err).split())} ({hint})") from err
            try:
                self._choose_format(encoder, pix_fmt)
                self.colour = output_tags(self.colour, self.pix_fmt)
                i420_colour = self.colour  # the device's I420 comes in the source's matrix
                self.colour = as_decoders_read(self.colour, self.encoder_name, self.pix_fmt)
                # I420 frames go to the encoder as they are where it takes them with these tags; else
                # (ProRes's 4:2:2, libx264rgb's RGB, VP8's BT.601) swscale converts them, where a
                # ValueError stopped every such run on CUDA, which hands over I420 by default
                self._i420_converted = layout == "i420" and (self.pix_fmt != "yuv420p" or self.colour != i420_colour)
                self._i420_colourspace = sws_colorspace(i420_colour)
                self._i420_range = i420_colour.color_range or None
                if ((layout == "rgb" or self._i420_converted)
                        and sws_colorspace(self.colour) not in av.video.reformatter.Colorspace.__members__):
                    raise OutputError(f"cannot write {self.shown}: converting to {self.colour.matrix} YUV needs PyAV 18 "
                                      f"or newer (Python 3.11+); this is PyAV {av.__version__}")
                self._container.metadata.update(descriptive_tags(tags))
                self._stream = self._add_video_stream(fps, crf, preset, threads, rotation, mirror_matrix)
                self._timing = PacketTiming(self._container, self._stream, fragmented=self._fragmented,
                                            last_as_keyframe=self._last_as_keyframe)
                self._stream.metadata.update(descriptive_tags(video_tags, keep=("language", "title", "timecode")))
                if made_by:  # the video track's handler name: ffprobe shows it, and a resume checks it
                    self._stream.metadata["handler_name"] = made_by
                if copy_from is not None:
                    self._passthrough = Passthrough(copy_from, self._container, audio=audio, subtitles=subtitles,
                                                    data=data, attachments=attachments, kind=self._kind, window=window, fragmented=self._fragmented)
                if not (window and window[0] is not None) and source_start_s is not None:
                    self._start_at_zero(Fraction(source_start_s))
                end = window[1] if window else None
                if chapters := chapters_in(chapters, (self._origin_s, end) if self._origin_s or end is not None
                                           else None):
                    self._container.set_chapters(chapters)
                self._write_header()
            except BaseException:
                if self._passthrough is not None:
                    self._passthrough.close()
                self._container.close()
                raise
        except BaseException:
            if not existed:  # leave no empty file behind for a run that never started
                Path(self.path).unlink(missing_ok=True)
            raise
        finally:
            release_pipe(self.path)  # a named pipe: FFmpeg opened its own write end with the header (or failed)
        self._sws = av.video.reformatter.VideoReformatter()
        self._sws_colorspace = sws_colorspace(self.colour)
        self._sws_range = self.colour.color_range or None
        self._exact_full_range = _takes_exact_full_range(self.pix_fmt, self.colour)

    @classmethod
    def like(cls, path: str | Path, info: "VideoInfo", *, audio: bool = True, subtitles: bool = True,
             data: bool = True, attachments: bool = True, feed: PacketFeed | None = None,
             side_by_side: bool = False, deep: bool = False, **kwargs: Any) -> "FrameWriter":
        """A writer that matches ``info``: size, time base, frame rate, rotation, colour tags, chroma
        subsampling (as 8-bit, or 10-bit for a deeper source with ``deep``, where the encoder takes
        it), the file's and the video stream's tags (creation time, location,
        title, language), its chapters and, when ``audio`` and the source has any, its audio streams
        (and so on for ``subtitles``, ``data`` and ``attachments``). ``feed``: where those come from
        when the source is a pipe (its reader's :meth:`~videodeblur.video.FrameReader.feed`).
        ``side_by_side``: twice the source's width, for the source and its deblurred picture together
        (twice its height for a source shown turned a quarter, which then shows them side by side)."""
        kwargs.setdefault("input_path", info.path)  # never overwrite the file being read, audio or not
        turned = info.rotation % 180 != 0  # a phone's portrait clip: stored on its side, shown turned
        width = info.width * (2 if side_by_side and not turned else 1)
        height = info.height * (2 if side_by_side and turned else 1)
        pix_fmt = kwargs.pop("pix_fmt", None) or like_chroma(output_subsampling(info.pix_fmt, info.chroma_subsampling),
                                                             width, height)
        if deep and info.bit_depth > 8:  # keep the source's depth (10-bit in 10-bit out) where the encoder can
            pix_fmt = {"yuv420p": "yuv420p10le", "yuv422p": "yuv422p10le", "yuv444p": "yuv444p10le"}.get(pix_fmt, pix_fmt)
        colour = source_tags(info.colour, info.pix_fmt)
        return cls(path, width=width, height=height, time_base=info.time_base, fps=info.fps,
                   pix_fmt=pix_fmt, colour=colour, rotation=info.rotation, mirror_matrix=info.mirror_matrix,
                   copy_from=(feed or info.path) if ((audio and info.has_audio) or (subtitles and info.has_subtitles)
                                           or (data and info.has_data)
                                           or (attachments and info.has_attachments)) else None,
                   audio=audio, subtitles=subtitles, data=data, attachments=attachments,
                   tags=info.tags, video_tags=info.video_tags, chapters=info.chapters, hdr=info.hdr,
                   sample_aspect_ratio=info.sample_aspect_ratio, source_start_s=info.start_s, **kwargs)

    def _start_at_zero(self, video_start_s: Fraction) -> None:
        """Move the output's 0 to the source's start: the earliest of its video's and its copied
        tracks' (an audio track that starts first keeps its lead over the picture)."""
        copied = self._passthrough.start_s if self._passthrough is not None else None
        origin = video_start_s if copied is None else min(video_start_s, copied)
        if origin:  # a source that starts at 0 is written exactly as it is
            self._origin_s = origin
            self._pts_offset = round(origin / self.time_base)
            if self._passthrough is not None:
                self._passthrough.set_origin(origin)

    @property
    def audio_packets(self) -> int:
        return self._passthrough.audio_packets if self._passthrough else 0

    @property
    def subtitle_packets(self) -> int:
        return self._passthrough.subtitle_packets if self._passthrough else 0

    @property
    def data_packets(self) -> int:
        return self._passthrough.data_packets if self._passthrough else 0

    @property
    def skipped(self) -> list[str]:
        """Tracks of ``copy_from`` this container cannot hold, left out (SubRip in MP4, telemetry in MKV), and
        the picture's rotation where the container holds none."""
        return [*([self._turn_left_out] if self._turn_left_out else []),
                *(self._passthrough.skipped if self._passthrough else [])]

    @property
    def converted(self) -> list[str]:
        """Audio tracks this container cannot hold as they are, re-encoded (AAC in WebM), and frames
        repeated to keep the timing of a source with gaps in a container without times (YUV4MPEG)."""
        repeats = ([f"{self.repeated_frames} frames repeated to keep the timing: {self._kind} holds one frame "
                    "after another, at one rate, where the source has gaps"] if self.repeated_frames else [])
        return [*(self._passthrough.converted if self._passthrough else []), *repeats]

    def align_copied(self, source_s: float) -> None:
        """Tracks copied from a live source's feed: the time ``source_s`` on its clock is this file's 0.
        Call before the frame that fixes it is written (a live recording's first one)."""
        if self._passthrough is not None:
            self._passthrough.align(source_s)

    def follow_copied(self, feed: PacketFeed | None) -> None:
        """Tracks copied from a live source that was opened again: they go on from ``feed`` (None: they
        stop), once :meth:`align_copied` has tied its new clock to this file's."""
        if self._passthrough is not None:
            self._passthrough.follow(feed)

    def __enter__(self) -> "FrameWriter":
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close(complete=exc_type is None)

    def write(self, image: np.ndarray, *, pts: int, duration: int | None = None) -> None:
        """Encode one frame at ``pts`` (``time_base`` units, strictly increasing). ``duration``: how
        long it shows (``time_base`` units; :attr:`DecodedFrame.duration`), which the last frame
        keeps (None: as long as the frame before it); the others last until the next one."""
        rows = self.height * 3 // 2 if self.layout == "i420" else self.height
        wanted = np.uint16 if self.deep and self.layout == "rgb" else np.uint8
        if not isinstance(image, np.ndarray) or image.dtype not in (np.uint8, wanted):
            got = image.dtype if isinstance(image, np.ndarray) else type(image).__name__
            raise FrameError(f"frames to write must be {np.dtype(wanted).name} arrays, got {got}")
        if self._last_pts is not None and pts <= self._last_pts:
            raise FrameError(f"frame pts {pts} is not after the previous frame's {self._last_pts}: "
                             "timestamps must increase (the muxer would refuse it only at the end)")
        # how long this frame shows, in time_base units: its own duration, else as long as the one before
        lasts = duration if duration else (int(pts) - self._last_pts if self._last_pts is not None else 0)
        self._last_pts = int(pts)
        if image.shape[:2] != (rows, self.width):
            # the encoder would read a wrong-sized frame with the stream's size: a silent crop
            raise EncodeError(f"frame of {image.shape[1]}x{image.shape[0]} does not fit the {self.width}x{self.height} "
                              f"stream of {self.shown}")
        frame = self._to_frame(image)
        pts = int(pts) - self._pts_offset
        last_slot = self._last_slot
        frame.pts, frame.time_base = self._slot(pts) if self._slot_rate else (pts, self.time_base)
        with self._lock:
            if self._closed:
                raise EncodeError(f"{self.shown} is already closed")
            try:
                self._repeat_before(frame, last_slot)
                self._empty_slots_before(frame.pts if self._slot_rate else 0)
                # (a one-rate container counts slots: there the last frame lasts as the one before it)
                self._timing.send(frame, duration=None if self._slot_rate else duration)
                self._previous = frame
                self.frames_written += 1
                self._last_start_s = float(pts * self.time_base)
                self._last_end_s = float((pts + lasts) * self.time_base)
                if self._passthrough is not None:
                    self._passthrough.copy(until_s=self._last_start_s)
            except av.FFmpegError as err:
                if self._closed_pipe(err):
                    raise self._pipe_closed() from err
                raise EncodeError(f"encoding frame {self.frames_written} of {self.shown} failed: "
                                  f"{' '.join(str(err).split())}") from err

    def _repeat_before(self, frame: av.VideoFrame, last_slot: int) -> None:
        """YUV4MPEG holds one frame after another, no times: a gap in the source's (tree.avi: 68 frames
        over 29.5 s) would play 6.5× too fast. The frame before it is shown again in the empty slots,
        as the ffmpeg tool's constant-rate output does; counted for a warning."""
        if self._container.format.name != "yuv4mpegpipe" or self._previous is None:
            return
        for slot in range(last_slot + 1, frame.pts):
            again = self._previous.reformat()  # a frame of its own: the encoder may keep the one it was given
            again.pts, again.time_base = slot, frame.time_base
            self.repeated_frames += 1
            self._timing.repeat(again)

    def _empty_slots_before(self, slot: int) -> None:
        """Keep the first frame of an AVI in its slot: the muxer fills a gap between frames with empty chunks,
        but none before the first, which went to slot 0 with a slot's gap after it (a --start between two
        frames, or sound that starts before the picture, put it up to a slot early and the second frame a
        slot late). An empty chunk in slot 0 starts the count; the muxer then fills up to the frame."""
        if slot <= 0 or self.frames_written or self._container.format.name != "avi":
            return
        assert self._slot_rate is not None
        empty = av.Packet(b"")
        empty.stream, empty.time_base = self._stream, 1 / self._slot_rate
        empty.pts = empty.dts = 0
        self._container.mux(empty)

    def _slot(self, pts: int) -> tuple[int, Fraction]:
        """A frame's slot in a one-rate container: its time rounded to the rate (halves up: Python's round()
        sends them to the even slot, so frames half a slot off it went to 0, 2, 3, 4..., a slot missing after
        the first), after the last slot (two frames of a variable-rate source closer than 1 / rate would share
        one, which the muxer refuses)."""
        assert self._slot_rate is not None
        self._last_slot = max(math.floor(pts * self.time_base * self._slot_rate + Fraction(1, 2)), self._last_slot + 1)
        return self._last_slot, 1 / self._slot_rate

    def resume_from(self, partial: str | Path, *, name: str | Path | None = None,
                    made_by: str | None = None, first_s: float | None = None,
                    source_times: Callable[[int], Sequence[float]] | None = None) -> tuple[int, float | None]:
        """Begin this still empty file with every video frame of ``partial`` (an interrupted run's
        output of the same source, made with the same settings), remuxed as they are: no decode, no
        re-encode, audio and subtitles interleaved up to them. Returns the frames copied and the last
        one's time in the source's seconds (its time here plus what this writer moves the source
        back by: ``window``, ``source_start_s``). OutputError when ``partial`` cannot be read or was
        encoded otherwise (another encoder, size, pixel format or encoder settings: its stream header differs).
        ``name``: what errors call ``partial`` (the output it was moved aside from). ``made_by``: what
        this run writes its frames with; a ``partial`` marked as made otherwise (another model, or
        deinterlaced where this run is not) is refused, since its frames would not match the rest.
        ``first_s``: the source's first frame time. A muxer may have moved every time in ``partial``
        (Matroska by the audio's priming delay, 21 ms for AAC; MPEG-TS by its 1.4 s start), and
        would move them again here: its frames are put back on the times this writer gives the
        source's first. ``source_times(n)``: the source's first
        ``n`` frame times in seconds, which tell a file cut mid group of frames at a variable rate."""
        def refuse(why: str) -> OutputError:
            return OutputError(f"cannot resume {name or partial}: {why}; run without --resume to start again")

        with self._lock:
            if self.frames_written or self._closed:
                raise ValueError("resume_from needs a writer that has written nothing")
            try:
                source = av.open(ffmpeg_name(partial), "r", metadata_errors="replace")
            except av.FFmpegError as err:
                # only an MP4/MOV written whole keeps its index to the end; a fragmented one or another
                # container left by a kill before its first frame has no frame to go on from
                hint = (" (an MP4 of a run killed outright has no index; --fragmented avoids that)"
                        if not self._fragmented and self._container.format.name in MOV_MUXERS else "")
                raise refuse(f"it is not a readable video: {short_error(err)}{hint}") from err
            with source:
                video = pick_video_stream(source)
                if video is None:
                    raise refuse("it has no video stream")
                if video.codec_context is None:  # a damaged header: FFmpeg cannot tell its codec
                    raise refuse("FFmpeg cannot tell the codec of its video stream (a damaged header)")
                mine = self._stream.codec_context
                if why := why_not_resumable(video, mine, width=self.width, height=self.height, pix_fmt=self.pix_fmt,
                                            made_by=made_by):
                    raise refuse(why)
                to_annex_b = annex_b_filter(video, mine)
                last_s: float | None = None
                lasts_s = 0.0  # how long the last frame (by time) shows
                moved: int | None = None  # how far the muxer moved the partial's times, in its time base
                # a file cut mid-group of frames (a failed write) is kept up to where none is missing
                whole = resumable_packets(partial, source_times=source_times, first_s=first_s, origin_s=self._origin_s)
                packets = itertools.islice(intact_packets(source, video, to_annex_b), whole)
                try:
                    for packet in with_decode_times(packets, frame_step(video)):
                        if moved is None:  # the first packet (a keyframe, the first shown): the file's start
                            moved = moved_by(packet.pts, first_s, self._origin_s, video)
                        if moved:
                            packet.pts -= moved
                            packet.dts = packet.dts - moved if packet.dts is not None else None
                        packet.stream = self._stream
                        if self._slot_rate and packet.dts is not None and packet.time_base is not None:
                            self._empty_slots_before(round(packet.dts * packet.time_base * self._slot_rate))
                        self._timing.copy(packet)
                        self.frames_written += 1
                        start_s = float(packet.pts * packet.time_base)
                        if last_s is None or start_s > last_s:
                            last_s, lasts_s = start_s, float((packet.duration or 0) * packet.time_base)
                        if self._passthrough is not None:
                            self._passthrough.copy(until_s=last_s)
                except av.FFmpegError as err:
                    raise refuse(f"copying its frame {self.frames_written} failed: {short_error(err)}") from err
            self._last_start_s = last_s or 0.0
            self._last_end_s = self._last_start_s + lasts_s
            self.resumed_frames, self.resumed_until_s = self.frames_written, last_s
            return self.frames_written, None if last_s is None else last_s + float(self._origin_s)

    def close(self, *, complete: bool = True) -> None:
        """Flush the encoder, copy the rest of the audio (only up to the last video frame when
        ``complete`` is False, i.e. an interrupted run) and write the trailer. Idempotent. A file
        that received no frame at all is deleted rather than left behind unplayable."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            failed: av.FFmpegError | None = None
            try:
                if self.frames_written:
                    self._timing.finish()
                if self._passthrough is not None:
                    # interrupted: the sound of every frame written, to the last one's end (a packet that
                    # begins there is the next frame's; a resume copies the sound anew from the source)
                    self._passthrough.copy(until_s=None if complete else max(self._last_start_s,
                                                                             self._last_end_s - 1e-6))
                    self._passthrough.finish()
            except av.FFmpegError as err:
                failed = err
            finally:
                try:
                    self._container.close()  # the trailer (and a pipe's last bytes) are written here
                except av.FFmpegError as err:
                    failed = failed or err
                if self._passthrough is not None:
                    self._passthrough.close()
                if not self.frames_written and not self._stream_url and not self._pipe:
                    Path(self.path).unlink(missing_ok=True)
            if failed is not None:
                if self._closed_pipe(failed):
                    raise self._pipe_closed() from failed
                raise EncodeError(f"finishing {self.shown} failed: {' '.join(str(failed).split())}") from failed
            if self.frames_written and not self._stream_url and not self._pipe and not Path(self.path).exists():
                # written into a file no folder lists any more: "wrote out.mp4" and exit 0 left nothing
                raise OutputError(f"{self.shown} was deleted (or its folder removed) while it was written: "
                                  f"its {self.frames_written} frames are lost")

    # --- helpers ---------------------------------------------------------------------------------
    def _choose_format(self, encoder: str, pix_fmt: str | None) -> None:
        """The encoder (for this container: :func:`choose_encoder`) and the pixel format it takes."""
        width, height = self.width, self.height
        self.encoder_name = choose_encoder(encoder, width=width, height=height, container=self._container.format.name,
                                           deep=pix_fmt is not None and is_deep(pix_fmt))
        # picked as the container's own codec, H.264 not fitting it (see _write_header)
        self._containers_own = encoder == "auto" and not takes(self._container.format.name, SOFTWARE_ENCODER)
        if (self._containers_own and av.Codec(self.encoder_name, "w").canonical_name in _COVER_CODECS
                and not takes(self._container.format.name, self.encoder_name)):
            # a cover picture's codec, taken only beside sound: a clip with audio into .mp3 kept its
            # first frame as the cover, every other frame lost, and the run said it wrote them all
            raise self._holds_no_video()
        try:
            self.pix_fmt = encodable_pix_fmt(self.encoder_name, pix_fmt or like_chroma((2, 2), width, height),
                                             width=width, height=height)
        except EncodeError as err:
            if encoder != "auto":
                raise
            # the container's own codec (GIF's palette images) cannot take video frames as they are
            raise OutputError(f"{self._kind} files are not supported for video output "
                              f"({self.encoder_name} takes no YUV or RGB frames); use .mp4, .mkv, .mov or .webm") from err
        # More than 8 bits per sample (a 10-bit source into an encoder that takes it): write() then
        # takes uint16 RGB frames.
        self.deep = is_deep(self.pix_fmt)
        codec = av.Codec(self.encoder_name, "w")
        self.lossless = codec.lossless and not codec.lossy  # ffv1, huffyuv...: no quality to set

    def _add_video_stream(self, fps: Fraction | None, crf: int, preset: str, threads: int,
                          rotation: int, mirror_matrix: Sequence[int] | None = None) -> av.video.stream.VideoStream:
        rate = Fraction(fps).limit_denominator(1_000_000) if fps else None
        if rate:  # MPEG-1/2 video state one rate of a table: the nearest, else a refusal that names them
            rate = coded_rate(self.encoder_name, rate, self._container.format.name)
        try:
            stream = self._container.add_stream(self.encoder_name, rate=rate)
        except ValueError as err:  # PyAV checks the container can hold the codec
            if self._containers_own:
                raise self._holds_no_video() from err
            other = "" if self._stream_url else " (or use another --encoder)"  # a URL's advice is the encoder
            raise OutputError(f"{self._kind}: {err}; {self._where_else('use .mp4, .mkv or .mov')}{other}") from err
        if not carries(self._container.format.name, self.encoder_name):  # MPEG-TS: written as data, no video
            # a stream URL's muxer follows its scheme: no file suffix changes it, only the encoder does
            where, fix = ((f"{self.shown} ({self._kind})", "use --encoder libx264") if self._stream_url
                          else (self._kind, f"{self._where_else('use .mkv')}, or --encoder libx264"))
            raise OutputError(f"{where} cannot carry {self.encoder_name}'s video (it would be written as a "
                              f"track no player reads as video); {fix}")
        stream.width, stream.height, stream.pix_fmt = self.width, self.height, self.pix_fmt
        stream.time_base = self.time_base
        # YUV4MPEG and AVI hold frames at one rate, not times (YUV4MPEG's header states its rate as 1 /
        # the time base; an AVI given a fine time base claimed 600 fps): frames go in as slots of 1 / rate
        # MPEG-1/2 video codes one rate too (its header holds one of a table's), and would not open at a fine time base
        one_rate = (self._container.format.name in ONE_RATE_MUXERS
                    or stream.codec_context.codec.canonical_name in _ONE_RATE_CODECS)
        self._slot_rate = rate if one_rate and rate else None
        if self._slot_rate:
            stream.time_base = 1 / self._slot_rate
        if stream.codec_context.codec.canonical_name == "hevc" and self._container.format.name in ("mp4", "mov"):
            stream.codec_tag = "hvc1"  # Apple's players (QuickTime, Photos, iOS) play HEVC tagged so, not hev1
        ctx = stream.codec_context
        ctx.time_base = 1 / self._slot_rate if self._slot_rate else self.time_base  # else the source's pts unchanged (VFR-safe)
        if self._sar:  # non-square pixels: without it anamorphic footage plays squeezed
            ctx.sample_aspect_ratio = self._sar
        c = self.colour
        if c.colorspace != AVCOL_SPC_UNSPECIFIED:
            ctx.colorspace = c.colorspace
        if c.color_range != AVCOL_RANGE_UNSPECIFIED:
            ctx.color_range = c.color_range
        if c.color_primaries != AVCOL_PRI_UNSPECIFIED:
            ctx.color_primaries = c.color_primaries
        if c.color_trc != AVCOL_TRC_UNSPECIFIED:
            ctx.color_trc = c.color_trc
        private = private_options(ctx)
        hdr = self._hdr.x265_params() if self._hdr is not None and self.deep else ""  # HDR10 needs 10 bits
        ctx.options = encoder_options(self.encoder_name, private, crf=crf, preset=preset, x265_params=hdr)
        self.quality_control = next((k for k in ("crf", "cq", "qmax") if k in ctx.options), None)
        self.speed_control = next((k for k in ("preset", "deadline") if k in ctx.options), None)
        self.hdr_kept = bool(hdr) and "x265-params" in ctx.options
        if self._live:
            # A live stream is watched as it comes: no look-ahead or B-frames to wait for, and a
            # keyframe every two seconds so a viewer who joins late sees a picture within two.
            ctx.max_b_frames = 0
            ctx.gop_size = max(1, round(2 * float(fps))) if fps else 60
            if self.encoder_name in ("libx264", "libx265"):
                ctx.options = {**ctx.options, "tune": "zerolatency"}
            elif self.encoder_name.endswith("_nvenc"):  # not measured: the GPU machines have no NVENC
                ctx.options = {**ctx.options, "tune": "ull", "zerolatency": "1"}
        if self._fragmented:
            # A fragmented file has no edit list to hide B-frames' reorder delay: its first frame
            # would start one or two frames late. Without B-frames every timestamp is exact.
            ctx.max_b_frames = 0
        self._last_as_keyframe = last_frame_as_keyframe(self._container.format.name, ctx.codec,
                                                        fragmented=self._fragmented)
        if self._last_as_keyframe and "forced-idr" in private:
            # x265 (open GOP) made a forced keyframe a CRA that the B-frames before it were decoded after
            ctx.options = {**ctx.options, "forced-idr": "1"}
        if self._container.format.name in _NO_REORDER_MUXERS:
            # AVI stores frames in decode order with no presentation times: B-frames came back with
            # their timestamps scrambled (24, 96, 72, 120, 48...), as they did from ASF (.wmv: 0.04,
            # 0.16, 0.12, 0.2, 0.08...); x264 in MXF lost a frame's time (0, 0.04, 0.12, 0.16...)
            ctx.max_b_frames = 0
        if self._container.format.name in _GUESSED_PTS_MUXERS and self.encoder_name in ("libx264", "libx264rgb"):
            ctx.options = {**ctx.options, "x264-params": _timing_sei_params(self.width, self.height)}
        if self.encoder_name == SOFTWARE_ENCODER:
            ctx.thread_type = "SLICE" if self._live else "FRAME"  # frame threads hold frames back: latency
            ctx.thread_count = threads
        # the picture players show first (Matroska marked it not default, beside copied sound marked so)
        stream.disposition = av.stream.Disposition.default
        if mirror_matrix:  # a turn and a flip: the source's matrix as it is (an angle cannot say the flip)
            stream.set_display_matrix(list(mirror_matrix))
        elif rotation:
            stream.set_display_rotation(rotation)
        if (mirror_matrix or rotation % 360) and self._container.format.name not in _TURNING_MUXERS:
            # a phone's portrait clip played on its side, and the run said nothing
            turn = "rotation and mirroring" if mirror_matrix else f"rotation ({rotation % 360}°)"
            self._turn_left_out = (f"the picture's {turn}: {self._kind} holds none, so players show the picture as "
                                   "stored; .mp4, .mkv, .mov and .webm keep it")
        said: list[str] = []
        try:
            with ffmpeg_errors_said() as said:
                ctx.open()  # fail now, before any frame is decoded, if this encoder cannot run here
        except (av.FFmpegError, ValueError) as err:
            hint = "" if self.encoder_name == SOFTWARE_ENCODER else "; try --encoder libx264"
            # FFmpeg's reason where it gave one: the exception's text was 'avcodec_open2(...)' and its options
            why = "; ".join(said[-2:]) if said else short_error(err)
            raise EncodeError(f"cannot open encoder {self.encoder_name} for {self.width}x{self.height} "
                              f"{self.pix_fmt}: {why}{hint}") from err
        return stream

    def _write_header(self) -> None:
        """Write the container header now, so a container that cannot hold these streams (H.264 in
        WebM, say) fails before any frame is decoded."""
        try:
            self._container.start_encoding()
        except (av.FFmpegError, ValueError, OSError) as err:
            if self._closed_pipe(err):
                raise self._pipe_closed() from err
            if self._stream_url and isinstance(err, av.ProtocolNotFoundError):  # srt:// without libsrt
                scheme = str(self.path).partition("://")[0]
                raise OutputError(f"cannot send to {self.shown}: this FFmpeg build (PyAV's) has no {scheme}:// "
                                  "protocol; use udp:// or tcp:// (MPEG-TS), rtmp:// or rtsp://") from err
            if self._stream_url:  # the connection is made here: a server that is not there, or refuses
                raise OutputError(f"cannot send to {self.shown}: {short_error(err)} (is a server listening there, "
                                  "and does it take this stream?)") from err
            opened = re.search(r'avcodec_open2\("([^"]+)"', str(err))
            if opened and opened.group(1) != self.encoder_name:  # an audio re-encode, not the container
                raise OutputError(f"cannot re-encode the input's audio as {opened.group(1)} for {self._kind} "
                                  f"({' '.join(str(err).split())}); use .mkv, which holds it as it is, or "
                                  "--no-audio") from err
            if self._containers_own and not takes(self._container.format.name, self.encoder_name):
                raise self._holds_no_video() from err
            streams = " + ".join([self.encoder_name, *(self._passthrough.describe() if self._passthrough else [])])
            raise OutputError(f"{self._kind} files cannot hold {streams} ({' '.join(str(err).split())}); "
                              f"{self._where_else('use .mkv, which holds most codecs')}") from err

    def _holds_no_video(self) -> OutputError:
        """The refusal of a container that takes neither H.264 nor its own video codec (an .mp3's or
        .flac's PNG, which only a cover picture may be): naming that codec told the user "png goes in
        .mp4 or .mov", and FFmpeg's "Invalid argument" said nothing more."""
        own = "" if self.encoder_name == SOFTWARE_ENCODER else f", nor {self.encoder_name}, the format's own"
        return OutputError(f"{self._kind} files cannot hold a video track videodeblur writes (not H.264{own}: "
                           "an audio format); use .mp4, .mkv, .mov or .webm")

    def _where_else(self, otherwise: str) -> str:
        """Where the encoder's video can go instead, asked of the containers (a fixed list told a .mov
        user to use .mov); ``otherwise`` when this one holds it too (the other streams do not fit). A
        stream URL's muxer follows its scheme (rtmp:// is FLV), so no file suffix helps it: the encoder does."""
        if self._stream_url:
            return f"{self.shown} is sent as {self._kind} whatever the encoder: use --encoder libx264"
        fits = containers_for(self.encoder_name)
        if not fits:  # none holds it: naming containers that do not either sent a .mkv user to .mkv
            return "no container videodeblur writes holds it"
        if self._kind in fits:
            return otherwise
        if self._pipe:  # standard output: the --format to ask for (a file suffix told nothing there)
            formats = [ext[1:] for ext in fits if ext[1:] in PIPE_FORMATS]
            return f"{self.encoder_name} goes in --format {_either(formats)}" if formats else otherwise
        return f"{self.encoder_name} goes in {_either(fits)}"

    def _closed_pipe(self, err: BaseException) -> bool:
        """Whether ``err`` is the reader of standard output or of a named pipe having gone away (EPIPE),
        not a failure here."""
        return (self._pipe or self._named_pipe) and getattr(err, "errno", None) == errno.EPIPE

    def _pipe_closed(self) -> EncodeError:
        where = f"the named pipe {self.shown}" if self._named_pipe else "standard output"
        return EncodeError(f"{where} was closed after {self.frames_written} frames: the program reading it stopped")

    def _to_frame(self, image: np.ndarray) -> av.VideoFrame:
        if self.layout == "i420":
            frame = av.VideoFrame.from_ndarray(image, format="yuv420p")
            if self._i420_converted:
                frame = self._sws.reformat(frame, format=self.pix_fmt, src_colorspace=self._i420_colourspace,
                                           src_color_range=self._i420_range, dst_colorspace=self._sws_colorspace,
                                           dst_color_range=self._sws_range, interpolation=_FROM_RGB)
            frame.colorspace = self.colour.colorspace
            frame.color_range = self.colour.color_range
        else:  # an odd size at 4:2:0 or 4:2:2 in whole chroma blocks, cropped after
            frame = in_whole_blocks(image, self.pix_fmt, self._from_rgb)
        _tag_frame(frame, self.colour)
        return frame

    def _from_rgb(self, image: np.ndarray) -> av.VideoFrame:
        if self._exact_full_range:
            return _yuv_frame(image, self.pix_fmt, self.colour)
        rgb = av.VideoFrame.from_ndarray(image, format="rgb48le" if image.dtype == np.uint16 else "rgb24")
        # The same matrix and range the reader used to make RGB, so colours round-trip.
        return self._sws.reformat(rgb, format=self.pix_fmt, dst_colorspace=self._sws_colorspace,
                                  dst_color_range=self._sws_range, interpolation=_FROM_RGB)


# Exact rounding, and chroma as the mean of each 2×2 block (as the device path's ``rgb_to_i420``):
# swscale's default biased chroma by a tenth of a level and rounded less exactly.
# PyAV < 18 has no name for SWS_ACCURATE_RND but passes the number on to swscale.
_FROM_RGB = int(av.video.reformatter.Interpolation.AREA) | int(getattr(av.video.reformatter.Interpolation,
                                                                       "ACCURATE_RND", 0x40000))


def _takes_exact_full_range(pix_fmt: str, colour: ColourTags) -> bool:
    """Whether frames go to full-range planar YUV of 8, 10 or 12 bits, which swscale writes with chroma
    half a level low (``rgb_to_yuv_planes``; a 10-bit grey's at 511): those are converted here instead
    (odd sizes too: in whole blocks)."""
    fmt = av.VideoFormat(pix_fmt)
    bits = fmt.components[0].bits
    return not (colour.color_range != AVCOL_RANGE_JPEG or fmt.is_rgb or len(fmt.components) != 3
                or bits not in (8, 10, 12) or (bits > 8 and fmt.is_big_endian)
                or any(c.bits != bits or c.plane != i for i, c in enumerate(fmt.components)))


def _yuv_frame(rgb: np.ndarray, pix_fmt: str, colour: ColourTags) -> av.VideoFrame:
    """A ``pix_fmt`` frame of RGB (uint8, or uint16 at 256 a level), converted exactly (``rgb_to_yuv_planes``)."""
    frame = av.VideoFrame(rgb.shape[1], rgb.shape[0], pix_fmt)
    chroma = frame.planes[1]
    planes = rgb_to_yuv_planes(rgb, yuv_matrix(colour), (chroma.height, chroma.width),
                               bits=frame.format.components[0].bits)
    for plane, values in zip(frame.planes, planes):
        padded = np.zeros((plane.height, plane.line_size), np.uint8)  # rows are line_size apart
        padded[:, :plane.width * values.itemsize] = values.astype(values.dtype.newbyteorder("<")).view(np.uint8)
        plane.update(padded)
    frame.colorspace = colour.colorspace
    frame.color_range = colour.color_range
    return frame


# the codec of a cover picture, the only video an audio format (.mp3, .flac, .aiff) holds, which is
# its "own" video codec (MJPEG is not: .mjpeg is a video, and pictures' own)
_COVER_CODECS = frozenset({"png"})
# codecs whose stream codes one frame rate, not times: written as slots of 1 / rate, as ONE_RATE_MUXERS are
_ONE_RATE_CODECS = frozenset({"mpeg1video", "mpeg2video"})
# muxers that store a video's display matrix (its rotation); AVI, MPEG-TS, NUT, FLV, MXF, MPEG-PS, Ogg and ASF
# dropped it (measured: a 90° clip into each read back 0°)
_TURNING_MUXERS = MOV_MUXERS | {"matroska", "webm"}
# muxers that cannot give B-frames back their presentation times
_NO_REORDER_MUXERS = frozenset({"avi", "asf", "asf_stream", "mxf", "mxf_d10", "mxf_opatom"})


# muxers that store no presentation times, where FFmpeg's demuxer guesses H.264's as the next frame's
# decode time (one frame late at a constant rate; tree.avi's frames up to 0.73 s late) unless each
# picture carries its own in a timing SEI, which x264 writes only with HRD (VBV) parameters
_GUESSED_PTS_MUXERS = frozenset({"avi", "asf", "asf_stream"})


def _timing_sei_params(width: int, height: int) -> str:
    """x264 parameters that put picture timing SEI in every frame: HRD with a VBV at level 4.1's
    High-profile limits (5.1's above 1080p), high enough not to cap --crf's bitrate in practice;
    x264 then labels the stream level 4.1 (5.1), which any H.264 player of that size decodes."""
    rate, buffer = (62500, 78125) if width * height <= 1920 * 1088 else (300000, 300000)
    return f"nal-hrd=vbr:vbv-maxrate={rate}:vbv-bufsize={buffer}"


def _tag_frame(frame: av.VideoFrame, colour: ColourTags) -> None:
    """Give ``frame`` the stream's primaries and transfer: an encoder that writes the frame's own into
    each picture (ProRes) wrote them unspecified, and a BT.709 source's ProRes lost both."""
    try:
        if colour.color_primaries != AVCOL_PRI_UNSPECIFIED:
            frame.color_primaries = colour.color_primaries
        if colour.color_trc != AVCOL_TRC_UNSPECIFIED:
            frame.color_trc = colour.color_trc
    except AttributeError:  # PyAV < 18 has neither: the stream's tags stay
        pass


def _either(options: Sequence[str]) -> str:
    """``a``, ``a or b``, ``a, b or c``."""
    return options[0] if len(options) == 1 else f"{', '.join(options[:-1])} or {options[-1]}"
