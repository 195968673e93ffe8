"""A training run described by one TOML file (configs/train/*.toml), read into frozen dataclasses.

Data paths are relative to the directory the command runs in (the repository root for the shipped
recipes); the ``model`` path is relative to the recipe file.

Every field is checked against its type hint and, where one is listed in ``FIELD_RANGES``, its
range, by one general check (:func:`checked_fields`): a TOML or ``--set`` value of the wrong kind
is a one-line ConfigError naming the field, never a crash an hour into a run.
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from videodeblur.config import ARCHITECTURE_KEYS, ModelConfig, config_from_dict, load_model_config, load_toml, tomllib  # tomli on 3.10
from videodeblur.errors import ConfigError
from videodeblur.train.mix import SynthesisMix  # not from train.data: this module is read before torch loads

__all__ = ["VideoSource", "DataSpec", "TrainRecipe", "FIELD_RANGES", "PIXEL_LOSSES", "load_recipe", "apply_settings",
           "checked_fields"]


@dataclasses.dataclass(frozen=True)
class Bounds:
    """A closed or open interval a number (or every number of a list) must lie in; None: unbounded."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False

    def __contains__(self, x: float) -> bool:
        above = self.low is None or (x > self.low if self.open_low else x >= self.low)
        below = self.high is None or (x < self.high if self.open_high else x <= self.high)
        return above and below

    def __str__(self) -> str:
        if self.high is None:
            return f"{'>' if self.open_low else '>='} {self.low:g}"
        return f"in {'(' if self.open_low else '['}{self.low:g}, {self.high:g}{')' if self.open_high else ']'}"


_AT_LEAST_1, _AT_LEAST_0, _POSITIVE = Bounds(1), Bounds(0), Bounds(0, open_low=True)
_CHANCE, _FRACTION = Bounds(0, 1), Bounds(0, 1, open_low=True, open_high=True)

FIELD_RANGES: dict[str, Bounds] = {
    # [train]: loop counts divide the step number, so they start at 1
    "train.steps": _AT_LEAST_1, "train.batch": _AT_LEAST_1, "train.log_every": _AT_LEAST_1,
    "train.checkpoint_every": _AT_LEAST_1, "train.val_limit": _AT_LEAST_1,
    "train.warmup_steps": _AT_LEAST_0, "train.val_every": _AT_LEAST_0, "train.threads": _AT_LEAST_0,
    "train.workers": _AT_LEAST_0, "train.seed": _AT_LEAST_0,  # numpy seeds are non-negative
    "train.lr": _FRACTION, "train.min_lr_ratio": _CHANCE, "train.weight_decay": _AT_LEAST_0,
    "train.grad_clip": _POSITIVE, "train.ema_decay": Bounds(0, 1, open_high=True),
    "train.frequency_weight": _AT_LEAST_0, "train.static_weight": _AT_LEAST_0, "train.static_threshold": _FRACTION,
    # [[data.videos]]
    "data.videos.cuts": _AT_LEAST_0, "data.videos.exclude": _AT_LEAST_0, "data.videos.max_frames": _AT_LEAST_1,
    "data.videos.step": _AT_LEAST_1,
    # [data.mix]: a crop under 8 px leaves no room for a moving object (crop // 4 px across)
    "data.mix.crop": Bounds(8), "data.mix.upsample": _AT_LEAST_1, "data.mix.average_stride": _AT_LEAST_1,
    "data.mix.crop_candidates": _AT_LEAST_1, "data.mix.kernel_sizes": _AT_LEAST_1,
    "data.mix.exposures": _AT_LEAST_1, "data.mix.warp_max_shift": _AT_LEAST_0, "data.mix.warp_scale": _POSITIVE,
    "data.mix.defocus_radius": _AT_LEAST_0, "data.mix.jpeg_quality": Bounds(0, 100),
    "data.mix.h264_crf": Bounds(0, 51), "data.mix.recolour_saturation": _AT_LEAST_0,
    **{f"data.mix.{p}": _CHANCE for p in ("p_average", "p_warp", "p_object", "p_still_camera", "p_defocus",
                                          "p_sharp", "p_noise", "p_jpeg", "p_h264", "p_recolour")},
}
_NON_EMPTY = {"data.mix.exposures", "data.mix.kernel_sizes"}  # drawn from with rng.choice

