"""``videodeblur train``, ``videodeblur eval`` and ``videodeblur models``: thin over videodeblur.train/model."""
from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from videodeblur.cli._common import warn
from videodeblur.paths import check_not_empty, check_pairs_folder

if TYPE_CHECKING:
    from videodeblur.train.recipe import TrainRecipe

__all__ = ["train", "evaluate", "models"]


@click.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False),
              help="Training recipe TOML (configs/train/*.toml).")
@click.option("--resume", type=click.Path(dir_okay=False), default=None,
              help="Checkpoint to resume from (last.pt); the run keeps the --init it started with.")
@click.option("--steps", type=int, default=None, help="Override the recipe's number of steps.")
@click.option("--out-dir", type=click.Path(file_okay=False), default=None, help="Override the recipe's output folder.")
@click.option("--model-config", type=click.Path(dir_okay=False), default=None,
              help="Model TOML replacing the recipe's model (e.g. one row of an ablation).")
@click.option("--seed", type=int, default=None,
              help="Override the recipe's seed (weights init and data), e.g. to measure seed-to-seed spread.")
@click.option("--init", "init_weights", default=None, metavar="NAME|PATH",
              help="Start from trained weights (a shipped model or a .pt file with the recipe model's architecture) "
                   "instead of the identity: fine-tuning, e.g. on your own GoPro pairs.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Change any recipe field, e.g. --set train.frequency_weight=0.05 --set data.mix.p_sharp=0.3 "
                   "(VALUE in TOML syntax; repeatable).")
def train(config_path: str, resume: str | None, steps: int | None, out_dir: str | None,
          model_config: str | None, seed: int | None, init_weights: str | None,
          settings: tuple[str, ...]) -> None:
    """Train a model from a recipe; checkpoints resume exactly. Works under torchrun (DDP)."""
    from videodeblur.config import load_model_config
    from videodeblur.errors import VideoDeblurError, WeightsError
    from videodeblur.model.registry import weights_file

    # an unset variable: "" is read as ".", which ran a recipe's run into the current folder (--out-dir) or
    # silently from the identity (--init)
    for option, value, give in (("--config", config_path, "a recipe .toml file"),
                                ("--resume", resume, "a run's last.pt"),
                                ("--out-dir", out_dir, "a folder for the run"),
                                ("--model-config", model_config, "a model .toml file"),
                                ("--init", init_weights, "a shipped model's name or a .pt weights file")):
        if value is not None:
            check_not_empty([value], option, f"give {give}")
    from videodeblur.train.recipe import load_recipe  # no torch: a recipe's mistakes are said before it loads

    def read_recipe() -> TrainRecipe:
        """The recipe, and the files it and the options name checked (a typo'd --resume or --init was said
        only once torch had loaded); the trainer reads them."""
        recipe = load_recipe(config_path, settings, resuming=resume is not None, steps=steps, out_dir=out_dir,
                             seed=seed, init_weights=init_weights)
        if model_config is not None:
            recipe = dataclasses.replace(recipe, model=load_model_config(model_config))
        if resume is not None and not Path(resume).exists():
            raise WeightsError(f"checkpoint not found: {Path(resume)}")  # as train.checkpoint says it, for the library
        if recipe.init_weights and resume is None:  # (a resumed run's weights come from its checkpoint)
            weights_file(recipe.init_weights)
        return recipe

    torchrun = "WORLD_SIZE" in os.environ
    if not torchrun:  # one process: read before torch loads. torchrun's ranks say a recipe error once, in
        # alike_on_every_rank (rank 0 failing first had torchrun stop the others while they loaded, each saying so)
        recipe = read_recipe()
    from videodeblur.train import train as run_training
    from videodeblur.train.distributed import alike_on_every_rank, said_by_rank_0

    try:
        if torchrun:
            with alike_on_every_rank():  # every torchrun rank reads the same recipe
                recipe = read_recipe()
        result = run_training(recipe, resume=resume, on_progress=_print_progress, warn=warn)
    except VideoDeblurError as err:
        if said_by_rank_0(err):  # under torchrun: the same line from every rank said nothing more
            _leave_it_to_rank_0()
        raise
    if result.rank != 0:  # under torchrun every process gets here; rank 0 saved, and it alone reports
        return
    click.echo(f"saved {result.weights} after {_counted(result.steps, 'step')} in {result.seconds:.0f} s "
               f"(loss {result.final_loss:.4f})")
    if result.evaluation:
        click.echo(json.dumps(result.evaluation))


