"""Training and evaluation data: real footage and photos turned into (blurred, sharp) pairs.

Two sources of pairs:
- ``SynthesisedPairs``: blur made from sharp video scenes and photos (GoPro-style averaging of
  flow-interpolated frames, rendered once; stills seen by a moving camera, camera-shake kernels,
  noise, JPEG and crops on the fly;
  and some sharp-in/sharp-out pairs). Every item is a
  pure function of ``(seed, index)``, so a resumed or distributed run draws exactly the same data.
- ``FolderPairs``: real pairs in the GoPro layout, ``<scene>/blur/*.png`` beside ``<scene>/sharp/*.png``.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import glob
import hashlib
import os
import zipfile
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from videodeblur.errors import InputNotFoundError, UnreadableInputError
from videodeblur.images import Image, read_image
from videodeblur.paths import check_pairs_folder
from videodeblur.train.mix import SynthesisMix  # here too: its readers import it from the data
from videodeblur.train.synthesis import (add_sensor_noise, apply_kernel, defocus_kernel, gopro_blurs, h264_roundtrip,
                                         jpeg_roundtrip, Motion, moving_object, random_motion, recolour,
                                         render_motion_blur, shake_kernel, to_uint8)

OBJECT_MAX_SHIFT = 24.0  # px per frame interval for objects moving on their own in moving-camera pairs

__all__ = ["Scene", "SynthesisMix", "SynthesisedPairs", "FolderPairs", "StepSampler", "read_video_scenes",
           "read_images", "read_rgb", "read_pair", "read_pair_images", "unit_rgb", "write_rgb", "find_folder_pairs", "check_pair_sizes", "image_size",
           "render_gopro_pairs", "uint8_to_tensor", "shake_margin", "warp_margin"]


@dataclasses.dataclass(frozen=True)
class Scene:
    """Consecutive frames of one shot (no cut inside), uint8 N×H×W×3 RGB."""

    source: str
    first_frame: int
    frames: np.ndarray


def warp_margin(mix: SynthesisMix, exposure: int) -> int:
    """Pixels around a moving-camera pair's crop that its largest displacement can reach, for an
    exposure of ``exposure`` virtual frames: the area is rendered that much larger and cropped back."""
    reach = (exposure // 2) / mix.upsample  # frame intervals from the centre to either end
    return int(np.ceil(reach * max(mix.warp_max_shift, OBJECT_MAX_SHIFT))) + 8


def shake_margin(kernel_size: int) -> int:
    """Pixels around a camera-shake pair's crop that a ``kernel_size`` kernel reads."""
    return kernel_size // 2


