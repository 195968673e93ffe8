"""The few places where a run under torchrun (DDP) differs from a single process: joining the process
group, this process's device, reducing a value over the ranks and leaving together. Without
``WORLD_SIZE`` (a plain run) every one of them is a no-op, so the loop reads the same either way."""
from __future__ import annotations

import contextlib
import datetime
import os
from typing import Iterator

import torch
import torch.distributed as dist

from videodeblur.errors import ConfigError, VideoDeblurError

__all__ = ["PeerLostError", "init_distributed", "local_device", "mean_over_ranks", "end_distributed", "lost_peer", "late_peer",
           "waiting_group", "wait_for_rank_0", "alike_on_every_rank", "mark_alike",
           "said_by_rank_0"]

# how long the other ranks wait while rank 0 validates: a large val set outlasts every collective's own
# timeout (gloo 30 min, NCCL 10), and a rank that dies is seen at once (its connection closes), not by this
RANK_0_ALONE_TIMEOUT = datetime.timedelta(days=7)

# what gloo's RuntimeError says when another rank's process ended (NCCL raises torch.distributed.DistError)
_PEER_GONE = ("closed by peer", "reset by peer", "remote worker crash")


class PeerLostError(VideoDeblurError, RuntimeError):
    """Another process of a torchrun run stopped, so this one cannot go on: its own error is the one to
    read. Here, not in videodeblur.errors: only a run under torchrun meets it."""


def init_distributed() -> tuple[int, int]:
    """Join torchrun's process group (NCCL on CUDA, gloo on CPU) and return (rank, world size);
    (0, 1) for a plain run."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    missing = [name for name in ("RANK", "MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
    if not dist.is_initialized() and missing:  # torch said "internal error: ValueError: ... RANK expected"
        raise ConfigError(f"WORLD_SIZE={world} is set but {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} "
                          f"not: start the run with torchrun (torchrun --nproc-per-node {world} -m videodeblur train "
                          "...), or unset WORLD_SIZE for one process")
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group(backend)
    return dist.get_rank(), dist.get_world_size()


def local_device() -> torch.device:
    """This process's GPU (torchrun's ``LOCAL_RANK``), or the CPU where there is no CUDA."""
    return torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu")


def mean_over_ranks(value: float, world: int, device: torch.device) -> float:
    """The mean of ``value`` over the ``world`` processes: each rank's loss is over its own share of the
    batch, so only the mean describes the whole batch. Every rank must call it at the same step."""
    if world <= 1:
        return value
    total = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(total)  # sync point: each rank waits here for the others' losses
    return float(total.item()) / world


def end_distributed(world: int) -> None:
    """Wait for every rank to finish training and leave the group; rank 0 then saves and evaluates
    alone (torchrun waits for it), as no collective's timeout may cut a long evaluation short."""
    if world > 1:
        try:
            dist.barrier()
        except RuntimeError as err:  # a rank failed after its last step (e.g. rank 0 saving it)
            if not lost_peer(err, world):
                raise
            raise PeerLostError(f"rank {dist.get_rank()}: another process of this run stopped after the last "
                                "step (its error is above), so this one stops too") from None
        dist.destroy_process_group()


def waiting_group(world: int) -> object | None:
    """A group (gloo, on the CPU, also beside NCCL) whose barrier waits RANK_0_ALONE_TIMEOUT: where the
    other ranks wait for rank 0's validation. Every rank calls it at the same point (None for one process)."""
    return dist.new_group(backend="gloo", timeout=RANK_0_ALONE_TIMEOUT) if world > 1 else None


def wait_for_rank_0(group: object | None, world: int) -> None:
    """Every rank meets here after rank 0 worked alone (validated): the others would otherwise wait in
    the next step's all-reduce, whose timeout (gloo 30 min, NCCL 10) a long validation outlasts. A lost
    peer raises as in any collective (lost_peer tells)."""
    if world > 1:
        dist.barrier(group=group)


def lost_peer(error: BaseException, world: int) -> bool:
    """Whether ``error`` is a collective (all-reduce, DDP's gradient sync, a barrier) failing because
    another rank's process ended: gloo raises a plain RuntimeError that says so."""
    if world <= 1 or not isinstance(error, RuntimeError) or isinstance(error, VideoDeblurError):
        return False
    return isinstance(error, dist.DistError) or any(text in str(error).lower() for text in _PEER_GONE)


def late_peer(error: BaseException, world: int) -> bool:
    """Whether ``error`` is a collective that waited its whole timeout (gloo's 30 min by default) for
    another rank that is still there but never came: stuck (a hung disk or network read) or far slower.
    gloo says "Timed out waiting ...ms for recv operation"; torchrun then ends the late rank."""
    if world <= 1 or not isinstance(error, RuntimeError) or isinstance(error, VideoDeblurError):
        return False
    return "timed out" in str(error).lower()


@contextlib.contextmanager
def alike_on_every_rank() -> Iterator[None]:
    """Errors raised inside come from what every rank reads alike (the recipe, the checkpoint, the data's
    listing): raised on any process but its node's first (torchrun's LOCAL_RANK 0, rank 0 on one machine)
    they are marked, so that the command says them once, not once per rank (said_by_rank_0). By node, not
    by rank: another machine may read other files, and its error is then its own."""
    try:
        yield
    except VideoDeblurError as err:
        mark_alike(err)
        raise


def mark_alike(error: VideoDeblurError) -> VideoDeblurError:
    """Mark ``error`` as one every rank meets alike (see alike_on_every_rank); returns it, for ``raise``."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and int(os.environ.get("LOCAL_RANK", "0")) != 0:
        error.said_by_rank_0 = True  # type: ignore[attr-defined]
    return error


def said_by_rank_0(error: BaseException) -> bool:
    """Whether ``error`` is one its node's first process (rank 0 on one machine) meets and says too."""
    return bool(getattr(error, "said_by_rank_0", False))
