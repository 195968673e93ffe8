"""``videodeblur camera`` as a demanding user meets it (session 27's audit): standard input named as
the user gave it, not as ``/dev/stdin``, in its errors and its stats."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

CPU = ("--model", "lprn-fast", "--device", "cpu")


def test_standard_input_is_named_so_in_the_stats_and_errors(run_subprocess, make_clip, tmp_path: Path) -> None:
    """``--source -`` was "/dev/stdin" (the path it is opened by) in the stats and in every error."""
    from _clips_video import remuxed

    clip = remuxed(make_clip("a.mp4", width=64, height=48, frames=4), tmp_path / "a.ts")
    result = run_subprocess("camera", "--source", "-", "--no-preview", *CPU, "--json", stdin=clip)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["source"] == "standard input"
    text = tmp_path / "notes.txt"
    text.write_text("not a video\n")
    refused = run_subprocess("camera", "--source", "-", "--no-preview", *CPU, stdin=text)
    assert refused.exit_code == 1
    assert refused.stderr_lines == ["videodeblur: error: cannot open source standard input: "
                                    "Invalid data found when processing input"], refused.stderr


def test_wayland_without_x_runs_headless_where_opencvs_window_needs_x(run_subprocess) -> None:
    """opencv-python's Qt has only its X platform (xcb): with WAYLAND_DISPLAY set and no DISPLAY, Qt
    aborted the whole process (exit 134, "could not load the Qt platform plugin xcb") as the window
    opened; the stats were never said. (A GTK build of OpenCV draws under Wayland itself.)"""
    import cv2

    gui = re.search(r"^\s*GUI:\s*(\S+)", cv2.getBuildInformation(), re.MULTILINE)
    if gui is None or not gui.group(1).upper().startswith("QT"):
        pytest.skip("this OpenCV's window is not Qt's")
    result = run_subprocess("camera", "--source", "testsrc2=size=64x48:rate=25", *CPU, "--max-seconds", "0.5",
                            "--json", env={"DISPLAY": "", "WAYLAND_DISPLAY": "wayland-0"})
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["end_reason"] == "max-seconds"
    assert ("videodeblur: no X display (DISPLAY is not set; OpenCV's Qt window needs X, under Wayland its "
            "XWayland): running headless") in result.stderr_lines, result.stderr


@pytest.mark.parametrize("option", ["--max-seconds", "--reconnect"])
def test_seconds_that_are_no_number_are_said_so(run_cli, option: str) -> None:
    """It was click's "'abc' is not a valid float range.", and --help named the value FLOAT RANGE."""
    result = run_cli("camera", "--no-preview", option, "abc")
    assert result.exit_code == 2
    assert result.stderr_lines[-1] == f"Error: Invalid value for '{option}': 'abc' is not a valid number of seconds."
    assert f"{option} SECONDS" in run_cli("camera", "--help").stdout


@pytest.mark.parametrize("source", ["clip", "testsrc2=size=64x48:rate=25"])
def test_reconnect_with_a_source_that_is_never_lost_is_said_to_be_ignored(run_cli, make_clip, source: str) -> None:
    """A file or lavfi graph ends, it is not lost: --reconnect did nothing, without a word (as --size
    with a file is said)."""
    clip = make_clip("in.mp4", width=64, height=48, frames=3)
    spec = str(clip) if source == "clip" else source
    result = run_cli("camera", "--source", spec, "--no-preview", *CPU, "--reconnect", 5, "--max-seconds", 0.5)
    assert result.exit_code == 0, result.stderr
    shown = spec if source == "clip" else f"lavfi:{spec}"
    assert (f"videodeblur: note: --reconnect opens a lost camera or stream again; {shown} is not one, so it is "
            "ignored") in result.stderr_lines, result.stderr


