"""Deeper-than-8-bit output from an 8-bit network.

Why: the network works on 8-bit frames, but a 10-bit video or a 16-bit PNG written back at 8 bits
bands every smooth gradient into 256 levels. Instead the network's change (its 8-bit output minus
its 8-bit input) is added to the deep source in 8-bit steps, so every sample keeps the source's
finer bits and only what the network changed moves.
"""
from __future__ import annotations

import numpy as np

__all__ = ["STEP", "VIDEO_STEP", "add_change"]

STEP = 257  # one 8-bit level in a 16-bit image's samples (65535 / 255)
# one 8-bit level in a video's 16-bit frames, whose white is 65280 (255 · 256) as swscale's way to
# and from YUV puts it (video.colour.RgbConverter): 257 there made a change 0.4 % too large
# (+120 levels written 1.8 codes bright at 10 bits)
VIDEO_STEP = 256


def add_change(deep: np.ndarray, before: np.ndarray, after: np.ndarray, *, step: int = STEP) -> np.ndarray:
    """``deep`` (uint16, ``step`` to an 8-bit level) moved by the network's change from ``before`` to
    ``after`` (uint8, same shape)."""
    change = after.astype(np.int32) - before.astype(np.int32)
    return np.clip(deep.astype(np.int32) + change * step, 0, 65535).astype(np.uint16)
