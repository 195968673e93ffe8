"""Which encoder writes a file, and the settings that make ``--crf`` and ``--preset`` mean the same
whichever it is.

Why a module of its own: the choice depends on the machine (a hardware encoder that really opens),
the container (WebM cannot hold H.264) and the encoder's own knobs, and it is asked before any
frame is written, by the writer and by the benchmark alike.
"""
from __future__ import annotations

import contextlib
import difflib
import functools
import io
import os
from fractions import Fraction
from typing import Iterator

import av
import av.logging

from videodeblur.errors import EncodeError
from videodeblur.video.colour import AVCOL_RANGE_JPEG
from videodeblur.video.output_format import jpeg_colour_only

__all__ = ["HARDWARE_ENCODERS", "SOFTWARE_ENCODER", "carries", "choose_encoder", "coded_rate", "containers_for",
           "encodable_pix_fmt", "encoder_options", "ffmpeg_errors_said", "private_options", "probe_format", "takes",
           "writes_odd_420"]

HARDWARE_ENCODERS = ("h264_nvenc",)
SOFTWARE_ENCODER = "libx264"


@functools.lru_cache(maxsize=None)
def _hardware_encoder_opens(name: str, width: int, height: int) -> bool:
    try:
        ctx = av.CodecContext.create(name, "w")
        ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
        ctx.time_base = Fraction(1, 25)
        ctx.open()  # needs the driver and a free session, not just the codec in the build
        return True
    except (av.FFmpegError, ValueError, OSError):
        return False


# PyAV before 18 (the newest on Python 3.10 is 17.1) cannot list an encoder's private options: the
# ones encoder_options asks about, by encoder, as FFmpeg's encoders define them
_PRIVATE_OPTIONS = {"libx264": {"crf", "forced-idr"}, "libx264rgb": {"crf", "forced-idr"},
                    "libx265": {"crf", "x265-params", "forced-idr"},
                    "libvpx": {"crf"}, "libvpx-vp9": {"crf", "row-mt"}, "libaom-av1": {"crf", "row-mt"},
                    "libsvtav1": {"crf"}}


def private_options(ctx: av.CodecContext) -> frozenset[str]:
    """The names of the private options ``ctx``'s encoder takes (crf, x265-params...)."""
    try:
        return frozenset(option.name for option in ctx.supported_options.private)
    except AttributeError:  # PyAV < 18
        return frozenset(_PRIVATE_OPTIONS.get(ctx.codec.name, ()))


# muxers that cannot write a header into memory, and the one asked in their place
_PROBED_AS = {"rtsp": "mpegts", "rtp": "mpegts", "rtp_mpegts": "mpegts"}


def probe_format(container: str) -> str:
    """The muxer asked in ``container``'s place whether it holds a stream: itself, or for RTSP and RTP,
    which write their header only to a server, MPEG-TS, which holds what they carry."""
    return _PROBED_AS.get(container, container)


# muxers that take any video stream but carry only these codecs so that a reader finds a picture: MPEG-TS
# wrote VP8/VP9, AV1, FFV1, ProRes, PNG... as private data, read back as a data track and no video at all
# (measured: FFmpeg 8.1, `video in.mp4 -o out.ts --encoder libvpx-vp9` said "wrote 20 frames", exit 0)
_TS_VIDEO = frozenset({"h264", "hevc", "vvc", "mpeg1video", "mpeg2video", "mpeg4", "cavs", "avs2", "avs3", "dirac",
                       "vc1"})
# MPEG program streams (.mpg, .vob): VP8 came back as MP3 audio, AV1 as a video no decoder knows
_PS_VIDEO = frozenset({"h264", "hevc", "mpeg1video", "mpeg2video", "mpeg4", "vc1"})
_CARRIED = {"mpegts": _TS_VIDEO, "rtp_mpegts": _TS_VIDEO,
            **dict.fromkeys(("mpeg", "vob", "dvd", "svcd", "vcd"), _PS_VIDEO)}


