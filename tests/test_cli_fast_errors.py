"""A mistyped path is said before torch loads, by every command: importing the modules that check it
ran packages' eager re-exports (``videodeblur.train``, ``videodeblur.model``, ``videodeblur.bench``)
or the command loaded the model first, and the one-line error took 2-4 s on a 2-core machine.
(``video``'s own test: test_cli_errors.py::test_a_path_mistake_is_said_before_torch_loads.)"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import tiny_recipe, train_on_two_ranks

# runs the command in this process, then says whether torch was loaded when it exited, and its exit code
_RUN = ("import runpy, sys\n"
        "sys.argv = ['videodeblur', *sys.argv[1:]]\n"
        "try:\n"
        "    runpy.run_module('videodeblur', run_name='__main__')\n"
        "except SystemExit as end:\n"
        "    print('torch loaded' if 'torch' in sys.modules else 'no torch', end.code)\n")


def said_before_torch(*args: str | Path) -> str:
    """The stderr of ``videodeblur ARGS``, which must exit 1 without having loaded torch."""
    done = subprocess.run([sys.executable, "-c", _RUN, *map(str, args)], capture_output=True, text=True, timeout=120)
    assert done.stdout.splitlines()[-1:] == ["no torch 1"], (done.stdout, done.stderr)
    return done.stderr


def test_camera_says_a_missing_source_before_torch_loads(tmp_path):
    missing = tmp_path / "nope.mp4"
    assert f"source '{missing}' not found: give a camera index (0)" in said_before_torch(
        "camera", "--source", missing, "--no-preview")


def test_bench_says_a_missing_input_before_torch_loads(tmp_path):
    missing = tmp_path / "nope.mp4"
    assert (f"input file '{missing}' does not exist: give a path to a video file"
            in said_before_torch("bench", "--input", missing))


def test_eval_says_a_missing_pairs_folder_before_torch_loads(tmp_path):
    missing = tmp_path / "nope"
    assert f"pairs folder not found: {missing}\n" in said_before_torch("eval", "--pairs", missing, "--model", "lprn-fast")


@pytest.mark.parametrize("args, said", [
    (("--model", "{tmp}/nope.pt"), "weights file not found: {tmp}/nope.pt\n"),
    (("--model", "lprn-fats"), "unknown model 'lprn-fats' (did you mean lprn-fast?)"),
    (("--model", "lprn-fast", "--record"), "--record will not write into the shipped model lprn-fast's metadata"),
])
def test_eval_says_a_model_mistake_before_torch_loads(tmp_path, args, said):
    """The pairs folder was said before torch loaded, the --model only after (the scorer was imported first)."""
    (tmp_path / "pairs").mkdir()
    assert said.format(tmp=tmp_path) in said_before_torch(
        "eval", "--pairs", tmp_path / "pairs", *(a.format(tmp=tmp_path) for a in args))


def test_train_says_a_missing_recipe_before_torch_loads(tmp_path):
    missing = tmp_path / "nope.toml"
    assert f"config file not found: {missing}\n" in said_before_torch("train", "--config", missing)


@pytest.mark.parametrize("args, said", [
    (("--resume", "{tmp}/nope.pt"), "checkpoint not found: {tmp}/nope.pt\n"),
    (("--init", "{tmp}/nope.pt"), "weights file not found: {tmp}/nope.pt\n"),
    (("--set", "train.init_weights='lprn-fats'"), "unknown model 'lprn-fats' (did you mean lprn-fast?)"),
])
def test_train_says_a_missing_checkpoint_or_init_before_torch_loads(tmp_path, args, said):
    recipe = tiny_recipe(tmp_path, tmp_path / "run")
    assert said.format(tmp=tmp_path) in said_before_torch(
        "train", "--config", recipe, *(a.format(tmp=tmp_path) for a in args))


@pytest.mark.skipif(not torch.distributed.is_available(), reason="this torch has no torch.distributed")
def test_a_missing_recipe_is_said_once_under_torchrun(tmp_path):
    """Under torchrun the recipe is still read once torch has loaded, and its error said by rank 0 alone: read
    before, rank 0 failed at once, and torchrun stopped the other rank mid-import, which said "terminated"."""
    proc = train_on_two_ranks(tmp_path / "nope.toml", tmp_path / "two")
    errors = [line for line in proc.stderr.splitlines() if line.startswith("videodeblur: ")]
    assert proc.returncode != 0 and errors == [f"videodeblur: error: config file not found: {tmp_path / 'nope.toml'}"], \
        proc.stderr


def test_models_says_a_missing_weights_file_before_torch_loads(tmp_path):
    missing = tmp_path / "nope.pt"
    assert f"weights file not found: {missing}\n" in said_before_torch("models", missing)


@pytest.mark.parametrize("setting, said", [
    ("data.mix.p_sharpp=0.3", "[data.mix]: unknown keys ['p_sharpp'] (did you mean p_sharp?); valid keys are"),
    ("data.mix.crop=4", "data.mix.crop must be a whole number >= 8, got 4"),
    ("data.mix.kernel_sizes=[4]", "data.mix.kernel_sizes must be odd whole numbers >= 3"),
    ("train.pixel_loss='l3'", "error: train.pixel_loss must be one of l1, mse, got 'l3'"),
])
def test_train_says_a_mistake_in_the_recipe_before_torch_loads(tmp_path, setting, said):
    """The recipe's contents, not only its path: [data.mix] and the losses were read in modules that load torch."""
    recipe = tiny_recipe(tmp_path, tmp_path / "run")
    assert said in said_before_torch("train", "--config", recipe, "--set", setting)
    assert not (tmp_path / "run").exists()


def test_video_into_a_playlist_or_an_over_long_name(make_clip, tmp_path):
    """``-o out.mpd``: the encoder probe opened FFmpeg's DASH muxer, which killed the process (SIGFPE,
    no message); ``-o out.m3u8`` left HLS probe segments ("<none>0.ts") in the current folder. A 300-
    character ``-o`` name was "internal error: OSError". Each is one line now, before torch loads,
    nothing written (run in a subprocess: a regression of the first kills the process)."""
    src = make_clip("a.mp4", width=32, height=24, frames=2)
    cases = [("out.mpd", "output {} is a DASH playlist, written with segment files beside it, not a video file: "
                         "give a video file such as out.mp4 (or .mkv, .mov, .webm)"),
             ("live.M3U8", "output {} is an HLS playlist, written with segment files beside it, not a video file"),
             ("x" * 300 + ".mp4", "cannot write {}: File name too long")]
    for name, said in cases:
        stderr = said_before_torch("video", src, "-o", tmp_path / name)
        assert stderr.splitlines() == [stderr.strip()]
        assert stderr.startswith(f"videodeblur: error: {said.format(tmp_path / name)}"), stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4"]
