"""``videodeblur camera`` as a demanding user meets it: mistakes said before any work is done.

Why a file of its own: these are the audit's findings (session 26), kept apart from test_camera.py's
long list so each says which promise it holds the command to.
"""
from __future__ import annotations

from pathlib import Path

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
def test_a_good_record_path_is_checked_without_leaving_a_file_and_then_recorded(
        make_clip, run_cli, tmp_path: Path, suffix: str) -> None:
    clip = make_clip(tmp_path / "in.mp4", width=64, height=48, frames=4)
    out = tmp_path / f"rec{suffix}"
    result = run_cli("camera", "--source", clip, "--no-preview", "--model", "lprn-fast", "--device", "cpu",
                     "--record", out, "--json")
    assert result.exit_code == 0, result.stderr
    import json

    import av

    stats = json.loads(result.stdout)
    with av.open(str(out)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    assert stats["recorded"] == stats["processed"] == frames == 4