def carries(container: str, encoder: str) -> bool:
    """Whether the ``container`` muxer writes ``encoder``'s video as a video stream a reader finds, not
    as anonymous data (MPEG-TS and MPEG-PS take any codec, but know a stream type only for some)."""
    if (carried := _CARRIED.get(container)) is None:
        return True
    try:
        return av.Codec(encoder, "w").canonical_name in carried
    except (av.codec.codec.UnknownCodecError, ValueError):
        return False


@functools.lru_cache(maxsize=None)
def takes(container: str, encoder: str) -> bool:
    """Whether the ``container`` format (FFmpeg's name: mp4, webm...) can hold what ``encoder``
    writes (and the encoder is in this build). Asked of an in-memory container, header and all:
    some muxers (YUV4MPEG's) accept any stream and refuse only when the header is written. RTSP and
    RTP write their header only to a server: asked of MPEG-TS, which holds what they carry (the probe
    failed, and a --record rtsp:// got MPEG-4 Part 2, which would not even open at its time base)."""
    if not carries(container, encoder):
        return False
    probe = av.open(io.BytesIO(), "w", format=probe_format(container))
    try:
        stream = probe.add_stream(encoder)
        stream.width, stream.height = 64, 64
        private = private_options(stream.codec_context)
        # x265 and SVT-AV1 print a screen of info lines at every open: the probe's would reach the user
        stream.codec_context.options = encoder_options(encoder, private, crf=23, preset="ultrafast")
        formats = stream.codec_context.codec.video_formats or ()
        stream.pix_fmt = "yuv420p" if not formats or "yuv420p" in {f.name for f in formats} else formats[0].name
        if jpeg_colour_only(encoder):  # as the writer opens it: limited range, it opened nowhere
            stream.codec_context.color_range = AVCOL_RANGE_JPEG
        probe.start_encoding()
        return True
    except (ValueError, av.FFmpegError, av.codec.codec.UnknownCodecError):
        return False
    finally:
        try:
            probe.close()
        except (av.FFmpegError, ValueError):
            pass


_FILE_CONTAINERS = {".mp4": "mp4", ".mkv": "matroska", ".mov": "mov", ".webm": "webm"}
# asked only when none of those holds the encoder's video: HuffYUV and Ut Video go only in these
_OTHER_CONTAINERS = {".avi": "avi", ".nut": "nut"}


def containers_for(encoder: str) -> tuple[str, ...]:
    """The output file extensions (of .mp4, .mkv, .mov, .webm; else of .avi, .nut) whose container holds
    what ``encoder`` writes: what to suggest when the one asked for cannot (for huffyuv, which only AVI
    and NUT hold, a .mkv user was told to use .mp4, .mkv or .mov)."""
    for containers in (_FILE_CONTAINERS, _OTHER_CONTAINERS):
        if fits := tuple(ext for ext, container in containers.items() if takes(container, encoder)):
            return fits
    return ()


@functools.lru_cache(maxsize=None)
def _default_encoder(container: str) -> str:
    """The encoder of ``container``'s own default video codec (VP9's for WebM), as the ffmpeg tool picks;
    for YUV4MPEG, rawvideo: its default, wrapped_avframe, hands FFmpeg's frames to the muxer as they are,
    the same bytes under a name no user knows (the summary and --json said "wrapped_avframe")."""
    with av.open(io.BytesIO(), "w", format=container) as probe:
        default = probe.default_video_codec
    if default == "wrapped_avframe" and takes(container, "rawvideo"):
        return "rawvideo"
    try:
        return av.Codec(default, "w").name
    except (av.codec.codec.UnknownCodecError, ValueError):
        return SOFTWARE_ENCODER


def _exists(encoder: str) -> bool:
    try:
        return av.Codec(encoder, "w").type == "video"
    except (av.codec.codec.UnknownCodecError, ValueError):
        return False


