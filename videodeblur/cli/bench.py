"""``videodeblur bench``: measure every stage and the whole pipeline on this machine."""
from __future__ import annotations

import json
from typing import Any

import click

from videodeblur.cli._common import (device_option, engines_option, json_option, model_option, parse_size,
                                     precision_option, preset_option, tile_option)

__all__ = ["bench", "format_table"]


def _parse_size(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, int]:
    return parse_size(value)


def _parse_batches(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, ...]:
    """``1,4,8`` as ``(1, 4, 8)``. An empty item (``1,,4``, a trailing comma) and a size given twice are
    refused, not dropped: both are typos (``1,4,4`` for ``1,4,8``) that would measure less than was meant."""
    items = [v.strip() for v in value.split(",")]
    if "" in items:
        raise click.BadParameter(f"{value!r} has an empty item: give comma-separated batch sizes, e.g. 1,4,8")
    try:
        batches = tuple(int(v) for v in items)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of batch sizes, e.g. 1,4,8") from None
    if min(batches) < 1:
        raise click.BadParameter(f"{value!r}: batch sizes must be positive integers, e.g. 1,4,8")
    twice = sorted({b for b in batches if batches.count(b) > 1})
    if twice:
        raise click.BadParameter(f"{value!r} gives batch {', '.join(map(str, twice))} more than once: give each size once")
    return batches


@click.command("bench")
@model_option()
@click.option("--size", default="640x360", show_default=True, callback=_parse_size, metavar="WxH",
              help="WIDTHxHEIGHT of the generated test clip (ignored with --input).")
@click.option("--frames", default=150, show_default=True, type=click.IntRange(min=2),
              help="Frames of the clip, the warm-up included (the first ones of --input).")
@click.option("--batch", "batches", default="1,4,8", show_default=True, callback=_parse_batches, metavar="N[,N...]",
              help="Batch sizes for the model-only runs; the pipeline runs use the fastest.")
@device_option
@precision_option
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the network (compile time is reported "
                                                          "with the warm-up, not in the fps).")
@click.option("--cuda-graphs", is_flag=True, help="On CUDA, replay the engine's network as a captured CUDA graph "
                                                   "(capture counts with the warm-up).")
@click.option("--input", "input_", type=click.Path(dir_okay=False),  # a str: Path("") would be "."
              help="Measure on this video file instead of a generated clip.")
@click.option("--warmup", "warmup_frames", type=click.IntRange(min=0), default=None,
              help="Warm-up frames left out of every measurement [default: a fifth of --frames, at most 25].")
@tile_option("Run the network in overlapping NxN tiles, as `video --tile` does (e.g. 4K on a small GPU).")
@click.option("--encoder", default="auto", show_default=True,
              help="Encoder for the encode and pipeline runs (auto: h264_nvenc if it opens, else libx264).")
@preset_option("libx264 / libx265 speed preset, also mapped onto libvpx's speed.")
@engines_option
@click.option("--compare", is_flag=True, help="Also time NAFNet-32/64 and MIMO-UNet/+ (network only, batch 1).")
@click.option("--peer", "peers", multiple=True, metavar="NAME",
              help="Only these peers (nafnet-32, nafnet-64, mimo-unet, mimo-unet+; repeatable); implies --compare.")
@json_option
def bench(model: str | None, size: tuple[int, int], frames: int, batches: tuple[int, ...], device: str,
          precision: str, compile_: bool, cuda_graphs: bool, input_: str | None, warmup_frames: int | None, tile: int | None,
          encoder: str, preset: str, engines: int | None, compare: bool, peers: tuple[str, ...],
          as_json: bool) -> None:
    """Measure decode, model, encode, and the sequential and pipelined pipeline on the same frames."""
    try:
        from videodeblur.bench import BenchOptions  # checks the options (a mistyped --input) before torch loads

        options = BenchOptions(model=model, width=size[0], height=size[1], frames=frames, batches=batches,
                               device=device, precision=precision, compile=compile_, cuda_graphs=cuda_graphs,
                               input=input_, warmup_frames=warmup_frames, tile=tile, compare=compare or bool(peers),
                               peers=peers or None, encoder=encoder, preset=preset, engines=engines)
        from videodeblur.bench import run_bench  # torch loads here: seconds on a busy machine

        result = run_bench(options, progress=lambda message: click.echo(f"bench: {message}", err=True))
    except KeyboardInterrupt:
        # Abort, not the KeyboardInterrupt: click answers that with a blank line before run_cli's "interrupted"
        raise click.exceptions.Abort() from None
    if as_json:
        click.echo(json.dumps(result.to_dict()))
    else:
        click.echo(format_table(result.to_dict()))


