"""Deblur still images: PNG, JPEG, TIFF, WebP, AVIF or BMP in and out, colour, depth and alpha kept.

Rules, so a user knows what comes back:

- The network sees RGB. A greyscale input is replicated to three channels and its output is written
  back as greyscale (BT.601 luma), so the output has the input's mode.
- An alpha channel passes through untouched to a PNG, TIFF, WebP or AVIF output; JPEG and BMP outputs
  have no alpha, so it is dropped there (the colour is written as it is, not composited). OpenCV reads grey+alpha PNGs as
  RGBA, so those come back as RGBA PNGs with equal colour channels.
- JPEG outputs are written at quality 95 without chroma subsampling (4:4:4), so colour edges survive.
- 16-bit PNGs and TIFFs (a photo editor's exports) go through the network as 8-bit (it works on
  8-bit frames); a PNG or TIFF output is 16-bit again: the network's change is added to the 16-bit
  source, so what it leaves alone keeps every bit. JPEG, WebP, AVIF and BMP outputs are 8-bit.
- WebP and AVIF outputs are written at quality 95, TIFF with OpenCV's lossless default.
- A JPEG's EXIF orientation is applied on reading, so the output stands upright in any viewer. A
  JPEG written from a JPEG keeps the source's EXIF (date, place, camera; orientation set to 1),
  XMP and ICC colour profile, and a PNG from a PNG its colour, EXIF, text, time and pixel-size
  chunks (``videodeblur.image_metadata``); across formats none are carried.
- One input file gives one output file (or ``OUTPUT/<name>`` when ``OUTPUT`` is an existing folder or
  has no extension); several files or a folder give a folder holding outputs with the input names.
  Folders are read one level deep, image files only (the extensions above, any case), in name order.

Everything is checked before the network runs (:func:`plan_images`), so a typo fails in milliseconds.
"""
from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import Iterator, Protocol, Sequence

import cv2
import numpy as np

from videodeblur.deep import add_change
from videodeblur.errors import InputNotFoundError, OutputError, UnreadableInputError
from videodeblur.image_metadata import insert_png_chunks, insert_segments, metadata_segments, png_metadata_chunks
from videodeblur.paths import VIDEO_SUFFIXES, check_distinct_outputs, default_outputs, expand_inputs, make_folder

__all__ = ["IMAGE_EXTENSIONS", "FrameProcessor", "Image", "ImageJob", "read_image", "write_image",
           "plan_images", "deblur_image_file", "deblur_images"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".avif", ".bmp")
_ALPHA_EXTENSIONS = (".png", ".tif", ".tiff", ".webp", ".avif")
_DEEP_EXTENSIONS = (".png", ".tif", ".tiff")  # 16 bits per sample
JPEG_QUALITY = 95
WEBP_QUALITY = 95
AVIF_QUALITY = 95


class FrameProcessor(Protocol):
    """What deblurs: ``videodeblur.pipeline.Engine`` or anything with the same ``process``."""

    def process(self, frames: np.ndarray) -> np.ndarray:
        """uint8 ``N×H×W×3`` RGB in, the same shape and dtype out."""
        ...


@dataclasses.dataclass(frozen=True)
class Image:
    """A decoded image: ``rgb`` is uint8 ``H×W×3``; ``alpha`` is uint8 ``H×W`` or None."""

    rgb: np.ndarray
    grey: bool = False
    alpha: np.ndarray | None = None
    jpeg_metadata: bytes = b""  # a JPEG source's EXIF/XMP/ICC segments, for a JPEG output
    png_metadata: tuple[tuple[bytes, bytes], ...] = ()  # a PNG source's colour/EXIF/text chunks, for a PNG output
    deep: np.ndarray | None = None  # a 16-bit PNG source's samples as read (OpenCV's channel order), for a PNG output

    def __post_init__(self) -> None:
        if self.rgb.dtype != np.uint8 or self.rgb.ndim != 3 or self.rgb.shape[2] != 3:
            raise ValueError(f"Image.rgb must be uint8 H×W×3, got {self.rgb.dtype} {self.rgb.shape}")
        if self.alpha is not None and self.alpha.shape != self.rgb.shape[:2]:
            raise ValueError(f"Image.alpha must be H×W, got {self.alpha.shape}")

    def with_rgb(self, rgb: np.ndarray) -> Image:
        """The same image (mode, alpha) with new colour pixels."""
        return dataclasses.replace(self, rgb=rgb)


