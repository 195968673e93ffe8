"""A training run described by one TOML file (configs/train/*.toml), read into frozen dataclasses.

Data paths are relative to the directory the command runs in (the repository root for the shipped
recipes); the ``model`` path is relative to the recipe file.
"""
from __future__ import annotations

import copy
import dataclasses
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from videodeblur.config import ModelConfig, config_from_dict, load_model_config, load_toml
from videodeblur.errors import ConfigError
from videodeblur.train.data import SynthesisMix
from videodeblur.train.losses import PIXEL_LOSSES

__all__ = ["VideoSource", "DataSpec", "TrainRecipe", "load_recipe", "apply_settings"]


@dataclasses.dataclass(frozen=True)
class VideoSource:
    """A video to synthesise from: ``cuts`` are first frames of new shots, ``exclude`` [first, stop)
    ranges are held out for evaluation, ``step`` subsamples frames (e.g. 2 for a 50 fps source)."""

    path: str
    cuts: tuple[int, ...] = ()
    exclude: tuple[tuple[int, int], ...] = ()
    max_frames: int | None = None
    step: int = 1


@dataclasses.dataclass(frozen=True)
class DataSpec:
    videos: tuple[VideoSource, ...] = ()
    images: tuple[str, ...] = ()
    exclude_images: tuple[str, ...] = ()
    pairs: tuple[str, ...] = ()
    mix: SynthesisMix = SynthesisMix()
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        if not (self.videos or self.images or self.pairs):
            raise ConfigError("[data] needs at least one of videos, images or pairs")


@dataclasses.dataclass(frozen=True)
class TrainRecipe:
    model: ModelConfig
    data: DataSpec
    out_dir: str = "runs/train"
    steps: int = 10_000
    batch: int = 16
    lr: float = 2e-3
    min_lr_ratio: float = 0.02
    weight_decay: float = 1e-4
    warmup_steps: int = 200
    grad_clip: float = 0.5
    pixel_loss: str = "l1"
    ema_decay: float = 0.0
    frequency_weight: float = 0.0
    static_weight: float = 0.0
    static_threshold: float = 2 / 255
    seed: int = 0
    threads: int = 0
    workers: int = 0
    log_every: int = 50
    checkpoint_every: int = 500
    eval_pairs: str | None = None
    val_pairs: str | tuple[str, ...] | None = None  # several sets: the score is their mean (e.g. clean + H.264)
    val_every: int = 0
    val_limit: int | None = None
    init_weights: str | None = None  # fine-tune: start from a shipped model's name or a .pt weights file

    def __post_init__(self) -> None:
        if isinstance(self.val_pairs, list):  # a TOML array
            object.__setattr__(self, "val_pairs", tuple(self.val_pairs))
        if self.steps < 1 or self.batch < 1:
            raise ConfigError(f"steps and batch must be >= 1 (got {self.steps}, {self.batch})")
        if not 0 < self.lr < 1:
            raise ConfigError(f"lr must be in (0, 1), got {self.lr}")
        if self.val_every < 0 or (self.val_every and not self.val_pairs):
            raise ConfigError(f"val_every must be >= 0 and needs val_pairs (got {self.val_every}, {self.val_pairs!r})")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"ema_decay must be in [0, 1) (0: off), got {self.ema_decay}")
        if self.frequency_weight < 0 or self.static_weight < 0 or not 0 < self.static_threshold < 1:
            raise ConfigError("frequency_weight and static_weight must be >= 0 and static_threshold in (0, 1) "
                              f"(got {self.frequency_weight}, {self.static_weight}, {self.static_threshold})")
        if self.pixel_loss not in PIXEL_LOSSES:
            raise ConfigError(f"pixel_loss must be one of {', '.join(PIXEL_LOSSES)}, got {self.pixel_loss!r}")

    @property
    def val_sets(self) -> tuple[str, ...]:
        """The validation sets as a tuple (``val_pairs`` may name one or several)."""
        if not self.val_pairs:
            return ()
        return (self.val_pairs,) if isinstance(self.val_pairs, str) else tuple(self.val_pairs)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def apply_settings(raw: dict[str, Any], settings: Iterable[str]) -> dict[str, Any]:
    """A copy of a recipe's TOML tables with ``KEY=VALUE`` settings applied, e.g.
    ``train.frequency_weight=0.05`` or ``data.mix.p_sharp=0.3``, so one recipe serves a family of runs
    instead of near-copies that drift apart. VALUE is read as a TOML value (``0.05``, ``[9, 13]``,
    ``true``, ``"text"``); anything that is not one is taken as a plain string (``runs/x``)."""
    result = copy.deepcopy(raw)
    for setting in settings:
        key, sep, text = setting.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise ConfigError(f"setting {setting!r} must look like SECTION.KEY=VALUE, e.g. train.lr=1e-4")
        try:
            value = tomllib.loads(f"value = {text.strip()}")["value"]
        except tomllib.TOMLDecodeError:
            value = text.strip()
        table = result
        for depth, part in enumerate(parts[:-1]):
            table = table.setdefault(part, {})
            if not isinstance(table, dict):
                raise ConfigError(f"setting {setting!r}: {'.'.join(parts[:depth + 1])} is not a table")
        table[parts[-1]] = value
    return result


def load_recipe(path: str | Path, settings: Iterable[str] = (), **overrides: Any) -> TrainRecipe:
    """Read a recipe TOML: ``model`` (path to a model TOML, or an inline table), ``[train]`` and ``[data]``;
    ``settings`` are ``KEY=VALUE`` changes (see apply_settings), ``overrides`` replace ``[train]`` fields."""
    path = Path(path)
    raw = apply_settings(load_toml(path), settings)
    model_entry = raw.get("model")
    if isinstance(model_entry, str):
        model = load_model_config(path.parent / model_entry)
    elif isinstance(model_entry, dict):
        model = config_from_dict(ModelConfig, model_entry, where=f"{path} [model]")
    else:
        raise ConfigError(f"{path}: 'model' must be a path to a model TOML or a [model] table")
    data_raw = dict(raw.get("data", {}))
    mix_raw = dict(data_raw.pop("mix", {}))
    for key in ("exposures", "kernel_sizes", "jpeg_quality", "h264_crf", "warp_scale", "defocus_radius"):
        if key in mix_raw:
            mix_raw[key] = tuple(mix_raw[key])
    videos = tuple(
        config_from_dict(VideoSource, {**v, "cuts": tuple(v.get("cuts", ())),
                                       "exclude": tuple(tuple(r) for r in v.get("exclude", ()))},
                         where=f"{path} [[data.videos]]")
        for v in data_raw.pop("videos", [])
    )
    data = config_from_dict(
        DataSpec,
        {**{k: (v if isinstance(v, str) else tuple(v)) for k, v in data_raw.items()}, "videos": videos,
         "mix": config_from_dict(SynthesisMix, mix_raw, where=f"{path} [data.mix]")},
        where=f"{path} [data]",
    )
    train_raw = {**raw.get("train", {}), **{k: v for k, v in overrides.items() if v is not None}}
    return config_from_dict(TrainRecipe, {"model": model, "data": data, **train_raw}, where=f"{path} [train]")
