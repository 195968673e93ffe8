"""What every command shares: error-to-exit-code mapping and the common options."""
from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import threading
import traceback
from typing import Any, Callable, Iterator

import click

from videodeblur.errors import VideoDeblurError
from videodeblur.option_values import MIN_TILE, PRESETS

__all__ = ["run_cli", "CommandGroup", "model_option", "device_option", "precision_option", "json_option", "tile_option", "fail",
           "parse_size", "StopSaid", "stop_word"]

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
# signals that end a run the Ctrl-C way, then exit 128 + the signal as a shell reports a process killed
# by it (143, 129): SIGTERM (kill, timeout, docker stop) and SIGHUP (the terminal closed, an ssh
# connection dropped), whose defaults end the process at once
_TERMINATING = {getattr(signal, name): said for name, said in (("SIGTERM", "terminated"),
                                                                ("SIGHUP", "hung up (its terminal closed)"))
                if hasattr(signal, name)}


# the signal (SIGTERM, SIGHUP) that stopped the command now running, if not Ctrl-C: set by its handler
_terminated: list[int] = []
# set once the command now running has said its stop (StopSaid): a later signal has nothing left to stop
_stop_said: list[bool] = []


class StopSaid(click.exceptions.Abort):
    """A stop (Ctrl-C, SIGTERM, SIGHUP) that the command has already said, in a line begun with
    :func:`stop_word`'s words: it exits 130 (143, 129) as any stop does, with no second line saying
    "interrupted" again. From its making on, another stop signal is dropped: raised as this one
    left through click, it put a blank line and a bare "interrupted" after the line said."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message)
        _stop_said.append(True)


class CommandGroup(click.Group):
    """The command group, whose commands' stops reach :func:`run_cli` without a blank line before
    its "videodeblur: interrupted": click answers a KeyboardInterrupt (meant for a prompt's ^C) with
    one, then Abort; a Ctrl-C while torch loaded, or one a command leaves unsaid, got it."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise click.exceptions.Abort() from None


def stop_word() -> str:
    """How the stop now under way is said: "interrupted" (Ctrl-C), "terminated" (SIGTERM), "hung up
    (its terminal closed)" (SIGHUP)."""
    return _TERMINATING[_terminated[0]] if _terminated else "interrupted"


def _debug_requested(argv: list[str]) -> bool:
    return "--debug" in argv


def run_cli(group: click.Group, argv: list[str] | None = None) -> None:
    """Run the group; map library errors to one stderr line + exit 1, Ctrl-C to 130, SIGTERM to 143
    and SIGHUP to 129 (after the same clean stop), usage to 2."""
    the_program = argv is None  # not a test driving it in-process, whose later Ctrl-C must still work
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = _debug_requested(argv)
    terminated = _terminated  # the signal that ended the run, if not Ctrl-C
    terminated.clear()
    _stop_said.clear()
    try:
        with _sigterm_as_interrupt(terminated):
            try:
                # With standalone_mode=False click returns ctx.exit(n)'s code instead of exiting.
                result = group.main(args=argv, prog_name="videodeblur", standalone_mode=False)
            finally:
                if the_program:  # the work is done and the outputs finalised: a Ctrl-C from here on only
                    # printed a traceback from the interpreter's teardown (seconds long with torch
                    # loaded) and changed the exit code; a SIGTERM or SIGHUP, their default action
                    # back, ended the process by the signal (status -15) with its work done
                    for signum in (signal.SIGINT, *_TERMINATING):
                        signal.signal(signum, signal.SIG_IGN)
    except (click.exceptions.Abort, KeyboardInterrupt) as stop:  # click turns Ctrl-C/EOF at prompts into Abort
        with contextlib.suppress(OSError):  # a closed terminal (SIGHUP) takes no more text
            if not isinstance(stop, StopSaid):
                click.echo(f"videodeblur: {stop_word()}", err=True)
        # A KeyboardInterrupt raised inside exec()'d code (dataclasses and namedtuples make their
        # methods so, as torch loads) leaves CPython's "Ctrl-C unhandled" mark set, and under
        # ``python -m`` the process then killed itself with SIGINT whatever the exit code (SIGTERM
        # gave 130, not 143). Running any code through exec() clears the mark.
        exec("")  # noqa: S102
        sys.exit(128 + terminated[0] if terminated else EXIT_INTERRUPTED)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code if exc.exit_code else EXIT_USAGE)
    except VideoDeblurError as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"videodeblur: error: {_one_line(exc)}", err=True)
        sys.exit(EXIT_ERROR)
    except ImportError as exc:  # a library that cannot load here is the setup's problem, not a bug
        if debug:
            traceback.print_exc()
        click.echo(f"videodeblur: error: {_one_line(exc)}{_import_hint(exc)}", err=True)
        sys.exit(EXIT_ERROR)
    except Exception as exc:  # a bug, not user input: still one line unless --debug
        if debug:
            traceback.print_exc()
        if isinstance(exc, OSError) and _in_echo(exc):  # the results could not be printed: no bug of ours
            point_at_devnull(sys.stdout)  # the interpreter's own flush at exit would fail again
            with contextlib.suppress(OSError):
                reason = ("it was closed (the program reading it stopped)" if isinstance(exc, BrokenPipeError)
                          else exc.strerror or str(exc))
                click.echo(f"videodeblur: error: cannot write the results to standard output: {reason}", err=True)
            sys.exit(EXIT_ERROR)
        hint = "" if debug else " (videodeblur --debug COMMAND ... shows the traceback)"
        click.echo(f"videodeblur: internal error: {type(exc).__name__}: {_one_line(exc)}{hint}", err=True)
        sys.exit(EXIT_ERROR)
    sys.exit(result if isinstance(result, int) else 0)


