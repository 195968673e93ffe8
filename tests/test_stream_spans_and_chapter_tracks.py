"""Frame counts of files that start late or are cut, and the tracks beside the video that are not
tracks to copy (an MP4's chapter track) or cannot be (the container a warning sends the user to)."""
from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from _clips_video import decodable_frames, decode, remuxed, truncated_copy, ts_clip, with_chapters
from videodeblur.errors import OutputError
from videodeblur.pipeline import Engine, EngineOptions, RunOptions, deblur_file
from videodeblur.video.reader import FrameReader

CPU = ("--model", "lprn-fast", "--device", "cpu")
MS = Fraction(1, 1000)


def _clip_at(path: Path, *, frames: int, start_ms: int, gop: int | None = None) -> Path:
    """H.264 at 25 fps in a 1/1000 time base whose first frame is at ``start_ms`` (a stream that does
    not start at 0, as a cut or a broadcast recording does not); ``gop``: a keyframe every so many."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.codec_context.time_base = s.time_base = MS
        if gop is not None:
            s.options = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0"}
        for i in range(frames):
            rgb = np.zeros((48, 64, 3), np.uint8)
            rgb[..., 0] = (np.arange(64) * 3 + i * 10) % 256
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = start_ms + 40 * i, MS
            c.mux(s.encode(frame))
        c.mux(s.encode(None))
    return path


def _read(path: Path, start_s: float | None = None) -> FrameReader:
    with FrameReader(path) as reader:
        if start_s is not None:
            reader.trim(start_s)
        for _ in reader:
            pass
    return reader


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.from_name("lprn-fast", EngineOptions(device="cpu", batch_size=4))


@pytest.mark.parametrize("ext", ["mkv", "nut"])
def test_a_late_start_is_not_counted_as_lost_frames(ext: str, tmp_path: Path) -> None:
    """Matroska's and NUT's duration runs from 0, not from the first frame at 2 s: 25 frames, none lost."""
    reader = _read(_clip_at(tmp_path / f"late.{ext}", frames=25, start_ms=2000))
    assert reader.frames_decoded == 25
    assert abs(reader.info.frames - 25) <= 1  # NUT's duration ends at the last frame's start
    assert reader.info.duration_s == pytest.approx(1.0, abs=0.05)
    assert reader.frames_lost == 0


def test_a_cut_mkv_counts_its_video_not_its_longer_audio(make_clip, tmp_path: Path) -> None:
    """The audio runs past the video: the 60-frame estimate is the video's, so decoded + lost is 60."""
    whole = remuxed(make_clip("a.mp4", width=64, height=48, frames=60, audio=True), tmp_path / "whole.mkv")
    data = whole.read_bytes()
    (cut := tmp_path / "cut.mkv").write_bytes(data[: len(data) // 2])
    assert (_read(whole).info.frames, _read(whole).frames_lost) == (60, 0)
    reader = _read(cut)
    assert 0 < reader.frames_decoded < 60
    assert reader.frames_decoded + reader.frames_lost == 60


def test_an_mkv_cut_mid_gop_has_lost_nothing(run_cli, tmp_path: Path) -> None:
    """Three packets dropped from the front (a cut made by copying): the 27 left start on P-frames
    that have nothing to refer to up to the next keyframe. No decoder makes those: the file begins
    mid-GOP, as it was cut, and is whole. It was said to be "truncated or corrupt", and with
    numbers that did not add up (the 3 slots before its start were not counted)."""
    src = _clip_at(tmp_path / "gop.mkv", frames=30, start_ms=0, gop=10)
    cut = tmp_path / "cut.mkv"
    with av.open(str(src)) as i, av.open(str(cut), "w") as o:
        out = o.add_stream_from_template(i.streams.video[0])
        for packet in [p for p in i.demux(i.streams.video[0]) if p.size][3:]:
            packet.stream = out
            o.mux(packet)
    decodable = decodable_frames(cut)
    assert 0 < decodable < 27
    reader = _read(cut)
    assert (reader.packets_read, reader.frames_decoded) == (27, decodable)
    assert (reader.packets_before_keyframe, reader.frames_lost) == (27 - decodable, 0)
    result = run_cli("video", cut, "-o", tmp_path / "out.mkv", *CPU, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["warnings"] == [] and len(decode(tmp_path / "out.mkv").frames) == decodable


def test_a_part_counts_what_it_decodes_once_and_what_a_cut_file_lost(tmp_path: Path) -> None:
    """--start 0.5 of 30 frames with a keyframe every 10: decoded from the keyframe at 0.4 s, 20
    frames (the one decoded on opening was counted again: 21). A cut copy of 60 such frames, read
    from 0.5 s to its end, has lost as many as read whole: the loss went unsaid with --start."""
    part = _read(_clip_at(tmp_path / "gop.mkv", frames=30, start_ms=0, gop=10), start_s=0.5)
    assert (part.frames_decoded, part.packets_read, part.frames_lost) == (20, 20, 0)
    cut = truncated_copy(_clip_at(tmp_path / "long.mp4", frames=60, start_ms=0, gop=10), tmp_path / "cut.mp4")
    whole, rest = _read(cut), _read(cut, start_s=0.5)
    assert 10 < whole.frames_decoded < 50 and whole.frames_lost == 60 - whole.frames_decoded
    assert (rest.frames_decoded, rest.frames_lost) == (whole.frames_decoded - 10, whole.frames_lost)


@pytest.mark.parametrize("ext", ["mp4", "mkv", "ts"])
def test_resume_of_a_source_that_starts_at_10_s(ext: str, engine: Engine, tmp_path: Path) -> None:
    """The output starts at 0 where the source's frames start at 10 s: the interrupted output's
    last frame time is compared with the source's at the same shift, and the resumed run puts every
    frame in its place, as a whole run does."""
    src = ts_clip(tmp_path / "late.ts", start_s=10.0, frames=30)
    out = tmp_path / f"out.{ext}"
    assert deblur_file(src, out, engine, RunOptions(max_frames=12, warmup_frames=0)).extra["frames_written"] == 12
    resumed = deblur_file(src, out, engine, RunOptions(resume=True, warmup_frames=0))
    assert (resumed.extra["resumed_frames"], resumed.extra["frames_written"]) == (12, 30)
    whole = tmp_path / f"whole.{ext}"
    deblur_file(src, whole, engine, RunOptions(warmup_frames=0))
    got, expected = decode(out).pts_seconds, decode(whole).pts_seconds
    assert got == expected and float(expected[0]) == pytest.approx(0.08 if ext == "ts" else 0.02, abs=0.001)


def test_resume_refuses_another_take_of_a_source_read_as_times_below_0(engine: Engine, tmp_path: Path) -> None:
    """A clip whose clock wraps reads from -0.5 s, its output from 0: the picture an interrupted
    output ends on was looked for at the source's time (-0.06 s), before the output's first frame;
    none was found, the check was left out, and another take of the same length went on from it."""
    wrap_s = 2 ** 33 / 90000 - 0.5
    src = ts_clip(tmp_path / "a.ts", start_s=wrap_s, frames=30)
    other = ts_clip(tmp_path / "b.ts", start_s=wrap_s, frames=30, take=1)
    out = tmp_path / "out.mp4"
    deblur_file(src, out, engine, RunOptions(max_frames=12, warmup_frames=0))
    with pytest.raises(OutputError, match="does not show frame 12 of .*b.ts where it ends"):
        deblur_file(other, out, engine, RunOptions(resume=True, warmup_frames=0))
    resumed = deblur_file(src, out, engine, RunOptions(resume=True, warmup_frames=0))
    assert (resumed.extra["resumed_frames"], resumed.extra["frames_written"]) == (12, 30)


def test_start_counts_from_the_first_frame(run_cli, tmp_path: Path) -> None:
    """A video that starts at 2 s and lasts 1 s: --start 1 is past its end, said with its real length;
    --start 0.5 deblurs its second half."""
    src = _clip_at(tmp_path / "late.mkv", frames=25, start_ms=2000)
    past = run_cli("video", src, "-o", tmp_path / "past.mkv", *CPU, "--start", "1")
    assert past.exit_code != 0
    assert "past the end" in past.stderr and "(1.00 s long)" in past.stderr, past.stderr
    half = run_cli("video", src, "-o", tmp_path / "half.mkv", *CPU, "--start", "0.5", "--json")
    assert half.exit_code == 0, half.stderr
    assert json.loads(half.stdout)["frames"] == 12


def test_an_mp4_chapter_track_is_neither_copied_nor_warned_about(run_cli, make_clip, tmp_path: Path) -> None:
    """The MP4 muxer writes the chapters as a text track, which the writer's muxer makes again."""
    marks = [(0.0, 0.2, "A"), (0.2, 0.4, "B")]
    src = with_chapters(make_clip("a.mp4", width=64, height=48, frames=10, audio=True), tmp_path / "ch.mp4", marks)
    result = run_cli("video", src, "-o", tmp_path / "out.mp4", *CPU, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["warnings"] == []
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert [ch["metadata"]["title"] for ch in c.chapters()] == ["A", "B"]
        assert len(c.streams.data) == 1  # the new chapter track only, not a copy of the old one too


def test_a_piped_mp4_chapter_track_is_not_taken_for_subtitles(run_subprocess, make_clip, tmp_path: Path) -> None:
    """From a pipe the demuxer cannot mark the chapter track, which then reads as mov_text subtitles."""
    src = make_clip("a.mp4", width=64, height=48, frames=10, audio=True)
    piped = tmp_path / "frag.mp4"
    with av.open(str(src)) as i, av.open(str(piped), "w", options={"movflags": "frag_keyframe+empty_moov"}) as o:
        streams = {s.index: o.add_stream_from_template(s) for s in i.streams}
        o.set_chapters([{"id": 1, "start": 0, "end": 200, "time_base": MS, "metadata": {"title": "A"}},
                        {"id": 2, "start": 200, "end": 400, "time_base": MS, "metadata": {"title": "B"}}])
        for packet in i.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                o.mux(packet)
    result = run_subprocess("video", "-", "-o", tmp_path / "out.mkv", *CPU, "--json", stdin=piped)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["warnings"] == []
    with av.open(str(tmp_path / "out.mkv")) as c:
        assert [ch["metadata"]["title"] for ch in c.chapters()] == ["A", "B"]


def test_refused_subtitles_point_to_another_container(run_cli, make_clip, tmp_path: Path) -> None:
    """MP4's own mov_text subtitles cannot go into .mkv: the warning says .mp4 can, not .mkv."""
    src = make_clip("a.mp4", width=64, height=48, frames=10)
    subbed = tmp_path / "subbed.mp4"
    with av.open(str(src)) as i, av.open(str(subbed), "w") as o:
        video = o.add_stream_from_template(i.streams.video[0])
        text = o.add_mux_stream("mov_text")
        text.time_base = MS
        o.start_encoding()
        for packet in i.demux(i.streams.video[0]):
            if packet.dts is not None:
                packet.stream = video
                o.mux(packet)
        cue = av.Packet(b"\x00\x05Hello")  # mov_text: a 16-bit length, then the text
        cue.stream, cue.time_base, cue.pts, cue.dts, cue.duration = text, MS, 0, 0, 200
        o.mux(cue)
    result = run_cli("video", subbed, "-o", tmp_path / "out.mkv", *CPU, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["warnings"] == [
        "left out mov_text subtitles (stream 1): .mkv files cannot hold them; .mp4 can"]
