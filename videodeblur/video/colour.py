"""Colour tags of a stream, YUV 4:2:0 <-> RGB conversion in torch (for converting on the GPU), and
the CPU path's exact YUV -> RGB through swscale (:class:`RgbConverter`).

Planar 4:2:0 frames travel in PyAV's packed ``yuv420p`` ndarray layout, "I420": one uint8 array of
``(3·H/2)×W`` holding the Y plane (H×W), then U (H/2×W/2), then V, each row-major. Moving that to
the device instead of RGB halves the bytes over PCIe and takes swscale off the CPU.

Matrix and range follow the stream's tags (``AVColorSpace`` / ``AVColorRange`` values as PyAV
reports them); an untagged stream is read as BT.601 limited range, which is what swscale assumes,
so both paths agree on untagged input.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import cv2  # before av: a later cv2.imshow freezes if av was imported first (DESIGN.md)
import av
import av.filter
import av.video.reformatter
import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["ColourTags", "YUVMatrix", "yuv_matrix", "i420_to_rgb", "rgb_to_i420", "rgb_to_yuv_planes", "in_whole_blocks",
           "sws_colorspace",
           "RgbConverter", "may_wrap", "frame_range",
           "has_no_matrix", "AVCOL_RANGE_UNSPECIFIED", "AVCOL_RANGE_MPEG", "AVCOL_RANGE_JPEG",
           "AVCOL_SPC_RGB", "AVCOL_SPC_BT709", "AVCOL_SPC_UNSPECIFIED", "AVCOL_SPC_BT470BG", "AVCOL_SPC_SMPTE240M",
           "AVCOL_SPC_BT2020", "AVCOL_PRI_UNSPECIFIED", "AVCOL_TRC_UNSPECIFIED"]

# FFmpeg's colour enums (libavutil/pixfmt.h), spelled once here for every module that reads or sets tags
AVCOL_RANGE_UNSPECIFIED, AVCOL_RANGE_MPEG, AVCOL_RANGE_JPEG = 0, 1, 2
AVCOL_SPC_RGB, AVCOL_SPC_BT709, AVCOL_SPC_UNSPECIFIED = 0, 1, 2  # RGB: no matrix (RGB planes)
AVCOL_SPC_BT470BG = 5  # BT.601 (625 lines), VP8's one matrix
AVCOL_SPC_SMPTE240M = 7
AVCOL_SPC_BT2020 = (9, 10)  # non-constant and constant luminance
AVCOL_PRI_UNSPECIFIED = 2
AVCOL_TRC_UNSPECIFIED = 2

# (Kr, Kb) luma coefficients per matrix.
_LUMA = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722), "smpte240m": (0.212, 0.087),
         "bt2020": (0.2627, 0.0593)}


@dataclasses.dataclass(frozen=True)
class ColourTags:
    """A stream's colour description, as FFmpeg enum values (unspecified by default)."""

    colorspace: int = AVCOL_SPC_UNSPECIFIED
    color_range: int = AVCOL_RANGE_UNSPECIFIED
    color_primaries: int = AVCOL_PRI_UNSPECIFIED
    color_trc: int = AVCOL_TRC_UNSPECIFIED

    @property
    def full_range(self) -> bool:
        return self.color_range == AVCOL_RANGE_JPEG

    @property
    def matrix(self) -> str:
        """``bt601`` | ``bt709`` | ``smpte240m`` | ``bt2020``; untagged streams are BT.601 (as swscale)."""
        if self.colorspace == AVCOL_SPC_BT709:
            return "bt709"
        if self.colorspace == AVCOL_SPC_SMPTE240M:
            return "smpte240m"
        if self.colorspace in AVCOL_SPC_BT2020:
            return "bt2020"
        return "bt601"

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class YUVMatrix:
    """Y'CbCr coefficients and the 8-bit quantisation for one matrix and range."""

    kr: float
    kb: float
    full_range: bool

    @property
    def y_offset(self) -> float:
        return 0.0 if self.full_range else 16.0

    @property
    def y_scale(self) -> float:  # code values per unit luma
        return 255.0 if self.full_range else 219.0

    @property
    def c_scale(self) -> float:  # code values per unit chroma difference
        return 255.0 if self.full_range else 224.0


