"""Carry an image's metadata over to the deblurred image of the same format, and its print size to any.

Why: OpenCV writes pixels only. A phone photo would lose its date and place (EXIF), which photo
libraries sort and map by, and its colour profile (an iPhone's Display P3 read as sRGB looks
washed out); a scan would print at 72 dpi instead of its 300. JPEG: the EXIF, XMP, ICC and comment
(COM) segments are copied byte for byte, except EXIF's orientation, which is set to 1 ("upright")
because the reader has already turned the pixels upright (XMP's too, and a turned photo's thumbnail,
which was not turned, is left out). PNG: the colour (iCCP, sRGB, gAMA, cHRM,
cICP), EXIF (eXIf), text (tEXt, zTXt, iTXt), time (tIME) and pixel-size (pHYs) chunks; not those
tied to the source's bit depth or palette. TIFF: the ICC profile tag. Pixel density (dots per inch:
JPEG's JFIF header, PNG's pHYs, TIFF's resolution tags, BMP's header) is read from and written to
any of the four, so it crosses formats too. EXIF crosses formats in ``videodeblur.image_exif``.
"""
from __future__ import annotations

import dataclasses
import re
import struct
import zlib
from fractions import Fraction
from typing import Iterator

__all__ = ["metadata_segments", "jpeg_segments", "insert_segments", "png_metadata_chunks", "insert_png_chunks", "png_colour_type",
           "png_grey_key", "png_orientation", "exif_orientation", "upright_exif", "png_chunk", "read_dpi", "with_dpi", "tiff_samples_per_pixel", "tiff_icc_profile", "with_tiff_icc_profile",
           "tiff_exif", "with_tiff_exif",
           "with_tiff_alpha"]

_SOI = b"\xff\xd8"
_XMP = b"http://ns.adobe.com/xap/1.0/\x00"  # an XMP APP1 segment's signature
_KEPT = ((0xE1, b"Exif\x00\x00"), (0xE1, _XMP), (0xE2, b"ICC_PROFILE\x00"),
         (0xFE, b""))  # COM: a comment, any text
_METRES_PER_INCH = 0.0254
_ORIENTATION = 0x0112


def metadata_segments(jpeg: bytes) -> bytes:
    """The EXIF, XMP, ICC and comment segments of ``jpeg`` (markers and lengths included), EXIF
    orientation reset to 1 (and XMP's with it, where the pixels were turned); empty when there are none
    or the file is not a well-formed JPEG."""
    kept = []
    turned = False
    for marker, segment in jpeg_segments(jpeg):
        payload = segment[4:]
        if any(marker == m and payload.startswith(sig) for m, sig in _KEPT):
            if payload.startswith(b"Exif\x00\x00"):
                turned = turned or _exif_orientation(bytearray(segment), 10) != 1
                segment = _upright(segment)
            kept.append(segment)
    if turned:  # the XMP segment keeps its length: one digit for another
        kept = [_upright_xmp(segment) if segment[4:].startswith(_XMP) else segment for segment in kept]
    if any(_cmyk_profile(segment) for segment in kept):  # the output is RGB: a CMYK profile would misdescribe it
        kept = [segment for segment in kept if not segment[4:].startswith(b"ICC_PROFILE\x00")]
    return b"".join(kept)



def jpeg_segments(jpeg: bytes) -> Iterator[tuple[int, bytes]]:
    """(marker, segment: marker, length and payload) of each segment before a JPEG's picture data,
    where its metadata lives; none when ``jpeg`` is not one, up to where one is cut short."""
    if not jpeg.startswith(_SOI):
        return
    pos = 2
    while pos + 4 <= len(jpeg) and jpeg[pos] == 0xFF:
        marker = jpeg[pos + 1]
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no metadata after this
            return
        length = struct.unpack(">H", jpeg[pos + 2:pos + 4])[0]
        segment = jpeg[pos:pos + 2 + length]
        if len(segment) < 2 + length:
            return  # cut short
        yield marker, segment
        pos += 2 + length

