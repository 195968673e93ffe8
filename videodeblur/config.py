"""Frozen, validated configs read from TOML (tomllib) so every run is described by a file."""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any, Literal, TypeVar

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 only
    import tomli as tomllib

from videodeblur.errors import ConfigError

__all__ = ["ModelConfig", "ATTENTION_KINDS", "load_toml", "config_from_dict", "load_model_config"]

Attention = Literal["none", "channel", "spatial", "both"]
ATTENTION_KINDS: tuple[str, ...] = ("none", "channel", "spatial", "both")
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
        if self.channels < 4 or self.channels > 512:
            raise ConfigError(f"channels must be in [4, 512], got {self.channels}")
        if self.blocks < 0 or self.blocks > 32:
            raise ConfigError(f"blocks must be in [0, 32], got {self.blocks}")
        if self.stages < 1 or self.stages > 16:
            raise ConfigError(f"stages must be in [1, 16], got {self.stages}")
        if self.attention not in ATTENTION_KINDS:
            raise ConfigError(f"attention must be one of {ATTENTION_KINDS}, got {self.attention!r}")
        if self.unshuffle not in (1, 2, 4):
            raise ConfigError(f"unshuffle must be 1, 2 or 4, got {self.unshuffle}")
        if self.reduction < 1:
            raise ConfigError(f"reduction must be >= 1, got {self.reduction}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file; a missing or malformed file is a ConfigError naming it."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as err:
        raise ConfigError(f"config file not found: {path}") from err
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"config file {path} is not valid TOML: {err}") from err


def config_from_dict(cls: type[T], data: dict[str, Any], *, where: str = "config") -> T:
    """Build a dataclass from a dict, rejecting unknown keys with a message that lists the valid ones."""
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - fields)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; valid keys are {sorted(fields)}")
    try:
        return cls(**data)
    except TypeError as err:
        raise ConfigError(f"{where}: {err}") from err


def load_model_config(path: str | Path) -> ModelConfig:
    """A model TOML holds a ``[model]`` table (or the keys at top level)."""
    data = load_toml(path)
    table = data.get("model", data)
    return config_from_dict(ModelConfig, table, where=str(path))
