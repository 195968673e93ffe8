"""The CUDA engine: pinned ring, three streams and events give the CPU's numbers. Skipped without a GPU."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

from videodeblur.pipeline import Engine, EngineOptions, RunOptions, deblur_file
from videodeblur.video.colour import ColourTags, rgb_to_i420, yuv_matrix

from _clips_video import decode
from conftest import clip_frame, psnr

pytestmark = pytest.mark.cuda


@pytest.fixture(scope="module")
def cpu() -> Engine:
    return Engine.from_name("lprn-rt", EngineOptions(device="cpu", batch_size=2))


@pytest.fixture(scope="module")
def gpu32() -> Engine:
    return Engine.from_name("lprn-rt", EngineOptions(device="cuda", precision="fp32", batch_size=2))


def _frames(n: int, width: int = 128, height: int = 96) -> np.ndarray:
    return np.stack([clip_frame(i, width, height) for i in range(n)])


def test_defaults_on_cuda() -> None:
    engine = Engine.from_name(None, EngineOptions(device="cuda"))
    assert engine.device.type == "cuda" and engine.precision == "fp16" and engine.model_name == "lprn-rt"
    assert engine.max_in_flight == 2 and engine.batch_size == 4  # ring of 3


def test_fp32_on_cuda_matches_cpu(cpu: Engine, gpu32: Engine) -> None:
    frames = _frames(3)
    assert psnr(gpu32.process(frames), cpu.process(frames)) > 40  # TF32 convolutions round differently


def test_fp16_is_close_to_fp32(gpu32: Engine) -> None:
    frames = _frames(2)
    fp16 = Engine.from_name("lprn-rt", EngineOptions(device="cuda", precision="fp16", batch_size=2))
    assert psnr(fp16.process(frames), gpu32.process(frames)) > 35


def test_bf16_is_close_to_fp32(gpu32: Engine) -> None:
    """The whole network cast to bf16 (not autocast), as fp16 is: native from compute capability 8."""
    frames = _frames(2)
    bf16 = Engine.from_name("lprn-rt", EngineOptions(device="cuda", precision="bf16", batch_size=2))
    assert bf16.dtype == torch.bfloat16
    assert psnr(bf16.process(frames), gpu32.process(frames)) > 30


def test_nchw_engine_matches_the_channels_last_one(gpu32: Engine) -> None:
    frames = _frames(2)
    nchw = Engine.from_name("lprn-rt", EngineOptions(device="cuda", precision="fp32", batch_size=2, channels_last=False))
    assert np.abs(nchw.process(frames).astype(np.int16) - gpu32.process(frames)).max() <= 1


def test_a_batch_whose_network_failed_leaves_the_ring_usable(monkeypatch: pytest.MonkeyPatch, gpu32: Engine) -> None:
    """The network raising after the upload was enqueued (out of memory, say) leaves no owner on the
    slot; the batches after it, round the ring and back to that slot, still get their own frames."""
    engine = Engine.from_name("lprn-rt", EngineOptions(device="cuda", precision="fp32", batch_size=2))
    forward, left = engine._forward_uint8, [1]

    def fails_once(*args: object) -> torch.Tensor:
        if left[0]:
            left[0] -= 1
            raise RuntimeError("stand-in for CUDA out of memory")
        return forward(*args)

    monkeypatch.setattr(engine, "_forward_uint8", fails_once)
    batches = [_frames(2, 64, 48) + i for i in range(5)]
    with pytest.raises(RuntimeError, match="stand-in"):
        engine.submit(batches[0])
    handles = [engine.submit(b) for b in batches[1:]]
    for batch, handle in zip(batches[1:], handles):
        assert np.abs(handle.result().astype(np.int16) - gpu32.process(batch)).max() <= 1


def test_more_batches_in_flight_than_slots(gpu32: Engine) -> None:
    """Submitting past the ring without collecting forces the oldest result out first: every
    handle still returns its own batch."""
    batches = [_frames(2, 64, 48) + i for i in range(7)]
    handles = [gpu32.submit(b) for b in batches]
    for batch, handle in zip(batches, handles):
        out = handle.result()
        # cudnn may pick non-deterministic kernels (benchmark mode): the same batch can round one level apart
        assert np.abs(out.astype(np.int16) - gpu32.process(batch)).max() <= 1
        assert handle.gpu_ms is not None and handle.gpu_ms > 0


def test_busy_time_of_queued_batches_is_not_counted_twice(gpu32: Engine) -> None:
    """Batches submitted back to back queue on the compute stream; each one's gpu_ms counts from the
    previous one's end, so together they add up to no more than the wall time they all took (counted
    from each upload's start they added up to about the ring's size times it)."""
    frames = _frames(2, 1920, 1080)
    batches = [frames + i for i in range(8)]
    gpu32.process(frames)  # warm up at this size
    torch.cuda.synchronize()
    start = time.perf_counter()
    handles = [gpu32.submit(b) for b in batches]
    for handle in handles:
        handle.result()
    wall_ms = (time.perf_counter() - start) * 1e3
    busy = [h.gpu_ms for h in handles]
    assert all(ms is not None and ms > 0 for ms in busy)
    assert sum(busy) <= wall_ms * 1.02 + 1.0, (busy, wall_ms)


def test_partial_batches_and_new_sizes(gpu32: Engine, cpu: Engine) -> None:
    for shape in ((1, 64, 48), (2, 65, 47), (1, 128, 96)):
        frames = _frames(*shape)
        assert gpu32.process(frames).shape == frames.shape
        assert psnr(gpu32.process(frames), cpu.process(frames)) > 40


def test_i420_on_device_matches_cpu(cpu: Engine, gpu32: Engine) -> None:
    tags = ColourTags(colorspace=1, color_range=1)
    planes = rgb_to_i420(torch.from_numpy(_frames(2)).permute(0, 3, 1, 2).float() / 255, yuv_matrix(tags)).numpy()
    a = gpu32.submit(planes, layout="i420", colour=tags).result()
    b = cpu.submit(planes, layout="i420", colour=tags).result()
    assert a.shape == planes.shape and psnr(a, b) > 40


def test_tiles_on_cuda_match_cpu(cpu: Engine) -> None:
    frames = _frames(1, 200, 120)
    opts = dict(batch_size=2, tile=96, tile_overlap=32)
    a = Engine.from_name("lprn-rt", EngineOptions(device="cuda", precision="fp32", **opts)).process(frames)
    b = Engine.from_name("lprn-rt", EngineOptions(device="cpu", **opts)).process(frames)
    assert psnr(a, b) > 40


def test_auto_tiles_on_cuda_read_the_gpu_memory_and_match_the_cpu() -> None:
    from videodeblur.pipeline.memory import available_bytes

    assert 0 < available_bytes(torch.device("cuda")) <= torch.cuda.get_device_properties(0).total_memory
    frames = _frames(2, 320, 192)
    gpu = Engine.from_name("lprn-rt", EngineOptions(device="cuda", precision="fp32", memory_budget=8_000_000))
    out = gpu.process(frames)
    assert gpu.auto_tile_note is not None
    (tile,) = set(gpu._auto_tiles.values())
    cpu = Engine.from_name("lprn-rt", EngineOptions(device="cpu", tile=tile)).process(frames)
    assert psnr(out, cpu) > 40
    roomy = Engine.from_name("lprn-rt", EngineOptions(device="cuda"))  # the whole GPU's free memory: no tiles
    roomy.process(frames)
    assert roomy.auto_tile_note is None


def test_file_on_cuda_converts_colour_on_the_device(make_clip, tmp_path: Path) -> None:
    src = make_clip("a.mp4", width=128, height=96, frames=20, audio=True)
    engine = Engine.from_name("lprn-rt", EngineOptions(device="cuda", batch_size=4))
    stats = deblur_file(src, tmp_path / "gpu.mp4", engine, RunOptions(encoder="libx264"))
    assert stats.extra["colour_on_device"] is True and stats.frames == 20
    assert stats.stages["infer"].busy_s > 0  # from CUDA events
    a, b = decode(src), decode(tmp_path / "gpu.mp4")
    assert b.pts_seconds == a.pts_seconds and b.audio == a.audio
    rgb = deblur_file(src, tmp_path / "rgb.mp4", engine, RunOptions(encoder="libx264", colour_on_device=False))
    assert rgb.extra["colour_on_device"] is False
    c = decode(tmp_path / "rgb.mp4")
    assert min(psnr(x, y) for x, y in zip(b.frames, c.frames)) > 30


def test_the_live_loop_runs_one_cuda_engine_on_its_own_thread(cpu: Engine) -> None:
    """The camera's model runs on a worker thread (pipeline/live_workers.py); on CUDA it is one engine
    with its streams and pinned ring, and its pictures must equal the CPU engine's."""
    from videodeblur.pipeline.live import run_live
    from videodeblur.pipeline.live_workers import live_engines
    from videodeblur.video.capture import open_source

    engines = live_engines("lprn-rt", EngineOptions(device="cuda", precision="fp32"))
    assert len(engines) == 1 and engines[0].device.type == "cuda" and engines[0].batch_size == 1
    pairs: list[tuple[np.ndarray, np.ndarray]] = []
    stats = run_live(open_source("testsrc2=size=128x96:rate=25"), engines,
                     on_frame=lambda f: pairs.append((f.source, f.output)) or len(pairs) < 10)
    assert stats.end_reason == "quit" and stats.processed == 10 and stats.device.startswith("cuda")
    for source, output in pairs[::3]:
        assert psnr(output, cpu.process(source[np.newaxis])[0]) > 40


