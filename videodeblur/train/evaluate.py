"""Evaluation on (blurred, sharp) folder pairs: PSNR/SSIM of the output, of the blurred input, the gain,
and how much a sharp frame changes when it goes through the network (it should not)."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np
import torch

from videodeblur.errors import ConfigError
from videodeblur.images import Image
from videodeblur.train.data import (blurred_pngs, check_pair_sizes, find_folder_pairs, read_pair_images, read_rgb,
                                    read_video_scenes, uint8_to_tensor, unit_rgb, write_rgb)
from videodeblur.train.metrics import SSIM_WINDOW, psnr, ssim
from videodeblur.train.synthesis import gopro_blurs, h264_roundtrip, to_uint8

__all__ = ["PairScore", "EvalReport", "evaluate_pairs", "check_pairs", "check_limit", "unpaired_blurred",
           "combined_summary", "write_averaged_pairs", "write_compressed_pairs", "PSNR_CAP_DB"]

# An identical pair has infinite PSNR: every PSNR reported (each pair's and the means) counts it as
# this many dB, so the JSON stays finite and a pair's gain is its own psnr - psnr_input.
PSNR_CAP_DB = 100.0
_PSNR_FIELDS = ("psnr", "psnr_input", "psnr_sharp_through")


@dataclasses.dataclass(frozen=True)
class PairScore:
    """One pair's scores; a PSNR is at most ``PSNR_CAP_DB`` (an identical pair's)."""

    name: str
    psnr: float
    ssim: float
    psnr_input: float
    ssim_input: float
    psnr_sharp_through: float


@dataclasses.dataclass(frozen=True)
class EvalReport:
    """Scores of the evaluated pairs; ``unpaired``: blurred frames (relative names) left out because
    they have no sharp partner, for the caller to report; ``unpaired_sharp``: sharp frames without a
    blurred one."""

    scores: tuple[PairScore, ...]
    unpaired: tuple[str, ...] = ()
    unpaired_sharp: tuple[str, ...] = ()  # sharp frames without a blurred partner, likewise

    def mean(self, field: str) -> float:
        """Mean over pairs; an identical pair (infinite PSNR) counts as ``PSNR_CAP_DB``, as it does per pair."""
        return float(np.mean([_capped(getattr(s, field)) for s in self.scores]))

    def per_pair(self) -> list[dict[str, Any]]:
        """Every pair's figures (unrounded, PSNR capped as in the means) and its own gain over the
        blurred input, for ``--per-pair --json``."""
        rows = []
        for score in self.scores:
            row = {**vars(score), **{f: _capped(getattr(score, f)) for f in _PSNR_FIELDS}}
            rows.append({**row, "gain_db": row["psnr"] - row["psnr_input"]})
        return rows

    def by_scene(self) -> dict[str, "EvalReport"]:
        """The pairs grouped by scene (the folder that holds a pair's ``blur/``, as the pairs root
        names it: ``bikes_e9``, or ``test/bikes_e9`` in the GoPro dataset's own layout, which the
        first folder alone lumped into one scene "test"; "." for ``blur/`` right under the root), in
        order of appearance: a mean over pairs hides a model that gains on one kind of scene and loses
        on another."""
        scenes: dict[str, list[PairScore]] = {}
        for score in self.scores:
            scenes.setdefault(Path(score.name).parent.parent.as_posix(), []).append(score)
        return {name: EvalReport(tuple(scores)) for name, scores in scenes.items()}

    def summary(self, model: str) -> dict[str, Any]:
        """The ``--json`` object: means over pairs, and the gain over the blurred input in dB, overall
        and per scene."""
        return {"model": model, **self._means(),
                "scenes": {name: report._means() for name, report in self.by_scene().items()}}

    def means(self) -> dict[str, Any]:
        """The summary's figures unrounded, for text that rounds once (as a pair's own line does)."""
        return {
            "pairs": len(self.scores),
            **{f: self.mean(f) for f in ("psnr", "ssim", "psnr_input", "ssim_input", "psnr_sharp_through")},
            "gain_db": self.mean("psnr") - self.mean("psnr_input"),
        }

    def _means(self) -> dict[str, Any]:
        means = self.means()
        return {
            "pairs": means["pairs"],
            "psnr": round(means["psnr"], 3), "ssim": round(means["ssim"], 4),
            "psnr_input": round(means["psnr_input"], 3), "ssim_input": round(means["ssim_input"], 4),
            "gain_db": round(means["gain_db"], 3),
            "psnr_sharp_through": round(means["psnr_sharp_through"], 3),
        }


@torch.inference_mode()
def evaluate_pairs(network: torch.nn.Module, root: str | Path, *, device: torch.device | str = "cpu",
                   limit: int | None = None) -> EvalReport:
    """Run ``network`` (fp32) on every pair under ``root`` (GoPro layout), or the first ``limit``
    (>= 1), and on every sharp frame; blurred frames without a sharp partner are listed in the report."""
    root = Path(root)
    check_limit(limit)
    pairs = check_pairs(root, limit=limit)  # (a file or nothing at root: paths.check_pairs_folder's error)
    was_training = network.training
    network.eval()
    scores = []
    for blur_path, sharp_path in pairs:
        blurred_image, sharp_image = read_pair_images(blur_path, sharp_path)
        blurred, output = _scored_output(network, blurred_image, device)
        sharp, through = _scored_output(network, sharp_image, device)
        # on the files' own precision: 16 bits where either image has them, as the output would be written
        levels = 65535 if blurred_image.deep is not None or sharp_image.deep is not None else 255
        scores.append(PairScore(
            name=str(blur_path.relative_to(root)),
            psnr=_capped(float(psnr(output, sharp, levels=levels))), ssim=float(ssim(output, sharp, levels=levels)),
            psnr_input=_capped(float(psnr(blurred, sharp, levels=levels))),
            ssim_input=float(ssim(blurred, sharp, levels=levels)),
            psnr_sharp_through=_capped(float(psnr(through, sharp, levels=levels))),
        ))
    network.train(was_training)
    return EvalReport(tuple(scores), *(tuple(str(p.relative_to(root)) for p in unpaired_blurred(root, side=side))
                                       for side in ("blur", "sharp")))


def _scored_output(network: torch.nn.Module, image: Image,
                   device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
    """An image at its own precision and what ``videodeblur image`` writes for it, both 1×3×H×W in
    [0, 1]. The network is given 8-bit RGB, as that command gives it, and its output is rounded to 8
    bits; a grey image's is written back as luma (its colour is never seen), and a 16-bit image's as
    its own samples moved by the network's 8-bit change (:mod:`videodeblur.deep`), so a 16-bit pair is
    scored on its 16 bits, not on the high byte (a constant offset of 100 in 16-bit units scored
    55.3 dB where 56.3 is exact). Scored on the network's colour output instead, a grey pair lost
    0.01 dB to colour the file never holds. For an 8-bit colour image this is the network's output,
    rounded to 8 bits."""
    given = uint8_to_tensor(image.rgb).unsqueeze(0).to(device)
    output = network(given).clamp(0, 1).mul(255).round()
    if image.deep is None and not image.grey:  # (rounded here: a pair's other image may be 16-bit, scored on 16 bits)
        return given, output / 255
    written = output[0].to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    if image.grey:
        written = cv2.cvtColor(cv2.cvtColor(written, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)  # as write_image
    exact = unit_rgb(image)
    if image.deep is not None:  # deep.add_change: whole 8-bit steps (257 / 65535 = 1 / 255) on the 16-bit samples
        written = np.clip(exact + (written.astype(np.float32) - image.rgb) / 255.0, 0.0, 1.0)
    else:
        written = written.astype(np.float32) / 255.0
    return _batch_of_one(exact, device), _batch_of_one(written, device)


def _batch_of_one(rgb: np.ndarray, device: torch.device | str) -> torch.Tensor:
    """float H×W×3 → 1×3×H×W on ``device``."""
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).unsqueeze(0).to(device)


def check_pairs(root: str | Path, *, limit: int | None = None) -> list[tuple[Path, Path]]:
    """The pairs :func:`evaluate_pairs` scores (the first ``limit``), each checked before any is: the
    same size blurred and sharp, and at least SSIM's window on each side (a smaller pair has no SSIM,
    and its NaN is not JSON). A training run checks its validation and evaluation sets with it at
    the start, not after the last step."""
    pairs = find_folder_pairs(root)[:limit]
    check_pair_sizes(pairs, min_side=SSIM_WINDOW, needed_by="SSIM's window")
    return pairs


def _capped(db: float) -> float:
    """A PSNR with infinity (an identical pair's) as ``PSNR_CAP_DB``."""
    return min(db, PSNR_CAP_DB)


def check_limit(limit: int | None) -> None:
    """Refuse a ``limit`` that is not a count of pairs (0 would score nothing, -1 slice off the last)."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"limit must be a whole number of pairs >= 1, got {limit!r}")


def unpaired_blurred(root: str | Path, *, side: str = "blur") -> list[Path]:
    """Blurred frames under ``root`` (``<scene>/blur/*.png``, any case, as :func:`find_folder_pairs`
    reads them) with no sharp frame of the same name beside them: they are left out, and a user should
    hear about it. ``side="sharp"``: the sharp frames with no blurred partner (blurred frames that a
    conversion or a copy lost went unsaid: the pairs scored were fewer, without a word)."""
    other = "sharp" if side == "blur" else "blur"
    return [path for path in blurred_pngs(root, side=side) if not (path.parent.parent / other / path.name).is_file()]


def combined_summary(summaries: Sequence[dict[str, Any]], names: Sequence[str]) -> dict[str, Any]:
    """One score for several pair sets: the mean of their PSNR, gain and sharp-through, each set
    weighing the same whatever its size (a clean set and its H.264 copy count equally), and every
    set's own summary under ``"sets"``. A single set's summary comes back as it is."""
    if len(summaries) == 1:
        return summaries[0]
    if not summaries or len(summaries) != len(names):
        raise ValueError(f"need one name per summary (got {len(summaries)} summaries, {len(names)} names)")
    fields = ("psnr", "ssim", "psnr_input", "ssim_input", "gain_db", "psnr_sharp_through")
    means = {f: round(float(np.mean([s[f] for s in summaries])), 4 if "ssim" in f else 3) for f in fields}
    return {"model": summaries[0]["model"], "pairs": sum(s["pairs"] for s in summaries), **means,
            "sets": {str(name): summary for name, summary in zip(names, summaries)}}


def write_compressed_pairs(source: str | Path, out_root: str | Path, *, crf: int = 23) -> int:
    """Copy a pair set with every blurred frame put through H.264 at ``crf`` (libx264, 4:2:0; 23 is
    its default) and the sharp targets untouched: the product's input is compressed video, and a
    network trained on clean pairs may not deblur it. Returns the number of pairs written."""
    source, out_root = Path(source), Path(out_root)
    count = 0
    for blur_path, sharp_path in find_folder_pairs(source):
        relative = blur_path.relative_to(source)
        write_rgb(out_root / relative, to_uint8(h264_roundtrip(read_rgb(blur_path) / 255.0, crf)))
        write_rgb(out_root / sharp_path.relative_to(source), read_rgb(sharp_path))
        count += 1
    return count


def write_averaged_pairs(video: str | Path, out_root: str | Path, *, first: int, stop: int,
                         exposures: Sequence[int] = (9, 13), upsample: int = 8, stride: int = 1,
                         scene: str | None = None) -> int:
    """Make GoPro-style pairs from frames [first, stop) of ``video`` (one shot, no cut inside): each
    blurred image averages ``exposure`` frames of the video raised to ``upsample`` × its frame rate
    (:func:`videodeblur.train.synthesis.gopro_blur`), its sharp target is the real middle frame.
    Written as ``<scene>_e<exposure>/{blur,sharp}/<frame>.png``; returns the number of pairs."""
    clips = read_video_scenes(video, exclude=[(0, first), (stop, 1 << 30)])
    if not clips:
        raise ValueError(f"no frames in [{first}, {stop}) of {video}")
    frames = clips[0].frames
    scene = scene or Path(video).stem
    count = 0
    for t in range(1, len(frames) - 1, stride):
        name = f"{first + t:06d}.png"
        blurs = gopro_blurs(frames[t - 1], frames[t], frames[t + 1], exposures=tuple(exposures), upsample=upsample)
        for exposure, blurred in zip(exposures, blurs):
            folder = Path(out_root) / f"{scene}_e{exposure}"
            write_rgb(folder / "blur" / name, to_uint8(blurred))
            write_rgb(folder / "sharp" / name, frames[t])
            count += 1
    return count

