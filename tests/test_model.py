"""The LPRN network: shapes, shared stage weights, config validation, every shipped preset loads."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch

from videodeblur.config import ModelConfig, load_model_config
from videodeblur.errors import ConfigError, InputNotFoundError, ModelNotFoundError, WeightsError
from videodeblur.model import (LPRN, SHIPPED_MODELS, list_models, load_model, registry, save_weights, shipped_name,
                               write_metadata)
from videodeblur.train.data import read_rgb, uint8_to_tensor
from videodeblur.train.metrics import psnr


@pytest.mark.parametrize("unshuffle", [1, 2, 4])
@pytest.mark.parametrize("size", [(17, 23), (32, 32), (31, 64)])
def test_forward_keeps_shape_for_odd_sizes(unshuffle: int, size: tuple[int, int]) -> None:
    net = LPRN(ModelConfig(channels=8, blocks=1, stages=2, unshuffle=unshuffle)).eval()
    x = torch.rand(2, 3, *size)
    with torch.inference_mode():
        y = net(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("unshuffle", [2, 4])
@pytest.mark.parametrize("size", [(1, 1), (3, 5), (17, 23), (1081, 1921)])
def test_odd_sizes_are_padded_and_cropped_back_never_resized(unshuffle: int, size: tuple[int, int]) -> None:
    """Issue 4: any frame size works, odd sizes padded and cropped back, never resized. An untrained network
    is the identity (its residual convs start at zero), so a resize anywhere shows as changed pixels; and a
    trained one gives, on the frame's pixels, exactly what it gives on the frame padded by repeating its edge."""
    torch.manual_seed(0)
    frames = torch.rand(1, 3, *size)
    identity = LPRN(ModelConfig(channels=4, blocks=1, stages=1, unshuffle=unshuffle)).eval()
    trained = load_model("lprn-fast" if unshuffle == 4 else "lprn-rt").network
    padded = torch.nn.functional.pad(frames, (0, (-size[1]) % unshuffle, 0, (-size[0]) % unshuffle), mode="replicate")
    with torch.inference_mode():
        assert torch.equal(identity(frames), frames)
        if max(size) < 100:  # the trained net on 1081x1921 costs seconds on the CPU; the identity covers that size
            torch.testing.assert_close(trained(frames), trained(padded)[..., :size[0], :size[1]], rtol=0, atol=1e-6)


def test_base_network_parameters_do_not_grow_with_stages_only_the_fusion_does() -> None:
    """Every parameter outside the fusion (channel attention, spatial selection) is counted, not only the
    modules stage_parameter_count names: a per-stage layer added anywhere else grows with T and fails here.
    Figures for C=16, 2 blocks: shared stage network 10,595 plus reconstruction 435 = 11,030; the fusion
    adds 272·(T+1)² + 21·(T+1), so T=6 is the shipped lprn's 24,505."""
    nets = {t: LPRN(ModelConfig(channels=16, blocks=2, stages=t)) for t in (5, 6, 7)}
    outside_fusion = {t: sum(p.numel() for name, p in net.named_parameters()
                             if not name.startswith(("channel_attention.", "fuse.")))
                      for t, net in nets.items()}
    total = {t: sum(p.numel() for p in net.parameters()) for t, net in nets.items()}
    assert outside_fusion == {5: 11_030, 6: 11_030, 7: 11_030}
    assert {t: net.stage_parameter_count() for t, net in nets.items()} == {5: 10_595, 6: 10_595, 7: 10_595}
    assert total == {5: 20_948, 6: 24_505, 7: 28_606}
    assert total[6] == load_model("lprn").parameters


@pytest.mark.parametrize("attention", ["none", "channel", "spatial", "both"])
def test_attention_variants_build_and_differ_in_parameters(attention: str) -> None:
    net = LPRN(ModelConfig(channels=8, stages=3, attention=attention))
    has_channel = any(n.startswith("channel_attention.") for n, _ in net.named_parameters())
    has_spatial = any(n.startswith("fuse.logits") for n, _ in net.named_parameters())
    assert has_channel == (attention in ("channel", "both"))
    assert has_spatial == (attention in ("spatial", "both"))


