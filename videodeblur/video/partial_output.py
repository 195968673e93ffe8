"""Reading back an interrupted run's output (the partial file), so that a new file can begin with
its frames as they are (:meth:`~videodeblur.video.writer.FrameWriter.resume_from`): whether this
run's encoder can continue it, its packets that are whole (as Annex B where this encoder writes
that), with the decode times Matroska does not store filled in, and how far its muxer moved them."""
from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator, Sequence

import av
import av.bitstream

from videodeblur.video.headers import is_annex_b, parameter_sets
from videodeblur.video.inputs import ffmpeg_name
from videodeblur.video.metadata import made_by_mark, made_elsewhere, made_otherwise
from videodeblur.video.streams import pick_video_stream

__all__ = ["annex_b_filter", "closed_prefix", "frame_step", "intact_packets", "moved_by", "prefix_by_times", "resumable_packets",
           "why_not_resumable", "with_decode_times"]


def why_not_resumable(video: av.video.stream.VideoStream, encoder: av.video.codeccontext.VideoCodecContext, *,
                      width: int, height: int, pix_fmt: str, made_by: str | None) -> str | None:
    """Why the partial file's ``video`` cannot be continued by this run's opened ``encoder`` (writing
    ``width``×``height`` ``pix_fmt`` frames made as ``made_by`` says), or None when it can: another
    codec, size or pixel format, another program or model, or other encoder settings (its stream
    header differs)."""
    theirs, mine = video.codec_context, encoder
    made = (theirs.codec.id, theirs.width, theirs.height, theirs.format.name if theirs.format else None)
    wanted = (mine.codec.id, width, height, pix_fmt)
    if made != wanted:
        sizes = {(theirs.width, theirs.height), (width, height)}
        doubled = any({(w, h), (2 * w, h)} == sizes or {(w, h), (w, 2 * h)} == sizes for w, h in sizes)
        hint = "; --side-by-side doubles the picture: give it as the first run did" if doubled else ""
        return (f"it holds {theirs.name} {theirs.width}x{theirs.height} {made[3]}, this run writes "
                f"{mine.name} {width}x{height} {pix_fmt}{hint}")
    marked = made_by_mark(video)
    if made_elsewhere(marked):
        return (f"it was not made by videodeblur (its video track says {marked!r}): run without "
                "--resume to write it anew, or choose another output")
    if made_otherwise(marked, made_by):
        if " from " in marked.partition(", weights ")[0]:
            return "it holds a part of the input (made with --start), which --resume cannot go on with"
        return (f"its frames were made by {marked}, this run's by {made_by}: give the same --model "
                "(and --deinterlace) as the first run")
    codec = mine.codec.canonical_name  # h264, hevc: the format, not the encoder
    ours, before = parameter_sets(mine.extradata, codec), parameter_sets(theirs.extradata, codec)
    if ours is not None and before is not None and ours != before:
        # the header holds the frame rate too: a clip of another rate differs there, whatever the settings
        # (a part's measured rate cannot tell which: a variable-rate part's is not its source's)
        return ("its stream header differs from this run's: it was encoded with other settings (--crf, --preset, "
                "--encoder or --fragmented), or made from another video")
    return None


def annex_b_filter(video: av.video.stream.VideoStream,
                   encoder: av.video.codeccontext.VideoCodecContext) -> av.bitstream.BitStreamFilterContext | None:
    """The filter the partial file's packets go through first, if any. MP4 and MKV store H.264/HEVC
    samples length-prefixed; this encoder's header says Annex B (start codes), and the muxer
    converts what it is given as such, so the old samples are turned back into Annex B first (else
    the muxer mangles them)."""
    codec = encoder.codec.canonical_name
    return (av.bitstream.BitStreamFilterContext(f"{codec}_mp4toannexb", in_stream=video)
            if codec in ("h264", "hevc") and is_annex_b(encoder.extradata)
            and (video.codec_context.extradata or b"")[:1] == b"\x01" else None)


def moved_by(first_pts: int | None, first_s: float | None, origin_s: float | Fraction,
              video: av.video.stream.VideoStream) -> int:
    """How far a muxer moved an interrupted run's frames (in ``video``'s time base): its first frame's
    time less where this writer puts the source's first frame (``first_s``, less ``origin_s``). Read
    from the first packet, not the stream's start time: FFmpeg cannot tell a Matroska file's start from
    a single frame stored without a decode time, and gave the file's (its audio's: 21 ms early)."""
    if first_s is None or video.time_base is None:
        return 0
    start = first_pts if first_pts is not None else video.start_time
    # halves up, as the writer puts a one-rate container's frames in slots from exact times (round() sent
    # them to even slots, and float seconds put 0.12 - 0.1 just under half of 1/25: an AVI cut half a slot
    # after a frame had its copied frames moved a slot back)
    return 0 if start is None else start - math.floor((first_s - origin_s) / video.time_base + 0.5 + 1e-9)


def with_decode_times(packets: Iterator[av.Packet], step: int) -> Iterator[av.Packet]:
    """``packets`` with the decode times Matroska does not store filled in: its demuxer leaves the
    first ones without (and keyframes, for H.264), and the muxer's own guess assumes no reordering
    for HEVC, which put a decode time after the next one's ("Invalid argument" at frame 2 of a
    10-bit HEVC resume). The first ones go a frame (``step``) apart before the first known one; a
    later one a frame after the last, where that is not after its own presentation time."""
    waiting: list[av.Packet] = []
    last: int | None = None
    for packet in packets:
        if packet.dts is None and last is None:
            waiting.append(packet)
            continue
        if packet.dts is None and last is not None and packet.pts is not None and last + step <= packet.pts:
            packet.dts = last + step
        if packet.dts is not None:
            for k, held in enumerate(waiting):
                held.dts = packet.dts - (len(waiting) - k) * step
                yield held
            waiting = []
            last = packet.dts
        yield packet
    yield from waiting  # none had a decode time: the muxer's guess it is


