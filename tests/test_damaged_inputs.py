"""Damaged and odd inputs, as a fuzzing run fed them: each gives what decodes and says what was lost,
or one clear line and a non-zero exit; never a hang, a traceback or an output that does not play.

Every input is made here from a ``make_clip`` clip or a ``make_image`` picture: an AVI (MJPEG,
with PCM audio whose channels the container only counts) whole or cut before its index, an MKV
or a WebM with its middle third zeroed, an MKV written twice into one file, named pipes (FIFOs)
in place of a file, fed by a thread or by nobody, standard input that stalls before its first
frame, and JPEGs and PNGs cut short or with their compressed data zeroed.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from _clips_video import remuxed
from conftest import REPO_ROOT, tone_frame

CPU = ("--model", "lprn-fast", "--device", "cpu")
_RATE = 48000


def _avi_with_pcm(src: Path, dst: Path) -> Path:
    """``src``'s frames as MJPEG in an AVI with a 16-bit stereo PCM tone: AVI's PCM header counts two
    channels and does not name them, as a camcorder's or a screen recorder's AVI does."""
    with av.open(str(src)) as i, av.open(str(dst), "w") as o:
        v = o.add_stream("mjpeg", rate=25)
        v.width, v.height, v.pix_fmt = i.streams.video[0].width, i.streams.video[0].height, "yuvj420p"
        v.codec_context.time_base = Fraction(1, 25)
        a = o.add_stream("pcm_s16le", rate=_RATE, layout="stereo")
        frames = 0
        for index, frame in enumerate(i.decode(video=0)):
            picture = frame.reformat(format="yuvj420p")
            picture.pts, picture.time_base = index, Fraction(1, 25)
            o.mux(v.encode(picture))
            frames += 1
        o.mux(v.encode(None))
        for start in range(0, frames * _RATE // 25, 1024):
            o.mux(a.encode(tone_frame(start, 1024, rate=_RATE, fmt="s16")))
        o.mux(a.encode(None))
    return dst


def _tracks(path: Path) -> tuple[int, list[tuple[str, str]], int]:
    """Video frames that decode (every packet of an output that plays decodes), its audio tracks as
    (codec, layout) and their packets."""
    with av.open(str(path)) as c:
        audio = [(s.codec_context.name, s.codec_context.layout.name) for s in c.streams.audio]
        frames = sum(len(c.streams.video[0].decode(p)) for p in c.demux(c.streams.video[0]))
    with av.open(str(path)) as c:
        packets = sum(1 for p in c.demux(*c.streams.audio) if p.size) if c.streams.audio else 0
    return frames, audio, packets


def test_pcm_audio_whose_channels_are_only_counted_goes_into_mp4(run_cli, make_clip, tmp_path: Path) -> None:
    """The MP4 muxer took the AVI's unnamed stereo PCM at the header and failed at the end ("unsupported
    channel layout 2 channels"): exit 1 and a file with no index, not one frame of it playable. The
    channels are named as the ffmpeg tool guesses them (two: stereo) and every packet is copied."""
    avi = _avi_with_pcm(make_clip("a.mp4", width=32, height=32, frames=10), tmp_path / "a.avi")
    _, source_audio, source_packets = _tracks(avi)
    assert source_audio == [("pcm_s16le", "2 channels")]
    out = tmp_path / "out.mp4"
    result = run_cli("video", avi, "-o", out, *CPU, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["frames_written"] == 10
    assert _tracks(out) == (10, [("pcm_s16le", "stereo")], source_packets)


def test_a_camera_recording_of_such_an_avi_plays(run_cli, make_clip, tmp_path: Path) -> None:
    """The recording (a fragmented MP4, its index written first) got a broken sample description
    from the same unnamed channels and no error at all: "recorded 10 frames", exit 0, and a file
    that does not open."""
    avi = _avi_with_pcm(make_clip("a.mp4", width=32, height=32, frames=10), tmp_path / "a.avi")
    out = tmp_path / "rec.mp4"
    result = run_cli("camera", "--source", avi, "--no-preview", "--record", out, *CPU, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["recorded"] == 10
    frames, audio, packets = _tracks(out)
    assert (frames, audio) == (10, [("pcm_s16le", "stereo")]) and packets > 0


def _cut_avi(tmp_path: Path, make_clip) -> tuple[Path, int]:
    """An AVI of 20 frames cut at 60 % of its bytes, before its index (idx1, written last), and how
    many frames still decode from it."""
    whole = _avi_with_pcm(make_clip("a.mp4", width=32, height=32, frames=20), tmp_path / "whole.avi")
    cut = tmp_path / "cut.avi"
    data = whole.read_bytes()
    assert data.rfind(b"idx1") > len(data) * 0.6
    cut.write_bytes(data[: int(len(data) * 0.6)])
    with av.open(str(cut)) as c:
        decodable = sum(1 for _ in c.decode(video=0))
    return cut, decodable


def test_an_avi_cut_before_its_index_says_how_many_frames_were_lost(run_cli, make_clip, tmp_path: Path) -> None:
    """FFmpeg measures an AVI without its index by the frames left in it, so 11 of 20 frames read as a
    whole 11-frame video and the run said nothing of the 9 lost. The header's 20 stand."""
    cut, decodable = _cut_avi(tmp_path, make_clip)
    assert 5 <= decodable <= 15
    result = run_cli("video", cut, "-o", tmp_path / "out.mkv", *CPU, "--json")
    assert result.exit_code == 0, result.stderr
    stats = json.loads(result.stdout)
    assert (stats["frames_written"], stats["frames_lost"]) == (decodable, 20 - decodable)
    assert stats["warnings"] == [f"{cut} is truncated or corrupt: {decodable} of 20 frames decoded, {20 - decodable} "
                                 "lost, 0 decode error(s)"]
    assert _tracks(tmp_path / "out.mkv")[0] == decodable