def test_cuda_graphs_give_the_eager_engines_frames(gpu32: Engine) -> None:
    """A captured graph replays the same conversions and network: every full batch, RGB or I420, in
    flight past the ring, equals the eager engine's output (cuDNN may round a level apart); a short
    last batch runs eagerly; a new frame size or colour matrix is captured anew, one graph kept."""
    graphed = Engine.from_name("lprn-rt", EngineOptions(device="cuda", precision="fp32", batch_size=2,
                                                        cuda_graphs=True))
    batches = [_frames(2, 64, 48) + i for i in range(7)] + [_frames(1, 64, 48)]
    handles = [graphed.submit(b) for b in batches]
    for batch, handle in zip(batches, handles):
        assert np.abs(handle.result().astype(np.int16) - gpu32.process(batch)).max() <= 1
    first = graphed._cuda.graph
    assert first is not None and first.key[0] == (2, 48, 64, 3)
    odd = _frames(2, 65, 47)
    assert np.abs(graphed.process(odd).astype(np.int16) - gpu32.process(odd)).max() <= 1
    assert graphed._cuda.graph is not first and graphed._cuda.graph.key[0] == (2, 47, 65, 3)
    for tags in (ColourTags(colorspace=1, color_range=1), ColourTags(colorspace=5, color_range=2)):
        planes = rgb_to_i420(torch.from_numpy(_frames(2)).permute(0, 3, 1, 2).float() / 255, yuv_matrix(tags)).numpy()
        a = graphed.submit(planes, layout="i420", colour=tags).result()
        b = gpu32.submit(planes, layout="i420", colour=tags).result()
        assert np.abs(a.astype(np.int16) - b).max() <= 1
        assert graphed._cuda.graph.key == ((2, 144, 128), "i420", yuv_matrix(tags))


