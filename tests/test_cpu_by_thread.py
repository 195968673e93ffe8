"""benchmarks/cpu_by_thread.py: the per-thread CPU accounting that docs/BENCHMARKS.md quotes."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "cpu_by_thread.py"


@pytest.mark.parametrize("engines", [1, 2])
def test_every_stage_thread_is_accounted_and_the_shares_add_up(make_clip, engines: int) -> None:
    clip = make_clip("c.mp4", width=96, height=64, frames=12)
    done = subprocess.run([sys.executable, str(SCRIPT), str(clip), "--engines", str(engines), "--json"],
                          capture_output=True, text=True, timeout=300, check=True)
    report = json.loads(done.stdout)
    assert report["frames"] == 12 and report["fps"] > 0
    threads = report["threads"]
    # the decode and encode threads always run; with lanes the model runs on its own threads, with
    # one engine on the runner's (main) thread
    assert threads["videodeblur-decode"]["cpu_s"] > 0 and threads["videodeblur-encode"]["cpu_s"] > 0
    if engines == 2:
        assert threads["videodeblur-infer"]["cpu_s"] > 0
    else:
        assert "videodeblur-infer" not in threads
    assert sum(row["cpu_s"] for row in threads.values()) == pytest.approx(report["cpu_s"], abs=0.01)
    assert sum(row["share"] for row in threads.values()) == pytest.approx(1.0, abs=0.01)
    for row in threads.values():
        assert row["ms_per_frame"] == pytest.approx(1000 * row["cpu_s"] / 12, abs=0.05)  # cpu_s is rounded to 1 ms


def test_pairs_alternate_model_only_and_pipelined_runs(make_clip) -> None:
    clip = make_clip("c.mp4", width=96, height=64, frames=12)
    done = subprocess.run([sys.executable, str(SCRIPT), str(clip), "--pairs", "2", "--json"],
                          capture_output=True, text=True, timeout=300, check=True)
    report = json.loads(done.stdout)
    assert report["frames"] == 12 and len(report["pairs"]) == 2
    for pair in report["pairs"]:
        assert pair["model_fps"] > 0 and pair["pipelined_fps"] > 0
        assert pair["ratio"] == pytest.approx(pair["pipelined_fps"] / pair["model_fps"], rel=0.01)
        assert pair["model_lane_ms"] > 0 and pair["pipelined_lane_ms"] > 0  # both ran in the lanes
        assert 0 < pair["pipelined_model_share"] <= 1
    ratios = sorted(p["ratio"] for p in report["pairs"])
    assert report["median_ratio"] == pytest.approx(sum(ratios) / 2, abs=1e-3)