@pytest.mark.parametrize("stages", [1, 3, 6])
def test_the_one_stage_network_runs_once_a_stage_each_on_the_last_estimate(stages: int) -> None:
    """The recursion is the same modules run T times (shared weights), each stage on the previous
    estimate. (The test here once compared two networks holding the same weights, which any network passes.)"""
    net = LPRN(ModelConfig(channels=8, blocks=1, stages=stages)).eval()
    torch.manual_seed(0)
    for layer in (net.tail, net.reconstruct):  # not the identity, so every estimate differs from the input
        torch.nn.init.normal_(layer.weight, std=0.1)
    calls: dict[str, list[torch.Tensor]] = {"head_input": [], "head_estimate": [], "body": [], "tail": []}
    for name, seen in calls.items():
        getattr(net, name).register_forward_hook(lambda _m, args, out, seen=seen: seen.append(args[0].clone()))
    frames = torch.rand(1, 3, 12, 16)
    with torch.inference_mode():
        net(frames)
        estimates = [frames + torch.nn.functional.conv2d(f, net.tail.weight, net.tail.bias, padding=1)
                     for f in calls["tail"]]  # what each stage's tail made of its features
    assert [len(seen) for seen in calls.values()] == [1, stages, stages, stages]
    torch.testing.assert_close(calls["head_estimate"][0], frames, rtol=0, atol=0)  # stage 1 starts from the input
    for given, previous in zip(calls["head_estimate"][1:], estimates):
        torch.testing.assert_close(given, previous, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", SHIPPED_MODELS)
def test_channels_last_fusion_stays_channels_last_and_equals_the_nchw_one(name: str) -> None:
    # The engine runs channels-last; the fusion once returned NCHW there and every later op copied
    # the layout back (lprn 0.74x the time without that, docs/BENCHMARKS.md "Speed-ups").
    net = load_model(name).network.eval()
    fuse = net.fuse
    torch.manual_seed(0)
    features = torch.rand(2, fuse.branches * net.config.channels, 20, 28)
    with torch.inference_mode():
        nchw = fuse(features)
        channels_last = fuse(features.contiguous(memory_format=torch.channels_last))
        frames = torch.rand(2, 3, 41, 67)
        whole_nchw = net(frames)
        whole_cl = net.to(memory_format=torch.channels_last)(frames.contiguous(memory_format=torch.channels_last))
    assert channels_last.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(channels_last, nchw, rtol=0, atol=1e-6)
    torch.testing.assert_close(whole_cl, whole_nchw, rtol=0, atol=1e-5)


@pytest.mark.parametrize("bad", [{"channels": 2}, {"stages": 0}, {"attention": "both+"}, {"unshuffle": 3}])
def test_invalid_config_is_a_config_error(bad: dict) -> None:
    with pytest.raises(ConfigError):
        ModelConfig(**bad)


def test_model_toml_unknown_key_names_the_valid_ones(tmp_path) -> None:
    path = tmp_path / "m.toml"
    path.write_text("[model]\nchannels = 8\nwidth = 3\n")
    with pytest.raises(ConfigError, match="unknown keys \\['width'\\]"):
        load_model_config(path)


@pytest.mark.parametrize("name", list(SHIPPED_MODELS))
def test_every_shipped_model_loads_and_runs(name: str) -> None:
    loaded = load_model(name)
    x = torch.rand(1, 3, 36, 50)
    with torch.inference_mode():
        assert loaded.network(x).shape == x.shape
    assert loaded.path.stat().st_size < 5_000_000


def test_unknown_model_name_is_a_clear_error() -> None:
    with pytest.raises(ModelNotFoundError, match="unknown model 'nope'"):
        load_model("nope")


@pytest.mark.parametrize("name", list(SHIPPED_MODELS))
def test_every_shipped_model_passes_a_sharp_frame_through(name: str) -> None:
    """Issue 4's floor: a sharp frame comes out at >= 38 dB PSNR. The frame is a crop of a held-out
    (never trained on) sharp frame of real footage, tests/data/bikes215_sharp.png (see README there)."""
    sharp = uint8_to_tensor(read_rgb(Path(__file__).parent / "data" / "bikes215_sharp.png")).unsqueeze(0)
    with torch.inference_mode():
        out = load_model(name).network(sharp).clamp(0, 1)
    assert float(psnr(out, sharp)) >= 38.0  # psnr quantises to 8 bits, as a written frame would be


_FLAT_COLOURS = [(255, 0, 255), (190, 0, 189), (0, 0, 255), (255, 0, 0), (0, 255, 0), (0, 255, 255), (255, 255, 0),
                 (128, 64, 200), (40, 40, 40), (230, 230, 230), (255, 128, 0), (0, 128, 255), (20, 0, 60), (120, 0, 0)]


@pytest.mark.parametrize("name", list(SHIPPED_MODELS))
def test_every_shipped_model_leaves_flat_saturated_colours_alone(name: str) -> None:
    """Nothing moves in a flat picture, so nothing may change: lprn-fast as shipped until the
    thirteenth session turned flat magenta (255, 0, 255) into (220, 0, 227), 60 levels at most."""
    pictures = torch.tensor(_FLAT_COLOURS, dtype=torch.float32).div(255).view(-1, 3, 1, 1).expand(-1, 3, 48, 64)
    with torch.inference_mode():
        out = load_model(name).network(pictures.contiguous()).clamp(0, 1)
    worst = (out - pictures).abs().amax(dim=(1, 2, 3)).mul(255).round()
    assert float(worst.max()) <= 8, dict(zip(_FLAT_COLOURS, worst.tolist()))


def test_models_command_lists_every_shipped_model_with_its_figures(run_cli) -> None:
    result = run_cli("models", "--json")
    assert result.exit_code == 0 and result.stderr == ""  # no warning: every shipped JSON describes its weights
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert set(rows) == set(SHIPPED_MODELS)
    for name, row in rows.items():
        loaded = load_model(name)
        assert row["available"] and row["parameters"] == loaded.parameters
        assert row["config"] == loaded.network.config.to_dict() and 0 < row["size_mb"] < 5
        assert row["evaluation"]["gain_db"] == loaded.metadata["evaluation"]["gain_db"]
    table = run_cli("models").stdout.splitlines()
    assert "H.264 dB" in table[0] and [line.split()[0] for line in table[1:]] == list(SHIPPED_MODELS)



def test_models_command_lists_a_trained_weights_file_by_its_path(tmp_path, run_cli) -> None:
    """`videodeblur models runs/x/lprn-fast.pt` was "Got unexpected extra argument": a run's weights
    (saved under the shipped model's name) could not be listed, nor their evaluation seen."""
    mine = tmp_path / "run" / "lprn-fast.pt"
    save_weights(mine, LPRN(ModelConfig(name="lprn-fast", channels=8, blocks=1, stages=1)),
                 {"steps": 7, "evaluation": {"gain_db": 0.5}})
    result = run_cli("models", mine)
    assert result.exit_code == 0, result.stderr
    header, row = result.stdout.splitlines()
    assert header.split()[0] == "path" and row.split()[0] == str(mine)  # not "lprn-fast": the shipped one's name
    assert "+0.50" in row and "C=8" in row and "steps=7" in row
    rows = json.loads(run_cli("models", mine, "--json").stdout)
    assert [(r["path"], r["steps"], r["evaluation"]) for r in rows] == [(str(mine), 7, {"gain_db": 0.5})]
    missing = run_cli("models", tmp_path / "none.pt")
    assert missing.exit_code != 0 and "weights file not found" in missing.stderr and missing.stdout == ""

def test_models_command_shows_no_figures_from_a_metadata_file_of_other_weights(tmp_path, run_cli) -> None:
    """A JSON copied beside other weights (lprn-rt's beside lprn-fast's) was listed as theirs: lprn-rt's
    gain and steps beside lprn-fast's config. Its config tells; a renamed copy's figures stay."""
    config = ModelConfig(name="lprn-fast", channels=8, blocks=1, stages=1)
    mine = save_weights(tmp_path / "lprn-fast.pt", LPRN(config),
                        {"config": {**config.to_dict(), "channels": 32}, "steps": 2000,
                         "evaluation": {"gain_db": 0.17}, "evaluation_compressed": {"gain_db": 0.1}})
    result = run_cli("models", mine, "--json")
    (row,) = json.loads(result.stdout)
    assert (row["steps"], row["evaluation"], row["evaluation_compressed"]) == (None, None, None)
    assert result.stderr_lines == [f"videodeblur: warning: {mine.with_suffix('.json')} describes other weights (its "
                                   f"config is not {mine}'s): its steps and figures are not shown"]
    assert "+0.17" not in run_cli("models", mine).stdout
    write_metadata(mine, {"config": {**config.to_dict(), "name": "renamed"}, "steps": 7,
                          "evaluation": {"gain_db": 0.5}})
    result = run_cli("models", mine, "--json")
    (row,) = json.loads(result.stdout)
    assert (row["steps"], row["evaluation"]) == (7, {"gain_db": 0.5}) and result.stderr == ""


_ARCHITECTURE = "channels = 8\nblocks = 1\nstages = 2\nattention = \"none\"\nunshuffle = 1\n"


@pytest.mark.parametrize("name", ["../../escape", "/tmp/escape", "a/b", "a\\b", "", ".", "..", ".hidden", ["a"], 5,
                                  "two\nlines", "x" * 101])
def test_a_model_name_that_is_not_a_plain_file_name_is_refused(name) -> None:
    """The name becomes ``<out_dir>/<name>.pt``: "../../escape" once wrote outside --out-dir."""
    with pytest.raises(ConfigError, match=r"^model\.name must be") as info:
        ModelConfig(name=name)
    assert "\n" not in str(info.value)



def test_a_shipped_name_is_read_in_any_case_and_a_path_is_not_one() -> None:
    """One rule for load_model and eval's naming and --record refusal (cli/training.py had its own copy)."""
    assert [shipped_name(name.upper()) for name in SHIPPED_MODELS] == list(SHIPPED_MODELS)
    assert load_model("LPRN-Fast").name == "lprn-fast"
    assert shipped_name("runs/x/lprn-fast.pt") is None and shipped_name("lprn-fast.pt") is None

def test_every_shipped_model_config_loads_under_its_name() -> None:
    configs = sorted((Path(__file__).parent.parent / "configs" / "models").rglob("*.toml"))
    assert len(configs) >= 9
    for path in configs:
        assert load_model_config(path).name == path.stem  # e.g. lprn-fast, lprn-t6-both


@pytest.mark.parametrize("line, message", [
    ("channels = 16.0", "model.channels must be a whole number, got 16.0"),
    ("channels = 16.5", "model.channels must be a whole number, got 16.5"),
    ('channels = "16"', "model.channels must be a whole number, got '16'"),
    ("stages = true", "model.stages must be a whole number, got True"),
    ("attention = 1", "model.attention must be one of 'none', 'channel', 'spatial', 'both', got 1"),
    ("channels = 0", "model.channels must be in [4, 512], got 0"),
    ("stages = 0", "model.stages must be in [1, 16], got 0"),
    ("unshuffle = 3", "model.unshuffle must be 1, 2 or 4, got 3"),
    ('attention = "foo"', "model.attention must be one of 'none', 'channel', 'spatial', 'both', got 'foo'"),
    ('name = "a/b"', "model.name must be a plain file name of at most 100 characters (no / or \\, not starting "
                     "with '.'), got 'a/b'"),
])
def test_model_toml_values_are_checked_by_type_and_range_naming_the_file(tmp_path, line: str, message: str) -> None:
    """A --model-config file once skipped the checks a recipe's [model] table gets: 16.0 reached torch.
    Each is one line that names the file: `train --model-config m.toml` with channels = 0 said only
    "model.channels must be in [4, 512], got 0" (the recipe, its model file, or the --model-config?)."""
    key = line.split()[0]
    path = tmp_path / "m.toml"
    path.write_text("[model]\n" + "".join(f"{entry}\n" for entry in _ARCHITECTURE.splitlines()
                                          if not entry.startswith(key)) + line + "\n")
    with pytest.raises(ConfigError, match=f"^{re.escape(str(path))}: {re.escape(message)}$"):
        load_model_config(path)


@pytest.mark.parametrize("text, what", [
    ("stages = 4\n[model]\n" + _ARCHITECTURE, "key 'stages'"),
    ("[model]\n" + _ARCHITECTURE + "[train]\nsteps = 3\n", "table [train]"),
])
def test_anything_beside_the_model_table_is_refused_not_ignored(tmp_path, text: str, what: str) -> None:
    """``stages = 4`` above the ``[model]`` line is a top-level key: it was ignored, and the model trained
    with the table's stages = 2."""
    path = tmp_path / "m.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"^{re.escape(str(path))}: {re.escape(what)} is outside the \\[model\\] "
                                          "table"):
        load_model_config(path)


