"""Overlapping tiles: full coverage, weights that sum to one, and no seams."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from videodeblur.cli._common import MIN_TILE
from videodeblur.errors import ConfigError
from videodeblur.pipeline import Engine, EngineOptions
from videodeblur.pipeline.tiling import blend_window, run_tiled, tile_starts

from conftest import clip_frame, psnr


@pytest.mark.parametrize("length, tile, overlap", [(100, 40, 8), (64, 64, 8), (65, 32, 16), (200, 96, 32)])
def test_tiles_cover_everything_with_at_least_the_overlap(length: int, tile: int, overlap: int) -> None:
    starts = tile_starts(length, tile, overlap)
    assert starts[0] == 0 and starts[-1] + min(tile, length) == length
    for a, b in zip(starts, starts[1:]):
        assert a + tile - b >= overlap


def test_blend_window_ramps_only_where_a_neighbour_is() -> None:
    w = blend_window(12, 8, ramp_start=False, ramp_end=True)
    assert w[:4].tolist() == [1.0] * 4
    assert torch.allclose(w[4:], torch.tensor([11, 9, 7, 5, 3, 1, 0, 0]) / 12)  # ramp, then a zero margin
    both = blend_window(20, 8, ramp_start=True, ramp_end=True)
    assert torch.equal(both, both.flip(0))
    assert blend_window(12, 8, ramp_start=False, ramp_end=False).tolist() == [1.0] * 12


def test_identity_through_tiles_is_exact() -> None:
    x = torch.rand(2, 3, 70, 101)
    assert torch.allclose(run_tiled(lambda t: t, x, tile=32, overlap=8), x, atol=1e-6)


def test_a_local_network_gives_the_untiled_result() -> None:
    """A network whose receptive field radius (3 px) is inside the zero-weight margin (16 / 4 px)
    cannot tell it was tiled."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                        nn.Conv2d(8, 3, 3, padding=1)).eval()
    x = torch.rand(1, 3, 90, 130)
    with torch.no_grad():
        full = net(x)
        tiled = run_tiled(net, x, tile=48, overlap=16)
    assert torch.allclose(tiled, full, atol=1e-5)


def test_engine_tiles_lprn_without_seams() -> None:
    """LPRN's channel attention pools over the whole input, so tiles differ slightly from the full
    frame; the blend must leave no step at tile borders."""
    frame = clip_frame(2, 160, 96)[None]
    whole = Engine.from_name("lprn-fast", EngineOptions(device="cpu")).process(frame)[0]
    tiled = Engine.from_name("lprn-fast", EngineOptions(device="cpu", tile=80, tile_overlap=32)).process(frame)[0]
    assert tiled.shape == whole.shape
    assert psnr(tiled, whole) > 40
    # No seam: no column-to-column step in the difference to the untiled result reaches one code
    # value on average (a hard tile edge shows as a step of several).
    diff = tiled.astype(np.float64) - whole.astype(np.float64)
    col_steps = np.abs(np.diff(diff, axis=1)).mean(axis=(0, 2))
    row_steps = np.abs(np.diff(diff, axis=0)).mean(axis=(1, 2))
    assert col_steps.max() < 1.0 and row_steps.max() < 1.0


def test_the_cli_tile_floor_is_the_engine_rule(run_cli, tmp_path: Path) -> None:
    """Every command refuses a tile the engine would refuse, before torch loads (exit 2, usage)."""
    EngineOptions(tile=MIN_TILE)
    with pytest.raises(ConfigError):
        EngineOptions(tile=MIN_TILE - 1)
    for command in (("image", tmp_path / "a.png", "-o", tmp_path / "b.png"),
                    ("video", tmp_path / "a.mp4", "-o", tmp_path / "b.mp4")):
        result = run_cli(*command, "--tile", str(MIN_TILE - 1))
        assert result.exit_code == 2 and f"x>={MIN_TILE}" in result.stderr
