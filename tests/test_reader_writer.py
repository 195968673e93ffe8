"""FrameReader / FrameWriter: metadata, exact timing, rotation, colour tags, audio remux, bad inputs."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch

from videodeblur.errors import (ConfigError, DecodeError, EncodeError, FrameError, InputNotFoundError, OutputError,
                                UnreadableInputError)
from videodeblur.video import FrameReader, FrameWriter, choose_encoder, probe
from videodeblur.video.encoders import encodable_pix_fmt, encoder_options

from _clips_video import (audio_only, with_attachments, with_chapters, with_telemetry, audio_with_cover, avi_with_empty_slots, decode, mux_video_packets,
                          spliced_sizes, truncated_copy, ts_clip, unindexed_copy, with_hidden_lead_in,
                          with_thumbnail_first, with_subtitles, with_two_audio_tracks, zeroed_copy)
from conftest import needs_pyav18, clip_frame, clip_pts_seconds, psnr


def _copy(src: Path, dst: Path, **kwargs) -> tuple[FrameReader, FrameWriter]:
    with FrameReader(src) as reader, FrameWriter.like(dst, reader.info, **kwargs) as writer:
        for frame in reader:
            writer.write(frame.image, pts=frame.pts)
    return reader, writer


def test_probe_describes_the_clip(make_clip) -> None:
    info = probe(make_clip("a.mp4", width=96, height=64, frames=12, fps=25, audio=True, rotation=90))
    assert (info.width, info.height, info.frames, info.fps) == (96, 64, 12, Fraction(25))
    assert info.frames_exact and info.rotation == 90 and info.has_audio and info.audio_codec == "aac"
    assert (info.pix_fmt, info.bit_depth, info.chroma_subsampling) == ("yuv420p", 8, (2, 2))


def test_reader_yields_rgb_frames_with_exact_pts(make_clip) -> None:
    path = make_clip("a.mp4", width=64, height=48, frames=6)
    with FrameReader(path) as reader:
        frames = list(reader)
    assert [f.index for f in frames] == list(range(6))
    assert [f.pts * f.time_base for f in frames] == [Fraction(t).limit_denominator(1000) for t in clip_pts_seconds(6)]
    assert frames[0].image.shape == (48, 64, 3) and frames[0].image.dtype == np.uint8
    assert psnr(frames[3].image, clip_frame(3, 64, 48)) > 24


def test_i420_layout_gives_planes(make_clip) -> None:
    with FrameReader(make_clip("a.mp4", width=64, height=48, frames=2), layout="i420") as reader:
        assert next(iter(reader)).image.shape == (72, 64)


def test_round_trip_keeps_count_timing_size_rotation_and_audio(make_clip, tmp_path: Path) -> None:
    src = make_clip("a.mp4", width=96, height=64, frames=15, audio=True, rotation=270)
    reader, writer = _copy(src, tmp_path / "out.mp4")
    assert reader.info.mirror_matrix is None  # a turn alone: written as its angle
    a, b = decode(src), decode(tmp_path / "out.mp4")
    assert len(b.frames) == len(a.frames) == 15 == writer.frames_written
    assert b.pts_seconds == a.pts_seconds
    assert (b.width, b.height, b.rotation % 360, b.average_rate) == (96, 64, 270, Fraction(25))
    assert b.rotation == a.rotation
    assert b.audio == a.audio and writer.audio_packets == len(a.audio) > 0  # remuxed bit for bit
    assert min(psnr(x, y) for x, y in zip(a.frames, b.frames)) > 35


@pytest.mark.parametrize("ext", ["mp4", "mkv"])
@pytest.mark.parametrize("matrix", [(-65536, 0, 0, 0, 65536, 0, 0, 0, 1 << 30),  # mirrored left to right
                                    (0, 65536, 0, 65536, 0, 0, 0, 0, 1 << 30)],  # a quarter turn and a flip
                         ids=["hflip", "turn-and-flip"])
def test_a_mirrored_clip_stays_mirrored(ext: str, matrix: tuple[int, ...], tmp_path: Path) -> None:
    """A flip has no angle: a horizontal mirror reads as 180°, and was written back as that turn (the
    picture upside down); a turn with a flip lost the flip. The source's display matrix is kept."""
    import struct

    src = tmp_path / "flipped.mp4"
    with av.open(str(src), "w") as c:
        stream = c.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.set_display_matrix(list(matrix))
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(clip_frame(i, 64, 48), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            c.mux(stream.encode(frame))
        c.mux(stream.encode(None))
    reader, _ = _copy(src, tmp_path / f"out.{ext}")
    assert reader.info.mirror_matrix == matrix
    with av.open(str(tmp_path / f"out.{ext}")) as c:
        first = next(c.decode(video=0))
        (side,) = [d for d in first.side_data if "DISPLAYMATRIX" in str(d.type).upper()]
        assert struct.unpack("<9i", bytes(side)) == matrix


@pytest.mark.parametrize("ext", ["mkv", "mp4"])
def test_audio_tracks_keep_their_titles_and_which_is_the_default(ext: str, make_clip, tmp_path: Path) -> None:
    """The second of two tracks marked default lost the mark (MKV: no default track; MP4: the mark
    on the first), and titles were lost in MP4, where they read back as "name"."""
    src = with_two_audio_tracks(make_clip("a.mp4", width=64, height=48, frames=10, audio=True), tmp_path / "two.mkv",
                                titles=("Commentary", "Main"), default=1)
    _copy(src, tmp_path / f"out.{ext}")
    with av.open(str(tmp_path / f"out.{ext}")) as c:
        audio = list(c.streams.audio)
        assert [bool(a.disposition & av.stream.Disposition.default) for a in audio] == [False, True]
        assert c.streams.video[0].disposition & av.stream.Disposition.default  # the picture too (MKV: it was not)
        assert [a.metadata.get("title", a.metadata.get("name")) for a in audio] == ["Commentary", "Main"]
    if ext == "mp4":  # and from an MP4 again, whose titles read back as "name"
        _copy(tmp_path / "out.mp4", tmp_path / "again.mp4")
        with av.open(str(tmp_path / "again.mp4")) as c:
            assert [a.metadata.get("name") for a in c.streams.audio] == ["Commentary", "Main"]


def test_the_video_is_found_behind_a_thumbnail_stream(make_clip, tmp_path: Path) -> None:
    src = with_thumbnail_first(make_clip("a.mp4", width=64, height=48, frames=7), tmp_path / "thumb.mkv")
    reader, _ = _copy(src, tmp_path / "out.mp4")
    assert (reader.info.width, reader.info.height, reader.frames_decoded) == (64, 48, 7)
    out = decode(tmp_path / "out.mp4")
    assert len(out.frames) == 7 and (out.width, out.height) == (64, 48)


def test_every_audio_track_is_copied_with_its_language(make_clip, tmp_path: Path) -> None:
    src = with_two_audio_tracks(make_clip("a.mp4", width=64, height=48, frames=10, audio=True), tmp_path / "two.mkv")
    _, writer = _copy(src, tmp_path / "out.mkv")
    with av.open(str(src)) as c:
        packets_per_track = sum(1 for p in c.demux(c.streams.audio[0]) if p.dts is not None)
    assert packets_per_track > 0 and writer.audio_packets == 2 * packets_per_track
    with av.open(str(tmp_path / "out.mkv")) as c:
        assert [s.metadata.get("language") for s in c.streams.audio] == ["eng", "fra"]
        per_track = [p.stream.index for p in c.demux(*c.streams.audio) if p.dts is not None]
    assert [per_track.count(s) for s in sorted(set(per_track))] == [packets_per_track] * 2


@pytest.mark.parametrize("layout", ["rgb", "i420"])
def test_a_size_change_mid_stream_is_scaled_to_the_first_size(layout: str, tmp_path: Path) -> None:
    """One output stream has one size: frames after a splice to another size are scaled back to the
    first frame's size (as the ffmpeg tool does), counted, and still show their own picture."""
    src = spliced_sizes(tmp_path / "spliced.ts", [(64, 48), (128, 96)], frames_each=6)
    with FrameReader(src, layout=layout) as reader:
        frames = [f.image for f in reader]
    assert len(frames) == 12 and reader.frames_resized == 6 and reader.first_resize == "128x96 at frame 6"
    rows = 72 if layout == "i420" else 48
    assert all(f.shape[:2] == (rows, 64) for f in frames)
    if layout == "rgb":
        expected = cv2.resize(clip_frame(9, 128, 96), (64, 48), interpolation=cv2.INTER_AREA)
        assert psnr(frames[9], expected) > 20
        assert psnr(frames[9], expected) > psnr(frames[9], clip_frame(9, 64, 48)) + 3  # not the old size's picture


def test_a_frame_of_another_size_is_refused_not_cropped(tmp_path: Path) -> None:
    with FrameWriter(tmp_path / "out.mp4", width=64, height=48, time_base=Fraction(1, 25)) as writer:
        writer.write(np.zeros((48, 64, 3), np.uint8), pts=0)
        with pytest.raises(EncodeError, match="frame of 128x96 does not fit the 64x48 stream"):
            writer.write(np.zeros((96, 128, 3), np.uint8), pts=1)
    assert len(decode(tmp_path / "out.mp4").frames) == 1


def test_an_output_deleted_while_it_is_written_is_an_error_not_a_success(tmp_path: Path) -> None:
    """Its folder removed mid-run, the frames went into a file no folder lists: the run said
    "wrote gone/o.mp4" and exited 0."""
    import shutil

    folder = tmp_path / "gone"
    folder.mkdir()
    writer = FrameWriter(folder / "o.mp4", width=64, height=48, time_base=Fraction(1, 25))
    for i in range(3):
        writer.write(np.zeros((48, 64, 3), np.uint8), pts=i)
    shutil.rmtree(folder)
    with pytest.raises(OutputError, match=r"o\.mp4 was deleted \(or its folder removed\) while it was written: "
                                          r"its 3 frames are lost"):
        writer.close()


def test_a_stream_url_whose_protocol_ffmpeg_lacks_says_so() -> None:
    """srt:// without libsrt (PyAV's wheel): "is a server listening there?" sent users after a server."""
    with pytest.raises(OutputError) as refused:
        FrameWriter("srt://127.0.0.1:9600", width=64, height=48, time_base=Fraction(1, 25), fps=25)
    if "Protocol not found" not in repr(refused.value.__cause__):
        pytest.skip("this FFmpeg has SRT: nothing listens on the port, which is the other message")
    assert str(refused.value).startswith("cannot send to srt://127.0.0.1:9600: this FFmpeg build (PyAV's) has no "
                                         "srt:// protocol; use udp:// or tcp://")


def test_the_files_tags_are_kept(make_clip, tmp_path: Path) -> None:
    """A phone video's creation time and location (what photo libraries sort and map by), its title
    and the video's language survive, as with the ffmpeg tool's default; the muxer's own tags are its own."""
    src = make_clip("a.mp4", width=64, height=48, frames=4)
    tagged = tmp_path / "tagged.mp4"
    tags = {"title": "Holiday", "creation_time": "2024-07-01T10:00:00.000000Z", "location": "+48.8584+002.2945/",
            "comment": "from a phone"}
    with av.open(str(src)) as i, av.open(str(tagged), "w") as o:
        o.metadata.update({**tags, "encoder": "SomePhone 1.0"})
        video = o.add_stream_from_template(i.streams.video[0])
        video.metadata["language"] = "fra"
        mux_video_packets(i, o, video)
    _copy(tagged, tmp_path / "out.mp4")
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert tags.items() <= dict(c.metadata).items()
        assert c.metadata["encoder"] != "SomePhone 1.0"  # written by this muxer, not copied
        assert c.streams.video[0].metadata.get("language") == "fra"


def test_subtitles_are_copied_where_the_container_holds_them(make_clip, tmp_path: Path) -> None:
    src = with_subtitles(make_clip("a.mp4", width=64, height=48, frames=10, audio=True), tmp_path / "subs.mkv")
    reader, writer = _copy(src, tmp_path / "out.mkv")
    assert reader.info.has_subtitles and reader.info.fps == 25 and reader.frames_lost == 0  # not the 12800 "average"
    assert writer.subtitle_packets == 2 and writer.audio_packets > 0 and writer.skipped == []
    with av.open(str(tmp_path / "out.mkv")) as c:
        (track,) = c.streams.subtitles
        assert track.metadata.get("language") == "eng"
        assert [bytes(p) for p in c.demux(track) if p.dts is not None] == [b"Hello", b"World"]
    _, writer = _copy(src, tmp_path / "out.mp4")  # MP4 cannot hold SubRip: left out and said, the rest written
    assert writer.subtitle_packets == 0 and writer.audio_packets > 0
    assert writer.skipped == ["srt subtitles (stream 2): .mp4 files cannot hold them; .mkv can"]
    assert len(decode(tmp_path / "out.mp4").frames) == 10


def test_audio_running_past_the_video_is_not_loss_but_a_cut_file_is(make_clip, tmp_path: Path) -> None:
    """MKV declares one duration for the whole file. Audio or subtitles that run on past the last
    frame make it longer than the video, which is not loss; a file cut short loses both, which is."""
    whole = make_clip("b.mkv", width=64, height=48, frames=50, audio=True)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.6)])
    longer = with_subtitles(make_clip("c.mp4", width=64, height=48, frames=5, audio=True), tmp_path / "subs.mkv")
    lost = {}
    for path in (whole, cut, longer):
        with FrameReader(path) as reader:
            decoded = sum(1 for _ in reader)
            lost[path.name] = (decoded, reader.frames_lost)
    assert lost["b.mkv"] == (50, 0) and lost["subs.mkv"] == (5, 0)
    decoded, missing = lost["cut.mkv"]
    assert 0 < decoded < 50 and 50 - decoded <= missing <= 51 - decoded  # the header's 2.03 s hold 50.7 frames


