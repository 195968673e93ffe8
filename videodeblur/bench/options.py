"""What ``videodeblur bench`` measures: its options, checked once, before anything runs.

Apart from the runs so that a bad option fails with a one-line error before a clip is written or an
engine is built, and so every run reads one frozen record.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from videodeblur.bench.peers import peer_name
from videodeblur.errors import ConfigError, InputNotFoundError, UnreadableInputError
from videodeblur.option_values import check_preset
from videodeblur.paths import check_no_empty_path
from videodeblur.video.locations import redacted, scheme_not_read

__all__ = ["BenchOptions"]


@dataclasses.dataclass(frozen=True)
class BenchOptions:
    """What to measure. ``width``/``height``/``frames`` size the generated clip (ignored with ``input``,
    which is measured as it is, up to ``frames`` frames). ``warmup_frames`` None: a fifth of the frames,
    at most 25. ``compare``: also time the peer architectures (``network`` runs at batch 1), each for
    at least ``min_peer_iterations`` and then until ``peer_budget_s`` is spent. ``tile``: run the
    network in overlapping tiles of that size, as ``video --tile`` does (for 4K on a small GPU).
    ``engines``: copies of a CPU engine side by side in the model and pipelined runs, as
    ``RunOptions.engines`` (None: the ``video`` command's choice)."""

    model: str | None = None
    width: int = 640
    height: int = 360
    frames: int = 150
    batches: tuple[int, ...] = (1, 4, 8)
    device: str = "auto"
    precision: str = "auto"
    compile: bool = False
    cuda_graphs: bool = False
    channels_last: bool = True
    input: str | Path | None = None  # a Path once checked
    warmup_frames: int | None = None
    compare: bool = False
    peers: tuple[str, ...] | None = None
    encoder: str = "auto"
    crf: int = 18
    preset: str = "veryfast"
    queue_size: int = 8
    colour_on_device: bool | None = None
    tile: int | None = None
    memory_budget: int | None = None  # bytes for the engines' automatic tiles (None: half the free memory)
    min_peer_iterations: int = 2
    engines: int | None = None
    peer_budget_s: float = 10.0

    def __post_init__(self) -> None:
        if self.input is None and (self.width < 16 or self.height < 16):  # the test clip's: ignored with an input
            raise ConfigError(f"frame size {self.width}x{self.height} is too small: use at least 16x16")
        if not self.batches or min(self.batches) < 1:
            raise ConfigError(f"batch sizes must be positive integers, got {list(self.batches)}")
        if len(set(self.batches)) < len(self.batches):  # each would be measured twice, and the second read as the first
            raise ConfigError(f"batch sizes must differ, got {list(self.batches)}")
        if self.engines is not None and self.engines < 1:
            raise ConfigError(f"--engines must be at least 1, got {self.engines}")
        check_preset(self.preset)
        if self.frames < 2:
            raise ConfigError(f"--frames {self.frames} is too few: use at least 2 (one warm-up, one measured)")
        if self.warmup_frames is not None and not 0 <= self.warmup_frames < self.frames:
            raise ConfigError(f"warm-up of {self.warmup_frames} frames must be >= 0 and below --frames {self.frames}")
        if self.peers is not None:
            object.__setattr__(self, "peers", tuple(peer_name(p) for p in self.peers))
        if self.input is not None:
            check_no_empty_path([self.input], None, inputs_are="a video file")  # "" read as "." was "not a regular file"
            if why := scheme_not_read(self.input, urls=False):
                raise InputNotFoundError(f"input {redacted(self.input)}: {why}")
        if self.input is not None and not Path(self.input).is_file():
            if Path(self.input).exists():  # /dev/null or a pipe was said "does not exist"
                raise UnreadableInputError(f"input {str(self.input)!r} is not a regular file: give a path to a "
                                           "video file (every run reads it again from the start)")
            raise InputNotFoundError(f"input file {str(self.input)!r} does not exist: give a path to a video file")
        if self.input is not None:  # a str until checked: a Path folds ftp:// into a folder "ftp:"
            object.__setattr__(self, "input", Path(self.input))

    def warmup_for(self, frames: int) -> int:
        """Warm-up frames for a clip of ``frames`` (an ``input`` may hold fewer than ``frames``):
        ``warmup_frames``, or a fifth of them, at most 25; always leaving one to measure."""
        chosen = self.warmup_frames if self.warmup_frames is not None else max(1, min(frames // 5, 25))
        return min(chosen, frames - 1)
