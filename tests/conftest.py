"""Shared test fixtures: real media written on the fly, CLI runners, a PSNR helper, the CUDA marker.

Every test builds its own inputs here instead of carrying binary blobs:

- ``make_clip(path, *, width, height, frames, fps=25, audio=False, pix_fmt="yuv420p",
  codec="libx264", rotation=None, vfr=False) -> Path`` writes a real H.264-in-MP4 clip with PyAV.
  The picture moves (a square sliding over a textured gradient), so motion and timing bugs show.
  Odd sizes: 4:2:0 cannot hold an odd width/height, so for odd sizes with a 4:2:0 ``pix_fmt`` the
  clip is written as ``yuv444p`` instead (libx264 High 4:4:4 accepts any size); the decoded frames
  keep the exact odd size. ``vfr=True`` spaces frames by 1, 2, 1, 3 frame intervals, repeating
  (``clip_pts_seconds`` gives the expected timestamps). ``audio=True`` adds a stereo 48 kHz AAC
  440 Hz tone as long as the video. ``rotation`` (degrees, counter-clockwise, as PyAV's
  ``VideoFrame.rotation`` reads it back) is written as the container's display matrix.
- ``clip_frame(index, width, height)`` is the exact RGB picture frame ``index`` was made from
  (decoded frames match it to about 26 dB PSNR at 4:2:0 and 35 dB at 4:4:4: chroma subsampling of
  the saturated square and the fine texture, not a bug).
- ``make_image(path, *, width, height, mode="rgb"|"gray"|"rgba") -> Path`` writes a PNG/JPEG.
- ``psnr(a, b)`` in dB for uint8 arrays (``inf`` when equal).
- ``run_cli(*args)`` runs the real ``videodeblur`` entry point (error mapping included) in-process
  through click's CliRunner; ``run_subprocess(*args)`` runs ``python -m videodeblur`` for real exit
  codes and stderr.
- ``@pytest.mark.cuda`` tests are skipped cleanly where ``torch.cuda.is_available()`` is false.

Fixtures of the same names hand these functions to tests; relative paths given to the ``make_*``
fixtures are placed under the test's ``tmp_path``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import http.server
import math
import os
import signal
import subprocess
import sys
import threading
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import cv2  # noqa: F401  first, before any test module imports av: av-then-cv2 freezes cv2.imshow (DESIGN.md)
import numpy as np
import pytest

# A suite started by a shell without job control (`pytest &`, as `bash .ci/run &` does) inherits
# SIGINT ignored, and so does every command it starts: videodeblur keeps an ignored signal ignored
# (as under nohup), so the Ctrl-C tests would only wait for their timeout. Ctrl-C is put back here.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

REPO_ROOT = Path(__file__).resolve().parent.parent

# Pattern of frame spacings (in frame intervals) for variable-frame-rate clips.
_VFR_STEPS = (1, 2, 1, 3)
_AUDIO_RATE = 48000
_AUDIO_FRAME = 1024  # AAC frame size in samples


# --------------------------------------------------------------------------------------- media

def clip_frame(index: int, width: int, height: int) -> np.ndarray:
    """The RGB uint8 picture of frame ``index``: a textured gradient with a square sliding 3 px/frame
    right and 2 px/frame down (wrapping), so consecutive frames differ and motion is visible."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 40 + 150 * x / max(width - 1, 1)
    g = 40 + 150 * y / max(height - 1, 1)
    b = 110 + 60 * np.sin(x / 3.0) * np.cos(y / 4.0)  # fine texture so a deblurrer has edges to work on
    img = np.stack([r, g, b], axis=-1)
    side = max(4, min(width, height) // 3)
    x0 = (3 * index) % max(width - side, 1)
    y0 = (2 * index) % max(height - side, 1)
    img[y0:y0 + side, x0:x0 + side] = (235, 235, 40)
    img[y0 + side // 4:y0 + 3 * side // 4, x0 + side // 4:x0 + 3 * side // 4] = (20, 20, 160)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def train_on_two_ranks(config: Path, out_dir: Path, *args: str, script: Path | None = None) -> subprocess.CompletedProcess:
    """``torchrun --nproc-per-node 2 -m videodeblur train`` on the CPU (gloo) with a batch of 1 per
    rank, one thread each (``args``: more options): what the DDP tests hold against one process with a
    batch of 2. ``script``: a file that runs the command with a part of the trainer replaced, instead."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    entry = [str(script)] if script is not None else ["-m", "videodeblur"]
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           *entry, "train", "--config", str(config), "--set", "train.batch=1",
                           "--out-dir", str(out_dir), *args],
                          capture_output=True, text=True, timeout=120, env=env, cwd=out_dir.parent)


def tone_frame(start: int, samples: int, *, rate: int = _AUDIO_RATE, fmt: str = "fltp",
               layout: str = "stereo") -> Any:
    """``samples`` of a 440 Hz tone at 0.2 of full scale from sample ``start`` on (its pts), in
    ``fmt`` (planar ``fltp`` or interleaved ``s16``) and ``layout``: the sound of every generated clip."""
    import av

    tone = 0.2 * np.sin(2 * np.pi * 440 * np.arange(start, start + samples) / rate)
    channels = 1 if layout == "mono" else 2
    if fmt == "s16":
        pcm = (tone * 32767).astype(np.int16)
        data = np.repeat(pcm, channels).reshape(1, -1)
    else:
        data = np.stack([tone.astype(np.float32)] * channels)
    frame = av.AudioFrame.from_ndarray(data, format=fmt, layout=layout)
    frame.sample_rate, frame.pts = rate, start
    return frame


def clip_pts_seconds(frames: int, fps: float = 25, vfr: bool = False) -> list[float]:
    """The presentation times, in seconds, that ``make_clip`` gives its frames."""
    times, t = [], 0
    for i in range(frames):
        times.append(t / fps)
        t += _VFR_STEPS[i % len(_VFR_STEPS)] if vfr else 1
    return times


def make_clip(path: str | Path, *, width: int, height: int, frames: int, fps: float = 25,
              audio: bool = False, pix_fmt: str = "yuv420p", codec: str = "libx264",
              rotation: int | None = None, vfr: bool = False) -> Path:
    """Write a real MP4 with PyAV (see the module docstring for the content and the odd-size rule)."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if (width % 2 or height % 2) and pix_fmt in ("yuv420p", "yuvj420p", "nv12"):
        pix_fmt = "yuv444p"
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), "w") as container:
        video = container.add_stream(codec, rate=rate)
        video.width, video.height, video.pix_fmt = width, height, pix_fmt
        if codec == "libx264":
            video.options = {"preset": "veryfast", "crf": "16"}  # veryfast keeps B-frames: pts reorder is real
        time_base = 1 / rate  # VFR gaps are whole frame intervals, so this base is exact for both
        video.codec_context.time_base = time_base
        if rotation is not None:
            video.set_display_rotation(rotation)
        audio_stream = container.add_stream("aac", rate=_AUDIO_RATE, layout="stereo") if audio else None

        for i, t in enumerate(clip_pts_seconds(frames, fps, vfr)):
            frame = av.VideoFrame.from_ndarray(clip_frame(i, width, height), format="rgb24")
            frame.pts = round(t * rate)
            frame.time_base = time_base
            container.mux(video.encode(frame))
        container.mux(video.encode(None))

        if audio_stream is not None:
            duration_s = frames / fps if not vfr else clip_pts_seconds(frames + 1, fps, vfr)[-1]
            total = int(math.ceil(duration_s * _AUDIO_RATE))
            for start in range(0, total, _AUDIO_FRAME):
                container.mux(audio_stream.encode(tone_frame(start, _AUDIO_FRAME)))
            container.mux(audio_stream.encode(None))
    return path


