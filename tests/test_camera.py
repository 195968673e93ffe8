"""The live path: capture sources, the latest-frame slot, the live loop and the ``camera`` command.

A file played in real time (``--realtime``) stands in for a camera. The model is made artificially
slower than the source by wrapping the engine with a delay here, in the test: the thing under test is
the live loop, not the network.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import cv2  # noqa: F401  (before av, as in the camera command)
import av
import numpy as np
import pytest

from videodeblur.errors import ConfigError, SourceError
from videodeblur.pipeline.live import LiveOptions, run_live
from videodeblur.pipeline.live_capture import LatestFrameSlot
from videodeblur.video.capture import CapturedFrame, CaptureOptions, LiveSource, PyAVSource, open_source

from _clips_video import decodable_frames, decode, remuxed, spliced_sizes
from conftest import clip_frame, needs_pyav18, psnr, serve_folder

FPS = 25
FRAME_MS = 1000 / FPS
SLACK_MS = 100  # the test machine is shared and busy: timing bounds get this much headroom


class DelayedEngine:
    """Any engine made slower by ``delay_s`` per call (or an identity engine when ``inner`` is None)."""

    def __init__(self, delay_s: float, inner: object | None = None) -> None:
        self.delay_s, self.inner = delay_s, inner
        self.model_name = getattr(inner, "model_name", "identity")
        self.device = getattr(inner, "device", "cpu")

    def process(self, frames: np.ndarray) -> np.ndarray:
        time.sleep(self.delay_s)
        return self.inner.process(frames) if self.inner is not None else frames.copy()


class ScriptedSource(LiveSource):
    """A camera stand-in: ``frames`` good frames at ``fps``, then ``then``: "end", "unplug", "hang" or
    "blocked" (a read stuck on a stalled stream, deaf to the stop for 6 s)."""

    def __init__(self, frames: int, then: str = "end", fps: float = 50.0) -> None:
        self.description, self.width, self.height, self.fps = "scripted camera", 32, 24, fps
        self.drops_allowed, self._frames, self._then = True, frames, then
        self.closed = threading.Event()

    def frames(self, stop: threading.Event) -> Iterator[CapturedFrame]:
        for i in range(self._frames):
            if stop.wait(1 / self.fps):
                return
            yield CapturedFrame(np.full((24, 32, 3), i, np.uint8), i, time.monotonic())
        if self._then == "unplug":
            raise SourceError("scripted camera stopped delivering frames (unplugged?)")
        if self._then == "hang":
            stop.wait(30)
        if self._then == "blocked":
            time.sleep(6)

    def close(self) -> None:
        self.closed.set()


class FakeVideoCapture:
    """Stands in for cv2.VideoCapture: a blue 32×24 BGR picture for ``good`` grabs, then nothing (unplugged)."""

    good = 4

    def __init__(self, device: object, *api: int) -> None:
        self.device, self.grabs, self.released = device, 0, False
        self.props: list[tuple[int, float]] = []  # set() calls, in order
        FakeVideoCapture.last = self

    def isOpened(self) -> bool:
        return self.device != 97

    def set(self, prop: int, value: float) -> bool:
        self.props.append((prop, value))
        return True

    def get(self, prop: int) -> float:
        return 30.0

    def read(self) -> tuple[bool, np.ndarray]:
        return True, self._picture()

    def grab(self) -> bool:
        self.grabs += 1
        return self.grabs <= self.good

    def retrieve(self) -> tuple[bool, np.ndarray]:
        return True, self._picture()

    def release(self) -> None:
        self.released = True

    @staticmethod
    def _picture() -> np.ndarray:
        bgr = np.zeros((24, 32, 3), np.uint8)
        bgr[..., 0] = 255
        return bgr


def recorded_frames(path: Path) -> tuple[int, list[float]]:
    """Frame count and pts in seconds of a written file, decoded for real."""
    with av.open(str(path)) as container:
        times = [float(f.pts * f.time_base) for f in container.decode(video=0)]
    return len(times), times


def live_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name in ("videodeblur-capture", "videodeblur-record")]


def check_latency(latency: dict[str, float], bound_ms: float) -> None:
    assert set(latency) == {"p50", "p95", "p99", "mean", "max"}  # as video's and every bench run's
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
    assert latency["p95"] <= bound_ms, f"p95 {latency['p95']} ms above the bound {bound_ms:.0f} ms"


# --------------------------------------------------------------------------------- the slot

def test_slot_keeps_newest_and_counts_drops() -> None:
    slot = LatestFrameSlot()
    frames = [CapturedFrame(np.zeros((2, 2, 3), np.uint8), i, float(i)) for i in range(3)]
    for frame in frames:
        assert slot.put(frame)
    assert slot.take(0.01).index == 2
    assert (slot.captured, slot.dropped) == (3, 2)
    assert slot.take(0.01) is None
    slot.put(frames[0])
    slot.close()
    assert not slot.put(frames[1])  # closed: refused, not counted
    assert slot.take(0.01).index == 0  # what was inside is still handed out
    assert slot.take(0.01) is None and slot.captured == 4


def test_slot_lockstep_put_waits_for_the_consumer() -> None:
    slot = LatestFrameSlot()
    frame = CapturedFrame(np.zeros((2, 2, 3), np.uint8), 0, 0.0)
    slot.put(frame)
    producer = threading.Thread(target=slot.put, args=(frame,), kwargs={"wait": True})
    producer.start()
    producer.join(0.2)
    assert producer.is_alive()  # blocked: the slot is full
    assert slot.take(0.01) is not None
    producer.join(2)
    assert not producer.is_alive() and slot.dropped == 0 and slot.captured == 2


# ---------------------------------------------------------------------------- the live loop

def test_realtime_file_drops_stale_frames_when_model_is_slower(make_clip) -> None:
    clip = make_clip("cam.mp4", width=64, height=48, frames=20, fps=FPS)
    delay_s = 3 * FRAME_MS / 1000  # the model takes three frame intervals
    stats = run_live(open_source(str(clip), CaptureOptions(realtime=True)), DelayedEngine(delay_s))
    assert stats.end_reason == "source ended"
    assert stats.captured == 20 and stats.processed + stats.dropped == 20
    assert 3 <= stats.processed <= 10 and stats.dropped >= 10  # ~20/3 processed, the rest dropped
    assert stats.fps == pytest.approx(1 / delay_s, rel=0.5)
    check_latency(stats.latency_ms, 2 * stats.infer_ms + FRAME_MS + SLACK_MS)
    assert stats.seconds == pytest.approx(19 / FPS, abs=0.5)  # paced to the clip's clock


def test_file_without_realtime_is_read_in_lockstep(make_clip) -> None:
    clip = make_clip("all.mp4", width=64, height=48, frames=12, fps=FPS)
    stats = run_live(open_source(str(clip)), DelayedEngine(0.005))
    assert (stats.captured, stats.processed, stats.dropped) == (12, 12, 0)


def test_a_file_read_in_step_records_its_own_timing_and_sound_side_by_side(make_clip, tmp_path: Path) -> None:
    """Without --realtime every frame is kept, so the recording keeps the file's timing (capture times
    played 30 frames of 1 s back in 0.39 s), its sound, and with side_by_side both pictures; latency is
    the model's time, not also the previous frame's turn in the model (the file is read ahead)."""
    clip = make_clip("all.mp4", width=64, height=48, frames=12, fps=FPS, audio=True)
    out = tmp_path / "rec.mkv"
    delay_s = 0.1
    stats = run_live(open_source(str(clip)), DelayedEngine(delay_s), LiveOptions(record_path=out, side_by_side=True))
    count, pts = recorded_frames(out)
    assert count == stats.processed == 12
    assert pts[0] == 0 and pts[-1] == pytest.approx(11 / FPS, abs=0.002)  # not 11 x 0.1 s
    with av.open(str(out)) as container:
        assert (container.streams.video[0].width, container.streams.video[0].height) == (128, 48)
        assert len(container.streams.audio) == 1
        first = next(container.decode(video=0)).to_ndarray(format="rgb24")
    assert psnr(first[:, :64], first[:, 64:]) > 30  # source | its deblurred copy (the identity here)
    assert stats.latency_ms["p50"] < 1.5 * stats.infer_ms  # about one model call, not two


def test_a_recording_keeps_a_phone_clips_rotation_and_a_30_fps_files_exact_timing(make_clip, tmp_path: Path) -> None:
    """A phone's clip, stored on its side, is recorded with its rotation (it played sideways), side by
    side one above the other as `video --side-by-side` writes it; and a 30 fps file keeps exactly 1/30 s
    between frames (pts in milliseconds recorded it 33, 34, 33 ms apart)."""
    clip = make_clip("phone.mp4", width=64, height=48, frames=10, fps=30, rotation=-90)
    out, both = tmp_path / "rec.mp4", tmp_path / "both.mp4"
    assert run_live(open_source(str(clip)), DelayedEngine(0.0), LiveOptions(record_path=out)).processed == 10
    run_live(open_source(str(clip)), DelayedEngine(0.0), LiveOptions(record_path=both, side_by_side=True))
    recorded, pictures = decode(out), decode(both)
    assert recorded.rotation == pictures.rotation == -90
    assert (recorded.width, recorded.height, pictures.width, pictures.height) == (64, 48, 64, 96)
    assert psnr(pictures.frames[0][:48], pictures.frames[0][48:]) > 30  # source above, shown left once turned
    assert {b - a for a, b in zip(recorded.pts_seconds, recorded.pts_seconds[1:])} == {Fraction(1, 30)}


@needs_pyav18  # BT.2020 conversion: PyAV 17.1 (Python 3.10) is refused with a one-line error
def test_a_recording_keeps_an_hdr10_files_colour_tags(tmp_path: Path) -> None:
    """A recorded file keeps what `video` keeps of the pictures: an HDR10 clip's BT.2020 / PQ tags
    (recorded untagged, its PQ values showed as washed-out SDR)."""
    from _clips_video import hdr10_clip

    hdr = hdr10_clip(tmp_path / "hdr.mp4", frames=4)
    out = tmp_path / "hdr_rec.mp4"
    assert run_live(open_source(str(hdr)), DelayedEngine(0.0), LiveOptions(record_path=out)).processed == 4
    recorded, source = decode(out), decode(hdr)
    assert recorded.colour == source.colour == (9, 1, 9, 16)  # matrix, range, primaries, transfer
    assert psnr(recorded.frames[0], source.frames[0]) > 35


def test_a_recording_keeps_the_files_pixel_shape_and_rgb_tags(tmp_path: Path) -> None:
    """An anamorphic clip's pixel shape (recorded with square pixels: squeezed), and an RGB source
    tagged BT.709 as `video` writes it."""
    from _clips_video import anamorphic_clip

    wide = anamorphic_clip(tmp_path / "dv.mp4", Fraction(16, 11))
    out = tmp_path / "dv_rec.mp4"
    run_live(open_source(str(wide)), DelayedEngine(0.0), LiveOptions(record_path=out))
    with av.open(str(out)) as container:
        assert container.streams.video[0].sample_aspect_ratio == Fraction(16, 11)
    from conftest import make_clip

    rgb = make_clip(tmp_path / "rgb.mkv", width=64, height=48, frames=3, codec="libx264rgb", pix_fmt="rgb24")
    out = tmp_path / "rgb_rec.mp4"
    run_live(open_source(str(rgb)), DelayedEngine(0.0), LiveOptions(record_path=out))
    assert decode(out).colour == (1, 1, 2, 2)  # tagged BT.709 as `video` writes an RGB source, not left untagged


def test_a_frame_in_the_model_at_ctrl_c_counts_as_dropped() -> None:
    class InterruptedEngine(DelayedEngine):
        def process(self, frames: np.ndarray) -> np.ndarray:
            if self.calls == 3:
                raise KeyboardInterrupt  # Ctrl-C lands while the fourth frame is in the model
            self.calls += 1
            return frames.copy()

    engine = InterruptedEngine(0.0)
    engine.calls = 0
    stats = run_live(ScriptedSource(40), engine)
    assert stats.end_reason == "interrupted" and stats.processed == 3
    assert stats.captured == stats.processed + stats.dropped


def test_a_ctrl_c_as_a_frame_is_recorded_still_records_every_processed_frame(monkeypatch, tmp_path: Path) -> None:
    from videodeblur.pipeline.live_record import Recorder

    real_write, writes = Recorder.write, []

    def interrupted_write(self, *args, **kwargs) -> None:
        writes.append(1)
        if len(writes) == 3:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C after the third frame is counted, before it is queued
        real_write(self, *args, **kwargs)

    monkeypatch.setattr(Recorder, "write", interrupted_write)
    out = tmp_path / "rec.mp4"
    stats = run_live(ScriptedSource(40), DelayedEngine(0.0), LiveOptions(record_path=out))
    assert stats.end_reason == "interrupted" and stats.processed == 3
    assert stats.recorded == 3 and recorded_frames(out)[0] == 3  # not two: the counted frame is in the file


def test_a_ctrl_c_as_the_run_stops_noting_signals_is_not_swallowed(monkeypatch) -> None:
    """A Ctrl-C noted after the run had read whether one came (the threads let go, the recording
    closed) and before it stopped noting them was neither said nor raised: the run ended "source
    ended" and the caller never heard of it."""
    import contextlib

    from videodeblur.pipeline import live

    real_signals_noted = live.signals_noted

    @contextlib.contextmanager
    def ctrl_c_at_the_end(note):
        with real_signals_noted(note):
            yield
            os.kill(os.getpid(), signal.SIGINT)  # the last moment it is still noted

    monkeypatch.setattr(live, "signals_noted", ctrl_c_at_the_end)
    stats = run_live(ScriptedSource(3), DelayedEngine(0.0))
    assert stats.end_reason == "interrupted" and stats.captured == stats.processed + stats.dropped == 3


