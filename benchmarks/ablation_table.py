"""The ablation tables of docs/MODEL.md from the runs of docs/run_ablations.sh.

Usage: python benchmarks/ablation_table.py [runs/ablation]
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

PAPER = {"lprn-t6-none": 30.08, "lprn-t6-channel": 30.16, "lprn-t6-spatial": 30.14, "lprn-t6-both": 30.21,
         "lprn-t5-both": 30.17, "lprn-t7-both": 30.21}


def main(root: Path) -> None:
    print("| row | attention | T | params | steps | seconds | PSNR | gain dB | SSIM | paper (GoPro PSNR) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, paper in PAPER.items():
        meta_path = root / name / f"{name}.json"
        if not meta_path.is_file():
            print(f"| {name} | | | | not run | | | | | {paper} |")
            continue
        meta = json.loads(meta_path.read_text())
        ev, cfg = meta["evaluation"], meta["config"]
        import torch  # noqa: PLC0415 - only to count parameters

        state = torch.load(root / name / f"{name}.pt", weights_only=True)["state_dict"]
        params = sum(v.numel() for v in state.values())
        print(f"| {name} | {cfg['attention']} | {cfg['stages']} | {params} | {meta['steps']} | {meta['seconds']:.0f} | "
              f"{ev['psnr']:.3f} | {ev['gain_db']:+.3f} | {ev['ssim']:.4f} | {paper} |")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/ablation"))
