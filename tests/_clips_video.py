"""Helpers for the video engine tests: odd inputs built from ``conftest.make_clip`` clips, and
reading outputs back (frames, timestamps, audio packets)."""
from __future__ import annotations

import dataclasses
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable

import av
import numpy as np

from conftest import tone_frame


@dataclasses.dataclass
class Decoded:
    frames: list[np.ndarray]
    pts_seconds: list[Fraction]
    width: int
    height: int
    rotation: int
    average_rate: Fraction | None
    colour: tuple[int, int, int, int]
    audio: list[tuple[int | None, bytes]]


def encode_frames(container: av.container.OutputContainer, stream: av.video.stream.VideoStream,
                  frames: Iterable[av.VideoFrame], *, first_pts: int = 0) -> None:
    """Encode ``frames`` at pts ``first_pts``, ``first_pts + 1``, ... into ``stream``, muxing each packet, then
    flush the encoder: the loop every clip writer here ends with."""
    for i, frame in enumerate(frames):
        frame.pts = first_pts + i
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


def decode(path: Path) -> Decoded:
    """Every video frame as RGB (swscale, the frame's own tags), exact pts in seconds, and the audio
    packets as ``(pts, bytes)``."""
    frames, pts, rotation, colour = [], [], 0, (2, 0, 2, 2)
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        rate = v.average_rate
        for i, f in enumerate(c.decode(v)):
            if i == 0:
                rotation = int(f.rotation or 0)
                colour = (int(f.colorspace), int(f.color_range), int(f.color_primaries), int(f.color_trc))
            frames.append(f.to_ndarray(format="rgb24"))
            pts.append(f.pts * f.time_base)
        width, height = v.width, v.height
    audio = []
    with av.open(str(path)) as c:
        if c.streams.audio:
            audio = [(p.pts, bytes(p)) for p in c.demux(c.streams.audio[0]) if p.dts is not None]
    return Decoded(frames, pts, width, height, rotation, rate, colour, audio)


def mux_video_packets(source: av.container.InputContainer, target: av.container.OutputContainer,
                      stream: av.video.stream.VideoStream) -> None:
    """Every packet of ``source``'s first video stream into ``stream`` of ``target``, as it is."""
    for packet in source.demux(source.streams.video[0]):
        if packet.dts is not None:
            packet.stream = stream
            target.mux(packet)


def _copy_packets(source: av.container.InputContainer, target: av.container.OutputContainer,
                  streams: dict[int, av.stream.Stream]) -> None:
    """Every packet of ``source`` into ``target``, each to ``streams[its source stream's index]``."""
    for packet in source.demux():
        if packet.dts is not None:
            packet.stream = streams[packet.stream.index]
            target.mux(packet)


def decodable_frames(path: Path) -> int:
    """Frames that decode from the start of ``path`` until the first error (a file cut short by a
    killed writer ends in a partial fragment)."""
    decoded = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        try:
            for packet in container.demux(stream):
                decoded += len(stream.decode(packet))
        except av.FFmpegError:
            pass
    return decoded


def remuxed(src: Path, dst: Path, *, later_s: float = 0.0, options: dict[str, str] | None = None) -> Path:
    """Every stream of ``src`` copied as it is into ``dst``'s container (``.ts``: MPEG-TS, whose AAC
    is ADTS-framed), every timestamp ``later_s`` seconds later (a stream that does not start at 0,
    as broadcast and camera streams do not); ``options``: the muxer's (``movflags``)."""
    with av.open(str(src)) as i, av.open(str(dst), "w", options=options or {}) as o:
        streams = {s.index: o.add_stream_from_template(s) for s in i.streams}
        for packet in i.demux():
            if packet.dts is not None:
                shift = round(later_s / packet.time_base)
                packet.pts, packet.dts = packet.pts + shift, packet.dts + shift
                packet.stream = streams[packet.stream.index]
                o.mux(packet)
    return dst


def remux_faststart(src: Path, dst: Path) -> Path:
    """Copy the video packets into an MP4 with the index (moov) first, so a truncated copy still opens."""
    with av.open(str(src)) as i, av.open(str(dst), "w", options={"movflags": "+faststart"}) as o:
        out = o.add_stream_from_template(i.streams.video[0])
        mux_video_packets(i, o, out)
    return dst


