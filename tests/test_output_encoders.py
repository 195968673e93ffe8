"""The writer across containers and encoders a user picks: a file that plays, or one line that says
what to use instead (session 24's matrix of .mp4/.mov/.mkv/.webm/.ts/.nut/.avi by encoder)."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from videodeblur.errors import EncodeError, OutputError
from videodeblur.video import FrameReader, FrameWriter
from videodeblur.video.colour import ColourTags
from videodeblur.video.encoders import choose_encoder, containers_for, encoder_options

from conftest import clip_frame, needs_pyav18, psnr


@pytest.mark.parametrize("suffix, encoder", [(".ts", "libvpx-vp9"), (".ts", "ffv1"), (".mpg", "ffv1")])
def test_mpeg_ts_refuses_a_codec_it_would_write_as_data(suffix: str, encoder: str, tmp_path: Path) -> None:
    """MPEG-TS took VP9 or FFV1 and wrote it as a private data track (MPEG-PS as a track read as MP3
    or nothing): 'wrote 20 frames', exit 0, and a file with no video in it. Refused before any frame,
    naming where the codec goes."""
    with pytest.raises(OutputError, match=rf"\{suffix} cannot carry {encoder}'s video.*{encoder} goes in \.mp4"):
        FrameWriter(tmp_path / f"out{suffix}", width=64, height=48, time_base=Fraction(1, 25), encoder=encoder)
    assert not (tmp_path / f"out{suffix}").exists()


def test_a_udp_stream_that_cannot_carry_the_codec_is_told_the_encoder_not_a_file_suffix() -> None:
    """A udp:// stream is MPEG-TS whatever is asked: 'libvpx-vp9 goes in .mp4, .mkv or .webm' named file
    suffixes no URL can take."""
    url = "udp://127.0.0.1:39999"  # nothing listens: UDP sends regardless, and nothing is sent before the refusal
    with pytest.raises(OutputError) as refused:
        FrameWriter(url, width=64, height=48, time_base=Fraction(1, 25), encoder="libvpx-vp9")
    assert str(refused.value) == (f"{url} (mpegts) cannot carry libvpx-vp9's video (it would be written as a track "
                                  "no player reads as video); use --encoder libx264")


def test_an_rtmp_stream_flv_refuses_is_told_the_encoder_not_a_file_suffix() -> None:
    """rtmp:// is FLV whatever is asked: 'ffv1 goes in .mp4 or .mkv' named suffixes no URL can take.
    FLV refuses the codec as the stream is added, before any connection (nothing listens here)."""
    url = "rtmp://127.0.0.1:39998/live/x"
    with pytest.raises(OutputError) as refused:
        FrameWriter(url, width=64, height=48, time_base=Fraction(1, 25), encoder="ffv1")
    assert str(refused.value) == ("flv: 'flv' format does not support 'ffv1' codec; "
                                  f"{url} is sent as flv whatever the encoder: use --encoder libx264")


def test_mpeg_ts_still_takes_hevc(tmp_path: Path) -> None:
    with FrameWriter(tmp_path / "out.ts", width=64, height=48, time_base=Fraction(1, 25), encoder="libx265") as w:
        for i in range(3):
            w.write(clip_frame(i, 64, 48), pts=i)
    with av.open(str(tmp_path / "out.ts")) as c:
        assert c.streams.video and sum(1 for _ in c.decode(video=0)) == 3


@pytest.mark.parametrize("name", ["out.mkv", "out.mp4"])
def test_huffyuv_is_sent_to_the_containers_that_hold_it(name: str, tmp_path: Path) -> None:
    """Only AVI and NUT hold HuffYUV: a .mkv user was told 'use .mp4, .mkv or .mov'."""
    assert containers_for("huffyuv") == (".avi", ".nut")
    with pytest.raises(OutputError, match=r"huffyuv goes in \.avi or \.nut"):
        FrameWriter(tmp_path / name, width=64, height=48, time_base=Fraction(1, 25), encoder="huffyuv")


def test_vp8_is_converted_with_the_matrix_its_decoders_use(tmp_path: Path) -> None:
    """VP8 is BT.601 only: FFmpeg's decoder (and browsers) read it so whatever the file says, and a
    BT.709 source converted with BT.709 came back 5 levels off on average (7 here, 4 with BT.601)."""
    frames = [clip_frame(i, 96, 64) for i in range(3)]
    decoded = _bt709_written_and_read(tmp_path / "out.mkv", frames, encoder="libvpx", crf=4)
    error = np.mean([np.abs(d - f).mean() for d, f in zip(decoded, frames)])
    assert error < 5, error  # 4.0 (VP8 at this size); 7.0 converted as BT.709


@needs_pyav18
def test_prores_keeps_the_sources_primaries_and_transfer(tmp_path: Path) -> None:
    """ProRes writes each frame's own primaries and transfer into its picture header: the writer's
    frames had none, and a BT.709 source's ProRes .mov read back as unspecified."""
    path = tmp_path / "out.mov"
    with FrameWriter(path, width=64, height=48, time_base=Fraction(1, 25), encoder="prores_ks",
                     colour=ColourTags(colorspace=1, color_range=1, color_primaries=1, color_trc=1)) as writer:
        writer.write(clip_frame(0, 64, 48), pts=0)
    with av.open(str(path)) as c:
        frame = next(c.decode(video=0))
    assert (frame.colorspace, frame.color_primaries, frame.color_trc) == (1, 1, 1)


