"""Peer deblurring networks for ``videodeblur bench --compare``: speed-only reference implementations.

Each is re-implemented from its paper at the published size and runs with random weights: it is
here so the speed ratio of LPRN against the well-known heavier architectures is measured on the
same machine, in the same run, on the same frames. They are never used to deblur anything.

They live inside the package (not under the repository's ``benchmarks/``) so ``--compare`` works
from an installed wheel, where the repository tree does not exist.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import torch
from torch import nn

from videodeblur.bench_peers.mimo_unet import MIMOUNet, mimo_unet, mimo_unet_plus
from videodeblur.bench_peers.nafnet import NAFNet, nafnet_gopro
from videodeblur.errors import ModelNotFoundError

__all__ = ["PEERS", "Peer", "build_peer", "count_macs", "count_parameters", "NAFNet", "MIMOUNet"]


@dataclasses.dataclass(frozen=True)
class Peer:
    """A peer architecture at its published size, with the figures its paper reports."""

    name: str
    citation: str
    build: Callable[[], nn.Module]
    published_params_m: float
    """Parameters in millions, as published."""
    published_gmacs_256: float | None
    """Multiply-accumulates per 256×256 image in G, as published (None where the paper gives none)."""


PEERS: dict[str, Peer] = {
    peer.name: peer for peer in (
        # NAFNet: GMACs from the paper's GoPro table; parameters as counted for the official GoPro models.
        Peer("nafnet-32", "Chen et al., Simple Baselines for Image Restoration, ECCV 2022 (GoPro, width 32)",
             lambda: nafnet_gopro(32), 17.11, 16.0),
        Peer("nafnet-64", "Chen et al., Simple Baselines for Image Restoration, ECCV 2022 (GoPro, width 64)",
             lambda: nafnet_gopro(64), 67.89, 65.0),
        # MIMO-UNet: parameters from the paper's Table 1.
        Peer("mimo-unet", "Cho et al., Rethinking Coarse-to-Fine Approach in Single Image Deblurring, ICCV 2021",
             mimo_unet, 6.807, None),
        Peer("mimo-unet+", "Cho et al., Rethinking Coarse-to-Fine Approach in Single Image Deblurring, ICCV 2021",
             mimo_unet_plus, 16.108, None),
    )
}


def build_peer(name: str) -> nn.Module:
    """The named peer in eval mode with random weights (seeded, so every run builds the same network)."""
    if name not in PEERS:
        raise ModelNotFoundError(f"unknown peer {name!r}: use one of {', '.join(PEERS)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        network = PEERS[name].build()
    return network.eval().requires_grad_(False)


def count_parameters(network: nn.Module) -> int:
    return sum(p.numel() for p in network.parameters())


def count_macs(network: nn.Module, height: int = 256, width: int = 256) -> int:
    """Multiply-accumulates of the convolutions for one ``height×width`` image (what papers report as MACs;
    element-wise ops are left out, so this reads a few % under counters that include them)."""
    total = 0

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        kh, kw = module.kernel_size  # type: ignore[misc]
        if isinstance(module, nn.ConvTranspose2d):
            total += inputs[0].numel() * module.out_channels * kh * kw
        else:
            total += output.numel() * (module.in_channels // module.groups) * kh * kw  # type: ignore[operator]

    convs = [m for m in network.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    handles = [m.register_forward_hook(hook) for m in convs]
    try:
        with torch.no_grad():
            network(torch.rand(1, 3, height, width))
    finally:
        for handle in handles:
            handle.remove()
    return total
