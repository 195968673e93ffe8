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
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from videodeblur.errors import ConfigError, FrameError, InputNotFoundError, OutputError, VideoDeblurError
from videodeblur.notices import Warn

if TYPE_CHECKING:
    import torch

    from videodeblur.pipeline import Engine, EngineOptions, RunStats
    from videodeblur.pipeline.options import ProgressCallback

__all__ = ["Deblurrer"]


class Deblurrer:
    """A model on a device, ready for files, frames and images.

    ``model``: a shipped name (``lprn``, ``lprn-rt``, ``lprn-fast``), a ``.pt`` path, or None for the
    default on the chosen device. The other arguments, by keyword, are the fields of
    :class:`videodeblur.pipeline.EngineOptions` (``device``, ``precision``, ``batch_size``, ``tile``,
    ``threads``, ``memory_budget``...); an unknown one is a ConfigError.

    A model name or path that cannot be one (an unknown name, a missing file), and a device or precision
    this machine lacks (``device="cuda"`` without CUDA, fp16 on the CPU), are refused here; the weights
    themselves are read, and a corrupt file refused, on first use.

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
        if model is not None and not isinstance(model, (str, os.PathLike)):  # 3 was taken as the name '3'
            raise ConfigError(f"model must be a shipped name, a weights path or None, got {model!r}")
        self.model = None if model is None else os.fspath(model)
        self.options = EngineOptions(device=device, precision=precision, batch_size=batch_size, tile=tile,
                                     compile=compile, **options)
        _check_usable(self.model, self.options)
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

        _check_path("src", src, InputNotFoundError, "input not found: {}", urls=True)
        _check_path("dst", dst, OutputError, "cannot write {}")
        _check_warn(warn)
        options = RunOptions(encoder=encoder, crf=crf, progress=progress, resume=resume, start_s=start_s,
                             duration_s=duration_s, deinterlace=deinterlace, side_by_side=side_by_side, stop=stop,
                             max_frames=max_frames, engines=engines)
        stats = deblur_file(src, dst, self.engine, options)
        for line in stats.warnings if warn is not None else ():
            warn(line)
        return stats

    def frames(self, frames: np.ndarray | torch.Tensor | Sequence[np.ndarray]) -> np.ndarray:
        """Deblur uint8 RGB frames: ``H×W×3`` or ``N×H×W×3`` in (an array, a tensor on the CPU or a GPU,
        or a list of same-size frames), a new ``np.ndarray`` of the same shape out. RGB order: give OpenCV's BGR
        frames as ``frame[..., ::-1]`` (the network does not treat its three channels alike, so BGR in is
        not the same picture deblurred). Other dtypes, grey or RGBA frames, and no frames or pixels at
        all are a FrameError."""
        array = _as_array(frames)
        # named as given, not as the engine would see it after adding an axis
        if array.ndim not in (3, 4) or array.dtype != np.uint8 or array.shape[-1] != 3:
            if array.shape == (0,) and isinstance(frames, (list, tuple)):
                raise FrameError(f"{_SOME_PIXELS}, got an empty {type(frames).__name__}")
            hint = ""
            if array.ndim in (3, 4) and array.shape[-3] == 3 and array.shape[-1] != 3:  # torch's own layout
                order = "1, 2, 0" if array.ndim == 3 else "0, 2, 3, 1"
                hint = (f" (channels first? put them last: .permute({order}) for a tensor, .transpose({order}) for "
                        "an array)")
            raise FrameError(f"{_FRAMES}, got {array.dtype} {array.shape}{hint}")
        if min(array.shape[:-1]) < 1:
            raise FrameError(f"{_SOME_PIXELS}, got shape {array.shape}")
        if array.ndim == 3:
            return self.engine.process(array[np.newaxis])[0]
        return self.engine.process(array)

    def image(self, src: str | Path, dst: str | Path, *, warn: Warn | None = None) -> Path:
        """Deblur one image file (PNG, JPEG, TIFF, WebP, AVIF, BMP) into ``dst``, a file or an existing folder
        (which gets the input's name, as ``videodeblur image -o FOLDER`` does); mode, depth and size are kept.
        ``dst`` may not be ``src`` under any name (a symbolic or hard link: OutputError). What the output
        format cannot hold (alpha, 16 bits) goes to ``warn``, one line; None: a ``UserWarning``."""
        from videodeblur.images import deblur_image_file, plan_images

        _check_path("src", src, InputNotFoundError, "input not found: {}")
        _check_path("dst", dst, OutputError, "cannot write {}")
        _check_warn(warn)
        if Path(dst).is_dir() and not Path(src).is_dir():
            dst = plan_images([src], dst, warn=warn)[0].dst
        return deblur_image_file(src, dst, self.engine, warn=warn)


_FRAMES = "frames must be uint8 RGB, H×W×3 or N×H×W×3"
_SOME_PIXELS = "frames must hold at least one frame of at least 1×1 pixels"


def _as_array(frames: Any) -> np.ndarray:
    """``frames`` as a numpy array, a tensor copied off its device first; FrameError where numpy cannot
    read it (a ragged list, a tensor that requires grad or is of a dtype numpy lacks)."""
    import torch  # here: importing the package loads no torch (the engine the frames go to loads it)

    if isinstance(frames, torch.Tensor):
        if frames.dtype != torch.uint8:  # before numpy: bf16 or a tensor needing grad was torch's own error
            raise FrameError(f"{_FRAMES}, got {frames.dtype} {tuple(frames.shape)}")
        try:
            frames = frames.detach().cpu()
        except (RuntimeError, NotImplementedError) as err:  # a meta tensor holds no values
            raise FrameError(f"{_FRAMES}: a Tensor on {frames.device} cannot be copied to the host "
                             f"({' '.join(str(err).split())})") from err
    try:
        return np.asarray(frames)
    except ValueError as err:  # a list of frames of different sizes: numpy's message names no frame
        raise FrameError(f"{_FRAMES}: a list of frames must all have one size (deblur frames of other sizes in "
                         "separate calls)") from err
    except (TypeError, RuntimeError) as err:  # e.g. a list of tensors on a GPU
        raise FrameError(f"{_FRAMES}: a {type(frames).__name__} cannot be read as an array "
                         f"({' '.join(str(err).split())})") from err


def _check_usable(model: str | None, options: "EngineOptions") -> None:
    """Refuse at once what the first call would, without reading any weights: a model that is no shipped
    name and no file (load_model raises before loading anything for those: unknown name, missing path,
    folder, nothing given), and an explicit device or precision this machine lacks. ``auto`` is left
    to the engine, so that a Deblurrer made before a fork does not start CUDA in the parent."""
    from videodeblur.model import load_model
    from videodeblur.model.registry import shipped_name
    from videodeblur.pipeline.engine import resolve_device, resolve_precision

    if model is not None and shipped_name(model) is None:
        # a NUL byte or an over-long name: is_file and load_model would raise bare ValueError/OSError
        _check_path("model", model, InputNotFoundError, "weights file not found: {}")
        if not Path(model).expanduser().is_file():
            load_model(model)
    if options.device != "auto":
        resolve_precision(options.precision, resolve_device(options.device))


def _check_warn(warn: Warn | None) -> None:
    """ConfigError for a ``warn`` that is no function: it is called only once the output is written."""
    if warn is not None and not callable(warn):
        raise ConfigError(f"warn must be a function taking one line, got {warn!r}")


def _check_path(name: str, path: str | Path, error: type[VideoDeblurError], message: str, *,
                urls: bool = False) -> None:
    """ConfigError for a ``path`` (the argument ``name``) that is no path, and ``error`` (``message``
    naming it) for one no file can have: a NUL byte in it, or a name longer than the file system
    allows; the OS would raise a bare TypeError, ValueError or OSError later. So too for a URL of a
    scheme not opened here (``ftp://``; ``urls``: stream URLs are read): as a path, it was a folder
    "ftp:/user:pass@host" not found, its password shown."""
    from videodeblur.paths import check_nameable
    from videodeblur.video.locations import is_stdin, is_url, redacted, scheme_not_read

    if not isinstance(path, str) and not (isinstance(path, os.PathLike) and isinstance(os.fspath(path), str)):
        raise ConfigError(f"{name} must be a path (str or os.PathLike), got {path!r}")
    if why := scheme_not_read(path, urls=urls):
        raise error(f"{message.format(redacted(path))}: {why}")
    if not (is_url(path) or is_stdin(path)):
        check_nameable(path, error, message)