def test_avi_with_aac_keeps_every_frame_in_its_slot(make_clip, tmp_path: Path) -> None:
    """The AVI muxer shifted every stream past AAC's priming (its first packet at -21 ms): the second
    and later frames came a slot late (0, 2, 3, 4...: the first shown twice as long)."""
    src = make_clip("a.mp4", width=64, height=48, frames=6, audio=True)
    with FrameReader(src) as reader, FrameWriter.like(tmp_path / "out.avi", reader.info, encoder="ffv1") as writer:
        for frame in reader:
            writer.write(frame.image, pts=frame.pts)
    with av.open(str(tmp_path / "out.avi")) as c:
        assert [f.pts for f in c.decode(video=0)] == [0, 1, 2, 3, 4, 5]
        assert c.streams.audio


def test_svt_av1_crf_0_is_its_best_quality_not_its_default() -> None:
    """libsvtav1 takes crf 0 as unset: --crf 0 wrote the same bytes as its default, --crf 35."""
    assert encoder_options("libsvtav1", {"crf"}, crf=0, preset="veryfast")["crf"] == "1"
    assert encoder_options("libsvtav1", {"crf"}, crf=18, preset="veryfast")["crf"] == "18"


def test_svt_av1_takes_the_preset(tmp_path: Path) -> None:
    """SVT-AV1 has presets (13 fastest .. 0): --preset was not applied, with a warning that it had none."""
    assert encoder_options("libsvtav1", {"crf"}, crf=30, preset="slow")["preset"] == "5"
    writer = FrameWriter(tmp_path / "out.mkv", width=64, height=48, time_base=Fraction(1, 25), encoder="libsvtav1",
                         preset="ultrafast")
    with writer:
        writer.write(clip_frame(0, 64, 48), pts=0)
    assert writer.speed_control == "preset"


def test_mpeg4_follows_crf(tmp_path: Path) -> None:
    """mpeg4 has no crf: it ran at its default bit rate (29 dB where x264's crf 18 gives 40, with a
    warning that --crf was not applied); --crf now sets its quantizer. Held against FFV1 (lossless)
    through the same writer, so only the encoder's loss counts, not 4:2:0's."""
    frames = [clip_frame(i, 320, 192) for i in range(8)]

    def written(encoder: str) -> tuple[FrameWriter, list[np.ndarray]]:
        path = tmp_path / f"{encoder}.mkv"
        with FrameWriter(path, width=320, height=192, time_base=Fraction(1, 25), encoder=encoder, crf=18) as writer:
            for i, frame in enumerate(frames):
                writer.write(frame, pts=i)
        with av.open(str(path)) as c:
            return writer, [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]

    writer, mpeg4 = written("mpeg4")
    _, exact = written("ffv1")
    assert writer.quality_control == "qmax"
    assert np.mean([psnr(a, b) for a, b in zip(mpeg4, exact)]) > 38