def with_thumbnail_first(src: Path, dst: Path) -> Path:
    """An MKV whose first video stream is a one-frame 32×32 picture (a cover or thumbnail track)
    and whose second is ``src``'s video: the video is not stream 0."""
    with av.open(str(src)) as i, av.open(str(dst), "w") as o:
        thumb = o.add_stream("mjpeg", rate=1)
        thumb.width, thumb.height, thumb.pix_fmt = 32, 32, "yuvj420p"
        video = o.add_stream_from_template(i.streams.video[0])
        for packet in thumb.encode(av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")):
            o.mux(packet)
        for packet in thumb.encode(None):
            o.mux(packet)
        mux_video_packets(i, o, video)
    return dst


def with_two_audio_tracks(src: Path, dst: Path, *, titles: tuple[str, str] | None = None,
                          default: int | None = None) -> Path:
    """``src`` (video + one audio stream) remuxed to MKV with its audio twice, as tracks tagged
    ``eng`` and ``fra`` (a film with two languages); ``titles`` for them, and which one (0 or 1) is
    marked the default track (None: as the muxer marks them)."""
    with av.open(str(src)) as i, av.open(str(dst), "w") as o:
        out = {i.streams.video[0].index: o.add_stream_from_template(i.streams.video[0])}
        tracks = [o.add_stream_from_template(i.streams.audio[0]) for _ in range(2)]
        for k, (track, language) in enumerate(zip(tracks, ("eng", "fra"))):
            track.metadata["language"] = language
            if titles:
                track.metadata["title"] = titles[k]
            if default is not None:
                track.disposition = av.stream.Disposition.default if k == default else av.stream.Disposition(0)
        for packet in i.demux():
            if packet.dts is None:
                continue
            if packet.stream.type == "video":
                packet.stream = out[packet.stream.index]
                o.mux(packet)
            else:
                for track in tracks:
                    copy = av.Packet(bytes(packet))
                    copy.pts, copy.dts, copy.duration = packet.pts, packet.dts, packet.duration
                    copy.time_base = packet.time_base
                    copy.stream = track
                    o.mux(copy)
    return dst


def spliced_sizes(path: Path, sizes: list[tuple[int, int]], frames_each: int) -> Path:
    """An MPEG-TS of segments at different sizes, concatenated byte for byte (how TS files are
    spliced): one H.264 stream whose size changes mid-stream. Segment ``k`` holds
    ``clip_frame(i, w, h)`` for its frames ``i`` (counted over the whole file)."""
    from conftest import clip_frame

    data = b""
    for k, (w, h) in enumerate(sizes):
        part = path.with_name(f"{path.stem}.part{k}.ts")
        with av.open(str(part), "w", format="mpegts") as c:
            s = c.add_stream("libx264", rate=25)
            s.width, s.height, s.pix_fmt = w, h, "yuv420p"
            encode_frames(c, s, (av.VideoFrame.from_ndarray(clip_frame(i, w, h), format="rgb24")
                                 for i in range(k * frames_each, (k + 1) * frames_each)), first_pts=k * frames_each)
        data += part.read_bytes()
    path.write_bytes(data)
    return path


def audio_with_cover(path: Path) -> Path:
    """An MP3 with a cover picture: its one video stream is an attached picture, not a video."""
    with av.open(str(path), "w") as c:
        audio = c.add_stream("libmp3lame", rate=44100)
        audio.layout = "stereo"
        cover = c.add_stream("mjpeg", rate=1)
        cover.width, cover.height, cover.pix_fmt = 64, 64, "yuvj420p"
        cover.disposition = av.stream.Disposition.attached_pic
        for packet in [*cover.encode(av.VideoFrame.from_ndarray(np.full((64, 64, 3), 128, np.uint8), format="rgb24")),
                       *cover.encode(None)]:
            c.mux(packet)
        for i in range(20):
            frame = av.AudioFrame.from_ndarray(np.zeros((2, 1152), np.float32), format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = 44100, i * 1152
            for packet in audio.encode(frame):
                c.mux(packet)
        for packet in audio.encode(None):
            c.mux(packet)
    return path


def with_subtitles(src: Path, dst: Path) -> Path:
    """``src`` (an MP4 from ``make_clip``) remuxed to MKV with an English SubRip track of two cues,
    read from a real .srt file. The remux also gives the MKV a 1/time-base default duration, so its
    "average" frame rate reads as 12800 fps (FFmpeg's guess stays right)."""
    srt = dst.with_suffix(".srt")
    srt.write_text("1\n00:00:00,100 --> 00:00:00,200\nHello\n\n2\n00:00:00,250 --> 00:00:00,300\nWorld\n")
    with av.open(str(src)) as i, av.open(str(srt)) as t, av.open(str(dst), "w") as o:
        streams = {s.index: o.add_stream_from_template(s) for s in i.streams}
        subtitles = o.add_stream_from_template(t.streams.subtitles[0])
        subtitles.metadata["language"] = "eng"
        _copy_packets(i, o, streams)
        for packet in t.demux():
            if packet.dts is not None:
                packet.stream = subtitles
                o.mux(packet)
    return dst


def with_chapters(src: Path, dst: Path, marks: list[tuple[float, float, str]]) -> Path:
    """``src`` remuxed (to ``dst``'s container) with chapters ``(start_s, end_s, title)``."""
    with av.open(str(src)) as i, av.open(str(dst), "w") as o:
        streams = {s.index: o.add_stream_from_template(s) for s in i.streams}
        o.set_chapters([{"id": n + 1, "start": round(a * 1000), "end": round(b * 1000), "time_base": Fraction(1, 1000),
                         "metadata": {"title": title}} for n, (a, b, title) in enumerate(marks)])
        _copy_packets(i, o, streams)
    return dst


def with_telemetry(src: Path, dst: Path, *, timecode: str = "01:02:03:04", tracks: int = 1) -> Path:
    """``src`` remuxed to MP4 the way a GoPro writes it: ``tracks`` GPMF telemetry tracks (``gpmd``,
    handler "GoPro MET") with a packet every 0.2 s, and a ``timecode`` on the video (which the
    muxer stores as a ``tmcd`` track)."""
    with av.open(str(src)) as i, av.open(str(dst), "w") as o:
        streams = {s.index: o.add_stream_from_template(s) for s in i.streams}
        streams[i.streams.video[0].index].metadata["timecode"] = timecode
        seconds = float(i.streams.video[0].duration * i.streams.video[0].time_base)
        telemetry = [o.add_data_stream("bin_data") for _ in range(tracks)]  # every stream before the first packet
        for gpmd in telemetry:
            gpmd.codec_tag = "gpmd"
            gpmd.time_base = Fraction(1, 1000)
        for gpmd in telemetry:
            for n in range(int(seconds / 0.2)):
                packet = av.Packet(b"DEVC" + bytes([n]) * 12)
                packet.stream, packet.time_base = gpmd, Fraction(1, 1000)
                packet.pts = packet.dts = n * 200
                packet.duration = 200
                o.mux(packet)
        _copy_packets(i, o, streams)
    return dst


def with_attachments(src: Path, dst: Path, *, fonts: dict[str, bytes], cover: bytes | None = None,
                     cover_type: str = "jpeg") -> Path:
    """``src`` remuxed to ``dst`` with a cover picture (a JPEG, or in Matroska the image type ``cover_type``:
    Matroska's ``cover.jpg`` attachment, MP4's attached-picture track) and, in Matroska, ``fonts`` as
    attachments, as a fansub release carries them."""
    with av.open(str(src)) as i, av.open(str(dst), "w") as o:
        streams = {s.index: o.add_stream_from_template(s) for s in i.streams}
        for name, data in fonts.items():
            o.add_attachment(name, "font/ttf", data)
        picture = None
        if cover is not None and o.format.name == "matroska":
            o.add_attachment(f"cover.{cover_type.replace('jpeg', 'jpg')}", f"image/{cover_type}", cover)
        elif cover is not None:
            picture = o.add_mux_stream("mjpeg", width=32, height=32)
            picture.disposition = av.stream.Disposition.attached_pic
        o.start_encoding()
        if picture is not None:
            packet = av.Packet(cover)
            packet.stream, packet.pts, packet.dts = picture, 0, 0
            o.mux(packet)
        _copy_packets(i, o, streams)
    return dst


def truncated_copy(src: Path, dst: Path, keep: float = 0.6) -> Path:
    """A faststart copy of ``src`` cut after ``keep`` of its bytes: opens, promises every frame,
    decodes only the first part."""
    remux_faststart(src, dst)
    data = dst.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst


def unindexed_copy(src: Path, dst: Path, keep: float = 0.6) -> Path:
    """``src`` (an MP4 with its index, moov, at the end, as FFmpeg writes by default) cut after
    ``keep`` of its bytes: what a recorder that died leaves; no frame can be located in it."""
    data = src.read_bytes()
    assert data.find(b"moov") > data.find(b"mdat"), "the source must have its index last"
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst


def zeroed_copy(src: Path, dst: Path) -> Path:
    """``src`` with its media data overwritten by zeros: a video stream whose frames do not decode."""
    data = bytearray(src.read_bytes())
    i = data.find(b"mdat")
    size = int.from_bytes(data[i - 4:i], "big")
    data[i + 4:i - 4 + size] = bytes(size - 8)
    dst.write_bytes(bytes(data))
    return dst


def header_only(path: Path) -> Path:
    """A Matroska file with a video track and no frame: what a recorder (OBS) that crashed before its
    first frame leaves behind."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        container.start_encoding()
    return path


def audio_only(path: Path, seconds: float = 0.5) -> Path:
    """An MP4 holding only an AAC tone."""
    with av.open(str(path), "w") as c:
        a = c.add_stream("aac", rate=48000, layout="mono")
        for start in range(0, int(48000 * seconds), 1024):
            c.mux(a.encode(tone_frame(start, 1024, layout="mono")))
        c.mux(a.encode(None))
    return path


def avi_with_empty_slots(path: Path, pts: list[int], rate: int = 15, size: tuple[int, int] = (64, 48)) -> Path:
    """An MJPEG AVI whose frames sit at ``pts`` (1/rate units): FFmpeg's AVI muxer fills the gaps with
    empty dropped-frame chunks, so the header counts ``pts[-1] + 1`` frames while ``len(pts)`` decode,
    as OpenCV's webcam sample ``tree.avi`` does (68 frames in 444 slots)."""
    width, height = size
    with av.open(str(path), "w") as c:
        v = c.add_stream("mjpeg", rate=rate)
        v.width, v.height, v.pix_fmt, v.time_base = width, height, "yuvj420p", Fraction(1, rate)
        for i, p in enumerate(pts):
            frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), 20 * i % 256, np.uint8), format="rgb24")
            frame = frame.reformat(format="yuvj420p")
            frame.pts, frame.time_base = p, Fraction(1, rate)
            c.mux(v.encode(frame))
        c.mux(v.encode(None))
    return path


