"""Stop signals noted instead of raised, so a run finalises its output before it ends.

Why its own module: the file runner, the camera loop and the commands note a run's stop signals while
they finish their work; the trainer holds them its own way (train/interrupts.py) with STOP_SIGNALS.
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import Any, Callable, Iterator

__all__ = ["signals_noted", "STOP_SIGNALS"]

# what ends a run the Ctrl-C way (the CLI maps SIGTERM and SIGHUP to KeyboardInterrupt too)
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


@contextlib.contextmanager
def signals_noted(note: Callable[[], None], *, first_raised: bool = False) -> Iterator[threading.Event]:
    """SIGINT, SIGTERM and SIGHUP call ``note`` and the handlers that were there (whose
    KeyboardInterrupt, Ctrl-C's or the CLI's SIGTERM's and SIGHUP's, is swallowed), instead of
    raising into the code inside; an ignored one (``nohup``'s SIGHUP) stays ignored. One whose
    handler was the default (a program that installed none: SIGTERM kills it) is sent again once
    the code inside is done, with the default restored, so the process still dies of it, its output
    finalised. Only the main thread receives signals; elsewhere this does nothing.

    ``first_raised``: the first one is handled as it would be without this block (the CLI's
    KeyboardInterrupt, which ends a blocked open or reaches a run that notes it itself), and only
    the ones after it are noted, as are all once the yielded event is set (the work is done, only
    its report is left); a default-action one is left to its default. Entered before a run and left
    once its report is said, it leaves no instant between the run's end and the report in which a
    second Ctrl-C cut the report off."""
    noting = threading.Event()  # set: every stop is noted
    if not first_raised:
        noting.set()
    if threading.current_thread() is not threading.main_thread():
        yield noting
        return
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    # an ignored one stays ignored; one set outside Python (None) could not be put back
    previous = {sig: handler for sig, handler in previous.items() if handler not in (signal.SIG_IGN, None)
                and (callable(handler) or not first_raised)}
    deferred: list[int] = []  # default-action signals, delivered again afterwards

    def noted(signum: int, frame: Any) -> None:
        handler = previous[signum]
        if not noting.is_set():  # the first, with first_raised: as without this block
            noting.set()
            handler(signum, frame)
            return
        note()
        if handler is signal.SIG_DFL:
            deferred.append(signum)
        elif callable(handler):
            try:
                handler(signum, frame)  # e.g. the CLI's: it remembers a SIGTERM for exit code 143
            except KeyboardInterrupt:
                pass

    for sig in previous:
        signal.signal(sig, noted)
    try:
        yield noting
    finally:
        for sig, handler in previous.items():
            try:
                signal.signal(sig, handler)
            except KeyboardInterrupt:  # a signal that came as the handlers were put back: one inside
                note()  # (its handler, put back first, has run and raised)
        for sig in dict.fromkeys(deferred):  # its handler is SIG_DFL again: the default action now
            os.kill(os.getpid(), sig)
