"""The capture side of the live loop: a thread that pulls frames from the source into a one-frame slot.

Why a slot and not a queue: latency comes first. A newer frame overwrites an unprocessed one and
counts a drop, so a model slower than the camera processes the freshest frame instead of working
through a backlog. The thread also outlives a lost source: it opens it again (``reopen``) and goes on.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from typing import Callable

import cv2

from videodeblur.errors import SourceError
from videodeblur.video.capture import CapturedFrame, LiveSource

__all__ = ["LatestFrameSlot", "CaptureThread"]


class LatestFrameSlot:
    """A one-frame mailbox between the capture thread and the loop (a lock and a condition).

    ``put`` replaces a frame nobody has taken yet and counts it as dropped; with ``wait=True`` it
    instead blocks until the slot is empty (a file read in lockstep; such a frame's ``capture_time``
    is when it is taken). ``close`` wakes everyone; a
    frame still inside can be taken, then ``take`` returns None.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: CapturedFrame | None = None
        self._closed = False
        self.captured = 0
        self.dropped = 0
        self.last_put_time = time.monotonic()
        self._in_step = False  # the frame inside was put with wait=True

    def put(self, frame: CapturedFrame, *, wait: bool = False) -> bool:
        """Store ``frame``; False if the slot is closed (the frame is then not counted)."""
        with self._cond:
            if wait:
                self._cond.wait_for(lambda: self._frame is None or self._closed)
            self._in_step = wait
            if self._closed:
                return False
            if self._frame is not None:
                self.dropped += 1
            self._frame = frame
            self.captured += 1
            self.last_put_time = time.monotonic()
            self._cond.notify_all()
            return True

    def take(self, timeout: float) -> CapturedFrame | None:
        """The newest frame, waiting up to ``timeout`` seconds; None on timeout or when closed and empty."""
        with self._cond:
            self._cond.wait_for(lambda: self._frame is not None or self._closed, timeout)
            frame, self._frame = self._frame, None
            self._cond.notify_all()
        if frame is not None and self._in_step:
            # a file read in step was not captured live: its life starts when it is taken (it was
            # read ahead, and its wait for the previous frame's turn in the model is no latency)
            frame = dataclasses.replace(frame, capture_time=time.monotonic())
        return frame

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        with self._cond:
            return self._closed

    def count_dropped(self) -> None:
        """Count a frame that was taken but never processed (the run stopped while it was in the model)."""
        with self._cond:
            self.dropped += 1

    def discard(self) -> None:
        """Count a frame left in the slot at shutdown as dropped."""
        with self._cond:
            if self._frame is not None:
                self._frame = None
                self.dropped += 1


class CaptureThread(threading.Thread):
    """Pulls frames from the source into the slot; closes the slot and the source when it ends.

    A SourceError while running (camera unplugged, stream gone) ends the run cleanly and is
    reported as ``end_reason``, unless ``reopen`` opens the source again within ``reconnect_s``:
    then frames flow on, scaled to the first source's size; any other exception is kept and
    re-raised by the caller.
    """

    def __init__(self, source: LiveSource, slot: LatestFrameSlot, stop: threading.Event, *,
                 reopen: Callable[[], LiveSource] | None = None, reconnect_s: float = 0.0,
                 reopened: Callable[[LiveSource, int], None] | None = None) -> None:
        super().__init__(name="videodeblur-capture", daemon=True)  # daemon: a read hung in a driver cannot block exit
        self._source, self._slot, self._stop_event = source, slot, stop
        self._reopen, self._reconnect_s = reopen, reconnect_s
        self._reopened = reopened  # told of each new opening (and its run number) before its first frame
        self._size = (source.width, source.height)
        self.end_reason = "source ended"
        self.started = False
        self.reconnects = 0
        self._error: BaseException | None = None

    def start(self) -> None:
        self.started = True
        super().start()

    def run(self) -> None:
        try:
            while True:
                try:
                    self._pump()
                    if self._stop_event.is_set() or not (self._source.live and self._reopen is not None):
                        return  # a file or lavfi graph that ended, or the run stopping
                    lost = f"{self._source.description} ended"  # a camera or stream should not end
                except SourceError as err:
                    lost = str(err)
                if not self._reconnected():
                    again = f"; not back within {self._reconnect_s:g} s" if self._reopen is not None else ""
                    self.end_reason = f"source lost: {lost}{again}"
                    return
        except BaseException as err:  # carried to the caller's thread
            self._error = err
        finally:
            self._slot.close()
            self._source.close()

    def _pump(self) -> None:
        """Frames from the current source into the slot until it ends (or the run stops)."""
        wait = not self._source.drops_allowed
        for frame in self._source.frames(self._stop_event):
            if (frame.image.shape[1], frame.image.shape[0]) != self._size:  # a reopened source at another size
                frame = dataclasses.replace(frame, image=cv2.resize(frame.image, self._size, interpolation=cv2.INTER_AREA))
            if self.reconnects:
                frame = dataclasses.replace(frame, run=self.reconnects)
            if not self._slot.put(frame, wait=wait):
                return
            time.sleep(0)  # hand the GIL to the waiting loop now, not after the 5 ms switch interval

    def _reconnected(self) -> bool:
        """Open the source again, once a second, until ``reconnect_s`` have passed or the run stops."""
        if self._reopen is None:
            return False
        # the lost source is let go first: a udp:// source holds its port, and every reopen failed on
        # "Address already in use" until the time ran out (closing twice, at the end, is harmless)
        self._source.close()
        deadline = time.monotonic() + self._reconnect_s
        while time.monotonic() < deadline and not self._stop_event.wait(min(1.0, self._reconnect_s)):
            try:
                source = self._reopen()
            except SourceError:
                continue
            self._source = source
            self.reconnects += 1
            if self._reopened is not None:
                self._reopened(source, self.reconnects)
            return True
        return False

    @property
    def paced_until(self) -> float:
        """Until when (monotonic) the source now read waits on purpose for its next frame's time."""
        return self._source.paced_until

    def raise_error(self) -> None:
        if self._error is not None:
            raise self._error
