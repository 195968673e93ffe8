"""Deblur still images: PNG, JPEG, TIFF, WebP, AVIF or BMP in and out, colour, depth and alpha kept.

Rules, so a user knows what comes back:

- The network sees RGB. A greyscale input is replicated to three channels and its output is written
  back as greyscale (BT.601 luma), so the output has the input's mode.
- An alpha channel (a PNG's transparent palette entries or colour key too, a grey one's included)
  passes through untouched to a PNG, TIFF or WebP output (AVIF codes it lossily:
  within about 3 levels); JPEG and BMP outputs
  have no alpha, so it is dropped there (the colour is written as it is, not composited), with a
  warning. Grey + alpha stays grey + alpha in PNG and TIFF (OpenCV writes neither and reads no such
  TIFF: FFmpeg's PNG and TIFF codecs, through PyAV, do that; such PNGs are told by their header);
  WebP and AVIF have no grey + alpha mode, so those outputs are RGBA with equal colour channels.
- JPEG outputs are written at quality 95 without chroma subsampling (4:4:4), so colour edges survive.
- 16-bit PNGs and TIFFs (a photo editor's exports) go through the network as 8-bit (it works on
  8-bit frames); a PNG or TIFF output is 16-bit again: the network's change is added to the 16-bit
  source, so what it leaves alone keeps every bit. JPEG, WebP, AVIF and BMP outputs are 8-bit, with
  a warning. A 10- or 12-bit AVIF is read as a 16-bit picture (its samples spread over 16 bits).
- WebP and AVIF outputs are written at quality 95, TIFF with OpenCV's lossless default.
- A JPEG's EXIF orientation (a PNG's, in its eXIf chunk; a TIFF's tag; a WebP's EXIF chunk; an AVIF's rotation and
  mirror boxes, ``videodeblur.image_orientation``) is applied on reading, so the output
  stands upright in any viewer. A JPEG written from a JPEG keeps the source's EXIF (date, place, camera; orientation set to 1),
  XMP, ICC colour profile and comments, a PNG from a PNG its colour, EXIF, text, time and
  pixel-size chunks, and a TIFF from a TIFF its ICC profile (``videodeblur.image_metadata``).
  Across formats: a JPEG's, PNG's, TIFF's, WebP's or AVIF's EXIF goes into any JPEG, PNG, TIFF, WebP or AVIF
  output, orientation 1 (``videodeblur.image_exif``; BMP outputs are written without it, with a warning),
  the colour profile into any JPEG, PNG, TIFF, WebP or AVIF output (``videodeblur.icc_profile``), and pixel
  density (dpi) from any JPEG, PNG, TIFF or BMP to any of them; other metadata does not cross formats.
- One input file gives one output file (or ``OUTPUT/<name>`` when ``OUTPUT`` is an existing folder or
  has no extension); several files or a folder give a folder holding outputs with the input names.
  Folders are read one level deep, image files only (the extensions above, any case), in name order;
  images in their sub-folders are counted and left out, with a warning.
- An output that is an input under any name (the same path, a symbolic or a hard link) is refused.
- A JPEG or PNG cut short (a copy or download that did not finish) is read as far as it goes, a
  JPEG's missing part grey, as viewers show it, with a warning that gives what its decoder said; one
  that does not decode at all is an error that gives the decoder's reason, in one line.

Everything is checked before the network runs (:func:`plan_images`), so a typo fails in milliseconds.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import tempfile
import threading
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator, Protocol, Sequence

import av
import cv2
import numpy as np

from videodeblur.deep import add_change
from videodeblur.errors import InputNotFoundError, OutputError, UnreadableInputError
from videodeblur.image_metadata import (exif_orientation, insert_png_chunks, insert_segments, metadata_segments, png_colour_type,
                                        png_grey_key, png_metadata_chunks, png_orientation, read_dpi, tiff_icc_profile, tiff_photometric,
                                        tiff_samples_per_pixel, with_dpi, with_tiff_alpha,
                                        with_tiff_icc_profile)
from videodeblur.icc_profile import HOLDS_ICC, icc_profile, with_icc_profile
from videodeblur.image_exif import HOLDS_EXIF, exif_data, with_exif
from videodeblur.heif import heif_properties
from videodeblur.image_orientation import avif_transforms, webp_orientation
from videodeblur.notices import Warn, python_warning
from videodeblur.paths import (IMAGE_EXTENSIONS, VIDEO_SUFFIXES, check_distinct_outputs, check_no_empty_path,
                               check_outputs_apart, default_outputs, expand_inputs, make_folder,
                               new_folders_removed_if_empty, warn_of_subfolders)
from videodeblur.quiet_opencv import quiet_opencv

__all__ = ["IMAGE_EXTENSIONS", "FrameProcessor", "Image", "ImageJob", "Warn", "read_image", "write_image",
           "plan_images", "deblur_image_file", "deblur_images", "deblur_planned", "OnError"]

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
    deep: np.ndarray | None = None  # a 16-bit source's samples as written back (OpenCV's order; grey+alpha: H×W×2)
    dpi: tuple[float, float] | None = None  # dots per inch, from any source that records it, for any output that can
    tiff_icc: bytes = b""  # a TIFF source's colour profile, for a TIFF output
    icc: bytes = b""  # the source's colour profile, whatever its format, for an output of another
    exif: bytes = b""  # the source's EXIF (TIFF data, orientation 1), whatever its format, for an output of another
    source: str = ""  # the file it was read from, named in warnings

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


def read_image(path: str | Path, *, warn: Warn | None = None, partial: bool = True) -> Image:
    """Decode an image file (by content, whatever its extension) to 8-bit RGB plus mode and alpha.

    A JPEG cut short is read as far as it goes, as its viewers show it (its missing part grey), and
    so is a PNG that lacks only its end chunk; a PNG cut inside its image data is refused (libpng
    stops there). What the decoder said of the damage goes to ``warn``, one line; with ``partial=False``
    (training and evaluation pairs, where half a picture would be learnt or scored as whole) that is
    an UnreadableInputError instead. A file that does not decode at all is an UnreadableInputError
    that says the decoder's reason."""
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
    said: list[str] = []  # what libjpeg and libpng wrote to stderr themselves, past OpenCV's log level
    with quiet_opencv():  # our error or warning says it once, in one line
        with _c_stderr(said):
            pixels = _imdecode(data, flags, said)
        if pixels is None and (ended := _with_end_marker(data)) is not None:
            again: list[str] = []
            with _c_stderr(again):  # cut short: OpenCV refuses what libjpeg and libpng can read
                pixels = _imdecode(ended, flags, again)
            said = (again or ["it has no end marker"]) if pixels is not None else said or again
    if pixels is None:
        if Path(path).suffix.lower() in VIDEO_SUFFIXES or _holds_video(path):
            raise UnreadableInputError(f"{path} is a video, not an image; deblur it with `videodeblur video`")
        reason = f": {said[0]}" if said else ""
        raise UnreadableInputError(f"{path} is not a readable image (corrupt, truncated or not PNG, JPEG, TIFF, "
                                   f"WebP, AVIF or BMP){reason}")
    if said:
        more = f" (and {len(said) - 1} more)" if len(said) > 1 else ""
        if said[0].startswith("libpng warning"):  # e.g. a known-incorrect sRGB profile: the pixels are whole
            (warn or python_warning)(f"{path}: {said[0]}{more}")
        elif not partial:
            raise UnreadableInputError(f"{path} is damaged or cut short ({said[0]}{more})")
        else:
            (warn or python_warning)(f"{path} is damaged or cut short ({said[0]}{more}): the output shows what decoded")
    raw = data.tobytes()
    # OpenCV hands a 10- or 12-bit AVIF over as uint16 samples at that depth: spread them over 16 bits
    # (by bit replication: 1023 is 65535), or the high byte the network sees is black
    if pixels.dtype == np.uint16 and 8 < (bits := _avif_bits(raw)) < 16 and int(pixels.max()) < 1 << bits:
        pixels = (pixels << (16 - bits)) | (pixels >> (2 * bits - 16))
    grey_alpha_tiff = tiff_samples_per_pixel(raw) == 2
    grey_alpha = grey_alpha_tiff or png_colour_type(raw) == 4
    # OpenCV reads an 8-bit RGBA TIFF through libtiff's RGBA interface, which multiplies the colour by
    # a straight alpha: half-transparent pixels came out half as bright, darker again each pass
    rgba_tiff = (pixels.dtype == np.uint8 and tiff_samples_per_pixel(raw) == 4 and tiff_photometric(raw) == 2)
    if grey_alpha_tiff or rgba_tiff:  # OpenCV reads a grey + alpha TIFF as 8-bit grey: its alpha would be lost
        try:
            (frame,) = av.CodecContext.create("tiff", "r").decode(av.Packet(raw))
            if rgba_tiff:
                pixels = frame.to_ndarray(format="bgra")  # as OpenCV hands colour over: BGR(A)
            else:
                samples = _samples(frame)
                pixels = samples.astype(samples.dtype.newbyteorder("=")).reshape(frame.height, frame.width, 2)
        except (av.FFmpegError, ValueError) as err:
            kind = "an RGBA" if rgba_tiff else "a grey + alpha"
            raise UnreadableInputError(f"{path} is {kind} TIFF that FFmpeg cannot decode: {err}") from err
        pixels = _upright_pixels(pixels, exif_orientation(raw))  # as OpenCV turns the TIFFs it decodes itself
    elif pixels.ndim == 3 and pixels.shape[2] == 4 and tiff_photometric(raw) == _TIFF_CMYK \
            and tiff_samples_per_pixel(raw) == 4:  # OpenCV hands a CMYK TIFF over as BGRA: no alpha in the file
        pixels = np.ascontiguousarray(pixels[..., :3])
    elif pixels.ndim == 2 and (key := png_grey_key(raw)) is not None:  # grey + alpha, as OpenCV reads no key
        pixels = np.dstack([pixels, np.where(pixels == key, 0, np.iinfo(pixels.dtype).max).astype(pixels.dtype)])
    if (frames := _frame_count(path, raw)) > 1:
        (warn or python_warning)(f"{path} holds {frames} pictures (an animation or pages): only the first is deblurred")
    pixels = _upright_pixels(pixels, png_orientation(raw) if raw.startswith(_PNG_SIGNATURE) else webp_orientation(raw))
    pixels = _transformed(pixels, avif_transforms(raw))
    image = dataclasses.replace(_to_image(pixels, path, grey_alpha=grey_alpha), dpi=read_dpi(raw), source=str(path),
                                icc=icc_profile(raw), exif=exif_data(raw))
    if _is_jpeg(data):
        return dataclasses.replace(image, jpeg_metadata=metadata_segments(raw))
    # (a CMYK TIFF's print profile, which icc_profile leaves out, is not kept for a TIFF either: its pixels are RGB now)
    return dataclasses.replace(image, png_metadata=tuple(png_metadata_chunks(raw)),
                               tiff_icc=tiff_icc_profile(raw) if image.icc else b"")


