"""The inference engine shared by the file, camera and bench commands.

``Engine.process(frames)`` is the synchronous contract: uint8 ``N×H×W×3`` RGB in, the same out.
``Engine.submit(batch)`` is the asynchronous one the streaming runner uses: it returns an
:class:`EngineResult` at once and ``result()`` gives the uint8 output.

On CUDA a ring of pinned host slots (``pinned_ring``, at least 3) feeds three streams:

1. ``submit`` copies the batch into the slot's pinned input buffer (a CPU memcpy) and enqueues the
   upload on the *upload* stream; an event marks it done.
2. The *compute* stream waits on that event, converts uint8 (RGB, or I420 planes converted to RGB on
   the device) to float, runs the network, converts back to uint8 on the device (a quarter of the
   float bytes to download) and records an event.
3. The *download* stream waits on it and copies into the slot's pinned output buffer; its event is
   what ``result()`` waits on, blocked rather than spinning (see ``_BatchTiming``). No batch calls
   ``torch.cuda.synchronize``; a CUDA graph's capture does, once per frame shape (torch.cuda.graph's own).

While batch k is computing, batch k+1 uploads and batch k-1 downloads. A slot is reused only after
its previous result was collected (``result()`` copies out of the pinned buffer, so the slot is free
once its download event has completed), or, where that batch failed on the device, after its upload
event. On CPU ``submit`` runs the same conversions and network
synchronously, so both paths give the same numbers up to float rounding.
"""
from __future__ import annotations

import copy
import dataclasses
import numbers
import os
import re
import threading
from typing import Literal, Sequence

import numpy as np
import torch

from videodeblur.config import ModelConfig
from videodeblur.errors import ConfigError, DeviceError, FrameError
from videodeblur.model import LoadedModel, default_model_name, load_model
from videodeblur.option_values import MIN_TILE_OVERLAP, smallest_tile
from videodeblur.pipeline.memory import (FRAME_BYTES_PER_PIXEL, activation_bytes_per_pixel, available_bytes, plan_tile,
                                         readable_bytes)
from videodeblur.pipeline.tiling import run_tiled
from videodeblur.video.colour import ColourTags, i420_to_rgb, rgb_to_i420, yuv_matrix

__all__ = ["EngineOptions", "Engine", "EngineResult", "resolve_device", "resolve_precision", "usable_cores"]

