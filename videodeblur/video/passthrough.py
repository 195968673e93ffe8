"""Carry a source's audio, subtitle and data tracks into a new file beside the deblurred video.

Why a module of its own: the writer's job is the video; this one keeps everything else the viewer
hears and reads, and what other tools read: a GoPro's telemetry track (gyro, GPS: what Gyroflow
stabilises with and what maps are drawn from). Each track is remuxed packet by packet (no
re-encode, bit for bit), with its language and title. Only where the output container cannot hold
a track does it change: audio is then re-encoded to the container's own audio codec (AAC into WebM
becomes Opus), as the ffmpeg tool does, because silently dropping the sound would lose more than a
second generation of it; subtitles and data the container cannot hold (SubRip in MP4, telemetry
in MKV) are left out. Both are listed, so the run can say so. A timecode track is not copied as a
track: the muxer writes it anew from the video stream's ``timecode`` tag, which the writer keeps.
Attachments go across too: a Matroska file's fonts (what its styled ASS subtitles are drawn with;
without them a player falls back to a plain font) and a cover picture (MP4's ``covr``, Matroska's
``cover.jpg``), each in the form the output container stores it.
"""
from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np
from av.bitstream import BitStreamFilterContext

from videodeblur.errors import OutputError, UnreadableInputError
from videodeblur.video.attachments import carry_attachments, read_pictures
from videodeblur.video.encoders import probe_format
from videodeblur.video.feed import PacketFeed
from videodeblur.video.inputs import ffmpeg_name
from videodeblur.video.locations import NETWORK_TIMEOUTS_S, is_named_pipe, is_url
from videodeblur.video.outputs import MOV_MUXERS
from videodeblur.video.streams import is_chapter_track

__all__ = ["Passthrough", "transcode_bit_rate"]

# FFmpeg's default layout for a channel count (av_channel_layout_default), as the ffmpeg tool guesses it
_DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}
# the other named layouts of each count, for an encoder that refuses a source's own (_encodable_layout)
# (not 3.0 for 2.1: its centre would be silent, and the LFE gone all the same)
_OTHER_LAYOUTS = {4: ("quad",), 5: ("5.0(side)", "4.1"), 6: ("5.1(side)", "6.0"), 7: ("6.1(back)", "7.0"),
                  8: ("7.1(wide)",)}

# what an Opus decoder needs decoded before a cut to have converged there (RFC 7845, 4.6)
_OPUS_PRE_ROLL_S = 0.08