def write_image(path: str | Path, image: Image, *, warn: Warn | None = None) -> Path:
    """Encode by the extension (:data:`IMAGE_EXTENSIONS`) in the image's mode; alpha to PNG, TIFF, WebP
    and AVIF only, 16 bits to PNG and TIFF only. What the format cannot hold goes to ``warn``, one line."""
    path = Path(path)
    ext = _checked_extension(path)
    if image.source:  # never over the file it was read from, under any name
        check_outputs_apart([(image.source, path)])
    keep_alpha = image.alpha is not None and ext in _ALPHA_EXTENSIONS
    own_encoder = image.grey and keep_alpha and ext in _DEEP_EXTENSIONS  # grey + alpha PNG/TIFF: FFmpeg's
    if image.grey:
        pixels = cv2.cvtColor(image.rgb, cv2.COLOR_RGB2GRAY)
        if own_encoder:
            pixels = np.dstack([pixels, image.alpha])
        elif keep_alpha:  # WebP and AVIF have no grey + alpha: RGBA with equal colour channels
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
    if own_encoder:
        encoded = _grey_alpha_encoded(pixels, "png" if ext == ".png" else "tiff")
    else:
        ok, buffer = cv2.imencode(ext, pixels, params)
        if not ok:
            raise OutputError(f"cannot encode {path} as {ext[1:].upper()}")
        encoded = buffer.tobytes()
    if ext == ".png":
        encoded = insert_png_chunks(encoded, list(image.png_metadata))
    elif ext in (".jpg", ".jpeg"):
        encoded = insert_segments(encoded, image.jpeg_metadata)
    elif ext in (".tif", ".tiff"):
        encoded = with_tiff_alpha(with_tiff_icc_profile(encoded, image.tiff_icc))
    # across formats (a JPEG's profile into a PNG), where it describes the picture as written: WebP
    # holds no grey, nor AVIF grey + alpha, and a grey profile in an RGB file cannot be used (a
    # colour-managed reader fails)
    written_grey = image.grey and ext != ".webp" and not (ext == ".avif" and keep_alpha)
    space = image.icc[16:20]  # the profile's data colour space
    profile_fits = space not in (b"GRAY", b"RGB ") or space == (b"GRAY" if written_grey else b"RGB ")
    if profile_fits:
        encoded = with_icc_profile(encoded, ext, image.icc)
    encoded = with_exif(encoded, ext, image.exif)  # (a same-format copy carries it as it was)
    encoded = with_dpi(encoded, image.dpi)
    try:
        path.write_bytes(encoded)
    except OSError as err:
        raise OutputError(f"cannot write {path}: {err.strerror or err}") from err
    lost = (*(("alpha",) if image.alpha is not None and not keep_alpha else ()),
            *(("depth",) if image.deep is not None and ext not in _DEEP_EXTENSIONS else ()))
    if lost:
        what, fate = _LOSSES[lost]
        (warn or python_warning)(f"{path}: {ext} cannot hold {what}{f' of {image.source}' if image.source else ''}; "
                                  f"{fate}")
    of = f" of {image.source}" if image.source else ""
    if image.icc and ext not in HOLDS_ICC:  # BMP
        (warn or python_warning)(f"{path}: written without the colour profile{of}, so colour-managed viewers may "
                                  "show it duller (.jpg, .png, .tiff, .webp and .avif keep it)")
    elif not profile_fits and not icc_profile(encoded):  # (a same-format copy carries it as it was)
        (warn or python_warning)(f"{path}: written without the colour profile{of}: it describes "
                                  f"{'grey' if space == b'GRAY' else 'RGB'} pictures, and {ext} holds this one as "
                                  f"{'grey' if written_grey else 'RGB'}")
    if image.exif and not exif_data(encoded):  # BMP, or past a JPEG's 64 KB
        why = ("it is larger than a JPEG's EXIF segment holds (64 KB)" if ext in HOLDS_EXIF else
               f"{ext} cannot carry it here (.jpg, .png, .tiff, .webp and .avif keep it)")
        (warn or python_warning)(f"{path}: written without the EXIF{of} (camera, date, place): {why}")
    return path


