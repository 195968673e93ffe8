"""Option values the library's option classes and the commands both check, spelled once here.

Free of torch, PyAV and OpenCV (importing ``videodeblur.pipeline`` or ``videodeblur.video`` loads them):
the commands check these while parsing their options, before the model loads."""
from __future__ import annotations

from videodeblur.errors import ConfigError

__all__ = ["PRESETS", "check_preset"]

# x264's speed names, fastest first; x265 takes the same, libvpx gets them mapped (encoders._VPX_SPEED)
PRESETS: tuple[str, ...] = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
                            "veryslow", "placebo")


def check_preset(preset: object) -> None:
    """ConfigError unless ``preset`` is one of :data:`PRESETS`: a wrong name reached the encoder, which
    ended in FFmpeg's log line and 'cannot open encoder libx264 ... Invalid argument'."""
    if preset not in PRESETS:
        raise ConfigError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")