@functools.lru_cache(maxsize=None)
def _video_encoders() -> tuple[str, ...]:
    """The names of this FFmpeg build's video encoders."""
    names = []
    for name in sorted(av.codecs_available):
        try:
            if av.Codec(name, "w").type == "video":
                names.append(name)
        except (av.codec.codec.UnknownCodecError, ValueError):  # a decoder's name only
            pass
    return tuple(names)


def choose_encoder(name: str = "auto", *, width: int = 256, height: int = 256, container: str | None = None,
                   deep: bool = False) -> str:
    """``auto`` → the first hardware encoder that really opens, else libx264; for a ``container``
    that cannot hold H.264 (webm, ogv), that container's own codec's encoder (libvpx-vp9 for WebM),
    as the ffmpeg tool picks. With ``deep`` (10-bit output) HEVC where the container holds it
    (hevc_nvenc if it opens, else libx265): 10-bit H.264 (High 10) has almost no hardware decoders,
    so a phone's 10-bit HDR clip written as H.264 would not play on the phone that shot it; HEVC
    does. A named encoder must exist in this FFmpeg build (EncodeError otherwise); a format's name
    (``h264``) gives the encoder FFmpeg opens for it (``libx264``)."""
    if name == "auto":
        if container is not None and not takes(container, SOFTWARE_ENCODER):
            return _default_encoder(container)
        if deep and (container is None or takes(container, "libx265")):
            if _hardware_encoder_opens("hevc_nvenc", max(width, 256), max(height, 256)):
                return "hevc_nvenc"
            if _exists("libx265"):
                return "libx265"
        for hw in HARDWARE_ENCODERS:
            if _hardware_encoder_opens(hw, max(width, 256), max(height, 256)):
                return hw
        return SOFTWARE_ENCODER
    try:
        codec = av.Codec(name, "w")
    except (av.codec.codec.UnknownCodecError, ValueError) as err:
        # FFmpeg's names are lower case: LIBX264 or libx246 was told only to use "another FFmpeg video encoder"
        close = difflib.get_close_matches(name.lower(), _video_encoders(), n=1, cutoff=0.75)
        guess = f" (did you mean {close[0]}?)" if close else ""
        raise EncodeError(f"unknown encoder {name!r}{guess}: use auto, libx264, h264_nvenc or another FFmpeg "
                          f"video encoder") from err
    if codec.type != "video":
        raise EncodeError(f"encoder {name!r} is not a video encoder; use auto or libx264")
    # a format's name (h264, hevc, av1) opens its first encoder: named as that encoder, whose settings
    # are looked up by name (--encoder h264 --preset slow said "encoder h264 has no speed presets")
    return codec.name


@contextlib.contextmanager
def ffmpeg_errors_said() -> Iterator[list[str]]:
    """FFmpeg's own error lines while the block runs, each on one line: PyAV keeps FFmpeg's log off, and its
    exceptions then say only "Invalid argument" or "Operation not permitted" where FFmpeg said why ("Cannot
    load libcuda.so.1", "dimensions too large for MPEG-4"). Its log is on at errors for the block (a
    process-wide setting, put back after), and every line is caught here, none printed."""
    level = av.logging.get_level()
    said: list[str] = []
    av.logging.set_level(av.logging.ERROR)
    try:
        with av.logging.Capture(local=False) as logs:
            try:
                yield said
            finally:
                said.extend(" ".join(message.split()) for severity, _, message in logs
                            if severity <= av.logging.ERROR and message.strip())
    finally:
        av.logging.set_level(level)


# MPEG-1 video's frame rates (ISO/IEC 11172-2's table); FFmpeg lists four more (Xing's 15, 5, 10, 12 fps), which
# it opens only past the standard (strict -1), so other players may not know them
_MPEG1_RATES = tuple(Fraction(n, d) for n, d in ((24000, 1001), (24, 1), (25, 1), (30000, 1001), (30, 1), (50, 1),
                                                  (60000, 1001), (60, 1)))
# a source's rate this close to a rate of the table is written at that rate: an average rate (a phone's variable
# rate, 29.87 fps) or one a container rounded (2997/100) lands there, each frame in its slot within half a frame
_NEAR_RATE = Fraction(1, 100)


