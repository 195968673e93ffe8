"""The CUDA engine's streams, events and pinned ring, run on the CPU with stand-ins for torch.cuda.

No session has had a GPU, so the ordering rules PyTorch documents for its CUDA semantics are checked
here on the calls the engine makes, in the order it makes them (the work itself runs eagerly on CPU
tensors, so the outputs must equal the CPU engine's):

- a tensor used on a stream other than the one it was made on is ordered after its producer
  (``wait_event``) and marked with ``record_stream`` so the caching allocator does not hand its
  memory out while that stream may still read it;
- a pinned buffer read or written by a ``non_blocking`` copy is touched by the host only after an
  event recorded after that copy has been synchronised;
- the events a batch's ``gpu_ms`` is read from have both completed (``elapsed_time``'s rule), and
  nothing synchronises the whole device;
- a CUDA graph is warmed up and captured on one stream, replayed on the compute stream with each
  batch copied into its static input and its static output copied out.
"""
from __future__ import annotations

import contextlib
import itertools
from typing import Any, Iterator

import numpy as np
import pytest
import torch

from videodeblur.pipeline import Engine, EngineOptions
from videodeblur.pipeline import engine as engine_module

from conftest import clip_frame


class Recorder:
    """The calls the engine makes to the stand-ins, in order, and which stream is current."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.default = FakeStream(self, "default")
        self.current = self.default
        self.on_sync: Any = lambda event: None  # a test's look at the host's state as it waits on ``event``

    def log(self, *call: Any) -> None:
        self.calls.append(call)

    def index(self, *call: Any, after: int = -1) -> int:
        """Where ``call`` was first made after position ``after`` (ValueError: never)."""
        return next(i for i, c in enumerate(self.calls) if i > after and c == call)


class FakeStream:
    def __init__(self, recorder: Recorder, name: str, device: Any = None) -> None:
        self.recorder, self.name, self.device = recorder, name, device

    def wait_stream(self, other: "FakeStream") -> None:
        self.recorder.log("wait_stream", self, other)

    def wait_event(self, event: "FakeEvent") -> None:
        self.recorder.log("wait_event", self, event)

    def __repr__(self) -> str:
        return f"<{self.name}>"


class FakeEvent:
    _numbers = itertools.count()

    def __init__(self, recorder: Recorder, enable_timing: bool = False, blocking: bool = False) -> None:
        self.recorder, self.timing, self.blocking, self.number = recorder, enable_timing, blocking, next(self._numbers)
        self.recorded = self.synced = False

    def record(self, stream: FakeStream | None = None) -> None:
        self.recorder.log("record", self, stream or self.recorder.current)
        self.recorded, self.synced = True, False

    def synchronize(self) -> None:
        self.recorder.log("sync", self)
        self.recorder.on_sync(self)
        self.synced = True

    def query(self) -> bool:
        return True

    def elapsed_time(self, end: "FakeEvent") -> float:
        assert self.timing and end.timing, "elapsed_time needs two timing events"
        assert self.recorded and end.recorded and end.synced, "elapsed_time before the end event completed"
        return 1.0

    def __repr__(self) -> str:
        return f"<event {self.number}>"


@pytest.fixture()
def fake_cuda(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recorder = Recorder()

    @contextlib.contextmanager
    def stream(s: FakeStream) -> Iterator[None]:
        before, recorder.current = recorder.current, s
        try:
            yield
        finally:
            recorder.current = before

    real_empty = torch.empty

    def empty(*args: Any, pin_memory: bool = False, **kwargs: Any) -> torch.Tensor:
        tensor = real_empty(*args, **kwargs)
        if pin_memory:
            recorder.log("pinned", tensor.data_ptr())
        return tensor

    def record_stream(tensor: torch.Tensor, s: FakeStream) -> None:
        recorder.log("record_stream", tensor.data_ptr(), s)

    def device_wide_sync(*args: Any) -> None:
        raise AssertionError("torch.cuda.synchronize: issue 5 forbids a device-wide wait per batch")

    monkeypatch.setattr(torch.cuda, "Stream",
                        lambda device=None: FakeStream(recorder, f"stream{len(recorder.calls)}", device))
    monkeypatch.setattr(torch.cuda, "Event",
                        lambda enable_timing=False, blocking=False: FakeEvent(recorder, enable_timing, blocking))
    monkeypatch.setattr(torch.cuda, "stream", stream)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: recorder.current)
    monkeypatch.setattr(torch.cuda, "synchronize", device_wide_sync)
    monkeypatch.setattr(torch, "empty", empty)
    monkeypatch.setattr(torch.Tensor, "record_stream", record_stream)
    return recorder


@pytest.fixture(scope="module")
def cpu() -> Engine:
    return Engine.from_name("lprn-fast", EngineOptions(device="cpu", batch_size=2))


def _streamed(cpu: Engine, recorder: Recorder) -> tuple[Engine, "engine_module._CudaPipeline"]:
    """An engine like ``cpu`` whose submit goes through the CUDA pipeline, on the stand-ins."""
    engine = Engine(cpu.model, cpu.options)
    pipe = engine_module._CudaPipeline(engine)
    pipe.upload.name, pipe.compute.name, pipe.download.name = "upload", "compute", "download"
    engine._cuda = pipe
    original = engine._forward_uint8

    def forward(u8: torch.Tensor, layout: str, colour: Any) -> torch.Tensor:
        recorder.log("forward", recorder.current, u8.data_ptr())
        out = original(u8, layout, colour)
        recorder.log("made", recorder.current, out.data_ptr())
        return out

    engine._forward_uint8 = forward  # type: ignore[method-assign]
    return engine, pipe


def _batches(count: int, width: int = 48, height: int = 32) -> list[np.ndarray]:
    return [np.stack([clip_frame(i + k, width, height) for k in range(2)]) for i in range(count)]


def test_each_batch_is_ordered_across_the_three_streams(cpu: Engine, fake_cuda: Recorder) -> None:
    engine, pipe = _streamed(cpu, fake_cuda)
    assert fake_cuda.calls[-1] == ("wait_stream", pipe.compute, fake_cuda.default)  # the weights' copies
    batch = _batches(1)[0]
    start = len(fake_cuda.calls)
    handle = engine.submit(batch)
    calls = fake_cuda.calls
    slot = pipe.slots[0]
    # upload: after the caller's stream, then its event
    waited = fake_cuda.index("wait_stream", pipe.upload, fake_cuda.default, after=start - 1)
    uploaded = fake_cuda.index("record", slot.uploaded, pipe.upload, after=waited)
    # compute: waits on the upload's event, marks the uploaded tensor as used there, runs on compute
    compute_waits = fake_cuda.index("wait_event", pipe.compute, slot.uploaded, after=uploaded)
    forward = next(i for i, c in enumerate(calls) if i > compute_waits and c[0] == "forward")
    assert calls[forward][1] is pipe.compute
    dev_in = calls[forward][2]
    assert fake_cuda.index("record_stream", dev_in, pipe.compute, after=compute_waits) < forward
    computed = fake_cuda.index("record", slot.computed, pipe.compute, after=forward)
    # download: waits on compute's event, marks the output as used there
    download_waits = fake_cuda.index("wait_event", pipe.download, slot.computed, after=computed)
    made = next(c for c in calls[forward:] if c[0] == "made")
    assert made[1] is pipe.compute
    fake_cuda.index("record_stream", made[2], pipe.download, after=download_waits)
    # the host reads the pinned output only after the download's own event
    done = handle._timing.done
    assert fake_cuda.index("record", done, pipe.download, after=download_waits)
    assert not any(c == ("sync", done) for c in calls)
    out = handle.result()
    fake_cuda.index("sync", done, after=download_waits)
    assert handle.gpu_ms == 1.0
    assert np.array_equal(out, cpu.process(batch))


def test_the_host_waits_for_a_batch_blocked_not_spinning(cpu: Engine, fake_cuda: Recorder) -> None:
    """The one event the host waits on per batch (its download's end) is made blocking: without
    cudaEventBlockingSync, CUDA's event synchronize busy-waits a core for the batch's device time."""
    engine, _ = _streamed(cpu, fake_cuda)
    handle = engine.submit(_batches(1)[0])
    waited = [c[1] for c in fake_cuda.calls if c[0] == "sync"]
    handle.result()
    (done,) = [c[1] for c in fake_cuda.calls if c[0] == "sync" and c[1] not in waited]
    assert done is handle._timing.done and done.timing and done.blocking


def test_a_pinned_slot_is_rewritten_only_after_its_last_copies_completed(cpu: Engine, fake_cuda: Recorder) -> None:
    """More batches than slots, none collected by the caller: the fourth reuses the first's slot, and
    before its frames are copied into the pinned input the first batch's download event is waited on
    (which follows the first upload and the first download)."""
    engine, pipe = _streamed(cpu, fake_cuda)
    batches = _batches(5)
    handles = [engine.submit(b) for b in batches[:3]]
    first_done = handles[0]._timing.done
    assert not any(c == ("sync", first_done) for c in fake_cuda.calls)
    start = len(fake_cuda.calls)
    handles.append(engine.submit(batches[3]))
    synced = fake_cuda.index("sync", first_done, after=start - 1)
    assert synced < fake_cuda.index("record", pipe.slots[0].uploaded, pipe.upload, after=start - 1)
    handles.append(engine.submit(batches[4]))
    for batch, handle in zip(batches, handles):
        assert np.array_equal(handle.result(), cpu.process(batch))


def test_every_slot_reuse_waits_for_its_last_batch_before_the_host_writes(cpu: Engine, fake_cuda: Recorder) -> None:
    """Three times round the ring of 3 with nothing collected: each batch from the fourth on waits for
    the download of the batch that last held its slot, and at that moment the slot's pinned input
    still holds that batch's frames (the host has not yet written the new ones over frames the copy
    engine may be reading) and its pinned output is read only after the wait."""
    engine, pipe = _streamed(cpu, fake_cuda)
    batches = _batches(9)
    handles: list[Any] = []
    held: dict[Any, tuple[Any, int]] = {}  # a batch's done event -> (its slot, its index)
    waited: list[int] = []

    def on_sync(event: Any) -> None:
        if event in held:
            slot, index = held[event]
            assert np.array_equal(slot.host_in.numpy(), batches[index]), f"batch {index}'s frames overwritten"
            waited.append(index)

    fake_cuda.on_sync = on_sync
    for k, batch in enumerate(batches):
        before = len(waited)
        handles.append(engine.submit(batch))
        slot = pipe.slots[k % 3]
        assert handles[-1]._slot is slot
        held[handles[-1]._timing.done] = (slot, k)
        assert waited[before:] == ([k - 3] if k >= 3 else [])
    for batch, handle in zip(batches, handles):
        assert np.array_equal(handle.result(), cpu.process(batch))


def test_a_batch_that_failed_leaves_its_slot_waiting_for_its_upload(cpu: Engine, fake_cuda: Recorder) -> None:
    """The network raised (out of memory, say) after the batch's upload was enqueued: no handle owns
    the slot, but the upload may still be reading its pinned input. When the ring comes back to that
    slot, the upload's event is waited on before the new frames are copied in (it was not: the host
    could overwrite frames the copy engine was still reading)."""
    engine, pipe = _streamed(cpu, fake_cuda)
    forward = engine._forward_uint8
    failing = {"left": 1}

    def fails_once(u8: torch.Tensor, layout: str, colour: Any) -> torch.Tensor:
        if failing["left"]:
            failing["left"] -= 1
            raise RuntimeError("CUDA out of memory (stand-in)")
        return forward(u8, layout, colour)

    engine._forward_uint8 = fails_once  # type: ignore[method-assign]
    batches = _batches(4)
    with pytest.raises(RuntimeError, match="out of memory"):
        engine.submit(batches[0])
    slot0 = pipe.slots[0]
    failed_upload = fake_cuda.index("record", slot0.uploaded, pipe.upload)
    assert slot0.owner is None
    handles = [engine.submit(b) for b in batches[1:3]]
    start = len(fake_cuda.calls)
    handles.append(engine.submit(batches[3]))  # back to slot 0
    synced = fake_cuda.index("sync", slot0.uploaded, after=max(failed_upload, start - 1))
    assert synced < fake_cuda.index("record", slot0.uploaded, pipe.upload, after=start - 1)
    for batch, handle in zip(batches[1:], handles):
        assert np.array_equal(handle.result(), cpu.process(batch))


def test_a_new_frame_size_collects_every_batch_in_flight_first(cpu: Engine, fake_cuda: Recorder) -> None:
    """New pinned slots replace the old only once every batch still in them has come back."""
    engine, pipe = _streamed(cpu, fake_cuda)
    small = _batches(2)
    handles = [engine.submit(b) for b in small]
    old_slots = list(pipe.slots)
    start = len(fake_cuda.calls)
    big = _batches(1, 64, 48)[0]
    handles.append(engine.submit(big))
    assert pipe.slots[0] is not old_slots[0]
    new_pinned = next(i for i, c in enumerate(fake_cuda.calls) if i >= start and c[0] == "pinned")
    for handle in handles[:2]:
        assert fake_cuda.index("sync", handle._timing.done, after=start - 1) < new_pinned
    for batch, handle in zip([*small, big], handles):
        assert np.array_equal(handle.result(), cpu.process(batch))


def test_i420_batches_take_the_same_path(cpu: Engine, fake_cuda: Recorder) -> None:
    from videodeblur.video.colour import ColourTags, rgb_to_i420, yuv_matrix

    engine, pipe = _streamed(cpu, fake_cuda)
    tags = ColourTags(colorspace=1, color_range=1)
    planes = rgb_to_i420(torch.from_numpy(_batches(1)[0]).permute(0, 3, 1, 2).float() / 255, yuv_matrix(tags)).numpy()
    out = engine.submit(planes, layout="i420", colour=tags).result()
    assert np.array_equal(out, cpu.submit(planes, layout="i420", colour=tags).result())
    assert any(c[0] == "forward" and c[1] is pipe.compute for c in fake_cuda.calls)


class FakeGraph:
    """A captured graph as torch documents it: replay reruns the captured work on the same input
    buffer and writes the same output buffer (here by calling it again and copying into that buffer)."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.work: Any = None
        self.output: torch.Tensor | None = None

    def replay(self) -> None:
        self.recorder.log("replay", self, self.recorder.current)
        assert self.work is not None and self.output is not None, "replay of a graph never captured"
        self.output.copy_(self.work())