def through_yuv420(rgb: np.ndarray) -> np.ndarray:
    """``rgb`` after the writer's RGB → yuv420p and the reader's yuv420p → RGB (swscale, untagged)."""
    from videodeblur.video.writer import _FROM_RGB as exact  # as the writer converts
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p", dst_colorspace="ITU601",
                                                                     interpolation=exact)
    return frame.to_ndarray(format="rgb24")


HDR10_MASTER_DISPLAY = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)"


def _flat_clip(path: Path, *, codec: str, frames: int, size: tuple[int, int], deep: bool = False,
               setup: Callable[[av.video.stream.VideoStream], None] = lambda s: None,
               picture: Callable[[int], np.ndarray] | None = None) -> Path:
    """``frames`` flat grey frames (brighter each time; or ``picture(i)``) through ``codec``, 8-bit
    4:2:0 or 10-bit (``deep``); ``setup`` sets the stream up (its tags and options) before the first frame."""
    width, height = size
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=25)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p10le" if deep else "yuv420p"
        setup(s)
        images = (picture(i) if picture is not None
                  else np.full((height, width, 3), 20000 + 4000 * i, np.uint16) if deep
                  else np.full((height, width, 3), 40 * i, np.uint8) for i in range(frames))
        encode_frames(c, s, (av.VideoFrame.from_ndarray(image, format="rgb48le" if deep else "rgb24")
                             .reformat(format=s.pix_fmt) for image in images))
    return path


