"""The training loop: reads top to bottom, resumes exactly, and runs unchanged under torchrun (DDP).

AdamW with linear warm-up then cosine decay; L1 or MSE (+ optional frequency term); AMP (fp16) on
CUDA; optionally an exponential moving average of the weights (``ema_decay``), which is then what is
validated, evaluated and saved. Checkpoints hold model, EMA, optimiser, scheduler, AMP scaler, step,
RNG state, the weights a fine-tune started from, the recipe and the steps since the last log line;
data is a pure function of (seed, index) and the sampler is indexed by step, so a resumed run draws
what the uninterrupted run would have drawn and logs the same loss curve. A Ctrl-C or SIGTERM that
arrives while a step updates the weights is held until the step is done, so a checkpoint never holds
half a step. Under DDP the logged loss is the mean over ranks: the loss of the whole batch.

The loop's parts live beside it: ``checkpoint`` (format and resume checks), ``run_log`` (CSV logs),
``run_record`` (what weights files record), ``validation``, ``training_set``, ``distributed`` and
``interrupts``.
"""
from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader

from videodeblur.errors import ConfigError, DivergedError, OutputError, WeightsError
from videodeblur.model.lprn import LPRN
from videodeblur.model.registry import LoadedModel, load_model, weights_origin
from videodeblur.model.weights import write_metadata
from videodeblur.notices import Warn, python_warning
from videodeblur.paths import make_folder, new_folders_removed_if_empty
from videodeblur.pipeline.engine import most_threads
from videodeblur.train.checkpoint import (check_same_recipe, check_same_world, check_steps_left, init_of_resumed_run, load_checkpoint,
                                          run_files_in, save_checkpoint)
from videodeblur.train.data import StepSampler
from videodeblur.train.distributed import (PeerLostError, alike_on_every_rank, end_distributed, init_distributed,
                                           late_peer, local_device, lost_peer, mark_alike, mean_over_ranks,
                                           wait_for_rank_0, waiting_group)
from videodeblur.train.evaluate import evaluate_pairs
from videodeblur.train.interrupts import interrupts_held, stop_loader_workers, stops_left_to_the_run
from videodeblur.train.losses import deblur_loss
from videodeblur.train.recipe import TrainRecipe
from videodeblur.train.run_log import LogWindow, append_csv, forget_after, has_row, logged_loss
from videodeblur.train.run_record import git_commit, run_metadata, save_run_weights
from videodeblur.train.training_set import build_dataset
from videodeblur.train.validation import check_scored_sets, require_val_sets, validate

__all__ = ["TrainResult", "train"]

ProgressCallback = Callable[[dict[str, Any]], None]


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """``final_loss``: the mean over every rank's share of the last logged steps; ``rank``: this
    process's rank under torchrun, so that only rank 0 (the one that saved) reports."""

    weights: Path
    steps: int
    seconds: float
    final_loss: float
    evaluation: dict[str, Any] | None
    rank: int = 0


def _check_no_run_in(out_dir: Path, model_name: str) -> None:
    """A new run into a folder that holds one would append to its logs and keep its best weights as
    this run's ``-best.pt``, which the new run only replaces if it beats them; and one into a folder of
    weights alone (``--out-dir videodeblur/weights``) wrote over them at its end: refused (ConfigError)."""
    held = run_files_in(out_dir, f"{model_name}.pt", f"{model_name}-best.pt")
    if "last.pt" in held:
        raise ConfigError(f"--out-dir {out_dir} already holds a run ({', '.join(held)}): --resume "
                          f"{out_dir / 'last.pt'} goes on with it; give another --out-dir for a new run")
    if held:
        raise ConfigError(f"--out-dir {out_dir} already holds {', '.join(held)}, which this run would write over: "
                          "give another --out-dir (a folder of its own for the run)")