@pytest.fixture()
def fake_graphs(fake_cuda: Recorder, monkeypatch: pytest.MonkeyPatch) -> Recorder:
    @contextlib.contextmanager
    def graph(g: FakeGraph, pool: Any = None, stream: FakeStream | None = None,
              capture_error_mode: str = "global") -> Iterator[None]:
        before, fake_cuda.current = fake_cuda.current, stream
        fake_cuda.log("capture", g, stream, capture_error_mode)
        fake_cuda.capturing = g  # type: ignore[attr-defined]
        try:
            yield
        finally:
            fake_cuda.capturing = None  # type: ignore[attr-defined]
            fake_cuda.log("captured", g)
            fake_cuda.current = before

    fake_cuda.capturing = None  # type: ignore[attr-defined]
    monkeypatch.setattr(torch.cuda, "CUDAGraph", lambda: FakeGraph(fake_cuda))
    monkeypatch.setattr(torch.cuda, "graph", graph)
    return fake_cuda


def _graphed(cpu: Engine, recorder: Recorder) -> tuple[Engine, "engine_module._CudaPipeline"]:
    """``_streamed`` with ``cuda_graphs`` on; the forward run under capture becomes the graph's work."""
    import dataclasses

    engine, pipe = _streamed(cpu, recorder)
    engine.options = dataclasses.replace(engine.options, cuda_graphs=True)
    traced = engine._forward_uint8

    def forward(u8: torch.Tensor, layout: str, colour: Any) -> torch.Tensor:
        graph = recorder.capturing  # type: ignore[attr-defined]
        out = traced(u8, layout, colour)
        if graph is not None:
            graph.work, graph.output = (lambda: traced(u8, layout, colour)), out
        return out

    engine._forward_uint8 = forward  # type: ignore[method-assign]
    return engine, pipe


