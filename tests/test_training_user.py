"""Training and evaluation as a user runs them on their own data: GoPro-layout pairs with faults in
them, a run stopped between log lines or by a signal mid-step and resumed, a resume with other
settings, and a fine-tune resumed without repeating its --init."""
from __future__ import annotations

import csv
import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import tiny_recipe, train_on_two_ranks
from videodeblur.config import ModelConfig
from videodeblur.model import LPRN, save_weights
from videodeblur.errors import ConfigError
from videodeblur.train import load_recipe, train, trainer
from videodeblur.train.data import write_rgb


def _recipe(tmp_path: Path, *, steps: int = 6, log_every: int = 1, extra: str = "") -> Path:
    """A tiny recipe on two 48x40 noise images (camera-shake pairs, crops of 24 px)."""
    return tiny_recipe(tmp_path, tmp_path / "run", steps=steps, log_every=log_every, image_hw=(40, 48), extra=extra)


def _pairs(root: Path, sizes: dict[str, tuple[tuple[int, int], tuple[int, int]]]) -> Path:
    """``<root>/scene/{blur,sharp}/<name>``, each image of its (height, width)."""
    rng = np.random.default_rng(1)
    for name, (blur_hw, sharp_hw) in sizes.items():
        write_rgb(root / "scene" / "blur" / name, rng.integers(0, 256, (*blur_hw, 3), dtype=np.uint8))
        write_rgb(root / "scene" / "sharp" / name, rng.integers(0, 256, (*sharp_hw, 3), dtype=np.uint8))
    return root


