"""OpenCV's log level, silenced while it decodes or opens something whose failure we report ourselves.

The level is one for the whole process: two threads that each saved and restored it could leave it
silent for good (the second saved the first's silence). Users are counted under a lock instead: the
first saves the caller's level, the last puts it back.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Iterator

import cv2

__all__ = ["quiet_opencv"]

_lock = threading.Lock()
_users = 0
_saved = 0  # the level before the first of the current users


@contextlib.contextmanager
def quiet_opencv() -> Iterator[None]:
    """OpenCV logs nothing (its warnings and errors would break our one-line messages) inside."""
    global _users, _saved
    logging = cv2.utils.logging
    with _lock:
        if _users == 0:
            _saved = logging.getLogLevel()
            logging.setLogLevel(logging.LOG_LEVEL_SILENT)
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                logging.setLogLevel(_saved)