def test_graphs_are_warmed_captured_and_replayed_on_the_compute_stream(cpu: Engine, fake_graphs: Recorder) -> None:
    """Warm-up runs before the capture on the stream it captures on (torch's CUDA-graph recipe), the
    capture is thread_local (the writer thread may wait on events meanwhile), replays run on the
    compute stream, each batch is copied into the static input first (else a replay reruns the last
    batch's frames), and what the download reads is a copy of the static output, not the buffer the
    next replay overwrites. Every full batch equals the eager engine's output; a short one runs eagerly."""
    engine, pipe = _graphed(cpu, fake_graphs)
    batches = _batches(5)
    short = batches[0][:1]
    handles = [engine.submit(b) for b in batches] + [engine.submit(short)]
    calls = fake_graphs.calls
    (capture,) = [i for i, c in enumerate(calls) if c[0] == "capture"]
    graph = calls[capture][1]
    assert calls[capture][2] is pipe.compute and calls[capture][3] == "thread_local"
    warmups = [c for c in calls[:capture] if c[0] == "forward" and c[2] == pipe.graph.static_in.data_ptr()]
    assert len(warmups) == engine_module._GraphedForward.WARMUP_RUNS and all(c[1] is pipe.compute for c in warmups)
    replays = [c for c in calls if c[0] == "replay"]
    assert len(replays) == len(batches) and all(c[1] is graph and c[2] is pipe.compute for c in replays)
    static_out = graph.output.data_ptr()
    downloaded = [c[1] for c in calls if c[0] == "record_stream" and c[2] is pipe.download]
    assert len(downloaded) == len(batches) + 1 and static_out not in downloaded
    for batch, handle in zip([*batches, short], handles):
        assert np.array_equal(handle.result(), cpu.process(batch))
    assert pipe.graph.key[0] == (2, 32, 48, 3)


