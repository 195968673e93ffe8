"""The speed-only peer networks are the published sizes: parameter counts and MACs against the papers."""
from __future__ import annotations

import pytest
import torch

from videodeblur.bench_peers import PEERS, build_peer, count_macs, count_parameters
from videodeblur.errors import ModelNotFoundError


@pytest.mark.parametrize("name", sorted(PEERS))
def test_parameter_count_matches_the_paper(name: str) -> None:
    params_m = count_parameters(build_peer(name)) / 1e6
    assert params_m == pytest.approx(PEERS[name].published_params_m, rel=0.02)


@pytest.mark.parametrize("name", [n for n in sorted(PEERS) if PEERS[n].published_gmacs_256 is not None])
def test_macs_match_the_paper(name: str) -> None:
    gmacs = count_macs(build_peer(name), 256, 256) / 1e9
    assert gmacs == pytest.approx(PEERS[name].published_gmacs_256, rel=0.05)


@pytest.mark.parametrize("name", ["nafnet-32", "mimo-unet"])
def test_forward_keeps_any_frame_shape(name: str) -> None:
    frames = torch.rand(2, 3, 37, 50)
    with torch.no_grad():
        out = build_peer(name)(frames)
    assert out.shape == frames.shape
    assert torch.isfinite(out).all()


def test_unknown_peer_names_the_choices() -> None:
    with pytest.raises(ModelNotFoundError, match="nafnet-32"):
        build_peer("restormer")