def _in_echo(exc: BaseException) -> bool:
    """Whether ``exc`` was raised printing (click's ``echo``): standard output full (/dev/full), or
    closed by its reader (``| true``), not a file of the run's."""
    frames = traceback.extract_tb(exc.__traceback__)
    return any(frame.name == "echo" and "click" in frame.filename for frame in frames)


def point_at_devnull(stream: Any) -> None:
    """Point a standard stream that cannot be written any more (its reader gone, its disk full) at
    /dev/null, as Python's docs advise, so nothing more fails writing to it (a second message, or a
    traceback at exit). A stream with no file descriptor is left as it is."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)


def _import_hint(exc: ImportError) -> str:
    """What to do about a library that would not load: OpenCV's desktop build needs libGL and GLib
    (libgthread), which a server or a slim container lacks; a missing package is installed with pip."""
    text = str(exc)
    if "libGL" in text or "libgthread" in text or "libglib" in text or (exc.name or "").startswith("cv2"):
        return (" (OpenCV could not load: on a server or in a container, pip install opencv-python-headless "
                "in place of opencv-python, or install the system's libgl1 and libglib2.0-0)")
    if exc.name:
        return f" (pip install {exc.name.split('.')[0]}, or reinstall videodeblur with its dependencies)"
    return ""


@contextlib.contextmanager
def _sigterm_as_interrupt(terminated: list[int]) -> Iterator[None]:
    """SIGTERM (``kill``, ``timeout``, systemd, docker stop, a batch scheduler) and SIGHUP (the
    terminal closed, ssh dropped) take the Ctrl-C path: outputs are finalised, recordings closed and
    training checkpointed, then the exit code is 128 + the signal (143, 129). Python's default would
    end the process at once and leave an MP4 without its index. The first such signal is appended
    to ``terminated``; one that was ignored (``nohup``) stays ignored. Ctrl-C raises as Python's own
    handler does. Once the command has said its stop (:class:`StopSaid`), these signals are dropped.
    The previous handlers are restored afterwards (tests run commands in-process)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers
        return

    def interrupt(signum: int, frame: object) -> None:
        if _stop_said:  # the stop is said and on its way out: this one would only say it again
            return
        if signum in _TERMINATING and not terminated:
            terminated.append(signum)
        if signum == getattr(signal, "SIGHUP", None):
            _silence_a_closed_terminal()
        raise KeyboardInterrupt

    # a signal ignored when we started stays ignored: under nohup, SIGHUP must not stop the run
    previous = {signum: signal.signal(signum, interrupt) for signum in _TERMINATING
                if signal.getsignal(signum) is not signal.SIG_IGN}
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # Ctrl-C as Python raises it, but
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, interrupt)  # not once the stop is said
    try:
        yield
    finally:
        for signum, handler in previous.items():
            if signal.getsignal(signum) is interrupt:  # not one set since (the program's ignored Ctrl-C at its end)
                signal.signal(signum, handler)


