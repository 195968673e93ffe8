"""Typed errors: the library raises these, the CLI turns them into one line and exit code 1.

Each also subclasses the builtin a caller would naturally catch, so ``except ValueError`` keeps
working for code that does not know this package.
"""
from __future__ import annotations

__all__ = [
    "VideoDeblurError",
    "InputNotFoundError",
    "UnreadableInputError",
    "DecodeError",
    "EncodeError",
    "OutputError",
    "ModelNotFoundError",
    "WeightsError",
    "ConfigError",
    "DeviceError",
    "SourceError",
    "FrameError",
    "DivergedError",
    "short_error",
]


class VideoDeblurError(Exception):
    """Base of every error a user can cause; its message is one line that says what to do."""


class InputNotFoundError(VideoDeblurError, FileNotFoundError):
    """An input path (file or folder) does not exist."""


class UnreadableInputError(VideoDeblurError, ValueError):
    """The input exists but is not an image/video we can read (wrong type, empty folder, no video stream)."""


class DecodeError(VideoDeblurError, ValueError):
    """Decoding failed before any frame came out (corrupt or truncated stream, zero frames)."""


class EncodeError(VideoDeblurError, RuntimeError):
    """The encoder could not be opened or failed while writing."""


class OutputError(VideoDeblurError, OSError):
    """The output cannot be written (unwritable folder, bad extension)."""


class ModelNotFoundError(VideoDeblurError, LookupError):
    """A model name is unknown and is not a path to a weights file."""


class WeightsError(VideoDeblurError, ValueError):
    """A weights file is corrupt, truncated, or does not match its config."""


class ConfigError(VideoDeblurError, ValueError):
    """A config file or value is invalid."""


class DeviceError(VideoDeblurError, RuntimeError):
    """The requested device or precision is not available here (e.g. ``--device cuda`` without a GPU)."""


class SourceError(VideoDeblurError, OSError):
    """A live source (camera index, device path, URL) cannot be opened or stopped delivering frames."""


class FrameError(VideoDeblurError, ValueError):
    """Frames handed to the library are not what it takes (dtype, shape, order of timestamps)."""


class DivergedError(VideoDeblurError, ArithmeticError):
    """A training run's loss or gradients stopped being finite numbers: the step is not taken."""


def short_error(err: BaseException) -> str:
    """An FFmpeg error in one line, without the file name its ``str()`` repeats."""
    text = getattr(err, "strerror", None) or str(err)
    return " ".join(str(text).split()) or type(err).__name__