def test_a_capture_blocked_on_a_stalled_stream_does_not_hold_the_end() -> None:
    """--max-seconds (or Ctrl-C) while the stream stalled: the run waited up to 5 s for the blocked
    read, and said it ran 7.6 s of a 5 s run."""
    start = time.monotonic()
    stats = run_live(ScriptedSource(5, then="blocked"), DelayedEngine(0.0), LiveOptions(max_seconds=1.0))
    assert stats.end_reason == "max-seconds" and time.monotonic() - start < 3.5 and stats.seconds < 1.5


def test_lavfi_source_runs_until_max_seconds() -> None:
    stats = run_live(open_source("testsrc2=size=64x48:rate=20"), DelayedEngine(0.0), LiveOptions(max_seconds=0.6))
    assert stats.end_reason == "max-seconds"
    assert (stats.width, stats.height) == (64, 48)
    assert 6 <= stats.captured <= 14 and stats.processed + stats.dropped == stats.captured


def test_http_network_stream_is_read_through_pyav(make_clip) -> None:
    """A URL goes through PyAV's network protocols: an MPEG-TS stream (what IP cameras and live HTTP
    streams send) served by the standard library's HTTP server on localhost. (An .mp4 does not work
    from that server: it ignores the Range requests FFmpeg makes for the mp4 index.)"""
    clip = make_clip("net.ts", width=64, height=48, frames=15, fps=FPS)
    with serve_folder(clip.parent) as base:
        url = f"{base}/{clip.name}"
        stats = run_live(open_source(url), DelayedEngine(0.0))
    assert stats.source == url and (stats.width, stats.height) == (64, 48)
    assert stats.captured == 15 and stats.processed + stats.dropped == 15 and stats.processed > 0
    assert stats.end_reason.startswith("source")


def test_realtime_paces_a_clip_served_over_http(make_clip) -> None:
    """--realtime plays a URL's clip at its own rate, as it does a file: without it a clip served over
    HTTP arrived as fast as it downloaded and most frames were dropped as stale (13 of 90 kept)."""
    clip = make_clip("net.ts", width=64, height=48, frames=15, fps=FPS)
    with serve_folder(clip.parent) as base:
        start = time.monotonic()
        stats = run_live(open_source(f"{base}/{clip.name}", CaptureOptions(realtime=True)), DelayedEngine(0.0))
        took = time.monotonic() - start
    assert (stats.captured, stats.processed, stats.dropped) == (15, 15, 0)
    assert took >= 14 / FPS * 0.9  # paced: the last frame is released 14 intervals after the first


