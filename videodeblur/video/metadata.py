"""The source's metadata a new file carries, and the mark it leaves: descriptive tags copied as the
ffmpeg tool copies them (a phone video keeps its creation time and location), chapters cut to the
part written, and the handler name that says which model made a file's frames, which a resume
checks before it adds frames of its own."""
from __future__ import annotations

from fractions import Fraction
from typing import Any, Sequence

import av

__all__ = ["chapters_in", "descriptive_tags", "made_by_mark", "made_elsewhere", "made_otherwise"]

_TECHNICAL_TAGS = frozenset({"major_brand", "minor_version", "compatible_brands", "encoder", "handler_name",
                             "vendor_id", "duration"})


def descriptive_tags(tags: dict[str, str] | None, keep: tuple[str, ...] | None = None) -> dict[str, str]:
    """The tags worth copying to a new file: all but the container's technical ones (or only ``keep``,
    in any case, named as ``keep`` names them: Matroska reads a video's ``TIMECODE`` in capitals)."""
    if keep is not None:
        return {k.lower(): v for k, v in (tags or {}).items() if k.lower() in keep}
    return {k: v for k, v in (tags or {}).items() if k.lower() not in _TECHNICAL_TAGS}


def chapters_in(chapters: Sequence[dict[str, Any]],
                window: tuple[float | None, float | None] | None) -> list[dict[str, Any]]:
    """The chapters that overlap ``window`` (all without one), moved back by its start and cut to it."""
    if not window:
        return list(chapters)
    start, end = window[0] or 0.0, window[1]
    kept = []
    for chapter in chapters:
        base = Fraction(chapter["time_base"])
        begin, stop = float(chapter["start"] * base) - start, float(chapter["end"] * base) - start
        if stop <= 0 or (end is not None and begin >= end - start):
            continue
        stop = stop if end is None else min(stop, end - start)
        kept.append({**chapter, "start": round(max(0.0, begin) * 1000), "end": round(stop * 1000),
                     "time_base": Fraction(1, 1000)})
    return kept


def made_by_mark(video: av.video.stream.VideoStream) -> str:
    """What a video track says made it ("videodeblur lprn-fast"), or "": the handler name this writer
    gives it (``made_by``), which MP4 reads back as ``handler_name`` and Matroska as ``HANDLER_NAME``."""
    return next((value for key, value in video.metadata.items() if key.lower() == "handler_name"), "")


def made_elsewhere(marked: str) -> bool:
    """Whether a track marked ``marked`` was made by another program (a camera, ffmpeg's
    "VideoHandler"). AVI and MPEG-TS hold no mark at all: "" tells nothing, and the picture check
    of a resume stands guard there."""
    return bool(marked) and not marked.startswith("videodeblur ")


def made_otherwise(marked: str, made_by: str | None) -> bool:
    """Whether a track marked ``marked`` (:func:`made_by_mark`) was made by this tool otherwise than
    ``made_by`` says (another model or weights, deinterlaced or side by side): its frames would not
    match. A mark written before the weights were named in it (", weights ...") is compared by the rest."""
    if not made_by or not marked.startswith("videodeblur ") or marked == made_by:
        return False
    how, _, weights = marked.partition(", weights ")
    wanted, _, wanted_weights = made_by.partition(", weights ")
    return how != wanted or bool(weights and wanted_weights)
