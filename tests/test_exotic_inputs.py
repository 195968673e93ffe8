"""Unusual video inputs a demanding user feeds the tool: what is read from them and what is said."""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from videodeblur.video.reader import probe


def _vp9_with_alpha(path: Path, frames: int = 2, size: tuple[int, int] = (64, 48)) -> Path:
    """A WebM whose VP9 carries alpha (yuva420p through libvpx-vp9), as editors export overlays."""
    width, height = size
    with av.open(str(path), "w") as c:
        s = c.add_stream("libvpx-vp9", rate=25)
        s.width, s.height, s.pix_fmt = width, height, "yuva420p"
        ramp = np.tile(np.linspace(0, 255, width).astype(np.uint8), (height, 1))
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.dstack([ramp, ramp, ramp, ramp[:, ::-1]]), format="rgba")
            frame.pts = i
            for packet in s.encode(frame):
                c.mux(packet)
        for packet in s.encode(None):
            c.mux(packet)
    return path


def test_vp9_alpha_in_webm_is_seen(tmp_path: Path) -> None:
    """FFmpeg's own VP9 decoder skips the alpha picture (the frames come out yuv420p): only the track's
    alpha_mode tells it, and without reading it the transparency was lost without a word."""
    info = probe(_vp9_with_alpha(tmp_path / "overlay.webm"))
    assert info.pix_fmt == "yuv420p" and info.has_alpha
