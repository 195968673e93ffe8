"""benchmarks/ablation_table.py: the training-budget tables of docs/MODEL.md from a runs folder."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "ablation_table.py"


def _row(root: Path, seed: int, name: str, gain: float, val_gain: float, parameters: int) -> None:
    folder = root / f"seed{seed}" / name
    folder.mkdir(parents=True)
    meta = {"config": {"attention": "both", "stages": 3}, "steps": 2000, "seconds": 100.0 + seed,
            "evaluation": {"gain_db": gain, "psnr_sharp_through": 47.0}}
    (folder / f"{name}.json").write_text(json.dumps(meta))
    torch.save({"state_dict": {"w": torch.zeros(parameters)}}, folder / f"{name}.pt")
    (folder / "val.csv").write_text(f"step,psnr,gain_db\n2000,34.0,{val_gain}\n")


def _table(root: Path) -> list[str]:
    done = subprocess.run([sys.executable, str(SCRIPT), str(root)], capture_output=True, text=True, timeout=120,
                          check=True)
    return done.stdout.splitlines()


def test_rows_found_under_the_seeds_are_tabled_with_their_seeds_and_spread(tmp_path: Path) -> None:
    for seed, (a, b, val) in enumerate([(0.10, 0.20, 0.0), (0.14, 0.18, -0.01)]):
        _row(tmp_path, seed, "rt-u2-c32-b2-t3", a, val, 1000)
        _row(tmp_path, seed, "rt-u4-c64-b2-t3", b, 0.02, 5000)
    _row(tmp_path, 1, "rt-u2-c48-b2-t3", 0.3, 0.0, 2000)  # saved, not scored yet: not a result
    meta_path = tmp_path / "seed1" / "rt-u2-c48-b2-t3" / "rt-u2-c48-b2-t3.json"
    meta_path.write_text(json.dumps({**json.loads(meta_path.read_text()), "evaluation": None}))
    lines = _table(tmp_path)
    rows = [line for line in lines if line.startswith("| rt-")]
    assert [r.split(" | ")[0] for r in rows] == ["| rt-u2-c32-b2-t3", "| rt-u2-c48-b2-t3", "| rt-u4-c64-b2-t3"]
    assert "not run" in rows[1]
    assert "| 1000 | 2000 | 100 | +0.100 / +0.140 | +0.120 | +0.000 / -0.010 | -0.005 | 47.0 | – |" in rows[0]
    assert "| 5000 | 2000 | 100 | +0.200 / +0.180 | +0.190 |" in rows[2]
    assert lines[-1].startswith("seed-to-seed spread") and "evaluation 0.030 dB (largest 0.040)" in lines[-1]


def test_the_ablations_show_every_paper_row_run_or_not(tmp_path: Path) -> None:
    _row(tmp_path, 0, "lprn-t6-both", 0.25, 0.04, 24505)
    rows = [line for line in _table(tmp_path) if line.startswith("| lprn-")]
    assert len(rows) == 6 and sum("not run" in r for r in rows) == 5
    assert "| lprn-t6-both | both | 3 | 24505 |" in rows[3] and rows[3].endswith("| 30.21 |")


def test_help_is_a_usage_not_a_runs_folder(tmp_path: Path) -> None:
    """`--help` said "no runs under --help/seed*/" (h2's C7)."""
    shown = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and shown.stdout.startswith("usage: ablation_table.py") and "ROOT" in shown.stdout
    missing = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "none")], capture_output=True, text=True,
                             timeout=60)
    assert missing.returncode == 1 and missing.stderr.splitlines() == [
        f"no runs under {tmp_path / 'none'}/seed*/ (run docs/run_ablations.sh first)"]