def _cmyk_profile(segment: bytes) -> bool:
    """Whether ``segment`` is the first part of an ICC profile for CMYK (a print JPEG's): its header's
    colour space, 16 bytes into the profile, after the APP2 signature and the part's number and count."""
    payload = segment[4:]
    return payload.startswith(b"ICC_PROFILE\x00") and payload[12:13] == b"\x01" and payload[14 + 16:14 + 20] == b"CMYK"


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
    data = bytearray(segment)
    _exif_orientation(data, 10, upright=True)  # FF E1, length (2), "Exif\0\0" (6), then the TIFF data
    return bytes(data)


def upright_exif(tiff: bytes) -> bytes:
    """EXIF TIFF data (from its byte order mark) with its IFD0 orientation set to 1 (as it is if unreadable)."""
    data = bytearray(tiff)
    _exif_orientation(data, 0, upright=True)
    return bytes(data)


def exif_orientation(tiff: bytes) -> int:
    """The orientation (1 to 8; 1 when none or unreadable) of EXIF TIFF data (from its byte order mark)."""
    return _exif_orientation(bytearray(tiff), 0)


def _exif_orientation(data: bytearray, tiff: int, *, upright: bool = False) -> int:
    """The orientation (1 to 8; 1 when none or unreadable) of the EXIF TIFF data at ``tiff`` in
    ``data``; with ``upright`` it is set to 1 there, and where it was another the link to the thumbnail
    (IFD1, a camera's small copy of the picture as stored) is cut: the thumbnail is not turned, and
    beside orientation 1 every viewer that shows thumbnails showed it on its side."""
    order = bytes(data[tiff:tiff + 2])
    if order not in (b"II", b"MM"):
        return 1
    e = "<" if order == b"II" else ">"
    try:
        ifd = tiff + struct.unpack(e + "I", data[tiff + 4:tiff + 8])[0]
        (count,) = struct.unpack(e + "H", data[ifd:ifd + 2])
        for i in range(count):
            entry = ifd + 2 + 12 * i
            tag, kind = struct.unpack(e + "HH", data[entry:entry + 4])
            if tag == _ORIENTATION and kind == 3:  # SHORT, stored in the first two bytes of the value
                (value,) = struct.unpack(e + "H", data[entry + 8:entry + 10])
                if upright:
                    data[entry + 8:entry + 10] = struct.pack(e + "H", 1)
                    next_ifd = ifd + 2 + 12 * count
                    if 2 <= value <= 8 and next_ifd + 4 <= len(data):  # the pixels were turned
                        data[next_ifd:next_ifd + 4] = b"\x00" * 4  # IFD0 is the last one
                return value if 1 <= value <= 8 else 1
    except struct.error:
        pass
    return 1


def png_orientation(png: bytes) -> int:
    """The EXIF orientation a PNG's eXIf chunk records (1: upright, or none). OpenCV applies a JPEG's
    when it reads it, not a PNG's."""
    for kind, chunk in _png_chunks(png):
        if kind == b"eXIf":
            return _exif_orientation(bytearray(chunk), 8)  # length (4), type (4), then the TIFF data
    return 1


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_KEPT = {b"iCCP", b"sRGB", b"gAMA", b"cHRM", b"cICP", b"eXIf", b"tEXt", b"zTXt", b"iTXt", b"tIME", b"pHYs"}


def png_metadata_chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    """The kept chunks of ``png`` as (type, whole chunk with length and CRC), in file order, eXIf's
    orientation set to 1 (the pixels are turned upright on reading), and an XMP iTXt chunk's with it
    where they were turned; empty when there are none or the file is not a well-formed PNG."""
    kept = []
    turned = png_orientation(png) != 1
    for kind, chunk in _png_chunks(png):
        if kind == b"eXIf":
            chunk = png_chunk(kind, upright_exif(chunk[8:-4]))
        elif kind == b"iTXt" and turned and chunk[8:].startswith(b"XML:com.adobe.xmp\x00\x00"):  # uncompressed
            chunk = png_chunk(kind, _upright_xmp(chunk[8:-4]))
        if kind in _PNG_KEPT:
            kept.append((kind, chunk))
    return kept


