"""The streaming runner: same frames as the engine per frame, timing and audio kept, every failure
stops every thread (no hang) and leaves a playable file."""
from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import av
import numpy as np
import pytest
import torch

from videodeblur.errors import ConfigError, DecodeError, EncodeError, OutputError
from videodeblur.model import LoadedModel, load_model
from videodeblur.pipeline import Engine, EngineOptions, RunInterrupted, RunOptions, deblur_file, run_pipeline
from videodeblur.pipeline.side_by_side import side_by_side
from videodeblur.video import FrameReader, FrameWriter

from _clips_video import avi_with_empty_slots, decode, remuxed, through_yuv420, truncated_copy, zeroed_copy
from conftest import REPO_ROOT, clip_frame, psnr

TIMEOUT_S = 60


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.from_name("lprn-fast", EngineOptions(device="cpu", batch_size=4))


class FlakyEngine:
    """The real engine, but ``submit`` raises ``error`` on call number ``fail_on`` (1-based) and
    sleeps ``delay_s`` per call (a slow model)."""

    def __init__(self, engine: Engine, *, fail_on: int | None = None, error: BaseException | None = None,
                 delay_s: float = 0.0) -> None:
        self._engine, self.fail_on, self.error, self.delay_s, self.calls = engine, fail_on, error, delay_s, 0

    def submit(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls == self.fail_on:
            raise self.error  # type: ignore[misc]
        time.sleep(self.delay_s)
        return self._engine.submit(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)


def run_with_timeout(fn: Callable[[], Any]) -> tuple[Any, BaseException | None]:
    """Run ``fn`` on a thread; fail the test if it has not returned within TIMEOUT_S (a hang)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as err:  # noqa: BLE001
            box["error"] = err

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(TIMEOUT_S)
    assert not thread.is_alive(), "the run hung"
    assert not [t for t in threading.enumerate() if t.name.startswith("videodeblur-")], "stage threads left running"
    return box.get("value"), box.get("error")


def test_output_frames_equal_the_engine_per_frame(engine: Engine, make_clip, tmp_path: Path) -> None:
    """Batching and threading change nothing: with a lossless encode (crf 0) the output is the
    engine's per-frame result after the same RGB→4:2:0→RGB conversion, within 2 code values."""
    src = make_clip("a.mp4", width=96, height=64, frames=11)
    stats = deblur_file(src, tmp_path / "out.mp4", engine, RunOptions(crf=0, encoder="libx264"))
    with FrameReader(src) as reader:
        expected = [through_yuv420(engine.process(f.image[None])[0]) for f in reader]
    got = decode(tmp_path / "out.mp4").frames
    assert stats.frames == len(got) == len(expected) == 11
    worst = max(np.abs(g.astype(int) - e.astype(int)).max() for g, e in zip(got, expected))
    assert worst <= 2 and min(psnr(g, e) for g, e in zip(got, expected)) > 45


def test_keeps_count_timing_rate_size_rotation_and_audio(engine: Engine, make_clip, tmp_path: Path) -> None:
    src = make_clip("a.mp4", width=80, height=48, frames=13, audio=True, rotation=90)
    stats = deblur_file(src, tmp_path / "out.mp4", engine)
    a, b = decode(src), decode(tmp_path / "out.mp4")
    assert len(b.frames) == 13 and b.pts_seconds == a.pts_seconds
    assert (b.width, b.height, b.rotation, b.average_rate) == (a.width, a.height, a.rotation, a.average_rate)
    assert b.audio == a.audio and stats.extra["audio_packets"] == len(a.audio)
    d = stats.to_dict()
    assert d["frames"] == 13 and set(d["stages"]) == {"decode", "infer", "encode"}
    assert all(d["stages"][s]["items"] == 13 for s in d["stages"])
    assert d["latency_ms"]["p50"] <= d["latency_ms"]["p95"] <= d["latency_ms"]["p99"]
    assert d["model"] == "lprn-fast" and d["device"].startswith("cpu") and d["warnings"] == []


def test_variable_frame_rate_keeps_its_timestamps(engine: Engine, make_clip, tmp_path: Path) -> None:
    src = make_clip("vfr.mp4", width=64, height=48, frames=9, vfr=True)
    deblur_file(src, tmp_path / "out.mp4", engine)
    assert decode(tmp_path / "out.mp4").pts_seconds == decode(src).pts_seconds


def test_colour_on_device_matches_the_swscale_path(make_clip, tmp_path: Path) -> None:
    """With an identity network only the colour conversions differ: planes converted in torch (the
    CUDA path) and swscale's RGB path both reproduce the input."""
    identity = Engine(LoadedModel("identity", Path("identity.pt"), torch.nn.Identity(), {}),  # type: ignore[arg-type]
                      EngineOptions(device="cpu"))
    src = make_clip("a.mp4", width=64, height=48, frames=5)
    deblur_file(src, tmp_path / "rgb.mp4", identity, RunOptions(colour_on_device=False, crf=0))
    stats = deblur_file(src, tmp_path / "yuv.mp4", identity, RunOptions(colour_on_device=True, crf=0))
    assert stats.extra["colour_on_device"] is True
    a, b, ref = (decode(p).frames for p in (tmp_path / "rgb.mp4", tmp_path / "yuv.mp4", src))
    assert len(a) == len(b) == 5
    # The plane path is exact up to rounding (nearest-upsampled chroma averages back to itself);
    # swscale's RGB → 4:2:0 costs a generation (~38 dB measured).
    assert min(psnr(x, y) for x, y in zip(b, ref)) > 50
    assert min(psnr(x, y) for x, y in zip(a, ref)) > 35 and min(psnr(x, y) for x, y in zip(a, b)) > 35


def test_side_by_side_puts_the_source_left_of_its_deblurred_picture(engine: Engine, make_clip, tmp_path: Path) -> None:
    """--side-by-side: each frame twice as wide, the decoded source on the left and the same run's
    deblurred picture on the right (to within the encoder's rounding), same count and timing."""
    src = make_clip("a.mp4", width=66, height=48, frames=6, audio=True)
    deblur_file(src, tmp_path / "plain.mp4", engine, RunOptions(crf=0))
    stats = deblur_file(src, tmp_path / "both.mp4", engine, RunOptions(crf=0, side_by_side=True))
    both, plain, source = (decode(tmp_path / "both.mp4"), decode(tmp_path / "plain.mp4"), decode(src))
    assert stats.to_dict()["size"] == [132, 48] and (both.width, both.height) == (132, 48)
    again = deblur_file(src, tmp_path / "both.mp4", engine, RunOptions(crf=0, side_by_side=True, resume=True))
    assert again.frames == 0 and again.to_dict()["size"] == [132, 48]  # finished: nothing to do, its size said
    assert len(both.frames) == 6 and both.pts_seconds == source.pts_seconds and both.audio == source.audio
    # (RGB back to 4:2:0 costs a generation, ~38 dB, as in the colour test above)
    assert min(psnr(f[:, :66], s) for f, s in zip(both.frames, source.frames)) > 35
    assert min(psnr(f[:, 66:], p) for f, p in zip(both.frames, plain.frames)) > 35
    # the halves differ where the network changed the picture: not the source twice
    assert max(np.abs(f[:, :66].astype(int) - f[:, 66:]).max() for f in both.frames) > 3
    # a phone's portrait clip, stored on its side: one above the other as stored, side by side as shown
    turned = make_clip("p.mp4", width=64, height=48, frames=3, rotation=90)
    deblur_file(turned, tmp_path / "p-plain.mp4", engine, RunOptions(crf=0))
    deblur_file(turned, tmp_path / "p-both.mp4", engine, RunOptions(crf=0, side_by_side=True))
    both, plain, source = (decode(tmp_path / "p-both.mp4"), decode(tmp_path / "p-plain.mp4"), decode(turned))
    assert (both.width, both.height, both.rotation) == (64, 96, 90)
    shown = [np.rot90(f, 1) for f in both.frames]  # as a player turns it: 90 degrees counter-clockwise
    assert min(psnr(f[:, :48], np.rot90(s, 1)) for f, s in zip(shown, source.frames)) > 35
    assert min(psnr(f[:, 48:], np.rot90(p, 1)) for f, p in zip(shown, plain.frames)) > 35


@pytest.mark.parametrize("rotation", [0, 90, 180, -90])
def test_side_by_side_shows_the_source_on_the_left_however_the_clip_is_turned(rotation: int) -> None:
    source, deblurred = np.zeros((4, 6, 3), np.uint8), np.full((4, 6, 3), 255, np.uint8)
    shown = np.rot90(side_by_side(source, deblurred, rotation), rotation // 90)
    assert shown.shape == ((6, 8, 3) if rotation % 180 else (4, 12, 3))
    half = shown.shape[1] // 2
    assert shown[:, :half].max() == 0 and shown[:, half:].min() == 255


def _shown(stored: np.ndarray, matrix: tuple[int, ...]) -> np.ndarray:
    """``stored`` as a player shows it under an FFmpeg display matrix: (x, y) goes to x' = a x + c y,
    y' = b x + d y (16.16 fixed point; whole quarter turns and flips here)."""
    a, b, c, d = (v // 65536 for v in (matrix[0], matrix[1], matrix[3], matrix[4]))
    ys, xs = np.mgrid[0:stored.shape[0], 0:stored.shape[1]]
    xp, yp = a * xs + c * ys, b * xs + d * ys
    shown = np.zeros((yp.max() - yp.min() + 1, xp.max() - xp.min() + 1, *stored.shape[2:]), stored.dtype)
    shown[yp - yp.min(), xp - xp.min()] = stored
    return shown


U, W30 = 65536, 1 << 30


@pytest.mark.parametrize("matrix", [(-U, 0, 0, 0, U, 0, 0, 0, W30), (U, 0, 0, 0, -U, 0, 0, 0, W30),
                                    (0, U, 0, U, 0, 0, 0, 0, W30), (0, -U, 0, -U, 0, 0, 0, 0, W30)],
                         ids=["hflip", "vflip", "quarter-and-flip", "three-quarters-and-flip"])
def test_side_by_side_of_a_mirrored_clip_shows_the_source_on_the_left(matrix: tuple[int, ...]) -> None:
    """A quarter turn with a flip reads as -90°; laid out by that angle, the source showed on the right."""
    source, deblurred = np.zeros((4, 6, 3), np.uint8), np.full((4, 6, 3), 255, np.uint8)
    rotation = -90 if matrix[0] == 0 else 180  # as PyAV reads these matrices
    shown = _shown(side_by_side(source, deblurred, rotation, matrix), matrix)
    half = shown.shape[1] // 2
    assert shown.shape[1] == 2 * _shown(source, matrix).shape[1]
    assert shown[:, :half].max() == 0 and shown[:, half:].min() == 255


@pytest.mark.parametrize("stage", ["decode", "infer", "encode"])
def test_a_failing_stage_stops_the_run_with_its_error(stage: str, engine: Engine, make_clip, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    src = make_clip("a.mp4", width=64, height=48, frames=30)
    boom = RuntimeError(f"{stage} exploded")
    runner_engine: Any = engine
    if stage == "infer":
        runner_engine = FlakyEngine(engine, fail_on=3, error=boom)
    elif stage == "decode":
        original = FrameReader._convert
        calls = {"n": 0}

        def convert(self: FrameReader, frame: Any) -> np.ndarray:
            calls["n"] += 1
            if calls["n"] == 10:
                raise boom
            return original(self, frame)
        monkeypatch.setattr(FrameReader, "_convert", convert)
    else:
        original_write = FrameWriter.write

        def write(self: FrameWriter, image: np.ndarray, *, pts: int, duration: int | None = None) -> None:
            if self.frames_written == 6:
                raise boom
            original_write(self, image, pts=pts)
        monkeypatch.setattr(FrameWriter, "write", write)

    _, error = run_with_timeout(lambda: deblur_file(src, tmp_path / "out.mp4", runner_engine,
                                                    RunOptions(queue_size=2)))
    assert error is boom
    written = decode(tmp_path / "out.mp4").frames  # finalised: it opens and decodes
    assert 0 < len(written) < 30


def test_a_failure_before_any_frame_leaves_no_file(engine: Engine, make_clip, tmp_path: Path) -> None:
    src = make_clip("a.mp4", width=64, height=48, frames=10)
    boom = RuntimeError("first batch fails")
    _, error = run_with_timeout(lambda: deblur_file(src, tmp_path / "out.mp4", FlakyEngine(engine, fail_on=1, error=boom)))
    assert error is boom and not (tmp_path / "out.mp4").exists()


def test_ctrl_c_finalises_the_output_and_raises_with_stats(engine: Engine, make_clip, tmp_path: Path) -> None:
    src = make_clip("a.mp4", width=64, height=48, frames=30, audio=True)
    flaky = FlakyEngine(engine, fail_on=4, error=KeyboardInterrupt())
    _, error = run_with_timeout(lambda: deblur_file(src, tmp_path / "out.mp4", flaky))
    assert isinstance(error, RunInterrupted) and isinstance(error, KeyboardInterrupt)
    out = decode(tmp_path / "out.mp4")
    assert len(out.frames) == error.stats.frames == 12  # the three batches finished before Ctrl-C
    assert out.pts_seconds == decode(src).pts_seconds[:12]
    assert 0 < len(out.audio) < len(decode(src).audio)  # audio only up to where the video stops


def test_ctrl_c_before_the_pipeline_runs_leaves_no_unreadable_file(engine: Engine, make_clip, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C after the output's header is written but before the threads run left a 48-byte MP4
    that nothing opens; now the writer is closed, and with no frame in it no file is left."""
    import videodeblur.pipeline.runner as runner

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run_pipeline", interrupted)
    out = tmp_path / "out.mp4"
    with pytest.raises(KeyboardInterrupt):
        deblur_file(make_clip("a.mp4", width=64, height=48, frames=4), out, engine)
    assert not out.exists()


def test_signals_during_the_finalising_are_noted_not_raised() -> None:
    """While the output is finalised a second Ctrl-C or SIGTERM only notes itself; before and after,
    Ctrl-C raises as usual."""
    import signal

    from videodeblur.signals import signals_noted

    noted: list[str] = []
    with signals_noted(lambda: noted.append("stop")):
        signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGINT)
    assert noted == ["stop", "stop"]
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)


def test_ctrl_c_keeps_batches_the_engine_already_took(engine: Engine, make_clip, tmp_path: Path) -> None:
    """Ctrl-C while a finished batch waits to be queued (as on CUDA, where batches are in flight):
    its frames are still written."""
    src = make_clip("a.mp4", width=64, height=48, frames=30)

    class InterruptAfterCollect(FlakyEngine):
        def submit(self, *args: Any, **kwargs: Any) -> Any:
            handle = super().submit(*args, **kwargs)
            if self.calls == 3:
                original = handle.result

                def result() -> np.ndarray:  # the batch is done, then Ctrl-C lands
                    original()  # collect the batch (its frames are written), then interrupt
                    handle.result = original
                    raise KeyboardInterrupt
                handle.result = result
            return handle

    _, error = run_with_timeout(lambda: deblur_file(src, tmp_path / "out.mp4", InterruptAfterCollect(engine),
                                                    RunOptions(queue_size=2)))
    assert isinstance(error, RunInterrupted)
    assert len(decode(tmp_path / "out.mp4").frames) == error.stats.frames == 3 * engine.batch_size


def test_stop_event_ends_early_with_a_playable_file(engine: Engine, make_clip, tmp_path: Path) -> None:
    src = make_clip("a.mp4", width=64, height=48, frames=40)
    stop = threading.Event()
    seen: list[tuple[int, int | None]] = []

    def progress(done: int, total: int | None) -> None:
        seen.append((done, total))
        if done == 5:
            stop.set()
    stats, error = run_with_timeout(lambda: deblur_file(src, tmp_path / "out.mp4", engine,
                                                        RunOptions(stop=stop, progress=progress, queue_size=2)))
    assert error is None and stats.extra["stopped_early"] is True
    assert 5 <= stats.frames < 40 and len(decode(tmp_path / "out.mp4").frames) == stats.frames
    assert seen[0] == (1, 40) and [d for d, _ in seen] == list(range(1, stats.frames + 1))


def test_progress_total_follows_the_timestamps_when_the_header_count_is_off(engine: Engine, tmp_path: Path) -> None:
    pts = [0, 3, 4, 9, 12, 20, 25, 27, 33, 40, 41, 47, 52, 60]  # 14 frames in 61 AVI slots
    src = avi_with_empty_slots(tmp_path / "gaps.avi", pts)
    seen: list[tuple[int, int | None]] = []
    stats = deblur_file(src, tmp_path / "out.mp4", engine,
                        RunOptions(progress=lambda done, total: seen.append((done, total))))
    assert stats.frames == 14 and stats.extra["frames_lost"] == 0
    assert seen[0] == (1, 61)  # the header's count until ten frames' timestamps say otherwise
    assert seen[9] == (10, 15) and seen[-1] == (14, 14)


def test_progress_total_keeps_the_header_count_through_a_pause(engine: Engine, tmp_path: Path) -> None:
    """A video that pauses for a minute: the timestamps so far scaled to its length said thousands of
    frames (a 1500-frame MP4 showed 133/15346 and an ETA ten times too long); they only lower a count."""
    src = _irregular_clip(tmp_path / "pause.mp4", (40,) * 19 + (60_000,), 40)
    seen: list[tuple[int, int | None]] = []
    deblur_file(src, tmp_path / "out.mp4", engine, RunOptions(progress=lambda done, total: seen.append((done, total))))
    assert {total for _, total in seen} == {40}


def test_progress_total_of_a_variable_rate_matroska_follows_its_timestamps(engine: Engine, tmp_path: Path) -> None:
    """Matroska counts no frames: its 'count' is the duration times a nominal rate, which for a
    variable-rate clip was 75 % over (300 frames shown as /523) once the timestamps were not let correct it."""
    src = remuxed(_irregular_clip(tmp_path / "vfr.mp4", (17, 33, 50, 100), 40), tmp_path / "vfr.mkv")
    seen: list[tuple[int, int | None]] = []
    deblur_file(src, tmp_path / "out.mkv", engine, RunOptions(progress=lambda done, total: seen.append((done, total))))
    assert all(abs(total - 40) <= 6 for done, total in seen if done >= 10), seen  # it said 116 throughout


def test_max_frames(engine: Engine, make_clip, tmp_path: Path) -> None:
    src = make_clip("a.mp4", width=64, height=48, frames=20)
    stats = deblur_file(src, tmp_path / "out.mp4", engine, RunOptions(max_frames=7))
    assert stats.frames == 7 and len(decode(tmp_path / "out.mp4").frames) == 7 and stats.warnings == ()


def test_warmup_is_whole_batches(engine: Engine, make_clip, tmp_path: Path) -> None:
    """A frame of the last warm-up frame's batch finishes with it: counted in the window, it would
    cost nothing and inflate the fps (batch 4, warm-up 5: the window starts after frame 8)."""
    src = make_clip("a.mp4", width=64, height=48, frames=13)
    stats = deblur_file(src, tmp_path / "out.mp4", engine, RunOptions(warmup_frames=5))
    assert stats.warmup_frames == 8 and stats.window["frames"] == 5
    short = deblur_file(src, tmp_path / "short.mp4", engine, RunOptions(warmup_frames=5, max_frames=9))
    assert short.warmup_frames == 8 and short.window["frames"] == 1  # one frame after whole batches is a window


def test_truncated_input_deblurs_what_decodes_and_warns_once(engine: Engine, make_clip, tmp_path: Path) -> None:
    cut = truncated_copy(make_clip("a.mp4", width=64, height=48, frames=40), tmp_path / "cut.mp4")
    stats = deblur_file(cut, tmp_path / "out.mp4", engine)
    lost = 40 - stats.frames
    assert 0 < stats.frames < 40 and len(decode(tmp_path / "out.mp4").frames) == stats.frames
    assert len(stats.warnings) == 1 and f"{lost} lost" in stats.warnings[0]
    assert stats.extra["frames_lost"] == lost


def test_queues_are_bounded_under_a_slow_model(engine: Engine, make_clip, tmp_path: Path) -> None:
    """A slow model pushes back on the decoder: memory stays flat whatever the video length."""
    src = make_clip("a.mp4", width=64, height=48, frames=24)
    slow = FlakyEngine(engine, delay_s=0.03)
    stats = deblur_file(src, tmp_path / "out.mp4", slow, RunOptions(queue_size=3))
    queues = {name: s.queue_max for name, s in stats.stages.items() if s.queue_max is not None}
    assert queues and all(q <= 3 for q in queues.values())
    assert stats.stages["infer"].queue_max == 3  # the decoder ran ahead until the queue was full


def test_bad_options() -> None:
    for kwargs in ({"queue_size": 0}, {"crf": 60}, {"max_frames": 0}, {"warmup_frames": -1}, {"decode_threads": -1}):
        with pytest.raises(ConfigError):
            RunOptions(**kwargs)


def test_a_preset_that_is_not_x264s_is_a_config_error() -> None:
    """Only the command checked --preset: through the library "turbo" reached libx264, which logged
    "invalid preset" and failed to open ("cannot open encoder libx264 ... Invalid argument")."""
    from videodeblur.cli._common import preset_option
    from videodeblur.option_values import PRESETS
    from videodeblur.video.encoders import _SVT_PRESET, _VPX_SPEED

    with pytest.raises(ConfigError, match="preset must be one of ultrafast, .*, placebo, got 'turbo'"):
        RunOptions(preset="turbo")
    assert [RunOptions(preset=name).preset for name in PRESETS] == list(PRESETS)
    assert preset_option("")(lambda: None).__click_params__[0].type.choices == PRESETS  # the command checks the same
    assert tuple(_VPX_SPEED) == PRESETS  # and libvpx has a speed for each
    assert tuple(_SVT_PRESET) == PRESETS  # and SVT-AV1 a preset number (44ab4c9 spelled the names a third time)


def test_unknown_encoder_fails_before_decoding(engine: Engine, make_clip, tmp_path: Path) -> None:
    src = make_clip("a.mp4", width=64, height=48, frames=3)
    with pytest.raises(EncodeError, match="unknown encoder"):
        deblur_file(src, tmp_path / "out.mp4", engine, RunOptions(encoder="nope"))


def test_deblurrer_facade(make_clip, tmp_path: Path) -> None:
    from videodeblur import Deblurrer

    d = Deblurrer("lprn-fast", device="cpu")
    stats = d.file(make_clip("a.mp4", width=64, height=48, frames=4), tmp_path / "out.mp4")
    assert stats.frames == 4 and len(decode(tmp_path / "out.mp4").frames) == 4
    frame = decode(tmp_path / "out.mp4").frames[0]
    assert d.frames(frame).shape == frame.shape and d.frames(frame[None]).shape == (1, *frame.shape)
    assert np.array_equal(d.frames(frame), d.engine.process(frame[None])[0])
    again = d.file(tmp_path / "a.mp4", tmp_path / "out.mp4", resume=True)
    assert (again.frames, again.extra["resumed_frames"]) == (0, 4)
    part = d.file(tmp_path / "a.mp4", tmp_path / "part.mp4", start_s=0.04, duration_s=0.08)
    assert part.frames == 2 and len(decode(tmp_path / "part.mp4").frames) == 2


def _rgb48(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb48le").astype(np.float64) for f in c.decode(video=0)]


def test_ten_bit_input_comes_out_ten_bit(engine: Engine, make_clip, tmp_path: Path) -> None:
    """10-bit in, 10-bit out: the network's 8-bit change is added to the 10-bit source, so an
    identity network gives back the source's precision, where an 8-bit output rounds it away."""
    src = make_clip("ten.mp4", width=64, height=48, frames=4, pix_fmt="yuv420p10le")
    stats = deblur_file(src, tmp_path / "out.mp4", engine)
    assert stats.frames == 4 and stats.warnings == ()
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p10le"
    eight = deblur_file(src, tmp_path / "eight.mp4", engine, RunOptions(deep=False))
    assert eight.warnings == (f"{src} is 10-bit (yuv420p10le); written as 8-bit, as --eight-bit asks",)
    # Through an identity network and a lossless encoder (FFV1), a 4:4:4 10-bit source comes back
    # bit for bit at 10 bits; at 8 bits it is rounded (about 0.6 levels of 255, RMS).
    identity = Engine(LoadedModel("identity", Path("identity.pt"), torch.nn.Identity(), {}),  # type: ignore[arg-type]
                      EngineOptions(device="cpu"))
    full = make_clip("ten444.mp4", width=64, height=48, frames=3, pix_fmt="yuv444p10le")
    for deep in (True, False):
        run = deblur_file(full, tmp_path / f"id{deep}.mkv", identity, RunOptions(deep=deep, encoder="ffv1"))
        assert run.warnings == (() if deep else (f"{full} is 10-bit (yuv444p10le); written as 8-bit, as --eight-bit asks",))
    source, kept, rounded = _rgb48(full), _rgb48(tmp_path / "idTrue.mkv"), _rgb48(tmp_path / "idFalse.mkv")
    assert all(np.array_equal(k, s) for k, s in zip(kept, source))
    assert np.sqrt(np.mean((np.stack(rounded) - np.stack(source)) ** 2)) > 257 / 4
    truth = [clip_frame(i, 64, 48) for i in range(4)]  # the pictures the clip was made from
    ffmpeg = [psnr(x, t) for x, t in zip(decode(src).frames, truth)]  # FFmpeg's own 10-bit → RGB
    for on_device in (False, True):  # both colour paths read 10-bit as well as FFmpeg does (within 1 dB)
        deblur_file(src, tmp_path / f"o{on_device}.mp4", identity,  # 8-bit out: crf 0 is lossless there
                    RunOptions(colour_on_device=on_device, crf=0, deep=False))
        ours = [psnr(x, t) for x, t in zip(decode(tmp_path / f"o{on_device}.mp4").frames, truth)]
        assert all(o > f - 1.0 for o, f in zip(ours, ffmpeg)), (on_device, ours, ffmpeg)


@pytest.mark.parametrize("suffix", [".mp4", ".webm", ".mkv"])
def test_resume_goes_on_from_an_interrupted_run(suffix: str, engine, make_clip, tmp_path: Path) -> None:
    """A run stopped after 15 of 40 frames, then resumed: the output holds all 40 with the source's
    timestamps and audio, the first 15 are the interrupted run's packets, the rest match a
    run from the start (up to encoding), and nothing is left beside it. MP4's H.264 goes through
    Annex B on the way; WebM's VP9 is copied as it is. Matroska moves every time by the AAC's
    priming delay (21 ms) and stores no dts for H.264 with B-frames: both undone on the way."""
    src = make_clip("a.mp4", width=64, height=48, frames=40, audio=True)
    out, whole = tmp_path / f"out{suffix}", tmp_path / f"whole{suffix}"
    first = deblur_file(src, out, engine, RunOptions(max_frames=15, warmup_frames=0))
    assert first.extra["frames_written"] == 15
    with av.open(str(out)) as c:
        before = [bytes(p) for p in c.demux(c.streams.video[0]) if p.size]
    resumed = deblur_file(src, out, engine, RunOptions(resume=True, warmup_frames=0))
    assert (resumed.frames, resumed.extra["frames_written"], resumed.extra["resumed_frames"]) == (25, 40, 15)
    deblur_file(src, whole, engine, RunOptions(warmup_frames=0))
    got, expected, source = decode(out), decode(whole), decode(src)
    # (a whole run into Matroska is 21 ms later too: it moves every track by the AAC's priming, as ffmpeg does)
    assert got.pts_seconds == expected.pts_seconds and len(got.audio) == len(expected.audio) > 0
    assert suffix == ".mkv" or got.pts_seconds == source.pts_seconds
    # two encodes of the same deblurred frames (x264 restarts its GOP and rate control): close, not equal
    assert min(psnr(a, b) for a, b in zip(got.frames, expected.frames)) > 30
    with av.open(str(out)) as c:
        after = [bytes(p) for p in c.demux(c.streams.video[0]) if p.size][:15]
    # unchanged, but for the SPS and PPS that going through Annex B puts in the first keyframe
    assert after[1:] == before[1:] and (after[0] == before[0] if suffix == ".webm" else len(after[0]) > len(before[0]))
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix in (".mp4", ".webm", ".mkv")) == [
        "a.mp4", f"out{suffix}", f"whole{suffix}"]
    again = deblur_file(src, out, engine, RunOptions(resume=True))  # finished already: nothing to do
    assert (again.frames, again.extra["frames_written"]) == (0, 40) and len(decode(out).frames) == 40
    assert list(again.warnings) == [f"{out} already holds all 40 frames of {src}: nothing to resume"]
    with pytest.raises(OutputError, match=r"it is finished, made by videodeblur lprn-fast, weights [0-9a-f]{8}; "
                                          r"this run's would be made by videodeblur lprn-fast side-by-side, "
                                          r"weights [0-9a-f]{8}: run without --resume"):
        deblur_file(src, out, engine, RunOptions(resume=True, side_by_side=True))  # not another way, silently
    assert len(decode(out).frames) == 40


@pytest.mark.parametrize("rate", ["constant", "variable"])
def test_resume_of_a_file_cut_mid_group_keeps_only_its_whole_prefix(engine, make_clip, tmp_path: Path,
                                                                    rate: str) -> None:
    """A write that failed (a full disk, a file-size limit) cuts a Matroska file in decode order: with
    B-frames, frames shown before its last ones are missing. --resume refused it as "made from another
    video"; now it keeps the frames before the last keyframe that leaves none missing (here the first:
    all are made again) and the result has every frame, on the source's times. At a variable rate the
    missing frames are told by the source's own frame times (the spacing cannot tell them)."""
    src = (make_clip("a.mp4", width=64, height=48, frames=40) if rate == "constant"
           else _irregular_clip(tmp_path / "a.mp4", (17, 33, 50, 100), 40))
    whole = tmp_path / "whole.mkv"
    deblur_file(src, whole, engine, RunOptions(warmup_frames=0))
    with av.open(str(whole)) as c:
        video = c.streams.video[0]
        packets = [(p.pts, p.pos) for p in c.demux(video) if p.size]
    shown = sorted(p for p, _ in packets)
    # a cut in decode order that leaves a frame shown before its last one missing
    cut = next(k for k in range(len(packets) - 1, 10, -1) if sorted(p for p, _ in packets[:k]) != shown[:k])
    out = tmp_path / "out.mkv"
    out.write_bytes(whole.read_bytes()[:packets[cut][1]])  # the file as a failed write left it
    from videodeblur.pipeline.runner import _left_behind
    if rate == "constant":  # (the failure's message has no source times: at a variable rate it cannot tell)
        assert _left_behind(out, False) == (f"the file left at {out} plays {cut} frames, cut off in the middle of "
                                            "a group of frames (--resume makes them again)")  # it said "its first {cut}"
    resumed = deblur_file(src, out, engine, RunOptions(resume=True, warmup_frames=0))
    assert resumed.extra["frames_written"] == 40
    assert decode(out).pts_seconds == decode(whole).pts_seconds


def test_closed_prefix_cuts_before_the_last_keyframe_that_leaves_no_frame_missing() -> None:
    from videodeblur.video.partial_output import closed_prefix

    # decode order of I0 P4 B2 b1 b3 | I5 P9 B7 b6 b8 | I10 P14 (B12 b11 b13 lost), frames 10 ticks apart
    gops = [(0, True), (40, False), (20, False), (10, False), (30, False)]
    entries = gops + [(p + 50, k) for p, k in gops] + [(100, True), (140, False)]
    assert closed_prefix(entries) == 10  # the third group lacks 110-130: kept up to its keyframe
    assert closed_prefix(entries[:10]) == 10  # whole as it is
    assert closed_prefix(entries[:2] + [(40, False)]) == 3  # too few frames to tell a rate: kept
    irregular = [(0, True), (17, False), (50, False), (100, False), (200, False), (217, False), (250, False),
                 (300, False), (400, False), (417, False)]
    assert closed_prefix(irregular) == 10  # frames at irregular times: kept as they are


def _irregular_clip(path: Path, steps_ms: tuple[int, ...], frames: int) -> Path:
    """H.264 (with B-frames) at a 1/1000 time base whose frames are ``steps_ms`` apart in turn."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.time_base = stream.time_base = Fraction(1, 1000)
        pts = 0
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(clip_frame(i, 64, 48), format="rgb24")
            frame.pts, frame.time_base = pts, Fraction(1, 1000)
            pts += steps_ms[i % len(steps_ms)]
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def test_resume_refuses_another_take_of_the_same_length(engine, make_clip, tmp_path: Path) -> None:
    """Frame count and times alone let another video of the same length through (GoPro chapters
    are): the output's last kept frame must show the source's frame there."""
    src = make_clip("a.mp4", width=64, height=48, frames=30)
    other = tmp_path / "other.mp4"
    with av.open(str(other), "w") as container:  # same size, rate, count and times; another picture
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 25)
        for i in range(30):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 128 + i, np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    out = tmp_path / "out.mp4"
    deblur_file(src, out, engine, RunOptions(max_frames=12))
    before = out.read_bytes()
    with pytest.raises(OutputError, match="does not show frame 12 of .*other.mp4 where it ends: it was made from "
                                          "another video"):
        deblur_file(other, out, engine, RunOptions(resume=True))
    assert out.read_bytes() == before  # put back as it was, byte for byte (it was left remuxed)
    deblur_file(src, out, engine, RunOptions(resume=True))  # finished from its own video
    with pytest.raises(OutputError, match="its last one does not show the input's last: it was made from another"):
        deblur_file(other, out, engine, RunOptions(resume=True))  # a finished output is checked too
    sbs = tmp_path / "sbs.mp4"  # a side-by-side output's kept frame shows the source twice
    deblur_file(src, sbs, engine, RunOptions(max_frames=12, side_by_side=True))
    assert deblur_file(src, sbs, engine, RunOptions(resume=True, side_by_side=True)).extra["frames_written"] == 30
    again = deblur_file(src, sbs, engine, RunOptions(resume=True, side_by_side=True))  # finished: nothing to do
    assert again.frames == 0 and again.extra["frames_written"] == 30


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_resume_refuses_a_finished_output_of_another_videos_frame_times(suffix: str, engine, make_clip,
                                                                        tmp_path: Path) -> None:
    """A finished output of a 25 fps clip, resumed with another of the same size, pictures and frame
    count but frames 33 and 50 ms apart, was "already finished: nothing to resume" (exit 0), keeping
    the first clip's times; an interrupted one is refused by the frame it goes on from."""
    src = make_clip("a.mp4", width=64, height=48, frames=30)
    other = _irregular_clip(tmp_path / "other.mp4", (33, 50), 30)  # the same pictures
    out = tmp_path / f"out{suffix}"
    deblur_file(src, out, engine)
    with pytest.raises(OutputError, match=r"its frame \d+ is shown at another time: it was made from another video"):
        deblur_file(other, out, engine, RunOptions(resume=True))
    assert decode(out).pts_seconds == decode(src).pts_seconds  # left as it was
    again = deblur_file(src, out, engine, RunOptions(resume=True))  # its own video: nothing to do
    assert again.frames == 0 and again.extra["frames_written"] == 30


def test_resume_from_a_clip_of_another_rate_says_so(engine, make_clip, tmp_path: Path) -> None:
    """The stream header holds the frame rate: an output interrupted on a 25 fps clip, resumed with a
    30 fps one, was refused as "encoded with other settings (--crf, ...)", which nobody had changed.
    (Naming the rates was wrong in turn for a variable-rate part, whose measured rate is not its
    source's: both causes are said.)"""
    src = make_clip("a.mp4", width=64, height=48, frames=20)
    other = make_clip("b.mp4", width=64, height=48, frames=20, fps=30)
    out = tmp_path / "out.mp4"
    deblur_file(src, out, engine, RunOptions(max_frames=8))
    with pytest.raises(OutputError, match=r"its stream header differs from this run's: it was encoded with other "
                                          r"settings \(--crf, --preset, --encoder or --fragmented\), or made from "
                                          r"another video"):
        deblur_file(other, out, engine, RunOptions(resume=True))
    assert len(decode(out).frames) == 8


def test_resume_of_an_unreadable_output_hints_at_mp4_only_for_an_mp4(engine, make_clip, tmp_path: Path) -> None:
    """A WebM that is no readable video: the refusal said "an MP4 of a run killed outright has no
    index; --fragmented avoids that", for a fragmented WebM."""
    src = make_clip("a.mp4", width=64, height=48, frames=5)
    out = tmp_path / "out.webm"
    out.write_bytes(b"\x1a\x45\xdf\xa3" + bytes(range(256)) * 4)  # an EBML mark, then no Matroska
    with pytest.raises(OutputError) as refused:
        deblur_file(src, out, engine, RunOptions(resume=True, fragmented=True))
    assert "cannot resume" in str(refused.value) and "MP4" not in str(refused.value)


def _no_frame(path: Path, codec: str, *, sound: bool = False) -> Path:
    """An output a run stopped before its first frame could leave: its header, its video track declared
    and empty, with or without the sound muxed before the stop."""
    with av.open(str(path), "w") as container:
        video = container.add_stream(codec, rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = container.add_stream("aac", rate=48000, layout="stereo") if sound else None
        container.start_encoding()
        if audio is not None:
            for i in range(5):
                frame = av.AudioFrame.from_ndarray(np.zeros((2, 1024), np.float32), format="fltp", layout="stereo")
                frame.sample_rate, frame.pts = 48000, i * 1024
                container.mux(audio.encode(frame))
            container.mux(audio.encode(None))
    return path


@pytest.mark.parametrize("name, codec, sound", [("out.mkv", "libx264", False), ("out.webm", "libvpx-vp9", False),
                                                ("out.mp4", "libx264", False), ("out.mp4", "libx264", True)])
def test_resume_onto_an_output_that_holds_no_frame_starts_from_the_first(engine, make_clip, tmp_path: Path, name: str,
                                                                         codec: str, sound: bool) -> None:
    """A Matroska or WebM header with no frame after it (FFmpeg cannot open it: "End of file") and an
    MP4 whose empty video track FFmpeg leaves out (no stream, or only the sound) were refused ("it is
    not a readable video", "it has no video stream"): they hold nothing to keep, and --resume now
    writes them from the first frame, with a warning that says so."""
    src = make_clip("a.mp4", width=64, height=48, frames=5)
    out = _no_frame(tmp_path / name, codec, sound=sound)
    stats = deblur_file(src, out, engine, RunOptions(resume=True))
    assert (stats.frames, stats.extra["resumed_frames"], len(decode(out).frames)) == (5, 0, 5)
    assert stats.warnings[0] == (f"{out} held no frame to go on from (its run stopped before its first): "
                                 "written from the first frame")
    assert not list(tmp_path.glob("*.partial.*"))
    assert not any("held no frame" in w for w in deblur_file(src, tmp_path / "new.mkv", engine,
                                                              RunOptions(resume=True)).warnings)  # no file: no word


def test_resume_onto_an_output_whose_video_track_holds_no_frame_starts_from_the_first(engine, make_clip,
                                                                                     tmp_path: Path) -> None:
    """A Matroska output with its video track declared and no frame in it (only sound came before the
    stop) was refused as "it holds h264 64x48 None, this run writes libx264 64x48 yuv420p": there is
    nothing in it to keep, and the run now writes it from the first frame, as onto an empty file."""
    src = make_clip("a.mp4", width=64, height=48, frames=5)
    out = tmp_path / "out.mkv"
    with av.open(str(out), "w") as container:
        video = container.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sound = container.add_stream("aac", rate=48000, layout="stereo")
        for i in range(5):
            frame = av.AudioFrame.from_ndarray(np.zeros((2, 1024), np.float32), format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = 48000, i * 1024
            container.mux(sound.encode(frame))
        container.mux(sound.encode(None))
    stats = deblur_file(src, out, engine, RunOptions(resume=True))
    assert (stats.frames, stats.extra["resumed_frames"], len(decode(out).frames)) == (5, 0, 5)
    assert not (tmp_path / "out.partial.mkv").exists()
    (tmp_path / "empty.mkv").write_bytes(b"")  # as an empty file was already
    assert deblur_file(src, tmp_path / "empty.mkv", engine, RunOptions(resume=True)).frames == 5


def test_a_stale_partial_file_never_takes_the_place_of_an_output_with_more_frames(engine, make_clip,
                                                                                   tmp_path: Path) -> None:
    """A resume killed outright while it copied leaves the old output as out.partial.mp4; a run
    since then (without --resume) wrote the output whole. The next --resume deleted that whole
    output for the stale 5 frames, and, refusing them (another --crf), put them back in its place:
    the whole output was lost. The .partial file now goes where the output holds more frames."""
    src = make_clip("a.mp4", width=64, height=48, frames=20)
    out, partial = tmp_path / "out.mp4", tmp_path / "out.partial.mp4"
    deblur_file(src, out, engine, RunOptions(max_frames=5))
    out.replace(partial)
    deblur_file(src, out, engine, RunOptions(crf=30))  # the run since, whole
    whole = out.read_bytes()
    stats = deblur_file(src, out, engine, RunOptions(resume=True, crf=30))
    assert (stats.frames, stats.extra["resumed_frames"]) == (0, 20)  # nothing to resume
    assert out.read_bytes() == whole and not partial.exists()
    deblur_file(src, out, engine, RunOptions(max_frames=5))
    out.replace(partial)
    deblur_file(src, out, engine, RunOptions(max_frames=12))  # a part since, longer than the stale one
    resumed = deblur_file(src, out, engine, RunOptions(resume=True))
    assert (resumed.frames, resumed.extra["resumed_frames"], len(decode(out).frames)) == (8, 12, 20)
    assert not partial.exists()


def test_resume_without_the_side_by_side_of_the_first_run_names_it(engine, make_clip, tmp_path: Path) -> None:
    """The refusal compared the sizes (128x48 against 64x48) without naming the option that doubles one."""
    src = make_clip("a.mp4", width=64, height=48, frames=20)
    out = tmp_path / "out.mp4"
    deblur_file(src, out, engine, RunOptions(max_frames=8, side_by_side=True))
    with pytest.raises(OutputError, match=r"this run writes libx264 64x48 yuv420p; --side-by-side doubles the picture: "
                                          r"give it as the first run did"):
        deblur_file(src, out, engine, RunOptions(resume=True))


def test_an_output_marked_before_weights_were_named_is_compared_by_the_rest() -> None:
    from videodeblur.video.metadata import made_otherwise

    now = "videodeblur lprn-fast, weights 1a2b3c4d"
    assert not made_otherwise("videodeblur lprn-fast", now)  # written by an earlier version: same model
    assert made_otherwise("videodeblur lprn", now) and made_otherwise("videodeblur lprn-fast, weights 99999999", now)
    assert not made_otherwise("Lavf encoder", now)  # not ours: nothing to compare


def test_resume_of_ten_bit_hevc_in_matroska(engine, make_clip, tmp_path: Path) -> None:
    """Matroska stores no decode times: the muxer's guess for HEVC's first ones (no reordering) came
    after the next one's, and the copy stopped at frame 2 with "Invalid argument"."""
    src = make_clip("ten.mkv", width=64, height=48, frames=30, codec="libx265", pix_fmt="yuv420p10le")
    out = tmp_path / "out.mkv"
    deblur_file(src, out, engine, RunOptions(max_frames=13))
    resumed = deblur_file(src, out, engine, RunOptions(resume=True))
    assert resumed.extra["resumed_frames"] == 13 and resumed.extra["frames_written"] == 30
    assert decode(out).pts_seconds == decode(tmp_path / "ten.mkv").pts_seconds


def test_resume_keeps_variable_frame_timing(engine, tmp_path: Path) -> None:
    """Frames 17 to 100 ms apart: the resumed encoder's first decode time, worked out from its own
    spacing, reached back to the copied frames' last one; the MP4 muxer refused it partway, after
    writing scrambled times."""
    src = _irregular_clip(tmp_path / "vfr.mp4", (17, 33, 50, 100), 40)
    out = tmp_path / "out.mp4"
    deblur_file(src, out, engine, RunOptions(max_frames=14, warmup_frames=0))
    resumed = deblur_file(src, out, engine, RunOptions(resume=True, warmup_frames=0))
    assert resumed.extra["resumed_frames"] == 14 and resumed.extra["frames_written"] == 40
    assert decode(out).pts_seconds == decode(src).pts_seconds


def test_resume_refuses_a_part_made_with_start(engine, make_clip, tmp_path: Path) -> None:
    """An output of --start 0.4 (frames 10-29 of 30, moved to 0), resumed as the whole input, was taken
    for its first 20 frames where the picture hardly moves: frames 10-29 then 20-29 again, exit 0. Its
    mark says where the part starts, and a resume is refused, finished or interrupted; a look with
    --duration alone starts where the input does, and goes on."""
    src = make_clip("a.mp4", width=64, height=48, frames=30)
    part = tmp_path / "part.mp4"
    deblur_file(src, part, engine, RunOptions(start_s=0.4))
    size = part.stat().st_size
    with pytest.raises(OutputError, match=r"holds a part of the input \(made with --start\)"):
        deblur_file(src, part, engine, RunOptions(resume=True))
    assert part.stat().st_size == size
    deblur_file(src, part, engine, RunOptions(start_s=0.4, max_frames=5))  # interrupted
    with pytest.raises(OutputError, match=r"holds a part of the input"):
        deblur_file(src, part, engine, RunOptions(resume=True))
    look = tmp_path / "look.mp4"
    deblur_file(src, look, engine, RunOptions(duration_s=0.4))
    assert deblur_file(src, look, engine, RunOptions(resume=True)).extra["frames_written"] == 30


def test_resume_refuses_other_settings_and_another_video(engine, make_clip, tmp_path: Path) -> None:
    """Other encoder settings would make the new frames undecodable with the old header, and
    another model would not match the first half: both refused, and the interrupted output is put
    back as it was. An output of another (longer) video is
    refused once the input runs out; it is put back as it was too, byte for byte."""
    src = make_clip("a.mp4", width=64, height=48, frames=30)
    out = tmp_path / "out.mp4"
    deblur_file(src, out, engine, RunOptions(max_frames=12))
    size = out.stat().st_size
    with pytest.raises(OutputError, match="other settings"):
        deblur_file(src, out, engine, RunOptions(resume=True, crf=30))
    assert out.stat().st_size == size and not (tmp_path / "out.partial.mp4").exists()
    other = Engine.from_name("lprn", EngineOptions(device="cpu"))
    with pytest.raises(OutputError, match=r"made by videodeblur lprn-fast, weights \w{8}, this run's by videodeblur lprn, "):
        deblur_file(src, out, other, RunOptions(resume=True))  # half one model, half another: refused
    assert out.stat().st_size == size
    deblur_file(src, tmp_path / "out.mkv", engine, RunOptions(max_frames=12))  # Matroska reads it as HANDLER_NAME
    with pytest.raises(OutputError, match=r"made by videodeblur lprn-fast, weights \w{8}, this run's by videodeblur lprn, "):
        deblur_file(src, tmp_path / "out.mkv", other, RunOptions(resume=True))
    tuned = load_model("lprn-fast")  # a fine-tune saved as lprn-fast.pt: the same name, other weights
    with torch.no_grad():
        next(tuned.network.parameters()).add_(0.01)
    with pytest.raises(OutputError, match="its frames were made by videodeblur lprn-fast, weights"):
        deblur_file(src, out, Engine(tuned, EngineOptions(device="cpu")), RunOptions(resume=True))
    short = make_clip("b.mp4", width=64, height=48, frames=8)
    before = out.read_bytes()
    with pytest.raises(OutputError, match="has only 8"):
        deblur_file(short, out, engine, RunOptions(resume=True))
    # refused in the run, once its frames were copied: the old file goes back, not a remuxed copy of it
    assert out.read_bytes() == before and not (tmp_path / "out.partial.mp4").exists()


def test_parameter_sets_read_alike_from_the_encoder_and_the_file(make_clip) -> None:
    """The encoder's Annex B header and MP4's avcC record hold the same SPS and PPS."""
    from videodeblur.video.headers import parameter_sets

    src = make_clip("a.mp4", width=64, height=48, frames=2)
    with av.open(str(src)) as c:
        stored = c.streams.video[0].codec_context.extradata
    assert stored[:1] == b"\x01"
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt, ctx.time_base = 64, 48, "yuv420p", Fraction(1, 25)
    ctx.flags |= av.codec.context.Flags.global_header
    ctx.open()
    assert ctx.extradata[:4] == b"\x00\x00\x00\x01"
    ours, theirs = parameter_sets(ctx.extradata, "h264"), parameter_sets(stored, "h264")
    assert ours is not None and len(ours) == 2 and {u[0] & 0x1F for u in ours} == {7, 8}
    assert theirs is not None and len(theirs) == 2
    assert parameter_sets(b"\x01\x02", "vp9") is None and parameter_sets(b"\x01", "h264") is None


@pytest.mark.parametrize("container", ["mkv", "ts"])
def test_a_part_of_the_file_is_a_file_of_its_own(container: str, engine, make_clip, tmp_path: Path) -> None:
    """--start 0.4 --duration 0.8 of a 25 fps clip: its frames 10-29 (reached by seeking: MKV has an
    index, MPEG-TS does not), moved to start at 0, the same pictures as in a whole run, audio and
    chapters cut to the part and moved with it."""
    from _clips_video import with_chapters

    clip = make_clip("a.mp4", width=64, height=48, frames=40, audio=True)
    src = with_chapters(clip, tmp_path / "chapters.mkv", [(0.0, 0.6, "A"), (0.6, 1.6, "B")])
    if container == "ts":
        src = remuxed(clip, tmp_path / "a.ts")
    part, whole = tmp_path / "part.mkv", tmp_path / "whole.mkv"
    stats = deblur_file(src, part, engine, RunOptions(start_s=0.4, duration_s=0.8, warmup_frames=0))
    deblur_file(src, whole, engine, RunOptions(warmup_frames=0))
    got, everything = decode(part), decode(whole)
    first = everything.pts_seconds[0]
    assert stats.frames == 20 and stats.warnings == ()
    assert got.pts_seconds == [t - everything.pts_seconds[10] for t in everything.pts_seconds[10:30]]
    assert float(everything.pts_seconds[10] - first) == pytest.approx(0.4)
    assert min(psnr(a, b) for a, b in zip(got.frames, everything.frames[10:30])) > 30
    with av.open(str(part)) as c:
        audio = [f for f in c.decode(audio=0)]
        seconds = sum(f.samples for f in audio) / audio[0].sample_rate
        chapters = [(round(float(ch["start"] * ch["time_base"]), 3), round(float(ch["end"] * ch["time_base"]), 3),
                     ch["metadata"]["title"]) for ch in c.chapters()]
    assert seconds == pytest.approx(0.8, abs=0.03)
    if container == "mkv":  # the chapter marks stay where they were on the source's timeline
        cut = round(0.6 - 0.4 - float(first), 3)  # its first frame: after AAC's priming, Matroska shifts it
        assert chapters == [(0.0, cut, "A"), (cut, 0.8, "B")]


def test_a_part_must_be_inside_the_file(engine, make_clip, tmp_path: Path) -> None:
    src = make_clip("a.mp4", width=64, height=48, frames=10)
    with pytest.raises(ConfigError, match="past the end"):
        deblur_file(src, tmp_path / "out.mp4", engine, RunOptions(start_s=5.0))
    assert not (tmp_path / "out.mp4").exists()
    with pytest.raises(ConfigError, match="cannot be combined"):
        RunOptions(resume=True, duration_s=2.0)


def test_deinterlace_removes_the_combing_and_keeps_the_timing(engine, tmp_path: Path) -> None:
    """--deinterlace: each interlaced frame becomes one progressive frame at its own time (same count
    and timestamps), and the comb a moving bar leaves in alternate lines is gone."""
    from _clips_video import combed_clip, combing

    src = combed_clip(tmp_path / "i.mp4")
    plain = deblur_file(src, tmp_path / "plain.mp4", engine, RunOptions(warmup_frames=0))
    clean = deblur_file(src, tmp_path / "clean.mp4", engine, RunOptions(warmup_frames=0, deinterlace=True))
    assert plain.frames == clean.frames == 6 and len(plain.warnings) == 1 and clean.warnings == ()
    combed, deinterlaced, source = decode(tmp_path / "plain.mp4"), decode(tmp_path / "clean.mp4"), decode(src)
    assert deinterlaced.pts_seconds == source.pts_seconds
    for a, b in zip(combed.frames[1:-1], deinterlaced.frames[1:-1]):
        assert combing(b) < 0.5 * combing(a), (combing(a), combing(b))


def test_a_stopped_run_waits_for_a_slow_writer_into_a_file(engine: Engine, make_clip, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer left blocked after a stop is one on a pipe that does not drain (``-o - | sleep 40``);
    one writing a regular file, however slowly, is waited for: every frame taken is written and the
    file is finalised."""
    from videodeblur.pipeline import threaded_run

    monkeypatch.setattr(threaded_run, "_WRITER_GRACE_S", 0.05)
    original = FrameWriter.write

    def slow_write(self: FrameWriter, *args: Any, **kwargs: Any) -> None:
        time.sleep(0.3)  # far past the grace, frame after frame
        original(self, *args, **kwargs)

    monkeypatch.setattr(FrameWriter, "write", slow_write)
    stop = threading.Event()
    out = tmp_path / "out.mp4"
    options = RunOptions(stop=stop, queue_size=2, progress=lambda done, _total: stop.set() if done >= 2 else None)
    stats, error = run_with_timeout(lambda: deblur_file(make_clip("a.mp4", width=64, height=48, frames=40), out,
                                                        engine, options))
    assert error is None and not [w for w in stats.warnings if "took nothing more" in w]
    assert 2 <= stats.extra["frames_written"] == stats.extra["frames_decoded"] == len(decode(out).frames) < 40


def test_only_an_output_that_may_stall_is_watched(tmp_path: Path) -> None:
    """Regular files and devices always take what is written; a named pipe or a stream may not."""
    import os

    from videodeblur.pipeline.output_drain import output_drains

    (tmp_path / "out.mp4").write_bytes(b"")
    os.mkfifo(tmp_path / "fifo")
    assert output_drains(tmp_path / "out.mp4") is True and output_drains("/dev/null") is True
    assert output_drains(tmp_path / "fifo") is None and output_drains("rtmp://host/live") is None


def test_sighup_is_noted_during_the_finalising_unless_ignored() -> None:
    """SIGHUP (a closed terminal) is a stop like SIGTERM; under nohup (ignored) it stays ignored."""
    import signal

    from videodeblur.signals import signals_noted

    noted: list[str] = []
    previous = signal.signal(signal.SIGHUP, lambda *_: noted.append("handler"))
    try:
        with signals_noted(lambda: noted.append("stop")):
            signal.raise_signal(signal.SIGHUP)
        assert noted == ["stop", "handler"]
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        with signals_noted(lambda: noted.append("stop")):
            signal.raise_signal(signal.SIGHUP)
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
        assert noted == ["stop", "handler"]
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_resume_refuses_the_input_and_a_file_it_did_not_make(engine: Engine, make_clip, tmp_path: Path) -> None:
    """--resume onto the input itself, or onto a finished copy of it, found "all frames already
    there": the output-is-input check comes first, and a finished output must carry videodeblur's mark."""
    src = make_clip("a.mp4", width=64, height=48, frames=4)
    before = src.read_bytes()
    with pytest.raises(OutputError, match="is the input file"):
        deblur_file(src, src, engine, RunOptions(resume=True))
    copy = tmp_path / "copy.mp4"
    copy.write_bytes(before)
    with pytest.raises(OutputError, match=f"cannot resume {copy}: it was not made by videodeblur"):
        deblur_file(src, copy, engine, RunOptions(resume=True))
    assert src.read_bytes() == before == copy.read_bytes()


def test_resume_of_an_output_whose_video_codec_ffmpeg_cannot_tell_is_refused_in_one_line(
        run_cli, make_clip, tmp_path: Path) -> None:
    """A damaged earlier output whose video track's codec FFmpeg cannot tell: --resume ended with
    "internal error: AttributeError: 'NoneType' object has no attribute 'width'" (resume.py)."""
    src = make_clip("a.mp4", width=64, height=48, frames=4)
    out = tmp_path / "out.mkv"
    cpu = ("--model", "lprn-fast", "--device", "cpu")
    assert run_cli("video", src, "-o", out, *cpu).exit_code == 0
    data = out.read_bytes()
    assert data.count(b"V_MPEG4/ISO/AVC") == 1
    out.write_bytes(data.replace(b"V_MPEG4/ISO/AVC", b"V_MPEG4/ISO/ZZZ"))  # a CodecID FFmpeg has no codec for
    damaged = out.read_bytes()
    result = run_cli("video", src, "-o", out, *cpu, "--resume")
    assert result.exit_code == 1
    assert result.stderr.strip() == (f"videodeblur: error: cannot resume {out}: FFmpeg cannot tell the codec of its "
                                     "video stream (a damaged header); run without --resume to start again")
    assert out.read_bytes() == damaged and [p.name for p in tmp_path.iterdir() if p.name.startswith("out")] == ["out.mkv"]

def test_resume_refuses_a_part_another_program_wrote_and_still_resumes_markless_containers(
        engine: Engine, make_clip, tmp_path: Path) -> None:
    """An unfinished file another program wrote (its track says "VideoHandler") is not ours to go on
    from; AVI and MPEG-TS hold no mark at all, so their finished outputs still resume."""
    src = make_clip("a.mp4", width=64, height=48, frames=6)
    theirs = make_clip("theirs.mp4", width=64, height=48, frames=3)  # PyAV's own MP4: "VideoHandler"
    with pytest.raises(OutputError, match="not made by videodeblur"):
        deblur_file(src, theirs, engine, RunOptions(resume=True))
    for ext in ("avi", "ts"):
        first = deblur_file(src, tmp_path / f"out.{ext}", engine)
        again = deblur_file(src, tmp_path / f"out.{ext}", engine, RunOptions(resume=True))
        assert (first.frames, again.frames, again.extra["resumed_frames"]) == (6, 0, 6), ext


def test_a_default_sigterm_during_the_finalising_kills_the_process_once_the_output_is_finalised(
        make_clip, tmp_path: Path) -> None:
    """A program that installed no SIGTERM handler (SIG_DFL: its manager means to end it): the signal
    that lands while the output is finalised is noted, then delivered again, so the process dies of
    it with a file that plays, instead of living on with a RunInterrupted."""
    src = make_clip("a.mp4", width=64, height=48, frames=6)
    out = tmp_path / "out.mp4"
    script = textwrap.dedent("""
        import os, signal, sys, time
        from videodeblur.pipeline import Engine, EngineOptions, RunOptions, deblur_file
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL

        def progress(done, total):
            if done == total:  # the last frame: once the main thread is finalising, SIGTERM
                deadline = time.monotonic() + 30
                while signal.getsignal(signal.SIGTERM) is signal.SIG_DFL and time.monotonic() < deadline:
                    time.sleep(0.005)
                os.kill(os.getpid(), signal.SIGTERM)

        engine = Engine.from_name("lprn-fast", EngineOptions(device="cpu", threads=1))
        try:
            deblur_file(sys.argv[1], sys.argv[2], engine, RunOptions(progress=progress))
        except BaseException as err:
            print("raised", type(err).__name__)
        print("survived")
    """)
    result = subprocess.run([sys.executable, "-c", script, str(src), str(out)], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=TIMEOUT_S * 2)
    assert result.returncode == -signal.SIGTERM, (result.stdout, result.stderr[-2000:])
    assert "survived" not in result.stdout
    assert len(decode(out).frames) == 6


def test_a_tiling_note_is_said_only_by_the_run_that_tiled(make_clip, tmp_path: Path) -> None:
    """The engine outlives a run: a still that it ran in tiles once put its note into every later
    run's stats, tiled or not."""
    engine = Engine.from_name("lprn-fast", EngineOptions(device="cpu", batch_size=2, memory_budget=2_000_000))
    small = make_clip("small.mp4", width=64, height=48, frames=2)  # 2 frames of 64x48 fit whole in 2 MB

    def notes(stats: Any) -> list[str]:
        return [line for line in stats.warnings if "run in tiles" in line]
    assert notes(deblur_file(small, tmp_path / "1.mp4", engine)) == []
    engine.process(np.zeros((1, 240, 320, 3), np.uint8))  # a larger still through the same engine: tiled
    assert engine.auto_tile_note is not None
    assert notes(deblur_file(small, tmp_path / "2.mp4", engine)) == []
    tiled = notes(deblur_file(make_clip("big.mp4", width=128, height=96, frames=2), tmp_path / "3.mp4", engine))
    assert len(tiled) == 1 and tiled[0].startswith("2 frame(s) of 128x96 would need") and "tiles of 80 px" in tiled[0]


def test_a_stop_before_the_first_frame_is_an_empty_run_not_a_decode_error(engine: Engine, make_clip,
                                                                         tmp_path: Path) -> None:
    """A caller that cancels before the run starts (its stop already set) got "no frame could be
    decoded", as if the file were corrupt; a file that decodes to nothing still says so."""
    stop, out = threading.Event(), tmp_path / "out.mp4"
    stop.set()
    stats = deblur_file(make_clip("a.mp4", width=64, height=48, frames=4), out, engine, RunOptions(stop=stop))
    assert (stats.frames, stats.extra["frames_written"], stats.extra["stopped_early"]) == (0, 0, True)
    assert not out.exists()
    zeroed = zeroed_copy(tmp_path / "a.mp4", tmp_path / "z.mp4")
    with pytest.raises(DecodeError, match="no frame could be decoded"):
        deblur_file(zeroed, out, engine, RunOptions(stop=stop))


def test_non_finite_parts_and_untyped_options_are_config_errors() -> None:
    """NaN passed every comparison (a start of NaN was taken as 0) and NaN or infinity failed in the
    encode thread with a bare ValueError or OverflowError; "18" and None failed untyped."""
    nan, inf = float("nan"), float("inf")
    for kwargs in ({"start_s": nan}, {"start_s": inf}, {"duration_s": nan}, {"duration_s": inf},
                   {"duration_s": -inf}, {"start_s": "1"}, {"crf": "18"}, {"crf": True}, {"encoder": None}):
        with pytest.raises(ConfigError, match="must be"):
            RunOptions(**kwargs)


def test_the_last_frame_lasts_as_long_as_the_source_says(engine: Engine, tmp_path: Path) -> None:
    """A slide show's last picture is held 2 s: the output ends when the source does, not one frame
    gap after the last frame starts. (Matroska here; MP4 and MOV, whose B-frames lost the last
    frame's duration: tests/test_bframe_timing.py.)"""
    src = tmp_path / "held.mp4"
    with av.open(str(src), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        stream.codec_context.max_b_frames = 0
        for i in range(4):
            frame = av.VideoFrame.from_ndarray(clip_frame(i, 64, 48), format="rgb24")
            frame.pts, frame.time_base = 40 * i, Fraction(1, 1000)
            for packet in stream.encode(frame):
                packet.duration = 2000 if packet.pts == 120 else 40
                out.mux(packet)
        for packet in stream.encode(None):
            packet.duration = 2000 if packet.pts == 120 else 40
            out.mux(packet)
    with av.open(str(src)) as c:
        source_s = float(c.duration / av.time_base)
    assert source_s > 2.0
    deblur_file(src, tmp_path / "out.mkv", engine)
    with av.open(str(tmp_path / "out.mkv")) as c:
        assert float(c.duration / av.time_base) == pytest.approx(source_s, abs=0.01)


def test_run_pipeline_refuses_mismatched_layouts_and_leaves_no_file(tmp_path: Path,
                                                                   make_clip: Callable[..., Path]) -> None:
    """Its docstring says it closes reader and writer: a layout mismatch raised a bare ValueError and
    left both open and a 48-byte header-only file at the output."""
    src = make_clip("a.mp4", width=64, height=48, frames=4)
    reader = FrameReader(src, layout="rgb")
    writer = FrameWriter.like(tmp_path / "o.mp4", reader.info, layout="i420", audio=False)
    with pytest.raises(ConfigError, match="layout 'rgb' differs from writer layout 'i420'"):
        run_pipeline(reader, writer, engine=None)  # type: ignore[arg-type]  # never reached
    assert not (tmp_path / "o.mp4").exists()
