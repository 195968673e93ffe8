"""Where the evaluation set's error lives: PSNR of the blurred input and of models, split by how far
each pixel moves per frame interval (dense optical flow between the sharp neighbours).

GoPro-style pairs from 25 fps video smear fast objects over tens of pixels; where an object moves
further than it is wide, the average shows the background through it (a ghost), and what was
behind it is not in the blurred frame for a single-frame network to recover. This script measures how much of the evaluation figure comes from
such pixels, so a gain (or a loss) can be read per kind of motion, and what a
network that halves the error of every pixel moving less than 12 px (+3 dB there) would gain on the
evaluation's per-pair mean.

    python docs/eval_by_motion.py --model lprn-fast --model runs/x/lprn-fast-best.pt

Defaults rebuild the evaluation set of docs/MODEL.md (bikes.mp4 scenes 30-76 and 187-242, every
third frame, exposures 13 and 17) in memory.
"""
from __future__ import annotations

import argparse
import json
from collections import defaultdict

import numpy as np
import torch

from videodeblur.model import load_model
from videodeblur.train.data import read_video_scenes
from videodeblur.train.synthesis import gopro_blurs, optical_flow, to_uint8

BINS = ((0.0, 1.0, "static <1 px"), (1.0, 12.0, "moving 1-12 px"), (12.0, float("inf"), "fast >=12 px"))


def motion_magnitude(previous: np.ndarray, centre: np.ndarray, following: np.ndarray) -> np.ndarray:
    """Per-pixel displacement (px per frame interval) of ``centre`` towards either neighbour, the larger."""
    back = np.linalg.norm(optical_flow(centre, previous), axis=2)
    fwd = np.linalg.norm(optical_flow(centre, following), axis=2)
    return np.maximum(back, fwd)


def psnr_from_sse(sse: float, count: int) -> float:
    return float(10.0 * np.log10(count / max(sse, 1e-12)))


@torch.inference_mode()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", default="../shared/data/video/bikes.mp4")
    parser.add_argument("--scene", action="append", nargs=2, type=int, metavar=("FIRST", "STOP"),
                        help="frames [FIRST, STOP) of one shot (default: 30 76 and 187 242)")
    parser.add_argument("--exposures", default="13,17")
    parser.add_argument("--stride", type=int, default=3)
    parser.add_argument("--model", action="append", default=[], help="shipped name or weights path (repeatable)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    scenes = args.scene or [(30, 76), (187, 242)]
    exposures = tuple(int(e) for e in args.exposures.split(","))
    networks = {name: load_model(name).network.eval() for name in args.model}
    sse: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))  # who -> bin -> SSE
    counts: dict[str, int] = defaultdict(int)
    # per pair, as the evaluation averages: the error of every pixel moving under 12 px halved (+3 dB
    # there, about what strong deblurring networks gain on GoPro), the fast ones left as they are
    oracle_gains: list[float] = []
    for first, stop in scenes:
        frames = read_video_scenes(args.video, exclude=[(0, first), (stop, 1 << 30)])[0].frames
        for t in range(1, len(frames) - 1, args.stride):
            motion = motion_magnitude(frames[t - 1], frames[t], frames[t + 1])
            sharp = frames[t].astype(np.float64) / 255.0
            for blurred in gopro_blurs(frames[t - 1], frames[t], frames[t + 1], exposures=exposures):
                blurred8 = to_uint8(blurred)
                outputs = {"input": blurred8.astype(np.float64) / 255.0}
                x = torch.from_numpy(blurred8).permute(2, 0, 1)[None].float() / 255.0
                for name, net in networks.items():
                    y = net(x).clamp(0, 1)[0].permute(1, 2, 0).numpy()
                    outputs[name] = np.rint(y * 255.0) / 255.0
                error = (outputs["input"] - sharp) ** 2
                restored = np.where((motion < BINS[-1][0])[..., None], error / 2.0, error)
                oracle_gains.append(10.0 * np.log10(error.mean() / max(restored.mean(), 1e-12)))
                for low, high, label in BINS:
                    mask = (motion >= low) & (motion < high)
                    counts[label] += int(mask.sum()) * 3
                    for who, image in outputs.items():
                        sse[who][label] += float(((image - sharp)[mask] ** 2).sum())
    total_pixels = sum(counts.values())
    total_input = sum(sse["input"].values())
    report: dict = {"bins": {}, "oracle_gain_db": round(float(np.mean(oracle_gains)), 3), "pairs": len(oracle_gains)}
    for _, _, label in BINS:
        row = {"pixel_share": round(counts[label] / total_pixels, 4),
               "input_error_share": round(sse["input"][label] / total_input, 4),
               "psnr_input": round(psnr_from_sse(sse["input"][label], counts[label]), 3)}
        for name in networks:
            row[f"gain_{name}"] = round(psnr_from_sse(sse[name][label], counts[label]) - row["psnr_input"], 3)
        report["bins"][label] = row
    if args.json:
        print(json.dumps(report))
        return
    names = list(networks)
    print("| motion | pixels | share of input error | input PSNR | " + " | ".join(f"gain {n}" for n in names) + " |")
    print("| --- " * (4 + len(names)) + "|")
    for label, row in report["bins"].items():
        gains = " | ".join(f"{row[f'gain_{n}']:+.3f} dB" for n in names)
        print(f"| {label} | {row['pixel_share']:.1%} | {row['input_error_share']:.1%} | {row['psnr_input']:.2f} dB | {gains} |")
    print(f"\n{report['pairs']} pairs. Mean gain per pair if the error of every pixel moving under {BINS[-1][0]:g} px "
          f"were halved (+3 dB there) and the fast ones left as they are: {report['oracle_gain_db']:+.3f} dB")


if __name__ == "__main__":
    main()