def test_weights_given_as_a_model_config_are_named_as_weights(tmp_path) -> None:
    """`train --model-config lprn-fast.pt` said the zip was "not UTF-8 text": it is weights, for --init."""
    path = save_weights(tmp_path / "mine.pt", LPRN(ModelConfig(channels=8, blocks=1, stages=1)))
    with pytest.raises(ConfigError, match=f"^{re.escape(str(path))} is a weights file, not a model config "
                                          rf"\(a \.toml\): .* give them as --init {re.escape(str(path))}"):
        load_model_config(path)


def test_a_model_toml_that_is_not_utf8_says_so(tmp_path) -> None:
    path = tmp_path / "m.toml"
    path.write_bytes(b'[model]\nname = "caf\xe9"\n' + _ARCHITECTURE.encode())
    with pytest.raises(ConfigError, match=f"^config file {re.escape(str(path))} is not UTF-8 text, which TOML must "
                                          "be: byte 0xe9 at offset 19$"):
        load_model_config(path)


def test_a_model_toml_with_model_as_a_string_says_what_it_holds(tmp_path) -> None:
    path = tmp_path / "m.toml"
    path.write_text('model = "lprn"\n')
    with pytest.raises(ConfigError, match=r"model = 'lprn' is not a table: a model TOML holds a \[model\] table"):
        load_model_config(path)


