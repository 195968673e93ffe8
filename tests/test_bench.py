"""The benchmark's numbers are consistent with themselves; no test asserts a speed."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from videodeblur.bench import MODES, BenchOptions, BenchResult, run_bench
from videodeblur.errors import ConfigError
from videodeblur.measure import FrameClock

WIDTH, HEIGHT, FRAMES, WARMUP = 96, 64, 12, 3
RUN_FIELDS = {"mode", "model", "batch", "fps", "frames", "seconds", "warmup_frames", "warmup_s", "latency_ms",
              "stages", "queue_depth", "peak_rss_mb", "cuda_peak_mb", "timing"}


@pytest.fixture(scope="module")
def result() -> BenchResult:
    options = BenchOptions(model="lprn-fast", width=WIDTH, height=HEIGHT, frames=FRAMES, batches=(1, 4),
                           device="cpu", warmup_frames=WARMUP, compare=True, peers=("mimo-unet",),
                           min_peer_iterations=2, peer_budget_s=0.0)
    return run_bench(options)


def test_json_has_every_field(result: BenchResult) -> None:
    data = json.loads(json.dumps(result.to_dict()))
    assert {"machine", "model", "size", "runs", "bound", "overlap", "drift", "peers", "device", "precision", "tile",
            "auto_tile", "compile", "cuda_graphs"} <= set(data)
    assert data["tile"] is None and data["auto_tile"] == []  # small frames run whole
    assert data["compile"] is False and data["cuda_graphs"] is False  # how the network ran, as asked
    # 9 frames measured, but every run goes over them for half a second: "fps from so few are noise"
    # was said of windows that are not short; only a file run's window still short is (see its test)
    assert all(" measured under the 0.5 s of the stage runs: " in note for note in data["notes"]), data["notes"]
    assert {"cpu", "cores", "gpu", "torch", "av", "heap"} <= set(data["machine"])
    assert data["machine"]["cores"] >= 1 and data["machine"]["gpu"] is None
    assert data["model"] == "lprn-fast" and data["size"] == [WIDTH, HEIGHT]
    assert data["device"] == "cpu" and data["precision"] == "fp32"
    assert [r["mode"] for r in data["runs"]] == ["decode", "model", "model", "network", "encode", "sequential",
                                                 "pipelined", "network"]
    assert [r["batch"] for r in data["runs"] if r["mode"] == "model"] == [1, 4]
    for run in data["runs"]:
        assert RUN_FIELDS <= set(run), run["mode"]
        assert run["mode"] in MODES
        assert {"p50", "p95", "p99"} <= set(run["latency_ms"])
        assert run["peak_rss_mb"] > 0 and run["cuda_peak_mb"] is None
    assert data["bound"] in ("decode", "model", "encode")


def test_model_and_pipelined_runs_use_the_engines_video_uses(result: BenchResult) -> None:
    """On a CPU with two threads or more both run two engines side by side, as ``video`` does."""
    from videodeblur.pipeline.engine import usable_cores

    lanes = 2 if usable_cores() >= 2 else 1
    assert {r.extra["engines"] for r in result.runs if r.mode == "model"} == {lanes}
    device = result.run("pipelined").extra["device"]
    assert device.endswith("× 2 engines") if lanes == 2 else "engines" not in device
    from videodeblur.cli.bench import format_table

    said = "(fp32), 2 engines side by side in the model and pipelined runs," in format_table(result.to_dict())
    assert said == (lanes == 2)


def test_numbers_are_consistent(result: BenchResult) -> None:
    for run in result.to_dict()["runs"]:
        assert run["frames"] >= 1 and run["seconds"] > 0
        assert run["fps"] == pytest.approx(run["frames"] / run["seconds"], rel=1e-3, abs=6e-4), run["mode"]  # fps: 3 decimals
        latency = run["latency_ms"]
        assert 0 <= latency["p50"] <= latency["p95"] <= latency["p99"], run["mode"]
        assert run["stages"], run["mode"]
        for stage in run["stages"].values():
            assert 0.0 <= stage["share"] <= 1.0
            assert stage["busy_s"] >= 0
    sequential = result.run("sequential")
    assert set(sequential.stages) == {"decode", "infer", "encode"}
    assert sum(s["share"] for s in sequential.stages.values()) <= 1.0 + 1e-6  # one thread: no overlap


def test_bound_and_overlap_follow_from_the_stage_runs(result: BenchResult) -> None:
    pipeline_batch = result.run("pipelined").batch
    assert pipeline_batch == max((r for r in result.runs if r.mode == "model"), key=lambda r: r.fps).batch
    stage_fps = {"decode": result.run("decode").fps, "model": result.run("model", batch=pipeline_batch).fps,
                 "encode": result.run("encode").fps}
    assert result.bound == min(stage_fps, key=stage_fps.__getitem__)
    assert result.overlap == pytest.approx(result.run("pipelined").fps / stage_fps[result.bound])


def test_drift_compares_the_model_run_before_and_after_the_file_runs(result: BenchResult) -> None:
    """The model run is repeated after the pipelined run (not added to ``runs``); ``change`` is the
    relative difference, and the table says it, with a caution only when it is over 10 %."""
    from videodeblur.cli.bench import format_table

    drift = json.loads(json.dumps(result.to_dict()))["drift"]
    before = result.run("model", batch=result.run("pipelined").batch).fps
    assert drift["model_fps_before"] == pytest.approx(before, abs=1e-3) and drift["model_fps_after"] > 0
    assert drift["change"] == pytest.approx(drift["model_fps_after"] / drift["model_fps_before"] - 1, abs=1e-3)
    assert sum(r.mode == "model" for r in result.runs) == 2  # batches 1 and 4, not the repeat
    table = format_table(result.to_dict())
    assert f"model-only {drift['model_fps_before']:.1f} fps before the file runs, {drift['model_fps_after']:.1f} after" in table
    assert ("ratios between runs are uncertain" in table) == (abs(drift["change"]) > 0.10)
    steady = {**result.to_dict(), "drift": {**drift, "change": 0.05}}
    moved = {**result.to_dict(), "drift": {**drift, "change": -0.2}}
    assert "uncertain" not in format_table(steady) and "(-20%); it moved more than 10%" in format_table(moved)


def test_warmup_frames_are_left_out_of_the_window(result: BenchResult) -> None:
    for mode in ("decode", "encode"):  # the clip over and over after the warm-up (see the repeats test)
        run = result.run(mode)
        assert (run.warmup_frames, run.frames) == (WARMUP, FRAMES * run.extra["repeats"])
        assert run.warmup_s > 0
    for batch in (1, 4):
        run = result.run("model", batch=batch)
        assert run.warmup_frames % batch == 0 and run.warmup_frames >= WARMUP  # whole batches
        assert run.frames % batch == 0 and run.frames >= batch
    sequential = result.run("sequential")
    assert sequential.warmup_frames == -(-WARMUP // sequential.batch) * sequential.batch  # whole batches
    assert sequential.frames + sequential.warmup_frames == FRAMES * sequential.extra["repeats"]
    pipelined = result.run("pipelined")
    assert pipelined.frames + pipelined.warmup_frames == FRAMES * pipelined.extra["repeats"]
    assert pipelined.warmup_frames == sequential.warmup_frames  # the same whole batches


def test_engine_warmup_stays_out_of_the_model_window_with_no_warmup_frames() -> None:
    """``--warmup 0`` measures every frame, but never the engine's own warm-up (cudnn autotune,
    compilation): the model run is one busy stage, so its window is nearly all busy time (with the
    engine's two warm-up batches inside it, 8 of 10 batches' time: a share of about 0.8). The 6-frame
    clip is gone round again: four batches an engine at least, two engines, for half a second at least."""
    options = BenchOptions(model="lprn-fast", width=WIDTH, height=HEIGHT, frames=6, batches=(1,), device="cpu",
                           warmup_frames=0)
    model = run_bench(options).run("model", batch=1)
    assert model.warmup_frames == 0 and model.frames >= 8 and model.extra["engine_warmup_s"] > 0
    assert model.stages["infer"]["share"] > 0.9


def test_batches_too_big_for_the_clip_are_left_out_of_the_file_runs(make_clip) -> None:
    """Where the file runs read the clip once (an --input longer than --frames)."""
    clip = make_clip("thirty.mp4", width=64, height=48, frames=30)
    said: list[str] = []
    result = run_bench(BenchOptions(model="lprn-fast", input=clip, frames=5, batches=(2, 8), device="cpu"), said.append)
    model = result.run("model", batch=8)
    # the model runs cycle the clip: four batches an engine measured (one batch, overlapping the warm-up
    # in the other engine, was a window of a few ms: 3225 fps, 47383 when run again)
    assert model.frames >= 8 * 4 * model.extra["engines"]
    assert result.run("sequential").batch == result.run("pipelined").batch == 2
    assert any("batch 8 is left out" in line for line in said)
    warmup = 1  # a fifth of the 5 frames measured
    assert result.run("decode").warmup_frames == warmup and result.run("pipelined").warmup_frames == 2
    with pytest.raises(ConfigError, match="5 frames are too few for batch 8"):
        run_bench(BenchOptions(model="lprn-fast", input=clip, frames=5, batches=(8,), device="cpu"), said.append)


def test_a_batch_bigger_than_a_clip_the_file_runs_play_over_is_measured_there() -> None:
    """--frames 4 --batch 8 was refused (the warm-up of whole batches took every frame), and --batch 1,8
    left 8 out of the file runs, though they play the clip over and over now."""
    result = run_bench(BenchOptions(model="lprn-fast", width=64, height=48, frames=4, batches=(8,), device="cpu",
                                    warmup_frames=1))
    for mode in ("sequential", "pipelined"):
        run = result.run(mode)
        assert run.batch == 8 and run.warmup_frames == 8 and run.frames >= 1, mode
        assert run.frames + run.warmup_frames == 4 * run.extra["repeats"], mode


def test_peers_and_encoder_are_checked_before_any_run(make_clip, run_cli) -> None:
    assert BenchOptions(peers=("NAFNet-32", "MIMO-UNet+")).peers == ("nafnet-32", "mimo-unet+")
    with pytest.raises(ConfigError, match="unknown peer 'bogus'"):
        BenchOptions(peers=("bogus",))
    clip = make_clip("a.mp4", width=64, height=48, frames=6)
    out = run_cli("bench", "--input", clip, "--device", "cpu", "--frames", 6, "--encoder", "nosuchenc")
    assert out.exit_code == 1 and "unknown encoder 'nosuchenc'" in out.stderr
    assert "bench: decode" not in out.stderr  # refused before the first run


def test_an_encoder_mp4_cannot_hold_is_timed_in_matroska(make_clip, run_cli) -> None:
    clip = make_clip("a.mp4", width=64, height=48, frames=6)
    out = run_cli("bench", "--input", clip, "--model", "lprn-fast", "--device", "cpu", "--frames", 6, "--batch", 2,
                  "--encoder", "libvpx", "--json")
    assert out.exit_code == 0, out.stderr
    runs = json.loads(out.stdout)["runs"]
    assert {r["encoder"] for r in runs if r["mode"] in ("encode", "pipelined")} == {"libvpx"}


def test_compare_measures_peers_on_the_same_input(result: BenchResult) -> None:
    ours, peer = result.run("network", model="lprn-fast"), result.run("network", model="mimo-unet")
    assert peer.frames >= 2 and peer.batch == ours.batch == 1
    assert result.peers["mimo-unet"]["parameters"] == pytest.approx(6.807e6, rel=0.01)
    assert result.peers["mimo-unet"]["speed_ratio"] == pytest.approx(ours.fps / peer.fps, rel=0.01)


def test_frame_clock_window_cuts_warmup_and_its_stage_time() -> None:
    clock = FrameClock()
    clock.start = 0.0
    for i in range(5):  # frame i decodes during [i, i + 0.5] and completes at i + 1
        clock.begin(1, at=float(i))
        clock.stage("decode", float(i), i + 0.5)
        clock.complete(1, at=i + 1.0)
    window = clock.window(2, ("decode", "encode"))
    assert (window.frames, window.warmup_frames) == (3, 2)
    assert window.seconds == pytest.approx(3.0) and window.fps == pytest.approx(1.0)
    assert window.warmup_s == pytest.approx(2.0)
    assert window.latencies_ms == pytest.approx((1000.0, 1000.0, 1000.0))
    assert window.stage_busy_s == pytest.approx({"decode": 1.5, "encode": 0.0})
    with pytest.raises(ValueError):
        clock.window(5)


def test_the_bench_window_is_the_runners_window() -> None:
    """Single-threaded runs cut warm-up with FrameClock, the pipelined run (the runner) with ThroughputClock:
    the same completions give the same window (only a warm-up leaving nothing differs: an error here)."""
    from videodeblur.pipeline.stats import ThroughputClock

    completions = [1.0, 1.0, 2.5, 3.0, 3.0, 4.0, 7.0]  # batches complete together
    clock, throughput = FrameClock(), ThroughputClock()
    clock.start = throughput.start = 0.0
    for t in completions:
        clock.begin(1, at=0.0)
        clock.complete(1, at=t)
        throughput.mark(at=t)
    for warmup in range(len(completions)):
        window = clock.window(warmup)
        fps, frames, seconds = throughput.sustained_fps(warmup)
        assert (window.frames, window.seconds, window.fps) == pytest.approx((frames, seconds, fps)), warmup
    with pytest.raises(ValueError):
        clock.window(len(completions))
    assert throughput.sustained_fps(len(completions))[1:] == (len(completions), 7.0)


LATENCIES = [10.0, 20.0, 30.0, 40.0]
FIGURES = {"p50": 25.0, "p95": 38.5, "p99": 39.7, "mean": 25.0, "max": 40.0}  # numpy's default rule


def _recorded_run(latencies: list[float]):
    """The ``RunStats`` the ``video`` runner freezes for a run whose first frame (500 ms) is warm-up."""
    from videodeblur.pipeline.stats import StatsRecorder

    recorder = StatsRecorder(("decode", "infer", "encode"), warmup_frames=1)
    recorder.throughput.start = 0.0
    for i, ms in enumerate([500.0, *latencies]):
        recorder.latency.add_ms(ms)
        recorder.mark_done(at=i + 1.0)
    return recorder.freeze()


def test_every_run_summarises_latencies_by_the_rule_video_uses() -> None:
    """bench's runs took nearest-rank values (p50 20, p95 40 of 10/20/30/40 ms) where ``video --json``
    interpolated (25, 38.5): bench's pipelined run and ``video`` gave two p50s for the same frames."""
    import torch

    from videodeblur.bench.results import result_from_run_stats, result_from_window
    from videodeblur.measure import PeakMemory, Window

    memory = PeakMemory(torch.device("cpu"))
    window = Window(frames=4, seconds=4.0, warmup_frames=1, warmup_s=1.0, latencies_ms=tuple(LATENCIES),
                    stage_busy_s={})
    assert result_from_window("sequential", "m", 1, window, memory).latency_ms == pytest.approx(FIGURES)
    video = _recorded_run(LATENCIES).to_dict()
    assert video["latency_ms"] == pytest.approx(FIGURES)  # what `video --json` says
    assert result_from_run_stats(video, "m", 1, memory).latency_ms == pytest.approx(FIGURES)


