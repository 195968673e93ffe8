"""Deinterlacing decoded frames with FFmpeg's bwdif filter: the network cannot undo the combing of
two fields in one frame (1080i broadcast, DV), so the reader can turn each interlaced frame into
one progressive frame first, at its own time, keeping the source's frame count and timing."""
from __future__ import annotations

from typing import Iterator

import av

__all__ = ["deinterlaced"]


def deinterlaced(frames: Iterator[av.VideoFrame], stream: av.video.stream.VideoStream) -> Iterator[av.VideoFrame]:
    """``frames`` through bwdif (one frame of look-ahead: it is flushed at the end), the graph set up
    from the first frame's size and format."""
    graph: av.filter.Graph | None = None
    time_base = stream.time_base

    def drained() -> Iterator[av.VideoFrame]:
        while graph is not None:
            try:
                out = graph.pull()
            except (av.error.BlockingIOError, av.error.EOFError):
                return
            if out.pts is not None and out.time_base is not None and out.time_base != time_base:
                # bwdif halves the time base (it could send a frame per field): back to the stream's
                out.pts = round(out.pts * out.time_base / time_base)
                if getattr(out, "duration", None):
                    out.duration = round(out.duration * out.time_base / time_base)
                out.time_base = time_base
            yield out

    for frame in frames:
        if graph is None:
            time_base = frame.time_base or stream.time_base
            graph = av.filter.Graph()
            source = graph.add_buffer(width=frame.width, height=frame.height, format=frame.format.name,
                                      time_base=time_base)
            bwdif = graph.add("bwdif", "mode=send_frame:parity=auto:deint=interlaced")
            sink = graph.add("buffersink")
            source.link_to(bwdif)
            bwdif.link_to(sink)
            graph.configure()
        graph.push(frame)
        yield from drained()
    if graph is not None:
        graph.push(None)
        yield from drained()
