"""The LPRN network: shapes, shared stage weights, config validation, every shipped preset loads."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from videodeblur.config import ModelConfig, load_model_config
from videodeblur.errors import ConfigError, ModelNotFoundError
from videodeblur.model import LPRN, SHIPPED_MODELS, load_model
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


def test_base_network_parameters_do_not_grow_with_stages_only_the_fusion_does() -> None:
    counts = {t: LPRN(ModelConfig(channels=16, stages=t)) for t in (5, 6, 7)}
    shared = {t: net.stage_parameter_count() for t, net in counts.items()}
    total = {t: sum(p.numel() for p in net.parameters()) for t, net in counts.items()}
    assert shared[5] == shared[6] == shared[7]
    assert total[5] < total[6] < total[7]


@pytest.mark.parametrize("attention", ["none", "channel", "spatial", "both"])
def test_attention_variants_build_and_differ_in_parameters(attention: str) -> None:
    net = LPRN(ModelConfig(channels=8, stages=3, attention=attention))
    has_channel = any(n.startswith("channel_attention.") for n, _ in net.named_parameters())
    has_spatial = any(n.startswith("fuse.logits") for n, _ in net.named_parameters())
    assert has_channel == (attention in ("channel", "both"))
    assert has_spatial == (attention in ("spatial", "both"))


def test_stage_recursion_shares_weights_so_outputs_depend_on_stage_count() -> None:
    torch.manual_seed(0)
    a = LPRN(ModelConfig(channels=8, blocks=1, stages=2, attention="none"))
    b = LPRN(ModelConfig(channels=8, blocks=1, stages=2, attention="none"))
    b.load_state_dict(a.state_dict())
    x = torch.rand(1, 3, 16, 16)
    assert torch.equal(a(x), b(x))


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


def test_models_command_lists_every_shipped_model_with_its_figures(run_cli) -> None:
    result = run_cli("models", "--json")
    assert result.exit_code == 0
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert set(rows) == set(SHIPPED_MODELS)
    for name, row in rows.items():
        loaded = load_model(name)
        assert row["available"] and row["parameters"] == loaded.parameters
        assert row["config"] == loaded.network.config.to_dict() and 0 < row["size_mb"] < 5
        assert row["evaluation"]["gain_db"] == loaded.metadata["evaluation"]["gain_db"]
    table = run_cli("models").stdout.splitlines()
    assert "H.264 dB" in table[0] and [line.split()[0] for line in table[1:]] == list(SHIPPED_MODELS)
