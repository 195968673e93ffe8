"""Reading back an interrupted run's output (the partial file), so that a new file can begin with
its frames as they are (:meth:`~videodeblur.video.writer.FrameWriter.resume_from`): whether this
run's encoder can continue it, its packets that are whole (as Annex B where this encoder writes
that), with the decode times Matroska does not store filled in, and how far its muxer moved them."""
from __future__ import annotations

from fractions import Fraction
from typing import Iterator

import av
import av.bitstream

from videodeblur.video.headers import is_annex_b, parameter_sets
from videodeblur.video.metadata import made_by_mark, made_elsewhere, made_otherwise

__all__ = ["annex_b_filter", "intact_packets", "moved_by", "why_not_resumable", "with_decode_times"]


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
    return 0 if start is None else start - round((first_s - origin_s) / video.time_base)


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
