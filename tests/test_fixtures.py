"""The shared fixtures write what they promise, so other tests can trust them."""
from __future__ import annotations

import av
import cv2
import numpy as np
import pytest

from conftest import clip_frame, clip_pts_seconds, psnr


@pytest.mark.parametrize("kw,pix_fmt", [
    (dict(width=64, height=48, frames=6), "yuv420p"),
    (dict(width=65, height=49, frames=5), "yuv444p"),  # odd size: written as 4:4:4
    (dict(width=64, height=48, frames=7, fps=30, vfr=True, rotation=90), "yuv420p"),
])
def test_make_clip_frames_timing_size_and_rotation(make_clip, kw, pix_fmt):
    path = make_clip("clip.mp4", **kw)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        assert (stream.codec_context.name, stream.width, stream.height) == ("h264", kw["width"], kw["height"])
        assert stream.codec_context.pix_fmt == pix_fmt
        assert len(container.streams.audio) == 0
    assert len(frames) == kw["frames"]
    want = clip_pts_seconds(kw["frames"], kw.get("fps", 25), kw.get("vfr", False))
    assert [float(f.pts * f.time_base) for f in frames] == pytest.approx(want, abs=1e-6)
    assert frames[0].rotation == kw.get("rotation", 0)
    last = frames[-1].to_ndarray(format="rgb24")
    assert psnr(last, clip_frame(kw["frames"] - 1, kw["width"], kw["height"])) > 24  # the promised picture
    assert not np.array_equal(frames[0].to_ndarray(format="rgb24"), last)  # and it moves


def test_make_clip_audio_covers_the_video(make_clip):
    path = make_clip("a.mp4", width=64, height=48, frames=10, audio=True)
    with av.open(str(path)) as container:
        audio = container.streams.audio[0]
        assert (audio.codec_context.name, audio.sample_rate, audio.channels) == ("aac", 48000, 2)
        packets = [p for p in container.demux(audio) if p.size]
    seconds = sum(float(p.duration * p.time_base) for p in packets)
    assert 10 / 25 <= seconds < 10 / 25 + 0.05  # whole AAC frames, at most one past the end


@pytest.mark.parametrize("mode,shape", [("rgb", (21, 33, 3)), ("gray", (21, 33)), ("rgba", (21, 33, 4))])
def test_make_image_modes(make_image, mode, shape):
    path = make_image("i.png", width=33, height=21, mode=mode)
    assert cv2.imread(str(path), cv2.IMREAD_UNCHANGED).shape == shape


def test_psnr():
    a = np.zeros((4, 4), np.uint8)
    assert psnr(a, a) == float("inf")
    assert psnr(a, a + 1) == pytest.approx(20 * np.log10(255))
