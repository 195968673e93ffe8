"""Where a video is written and how that output is opened: a file path checked before any work is
done, standard output (``-o -``) in a muxer another program can read as it comes, or a live
stream's URL; and the muxer options that leave a file playable when the process is killed."""
from __future__ import annotations

import errno
import os
import sys
from fractions import Fraction
from pathlib import Path

import av

from videodeblur.errors import OutputError
from videodeblur.video.locations import NETWORK_TIMEOUTS_S, is_named_pipe, is_stdin, is_url

__all__ = ["MOV_MUXERS", "ONE_RATE_MUXERS", "PIPE_FORMATS", "check_output_path", "fragment_options", "movie_timing_options",
           "open_pipe", "open_stream", "output_kind", "release_pipe"]

# what standard output (-o -) can carry, by the extension the same file would have: the muxer
PIPE_FORMATS = {"mkv": "matroska", "mp4": "mp4", "mov": "mov", "nut": "nut", "ts": "mpegts", "webm": "webm",
                "y4m": "yuv4mpegpipe"}  # y4m: raw frames, for an encoder that reads them (x264, SVT-AV1)
# the muxer that carries a live stream to each kind of URL
_STREAM_FORMATS = {"rtmp": "flv", "rtmps": "flv", "srt": "mpegts", "udp": "mpegts", "tcp": "mpegts", "rtp": "rtp_mpegts",
                   "rtsp": "rtsp"}
# FFmpeg's MP4/MOV muxer family: a sample table (index) written at the end, a sample's duration stored as
# the gap to the next in decode order, edit lists that hide what a track holds before its start
MOV_MUXERS = frozenset({"mp4", "mov", "ipod", "3gp", "3g2", "psp", "ismv", "f4v"})
# containers that hold frames at one rate, not times: the writer puts frames in their slots
ONE_RATE_MUXERS = frozenset({"yuv4mpegpipe", "avi"})
# the suffixes FFmpeg writes with that family
_MOV_SUFFIXES = (".mp4", ".mov", ".m4v", ".3gp", ".3g2", ".f4v", ".ismv", ".psp")


def check_output_path(path: str | Path, *, input_path: str | Path | None = None) -> Path:
    """Fail early (OutputError) when ``path`` cannot be written: missing folder, a folder itself,
    the input file, or no permission. Proven by opening the file for writing; a file that did not
    exist before is removed again, so a run that fails later leaves nothing behind."""
    path = Path(path)
    if (input_path is not None and not is_url(input_path) and not is_stdin(input_path)
            and _same_file(path, Path(input_path))):
        raise OutputError(f"output {path} is the input file; choose another output path")
    if path.is_dir():
        raise OutputError(f"output {path} is a folder; give a file name such as {path / 'out.mp4'}")
    if path.parent.exists() and not path.parent.is_dir():
        raise OutputError(f"{path.parent} is a file, not a folder: choose another path for {path.name}")
    if not path.parent.is_dir():
        raise OutputError(f"output folder {path.parent} does not exist; create it or choose another path")
    if is_named_pipe(path):
        _hold_pipe(path)
        return path
    existed = path.exists()
    try:
        with open(path, "ab"):
            pass
    except OSError as err:
        raise OutputError(f"cannot write {path}: {err.strerror or err}") from err
    if not existed:
        path.unlink(missing_ok=True)
    return path


# a named pipe's write end, opened by the check and held until the writer has opened the pipe itself:
# closing it would end the reader's stream (a player got 0 bytes and quit), and a blocking open with
# nobody reading hung the run past Ctrl-C (signals go to any thread, so the main thread's open() stayed)
_HELD_PIPES: dict[str, int] = {}


