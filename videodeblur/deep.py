"""Deeper-than-8-bit output from an 8-bit network.

Why: the network works on 8-bit frames, but a 10-bit video or a 16-bit PNG written back at 8 bits
bands every smooth gradient into 256 levels. Instead the network's change (its 8-bit output minus
its 8-bit input) is added to the deep source in 8-bit steps, so every sample keeps the source's
finer bits and only what the network changed moves.
"""
from __future__ import annotations

import numpy as np

__all__ = ["STEP", "add_change"]

STEP = 257  # one 8-bit level in 16-bit samples (65535 / 255)


def add_change(deep: np.ndarray, before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """``deep`` (uint16) moved by the network's change from ``before`` to ``after`` (uint8, same shape)."""
    change = after.astype(np.int32) - before.astype(np.int32)
    return np.clip(deep.astype(np.int32) + change * STEP, 0, 65535).astype(np.uint16)