def _coded_rates(encoder: str) -> tuple[Fraction, ...] | None:
    """The frame rates ``encoder``'s stream header can state, or None where it takes any."""
    codec = av.Codec(encoder, "w")
    if codec.canonical_name == "mpeg1video":
        return _MPEG1_RATES
    return tuple(Fraction(r.numerator, r.denominator) for r in codec.frame_rates) if codec.frame_rates else None


def coded_rate(encoder: str, rate: Fraction, container: str | None = None) -> Fraction:
    """The frame rate ``encoder`` writes a ``rate`` source at: ``rate`` itself where the encoder takes any or
    this one, else the nearest of its table within 1 % (MPEG-1 and MPEG-2 video state one rate of a table in
    their header). EncodeError, naming the rates it codes and the encoders ``container`` holds that take
    ``rate``, for any other: FFmpeg's "Invalid argument" said nothing of why (a 15 fps clip with --encoder
    mpeg1video)."""
    rates = _coded_rates(encoder)
    if rates is None or rate in rates:
        return rate
    nearest = min(rates, key=lambda r: abs(r - rate))
    if abs(nearest - rate) <= _NEAR_RATE * rate:
        return nearest
    if rates is _MPEG1_RATES:
        stated = "23.976, 24, 25, 29.97, 30, 50, 59.94 or 60 fps"
    else:
        stated = "one of a table's rates, such as 12, 15, 24, 25, 30, 50 or 60 fps and their NTSC (1000/1001) forms"
    fits = [other for other in ("mpeg2video", SOFTWARE_ENCODER) if other != encoder
            and (other == SOFTWARE_ENCODER or rate in (_coded_rates(other) or ()))
            and (container is None or takes(container, other))]
    instead = (f"use --encoder {fits[0]}{' (which codes it)' if fits[0] == 'mpeg2video' else ''}"
               f"{''.join(f' or {other}' for other in fits[1:])}" if fits
               else f"use .mkv or .mp4 (with --encoder {SOFTWARE_ENCODER}), which hold any rate")
    raise EncodeError(f"encoder {encoder} cannot write {float(rate):g} fps video: its stream states only {stated}; "
                      f"{instead}")


_SAME_DEPTH = {"yuv420p10le": ("p010le",), "yuv444p10le": ("yuv444p16le",)}
# the 4:4:4 layout of the same depth, for an odd-sized picture an encoder cannot write as 4:2:0
_FULL_CHROMA = {"yuv420p": "yuv444p", "yuv420p10le": "yuv444p10le"}


@functools.lru_cache(maxsize=None)
def writes_odd_420(encoder: str) -> bool:
    """Whether ``encoder`` writes 4:2:0 at an odd size (its chroma planes half the size rounded up, as FFmpeg's
    frames hold them): MPEG-4, VP8, VP9, SVT-AV1 and MPEG-1/2 video do; x264, x265 and NVENC refuse. Asked of
    the encoder itself, opened at 63x47 (x265 told to say nothing, or its refusal reached the user)."""
    try:
        ctx = av.CodecContext.create(encoder, "w")
        ctx.width, ctx.height, ctx.pix_fmt = 63, 47, "yuv420p"
        ctx.time_base, ctx.framerate = Fraction(1, 25), Fraction(25)  # a rate MPEG-1's table has
        options = encoder_options(encoder, private_options(ctx), crf=23, preset="ultrafast")
        ctx.options = {**options, **({"x265-params": "log-level=none"} if "x265-params" in options else {})}
        if jpeg_colour_only(encoder):
            ctx.color_range = AVCOL_RANGE_JPEG
        ctx.open()
        return True
    except (av.FFmpegError, ValueError, OSError):
        return False