_XMP_ORIENTATION = re.compile(rb'(tiff:Orientation(?:="|>)\s*)[2-8](?=\s*["<])')


def _upright_xmp(data: bytes) -> bytes:
    """``data`` holding an XMP packet with its ``tiff:Orientation`` (attribute or element) set to 1,
    as EXIF's is: an editor records the orientation in both, and a viewer reading XMP turned the
    upright picture again. The same length: one digit for another."""
    return _XMP_ORIENTATION.sub(rb"\g<1>1", data)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_grey_key(png: bytes) -> int | None:
    """The grey level a grey PNG's tRNS chunk makes transparent, as OpenCV hands the samples over (1-,
    2- and 4-bit ones spread over 8 bits); None when it has none, or is not a grey PNG. OpenCV drops
    this transparency, where it keeps a palette's and an RGB colour key's as alpha."""
    if png_colour_type(png) != 0:
        return None
    depth = png[24]
    for kind, chunk in _png_chunks(png):
        if kind == b"IDAT":
            return None  # tRNS comes before the pixels
        if kind == b"tRNS" and len(chunk) == 14:  # length, type, the 2-byte level, CRC
            (key,) = struct.unpack(">H", chunk[8:10])
            return key * 255 // ((1 << depth) - 1) if depth < 8 else key
    return None


def png_colour_type(png: bytes) -> int | None:
    """IHDR's colour type (0 grey, 2 RGB, 3 palette, 4 grey + alpha, 6 RGBA), None if not a PNG."""
    if not png.startswith(_PNG_SIGNATURE) or png[12:16] != b"IHDR" or len(png) < 26:
        return None
    return png[25]


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


# ------------------------------------------------------------------------------- pixel density

_MAX_DPI = 100_000.0  # past any scanner's; a larger value is a broken field, and overflows PNG, BMP and TIFF


def read_dpi(data: bytes) -> tuple[float, float] | None:
    """Horizontal and vertical dots per inch recorded in a JPEG (JFIF), PNG (pHYs), TIFF or BMP file;
    None when it records none (or only an aspect ratio), or nonsense (above ``_MAX_DPI``: such a value
    crashed the writers of every other format)."""
    dpi = _recorded_dpi(data)
    return dpi if dpi is not None and max(dpi) <= _MAX_DPI else None


def _recorded_dpi(data: bytes) -> tuple[float, float] | None:
    if data.startswith(_SOI):
        jfif = data[6:11] == b"JFIF\x00" and data[2:4] == b"\xff\xe0" and len(data) >= 18
        if jfif and data[13] in (1, 2):
            x, y = struct.unpack(">HH", data[14:18])
            scale = 1.0 if data[13] == 1 else 2.54  # 2: dots per centimetre
            return (x * scale, y * scale) if x and y else None
        return None
    if data.startswith(_PNG_SIGNATURE):
        for kind, chunk in _png_chunks(data):
            if kind == b"pHYs" and len(chunk) == 21 and chunk[16] == 1:  # unit 1: per metre
                x, y = struct.unpack(">II", chunk[8:16])
                return (x * _METRES_PER_INCH, y * _METRES_PER_INCH) if x and y else None
        return None
    if data.startswith(b"BM") and len(data) >= 46 and struct.unpack("<I", data[14:18])[0] >= 40:
        x, y = struct.unpack("<ii", data[38:46])  # pixels per metre
        return (x * _METRES_PER_INCH, y * _METRES_PER_INCH) if x > 0 and y > 0 else None
    ifd = _tiff_ifd0(data)
    if ifd is None:
        return None
    fields = {tag: (kind, count, field) for tag, kind, count, field in ifd.entries}
    if 282 not in fields or 283 not in fields:
        return None
    unit = _tiff_number(data, ifd, *fields[296]) if 296 in fields else 2  # the standard's default: inch
    if unit not in (2, 3):
        return None
    x, y = (_tiff_number(data, ifd, *fields[tag]) for tag in (282, 283))
    scale = 1.0 if unit == 2 else 2.54
    return (x * scale, y * scale) if x > 0 and y > 0 else None


