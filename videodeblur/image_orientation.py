"""How a WebP or AVIF is turned for display, read from the file itself.

Why: OpenCV applies a JPEG's EXIF orientation when it reads it (and images.py a PNG's), but it reads
WebP with its alpha only through ``IMREAD_UNCHANGED``, which ignores the EXIF chunk, and AVIF's
rotation and mirror boxes (``irot``, ``imir``) not at all: a phone's picture came out on its side.
"""
from __future__ import annotations

import struct

from videodeblur.heif import heif_properties
from videodeblur.image_metadata import exif_orientation

__all__ = ["webp_orientation", "avif_transforms"]


def webp_orientation(data: bytes) -> int:
    """The EXIF orientation (1 to 8) of a WebP's EXIF chunk; 1 when it has none or is not a WebP."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return 1
    at = 12
    while at + 8 <= len(data):
        kind, size = data[at:at + 4], struct.unpack("<I", data[at + 4:at + 8])[0]
        if kind == b"EXIF":
            exif = data[at + 8:at + 8 + size]
            if exif.startswith(b"Exif\x00\x00"):  # some writers keep JPEG's APP1 prefix
                exif = exif[6:]
            return exif_orientation(exif)
        at += 8 + size + (size & 1)  # chunks are padded to an even size
    return 1


def avif_transforms(data: bytes) -> list[tuple[str, int]]:
    """The primary image's display transforms in the order they apply: ``("rotate", quarters)``
    (counter-clockwise, ``irot``) and ``("mirror", axis)`` (``imir``; 0: top and bottom swapped, 1: left
    and right, as HEIF's 2022 text and libavif read it). Empty when there are none or the file is not
    an HEIF/AVIF one can read."""
    transforms = []
    for kind, body in heif_properties(data):
        if kind == b"irot" and body:
            transforms.append(("rotate", body[0] & 3))
        elif kind == b"imir" and body:
            transforms.append(("mirror", body[0] & 1))
    return transforms