class Passthrough:
    """The audio (``audio``), subtitle (``subtitles``) and data (``data``) tracks of ``source``, added to ``output``
    before its header is written and then fed in as the video advances (:meth:`copy`), and its
    attachments and cover pictures (``attachments``; :mod:`videodeblur.video.attachments`).

    ``window``: only the packets that start in ``(start, end)`` (the source's seconds; None: from
    the start, to the end), moved back by ``start`` so that the window begins at 0, as the video's
    frames are (without a start, by :meth:`set_origin`'s time; :attr:`start_s`: where the copied
    tracks start); into MP4/MOV also the audio packet playing at the start and the one before it,
    below 0, where the edit list hides them (:meth:`_before_start`). Packets the source hides
    (before an MP4 edit list's start) that lie wholly before their track's start are left out of a
    container that could not hide them: they would play. ``fragmented``: ``output`` is a fragmented
    MP4/MOV, whose header is written before FFmpeg's muxer would read the config of ADTS-framed
    AAC (from MPEG-TS) from its first packet: AAC-LC gets its config from the stream's rate and
    channels and is copied through FFmpeg's ``aac_adtstoasc`` filter; other ADTS AAC (HE-AAC,
    whose header gives half the rate) is encoded anew.
    ``source`` is a path or URL, opened here a second time and read at the writer's pace, or the
    :class:`~videodeblur.video.feed.PacketFeed` of a reader of a pipe, which cannot be.
    ``audio_packets`` / ``subtitle_packets`` / ``data_packets``: packets written. ``skipped``: tracks left out,
    ``converted``: tracks re-encoded, each as a sentence for the run's warnings. ``kind``: what the
    messages call the output (".mkv"; default: its extension).
    """

    def __init__(self, source: str | Path | PacketFeed, output: av.container.OutputContainer, *, audio: bool = True,
                 subtitles: bool = True, data: bool = True, attachments: bool = True,
                 window: tuple[float | None, float | None] | None = None, fragmented: bool = False,
                 kind: str | None = None) -> None:
        self.audio_packets = 0
        self.subtitle_packets = 0
        self.data_packets = 0
        self.attachments: list[str] = []  # attachments and covers written, by name
        self.skipped: list[str] = []
        self.converted: list[str] = []
        self._output = output
        self._kind = kind or Path(output.name).suffix or output.format.name  # ".mkv", for messages
        self._fragmented = fragmented
        self._out: dict[int, av.stream.Stream] = {}  # source stream index → output stream
        self._formats: dict[int, tuple[str, str, int | None, str | None]] = {}  # source stream index → _format()
        self._transcodes: dict[int, _Transcode] = {}
        self._unframed: dict[int, tuple[bytes, BitStreamFilterContext]] = {}  # ADTS tracks copied: config, filter
        self._pending: tuple[int, av.Packet] | None = None  # (source stream index, packet) read but not yet due
        self._covers: list[av.Packet] = []  # MP4 cover pictures, muxed once the header is written
        self._iter: Iterator[tuple[int, av.Packet]] | None = None
        self._done = False  # every packet of the copied tracks has been written (or none are copied)
        self._await_align = False  # a live source opened again: its packets wait for align()
        self._last_s: float | None = None  # the output time of the last packet written
        self._last_dts: dict[int, Fraction] = {}  # output stream index → its last packet's dts, in seconds
        self._went_back: set[int] = set()  # output stream indices whose packets went back in time (said once)
        self._floor_s: float | None = None  # after a follow(): packets at or before this time are dropped
        self._start, self._end = window or (None, None)
        self._origin: float | Fraction = self._start or 0.0  # the source's time that is the output's 0
        self._starts: dict[int, Fraction] = {}  # source stream index → its start, in seconds
        # the output's edit lists can hide what the source hides (AAC's priming, a cut's lead-in).
        # Matroska (WebM) can hide samples only at a track's start, as its CodecDelay, which FFmpeg 8
        # writes from the stream's initial_padding and reads back as samples its decoder skips (an
        # AAC track PyAV encodes into .mkv reads back from 0, its priming skipped); PyAV cannot set
        # initial_padding on a stream (a copied one takes the source's, 0 from MP4), and a Block's
        # DiscardPadding, which FFmpeg's muxer writes only as samples cut off a packet's end, cannot
        # cut its start. So a copied track's part starts with the first packet from the cut on:
        # its sound up to a packet (21 ms of AAC) late, the first packet decoded alone; measured
        # at --start 0.52: 13 ms late, the first 21 ms up to 0.27 off the source's samples.
        self._hides = output.format.name in MOV_MUXERS
        self.start_s: Fraction | None = None  # the earliest start of the tracks copied
        self._feed = source if isinstance(source, PacketFeed) else None
        if self._feed is not None:
            self._in: av.container.InputContainer | None = self._feed.container  # the reader's: not closed here
        elif is_named_pipe(source):
            # its bytes went to the video's reader: opening it again would wait for ever for a writer
            self.skipped.append(f"the tracks beside the video (audio, subtitles...) of {source}: it is a named pipe, "
                                f"read once, for the video; give it as standard input (- < {source}) to keep them")
            self._in = None
            self.close()
            return
        else:
            try:
                self._in = av.open(ffmpeg_name(source), "r", metadata_errors="replace",
                                   timeout=NETWORK_TIMEOUTS_S if is_url(source) else None)
            except av.FFmpegError as err:
                raise UnreadableInputError(f"cannot read the tracks beside the video (audio, subtitles...) of "
                                           f"{source}: {err}") from err
        # every track: languages, commentary, stereo + 5.1, subtitles; not an MP4's chapter track,
        # which the muxer writes anew from the chapters the writer keeps
        streams = self._in.streams
        sources = [*(streams.audio if audio else ()),
                   *(s for s in (streams.subtitles if subtitles else ()) if not is_chapter_track(self._in, s)),
                   *(s for s in (streams.data if data else ())
                     if not any(key.lower() == "timecode" for key in s.metadata)
                     and not is_chapter_track(self._in, s))]
        # a track whose codec FFmpeg cannot name (a damaged header) can be neither copied nor decoded; data
        # tracks (GoPro telemetry) have no codec context by nature and are copied as packets
        unknown = [s for s in sources if s.type != "data" and s.codec_context is None]
        sources = [s for s in sources if s not in unknown]
        self.skipped.extend(f"{s.type} stream {s.index}: FFmpeg cannot tell its codec (a damaged or unsupported "
                            "track)" for s in unknown)
        data_left_out = [s for s in sources if s.type == "data" and not _takes(output.format.name, s)]
        try:
            for src in sources:
                if src not in data_left_out:
                    self._add(src)
        except BaseException:
            self.close()
            raise
        if data_left_out:
            self.skipped.append(self._data_note(data_left_out))
        for src in sources:
            if src.index in self._out and src.start_time is not None and src.time_base is not None:
                self._starts[src.index] = src.start_time * Fraction(src.time_base)
        self.start_s = min(self._starts.values(), default=None)
        if attachments:
            pictures = (self._feed.pictures if self._feed is not None
                        else lambda covers: read_pictures(source, covers))
            carried = carry_attachments(self._in, output, pictures, fragmented=fragmented, kind=self._kind)
            self._covers, self.attachments = carried.covers, carried.written
            self.skipped.extend(carried.skipped)
        if not self._out:
            self.close()
            return
        if self._feed is not None:
            return  # packets come as the reader reads them, from the start on
        if self._start is not None:  # near the start, a second early: the packets before it are dropped below
            # not before the file's start, which may be below 0 (an MPEG-TS whose clock wraps reads so)
            first_s = self._in.start_time / av.time_base if self._in.start_time is not None else 0.0
            # no seek to the file's own start: after one, a file joined from two (cat a.mkv b.mkv) read
            # only its first part, so the second's sound was lost without the "go back" warning
            if self._start - 1.0 > first_s:
                try:
                    self._in.seek(int((self._start - 1.0) * av.time_base), backward=True)
                except av.FFmpegError:
                    pass  # an unseekable source is read from its start
        self._iter = ((p.stream.index, p) for p in self._in.demux(*(s for s in sources if s.index in self._out)))

    def align(self, start_s: float) -> None:
        """A feed from a live source: its clock's ``start_s`` is the output's 0 (what ``window``'s
        start is for a file), known only once the first frame is written."""
        self._start = self._origin = start_s
        self._await_align = False

    def set_origin(self, origin_s: float | Fraction) -> None:
        """Move every packet back by ``origin_s`` (the source's seconds): the output's 0, for a source
        that does not start at 0 and no window's start (call before :meth:`copy`)."""
        self._origin = origin_s

    def follow(self, feed: PacketFeed | None) -> None:
        """Go on from ``feed``, a new opening of the same live source (None: stop copying). Its tracks
        are matched to the ones being written by kind and order; one that differs (another codec,
        rate or layout) ends its track, since one output track has one format. Packets are then held
        back until :meth:`align` ties the new clock to the output's, and never go back in time."""
        self._pending = None
        if self._feed is None or feed is None:
            self.close()
            return
        # matched by what was kept of the old tracks: the old opening's streams may be freed by now
        fresh: dict[int, av.stream.Stream] = {}
        transcodes: dict[int, _Transcode] = {}  # the old decoders' last few samples are let go: the encoder goes on
        unframed: dict[int, tuple[bytes, BitStreamFilterContext]] = {}
        formats: dict[int, tuple[str, str, int | None, str | None]] = {}
        for kind in ("audio", "subtitle"):
            old = [i for i in self._out if self._formats[i][0] == kind]
            new = [s for s in feed.container.streams if s.type == kind]
            for before, after in zip(old, new):
                config = self._unframed[before][0] if before in self._unframed else None
                if _format(after) == self._formats[before] and (config is None or (
                        _adts(after) and _adts_config(after) == config)):  # the header's config must still hold
                    fresh[after.index], formats[after.index] = self._out[before], self._formats[before]
                    if before in self._transcodes:
                        transcodes[after.index] = _Transcode(after, self._out[before])
                    if config is not None:
                        unframed[after.index] = (config, BitStreamFilterContext("aac_adtstoasc", after))
        self._formats = formats
        self._starts = {}  # a live source's packets are not hidden; its indices are the new opening's
        self._floor_s = self._last_s  # nothing before what was written already
        self._feed, self._in, self._out, self._transcodes = feed, feed.container, fresh, transcodes
        self._unframed = unframed
        self._await_align = True

    def describe(self) -> list[str]:
        """Each output track as "codec type", for an error that names what the container refused."""
        return [f"{out.codec_context.name} {out.type}" for out in self._out.values()]

    def copy(self, *, until_s: float | None) -> None:
        """Write the source's packets up to ``until_s`` seconds (all of them when None)."""
        for cover in self._covers:
            self._output.mux(cover)
        self._covers = []
        while not self._done and not self._await_align:
            item = self._pending or self._next()
            self._pending = None
            if item is None:
                break
            index, packet = item
            if packet.dts is None:  # the demuxer's end-of-stream flush packet
                continue
            if packet.is_corrupt:
                # cut short (an input that ends inside it) or damaged: copied, no decoder took it ("Invalid
                # data found"); re-encoded, its decoding failed the run. The reader says what was lost.
                continue
            at = float(packet.pts * packet.time_base) if packet.pts is not None else None
            if at is not None and (self._before_start(index, packet, at)
                                   or (self._end is not None and at >= self._end - 1e-9)):
                if self._end is not None and at > self._end + 1.0:  # well past it: nothing later can be inside
                    self.close()
                    break
                continue
            if self._hidden(index, packet):
                continue
            out_s = at - float(self._origin) if at is not None else None  # its time in the output
            if until_s is not None and out_s is not None and out_s > until_s:
                self._pending = item
                return
            if self._floor_s is not None and out_s is not None and out_s <= self._floor_s:
                continue
            if self._origin:
                shift = round(self._origin / packet.time_base)
                packet.pts = packet.pts - shift if packet.pts is not None else None
                packet.dts -= shift
            if self._goes_back(index, packet):
                continue
            self._write(index, packet)
            self._last_s = out_s if out_s is not None else self._last_s

    def finish(self) -> None:
        """Flush the re-encoded tracks (their encoders hold the last frames). Call once, after the
        last :meth:`copy`."""
        for transcode in self._transcodes.values():
            for encoded in transcode.packets(None):
                self._mux(encoded)
            if transcode.undecodable:
                self.skipped.append(f"{transcode.undecodable} packet(s) of {transcode.name} that did not decode "
                                    "(damaged in the input)")
        self._transcodes.clear()

    def close(self) -> None:
        """Stop copying: the source is closed (a feed's reader closes its own)."""
        if self._in is not None and self._feed is None:
            self._in.close()
        self._in = None
        self._iter = None
        self._done = True

    def _next(self) -> tuple[int, av.Packet] | None:
        """The next packet of a copied track with its stream's index; None at the source's end or,
        from a feed, until the reader has read more."""
        if self._feed is not None:
            while (item := self._feed.take()) is not None:
                if item[0] in self._out:
                    return item
            return None
        item = next(self._iter, None) if self._iter is not None else None
        if item is None:
            self.close()
        return item

    # --- helpers ---------------------------------------------------------------------------------
    def _before_start(self, index: int, packet: av.Packet, at: float) -> bool:
        """Whether ``packet`` (at ``at`` s) is left out as before the start (a window's, or a live
        recording's first frame: :meth:`align`). Where the output's edit list hides what plays before
        0 (MP4, MOV), an audio packet that plays on past the start is kept, and so is the one before
        it, which its decoder needs (AAC's frames overlap: the first decoded alone is a wrong
        fade-in; Opus needs 80 ms). Dropped, the sound began up to a packet (21 ms of AAC) after
        the picture, and its first packet was that fade-in: not the source's samples. A track
        re-encoded (AAC into WebM) keeps them too, for its decoder: its samples before 0 are cut off
        once decoded (:func:`_from_zero`). Matroska cannot hide a copied packet's samples before 0:
        see :attr:`_hides`."""
        if self._start is None or at >= self._start - 1e-9:
            return False
        if not ((self._hides or index in self._transcodes) and packet.duration and self._formats[index][0] == "audio"):
            return True
        length = float(packet.duration * packet.time_base)
        pre_roll = max(length, _OPUS_PRE_ROLL_S if self._formats[index][1] in ("opus", "libopus") else 0.0)
        return at + length + pre_roll <= self._start + 1e-9

    def _hidden(self, index: int, packet: av.Packet) -> bool:
        """Whether ``packet`` is one the source hides (marked discard: before an MP4 edit list's start)
        and ends before its track starts, going into a container without edit lists, where it would
        play (a cut's 0.5 s of audio before the picture put the video that late in Matroska). One
        that reaches the start (AAC's priming) is kept: the decoder needs it."""
        start = self._starts.get(index)
        if self._hides or not packet.is_discard or start is None or packet.pts is None:
            return False
        return (packet.pts + (packet.duration or 0)) * packet.time_base < start

    def _goes_back(self, index: int, packet: av.Packet) -> bool:
        """Whether ``packet`` decodes before one already written to its output track: a file joined
        from two, whose second part's clock starts again, or a clock that was reset. A muxer refuses
        it ("Invalid argument"), which ended the whole run, so it is left out, and said once a track
        (the video's frames keep their order: the reader steps each on from the last)."""
        if packet.dts is None or packet.time_base is None:
            return False
        out = self._out[index].index
        at, last = packet.dts * Fraction(packet.time_base), self._last_dts.get(out)
        # audio packets each last a while, so two at one time are out of order too; subtitles may
        # start together (a sign and a line of dialogue), and the muxer decides whether it can hold them
        if last is None or at > last or (at == last and self._formats[index][0] != "audio"):
            self._last_dts[out] = at
            return False
        if out not in self._went_back:
            self._went_back.add(out)
            kind, codec = self._formats[index][:2]
            self.skipped.append(f"the packets of {codec} {kind} (stream {index}) whose timestamps go back, first at "
                                f"{float(last):.2f} s (a file joined from two, a clock reset, or damage)")
        return True

    def _add(self, src: av.stream.Stream) -> None:
        if src.type == "audio" and self._output.default_audio_codec in (None, "none"):
            self.skipped.append(f"{_format_name(src)} audio (stream {src.index}): {self._kind} files hold "
                                "video only")
            return
        if src.type == "audio" and self._fragmented and _adts(src) and _adts_config(src) is None:
            out = self._transcoded_stream(src, f"a fragmented {self._kind} file cannot take ADTS-framed "
                                               f"{src.codec_context.profile or 'AAC'} as it is")
        elif src.type == "audio" and self._fragmented and _adts(src):
            out = self._output.add_stream_from_template(src)
            config = _adts_config(src)
            out.codec_context.extradata = config  # in the header, which is written before any packet
            self._unframed[src.index] = (config, BitStreamFilterContext("aac_adtstoasc", src))
        elif src.type == "audio" and not _takes(self._output.format.name, src):
            # asked first: a muxer that takes the track here (MOV with FLAC) may refuse it only when the
            # header is written, which stopped the run where re-encoding it would do
            out = self._transcoded_stream(src, f"{self._kind} files cannot hold {_format_name(src)}")
        else:
            try:
                out = self._output.add_stream_from_template(src)
            except ValueError as err:
                if src.type != "audio":
                    self.skipped.append(f"{src.codec_context.name} subtitles (stream {src.index}): "
                                        f"{self._kind} files cannot hold them{self._elsewhere(src)}")
                    return
                out = self._transcoded_stream(src, f"{self._kind} files cannot hold {_format_name(src)}",
                                              refused=err)
        if src.type == "audio" and src.index not in self._transcodes:
            out.codec_context.layout = _named_layout(src.codec_context.layout)
        for key in ("language", "title", "handler_name"):
            if key in src.metadata:
                out.metadata[key] = src.metadata[key]
        if "title" not in src.metadata and "name" in src.metadata:  # an MP4 track's title reads back as "name"
            out.metadata["title"] = src.metadata["name"]
        # which track a player picks (default), and subtitles shown whatever the settings (forced)
        out.disposition = src.disposition
        self._out[src.index] = out
        self._formats[src.index] = _format(src)

    def _data_note(self, left_out: list[av.stream.Stream]) -> str:
        """One line for the data tracks this container refused (a phone's several metadata tracks
        would otherwise fill the warnings), saying which container would hold them."""
        def name(src: av.stream.Stream) -> str:
            handler = src.metadata.get("handler_name")
            return f"stream {src.index}{', ' + handler if handler else ''}"

        fits_mp4 = self._output.format.name != "mp4" and all(_takes("mp4", src) for src in left_out)
        hint = "; .mp4 can" if fits_mp4 else ""
        if len(left_out) == 1:
            src = left_out[0]
            return f"{src.name or 'unknown'} data ({name(src)}): {self._kind} files cannot hold it{hint}"
        return (f"{len(left_out)} data tracks ({'; '.join(map(name, left_out))}): {self._kind} files cannot hold "
                f"them{hint}")

    def _elsewhere(self, src: av.stream.Stream) -> str:
        """"; .mkv can" for a track this container refused: the first of .mkv and .mp4 that holds
        it and is not the container being written ("" if neither)."""
        for suffix, container in ((".mkv", "matroska"), (".mp4", "mp4")):
            if container != self._output.format.name and suffix != self._kind and _takes(container, src):
                return f"; {suffix} can"
        return ""

    def _transcoded_stream(self, src: av.audio.stream.AudioStream, why: str, *,
                           refused: Exception | None = None) -> av.stream.Stream:
        """An output audio track in the container's own audio codec, for a source track it cannot
        take as it is (``why``, for the warning; ``refused``: the muxer's own refusal)."""
        default = self._output.default_audio_codec
        try:
            codec = av.Codec(default, "w")
        except (av.codec.codec.UnknownCodecError, ValueError) as err:
            raise OutputError(f"{Path(self._output.name).name} cannot hold the input's {_format_name(src)} "
                              f"audio ({refused or why}); use .mp4, .mkv or .mov, or drop the audio "
                              "(--no-audio)") from refused or err
        rates = codec.audio_rates or ()
        rate = src.codec_context.sample_rate or 48000
        if rates and rate not in rates:  # Opus: 48 kHz and its divisions only
            rate = min((r for r in rates if r >= rate), default=max(rates))
        out = self._output.add_stream(codec.name, rate=rate)
        layout = _named_layout(src.codec_context.layout)
        out.codec_context.layout = _encodable_layout(codec, rate, layout)
        out.codec_context.bit_rate = _encodable_bit_rate(codec, rate, out.codec_context.layout)
        self._transcodes[src.index] = _Transcode(src, out)
        moved = "" if out.codec_context.layout.name == layout.name else \
            f", its {layout.name} channels as {out.codec_context.layout.name}"
        source_rate = src.codec_context.sample_rate
        if source_rate and rate != source_rate:  # Opus takes 48 kHz and its divisions, mp2 16 kHz and up
            moved += f", resampled from {source_rate / 1000:g} to {rate / 1000:g} kHz"
        # FLAC and PCM (.ogv, .mxf) have no bit rate to set: the one asked for is not what they write
        size = "(lossless)" if codec.lossless and not codec.lossy else f"{out.codec_context.bit_rate // 1000} kb/s"
        self.converted.append(f"{_format_name(src)} audio (stream {src.index}) re-encoded as {codec.name} "
                              f"{size}{moved}: {why}")
        return out

    def _write(self, index: int, packet: av.Packet) -> None:
        if index in self._transcodes:
            for encoded in self._transcodes[index].packets(packet):
                self._mux(encoded)
            return
        if index in self._unframed:  # ADTS headers off, as the config in the file's header says them once
            for unframed in self._unframed[index][1].filter(packet):
                unframed.stream = self._out[index]
                self._mux(unframed)
            return
        packet.stream = self._out[index]
        self._mux(packet)

    def _mux(self, packet: av.Packet) -> None:
        self._output.mux(packet)
        if packet.stream.type == "audio":
            self.audio_packets += 1
        elif packet.stream.type == "subtitle":
            self.subtitle_packets += 1
        else:
            self.data_packets += 1