def test_the_pipelined_run_takes_no_latency_of_another_run_in_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pipelined run swapped ``LatencyLog.add_ms`` on the class to see every latency: a run in another
    thread meanwhile (one Deblurrer used from several threads) had its latencies counted as the bench's."""
    import threading
    import types

    import torch

    import videodeblur.pipeline
    from videodeblur.bench.modes import pipelined_run
    from videodeblur.pipeline.stats import LatencyLog

    add_ms, patched = LatencyLog.add_ms, []

    def deblur_file(*args: object) -> object:
        patched.append(LatencyLog.add_ms is not add_ms)
        other = LatencyLog()  # the other run's own log, filled from its own thread
        thread = threading.Thread(target=lambda: [other.add_ms(1000.0) for _ in range(5)])
        thread.start()
        thread.join()
        return _recorded_run(LATENCIES)

    monkeypatch.setattr(videodeblur.pipeline, "deblur_file", deblur_file)
    defaults = videodeblur.pipeline.RunOptions()
    options = types.SimpleNamespace(encoder=defaults.encoder, crf=defaults.crf, preset=defaults.preset,
                                    queue_size=defaults.queue_size, engines=1)
    io = types.SimpleNamespace(options=options, frames=5, layout="rgb", clip=Path("in.mp4"), suffix=".mp4")
    engine = types.SimpleNamespace(device=torch.device("cpu"), model_name="m")
    result = pipelined_run(io, Path("out.mp4"), engine, 1, 1)  # type: ignore[arg-type]
    assert patched == [False] and LatencyLog.add_ms is add_ms
    assert result.latency_ms == pytest.approx(FIGURES) and (result.frames, result.warmup_frames) == (4, 1)