def make_image(path: str | Path, *, width: int, height: int, mode: str = "rgb", index: int = 0) -> Path:
    """Write ``clip_frame(index)`` as an 8-bit image; the extension picks PNG or JPEG.

    ``mode``: ``"rgb"`` (3 channels), ``"gray"`` (1 channel), ``"rgba"`` (alpha ramps left to right).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = clip_frame(index, width, height)
    if mode == "rgb":
        pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    elif mode == "gray":
        pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    elif mode == "rgba":
        alpha = np.tile(np.linspace(0, 255, width, dtype=np.float32).round().astype(np.uint8), (height, 1))
        pixels = np.dstack([cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), alpha])
    else:
        raise ValueError(f"mode must be rgb, gray or rgba, not {mode!r}")
    if not cv2.imwrite(str(path), pixels):
        raise OSError(f"cv2.imwrite failed for {path}")
    return path


def scored_pairs(root: Path, size_hw: tuple[int, int] = (24, 32)) -> Path:
    """Two GoPro-layout pairs under ``root`` (``s/blur``, ``s/sharp``): noise, and the same at half
    contrast as its "blurred" partner; for validation and evaluation sets."""
    from videodeblur.train.data import write_rgb

    rng = np.random.default_rng(1)
    for i in range(2):
        sharp = rng.integers(0, 256, (*size_hw, 3), dtype=np.uint8)
        write_rgb(root / "s" / "sharp" / f"{i}.png", sharp)
        write_rgb(root / "s" / "blur" / f"{i}.png", (sharp // 2 + 64).astype(np.uint8))
    return root


def tiny_recipe(tmp_path: Path, out_dir: Path, *, steps: int = 6, log_every: int = 1, checkpoint_every: int = 100,
                image_hw: tuple[int, int] = (48, 56), extra: str = "") -> Path:
    """A training recipe small enough for a test: an 8-channel, 2-stage model on two noise images
    (``tmp_path/images``, ``image_hw`` each), camera-shake pairs cropped to 24 px; ``extra`` adds
    ``[train]`` lines."""
    from videodeblur.train.data import write_rgb

    rng = np.random.default_rng(0)
    for i in range(2):
        write_rgb(tmp_path / "images" / f"{i}.png", rng.integers(0, 256, (*image_hw, 3), dtype=np.uint8))
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(f"""
[model]
name = "tiny"
channels = 8
blocks = 1
stages = 2
attention = "both"
unshuffle = 2

