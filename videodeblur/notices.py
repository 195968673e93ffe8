"""Where library warnings go: a ``Warn`` callable the CLI passes to print its own line, Python's
``warnings`` when a library caller passes none (so the library never prints)."""
from __future__ import annotations

import os
import sys
import warnings
from typing import Callable

__all__ = ["Warn", "python_warning"]

Warn = Callable[[str], None]
"""Where a warning line goes (the CLI prints it); by default Python's ``warnings.warn``."""

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def python_warning(message: str) -> None:
    """The default ``Warn``: a ``UserWarning`` attributed to the first caller outside this package
    (the line that called the library), however deep the call chain that warns."""
    level, frame = 1, sys._getframe(0)  # stacklevel 1 is this function
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, UserWarning, stacklevel=level)