def _log(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return [{k: row[k] for k in ("step", "loss", "lr")} for row in csv.DictReader(fh)]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


# ------------------------------------------------------------------------------- pairs folders

def test_a_bad_training_pair_fails_before_the_first_step_naming_it(tmp_path: Path, run_cli) -> None:
    """A pair of two sizes, or smaller than the crop, stopped the run at the step that first drew it
    (step 20 of 40 with 41 pairs; under torchrun the other rank then died with 'internal error:
    Connection closed by peer'), and the small one was 'training image 24x20 is smaller than the
    crop 32', naming no file."""
    config = _recipe(tmp_path, steps=40)
    good = {f"{i:03d}.png": ((32, 32), (32, 32)) for i in range(40)}
    cases = {
        "mismatch": ({**good, "zz.png": ((30, 32), (32, 32))},
                     "blur/zz.png (32x30) and {root}/scene/sharp/zz.png (32x32) differ in size"),
        "small": ({**good, "zz.png": ((20, 30), (20, 30))},
                  "blur/zz.png is 30x20, smaller than the training crop (data.mix.crop 24) (24x24 px): "
                  "lower data.mix.crop or leave the pair out"),
    }
    for case, (sizes, message) in cases.items():
        root = _pairs(tmp_path / case, sizes)
        out = tmp_path / f"out-{case}"
        result = run_cli("train", "--config", config, "--set", f'data.pairs=["{root.as_posix()}"]', "--out-dir", out)
        assert result.exit_code == 1 and len(result.stderr_lines) == 1, result.stderr
        assert result.stderr.startswith(f"videodeblur: error: pair {root}/scene/"), result.stderr
        assert message.format(root=root) in result.stderr, result.stderr
        assert not (out / "last.pt").exists() and not (out / "log.csv").exists()


def test_training_says_when_blurred_frames_have_no_sharp_partner(tmp_path: Path, run_cli) -> None:
    """eval warned about them; training left them out unsaid."""
    root = _pairs(tmp_path / "pairs", {f"{i}.png": ((32, 32), (32, 32)) for i in range(3)})
    (root / "scene" / "sharp" / "2.png").unlink()
    result = run_cli("train", "--config", _recipe(tmp_path, steps=1), "--set", f'data.pairs=["{root.as_posix()}"]')
    assert result.exit_code == 0, result.stderr
    warnings = [line for line in result.stderr_lines if line.startswith("videodeblur: warning:")]
    assert warnings == [f"videodeblur: warning: 1 blurred frame has no sharp partner under {root} and is left out "
                        "of training (first: scene/blur/2.png)"], result.stderr


@pytest.mark.parametrize("command", ["eval", "train"])
def test_pairs_that_do_not_match_say_what_was_found(tmp_path: Path, run_cli, command: str) -> None:
    """Sharp frames named otherwise than their blurred ones, or JPEG pairs, were told "expected
    <scene>/blur/*.png with <scene>/sharp/*.png", which the user's folder already looked like."""
    named = _pairs(tmp_path / "named", {"0.png": ((32, 32), (32, 32))})
    (named / "scene" / "sharp" / "0.png").rename(named / "scene" / "sharp" / "sharp_0.png")
    jpeg = tmp_path / "jpeg"
    for kind in ("blur", "sharp"):
        (jpeg / "scene" / kind).mkdir(parents=True)
        (jpeg / "scene" / kind / "0.jpg").write_bytes(b"not read")
    expected = {named: " of the same name; 1 blurred PNG found, none with a sharp partner (first: scene/blur/0.png, "
                       "no scene/sharp/0.png)",
                jpeg: " (only PNG is read); found scene/blur/0.jpg: convert the pairs to PNG",
                named / "scene" / "blur": f"; {named}/scene/blur is one side of the pairs: give the folder above it, "
                                          f"{named}/scene"}
    for root, why in expected.items():
        args = (("eval", "--pairs", root, "--model", "lprn-fast") if command == "eval" else
                ("train", "--config", _recipe(tmp_path, steps=1), "--set", f'data.pairs=["{root.as_posix()}"]'))
        result = run_cli(*args)
        assert result.exit_code == 1 and result.stderr_lines == [
            f"videodeblur: error: no pairs under {root}: expected <scene>/blur/*.png with <scene>/sharp/*.png{why}"]

def test_eval_of_a_pair_smaller_than_the_ssim_window_is_a_one_line_error(tmp_path: Path, run_cli) -> None:
    """An 8x8 pair gave SSIM NaN (and numpy warnings); --json then ended in 'internal error: ValueError:
    Out of range float values are not JSON compliant'."""
    root = _pairs(tmp_path / "pairs", {"a.png": ((32, 32), (32, 32)), "b.png": ((8, 8), (8, 8))})
    result = run_cli("eval", "--pairs", root, "--model", "lprn-fast", "--json")
    assert result.exit_code == 1 and result.stdout == "" and len(result.stderr_lines) == 1, result.stderr
    assert result.stderr_lines[0] == (f"videodeblur: error: pair {root}/scene/blur/b.png is 8x8, smaller than "
                                      "SSIM's window (11x11 px): leave the pair out")


def test_a_known_offset_pair_scores_its_psnr(tmp_path: Path, run_cli) -> None:
    """Blurred = sharp + 10 levels everywhere: MSE 100, PSNR 10 log10(255² / 100) = 28.131 dB."""
    root = tmp_path / "pairs"
    write_rgb(root / "s" / "sharp" / "0.png", np.full((32, 32, 3), 100, np.uint8))
    write_rgb(root / "s" / "blur" / "0.png", np.full((32, 32, 3), 110, np.uint8))
    result = run_cli("eval", "--pairs", root, "--model", "lprn-fast", "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert {"model", "pairs", "psnr", "ssim", "psnr_input", "gain_db"} <= set(summary)
    assert summary["model"] == "lprn-fast" and summary["pairs"] == 1
    assert summary["psnr_input"] == pytest.approx(28.131, abs=1e-3)
    assert summary["gain_db"] == pytest.approx(summary["psnr"] - summary["psnr_input"], abs=2e-3)


def test_sixteen_bit_pairs_are_scored_on_their_sixteen_bits(tmp_path: Path, run_cli) -> None:
    """Blurred = sharp + 100 in 16-bit units: 20 log10(65535 / 100) = 56.330 dB. Scored on the high
    byte it came out 55.263 (the offset rounded to 0 or 1 level, pixel by pixel); the network's change
    goes onto the 16-bit samples, as `image` writes them. 8-bit pairs score as before."""
    import cv2

    root = tmp_path / "pairs"
    sharp = np.random.default_rng(0).integers(0, 200, (32, 40, 3)).astype(np.uint16) * 257
    (root / "s" / "sharp").mkdir(parents=True)
    (root / "s" / "blur").mkdir(parents=True)
    cv2.imwrite(str(root / "s" / "sharp" / "0.png"), sharp)
    cv2.imwrite(str(root / "s" / "blur" / "0.png"), sharp + 100)
    result = run_cli("eval", "--pairs", root, "--model", "lprn-fast", "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["psnr_input"] == pytest.approx(56.330, abs=1e-3)
    assert 30 < summary["psnr"] < 100  # the network's change, on the 16-bit samples


def test_a_colour_blurred_image_with_a_grey_sharp_one_is_refused(tmp_path: Path, run_cli) -> None:
    """It was scored against the grey image copied to three channels, without a word."""
    import cv2

    root = tmp_path / "pairs"
    colour = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    write_rgb(root / "s" / "blur" / "0.png", colour)
    (root / "s" / "sharp").mkdir()
    cv2.imwrite(str(root / "s" / "sharp" / "0.png"), colour[..., 0])  # a grey PNG
    result = run_cli("eval", "--pairs", root, "--model", "lprn-fast", "--json")
    assert result.exit_code == 1 and result.stderr_lines == [
        f"videodeblur: error: pair {root}/s/blur/0.png (colour) and {root}/s/sharp/0.png (grey) differ: both must "
        "be colour or both grey"], result.stderr


def test_a_bad_evaluation_set_fails_before_training(tmp_path: Path, run_cli) -> None:
    """It was found after the last step, and the run ended without its weights file."""
    root = _pairs(tmp_path / "eval", {"a.png": ((32, 32), (32, 32)), "b.png": ((32, 32), (30, 32))})
    out = tmp_path / "out"
    result = run_cli("train", "--config", _recipe(tmp_path, steps=2), "--set", f'train.eval_pairs="{root.as_posix()}"',
                     "--out-dir", out)
    assert result.exit_code == 1 and len(result.stderr_lines) == 1, result.stderr
    assert "b.png (32x32) and" in result.stderr and "differ in size" in result.stderr
    assert not (out / "last.pt").exists()


def test_an_evaluation_that_fails_after_training_keeps_the_weights(tmp_path: Path, run_cli) -> None:
    """A PNG cut after its header passes the size check and fails only when read: the weights were
    evaluated before they were saved, so the run ended with no weights file."""
    root = _pairs(tmp_path / "eval", {"a.png": ((32, 32), (32, 32))})
    cut = root / "scene" / "sharp" / "a.png"
    cut.write_bytes(cut.read_bytes()[:40])
    out = tmp_path / "out"
    result = run_cli("train", "--config", _recipe(tmp_path, steps=2), "--set", f'train.eval_pairs="{root.as_posix()}"',
                     "--out-dir", out)
    assert result.exit_code == 1, result.stderr
    assert result.stderr_lines[-1].startswith(f"videodeblur: error: {cut} is not a readable image")
    assert [line for line in result.stderr_lines if "error" in line] == result.stderr_lines[-1:], result.stderr
    metadata = json.loads((out / "tiny.json").read_text())
    assert metadata["steps"] == 2 and metadata["evaluation"] is None
    assert set(_weights(out / "tiny.pt")) == set(LPRN(ModelConfig(name="tiny", channels=8, blocks=1, stages=2,
                                                                   unshuffle=2)).state_dict())


# ------------------------------------------------------------------------------------- resume

class _StopAt:
    """A dataset wrapper that raises KeyboardInterrupt (a Ctrl-C) when item ``index`` is first drawn."""

    def __init__(self, base, index: int) -> None:  # noqa: ANN001
        self.base, self.index, self.fired = base, index, False

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int):  # noqa: ANN204
        if index == self.index and not self.fired:
            self.fired = True
            raise KeyboardInterrupt
        return self.base[index]


def test_a_run_stopped_between_log_lines_resumes_the_same_loss_curve(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """log_every 4, stopped after step 2: the resumed run's line for step 4 averaged steps 3-4 only
    (0.0033 where the straight run logged 0.0026 at step 30 of a your-footage run)."""
    config = _recipe(tmp_path, steps=8, log_every=4)
    straight = train(load_recipe(config, out_dir=str(tmp_path / "straight")))
    build = trainer.build_dataset
    monkeypatch.setattr(trainer, "build_dataset", lambda *a, **k: _StopAt(build(*a, **k), index=2 * 2))
    recipe = load_recipe(config, out_dir=str(tmp_path / "stopped"))
    with pytest.raises(KeyboardInterrupt):
        train(recipe)
    assert torch.load(tmp_path / "stopped" / "last.pt", weights_only=True)["step"] == 2
    monkeypatch.setattr(trainer, "build_dataset", build)
    resumed = train(recipe, resume=tmp_path / "stopped" / "last.pt")
    assert _log(tmp_path / "stopped" / "log.csv") == _log(tmp_path / "straight" / "log.csv")
    assert resumed.final_loss == straight.final_loss
    for name, value in _weights(straight.weights).items():
        assert torch.equal(value, _weights(resumed.weights)[name]), name


def test_a_signal_in_the_middle_of_a_step_is_held_until_the_step_is_done(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ctrl-C (or SIGTERM) landing after the optimiser step but before the step count saved a
    checkpoint of step 2 holding step 3's weights: the resumed run took step 3 twice."""
    config = _recipe(tmp_path, steps=5, extra="ema_decay = 0.5")
    straight = train(load_recipe(config, out_dir=str(tmp_path / "straight")))
    step_lr = torch.optim.lr_scheduler.LambdaLR.step

    def signalled(self, *args, **kwargs):  # noqa: ANN001, ANN202
        step_lr(self, *args, **kwargs)
        if self.last_epoch == 3:  # right after step 3's optimiser step, before its weight average
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(torch.optim.lr_scheduler.LambdaLR, "step", signalled)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        recipe = load_recipe(config, out_dir=str(tmp_path / "stopped"))
        with pytest.raises(KeyboardInterrupt):
            train(recipe)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert signal.getsignal(signal.SIGINT) is previous
    assert torch.load(tmp_path / "stopped" / "last.pt", weights_only=True)["step"] == 3
    monkeypatch.setattr(torch.optim.lr_scheduler.LambdaLR, "step", step_lr)
    resumed = train(recipe, resume=tmp_path / "stopped" / "last.pt")
    assert _log(tmp_path / "stopped" / "log.csv") == _log(tmp_path / "straight" / "log.csv")
    for name, value in _weights(straight.weights).items():
        assert torch.equal(value, _weights(resumed.weights)[name]), name


def test_resume_with_other_training_settings_is_refused(tmp_path: Path, run_cli) -> None:
    """--set train.lr=0.01 on a resume was taken silently: the scheduler kept the first lr, and the
    weights' JSON recorded 0.01; another batch, seed or crop changed the data mid-run."""
    config = _recipe(tmp_path, steps=2)
    first = run_cli("train", "--config", config)
    assert first.exit_code == 0, first.stderr
    last = tmp_path / "run" / "last.pt"
    files = {p: p.read_bytes() for p in (tmp_path / "run").iterdir()}
    for change, said in [(["--set", "train.lr=0.01"], "train.lr 0.01 (the run started with 0.002)"),
                         (["--seed", "7"], "train.seed 7 (the run started with 0)"),
                         (["--set", "data.mix.crop=16"], "data.mix.crop 16 (the run started with 24)")]:
        result = run_cli("train", "--config", config, "--resume", last, "--steps", "4", *change)
        assert result.exit_code == 1 and len(result.stderr_lines) == 1, result.stderr
        assert result.stderr.startswith(f"videodeblur: error: cannot resume {last} with {said}"), result.stderr
    assert {p: p.read_bytes() for p in (tmp_path / "run").iterdir()} == files
    further = run_cli("train", "--config", config, "--resume", last, "--steps", "4", "--set", "train.log_every=2")
    assert further.exit_code == 0, further.stderr
    assert json.loads((tmp_path / "run" / "tiny.json").read_text())["steps"] == 4


def test_a_new_run_into_a_folder_holding_one_is_refused(tmp_path: Path, run_cli) -> None:
    """A second run into the same --out-dir appended to the first's log (steps 1, 2, 1, 2) and kept its
    -best.pt, which the new run replaced only if it beat it: refused, and the folder left as it was."""
    config = _recipe(tmp_path, steps=2)
    assert run_cli("train", "--config", config).exit_code == 0
    files = {p: p.read_bytes() for p in (tmp_path / "run").iterdir()}
    again = run_cli("train", "--config", config, "--seed", "5")
    assert again.exit_code == 1 and again.stderr_lines == [
        f"videodeblur: error: --out-dir {tmp_path / 'run'} already holds a run (last.pt, log.csv, tiny.pt): --resume "
        f"{tmp_path / 'run' / 'last.pt'} goes on with it; give another --out-dir for a new run"]
    assert {p: p.read_bytes() for p in (tmp_path / "run").iterdir()} == files
    assert run_cli("train", "--config", config, "--seed", "5", "--out-dir", tmp_path / "other").exit_code == 0


def test_a_new_run_into_a_folder_of_weights_is_refused(tmp_path: Path, run_cli) -> None:
    """A folder holding the model's weights but no run (``--out-dir videodeblur/weights``, the shipped
    ones) passed the check for a run there, and the new run wrote over the weights at its end."""
    config = _recipe(tmp_path, steps=2)
    assert run_cli("train", "--config", config).exit_code == 0
    shelf = tmp_path / "shelf"
    shelf.mkdir()
    (shelf / "tiny.pt").write_bytes((tmp_path / "run" / "tiny.pt").read_bytes())
    files = {p: p.read_bytes() for p in shelf.iterdir()}
    again = run_cli("train", "--config", config, "--seed", "5", "--out-dir", shelf)
    assert again.exit_code == 1 and again.stderr_lines == [
        f"videodeblur: error: --out-dir {shelf} already holds tiny.pt, which this run would write over: give "
        "another --out-dir (a folder of its own for the run)"]
    assert {p: p.read_bytes() for p in shelf.iterdir()} == files


def test_a_fine_tune_resumes_without_repeating_its_init(tmp_path: Path, run_cli) -> None:
    """The README's fine-tune (your-footage.toml names init_weights lprn-fast; --init lprn-rt replaces
    it), resumed without --init as --resume's help says: 'init_weights lprn-fast (--init) cannot apply
    ...: leave out --init', though no --init was given."""
    tiny = ModelConfig(name="tiny", channels=8, blocks=1, stages=2, unshuffle=2)
    torch.manual_seed(1)
    recipes_init, given_init = (save_weights(tmp_path / f"{name}.pt", LPRN(tiny)) for name in ("a", "b"))
    config = _recipe(tmp_path, steps=3, extra=f'init_weights = "{recipes_init.as_posix()}"')
    stopped = run_cli("train", "--config", config, "--init", given_init, "--steps", "2")
    assert stopped.exit_code == 0, stopped.stderr
    resumed = run_cli("train", "--config", config, "--resume", tmp_path / "run" / "last.pt")
    assert resumed.exit_code == 0, resumed.stderr
    metadata = json.loads((tmp_path / "run" / "tiny.json").read_text())
    assert metadata["steps"] == 3 and metadata["init"]["weights"] == str(given_init)


def test_a_library_caller_resuming_a_fine_tune_keeps_its_init(tmp_path: Path) -> None:
    """The rule "a resumed run keeps the weights it started from, whatever the recipe's init_weights,
    unless --init is given" lived in the command: load_recipe + train(resume=...) refused the recipe's
    own init_weights with "... (--init) cannot apply ...: leave out --init", an option never given."""
    tiny = ModelConfig(name="tiny", channels=8, blocks=1, stages=2, unshuffle=2)
    torch.manual_seed(1)
    recipes_init, given_init = (save_weights(tmp_path / f"{name}.pt", LPRN(tiny)) for name in ("a", "b"))
    config = _recipe(tmp_path, steps=3, extra=f'init_weights = "{recipes_init.as_posix()}"')
    assert load_recipe(config, resuming=True).init_weights is None
    assert load_recipe(config, ["train.init_weights='c.pt'"], resuming=True).init_weights is None
    assert load_recipe(config, resuming=True, init_weights="c.pt").init_weights == "c.pt"  # --init: train() judges
    assert load_recipe(config).init_weights == recipes_init.as_posix()
    train(load_recipe(config, init_weights=str(given_init), steps=2), warn=lambda message: None)
    resumed = train(load_recipe(config, resuming=True), resume=tmp_path / "run" / "last.pt", warn=lambda message: None)
    metadata = json.loads((tmp_path / "run" / "tiny.json").read_text())
    assert resumed.steps == 3 and metadata["init"]["weights"] == str(given_init)


@pytest.mark.parametrize("name, content, message", [
    ("notes.txt", b"just some notes\n" * 400, "training video {path} is not a video (FFmpeg reads it as text)"),
    ("clip.mp4", b"\x00\x00\x00\x18ftypisom" + bytes(200),
     "cannot read training video {path}: Invalid data found when processing input"),
])
def test_a_training_video_that_is_not_one_is_a_one_line_error(tmp_path: Path, run_cli, name: str, content: bytes,
                                                              message: str) -> None:
    """'internal error: InvalidDataError' for a broken file; a text file was trained on as a video of
    its characters."""
    path = tmp_path / name
    path.write_bytes(content)
    result = run_cli("train", "--config", _recipe(tmp_path, steps=1), "--set", f'data.videos=[{{path="{path.as_posix()}"}}]')
    assert result.exit_code == 1 and result.stderr_lines == [f"videodeblur: error: {message.format(path=path)}"], \
        result.stderr


def test_a_diverging_run_stops_before_its_weights_turn_to_nan(tmp_path: Path, run_cli, monkeypatch) -> None:
    """With a huge rate the loss was NaN from a few steps in, and the run went on to the end: last.pt
    overwritten with NaN weights, a weights file the loader then refused, exit 0. Here the loss turns
    NaN at step 5 (as lr 0.99 made lprn-fast's): the run stops there, last.pt keeps step 4."""
    real, calls = trainer.deblur_loss, []

    def diverging(*args, **kwargs):
        calls.append(1)
        loss = real(*args, **kwargs)
        return loss * float("nan") if len(calls) >= 5 else loss

    monkeypatch.setattr(trainer, "deblur_loss", diverging)
    result = run_cli("train", "--config", _recipe(tmp_path, steps=30), "--set", "train.checkpoint_every=2")
    assert result.exit_code == 1, result.stderr
    run = tmp_path / "run"
    assert result.stderr_lines[-1] == (
        "videodeblur: error: training diverged at step 5: the loss is nan (gradient norm nan); lower train.lr "
        f"(now 0.002) and run again; {run / 'last.pt'} still holds step 4, from before")
    assert not (run / "tiny.pt").exists()
    checkpoint = torch.load(run / "last.pt", weights_only=True)
    assert checkpoint["step"] == 4
    assert all(torch.isfinite(v).all() for v in checkpoint["model"].values() if v.is_floating_point())


def test_a_run_folder_that_cannot_be_made_is_a_one_line_error(tmp_path: Path, run_cli) -> None:
    """A recipe's out_dir naming a file, or a folder under one: 'internal error: FileExistsError'."""
    (tmp_path / "afile").write_text("x")
    recipe = _recipe(tmp_path, steps=1)
    for out_dir, said in ((tmp_path / "afile", f"the run's folder {tmp_path / 'afile'} is a file: give train.out_dir "
                                                "(or --out-dir) a folder"),
                          (tmp_path / "afile" / "sub", f"cannot create output folder {tmp_path / 'afile' / 'sub'}: "
                                                       "Not a directory")):
        result = run_cli("train", "--config", recipe, "--set", f'train.out_dir="{out_dir.as_posix()}"')
        assert result.exit_code == 1 and result.stderr_lines == [f"videodeblur: error: {said}"], result.stderr


@pytest.mark.parametrize("option, said", [
    ("--init", "weights file not found: {tmp}/nope.pt"),
    ("--set", "pairs folder not found: {tmp}/nope"),
])
def test_a_run_that_fails_before_its_first_step_leaves_no_new_folder(tmp_path: Path, run_cli, option: str,
                                                                     said: str) -> None:
    """The run's folder is made before the weights and data are read: a failing --init or pairs folder left
    it behind, empty (and its new parents), as `video` no longer does. A folder that was there stays."""
    recipe = _recipe(tmp_path, steps=1)
    value = str(tmp_path / "nope.pt") if option == "--init" else f'data.pairs=["{(tmp_path / "nope").as_posix()}"]'
    for out_dir, kept in ((tmp_path / "new" / "run", tmp_path), (tmp_path / "old", tmp_path / "old")):
        (tmp_path / "old").mkdir(exist_ok=True)
        result = run_cli("train", "--config", recipe, "--out-dir", out_dir, option, value)
        assert result.exit_code == 1 and said.format(tmp=tmp_path) in result.stderr, result.stderr
        assert kept.is_dir() and not (tmp_path / "new").exists()


def test_a_one_step_run_says_step_and_a_one_pair_evaluation_pair(tmp_path: Path, run_cli) -> None:
    """"saved ... after 1 steps" and "model x: 1 pairs" read as slips."""
    result = run_cli("train", "--config", _recipe(tmp_path, steps=1))
    assert result.exit_code == 0 and f"saved {tmp_path / 'run' / 'tiny.pt'} after 1 step in " in result.stdout
    pairs = _pairs(tmp_path / "pairs", {"0.png": ((32, 32), (32, 32))})
    for extra in ((), ("--per-pair",)):
        shown = run_cli("eval", "--pairs", pairs, "--model", tmp_path / "run" / "tiny.pt", *extra).stdout
        assert f"model {tmp_path / 'run' / 'tiny.pt'}: 1 pair, PSNR" in shown, shown


def test_an_image_pattern_that_matches_nothing_is_named(tmp_path: Path, run_cli, monkeypatch) -> None:
    """A typo'd pattern beside good ones trained on less than the recipe said, without a word; alone,
    it said "no training data: give at least one video scene or image"."""
    recipe = _recipe(tmp_path, steps=1)
    good = load_recipe(recipe).data.images[0]
    monkeypatch.chdir(tmp_path)
    for images, named in ((f'["{good}", "/typo/*.jpg"]', "'/typo/*.jpg'"), ('["photos/*.png"]', "'photos/*.png'")):
        result = run_cli("train", "--config", recipe, "--set", f"data.images={images}", "--out-dir", tmp_path / "x")
        where = "" if named.startswith("'/") else f" (relative patterns are read from {tmp_path})"
        assert result.exit_code == 1 and result.stderr_lines == [
            f"videodeblur: error: data.images {named} matches no file{where}"], result.stderr
    assert not (tmp_path / "x").exists()  # nothing written, not even the folder: the same --out-dir takes the run once mended


@pytest.mark.parametrize("setting, hint", [
    ("train.lrr=1", "did you mean train.lr?"),
    ('train.model="x"', "the recipe's model sets it, or --model-config"),
    ("train.data=3", "the recipe's [data] sets it"),
])
def test_a_setting_that_is_no_train_field_names_the_one_meant(tmp_path: Path, run_cli, setting: str, hint: str) -> None:
    """train.model once ended in 'train.model must be a ModelConfig, got 'x'', and a typo's list of
    valid [train] keys offered 'data' and 'model'."""
    config = _recipe(tmp_path, steps=1)
    result = run_cli("train", "--config", config, "--set", setting)
    key = setting.split("=")[0].removeprefix("train.")
    assert result.exit_code == 1 and result.stderr_lines == [
        f"videodeblur: error: {config} [train]: unknown keys [{key!r}] ({hint})"], result.stderr


@pytest.mark.skipif(not torch.distributed.is_available(), reason="this torch has no torch.distributed")
def test_two_ranks_train_what_one_process_trains_and_only_rank_0_writes(tmp_path: Path) -> None:
    """torchrun, 2 CPU processes (gloo) with a batch of 1 each, against one process with a batch of 2:
    the same data (the sampler gives rank r items (step * 2 + r)), the same weights, one log line per
    step, one set of files and one "saved" line."""
    config = _recipe(tmp_path, steps=3, log_every=2)
    single = train(load_recipe(config, out_dir=str(tmp_path / "one")))
    proc = train_on_two_ranks(config, tmp_path / "two")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("saved ") == 1, proc.stdout
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["last.pt", "log.csv", "tiny.json", "tiny.pt"]
    one, two = _log(tmp_path / "one" / "log.csv"), _log(tmp_path / "two" / "log.csv")
    assert [row["step"] for row in two] == ["2", "3"] and [row["lr"] for row in two] == [row["lr"] for row in one]
    for a, b in zip(one, two):
        assert float(b["loss"]) == pytest.approx(float(a["loss"]), rel=1e-5)
    for name, value in _weights(single.weights).items():
        torch.testing.assert_close(_weights(tmp_path / "two" / "tiny.pt")[name], value, rtol=1e-5, atol=1e-6)
    assert torch.load(tmp_path / "two" / "last.pt", weights_only=True)["step"] == 3
    # resumed by one process, its steps would train on half the batch (it went on silently and recorded
    # world_size 1 for a run trained on both)
    with pytest.raises(ConfigError, match=r"with 1 process \(the run started with 2\).*--nproc-per-node 2"):
        train(load_recipe(config, out_dir=str(tmp_path / "two"), steps=5, batch=1), resume=tmp_path / "two" / "last.pt")



@pytest.mark.skipif(not torch.distributed.is_available(), reason="this torch has no torch.distributed")
def test_a_rank_that_loses_the_other_says_so_in_one_line(tmp_path: Path) -> None:
    """Under torchrun, a pair only rank 1 draws is damaged past its header: rank 1 names it, and
    rank 0, whose all-reduce then lost its peer, printed "internal error: RuntimeError: [...gloo...]
    Connection closed by peer ... GLHF!" and the --debug hint, as if videodeblur itself had failed."""
    root = _pairs(tmp_path / "pairs", {"0.png": ((32, 32), (32, 32))})
    damaged = root / "scene" / "blur" / "0.png"
    damaged.write_bytes(damaged.read_bytes()[:60])  # the size check reads the header; the pixels are gone
    config = _recipe(tmp_path, steps=3)
    proc = train_on_two_ranks(config, tmp_path / "two", "--set", f'data.pairs=["{root.as_posix()}"]')
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("videodeblur: ")]
    assert any(f"{damaged}" in line and "not a readable image" in line for line in errors), proc.stderr
    assert not any("internal error" in line for line in errors), proc.stderr
    # rank 0 says why it stopped too, unless torchrun's SIGTERM for the failed rank came first
    assert any("another process of this run stopped" in line or line == "videodeblur: terminated"
               for line in errors), proc.stderr


@pytest.mark.skipif(not torch.distributed.is_available(), reason="this torch has no torch.distributed")
@pytest.mark.parametrize("setting, said", [
    ("train.bogus=1", "unknown keys ['bogus']"),  # the recipe, read by the command
    ("train.threads=99", "train.threads must be at most"),  # the recipe, checked by train()
])
def test_an_error_every_rank_meets_is_said_once(tmp_path: Path, setting: str, said: str) -> None:
    """Under torchrun every rank printed the same one-line error (a recipe error, "already at step N"),
    once per rank; rank 0 says it now, and the others exit without a word (a rank's own error, such as
    its data failing, is still said by it: the test above)."""
    proc = train_on_two_ranks(_recipe(tmp_path, steps=2), tmp_path / "two", "--set", setting)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("videodeblur: ")]
    assert len(errors) == 1 and said in errors[0], proc.stderr


_SLOWED = """
import datetime, sys, time
import torch.distributed.distributed_c10d as c10d
from videodeblur.cli import main
from videodeblur.train import trainer

# collectives time out after 5 s (gloo's 30 min, NCCL's 10, in small), and the {name} takes 10 s: a long
# one's stand-in. Only once the ranks are in step (the first step's loss reduced): starting up on a loaded
# machine (imports, joining the group, DDP's first broadcast) may part them by more, and failed the test
set_timeout = getattr(c10d, "set_timeout", None) or c10d._set_pg_timeout  # an older torch: the private name
reduced = trainer.mean_over_ranks
def mean_over_ranks(*args, **kwargs):
    value = reduced(*args, **kwargs)
    set_timeout(datetime.timedelta(seconds=5))
    return value
trainer.mean_over_ranks = mean_over_ranks
original = trainer.{name}
trainer.{name} = lambda *args, **kwargs: (time.sleep(10), original(*args, **kwargs))[1]
sys.argv[0] = "videodeblur"
main()
"""


@pytest.mark.skipif(not torch.distributed.is_available(), reason="this torch has no torch.distributed")
def test_an_evaluation_longer_than_the_collective_timeout_is_not_cut_short(tmp_path: Path) -> None:
    """Rank 0 scored eval_pairs while the other ranks waited for it in a barrier, which times out
    (gloo 30 min, NCCL 10): rank 1 failed "Timed out waiting ... for recv", and torchrun then killed
    rank 0 in the middle of the evaluation. The ranks now part when training is done."""
    root = _pairs(tmp_path / "pairs", {"0.png": ((32, 32), (32, 32))})
    config = _recipe(tmp_path, steps=2, extra=f'eval_pairs = "{root.as_posix()}"')
    script = tmp_path / "slow_evaluation.py"
    script.write_text(_SLOWED.format(name="evaluate_pairs"))
    proc = train_on_two_ranks(config, tmp_path / "two", script=script)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "two" / "tiny.json").read_text())["evaluation"]["pairs"] == 1


