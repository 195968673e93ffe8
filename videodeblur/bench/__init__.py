"""Throughput benchmark: every stage alone and the whole pipeline, on the same frames, in one run.

``run_bench(BenchOptions(...)) -> BenchResult``; ``BenchResult.to_dict()`` is the ``--json`` object of
``videodeblur bench``. The runs, in this order (peers last; a run's peak RSS starts from the RSS the
runs before it left, and is the process's peak so far where ``rss_scope`` is ``process``):

- ``decode``: the input decoded, nothing else (to RGB; to I420 planes where the runner converts colour
  on the device: CUDA with 4:2:0 input, ``layout`` in the result), over and over until the window
  lasts ``MIN_STAGE_WINDOW_S`` (``repeats``: the passes over the clip; every frame counts); a clip
  under 64 frames copied to 64 or more (``pass_frames``), so that each opening of the file reads that many.
- ``model`` (one per batch size): the engine as the runner calls it (``submit(...).result()``), host
  uint8 in and out: transfers, colour conversion and the network, with as many batches in flight as
  the runner keeps (on a CPU with two cores or more, two engines side by side: ``engines``), the
  clip gone round again until the window lasts ``MIN_STAGE_WINDOW_S``, as ``decode``'s.
- ``network`` (batch 1; and each peer with ``compare``, after all other runs): ``Engine.infer`` on a
  device-resident tensor in the engine's precision and memory format; on CUDA timed with events.
  This is the "model-only" speed of the papers and the fair ground for the ratio against the peers.
  Ours is timed for ``MIN_STAGE_WINDOW_S`` (at most 200 calls), at least once per measured frame.
- ``encode``: the decoded frames encoded to a file, nothing else, repeated as ``decode`` is.
- ``sequential``: decode → engine → encode on one thread, stage after stage.
- ``pipelined``: the real ``video`` runner (``deblur_file``), stages in their own threads; its stage
  shares and queue depths come from the runner's own clocks, over the whole run.
  These two file runs read the clip played over and over as one file (``repeats``: passes enough for
  ``MIN_STAGE_WINDOW_S`` at twice the slowest stage's fps), where the clip is the whole file; a window that
  still falls short is flagged (``short_window``) and said in ``notes``.
- then the ``model`` run at the pipelined run's batch once more, not added to ``runs``: ``drift`` compares
  its fps with the first one's. The runs take turns, so a machine whose speed moves (a shared VM,
  a laptop that heats up, another program) skews every ratio between them; ``change`` says by how much
  (a short clip's model run may also still be warming up the first time).

Every run drops its first frames as warm-up (rounded up to whole batches, so a batch is never split
by the window) and reports them and their time separately; compilation happens there too.
``fps`` is always ``frames / seconds`` of the measured window. ``bound`` names the slowest of
decode, model (at the pipeline's batch size) and encode; ``overlap`` is pipelined fps over that
stage's fps (1.0: the pipeline hides every other stage behind the slowest). Frames too big for
memory are tiled by the engine as ``video`` would tile them (``tile`` None, ``auto_tile`` lists why
and at what size), so a figure is never of a run that could not happen.
"""
from __future__ import annotations

from videodeblur.bench.options import BenchOptions
from videodeblur.lazy_exports import lazy_exports

__all__ = ["BenchOptions", "BenchResult", "RunResult", "run_bench", "write_test_clip", "MODES", "MIN_STAGE_WINDOW_S"]

# Every name but the options' is imported on first use (videodeblur.lazy_exports): the runs load torch
# (2-3 s), and `bench` checks its options (BenchOptions: a mistyped --input) before that.
__getattr__, __dir__ = lazy_exports(__name__, {
    "clip": ("write_test_clip",),
    "modes": ("MIN_STAGE_WINDOW_S",),
    "results": ("BenchResult", "RunResult"),
    "run": ("run_bench",),
})

MODES = ("decode", "model", "network", "encode", "sequential", "pipelined")
