"""videodeblur: real-time video motion deblurring with a lightweight progressive residual network.

Importing the package sets ``OMP_WAIT_POLICY=PASSIVE`` (unless the user set it) before torch loads:
on a small CPU box libgomp's busy-wait makes inference crawl while decode/encode threads compete.
It also asks glibc to keep freed frame-sized memory for reuse (``videodeblur.heap``): otherwise every
forward pass re-faults its activations from the kernel, about a fifth of the CPU time.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from videodeblur.heap import reuse_freed_memory  # noqa: E402

reuse_freed_memory()

__version__ = "0.1.0"

__all__ = ["Deblurrer", "__version__"]


def __getattr__(name: str):  # PEP 562: ``from videodeblur import Deblurrer`` without importing torch up front
    if name == "Deblurrer":
        from videodeblur.api import Deblurrer

        return Deblurrer
    raise AttributeError(f"module 'videodeblur' has no attribute {name!r}")
