"""The training loop: reads top to bottom, resumes exactly, and runs unchanged under torchrun (DDP).

AdamW with linear warm-up then cosine decay; L1 or MSE (+ optional frequency term); AMP (fp16) on
CUDA; optionally an exponential moving average of the weights (``ema_decay``), which is then what is
validated, evaluated and saved. Checkpoints hold model, EMA, optimiser, scheduler, AMP scaler, step,
RNG state and the weights a fine-tune started from; data is a pure function
of (seed, index) and the sampler is indexed by step, so a resumed run draws what the uninterrupted
run would have drawn. Under DDP the logged loss is the mean over ranks: the loss of the whole batch.
"""
from __future__ import annotations

import configparser
import csv
import dataclasses
import json
import math
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, Dataset

import videodeblur
from videodeblur.errors import ConfigError, InputNotFoundError, UnreadableInputError, VideoDeblurError, WeightsError
from videodeblur.model.lprn import LPRN
from videodeblur.model.registry import LoadedModel, load_model, weights_origin
from videodeblur.model.weights import load_weights, read_metadata, save_weights
from videodeblur.notices import Warn, python_warning
from videodeblur.train.data import (FolderPairs, StepSampler, SynthesisMix, SynthesisedPairs, read_images,
                                    read_video_scenes, shake_margin, warp_margin)
from videodeblur.train.evaluate import combined_summary, evaluate_pairs
from videodeblur.train.losses import deblur_loss
from videodeblur.train.recipe import DataSpec, TrainRecipe

__all__ = ["TrainResult", "train", "build_dataset", "hardware_description"]

ProgressCallback = Callable[[dict[str, Any]], None]

CHECKPOINT_FORMAT = 2  # 2: the checkpoint keeps where a fine-tune started (init_weights, init)


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
        step, seconds_before = resumed.step, resumed.seconds
        if step >= recipe.steps:  # no step would run: the saved weights and their final_loss must stay
            raise ConfigError(f"{resume} is already at step {step} of {recipe.steps}: nothing to train; to go "
                              f"further, raise the total with --steps (e.g. --steps {step + recipe.steps})")
    kept = ema.module if ema is not None else model  # the weights that are validated, evaluated and saved
    trained = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model

    dataset = build_dataset(recipe.data, seed=recipe.seed)
    sampler = StepSampler(batch=recipe.batch, start_step=step, total_steps=recipe.steps, rank=rank, world=world)
    loader = DataLoader(dataset, batch_size=recipe.batch, sampler=sampler, num_workers=recipe.workers,
                        pin_memory=device.type == "cuda", persistent_workers=False)

    if rank == 0 and recipe.eval_pairs and not Path(recipe.eval_pairs).is_dir():
        warn(f"eval_pairs {recipe.eval_pairs} is not a folder here ({Path(recipe.eval_pairs).resolve()}): "
             "training goes on, but no evaluation will be recorded in the weights' metadata")
    log_path = out_dir / "log.csv"
    started = time.perf_counter()
    window_start, window_steps, loss_sum = started, 0, 0.0
    last_loss = float("nan")
    model.train()
    try:
        for blurred, sharp in loader:
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
            scaler.step(optimiser)
            scaler.update()
            scheduler.step()
            if ema is not None:
                ema.update_parameters(model)
            step += 1
            window_steps += 1
            loss_sum += loss.item()  # sync point: one per step is fine at these model sizes

            if rank == 0 and (step % recipe.checkpoint_every == 0 or step == recipe.steps):
                _save_checkpoint(out_dir / "last.pt", model, optimiser, scheduler, scaler, step,
                                 seconds_before + time.perf_counter() - started, recipe, ema, init)
            if rank == 0 and recipe.val_every and step % recipe.val_every == 0:
                _validate(kept, recipe, device, _run_metadata(
                    recipe, step, seconds_before + time.perf_counter() - started, device, world, commit, init))
            if step % recipe.log_every == 0 or step == recipe.steps:
                now = time.perf_counter()
                last_loss = _mean_over_ranks(loss_sum / window_steps, world, device)
                record = {"step": step, "loss": round(last_loss, 6), "lr": scheduler.get_last_lr()[0],
                          "seconds": round(seconds_before + now - started, 2),
                          "steps_per_s": round(window_steps / (now - window_start), 3),
                          "total_steps": recipe.steps}
                if rank == 0:
                    _append_csv(log_path, record)
                    if on_progress:
                        on_progress(record)
                window_start, window_steps, loss_sum = now, 0, 0.0
    except KeyboardInterrupt:
        # Ctrl-C loses nothing: the step reached is saved and `--resume` continues from it.
        if rank == 0:
            _save_checkpoint(out_dir / "last.pt", model, optimiser, scheduler, scaler, step,
                             seconds_before + time.perf_counter() - started, recipe, ema, init)
        raise

    seconds = seconds_before + time.perf_counter() - started
    weights = out_dir / f"{recipe.model.name}.pt"
    evaluation = None
    if rank == 0:
        kept.eval()
        if recipe.eval_pairs and Path(recipe.eval_pairs).is_dir():
            evaluation = evaluate_pairs(kept, recipe.eval_pairs, device=device).summary(recipe.model.name)
        metadata = {**_run_metadata(recipe, step, seconds, device, world, commit, init),
                    "final_loss": last_loss, "evaluation": evaluation}
        save_weights(weights, kept.cpu(), metadata)
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
        save_weights(best_path, snapshot, {**run, "validation": score, "val_pairs": recipe.val_pairs})


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
                     init: dict[str, Any] | None = None) -> None:
    """Everything a resume needs, including where a fine-tune started (``init_weights`` and its ``init``
    record, as JSON text): a resumed run takes them from here, not from its command line."""
    state = {
        "format": CHECKPOINT_FORMAT, "step": step, "seconds": seconds, "config": recipe.model.to_dict(),
        "init_weights": recipe.init_weights, "init": json.dumps(init),
        "model": model.state_dict(), "optimiser": optimiser.state_dict(), "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(), "rng_torch": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    if ema is not None:
        state["ema"] = ema.state_dict()
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


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
        return _Resumed(step=int(state["step"]), seconds=float(state["seconds"]), knows_init=knows_init,
                        init_weights=state["init_weights"] if knows_init else None,
                        init=json.loads(state["init"]) if knows_init else None)
    except WeightsError:
        raise
    except FileNotFoundError as err:
        raise WeightsError(f"checkpoint not found: {path}") from err
    except Exception as err:
        raise _not_a_checkpoint(path) from err


@dataclasses.dataclass(frozen=True)
class _Resumed:
    """What a checkpoint says beyond the tensors; ``knows_init`` is false for format 1, which did not
    keep where a fine-tune started."""

    step: int
    seconds: float
    knows_init: bool
    init_weights: str | None
    init: dict[str, Any] | None


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
