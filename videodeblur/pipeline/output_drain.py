"""Whether an output takes what is written to it: a stopped run waits for its writer only where it does.

Apart from the runner because it is a question about the operating system's file, device, pipe
or socket behind an output path, not about the run: a writer blocked on a pipe whose reader
stopped reading (``-o - | sleep 40``) must not hold Ctrl-C hostage, one writing a file must finish.
"""
from __future__ import annotations

import os
import select
import stat
from pathlib import Path
from typing import Callable

from videodeblur.video.locations import is_stdin, is_url

__all__ = ["output_drains"]


def output_drains(path: Path | str) -> bool | Callable[[], bool] | None:
    """Whether writes to an output always finish: True for a regular file or a device (/dev/null),
    standard output redirected to one included; for standard output that is a pipe or socket, a
    check of whether it has room now (its reader reads); None where that cannot be told (a named
    pipe, a stream's URL): then only the writer's progress counts."""
    if is_url(path):
        return None
    try:
        mode = os.fstat(1).st_mode if is_stdin(path) else os.stat(path).st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode) or stat.S_ISCHR(mode):
        return True
    if not is_stdin(path):
        return None

    def has_room() -> bool:
        try:
            return bool(select.select([], [1], [], 0)[1])
        except (OSError, ValueError):
            return False
    return has_room
