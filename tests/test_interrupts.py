"""Stops at awkward moments: a signal as a frame is handed over, as a run ends, as its result is said,
while a second one is finalised, while the commands load, after the work is done; and resuming what
such a stop left (a one-frame Matroska file, a training run stopped before its weights were saved)."""
from __future__ import annotations

import contextlib
import csv
import json
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest
import torch

from videodeblur.errors import ConfigError
from videodeblur.pipeline import Engine, EngineOptions, RunInterrupted, RunOptions, deblur_file

from _clips_video import decode
from conftest import REPO_ROOT, scored_pairs, tiny_recipe

CPU = ("--model", "lprn-fast", "--device", "cpu")


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.from_name("lprn-fast", EngineOptions(device="cpu", batch_size=2))


@contextlib.contextmanager
def _no_stray_interrupt() -> Iterator[None]:
    """A bare KeyboardInterrupt out of the code under test fails the test (pytest would take it for a
    Ctrl-C of its own and stop the session)."""
    try:
        yield
    except KeyboardInterrupt as err:
        pytest.fail(f"a signal escaped as a bare KeyboardInterrupt: {err!r}")


def test_a_signal_as_a_frame_is_queued_does_not_write_it_twice(engine: Engine, make_clip, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C landing just after a deblurred frame went into the writer's queue, before the engine
    loop struck it off its own list: the stop handed it over again, the writer refused the repeated
    time, and the run failed ("frame pts ... is not after the previous frame's") instead of leaving
    a file. The run now only notes signals: the file holds each frame once, in order."""
    from videodeblur.pipeline import threaded_run

    src = make_clip("a.mp4", width=64, height=48, frames=30)
    main = threading.main_thread()

    class SignalAfterTenthPut(queue.Queue):
        puts = 0

        def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
            super().put(item, block, timeout)
            if threading.current_thread() is main and item is not threaded_run._END:
                SignalAfterTenthPut.puts += 1
                if SignalAfterTenthPut.puts == 10:
                    signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(threaded_run.queue, "Queue", SignalAfterTenthPut)
    out = tmp_path / "out.mp4"
    with _no_stray_interrupt(), pytest.raises(RunInterrupted) as stopped:
        deblur_file(src, out, engine, RunOptions(queue_size=2))
    written = stopped.value.stats.extra["frames_written"]
    got, source = decode(out), decode(src)
    assert 10 <= written < 30 and len(got.frames) == written
    assert got.pts_seconds == source.pts_seconds[:written]


def test_a_one_frame_matroska_output_resumes(engine: Engine, make_clip, tmp_path: Path) -> None:
    """A Matroska output with sound stopped after its first frame: FFmpeg gives its video the file's
    start (the sound's, 21 ms before the picture), and --resume refused it as "made from another
    video". The frames' times now come from the first frame itself."""
    src = make_clip("a.mp4", width=64, height=48, frames=12, audio=True)
    straight, out = tmp_path / "straight.mkv", tmp_path / "out.mkv"
    deblur_file(src, straight, engine)
    first = deblur_file(src, out, engine, RunOptions(max_frames=1))
    assert first.extra["frames_written"] == 1
    resumed = deblur_file(src, out, engine, RunOptions(resume=True))
    assert (resumed.extra["resumed_frames"], resumed.extra["frames_written"]) == (1, 12)
    got, expected = decode(out), decode(straight)
    assert got.pts_seconds == expected.pts_seconds and len(got.audio) == len(expected.audio)


def test_a_signal_while_a_resumed_output_is_checked_leaves_no_old_copy(engine: Engine, make_clip, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """--resume writes the output anew beside the old one (out.partial.mp4) and removes that once the
    new one holds its frames, which takes counting them (seconds for a long MKV). A Ctrl-C then left
    the old copy beside the finished output, and the next --resume took its frames over the new
    ones. Now the stop waits for the count: the old copy is gone, and the stop is reported."""
    from videodeblur.pipeline import runner

    src = make_clip("a.mp4", width=64, height=48, frames=12)
    out = tmp_path / "out.mp4"
    deblur_file(src, out, engine, RunOptions(max_frames=5))
    counting = runner.frames_in

    def ctrl_c_while_counting(path: Path) -> int:
        signal.raise_signal(signal.SIGINT)
        return counting(path)

    monkeypatch.setattr(runner, "frames_in", ctrl_c_while_counting)
    with _no_stray_interrupt(), pytest.raises(RunInterrupted) as stopped:
        deblur_file(src, out, engine, RunOptions(resume=True))
    assert stopped.value.stats.extra["frames_written"] == len(decode(out).frames) == 12
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4", "out.mp4"]


def _ctrl_c_after_each_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C the instant each run has finished, before the command says anything of it."""
    import videodeblur.pipeline as pipeline

    finished = pipeline.deblur_file

    def then_ctrl_c(*args: Any, **kwargs: Any) -> Any:
        stats = finished(*args, **kwargs)
        signal.raise_signal(signal.SIGINT)
        return stats

    monkeypatch.setattr(pipeline, "deblur_file", then_ctrl_c)


def test_a_signal_as_the_run_ends_still_says_what_was_written(run_cli, make_clip, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C the instant the run finished, before its summary: the command said only "videodeblur:
    interrupted" (exit 130), not that the file was whole; now it says what the file holds."""
    src = make_clip("a.mp4", width=64, height=48, frames=6)
    _ctrl_c_after_each_run(monkeypatch)
    out = tmp_path / "out.mp4"
    result = run_cli("video", src, "-o", out, *CPU)
    assert result.exit_code == 130 and len(decode(out).frames) == 6
    assert result.stderr_lines == [f"videodeblur: interrupted: {out} holds 6 frames (--resume goes on from there)"]


def test_a_stop_in_a_batch_says_how_many_inputs_were_not_begun(run_cli, make_clip, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C during the first of three videos said what its output holds and nothing of the two
    after it, which were left without a word (--resume on the folder does them too)."""
    for name in ("a", "b", "c"):
        make_clip(f"clips/{name}.mp4", width=64, height=48, frames=4)
    _ctrl_c_after_each_run(monkeypatch)
    out = tmp_path / "out"
    result = run_cli("video", tmp_path / "clips", "-o", out, *CPU)
    assert result.exit_code == 130 and sorted(p.name for p in out.iterdir()) == ["a.mp4"]
    assert result.stderr_lines == [f"videodeblur: interrupted: {out / 'a.mp4'} holds 4 frames (--resume goes on from "
                                   "there); 2 more videos not begun"]


def test_a_signal_while_the_summary_is_said_waits_for_it(run_cli, make_clip, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A second Ctrl-C or a SIGTERM while a finished job's summary (or --json line) is printed cut it
    off; it now comes after it whole, and the run stops there (143 for SIGTERM)."""
    from videodeblur.cli import video as video_command

    src = make_clip("a.mp4", width=64, height=48, frames=4)
    table = video_command.summary_table

    def terminated_midway(result: dict[str, Any]) -> str:
        signal.raise_signal(signal.SIGTERM)
        return table(result)

    monkeypatch.setattr(video_command, "summary_table", terminated_midway)
    result = run_cli("video", src, "-o", tmp_path / "out.mp4", *CPU)
    assert result.exit_code == 143 and result.stdout.startswith(f"wrote {tmp_path / 'out.mp4'}: 4 frames")
    assert result.stderr_lines == ["videodeblur: terminated"]


def test_a_signal_while_a_batch_job_is_said_names_the_videos_left(run_cli, make_clip, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The same in a batch: after the first video's summary only a bare "videodeblur: terminated"
    came, which did not say that the videos after it were left as they were."""
    from videodeblur.cli import video as video_command

    make_clip("clips/a.mp4", width=64, height=48, frames=3)
    make_clip("clips/b.mp4", width=64, height=48, frames=3)
    make_clip("clips/c.mp4", width=64, height=48, frames=3)
    table = video_command.summary_table

    def terminated_midway(result: dict[str, Any]) -> str:
        signal.raise_signal(signal.SIGTERM)
        return table(result)

    monkeypatch.setattr(video_command, "summary_table", terminated_midway)
    result = run_cli("video", tmp_path / "clips", "-o", tmp_path / "out", *CPU)
    assert result.exit_code == 143 and result.stdout.startswith(f"wrote {tmp_path / 'out' / 'a.mp4'}: 3 frames")
    assert result.stderr.splitlines() == ["videodeblur: terminated: 2 more videos not begun"]
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["a.mp4"]


def test_a_second_ctrl_c_while_a_recording_closes_keeps_the_stats(engine: Engine, make_clip, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """camera: Ctrl-C, then another while the recording was finalised: the second escaped the live
    loop's clean-up, so no stats were said and the recording's close was cut short. It is now noted:
    the stats say interrupted and how many frames the file holds."""
    from videodeblur.pipeline import live, live_record
    from videodeblur.video.capture import CaptureOptions, open_source

    src = make_clip("a.mp4", width=64, height=48, frames=40)
    closing = live_record.Recorder.close

    def ctrl_c_again(self: Any, **kwargs: Any) -> int:
        signal.raise_signal(signal.SIGINT)
        return closing(self, **kwargs)

    monkeypatch.setattr(live_record.Recorder, "close", ctrl_c_again)
    seen: list[int] = []

    def on_frame(frame: Any) -> bool:
        seen.append(frame.index)
        if len(seen) == 10:
            signal.raise_signal(signal.SIGINT)
        return True

    out = tmp_path / "rec.mp4"
    with _no_stray_interrupt():
        stats = live.run_live(open_source(str(src), CaptureOptions()), engine, live.LiveOptions(record_path=out),
                              on_frame=on_frame)
    assert stats.end_reason == "interrupted" and stats.recorded == len(decode(out).frames) >= 10


def _recipe(tmp_path: Path, steps: int, checkpoint_every: int) -> Path:
    return tiny_recipe(tmp_path, tmp_path / "run", steps=steps, checkpoint_every=checkpoint_every)


def _logged_steps(run: Path) -> list[int]:
    with (run / "log.csv").open() as fh:
        return [int(row["step"]) for row in csv.DictReader(fh)]


def test_a_training_stopped_before_its_weights_were_saved_resumes_to_save_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C after the last step, while the weights were written: last.pt held the last step, a
    half-written tiny.pt.tmp was left, and --resume refused ("already at step 6 of 6: nothing to
    train"), so the run's weights could never be had. The temporary file is removed and --resume
    saves the weights, with the final loss the log holds."""
    from videodeblur.train import load_recipe, run_record, train

    recipe = load_recipe(_recipe(tmp_path, steps=6, checkpoint_every=100))
    saving = run_record.save_weights

    def stopped_while_saving(path: Path, *args: Any, **kwargs: Any) -> Path:
        Path(f"{path}.tmp").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(run_record, "save_weights", stopped_while_saving)
    with pytest.raises(KeyboardInterrupt):
        train(recipe)
    run = tmp_path / "run"
    assert torch.load(run / "last.pt", weights_only=True)["step"] == 6
    assert sorted(p.name for p in run.iterdir()) == ["last.pt", "log.csv"]
    monkeypatch.setattr(run_record, "save_weights", saving)
    resumed = train(recipe, resume=run / "last.pt")
    metadata = json.loads((run / "tiny.json").read_text())
    assert resumed.steps == 6 and metadata["steps"] == 6 and _logged_steps(run) == [1, 2, 3, 4, 5, 6]
    with (run / "log.csv").open() as fh:
        assert metadata["final_loss"] == pytest.approx(float(list(csv.DictReader(fh))[-1]["loss"]))
    with pytest.raises(ConfigError, match="already at step 6 of 6: nothing to train"):
        train(recipe, resume=run / "last.pt")


def test_a_killed_training_resumes_without_logging_steps_twice(tmp_path: Path) -> None:
    """Killed between checkpoints (kill -9, a crash): the steps after the last checkpoint were in
    log.csv already and were logged again by the resumed run (53 rows for 50 steps). They are now
    dropped on resume, so the log reads each step once."""
    from videodeblur.train import load_recipe, train

    recipe = load_recipe(_recipe(tmp_path, steps=6, checkpoint_every=4))

    def crash_at_5(record: dict[str, Any]) -> None:
        if record["step"] == 5:
            raise SystemExit("killed")  # no Ctrl-C checkpoint: as after kill -9

    with pytest.raises(SystemExit):
        train(recipe, on_progress=crash_at_5)
    run = tmp_path / "run"
    assert torch.load(run / "last.pt", weights_only=True)["step"] == 4 and _logged_steps(run) == [1, 2, 3, 4, 5]
    train(recipe, resume=run / "last.pt")
    assert _logged_steps(run) == [1, 2, 3, 4, 5, 6]


def test_a_second_ctrl_c_while_the_checkpoint_is_saved_waits_for_it(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C, then another while the step reached was being saved: the second cut the save short,
    and --resume went back to the checkpoint before (here none: the run was lost). It now waits."""
    from videodeblur.train import load_recipe, train, trainer

    recipe = load_recipe(_recipe(tmp_path, steps=6, checkpoint_every=100))
    saving = trainer.save_checkpoint

    def ctrl_c_again(*args: Any, **kwargs: Any) -> None:
        signal.raise_signal(signal.SIGINT)
        saving(*args, **kwargs)

    def ctrl_c_at_3(record: dict[str, Any]) -> None:
        if record["step"] == 3:
            monkeypatch.setattr(trainer, "save_checkpoint", ctrl_c_again)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(recipe, on_progress=ctrl_c_at_3)
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=True)["step"] == 3


def test_sigterm_to_the_process_group_with_loader_workers_is_clean(tmp_path: Path) -> None:
    """``kill -TERM -PGID`` (systemd, a job scheduler; a closed terminal's SIGHUP likewise) reaches the
    DataLoader workers too: they died first, and the run printed "Exception ignored ... DataLoader
    worker (pid N) is killed by signal: Terminated" and left their pymp-* folders in TMPDIR. The
    workers now leave the stop to the run, which saves its checkpoint and stops them."""
    import re
    import time

    recipe = _recipe(tmp_path, steps=400, checkpoint_every=1000)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "videodeblur", "train", "--config", str(recipe), "--set",
                             "train.workers=2"], cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(os.environ, PYTHONUNBUFFERED="1", TMPDIR=str(scratch)), start_new_session=True)
    try:
        seen, deadline = b"", time.monotonic() + 90
        os.set_blocking(proc.stderr.fileno(), False)
        while proc.poll() is None and time.monotonic() < deadline and not re.search(rb"\] ([2-9]\d|\d{3})/400", seen):
            seen += proc.stderr.read() or b""
            time.sleep(0.01)
        os.set_blocking(proc.stderr.fileno(), True)
        assert proc.poll() is None, seen.decode()
        os.killpg(proc.pid, signal.SIGTERM)
        _, rest = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    stderr = (seen + rest).decode()
    shown = max(int(n) for n in re.findall(r"\] (\d+)/400", stderr))
    assert proc.returncode == 143 and stderr.endswith("\nvideodeblur: terminated\n"), stderr[-2000:]
    assert "Traceback" not in stderr and "Exception ignored" not in stderr
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=True)["step"] >= shown >= 20
    assert not [p.name for p in scratch.iterdir() if p.name.startswith("pymp-")]


def test_a_stop_while_the_run_waits_for_a_batch_stops_the_loader_workers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stop that lands while the run waits for a batch leaves the DataLoader iterator in the
    traceback's frames: its workers were stopped only when the last reference went, which at the
    interpreter's exit is too late (torch's shutdown does nothing then, and multiprocessing joined
    the workers, which ignore its SIGTERM, for ever): after "videodeblur: terminated" the run hung,
    3 stops in 10 on a loaded machine. The workers are stopped before the stop goes on, and the
    checkpoint is kept."""
    import dataclasses

    from torch.utils.data.dataloader import _MultiProcessingDataLoaderIter

    from videodeblur.train import load_recipe, train

    recipe = dataclasses.replace(load_recipe(_recipe(tmp_path, steps=20, checkpoint_every=100)), workers=2)
    fetching = _MultiProcessingDataLoaderIter._try_get_data
    fetches: list[_MultiProcessingDataLoaderIter] = []

    def stopped_on_the_fourth_fetch(self: _MultiProcessingDataLoaderIter, *args: Any, **kwargs: Any) -> Any:
        fetches.append(self)
        if len(fetches) == 4:
            raise KeyboardInterrupt  # as the CLI's SIGTERM handler raises it, in the wait for a batch
        return fetching(self, *args, **kwargs)

    monkeypatch.setattr(_MultiProcessingDataLoaderIter, "_try_get_data", stopped_on_the_fourth_fetch)
    with pytest.raises(KeyboardInterrupt) as stopped:
        train(recipe)
    batches = fetches[-1]
    try:
        assert "stopped_on_the_fourth_fetch" in [tb.tb_frame.f_code.co_name for tb in _tracebacks(stopped.tb)]
        assert len(batches._workers) == 2 and not [w.pid for w in batches._workers if w.is_alive()]
        kept = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["step"]
        assert kept == _logged_steps(tmp_path / "run")[-1] >= 1  # the fetches of a batch vary (out of order, waits)
    finally:
        batches._shutdown_workers()  # a failed check leaves no workers behind


def _tracebacks(tb: Any) -> Iterator[Any]:
    while tb is not None:
        yield tb
        tb = tb.tb_next


def _python_with_sigint_default(code: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh Python whose Ctrl-C raises KeyboardInterrupt, as on a terminal."""
    return subprocess.run([sys.executable, "-c", code, *args], cwd=REPO_ROOT, capture_output=True, timeout=120,
                          env=dict(os.environ, PYTHONUNBUFFERED="1"),
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def test_ctrl_c_while_the_commands_load_is_no_traceback() -> None:
    """Ctrl-C in the first moments (the command's modules loading: a tenth of a second, more on a
    busy machine) printed a traceback of an import and died of SIGINT; now exit 130 and one line."""
    code = textwrap.dedent("""
        import runpy, signal, sys

        class CtrlCOnClick:  # Ctrl-C as click loads
            def find_spec(self, name, path=None, target=None):
                if name == "click":
                    sys.meta_path.remove(self)
                    signal.raise_signal(signal.SIGINT)
                return None

        sys.meta_path.insert(0, CtrlCOnClick())
        sys.argv = ["videodeblur", "models"]
        runpy.run_module("videodeblur", run_name="__main__")
        """)
    proc = _python_with_sigint_default(code)
    assert (proc.returncode, proc.stderr.decode()) == (130, "videodeblur: interrupted\n")


def test_sigterm_while_torch_loads_exits_143_under_python_m(tmp_path: Path) -> None:
    """SIGTERM while torch loaded (its dataclasses build their methods with exec): the run stopped
    and said "terminated", but ``python -m videodeblur`` then died of SIGINT (exit 130 in a shell):
    CPython marks a KeyboardInterrupt out of exec()'d code as unhandled, whatever catches it later."""
    (tmp_path / "term_in_exec.py").write_text(textwrap.dedent("""
        import os, runpy, signal, sys

        class TermInExec:  # SIGTERM as a module of the command loads, taken inside exec()'d code
            def find_spec(self, name, path=None, target=None):
                if name == "videodeblur.model":
                    sys.meta_path.remove(self)
                    exec("import os, signal; os.kill(os.getpid(), signal.SIGTERM)")
                return None

        sys.meta_path.insert(0, TermInExec())
        sys.argv = ["videodeblur", "models"]
        runpy.run_module("videodeblur", run_name="__main__")
        """))
    proc = subprocess.run([sys.executable, "-m", "term_in_exec"], cwd=REPO_ROOT, capture_output=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO_ROOT)])))
    # (and with no blank line before it: click's, for the KeyboardInterrupt that reached it)
    assert (proc.returncode, proc.stderr.decode()) == (143, "videodeblur: terminated\n")


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_ctrl_c_after_the_work_is_done_changes_nothing(signame: str) -> None:
    """Ctrl-C while the finished process tears down (seconds with torch loaded): it printed a
    traceback from the interpreter's clean-up ("Exception ignored in atexit callback"); now the work
    that was done stands, exit 0 and nothing on stderr. A SIGTERM or SIGHUP then (a supervisor's
    stop sent again) found its default action back: the process died of it (status -15) with its
    work done; it is ignored from there on too."""
    code = textwrap.dedent(f"""
        import atexit, runpy, signal, sys, time

        def ctrl_c_at_exit():
            signal.raise_signal(signal.{signame})
            time.sleep(0.1)

        atexit.register(ctrl_c_at_exit)
        sys.argv = ["videodeblur", "models", "--json"]
        runpy.run_module("videodeblur", run_name="__main__")
        """)
    proc = _python_with_sigint_default(code)
    assert proc.returncode == 0 and proc.stderr.decode() == "" and json.loads(proc.stdout)


def _stopped_at_first_call(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> None:
    """``module.name`` raises KeyboardInterrupt (a Ctrl-C) the first time it is called, then runs."""
    real, calls = getattr(module, name), []

    def once(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, once)


def test_a_training_stopped_while_it_validated_validates_that_step_on_resume(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while step 2 was validated (after its checkpoint): the resume went on from step 3, and
    val.csv never had step 2 (nor -best.pt, had it been the best). It is validated on resume."""
    import dataclasses

    from videodeblur.train import load_recipe, train, trainer

    pairs = scored_pairs(tmp_path / "pairs")
    recipe = dataclasses.replace(load_recipe(_recipe(tmp_path, steps=6, checkpoint_every=100)),
                                 val_pairs=str(pairs), val_every=2)
    straight = dataclasses.replace(recipe, out_dir=str(tmp_path / "straight"))
    train(straight)
    _stopped_at_first_call(monkeypatch, trainer, "validate")
    with pytest.raises(KeyboardInterrupt):
        train(recipe)
    run = tmp_path / "run"
    assert torch.load(run / "last.pt", weights_only=True)["step"] == 2 and not (run / "val.csv").exists()
    train(recipe, resume=run / "last.pt")
    rows = {}
    for name in ("run", "straight"):
        with (tmp_path / name / "val.csv").open() as fh:
            rows[name] = [(r["step"], r["psnr"]) for r in csv.DictReader(fh)]
    assert rows["run"] == rows["straight"] and [s for s, _ in rows["run"]] == ["2", "4", "6"]


def test_a_training_stopped_while_it_evaluated_records_the_evaluation_on_resume(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C during the final evaluation left the weights with "evaluation": null, and --resume said
    "already at step 6 of 6: nothing to train"; the resume now records it (and only then says so)."""
    import dataclasses

    from videodeblur.train import load_recipe, train, trainer

    recipe = dataclasses.replace(load_recipe(_recipe(tmp_path, steps=6, checkpoint_every=100)),
                                 eval_pairs=str(scored_pairs(tmp_path / "pairs")))
    _stopped_at_first_call(monkeypatch, trainer, "evaluate_pairs")
    with pytest.raises(KeyboardInterrupt):
        train(recipe)
    run = tmp_path / "run"
    assert json.loads((run / "tiny.json").read_text())["evaluation"] is None
    before = torch.load(run / "tiny.pt", weights_only=True)["state_dict"]
    resumed = train(recipe, resume=run / "last.pt")
    assert resumed.steps == 6 and resumed.evaluation is not None
    metadata = json.loads((run / "tiny.json").read_text())
    assert metadata["evaluation"]["pairs"] == 2 and metadata["steps"] == 6
    after = torch.load(run / "tiny.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(before[k], after[k]) for k in before) and _logged_steps(run) == [1, 2, 3, 4, 5, 6]
    with pytest.raises(ConfigError, match="already at step 6 of 6: nothing to train"):
        train(recipe, resume=run / "last.pt")


def test_a_run_resumed_with_other_code_records_both_commits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the resuming process's commit was kept: a run begun at one commit and finished at another
    said the second alone."""
    from videodeblur.train import load_recipe, train, trainer

    recipe = load_recipe(_recipe(tmp_path, steps=6, checkpoint_every=100))
    monkeypatch.setattr(trainer, "git_commit", lambda: "aaaaaaa")

    def stop_at_3(record: dict[str, Any]) -> None:
        if record["step"] == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(recipe, on_progress=stop_at_3)
    monkeypatch.setattr(trainer, "git_commit", lambda: "bbbbbbb-dirty")
    train(recipe, resume=tmp_path / "run" / "last.pt")
    metadata = json.loads((tmp_path / "run" / "tiny.json").read_text())
    assert metadata["commit"] == "bbbbbbb-dirty" and metadata["commits"] == ["aaaaaaa", "bbbbbbb-dirty"]
    straight = load_recipe(_recipe(tmp_path / "s", steps=2, checkpoint_every=100))
    train(straight)
    assert "commits" not in json.loads((tmp_path / "s" / "run" / "tiny.json").read_text())  # one version: said once

