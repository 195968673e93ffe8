"""Which of a file's streams is what: the video to deblur, cover pictures stored as one-picture video
streams, and MP4/MOV chapter tracks that look like subtitles. The reader, the track copier and
the resume check must all tell these apart the same way."""
from __future__ import annotations

import av

__all__ = ["cover_streams", "is_chapter_track", "is_cover", "pick_video_stream"]


def pick_video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream | None:
    """The stream to deblur: FFmpeg's own choice (av_find_best_stream, as the ffmpeg tool makes it)
    among the moving-picture streams, so neither a thumbnail track stored first nor a cover picture
    (an MP3's or M4A's artwork, disposition attached_pic) is taken for the video. None if there is none."""
    videos = [s for s in container.streams.video if not is_cover(s)]
    best = container.streams.best("video")
    return best if any(best is s for s in videos) else (videos[0] if videos else None)


def is_cover(stream: av.stream.Stream) -> bool:
    """Whether a video stream is a still picture attached to the file (artwork), not video."""
    return bool(stream.disposition & av.stream.Disposition.attached_pic)


def cover_streams(container: av.container.InputContainer) -> list[av.video.stream.VideoStream]:
    """The file's cover pictures (artwork stored as video streams of one picture)."""
    return [s for s in container.streams.video if is_cover(s)]


def is_chapter_track(container: av.container.InputContainer, stream: av.stream.Stream) -> bool:
    """Whether ``stream`` is an MP4/MOV's chapter track: QuickTime text that the muxer writes from
    the file's chapters (which are read, and written again, as chapters), not subtitles or data to
    copy. From a file the demuxer marks it discarded (a ``bin_data`` track without packets); from a
    pipe it cannot, and the track reads as ``mov_text`` subtitles tagged ``text``, which a muxer
    never enables (no default disposition), in a file with chapters."""
    if stream.type not in ("data", "subtitle") or not container.format.name.startswith("mov"):
        return False
    if stream.discard == av.stream.Discard.all:
        return True
    codec = stream.codec_context
    return (codec is not None and codec.name == "mov_text" and codec.codec_tag == "text"
            and not stream.disposition & av.stream.Disposition.default and bool(container.chapters()))
