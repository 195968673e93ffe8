"""Which file goes where when ``videodeblur video`` is given several inputs or a folder.

Why a plan first: every path mistake (a folder with no videos, two inputs that would write the same
output, an output that is a file where a folder is needed) fails in milliseconds, before the model
loads or the first hour-long video is deblurred.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import os
from pathlib import Path, PurePosixPath
from typing import Sequence
from urllib.parse import urlparse

from videodeblur.errors import ConfigError, InputNotFoundError, OutputError
from videodeblur.notices import Warn, python_warning
from videodeblur.paths import (IMAGE_EXTENSIONS, VIDEO_SUFFIXES, check_distinct_outputs, check_nameable,
                               check_no_empty_path, check_outputs_apart, default_outputs, expand_inputs, make_folder, warn_of_subfolders)
from videodeblur.video.locations import STDIN, is_stdin, is_url, redacted, scheme_not_read, unknown_scheme

__all__ = ["VideoJob", "check_part", "plan_videos", "VIDEO_SUFFIXES"]

# containers the writer fills with their inputs' kind of video and audio (.webm: VP9, Opus)
_KEPT_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ts")
# playlists FFmpeg writes with segment files beside them: asked of the encoder probe, its DASH muxer
# killed the process (SIGFPE) and HLS dropped "<none>0.ts" segments into the current folder
_PLAYLIST_SUFFIXES = {".mpd": "a DASH", ".m3u8": "an HLS"}


def check_part(start_s: float, duration_s: float | None, resume: bool) -> None:
    """ConfigError for a part of a video that cannot be deblurred: a start or duration that is not a
    finite number, a negative start, a duration that is not positive, or a part combined with
    ``resume`` (which goes on with the whole file). Checked by the command before the model loads, and
    by :class:`videodeblur.pipeline.RunOptions` for library callers."""
    for name, value in (("start", start_s), ("duration", duration_s)):
        # NaN passed every comparison below, and NaN or infinity failed in the encode thread, untyped
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real)
                                  or not math.isfinite(value)):
            raise ConfigError(f"{name} must be a finite number of seconds, got {value!r}")
    if start_s < 0 or (duration_s is not None and duration_s <= 0):
        raise ConfigError(f"start must be >= 0 and duration > 0 seconds, got {start_s} and {duration_s}")
    if resume and (start_s or duration_s is not None):
        raise ConfigError("--resume goes on with a whole file: it cannot be combined with --start or --duration")


@dataclasses.dataclass(frozen=True)
class VideoJob:
    """One video to deblur: read ``src`` (a path or a URL), write ``dst``."""

    src: str
    dst: Path


def plan_videos(inputs: Sequence[str | Path], output: str | Path | None, *,
                warn: Warn | None = None) -> list[VideoJob]:
    """Pair each input with its output (videos in an input folder's sub-folders are left out, and
    counted to ``warn``). One input that is a file or URL, and an output that is not a
    folder (nor named with a trailing slash): that output. Otherwise (several inputs, a folder among
    them, or an output folder) ``output`` is a folder (created) holding one output per input, named
    as the input, with ``.mp4`` for the older containers (``.wmv``, ``.flv``, ``.mpg``...). An
    output that is an input of the run is refused. No ``output``: each file beside
    itself as ``<name>-deblurred.<ext>``, a folder's into ``<folder>-deblurred/``. Folders are read
    one level deep, video files only, in name order."""
    jobs = _paired(inputs, output)
    warn_of_subfolders(inputs, [job.dst for job in jobs], VIDEO_SUFFIXES, "video", warn or python_warning)
    return jobs


def _paired(inputs: Sequence[str | Path], output: str | Path | None) -> list[VideoJob]:
    if not inputs:
        raise InputNotFoundError("no input given: name one or more video files, URLs or a folder")
    check_no_empty_path(inputs, output, inputs_are="video files, URLs or a folder")
    if any(is_stdin(src) for src in inputs) or is_stdin(output):
        return [_piped_job(inputs, output)]
    what = f"video files ({', '.join(VIDEO_SUFFIXES[:6])}, ...)"
    if output is None:
        jobs = [VideoJob(src, dst) for src, dst in default_outputs(inputs, VIDEO_SUFFIXES, what, name=_output_name,
                                                                   urls=True)]
        _check_outputs(jobs)
        return jobs
    if is_url(output) or unknown_scheme(output):
        raise OutputError(f"output {redacted(output)} is a URL: `video` writes files; to send a deblurred feed live, use "
                          "`videodeblur camera --source FILE --realtime --record URL`")
    folder_meant = str(output).endswith(("/", os.sep))  # "new.mp4/": a folder, as the slash says
    check_nameable(output, OutputError, "cannot write {}")  # a name too long: Path.is_dir raised a bare OSError
    output = Path(output)
    if (kind := _PLAYLIST_SUFFIXES.get(output.suffix.lower())) and not output.is_dir() and not folder_meant:
        raise OutputError(f"output {output} is {kind} playlist, written with segment files beside it, not a video "
                          f"file: give a video file such as {output.with_suffix('.mp4').name} (or .mkv, .mov, .webm)")
    sources, any_folder = expand_inputs(inputs, VIDEO_SUFFIXES, what, urls=True)
    if output.suffix.lower() in IMAGE_EXTENSIONS and not output.is_dir() and not folder_meant:
        raise OutputError(f"output {output} is a picture format, not a video: give a video file such as "
                          f"{output.with_suffix('.mp4').name} (or .mkv, .mov, .webm); `videodeblur image` deblurs "
                          "pictures")
    if not any_folder and len(sources) == 1 and not output.is_dir() and output.suffix and not folder_meant:
        check_outputs_apart([(sources[0], output)])  # not the input itself (a --resume would "finish")
        return [VideoJob(sources[0], output)]
    if not any_folder and len(sources) == 1 and output.exists() and not output.is_dir() and not folder_meant:
        # one input into an existing file without an extension (/dev/null, as for the ffmpeg tool)
        raise OutputError(f"output {output} has no extension, so it names no container: give a video file such as "
                          "out.mp4 (its extension picks the container), or a folder")
    make_folder(output, file_suffixes=() if folder_meant else VIDEO_SUFFIXES)
    jobs = [VideoJob(src, output / _output_name(src)) for src in sources]
    _check_outputs(jobs)
    return jobs


def _check_outputs(jobs: list[VideoJob]) -> None:
    """No two jobs write one output, and none writes over an input of the run."""
    pairs = [(job.src, job.dst) for job in jobs]
    check_distinct_outputs(pairs)
    check_outputs_apart(pairs)


def _piped_job(inputs: Sequence[str | Path], output: str | Path | None) -> VideoJob:
    """The one job of a video piped in (INPUT ``-``: it has no name to put an output beside) or out
    (``-o -``: one stream, so one input that is a file or URL)."""
    if len(inputs) > 1:
        raise ConfigError("- (standard input or output) goes with one input only")
    src = str(inputs[0])
    if is_stdin(output):
        if not is_stdin(src) and not is_url(src):
            if why := scheme_not_read(src):
                raise InputNotFoundError(f"input {redacted(src)}: {why}")
            if not Path(src).exists():
                raise InputNotFoundError(f"input not found: {src}")
            if Path(src).is_dir():
                raise OutputError(f"{src} is a folder: its videos go to a folder (-o FOLDER), not to standard output")
        return VideoJob(src, Path(STDIN))
    if output is None or Path(output).is_dir() or not Path(output).suffix:
        raise OutputError("a video piped in (-) needs -o OUTPUT: a file such as out.mkv, or - to pipe it on")
    return VideoJob(STDIN, Path(output))


def _output_name(src: str) -> str:
    name = PurePosixPath(urlparse(src).path).name if is_url(src) else Path(src).name
    name = name or "video.mp4"
    suffix = PurePosixPath(name).suffix.lower()
    return name if suffix in _KEPT_SUFFIXES else f"{PurePosixPath(name).stem or 'video'}.mp4"