def plan_images(inputs: Sequence[str | Path], output: str | Path | None, *,
                warn: Warn | None = None) -> list[ImageJob]:
    """Check inputs and output and pair each input with its output path; creates output folders.
    No ``output``: each file beside itself as ``<name>-deblurred.<ext>``, a folder's into
    ``<folder>-deblurred/``. A folder's images in sub-folders are left out, and counted to ``warn``.

    Raises InputNotFoundError (missing input), UnreadableInputError (a folder with no images),
    OutputError (bad extension, output is a file where a folder is needed, cannot create it, two
    inputs with one name, an output that is an input under any name).
    """
    if not inputs:
        raise InputNotFoundError("no input given: name one or more image files (PNG, JPEG, TIFF, WebP, AVIF, BMP) or a folder")
    check_no_empty_path(inputs, output, inputs_are="image files or a folder")
    jobs = _paired(inputs, output)
    warn_of_subfolders(inputs, [job.dst for job in jobs], _READ_EXTENSIONS, "image", warn or python_warning)
    return jobs


# what a folder's images are: those written, and GIF, read (its first picture) and written as PNG
_READ_EXTENSIONS = (*IMAGE_EXTENSIONS, ".gif")


def _paired(inputs: Sequence[str | Path], output: str | Path | None) -> list[ImageJob]:
    what = "images (*.png, *.jpg, *.tif, *.webp, *.avif, *.bmp, *.gif)"
    if output is None:
        jobs = [ImageJob(Path(src), dst) for src, dst in default_outputs(inputs, _READ_EXTENSIONS, what,
                                                                         name=lambda src: _writable_name(Path(src)))]
        return _checked_jobs(jobs)
    folder_meant = str(output).endswith(("/", os.sep))  # "results_v1.5/": a folder, as the slash says
    output = Path(output)
    found, any_folder = expand_inputs(inputs, _READ_EXTENSIONS, what)
    sources = [Path(src) for src in found]

    to_folder = any_folder or len(sources) > 1 or output.is_dir() or output.suffix == "" or folder_meant
    if to_folder:
        jobs = [ImageJob(src, output / _writable_name(src)) for src in sources]
        check_distinct_outputs([(job.src, job.dst) for job in jobs])  # before the folder is made, not left empty
        make_folder(output, file_suffixes=IMAGE_EXTENSIONS)
    else:
        _checked_extension(output)
        make_folder(output.parent)
        jobs = [ImageJob(sources[0], output)]
    return _checked_jobs(jobs)