def with_dpi(data: bytes, dpi: tuple[float, float] | None) -> bytes:
    """``data`` (an encoded JPEG, PNG, TIFF or BMP) recording ``dpi``; other formats, or None, as they are."""
    if dpi is None or min(dpi) <= 0:
        return data
    if data.startswith(_SOI):
        if data[2:4] != b"\xff\xe0" or data[6:11] != b"JFIF\x00":
            app0 = b"JFIF\x00\x01\x01" + b"\x00" * 7
            data = data[:2] + b"\xff\xe0" + struct.pack(">H", 2 + len(app0)) + app0 + data[2:]
        x, y = (min(65535, max(1, round(d))) for d in dpi)
        return data[:13] + struct.pack(">BHH", 1, x, y) + data[18:]
    per_metre = tuple(max(1, round(d / _METRES_PER_INCH)) for d in dpi)
    if data.startswith(_PNG_SIGNATURE):  # replacing one there (FFmpeg's PNG encoder writes one square)
        kept = _PNG_SIGNATURE + b"".join(chunk for kind, chunk in _png_chunks(data) if kind != b"pHYs")
        return insert_png_chunks(kept, [(b"pHYs", png_chunk(b"pHYs", struct.pack(">IIB", *per_metre, 1)))])
    if data.startswith(b"BM") and len(data) >= 46 and struct.unpack("<I", data[14:18])[0] >= 40:
        return data[:38] + struct.pack("<ii", *per_metre) + data[46:]
    if _tiff_ifd0(data) is not None:
        x, y = (Fraction(round(d * 1000), 1000) for d in dpi)
        return _with_tiff_tags(data, {282: (5, (x.numerator, x.denominator)),
                                      283: (5, (y.numerator, y.denominator)), 296: (3, (2,))})
    return data


# ------------------------------------------------------------------------------------------ TIFF

def tiff_samples_per_pixel(tiff: bytes) -> int | None:
    """SamplesPerPixel of a TIFF's first image (2: grey + alpha, which OpenCV reads as grey); None if
    ``tiff`` is not a TIFF."""
    ifd = _tiff_ifd0(tiff)
    if ifd is None:
        return None
    for tag, kind, count, field in ifd.entries:
        if tag == 277:
            return int(_tiff_number(tiff, ifd, kind, count, field))
    return 1  # the standard's default


def tiff_photometric(tiff: bytes) -> int | None:
    """PhotometricInterpretation of a TIFF's first image (2: RGB, 5: CMYK...); None if not a TIFF or unsaid."""
    ifd = _tiff_ifd0(tiff)
    for tag, kind, count, field in ifd.entries if ifd else ():
        if tag == 262:
            return int(_tiff_number(tiff, ifd, kind, count, field))
    return None


def tiff_icc_profile(tiff: bytes) -> bytes:
    """The ICC colour profile embedded in a TIFF's first image, or empty."""
    ifd = _tiff_ifd0(tiff)
    for tag, kind, count, field in ifd.entries if ifd else ():
        if tag == _TIFF_ICC and kind in (1, 7):
            return _tiff_value(tiff, ifd, kind, count, field)
    return b""