def test_a_stream_that_ends_is_opened_again_with_reconnect(make_clip, run_cli) -> None:
    """A network stream should not end: with --reconnect its end counts as a loss and the URL is
    opened again (here the server sends the clip anew each time), until --max-seconds."""
    clip = make_clip("net.ts", width=64, height=48, frames=15, fps=FPS)
    with serve_folder(clip.parent) as base:
        result = run_cli("camera", "--source", f"{base}/{clip.name}", "--no-preview", "--model", "lprn-fast",
                         "--device", "cpu", "--reconnect", "5", "--max-seconds", "3", "--json")
        once = run_cli("camera", "--source", f"{base}/{clip.name}", "--no-preview", "--model", "lprn-fast",
                       "--device", "cpu", "--json")
    assert result.exit_code == 0, result.stderr
    stats = json.loads(result.stdout)
    assert stats["reconnects"] >= 1 and stats["captured"] > 15 and stats["end_reason"] == "max-seconds"
    plain = json.loads(once.stdout)  # without --reconnect the stream's end ends the run, as before
    assert (plain["reconnects"], plain["captured"], plain["end_reason"]) == (0, 15, "source ended")


def test_unplugged_camera_ends_the_run_cleanly() -> None:
    source = ScriptedSource(6, then="unplug")
    stats = run_live(source, DelayedEngine(0.0))
    assert stats.end_reason.startswith("source lost: scripted camera stopped delivering")
    assert stats.processed + stats.dropped == stats.captured == 6
    assert source.closed.is_set() and not live_threads()


class BiggerSource(ScriptedSource):
    """A camera that comes back at another size (a network camera renegotiating)."""

    def frames(self, stop: threading.Event) -> Iterator[CapturedFrame]:
        for i in range(self._frames):
            if stop.wait(1 / self.fps):
                return
            yield CapturedFrame(np.full((48, 64, 3), 100 + i, np.uint8), i, time.monotonic())


def test_a_lost_camera_that_comes_back_is_reconnected() -> None:
    """--reconnect: a source lost after 6 frames is opened again and the run goes on at its first
    size; a source that never comes back ends the run after the time given, saying so."""
    reopened: list[ScriptedSource] = []

    def reopen() -> ScriptedSource:
        reopened.append(BiggerSource(4, then="end"))
        return reopened[-1]

    first = ScriptedSource(6, then="unplug")
    seen: list[tuple[int, ...]] = []
    stats = run_live(first, DelayedEngine(0.0), LiveOptions(reconnect_s=3.0), reopen=reopen,
                     on_frame=lambda f: seen.append(f.output.shape) is None)
    assert (stats.reconnects, stats.captured, stats.end_reason) == (1, 10, "source ended")
    assert set(seen) == {(24, 32, 3)} and first.closed.is_set() and reopened[0].closed.is_set()

    held = ScriptedSource(6, then="unplug")

    def reopen_its_port() -> ScriptedSource:  # a udp:// source: the lost one holds the port until closed
        if not held.closed.is_set():
            raise SourceError("cannot open source 'udp://127.0.0.1:9000': Address already in use")
        return BiggerSource(4, then="end")
    stats = run_live(held, DelayedEngine(0.0), LiveOptions(reconnect_s=3.0), reopen=reopen_its_port)
    assert (stats.reconnects, stats.captured, stats.end_reason) == (1, 10, "source ended")

    def never() -> ScriptedSource:
        raise SourceError("scripted camera is still gone")

    start = time.monotonic()
    stats = run_live(ScriptedSource(3, then="unplug"), DelayedEngine(0.0), LiveOptions(reconnect_s=1.0), reopen=never)
    assert stats.reconnects == 0 and stats.end_reason == (
        "source lost: scripted camera stopped delivering frames (unplugged?); not back within 1 s")
    assert time.monotonic() - start < 5 and not live_threads()


def test_opencv_camera_unplugged_mid_run(monkeypatch) -> None:
    import videodeblur.video.capture as capture

    monkeypatch.setattr(capture.cv2, "VideoCapture", FakeVideoCapture)
    source = open_source("0")
    assert (source.description, source.width, source.height, source.fps) == ("camera 0", 32, 24, 30.0)
    seen: list[np.ndarray] = []
    stats = run_live(source, DelayedEngine(0.0), on_frame=lambda f: seen.append(f.source) is None)
    assert stats.end_reason == "source lost: camera 0 stopped delivering frames (unplugged?)"
    assert stats.captured == FakeVideoCapture.good and stats.processed + stats.dropped == stats.captured
    assert seen and seen[0][0, 0].tolist() == [0, 0, 255]  # BGR from OpenCV arrives as RGB
    assert FakeVideoCapture.last.released
    with pytest.raises(SourceError, match="cannot open camera 97"):
        open_source("97")


class UndecodableVideoCapture(FakeVideoCapture):
    """A webcam whose grab() works and whose frames never decode (corrupt MJPEG, a driver in a bad state)."""

    retrieves = 0

    def grab(self) -> bool:
        return True

    def retrieve(self) -> tuple[bool, None]:
        UndecodableVideoCapture.retrieves += 1
        return False, None


def test_a_webcam_whose_frames_never_decode_counts_as_lost(monkeypatch) -> None:
    """Failed retrieves were counted but never compared: the capture spun (3 million reads a second) until
    the live loop's stall timeout, and --reconnect (which needs the SourceError) never ran."""
    import videodeblur.video.capture as capture

    monkeypatch.setattr(capture.cv2, "VideoCapture", UndecodableVideoCapture)
    source = open_source("0")  # its first frame comes from read(), which works
    stop = threading.Event()
    timer = threading.Timer(5.0, stop.set)
    timer.start()
    try:
        with pytest.raises(SourceError, match="camera 0 stopped delivering frames"):
            list(source.frames(stop))
    finally:
        timer.cancel()
        source.close()
    assert UndecodableVideoCapture.retrieves == 5


@pytest.mark.parametrize("options, fourcc", [
    (CaptureOptions(), None),  # the camera's own format and size
    (CaptureOptions(width=1920, height=1080), "MJPG"),  # uncompressed 1080p is about 5 fps over USB 2.0
    (CaptureOptions(width=640, height=480, fourcc="YUYV"), "YUYV"),
])
def test_a_webcam_is_asked_for_mjpeg_before_a_size(monkeypatch, options: CaptureOptions, fourcc: str | None) -> None:
    import videodeblur.video.capture as capture

    monkeypatch.setattr(capture.cv2, "VideoCapture", FakeVideoCapture)
    open_source("0", options).close()
    props = [prop for prop, _ in FakeVideoCapture.last.props]
    asked = [value for prop, value in FakeVideoCapture.last.props if prop == cv2.CAP_PROP_FOURCC]
    assert asked == ([cv2.VideoWriter_fourcc(*fourcc)] if fourcc else [])
    if fourcc:
        assert props.index(cv2.CAP_PROP_FOURCC) < props.index(cv2.CAP_PROP_FRAME_WIDTH)


def test_a_fourcc_of_another_length_is_a_usage_error(run_cli) -> None:
    result = run_cli("camera", "--source", "0", "--fourcc", "MJPEG", "--no-preview")
    assert result.exit_code == 2 and "four-character code" in result.stderr


@pytest.mark.parametrize("size, said", [("0x360", "'0x360': the width and height must be positive"),
                                        ("640", "'640' is not WIDTHxHEIGHT, e.g. 640x360")])
def test_camera_and_bench_refuse_a_size_alike(run_cli, size, said) -> None:
    """One WxH parser for both commands: camera said "is not WxH, e.g. 1280x720", bench "is not
    WIDTHxHEIGHT", and bench let 0x360 through to its options' "too small"."""
    for command in ("camera", "bench"):
        result = run_cli(command, "--size", size, "--device", "cpu")
        assert result.exit_code == 2 and said in result.stderr and "--size" in result.stderr, (command, result.stderr)


def test_bad_live_and_capture_options_are_config_errors() -> None:
    """Every other option class (RunOptions, BenchOptions, EngineOptions) raises ConfigError; these raised
    a bare ValueError, so a caller's `except VideoDeblurError` missed them and the command caught ValueError."""
    for make, message in ((lambda: LiveOptions(max_seconds=0), "max_seconds must be positive"),
                          (lambda: LiveOptions(stall_timeout_s=0), "stall_timeout_s must be positive"),
                          (lambda: LiveOptions(reconnect_s=-1), "reconnect_s must be >= 0"),
                          (lambda: CaptureOptions(fps=0), "CaptureOptions.fps must be positive"),
                          (lambda: CaptureOptions(fourcc="MJPEG"), "not a four-character code")):
        with pytest.raises(ConfigError, match=message):
            make()