def test_a_record_name_that_is_only_an_extension_is_said_plainly(run_cli, make_clip, monkeypatch, tmp_path) -> None:
    """``--record .mp4`` (the name left out) was "a name with no extension files cannot hold the recorded
    video": FFmpeg took .mp4 for MP4, the trial writer, named "trial" + no suffix, did not."""
    clip = make_clip("in.mp4", width=64, height=48, frames=3)
    monkeypatch.chdir(tmp_path)
    result = run_cli("camera", "--source", clip, "--no-preview", *CPU, "--record", ".mp4")
    assert result.exit_code == 1
    assert result.stderr_lines == ["videodeblur: error: cannot record to .mp4: a name with no extension names no "
                                   "container FFmpeg writes; record to .mp4, .mkv, .mov or .webm"]
    assert not (tmp_path / ".mp4").exists()


class _Unchanged:
    """An engine that hands each frame back as it is: the live loop's timing is under test, not a model."""

    def process(self, frames):
        return frames


def _clip_with_a_still(path: Path, times_s: list[float]) -> Path:
    """64x48 H.264 whose frames are shown at ``times_s``: a screen recording holds a still picture this
    way, one frame that lasts until the next."""
    from fractions import Fraction

    import av
    import numpy as np

    with av.open(str(path), "w", format="mpegts" if path.suffix == ".ts" else None) as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for index, at in enumerate(times_s):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), index * 40, np.uint8), format="rgb24")
            frame.pts, frame.time_base = round(at * 1000), Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def test_a_played_file_holding_a_still_longer_than_the_stall_timeout_is_not_lost(tmp_path: Path) -> None:
    """A --realtime file whose picture stays still (a frame shown for 6 s in a screen recording) was
    "source lost: ... delivered nothing for 5 s" at the still, the rest of the file never read: the
    wait for the next frame's time is the pacing's own, not a hung read."""
    from videodeblur.pipeline.live import LiveOptions, run_live
    from videodeblur.video.capture import CaptureOptions, open_source

    clip = _clip_with_a_still(tmp_path / "still.mp4", [0.0, 0.04, 1.0, 1.04])
    source = open_source(str(clip), CaptureOptions(realtime=True))
    stats = run_live(source, _Unchanged(), LiveOptions(stall_timeout_s=0.4, warmup=False))
    assert stats.end_reason == "source ended" and stats.captured == 4


def test_a_played_mpeg_ts_whose_clock_jumps_goes_on_from_the_jump(tmp_path: Path) -> None:
    """An MPEG-TS recording spliced from two (its clock an hour on at the splice), played with --realtime,
    waited the hour for its next frame (as a still is held); a format whose clock may jump (MPEG-TS, HLS)
    goes on from a jump of more than 10 s, as ffmpeg mends it, and its frames keep their own times."""
    from videodeblur.pipeline.live import LiveOptions, run_live
    from videodeblur.video.capture import CaptureOptions, open_source

    clip = _clip_with_a_still(tmp_path / "spliced.ts", [0.0, 0.04, 0.08, 3600.0, 3600.04])
    source = open_source(str(clip), CaptureOptions(realtime=True))
    stats = run_live(source, _Unchanged(), LiveOptions(max_seconds=3, warmup=False))
    assert stats.end_reason == "source ended" and stats.captured == 5


@pytest.mark.parametrize(("name", "playlist"), [("live.mpd", "DASH"), ("live.m3u8", "HLS")])
def test_a_playlist_record_name_is_refused_before_ffmpeg_is_asked(run_subprocess, make_clip, tmp_path,
                                                                  name: str, playlist: str) -> None:
    """``--record live.mpd`` killed the process (SIGFPE in FFmpeg's DASH muxer as the trial writer's
    encoder probe closed), no message, and left init-stream0.m4s in the current folder; ``live.m3u8``
    left FFmpeg's "<none>0.ts" there. Both write a playlist and segment files, not a video file. (A
    process of its own: the crash took the test run with it.)"""
    clip = make_clip("in.mp4", width=64, height=48, frames=3)
    work = tmp_path / "work"
    work.mkdir()
    result = run_subprocess("camera", "--source", clip, "--no-preview", *CPU, "--record", name, cwd=work)
    assert result.exit_code == 1
    assert result.stderr_lines == [f"videodeblur: error: cannot record to {name}: {Path(name).suffix} is an {playlist} "
                                   "playlist, written with segment files beside it, not a video file; record to "
                                   ".mp4, .mkv, .mov or .webm"]
    assert list(work.iterdir()) == []


