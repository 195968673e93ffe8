"""An image's EXIF (camera, date, place), read from any format and written into any that holds it.

Why: a photographer's picture keeps its camera, date and GPS position in EXIF, which photo libraries
sort and map by; written into another format without it (a JPEG deblurred to PNG), they were lost
without a word. Each format keeps EXIF its own way: JPEG in an APP1 segment ("Exif\\0\\0" and the
TIFF data), PNG in an eXIf chunk, WebP in an EXIF chunk of its extended (VP8X) layout, TIFF as tags
of the picture's own directory and the EXIF and GPS directories it points at, AVIF as an item of its
own beside the picture (``videodeblur.heif``). The orientation is
set to 1 ("upright"): the reader has already turned the pixels upright, and a viewer must not turn
them again (an AVIF's orientation is its rotation and mirror boxes, which viewers follow, not its
EXIF's). BMP has no place for it, and the caller says so.
"""
from __future__ import annotations

import struct

from videodeblur.icc_profile import webp_chunks, webp_with_chunk
from videodeblur.heif import heif_item, heif_with_item
from videodeblur.image_metadata import (insert_png_chunks, insert_segments, jpeg_segments, png_chunk, png_metadata_chunks,
                                        tiff_exif, upright_exif, with_tiff_exif)

__all__ = ["exif_data", "with_exif", "HOLDS_EXIF"]

HOLDS_EXIF = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".avif")  # output formats EXIF is written into

_EXIF = b"Exif\x00\x00"  # JPEG's APP1 signature, which some WebP writers keep too
_JPEG_MAX = 65535 - 2 - len(_EXIF)  # TIFF data one APP1 segment holds


def exif_data(raw: bytes) -> bytes:
    """The EXIF TIFF data (from its byte order mark) that ``raw`` (a JPEG, PNG, TIFF, WebP or AVIF file) carries,
    orientation set to 1; empty when it carries none or is of another format, or when none of its camera,
    date, author or EXIF and GPS tags can be read (damaged): a TIFF output, which takes those tags one by
    one, was then written without it and said the EXIF was larger than a JPEG's segment holds."""
    if raw.startswith(b"\xff\xd8"):
        tiff = _jpeg_exif(raw)
    elif raw.startswith(b"\x89PNG\r\n\x1a\n"):
        tiff = next((chunk[8:-4] for kind, chunk in png_metadata_chunks(raw) if kind == b"eXIf"), b"")
    elif raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
        tiff = next((data for fourcc, data in webp_chunks(raw) if fourcc == b"EXIF"), b"")
        tiff = tiff[len(_EXIF):] if tiff.startswith(_EXIF) else tiff
    elif raw[:4] in (b"II*\x00", b"MM\x00*"):
        tiff = tiff_exif(raw)
    elif raw[4:8] == b"ftyp":  # AVIF (HEIF): an Exif item, its TIFF data after a 4-byte offset to it
        item = heif_item(raw, b"Exif")
        tiff = item[4 + int.from_bytes(item[:4], "big"):] if len(item) > 4 else b""
        tiff = tiff[len(_EXIF):] if tiff.startswith(_EXIF) else tiff
    else:
        tiff = b""
    return upright_exif(tiff) if tiff_exif(tiff) else b""  # none either when no tag of it can be read


def with_exif(encoded: bytes, ext: str, tiff: bytes) -> bytes:
    """``encoded`` (a file of format ``ext``) carrying the EXIF TIFF data ``tiff``, unless it carries
    EXIF already (its source's, copied with the rest of its metadata) or ``tiff`` is empty; as it is
    for a format not in :data:`HOLDS_EXIF`, or EXIF too large for a JPEG's one segment. A TIFF's tags
    are its encoder's own (FFmpeg's, for grey + alpha, name it as Software), never a copy: the source's
    join them, replacing those of the same number."""
    if not tiff or ext not in HOLDS_EXIF or (ext not in (".tif", ".tiff") and exif_data(encoded)):
        return encoded
    if ext in (".jpg", ".jpeg"):
        if len(tiff) > _JPEG_MAX:
            return encoded
        return insert_segments(encoded, b"\xff\xe1" + struct.pack(">H", 2 + len(_EXIF) + len(tiff)) + _EXIF + tiff)
    if ext == ".png":
        return insert_png_chunks(encoded, [(b"eXIf", png_chunk(b"eXIf", tiff))])
    if ext in (".tif", ".tiff"):
        return with_tiff_exif(encoded, tiff)
    if ext == ".avif":  # the item's data: the offset from its end to the TIFF header (0), then the TIFF data
        return heif_with_item(encoded, b"Exif", bytes(4) + tiff)
    return webp_with_chunk(encoded, b"EXIF", tiff)


def _jpeg_exif(jpeg: bytes) -> bytes:
    """The TIFF data of a JPEG's first EXIF APP1 segment, or empty."""
    return next((segment[4 + len(_EXIF):] for marker, segment in jpeg_segments(jpeg)
                 if marker == 0xE1 and segment[4:].startswith(_EXIF)), b"")