def _frame_count(path: Path, raw: bytes) -> int:
    """Pictures in a file of a format that can hold several (GIF, animated WebP or PNG, TIFF pages), as
    OpenCV counts them; 1 for every other file, or where OpenCV cannot count (it decodes the first)."""
    animated_webp = raw[:4] == b"RIFF" and raw[8:12] == b"WEBP" and raw[12:16] == b"VP8X" and len(raw) > 20 \
        and raw[20] & 0x02  # VP8X's animation flag
    animated_png = raw.startswith(_PNG_SIGNATURE) and b"acTL" in raw[:max(raw.find(b"IDAT"), 0)]  # APNG's, before IDAT
    if not (raw[:4] in (b"GIF8", b"II*\x00", b"MM\x00*") or animated_webp or animated_png):
        return 1
    try:
        with quiet_opencv():
            return max(1, int(cv2.imcount(str(path))))
    except (cv2.error, AttributeError, SystemError):  # AttributeError: an OpenCV without imcount
        return 1


def _writable_name(src: Path) -> str:
    """``src``'s file name for an output of it: a PNG for a format read but not written (a GIF)."""
    return src.name if src.suffix.lower() in IMAGE_EXTENSIONS else f"{src.stem}.png"


def _checked_jobs(jobs: list[ImageJob]) -> list[ImageJob]:
    check_distinct_outputs([(job.src, job.dst) for job in jobs])
    # by device and inode: a symbolic or hard link, or another spelling, is still the input
    inputs = {key: job.src for job in jobs if (key := _file_id(job.src)) is not None}
    for job in jobs:
        _checked_extension(job.dst)
        ident = _file_id(job.dst)
        src = inputs.get(ident) if ident is not None else None
        if src is not None:
            linked = job.dst.resolve() != src.resolve()  # not a spelling or a symbolic link of it: a hard link
            what = "the input itself" if src == job.src and not linked else \
                f"the input {src}{' (a hard link to the same file)' if linked else ''}"
            raise OutputError(f"output {job.dst} is {what}; choose another output path")
    return jobs