def test_cuda_graphs_leave_tiled_batches_eager() -> None:
    graphed = Engine.from_name("lprn-rt", EngineOptions(device="cuda", precision="fp32", batch_size=1, tile=96,
                                                        tile_overlap=32, cuda_graphs=True))
    frames = _frames(1, 200, 120)
    plain = Engine.from_name("lprn-rt", EngineOptions(device="cuda", precision="fp32", batch_size=1, tile=96,
                                                      tile_overlap=32))
    assert np.abs(graphed.process(frames).astype(np.int16) - plain.process(frames)).max() <= 1
    assert graphed._cuda.graph is None


def test_a_file_with_cuda_graphs_matches_one_without(make_clip, tmp_path: Path) -> None:
    src = make_clip("a.mp4", width=128, height=96, frames=22, audio=True)  # 5 full batches of 4 and a short one
    outputs = {}
    for graphs in (False, True):
        engine = Engine.from_name("lprn-rt", EngineOptions(device="cuda", batch_size=4, cuda_graphs=graphs))
        stats = deblur_file(src, tmp_path / f"{graphs}.mp4", engine, RunOptions(encoder="libx264"))
        assert stats.frames == 22
        outputs[graphs] = decode(tmp_path / f"{graphs}.mp4")
    assert outputs[True].pts_seconds == outputs[False].pts_seconds
    assert min(psnr(x, y) for x, y in zip(outputs[True].frames, outputs[False].frames)) > 40


