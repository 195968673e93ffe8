"""Training losses."""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["PIXEL_LOSSES", "deblur_loss"]

PIXEL_LOSSES = ("l1", "mse")


def deblur_loss(output: torch.Tensor, target: torch.Tensor, *, pixel: str = "l1",
                frequency_weight: float = 0.0) -> torch.Tensor:
    """``pixel`` loss (L1 or MSE), plus ``frequency_weight`` × L1 between the 2-D spectra (as
    MIMO-UNet's FFT loss): pixel L1 under-weights the high frequencies that blur removes.

    MSE is there because a network that starts as the identity sits on a plateau under L1: its
    gradient is the sign of the error, which is noise where the residual is small, while the MSE
    gradient is the residual itself (measured in docs/MODEL.md, "Loss")."""
    if pixel == "l1":
        loss = F.l1_loss(output, target)
    elif pixel == "mse":
        loss = F.mse_loss(output, target)
    else:
        raise ValueError(f"pixel loss must be one of {PIXEL_LOSSES}, got {pixel!r}")
    if frequency_weight > 0:
        spec_out = torch.view_as_real(torch.fft.rfft2(output.float()))
        spec_target = torch.view_as_real(torch.fft.rfft2(target.float()))
        loss = loss + frequency_weight * F.l1_loss(spec_out, spec_target)
    return loss
