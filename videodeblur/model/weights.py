"""Save and load weights files: a dict of plain tensors and plain values, read with weights_only=True.

A file carries its config so the network rebuilds from the file alone; a JSON file beside it
(``<name>.json``) holds the training metadata (data, steps, seconds, hardware, commit, evaluation).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from videodeblur.config import ModelConfig, config_from_dict
from videodeblur.errors import ConfigError, InputNotFoundError, WeightsError
from videodeblur.model.lprn import LPRN

__all__ = ["FORMAT_VERSION", "save_weights", "load_weights", "read_metadata", "write_metadata", "metadata_path"]

FORMAT_VERSION = 1


def save_weights(path: str | Path, model: LPRN, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``path`` (state dict + config) and, if given, ``metadata`` as JSON beside it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    payload = {"format": FORMAT_VERSION, "config": model.config.to_dict(), "state_dict": state}
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)  # atomic: a crash never leaves a half-written weights file
    if metadata is not None:
        write_metadata(path, metadata)
    return path


def load_weights(path: str | Path) -> LPRN:
    """Rebuild the network from a weights file; any problem is a WeightsError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"weights file not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for truncated/corrupt/unsafe files
        raise WeightsError(f"cannot read weights file {path}: corrupt or not a videodeblur weights file") from err
    if not isinstance(payload, dict) or "config" not in payload or "state_dict" not in payload:
        raise WeightsError(f"{path} is not a videodeblur weights file (missing config/state_dict)")
    if payload.get("format") != FORMAT_VERSION:
        raise WeightsError(f"{path} has weights format {payload.get('format')!r}; expected {FORMAT_VERSION}")
    config_table, state = payload["config"], payload["state_dict"]
    if not isinstance(config_table, dict) or not all(isinstance(key, str) for key in config_table):
        raise WeightsError(f"{path} carries an invalid config: a table of settings (name, channels, ...) is "
                           f"needed, got {type(config_table).__name__} {_short(config_table)}")
    if not isinstance(state, dict):
        raise WeightsError(f"{path} carries no state dict of tensors (got {type(state).__name__})")
    try:
        config = config_from_dict(ModelConfig, config_table, where=str(path))
        model = LPRN(config)
    except ConfigError as err:
        raise WeightsError(f"{path} carries an invalid config: {err}") from err
    except (TypeError, ValueError, RuntimeError) as err:  # values of the wrong type that pass the range checks
        raise WeightsError(f"{path} carries an invalid config ({_short(config_table)}): {err}") from err
    _check_state(path, state, model.state_dict())
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, AttributeError) as err:  # _check_state should have caught it: say torch's words
        detail = " ".join(str(err).split()) or type(err).__name__
        raise WeightsError(f"{path} does not match its config: {detail}") from err
    return model.eval()


def metadata_path(weights: str | Path) -> Path:
    return Path(weights).with_suffix(".json")


def write_metadata(weights: str | Path, metadata: dict[str, Any]) -> Path:
    """Write the JSON beside a weights file (sorted keys, so diffs of shipped metadata stay small)."""
    path = metadata_path(weights)
    path.write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
    return path


def read_metadata(weights: str | Path) -> dict[str, Any]:
    """The training metadata beside a weights file, or {} when there is none."""
    p = metadata_path(weights)
    if not p.is_file():
        return {}
    try:
        return json.loads(p.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


# ------------------------------------------------------------------------------------- helpers

def _check_state(path: Path, state: dict[Any, Any], expected: dict[str, torch.Tensor]) -> None:
    """Refuse a state dict that would not load, naming the first bad key and its shapes, and one with
    NaN or infinite values: it loads, and every frame comes out black."""
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise WeightsError(f"{path} does not match its config: {key!r} holds a {type(value).__name__}, "
                               "not a tensor")
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    wrong = [key for key in expected if key in state and state[key].shape != expected[key].shape]
    if wrong:
        key = wrong[0]
        raise WeightsError(f"{path} does not match its config: {key} has shape {_shape(state[key])} in the file "
                           f"but {_shape(expected[key])} for the config{_more(len(wrong) - 1, 'of another shape')}")
    if missing:
        raise WeightsError(f"{path} does not match its config: it lacks {missing[0]}"
                           f"{_more(len(missing) - 1, 'missing')}")
    if unexpected:
        raise WeightsError(f"{path} does not match its config: {unexpected[0]} is not part of the network"
                           f"{_more(len(unexpected) - 1, 'unknown')}")
    for key, value in state.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            kind = "NaN" if bool(torch.isnan(value).any()) else "infinite"
            raise WeightsError(f"{path} is broken: tensor {key} holds {kind} values (a diverged training run?); "
                               "use other weights")


def _shape(tensor: torch.Tensor) -> str:
    return "×".join(map(str, tensor.shape)) or "scalar"


def _more(count: int, what: str) -> str:
    return f" (and {count} more {what})" if count > 0 else ""


def _short(value: Any) -> str:
    text = " ".join(repr(value).split())
    return text if len(text) <= 60 else text[:57] + "..."