def test_variable_frame_rate_timing_survives(make_clip, tmp_path: Path) -> None:
    src = make_clip("vfr.mp4", width=64, height=48, frames=10, vfr=True)
    _copy(src, tmp_path / "out.mp4")
    out = decode(tmp_path / "out.mp4").pts_seconds
    assert [float(t) for t in out] == pytest.approx(clip_pts_seconds(10, vfr=True), abs=1e-9)
    assert out == decode(src).pts_seconds


def _starts(path: Path) -> tuple[Fraction, Fraction]:
    """The first video frame's and the first audio packet's times, in seconds."""
    got = decode(path)
    with av.open(str(path)) as c:
        audio = min(p.pts * p.time_base for p in c.demux(c.streams.audio[0]) if p.pts is not None)
    return got.pts_seconds[0], audio


@pytest.mark.parametrize("ext", ["mp4", "mkv"])
def test_a_source_that_does_not_start_at_0_is_written_from_0(ext: str, tmp_path: Path) -> None:
    """An MPEG-TS 10 h in made a 10-hour MP4 (an empty edit of 36000 s) and a 36002 s MKV; one whose
    clock wraps at 2^33 mid-clip, read as times below 0, gave an MP4 whose edit list hid the part
    before the wrap. Both are moved back by the earliest start (the audio's, 0.02 s before the
    picture), as the ffmpeg tool does: the output starts at 0, every frame plays, the sound keeps its
    lead and the frames their spacing."""
    for start_s in (36000.0, 2 ** 33 / 90000 - 0.5):
        src = ts_clip(tmp_path / f"{start_s}.ts", start_s=start_s)
        out = tmp_path / f"{start_s}.{ext}"
        _copy(src, out)
        video_s, audio_s = _starts(src)
        source, got = decode(src).pts_seconds, decode(out).pts_seconds
        assert len(got) == len(source) == 25, start_s
        # as exact as the output's clock (Matroska's counts milliseconds)
        assert [float(t) for t in got] == pytest.approx([float(t - audio_s) for t in source], abs=0.001), start_s
        assert [b - a for a, b in zip(got, got[1:])] == [Fraction(1, 25)] * 24
        assert _starts(out) == (got[0], 0) and float(got[0]) == pytest.approx(float(video_s - audio_s), abs=0.001)
        with av.open(str(src)) as a, av.open(str(out)) as b:
            assert b.duration == pytest.approx(a.duration, abs=2000), start_s


