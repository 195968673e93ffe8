"""The bad-input matrix through a real ``python -m videodeblur`` process: exit code and exactly one
stderr line, naming the bad value; no traceback unless ``--debug``."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from videodeblur.model import shipped_weights_path


def assert_one_line_error(result, *fragments: str, code: int = 1) -> None:
    assert result.exit_code == code, result.stderr
    assert len(result.stderr_lines) == 1, f"want one stderr line, got:\n{result.stderr}"
    line = result.stderr_lines[0]
    assert line.startswith("videodeblur: error: "), line
    for fragment in fragments:
        assert fragment in line, line
    assert result.stdout == ""


@pytest.fixture
def image_file(make_image) -> Path:
    return make_image("in.png", width=32, height=24)


def test_good_input_exits_zero_with_no_stderr(run_subprocess, image_file, tmp_path):
    out = tmp_path / "out.png"
    result = run_subprocess("image", image_file, "-o", out, "--device", "cpu")
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout.strip() == str(out) and out.is_file()


def test_missing_file(run_subprocess, tmp_path):
    missing = tmp_path / "nope.png"
    assert_one_line_error(run_subprocess("image", missing, "-o", tmp_path / "o.png"), "input not found", str(missing))


@pytest.mark.parametrize("content", [b"just some text, not pixels\n", b"\xff\xd8\xff\xe0" + b"\x00" * 64],
                         ids=["text", "truncated-jpeg"])
def test_unreadable_or_non_image_file(run_subprocess, tmp_path, content):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(content)
    assert_one_line_error(run_subprocess("image", bad, "-o", tmp_path / "o.jpg"), str(bad), "not a readable")


def test_empty_folder(run_subprocess, tmp_path):
    (tmp_path / "empty").mkdir()
    assert_one_line_error(run_subprocess("image", tmp_path / "empty", "-o", tmp_path / "out"), "no images (*.png")


def test_unwritable_output_parent_is_a_file(run_subprocess, image_file, tmp_path):
    (tmp_path / "file").write_text("x")
    out = tmp_path / "file" / "out.png"
    assert_one_line_error(run_subprocess("image", image_file, "-o", out), str(tmp_path / "file"),
                          "is a file, but a folder is needed")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can write into read-only folders")
def test_unwritable_output_read_only_folder(run_subprocess, image_file, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert_one_line_error(run_subprocess("image", image_file, "-o", locked / "o.png", "--device", "cpu"),
                              "cannot write", str(locked / "o.png"))
    finally:
        locked.chmod(0o700)


def test_unsupported_output_extension(run_subprocess, image_file, tmp_path):
    assert_one_line_error(run_subprocess("image", image_file, "-o", tmp_path / "o.gif"),
                          "unsupported output extension '.gif'", ".png, .jpg, .jpeg, .tif, .tiff, .webp, .avif, .bmp")


def test_video_into_an_existing_file_without_an_extension(run_cli, make_clip, tmp_path):
    """``-o /dev/null`` (an ffmpeg habit) or any existing file with no extension names no container:
    said so (it said "is a file, but a folder is needed here", for one input and one output)."""
    src = make_clip("a.mp4", width=32, height=24, frames=2)
    existing = tmp_path / "result"
    existing.write_bytes(b"")
    for output in (existing, Path(os.devnull)):
        result = run_cli("video", src, "-o", output)
        assert result.exit_code == 1 and result.stderr_lines == [
            f"videodeblur: error: output {output} has no extension, so it names no container: give a video file "
            "such as out.mp4 (its extension picks the container), or a folder"]


def test_video_into_an_unknown_url(run_cli, make_clip, tmp_path):
    src = make_clip("a.mp4", width=32, height=24, frames=2)
    result = run_cli("video", src, "-o", "ftp://host/y.mp4")
    assert result.exit_code == 1 and result.stderr_lines == [
        "videodeblur: error: output ftp://host/y.mp4 is a URL: `video` writes files; to send a deblurred feed live, "
        "use `videodeblur camera --source FILE --realtime --record URL`"]


def test_an_input_url_of_a_scheme_not_read(run_cli, tmp_path):
    """README: a scheme the tool does not take (``ftp://``) "is refused with the URL as given". Read as a
    path, it was "input not found: ftp:/host/x.mp4" (pathlib folds the //); ``image``, which reads no
    URL, said the same of an https one."""
    cases = [(("video", "ftp://host/x.mp4", "-o", tmp_path / "o.mp4"),
              "input ftp://host/x.mp4: ftp:// is not a stream it reads; give a file, or a stream's URL (rtsp, rtsps, "
              "rtmp, rtmps, http, https, udp, tcp, srt, rtp)"),
             (("video", "s3://bucket/x.mp4"), "input s3://bucket/x.mp4: s3:// is not a stream it reads"),
             (("image", "ftp://host/x.png", "-o", tmp_path / "o.png"),
              "input ftp://host/x.png: ftp:// URLs are not opened here; give a file"),
             (("image", "https://user:pw@host/x.png", "-o", tmp_path / "o.png"),
              "input https://user:***@host/x.png: https:// URLs are not opened here; give a file")]
    for args, said in cases:
        result = run_cli(*args)
        assert result.exit_code == 1 and len(result.stderr_lines) == 1, result.stderr
        assert result.stderr_lines[0].startswith(f"videodeblur: error: {said}"), result.stderr
    assert not list(tmp_path.iterdir())


def test_video_into_a_picture_file(run_cli, make_clip, tmp_path):
    """``-o x.jpg`` opened FFmpeg's image muxer: "cannot open encoder mjpeg ...; try --encoder libx264",
    and that failed again ("image2 format does not support libx264")."""
    src = make_clip("a.mp4", width=32, height=24, frames=2)
    for name in ("x.jpg", "x.PNG"):
        result = run_cli("video", src, "-o", tmp_path / name)
        assert result.exit_code == 1 and result.stderr_lines == [
            f"videodeblur: error: output {tmp_path / name} is a picture format, not a video: give a video file such as "
            "x.mp4 (or .mkv, .mov, .webm); `videodeblur image` deblurs pictures"]
        assert not (tmp_path / name).exists()


def test_unknown_model_name(run_subprocess, image_file, tmp_path):
    assert_one_line_error(run_subprocess("image", image_file, "-o", tmp_path / "o.png", "--model", "lprn-huge"),
                          "unknown model 'lprn-huge'", "lprn-fast")


def test_missing_weights_file(run_subprocess, image_file, tmp_path):
    weights = tmp_path / "gone.pt"
    assert_one_line_error(run_subprocess("image", image_file, "-o", tmp_path / "o.png", "--model", weights),
                          str(weights))


def test_a_model_name_no_file_can_have(run_cli, image_file, tmp_path):
    """A 300-character --model was an "internal error: OSError: [Errno 36] File name too long"; it is
    said as the library says it of any path no file can have (api's check, one mechanism)."""
    result = run_cli("image", image_file, "-o", tmp_path / "o.png", "--model", "x" * 300)
    assert result.exit_code == 1 and result.stderr_lines == [
        f"videodeblur: error: weights file not found: {'x' * 300}: File name too long (a name in the path is "
        "longer than the file system allows)"]


@pytest.mark.parametrize("damage", ["garbage", "pickle-protocol", "truncated"])
def test_corrupt_weights(run_subprocess, image_file, tmp_path, damage):
    weights = tmp_path / f"{damage}.pt"
    if damage == "garbage":
        weights.write_bytes(os.urandom(4096))
    elif damage == "pickle-protocol":  # garbage that starts as a pickle does: torch warned of the protocol
        weights.write_bytes(b"\x80\xcd" + os.urandom(4094))
    else:
        good = shipped_weights_path("lprn-fast").read_bytes()
        weights.write_bytes(good[: len(good) // 2])
    assert_one_line_error(run_subprocess("image", image_file, "-o", tmp_path / "o.png", "--model", weights),
                          str(weights))


def test_weights_that_are_not_ours(run_subprocess, image_file, tmp_path):
    import torch

    weights = tmp_path / "other.pt"
    torch.save({"something": torch.zeros(3)}, weights)
    assert_one_line_error(run_subprocess("image", image_file, "-o", tmp_path / "o.png", "--model", weights),
                          str(weights))


def test_cuda_without_gpu(run_subprocess, image_file, tmp_path):
    if shutil.which("nvidia-smi") is not None:
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has a GPU: --device cuda is not an error here")
    assert_one_line_error(run_subprocess("image", image_file, "-o", tmp_path / "o.png", "--device", "cuda"),
                          "--device cuda", "CUDA is not available")


def test_fp16_on_cpu(run_subprocess, image_file, tmp_path):
    assert_one_line_error(run_subprocess("image", image_file, "-o", tmp_path / "o.png",
                                         "--device", "cpu", "--precision", "fp16"), "fp16")


@pytest.mark.parametrize("command", ["video", "bench", "camera"])
def test_cuda_graphs_on_cpu(run_subprocess, make_clip, tmp_path, command):
    """Asked for CUDA graphs where the engine runs on the CPU: said before a frame is read."""
    clip = make_clip("in.mp4", width=64, height=48, frames=4)
    args = {"video": [clip, "-o", tmp_path / "o.mp4"], "bench": ["--size", "64x48", "--frames", "4"],
            "camera": ["--source", clip, "--no-preview", "--record", tmp_path / "o.mp4"]}[command]
    assert_one_line_error(run_subprocess(command, *args, "--device", "cpu", "--cuda-graphs"),
                          "CUDA graphs need a CUDA device", "--cuda-graphs")
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.parametrize("args,message", [
    (["image", "--frobnicate"], "No such option '--frobnicate'"),
    (["image"], "Missing argument 'INPUTS...'"),
    (["frobnicate"], "No such command 'frobnicate'"),
    (["image", "x.png", "-o", "y.png", "--device", "tpu"], "Invalid value for '--device'"),
    # read as a path, it was "output folder ftp:/x does not exist"
    (["camera", "--no-preview", "--record", "ftp://x/y.mp4"], "ftp:// is not a stream it can send to"),
])
def test_usage_errors_exit_2(run_subprocess, args, message):
    result = run_subprocess(*args)
    assert result.exit_code == 2
    assert result.stderr_lines[-1].startswith("Error: ") and message in result.stderr_lines[-1]
    assert "Traceback" not in result.stderr


def test_debug_shows_the_traceback(run_subprocess, tmp_path):
    missing = tmp_path / "nope.png"
    result = run_subprocess("--debug", "image", missing, "-o", tmp_path / "o.png")
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "InputNotFoundError" in result.stderr
    assert result.stderr_lines[-1] == f"videodeblur: error: input not found: {missing}"


def test_ctrl_c_exits_130(run_cli, image_file, tmp_path, monkeypatch):
    import videodeblur.images

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(videodeblur.images, "deblur_image_file", interrupted)
    result = run_cli("image", image_file, "-o", tmp_path / "o.png", "--device", "cpu")
    assert result.exit_code == 130
    assert result.stderr == "videodeblur: interrupted\n"  # click put a blank line before it (as torch loads too)


@pytest.mark.parametrize("where", ["importing the engine", "loading the model", "before the run"])
def test_ctrl_c_before_a_video_run_still_prints_its_json_line(run_cli, make_clip, tmp_path, monkeypatch, where):
    """The help says --json prints its line, "interrupted": true, however the run is stopped; a stop
    while the model loaded, or before the run began, printed none. Nor did one while the engine's
    modules were imported (torch loading: 2-8 s on 2 cores, the first thing a Ctrl-C meets)."""
    import videodeblur.pipeline

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    if where == "importing the engine":  # as `from videodeblur.pipeline import Engine` runs the first time
        monkeypatch.delattr(videodeblur.pipeline, "Engine", raising=False)
        monkeypatch.setattr(videodeblur.pipeline, "__getattr__", interrupted)
    elif where == "loading the model":
        monkeypatch.setattr(videodeblur.pipeline.Engine, "from_name", interrupted)
    else:
        monkeypatch.setattr(videodeblur.pipeline, "deblur_file", interrupted)
    src = make_clip("a.mp4", width=32, height=24, frames=2)
    result = run_cli("video", src, "-o", tmp_path / "o.mp4", "--device", "cpu", "--json")
    assert result.exit_code == 130
    assert json.loads(result.stdout) == {"input": str(src), "output": str(tmp_path / "o.mp4"), "frames": 0,
                                         "frames_written": 0, "interrupted": True}
    # said once, and with no blank line before it (click's, for a KeyboardInterrupt that reached it)
    assert result.stderr.splitlines() == (["videodeblur: interrupted"] if where != "before the run" else
                                          [f"videodeblur: interrupted before any frame was written: no file was left "
                                           f"at {tmp_path / 'o.mp4'}"])


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_results_that_cannot_be_printed_are_an_error_not_an_internal_one(run_subprocess):
    """Standard output on a full disk said "internal error: OSError" and pointed at --debug."""
    assert_one_line_error(run_subprocess("models", "--json", stdout=Path("/dev/full")),
                          "cannot write the results to standard output: No space left on device")


@pytest.mark.parametrize("missing, package", [("libGL.so.1", "libgl1"), ("libgthread-2.0.so.0", "libglib2.0-0")])
def test_opencv_that_cannot_load_says_what_to_install(run_subprocess, image_file, tmp_path, missing, package):
    """opencv-python needs libGL and GLib, which servers and slim containers lack: its ImportError was an
    "internal error"; it is a setup problem with a known fix. Without GLib the hint named only libgl1,
    which does not bring it."""
    stub = tmp_path / "stub" / "cv2"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text(f'raise ImportError("{missing}: cannot open shared object file")\n')
    result = run_subprocess("image", image_file, "-o", tmp_path / "out.png", "--device", "cpu",
                            env={"PYTHONPATH": str(tmp_path / "stub")})
    assert_one_line_error(result, missing, "opencv-python-headless", package)
    assert "internal error" not in result.stderr


def test_after_the_first_stop_or_the_work_done_stops_are_only_noted() -> None:
    """signals_noted(first_raised=True): the first Ctrl-C is raised (it must end a blocked open, or reach a run),
    the ones after it only noted until the block ends, and so is every one once the work is done:
    the report of what it left is said whole. Outside the block they are raised again."""
    import signal

    from videodeblur.signals import signals_noted

    noted: list[int] = []
    with signals_noted(lambda: noted.append(1), first_raised=True):
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGINT)
    assert noted == [1]
    with signals_noted(lambda: noted.append(2), first_raised=True) as work_done:
        work_done.set()
        signal.raise_signal(signal.SIGINT)
    assert noted == [1, 2]
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)


def test_a_path_mistake_is_said_before_torch_loads(tmp_path):
    """`video` checks its paths first "in milliseconds, before torch loads", but importing the path
    planner ran ``videodeblur.pipeline``'s (and ``videodeblur.video``'s) eager re-exports, which load
    torch: a mistyped input took 3-4 s to be said, and a Ctrl-C in that time lost --json's line."""
    code = ("import runpy, sys\n"
            "sys.argv = ['videodeblur', 'video', sys.argv[1], '-o', sys.argv[2], '--json']\n"
            "try:\n"
            "    runpy.run_module('videodeblur', run_name='__main__')\n"
            "except SystemExit as end:\n"
            "    print('torch loaded' if 'torch' in sys.modules else 'no torch', end.code)\n")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "missing.mp4"), str(tmp_path / "o.mp4")],
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.splitlines()[-1] == "no torch 1"
    assert f"input not found: {tmp_path / 'missing.mp4'}" in done.stderr


def test_an_empty_video_path_is_an_error_not_the_current_folder(run_cli, make_clip, tmp_path, monkeypatch):
    """``videodeblur video "$IN" -o "$OUT"`` with a variable unset: pathlib reads "" as ".", so every
    video in the current folder was deblurred, or the output written into it without a word; bench
    called "" "'.' is not a regular file"."""
    make_clip("cwd/in.mp4", width=32, height=24, frames=2)
    monkeypatch.chdir(tmp_path / "cwd")
    for args in (("video", ""), ("video", "in.mp4", "-o", ""), ("bench", "--input", "")):
        result = run_cli(*args, "--device", "cpu")
        assert result.exit_code == 1 and len(result.stderr_lines) == 1, result.stderr
        assert "is an empty path (an unset variable?)" in result.stderr, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cwd"] and os.listdir(tmp_path / "cwd") == ["in.mp4"]
