"""The ablation tables of docs/MODEL.md from the runs of docs/run_ablations.sh.

Usage: python benchmarks/ablation_table.py [runs/<recipe name>]   (default runs/ablation)
(any rows run by docs/run_ablations.sh with MODELS, e.g. runs/rt-candidates, are tabled the same way)

Rows are read from ``<root>/seed<N>/<row>/``: each seed's evaluation gain (the run's end, on the
evaluation pairs) and validation gain (the last line of its val.csv, if the recipe validates), then
their mean. With two or more seeds the table ends with the seed-to-seed spread, the yardstick for
any difference between rows.
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from pathlib import Path

PAPER = {"lprn-t6-none": 30.08, "lprn-t6-channel": 30.16, "lprn-t6-spatial": 30.14, "lprn-t6-both": 30.21,
         "lprn-t5-both": 30.17, "lprn-t7-both": 30.21}


def _run(folder: Path, name: str) -> dict | None:
    """One finished row of one seed: its end metadata and its last validation score (or None)."""
    meta_path = folder / f"{name}.json"
    if not meta_path.is_file():
        return None
    meta = json.loads(meta_path.read_text())
    if meta.get("evaluation") is None:  # saved at the end of training, scored a moment later
        return None
    val_path = folder / "val.csv"
    rows = list(csv.DictReader(val_path.open())) if val_path.is_file() else []
    meta["validation_gain"] = float(rows[-1]["gain_db"]) if rows else None
    return meta


def _params(folder: Path, name: str) -> int:
    import torch  # noqa: PLC0415 - only to count parameters

    state = torch.load(folder / f"{name}.pt", weights_only=True)["state_dict"]
    return sum(v.numel() for v in state.values())


def _row_names(seeds: list[Path]) -> list[str]:
    """The rows run under any seed: the paper's six in its order (each shown, run or not) when the
    runs are the ablations, else every row found (the ``lprn-rt`` candidates), by name."""
    found = sorted({p.name for seed in seeds for p in seed.iterdir() if p.is_dir()})
    if any(name in PAPER for name in found):
        return [*PAPER, *(name for name in found if name not in PAPER)]
    return found


def _cell(values: list[float]) -> str:
    return " / ".join(f"{v:+.3f}" for v in values) if values else "–"


def main(root: Path) -> None:
    seeds = sorted(root.glob("seed*"), key=lambda p: int(p.name[4:]) if p.name[4:].isdigit() else 0)
    if not seeds:
        sys.exit(f"no runs under {root}/seed*/ (run docs/run_ablations.sh first)")
    print(f"seeds: {', '.join(p.name[4:] for p in seeds)}; gains in dB over the input, one value per seed")
    print()
    print("| row | attention | T | params | steps | seconds (median) | evaluation gain | mean | "
          "validation gain | mean | sharp through (mean) | paper (GoPro PSNR) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    spreads_eval, spreads_val = [], []
    for name in _row_names(seeds):
        paper = PAPER.get(name, "–")
        runs = [(seed, meta) for seed in seeds if (meta := _run(seed / name, name)) is not None]
        if not runs:
            print(f"| {name} | | | | not run | | | | | | | {paper} |")
            continue
        cfg = runs[0][1]["config"]
        evals = [m["evaluation"]["gain_db"] for _, m in runs]
        vals = [m["validation_gain"] for _, m in runs if m["validation_gain"] is not None]
        sharp = statistics.mean(m["evaluation"]["psnr_sharp_through"] for _, m in runs)
        if len(evals) > 1:
            spreads_eval.append(max(evals) - min(evals))
        if len(vals) > 1:
            spreads_val.append(max(vals) - min(vals))
        print(f"| {name} | {cfg['attention']} | {cfg['stages']} | {_params(runs[0][0] / name, name)} | "
              f"{runs[0][1]['steps']} | {statistics.median(m['seconds'] for _, m in runs):.0f} | {_cell(evals)} | "
              f"{statistics.mean(evals):+.3f} | {_cell(vals)} | "
              f"{f'{statistics.mean(vals):+.3f}' if vals else '–'} | {sharp:.1f} | {paper} |")
    if spreads_eval:
        print()
        print(f"seed-to-seed spread (max - min per row, median over rows): evaluation "
              f"{statistics.median(spreads_eval):.3f} dB (largest {max(spreads_eval):.3f}), validation "
              + (f"{statistics.median(spreads_val):.3f} dB (largest {max(spreads_val):.3f})" if spreads_val else "–"))


def _arguments(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(
        prog="ablation_table.py", description="Print the ablation tables of docs/MODEL.md from the runs of "
        "docs/run_ablations.sh: each row's evaluation and validation gain per seed (ROOT/seed<N>/<row>/), their "
        "mean, and the seed-to-seed spread.")
    parser.add_argument("root", nargs="?", default="runs/ablation", metavar="ROOT",
                        help="the runs folder, e.g. runs/rt-candidates (default: %(default)s)")
    return Path(parser.parse_args(argv).root)


if __name__ == "__main__":
    main(_arguments())