def test_a_part_of_a_source_read_as_times_below_0_keeps_its_first_frames_and_sound(tmp_path: Path) -> None:
    """A clip whose clock wraps, read from -0.5 s, with keyframes 0.4 s apart; its part from -0.3 s:
    the reader and the sound's reader sought to 0 at the lowest, which left out the frames before
    the keyframe at -0.1 s and the sound before 0 (the audio came 0.3 s after the picture)."""
    src = ts_clip(tmp_path / "wrap.ts", start_s=2 ** 33 / 90000 - 0.5, gop=10)
    out = tmp_path / "part.mkv"
    with FrameReader(src) as reader:
        window = reader.trim(0.2, 0.4)
        assert window == pytest.approx((-0.3, 0.1))
        with FrameWriter.like(out, reader.info, window=window) as writer:
            for frame in reader:
                writer.write(frame.image, pts=frame.pts)
    assert decode(out).pts_seconds == [Fraction(4 * i, 100) for i in range(10)]
    with av.open(str(src)) as c:  # the sound that starts inside the part, moved back by its start
        inside = [p.pts * p.time_base + Fraction(3, 10) for p in c.demux(audio=0)
                  if p.pts is not None and -0.3 <= p.pts * p.time_base < 0.1]
    with av.open(str(out)) as c:
        copied = [p.pts * p.time_base for p in c.demux(audio=0) if p.pts is not None]
    assert len(copied) == len(inside) == 16 and copied[0] == round(inside[0], 3)


