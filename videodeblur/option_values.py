"""Option values the library's option classes and the commands both check, spelled once here.

Free of torch, PyAV and OpenCV (importing ``videodeblur.pipeline`` or ``videodeblur.video`` loads them):
the commands check these while parsing their options, before the model loads."""
from __future__ import annotations

from videodeblur.errors import ConfigError

__all__ = ["PRESETS", "check_preset", "MIN_TILE_OVERLAP", "MIN_TILE", "smallest_tile"]

# x264's speed names, fastest first; x265 takes the same, libvpx gets them mapped (encoders._VPX_SPEED)
PRESETS: tuple[str, ...] = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
                            "veryslow", "placebo")


def check_preset(preset: object) -> None:
    """ConfigError unless ``preset`` is one of :data:`PRESETS`: a wrong name reached the encoder, which
    ended in FFmpeg's log line and 'cannot open encoder libx264 ... Invalid argument'."""
    if preset not in PRESETS:
        raise ConfigError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")


MIN_TILE_OVERLAP = 32  # pixels neighbouring tiles share, at least (the model's may be more: engine.tile_overlap_for)


def smallest_tile(overlap: int = MIN_TILE_OVERLAP) -> int:
    """The smallest tile for ``overlap``: the overlap on both sides and 16 pixels of the tile's own."""
    return 2 * overlap + 16


MIN_TILE = smallest_tile()  # the least --tile at the least overlap, checked by the command before torch loads
