"""Throughput benchmark: every stage alone and the whole pipeline, on the same frames, in one run.

``run_bench(BenchOptions(...)) -> BenchResult``; ``BenchResult.to_dict()`` is the ``--json`` object of
``videodeblur bench``. The runs, in this order (peers last; a run's peak RSS starts from the RSS the
runs before it left, and is the process's peak so far where ``rss_scope`` is ``process``):

- ``decode``: the input decoded, nothing else (to RGB; to I420 planes where the runner converts colour
  on the device: CUDA with 4:2:0 input, ``layout`` in the result), over and over until the window
  lasts ``MIN_STAGE_WINDOW_S`` (``repeats``: the passes over the clip; every frame counts).
- ``model`` (one per batch size): the engine as the runner calls it (``submit(...).result()``), host
  uint8 in and out: transfers, colour conversion and the network, with as many batches in flight as
  the runner keeps (on a CPU with two cores or more, two engines side by side: ``engines``), the
  clip gone round again until the window lasts ``MIN_STAGE_WINDOW_S``, as ``decode``'s.
- ``network`` (batch 1; and each peer with ``compare``, after all other runs): ``Engine.infer`` on a
  device-resident tensor in the engine's precision and memory format; on CUDA timed with events.
  This is the "model-only" speed of the papers and the fair ground for the ratio against the peers.
- ``encode``: the decoded frames encoded to a file, nothing else, repeated as ``decode`` is.
- ``sequential``: decode → engine → encode on one thread, stage after stage.
- ``pipelined``: the real ``video`` runner (``deblur_file``), stages in their own threads; its stage
  shares and queue depths come from the runner's own clocks, over the whole run.
- then the ``model`` run at the pipelined run's batch once more, not added to ``runs``: ``drift`` compares
  its fps with the first one's. The runs take turns, so a machine whose speed moves (a shared VM,
  a laptop that heats up, another program) skews every ratio between them; ``change`` says by how much
  (a short clip's model run may also still be warming up the first time).

Every run drops its first frames as warm-up (rounded up to whole batches, so a batch is never split
by the window) and reports them and their time separately; compilation happens there too.
``fps`` is always ``frames / seconds`` of the measured window. ``bound`` names the slowest of
decode, model (at the pipeline's batch size) and encode; ``overlap`` is pipelined fps over that
stage's fps (1.0: the pipeline hides every other stage behind the slowest). Frames too big for
memory are tiled by the engine as ``video`` would tile them (``tile`` None, ``auto_tile`` lists why
and at what size), so a figure is never of a run that could not happen.
"""
from __future__ import annotations

import dataclasses
import itertools
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

from videodeblur.bench.options import BenchOptions
from videodeblur.bench.peers import all_peers, peer_engine, peer_table
from videodeblur.errors import ConfigError
from videodeblur.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from videodeblur.bench.clip import decode_all, prepare_input, write_test_clip
    from videodeblur.bench.modes import (MIN_STAGE_WINDOW_S, decode_run, encode_run, model_run, pipelined_run,
                                         round_up, sequential_run)
    from videodeblur.bench.network import network_run
    from videodeblur.bench.results import BenchResult, RunResult

__all__ = ["BenchOptions", "BenchResult", "RunResult", "run_bench", "write_test_clip", "MODES", "MIN_STAGE_WINDOW_S"]

# The runs' names are imported on first use (videodeblur.lazy_exports): they load torch (2-3 s), and
# `bench` checks its options (BenchOptions: a mistyped --input) before that. run_bench binds them here
# first (_bind_run_names); one a test replaced on this module stays replaced.
_RUN_NAMES = {
    "clip": ("decode_all", "prepare_input", "write_test_clip"),
    "modes": ("MIN_STAGE_WINDOW_S", "decode_run", "encode_run", "model_run", "pipelined_run", "round_up",
              "sequential_run"),
    "network": ("network_run",),
    "results": ("BenchResult", "RunResult"),
}
__getattr__, __dir__ = lazy_exports(__name__, _RUN_NAMES)


def _bind_run_names() -> None:
    """Bind the runs' names in this module (``__getattr__`` binds each one it is asked for): run_bench and
    its helpers call them as globals, and a global's lookup never reaches ``__getattr__``."""
    module = sys.modules[__name__]
    for names in _RUN_NAMES.values():
        for name in names:
            getattr(module, name)


MODES = ("decode", "model", "network", "encode", "sequential", "pipelined")