def _paused_clip(path: Path, *, pause_s: float = 30.0) -> Path:
    """Ten frames 40 ms apart at a 1/1000 time base, with a pause of ``pause_s`` after the fifth (a
    screen recording, a security camera): an average rate of 0.33 fps."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.codec_context.time_base = s.time_base = Fraction(1, 1000)
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(clip_frame(i, 64, 48), format="rgb24")
            frame.pts, frame.time_base = round((0.04 * i + (pause_s if i >= 5 else 0)) * 1000), Fraction(1, 1000)
            c.mux(s.encode(frame))
        c.mux(s.encode(None))
    return path


@pytest.mark.parametrize("ext", ["mp4", "mkv", "mov"])
def test_the_last_frame_after_a_long_pause_lasts_as_the_sources(ext: str, tmp_path: Path) -> None:
    """No frame carried its duration, so the muxer made the last one last 1 / the average rate:
    3 s more than the source's 30.4 s. Each now lasts until the next one, the last as long as the
    one before it, or as long as it is told."""
    src = _paused_clip(tmp_path / "paused.mp4")
    out = tmp_path / f"out.{ext}"
    _copy(src, out)
    with av.open(str(src)) as a, av.open(str(out)) as b:
        assert b.duration == a.duration == 30_400_000
    assert decode(out).pts_seconds == decode(src).pts_seconds
    told = tmp_path / f"told.{ext}"
    with FrameReader(src) as reader, FrameWriter.like(told, reader.info) as writer:
        for frame in reader:
            last = frame.index == 9
            writer.write(frame.image, pts=frame.pts, duration=round(0.5 / frame.time_base) if last else None)
    with av.open(str(told)) as c:
        assert c.duration == 30_860_000  # the last frame, at 30.36 s, for the 0.5 s it was told


@pytest.mark.parametrize("ext", ["mkv", "ts", "mp4"])
def test_sound_an_mp4_edit_list_hides_stays_hidden(ext: str, tmp_path: Path) -> None:
    """A cut made by copying keeps 0.5 s of audio before the picture, which its edit list hides.
    Matroska and MPEG-TS have no edit list: those packets played, and the picture came 0.52 s after
    the sound. They are left out there (a packet that reaches the picture is kept: ~10 ms at most);
    an MP4 hides them again, as the source did, and keeps them all."""
    src = with_hidden_lead_in(tmp_path / "cut.mp4")
    out = tmp_path / f"out.{ext}"
    _copy(src, out)
    video_s, audio_s = _starts(out)
    with av.open(str(src)) as c:
        source_audio = [bytes(p) for p in c.demux(audio=0) if p.size]
    with av.open(str(out)) as c:
        copied = [bytes(p) for p in c.demux(audio=0) if p.size]
    if ext == "mp4":
        assert (video_s, audio_s) == (0, -Fraction(25024, 48000)) and copied == source_audio
    else:  # the 24 packets that end before the picture are left out (MPEG-TS frames AAC in ADTS headers)
        assert 0 <= video_s - audio_s < Fraction(1024, 48000)
        assert len(copied) == len(source_audio) - 24 and (ext == "ts" or copied == source_audio[24:])


def test_colour_tags_are_copied(tmp_path: Path) -> None:
    src = tmp_path / "bt709.mp4"
    with av.open(str(src), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.codec_context.colorspace = s.codec_context.color_primaries = s.codec_context.color_trc = 1
        s.codec_context.color_range = 2
        for i in range(3):
            f = av.VideoFrame.from_ndarray(clip_frame(i, 64, 48), format="rgb24").reformat(
                format="yuv420p", dst_colorspace="ITU709", dst_color_range=2)
            f.pts = i
            c.mux(s.encode(f))
        c.mux(s.encode(None))
    _copy(src, tmp_path / "out.mp4")
    a, b = decode(src), decode(tmp_path / "out.mp4")
    assert a.colour == (1, 2, 1, 1) and b.colour == a.colour
    # Same matrix and range both ways: only generation loss (~34 dB, as for untagged input); a
    # BT.601/709 mix-up would shift saturated colours by several code values.
    assert min(psnr(x, y) for x, y in zip(a.frames, b.frames)) > 32
    assert np.abs(a.frames[0].astype(float).mean((0, 1)) - b.frames[0].mean((0, 1))).max() < 2.5


def test_ten_bit_input_is_read_as_eight_bit(make_clip, tmp_path: Path) -> None:
    src = make_clip("ten.mp4", width=64, height=48, frames=3, pix_fmt="yuv420p10le")
    with FrameReader(src) as reader:
        assert reader.info.bit_depth == 10
        frames = list(reader)
    assert frames[0].image.dtype == np.uint8 and psnr(frames[1].image, clip_frame(1, 64, 48)) > 24
    _copy(src, tmp_path / "out.mp4")
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p"


def test_odd_sizes_are_written_as_444(make_clip, tmp_path: Path) -> None:
    src = make_clip("odd.mp4", width=65, height=47, frames=3)
    _, writer = _copy(src, tmp_path / "out.mp4")
    b = decode(tmp_path / "out.mp4")
    assert writer.pix_fmt == "yuv444p" and (b.width, b.height) == (65, 47) and len(b.frames) == 3


def test_chroma_layout_follows_the_source(make_clip, tmp_path: Path) -> None:
    """4:2:2 (a pro camera's) stays 4:2:2, 10-bit 4:2:2 stays 10-bit 4:2:2; NTSC DV's 4:1:1 becomes
    4:2:0 (as many chroma samples, in the layout every player decodes), not 4:4:4."""
    from _clips_video import _flat_clip

    for pix_fmt, deep, expected in (("yuv422p", False, "yuv422p"), ("yuv422p10le", True, "yuv422p10le")):
        src = make_clip(f"{pix_fmt}.mp4", width=64, height=48, frames=2, pix_fmt=pix_fmt)
        _, writer = _copy(src, tmp_path / f"out_{pix_fmt}.mkv", deep=deep)
        assert writer.pix_fmt == expected, pix_fmt
    dv = _flat_clip(tmp_path / "tape.dv", codec="dvvideo", frames=2, size=(720, 480),
                    setup=lambda s: setattr(s, "pix_fmt", "yuv411p"))
    assert probe(dv).chroma_subsampling == (4, 1)
    _, writer = _copy(dv, tmp_path / "tape.mp4")
    assert writer.pix_fmt == "yuv420p" and len(decode(tmp_path / "tape.mp4").frames) == 2


def test_410_source_is_written_420_not_444(tmp_path: Path) -> None:
    """SVQ1's (and Indeo's) 4:1:0 has a quarter of 4:2:0's chroma: 4:2:0 keeps all of it and plays
    everywhere; it was written 4:4:4, with the warning that browsers and phones do not play that."""
    from _clips_video import _flat_clip

    src = _flat_clip(tmp_path / "svq1.mov", codec="svq1", frames=2, size=(64, 48),
                     setup=lambda s: setattr(s, "pix_fmt", "yuv410p"))
    assert probe(src).chroma_subsampling == (4, 4)
    _, writer = _copy(src, tmp_path / "out.mp4")
    assert writer.pix_fmt == "yuv420p" and len(decode(tmp_path / "out.mp4").frames) == 2


def test_truncated_input_reads_what_decodes_and_counts_the_loss(make_clip, tmp_path: Path) -> None:
    cut = truncated_copy(make_clip("a.mp4", width=64, height=48, frames=40), tmp_path / "cut.mp4")
    with FrameReader(cut) as reader:
        n = sum(1 for _ in reader)
        assert 0 < n < 40 and reader.frames_decoded == n and reader.frames_lost == 40 - n


def test_avi_dropped_frame_slots_are_timing_not_loss(tmp_path: Path) -> None:
    pts = [0, 3, 4, 9, 12, 20]
    avi = avi_with_empty_slots(tmp_path / "gaps.avi", pts)
    with FrameReader(avi) as reader:
        assert reader.info.frames == 21  # the header counts the empty slots
        got = [f.pts for f in reader]
        assert got == pts and reader.frames_decoded == 6 and reader.frames_lost == 0
    # cut short, the same kind of file still reports what it lost
    cut = tmp_path / "cut.avi"
    data = avi.read_bytes()
    cut.write_bytes(data[:data.find(b"idx1") - 2 * 620])  # drop the index and the last two frames
    with FrameReader(cut) as reader:
        n = sum(1 for _ in reader)
        assert n == 4 and reader.frames_lost > 0 and reader.frames_lost_estimated
        # about what the cut held (2 frames), not the 17 slots the header still counts: 4 frames read
        # over 10 slots, the 11 slots left at that density
        assert reader.frames_lost == 4
    with FrameReader(avi) as reader:
        list(reader)
        assert not reader.frames_lost_estimated


def test_close_mid_stream_ends_iteration(make_clip) -> None:
    reader = FrameReader(make_clip("a.mp4", width=64, height=48, frames=10))
    it = iter(reader)
    next(it)
    reader.close()
    assert list(it) == []


def test_rtsp_takes_the_sources_aac_as_it_is(make_clip) -> None:
    """The sound's probe had RTSP's flaw too: "rtsp files cannot hold aac", re-encoded for nothing."""
    from videodeblur.video.passthrough import _takes

    with av.open(str(make_clip("a.mp4", width=64, height=48, frames=2, audio=True))) as c:
        assert _takes("rtsp", c.streams.audio[0])


def test_auto_encoder_falls_back_to_libx264() -> None:
    assert choose_encoder("auto") in ("h264_nvenc", "libx264")
    assert choose_encoder("auto", container="webm") == "libvpx-vp9"
    assert choose_encoder("auto", container="mpegts") in ("h264_nvenc", "libx264")
    # RTSP writes its header only to a server: probed as MPEG-TS (it got MPEG-4 Part 2, which failed)
    assert choose_encoder("auto", container="rtsp") in ("h264_nvenc", "libx264")
    if not torch.cuda.is_available():
        assert choose_encoder("auto") == "libx264"
    with pytest.raises(EncodeError, match="unknown encoder 'nope'"):
        choose_encoder("nope")
    with pytest.raises(EncodeError, match="not a video encoder"):
        choose_encoder("aac")


@pytest.mark.parametrize("case, error, match", [
    ("missing", InputNotFoundError, "input not found"),
    ("text", UnreadableInputError, "not a video"),
    ("folder", UnreadableInputError, "is a folder"),
    ("audio_only", UnreadableInputError, "no video stream"),
    ("zero_frames", DecodeError, "no frame could be decoded"),
    ("no_index", UnreadableInputError, "cut short before its index"),
    ("cover_only", UnreadableInputError, r"no video stream \(it holds: audio, a cover picture\)"),
    ("bad_tags", None, ""),
])
def test_bad_inputs_are_typed_one_line_errors(case: str, error: type, match: str, make_clip, tmp_path: Path) -> None:
    path = {
        "missing": lambda: tmp_path / "nope.mp4",
        "text": lambda: _write(tmp_path / "notes.mp4", "hello\n" * 50),
        "folder": lambda: tmp_path,
        "audio_only": lambda: audio_only(tmp_path / "tone.mp4"),
        "zero_frames": lambda: zeroed_copy(make_clip("a.mp4", width=64, height=48, frames=4), tmp_path / "z.mp4"),
        "no_index": lambda: unindexed_copy(make_clip("a.mp4", width=64, height=48, frames=8), tmp_path / "cut.mp4"),
        "cover_only": lambda: audio_with_cover(tmp_path / "song.mp3"),
        "bad_tags": lambda: _with_latin1_title(make_clip("a.mp4", width=64, height=48, frames=4)),
    }[case]()
    if error is None:  # not bad at all: it must read
        assert len(list(FrameReader(path))) == 4
        return
    with pytest.raises(error, match=match) as caught:
        FrameReader(path)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def _with_latin1_title(src: Path) -> Path:
    """A copy of ``src`` whose title tag is Latin-1, not UTF-8 (old Windows tools write such tags):
    PyAV's default strict decoding of tags would refuse to open it."""
    dst = src.with_name("latin1.mp4")
    with av.open(str(src)) as i, av.open(str(dst), "w") as o:
        o.metadata["title"] = "Cafe" + "X" * 8
        mux_video_packets(i, o, o.add_stream_from_template(i.streams.video[0]))
    data = dst.read_bytes()
    assert data.count(b"CafeXXXXXXXX") == 1
    dst.write_bytes(data.replace(b"CafeXXXXXXXX", "Café crème".encode("latin-1") + b"XX"))
    return dst


@pytest.mark.parametrize("where, match", [("missing_dir/out.mp4", "does not exist"), (".", "is a folder"),
                                          ("out.unknownext", "video extension"), ("out.gif", "use .mp4, .mkv, .mov or .webm")])
def test_bad_outputs_are_output_errors(where: str, match: str, tmp_path: Path) -> None:
    with pytest.raises(OutputError, match=match):
        FrameWriter(tmp_path / where, width=64, height=48, time_base=Fraction(1, 25))


@pytest.mark.parametrize("name, encoder, fits", [("out.mp4", "libvpx", r"\.mkv or \.webm"),
                                                 ("out.mov", "libvpx-vp9", r"\.mp4, \.mkv or \.webm")])
def test_an_encoder_the_container_cannot_hold_names_the_ones_that_can(name: str, encoder: str, fits: str,
                                                                      tmp_path: Path) -> None:
    """Not a fixed list (which told a .mov user to use .mov): the containers asked whether they hold it."""
    with pytest.raises(OutputError, match=f"{encoder} goes in {fits}"):
        FrameWriter(tmp_path / name, width=64, height=48, time_base=Fraction(1, 25), encoder=encoder)


