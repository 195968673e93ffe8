"""Where library warnings go: a ``Warn`` callable the CLI passes to print its own line, Python's
``warnings`` when a library caller passes none (so the library never prints)."""
from __future__ import annotations

import warnings
from typing import Callable

__all__ = ["Warn", "python_warning"]

Warn = Callable[[str], None]
"""Where a warning line goes (the CLI prints it); by default Python's ``warnings.warn``."""


def python_warning(message: str) -> None:
    """The default ``Warn``: a ``UserWarning`` attributed to the library function's caller."""
    warnings.warn(message, UserWarning, stacklevel=3)