@pytest.mark.parametrize("suffix", [".mkv", ".webm"])
def test_an_mp4_cut_in_the_middle_of_a_sound_packet_gives_sound_that_decodes(run_cli, make_clip, tmp_path: Path,
                                                                             suffix: str) -> None:
    """An MP4 with its index first, cut short inside an AAC packet: the demuxer hands that packet
    over cut, marked corrupt. Copied into MKV, it was the output's last sound packet, which no
    decoder takes ("Invalid data found"); re-encoded for WebM, its decoding failed the whole run
    ("encoding frame 70 ... failed", exit 1). The cut packet is left out: the frames that decode are
    deblurred, with their sound, and the one warning says what was lost."""
    whole = remuxed(make_clip("a.mp4", width=64, height=48, frames=50, audio=True), tmp_path / "whole.mp4",
                    options={"movflags": "+faststart"})
    sound = _sound_packets(whole)
    at, size = sound[len(sound) // 2]
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[:at + size // 2])
    result = run_cli("video", cut, "-o", tmp_path / f"out{suffix}", *CPU, "--json")
    assert result.exit_code == 0, result.stderr
    stats = json.loads(result.stdout)
    told = [warning for warning in stats["warnings"] if "truncated" in warning]  # (WebM: and the AAC re-encoded)
    assert 10 <= stats["frames_written"] < 50 and len(told) == 1, stats["warnings"]
    assert told[0].startswith(f"{cut} is truncated or corrupt: {stats['frames_written']} of 50 frames decoded")
    with av.open(str(tmp_path / f"out{suffix}")) as c:
        decoded = [frame for p in c.demux(c.streams.audio[0]) for frame in p.decode()]  # raised on the cut packet
    assert sum(frame.samples for frame in decoded) / _RATE >= stats["frames_written"] / 25 - 0.1


def test_sound_packets_that_do_not_decode_are_left_out_of_a_reencoded_track(run_cli, make_clip,
                                                                           tmp_path: Path) -> None:
    """Three AAC packets overwritten in the middle of an MP4 (whole in size, so not marked corrupt):
    re-encoded for WebM, the first that did not decode failed the run at frame 6 (exit 1). They are
    left out, as a player skips them, and a warning counts them; every frame is deblurred."""
    clip = make_clip("a.mp4", width=64, height=48, frames=50, audio=True)
    data = bytearray(clip.read_bytes())
    for at, size in _sound_packets(clip)[10:40:10]:
        data[at:at + size] = b"\xff" * size
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    result = run_cli("video", damaged, "-o", tmp_path / "out.webm", *CPU, "--json")
    assert result.exit_code == 0, result.stderr
    stats = json.loads(result.stdout)
    assert stats["frames_written"] == 50 and stats["warnings"][0] == (
        "left out 3 packet(s) of aac audio (stream 1) that did not decode (damaged in the input)")


def _sound_packets(path: Path) -> list[tuple[int, int]]:
    """Where the first sound track's packets lie in the file: (byte offset, size) each."""
    with av.open(str(path)) as c:
        return [(p.pos, p.size) for p in c.demux(c.streams.audio[0]) if p.size]


def test_a_matroska_file_that_lost_its_middle_says_how_many_frames_it_lost(run_cli, make_clip, tmp_path: Path) -> None:
    """The middle third of an MKV zeroed: the frames read span the whole stream with a hole, and the
    loss was estimated as for an AVI whose header counts empty slots, at the density read over the
    slots after the last frame read: none, so 23 of 40 frames went without a word (with a sound
    track: "about 1 lost"). Matroska counts no frames: the duration's count stands, said "about"."""
    mkv = remuxed(make_clip("a.mp4", width=32, height=32, frames=40), tmp_path / "a.mkv")
    _assert_middle_loss_is_told(run_cli, mkv, tmp_path / "holed.mkv", most_decodable=30)


def test_a_matroska_file_that_pauses_is_not_called_damaged_alone(run_cli, tmp_path: Path) -> None:
    """20 frames at 25 fps with a 2 s pause after the tenth (a screen recording, a security camera):
    Matroska counts no frames, and the count its duration gives at 25 fps (70) made a whole file
    "truncated or corrupt: 20 of about 70 frames decoded, about 50 lost". Read to its end without a
    skipped stretch or an error, it may be whole, or have lost a cluster cut out cleanly (which looks
    the same): the warning says both."""
    from conftest import clip_frame

    src = tmp_path / "paused.mkv"
    with av.open(str(src), "w") as c:
        stream = c.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for i in range(20):
            frame = av.VideoFrame.from_ndarray(clip_frame(i, 64, 48), format="rgb24")
            frame.pts, frame.time_base = i * 40 + (2000 if i >= 10 else 0), Fraction(1, 1000)
            c.mux(stream.encode(frame))
        c.mux(stream.encode(None))
    result = run_cli("video", src, "-o", tmp_path / "out.mp4", *CPU, "--json")
    stats = json.loads(result.stdout)
    assert result.exit_code == 0 and stats["frames_written"] == 20, result.stderr
    assert stats["warnings"] == [f"{src} holds 20 frames where its duration at 25 fps would hold about 70: about 50 "
                                 "were lost (a damaged or cut file), or its frame rate varies (the video pauses)"]


def _assert_middle_loss_is_told(run_cli, whole: Path, holed: Path, *, most_decodable: int) -> None:
    """``whole`` (40 frames) with its middle third zeroed, as ``holed``: the run writes every frame that
    decodes and says, in one warning, about how many of the 40 were lost."""
    data = bytearray(whole.read_bytes())
    third = len(data) // 3
    data[third:2 * third] = bytes(third)
    holed.write_bytes(bytes(data))
    with av.open(str(holed)) as c:
        decodable = sum(1 for _ in c.decode(video=0))
    assert 5 <= decodable <= most_decodable
    result = run_cli("video", holed, "-o", holed.with_name("out.mkv"), *CPU, "--json")
    assert result.exit_code == 0, result.stderr
    stats = json.loads(result.stdout)
    assert (stats["frames_written"], stats["frames_lost"]) == (decodable, 40 - decodable)
    assert stats["warnings"] == [f"{holed} is truncated or corrupt: {decodable} of about 40 frames decoded, about "
                                 f"{40 - decodable} lost, 0 decode error(s)"]


def _webm_of(src: Path, dst: Path) -> Path:
    """``src``'s frames as VP9 in a WebM, with an Opus tone as long as the video: Opus frames it to
    end a millisecond after the last frame."""
    with av.open(str(src)) as i, av.open(str(dst), "w") as o:
        v = o.add_stream("libvpx-vp9", rate=25)
        v.width, v.height, v.pix_fmt = i.streams.video[0].width, i.streams.video[0].height, "yuv420p"
        v.options = {"deadline": "realtime", "cpu-used": "8", "g": "10"}
        a = o.add_stream("libopus", rate=_RATE, layout="stereo")
        frames = 0
        for index, frame in enumerate(i.decode(video=0)):
            frame.pts, frame.time_base = index, Fraction(1, 25)
            o.mux(v.encode(frame))
            frames += 1
        o.mux(v.encode(None))
        for start in range(0, frames * _RATE // 25, 960):
            o.mux(a.encode(tone_frame(start, 960, rate=_RATE)))
        o.mux(a.encode(None))
    return dst


def test_a_webm_that_lost_its_middle_is_not_taken_for_whole_by_its_sound(run_cli, make_clip, tmp_path: Path) -> None:
    """Sound read to the file's end and past the last frame meant "the file is whole, its duration is
    the sound's": Opus ending 1 ms after the last frame made a WebM that lost 16 of its 40 frames in
    the middle read as whole, without a word. The sound must outlast the picture by a frame."""
    webm = _webm_of(make_clip("a.mp4", width=32, height=32, frames=40), tmp_path / "a.webm")
    _assert_middle_loss_is_told(run_cli, webm, tmp_path / "holed.webm", most_decodable=35)


def test_a_file_joined_from_two_keeps_every_frame_and_the_sound_that_fits(run_cli, make_clip, tmp_path: Path) -> None:
    """An MKV written twice into one file (``cat a.mkv a.mkv``): the second copy's clock starts again at
    0, and its first sound packets, earlier than the last one written, made the muxer refuse them
    ("Invalid argument"): exit 1, and the camera's recording stopped at frame 46 of 50, after a
    thread's traceback on stderr. Those packets are left out with a warning; every frame is kept."""
    mkv = remuxed(make_clip("a.mp4", width=32, height=32, frames=25, audio=True), tmp_path / "a.mkv")
    joined = tmp_path / "joined.mkv"
    joined.write_bytes(mkv.read_bytes() * 2)
    audio_packets = _tracks(mkv)[2]
    def warning(at_s: str) -> str:  # at the last packet written: the camera copies sound up to its frames' end
        return (f"left out the packets of aac audio (stream 1) whose timestamps go back, first at {at_s} s (a file "
                "joined from two, a clock reset, or damage)")

    result = run_cli("video", joined, "-o", tmp_path / "out.mp4", *CPU, "--json")
    assert result.exit_code == 0, result.stderr
    stats = json.loads(result.stdout)
    assert (stats["frames_written"], stats["audio_packets"]) == (50, audio_packets)
    assert stats["warnings"] == [warning("1.00")]
    assert _tracks(tmp_path / "out.mp4") == (50, [("aac", "stereo")], audio_packets)
    live = run_cli("camera", "--source", joined, "--no-preview", "--record", tmp_path / "rec.mp4", *CPU, "--json")
    assert live.exit_code == 0, live.stderr
    assert (json.loads(live.stdout)["recorded"], json.loads(live.stdout)["warnings"]) == (50, [warning("0.98")])
    assert _tracks(tmp_path / "rec.mp4")[0] == 50


# ------------------------------------------------------------------------------------------ FIFOs

def _fifo(path: Path, payload: bytes | None) -> threading.Thread | None:
    """A named pipe at ``path``; with ``payload``, a thread that writes it once a reader opens it."""
    os.mkfifo(path)
    if payload is None:
        return None

    def write() -> None:
        try:
            with open(path, "wb") as pipe:
                pipe.write(payload)
        except OSError:  # the reader went away
            pass

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    return writer


def _within(seconds: float, run, *args: object):
    """``run(*args)`` on a daemon thread, failing the test if it has not returned after ``seconds``
    (a hang it would otherwise be: a blocked open cannot be cancelled, and is left to the process)."""
    results: list = []
    worker = threading.Thread(target=lambda: results.append(run(*args)), daemon=True)
    worker.start()
    worker.join(seconds)
    assert results, f"still running after {seconds} s: a hang"
    return results[0]


def test_a_track_whose_codec_ffmpeg_cannot_tell_is_left_out_with_a_warning(run_cli, make_clip, tmp_path: Path) -> None:
    """A Matroska audio track of a codec FFmpeg does not know has no codec context: `video` ended with
    "internal error: AttributeError: 'NoneType' object has no attribute 'name'" (info.py), and past
    that in the writer's passthrough."""
    mkv = remuxed(make_clip("a.mp4", width=64, height=48, frames=4, audio=True), tmp_path / "a.mkv")
    data = mkv.read_bytes()
    assert data.count(b"A_AAC") == 1
    (tmp_path / "odd.mkv").write_bytes(data.replace(b"A_AAC", b"A_ZZZ"))  # a CodecID FFmpeg has no codec for
    result = run_cli("video", tmp_path / "odd.mkv", "-o", tmp_path / "out.mkv", "--device", "cpu", "--model", "lprn-fast")
    assert result.exit_code == 0, result.stderr
    assert "left out audio stream 1: FFmpeg cannot tell its codec (a damaged or unsupported track)" in result.stderr
    with av.open(str(tmp_path / "out.mkv")) as out:
        assert [s.type for s in out.streams] == ["video"] and out.streams.video[0].frames in (0, 4)

def test_a_named_pipe_is_read_once_and_keeps_its_sound(run_cli, make_clip, tmp_path: Path) -> None:
    """A FIFO given by name was read for the video and then opened again for its sound, which waited
    for ever for a writer long gone (a hang that only kill -9 ended). It is read once, as standard
    input is: the video comes out whole and the sound comes along from that one reading."""
    mkv = remuxed(make_clip("a.mp4", width=32, height=32, frames=10, audio=True), tmp_path / "a.mkv")
    pipe = tmp_path / "in.mkv"
    writer = _fifo(pipe, mkv.read_bytes())
    out = tmp_path / "out.mp4"
    result = _within(30, run_cli, "video", pipe, "-o", out, *CPU)
    assert writer is not None
    writer.join(5)
    assert result.exit_code == 0, result.stderr
    assert result.stderr_lines == []
    source = _tracks(mkv)
    assert source[1] and source[2] > 0
    assert _tracks(out) == (10, source[1], source[2])


def test_garbage_from_a_named_pipe_is_one_line_not_a_hang(run_cli, tmp_path: Path) -> None:
    """After FFmpeg refused the pipe's bytes, the reader opened it again to look for an MP4's index
    and waited there for ever."""
    pipe = tmp_path / "in.mp4"
    writer = _fifo(pipe, bytes(20000))
    result = _within(30, run_cli, "video", pipe, "-o", tmp_path / "out.mp4", *CPU)
    assert writer is not None
    writer.join(5)
    assert result.exit_code == 1
    assert result.stderr_lines == [f"videodeblur: error: {pipe} is not a video file FFmpeg can read "
                                          f"([Errno 1094995529] Invalid data found when processing input: '{pipe}')"]
    assert not (tmp_path / "out.mp4").exists()


def _blocked_on_a_pipe(pid: int) -> bool:
    """Whether a thread of ``pid`` waits in the kernel on a pipe: opening a FIFO that has no writer,
    or reading one that sends nothing (Linux's wait channel names)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            wchan = (task / "wchan").read_text()
            if wchan == "wait_for_partner" or wchan.endswith("pipe_read") or "pipe_wait" in wchan:
                return True
    return False


def _interrupt_when_blocked(proc: subprocess.Popen[bytes]) -> list[str]:
    """Ctrl-C ``proc`` once it waits on its pipe (its stderr is a pipe it writes little to); its
    stderr's lines, empty ones left out: ours, and no error among them."""
    try:
        deadline = time.monotonic() + 60
        while not _blocked_on_a_pipe(proc.pid):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)  # not communicate(): it would close standard input, ending the stall
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.stderr is not None
    lines = [line for line in proc.stderr.read().decode().splitlines() if line]
    assert all(line.startswith("videodeblur: ") and "error" not in line for line in lines), lines
    return lines


_NEEDS_PROC = pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc to see the wait")


@_NEEDS_PROC
def test_ctrl_c_while_a_named_pipe_waits_for_its_writer_ends_as_an_interrupt(tmp_path: Path) -> None:
    """Ctrl-C (or SIGTERM) while the input, a FIFO, waited for a writer did not end the run: PyAV's
    EINTR error took the place of the KeyboardInterrupt the signal's handler raised inside it, and
    the reader, taking it for an unreadable file, opened the FIFO again to look for an MP4's index
    and waited there for ever (only kill -9 ended it)."""
    pipe = tmp_path / "in.mkv"
    _fifo(pipe, None)
    command = [sys.executable, "-m", "videodeblur", "video", str(pipe), "-o", str(tmp_path / "o.mp4"), *CPU]
    proc = subprocess.Popen(command, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # one line: the stop, then that no file was left (it was followed by a bare "interrupted")
    assert _interrupt_when_blocked(proc)[-1] == ("videodeblur: interrupted before any frame was written: "
                                                 f"no file was left at {tmp_path / 'o.mp4'}")
    assert proc.returncode == 130 and not (tmp_path / "o.mp4").exists()


@_NEEDS_PROC
def test_ctrl_c_while_standard_input_stalls_before_its_first_frame_ends_the_run(make_clip, tmp_path: Path) -> None:
    """A producer that sent a stream's first bytes and then stalled held the run in FFmpeg's probe,
    which retries a read that a signal interrupts: Ctrl-C and SIGTERM were ignored until it sent
    again or closed. The pipe is now opened on a thread of its own, and the run ends, exit 130."""
    mkv = remuxed(make_clip("a.mp4", width=32, height=32, frames=10, audio=True), tmp_path / "a.mkv")
    proc = subprocess.Popen([sys.executable, "-m", "videodeblur", "video", "-", "-o", str(tmp_path / "o.mkv"), *CPU],
                            cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None
    data = mkv.read_bytes()
    proc.stdin.write(data[:data.index(b"\x1f\x43\xb6\x75") + 8])  # up to its first cluster; not closed: it stalls
    proc.stdin.flush()
    try:
        assert _interrupt_when_blocked(proc)[-1] == ("videodeblur: interrupted before any frame was written: "
                                                     f"no file was left at {tmp_path / 'o.mkv'}")
    finally:
        proc.stdin.close()
    assert proc.returncode == 130 and not (tmp_path / "o.mkv").exists()


# ----------------------------------------------------------------------------------------- images

def _pixels(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def test_a_png_that_does_not_decode_is_one_line_with_the_decoders_reason(run_cli, make_image, capfd,
                                                                          tmp_path: Path) -> None:
    """libpng wrote "libpng error: ..." to stderr itself, past OpenCV's log level, on a line of its
    own above ours: the reason now ends our one line."""
    data = bytearray(make_image("whole.png", width=96, height=64).read_bytes())
    idat = data.index(b"IDAT")
    data[idat + 20:idat + 40] = bytes(20)  # the compressed pixels: zlib's stream no longer inflates
    bad = tmp_path / "bad.png"
    bad.write_bytes(bytes(data))
    result = run_cli("image", bad, "-o", tmp_path / "out.png", *CPU)
    assert result.exit_code == 1
    assert result.stderr_lines == [f"videodeblur: error: {bad} is not a readable image (corrupt, truncated or not PNG, "
                                   "JPEG, TIFF, WebP, AVIF or BMP): libpng error: IDAT: invalid literal/lengths set"]
    assert capfd.readouterr().err == "" and not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("name, cut", [("a.jpg", 2), ("a.png", 12)], ids=["jpeg", "png"])
def test_an_image_missing_only_its_end_marker_is_deblurred_whole(run_cli, make_image, capfd, tmp_path: Path,
                                                                 name, cut) -> None:
    """A JPEG without its last two bytes (EOI) or a PNG without its IEND chunk holds every pixel, and
    every viewer shows it; OpenCV refused it as "not a readable image". It gives the same picture
    as the whole file, with a warning."""
    whole = make_image(name, width=96, height=64)
    short = tmp_path / f"short{whole.suffix}"
    short.write_bytes(whole.read_bytes()[:-cut])
    assert run_cli("image", whole, "-o", tmp_path / f"from_whole{whole.suffix}", *CPU).exit_code == 0
    result = run_cli("image", short, "-o", tmp_path / f"from_short{whole.suffix}", *CPU)
    assert result.exit_code == 0, result.stderr
    assert result.stderr_lines == [f"videodeblur: warning: {short} is damaged or cut short (it has no end marker): "
                                   "the output shows what decoded"]
    from_short, from_whole = _pixels(tmp_path / f"from_short{whole.suffix}"), _pixels(tmp_path / f"from_whole{whole.suffix}")
    assert np.array_equal(from_short, from_whole)
    assert capfd.readouterr().err == ""


def test_a_jpeg_cut_short_gives_what_decodes_and_one_warning(run_cli, make_image, capfd, tmp_path: Path) -> None:
    """A JPEG cut at 60 % decodes down to where it ends (libjpeg fills the rest grey), as viewers show
    it; it was refused as "not a readable image". What libjpeg says of it is our one warning."""
    whole = make_image("a.jpg", width=96, height=64)
    short = tmp_path / "short.jpg"
    short.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.6)])
    out = tmp_path / "out.jpg"
    result = run_cli("image", short, "-o", out, *CPU)
    assert result.exit_code == 0, result.stderr
    assert result.stderr_lines == [f"videodeblur: warning: {short} is damaged or cut short (Corrupt JPEG data: premature "
                                   "end of data segment): the output shows what decoded"]
    assert capfd.readouterr().err == ""
    pixels = _pixels(out)
    assert pixels.shape == (64, 96, 3)
    assert abs(float(pixels[-8:].mean()) - 128) < 3  # the part that was not there: flat grey
    assert float(pixels[:8].std()) > 10  # the part that was: the picture