def deblur_image_file(src: str | Path, dst: str | Path, engine: FrameProcessor, *, warn: Warn | None = None) -> Path:
    """Deblur one image file into ``dst`` (its format by its extension), keeping mode and size; what the
    output format cannot hold goes to ``warn``. A ``dst`` that is ``src`` under any name (the same
    path, a symbolic or a hard link) is refused (OutputError) before anything is read."""
    _checked_extension(Path(dst))
    check_outputs_apart([(src, Path(dst))])  # the video commands' identity check, before the network runs
    image = read_image(src, warn=warn)
    out = engine.process(image.rgb[np.newaxis])[0]
    return write_image(dst, image.with_rgb(np.ascontiguousarray(out)), warn=warn)


OnError = Callable[[ImageJob, UnreadableInputError], None]  # what to do with an input that cannot be read


def deblur_images(inputs: Sequence[str | Path], output: str | Path | None, engine: FrameProcessor, *,
                  warn: Warn | None = None, on_error: OnError | None = None) -> list[Path]:
    """Deblur files and/or folders into ``output`` (a file or a folder; see the module rules).

    Returns the written paths in input order. ``on_error``: as for :func:`deblur_planned`. An output
    folder made here is not left behind, empty, by a run that wrote nothing (its first image unreadable).
    """
    with new_folders_removed_if_empty():
        return list(deblur_planned(plan_images(inputs, output, warn=warn), engine, warn=warn, on_error=on_error))


def deblur_planned(jobs: Sequence[ImageJob], engine: FrameProcessor, *, warn: Warn | None = None,
                   on_error: OnError | None = None) -> Iterator[Path]:
    """Deblur :func:`plan_images`' jobs in order, yielding each written path as it is written (a
    caller that plans first can load its model after the paths are checked, and tell progress).

    An input that cannot be read (UnreadableInputError) is raised, or with ``on_error`` handed to it
    with its job and skipped, so one bad file in a folder does not cost the others their turn; a
    callback that raises stops the run there."""
    for job in jobs:
        try:
            written = deblur_image_file(job.src, job.dst, engine, warn=warn)
        except UnreadableInputError as err:
            if on_error is None:
                raise
            on_error(job, err)
            continue
        yield written


