"""``videodeblur camera``: deblur a live feed (webcam, network stream, lavfi, or a file played live).

The preview window lives on the main thread (OpenCV's GUI needs it there), drawn from the live
loop's per-frame callback. Without a display, with ``--no-preview``, or with an OpenCV build that
has no GUI, it runs headless and says so once on stderr.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import re
import socket
import threading
from pathlib import Path
from typing import Any

import click
import numpy as np

from videodeblur.cli._common import (StopSaid, device_option, engines_option, json_option, model_option,
                                     parse_size, precision_option, stop_word, warn)

__all__ = ["camera"]

_WINDOW = "videodeblur camera (q or Esc quits)"


def _record_target(value: str | None) -> Path | str | None:
    """A file path, or a stream URL kept as a string (pathlib would fold its //). Called in the
    command, after cv2 is imported: ``videodeblur.video`` imports av, and av imported before cv2
    freezes the preview window (DESIGN.md); as an option's callback it ran first."""
    from videodeblur.video.locations import is_url, scheme_not_sent

    if value is None or is_url(value):
        return value
    if why := scheme_not_sent(value):
        raise click.BadParameter(why, param_hint="--record")
    if value.endswith(("/", os.sep)):  # pathlib drops the slash: "rec.mp4/" was recorded into the file rec.mp4
        from videodeblur.errors import OutputError

        raise OutputError(f"cannot record to {value}: the slash makes it a folder; give a file such as {value}out.mp4")
    return Path(value)


class _Seconds(click.FloatRange):
    """A positive, finite number of seconds (a FloatRange lets nan through: every comparison is False)."""

    name = "number of seconds"  # click says "'abc' is not a valid <name>": it was "float range"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        seconds = super().convert(value, param, ctx)
        if not math.isfinite(seconds):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        return seconds


_SECONDS = _Seconds(min=0, min_open=True)


@click.command()
@click.option("--source", default="0", show_default=True,
              help="Camera index (0), /dev/videoN, rtsp:// or http:// URL, lavfi graph "
                   "(testsrc2=size=640x360:rate=30), a video file, or - for a video piped in.")
@click.option("--realtime", is_flag=True,
              help="Play a file source (or a clip at a URL) at its own frame rate, dropping frames the model "
                   "cannot keep up with, as a camera would. Without it a file is read in step with the model.")
@model_option()
@device_option
@precision_option
@click.option("--size", "size", default=None, metavar="WxH", help="Ask a webcam for this capture size.")
@click.option("--fourcc", default=None, metavar="CODE",
              help="Ask a webcam for this pixel format, e.g. MJPG or YUYV [default: MJPG with --size: most USB "
                   "webcams send 1080p uncompressed at about 5 fps only].")
@engines_option
@click.option("--preview/--no-preview", default=True, show_default=True, help="Show the preview window.")
@click.option("--side-by-side", is_flag=True,
              help="Show the original and the deblurred picture side by side, in the preview and in a --record "
                   "file (twice as wide, as video --side-by-side writes).")
@click.option("--record", default=None,
              metavar="OUT.mp4|URL",
              help="Also write the deblurred feed to this file (timestamps from the source's own clock, so its sound "
                   "stays in step; a webcam's from capture time), or send it live to a streaming URL: rtmp://server/app/key, "
                   "srt://host:port, udp:// or tcp://host:port (MPEG-TS), rtsp://server/path (publish). The source's sound comes along (a network "
                   "camera's microphone, a file; not a pipe, which cannot be read twice).")
@click.option("--reconnect", type=_SECONDS, default=None, metavar="SECONDS",
              help="When the camera or stream is lost (a network camera dropping, a webcam replugged), open it "
                   "again every second for up to SECONDS, and go on: same size, same recording.")
@click.option("--max-seconds", type=_SECONDS, default=None, metavar="SECONDS",
              help="Stop after this many seconds.")
@click.option("--cuda-graphs", is_flag=True, help="On CUDA, replay the network as a captured CUDA graph (fewer "
                                                   "kernel launches per frame; captured during the warm-up).")
@json_option
def camera(source: str, realtime: bool, model: str | None, device: str, precision: str, size: str | None,
           fourcc: str | None, engines: int | None, preview: bool, side_by_side: bool, record: str | None,
           reconnect: float | None, max_seconds: float | None, cuda_graphs: bool, as_json: bool) -> None:
    """Deblur a live feed with low, bounded latency.

    Only the newest frame is kept: when the model is slower than the source, stale frames are
    dropped and counted, never queued. Ends on q/Esc, Ctrl-C, --max-seconds, the end of a file
    source or a camera that stops delivering; prints frames captured, processed and dropped,
    processed fps and capture-to-output latency (p50/p95/p99 ms).

    \b
    Examples:
      videodeblur camera --source 0 --side-by-side
      videodeblur camera --source clip.mp4 --realtime --no-preview --json
      videodeblur camera --source testsrc2=size=640x360:rate=30 --max-seconds 10 --record out.mp4
    """
    import cv2  # first: importing av before cv2 freezes the preview window (DESIGN.md; _record_target)

    from videodeblur.errors import ConfigError
    from videodeblur.video.capture import CaptureOptions, open_source

    record_target = _record_target(record)
    if isinstance(record_target, Path):  # before the source is opened and the model loaded, as `video` does
        from videodeblur.pipeline.live_record import check_record_file

        check_record_file(record_target, input_path=_source_file(source))

    width, height = _parse_size(size)
    try:
        capture_options = CaptureOptions(realtime=realtime, width=width, height=height, fourcc=fourcc,
                                         # --max-seconds bounds the wait for a stream that never answers too
                                         open_timeout_s=min(CaptureOptions.open_timeout_s,
                                                            max_seconds or CaptureOptions.open_timeout_s),
                                         pipe_wait_s=max_seconds)
    except ConfigError as err:  # the sizes are checked by _parse_size: what is left is --fourcc
        raise click.BadParameter(str(err), param_hint="--fourcc") from err
    live_source = open_source(source, capture_options)  # a mistyped --source is said here, before torch loads
    for note in _ignored_options(live_source, size=size, fourcc=fourcc, realtime=realtime, reconnect=reconnect,
                                 side_by_side=side_by_side and not preview and record is None):
        click.echo(f"videodeblur: note: {note}", err=True)
    if live_source.note:
        click.echo(f"videodeblur: note: {live_source.note}", err=True)
    if record is not None and (left_out := getattr(live_source, "sound_left_out", None)):
        click.echo(f"videodeblur: note: {left_out}", err=True)  # said once: a reconnect does not repeat it
    window = None
    capped: list[str] = []
    try:
        from videodeblur.pipeline import EngineOptions  # torch loads here (a Ctrl-C in it closes the source too)
        from videodeblur.pipeline.live import LiveOptions, run_live
        from videodeblur.pipeline.live_workers import live_engines
        from videodeblur.signals import signals_noted

        models = live_engines(model, EngineOptions(device=device, precision=precision, cuda_graphs=cuda_graphs), engines)
        if engines is not None and len(models) < engines:  # capped at the cores, or one on a GPU: said, not hidden
            where = "a GPU overlaps frames with its own streams" if models[0].device.type != "cpu" else \
                "each engine needs a core of its own"
            capped.append(f"--engines {engines}: {len(models)} run ({where})")  # said now, and in --json
            click.echo(f"videodeblur: note: {capped[-1]}", err=True)
        if not preview:
            click.echo("videodeblur: --no-preview: running headless (stats are printed on exit)", err=True)
        elif not _display_available():
            click.echo("videodeblur: no display (DISPLAY is not set): running headless", err=True)
        elif not os.environ.get("DISPLAY") and _gui_backend(cv2).startswith("QT"):
            click.echo("videodeblur: no X display (DISPLAY is not set; OpenCV's Qt window needs X, under Wayland "
                       "its XWayland): running headless", err=True)
        elif not _x_display_reachable(os.environ.get("DISPLAY", "")):
            click.echo(f"videodeblur: display {os.environ['DISPLAY']!r} is not reachable: running headless", err=True)
        else:
            window = _open_preview(cv2, side_by_side, live_source.rotation)
    except BaseException:
        live_source.close()
        raise
    # Ctrl-C (SIGTERM, SIGHUP) is noted from before the run begins until its stats are said whole:
    # raised between run_live's return and the stats, it lost them (and the --json output); one
    # before the run notes signals itself stops it at its first turn
    interrupted = threading.Event()
    with signals_noted(interrupted.set):
        try:
            stats = run_live(live_source, models,
                             LiveOptions(max_seconds=max_seconds, record_path=record_target,
                                         reconnect_s=reconnect or 0.0, side_by_side=side_by_side),
                             on_frame=window.show if window is not None else None,
                             reopen=lambda: open_source(source, capture_options), interrupt=interrupted)
        finally:
            if window is not None:
                window.close()
        for warning in [*stats.warnings, *([stats.end_reason] if stats.end_reason.startswith("source lost") else [])]:
            warn(warning)
        notes = {getattr(each, "auto_tile_note", None) for each in models}  # a test may hand in a stand-in
        for note in sorted(note for note in notes if note):
            click.echo(f"videodeblur: note: {note}", err=True)
        result = stats.to_dict()
        result["warnings"] = [*result["warnings"], *capped]  # as `video --json` lists it
        # the stop is said by the stats ("ended", end_reason), in its own word ("terminated" for SIGTERM)
        click.echo(json.dumps(result) if as_json else _table(result, ended=stop_word() if stats.interrupted else None))
    if stats.interrupted:  # said above: run_cli exits 130 (143, 129) without saying it again
        raise StopSaid()
    if interrupted.is_set():  # after the run had ended otherwise: the stats do not say it, run_cli does
        raise click.exceptions.Abort()  # (a KeyboardInterrupt got a blank line from click before it)


def _source_file(source: str) -> Path | None:
    """The file ``--source`` names, if it names one (a recording may not overwrite it)."""
    from videodeblur.video.locations import is_url

    path = Path(source.strip()).expanduser()
    # os.path.isfile: a name too long is no file here (Path.is_file raised); open_source says it
    return path if source.strip() and not is_url(source) and os.path.isfile(path) else None


def _ignored_options(source: Any, *, size: str | None, fourcc: str | None, realtime: bool,
                     reconnect: float | None, side_by_side: bool) -> list[str]:
    """Options given that this source, or this run, has no use for: said, not silently dropped."""
    from videodeblur.video.capture import OpenCVCameraSource

    notes = []
    for name, value in (("--size", size), ("--fourcc", fourcc)):
        if value is not None and not isinstance(source, OpenCVCameraSource):
            notes.append(f"{name} is asked of a webcam; {source.description} is not one, so it is ignored")
    if realtime and not source.paceable:
        notes.append(f"--realtime paces a file or URL; {source.description} keeps its own pace, so it is ignored")
    if reconnect is not None and not source.live:  # a file, a pipe or a lavfi graph ends; it is never lost
        notes.append(f"--reconnect opens a lost camera or stream again; {source.description} is not one, so it is "
                     "ignored")
    if side_by_side:
        notes.append("--side-by-side shapes the preview and a --record file; with neither it changes nothing")
    return notes


class _Preview:
    """The OpenCV window: deblurred picture (or original | deblurred) with fps and latency drawn on it."""

    def __init__(self, cv2: Any, side_by_side: bool, rotation: int = 0) -> None:
        self._cv2 = cv2
        self._side_by_side = side_by_side
        self._quarters = round(rotation / 90) % 4  # a phone's clip, stored on its side: shown upright
        self._sized = False
        cv2.namedWindow(_WINDOW, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | cv2.WINDOW_GUI_NORMAL)  # no toolbar

    def show(self, frame: Any) -> bool:
        """Draw one LiveFrame; False when the user pressed q/Esc or closed the window."""
        cv2 = self._cv2
        source, output = (np.rot90(frame.source, self._quarters), np.rot90(frame.output, self._quarters))
        picture = np.ascontiguousarray(np.hstack([source, output]) if self._side_by_side else output)
        bgr = cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)
        text = f"{frame.fps:5.1f} fps  {frame.latency_ms:5.0f} ms"
        scale = max(0.4, bgr.shape[0] / 720)
        for colour, thickness in (((0, 0, 0), 4), ((255, 255, 255), 1)):  # outlined, readable on any picture
            cv2.putText(bgr, text, (10, int(30 * scale)), cv2.FONT_HERSHEY_SIMPLEX, scale, colour,
                        max(1, int(thickness * scale)), cv2.LINE_AA)
        if self._side_by_side:
            for label, x in (("original", 10), ("deblurred", source.shape[1] + 10)):
                cv2.putText(bgr, label, (x, bgr.shape[0] - 12), cv2.FONT_HERSHEY_SIMPLEX, scale,
                            (255, 255, 255), max(1, int(scale)), cv2.LINE_AA)
        if not self._sized:  # start at the picture's own size; the user may resize from there
            cv2.resizeWindow(_WINDOW, bgr.shape[1], bgr.shape[0])
            self._sized = True
        cv2.imshow(_WINDOW, bgr)
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), ord("Q"), 27):
            return False
        return cv2.getWindowProperty(_WINDOW, cv2.WND_PROP_VISIBLE) >= 1

    def close(self) -> None:
        self._cv2.destroyAllWindows()
        self._cv2.waitKey(1)  # lets the GUI loop actually take the window down