def test_input_file_is_measured_as_it_is(make_clip, run_cli) -> None:
    clip = make_clip("input.mp4", width=80, height=48, frames=10)
    out = run_cli("bench", "--input", clip, "--model", "lprn-fast", "--device", "cpu", "--frames", 8,
                  "--batch", "2", "--warmup", 2, "--json")
    assert out.exit_code == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["size"] == [80, 48] and data["input"] == str(clip)
    decode = next(r for r in data["runs"] if r["mode"] == "decode")
    assert decode["warmup_frames"] == 2 and decode["frames"] == 8 * decode["repeats"]  # 8 frames, not 10
    # 6 measured frames: said, in the JSON and the progress lines (fps from 1 frame read as 41 440)
    # said of the runs it is true of: the decode, model and network runs go over the 8 frames for 0.5 s
    few = ("only 6 frame(s) measured after 2 of warm-up in the sequential and pipelined runs, which read --input "
           "once (the other runs go over the clip again): their fps from so few are noise, not a rate; measure 12 or more")
    assert data["notes"][0] == few + " (--frames)" and f"bench: {few}" in out.stderr
    # 10 frames, not all measured: the file runs read the clip once, their few-ms windows flagged and said
    file_runs = [r for r in data["runs"] if r["mode"] in ("sequential", "pipelined")]
    assert [r["repeats"] for r in file_runs] == [1, 1]
    flagged = [r for r in file_runs if r.get("short_window")]
    assert all(r["seconds"] < 0.5 for r in flagged) and all(r["seconds"] >= 0.5 for r in file_runs if r not in flagged)
    if flagged:
        runs = " and ".join(f"the {r['mode']} run (6 frames in {r['seconds']:.3f} s)" for r in flagged)
        assert data["notes"][1:] == [f"{runs} measured under the 0.5 s of the stage runs: "
                                     f"{'its' if len(flagged) == 1 else 'their'} fps"
                                     f"{' and the overlap' if flagged[-1]['mode'] == 'pipelined' else ''} are noise, "
                                     "not a rate; measure more --frames"]
    short = run_cli("bench", "--input", clip, "--model", "lprn-fast", "--device", "cpu", "--frames", 40,
                    "--batch", "2", "--json")
    assert json.loads(short.stdout)["notes"][0] == f"{clip} holds 10 frames, fewer than --frames 40: those are measured"
    # a --warmup the input's frames cannot leave one after was lowered without a word
    lowered = run_cli("bench", "--input", clip, "--model", "lprn-fast", "--device", "cpu", "--frames", 40,
                      "--batch", "1", "--warmup", 15, "--json")
    assert lowered.exit_code == 0, lowered.stderr
    data = json.loads(lowered.stdout)
    assert data["notes"][1] == "--warmup 15 would leave none of the 10 frames to measure: 9 are warm-up"
    assert next(r for r in data["runs"] if r["mode"] == "decode")["warmup_frames"] == 9


