"""benchmarks/rt_candidates.py: the speed sweep that picks the real-time preset on the GPU machine."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from videodeblur.config import load_model_config

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "rt_candidates.py"


def _module():
    spec = importlib.util.spec_from_file_location("rt_candidates", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_candidates_include_the_shipped_preset_and_differ_from_each_other() -> None:
    configs = [load_model_config(p) for p in sorted((ROOT / "configs" / "models" / "rt-candidates").glob("*.toml"))]
    knobs = [(c.channels, c.blocks, c.stages, c.attention, c.unshuffle, c.reduction) for c in configs]
    shipped = load_model_config(ROOT / "configs" / "models" / "lprn-rt.toml")
    assert (shipped.channels, shipped.blocks, shipped.stages, shipped.attention, shipped.unshuffle,
            shipped.reduction) in knobs
    assert len(set(knobs)) == len(knobs) >= 4
    for config in configs:  # each name spells its knobs, so a table row cannot be misread
        assert config.name == f"rt-u{config.unshuffle}-c{config.channels}-b{config.blocks}-t{config.stages}"


def test_the_sweep_times_every_candidate_at_every_batch_and_picks_the_largest_fast_enough() -> None:
    module = _module()
    result = module.sweep(module.CANDIDATES, width=64, height=40, batches=[1, 2], device="cpu", precision="fp32",
                          iterations=2, target_fps=0.0)
    rows = result["candidates"]
    assert len(rows) == len(list(module.CANDIDATES.glob("*.toml")))
    assert result["size"] == [64, 40] and result["precision"] == "fp32" and result["machine"]["gpu"] is None
    by_name = {r["name"]: r for r in rows}
    # the shipped preset's multiply-adds per full-resolution pixel, as docs/MODEL.md quotes them
    assert by_name["rt-u2-c32-b2-t3"]["kmac_per_pixel"] == pytest.approx(35.7, abs=0.05)
    assert [r["kmac_per_pixel"] for r in rows] == sorted(r["kmac_per_pixel"] for r in rows)
    for row in rows:
        assert [b["batch"] for b in row["batches"]] == [1, 2]
        assert all(b["fps"] > 0 and b["ms_per_call_p50"] > 0 and b["cuda_peak_mb"] is None for b in row["batches"])
        best = max(row["batches"], key=lambda b: b["fps"])
        assert (row["best_fps"], row["best_batch"]) == (best["fps"], best["batch"])
    # every candidate reaches 0 fps: the largest is the one with the most multiply-adds
    assert result["largest_fast_enough"] == rows[-1]["name"]
    assert module.largest_fast_enough(rows, target_fps=1e12) is None
    slowest_fast_enough = sorted(rows, key=lambda r: r["best_fps"])
    threshold = slowest_fast_enough[-1]["best_fps"]  # only the fastest candidate reaches it
    assert module.largest_fast_enough(rows, target_fps=threshold) == slowest_fast_enough[-1]["name"]


def test_the_command_prints_json_and_a_table(tmp_path: Path) -> None:
    folder = tmp_path / "two"
    folder.mkdir()
    for name in ("rt-u2-c32-b2-t2", "rt-u2-c32-b2-t3"):
        (folder / f"{name}.toml").write_text((SCRIPT.parents[1] / "configs" / "models" / "rt-candidates" /
                                              f"{name}.toml").read_text())
    args = [sys.executable, str(SCRIPT), "--configs", str(folder), "--size", "48x32", "--batch", "1",
            "--iterations", "2", "--device", "cpu"]
    done = subprocess.run([*args, "--json"], capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(done.stdout)
    assert [r["name"] for r in result["candidates"]] == ["rt-u2-c32-b2-t2", "rt-u2-c32-b2-t3"]
    assert result["target_fps"] == 240.0
    shown = subprocess.run(args, capture_output=True, text=True, timeout=120, check=True).stdout
    assert shown.count("| rt-u2-c32-b2-") == 2 and "largest reaching 240 fps" in shown
    saved = tmp_path / "result.json"
    saved.write_text(done.stdout)
    again = subprocess.run([*args[:2], "--table", str(saved)], capture_output=True, text=True, timeout=60, check=True)
    rows = [line for line in again.stdout.splitlines() if line.startswith("| rt-")]
    assert [row.split(" | ")[2] for row in rows] == [f"{r['kmac_per_pixel']:.1f}" for r in result["candidates"]]
    assert [row.split(" | ")[3] for row in rows] == [f"{r['batches'][0]['fps']:.1f}" for r in result["candidates"]]
    empty = tmp_path / "empty"
    empty.mkdir()
    failed = subprocess.run([*args[:2], "--configs", str(empty)], capture_output=True, text=True, timeout=60)
    assert failed.returncode != 0 and "no candidate configs" in failed.stderr


def test_asking_for_cuda_without_it_is_one_line() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is here")
    failed = subprocess.run([sys.executable, str(SCRIPT), "--device", "cuda", "--size", "48x32"],
                            capture_output=True, text=True, timeout=120)
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    assert failed.stderr.strip().splitlines() == [failed.stderr.strip()] and "CUDA is not available" in failed.stderr
