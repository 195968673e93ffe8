"""The boxes of an HEIF/AVIF file: its primary picture's properties and items, read and added.

Why: OpenCV reads and writes an AVIF's pixels only. What a viewer needs besides (the rotation and
mirror boxes, the colour profile) and a camera's EXIF, kept as an item of its own beside the picture,
are read here from the ISO base media boxes, and EXIF and a colour profile are added to an AVIF
OpenCV wrote, so a photo deblurred to AVIF keeps its camera, date and place and its colours.
"""
from __future__ import annotations

import struct
from typing import Callable, Iterator

__all__ = ["heif_properties", "heif_item", "heif_with_item", "heif_with_property"]

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
        _, flags, entries = _ipma(iprp.get(b"ipma", b""))
        indices = next((indices for item, indices in entries if primary is None or item == primary), [])
        essential = 0x8000 if flags & 1 else 0x80  # the top bit of each index: "essential"
        return [properties[(index & ~essential) - 1] for index in indices if 1 <= index & ~essential <= len(properties)]
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
    if heif_item(data, item_type):
        return data

    def changed(children: dict[bytes, bytes], primary: int, item: int) -> dict[bytes, bytes] | None:
        iinf, iref = children[b"iinf"], children.get(b"iref", b"\x00\x00\x00\x00")
        if iinf[0] != 0 or iref[0] != 0 or item > 0xFFFF:  # 32-bit item IDs: not what libavif writes
            return None
        entry = _box(b"infe", b"\x02\x00\x00\x00" + struct.pack(">HH", item, 0) + item_type + b"\x00")
        count = struct.unpack(">H", iinf[4:6])[0]
        return {b"iinf": iinf[:4] + struct.pack(">H", count + 1) + iinf[6:] + entry,
                b"iref": iref + _box(b"cdsc", struct.pack(">HHH", item, 1, primary))}

    return _with_meta(data, changed, payload)


def heif_with_property(data: bytes, kind: bytes, body: bytes) -> bytes:
    """``data`` (as for :func:`heif_with_item`) with one more property (``kind``, ``body``) of its
    primary picture: a ``colr`` of type ``prof`` (an ICC profile) beside libavif's ``nclx`` one. As it
    is when its primary picture has a property of that kind and type (its first 4 bytes) already, or
    when it cannot be read."""
    if any(have == kind and got[:4] == body[:4] for have, got in heif_properties(data)):
        return data

    def changed(children: dict[bytes, bytes], primary: int, item: int) -> dict[bytes, bytes] | None:
        iprp = list(_boxes(children[b"iprp"]))
        named = dict(iprp)
        ipco, ipma = named.get(b"ipco"), named.get(b"ipma")
        if ipco is None or ipma is None or [k for k, _ in iprp].count(b"ipma") != 1:
            return None
        index = len(list(_boxes(ipco))) + 1
        version, flags, entries = _ipma(ipma)
        if index > (0x7FFF if flags & 1 else 0x7F) or not any(item_id == primary for item_id, _ in entries):
            return None
        entries = [(item_id, [*indices, index] if item_id == primary else indices) for item_id, indices in entries]
        if any(len(indices) > 255 for _, indices in entries):
            return None
        wide = 4 if version else 2
        ipma = bytes([version]) + flags.to_bytes(3, "big") + len(entries).to_bytes(4, "big") + b"".join(
            item_id.to_bytes(wide, "big") + bytes([len(indices)])
            + b"".join(i.to_bytes(2 if flags & 1 else 1, "big") for i in indices) for item_id, indices in entries)
        boxes = {b"ipco": ipco + _box(kind, body), b"ipma": ipma}
        return {b"iprp": b"".join(_box(k, boxes.get(k, b)) for k, b in iprp)}

    return _with_meta(data, changed)


def _with_meta(data: bytes, change: Callable[[dict[bytes, bytes], int, int], dict[bytes, bytes] | None],
               payload: bytes | None = None) -> bytes:
    """``data`` with its meta box's children replaced by ``change(children, primary item, a free item
    ID)``'s (None: left as it is; an ``iref`` it gives where there is none goes after ``iinf``), the
    ``iloc`` offsets into the file moved by meta's growth, and a ``payload`` (for the free item ID) in an
    ``mdat`` box of its own right after meta. As it is when it cannot be read or is laid out otherwise."""
    try:
        boxes = list(_boxes(data))
        kinds = [kind for kind, _ in boxes]
        # written again as read (32-bit sizes, nothing after the last box), or offsets would not hold
        if kinds.count(b"meta") != 1 or b"".join(_box(kind, body) for kind, body in boxes) != data:
            return data
        at = kinds.index(b"meta")
        meta = boxes[at][1]
        meta_end = sum(len(_box(kind, body)) for kind, body in boxes[:at + 1])
        children = list(_boxes(meta[4:]))
        named = dict(children)
        primary = _primary_item(named.get(b"pitm", b""))
        if primary is None or b"iinf" not in named or b"iloc" not in named or b"iprp" not in named:
            return data
        header, locations = _locations(named[b"iloc"])
        if any(method == 0 and base + offset < meta_end for _, method, _, base, extents in locations
               for _, offset, _ in extents):  # data before meta would not move with the rest
            return data
        item = max([item_id for item_id, _ in _item_types(named[b"iinf"])] + [entry[0] for entry in locations]) + 1
        replaced = change(named, primary, item)
        if replaced is None:
            return data
        held = _box(b"mdat", payload) if payload is not None else b""

        def rebuilt(shift: int) -> bytes:
            moved = [(item_id, method, ref, base + shift if method == 0 and base else base,
                      [(index, off + shift if method == 0 and not base else off, length) for index, off, length in extents])
                     for item_id, method, ref, base, extents in locations]
            if payload is not None:  # right after meta
                moved.append((item, 0, 0, 0, [(0, meta_end + shift - len(payload), len(payload))]))
            parts = []
            for kind, body in children:
                parts.append(_box(kind, {**replaced, b"iloc": _iloc(header, moved)}.get(kind, body)))
                if kind == b"iinf" and b"iref" in replaced and b"iref" not in named:
                    parts.append(_box(b"iref", replaced[b"iref"]))
            return _box(b"meta", meta[:4] + b"".join(parts))

        shift = len(rebuilt(0)) - len(_box(b"meta", meta)) + len(held)
        return (b"".join(_box(kind, body) for kind, body in boxes[:at]) + rebuilt(shift) + held
                + b"".join(_box(kind, body) for kind, body in boxes[at + 1:]))
    except (struct.error, IndexError, ValueError, OverflowError):
        return data


def _ipma(ipma: bytes) -> tuple[int, int, list[tuple[int, list[int]]]]:
    """An ``ipma`` box's body as its version, flags and (item ID, [property index with its essential
    bit]) entries."""
    version, flags = ipma[0], int.from_bytes(ipma[1:4], "big")
    count = struct.unpack(">I", ipma[4:8])[0]
    at, entries = 8, []
    for _ in range(count):
        wide = 4 if version else 2
        if at + wide + 1 > len(ipma):
            raise ValueError("ipma cut short")
        item_id, n = int.from_bytes(ipma[at:at + wide], "big"), ipma[at + wide]
        at += wide + 1
        size = 2 if flags & 1 else 1
        indices = [int.from_bytes(ipma[at + size * k:at + size * (k + 1)], "big") for k in range(n)]
        at += size * n
        if at > len(ipma):
            raise ValueError("ipma cut short")
        entries.append((item_id, indices))
    return version, flags, entries


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
