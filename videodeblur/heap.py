"""Keep freed frame-sized memory in the process for reuse, instead of handing it back to the kernel.

Why: every forward pass allocates and frees tens of megabytes of activations, and every frame a few
megabytes of arrays. glibc serves blocks that large with a fresh ``mmap`` (and trims the heap top
back to the kernel), so each pass re-faults its memory page by page: measured 4 476 page faults per
``lprn-fast`` 640×360 forward on the 2-core EPYC VM, 29–46 ms a frame against 26–27 ms without
them, and the ``video`` command at 20.5 fps against 26–28 fps (docs/BENCHMARKS.md, "Speed-ups").
Keeping blocks up to 32 MB on the heap, and up to 256 MB of free heap before trimming, reuses the
same pages frame after frame. Peak memory is unchanged (the same blocks, reused); what changes is
that the process keeps up to that much freed memory until it exits.

Only glibc has ``mallopt``: elsewhere (macOS, musl, Windows) this does nothing. A user's own
``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` or ``GLIBC_TUNABLES`` malloc settings win.
"""
from __future__ import annotations

import ctypes
import os
import platform
from typing import Mapping

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "reuse_freed_memory", "heap_setting"]

MMAP_THRESHOLD = 32 << 20  # glibc's upper limit for M_MMAP_THRESHOLD on 64-bit (mallopt(3))
TRIM_THRESHOLD = 256 << 20
_M_TRIM_THRESHOLD = -1  # <malloc.h>
_M_MMAP_THRESHOLD = -3
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")

_setting: str | None = None


def _user_chose(environ: Mapping[str, str]) -> bool:
    return any(name in environ for name in _USER_SETTINGS) or "glibc.malloc" in environ.get("GLIBC_TUNABLES", "")


def reuse_freed_memory(environ: Mapping[str, str] | None = None) -> str:
    """Set glibc's thresholds once per process; returns what was done (also kept for ``heap_setting``)."""
    global _setting
    if _setting is not None:
        return _setting
    environ = os.environ if environ is None else environ
    if _user_chose(environ):
        _setting = "user's MALLOC_* settings"
    elif platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        _setting = "system default (not glibc)"
    else:
        try:
            libc = ctypes.CDLL("libc.so.6")  # glibc's soname; find_library would run ldconfig at every import
            done = (libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                    and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1)
        except (OSError, AttributeError):
            done = False
        _setting = (f"glibc mmap threshold {MMAP_THRESHOLD >> 20} MB, trim {TRIM_THRESHOLD >> 20} MB"
                    if done else "system default (mallopt refused)")
    return _setting


def heap_setting() -> str | None:
    """What ``reuse_freed_memory`` did in this process (None before it ran): for benchmark records."""
    return _setting
