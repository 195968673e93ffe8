"""A recording of a live source with sound keeps its sound and its picture in step.

The source: an MPEG-TS whose frames carry their own number (ten black or white bars, its bits) and
whose sound clicks (a 1 ms burst in silence) at frames 3, 9, 16, 24... (each gap a frame longer than
the one before, so a click is known by its gaps), sent over HTTP at its own pace, as a camera sends.
In a recording, where a click lands minus where it was in the source is the sound's offset, where a
frame lands minus its number's time the picture's: their difference is the sync error, 0 in step.
Capture times put the sound 0.5-3.2 s late (0.8 s through the camera command here).
"""
from __future__ import annotations

import contextlib
import http.server
import json
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from videodeblur.pipeline.live import LiveOptions, run_live
from videodeblur.pipeline.live_record import Recorder
from videodeblur.video.capture import open_source

FPS = 25
RATE = 48000
BARS = 10
WIDTH, HEIGHT = 16 * BARS, 32
# the recording counts whole milliseconds, and a click's peak lies somewhere in its 1 ms burst
BOUND_MS = 2.0


def test_the_camera_command_records_a_network_stream_with_its_sound_in_step(run_cli, tmp_path: Path) -> None:
    """`camera --source http://.../x.ts --record out.mp4`: the sound was 0.8 s late (FFmpeg reads ahead
    while it opens a stream, the stream goes on while the model loads, and all of it was decoded in a
    burst at the start, tens of frames stamped within milliseconds, while the sound kept its own
    time). Now every frame is within 2 ms of its sound, and the sound starts with the first frame."""
    source = _clicking_ts(tmp_path / "live.ts", seconds=8)  # more than the run needs, however long the model loads
    out = tmp_path / "out.mp4"
    with _served_live(source) as url:
        result = run_cli("camera", "--source", url, "--no-preview", "--record", out, "--model", "lprn-fast",
                         "--device", "cpu", "--max-seconds", "2.5", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["end_reason"] == "max-seconds"
    own = _sync_errors_ms(source)  # the source's own: where a click's peak lies in its burst
    assert max(own) - min(own) <= 0.1
    errors = _sync_errors_ms(out)
    assert len(errors) >= 40
    assert max(abs(e - own[0]) for e in errors) <= BOUND_MS, (min(errors), max(errors))
    # no silence before the sound: the packets read with the first frame are kept, and the one playing at it
    assert _first_audio_s(out) <= 0.0


def test_a_recording_that_starts_inside_an_audio_packet_has_sound_from_its_first_frame(tmp_path: Path) -> None:
    """The live loop records the first frame it processes, and which one that is depends on the load
    (the slot drops the frames it was too slow for): here frame 4, 10.7 ms into an AAC packet. That
    packet was dropped as before the start, and the recording's sound began 10 ms after its picture
    (the test above failed so 1 run in 4 on a loaded machine). It is kept, its lead-in hidden by the
    MP4's edit list, so the sound starts with the first frame, in step."""
    source_ts = _clicking_ts(tmp_path / "live.ts", seconds=2)
    out = tmp_path / "rec.mp4"
    with _served_live(source_ts) as url, open_source(url) as source:
        recorder = Recorder(out, source.width, source.height, source.fps, audio_feed=source.take_audio())
        for frame in source.frames(threading.Event()):
            if frame.index >= 4:  # frames 0-3 dropped by the slot
                recorder.write(frame.image, frame.capture_time, stream_s=frame.stream_s)
            if frame.index >= 40:
                break
        recorder.close()
    assert _frames(out)[0] == (0.0, 4)
    assert _first_audio_s(out) < 0.0  # the packet playing at the first frame
    with av.open(str(out)) as container:
        first = next(container.decode(audio=0))
    assert first.pts == 0 and first.samples < 1024  # its lead-in hidden: the sound starts with the picture
    own = _sync_errors_ms(source_ts)[0]
    errors = _sync_errors_ms(out)
    assert max(abs(e - own) for e in errors) <= BOUND_MS, (min(errors), max(errors))


def test_a_stream_whose_clock_goes_back_records_on_in_step(tmp_path: Path) -> None:
    """A camera whose encoder restarts: its clock goes back from 51.8 s to 0 mid-stream. The recording's
    frames follow the source's clock, so the jump is taken out as the ffmpeg tool takes it out (one
    offset for every track); left in, the frames after it were squeezed 1 ms apart and their sound
    was lost. Where the two clocks meet, the sound of the second part starts within the last packet
    of the first, and the re-encoded AAC lays them end to end: up to one audio frame (21 ms) off."""
    before = _clicking_ts(tmp_path / "a.ts", seconds=1.8, clock_s=50.0)  # frames 0-44
    after = _clicking_ts(tmp_path / "b.ts", seconds=1.6, first=45)  # frames 45-84, from 0 s
    out = tmp_path / "rec.mp4"
    with _served_live(before, after) as url:
        stats = run_live(open_source(url), _WarmingEngine(0.5), LiveOptions(record_path=out))
    assert stats.recorded > 50
    frames = _frames(out)
    assert min(b[0] - a[0] for a, b in zip(frames, frames[1:])) >= 0.039  # none squeezed
    assert frames[-1][1] >= 80  # on to the end of the second part
    # and its time runs on across the jump: the frames the warm-up dropped at the start (more on a busy
    # machine) move where the recording begins, not how far it goes (it said >= 3.0 s, and a loaded
    # run that began at frame 18 ended at 2.56 s, in step)
    assert abs(frames[-1][0] - frames[0][0] - (frames[-1][1] - frames[0][1]) * 0.04) <= 0.045
    # every click from the first frame recorded on is heard (the warm-up's drops move that frame: from
    # frame 18 on, a loaded run, the first part's clicks at frames 3, 9 and 16 were never recorded);
    # one at the very first frame may fall in the packet before it
    heard = [c for c in _click_frames(85) if frames[0][1] <= c <= frames[-1][1]]
    assert len(_clicks_s(out)) >= len(heard) - 1, (frames[0][1], heard)
    own = _sync_errors_ms(before)[0]
    errors = _sync_errors_ms(out)
    assert max(abs(e - own) for e in errors) <= BOUND_MS + 1000 * 1024 / RATE, (min(errors), max(errors))


# --------------------------------------------------------------------------------------- helpers

class _WarmingEngine:
    """An identity engine whose warm-up takes ``warmup_s`` (a real one loads and compiles meanwhile)."""

    model_name, device = "identity", "cpu"

    def __init__(self, warmup_s: float) -> None:
        self.warmup_s = warmup_s

    def warmup(self, height: int, width: int) -> None:
        time.sleep(self.warmup_s)

    def process(self, frames: np.ndarray) -> np.ndarray:
        return frames.copy()


def _click_frames(until: int) -> list[int]:
    """3, 9, 16, 24...: every gap differs from the others (none at 0: an AAC encoder's first frame
    blurs what is at its very start)."""
    frames, at, gap = [], 3, 6
    while at < until:
        frames.append(at)
        at, gap = at + gap, gap + 1
    return frames


def _picture(number: int) -> np.ndarray:
    picture = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    for bit in range(BARS):
        if number >> bit & 1:
            picture[:, 16 * bit:16 * bit + 16] = 255
    return picture


def _number(picture: np.ndarray) -> int:
    return sum(1 << bit for bit in range(BARS) if picture[:, 16 * bit + 4:16 * bit + 12].mean() > 128)


def _clicking_ts(path: Path, *, seconds: float, first: int = 0, clock_s: float = 0.0) -> Path:
    """Frames ``first``... (numbered in their pictures) and their clicks, AAC, its clock from ``clock_s``."""
    count = round(seconds * FPS)
    sound = np.zeros(count * RATE // FPS + 2048, np.float32)
    for frame in _click_frames(first + count):
        if frame >= first:
            at = (frame - first) * RATE // FPS
            sound[at:at + 48] = 0.9 * np.where(np.arange(48) % 2, 1.0, -1.0)
    with av.open(str(path), "w", format="mpegts") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        video.options = {"preset": "veryfast", "crf": "18", "g": "25"}
        video.codec_context.time_base = Fraction(1, FPS)
        audio = container.add_stream("aac", rate=RATE, layout="mono")
        written = 0
        for i in range(count):
            frame = av.VideoFrame.from_ndarray(_picture(first + i), format="rgb24")
            frame.pts, frame.time_base = i + round(clock_s * FPS), Fraction(1, FPS)
            container.mux(video.encode(frame))
            while written <= (i + 1) * RATE // FPS:  # the sound muxed along with the picture, as a camera's
                chunk = av.AudioFrame.from_ndarray(sound[None, written:written + 1024], format="flt", layout="mono")
                chunk.sample_rate, chunk.pts, chunk.time_base = RATE, written + round(clock_s * RATE), Fraction(1, RATE)
                container.mux(audio.encode(chunk))
                written += 1024
        container.mux(video.encode(None))
        container.mux(audio.encode(None))
    return path


@contextlib.contextmanager
def _served_live(*parts: Path) -> Iterator[str]:
    """Serve ``parts`` one after the other over HTTP, each byte when its packet is due, as a live camera
    sends (not as fast as the network goes); yields the URL."""
    data, plan = b"", []  # plan: (byte position, seconds from the start) of each packet
    for part in parts:
        with av.open(str(part)) as container:
            times = [(p.pos, float(p.dts * p.time_base)) for p in container.demux() if p.dts is not None and p.pos >= 0]
        begin, shift = min(t for _, t in times), plan[-1][1] + 1 / FPS if plan else 0.0
        plan += sorted((len(data) + pos, shift + t - begin) for pos, t in times)
        data += part.read_bytes()

    class Camera(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            self.send_response(200)
            self.send_header("Content-Type", "video/mp2t")
            self.end_headers()
            start, sent = time.monotonic(), 0
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                for pos, at in plan:
                    if pos > sent:
                        time.sleep(max(0.0, start + at - time.monotonic()))
                        self.wfile.write(data[sent:pos])
                        sent = pos
                self.wfile.write(data[sent:])

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's signature
            pass

    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Camera) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/{parts[0].name}"
        finally:
            server.shutdown()


def _frames(path: Path) -> list[tuple[float, int]]:
    """Each frame's time (s) and the number it shows."""
    with av.open(str(path)) as container:
        return [(float(f.pts * f.time_base), _number(f.to_ndarray(format="rgb24"))) for f in container.decode(video=0)]


def _clicks_s(path: Path) -> list[float]:
    """The time (s) of each click's peak in the first audio track."""
    with av.open(str(path)) as container:
        frames = list(container.decode(audio=0))
    rate, first = frames[0].sample_rate, float(frames[0].pts * frames[0].time_base)
    loud = np.abs(np.concatenate([f.to_ndarray()[0] for f in frames]))
    clicks, last = [], -RATE
    for n in np.flatnonzero(loud > 0.3):
        if n - last > rate // 10:  # a new click: its peak within the next 20 ms
            clicks.append(first + (n + int(loud[n:n + rate // 50].argmax())) / rate)
        last = n
    return clicks


def _sync_errors_ms(path: Path) -> list[float]:
    """For each frame: the sound's offset (one for the whole track, the clicks matched to the source's
    by their gaps) minus the frame's, in ms."""
    clicks = _clicks_s(path)
    sources = [f / FPS for f in _click_frames(1000)]
    fits = []
    for shift in range(len(sources) - len(clicks) + 1):
        offsets = [c - s for c, s in zip(clicks, sources[shift:])]
        fits.append((max(offsets) - min(offsets), offsets))
    spread, offsets = min(fits)
    assert len(clicks) >= 3 and spread < 0.03, (len(clicks), spread)  # the clicks' gaps matched the source's
    sound = float(np.median(offsets))
    return [1000 * (sound - (t - number / FPS)) for t, number in _frames(path)]


def _first_audio_s(path: Path) -> float:
    with av.open(str(path)) as container:
        packet = next(p for p in container.demux(audio=0) if p.pts is not None)
        return float(packet.pts * packet.time_base)


def test_a_frame_a_little_early_shifts_only_itself() -> None:
    """A live MPEG-TS whose encoder restarts: the mended clock can put the new part's first frame 15 ms
    before the old part's last. It went a whole frame after the last, and so did every frame after it:
    the picture stayed 48 ms behind its sound for the rest of the run. A clock that starts again
    (a frame or more back) goes on a frame after the last, by its own clock from there."""
    from videodeblur.pipeline.live_record import RECORD_TIME_BASE, _RecordClock

    step = 3000  # 30 fps at 90 kHz
    clock = _RecordClock(0, step=step)
    times = [i / 30 for i in range(180)] + [5.952 + i / 30 for i in range(5)]  # the restart lands 14.7 ms early
    pts = [clock.pts(0.0, t, 0) for t in times]
    assert pts[180] == pts[179] + 1 and pts[181:] == [round(t / RECORD_TIME_BASE) for t in times[181:]]
    restarted = _RecordClock(0, step=step)
    pts = [restarted.pts(0.0, t, 0) for t in [i / 30 for i in range(10)] + [i / 30 for i in range(5)]]
    assert [b - a for a, b in zip(pts, pts[1:])] == [step] * 14  # on evenly, by the clock, after the reset
    glitch = _RecordClock(0, step=step)  # one frame 2 s early (a bad pts): only it moves
    times = [i / 30 for i in range(10)]
    pts = [glitch.pts(0.0, t, 0) for t in times[:5] + [times[5] - 2.0] + times[6:]]
    assert pts[5] == pts[4] + step and pts[6:] == [round(t / RECORD_TIME_BASE) for t in times[6:]]
