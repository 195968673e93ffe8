"""A stream URL's password, and tokens in its query, are hidden wherever videodeblur shows the URL
(error lines, the camera's stats, --json), so that logs and monitoring do not hold them; FFmpeg is
still given the URL as typed."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import serve_folder
from videodeblur.video.locations import redacted

CPU = ("--model", "lprn-fast", "--device", "cpu")


@pytest.mark.parametrize(("spec", "shown"), [
    ("rtsp://admin:secret@cam/stream", "rtsp://admin:***@cam/stream"),
    ("https://host/v.m3u8?token=abc", "https://host/v.m3u8?token=***"),
    ("https://host/v.m3u8?x=1&Token=abc&api_key=k&sig=s&y=a%20b#frag",
     "https://host/v.m3u8?x=1&Token=***&api_key=***&sig=***&y=a%20b#frag"),
    ("rtmp://u:p@h:1935/app/key?auth=zz&passwd=q", "rtmp://u:***@h:1935/app/key?auth=***&passwd=***"),
    ("http://u:p:w@h/x", "http://u:***@h/x"),  # a password with a colon in it, all of it
    ("srt://h:9000?passphrase=longsecret&latency=200", "srt://h:9000?passphrase=***&latency=200"),
])
def test_secrets_in_a_url_are_hidden(spec: str, shown: str) -> None:
    assert redacted(spec) == shown


@pytest.mark.parametrize("spec", [
    "rtsp://admin@cam/stream",  # a user without a password: nothing secret
    "https://host/v.m3u8?quality=hd&keyframes=2",  # names that only start like a secret's
    "udp://@:1234",
    "http://h/a@b:c/x",  # an @ in the path is not a user
    "/videos/a:b@c.mp4?token=abc",  # a file, not a URL
    "-",
    "lavfi:testsrc2",
])
def test_anything_else_is_shown_as_given(spec: str) -> None:
    assert redacted(spec) == spec
    assert redacted(Path("clips/in.mp4")) == "clips/in.mp4"


def test_camera_error_hides_the_password(run_subprocess) -> None:
    result = run_subprocess("camera", "--source", "rtsp://user:secret@127.0.0.1:9/x", "--no-preview")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "secret" not in result.stderr, lines
    assert lines[0].startswith("videodeblur: error: cannot open source 'rtsp://user:***@127.0.0.1:9/x'"), lines


def test_video_error_hides_the_password(run_subprocess, tmp_path: Path) -> None:
    result = run_subprocess("video", "http://user:secret@127.0.0.1:9/x.mp4", "-o", tmp_path / "o.mp4", *CPU)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "secret" not in result.stderr, lines
    assert lines[0].startswith("videodeblur: error: cannot open http://user:***@127.0.0.1:9/x.mp4:"), lines


def test_camera_stats_show_the_url_redacted(run_cli, make_clip) -> None:
    """The URL with its secrets still reaches the server (which ignores them): the run reads all
    frames, and the stats, JSON and table alike, name the source without them."""
    clip = make_clip("net.ts", width=64, height=48, frames=8)
    with serve_folder(clip.parent) as base:
        url = base.replace("http://", "http://user:secret@") + f"/{clip.name}?token=abc123&q=1"
        as_json = run_cli("camera", "--source", url, "--no-preview", *CPU, "--json")
        table = run_cli("camera", "--source", url, "--no-preview", *CPU)
    assert as_json.exit_code == 0 and table.exit_code == 0, as_json.stderr + table.stderr
    stats = json.loads(as_json.stdout)
    shown = base.replace("http://", "http://user:***@") + f"/{clip.name}?token=***&q=1"
    assert stats["source"] == shown and stats["captured"] == 8
    assert f"{shown} (64x48)" in table.stdout + table.stderr
    for text in (as_json.stdout, as_json.stderr, table.stdout, table.stderr):
        assert "secret" not in text and "abc123" not in text


def test_video_json_shows_the_input_redacted(run_cli, make_clip, tmp_path: Path) -> None:
    clip = make_clip("net.ts", width=64, height=48, frames=6)
    with serve_folder(clip.parent) as base:
        url = f"{base}/{clip.name}?sig=abc123"
        result = run_cli("video", url, "-o", tmp_path / "out.mp4", *CPU, "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["input"] == f"{base}/{clip.name}?sig=***" and summary["frames_written"] == 6
    assert "abc123" not in result.stdout + result.stderr


def test_a_stream_output_error_hides_its_secrets(run_cli) -> None:
    result = run_cli("camera", "--source", "testsrc2=size=64x48:rate=25", "--no-preview", *CPU, "--max-seconds", 2,
                     "--record", "rtmp://user:secret@127.0.0.1:9/app/live?key=abc123")
    assert result.exit_code == 1
    assert "secret" not in result.stderr and "abc123" not in result.stderr, result.stderr
    assert "cannot send to rtmp://user:***@127.0.0.1:9/app/live?key=***:" in result.stderr_lines[-1]
