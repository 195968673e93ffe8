"""Evaluation: a constructed pair gives the PSNR arithmetic says; the eval command's JSON."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from videodeblur.config import ModelConfig
from videodeblur.errors import ConfigError, UnreadableInputError
from videodeblur.model import LPRN, load_model, registry, save_weights
from videodeblur.train import (combined_summary, evaluate_pairs, psnr, ssim, write_averaged_pairs,
                               write_compressed_pairs)
from videodeblur.train.data import find_folder_pairs, read_rgb, write_rgb
from videodeblur.train.evaluate import unpaired_blurred


def _identity_weights(path: Path) -> Path:
    """An LPRN whose residual branches are zero: output == input exactly."""
    net = LPRN(ModelConfig(channels=8, blocks=1, stages=2))
    with torch.no_grad():
        for layer in (net.tail, net.reconstruct):
            layer.weight.zero_()
            layer.bias.zero_()
    return save_weights(path, net)


def _constant_pair(root: Path, offset: int, *, scene: str = "scene", frame: int = 1) -> None:
    sharp = np.full((20, 30, 3), 100, np.uint8)
    write_rgb(root / scene / "sharp" / f"{frame:06d}.png", sharp)
    write_rgb(root / scene / "blur" / f"{frame:06d}.png", sharp + offset)


def test_psnr_and_ssim_of_known_differences() -> None:
    a = torch.full((1, 3, 32, 32), 100 / 255)
    b = torch.full((1, 3, 32, 32), 110 / 255)
    assert float(psnr(a, b)) == pytest.approx(20 * math.log10(255 / 10), abs=1e-6)
    assert math.isinf(float(psnr(a, a)))
    assert float(ssim(a, a)) == pytest.approx(1.0)
    noisy = (a + 0.1 * torch.randn_like(a)).clamp(0, 1)
    assert 0 < float(ssim(noisy, a)) < 0.9


def test_eval_of_an_identity_network_reports_the_input_psnr(tmp_path: Path) -> None:
    _constant_pair(tmp_path / "pairs", offset=10)
    weights = _identity_weights(tmp_path / "id.pt")
    report = evaluate_pairs(load_model(weights).network, tmp_path / "pairs").summary("id")
    expected = 20 * math.log10(255 / 10)
    assert report["pairs"] == 1
    assert report["psnr"] == pytest.approx(expected, abs=1e-3)
    assert report["psnr_input"] == pytest.approx(expected, abs=1e-3)
    assert report["gain_db"] == pytest.approx(0.0, abs=1e-3)
    assert report["psnr_sharp_through"] == 100.0  # identical: capped so the JSON stays finite


def test_eval_command_json(tmp_path: Path, run_cli) -> None:
    _constant_pair(tmp_path / "pairs", offset=5)
    weights = _identity_weights(tmp_path / "id.pt")
    result = run_cli("eval", "--pairs", tmp_path / "pairs", "--model", weights, "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) >= {"model", "pairs", "psnr", "ssim", "psnr_input", "gain_db"}
    assert data["pairs"] == 1
    assert data["psnr"] == pytest.approx(20 * math.log10(255 / 5), abs=1e-3)


def test_eval_reports_each_scene_and_the_mean_over_all_pairs(tmp_path: Path, run_cli) -> None:
    for scene, offsets in (("near", (5, 5)), ("far", (10, 20))):
        for frame, offset in enumerate(offsets):
            _constant_pair(tmp_path / "pairs", offset, scene=scene, frame=frame)
    weights = _identity_weights(tmp_path / "id.pt")
    result = run_cli("eval", "--pairs", tmp_path / "pairs", "--model", weights, "--json")
    data = json.loads(result.stdout)
    db = lambda offset: 20 * math.log10(255 / offset)
    assert list(data["scenes"]) == ["far", "near"]
    assert data["scenes"]["near"]["pairs"] == 2
    assert data["scenes"]["near"]["psnr_input"] == pytest.approx(db(5), abs=1e-3)
    assert data["scenes"]["far"]["psnr_input"] == pytest.approx((db(10) + db(20)) / 2, abs=1e-3)
    assert data["psnr_input"] == pytest.approx((2 * db(5) + db(10) + db(20)) / 4, abs=1e-3)
    table = run_cli("eval", "--pairs", tmp_path / "pairs", "--model", weights).stdout
    assert "scene far: 2 pairs" in table and "scene near: 2 pairs" in table



def test_scenes_in_the_gopro_datasets_own_layout_are_told_apart(tmp_path: Path, run_cli) -> None:
    """GOPRO_Large/test/<scene>/blur/...: scenes were the first folder of a pair's name, so every
    test scene was one scene "test"; and blur/ right under --pairs made a scene called "blur"."""
    for scene, offset in (("test/GOPR0384_11_00", 5), ("test/GOPR0385_11_01", 10)):
        _constant_pair(tmp_path / "GOPRO_Large", offset, scene=scene)
    weights = _identity_weights(tmp_path / "id.pt")
    data = json.loads(run_cli("eval", "--pairs", tmp_path / "GOPRO_Large", "--model", weights, "--json").stdout)
    assert list(data["scenes"]) == ["test/GOPR0384_11_00", "test/GOPR0385_11_01"]
    _constant_pair(tmp_path / "flat", 5, scene=".")
    data = json.loads(run_cli("eval", "--pairs", tmp_path / "flat", "--model", weights, "--json").stdout)
    assert list(data["scenes"]) == ["."]


def test_eval_record_stores_the_result_in_the_weights_metadata(tmp_path: Path, run_cli) -> None:
    _constant_pair(tmp_path / "pairs", offset=5)
    weights = _identity_weights(tmp_path / "id.pt")
    (tmp_path / "id.json").write_text(json.dumps({"steps": 7}))
    result = run_cli("eval", "--pairs", tmp_path / "pairs", "--model", weights, "--record", "--json")
    assert result.exit_code == 0, result.stderr
    meta = json.loads((tmp_path / "id.json").read_text())
    assert meta["steps"] == 7  # what was there is kept
    # the file's own record names the model by its name, as the trainer's does; the output by the path given
    assert meta["evaluation"] == {**json.loads(result.stdout), "model": "id"}
    assert meta["evaluation"]["psnr"] == pytest.approx(20 * math.log10(255 / 5), abs=1e-3)


def test_eval_names_a_weights_file_by_the_path_given_and_a_shipped_model_by_its_name(tmp_path: Path,
                                                                                      run_cli) -> None:
    """A run saves under its model's name: runs/x/lprn-fast.pt and the shipped lprn-fast were both
    reported as "model": "lprn-fast", so two results could not be told apart."""
    _constant_pair(tmp_path / "pairs", offset=5)
    weights = _identity_weights(tmp_path / "run" / "lprn-fast.pt")
    given = str(weights)
    data = json.loads(run_cli("eval", "--pairs", tmp_path / "pairs", "--model", given, "--json").stdout)
    assert data["model"] == given
    text = run_cli("eval", "--pairs", tmp_path / "pairs", "--model", given).stdout
    assert text.splitlines()[-1].startswith(f"model {given}: 1 pair")
    shipped = json.loads(run_cli("eval", "--pairs", tmp_path / "pairs", "--model", "LPRN-fast", "--json").stdout)
    assert shipped["model"] == "lprn-fast"


def test_eval_record_on_other_pairs_drops_the_h264_figure_of_the_old_ones(tmp_path: Path, run_cli) -> None:
    """A recorded evaluation replaced the old one, and left its H.264 figure (of the old pairs' H.264
    copy) beside it: `models` then showed the two side by side as one model's. Recorded again on the
    same pairs, the H.264 figure stays."""
    _constant_pair(tmp_path / "pairs", offset=5)
    _constant_pair(tmp_path / "other", offset=9)
    weights = _identity_weights(tmp_path / "id.pt")
    compressed = {"pairs": 1, "psnr": 30.0, "gain_db": 0.1}
    (tmp_path / "id.json").write_text(json.dumps({"eval_pairs": str(tmp_path / "pairs"), "evaluation": {},
                                                  "evaluation_compressed": compressed,
                                                  "eval_pairs_compressed": "pairs_h264"}))
    same = run_cli("eval", "--pairs", tmp_path / "pairs", "--model", weights, "--record")
    assert same.exit_code == 0 and same.stderr == "", same.stderr
    assert json.loads((tmp_path / "id.json").read_text())["evaluation_compressed"] == compressed
    other = run_cli("eval", "--pairs", tmp_path / "other", "--model", weights, "--record")
    assert other.exit_code == 0 and other.stderr_lines == [
        f"videodeblur: warning: {weights}: its H.264 figure (on pairs_h264) was measured on other pairs than "
        f"{tmp_path / 'other'}, so it is left out of the metadata (`videodeblur models` shows none)"]
    meta = json.loads((tmp_path / "id.json").read_text())
    assert "evaluation_compressed" not in meta and "eval_pairs_compressed" not in meta
    assert meta["eval_pairs"] == str(tmp_path / "other")


def test_eval_record_writes_no_folder_of_this_machine(tmp_path: Path, run_cli, monkeypatch) -> None:
    """--record stored the pairs folder resolved: a weights file recorded from the repository root, then
    shipped, said /home/me/videodeblur/runs/eval_pairs. Recorded from the folder above them, the pairs are
    runs/eval_pairs, as the recipe's paths are written."""
    _constant_pair(tmp_path / "runs" / "eval_pairs", offset=5)
    _identity_weights(tmp_path / "runs" / "x" / "id.pt")
    monkeypatch.chdir(tmp_path)
    result = run_cli("eval", "--pairs", tmp_path / "runs" / "eval_pairs", "--model", "runs/x/id.pt", "--record")
    assert result.exit_code == 0, result.stderr
    assert json.loads((tmp_path / "runs" / "x" / "id.json").read_text())["eval_pairs"] == "runs/eval_pairs"