def test_mxf_keeps_every_frame_time(tmp_path: Path) -> None:
    """x264's B-frames in MXF came back with times out of order: 0, 0.04, 0.08, 0.16, 0.2, 0.12...
    (AVI's rule now: no B-frames)."""
    with FrameWriter(tmp_path / "out.mxf", width=320, height=180, time_base=Fraction(1, 12800),
                     fps=Fraction(25)) as writer:
        for i in range(20):
            writer.write(clip_frame(i, 320, 180), pts=512 * i)
    with av.open(str(tmp_path / "out.mxf")) as c:
        assert [round(float(f.pts * f.time_base), 3) for f in c.decode(video=0)] == [i / 25 for i in range(20)]


def test_standard_output_is_told_the_format_to_ask_for(tmp_path: Path) -> None:
    """-o - --format webm --encoder libx264 was told 'libx264 goes in .mp4, .mkv or .mov': file suffixes,
    where only --format chooses."""
    with pytest.raises(OutputError, match=r"libx264 goes in --format mp4, mkv or mov"):
        FrameWriter("-", width=64, height=48, time_base=Fraction(1, 25), encoder="libx264", pipe_format="webm")


def test_libx264rgb_is_tagged_as_rgb(tmp_path: Path) -> None:
    """libx264rgb stores R, G, B planes: tagged with the source's BT.709, decoders read them as Y, U, V
    and every colour came back wrong (37.9 levels off on average)."""
    frames = [clip_frame(i, 64, 48) for i in range(2)]
    decoded = _bt709_written_and_read(tmp_path / "out.mkv", frames, encoder="libx264rgb", crf=0)
    assert max(np.abs(d - f).max() for d, f in zip(decoded, frames)) <= 1


def test_a_format_name_is_its_encoder(tmp_path: Path) -> None:
    """--encoder h264 opened libx264 but was looked up as 'h264': --preset slow 'was not applied (the
    encoder has no speed presets)', and frame threads were not set."""
    assert choose_encoder("h264") == "libx264" and choose_encoder("hevc") == "libx265"
    writer = FrameWriter(tmp_path / "out.mp4", width=64, height=48, time_base=Fraction(1, 25), encoder="h264",
                         preset="slow")
    with writer:
        writer.write(clip_frame(0, 64, 48), pts=0)
    assert (writer.encoder_name, writer.speed_control) == ("libx264", "preset")


def test_vp8_follows_crf(tmp_path: Path) -> None:
    """VP8's crf is a floor under its bit rate, and with b=0 that rate was libvpx's 256 kb/s: crf 4 and
    crf 40 gave files within a fifth of each other."""
    sizes = {}
    for crf in (4, 40):
        path = tmp_path / f"{crf}.webm"
        with FrameWriter(path, width=320, height=180, time_base=Fraction(1, 25), encoder="libvpx", crf=crf) as writer:
            for i in range(10):
                writer.write(clip_frame(i, 320, 180), pts=i)
        sizes[crf] = path.stat().st_size
    assert sizes[4] > 1.3 * sizes[40], sizes  # 22796 and 15508 bytes (12734 and 12705 at 256 kb/s)


def test_vp8_takes_crf_0_as_its_best(tmp_path: Path) -> None:
    """VP8's crf starts at 4: --crf 0 failed to open the encoder ('returned 22; try --encoder libx264')."""
    with FrameWriter(tmp_path / "out.webm", width=64, height=48, time_base=Fraction(1, 25), encoder="libvpx",
                     crf=0) as writer:
        writer.write(clip_frame(0, 64, 48), pts=0)
    assert writer.frames_written == 1


@pytest.mark.parametrize("encoder, name", [("prores_ks", "out.mov"), ("libx264rgb", "out.mkv"), ("libvpx", "out.webm")])
def test_i420_frames_go_to_an_encoder_that_wants_another_format(encoder: str, name: str, tmp_path: Path) -> None:
    """CUDA hands the writer I420 (4:2:0 sources, by default): an encoder that takes no 4:2:0 (ProRes,
    libx264rgb) stopped the run with "ValueError: layout 'i420' needs an even-sized yuv420p output",
    and VP8 got the source's BT.709 planes tagged BT.601. swscale converts them now."""
    colour = ColourTags(colorspace=1, color_range=1, color_primaries=1, color_trc=1)
    frames = [clip_frame(i, 64, 48) for i in range(3)]
    i420 = [av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="yuv420p", dst_colorspace="ITU709",
                                                                   dst_color_range="MPEG").to_ndarray() for f in frames]
    with FrameWriter(tmp_path / name, width=64, height=48, time_base=Fraction(1, 25), encoder=encoder, crf=4,
                     layout="i420", colour=colour) as writer:
        for i, planes in enumerate(i420):
            writer.write(planes, pts=i)
    with av.open(str(tmp_path / name)) as c:
        decoded = [f.to_ndarray(format="rgb24").astype(int) for f in c.decode(video=0)]
    assert len(decoded) == 3
    error = np.mean([np.abs(d - f).mean() for d, f in zip(decoded, frames)])
    assert error < 6, error  # 4.1, 4.1, 5.1 (4:2:0 at 64x48); VP8 was 7.2


