"""Weights files: round trip, safe loading, corrupt and mismatched files give a WeightsError naming the file."""
from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import pytest
import torch

from videodeblur.config import ModelConfig
from videodeblur.errors import InputNotFoundError, WeightsError
from videodeblur.model import LPRN, load_model, read_metadata, save_weights, weights_origin, write_metadata
from videodeblur.model.weights import record_evaluation


def test_save_load_round_trip_keeps_outputs_and_metadata(tmp_path) -> None:
    torch.manual_seed(1)
    net = LPRN(ModelConfig(channels=8, blocks=1, stages=2, unshuffle=2)).eval()
    path = save_weights(tmp_path / "m.pt", net, {"steps": 7})
    loaded = load_model(path)
    x = torch.rand(1, 3, 20, 30)
    assert loaded.network.config == net.config
    assert torch.equal(loaded.network(x), net(x))
    assert read_metadata(path) == {"steps": 7}
    assert loaded.name == "m"


def test_garbage_file_is_a_weights_error_naming_it(tmp_path) -> None:
    path = tmp_path / "bad.pt"
    path.write_bytes(b"not a checkpoint at all" * 10)
    with pytest.raises(WeightsError, match="bad.pt"):
        load_model(path)


def test_truncated_file_is_a_weights_error(tmp_path) -> None:
    net = LPRN(ModelConfig(channels=8, blocks=1, stages=2))
    path = save_weights(tmp_path / "t.pt", net)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(WeightsError, match="t.pt"):
        load_model(path)


def test_state_dict_not_matching_config_is_a_weights_error(tmp_path) -> None:
    net = LPRN(ModelConfig(channels=8, blocks=1, stages=2))
    path = tmp_path / "m.pt"
    torch.save({"format": 1, "config": ModelConfig(channels=16).to_dict(), "state_dict": net.state_dict()}, path)
    with pytest.raises(WeightsError, match="does not match its config"):
        load_model(path)


def test_pickled_object_is_refused_not_executed(tmp_path) -> None:
    """The code a pickle names never runs (weights_only=True). The test once pickled print(...), whose
    running went unchecked: unpickled, its None still made a WeightsError (config {} lacks every key)."""
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').close()",))

    path = tmp_path / "evil.pt"
    torch.save({"format": 1, "config": {}, "state_dict": Evil()}, path)
    with pytest.raises(WeightsError, match=rf"^{re.escape(str(path))} holds a pickled Python object "
                                           r"\((builtins\.)?exec\), not only tensors: it is not unpickled, since that "
                                           "could run any code"):
        load_model(path)
    assert not marker.exists()


def test_a_whole_pickled_network_is_named_as_such_not_called_corrupt(tmp_path) -> None:
    """torch.save(model) (not its state dict) was 'corrupt or not a videodeblur weights file': nothing is
    damaged, and the user needs to hear what to save instead."""
    path = tmp_path / "whole.pt"
    torch.save(LPRN(ModelConfig(channels=8, blocks=1, stages=1)), path)
    with pytest.raises(WeightsError, match=rf"^{re.escape(str(path))} holds a pickled Python object "
                                           r"\(videodeblur\.model\.lprn\.LPRN\), not only tensors: .* a weights file "
                                           r"holds a state dict and its config \(videodeblur\.model\.save_weights"):
        load_model(path)


def test_a_weights_file_that_cannot_be_read_says_why_not_corrupt(tmp_path) -> None:
    """No permission to read it was 'corrupt or not a videodeblur weights file': the file may be sound.
    Root reads any mode, so there the test reads a write-only sysfs file, which refuses even root."""
    path = save_weights(tmp_path / "locked.pt", LPRN(ModelConfig(channels=8, blocks=1, stages=1)))
    path.chmod(0o200)
    for candidate in (path, Path("/sys/bus/pci/rescan")):
        try:
            candidate.open("rb").close()
        except PermissionError:
            path = candidate
            break
        except OSError:
            continue
    else:
        pytest.skip("running as root, and no write-only sysfs file here")
    with pytest.raises(WeightsError, match=rf"^cannot read weights file {re.escape(str(path))}: Permission denied$"):
        load_model(path)


def test_an_empty_weights_file_is_called_empty(tmp_path) -> None:
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    with pytest.raises(WeightsError, match=rf"^weights file {re.escape(str(path))} is empty \(0 bytes\)"):
        load_model(path)


def test_missing_weights_file(tmp_path) -> None:
    with pytest.raises(InputNotFoundError):
        load_model(tmp_path / "missing.pt")


