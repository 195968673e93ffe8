"""Save and load weights files: a dict of plain tensors and plain values, read with weights_only=True.

A file carries its config so the network rebuilds from the file alone; a JSON file beside it
(``<name>.json``) holds the training metadata (data, steps, seconds, hardware, commit, evaluation).
"""
from __future__ import annotations

import json
import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from videodeblur.config import ARCHITECTURE_KEYS, ModelConfig, config_from_dict
from videodeblur.errors import ConfigError, InputNotFoundError, WeightsError
from videodeblur.model.lprn import LPRN
from videodeblur.notices import Warn, python_warning

__all__ = ["FORMAT_VERSION", "save_weights", "load_weights", "read_metadata", "write_metadata", "metadata_path",
           "record_evaluation", "recorded_path", "metadata_to_update"]

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


def safe_load(path: Path) -> Any:
    """``torch.load`` with ``weights_only=True`` (tensors and plain containers: no pickled code runs),
    on the CPU, without torch's warnings, which would add lines to our one-line error, or to nothing:
    a sparse tensor is refused by the caller; a plain pickle, or a garbage file whose first byte is
    pickle's PROTO opcode (1 in 256 of random files), names a protocol the loader then refuses."""
    with warnings.catch_warnings():
        # torch 2.14 says 'Validating sparse tensor invariants ...', torch 2.11 'Sparse invariant checks ...'
        warnings.filterwarnings("ignore", message="Validating sparse tensor invariants|Sparse invariant checks")
        warnings.filterwarnings("ignore", message="Detected pickle protocol")
        return torch.load(path, map_location="cpu", weights_only=True)


def load_weights(path: str | Path) -> LPRN:
    """Rebuild the network from a weights file; any problem is a WeightsError naming the file."""
    path = Path(path)
    if path.is_dir():
        raise WeightsError(f"{path} is a folder, not a weights file (a .pt file)")
    if not path.is_file():
        if path.exists():  # a device or a pipe: "not found" would send the user looking for a file that is there
            raise WeightsError(f"{path} is not a regular file (a device or a pipe?): give a .pt weights file")
        raise InputNotFoundError(f"weights file not found: {path}")
    if path.stat().st_size == 0:
        raise WeightsError(f"weights file {path} is empty (0 bytes): an interrupted copy or download?")
    try:
        payload = safe_load(path)
    except OSError as err:  # no permission, an I/O error: the file may be sound, and "corrupt" says it is not
        raise WeightsError(f"cannot read weights file {path}: {err.strerror or err}") from err
    except Exception as err:  # torch raises many types for truncated/corrupt/unsafe files
        pickled = re.search(r"GLOBAL ([\w.]+)", str(err)) if isinstance(err, pickle.UnpicklingError) else None
        if pickled:  # e.g. torch.save(model): not corrupt, and "corrupt" sent the user looking for damage
            raise WeightsError(f"{path} holds a pickled Python object ({pickled[1]}), not only tensors: it is not "
                               "unpickled, since that could run any code; a weights file holds a state dict and its "
                               "config (videodeblur.model.save_weights writes one)") from err
        raise WeightsError(f"cannot read weights file {path}: corrupt or not a videodeblur weights file") from err
    if isinstance(payload, dict) and "optimiser" in payload and "state_dict" not in payload:
        weights = path.with_name(_run_name(payload) + ".pt")
        where = (f"the run's weights are {weights} beside it" if weights.is_file() else
                 f"its run has saved no weights yet ({weights.name} is not beside it): train --resume {path} "
                 "finishes the run and saves them")
        raise WeightsError(f"{path} is a training checkpoint (for train --resume), not a weights file: {where}")
    if not isinstance(payload, dict) or "config" not in payload or "state_dict" not in payload:
        raise WeightsError(f"{path} is not a videodeblur weights file (missing config/state_dict)")
    if payload.get("format") != FORMAT_VERSION:
        given = payload.get("format")
        newer = isinstance(given, int) and not isinstance(given, bool) and given > FORMAT_VERSION
        raise WeightsError(f"{path} is weights format {given}, from a newer videodeblur: this one reads format "
                           f"{FORMAT_VERSION} (upgrade videodeblur to load it)" if newer else
                           f"{path} has weights format {given!r}; expected {FORMAT_VERSION}")
    config_table, state = payload["config"], payload["state_dict"]
    if not isinstance(config_table, dict) or not all(isinstance(key, str) for key in config_table):
        raise WeightsError(f"{path} carries an invalid config: a table of settings (name, channels, ...) is "
                           f"needed, got {type(config_table).__name__} {_short(config_table)}")
    if not isinstance(state, dict):
        raise WeightsError(f"{path} carries no state dict of tensors (got {type(state).__name__})")
    try:
        config = config_from_dict(ModelConfig, {"name": path.stem, **config_table}, where="",  # named below
                                  required=ARCHITECTURE_KEYS)
        with torch.device("meta"):  # shapes only, nothing allocated: a config far larger than its tensors (C=512,
            shapes = LPRN(config).state_dict()  # 32 blocks, T=16) was built, 1.3 GB and 8 s, only to be refused
    except ConfigError as err:
        raise WeightsError(f"{path} carries an invalid config: {err}") from err
    except (TypeError, ValueError, RuntimeError) as err:  # values of the wrong type that pass the range checks
        raise WeightsError(f"{path} carries an invalid config ({_short(config_table)}): {err}") from err
    _check_state(path, state, shapes)
    model = LPRN(config)
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, AttributeError) as err:  # _check_state should have caught it: say torch's words
        detail = " ".join(str(err).split()) or type(err).__name__
        raise WeightsError(f"{path} does not match its config: {detail}") from err
    return model.eval()


