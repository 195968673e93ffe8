"""How a WebP or AVIF is turned for display, read from the file itself.

Why: OpenCV applies a JPEG's EXIF orientation when it reads it (and images.py a PNG's), but it reads
WebP with its alpha only through ``IMREAD_UNCHANGED``, which ignores the EXIF chunk, and AVIF's
rotation and mirror boxes (``irot``, ``imir``) not at all: a phone's picture came out on its side.
The HEIF boxes read for that also give an AVIF's colour profile and EXIF (:func:`heif_item`) to the
modules that carry them.
"""
from __future__ import annotations

import struct
from typing import Iterator

from videodeblur.image_metadata import exif_orientation

__all__ = ["webp_orientation", "avif_transforms", "heif_properties", "heif_item"]


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


def heif_item(data: bytes, item_type: bytes) -> bytes:
    """The data of an HEIF/AVIF file's first item of ``item_type`` (``Exif``: a camera's EXIF, kept
    beside the picture as an item of its own), joined from its extents in the file or the meta box's
    ``idat``; empty when there is none or the file is not one that can be read."""
    try:
        meta = next((body for kind, body in _boxes(data) if kind == b"meta"), None)
        if meta is None:
            return b""
        children = dict(_boxes(meta[4:]))
        item = next((item_id for item_id, kind in _item_types(children.get(b"iinf", b"")) if kind == item_type), None)
        if item is None:
            return b""
        method, extents = _locations(children.get(b"iloc", b"")).get(item, (None, []))
        source = {0: data, 1: children.get(b"idat", b"")}.get(method)  # 2 (another item's data): not read
        if source is None:
            return b""
        return b"".join(source[start:start + length] if length else source[start:] for start, length in extents)
    except (struct.error, IndexError, ValueError):
        return b""


def _item_types(iinf: bytes) -> Iterator[tuple[int, bytes]]:
    """(item ID, item type) of each entry (``infe`` version 2 or 3) of an ``iinf`` box's body."""
    version = iinf[0]
    for kind, infe in _boxes(iinf[6:] if version == 0 else iinf[8:]):
        if kind == b"infe" and infe[0] in (2, 3):
            if infe[0] == 2:
                yield struct.unpack(">H", infe[4:6])[0], infe[8:12]
            else:
                yield struct.unpack(">I", infe[4:8])[0], infe[10:14]


def _locations(iloc: bytes) -> dict[int, tuple[int, list[tuple[int, int]]]]:
    """Item ID: (construction method, [(offset, length)...]) from an ``iloc`` box's body (offsets from
    the file's start, or the ``idat``'s for method 1; a length 0: to the end)."""
    version = iloc[0]
    offset_size, length_size, base_size = iloc[4] >> 4, iloc[4] & 15, iloc[5] >> 4
    index_size = iloc[5] & 15 if version in (1, 2) else 0
    if not offset_size + length_size + index_size:  # extents of no bytes: a damaged box's 65535 of them would spin
        raise ValueError("iloc extents hold nothing")
    at = 6

    def number(size: int) -> int:
        nonlocal at
        value = int.from_bytes(iloc[at:at + size], "big") if size else 0
        if at + size > len(iloc):
            raise ValueError("iloc cut short")
        at += size
        return value

    items = {}
    for _ in range(number(4 if version == 2 else 2)):
        item = number(4 if version == 2 else 2)
        method = number(2) & 15 if version in (1, 2) else 0
        number(2)  # data reference index: 0, this file
        base = number(base_size)
        extents = []
        for _ in range(number(2)):
            number(index_size)
            offset = number(offset_size)
            extents.append((base + offset, number(length_size)))
        items[item] = (method, extents)
    return items


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
