"""Overlapping tiles for frames too big to run whole (``--tile N``).

The frame is cut into ``tile``×``tile`` windows that overlap by ``overlap`` pixels; each window's
output is weighted by a ramp across the overlap (zero over its outer quarter, where the network saw
padding, then rising to 1; flat 1 at the frame border), and the weighted sum is divided by the
summed weights. With a network whose receptive field radius is under a quarter of the overlap this
equals the untiled result; for LPRN
(whose channel attention pools globally) it differs slightly per tile, and the ramps hide the seams.

A network that pixel-unshuffles by ``align`` sees the frame as ``align``×``align`` cells from its top
left corner; every window starts on that grid, or its cells would group other pixels than the whole
frame's. Measured with the shipped weights on a 240×160 frame: lprn-rt in 81 px tiles up to 4 levels off
the whole frame (mean 0.48) against 1 (0.07) in 80 px ones; on a 203×157 frame every tile size was
3-4 off, the last window starting off the grid. With weights that change the picture more (random
output convolutions), lprn-rt and lprn-fast were up to 58 levels off, in steps of 28 at tile borders;
on the grid, 8 and 2.5.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

__all__ = ["tile_starts", "blend_window", "run_tiled"]


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets covering ``[0, length)`` with windows of ``tile`` overlapping by at least ``overlap``."""
    if tile >= length:
        return [0]
    step = tile - overlap
    if step <= 0:
        raise ValueError(f"tile ({tile}) must be larger than the overlap ({overlap})")
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)  # last window flush with the end (overlaps more, never less)
    return starts


def blend_window(size: int, overlap: int, *, ramp_start: bool, ramp_end: bool,
                 device: torch.device | str = "cpu") -> torch.Tensor:
    """1-D weights of one window, at each side that meets a neighbour: zero over the outer quarter of
    the overlap (where the network saw the tile's padding, not the picture), then a linear ramp to 1.
    The neighbour's weights are non-zero there, so every pixel is covered. Made on ``device``: a copy
    from pageable host memory to a GPU would make the host wait for every kernel queued before it."""
    w = torch.ones(size, device=device)
    margin = overlap // 4
    span = overlap - margin
    if span > 0:
        ramp = torch.cat([torch.zeros(margin, device=device),
                          (torch.arange(span, dtype=torch.float32, device=device) + 0.5) / span])
        if ramp_start:
            w[:overlap] = ramp
        if ramp_end:
            w[size - overlap:] = ramp.flip(0)
    return w


def run_tiled(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, *, tile: int, overlap: int = 32,
              max_batch: int = 8, align: int = 1) -> torch.Tensor:
    """Apply ``fn`` (N×C×h×w → N×C×h×w) to ``x`` (N×C×H×W) tile by tile and blend.

    Tiles of all frames are batched together, up to ``max_batch`` windows per call. Windows start on
    multiples of ``align`` (the network's unshuffle factor, module docstring): the tile is rounded
    down to one and the overlap up, and a window past the frame's bottom or right edge (to the next
    multiple) repeats its last row or column, as the network pads a whole frame.
    """
    tile = max(align, tile // align * align)
    overlap = -(-overlap // align) * align
    n, c, h, w = x.shape
    grid_h, grid_w = h + (-h) % align, w + (-w) % align
    th, tw = min(tile, grid_h), min(tile, grid_w)
    ov_h, ov_w = min(overlap, th // 2 // align * align), min(overlap, tw // 2 // align * align)
    ys, xs = tile_starts(grid_h, th, ov_h), tile_starts(grid_w, tw, ov_w)
    if len(ys) == 1 and len(xs) == 1:
        return fn(x)
    out = torch.zeros((n, c, h, w), device=x.device, dtype=torch.float32)
    weight = torch.zeros((1, 1, h, w), device=x.device, dtype=torch.float32)
    windows = [(y0, x0) for y0 in ys for x0 in xs]
    for first in range(0, len(windows), max(1, max_batch // n)):
        group = windows[first:first + max(1, max_batch // n)]
        crops = torch.cat([_window(x, y0, x0, th, tw) for y0, x0 in group], dim=0)
        results = fn(crops).float()
        for k, (y0, x0) in enumerate(group):
            wy = blend_window(th, ov_h, ramp_start=y0 > 0, ramp_end=y0 + th < grid_h, device=x.device)
            wx = blend_window(tw, ov_w, ramp_start=x0 > 0, ramp_end=x0 + tw < grid_w, device=x.device)
            wt = (wy[:, None] * wx[None, :])[None, None]
            ih, iw = min(th, h - y0), min(tw, w - x0)  # inside the frame: the last windows reach past it
            out[:, :, y0:y0 + ih, x0:x0 + iw] += (results[k * n:(k + 1) * n] * wt)[..., :ih, :iw]
            weight[:, :, y0:y0 + ih, x0:x0 + iw] += wt[..., :ih, :iw]
    return (out / weight).to(x.dtype)


def _window(x: torch.Tensor, y0: int, x0: int, th: int, tw: int) -> torch.Tensor:
    """The ``th``×``tw`` window of ``x`` at ``(y0, x0)``; where it reaches past the frame, the frame's last
    row and column repeated (a window, not the whole frame, is padded: no copy of the frame is kept)."""
    crop = x[:, :, y0:y0 + th, x0:x0 + tw]
    short_h, short_w = th - crop.shape[-2], tw - crop.shape[-1]
    return F.pad(crop, (0, short_w, 0, short_h), mode="replicate") if short_h or short_w else crop
