"""Throughput benchmark: every stage alone and the whole pipeline, on the same frames, in one run.

``run_bench(BenchOptions(...)) -> BenchResult``; ``BenchResult.to_dict()`` is the ``--json`` object of
``videodeblur bench``. The runs, in this order (peers last; a run's peak RSS starts from the RSS the
runs before it left, and is the process's peak so far where ``rss_scope`` is ``process``):

- ``decode``: the input decoded, nothing else (to RGB; to I420 planes where the runner converts colour
  on the device: CUDA with 4:2:0 input, ``layout`` in the result), over and over until the window
  lasts ``MIN_STAGE_WINDOW_S`` (``repeats``: the passes over the clip; every frame counts).
- ``model`` (one per batch size): the engine as the runner calls it (``submit(...).result()``), host
  uint8 in and out: transfers, colour conversion and the network.
- ``network`` (batch 1; and each peer with ``compare``, after all other runs): ``Engine.infer`` on a
  device-resident tensor in the engine's precision and memory format; on CUDA timed with events.
  This is the "model-only" speed of the papers and the fair ground for the ratio against the peers.
- ``encode``: the decoded frames encoded to a file, nothing else, repeated as ``decode`` is.
- ``sequential``: decode → engine → encode on one thread, stage after stage.
- ``pipelined``: the real ``video`` runner (``deblur_file``), stages in their own threads; its stage
  shares and queue depths come from the runner's own clocks, over the whole run.

Every run drops its first frames as warm-up (rounded up to whole batches, so a batch is never split
by the window) and reports them and their time separately; compilation happens there too.
``fps`` is always ``frames / seconds`` of the measured window. ``bound`` names the slowest of
decode, model (at the pipeline's batch size) and encode; ``overlap`` is pipelined fps over that
stage's fps (1.0: the pipeline hides every other stage behind the slowest). Frames too big for
memory are tiled by the engine as ``video`` would tile them (``tile`` None, ``auto_tile`` lists why
and at what size), so a figure is never of a run that could not happen.
"""
from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch

from videodeblur.errors import ConfigError, InputNotFoundError
from videodeblur.video import FrameReader, FrameWriter
from videodeblur.measure import FrameClock, PeakMemory, Window, machine_info, percentiles_ms, rss_scope

__all__ = ["BenchOptions", "BenchResult", "RunResult", "run_bench", "write_test_clip", "MODES"]

MODES = ("decode", "model", "network", "encode", "sequential", "pipelined")
_CLIP_FPS = 25
_MAX_BUDGET_ITERATIONS = 200
# The decode-only and encode-only runs go over the clip again and again (as timeit repeats) until
# their window lasts this long: 16 frames of 160x96 decode in about 3 ms, a window so short that a
# scheduler hiccup swung its fps 30x between runs and named decode the bound of a model-bound pipeline.
MIN_STAGE_WINDOW_S = 0.5