@pytest.mark.parametrize("layout", ["rgb", "i420"])
def test_running_out_of_gpu_memory_is_a_device_error_that_says_what_to_do(cpu: Engine, fake_cuda: Recorder,
                                                                        layout: str) -> None:
    """torch's CUDA out-of-memory error reached the command as 'internal error: OutOfMemoryError', a
    bug's wording, for a batch or frame size the GPU cannot hold; the engine stays usable after it."""
    from videodeblur.errors import DeviceError

    engine, _ = _streamed(cpu, fake_cuda)
    forward = engine._forward_uint8

    def out_of_memory(*args: Any) -> torch.Tensor:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB.\nGPU 0 has 1 GiB free")

    engine._forward_uint8 = out_of_memory  # type: ignore[method-assign]
    batch = _batches(1)[0]
    frames = batch if layout == "rgb" else np.zeros((2, 48, 48), np.uint8)
    with pytest.raises(DeviceError, match=r"^the GPU ran out of memory for 2 frame\(s\) of 48x32 at fp32: use a smaller "
                                          r"--batch, or --tile N to run frames in tiles \(CUDA out of memory\. Tried to "
                                          r"allocate 2\.00 GiB\.\)$"):
        engine.submit(frames, layout=layout)  # type: ignore[arg-type]
    engine._forward_uint8 = forward  # type: ignore[method-assign]
    assert np.array_equal(engine.submit(batch).result(), cpu.process(batch))


