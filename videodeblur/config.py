"""Frozen, validated configs read from TOML (tomllib) so every run is described by a file."""
from __future__ import annotations

import dataclasses
import difflib
import functools
import sys
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 only
    import tomli as tomllib

from videodeblur.errors import ConfigError

__all__ = ["ModelConfig", "ATTENTION_KINDS", "ARCHITECTURE_KEYS", "load_toml", "config_from_dict",
           "load_model_config"]

Attention = Literal["none", "channel", "spatial", "both"]
ATTENTION_KINDS: tuple[str, ...] = typing.get_args(Attention)  # one spelling: the Literal is what is checked
# What a model file must spell out: a default would build a network that matches no shipped model.
# (``reduction`` may stay out: no model TOML gives it, and every weights file records it.)
ARCHITECTURE_KEYS: tuple[str, ...] = ("channels", "blocks", "stages", "attention", "unshuffle")
T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The LPRN knobs.

    ``unshuffle`` is the resolution front end: the frame is pixel-unshuffled by 1, 2 or 4 so the
    recursive stages run on 1, 1/4 or 1/16 of the pixels, then pixel-shuffled back.
    """

    name: str = "lprn"
    channels: int = 32
    blocks: int = 2
    stages: int = 6
    attention: Attention = "both"
    unshuffle: int = 1
    reduction: int = 4

    def __post_init__(self) -> None:
        # types first, so every way in (model TOML, recipe, weights file) gets one line, not torch's error
        for field, hint in _field_types(ModelConfig).items():
            _check_type(f"model.{field}", getattr(self, field), hint)
        _check_name(self.name)
        if self.channels < 4 or self.channels > 512:
            raise ConfigError(f"model.channels must be in [4, 512], got {self.channels}")
        if self.blocks < 0 or self.blocks > 32:
            raise ConfigError(f"model.blocks must be in [0, 32], got {self.blocks}")
        if self.stages < 1 or self.stages > 16:
            raise ConfigError(f"model.stages must be in [1, 16], got {self.stages}")
        if self.unshuffle not in (1, 2, 4):
            raise ConfigError(f"model.unshuffle must be 1, 2 or 4, got {self.unshuffle}")
        if self.reduction < 1:
            raise ConfigError(f"model.reduction must be >= 1, got {self.reduction}")

    def to_dict(self) -> dict[str, Any]:
        """Plain values, as a weights file stores the config (read back with weights_only=True)."""
        return dataclasses.asdict(self)


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file; a missing or malformed file is a ConfigError naming it."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as err:
        raise ConfigError(f"config file not found: {path}") from err
    except IsADirectoryError as err:
        raise ConfigError(f"config file {path} is a folder; give a .toml file") from err
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror or err}") from err
    except UnicodeDecodeError as err:  # codec words ("can't decode byte 0xff in position 16") named no rule
        raise ConfigError(f"config file {path} is not UTF-8 text, which TOML must be: byte "
                          f"0x{err.object[err.start]:02x} at offset {err.start}") from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"config file {path} is not valid TOML: {err}") from err


def config_from_dict(cls: type[T], data: dict[str, Any], *, where: str = "config",
                     required: tuple[str, ...] = ()) -> T:
    """Build a dataclass from a dict, rejecting unknown keys with a message that lists the valid ones,
    and a missing ``required`` key by name (rather than building the default). ``where`` begins each
    message (empty: a caller that names the source itself)."""
    prefix = f"{where}: " if where else ""
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - fields)
    if unknown:  # a typo ([data.mix] p_sharpp) named with the key meant, as [train]'s are
        close = difflib.get_close_matches(unknown[0], sorted(fields), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ConfigError(f"{prefix}unknown keys {unknown}{hint}; valid keys are {sorted(fields)}")
    missing = [key for key in required if key not in data]
    if missing:
        raise ConfigError(f"{prefix}missing {', '.join(missing)} (a model config gives each of {', '.join(required)})")
    try:
        return cls(**data)
    except TypeError as err:
        raise ConfigError(f"{prefix}{err}") from err


def load_model_config(path: str | Path) -> ModelConfig:
    """A model TOML holds a ``[model]`` table (or the keys at top level); every architecture key is
    required, and ``name`` defaults to the file's stem (``lprn`` would collide with the shipped model).
    Anything beside a ``[model]`` table is refused: ``stages = 4`` above the table header is a top-level
    key, which was ignored, and the network trained with the table's value."""
    path = Path(path)
    if path.suffix.lower() in (".pt", ".pth"):  # its zip bytes were "not UTF-8 text, byte 0x80 at offset 64"
        raise ConfigError(f"{path} is a weights file, not a model config (a .toml): to start training from those "
                          f"weights, give them as --init {path} (the recipe's train.init_weights)")
    data = load_toml(path)
    table = data.get("model", data)
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: model = {table!r} is not a table: a model TOML holds a [model] table of "
                          f"{', '.join(ARCHITECTURE_KEYS)} (or those keys at top level)")
    beside = sorted(set(data) - {"model"}) if table is not data else []
    if beside:
        what = f"table [{beside[0]}]" if isinstance(data[beside[0]], dict) else f"key {beside[0]!r}"
        raise ConfigError(f"{path}: {what} is outside the [model] table; a model TOML holds only [model] "
                          "(a key above the [model] line is outside it)")
    try:
        return config_from_dict(ModelConfig, {"name": path.stem, **table}, where="", required=ARCHITECTURE_KEYS)
    except ConfigError as err:  # ModelConfig's own checks too: channels = 0 said nothing of which file held it
        raise ConfigError(f"{path}: {err}") from err


# ------------------------------------------------------------------------------------- helpers

_TYPE_WORDS = {int: "a whole number", str: "a string"}


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _check_type(field: str, value: Any, hint: Any) -> None:
    """``value`` must be of the field's type: an int not a bool or float (16.0 reaches torch as a float),
    a Literal one of its values."""
    if typing.get_origin(hint) is Literal:
        if value not in typing.get_args(hint):
            raise ConfigError(f"{field} must be one of {', '.join(map(repr, typing.get_args(hint)))}, got {value!r}")
    elif not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ConfigError(f"{field} must be {_TYPE_WORDS.get(hint, hint.__name__)}, got {value!r}")


def _check_name(name: str) -> None:
    """The name becomes ``<out_dir>/<name>.pt``: it must be one plain file name, not a path."""
    if (not name or "/" in name or "\\" in name or name.startswith(".") or not name.isprintable()
            or len(name) > 100):
        shown = repr(name) if len(name) <= 60 else repr(name[:57]) + "..."
        raise ConfigError("model.name must be a plain file name of at most 100 characters (no / or \\, not "
                          f"starting with '.'), got {shown}")
