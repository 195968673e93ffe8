"""Reading and writing video files with PyAV, and colour conversion for the device path."""
from videodeblur.video.colour import ColourTags, i420_to_rgb, rgb_to_i420, yuv_matrix
from videodeblur.video.encoders import choose_encoder
from videodeblur.video.info import VideoInfo
from videodeblur.video.outputs import check_output_path
from videodeblur.video.reader import DecodedFrame, FrameReader, probe
from videodeblur.video.writer import FrameWriter

__all__ = ["FrameReader", "FrameWriter", "VideoInfo", "DecodedFrame", "probe", "choose_encoder",
           "check_output_path", "ColourTags", "i420_to_rgb", "rgb_to_i420", "yuv_matrix"]