# how long a torchrun rank whose error rank 0 also meets waits for torchrun to end it (it does once rank 0
# has said the error and exited); past it, the rank says the error itself
SAID_BY_RANK_0_WAIT_S = 30.0


def _leave_it_to_rank_0() -> None:
    """Wait, silent, for torchrun to end this process: leaving at once made torchrun end rank 0 (SIGTERM),
    perhaps before it said the error. Ended by torchrun's SIGTERM (or Ctrl-C) as by default: no line."""
    import signal
    import time

    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, signal.SIG_DFL)
    time.sleep(SAID_BY_RANK_0_WAIT_S)


def _print_progress(record: dict[str, Any]) -> None:
    done, total = record["step"], record["total_steps"]
    rate = record["steps_per_s"]
    eta = (total - done) / rate if rate > 0 else float("inf")
    width = 24
    filled = int(width * done / total)
    line = (f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} loss {record['loss']:.4f} "
            f"{rate:.2f} it/s ETA {eta / 60:.1f} min")
    end = "\r" if sys.stderr.isatty() and done < total else "\n"
    click.echo(line, err=True, nl=False)
    click.echo(end, err=True, nl=False)


@click.command("eval")
@click.option("--pairs", required=True, type=click.Path(), help="Folder of pairs: <scene>/blur/*.png + <scene>/sharp/*.png.")
@click.option("--model", "model", default="lprn", show_default=True, help="Shipped model name or .pt path.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Evaluate only the first N pairs.")
@click.option("--per-pair", is_flag=True, help="Also list every pair.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--record", is_flag=True,
              help="Store the result as 'evaluation' in the weights file's JSON metadata (the figure "
                   "`videodeblur models` shows), e.g. for a run's -best.pt before it ships. Needs --model "
                   "as a .pt path and every pair (no --limit).")