def test_a_stream_that_never_answers_ends_within_max_seconds(run_cli) -> None:
    """A server that takes the connection and says nothing: the wait for it is bounded by
    --max-seconds (it took the full 10 s open timeout), and the error says what happened instead of
    FFmpeg's "Immediate exit requested"."""
    import socket

    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    held: list[socket.socket] = []
    accepting = threading.Thread(target=lambda: held.append(server.accept()[0]), daemon=True)
    accepting.start()
    try:
        started = time.monotonic()
        out = run_cli("camera", "--source", f"http://127.0.0.1:{port}/live.ts", "--no-preview", "--device", "cpu",
                      "--max-seconds", "1")
        waited = time.monotonic() - started
    finally:
        server.close()
        for connection in held:
            connection.close()
    assert out.exit_code == 1 and "no answer within 1 s" in out.stderr, out.stderr
    assert waited < 8


def test_a_hung_source_counts_as_lost_after_the_stall_timeout() -> None:
    start = time.monotonic()
    stats = run_live(ScriptedSource(3, then="hang"), DelayedEngine(0.0), LiveOptions(stall_timeout_s=0.3))
    assert "delivered nothing for 0.3 s" in stats.end_reason
    assert time.monotonic() - start < 5


def test_a_failing_engine_raises_after_stopping_everything(tmp_path: Path) -> None:
    class Broken:
        def process(self, frames: np.ndarray) -> np.ndarray:
            raise RuntimeError("model exploded")

    source = ScriptedSource(100)
    with pytest.raises(RuntimeError, match="model exploded"):
        run_live(source, Broken())
    assert source.closed.wait(5) and not live_threads()


def test_on_frame_returning_false_quits() -> None:
    seen: list[int] = []
    stats = run_live(ScriptedSource(50), DelayedEngine(0.0), on_frame=lambda f: seen.append(f.index) or len(seen) < 3)
    assert stats.end_reason == "quit" and stats.processed == 3 and len(seen) == 3


# ------------------------------------------------------------------------------ the command

def test_camera_command_headless_with_recording(make_clip, run_cli, tmp_path: Path) -> None:
    clip = make_clip("in.mp4", width=96, height=64, frames=15, fps=FPS)
    out = tmp_path / "rec.mp4"
    result = run_cli("camera", "--source", clip, "--realtime", "--no-preview", "--model", "lprn-fast",
                     "--device", "cpu", "--record", out, "--json")
    assert result.exit_code == 0, result.stderr
    assert "running headless" in result.stderr
    stats = json.loads(result.stdout)
    assert {"captured", "processed", "dropped", "fps", "latency_ms"} <= set(stats)
    assert stats["processed"] > 0 and stats["captured"] == stats["processed"] + stats["dropped"] == 15
    assert stats["end_reason"] == "source ended" and stats["model"] == "lprn-fast"
    check_latency(stats["latency_ms"], 2 * stats["infer_ms"] + FRAME_MS + SLACK_MS)
    count, pts = recorded_frames(out)
    assert count == stats["processed"] == stats["recorded"]
    assert pts[0] == 0 and all(b > a for a, b in zip(pts, pts[1:]))
    assert pts[-1] == pytest.approx(14 / FPS, abs=0.15)  # timestamps follow the capture clock


def test_an_odd_sized_recording_says_it_is_four_four_four(make_clip, run_cli, tmp_path: Path) -> None:
    """4:2:0 cannot hold 65x49, so the recording is 4:4:4 H.264, which phones and browsers do not play:
    `video` said so, the camera did not."""
    import av

    clip = make_clip("in.mkv", width=65, height=49, frames=4, fps=FPS)
    out = tmp_path / "rec.mp4"
    result = run_cli("camera", "--source", clip, "--no-preview", "--model", "lprn-fast", "--device", "cpu",
                     "--record", out, "--json")
    assert result.exit_code == 0, result.stderr
    said = (f"{out} is yuv444p (65x49 is odd-sized, which 4:2:0 cannot hold): browsers, QuickTime and phones do "
            "not play 4:4:4 H.264; VLC, mpv and editors do")
    assert json.loads(result.stdout)["warnings"] == [said] and f"videodeblur: warning: {said}" in result.stderr_lines
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.pix_fmt == "yuv444p"


def test_the_deblurred_feed_goes_out_live_to_a_stream_url(make_clip, run_cli, tmp_path: Path) -> None:
    """--record udp://host:port sends MPEG-TS as it is encoded: a receiver on that port gets every
    recorded frame, decodable. A streaming server that is not there is a one-line error."""
    import io
    import socket

    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(0.2)
    received, done = bytearray(), threading.Event()

    def receive() -> None:
        while True:
            try:
                received.extend(receiver.recv(65536))
            except socket.timeout:
                if done.is_set():  # the run is over and nothing came for 0.2 s: every packet is in
                    return

    thread = threading.Thread(target=receive, daemon=True)
    thread.start()
    clip = make_clip("in.mp4", width=64, height=48, frames=12, fps=FPS)
    url = f"udp://127.0.0.1:{receiver.getsockname()[1]}?pkt_size=1316"
    try:
        result = run_cli("camera", "--source", clip, "--no-preview", "--model", "lprn-fast", "--device", "cpu",
                         "--record", url, "--json")
    finally:  # loopback delivers as it is sent: what the run sent is in the socket's buffer by now
        done.set()
        thread.join()
        receiver.close()
    assert result.exit_code == 0, result.stderr
    stats = json.loads(result.stdout)
    assert stats["recorded"] == 12 and stats["record_path"] == url
    with av.open(io.BytesIO(bytes(received)), format="mpegts") as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 12 and frames[0].shape == (48, 64, 3)
    refused = run_cli("camera", "--source", clip, "--no-preview", "--model", "lprn-fast", "--device", "cpu",
                      "--record", "rtmp://127.0.0.1:9/live/key")
    assert refused.exit_code == 1 and refused.stderr_lines[-1].startswith(
        "videodeblur: error: cannot send to rtmp://127.0.0.1:9/live/key: ")


def test_a_slow_stream_drops_frames_instead_of_holding_the_live_picture(monkeypatch) -> None:
    """A file recording waits for its encoder (every frame kept); a stream does not: when the network
    (here, a writer taking 50 ms a frame) falls behind, frames are left out of the stream and
    counted, and handing one over never waits."""
    import socket

    from videodeblur.pipeline import live_record

    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a port that takes the packets (and ignores them)
    sink.bind(("127.0.0.1", 0))
    recorder = live_record.Recorder(f"udp://127.0.0.1:{sink.getsockname()[1]}?pkt_size=1316", 64, 48, 30)
    slow = recorder._writer.write
    monkeypatch.setattr(recorder._writer, "write", lambda image, pts: (time.sleep(0.05), slow(image, pts=pts)))
    image = np.zeros((48, 64, 3), np.uint8)
    waits = []
    for i in range(40):
        start = time.perf_counter()
        recorder.write(image, capture_time=i / 30)
        waits.append(time.perf_counter() - start)
    written = recorder.close()
    sink.close()
    recorder.raise_error()
    assert recorder.dropped > 0 and written + recorder.dropped == 40
    assert max(waits) < 0.02


def test_a_file_played_live_records_its_sound_in_step(make_clip, run_cli, tmp_path: Path) -> None:
    """camera --source FILE --realtime --record: the file's audio comes along, from its first frame
    and as far as the frames went, so a file restreamed live is heard as well as seen."""
    clip = make_clip("in.mp4", width=64, height=48, frames=20, fps=FPS, audio=True)
    out = tmp_path / "rec.mp4"
    result = run_cli("camera", "--source", clip, "--realtime", "--no-preview", "--model", "lprn-fast",
                     "--device", "cpu", "--record", out, "--json")
    assert result.exit_code == 0, result.stderr
    with av.open(str(out)) as container:
        video = [float(f.pts * f.time_base) for f in container.decode(video=0)]
    with av.open(str(out)) as container:
        audio = list(container.decode(audio=0))
    first = float(audio[0].pts * audio[0].time_base)
    seconds = sum(f.samples for f in audio) / audio[0].sample_rate
    assert video[0] == 0 and abs(first) < 0.03 and seconds == pytest.approx(video[-1] + 1 / FPS, abs=0.1)
    # MPEG-TS starting at 1 s, with ADTS-framed AAC (which a fragmented MP4 cannot take as it is)
    ts = remuxed(clip, tmp_path / "in.ts", later_s=1.0)
    result = run_cli("camera", "--source", ts, "--realtime", "--no-preview", "--model", "lprn-fast",
                     "--device", "cpu", "--record", tmp_path / "ts.mp4", "--json")
    assert result.exit_code == 0, result.stderr
    recorded = decode(tmp_path / "ts.mp4")
    stats = json.loads(result.stdout)  # played live: a loaded machine may drop a frame, which is then not recorded
    assert stats["recorded"] == stats["processed"] == len(recorded.frames) > 0
    assert recorded.pts_seconds[0] == 0 and len(recorded.audio) > 0
    assert json.loads(result.stdout)["warnings"] == []  # its AAC copied, the ADTS headers taken off
    original, copied = [data for _, data in decode(clip).audio], [data for _, data in recorded.audio]
    first = original.index(copied[0])  # the packets from the first frame's time on, each as it was
    assert copied == original[first:first + len(copied)]
    webm = run_cli("camera", "--source", clip, "--realtime", "--no-preview", "--model", "lprn-fast",
                   "--device", "cpu", "--record", tmp_path / "rec.webm")
    assert webm.exit_code == 0 and webm.stderr_lines[-1] == (  # said, as the video command says it
        "videodeblur: warning: aac audio (stream 1) re-encoded as libopus 128 kb/s: .webm files cannot hold aac")