@dataclasses.dataclass(frozen=True)
class ImageJob:
    """One image to deblur: read ``src``, write ``dst``."""

    src: Path
    dst: Path


def read_image(path: str | Path) -> Image:
    """Decode an image file (by content, whatever its extension) to 8-bit RGB plus mode and alpha."""
    path = Path(path)
    if not path.exists():
        raise InputNotFoundError(f"input not found: {path}")
    if path.is_dir():
        raise UnreadableInputError(f"{path} is a folder, not an image file")
    try:
        data = np.fromfile(path, dtype=np.uint8)  # bytes + imdecode: non-ASCII paths work too
    except OSError as err:
        raise UnreadableInputError(f"cannot read {path}: {err.strerror or err}") from err
    if data.size == 0:
        raise UnreadableInputError(f"{path} is empty, not an image")
    # JPEG: ANYCOLOR applies the EXIF orientation (UNCHANGED would not); it never has alpha anyway.
    flags = cv2.IMREAD_ANYCOLOR if _is_jpeg(data) else cv2.IMREAD_UNCHANGED
    with _quiet_opencv():
        pixels = cv2.imdecode(data, flags)
    if pixels is None:
        if Path(path).suffix.lower() in VIDEO_SUFFIXES:
            raise UnreadableInputError(f"{path} is a video, not an image; deblur it with `videodeblur video`")
        raise UnreadableInputError(f"{path} is not a readable image (corrupt, truncated or not PNG, JPEG, TIFF, "
                                   "WebP, AVIF or BMP)")
    image = _to_image(pixels, path)
    if _is_jpeg(data):
        return dataclasses.replace(image, jpeg_metadata=metadata_segments(data.tobytes()))
    return dataclasses.replace(image, png_metadata=tuple(png_metadata_chunks(data.tobytes())))


def write_image(path: str | Path, image: Image) -> Path:
    """Encode by the extension (:data:`IMAGE_EXTENSIONS`) in the image's mode; alpha to PNG, TIFF and
    WebP only, 16 bits to PNG and TIFF only."""
    path = Path(path)
    ext = _checked_extension(path)
    keep_alpha = image.alpha is not None and ext in _ALPHA_EXTENSIONS
    if image.grey:
        pixels = cv2.cvtColor(image.rgb, cv2.COLOR_RGB2GRAY)
        if keep_alpha:  # OpenCV writes no grey+alpha PNG: RGBA with equal colour channels instead
            pixels = np.dstack([pixels, pixels, pixels, image.alpha])
    else:
        pixels = cv2.cvtColor(image.rgb, cv2.COLOR_RGB2BGR)
        if keep_alpha:
            pixels = np.dstack([pixels, image.alpha])
    if ext in _DEEP_EXTENSIONS and image.deep is not None and image.deep.shape[:2] == pixels.shape[:2] \
            and image.deep.size == pixels.size:
        pixels = add_change(image.deep, (image.deep >> 8).astype(np.uint8), pixels.reshape(image.deep.shape))
    params = {  # JPEG: quality 95 and no chroma subsampling (4:4:4), so colour edges survive the round trip
        ".jpg": [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY, cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
                 cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444],
        ".webp": [cv2.IMWRITE_WEBP_QUALITY, WEBP_QUALITY],
        ".avif": [cv2.IMWRITE_AVIF_QUALITY, AVIF_QUALITY],
    }.get(".jpg" if ext == ".jpeg" else ext, [])
    ok, buffer = cv2.imencode(ext, pixels, params)
    if not ok:
        raise OutputError(f"cannot encode {path} as {ext[1:].upper()}")
    encoded = buffer.tobytes()
    if ext == ".png":
        encoded = insert_png_chunks(encoded, list(image.png_metadata))
    elif ext in (".jpg", ".jpeg"):
        encoded = insert_segments(encoded, image.jpeg_metadata)
    try:
        path.write_bytes(encoded)
    except OSError as err:
        raise OutputError(f"cannot write {path}: {err.strerror or err}") from err
    return path