def _open_preview(cv2: Any, side_by_side: bool, rotation: int = 0) -> _Preview | None:
    try:
        return _Preview(cv2, side_by_side, rotation)
    except cv2.error:
        click.echo("videodeblur: preview unavailable: this OpenCV build has no GUI (opencv-python-headless; "
                   "install opencv-python for a window): running headless", err=True)
        return None


def _display_available() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _gui_backend(cv2: Any) -> str:
    """What draws OpenCV's windows, as its build information names it: ``QT5`` (opencv-python, whose Qt
    has only its X platform: under Wayland alone it aborts the whole process), ``GTK3`` (draws under
    Wayland too), ``NONE`` (opencv-python-headless)."""
    gui = re.search(r"^\s*GUI:\s*(\S+)", cv2.getBuildInformation(), re.MULTILINE)
    return gui.group(1).upper() if gui else "NONE"


def _x_display_reachable(display: str) -> bool:
    """Whether an X server answers at ``display`` (``:N``, ``:N.S`` or ``host:N``); True when it is not
    an X display we can check. Checked first because Qt aborts the whole process when it cannot connect."""
    host, sep, number = display.rpartition(":")
    number = number.split(".")[0]
    if not sep or not number.isdigit():
        return True
    try:
        if host in ("", "unix"):
            path = f"/tmp/.X11-unix/X{number}"
            for address in (path, "\0" + path):  # filesystem socket, then the Linux abstract one
                with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                    sock.settimeout(1.0)
                    sock.connect(address)
                    return True
            return False
        with socket.create_connection((host, 6000 + int(number)), timeout=1.0):
            return True
    except OSError:
        return False