def test_an_input_of_one_frame_is_refused_as_frames_1_is(make_clip, run_cli) -> None:
    """It ran with no warm-up (none can leave a frame to measure): decode "fps" were file opens a second
    (93.9, named the bound), and the cold first call was in every window."""
    clip = make_clip("one.mp4", width=64, height=48, frames=1)
    out = run_cli("bench", "--input", clip, "--model", "lprn-fast", "--device", "cpu", "--frames", 8, "--batch", 1)
    assert out.exit_code == 1 and "Traceback" not in out.stderr
    assert out.stderr.splitlines()[-1] == (f"videodeblur: error: {clip} holds 1 frame: a bench needs 2 at least "
                                           "(one warm-up, one measured); give a longer --input")
    assert "bench: decode" not in out.stderr  # before any run


def test_tile_runs_the_engine_in_tiles(run_cli) -> None:
    out = run_cli("bench", "--model", "lprn-fast", "--device", "cpu", "--size", "200x120", "--frames", 4,
                  "--batch", "1", "--warmup", 1, "--tile", 96, "--json")
    assert out.exit_code == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["tile"] == 96 and data["size"] == [200, 120]
    pipelined = next(r for r in data["runs"] if r["mode"] == "pipelined")
    assert pipelined["frames"] + pipelined["warmup_frames"] == 4 * pipelined["repeats"]
    table = run_cli("bench", "--model", "lprn-fast", "--device", "cpu", "--size", "200x120", "--frames", 3,
                    "--batch", "1", "--tile", 96)
    assert table.exit_code == 0, table.stderr
    assert "200x120 in 96px tiles" in table.stdout