def test_a_live_source_records_its_sound_in_step_across_a_reconnect(tmp_path: Path) -> None:
    """A live source with sound (an IP camera's microphone; here a lavfi graph of a test picture and a
    tone, run live, that stops after 1 s as a dropped stream does): the recording carries its audio,
    read in the video's one pass, from the first frame written; after the source is opened again the
    sound goes on from the new opening, tied to the recording's clock anew at its first frame."""
    graph = "testsrc2=size=64x48:rate=25:d=1[out0];sine=f=440:r=48000:d=1[out1]"
    openings = [PyAVSource(graph, description="lavfi camera", pace=True, fmt="lavfi", network=True)]

    def reopen() -> LiveSource:
        if len(openings) > 1:
            raise SourceError("gone for good")
        openings.append(PyAVSource(graph, description="lavfi camera", pace=True, fmt="lavfi", network=True))
        return openings[-1]

    out = tmp_path / "rec.mkv"
    stats = run_live(openings[0], DelayedEngine(0.0), LiveOptions(record_path=out, reconnect_s=1.0), reopen=reopen)
    assert stats.reconnects == 1 and stats.recorded == stats.processed > 30
    with av.open(str(out)) as container:
        video = [float(f.pts * f.time_base) for f in container.decode(video=0)]
    with av.open(str(out)) as container:
        audio = [(float(p.pts * p.time_base), float(p.duration * p.time_base)) for p in container.demux(audio=0) if p.size]
    gap = next(i for i in range(1, len(video)) if video[i] - video[i - 1] > 0.5)  # the reconnect's wait
    before = [a for a in audio if a[0] < video[gap - 1] + 0.1]
    after = [a for a in audio if a[0] >= video[gap] - 0.05]
    assert abs(audio[0][0]) < 0.03 and sum(d for _, d in before) == pytest.approx(video[gap - 1] + 0.04, abs=0.1)
    assert len(before) + len(after) == len(audio)  # nothing in the gap: the source was not there
    assert after[0][0] == pytest.approx(video[gap], abs=0.05) and sum(d for _, d in after) > 0.8
    assert all(b[0] > a[0] for a, b in zip(audio, audio[1:]))


def test_a_live_mpegts_source_keeps_its_aac_across_a_reconnect(make_clip, tmp_path: Path) -> None:
    """A live MPEG-TS source (ADTS-framed AAC) recorded into a fragmented MP4, opened twice: both
    openings' sound is copied as it was (not re-encoded), through one output track."""
    ts = remuxed(make_clip("in.mp4", width=64, height=48, frames=25, fps=25, audio=True), tmp_path / "in.ts")
    openings = [PyAVSource(str(ts), description="TS camera", pace=True, fmt=None, network=True)]

    def reopen() -> LiveSource:
        if len(openings) > 1:
            raise SourceError("gone for good")
        openings.append(PyAVSource(str(ts), description="TS camera", pace=True, fmt=None, network=True))
        return openings[-1]

    out = tmp_path / "rec.mp4"
    stats = run_live(openings[0], DelayedEngine(0.0), LiveOptions(record_path=out, reconnect_s=1.0), reopen=reopen)
    assert stats.reconnects == 1 and stats.warnings == []
    original = {data for _, data in decode(make_clip("in.mp4", width=64, height=48, frames=25, fps=25,
                                                     audio=True)).audio}
    copied = [data for _, data in decode(out).audio]
    assert len(copied) > len(original) and set(copied) <= original  # both passes, each packet as it was


def test_a_recording_may_not_overwrite_the_file_source(make_clip, run_cli, tmp_path: Path) -> None:
    clip = make_clip("in.mp4", width=64, height=48, frames=5)
    before = clip.read_bytes()
    result = run_cli("camera", "--source", clip, "--no-preview", "--model", "lprn-fast", "--device", "cpu",
                     "--record", tmp_path / "." / "in.mp4")
    assert result.exit_code == 1 and "is the input file" in result.stderr_lines[-1]
    assert clip.read_bytes() == before


