"""Training: a step lowers the loss, resume continues the same loss curve, recipes validate."""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

from conftest import scored_pairs, tiny_recipe, train_on_two_ranks
from videodeblur.config import ModelConfig
from videodeblur.errors import ConfigError, InputNotFoundError, WeightsError
from videodeblur.model import LPRN, load_model, save_weights
from videodeblur.train import distributed, load_recipe, run_record, train, trainer
from videodeblur.train.data import write_rgb
from videodeblur.train.losses import deblur_loss


def test_training_steps_on_a_tiny_batch_lower_the_loss() -> None:
    torch.manual_seed(0)
    net = LPRN(ModelConfig(channels=8, blocks=1, stages=2))
    sharp = torch.nn.functional.interpolate(torch.rand(2, 3, 8, 8), size=24, mode="bilinear")
    blurred = torch.nn.functional.avg_pool2d(sharp, 5, stride=1, padding=2, count_include_pad=False)
    optimiser = torch.optim.AdamW(net.parameters(), lr=2e-3)
    with torch.no_grad():
        before = float(deblur_loss(net(blurred), sharp))
    for _ in range(20):
        loss = deblur_loss(net(blurred), sharp)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        assert float(deblur_loss(net(blurred), sharp)) < before * 0.9


def test_pixel_loss_is_l1_or_mse() -> None:
    a, b = torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.5)
    assert float(deblur_loss(a, b, pixel="l1")) == pytest.approx(0.5)
    assert float(deblur_loss(a, b, pixel="mse")) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="pixel loss"):
        deblur_loss(a, b, pixel="huber")


def test_frequency_term_adds_to_the_l1_loss() -> None:
    a, b = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    assert float(deblur_loss(a, b, frequency_weight=0.1)) > float(deblur_loss(a, b))
    assert float(deblur_loss(a, a, frequency_weight=0.1)) == 0.0


def test_frequency_term_has_the_same_scale_at_every_crop_size() -> None:
    torch.manual_seed(0)
    small = [float(deblur_loss(torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32), frequency_weight=1.0))
             for _ in range(4)]
    large = [float(deblur_loss(torch.rand(2, 3, 128, 128), torch.rand(2, 3, 128, 128), frequency_weight=1.0))
             for _ in range(4)]
    assert np.mean(large) == pytest.approx(np.mean(small), rel=0.1)


def test_static_weight_counts_unchanged_pixels_more() -> None:
    blurred = torch.full((1, 3, 8, 8), 0.5)
    target = blurred.clone()
    target[..., :, :2] = 0.9  # two moving columns; the other six are the same in input and target
    changes_static = target.clone()
    changes_static[..., :, 4:] += 0.1  # wrong where nothing moved
    changes_moving = target.clone()
    changes_moving[..., :, :2] += 0.2  # wrong where it moved
    mean_weight = (6 * 4 + 2 * 1) / 8  # static pixels count 1 + 3 times
    for output, weight in [(changes_static, 4), (changes_moving, 1)]:
        plain = float(deblur_loss(output, target, pixel="mse"))
        weighted = float(deblur_loss(output, target, pixel="mse", blurred=blurred, static_weight=3.0))
        assert weighted == pytest.approx(plain * weight / mean_weight)
    # a pair where nothing moves keeps the plain loss (the weights are normalised)
    still = float(deblur_loss(blurred + 0.1, blurred, pixel="mse", blurred=blurred, static_weight=3.0))
    assert still == pytest.approx(0.01)
    with pytest.raises(ValueError, match="blurred"):
        deblur_loss(target, target, static_weight=1.0)


def _recipe_file(tmp_path: Path, out_dir: Path, steps: int = 6) -> Path:
    return tiny_recipe(tmp_path, out_dir, steps=steps)


def _losses(log: Path) -> dict[int, float]:
    with log.open() as fh:
        return {int(r["step"]): float(r["loss"]) for r in csv.DictReader(fh)}


def test_resume_restores_the_step_and_continues_the_same_loss_curve(tmp_path: Path) -> None:
    straight = train(load_recipe(_recipe_file(tmp_path, tmp_path / "a")))
    assert straight.steps == 6 and straight.weights.is_file()
    expected = _losses(tmp_path / "a" / "log.csv")

    def interrupt_at_3(record: dict) -> None:
        if record["step"] == 3:
            raise KeyboardInterrupt

    recipe = load_recipe(_recipe_file(tmp_path, tmp_path / "b"))
    with pytest.raises(KeyboardInterrupt):
        train(recipe, on_progress=interrupt_at_3)
    checkpoint = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    assert checkpoint["step"] == 3
    resumed = train(recipe, resume=tmp_path / "b" / "last.pt")
    assert resumed.steps == 6
    got = _losses(tmp_path / "b" / "log.csv")
    assert sorted(got) == [1, 2, 3, 4, 5, 6]
    for step in range(1, 7):
        assert got[step] == pytest.approx(expected[step], rel=1e-4)
    a, b = load_model(straight.weights).network, load_model(resumed.weights).network
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        torch.testing.assert_close(pa, pb, rtol=1e-4, atol=1e-6, msg=name)
    metadata = json.loads(straight.weights.with_suffix(".json").read_text())
    assert metadata["steps"] == 6 and metadata["config"]["channels"] == 8 and "hardware" in metadata