def yuv_matrix(tags: ColourTags | None = None, *, matrix: str | None = None,
               full_range: bool | None = None) -> YUVMatrix:
    """The matrix for a stream's tags, or for an explicit ``matrix`` name / ``full_range``."""
    tags = tags or ColourTags()
    name = matrix or tags.matrix
    if name not in _LUMA:
        raise ValueError(f"unknown YUV matrix {name!r}; use one of {sorted(_LUMA)}")
    kr, kb = _LUMA[name]
    return YUVMatrix(kr=kr, kb=kb, full_range=tags.full_range if full_range is None else full_range)


def sws_colorspace(tags: ColourTags) -> str | None:
    """The swscale colorspace name PyAV's ``reformat`` takes for these tags (None: swscale default)."""
    return {"bt601": "ITU601", "bt709": "ITU709", "smpte240m": "SMPTE240M", "bt2020": "BT2020"}[tags.matrix]


class RgbConverter:
    """Decoded frames to RGB on the CPU: the exact matrix math of the frame's own tags, rounded.

    Why not ``frame.to_ndarray(format="rgb24")``: swscale's default YUV -> rgb24 path trades
    precision for speed. Measured against the exact math it was 0.8 level dark on average and up to
    3 levels off (BT.601 limited Y=50 gave 39 where 39.59 is exact), so every deblurred video came
    out a level darker than its source. Planar RGB (``gbrp``) with SWS_ACCURATE_RND rounds exactly
    and keeps swscale's SIMD (packed rgb24 with the same flags runs in plain C, 3-4x slower); it is
    then packed, an exact byte shuffle. Chroma is read as centred on the pixels it covers, whatever
    siting the stream gives, so it is repeated over them as the device path's :func:`i420_to_rgb`
    repeats it (an H.264 frame's "left" siting made swscale's nearest neighbour take the next chroma
    sample for every odd column), and a frame of odd width or height is padded to whole chroma blocks
    first, its chroma then one sample a block as at even sizes. swscale's 8-bit RGB wraps a bright blue
    past legal chroma to 0 (:func:`may_wrap`): the frames where it may take that blue's top from its
    16-bit RGB, which clips.
    Formats without a matrix (RGB, grey, palette) convert as before.
    Keep one per stream: its swscale contexts (one pair per output depth) are set up once, not per frame.
    """

    def __init__(self) -> None:
        # (planar, packed) reformatters for 8-bit and for 16-bit output
        self._reformatters = {deep: (av.video.reformatter.VideoReformatter(), av.video.reformatter.VideoReformatter())
                              for deep in (False, True)}
        self._siting: tuple[tuple[int, int, str, int, int], av.filter.Graph] | None = None

    def to_rgb(self, frame: av.VideoFrame, *, deep: bool = False, width: int | None = None,
               height: int | None = None) -> np.ndarray:
        """uint8 ``H×W×3`` RGB of ``frame`` (uint16 with ``deep``), scaled smoothly to ``width`` ×
        ``height`` when given (a stream whose size changed mid-way). swscale's 16-bit RGB from YUV
        puts white near 65280 (255·256), not 65535: so does its way back to YUV, which the writer
        takes, so a 10-bit frame read and written again keeps its samples."""
        return self.to_rgb_depths(frame, (deep,), width=width, height=height)[0]

    def to_rgb_depths(self, frame: av.VideoFrame, depths: tuple[bool, ...], *, width: int | None = None,
                      height: int | None = None) -> list[np.ndarray]:
        """:meth:`to_rgb` of ``frame`` at each depth asked (False: uint8, True: uint16), its chroma
        re-sited once for all of them (a 10-bit video is read both ways)."""
        if has_no_matrix(frame.format):
            return [self._without_matrix(frame, deep, width, height) for deep in depths]
        resized = (width or frame.width, height or frame.height) != (frame.width, frame.height)
        centred = self._centred(frame, whole_blocks=not resized)
        size = {"width": width, "height": height} if resized else {}
        bits = frame.format.components[0].bits
        if bits > 8 and frame_range(frame) == AVCOL_RANGE_JPEG:
            # swscale reads full-range deeper YUV as its samples shifted to 16 bits (10-bit white
            # 65472, not 65535): exactly linear, so scaled here from its 16-bit RGB, at each depth
            rgb = self._packed(self._planar(centred, True, **size), True)
            images = [_rescaled(rgb, ((1 << bits) - 1) << (16 - bits), deep) for deep in depths]
        else:
            images = [self._packed(self._planar(centred, deep, **size), deep) for deep in depths]
        if False in depths and may_wrap(frame):  # 8-bit blue may have wrapped to 0 where 16-bit blue is at its top
            if True in depths:
                blue16 = images[depths.index(True)][..., 2]
            else:  # G, B, R planes
                planar = self._planar(centred, True, **size).planes[1]
                blue16 = np.frombuffer(planar, "<u2").reshape(planar.height, -1)[:, :planar.width]
            images[depths.index(False)][..., 2][blue16 == 0xFFFF] = 255
        if (centred.width, centred.height) != (frame.width, frame.height):  # padded to whole chroma blocks
            images = [np.ascontiguousarray(image[:frame.height, :frame.width]) for image in images]
        return images

    def _planar(self, centred: av.VideoFrame, deep: bool, width: int | None = None,
                height: int | None = None) -> av.VideoFrame:
        """``centred`` as planar RGB, 8 or 16 bits (see the class for why planar), scaled to ``width``
        × ``height`` when given."""
        return self._reformatters[deep][0].reformat(centred, width=width, height=height,
                                                    format="gbrp16le" if deep else "gbrp",
                                                    interpolation=_SCALED if width or height else _SAME_SIZE)

    def _packed(self, planar: av.VideoFrame, deep: bool) -> np.ndarray:
        return self._reformatters[deep][1].reformat(planar, format="rgb48le" if deep else "rgb24",
                                                    interpolation=_POINT).to_ndarray()

    @staticmethod
    def _without_matrix(frame: av.VideoFrame, deep: bool, width: int | None, height: int | None) -> np.ndarray:
        """RGB, grey and palette frames: converted as they are, grey from its samples (limited range
        stretched), 16-bit RGB with white at 65280 as from YUV, which is where the writer's way back
        to YUV puts white: swscale's 65535 came out at 943 of 10-bit YUV's 940, 0.4 % too bright."""
        if _is_integer_grey(frame.format):
            return _grey(frame, deep=deep, width=width, height=height)
        if max(c.bits for c in frame.format.components) <= 8:  # 16-bit as 8-bit · 256, white 65280
            rgb8 = frame.to_ndarray(format="rgb24", width=width, height=height)
            return rgb8.astype(np.uint16) << 8 if deep else rgb8
        # deeper RGB through 16 bits, scaled exactly: swscale's rgb24 of it shifts (10-bit 696 >> 2 = 174, not 173.49)
        return _rescaled(frame.to_ndarray(format="rgb48le", width=width, height=height), 65535, deep)

    def _centred(self, frame: av.VideoFrame, *, whole_blocks: bool) -> av.VideoFrame:
        """``frame`` with its chroma sited at the centre of its block (the same planes, not copied);
        with ``whole_blocks``, one of a size its chroma blocks do not tile (odd sizes at 4:2:0 and
        4:2:2) is first padded on the right and bottom to whole blocks (:func:`_padded`), for the caller
        to crop: swscale spreads such a frame's chroma over it at its own scale (33 samples over 65
        columns), not one sample a block, so colours slid a column or row off their place towards the far
        edge: a 65×49 clip of colour stripes came out of ``video`` 12-13 levels off on average, up to 251
        at the stripes' edges (either range). A frame scaled to another size is scaled as it was."""
        blocks = _whole_blocks(frame.format, frame.width, frame.height) if whole_blocks else (frame.width, frame.height)
        if blocks != (frame.width, frame.height):
            frame = _padded(frame, blocks)
        key = (frame.width, frame.height, frame.format.name, int(frame.colorspace), int(frame.color_range))
        if self._siting is None or self._siting[0] != key:
            graph = av.filter.Graph()
            # the frame's tags given up front: a buffer told nothing logs each tagged frame as a change
            source = graph.add("buffer", f"video_size={frame.width}x{frame.height}:pix_fmt={frame.format.name}:"
                                         f"time_base=1/1000:colorspace={key[3]}:range={key[4]}")
            siting = graph.add("setparams", "chroma_location=center")
            sink = graph.add("buffersink")
            source.link_to(siting)
            siting.link_to(sink)
            graph.configure()
            self._siting = (key, graph)
        graph = self._siting[1]
        graph.push(frame)
        return graph.pull()


