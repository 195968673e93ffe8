"""``run_bench``: every run of ``videodeblur bench`` in order, and what they add up to (the bound, the
overlap, the drift, the notes on what the figures stand on). The runs themselves, and their order, are
described in the package's docstring (``videodeblur.bench``).

Apart from the package's ``__init__`` so that the package imports its options without torch, and this
module imports the runs as any module does (a test replaces one here, where ``run_bench`` looks it up).
"""
from __future__ import annotations

import dataclasses
import itertools
import math
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable

from videodeblur.bench.clip import BenchIO, decode_all, looped_clip, prepare_input
from videodeblur.bench.modes import (MIN_STAGE_WINDOW_S, decode_run, encode_run, model_run, pipelined_run, round_up,
                                     sequential_run)
from videodeblur.bench.network import network_run
from videodeblur.bench.options import BenchOptions
from videodeblur.bench.peers import all_peers, peer_engine, peer_table
from videodeblur.bench.results import BenchResult, RunResult
from videodeblur.errors import ConfigError
from videodeblur.measure import machine_info, rss_scope
from videodeblur.pipeline import Engine, EngineOptions, resolve_device

__all__ = ["FEW_FRAMES", "run_bench"]


def run_bench(options: BenchOptions, progress: Callable[[str], None] | None = None) -> BenchResult:
    """Measure every run of the module docstring and return them with the machine they ran on.
    ``progress`` gets a short line as each run starts."""
    say = progress or (lambda message: None)
    device = resolve_device(options.device)
    engines = {batch: Engine.from_name(options.model, EngineOptions(  # a bad model or precision fails here, first
        device=options.device, precision=options.precision, batch_size=batch, channels_last=options.channels_last,
        compile=options.compile, cuda_graphs=options.cuda_graphs, tile=options.tile, memory_budget=options.memory_budget)) for batch in options.batches}
    with tempfile.TemporaryDirectory(prefix="videodeblur-bench-") as tmp:
        tmpdir = Path(tmp)
        io = prepare_input(options, device, tmpdir, say)
        frames, pts = decode_all(io)
        if len(frames) < 2:  # as --frames 1 is refused: with no warm-up the cold first call was the run's whole rate
            raise ConfigError(f"{options.input} holds 1 frame: a bench needs 2 at least (one warm-up, one measured); "
                              "give a longer --input")
        # the file runs may play the clip over and over only where it is the whole file
        whole = options.input is None or len(frames) < options.frames or (
            io.info.frames_exact and io.info.frames == len(frames))
        io = dataclasses.replace(io, frames=len(frames))
        warmup = options.warmup_for(len(frames))
        notes = _measure_notes(options, len(frames), warmup, io.info.bit_depth, looped=whole)
        for note in notes:
            say(note)
        file_batches = options.batches if whole else _file_run_batches(options.batches, warmup, len(frames), say)

        say("decode")
        runs = [_decode_run(io, whole, warmup, tmpdir)]
        for batch in options.batches:
            say(f"model, batch {batch}")
            runs.append(model_run(engines[batch], io, frames, batch, warmup, options.engines))
        engine = engines.get(1, engines[options.batches[0]])  # with --compile, batch 1's own compiled graph
        say("network, batch 1")
        # as long as the stage runs' windows (or 200 calls): the clip's few frames were a window of a few ms
        network_runs = [network_run(engine, io, warmup_iterations=min(warmup, 5), iterations=len(frames) - warmup,
                                    budget_s=MIN_STAGE_WINDOW_S)]
        runs.extend(network_runs)
        say("encode")
        runs.append(encode_run(io, frames, pts, tmpdir / "encode.mp4", warmup))
        del frames  # the file runs decode for themselves: their memory should not include the held clip

        best = max((r for r in runs if r.mode == "model" and r.batch in file_batches), key=lambda r: r.fps)
        engine = engines[best.batch]
        tile_notes = [e.auto_tile_note for e in engines.values() if e.auto_tile_note]
        engines.clear()
        stage_fps = {"decode": _first(runs, "decode").fps, "model": best.fps, "encode": _first(runs, "encode").fps}
        file_io = _file_runs_clip(io, whole, min(stage_fps.values()), round_up(warmup, best.batch), tmpdir, say)
        repeats = {"repeats": file_io.frames // io.frames}
        say(f"sequential, batch {best.batch}")
        sequential = sequential_run(file_io, tmpdir / "sequential.mp4", engine, best.batch, warmup)
        say(f"pipelined, batch {best.batch}")
        pipelined = pipelined_run(file_io, tmpdir / "pipelined.mp4", engine, best.batch, warmup)
        short = [run for run in (sequential, pipelined) if run.seconds < MIN_STAGE_WINDOW_S]
        runs.extend(dataclasses.replace(run, extra={**run.extra, **repeats, **({"short_window": True} if run in short else {})})
                    for run in (sequential, pipelined))
        if short:
            notes.append(_short_window_note(short, read_once=not whole))
            say(notes[-1])
        say(f"model, batch {best.batch}, again: did the machine's speed change during the runs?")
        again = model_run(engine, io, decode_all(io)[0], best.batch, warmup, options.engines)
        drift = {"model_fps_before": round(best.fps, 3), "model_fps_after": round(again.fps, 3),
                 "change": round(again.fps / best.fps - 1.0, 4) if best.fps > 0 else None}
        # Peers last: their large activations stay in the allocator and would inflate later runs' RSS.
        for peer in (options.peers or all_peers()) if options.compare else ():
            say(f"network, peer {peer}")
            network_runs.append(network_run(peer_engine(peer, engine), io, warmup_iterations=1,
                                            iterations=options.min_peer_iterations, budget_s=options.peer_budget_s))
            runs.append(network_runs[-1])

    bound = min(stage_fps, key=stage_fps.__getitem__)
    overlap = _first(runs, "pipelined").fps / stage_fps[bound] if stage_fps[bound] > 0 else None
    return BenchResult(machine=machine_info(device), model=engine.model_name, device=str(engine.device),
                       precision=engine.precision, layout=io.layout, size=(io.info.width, io.info.height),
                       input=str(options.input) if options.input else None, runs=tuple(runs), bound=bound,
                       overlap=overlap, drift=drift, rss_scope=rss_scope(), peers=peer_table(network_runs),
                       date=time.strftime("%Y-%m-%d"), tile=options.tile,
                       compile=options.compile, cuda_graphs=options.cuda_graphs, notes=tuple(notes),
                       auto_tile=tuple(dict.fromkeys(tile_notes + ([engine.auto_tile_note] if engine.auto_tile_note
                                                                   else []))))


# measured frames (after warm-up) below which a run's fps is the noise of a few calls, not a rate
FEW_FRAMES = 10


def _measure_notes(options: BenchOptions, frames: int, warmup: int, bit_depth: int = 8, *,
                   looped: bool = False) -> list[str]:
    """What the figures stand on, where it is less than asked, too little to trust, or not what ``video``
    would do: an input with fewer frames than --frames, a window of a handful of frames (--frames 2
    gave 41 440 fps), a 10-bit input (every run reads and writes it at 8 bits; ``video`` keeps 10).
    ``looped``: the file runs may play the clip over and over (it is the whole file), as every other
    run goes over it for ``MIN_STAGE_WINDOW_S``; then few frames make no short window."""
    notes = []
    if bit_depth > 8:
        notes.append(f"{options.input} is {bit_depth}-bit: every run decodes and encodes it at 8 bits, "
                     f"where `video` writes {bit_depth}-bit output (more to decode and encode)")
    if options.input is not None and frames < options.frames:
        notes.append(f"{options.input} holds {frames} frames, fewer than --frames {options.frames}: those are measured")
    if options.warmup_frames is not None and warmup < options.warmup_frames:  # it was lowered without a word
        notes.append(f"--warmup {options.warmup_frames} would leave none of the {frames} frames to measure: "
                     f"{warmup} are warm-up")
    if frames - warmup < FEW_FRAMES and not looped:
        notes.append(f"only {frames - warmup} frame(s) measured after {warmup} of warm-up in the sequential and "
                     "pipelined runs, which read --input once (the other runs go over the clip again): their fps "
                     f"from so few are noise, not a rate; measure {_enough_frames(options)} or more (--frames)")
    return notes


# frames a pass of the decode run reads at least, from one opening of the file
DECODE_PASS_FRAMES = 64


def _decode_run(io: BenchIO, whole: bool, warmup: int, tmpdir: Path) -> RunResult:
    """The decode run, over the clip looped (:func:`looped_clip`) to ``DECODE_PASS_FRAMES`` frames a
    pass where it is shorter: each pass opens the file, about 1.2 ms here, which over 8 frames of 64x48
    (0.15 ms each) read decode at a third of its rate, where the file runs open it once. ``pass_frames``:
    the frames read from each opening."""
    passes = math.ceil(DECODE_PASS_FRAMES / io.frames)
    looped = looped_clip(io, passes, tmpdir / "decode") if whole and passes > 1 else None
    run = decode_run(looped or io, warmup)
    extra = {"repeats": run.extra["repeats"] * (passes if looped else 1), "pass_frames": (looped or io).frames}
    return dataclasses.replace(run, extra={**run.extra, **extra})


def _file_runs_clip(io: BenchIO, whole: bool, bound_fps: float, warmup: int, tmpdir: Path,
                    say: Callable[[str], None]) -> BenchIO:
    """The clip the sequential and pipelined runs read: ``io``'s, played over and over
    (:func:`looped_clip`) until the pipelined run's window would last ``MIN_STAGE_WINDOW_S`` at twice
    the slowest stage's fps, which a pipeline does not beat on a steady machine (the sequential run,
    slower, lasts longer). Twice: on this project's loaded 2-core VM, file runs sized at that fps
    itself ran faster than the stage runs before them and fell short (0.2-0.49 s) one time in three."""
    needed = warmup + max(1, math.ceil(FILE_WINDOW_MARGIN * MIN_STAGE_WINDOW_S * bound_fps))
    # the warm-up of whole batches (a batch of 8 over a 4-frame clip) always leaves frames to measure
    passes = max(min(math.ceil(needed / io.frames), MAX_FILE_PASSES), math.ceil((warmup + 1) / io.frames))
    if passes <= 1 or not whole:
        return io
    looped = looped_clip(io, passes, tmpdir / "file-runs")
    if looped is None:
        if warmup >= io.frames:
            raise ConfigError(f"{io.clip} could not be played {passes} times over as one file, and its {io.frames} frames "
                              f"are too few for the file runs' warm-up of whole batches ({warmup}): use a smaller --batch "
                              "or --warmup")
        say(f"{io.clip} could not be played {passes} times over as one file: the file runs measure it once")
        return io
    say(f"the file runs play the clip {passes} times over ({looped.frames} frames), for a window of "
        f"{MIN_STAGE_WINDOW_S} s at least")
    return looped


FILE_WINDOW_MARGIN = 2.0
# passes over the clip at most in the file runs: --frames 2 of 16x16 would otherwise be thousands
MAX_FILE_PASSES = 500


def _short_window_note(short: list[RunResult], read_once: bool) -> str:
    """File runs whose window fell short of ``MIN_STAGE_WINDOW_S``: their fps, and the overlap from the
    pipelined one, are not to be trusted. ``read_once``: the clip was not played over (an --input longer
    than --frames), and more frames lengthen the window; else the clip was played over for a window
    long enough at the stage runs' speed, and the machine sped up: more --frames would not help."""
    said = " and ".join(f"the {run.mode} run ({run.frames} frame{'s' if run.frames != 1 else ''} in {run.seconds:.3f} s)"
                        for run in short)
    what = "its fps" if len(short) == 1 else "their fps"
    if any(run.mode == "pipelined" for run in short):
        what += " and the overlap"
    advice = ("measure more --frames" if read_once else
              "the machine ran faster than in the stage runs (see the drift): run again on a quiet machine")
    return f"{said} measured under the {MIN_STAGE_WINDOW_S} s of the stage runs: {what} are noise, not a rate; {advice}"


def _enough_frames(options: BenchOptions) -> int:
    """The fewest --frames that leave FEW_FRAMES after their warm-up, which itself grows with --frames."""
    return next(n for n in itertools.count(FEW_FRAMES + 1) if n - options.warmup_for(n) >= FEW_FRAMES)


def _file_run_batches(batches: tuple[int, ...], warmup: int, frames: int, say: Callable[[str], None]) -> tuple[int, ...]:
    """The batch sizes the sequential and pipelined runs can measure where they read the clip once (an
    --input longer than --frames): their warm-up is whole batches, which must leave a frame of the clip
    to measure (the model runs cycle the clip and take any; a clip the file runs play over fits any)."""
    fits = tuple(b for b in batches if round_up(warmup, b) < frames)
    if not fits:
        b = min(batches)
        raise ConfigError(f"{frames} frames are too few for batch {b}: the warm-up of {warmup} frame{'s' if warmup != 1 else ''}, rounded up to "
                          f"whole batches ({round_up(warmup, b)}), leaves none to measure; use more --frames "
                          f"(or a longer --input), a smaller --batch or --warmup")
    for b in batches:
        if b not in fits:
            say(f"batch {b} is left out of the sequential and pipelined runs: its warm-up of whole batches "
                f"({round_up(warmup, b)} frames) would take all {frames}")
    return fits


def _first(runs: Iterable[RunResult], mode: str) -> RunResult:
    return next(r for r in runs if r.mode == mode)
