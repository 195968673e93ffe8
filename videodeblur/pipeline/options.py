"""How a file is streamed through the engine: :class:`RunOptions` and the checks of its values.

Apart from the runner so that the options, their defaults and their one-line errors can be read
(and imported, by the API and the commands) without the thread machinery that acts on them.
"""
from __future__ import annotations

import dataclasses
import numbers
import threading
from typing import Callable

from videodeblur.errors import ConfigError
from videodeblur.option_values import check_preset
from videodeblur.pipeline.plan import check_part

__all__ = ["ProgressCallback", "RunOptions"]

ProgressCallback = Callable[[int, "int | None"], None]


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How a file is streamed through the engine.

    ``encoder``: ``auto`` (hardware if it opens, else libx264) or an FFmpeg encoder name; ``crf`` is the
    quality (lower is better) for every encoder with a constant-quality knob, ``preset`` x264/x265's
    speed. ``queue_size``: frames each bounded queue holds. ``progress(done,
    total_or_None)`` is called from the encode thread after each frame. ``warmup_frames`` (rounded up
    to whole batches) are left out of the sustained fps and latency percentiles.
    ``colour_on_device``: move YUV 4:2:0 planes to the engine and convert colour there (None: on CUDA when the video is 4:2:0 with even size).
    ``decode_threads`` / ``encode_threads``: FFmpeg threads; 0 is automatic: one each when the
    engine runs on the CPU (its cores belong to the model; measured on 2 cores, FFmpeg's own choice
    oversubscribed them and cost ~20 % fps), FFmpeg's choice (frame threads) when it runs on a GPU.
    ``audio``: copy the audio
    stream. ``stop``: set it from another thread to end the run early (the output is finalised and
    the stats say ``stopped_early``; one set before any frame was written leaves no file and returns
    stats of 0 frames). ``max_frames``: stop after this many frames. ``fragmented``: write
    so that even a killed process leaves a playable file: an MP4/MOV as a fragment a second (no
    B-frames), Matroska as a cluster a second, every container flushed to disk as it is written.
    ``start_s`` / ``duration_s``: deblur only that part of the file (seconds from its first frame;
    duration None: to the end), written as a file of its own that starts at 0, audio with it.
    ``deinterlace``: run interlaced frames through FFmpeg's bwdif first (one progressive frame each,
    same count and times), so the network sees pictures, not two fields' combing.
    ``resume``: an existing output is an interrupted run's: its frames are kept as they are (remuxed)
    and the run goes on after them (the frames before are decoded, not deblurred again).
    ``deep``: a source with more than 8 bits per sample (10-bit video) is written at 10 bits, the
    network's 8-bit change added to the source's samples (None: yes, where the encoder takes
    10-bit; it needs the colour conversion on the CPU, so it wins over ``colour_on_device=None``).
    ``side_by_side``: write the source and the deblurred picture next to each other (twice as wide,
    the source on the left), to compare them frame by frame.
    ``pipe_format``: the container written to standard output (output ``-``): ``mkv``, ``mp4``
    (fragmented), ``mov``, ``nut``, ``ts`` or ``webm``. An input ``-`` is read from standard input.
    ``engines``: copies of a CPU engine run side by side, its threads split between them (None: two
    where it has two threads or more, see ``videodeblur.pipeline.engine_lanes``; 1: the engine alone).
    """

    encoder: str = "auto"
    crf: int = 18
    preset: str = "veryfast"
    queue_size: int = 8
    progress: ProgressCallback | None = dataclasses.field(default=None, compare=False)
    warmup_frames: int = 8
    colour_on_device: bool | None = None
    decode_threads: int = 0
    encode_threads: int = 0
    audio: bool = True
    stop: threading.Event | None = dataclasses.field(default=None, compare=False)
    max_frames: int | None = None
    fragmented: bool = False
    deep: bool | None = None
    resume: bool = False
    start_s: float = 0.0
    duration_s: float | None = None
    deinterlace: bool = False
    pipe_format: str = "mkv"
    side_by_side: bool = False
    engines: int | None = None

    def __post_init__(self) -> None:
        if self.queue_size < 1:
            raise ConfigError(f"queue_size must be >= 1, got {self.queue_size}")
        if not isinstance(self.encoder, str):
            raise ConfigError(f"encoder must be a name such as 'auto' or 'libx264', got {self.encoder!r}")
        if isinstance(self.crf, bool) or not isinstance(self.crf, numbers.Real):  # "18" failed untyped below
            raise ConfigError(f"crf must be a number in [0, 51], got {self.crf!r}")
        if not 0 <= self.crf <= 51:
            raise ConfigError(f"crf must be in [0, 51], got {self.crf}")
        check_preset(self.preset)
        if self.warmup_frames < 0:
            raise ConfigError(f"warmup_frames must be >= 0, got {self.warmup_frames}")
        if self.decode_threads < 0 or self.encode_threads < 0:
            raise ConfigError("decode_threads and encode_threads must be >= 0 (0: automatic)")
        if self.engines is not None and (isinstance(self.engines, bool) or not isinstance(self.engines, int)
                                         or self.engines < 1):
            raise ConfigError(f"engines must be a whole number >= 1, got {self.engines!r}")
        if self.max_frames is not None and (isinstance(self.max_frames, bool) or not isinstance(self.max_frames, int)
                                            or self.max_frames < 1):
            raise ConfigError(f"max_frames must be a whole number >= 1, got {self.max_frames!r}")
        for name in ("audio", "fragmented", "resume", "deinterlace", "side_by_side"):  # "no" or "false" is true
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be True or False, got {getattr(self, name)!r}")
        for name in ("deep", "colour_on_device"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be True, False or None (automatic), got {getattr(self, name)!r}")
        if self.stop is not None and not callable(getattr(self.stop, "is_set", None)):  # failed in the reader
            raise ConfigError(f"stop must be a threading.Event (set it to end the run), got {self.stop!r}")
        if self.progress is not None and not callable(self.progress):  # failed at the first frame written
            raise ConfigError(f"progress must be a function (frames done, total), got {self.progress!r}")
        check_part(self.start_s, self.duration_s, self.resume)

    @property
    def trimmed(self) -> bool:
        """Whether only a part of the file is asked for."""
        return bool(self.start_s) or self.duration_s is not None
