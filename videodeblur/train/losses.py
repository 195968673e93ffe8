"""Training losses."""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["deblur_loss"]


def deblur_loss(output: torch.Tensor, target: torch.Tensor, *, frequency_weight: float = 0.0) -> torch.Tensor:
    """L1 in pixels, plus ``frequency_weight`` × L1 between the 2-D spectra (as MIMO-UNet's FFT loss):
    pixel L1 under-weights the high frequencies that blur removes."""
    loss = F.l1_loss(output, target)
    if frequency_weight > 0:
        spec_out = torch.view_as_real(torch.fft.rfft2(output.float()))
        spec_target = torch.view_as_real(torch.fft.rfft2(target.float()))
        loss = loss + frequency_weight * F.l1_loss(spec_out, spec_target)
    return loss
