"""MP4 and MOV with B-frames keep the source's timing to the end: every frame's time, the last frame's
own duration, the file's length and the audio's end, as FFmpeg (PyAV) reads them back.

Why: MP4/MOV store a sample's duration as the gap to the next one in decode order; only the last
sample's is free. x264 ends on B-frames shown before the last frame, so the last frame's duration
was lost: a 2 s closing picture lasted 40 ms and the file ended 2 s early. With variable frame rate
the last frame's reorder delay differed from the first's and the file ended a gap early or late.
"""
from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import pytest

from videodeblur.pipeline import Engine, EngineOptions, deblur_file
from videodeblur.video import FrameWriter

from conftest import clip_frame, tone_frame

_TICK_S = 0.0011  # one tick of a 1/1000 source time base, with rounding to the muxer's 1/16000


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.from_name("lprn-fast", EngineOptions(device="cpu", batch_size=4))


@pytest.mark.parametrize("suffix", [".mp4", ".mov"])
def test_a_held_last_frame_keeps_its_duration(suffix: str, tmp_path: Path) -> None:
    """Frames 40 ms apart, the last held 2 s. Measured before the fix: 9, 12 and 17 frames ended on
    B-frames in decode order and read back 0.36, 0.48 and 0.68 s long, the last frame 40 ms."""
    reordered = False
    for n in range(6, 19):
        out = tmp_path / f"{n}{suffix}"
        with FrameWriter(out, width=64, height=48, time_base=Fraction(1, 1000), fps=Fraction(25)) as writer:
            for i in range(n):
                writer.write(clip_frame(i, 64, 48), pts=40 * i, duration=2000 if i == n - 1 else None)
        timing = _timing(out)
        end_s = 0.04 * (n - 1) + 2.0
        assert timing["frame_times"] == pytest.approx([0.04 * i for i in range(n)], abs=_TICK_S), n
        assert timing["last_duration_s"] == pytest.approx(2.0, abs=_TICK_S), n
        assert timing["stream_duration_s"] == pytest.approx(end_s, abs=_TICK_S), n
        assert timing["container_duration_s"] == pytest.approx(end_s, abs=_TICK_S), n
        assert timing["elst_duration_s"] == pytest.approx(end_s, abs=_TICK_S), n
        assert timing["last_decoded_pts_s"] == pytest.approx(0.04 * (n - 1), abs=_TICK_S), n
        reordered = reordered or timing["reordered"]
    assert reordered  # the encoder really used B-frames


def test_variable_frame_rate_ends_where_the_last_frame_does(tmp_path: Path) -> None:
    """Gaps of 1, 2, 1, 3 frames at 24000/1001 in a 1/1000 time base, the last frame held 1 s.
    Measured before the fix: the file read back 3.044 s long, 41 ms short of 3.085 s."""
    times_ms = _vfr_times_ms(30)
    out = tmp_path / "vfr.mp4"
    with FrameWriter(out, width=64, height=48, time_base=Fraction(1, 1000), fps=Fraction(24000, 1001)) as writer:
        for i, pts in enumerate(times_ms):
            writer.write(clip_frame(i, 64, 48), pts=pts, duration=1000 if i == len(times_ms) - 1 else None)
    timing = _timing(out)
    end_s = times_ms[-1] / 1000 + 1.0
    assert end_s == pytest.approx(3.085)
    assert timing["frame_times"] == pytest.approx([t / 1000 for t in times_ms], abs=_TICK_S)
    assert timing["last_duration_s"] == pytest.approx(1.0, abs=_TICK_S)
    assert timing["stream_duration_s"] == pytest.approx(end_s, abs=_TICK_S)
    assert timing["container_duration_s"] == pytest.approx(end_s, abs=_TICK_S)


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".mkv"])
def test_a_deblurred_slide_show_ends_with_its_sound(suffix: str, engine: Engine, tmp_path: Path) -> None:
    """A Matroska source of 25 frames at 30 fps with B-frames, its last picture held 1 s, and AAC to
    its end, deblurred. Measured before the fix (.mp4 and .mov): the last frame lasted 33 ms and
    the video ended at 0.833 s, 0.98 s before its sound; Matroska was right."""
    src = _slide_show(tmp_path / "src.mkv", frames=25, rate=30, last_s=1.0)
    out = tmp_path / f"out{suffix}"
    deblur_file(src, out, engine)
    source, result = _timing(src), _timing(out)
    assert len(result["frame_times"]) == len(source["frame_times"]) == 25
    assert result["frame_times"] == pytest.approx([i / 30 for i in range(25)], abs=_TICK_S)
    assert result["frame_times"][0] == 0.0
    assert result["last_duration_s"] == pytest.approx(source["last_duration_s"], abs=_TICK_S)
    assert result["video_end_s"] == pytest.approx(source["video_end_s"], abs=_TICK_S)
    assert result["video_end_s"] == pytest.approx(1.8, abs=_TICK_S)
    assert result["audio_end_s"] == pytest.approx(source["audio_end_s"], abs=1e-6)
    assert result["audio_end_s"] == pytest.approx(1.8133, abs=1e-3)  # 85 AAC frames of 1024 samples
    if suffix != ".mkv":  # Matroska's duration counts the AAC priming delay (21 ms) it stores apart
        assert result["stream_duration_s"] == pytest.approx(1.8, abs=_TICK_S)
        assert result["container_duration_s"] == pytest.approx(result["audio_end_s"], abs=_TICK_S)


