"""Unusual video inputs a demanding user feeds the tool: what is read from them and what is said."""
from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from videodeblur.video import FrameReader, FrameWriter
from videodeblur.video.reader import probe

from _clips_video import encode_frames


def _vp9_with_alpha(path: Path, frames: int = 2, size: tuple[int, int] = (64, 48)) -> Path:
    """A WebM whose VP9 carries alpha (yuva420p through libvpx-vp9), as editors export overlays."""
    width, height = size
    with av.open(str(path), "w") as c:
        s = c.add_stream("libvpx-vp9", rate=25)
        s.width, s.height, s.pix_fmt = width, height, "yuva420p"
        ramp = np.tile(np.linspace(0, 255, width).astype(np.uint8), (height, 1))
        encode_frames(c, s, (av.VideoFrame.from_ndarray(np.dstack([ramp, ramp, ramp, ramp[:, ::-1]]), format="rgba")
                             for _ in range(frames)))
    return path


def test_vp9_alpha_in_webm_is_seen(tmp_path: Path) -> None:
    """FFmpeg's own VP9 decoder skips the alpha picture (the frames come out yuv420p): only the track's
    alpha_mode tells it, and without reading it the transparency was lost without a word."""
    info = probe(_vp9_with_alpha(tmp_path / "overlay.webm"))
    assert info.pix_fmt == "yuv420p" and info.has_alpha


