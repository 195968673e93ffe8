"""CPU colour conversion (RgbConverter.to_rgb) of each decoded layout, with and without the wrap
check's 16-bit fallback, in one run (docs/BENCHMARKS.md, "Colour conversion by layout").

Why: limited-range frames whose wrap check cannot read their layout take a second, 16-bit
conversion (videodeblur/video/colour.py, may_wrap); webcams give yuyv422 and hardware decoders nv12.

Usage: python benchmarks/colour_layouts.py [--sizes 640x360,1280x720] [--repeat 100]
Prints one JSON object: per size and layout, the fastest and median ms per frame as shipped and
with every frame sent through the 16-bit fallback (what an unread layout costs).
"""
from __future__ import annotations

import argparse
import json
import statistics
from unittest import mock

import av
import numpy as np

from videodeblur.measure import call_times_s
from videodeblur.video import colour


def times_ms(frame: av.VideoFrame, repeat: int) -> list[float]:
    converter = colour.RgbConverter()
    return [1000 * s for s in call_times_s(lambda: converter.to_rgb(frame), repeat=repeat, warmup=5)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="640x360,1280x720")
    parser.add_argument("--layouts", default="yuv420p,nv12,yuyv422")
    parser.add_argument("--repeat", type=int, default=100)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    result: dict[str, dict[str, dict[str, float]]] = {}
    for size in args.sizes.split(","):
        width, height = map(int, size.split("x"))
        picture = (rng.random((height, width, 3)) * 200 + 20).astype(np.uint8)  # legal: no frame at risk
        for layout in args.layouts.split(","):
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format=layout)
            frame.color_range = 1  # limited, as cameras and decoders tag it: full range never wraps
            shipped = times_ms(frame, args.repeat)
            with mock.patch.object(colour, "may_wrap", lambda _frame: True):
                fallback = times_ms(frame, args.repeat)
            result.setdefault(size, {})[layout] = {
                "fastest_ms": round(min(shipped), 3), "median_ms": round(statistics.median(shipped), 3),
                "with_fallback_fastest_ms": round(min(fallback), 3),
                "with_fallback_median_ms": round(statistics.median(fallback), 3)}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