# Model-only fps before and after the file runs differing by more than this: the table says the ratios
# are uncertain. This project's 2-core VM moved single runs by up to ±20 % within minutes.
DRIFT_WARNING = 0.10


def format_table(data: dict[str, Any]) -> str:
    """The ``--json`` object as a table a person reads."""
    machine = data["machine"]
    gpu = machine["gpu"]["name"] if machine.get("gpu") else "no GPU"
    w, h = data["size"]
    first = data["runs"][0]
    # the decode run goes over the clip `repeats` times (its warm-up once): its frames are that many clips
    clip = first["frames"] // first["repeats"] if "repeats" in first else first["frames"] + first["warmup_frames"]
    tiled = f" in {data['tile']}px tiles" if data.get("tile") else ""
    lanes = max((run.get("engines", 1) for run in data["runs"] if run["mode"] == "model"), default=1)
    side_by_side = f", {lanes} engines side by side in the model and pipelined runs" if lanes > 1 else ""
    how = ", ".join([data["precision"]] + [said for key, said in (("compile", "torch.compile"), ("cuda_graphs", "CUDA graphs"))
                                           if data.get(key)])
    lines = [f"{data['model']} on {data['device']} ({how}){side_by_side}, {w}x{h}{tiled}, "
             f"{clip} frames, warm-up {first['warmup_frames']} | "
             f"{machine['cpu']}, {machine['cores']} cores, {gpu} | torch {machine['torch']}, av {machine['av']}",
             ""]
    header = ("mode", "model", "batch", "fps", "p50 ms", "p95 ms", "p99 ms", "warm-up s", "RSS MB", "CUDA MB",
              "stage busy share")
    rows = [header]
    for run in data["runs"]:
        lat = run["latency_ms"]
        shares = " ".join(f"{name} {s['share']:.2f}" for name, s in run["stages"].items())
        queues = " ".join(f"q[{name}] {q['mean']:.1f}/{q['max']}" for name, q in run["queue_depth"].items())
        passes = f"({run['repeats']} passes)" if run.get("repeats", 1) > 1 else ""  # a stage timed over and over
        if run.get("short_window"):  # its fps is not a rate: said in a note, and on its row
            passes = " ".join(filter(None, (passes, f"(window {run['seconds']:.3f} s: too short, see the note)")))
        fps = run["fps"]
        rows.append((run["mode"], run["model"] or "-", _dash(run["batch"]), f"{fps:.1f}" if fps >= 10 else f"{fps:.3f}",
                     f"{lat['p50']:.1f}", f"{lat['p95']:.1f}", f"{lat['p99']:.1f}",
                     f"{run['warmup_s'] + run.get('engine_warmup_s', 0.0):.2f}",  # with the compilation, as the JSON's two
                     _dash(run["peak_rss_mb"]), _dash(run["cuda_peak_mb"]),
                     " ".join(filter(None, (shares, queues, passes)))))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
    for row in rows:
        cells = [str(c).ljust(widths[i]) if i in (0, 1, 10) else str(c).rjust(widths[i]) for i, c in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
    lines.append("")
    overlap = data["overlap"]
    lines.append(f"bound: {data['bound']}; pipelined runs at {overlap:.2f} of the slowest stage alone"
                 if overlap is not None else f"bound: {data['bound']}")
    drift = data.get("drift")
    if drift and drift["change"] is not None:
        change = drift["change"]
        lines.append(f"machine speed: model-only {drift['model_fps_before']:.1f} fps before the file runs, "
                     f"{drift['model_fps_after']:.1f} after ({change:+.0%})"
                     + (f"; it moved more than {DRIFT_WARNING:.0%}, so ratios between runs are uncertain: "
                        "run again on a quiet machine, or with more --frames" if abs(change) > DRIFT_WARNING else ""))
    if data["peers"]:
        lines.append(f"network only, batch 1: {data['model']} is faster than "
                     + ", ".join(f"{name} x{p['speed_ratio']}" for name, p in data["peers"].items()))
    lines.append("warm-up s: the time before each measured window, left out of its fps: the warm-up frames, and "
                 "for model and network runs the engine's compilation and autotuning")
    rss = "each run's own" if data["rss_scope"] == "run" else "the process's peak so far, in run order"
    lines.append(f"peak RSS: {rss}; timings: {_timing_note(data)}")
    lines.extend(f"tiled for memory: {note}" for note in data.get("auto_tile", []))
    lines.extend(f"note: {note}" for note in data.get("notes", []))
    return "\n".join(lines)


def _dash(value: Any) -> str:
    return "-" if value is None else str(value)


def _timing_note(data: dict[str, Any]) -> str:
    return ("CUDA events for network runs, wall clock around synchronous calls elsewhere"
            if data["device"].startswith("cuda") else "wall clock (CPU)")
