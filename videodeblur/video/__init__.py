"""Reading and writing video files with PyAV, and colour conversion for the device path.

Its names are imported on first use (``videodeblur.lazy_exports``): ``colour`` loads torch, and the
commands ask ``videodeblur.video.locations`` about their paths before that.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from videodeblur.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from videodeblur.video.colour import ColourTags, i420_to_rgb, rgb_to_i420, yuv_matrix
    from videodeblur.video.encoders import choose_encoder
    from videodeblur.video.info import VideoInfo
    from videodeblur.video.outputs import check_output_path
    from videodeblur.video.reader import DecodedFrame, FrameReader, probe
    from videodeblur.video.writer import FrameWriter

__all__ = ["FrameReader", "FrameWriter", "VideoInfo", "DecodedFrame", "probe", "choose_encoder",
           "check_output_path", "ColourTags", "i420_to_rgb", "rgb_to_i420", "yuv_matrix"]

__getattr__, __dir__ = lazy_exports(__name__, {
    "colour": ("ColourTags", "i420_to_rgb", "rgb_to_i420", "yuv_matrix"),
    "encoders": ("choose_encoder",),
    "info": ("VideoInfo",),
    "outputs": ("check_output_path",),
    "reader": ("DecodedFrame", "FrameReader", "probe"),
    "writer": ("FrameWriter",),
})