# train.pixel_loss's choices (losses.deblur_loss computes them); here, not there: losses.py loads torch
PIXEL_LOSSES = ("l1", "mse")


@dataclasses.dataclass(frozen=True)
class VideoSource:
    """A video to synthesise from: ``cuts`` are first frames of new shots, ``exclude`` [first, stop)
    ranges are held out for evaluation, ``step`` subsamples frames (e.g. 2 for a 50 fps source)."""

    path: str
    cuts: tuple[int, ...] = ()
    exclude: tuple[tuple[int, int], ...] = ()
    max_frames: int | None = None
    step: int = 1

    def __post_init__(self) -> None:
        _check_own_fields(self, "data.videos")
        for pair in self.exclude:  # [stop, first] held nothing out: the frames meant for evaluation were trained on
            if len(pair) != 2 or pair[0] >= pair[1]:
                raise ConfigError(f"data.videos.exclude ranges must be [first, stop) with first < stop, got {list(pair)}")


@dataclasses.dataclass(frozen=True)
class DataSpec:
    videos: tuple[VideoSource, ...] = ()
    images: tuple[str, ...] = ()
    exclude_images: tuple[str, ...] = ()
    pairs: tuple[str, ...] = ()
    mix: SynthesisMix = SynthesisMix()
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        _check_own_fields(self, "data")
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
        _check_own_fields(self, "train")  # types and FIELD_RANGES; a TOML array becomes a tuple
        if self.val_every and not self.val_pairs:
            raise ConfigError(f"train.val_every {self.val_every} needs train.val_pairs (a folder of pairs to score)")
        for name in ("out_dir", "init_weights"):  # "" is "." to pathlib: a run into the current folder, or
            # falsy: a run from the identity instead of the weights meant
            if getattr(self, name) == "":
                raise ConfigError(f"train.{name} is an empty string (an unset variable?): give "
                                  + ("a folder for the run" if name == "out_dir" else
                                     "a shipped model's name or a .pt weights file, or leave it out"))
        if self.pixel_loss not in PIXEL_LOSSES:
            raise ConfigError(f"train.pixel_loss must be one of {', '.join(PIXEL_LOSSES)}, got {self.pixel_loss!r}")

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


def load_recipe(path: str | Path, settings: Iterable[str] = (), *, resuming: bool = False,
                **overrides: Any) -> TrainRecipe:
    """Read a recipe TOML: ``model`` (path to a model TOML, or an inline table), ``[train]`` and ``[data]``;
    ``settings`` are ``KEY=VALUE`` changes (see apply_settings), ``overrides`` replace ``[train]`` fields.
    ``resuming`` (for train(..., resume=...)): the run keeps the weights it started from, as its checkpoint
    says, whatever the file's or the settings' ``init_weights`` (a fine-tune's --init replaced it;
    your-footage.toml names lprn-fast); only an ``init_weights`` override (--init) still applies, and
    train() refuses it if the run started elsewhere."""
    path = Path(path)
    raw = apply_settings(load_toml(path), settings)
    _reject_unknown_top_level(raw, path)
    model_entry = raw.get("model")
    if isinstance(model_entry, str):
        model = load_model_config(path.parent / model_entry)
    elif isinstance(model_entry, dict):
        model = config_from_dict(ModelConfig, checked_fields(ModelConfig, model_entry, "model"),
                                 where=f"{path} [model]", required=ARCHITECTURE_KEYS)
    else:
        raise ConfigError(f"{path}: 'model' must be a path to a model TOML or a [model] table")
    data_raw = dict(_table(raw, "data"))
    mix_raw = checked_fields(SynthesisMix, _table(data_raw, "mix", "data."), "data.mix")
    videos_raw = data_raw.pop("videos", [])
    if not isinstance(videos_raw, list) or not all(isinstance(v, dict) for v in videos_raw):
        raise ConfigError(f"data.videos must be [[data.videos]] tables, got {videos_raw!r}")
    videos = tuple(config_from_dict(VideoSource, v, where=f"{path} [[data.videos]]") for v in videos_raw)
    mix = config_from_dict(SynthesisMix, mix_raw, where=f"{path} [data.mix]")
    _check_mix(mix)
    data = config_from_dict(DataSpec, {**data_raw, "videos": videos, "mix": mix}, where=f"{path} [data]")
    train_raw = {**_table(raw, "train"), **{k: v for k, v in overrides.items() if v is not None}}
    if resuming and overrides.get("init_weights") is None:
        train_raw.pop("init_weights", None)
    _reject_unknown_train_keys(train_raw, path)
    return config_from_dict(TrainRecipe, {"model": model, "data": data, **train_raw}, where=f"{path} [train]")


