"""The training loop: reads top to bottom, resumes exactly, and runs unchanged under torchrun (DDP).

AdamW with linear warm-up then cosine decay; L1 or MSE (+ optional frequency term); AMP (fp16) on
CUDA; optionally an exponential moving average of the weights (``ema_decay``), which is then what is
validated, evaluated and saved. Checkpoints hold model, EMA, optimiser, scheduler, AMP scaler, step,
RNG state, the weights a fine-tune started from, the recipe and the steps since the last log line;
data is a pure function of (seed, index) and the sampler is indexed by step, so a resumed run draws
what the uninterrupted run would have drawn and logs the same loss curve. A Ctrl-C or SIGTERM that
arrives while a step updates the weights is held until the step is done, so a checkpoint never holds
half a step. Under DDP the logged loss is the mean over ranks: the loss of the whole batch.
"""
from __future__ import annotations

import configparser
import contextlib
import csv
import dataclasses
import json
import math
import os
import platform
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.distributed as dist
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, Dataset

import videodeblur
from videodeblur.errors import ConfigError, InputNotFoundError, UnreadableInputError, VideoDeblurError, WeightsError
from videodeblur.model.lprn import LPRN
from videodeblur.model.registry import LoadedModel, load_model, weights_origin
from videodeblur.model.weights import load_weights, read_metadata, save_weights, write_metadata
from videodeblur.notices import Warn, python_warning
from videodeblur.train.data import (FolderPairs, StepSampler, SynthesisMix, SynthesisedPairs, read_images,
                                    read_video_scenes, shake_margin, warp_margin)
from videodeblur.train.evaluate import check_pairs, combined_summary, evaluate_pairs, unpaired_blurred
from videodeblur.train.losses import deblur_loss
from videodeblur.train.recipe import DataSpec, TrainRecipe

__all__ = ["TrainResult", "train", "build_dataset", "hardware_description"]

ProgressCallback = Callable[[dict[str, Any]], None]

# 2: the checkpoint keeps where a fine-tune started (init_weights, init); 3: the recipe and the log window
CHECKPOINT_FORMAT = 3


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


