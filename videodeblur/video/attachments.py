"""Carry a source's attachments and cover pictures into the output file.

Why: a Matroska file's styled subtitles (ASS, as anime and fan subtitles are made) are drawn with
fonts the file carries as attachments; copy the subtitles without them and every player falls back
to a plain font. A cover picture (an MP4's ``covr`` artwork, a Matroska ``cover.jpg``) is what file
browsers and media libraries show for the file. The ffmpeg tool keeps both with ``-map 0``.

Containers store them differently, so each is written in the output's own form: Matroska takes
fonts and covers as attachments, MP4 takes a cover as an attached-picture track (written into
``covr`` with the index) and no fonts; MOV, WebM, MPEG-TS and a fragmented MP4 (whose index is
written before any picture could be) hold neither. What cannot go is named, one line per kind.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import av

from videodeblur.video.inputs import ffmpeg_name
from videodeblur.video.locations import NETWORK_TIMEOUTS_S, is_url
from videodeblur.video.streams import cover_streams

__all__ = ["Carried", "carry_attachments", "read_pictures"]

# the picture codecs a cover can be in, with the MIME type Matroska names them by
_PICTURE_TYPES = {"mjpeg": "image/jpeg", "png": "image/png", "bmp": "image/bmp", "gif": "image/gif",
                  "webp": "image/webp", "tiff": "image/tiff"}
_MP4_COVER_CODECS = ("mjpeg", "png", "bmp")  # what FFmpeg's MP4 muxer writes into covr
_LISTED = 5  # names in a warning before "and N more": a fansub release can carry dozens of fonts


@dataclasses.dataclass
class Carried:
    """What :func:`carry_attachments` did: ``written`` (names, for the record), ``covers`` (packets
    to mux once the header is written: MP4's cover track) and ``skipped`` (one line per kind left out)."""

    written: list[str] = dataclasses.field(default_factory=list)
    covers: list[av.Packet] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)


def carry_attachments(source: av.container.InputContainer, output: av.container.OutputContainer,
                      pictures: Callable[[list[int]], dict[int, bytes]], *, kind: str,
                      fragmented: bool = False) -> Carried:
    """Add ``source``'s attachments and covers to ``output`` (before its header is written).
    ``pictures``: the cover pictures' bytes by stream index, for the indices given
    (:func:`read_pictures` from a file, or what a pipe's reader kept), so ``source`` is left unread.
    ``kind``: what the messages call the output (".mp4")."""
    carried = Carried()
    files = list(source.streams.attachments)
    covers = cover_streams(source)
    matroska = output.format.name == "matroska"  # .mkv, .mka; not WebM, whose muxer refuses attachments
    mp4 = output.format.name in ("mp4", "ipod") and not fragmented
    if files:
        if matroska:
            for attachment in files:
                name = attachment.name or attachment.metadata.get("filename") or f"attachment{attachment.index}"
                output.add_attachment(name, attachment.mimetype or "application/octet-stream", bytes(attachment.data))
                carried.written.append(name)
        else:
            names = [a.name or a.metadata.get("filename") or f"stream {a.index}" for a in files]
            carried.skipped.append(f"{_count(len(files), 'attachment')} ({_listed(names)}): {kind} files cannot hold "
                                   f"{_them(len(files))}; .mkv can")
    if not covers:
        return carried
    found = pictures([s.index for s in covers])
    fits = [s for s in covers if s.index in found and (matroska or (mp4 and s.codec_context.name in _MP4_COVER_CODECS))]
    for cover in fits:
        picture = found[cover.index]
        if matroska:
            mimetype = cover.metadata.get("mimetype") or _PICTURE_TYPES.get(cover.codec_context.name,
                                                                            "application/octet-stream")
            name = cover.metadata.get("filename") or f"cover.{mimetype.rpartition('/')[2].replace('jpeg', 'jpg')}"
            output.add_attachment(name, mimetype, picture)
            carried.written.append(name)
        else:
            stream = output.add_stream_from_template(cover)
            stream.disposition = av.stream.Disposition.attached_pic
            packet = av.Packet(picture)
            packet.stream, packet.pts, packet.dts = stream, 0, 0
            carried.covers.append(packet)
            carried.written.append(f"cover ({cover.codec_context.name})")
    left = [s for s in covers if s not in fits and s.index in found]  # one that could not be read is no loss to report
    if left:
        where = (f"a fragmented {kind} file cannot hold {_them(len(left))}; .mkv or an unfragmented {kind} can"
                 if fragmented and output.format.name in ("mp4", "ipod")
                 else f"{kind} files cannot hold {_them(len(left))}; "
                      + (".mp4 and .mkv can" if not mp4 and all(s.codec_context.name in _MP4_COVER_CODECS for s in left)
                         else ".mkv can"))  # MP4's covr holds JPEG, PNG and BMP only
        named = "; ".join(f"stream {s.index}, {s.codec_context.name} {s.codec_context.width}x{s.codec_context.height}"
                          for s in left)
        carried.skipped.append(f"{_count(len(left), 'cover picture')} ({named}): {where}")
    return carried


def read_pictures(path: str | Path, indices: list[int]) -> dict[int, bytes]:
    """The picture of each cover stream in ``indices``, read from a second, short-lived opening of
    ``path``. FFmpeg hands a file's attached pictures out before its first packet of audio or
    video, so only the start of the file is read."""
    wanted = set(indices)
    pictures: dict[int, bytes] = {}
    try:
        with av.open(ffmpeg_name(path), "r", metadata_errors="replace",
                     timeout=NETWORK_TIMEOUTS_S if is_url(path) else None) as container:
            for read, packet in enumerate(container.demux()):
                if packet.stream.index in wanted and packet.size:
                    pictures.setdefault(packet.stream.index, bytes(packet))
                if len(pictures) == len(wanted) or read > 64:
                    break
    except av.FFmpegError:
        pass  # the tracks that matter are the audio and subtitles, read elsewhere: a cover is not worth a failed run
    return pictures


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}s" if n > 1 else noun


def _them(n: int) -> str:
    return "them" if n > 1 else "it"


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:_LISTED])
    return shown if len(names) <= _LISTED else f"{shown} and {len(names) - _LISTED} more"