def _rescaled(rgb: np.ndarray, white: int, deep: bool) -> np.ndarray:
    """uint16 RGB whose white is ``white`` as uint16 with white at 65280 (as from YUV), or ``deep``
    False as uint8, rounded (OpenCV's weighted sum: 0.5-0.8 ms a 720p frame, numpy's integer math 26-42)."""
    top = 65280 if deep else 255
    return cv2.addWeighted(rgb, top / white, rgb, 0.0, 0.0, dtype=cv2.CV_16U if deep else cv2.CV_8U)


def in_whole_blocks(rgb: np.ndarray, pix_fmt: str, convert: Callable[[np.ndarray], av.VideoFrame]) -> av.VideoFrame:
    """``convert(rgb)``, RGB (``H×W×3``) to a ``pix_fmt`` frame, where ``pix_fmt``'s chroma blocks tile
    the picture; otherwise (odd sizes at 4:2:0 and 4:2:2) of ``rgb`` padded to whole blocks, its last
    column and row repeated (so each edge block's chroma is the mean of the pixels it covers), and the
    frame cropped back. swscale spreads an odd size's chroma at its own scale, as when reading
    (:meth:`RgbConverter._centred`): colour stripes written 65×49 at 4:2:0 read back 6.6 levels off on
    average, up to 113 at their edges."""
    height, width = rgb.shape[:2]
    blocks = _whole_blocks(av.VideoFormat(pix_fmt), width, height)
    if blocks == (width, height):
        return convert(rgb)
    padded = np.pad(rgb, ((0, blocks[1] - height), (0, blocks[0] - width), (0, 0)), mode="edge")
    return _padded(convert(padded), (width, height))


