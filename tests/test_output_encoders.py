"""The writer across containers and encoders a user picks: a file that plays, or one line that says
what to use instead (session 24's matrix of .mp4/.mov/.mkv/.webm/.ts/.nut/.avi by encoder)."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import pytest

from videodeblur.errors import OutputError
from videodeblur.video import FrameWriter
from videodeblur.video.encoders import containers_for

from conftest import clip_frame


@pytest.mark.parametrize("encoder", ["libvpx-vp9", "ffv1"])
def test_mpeg_ts_refuses_a_codec_it_would_write_as_data(encoder: str, tmp_path: Path) -> None:
    """MPEG-TS took VP9 or FFV1 and wrote it as a private data track: 'wrote 20 frames', exit 0, and a
    file with no video in it. Refused before any frame, naming where the codec goes."""
    with pytest.raises(OutputError, match=rf"\.ts cannot carry {encoder}'s video.*{encoder} goes in \.mp4"):
        FrameWriter(tmp_path / "out.ts", width=64, height=48, time_base=Fraction(1, 25), encoder=encoder)
    assert not (tmp_path / "out.ts").exists()


def test_mpeg_ts_still_takes_hevc(tmp_path: Path) -> None:
    with FrameWriter(tmp_path / "out.ts", width=64, height=48, time_base=Fraction(1, 25), encoder="libx265") as w:
        for i in range(3):
            w.write(clip_frame(i, 64, 48), pts=i)
    with av.open(str(tmp_path / "out.ts")) as c:
        assert c.streams.video and sum(1 for _ in c.decode(video=0)) == 3


@pytest.mark.parametrize("name", ["out.mkv", "out.mp4"])
def test_huffyuv_is_sent_to_the_containers_that_hold_it(name: str, tmp_path: Path) -> None:
    """Only AVI and NUT hold HuffYUV: a .mkv user was told 'use .mp4, .mkv or .mov'."""
    assert containers_for("huffyuv") == (".avi", ".nut")
    with pytest.raises(OutputError, match=r"huffyuv goes in \.avi or \.nut"):
        FrameWriter(tmp_path / name, width=64, height=48, time_base=Fraction(1, 25), encoder="huffyuv")