def test_eval_record_will_not_wipe_metadata_it_cannot_read(tmp_path: Path, run_cli, monkeypatch) -> None:
    """A weights file's JSON with a hand edit's slip (a trailing comma) was read as no metadata, and --record
    wrote its evaluation in place of the training record (recipe, steps, init) without a word. Refused now,
    before any pair is scored; an empty file holds nothing to lose."""
    _constant_pair(tmp_path / "pairs", offset=5)
    weights = _identity_weights(tmp_path / "id.pt")
    scored = []
    monkeypatch.setattr("videodeblur.train.evaluate.check_pairs", lambda *a, **k: scored.append(1) or [])
    for held, why in (('{"steps": 7,}', "Expecting property name"), ("[7]", "a JSON list, not an object")):
        (tmp_path / "id.json").write_text(held)
        result = run_cli("eval", "--pairs", tmp_path / "pairs", "--model", weights, "--record")
        assert result.exit_code == 1 and len(result.stderr_lines) == 1, result.stderr
        assert result.stderr.startswith(f"videodeblur: error: {tmp_path / 'id.json'} cannot be read as metadata ({why}")
        assert "--record would replace the training record it holds" in result.stderr
        assert (tmp_path / "id.json").read_text() == held and scored == []
    monkeypatch.undo()
    (tmp_path / "id.json").write_text("")
    assert run_cli("eval", "--pairs", tmp_path / "pairs", "--model", weights, "--record").exit_code == 0
    assert json.loads((tmp_path / "id.json").read_text())["evaluation"]["pairs"] == 1


