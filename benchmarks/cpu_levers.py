"""Network-only speed of one model under each engine lever, in one run (docs/BENCHMARKS.md, "Speed-ups").

Usage: python benchmarks/cpu_levers.py [--model lprn-fast] [--size 640x360] [--repeat 20]
Prints one JSON object: median ms per frame for each setting, measured back to back.
"""
from __future__ import annotations

import argparse
import json
import statistics

import torch

from videodeblur.measure import call_times_s
from videodeblur.pipeline import Engine, EngineOptions


def median_ms_per_frame(engine: Engine, batch: int, height: int, width: int, repeat: int) -> float:
    x = torch.rand(batch, 3, height, width)
    with torch.inference_mode():
        times = call_times_s(lambda: engine.infer(x), repeat=repeat, warmup=3)
    return 1000 * statistics.median(times) / batch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="lprn-fast")
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    settings = {
        "fp32 NCHW b1": EngineOptions(device="cpu", precision="fp32", channels_last=False, batch_size=1),
        "fp32 channels_last b1": EngineOptions(device="cpu", precision="fp32", batch_size=1),
        "fp32 channels_last b2": EngineOptions(device="cpu", precision="fp32", batch_size=2),
        "fp32 channels_last b4": EngineOptions(device="cpu", precision="fp32", batch_size=4),
        "bf16 channels_last b1": EngineOptions(device="cpu", precision="bf16", batch_size=1),
        "fp32 channels_last b1, 1 thread": EngineOptions(device="cpu", precision="fp32", batch_size=1, threads=1),
    }
    result = {"model": args.model, "size": [width, height], "cpu_threads": torch.get_num_threads(), "ms_per_frame": {}}
    for name, options in settings.items():
        engine = Engine.from_name(args.model, options)
        result["ms_per_frame"][name] = round(median_ms_per_frame(engine, options.batch_size, height, width,
                                                                 args.repeat), 2)
    torch.set_num_threads(2)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
