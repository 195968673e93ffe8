"""The training checkpoint (``last.pt``, format 3) and the checks a resume passes: everything a run
needs to continue exactly where it stopped, and nothing that would let it continue as a different
run than the one that was started."""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Sequence

import torch
from torch.optim.swa_utils import AveragedModel

from videodeblur.errors import ConfigError, VideoDeblurError, WeightsError
from videodeblur.model.lprn import LPRN
from videodeblur.model.registry import load_model, weights_origin
from videodeblur.model.weights import load_weights, read_metadata, safe_load
from videodeblur.train.recipe import TrainRecipe
from videodeblur.train.run_log import LogWindow
from videodeblur.train.run_record import recipe_record, weights_saved_at

__all__ = ["CHECKPOINT_FORMAT", "ResumedRun", "save_checkpoint", "load_checkpoint", "init_of_resumed_run",
           "check_same_recipe", "check_steps_left", "run_files_in"]

# 2: the checkpoint keeps where a fine-tune started (init_weights, init); 3: the recipe and the log window
CHECKPOINT_FORMAT = 3


@dataclasses.dataclass(frozen=True)
class ResumedRun:
    """What a checkpoint says beyond the tensors; ``knows_init`` is false for format 1, which did not
    keep where a fine-tune started; ``recipe`` and ``log_window`` are None before format 3."""

    step: int
    seconds: float
    knows_init: bool
    init_weights: str | None
    init: dict[str, Any] | None
    recipe: dict[str, Any] | None = None
    log_window: dict[str, float] | None = None
    world: int | None = None  # the processes that trained it (torchrun); None: not kept (before this field)
    cwd: str | None = None  # the folder its recipe's relative data paths meant; None: not kept (before this field)
    commits: tuple[str | None, ...] = ()  # the code it trained with, each version in turn; (): not kept


def save_checkpoint(path: Path, model: LPRN, optimiser: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler, scaler: torch.amp.GradScaler,
                    step: int, seconds: float, recipe: TrainRecipe, ema: AveragedModel | None = None,
                    init: dict[str, Any] | None = None, log_window: dict[str, float] | None = None,
                    world: int = 1, commits: Sequence[str | None] = ()) -> None:
    """Everything a resume needs, including where a fine-tune started (``init_weights`` and its ``init``
    record, as JSON text): a resumed run takes them from here, not from its command line; the recipe
    (JSON text), which a resume must repeat; and the steps since the last log line (``log_window``)."""
    state = {
        "format": CHECKPOINT_FORMAT, "step": step, "seconds": seconds, "config": recipe.model.to_dict(),
        "init_weights": recipe.init_weights, "init": json.dumps(init),
        "recipe": json.dumps(recipe_record(recipe)), "log_window": log_window or LogWindow().state(0.0),
        "world": world, "cwd": os.getcwd(), "commits": json.dumps(list(commits)),
        "model": model.state_dict(), "optimiser": optimiser.state_dict(), "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(), "rng_torch": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    if ema is not None:
        state["ema"] = ema.state_dict()
    tmp = path.with_suffix(".tmp")
    try:
        torch.save(state, tmp)
        tmp.replace(path)
    except BaseException:  # a Ctrl-C or a full disk mid-write: the last checkpoint stays, and no half file
        tmp.unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path, model: LPRN, optimiser: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler, scaler: torch.amp.GradScaler,
                    ema: AveragedModel | None = None) -> ResumedRun:
    """Load ``path`` into the run's objects and the RNG states, and return what else it says; a file
    that is not a checkpoint of this recipe's model is a :class:`WeightsError` that says what it is."""
    try:
        state = safe_load(path)
        if not isinstance(state, dict) or "optimiser" not in state:
            raise _not_a_checkpoint(path)
        if state.get("config") != model.config.to_dict():
            raise WeightsError(f"checkpoint {path} was trained with config {state.get('config')}, "
                               f"not the recipe's {model.config.to_dict()}")
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        if ema is not None:
            if "ema" not in state:
                raise WeightsError(f"checkpoint {path} holds no weight average, but the recipe sets ema_decay")
            ema.load_state_dict(state["ema"])
        torch.set_rng_state(state["rng_torch"])
        if torch.cuda.is_available() and state["rng_cuda"]:
            torch.cuda.set_rng_state_all(state["rng_cuda"])
        knows_init = state.get("format", 1) >= 2
        knows_recipe = state.get("format", 1) >= 3
        return ResumedRun(step=int(state["step"]), seconds=float(state["seconds"]), knows_init=knows_init,
                          init_weights=state["init_weights"] if knows_init else None,
                          init=json.loads(state["init"]) if knows_init else None,
                          recipe=json.loads(state["recipe"]) if knows_recipe else None,
                          log_window=dict(state["log_window"]) if knows_recipe else None,
                          world=int(state["world"]) if "world" in state else None,
                          cwd=str(state["cwd"]) if "cwd" in state else None,
                          commits=tuple(json.loads(state["commits"])) if "commits" in state else ())
    except WeightsError:
        raise
    except FileNotFoundError as err:
        raise WeightsError(f"checkpoint not found: {path}") from err
    except Exception as err:
        raise _not_a_checkpoint(path) from err


