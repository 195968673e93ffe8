"""Two CPU engines side by side (``videodeblur.pipeline.engine_lanes``): same frames as one engine,
results in submission order, errors carried back, threads joined, and the file runner using them."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from videodeblur.errors import FrameError
from videodeblur.pipeline import Engine, EngineOptions, RunOptions, deblur_file
from videodeblur.pipeline.engine_lanes import EngineLanes, lanes_for

from _clips_video import decode


@pytest.fixture(scope="module")
def engine() -> Engine:
    # two threads whatever the machine has: the lanes' split is then one each
    return Engine.from_name("lprn-fast", EngineOptions(device="cpu", batch_size=2, threads=2))


def _frames(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 40, 56, 3), dtype=np.uint8)


def _lane_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("videodeblur-infer")]


def test_lanes_are_chosen_for_a_cpu_engine_with_two_threads_or_more(engine: Engine) -> None:
    assert lanes_for(engine) == 2
    assert lanes_for(engine, 1) == 1
    assert lanes_for(engine, 5) == 2  # never more lanes than threads to split
    one = Engine(engine.model, EngineOptions(device="cpu", threads=1))
    assert lanes_for(one) == 1
    torch.set_num_threads(engine.threads or 2)  # building ``one`` set this thread's count to 1
    assert lanes_for(object()) == 1  # a stand-in engine runs as it is


def test_lanes_run_one_frame_a_batch_unless_a_batch_size_was_asked_for(engine: Engine) -> None:
    unasked = Engine(engine.model, EngineOptions(device="cpu", threads=2))
    assert unasked.batch_size == 2  # one engine alone keeps its default
    with EngineLanes(unasked, 2) as lanes, EngineLanes(engine, 2) as asked:
        assert lanes.batch_size == 1 and asked.batch_size == engine.batch_size == 2
        assert lanes.process(_frames(3)).shape == (3, 40, 56, 3)


def test_lanes_give_the_engines_frames_in_submission_order(engine: Engine) -> None:
    frames = _frames(10)
    expected = engine.process(frames)
    with EngineLanes(engine, 2) as lanes:
        handles = [lanes.submit(frames[i:i + 2]) for i in range(0, 10, 2)]
        got = np.concatenate([h.result() for h in handles])
        assert all(h.busy_s is not None and h.busy_s > 0 for h in handles)
        assert lanes.describe() == "cpu (1 thread) × 2 engines"
        assert len(lanes._lane_engines()) == 2  # both lanes worked: the batches were spread
    # a thread's count changes float rounding at most; measured identical on a 300-frame clip
    assert np.abs(got.astype(int) - expected).max() <= 1
    assert (got != expected).mean() < 1e-3


def test_closing_joins_the_lanes_and_gives_the_caller_its_threads_back(engine: Engine) -> None:
    lanes = EngineLanes(engine, 2)
    lanes.process(_frames(4))
    lanes.close()
    assert _lane_threads() == []
    assert torch.get_num_threads() == engine.threads


def test_an_engine_error_comes_back_from_result_and_the_other_batches_still_finish(engine: Engine) -> None:
    with EngineLanes(engine, 2) as lanes:
        good = lanes.submit(_frames(2))
        bad = lanes.submit(np.zeros((2, 40, 56), np.uint8))  # not N×H×W×3
        after = lanes.submit(_frames(2, seed=1))
        assert good.result().shape == (2, 40, 56, 3)
        with pytest.raises(FrameError):
            bad.result()
        assert after.result().shape == (2, 40, 56, 3)
    assert _lane_threads() == []


def test_the_file_runner_runs_two_lanes_and_writes_what_one_engine_writes(engine: Engine, make_clip,
                                                                          tmp_path: Path) -> None:
    """Lossless (crf 0): one engine and two lanes write the same frames, in the same order."""
    src = make_clip("a.mp4", width=64, height=48, frames=21)
    runs = {}
    for engines in (1, None):
        out = tmp_path / f"out{engines}.mp4"
        stats = deblur_file(src, out, engine, RunOptions(crf=0, encoder="libx264", engines=engines,
                                                         warmup_frames=2)).to_dict()
        runs[engines] = (stats, decode(out).frames)
    (one, one_frames), (two, two_frames) = runs[1], runs[None]
    assert one["device"] == "cpu (2 threads)" and two["device"] == "cpu (1 thread) × 2 engines"
    assert one["frames"] == two["frames"] == len(two_frames) == 21
    assert 0.0 < two["stages"]["infer"]["share"] <= 1.0  # the lanes' mean busy time, not their sum
    for a, b in zip(one_frames, two_frames):
        assert np.abs(a.astype(int) - b).max() <= 1
    assert _lane_threads() == []


def test_a_lane_that_raises_stops_the_run_with_its_error_and_keeps_the_frames_before(
        engine: Engine, make_clip, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash on a lane's thread reaches the caller; the output plays with the frames before it."""
    src = make_clip("a.mp4", width=64, height=48, frames=30)
    boom = RuntimeError("lane exploded")
    forward, calls, lock = Engine._forward_uint8, {"n": 0}, threading.Lock()

    def failing(self: Engine, *args, **kwargs):  # type: ignore[no-untyped-def]
        with lock:
            calls["n"] += 1
            if calls["n"] == 6:
                raise boom
        return forward(self, *args, **kwargs)
    monkeypatch.setattr(Engine, "_forward_uint8", failing)
    with pytest.raises(RuntimeError, match="lane exploded"):
        deblur_file(src, tmp_path / "out.mp4", engine, RunOptions(queue_size=2))
    written = decode(tmp_path / "out.mp4").frames
    assert 0 < len(written) < 30
    assert _lane_threads() == [] and not [t for t in threading.enumerate() if t.name.startswith("videodeblur-")]


def test_lanes_share_the_memory_budget_and_say_so(engine: Engine) -> None:
    """Two lanes hold two batches at once: each plans its tiles with half the budget."""
    from videodeblur.pipeline.memory import activation_bytes_per_pixel

    frames = np.random.default_rng(2).integers(0, 256, (2, 240, 320, 3), dtype=np.uint8)
    per_frame = 240 * 320 * activation_bytes_per_pixel(engine.model.network.config)
    options = EngineOptions(device="cpu", batch_size=1, threads=2, memory_budget=int(1.5 * per_frame))
    alone = Engine(engine.model, options)
    alone.process(frames)
    assert alone.auto_tiled == {}  # one frame fits in the whole budget
    with EngineLanes(alone, 2) as lanes:
        assert lanes.process(frames).shape == frames.shape
        assert sum(lanes.auto_tiled.values()) == 2  # but not in half of it
        assert "more than the memory budget shared by 2 engines" in (lanes.auto_tile_note or "")