def test_table_names_every_run_and_the_bound(run_cli) -> None:
    out = run_cli("bench", "--model", "lprn-fast", "--device", "cpu", "--size", "64x48", "--frames", 6,
                  "--batch", "2")
    assert out.exit_code == 0, out.stderr
    for word in ("decode", "model", "network", "encode", "sequential", "pipelined", "bound:"):
        assert word in out.stdout


@pytest.mark.parametrize("args, message", [
    (("--size", "640"), "WIDTHxHEIGHT"), (("--batch", "0"), "positive"),
    # 1,,4 ran 1,4 and 1,4,4 ran 1,4 without a word: a typo for 1,4,8 measured less than was meant
    (("--batch", "1,,4"), "'1,,4' has an empty item"), (("--batch", "1,4,"), "'1,4,' has an empty item"),
    (("--batch", "1,4,4,1"), "'1,4,4,1' gives batch 1, 4 more than once: give each size once")])
def test_bad_options_are_usage_errors(run_cli, args: tuple[str, ...], message: str) -> None:
    out = run_cli("bench", *args)
    assert out.exit_code == 2 and message in out.stderr and "Traceback" not in out.stderr
    assert out.stderr.count("Error:") == 1


def test_missing_input_is_one_line_error(run_cli, tmp_path: Path) -> None:
    out = run_cli("bench", "--input", tmp_path / "nope.mp4")
    assert out.exit_code == 1 and "does not exist" in out.stderr and "Traceback" not in out.stderr


def test_options_are_validated() -> None:
    with pytest.raises(ConfigError, match="--frames"):
        BenchOptions(frames=1)
    with pytest.raises(ConfigError, match=r"batch sizes must differ, got \[4, 1, 4\]"):
        BenchOptions(batches=(4, 1, 4))
    with pytest.raises(ConfigError, match="warm-up"):
        BenchOptions(frames=10, warmup_frames=10)
    with pytest.raises(ConfigError, match="preset must be one of"):  # it reached libx264 ("Invalid argument")
        BenchOptions(preset="turbo")
    with pytest.raises(ConfigError, match="frame size 7x5 is too small"):
        BenchOptions(width=7, height=5)
    assert BenchOptions(width=7, height=5, input=Path(__file__)).input  # --size is ignored with --input: not refused


@pytest.mark.cuda
def test_cuda_runs_use_events_and_report_gpu_memory() -> None:
    options = BenchOptions(model="lprn-rt", width=128, height=96, frames=12, batches=(2,), device="cuda",
                           warmup_frames=2)
    result = run_bench(options)
    data = result.to_dict()
    assert data["machine"]["gpu"]["name"]
    assert result.run("network").timing == "cuda-events"
    for mode in ("model", "network", "sequential", "pipelined"):
        assert result.run(mode).cuda_peak_mb > 0


def test_a_bench_says_when_frames_were_tiled_for_memory() -> None:
    """The figures of a run the engine tiled are tiled figures; the result must say so."""
    result = run_bench(BenchOptions(model="lprn-fast", width=WIDTH, height=HEIGHT, frames=6, batches=(2,), device="cpu",
                                    warmup_frames=1, memory_budget=200_000))
    (note,) = result.to_dict()["auto_tile"]
    assert f"of {WIDTH}x{HEIGHT}" in note and "run in tiles of 80 px" in note


def test_stage_runs_go_over_a_tiny_clip_until_their_window_is_long_enough(result: BenchResult) -> None:
    """12 frames decode in a few ms: a window that short swung decode's fps 30x between runs (5000 vs
    150), named decode the bound and gave an overlap of 2.2, a pipeline faster than its slowest stage."""
    from videodeblur.bench import MIN_STAGE_WINDOW_S
    from videodeblur.cli.bench import format_table

    for run in result.runs:  # 9 frames through the model took 30-100 ms, and its fps moved 3.5x on a run's repeat
        if run.mode == "model":
            assert run.seconds >= MIN_STAGE_WINDOW_S and run.frames % run.batch == 0, run.batch
    for mode in ("decode", "encode"):
        run = result.run(mode)
        assert run.seconds >= MIN_STAGE_WINDOW_S, mode
        assert run.extra["repeats"] > 1 and run.frames == FRAMES * run.extra["repeats"], mode
        assert run.stages[mode]["share"] > 0.5, mode  # the window is the stage's own work
    assert f"{FRAMES} frames, warm-up {WARMUP} |" in format_table(result.to_dict())  # the clip, not every pass


