"""What a trained weights file records about the run that made it (recipe, steps, time, hardware, the
code's commit and version), and writing those files so an interrupted write leaves nothing half done:
any file a run saves can ship, and says how it was made."""
from __future__ import annotations

import configparser
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any, Sequence

import torch

import videodeblur
from videodeblur.model.lprn import LPRN
from videodeblur.model.weights import read_metadata, save_weights
from videodeblur.train.recipe import TrainRecipe

__all__ = ["run_metadata", "recipe_record", "git_commit", "hardware_description", "save_run_weights",
           "weights_saved_at"]


def run_metadata(recipe: TrainRecipe, step: int, seconds: float, device: torch.device, world: int,
                 commit: str | None, init: dict[str, Any] | None = None,
                 commits: Sequence[str | None] = ()) -> dict[str, Any]:
    """What every saved weights file records about the run that made it, so any of them can ship;
    a fine-tune also records the weights it started from (``init``). ``commit``: the code it ends
    with; ``commits``: every version it trained with, in turn, recorded where a resume changed it."""
    metadata = {"config": recipe.model.to_dict(), "recipe": recipe_record(recipe), "steps": step,
                "seconds": round(seconds, 1), "hardware": hardware_description(device), "world_size": world,
                "commit": commit, "version": videodeblur.__version__, "torch": torch.__version__}
    if len(commits) > 1:
        metadata["commits"] = list(commits)
    if init is not None:
        metadata["init"] = init
    return metadata


def recipe_record(recipe: TrainRecipe) -> dict[str, Any]:
    """The recipe as plain JSON values (paths and other objects as their text), as a checkpoint and
    a weights file's metadata keep it."""
    return json.loads(json.dumps(recipe.to_dict(), default=str))


def git_commit() -> str | None:
    """The commit of the code this run trains with, only when it runs from this project's own git checkout
    (``videodeblur/`` at the top of a work tree whose setup.cfg names videodeblur): for an installed copy,
    git would describe whatever repository it sits in, e.g. the user's own."""
    root = Path(__file__).resolve().parent.parent.parent
    setup = configparser.ConfigParser(interpolation=None)
    try:
        setup.read(root / "setup.cfg", encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError):
        return None
    if not (root / ".git").exists() or setup.get("metadata", "name", fallback=None) != "videodeblur":
        return None
    try:
        # "-dirty" when the work tree has uncommitted changes: the commit alone would not be the code
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=7"], capture_output=True,
                             text=True, timeout=5, cwd=root)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def hardware_description(device: torch.device) -> str:
    """The CPU model and core count, and the GPU on ``device``: what a run's seconds were spent on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = f"{cpu}, {os.cpu_count()} cores"
    if device.type == "cuda":
        text += f", {torch.cuda.get_device_name(device)}"
    return text


def save_run_weights(path: Path, model: LPRN, metadata: dict[str, Any]) -> None:
    """:func:`save_weights`, leaving no half-written ``<name>.pt.tmp`` beside the run's files when a
    Ctrl-C or a write error lands in it."""
    try:
        save_weights(path, model, metadata)
    except BaseException:
        Path(f"{path}.tmp").unlink(missing_ok=True)
        raise


def weights_saved_at(weights: Path, step: int) -> bool:
    """Whether the run's weights file is there with the metadata of ``step`` (a run stopped while
    they were saved has the checkpoint of its last step, and no such file)."""
    return weights.is_file() and read_metadata(weights).get("steps") == step
