"""Recording a live run: an encoder on its own thread, each frame timed on the source's own clock.

Why a module of its own: encoding must not add to the live loop's latency, so it runs behind a small
bounded queue, and every processed frame is recorded at its time on the source's clock (a stream's,
a file's or a lavfi graph's pts), as the ffmpeg tool records a stream, so the source's sound, timed
by the same clock, stays in step; a webcam, which has no clock of its own, records its capture times.
"""
from __future__ import annotations

import contextlib
import queue
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from videodeblur.errors import EncodeError, OutputError
from videodeblur.paths import IMAGE_EXTENSIONS, check_nameable
from videodeblur.video.capture import LiveSource
from videodeblur.video.colour import ColourTags
from videodeblur.video.feed import PacketFeed
from videodeblur.video.inputs import ffmpeg_name
from videodeblur.video.locations import is_stdin, is_url
from videodeblur.video.outputs import check_output_path

__all__ = ["Recorder", "RECORD_TIME_BASE", "check_record_file"]

# pts on the source's clock (_RecordClock) at 90 kHz, as MPEG times video: it holds 24, 25, 30, 50, 60
# and 30000/1001 fps exactly (in milliseconds a 30 fps file was recorded 33, 34, 33 ms apart)
RECORD_TIME_BASE = Fraction(1, 90000)
_POLL_S = 0.05  # how often close() looks at a stream's writer for progress
_RECORD_QUEUE = 8
_STREAM_CLOSE_GRACE_S = 3.0  # a --record URL's writer making no progress this long at the end is left
# muxers that write pictures (one file a frame, or an animation), not a video a player plays with its sound
_PICTURE_MUXERS = frozenset({"image2", "gif", "apng", "webp"})
# muxers that write a playlist with segment files beside it: FFmpeg's DASH muxer killed the process
# (SIGFPE) as the encoder probe closed it, and both dropped segment files into the current folder
_PLAYLIST_MUXERS = {"dash": "DASH", "hls": "HLS"}
_RECORD_TO = "record to .mp4, .mkv, .mov or .webm"


def check_record_file(path: Path, *, input_path: Path | None = None) -> None:
    """OutputError for a recording file that cannot be written: the path itself (a missing folder, a
    folder, the file source ``input_path``, no permission), a name whose extension picks no container,
    a picture format, or a container that cannot hold the recorded video. Why here and first: the
    camera command asks it before it opens the source and loads the model, as ``video`` checks its
    output's path; found by the recorder, a typo cost a model load and a warm-up, and a webcam was
    opened, only to be refused. The container is asked of a trial writer in a folder of its own, so
    its checks are the recorder's own and nothing is left at ``path``."""
    from videodeblur.video import FrameWriter

    if is_stdin(path):  # the writer would pipe the video there, and the stats after it, into one stream
        raise OutputError(f"cannot record to {path}: standard output carries the run's stats; {_RECORD_TO}, "
                          "or send it to a stream URL")
    check_nameable(path, OutputError, "cannot write {}")  # a name too long: the path check raised a bare OSError
    check_output_path(path, input_path=input_path)
    kind = path.suffix or "a name with no extension"
    no_container = f"cannot record to {path}: {kind} names no container FFmpeg writes; {_RECORD_TO}"
    if not path.suffix:  # ".mp4" too, the name left out: FFmpeg took it for MP4, the trial below did not
        raise OutputError(no_container)
    try:
        with av.open(ffmpeg_name(path, writing=True), "w") as named:  # guesses the muxer; writes nothing yet
            muxer = named.format.name
    except (av.FFmpegError, ValueError) as err:
        raise OutputError(no_container) from err
    if path.suffix.lower() in IMAGE_EXTENSIONS or muxer in _PICTURE_MUXERS:
        raise OutputError(f"cannot record to {path}: {kind} is a picture format, not a video; {_RECORD_TO}")
    if muxer in _PLAYLIST_MUXERS:
        raise OutputError(f"cannot record to {path}: {kind} is an {_PLAYLIST_MUXERS[muxer]} playlist, written with "
                          f"segment files beside it, not a video file; {_RECORD_TO}")
    with tempfile.TemporaryDirectory(prefix="videodeblur-record-check-") as folder:
        try:
            FrameWriter(Path(folder) / f"trial{path.suffix}", width=64, height=64, time_base=RECORD_TIME_BASE,
                        fps=Fraction(30), fragmented=True).close()
        except (OutputError, EncodeError) as err:  # their advice names `video`'s --encoder: not the camera's
            raise OutputError(f"cannot record to {path}: {kind} files cannot hold the recorded video; "
                              f"{_RECORD_TO}") from err


