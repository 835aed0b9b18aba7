"""One thread reads the Docker event streams of every monitored VM.

A VM worker that connected hands its event stream (docker_api.EventStream:
readable through a file descriptor, read without blocking) to the process's
EventReader and its own thread ends; so a monitored VM costs no thread of
ours, only paramiko's transport thread for its SSH connection. The reader
waits for any stream to become readable, reads what arrived (a bounded amount
per stream at a time, so a guest that floods its stream cannot starve the
others) and hands each event to its member, which only notes what the event
made stale; refreshing happens on the shared Ticker. When a stream ends, fails
or is closed (the member closed its client), the member is told once and the
stream is dropped. Closing a channel normally makes its descriptor readable;
one closed in a way that does not (its descriptor closed with it, which the
selector then forgets silently) is found by a sweep every SWEEP_SECONDS, so
a VM can never be left waiting on a stream that is gone.

A stream has fileno(), read(), `ended` and `closed`. A member has
`stream_event(stream, message)` and `stream_ended(stream, error)`
(error None: the stream ended cleanly); both must return at once.
"""

import logging
import os
import selectors
import threading
import time
from typing import Any, List, Optional, Tuple

log = logging.getLogger(__name__)

Member = Any
Stream = Any


# How often the streams are checked for a closed connection whose descriptor
# said nothing.
SWEEP_SECONDS = 5.0


class EventReader:
    def __init__(self, sweep_seconds: float = SWEEP_SECONDS) -> None:
        self.sweep_seconds = sweep_seconds
        self._lock = threading.Lock()
        self._added: List[Tuple[Stream, Member]] = []
        self._thread: Optional[threading.Thread] = None
        self._wake_r, self._wake_w = -1, -1
        self.streams = 0  # streams being read (for status and tests)

    def add(self, stream: Stream, member: Member) -> None:
        """Read `stream` for `member` from now on (what arrived already included)."""
        with self._lock:
            if self._thread is None:
                self._wake_r, self._wake_w = os.pipe()
                os.set_blocking(self._wake_r, False)
                os.set_blocking(self._wake_w, False)
                self._thread = threading.Thread(target=self._run, name="events", daemon=True)
                self._thread.start()
            self._added.append((stream, member))
        self._wake()

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:
            pass  # the pipe is full: the reader has been woken already

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self._wake_r, selectors.EVENT_READ, None)
        swept = time.monotonic()
        while True:
            for key, _mask in selector.select(self.sweep_seconds):
                if key.data is None:
                    self._take_added(selector)
                else:
                    self._read(selector, *key.data)
            if time.monotonic() - swept >= self.sweep_seconds:
                swept = time.monotonic()
                self._sweep(selector)

    def _sweep(self, selector: selectors.BaseSelector) -> None:
        for key in list(selector.get_map().values()):
            if key.data is not None and key.data[0].closed:
                self._read(selector, *key.data)  # ends it

    def _take_added(self, selector: selectors.BaseSelector) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        with self._lock:
            added, self._added = self._added, []
        for stream, member in added:
            try:
                fd = stream.fileno()
                selector.register(fd, selectors.EVENT_READ, (stream, member, fd))
            except (OSError, ValueError, KeyError) as exc:  # closed already
                self._ended(member, stream, exc)
                continue
            self.streams += 1
            self._read(selector, stream, member, fd)  # what arrived with the headers

    def _read(self, selector: selectors.BaseSelector, stream: Stream, member: Member,
              fd: int) -> None:
        try:
            messages = stream.read()
        except Exception as exc:  # the stream failed: the member handles it
            self._drop(selector, fd)
            self._ended(member, stream, exc)
            return
        for message in messages:
            try:
                member.stream_event(stream, message)
            except Exception:  # never lose the reader over one member
                log.exception("handling a Docker event failed")
        if stream.ended:
            self._drop(selector, fd)
            self._ended(member, stream, None)

    def _drop(self, selector: selectors.BaseSelector, fd: int) -> None:
        try:
            selector.unregister(fd)
            self.streams -= 1
        except (OSError, ValueError, KeyError):
            pass  # not registered (any more)

    @staticmethod
    def _ended(member: Member, stream: Stream, error: Optional[BaseException]) -> None:
        try:
            member.stream_ended(stream, error)
        except Exception:  # never lose the reader over one member
            log.exception("ending a Docker event stream failed")


_DEFAULT = EventReader()  # its thread starts with the first stream


def default_reader() -> EventReader:
    """The process's shared EventReader."""
    return _DEFAULT
