"""The frames every ``videodeblur bench`` run shares: the generated clip, or the input, and how to read,
feed and write them as the ``video`` command would.

Apart from the runs so that each run times the same frames through the same reader, engine call and
writer, chosen once.
"""
from __future__ import annotations

import dataclasses
import itertools
import re
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from videodeblur.bench.options import BenchOptions
from videodeblur.errors import ConfigError
from videodeblur.video import FrameReader, FrameWriter

__all__ = ["BenchIO", "decode_all", "looped_clip", "prepare_input", "read_frames", "write_test_clip"]

_CLIP_FPS = 25


def write_test_clip(path: Path, width: int, height: int, frames: int, fps: int = _CLIP_FPS) -> Path:
    """A moving test picture (textured gradient, sliding square) as H.264 in MP4, written with PyAV.
    Odd sizes cannot be 4:2:0, so they are written as 4:4:4. A size libx264 refuses (over 16384
    pixels a side) is a ConfigError, said before the picture is drawn."""
    import av

    pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.options = {"preset": "ultrafast", "crf": "18"}
        try:
            stream.codec_context.open()
        except av.FFmpegError as exc:  # it said "internal error: ExternalError: ... avcodec_open2"
            raise ConfigError(f"libx264 cannot encode a {width}x{height} test clip (it takes at most 16384 pixels a "
                              f"side, and FFmpeg about 268 million a frame): use a smaller --size") from exc
        base = _test_picture(width, height)
        side = max(4, min(width, height) // 3)
        for i in range(frames):
            img = base.copy()
            top, left = (2 * i) % max(1, height - side), (3 * i) % max(1, width - side)
            img[top:top + side, left:left + side] = (230, 60, 40)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def _test_picture(width: int, height: int) -> np.ndarray:
    """The clip's still background, drawn a channel at a time from a row and a column. It was drawn
    from whole-grid float arrays: writing a 4000x3000 clip peaked 32 bytes a pixel over the import,
    21 now (8.4 GB against 5.5 for a 16384x16000 clip, which :func:`check_held` passes at 3 bytes
    a pixel a frame)."""
    x = np.arange(width, dtype=np.float32)
    y = np.arange(height, dtype=np.float32)[:, np.newaxis]
    base = np.empty((height, width, 3), np.uint8)
    base[..., 0] = 40 + 150 * x / max(width - 1, 1)
    base[..., 1] = 40 + 150 * y / max(height - 1, 1)
    texture = np.multiply.outer(np.cos(y[:, 0] / 4.0), np.sin(x / 3.0))
    texture *= 60
    texture += 110
    base[..., 2] = texture
    return base


def check_held(frames: int, width: int, height: int, layout: str = "rgb") -> None:
    """ConfigError where ``frames`` decoded frames of this size would take more than half the memory
    free: 300 frames of 4K hold 7.5 GB, and --frames 1000 was killed by the kernel with nothing said."""
    from videodeblur.pipeline.memory import available_bytes, readable_bytes

    held = frames * width * height * (1.5 if layout == "i420" else 3)
    free = available_bytes(torch.device("cpu"))
    if held > free // 2:
        fits = int(frames * (free // 2) / held)
        advice = (f"measure {fits} or fewer" if fits >= 2 else  # a bench measures two at least: "2 or fewer" did not fit
                  "even 2 frames of that size would not fit: measure a smaller size")
        raise ConfigError(f"--frames {frames} of {width}x{height} would hold about {readable_bytes(held)} of decoded frames, "
                          f"more than half the memory free ({readable_bytes(free)}); {advice}")


def prepare_input(options: BenchOptions, device: torch.device, tmpdir: Path, say: Callable[[str], None]) -> BenchIO:
    """The clip to measure (``options.input``, or a test clip written into ``tmpdir``) and the pipeline's
    choices for it; an encoder that cannot run here fails now, before the runs."""
    if options.input is not None:
        clip = Path(options.input)
    else:
        check_held(options.frames, options.width, options.height)  # before minutes of encoding, not after
        say(f"writing a {options.width}x{options.height} test clip of {options.frames} frames")
        clip = write_test_clip(tmpdir / "clip.mp4", options.width, options.height, options.frames)
    with FrameReader(clip) as reader:
        info = reader.info
    from videodeblur.pipeline import choose_layout

    from videodeblur.video.encoders import containers_for

    # Matroska where MP4 cannot hold the encoder's codec (VP8, ProRes...): it is the encoder being timed.
    suffix = ".mp4" if options.encoder == "auto" or ".mp4" in containers_for(options.encoder) else ".mkv"
    io = BenchIO(clip=clip, info=info, layout=choose_layout(info, device, options.colour_on_device),
                 frames=options.frames, options=options, suffix=suffix)
    io.writer(tmpdir / "probe").close()  # an encoder that cannot run here fails now, before the runs
    return io


def read_frames(reader: Any, limit: int) -> Iterator[tuple[np.ndarray, int]]:
    """``(image, pts)`` of the first ``limit`` frames of a ``FrameReader``."""
    for frame in itertools.islice(reader, limit):
        yield frame.image, frame.pts


@dataclasses.dataclass(frozen=True)
class BenchIO:
    """How every run reads, feeds the engine and writes: the pipeline's own choices for this input.
    ``layout`` is ``i420`` where the runner converts colour on the device (CUDA, 4:2:0, even size)."""

    clip: Path
    info: Any
    layout: str
    frames: int
    options: BenchOptions
    suffix: str = ".mp4"

    def reader(self) -> FrameReader:
        return FrameReader(self.clip, layout=self.layout)

    def writer(self, path: Path) -> FrameWriter:
        """The writer the ``video`` command would open for this input (video only: only video is measured),
        to ``path`` with the output container's suffix."""
        return FrameWriter.like(path.with_suffix(self.suffix), self.info, audio=False, subtitles=False, data=False, attachments=False,
                                encoder=self.options.encoder, crf=self.options.crf,
                                preset=self.options.preset, layout=self.layout)

    def infer(self, engine: Any, batch: np.ndarray) -> np.ndarray:
        return self.submit(engine, batch).result()

    def submit(self, engine: Any, batch: np.ndarray) -> Any:
        """The batch handed to ``engine`` as the runner hands it; ``result()`` gives host uint8."""
        return engine.submit(batch, layout=self.layout, colour=self.info.colour)


def decode_all(io: BenchIO) -> tuple[list[np.ndarray], list[int]]:
    """The first ``io.frames`` frames and their pts, held in memory for the stage runs (checked to fit
    first: :func:`check_held`)."""
    check_held(min(io.frames, io.info.frames) if io.info.frames else io.frames, io.info.width, io.info.height,
               io.layout)
    with io.reader() as reader:
        decoded = list(read_frames(reader, io.frames))
    return [image for image, _ in decoded], [pts for _, pts in decoded]


def looped_clip(io: BenchIO, passes: int, stem: Path) -> BenchIO | None:
    """``io`` with its clip played ``passes`` times over as one file: the video stream's packets copied
    ``passes`` times (no re-encoding: the same frames, decoded the same way), each pass's timestamps after
    the one before. For the file runs, which read a file once: over a clip of a few frames their window
    was a few ms, and one command's overlap read 0.7 to 1.8. An FFmpeg concat list of the clip did the
    same without a copy, but opened and probed the clip again every pass: 0.9 ms a frame of 64x48
    against 0.15 decoding, so the pipelined run's decode stage was busy with opens a real video does
    not have. The clip must be the whole file (each pass copies all of it). In the input's container,
    else Matroska; decoded once here to check that every pass gives its frames; None where none does
    (an edit list that hides frames a copy shows): the caller measures one pass and says so. Written
    to ``stem`` with the clip's suffix (or ``.mkv``)."""
    import av

    with av.open(str(io.clip)) as source:
        stream = source.streams.video[0]
        packets = [packet for packet in source.demux(stream) if packet.pts is not None and packet.dts is not None]
    if not packets:
        return None
    times = sorted(p.pts for p in packets)
    step = min((b - a for a, b in zip(times, times[1:]) if b > a), default=1)  # one frame, the shortest
    span = max(times[-1] - times[0], max(p.dts for p in packets) - min(p.dts for p in packets)) + step
    suffix = io.clip.suffix if re.fullmatch(r"\.[A-Za-z0-9]{1,8}", io.clip.suffix) else ".mkv"
    for path in dict.fromkeys((stem.with_suffix(suffix), stem.with_suffix(".mkv"))):
        looped = dataclasses.replace(io, clip=path, frames=io.frames * passes)
        try:
            with av.open(str(io.clip)) as source, av.open(str(path), "w") as target:
                copy = target.add_stream_from_template(source.streams.video[0])
                for k in range(passes):
                    for packet in packets:
                        again = av.Packet(bytes(packet))
                        again.pts, again.dts = packet.pts + k * span, packet.dts + k * span
                        again.duration, again.time_base, again.is_keyframe = packet.duration, packet.time_base, packet.is_keyframe
                        again.stream = copy
                        target.mux(again)
            with looped.reader() as reader:
                shapes = [frame.image.shape for frame in reader]
        except Exception:  # av's errors and OSError alike: the next container, or the one-pass run
            continue
        if len(shapes) == looped.frames and len(set(shapes)) == 1:
            return looped
    return None