[train]
out_dir = "{out_dir.as_posix()}"
steps = {steps}
batch = 2
warmup_steps = 2
log_every = {log_every}
checkpoint_every = {checkpoint_every}
threads = 1
{extra}

[data]
images = ["{(tmp_path / 'images').as_posix()}/*.png"]

[data.mix]
crop = 24
kernel_sizes = [5, 7]
p_average = 0.0
""")
    return recipe


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB between two same-shape arrays (uint8 by default); inf if equal."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, f"psnr: shapes differ {a.shape} vs {b.shape}"
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(peak * peak / mse)


# ----------------------------------------------------------------------------------------- CLI

@dataclasses.dataclass(frozen=True)
class CliResult:
    """What a command did: exit code and the two streams as text."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def stderr_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


class _EntryPoint:
    """Lets CliRunner drive ``run_cli`` (the real error mapping) rather than the bare click group:
    CliRunner only calls ``.main(args=..., prog_name=...)`` and catches SystemExit."""

    name = "videodeblur"

    def main(self, args: Sequence[str], prog_name: str | None = None, **_: object) -> None:
        from videodeblur.cli import cli
        from videodeblur.cli._common import run_cli as run_group

        run_group(cli, list(args))


def run_cli(*args: object, input: str | None = None) -> CliResult:
    """Run ``videodeblur ARGS`` in-process (fast; stdout and stderr captured separately)."""
    from click.testing import CliRunner

    result = CliRunner().invoke(_EntryPoint(), [str(a) for a in args], input=input,  # type: ignore[arg-type]
                                prog_name="videodeblur", catch_exceptions=False)
    return CliResult(result.exit_code, result.stdout, result.stderr)


