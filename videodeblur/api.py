"""The three-line library API.

>>> from videodeblur import Deblurrer
>>> d = Deblurrer("lprn-rt")            # or Deblurrer() for the device's default model
>>> stats = d.file("in.mp4", "out.mp4")  # a RunStats; stats.to_dict() is the CLI's --json object

``d.frames(array)`` deblurs uint8 RGB frames in memory (``H×W×3`` or ``N×H×W×3``) and
``d.image(src, dst)`` one image file. The engine (model, device, precision) is built on first use
and reused by every call; one Deblurrer may be used from several threads.
"""
from __future__ import annotations

import dataclasses
import errno
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from videodeblur.errors import ConfigError, FrameError, InputNotFoundError, OutputError, VideoDeblurError
from videodeblur.notices import Warn

if TYPE_CHECKING:
    from videodeblur.pipeline import Engine, RunStats
    from videodeblur.pipeline.options import ProgressCallback

__all__ = ["Deblurrer"]


class Deblurrer:
    """A model on a device, ready for files, frames and images.

    ``model``: a shipped name (``lprn``, ``lprn-rt``, ``lprn-fast``), a ``.pt`` path, or None for the
    default on the chosen device. The other arguments, by keyword, are the fields of
    :class:`videodeblur.pipeline.EngineOptions` (``device``, ``precision``, ``batch_size``, ``tile``,
    ``threads``, ``memory_budget``...); an unknown one is a ConfigError.

    ``threads``: torch's CPU threads. With None (the default) the engine sets torch's thread count to
    the cores this process may use when it is built, and torch's setting is one for the whole
    process: pass ``threads`` to choose it (e.g. to leave cores to the rest of your program).
    """

    def __init__(self, model: str | Path | None = None, *, device: str = "auto", precision: str = "auto",
                 batch_size: int | None = None, tile: int | None = None, compile: bool = False,
                 **options: Any) -> None:
        from videodeblur.pipeline import EngineOptions

        fields = {field.name for field in dataclasses.fields(EngineOptions)}
        if unknown := sorted(set(options) - fields):
            raise ConfigError(f"unknown Deblurrer option(s) {', '.join(unknown)}; the options are "
                              f"{', '.join(sorted(fields))}")
        self.model = None if model is None else str(model)
        self.options = EngineOptions(device=device, precision=precision, batch_size=batch_size, tile=tile,
                                     compile=compile, **options)
        self._engine: Engine | None = None
        self._engine_lock = threading.Lock()  # first calls from several threads build one engine

    @property
    def engine(self) -> "Engine":
        """The :class:`videodeblur.pipeline.Engine` behind this object (loaded on first use)."""
        if self._engine is None:
            with self._engine_lock:
                if self._engine is None:  # another thread may have built it while this one waited
                    from videodeblur.pipeline import Engine

                    self._engine = Engine.from_name(self.model, self.options)
        return self._engine

    def file(self, src: str | Path, dst: str | Path, *, encoder: str = "auto", crf: int = 18,
             progress: "ProgressCallback | None" = None, resume: bool = False, start_s: float = 0.0,
             duration_s: float | None = None, deinterlace: bool = False, side_by_side: bool = False,
             stop: threading.Event | None = None, max_frames: int | None = None,
             engines: int | None = None, warn: Warn | None = None) -> "RunStats":
        """Deblur the video file ``src`` into ``dst`` (frames, timing, rotation, colour tags and audio
        kept) and return the run's statistics. ``resume``: ``dst`` is an interrupted run's output,
        to go on from; ``start_s`` / ``duration_s``: only that part; ``deinterlace``: bwdif first;
        ``side_by_side``: the source and the deblurred picture next to each other (the ``video``
        command's ``--resume``, ``--start``, ``--duration``, ``--deinterlace``, ``--side-by-side``).
        ``stop``: set it (from another thread or the ``progress`` callback) to end the run early: the
        output is finalised and ``stats.extra["stopped_early"]`` is True (a run stopped before its
        first frame leaves no file and has 0 frames). ``max_frames``: end after that many frames.
        ``engines``: on a CPU, copies of the model run side by side (None: two where the engine has
        two threads or more; the ``video`` command's ``--engines``).
        ``warn``: called with each of the run's warnings (``stats.warnings``) once it ends; None:
        they are only in the stats."""
        from videodeblur.pipeline import RunOptions, deblur_file

        _check_path(src, InputNotFoundError, "input not found: {}")
        _check_path(dst, OutputError, "cannot write {}")
        options = RunOptions(encoder=encoder, crf=crf, progress=progress, resume=resume, start_s=start_s,
                             duration_s=duration_s, deinterlace=deinterlace, side_by_side=side_by_side, stop=stop,
                             max_frames=max_frames, engines=engines)
        stats = deblur_file(src, dst, self.engine, options)
        for line in stats.warnings if warn is not None else ():
            warn(line)
        return stats

    def frames(self, frames: np.ndarray) -> np.ndarray:
        """Deblur uint8 RGB frames: ``H×W×3`` or ``N×H×W×3`` in, the same shape out."""
        try:
            frames = np.asarray(frames)
        except ValueError as err:  # a list of frames of different sizes: numpy's message names no frame
            raise FrameError("frames must be uint8 RGB, H×W×3 or N×H×W×3: a list of frames must all have one "
                             "size (deblur frames of other sizes in separate calls)") from err
        # named as given, not as the engine would see it after adding an axis
        if frames.ndim not in (3, 4) or frames.dtype != np.uint8 or frames.shape[-1] != 3:
            raise FrameError(f"frames must be uint8 RGB, H×W×3 or N×H×W×3, got {frames.dtype} {frames.shape}")
        if frames.ndim == 3:
            return self.engine.process(frames[np.newaxis])[0]
        return self.engine.process(frames)

    def image(self, src: str | Path, dst: str | Path, *, warn: Warn | None = None) -> Path:
        """Deblur one image file (PNG, JPEG, TIFF, WebP, AVIF, BMP) into ``dst``, a file or an existing folder
        (which gets the input's name, as ``videodeblur image -o FOLDER`` does); mode, depth and size are kept.
        ``dst`` may not be ``src`` under any name (a symbolic or hard link: OutputError). What the output
        format cannot hold (alpha, 16 bits) goes to ``warn``, one line; None: a ``UserWarning``."""
        from videodeblur.images import deblur_image_file, plan_images

        _check_path(src, InputNotFoundError, "input not found: {}")
        _check_path(dst, OutputError, "cannot write {}")
        if Path(dst).is_dir() and not Path(src).is_dir():
            dst = plan_images([src], dst, warn=warn)[0].dst
        return deblur_image_file(src, dst, self.engine, warn=warn)


def _check_path(path: str | Path, error: type[VideoDeblurError], message: str) -> None:
    """``error`` (``message`` naming the path) for a path no file can have: a NUL byte in it, or a
    name longer than the file system allows; the OS would raise a bare ValueError or OSError later."""
    from videodeblur.video.locations import is_stdin, is_url

    if is_url(path) or is_stdin(path):
        return
    text = os.fspath(path)
    if "\0" in str(text):
        raise error(f"{message.format(repr(str(text)))}: a path cannot hold a NUL byte")
    try:
        os.stat(text)
    except OSError as err:
        if err.errno == errno.ENAMETOOLONG:
            raise error(f"{message.format(text)}: {err.strerror} (a name in the path is longer than the file "
                        "system allows)") from err
