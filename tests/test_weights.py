"""Weights files: round trip, safe loading, corrupt and mismatched files give a WeightsError naming the file."""
from __future__ import annotations

import pytest
import torch

from videodeblur.config import ModelConfig
from videodeblur.errors import InputNotFoundError, WeightsError
from videodeblur.model import LPRN, load_model, read_metadata, save_weights


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
    class Evil:
        def __reduce__(self):
            return (print, ("executed",))

    path = tmp_path / "evil.pt"
    torch.save({"format": 1, "config": {}, "state_dict": Evil()}, path)
    with pytest.raises(WeightsError):
        load_model(path)


def test_missing_weights_file(tmp_path) -> None:
    with pytest.raises(InputNotFoundError):
        load_model(tmp_path / "missing.pt")
