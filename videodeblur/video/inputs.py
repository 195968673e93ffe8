"""Opening a video input for reading: a file, a URL, standard input or a named pipe, each failure a
typed one-line error that says what the input is instead (a folder, a terminal, an MP4 cut before
its index). An input that may stall before it sends anything is opened so a signal still ends the
run (:func:`interruptibly`)."""
from __future__ import annotations

import errno
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

import av

from videodeblur.errors import InputNotFoundError, UnreadableInputError, short_error
from videodeblur.video.locations import NETWORK_TIMEOUTS_S, is_stdin, is_url, redacted

__all__ = ["ENDS_BEFORE_FIRST_FRAME", "ffmpeg_name", "interruptibly", "open_input", "opened_aside"]

# What FFmpeg's end of file while opening means of a local file it recognised: a header and no frame.
# The `video` command's input and the camera's file source say it alike.
ENDS_BEFORE_FIRST_FRAME = ("ends before its first frame (zero frames): a recording that stopped before it began, "
                           "or a copy cut short")

_T = TypeVar("_T")
# what FFmpeg takes for a protocol name: these characters, then a colon ("concat:", "a:" in "a:b.mp4")
_PROTOCOL_PREFIX = re.compile(r"[A-Za-z0-9+.-]+:")


def ffmpeg_name(path: Path | str, *, writing: bool = False) -> str:
    """The name to hand FFmpeg for ``path``: a URL as it is, a file's path with ``file:`` before it
    where FFmpeg would read its start as a protocol and the file is there (or is to be written). A file
    named ``2024-05-06T10:30:00.mp4`` or ``take2:final.mp4`` was "Protocol not found" (and ``concat:x.mp4``
    "No such file"), though it was there; its output beside it, ``take2:final-deblurred.mp4``, too."""
    name = str(path)
    if not is_url(name) and _PROTOCOL_PREFIX.match(name) and (writing or Path(name).is_file()):
        return f"file:{name}"
    return name


def open_input(path: Path | str) -> av.container.InputContainer:
    """Open ``path`` (a ``Path`` for a file; a ``str`` for a URL or ``-``, standard input) with PyAV."""
    if is_stdin(path):
        if sys.stdin is None or sys.stdin.isatty():
            what = "closed" if sys.stdin is None else "a terminal, not a video"  # `<&-` leaves it None
            raise UnreadableInputError(f"standard input is {what}: pipe a video in "
                                       "(... | videodeblur video - -o out.mkv), or give a file")
        try:
            return av.open("pipe:0", "r", metadata_errors="replace")
        except (av.FFmpegError, OSError) as err:
            _end_if_interrupted(err)
            raise UnreadableInputError(f"standard input is not a video FFmpeg can read ({short_error(err)})") from err
    if isinstance(path, str):  # a URL
        try:
            return opened_aside(lambda: av.open(path, "r", metadata_errors="replace", timeout=NETWORK_TIMEOUTS_S))
        except av.ExitError as err:  # FFmpeg's "Immediate exit requested": its timeout ran out
            raise UnreadableInputError(f"cannot open {redacted(path)}: no answer within {NETWORK_TIMEOUTS_S[0]:g} s") from err
        except (av.FFmpegError, OSError) as err:
            _end_if_interrupted(err)
            raise UnreadableInputError(f"cannot open {redacted(path)}: {short_error(err)}") from err
    if not path.exists():
        raise InputNotFoundError(f"input not found: {path}")
    if path.is_dir():
        raise UnreadableInputError(f"{path} is a folder; give a video file")
    try:
        return av.open(ffmpeg_name(path), "r", metadata_errors="replace")  # tags in Latin-1 etc. are common in old files
    except av.FFmpegError as err:
        _end_if_interrupted(err)
        if _mp4_without_index(path):
            raise UnreadableInputError(
                f"{path} is an MP4/MOV cut short before its index (moov) was written, so no frame can be "
                "located: a recording or copy that did not finish") from err
        reason = " ".join(str(err).split())
        if isinstance(err, av.EOFError):  # a container FFmpeg knew, with its header and no frame after it
            raise UnreadableInputError(f"{path} {ENDS_BEFORE_FIRST_FRAME} ({reason})") from err
        raise UnreadableInputError(f"{path} is not a video file FFmpeg can read ({reason})") from err
    except (OSError, UnicodeDecodeError) as err:
        _end_if_interrupted(err)
        raise UnreadableInputError(f"cannot open {path}: {err}") from err


def interruptibly(work: Callable[[], _T], *, abandon: Callable[[], None], within_s: float | None = None) -> _T:
    """``work()`` on a thread of its own while this one waits, so that Ctrl-C or SIGTERM still ends
    the run while it is blocked: FFmpeg retries a read from a pipe that a signal interrupted, and
    never comes back to Python for the signal's handler to act (a producer that stalls before its
    first frame held the run until it sent again). Interrupted, ``work`` is left to its thread, as
    the pipeline leaves a read blocked on a pipe, and ``abandon()`` runs once it has returned.
    ``within_s``: TimeoutError if ``work`` has not returned by then (left to its thread the same way)."""
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
    deadline = None if within_s is None else time.monotonic() + within_s
    try:
        while not done.wait(0.1):
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"nothing came within {within_s:g} s")
    except BaseException:
        with lock:
            result["left"] = not done.is_set()
        if not result["left"] and "value" in result:
            abandon()
        raise
    if "error" in result:
        raise result["error"]
    return result["value"]


def opened_aside(opening: Callable[[], av.container.InputContainer], *,
                 within_s: float | None = None) -> av.container.InputContainer:
    """``opening()`` (an ``av.open`` of a network source, or of a pipe) :func:`interruptibly`: FFmpeg
    waiting on a server that sends nothing held a Ctrl-C or SIGTERM until its open timeout (10 s), and
    the run then ended as "no answer". An open left behind closes what it opened. ``within_s``: as
    :func:`interruptibly` (a pipe has no timeout of FFmpeg's own)."""
    opened: list[av.container.InputContainer] = []

    def kept() -> av.container.InputContainer:
        opened.append(opening())
        return opened[0]
    return interruptibly(kept, abandon=lambda: opened[0].close(), within_s=within_s)


def _end_if_interrupted(err: BaseException) -> None:
    """A signal (Ctrl-C, SIGTERM) that came while the open waited (on a named pipe with no writer
    yet): its handler ran inside PyAV, whose EINTR error took the place of the KeyboardInterrupt it
    raised, so end as a signal mid-run does, not as an unreadable input."""
    if getattr(err, "errno", None) == errno.EINTR:
        raise KeyboardInterrupt from err


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