def _silence_a_closed_terminal() -> None:
    """Point standard output and error at /dev/null where they were a terminal that is gone (every
    write to one fails, EIO): the messages of the clean stop, and FFmpeg's, would fail it instead."""
    for fd in (1, 2):
        try:
            os.write(fd, b"")  # 0 bytes: nothing to a live pipe, file or terminal, EIO from a hung-up one
        except OSError:
            with contextlib.suppress(OSError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, fd)
                os.close(devnull)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def warn(message: str) -> None:
    """Say a warning on stderr, in the one form every command uses; the run goes on."""
    click.echo(f"videodeblur: warning: {message}", err=True)


def fail(message: str) -> None:
    """Raise a usage-style error from a command (exit 2)."""
    raise click.UsageError(message)


def parse_size(text: str, param_hint: str | None = None) -> tuple[int, int]:
    """``WIDTHxHEIGHT`` (e.g. 640x360) as two positive integers, for every command's ``--size``: one
    rule and one message each (bench and camera had a parser each, and bench let 0x360 through).
    click.BadParameter (a usage error, exit 2) for anything else."""
    match = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", text.lower(), re.ASCII)
    if match is None:
        raise click.BadParameter(f"{text!r} is not WIDTHxHEIGHT, e.g. 640x360 or 1920x1080", param_hint=param_hint)
    width, height = int(match[1]), int(match[2])
    if width < 1 or height < 1:
        raise click.BadParameter(f"{text!r}: the width and height must be positive, e.g. 640x360",
                                 param_hint=param_hint)
    return width, height


def model_option(default: str | None = None) -> Callable[[Any], Any]:
    return click.option("--model", "model", default=default, show_default=default is not None,
                        help="Shipped model name (lprn, lprn-rt, lprn-fast) or a path to a .pt weights file. "
                             "Default: lprn-rt on CUDA, lprn-fast on CPU." if default is None else
                             "Shipped model name (lprn, lprn-rt, lprn-fast) or a path to a .pt weights file.")


device_option = click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
                             show_default=True, help="Where the network runs.")
precision_option = click.option("--precision", type=click.Choice(["auto", "fp32", "fp16", "bf16"]), default="auto",
                                show_default=True, help="Inference precision (auto: fp16 on CUDA, fp32 on CPU).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object on stdout.")


engines_option = click.option(
    "--engines", type=click.IntRange(min=1), default=None,
    help="On a CPU: copies of the model run side by side, its threads split between them "
         "[default: 2 with two cores or more, faster than one engine on both; 1 leaves cores to other work].")


def tile_option(help_text: str) -> Callable[[Any], Any]:
    return click.option("--tile", type=click.IntRange(min=MIN_TILE), default=None, help=help_text)


def preset_option(help_text: str) -> Callable[[Any], Any]:
    return click.option("--preset", type=click.Choice(PRESETS), default="veryfast", show_default=True,
                        help=help_text)