def test_a_model_toml_must_give_every_architecture_key_and_is_named_after_its_file(tmp_path) -> None:
    """An empty model TOML once trained a C=32 T=6 net named "lprn", the shipped model's name."""
    path = tmp_path / "small.toml"
    path.write_text("")
    with pytest.raises(ConfigError, match="small.toml: missing channels, blocks, stages, attention, unshuffle"):
        load_model_config(path)
    path.write_text("[model]\n" + _ARCHITECTURE.replace("stages = 2\n", ""))
    with pytest.raises(ConfigError, match="small.toml: missing stages "):
        load_model_config(path)
    path.write_text(_ARCHITECTURE)  # the keys at top level, no name
    assert load_model_config(path) == ModelConfig(name="small", channels=8, blocks=1, stages=2, attention="none")


@pytest.mark.parametrize("given, error, message", [
    ("", ModelNotFoundError, "no model given: use one of lprn, lprn-rt, lprn-fast"),
    ("  ", ModelNotFoundError, "no model given"),
    ("lprn-fst", ModelNotFoundError, r"unknown model 'lprn-fst' \(did you mean lprn-fast\?\): use one of"),
    ("best.pth", InputNotFoundError, "^weights file not found: best.pth$"),
    ("runs/x", InputNotFoundError, "^weights file not found: runs/x$"),
    ("m.toml", ModelNotFoundError, r"m.toml is a model config, which holds no weights: train it .* or give a \.pt"),
])
def test_model_argument_messages(given: str, error: type, message: str, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.toml").write_text("[model]\n" + _ARCHITECTURE)
    with pytest.raises(error, match=message):
        load_model(given)


def test_model_argument_folder_tilde_and_case(tmp_path, monkeypatch) -> None:
    with pytest.raises(WeightsError, match=f"^{re.escape(str(tmp_path))} is a folder, not a weights file"):
        load_model(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    save_weights(tmp_path / "mine.pt", LPRN(ModelConfig(name="mine", channels=8, blocks=1, stages=1)))
    assert load_model("~/mine.pt").path == tmp_path / "mine.pt"
    assert load_model("LPRN-Fast").name == "lprn-fast"


def test_one_corrupt_shipped_model_does_not_abort_the_listing(tmp_path, monkeypatch, run_cli) -> None:
    for name in SHIPPED_MODELS:
        for suffix in (".pt", ".json"):
            shutil.copy(registry.shipped_weights_path(name).with_suffix(suffix), tmp_path / f"{name}{suffix}")
    (tmp_path / "lprn-rt.pt").write_bytes(b"garbage")
    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path)
    rows = {row["name"]: row for row in list_models()}
    assert set(rows) == set(SHIPPED_MODELS)
    assert not rows["lprn-rt"]["available"] and "lprn-rt.pt" in rows["lprn-rt"]["error"]
    assert rows["lprn"]["available"] and rows["lprn-fast"]["available"] and "error" not in rows["lprn"]
    result = run_cli("models")
    assert result.exit_code == 0, result.stderr
    assert [line.split()[0] for line in result.stdout.splitlines()[1:]] == list(SHIPPED_MODELS)
    assert "weights missing" not in result.stdout and "lprn-rt.pt" in result.stdout.splitlines()[2]  # why, not "missing"