@pytest.mark.skipif(not torch.distributed.is_available(), reason="this torch has no torch.distributed")
def test_a_validation_longer_than_the_collective_timeout_is_not_cut_short(tmp_path: Path) -> None:
    """Rank 0 validated while the other ranks waited for it in the next step's all-reduce, which times
    out (gloo 30 min, NCCL 10): rank 1 failed "Timed out waiting ... for recv" and torchrun killed the
    run. The other ranks now wait for the validation in a barrier that does not time out so soon."""
    root = _pairs(tmp_path / "pairs", {"0.png": ((32, 32), (32, 32))})
    config = _recipe(tmp_path, steps=2, extra=f'val_pairs = "{root.as_posix()}"\nval_every = 1')
    script = tmp_path / "slow_validation.py"
    script.write_text(_SLOWED.format(name="validate"))
    proc = train_on_two_ranks(config, tmp_path / "two", script=script)
    assert proc.returncode == 0, proc.stderr
    assert [row["step"] for row in csv.DictReader((tmp_path / "two" / "val.csv").open())] == ["1", "2"]


_FAILING_LAST_SAVE = """
import sys
from videodeblur.cli import main
from videodeblur.errors import OutputError
from videodeblur.train import trainer

saved = trainer.save_checkpoint
def save(path, model, optimiser, scheduler, scaler, step, *args, **kwargs):
    if step == 2:
        raise OutputError("cannot write the last checkpoint (disk full)")
    saved(path, model, optimiser, scheduler, scaler, step, *args, **kwargs)
trainer.save_checkpoint = save
sys.argv[0] = "videodeblur"
main()
"""


