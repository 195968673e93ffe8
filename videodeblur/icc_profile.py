"""An image's ICC colour profile, read from any format and written into any that holds one.

Why: a photo from a wide-gamut camera (a phone's Display P3) carries a profile that says what its
numbers mean; written into another format without it, colour-managed viewers show it duller. Each
format keeps its profile its own way: JPEG in APP2 segments, PNG in an iCCP chunk, TIFF in tag
34675, WebP in an ICCP chunk of its extended (VP8X) layout, AVIF in a ``colr`` property of type
``prof`` (``videodeblur.heif``). BMP has no place for one, and the caller says so.
"""
from __future__ import annotations

import struct
import zlib

from videodeblur.heif import heif_properties, heif_with_property
from videodeblur.image_metadata import insert_png_chunks, insert_segments, jpeg_segments, png_metadata_chunks, \
    tiff_icc_profile, with_tiff_icc_profile

__all__ = ["icc_profile", "with_icc_profile", "HOLDS_ICC", "webp_with_chunk", "webp_chunks"]

HOLDS_ICC = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".avif")  # output formats a profile is written into

_JPEG_ICC = b"ICC_PROFILE\x00"
_JPEG_PART = 65519  # profile bytes per APP2 segment: 65535 less the length, signature, part number and count


def icc_profile(raw: bytes) -> bytes:
    """The RGB or grey ICC profile that ``raw`` (a JPEG, PNG, TIFF, WebP or AVIF file) carries; empty when it
    carries none, or a CMYK one (the output is RGB: a print profile would misdescribe it)."""
    if raw.startswith(b"\xff\xd8"):
        profile = _jpeg_profile(raw)
    elif raw.startswith(b"\x89PNG\r\n\x1a\n"):
        profile = next((_png_profile(chunk) for kind, chunk in png_metadata_chunks(raw) if kind == b"iCCP"), b"")
    elif raw[:4] in (b"II*\x00", b"MM\x00*"):
        profile = tiff_icc_profile(raw)
    elif raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
        profile = next((data for fourcc, data in webp_chunks(raw) if fourcc == b"ICCP"), b"")
    elif raw[4:8] == b"ftyp":  # AVIF (HEIF): a colr property of type prof (or rICC) holds it
        profile = next((body[4:] for kind, body in heif_properties(raw)
                        if kind == b"colr" and body[:4] in (b"prof", b"rICC")), b"")
    else:
        profile = b""
    return b"" if profile[16:20] == b"CMYK" else profile


def with_icc_profile(encoded: bytes, ext: str, profile: bytes) -> bytes:
    """``encoded`` (a file of format ``ext``) carrying ``profile``, unless it carries one already (its
    source's, copied with the rest of its metadata) or ``profile`` is empty; as it is for a format not
    in :data:`HOLDS_ICC`."""
    if not profile or ext not in HOLDS_ICC or icc_profile(encoded):
        return encoded
    if ext in (".jpg", ".jpeg"):
        parts = [profile[i:i + _JPEG_PART] for i in range(0, len(profile), _JPEG_PART)]
        if len(parts) > 255:
            return encoded  # more than APP2 segments can number: no such profile is in use
        segments = b"".join(b"\xff\xe2" + struct.pack(">H", 2 + len(_JPEG_ICC) + 2 + len(part)) + _JPEG_ICC
                            + bytes((n, len(parts))) + part for n, part in enumerate(parts, 1))
        return insert_segments(encoded, segments)
    if ext == ".png":
        data = b"ICC Profile\x00\x00" + zlib.compress(profile)
        chunk = struct.pack(">I", len(data)) + b"iCCP" + data + struct.pack(">I", zlib.crc32(b"iCCP" + data))
        return insert_png_chunks(encoded, [(b"iCCP", chunk)])
    if ext in (".tif", ".tiff"):
        return with_tiff_icc_profile(encoded, profile)
    if ext == ".avif":  # beside the nclx colr OpenCV writes, which says how its YUV becomes RGB
        return heif_with_property(encoded, b"colr", b"prof" + profile)
    return webp_with_chunk(encoded, b"ICCP", profile)


def _jpeg_profile(jpeg: bytes) -> bytes:
    """The parts of a JPEG's APP2 ICC profile, joined in their numbered order."""
    parts: dict[int, bytes] = {}
    for marker, segment in jpeg_segments(jpeg):
        payload = segment[4:]
        if marker == 0xE2 and payload.startswith(_JPEG_ICC) and len(payload) > 14:
            parts[payload[12]] = payload[14:]
    return b"".join(parts[n] for n in sorted(parts))


def _png_profile(chunk: bytes) -> bytes:
    """An iCCP chunk's profile: after its name, a NUL and the compression method, zlib data."""
    data = chunk[8:-4]
    name_end = data.find(b"\x00")
    try:
        return zlib.decompress(data[name_end + 2:]) if name_end >= 0 else b""
    except zlib.error:
        return b""


def webp_chunks(webp: bytes) -> list[tuple[bytes, bytes]]:
    """A WebP file's chunks, (FourCC, data), in order."""
    chunks, pos = [], 12
    while pos + 8 <= len(webp):
        fourcc, size = webp[pos:pos + 4], struct.unpack("<I", webp[pos + 4:pos + 8])[0]
        chunks.append((fourcc, webp[pos + 8:pos + 8 + size]))
        pos += 8 + size + (size & 1)  # chunks are padded to an even length
    return chunks


_WEBP_FLAGS = {b"ICCP": 0x20, b"EXIF": 0x08}  # VP8X's flag saying the file has one


def webp_with_chunk(webp: bytes, fourcc: bytes, data: bytes) -> bytes:
    """A WebP in the extended layout (VP8X) with an ICCP or EXIF chunk (``fourcc``) where the format
    places it, ICCP before the picture and EXIF after it, and its flag set; a simple one (one VP8 or
    VP8L chunk) is turned extended, its size and alpha read from the picture's own header. As it is
    when it cannot be read."""
    chunks = webp_chunks(webp)
    if not chunks:
        return webp
    if chunks[0][0] == b"VP8X":
        header = bytearray(chunks[0][1])
        header[0] |= _WEBP_FLAGS[fourcc]
        rest = chunks[1:]
    else:
        size_alpha = _picture_size(*chunks[0])
        if size_alpha is None:
            return webp
        (width, height), alpha = size_alpha
        header = bytearray(struct.pack("<I", _WEBP_FLAGS[fourcc] | (0x10 if alpha else 0)))
        header += (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
        rest = chunks
    ordered = [(fourcc, data), *rest] if fourcc == b"ICCP" else [*rest, (fourcc, data)]
    body = b"".join(_webp_chunk(kind, chunk) for kind, chunk in [(b"VP8X", bytes(header)), *ordered])
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def _picture_size(fourcc: bytes, data: bytes) -> tuple[tuple[int, int], bool] | None:
    """A simple WebP picture's (width, height) and whether it has alpha, from its VP8 (lossy key
    frame) or VP8L (lossless) header."""
    if fourcc == b"VP8 " and len(data) >= 10 and data[3:6] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[6:10])
        return (width & 0x3FFF, height & 0x3FFF), False
    if fourcc == b"VP8L" and len(data) >= 5 and data[0] == 0x2F:
        bits = int.from_bytes(data[1:5], "little")
        return ((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1), bool((bits >> 28) & 1)
    return None


def _webp_chunk(fourcc: bytes, data: bytes) -> bytes:
    return fourcc + struct.pack("<I", len(data)) + data + (b"\x00" if len(data) & 1 else b"")