def checked_fields(cls: type, values: dict[str, Any], where: str) -> dict[str, Any]:
    """``values`` (fields of the dataclass ``cls``, e.g. read from TOML) checked against the fields'
    type hints and ``FIELD_RANGES[where.field]``: ints must be whole numbers, floats accept ints,
    strings must be strings, lists become tuples. Unknown keys pass through for the caller to reject
    with the list of valid ones."""
    hints = typing.get_type_hints(cls)
    result = dict(values)
    for name, value in values.items():
        if name not in hints:
            continue
        field = f"{where}.{name}"
        ok, converted = _convert(value, hints[name])
        bounds = FIELD_RANGES.get(field)
        numbers = list(_numbers(converted)) if ok else []
        if not ok or (bounds is not None and not all(n in bounds for n in numbers)) or (
                field in _NON_EMPTY and not converted):
            wanted = _describe(hints[name], bounds)
            nonempty = "a non-empty " + wanted.removeprefix("a ") if field in _NON_EMPTY else wanted
            hint = f' (a list: ["{value}"])' if isinstance(value, str) and wanted.startswith("a list") else ""
            raise ConfigError(f"{field} must be {nonempty}, got {value!r}{hint}")
        result[name] = converted
    return result


def _check_own_fields(instance: Any, where: str) -> None:
    """Run :func:`checked_fields` on a dataclass's own values (also on ``dataclasses.replace``) and
    store the converted ones (a list as a tuple, an int as a float)."""
    values = {f.name: getattr(instance, f.name) for f in dataclasses.fields(instance)}
    for name, value in checked_fields(type(instance), values, where).items():
        if value is not values[name]:
            object.__setattr__(instance, name, value)


def _check_mix(mix: SynthesisMix) -> None:
    """What one field's range cannot say about [data.mix]."""
    longest = 2 * mix.upsample + 1
    if max(mix.exposures) > longest:
        raise ConfigError(f"data.mix.exposures must be at most 2 * data.mix.upsample + 1 = {longest} virtual "
                          f"frames, got {list(mix.exposures)}")
    if any(size < 3 or size % 2 == 0 for size in mix.kernel_sizes):
        raise ConfigError(f"data.mix.kernel_sizes must be odd whole numbers >= 3 (a kernel has a centre), "
                          f"got {list(mix.kernel_sizes)}")
    for name in ("jpeg_quality", "h264_crf"):
        low, high = getattr(mix, name)
        if low >= high:
            raise ConfigError(f"data.mix.{name} must be [low, high] with low < high (high is left out), "
                              f"got {[low, high]}")


_TOP_LEVEL = {"model": "model", "train": "[train]", "data": "[data]"}


