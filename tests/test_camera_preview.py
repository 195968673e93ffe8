"""The camera preview window for real, on a virtual X screen (``xvfb-run``; skipped where it is missing).

With an OpenCV build that has a GUI (opencv-python) the window opens, frames are drawn, and the
run ends cleanly at ``--max-seconds``. With opencv-python-headless (no GUI) the command says once
that the preview is unavailable and carries on headless. Either way the run processes frames and
exits 0; which branch ran is decided by the OpenCV build, read from its build information.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import cv2
import pytest

pytestmark = pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="xvfb-run not installed (apt-get install xvfb)")


def opencv_has_gui() -> bool:
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GUI:"):
            return line.split(":", 1)[1].strip().upper() != "NONE"
    return False


@pytest.mark.parametrize("layout", [[], ["--side-by-side"]], ids=["deblurred", "side-by-side"])
def test_preview_under_xvfb(make_clip, layout: list[str]) -> None:
    clip = make_clip("in.mp4", width=96, height=64, frames=60, fps=25)
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["PYTHONUNBUFFERED"] = "1"
    # its own process group: a run that hangs (a frozen window) is killed with xvfb-run, not left
    # behind to take the CPU from the rest of the suite, as a plain timeout left it
    child = subprocess.Popen(
        ["xvfb-run", "-a", "-s", "-screen 0 640x480x24", sys.executable, "-m", "videodeblur", "camera",
         "--source", str(clip), "--realtime", "--device", "cpu", "--max-seconds", "1.5", "--json", *layout],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        stdout, stderr = child.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        stdout, stderr = child.communicate()
        pytest.fail(f"the preview run did not end within 120 s: {stderr}")
    proc = subprocess.CompletedProcess(child.args, child.returncode, stdout, stderr)
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(proc.stdout)
    assert stats["processed"] > 0 and stats["end_reason"] == "max-seconds"
    stderr = [line for line in proc.stderr.splitlines() if line.strip()]
    assert not any("no display" in line for line in stderr)  # xvfb-run gave it a DISPLAY
    unavailable = [line for line in stderr if "preview unavailable" in line]
    if opencv_has_gui():
        assert not unavailable, proc.stderr
    else:
        assert len(unavailable) == 1 and "opencv-python" in unavailable[0]
