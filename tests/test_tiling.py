"""Overlapping tiles: full coverage, weights that sum to one, and no seams."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from videodeblur.errors import ConfigError
from videodeblur.model import load_model
from videodeblur.option_values import MIN_TILE
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


class _CellNetwork(nn.Module):
    """Pixel-unshuffle by ``factor``, a 1×1 convolution, shuffle back: each output pixel depends only on
    its own ``factor``×``factor`` cell, so the result is exact only where windows start on the cell grid.
    Pads to the factor and crops back, as LPRN does."""

    def __init__(self, factor: int) -> None:
        super().__init__()
        self.factor = factor
        self.mix = nn.Conv2d(3 * factor ** 2, 3 * factor ** 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s, (h, w) = self.factor, x.shape[-2:]
        x = nn.functional.pad(x, (0, (-w) % s, 0, (-h) % s), mode="replicate")
        return nn.functional.pixel_shuffle(self.mix(nn.functional.pixel_unshuffle(x, s)), s)[..., :h, :w]


@pytest.mark.parametrize("factor", [2, 4])
@pytest.mark.parametrize("tile, overlap, size", [(33, 9, (70, 101)), (48, 16, (90, 130)), (37, 8, (1, 150)),
                                                  (40, 8, (41, 203))])
def test_windows_start_on_the_unshuffle_grid(factor: int, tile: int, overlap: int, size: tuple[int, int]) -> None:
    """An odd frame, a tile and an overlap off the grid: the windows still group the frame's cells, so a
    network that works cell by cell gives the untiled result exactly (off the grid, a window regrouped
    the pixels: lprn-rt and lprn-fast up to 58 levels off the whole frame with strong weights)."""
    torch.manual_seed(factor)
    net = _CellNetwork(factor).eval()
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        tiled = run_tiled(net, x, tile=tile, overlap=overlap, align=factor)
        assert torch.allclose(tiled, net(x), atol=1e-5)


def test_engine_tiles_of_any_size_match_the_whole_frame_as_closely_as_aligned_ones() -> None:
    """lprn-rt (×2) on an odd frame in 81 px tiles: 3-4 levels off the whole frame when the windows
    started off the unshuffle grid, 1 on it (the same as 80 px tiles on an even frame)."""
    frame = clip_frame(3, 203, 157)[None]
    model = load_model("lprn-rt")
    whole = Engine(model, EngineOptions(device="cpu", auto_tile=False)).process(frame).astype(int)
    for tile in (81, 101):
        tiled = Engine(model, EngineOptions(device="cpu", tile=tile)).process(frame)
        assert tiled.shape == whole.shape and np.abs(tiled - whole).max() <= 1, tile


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


def test_the_overlap_follows_how_far_the_model_sees() -> None:
    """A ×4-unshuffled network sees four times as far: 32 px of overlap left tile borders up to 21
    levels off the whole frame on a photo (64 px: 9) with the weights shipped until the thirteenth
    session. The default overlap grows with the unshuffle, within what a small tile leaves room for.
    (The weights shipped since change less: on this frame 16 px leave 2 levels, 32 and 64 px 1.)"""
    frame = np.stack([clip_frame(3, 320, 200)])
    fast = Engine.from_name("lprn-fast", EngineOptions(device="cpu", tile=160))
    assert fast.tile_overlap() == 64 and fast.tile_overlap(160) == 64 and fast.tile_overlap(80) == 32
    assert Engine.from_name("lprn", EngineOptions(device="cpu")).tile_overlap() == 32
    whole = Engine.from_name("lprn-fast", EngineOptions(device="cpu", auto_tile=False)).process(frame).astype(int)
    narrow = Engine.from_name("lprn-fast", EngineOptions(device="cpu", tile=160, tile_overlap=16)).process(frame)
    assert np.abs(fast.process(frame) - whole).max() <= 1 < np.abs(narrow - whole).max()


def test_the_cli_tile_floor_is_the_engine_rule(run_cli, tmp_path: Path) -> None:
    """Every command refuses a tile the engine would refuse, before torch loads (exit 2, usage): one rule,
    option_values.smallest_tile (the command had its own literal 80)."""
    assert EngineOptions().smallest_tile == MIN_TILE
    EngineOptions(tile=MIN_TILE)
    with pytest.raises(ConfigError):
        EngineOptions(tile=MIN_TILE - 1)
    for command in (("image", tmp_path / "a.png", "-o", tmp_path / "b.png"),
                    ("video", tmp_path / "a.mp4", "-o", tmp_path / "b.mp4")):
        result = run_cli(*command, "--tile", str(MIN_TILE - 1))
        assert result.exit_code == 2 and f"x>={MIN_TILE}" in result.stderr


def test_plan_tile_keeps_whole_frames_that_fit_and_tiles_those_that_do_not() -> None:
    from videodeblur.pipeline.memory import FRAME_BYTES_PER_PIXEL, plan_tile

    per_pixel = 1000.0
    whole = 2 * 1080 * 1920 * per_pixel
    assert plan_tile(1080, 1920, 2, per_pixel, whole, min_tile=80, max_batch=2) is None
    tile = plan_tile(1080, 1920, 2, per_pixel, whole / 4, min_tile=80, max_batch=2)
    assert tile is not None and tile % 16 == 0 and 80 <= tile < 1080
    accumulators = 2 * 1080 * 1920 * FRAME_BYTES_PER_PIXEL
    assert accumulators + 2 * tile ** 2 * per_pixel <= whole / 4  # the windows fit beside the accumulators
    assert accumulators + 2 * (tile + 16) ** 2 * per_pixel > whole / 4  # and it is the largest that does
    assert plan_tile(1080, 1920, 2, per_pixel, 1.0, min_tile=80, max_batch=2) == 80  # never below the floor


def test_the_memory_estimate_follows_the_model_shape() -> None:
    """Fitted to peak RSS on the CPU at 1080p (lprn 1.37-1.42 kB/px, lprn-rt 0.45-0.47, lprn-fast
    0.10-0.12); the estimate stays above each measurement, and halves the features' share in fp16."""
    from videodeblur.model import load_model
    from videodeblur.pipeline.memory import activation_bytes_per_pixel

    measured = {"lprn": 1418, "lprn-rt": 466, "lprn-fast": 116}
    for name, bytes_per_pixel in measured.items():
        estimate = activation_bytes_per_pixel(load_model(name).network.config)
        assert bytes_per_pixel < estimate < 1.5 * bytes_per_pixel, (name, estimate)
    config = load_model("lprn").network.config
    assert activation_bytes_per_pixel(config, 2) < 0.6 * activation_bytes_per_pixel(config, 4)