def transcode_bit_rate(codec: str, channels: int) -> int:
    """Bits per second for audio that has to be re-encoded: 64 kb/s per channel for Opus (about
    transparent for music), 96 kb/s per channel for the older codecs (Vorbis, MP3, AC-3...)."""
    return (64_000 if codec in ("libopus", "opus") else 96_000) * max(1, channels)


def _format(src: av.stream.Stream) -> tuple[str, str, int | None, str | None]:
    """What packets of ``src`` need of the output track they go into: kind and codec and, for audio,
    rate and channel layout (a live source opened again must match them to go on in the same track)."""
    codec = src.codec_context  # None for a data track (telemetry): no codec, only its tag
    if src.type != "audio" or codec is None:
        return src.type, codec.name if codec is not None else (src.name or "data"), None, None
    return src.type, codec.name, codec.sample_rate, codec.layout.name


def _named_layout(layout: av.AudioLayout) -> av.AudioLayout:
    """``layout``, or where it only counts its channels (PCM from an AVI or a Matroska file says no
    more) FFmpeg's default layout for that count, as the ffmpeg tool guesses it: the MP4 muxer takes
    unnamed channels when the header is written, then fails at the end, leaving a file with no index
    (no frame of it played), or, fragmented, a broken sample description and no error at all."""
    if layout.nb_channels in _DEFAULT_LAYOUTS and all(c.name == "NONE" for c in layout.channels):
        return av.AudioLayout(_DEFAULT_LAYOUTS[layout.nb_channels])
    return layout