def train(recipe: TrainRecipe, *, resume: str | Path | None = None,
          on_progress: ProgressCallback | None = None, warn: Warn | None = None) -> TrainResult:
    """Train ``recipe.model`` on ``recipe.data``; return the saved weights path and summary. ``resume``
    continues a checkpoint (``last.pt``), which also says which weights the run started from."""
    warn = warn or python_warning
    missing = [folder for folder in recipe.val_sets if not Path(folder).is_dir()] if recipe.val_every else []
    if missing:  # fail now, not at the first validation an hour into the run
        raise InputNotFoundError(f"validation pairs not found: {', '.join(missing)} (make them with "
                                 "videodeblur.train.write_averaged_pairs or write_compressed_pairs, "
                                 "as docs/MODEL.md shows)")
    rank, world = _init_distributed()
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu")
    if recipe.threads > 0:
        torch.set_num_threads(recipe.threads)
    torch.manual_seed(recipe.seed)
    out_dir = Path(recipe.out_dir)
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
    commit = _git_commit()  # the code this run trains with, read now: HEAD may move before the run ends

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
    step, seconds_before = 0, 0.0
    if resume is not None:
        resumed = _load_checkpoint(Path(resume), model, optimiser, scheduler, scaler, ema)
        recipe, init = _init_of_resumed_run(Path(resume), recipe, resumed)
        _check_same_recipe(Path(resume), recipe, resumed)
        step, seconds_before = resumed.step, resumed.seconds
        # no step would run: the saved weights and their final_loss must stay; but a run stopped
        # after its last step, before its weights were saved, is finished here (nothing else could)
        if step > recipe.steps or (step == recipe.steps and _saved_at(out_dir / f"{recipe.model.name}.pt", step)):
            raise ConfigError(f"{resume} is already at step {step} of {recipe.steps}: nothing to train; to go "
                              f"further, raise the total with --steps (e.g. --steps {step + recipe.steps})")
    kept = ema.module if ema is not None else model  # the weights that are validated, evaluated and saved
    trained = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model

    dataset = build_dataset(recipe.data, seed=recipe.seed)
    sampler = StepSampler(batch=recipe.batch, start_step=step, total_steps=recipe.steps, rank=rank, world=world)
    loader = DataLoader(dataset, batch_size=recipe.batch, sampler=sampler, num_workers=recipe.workers,
                        pin_memory=device.type == "cuda", persistent_workers=False,
                        worker_init_fn=_stops_left_to_the_run if recipe.workers else None)

    if rank == 0 and recipe.eval_pairs and not Path(recipe.eval_pairs).is_dir():
        warn(f"eval_pairs {recipe.eval_pairs} is not a folder here ({Path(recipe.eval_pairs).resolve()}): "
             "training goes on, but no evaluation will be recorded in the weights' metadata")
    _check_scored_sets(recipe, warn if rank == 0 else lambda message: None)  # every rank fails alike
    log_path = out_dir / "log.csv"
    if rank == 0 and resume is not None:  # steps a killed run logged after its last checkpoint are run again
        for logged in (log_path, out_dir / "val.csv"):
            _forget_after(logged, step)
    started = time.perf_counter()
    window = _LogWindow.resumed(resumed.log_window if resume is not None else None, started)
    last_loss = _logged_loss(log_path, step) if step >= recipe.steps else float("nan")
    model.train()
    batches = iter(loader)
    try:
        for blurred, sharp in batches:
            blurred = blurred.to(device, non_blocking=True)
            sharp = sharp.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                output = trained(blurred)
            loss = deblur_loss(output.float(), sharp, pixel=recipe.pixel_loss,
                               frequency_weight=recipe.frequency_weight, blurred=blurred,
                               static_weight=recipe.static_weight, static_threshold=recipe.static_threshold)
            optimiser.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimiser)
            torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
            record = None
            with _interrupts_held():  # what a checkpoint holds moves one whole step, or not at all
                scaler.step(optimiser)
                scaler.update()
                scheduler.step()
                if ema is not None:
                    ema.update_parameters(model)
                step += 1
                # sync point (and under DDP an all-reduce): one per step is fine at these model sizes;
                # every rank then holds the whole batch's loss, so rank 0's checkpoint keeps the window's
                window.add(_mean_over_ranks(loss.item(), world, device))
                if step % recipe.log_every == 0 or step == recipe.steps:
                    now = time.perf_counter()
                    last_loss = window.mean()
                    record = {"step": step, "loss": round(last_loss, 6), "lr": scheduler.get_last_lr()[0],
                              "seconds": round(seconds_before + now - started, 2),
                              "steps_per_s": round(window.steps / window.elapsed(now), 3),
                              "total_steps": recipe.steps}
                    if rank == 0:
                        _append_csv(log_path, record)
                    window = _LogWindow(start=now)
            if rank == 0 and record is not None and on_progress:
                on_progress(record)
            if rank == 0 and (step % recipe.checkpoint_every == 0 or step == recipe.steps):
                _save_checkpoint(out_dir / "last.pt", model, optimiser, scheduler, scaler, step,
                                 seconds_before + time.perf_counter() - started, recipe, ema, init,
                                 log_window=window.state(time.perf_counter()))
            if rank == 0 and recipe.val_every and step % recipe.val_every == 0:
                _validate(kept, recipe, device, _run_metadata(
                    recipe, step, seconds_before + time.perf_counter() - started, device, world, commit, init))
    except KeyboardInterrupt:
        # Ctrl-C loses nothing: the step reached is saved and `--resume` continues from it. Another
        # Ctrl-C or a SIGTERM meanwhile waits: it cut the save short (the checkpoint of steps before
        # was kept) and, in the loader workers' shutdown, printed a traceback.
        with _interrupts_held():
            if rank == 0:
                _save_checkpoint(out_dir / "last.pt", model, optimiser, scheduler, scaler, step,
                                 seconds_before + time.perf_counter() - started, recipe, ema, init,
                                 log_window=window.state(time.perf_counter()))
            del batches  # its workers are stopped now
        raise

    seconds = seconds_before + time.perf_counter() - started
    weights = out_dir / f"{recipe.model.name}.pt"
    evaluation = None
    if rank == 0:
        kept.eval()
        metadata = {**_run_metadata(recipe, step, seconds, device, world, commit, init),
                    "final_loss": last_loss, "evaluation": None}
        _save_weights(weights, kept, metadata)  # first: a pair the evaluation cannot read must not cost the run
        if recipe.eval_pairs and Path(recipe.eval_pairs).is_dir():
            evaluation = evaluate_pairs(kept, recipe.eval_pairs, device=device).summary(recipe.model.name)
            write_metadata(weights, {**metadata, "evaluation": evaluation})
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return TrainResult(weights=weights, steps=step, seconds=seconds, final_loss=last_loss, evaluation=evaluation,
                       rank=rank)


