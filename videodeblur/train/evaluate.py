"""Evaluation on (blurred, sharp) folder pairs: PSNR/SSIM of the output, of the blurred input, the gain,
and how much a sharp frame changes when it goes through the network (it should not)."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from videodeblur.train.data import find_folder_pairs, read_rgb, read_video_scenes, write_rgb
from videodeblur.train.metrics import psnr, ssim
from videodeblur.train.synthesis import average_frames

__all__ = ["PairScore", "EvalReport", "evaluate_pairs", "write_averaged_pairs"]


@dataclasses.dataclass(frozen=True)
class PairScore:
    name: str
    psnr: float
    ssim: float
    psnr_input: float
    ssim_input: float
    psnr_sharp_through: float


@dataclasses.dataclass(frozen=True)
class EvalReport:
    scores: tuple[PairScore, ...]

    def mean(self, field: str) -> float:
        """Mean over pairs; an identical pair (infinite PSNR) counts as 100 dB so the mean stays finite JSON."""
        return float(np.mean([min(getattr(s, field), 100.0) for s in self.scores]))

    def summary(self, model: str) -> dict[str, Any]:
        """The ``--json`` object: means over pairs, and the gain over the blurred input in dB."""
        return {
            "model": model, "pairs": len(self.scores),
            "psnr": round(self.mean("psnr"), 3), "ssim": round(self.mean("ssim"), 4),
            "psnr_input": round(self.mean("psnr_input"), 3), "ssim_input": round(self.mean("ssim_input"), 4),
            "gain_db": round(self.mean("psnr") - self.mean("psnr_input"), 3),
            "psnr_sharp_through": round(self.mean("psnr_sharp_through"), 3),
        }


@torch.inference_mode()
def evaluate_pairs(network: torch.nn.Module, root: str | Path, *, device: torch.device | str = "cpu",
                   limit: int | None = None) -> EvalReport:
    """Run ``network`` (fp32) on every pair under ``root`` (GoPro layout) and on every sharp frame."""
    was_training = network.training
    network.eval()
    scores = []
    for blur_path, sharp_path in find_folder_pairs(root)[:limit]:
        blurred = _to_tensor(read_rgb(blur_path)).to(device)
        sharp = _to_tensor(read_rgb(sharp_path)).to(device)
        output = network(blurred).clamp(0, 1)
        through = network(sharp).clamp(0, 1)
        scores.append(PairScore(
            name=str(blur_path.relative_to(root)),
            psnr=float(psnr(output, sharp)), ssim=float(ssim(output, sharp)),
            psnr_input=float(psnr(blurred, sharp)), ssim_input=float(ssim(blurred, sharp)),
            psnr_sharp_through=float(psnr(through, sharp)),
        ))
    network.train(was_training)
    return EvalReport(tuple(scores))


def write_averaged_pairs(video: str | Path, out_root: str | Path, *, first: int, stop: int,
                         average: Sequence[int] = (5,), stride: int = 1, scene: str | None = None) -> int:
    """Make GoPro-style pairs from frames [first, stop) of ``video``: each blurred image is the
    linear-light mean of ``n`` consecutive frames, its sharp target the middle one. Returns the count."""
    (clip,) = read_video_scenes(video, exclude=[(0, first), (stop, 1 << 30)])[:1] or (None,)
    if clip is None:
        raise ValueError(f"no frames in [{first}, {stop}) of {video}")
    frames = clip.frames
    scene = scene or Path(video).stem
    count = 0
    for n in average:
        half = n // 2
        for centre in range(half, len(frames) - half, stride):
            window = frames[centre - half:centre + half + 1].astype(np.float32) / 255.0
            blurred = np.clip(np.rint(average_frames(window) * 255.0), 0, 255).astype(np.uint8)
            name = f"{first + centre:06d}.png"
            write_rgb(Path(out_root) / f"{scene}_avg{n}" / "blur" / name, blurred)
            write_rgb(Path(out_root) / f"{scene}_avg{n}" / "sharp" / name, frames[centre])
            count += 1
    return count


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().unsqueeze(0) / 255.0
