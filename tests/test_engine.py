"""The engine contract on CPU: shapes, batching, equality with the bare network, layouts, errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from videodeblur.errors import ConfigError, DeviceError, FrameError
from videodeblur.model import load_model
from videodeblur.pipeline import Engine, EngineOptions
from videodeblur.video.colour import ColourTags, i420_to_rgb, rgb_to_i420, yuv_matrix

from conftest import clip_frame, psnr


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.from_name("lprn-fast", EngineOptions(device="cpu", batch_size=3))


def _frames(n: int, width: int, height: int) -> np.ndarray:
    return np.stack([clip_frame(i, width, height) for i in range(n)])


def test_defaults_on_cpu(engine: Engine) -> None:
    assert engine.device == torch.device("cpu")
    assert engine.precision == "fp32"
    assert engine.model_name == "lprn-fast"
    assert engine.max_in_flight == 0  # synchronous
    assert Engine.from_name("lprn-fast", EngineOptions(device="cpu")).batch_size == 2  # faster than 4 on CPU
    assert Engine(None, EngineOptions(device="cpu")).model_name == "lprn-fast"  # default for the device


@pytest.mark.parametrize("n, width, height", [(1, 64, 48), (5, 65, 47), (3, 33, 17)])
def test_process_keeps_shape_and_dtype_for_any_size(engine: Engine, n: int, width: int, height: int) -> None:
    out = engine.process(_frames(n, width, height))
    assert out.shape == (n, height, width, 3) and out.dtype == np.uint8


def test_equals_the_network_applied_directly(engine: Engine) -> None:
    frames = _frames(2, 96, 64)
    net = load_model("lprn-fast").network.eval()
    with torch.no_grad():
        x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
        ref = (net(x).clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    out = engine.process(frames)
    assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1  # channels_last may reorder float sums


def test_engines_sharing_a_model_do_not_touch_each_other() -> None:
    model = load_model("lprn-fast")
    fp32 = Engine(model, EngineOptions(device="cpu"))
    bf16 = Engine(model, EngineOptions(device="cpu", precision="bf16"))
    assert next(model.network.parameters()).dtype == torch.float32
    assert next(fp32.network.parameters()).dtype == torch.float32
    assert next(bf16.network.parameters()).dtype == torch.bfloat16


def test_batching_changes_nothing(engine: Engine) -> None:
    frames = _frames(7, 80, 48)
    together = engine.process(frames)  # batches of 3, 3, 1
    alone = np.concatenate([engine.process(frames[i:i + 1]) for i in range(7)])
    assert np.abs(together.astype(int) - alone.astype(int)).max() <= 1


def test_submit_returns_a_result_handle(engine: Engine) -> None:
    frames = _frames(2, 64, 48)
    handle = engine.submit(frames)
    assert handle.ready()
    assert np.array_equal(handle.result(), engine.process(frames))
    assert handle.gpu_ms is None


def test_submit_takes_a_sequence_of_frames(engine: Engine) -> None:
    frames = _frames(3, 64, 48)
    assert np.array_equal(engine.submit(list(frames)).result(), engine.submit(frames).result())
    with pytest.raises(ValueError, match="one shape"):
        engine.submit([frames[0], frames[0][:20]])


def test_i420_layout_matches_the_rgb_path(engine: Engine) -> None:
    """Colour conversion on the device (as on CUDA) gives what the RGB path gives on the same planes."""
    tags = ColourTags(colorspace=1, color_range=1)
    m = yuv_matrix(tags)
    rgb = _frames(2, 96, 64)
    planes = rgb_to_i420(torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 255, m).numpy()
    out_planes = engine.submit(planes, layout="i420", colour=tags).result()
    assert out_planes.shape == planes.shape and out_planes.dtype == np.uint8
    rgb_in = (i420_to_rgb(torch.from_numpy(planes), m).permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
    rgb_out = engine.process(rgb_in)
    back = (i420_to_rgb(torch.from_numpy(out_planes), m).permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
    assert psnr(back, _rgb_through(rgb_out, m)) > 40


def _rgb_through(rgb: np.ndarray, m) -> np.ndarray:
    t = torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 255
    return (i420_to_rgb(rgb_to_i420(t, m), m).permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()


def test_bf16_on_cpu_is_close_to_fp32(engine: Engine) -> None:
    frames = _frames(1, 64, 48)
    bf16 = Engine.from_name("lprn-fast", EngineOptions(device="cpu", precision="bf16"))
    assert bf16.precision == "bf16"
    assert psnr(bf16.process(frames), engine.process(frames)) > 30


def test_warmup_runs(engine: Engine) -> None:
    engine.warmup(48, 64)
    engine.warmup(48, 64, layout="i420")


def test_device_and_precision_errors() -> None:
    with pytest.raises(DeviceError, match="fp16 needs a CUDA device"):
        Engine.from_name("lprn-fast", EngineOptions(device="cpu", precision="fp16"))
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="CUDA is not available"):
            Engine.from_name("lprn-fast", EngineOptions(device="cuda"))


@pytest.mark.parametrize("kwargs, match", [
    ({"batch_size": 0}, "batch size"), ({"precision": "fp8"}, "precision"), ({"device": "tpu"}, "device"),
    ({"tile": 40}, "tile"), ({"pinned_ring": 2}, "pinned_ring"), ({"threads": 0}, "threads"),
    ({"tile_overlap": -5}, "tile_overlap"), ({"threads": 100_000}, r"threads must be from 1 to \d+ \(four per core"),
    ({"compile": "no"}, "compile must be True or False, got 'no'"), ({"auto_tile": 0}, "auto_tile must be True or False"),
    ({"device": "cuda:x"}, "cuda:N, got 'cuda:x'"), ({"device": None}, "device must be")])  # torch's own error, a bare one
def test_bad_options_are_config_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        EngineOptions(**kwargs)


@pytest.mark.parametrize("bad", [np.zeros((4, 4, 3), np.uint8), np.zeros((1, 4, 4, 3), np.float32),
                                 np.zeros((1, 4, 4, 4), np.uint8), np.zeros((0, 4, 4, 3), np.uint8),
                                 np.zeros((1, 0, 0, 3), np.uint8)])
def test_bad_frames_are_typed_errors(engine: Engine, bad: np.ndarray) -> None:
    """FrameError (a VideoDeblurError and a ValueError), not torch's RuntimeError for 0×0 pixels."""
    with pytest.raises(FrameError, match="frame"):
        engine.process(bad)