Layout = Literal["rgb", "i420"]
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclasses.dataclass(frozen=True)
class EngineOptions:
    """How the engine runs.

    ``device``: ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``.
    ``precision``: ``auto`` (fp16 on CUDA, fp32 on CPU), ``fp32``, ``fp16`` (CUDA only) or ``bf16``.
    ``batch_size``: frames per network call (None: 4 on CUDA, 2 on CPU, where larger batches measured
    slower: 26 fps at 2 vs 23 at 4 for lprn-fast 640×360 on 2 cores; the file runner's CPU lanes,
    :mod:`~videodeblur.pipeline.engine_lanes`, take 1 each). ``tile``: tile size in pixels for frames too big to run
    whole (None: whole frames), blended over ``tile_overlap`` pixels (None: the model's, see
    :func:`tile_overlap_for`). ``pinned_ring``: pinned host
    slots on CUDA (>= 3 so upload, compute and download overlap). ``threads``: torch intra-op threads
    on CPU (None: every core this process may use). ``auto_tile``: with no ``tile``, run frames in
    tiles when whole ones would need more than ``memory_budget`` bytes (None: half the memory free
    when a frame size is first seen; see ``videodeblur.pipeline.memory``), divided by
    ``memory_share``, the engines that hold frames in that memory at once (the file runner's CPU
    lanes, :mod:`~videodeblur.pipeline.engine_lanes`). ``cuda_graphs``: on CUDA, capture each full
    batch's conversions and network once per frame shape as a CUDA graph and replay it (one launch
    instead of one per kernel; whole frames only: tiled and short batches run as before).
    """

    device: str = "auto"
    precision: str = "auto"
    batch_size: int | None = None
    channels_last: bool = True
    compile: bool = False
    tile: int | None = None
    tile_overlap: int | None = None
    pinned_ring: int = 3
    threads: int | None = None
    auto_tile: bool = True
    memory_budget: int | None = None
    memory_share: int = 1
    cuda_graphs: bool = False

    @property
    def smallest_tile(self) -> int:
        """Twice the overlap (the least one where it is the model's) and 16 pixels of the tile's own."""
        return smallest_tile(self.tile_overlap if self.tile_overlap is not None else MIN_TILE_OVERLAP)

    def __post_init__(self) -> None:
        # types first: None or "2" would fail below, or later, as an untyped AttributeError/TypeError
        for name in ("device", "precision"):
            if not isinstance(getattr(self, name), str):
                raise ConfigError(f"{name} must be a string such as 'auto', got {getattr(self, name)!r}")
        for name in ("batch_size", "tile", "tile_overlap", "pinned_ring", "threads", "memory_budget", "memory_share"):
            value = getattr(self, name)
            if value is None and name != "pinned_ring":
                continue  # None: the automatic choice
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise ConfigError(f"{name} must be a whole number, got {value!r}")
        for name in ("compile", "channels_last", "auto_tile", "cuda_graphs"):  # "no" or "false" is true
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.precision not in ("auto", *_DTYPES):
            raise ConfigError(f"precision must be auto, fp32, fp16 or bf16, got {self.precision!r}")
        if not isinstance(self.device, str) or not (self.device in ("auto", "cpu", "cuda")
                                                    or re.fullmatch(r"cuda:\d+", self.device)):  # "cuda:x": torch's own error
            raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"batch size must be >= 1, got {self.batch_size}")
        if self.tile_overlap is not None and self.tile_overlap < 0:
            raise ConfigError(f"tile_overlap must be >= 0 pixels, got {self.tile_overlap}")
        if self.tile is not None and self.tile < self.smallest_tile:
            raise ConfigError(f"tile must be at least {self.smallest_tile} pixels (twice the overlap "
                              f"{(self.smallest_tile - 16) // 2} + 16), got {self.tile}")
        if self.pinned_ring < 3:
            raise ConfigError(f"pinned_ring must be >= 3 (upload, compute, download overlap), got {self.pinned_ring}")
        if self.threads is not None and not 1 <= self.threads <= most_threads():
            raise ConfigError(f"threads must be from 1 to {most_threads()} (four per core here), got {self.threads}")
        if self.memory_share < 1:
            raise ConfigError(f"memory_share must be >= 1 engine, got {self.memory_share}")
        if self.memory_budget is not None and self.memory_budget < 1:
            raise ConfigError(f"memory_budget must be a positive number of bytes, got {self.memory_budget}")


def resolve_device(name: str) -> torch.device:
    """``auto`` → cuda when available else cpu; an unavailable CUDA request is a DeviceError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {name} requested but CUDA is not available here; use --device cpu")
        dev = torch.device(name)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
        return dev
    return torch.device("cpu")


def resolve_precision(name: str, device: torch.device) -> str:
    """``auto`` → fp16 on CUDA, fp32 on CPU; fp16 on CPU is refused (slow emulation)."""
    if name == "auto":
        return "fp16" if device.type == "cuda" else "fp32"
    if name == "fp16" and device.type != "cuda":
        raise DeviceError("fp16 needs a CUDA device; use --precision fp32 or bf16 on CPU")
    # bf16 convolutions are native from compute capability 8 (Ampere); torch's is_bf16_supported()
    # also says yes to older GPUs that only emulate it.
    if name == "bf16" and device.type == "cuda" and torch.cuda.get_device_capability(device)[0] < 8:
        raise DeviceError("this GPU does not support bf16; use --precision fp16")
    return name


class EngineResult:
    """A submitted batch. ``result()`` blocks until its output is on the host and returns it
    (uint8, same shape and layout as submitted); ``gpu_ms`` is the device time this batch kept the
    engine busy (CUDA events; None on CPU): from its upload's start, or from the previous batch's
    download end if that came later, to its own download end. A batch queued behind others waits on
    the compute stream; that wait is the batches before it working, so it is not counted again, and
    the batches' ``gpu_ms`` add up to the time the device pipeline was busy."""

    def __init__(self, output: np.ndarray | None = None, *, slot: "_PinnedSlot | None" = None, count: int = 0,
                 timing: "_BatchTiming | None" = None) -> None:
        self._output = output
        self._slot = slot
        self._count = count
        self._timing = timing
        self.gpu_ms: float | None = None
        # Two threads may collect one handle at once (its caller, and another thread's submit that
        # wrapped round the ring to this slot): the second must wait for the first's copy.
        self._collecting = threading.Lock()

    def ready(self) -> bool:
        return self._output is not None or self._timing is None or self._timing.done.query()

    def result(self) -> np.ndarray:
        with self._collecting:
            if self._output is None and self._slot is not None and self._timing is not None:
                slot, timing = self._slot, self._timing
                timing.done.synchronize()  # the only host wait: this batch's download event
                self._output = slot.host_out[:self._count].numpy().copy()
                self.gpu_ms = timing.busy_ms()
                if slot.owner is self:  # another batch may own the slot already: never free its buffers
                    slot.owner = None
                self._slot = None
        assert self._output is not None
        return self._output


