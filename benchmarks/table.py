"""Turn `videodeblur bench --json` files into the Markdown rows of docs/BENCHMARKS.md.

Usage: python benchmarks/table.py runs/bench/*.json
"""
from __future__ import annotations

import argparse
import json
import sys


def row(data: dict) -> str:
    runs = data["runs"]
    first = lambda mode: next(r for r in runs if r["mode"] == mode)
    models = [r for r in runs if r["mode"] == "model"]
    best = max(models, key=lambda r: r["fps"])
    pipe, seq = first("pipelined"), first("sequential")
    lat = pipe["latency_ms"]
    w, h = data["size"]
    model_fps = " / ".join(f"{r['fps']:.1f} (b{r['batch']})" for r in models)
    return (f"| {data['model']} | {w}×{h} | {first('decode')['fps']:.0f} | {model_fps} | {first('network')['fps']:.1f} | "
            f"{first('encode')['fps']:.0f} | {seq['fps']:.1f} | {pipe['fps']:.1f} (b{pipe['batch']}) | "
            f"{pipe['fps'] / best['fps']:.2f} | {data['bound']} | {data['overlap']:.2f} | "
            f"{lat['p50']:.0f} / {lat['p95']:.0f} | {max(r['peak_rss_mb'] or 0 for r in runs):.0f} |")


def _read(path: str) -> dict:
    """One `videodeblur bench --json` result, or a one-line exit naming the file and what is wrong."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as err:
        sys.exit(f"table.py: error: cannot read {path}: {err.strerror or err}")
    except ValueError as err:  # not JSON (or not UTF-8)
        sys.exit(f"table.py: error: {path} is not JSON ({err}): give `videodeblur bench --json` files")
    return data


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="table.py", description="Print the Markdown rows of docs/BENCHMARKS.md from `videodeblur bench "
        "--json` files (one row each, with the peers and the model-only drift under it).",
        epilog="e.g. python benchmarks/table.py runs/bench/*.json")
    parser.add_argument("files", nargs="+", metavar="BENCH.json", help="output of `videodeblur bench --json`")
    for path in parser.parse_args(argv).files:
        data = _read(path)
        try:
            line = row(data)
        except (KeyError, StopIteration, TypeError, ValueError) as err:  # another JSON, or a bench of some modes only
            what = f"no {err}" if isinstance(err, KeyError) else "not every mode"
            sys.exit(f"table.py: error: {path} is not a whole `videodeblur bench --json` result ({what}): the row "
                     "needs every mode of a plain `videodeblur bench --json` run")
        print(line)
        for name, peer in (data.get("peers") or {}).items():  # {"nafnet-32": {"fps": ..., "speed_ratio": ...}}
            print(f"   peer {name}: {peer['fps']} fps, ours {peer['speed_ratio']} x faster")
        drift = data.get("drift")  # model-only fps before and after the file runs (since the eighteenth session)
        if drift and drift.get("change") is not None:
            print(f"   drift: model-only {drift['model_fps_before']:.1f} -> {drift['model_fps_after']:.1f} fps "
                  f"({drift['change']:+.0%}) across the file runs")


if __name__ == "__main__":
    main()
