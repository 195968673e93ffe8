"""Defects found by the s26 audits that fit no other test file's subject."""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from _clips_video import decode
from conftest import psnr

CPU = ("--model", "lprn-fast", "--device", "cpu")


@pytest.mark.parametrize("size, output, extra", [
    ((160, 96), "out.mjpeg", ()),
    ((65, 49), "odd.mjpeg", ()),  # an odd size: 4:4:4
    ((160, 96), "out.avi", ("--encoder", "mjpeg")),
])
def test_motion_jpeg_output_is_written_full_range_in_the_colours_of_a_lossless_one(
        size: tuple[int, int], output: str, extra: tuple[str, ...], run_cli, make_clip, tmp_path: Path) -> None:
    """`video in.mp4 -o out.mjpeg` never worked: FFmpeg's Motion JPEG encoder refuses limited-range YUV
    ("cannot open encoder mjpeg for 64x48 yuv420p"), at every size, and the libx264 it suggested does
    not go in .mjpeg. Written as JPEG's full-range BT.601 it opens; its frames read back in the colours
    of a lossless (FFV1) output of the same run, at a quality near x264's crf 18 in every frame (its
    default 200 kb/s lost more with every frame: 41 dB at the first, 30 at the sixth)."""
    width, height = size
    src = make_clip("in.mp4", width=width, height=height, frames=6, audio=True)
    lossless = run_cli("video", src, "-o", tmp_path / "ref.mkv", *CPU, "--encoder", "ffv1")
    assert lossless.exit_code == 0, lossless.stderr
    result = run_cli("video", src, "-o", tmp_path / output, *CPU, *extra)
    assert result.exit_code == 0, result.stderr
    assert "no constant-quality setting" not in result.stderr  # --crf is applied, as its quantizer
    ref, out = decode(tmp_path / "ref.mkv"), decode(tmp_path / output)
    assert (out.width, out.height, len(out.frames)) == (width, height, 6)
    with av.open(str(tmp_path / output)) as container:
        assert container.streams.video[0].codec_context.name == "mjpeg"
    for a, b in zip(ref.frames, out.frames):
        bias = (b.astype(np.float64) - a).mean(axis=(0, 1))
        assert np.abs(bias).max() < 1.5, bias  # no range or matrix shift (limited read as full: ~10 levels)
        assert psnr(a, b) > 37


def test_motion_jpeg_is_known_to_fit_the_containers_that_hold_it() -> None:
    """The probe of what a container holds opened Motion JPEG at limited range, which it refuses: it
    "fit" no container, even .mjpeg, so an error could name none for --encoder mjpeg."""
    from videodeblur.video.encoders import containers_for, takes

    assert takes("mjpeg", "mjpeg") and takes("avi", "mjpeg") and not takes("mjpeg", "libx264")
    assert containers_for("mjpeg") == (".mp4", ".mkv", ".mov")
