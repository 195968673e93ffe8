"""Counting what reading a video stream saw (packets, frames, errors) and working out from it how many
frames were lost: a truncated or corrupt file yields what decodes, and the user is told how much did
not. Most of the work is telling loss apart from a file's own timing (empty AVI slots, variable rate,
audio that runs on past the picture, a file cut mid-GOP)."""
from __future__ import annotations

import dataclasses

import av

from videodeblur.video.info import VideoInfo, nominal_step

__all__ = ["ReadTally", "StreamSpan"]

# bytes between two packets beyond which the demuxer skipped a damaged stretch (measured: whole
# Matroska files leave at most 24 bytes between packets; a zeroed third of a small one, 5 KB; a
# cluster cut out whole, or a small one zeroed, leaves less, so this only words the warning)
_DAMAGED_STRETCH = 1024


@dataclasses.dataclass(frozen=True)
class StreamSpan:
    """The header's extent of the video stream and the file, kept from the open: PyAV's stream objects
    may not be read once the file is closed, and the loss is worked out after that (a closed file's
    stream once read back a stream index of 477663792)."""

    start: int | None  # the stream's start_time, in its time_base units
    duration: int | None  # the stream's duration, in its time_base units
    file_end_s: float | None  # where the file's streams end (:func:`~videodeblur.video.info.file_end_s`)


