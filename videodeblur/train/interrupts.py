"""How a run stops on Ctrl-C, SIGTERM or SIGHUP: never in the middle of a step's update, and never by
killing the DataLoader workers first. Kept apart because signal handling is process-wide state that
the loop only needs to switch on and off around the right lines."""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import traceback
from types import TracebackType
from typing import Any, Callable, Iterator

from videodeblur.signals import STOP_SIGNALS

__all__ = ["interrupts_held", "stops_left_to_the_run", "stop_loader_workers"]


@contextlib.contextmanager
def interrupts_held() -> Iterator[None]:
    """Hold a stopping signal that arrives inside the block and deliver it (to its own handler, which
    raises KeyboardInterrupt) when the block is done. The block is a step's update of the weights,
    optimiser, scheduler, weight average, step count and log: a KeyboardInterrupt raised in the middle
    of AdamW's update would be saved as a checkpoint of the step before, holding part of the next, and
    the resumed run would take that step twice. Only the main thread can set handlers; elsewhere, and
    for a signal with no Python handler (ignored, or the default), nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[tuple[int, Any]] = []
    handlers = {signum: handler for signum in STOP_SIGNALS if callable(handler := signal.getsignal(signum))}
    for signum in handlers:
        signal.signal(signum, lambda number, frame: held.append((number, frame)))
    try:
        yield
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    if held:  # after the block completed: an exception of its own goes up unchanged
        number, frame = held[0]
        handlers[number](number, frame)


def stops_left_to_the_run(worker_id: int) -> None:
    """In a DataLoader worker: Ctrl-C, SIGTERM and SIGHUP are ignored, for the run (the main process)
    to act on; it stops the workers itself. Sent to the whole process group (a terminal's Ctrl-C,
    systemd, ``kill -TERM -PGID``, a closed terminal), SIGTERM killed them first, and the run printed
    "DataLoader worker ... is killed by signal" as a traceback and left their temporary folders."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    sys.excepthook = _quiet_when_the_run_hangs_up(sys.excepthook)


def stop_loader_workers(batches: Iterator[Any]) -> None:
    """Stop a DataLoader iterator's workers now, not when its last reference goes. A stop raised while
    the run waited for a batch keeps the iterator alive in the exception's traceback (its frames hold
    it) until the interpreter exits, when torch's own shutdown does nothing and multiprocessing's
    SIGTERMs the workers, which ignore it (:func:`stops_left_to_the_run`), then joins them for ever:
    the run hung after "videodeblur: terminated" (3 stops of ``kill -TERM -PGID`` in 10 on a loaded
    two-core machine). An iterator without workers, or one already stopped, is left as it is."""
    shutdown = getattr(batches, "_shutdown_workers", None)  # torch's own, idempotent; what __del__ calls
    if callable(shutdown):
        shutdown()


def _quiet_when_the_run_hangs_up(excepthook: Callable[..., Any]) -> Callable[..., Any]:
    """``excepthook`` but for a worker's fd-sharing thread (multiprocessing's resource sharer, which
    hands a batch's shared memory to the run) finding the run gone: a run stopped while it fetched a
    batch closes the connection, and the thread printed a traceback (about one stop in eight, measured
    with ``kill -TERM -PGID``) after "videodeblur: terminated". Every other exception is shown."""
    def hook(kind: type[BaseException], error: BaseException, trace: TracebackType | None) -> None:
        if issubclass(kind, (EOFError, OSError)) and any(
                frame.f_code.co_filename.endswith(os.path.join("multiprocessing", "resource_sharer.py"))
                for frame, _ in traceback.walk_tb(trace)):
            return
        excepthook(kind, error, trace)

    return hook