def test_a_record_name_too_long_for_the_file_system_is_one_line(run_cli, make_clip, monkeypatch, tmp_path) -> None:
    """It was "internal error: OSError: [Errno 36] File name too long", from the path check's is_dir()."""
    clip = make_clip("in.mp4", width=64, height=48, frames=3)
    monkeypatch.chdir(tmp_path)
    name = "a" * 300 + ".mp4"
    result = run_cli("camera", "--source", clip, "--no-preview", *CPU, "--record", name)
    assert result.exit_code == 1
    assert result.stderr_lines == [f"videodeblur: error: cannot write {name}: File name too long (a name in the path "
                                   "is longer than the file system allows)"]


def test_a_source_name_too_long_for_the_file_system_is_one_line(run_cli) -> None:
    """It was "internal error: OSError: [Errno 36] File name too long", from Path.exists()."""
    name = "a" * 300 + ".mp4"
    for recording in ([], ["--record", "out.mp4"]):  # asked first whether the source is the recording's file
        result = run_cli("camera", "--source", name, "--no-preview", *recording)
        assert result.exit_code == 1
        assert result.stderr_lines == [f"videodeblur: error: source {name} not found: File name too long (a name in "
                                       "the path is longer than the file system allows)"]


def test_the_library_refuses_a_recording_url_of_no_stream_without_its_secrets() -> None:
    """run_live(record_path="ftp://user:secret@...") was "output folder ftp:/user:secret@host does not
    exist", the password shown and the URL bent into a folder; the command said it as a usage error."""
    from videodeblur.errors import ConfigError
    from videodeblur.pipeline.live import LiveOptions

    with pytest.raises(ConfigError) as refused:
        LiveOptions(record_path="ftp://user:secret@host/x.mp4?token=abc123")
    assert str(refused.value) == ("ftp://user:***@host/x.mp4?token=***: ftp:// is not a stream it can send to; record "
                                  "to a file, or to rtmp://, rtmps://, srt://, udp://, tcp:// or rtsp://")


@pytest.mark.parametrize("record", ["rec.mp4/", "new/"])
def test_a_record_path_ending_in_a_slash_names_a_folder(run_cli, make_clip, monkeypatch, tmp_path, record) -> None:
    """``--record rec.mp4/`` recorded into the file rec.mp4 (pathlib drops the slash); ``new/`` was "a name with
    no extension names no container". The slash says a folder, as ``video -o new/`` takes it."""
    clip = make_clip("in.mp4", width=64, height=48, frames=3)
    monkeypatch.chdir(tmp_path)
    result = run_cli("camera", "--source", clip, "--no-preview", *CPU, "--record", record)
    assert result.exit_code == 1
    assert result.stderr_lines == [f"videodeblur: error: cannot record to {record}: the slash makes it a folder; give "
                                   f"a file such as {record}out.mp4"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_max_seconds_bounds_the_wait_for_a_pipe_that_sends_nothing(tmp_path: Path) -> None:
    """``producer | videodeblur camera --source - --max-seconds 2`` with a producer that never sends
    waited for as long as the producer lived (25 s with ``sleep 25``), as a network source's open
    does not: --max-seconds bounds both."""
    import subprocess
    import sys

    from conftest import REPO_ROOT

    silent, held = os.pipe()  # the write end held open and never written: a producer that sends nothing
    try:
        child = subprocess.Popen([sys.executable, "-m", "videodeblur", "camera", "--source", "-", "--no-preview",
                                  *CPU, "--max-seconds", "1"], stdin=silent, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, cwd=str(REPO_ROOT), text=True)
        try:
            _, stderr = child.communicate(timeout=60)
        finally:
            child.kill()
    finally:
        os.close(silent)
        os.close(held)
    assert child.returncode == 1, stderr
    assert stderr.strip().splitlines()[-1] == ("videodeblur: error: cannot open source standard input: nothing came "
                                               "within 1 s"), stderr
