"""Frame-sized memory is reused between forward passes, not re-faulted from the kernel every pass."""
from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from videodeblur import heap

_GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# One process per measurement: glibc's thresholds are process-wide and set once.
_FAULTS_PER_PASS = """
import resource, torch
import videodeblur
from videodeblur.model import load_model
from videodeblur.heap import heap_setting
torch.set_num_threads(1)
net = load_model("lprn-fast").network.eval().to(memory_format=torch.channels_last)
x = torch.rand(1, 3, 360, 640).contiguous(memory_format=torch.channels_last)
with torch.inference_mode():
    for _ in range(3):
        net(x)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        net(x)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
print((after - before) / 5, heap_setting(), sep="|")
"""


def _faults_per_pass(env: dict[str, str]) -> tuple[float, str]:
    out = subprocess.run([sys.executable, "-c", _FAULTS_PER_PASS], env=env, capture_output=True, text=True,
                         timeout=120, check=True).stdout.strip().splitlines()[-1]
    faults, setting = out.split("|")
    return float(faults), setting


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    return env


@pytest.mark.skipif(not _GLIBC, reason="mallopt is glibc's")
def test_importing_the_package_stops_forward_passes_refaulting_their_memory() -> None:
    # Measured on the 2-core EPYC: ~4 400 page faults a pass (17 MB of activations) with glibc's
    # defaults, under 120 with the thresholds; the default re-faults every pass, so 1000 separates them.
    faults, setting = _faults_per_pass(_clean_env())
    assert setting.startswith("glibc mmap threshold 32 MB"), setting
    assert faults < 1000, f"{faults} page faults per forward pass"


@pytest.mark.skipif(not _GLIBC, reason="mallopt is glibc's")
def test_a_users_own_malloc_settings_win() -> None:
    env = _clean_env() | {"MALLOC_TRIM_THRESHOLD_": "0", "MALLOC_MMAP_THRESHOLD_": "65536"}
    faults, setting = _faults_per_pass(env)
    assert setting == "user's MALLOC_* settings"
    assert faults > 1000  # the user's (pathological) choice took effect: every pass re-faults


def test_user_settings_are_recognised_in_either_form() -> None:
    assert heap._user_chose({"MALLOC_TOP_PAD_": "1"})
    assert heap._user_chose({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"})
    assert not heap._user_chose({"GLIBC_TUNABLES": "glibc.pthread.rseq=0", "MALLOCX": "1"})