def _bt709_written_and_read(path: Path, frames: list[np.ndarray], **writer_options: Any) -> list[np.ndarray]:
    """``frames`` written as a BT.709 limited-range source's, then decoded as the file's tags say (int RGB)."""
    height, width = frames[0].shape[:2]
    with FrameWriter(path, width=width, height=height, time_base=Fraction(1, 25),
                     colour=ColourTags(colorspace=1, color_range=1, color_primaries=1, color_trc=1),
                     **writer_options) as writer:
        for i, frame in enumerate(frames):
            writer.write(frame, pts=i)
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24").astype(int) for f in c.decode(video=0)]


def _write_frames(path: Path, count: int, fps: Fraction, **writer_options: Any) -> FrameWriter:
    """``count`` frames of clip_frame at ``fps`` (time base 1/12800, as an MP4's), written to ``path``."""
    step = Fraction(1, 12800)
    with FrameWriter(path, width=64, height=48, time_base=step, fps=fps, **writer_options) as writer:
        for i in range(count):
            writer.write(clip_frame(i, 64, 48), pts=round(i / fps / step))
    return writer


def test_mpeg1_video_at_a_rate_it_cannot_state_is_told_the_rates(tmp_path: Path) -> None:
    """`--encoder mpeg1video` at 15 fps failed with FFmpeg's "Invalid argument" and a libx264 hint: its
    header states one rate of the standard's table. The refusal names them (and MPEG-2, which codes 15 fps);
    MPEG-2 writes 15 fps exactly, and refuses 7 fps, which no entry of its table is."""
    with pytest.raises(EncodeError) as refused:
        _write_frames(tmp_path / "out.mpg", 3, Fraction(15), encoder="mpeg1video")
    assert str(refused.value) == ("encoder mpeg1video cannot write 15 fps video: its stream states only 23.976, 24, "
                                  "25, 29.97, 30, 50, 59.94 or 60 fps; use --encoder mpeg2video (which codes it) "
                                  "or libx264")
    assert not (tmp_path / "out.mpg").exists()
    with pytest.raises(EncodeError, match=r"fps; use \.mkv or \.mp4 \(with --encoder libx264\), which hold any rate$"):
        _write_frames(tmp_path / "out.m1v", 3, Fraction(15))  # MPEG-1 video alone: neither of those goes in
    with pytest.raises(EncodeError, match="mpeg2video cannot write 7 fps video: .* such as 12, 15, 24"):
        _write_frames(tmp_path / "out.mpg", 3, Fraction(7), encoder="mpeg2video")
    _write_frames(tmp_path / "out.mkv", 4, Fraction(15), encoder="mpeg2video")
    with av.open(str(tmp_path / "out.mkv")) as c:
        times = [float(f.time) for f in c.decode(video=0)]
    assert [round(t - times[0], 2) for t in times] == [0, 0.07, 0.13, 0.2]  # (Matroska: milliseconds)


def test_a_rate_near_the_mpeg1_table_is_written_at_the_tables_rate(tmp_path: Path) -> None:
    """A rounded NTSC rate (2997/100, as some containers store it) is MPEG-1's 29.97: written at 30000/1001,
    each frame in its slot, not refused."""
    _write_frames(tmp_path / "out.mpg", 4, Fraction(2997, 100), encoder="mpeg1video")
    with av.open(str(tmp_path / "out.mpg")) as c:
        assert c.streams.video[0].average_rate == Fraction(30000, 1001)
        assert len(list(c.decode(video=0))) == 4


def _avi_slots(path: Path) -> list[int]:
    with av.open(str(path)) as c:
        return [f.pts for f in c.decode(video=0)]