def _flat_ffv1(path: Path, pix_fmt: str, samples: list[int]) -> Path:
    """A lossless FFV1 clip, untagged (full range), one flat frame per sample value: grey, or RGB with
    the sample in every channel (``gbrp10le``)."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=25)
        s.width, s.height, s.pix_fmt = 32, 16, pix_fmt
        encode_frames(c, s, (_flat_frame(pix_fmt, sample) for sample in samples))
    return path


def _flat_frame(pix_fmt: str, sample: int) -> av.VideoFrame:
    """A 32x16 ``pix_fmt`` frame of one sample value: grey, or RGB with it in every channel."""
    if pix_fmt.startswith("gray"):
        return av.VideoFrame.from_ndarray(np.full((16, 32), sample, np.uint16), format=pix_fmt)
    bits = av.VideoFormat(pix_fmt).components[0].bits
    rgb = np.full((16, 32, 3), round(sample * 65535 / ((1 << bits) - 1)), np.uint16)
    return av.VideoFrame.from_ndarray(rgb, format="rgb48le").reformat(format=pix_fmt)


@pytest.mark.parametrize(("pix_fmt", "top"), [("gray10le", 1023), ("gray16le", 65535), ("gbrp10le", 1023)])
def test_deep_grey_and_rgb_keep_their_levels_in_10_bit_output(pix_fmt: str, top: int, tmp_path: Path) -> None:
    """A deep grey or RGB source's white was written at 10-bit Y 942-943, above video white (940), and
    its mid grey 2-3 codes bright: swscale's 16-bit RGB from them puts white at 65472 or 65535 where
    the writer's way back to YUV (as from any YUV source) takes 65280. And 16-bit grey read at 8 bits
    rounded 128·257 up to 129."""
    samples = [0, (top + 1) // 2, top]
    src = _flat_ffv1(tmp_path / f"{pix_fmt}.mkv", pix_fmt, samples)
    out = tmp_path / "out.mkv"
    with FrameReader(src, deep=True) as reader, FrameWriter.like(out, reader.info, encoder="ffv1", deep=True) as writer:
        eight = []
        for frame in reader:
            eight.append(int(frame.image[0, 0, 0]))
            writer.write(frame.deep, pts=frame.pts)
        assert writer.pix_fmt.endswith("10le")
    assert eight == [0, 128, 255]
    with av.open(str(out)) as c:
        lumas = []
        for frame in c.decode(video=0):
            plane = frame.planes[0]
            lumas.append(int(np.frombuffer(bytes(plane), np.uint16).reshape(frame.height, -1)[0, 0]))
    exact = [round(64 + 876 * sample / top) for sample in samples]  # 64, 502, 940
    assert all(abs(luma - want) <= 1 for luma, want in zip(lumas, exact, strict=True)), (lumas, exact)


def test_a_file_whose_name_reads_as_a_protocol_is_read_with_its_sound(run_cli, make_clip, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """FFmpeg reads ``2024-05-06T10:30:00.mp4`` (a timestamp name) as the protocol "2024-05-06T10": a
    file that was there failed with "Protocol not found", and ``concat:x.mp4`` with "No such file"."""
    src = make_clip(tmp_path / "clip.mp4", width=64, height=48, frames=3, audio=True)
    monkeypatch.chdir(tmp_path)
    for name in ("2024-05-06T10:30:00.mp4", "concat:x.mp4"):
        (tmp_path / name).write_bytes(src.read_bytes())
        result = run_cli("video", name, "-o", tmp_path / f"out-{name[:4]}.mp4", "--model", "lprn-fast",
                         "--device", "cpu", "--json")
        assert result.exit_code == 0, result.stderr
        data = json.loads(result.stdout)
        assert data["frames"] == 3 and data["audio_packets"] > 0, data



def test_the_output_beside_a_file_named_like_a_protocol_is_written_and_resumed(run_cli, make_clip, tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The default output of ``take2:final.mp4`` is ``take2:final-deblurred.mp4``: once the input was read,
    writing it failed with ".mp4 files cannot hold libx264 (Protocol not found)", and --resume could not
    read it back."""
    monkeypatch.chdir(tmp_path)
    make_clip(tmp_path / "take2:final.mp4", width=64, height=48, frames=3)
    result = run_cli("video", "take2:final.mp4", "--model", "lprn-fast", "--device", "cpu", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["frames"] == 3
    resumed = run_cli("video", "take2:final.mp4", "--model", "lprn-fast", "--device", "cpu", "--resume")
    assert resumed.exit_code == 0, resumed.stderr
    assert "already holds all 3 frames" in resumed.stdout, resumed.stdout  # the run's summary line (since 83c222f)


def _mpeg2_ts(path: Path, *, interlaced: bool, first: int, frames: int = 4) -> bytes:
    """An MPEG-2 transport stream, coded interlaced (top field first) or progressive."""
    with av.open(str(path), "w", format="mpegts") as c:
        s = c.add_stream("mpeg2video", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        if interlaced:
            s.codec_context.flags |= av.codec.context.Flags.interlaced_dct | av.codec.context.Flags.interlaced_me
            s.options = {"top": "1"}
        encode_frames(c, s, (av.VideoFrame.from_ndarray(np.full((48, 64, 3), 40 * i, np.uint8), format="rgb24")
                             for i in range(frames)), first_pts=first)
    return path.read_bytes()


def test_video_that_turns_interlaced_after_its_first_frame_is_said(run_cli, tmp_path: Path) -> None:
    """A broadcast recording whose interlaced programme follows a progressive one: judged by its
    first frame alone, half its frames were deblurred combed without the interlace warning."""
    src = tmp_path / "p_then_i.ts"
    src.write_bytes(_mpeg2_ts(tmp_path / "p.ts", interlaced=False, first=0)
                    + _mpeg2_ts(tmp_path / "i.ts", interlaced=True, first=4))
    with FrameReader(src) as reader:
        assert not reader.info.interlaced
        frames = list(reader)  # the cut between the two loses one frame to the decoder: 7 of 8
        assert len(frames) >= 6 and reader.info.interlaced and 2 <= (reader.first_interlaced or 0) <= 4
    args = ("--model", "lprn-fast", "--device", "cpu", "--json")
    said = json.loads(run_cli("video", src, "-o", tmp_path / "out.mp4", *args).stdout)["warnings"]
    # where: the progressive frames before it came out clean (the reader's first_interlaced, said)
    assert [w for w in said if f"is interlaced from frame {reader.first_interlaced}:" in w], said
    clean = json.loads(run_cli("video", src, "-o", tmp_path / "d.mp4", *args, "--deinterlace").stdout)["warnings"]
    assert not [w for w in clean if "is interlaced" in w], clean


def _gif(path: Path, *, transparent: bool) -> Path:
    """A 3-frame animated GIF, with a transparent colour in one corner or none."""
    from PIL import Image

    ramp = np.tile(np.linspace(0, 250, 64).astype(np.uint8), (48, 1))
    frames = []
    for i in range(3):
        picture = Image.fromarray(np.dstack([np.roll(ramp, 8 * i, axis=1), ramp, ramp[::-1]])).quantize(colors=200)
        if transparent:
            indices = np.array(picture)
            indices[:8, :8] = 255
            picture.putdata(indices.flatten().tolist())
        frames.append(picture)
    extra = {"transparency": 255, "disposal": 2} if transparent else {}
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0, **extra)
    return path


def test_a_gif_has_alpha_only_with_a_transparent_colour(tmp_path: Path) -> None:
    """FFmpeg decodes every GIF to BGRA: each one was said to have an alpha channel whose
    transparency the output does not keep, though most GIFs have no transparent colour."""
    assert not probe(_gif(tmp_path / "opaque.gif", transparent=False)).has_alpha
    assert probe(_gif(tmp_path / "holed.gif", transparent=True)).has_alpha


def test_an_mp4_video_track_title_is_kept(make_clip, tmp_path: Path) -> None:
    """An MP4's track title reads back as ``name``, which the writer (keeping ``title``) did not take:
    the video track's title was lost, MP4 to MP4 or to MKV."""
    src = make_clip(tmp_path / "plain.mp4", width=64, height=48, frames=2)
    titled = tmp_path / "titled.mp4"
    with av.open(str(src)) as i, av.open(str(titled), "w") as o:
        video = o.add_stream_from_template(i.streams.video[0])
        video.metadata["title"] = "drone pass"
        for packet in i.demux(i.streams.video[0]):
            if packet.dts is not None:
                packet.stream = video
                o.mux(packet)
    assert probe(titled).video_tags.get("title") == "drone pass"
    out = tmp_path / "out.mkv"
    with FrameReader(titled) as reader, FrameWriter.like(out, reader.info) as writer:
        for frame in reader:
            writer.write(frame.image, pts=frame.pts)
    with av.open(str(out)) as c:
        assert c.streams.video[0].metadata.get("title") == "drone pass"


def test_deep_rgb_reads_exactly_at_8_bits_and_8_bit_rgb_at_16() -> None:
    """swscale's rgb24 of 10-bit RGB shifts (696 >> 2 = 174, where 696 of 1023 is 173.49 of 255): the
    8-bit picture, which an --eight-bit output is written from, was up to half a level bright. And 8-bit
    RGB at 16 bits is 256 a level (200 -> 51200), white at 65280 as from YUV."""
    from videodeblur.video.colour import RgbConverter

    converter = RgbConverter()
    ten = av.VideoFrame(4, 2, "gbrp10le")
    for plane in ten.planes:
        plane.update(np.full(len(bytes(plane)) // 2, 696, np.uint16).tobytes())
    assert converter.to_rgb(ten)[0, 0].tolist() == [173, 173, 173]
    eight = av.VideoFrame.from_ndarray(np.full((2, 4, 3), 200, np.uint8), format="rgb24").reformat(format="bgr0")
    assert converter.to_rgb(eight, deep=True)[0, 0].tolist() == [51200] * 3


def test_one_bit_and_float_grey_still_convert() -> None:
    """Grey read from its samples is for integer grey: 1-bit monob/monow (which numpy cannot read from
    PyAV) and float grey go through swscale as before."""
    from videodeblur.video.colour import RgbConverter

    for name, level in (("monob", 0), ("monow", 255)):  # bits all 0: black in monob, white in monow
        frame = av.VideoFrame(8, 2, name)
        frame.planes[0].update(bytes(len(bytes(frame.planes[0]))))
        assert RgbConverter().to_rgb(frame).tolist() == [[[level] * 3] * 8] * 2
    assert RgbConverter().to_rgb(av.VideoFrame(8, 2, "grayf32le")).shape == (2, 8, 3)