def test_a_source_that_changes_size_records_at_its_first_size(run_cli, tmp_path: Path) -> None:
    src = spliced_sizes(tmp_path / "spliced.ts", [(64, 48), (128, 96)], frames_each=4)
    out = tmp_path / "rec.mp4"
    result = run_cli("camera", "--source", src, "--no-preview", "--model", "lprn-fast", "--device", "cpu",
                     "--record", out, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["recorded"] == 8
    with av.open(str(out)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert {f.shape for f in frames} == {(48, 64, 3)}
    scaled = cv2.resize(clip_frame(6, 128, 96), (64, 48), interpolation=cv2.INTER_AREA)
    assert psnr(frames[6], scaled) > 20 and psnr(frames[6], scaled) > psnr(frames[6], clip_frame(6, 64, 48)) + 3


def test_camera_command_counts_drops_with_a_slow_model(make_clip, run_cli, monkeypatch) -> None:
    import videodeblur.pipeline.live_workers as live_workers

    real_engines = live_workers.live_engines
    monkeypatch.setattr(live_workers, "live_engines",
                        lambda *a, **kw: [DelayedEngine(0.1, engine) for engine in real_engines(*a, **kw)])
    clip = make_clip("in.mp4", width=64, height=48, frames=20, fps=FPS)
    result = run_cli("camera", "--source", clip, "--realtime", "--no-preview", "--device", "cpu", "--json")
    assert result.exit_code == 0, result.stderr
    stats = json.loads(result.stdout)
    assert stats["dropped"] > 0 and stats["processed"] > 0
    assert stats["captured"] == stats["processed"] + stats["dropped"] == 20
    check_latency(stats["latency_ms"], 2 * stats["infer_ms"] + FRAME_MS + SLACK_MS)


def test_camera_command_prints_a_table_and_stops_at_max_seconds(run_cli) -> None:
    result = run_cli("camera", "--source", "testsrc2=size=64x48:rate=25", "--no-preview", "--device", "cpu",
                     "--max-seconds", "0.5")
    assert result.exit_code == 0, result.stderr
    rows = dict(line.split(None, 1) for line in result.stdout.splitlines())
    assert rows["ended"] == "max-seconds" and int(rows["processed"]) > 0


@pytest.mark.parametrize("source, named", [
    ("missing.mp4", "missing.mp4"),
    ("/dev/video97", "camera /dev/video97"),
    ("97", "camera 97"),
    ("notes.txt", "notes.txt"),
    ("rtsp://127.0.0.1:9/none", "rtsp://127.0.0.1:9/none"),
])
def test_unopenable_source_is_a_one_line_error(run_cli, tmp_path: Path, monkeypatch, source: str, named: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("not a video\n" * 50)
    result = run_cli("camera", "--source", source, "--no-preview")
    assert result.exit_code == 1
    assert len(result.stderr_lines) == 1 and result.stderr_lines[0].startswith("videodeblur: error:")
    assert named in result.stderr_lines[0]


def test_a_source_that_ends_before_its_first_frame_says_so(run_cli, tmp_path: Path) -> None:
    """A recording whose recorder crashed before its first frame: a header and nothing after it."""
    from _clips_video import header_only

    result = run_cli("camera", "--source", header_only(tmp_path / "crashed.mkv"), "--no-preview", "--device", "cpu")
    assert result.exit_code == 1 and len(result.stderr_lines) == 1
    assert "crashed.mkv' ends before its first frame (zero frames)" in result.stderr_lines[0]


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_seconds_must_be_a_positive_number(run_cli, value: str) -> None:
    for option in ("--max-seconds", "--reconnect"):
        out = run_cli("camera", "--source", "testsrc2=size=64x48:rate=25", option, value)
        assert out.exit_code == 2 and option in out.stderr, out.stderr  # nan ran forever


_IMPORT_ORDER = """
import builtins, sys
first = []
real = builtins.__import__
def watch(name, *args, **kwargs):
    if name in ("av", "cv2") and name not in sys.modules and name not in first:
        first.append(name)
    return real(name, *args, **kwargs)
builtins.__import__ = watch
from videodeblur.cli import main
sys.argv = ["videodeblur", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
print(first, file=sys.stderr)
"""


def test_the_camera_command_imports_cv2_before_av(make_clip, tmp_path: Path) -> None:
    """av imported before cv2 freezes OpenCV's (Qt) preview window at its first namedWindow: under
    xvfb the run hung there, because the --record option's callback imported av while the options
    were parsed, before the command imported cv2. A fresh interpreter, every option parsed."""
    clip = make_clip("a.mp4", width=32, height=24, frames=3)
    result = subprocess.run([sys.executable, "-c", _IMPORT_ORDER, "camera", "--source", str(clip), "--no-preview",
                             "--device", "cpu", "--record", str(tmp_path / "r.mp4"), "--side-by-side",
                             "--max-seconds", "5"], capture_output=True, text=True, timeout=120)
    assert result.stderr.strip().splitlines()[-1] == "['cv2', 'av']", result.stderr


def test_options_a_source_has_no_use_for_are_said(make_clip, run_cli) -> None:
    clip = make_clip("a.mp4", width=64, height=48, frames=3)
    out = run_cli("camera", "--source", "testsrc2=size=64x48:rate=25", "--max-seconds", "0.3", "--no-preview",
                  "--device", "cpu", "--size", "640x360", "--fourcc", "YUYV", "--realtime", "--side-by-side")
    assert out.exit_code == 0, out.stderr
    for said in ("--size is asked of a webcam", "--fourcc is asked of a webcam", "--realtime paces a file or URL",
                 "--side-by-side shapes the preview and a --record file; with neither it changes nothing"):
        assert said in out.stderr
    quiet = run_cli("camera", "--source", clip, "--realtime", "--no-preview", "--device", "cpu")
    assert quiet.exit_code == 0 and "note:" not in quiet.stderr, quiet.stderr
    many = run_cli("camera", "--source", clip, "--no-preview", "--device", "cpu", "--engines", 512, "--json")
    assert many.exit_code == 0 and "note: --engines 512: " in many.stderr, many.stderr  # capped at the cores
    assert [w for w in json.loads(many.stdout)["warnings"] if w.startswith("--engines 512: ")]  # and in the JSON


def test_a_missing_camera_is_one_line_on_the_real_stderr(run_subprocess) -> None:
    """OpenCV logs its own ERROR line straight to file descriptor 2 when an index is out of range,
    which an in-process runner cannot see; a real process must show only our line."""
    result = run_subprocess("camera", "--source", "97", "--no-preview")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("videodeblur: error: cannot open camera 97"), lines


def test_ctrl_c_exits_130_with_a_playable_recording(tmp_path: Path) -> None:
    out = tmp_path / "rec.mp4"
    proc = subprocess.Popen([sys.executable, "-m", "videodeblur", "camera", "--source", "testsrc2=size=64x48:rate=25",
                             "--no-preview", "--device", "cpu", "--record", str(out), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (out.exists() and out.stat().st_size > 0) and time.monotonic() < deadline:
            time.sleep(0.1)  # the recording's header is written once the first frames are in
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    stats = json.loads(stdout)
    assert stats["end_reason"] == "interrupted" and stats["processed"] > 0
    count, _ = recorded_frames(out)
    assert count == stats["processed"]


@pytest.mark.parametrize("when, signum, code", [("after", signal.SIGINT, 130), ("after", signal.SIGTERM, 143),
                                                 ("before", signal.SIGINT, 130)])
def test_a_ctrl_c_as_the_run_ends_or_begins_still_says_the_stats(run_cli, monkeypatch, when: str, signum: int,
                                                                 code: int) -> None:
    """A Ctrl-C (or SIGTERM) that came after the live run returned and before its stats were said
    raised there: exit 130 with no stats and no --json. Noted from before the run begins, one that
    lands before the run notes signals itself stops it at its first turn (here: an endless source)."""
    from videodeblur.pipeline import live

    real_run_live = live.run_live

    def signalled_run_live(*args, **kwargs):
        if when == "before":
            os.kill(os.getpid(), signum)
        stats = real_run_live(*args, **kwargs)
        if when == "after":
            os.kill(os.getpid(), signum)
        return stats

    monkeypatch.setattr(live, "run_live", signalled_run_live)
    started = time.monotonic()
    result = run_cli("camera", "--source", "testsrc2=size=64x48:rate=25", "--no-preview", "--model", "lprn-fast",
                     "--device", "cpu", "--max-seconds", "1" if when == "after" else "60", "--json")
    assert result.exit_code == code, result.stderr
    stats = json.loads(result.stdout)  # said whole, then the exit code of the signal
    if when == "after":
        assert stats["end_reason"] == "max-seconds" and stats["processed"] > 0
    else:
        assert stats["end_reason"] == "interrupted" and stats["captured"] == 0
        assert time.monotonic() - started < 30  # stopped at once, not at --max-seconds
    # the stats said the run's end (max-seconds): the stop after it is said on its own line; one that
    # ended the run is said by the stats ("interrupted") and not again
    said = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}[signum]
    assert result.stderr_lines[-1] == f"videodeblur: {said}" if when == "after" else said not in result.stderr


@pytest.mark.parametrize("signum, code, said", [(signal.SIGINT, 130, "interrupted"),
                                                (signal.SIGTERM, 143, "terminated")])
@pytest.mark.parametrize("as_json", [False, True])
def test_a_stop_is_said_once_by_the_stats(run_cli, monkeypatch, signum: int, code: int, said: str,
                                          as_json: bool) -> None:
    """Ctrl-C (SIGTERM) in a live run: the stats said "ended interrupted", then a blank line and a
    bare "videodeblur: interrupted" ("terminated") came after them. The stats say it, in the stop's
    own word, and nothing more does, as `video` says its stop in one line; the exit code is the stop's."""
    from videodeblur.pipeline import live

    real_run_live = live.run_live

    def signalled_at_the_third_frame(*args, **kwargs):
        def on_frame(frame) -> bool:
            if frame.index == 2:
                os.kill(os.getpid(), signum)
            return True

        return real_run_live(*args, **{**kwargs, "on_frame": on_frame})

    monkeypatch.setattr(live, "run_live", signalled_at_the_third_frame)
    result = run_cli("camera", "--source", "testsrc2=size=64x48:rate=25", "--no-preview", "--model", "lprn-fast",
                     "--device", "cpu", "--max-seconds", "60", *(["--json"] if as_json else []))
    assert result.exit_code == code, result.stderr
    assert result.stderr_lines == ["videodeblur: --no-preview: running headless (stats are printed on exit)"]
    if as_json:
        stats = json.loads(result.stdout)  # its end_reason names the way it ended, whatever the signal
        assert stats["end_reason"] == "interrupted" and stats["processed"] >= 3
    else:
        rows = dict(line.split(None, 1) for line in result.stdout.splitlines() if line and line[0] != " ")
        assert rows["ended"] == said and int(rows["processed"]) >= 3


@pytest.mark.parametrize("command", ["camera", "video"])
def test_ctrl_c_while_a_stream_is_opening_ends_at_once_with_130(command: str, tmp_path: Path) -> None:
    """A server that takes the connection and sends nothing: FFmpeg's open waits for its 10 s timeout,
    and held the Ctrl-C until then, ending as "no answer within 10 s", exit 1."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    accepted = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        connection, _ = listener.accept()
        held.append(connection)  # kept open, silent
        accepted.set()
    threading.Thread(target=serve, daemon=True).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/live.ts"
    args = (["camera", "--source", url, "--no-preview"] if command == "camera"
            else ["video", url, "-o", str(tmp_path / "out.mp4")])
    proc = subprocess.Popen([sys.executable, "-m", "videodeblur", *args, "--device", "cpu"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert accepted.wait(60)
        stderr, waited = _ctrl_c(proc)
    finally:
        proc.kill()
        listener.close()
        for connection in held:
            connection.close()
    assert proc.returncode == 130 and waited < 5, (waited, stderr)


def _ctrl_c(proc: subprocess.Popen) -> tuple[str, float]:
    """Half a second on, Ctrl-C to ``proc``: its stderr, and the seconds until it said it stopped
    ("videodeblur: interrupted"), not until it exited: the interpreter's own teardown with torch, cv2
    and av loaded took 3-6 s on a loaded 2-core machine after the stop was said in 0.05 s (a bound
    on the exit failed so, measuring the teardown instead of the stop)."""
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    said = _stderr_until(proc, "videodeblur: interrupted\n", timeout_s=30)
    took = time.monotonic() - sent
    _, rest = proc.communicate(timeout=60)
    return said + rest, took


def _stderr_until(proc: subprocess.Popen, text: str, timeout_s: float) -> str:
    """What ``proc`` wrote to stderr until ``text`` (or its end of file, or the time is up)."""
    import select

    fd, seen = proc.stderr.fileno(), b""  # read below the text wrapper, whose buffer stays empty
    deadline = time.monotonic() + timeout_s
    while text.encode() not in seen and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.05)[0]:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            seen += chunk
    return seen.decode(errors="replace")


def test_a_recording_survives_kill_9(tmp_path: Path) -> None:
    """A live recording cannot be run again, so it is a fragmented MP4 (a fragment a second): a
    process killed outright, with no chance to finalise, still leaves the fragments it wrote playable.
    (A plain MP4 keeps its index for the end and would not open at all.)"""
    out = tmp_path / "rec.mp4"
    proc = subprocess.Popen([sys.executable, "-m", "videodeblur", "camera", "--source", "testsrc2=size=64x48:rate=25",
                             "--no-preview", "--device", "cpu", "--record", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (out.exists() and out.stat().st_size > 0) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(3.0)  # three fragments' worth
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert decodable_frames(out) >= 25  # at least a second of the three


def test_unreachable_display_runs_headless(run_cli, monkeypatch) -> None:
    monkeypatch.setenv("DISPLAY", ":97")  # no X server there: Qt would abort the process, so it is checked first
    result = run_cli("camera", "--source", "testsrc2=size=32x24:rate=25", "--device", "cpu", "--max-seconds", "0.3",
                     "--json")
    assert result.exit_code == 0, result.stderr
    assert result.stderr_lines == ["videodeblur: display ':97' is not reachable: running headless"]
    assert json.loads(result.stdout)["processed"] > 0


def test_a_slow_warmup_is_not_a_stalled_source() -> None:
    class SlowWarmup(DelayedEngine):
        def warmup(self, height: int, width: int) -> None:
            time.sleep(0.5)

    stats = run_live(ScriptedSource(5), SlowWarmup(0.0), LiveOptions(stall_timeout_s=0.3))
    assert stats.end_reason == "source ended" and stats.captured == 5


def test_one_processed_frame_has_a_rate_and_is_one_frame_recorded(make_clip, run_cli, tmp_path: Path) -> None:
    """A run with one processed frame reported fps 0.0 (video rates one frame) and "1 frames"."""
    clip = make_clip("one.mp4", width=64, height=48, frames=1, fps=FPS)
    delay_s = 0.05
    stats = run_live(open_source(str(clip)), DelayedEngine(delay_s))
    assert stats.processed == 1
    # rated from the run's start to its one output: after the model's time on it (its latency, the
    # delay), before the run's end (a loaded machine took 124 ms to the output, and a bound of
    # the delay's rate +-50% failed at 8.07 fps)
    assert 1 / stats.seconds * 0.99 <= stats.fps <= min(1 / delay_s, 1000 / stats.latency_ms["p50"]) * 1.01
    out = tmp_path / "rec.mp4"
    result = run_cli("camera", "--source", clip, "--no-preview", "--model", "lprn-fast", "--device", "cpu",
                     "--record", out)
    assert result.exit_code == 0, result.stderr
    rows = dict(line.split(None, 1) for line in result.stdout.splitlines())
    assert rows["recorded"] == f"1 frame to {out}" and len(decode(out).frames) == 1
    assert float(rows["fps"].split()[0]) > 0


def test_camera_names_the_device_as_video_does(make_clip, run_cli, tmp_path: Path) -> None:
    """camera --json said "cpu" where video --json says "cpu (2 threads)" for the same engine; on a CPU
    with two cores or more both run two engines that share the cores, and say so."""
    clip = make_clip("two.mp4", width=64, height=48, frames=2, fps=FPS)
    options = ("--model", "lprn-fast", "--device", "cpu", "--json")
    live = run_cli("camera", "--source", clip, "--no-preview", *options)
    video = run_cli("video", clip, "-o", tmp_path / "out.mp4", *options)
    alone = run_cli("video", clip, "-o", tmp_path / "alone.mp4", "--engines", 1, *options)
    live_alone = run_cli("camera", "--source", clip, "--no-preview", "--engines", 1, *options)
    assert live.exit_code == video.exit_code == alone.exit_code == live_alone.exit_code == 0, \
        live.stderr + video.stderr + alone.stderr + live_alone.stderr
    assert json.loads(live_alone.stdout)["device"] == json.loads(alone.stdout)["device"]
    cores = int(re.fullmatch(r"cpu \((\d+) threads?\)", json.loads(alone.stdout)["device"]).group(1))
    expected = f"cpu ({cores} thread{'s' if cores > 1 else ''})" if cores < 2 else \
        f"cpu ({cores // 2} thread{'s' if cores // 2 > 1 else ''}) × 2 engines"
    assert json.loads(live.stdout)["device"] == json.loads(video.stdout)["device"] == expected


def _feed_fifo(fifo: Path, data: bytes) -> threading.Thread:
    """A writer thread for ``fifo``: it opens it (blocking until the reader does) and writes ``data``."""
    def feed() -> None:
        try:
            with open(fifo, "wb") as pipe:
                pipe.write(data)
        except BrokenPipeError:
            pass
    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    return thread


def test_a_pipe_with_sound_records_without_it_and_says_so(make_clip, run_cli, tmp_path: Path) -> None:
    """A FIFO with audio and --record: the recorder opened the pipe again for the sound, two readers
    split its bytes and the run broke after 25 frames. A pipe cannot be read twice: no sound, a note."""
    clip = make_clip("in.mp4", width=64, height=48, frames=20, fps=FPS, audio=True)
    ts = remuxed(clip, tmp_path / "in.ts")
    fifo = tmp_path / "ff"
    os.mkfifo(fifo)
    feeder = _feed_fifo(fifo, ts.read_bytes())
    out = tmp_path / "rec.mp4"
    result = run_cli("camera", "--source", fifo, "--no-preview", "--model", "lprn-fast", "--device", "cpu",
                     "--record", out, "--json")
    feeder.join(10)
    assert result.exit_code == 0, result.stderr
    stats = json.loads(result.stdout)
    # a pipe is a live feed: what the model was too slow for is dropped
    assert stats["captured"] == 20 and stats["processed"] == stats["recorded"] == len(decode(out).frames) > 0
    notes = [line for line in result.stderr_lines if "its sound" in line]
    assert notes == [f"videodeblur: note: {fifo} is a pipe, not a file: its sound cannot be read a second "
                     "time, so a recording has none"], result.stderr


def test_a_signal_while_a_pipe_source_opens_exits_as_an_interrupt(tmp_path: Path) -> None:
    """Ctrl-C while open() waited for a FIFO's writer gave exit 1 "cannot open source ...:
    Interrupted system call"; it must end as Ctrl-C does mid-run: 130."""
    fifo = tmp_path / "ff"
    os.mkfifo(fifo)
    proc = subprocess.Popen([sys.executable, "-m", "videodeblur", "camera", "--source", str(fifo), "--no-preview",
                             "--device", "cpu"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wchan = Path(f"/proc/{proc.pid}/wchan")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and wchan.read_text() != "wait_for_partner":
            time.sleep(0.1)  # Linux: blocked in open() until the FIFO has a writer
        stderr, took = _ctrl_c(proc)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert took < 5 and "cannot open" not in stderr, stderr


def test_a_run_with_no_frame_names_no_recording(tmp_path: Path) -> None:
    """0 frames processed printed "recorded 0 frames to z.mp4", a file that was never written."""
    from videodeblur.cli.camera import _table

    out = tmp_path / "z.mp4"
    stats = run_live(ScriptedSource(0), DelayedEngine(0.0), LiveOptions(record_path=out))
    assert stats.processed == stats.recorded == 0 and not out.exists()
    rows = dict(line.split(None, 1) for line in _table(stats.to_dict()).splitlines())
    assert rows["recorded"] == "nothing recorded (no frame was processed)"
    # --json said no more than "recorded": 0 beside the path, and latencies of 0 ms that never happened
    assert stats.warnings == [f"nothing recorded: no frame was processed, so {out} was not written"]
    assert stats.latency_ms == {"p50": None, "p95": None, "p99": None, "mean": None, "max": None}
    assert "latency ms  none measured (no frame was processed)" in _table(stats.to_dict()).splitlines()


def test_a_stream_receiver_that_stops_reading_does_not_hold_the_run(tmp_path: Path) -> None:
    """--record tcp:// to a receiver that accepts and never reads: close() waited for ever on the
    writer blocked in a network write. It is left after a grace, and the stats say the cut."""
    import socket

    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True).start()
    noise = "nullsrc=s=320x240:r=25,geq=random(1)*255:128:128"  # hard to compress: fills the buffers fast
    # FFmpeg's send buffer kept small too, so the first frame or two fill both: with the system's own
    # (MBs on loopback) a loaded machine deblurred 53 frames in the 4 s, all of them fitted, the writer
    # never blocked, and the cut was rightly not said
    proc = subprocess.Popen([sys.executable, "-m", "videodeblur", "camera", "--source", noise, "--no-preview",
                             "--device", "cpu", "--max-seconds", "4", "--json",
                             "--record", f"tcp://127.0.0.1:{listener.getsockname()[1]}?send_buffer_size=4096"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = proc.communicate(timeout=40)
    finally:
        proc.kill()
        for conn in [*accepted, listener]:
            conn.close()
    assert proc.returncode == 0, stderr
    stats = json.loads(stdout)
    assert stats["end_reason"] == "max-seconds" and stats["processed"] > 0
    assert "the recording was cut off: the receiver took nothing for 3 s" in stats["warnings"], stats


def test_standard_input_is_a_source_as_video_reads_it(run_subprocess, make_clip, tmp_path: Path) -> None:
    """`--source -` was "source '-' not found", where `video -` reads the video piped in."""
    from _clips_video import remuxed

    src = remuxed(make_clip("a.mp4", width=64, height=48, frames=12, audio=True), tmp_path / "a.ts")
    result = run_subprocess("camera", "--source", "-", "--no-preview", "--model", "lprn-fast", "--device", "cpu",
                            "--json", "--record", tmp_path / "rec.mp4", stdin=src)
    assert result.exit_code == 0, result.stderr
    stats = json.loads(result.stdout)
    assert stats["captured"] == 12 and stats["processed"] == stats["recorded"] == 12
    with av.open(str(tmp_path / "rec.mp4")) as c:
        assert len(list(c.decode(video=0))) == 12
    nothing = run_subprocess("camera", "--source", "-", "--no-preview", "--device", "cpu")  # stdin: /dev/null
    assert nothing.exit_code == 1 and "videodeblur: error:" in nothing.stderr


def test_a_pipe_source_faster_than_the_model_drops_stale_frames(make_clip, tmp_path: Path) -> None:
    """A live feed through a pipe (`ffmpeg -f v4l2 ... - | videodeblur camera --source -`) was read in
    step like a file: every frame queued behind the model, the backlog growing without end. It runs on
    its producer's clock, as a camera does: the newest frame is taken, the stale ones dropped."""
    from _clips_video import remuxed

    feed = remuxed(make_clip("a.mp4", width=64, height=48, frames=60), tmp_path / "a.ts").read_bytes()
    pipe = tmp_path / "feed"
    os.mkfifo(pipe)

    def produce() -> None:
        with open(pipe, "wb") as writer:
            writer.write(feed)
    threading.Thread(target=produce, daemon=True).start()
    source = open_source(str(pipe))
    assert source.note == (f"{pipe} is a pipe, read as a live feed: frames the model is too slow for are dropped "
                           "(`videodeblur video -` keeps every frame)")  # said at the start: `cat clip |` lost most
    stats = run_live(source, DelayedEngine(0.05), LiveOptions())
    assert stats.captured == 60 and stats.dropped > 0 and stats.processed + stats.dropped == 60


def test_a_recording_that_cannot_be_finished_is_the_runs_error_not_a_thread_traceback(tmp_path: Path,
                                                                                      monkeypatch) -> None:
    """Finishing the recorded file can fail (a full disk): the recorder's thread keeps the error for the
    run to raise, instead of letting it escape the thread as a raw "Exception in thread" traceback."""
    from videodeblur.errors import EncodeError
    from videodeblur.pipeline import live_record

    escaped = []
    monkeypatch.setattr(threading, "excepthook", lambda args: escaped.append(args.exc_value))
    recorder = live_record.Recorder(tmp_path / "rec.mp4", 64, 48, 30)

    def full_disk(**_kwargs) -> None:
        raise EncodeError("finishing rec.mp4 failed: No space left on device")

    monkeypatch.setattr(recorder._writer, "close", full_disk)
    recorder.write(np.zeros((48, 64, 3), np.uint8), capture_time=0.0)
    assert recorder.close() == 1
    assert escaped == []
    with pytest.raises(EncodeError, match="No space left on device"):
        recorder.raise_error()


class ScriptedDelays:
    """An identity engine whose calls take the scripted times (in seconds), then ``rest`` each."""

    def __init__(self, delays: list[float], rest: float = 0.0) -> None:
        self.delays, self.rest = list(delays), rest
        self.model_name, self.device, self.seen = "identity", "cpu", []

    def process(self, frames: np.ndarray) -> np.ndarray:
        self.seen.append(int(frames[0, 0, 0, 0]))
        time.sleep(self.delays.pop(0) if self.delays else self.rest)
        return frames.copy()


def test_two_engines_take_turns_and_hand_frames_back_in_capture_order() -> None:
    # The first engine's first frame takes 0.4 s: frames the second engine finishes meanwhile are held
    # back, so the loop still sees (and would record) them oldest first.
    slow_then_fast, fast = ScriptedDelays([0.4], rest=0.01), ScriptedDelays([], rest=0.01)
    seen: list[int] = []
    latencies: list[float] = []
    stats = run_live(ScriptedSource(30, fps=50), [slow_then_fast, fast],
                     on_frame=lambda f: (seen.append(int(f.output[0, 0, 0])), latencies.append(f.latency_ms)) and None)
    assert stats.end_reason == "source ended" and stats.device == "cpu × 2 engines"
    assert seen == sorted(seen) and len(set(seen)) == len(seen) == stats.processed
    # a frame held back is shown only when the older one is out: its latency counts the wait
    assert sum(latency > 250 for latency in latencies) >= 3, latencies
    assert slow_then_fast.seen and fast.seen  # both worked
    assert len(fast.seen) > len(slow_then_fast.seen)  # the free one took the frames meanwhile
    assert stats.captured == stats.processed + stats.dropped == 30


def test_two_slow_engines_process_about_twice_the_frames_of_one() -> None:
    # A source faster than the model: each engine takes 0.06 s a frame against one frame every 0.02 s.
    one = run_live(ScriptedSource(60, fps=50), DelayedEngine(0.06))
    two = run_live(ScriptedSource(60, fps=50), [DelayedEngine(0.06), DelayedEngine(0.06)])
    assert one.captured == two.captured == 60
    assert two.processed >= 1.6 * one.processed, (one.processed, two.processed)
    for stats in (one, two):
        assert stats.captured == stats.processed + stats.dropped
        assert stats.latency_ms["p95"] < 2 * 60 + 20 + SLACK_MS  # ≤ 2 × model + one frame interval


def test_an_engine_that_fails_beside_a_working_one_stops_the_run_with_its_error() -> None:
    class Broken:
        model_name, device = "broken", "cpu"

        def process(self, frames: np.ndarray) -> np.ndarray:
            time.sleep(0.05)
            raise RuntimeError("engine fell over")

    started = time.monotonic()
    with pytest.raises(RuntimeError, match="engine fell over"):
        run_live(ScriptedSource(200, fps=50), [DelayedEngine(0.01), Broken()])
    assert time.monotonic() - started < 3  # no hang: the working engine's thread is stopped too
    assert not [t for t in threading.enumerate() if t.name.startswith("videodeblur-infer")]