# ------------------------------------------------------------------------------------- helpers

def _is_jpeg(data: np.ndarray) -> bool:
    return data.size >= 3 and bytes(data[:3]) == b"\xff\xd8\xff"


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIFF_CMYK = 5  # PhotometricInterpretation "separated"
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the IEND chunk: no data, its CRC
_JPEG_END = b"\xff\xd9"  # EOI
_C_STDERR = threading.Lock()  # one capture at a time: two would each restore the other's file as stderr


def _with_end_marker(data: np.ndarray) -> np.ndarray | None:
    """A JPEG or PNG that lacks its end marker (a copy or download cut short) with the marker put
    back, for a decoder that refuses it without; None for other files, or one that has it."""
    if _is_jpeg(data) and bytes(data[-2:]) != _JPEG_END:
        return np.concatenate([data, np.frombuffer(_JPEG_END, np.uint8)])
    if bytes(data[:8]) == _PNG_SIGNATURE and b"IEND" not in bytes(data[-12:]):
        return np.concatenate([data, np.frombuffer(_PNG_END, np.uint8)])
    return None


def _imdecode(data: np.ndarray, flags: int, said: list[str]) -> np.ndarray | None:
    """``cv2.imdecode``, None where it fails: OpenCV raises, rather than returning None, for a header
    whose size is past its limits (a corrupt WebP's), and the reason goes to ``said``."""
    try:
        return cv2.imdecode(data, flags)
    except cv2.error as err:
        limit = "CV_IO_MAX_IMAGE" in (err.err or "")
        said.append("its header gives a picture size past OpenCV's limits" if limit else " ".join(str(err).split()))
        return None


@contextlib.contextmanager
def _c_stderr(said: list[str]) -> Iterator[None]:
    """Take what C code writes to the process's stderr inside (libjpeg's "Corrupt JPEG data: ...",
    "libpng error: ..."; OpenCV's log level does not reach them) off it, into ``said``: its distinct
    lines, for a message of ours to carry. The file descriptor is the process's: captures are taken
    one at a time, and a thread that writes to stderr meanwhile is captured too."""
    with _C_STDERR, tempfile.TemporaryFile() as capture:
        try:
            saved = os.dup(2)
        except OSError:  # no stderr at all: nothing to keep off it
            yield
            return
        sys.stderr.flush()
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            for line in capture.read().decode(errors="replace").splitlines():
                if (line := " ".join(line.split())) and line not in said:
                    said.append(line)


def _to_image(pixels: np.ndarray, path: Path, *, grey_alpha: bool = False) -> Image:
    """``grey_alpha``: the file is grey + alpha, which OpenCV hands back as BGRA with equal colour channels."""
    if pixels.dtype == np.uint16:
        image = _to_image((pixels >> 8).astype(np.uint8), path, grey_alpha=grey_alpha)  # the network sees the high byte
        if image.grey and image.alpha is not None:  # written back as grey + alpha: two samples per pixel
            return dataclasses.replace(image, deep=np.dstack([pixels[..., 0], pixels[..., -1]]))
        return dataclasses.replace(image, deep=pixels)
    if pixels.dtype != np.uint8:
        raise UnreadableInputError(f"{path} has {pixels.dtype} samples; only 8- and 16-bit images are supported")
    if pixels.ndim == 2 or pixels.shape[2] == 1:
        grey = pixels.reshape(pixels.shape[:2])
        return Image(rgb=cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB), grey=True)
    if pixels.shape[2] == 2 or (grey_alpha and pixels.shape[2] == 4):  # grey + alpha
        return Image(rgb=cv2.cvtColor(np.ascontiguousarray(pixels[..., 0]), cv2.COLOR_GRAY2RGB), grey=True,
                     alpha=np.ascontiguousarray(pixels[..., -1]))
    if pixels.shape[2] == 4:
        return Image(rgb=cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGB), alpha=np.ascontiguousarray(pixels[..., 3]))
    return Image(rgb=cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB))


def _holds_video(path: Path) -> bool:
    """Whether FFmpeg opens ``path`` as a video (a container of some duration, not one of its still
    image readers): a clip saved under an image's name, which no image decoder reads."""
    try:
        with av.open(str(path)) as container:
            still = container.format.name == "image2" or container.format.name.endswith("_pipe")
            return bool(container.streams.video) and not still and bool(container.duration)
    except (av.FFmpegError, OSError, ValueError):
        return False


