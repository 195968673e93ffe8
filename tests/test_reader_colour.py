"""The CPU path's YUV → RGB is the exact matrix math, rounded: decoded frames must not come out darker.

Clips are written losslessly (libx264 at qp 0, FFV1, raw video) from known random planes, so the
decoded samples are those planes and the expected RGB is worked out here in float64: the frame's
own matrix and range, chroma repeated over the pixels it covers (as the device path's
``i420_to_rgb`` does). swscale's default conversion (``to_ndarray(format="rgb24")``) was 0.8 level
dark on average and up to 3 levels off, and every deblurred video came out a level darker.
"""
from __future__ import annotations

import threading
from pathlib import Path

import av
import numpy as np
import pytest

from videodeblur.video import FrameReader, FrameWriter
from videodeblur.video.capture import open_source

from conftest import needs_pyav18

# (Kr, Kb) by AVColorSpace: 1 BT.709, 2 unspecified (read as BT.601), 5/6 BT.601, 7 SMPTE 240M, 9 BT.2020
_KR_KB = {1: (0.2126, 0.0722), 2: (0.299, 0.114), 5: (0.299, 0.114), 6: (0.299, 0.114), 7: (0.212, 0.087),
          9: (0.2627, 0.0593)}
_W, _H = 64, 48


def exact_rgb(y: np.ndarray, u: np.ndarray, v: np.ndarray, *, colorspace: int, full: bool, bits: int = 8) -> np.ndarray:
    """Float RGB in 8-bit levels (0..255, clipped) from Y, U, V planes: chroma repeated up to luma size."""
    kr, kb = _KR_KB[colorspace]
    s, top = float(1 << (bits - 8)), float((1 << bits) - 1)
    y, u, v = (p.astype(np.float64) for p in (y, u, v))
    down, across = -(-y.shape[0] // u.shape[0]), -(-y.shape[1] // u.shape[1])  # an odd size's last block is cut
    u = u.repeat(down, 0).repeat(across, 1)[:y.shape[0], :y.shape[1]]
    v = v.repeat(down, 0).repeat(across, 1)[:y.shape[0], :y.shape[1]]
    if full:
        yf, pb, pr = y / top, (u - 128 * s) / top, (v - 128 * s) / top
    else:
        yf, pb, pr = (y - 16 * s) / (219 * s), (u - 128 * s) / (224 * s), (v - 128 * s) / (224 * s)
    r = yf + 2 * (1 - kr) * pr
    b = yf + 2 * (1 - kb) * pb
    g = (yf - kr * r - kb * b) / (1 - kr - kb)
    return np.clip(np.stack([r, g, b], axis=-1), 0.0, 1.0) * 255.0


def random_planes(pix_fmt: str, *, full: bool, seed: int, neutral: bool = False) -> tuple[np.ndarray, ...]:
    """Y, U, V planes of ``pix_fmt``'s shapes: random over the legal range, or (``neutral``) mid
    greys with mild chroma, whose RGB stays inside 0..255 (so nothing clips on a round trip)."""
    rng = np.random.default_rng(seed)
    bits = 10 if "10" in pix_fmt else 8
    s = 1 << (bits - 8)
    cw = _W // 2 if pix_fmt in ("yuv420p", "yuvj420p", "yuv420p10le", "nv12", "yuv422p") else _W
    ch = _H // 2 if pix_fmt in ("yuv420p", "yuvj420p", "yuv420p10le", "nv12") else _H
    dtype = np.uint16 if bits > 8 else np.uint8
    if neutral:
        y = rng.integers(50 * s, 200 * s + 1, (_H, _W))
        u, v = (rng.integers(113 * s, 143 * s + 1, (ch, cw)) for _ in range(2))
    elif full:
        y, u, v = rng.integers(0, 256 * s, (_H, _W)), rng.integers(0, 256 * s, (ch, cw)), rng.integers(0, 256 * s, (ch, cw))
    else:
        y = rng.integers(16 * s, 235 * s + 1, (_H, _W))
        u, v = (rng.integers(16 * s, 240 * s + 1, (ch, cw)) for _ in range(2))
    return y.astype(dtype), u.astype(dtype), v.astype(dtype)


def write_planes(path: Path, codec: str, pix_fmt: str, frames: list[tuple[np.ndarray, ...]], *, colorspace: int,
                 color_range: int, options: dict[str, str] | None = None) -> Path:
    """A clip of ``frames`` (Y, U, V planes each; its size the Y plane's) through a lossless ``codec``,
    tagged as given."""
    height, width = frames[0][0].shape
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=25)
        s.width, s.height, s.pix_fmt = width, height, pix_fmt
        s.options = options or {}
        s.codec_context.colorspace, s.codec_context.color_range = colorspace, color_range
        for planes in frames:
            frame = av.VideoFrame(width, height, pix_fmt)
            if pix_fmt == "nv12":
                y, u, v = planes
                planes = (y, np.stack([u, v], axis=-1).reshape(u.shape[0], -1))
            for plane, samples in zip(frame.planes, planes):
                rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
                rows[:, :samples.shape[1] * samples.itemsize] = samples.view(np.uint8).reshape(plane.height, -1)
            frame.colorspace, frame.color_range = colorspace, color_range
            for packet in s.encode(frame):
                c.mux(packet)
        for packet in s.encode(None):
            c.mux(packet)
    return path


