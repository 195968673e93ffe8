"""The boxes of an HEIF/AVIF file: its primary picture's properties, its items, and an item added.

Why: OpenCV reads and writes an AVIF's pixels only. What a viewer needs besides (the rotation and
mirror boxes, the colour profile) and a camera's EXIF, kept as an item of its own beside the picture,
are read here from the ISO base media boxes, and EXIF is added to an AVIF OpenCV wrote, so a photo
deblurred to AVIF keeps its camera, date and place.
"""
from __future__ import annotations

import struct
from typing import Iterator

__all__ = ["heif_properties", "heif_item", "heif_with_item"]

# an iloc entry: item ID, construction method (0: file offsets, 1: the idat box), data reference,
# base offset, extents (index, offset, length)
_Location = tuple[int, int, int, int, list[tuple[int, int, int]]]


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
        location = next((entry for entry in _locations(children.get(b"iloc", b""))[1] if entry[0] == item), None)
        if location is None:
            return b""
        _, method, _, base, extents = location
        source = {0: data, 1: children.get(b"idat", b"")}.get(method)  # 2 (another item's data): not read
        if source is None:
            return b""
        return b"".join(source[base + offset:base + offset + length] if length else source[base + offset:]
                        for _, offset, length in extents)
    except (struct.error, IndexError, ValueError):
        return b""


def heif_with_item(data: bytes, item_type: bytes, payload: bytes) -> bytes:
    """``data`` (an HEIF/AVIF file, its meta box before its pictures' data, as libavif writes it) with
    an item of ``item_type`` holding ``payload`` that describes (``cdsc``) its primary picture: an
    ``infe`` entry, an ``iloc`` entry for the payload, which goes in an ``mdat`` box of its own right
    after meta, and every other file offset moved past both. Before the picture's data, as libavif
    places it: after it, OpenCV (5.1) could not read the file. As it is when it cannot be read, holds
    such an item already, or is laid out otherwise (32-bit item IDs, data before meta)."""
    try:
        boxes = list(_boxes(data))
        kinds = [kind for kind, _ in boxes]
        if kinds.count(b"meta") != 1 or heif_item(data, item_type):
            return data
        at = kinds.index(b"meta")
        meta = boxes[at][1]
        meta_end = sum(len(_box(kind, body)) for kind, body in boxes[:at + 1])
        children = list(_boxes(meta[4:]))
        named = dict(children)
        primary = _primary_item(named.get(b"pitm", b""))
        iinf, iloc = named.get(b"iinf"), named.get(b"iloc")
        if primary is None or iinf is None or iloc is None:
            return data
        header, locations = _locations(iloc)
        if any(method == 0 and base + offset < meta_end for _, method, _, base, extents in locations
               for _, offset, _ in extents):
            return data
        ids = [item_id for item_id, _ in _item_types(iinf)] + [entry[0] for entry in locations]
        item = max(ids, default=0) + 1
        wide = iinf[0] != 0 or iloc[0] == 2 or item > 0xFFFF  # 32-bit item IDs: not what libavif writes
        if wide:
            return data
        count = struct.unpack(">H", iinf[4:6])[0]
        new_iinf = iinf[:4] + struct.pack(">H", count + 1) + iinf[6:] + _box(
            b"infe", b"\x02\x00\x00\x00" + struct.pack(">HH", item, 0) + item_type + b"\x00")
        reference = _box(b"cdsc", struct.pack(">HHH", item, 1, primary))
        iref = named.get(b"iref")
        if iref is not None and iref[0] != 0:
            return data
        new_iref = (iref if iref is not None else b"\x00\x00\x00\x00") + reference

        def rebuilt(shift: int, offset: int) -> bytes:
            moved = [(item_id, method, ref, base + shift if method == 0 and base else base,
                      [(index, off + shift if method == 0 and not base else off, length) for index, off, length in extents])
                     for item_id, method, ref, base, extents in locations]
            entries = [*moved, (item, 0, 0, 0, [(0, offset, len(payload))])]
            parts = []
            for kind, body in children:
                parts.append(_box(kind, {b"iinf": new_iinf, b"iref": new_iref,
                                         b"iloc": _iloc(header, entries)}.get(kind, body)))
                if kind == b"iinf" and iref is None:
                    parts.append(_box(b"iref", new_iref))
            return _box(b"meta", meta[:4] + b"".join(parts))

        held = _box(b"mdat", payload)
        shift = len(rebuilt(0, 0)) - len(_box(b"meta", meta)) + len(held)
        new_meta = rebuilt(shift, meta_end + shift - len(payload))
        return (b"".join(_box(kind, body) for kind, body in boxes[:at]) + new_meta + held
                + b"".join(_box(kind, body) for kind, body in boxes[at + 1:]))
    except (struct.error, IndexError, ValueError, OverflowError):
        return data