def _encodable_layout(codec: av.Codec, rate: int, layout: av.AudioLayout) -> av.AudioLayout:
    """``layout``, or where ``codec`` will not open with it, the first layout of as many channels it
    takes, FFmpeg's default for the count first, as the ffmpeg tool picks one: libopus takes only
    Vorbis channel orders, not the 5.1(side) that AC-3 and DTS decode to (the run stopped, blaming the
    container). Else stereo, then mono: MPEG-TS's mp2 takes no more (5.1 FLAC into .ts stopped the
    run). The encoder's resampler then moves or mixes the channels (side to back, 5.1 down to two)."""
    names = (_DEFAULT_LAYOUTS.get(layout.nb_channels), *_OTHER_LAYOUTS.get(layout.nb_channels, ()), "stereo", "mono")
    for candidate in (layout, *(av.AudioLayout(n) for n in dict.fromkeys(names) if n and n != layout.name)):
        if _opens(codec, rate, candidate):
            return candidate
    return layout  # none opens: the muxer's own error says why


# audio bit rates to step down through where an encoder refuses the one asked for
_BIT_RATES = (320_000, 256_000, 224_000, 192_000, 160_000, 128_000, 112_000, 96_000, 80_000, 64_000, 48_000, 32_000)


def _encodable_bit_rate(codec: av.Codec, rate: int, layout: av.AudioLayout) -> int:
    """:func:`transcode_bit_rate`, or where ``codec`` will not open at it, the highest lower rate that
    it opens at: mp2 at 16, 22.05 and 24 kHz (MPEG-2's low rates) takes 160 kb/s at most, and 192 kb/s
    of stereo stopped the run blaming the container."""
    wanted = transcode_bit_rate(codec.name, layout.nb_channels)
    return next((r for r in (wanted, *(r for r in _BIT_RATES if r < wanted)) if _opens(codec, rate, layout, r)),
                wanted)  # none opens: the muxer's own error says why