@pytest.mark.skipif(not torch.distributed.is_available(), reason="this torch has no torch.distributed")
def test_a_rank_left_waiting_after_the_last_step_says_why_in_one_line(tmp_path: Path) -> None:
    """Rank 0 failed saving the last step's checkpoint while rank 1 waited for it in the final barrier:
    rank 1 printed "internal error: RuntimeError: [...gloo...] Connection closed by peer ... GLHF!"."""
    errors = _failed_on_two_ranks(tmp_path, _FAILING_LAST_SAVE, steps=2)
    assert "videodeblur: error: cannot write the last checkpoint (disk full)" in errors, errors


def _failed_on_two_ranks(tmp_path: Path, script: str, *, steps: int) -> list[str]:
    """The lines videodeblur said when ``script`` (a part of the trainer replaced) ran a tiny run on two
    ranks that must fail, none an internal error."""
    (tmp_path / "script.py").write_text(script)
    proc = train_on_two_ranks(_recipe(tmp_path, steps=steps), tmp_path / "two", script=tmp_path / "script.py")
    errors = [line for line in proc.stderr.splitlines() if line.startswith("videodeblur: ")]
    assert proc.returncode != 0 and not any("internal error" in line for line in errors), proc.stderr
    return errors


_LATE_RANK_1 = """
import datetime, os, sys, time
import torch.distributed.distributed_c10d as c10d
from videodeblur.cli import main
from videodeblur.train import trainer

# collectives time out after 5 s once the ranks are in step (see _SLOWED), and rank 1 comes to step 2's 15 s late
set_timeout = getattr(c10d, "set_timeout", None) or c10d._set_pg_timeout
reduced, calls = trainer.mean_over_ranks, []
def mean_over_ranks(*args, **kwargs):
    calls.append(1)
    if len(calls) == 2 and os.environ["RANK"] == "1":
        time.sleep(15)
    value = reduced(*args, **kwargs)
    if len(calls) == 1:
        set_timeout(datetime.timedelta(seconds=5))
    return value
trainer.mean_over_ranks = mean_over_ranks
sys.argv[0] = "videodeblur"
main()
"""


