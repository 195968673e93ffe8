"""``videodeblur video``: deblur a recorded video file (decode → batch → infer → encode, streamed)."""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import click

from videodeblur.cli._common import (StopSaid, device_option, engines_option, json_option, model_option,
                                     point_at_devnull, precision_option, preset_option, stop_word, tile_option, warn)
from videodeblur.paths import new_folders_removed_if_empty
from videodeblur.video.locations import redacted

if TYPE_CHECKING:  # (imported where used: torch loads only once the paths are checked)
    from videodeblur.pipeline.plan import VideoJob
    from videodeblur.pipeline.stats import RunStats

__all__ = ["video"]


def _parse_time(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """Seconds (``90``, ``12.5``) or a clock time (``1:30``, ``00:01:30.5``), as the ffmpeg tool takes them."""
    if value is None:
        return None
    try:
        parts = [float(part) for part in value.strip().split(":")]
        seconds = 0.0
        for part in parts:
            seconds = seconds * 60 + part
        # minutes and seconds after a colon stay under 60 (1:99 is a typo, not 159 s); nan and inf are no times
        if (len(parts) > 3 or seconds < 0 or not math.isfinite(seconds) or min(parts) < 0
                or any(part >= 60 for part in parts[1:])):
            raise ValueError(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a time: give seconds (90, 12.5) or [HH:]MM:SS[.ms] (1:30)") from None
    if param.name == "duration_s" and seconds <= 0:
        raise click.BadParameter("must be more than 0 seconds")
    return seconds


@click.command()
@click.argument("inputs", metavar="INPUT...", nargs=-1, required=True, type=click.Path(path_type=str))  # str: URLs keep //
@click.option("-o", "--output", "output", default=None, type=click.Path(path_type=str),
              help="Output video file (.mp4, .mkv, .mov, .webm); a folder for several inputs or a folder of videos "
                   "(a path ending in / or without an extension is a folder); "
                   "- for standard output (see --format). "
                   "Default: beside each input as NAME-deblurred.EXT (a folder's into FOLDER-deblurred/, a URL's into "
                   "the current folder). An existing output file is replaced; one that is the input is refused.")
@model_option()
@click.option("--batch", "batch", type=click.IntRange(min=1), default=None,
              help="Frames per network call (default: 4 on CUDA; on a CPU 1 per engine with --engines 2 or more, "
                   "else 2).")
@device_option
@precision_option
@click.option("--encoder", default="auto", show_default=True,
              help="auto (h264_nvenc if it opens, else libx264; for 10-bit hevc_nvenc if it opens, else libx265; "
                   "libvpx-vp9 for .webm), libx264, "
                   "h264_nvenc, or another FFmpeg encoder.")
@click.option("--crf", type=click.IntRange(0, 51), default=18, show_default=True,
              help="Constant quality, lower is better (18 is visually lossless for libx264); also for libx265, libvpx-vp9, "
                   "libvpx (VP8, 4 at best), libsvtav1 (crf), NVENC (cq) and mpeg4 (as its quantizer).")
@preset_option("libx264 / libx265 speed preset, also mapped onto libvpx's speed and SVT-AV1's presets (slower: "
               "smaller files at the same --crf).")
@tile_option("Process frames in overlapping NxN tiles [default: whole frames, or tiles sized to fit when whole ones would need more than half the free memory].")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the network (slow start, faster run).")
@click.option("--cuda-graphs", is_flag=True, help="On CUDA, capture the network once as a CUDA graph and replay it "
                                                   "(fewer kernel launches; full batches of whole frames).")
@engines_option
@click.option("--no-audio", is_flag=True, help="Drop the audio instead of copying it.")
@click.option("--eight-bit", is_flag=True,
              help="Write 8-bit H.264 even from a 10-bit source (which otherwise stays 10-bit, as HEVC).")
@click.option("--fragmented", is_flag=True,
              help="Write the output so that a killed process or a lost machine (kill -9, power, a preempted "
                   "cloud VM) still leaves a playable file of all but the last second: MP4/MOV as a fragment a "
                   "second (no B-frames), MKV/WebM as a cluster a second, every container flushed to disk as "
                   "it is written.")
@click.option("--deinterlace", is_flag=True,
              help="Deinterlace interlaced frames (1080i, DV) with FFmpeg's bwdif before deblurring: one "
                   "progressive frame each, same count and times.")
@click.option("--start", "start_s", callback=_parse_time, default=None, metavar="TIME",
              help="Deblur from TIME into the video (seconds, or [HH:]MM:SS[.ms]); the output starts there, at 0.")
@click.option("--duration", "duration_s", callback=_parse_time, default=None, metavar="TIME",
              help="Deblur only TIME of it (seconds, or [HH:]MM:SS[.ms]): a quick look before a long run.")
@click.option("--resume", is_flag=True,
              help="Go on from an interrupted run: an existing OUTPUT's frames are kept as they are and the run "
                   "continues after them (same options as that run; the input is decoded up to there, not deblurred).")
@click.option("--side-by-side", is_flag=True,
              help="Write the source and the deblurred video next to each other (twice as wide, the source on the "
                   "left), to compare them.")
@click.option("--format", "pipe_format", type=click.Choice(["mkv", "mp4", "mov", "nut", "ts", "webm", "y4m"]),
              default=None,
              help="The container written to standard output with -o - [default: mkv, which holds every track; "
                   "mp4 and mov are written fragmented; y4m is raw frames, for an encoder that reads them].")
@click.option("--progress/--no-progress", "show_progress", default=None,
              help="Show a progress line on stderr (default: only on a terminal).")
@json_option
@new_folders_removed_if_empty()  # planning makes output folders; a run that writes nothing leaves none
def video(inputs: tuple[str, ...], output: str | None, model: str | None, batch: int | None, device: str, precision: str,
          encoder: str, crf: int, preset: str, tile: int | None, compile_: bool, cuda_graphs: bool, engines: int | None,
          no_audio: bool, eight_bit: bool,
          fragmented: bool, deinterlace: bool, start_s: float | None, duration_s: float | None, resume: bool,
          side_by_side: bool, pipe_format: str | None, show_progress: bool | None, as_json: bool) -> None:
    """Deblur a video file or URL into OUTPUT; several, or a folder of them, into a folder.

    INPUT is a file, an http(s)/rtmp URL, or a folder of videos (read one level deep: videos in its
    sub-folders are counted in a warning); with several inputs or a folder, OUTPUT is a folder and
    the model loads once. INPUT - reads a video piped in (MKV, NUT, MPEG-TS,
    fragmented MP4), and -o - writes one out, for another program to read on.

    Frame count, timestamps (variable frame rate too), frame rate, size, pixel shape, rotation, colour tags, the
    file's tags, chapters, timecode, every audio and subtitle track, GoPro telemetry,
    a Matroska file's fonts and the cover picture are kept
    (audio re-encoded only where the container cannot hold it: AAC into .webm); the output is
    8-bit H.264 (VP9 in .webm), or 10-bit HEVC from a 10-bit source (--eight-bit for 8-bit). Shows
    progress on a terminal and ends with sustained fps and per-stage busy time (--json: one JSON
    object on stdout, one line per input). Ctrl-C stops cleanly: the output plays and holds every
    frame done so far (--json still prints its line, with "interrupted": true), and --resume goes on
    from there. An input that cannot be read among several is named and skipped (exit 1).

    \b
    Examples:
      videodeblur video clip.mp4 -o deblurred.mp4
      videodeblur video clip.mp4 -o out.mp4 --model lprn-fast --device cpu --json
      videodeblur video holiday/ -o sharp/
      videodeblur video long.mp4 -o out.mp4 --resume   # after Ctrl-C: on from the last frame written
      videodeblur video long.mp4 -o look.mp4 --start 1:30 --duration 10
      videodeblur video clip.mp4 -o compare.mp4 --side-by-side
      ffmpeg -i in.avi -f matroska - | videodeblur video - -o - | ffplay -
    """
    from videodeblur.errors import VideoDeblurError
    from videodeblur.pipeline.plan import check_part, plan_videos
    from videodeblur.video.locations import is_stdin, pipe_refusing_resume

    try:
        check_part(start_s or 0.0, duration_s, resume)
    except VideoDeblurError as err:  # options that do not go together: a usage error, as click's own are
        raise click.UsageError(str(err)) from None
    piped_out = is_stdin(output)
    # one refusal for a pipe on either side (- or a FIFO), with the library's words: a piped input was
    # refused by the runner (exit 1), -o - here (exit 2)
    if resume and (refusal := pipe_refusing_resume(*inputs, output)):
        raise click.UsageError(refusal)
    if piped_out and as_json:
        raise click.UsageError("-o - fills standard output with the video: it cannot take --json")
    if pipe_format is not None and not piped_out:
        raise click.UsageError("--format is for -o - (standard output); a file's container follows its extension")
    jobs = plan_videos(inputs, output, warn=warn)  # path mistakes fail here, in milliseconds, before torch loads
    try:  # importing the engine loads torch (2-8 s): a Ctrl-C then is one while the model loads
        from videodeblur.pipeline import Engine, EngineOptions, RunInterrupted, RunOptions, deblur_file
        from videodeblur.pipeline.resume import found_finished
        from videodeblur.signals import signals_noted

        engine = Engine.from_name(model, EngineOptions(device=device, precision=precision, batch_size=batch,
                                                       tile=tile, compile=compile_, cuda_graphs=cuda_graphs))
    except KeyboardInterrupt:  # while torch or the model loaded (seconds): no input was begun on, and --json
        if as_json:  # still says so
            _print(json.dumps(_unbegun(jobs[0])), err=piped_out)
        raise
    if show_progress is None:
        show_progress = sys.stderr.isatty() and not as_json
    failed, unread = 0, False  # unread: standard output was closed (| head), the results after went nowhere
    finished_before = 0  # of a resumed batch, the outputs found finished: said once, at its end
    for number, job in enumerate(jobs, 1):
        progress = _Progress(label=f"{Path(job.src).name}: " if len(jobs) > 1 else "") if show_progress else None
        options = RunOptions(encoder=encoder, crf=crf, preset=preset, audio=not no_audio, progress=progress,
                             fragmented=fragmented, deep=False if eight_bit else None, resume=resume,
                             start_s=start_s or 0.0, duration_s=duration_s, deinterlace=deinterlace,
                             pipe_format=pipe_format or "mkv", side_by_side=side_by_side, engines=engines)
        # a stop while a job is reported (another Ctrl-C, a SIGTERM) waits for the report: said
        # half-way, or not at all, it left a finished or finalised output unaccounted for. The first
        # stop is raised (it ends a blocked open, or the run, which notes it itself); from then on, or
        # from the run's end, stops are only noted, with no instant between the run's end and its
        # report where one was raised (a second Ctrl-C there lost the "is finalised with N frames")
        held: list[int] = []
        with signals_noted(lambda: held.append(1), first_raised=True) as run_ended:
            try:
                stats = deblur_file(job.src, job.dst, engine, options)
                run_ended.set()
                finished = found_finished(stats.to_dict())  # a resume that found the output whole: nothing was written
                finished_before += finished and len(jobs) > 1
                # its warning says what its table line says: given only beside a --json line (a script's),
                # and for a batch once, counted, at its end
                unread |= not _say_finished(stats, progress, piped_out=piped_out, as_json=as_json,
                                            warnings=not finished or (as_json and len(jobs) == 1),
                                            unapplied=_encoding_given(click.get_current_context()))
            except RunInterrupted as stop:
                run_ended.set()  # (ended by the engine's or a caller's KeyboardInterrupt, not by a signal)
                said = _say_interrupted(stop.stats, job, progress, piped_out=piped_out, as_json=as_json,
                                        stalled=stop.output_stalled, trimmed=options.trimmed,
                                        unbegun=len(jobs) - number)
                # Abort, not the KeyboardInterrupt: click answers that with a blank line after the message
                raise (StopSaid() if said else click.exceptions.Abort()) from stop
            except KeyboardInterrupt as stop:  # not in the run: before it began, or in the instant it ended
                said = _say_interrupted(None, job, progress, piped_out=piped_out, as_json=as_json, stalled=False,
                                        trimmed=options.trimmed, unbegun=len(jobs) - number)
                raise (StopSaid() if said else click.exceptions.Abort()) from stop
            except VideoDeblurError as err:
                if progress is not None:  # the error goes on a line of its own, not after the progress
                    progress.done()
                message = " ".join(str(err).split())
                if len(jobs) > 1:  # one bad file does not cost the others their turn
                    failed += 1
                    click.echo(f"videodeblur: error: {message}", err=True)
                if as_json:  # one line per input, as the help says (for a single one too: scripts read stdout)
                    unread |= not _print(json.dumps({"input": redacted(job.src), "error": message}), err=piped_out)
                if len(jobs) == 1:
                    raise  # said by the command's error handler, one line
                continue
        if held:  # its output is whole (or its error said); the inputs after it are left, and said so
            if unbegun := len(jobs) - number:
                click.echo(f"videodeblur: {stop_word()}: {unbegun} more video{'s' if unbegun > 1 else ''} not begun",
                           err=True)
                raise StopSaid()
            raise click.exceptions.Abort()
    if finished_before:  # one warning, not one per file: each file's own line says it holds them all
        warn(f"{finished_before} of {len(jobs)} outputs already held every frame of their input: nothing to resume there")
    if failed == len(jobs):
        raise VideoDeblurError(f"none of the {len(jobs)} videos could be deblurred (named above)")
    if failed:
        raise VideoDeblurError(f"{failed} of {len(jobs)} videos could not be deblurred (named above); "
                               "the others were written")
    if unread:  # every input was deblurred; only what was to be said of them was lost
        raise VideoDeblurError("standard output was closed before the results were printed on it "
                               f"({'every video was' if len(jobs) > 1 else 'the video was'} written)")


def _encoding_given(ctx: click.Context) -> list[str]:
    """The options given on the command line that change only how a run encodes its output and what
    it copies beside the video, as given (``--crf 30``): none of them reach an output that --resume
    finds finished."""
    from click.core import ParameterSource

    shown = {"crf": "--crf {}", "preset": "--preset {}", "encoder": "--encoder {}", "fragmented": "--fragmented",
             "eight_bit": "--eight-bit", "no_audio": "--no-audio"}
    return [text.format(ctx.params[name]) for name, text in shown.items()
            if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE and ctx.params[name] is not False]


def _say_finished(stats: RunStats, progress: _Progress | None, *, piped_out: bool, as_json: bool,
                  warnings: bool = True, unapplied: list[str] | None = None) -> bool:
    """A finished job's warnings (not with ``warnings`` False: said for the batch) and summary
    (``as_json``: its JSON line, warnings included); False when standard output has no reader any more.
    ``unapplied``: the encoding options given (:func:`_encoding_given`), which the summary of a resume
    that found its output finished says changed nothing in it."""
    if progress is not None:
        progress.done()
    result = {**stats.to_dict(), "interrupted": False}  # the key is always there: an interrupted run's says true
    for warning in result["warnings"] if warnings else ():
        warn(warning)
    # with -o -, standard output is the video's: the summary goes to the terminal's other stream
    from videodeblur.pipeline.resume import found_finished

    text = json.dumps(result) if as_json else summary_table(result)
    if unapplied and not as_json and found_finished(result):
        # "nothing to resume" alone left one who gave --crf 30 to think the file was made again with it
        text += (f" (its frames are kept as they were encoded: {' '.join(unapplied)} changed nothing; run without "
                 "--resume to encode it again)")
    return _print(text, err=piped_out)


def _say_interrupted(stats: RunStats | None, job: VideoJob, progress: _Progress | None, *, piped_out: bool,
                     as_json: bool, stalled: bool, trimmed: bool = False, unbegun: int = 0) -> bool:
    """What an interrupted job left, in one line begun with what stopped it (:func:`stop_word`): a
    finalised output and its frames, no file, or a pipe cut off (``stalled``); with ``as_json`` the
    stats line too. ``stats`` None: the stop came outside the run (before it began, or as it ended),
    and what the output holds is read from the file; ``unbegun``: the inputs after it in a batch,
    left as they were. False when nothing could be said of the output (a pipe or URL, stopped
    outside the run): the stop alone is then said, by the command's end."""
    from videodeblur.pipeline.resume import frames_in
    from videodeblur.video.locations import is_stdin, is_url

    def say(text: str) -> bool:
        rest = f"; {unbegun} more video{'s' if unbegun > 1 else ''} not begun" if unbegun else ""
        click.echo(f"videodeblur: {stop_word()}{text}{rest}", err=True)
        return True

    if progress is not None:
        progress.done()
    if stats is None and as_json:  # a script reads a line per input, stopped or not
        held = frames_in(Path(job.dst)) if not piped_out and not is_url(job.dst) and Path(job.dst).exists() else 0
        _print(json.dumps(_unbegun(job, held)), err=piped_out)
    if stats is None and (piped_out or is_url(job.dst)):
        return False  # what went out cannot be read back: the stop alone is said
    where = "the output" if piped_out else str(job.dst)
    # not from a pipe, nor a part (--start, --duration: --resume goes on with whole inputs only)
    again = "" if piped_out or is_stdin(job.src) or trimmed else " (--resume goes on from there)"
    if stats is None and Path(job.dst).exists():  # finalised as the run ended, or not yet begun on
        return say(f": {where} holds {frames_in(Path(job.dst))} frames{again}")
    written = 0 if stats is None else stats.extra.get("frames_written", stats.frames)
    if stalled:  # its writer was left blocked: nothing could be finalised
        pipe = "the output pipe" if piped_out else str(job.dst)
        say(f": {pipe} did not take the rest (the program reading it stopped reading): the video there is cut "
            f"off unfinished, with at most {written} frames")
    elif not written:  # the writer leaves no file without a frame in it
        left = "nothing was written" if piped_out else f"no file was left at {job.dst}"
        say(f" before any frame was written: {left}")
    elif stats is not None and stats.extra.get("stopped_early") is False and written == stats.frames:
        # the input was read to its end and every frame written: only the encoder's flush was under way
        say(f" as it finished: {where} is complete, with all {written} frames")
    else:
        say(f": {where} is finalised with {written} frames{again}")
    if as_json and stats is not None:  # the stats of what was written, as a finished input's line: a script reads it too
        _print(json.dumps({**stats.to_dict(), "interrupted": True}), err=piped_out)
    return True


def _unbegun(job: VideoJob, frames_written: int = 0) -> dict[str, Any]:
    """The --json line of an input stopped outside its run (before it began, or as it ended): what
    its output holds, no figures of a run."""
    return {"input": redacted(job.src), "output": redacted(job.dst), "frames": 0, "frames_written": frames_written,
            "interrupted": True}


def _print(text: str, *, err: bool) -> bool:
    """Print a result line; False when its reader has gone (``--json | head -n 1``), which must not
    stop the batch (click would exit at once, the later inputs not deblurred). As Python's docs
    advise, the stream is then pointed at /dev/null, so nothing more fails writing to it."""
    try:
        click.echo(text, err=err)
        return True
    except BrokenPipeError:
        point_at_devnull(sys.stderr if err else sys.stdout)
        return False


def summary_table(result: dict[str, Any]) -> str:
    """The human summary of a ``RunStats.to_dict()``: what was written, sustained fps, stage table; of
    a resume that found its output whole, one line saying so (nothing was written)."""
    lat = result["latency_ms"]
    bound = max(result["stages"], key=lambda name: result["stages"][name]["busy_s"])
    w, h = result.get("size", [0, 0])
    from videodeblur.pipeline.resume import found_finished

    kept = result.get("resumed_frames") or 0
    if found_finished(result):  # nothing written
        return f"{result.get('output', '')} already holds all {kept} frames, {w}x{h}: nothing to resume"
    frames = f"{result['frames'] + kept} frames ({result['frames']} new, {kept} kept)" if kept else f"{result['frames']} frames"
    lines = [
        f"wrote {'standard output' if result.get('output') == '-' else result.get('output', '')}: {frames}, {w}x{h}, "
        + "".join(f"{encoder}, " for encoder in [result.get("encoder")] if encoder)  # none: nothing was encoded
        + f"in {result['seconds']:.2f} s",  # the run's wall time, not the video's length
    ]
    if not result["frames"]:  # nothing was deblurred (a resume with nothing left): no speed to tell
        return lines[0]
    lines += [
        f"model {result['model']} on {result['device']}, {result.get('precision', '')}, "
        f"batch {result.get('batch_size', '')}",
        f"sustained {result['fps']:.1f} fps (after {result['warmup_frames']} warm-up frames); latency ms "
        f"p50 {lat['p50']:.1f}  p95 {lat['p95']:.1f}  p99 {lat['p99']:.1f}",
        f"bound by {bound} ({100 * result['stages'][bound]['share']:.0f}% busy); stages busy "
        f"{result.get('concurrency', 0):.2f}x the wall time (above 1: they overlap)",
        f"{'stage':<8}{'busy s':>9}{'ms/frame':>10}{'busy %':>8}{'queue mean/max':>16}",
    ]
    for name, s in result["stages"].items():
        queue = f"{s['queue_mean']:.1f}/{s['queue_max']}" if "queue_mean" in s else "-"
        lines.append(f"{name:<8}{s['busy_s']:>9.2f}{s['ms_per_item']:>10.1f}{100 * s['share']:>7.0f}%{queue:>16}")
    return "\n".join(lines)


def _to_stderr(text: str) -> None:
    """The progress line's writes: a terminal that went away (EIO) must not fail the encode thread."""
    try:
        click.echo(text, err=True, nl=False)
    except OSError:
        pass


class _Progress:
    """One stderr line, rewritten at most 10 times a second: frames, fps, ETA."""

    def __init__(self, write: Callable[[str], None] | None = None, label: str = "") -> None:
        self._write = write or _to_stderr
        self._label = label  # the file's name when several are deblurred
        self._start = time.perf_counter()
        self._last = 0.0
        self._shown = False
        self._unshown: tuple[int, int | None] | None = None  # the latest count, if it was not drawn

    def __call__(self, done: int, total: int | None) -> None:
        now = time.perf_counter()
        if now - self._last < 0.1 and done != total:
            self._unshown = (done, total)
            return
        self._unshown = None
        self._last = now
        fps = done / (now - self._start) if now > self._start else 0.0
        if total:
            eta = (total - done) / fps if fps > 0 else 0.0
            text = f"\r{self._label}{done}/{total} frames  {fps:5.1f} fps  ETA {eta:4.0f} s "
        else:
            text = f"\r{self._label}{done} frames  {fps:5.1f} fps "
        self._write(text)
        self._shown = True

    def done(self) -> None:
        """End the line, showing the last count first if it came too soon after the one before (a
        header's frame count can be an estimate, so the last frame need not be "total")."""
        if self._unshown is not None:
            self._last = 0.0
            self(*self._unshown)
        if self._shown:
            self._write("\n")
