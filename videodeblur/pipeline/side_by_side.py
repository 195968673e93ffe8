"""The picture ``--side-by-side`` writes: the source and its deblurred copy in one frame.

Apart from the runner because the live loop draws it too and ``--resume`` compares against it.
"""
from __future__ import annotations

import numpy as np

__all__ = ["side_by_side"]


def side_by_side(source: np.ndarray, deblurred: np.ndarray, rotation: int) -> np.ndarray:
    """``source`` and ``deblurred`` (H×W×C, as stored) in one picture that shows the source on the left
    once a player turns it by ``rotation`` (degrees counter-clockwise, as PyAV reads the display
    matrix): side by side for 0, swapped for 180, one above the other for a quarter turn."""
    quarter = round(rotation / 90) % 4
    first, second = (deblurred, source) if quarter in (2, 3) else (source, deblurred)
    return np.concatenate([first, second], axis=0 if quarter in (1, 3) else 1)
