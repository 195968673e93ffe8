"""Carry an image's metadata over to the deblurred image of the same format.

Why: OpenCV writes pixels only. A phone photo would lose its date and place (EXIF), which photo
libraries sort and map by, and its colour profile (an iPhone's Display P3 read as sRGB looks
washed out). JPEG: the EXIF, XMP and ICC segments are copied byte for byte, except EXIF's
orientation, which is set to 1 ("upright") because the reader has already turned the pixels
upright. PNG: the colour (iCCP, sRGB, gAMA, cHRM, cICP), EXIF (eXIf), text (tEXt, zTXt, iTXt),
time (tIME) and pixel-size (pHYs) chunks; not those tied to the source's bit depth or palette.
"""
from __future__ import annotations

import struct
import zlib

__all__ = ["metadata_segments", "insert_segments", "png_metadata_chunks", "insert_png_chunks"]

_SOI = b"\xff\xd8"
_KEPT = ((0xE1, b"Exif\x00\x00"), (0xE1, b"http://ns.adobe.com/xap/1.0/\x00"), (0xE2, b"ICC_PROFILE\x00"))
_ORIENTATION = 0x0112


def metadata_segments(jpeg: bytes) -> bytes:
    """The EXIF, XMP and ICC segments of ``jpeg`` (markers and lengths included), EXIF orientation
    reset to 1; empty when there are none or the file is not a well-formed JPEG."""
    if not jpeg.startswith(_SOI):
        return b""
    kept = []
    pos = 2
    while pos + 4 <= len(jpeg) and jpeg[pos] == 0xFF:
        marker = jpeg[pos + 1]
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no metadata after this
            break
        length = struct.unpack(">H", jpeg[pos + 2:pos + 4])[0]
        segment = jpeg[pos:pos + 2 + length]
        if len(segment) < 2 + length:
            break  # cut short
        payload = segment[4:]
        if any(marker == m and payload.startswith(sig) for m, sig in _KEPT):
            kept.append(_upright(segment) if payload.startswith(b"Exif\x00\x00") else segment)
        pos += 2 + length
    return b"".join(kept)


def insert_segments(jpeg: bytes, segments: bytes) -> bytes:
    """``jpeg`` with ``segments`` placed after its start marker and JFIF header (APP0), where
    readers look for them."""
    if not segments or not jpeg.startswith(_SOI):
        return jpeg
    pos = 2
    if jpeg[2:4] == b"\xff\xe0":  # keep APP0 (JFIF) first, as the standard asks
        pos = 4 + struct.unpack(">H", jpeg[4:6])[0]
    return jpeg[:pos] + segments + jpeg[pos:]


def _upright(segment: bytes) -> bytes:
    """An EXIF APP1 segment with its IFD0 orientation tag set to 1 (left as it is if unreadable)."""
    tiff = 10  # FF E1, length (2), "Exif\0\0" (6)
    data = bytearray(segment)
    order = bytes(data[tiff:tiff + 2])
    if order not in (b"II", b"MM"):
        return segment
    e = "<" if order == b"II" else ">"
    try:
        ifd = tiff + struct.unpack(e + "I", data[tiff + 4:tiff + 8])[0]
        (count,) = struct.unpack(e + "H", data[ifd:ifd + 2])
        for i in range(count):
            entry = ifd + 2 + 12 * i
            tag, kind = struct.unpack(e + "HH", data[entry:entry + 4])
            if tag == _ORIENTATION and kind == 3:  # SHORT, stored in the first two bytes of the value
                data[entry + 8:entry + 10] = struct.pack(e + "H", 1)
    except struct.error:
        return segment
    return bytes(data)


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_KEPT = {b"iCCP", b"sRGB", b"gAMA", b"cHRM", b"cICP", b"eXIf", b"tEXt", b"zTXt", b"iTXt", b"tIME", b"pHYs"}


def png_metadata_chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    """The kept chunks of ``png`` as (type, whole chunk with length and CRC), in file order; empty
    when there are none or the file is not a well-formed PNG."""
    return [(kind, chunk) for kind, chunk in _png_chunks(png) if kind in _PNG_KEPT]


def insert_png_chunks(png: bytes, chunks: list[tuple[bytes, bytes]]) -> bytes:
    """``png`` with ``chunks`` placed right after its header chunk (IHDR), before the pixels, which
    is where colour chunks must be; a type the file already has is not added twice."""
    parsed = _png_chunks(png)
    if not chunks or not parsed or parsed[0][0] != b"IHDR":
        return png
    present = {kind for kind, _ in parsed}
    added = b"".join(chunk for kind, chunk in chunks if kind not in present or kind in (b"tEXt", b"zTXt", b"iTXt"))
    header_end = len(_PNG_SIGNATURE) + len(parsed[0][1])
    return png[:header_end] + added + png[header_end:]


def _png_chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    if not png.startswith(_PNG_SIGNATURE):
        return []
    chunks, pos = [], len(_PNG_SIGNATURE)
    while pos + 12 <= len(png):
        (length,) = struct.unpack(">I", png[pos:pos + 4])
        kind, end = png[pos + 4:pos + 8], pos + 12 + length
        if end > len(png) or zlib.crc32(png[pos + 4:pos + 8 + length]) != struct.unpack(">I", png[end - 4:end])[0]:
            break  # cut short or damaged: keep what came before
        chunks.append((kind, png[pos:end]))
        if kind == b"IEND":
            break
        pos = end
    return chunks