def test_the_network_run_captures_its_graph_on_its_warm_up_stream(cpu: Engine, fake_graphs: Recorder) -> None:
    """bench's network row with --cuda-graphs: the warm-ups and the capture run on one side stream made
    on the engine's device. Without ``stream=``, torch.cuda.graph captured on its own stream, made once
    on the current device: for an engine on cuda:1 the kernels ran uncaptured on that device and every
    replay did nothing (pytorch issue 87894). Replays then run on the caller's stream and give the
    eager output."""
    import dataclasses

    from videodeblur.bench.network import graphed_infer

    engine = Engine(cpu.model, cpu.options)
    engine.options = dataclasses.replace(engine.options, cuda_graphs=True, auto_tile=False)
    engine.device = torch.device("cuda", 1)  # not the current device; the work itself runs on CPU tensors
    infer = engine.infer

    def logged(x: torch.Tensor) -> torch.Tensor:
        fake_graphs.log("infer", fake_graphs.current)
        out = infer(x)
        graph = fake_graphs.capturing  # type: ignore[attr-defined]
        if graph is not None:
            graph.work, graph.output = (lambda: infer(x)), out
        return out

    engine.infer = logged  # type: ignore[method-assign]
    x = torch.rand(1, 3, 32, 48).contiguous(memory_format=torch.channels_last)
    replay = graphed_infer(engine, x)
    assert replay is not None
    calls = fake_graphs.calls
    (capture,) = [i for i, c in enumerate(calls) if c[0] == "capture"]
    stream, mode = calls[capture][2], calls[capture][3]
    assert isinstance(stream, FakeStream) and stream.device == engine.device and mode == "thread_local"
    warmups = [c[1] for c in calls[:capture] if c[0] == "infer"]
    assert len(warmups) == 3 and all(s is stream for s in warmups)
    assert [c[1] for c in calls[capture:] if c[0] == "infer"] == [stream]  # the captured call
    start = len(calls)
    with torch.inference_mode():
        eager = infer(x)
        assert torch.equal(replay(x), eager)
    assert [c[2] for c in calls[start:] if c[0] == "replay"] == [fake_graphs.default]