@dataclasses.dataclass(frozen=True)
class BenchOptions:
    """What to measure. ``width``/``height``/``frames`` size the generated clip (ignored with ``input``,
    which is measured as it is, up to ``frames`` frames). ``warmup_frames`` None: a fifth of the frames,
    at most 25. ``compare``: also time the peer architectures (``network`` runs at batch 1), each for
    at least ``min_peer_iterations`` and then until ``peer_budget_s`` is spent. ``tile``: run the
    network in overlapping tiles of that size, as ``video --tile`` does (for 4K on a small GPU)."""

    model: str | None = None
    width: int = 640
    height: int = 360
    frames: int = 150
    batches: tuple[int, ...] = (1, 4, 8)
    device: str = "auto"
    precision: str = "auto"
    compile: bool = False
    channels_last: bool = True
    input: Path | None = None
    warmup_frames: int | None = None
    compare: bool = False
    peers: tuple[str, ...] | None = None
    encoder: str = "auto"
    crf: int = 18
    preset: str = "veryfast"
    queue_size: int = 8
    colour_on_device: bool | None = None
    tile: int | None = None
    memory_budget: int | None = None  # bytes for the engines' automatic tiles (None: half the free memory)
    min_peer_iterations: int = 2
    peer_budget_s: float = 10.0

    def __post_init__(self) -> None:
        if self.width < 16 or self.height < 16:
            raise ConfigError(f"frame size {self.width}x{self.height} is too small: use at least 16x16")
        if not self.batches or min(self.batches) < 1:
            raise ConfigError(f"batch sizes must be positive integers, got {list(self.batches)}")
        if self.frames < 2:
            raise ConfigError(f"--frames {self.frames} is too few: use at least 2 (one warm-up, one measured)")
        if self.warmup_frames is not None and not 0 <= self.warmup_frames < self.frames:
            raise ConfigError(f"warm-up of {self.warmup_frames} frames must be >= 0 and below --frames {self.frames}")
        if self.peers is not None:
            object.__setattr__(self, "peers", tuple(_peer_name(p) for p in self.peers))
        if self.input is not None and not Path(self.input).is_file():
            raise InputNotFoundError(f"input file {str(self.input)!r} does not exist: give a path to a video file")

    @property
    def resolved_warmup_frames(self) -> int:
        return self.warmup_for(self.frames)

    def warmup_for(self, frames: int) -> int:
        """Warm-up frames for a clip of ``frames`` (an ``input`` may hold fewer than ``frames``):
        ``warmup_frames``, or a fifth of them, at most 25; always leaving one to measure."""
        chosen = self.warmup_frames if self.warmup_frames is not None else max(1, min(frames // 5, 25))
        return min(chosen, frames - 1)


@dataclasses.dataclass(frozen=True)
class RunResult:
    """One measured run. ``stages`` maps a stage to ``{"busy_s", "share"}`` (share of the window, in [0, 1]);
    ``queue_depth`` maps a queue to ``{"mean", "max"}`` frames (empty for single-threaded runs)."""

    mode: str
    model: str | None
    batch: int | None
    frames: int
    seconds: float
    warmup_frames: int
    warmup_s: float
    latency_ms: dict[str, float]
    stages: dict[str, dict[str, float]]
    queue_depth: dict[str, dict[str, float]]
    peak_rss_mb: float | None
    cuda_peak_mb: float | None
    timing: str = "wall"
    """``wall`` (perf_counter around synchronous calls) or ``cuda-events``."""
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = {"mode": self.mode, "model": self.model, "batch": self.batch, "fps": round(self.fps, 3),
               "frames": self.frames, "seconds": round(self.seconds, 6), "warmup_frames": self.warmup_frames,
               "warmup_s": round(self.warmup_s, 6),
               "latency_ms": {k: round(v, 3) for k, v in self.latency_ms.items()},
               "stages": {k: {"busy_s": round(v["busy_s"], 6), "share": round(v["share"], 4)}
                          for k, v in self.stages.items()},
               "queue_depth": self.queue_depth, "peak_rss_mb": _round(self.peak_rss_mb, 1),
               "cuda_peak_mb": _round(self.cuda_peak_mb, 1), "timing": self.timing}
        out.update(self.extra)
        return out


@dataclasses.dataclass(frozen=True)
class BenchResult:
    machine: dict[str, Any]
    model: str
    device: str
    precision: str
    layout: str
    size: tuple[int, int]
    input: str | None
    runs: tuple[RunResult, ...]
    bound: str
    overlap: float | None
    rss_scope: str
    peers: dict[str, dict[str, Any]]
    date: str
    tile: int | None = None
    auto_tile: tuple[str, ...] = ()  # why and how engines tiled frames too big for memory (no --tile)

    def run(self, mode: str, batch: int | None = None, model: str | None = None) -> RunResult:
        """The first run of ``mode`` (at ``batch`` / for ``model`` where given)."""
        for r in self.runs:
            if r.mode == mode and (batch is None or r.batch == batch) and (model is None or r.model == model):
                return r
        raise KeyError(f"no {mode} run (batch {batch}, model {model})")

    def to_dict(self) -> dict[str, Any]:
        return {"machine": self.machine, "model": self.model, "device": self.device, "precision": self.precision,
                "layout": self.layout, "size": list(self.size), "tile": self.tile, "auto_tile": list(self.auto_tile),
                "input": self.input,
                "date": self.date,
                "rss_scope": self.rss_scope,
                "runs": [r.to_dict() for r in self.runs], "bound": self.bound,
                "overlap": _round(self.overlap, 4), "peers": self.peers}


def run_bench(options: BenchOptions, progress: Callable[[str], None] | None = None) -> BenchResult:
    """Measure every run of the module docstring and return them with the machine they ran on.
    ``progress`` gets a short line as each run starts."""
    from videodeblur.pipeline import Engine, EngineOptions, resolve_device

    say = progress or (lambda message: None)
    device = resolve_device(options.device)
    engines = {batch: Engine.from_name(options.model, EngineOptions(  # a bad model or precision fails here, first
        device=options.device, precision=options.precision, batch_size=batch, channels_last=options.channels_last,
        compile=options.compile, tile=options.tile, memory_budget=options.memory_budget)) for batch in options.batches}
    with tempfile.TemporaryDirectory(prefix="videodeblur-bench-") as tmp:
        tmpdir = Path(tmp)
        io = _prepare_input(options, device, tmpdir, say)
        frames, pts = _decode_all(io)
        io = dataclasses.replace(io, frames=len(frames))
        warmup = options.warmup_for(len(frames))
        file_batches = _file_run_batches(options.batches, warmup, len(frames), say)

        say("decode")
        runs = [_decode_run(io, warmup)]
        for batch in options.batches:
            say(f"model, batch {batch}")
            runs.append(_model_run(engines[batch], io, frames, batch, warmup))
        engine = engines[options.batches[0]]
        say("network, batch 1")
        network_runs = [_network_run(engine, io, warmup_iterations=min(warmup, 5), iterations=len(frames) - warmup)]
        runs.extend(network_runs)
        say("encode")
        runs.append(_encode_run(io, frames, pts, tmpdir / "encode.mp4", warmup))
        del frames  # the file runs decode for themselves: their memory should not include the held clip

        best = max((r for r in runs if r.mode == "model" and r.batch in file_batches), key=lambda r: r.fps)
        engine = engines[best.batch]
        notes = [e.auto_tile_note for e in engines.values() if e.auto_tile_note]
        engines.clear()
        say(f"sequential, batch {best.batch}")
        runs.append(_sequential_run(io, tmpdir / "sequential.mp4", engine, best.batch, warmup))
        say(f"pipelined, batch {best.batch}")
        runs.append(_pipelined_run(io, tmpdir / "pipelined.mp4", engine, best.batch, warmup))
        # Peers last: their large activations stay in the allocator and would inflate later runs' RSS.
        for peer in (options.peers or _all_peers()) if options.compare else ():
            say(f"network, peer {peer}")
            network_runs.append(_network_run(_peer_engine(peer, engine), io, warmup_iterations=1,
                                             iterations=options.min_peer_iterations, budget_s=options.peer_budget_s))
            runs.append(network_runs[-1])

    stage_fps = {"decode": _first(runs, "decode").fps, "model": best.fps, "encode": _first(runs, "encode").fps}
    bound = min(stage_fps, key=stage_fps.__getitem__)
    overlap = _first(runs, "pipelined").fps / stage_fps[bound] if stage_fps[bound] > 0 else None
    return BenchResult(machine=machine_info(device), model=engine.model_name, device=str(engine.device),
                       precision=engine.precision, layout=io.layout, size=(io.info.width, io.info.height),
                       input=str(options.input) if options.input else None, runs=tuple(runs), bound=bound,
                       overlap=overlap, rss_scope=rss_scope(), peers=_peer_table(network_runs),
                       date=time.strftime("%Y-%m-%d"), tile=options.tile,
                       auto_tile=tuple(dict.fromkeys(notes + ([engine.auto_tile_note] if engine.auto_tile_note else []))))


def _prepare_input(options: BenchOptions, device: torch.device, tmpdir: Path, say: Callable[[str], None]) -> "_IO":
    if options.input is not None:
        clip = Path(options.input)
    else:
        say(f"writing a {options.width}x{options.height} test clip of {options.frames} frames")
        clip = write_test_clip(tmpdir / "clip.mp4", options.width, options.height, options.frames)
    with FrameReader(clip) as reader:
        info = reader.info
    from videodeblur.pipeline import choose_layout

    from videodeblur.video.encoders import containers_for

    # Matroska where MP4 cannot hold the encoder's codec (VP8, ProRes...): it is the encoder being timed.
    suffix = ".mp4" if options.encoder == "auto" or ".mp4" in containers_for(options.encoder) else ".mkv"
    io = _IO(clip=clip, info=info, layout=choose_layout(info, device, options.colour_on_device),
             frames=options.frames, options=options, suffix=suffix)
    io.writer(tmpdir / "probe").close()  # an encoder that cannot run here fails now, before the runs
    return io


def _file_run_batches(batches: tuple[int, ...], warmup: int, frames: int, say: Callable[[str], None]) -> tuple[int, ...]:
    """The batch sizes the sequential and pipelined runs can measure: their warm-up is whole batches,
    which must leave a frame of the clip to measure (the model runs cycle the clip and take any)."""
    fits = tuple(b for b in batches if _round_up(warmup, b) < frames)
    if not fits:
        b = min(batches)
        raise ConfigError(f"{frames} frames are too few for batch {b}: the warm-up of {warmup} frame{'s' if warmup != 1 else ''}, rounded up to "
                          f"whole batches ({_round_up(warmup, b)}), leaves none to measure; use more --frames "
                          f"(or a longer --input), a smaller --batch or --warmup")
    for b in batches:
        if b not in fits:
            say(f"batch {b} is left out of the sequential and pipelined runs: its warm-up of whole batches "
                f"({_round_up(warmup, b)} frames) would take all {frames}")
    return fits


def _peer_name(name: str) -> str:
    """A peer's name as ``PEERS`` spells it, whatever its case (the help writes NAFNet-32)."""
    for known in _all_peers():
        if known == name.lower():
            return known
    raise ConfigError(f"unknown peer {name!r}: use one of {', '.join(_all_peers())}")


def _all_peers() -> tuple[str, ...]:
    from videodeblur.bench_peers import PEERS

    return tuple(PEERS)


def _peer_engine(peer: str, like: Any) -> Any:
    """An engine that runs ``peer`` with the same device, precision, memory format and compilation as ``like``."""
    from videodeblur.bench_peers import build_peer
    from videodeblur.model import LoadedModel
    from videodeblur.pipeline import Engine

    network = build_peer(peer)
    loaded = LoadedModel(name=peer, path=Path(), network=network, metadata={"peer": True})  # type: ignore[arg-type]
    return Engine(loaded, like.options)


def write_test_clip(path: Path, width: int, height: int, frames: int, fps: int = _CLIP_FPS) -> Path:
    """A moving test picture (textured gradient, sliding square) as H.264 in MP4, written with PyAV.
    Odd sizes cannot be 4:2:0, so they are written as 4:4:4."""
    import av

    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([40 + 150 * x / max(width - 1, 1), 40 + 150 * y / max(height - 1, 1),
                     110 + 60 * np.sin(x / 3.0) * np.cos(y / 4.0)], axis=-1).astype(np.uint8)
    side = max(4, min(width, height) // 3)
    pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.options = {"preset": "ultrafast", "crf": "18"}
        for i in range(frames):
            img = base.copy()
            top, left = (2 * i) % max(1, height - side), (3 * i) % max(1, width - side)
            img[top:top + side, left:left + side] = (230, 60, 40)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


# ------------------------------------------------------------------------------------------ runs

def _decode_run(io: "_IO", warmup: int) -> RunResult:
    """The first ``warmup`` frames decoded as warm-up, then the whole clip decoded again and again
    until the window lasts ``MIN_STAGE_WINDOW_S``, every frame counted (``repeats``: the passes).
    Each pass opens the file, which decodes its first frame: that falls in the first frame's time."""
    with PeakMemory(torch.device("cpu")) as memory:
        clock = FrameClock()
        window_start = _decode_pass(io, clock, warmup) if warmup else clock.start
        repeats = 0
        while True:
            repeats += 1
            done = _decode_pass(io, clock, io.frames)
            if done - window_start >= MIN_STAGE_WINDOW_S:
                break
    return _result("decode", None, None, clock.window(warmup, ("decode",)), memory, extra={"repeats": repeats})


def _decode_pass(io: "_IO", clock: FrameClock, frames: int) -> float:
    """Decode the clip's first ``frames`` into ``clock``; returns when the last one was done."""
    started = clock.now()
    with io.reader() as reader:
        for _ in _frames(reader, frames):
            clock.begin(1, at=started)
            started = clock.complete(1, at=clock.stage("decode", started))
    return started


def _model_run(engine: Any, io: "_IO", frames: list[np.ndarray], batch: int, warmup: int) -> RunResult:
    """Whole batches of the clip's frames (taken cyclically, so every batch is full) through the engine
    as the pipeline calls it (same layout, host uint8 in and out); ``engine.warmup`` and the warm-up
    batches fall before the window."""
    warmup = _round_up(warmup, batch)
    total = _round_up(max(len(frames), warmup + batch), batch)
    with PeakMemory(engine.device) as memory:
        started = time.perf_counter()
        engine.warmup(io.info.height, io.info.width, layout=io.layout)
        engine_warmup_s = time.perf_counter() - started
        clock = FrameClock()  # after the engine's warm-up (cudnn autotune, compilation): never in a window
        for i in range(0, total, batch):
            chunk = np.stack([frames[(i + k) % len(frames)] for k in range(batch)])
            started = clock.now()
            clock.begin(batch, at=started)
            io.infer(engine, chunk)  # waits for host uint8: the wall clock is honest
            clock.complete(batch, at=clock.stage("infer", started))
    return _result("model", engine.model_name, batch, clock.window(warmup, ("infer",)), memory,
                   extra={"engine_warmup_s": round(engine_warmup_s, 6)})


def _network_run(engine: Any, io: "_IO", *, warmup_iterations: int, iterations: int,
                 budget_s: float | None = None) -> RunResult:
    """``engine.infer`` alone at batch 1 on a device-resident input already in the engine's precision
    and memory format: no colour conversion, no transfers. Runs ``iterations``; with ``budget_s`` (the
    slow peers) at least ``iterations`` and then more while the budget lasts. The first call (where
    ``torch.compile`` compiles) is timed on its own as ``first_call_s``."""
    device = engine.device
    memory_format = torch.channels_last if engine.options.channels_last else torch.contiguous_format
    x = torch.rand(1, 3, io.info.height, io.info.width, device=device)
    x = x.to(dtype=engine.dtype, memory_format=memory_format)
    with PeakMemory(device) as memory, torch.inference_mode():
        started = time.perf_counter()
        engine.infer(x)
        _sync(device)
        first_call_s = time.perf_counter() - started
        for _ in range(warmup_iterations - 1):
            engine.infer(x)
        _sync(device)
        warmup_s = time.perf_counter() - started
        latencies_ms, seconds = _timed_iterations(engine.infer, x, device, iterations, budget_s)
    window = Window(frames=len(latencies_ms), seconds=seconds, warmup_frames=max(warmup_iterations, 1),
                    warmup_s=warmup_s, latencies_ms=tuple(latencies_ms), stage_busy_s={"infer": seconds})
    extra = {"parameters": sum(p.numel() for p in engine.model.network.parameters()),
             "first_call_s": round(first_call_s, 6)}
    return _result("network", engine.model_name, 1, window, memory,
                   timing="cuda-events" if device.type == "cuda" else "wall", extra=extra)


def _timed_iterations(network: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, device: torch.device,
                      iterations: int, budget_s: float | None) -> tuple[list[float], float]:
    """Per-iteration milliseconds and the whole window in seconds. On CUDA, events on the current stream
    bracket each call and are read after one synchronisation at the end, so the loop never stalls the GPU."""
    cuda = device.type == "cuda"
    deadline = time.perf_counter() + budget_s if budget_s is not None else None
    marks = [_mark(cuda)]
    while True:
        network(x)
        marks.append(_mark(cuda))
        done = len(marks) - 1
        if done >= iterations and (deadline is None or time.perf_counter() >= deadline
                                   or done >= _MAX_BUDGET_ITERATIONS):
            break
    if cuda:
        marks[-1].synchronize()  # the only sync: every event before it is complete too
        latencies = [a.elapsed_time(b) for a, b in zip(marks, marks[1:])]
    else:
        latencies = [(b - a) * 1e3 for a, b in zip(marks, marks[1:])]
    return latencies, sum(latencies) / 1e3


def _encode_run(io: "_IO", frames: list[np.ndarray], pts: list[int], output: Path, warmup: int) -> RunResult:
    """Into one file: the first ``warmup`` frames as warm-up, then the whole clip again and again
    (each pass's pts after the one before) until the window lasts ``MIN_STAGE_WINDOW_S``, every
    frame counted (``repeats``: the passes). Frames are complete when handed to the encoder; the
    flush at ``close`` completes the last one, so the encoder's look-ahead is paid inside the window."""
    span = pts[-1] - pts[0] + (pts[-1] - pts[-2] if len(pts) > 1 else 1)  # the clip's length, one frame more
    with PeakMemory(torch.device("cpu")) as memory:
        clock = FrameClock()
        writer = io.writer(output)

        def encode(frame: np.ndarray, frame_pts: int) -> float:
            started = clock.now()
            clock.begin(1, at=started)
            writer.write(frame, pts=frame_pts)
            return clock.stage("encode", started)

        window_start = clock.start
        for frame, frame_pts in zip(frames[:warmup], pts[:warmup]):
            window_start = clock.complete(1, at=encode(frame, frame_pts))
        offset = span if warmup else 0
        repeats = 0
        while True:
            repeats += 1
            for i, (frame, frame_pts) in enumerate(zip(frames, pts)):
                handed = encode(frame, frame_pts + offset)
                if i < len(frames) - 1:
                    clock.complete(1, at=handed)
            if handed - window_start >= MIN_STAGE_WINDOW_S:
                break  # the last frame: completed by the flush below
            clock.complete(1, at=handed)
            offset += span
        started = clock.now()
        writer.close()
        clock.complete(1, at=clock.stage("encode", started))
    return _result("encode", None, None, clock.window(warmup, ("encode",)), memory,
                   extra={"encoder": writer.encoder_name, "repeats": repeats})


def _sequential_run(io: "_IO", output: Path, engine: Any, batch: int, warmup: int) -> RunResult:
    """decode → engine → encode on this thread alone; a frame's latency runs from the start of its decode
    to the end of its encode (it waits for its batch to fill)."""
    warmup = _round_up(warmup, batch)
    with PeakMemory(engine.device) as memory:
        clock = FrameClock()
        pending: list[tuple[np.ndarray, int]] = []
        # A batch's completion is recorded once the next frame shows it was not the last one: the last
        # batch completes only after the encoder's flush in close().
        unrecorded, done_at = 0, 0.0
        with io.reader() as reader:
            source = _frames(reader, io.frames)
            writer = io.writer(output)

            def infer_and_encode() -> None:
                started = clock.now()
                out = io.infer(engine, np.stack([image for image, _ in pending]))
                clock.stage("infer", started)
                for image, (_, frame_pts) in zip(out, pending):
                    started = clock.now()
                    writer.write(image, pts=frame_pts)
                    clock.stage("encode", started)

            while True:
                started = clock.now()
                item = next(source, None)
                if item is None:
                    break
                clock.stage("decode", started)
                clock.begin(1, at=started)
                if unrecorded:
                    clock.complete(unrecorded, at=done_at)
                    unrecorded = 0
                pending.append(item)
                if len(pending) == batch:
                    infer_and_encode()
                    unrecorded, done_at = len(pending), clock.now()
                    pending.clear()
        if pending:
            infer_and_encode()
            unrecorded += len(pending)
        started = clock.now()
        writer.close()
        clock.complete(unrecorded, at=clock.stage("encode", started))
    return _result("sequential", engine.model_name, batch, clock.window(warmup, ("decode", "infer", "encode")),
                   memory)


def _pipelined_run(io: "_IO", output: Path, engine: Any, batch: int, warmup: int) -> RunResult:
    from videodeblur.pipeline import RunOptions, deblur_file

    options = io.options
    run_options = RunOptions(encoder=options.encoder, crf=options.crf, preset=options.preset,
                             queue_size=options.queue_size,
                             warmup_frames=warmup, max_frames=io.frames, audio=False,
                             colour_on_device=io.layout == "i420",
                             deep=False)  # 8-bit out, as the stage runs write: every run times one encoder
    with PeakMemory(engine.device) as memory, _latencies_logged() as latencies_ms:
        stats = deblur_file(io.clip, output.with_suffix(io.suffix), engine, run_options)
    return _from_run_stats(stats.to_dict(), engine.model_name, batch, memory, latencies_ms)


@contextlib.contextmanager
def _latencies_logged() -> Iterator[list[float]]:
    """Every frame latency the runner logs meanwhile, in order: its stats keep only p50/p95/p99, and
    the pipelined run reports the mean and max as every other run does. (Only one pipeline runs at
    a time in a bench, so the runner's log is the only one that grows.)"""
    from videodeblur.pipeline.stats import LatencyLog

    logged: list[float] = []
    add_ms = LatencyLog.add_ms

    def add_and_keep(log: LatencyLog, ms: float) -> None:
        add_ms(log, ms)
        logged.append(ms)

    LatencyLog.add_ms = add_and_keep  # type: ignore[method-assign]
    try:
        yield logged
    finally:
        LatencyLog.add_ms = add_ms  # type: ignore[method-assign]


# --------------------------------------------------------------------------------------- helpers

def _result(mode: str, model: str | None, batch: int | None, window: Window, memory: PeakMemory, *,
            timing: str = "wall", extra: dict[str, Any] | None = None) -> RunResult:
    stages = {name: {"busy_s": busy, "share": min(1.0, busy / window.seconds) if window.seconds > 0 else 0.0}
              for name, busy in window.stage_busy_s.items()}
    return RunResult(mode=mode, model=model, batch=batch, frames=window.frames, seconds=window.seconds,
                     warmup_frames=window.warmup_frames, warmup_s=window.warmup_s,
                     latency_ms=percentiles_ms(window.latencies_ms), stages=stages, queue_depth={},
                     peak_rss_mb=memory.peak_rss_mb, cuda_peak_mb=memory.cuda_peak_mb, timing=timing,
                     extra=extra or {})


def _peer_table(network_runs: list[RunResult]) -> dict[str, dict[str, Any]]:
    """Network-only fps of every network measured, and how many times faster ours is (batch 1)."""
    ours = network_runs[0]
    return {r.model: {"fps": round(r.fps, 3), "parameters": r.extra.get("parameters"),
                      "speed_ratio": round(ours.fps / r.fps, 2) if r.fps > 0 else None}
            for r in network_runs[1:]}


def _first(runs: Iterable[RunResult], mode: str) -> RunResult:
    return next(r for r in runs if r.mode == mode)


def _round_up(n: int, multiple: int) -> int:
    return math.ceil(n / multiple) * multiple


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _mark(cuda: bool) -> Any:
    if cuda:
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event
    return time.perf_counter()


# ------------------------------------------------------------------------------------ video I/O

def _frames(reader: Any, limit: int) -> Iterator[tuple[np.ndarray, int]]:
    """``(image, pts)`` of the first ``limit`` frames of a ``FrameReader``."""
    for frame in itertools.islice(reader, limit):
        yield frame.image, frame.pts


@dataclasses.dataclass(frozen=True)
class _IO:
    """How every run reads, feeds the engine and writes: the pipeline's own choices for this input.
    ``layout`` is ``i420`` where the runner converts colour on the device (CUDA, 4:2:0, even size)."""

    clip: Path
    info: Any
    layout: str
    frames: int
    options: BenchOptions
    suffix: str = ".mp4"

    def reader(self) -> FrameReader:
        return FrameReader(self.clip, layout=self.layout)

    def writer(self, path: Path) -> FrameWriter:
        """The writer the ``video`` command would open for this input (video only: only video is measured),
        to ``path`` with the output container's suffix."""
        return FrameWriter.like(path.with_suffix(self.suffix), self.info, audio=False, subtitles=False, data=False, attachments=False,
                                encoder=self.options.encoder, crf=self.options.crf,
                                preset=self.options.preset, layout=self.layout)

    def infer(self, engine: Any, batch: np.ndarray) -> np.ndarray:
        return engine.submit(batch, layout=self.layout, colour=self.info.colour).result()


def _decode_all(io: _IO) -> tuple[list[np.ndarray], list[int]]:
    """The first ``io.frames`` frames and their pts, held in memory for the stage runs."""
    with io.reader() as reader:
        decoded = list(_frames(reader, io.frames))
    return [image for image, _ in decoded], [pts for _, pts in decoded]


def _from_run_stats(stats: dict[str, Any], model: str, batch: int, memory: PeakMemory,
                    latencies_ms: list[float]) -> RunResult:
    """The runner's ``RunStats.to_dict()`` in this module's terms: its ``window`` is the measured
    window (frames after warm-up, their seconds, and stage busy time counted from the end of warm-up).
    ``latencies_ms``: every frame's, warm-up first; the window's are summarised as the other runs' are."""
    window = stats["window"]
    frames, seconds = window["frames"], window["seconds"]
    measured = latencies_ms[stats["frames"] - frames:]
    stages = {name: {"busy_s": s["busy_s"], "share": min(1.0, s["share"])} for name, s in window["stages"].items()}
    queues = {name: {"mean": s["queue_mean"], "max": s["queue_max"]}
              for name, s in stats["stages"].items() if "queue_mean" in s}
    return RunResult(mode="pipelined", model=model, batch=batch, frames=frames, seconds=seconds,
                     warmup_frames=stats["frames"] - frames, warmup_s=max(0.0, stats["seconds"] - seconds),
                     latency_ms=percentiles_ms(measured), stages=stages, queue_depth=queues,
                     peak_rss_mb=memory.peak_rss_mb, cuda_peak_mb=memory.cuda_peak_mb,
                     extra={k: stats[k] for k in ("encoder", "warnings") if k in stats})