def with_tiff_icc_profile(tiff: bytes, icc: bytes) -> bytes:
    """``tiff`` carrying the ICC colour profile ``icc`` (as it is when ``icc`` is empty)."""
    return _with_tiff_tags(tiff, {_TIFF_ICC: (7, icc)}) if icc else tiff


def with_tiff_alpha(tiff: bytes) -> bytes:
    """An RGBA ``tiff`` saying its fourth sample is unassociated (straight) alpha (ExtraSamples = 2),
    as the standard asks: OpenCV writes four samples without the tag, which libtiff readers warn of
    and editors may take for an unnamed channel. As it is when it has the tag, or other samples."""
    ifd = _tiff_ifd0(tiff)
    if ifd is None or tiff_samples_per_pixel(tiff) != 4 or any(tag == _TIFF_EXTRA_SAMPLES for tag, *_ in ifd.entries):
        return tiff
    return _with_tiff_tags(tiff, {_TIFF_EXTRA_SAMPLES: (3, (2,))})


def _with_tiff_tags(tiff: bytes, tags: dict[int, tuple[int, tuple[int, ...] | bytes]]) -> bytes:
    """``tiff`` with ``tags`` (tag: (TIFF type, values); bytes: the values as stored, in ``tiff``'s byte order) added to or replacing
    those of its first image. The new directory and values are appended and the header pointed at them,
    so every offset already in the file stays valid; the old directory is left unreferenced."""
    ifd = _tiff_ifd0(tiff)
    if ifd is None or not tags:
        return tiff
    e = ifd.order
    out = bytearray(tiff)
    entries = {tag: struct.pack(e + "HHI", tag, kind, count) + field
               for tag, kind, count, field in ifd.entries if tag not in tags}
    for tag, (kind, values) in tags.items():
        if isinstance(values, bytes):
            payload, count = values, len(values) // _TIFF_TYPE_SIZES[kind]
        else:
            fmt = {3: "H", 4: "I", 5: "I"}[kind]
            payload = struct.pack(e + fmt * len(values), *values)
            count = len(values) // 2 if kind == 5 else len(values)
        entries[tag] = struct.pack(e + "HHI", tag, kind, count) + _placed_value(out, payload, e)
    out += b"\x00" * (len(out) % 2)
    start = len(out)
    out += struct.pack(e + "H", len(entries)) + b"".join(entries[tag] for tag in sorted(entries))
    out += struct.pack(e + "I", ifd.next_offset)
    out[4:8] = struct.pack(e + "I", start)
    return bytes(out)


# EXIF in a TIFF: the picture's own directory holds the camera, date and author tags and points at
# the EXIF and GPS directories (the EXIF one at its interoperability one); a JPEG's EXIF is a TIFF
# block holding the same. Only these tags go across: the rest describe the pixels of one file.
_EXIF_IFD0_TAGS = {270, 271, 272, 274, 305, 306, 315, 33432}  # description, make, model, orientation,
# software, date, artist, copyright
_SUB_IFDS = {34665, 40965, 34853}  # EXIF, interoperability, GPS
_MAX_EXIF = 1 << 20  # bytes of EXIF copied: a camera's is well under a JPEG's one 64 KB segment
_SWAP_UNITS = {3: 2, 8: 2, 4: 4, 9: 4, 11: 4, 5: 4, 10: 4, 12: 8, 13: 4}  # bytes per number, by type


def tiff_exif(tiff: bytes) -> bytes:
    """A TIFF's EXIF as a JPEG carries it (TIFF data of its own: the camera, date and author tags of
    the first image's directory, and its EXIF and GPS directories); empty when it has none. An
    orientation tag alone is none: it is a TIFF's own tag, which many writers set to 1 (Pillow), and the
    pixels are read upright; carried, a BMP or AVIF output said it was written without the EXIF."""
    ifd = _tiff_ifd0(tiff)
    if ifd is None:
        return b""
    e = ifd.order
    out = bytearray((b"II*\x00" if e == "<" else b"MM\x00*") + b"\x00" * 4)
    kept = [entry for entry in ifd.entries if entry[0] in _EXIF_IFD0_TAGS | {34665, 34853}]
    start = _copied_ifd(tiff, e, kept, out, e) if any(entry[0] != _ORIENTATION for entry in kept) else None
    if start is None:
        return b""
    out[4:8] = struct.pack(e + "I", start)
    return bytes(out)