@dataclasses.dataclass
class ReadTally:
    """What has been read of the video stream (from the top, or from a seek's keyframe: ``sought``)."""

    frames_decoded: int = 0
    packets_read: int = 0  # video packets demuxed (flush packets excluded)
    packets_discarded: int = 0  # marked "discard" by the demuxer (before an edit list's start)
    # packets before the first keyframe: a file cut mid-GOP begins with frames no decoder can make,
    # which are how it was cut, not loss (None: no keyframe seen yet)
    packets_before_keyframe: int | None = None
    decode_errors: int = 0
    first_error: str | None = None
    packets_end: int | None = None  # latest pts + duration of a packet read, in time_base units
    packets_start: int | None = None  # earliest pts of a packet read, in time_base units
    packet_durations: bool = True  # every packet read carried its duration (else one frame is added)
    others_end_s: float | None = None  # where the other streams' packets (audio, subtitles) end
    sought: bool = False  # read from a seek's keyframe on, not from the stream's start
    # the most bytes between one packet's end and the next one's start, all streams in file order: a
    # stretch the demuxer skipped (a damaged part) is kilobytes; a whole file's are container overhead
    largest_skip: int = 0
    _read_up_to: int | None = None  # where the last packet read ends, in bytes

    def _note_position(self, packet: av.Packet) -> None:
        if packet.pos is None or packet.pos < 0:
            return
        if self._read_up_to is not None:
            self.largest_skip = max(self.largest_skip, packet.pos - self._read_up_to)
        self._read_up_to = packet.pos + packet.size

    def count_video_packet(self, packet: av.Packet) -> None:
        """Note a packet of the video stream as it is demuxed."""
        if not packet.size:
            return
        self._note_position(packet)
        self.packets_read += 1
        self.packets_discarded += packet.is_discard
        if self.packets_before_keyframe is None and packet.is_keyframe:
            self.packets_before_keyframe = self.packets_read - 1
        if packet.pts is not None:
            self.packet_durations &= bool(packet.duration)
            end = packet.pts + (packet.duration or 0)
            self.packets_end = end if self.packets_end is None else max(self.packets_end, end)
            self.packets_start = packet.pts if self.packets_start is None else min(self.packets_start, packet.pts)

    def count_other_packet(self, packet: av.Packet) -> None:
        """Note a packet of another stream (audio, subtitles): where they end says whether the file is whole."""
        if packet.size:
            self._note_position(packet)
        if packet.size and packet.pts is not None and packet.time_base is not None:
            end_s = float((packet.pts + (packet.duration or 0)) * packet.time_base)
            self.others_end_s = end_s if self.others_end_s is None else max(self.others_end_s, end_s)

    def count_error(self, err: Exception) -> None:
        self.decode_errors += 1
        if self.first_error is None:
            self.first_error = " ".join(str(err).split())

    def frames_lost(self, info: VideoInfo, span: StreamSpan) -> int:
        """Frames missing from the file, plus packets read that decoded to nothing, once read to its
        end (:attr:`~videodeblur.video.reader.FrameReader.frames_lost` says what counts)."""
        missing, _ = self.missing_packets(info, span)
        undecoded = max(self.packets_read - self.packets_discarded - (self.packets_before_keyframe or 0)
                        - self.frames_decoded, 0)
        return missing + undecoded

    def missing_packets(self, info: VideoInfo, span: StreamSpan) -> tuple[int, bool]:
        """Packets the header counts that never came (``frames_lost`` explains when they count), and
        whether that number is an estimate: from the duration, where the header counts no frames,
        or from the density of the part read of a gappy file whose header counts empty slots."""
        expected = max((info.frames or 0) - self._slots_before(info, span), 0)
        missing = max(expected - self.packets_read, 0)
        if not info.frames_exact and missing <= max(1, expected // 50):
            return 0, False
        if not missing or self._reaches_stream_end(info, span):
            return 0, False
        if not info.frames_exact and self._others_outlast_video(info, span):
            return 0, False
        if info.frames_exact and (density := self._slot_density(info, span)) is not None:
            # cut short *and* gappy: the header's count holds empty slots, so count the missing part
            # of the stream at the density of the part that was read. Not from a count estimated
            # from the duration: it holds no empty slots, and a Matroska file that lost the middle
            # third of its frames read as "about 1 lost" (23 read over 40 slots, 1 slot left)
            return round((expected - self._slots_covered(info, span)) * density), True
        return missing, not info.frames_exact

    def read_to_its_end(self, info: VideoInfo, span: StreamSpan) -> bool:
        """Whether the video was read to the end the file's header states, with no stretch of bytes
        skipped on the way: then frames missing from a count estimated as duration × rate may be a
        pause (a variable rate: a screen recording, a security camera) as well as loss (a cluster cut
        out leaves no skip), and the warning says both. Not read from the start: unknown, False."""
        if self.packets_end is None or span.file_end_s is None or self.sought or self.largest_skip > _DAMAGED_STRETCH:
            return False
        return float((self._video_end(info) + nominal_step(info) / 2) * info.time_base) >= span.file_end_s

    def _video_end(self, info: VideoInfo) -> float:
        """Where the video packets read end, in ``time_base`` units: the last one's end, or a frame past
        its start where packets carry no duration (``packets_end`` must be known)."""
        assert self.packets_end is not None
        return self.packets_end + (0 if self.packet_durations else nominal_step(info))

    def _others_outlast_video(self, info: VideoInfo, span: StreamSpan) -> bool:
        """Whether the other streams were read to the file's end and past the video's last packet:
        the file is whole, and the duration it declares is theirs, not a count of lost frames. Past
        it by more than a frame: sound that ends with the picture (a few milliseconds after it, as
        codecs frame it) says nothing of frames missing before (a WebM that lost 7 of its 40 frames
        in the middle read as whole, its Opus ending 1 ms after the last frame)."""
        file_end_s = span.file_end_s
        if self.others_end_s is None or file_end_s is None or self.packets_end is None:
            return False
        video_end_s = float(self.packets_end * info.time_base)
        frame_s = 1 / float(info.fps) if info.fps else 0.0
        return (self.others_end_s >= file_end_s - max(0.5, 0.02 * file_end_s)
                and self.others_end_s > video_end_s + frame_s)

    def _reaches_stream_end(self, info: VideoInfo, span: StreamSpan) -> bool:
        """Whether the packets read cover the stream's whole duration (to within half a frame). A
        header that counts more frame slots than that duration spans is believed over it: FFmpeg
        measures an AVI cut before its index by the frames the file still holds (27 of 40 read as
        a whole 27-frame stream)."""
        if self.packets_end is None or span.duration is None:
            return False  # unknown: the header's count stands
        step = nominal_step(info)
        end = self._video_end(info)
        duration = span.duration
        if info.frames_exact and info.frames:
            duration = max(duration, info.frames * step)
        return end + step / 2 >= (span.start or 0) + duration

    def _slots_covered(self, info: VideoInfo, span: StreamSpan) -> float:
        """How many of the header's frame slots the packets read span, from where reading began."""
        start = self._read_from(span)
        return (self.packets_end - start) / nominal_step(info) if self.packets_end is not None else 0.0

    def _read_from(self, span: StreamSpan) -> int:
        """Where the packets read begin, in ``time_base`` units: the stream's start, or after a seek
        the earliest packet read since."""
        if self.sought and self.packets_start is not None:
            return self.packets_start
        return span.start or 0

    def _slots_before(self, info: VideoInfo, span: StreamSpan) -> int:
        """The header's frame slots before where reading began (none unless a window sought past them)."""
        return max(0, round((self._read_from(span) - (span.start or 0)) / nominal_step(info)))

    def _slot_density(self, info: VideoInfo, span: StreamSpan) -> float | None:
        """Packets read per frame slot they span, when clearly below one (< 0.9: the file leaves
        slots empty); None for ordinary files, where every slot holds a frame."""
        covered = self._slots_covered(info, span)
        if self.packets_read < 2 or covered <= 0:
            return None
        density = self.packets_read / covered
        return density if density < 0.9 else None