def test_an_identical_pair_is_pointed_out(tmp_path: Path, run_cli) -> None:
    """A blurred image equal to its sharp one scores 100 dB at the input: its "gain" of tens of dB
    below zero went into the mean without a word."""
    _constant_pair(tmp_path / "pairs", offset=0, frame=1)
    _constant_pair(tmp_path / "pairs", offset=5, frame=2)
    result = run_cli("eval", "--pairs", tmp_path / "pairs", "--model", _identity_weights(tmp_path / "id.pt"), "--json")
    assert result.exit_code == 0 and result.stderr_lines == [
        f"videodeblur: warning: 1 pair under {tmp_path / 'pairs'} has a blurred image identical to its sharp one "
        "(first: scene/blur/000001.png): input PSNR counts as 100 dB, which pulls the mean gain down; leave such "
        "pairs out"]


def test_eval_on_a_folder_without_pairs_is_a_one_line_error(tmp_path: Path, run_subprocess) -> None:
    (tmp_path / "empty").mkdir()
    result = run_subprocess("eval", "--pairs", tmp_path / "empty", "--model", "lprn-fast")
    assert result.exit_code == 1
    assert result.stderr.strip().count("\n") == 0 and "no pairs" in result.stderr


def test_a_pair_of_two_sizes_is_a_one_line_error_naming_it(tmp_path: Path, run_cli) -> None:
    """A sharp frame that does not match its blurred one is a data error, not a tensor error."""
    _constant_pair(tmp_path / "pairs", 10)
    write_rgb(tmp_path / "pairs" / "scene" / "sharp" / "000001.png", np.zeros((21, 30, 3), np.uint8))
    result = run_cli("eval", "--pairs", tmp_path / "pairs", "--model", _identity_weights(tmp_path / "id.pt"))
    assert result.exit_code == 1 and len(result.stderr_lines) == 1
    assert "(30x20)" in result.stderr and "(30x21) differ in size" in result.stderr