def init_of_resumed_run(path: Path, recipe: TrainRecipe,
                        resumed: ResumedRun) -> tuple[TrainRecipe, dict[str, Any] | None]:
    """The recipe with the checkpoint's ``init_weights``, and the checkpoint's ``init`` record: the
    weights come from the checkpoint, so an ``init_weights`` (``--init``) that names other weights
    cannot apply and is refused rather than recorded."""
    if not resumed.knows_init:  # a format-1 checkpoint: the command line's word is all there is
        given = recipe.init_weights
        return recipe, weights_origin(load_model(given), given) if given else None
    if recipe.init_weights is not None and recipe.init_weights != resumed.init_weights:
        started = (f"started from {resumed.init_weights}" if resumed.init_weights
                   else "started from the identity, not from trained weights")
        raise ConfigError(f"init_weights {recipe.init_weights} (--init) cannot apply when resuming {path}: the "
                          f"weights come from the checkpoint, whose run {started}; leave out --init")
    return dataclasses.replace(recipe, init_weights=resumed.init_weights), resumed.init


# [train] fields a resumed run may change: how long, where, how fast, how often it logs, saves and is
# scored. Every other field changes what the remaining steps do (the learning rate, for one, would not
# even apply: the scheduler resumes with the first run's), so the run would be neither the one its
# weights' JSON describes nor the one that was started.
_RESUMABLE_CHANGES = frozenset({"steps", "out_dir", "init_weights", "threads", "workers", "log_every",
                                "checkpoint_every", "eval_pairs", "val_pairs", "val_every", "val_limit"})


def check_same_recipe(path: Path, recipe: TrainRecipe, resumed: ResumedRun) -> None:
    """Refuse to resume ``path`` with a recipe that trains differently from the one it started with
    (a checkpoint before format 3 did not keep it, and is taken at its word), or into an ``out_dir`` that
    holds another run: its last.pt and weights would be replaced and its log.csv mixed with this run's."""
    _check_out_dir_holds_no_other_run(path, Path(recipe.out_dir))
    if resumed.recipe is None:
        return
    now = _flat(_data_paths_resolved(recipe_record(recipe), os.getcwd()))
    then = _flat(_data_paths_resolved(resumed.recipe, resumed.cwd))
    for key in [*now, *(k for k in then if k not in now)]:
        if key.split(".")[0] in _RESUMABLE_CHANGES or now.get(key) == then.get(key):
            continue
        field = key if key.split(".")[0] in ("data", "model") else f"train.{key}"
        raise ConfigError(f"cannot resume {path} with {field} {_show(now.get(key))} (the run started with "
                          f"{_show(then.get(key))}): a resumed run trains as it started, changing only "
                          f"{', '.join(sorted(_RESUMABLE_CHANGES - {'init_weights'}))}; for other settings, start "
                          "a new run from its weights with --init")


