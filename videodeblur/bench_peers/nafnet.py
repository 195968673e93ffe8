"""NAFNet (Chen, Chu, Zhang, Sun: "Simple Baselines for Image Restoration", ECCV 2022), for speed only.

Re-implemented from the paper's description (a U-Net of NAFBlocks: LayerNorm → 1×1 expand → 3×3
depthwise → SimpleGate → simplified channel attention → 1×1, then a gated 1×1 feed-forward, both
branches scaled by learnt β/γ; 2×2 stride-2 convs down, 1×1 conv + pixel-shuffle up, additive skips,
global residual). Random weights: it exists so ``videodeblur bench --compare`` measures the speed of
the published GoPro configurations (width 32 and 64; encoder blocks [1, 1, 1, 28], one middle block,
decoder blocks [1, 1, 1, 1]) on the same machine, never their quality.

Order: blocks → model → variants.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["NAFBlock", "NAFNet", "nafnet_gopro"]


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of every pixel of an ``N×C×H×W`` map (learnt scale and shift per channel)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=1, keepdim=True)
        var = (x - mean).pow(2).mean(dim=1, keepdim=True)
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias


class SimpleGate(nn.Module):
    """Split the channels in two halves and multiply them: the paper's activation-free nonlinearity."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b


class NAFBlock(nn.Module):
    """Nonlinear-activation-free block: a gated depthwise branch and a gated feed-forward branch."""

    def __init__(self, channels: int, dw_expand: int = 2, ffn_expand: int = 2) -> None:
        super().__init__()
        dw = channels * dw_expand
        ffn = channels * ffn_expand
        self.norm1 = LayerNorm2d(channels)
        self.conv1 = nn.Conv2d(channels, dw, 1)
        self.conv2 = nn.Conv2d(dw, dw, 3, padding=1, groups=dw)
        self.gate = SimpleGate()
        self.sca = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(dw // 2, dw // 2, 1))
        self.conv3 = nn.Conv2d(dw // 2, channels, 1)
        self.norm2 = LayerNorm2d(channels)
        self.conv4 = nn.Conv2d(channels, ffn, 1)
        self.conv5 = nn.Conv2d(ffn // 2, channels, 1)
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        x = self.gate(self.conv2(self.conv1(self.norm1(inp))))
        x = self.conv3(x * self.sca(x))
        y = inp + x * self.beta
        x = self.conv5(self.gate(self.conv4(self.norm2(y))))
        return y + x * self.gamma


class NAFNet(nn.Module):
    """The U-Net: ``len(enc_blocks)`` levels, each halving the resolution and doubling the width."""

    def __init__(self, width: int, enc_blocks: Sequence[int], middle_blocks: int,
                 dec_blocks: Sequence[int], channels: int = 3) -> None:
        super().__init__()
        self.intro = nn.Conv2d(channels, width, 3, padding=1)
        self.ending = nn.Conv2d(width, channels, 3, padding=1)
        self.encoders = nn.ModuleList()
        self.downs = nn.ModuleList()
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        c = width
        for n in enc_blocks:
            self.encoders.append(nn.Sequential(*[NAFBlock(c) for _ in range(n)]))
            self.downs.append(nn.Conv2d(c, 2 * c, 2, stride=2))
            c *= 2
        self.middle = nn.Sequential(*[NAFBlock(c) for _ in range(middle_blocks)])
        for n in dec_blocks:
            self.ups.append(nn.Sequential(nn.Conv2d(c, 2 * c, 1, bias=False), nn.PixelShuffle(2)))
            c //= 2
            self.decoders.append(nn.Sequential(*[NAFBlock(c) for _ in range(n)]))
        self.multiple = 2 ** len(enc_blocks)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        h, w = frames.shape[-2:]
        pad_h, pad_w = (-h) % self.multiple, (-w) % self.multiple
        inp = F.pad(frames, (0, pad_w, 0, pad_h)) if pad_h or pad_w else frames
        x = self.intro(inp)
        skips = []
        for encoder, down in zip(self.encoders, self.downs):
            x = encoder(x)
            skips.append(x)
            x = down(x)
        x = self.middle(x)
        for decoder, up, skip in zip(self.decoders, self.ups, reversed(skips)):
            x = decoder(up(x) + skip)
        out = self.ending(x) + inp
        return out[..., :h, :w]


def nafnet_gopro(width: int) -> NAFNet:
    """The paper's GoPro deblurring configuration at ``width`` 32 or 64."""
    return NAFNet(width, enc_blocks=(1, 1, 1, 28), middle_blocks=1, dec_blocks=(1, 1, 1, 1))