def hdr10_clip(path: Path, frames: int = 4, size: tuple[int, int] = (64, 48)) -> Path:
    """A 10-bit HEVC clip tagged BT.2020 / PQ, with HDR10's mastering display and light levels
    (MaxCLL 1000, MaxFALL 400) in its stream, as an HDR10 camera or phone writes them."""
    def setup(s: av.video.stream.VideoStream) -> None:
        s.codec_context.color_primaries, s.codec_context.color_trc, s.codec_context.colorspace = 9, 16, 9
        s.codec_context.options = {"x265-params": f"log-level=error:hdr10=1:master-display={HDR10_MASTER_DISPLAY}:"
                                                  "max-cll=1000,400"}
    return _flat_clip(path, codec="libx265", frames=frames, size=size, deep=True, setup=setup)


def anamorphic_clip(path: Path, sar: Fraction, frames: int = 3, size: tuple[int, int] = (72, 48)) -> Path:
    """An H.264 clip whose pixels are not square (``sar`` = width / height of one pixel), as DV, HDV
    and DVD store widescreen pictures."""
    def setup(s: av.video.stream.VideoStream) -> None:
        s.codec_context.sample_aspect_ratio = sar
    return _flat_clip(path, codec="libx264", frames=frames, size=size, setup=setup)


def interlaced_clip(path: Path, frames: int = 3) -> Path:
    """An H.264 clip coded as interlaced (top field first), as 1080i broadcast and DV are."""
    def setup(s: av.video.stream.VideoStream) -> None:
        s.codec_context.options = {"x264-params": "tff=1"}
    return _flat_clip(path, codec="libx264", frames=frames, size=(64, 48), setup=setup)


