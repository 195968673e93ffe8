"""Training losses."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from videodeblur.train.recipe import PIXEL_LOSSES  # the recipe checks them before torch loads

__all__ = ["PIXEL_LOSSES", "deblur_loss"]


def deblur_loss(output: torch.Tensor, target: torch.Tensor, *, pixel: str = "l1",
                frequency_weight: float = 0.0, blurred: torch.Tensor | None = None,
                static_weight: float = 0.0, static_threshold: float = 2 / 255) -> torch.Tensor:
    """``pixel`` loss (L1 or MSE), plus ``frequency_weight`` × L1 between the 2-D spectra (as
    MIMO-UNet's FFT loss): pixel L1 under-weights the high frequencies that blur removes.

    MSE is there because a network that starts as the identity sits on a plateau under L1: its
    gradient is the sign of the error, which is noise where the residual is small, while the MSE
    gradient is the residual itself (measured in docs/MODEL.md, "Loss").

    ``static_weight`` > 0 (needs ``blurred``) counts the pixels a pair leaves unchanged (every channel
    of target and blurred input within ``static_threshold``) 1 + ``static_weight`` times, normalised so
    the loss keeps its scale: the networks trained here lose most on held-out content that does not
    move, which they "sharpen" anyway (docs/MODEL.md, "What the evaluation set measures")."""
    if pixel == "l1":
        error = (output - target).abs()
    elif pixel == "mse":
        error = (output - target).square()
    else:
        raise ValueError(f"pixel loss must be one of {PIXEL_LOSSES}, got {pixel!r}")
    if static_weight > 0:
        if blurred is None:
            raise ValueError("static_weight needs the blurred input")
        static = ((target - blurred).abs().amax(dim=1, keepdim=True) < static_threshold).to(error.dtype)
        weight = 1 + static_weight * static
        loss = (error * weight).mean() / weight.mean()
    else:
        loss = error.mean()
    if frequency_weight > 0:
        # Orthonormal FFT: a residual's spectrum has the residual's scale (Parseval), so one weight
        # means the same at every crop size.
        spec_out = torch.view_as_real(torch.fft.rfft2(output.float(), norm="ortho"))
        spec_target = torch.view_as_real(torch.fft.rfft2(target.float(), norm="ortho"))
        loss = loss + frequency_weight * F.l1_loss(spec_out, spec_target)
    return loss
