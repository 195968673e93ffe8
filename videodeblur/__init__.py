"""videodeblur: real-time video motion deblurring with a lightweight progressive residual network.

Importing the package sets ``OMP_WAIT_POLICY=PASSIVE`` (unless the user set it) before torch loads:
on a small CPU box libgomp's busy-wait makes inference crawl while decode/encode threads compete.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

__all__ = ["Deblurrer", "__version__"]


def __getattr__(name: str):  # PEP 562: ``from videodeblur import Deblurrer`` without importing torch up front
    if name == "Deblurrer":
        from videodeblur.api import Deblurrer

        return Deblurrer
    raise AttributeError(f"module 'videodeblur' has no attribute {name!r}")
