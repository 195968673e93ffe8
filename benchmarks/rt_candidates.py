"""Network-only speed of the candidate ``lprn-rt`` configurations: the real-time preset picked by measuring.

Why: ``lprn-rt`` is to be the best quality that reaches 240 fps model-only at 1920×1080 fp16 on one
H100 (batching allowed). Speed depends on the architecture alone, so each candidate in
``configs/models/rt-candidates/`` runs here with its initial weights, on the same machine in one
run; their quality at one equal training budget is in docs/MODEL.md ("Presets"). Time on the GPU
machine is short, so this is one command in ``benchmarks/run_gpu.sh`` part 1.

    python benchmarks/rt_candidates.py --device cuda --precision fp16 --size 1920x1080 --batch 1,4,8,16 --json
    python benchmarks/rt_candidates.py --table rt-candidates-1920x1080.json     # the table of a saved run

Timing is the bench's network run (``Engine.infer`` on a device-resident input, CUDA events read
after one synchronisation), per batch size, after warm-up calls that let cuDNN pick its algorithms.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import torch

from videodeblur.bench.network import device_input, timed_iterations
from videodeblur.bench_peers import count_macs
from videodeblur.config import load_model_config
from videodeblur.errors import VideoDeblurError
from videodeblur.measure import PeakMemory, machine_info
from videodeblur.model.lprn import LPRN
from videodeblur.model.registry import LoadedModel
from videodeblur.pipeline import Engine, EngineOptions, resolve_device, resolve_precision

CANDIDATES = Path(__file__).resolve().parents[1] / "configs" / "models" / "rt-candidates"
WARMUP_CALLS = 3


def candidate_speed(config_path: Path, *, width: int, height: int, batches: list[int], device: str,
                    precision: str, iterations: int) -> dict[str, Any]:
    """One candidate's size (parameters, multiply-adds per full-resolution pixel) and, per batch size,
    its network-only fps and median milliseconds per call."""
    config = load_model_config(config_path)
    network = LPRN(config)
    model = LoadedModel(name=config.name, path=config_path, network=network, metadata={})
    engine = Engine(model, EngineOptions(device=device, precision=precision, auto_tile=False))
    row: dict[str, Any] = {"name": config.name, "unshuffle": config.unshuffle, "channels": config.channels,
                           "blocks": config.blocks, "stages": config.stages, "attention": config.attention,
                           "parameters": model.parameters,
                           "kmac_per_pixel": round(count_macs(network, 256, 256) / 256 / 256 / 1000, 1),
                           "batches": []}
    for batch in batches:
        x = device_input(engine, batch, height, width)
        with PeakMemory(engine.device) as memory, torch.inference_mode():
            for _ in range(WARMUP_CALLS):
                engine.infer(x)
            latencies_ms, seconds = timed_iterations(engine.infer, x, engine.device, iterations, None)
        row["batches"].append({"batch": batch, "fps": round(batch * len(latencies_ms) / seconds, 2),
                               "ms_per_call_p50": round(statistics.median(latencies_ms), 3),
                               "cuda_peak_mb": None if memory.cuda_peak_mb is None else round(memory.cuda_peak_mb, 1)})
    best = max(row["batches"], key=lambda b: b["fps"])
    row["best_fps"], row["best_batch"] = best["fps"], best["batch"]
    return row


def largest_fast_enough(rows: list[dict[str, Any]], target_fps: float) -> str | None:
    """The largest candidate (most multiply-adds per pixel) whose best batch reaches ``target_fps``; None
    when none does. Largest is not best: docs/MODEL.md's quality ladder says which candidates gain more
    at one training budget, and the preset is the best of those that reach the target."""
    fast_enough = [r for r in rows if r["best_fps"] >= target_fps]
    return max(fast_enough, key=lambda r: r["kmac_per_pixel"])["name"] if fast_enough else None


def sweep(folder: Path, *, width: int, height: int, batches: list[int], device: str, precision: str,
          iterations: int, target_fps: float) -> dict[str, Any]:
    configs = sorted(folder.glob("*.toml"))
    if not configs:
        raise SystemExit(f"no candidate configs (*.toml) in {folder}")
    rows = [candidate_speed(path, width=width, height=height, batches=batches, device=device,
                            precision=precision, iterations=iterations) for path in configs]
    rows.sort(key=lambda r: r["kmac_per_pixel"])
    resolved = resolve_device(device)
    return {"machine": machine_info(resolved), "size": [width, height],
            "precision": resolve_precision(precision, resolved),
            "iterations": iterations, "target_fps": target_fps, "candidates": rows,
            "largest_fast_enough": largest_fast_enough(rows, target_fps)}


def table(result: dict[str, Any]) -> str:
    batches = [b["batch"] for b in result["candidates"][0]["batches"]]
    head = ["candidate", "params", "kMAC/px", *(f"fps b{b}" for b in batches), "best"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for row in result["candidates"]:
        cells = [row["name"], str(row["parameters"]), f"{row['kmac_per_pixel']:.1f}",
                 *(f"{b['fps']:.1f}" for b in row["batches"]), f"{row['best_fps']:.1f} (b{row['best_batch']})"]
        lines.append("| " + " | ".join(cells) + " |")
    w, h = result["size"]
    machine = result["machine"]
    where = machine["gpu"]["name"] if machine["gpu"] else f"{machine['cpu']} ({machine['cores']} cores)"
    lines.append(f"\n{w}x{h} {result['precision']} on {where}; "
                 f"largest reaching {result['target_fps']:g} fps: {result['largest_fast_enough'] or 'none'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", type=Path, default=CANDIDATES, help="folder of candidate model TOMLs")
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--batch", default="1,4,8,16", help="batch sizes, comma-separated")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--iterations", type=int, default=30, help="timed calls per batch size")
    parser.add_argument("--target-fps", type=float, default=240.0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--table", type=Path, metavar="RESULT.json", help="print the table of a saved --json run")
    args = parser.parse_args(argv)
    if args.table is not None:
        print(table(json.loads(args.table.read_text())))
        return
    width, height = (int(v) for v in args.size.lower().split("x"))
    batches = [int(b) for b in args.batch.split(",")]
    try:
        result = sweep(args.configs, width=width, height=height, batches=batches, device=args.device,
                       precision=args.precision, iterations=args.iterations, target_fps=args.target_fps)
    except VideoDeblurError as err:  # no CUDA, a malformed config: one line, as the CLI says it
        raise SystemExit(f"rt_candidates.py: {err}") from None
    print(json.dumps(result, indent=1) if args.json else table(result))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