def test_file_runs_go_over_a_tiny_clip_until_their_window_is_long_enough(result: BenchResult) -> None:
    """The sequential and pipelined runs read the clip once: 9 measured frames of 96x64 were a window of
    a few ms, and one command's overlap read 0.7 to 1.8. They play it over and over now (one file, the
    video packets copied pass after pass); a window still under MIN_STAGE_WINDOW_S (a machine that sped up) is flagged
    and said, never passed off as a rate."""
    from videodeblur.bench import MIN_STAGE_WINDOW_S

    sequential, pipelined = result.run("sequential"), result.run("pipelined")
    repeats = sequential.extra["repeats"]
    assert repeats > 1 and pipelined.extra["repeats"] == repeats
    for run in (sequential, pipelined):
        assert run.frames + run.warmup_frames == FRAMES * repeats, run.mode
        short = run.seconds < MIN_STAGE_WINDOW_S
        assert run.extra.get("short_window", False) == short, run.mode
        assert any(f"the {run.mode} run ({run.frames} frames in " in note for note in result.notes) == short
    from videodeblur.cli.bench import format_table

    data = result.to_dict()  # the table marks a short window on the run's row, not only in the notes below
    data["runs"] = [{**r, "short_window": True, "seconds": 0.0123} if r["mode"] == "pipelined" else
                    {k: v for k, v in r.items() if k != "short_window"} for r in data["runs"]]
    rows = {line.split()[0]: line for line in format_table(data).splitlines()[2:] if line.split()[:1] in (["sequential"], ["pipelined"])}
    assert rows["pipelined"].endswith(f"({repeats} passes) (window 0.012 s: too short, see the note)")
    assert "too short" not in rows["sequential"]


def test_the_decode_run_reads_a_tiny_clip_looped_to_64_frames_an_opening(result: BenchResult) -> None:
    """Each pass opened the file (about 1.2 ms here): over 12 frames of 96x64 that cost more than the
    decoding, and read decode at a third of its rate, where the file runs open their input once."""
    decode = result.run("decode")
    assert decode.extra["pass_frames"] == 72  # 6 copies of the 12 frames: 64 at least
    assert decode.extra["repeats"] % 6 == 0 and decode.frames == FRAMES * decode.extra["repeats"]


def test_the_network_run_lasts_as_long_as_the_stage_runs(result: BenchResult) -> None:
    """It timed the clip's 9 frames after warm-up, once each: a window of a few ms. Now at least those,
    then more until MIN_STAGE_WINDOW_S or 200 calls."""
    from videodeblur.bench import MIN_STAGE_WINDOW_S

    ours = result.run("network", model="lprn-fast")
    assert ours.frames >= FRAMES - WARMUP
    assert ours.seconds >= MIN_STAGE_WINDOW_S or ours.frames == 200


def test_the_file_runs_clip_is_sized_by_the_slowest_stage(make_clip, tmp_path: Path) -> None:
    """Enough passes that the pipeline, at the slowest stage's fps at best, fills MIN_STAGE_WINDOW_S after
    its warm-up; one pass where the clip is not the whole file (an --input longer than --frames)."""
    import dataclasses

    import torch

    from videodeblur.bench.clip import prepare_input
    from videodeblur.bench.run import _file_runs_clip

    clip = make_clip("seven.mp4", width=64, height=48, frames=7)
    io = dataclasses.replace(prepare_input(BenchOptions(model="lprn-fast", input=clip, frames=7, device="cpu"),
                                           torch.device("cpu"), tmp_path, print), frames=7)
    said: list[str] = []
    looped = _file_runs_clip(io, True, bound_fps=100.0, warmup=4, tmpdir=tmp_path, say=said.append)
    # 4 + 0.5 s at twice 100 fps = 104 frames: 15 passes (twice: a loaded machine that sped up fell short)
    assert looped.frames == 105 and looped.clip == tmp_path / "file-runs.mp4"
    assert said == ["the file runs play the clip 15 times over (105 frames), for a window of 0.5 s at least"]
    assert _file_runs_clip(io, False, bound_fps=100.0, warmup=4, tmpdir=tmp_path, say=said.append) is io
    assert _file_runs_clip(io, True, bound_fps=3.0, warmup=4, tmpdir=tmp_path, say=said.append) is io  # 7 frames fit


@pytest.mark.parametrize("kind", [dict(width=65, height=47, audio=True, rotation=90), dict(width=64, height=48, vfr=True)])
def test_a_looped_clip_plays_every_frame_of_every_pass(make_clip, tmp_path: Path, kind: dict) -> None:
    """B-frames (pts reordered), an odd size, audio, a rotation, variable frame times: each pass of the
    copy decodes the clip's frames, all of them, in order, with times that keep going up."""
    import torch

    from videodeblur.bench.clip import decode_all, looped_clip, prepare_input

    clip = make_clip("clip.mp4", frames=9, **kind)
    io = prepare_input(BenchOptions(model="lprn-fast", input=clip, frames=9, device="cpu"), torch.device("cpu"),
                       tmp_path, print)
    frames, _ = decode_all(io)
    looped = looped_clip(io, 3, tmp_path / "looped")
    assert looped is not None and looped.frames == 27
    again, pts = decode_all(looped)
    assert len(again) == 27 and all(np.array_equal(a, frames[i % 9]) for i, a in enumerate(again))
    assert all(b > a for a, b in zip(pts, pts[1:]))


def test_every_run_reports_the_same_latency_figures(result: BenchResult) -> None:
    """The pipelined run had p50/p95/p99 only; every other run has the mean and max too."""
    for run in result.to_dict()["runs"]:
        latency = run["latency_ms"]
        assert set(latency) == {"p50", "p95", "p99", "mean", "max"}, run["mode"]
        assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"], run["mode"]
        assert latency["mean"] <= latency["max"], run["mode"]