class Recorder:
    """Encodes processed frames on its own thread, each at its pts from :class:`_RecordClock`.

    A file keeps every processed frame: when the encoder falls behind, the live loop waits for it.
    A stream (a URL) must not hold the live picture back when the network does: a frame that finds
    the queue full is left out of the stream and counted in ``dropped``, as a broadcaster drops.
    Sound comes from a file source (``audio_from``: its path, opened again, and its first frame's time) or from a live source's ``audio_feed``, whose clock is tied to the recording's at
    the first frame written (and again at the first frame after each reconnect, :meth:`follow`).
    """

    def __init__(self, path: Path | str, width: int, height: int, fps: float | None, *,
                 source_path: Path | None = None, audio_from: tuple[Path, float] | None = None,
                 audio_feed: PacketFeed | None = None, rotation: int = 0, colour: ColourTags | None = None,
                 sample_aspect_ratio: Fraction | None = None) -> None:
        from videodeblur.video import FrameWriter

        # a live recording cannot be run again: a file survives kill -9 (fragmented); a stream's URL
        # (rtmp://, srt://, udp://) is sent on as it is encoded
        # a file source brings its sound: the track from its first frame on, in step.
        # The writer's window moves source times back by its start, so pts count from the file's
        # first frame time here (a file need not start at 0: MPEG-TS rarely does)
        sound_only = {"subtitles": False, "data": False, "attachments": False}
        audio = ({"copy_from": audio_from[0], "window": (audio_from[1], None), **sound_only} if audio_from is not None
                 else {"copy_from": audio_feed, **sound_only} if audio_feed is not None else {})
        self._feeds: dict[int, PacketFeed | None] = {0: audio_feed}  # by run: the source's openings
        self._opening = 0  # the run (opening of the source) its sound now comes from
        self._aligned = audio_feed is None  # a live source's clock not yet tied to the recording's
        rate = Fraction(fps or 30).limit_denominator(1001)
        self._clock = _RecordClock(0 if audio_from is None else round(audio_from[1] / RECORD_TIME_BASE),
                                   step=max(1, round(1 / (rate * RECORD_TIME_BASE))))
        self._writer = FrameWriter(path, width=width, height=height, time_base=RECORD_TIME_BASE,
                                   fps=rate, input_path=source_path,
                                   rotation=rotation, colour=colour, sample_aspect_ratio=sample_aspect_ratio,
                                   fragmented=True, **audio)
        self._queue: queue.Queue[tuple[np.ndarray, int, float | None, int] | None] = queue.Queue(maxsize=_RECORD_QUEUE)
        self._stream = is_url(path)
        self._from_file = audio_from is not None
        self._whole = False  # the file source was played to its end: its sound is copied whole (close)
        self.dropped = 0
        self.cut_off = False  # a stream's writer left blocked at close (see close)
        self._written = 0
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="videodeblur-record", daemon=True)
        self._thread.start()

    def write(self, image: np.ndarray, capture_time: float, *, stream_s: float | None = None, run: int = 0) -> None:
        """Queue a processed frame, timed by ``stream_s`` (its time on the source's clock; None: it has
        none, and ``capture_time`` serves) and ``run`` (which opening of the source), which also put
        the source's sound in step."""
        self.raise_error()
        pts = self._clock.pts(capture_time, stream_s, run)
        item = (image, pts, stream_s, run)
        if not self._stream:
            self._queue.put(item)  # blocks when the encoder falls behind: every processed frame is kept
            return
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1

    @property
    def warnings(self) -> list[str]:
        """What the recording left out, re-encoded or cut short, one sentence each."""
        cut = [f"the recording was cut off: the receiver took nothing for {_STREAM_CLOSE_GRACE_S:g} s"
               ] if self.cut_off else []
        from videodeblur.pipeline.run_summary import four_four_four_warning  # (av: imported after cv2, as above)

        # a recording is asked for 4:2:0: it is 4:4:4 only where the picture is odd-sized
        odd = four_four_four_warning(self._writer, f"{self._writer.width}x{self._writer.height} is odd-sized, "
                                                   "which 4:2:0 cannot hold")
        return [*(f"left out {skipped}" for skipped in self._writer.skipped), *self._writer.converted,
                *([odd] if odd else []), *cut]

    def follow(self, run: int, source: LiveSource) -> None:
        """The source was opened again (``run``): its sound, if a recording of it was begun, comes from
        the new opening from that run's first frame on. Called from the capture thread."""
        if self._feeds[0] is not None:
            self._feeds[run] = source.take_audio()

    def close(self, *, whole: bool = False) -> int:
        """Flush and finalise the file; returns the number of frames written. ``whole``: the source was
        played to its end, so a file source's sound is copied to its end, as ``video`` copies it (else
        only as far as the frames went: a run stopped early; it stopped at the last frame's start even
        when the whole file had been played). A stream whose receiver
        stops taking data is left to its (daemon) writer after a grace without progress, and said in
        :attr:`warnings`: a network write can block for ever, and the run must still end."""
        self._whole = whole and self._from_file  # read by the thread once it takes the end (below)
        if not self._thread.is_alive():
            return self._written
        if not self._stream:
            self._queue.put(None)
            self._thread.join()
            return self._written
        ended, written, since = False, self._written, time.monotonic()
        while self._thread.is_alive():
            if not ended:
                with contextlib.suppress(queue.Full):
                    self._queue.put_nowait(None)
                    ended = True
            self._thread.join(_POLL_S)
            if self._written != written:
                written, since = self._written, time.monotonic()
            elif time.monotonic() - since > _STREAM_CLOSE_GRACE_S:
                self.cut_off = True
                break
        return self._written

    def raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        try:
            while (item := self._queue.get()) is not None:
                if self._error is None:
                    image, pts, stream_s, run = item
                    self._keep_sound_in_step(pts, stream_s, run)
                    self._writer.write(image, pts=pts)
                    self._written += 1
        except BaseException as err:
            self._error = err
            while self._queue.get() is not None:  # drain so the producer never blocks
                pass
        finally:
            try:
                self._writer.close(complete=self._whole)  # else a file source's sound only as far as the frames went
            except BaseException as err:  # finishing the file failed (a full disk): the run reports it,
                self._error = self._error or err  # not the thread, as a raw traceback

    def _keep_sound_in_step(self, pts: int, stream_s: float | None, run: int) -> None:
        """Tie a live source's clock to the recording's at its first frame written, and at the first
        frame from each new opening of it (whose clock starts anew)."""
        if run != self._opening:
            self._opening = run
            self._writer.follow_copied(self._feeds.get(run))
            self._aligned = self._feeds.get(run) is None
        if not self._aligned and stream_s is not None:
            self._writer.align_copied(stream_s - float(pts * RECORD_TIME_BASE))
            self._aligned = True