def decoded_planes(path: Path) -> list[tuple[np.ndarray, ...]]:
    """Each frame's Y, U, V planes as the decoder gives them (NV12's interleaved chroma split)."""
    out = []
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            dtype = np.uint16 if frame.format.name.endswith("10le") else np.uint8
            nv12 = frame.format.name == "nv12"
            # bytes per row: NV12's chroma plane holds two samples (U, V) per chroma position
            planes = [np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)
                      [:, :p.width * np.dtype(dtype).itemsize * (2 if nv12 and i else 1)].copy().view(dtype)
                      for i, p in enumerate(frame.planes)]
            if nv12:
                planes = [planes[0], planes[1][:, 0::2], planes[1][:, 1::2]]
            out.append(tuple(planes))
    return out


# name: (codec, pix_fmt, AVColorSpace, AVColorRange, encoder options); 2/0: untagged
_CASES = {
    "bt601-limited": ("libx264", "yuv420p", 6, 1, {"qp": "0"}),
    "bt709-limited": ("libx264", "yuv420p", 1, 1, {"qp": "0"}),
    "bt709-full": ("libx264", "yuv420p", 1, 2, {"qp": "0"}),
    "jpeg-full": ("libx264", "yuvj420p", 5, 2, {"qp": "0"}),
    "untagged": ("libx264", "yuv420p", 2, 0, {"qp": "0"}),
    "422": ("ffv1", "yuv422p", 6, 1, None),
    "444": ("ffv1", "yuv444p", 1, 1, None),
    "nv12": ("rawvideo", "nv12", 1, 1, None),
    "10-bit": ("ffv1", "yuv420p10le", 9, 1, None),
}


def _clip(tmp_path: Path, case: str, *, neutral: bool = False, frames: int = 2) -> tuple[Path, int, bool]:
    codec, pix_fmt, colorspace, color_range, options = _CASES[case]
    full = color_range == 2 or pix_fmt.startswith("yuvj")
    planes = [random_planes(pix_fmt, full=full, seed=i, neutral=neutral) for i in range(frames)]
    path = write_planes(tmp_path / f"{case}.mkv", codec, pix_fmt, planes, colorspace=colorspace,
                        color_range=color_range, options=options)
    return path, colorspace, full


def _errors(images: list[np.ndarray], path: Path, colorspace: int, full: bool) -> tuple[float, float]:
    """Mean signed and largest absolute error, in 8-bit levels, of ``images`` against the exact RGB."""
    planes = decoded_planes(path)
    bits = 10 if planes[0][0].dtype == np.uint16 else 8
    diffs = [image.astype(np.float64) - exact_rgb(*p, colorspace=colorspace, full=full, bits=bits)
             for image, p in zip(images, planes, strict=True)]
    every = np.stack(diffs)
    return float(every.mean()), float(np.abs(every).max())


