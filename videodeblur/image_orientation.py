"""How a WebP or AVIF is turned for display, read from the file itself.

Why: OpenCV applies a JPEG's EXIF orientation when it reads it (and images.py a PNG's), but it reads
WebP with its alpha only through ``IMREAD_UNCHANGED``, which ignores the EXIF chunk, and AVIF's
rotation and mirror boxes (``irot``, ``imir``) not at all: a phone's picture came out on its side.
"""
from __future__ import annotations

import struct
from typing import Iterator

from videodeblur.image_metadata import exif_orientation

__all__ = ["webp_orientation", "avif_transforms", "heif_properties"]


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


def heif_properties(data: bytes) -> list[tuple[bytes, bytes]]:
    """The properties (type, body) an HEIF/AVIF file gives its primary image, in order: its display
    transforms, its colour (``colr``)...; empty when the file is not one that can be read."""
    try:
        meta = next((body for kind, body in _boxes(data) if kind == b"meta"), None)
        if meta is None:
            return []
        children = dict(_boxes(meta[4:]))  # meta is a full box: version and flags first
        primary = _primary_item(children.get(b"pitm", b""))
        iprp = dict(_boxes(children.get(b"iprp", b"")))
        properties = list(_boxes(iprp.get(b"ipco", b"")))
        return [properties[index - 1] for index in _associations(iprp.get(b"ipma", b""), primary)
                if 1 <= index <= len(properties)]
    except (struct.error, IndexError, ValueError):
        return []


def _boxes(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """ISO base media boxes: (type, body)."""
    at = 0
    while at + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[at:at + 8])
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", data[at + 8:at + 16])[0], 16
        elif size == 0:
            size = len(data) - at
        if size < header or at + size > len(data):
            return
        yield kind, data[at + header:at + size]
        at += size


def _primary_item(pitm: bytes) -> int | None:
    if len(pitm) < 6:
        return None
    return struct.unpack(">H", pitm[4:6])[0] if pitm[0] == 0 else struct.unpack(">I", pitm[4:8])[0]


def _associations(ipma: bytes, item: int | None) -> list[int]:
    """The property indices (1-based, in order) ``ipma`` gives ``item`` (the first item if None)."""
    version, flags = ipma[0], int.from_bytes(ipma[1:4], "big")
    count = struct.unpack(">I", ipma[4:8])[0]
    at = 8
    for _ in range(count):
        if version < 1:
            item_id, at = struct.unpack(">H", ipma[at:at + 2])[0], at + 2
        else:
            item_id, at = struct.unpack(">I", ipma[at:at + 4])[0], at + 4
        n, at = ipma[at], at + 1
        indices = []
        for _ in range(n):
            if flags & 1:
                indices.append(struct.unpack(">H", ipma[at:at + 2])[0] & 0x7FFF)
                at += 2
            else:
                indices.append(ipma[at] & 0x7F)
                at += 1
        if item is None or item_id == item:
            return indices
    return []