def run_files_in(out_dir: Path, *also: str) -> list[str]:
    """The files that make ``out_dir`` a run's folder (its checkpoint and log), then those of ``also``,
    that it holds: a new run, or a resume moved there, would replace or append to them."""
    return [name for name in ("last.pt", "log.csv", *also) if (out_dir / name).exists()]


def _check_out_dir_holds_no_other_run(path: Path, out_dir: Path) -> None:
    """A resume may move a run to another folder (``--out-dir``), but not into one that holds a run
    other than the checkpoint's own (the folder ``path`` is in)."""
    held = run_files_in(out_dir)
    if held and out_dir.resolve() != path.resolve().parent:
        raise ConfigError(f"cannot resume {path} into {out_dir}: it holds another run ({', '.join(held)}), whose "
                          f"checkpoint and log this one would replace; give --out-dir {path.parent} (the "
                          "checkpoint's own folder) or a folder without a run")


def check_same_world(path: Path, resumed: ResumedRun, world: int) -> None:
    """Refuse to resume with another number of processes: a step's batch is each process's batch
    times the processes, so the data drawn and the effective batch would change mid-run."""
    if resumed.world is not None and resumed.world != world:
        raise ConfigError(f"cannot resume {path} with {world} process{'es' if world != 1 else ''} (the run "
                          f"started with {resumed.world}): each step trains on the batch times the processes; "
                          f"resume it with torchrun --nproc-per-node {resumed.world}"
                          + ("" if resumed.world > 1 else " or without torchrun"))


def check_steps_left(resume: str | Path, recipe: TrainRecipe, step: int) -> None:
    """Refuse a resume at ``step`` when no step would run: the saved weights and their final_loss must
    stay. A run stopped after its last step, before its weights were saved or before its evaluation
    was recorded in them, is not refused: the resume is what finishes it (nothing else could)."""
    weights = Path(recipe.out_dir) / f"{recipe.model.name}.pt"
    finished = weights_saved_at(weights, step) and (
        not (recipe.eval_pairs and Path(recipe.eval_pairs).is_dir())  # as the run evaluates
        or read_metadata(weights).get("evaluation") is not None)
    if step > recipe.steps or (step == recipe.steps and finished):
        raise ConfigError(f"{resume} is already at step {step} of {recipe.steps}: nothing to train; to go "
                          f"further, raise the total with --steps (e.g. --steps {step + recipe.steps})")


def _flat(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"data": {"mix": {"crop": 24}}}`` as ``{"data.mix.crop": 24}``."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _data_paths_resolved(record: dict[str, Any], cwd: str | None) -> dict[str, Any]:
    """``record`` with its data paths as the files they name, so that a resume from another folder, or
    with ``runs/pairs/`` for ``runs/pairs``, is the same recipe; ``cwd`` None (a checkpoint that did not
    keep it) only normalises the text."""
    def named(path: Any) -> Any:
        if not isinstance(path, str):
            return path
        return os.path.normpath(os.path.join(cwd, path) if cwd else path)

    data = dict(record.get("data") or {})
    for key in ("images", "pairs"):  # exclude_images are name patterns, not paths
        if isinstance(data.get(key), list):
            data[key] = [named(p) for p in data[key]]
    data["cache_dir"] = named(data.get("cache_dir"))
    if isinstance(data.get("videos"), list):
        data["videos"] = [{**v, "path": named(v.get("path"))} if isinstance(v, dict) else v for v in data["videos"]]
    return {**record, "data": data}


def _show(value: Any) -> str:
    return "(none)" if value is None else json.dumps(value)


def _not_a_checkpoint(path: Path) -> WeightsError:
    """The error for a file ``--resume`` cannot continue; a valid weights file (what a run saves to be
    used, not continued) is named as such, since fine-tuning from it may be what was meant."""
    try:
        load_weights(path)
    except VideoDeblurError:
        return WeightsError(f"cannot resume from {path}: corrupt or not a videodeblur checkpoint")
    return WeightsError(f"cannot resume from {path}: it is a weights file, not a training checkpoint (a run's "
                        "last.pt); to fine-tune from these weights, give them with --init instead of --resume")