def _padded(frame: av.VideoFrame, size: tuple[int, int]) -> av.VideoFrame:
    """``frame`` as the top-left of a ``size`` frame, or ``size`` of its top left (planes copied row
    by row; an odd size's chroma planes are whole either way: its last chroma sample covers its last
    column or row alone), with its tags; the padding is zeros, to be cropped off. (FFmpeg's pad filter
    rounds the input's size down to whole blocks, so it drops that last column.)"""
    padded = av.VideoFrame(size[0], size[1], frame.format.name)
    for source, plane in zip(frame.planes, padded.planes):
        rows = np.frombuffer(source, np.uint8).reshape(source.height, source.line_size)
        into = np.zeros((plane.height, plane.line_size), np.uint8)
        height, width = min(source.height, plane.height), min(source.line_size, plane.line_size)
        into[:height, :width] = rows[:height, :width]
        plane.update(into)
    padded.colorspace, padded.color_range = frame.colorspace, frame.color_range
    return padded


def _whole_blocks(fmt: av.VideoFormat, width: int, height: int) -> tuple[int, int]:
    """The size, at least ``width`` × ``height``, that ``fmt``'s chroma blocks (2×2 at 4:2:0, 2×1 at 4:2:2) tile."""
    across, down = 64 // fmt.chroma_width(64), 64 // fmt.chroma_height(64)
    return fmt.chroma_width(width) * across, fmt.chroma_height(height) * down


def _is_integer_grey(fmt: av.VideoFormat) -> bool:
    """gray, gray10le, gray16be...: grey whose samples numpy reads (not float grey, nor 1-bit monob/monow,
    which swscale converts as before)."""
    return fmt.name.startswith("gray") and "f" not in fmt.name.removeprefix("gray")


