"""How a training run draws its synthesised pairs (a recipe's ``[data.mix]``), apart from the data that
draws them: reading a recipe needs it, and ``train`` says a recipe's mistakes before torch loads (2-4 s)."""
from __future__ import annotations

import dataclasses

from videodeblur.errors import ConfigError

__all__ = ["SynthesisMix"]


@dataclasses.dataclass(frozen=True)
class SynthesisMix:
    """How often each kind of pair is drawn, and the blur/noise ranges (probabilities sum to <= 1;
    the rest is camera shake). ``p_warp``: a still seen by a moving camera (:func:`render_motion_blur`),
    with an object moving on its own in ``p_object`` of them, the still first shrunk by a factor
    drawn from ``warp_scale`` (scale variety). ``p_defocus``: the share of sharp-pair and moving-camera
    stills first put out of focus (a disk of radius in ``defocus_radius`` px, in linear light), in
    target and input alike, so the network learns to remove motion smear and leave defocus alone.
    ``p_still_camera``: the share of moving-object pairs shot from a still camera (a tripod, a
    surveillance view), so the background is sharp in input and target alike and only the object
    moves: the network learns to deblur what moves and leave the rest untouched. ``p_noise``,
    ``p_jpeg`` and ``p_h264`` degrade the blurred input only (sensor noise, JPEG, one H.264 frame at a
    CRF drawn from ``h264_crf``), as a camera and its codec do. ``p_recolour``: the share of pairs whose
    colour channels are reordered and whose saturation is raised by a factor drawn from
    ``recolour_saturation``, input and target alike: footage and photos hold few saturated colours,
    and a network that never saw flat magenta changed it by 60 levels."""

    crop: int = 128
    p_average: float = 0.5
    p_warp: float = 0.0
    warp_max_shift: float = 16.0
    p_object: float = 0.5
    p_still_camera: float = 0.0
    warp_scale: tuple[float, float] = (0.5, 1.0)
    p_defocus: float = 0.0
    defocus_radius: tuple[float, float] = (1.0, 8.0)
    p_sharp: float = 0.1
    exposures: tuple[int, ...] = (9, 13, 17)
    upsample: int = 8
    average_stride: int = 1
    crop_candidates: int = 1
    kernel_sizes: tuple[int, ...] = (9, 13, 17, 21, 25)
    p_noise: float = 0.5
    p_jpeg: float = 0.3
    jpeg_quality: tuple[int, int] = (60, 95)
    p_h264: float = 0.0  # off by default: a recipe that sets it draws one more random number per pair
    h264_crf: tuple[int, int] = (18, 33)
    p_recolour: float = 0.0  # off by default, as p_h264
    recolour_saturation: tuple[float, float] = (1.0, 3.0)

    def __post_init__(self) -> None:
        chances = (self.p_average, self.p_warp, self.p_sharp, self.p_object, self.p_still_camera, self.p_defocus,
                   self.p_noise, self.p_jpeg, self.p_h264, self.p_recolour)
        if min(chances) < 0 or max(chances) > 1 or self.p_average + self.p_warp + self.p_sharp > 1 + 1e-9:
            raise ConfigError(f"mix probabilities must be in [0, 1] and p_average + p_warp + p_sharp <= 1, got "
                              f"{self.p_average}, {self.p_warp}, {self.p_sharp}")
