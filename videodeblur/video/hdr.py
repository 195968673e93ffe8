"""HDR10's static metadata, read from a decoded frame and written back as x265 parameters.

Why: an HDR10 (PQ) video carries the mastering display's colour volume and its content light
levels; a TV tone-maps the picture by them. They ride in the stream, not in the container's colour
tags, so a re-encoded file loses them unless they are handed to the encoder. The frame gives them
as FFmpeg's C structs (``AVMasteringDisplayMetadata``, ``AVContentLightMetadata``); x265 takes
them as ``master-display`` and ``max-cll`` strings.
"""
from __future__ import annotations

import dataclasses
import struct
from fractions import Fraction

import av

__all__ = ["HdrMetadata", "hdr_metadata", "mastering_display", "content_light"]


@dataclasses.dataclass(frozen=True)
class HdrMetadata:
    """x265's spellings: ``master_display`` "G(x,y)B(x,y)R(x,y)WP(x,y)L(max,min)" (chromaticity in
    units of 0.00002, luminance of 0.0001 cd/m²), ``max_cll`` "MaxCLL,MaxFALL" (cd/m²)."""

    master_display: str | None = None
    max_cll: str | None = None

    def x265_params(self) -> str:
        """The ``x265-params`` that write both back, with the HDR10 signalling they need."""
        parts = ["hdr10=1"]
        if self.master_display:
            parts.append(f"master-display={self.master_display}")
        if self.max_cll:
            parts.append(f"max-cll={self.max_cll}")
        return ":".join(parts)


def mastering_display(data: bytes) -> str | None:
    """``AVMasteringDisplayMetadata`` (primaries r, g, b then white point, as AVRationals; min and
    max luminance; has_primaries, has_luminance) → x265's ``master-display``; None when it holds
    neither part or is too short."""
    if len(data) < 88:
        return None
    values = struct.unpack_from("<20i2i", data)
    rationals = [Fraction(n, d) if d else Fraction(0) for n, d in zip(values[0:20:2], values[1:20:2])]
    has_primaries, has_luminance = values[20], values[21]
    if not (has_primaries and has_luminance):
        return None
    (rx, ry, gx, gy, bx, by, wx, wy), (low, high) = rationals[:8], rationals[8:10]

    def xy(x: Fraction, y: Fraction) -> str:
        return f"({round(x * 50000)},{round(y * 50000)})"

    return f"G{xy(gx, gy)}B{xy(bx, by)}R{xy(rx, ry)}WP{xy(wx, wy)}L({round(high * 10000)},{round(low * 10000)})"


def content_light(data: bytes) -> str | None:
    """``AVContentLightMetadata`` (MaxCLL, MaxFALL as unsigned ints) → "MaxCLL,MaxFALL"."""
    if len(data) < 8:
        return None
    max_cll, max_fall = struct.unpack_from("<2I", data)
    return f"{max_cll},{max_fall}" if max_cll or max_fall else None


def hdr_metadata(frame: av.VideoFrame) -> HdrMetadata | None:
    """The HDR10 static metadata a decoded frame carries, None when it has none."""
    kinds = av.sidedata.sidedata.Type
    found: dict[str, str | None] = {}
    for side in frame.side_data:
        if side.type == kinds.MASTERING_DISPLAY_METADATA:
            found["master_display"] = mastering_display(bytes(side))
        elif side.type == kinds.CONTENT_LIGHT_LEVEL:
            found["max_cll"] = content_light(bytes(side))
    metadata = HdrMetadata(**found)
    return metadata if metadata.master_display or metadata.max_cll else None