def _grey(frame: av.VideoFrame, *, deep: bool, width: int | None, height: int | None) -> np.ndarray:
    """A grey frame as RGB, exact from its samples: a limited-range one (HEVC monochrome, a security or
    thermal camera's video) stretched, black 16 → 0 and white 235 → 255 at 8 bits, since swscale reads
    every grey frame as full range whatever its tag (such a video came out washed out, its black
    written back at 30, its white at 219). swscale is not exact on deeper full-range grey either: it
    rounds 16-bit 128·257 up to 129 at 8 bits (such a video read half a level bright on average), and
    at 16 bits shifts 10-bit samples (white 65472, not 65535). 16-bit RGB puts white at 65280, as from YUV."""
    if (width or frame.width, height or frame.height) != (frame.width, frame.height):
        frame = frame.reformat(width=width, height=height, interpolation=_SCALED)
    bits = frame.format.components[0].bits
    limited = int(frame.color_range) == AVCOL_RANGE_MPEG
    if bits == 8 and not limited:  # the samples are the 8-bit RGB; 16-bit at 256 a level
        grey = frame.to_ndarray()
        return np.repeat((grey.astype(np.uint16) << 8 if deep else grey)[..., None], 3, axis=2)
    samples = frame.to_ndarray().astype(np.float32)
    white = 65280.0 if deep else 255.0
    if limited:
        level = samples / float(1 << (bits - 8))  # on the 8-bit scale
        scaled = (level - 16.0) * (white / 219.0)
    else:
        scaled = samples * (white / float((1 << bits) - 1))
    grey = np.clip(np.rint(scaled), 0.0, white).astype(np.uint16 if deep else np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


# swscale's 8-bit planar RGB (output.c, yuv2gbrp_full_X_c) sums each sample in a 32-bit int, 2**22
# a level, and clips a negative sum to 0 and one of 2**30 (256 levels) or more to 255; but a blue of
# 512 levels (limited-range luma and chroma near their tops: BT.709 Y 240 with U 250) overflows
# past 2**31 to negative, and comes out 0. Its 16-bit RGB (yuv2gbrp16_full_X_c) stays in range.
_WRAPS_AT = 500.0  # levels: 512, less a margin for swscale's rounded coefficients
_BLUE_PER_CB = 2.0 * (1.0 - min(kb for _, kb in _LUMA.values()))  # B - Y' per unit Cb, at the smallest Kb (BT.2020's)


def frame_range(frame: av.VideoFrame) -> int:
    """A decoded frame's range (FFmpeg's enum): a ``yuvj`` format is full range whatever the frame says."""
    return AVCOL_RANGE_JPEG if frame.format.name.startswith("yuvj") else int(frame.color_range)


def may_wrap(frame: av.VideoFrame) -> bool:
    """Whether some pixel of ``frame`` (YUV) could come out of swscale's 8-bit RGB wrapped: its
    largest luma and blue-difference chroma samples together reach a blue of ``_WRAPS_AT`` levels.
    Never for legal samples, nor any at full range (at most 496 levels); rare in real footage, whose
    chroma overshoots its legal top (240) only on saturated blues. Cheap: the largest sample of two
    planes (planar formats) or of every second or fourth byte (the 8-bit semi-planar and packed
    layouts cameras and hardware decoders give, :data:`_INTERLEAVED`); other layouts are taken to be
    at risk (the 16-bit conversion that costs took a 720p yuyv422 frame from 2.5 to 5.0 ms)."""
    if frame_range(frame) == AVCOL_RANGE_JPEG:
        return False
    top_cb = _largest_sample(frame, 1)
    if top_cb is None:
        return True  # a layout not read here
    top_blue = (top_cb - 128.0) * (255.0 / 224.0) * _BLUE_PER_CB  # limited range: chroma 16-240, luma 16-235
    if top_blue + (256.0 - 16.0) * (255.0 / 219.0) < _WRAPS_AT:
        return False  # not with any luma: the luma samples, 2-4 times the chroma's, are not read
    return top_blue + (_largest_sample(frame, 0) - 16.0) * (255.0 / 219.0) >= _WRAPS_AT


def _largest_sample(frame: av.VideoFrame, component: int) -> float | None:
    """The largest luma (``component`` 0) or blue-difference chroma (1) sample of a YUV frame, on the
    8-bit scale; None for a layout not read here (neither planar nor :data:`_INTERLEAVED`)."""
    fmt = frame.format
    if fmt.name in _INTERLEAVED:
        plane_index, first, every = _INTERLEAVED[fmt.name][component]
        plane = frame.planes[plane_index]
        rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
        return float(rows[:, first:_row_bytes(fmt.name, plane_index, plane.width):every].max())
    bits = fmt.components[0].bits
    if [c.plane for c in fmt.components[:3]] != [0, 1, 2] or bits > 16:
        return None
    dtype = np.dtype(np.uint8 if bits <= 8 else ">u2" if fmt.name.endswith("be") else "<u2")
    plane = frame.planes[component]
    rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
    return float(rows[:, :plane.width * dtype.itemsize].view(dtype).max()) / float(1 << (bits - 8))


# 8-bit semi-planar and packed YUV: where luma and blue-difference chroma (Cb) lie, as (plane, first
# byte, every n-th byte) within each row
_INTERLEAVED = {
    "nv12": ((0, 0, 1), (1, 0, 2)),  # Y plane; then U V U V ...
    "nv21": ((0, 0, 1), (1, 1, 2)),  # Y plane; then V U V U ...
    "yuyv422": ((0, 0, 2), (0, 1, 4)),  # Y U Y V
    "uyvy422": ((0, 1, 2), (0, 0, 4)),  # U Y V Y
    "yvyu422": ((0, 0, 2), (0, 3, 4)),  # Y V Y U
}


def _row_bytes(name: str, plane_index: int, width: int) -> int:
    """Bytes of picture in a row of a plane ``width`` samples wide of an :data:`_INTERLEAVED` layout:
    a packed row holds 4 bytes per pair of pixels, a semi-planar chroma row 2 per chroma sample."""
    if name.endswith("422"):
        return -(-width // 2) * 4
    return width * (2 if plane_index else 1)


def has_no_matrix(fmt: av.VideoFormat | str) -> bool:
    """Whether a pixel format's samples are RGB or grey (with alpha or not): no YUV matrix in them."""
    fmt = av.VideoFormat(fmt) if isinstance(fmt, str) else fmt
    return fmt.is_rgb or len(fmt.components) < 3


_POINT = int(av.video.reformatter.Interpolation.POINT)
_ACCURATE_RND = 0x40000  # SWS_ACCURATE_RND: PyAV < 18 has no name for it but passes the number on
_SAME_SIZE = _POINT | _ACCURATE_RND  # nearest neighbour: centred chroma is repeated, not blended
_SCALED = int(av.video.reformatter.Interpolation.BILINEAR) | _ACCURATE_RND


def i420_to_rgb(packed: torch.Tensor, m: YUVMatrix, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 ``N×(3H/2)×W`` I420 → float ``N×3×H×W`` RGB in [0, 1] (channels_last strides).

    Chroma is upsampled by pixel repetition, as the CPU path (:class:`RgbConverter`) does, so the
    two paths match (swscale's default yuv420p → rgb24 repeats it too: 46 dB against it, bilinear 32 dB).
    """
    y, u, v = _split_i420(packed)
    n, h, w = y.shape
    yf = (y.to(dtype) - m.y_offset) / m.y_scale
    uv = torch.stack((u, v), dim=1).to(dtype)
    uv = (uv - 128.0) / m.c_scale
    uv = uv.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    pb, pr = uv[:, 0], uv[:, 1]
    kr, kb = m.kr, m.kb
    kg = 1.0 - kr - kb
    r = yf + 2.0 * (1.0 - kr) * pr
    b = yf + 2.0 * (1.0 - kb) * pb
    g = (yf - kr * r - kb * b) / kg
    rgb = torch.stack((r, g, b), dim=-1).clamp_(0.0, 1.0)  # N×H×W×3
    return rgb.permute(0, 3, 1, 2)


def rgb_to_i420(rgb: torch.Tensor, m: YUVMatrix) -> torch.Tensor:
    """float ``N×3×H×W`` RGB in [0, 1] → uint8 ``N×(3H/2)×W`` I420 (chroma averaged over 2×2)."""
    n, _, h, w = rgb.shape
    if h % 2 or w % 2:
        raise ValueError(f"4:2:0 needs even width and height, got {w}x{h}")
    x = rgb.float().clamp(0.0, 1.0)
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    kr, kb = m.kr, m.kb
    yf = kr * r + (1.0 - kr - kb) * g + kb * b
    pb = (b - yf) / (2.0 * (1.0 - kb))
    pr = (r - yf) / (2.0 * (1.0 - kr))
    chroma = F.avg_pool2d(torch.stack((pb, pr), dim=1), 2)  # N×2×H/2×W/2
    y8 = _to_u8(yf * m.y_scale + m.y_offset)
    c8 = _to_u8(chroma * m.c_scale + 128.0)
    flat = torch.cat((y8.reshape(n, -1), c8[:, 0].reshape(n, -1), c8[:, 1].reshape(n, -1)), dim=1)
    return flat.view(n, h * 3 // 2, w)


def rgb_to_yuv_planes(rgb: np.ndarray, m: YUVMatrix, chroma_shape: tuple[int, int],
                      bits: int = 8) -> tuple[np.ndarray, ...]:
    """``H×W×3`` RGB (uint8, or uint16 with white at 65280 as the reader gives it) → Y (H×W), U and V
    (``chroma_shape``, a whole fraction of H×W: the format's chroma plane) of ``bits`` bits (uint8 at 8,
    else uint16), chroma the mean of each block, exactly rounded. The writer's way to full range:
    swscale's RGB → full-range YUV puts chroma half a level low (U −0.45 on a real picture, read back
    as R −0.6, G +0.6, B −0.7; 10-bit a grey's chroma at 511, not 512), where its limited range is exact.
    OpenCV's matrix transform and area resize keep it near swscale's speed (numpy took 15 ms a 640×360
    frame)."""
    white = 65280.0 if rgb.dtype == np.uint16 else 255.0
    step = ((1 << bits) - 1) / 255.0 if m.full_range else float(1 << (bits - 8))  # codes a level: BT.2100's
    luma = np.array([m.kr, 1.0 - m.kr - m.kb, m.kb])
    rows = np.stack((luma * m.y_scale, (np.array([0.0, 0.0, 1.0]) - luma) / (2.0 * (1.0 - m.kb)) * m.c_scale,
                     (np.array([1.0, 0.0, 0.0]) - luma) / (2.0 * (1.0 - m.kr)) * m.c_scale)) * (step / white)
    offsets = np.array([[m.y_offset * step], [128.0 * (1 << (bits - 8))], [128.0 * (1 << (bits - 8))]])
    y, u, v = cv2.split(cv2.transform(rgb.astype(np.float32), np.hstack((rows, offsets)).astype(np.float32)))
    if u.shape != chroma_shape:  # the mean of each block: OpenCV's area resize by a whole factor
        u, v = (cv2.resize(c, chroma_shape[::-1], interpolation=cv2.INTER_AREA) for c in (u, v))
    if bits == 8:
        return tuple(cv2.convertScaleAbs(plane) for plane in (y, u, v))  # rounded to nearest, saturated: all >= 0
    return tuple(np.clip(np.rint(plane), 0, (1 << bits) - 1).astype(np.uint16) for plane in (y, u, v))


def _to_u8(x: torch.Tensor) -> torch.Tensor:
    return x.round_().clamp_(0.0, 255.0).to(torch.uint8)


def _split_i420(packed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if packed.dim() == 2:
        packed = packed.unsqueeze(0)
    n, rows, w = packed.shape
    h = rows * 2 // 3
    if rows % 3 or h % 2 or w % 2:
        raise ValueError(f"not an I420 frame: {rows}x{w} (want (3H/2)xW with H, W even)")
    flat = packed.reshape(n, -1)
    ys, cs = h * w, (h // 2) * (w // 2)
    y = flat[:, :ys].view(n, h, w)
    u = flat[:, ys:ys + cs].view(n, h // 2, w // 2)
    v = flat[:, ys + cs:ys + 2 * cs].view(n, h // 2, w // 2)
    return y, u, v
