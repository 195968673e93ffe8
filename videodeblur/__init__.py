"""videodeblur: real-time video motion deblurring with a lightweight progressive residual network.

Importing the package sets ``OMP_WAIT_POLICY=PASSIVE`` (unless the user set it) before torch loads:
on a small CPU box libgomp's busy-wait makes inference crawl while decode/encode threads compete.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