def test_averaged_pairs_from_a_clip(tmp_path: Path, make_clip) -> None:
    clip = make_clip("c.mp4", width=64, height=48, frames=12)
    count = write_averaged_pairs(clip, tmp_path / "pairs", first=2, stop=11, exposures=(9, 13), stride=2)
    assert count == 2 * len(range(1, 8, 2))
    blurred = sorted((tmp_path / "pairs").rglob("blur/*.png"))
    assert len(blurred) == count
    report = evaluate_pairs(torch.nn.Identity(), tmp_path / "pairs")
    assert all(s.psnr_input < 40 for s in report.scores)  # the moving square really blurs


def test_compressed_copy_of_a_pair_set_codes_only_the_blurred_frames(tmp_path: Path) -> None:
    """The H.264 copy that validation and evaluation also score: same pairs, odd sizes kept, sharp
    targets byte for byte, blurred frames with the codec's loss (more at a higher CRF)."""
    rng = np.random.default_rng(3)
    smooth = np.stack(np.meshgrid(np.linspace(0, 200, 33), np.linspace(0, 200, 25)), -1).sum(-1) / 2
    for i in range(2):
        sharp = np.clip(smooth[..., None] + rng.normal(0, 20, (25, 33, 3)), 0, 255).astype(np.uint8)
        write_rgb(tmp_path / "src" / "s" / "sharp" / f"{i}.png", sharp)
        write_rgb(tmp_path / "src" / "s" / "blur" / f"{i}.png", sharp)
    psnrs = {}
    for crf in (18, 40):
        assert write_compressed_pairs(tmp_path / "src", tmp_path / f"crf{crf}", crf=crf) == 2
        pairs = find_folder_pairs(tmp_path / f"crf{crf}")
        assert [b.name for b, _ in pairs] == ["0.png", "1.png"]
        for (blur, sharp), (src_blur, src_sharp) in zip(pairs, find_folder_pairs(tmp_path / "src")):
            assert sharp.read_bytes() == src_sharp.read_bytes()
            assert read_rgb(blur).shape == (25, 33, 3)
        coded = torch.from_numpy(read_rgb(pairs[0][0])).float()
        original = torch.from_numpy(read_rgb(pairs[0][1])).float()
        psnrs[crf] = float(psnr(coded / 255, original / 255))
    assert 20 < psnrs[40] < psnrs[18] < 60


def test_combined_summary_is_the_mean_of_the_sets() -> None:
    a = {"model": "m", "pairs": 2, "psnr": 30.0, "ssim": 0.9, "psnr_input": 29.0, "ssim_input": 0.8,
         "gain_db": 1.0, "psnr_sharp_through": 50.0}
    b = {**a, "pairs": 5, "psnr": 28.0, "psnr_input": 28.5, "gain_db": -0.5, "psnr_sharp_through": 40.0}
    both = combined_summary([a, b], ["clean", "coded"])
    assert both["gain_db"] == pytest.approx(0.25) and both["psnr"] == pytest.approx(29.0)
    assert both["psnr_sharp_through"] == pytest.approx(45.0) and both["pairs"] == 7
    assert both["sets"] == {"clean": a, "coded": b}
    assert combined_summary([a], ["clean"]) is a
    with pytest.raises(ValueError):
        combined_summary([a, b], ["clean"])


@pytest.mark.parametrize("limit", ["0", "-1"])
def test_eval_limit_below_one_is_an_error_and_records_nothing(tmp_path: Path, run_cli, limit: str) -> None:
    """--limit 0 once recorded NaN over a good evaluation; -1 was a slice that dropped the last pair."""
    for frame in (1, 2):
        _constant_pair(tmp_path / "pairs", offset=5, frame=frame)
    weights = _identity_weights(tmp_path / "id.pt")
    stored = json.dumps({"steps": 7, "evaluation": {"pairs": 2, "psnr": 34.2}})
    (tmp_path / "id.json").write_text(stored)
    result = run_cli("eval", "--pairs", tmp_path / "pairs", "--model", weights, "--limit", limit, "--record")
    # a usage error, as click's other range checks (bench --frames 1): exit 2, naming the option
    assert result.exit_code == 2, result.stderr
    assert f"Invalid value for '--limit': {limit} is not in the range x>=1" in result.stderr
    assert (tmp_path / "id.json").read_text() == stored
    with pytest.raises(ConfigError, match="limit"):
        evaluate_pairs(load_model(weights).network, tmp_path / "pairs", limit=0)
    assert len(evaluate_pairs(load_model(weights).network, tmp_path / "pairs", limit=1).scores) == 1


