"""Containers a user may name beyond the usual four, read back as a player reads them: frame times in
order (ASF, like AVI, keeps no B-frame reordering), and a plain one-line refusal from an audio-only
container, which no video encoder fits."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from videodeblur.video import FrameWriter


@pytest.mark.parametrize("suffix", [".wmv", ".asf"])
def test_asf_output_keeps_its_frames_times_in_order(suffix: str, tmp_path: Path) -> None:
    """ASF stores frames in decode order: with B-frames their times came back scrambled (0.04, 0.16,
    0.12, 0.2, 0.08...), so a player timed the pictures out of order (measured on sample_bikes_4s.mp4)."""
    out = tmp_path / f"out{suffix}"
    with FrameWriter(out, width=64, height=48, time_base=Fraction(1, 25), fps=Fraction(25)) as writer:
        for i in range(12):
            writer.write(np.full((48, 64, 3), 20 * i, np.uint8), pts=i)
    with av.open(str(out)) as container:
        frames = [(float(f.time), int(f.to_ndarray(format="gray").mean())) for f in container.decode(video=0)]
    times, levels = [t for t, _ in frames], [v for _, v in frames]
    assert len(frames) == 12 and times == sorted(times) and len(set(times)) == 12, times
    assert levels == sorted(levels), levels  # the pictures themselves in their order too
    steps = {round(b - a, 3) for a, b in zip(times, times[1:])}
    assert steps == {0.04}, steps


@pytest.mark.parametrize("suffix, own", [(".mp3", ", nor png, the format's own"), (".flac", ", nor png, the format's own"),
                                         (".ogg", ""), (".wav", "")])
def test_an_audio_format_is_refused_in_one_plain_line(suffix: str, own: str, run_cli, make_clip,
                                                      tmp_path: Path) -> None:
    """An .mp3 or .flac output took the format's own video codec, PNG, which it holds only as a cover
    picture beside sound: from a clip with audio it kept the first frame as the cover, every other
    frame lost, exit 0; from a silent one it was refused with "png goes in .mp4 or .mov" and FFmpeg's
    "Invalid argument". Now one plain line either way, and nothing is left behind."""
    for audio in (True, False):
        src = make_clip(f"a{audio}.mp4", width=64, height=48, frames=3, audio=audio)
        out = tmp_path / f"out{suffix}"
        result = run_cli("video", src, "-o", out, "--model", "lprn-fast", "--device", "cpu")
        assert result.exit_code == 1 and "Traceback" not in result.stderr, (audio, result.stderr)
        assert result.stderr_lines == [f"videodeblur: error: {suffix} files cannot hold a video track videodeblur "
                                       f"writes (not H.264{own}: an audio format); use .mp4, .mkv, .mov or .webm"]
        assert not out.exists()


@pytest.mark.parametrize("suffix", [".avi", ".wmv"])
def test_h264_in_avi_or_asf_reads_back_at_its_own_times(suffix: str, tmp_path: Path) -> None:
    """AVI and ASF store no presentation times, and FFmpeg's demuxer guessed each H.264 frame's as the
    next frame's decode time: at a constant rate every frame came one late (bikes: 0.04, 0.08...), and
    from tree.avi's gaps up to 0.73 s late. A timing SEI in every picture gives each its own."""
    slots = [0, 11, 17, 24, 31, 37, 43, 49, 56, 61]  # tree.avi's first frames, in 1/15 s slots
    out = tmp_path / f"out{suffix}"
    with FrameWriter(out, width=64, height=48, time_base=Fraction(1, 15), fps=Fraction(15)) as writer:
        for i, slot in enumerate(slots):
            writer.write(np.full((48, 64, 3), 20 * i, np.uint8), pts=slot)
    with av.open(str(out)) as container:
        times = [float(f.time) * 15 for f in container.decode(video=0)]  # in slots (ASF counts ms)
    assert [round(t) for t in times] == slots, times