def _reject_unknown_top_level(raw: dict[str, Any], path: Path) -> None:
    """A key outside the known tables (``--set steps=2`` for ``train.steps``, a ``[trian]`` typo) would
    otherwise be ignored and the run would silently use the recipe's value."""
    for key in sorted(set(raw) - set(_TOP_LEVEL)):
        what = f"table [{key}]" if isinstance(raw[key], dict) else f"key {key!r}"
        guess = next((f"{table}.{key}" for table, cls in (("train", TrainRecipe), ("data", DataSpec))
                      if key in {f.name for f in dataclasses.fields(cls)}), None)
        close = difflib.get_close_matches(key, list(_TOP_LEVEL), n=1)
        hint = f" (did you mean {guess or _TOP_LEVEL[close[0]]}?)" if guess or close else ""
        raise ConfigError(f"{path}: unknown top-level {what}{hint}; a recipe holds {', '.join(_TOP_LEVEL.values())}")


def _reject_unknown_train_keys(train_raw: dict[str, Any], path: Path) -> None:
    """A [train] key that is no [train] field, named with the one meant; ``model`` and ``data`` are
    TrainRecipe fields but not [train] keys (a ``--set train.model=...`` once ended in 'train.model
    must be a ModelConfig', and the list of valid keys offered them)."""
    fields = sorted(f.name for f in dataclasses.fields(TrainRecipe) if f.name not in _TOP_LEVEL)
    for key in sorted(set(train_raw) - set(fields)):
        if key in _TOP_LEVEL:
            hint = f"the recipe's {_TOP_LEVEL[key]} sets it" + (", or --model-config" if key == "model" else "")
        else:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f"did you mean train.{close[0]}?" if close else f"valid keys are {fields}"
        raise ConfigError(f"{path} [train]: unknown keys [{key!r}] ({hint})")


def _table(raw: dict[str, Any], key: str, prefix: str = "") -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{prefix}{key} must be a table ([{prefix}{key}]), got {value!r}")
    return value


_NAMES = {int: ("a whole number", "whole numbers"), float: ("a number", "numbers"), str: ("a string", "strings"),
          bool: ("true or false", "booleans")}


def _convert(value: Any, hint: Any) -> tuple[bool, Any]:
    """Whether ``value`` fits the type ``hint``, and the value as the field holds it."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        for arm in args:
            ok, converted = _convert(value, arm)
            if ok:
                return True, converted
        return False, value
    if origin is typing.Literal:
        return value in args, value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            return False, value
        items = args[:1] * len(value) if len(args) == 2 and args[1] is Ellipsis else args
        if len(items) != len(value):
            return False, value
        converted = [_convert(v, a) for v, a in zip(value, items)]
        return all(ok for ok, _ in converted), tuple(c for _, c in converted)
    if hint is type(None):
        return value is None, value
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return ok, float(value) if ok else value
    if isinstance(hint, type):  # str, or a nested config (built before its parent)
        return isinstance(value, hint), value
    return True, value


def _numbers(value: Any) -> Iterable[float]:
    if isinstance(value, tuple):
        for item in value:
            yield from _numbers(item)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield value


def _describe(hint: Any, bounds: Bounds | None = None, plural: bool = False) -> str:
    """``hint`` in words, e.g. "a whole number >= 1" or "a list of strings"."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):  # TOML has no null: None is only ever a default
        return " or ".join(_describe(a, bounds, plural) for a in args if a is not type(None))
    if origin is typing.Literal:
        return f"one of {', '.join(map(repr, args))}"
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            text = f"list{'s' if plural else ''} of {_describe(args[0], bounds, plural=True)}"
        else:
            text = f"list{'s' if plural else ''} of {len(args)} {_describe(args[0], bounds, plural=True)}"
        return text if plural else f"a {text}"
    name = _NAMES.get(hint, (f"a {getattr(hint, '__name__', hint)}",) * 2)[plural]
    return f"{name} {bounds}" if bounds is not None and hint in (int, float) else name
