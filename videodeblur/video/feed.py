"""Hand the packets beside the video (audio, subtitles, cover pictures) from the reader to the writer.

Why: a file is read twice, once for the video and once for the tracks copied beside it, each at its
own pace. A pipe (INPUT ``-``: ``ffmpeg ... | videodeblur video - -o out.mkv``) can be read only once,
so there the reader's one pass over it keeps those packets too, and the writer takes them from here
as its video advances. The reader's thread puts, the writer's thread takes: a deque, whose append and
popleft are atomic. Each packet travels with its stream's index, because a packet's stream may not
be read once the reader has closed its file (PyAV frees it).
"""
from __future__ import annotations

import collections
from typing import Iterable

import av

__all__ = ["PacketFeed"]


class PacketFeed:
    """The packets of ``container``'s streams other than the video, in the order read.

    ``container``: the reader's open input, whose streams are the templates of the tracks copied
    (only their parameters are read, before the output's header is written). ``early``: the packets
    the reader met before the feed was made (while it decoded the first frame to check the input);
    a file's cover pictures are among them, since FFmpeg hands those out first.
    """

    def __init__(self, container: av.container.InputContainer,
                 early: Iterable[tuple[int, av.Packet]] = ()) -> None:
        self.container = container
        self._packets: collections.deque[tuple[int, av.Packet]] = collections.deque(early)

    def put(self, index: int, packet: av.Packet) -> None:
        self._packets.append((index, packet))

    def take(self) -> tuple[int, av.Packet] | None:
        """The oldest packet not yet taken, with its stream index; None when none is there now."""
        try:
            return self._packets.popleft()
        except IndexError:
            return None

    def clear(self) -> None:
        """Forget what was put: the reader went back (a seek), and reads those packets again."""
        self._packets.clear()

    def pictures(self, indices: Iterable[int]) -> dict[int, bytes]:
        """The first packet held of each stream in ``indices`` (attached cover pictures), left in place."""
        wanted, found = set(indices), {}
        for index, packet in list(self._packets):
            if index in wanted and index not in found and packet.size:
                found[index] = bytes(packet)
        return found
