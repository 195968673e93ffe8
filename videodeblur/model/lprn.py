"""LPRN: a shallow residual network applied recursively with shared weights, plus feature recalibration.

Order: building blocks → the network. Shapes: frames are ``N×3×H×W`` floats in [0, 1].

Choices the paper leaves open, made here:
- The stage input is ``concat(blurred, previous estimate)``. Because a convolution is linear, the
  concat conv is written as two convs, one on the blurred input (computed once and reused by every
  stage, and doubling as "the input's features" for the fusion) and one on the estimate. Same
  function, half the head cost per stage.
- Channel attention is squeeze-and-excitation over the concatenation of the input's features and
  every stage's output features; spatial selection is a selective-kernel style per-pixel softmax
  over those T+1 branches. Only this fusion grows with T; the stage network is shared.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from videodeblur.config import ModelConfig

__all__ = ["LPRN", "ResidualBlock", "ChannelAttention", "SpatialSelection"]


class ResidualBlock(nn.Module):
    """conv-ReLU-conv with an identity skip."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x), inplace=True))


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation: one weight per channel from global average pooling."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.squeeze = nn.Conv2d(channels, hidden, 1)
        self.excite = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = x.mean(dim=(2, 3), keepdim=True)
        w = torch.sigmoid(self.excite(F.relu(self.squeeze(w), inplace=True)))
        return x * w


class SpatialSelection(nn.Module):
    """Per-pixel softmax over ``branches`` feature maps of ``channels`` each: picks, at every pixel,
    which stage's features to trust (sharp regions from early stages, heavy blur from late ones)."""

    def __init__(self, channels: int, branches: int) -> None:
        super().__init__()
        self.branches = branches
        self.logits = nn.Conv2d(channels * branches, branches, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        weights = torch.softmax(self.logits(x), dim=1)  # N×B×H×W
        if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            # Channels-last (the engine's format): a weighted sum branch by branch stays channels-last.
            # The product-then-sum below would build a 5-D strided product and return NCHW, which the
            # next conv copies back: 2.6 ms against 0.3 ms at 640×360 on the CPU. Same sum to ~1e-7.
            c = x.shape[1] // self.branches
            fused = x[:, :c] * weights[:, :1]
            for b in range(1, self.branches):
                fused.addcmul_(x[:, b * c:(b + 1) * c], weights[:, b:b + 1])
            return fused
        stacked = x.view(n, self.branches, -1, h, w)  # NCHW (training): one broadcast product, 4× faster there
        return (stacked * weights.unsqueeze(2)).sum(dim=1)


class LPRN(nn.Module):
    """Lightweight Progressive Residual Network. Any H×W works: padded to the unshuffle factor, cropped back."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        c, s = config.channels, config.unshuffle
        io = 3 * s * s
        # Shared stage network (its parameters do not depend on T).
        self.head_input = nn.Conv2d(io, c, 3, padding=1)
        self.head_estimate = nn.Conv2d(io, c, 3, padding=1, bias=False)
        self.body = nn.Sequential(*[ResidualBlock(c) for _ in range(config.blocks)])
        self.tail = nn.Conv2d(c, io, 3, padding=1)
        # Feature recalibration over the input's features and every stage's features.
        branches = config.stages + 1
        use_channel = config.attention in ("channel", "both")
        use_spatial = config.attention in ("spatial", "both")
        self.channel_attention = (
            ChannelAttention(c * branches, config.reduction) if use_channel else nn.Identity()
        )
        self.fuse = SpatialSelection(c, branches) if use_spatial else nn.Conv2d(c * branches, c, 1)
        self.reconstruct = nn.Conv2d(c, io, 3, padding=1)
        # Start as the identity: the residual outputs are zero, so an untrained network passes frames
        # through and training starts from the blurred input's loss, not from noise. Measured: with
        # random init the attention variants stalled at the identity for thousands of steps.
        for layer in (self.tail, self.reconstruct):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        s = self.config.unshuffle
        h, w = frames.shape[-2:]
        pad_h, pad_w = (-h) % s, (-w) % s
        x = F.pad(frames, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else frames
        x = F.pixel_unshuffle(x, s) if s > 1 else x

        input_features = self.head_input(x)
        estimate = x
        features = [input_features]
        for _ in range(self.config.stages):
            f = F.relu(input_features + self.head_estimate(estimate))
            f = self.body(f)
            features.append(f)
            estimate = x + self.tail(f)

        fused = self.fuse(self.channel_attention(torch.cat(features, dim=1)))
        out = x + self.reconstruct(fused)
        out = F.pixel_shuffle(out, s) if s > 1 else out
        return out[..., :h, :w] if pad_h or pad_w else out

    def stage_parameter_count(self) -> int:
        """Parameters of the shared stage network (constant in T)."""
        shared = (self.head_input, self.head_estimate, self.body, self.tail)
        return sum(p.numel() for m in shared for p in m.parameters())