def test_validation_logs_every_n_steps_and_keeps_the_best_weights(tmp_path: Path) -> None:
    recipe = dataclasses.replace(load_recipe(_recipe_file(tmp_path, tmp_path / "v")),
                                 val_pairs=str(scored_pairs(tmp_path / "val")), val_every=2, lr=0.05)
    train(recipe)
    with (tmp_path / "v" / "val.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == [2, 4, 6]
    best = max(rows, key=lambda r: float(r["psnr"]))
    meta = json.loads((tmp_path / "v" / "tiny-best.json").read_text())
    assert meta["steps"] == int(best["step"]) and meta["validation"]["psnr"] == pytest.approx(float(best["psnr"]))
    # the run's full metadata, so a -best.pt can ship as it is
    assert meta["recipe"]["steps"] > 0 and meta["seconds"] >= 0 and meta["hardware"] and "commit" in meta
    assert load_model(str(tmp_path / "v" / "tiny-best.pt")).network.config.name == "tiny"


def test_validation_on_several_sets_scores_their_mean(tmp_path: Path) -> None:
    """A clean set and its H.264 copy weigh equally in the score that picks the best weights."""
    rng = np.random.default_rng(2)
    for folder, count in (("clean", 1), ("coded", 3)):  # different sizes: each set counts once, not each pair
        for i in range(count):
            sharp = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
            write_rgb(tmp_path / folder / "s" / "sharp" / f"{i}.png", sharp)
            write_rgb(tmp_path / folder / "s" / "blur" / f"{i}.png", (sharp // 2 + 64).astype(np.uint8))
    sets = [str(tmp_path / "clean"), str(tmp_path / "coded")]
    recipe = load_recipe(_recipe_file(tmp_path, tmp_path / "two"),
                         ["train.val_every=3", f"train.val_pairs={json.dumps(sets)}"])
    assert recipe.val_sets == tuple(sets)
    train(recipe)
    meta = json.loads((tmp_path / "two" / "tiny-best.json").read_text())["validation"]
    assert set(meta["sets"]) == set(sets) and meta["pairs"] == 4
    per_set = [meta["sets"][s]["gain_db"] for s in sets]
    assert meta["gain_db"] == pytest.approx(sum(per_set) / 2, abs=1e-3)
    assert meta["psnr"] == pytest.approx(sum(meta["sets"][s]["psnr"] for s in sets) / 2, abs=1e-3)
    with (tmp_path / "two" / "val.csv").open() as fh:
        assert [int(r["step"]) for r in csv.DictReader(fh)] == [3, 6]
    missing = dataclasses.replace(recipe, val_pairs=(sets[0], str(tmp_path / "nowhere")))
    with pytest.raises(InputNotFoundError, match="nowhere"):
        train(missing)


def test_validation_needs_pairs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="val_pairs"):
        dataclasses.replace(load_recipe(_recipe_file(tmp_path, tmp_path / "w")), val_every=2)


def test_resume_from_a_corrupt_checkpoint_is_a_weights_error(tmp_path: Path) -> None:
    bad = tmp_path / "last.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(WeightsError, match="last.pt"):
        train(load_recipe(_recipe_file(tmp_path, tmp_path / "c")), resume=bad)


def test_resume_from_a_plain_pickle_is_one_error_without_torchs_warning(tmp_path: Path) -> None:
    """A file written with pickle.dump (protocol 4) made torch warn in two lines before the error."""
    import pickle
    import warnings

    bad = tmp_path / "last.pt"
    bad.write_bytes(pickle.dumps({"optimiser": 1}, protocol=4))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(WeightsError, match="corrupt or not a videodeblur checkpoint"):
            train(load_recipe(_recipe_file(tmp_path, tmp_path / "c")), resume=bad)
    assert [str(w.message) for w in caught] == []


def test_recipe_with_unknown_key_is_a_config_error(tmp_path: Path) -> None:
    recipe = _recipe_file(tmp_path, tmp_path / "d")
    recipe.write_text(recipe.read_text().replace("[train]", "[train]\nlearning_rate = 1"))
    with pytest.raises(ConfigError, match="learning_rate"):
        load_recipe(recipe)


def test_unknown_pixel_loss_is_a_config_error(tmp_path: Path) -> None:
    recipe = _recipe_file(tmp_path, tmp_path / "e")
    recipe.write_text(recipe.read_text().replace("[train]", '[train]\npixel_loss = "huber"'))
    with pytest.raises(ConfigError, match="pixel_loss"):
        load_recipe(recipe)


def test_command_line_overrides_replace_the_recipe_fields(tmp_path: Path) -> None:
    recipe = _recipe_file(tmp_path, tmp_path / "f")
    base = load_recipe(recipe)
    changed = load_recipe(recipe, steps=base.steps + 5, seed=base.seed + 7, out_dir=str(tmp_path / "g"))
    assert (changed.steps, changed.seed, changed.out_dir) == (base.steps + 5, base.seed + 7, str(tmp_path / "g"))
    assert load_recipe(recipe, seed=None).seed == base.seed  # an option left unset keeps the recipe's value


def test_settings_change_any_recipe_field(tmp_path: Path) -> None:
    recipe = _recipe_file(tmp_path, tmp_path / "s")
    base = load_recipe(recipe)
    changed = load_recipe(recipe, ["train.frequency_weight=0.05", "data.mix.exposures=[9, 13]",
                                   "train.out_dir=runs/elsewhere", "train.static_weight = 2"])
    assert changed.frequency_weight == 0.05 and changed.static_weight == 2.0
    assert changed.data.mix.exposures == (9, 13)
    assert changed.out_dir == "runs/elsewhere"  # not TOML: taken as a string
    assert dataclasses.replace(changed, frequency_weight=0.0, static_weight=0.0, out_dir=base.out_dir,
                               data=base.data) == base  # nothing else moved
    assert load_recipe(recipe, ["train.steps=9"], steps=11).steps == 11  # --steps wins over --set
    for bad, message in [("train.frequency_weigth=0.1", "unknown keys"), ("steps", "SECTION.KEY=VALUE"),
                         ("train.lr=2", "lr must be"), ("train.steps.x=1", "not a table")]:
        with pytest.raises(ConfigError, match=message):
            load_recipe(recipe, [bad])


def test_shipped_recipes_parse() -> None:
    root = Path(__file__).resolve().parent.parent / "configs" / "train"
    recipes = sorted(root.glob("*.toml"))
    assert recipes
    for path in recipes:
        # your-footage.toml is a template: its header says to give the footage with --set
        settings = ['data.videos=[{path="my_clip.mp4"}]'] if path.name == "your-footage.toml" else []
        assert load_recipe(path, settings).steps > 0
    with pytest.raises(ConfigError, match="needs at least one of videos, images or pairs"):
        load_recipe(root / "your-footage.toml")


def test_weight_average_is_what_is_saved_and_it_resumes_exactly(tmp_path: Path) -> None:
    plain = train(load_recipe(_recipe_file(tmp_path, tmp_path / "p")))
    recipe = dataclasses.replace(load_recipe(_recipe_file(tmp_path, tmp_path / "e")), ema_decay=0.5)
    straight = train(recipe)
    checkpoint = torch.load(tmp_path / "e" / "last.pt", weights_only=True)
    averaged = {k.removeprefix("module."): v for k, v in checkpoint["ema"].items() if k.startswith("module.")}
    saved = load_model(straight.weights).network.state_dict()
    for name, value in saved.items():
        torch.testing.assert_close(value, averaged[name], msg=name)  # the saved weights are the average
    raw = load_model(plain.weights).network.state_dict()  # same data and seed, no averaging
    assert any(not torch.allclose(saved[k], raw[k]) for k in saved)
    assert int(checkpoint["ema"]["n_averaged"]) == 6

    def interrupt_at_3(record: dict) -> None:
        if record["step"] == 3:
            raise KeyboardInterrupt

    again = dataclasses.replace(recipe, out_dir=str(tmp_path / "r"))
    with pytest.raises(KeyboardInterrupt):
        train(again, on_progress=interrupt_at_3)
    resumed = train(again, resume=tmp_path / "r" / "last.pt")
    for name, value in load_model(resumed.weights).network.state_dict().items():
        torch.testing.assert_close(value, saved[name], rtol=1e-4, atol=1e-6, msg=name)
    with pytest.raises(WeightsError, match="weight average"):
        train(dataclasses.replace(recipe, out_dir=str(tmp_path / "x")), resume=tmp_path / "p" / "last.pt")


def test_ema_decay_out_of_range_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ema_decay"):
        dataclasses.replace(load_recipe(_recipe_file(tmp_path, tmp_path / "c")), ema_decay=1.0)


def test_missing_validation_pairs_fail_before_training(tmp_path: Path) -> None:
    recipe = dataclasses.replace(load_recipe(_recipe_file(tmp_path, tmp_path / "m")),
                                 val_pairs=str(tmp_path / "nowhere"), val_every=2)
    with pytest.raises(InputNotFoundError, match="validation pairs not found"):
        train(recipe)
    assert not (tmp_path / "m" / "log.csv").exists()


@pytest.mark.parametrize("folder, how", [
    ("runs/val_bikes000", "w('../shared/data/video/bikes.mp4', 'runs/val_bikes000', first=0, stop=30"),
    ("runs/val_bikes000_h264crf23", "c('runs/val_bikes000', 'runs/val_bikes000_h264crf23')"),
    ("mine/val", "<scene>/blur/*.png with <scene>/sharp/*.png pairs"),
])
def test_missing_validation_pairs_say_why_they_stop_the_run_and_how_to_make_them(tmp_path: Path, monkeypatch,
                                                                                 folder: str, how: str) -> None:
    """A missing eval_pairs is a warning, a missing val_pairs stops the run, and the error said neither
    why nor how to make the set the shipped recipes name (h2's C6): the best weights by validation
    cannot be had after the run, the evaluation figure can (eval --record)."""
    monkeypatch.chdir(tmp_path)
    recipe = dataclasses.replace(load_recipe(_recipe_file(tmp_path, tmp_path / "m")), val_pairs=folder, val_every=2)
    with pytest.raises(InputNotFoundError) as raised:
        train(recipe)
    message = str(raised.value)
    assert "\n" not in message and how in message and "tiny-best.pt" in message, message
    assert "eval --record" in message and message.endswith("--set train.val_every=0")
    if folder.endswith("bikes000"):  # the command docs/MODEL.md gives, word for word
        model_md = (Path(__file__).parents[1] / "docs" / "MODEL.md").read_text().replace("\\\n  ", "")
        assert message.split("python -c ")[1].split(" (docs/MODEL.md")[0] in model_md


def test_init_weights_start_training_from_trained_weights(tmp_path: Path, run_cli) -> None:
    first = train(load_recipe(_recipe_file(tmp_path, tmp_path / "a")))
    trained = load_model(first.weights).network.state_dict()
    # a near-zero learning rate: one step from the given weights leaves them where they were
    result = run_cli("train", "--config", _recipe_file(tmp_path, tmp_path / "f", steps=1),
                     "--init", first.weights, "--set", "train.lr=1e-12")
    assert result.exit_code == 0, result.stderr
    tuned = load_model(tmp_path / "f" / "tiny.pt").network.state_dict()
    assert float(trained["reconstruct.weight"].abs().sum()) > 0  # not the identity init (zeros)
    for name, value in trained.items():
        torch.testing.assert_close(tuned[name], value, rtol=1e-5, atol=1e-7, msg=name)
    metadata = json.loads((tmp_path / "f" / "tiny.json").read_text())
    assert metadata["recipe"]["init_weights"] == str(first.weights)
    # the starting weights are named by content too, and their own training adds up
    assert metadata["init"]["sha256"] == hashlib.sha256(first.weights.read_bytes()).hexdigest()
    assert metadata["init"]["steps"] == 6 and metadata["init"]["recipe"]["steps"] == 6


def test_init_weights_with_another_config_is_a_one_line_error(tmp_path: Path, run_cli) -> None:
    other = tmp_path / "other.pt"
    save_weights(other, LPRN(ModelConfig(name="other", channels=4, blocks=1, stages=1)))
    result = run_cli("train", "--config", _recipe_file(tmp_path, tmp_path / "g", steps=1), "--init", other)
    assert result.exit_code != 0
    assert len(result.stderr_lines) == 1 and "other.pt" in result.stderr and "channels 4 vs 8" in result.stderr
    assert not (tmp_path / "g" / "tiny.pt").exists()
    # the same architecture under another name fits: shipped files are renamed (lprn-t6-both → lprn)
    renamed = tmp_path / "renamed.pt"
    save_weights(renamed, LPRN(ModelConfig(name="renamed", channels=8, blocks=1, stages=2, unshuffle=2)))
    result = run_cli("train", "--config", _recipe_file(tmp_path, tmp_path / "h", steps=1), "--init", renamed)
    assert result.exit_code == 0, result.stderr
    assert load_model(tmp_path / "h" / "tiny.pt").network.config.name == "tiny"


@pytest.mark.parametrize("setting, key", [("steps=2", "train.steps"), ("seed=3", "train.seed"),
                                          ("trian.steps=2", "[train]"), ("images=[]", "data.images")])
def test_unknown_top_level_keys_and_tables_are_config_errors(tmp_path: Path, setting: str, key: str) -> None:
    """``--set steps=2`` (no ``train.``) once ran the recipe's own steps; a ``[trian]`` table was ignored."""
    recipe = _recipe_file(tmp_path, tmp_path / "u")
    name = setting.split("=")[0].split(".")[0]
    with pytest.raises(ConfigError, match=rf"unknown top-level .*{name}.*did you mean {re.escape(key)}\?.*"
                                          r"model, \[train\], \[data\]"):
        load_recipe(recipe, [setting])
    recipe.write_text(recipe.read_text() + "\n[evaluation]\npairs = 3\n")
    with pytest.raises(ConfigError, match=r"unknown top-level table \[evaluation\]; a recipe holds"):
        load_recipe(recipe)


@pytest.mark.parametrize("setting, message", [
    ("train.checkpoint_every=0", "train.checkpoint_every must be a whole number >= 1, got 0"),
    ("train.log_every=0", "train.log_every must be a whole number >= 1, got 0"),
    ("train.batch=2.5", "train.batch must be a whole number >= 1, got 2.5"),
    ("train.steps=true", "train.steps must be a whole number >= 1, got True"),
    ('train.lr="abc"', "train.lr must be a number in (0, 1), got 'abc'"),
    ("train.val_limit=0", "train.val_limit must be a whole number >= 1, got 0"),
    ("train.val_pairs=[1]", "train.val_pairs must be a string or a list of strings, got [1]"),
    ("data.mix.crop=0", "data.mix.crop must be a whole number >= 8, got 0"),
    ("data.mix.crop=-8", "data.mix.crop must be a whole number >= 8, got -8"),
    ('data.mix.crop="big"', "data.mix.crop must be a whole number >= 8, got 'big'"),
    ("data.mix.kernel_sizes=[]", "data.mix.kernel_sizes must be a non-empty list of whole numbers >= 1, got []"),
    ("data.mix.warp_scale=[0.5]", "data.mix.warp_scale must be a list of 2 numbers > 0, got [0.5]"),
    ("data.mix.jpeg_quality=[90, 60]", "data.mix.jpeg_quality must be [low, high] with low < high"),
    ("data.mix.exposures=[9, 41]", "data.mix.exposures must be at most 2 * data.mix.upsample + 1 = 17"),
    ('data.images="tdata/*.png"',
     """data.images must be a list of strings, got 'tdata/*.png' (a list: ["tdata/*.png"])"""),
    ("data.cache_dir=5", "data.cache_dir must be a string, got 5"),
    ('data.videos="a.mp4"', "data.videos must be [[data.videos]] tables"),
    ("data.videos=[{path = 'a.mp4', step = 0}]", "data.videos.step must be a whole number >= 1, got 0"),
    ("train=3", r"train must be a table ([train]), got 3"),
    # an inverted range held nothing out: the frames meant for evaluation were trained on
    ("data.videos=[{path = 'a.mp4', exclude = [[187, 142]]}]",
     "data.videos.exclude ranges must be [first, stop) with first < stop, got [187, 142]"),
    ("data.mix.kernel_sizes=[4]", "data.mix.kernel_sizes must be odd whole numbers >= 3 (a kernel has a centre), got [4]"),
])
def test_recipe_values_are_checked_by_type_and_range(tmp_path: Path, setting: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_recipe(_recipe_file(tmp_path, tmp_path / "t"), [setting])


def test_an_inline_model_table_gives_every_architecture_key(tmp_path: Path) -> None:
    """A model file must spell out its architecture, and so must a recipe's [model] table: one that
    left out unshuffle and stages trained a 6-stage full-resolution network, 16 times slower."""
    recipe = _recipe_file(tmp_path, tmp_path / "t")
    recipe.write_text(recipe.read_text().replace("stages = 2\n", "").replace("unshuffle = 2\n", ""))
    with pytest.raises(ConfigError, match=r"\[model\]: missing stages, unshuffle \(a model config gives each of"):
        load_recipe(recipe)


def test_a_recipe_naming_a_folder_as_its_model_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "m.toml").mkdir()
    with pytest.raises(ConfigError, match=r"config file .*m\.toml is a folder; give a \.toml file"):
        load_recipe(_recipe_file(tmp_path, tmp_path / "t"), ['model="m.toml"'])


@pytest.mark.parametrize("name", ["threads", "workers"])
def test_thread_and_worker_counts_past_four_a_core_are_refused(tmp_path: Path, name: str) -> None:
    """train.workers=100000 forked loader processes until memory ran out; threads=100000 failed as
    'pip install _lsprof'. Refused before any is started."""
    recipe = load_recipe(_recipe_file(tmp_path, tmp_path / "t"), [f"train.{name}=100000"])
    with pytest.raises(ConfigError, match=rf"^train\.{name} must be at most \d+ \(four per core here\), got 100000$"):
        train(recipe)
    assert not (tmp_path / "t").exists()


def test_recipe_fields_take_the_kind_of_value_they_hold(tmp_path: Path) -> None:
    recipe = load_recipe(_recipe_file(tmp_path, tmp_path / "k"), ["train.lr=1", "train.lr=0.5", "train.grad_clip=2",
                                                                   "data.mix.warp_scale=[1, 2]"])
    assert recipe.grad_clip == 2.0 and isinstance(recipe.grad_clip, float)  # a float field accepts an int
    assert recipe.data.mix.warp_scale == (1.0, 2.0) and isinstance(recipe.data.images, tuple)
    with pytest.raises(ConfigError, match="train.batch must be a whole number >= 1, got 2.5"):
        dataclasses.replace(recipe, batch=2.5)  # built in code, checked the same way


def test_crop_larger_than_the_images_fails_before_training_naming_the_crop(tmp_path: Path, run_cli) -> None:
    """It once failed at a random step naming "crop 1016" (the crop plus the blur margin)."""
    result = run_cli("train", "--config", _recipe_file(tmp_path, tmp_path / "big"), "--set", "data.mix.crop=1000")
    assert result.exit_code == 1 and len(result.stderr_lines) == 1, result.stderr
    assert ("data.mix.crop 1000 needs training images and video frames of at least 1006x1006 px (the crop plus "
            "3 px each side for camera-shake kernels up to 7 px), but the smallest is 56x48") in result.stderr
    assert not (tmp_path / "big" / "log.csv").exists()
    assert run_cli("train", "--config", _recipe_file(tmp_path, tmp_path / "fits", steps=1),
                   "--set", "data.mix.crop=42").exit_code == 0  # 42 + 2 * 3 = 48: the largest that fits


def test_resume_at_or_past_the_last_step_is_an_error_that_rewrites_nothing(tmp_path: Path, run_cli) -> None:
    """It once ran no step and wrote final_loss NaN over the finished run's weights metadata."""
    config = _recipe_file(tmp_path, tmp_path / "done", steps=3)
    train(load_recipe(config))
    files = {p: p.read_bytes() for p in (tmp_path / "done").iterdir()}
    result = run_cli("train", "--config", config, "--resume", tmp_path / "done" / "last.pt")
    assert result.exit_code == 1 and len(result.stderr_lines) == 1, result.stderr
    assert "is already at step 3 of 3" in result.stderr and "--steps 6" in result.stderr
    assert {p: p.read_bytes() for p in (tmp_path / "done").iterdir()} == files
    with pytest.raises(ConfigError, match="already at step 3 of 2"):
        train(load_recipe(config, steps=2), resume=tmp_path / "done" / "last.pt")
    further = run_cli("train", "--config", config, "--resume", tmp_path / "done" / "last.pt", "--steps", "4")
    assert further.exit_code == 0, further.stderr
    assert json.loads((tmp_path / "done" / "tiny.json").read_text())["steps"] == 4


def _interrupt_at(step: int) -> Callable[[dict], None]:
    def stop(record: dict) -> None:
        if record["step"] == step:
            raise KeyboardInterrupt
    return stop


def test_resume_keeps_the_init_the_run_started_with(tmp_path: Path, run_cli) -> None:
    """Resuming without --init once wrote no `init` and init_weights None; another --init was recorded."""
    first = train(load_recipe(_recipe_file(tmp_path, tmp_path / "a")))
    config = _recipe_file(tmp_path, tmp_path / "f", steps=4)
    with pytest.raises(KeyboardInterrupt):
        train(load_recipe(config, init_weights=str(first.weights)), on_progress=_interrupt_at(2))
    last = tmp_path / "f" / "last.pt"
    other = save_weights(tmp_path / "other.pt", LPRN(ModelConfig(name="other", channels=8, blocks=1, stages=2,
                                                                   unshuffle=2)))
    files = {p: p.read_bytes() for p in (tmp_path / "f").iterdir()}
    wrong = run_cli("train", "--config", config, "--resume", last, "--init", other)
    assert wrong.exit_code == 1 and len(wrong.stderr_lines) == 1, wrong.stderr
    assert f"init_weights {other} (--init) cannot apply when resuming" in wrong.stderr
    assert f"started from {first.weights}" in wrong.stderr and "leave out --init" in wrong.stderr
    assert {p: p.read_bytes() for p in (tmp_path / "f").iterdir()} == files
    resumed = run_cli("train", "--config", config, "--resume", last)
    assert resumed.exit_code == 0, resumed.stderr
    metadata = json.loads((tmp_path / "f" / "tiny.json").read_text())
    assert metadata["steps"] == 4 and metadata["recipe"]["init_weights"] == str(first.weights)
    assert metadata["init"]["sha256"] == hashlib.sha256(first.weights.read_bytes()).hexdigest()
    assert metadata["init"]["weights"] == str(first.weights) and metadata["init"]["steps"] == 6
    # the same --init again is no contradiction
    same = run_cli("train", "--config", config, "--resume", last, "--init", first.weights, "--steps", "5")
    assert same.exit_code == 0, same.stderr
    assert json.loads((tmp_path / "f" / "tiny.json").read_text())["init"] == metadata["init"]
    # a run that started from the identity cannot take one on either
    identity = run_cli("train", "--config", config, "--resume", tmp_path / "a" / "last.pt", "--init", first.weights,
                       "--steps", "7")
    assert identity.exit_code == 1 and "started from the identity" in identity.stderr


def test_missing_eval_pairs_is_one_warning_at_the_start(tmp_path: Path, run_cli) -> None:
    """Shipped recipes name "runs/eval_pairs" (relative): elsewhere training ended with evaluation null, unsaid."""
    config = _recipe_file(tmp_path, tmp_path / "n", steps=2)
    nowhere = tmp_path / "nowhere"
    result = run_cli("train", "--config", config, "--set", f'train.eval_pairs="{nowhere.as_posix()}"')
    assert result.exit_code == 0, result.stderr
    warnings = [i for i, line in enumerate(result.stderr_lines) if line.startswith("videodeblur: warning:")]
    assert warnings == [0], result.stderr  # one line, before the first progress line
    assert str(nowhere) in result.stderr_lines[0] and "no evaluation will be recorded" in result.stderr_lines[0]
    assert json.loads((tmp_path / "n" / "tiny.json").read_text())["evaluation"] is None
    with pytest.warns(UserWarning, match="no evaluation will be recorded"):  # the library's default
        train(load_recipe(config, out_dir=str(tmp_path / "m"), eval_pairs=str(nowhere)))


def test_resume_from_a_weights_file_points_to_init(tmp_path: Path) -> None:
    recipe = load_recipe(_recipe_file(tmp_path, tmp_path / "w", steps=2))
    weights = train(recipe).weights
    other = save_weights(tmp_path / "other.pt", LPRN(ModelConfig(name="other", channels=4, blocks=1, stages=1)))
    for given in (weights, other):  # its config matching the recipe's or not, it is the same mistake
        with pytest.raises(WeightsError, match=rf"{re.escape(str(given))}: it is a weights file, not a training "
                                               r"checkpoint .*give them with --init instead of --resume"):
            train(dataclasses.replace(recipe, steps=4), resume=given)
    with pytest.raises(WeightsError, match="corrupt or not a videodeblur checkpoint"):
        train(dataclasses.replace(recipe, steps=4), resume=_garbage(tmp_path / "bad.pt"))


def _garbage(path: Path) -> Path:
    path.write_bytes(b"garbage")
    return path


def test_only_rank_0_reports(tmp_path: Path, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under torchrun every rank printed its own "saved ... (loss X)" line."""
    config = _recipe_file(tmp_path, tmp_path / "r", steps=2)
    nowhere = f'train.eval_pairs="{(tmp_path / "nowhere").as_posix()}"'
    main = run_cli("train", "--config", config, "--set", nowhere)
    assert main.stdout.startswith("saved ") and "no evaluation will be recorded" in main.stderr
    monkeypatch.setattr(trainer, "init_distributed", lambda: (1, 1))  # the seam: this process is rank 1
    other = run_cli("train", "--config", config, "--set", nowhere, "--out-dir", tmp_path / "r1")
    assert other.exit_code == 0, other.stderr
    assert other.stdout == "" and other.stderr == "" and not (tmp_path / "r1").exists()


def test_loss_mean_over_one_rank_is_the_loss() -> None:
    assert distributed.mean_over_ranks(0.25, 1, torch.device("cpu")) == 0.25


@pytest.mark.skipif(not torch.distributed.is_available(), reason="this torch has no torch.distributed")
def test_two_ranks_log_the_loss_of_the_whole_batch(tmp_path: Path) -> None:
    """torchrun, 2 CPU processes (gloo), a batch of 1 each: the log and final loss are those of one
    process with a batch of 2 (DDP averages the gradients, the log averages the losses), and one line
    says it was saved. The log once held rank 0's loss alone, and each rank printed its line."""
    config = _recipe_file(tmp_path, tmp_path / "one", steps=3)
    single = train(load_recipe(config, ["train.batch=2"]))
    proc = train_on_two_ranks(config, tmp_path / "two")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("saved ") == 1 and f"(loss {single.final_loss:.4f})" in proc.stdout, proc.stdout
    expected, got = _losses(tmp_path / "one" / "log.csv"), _losses(tmp_path / "two" / "log.csv")
    assert sorted(got) == [1, 2, 3]
    for step in got:
        assert got[step] == pytest.approx(expected[step], rel=1e-4), step
    assert json.loads((tmp_path / "two" / "tiny.json").read_text())["world_size"] == 2


@pytest.mark.parametrize("how", ["model-config", "set"])
def test_a_model_name_that_is_a_path_is_refused_before_anything_is_written(tmp_path: Path, run_cli, how: str) -> None:
    """``name = "../../escape"`` once saved the weights outside --out-dir."""
    config = _recipe_file(tmp_path, tmp_path / "runs" / "out", steps=1)
    model = tmp_path / "evil.toml"
    model.write_text('[model]\nname = "../../escape"\nchannels = 8\nblocks = 1\nstages = 2\nattention = "both"\n'
                     "unshuffle = 2\n")
    extra = ("--model-config", model) if how == "model-config" else ("--set", 'model.name="../../escape"')
    result = run_cli("train", "--config", config, *extra)
    assert result.exit_code == 1 and len(result.stderr_lines) == 1, result.stderr
    assert "model.name must be a plain file name" in result.stderr and "'../../escape'" in result.stderr
    assert not (tmp_path / "runs").exists() and not list(tmp_path.glob("escape*"))


def test_a_training_checkpoint_given_as_weights_points_to_the_weights_beside_it(tmp_path: Path, run_cli) -> None:
    train(load_recipe(_recipe_file(tmp_path, tmp_path / "c", steps=1)))
    last = tmp_path / "c" / "last.pt"
    with pytest.raises(WeightsError, match=rf"^{re.escape(str(last))} is a training checkpoint .*not a weights file: "
                                           rf"the run's weights are {re.escape(str(tmp_path / 'c' / 'tiny.pt'))} "):
        load_model(last)
    result = run_cli("train", "--config", _recipe_file(tmp_path, tmp_path / "d", steps=1), "--init", last)
    assert result.exit_code == 1 and len(result.stderr_lines) == 1, result.stderr
    assert "is a training checkpoint" in result.stderr and not (tmp_path / "d" / "tiny.pt").exists()
    # a run stopped before it saved any: the weights it named were not there
    (tmp_path / "c" / "tiny.pt").unlink()
    with pytest.raises(WeightsError, match=r"not a weights file: its run has saved no weights yet \(tiny.pt is not "
                                           rf"beside it\): train --resume {re.escape(str(last))} finishes the run"):
        load_model(last)


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false", *args], cwd=cwd, check=True,
                   capture_output=True)


@pytest.mark.skipif(shutil.which("git") is None, reason="no git here")
def test_the_commit_is_recorded_only_from_this_projects_own_checkout(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A pip-installed copy inside the user's own git repository once recorded the user's commit."""
    for repo, package, setup in [(tmp_path / "user", "lib/site-packages/videodeblur", None),
                                 (tmp_path / "other", "videodeblur", "[metadata]\nname = something-else\n"),
                                 (tmp_path / "ours", "videodeblur", "[metadata]\nname = videodeblur\n")]:
        (repo / package / "train").mkdir(parents=True)
        if setup:
            (repo / "setup.cfg").write_text(setup)
        _git(repo, "init", "-q")
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", "x", "--allow-empty")
        monkeypatch.setattr(run_record, "__file__", str(repo / package / "train" / "run_record.py"))
        commit = run_record.git_commit()
        assert (commit is not None) == (repo.name == "ours"), (repo, commit)


def test_the_run_records_the_package_version(tmp_path: Path) -> None:
    import videodeblur

    recipe = load_recipe(_recipe_file(tmp_path, tmp_path / "v"))
    metadata = run_record.run_metadata(recipe, 1, 1.0, torch.device("cpu"), 1, None)
    assert metadata["version"] == videodeblur.__version__ and "commit" in metadata
