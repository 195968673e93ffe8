"""``videodeblur camera`` as a demanding user meets it: a --record mistake said before any work is
done, a file played whole recorded with all its sound, a webcam unplugged mid-run through the command.

Why a file of its own: these are the audit's findings (session 26), kept apart from test_camera.py's
long list so each says which promise it holds the command to.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import av
import numpy as np
import pytest


def _refuse_work(monkeypatch) -> list[str]:
    """Make opening the source and loading the model fail the test, and note that they were tried."""
    import videodeblur.pipeline.live_workers as live_workers
    import videodeblur.video.capture as capture

    tried: list[str] = []

    def source(*args: object, **kwargs: object) -> None:
        tried.append("source opened")
        raise AssertionError("the source was opened before --record was checked")

    def engines(*args: object, **kwargs: object) -> None:
        tried.append("model loaded")
        raise AssertionError("the model was loaded before --record was checked")

    monkeypatch.setattr(capture, "open_source", source)
    monkeypatch.setattr(live_workers, "live_engines", engines)
    return tried


@pytest.mark.parametrize("record, said", [
    ("missing/out.mp4", "does not exist"),
    (".", "is a folder"),
    ("in.mp4", "is the input file"),
    ("out.xyz", "names no container"),
    ("out", "names no container"),
    ("out.png", "is a picture format, not a video"),
    ("out.gif", "is a picture format, not a video"),
    ("out.wav", "cannot hold"),
    ("out.mp3", "cannot hold"),
    ("-", "standard output carries the run's stats"),  # it got the video, then the stats, in one stream
])
def test_a_record_path_that_cannot_be_written_fails_before_the_source_or_model_is_touched(
        make_clip, run_cli, monkeypatch, tmp_path: Path, record: str, said: str) -> None:
    clip = make_clip(tmp_path / "in.mp4", width=64, height=48, frames=3)
    monkeypatch.chdir(tmp_path)
    tried = _refuse_work(monkeypatch)
    result = run_cli("camera", "--source", clip, "--no-preview", "--model", "lprn-fast", "--device", "cpu",
                     "--record", record)
    assert tried == []
    assert result.exit_code == 1
    # one line, naming what was asked for; no "running headless" note before it: nothing had begun
    assert len(result.stderr_lines) == 1 and said in result.stderr, result.stderr
    assert (Path(record).parts or (".",))[0] in result.stderr.partition("error:")[2]  # the file, or its missing folder
    assert "--encoder" not in result.stderr  # an option the camera command does not have
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]  # nothing left behind


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".mov", ".webm"])
def test_each_container_the_video_command_writes_still_records_every_frame(
        make_clip, run_cli, tmp_path: Path, suffix: str) -> None:
    clip = make_clip(tmp_path / "in.mp4", width=64, height=48, frames=4)
    out = tmp_path / f"rec{suffix}"
    result = run_cli("camera", "--source", clip, "--no-preview", "--model", "lprn-fast", "--device", "cpu",
                     "--record", out, "--json")
    assert result.exit_code == 0, result.stderr
    stats = json.loads(result.stdout)
    with av.open(str(out)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    assert stats["recorded"] == stats["processed"] == frames == 4


def _audio_end_s(path: Path) -> float:
    """Where a file's first audio track ends, by its packets (seconds)."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return max(float((p.pts + p.duration) * p.time_base) for p in container.demux(stream) if p.pts is not None)


@pytest.mark.parametrize("played", [[], ["--realtime"]])
def test_a_file_played_to_its_end_is_recorded_with_all_its_sound(make_clip, run_cli, tmp_path: Path,
                                                                   played: list[str]) -> None:
    """As `video` copies it: the sound stopped at the last frame's start (1.173 of 1.216 s here), the
    rule for a run stopped early, though the whole file had been played."""
    clip = make_clip(tmp_path / "in.mp4", width=64, height=48, frames=30, fps=25, audio=True)
    out = tmp_path / "rec.mkv"
    result = run_cli("camera", "--source", clip, *played, "--no-preview", "--model", "lprn-fast", "--device", "cpu",
                     "--record", out, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["end_reason"] == "source ended"
    assert abs(_audio_end_s(out) - _audio_end_s(clip)) < 0.002  # Matroska times in milliseconds


def test_a_file_run_stopped_early_records_sound_only_as_far_as_its_frames(make_clip, run_cli, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "in.mp4", width=64, height=48, frames=100, fps=25, audio=True)
    out = tmp_path / "rec.mkv"
    result = run_cli("camera", "--source", clip, "--realtime", "--no-preview", "--model", "lprn-fast",
                     "--device", "cpu", "--record", out, "--json", "--max-seconds", "1")
    assert result.exit_code == 0, result.stderr
    with av.open(str(out)) as container:
        last_frame_s = max(float(f.pts * f.time_base) for f in container.decode(video=0))
    assert last_frame_s < 2.5 and _audio_end_s(out) < last_frame_s + 0.1  # the 4 s file's sound is not all there


def test_a_webcam_unplugged_mid_run_ends_the_command_cleanly_with_its_recording(run_cli, monkeypatch,
                                                                                tmp_path: Path) -> None:
    """The whole command, not only the loop: exit 0, one JSON object on stdout, the loss said once on
    stderr, and the recording holds every processed frame at its capture time."""
    import videodeblur.video.capture as capture

    grabbed: list[float] = []

    class Webcam:  # 12 frames 20 or 70 ms apart (no steady rate to stand in for capture times), then unplugged
        def __init__(self, device: object, *api: int) -> None:
            self.grabs = 0

        def isOpened(self) -> bool:
            return True

        def set(self, prop: int, value: float) -> bool:
            return True

        def get(self, prop: int) -> float:
            return 25.0

        def read(self) -> tuple[bool, np.ndarray]:
            return True, np.zeros((48, 64, 3), np.uint8)

        def grab(self) -> bool:
            self.grabs += 1
            time.sleep(0.02 if self.grabs % 2 else 0.07)
            if self.grabs <= 12:
                grabbed.append(time.monotonic())
            return self.grabs <= 12

        def retrieve(self) -> tuple[bool, np.ndarray]:
            return True, np.full((48, 64, 3), 8 * self.grabs, np.uint8)

        def release(self) -> None:
            pass

    monkeypatch.setattr(capture.cv2, "VideoCapture", Webcam)
    out = tmp_path / "rec.mkv"
    result = run_cli("camera", "--source", "0", "--no-preview", "--model", "lprn-fast", "--device", "cpu",
                     "--engines", "1", "--record", out, "--json")
    assert result.exit_code == 0, result.stderr
    stats = json.loads(result.stdout)  # one object, nothing else
    assert stats["end_reason"] == "source lost: camera 0 stopped delivering frames (unplugged?)"
    assert stats["captured"] == 12 == stats["processed"] + stats["dropped"] and stats["processed"] > 0
    assert sum("stopped delivering frames" in line for line in result.stderr_lines) == 1
    assert sum("running headless" in line for line in result.stderr_lines) == 1
    with av.open(str(out)) as container:
        times = [float(f.pts * f.time_base) for f in container.decode(video=0)]
    assert len(times) == stats["processed"] == stats["recorded"]
    assert all(b > a for a, b in zip(times, times[1:]))
    if stats["dropped"] == 0:  # every frame recorded at its capture time (a busy machine: within 10 ms)
        assert max(abs(t - (g - grabbed[0])) for t, g in zip(times, grabbed)) < 0.01