def _parse_size(size: str | None) -> tuple[int | None, int | None]:
    return (None, None) if size is None else parse_size(size, param_hint="--size")


def _table(stats: dict[str, Any], ended: str | None = None) -> str:
    """The stats as rows for a person; ``ended``: what ended the run in words, if not its end_reason
    (a stop's own word: "terminated" for SIGTERM, whose end_reason is "interrupted")."""
    latency = stats["latency_ms"]
    rows = [
        ("source", f"{stats['source']} ({stats['width']}x{stats['height']})"),
        ("model", f"{stats['model']} on {stats['device']}"),
        ("captured", stats["captured"]),
        ("processed", stats["processed"]),
        ("dropped", stats["dropped"]),
        ("fps", f"{stats['fps']:.1f} processed ({stats['infer_ms']:.1f} ms model per frame)"),
        ("latency ms", f"p50 {latency['p50']:.1f}   p95 {latency['p95']:.1f}   p99 {latency['p99']:.1f}"
         if latency["p50"] is not None else "none measured (no frame was processed)"),
        ("ended", ended or stats["end_reason"]),
    ]
    if stats.get("reconnects"):
        rows.append(("reconnects", str(stats["reconnects"])))
    if stats["record_path"]:
        dropped = f" ({stats['record_dropped']} left out: the network fell behind)" if stats.get("record_dropped") else ""
        frames = "1 frame" if stats["recorded"] == 1 else f"{stats['recorded']} frames"
        # with no frame the writer never opened its output: there is no file to name
        why = " (no frame was processed)" if not stats["processed"] else dropped
        rows.append(("recorded", f"{frames} to {stats['record_path']}{dropped}" if stats["recorded"]
                     else f"nothing recorded{why}"))
    return "\n".join(f"{name:<11} {value}" for name, value in rows)