def test_frames_that_would_not_fit_in_memory_are_refused(make_clip, monkeypatch: pytest.MonkeyPatch) -> None:
    """The runs hold the decoded clip: 1000 frames of 4K (25 GB) were killed by the kernel with nothing
    said. (The memory free is faked small.)"""
    from videodeblur.pipeline import memory

    monkeypatch.setattr(memory, "available_bytes", lambda device: 200_000)
    clip = make_clip("a.mp4", width=64, height=48, frames=20)
    with pytest.raises(ConfigError, match=r"^--frames 20 of 64x48 would hold about 0 MiB of decoded frames, more "
                                          r"than half the memory free \(0 MiB\); measure 10 or fewer$"):
        run_bench(BenchOptions(model="lprn-fast", input=clip, frames=20, batches=(1,), device="cpu"))
    with pytest.raises(ConfigError, match=r"^--frames 300 of 3840x2160 would hold about 7\.0 GiB"):  # before the clip is made
        run_bench(BenchOptions(model="lprn-fast", width=3840, height=2160, frames=300, batches=(1,), device="cpu"))


def test_the_advice_to_measure_more_frames_is_enough_when_followed() -> None:
    """The default warm-up grows with --frames: the note said 'measure 11 or more' to a --frames 4 run,
    and --frames 11 then measured 9 and said 'measure 12 or more'."""
    from videodeblur.bench.run import _measure_notes

    options = BenchOptions(model="lprn-fast", width=64, height=48, frames=4, device="cpu")
    advice = int(_measure_notes(options, 4, options.warmup_for(4))[0].split("measure ")[-1].split()[0])
    followed = BenchOptions(model="lprn-fast", width=64, height=48, frames=advice, device="cpu")
    assert advice == 12 and _measure_notes(followed, advice, followed.warmup_for(advice)) == []
    eleven = BenchOptions(model="lprn-fast", width=64, height=48, frames=11, device="cpu")
    assert _measure_notes(eleven, 11, eleven.warmup_for(11))  # one short of the advice still says so


def test_ctrl_c_during_a_run_exits_130_with_one_line() -> None:
    """Ctrl-C as the model run went: click answered the KeyboardInterrupt with a blank line before
    "videodeblur: interrupted" (video and camera raise Abort for that reason); the process must end
    promptly, no thread of a run (the engine lanes, the runner's stages) holding it."""
    import os
    import signal
    import subprocess
    import sys

    from conftest import REPO_ROOT

    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "videodeblur", "bench", "--model", "lprn-fast", "--device", "cpu",
                             "--size", "64x48", "--frames", "400", "--batch", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=str(REPO_ROOT))
    try:
        seen = []
        for line in proc.stderr:  # type: ignore[union-attr]
            seen.append(line)
            if line.startswith("bench: model, batch 1"):
                break
        proc.send_signal(signal.SIGINT)
        out, rest = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    said = "".join(seen) + rest
    assert proc.returncode == 130 and out == "", said
    lines = said.splitlines()
    assert lines[-1] == "videodeblur: interrupted" and lines[-2].startswith("bench: ") and "" not in lines, said


@pytest.mark.parametrize("size", ["16400x16", "16x40000"])
def test_a_size_libx264_cannot_encode_is_a_one_line_error(run_cli, size: str) -> None:
    """It was "internal error: ExternalError: ... avcodec_open2(libx264 ...)", after the picture was drawn."""
    out = run_cli("bench", "--model", "lprn-fast", "--device", "cpu", "--size", size, "--frames", 2)
    assert out.exit_code == 1 and out.stderr.splitlines()[-1] == (
        f"videodeblur: error: libx264 cannot encode a {size} test clip (it takes at most 16384 pixels a side, "
        "and FFmpeg about 268 million a frame): use a smaller --size"), out.stderr
    assert "bench: decode" not in out.stderr


def test_frames_too_big_to_hold_two_are_not_told_to_measure_two(monkeypatch: pytest.MonkeyPatch) -> None:
    """--size 100000x100000 --frames 3 was told 'measure 2 or fewer', and 2 would not fit either."""
    from videodeblur.pipeline import memory

    monkeypatch.setattr(memory, "available_bytes", lambda device: 100_000)
    with pytest.raises(ConfigError, match=r"^--frames 3 of 160x96 would hold about 0 MiB of decoded frames, more than "
                                          r"half the memory free \(0 MiB\); even 2 frames of that size would not fit: "
                                          r"measure a smaller size$"):
        run_bench(BenchOptions(model="lprn-fast", width=160, height=96, frames=3, batches=(1,), device="cpu"))