def encodable_pix_fmt(encoder: str, wanted: str, *, width: int, height: int) -> str:
    """``wanted`` if ``encoder`` takes it, else the same depth in another layout (NVENC's P010 for
    10-bit 4:2:0), else 8-bit 4:2:0 (even sizes), 4:4:4 or RGB, then 4:2:2 and 10-bit layouts, the
    first it takes (SVT-AV1 and mpeg4 have no 4:4:4, so a 4:4:4 source is written 4:2:0; libx264rgb
    takes only RGB; ProRes only 10-bit 4:2:2 and 4:4:4); EncodeError when it takes none, e.g. an
    odd size for a 4:2:0-only encoder that cannot write it. An odd-sized 4:2:0 picture stays 4:2:0 where the
    encoder writes that (:func:`writes_odd_420`: VP9's 4:2:0 plays in browsers, its 4:4:4 does not; MPEG-4,
    VP8 and SVT-AV1 were refused), else it is 4:4:4 of the same depth (x264)."""
    formats = [f.name for f in (av.Codec(encoder, "w").video_formats or ())]
    even = width % 2 == 0 and height % 2 == 0
    odd_420 = not even and writes_odd_420(encoder)
    if not even and wanted in _FULL_CHROMA and not odd_420:
        wanted = _FULL_CHROMA[wanted]
    if not formats or wanted in formats:
        return wanted
    for same_depth in _SAME_DEPTH.get(wanted, ()):  # NVENC's 10-bit layouts
        if same_depth in formats:
            return same_depth
    # then 4:2:2 and deeper layouts, as the ffmpeg tool converts: ProRes takes only 10-bit 4:2:2 and 4:4:4
    for candidate in ("yuv420p", "yuv444p", "rgb24", "gbrp", "yuv422p", "yuv422p10le", "yuv444p10le",
                      "yuv420p10le"):
        if candidate in formats and (even or not candidate.startswith(("yuv420", "yuv422"))
                                     or (odd_420 and candidate.startswith("yuv420"))):
            return candidate
    odd = "" if even else ", and no odd size as 4:2:0"
    raise EncodeError(f"encoder {encoder} cannot encode {width}x{height} {wanted} (it takes "
                      f"{', '.join(formats[:6])}{'...' if len(formats) > 6 else ''}{odd}); try --encoder libx264")


# x264's preset names (option_values.PRESETS) → libvpx (deadline, cpu-used): the fast three run in realtime mode.
_VPX_SPEED = {"ultrafast": ("realtime", "8"), "superfast": ("realtime", "7"), "veryfast": ("realtime", "6"),
              "faster": ("good", "5"), "fast": ("good", "4"), "medium": ("good", "3"), "slow": ("good", "2"),
              "slower": ("good", "1"), "veryslow": ("good", "0"), "placebo": ("good", "0")}


# x264's preset names → SVT-AV1's presets (13 fastest, 0 slowest); veryfast, the default, is SVT-AV1's own
# default (10). Measured at 320x180, crf 30: 12 → 8042 bytes, 10 → 8399, 8 → 7547, 6 → 6911, 4 → 6439.
_SVT_PRESET = {"ultrafast": "12", "superfast": "11", "veryfast": "10", "faster": "9", "fast": "8", "medium": "6",
               "slow": "5", "slower": "4", "veryslow": "2", "placebo": "1"}


# x264's preset names → NVENC's (p1 fastest .. p7 slowest); veryfast, the default, keeps the p4 every NVENC run had
# (--preset was taken as applied, and NVENC ran at p4 whatever it said)
_NVENC_PRESET = {"ultrafast": "p1", "superfast": "p2", "veryfast": "p4", "faster": "p4", "fast": "p5", "medium": "p5",
                 "slow": "p6", "slower": "p7", "veryslow": "p7", "placebo": "p7"}


_LOWEST_CRF = {"libsvtav1": 1, "libvpx": 4}


def mpeg4_quantizer(crf: int) -> int:
    """The MPEG-4 Part 2 quantizer (1 best .. 31) as good as x264 at ``crf``: the quantizer doubles every 6
    crf, as x264's does. Measured at 320x180 (PSNR, dB): crf 18 40.5 ~ q2 41.5; crf 23 37.5 ~ q4 37.4;
    crf 28 33.9 ~ q6 34.7; crf 51 23.5 ~ q31 25.4."""
    return min(31, max(1, round(2 ** ((crf - 12) / 6))))


