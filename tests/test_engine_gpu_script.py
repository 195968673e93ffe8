"""benchmarks/run_gpu.sh, dry-run on the CPU: what a device call would bring back, and how it stops.

The device tool returns at most 8 files from $OUT and kills a call at 600 s, and no session has had a
GPU yet: the script's first run there must not lose its results to either. A fake ``python3`` on PATH
stands in for the GPU programs (the checks pass, the benchmarks fail or print JSON)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "run_gpu.sh"

pytestmark = pytest.mark.skipif(any(shutil.which(tool) is None for tool in ("bash", "tar", "timeout")),
                                reason="needs bash, tar and timeout")

# -c: the import and CUDA checks pass; -m pytest passes; -m videodeblur fails as a bench without a GPU
# does; a script (rt_candidates.py) prints JSON.
FAKE_PYTHON = """#!/bin/sh
case "$1" in
  -c) echo "fake check"; exit 0 ;;
  -m) if [ "$2" = pytest ]; then echo "9 passed"; exit 0; fi
      echo "Error: --device cuda requested but CUDA is not available here" >&2; exit 3 ;;
  *) echo '{"fake": true}'; exit 0 ;;
esac
"""


def _run(tmp_path: Path, python: Path, part: str = "1", budget: str = "570") -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{python.parent}{os.pathsep}{os.environ['PATH']}", "BUDGET_S": budget,
           "TMPDIR": str(tmp_path)}
    return subprocess.run(["bash", str(SCRIPT), str(tmp_path / "out"), part], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


def _fake_python(tmp_path: Path, text: str = FAKE_PYTHON) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir()
    fake = folder / "python3"
    fake.write_text(text)
    fake.chmod(0o755)
    return fake


def test_every_steps_output_comes_back_in_two_files(tmp_path: Path) -> None:
    """Part 1's six steps wrote 17 files into OUT (each output and its .err, versions, nvidia-smi,
    lscpu, steps.txt): the device tool brings back 8, so most results would have been lost."""
    done = _run(tmp_path, _fake_python(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["results-part1.tar.gz", "steps.txt"]
    with tarfile.open(out / "results-part1.tar.gz") as tar:
        names = {Path(name).name for name in tar.getnames()}
        assert tar.extractfile("./cuda-tests.txt").read() == b"9 passed\n"
    assert {"versions.txt", "nvidia-smi.txt", "lscpu.txt"} <= names
    for name in ("cuda-tests.txt", "bench-lprn-rt-1920x1080.json", "rt-candidates-1920x1080.json",
                 "bench-lprn-rt-1280x720.json", "camera-lprn-rt-1080p30.json", "bench-lprn-rt-2160-tiled.json"):
        assert {name, f"{name}.err"} <= names, name
    steps = (out / "steps.txt").read_text().splitlines()
    assert len(steps) == 6 and steps[0].startswith("cuda-tests.txt rc=0") and "bench-lprn-rt-1920x1080.json rc=3" in steps[1]
    assert "CUDA is not available here" in done.stdout  # a failing step's stderr tail is in the call's output
    assert not list(tmp_path.glob("videodeblur-gpu-*"))  # its scratch folder is removed


def test_steps_past_the_budget_are_skipped_so_the_call_ends_in_time(tmp_path: Path) -> None:
    """A step whose limit would end past BUDGET_S is left out (a call killed at its limit lost the
    steps.txt and listing printed at the end); steps that fit still run."""
    done = _run(tmp_path, _fake_python(tmp_path), part="2", budget="50")
    assert done.returncode == 0
    steps = (tmp_path / "out" / "steps.txt").read_text().splitlines()
    ran = [line.split()[0] for line in steps if "skipped" not in line]
    assert ran == ["camera-lprn-rt-1080p30-graphs.json", "bench-lprn-fast-1920x1080.json"]  # 35 s and 45 s fit in 50
    assert len(steps) == 7


def test_without_a_gpu_it_stops_at_once_with_one_clear_line(tmp_path: Path) -> None:
    """Here (no CUDA) with the real Python: one line saying why, exit 2, nothing run."""
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is here")
    real = _fake_python(tmp_path, f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    done = _run(tmp_path, real)
    assert done.returncode == 2
    assert done.stdout.strip() == ("run_gpu.sh: no CUDA GPU that torch can use here "
                                   "(torch.cuda.is_available() is False): nothing measured")
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["results-part1.tar.gz", "steps.txt"]
    with tarfile.open(out / "results-part1.tar.gz") as tar:
        assert "available False" in tar.extractfile("./versions.txt").read().decode()
