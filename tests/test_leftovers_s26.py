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


def _audio_packets(path: Path) -> list[tuple[float, bytes]]:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return [(float(p.pts * p.time_base), bytes(p)) for p in container.demux(stream) if p.dts is not None]


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_an_interrupted_output_keeps_the_sound_of_its_last_frame_and_a_resume_every_packet_once(
        suffix: str, make_clip, tmp_path: Path) -> None:
    """An interrupted run copied the sound only up to the start of its last frame (the writer kept that
    frame's start as its "end"): the sound of the frame's 40 ms was cut off (2 of 76 AAC packets at
    25 fps). It now goes to the frame's end, packets that begin before it; a --resume copies the sound
    anew from the source after the frames it keeps, so an interrupted resume, and the finished file,
    still hold every packet of the source exactly once, in order."""
    from videodeblur.pipeline import Engine, EngineOptions, RunOptions, deblur_file

    engine = Engine.from_name("lprn-fast", EngineOptions(device="cpu", batch_size=1))
    src = make_clip("a.mp4", width=64, height=48, frames=40, fps=25, audio=True)
    source = _audio_packets(src)
    out = tmp_path / f"out{suffix}"
    for run, frames in ((RunOptions(max_frames=15, warmup_frames=0), 15),
                        (RunOptions(max_frames=10, warmup_frames=0, resume=True), 25),  # interrupted again
                        (RunOptions(resume=True, warmup_frames=0), 40)):
        stats = deblur_file(src, out, engine, run)
        assert stats.extra["frames_written"] == frames
        end_s = frames / 25  # where the last written frame ends
        held = [packet for _, packet in _audio_packets(out)]
        expected = [packet for at, packet in source if at < end_s - 1e-6] if frames < 40 else \
            [packet for _, packet in source]
        assert held == expected, (frames, len(held), len(expected))


def test_a_resume_stopped_before_its_first_new_frame_keeps_the_sound_of_the_kept_frames(
        make_clip, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A resume stopped right after it copied the interrupted file's frames (before it deblurred one)
    closed the file with the sound up to the last kept frame's start: that frame's sound, which the
    interrupted file held, was lost from the new one."""
    from videodeblur.pipeline import Engine, EngineOptions, RunOptions, deblur_file, runner

    engine = Engine.from_name("lprn-fast", EngineOptions(device="cpu", batch_size=1))
    src = make_clip("a.mp4", width=64, height=48, frames=40, fps=25, audio=True)
    out = tmp_path / "out.mp4"
    deblur_file(src, out, engine, RunOptions(max_frames=15, warmup_frames=0))
    interrupted = [packet for _, packet in _audio_packets(out)]

    def stopped(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run_pipeline", stopped)
    with pytest.raises(KeyboardInterrupt):
        deblur_file(src, out, engine, RunOptions(resume=True, warmup_frames=0))
    assert len(decode(out).frames) == 15
    assert [packet for _, packet in _audio_packets(out)] == interrupted
    assert interrupted == [packet for at, packet in _audio_packets(src) if at < 15 / 25 - 1e-6]


@pytest.mark.parametrize("output", ["out.mkv", "out.mp4"])
def test_mpeg2_video_is_written_at_the_source_rate(output: str, run_cli, make_clip, tmp_path: Path) -> None:
    """`--encoder mpeg2video` failed to open in every container ("Invalid argument"): MPEG-2 video codes
    one frame rate, and was given the source's fine time base (1/12800). Written as slots of the
    source's rate, as AVI is, every frame comes back at its time; --crf sets its quantizer, as for mpeg4
    (its default bit rate gave 25 dB against a lossless run's picture here)."""
    src = make_clip("in.mp4", width=64, height=48, frames=10, fps=25)
    lossless = run_cli("video", src, "-o", tmp_path / "ref.mkv", *CPU, "--encoder", "ffv1")
    result = run_cli("video", src, "-o", tmp_path / output, *CPU, "--encoder", "mpeg2video")
    assert lossless.exit_code == 0 and result.exit_code == 0, result.stderr
    assert "no constant-quality setting" not in result.stderr  # --crf is its quantizer, as for mpeg4
    ref, out = decode(tmp_path / "ref.mkv"), decode(tmp_path / output)
    with av.open(str(tmp_path / output)) as container:
        assert container.streams.video[0].codec_context.name == "mpeg2video"
    assert len(out.frames) == 10
    start = out.pts_seconds[0]  # (Matroska may start the picture a packet late; the steps are what is checked)
    assert [round(float(t - start), 4) for t in out.pts_seconds] == [round(i / 25, 4) for i in range(10)]
    assert min(psnr(a, b) for a, b in zip(ref.frames, out.frames)) > 30