def metadata_path(weights: str | Path) -> Path:
    """The JSON beside a weights file (``lprn.pt`` → ``lprn.json``): one name, so every reader finds it."""
    return Path(weights).with_suffix(".json")


def write_metadata(weights: str | Path, metadata: dict[str, Any]) -> Path:
    """Write the JSON beside a weights file (sorted keys, so diffs of shipped metadata stay small)."""
    path = metadata_path(weights)
    path.write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
    return path


def read_metadata(weights: str | Path) -> dict[str, Any]:
    """The training metadata beside a weights file, or {} when there is none. It is optional, so one
    that cannot be read as a JSON object (not UTF-8, not JSON, a list) is as good as none."""
    held = _json_object(metadata_path(weights))
    return held if isinstance(held, dict) else {}


def metadata_to_update(weights: str | Path) -> dict[str, Any]:
    """The metadata beside ``weights``, to be written back with a change: WeightsError for a file that is
    there but holds no JSON object (a hand edit's slip, a trailing comma), which :func:`read_metadata` reads
    as none and a write would replace, losing the training record in it. ``eval --record`` asks before
    scoring, not after."""
    held = _json_object(metadata_path(weights))
    if isinstance(held, str):
        raise WeightsError(f"{metadata_path(weights)} cannot be read as metadata ({held}): --record would replace "
                           "the training record it holds; mend it or move it aside, then record again")
    return held


def metadata_problem(weights: str | Path) -> str | None:
    """Why the metadata file beside ``weights`` is read as none (:func:`read_metadata`'s {}), or None where
    there is no file or it holds a JSON object: for `videodeblur models`, whose row then has no figures."""
    held = _json_object(metadata_path(weights))
    return held if isinstance(held, str) else None


def _json_object(path: Path) -> dict[str, Any] | str:
    """The JSON object in ``path`` ({} for no file, or one with nothing in it), or why it holds none."""
    try:
        text = path.read_text(encoding="utf-8") if path.is_file() else ""
        metadata = json.loads(text) if text.strip() else {}
    except (OSError, ValueError, RecursionError) as err:  # ValueError: UnicodeDecodeError, JSONDecodeError
        return str(err.strerror if isinstance(err, OSError) else err)
    if isinstance(metadata, dict):
        return metadata
    kind = {list: "list", str: "string", bool: "true or false", type(None): "null"}.get(type(metadata), "number")
    return f"a JSON {kind}, not an object"  # JSON's words: "a JSON NoneType" named Python's