def evaluate(pairs: str, model: str, limit: int | None, per_pair: bool, as_json: bool, record: bool) -> None:
    """PSNR and SSIM of a model on blurred/sharp pairs, and the gain over the blurred input."""
    check_not_empty([pairs], "--pairs", "give the folder that holds <scene>/blur/*.png and <scene>/sharp/*.png")
    check_pairs_folder(pairs)  # said before torch loads (the pairs' reader says it too, for the library's callers)

    from videodeblur.model import load_model, shipped_name
    from videodeblur.model.registry import check_recordable

    if record:
        check_recordable(model, limit)
    loaded = load_model(model)  # a --model that names nothing is said before torch loads (then it does, here)
    from videodeblur.model.weights import metadata_to_update, record_evaluation
    from videodeblur.train import evaluate_pairs
    from videodeblur.train.evaluate import PSNR_CAP_DB

    if record:
        metadata_to_update(loaded.path)  # a metadata file that --record would wipe, said before scoring
    report = evaluate_pairs(loaded.network, Path(pairs), limit=limit)
    for unpaired, side, other in ((report.unpaired, "blurred", "sharp"), (report.unpaired_sharp, "sharp", "blurred")):
        if unpaired:  # evaluated all the same: the pairs that are there still measure the model
            count = len(unpaired)
            frames = f"1 {side} frame has" if count == 1 else f"{count} {side} frames have"
            warn(f"{frames} no {other} partner under {pairs} and {'is' if count == 1 else 'are'} "
                 f"left out (first: {unpaired[0]})")
    identical = [score.name for score in report.scores if score.psnr_input >= PSNR_CAP_DB]
    if identical:  # its "gain" is the network's change from a perfect input: tens of dB down, in the mean
        count = len(identical)
        warn(f"{count} pair{'s' if count > 1 else ''} under {pairs} {'have' if count > 1 else 'has'} a blurred image "
             f"identical to its sharp one (first: {identical[0]}): input PSNR counts as {PSNR_CAP_DB:g} dB, which "
             "pulls the mean gain down; leave such pairs out")
    # the file's own record names the model as the trainer's does; what is printed names what was given:
    # a run's runs/x/lprn-fast.pt and the shipped lprn-fast are both named lprn-fast
    summary = report.summary(loaded.name)
    shown = loaded.name if shipped_name(model) is not None else model
    if record:
        record_evaluation(loaded.path, summary, pairs, warn=warn)
    if as_json:
        if per_pair:
            summary["per_pair"] = report.per_pair()
        # allow_nan=False: NaN or Infinity is not JSON; every figure is finite (PSNR capped), and a
        # regression should fail here, not hand a reader a file it cannot parse
        click.echo(json.dumps({**summary, "model": shown}, allow_nan=False))
        return
    if per_pair:
        click.echo(f"{'pair':40s} {'psnr_in':>8s} {'psnr':>8s} {'ssim_in':>8s} {'ssim':>8s}")
        for row in report.per_pair():  # the capped figures, as --json gives them
            click.echo(f"{row['name']:40s} {row['psnr_input']:8.2f} {row['psnr']:8.2f} {row['ssim_input']:8.4f} "
                       f"{row['ssim']:8.4f}")
    scenes = report.by_scene()
    if len(scenes) > 1:
        for name, scene in scenes.items():
            m = scene.means()  # unrounded, like the pair lines: each figure is rounded once, when printed
            click.echo(f"scene {name}: {_counted(m['pairs'], 'pair')}, PSNR {m['psnr']:.2f} dB "
                       f"(input {m['psnr_input']:.2f}, gain {m['gain_db']:+.2f} dB)")
    m = report.means()
    click.echo(f"model {shown}: {_counted(m['pairs'], 'pair')}, PSNR {m['psnr']:.2f} dB "
               f"(input {m['psnr_input']:.2f}, gain {m['gain_db']:+.2f} dB), SSIM {m['ssim']:.4f} "
               f"(input {m['ssim_input']:.4f}); sharp frames pass through at {m['psnr_sharp_through']:.2f} dB")


def _counted(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"  # "1 pairs" read as a slip


@click.command()
@click.argument("weights", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def models(weights: tuple[str, ...], as_json: bool) -> None:
    """List the shipped models: config, parameters, size and evaluation figure. Given WEIGHTS (.pt
    files, e.g. a run's runs/NAME/lprn-fast.pt), list those instead."""
    from videodeblur.model import list_models

    check_not_empty(weights, "a WEIGHTS argument", "give a .pt file, or none to list the shipped models")
    rows = list_models(weights, warn=warn)
    if as_json:
        click.echo(json.dumps(rows))
        return
    # a run saves under its model's name (lprn-fast.pt): its path, not that name, tells files apart
    label = "path" if weights else "name"
    width = max([10, *(len(str(row[label])) for row in rows)])
    click.echo(f"{label:{width}s} {'params':>8s} {'MB':>6s} {'gain dB':>8s} {'H.264 dB':>8s}  config")
    for row in rows:
        if not row["available"]:
            click.echo(f"{row['name']:{width}s} ({row['error'] if 'error' in row else 'weights missing: ' + row['path']})")
            continue
        cfg = row["config"]
        gain, coded = (f"{ev['gain_db']:+.2f}" if "gain_db" in ev else "n/a"
                       for ev in (row.get("evaluation") or {}, row.get("evaluation_compressed") or {}))
        desc = (f"C={cfg['channels']} blocks={cfg['blocks']} T={cfg['stages']} attention={cfg['attention']} "
                f"unshuffle=x{cfg['unshuffle']}")
        click.echo(f"{row[label]:{width}s} {row['parameters']:8d} {row['size_mb']:6.2f} {gain:>8s} {coded:>8s}  {desc}"
                   + (f" steps={row['steps']}" if weights and row.get("steps") is not None else ""))