def combed_clip(path: Path, frames: int = 6) -> Path:
    """Interlaced H.264 whose two fields were taken 1/50 s apart from a bar moving right: every
    frame shows the bar twice, in alternate lines (combing), as a 1080i camera records motion."""
    def setup(s: av.video.stream.VideoStream) -> None:
        s.codec_context.options = {"x264-params": "tff=1", "crf": "10"}

    def picture(i: int) -> np.ndarray:
        image = np.full((64, 96, 3), 30, np.uint8)
        image[0::2, 10 + 8 * i:22 + 8 * i] = 220  # top field
        image[1::2, 14 + 8 * i:26 + 8 * i] = 220  # bottom field, 1/50 s later
        return image
    return _flat_clip(path, codec="libx264", frames=frames, size=(96, 64), setup=setup, picture=picture)


def combing(image: np.ndarray) -> float:
    """Mean difference of each row from the average of its neighbours: high where fields disagree."""
    rows = image.astype(np.float64)
    return float(np.abs(rows[1:-1] - (rows[:-2] + rows[2:]) / 2).mean())


def ts_clip(path: Path, *, start_s: float, frames: int = 25, gop: int | None = None, take: int = 0) -> Path:
    """An MPEG-TS of ``frames`` 64x48 H.264 frames at 25 fps (``gop``: a keyframe every so many) and a
    mono MP2 track as long, every timestamp ``start_s`` later: a broadcast recording's clock runs on
    (10 h in), and past 2^33 / 90 kHz (26.5 h) it wraps, which FFmpeg reads as times below 0 up to
    the wrap. The audio starts 0.02 s before the picture (0.01 s, and MP2's encoder delay). ``take``
    1: the picture's negative (another take of the same length)."""
    base = Fraction(1, 90000)
    packets: list[tuple[Fraction, av.Packet]] = []
    with av.open(str(path), "w", format="mpegts") as out:
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        if gop is not None:
            video.options = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0"}
        audio = out.add_stream("mp2", rate=48000, layout="mono")
        for i in range(frames + 1):
            frame = None
            if i < frames:
                rgb = np.zeros((48, 64, 3), np.uint8)
                rgb[..., 0] = (np.arange(64) * 3 + i * 10) % 256
                rgb[8 + i % 30:18 + i % 30, :, 1] = 200
                rgb = 255 - rgb if take else rgb
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                frame.pts = i
            packets += [(Fraction(0), p) for p in video.encode(frame)]
        samples = 1152  # MP2's frame: 24 ms, 2160 ticks of 90 kHz
        for k in range(round((frames / 25 + 0.01) * 48000 / samples) + 1):
            chunk = None
            if k * samples < (frames / 25 + 0.01) * 48000:
                tone = (3000 * np.sin(np.arange(k * samples, (k + 1) * samples) / 20)).astype(np.int16)[None]
                chunk = av.AudioFrame.from_ndarray(tone, format="s16", layout="mono")
                chunk.sample_rate, chunk.pts = 48000, k * samples
            packets += [(Fraction(-1, 100), p) for p in audio.encode(chunk)]
        shift = round(start_s / base)
        for lead, packet in packets:  # to 90 kHz, then later by start_s (the audio 0.01 s earlier)
            ticks = lambda t: round((t * packet.time_base + lead) / base) + shift  # noqa: E731
            packet.pts, packet.dts = ticks(packet.pts), ticks(packet.dts)
            packet.time_base = base
        for _, packet in sorted(packets, key=lambda item: item[1].dts):
            out.mux(packet)
    return path


def with_hidden_lead_in(path: Path, *, lead_s: float = 0.5, frames: int = 25) -> Path:
    """An MP4 whose audio holds ``lead_s`` seconds before the picture that its edit list hides, as a
    cut made by copying leaves it: 64x48 H.264 at 25 fps and a mono AAC track."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = out.add_stream("aac", rate=48000, layout="mono")
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 8 * i, np.uint8), format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        shift = round(lead_s * 48000)
        for k in range(round((frames / 25 + lead_s) * 48000 / 1024)):
            tone = (0.2 * np.sin(np.arange(k * 1024, (k + 1) * 1024) / 20)).astype(np.float32)[None]
            chunk = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts = 48000, k * 1024
            for packet in audio.encode(chunk):
                packet.pts, packet.dts = packet.pts - shift, packet.dts - shift
                out.mux(packet)
        for packet in audio.encode(None):
            packet.pts, packet.dts = packet.pts - shift, packet.dts - shift
            out.mux(packet)
    return path
