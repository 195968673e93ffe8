"""Locations as the user names them: a URL of a scheme that is no stream here (``ftp://``, ``s3://``,
``file://``) is said as one, its password and secret query values hidden as everywhere else, in every
command and in the library; read as a path it was "not found: ftp:/user:secret@host/x.mp4"."""
from __future__ import annotations

from pathlib import Path

import pytest

from videodeblur.errors import InputNotFoundError, OutputError, SourceError
from videodeblur.video.locations import redacted, scheme_not_read

URL = "ftp://user:secret@host/x.mp4?token=abc123"
SHOWN = "ftp://user:***@host/x.mp4?token=***"
STREAMS = "ftp:// is not a stream it reads; give a file, or a stream's URL (rtsp, rtsps, rtmp"
FILES_ONLY = "ftp:// URLs are not opened here; give a file"


def test_an_unknown_schemes_secrets_are_hidden_too() -> None:
    assert redacted(URL) == SHOWN
    assert redacted("s3://key:pw@bucket/v.mp4") == "s3://key:***@bucket/v.mp4"


def test_a_file_url_is_answered_with_its_path(tmp_path: Path) -> None:
    assert scheme_not_read("file:///videos/my%20clip.mp4") == \
        "give the file's path itself (/videos/my clip.mp4), not a file:// URL"
    assert scheme_not_read("rtsp://cam/x") is None and scheme_not_read("clip.mp4") is None
    assert scheme_not_read("-") is None


@pytest.mark.parametrize(("args", "said"), [
    (["video", URL, "-o", "o.mp4"], f"input {SHOWN}: {STREAMS}"),
    (["video", URL, "-o", "-"], f"input {SHOWN}: {STREAMS}"),
    (["video", URL], f"input {SHOWN}: {STREAMS}"),
    (["image", URL.replace(".mp4", ".png"), "-o", "o.png"], f"input {SHOWN.replace('.mp4', '.png')}: {FILES_ONLY}"),
    (["bench", "--input", URL], f"input {SHOWN}: {FILES_ONLY}"),
    (["camera", "--source", URL, "--no-preview"], f"source '{SHOWN}': {STREAMS}"),
    (["video", "in.mp4", "-o", "o.mp4", "--model", URL.replace(".mp4", ".pt")],
     f"weights file not found: {SHOWN.replace('.mp4', '.pt')}: {FILES_ONLY}"),
    (["video", "in.mp4", "-o", URL], f"output {SHOWN} is a URL: `video` writes files"),
])
def test_each_command_says_the_url_without_its_secrets(run_cli, make_clip, args: list[str], said: str) -> None:
    clip = make_clip("in.mp4", width=32, height=24, frames=2)
    result = run_cli(*(clip if arg == "in.mp4" else arg for arg in args))
    assert result.exit_code == 1, result.stdout + result.stderr
    assert len(result.stderr_lines) == 1 and result.stderr_lines[0].startswith(f"videodeblur: error: {said}"), \
        result.stderr_lines
    assert "secret" not in result.stderr + result.stdout and "abc123" not in result.stderr + result.stdout


def test_camera_record_url_is_hidden_in_its_usage_error(run_cli) -> None:
    result = run_cli("camera", "--no-preview", "--record", URL)
    assert result.exit_code == 2
    assert f"Invalid value for --record: {SHOWN}: ftp:// is not a stream it can send to" in result.stderr_lines[-1]
    assert "secret" not in result.stderr and "abc123" not in result.stderr


def test_the_library_says_it_too(tmp_path: Path) -> None:
    from videodeblur import Deblurrer
    from videodeblur.video.capture import open_source

    deblurrer = Deblurrer(model="lprn-fast", device="cpu")  # the model loads only when a run needs it
    (tmp_path / "in.mp4").write_bytes(b"")  # not read: the output is refused first
    with pytest.raises(InputNotFoundError, match=r"^input not found: ftp://user:\*\*\*@host/x\.mp4\?token=\*\*\*: "
                                                 "ftp:// is not a stream it reads"):
        deblurrer.file(URL, tmp_path / "o.mp4")
    with pytest.raises(OutputError, match=rf"^cannot write ftp://user:\*\*\*@host/x\.mp4\?token=\*\*\*: {FILES_ONLY}"):
        deblurrer.file(tmp_path / "in.mp4", URL)
    with pytest.raises(InputNotFoundError, match=rf"^input not found: ftp://user:\*\*\*@host/x\.png: {FILES_ONLY}"):
        deblurrer.image("ftp://user:secret@host/x.png", tmp_path / "o.png")
    with pytest.raises(SourceError, match=r"^source 'ftp://user:\*\*\*@host/x\.mp4\?token=\*\*\*': ftp:// is not"):
        open_source(URL)