@pytest.mark.skipif(not torch.distributed.is_available(), reason="this torch has no torch.distributed")
def test_a_rank_that_never_comes_is_said_in_one_line_and_the_step_kept(tmp_path: Path) -> None:
    """A rank stuck (a hung disk read) or far slower in a step: the others' collective times out (gloo's
    30 min), and rank 0 said "internal error: RuntimeError: [...gloo...] Timed out waiting 5000ms for recv
    operation to complete" and kept no checkpoint of the steps it had done."""
    errors = _failed_on_two_ranks(tmp_path, _LATE_RANK_1, steps=4)
    assert (f"videodeblur: error: rank 0: another process of this run did not reach step 2 within the collectives' "
            f"timeout: it is stuck or far slower than this one (its data, its disk), so the run stops; "
            f"{tmp_path / 'two' / 'last.pt'} holds step 1 for --resume") in errors, errors
    assert torch.load(tmp_path / "two" / "last.pt", weights_only=True)["step"] == 1


def test_world_size_without_torchrun_is_a_one_line_error(tmp_path: Path, run_cli, monkeypatch) -> None:
    """WORLD_SIZE left in the environment (not torchrun's other variables) was "internal error:
    ValueError: Error initializing torch.distributed using env:// rendezvous: ... RANK expected"."""
    for name in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    result = run_cli("train", "--config", _recipe(tmp_path, steps=1))
    assert result.exit_code == 1 and result.stderr_lines == [
        "videodeblur: error: WORLD_SIZE=2 is set but RANK, MASTER_ADDR, MASTER_PORT are not: start the run with "
        "torchrun (torchrun --nproc-per-node 2 -m videodeblur train ...), or unset WORLD_SIZE for one process"]