def _opens(codec: av.Codec, rate: int, layout: av.AudioLayout, bit_rate: int | None = None) -> bool:
    """Whether ``codec`` opens for this rate, layout and bit rate (left to the encoder's default if None)."""
    probe = av.CodecContext.create(codec)
    probe.sample_rate, probe.layout = rate, layout
    if bit_rate is not None:
        probe.bit_rate = bit_rate
    probe.format = codec.audio_formats[0] if codec.audio_formats else "fltp"
    try:
        probe.open()
        return True
    except (av.FFmpegError, ValueError):
        return False


def _format_name(src: av.stream.Stream) -> str:
    """A track's format as users know it (mp3, dts), not its decoder's name (mp3float, dca)."""
    codec = src.codec_context.codec
    return codec.canonical_name if codec is not None else src.codec_context.name


def _adts(src: av.stream.Stream) -> bool:
    """AAC framed in ADTS headers (as MPEG-TS carries it): no AudioSpecificConfig in the stream header."""
    return src.codec_context.name == "aac" and not src.codec_context.extradata


# the sampling frequency indices of ISO/IEC 14496-3 (1.6.3.4), which the AudioSpecificConfig names a rate by
_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)


def _adts_config(src: av.stream.Stream) -> bytes | None:
    """The two-byte AudioSpecificConfig (object type 2, rate index, channel configuration) of an ADTS
    AAC-LC track, as ``aac_adtstoasc`` would build it from the first packet, for a header written
    before that packet; None where the stream's fields do not give it: another profile (HE-AAC
    reports the doubled rate of its SBR layer, and its ADTS header says LC at half of it), an
    unusual rate, or channels ADTS does not number (0, more than 7.1)."""
    codec = src.codec_context
    channel_config = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 8: 7}.get(codec.channels)
    if codec.profile != "LC" or codec.sample_rate not in _AAC_RATES or channel_config is None:
        return None
    return (2 << 11 | _AAC_RATES.index(codec.sample_rate) << 7 | channel_config << 3).to_bytes(2, "big")


