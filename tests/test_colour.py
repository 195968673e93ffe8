"""RGB <-> I420 in torch against known code values and against swscale."""
from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from videodeblur.video.colour import (ColourTags, RgbConverter, i420_to_rgb, may_wrap, rgb_to_i420, rgb_to_yuv_planes,
                                      yuv_matrix)

from conftest import clip_frame, psnr


def _rgb_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0


def _to_u8(x: torch.Tensor) -> np.ndarray:
    return (x[0].permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).numpy()


@pytest.mark.parametrize("full_range, white_y, black_y", [(False, 235, 16), (True, 255, 0)])
@pytest.mark.parametrize("matrix", ["bt601", "bt709"])
def test_code_values_of_black_white_grey(matrix: str, full_range: bool, white_y: int, black_y: int) -> None:
    m = yuv_matrix(matrix=matrix, full_range=full_range)
    frames = torch.stack([torch.full((3, 2, 2), v) for v in (0.0, 1.0)])
    packed = rgb_to_i420(frames, m)
    assert packed.shape == (2, 3, 2)
    assert packed[0, :2].unique().tolist() == [black_y]
    assert packed[1, :2].unique().tolist() == [white_y]
    assert packed[:, 2].unique().tolist() == [128]  # neutral chroma


@pytest.mark.parametrize("tags", [ColourTags(), ColourTags(colorspace=1, color_range=1),
                                  ColourTags(colorspace=1, color_range=2), ColourTags(colorspace=6, color_range=2)])
def test_round_trip_is_within_chroma_subsampling_loss(tags: ColourTags) -> None:
    rgb = clip_frame(3, 96, 64)
    m = yuv_matrix(tags)
    back = _to_u8(i420_to_rgb(rgb_to_i420(_rgb_tensor(rgb), m), m))
    assert back.shape == rgb.shape
    assert psnr(back, rgb) > 26  # 4:2:0 loses the fine blue texture (conftest: ~26 dB via FFmpeg too)
    smooth = np.broadcast_to(np.array([90, 140, 200], np.uint8), (64, 96, 3)).copy()
    assert np.abs(_to_u8(i420_to_rgb(rgb_to_i420(_rgb_tensor(smooth), m), m)).astype(int) - smooth).max() <= 1


@pytest.mark.parametrize("colorspace, color_range", [(2, 0), (1, 1), (5, 2)])
def test_matches_swscale_both_ways(colorspace: int, color_range: int) -> None:
    """Our device conversion agrees with FFmpeg's on the same planes, for each matrix and range."""
    tags = ColourTags(colorspace=colorspace, color_range=color_range)
    m = yuv_matrix(tags)
    rgb = clip_frame(5, 96, 64)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    names = {2: "ITU601", 1: "ITU709", 5: "ITU601"}
    yuv = frame.reformat(format="yuv420p", dst_colorspace=names[colorspace], dst_color_range=color_range or None)
    planes = yuv.to_ndarray()
    ours_planes = rgb_to_i420(_rgb_tensor(rgb), m)[0].numpy()
    y_rows = 64
    assert np.abs(ours_planes[:y_rows].astype(int) - planes[:y_rows].astype(int)).max() <= 1  # luma
    assert np.abs(ours_planes[y_rows:].astype(int) - planes[y_rows:].astype(int)).mean() < 1.5  # chroma filters differ
    yuv.colorspace, yuv.color_range = colorspace, color_range
    theirs = yuv.to_ndarray(format="rgb24")
    ours = _to_u8(i420_to_rgb(torch.from_numpy(planes)[None], m))
    assert psnr(ours, theirs) > 40


def test_rejects_odd_sizes() -> None:
    with pytest.raises(ValueError, match="even"):
        rgb_to_i420(torch.zeros(1, 3, 5, 4), yuv_matrix())
    with pytest.raises(ValueError, match="I420"):
        i420_to_rgb(torch.zeros(1, 7, 4, dtype=torch.uint8), yuv_matrix())


def test_writer_makes_4_2_0_chroma_as_the_device_path_does(tmp_path) -> None:
    """The CPU writer's swscale conversion averages each 2×2 block with exact rounding, as
    ``rgb_to_i420`` does on the device: the two paths write the same file (swscale's default
    filtered chroma across blocks, 6 levels off on fine colour detail, and biased it)."""
    from videodeblur.video import FrameWriter

    rgb = np.random.default_rng(0).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    tags = ColourTags(colorspace=1, color_range=1, color_primaries=1, color_trc=1)
    with FrameWriter(tmp_path / "o.mkv", width=48, height=32, time_base=Fraction(1, 25), fps=25, encoder="ffv1", pix_fmt="yuv420p",
                     colour=tags) as writer:
        writer.write(rgb, pts=0)
    with av.open(str(tmp_path / "o.mkv")) as c:
        written = next(c.decode(video=0)).to_ndarray().astype(int)
    wanted = rgb_to_i420(_rgb_tensor(rgb), yuv_matrix(tags))[0].numpy().astype(int)
    assert np.abs(written - wanted).max() <= 1
    assert abs((written - wanted)[32:].mean()) < 0.05  # chroma: no bias