def run_subprocess(*args: object, timeout: float = 120, env: dict[str, str] | None = None,
                   cwd: str | Path | None = None, stdin: Path | None = None, stdout: Path | None = None) -> CliResult:
    """Run ``python -m videodeblur ARGS`` as a real process: real exit codes, real stderr. ``stdin``:
    a file piped in; ``stdout``: a file its standard output goes to (then ``stdout`` reads "")."""
    full_env = dict(os.environ, **(env or {}))
    full_env.setdefault("PYTHONUNBUFFERED", "1")
    with contextlib.ExitStack() as files:
        into = files.enter_context(open(stdin, "rb")) if stdin is not None else subprocess.DEVNULL
        out = files.enter_context(open(stdout, "wb")) if stdout is not None else subprocess.PIPE
        proc = subprocess.run([sys.executable, "-m", "videodeblur", *map(str, args)], stdin=into, stdout=out,
                              stderr=subprocess.PIPE, timeout=timeout, env=full_env, cwd=str(cwd or REPO_ROOT))
    return CliResult(proc.returncode, (proc.stdout or b"").decode(errors="replace"), proc.stderr.decode(errors="replace"))


@contextlib.contextmanager
def serve_folder(folder: Path, requests: list[str] | None = None) -> Iterator[str]:
    """Serve ``folder`` over HTTP on localhost (the standard library's server, which ignores Range
    requests: an MP4 must have its index first to be read from it) and yield its base URL.
    ``requests``: each GET's path is appended to it."""
    handler = functools.partial(_QuietHandler, directory=str(folder), requests=requests)
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        serving = threading.Thread(target=server.serve_forever, daemon=True)
        serving.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *args: Any, requests: list[str] | None = None, **kwargs: Any) -> None:
        self._requests = requests
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        if self._requests is not None:
            self._requests.append(self.path)
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's signature
        pass


# ------------------------------------------------------------------------------------ fixtures

def _under(tmp_path: Path, path: str | Path) -> Path:
    path = Path(path)
    return path if path.is_absolute() else tmp_path / path


@pytest.fixture(name="make_clip")
def _make_clip(tmp_path: Path) -> Callable[..., Path]:
    """``make_clip(path, *, width, height, frames, ...)``; relative paths land in ``tmp_path``."""
    return lambda path, **kw: make_clip(_under(tmp_path, path), **kw)


@pytest.fixture(name="make_image")
def _make_image(tmp_path: Path) -> Callable[..., Path]:
    """``make_image(path, *, width, height, mode="rgb")``; relative paths land in ``tmp_path``."""
    return lambda path, **kw: make_image(_under(tmp_path, path), **kw)


@pytest.fixture(name="run_cli")
def _run_cli() -> Callable[..., CliResult]:
    return run_cli


@pytest.fixture(name="run_subprocess")
def _run_subprocess() -> Callable[..., CliResult]:
    return run_subprocess


# ---------------------------------------------------------------------------------------- CUDA

def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``@pytest.mark.cuda`` tests where there is no GPU (torch is imported only if any exist)."""
    cuda_items = [item for item in items if item.get_closest_marker("cuda")]
    if not cuda_items or cuda_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
    for item in cuda_items:
        item.add_marker(skip)


# ---------------------------------------------------------------------------------------- PyAV

def pyav_major() -> int:
    import av

    return int(av.__version__.split(".")[0])


# BT.2020 conversion and timecode metadata need PyAV 18; Python 3.10 gets at most 17.1
needs_pyav18 = pytest.mark.skipif(pyav_major() < 18, reason="needs PyAV 18 (Python 3.11+)")