@dataclasses.dataclass(frozen=True)
class _BatchTiming:
    """One batch's timing events, made for it alone (a slot's events are recorded again when the ring
    comes round, so the previous batch's end must be an event nobody records twice). ``done`` is made
    ``blocking``: CUDA's event synchronize busy-waits a CPU core until the event completes unless the
    event was made with cudaEventBlockingSync, and the host waits on ``done`` for most of each batch's
    device time while the decoder and encoder threads need the cores."""

    started: "torch.cuda.Event"
    done: "torch.cuda.Event"
    previous_done: "torch.cuda.Event | None"

    def busy_ms(self) -> float:
        """Upload start (or the previous batch's end, if later) to download end; ``done`` has completed,
        and so has ``previous_done``, recorded before it on the same download stream."""
        span = self.started.elapsed_time(self.done)
        if self.previous_done is None:
            return span
        return min(span, self.previous_done.elapsed_time(self.done))


class Engine:
    """A loaded network on a device with a precision, batch size and memory format (see module doc)."""

    def __init__(self, model: LoadedModel | None = None, options: EngineOptions | None = None) -> None:
        self.options = options or EngineOptions()
        self.device = resolve_device(self.options.device)
        self.precision = resolve_precision(self.options.precision, self.device)
        self.dtype = _DTYPES[self.precision]
        self._batch_size = self.options.batch_size or (4 if self.device.type == "cuda" else 2)
        if self.device.type == "cuda":
            # Video frames all have one shape: let cuDNN time its convolution algorithms once (during
            # warm-up) and keep the fastest. Not measured on a GPU yet.
            torch.backends.cudnn.benchmark = True
        self.threads: int | None = None  # torch's CPU threads for this engine
        if self.device.type == "cpu":
            self.threads = self.options.threads or usable_cores()
            if torch.get_num_threads() != self.threads:
                torch.set_num_threads(self.threads)
        self.model = model if model is not None else load_model(default_model_name(self.device.type))
        # A copy: Module.to() works in place, and two engines may share one LoadedModel.
        net = copy.deepcopy(self.model.network).eval().to(self.device, self.dtype)
        if self.options.channels_last:
            net = net.to(memory_format=torch.channels_last)
        # dynamic=False: the engine pads every batch to one size, so each shape is its own fixed graph.
        # Compiled code is cached per function, not per module: a second engine (bench --batch 1,2)
        # otherwise found the first's graph, took the new batch size for a varying one and timed a
        # dynamic-shape graph that `video --batch 2 --compile` never builds
        self.network: torch.nn.Module = torch.compile(net, dynamic=False) if self.options.compile else net
        self._lock = threading.Lock()  # submit() may be called from a worker thread
        self._auto_tiles: dict[tuple[int, ...], int | None] = {}
        self._fits: set[tuple[int, ...]] = set()  # batch shapes checked to fit in memory (_check_fits)
        self._auto_tile_notes: dict[tuple[int, ...], str] = {}
        self.auto_tile_note: str | None = None  # set when frames were first tiled for memory: why, and at what size
        # batches run in tiles for memory, by shape: the engine outlives a run, which reports only its own
        self.auto_tiled: dict[tuple[int, ...], int] = {}
        if self.options.cuda_graphs and self.device.type != "cuda":
            raise ConfigError(f"CUDA graphs need a CUDA device, and this engine runs on {self.device}; "
                              "leave out --cuda-graphs or use --device cuda")
        self._cuda = _CudaPipeline(self) if self.device.type == "cuda" else None

    @classmethod
    def from_name(cls, name: str | None = None, options: EngineOptions | None = None) -> "Engine":
        """Load a shipped model by name or a weights path; None picks the default for the device."""
        options = options or EngineOptions()
        if name is None:
            name = default_model_name(resolve_device(options.device).type)
        return cls(load_model(name), options)

    @property
    def model_name(self) -> str:
        return self.model.name

    @property
    def batch_size(self) -> int:
        """Frames per network call (the option, or the device's default)."""
        return self._batch_size

    @property
    def max_in_flight(self) -> int:
        """How many submitted batches a caller may hold before collecting one (0: synchronous)."""
        return self.options.pinned_ring - 1 if self._cuda is not None else 0

    def describe(self) -> str:
        name = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu"
        if self.device.type == "cuda":
            return f"{self.device} ({name})"
        return f"cpu ({self.threads} thread{'' if self.threads == 1 else 's'})"

    # --- synchronous contract ------------------------------------------------------------------
    def process(self, frames: np.ndarray) -> np.ndarray:
        """uint8 ``N×H×W×3`` RGB → deblurred uint8 of the same shape, in batches of ``batch_size``."""
        frames = _check_rgb(frames)
        bs = self.batch_size
        handles = [self.submit(frames[i:i + bs]) for i in range(0, len(frames), bs)]
        return np.concatenate([h.result() for h in handles], axis=0)

    def warmup(self, height: int, width: int, *, layout: Layout = "rgb", colour: ColourTags | None = None,
               batches: int = 2) -> None:
        """Run a few full batches so later timings exclude cudnn autotune / compilation (and, with
        ``cuda_graphs``, the capture, which is keyed on ``colour``'s matrix: pass the clip's)."""
        dummy = grey_batch(self.batch_size, height, width, layout)
        for _ in range(batches):
            self.submit(dummy, layout=layout, colour=colour).result()

    # --- asynchronous contract -----------------------------------------------------------------
    def submit(self, batch: np.ndarray | Sequence[np.ndarray], *, layout: Layout = "rgb",
               colour: ColourTags | None = None) -> EngineResult:
        """Start deblurring ``batch``: uint8 ``N×H×W×3`` RGB (``layout="rgb"``) or uint8
        ``N×(3H/2)×W`` I420 planes (``layout="i420"``, converted with ``colour``'s matrix and range on
        the device), as one array or a sequence of same-shape frames (on CUDA each is copied straight
        into pinned memory, saving a host copy). ``N`` may not exceed ``batch_size`` on CUDA (the
        pinned slots are that big)."""
        if layout not in ("rgb", "i420"):
            raise ValueError(f"layout must be 'rgb' or 'i420', got {layout!r}")
        check = _check_rgb if layout == "rgb" else _check_i420
        if isinstance(batch, np.ndarray):
            frames: np.ndarray | list[np.ndarray] = check(batch)
        else:
            frames = [check(np.asarray(f)[np.newaxis])[0] for f in batch]
            if not frames or any(f.shape != frames[0].shape for f in frames):
                raise FrameError("a batch given as a sequence needs at least one frame, all of one shape")
        with self._lock:
            if self._cuda is not None:
                try:
                    return self._cuda.submit(frames, layout, colour)
                except torch.cuda.OutOfMemoryError as exc:  # a size the GPU cannot hold, not a bug
                    raise DeviceError(_out_of_memory(frames, layout, self.precision, exc)) from exc
            stacked = frames if isinstance(frames, np.ndarray) else np.stack(frames)
            with torch.inference_mode():
                out = self._forward_uint8(torch.from_numpy(stacked), layout, colour)
            return EngineResult(out.numpy())

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """Float ``N×3×H×W`` in [0, 1] on the engine's device → the network's output (tiled when
        ``tile`` is set and the frame is larger), in the engine's dtype."""
        x = x.to(self.dtype)
        # Both ways, as the weights are: uint8 frames arrive NHWC, so their float view is already
        # channels-last, and with the option off NCHW weights met NHWC inputs (each cuDNN call reorders).
        x = x.contiguous(memory_format=torch.channels_last if self.options.channels_last else torch.contiguous_format)
        shape = tuple(x.shape)
        tile = self.tile_for(shape)
        if tile is not None:
            if self.options.tile is None:  # tiled for memory, not as asked
                self.auto_tiled[shape] = self.auto_tiled.get(shape, 0) + 1
            config = self._lprn_config()
            return run_tiled(self.network, x, tile=tile, overlap=self.tile_overlap(tile),
                             max_batch=max(self.batch_size, 1), align=config.unshuffle if config is not None else 1)
        return self.network(x)

    def tile_for(self, shape: tuple[int, ...]) -> int | None:
        """The tile size a float batch of ``shape`` (N×3×H×W) runs in: ``tile`` as asked, or the one
        memory needs; None where it runs whole."""
        self._check_fits(shape)
        tile = self.options.tile if self.options.tile is not None else self._auto_tile(shape)
        return tile if tile is not None and (shape[-1] > tile or shape[-2] > tile) else None

    def _check_fits(self, shape: tuple[int, ...]) -> None:
        """DeviceError where a batch of ``shape`` cannot fit even in tiles (checked once per shape, with
        ``--tile`` too): the tiler keeps each whole frame as floats, so a 30000x15000 panorama (25 GiB)
        was run in 144 px tiles anyway and killed by the kernel with nothing said."""
        if shape in self._fits or not self.options.auto_tile:
            return
        n, _, h, w = shape
        free = available_bytes(self.device) // self.options.memory_share
        kept = n * h * w * FRAME_BYTES_PER_PIXEL
        if kept > free:
            fewer = "; use a smaller --batch" if n > 1 else ""
            raise DeviceError(f"{n} frame(s) of {w}x{h} need about {readable_bytes(kept)} even in tiles (each whole "
                              f"frame is kept as floats), more than the {readable_bytes(free)} free here{fewer}")
        self._fits.add(shape)

    def tile_overlap(self, tile: int | None = None) -> int:
        """Pixels that neighbouring tiles share: the option, or the model's (:func:`tile_overlap_for`),
        at most what a ``tile`` of that size leaves room for."""
        if self.options.tile_overlap is not None:
            return self.options.tile_overlap
        config = self._lprn_config()
        overlap = tile_overlap_for(config) if config is not None else MIN_TILE_OVERLAP
        return overlap if tile is None else max(MIN_TILE_OVERLAP, min(overlap, (tile - 16) // 2))

    def _lprn_config(self) -> ModelConfig | None:
        """The network's LPRN config (its reach and unshuffle factor shape the tiles); None for the
        benchmark's peer networks."""
        config = getattr(self.model.network, "config", None)
        return config if isinstance(config, ModelConfig) else None

    def _auto_tile(self, shape: tuple[int, ...]) -> int | None:
        """The tile size that keeps a batch of this shape inside the memory budget (None: whole
        frames fit), decided once per shape."""
        config = self._lprn_config()
        if not self.options.auto_tile or config is None:
            return None  # the estimate is LPRN's; the benchmark's peer networks run whole
        if shape not in self._auto_tiles:
            n, _, h, w = shape
            per_pixel = activation_bytes_per_pixel(config, torch.finfo(self.dtype).bits // 8)
            share = self.options.memory_share
            budget = (self.options.memory_budget or available_bytes(self.device) // 2) // share
            tile = plan_tile(h, w, n, per_pixel, budget, min_tile=self.options.smallest_tile,
                             max_batch=self.batch_size)
            self._auto_tiles[shape] = tile
            if tile is not None:
                whence = "the memory budget" if self.options.memory_budget else "half the free memory"
                whence += f" shared by {share} engines" if share > 1 else ""
                note = (f"{n} frame(s) of {w}x{h} would need about {readable_bytes(n * h * w * per_pixel)} whole, "
                        f"more than {whence} ({readable_bytes(budget)}): run in tiles of {tile} px (--tile sets the size)")
                self._auto_tile_notes[shape] = note
                self.auto_tile_note = self.auto_tile_note or note
        return self._auto_tiles[shape]

    def auto_tile_note_for(self, shape: tuple[int, ...]) -> str | None:
        """Why batches of ``shape`` (N×3×H×W, as :attr:`auto_tiled` counts them) are run in tiles for
        memory, and at what size; None where they run whole."""
        return self._auto_tile_notes.get(shape)

    def _forward_uint8(self, u8: torch.Tensor, layout: Layout, colour: ColourTags | None) -> torch.Tensor:
        """uint8 batch on the device → deblurred uint8 batch on the device (same layout)."""
        n = u8.shape[0]
        if self.options.compile and n < self.batch_size:
            # A compiled network recompiles for every new batch size (measured on the CPU: ~6 s for a
            # run's short last batch), so a short batch is padded to a full one and cut back after.
            padded = torch.cat([u8, u8[-1:].expand(self.batch_size - n, *u8.shape[1:])])
            return self._forward_uint8(padded, layout, colour)[:n]
        if layout == "i420":
            m = yuv_matrix(colour)
            x = i420_to_rgb(u8, m)
            y = self.infer(x)
            return rgb_to_i420(y, m)
        x = u8.permute(0, 3, 1, 2).to(torch.float32).mul_(1.0 / 255.0)  # NHWC view = channels_last NCHW
        y = self.infer(x)
        # Quantise in float32: fp16 cannot represent 255·y finely enough to round correctly.
        y8 = y.float().clamp_(0.0, 1.0).mul_(255.0).round_().to(torch.uint8)
        return y8.permute(0, 2, 3, 1).contiguous()


class _PinnedSlot:
    """Pinned host input/output buffers for one batch plus the events that order its three steps."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape
        self.host_in = torch.empty(shape, dtype=torch.uint8, pin_memory=True)
        self.host_out = torch.empty(shape, dtype=torch.uint8, pin_memory=True)
        self.uploaded = torch.cuda.Event()
        self.computed = torch.cuda.Event()
        self.owner: EngineResult | None = None


class _CudaPipeline:
    """Upload / compute / download streams and the pinned ring (see the module docstring)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        dev = engine.device
        self.upload = torch.cuda.Stream(dev)
        self.compute = torch.cuda.Stream(dev)
        self.download = torch.cuda.Stream(dev)
        self.slots: list[_PinnedSlot] = []
        self.next = 0
        self.last_done: torch.cuda.Event | None = None  # the previous batch's download end
        self.graph: _GraphedForward | None = None  # with ``cuda_graphs``: the current frame shape's
        # The weights were copied on the default stream: make the compute stream see them.
        self.compute.wait_stream(torch.cuda.current_stream(dev))

    def _slot_for(self, frame_shape: tuple[int, ...]) -> _PinnedSlot:
        shape = (self.engine.batch_size, *frame_shape)
        if not self.slots or self.slots[0].shape != shape:
            for slot in self.slots:  # a new frame size: finish what is in flight, then reallocate
                owner = slot.owner  # read once: result() clears it
                if owner is not None:
                    owner.result()
            self.slots = [_PinnedSlot(shape) for _ in range(self.engine.options.pinned_ring)]
            self.next = 0
        slot = self.slots[self.next]
        self.next = (self.next + 1) % len(self.slots)
        owner = slot.owner  # read once: result() clears it
        if owner is not None:
            # The caller still holds this slot's previous batch: collect it (waits for its download)
            # so the pinned buffers can be overwritten.
            owner.result()
        # A batch whose network raised (out of memory, say) left no owner, but its upload may still be
        # reading the pinned input: CUDA reads a non_blocking copy's source when the copy runs, not when
        # it is enqueued. Normally the event has completed already and this returns at once.
        slot.uploaded.synchronize()
        return slot

    def submit(self, batch: np.ndarray | list[np.ndarray], layout: Layout, colour: ColourTags | None) -> EngineResult:
        n = len(batch)
        if n > self.engine.batch_size:
            raise ValueError(f"batch of {n} frames exceeds batch_size {self.engine.batch_size}")
        slot = self._slot_for(tuple(batch[0].shape))
        host_in = slot.host_in[:n]
        host_out = slot.host_out[:n]
        staging = host_in.numpy()
        for i in range(n):  # pageable → pinned; the slot's previous upload has completed (its done event)
            staging[i] = batch[i]
        dev = self.engine.device
        self.upload.wait_stream(torch.cuda.current_stream(dev))  # nothing else in flight may touch our inputs
        timing = _BatchTiming(torch.cuda.Event(enable_timing=True),
                              torch.cuda.Event(enable_timing=True, blocking=True), self.last_done)
        with torch.cuda.stream(self.upload):
            timing.started.record(self.upload)
            dev_in = host_in.to(dev, non_blocking=True)  # async H2D from pinned memory
            slot.uploaded.record(self.upload)
        self.compute.wait_event(slot.uploaded)
        with torch.cuda.stream(self.compute), torch.inference_mode():
            # dev_in was allocated on the upload stream: tell the caching allocator it is also used
            # here, or its memory could be handed out again before the network has read it.
            dev_in.record_stream(self.compute)
            graphed = self._graph_for(tuple(dev_in.shape), layout, colour)
            dev_out = graphed(dev_in) if graphed is not None else self.engine._forward_uint8(dev_in, layout, colour)
            slot.computed.record(self.compute)
        self.download.wait_event(slot.computed)
        with torch.cuda.stream(self.download):
            dev_out.record_stream(self.download)  # allocated on compute, read by this copy
            host_out.copy_(dev_out, non_blocking=True)  # async D2H into pinned memory
            timing.done.record(self.download)
        self.last_done = timing.done
        handle = EngineResult(slot=slot, count=n, timing=timing)
        slot.owner = handle
        return handle

    def _graph_for(self, shape: tuple[int, ...], layout: Layout, colour: ColourTags | None) -> "_GraphedForward | None":
        """The captured graph for a full batch of ``shape`` (captured now if it is new), or None where
        graphs are off or the batch is short or tiled. One graph is kept: a video has one frame shape,
        and each graph holds its own pool of intermediate memory."""
        engine = self.engine
        if not engine.options.cuda_graphs or shape[0] != engine.batch_size:
            return None
        rows = shape[1] * 2 // 3 if layout == "i420" else shape[1]
        cols = shape[2]
        if engine.tile_for((shape[0], 3, rows, cols)) is not None:
            return None
        key = (shape, layout, yuv_matrix(colour) if layout == "i420" else None)
        if self.graph is None or self.graph.key != key:
            self.graph = None  # release the old graph's memory pool before capturing the next
            self.graph = _GraphedForward(engine, self.compute, key, layout, colour)
        return self.graph


class _GraphedForward:
    """``Engine._forward_uint8`` for one batch shape, layout and colour matrix, captured as a CUDA graph
    on the compute stream and replayed there.

    As torch documents CUDA graphs: the work is first run a few times on the capturing stream (cuDNN
    picks its algorithms, lazy handles are made), then captured once; a replay reads the same input
    buffer and writes the same output buffer, so each batch is copied into ``static_in`` and its result
    cloned out of ``static_out`` (device copies, on the compute stream, in order with the replays).
    The capture is ``thread_local``: the writer thread may wait on earlier batches' events meanwhile."""

    WARMUP_RUNS = 3

    def __init__(self, engine: Engine, stream: "torch.cuda.Stream", key: tuple, layout: Layout,
                 colour: ColourTags | None) -> None:
        self.key = key
        shape = key[0]
        dev = engine.device
        stream.wait_stream(torch.cuda.current_stream(dev))
        with torch.cuda.stream(stream), torch.inference_mode():
            self.static_in = torch.full(shape, 128, dtype=torch.uint8, device=dev)
            for _ in range(self.WARMUP_RUNS):
                engine._forward_uint8(self.static_in, layout, colour)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph, stream=stream, capture_error_mode="thread_local"):
                self.static_out = engine._forward_uint8(self.static_in, layout, colour)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """Run on the current (compute) stream: ``batch`` in, a fresh output tensor out."""
        self.static_in.copy_(batch)
        self.graph.replay()
        return self.static_out.clone()


def grey_batch(frames: int, height: int, width: int, layout: Layout = "rgb") -> np.ndarray:
    """A full batch of mid-grey frames in ``layout``, for warming an engine up."""
    rows = height * 3 // 2 if layout == "i420" else height
    return np.full((frames, rows, width) + (() if layout == "i420" else (3,)), 128, np.uint8)


def engine_count(requested: int | None, threads: int) -> int:
    """Engines to run side by side on a CPU with ``threads`` to split: ``requested``, else two; never
    more than the threads, so each engine keeps at least one (the file runner's lanes and the camera)."""
    return max(1, min(2 if requested is None else requested, threads))


def tile_overlap_for(config: ModelConfig) -> int:
    """The overlap that keeps tiles close to a whole frame: the network sees further the more it
    unshuffles. Measured on a 640×480 photo in 256 px tiles: lprn-fast (×4) differs from the whole
    frame by at most 21 levels with 32 px of overlap and 9 with 64; lprn-rt (×2) 6 either way;
    lprn (×1) 1. What is left comes from channel attention pooling over the tile, not the frame."""
    return max(MIN_TILE_OVERLAP, 16 * config.unshuffle)


def most_threads() -> int:
    """The most threads (or loader processes) one setting may ask for: four per usable core. Past
    that they only fight over the cores, and a typo (100000) made libgomp abort or segfault, or forked
    workers until memory ran out."""
    return 4 * usable_cores()


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _out_of_memory(frames: np.ndarray | list[np.ndarray], layout: Layout, precision: str, exc: Exception) -> str:
    """What to do when a batch does not fit in the GPU's memory (the auto-tiler's estimate is fitted on
    the CPU, and a captured graph keeps its own pool), with torch's own first line."""
    rows, width = frames[0].shape[:2]
    height = rows * 2 // 3 if layout == "i420" else rows
    said = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return (f"the GPU ran out of memory for {len(frames)} frame(s) of {width}x{height} at {precision}: "
            f"use a smaller --batch, or --tile N to run frames in tiles ({said})")


def _check_rgb(frames: np.ndarray) -> np.ndarray:
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        got = f"{frames.dtype} {frames.shape}" if isinstance(frames, np.ndarray) else type(frames).__name__
        raise FrameError(f"frames must be a uint8 array of shape N×H×W×3 (RGB), got {got}")
    if min(frames.shape[:3]) < 1:
        raise FrameError(f"frames must hold at least one frame of at least 1×1 pixels, got shape {frames.shape}")
    return _writable(frames)


def _writable(frames: np.ndarray) -> np.ndarray:
    """Contiguous and writable (torch.from_numpy warns of undefined behaviour on a read-only array,
    such as np.asarray of a PIL image): copied only when it is not already."""
    return np.require(frames, requirements=("C", "W"))


def _check_i420(frames: np.ndarray) -> np.ndarray:
    if (not isinstance(frames, np.ndarray) or frames.dtype != np.uint8 or frames.ndim != 3
            or frames.shape[1] % 3 or frames.shape[2] % 2 or (frames.shape[1] * 2 // 3) % 2):
        got = f"{frames.dtype} {frames.shape}" if isinstance(frames, np.ndarray) else type(frames).__name__
        raise FrameError(f"I420 frames must be uint8 N×(3H/2)×W with H, W even, got {got}")
    return _writable(frames)