def test_what_a_writer_is_given_is_checked_at_once(make_clip, tmp_path: Path) -> None:
    """A float frame got PyAV's own error; a repeated pts was refused by the muxer only at close,
    after the frames before it were written; a reader given another layout read I420 without a word."""
    with FrameWriter(tmp_path / "out.mp4", width=64, height=48, time_base=Fraction(1, 25)) as writer:
        with pytest.raises(FrameError, match="uint8"):
            writer.write(np.zeros((48, 64, 3), np.float32), pts=0)
        writer.write(np.zeros((48, 64, 3), np.uint8), pts=0)
        with pytest.raises(FrameError, match="pts 0 is not after"):
            writer.write(np.zeros((48, 64, 3), np.uint8), pts=0)
        writer.write(np.zeros((48, 64, 3), np.uint8), pts=1)
    assert len(decode(tmp_path / "out.mp4").frames) == 2
    with pytest.raises(ConfigError, match="layout"):
        FrameReader(make_clip("a.mp4", width=64, height=48, frames=2), layout="bgr")  # type: ignore[arg-type]


def test_an_encoder_of_deeper_formats_only_gets_one(tmp_path: Path) -> None:
    """ProRes takes only 10-bit 4:2:2 and 4:4:4: an 8-bit 4:2:0 source was refused ("cannot encode");
    it is converted as the ffmpeg tool converts it."""
    with FrameWriter(tmp_path / "out.mov", width=64, height=48, time_base=Fraction(1, 25), encoder="prores_ks") as writer:
        for i in range(3):
            writer.write(np.full((48, 64, 3), 40 * i, np.uint8), pts=i)
    assert writer.pix_fmt == "yuv422p10le"
    with av.open(str(tmp_path / "out.mov")) as container:
        assert container.streams.video[0].codec_context.name == "prores"
        assert len([f for f in container.decode(video=0)]) == 3