def test_eval_warns_about_blurred_frames_without_a_sharp_partner(tmp_path: Path, run_cli) -> None:
    _constant_pair(tmp_path / "pairs", offset=5, frame=1)
    for frame in (2, 3):  # blurred frames whose sharp partners are missing
        write_rgb(tmp_path / "pairs" / "scene" / "blur" / f"{frame:06d}.png", np.full((20, 30, 3), 90, np.uint8))
    weights = _identity_weights(tmp_path / "id.pt")
    result = run_cli("eval", "--pairs", tmp_path / "pairs", "--model", weights, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["pairs"] == 1  # stdout stays one JSON object
    assert result.stderr_lines == ["videodeblur: warning: 2 blurred frames have no sharp partner under "
                                   f"{tmp_path / 'pairs'} and are left out (first: scene/blur/000002.png)"]
    report = evaluate_pairs(load_model(weights).network, tmp_path / "pairs")
    assert report.unpaired == ("scene/blur/000002.png", "scene/blur/000003.png")
    _constant_pair(tmp_path / "whole", offset=5)
    assert run_cli("eval", "--pairs", tmp_path / "whole", "--model", weights).stderr == ""


def test_eval_warns_about_sharp_frames_without_a_blurred_partner(tmp_path: Path, run_cli) -> None:
    """Blurred frames lost in a conversion or a copy: fewer pairs were scored than the folder holds, without
    a word (blurred frames without a sharp partner were said)."""
    _constant_pair(tmp_path / "pairs", offset=5, frame=1)
    write_rgb(tmp_path / "pairs" / "scene" / "sharp" / "000002.png", np.full((20, 30, 3), 90, np.uint8))
    weights = _identity_weights(tmp_path / "id.pt")
    result = run_cli("eval", "--pairs", tmp_path / "pairs", "--model", weights, "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["pairs"] == 1
    assert result.stderr_lines == ["videodeblur: warning: 1 sharp frame has no blurred partner under "
                                   f"{tmp_path / 'pairs'} and is left out (first: scene/sharp/000002.png)"]
    report = evaluate_pairs(load_model(weights).network, tmp_path / "pairs")
    assert report.unpaired == () and report.unpaired_sharp == ("scene/sharp/000002.png",)


def test_eval_pairs_given_a_file_says_it_is_not_a_folder(tmp_path: Path, run_cli) -> None:
    (tmp_path / "pairs.txt").write_text("not a folder")
    result = run_cli("eval", "--pairs", tmp_path / "pairs.txt", "--model", _identity_weights(tmp_path / "id.pt"))
    assert result.exit_code == 1 and len(result.stderr_lines) == 1
    assert "is a file, not a folder" in result.stderr and "not found" not in result.stderr


def test_per_pair_and_summary_lines_round_a_pair_the_same_way(tmp_path: Path, run_cli) -> None:
    """103 of 1800 values off by one: 60.5552 dB, which read 60.56 per pair but 60.55 in the summary
    when the summary rounded to 3 decimals first."""
    sharp = np.full((20, 30, 3), 100, np.uint8)
    blurred = sharp.copy()
    blurred.reshape(-1)[:103] += 1
    write_rgb(tmp_path / "pairs" / "scene" / "sharp" / "000001.png", sharp)
    write_rgb(tmp_path / "pairs" / "scene" / "blur" / "000001.png", blurred)
    expected = f"{10 * math.log10(255 ** 2 * 1800 / 103):.2f}"
    result = run_cli("eval", "--pairs", tmp_path / "pairs", "--model", _identity_weights(tmp_path / "id.pt"),
                     "--per-pair")
    assert result.exit_code == 0, result.stderr
    pair_line = next(line for line in result.stdout.splitlines() if line.startswith("scene/blur/"))
    assert pair_line.split()[1:3] == [expected, expected]  # psnr_in, psnr (identity network)
    assert f"PSNR {expected} dB (input {expected}," in result.stdout


def test_a_library_caller_is_refused_recording_part_of_the_pairs_or_a_shipped_model() -> None:
    """The refusals `eval --record` makes before scoring were the command's own: a library caller of
    record_evaluation had no way to ask them."""
    from videodeblur.errors import ConfigError
    from videodeblur.model.registry import check_recordable

    with pytest.raises(ConfigError, match="--limit 3 scores only part of the pairs"):
        check_recordable("runs/x/lprn-fast.pt", 3)
    with pytest.raises(ConfigError, match="will not write into the shipped model lprn-fast's metadata"):
        check_recordable("LPRN-Fast", None)
    check_recordable(Path("runs/x/lprn-fast.pt"), None)  # a weights file's path records


def test_eval_record_refuses_a_limit_and_a_shipped_name_and_writes_nothing(tmp_path: Path, run_cli,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """`--model lprn-fast --limit 1 --record` once wrote a one-pair figure into the installed package."""
    for frame in (1, 2):
        _constant_pair(tmp_path / "pairs", offset=5, frame=frame)
    weights = _identity_weights(tmp_path / "id.pt")
    stored = json.dumps({"steps": 7, "evaluation": {"pairs": 2, "psnr": 34.2}})
    (tmp_path / "id.json").write_text(stored)
    partial = run_cli("eval", "--pairs", tmp_path / "pairs", "--model", weights, "--limit", "1", "--record")
    assert partial.exit_code == 1 and len(partial.stderr_lines) == 1, partial.stderr
    assert "--limit 1 scores only part of the pairs" in partial.stderr
    assert (tmp_path / "id.json").read_text() == stored
    shipped = tmp_path / "shipped"  # a copy of the installed folder: a failing test must not write into it
    shipped.mkdir()
    for suffix in (".pt", ".json"):
        (shipped / f"lprn-fast{suffix}").write_bytes(registry.shipped_weights_path("lprn-fast").with_suffix(suffix)
                                                      .read_bytes())
    monkeypatch.setattr(registry, "WEIGHTS_DIR", shipped)
    before = (shipped / "lprn-fast.json").read_bytes()
    by_name = run_cli("eval", "--pairs", tmp_path / "pairs", "--model", "lprn-fast", "--record")
    assert by_name.exit_code == 1 and len(by_name.stderr_lines) == 1, by_name.stderr
    assert "shipped model lprn-fast" in by_name.stderr and "give the weights file's path" in by_name.stderr
    assert (shipped / "lprn-fast.json").read_bytes() == before
    other_case = run_cli("eval", "--pairs", tmp_path / "pairs", "--model", "LPRN-Fast", "--record")  # loads in any case
    assert other_case.exit_code == 1 and "shipped model lprn-fast" in other_case.stderr, other_case.stderr
    assert (shipped / "lprn-fast.json").read_bytes() == before  # it wrote there, past the check
    assert run_cli("eval", "--pairs", tmp_path / "pairs", "--model", "lprn-fast", "--limit", "1").exit_code == 0
    by_path = run_cli("eval", "--pairs", tmp_path / "pairs", "--model", shipped / "lprn-fast.pt", "--record", "--json")
    assert by_path.exit_code == 0, by_path.stderr  # a path is a deliberate choice of file
    assert json.loads((shipped / "lprn-fast.json").read_text())["evaluation"]["pairs"] == 2


def _strict_json(text: str) -> dict:
    """json.loads that refuses NaN and Infinity (Python's own parser takes them; a browser's does not)."""
    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")
    return json.loads(text, parse_constant=refuse)


def test_an_identical_pair_is_capped_the_same_per_pair_and_in_the_mean(tmp_path: Path, run_cli) -> None:
    """`eval --json --per-pair` printed Infinity for a pair whose input equals its target, while the
    means counted it as 100 dB; the table printed inf."""
    _constant_pair(tmp_path / "pairs", offset=0, frame=1)
    _constant_pair(tmp_path / "pairs", offset=10, frame=2)
    weights = _identity_weights(tmp_path / "id.pt")
    result = run_cli("eval", "--pairs", tmp_path / "pairs", "--model", weights, "--json", "--per-pair")
    assert result.exit_code == 0, result.stderr
    data = _strict_json(result.stdout)
    identical, off = data["per_pair"]
    assert (identical["psnr"], identical["psnr_input"], identical["psnr_sharp_through"]) == (100.0, 100.0, 100.0)
    assert off["psnr_input"] == pytest.approx(20 * math.log10(255 / 10), abs=1e-6)
    for row in data["per_pair"]:
        assert row["gain_db"] == pytest.approx(row["psnr"] - row["psnr_input"], abs=1e-9)
    assert data["psnr_input"] == pytest.approx((identical["psnr_input"] + off["psnr_input"]) / 2, abs=1e-3)
    assert data["gain_db"] == pytest.approx((identical["gain_db"] + off["gain_db"]) / 2, abs=1e-3)
    table = run_cli("eval", "--pairs", tmp_path / "pairs", "--model", weights, "--per-pair").stdout
    row = next(line for line in table.splitlines() if line.startswith("scene/blur/000001.png"))
    assert row.split()[1:3] == ["100.00", "100.00"] and "inf" not in table


def test_a_pairs_gain_is_its_own_capped_psnr_minus_its_input(tmp_path: Path) -> None:
    """A network that brightens by 5 levels, on a pair whose input is its target: the input counts as
    100 dB, the output as what arithmetic says, and the gain is their difference, per pair and mean."""
    _constant_pair(tmp_path / "pairs", offset=0)

    class Brighten(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + 5 / 255

    report = evaluate_pairs(Brighten(), tmp_path / "pairs")
    (row,) = report.per_pair()
    assert row["psnr_input"] == 100.0 and row["psnr"] == pytest.approx(20 * math.log10(255 / 5), abs=1e-6)
    assert row["gain_db"] == pytest.approx(row["psnr"] - 100.0, abs=1e-9)
    assert report.means()["gain_db"] == pytest.approx(row["gain_db"], abs=1e-9)
    assert json.dumps(report.summary("b"), allow_nan=False)


def test_ssim_scores_the_8_bit_picture_as_psnr_does() -> None:
    """eval's PSNR rounded the output to 8 bits (as a saved frame) but its SSIM did not."""
    generator = torch.Generator().manual_seed(0)
    target = torch.randint(0, 256, (1, 3, 32, 40), generator=generator).float() / 255
    output = (target + 0.02 * torch.randn(target.shape, generator=generator)).clamp(0, 1)
    rounded = torch.round(output * 255) / 255
    assert not torch.equal(output, rounded)
    assert float(ssim(output, target)) == float(ssim(rounded, target))
    assert float(psnr(output, target)) == float(psnr(rounded, target))


def test_a_damaged_pair_image_is_a_one_line_error_naming_it(tmp_path: Path, run_subprocess) -> None:
    """A PNG cut short once printed libpng's own lines beside ours; a JPEG cut short was read half grey
    and scored (or trained on) as if whole."""
    rng = np.random.default_rng(0)
    picture = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    write_rgb(tmp_path / "pairs" / "scene" / "blur" / "000001.png", picture)
    sharp = tmp_path / "pairs" / "scene" / "sharp" / "000001.png"
    write_rgb(sharp, picture)
    sharp.write_bytes(sharp.read_bytes()[: sharp.stat().st_size // 2])
    result = run_subprocess("eval", "--pairs", tmp_path / "pairs", "--model", "lprn-fast")
    assert result.exit_code == 1, result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert str(sharp) in result.stderr and "Traceback" not in result.stderr
    photo = tmp_path / "photo.jpg"
    write_rgb(photo, picture)
    photo.write_bytes(photo.read_bytes()[: photo.stat().st_size * 2 // 3])
    with pytest.raises(UnreadableInputError, match="photo.jpg is damaged or cut short"):
        read_rgb(photo)


def test_pairs_with_upper_case_extensions_are_found(tmp_path: Path) -> None:
    """`*.PNG` pairs (a camera's or Windows' naming) were silently left out of the count and the score."""
    for name in ("a.png", "b.PNG"):
        for kind in ("blur", "sharp"):
            write_rgb(tmp_path / "scene" / kind / name, np.full((8, 8, 3), 100, np.uint8))
    assert [blur.name for blur, _ in find_folder_pairs(tmp_path)] == ["a.png", "b.PNG"]


def test_a_macs_hidden_files_are_not_pairs(tmp_path: Path) -> None:
    """A folder copied from a Mac holds ``._a.png`` (AppleDouble metadata, not a picture) beside each
    frame, and a zip made there a ``__MACOSX`` folder of them: they were paired and the run stopped
    with "not a readable image"; nor are they blurred frames left out."""
    for kind in ("blur", "sharp"):
        write_rgb(tmp_path / "scene" / kind / "a.png", np.full((8, 8, 3), 100, np.uint8))
        (tmp_path / "scene" / kind / "._a.png").write_bytes(b"\x00\x05\x16\x07" + bytes(80))
        (tmp_path / "__MACOSX" / "scene" / kind).mkdir(parents=True)
        (tmp_path / "__MACOSX" / "scene" / kind / "._a.png").write_bytes(b"\x00\x05\x16\x07" + bytes(80))
    (tmp_path / "scene" / "blur" / "._b.png").write_bytes(bytes(84))  # no partner: not "left out" either
    assert find_folder_pairs(tmp_path) == [(tmp_path / "scene" / "blur" / "a.png", tmp_path / "scene" / "sharp" / "a.png")]
    assert unpaired_blurred(tmp_path) == []


def test_an_upper_case_blurred_frame_without_a_partner_is_counted_as_left_out(tmp_path: Path) -> None:
    """Pairs are found by any case of .png; the blurred frames left out were looked for as *.png
    alone, so a B.PNG without its sharp partner was left out of the score and of the warning too."""
    for name in ("a.png", "B.PNG", "c.png"):
        write_rgb(tmp_path / "scene" / "blur" / name, np.full((8, 8, 3), 100, np.uint8))
    write_rgb(tmp_path / "scene" / "sharp" / "a.png", np.full((8, 8, 3), 100, np.uint8))
    assert [p.name for p in unpaired_blurred(tmp_path)] == ["B.PNG", "c.png"]


class _SameNetwork:
    """``videodeblur image``'s engine contract over ``network`` itself (fp32, NCHW), so a file it writes
    and an evaluation of the same network see the same numbers."""

    def __init__(self, network: torch.nn.Module) -> None:
        self.network = network.eval()

    @torch.inference_mode()
    def process(self, frames: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2))).float() / 255.0
        y = self.network(x).clamp(0, 1).mul(255).round().to(torch.uint8)
        return y.permute(0, 2, 3, 1).numpy()


@pytest.mark.parametrize("kind", ["grey", "deep", "deep grey", "deep sharp"])
def test_a_grey_or_16_bit_pair_is_scored_on_what_the_image_command_writes(tmp_path: Path, kind: str) -> None:
    """eval's figure for a pair is the one its blurred image, deblurred by `videodeblur image`, scores
    against the sharp one: a grey output is written as luma and a 16-bit one as its source moved by
    the network's 8-bit change, where eval scored the network's colour float output (grey pairs) or
    added its unrounded change (16-bit pairs)."""
    import cv2

    from conftest import clip_frame, psnr as psnr_of
    from videodeblur.images import deblur_image_file

    sharp = cv2.cvtColor(clip_frame(0, 48, 32), cv2.COLOR_RGB2BGR)
    blurred = cv2.GaussianBlur(sharp, (0, 0), 1.5)
    if "grey" in kind:
        sharp, blurred = (cv2.cvtColor(a, cv2.COLOR_BGR2GRAY) for a in (sharp, blurred))
    if "deep" in kind:  # low bits of their own, which an 8-bit reading would lose
        sharp = sharp.astype(np.uint16) * 257 + 100
        if kind != "deep sharp":  # (else an 8-bit blurred image beside a 16-bit sharp one: scored on 16 bits)
            blurred = blurred.astype(np.uint16) * 257 + 60
    for side, picture in (("sharp", sharp), ("blur", blurred)):
        (tmp_path / "pairs" / "s" / side).mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(tmp_path / "pairs" / "s" / side / "a.png"), picture)
    network = load_model("lprn-fast").network
    (score,) = evaluate_pairs(network, tmp_path / "pairs").scores
    written = deblur_image_file(tmp_path / "pairs" / "s" / "blur" / "a.png", tmp_path / "out.png", _SameNetwork(network))
    out, blurred = (a.astype(np.float64) * (257 if a.dtype == np.uint8 and "deep" in kind else 1)
                    for a in (cv2.imread(str(written), cv2.IMREAD_UNCHANGED), blurred))
    assert out.shape == sharp.shape
    peak = 65535.0 if "deep" in kind else 255.0
    assert score.psnr == pytest.approx(psnr_of(out, sharp, peak=peak), abs=1e-6)
    assert score.psnr_input == pytest.approx(psnr_of(blurred, sharp, peak=peak), abs=1e-6)


def test_an_empty_pairs_or_weights_path_is_an_error_not_the_current_folder(tmp_path: Path, run_cli,
                                                                            monkeypatch) -> None:
    """``--pairs "$PAIRS"`` with the variable unset gave an empty path, which pathlib reads as ".": the
    current folder's pairs were scored as if named; `models ""` said "." is a folder."""
    weights = _identity_weights(tmp_path / "id.pt")
    _constant_pair(tmp_path / "cwd", offset=5)
    monkeypatch.chdir(tmp_path / "cwd")
    for args in (("eval", "--pairs", "", "--model", weights), ("models", "")):
        result = run_cli(*args)
        assert result.exit_code == 1 and result.stdout == "", result.stdout
        assert len(result.stderr_lines) == 1 and "empty path" in result.stderr, result.stderr