def build_dataset(spec: DataSpec, *, seed: int = 0) -> Dataset:
    """Synthesised pairs from the videos/images, plus real folder pairs (cropped) if any are given."""
    parts: list[Dataset] = []
    if spec.videos or spec.images:
        scenes = [s for v in spec.videos
                  for s in read_video_scenes(v.path, v.cuts, exclude=v.exclude, max_frames=v.max_frames,
                                             step=v.step)]
        images = read_images(spec.images, exclude=spec.exclude_images)
        _check_crop(spec.mix, [image.shape[:2] for image in images] + [s.frames.shape[1:3] for s in scenes])
        parts.append(SynthesisedPairs(scenes, images, spec.mix, seed=seed, cache_dir=spec.cache_dir))
    for root in spec.pairs:
        real = FolderPairs(root, crop=spec.mix.crop, seed=seed)
        parts.append(_Repeated(real, 1 << 30))
    return parts[0] if len(parts) == 1 else _Interleaved(parts)


def _check_crop(mix: SynthesisMix, sizes: list[tuple[int, int]]) -> None:
    """Fail before training, naming ``data.mix.crop``, when the smallest image or video frame (``sizes``:
    height, width) cannot hold the area a pair is cut from: the crop, plus a margin for the blur in
    shaken and moving-camera pairs (``shake_margin``, ``warp_margin``, as the pairs are cut). Otherwise a
    random step fails later with a size the user never set."""
    if not sizes:
        return
    needs = [(0, "")]
    if mix.p_average + mix.p_warp + mix.p_sharp < 1 - 1e-9:  # the rest is camera shake
        kernel = max(mix.kernel_sizes)
        needs.append((shake_margin(kernel), f"camera-shake kernels up to {kernel} px"))
    if mix.p_warp > 0:
        needs.append((warp_margin(mix, max(mix.exposures)), "moving-camera pairs"))
    margin, why = max(needs)
    height, width = min(sizes, key=min)
    side = mix.crop + 2 * margin
    if min(height, width) < side:
        reason = f" (the crop plus {margin} px each side for {why})" if margin else ""
        raise UnreadableInputError(
            f"data.mix.crop {mix.crop} needs training images and video frames of at least {side}x{side} px"
            f"{reason}, but the smallest is {width}x{height}: lower data.mix.crop or use larger images")


class _Repeated(Dataset):
    def __init__(self, base: Dataset, length: int) -> None:
        self.base, self.length = base, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):  # noqa: ANN204
        return self.base[index]


