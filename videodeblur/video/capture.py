"""Live sources for the camera command: webcams, network streams, lavfi test sources, and files
played back as if they were a camera.

Every source yields :class:`CapturedFrame` objects whose ``capture_time`` is ``time.monotonic()``
taken at the moment the frame was grabbed (seconds), so latency is measured from the grab, not from
when the processing loop got round to the frame.

Which library opens what (see DESIGN.md): the PyAV wheel has no v4l2 input, so webcams (an index
such as ``0`` or a ``/dev/videoN`` path) open with OpenCV's ``VideoCapture``; network streams
(``rtsp://``, ``http://`` ...), lavfi graphs (``testsrc2=size=640x360:rate=30`` or
``lavfi:GRAPH``) and files open with PyAV.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import errno
import os
import re
import stat
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import cv2  # before av: a later cv2.imshow freezes if av was imported first (DESIGN.md)
import av
import numpy as np

from videodeblur.errors import ConfigError, SourceError, short_error
from videodeblur.paths import check_nameable
from videodeblur.video.feed import PacketFeed
from videodeblur.video.inputs import ENDS_BEFORE_FIRST_FRAME, opened_aside
from videodeblur.video.locations import is_url, redacted, scheme_not_read
from videodeblur.video.streams import pick_video_stream

if TYPE_CHECKING:  # colour loads torch (info and output_format import it): imported where a source is read,
    # so that `camera` says a mistyped --source before torch loads
    from videodeblur.video.colour import ColourTags

__all__ = ["CapturedFrame", "CaptureOptions", "LiveSource", "OpenCVCameraSource", "PyAVSource", "open_source"]

_OPEN_TIMEOUT_S = 10.0
_READ_TIMEOUT_S = 5.0
_CAMERA_FAILED_READS = 5  # consecutive failed grabs or decodes before a camera counts as unplugged
_CLOCK_JUMP_S = 10.0  # a live stream's timestamps moving this far from where they were due jumped (ffmpeg's)
_CLOCK_BACK_S = 0.1  # ... or going back this far
STANDARD_INPUT = "standard input"  # what `--source -` is called: no name to quote, and not /dev/stdin


@dataclasses.dataclass(frozen=True)
class CapturedFrame:
    """One grabbed frame: ``image`` is H×W×3 uint8 RGB; ``capture_time`` is monotonic seconds at grab.
    ``stream_s``: its time on the source's own clock, where it has one (a stream's pts), by which a
    recording puts the source's sound in step with it. ``run``: which opening of the source it came
    from (0, then one more at each reconnect)."""

    image: np.ndarray
    index: int
    capture_time: float
    stream_s: float | None = None
    run: int = 0


@dataclasses.dataclass(frozen=True)
class CaptureOptions:
    """How to open a source.

    ``realtime`` paces a file source to its own timestamps (a stand-in for a camera); without it a
    file is read in lockstep with the consumer and nothing is dropped. A URL is paced the same way
    with ``realtime``: a live stream arrives at its own pace anyway, but a clip served over HTTP
    would otherwise be read as fast as it downloads and most of its frames dropped as stale.
    lavfi sources are always paced, cameras pace themselves. ``width``/``height``/``fps`` are requests to
    a webcam (the driver may pick the nearest mode it has); ``None`` keeps the camera's default.
    ``fourcc``: the pixel format asked of a webcam (``MJPG``, ``YUYV``...); None: ``MJPG`` when a
    size is asked for, because most USB webcams send uncompressed YUYV at 1080p at about 5 fps (USB
    2.0 cannot carry more) and MJPEG at 30; a camera without it keeps its own format.
    """

    realtime: bool = False
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    fourcc: str | None = None
    open_timeout_s: float = _OPEN_TIMEOUT_S  # how long a network source may take to answer
    pipe_wait_s: float | None = None  # ... and a pipe to send (None: as long as its producer lives)

    def __post_init__(self) -> None:
        for name in ("width", "height", "fps"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"CaptureOptions.{name} must be positive, got {value}")
        if self.fourcc is not None and len(self.fourcc) != 4:
            raise ConfigError(f"{self.fourcc!r} is not a four-character code such as MJPG or YUYV")

    @property
    def requested_fourcc(self) -> str | None:
        """The pixel format to ask a webcam for, if any (see the class doc)."""
        return self.fourcc or ("MJPG" if self.width or self.height else None)


class LiveSource:
    """A frame source opened and validated (one frame decoded) by :func:`open_source`.

    ``drops_allowed`` is True for sources that run on their own clock (cameras, streams, paced
    files): the consumer keeps only the newest frame. It is False for a file read in lockstep.
    """

    description: str
    width: int
    height: int
    fps: float | None
    drops_allowed: bool
    path: Path | None = None  # the file read, when the source is one (a recording may not overwrite it)
    paceable: bool = False  # a file or a URL: --realtime paces it (cameras and lavfi keep their own pace)
    rotation: int = 0  # degrees a player turns the picture counter-clockwise (a phone's clip), as PyAV reads it
    # what a recording must say of the pictures (as the file command keeps them): the source's colour
    # tags where it has a matrix (its RGB is in its own primaries and transfer), and its pixel shape
    colour: ColourTags | None = None
    sample_aspect_ratio: Fraction | None = None
    live: bool = False  # a camera or network stream: it should never end, so its end is a loss
    # a file (played at its own pace, or read in step with the model): its path and its first
    # frame's time (seconds), so a recording can carry its sound in step with the frames
    audio_from: tuple[Path, float] | None = None
    sound_left_out: str | None = None  # why a recording cannot carry the source's sound, if it has sound
    note: str | None = None  # what the user should know of how it is read, said once at the start
    # a paced source (a file played at its own pace, a lavfi graph) waits on purpose, until this
    # monotonic time, for its next frame's time: a still held for seconds is no stalled source
    paced_until: float = 0.0

    def frames(self, stop: threading.Event) -> Iterator[CapturedFrame]:
        """Yield frames until the source ends or ``stop`` is set; raise SourceError if it is lost."""
        raise NotImplementedError

    def take_audio(self) -> PacketFeed | None:
        """The source's sound as it is read from now on, for a recording (None: it has none to give;
        a file gives its path in ``audio_from`` instead)."""
        return None

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> "LiveSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_source(spec: str, options: CaptureOptions = CaptureOptions()) -> LiveSource:
    """Open ``spec``: a camera index (``0``), a device path (``/dev/video0``), a URL, a lavfi graph
    (``testsrc2=size=640x360:rate=30`` or ``lavfi:...``), a video file, or ``-`` (standard input).

    Raises SourceError, naming ``spec``, if it cannot be opened or delivers no first frame.
    """
    spec = spec.strip()
    shown = spec  # how messages and stats name it
    if not spec:
        raise SourceError("empty --source: give a camera index (0), /dev/videoN, a URL, a lavfi graph or a file")
    if spec == "-":  # the video piped in, as `video -` reads it
        if sys.stdin is None or sys.stdin.isatty() or not Path("/dev/stdin").exists():
            raise SourceError("--source -: nothing is piped in (give a camera index, a URL or a file, or pipe a video)")
        spec, shown = "/dev/stdin", STANDARD_INPUT  # named as the user knows it, as `video -` names it
    if why := scheme_not_read(spec):
        raise SourceError(f"source {redacted(spec)!r}: {why}")
    if spec.isdigit():
        return OpenCVCameraSource(int(spec), options)
    if spec.startswith("/dev/video"):
        return OpenCVCameraSource(spec, options)
    if is_url(spec):
        return PyAVSource(spec, description=redacted(spec), pace=options.realtime, fmt=None, network=True,
                          open_timeout_s=options.open_timeout_s)
    if spec.startswith("lavfi:"):
        return PyAVSource(spec[len("lavfi:"):], description=spec, pace=True, fmt="lavfi")
    path = Path(spec).expanduser()
    check_nameable(path, SourceError, "source {} not found")  # else exists() raised a bare OSError
    if not path.exists() and _is_lavfi_graph(spec):
        return PyAVSource(spec, description=f"lavfi:{spec}", pace=True, fmt="lavfi")
    if not path.exists():
        raise SourceError(f"source {spec!r} not found: give a camera index (0), /dev/videoN, a URL, "
                          "a lavfi graph (testsrc2=size=640x360:rate=30) or an existing video file")
    if path.is_dir():
        raise SourceError(f"source {spec!r} is a folder: give a video file")
    pipe = not _is_regular_file(str(path))
    source = PyAVSource(str(path), description=shown, pace=options.realtime, fmt=None,
                        open_timeout_s=options.pipe_wait_s if pipe else None)
    source.path = path
    if pipe:
        # a pipe (`ffmpeg -f v4l2 ... - | videodeblur camera --source -`) runs on its producer's clock,
        # as a camera does: stale frames are dropped. Read in step like a file, it queued them without
        # end (a 4 s feed took 10.7 s) while the latency, counted from each frame's turn, hid it
        source.drops_allowed = True
        if not options.realtime:
            source.note = (f"{shown} is a pipe, read as a live feed: frames the model is too slow for are dropped "
                           "(`videodeblur video -` keeps every frame)")
    return source


class OpenCVCameraSource(LiveSource):
    """A webcam through OpenCV (V4L2 on Linux). Frames are stamped right after ``grab()``."""

    def __init__(self, device: int | str, options: CaptureOptions = CaptureOptions()) -> None:
        self.description = f"camera {device}"
        self.drops_allowed = self.live = True
        with _quiet_opencv():  # its open() warnings would break the one-line error
            self._cap = cv2.VideoCapture(device, cv2.CAP_V4L2) if isinstance(device, str) else cv2.VideoCapture(device)
        if not self._cap.isOpened():
            self._cap.release()
            raise SourceError(f"cannot open {self.description}: check it is connected, not in use by another "
                              "program, and that you may read it (video group)")
        self._cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # fewer driver buffers = less stale frames
        if fourcc := options.requested_fourcc:  # before the size: the modes a format offers differ
            self._cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*fourcc))
        if options.width:
            self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, options.width)
        if options.height:
            self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, options.height)
        if options.fps:
            self._cap.set(cv2.CAP_PROP_FPS, options.fps)
        ok, first = self._cap.read()
        if not ok or first is None:
            self._cap.release()
            raise SourceError(f"{self.description} opened but delivered no frame: check the device")
        self.height, self.width = first.shape[:2]
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and fps > 0 else None

    def frames(self, stop: threading.Event) -> Iterator[CapturedFrame]:
        index = 0
        failures = 0
        while not stop.is_set():
            grabbed = self._cap.grab()
            capture_time = time.monotonic()
            ok, bgr = self._cap.retrieve() if grabbed else (False, None)
            if not ok or bgr is None:  # not grabbed, or grabbed and not decodable (corrupt MJPEG): one count
                failures += 1
                if failures >= _CAMERA_FAILED_READS:
                    raise SourceError(f"{self.description} stopped delivering frames (unplugged?)")
                stop.wait(0.01)
                continue
            failures = 0
            yield CapturedFrame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), index, capture_time)
            index += 1

    def close(self) -> None:
        self._cap.release()


class PyAVSource(LiveSource):
    """A file, network stream or lavfi graph decoded with PyAV.

    With ``pace`` the frames are released on their presentation schedule (first frame at the start
    of :meth:`frames`, then ``pts`` seconds after it), which turns a file or a free-running lavfi
    generator into a camera. The first frame is decoded at open time to validate the source.
    A network stream or lavfi graph with sound (an IP camera's microphone) hands its audio packets,
    read in the same pass as the video, to :meth:`take_audio`'s feed once a recording asks for it.
    A network stream whose format lets its clock jump (MPEG-TS, HLS) has its timestamps mended as
    they are read (:class:`_ClockMender`): a recording times its frames and sound by them.
    """

    def __init__(self, target: str, *, description: str, pace: bool, fmt: str | None,
                 network: bool = False, open_timeout_s: float | None = _OPEN_TIMEOUT_S) -> None:
        from videodeblur.video.colour import RgbConverter
        from videodeblur.video.info import frame_colour, pixel_shape
        from videodeblur.video.output_format import source_tags

        self.description = description
        self.drops_allowed = pace or network
        self.live = network
        self.paceable = fmt != "lavfi"
        self._pace = pace
        self._rgb = RgbConverter()  # exact YUV -> RGB, as the file reader's
        # low_delay: the decoder outputs each frame as soon as it can. Not "fflags nobuffer": it drops
        # the packets read while FFmpeg probes the stream (measured: 50 of 111 frames of an HTTP
        # MPEG-TS stream came through); buffered frames cost no latency here, because the capture
        # thread decodes them at once and the latest-frame slot keeps only the newest.
        options = {"flags": "low_delay"} if network else {}
        try:
            opening = functools.partial(av.open, target, format=fmt, options=options, metadata_errors="replace",
                                        timeout=(open_timeout_s, _READ_TIMEOUT_S) if network else None)
            # a pipe is waited for aside too, for open_timeout_s at most where that is set (--max-seconds)
            aside = network or (fmt is None and open_timeout_s is not None)
            self._container = opened_aside(opening, within_s=None if network else open_timeout_s) if aside \
                else opening()
        except av.ExitError as err:  # FFmpeg's "Immediate exit requested": its timeout ran out
            raise SourceError(f"cannot open source {_named(description)}: no answer within {open_timeout_s:g} s") from err
        except TimeoutError as err:  # a pipe that sent nothing (an OSError: said before those)
            raise SourceError(f"cannot open source {_named(description)}: {err}") from err
        except (av.FFmpegError, OSError, ValueError) as err:
            if getattr(err, "errno", None) == errno.EINTR:
                # a signal (Ctrl-C, SIGTERM) came while open() waited, e.g. on a FIFO with no writer:
                # its handler already ran inside av and was swallowed, so end as a mid-run signal does
                raise KeyboardInterrupt from err
            if isinstance(err, av.EOFError) and not network:  # a header and no frame: as `video` says it
                raise SourceError(f"source {_named(description)} {ENDS_BEFORE_FIRST_FRAME}") from err
            raise SourceError(f"cannot open source {_named(description)}: {short_error(err)}") from err
        try:
            if self._container.format.name == "tty":  # FFmpeg's text demuxer: any text file "is" a video
                raise SourceError(f"source {_named(description)} is not a video (FFmpeg reads it as text): give a video file")
            stream = pick_video_stream(self._container)
            if stream is None:
                raise SourceError(f"source {_named(description)} has no video stream: give a video file, URL or camera")
            self._stream = stream
            self._stream.thread_type = "SLICE" if network else "AUTO"  # frame threads add latency on live input
            # a live source's sound can only be read in the video's pass: it cannot be opened again
            # to read the same moments (a file can, for ``audio_from``)
            self._audio = list(self._container.streams.audio) if network or fmt == "lavfi" else []
            self._feed: PacketFeed | None = None
            self._early: list[tuple[int, av.Packet]] = []  # the sound read with the first frame, for the feed
            self._holding = True  # while the first frame is decoded
            rate = self._stream.average_rate or self._stream.guessed_rate
            self.fps = float(rate) if rate else None
            jumps = bool(self._container.format.flags & av.format.Flags.ts_discont.value)  # MPEG-TS, HLS
            self._mender = _ClockMender(self.fps) if network and jumps else None
            self._clock_jumps = jumps
            self._decoded = self._demuxed()
            try:
                self._first = next(self._decoded)
            except StopIteration:
                raise SourceError(f"source {_named(description)} has no decodable video frames") from None
            except (av.FFmpegError, OSError, ValueError) as err:
                raise SourceError(f"cannot decode source {_named(description)}: {short_error(err)}") from err
            self._holding = False  # from now on, sound read before a recording asks is let go
        except BaseException:
            self._container.close()
            raise
        self.width, self.height = self._first.width, self._first.height
        self.rotation = int(self._first.rotation or 0)
        self.colour = source_tags(frame_colour(self._first), self._first.format.name)  # as `video` takes them
        self.sample_aspect_ratio = pixel_shape(self._stream)
        if not network and fmt is None and self._container.streams.audio:
            if _is_regular_file(target):
                self.audio_from = (Path(target), _frame_seconds(self._first, 0, self.fps))
            else:  # a FIFO or /dev/stdin: a second reader would split its bytes with this one
                self.sound_left_out = (f"{description} is a pipe, not a file: its sound cannot be read a second "
                                       "time, so a recording has none")

    def frames(self, stop: threading.Event) -> Iterator[CapturedFrame]:
        start = time.monotonic()
        first_seconds: float | None = None
        index = 0
        frame: av.VideoFrame | None = self._first
        while frame is not None and not stop.is_set():
            # converted before the wait: a camera delivers a finished picture; a stream that changes
            # size mid-run (a network source renegotiating) is scaled to its first size, so the
            # preview and the recording keep one size
            image = self._rgb.to_rgb(frame, width=self.width, height=self.height)
            seconds = _frame_seconds(frame, index, self.fps)
            if self._pace:
                first_seconds = seconds if first_seconds is None else first_seconds
                delay = start + (seconds - first_seconds) - time.monotonic()
                if self._clock_jumps and abs(delay) > _CLOCK_JUMP_S:
                    # a file whose clock jumped (an MPEG-TS spliced from two): on from here, as ffmpeg
                    # mends it, not an hour's wait (or a burst); the frames keep their own times
                    start, first_seconds, delay = time.monotonic(), seconds, 0.0
                self.paced_until = time.monotonic() + delay
                if delay > 0 and stop.wait(delay):
                    return
            yield CapturedFrame(image, index, time.monotonic(), stream_s=seconds)
            index += 1
            frame = self._next_frame()

    def take_audio(self) -> PacketFeed | None:
        if not self._audio:
            return None
        if self._feed is None:
            # with the sound read while the first frame was decoded: it lies about that frame, which a
            # recording may begin with
            self._feed = PacketFeed(self._container, early=self._early)
            self._early = []
        return self._feed

    def close(self) -> None:
        self._container.close()

    def _demuxed(self) -> Iterator[av.VideoFrame]:
        """The video's frames; a network stream's timestamps mended on the way, and the audio's packets
        put into the feed (held while the first frame is decoded, then dropped until a recording
        takes the feed)."""
        for packet in self._container.demux(self._stream, *self._audio):
            if self._mender is not None:
                self._mender.mend(packet)
            if packet.stream.index != self._stream.index:
                if packet.dts is not None:
                    if self._feed is not None:
                        self._feed.put(packet.stream.index, packet)
                    elif self._holding:
                        self._early.append((packet.stream.index, packet))
                continue
            yield from self._stream.decode(packet)

    def _next_frame(self) -> av.VideoFrame | None:
        try:
            return next(self._decoded)
        except StopIteration:
            return None
        except av.ExitError as err:  # the read timeout ran out
            raise SourceError(f"source {_named(self.description)} stopped delivering frames: nothing came for "
                              f"{_READ_TIMEOUT_S:g} s") from err
        except (av.FFmpegError, OSError) as err:
            raise SourceError(f"source {_named(self.description)} stopped delivering frames: {short_error(err)}") from err


class _ClockMender:
    """Takes the jumps out of a live MPEG-TS's clock, as the ffmpeg tool's demuxer does for formats
    flagged as having them (``ts_discontinuity_detect`` in fftools/ffmpeg_demux.c): a packet more
    than 10 s from where its track's next one was due (``dts_delta_threshold``), or more than 0.1 s
    before its track's last, moves one offset, kept for every track of the stream, so that it lands
    where it was due. Why: a recording times the frames and the sound by this clock, and a camera
    whose encoder restarts, or a relay that splices, would otherwise put an hours-long gap in it, or
    squeeze the frames after it a millisecond apart. Every track moves together, so sound and picture
    stay in step across a jump. A clock that wraps (33 bits, every 26.5 h) is unwrapped by
    libavformat itself; RTSP's and RTMP's clocks are not flagged (RTSP's small steps as RTCP puts
    its tracks in step are corrections, not jumps), and are kept as they come, as FFmpeg keeps them."""

    def __init__(self, fps: float | None) -> None:
        self.offset_s = 0.0
        self._frame_s = 1 / fps if fps else 0.0  # a video packet without a duration lasts this long
        self._due: dict[int, float] = {}  # stream index -> when its next packet is due (s, mended)
        self._last: dict[int, float] = {}  # stream index -> its last packet's dts (s, mended)
        self._last_any: float | None = None  # the last packet's dts of any track

    def mend(self, packet: av.Packet) -> None:
        """Move ``packet``'s pts and dts by the offset, updated first if it jumped."""
        if packet.dts is None or packet.time_base is None:
            return
        base = packet.time_base
        _shift(packet, round(self.offset_s / base))
        at, index = float(packet.dts * base), packet.stream.index
        due = self._due.get(index)
        if due is not None:  # where its track's next packet was due, or not before its last
            jumped = abs(at - due) > _CLOCK_JUMP_S or at < self._last[index] - _CLOCK_BACK_S
        else:  # a track's first packet: near the other tracks' last one
            due = self._last_any
            jumped = due is not None and abs(at - due) > _CLOCK_JUMP_S
        if jumped and due is not None:
            self.offset_s -= at - due
            _shift(packet, -round((at - due) / base))
            at = float(packet.dts * base)
        self._last[index] = self._last_any = at
        length = float(packet.duration * base) if packet.duration else 0.0
        self._due[index] = at + (length or (self._frame_s if packet.stream.type == "video" else 0.0))


def _shift(packet: av.Packet, by: int) -> None:
    """Move ``packet``'s timestamps by ``by`` units of its time base."""
    if by:
        packet.dts += by
        if packet.pts is not None:
            packet.pts += by


def _frame_seconds(frame: av.VideoFrame, index: int, fps: float | None) -> float:
    """Presentation time in seconds; frames without a pts fall back to ``index / fps``."""
    if frame.pts is not None and frame.time_base is not None:
        return float(frame.pts * frame.time_base)
    return index / (fps or 30.0)


def _named(description: str) -> str:
    """A source as an error names it: quoted, as given, but standard input in words."""
    return description if description == STANDARD_INPUT else repr(description)


def _is_regular_file(target: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(target).st_mode)
    except OSError:
        return False


def _is_lavfi_graph(spec: str) -> bool:
    """``testsrc2=size=...`` or ``color=c=red``: the first token names a filter FFmpeg has."""
    match = re.match(r"^([A-Za-z0-9_]+)(=|$|,)", spec)
    return bool(match) and match.group(1) in av.filter.filters_available


@contextlib.contextmanager
def _quiet_opencv() -> Iterator[None]:
    # its errors too (ours names the source); the helper shared with images.py counts its users under
    # a lock, so threads that overlap leave the caller's level, not silence
    from videodeblur.quiet_opencv import quiet_opencv

    with quiet_opencv():
        yield