def test_the_library_names_the_frames_as_given_and_takes_read_only_ones(recwarn: pytest.WarningsRecorder) -> None:
    from videodeblur import Deblurrer

    d = Deblurrer("lprn-fast", device="cpu")
    with pytest.raises(FrameError, match=r"got uint8 \(2, 24, 32\)"):  # a grey batch: not "(1, 2, 24, 32)"
        d.frames(np.zeros((2, 24, 32), np.uint8))
    frozen = np.stack([clip_frame(0, 32, 24)])
    frozen.flags.writeable = False  # as np.asarray of a PIL image is
    assert d.frames(frozen).shape == frozen.shape
    assert not [w for w in recwarn if "not writable" in str(w.message)]


def test_compiled_engines_pad_short_batches_to_one_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    """A compiled network would recompile for a run's short last batch; the engine pads it. Here
    torch.compile is replaced by a wrapper that records the batch sizes the network is called with."""
    seen: list[int] = []

    class Recording(torch.nn.Module):
        def __init__(self, net: torch.nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(x.shape[0])
            return self.net(x)

    asked: list[dict] = []
    monkeypatch.setattr(torch, "compile", lambda net, **kwargs: asked.append(kwargs) or Recording(net))
    frames = np.stack([clip_frame(i, 40, 24) for i in range(5)])
    compiled = Engine.from_name("lprn-fast", EngineOptions(device="cpu", batch_size=4, compile=True))
    plain = Engine.from_name("lprn-fast", EngineOptions(device="cpu", batch_size=4))
    difference = compiled.process(frames).astype(int) - plain.process(frames).astype(int)
    assert np.abs(difference).max() <= 1  # the same tolerance as batching_changes_nothing
    assert seen == [4, 4]  # 4 frames, then 1 padded to 4
    # and compiled for fixed shapes: a second engine of another batch size (bench --batch 1,2) found the
    # first's cached graph, and torch recompiled it for a varying batch, which `video` never runs
    assert asked == [{"dynamic": False}]


def test_auto_tiling_is_counted_by_shape_with_a_note_for_each() -> None:
    """A run tells from the counts whether its own frames were tiled, and says why from their shape's note."""
    engine = Engine.from_name("lprn-fast", EngineOptions(device="cpu", batch_size=1, memory_budget=2_000_000))
    engine.process(np.zeros((1, 48, 64, 3), np.uint8))  # fits whole in 2 MB
    assert (engine.auto_tiled, engine.auto_tile_note) == ({}, None)
    engine.process(np.zeros((2, 240, 320, 3), np.uint8))  # two batches of one frame, too big whole
    assert engine.auto_tiled == {(1, 3, 240, 320): 2} and engine.auto_tile_note_for((1, 3, 48, 64)) is None
    note = engine.auto_tile_note_for((1, 3, 240, 320))
    assert note is not None and note.startswith("1 frame(s) of 320x240 would need") and engine.auto_tile_note == note
    engine.process(np.zeros((1, 48, 64, 3), np.uint8))
    assert engine.auto_tiled == {(1, 3, 240, 320): 2}


def test_a_handle_collected_by_two_threads_leaves_the_slot_to_its_new_owner() -> None:
    """The CUDA ring's bookkeeping, with stand-ins for the pinned slot and the download event (no GPU
    here): thread A waits on its batch while thread D's submit wraps round the ring to A's slot and
    collects A's handle too. D must wait until A's copy is done, and A, finishing last, must not mark
    the slot free under D's outstanding batch (the next wrap would overwrite D's frames)."""
    import threading
    import time

    from videodeblur.pipeline.engine import EngineResult, _CudaPipeline

    class Uploaded:  # the slot's upload event, long complete
        def synchronize(self) -> None:
            pass

    class Slot:
        def __init__(self, shape: tuple[int, ...]) -> None:
            self.shape, self.host_out, self.owner = shape, torch.zeros(shape, dtype=torch.uint8), None
            self.uploaded = Uploaded()

    class Done:  # the download event; thread A wakes from it later than D does
        def __init__(self, gate: threading.Event) -> None:
            self.gate = gate

        def synchronize(self) -> None:
            self.gate.wait()
            if threading.current_thread().name == "A":
                time.sleep(0.2)

        def query(self) -> bool:
            return self.gate.is_set()

    class Timing:
        def __init__(self, gate: threading.Event) -> None:
            self.done = Done(gate)

        def busy_ms(self) -> float:
            return 1.0

    class Options:
        pinned_ring = 3

    class FakeEngine:
        batch_size, options = 1, Options()

    shape = (1, 4, 4, 3)
    pipe = object.__new__(_CudaPipeline)
    pipe.engine, pipe.next = FakeEngine(), 0
    pipe.slots = [Slot(shape) for _ in range(3)]

    def submit(gate: threading.Event, value: int) -> tuple[EngineResult, Slot]:
        slot = pipe._slot_for(shape[1:])
        slot.host_out.fill_(value)  # this batch's download landing in the slot
        handle = EngineResult(slot=slot, count=1, timing=Timing(gate))
        slot.owner = handle
        return handle, slot

    finished = threading.Event()
    finished.set()
    gate_a, gate_d = threading.Event(), threading.Event()
    handle_a, slot0 = submit(gate_a, 1)
    submit(finished, 2)
    submit(finished, 3)
    got: dict[str, np.ndarray] = {}
    thread_a = threading.Thread(target=lambda: got.setdefault("a", handle_a.result()), name="A")
    thread_a.start()
    time.sleep(0.1)
    submitted: dict[str, tuple[EngineResult, Slot]] = {}
    thread_d = threading.Thread(target=lambda: submitted.setdefault("d", submit(gate_d, 4)))
    thread_d.start()
    time.sleep(0.1)
    gate_a.set()
    thread_d.join(5)
    thread_a.join(5)
    handle_d, slot_d = submitted["d"]
    assert int(got["a"][0, 0, 0, 0]) == 1  # A's own frames, not D's
    assert slot_d is slot0 and slot0.owner is handle_d
    gate_d.set()
    submit(finished, 5)
    submit(finished, 6)
    _, slot_e = submit(finished, 7)  # wraps to slot 0: collects D first
    assert slot_e is slot0 and int(handle_d.result()[0, 0, 0, 0]) == 4


def test_frames_too_big_for_memory_even_in_tiles_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 30000x15000 panorama needs 25 GiB of whole-frame floats whatever the tile size; it was run in
    144 px tiles anyway, and the kernel killed it with nothing said. (Memory free is faked small.)"""
    from videodeblur.pipeline import engine as engine_module

    monkeypatch.setattr(engine_module, "available_bytes", lambda device: 1_000_000)
    for tile in (None, 96):  # a tile size given does not shrink them either
        engine = Engine.from_name("lprn-fast", EngineOptions(device="cpu", batch_size=2, tile=tile))
        with pytest.raises(DeviceError, match=r"^2 frame\(s\) of 200x150 need about 3 MiB even in tiles \(each whole "
                                              r"frame is kept as floats\), more than the 1 MiB free here; use a smaller --batch$"):
            engine.process(_frames(2, 200, 150))


@pytest.mark.parametrize("channels_last", [True, False])
def test_the_network_sees_its_weights_memory_format(channels_last: bool) -> None:
    """uint8 frames arrive NHWC, so their float view is channels-last whatever the option: with
    ``channels_last=False`` the NCHW network was handed NHWC inputs (on CUDA each convolution then
    reorders them), so the option measured a mix, not the plain layout."""
    engine = Engine.from_name("lprn-fast", EngineOptions(device="cpu", batch_size=1, channels_last=channels_last))
    seen: list[torch.Tensor] = []
    network = engine.network
    engine.network = lambda x: seen.append(x) or network(x)  # type: ignore[assignment]
    engine.process(_frames(1, 48, 32))
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    assert seen and seen[0].is_contiguous(memory_format=fmt)
    assert next(network.parameters()).is_contiguous(memory_format=fmt)
