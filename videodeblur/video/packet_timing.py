"""The video's packet timing: each encoded frame's packet gets its frame's duration, decode times
only go forward, and a fragmented file's packets carry what the next fragment cannot tell. Left
to FFmpeg, the last frame of a variable-rate source lasted 1 / the average rate, and an MP4 with
B-frames lost its last frame's duration (the file ended early). Every video packet a writer
makes or copies goes through one :class:`PacketTiming`."""
from __future__ import annotations

import collections
import math
from fractions import Fraction

import av

from videodeblur.video.outputs import MOV_MUXERS

__all__ = ["PacketTiming", "last_frame_as_keyframe"]


def last_frame_as_keyframe(muxer: str, codec: av.Codec, *, fragmented: bool) -> bool:
    """Whether the last frame must be sent as a keyframe to keep its duration: an MP4/MOV file (not
    fragmented) of a codec that reorders frames (B-frames), whose last frame must be decoded last
    (:meth:`PacketTiming.finish`); VP9, AV1 and intra-only codecs never reorder."""
    return muxer in MOV_MUXERS and not fragmented and codec.reorder  # durations are gaps in decode order there


class PacketTiming:
    """Encode ``stream``'s frames and mux its packets into ``container``, each with its duration.

    Each frame's duration, in the encoder's units, is set on its packet: the next frame's time less
    its own, the last one's as given or as long as the one before. ``fragmented``: an MP4/MOV written
    as fragments (:func:`~videodeblur.video.outputs.fragment_options`). ``last_as_keyframe``: see
    :func:`last_frame_as_keyframe`; the newest frame is then held back until the next comes.
    """

    def __init__(self, container: av.container.OutputContainer, stream: av.video.stream.VideoStream, *,
                 fragmented: bool, last_as_keyframe: bool) -> None:
        self._container, self._stream = container, stream
        self._fragmented = fragmented
        self._last_as_keyframe = last_as_keyframe
        self._held: av.Packet | None = None  # fragmented only: the packet waiting for its duration
        self._last_duration = 0
        # Left to the muxer, the last frame lasted 1 / the average rate (3 s after a 30 s pause of a
        # variable-rate source).
        self._durations: dict[int, int] = {}  # encoder pts → duration, for packets still to come
        self._waiting: collections.deque[av.Packet] = collections.deque()  # packets whose duration is unknown yet
        self._coded_pts: int | None = None  # the last frame encoded, in the encoder's units
        self._coded_step = 0  # the time between the last two frames encoded
        self._steps_differ = False  # two gaps between frames encoded differed (variable rate, rounded times)
        self._last_forced = False  # the last frame was sent as a keyframe (_encode_last)
        self._last_given: int | None = None  # the last frame's duration as send() was given it
        # with last_as_keyframe only: the newest frame, held back until the next comes or finish() sends
        # it as a keyframe
        self._unsent: av.VideoFrame | None = None
        self._last_dts: Fraction | None = None  # the last video packet's decode time, in seconds
        self._first_delay_s: Fraction | None = None  # the first video packet's presentation less decode time

    def send(self, frame: av.VideoFrame, *, duration: int | None) -> None:
        """Encode ``frame`` (its ``pts`` in the encoder's units) and mux what the encoder gives back.
        ``duration``: how long it shows, in the encoder's units, kept if it is the last (None: as
        long as the frame before it)."""
        self._last_given = duration if duration else None
        for packet in self._encode_before(frame):
            self._mux_video(packet)

    def repeat(self, frame: av.VideoFrame) -> None:
        """Encode a frame shown again in an empty slot (YUV4MPEG) and mux what comes back."""
        for packet in self._encode(frame):
            self._mux_video(packet)

    def copy(self, packet: av.Packet) -> None:
        """Mux a packet encoded before (a resumed run's), which keeps its own duration."""
        self._mux_video(packet)

    def finish(self) -> None:
        """Send the frame held back, flush the encoder and mux the last packets with their durations."""
        for packet in self._encode_last():
            self._mux_video(packet)
        for packet in self._stream.encode(None):
            self._mux_video(packet)
        self._mux_video(None)

    def _encode_before(self, frame: av.VideoFrame) -> list[av.Packet]:
        """Encode ``frame``, or, where the last frame must be known as it is encoded
        (:meth:`_encode_last`), the one held before it, holding ``frame`` back in its place."""
        if not self._last_as_keyframe:
            return self._encode(frame)
        held, self._unsent = self._unsent, frame
        return self._encode(held) if held is not None else []

    def _encode_last(self) -> list[av.Packet]:
        """Encode the frame held back, the file's last, as a keyframe (IDR) where the timing needs it.
        MP4 and MOV store each sample's duration as the gap to the next in decode order, and only
        the last sample's freely: with B-frames the last decoded sample is a B-frame shown before
        the last frame, so the last frame's own duration was lost (a 2 s closing picture lasted
        40 ms, and the file ended 2 s early, as FFmpeg reads it). An IDR ends the B-frames before
        it: the last frame is decoded last and keeps its duration, at the cost of one keyframe.
        Frames all as long as each other, the last included, come out right without it."""
        held, self._unsent = self._unsent, None
        if held is None:
            return []
        if not self._evenly_timed(held):
            held.pict_type = av.video.frame.PictureType.I
            self._last_forced = True
        return self._encode(held)

    def _evenly_timed(self, last: av.VideoFrame) -> bool:
        """Whether every gap between frames, ``last``'s and its duration included, is the same."""
        if self._coded_pts is None:
            return True  # a single frame: nothing to reorder
        step = last.pts - self._coded_pts
        return (not self._steps_differ and self._coded_step in (0, step)
                and self._last_given in (None, step))

    def _encode(self, frame: av.VideoFrame) -> list[av.Packet]:
        """Encode a frame (its ``pts`` in the encoder's units), which tells how long the one before lasts."""
        if self._coded_pts is not None and frame.pts > self._coded_pts:
            step = frame.pts - self._coded_pts
            self._steps_differ = self._steps_differ or self._coded_step not in (0, step)
            self._coded_step = step
            self._durations[self._coded_pts] = self._coded_step
        self._coded_pts = frame.pts
        return self._stream.encode(frame)

    def _mux_video(self, packet: av.Packet | None) -> None:
        """Mux a video packet; None after the encoder's last one. An encoded frame's packet gets the
        frame's duration (:meth:`_encode`), waiting for it while the next frame has not come yet (an
        encoder without delay hands it out at once); at the end the last frame lasts as
        :meth:`send` was told, else as long as the one before it. A resumed run's copied packets
        keep their own."""
        if packet is None and self._coded_pts is not None and (last := self._last_given or self._coded_step):
            self._durations.setdefault(self._coded_pts, last)
        if packet is None and self._last_forced:
            self._align_last_dts()
        if packet is not None:
            self._waiting.append(packet)
        while self._waiting and (packet is None or self._waiting[0].pts != self._coded_pts
                                 or self._coded_pts in self._durations):
            ready = self._waiting.popleft()
            if ready.pts is not None and ready.pts in self._durations:
                ready.duration = self._durations.pop(ready.pts)
            self._mux_timed(ready)
        if packet is None:
            self._mux_timed(None)

    def _align_last_dts(self) -> None:
        """Give the last frame's packet (sent as a keyframe, so decoded last: :meth:`_encode_last`) the
        reorder delay the first had. MP4's sample table ends at the last decode time plus the last duration, and FFmpeg reads
        the track's length from it: x264 gives the last frame a decode time as far before it as the
        last few frames' gaps, which with variable frame rate differ from the first's, and the track
        ended that much early or late (41 ms short of the last frame's end in a 24000/1001 clip)."""
        last = self._waiting[-1] if self._waiting else None
        if (last is None or last.pts != self._coded_pts or last.dts is None or last.time_base is None
                or self._first_delay_s is None):
            return
        before = (self._waiting[-2].dts * self._waiting[-2].time_base if len(self._waiting) > 1
                  and self._waiting[-2].dts is not None else self._last_dts)
        dts = last.pts - round(self._first_delay_s / last.time_base)
        if before is not None:
            dts = max(dts, math.floor(before / last.time_base) + 1)  # decode times only go forward
        last.dts = min(dts, last.pts)

    def _mux_timed(self, packet: av.Packet | None) -> None:
        """Mux a video packet with its duration; None after the last. A fragmented file stores each
        frame's duration instead of working it out from the next frame's time (the next fragment is
        not written yet): a packet without one (copied from a file that did not store it) is held
        until the next one gives it, and the last one keeps the duration of the one before it."""
        if (self._first_delay_s is None and packet is not None and packet.dts is not None
                and packet.pts is not None and packet.time_base is not None):
            self._first_delay_s = (packet.pts - packet.dts) * packet.time_base  # the first frame's reorder delay
        if packet is not None and packet.dts is not None and packet.time_base is not None:
            # A resumed run's encoder starts its decode times a B-frame delay before its first frame,
            # worked out from its own frame spacing: with variable frame rate that reached back to the
            # copied frames' last decode time, which the muxer refused ("Invalid argument") after
            # writing scrambled times. Decode times only order the samples: the next one up serves.
            if self._last_dts is not None and packet.dts * packet.time_base <= self._last_dts:
                packet.dts = math.floor(self._last_dts / packet.time_base) + 1
            self._last_dts = packet.dts * packet.time_base
        if not self._fragmented:
            if packet is not None:
                self._container.mux(packet)
            return
        held, self._held = self._held, packet
        if held is None:
            return
        if not held.duration:  # else its frame's own
            if packet is not None and packet.dts is not None and held.dts is not None and packet.dts > held.dts:
                held.duration = packet.dts - held.dts
            elif self._last_duration:
                held.duration = self._last_duration
        self._last_duration = held.duration or self._last_duration
        self._container.mux(held)