def test_an_output_under_a_file_says_so(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(OutputError, match="afile is a file, not a folder"):
        FrameWriter(tmp_path / "afile" / "out.mp4", width=64, height=48, time_base=Fraction(1, 25))


def test_avi_output_has_its_frames_in_order(make_clip, tmp_path: Path) -> None:
    """AVI keeps no presentation times: with B-frames they came back scrambled (24, 96, 72, 120...)."""
    info = probe(make_clip("a.mp4", width=64, height=48, frames=12))
    with FrameWriter.like(tmp_path / "out.avi", info) as writer:
        for i in range(12):
            writer.write(np.full((48, 64, 3), 20 * i, np.uint8), pts=i)
    with av.open(str(tmp_path / "out.avi")) as container:
        pts = [f.pts for f in container.decode(video=0)]
    assert len(pts) == 12 and pts == sorted(pts)


@pytest.mark.parametrize("suffix", [".avi", ".y4m"])
def test_one_rate_containers_take_frames_at_their_rate_even_from_variable_timing(suffix: str, tmp_path: Path) -> None:
    """AVI and YUV4MPEG hold frames at one rate: an AVI given the source's fine time base claimed 600
    fps, and variable-rate frames closer than 1 / rate made both muxers refuse the frame."""
    times_ms = [0, 17, 50, 100, 200, 217, 250, 300]  # some closer than 40 ms, some further apart
    out = tmp_path / f"out{suffix}"
    with FrameWriter(out, width=64, height=48, time_base=Fraction(1, 1000), fps=Fraction(25)) as writer:
        for i, t in enumerate(times_ms):
            writer.write(np.full((48, 64, 3), 20 * i, np.uint8), pts=t)
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == 25
        slots = [round(f.pts * f.time_base * 25) for f in container.decode(stream)]
    # 200 ms leaves slot 4 empty: AVI keeps the gap, YUV4MPEG (no times) shows the frame before it twice
    assert len(slots) == len(times_ms) + (suffix == ".y4m") and all(b > a for a, b in zip(slots, slots[1:]))


def test_yuv4mpeg_repeats_frames_over_the_gaps_of_its_source(tmp_path: Path) -> None:
    """YUV4MPEG has no times: a source with gaps (OpenCV's tree.avi, 68 frames over 29.5 s) played
    6.5 times too fast. The frame before a gap fills it, and the run says how many were repeated."""
    out = tmp_path / "out.y4m"
    with FrameWriter(out, width=64, height=48, time_base=Fraction(1, 1000), fps=Fraction(25)) as writer:
        for i, t in enumerate([0, 40, 400, 440]):  # 320 ms missing: slots 2 to 9
            writer.write(np.full((48, 64, 3), 60 * i, np.uint8), pts=t)
    assert writer.converted == ["8 frames repeated to keep the timing: .y4m holds one frame after another, "
                                "at one rate, where the source has gaps"]
    frames = decode(out).frames
    assert len(frames) == 12 and all(np.array_equal(frames[k], frames[1]) for k in range(2, 10))
    assert not np.array_equal(frames[10], frames[1])


def test_a_writer_like_a_source_that_cannot_start_leaves_no_file(make_clip, tmp_path: Path) -> None:
    """H.264 asked for in WebM fails before any frame, and no empty out.webm is left behind (the
    output check used to create it as its proof); a file that was there before is kept."""
    info = probe(make_clip("a.mp4", width=64, height=48, frames=2, audio=True))
    with pytest.raises(OutputError, match=r"libx264 goes in \.mp4, \.mkv or \.mov"):
        FrameWriter.like(tmp_path / "out.webm", info, encoder="libx264")
    assert not (tmp_path / "out.webm").exists()
    (tmp_path / "old.webm").write_bytes(b"keep")
    with pytest.raises(OutputError):
        FrameWriter.like(tmp_path / "old.webm", info, encoder="libx264")
    assert (tmp_path / "old.webm").read_bytes() == b"keep"


def test_ten_bit_output_is_hevc_that_phones_play(make_clip, tmp_path: Path) -> None:
    """10-bit out is HEVC Main 10 (H.264 High 10 has almost no hardware decoders), tagged hvc1 in MP4
    as Apple's players need; 8-bit out stays H.264. NVENC takes 10-bit 4:2:0 as P010."""
    src = make_clip("ten.mp4", width=64, height=48, frames=4, pix_fmt="yuv420p10le")
    _, writer = _copy(src, tmp_path / "out.mp4", deep=True)
    assert (writer.encoder_name, writer.pix_fmt, writer.deep) == ("libx265", "yuv420p10le", True)
    with av.open(str(tmp_path / "out.mp4")) as c:
        video = c.streams.video[0]
        assert (video.codec_tag, video.codec_context.profile, video.frames) == ("hvc1", "Main 10", 4)
    _, eight = _copy(src, tmp_path / "eight.mp4")
    assert (eight.encoder_name, eight.pix_fmt) == ("libx264", "yuv420p")
    assert encodable_pix_fmt("hevc_nvenc", "yuv420p10le", width=64, height=48) == "p010le"


@needs_pyav18
def test_hdr10_metadata_comes_through(tmp_path: Path) -> None:
    """An HDR10 clip's mastering display and light levels (what a TV tone-maps by) are in the
    10-bit output's stream as they were, with its BT.2020 / PQ tags; an 8-bit output has no use for them."""
    from _clips_video import HDR10_MASTER_DISPLAY, hdr10_clip
    from videodeblur.video.hdr import hdr_metadata

    src = hdr10_clip(tmp_path / "hdr.mp4")
    assert probe(src).hdr is not None and probe(src).hdr.master_display == HDR10_MASTER_DISPLAY
    _, writer = _copy(src, tmp_path / "out.mp4", deep=True)
    assert writer.encoder_name == "libx265"
    with av.open(str(tmp_path / "out.mp4")) as c:
        first = next(c.decode(video=0))
        assert hdr_metadata(first) == probe(src).hdr and probe(src).hdr.max_cll == "1000,400"
        assert (int(first.color_primaries), int(first.color_trc), int(first.colorspace)) == (9, 16, 9)
    _copy(src, tmp_path / "eight.mp4")
    with av.open(str(tmp_path / "eight.mp4")) as c:
        assert hdr_metadata(next(c.decode(video=0))) is None


@pytest.mark.parametrize("ext", ["mp4", "mkv"])
def test_non_square_pixels_keep_their_shape(ext: str, make_clip, tmp_path: Path) -> None:
    """HDV's 1440-wide 16:9 pictures and DVD's store pixels wider than tall; without the ratio the
    output would play squeezed."""
    from _clips_video import anamorphic_clip

    src = anamorphic_clip(tmp_path / "hdv.mp4", Fraction(4, 3))
    assert probe(src).sample_aspect_ratio == Fraction(4, 3)
    _copy(src, tmp_path / f"out.{ext}")
    with av.open(str(tmp_path / f"out.{ext}")) as c:
        video = c.streams.video[0]
        assert (video.sample_aspect_ratio, video.display_aspect_ratio, video.frames or 3) == (Fraction(4, 3), 2, 3)
    assert probe(make_clip("square.mp4", width=64, height=48, frames=2)).sample_aspect_ratio is None


def test_chapters_are_kept(make_clip, tmp_path: Path) -> None:
    """A film's or a GoPro's chapter marks come through, in every container that holds chapters."""
    marks = [(0.0, 0.4, "Start"), (0.4, 1.0, "Jump")]
    src = with_chapters(make_clip("a.mp4", width=64, height=48, frames=25), tmp_path / "chapters.mkv", marks)
    assert len(probe(src).chapters) == 2
    for ext in ("mp4", "mkv"):
        _copy(src, tmp_path / f"out.{ext}")
        with av.open(str(tmp_path / f"out.{ext}")) as c:
            kept = [(float(ch["start"] * ch["time_base"]), float(ch["end"] * ch["time_base"]), ch["metadata"]["title"])
                    for ch in c.chapters()]
        assert kept == marks, ext


def _data_packets(path: Path) -> list[tuple[float, bytes, str | None]]:
    with av.open(str(path)) as c:
        return [(float(p.pts * p.time_base), bytes(p), p.stream.metadata.get("handler_name"))
                for p in c.demux(*c.streams.data) if p.dts is not None and "timecode" not in p.stream.metadata]


@needs_pyav18
def test_gopro_telemetry_and_timecode_are_kept(make_clip, tmp_path: Path) -> None:
    """A GoPro's GPMF track (gyro and GPS, what Gyroflow and map tools read) comes through bit for bit
    in MP4, and the timecode with it; MKV cannot hold the track, and the run says it was left out."""
    src = with_telemetry(make_clip("a.mp4", width=64, height=48, frames=25, audio=True), tmp_path / "gopro.mp4")
    info = probe(src)
    assert info.has_data and info.video_tags["timecode"] == "01:02:03:04"
    telemetry = _data_packets(src)
    assert len(telemetry) == 5 and telemetry[0][2] == "GoPro MET"
    _, writer = _copy(src, tmp_path / "out.mp4", audio=False)
    assert _data_packets(tmp_path / "out.mp4") == telemetry and writer.data_packets == 5 and writer.skipped == []
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert c.streams.video[0].metadata["timecode"] == "01:02:03:04" and not c.streams.audio
        assert [s.metadata.get("timecode") for s in c.streams.data] == [None, "01:02:03:04"]  # gpmd, tmcd
    _, writer = _copy(src, tmp_path / "out.mkv")
    assert writer.audio_packets > 0 and writer.data_packets == 0
    assert writer.skipped == ["bin_data data (stream 2, GoPro MET): .mkv files cannot hold it; .mp4 can"]
    assert len(decode(tmp_path / "out.mkv").frames) == 25
    # Matroska reads the timecode back as TIMECODE: it was dropped from an MKV source, into MKV and MP4 alike
    assert probe(tmp_path / "out.mkv").video_tags["TIMECODE"] == "01:02:03:04"
    for out in ("again.mkv", "again.mp4"):
        _copy(tmp_path / "out.mkv", tmp_path / out)
        with av.open(str(tmp_path / out)) as c:
            assert {k.lower(): v for k, v in c.streams.video[0].metadata.items()}["timecode"] == "01:02:03:04", out
    two = with_telemetry(make_clip("b.mp4", width=64, height=48, frames=5), tmp_path / "two.mp4", tracks=2)
    _, writer = _copy(two, tmp_path / "two.mkv")
    assert writer.skipped == ["2 data tracks (stream 1, GoPro MET; stream 2, GoPro MET): .mkv files cannot hold "
                              "them; .mp4 can"]  # one line, not one per track


def _attachments(path: Path) -> tuple[dict[str, tuple[str, bytes]], list[bytes]]:
    """A file's attachments (name: MIME type, bytes) and its cover pictures' bytes."""
    with av.open(str(path)) as c:
        files = {a.name: (a.mimetype, bytes(a.data)) for a in c.streams.attachments}
        covers = [s for s in c.streams.video if s.disposition & av.stream.Disposition.attached_pic]
        pictures = [bytes(p) for p in c.demux(*covers) if p.size] if covers else []
    return files, pictures


def test_fonts_and_cover_pictures_are_kept_where_the_container_holds_them(make_clip, tmp_path: Path) -> None:
    """A Matroska file's fonts (what its styled subtitles are drawn with) and its cover go into
    Matroska bit for bit; MP4 keeps the cover as its artwork but cannot hold fonts, MOV and a
    fragmented MP4 hold neither: each loss is one named line, and the video is as it was."""
    cover = cv2.imencode(".jpg", np.full((32, 32, 3), 90, np.uint8))[1].tobytes()
    fonts = {"Title.ttf": b"TTF" * 50, "Dialogue.ttf": b"FONT" * 40}
    src = with_attachments(make_clip("a.mp4", width=64, height=48, frames=5, audio=True), tmp_path / "fansub.mkv",
                           fonts=fonts, cover=cover)
    info = probe(src)
    assert info.has_attachments and info.other_videos == () and info.width == 64
    _, writer = _copy(src, tmp_path / "out.mkv")
    files, pictures = _attachments(tmp_path / "out.mkv")
    assert files == {name: ("font/ttf", data) for name, data in fonts.items()} and pictures == [cover]
    assert writer.skipped == [] and writer.audio_packets > 0 and len(decode(tmp_path / "out.mkv").frames) == 5
    _, writer = _copy(src, tmp_path / "out.mp4")
    assert _attachments(tmp_path / "out.mp4") == ({}, [cover])
    assert writer.skipped == ["2 attachments (Title.ttf, Dialogue.ttf): .mp4 files cannot hold them; .mkv can"]
    out = decode(tmp_path / "out.mp4")
    assert len(out.frames) == 5 and (out.width, out.height) == (64, 48)

    artwork = with_attachments(make_clip("b.mp4", width=64, height=48, frames=5), tmp_path / "artwork.mp4",
                               fonts={}, cover=cover)
    _, writer = _copy(artwork, tmp_path / "art.mkv")
    assert _attachments(tmp_path / "art.mkv") == ({}, [cover]) and writer.skipped == []
    _, writer = _copy(artwork, tmp_path / "art.mov")
    assert _attachments(tmp_path / "art.mov") == ({}, [])
    assert writer.skipped == ["cover picture (stream 1, mjpeg 32x32): .mov files cannot hold it; .mp4 and .mkv can"]
    _, writer = _copy(artwork, tmp_path / "frag.mp4", fragmented=True)
    assert _attachments(tmp_path / "frag.mp4") == ({}, []) and len(decode(tmp_path / "frag.mp4").frames) == 5
    assert writer.skipped == ["cover picture (stream 1, mjpeg 32x32): a fragmented .mp4 file cannot hold it; "
                              ".mkv or an unfragmented .mp4 can"]
    _, writer = _copy(artwork, tmp_path / "none.mp4", attachments=False)
    assert _attachments(tmp_path / "none.mp4") == ({}, []) and writer.skipped == []

    tiff = cv2.imencode(".tiff", np.full((32, 32, 3), 90, np.uint8))[1].tobytes()
    other = with_attachments(make_clip("c.mp4", width=64, height=48, frames=5), tmp_path / "tiff.mkv", fonts={},
                             cover=tiff, cover_type="tiff")
    _, writer = _copy(other, tmp_path / "tiff.mp4")  # MP4's artwork is JPEG, PNG or BMP: not "use .mp4"
    assert writer.skipped == ["cover picture (stream 1, tiff 32x32): .mp4 files cannot hold it; .mkv can"]


def test_webm_gets_vp9_and_its_aac_audio_re_encoded_as_opus(make_clip, tmp_path: Path) -> None:
    """A container that cannot hold H.264 or AAC gets its own codecs, as the ffmpeg tool picks:
    every frame, the audio's length and start kept to within one Opus frame, and the change named."""
    src = make_clip("a.mp4", width=64, height=48, frames=25, audio=True)
    _, writer = _copy(src, tmp_path / "out.webm")
    assert writer.encoder_name == "libvpx-vp9" and writer.skipped == []
    assert writer.converted == ["aac audio (stream 1) re-encoded as libopus 128 kb/s: .webm files cannot hold aac"]
    out = decode(tmp_path / "out.webm")
    assert len(out.frames) == 25 and psnr(out.frames[10], decode(src).frames[10]) > 30
    spans = {}
    for path in (src, tmp_path / "out.webm"):
        with av.open(str(path)) as c:
            frames = list(c.decode(audio=0))
            spans[path.suffix] = (float(frames[0].pts * frames[0].time_base), sum(f.samples for f in frames) / 48000)
            assert c.streams.audio[0].codec_context.name == ("opus" if path.suffix == ".webm" else "aac")
    assert spans[".webm"][0] == pytest.approx(spans[".mp4"][0], abs=0.001)
    assert spans[".webm"][1] == pytest.approx(spans[".mp4"][1], abs=0.021), spans


def test_webm_takes_side_surround_audio_as_back_surround(tmp_path: Path) -> None:
    """AC-3 (and DTS) decode 5.1 as 5.1(side); libopus takes only the Vorbis orders (5.1 with back
    channels), and the run stopped saying .webm cannot hold VP9 + Opus. As the ffmpeg tool does, the
    channels are moved onto the layout the encoder takes, each channel's sound kept."""
    t = np.arange(48000 // 2) / 48000
    loud = np.zeros((6, t.size), np.float32)
    loud[4] = 0.5 * np.sin(2 * np.pi * 440 * t)  # side left only
    src = _with_sound(tmp_path / "surround.mp4", "ac3", "5.1(side)", loud, frames=12)
    _, writer = _copy(src, tmp_path / "out.webm")
    assert writer.converted == ["ac3 audio (stream 1) re-encoded as libopus 384 kb/s, its 5.1(side) channels as 5.1: "
                                ".webm files cannot hold ac3"]
    with av.open(str(tmp_path / "out.webm")) as c:
        assert c.streams.audio[0].codec_context.layout.name == "5.1"
        pcm = np.concatenate([f.to_ndarray() for f in c.decode(audio=0)], axis=1)
    energy = (pcm.astype(np.float64) ** 2).mean(axis=1)
    assert int(np.argmax(energy)) == 4 and energy[4] > 0.05  # side left went to back left, the 5th channel
    assert len(decode(tmp_path / "out.webm").frames) == 12


def _with_sound(path: Path, codec: str, layout: str, planes: np.ndarray, *, frames: int, rate: int = 48000) -> Path:
    """A 64x48 H.264 clip of ``frames`` frames at 25 fps with ``planes`` (channels × samples, float
    in [-1, 1], ``rate`` Hz) as its ``codec`` audio in ``layout``."""
    with av.open(str(path), "w") as c:
        video = c.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sound = c.add_stream(codec, rate=rate, layout=layout)
        for i in range(0, planes.shape[1], 1536):  # PyAV's encoder converts to the codec's sample format
            chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(planes[:, i:i + 1536]), format="fltp", layout=layout)
            chunk.sample_rate, chunk.pts = rate, i
            c.mux(sound.encode(chunk))
        c.mux(sound.encode(None))
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(clip_frame(i, 64, 48), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            c.mux(video.encode(frame))
        c.mux(video.encode(None))
    return path


def test_surround_flac_into_ts_is_mixed_down_to_what_mp2_holds(tmp_path: Path) -> None:
    """MPEG-TS re-encodes FLAC as mp2, which holds one or two channels: 5.1 stopped the run with
    ".ts files cannot hold libx264 + mp2 audio". It is mixed down to stereo, and said."""
    tone = 0.1 * np.sin(np.arange(9600) * 2 * np.pi * 440 / 48000).astype(np.float32)
    src = _with_sound(tmp_path / "surround.mkv", "flac", "5.1", np.repeat(tone[np.newaxis], 6, axis=0), frames=5)
    _, writer = _copy(src, tmp_path / "out.ts")
    assert writer.converted == ["flac audio (stream 1) re-encoded as mp2 192 kb/s, its 5.1 channels as stereo: "
                                ".ts files cannot hold flac"]
    with av.open(str(tmp_path / "out.ts")) as c:
        assert c.streams.audio[0].codec_context.layout.name == "stereo"
        assert sum(f.samples for f in c.decode(audio=0)) >= 9600 - 1152


def test_low_rate_sound_into_ts_gets_a_bit_rate_mp2_opens_at(tmp_path: Path) -> None:
    """mp2 at MPEG-2's low rates (16, 22.05, 24 kHz) takes 160 kb/s at most: 22.05 kHz stereo into
    .ts stopped the run with ".ts files cannot hold libx264 + mp2 audio"."""
    tone = 0.1 * np.sin(np.arange(4410) * 2 * np.pi * 440 / 22050).astype(np.float32)
    src = _with_sound(tmp_path / "voice.mkv", "flac", "stereo", np.stack([tone, tone]), frames=5, rate=22050)
    _, writer = _copy(src, tmp_path / "out.ts")
    assert writer.converted == ["flac audio (stream 1) re-encoded as mp2 160 kb/s: .ts files cannot hold flac"]
    with av.open(str(tmp_path / "out.ts")) as c:
        assert c.streams.audio[0].codec_context.sample_rate == 22050
        assert sum(f.samples for f in c.decode(audio=0)) >= 4410 - 1152


def test_sound_at_a_rate_the_encoder_lacks_is_said_to_be_resampled(tmp_path: Path) -> None:
    tone = 0.1 * np.sin(np.arange(1600) * 2 * np.pi * 440 / 8000).astype(np.float32)
    src = _with_sound(tmp_path / "phone.mkv", "flac", "mono", tone[np.newaxis], frames=5, rate=8000)
    _, writer = _copy(src, tmp_path / "out.ts")
    assert writer.converted == ["flac audio (stream 1) re-encoded as mp2 96 kb/s, resampled from 8 to 16 kHz: "
                                ".ts files cannot hold flac"]
    with av.open(str(tmp_path / "out.ts")) as c:
        assert c.streams.audio[0].codec_context.sample_rate == 16000


@pytest.mark.parametrize("suffix, codec", [(".ogv", "flac"), (".mxf", "pcm_s16le")])
def test_sound_re_encoded_losslessly_is_not_given_a_bit_rate(make_clip, tmp_path: Path, suffix: str, codec: str) -> None:
    """.ogv's FLAC and .mxf's PCM have no bit rate to set: the warning said "flac 192 kb/s" and
    "pcm_s16le 192 kb/s" (PCM at 48 kHz stereo is 1536 kb/s), a figure the encoder never used."""
    src = make_clip("in.mp4", width=64, height=48, frames=5, audio=True)
    _, writer = _copy(src, tmp_path / f"out{suffix}")
    assert writer.converted == [f"aac audio (stream 1) re-encoded as {codec} (lossless): {suffix} files cannot hold aac"]


def test_an_audio_encoder_that_will_not_open_is_named_not_the_video(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the audio re-encode cannot open (here: the bit rate the fix above steps down from), the
    error names the audio, not ".ts files cannot hold libx264 + mp2 audio; libx264 goes in .mp4"."""
    from videodeblur.errors import OutputError
    from videodeblur.video import passthrough

    tone = 0.1 * np.sin(np.arange(4410) * 2 * np.pi * 440 / 22050).astype(np.float32)
    src = _with_sound(tmp_path / "voice.mkv", "flac", "stereo", np.stack([tone, tone]), frames=5, rate=22050)
    monkeypatch.setattr(passthrough, "_encodable_bit_rate", lambda codec, rate, layout: 192_000)
    with pytest.raises(OutputError, match=r"^cannot re-encode the input's audio as mp2 for \.ts \(.*\); use \.mkv, "
                                          r"which holds it as it is, or --no-audio$"):
        _copy(src, tmp_path / "out.ts")


@pytest.mark.parametrize("ext", ["mkv", "mov", "ts"])
def test_other_containers(ext: str, make_clip, tmp_path: Path) -> None:
    src = make_clip("a.mp4", width=64, height=48, frames=5, audio=True)
    _copy(src, tmp_path / f"out.{ext}")
    out = decode(tmp_path / f"out.{ext}")
    assert len(out.frames) == 5 and out.audio


def _has_encoder(name: str) -> bool:
    try:
        return av.Codec(name, "w").type == "video"
    except (av.codec.codec.UnknownCodecError, ValueError):
        return False


@pytest.mark.parametrize("encoder", ["libx264", "libx265", "libvpx-vp9", "libsvtav1"])
def test_crf_sets_the_quality_of_every_encoder_that_has_one(encoder: str, make_clip, tmp_path: Path) -> None:
    """``--crf`` is not only libx264's: a low CRF must give a larger, closer copy than a high one."""
    if not _has_encoder(encoder):
        pytest.skip(f"this FFmpeg build has no {encoder}")
    src = make_clip("a.mp4", width=96, height=64, frames=6)
    original = decode(src).frames
    quality = {}
    for crf in (8, 48):
        out = tmp_path / f"crf{crf}.mkv"
        _, writer = _copy(src, out, encoder=encoder, crf=crf)
        assert writer.quality_control == "crf"
        frames = decode(out).frames
        assert len(frames) == 6
        quality[crf] = (min(psnr(a, b) for a, b in zip(frames, original)), out.stat().st_size)
    assert quality[8][0] > quality[48][0] + 3, quality
    assert quality[8][1] > quality[48][1], quality


def test_encoder_options_per_family() -> None:
    assert encoder_options("libx264", {"crf", "preset"}, crf=20, preset="fast") == {"crf": "20", "preset": "fast"}
    assert encoder_options("libx265", {"crf", "x265-params"}, crf=20, preset="fast") == {
        "crf": "20", "preset": "fast", "x265-params": "log-level=error"}
    assert encoder_options("libvpx-vp9", {"crf", "row-mt"}, crf=30, preset="fast") == {
        "crf": "30", "b": "0", "deadline": "good", "cpu-used": "4", "row-mt": "1"}
    assert encoder_options("libvpx-vp9", {"crf"}, crf=30, preset="veryfast")["deadline"] == "realtime"
    assert encoder_options("h264_nvenc", {"cq"}, crf=23, preset="fast")["cq"] == "23"
    assert encoder_options("mpeg4", set(), crf=23, preset="fast") == {"qmin": "4", "qmax": "4"}  # its quantizer
    assert encoder_options("prores_ks", set(), crf=23, preset="fast") == {}


def test_pix_fmt_falls_back_to_what_the_encoder_takes() -> None:
    """A 4:4:4 source goes to a 4:2:0-only encoder as 4:2:0 (at an odd size too, where it writes that);
    an odd size it cannot write is a clear error."""
    assert encodable_pix_fmt("libx264", "yuv444p", width=64, height=48) == "yuv444p"
    assert encodable_pix_fmt("mpeg4", "yuv444p", width=64, height=48) == "yuv420p"
    assert encodable_pix_fmt("mpeg4", "yuv444p", width=65, height=49) == "yuv420p"
    assert encodable_pix_fmt("libx264", "yuv420p", width=65, height=49) == "yuv444p"
    assert encodable_pix_fmt("libx264rgb", "yuv420p", width=64, height=48) == "rgb24"
    with pytest.raises(EncodeError, match=r"cannot encode 65x49 yuv444p \(it takes yuv420p, and no odd size as 4:2:0\)"):
        encodable_pix_fmt("wmv2", "yuv420p", width=65, height=49)


def test_unwritable_output_is_an_output_error(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        # root writes through permissions: use sysfs, which refuses new files even to root
        target = locked / "out.mp4" if not _writable(locked) else Path("/sys/videodeblur-test.mp4")
        with pytest.raises(OutputError, match="cannot write"):
            FrameWriter(target, width=64, height=48, time_base=Fraction(1, 25))
    finally:
        locked.chmod(0o700)


def test_a_writer_that_cannot_start_leaves_no_file(tmp_path: Path) -> None:
    with pytest.raises(EncodeError):
        FrameWriter(tmp_path / "out.mp4", width=64, height=48, time_base=Fraction(1, 25), encoder="nope")
    with pytest.raises(EncodeError, match="cannot open encoder"):
        FrameWriter(tmp_path / "out.avi", width=64, height=48, time_base=Fraction(1, 25),
                    encoder="h261")  # H.261 codes only QCIF and CIF (176x144, 352x288)
    assert not (tmp_path / "out.mp4").exists() and not (tmp_path / "out.avi").exists()


@pytest.mark.parametrize("audio", [True, False])
def test_output_may_not_be_the_input(audio: bool, make_clip) -> None:
    src = make_clip("a.mp4", width=64, height=48, frames=2, audio=audio)
    size = src.stat().st_size
    with pytest.raises(OutputError, match="is the input"):
        FrameWriter.like(src, probe(src))
    assert src.stat().st_size == size and len(decode(src).frames) == 2


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _writable(folder: Path) -> bool:
    try:
        (folder / "probe").write_text("x")
        (folder / "probe").unlink()
        return True
    except OSError:
        return False


@pytest.mark.parametrize("codec,pix_fmt,ext", [("png", "rgb24", ".mov"), ("libx264rgb", "rgb24", ".mkv"),
                                               ("png", "gray", ".mov"), ("ffv1", "bgr0", ".mkv")])
def test_rgb_source_written_as_yuv_is_tagged_with_the_matrix_it_was_converted_with(tmp_path: Path, codec: str,
                                                                                   pix_fmt: str, ext: str) -> None:
    """An RGB source's "RGB" matrix tag copied onto YUV output made players show grey as green."""
    src = tmp_path / f"rgb{ext}"
    picture = clip_frame(0, 64, 48)
    with av.open(str(src), "w") as out:
        stream = out.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, pix_fmt
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format=pix_fmt)
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    _copy(src, tmp_path / "out.mp4")
    with av.open(str(tmp_path / "out.mp4")) as c:
        first = next(c.decode(video=0))
        assert first.format.name.startswith("yuv") and (first.colorspace, first.color_range) == (1, 1)  # BT.709, limited
        written = first.to_ndarray(format="rgb24")
    with av.open(str(src)) as c:
        wanted = next(c.decode(video=0)).to_ndarray(format="rgb24")
    assert psnr(written, wanted) > 33  # crf 18 on a small picture; the RGB tag gave 12 dB


def test_private_options_table_for_old_pyav_matches_what_the_encoders_say() -> None:
    """PyAV < 18 (all Python 3.10 has) cannot list private options; the table standing in for them
    must say what FFmpeg's encoders say, for the options the writer asks about."""
    from videodeblur.video.encoders import _PRIVATE_OPTIONS, private_options

    asked = {"crf", "row-mt", "x265-params", "forced-idr"}
    checked = 0
    for name, table in _PRIVATE_OPTIONS.items():
        try:
            ctx = av.CodecContext.create(name, "w")
        except (av.codec.codec.UnknownCodecError, ValueError):
            continue  # not in this FFmpeg build
        assert table == private_options(ctx) & asked, name
        checked += 1
    assert checked >= 3
