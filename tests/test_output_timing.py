"""The written file's timing as FFmpeg (PyAV) reads it back: where a part's first frame lands, where
its re-encoded sound starts, and how long a variable-rate source's last frame lasts."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from videodeblur.pipeline import Engine, EngineOptions, deblur_file
from videodeblur.video import FrameWriter, probe

from conftest import clip_frame, tone_frame


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.from_name("lprn-fast", EngineOptions(device="cpu", batch_size=4))


@pytest.mark.parametrize("suffix", [".mp4", ".mov"])
@pytest.mark.parametrize("start_s", [0.5053, 0.5117])
def test_a_part_that_starts_between_frames_has_its_first_frame_at_its_exact_time(suffix: str, start_s: float,
                                                                                 tmp_path: Path) -> None:
    """A part from 0.5053 s of a 25 fps source on a 1/12800 clock: its first frame (0.52 s) comes 188
    ticks (14.6875 ms) after the part's start. The edit list that says so counted whole ms of the
    movie's 1/1000 time scale, cut down: measured before the fix, 13.98 ms (0.70 ms early), and
    7.97 ms for 8.28 from 0.5117 s."""
    time_base = Fraction(1, 12800)
    out = tmp_path / f"part{suffix}"
    with FrameWriter(out, width=64, height=48, time_base=time_base, fps=Fraction(25),
                     window=(start_s, start_s + 0.2)) as writer:
        for i in range(13, 18):  # 0.52 s to 0.68 s
            writer.write(clip_frame(i, 64, 48), pts=512 * i)
    first_gap = 512 * 13 - round(Fraction(start_s) / time_base)
    with av.open(str(out)) as container:
        times = [frame.time for frame in container.decode(video=0)]
    assert times[0] == float(first_gap * time_base)  # 0.0146875 s exactly, not 0.013984375
    assert times == pytest.approx([float((first_gap + 512 * k) * time_base) for k in range(5)], abs=1e-9)


def test_a_part_whose_sound_is_re_encoded_has_the_sources_samples_from_its_first_frame(make_clip, tmp_path: Path) -> None:
    """--start 0.52 falls inside the AAC packet at 0.512-0.533 s; WebM re-encodes the sound as Opus.
    That packet was dropped as before the start, and the next one decoded alone: measured before the
    fix, the sound began 14 ms after the picture and was up to 0.32 off the source's (a 0.2 tone).
    The packets before the cut are decoded and their samples before it cut off: from the first
    frame on the sound is the source's, as exact as Opus keeps it (0.02)."""
    src = make_clip("a.mp4", width=64, height=48, frames=30, audio=True)
    out = tmp_path / "part.webm"
    with av.open(str(src)) as container:
        stream = container.streams.video[0]
        frames = [(f.pts, f.to_ndarray(format="rgb24")) for f in container.decode(stream)
                  if 0.52 <= f.time < 0.72]
    with FrameWriter.like(out, probe(src), window=(0.52, 0.72)) as writer:
        for pts, image in frames:
            writer.write(image, pts=pts)
    with av.open(str(src)) as container:
        source = np.concatenate([f.to_ndarray() for f in container.decode(audio=0)], axis=1)
    with av.open(str(out)) as container:
        assert container.streams.audio[0].codec_context.name == "opus"
        sound = list(container.decode(audio=0))
    assert sound[0].time == 0.0  # from the first frame on
    samples = np.concatenate([f.to_ndarray() for f in sound], axis=1)
    at = round(0.52 * 48000)
    assert np.abs(samples[:, :2048] - source[:, at:at + 2048]).max() < 0.05


@pytest.mark.parametrize("fmt", ["fltp", "s16"])
def test_decoded_sound_before_a_cut_is_cut_off_in_planar_and_packed_samples(fmt: str) -> None:
    """A frame 100 samples before 0 loses those 100 of each channel (s16 holds them interleaved,
    as PCM decodes); one wholly before 0 is dropped, one from 0 on is kept as it is."""
    from videodeblur.video.passthrough import _from_zero

    def frame(pts: int) -> av.AudioFrame:
        made = tone_frame(0, 1024, fmt=fmt)
        made.pts, made.time_base = pts, Fraction(1, 48000)
        return made

    whole = frame(-100).to_ndarray()
    cut = _from_zero(frame(-100))
    assert cut is not None and (cut.pts, cut.samples, cut.format.name) == (0, 924, fmt)
    channels = 1 if fmt == "fltp" else 2
    assert np.array_equal(cut.to_ndarray(), whole[:, 100 * channels:])
    assert _from_zero(frame(-1024)) is None
    kept = frame(0)
    assert _from_zero(kept) is kept


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".mov"])
def test_a_variable_rate_source_keeps_its_last_frames_duration(suffix: str, engine: Engine, tmp_path: Path) -> None:
    """Frames at 0, 40, 120, 160, 280 and 300 ms, the last lasting 200 ms (no gap before it says so),
    from Matroska with B-frames: the output's last frame lasts 200 ms and the file ends at 0.5 s, as
    the source does (left to FFmpeg, a last frame lasted 1 / the average rate)."""
    src = _variable_rate_source(tmp_path / "vfr.mkv", [0, 40, 120, 160, 280, 300], last_ms=200)
    out = tmp_path / f"out{suffix}"
    deblur_file(src, out, engine)
    for path in (src, out):
        with av.open(str(path)) as container:
            frames = list(container.decode(video=0))
            assert [round(f.time * 1000) for f in frames] == [0, 40, 120, 160, 280, 300], path
            assert float(frames[-1].duration * frames[-1].time_base) == pytest.approx(0.2, abs=1e-3), path
            assert container.duration / av.time_base == pytest.approx(0.5, abs=1e-3), path


def _variable_rate_source(path: Path, times_ms: list[int], *, last_ms: int) -> Path:
    """Matroska of H.264 with B-frames at ``times_ms``, each packet lasting to the next frame, the last
    ``last_ms``."""
    ends = [*times_ms[1:], times_ms[-1] + last_ms]
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        video.codec_context.time_base = Fraction(1, 1000)
        video.codec_context.max_b_frames = 2
        packets: list[av.Packet] = []
        for i, t in enumerate(times_ms):
            frame = av.VideoFrame.from_ndarray(clip_frame(i, 64, 48), format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, 1000)
            packets += video.encode(frame)
        packets += video.encode(None)
        for packet in packets:
            packet.duration = ends[times_ms.index(packet.pts)] - packet.pts
            container.mux(packet)
    return path
