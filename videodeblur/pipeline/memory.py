"""How much memory a frame needs, and the tile size that keeps a run inside a budget.

Why: the network's activations grow with the frame. ``lprn`` at full resolution holds about 1.4 kB
per pixel on the CPU, so one 4K frame needs about 12 GB and a batch of two more than a 24 GB
machine has; the kernel then kills the process and the output is lost. Without ``--tile`` the
engine estimates the need from the model's shape and, when it would exceed the budget (half the
memory free when the frame size is first seen), runs the frame in tiles small enough to fit.

The estimate is fitted to peak-RSS measurements on the CPU (docs/BENCHMARKS.md, "Memory per
pixel"): the stage features kept for the fusion, (T + 1) maps of C channels at 1/s² of the pixels,
dominate, about 3.2 float copies of them are alive at the peak, plus about 60 bytes per pixel of
uint8 and float frames.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import torch

from videodeblur.config import ModelConfig

__all__ = ["activation_bytes_per_pixel", "available_bytes", "cgroup_room", "plan_tile", "readable_bytes", "FRAME_BYTES_PER_PIXEL"]

FRAME_BYTES_PER_PIXEL = 60.0  # uint8 in/out, float RGB in/out, padding: fitted, fp32
_LIVE_COPIES = 3.2  # float copies of the (T + 1)·C/s² stage features alive at the peak: fitted
_SAFETY = 1.25  # the fit is within 5 % on the shipped models; allocator slack on top
_ALIGN = 16  # tile sides are multiples of the largest pixel-unshuffle factor and then some


def activation_bytes_per_pixel(config: ModelConfig, dtype_bytes: int = 4) -> float:
    """Peak bytes per full-resolution pixel of one frame through the network, with a safety margin."""
    features = (config.stages + 1) * config.channels / config.unshuffle ** 2
    return _SAFETY * (FRAME_BYTES_PER_PIXEL + _LIVE_COPIES * features * dtype_bytes)


def readable_bytes(size: float) -> str:
    """``size`` bytes as people read them: GiB to one decimal, else whole MiB."""
    return f"{size / 2**30:.1f} GiB" if size >= 2**30 else f"{size / 2**20:.0f} MiB"


def available_bytes(device: torch.device) -> int:
    """Memory a new allocation can use now: MemAvailable on the host, or the GPU's free memory plus
    what PyTorch's caching allocator holds unused."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    host = None
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    host = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if host is None:
        host = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    room = cgroup_room()
    return host if room is None else min(host, room)


_UNLIMITED = 1 << 60  # cgroup v1 says "no limit" with a number near 2**63


def cgroup_room(root: Path = Path("/sys/fs/cgroup"), own: Path = Path("/proc/self/cgroup")) -> int | None:
    """What this process's memory cgroup (a container's limit: docker --memory, a Kubernetes pod's)
    leaves: its limit less what it uses that cannot be reclaimed (the page cache's inactive files
    can); None where there is no limit. MemAvailable is the host's: under a limit the kernel killed
    the run where the estimate saw room."""
    try:
        path = next((line.split(":", 2)[2].strip() for line in own.read_text().splitlines()
                     if line.startswith("0::")), None)
    except OSError:
        path = None
    places = [(root / path.lstrip("/") if path else root, "memory.max", "memory.current", "inactive_file"),
              (root / "memory", "memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")]
    for folder, limit_name, usage_name, reclaimable in places:
        try:
            limit = (folder / limit_name).read_text().strip()
            usage = int((folder / usage_name).read_text())
        except (OSError, ValueError):
            continue
        if limit == "max" or int(limit) >= _UNLIMITED:
            return None
        stat = dict(line.split() for line in (folder / "memory.stat").read_text().splitlines()
                    if line.count(" ") == 1) if (folder / "memory.stat").exists() else {}
        return max(int(limit) - usage + int(stat.get(reclaimable, 0)), 0)
    return None


def plan_tile(height: int, width: int, frames: int, bytes_per_pixel: float, budget: float, *,
              min_tile: int, max_batch: int) -> int | None:
    """None when ``frames`` whole ``height``×``width`` frames fit in ``budget`` bytes; else the largest
    tile side (a multiple of 16, at least ``min_tile``) whose windows fit beside the full-frame
    accumulators the tiler keeps. ``max_batch``: windows per network call (the engine's batch)."""
    if frames * height * width * bytes_per_pixel <= budget:
        return None
    accumulators = frames * height * width * FRAME_BYTES_PER_PIXEL  # input, blended output and weights
    windows = max(frames, max_batch)
    room = max(budget - accumulators, 0.0)
    side = int(math.sqrt(room / (windows * bytes_per_pixel))) // _ALIGN * _ALIGN
    return max(side, min_tile)