def _cut_avi(path: Path, start_s: float, frames: range) -> FrameWriter:
    """``frames`` of a 25 fps clip (time base 1/12800, as an MP4's: frame i at 512 i) cut at ``start_s``."""
    with FrameWriter(path, width=64, height=48, time_base=Fraction(1, 12800), fps=Fraction(25),
                     window=(start_s, None)) as writer:
        for i in frames:
            writer.write(clip_frame(i, 64, 48), pts=512 * i)
    return writer


@pytest.mark.parametrize("start_s", [0.1, 0.13])
def test_avi_keeps_its_first_frame_in_its_slot(start_s: float, tmp_path: Path) -> None:
    """A part cut between two frames of a 25 fps clip (--start 0.13: its frames at 0.03, 0.07, ...): AVI's
    muxer fills a gap with empty chunks only after the first frame, so a first frame due in slot 1 went to
    slot 0, a slot's gap after it (0, 2, 3...); and at 0.1 (frames at 0.02, 0.06...), Python's round()
    sent the half-slot times to even slots (0, 2, 3, 4...)."""
    _cut_avi(tmp_path / "out.avi", start_s, range(3 if start_s == 0.1 else 4, 8))
    assert _avi_slots(tmp_path / "out.avi") == list(range(1, 6 if start_s == 0.1 else 5))


@pytest.mark.parametrize("start_s, first", [(0.13, 4), (0.1, 3)])
def test_a_resumed_avi_keeps_its_first_frame_in_its_slot(start_s: float, first: int, tmp_path: Path) -> None:
    """A resumed run copies the interrupted one's frames: the first went to slot 0 again (0, 2, 3...); and
    cut at 0.1 (frames half a slot off it), the copied frames were moved a slot back (moved_by rounded the
    half to even, the writer's slots round it up)."""
    _cut_avi(tmp_path / "out.avi", start_s, range(first, first + 3))
    with FrameWriter(tmp_path / "again.avi", width=64, height=48, time_base=Fraction(1, 12800), fps=Fraction(25),
                     window=(start_s, None)) as writer:
        assert writer.resume_from(tmp_path / "out.avi", first_s=0.04 * first)[0] == 3
        writer.write(clip_frame(first + 3, 64, 48), pts=512 * (first + 3))
    assert _avi_slots(tmp_path / "again.avi") == [1, 2, 3, 4]


@pytest.mark.parametrize("encoder, pix_fmt", [("mpeg4", "yuv420p"), ("libvpx", "yuv420p"), ("libvpx-vp9", "yuv420p"),
                                              ("libsvtav1", "yuv420p"), ("libx264", "yuv444p")])
def test_an_odd_size_stays_420_where_the_encoder_writes_it(encoder: str, pix_fmt: str, tmp_path: Path) -> None:
    """An odd-sized picture was always 4:4:4, as x264 needs: MPEG-4, VP8 and SVT-AV1, which take only 4:2:0,
    were refused ("cannot encode 63x47 yuv444p ... try --encoder libx264") though they write odd 4:2:0, and VP9
    wrote 4:4:4 (profile 1), which browsers do not play. The encoder is asked; x264 still gets 4:4:4."""
    frames = [clip_frame(i, 63, 47) for i in range(3)]
    with FrameWriter(tmp_path / "out.mkv", width=63, height=47, time_base=Fraction(1, 25), encoder=encoder,
                     crf=4) as writer:
        for i, frame in enumerate(frames):
            writer.write(frame, pts=i)
    assert writer.pix_fmt == pix_fmt
    with av.open(str(tmp_path / "out.mkv")) as c:
        decoded = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        assert c.streams.video[0].codec_context.pix_fmt == pix_fmt
    assert [d.shape for d in decoded] == [(47, 63, 3)] * 3
    assert min(psnr(d, f) for d, f in zip(decoded, frames)) > 24  # 25.7-26.5 dB: 4:2:0 on the saturated square, as at even sizes


