"""Scoring a model while it trains: the pairs it will be scored on are checked before the first step,
and every ``val_every`` steps it is scored on its validation sets, logged to ``val.csv`` and kept as
``<name>-best.pt`` when it is the best so far, since the last step of a long run is not always its best."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from videodeblur.errors import InputNotFoundError
from videodeblur.model.lprn import LPRN
from videodeblur.model.weights import read_metadata
from videodeblur.notices import Warn
from videodeblur.train.evaluate import check_pairs, combined_summary, evaluate_pairs, unpaired_blurred
from videodeblur.train.recipe import TrainRecipe
from videodeblur.train.run_log import append_csv
from videodeblur.train.run_record import save_run_weights

__all__ = ["require_val_sets", "check_scored_sets", "validate"]


def require_val_sets(recipe: TrainRecipe) -> None:
    """Fail now, not at the first validation an hour into the run, when a validation folder is missing.
    Unlike a missing ``eval_pairs`` (a warning: ``eval --record`` adds its figure after the run), a run
    without its validation set cannot do what it was set to: keep its best weights."""
    missing = [folder for folder in recipe.val_sets if not Path(folder).is_dir()] if recipe.val_every else []
    if missing:
        raise InputNotFoundError(
            f"validation pairs not found: {', '.join(missing)}: every {recipe.val_every} steps the run scores its "
            f"weights on them and keeps the best as {recipe.model.name}-best.pt, which cannot be redone after the "
            f"run (a missing eval_pairs only warns: `eval --record` adds its figure later); make them first: "
            f"{_how_to_make(missing[0])}; or train without validation: --set train.val_every=0")


_H264_COPY = "_h264crf23"


def _how_to_make(folder: str) -> str:
    """The command docs/MODEL.md gives for the shipped recipes' validation sets, else where it shows how."""
    name = Path(folder).name
    if name == "val_bikes000":
        return ("python -c \"from videodeblur.train import write_averaged_pairs as w; w('../shared/data/video/"
                f"bikes.mp4', '{folder}', first=0, stop=30, exposures=(13, 17), scene='bikes000')\" "
                "(docs/MODEL.md, 'Validation set for these runs')")
    if name.endswith(_H264_COPY):
        source = folder[:-len(_H264_COPY)]
        return (f"python -c \"from videodeblur.train import write_compressed_pairs as c; c('{source}', '{folder}')\" "
                "(an H.264 copy of the clean set, which comes first)")
    return ("<scene>/blur/*.png with <scene>/sharp/*.png pairs, e.g. with videodeblur.train.write_averaged_pairs "
            "as docs/MODEL.md shows")


def check_scored_sets(recipe: TrainRecipe, warn: Warn) -> None:
    """Before the first step: the pairs the run will be scored on (validation, evaluation) must all be
    usable, or the run would stop at its first validation or after its last step; an ``eval_pairs``
    that is not a folder here is said (the run goes on, unevaluated); and blurred training frames
    without a sharp partner, which training leaves out, are said, as ``eval`` says them."""
    if recipe.eval_pairs and not Path(recipe.eval_pairs).is_dir():
        warn(f"eval_pairs {recipe.eval_pairs} is not a folder here ({Path(recipe.eval_pairs).resolve()}): "
             "training goes on, but no evaluation will be recorded in the weights' metadata (`videodeblur eval "
             "--pairs DIR --model WEIGHTS.pt --record` adds it after the run)")
    for folder in (*(recipe.val_sets if recipe.val_every else ()), recipe.eval_pairs):
        if folder and Path(folder).is_dir():
            check_pairs(folder, limit=recipe.val_limit if folder != recipe.eval_pairs else None)
    for root in recipe.data.pairs:
        unpaired = unpaired_blurred(root)
        if unpaired:
            count = len(unpaired)
            frames = "1 blurred frame has" if count == 1 else f"{count} blurred frames have"
            warn(f"{frames} no sharp partner under {root} and {'is' if count == 1 else 'are'} left out of training "
                 f"(first: {unpaired[0].relative_to(root)})")


def validate(model: LPRN, recipe: TrainRecipe, device: torch.device, run: dict[str, Any]) -> None:
    """Score the model on ``recipe.val_pairs`` (a validation set, not the evaluation set), append it to
    ``val.csv`` and keep the best weights so far as ``<name>-best.pt`` with the run's metadata (``run``):
    the last step of a long run is not always its best. The best score lives in that file's metadata,
    so it survives a resume. With several sets the score is their mean, so e.g. a clean set and its
    H.264 copy weigh equally."""
    out_dir = Path(recipe.out_dir)
    score = combined_summary([
        evaluate_pairs(model, folder, device=device, limit=recipe.val_limit).summary(recipe.model.name)
        for folder in recipe.val_sets], recipe.val_sets)
    append_csv(out_dir / "val.csv", {"step": run["steps"], "psnr": score["psnr"], "gain_db": score["gain_db"],
                                     "psnr_sharp_through": score["psnr_sharp_through"]})
    best_path = out_dir / f"{recipe.model.name}-best.pt"
    best = read_metadata(best_path).get("validation", {}).get("psnr", -math.inf) if best_path.exists() else -math.inf
    if score["psnr"] > best:
        snapshot = LPRN(recipe.model)
        snapshot.load_state_dict({k: v.detach().cpu() for k, v in model.state_dict().items()})
        save_run_weights(best_path, snapshot, {**run, "validation": score, "val_pairs": recipe.val_pairs})
