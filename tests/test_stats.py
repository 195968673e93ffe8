"""Run statistics: percentiles, the sustained-fps window, stage clocks and the frozen record."""
from __future__ import annotations

import threading

import pytest

from videodeblur.pipeline.stats import DepthGauge, StageClock, StatsRecorder, ThroughputClock, percentiles


def test_percentiles_interpolate_and_order() -> None:
    values = list(range(1, 101))  # 1..100
    p = percentiles(values)
    assert p == {"p50": pytest.approx(50.5), "p95": pytest.approx(95.05), "p99": pytest.approx(99.01),
                 "mean": pytest.approx(50.5), "max": 100.0}
    assert percentiles([7.0]) == {"p50": 7.0, "p95": 7.0, "p99": 7.0, "mean": 7.0, "max": 7.0}
    assert percentiles([]) == {"p50": 0.0, "p95": 0.0, "p99": 0.0, "mean": 0.0, "max": 0.0}


def test_percentiles_are_numpys_default_rule_on_an_array_d() -> None:
    """The camera keeps its latencies in an ``array('d')``: read as an array, by numpy's rule."""
    import array

    import numpy as np

    values = array.array("d", [40.0, 10.0, 30.0, 20.0])
    p = percentiles(values)
    assert [p["p50"], p["p95"], p["p99"]] == pytest.approx(list(np.percentile(np.asarray(values), (50, 95, 99))))
    assert (p["p50"], p["p95"], p["p99"], p["mean"], p["max"]) == pytest.approx((25.0, 38.5, 39.7, 25.0, 40.0))


def test_sustained_fps_leaves_out_warmup() -> None:
    clock = ThroughputClock()
    clock.start = 0.0
    # 5 slow warm-up frames (1 s each), then 20 frames at 10 fps.
    for t in [1.0, 2.0, 3.0, 4.0, 5.0] + [5.0 + 0.1 * i for i in range(1, 21)]:
        clock.mark(at=t)
    fps, frames, window = clock.sustained_fps(warmup=5)
    assert (frames, window) == (20, pytest.approx(2.0)) and fps == pytest.approx(10.0)
    assert clock.sustained_fps(warmup=0)[0] == pytest.approx(25 / 7.0)  # whole run
    assert clock.sustained_fps(warmup=30)[1] == 25  # too short for a window: falls back to the whole run
    assert clock.sustained_fps(warmup=24)[1:] == (1, pytest.approx(0.1))  # one frame after warm-up is a window
    clock.finished_at(9.0)  # the encoder's flush ended at 9 s: its held-back frames were done only then
    assert clock.sustained_fps(warmup=5)[1:] == (20, pytest.approx(4.0)) and clock.elapsed_s() == pytest.approx(9.0)
    clock.finished_at(1.0)  # never earlier than the last frame
    assert clock.elapsed_s() == pytest.approx(9.0)


def test_stage_clock_is_thread_safe() -> None:
    clock = StageClock("infer")
    threads = [threading.Thread(target=lambda: [clock.add(0.001, 2) for _ in range(1000)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert clock.items == 8000 and clock.calls == 4000 and clock.busy_s == pytest.approx(4.0)
    with clock.time(items=3):
        pass
    assert clock.items == 8003


def test_depth_gauge() -> None:
    gauge = DepthGauge(capacity=8)
    for depth in (0, 2, 4, 8):
        gauge.sample(depth)
    assert gauge.mean == 3.5 and gauge.max == 8


def test_recorder_freezes_a_consistent_record() -> None:
    rec = StatsRecorder(("decode", "infer", "encode"), queue_capacity=4, warmup_frames=2)
    rec.throughput.start = 0.0
    for i in range(10):
        rec.stage("decode").add(0.1)
        rec.stage("infer").add(0.5)
        rec.stage("encode").add(0.2)
        rec.queues["infer"].sample(i % 4)
        rec.latency.add_ms(100.0 + i)
        rec.mark_done(at=0.5 * (i + 1))
    rec.warn("truncated")
    rec.warn("truncated")  # once
    stats = rec.freeze(device="cpu", model="m", encoder="libx264")
    d = stats.to_dict()
    assert d["frames"] == 10 and d["seconds"] == 5.0 and d["fps"] == pytest.approx(2.0)
    assert d["warmup_frames"] == 2 and d["latency_ms"]["p50"] == pytest.approx(105.5)
    assert d["stages"]["infer"] == {"busy_s": 5.0, "items": 10, "ms_per_item": 500.0, "share": 1.0,
                                    "queue_mean": 1.3, "queue_max": 3}
    assert "queue_mean" not in d["stages"]["decode"]  # never sampled
    assert d["concurrency"] == pytest.approx(1.6)  # (1 + 5 + 2) s busy in 5 s
    assert d["warnings"] == ["truncated"] and d["encoder"] == "libx264" and d["model"] == "m"
    # The measured window: frames 3..10, completed from t = 1.0 to t = 5.0; busy time after warm-up only.
    window = d["window"]
    assert (window["frames"], window["seconds"]) == (8, pytest.approx(4.0))
    assert window["frames"] / window["seconds"] == pytest.approx(d["fps"])
    assert window["stages"]["decode"] == {"busy_s": pytest.approx(0.8), "share": pytest.approx(0.2)}
    assert window["stages"]["infer"] == {"busy_s": pytest.approx(4.0), "share": pytest.approx(1.0)}


def test_per_frame_figures_take_eight_bytes_a_frame() -> None:
    """Lists of floats took 65 bytes a frame: a camera left running for a week at 30 fps held 1.1 GiB."""
    import tracemalloc

    from videodeblur.pipeline.stats import LatencyLog, ThroughputClock

    tracemalloc.start()
    log, clock = LatencyLog(), ThroughputClock()
    for i in range(200_000):
        log.add_ms(i * 0.5)
        clock.mark(at=float(i))
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert held < 200_000 * 20
    assert log.percentiles()["p50"] == 49_999.75 and clock.count == 200_000