# --- helpers -------------------------------------------------------------------------------------

def _vfr_times_ms(frames: int) -> list[int]:
    """Frame times in ms of a 24000/1001 clip with gaps of 1, 2, 1, 3 frames, repeating."""
    slots, t = [], 0
    for i in range(frames):
        slots.append(t)
        t += (1, 2, 1, 3)[i % 4]
    return [round(s * 1001 / 24) for s in slots]


def _slide_show(path: Path, *, frames: int, rate: int, last_s: float) -> Path:
    """Matroska of H.264 with B-frames (x264 veryfast) at ``rate``, its last frame lasting ``last_s``,
    and a stereo AAC tone to the end of it."""
    pts = [round(i * 1000 / rate) for i in range(frames)]
    durations = {p: (pts[i + 1] - p if i + 1 < frames else round(last_s * 1000)) for i, p in enumerate(pts)}
    end_s = (pts[-1] + durations[pts[-1]]) / 1000
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=rate)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        video.options = {"preset": "veryfast", "crf": "20"}
        video.codec_context.time_base = Fraction(1, 1000)
        audio = container.add_stream("aac", rate=48000, layout="stereo")

        def mux(packets: list[av.Packet]) -> None:
            for packet in packets:
                packet.duration = durations[packet.pts]
                container.mux(packet)

        for i, p in enumerate(pts):
            frame = av.VideoFrame.from_ndarray(clip_frame(i, 64, 48), format="rgb24")
            frame.pts, frame.time_base = p, Fraction(1, 1000)
            mux(video.encode(frame))
        mux(video.encode(None))
        for start in range(0, math.ceil(end_s * 48000), 1024):
            container.mux(audio.encode(tone_frame(start, 1024)))
        container.mux(audio.encode(None))
    return path


def _timing(path: Path) -> dict:
    """What FFmpeg reads of ``path``: frame times and the last one's duration (decoded), the video's
    end (last frame's time + duration), stream and container durations, whether the packets came in
    another order than shown, the last decoded packet's time, the decoded audio's end and the video
    track's edit list duration (MP4/MOV)."""
    timing: dict = {}
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        timing["container_duration_s"] = container.duration / 1e6
        timing["stream_duration_s"] = float(video.duration * video.time_base) if video.duration else None
        packets = [p for p in container.demux(video) if p.size]
        timing["reordered"] = any(b.pts < a.pts for a, b in zip(packets, packets[1:]))
        timing["last_decoded_pts_s"] = float(packets[-1].pts * video.time_base)
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
        timing["frame_times"] = [float(f.time) for f in frames]
        timing["last_duration_s"] = float(frames[-1].duration * frames[-1].time_base)
        timing["video_end_s"] = timing["frame_times"][-1] + timing["last_duration_s"]
    with av.open(str(path)) as container:
        if container.streams.audio:
            last = list(container.decode(audio=0))[-1]
            timing["audio_end_s"] = float(last.pts * last.time_base) + last.samples / last.sample_rate
    if path.suffix in (".mp4", ".mov"):
        timing["elst_duration_s"] = _video_edit_duration_s(path.read_bytes())
    return timing


def _video_edit_duration_s(data: bytes) -> float:
    """The first track's edit list duration (moov/trak/edts/elst), in the movie's time scale (mvhd)."""
    moov = _box(data, b"moov")
    mvhd = _box(moov, b"mvhd")
    scale = int.from_bytes(mvhd[20:24] if mvhd[0] == 1 else mvhd[12:16], "big")
    elst = _box(_box(_box(moov, b"trak"), b"edts"), b"elst")
    entries = int.from_bytes(elst[4:8], "big")
    size = 20 if elst[0] == 1 else 12
    width = 8 if elst[0] == 1 else 4
    total = 0
    for k in range(entries):
        entry = elst[8 + k * size:8 + (k + 1) * size]
        media_time = int.from_bytes(entry[width:2 * width], "big", signed=True)
        if media_time != -1:  # not an empty edit
            total += int.from_bytes(entry[:width], "big")
    return total / scale


def _box(data: bytes, kind: bytes) -> bytes:
    """The payload of the first box ``kind`` at the top level of ``data`` (ISO BMFF)."""
    at = 0
    while at + 8 <= len(data):
        size, name = int.from_bytes(data[at:at + 4], "big"), data[at + 4:at + 8]
        head = 8
        if size == 1:
            size, head = int.from_bytes(data[at + 8:at + 16], "big"), 16
        elif size == 0:
            size = len(data) - at
        if name == kind:
            return data[at + head:at + size]
        at += size
    raise AssertionError(f"no {kind.decode()} box")