def test_the_network_run_replays_a_graph_that_gives_the_eager_output(gpu32: Engine) -> None:
    """bench's network row with --cuda-graphs replays a captured graph (it said cuda_graphs and ran
    eagerly); its output equals the eager network's."""
    from videodeblur.bench.network import device_input, graphed_infer

    graphed = Engine.from_name("lprn-rt", EngineOptions(device="cuda", precision="fp32", batch_size=1,
                                                        cuda_graphs=True))
    assert graphed_infer(gpu32, device_input(gpu32, 1, 48, 64)) is None  # graphs off: eager
    x = device_input(graphed, 1, 48, 64)
    replay = graphed_infer(graphed, x)
    assert replay is not None
    with torch.inference_mode():
        eager = graphed.infer(x).float()
        for _ in range(2):
            assert torch.allclose(replay(x).float(), eager, atol=1e-4)
    _assert_replays_recompute(graphed, x, replay, eager)


def _assert_replays_recompute(engine: Engine, x: torch.Tensor, replay: Callable[[torch.Tensor], torch.Tensor],
                              before: torch.Tensor) -> None:
    """New values in the captured input change the replay's output: the graph holds the network's work
    (a capture on another device's stream holds none, and its replays return the capture's output)."""
    x.copy_(torch.rand_like(x))
    with torch.inference_mode():
        fresh = engine.infer(x).float()
        assert not torch.allclose(fresh, before, atol=1e-4)
        assert torch.allclose(replay(x).float(), fresh, atol=1e-4)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")
def test_graphs_on_a_gpu_that_is_not_the_current_one_do_the_work() -> None:
    """An engine on cuda:1 while cuda:0 is current: the bench's graph and the engine's own are
    captured on that GPU's streams, so their replays recompute (pytorch issue 87894: a capture on the
    current device's stream records nothing)."""
    from videodeblur.bench.network import device_input, graphed_infer

    assert torch.cuda.current_device() == 0
    options = dict(device="cuda:1", precision="fp32", cuda_graphs=True)
    bench_engine = Engine.from_name("lprn-rt", EngineOptions(batch_size=1, **options))
    x = device_input(bench_engine, 1, 48, 64)
    replay = graphed_infer(bench_engine, x)
    assert replay is not None
    with torch.inference_mode():
        first = replay(x).float().clone()
    _assert_replays_recompute(bench_engine, x, replay, first)
    graphed = Engine.from_name("lprn-rt", EngineOptions(batch_size=2, **options))
    eager = Engine.from_name("lprn-rt", EngineOptions(device="cuda:1", precision="fp32", batch_size=2))
    batches = [_frames(2, 64, 48) + i for i in range(4)]
    for batch, handle in zip(batches, [graphed.submit(b) for b in batches]):
        assert np.abs(handle.result().astype(np.int16) - eager.process(batch)).max() <= 1
    assert graphed._cuda.graph is not None


def test_warmup_captures_the_graph_for_the_clips_colour_matrix() -> None:
    """bench warms an engine up with the clip's colour tags, so the first measured batch of a BT.709
    clip replays the warm-up's graph instead of capturing a new one inside the window."""
    graphed = Engine.from_name("lprn-rt", EngineOptions(device="cuda", batch_size=2, cuda_graphs=True))
    tags = ColourTags(colorspace=1, color_range=1)
    graphed.warmup(48, 64, layout="i420", colour=tags)
    captured = graphed._cuda.graph
    assert captured is not None and captured.key[2] == yuv_matrix(tags)
    planes = np.full((2, 72, 64), 100, np.uint8)
    graphed.submit(planes, layout="i420", colour=tags).result()
    assert graphed._cuda.graph is captured
