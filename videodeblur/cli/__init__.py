"""The ``videodeblur`` command: a click group whose subcommands live one per module.

Commands are thin: parse options, call the library, print. ``main`` turns library errors into one
line on stderr and exit code 1 (usage errors 2, Ctrl-C 130, SIGTERM 143, SIGHUP 129 after the same clean stop);
``--debug`` shows the traceback.
"""
from __future__ import annotations

import signal
import sys
import threading


def _stop_while_loading(signum: int, frame: object) -> None:
    """Ctrl-C while the commands load (a tenth of a second, seconds on a busy machine): exit 130 as a
    Ctrl-C later does, not with the traceback of an import."""
    print("videodeblur: interrupted", file=sys.stderr)
    raise SystemExit(130)


# only where Ctrl-C raises KeyboardInterrupt: not where it is ignored (a background job), nor off the main thread
_LOADING = (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler)
if _LOADING:
    signal.signal(signal.SIGINT, _stop_while_loading)

import importlib  # noqa: E402

import click  # noqa: E402

from videodeblur import __version__  # noqa: E402
from videodeblur.cli._common import CommandGroup, run_cli  # noqa: E402

__all__ = ["cli", "main"]

# (module under videodeblur.cli, command attribute) — each owned by its own issue.
_SUBCOMMANDS = [
    ("image", "image"),
    ("video", "video"),
    ("camera", "camera"),
    ("bench", "bench"),
    ("training", "train"),
    ("training", "evaluate"),
    ("training", "models"),
]


@click.group(cls=CommandGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="videodeblur")
@click.option("--debug", is_flag=True, help="Show full tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Remove motion blur from images, video files and live cameras."""
    ctx.obj = {"debug": debug}


for _module, _attr in _SUBCOMMANDS:
    try:
        _mod = importlib.import_module(f"videodeblur.cli.{_module}")
    except ModuleNotFoundError as _err:  # a command whose module has not landed yet
        if _err.name != f"videodeblur.cli.{_module}":
            raise
        continue
    cli.add_command(getattr(_mod, _attr))

if _LOADING and signal.getsignal(signal.SIGINT) is _stop_while_loading:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def main() -> None:
    run_cli(cli)
