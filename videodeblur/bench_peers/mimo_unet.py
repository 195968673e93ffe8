"""MIMO-UNet and MIMO-UNet+ (Cho, Ji, Hong, Jung, Ko: "Rethinking Coarse-to-Fine Approach in Single
Image Deblurring", ICCV 2021), for speed only.

Re-implemented from the paper's description: one three-level U-Net (32/64/128 channels) that takes
the image at full, 1/2 and 1/4 scale (shallow convolutional modules, SCM, merged by feature attention,
FAM), fuses the encoder scales asymmetrically (AFF) and outputs a deblurred image at every scale. The
paper's models differ only in residual blocks per encoder/decoder level: 8 (MIMO-UNet) and 20
(MIMO-UNet+). Random weights: speed only, never quality. ``forward`` returns the full-scale output
(the one a video pipeline keeps); the coarser outputs are still computed, as in the paper.

Order: blocks → model → variants.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MIMOUNet", "mimo_unet", "mimo_unet_plus"]


def conv(cin: int, cout: int, kernel: int, stride: int = 1, relu: bool = True,
         transpose: bool = False) -> nn.Sequential:
    """A convolution (or a stride-2 transposed convolution) with 'same' padding, optionally followed by ReLU."""
    if transpose:
        layer: nn.Module = nn.ConvTranspose2d(cin, cout, kernel, stride=stride, padding=kernel // 2 - 1)
    else:
        layer = nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2)
    return nn.Sequential(layer, nn.ReLU(inplace=True)) if relu else nn.Sequential(layer)


class ResBlock(nn.Module):
    """conv3-ReLU-conv3 with an identity skip."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv(channels, channels, 3), conv(channels, channels, 3, relu=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ShallowConvModule(nn.Module):
    """SCM: features of a downscaled input image, concatenated with the image itself."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv(3, channels // 4, 3), conv(channels // 4, channels // 2, 1),
                                  conv(channels // 2, channels // 2, 3), conv(channels // 2, channels - 3, 1))
        self.merge = conv(channels, channels, 1, relu=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.merge(torch.cat([image, self.body(image)], dim=1))


class FeatureAttention(nn.Module):
    """FAM: the encoder features modulated by the SCM features (element-wise product, refined, added)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.merge = conv(channels, channels, 3, relu=False)

    def forward(self, features: torch.Tensor, scm: torch.Tensor) -> torch.Tensor:
        return features + self.merge(features * scm)


class AsymmetricFusion(nn.Module):
    """AFF: all three encoder scales, resized to one level, concatenated and mixed (1×1 then 3×3)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv(cin, cout, 1), conv(cout, cout, 3, relu=False))

    def forward(self, *features: torch.Tensor) -> torch.Tensor:
        return self.body(torch.cat(features, dim=1))


class MIMOUNet(nn.Module):
    """Multi-input multi-output U-Net with ``res_blocks`` residual blocks per encoder and decoder level."""

    def __init__(self, res_blocks: int, base: int = 32) -> None:
        super().__init__()

        def stack(c: int) -> nn.Sequential:
            return nn.Sequential(*[ResBlock(c) for _ in range(res_blocks)])

        self.encoders = nn.ModuleList([stack(base), stack(2 * base), stack(4 * base)])
        self.decoders = nn.ModuleList([stack(4 * base), stack(2 * base), stack(base)])
        self.head = conv(3, base, 3)
        self.down1 = conv(base, 2 * base, 3, stride=2)
        self.down2 = conv(2 * base, 4 * base, 3, stride=2)
        self.up2 = conv(4 * base, 2 * base, 4, stride=2, transpose=True)
        self.up1 = conv(2 * base, base, 4, stride=2, transpose=True)
        self.tail = conv(base, 3, 3, relu=False)
        self.squeeze2 = conv(4 * base, 2 * base, 1)
        self.squeeze1 = conv(2 * base, base, 1)
        self.out4 = conv(4 * base, 3, 3, relu=False)
        self.out2 = conv(2 * base, 3, 3, relu=False)
        self.aff1 = AsymmetricFusion(7 * base, base)
        self.aff2 = AsymmetricFusion(7 * base, 2 * base)
        self.scm2 = ShallowConvModule(2 * base)
        self.scm4 = ShallowConvModule(4 * base)
        self.fam2 = FeatureAttention(2 * base)
        self.fam4 = FeatureAttention(4 * base)

    def forward_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Outputs at 1/4, 1/2 and full scale (H and W must be multiples of 4)."""
        x2 = F.interpolate(x, scale_factor=0.5)
        x4 = F.interpolate(x2, scale_factor=0.5)
        res1 = self.encoders[0](self.head(x))
        res2 = self.encoders[1](self.fam2(self.down1(res1), self.scm2(x2)))
        z = self.encoders[2](self.fam4(self.down2(res2), self.scm4(x4)))

        z42 = F.interpolate(z, scale_factor=2)
        fused2 = self.aff2(F.interpolate(res1, scale_factor=0.5), res2, z42)
        fused1 = self.aff1(res1, F.interpolate(res2, scale_factor=2), F.interpolate(z42, scale_factor=2))

        z = self.decoders[0](z)
        outputs = [self.out4(z) + x4]
        z = self.decoders[1](self.squeeze2(torch.cat([self.up2(z), fused2], dim=1)))
        outputs.append(self.out2(z) + x2)
        z = self.decoders[2](self.squeeze1(torch.cat([self.up1(z), fused1], dim=1)))
        outputs.append(self.tail(z) + x)
        return outputs

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        h, w = frames.shape[-2:]
        pad_h, pad_w = (-h) % 4, (-w) % 4
        x = F.pad(frames, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else frames
        return self.forward_all(x)[-1][..., :h, :w]


def mimo_unet() -> MIMOUNet:
    """MIMO-UNet: 8 residual blocks per level."""
    return MIMOUNet(res_blocks=8)


def mimo_unet_plus() -> MIMOUNet:
    """MIMO-UNet+: 20 residual blocks per level."""
    return MIMOUNet(res_blocks=20)