def _avif_bits(raw: bytes) -> int:
    """Bits per sample of an AVIF's primary image, as its ``pixi`` property (or else its AV1
    configuration) says; 8 when neither does, or for a file of another format."""
    if raw[4:8] != b"ftyp":
        return 8
    for kind, body in heif_properties(raw):
        if kind == b"pixi" and len(body) > 5:  # version and flags, channel count, then each one's bits
            return body[5]
        if kind == b"av1C" and len(body) > 2:  # high_bitdepth and twelve_bit flags
            return 12 if body[2] & 0x60 == 0x60 else 10 if body[2] & 0x40 else 8
    return 8


def _transformed(pixels: np.ndarray, transforms: list[tuple[str, int]]) -> np.ndarray:
    """``pixels`` turned and mirrored as an AVIF's ``irot`` and ``imir`` boxes say, in their order."""
    for kind, value in transforms:
        pixels = np.rot90(pixels, value) if kind == "rotate" else (pixels[::-1] if value == 0 else pixels[:, ::-1])
    return np.ascontiguousarray(pixels)


def _upright_pixels(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """``pixels`` (H×W or H×W×C) turned as EXIF ``orientation`` (1 to 8) says they are shown, as OpenCV
    does for a JPEG: a PNG written by a phone that records its turn in eXIf comes out upright."""
    turned = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
              5: lambda a: a.swapaxes(0, 1), 6: lambda a: np.rot90(a, -1),
              7: lambda a: a.swapaxes(0, 1)[::-1, ::-1], 8: lambda a: np.rot90(a, 1)}.get(orientation)
    return np.ascontiguousarray(turned(pixels)) if turned else pixels


def _checked_extension(path: Path) -> str:
    ext = path.suffix.lower()
    if ext not in IMAGE_EXTENSIONS:
        raise OutputError(f"unsupported output extension {path.suffix or '(none)'!r} for {path}; "
                          f"use {', '.join(IMAGE_EXTENSIONS)}")
    return ext


_LOSSES = {  # what an output format cannot hold: (what, what happens to it)
    ("alpha",): ("the alpha channel", "it is left out (.png, .tiff, .webp, .avif keep it)"),
    ("depth",): ("16 bits per sample", "it is written at 8 bits (.png and .tiff keep 16)"),
    ("alpha", "depth"): ("the alpha channel or 16 bits per sample",
                         "alpha is left out and 8 bits are written (.png and .tiff keep both)"),
}


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None  # not there (yet): nothing to overwrite
    return stat.st_dev, stat.st_ino


def _samples(frame: av.VideoFrame) -> np.ndarray:
    """A grey + alpha frame's samples (ya8, ya16le or ya16be) as a writable H×2W view of its plane, rows
    without their padding (PyAV's ndarray conversions do not take these formats)."""
    plane, bits = frame.planes[0], frame.format.bits_per_pixel
    dtype = np.uint8 if bits == 16 else np.dtype(">u2" if frame.format.is_big_endian else "<u2")
    rows = np.frombuffer(plane, np.uint8).reshape(frame.height, plane.line_size)[:, :frame.width * bits // 8]
    return rows.view(dtype)


def _grey_alpha_encoded(samples: np.ndarray, codec: str) -> bytes:
    """An H×W×2 (grey, alpha) uint8 or uint16 array as a PNG or TIFF file (``codec``, FFmpeg's encoder), alpha
    unassociated; a TIFF is LZW-compressed, as OpenCV's are (the DPI goes in afterwards, as for any image)."""
    height, width, _ = samples.shape
    pix_fmt = "ya8" if samples.dtype == np.uint8 else "ya16be" if codec == "png" else "ya16le"
    frame = av.VideoFrame(width, height, pix_fmt)
    _samples(frame)[:] = samples.reshape(height, -1)
    ctx = av.CodecContext.create(codec, "w")
    ctx.width, ctx.height, ctx.pix_fmt, ctx.time_base = width, height, pix_fmt, Fraction(1, 1)
    if codec == "tiff":
        ctx.options = {"compression_algo": "lzw"}
    return b"".join(bytes(packet) for packet in (*ctx.encode(frame), *ctx.encode(None)))