def test_the_test_clip_is_drawn_without_whole_grid_float_arrays(tmp_path: Path) -> None:
    """Its background was drawn from np.mgrid's int64 grids and float32 copies of them: writing a
    4000x3000 clip peaked 32 bytes a pixel over the import; numpy's share of that was 28 or more."""
    import tracemalloc

    import av

    from videodeblur.bench import write_test_clip

    width, height = 1000, 600
    tracemalloc.start()
    try:
        clip = write_test_clip(tmp_path / "clip.mp4", width, height, 2)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 12 * width * height
    with av.open(str(clip)) as container:  # the same picture as before: the square over the texture
        first = next(container.decode(video=0)).to_ndarray(format="rgb24")
    assert first.shape == (height, width, 3)
    gradient = first[height - 40, width - 40, :2].astype(int)  # red across, green down, clear of the square
    assert np.abs(gradient - [40 + 150 * (width - 40) // (width - 1), 40 + 150 * (height - 40) // (height - 1)]).max() <= 6




def test_the_table_says_how_the_network_ran_and_its_compile_time(result: BenchResult) -> None:
    """With --compile the JSON said compile: true and a model run's engine_warmup_s of 92 s, and the
    table said neither: "(fp32)" and a warm-up of 0.01 s, the warm-up frames alone."""
    from videodeblur.cli.bench import format_table

    data = result.to_dict()
    runs = [{**run, "warmup_s": 0.25, "engine_warmup_s": 92.0} if run["mode"] == "model" else run for run in data["runs"]]
    table = format_table({**data, "compile": True, "cuda_graphs": True, "runs": runs})
    assert table.startswith("lprn-fast on cpu (fp32, torch.compile, CUDA graphs), ")
    model_rows = [line.split() for line in table.splitlines() if line.startswith("model ")]
    assert len(model_rows) == 2 and all(row[7] == "92.25" for row in model_rows)  # the warm-up s column
    plain = format_table(data)
    assert plain.startswith("lprn-fast on cpu (fp32), ")
    network = next(line.split() for line in plain.splitlines() if line.startswith("network "))
    assert network[7] == f"{result.run('network').warmup_s:.2f}"  # its first call (compilation) is in it already


def test_an_input_that_is_not_a_regular_file_is_not_said_missing(run_cli, tmp_path: Path) -> None:
    """/dev/null and a named pipe were "does not exist"; the runs read the input again and again."""
    import os

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for path in (Path(os.devnull), fifo):
        out = run_cli("bench", "--input", path, "--device", "cpu")
        assert out.exit_code == 1 and out.stderr == (f"videodeblur: error: input {str(path)!r} is not a regular file: "
                                                     "give a path to a video file (every run reads it again from "
                                                     "the start)\n"), out.stderr


def test_the_network_run_feeds_the_engine_a_tensor_made_in_inference_mode() -> None:
    """The engine runs its network on tensors made under torch.inference_mode; the network run's input
    was made outside it, and with --compile that failed the compiled graph's guards ("dispatch key
    set mismatch"): the run recompiled and timed that second compilation, not the engine's."""
    import types

    import torch

    from videodeblur.bench.network import network_run

    seen: list[bool] = []

    def infer(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.is_inference())
        return x

    engine = types.SimpleNamespace(device=torch.device("cpu"), dtype=torch.float32, infer=infer, model_name="m",
                                   options=types.SimpleNamespace(channels_last=True, cuda_graphs=False),
                                   model=types.SimpleNamespace(network=torch.nn.Conv2d(3, 3, 1)))
    io = types.SimpleNamespace(info=types.SimpleNamespace(height=8, width=8))
    run = network_run(engine, io, warmup_iterations=2, iterations=3)  # type: ignore[arg-type]
    assert seen == [True] * 5 and run.frames == 3


def test_the_network_run_uses_the_batch_1_engine_where_there_is_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """--batch 2,1 timed the network at batch 1 on the batch-2 engine: with --compile, a recompilation
    for the new shape (and torch marked the batch dimension dynamic) instead of batch 1's own graph."""
    import videodeblur.bench.run as bench

    sizes: list[int] = []
    network_run = bench.network_run

    def spy(engine, *args, **kwargs):  # type: ignore[no-untyped-def]
        sizes.append(engine.batch_size)
        return network_run(engine, *args, **kwargs)

    monkeypatch.setattr(bench, "network_run", spy)
    run_bench(BenchOptions(model="lprn-fast", width=64, height=48, frames=6, batches=(2, 1), device="cpu",
                           warmup_frames=1, engines=1))
    assert sizes == [1]


def test_a_10_bit_input_is_said_to_be_measured_at_8_bits(make_clip, run_cli) -> None:
    """Every run decodes and writes 8-bit (one encoder timed for all), where `video` keeps a 10-bit
    source at 10 bits: the figures were of another pipeline, without a word."""
    clip = make_clip("ten.mp4", width=64, height=48, frames=6, pix_fmt="yuv420p10le")
    out = run_cli("bench", "--input", clip, "--model", "lprn-fast", "--device", "cpu", "--frames", 6, "--batch", 1,
                  "--json")
    assert out.exit_code == 0, out.stderr
    assert json.loads(out.stdout)["notes"][0] == (f"{clip} is 10-bit: every run decodes and encodes it at 8 bits, "
                                                  "where `video` writes 10-bit output (more to decode and encode)")


def test_call_times_time_each_call_after_the_untimed_warm_up() -> None:
    """The scripts under benchmarks/ time one step alone with it: ``repeat`` times, none of them the warm-up's."""
    from videodeblur.measure import call_times_s

    calls: list[float] = []
    times = call_times_s(lambda: calls.append(time.sleep(0.002) or 1.0), repeat=3, warmup=2)
    assert len(calls) == 5 and len(times) == 3
    assert all(0.002 <= t < 1.0 for t in times)
