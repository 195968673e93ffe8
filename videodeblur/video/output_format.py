"""The output's pixel format and colour tags, chosen from the source's: its chroma layout kept where
players and editors expect it, its bit depth, and tags that say how the written YUV was made (an
RGB source is not tagged as RGB once it is YUV)."""
from __future__ import annotations

import dataclasses

import av

from videodeblur.video.colour import (AVCOL_RANGE_JPEG, AVCOL_RANGE_MPEG, AVCOL_SPC_BT470BG, AVCOL_SPC_BT709, AVCOL_SPC_RGB,
                                      ColourTags, has_no_matrix)

__all__ = ["as_decoders_read", "is_deep", "jpeg_colour_only", "like_chroma", "output_subsampling", "output_tags",
           "source_tags"]


def output_subsampling(pix_fmt: str, subsampling: tuple[int, int]) -> tuple[int, int]:
    """A source's chroma subsampling as its output sees it: a grey one has no chroma to keep, so it is
    written as 4:2:0, which every player decodes (4:4:4 would lose nothing more and play in fewer)."""
    fmt = av.VideoFormat(pix_fmt)
    return (2, 2) if len(fmt.components) < 3 and not fmt.is_rgb else subsampling


def like_chroma(subsampling: tuple[int, int], width: int, height: int) -> str:
    """The output's chroma layout for a source's: 4:2:0 and 4:2:2 kept (a pro camera's 4:2:2 is what
    its editor expects); 4:1:1 (NTSC DV) as 4:2:0, the same number of chroma samples in the layout
    every player decodes (4:2:2 would keep its full-height chroma, but browsers and phones do not play
    it); 4:1:0 (SVQ1, Indeo) as 4:2:0, which holds all its chroma and more (4:4:4 kept nothing more
    and played in fewer players); 4:4:4, RGB and 4:2:2 at an odd width as 4:4:4. 4:2:0 at an odd size
    stays 4:2:0 here: the encoder's layouts decide (x264 cannot write it, and gets 4:4:4:
    :func:`~videodeblur.video.encoders.encodable_pix_fmt`)."""
    if subsampling in ((2, 2), (4, 1), (4, 4)):
        return "yuv420p"
    if subsampling == (2, 1) and width % 2 == 0:
        return "yuv422p"
    return "yuv444p"


def is_deep(pix_fmt: str) -> bool:
    """More than 8 bits per sample."""
    return max(c.bits for c in av.VideoFormat(pix_fmt).components) > 8


def output_tags(colour: ColourTags, pix_fmt: str) -> ColourTags:
    """The tags a ``pix_fmt`` output of a source tagged ``colour`` carries. An RGB source (PNG,
    libx264rgb: matrix "RGB") written as YUV is converted with BT.709 limited range and tagged so;
    copying its RGB tag made players read the YUV planes as G, B, R (grey came out green)."""
    if colour.colorspace != AVCOL_SPC_RGB or av.VideoFormat(pix_fmt).is_rgb:
        return colour
    return dataclasses.replace(colour, colorspace=AVCOL_SPC_BT709, color_range=AVCOL_RANGE_MPEG)


def as_decoders_read(colour: ColourTags, encoder: str, pix_fmt: str) -> ColourTags:
    """The tags (and matrix to convert with) as decoders will read ``encoder``'s stream. RGB planes
    (libx264rgb) are tagged RGB, full range: tagged with a YUV source's BT.709, H.264's header told
    decoders to read G, B, R as Y, U, V (37.9 levels off on average). VP8 has one matrix, BT.601, which
    FFmpeg's decoder and browsers apply whatever the container says, so a BT.709 source converted with
    its own matrix came back 5 levels off on average (measured on a 320x180 BT.709 clip). Motion JPEG is
    JPEG's YUV, full-range BT.601: FFmpeg's encoder refuses limited range (every .mjpeg output failed to
    open it), and a raw .mjpeg file has no tags to say anything else."""
    if av.VideoFormat(pix_fmt).is_rgb:
        return dataclasses.replace(colour, colorspace=AVCOL_SPC_RGB, color_range=AVCOL_RANGE_JPEG)
    if jpeg_colour_only(encoder):
        return dataclasses.replace(colour, colorspace=AVCOL_SPC_BT470BG, color_range=AVCOL_RANGE_JPEG)
    if colour.matrix == "bt601" or av.Codec(encoder, "w").canonical_name != "vp8":
        return colour
    return dataclasses.replace(colour, colorspace=AVCOL_SPC_BT470BG)


def jpeg_colour_only(encoder: str) -> bool:
    """Whether ``encoder`` writes only JPEG's full-range YUV (Motion JPEG: FFmpeg's refuses to open for
    limited range)."""
    return av.Codec(encoder, "w").canonical_name == "mjpeg"


def source_tags(colour: ColourTags, pix_fmt: str) -> ColourTags:
    """A source's colour tags as the writer takes them: a ``pix_fmt`` without a matrix (RGB, grey,
    palette) is RGB, tagged so or not."""
    if has_no_matrix(pix_fmt):
        return dataclasses.replace(colour, colorspace=AVCOL_SPC_RGB)  # no matrix, tagged or not
    return colour