def run_bench(options: BenchOptions, progress: Callable[[str], None] | None = None) -> BenchResult:
    """Measure every run of the module docstring and return them with the machine they ran on.
    ``progress`` gets a short line as each run starts."""
    from videodeblur.measure import machine_info, rss_scope
    from videodeblur.pipeline import Engine, EngineOptions, resolve_device

    _bind_run_names()
    say = progress or (lambda message: None)
    device = resolve_device(options.device)
    engines = {batch: Engine.from_name(options.model, EngineOptions(  # a bad model or precision fails here, first
        device=options.device, precision=options.precision, batch_size=batch, channels_last=options.channels_last,
        compile=options.compile, cuda_graphs=options.cuda_graphs, tile=options.tile, memory_budget=options.memory_budget)) for batch in options.batches}
    with tempfile.TemporaryDirectory(prefix="videodeblur-bench-") as tmp:
        tmpdir = Path(tmp)
        io = prepare_input(options, device, tmpdir, say)
        frames, pts = decode_all(io)
        io = dataclasses.replace(io, frames=len(frames))
        warmup = options.warmup_for(len(frames))
        notes = _measure_notes(options, len(frames), warmup, io.info.bit_depth)
        for note in notes:
            say(note)
        file_batches = _file_run_batches(options.batches, warmup, len(frames), say)

        say("decode")
        runs = [decode_run(io, warmup)]
        for batch in options.batches:
            say(f"model, batch {batch}")
            runs.append(model_run(engines[batch], io, frames, batch, warmup, options.engines))
        engine = engines.get(1, engines[options.batches[0]])  # with --compile, batch 1's own compiled graph
        say("network, batch 1")
        network_runs = [network_run(engine, io, warmup_iterations=min(warmup, 5), iterations=len(frames) - warmup)]
        runs.extend(network_runs)
        say("encode")
        runs.append(encode_run(io, frames, pts, tmpdir / "encode.mp4", warmup))
        del frames  # the file runs decode for themselves: their memory should not include the held clip

        best = max((r for r in runs if r.mode == "model" and r.batch in file_batches), key=lambda r: r.fps)
        engine = engines[best.batch]
        tile_notes = [e.auto_tile_note for e in engines.values() if e.auto_tile_note]
        engines.clear()
        say(f"sequential, batch {best.batch}")
        runs.append(sequential_run(io, tmpdir / "sequential.mp4", engine, best.batch, warmup))
        say(f"pipelined, batch {best.batch}")
        runs.append(pipelined_run(io, tmpdir / "pipelined.mp4", engine, best.batch, warmup))
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

    stage_fps = {"decode": _first(runs, "decode").fps, "model": best.fps, "encode": _first(runs, "encode").fps}
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


def _measure_notes(options: BenchOptions, frames: int, warmup: int, bit_depth: int = 8) -> list[str]:
    """What the figures stand on, where it is less than asked, too little to trust, or not what ``video``
    would do: an input with fewer frames than --frames, a window of a handful of frames (--frames 2
    gave 41 440 fps), a 10-bit input (every run reads and writes it at 8 bits; ``video`` keeps 10)."""
    notes = []
    if bit_depth > 8:
        notes.append(f"{options.input} is {bit_depth}-bit: every run decodes and encodes it at 8 bits, "
                     f"where `video` writes {bit_depth}-bit output (more to decode and encode)")
    if options.input is not None and frames < options.frames:
        notes.append(f"{options.input} holds {frames} frames, fewer than --frames {options.frames}: those are measured")
    if options.warmup_frames is not None and warmup < options.warmup_frames:  # it was lowered without a word
        notes.append(f"--warmup {options.warmup_frames} would leave none of the {frames} frames to measure: "
                     f"{warmup} are warm-up")
    if frames - warmup < FEW_FRAMES:
        notes.append(f"only {frames - warmup} frame(s) measured after {warmup} of warm-up: fps from so few are "
                     f"noise, not a rate; measure {_enough_frames(options)} or more (--frames)")
    return notes


def _enough_frames(options: BenchOptions) -> int:
    """The fewest --frames that leave FEW_FRAMES after their warm-up, which itself grows with --frames."""
    return next(n for n in itertools.count(FEW_FRAMES + 1) if n - options.warmup_for(n) >= FEW_FRAMES)


def _file_run_batches(batches: tuple[int, ...], warmup: int, frames: int, say: Callable[[str], None]) -> tuple[int, ...]:
    """The batch sizes the sequential and pipelined runs can measure: their warm-up is whole batches,
    which must leave a frame of the clip to measure (the model runs cycle the clip and take any)."""
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
