"""Colour tags of a stream and YUV 4:2:0 <-> RGB conversion in torch (for converting on the GPU).

Planar 4:2:0 frames travel in PyAV's packed ``yuv420p`` ndarray layout, "I420": one uint8 array of
``(3·H/2)×W`` holding the Y plane (H×W), then U (H/2×W/2), then V, each row-major. Moving that to
the device instead of RGB halves the bytes over PCIe and takes swscale off the CPU.

Matrix and range follow the stream's tags (``AVColorSpace`` / ``AVColorRange`` values as PyAV
reports them); an untagged stream is read as BT.601 limited range, which is what swscale assumes,
so both paths agree on untagged input.
"""
from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

__all__ = ["ColourTags", "YUVMatrix", "yuv_matrix", "i420_to_rgb", "rgb_to_i420", "sws_colorspace",
           "AVCOL_RANGE_UNSPECIFIED", "AVCOL_RANGE_MPEG", "AVCOL_RANGE_JPEG"]

AVCOL_RANGE_UNSPECIFIED, AVCOL_RANGE_MPEG, AVCOL_RANGE_JPEG = 0, 1, 2
_AVCOL_SPC_BT709 = 1
_AVCOL_SPC_BT601 = (5, 6)  # BT470BG, SMPTE170M
_AVCOL_SPC_SMPTE240M = 7
_AVCOL_SPC_BT2020 = (9, 10)

# (Kr, Kb) luma coefficients per matrix.
_LUMA = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722), "smpte240m": (0.212, 0.087),
         "bt2020": (0.2627, 0.0593)}


@dataclasses.dataclass(frozen=True)
class ColourTags:
    """A stream's colour description, as FFmpeg enum values (2 = unspecified for all but range, 0)."""

    colorspace: int = 2
    color_range: int = AVCOL_RANGE_UNSPECIFIED
    color_primaries: int = 2
    color_trc: int = 2

    @property
    def full_range(self) -> bool:
        return self.color_range == AVCOL_RANGE_JPEG

    @property
    def matrix(self) -> str:
        """``bt601`` | ``bt709`` | ``smpte240m`` | ``bt2020``; untagged streams are BT.601 (as swscale)."""
        if self.colorspace == _AVCOL_SPC_BT709:
            return "bt709"
        if self.colorspace == _AVCOL_SPC_SMPTE240M:
            return "smpte240m"
        if self.colorspace in _AVCOL_SPC_BT2020:
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


def i420_to_rgb(packed: torch.Tensor, m: YUVMatrix, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 ``N×(3H/2)×W`` I420 → float ``N×3×H×W`` RGB in [0, 1] (channels_last strides).

    Chroma is upsampled by pixel repetition, as swscale's default yuv420p → rgb24 path does (measured
    46 dB against it; bilinear gave 32 dB), so the device path matches the CPU path.
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