@pytest.mark.parametrize("suffix, kept", [(".avi", False), (".ts", False), (".mkv", True), (".mp4", True)])
def test_a_rotation_the_container_cannot_hold_is_said(suffix: str, kept: bool, tmp_path: Path) -> None:
    """A phone's portrait clip into AVI or MPEG-TS lost its 90° turn without a word (it plays on its side);
    MP4 and MKV keep it, and say nothing."""
    with FrameWriter(tmp_path / f"out{suffix}", width=64, height=48, time_base=Fraction(1, 25), rotation=90) as writer:
        writer.write(clip_frame(0, 64, 48), pts=0)
    with av.open(str(tmp_path / f"out{suffix}")) as c:
        assert next(c.decode(video=0)).rotation == (90 if kept else 0)
    assert writer.skipped == ([] if kept else [f"the picture's rotation (90°): {suffix} holds none, so players show "
                                               "the picture as stored; .mp4, .mkv, .mov and .webm keep it"])


def test_an_encoder_that_cannot_open_says_ffmpegs_reason(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """An encoder FFmpeg would not open was said as "Invalid argument: 'avcodec_open2("h261", {})' returned 22"
    (NVENC without its driver: "Operation not permitted", its options listed): FFmpeg's own reason is said
    instead, nothing printed besides, and FFmpeg's log left off as PyAV keeps it."""
    with pytest.raises(EncodeError) as refused:
        FrameWriter(tmp_path / "out.avi", width=64, height=48, time_base=Fraction(1, 25), encoder="h261")
    assert str(refused.value) == ("cannot open encoder h261 for 64x48 yuv420p: The specified picture size of 64x48 is "
                                  "not valid for the H.261 codec. Valid sizes are 176x144, 352x288; try --encoder libx264")
    assert capfd.readouterr() == ("", "") and av.logging.get_level() is None


def test_nvenc_takes_the_preset_and_crf_0_as_its_best() -> None:
    """NVENC ran at p4 whatever --preset said, and the run took it as applied (no "has no speed presets"
    warning); --crf 0 set cq 0, NVENC's "automatic", not its best. (Not measured on NVENC: no machine here has
    one; the options are FFmpeg's documented ones.)"""
    assert encoder_options("h264_nvenc", set(), crf=0, preset="veryfast") == {"preset": "p4", "rc": "vbr", "cq": "1"}
    assert [encoder_options("hevc_nvenc", set(), crf=23, preset=p)["preset"] for p in ("ultrafast", "fast", "slow",
                                                                                        "veryslow")] == ["p1", "p5", "p6", "p7"]


@pytest.mark.parametrize("colour_range", [1, 2])
def test_vp9_in_mp4_keeps_the_colour_range(colour_range: int, tmp_path: Path) -> None:
    """VP9 in MP4 states its range twice, in the bitstream and in the vpcC box's full-range flag: both say the
    source's, and a mid grey comes back as itself (checked in session 27, kept as a guard)."""
    grey = np.full((48, 64, 3), 128, np.uint8)
    with FrameWriter(tmp_path / "out.mp4", width=64, height=48, time_base=Fraction(1, 25), encoder="libvpx-vp9",
                     colour=ColourTags(colorspace=1, color_range=colour_range, color_primaries=1, color_trc=1)) as w:
        w.write(grey, pts=0)
    data = (tmp_path / "out.mp4").read_bytes()
    vpcc = data[data.index(b"vpcC") + 4:]
    assert vpcc[6] & 1 == (colour_range == 2)  # after version/flags, profile, level: depth, chroma, full range
    with av.open(str(tmp_path / "out.mp4")) as c:
        frame = next(c.decode(video=0))
        assert c.streams.video[0].codec_context.color_range == int(frame.color_range) == colour_range
        assert np.abs(frame.to_ndarray(format="rgb24").astype(int) - 128).max() <= 2


def test_an_unknown_encoder_name_is_told_the_one_meant() -> None:
    """FFmpeg's encoder names are lower case and exact: LIBX264 or libvpx_vp9 was told only "use auto, libx264,
    h264_nvenc or another FFmpeg video encoder"."""
    for typed, meant in (("LIBX264", "libx264"), ("libvpx_vp9", "libvpx-vp9"), ("hevc_nvec", "hevc_nvenc")):
        with pytest.raises(EncodeError) as refused:
            choose_encoder(typed)
        assert str(refused.value) == (f"unknown encoder {typed!r} (did you mean {meant}?): use auto, libx264, "
                                      "h264_nvenc or another FFmpeg video encoder")
    with pytest.raises(EncodeError, match=r"^unknown encoder 'nope': use auto"):
        choose_encoder("nope")