@new_folders_removed_if_empty()  # a run that fails before its first log line (bad data, --init) leaves no folder
def train(recipe: TrainRecipe, *, resume: str | Path | None = None,
          on_progress: ProgressCallback | None = None, warn: Warn | None = None) -> TrainResult:
    """Train ``recipe.model`` on ``recipe.data``; return the saved weights path and summary. ``resume``
    continues a checkpoint (``last.pt``), which also says which weights the run started from (read the
    recipe with ``load_recipe(..., resuming=True)``: its own ``init_weights`` then gives way to it)."""
    warn = warn or python_warning
    # what goes wrong before the first step, every rank meets alike (the recipe, the checkpoint, the data
    # listing): rank 0 says it, the others need not say it again (said_by_rank_0)
    with alike_on_every_rank():
        require_val_sets(recipe)
        rank, world = init_distributed()
        device = local_device()
        for name in ("threads", "workers"):
            if getattr(recipe, name) > most_threads():
                raise ConfigError(f"train.{name} must be at most {most_threads()} (four per core here), "
                                  f"got {getattr(recipe, name)}")
        if recipe.threads > 0:
            torch.set_num_threads(recipe.threads)
        torch.manual_seed(recipe.seed)
        out_dir = Path(recipe.out_dir)
        if resume is None:
            _check_no_run_in(out_dir, recipe.model.name)
        if rank == 0:
            if out_dir.exists() and not out_dir.is_dir():
                raise OutputError(f"the run's folder {out_dir} is a file: give train.out_dir (or --out-dir) a folder")
            make_folder(out_dir)  # a path under a file, no permission: said, not a traceback
        commit = git_commit()  # the code this run trains with, read now: HEAD may move before the run ends

        model = LPRN(recipe.model)
        init = None
        if recipe.init_weights and resume is None:  # a resumed run's checkpoint holds the weights and the record
            start = load_model(recipe.init_weights)
            _load_initial_weights(model, start)
            # where a fine-tune started, read now: a shipped name may point at other weights by the time it ends
            init = weights_origin(start, recipe.init_weights, warn=warn)
        model = model.to(device)
        optimiser = torch.optim.AdamW(model.parameters(), lr=recipe.lr, betas=(0.9, 0.99),
                                      weight_decay=recipe.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, _warmup_cosine(recipe))
        use_amp = device.type == "cuda"
        scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
        ema = (AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(recipe.ema_decay), use_buffers=True)
               if recipe.ema_decay > 0 else None)
        step, seconds_before, resumed_window = 0, 0.0, None
        commits = [commit]
        if resume is not None:
            resumed = load_checkpoint(Path(resume), model, optimiser, scheduler, scaler, ema)
            recipe, init = init_of_resumed_run(Path(resume), recipe, resumed)
            check_same_recipe(Path(resume), recipe, resumed)
            check_same_world(Path(resume), resumed, world)
            step, seconds_before, resumed_window = resumed.step, resumed.seconds, resumed.log_window
            if resumed.commits:  # resumed with other code: the run was trained with both, and says so
                commits = [*resumed.commits, *([commit] if resumed.commits[-1] != commit else [])]
            check_steps_left(resume, recipe, step)
        kept = ema.module if ema is not None else model  # the weights that are validated, evaluated and saved
        trained = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model

        dataset = build_dataset(recipe.data, seed=recipe.seed, warn=warn if rank == 0 else None)
        sampler = StepSampler(batch=recipe.batch, start_step=step, total_steps=recipe.steps, rank=rank, world=world)
        loader = DataLoader(dataset, batch_size=recipe.batch, sampler=sampler, num_workers=recipe.workers,
                            pin_memory=device.type == "cuda", persistent_workers=False,
                            worker_init_fn=stops_left_to_the_run if recipe.workers else None)

        check_scored_sets(recipe, warn if rank == 0 else lambda message: None)  # every rank fails alike
    log_path = out_dir / "log.csv"
    if rank == 0 and resume is not None:  # steps a killed run logged after its last checkpoint are run again
        for logged in (log_path, out_dir / "val.csv"):
            forget_after(logged, step)
    started = time.perf_counter()
    window = LogWindow.resumed(resumed_window, started)
    last_loss = logged_loss(log_path, step) if step >= recipe.steps else float("nan")

    kept_at = [step if resume is not None else None]  # the step last.pt holds (None: none yet)

    def keep_checkpoint() -> None:  # the step reached, as --resume continues it
        kept_at[0] = step
        save_checkpoint(out_dir / "last.pt", model, optimiser, scheduler, scaler, step,
                        seconds_before + time.perf_counter() - started, recipe, ema, init,
                        log_window=window.state(time.perf_counter()), world=world, commits=commits)

    # the other ranks wait for rank 0's validation here, not in the next step's all-reduce (see waiting_group)
    waiting = waiting_group(world) if recipe.val_every else None
    if (rank == 0 and resume is not None and recipe.val_every and step and step % recipe.val_every == 0
            and not has_row(out_dir / "val.csv", step)):
        # a stop while this step was validated (after its checkpoint): validated now, as a run on would have
        validate(kept, recipe, device,
                 run_metadata(recipe, step, seconds_before, device, world, commit, init, commits))
    model.train()
    batches = iter(loader)
    try:
        if resume is not None and recipe.val_every:
            wait_for_rank_0(waiting, world)
        for blurred, sharp in batches:
            blurred = blurred.to(device, non_blocking=True)
            sharp = sharp.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                output = trained(blurred)
            loss = deblur_loss(output.float(), sharp, pixel=recipe.pixel_loss,
                               frequency_weight=recipe.frequency_weight, blurred=blurred,
                               static_weight=recipe.static_weight, static_threshold=recipe.static_threshold)
            # sync point (and under DDP an all-reduce): one per step is fine at these model sizes;
            # every rank then holds the whole batch's loss, so rank 0's checkpoint keeps the window's
            loss_value = mean_over_ranks(loss.item(), world, device)
            optimiser.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimiser)
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
            # a diverged run stops before its weights turn to NaN (AMP's scaler skips an fp16 overflow itself)
            if not math.isfinite(loss_value) or (not use_amp and not torch.isfinite(grad_norm)):
                kept = (f"{out_dir / 'last.pt'} still holds step {kept_at[0]}, from before" if kept_at[0] is not None
                        else "no checkpoint was kept")
                # every rank sees the same mean loss and averaged gradients; rank 0's word is the one that
                # knows which checkpoint was kept
                raise mark_alike(DivergedError(
                    f"training diverged at step {step + 1}: the loss is {loss_value:g} (gradient norm "
                    f"{float(grad_norm):g}); lower train.lr (now {recipe.lr:g}) and run again; {kept}"))
            record = None
            with interrupts_held():  # what a checkpoint holds moves one whole step, or not at all
                scaler.step(optimiser)
                scaler.update()
                scheduler.step()
                if ema is not None:
                    ema.update_parameters(model)
                step += 1
                window.add(loss_value)
                if step % recipe.log_every == 0 or step == recipe.steps:
                    now = time.perf_counter()
                    last_loss = window.mean()
                    record = {"step": step, "loss": round(last_loss, 6), "lr": scheduler.get_last_lr()[0],
                              "seconds": round(seconds_before + now - started, 2),
                              "steps_per_s": round(window.steps / window.elapsed(now), 3),
                              "total_steps": recipe.steps}
                    if rank == 0:
                        append_csv(log_path, record)
                    window = LogWindow(start=now)
            if rank == 0 and record is not None and on_progress:
                on_progress(record)
            if rank == 0 and (step % recipe.checkpoint_every == 0 or step == recipe.steps):
                keep_checkpoint()
            if recipe.val_every and step % recipe.val_every == 0:
                if rank == 0:
                    validate(kept, recipe, device, run_metadata(
                        recipe, step, seconds_before + time.perf_counter() - started, device, world, commit, init,
                        commits))
                wait_for_rank_0(waiting, world)  # as long as it takes: no collective's timeout cuts it short
    except (KeyboardInterrupt, RuntimeError) as stop:
        # Ctrl-C loses nothing: the step reached is saved and `--resume` continues from it. Another
        # Ctrl-C or a SIGTERM meanwhile waits: it cut the save short (the checkpoint of steps before
        # was kept) and, in the loader workers' shutdown, printed a traceback. So does a torchrun
        # rank whose collective lost another rank's process (that one's error says why; this one's
        # was gloo's "Connection closed by peer ... GLHF!" as an internal error): its step is whole,
        # as no collective runs inside the update
        # (a collective that timed out waiting for a rank still there, stuck or far slower, was an internal error)
        peer_lost, peer_late = lost_peer(stop, world), late_peer(stop, world)
        if isinstance(stop, RuntimeError) and not (peer_lost or peer_late):
            raise
        if rank == 0:
            with interrupts_held():
                keep_checkpoint()
        saved = f"; {out_dir / 'last.pt'} holds step {step} for --resume" if rank == 0 else ""
        if peer_lost:
            raise PeerLostError(f"rank {rank}: another process of this run stopped at step {step + 1} (its error "
                                f"is above), so this one stops too{saved}") from None
        if peer_late:
            raise PeerLostError(f"rank {rank}: another process of this run did not reach step {step + 1} within the "
                                "collectives' timeout: it is stuck or far slower than this one (its data, its disk), "
                                f"so the run stops{saved}") from None
        raise
    finally:  # any way out (a stop once its step is kept, a diverged run, a failed validation): the workers are
        # stopped now, as the error's traceback may hold the iterator past the interpreter's exit (see
        # stop_loader_workers)
        with interrupts_held():
            stop_loader_workers(batches)

    seconds = seconds_before + time.perf_counter() - started
    # the ranks part now, not after rank 0's evaluation: they waited for it in a barrier that times out
    # (gloo 30 min, NCCL 10), and torchrun then killed rank 0 in the middle of a long evaluation
    end_distributed(world)
    weights = out_dir / f"{recipe.model.name}.pt"
    evaluation = None
    if rank == 0:
        kept.eval()
        metadata = {**run_metadata(recipe, step, seconds, device, world, commit, init, commits),
                    "final_loss": last_loss, "evaluation": None}
        save_run_weights(weights, kept, metadata)  # first: a pair the evaluation cannot read must not cost the run
        if recipe.eval_pairs and Path(recipe.eval_pairs).is_dir():
            evaluation = evaluate_pairs(kept, recipe.eval_pairs, device=device).summary(recipe.model.name)
            write_metadata(weights, {**metadata, "evaluation": evaluation})
    return TrainResult(weights=weights, steps=step, seconds=seconds, final_loss=last_loss, evaluation=evaluation,
                       rank=rank)


def _warmup_cosine(recipe: TrainRecipe) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < recipe.warmup_steps:
            return (step + 1) / recipe.warmup_steps
        progress = (step - recipe.warmup_steps) / max(1, recipe.steps - recipe.warmup_steps)
        cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        return recipe.min_lr_ratio + (1 - recipe.min_lr_ratio) * cosine
    return factor


def _load_initial_weights(model: LPRN, loaded: LoadedModel) -> None:
    """Start from trained weights (fine-tuning, e.g. a shipped model on your own GoPro pairs) instead of
    the identity. The file's architecture must be the recipe's, or the weights would not mean the same
    thing; its name may differ (the run saves under the recipe's name)."""
    theirs, ours = _architecture(loaded.network.config.to_dict()), _architecture(model.config.to_dict())
    if theirs != ours:
        differ = ", ".join(f"{k} {theirs.get(k)} vs {ours.get(k)}" for k in sorted(ours) if theirs.get(k) != ours.get(k))
        raise WeightsError(f"init_weights {loaded.path} does not fit the recipe's model ({differ})")
    model.load_state_dict(loaded.network.state_dict())


def _architecture(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k != "name"}