class SynthesisedPairs(Dataset):
    """(blurred, sharp) float tensors 3×crop×crop in [0, 1], synthesised deterministically from ``seed + index``."""

    def __init__(self, scenes: Sequence[Scene], images: Sequence[np.ndarray], mix: SynthesisMix, *,
                 seed: int = 0, length: int = 1 << 30, cache_dir: str | Path | None = None) -> None:
        if not scenes and not images:
            raise UnreadableInputError("no training data: give at least one video scene or image")
        self.averaged = render_gopro_pairs(scenes, mix.exposures, upsample=mix.upsample, stride=mix.average_stride,
                                           cache_dir=cache_dir)
        self.stills = list(images) + [f for s in scenes for f in s.frames[:: max(1, len(s.frames) // 8)]]
        self.mix = mix
        self.seed = seed
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, index])
        mix = self.mix
        draw = rng.random()
        if not self.averaged:  # no scene to average (images only): the other kinds, in their shares
            draw = mix.p_average + draw * (1.0 - mix.p_average)
        if draw < mix.p_average:
            blurred, sharp = self._averaged(rng)
        elif mix.p_average <= draw < mix.p_average + mix.p_warp:
            blurred, sharp = self._warped(rng)
        elif draw < mix.p_average + mix.p_warp + mix.p_sharp:
            sharp = self._defocus(rng, self._crop(rng, self.stills[rng.integers(len(self.stills))], mix.crop))
            return finished_pair(rng, mix, sharp, sharp)
        else:
            blurred, sharp = self._shaken(rng)
        return finished_pair(rng, mix, degraded_input(rng, mix, blurred), sharp)

    def _averaged(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """A crop of a rendered pair; of ``crop_candidates`` random crops the one with the most blur
        (mean |blurred - sharp|) is kept: most of a frame is static or flat, and those crops teach
        only the identity."""
        blurred, sharp = self.averaged[rng.integers(len(self.averaged))]
        crop = self.mix.crop
        best, best_score = None, -1.0
        for _ in range(self.mix.crop_candidates):
            y, x = self._crop_origin(rng, sharp.shape[:2], crop)
            window = (slice(y, y + crop), slice(x, x + crop))
            score = float(np.abs(blurred[window].astype(np.int16) - sharp[window]).mean())
            if score > best_score:
                best, best_score = window, score
        return blurred[best].astype(np.float32) / 255.0, sharp[best].astype(np.float32) / 255.0

    def _warped(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """A still seen by a moving camera, maybe with a moving object, rendered with a margin that
        covers the largest displacement and cropped back to ``crop``."""
        mix = self.mix
        exposure = int(rng.choice(mix.exposures))
        margin = warp_margin(mix, exposure)
        side = mix.crop + 2 * margin
        still = self.stills[rng.integers(len(self.stills))]
        shortest = min(still.shape[:2])
        if shortest < side:
            raise UnreadableInputError(f"training image {still.shape[1]}x{still.shape[0]} is smaller than {side}")
        scale = float(rng.uniform(max(mix.warp_scale[0], side / shortest), max(mix.warp_scale[1], side / shortest)))
        region = self._crop(rng, still, min(shortest, int(np.ceil(side / scale))))
        region = self._defocus(rng, cv2.resize(region, (side, side), interpolation=cv2.INTER_AREA))
        obj, origin = None, (0, 0)
        if rng.random() < mix.p_object:
            size = int(rng.integers(mix.crop // 4, mix.crop // 2 + 1))
            texture = self.stills[rng.integers(len(self.stills))].astype(np.float32) / 255.0
            obj = moving_object(rng, texture, size, max_shift=OBJECT_MAX_SHIFT)
            origin = (int(rng.integers(margin // 2, side - size - margin // 2 + 1)),
                      int(rng.integers(margin // 2, side - size - margin // 2 + 1)))
        camera = random_motion(rng, max_shift=mix.warp_max_shift)
        # no draw when p_still_camera is 0, so recipes without it draw the same data as before
        if obj is not None and mix.p_still_camera > 0 and rng.random() < mix.p_still_camera:
            camera = Motion()
        blurred, sharp = render_motion_blur(region, camera, exposure=exposure, upsample=mix.upsample,
                                            obj=obj, obj_origin=origin)
        inner = (slice(margin, margin + mix.crop), slice(margin, margin + mix.crop))
        return blurred[inner], sharp[inner]

    def _shaken(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        size = int(rng.choice(self.mix.kernel_sizes))
        margin = shake_margin(size)
        big = self._crop(rng, self.stills[rng.integers(len(self.stills))], self.mix.crop + 2 * margin)
        blurred = apply_kernel(big, shake_kernel(rng, size))
        inner = (slice(margin, margin + self.mix.crop), slice(margin, margin + self.mix.crop))
        return blurred[inner], big[inner]

    @staticmethod
    def _crop_origin(rng: np.random.Generator, hw: tuple[int, int], crop: int) -> tuple[int, int]:
        h, w = hw
        if h < crop or w < crop:
            raise UnreadableInputError(f"training image {w}x{h} is smaller than the crop {crop}")
        return int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))

    def _defocus(self, rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
        """``image`` out of focus in ``p_defocus`` of the calls (no draw when it is 0, so recipes
        without it draw the same data as before)."""
        if self.mix.p_defocus <= 0 or rng.random() >= self.mix.p_defocus:
            return image
        return apply_kernel(image, defocus_kernel(float(rng.uniform(*self.mix.defocus_radius))))

    def _crop(self, rng: np.random.Generator, image: np.ndarray, crop: int) -> np.ndarray:
        y, x = self._crop_origin(rng, image.shape[:2], crop)
        return image[y:y + crop, x:x + crop].astype(np.float32) / 255.0


def degraded_input(rng: np.random.Generator, mix: SynthesisMix, blurred: np.ndarray) -> np.ndarray:
    """A training input (float H×W×3 in [0, 1]) as the camera and the video it comes in leave it: sensor
    noise, JPEG and H.264 at the mix's rates, in that order."""
    if rng.random() < mix.p_noise:
        blurred = add_sensor_noise(blurred, rng)
    if rng.random() < mix.p_jpeg:
        blurred = jpeg_roundtrip(blurred, int(rng.integers(*mix.jpeg_quality)))
    if mix.p_h264 > 0 and rng.random() < mix.p_h264:  # no draw when off: older recipes keep their pairs
        blurred = h264_roundtrip(blurred, int(rng.integers(*mix.h264_crf)))
    return blurred


def finished_pair(rng: np.random.Generator, mix: SynthesisMix, blurred: np.ndarray, sharp: np.ndarray
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """The pair recoloured (at ``p_recolour``) and flipped alike, as 3×H×W tensors in [0, 1]."""
    if mix.p_recolour > 0 and rng.random() < mix.p_recolour:  # no draw when off
        order = rng.permutation(3)
        saturation = float(rng.uniform(*mix.recolour_saturation))
        blurred, sharp = (recolour(a, order, saturation) for a in (blurred, sharp))
    if rng.random() < 0.5:
        blurred, sharp = blurred[:, ::-1], sharp[:, ::-1]
    if rng.random() < 0.5:
        blurred, sharp = blurred[::-1], sharp[::-1]
    to_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(np.clip(a, 0, 1).transpose(2, 0, 1)))
    return to_tensor(blurred), to_tensor(sharp)


class FolderPairs(Dataset):
    """Real pairs in the GoPro layout; whole images (``crop=None``) or random crops for training. With
    a ``mix`` (training), a crop goes through what synthesised pairs go through, at the mix's rates:
    sharp-in/sharp-out at ``p_sharp`` (the sharp frame as input too), then noise, JPEG and H.264 on the
    input, recolouring and flips; without one a crop is taken as it is."""

    def __init__(self, root: str | Path, *, crop: int | None = None, seed: int = 0,
                 mix: SynthesisMix | None = None) -> None:
        self.pairs = find_folder_pairs(root)
        if crop is not None:  # a bad pair would otherwise stop the run at the step that first draws it
            check_pair_sizes(self.pairs, min_side=crop, needed_by=f"the training crop (data.mix.crop {crop})",
                             fix="lower data.mix.crop or leave the pair out")
        self.crop = crop
        self.seed = seed
        self.mix = mix

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        blur_path, sharp_path = self.pairs[index % len(self.pairs)]
        blurred, sharp = read_pair(blur_path, sharp_path)
        if self.crop is not None:
            rng = np.random.default_rng([self.seed, index])
            y, x = SynthesisedPairs._crop_origin(rng, blurred.shape[:2], self.crop)
            blurred = blurred[y:y + self.crop, x:x + self.crop]
            sharp = sharp[y:y + self.crop, x:x + self.crop]
            if self.mix is not None:
                mix = self.mix
                source = sharp if rng.random() < mix.p_sharp else blurred  # sharp frames pass through
                as_float = [a.astype(np.float32) / 255.0 for a in (source, sharp)]
                return finished_pair(rng, mix, degraded_input(rng, mix, as_float[0]), as_float[1])
        return uint8_to_tensor(blurred), uint8_to_tensor(sharp)


class StepSampler(Sampler[int]):
    """Distributed sampler by step: rank ``r`` of ``world`` takes indices
    ``(step * world + r) * batch + b``, so each rank sees different data and a resumed run continues
    exactly where it stopped (no sampler state to save)."""

    def __init__(self, *, batch: int, start_step: int, total_steps: int, rank: int = 0, world: int = 1) -> None:
        self.batch, self.start_step, self.total_steps = batch, start_step, total_steps
        self.rank, self.world = rank, world

    def __len__(self) -> int:
        return max(0, self.total_steps - self.start_step) * self.batch

    def __iter__(self) -> Iterator[int]:
        for step in range(self.start_step, self.total_steps):
            base = (step * self.world + self.rank) * self.batch
            yield from range(base, base + self.batch)


def render_gopro_pairs(scenes: Sequence[Scene], exposures: Sequence[int], *, upsample: int = 8, stride: int = 1,
                       cache_dir: str | Path | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """(blurred, sharp) uint8 frames made the GoPro way (:func:`gopro_blur`) from every ``stride``-th
    frame of each scene that has a neighbour on both sides, once per exposure. Rendered up front:
    optical flow is too slow to run per training sample; with ``cache_dir`` the result is kept in an
    .npz keyed by the frames themselves (their bytes: a clip replaced under the same name, or the same
    name from another folder, is other data) and the settings, so runs on the same data render once.
    A cache file that cannot be read (cut short, copied half) is rendered and written again."""
    if cache_dir is not None:
        path = Path(cache_dir) / f"gopro-{_pairs_key(scenes, exposures, upsample, stride)}.npz"
        if path.is_file():
            try:
                with np.load(path) as stored:
                    return [(stored[f"b{i}"], stored[f"s{i}"]) for i in range(len(stored.files) // 2)]
            except (OSError, ValueError, KeyError, zipfile.BadZipFile):
                pass  # rendered again below, and the file replaced
        pairs = render_gopro_pairs(scenes, exposures, upsample=upsample, stride=stride)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
        try:
            np.savez(tmp, **{f"{kind}{i}": a for i, pair in enumerate(pairs) for kind, a in zip("bs", pair)})
            tmp.replace(path)  # atomic: a concurrent run never reads half a file
        finally:
            tmp.unlink(missing_ok=True)  # a stop (or a full disk) while writing leaves no part behind
        return pairs
    pairs = []
    for scene in scenes:
        frames = scene.frames
        for t in range(1, len(frames) - 1, stride):
            for blurred in gopro_blurs(frames[t - 1], frames[t], frames[t + 1], exposures=tuple(exposures),
                                       upsample=upsample):
                pairs.append((to_uint8(blurred), frames[t]))
    return pairs


def _pairs_key(scenes: Sequence[Scene], exposures: Sequence[int], upsample: int, stride: int) -> str:
    """What rendered pairs depend on: every scene's frames (a digest of their bytes, in order) and the
    rendering settings."""
    digests = []
    for scene in scenes:
        digest = hashlib.blake2b(repr(scene.frames.shape).encode(), digest_size=16)
        digest.update(np.ascontiguousarray(scene.frames).data)
        digests.append(digest.hexdigest())
    settings = repr((sorted(digests), tuple(exposures), upsample, stride)).encode()
    return hashlib.sha1(settings).hexdigest()[:16]


def find_folder_pairs(root: str | Path) -> list[tuple[Path, Path]]:
    """``(blur, sharp)`` paths matched by file name under ``<scene>/blur`` and ``<scene>/sharp``."""
    root = check_pairs_folder(root)
    pairs = []
    for blur_path in blurred_pngs(root):
        sharp_path = blur_path.parent.parent / "sharp" / blur_path.name
        if sharp_path.is_file():
            pairs.append((blur_path, sharp_path))
    if not pairs:
        raise UnreadableInputError(f"no pairs under {root}: expected <scene>/blur/*.png with <scene>/sharp/*.png"
                                   f"{_why_no_pairs(root)}")
    return pairs


def blurred_pngs(root: str | Path, *, png_only: bool = True, side: str = "blur") -> list[Path]:
    """The blurred frames under ``root``: ``<scene>/blur/*.png`` (any case: a.PNG too; every file with
    ``png_only`` False), in name order; ``side="sharp"``: the sharp ones. Hidden names are left out, as an
    input folder's are: a folder copied from a Mac holds a ``._name.png`` of metadata beside each frame
    (and a zip of one a ``__MACOSX`` folder of them), which stopped the run as "not a readable image"."""
    root = Path(root)
    return [path for blur_dir in sorted(p for p in root.rglob(side) if p.is_dir() and not _hidden(p, root))
            for path in sorted(blur_dir.iterdir())
            if path.is_file() and not path.name.startswith(".") and (not png_only or path.suffix.lower() == ".png")]


def _hidden(folder: Path, root: Path) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in folder.relative_to(root).parts)


def _why_no_pairs(root: Path) -> str:
    """What ``root`` holds instead of pairs, for the error: blurred PNGs whose sharp partners are named
    otherwise, or images of another format, were met with the layout the user already had."""
    blurred = blurred_pngs(root, png_only=False)
    png = [p for p in blurred if p.suffix.lower() == ".png"]
    if png:
        sharp = png[0].parent.parent / "sharp" / png[0].name
        return (f" of the same name; {len(png)} blurred PNG{'s' if len(png) > 1 else ''} found, none with a "
                f"sharp partner (first: {png[0].relative_to(root)}, no {sharp.relative_to(root)})")
    if blurred:
        return f" (only PNG is read); found {blurred[0].relative_to(root)}: convert the pairs to PNG"
    if root.name in ("blur", "sharp") and (root.parent / "blur").is_dir():
        return f"; {root} is one side of the pairs: give the folder above it, {root.parent}"
    return ""


def check_pair_sizes(pairs: Sequence[tuple[Path, Path]], *, min_side: int = 1, needed_by: str = "",
                     fix: str = "leave the pair out") -> None:
    """Fail before any pair is used when an image of ``pairs`` cannot be read, a blurred image and its
    sharp partner differ in size, or a side is under ``min_side`` px (what ``needed_by`` needs, e.g.
    the training crop; ``fix`` says what to do): a training run otherwise stops at the step that first
    draws the pair, hours in, and under torchrun the other ranks fail with a lost connection. Sizes
    come from the PNG header, so a large set is checked in a moment."""
    for blur_path, sharp_path in pairs:
        (bw, bh), (sw, sh) = image_size(blur_path), image_size(sharp_path)
        if (bw, bh) != (sw, sh):
            raise UnreadableInputError(f"pair {blur_path} ({bw}x{bh}) and {sharp_path} ({sw}x{sh}) differ in size")
        if min(bw, bh) < min_side:
            raise UnreadableInputError(f"pair {blur_path} is {bw}x{bh}, smaller than {needed_by} "
                                       f"({min_side}x{min_side} px): {fix}")


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image: from the header of a PNG, by decoding anything else (a JPEG
    named .png, say); an unreadable file is an UnreadableInputError naming it."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(24)
    except OSError as err:
        raise UnreadableInputError(f"cannot read image {path}: {err.strerror or err}") from err
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    height, width = read_rgb(path).shape[:2]
    return width, height


def uint8_to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 H×W×3 → float 3×H×W in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float() / 255.0


def read_rgb(path: str | Path) -> np.ndarray:
    """uint8 H×W×3 RGB (grey images are expanded to three channels), read as ``videodeblur image``
    reads it. A damaged file is an UnreadableInputError naming it, never a partial picture: a pair
    read half grey would train on, or score, the damage."""
    return read_image(path, partial=False).rgb


def read_pair(blur_path: str | Path, sharp_path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """A blurred image and its sharp partner as uint8 RGB (:func:`read_pair_images`)."""
    blurred, sharp = read_pair_images(blur_path, sharp_path)
    return blurred.rgb, sharp.rgb


def read_pair_images(blur_path: str | Path, sharp_path: str | Path) -> tuple[Image, Image]:
    """A blurred image and its sharp partner, which must be the same size and both colour or both grey
    (a mismatch is a data error to name, not a tensor shape error deep inside training or evaluation,
    nor a grey target scored against colour)."""
    blurred, sharp = read_image(blur_path, partial=False), read_image(sharp_path, partial=False)
    if blurred.rgb.shape != sharp.rgb.shape:
        (bh, bw), (sh, sw) = blurred.rgb.shape[:2], sharp.rgb.shape[:2]
        raise UnreadableInputError(f"pair {blur_path} ({bw}x{bh}) and {sharp_path} ({sw}x{sh}) differ in size")
    if blurred.grey != sharp.grey:
        kinds = ("grey", "colour") if blurred.grey else ("colour", "grey")
        raise UnreadableInputError(f"pair {blur_path} ({kinds[0]}) and {sharp_path} ({kinds[1]}) differ: both must "
                                   "be colour or both grey")
    return blurred, sharp


def unit_rgb(image: Image) -> np.ndarray:
    """float32 H×W×3 RGB in [0, 1] at the file's own precision: a 16-bit image's samples (its
    ``deep``, in OpenCV's order), not the high byte the network is given."""
    deep = image.deep
    if deep is None:
        return image.rgb.astype(np.float32) / 255.0
    if deep.ndim == 2 or deep.shape[2] <= 2:  # grey, or grey + alpha
        grey = deep if deep.ndim == 2 else deep[..., 0]
        rgb = np.repeat(grey[..., None], 3, axis=2)
    else:
        rgb = deep[..., 2::-1]  # BGR(A) → RGB
    return rgb.astype(np.float32) / 65535.0


def write_rgb(path: str | Path, image: np.ndarray) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write {path}")


def read_video_scenes(path: str | Path, cuts: Sequence[int] = (), *, exclude: Sequence[tuple[int, int]] = (),
                      max_frames: int | None = None, step: int = 1) -> list[Scene]:
    """Decode a video (PyAV) and split it at ``cuts`` (first frame of each new shot); frames inside any
    ``exclude`` range [first, stop) are dropped, so held-out footage never reaches training."""
    import av  # deferred: training-only dependency path

    from videodeblur.video.inputs import ffmpeg_name

    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"video not found: {path}")
    frames: list[np.ndarray] = []
    try:
        with av.open(ffmpeg_name(path), metadata_errors="replace") as container:
            if container.format.name == "tty":  # FFmpeg opens any text file as a "video" of its characters
                raise UnreadableInputError(f"training video {path} is not a video (FFmpeg reads it as text)")
            if not container.streams.video:
                raise UnreadableInputError(f"training video {path} holds no video stream")
            for i, frame in enumerate(container.decode(video=0)):
                if max_frames is not None and i >= max_frames:
                    break
                frames.append(frame.to_ndarray(format="rgb24"))
    except av.FFmpegError as err:
        raise UnreadableInputError(f"cannot read training video {path}: {err.strerror or err}") from err
    bounds = [0, *sorted(c for c in cuts if 0 < c < len(frames)), len(frames)]
    scenes = []
    for first, stop in zip(bounds[:-1], bounds[1:]):
        keep = [i for i in range(first, stop, step) if not any(a <= i < b for a, b in exclude)]
        # split again where excluded frames leave a gap
        run: list[int] = []
        for i in keep + [None]:  # type: ignore[list-item]
            if i is not None and (not run or i == run[-1] + step):
                run.append(i)
                continue
            if run:
                scenes.append(Scene(str(path), run[0], np.stack([frames[j] for j in run])))
            run = [i] if i is not None else []
    return scenes


def read_images(patterns: Sequence[str], *, exclude: Sequence[str] = ()) -> list[np.ndarray]:
    """Every image matching the glob patterns and none of the ``exclude`` name patterns, as uint8 RGB
    (exclude photos that are blurred themselves: they are not sharp targets). A pattern that matches
    no file is an error naming it, as a missing video is: a typo, or a recipe's relative path read
    from another folder, would otherwise train on less than the recipe says, without a word."""
    found = {pattern: glob.glob(pattern, recursive=True) for pattern in patterns}
    if missing := [pattern for pattern, matched in found.items() if not matched]:
        where = "" if all(os.path.isabs(p) for p in missing) else f" (relative patterns are read from {os.getcwd()})"
        raise InputNotFoundError(f"data.images {missing[0]!r} matches no file{where}")
    paths = sorted({p for matched in found.values() for p in matched})
    paths = [p for p in paths if not any(fnmatch.fnmatch(Path(p).name, e) for e in exclude)]
    return [read_rgb(p) for p in paths]