def test_a_resume_compares_the_files_its_data_paths_name(tmp_path: Path, run_cli, monkeypatch) -> None:
    """The recipe's data paths were compared as text: the same relative pattern resumed from another
    folder (other images) was taken, and the same folder written ``./images//`` was refused."""
    config = tiny_recipe(tmp_path, tmp_path / "run", steps=2, image_hw=(40, 48))
    config.write_text(config.read_text().replace((tmp_path / "images").as_posix(), "images"))
    monkeypatch.chdir(tmp_path)
    assert run_cli("train", "--config", config).exit_code == 0
    last = tmp_path / "run" / "last.pt"
    elsewhere = tmp_path / "elsewhere"
    tiny_recipe(elsewhere, tmp_path / "unused", image_hw=(40, 48))  # its own images/ folder
    monkeypatch.chdir(elsewhere)
    moved = run_cli("train", "--config", config, "--resume", last, "--steps", "4")
    assert moved.exit_code == 1 and len(moved.stderr_lines) == 1, moved.stderr
    assert moved.stderr.startswith(f"videodeblur: error: cannot resume {last} with data.images "
                                   f"{json.dumps([(elsewhere / 'images' / '*.png').as_posix()])}"), moved.stderr
    monkeypatch.chdir(tmp_path)
    same = run_cli("train", "--config", config, "--resume", last, "--steps", "4",
                   "--set", 'data.images=["./images//*.png"]')
    assert same.exit_code == 0, same.stderr
    assert json.loads((tmp_path / "run" / "tiny.json").read_text())["steps"] == 4