@pytest.mark.parametrize(("pix_fmt", "color_range", "width", "height"), [
    ("yuv420p", 1, 65, 49), ("yuv420p", 2, 65, 49), ("yuv420p", 1, 33, 16), ("yuv422p", 2, 33, 17)])
def test_an_odd_sized_output_keeps_each_colour_in_its_place(tmp_path, pix_fmt: str, color_range: int, width: int,
                                                           height: int) -> None:
    """An odd size at 4:2:0 or 4:2:2 (an encoder that writes it so: FFV1, MPEG-4, VP8, VP9, SVT-AV1): swscale
    spread its chroma over the picture at its own scale, so colour stripes 8 pixels wide came back 6.6
    levels off on average at 65x49, up to 113 at their edges. Read back (exactly: the reader's own test)
    they are the colours written, to within rounding."""
    from videodeblur.video import FrameReader, FrameWriter

    colours = np.array([(200, 40, 40), (40, 200, 40), (40, 40, 200), (128, 128, 128), (220, 200, 30)], np.uint8)
    stripes = np.ascontiguousarray(np.broadcast_to(colours[(np.arange(width) // 8) % 5], (height, width, 3)))
    tags = ColourTags(colorspace=1, color_primaries=1, color_trc=1, color_range=color_range)
    with FrameWriter(tmp_path / "out.mkv", width=width, height=height, time_base=Fraction(1, 25), fps=Fraction(25),
                     encoder="ffv1", pix_fmt=pix_fmt, colour=tags) as writer:
        writer.write(stripes, pts=0)
    with FrameReader(tmp_path / "out.mkv") as reader:
        assert reader.info.pix_fmt == pix_fmt
        back = next(iter(reader)).image
    error = np.abs(back.astype(np.int64) - stripes)
    assert error.max() <= 1 and error.mean() < 0.5, (error.mean(), error.max())


@pytest.mark.parametrize("pix_fmt, width, height", [("yuv420p", 96, 64), ("yuv422p", 96, 64), ("yuv444p", 95, 63)])
def test_full_range_output_keeps_colour(tmp_path, pix_fmt: str, width: int, height: int) -> None:
    """swscale's RGB -> full-range YUV put chroma half a level low: an MJPEG (yuvj) source's deblurred
    video came back R -0.6, G +0.6, B -0.7 levels off on average, where limited range was exact."""
    from videodeblur.video import FrameReader, FrameWriter

    import cv2

    rng = np.random.default_rng(3)
    base = cv2.GaussianBlur(clip_frame(7, width, height), (0, 0), 2.0).astype(np.float32)  # colour edges soft, as in video
    picture = np.clip(base * 0.7 + rng.normal(0, 4, base.shape) + 30, 0, 255).astype(np.uint8)
    full = ColourTags(colorspace=1, color_primaries=1, color_trc=1, color_range=2)
    with FrameWriter(tmp_path / "out.mkv", width=width, height=height, time_base=Fraction(1, 25), fps=Fraction(25),
                     encoder="ffv1", pix_fmt=pix_fmt, colour=full) as writer:
        writer.write(picture, pts=0)
    with FrameReader(tmp_path / "out.mkv") as reader:
        back = next(iter(reader)).image
        assert reader.info.colour.color_range == 2
    error = back.astype(np.float64) - picture.astype(np.float64)
    assert np.abs(error.mean(axis=(0, 1))).max() < 0.15, error.mean(axis=(0, 1))  # was 0.6-0.7 per channel
    assert np.abs(error).mean() < (0.6 if pix_fmt == "yuv444p" else 3.0)  # rounding only; halved chroma on noise


@pytest.mark.parametrize("full_range", [False, True])
@pytest.mark.parametrize("matrix, colorspace", [("bt601", 5), ("bt709", 1), ("smpte240m", 7), ("bt2020", 9)])
def test_device_conversions_run_on_cpu_tensors_and_equal_the_cpu_path(matrix: str, colorspace: int,
                                                                     full_range: bool) -> None:
    """The GPU path's conversions are plain torch, so their maths is checked here on CPU tensors against
    what the CPU path does with the same frame: ``rgb_to_i420`` against the writer's
    ``rgb_to_yuv_planes``, and ``i420_to_rgb`` against the reader's swscale ``RgbConverter``. Every
    matrix and range agrees to a level (exact ties rounded apart), almost every sample exactly."""
    m = yuv_matrix(matrix=matrix, full_range=full_range)
    rgb = clip_frame(3, 96, 64)
    noisy = np.clip(rgb.astype(int) + np.random.default_rng(0).integers(-40, 41, rgb.shape), 0, 255).astype(np.uint8)
    for picture in (rgb, noisy):
        ours = rgb_to_i420(_rgb_tensor(picture), m)[0].numpy()
        theirs = np.concatenate([plane.reshape(-1) for plane in rgb_to_yuv_planes(picture, m, (32, 48))]).reshape(96, 96)
        assert np.abs(ours.astype(int) - theirs).max() <= 1
        assert (ours != theirs).mean() < 0.01
        frame = av.VideoFrame.from_ndarray(theirs, format="yuv420p")
        frame.colorspace, frame.color_range = colorspace, 2 if full_range else 1
        cpu = RgbConverter().to_rgb(frame)
        device = _to_u8(i420_to_rgb(torch.from_numpy(theirs)[None], m))
        assert np.abs(device.astype(int) - cpu).max() <= 1
        assert (device != cpu).mean() < 0.01


def _flat_frame(pix_fmt: str, y: int, u: int, *, color_range: int) -> av.VideoFrame:
    frame = av.VideoFrame(64, 48, pix_fmt)
    dtype = np.dtype(np.uint16 if "10" in pix_fmt else np.uint8)
    for plane, sample in zip(frame.planes, (y, u, 512 if dtype == np.uint16 else 128)):
        rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
        rows[:, :plane.width * dtype.itemsize] = np.full((plane.height, plane.width), sample, dtype).view(np.uint8)
    frame.colorspace, frame.color_range = 9, color_range
    return frame


@pytest.mark.parametrize(("pix_fmt", "y", "u", "color_range", "at_risk"), [
    ("yuv420p", 235, 240, 1, False),  # the legal tops, limited range: never (the usual frame costs nothing more)
    ("yuv420p", 255, 255, 2, False),  # full range tops out at 496 levels of blue: never
    ("yuv420p", 255, 231, 1, False),  # the bounds, for a blue of 500 levels (512 wrap) at BT.2020's Kb
    ("yuv420p", 255, 232, 1, True),
    ("yuv420p", 211, 255, 1, False),
    ("yuv420p", 213, 255, 1, True),
    ("yuv420p10le", 940, 960, 1, False),
    ("yuv420p10le", 1020, 1020, 1, True),
    ("yuv420p10le", 1023, 1023, 2, False),
])
def test_a_frame_may_wrap_only_past_the_legal_range(pix_fmt: str, y: int, u: int, color_range: int,
                                                    at_risk: bool) -> None:
    """Which frames the CPU path checks for blue that swscale wrapped to 0 (a second, 16-bit
    conversion): only limited-range ones whose luma and blue chroma both run near their tops."""
    assert may_wrap(_flat_frame(pix_fmt, y, u, color_range=color_range)) is at_risk


@pytest.mark.parametrize("pix_fmt", ["nv12", "nv21", "yuyv422", "uyvy422", "yvyu422"])
@pytest.mark.parametrize(("y", "u", "at_risk"), [(235, 240, False), (255, 231, False), (255, 232, True),
                                                 (213, 255, True)])
def test_interleaved_layouts_are_read_as_their_planar_twins(pix_fmt: str, y: int, u: int, at_risk: bool) -> None:
    """Webcams (yuyv422) and hardware decoders (nv12) give packed and semi-planar frames; they are
    read for the wrap check as planar ones are, not all sent through the 16-bit conversion (which
    about doubled their conversion time). The one sample at risk sits in the last column (odd for
    nv12/nv21; swscale leaves a packed 4:2:2 row's odd last pixel unwritten), the one a row's byte
    count gets wrong; and the blue it would wrap comes out as the planar frame's."""
    packed = pix_fmt.endswith("422")
    width, height = 64 if packed else 65, 48
    planar_fmt = "yuv422p" if packed else "yuv420p"
    planar = av.VideoFrame(width, height, planar_fmt)
    for index, plane in enumerate(planar.planes):
        rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
        rows[:] = (16, 128, 128)[index]
        if index < 2:  # luma and Cb at their value in the last column only
            rows[:, plane.width - 1] = (y, u)[index]
    planar.colorspace, planar.color_range = 9, 1
    interleaved = planar.reformat(format=pix_fmt)
    interleaved.colorspace, interleaved.color_range = 9, 1
    assert may_wrap(planar) is at_risk
    assert may_wrap(interleaved) is at_risk
    assert np.array_equal(RgbConverter().to_rgb(interleaved), RgbConverter().to_rgb(planar))
