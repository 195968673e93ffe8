"""The network-only run of ``videodeblur bench``: ``Engine.infer`` on a device-resident tensor, on CUDA
timed with events.

Apart from the other runs because it is the only one timed on the device (events read after one
synchronisation) and the one the peers are compared on.
"""
from __future__ import annotations

import time
from typing import Any, Callable

import torch

from videodeblur.bench.clip import BenchIO
from videodeblur.bench.results import RunResult, result_from_window
from videodeblur.measure import PeakMemory, Window

__all__ = ["network_run", "graphed_infer", "device_input", "timed_iterations"]

_MAX_BUDGET_ITERATIONS = 200


def network_run(engine: Any, io: BenchIO, *, warmup_iterations: int, iterations: int,
                 budget_s: float | None = None) -> RunResult:
    """``engine.infer`` alone at batch 1 on a device-resident input already in the engine's precision
    and memory format: no colour conversion, no transfers. Runs ``iterations``; with ``budget_s`` (the
    slow peers) at least ``iterations`` and then more while the budget lasts. The first call (where
    ``torch.compile`` compiles) is timed on its own as ``first_call_s``."""
    device = engine.device
    with PeakMemory(device) as memory, torch.inference_mode():
        # made in inference mode, as the engine's own batches are: a tensor made outside it failed
        # torch.compile's guards (dispatch keys), so --compile timed a second compilation, not the engine's
        x = device_input(engine, 1, io.info.height, io.info.width)
        started = time.perf_counter()
        forward = graphed_infer(engine, x) or engine.infer  # a capture counts with the first call
        forward(x)
        _sync(device)
        first_call_s = time.perf_counter() - started
        for _ in range(warmup_iterations - 1):
            forward(x)
        _sync(device)
        warmup_s = time.perf_counter() - started
        latencies_ms, seconds = timed_iterations(forward, x, device, iterations, budget_s)
    window = Window(frames=len(latencies_ms), seconds=seconds, warmup_frames=max(warmup_iterations, 1),
                    warmup_s=warmup_s, latencies_ms=tuple(latencies_ms), stage_busy_s={"infer": seconds})
    extra = {"parameters": sum(p.numel() for p in engine.model.network.parameters()),
             "first_call_s": round(first_call_s, 6), "cuda_graph": forward is not engine.infer}
    return result_from_window("network", engine.model_name, 1, window, memory,
                              timing="cuda-events" if device.type == "cuda" else "wall", extra=extra)


def graphed_infer(engine: Any, x: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """With ``cuda_graphs`` on CUDA, ``engine.infer(x)`` captured as a CUDA graph, as the engine's own
    batches are: warmed up three times on a side stream of the engine's device and captured once on that
    same stream, then replayed on the current stream reading ``x`` in place (the timed loop passes the
    same tensor every time) and returning the same output tensor. None where graphs are off or the
    frame runs in tiles (eager, as in the engine).

    Why ``stream=side``: without it ``torch.cuda.graph`` captures on a stream of its own, made once on
    whichever device is current, so for an engine on ``cuda:1`` the kernels ran uncaptured on that
    device and every replay did nothing (pytorch issue 87894); and the capture was that stream's first
    use, where per-stream library handles are made mid-capture (why pytorch PR 187745 warms up and
    captures ``make_graphed_callables`` on one stream)."""
    if not engine.options.cuda_graphs or engine.device.type != "cuda" or engine.tile_for(tuple(x.shape)) is not None:
        return None
    current = torch.cuda.current_stream(engine.device)
    side = torch.cuda.Stream(engine.device)
    side.wait_stream(current)
    with torch.cuda.stream(side):
        for _ in range(3):
            engine.infer(x)
    current.wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=side, capture_error_mode="thread_local"):
        output = engine.infer(x)

    def replay(given: torch.Tensor) -> torch.Tensor:
        if given is not x:
            raise ValueError("a graphed network run replays on the tensor it was captured with")
        graph.replay()
        return output
    return replay


def device_input(engine: Any, batch: int, height: int, width: int) -> torch.Tensor:
    """A random ``batch×3×height×width`` input already on the engine's device, in its precision and
    memory format, so a timed ``engine.infer`` does no conversion or transfer."""
    memory_format = torch.channels_last if engine.options.channels_last else torch.contiguous_format
    x = torch.rand(batch, 3, height, width, device=engine.device)
    return x.to(dtype=engine.dtype, memory_format=memory_format)


def timed_iterations(network: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, device: torch.device,
                     iterations: int, budget_s: float | None) -> tuple[list[float], float]:
    """Per-iteration milliseconds and the whole window in seconds. On CUDA, events on the current stream
    bracket each call and are read after one synchronisation at the end, so the loop never stalls the GPU."""
    cuda = device.type == "cuda"
    deadline = time.perf_counter() + budget_s if budget_s is not None else None
    marks = [_mark(device)]
    while True:
        network(x)
        marks.append(_mark(device))
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


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _mark(device: torch.device) -> Any:
    if device.type == "cuda":
        event = torch.cuda.Event(enable_timing=True)
        event.record(torch.cuda.current_stream(device))  # the network's device, whichever is current
        return event
    return time.perf_counter()