class _RecordClock:
    """A recorded frame's pts (``RECORD_TIME_BASE`` units): its time on the source's own clock where
    it has one (``stream_s``), else its capture time (a webcam), counted from the first frame's, at
    ``first_pts``. Why the source's clock: its sound is timed by it, and the ffmpeg tool, recording a
    stream, keeps its timestamps for every track, moved back together by the input's start
    (fftools/ffmpeg_demux.c). Capture times put an HTTP stream's sound 0.5 s late, plus the time the
    model took to load: FFmpeg reads ahead while it opens a stream, the stream goes on while the
    model loads, and all that came in was decoded in a burst at the start, tens of frames within
    milliseconds, while the sound kept its own time. A file read in step with the model, not
    captured live, keeps its timing the same way (capture times played 30 frames in 0.39 s).

    Each opening of the source (``run``) starts its clock anew: its first frame comes after the last
    one written by the time between their captures (the wait for the reconnect). A frame whose time
    is a frame interval (``step``) or more before the last one's comes a ``step`` after it; if the next
    is behind too, the clock started again (a file joined from two) and the frames follow it from
    there, else it was one bad time and the next is on its own. One less than a frame interval early
    is put a tick after the last."""

    def __init__(self, first_pts: int = 0, step: int = 1) -> None:
        self._first_pts = first_pts
        self._step = step
        self._run: int | None = None  # the opening whose clock is counted
        self._start: tuple[int, float] = (first_pts, 0.0)  # its first frame's pts and time on its clock
        self._last: tuple[int, float] | None = None  # the last frame's pts and capture time
        self._behind = False  # the last frame's own time was a frame or more before the one before it

    def pts(self, capture_time: float, stream_s: float | None, run: int) -> int:
        """The pts of a frame captured at ``capture_time`` (monotonic seconds), strictly after the last."""
        at = stream_s if stream_s is not None else capture_time
        if run != self._run:
            self._run = run
            start = (self._first_pts if self._last is None
                     else self._last[0] + round((capture_time - self._last[1]) / RECORD_TIME_BASE))
            self._start = (start, at)
        pts = self._start[0] + round((at - self._start[1]) / RECORD_TIME_BASE)
        behind = self._last is not None and pts <= self._last[0]
        if behind and self._behind:  # two in a row: the clock started again; on from here by it
            self._start = (self._last[0] + self._step, at)
            pts = self._start[0]
        elif behind and pts > self._last[0] - self._step:
            # a little early (a mended clock jump that landed short of the last frame): this frame only
            # is put a tick after it; a whole frame (as below) was carried by every later frame, the
            # picture 48 ms behind its sound for the rest of the run
            pts = self._last[0] + 1
            behind = False
        elif behind:  # a frame after the last; the next tells a glitch (back on time) from a new clock
            pts = self._last[0] + self._step
        self._behind = behind
        self._last = (pts, capture_time)
        return pts