def _box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", 8 + len(body)) + kind + body


def _item_types(iinf: bytes) -> Iterator[tuple[int, bytes]]:
    """(item ID, item type) of each entry (``infe`` version 2 or 3) of an ``iinf`` box's body."""
    version = iinf[0]
    for kind, infe in _boxes(iinf[6:] if version == 0 else iinf[8:]):
        if kind == b"infe" and infe[0] in (2, 3):
            if infe[0] == 2:
                yield struct.unpack(">H", infe[4:6])[0], infe[8:12]
            else:
                yield struct.unpack(">I", infe[4:8])[0], infe[10:14]


def _locations(iloc: bytes) -> tuple[tuple[int, int, int, int], list[_Location]]:
    """An ``iloc`` box's body as its (version, offset size, length size, base offset size and index
    size: the two size bytes) and its entries (:data:`_Location`; offsets from the file's start, or the
    ``idat``'s for method 1; a length 0: to the end)."""
    version = iloc[0]
    offset_size, length_size, base_size = iloc[4] >> 4, iloc[4] & 15, iloc[5] >> 4
    index_size = iloc[5] & 15 if version in (1, 2) else 0
    if not offset_size + length_size + index_size:  # extents of no bytes: a damaged box's 65535 of them would spin
        raise ValueError("iloc extents hold nothing")
    at = 6

    def number(size: int) -> int:
        nonlocal at
        if at + size > len(iloc):
            raise ValueError("iloc cut short")
        value = int.from_bytes(iloc[at:at + size], "big")
        at += size
        return value

    entries = []
    for _ in range(number(4 if version == 2 else 2)):
        item = number(4 if version == 2 else 2)
        method = number(2) & 15 if version in (1, 2) else 0
        reference = number(2)  # data reference index: 0, this file
        base = number(base_size)
        extents = [(number(index_size), number(offset_size), number(length_size)) for _ in range(number(2))]
        entries.append((item, method, reference, base, extents))
    return (version, offset_size, length_size, base_size * 16 + index_size), entries


def _iloc(header: tuple[int, int, int, int], entries: list[_Location]) -> bytes:
    """An ``iloc`` box's body from :func:`_locations`' parts (a value too large for its size: OverflowError)."""
    version, offset_size, length_size, sizes = header
    base_size, index_size = sizes >> 4, sizes & 15
    count = 4 if version == 2 else 2
    out = bytes([version, 0, 0, 0, offset_size * 16 + length_size, sizes]) + len(entries).to_bytes(count, "big")
    for item, method, reference, base, extents in entries:
        out += item.to_bytes(count, "big") + (method.to_bytes(2, "big") if version in (1, 2) else b"")
        out += reference.to_bytes(2, "big") + base.to_bytes(base_size, "big") + len(extents).to_bytes(2, "big")
        for index, offset, length in extents:
            out += index.to_bytes(index_size, "big") + offset.to_bytes(offset_size, "big") + length.to_bytes(length_size, "big")
    return out


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
