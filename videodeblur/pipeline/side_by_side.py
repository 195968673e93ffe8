"""The picture ``--side-by-side`` writes: the source and its deblurred copy in one frame.

Apart from the runner because the live loop draws it too and ``--resume`` compares against it.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["side_by_side"]


def side_by_side(source: np.ndarray, deblurred: np.ndarray, rotation: int,
                 mirror_matrix: Sequence[int] | None = None) -> np.ndarray:
    """``source`` and ``deblurred`` (H×W×C, as stored) in one picture that shows the source on the left
    once a player turns it by ``rotation`` (degrees counter-clockwise, as PyAV reads the display
    matrix): side by side for 0, swapped for 180, one above the other for a quarter turn. A mirroring
    display matrix (``mirror_matrix``, :attr:`~videodeblur.video.info.VideoInfo.mirror_matrix`) is
    followed instead: an angle cannot say a flip (a quarter turn with a flip reads as -90°, and put
    the source on the right)."""
    if mirror_matrix is not None:
        # a point (x, y) as stored is shown at x' = a x + c y (FFmpeg's display matrix)
        a, c = mirror_matrix[0], mirror_matrix[3]
        if abs(a) >= abs(c):  # stored left and right stay left and right, or swap
            first, second = (source, deblurred) if a > 0 else (deblurred, source)
            return np.concatenate([first, second], axis=1)
        first, second = (source, deblurred) if c > 0 else (deblurred, source)  # stored top shown left, or right
        return np.concatenate([first, second], axis=0)
    quarter = round(rotation / 90) % 4
    first, second = (deblurred, source) if quarter in (2, 3) else (source, deblurred)
    return np.concatenate([first, second], axis=0 if quarter in (1, 3) else 1)