def with_tiff_exif(tiff: bytes, exif: bytes) -> bytes:
    """``tiff`` carrying the EXIF TIFF data ``exif`` (a JPEG's, PNG's or WebP's): its camera, date and
    author tags join the first image's directory, its EXIF and GPS directories are copied after the
    file's end, in the file's byte order. As it is when either cannot be read."""
    ifd, source = _tiff_ifd0(tiff), _tiff_ifd0(exif)
    if ifd is None or source is None:
        return tiff
    out = bytearray(tiff)
    tags: dict[int, tuple[int, tuple[int, ...] | bytes]] = {}
    for tag, kind, count, field in _first_of_each(source.entries):
        if tag in (34665, 34853):
            entries = _ifd_entries(exif, source.order, struct.unpack(source.order + "I", field)[0])
            at = _copied_ifd(exif, source.order, entries, out, ifd.order, base=len(tiff)) if entries else None
            if at is not None:
                tags[tag] = (4, (at,))
        elif tag in _EXIF_IFD0_TAGS and (raw := _raw_value(exif, source.order, kind, count, field)) is not None:
            tags[tag] = (kind, _in_order(raw, kind, source.order, ifd.order))
    return _with_tiff_tags(bytes(out), tags)


def _placed_value(out: bytearray, value: bytes, e: str) -> bytes:
    """An IFD entry's 4-byte value field for ``value``: the value itself where it fits, else its offset
    in ``out``, where it is appended (on a word boundary, as TIFF asks)."""
    if len(value) <= 4:
        return value.ljust(4, b"\x00")
    out += b"\x00" * (len(out) % 2)
    field = struct.pack(e + "I", len(out))
    out += value
    return field


def _ifd_entries(data: bytes, e: str, offset: int) -> list[tuple[int, int, int, bytes]] | None:
    """The entries (tag, type, count, 4-byte field) of the directory at ``offset``; None if cut short."""
    try:
        (count,) = struct.unpack(e + "H", data[offset:offset + 2])
        return [struct.unpack(e + "HHI", data[at:at + 8]) + (data[at + 8:at + 12],)
                for at in range(offset + 2, offset + 2 + 12 * count, 12)]
    except struct.error:
        return None


def _raw_value(data: bytes, e: str, kind: int, count: int, field: bytes) -> bytes | None:
    """An entry's values as stored (``e``'s byte order); None for an unknown type or values cut short."""
    if kind not in _TIFF_TYPE_SIZES:
        return None
    size = _TIFF_TYPE_SIZES[kind] * count
    if size <= 4:
        return field[:size]
    (offset,) = struct.unpack(e + "I", field)
    raw = data[offset:offset + size]
    return raw if len(raw) == size else None


def _in_order(raw: bytes, kind: int, source: str, target: str) -> bytes:
    """``raw`` values of TIFF type ``kind`` turned from byte order ``source`` into ``target``."""
    unit = _SWAP_UNITS.get(kind, 1)
    if source == target or unit == 1:
        return raw
    return b"".join(raw[at:at + unit][::-1] for at in range(0, len(raw), unit))


def _first_of_each(entries: list[tuple[int, int, int, bytes]]) -> list[tuple[int, int, int, bytes]]:
    """``entries`` less any repeat of a tag (a damaged directory's): the first is the one readers take."""
    seen: set[int] = set()
    return [entry for entry in entries if not (entry[0] in seen or seen.add(entry[0]))]