def record_evaluation(weights: str | Path, summary: dict[str, Any], pairs: str | Path, *,
                      warn: Warn | None = None) -> Path:
    """Store ``summary`` (an evaluation of ``weights`` on every pair under ``pairs``) as the file's
    ``evaluation``, the figure `videodeblur models` shows, keeping the rest of its metadata; an H.264
    figure (``evaluation_compressed``) measured on other pairs than ``pairs`` is dropped, with a warning:
    beside this figure, `models` would show the two as one.

    ``pairs`` is stored as :func:`recorded_path` gives it (``runs/eval_pairs`` from the repository root,
    as the recipe's paths in the same file read). The pairs held before are compared from the current
    folder: a record made from another folder is read from this one, as a recipe's relative paths are."""
    held = metadata_to_update(weights)
    resolved = Path(pairs).resolve()
    metadata = {**held, "evaluation": summary, "eval_pairs": recorded_path(pairs)}
    before = held.get("eval_pairs")
    if "evaluation_compressed" in metadata and (not isinstance(before, str) or Path(before).resolve() != resolved):
        del metadata["evaluation_compressed"]
        compressed = metadata.pop("eval_pairs_compressed", None)
        (warn or python_warning)(f"{weights}: its H.264 figure{f' (on {compressed})' if compressed else ''} was "
                                 f"measured on other pairs than {pairs}, so it is left out of the metadata "
                                 "(`videodeblur models` shows none)")
    return write_metadata(weights, metadata)


def recorded_path(path: str | Path) -> str:
    """``path`` as a weights file's metadata records it: relative to the current folder where it lies
    inside it, else absolute. A file that ships must not hold this machine's folders (``/home/me/
    videodeblur/runs/eval_pairs``); a reader in their own checkout reads ``runs/eval_pairs`` as the
    recipes' paths, from the repository root. Outside the current folder only the absolute path names it."""
    resolved = Path(path).resolve()
    here = Path.cwd().resolve()
    return resolved.relative_to(here).as_posix() if resolved.is_relative_to(here) else str(resolved)


# ------------------------------------------------------------------------------------- helpers

def _check_state(path: Path, state: dict[Any, Any], expected: dict[str, torch.Tensor]) -> None:
    """Refuse a state dict that would not load, naming the first bad key and its shapes, and one with
    NaN or infinite values: it loads, and every frame comes out black."""
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise WeightsError(f"{path} does not match its config: {key!r} holds a {type(value).__name__}, "
                               "not a tensor")
        # no values to load (meta), another layout (sparse), or numbers a network cannot hold (int, complex)
        if value.layout != torch.strided or value.is_meta or not value.is_floating_point():
            kind = ("a meta tensor (no values)" if value.is_meta else f"a {value.layout} tensor"
                    if value.layout != torch.strided else f"{value.dtype} values")
            raise WeightsError(f"{path} is not a usable weights file: tensor {key} holds {kind}; weights must be "
                               "dense floating-point tensors (fp16, bf16, fp32 or fp64)")
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


def _run_name(checkpoint: dict[Any, Any]) -> str:
    """The model name a training checkpoint's run saves its weights under, or ``<name>``."""
    config = checkpoint.get("config")
    name = config.get("name") if isinstance(config, dict) else None
    return name if isinstance(name, str) and name else "<name>"


def _shape(tensor: torch.Tensor) -> str:
    return "×".join(map(str, tensor.shape)) or "scalar"


def _more(count: int, what: str) -> str:
    return f" (and {count} more {what})" if count > 0 else ""


def _short(value: Any) -> str:
    text = " ".join(repr(value).split())
    return text if len(text) <= 60 else text[:57] + "..."