def intact_packets(source: av.container.InputContainer, video: av.video.stream.VideoStream,
                    bsf: av.bitstream.BitStreamFilterContext | None) -> Iterator[av.Packet]:
    """The video packets of an interrupted run's output, through ``bsf`` if given, up to the first
    that is damaged: a process killed mid-write (a fragmented MP4 after ``kill -9``) can leave its
    last packet cut short, and that frame is better made again than copied broken."""
    demuxed = source.demux(video)
    while True:
        try:
            packet = next(demuxed, None)
        except av.FFmpegError:
            packet = None  # the file ends in the middle of a packet
        if packet is not None and not packet.size:
            continue  # the demuxer's own end-of-stream packet; the filter is flushed at the end
        if packet is not None and packet.is_corrupt:
            packet = None
        # (not by a missing dts: Matroska stores none for H.264 with B-frames, and its keyframes come without)
        for out in (([] if packet is None else [packet]) if bsf is None else bsf.filter(packet)):
            if out.pts is not None:
                yield out
        if packet is None:
            return


# frames a B-frame encoder holds back (x264's pyramid: 2; x265: up to 4): a file cut in decode order
# misses frames shown before, at most this many frames before the last one it holds
_REORDER_DEPTH = 4


def frame_step(video: av.video.stream.VideoStream) -> int:
    """One frame interval in ``video``'s time base (1 where the stream gives no rate)."""
    rate = video.average_rate or video.guessed_rate
    return max(1, round(1 / (rate * video.time_base))) if rate and video.time_base else 1


def closed_prefix(entries: list[tuple[int, bool]]) -> int:
    """How many of a partial file's packets (``entries``: pts and keyframe flag, in decode order) make
    a whole prefix: all of them, unless the file was cut in the middle of a group of frames (a write
    that failed on a full disk, a kill), which leaves frames shown before its last ones missing: then
    those before its last keyframe that leaves none missing. Told by the frames' spacing, so only for
    frames at one rate (one step between them, a tick either way for rounding): a gap of more than
    one and a half steps among the last frames shown is missing frames. Frames at irregular times (or
    too few to tell) are kept as they are, as before: a resume then checks them against the input."""
    shown = sorted(pts for pts, _ in entries)
    body = shown[:max(0, len(shown) - _REORDER_DEPTH - 1)]
    steps = [b - a for a, b in zip(body, body[1:])]
    if len(steps) < _REORDER_DEPTH or max(steps) - min(steps) > 1:
        return len(entries)
    step = max(steps)
    cuts = [len(entries), *sorted((i for i, (_, key) in enumerate(entries) if key), reverse=True)]
    for cut in cuts:
        tail = sorted(pts for pts, _ in entries[:cut])[-(_REORDER_DEPTH + 1):]
        if all(b - a <= 1.5 * step for a, b in zip(tail, tail[1:])):
            return cut
    return 0


def prefix_by_times(entries: list[tuple[float, bool]], source_s: Sequence[float], tolerance: float) -> int:
    """:func:`closed_prefix` told by the source's own frame times (``source_s``, in order), which a
    variable rate needs: ``entries`` are the partial file's packets (time in the source's seconds,
    keyframe flag) in decode order. All of them where their times are the source's first ones; where
    the first that differs lies among the last frames shown (a cut mid group of frames), those before
    the last keyframe whose frames are all there; else all (another video: the resume's own check says so)."""
    shown = sorted(t for t, _ in entries)
    if len(shown) > len(source_s):  # more frames than the source has: not a cut, another video
        return len(entries)
    differs = next((i for i, t in enumerate(shown) if abs(t - source_s[i]) > tolerance), len(shown))
    # a cut leaves a later frame where an earlier one is missing, among the last few shown
    if (differs == len(shown) or len(shown) - differs > _REORDER_DEPTH + 1
            or shown[differs] < source_s[differs]):
        return len(entries)
    for cut in sorted((i for i, (_, key) in enumerate(entries) if key), reverse=True):
        kept = sorted(t for t, _ in entries[:cut])
        if all(abs(t - source_s[i]) <= tolerance for i, t in enumerate(kept)):
            return cut
    return 0


def resumable_packets(path: str | Path, *, source_times: Callable[[int], Sequence[float]] | None = None,
                      first_s: float | None = None, origin_s: float | Fraction = 0.0) -> int | None:
    """How many video packets of the partial file at ``path`` a resume keeps, of its
    :func:`intact_packets`: by :func:`prefix_by_times` where ``source_times(n)`` gives the source's first
    ``n`` frame times (its frames in the partial file's times as :func:`moved_by` places them, from
    ``first_s`` and ``origin_s``), else by :func:`closed_prefix`; None when it cannot be read or holds
    no video."""
    try:
        with av.open(ffmpeg_name(path), metadata_errors="replace") as source:
            video = pick_video_stream(source)
            if video is None:
                return None
            entries = [(p.pts, p.is_keyframe) for p in intact_packets(source, video, None)]
            times = source_times(len(entries) + _REORDER_DEPTH + 1) if source_times is not None and entries else []
            if not times or video.time_base is None:
                return closed_prefix(entries)
            moved = moved_by(entries[0][0], first_s, origin_s, video)
            rate = video.average_rate or video.guessed_rate
            tolerance = 0.5 / float(rate) if rate else 0.02
            return prefix_by_times([(float((pts - moved) * video.time_base + origin_s), key) for pts, key in entries],
                                   times, tolerance)
    except (av.FFmpegError, OSError):
        return None