def _copied_ifd(data: bytes, e: str, entries: list[tuple[int, int, int, bytes]] | None, out: bytearray,
                target: str, depth: int = 0, base: int = 0) -> int | None:
    """Append ``entries`` (of the TIFF data ``data``, byte order ``e``) to ``out`` as a directory in
    byte order ``target``, values first and sub-directories (EXIF, GPS, interoperability) copied
    along, every offset pointing into ``out``; its offset, or None when nothing could be copied.
    A tag is copied once, and values only while ``out`` has grown by at most ``_MAX_EXIF`` past
    ``base``: a damaged directory repeating a pointer to itself, or thousands of entries pointing
    at the whole file, copied cubically many directories (a hang) and without bound."""
    if not entries or depth > 2:
        return None
    copied, pending = [], 0
    for tag, kind, count, field in _first_of_each(entries):
        if tag in _SUB_IFDS:
            at = _copied_ifd(data, e, _ifd_entries(data, e, struct.unpack(e + "I", field)[0]), out, target,
                             depth + 1, base)
            if at is not None:
                copied.append((tag, 4, 1, struct.pack(target + "I", at)))
        elif (raw := _raw_value(data, e, kind, count, field)) is not None:
            size = len(raw) + 1 if len(raw) > 4 else 0  # with its word-boundary padding
            if len(out) - base + pending + size + 12 * len(copied) > _MAX_EXIF:
                continue
            pending += size
            copied.append((tag, kind, count, _in_order(raw, kind, e, target)))
    if not copied:
        return None
    fields = []
    for tag, kind, count, raw in sorted(copied):
        fields.append(struct.pack(target + "HHI", tag, kind, count) + _placed_value(out, raw, target))
    out += b"\x00" * (len(out) % 2)
    start = len(out)
    out += struct.pack(target + "H", len(fields)) + b"".join(fields) + struct.pack(target + "I", 0)
    return start


@dataclasses.dataclass(frozen=True)
class _Ifd:
    """A TIFF's first image directory: byte order (struct's ``<`` or ``>``), raw entries (tag, type,
    count, the 4-byte value-or-offset field) and the next directory's offset."""

    order: str
    entries: list[tuple[int, int, int, bytes]]
    next_offset: int


_TIFF_ICC = 34675
_TIFF_EXTRA_SAMPLES = 338
_TIFF_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8}


def _tiff_ifd0(tiff: bytes) -> _Ifd | None:
    if tiff[:4] not in (b"II*\x00", b"MM\x00*") or len(tiff) < 8:
        return None
    e = "<" if tiff[:2] == b"II" else ">"
    (offset,) = struct.unpack(e + "I", tiff[4:8])
    if (entries := _ifd_entries(tiff, e, offset)) is None:
        return None
    end = offset + 2 + 12 * len(entries)
    try:
        (next_offset,) = struct.unpack(e + "I", tiff[end:end + 4])
    except struct.error:
        return None  # cut short
    return _Ifd(e, entries, next_offset)


def _tiff_value(tiff: bytes, ifd: _Ifd, kind: int, count: int, field: bytes) -> bytes:
    """An entry's values as stored; empty for an unknown type or values cut short (:func:`_raw_value`)."""
    return _raw_value(tiff, ifd.order, kind, count, field) or b""


def _tiff_number(tiff: bytes, ifd: _Ifd, kind: int, count: int, field: bytes) -> float:
    """The first value of a SHORT, LONG or RATIONAL field (0 when it is another type or cut short)."""
    raw = _tiff_value(tiff, ifd, kind, count, field)
    try:
        if kind == 3:
            return struct.unpack(ifd.order + "H", raw[:2])[0]
        if kind == 4:
            return struct.unpack(ifd.order + "I", raw[:4])[0]
        if kind == 5:
            num, den = struct.unpack(ifd.order + "II", raw[:8])
            return num / den if den else 0.0
    except struct.error:
        pass
    return 0.0
