"""Image quality metrics on float tensors in [0, 1] (N×3×H×W or 3×H×W), computed per image."""
from __future__ import annotations

import cv2
import numpy as np
import torch

__all__ = ["psnr", "ssim", "SSIM_WINDOW"]

SSIM_WINDOW = 11  # px: the Gaussian window's side; an image must be at least this large on each side


def _quantise(t: torch.Tensor, levels: int = 255) -> torch.Tensor:
    """``t`` clamped to [0, 1] and rounded to ``levels`` (255: 8 bits; 65535: 16), as a saved frame
    would be: both metrics score this, so PSNR and SSIM describe the same picture (the network's
    output is unrounded floats)."""
    return torch.round(t.clamp(0, 1) * levels) / levels


def psnr(output: torch.Tensor, target: torch.Tensor, *, levels: int = 255) -> torch.Tensor:
    """PSNR in dB per image on values quantised to ``levels`` (:func:`_quantise`); inf when equal."""
    output, target = _batched(output), _batched(target)
    mse = ((_quantise(output, levels) - _quantise(target, levels)) ** 2).flatten(1).mean(dim=1).double()
    return 10.0 * torch.log10(1.0 / mse)


def ssim(output: torch.Tensor, target: torch.Tensor, *, levels: int = 255) -> torch.Tensor:
    """SSIM per image (Wang et al. 2004: 11×11 Gaussian window, sigma 1.5, K1=0.01, K2=0.03, valid
    region), averaged over the RGB channels, on values quantised to ``levels`` (:func:`_quantise`), as
    :func:`psnr` is. Computed with OpenCV's separable Gaussian: torch's CPU grouped convolutions
    take seconds on a full frame."""
    if min(output.shape[-2:]) < SSIM_WINDOW:  # the valid region would be empty: NaN, and numpy's warnings
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} px, got "
                         f"{output.shape[-1]}x{output.shape[-2]}")
    x = _quantise(_batched(output).detach().float(), levels).cpu().numpy()
    y = _quantise(_batched(target).detach().float(), levels).cpu().numpy()
    return torch.tensor([_ssim_one(a, b) for a, b in zip(x, y)], dtype=torch.float64)


def _ssim_one(x: np.ndarray, y: np.ndarray) -> float:
    c1, c2 = 0.01**2, 0.03**2
    edge = SSIM_WINDOW // 2
    blur = lambda t: cv2.GaussianBlur(t, (SSIM_WINDOW, SSIM_WINDOW), 1.5,
                                      borderType=cv2.BORDER_REFLECT)[edge:-edge, edge:-edge]
    values = []
    for a, b in zip(x, y):  # channel planes, H×W float32
        mu_a, mu_b = blur(a), blur(b)
        var_a = blur(a * a) - mu_a**2
        var_b = blur(b * b) - mu_b**2
        cov = blur(a * b) - mu_a * mu_b
        ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
        values.append(float(ssim_map.mean()))
    return float(np.mean(values))


def _batched(t: torch.Tensor) -> torch.Tensor:
    return t.unsqueeze(0) if t.dim() == 3 else t