class _Interleaved(Dataset):
    """Item ``i`` comes from source ``i % len(sources)``: equal shares of synthetic and real pairs."""

    def __init__(self, sources: list[Dataset]) -> None:
        self.sources = sources

    def __len__(self) -> int:
        return 1 << 30

    def __getitem__(self, index: int):  # noqa: ANN204
        return self.sources[index % len(self.sources)][index // len(self.sources)]


def hardware_description(device: torch.device) -> str:
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


def _warmup_cosine(recipe: TrainRecipe) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < recipe.warmup_steps:
            return (step + 1) / recipe.warmup_steps
        progress = (step - recipe.warmup_steps) / max(1, recipe.steps - recipe.warmup_steps)
        cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        return recipe.min_lr_ratio + (1 - recipe.min_lr_ratio) * cosine
    return factor



def _mean_over_ranks(value: float, world: int, device: torch.device) -> float:
    """The mean of ``value`` over the ``world`` processes: each rank's loss is over its own share of the
    batch, so only the mean describes the whole batch. Every rank must call it at the same step."""
    if world <= 1:
        return value
    total = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(total)  # sync point: each rank waits here for the others' losses
    return float(total.item()) / world


@dataclasses.dataclass
class _LogWindow:
    """The steps since the last log line: how many, their loss sum, and their time (``seconds`` spent
    before this process took them over, from a checkpoint; ``start``: when this process did, on
    ``time.perf_counter``). A checkpoint keeps it, so the first line after a resume averages the same
    steps as the uninterrupted run's line does."""

    steps: int = 0
    loss_sum: float = 0.0
    seconds: float = 0.0
    start: float = 0.0

    @classmethod
    def resumed(cls, state: dict[str, float] | None, now: float) -> "_LogWindow":
        if not state:
            return cls(start=now)
        return cls(steps=int(state["steps"]), loss_sum=float(state["loss_sum"]), seconds=float(state["seconds"]),
                   start=now)

    def add(self, loss: float) -> None:
        self.steps += 1
        self.loss_sum += loss

    def mean(self) -> float:
        return self.loss_sum / self.steps

    def elapsed(self, now: float) -> float:
        return self.seconds + now - self.start

    def state(self, now: float) -> dict[str, float]:
        return {"steps": self.steps, "loss_sum": self.loss_sum, "seconds": self.elapsed(now) if self.steps else 0.0}


# The signals the CLI turns into KeyboardInterrupt (Ctrl-C; SIGTERM and SIGHUP when it runs)
_STOPPING_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


@contextlib.contextmanager
def _interrupts_held() -> Iterator[None]:
    """Hold a stopping signal that arrives inside the block and deliver it (to its own handler, which
    raises KeyboardInterrupt) when the block is done. The block is a step's update of the weights,
    optimiser, scheduler, weight average, step count and log: a KeyboardInterrupt raised in the middle
    of AdamW's update would be saved as a checkpoint of the step before, holding part of the next, and
    the resumed run would take that step twice. Only the main thread can set handlers; elsewhere, and
    for a signal with no Python handler (ignored, or the default), nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[tuple[int, Any]] = []
    handlers = {signum: handler for signum in _STOPPING_SIGNALS if callable(handler := signal.getsignal(signum))}
    for signum in handlers:
        signal.signal(signum, lambda number, frame: held.append((number, frame)))
    try:
        yield
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    if held:  # after the block completed: an exception of its own goes up unchanged
        number, frame = held[0]
        handlers[number](number, frame)


def _init_distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group(backend)
    return dist.get_rank(), dist.get_world_size()


def _check_scored_sets(recipe: TrainRecipe, warn: Warn) -> None:
    """Before the first step: the pairs the run will be scored on (validation, evaluation) must all be
    usable, or the run would stop at its first validation or after its last step; and blurred training
    frames without a sharp partner, which training leaves out, are said, as ``eval`` says them."""
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


def _run_metadata(recipe: TrainRecipe, step: int, seconds: float, device: torch.device, world: int,
                  commit: str | None, init: dict[str, Any] | None = None) -> dict[str, Any]:
    """What every saved weights file records about the run that made it, so any of them can ship;
    a fine-tune also records the weights it started from (``init``)."""
    metadata = {"config": recipe.model.to_dict(), "recipe": _jsonable(recipe.to_dict()), "steps": step,
                "seconds": round(seconds, 1), "hardware": hardware_description(device), "world_size": world,
                "commit": commit, "version": videodeblur.__version__, "torch": torch.__version__}
    if init is not None:
        metadata["init"] = init
    return metadata



def _validate(model: LPRN, recipe: TrainRecipe, device: torch.device, run: dict[str, Any]) -> None:
    """Score the model on ``recipe.val_pairs`` (a validation set, not the evaluation set), append it to
    ``val.csv`` and keep the best weights so far as ``<name>-best.pt`` with the run's metadata (``run``):
    the last step of a long run is not always its best. The best score lives in that file's metadata,
    so it survives a resume. With several sets the score is their mean, so e.g. a clean set and its
    H.264 copy weigh equally."""
    out_dir = Path(recipe.out_dir)
    score = combined_summary([
        evaluate_pairs(model, folder, device=device, limit=recipe.val_limit).summary(recipe.model.name)
        for folder in recipe.val_sets], recipe.val_sets)
    _append_csv(out_dir / "val.csv", {"step": run["steps"], "psnr": score["psnr"], "gain_db": score["gain_db"],
                                      "psnr_sharp_through": score["psnr_sharp_through"]})
    best_path = out_dir / f"{recipe.model.name}-best.pt"
    best = read_metadata(best_path).get("validation", {}).get("psnr", -math.inf) if best_path.exists() else -math.inf
    if score["psnr"] > best:
        snapshot = LPRN(recipe.model)
        snapshot.load_state_dict({k: v.detach().cpu() for k, v in model.state_dict().items()})
        _save_weights(best_path, snapshot, {**run, "validation": score, "val_pairs": recipe.val_pairs})


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


def _save_checkpoint(path: Path, model: LPRN, optimiser: torch.optim.Optimizer,
                     scheduler: torch.optim.lr_scheduler.LRScheduler, scaler: torch.amp.GradScaler,
                     step: int, seconds: float, recipe: TrainRecipe, ema: AveragedModel | None = None,
                     init: dict[str, Any] | None = None, log_window: dict[str, float] | None = None) -> None:
    """Everything a resume needs, including where a fine-tune started (``init_weights`` and its ``init``
    record, as JSON text): a resumed run takes them from here, not from its command line; the recipe
    (JSON text), which a resume must repeat; and the steps since the last log line (``log_window``)."""
    state = {
        "format": CHECKPOINT_FORMAT, "step": step, "seconds": seconds, "config": recipe.model.to_dict(),
        "init_weights": recipe.init_weights, "init": json.dumps(init),
        "recipe": json.dumps(_jsonable(recipe.to_dict())), "log_window": log_window or _LogWindow().state(0.0),
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


def _stops_left_to_the_run(worker_id: int) -> None:
    """In a DataLoader worker: Ctrl-C, SIGTERM and SIGHUP are ignored, for the run (the main process)
    to act on; it stops the workers itself. Sent to the whole process group (a terminal's Ctrl-C,
    systemd, ``kill -TERM -PGID``, a closed terminal), SIGTERM killed them first, and the run printed
    "DataLoader worker ... is killed by signal" as a traceback and left their temporary folders."""
    for signum in _STOPPING_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def _save_weights(path: Path, model: LPRN, metadata: dict[str, Any]) -> None:
    """:func:`save_weights`, leaving no half-written ``<name>.pt.tmp`` beside the run's files when a
    Ctrl-C or a write error lands in it."""
    try:
        save_weights(path, model, metadata)
    except BaseException:
        Path(f"{path}.tmp").unlink(missing_ok=True)
        raise


def _saved_at(weights: Path, step: int) -> bool:
    """Whether the run's weights file is there with the metadata of ``step`` (a run stopped while
    they were saved has the checkpoint of its last step, and no such file)."""
    return weights.is_file() and read_metadata(weights).get("steps") == step


def _forget_after(path: Path, step: int) -> None:
    """Drop the rows of a run's CSV log after ``step``: a killed run logged steps after its last
    checkpoint, which its resumed run logs again."""
    if not path.is_file():
        return
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    kept = [row for row in rows if int(row["step"]) <= step]
    if len(kept) == len(rows) or not rows:
        return
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(kept)
    tmp.replace(path)


def _logged_loss(path: Path, step: int) -> float:
    """The loss ``log.csv`` holds for ``step`` (NaN when it has none): the final loss of a run whose
    last step was taken before a resume that only saves its weights."""
    if path.is_file():
        with path.open(newline="") as fh:
            for row in csv.DictReader(fh):
                if int(row["step"]) == step:
                    return float(row["loss"])
    return float("nan")


def _load_checkpoint(path: Path, model: LPRN, optimiser: torch.optim.Optimizer,
                     scheduler: torch.optim.lr_scheduler.LRScheduler, scaler: torch.amp.GradScaler,
                     ema: AveragedModel | None = None) -> _Resumed:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
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
        return _Resumed(step=int(state["step"]), seconds=float(state["seconds"]), knows_init=knows_init,
                        init_weights=state["init_weights"] if knows_init else None,
                        init=json.loads(state["init"]) if knows_init else None,
                        recipe=json.loads(state["recipe"]) if knows_recipe else None,
                        log_window=dict(state["log_window"]) if knows_recipe else None)
    except WeightsError:
        raise
    except FileNotFoundError as err:
        raise WeightsError(f"checkpoint not found: {path}") from err
    except Exception as err:
        raise _not_a_checkpoint(path) from err


@dataclasses.dataclass(frozen=True)
class _Resumed:
    """What a checkpoint says beyond the tensors; ``knows_init`` is false for format 1, which did not
    keep where a fine-tune started; ``recipe`` and ``log_window`` are None before format 3."""

    step: int
    seconds: float
    knows_init: bool
    init_weights: str | None
    init: dict[str, Any] | None
    recipe: dict[str, Any] | None = None
    log_window: dict[str, float] | None = None


# [train] fields a resumed run may change: how long, where, how fast, how often it logs, saves and is
# scored. Every other field changes what the remaining steps do (the learning rate, for one, would not
# even apply: the scheduler resumes with the first run's), so the run would be neither the one its
# weights' JSON describes nor the one that was started.
_RESUMABLE_CHANGES = frozenset({"steps", "out_dir", "init_weights", "threads", "workers", "log_every",
                                "checkpoint_every", "eval_pairs", "val_pairs", "val_every", "val_limit"})


def _check_same_recipe(path: Path, recipe: TrainRecipe, resumed: _Resumed) -> None:
    """Refuse to resume ``path`` with a recipe that trains differently from the one it started with
    (a checkpoint before format 3 did not keep it, and is taken at its word)."""
    if resumed.recipe is None:
        return
    now, then = _flat(_jsonable(recipe.to_dict())), _flat(resumed.recipe)
    for key in [*now, *(k for k in then if k not in now)]:
        if key.split(".")[0] in _RESUMABLE_CHANGES or now.get(key) == then.get(key):
            continue
        field = key if key.split(".")[0] in ("data", "model") else f"train.{key}"
        raise ConfigError(f"cannot resume {path} with {field} {_show(now.get(key))} (the run started with "
                          f"{_show(then.get(key))}): a resumed run trains as it started, changing only "
                          f"{', '.join(sorted(_RESUMABLE_CHANGES - {'init_weights'}))}; for other settings, start "
                          "a new run from its weights with --init")


def _flat(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"data": {"mix": {"crop": 24}}}`` as ``{"data.mix.crop": 24}``."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _show(value: Any) -> str:
    return "(none)" if value is None else json.dumps(value)


def _init_of_resumed_run(path: Path, recipe: TrainRecipe,
                         resumed: _Resumed) -> tuple[TrainRecipe, dict[str, Any] | None]:
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


def _not_a_checkpoint(path: Path) -> WeightsError:
    """The error for a file ``--resume`` cannot continue; a valid weights file (what a run saves to be
    used, not continued) is named as such, since fine-tuning from it may be what was meant."""
    try:
        load_weights(path)
    except VideoDeblurError:
        return WeightsError(f"cannot resume from {path}: corrupt or not a videodeblur checkpoint")
    return WeightsError(f"cannot resume from {path}: it is a weights file, not a training checkpoint (a run's "
                        "last.pt); to fine-tune from these weights, give them with --init instead of --resume")


def _append_csv(path: Path, record: dict[str, Any]) -> None:
    new = not path.exists()
    with path.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(record))
        if new:
            writer.writeheader()
        writer.writerow(record)


def _git_commit() -> str | None:
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


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
