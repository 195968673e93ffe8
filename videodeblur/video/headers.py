"""The parameter sets (SPS, PPS, VPS) in an H.264 or HEVC stream header, whichever way it is stored.

Why: a resumed run appends newly encoded frames to the frames of an earlier run, and they decode
right only if both runs' encoders wrote the same parameter sets. The encoder hands them over as an
Annex B byte stream (start codes), while MP4 and Matroska store them in an ``avcC`` / ``hvcC``
record; the bytes differ, the sets inside must not.
"""
from __future__ import annotations

import re

__all__ = ["parameter_sets", "is_annex_b"]

_START_CODE = re.compile(b"\x00\x00\x01")


def parameter_sets(extradata: bytes | None, codec: str) -> frozenset[bytes] | None:
    """The NAL units in ``extradata`` of an ``h264`` or ``hevc`` stream, or None for another codec,
    an empty header or one this cannot read."""
    if not extradata or codec not in ("h264", "hevc"):
        return None
    try:
        if is_annex_b(extradata):
            units = [unit.rstrip(b"\x00") for unit in _START_CODE.split(extradata) if unit.strip(b"\x00")]
        else:
            units = _from_avcc(extradata) if codec == "h264" else _from_hvcc(extradata)
    except IndexError:  # a record shorter than its own counts say
        return None
    if units is None:
        return None
    # only the parameter sets: an encoder may add SEI messages (its version) that decoding does not need
    kinds = _PARAMETER_SET_TYPES[codec]
    return frozenset(u for u in units if _nal_type(u, codec) in kinds)


def is_annex_b(extradata: bytes | None) -> bool:
    """Whether a stream header is an Annex B byte stream (start codes), as encoders hand it over,
    rather than an ``avcC`` / ``hvcC`` record, as MP4 and Matroska store it."""
    return bool(extradata) and extradata.startswith((b"\x00\x00\x01", b"\x00\x00\x00\x01"))


_PARAMETER_SET_TYPES = {"h264": (7, 8), "hevc": (32, 33, 34)}  # SPS, PPS; VPS, SPS, PPS


def _nal_type(unit: bytes, codec: str) -> int:
    return unit[0] & 0x1F if codec == "h264" else (unit[0] >> 1) & 0x3F


def _units(data: bytes, at: int, count: int) -> tuple[list[bytes], int]:
    """``count`` units, each a 16-bit big-endian length then its bytes, from ``at``."""
    units = []
    for _ in range(count):
        size = int.from_bytes(data[at:at + 2], "big")
        unit = data[at + 2:at + 2 + size]
        if len(unit) != size:
            raise IndexError("unit runs past the record")
        units.append(unit)
        at += 2 + size
    return units, at


def _from_avcc(data: bytes) -> list[bytes] | None:
    """ISO/IEC 14496-15 AVCDecoderConfigurationRecord: SPS count in byte 5, then the PPS count."""
    if data[0] != 1:
        return None
    sps, at = _units(data, 6, data[5] & 0x1F)
    pps, _ = _units(data, at + 1, data[at])
    return sps + pps


def _from_hvcc(data: bytes) -> list[bytes] | None:
    """ISO/IEC 14496-15 HEVCDecoderConfigurationRecord: 22 bytes, then arrays of NAL units by type."""
    if data[0] != 1:
        return None
    units: list[bytes] = []
    at = 23
    for _ in range(data[22]):
        found, at = _units(data, at + 3, int.from_bytes(data[at + 1:at + 3], "big"))
        units += found
    return units