def test_frames_too_big_for_the_budget_are_tiled_as_with_an_explicit_tile() -> None:
    frames = np.stack([clip_frame(i, 320, 192) for i in range(2)])
    budgeted = Engine.from_name("lprn-fast", EngineOptions(device="cpu", memory_budget=8_000_000))
    out = budgeted.process(frames)
    assert budgeted.auto_tile_note is not None and "run in tiles of" in budgeted.auto_tile_note
    (tile,) = set(budgeted._auto_tiles.values())
    assert tile is not None and tile < 320
    explicit = Engine.from_name("lprn-fast", EngineOptions(device="cpu", tile=tile)).process(frames)
    assert np.array_equal(out, explicit)
    roomy = Engine.from_name("lprn-fast", EngineOptions(device="cpu"))
    assert psnr(roomy.process(frames), out) > 40 and roomy.auto_tile_note is None  # seamless, and whole when it fits
    with pytest.raises(ConfigError):
        EngineOptions(memory_budget=0)


def test_a_run_says_when_it_tiled_for_memory(make_clip, tmp_path: Path) -> None:
    from videodeblur.pipeline import deblur_file

    src = make_clip("a.mp4", width=320, height=192, frames=3)
    engine = Engine.from_name("lprn-fast", EngineOptions(device="cpu", memory_budget=8_000_000))
    stats = deblur_file(src, tmp_path / "out.mp4", engine).to_dict()
    assert stats["frames"] == 3
    assert [w for w in stats["warnings"] if "more than the memory budget" in w and "run in tiles of" in w]


def test_a_containers_memory_limit_is_the_room_there_is(tmp_path: Path) -> None:
    """Under docker --memory or a pod's limit, MemAvailable is the host's: the memory estimate saw room
    the kernel then refused. cgroup v2 (the process's own group) and v1 (the container's memory mount)."""
    from videodeblur.pipeline.memory import cgroup_room

    own = tmp_path / "cgroup"
    own.write_text("0::/pod/app\n")
    v2 = tmp_path / "v2" / "pod" / "app"
    v2.mkdir(parents=True)
    (v2 / "memory.max").write_text("4294967296\n")
    (v2 / "memory.current").write_text("1073741824\n")
    (v2 / "memory.stat").write_text("anon 900000000\ninactive_file 268435456\n")
    assert cgroup_room(tmp_path / "v2", own) == 4294967296 - 1073741824 + 268435456
    (v2 / "memory.max").write_text("max\n")
    assert cgroup_room(tmp_path / "v2", own) is None
    v1 = tmp_path / "v1" / "memory"
    v1.mkdir(parents=True)
    (v1 / "memory.limit_in_bytes").write_text("2147483648\n")
    (v1 / "memory.usage_in_bytes").write_text("1073741824\n")
    own.write_text("4:memory:/docker/abc\n")
    assert cgroup_room(tmp_path / "v1", own) == 1073741824
    (v1 / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    assert cgroup_room(tmp_path / "v1", own) is None