def plan_images(inputs: Sequence[str | Path], output: str | Path | None) -> list[ImageJob]:
    """Check inputs and output and pair each input with its output path; creates output folders.
    No ``output``: each file beside itself as ``<name>-deblurred.<ext>``, a folder's into
    ``<folder>-deblurred/``.

    Raises InputNotFoundError (missing input), UnreadableInputError (a folder with no images),
    OutputError (bad extension, output is a file where a folder is needed, cannot create it, two
    inputs with one name, an output that would overwrite its input).
    """
    if not inputs:
        raise InputNotFoundError("no input given: name one or more image files (PNG, JPEG, TIFF, WebP, AVIF, BMP) or a folder")
    what = "images (*.png, *.jpg, *.tif, *.webp, *.avif, *.bmp)"
    if output is None:
        jobs = [ImageJob(Path(src), dst) for src, dst in default_outputs(inputs, IMAGE_EXTENSIONS, what,
                                                                         name=lambda src: Path(src).name)]
        return _checked_jobs(jobs)
    output = Path(output)
    found, any_folder = expand_inputs(inputs, IMAGE_EXTENSIONS, what)
    sources = [Path(src) for src in found]

    to_folder = any_folder or len(sources) > 1 or output.is_dir() or output.suffix == ""
    if to_folder:
        make_folder(output, file_suffixes=IMAGE_EXTENSIONS)
        jobs = [ImageJob(src, output / src.name) for src in sources]
    else:
        _checked_extension(output)
        make_folder(output.parent)
        jobs = [ImageJob(sources[0], output)]
    return _checked_jobs(jobs)


def _checked_jobs(jobs: list[ImageJob]) -> list[ImageJob]:
    check_distinct_outputs([(job.src, job.dst) for job in jobs])
    for job in jobs:
        _checked_extension(job.dst)
        if job.dst.exists() and job.dst.resolve() == job.src.resolve():
            raise OutputError(f"output {job.dst} is the input itself; choose another output path")
    return jobs


def deblur_image_file(src: str | Path, dst: str | Path, engine: FrameProcessor) -> Path:
    """Deblur one image file into ``dst`` (its format by its extension), keeping mode and size."""
    image = read_image(src)
    out = engine.process(image.rgb[np.newaxis])[0]
    return write_image(dst, image.with_rgb(np.ascontiguousarray(out)))


def deblur_images(inputs: Sequence[str | Path], output: str | Path, engine: FrameProcessor) -> list[Path]:
    """Deblur files and/or folders into ``output`` (a file or a folder; see the module rules).

    Returns the written paths in input order.
    """
    return [deblur_image_file(job.src, job.dst, engine) for job in plan_images(inputs, output)]


# ------------------------------------------------------------------------------------- helpers

def _is_jpeg(data: np.ndarray) -> bool:
    return data.size >= 3 and bytes(data[:3]) == b"\xff\xd8\xff"


@contextlib.contextmanager
def _quiet_opencv() -> Iterator[None]:
    """OpenCV logs decoder warnings to stderr; our error message says it once, in one line."""
    logging = cv2.utils.logging
    previous = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        logging.setLogLevel(previous)


def _to_image(pixels: np.ndarray, path: Path) -> Image:
    if pixels.dtype == np.uint16:
        image = _to_image((pixels >> 8).astype(np.uint8), path)  # the network sees the high byte
        two_channels = pixels.ndim == 3 and pixels.shape[2] == 2  # grey + alpha is written as RGBA: no 16-bit
        return image if two_channels else dataclasses.replace(image, deep=pixels)
    if pixels.dtype != np.uint8:
        raise UnreadableInputError(f"{path} has {pixels.dtype} samples; only 8- and 16-bit images are supported")
    if pixels.ndim == 2 or pixels.shape[2] == 1:
        grey = pixels.reshape(pixels.shape[:2])
        return Image(rgb=cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB), grey=True)
    if pixels.shape[2] == 2:  # grey + alpha (OpenCV may hand this back for some PNGs)
        return Image(rgb=cv2.cvtColor(pixels[..., 0], cv2.COLOR_GRAY2RGB), grey=True,
                     alpha=np.ascontiguousarray(pixels[..., 1]))
    if pixels.shape[2] == 4:
        return Image(rgb=cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGB), alpha=np.ascontiguousarray(pixels[..., 3]))
    return Image(rgb=cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB))


def _checked_extension(path: Path) -> str:
    ext = path.suffix.lower()
    if ext not in IMAGE_EXTENSIONS:
        raise OutputError(f"unsupported output extension {path.suffix or '(none)'!r} for {path}; "
                          f"use {', '.join(IMAGE_EXTENSIONS)}")
    return ext
