"""Does the deblurred video flicker? Frame-to-frame change of still pixels, before and after a model.

A network run frame by frame can change a still background differently in each frame (sharpening
the sensor noise or compression that differs from frame to frame), which shows as shimmer even where
each frame alone scores well. This script measures it on real footage: a pixel is still where no
colour channel of the input changes by more than ``--still`` levels from one frame to the next; for
those pixels it compares the mean frame-to-frame change (the largest over the channels) of the
output with that of the input, and counts how often the output changes by more than
``--visible`` levels there.

    python docs/temporal_stability.py --model lprn-fast --model lprn-rt --model lprn

Defaults: the held-out still-camera scene of bikes.mp4 (frames 187-242) and 40 frames of vtest.avi
(a fixed surveillance camera), from ../shared/data.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from videodeblur.api import Deblurrer

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "video"
CLIPS = ((DATA / "bikes.mp4", 187, 242), (DATA / "vtest.avi", 600, 640))


def read_frames(path: Path, first: int, stop: int) -> np.ndarray:
    """RGB frames [first, stop) of a video, as the ``video`` command reads them."""
    from videodeblur.video.reader import FrameReader

    with FrameReader(path) as reader:
        return np.stack([f.image for i, f in zip(range(stop), reader) if i >= first])


def frame_to_frame(frames: np.ndarray) -> np.ndarray:
    """Per-pixel change from each frame to the next: the largest over the colour channels."""
    return np.abs(np.diff(frames.astype(np.int16), axis=0)).max(axis=-1)


def stability(source: np.ndarray, output: np.ndarray, still: int, visible: int) -> dict[str, float]:
    """Frame-to-frame change on the input's still pixels, input against output."""
    before, after = frame_to_frame(source), frame_to_frame(output)
    mask = before <= still
    return {"still_share": float(mask.mean()), "input_change": float(before[mask].mean()),
            "output_change": float(after[mask].mean()),
            "ratio": float(after[mask].mean() / max(before[mask].mean(), 1e-9)),
            "visible_share": float((after[mask] > visible).mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=None, help="model name or weights path (repeatable)")
    parser.add_argument("--still", type=int, default=2, help="largest input change (levels) of a still pixel")
    parser.add_argument("--visible", type=int, default=4, help="output change (levels) counted as visible")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    for path, first, stop in CLIPS:
        source = read_frames(path, first, stop)
        for model in args.model or ["lprn-fast", "lprn-rt", "lprn"]:
            output = Deblurrer(model, device="cpu").frames(source)
            rows.append({"clip": f"{path.name} [{first}, {stop})", "model": model,
                         **stability(source, output, args.still, args.visible)})
    if args.json:
        print(json.dumps(rows))
        return
    print("| clip | model | still pixels | change in (levels) | change out | out / in | out > "
          f"{args.visible} levels |\n| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['clip']} | `{r['model']}` | {100 * r['still_share']:.0f} % | {r['input_change']:.3f} | "
              f"{r['output_change']:.3f} | {r['ratio']:.2f} | {100 * r['visible_share']:.3f} % |")


if __name__ == "__main__":
    main()