@pytest.mark.parametrize("case", list(_CASES))
def test_reader_rgb_is_the_exact_conversion(case: str, tmp_path: Path) -> None:
    """Every matrix, range and chroma layout the reader meets, to within rounding (±0.5 level; ±1 allowed)."""
    path, colorspace, full = _clip(tmp_path, case)
    with FrameReader(path) as reader:
        images = [f.image for f in reader]
    assert len(images) == 2 and images[0].shape == (_H, _W, 3) and images[0].dtype == np.uint8
    mean, worst = _errors(images, path, colorspace, full)
    assert abs(mean) < 0.1 and worst <= 1.0, f"{case}: mean {mean:+.3f} levels, worst {worst:.2f}"


@pytest.mark.parametrize("bits", [8, 10])
@pytest.mark.parametrize("colorspace", [6, 1, 7, 9])
def test_chroma_past_its_legal_top_clips_blue_and_never_wraps_it(colorspace: int, bits: int, tmp_path: Path) -> None:
    """Real footage carries blue chroma past its legal 240 (saturated blues, overshoot from sharpening
    and compression ringing). swscale's 8-bit RGB summed a bright such pixel's blue past its 32-bit
    int and wrapped it to 0 (BT.709 Y 250, U 252: blue 0, not 255), so bright blue came out black,
    where the device path clips it. Luma 200..255 by column, U 241..255 by row, V 0..255 by column;
    the 10-bit clip read with ``deep``, whose 16-bit frame the fix then takes from."""
    s = 1 << (bits - 8)
    y = np.tile(np.linspace(200 * s, 255 * s, _W).round(), (_H, 1))
    u = np.tile(np.linspace(241 * s, 255 * s, _H // 2).round()[:, None], (1, _W // 2))
    v = np.tile(np.linspace(0, 255 * s, _W // 2).round(), (_H // 2, 1))
    dtype = np.uint8 if bits == 8 else np.uint16
    path = write_planes(tmp_path / "blue.mkv", "ffv1", "yuv420p" if bits == 8 else "yuv420p10le",
                        [tuple(p.astype(dtype) for p in (y, u, v))], colorspace=colorspace, color_range=1)
    with FrameReader(path, deep=bits > 8) as reader:
        (frame,) = list(reader)
    mean, worst = _errors([frame.image], path, colorspace, False)
    assert worst <= 1.0, f"worst {worst:.2f} levels (mean {mean:+.3f})"
    expected = exact_rgb(*decoded_planes(path)[0], colorspace=colorspace, full=False, bits=bits)
    assert (expected[..., 2] > 254.5).mean() > 0.5  # mostly saturated blue: this is what wrapped
    if frame.deep is not None:
        deep = frame.deep.astype(np.float64) / 256.0  # white 65280
        assert np.abs(deep - expected).max() <= 1.0


@pytest.mark.parametrize(("codec", "pix_fmt", "color_range", "size"), [
    ("ffv1", "yuv420p", 2, (65, 49)), ("ffv1", "yuv420p", 1, (33, 17)), ("rawvideo", "yuvj420p", 2, (65, 48)),
    ("ffv1", "yuv422p", 1, (65, 48)), ("rawvideo", "nv12", 1, (64, 49)), ("ffv1", "yuv420p10le", 1, (65, 49))])
def test_an_odd_sized_frame_keeps_each_colour_in_its_place(codec: str, pix_fmt: str, color_range: int,
                                                         size: tuple[int, int], tmp_path: Path) -> None:
    """At an odd width or height a 4:2:0 or 4:2:2 frame's last chroma sample covers one column or row.
    swscale spread such chroma over the frame at its own scale (33 samples over 65 columns), so colours
    slid off their place towards the far edge: on colour stripes, a full-range (MJPEG) or limited-range
    65x49 clip read 12-13 levels off on average and up to 251 at the stripes' edges, the same through
    ``video``. Random chroma, every sample its own colour: each must be read where it is, at 8 bits
    and (10-bit source, ``deep``) at 16."""
    width, height = size
    fmt = av.VideoFormat(pix_fmt)
    chroma = (fmt.chroma_height(height), fmt.chroma_width(width))
    bits = 10 if "10" in pix_fmt else 8
    rng = np.random.default_rng(5)
    dtype = np.uint16 if bits > 8 else np.uint8
    planes = tuple(rng.integers(0, 1 << bits, shape).astype(dtype) for shape in ((height, width), chroma, chroma))
    path = write_planes(tmp_path / "odd.mkv", codec, pix_fmt, [planes], colorspace=1, color_range=color_range)
    (decoded,) = decoded_planes(path)
    expected = exact_rgb(*decoded, colorspace=1, full=color_range == 2 or pix_fmt.startswith("yuvj"), bits=bits)
    with FrameReader(path, deep=bits > 8) as reader:
        (frame,) = list(reader)
    assert frame.image.shape == (height, width, 3)
    error = np.abs(frame.image - expected)
    assert error.max() <= 1.0, f"worst {error.max():.1f} levels, at {np.argwhere(error > 1.0)[:3].tolist()}"
    if bits > 8:
        assert np.abs(frame.deep / 256.0 - expected).max() <= 1.0  # white 65280


@pytest.mark.parametrize("bits", [10, 12])
def test_a_deep_full_range_video_reads_at_its_levels(bits: int, tmp_path: Path) -> None:
    """swscale reads full-range YUV deeper than 8 bits as its samples shifted to 16 bits (10-bit white
    at 65472, not 65535), so such a video read 0.37 level bright on average at 8 bits (12-bit 0.46), up
    to 1.3, and its 16-bit frame as much, where limited range is exact. Mid greys with mild chroma
    (nothing clips), read at both depths, and (10-bit) written back as they were."""
    s = 1 << (bits - 8)
    rng = np.random.default_rng(bits)
    chroma = (_H // 2, _W // 2)
    planes = tuple(p.astype(np.uint16) for p in (rng.integers(50 * s, 200 * s, (_H, _W)),
                                                 rng.integers(113 * s, 143 * s, chroma), rng.integers(113 * s, 143 * s, chroma)))
    path = write_planes(tmp_path / "full.mkv", "ffv1", f"yuv420p{bits}le", [planes], colorspace=1, color_range=2)
    expected = exact_rgb(*planes, colorspace=1, full=True, bits=bits)
    out = tmp_path / "out.mkv"
    with FrameReader(path, deep=True) as reader, FrameWriter.like(out, reader.info, encoder="ffv1", deep=True) as writer:
        (frame,) = list(reader)
        writer.write(frame.deep, pts=frame.pts)
    for got in (frame.image.astype(np.float64), frame.deep / 256.0):  # 16 bits: white at 65280, 256 a level
        error = got - expected
        assert abs(error.mean()) < 0.05 and np.abs(error).max() <= 0.51, (error.mean(), np.abs(error).max())
    if bits == 10:  # written back at 10 bits: read bright, it was written 1.5 codes bright, and swscale's
        # way back put chroma a code low (a grey's at 511): the writer converts full range exactly
        for written, source in zip(decoded_planes(out)[0], planes, strict=True):
            error = written.astype(np.int64) - source
            assert abs(error.mean()) < 0.25 and np.abs(error).max() <= 1, (error.mean(), np.abs(error).max())


def test_ten_bit_output_moves_by_the_networks_change_and_no_more(run_cli, tmp_path: Path) -> None:
    """10-bit in, 10-bit out: the network's 8-bit change is added to the source's 16-bit frame, whose
    white is 65280, 256 a level; added at 257 a level (a 16-bit image's step) it came out 0.4 % too
    large. A network that brightens by 120 levels (its last layer's bias), on a grey of Y 400:
    812.24 is exact, 814 was written."""
    import torch

    from videodeblur.config import ModelConfig
    from videodeblur.model.lprn import LPRN
    from videodeblur.model.weights import save_weights

    network = LPRN(ModelConfig(name="brighten", channels=4, stages=1, blocks=1, unshuffle=1, attention="none"))
    with torch.no_grad():
        network.reconstruct.bias.fill_(120 / 255)
    weights = save_weights(tmp_path / "brighten.pt", network)
    grey = (np.full((_H, _W), 400, np.uint16), *(np.full((_H // 2, _W // 2), 512, np.uint16),) * 2)
    path = write_planes(tmp_path / "grey.mkv", "ffv1", "yuv420p10le", [grey], colorspace=1, color_range=1)
    out = tmp_path / "out.mkv"
    result = run_cli("video", path, "-o", out, "--model", weights, "--device", "cpu", "--encoder", "ffv1")
    assert result.exit_code == 0, result.stderr
    luma = decoded_planes(out)[0][0]
    assert luma.dtype == np.uint16 and np.all(luma == round(400 + 120 * 876 / 255)), np.unique(luma)


@pytest.mark.parametrize(("y", "level"), [(16, 0), (50, 40), (126, 128), (180, 191), (235, 255)])
def test_a_flat_grey_reads_as_its_level(y: int, level: int, tmp_path: Path) -> None:
    """BT.601 limited range: Y=50 is 39.59, so 40 (swscale's default gave 39)."""
    flat = (np.full((_H, _W), y, np.uint8), *(np.full((_H // 2, _W // 2), 128, np.uint8),) * 2)
    path = write_planes(tmp_path / "grey.mkv", "libx264", "yuv420p", [flat], colorspace=6, color_range=1,
                        options={"qp": "0"})
    with FrameReader(path) as reader:
        (frame,) = list(reader)
    assert np.all(frame.image == level), np.unique(frame.image)


@needs_pyav18  # the 10-bit case is BT.2020, which PyAV 17.1 (Python 3.10) cannot write
def test_ten_bit_deep_frames_are_exact_and_survive_the_writer(tmp_path: Path) -> None:
    """``deep``: the 8-bit frame the network sees is the exact conversion, and the 16-bit frame
    written back at 10 bits gives the source's samples again (±1 code: 10-bit in, 10-bit out)."""
    path, colorspace, full = _clip(tmp_path, "10-bit", neutral=True)
    out = tmp_path / "out.mkv"
    with FrameReader(path, deep=True) as reader, \
            FrameWriter.like(out, reader.info, encoder="ffv1", deep=True) as writer:
        images = []
        for frame in reader:
            images.append(frame.image)
            writer.write(frame.deep, pts=frame.pts)
    mean, worst = _errors(images, path, colorspace, full)
    assert abs(mean) < 0.1 and worst <= 1.0, f"mean {mean:+.3f} levels, worst {worst:.2f}"
    assert writer.pix_fmt == "yuv420p10le"
    source, written = decoded_planes(path), decoded_planes(out)
    for a, b in zip(source, written, strict=True):
        luma = b[0].astype(np.int64) - a[0]
        assert abs(luma.mean()) < 0.25 and np.abs(luma).max() <= 1, (luma.mean(), np.abs(luma).max())


@pytest.mark.parametrize("case", ["bt601-limited", "bt709-limited", "bt709-full"])
def test_reader_to_writer_keeps_the_luma(case: str, tmp_path: Path) -> None:
    """Decoded to RGB and encoded again (losslessly) with no network between, the picture keeps
    its brightness: mean luma within a quarter level of the source's."""
    path, _, _ = _clip(tmp_path, case, neutral=True)
    out = tmp_path / "out.mkv"
    with FrameReader(path) as reader, FrameWriter.like(out, reader.info, encoder="ffv1") as writer:
        for frame in reader:
            writer.write(frame.image, pts=frame.pts)
    source, written = decoded_planes(path), decoded_planes(out)
    assert len(written) == len(source) == 2
    for a, b in zip(source, written):
        luma = b[0].astype(np.int64) - a[0]
        assert abs(luma.mean()) < 0.25 and np.abs(luma).max() <= 1, (luma.mean(), np.abs(luma).max())


def test_a_frame_of_another_size_is_scaled_without_darkening(tmp_path: Path) -> None:
    """A size change mid-stream is scaled back to the first size (smoothly, not by dropping
    pixels), and keeps its brightness: a flat grey stays its exact level."""
    from _clips_video import spliced_sizes

    src = spliced_sizes(tmp_path / "spliced.ts", [(64, 48), (128, 96)], frames_each=3)
    with FrameReader(src) as reader:
        frames = [f.image for f in reader]
    assert reader.frames_resized == 3 and all(f.shape == (48, 64, 3) for f in frames)
    with av.open(str(src)) as c:
        big = [f for f in c.decode(video=0)][4]
    y, u, v = (np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, :p.width] for p in big.planes)
    expected = exact_rgb(y, u, v, colorspace=2, full=False)
    mean_error = frames[4].astype(np.float64).mean() - expected.mean()
    assert abs(mean_error) < 0.25, mean_error
    # smooth: each output pixel averages its 2×2 source block (nearest neighbour would not)
    blocks = expected.reshape(48, 2, 64, 2, 3).mean(axis=(1, 3))
    assert np.abs(frames[4] - blocks)[4:-4, 4:-4].mean() < np.abs(frames[4] - expected[::2, ::2])[4:-4, 4:-4].mean()


def test_camera_source_frames_are_the_exact_conversion(tmp_path: Path) -> None:
    """A file or stream opened as a live source (PyAV) converts as the reader does."""
    path, colorspace, full = _clip(tmp_path, "bt709-limited")
    source = open_source(str(path))
    try:
        images = [f.image for f in source.frames(threading.Event())]
    finally:
        source.close()
    mean, worst = _errors(images, path, colorspace, full)
    assert abs(mean) < 0.1 and worst <= 1.0, f"mean {mean:+.3f} levels, worst {worst:.2f}"


def _grey_clip(path: Path, pix_fmt: str, samples: list[int], *, color_range: int) -> Path:
    """A lossless (FFV1) grey clip, one flat frame per sample value, tagged with ``color_range``."""
    dtype = np.uint8 if pix_fmt == "gray" else np.uint16
    return write_planes(path, "ffv1", pix_fmt, [(np.full((_H, _W), sample, dtype),) for sample in samples],
                        colorspace=2, color_range=color_range)


@pytest.mark.parametrize(("pix_fmt", "samples"), [("gray", [16, 126, 235]), ("gray10le", [64, 504, 940])])
def test_limited_range_grey_reads_full_range_and_is_written_back_as_it_was(pix_fmt: str, samples: list[int],
                                                                           tmp_path: Path) -> None:
    """A monochrome video tagged limited range (HEVC 4:0:0 from a security or thermal camera): swscale
    read its black (16) as RGB 16 and its white (235) as 235, so the output was washed out, black
    written back at Y 30 and white at 219."""
    src = _grey_clip(tmp_path / f"{pix_fmt}.mkv", pix_fmt, samples, color_range=1)
    out = tmp_path / "out.mkv"
    with FrameReader(src) as reader, FrameWriter.like(out, reader.info, encoder="ffv1") as writer:
        images = []
        for frame in reader:
            images.append(frame.image)
            writer.write(frame.image, pts=frame.pts)
    assert [int(image[0, 0, 0]) for image in images] == [0, 128, 255]
    assert all((image == image[0, 0, 0]).all() and image.shape == (_H, _W, 3) for image in images)
    written = [planes[0] for planes in decoded_planes(out)]
    assert [int(luma.mean().round()) for luma in written] == [16, 126, 235]  # written at 8 bits
    full = _grey_clip(tmp_path / "full.mkv", pix_fmt, samples, color_range=2)
    with FrameReader(full) as reader:  # full range (and untagged) grey is read as it is
        levels = [int(frame.image[0, 0, 0]) for frame in reader]
    top = 255 if pix_fmt == "gray" else 1023
    assert all(abs(level - sample * 255 / top) <= 1 for level, sample in zip(levels, samples, strict=True)), levels


@pytest.mark.parametrize(("pix_fmt", "samples", "written"), [("gray", [16, 126, 235], "yuv420p"),
                                                              ("gray10le", [64, 504, 940], "yuv420p10le")])
def test_grey_video_is_written_as_4_2_0(pix_fmt: str, samples: list[int], written: str, tmp_path: Path) -> None:
    """A grey source has no chroma to keep: it is written 4:2:0, which browsers and phones play (it was
    written 4:4:4, with a warning that they do not), and its picture stays grey."""
    src = _grey_clip(tmp_path / f"{pix_fmt}.mkv", pix_fmt, samples, color_range=1)
    out = tmp_path / "out.mp4"
    with FrameReader(src) as reader, FrameWriter.like(out, reader.info, deep=True) as writer:
        for frame in reader:
            writer.write(frame.deep if frame.deep is not None else frame.image, pts=frame.pts)
        assert writer.pix_fmt == written
    lumas = [planes[0] for planes in decoded_planes(out)]
    top = 235 if pix_fmt == "gray" else 940
    assert [abs(int(luma.mean().round()) - sample) <= top // 235 for luma, sample in zip(lumas, samples)] == [True] * 3
