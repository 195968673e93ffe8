"""Make blurred demo material from sharp footage with this project's own synthesis (samples/)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from videodeblur.train.synthesis import apply_kernel, gopro_blur, shake_kernel, to_uint8
from videodeblur.video import FrameReader, FrameWriter

__all__ = ["blur_video", "shake_image"]


def blur_video(source: str | Path, destination: str | Path, *, exposure: int = 13, upsample: int = 8,
               cuts: Sequence[int] = (), crf: int = 20) -> int:
    """Write ``source`` with GoPro-style motion blur (:func:`gopro_blur`: ``exposure`` frames of the
    video raised to ``upsample`` × its rate, averaged in linear light), never blending across a shot
    cut (``cuts``: first frames of new shots). Keeps timestamps, frame rate and audio. Returns the
    frame count."""
    with FrameReader(source) as reader:
        decoded = list(reader)
        info = reader.info
    images = [f.image for f in decoded]
    bounds = [0, *sorted(c for c in cuts if 0 < c < len(images)), len(images)]
    with FrameWriter.like(destination, info, crf=crf) as writer:
        for first, stop in zip(bounds[:-1], bounds[1:]):
            for t in range(first, stop):
                before, after = images[max(first, t - 1)], images[min(stop - 1, t + 1)]
                blurred = gopro_blur(before, images[t], after, exposure=exposure, upsample=upsample)
                writer.write(to_uint8(blurred), pts=decoded[t].pts)
    return len(images)


def shake_image(image: np.ndarray, *, seed: int = 0, kernel_size: int = 21) -> np.ndarray:
    """uint8 RGB image blurred by a random camera-shake kernel in linear light (reproducible from ``seed``)."""
    rng = np.random.default_rng(seed)
    kernel = shake_kernel(rng, kernel_size, intensity=0.9)
    blurred = apply_kernel(image.astype(np.float32) / 255.0, kernel)
    return to_uint8(blurred)