# the audio formats MPEG-TS names (FFmpeg's mpegts muxer gives them stream types its demuxer reads
# back as audio); any other it writes as private data, which nothing plays: FLAC, PCM, Vorbis
_TS_AUDIO = ("aac", "aac_latm", "mp2", "mp3", "ac3", "eac3", "dts", "truehd", "opus", "s302m")


def _takes(container: str, src: av.stream.Stream) -> bool:
    """Whether a ``container`` format (FFmpeg's name) can hold the track ``src``: asked of an empty
    in-memory file, because a muxer that cannot (Matroska with GoPro telemetry) may refuse only
    when the header is written, which would stop the whole run. MPEG-TS takes any audio, as data
    where it has no stream type for it: those are not taken (FLAC was left in the file unplayable)."""
    container = probe_format(container)  # RTSP/RTP: asked of MPEG-TS (the sound was re-encoded for nothing)
    if container == "mpegts" and src.type == "audio" and _format_name(src) not in _TS_AUDIO:
        return False
    probe = av.open(io.BytesIO(), "w", format=container)
    try:
        probe.add_stream_from_template(src)
        probe.start_encoding()
        return True
    except (av.FFmpegError, ValueError):
        return False
    finally:
        try:
            probe.close()
        except av.FFmpegError:
            pass