def test_a_weights_path_that_is_there_but_not_a_file_is_not_called_missing() -> None:
    """/dev/null (or a pipe) was "weights file not found": it is there, and the user would look for it."""
    with pytest.raises(WeightsError, match=r"^/dev/null is not a regular file \(a device or a pipe\?\)"):
        load_model("/dev/null")


def _small_state() -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    config = ModelConfig(channels=8, blocks=1, stages=2)
    return config, LPRN(config).state_dict()


@pytest.mark.parametrize("config", ["lprn", ["channels", 8], {1: 8}])
def test_a_config_that_is_not_a_table_is_a_one_line_weights_error(tmp_path, config) -> None:
    _, state = _small_state()
    path = tmp_path / "c.pt"
    torch.save({"format": 1, "config": config, "state_dict": state}, path)
    with pytest.raises(WeightsError, match=r"c\.pt carries an invalid config: a table of settings") as info:
        load_model(path)
    assert "\n" not in str(info.value)


def test_a_config_value_of_the_wrong_type_is_a_weights_error(tmp_path) -> None:
    config, state = _small_state()
    path = tmp_path / "f.pt"
    torch.save({"format": 1, "config": {**config.to_dict(), "channels": 8.5}, "state_dict": state}, path)
    with pytest.raises(WeightsError, match=r"f\.pt carries an invalid config"):
        load_model(path)


def test_a_shape_mismatch_names_the_first_key_and_both_shapes(tmp_path) -> None:
    _, state = _small_state()
    path = tmp_path / "m.pt"
    torch.save({"format": 1, "config": ModelConfig(channels=16, blocks=1, stages=2).to_dict(), "state_dict": state},
               path)
    with pytest.raises(WeightsError) as info:
        load_model(path)
    message = str(info.value)
    assert "\n" not in message
    first = next(iter(state))
    assert f"m.pt does not match its config: {first} has shape 8×3×3×3 in the file but 16×3×3×3 for the config" \
        in message, message


def test_a_config_far_larger_than_its_tensors_is_refused_before_its_network_is_allocated(tmp_path,
                                                                                          monkeypatch) -> None:
    """A config of C=512, 32 blocks, T=16 beside a small model's tensors built that network (1.3 GB resident,
    seconds of initialisation) before the shapes were compared. Every network load_weights builds is
    recorded: for this file, only shapes on the meta device; for a good file, one network on the CPU."""
    from videodeblur.model import weights

    built: list[str] = []

    def recorded(config: ModelConfig) -> LPRN:
        net = LPRN(config)
        built.append(next(net.parameters()).device.type)
        return net

    monkeypatch.setattr(weights, "LPRN", recorded)
    _, state = _small_state()
    path = tmp_path / "big.pt"
    torch.save({"format": 1, "config": ModelConfig(channels=512, blocks=32, stages=16).to_dict(), "state_dict": state},
               path)
    with pytest.raises(WeightsError, match="big.pt does not match its config: .* in the file but 512×3×3×3 for"):
        load_model(path)
    assert built == ["meta"]
    built.clear()
    good = save_weights(tmp_path / "good.pt", LPRN(ModelConfig(channels=8, blocks=1, stages=2)))
    assert load_model(good).network.config.channels == 8 and built == ["meta", "cpu"]


@pytest.mark.parametrize("given, message", [
    (2, "is weights format 2, from a newer videodeblur: this one reads format 1 (upgrade videodeblur to load it)"),
    ("1", "has weights format '1'; expected 1"), (None, "has weights format None; expected 1")])
def test_a_weights_format_this_version_cannot_read_is_named(tmp_path, given: object, message: str) -> None:
    """A file from a newer release said only 'has weights format 2; expected 1', which reads as damage."""
    config, state = _small_state()
    path = tmp_path / "f.pt"
    torch.save({"format": given, "config": config.to_dict(), "state_dict": state}, path)
    with pytest.raises(WeightsError, match=f"^{re.escape(str(path))} {re.escape(message)}$"):
        load_model(path)


def test_a_missing_tensor_is_named(tmp_path) -> None:
    config, state = _small_state()
    gone = list(state)[-1]
    del state[gone]
    path = tmp_path / "m.pt"
    torch.save({"format": 1, "config": config.to_dict(), "state_dict": state}, path)
    with pytest.raises(WeightsError, match=f"does not match its config: it lacks {gone}$"):
        load_model(path)


@pytest.mark.parametrize("bad,word", [(float("nan"), "NaN"), (float("inf"), "infinite"), (-float("inf"), "infinite")])
def test_weights_with_nan_or_inf_are_refused_naming_the_tensor(tmp_path, bad, word) -> None:
    config, state = _small_state()
    key = [k for k, v in state.items() if v.is_floating_point()][3]
    state[key].view(-1)[5] = bad
    path = tmp_path / "diverged.pt"
    torch.save({"format": 1, "config": config.to_dict(), "state_dict": state}, path)
    with pytest.raises(WeightsError, match=f"diverged.pt is broken: tensor {key} holds {word} values") as info:
        load_model(path)
    assert "\n" not in str(info.value)


