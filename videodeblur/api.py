"""The three-line library API.

>>> from videodeblur import Deblurrer
>>> d = Deblurrer("lprn-rt")            # or Deblurrer() for the device's default model
>>> stats = d.file("in.mp4", "out.mp4")  # a RunStats; stats.to_dict() is the CLI's --json object

``d.frames(array)`` deblurs uint8 RGB frames in memory (``H×W×3`` or ``N×H×W×3``) and
``d.image(src, dst)`` one image file. The engine (model, device, precision) is built on first use
and reused by every call.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from videodeblur.errors import FrameError

if TYPE_CHECKING:
    from videodeblur.pipeline import Engine, RunStats
    from videodeblur.pipeline.runner import ProgressCallback

__all__ = ["Deblurrer"]


class Deblurrer:
    """A model on a device, ready for files, frames and images.

    ``model``: a shipped name (``lprn``, ``lprn-rt``, ``lprn-fast``), a ``.pt`` path, or None for the
    default on the chosen device. The other arguments are those of
    :class:`videodeblur.pipeline.EngineOptions`.
    """

    def __init__(self, model: str | Path | None = None, *, device: str = "auto", precision: str = "auto",
                 batch_size: int | None = None, tile: int | None = None, compile: bool = False) -> None:
        from videodeblur.pipeline import EngineOptions

        self.model = None if model is None else str(model)
        self.options = EngineOptions(device=device, precision=precision, batch_size=batch_size, tile=tile,
                                     compile=compile)
        self._engine: Engine | None = None

    @property
    def engine(self) -> "Engine":
        """The :class:`videodeblur.pipeline.Engine` behind this object (loaded on first use)."""
        if self._engine is None:
            from videodeblur.pipeline import Engine

            self._engine = Engine.from_name(self.model, self.options)
        return self._engine

    def file(self, src: str | Path, dst: str | Path, *, encoder: str = "auto", crf: int = 18,
             progress: "ProgressCallback | None" = None, resume: bool = False, start_s: float = 0.0,
             duration_s: float | None = None, deinterlace: bool = False, side_by_side: bool = False) -> "RunStats":
        """Deblur the video file ``src`` into ``dst`` (frames, timing, rotation, colour tags and audio
        kept) and return the run's statistics. ``resume``: ``dst`` is an interrupted run's output,
        to go on from; ``start_s`` / ``duration_s``: only that part; ``deinterlace``: bwdif first;
        ``side_by_side``: the source and the deblurred picture next to each other (the ``video``
        command's ``--resume``, ``--start``, ``--duration``, ``--deinterlace``, ``--side-by-side``)."""
        from videodeblur.pipeline import RunOptions, deblur_file

        return deblur_file(src, dst, self.engine,
                           RunOptions(encoder=encoder, crf=crf, progress=progress, resume=resume, start_s=start_s,
                                      duration_s=duration_s, deinterlace=deinterlace, side_by_side=side_by_side))

    def frames(self, frames: np.ndarray) -> np.ndarray:
        """Deblur uint8 RGB frames: ``H×W×3`` or ``N×H×W×3`` in, the same shape out."""
        frames = np.asarray(frames)
        if frames.ndim == 3 and frames.shape[-1] == 3:
            return self.engine.process(frames[np.newaxis])[0]
        if frames.ndim != 4:  # named as given, not as the engine would see it after adding an axis
            raise FrameError(f"frames must be uint8 RGB, H×W×3 or N×H×W×3, got {frames.dtype} {frames.shape}")
        return self.engine.process(frames)

    def image(self, src: str | Path, dst: str | Path) -> Path:
        """Deblur one image file (PNG, JPEG, TIFF, WebP, AVIF, BMP) into ``dst``; mode, depth and size are kept."""
        from videodeblur.images import deblur_image_file

        return deblur_image_file(src, dst, self.engine)