def encoder_options(name: str, private_options: set[str] | frozenset[str], *, crf: int,
                    preset: str, x265_params: str = "") -> dict[str, str]:
    """The constant-quality and speed settings each encoder family understands, so ``--crf`` means
    "quality, lower is better" whichever encoder is chosen: ``crf`` where the encoder has it
    (libx264/x265, libvpx, SVT-AV1; VP9 needs ``b=0`` for pure constant quality, VP8 a high ``b``), NVENC's ``cq``
    with variable bit rate, MPEG-4 Part 2's quantizer (:func:`mpeg4_quantizer`). ``preset`` is
    x264/x265's speed name; libvpx gets the matching deadline and cpu-used (its own default,
    cpu-used 0, encodes 640x272 VP9 at 43 fps on two cores; ``veryfast``'s realtime/6 at 380 fps)
    and row multithreading; SVT-AV1 and NVENC the matching preset (number, p1-p7). x265 and SVT-AV1 otherwise print a
    screen of info lines on stderr, so their logs are cut to errors. An encoder with neither knob
    gets nothing and keeps its own default quality (the writer's ``quality_control`` is then None).
    ``x265_params``: more for x265 (HDR10's mastering display and light levels)."""
    if name.endswith("_nvenc"):
        # cq 0 is NVENC's "automatic", not its best (as SVT-AV1's crf 0): --crf 0 gets 1
        return {"preset": _NVENC_PRESET.get(preset, "p4"), "rc": "vbr", "cq": str(max(crf, 1))}
    options: dict[str, str] = {}
    if "crf" in private_options:
        # SVT-AV1 reads crf 0 as "not set": --crf 0 gave its default, 35 (the same bytes as --crf 35);
        # VP8's lowest is its lowest quantizer, 4 (--crf 0 to 3 failed to open the encoder)
        options["crf"] = str(max(crf, _LOWEST_CRF.get(name, 0)))
        if name.startswith("libvpx"):
            # VP9: b=0 is pure constant quality. VP8 has no such mode: crf is a floor under the bit rate,
            # and b=0 meant libvpx's 256 kb/s, which crf barely moved (320x180: 38.7 dB at crf 4, 35.8 at
            # 51); a rate it never reaches leaves the quality to crf (44.1 .. 36.3 dB)
            options["b"] = "0" if name == "libvpx-vp9" else "100M"
    # no crf: mpeg4's default bit rate gave 29 dB where x264's crf 18 gives 40; Motion JPEG's (200 kb/s) lost
    # more with every frame (160x96, against a lossless output: 41.2 dB at frame 1, 30.3 at frame 6; q2: 41)
    # MPEG-1/2 video: the same 1-31 quantizer scale and default bit rate (25 dB at 64x48 against lossless)
    if name in ("mpeg4", "mjpeg", "mpeg1video", "mpeg2video"):
        options["qmin"] = options["qmax"] = str(mpeg4_quantizer(crf))
    if name in ("libx264", "libx264rgb", "libx265"):
        options["preset"] = preset
    if name.startswith("libvpx") and preset in _VPX_SPEED:
        options["deadline"], options["cpu-used"] = _VPX_SPEED[preset]
        if "row-mt" in private_options:
            options["row-mt"] = "1"
    if name == "libsvtav1" and preset in _SVT_PRESET:
        options["preset"] = _SVT_PRESET[preset]  # it said "has no speed presets" and ran at its own
    if "x265-params" in private_options:
        options["x265-params"] = ":".join(["log-level=error", *([x265_params] if x265_params else [])])
    if name == "libsvtav1":  # SVT-AV1 logs through its own logger, read from the environment at open
        os.environ.setdefault("SVT_LOG", "1")  # 1: errors only
    return options