def _hold_pipe(path: Path) -> None:
    """Check that a program reads the named pipe ``path`` (a non-blocking open fails at once if none
    does) and hold the write end open for :func:`release_pipe`."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as err:
        if err.errno == errno.ENXIO:
            raise OutputError(f"nothing reads the pipe {path}: start its reader (a player, ffmpeg) first") from err
        raise OutputError(f"cannot write {path}: {err.strerror or err}") from err
    old = _HELD_PIPES.pop(str(path), None)
    _HELD_PIPES[str(path)] = fd
    if old is not None:
        os.close(old)


def release_pipe(path: str | Path) -> None:
    """Let go of the write end :func:`check_output_path` held for a named pipe (nothing if it held none)."""
    fd = _HELD_PIPES.pop(str(path), None)
    if fd is not None:
        os.close(fd)


def output_kind(path: str | Path, pipe_format: str) -> str:
    """What messages call the output's kind: a file's suffix (``.mp4``; its name without one), a stream
    URL's muxer (``flv``), or for standard output the suffix of ``pipe_format`` (``.mkv``)."""
    if is_url(path):
        return _STREAM_FORMATS.get(str(path).partition("://")[0].lower(), "stream")
    return f".{pipe_format}" if is_stdin(path) else Path(path).suffix or Path(path).name


def fragment_options(path: Path, fragmented: bool) -> dict[str, str]:
    """Muxer options for an output that a killed process (kill -9, power loss) leaves playable up to
    its last second: every packet flushed to disk as it is written (else FFmpeg's buffer held all,
    measured: 0 bytes left of a killed .mkv, .ts or .avi); an MP4/MOV as fragments, a fragment a
    second (and at each keyframe); Matroska/WebM as a cluster a second (its default, 5 s, was held
    in memory until closed). ``delay_moov`` rather than ``empty_moov``: the header waits for the
    first fragment, so it can hold the edit list that keeps the video's first frame at 0 when the
    audio starts earlier (AAC's priming); with ``empty_moov`` every later frame came 21 ms late.
    Other containers (MPEG-TS, AVI, NUT, FLV, MPEG-PS, Y4M...) play from any prefix once flushed."""
    if not fragmented:
        return {}
    suffix = path.suffix.lower()
    if suffix in _MOV_SUFFIXES:
        return {"movflags": "frag_keyframe+delay_moov+default_base_moof", "frag_duration": "1000000",
                "flush_packets": "1"}
    if suffix in (".mkv", ".webm"):
        return {"cluster_time_limit": "1000", "flush_packets": "1"}
    return {"flush_packets": "1"}


def movie_timing_options(kind: str, time_base: Fraction) -> dict[str, str]:
    """Muxer options that keep an MP4/MOV's video times exact (``kind``: ".mp4", as :func:`output_kind`
    says it; ``time_base``: the video's). The edit list that starts the video where it starts (a
    ``--start`` between two frames leaves a gap before the first) counts in the movie's time scale,
    1/1000 s by default, to which the muxer cut the gap down: the first frame came up to 1 ms early
    (14 ms for 14.7). The scale here is the video track's own (the time base's, doubled up to 10000
    and more, as the muxer picks it), so every frame time the track holds is a whole number of it."""
    if kind.lower() not in _MOV_SUFFIXES:
        return {}
    scale = Fraction(time_base).denominator
    while scale < 10000:
        scale *= 2
    return {"movie_timescale": str(scale)} if scale <= 2**31 - 1 else {}


def open_pipe(kind: str, options: dict[str, str]) -> av.container.OutputContainer:
    """An output container writing to standard output (``-o -``), for another program to read on."""
    if sys.stdout is None or sys.stdout.isatty():
        raise OutputError("standard output is a terminal, not a pipe: give -o a file, or pipe it on "
                          "(-o - | ffplay -)")
    sys.stdout.flush()  # nothing Python held back may land inside the video
    return av.open("pipe:1", "w", format=PIPE_FORMATS[kind], options={**options, "flush_packets": "1"})


def open_stream(url: str) -> av.container.OutputContainer:
    """An output container sending to ``url`` (RTMP to a streaming server, SRT/UDP/TCP as MPEG-TS, RTSP
    publishing), in the muxer its scheme needs, flushing each packet as it is written."""
    scheme = url.partition("://")[0].lower()
    options = {"rtsp_transport": "tcp"} if scheme == "rtsp" else {"flush_packets": "1"}
    return av.open(url, "w", format=_STREAM_FORMATS.get(scheme, "mpegts"), options=options,
                   timeout=NETWORK_TIMEOUTS_S)


def _same_file(a: Path, b: Path) -> bool:
    """Same path after resolving links, or the same inode (a hard link)."""
    if a.resolve() == b.resolve():
        return True
    return a.exists() and b.exists() and os.path.samefile(a, b)
