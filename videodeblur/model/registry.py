"""Shipped models by name, and resolution of ``--model NAME|PATH`` to a loaded network."""
from __future__ import annotations

import dataclasses
import difflib
import functools
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from videodeblur.errors import ConfigError, InputNotFoundError, ModelNotFoundError, VideoDeblurError
from videodeblur.notices import Warn, python_warning
from videodeblur.paths import check_nameable
from videodeblur.video.locations import redacted, scheme_not_read

if TYPE_CHECKING:  # (the network and weights modules load torch: imported where used, once a name is checked)
    from videodeblur.model.lprn import LPRN

__all__ = ["SHIPPED_MODELS", "DEFAULT_VIDEO_MODEL", "DEFAULT_CPU_MODEL", "LoadedModel", "load_model",
           "shipped_weights_path", "shipped_name", "check_recordable", "list_models", "default_model_name",
           "weights_origin"]

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"

SHIPPED_MODELS: dict[str, str] = {
    "lprn": "the paper's configuration: T=6, channel+spatial attention, full resolution",
    "lprn-rt": "real-time GPU preset (default for video on CUDA): pixel-unshuffle front end, fewer stages",
    "lprn-fast": "CPU preset: 640x360 at >= 25 fps on 2 cores, fp32",
}
DEFAULT_VIDEO_MODEL = "lprn-rt"
DEFAULT_CPU_MODEL = "lprn-fast"


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    """A network in eval mode with where it came from."""

    name: str
    path: Path
    network: LPRN
    metadata: dict[str, Any]

    @property
    def parameters(self) -> int:
        """The network's parameter count, the figure `videodeblur models` lists."""
        return sum(p.numel() for p in self.network.parameters())

    @functools.cached_property
    def fingerprint(self) -> str:
        """Eight hex digits of a hash of the weights' values: a fine-tune saved as ``lprn-fast.pt``
        carries the shipped model's name, and only its weights tell the two apart (a resumed output
        may not mix their frames)."""
        digest = hashlib.sha256()
        for key, tensor in sorted(self.network.state_dict().items()):
            digest.update(key.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()[:8]


def shipped_weights_path(name: str) -> Path:
    """Where the shipped model ``name``'s weights are, inside the installed package."""
    return WEIGHTS_DIR / f"{name}.pt"


def shipped_name(key: str | Path) -> str | None:
    """The shipped model ``key`` names, in any case (``LPRN-Fast`` is lprn-fast); None for anything else."""
    return {name.lower(): name for name in SHIPPED_MODELS}.get(str(key).lower())


def check_recordable(model: str | Path, limit: int | None) -> None:
    """Refuse to record an evaluation of ``model`` scored on the first ``limit`` pairs, before anything is
    scored: part of the pairs is not the model's figure, and a shipped name would write into the
    installed package's metadata (what `videodeblur models` shows). It lives here, not beside
    :func:`videodeblur.model.weights.record_evaluation`, because shipped names are this module's, and
    this module imports that one."""
    if limit is not None:
        raise ConfigError(f"--record stores the model's figure, and --limit {limit} scores only part of the "
                          "pairs: leave out --limit to record")
    shipped = shipped_name(model)
    if shipped is not None:
        raise ConfigError(f"--record will not write into the shipped model {shipped}'s metadata "
                          f"({shipped_weights_path(shipped).with_suffix('.json')}): give the weights file's path "
                          "to record into it")


def load_model(name_or_path: str | Path) -> LoadedModel:
    """A shipped name (``lprn``, ``lprn-rt``, ``lprn-fast``, in any case) or a path to a ``.pt`` weights file."""
    name, path = weights_file(name_or_path)
    from videodeblur.model.weights import load_weights, read_metadata  # torch loads here, after the name's checks

    return LoadedModel(name=name, path=path, network=load_weights(path), metadata=read_metadata(path))


def weights_file(name_or_path: str | Path) -> tuple[str, Path]:
    """The model's name and the file :func:`load_model` reads for ``name_or_path``, or its error for a
    name or path that names none; without loading torch, so a command can say it at once."""
    key = str(name_or_path)
    choices = f"use one of {', '.join(SHIPPED_MODELS)} or a path to a .pt weights file"
    if not key.strip():
        raise ModelNotFoundError(f"no model given: {choices}")
    shipped = shipped_name(key)
    if shipped is not None:
        path = shipped_weights_path(shipped)
        name = shipped
    else:
        if why := scheme_not_read(key, urls=False):  # as a path: "ftp:/user:pass@host/w.pt" not found
            raise InputNotFoundError(f"weights file not found: {redacted(key)}: {why}")
        path = Path(key).expanduser()
        if path.suffix.lower() == ".toml":
            raise ModelNotFoundError(f"{path} is a model config, which holds no weights: train it (videodeblur "
                                     "train --model-config) or give a .pt weights file")
        check_nameable(path, InputNotFoundError, "weights file not found: {}")  # else exists() raised bare
        if not path.exists():
            if path.suffix or "/" in key or "\\" in key or key.startswith("~"):  # meant as a path, not a name
                raise InputNotFoundError(f"weights file not found: {path}")
            close = difflib.get_close_matches(key.lower(), list(SHIPPED_MODELS), n=1)
            guess = f" (did you mean {close[0]}?)" if close else ""
            raise ModelNotFoundError(f"unknown model {key!r}{guess}: {choices}")
        name = path.stem
    return name, path


def weights_origin(loaded: LoadedModel, given: str | Path, *, warn: Warn | None = None) -> dict[str, Any]:
    """Where a fine-tune's starting weights came from: the name or path ``given``, the file and its
    SHA-256 (a shipped name is re-pointed at new weights once the fine-tune ships), and how that file
    was trained, so the steps and seconds behind a model add up. A metadata file whose config is not
    the weights' (a copied or stale JSON) describes other weights: its record is left out, with a warning."""
    from videodeblur.model.weights import metadata_path, recorded_path

    metadata = loaded.metadata
    if not _describes(metadata, loaded):
        (warn or python_warning)(f"{metadata_path(loaded.path)} does not describe {loaded.path} (its config "
                                 "differs): the training record in it is not carried over")
        metadata = {}
    return {"weights": str(given), "path": recorded_path(loaded.path),  # not this machine's folders
            "sha256": hashlib.sha256(Path(loaded.path).read_bytes()).hexdigest(),
            **{k: metadata.get(k) for k in ("trained_as", "steps", "seconds", "commit", "hardware",
                                             "recipe", "init")}}


def list_models(paths: Sequence[str | Path] = (), *, warn: Warn | None = None) -> list[dict[str, Any]]:
    """One row per shipped model: name, description, config, parameters, size, evaluation figures (on the
    clean evaluation pairs, and on their H.264 copy where it was scored). With ``paths``, one row per
    weights file instead (a run's ``<model>.pt``), with the steps it was trained for; a file that is
    missing or unreadable is its one-line error, not a row: the user named it. A metadata file beside
    one that is damaged or describes other weights goes to ``warn``, saying why the row has no figures."""
    warn = warn or python_warning
    if paths:
        return [_weights_row(load_model(Path(path)), "", warn) for path in paths]
    rows = []
    for name, description in SHIPPED_MODELS.items():
        path = shipped_weights_path(name)
        row: dict[str, Any] = {"name": name, "description": description, "path": str(path),
                               "available": path.is_file()}
        if path.is_file():
            try:
                loaded = load_model(name)
            except VideoDeblurError as err:  # one broken file: list it with why, and list the others
                row.update(available=False, error=str(err))
                rows.append(row)
                continue
            row = _weights_row(loaded, description, warn)
        rows.append(row)
    return rows


def _weights_row(loaded: LoadedModel, description: str, warn: Warn) -> dict[str, Any]:
    """A loaded weights file's row of :func:`list_models`; no steps or figures from a metadata file that
    describes other weights (a JSON copied beside them): they would be shown as these weights' own.
    Either way the row's empty figures are explained: a damaged or foreign JSON was left out in silence."""
    from videodeblur.model.weights import metadata_path, metadata_problem

    metadata = loaded.metadata
    if not _describes(metadata, loaded):
        warn(f"{metadata_path(loaded.path)} describes other weights (its config is not {loaded.path}'s): its steps "
             "and figures are not shown")
        metadata = {}
    elif not metadata and (why := metadata_problem(loaded.path)):
        warn(f"{metadata_path(loaded.path)} cannot be read as metadata ({why}): {loaded.path} is listed without "
             "steps or figures")
    return {"name": loaded.name, "description": description, "path": str(loaded.path), "available": True,
            "config": loaded.network.config.to_dict(), "parameters": loaded.parameters,
            "size_mb": round(loaded.path.stat().st_size / 1e6, 3), "steps": metadata.get("steps"),
            "evaluation": metadata.get("evaluation"), "evaluation_compressed": metadata.get("evaluation_compressed")}


def _describes(metadata: dict[str, Any], loaded: LoadedModel) -> bool:
    """Whether ``metadata`` may be these weights' own: its config, where it gives one, is theirs but for
    the name (a renamed copy, lprn-t6-both shipped as lprn, is the same model)."""
    theirs = metadata.get("config")
    return not isinstance(theirs, dict) or {**theirs, "name": None} == {**loaded.network.config.to_dict(), "name": None}


def default_model_name(device_type: str) -> str:
    """``lprn-rt`` where there is a GPU (the real-time preset), ``lprn-fast`` on CPU (the only one that
    keeps up there)."""
    return DEFAULT_VIDEO_MODEL if device_type == "cuda" else DEFAULT_CPU_MODEL