def test_cli_names_a_broken_weights_file_in_one_line(run_cli, make_image, tmp_path) -> None:
    image_file = make_image("in.png", width=24, height=16)
    config, state = _small_state()
    state[next(iter(state))].view(-1)[0] = float("nan")
    path = tmp_path / "nan.pt"
    torch.save({"format": 1, "config": config.to_dict(), "state_dict": state}, path)
    result = run_cli("image", image_file, "-o", tmp_path / "o.png", "--device", "cpu", "--model", path)
    assert result.exit_code == 1
    assert result.stderr_lines == [f"videodeblur: error: {path} is broken: tensor {next(iter(state))} holds NaN values "
                                   "(a diverged training run?); use other weights"]
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("sidecar, why", [('{"steps": 7}'.encode("utf-16"), "'utf-8' codec can't decode byte 0xff"),
                                         (b"[1, 2]", "a JSON list, not an object"),
                                         (b"null", "a JSON null, not an object"),
                                         (b'"x"', "a JSON string, not an object"),
                                         (b"{not json", "Expecting property name enclosed in double quotes")])
def test_a_metadata_file_that_is_not_a_json_object_is_ignored_and_models_says_why(tmp_path, run_cli, sidecar: bytes,
                                                                                 why: str) -> None:
    """Optional, so as good as none, as invalid JSON always was: UTF-16 (PowerShell) once failed every
    command with UnicodeDecodeError, and a list crashed train --init and eval --record. `models` lists
    the weights, and says why their row has no figures (it said nothing: the user's JSON was there)."""
    config, _ = _small_state()
    path = save_weights(tmp_path / "m.pt", LPRN(config))
    path.with_suffix(".json").write_bytes(sidecar)
    assert read_metadata(path) == {}
    loaded = load_model(path)
    assert loaded.metadata == {} and weights_origin(loaded, path)["steps"] is None
    result = run_cli("models", path, "--json")
    assert result.exit_code == 0 and [row["evaluation"] for row in json.loads(result.stdout)] == [None]
    (line,) = result.stderr_lines
    assert line.startswith(f"videodeblur: warning: {path.with_suffix('.json')} cannot be read as metadata ({why}")
    assert line.endswith(f"): {path} is listed without steps or figures")


