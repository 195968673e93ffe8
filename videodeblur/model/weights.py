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
    try:
        config = config_from_dict(ModelConfig, dict(payload["config"]), where=str(path))
    except ConfigError as err:
        raise WeightsError(f"{path} carries an invalid config: {err}") from err
    model = LPRN(config)
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except (RuntimeError, TypeError, AttributeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise WeightsError(f"{path} does not match its config: {first}") from err
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