class _Transcode:
    """Decode one audio track and encode it again for a container that cannot hold its codec."""

    def __init__(self, src: av.audio.stream.AudioStream, out: av.audio.stream.AudioStream) -> None:
        self.decoder = src.codec_context
        self.out = out
        self.undecodable = 0  # damaged source packets left out
        self.name = f"{_format_name(src)} audio (stream {src.index})"

    def packets(self, packet: av.Packet | None) -> Iterator[av.Packet]:
        """The encoded packets for one source packet; None flushes decoder and encoder. PyAV's
        encoder resamples each frame to its own rate, format and frame size. A packet that does not
        decode (a damaged input) is left out, as a player skips it: it failed the whole run."""
        try:
            frames = self.decoder.decode(packet)
        except av.FFmpegError:
            if packet is None:
                raise
            self.undecodable += 1
            return
        if packet is None:
            frames = [*frames, None]
        for frame in frames:
            if frame is not None and (frame := _from_zero(frame)) is None:
                continue
            yield from self.out.encode(frame)


def _from_zero(frame: av.AudioFrame) -> av.AudioFrame | None:
    """``frame`` (its pts in the output's time: the source's less the part's start) without the
    samples it holds before 0, None when all are: the packets before a part's start are decoded
    for the decoder's sake (:meth:`Passthrough._before_start`), and from the first frame on the
    sound is the source's samples. Encoded, they played before the picture."""
    if frame.pts is None or frame.time_base is None or frame.pts >= 0:
        return frame
    cut = round(-frame.pts * frame.time_base * frame.sample_rate)
    if cut >= frame.samples:
        return None
    samples = frame.to_ndarray()  # planar: a row a channel; packed: one row, channels interleaved
    step = 1 if frame.format.is_planar else len(frame.layout.channels)
    kept = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, cut * step:]), format=frame.format.name,
                                      layout=frame.layout)
    kept.sample_rate, kept.time_base, kept.pts = frame.sample_rate, frame.time_base, 0
    return kept