@pytest.mark.parametrize("kind", ["meta", "sparse", "int", "complex"])
def test_tensors_that_are_not_dense_floating_point_are_refused_naming_the_tensor(tmp_path, kind: str) -> None:
    config, state = _small_state()
    key = next(iter(state))
    state[key] = {"meta": lambda t: t.to("meta"), "sparse": lambda t: t.to_sparse(), "int": lambda t: t.int(),
                  "complex": lambda t: t.to(torch.complex64)}[kind](state[key])
    path = tmp_path / "odd.pt"
    torch.save({"format": 1, "config": config.to_dict(), "state_dict": state}, path)
    with pytest.raises(WeightsError, match=f"^{re.escape(str(path))} is not a usable weights file: tensor {key} "
                                           "holds .*; weights must be dense floating-point") as info, \
            warnings.catch_warnings():
        warnings.simplefilter("error")  # a torch warning would print lines before our one-line error
        load_model(path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_weights_in_any_floating_point_precision_load(tmp_path, dtype: torch.dtype) -> None:
    config, state = _small_state()
    path = tmp_path / "p.pt"
    torch.save({"format": 1, "config": config.to_dict(), "state_dict": {k: v.to(dtype) for k, v in state.items()}},
               path)
    assert load_model(path).network.config == config


def test_a_weights_config_must_give_every_architecture_key(tmp_path) -> None:
    config, state = _small_state()
    table = config.to_dict()
    del table["channels"], table["name"]
    path = tmp_path / "m.pt"
    torch.save({"format": 1, "config": table, "state_dict": state}, path)
    with pytest.raises(WeightsError, match=r"m\.pt carries an invalid config: missing channels"):  # the name once
        load_model(path)
    table["channels"] = 8  # no name: the file's stem, not the shipped "lprn"
    torch.save({"format": 1, "config": table, "state_dict": state}, path)
    assert load_model(path).network.config.name == "m"


def test_a_weights_config_with_a_name_that_is_a_path_is_refused(tmp_path) -> None:
    config, state = _small_state()
    path = tmp_path / "m.pt"
    torch.save({"format": 1, "config": {**config.to_dict(), "name": "../../escape"}, "state_dict": state}, path)
    with pytest.raises(WeightsError, match=r"m\.pt carries an invalid config: model\.name must be a plain file name"):
        load_model(path)


def test_a_metadata_file_of_other_weights_gives_no_training_record(tmp_path) -> None:
    config, _ = _small_state()
    path = save_weights(tmp_path / "m.pt", LPRN(config), {"config": {**config.to_dict(), "channels": 16},
                                                          "steps": 500, "commit": "abc1234"})
    warnings: list[str] = []
    origin = weights_origin(load_model(path), path, warn=warnings.append)
    assert origin["steps"] is None and origin["commit"] is None
    assert len(warnings) == 1 and "m.json does not describe" in warnings[0] and "config differs" in warnings[0]
    # a renamed copy (lprn-t6-both shipped as lprn) is the same model
    write_metadata(path, {"config": {**config.to_dict(), "name": "other"}, "steps": 500})
    assert weights_origin(load_model(path), path, warn=warnings.append)["steps"] == 500 and len(warnings) == 1


def test_record_evaluation_keeps_the_metadata_and_drops_an_h264_figure_of_other_pairs(tmp_path: Path) -> None:
    """The rule of what `eval --record` keeps lived in the command (h3's U2); a library caller recording
    an evaluation gets the same: the rest of the metadata kept, the H.264 figure kept only for the same pairs."""
    weights = save_weights(tmp_path / "w.pt", LPRN(ModelConfig(channels=8, blocks=1, stages=2)))
    held = {"steps": 7, "eval_pairs": str(tmp_path / "pairs"), "evaluation": {"psnr": 1.0},
            "evaluation_compressed": {"psnr": 2.0}, "eval_pairs_compressed": "pairs_h264"}
    write_metadata(weights, held)
    said: list[str] = []
    record_evaluation(weights, {"psnr": 3.0}, tmp_path / "pairs" / ".", warn=said.append)  # the same folder
    assert read_metadata(weights) == {**held, "evaluation": {"psnr": 3.0},
                                      "eval_pairs": str((tmp_path / "pairs").resolve())}
    assert said == []
    record_evaluation(weights, {"psnr": 4.0}, tmp_path / "other", warn=said.append)
    assert read_metadata(weights) == {"steps": 7, "eval_pairs": str(tmp_path / "other"), "evaluation": {"psnr": 4.0}}
    assert len(said) == 1 and "H.264 figure (on pairs_h264) was measured on other pairs" in said[0]


def test_recorded_paths_hold_no_folder_of_this_machine(tmp_path: Path, monkeypatch) -> None:
    """`eval --record` stored the pairs resolved, and a fine-tune its --init file's full path: a weights
    file that ships then held this machine's folders (/home/me/videodeblur/runs/eval_pairs). Inside the
    current folder (a run from the repository root) they are recorded relative to it, as the recipe's paths
    are; outside it, absolute. An older record's relative path, and one made from elsewhere, read from here."""
    weights = save_weights(tmp_path / "a" / "w.pt", LPRN(ModelConfig(channels=8, blocks=1, stages=2)))
    h264 = {"evaluation_compressed": {"psnr": 2.0}, "eval_pairs_compressed": "pairs_h264"}
    for folder in ("a/runs/pairs", "b/runs/pairs"):
        (tmp_path / folder).mkdir(parents=True)
    said: list[str] = []
    monkeypatch.chdir(tmp_path / "a")
    write_metadata(weights, {"eval_pairs": "runs/pairs", "evaluation": {}, **h264})
    record_evaluation(weights, {"psnr": 3.0}, tmp_path / "a" / "runs" / "pairs" / ".", warn=said.append)  # the same
    assert read_metadata(weights)["eval_pairs"] == "runs/pairs" and said == []
    assert read_metadata(weights)["evaluation_compressed"] == {"psnr": 2.0}
    assert weights_origin(load_model(weights), weights)["path"] == "w.pt"
    monkeypatch.chdir(tmp_path / "b")
    assert weights_origin(load_model(weights), weights)["path"] == str((tmp_path / "a" / "w.pt").resolve())
    pairs = tmp_path / "a" / "runs" / "pairs"
    record_evaluation(weights, {"psnr": 4.0}, pairs, warn=said.append)  # "runs/pairs" read from b: b's, not these
    assert read_metadata(weights)["eval_pairs"] == str(pairs.resolve())
    assert "evaluation_compressed" not in read_metadata(weights)
    assert len(said) == 1 and f"measured on other pairs than {pairs}" in said[0]
