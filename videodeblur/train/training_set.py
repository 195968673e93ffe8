"""The training set a recipe's ``[data]`` describes: pairs synthesised from its videos and images and
its real folder pairs, interleaved in equal shares, checked before training for frames too small for
the crop (a random step would otherwise fail later, with a size the user never set)."""
from __future__ import annotations

from torch.utils.data import Dataset

from videodeblur.errors import UnreadableInputError
from videodeblur.notices import Warn
from videodeblur.train.data import (FolderPairs, SynthesisedPairs, SynthesisMix, read_images, read_video_scenes,
                                    shake_margin, warp_margin)
from videodeblur.train.recipe import DataSpec

__all__ = ["build_dataset"]


def build_dataset(spec: DataSpec, *, seed: int = 0, warn: Warn | None = None) -> Dataset:
    """Synthesised pairs from the videos/images, plus real folder pairs (cropped) if any are given.
    ``warn``: told when the recipe's share of averaged (GoPro-style) pairs has nothing to come from."""
    parts: list[Dataset] = []
    if spec.videos or spec.images:
        scenes = [s for v in spec.videos
                  for s in read_video_scenes(v.path, v.cuts, exclude=v.exclude, max_frames=v.max_frames,
                                             step=v.step)]
        images = read_images(spec.images, exclude=spec.exclude_images)
        _check_crop(spec.mix, [image.shape[:2] for image in images] + [s.frames.shape[1:3] for s in scenes])
        synthesised = SynthesisedPairs(scenes, images, spec.mix, seed=seed, cache_dir=spec.cache_dir)
        if spec.mix.p_average > 0 and not synthesised.averaged and warn is not None:
            # its share went to sharp-in/sharp-out pairs without a word (169 of 200 where 20 % were meant)
            warn(f"data.mix.p_average {spec.mix.p_average:g}: no averaged (GoPro-style) pairs, as no video scene "
                 "has 3 frames or more; that share goes to the other kinds of pairs, in their proportions")
        parts.append(synthesised)
    for root in spec.pairs:
        real = FolderPairs(root, crop=spec.mix.crop, seed=seed, mix=spec.mix)
        parts.append(_Repeated(real, 1 << 30))
    return parts[0] if len(parts) == 1 else _Interleaved(parts)


def _check_crop(mix: SynthesisMix, sizes: list[tuple[int, int]]) -> None:
    """Fail before training, naming ``data.mix.crop``, when the smallest image or video frame (``sizes``:
    height, width) cannot hold the area a pair is cut from: the crop, plus a margin for the blur in
    shaken and moving-camera pairs (``shake_margin``, ``warp_margin``, as the pairs are cut). Otherwise a
    random step fails later with a size the user never set."""
    if not sizes:
        return
    needs = [(0, "")]
    if mix.p_average + mix.p_warp + mix.p_sharp < 1 - 1e-9:  # the rest is camera shake
        kernel = max(mix.kernel_sizes)
        needs.append((shake_margin(kernel), f"camera-shake kernels up to {kernel} px"))
    if mix.p_warp > 0:
        needs.append((warp_margin(mix, max(mix.exposures)), "moving-camera pairs"))
    margin, why = max(needs)
    height, width = min(sizes, key=min)
    side = mix.crop + 2 * margin
    if min(height, width) < side:
        reason = f" (the crop plus {margin} px each side for {why})" if margin else ""
        raise UnreadableInputError(
            f"data.mix.crop {mix.crop} needs training images and video frames of at least {side}x{side} px"
            f"{reason}, but the smallest is {width}x{height}: lower data.mix.crop or use larger images")


class _Repeated(Dataset):
    def __init__(self, base: Dataset, length: int) -> None:
        self.base, self.length = base, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):  # noqa: ANN204
        return self.base[index]


class _Interleaved(Dataset):
    """Item ``i`` comes from source ``i % len(sources)``: equal shares of synthetic and real pairs."""

    def __init__(self, sources: list[Dataset]) -> None:
        self.sources = sources

    def __len__(self) -> int:
        return 1 << 30

    def __getitem__(self, index: int):  # noqa: ANN204
        return self.sources[index % len(self.sources)][index // len(self.sources)]
