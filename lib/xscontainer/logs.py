"""A container's logs as get_logs answers them: Docker's log stream
demultiplexed, the newest lines kept within a byte bound, as text or JSON.

Docker (and Podman's compatibility API) sends the logs of a container without
a TTY as frames: an 8-byte header (the stream: 1 stdout, 2 stderr; three zero
bytes; the payload's length, 32-bit big-endian), then the payload. A TTY
container's logs are one raw stream (stdout). `demultiplex` reads either with
a bound on every read, so a frame announcing 4 GiB, or a container that logged
50 MB, never makes dom0 hold more than one chunk of it (the Docker SDK's own
helper reads a frame whole and drops which stream it came from).

`Collector` receives the payloads, splits them into lines per stream and keeps
the newest lines within MAX_LOG_BYTES (whole lines: the answer is cut at a line
boundary and starts with a marker saying how many earlier lines are not shown).
"""

import collections
import json
import re
import struct
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

from xscontainer import errors, xmlenc

# Bytes of log text an answer holds (the newest whole lines).
MAX_LOG_BYTES = 1024 * 1024
# A line longer than this is cut (Docker's json-file driver splits lines at 16 KiB).
MAX_LINE_BYTES = 256 * 1024
# Bytes read from the engine for one answer: `tail` is at most 10,000 lines;
# 10,000 lines of 6 KiB pass through, the rest is refused rather than read.
MAX_LOG_READ = 64 * 1024 * 1024
_CHUNK = 64 * 1024
STREAMS = {0: "stdin", 1: "stdout", 2: "stderr"}
_TIMESTAMP = re.compile(r"\A([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+(Z|[+-][0-9:]+)) ")

Sink = Callable[[str, bytes], None]


def _read_exact(read: Callable[[int], bytes], size: int) -> bytes:
    """`size` bytes, fewer only at the end of the stream."""
    parts: List[bytes] = []
    left = size
    while left:
        chunk = read(left)
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def demultiplex(read: Callable[[int], bytes], tty: bool, sink: Sink,
                max_bytes: int = MAX_LOG_READ) -> None:
    """Read a log stream with `read(n)` (at most n bytes, b"" at its end) and hand
    each payload to `sink(stream, data)`, in order. Raises ResponseTooLarge past
    `max_bytes` bytes, MalformedReply for a stream cut inside a frame."""
    total = 0

    def count(size: int) -> None:
        nonlocal total
        total += size
        if total > max_bytes:
            raise errors.ResponseTooLarge(
                "The container's logs exceeded %d bytes before their end; ask for fewer "
                "lines (tail) or a later start (since)." % max_bytes)

    first = True
    while True:
        if tty:
            chunk = read(_CHUNK)
            if not chunk:
                return
            count(len(chunk))
            sink("stdout", chunk)
            continue
        header = _read_exact(read, 8)
        if not header:
            return
        if first and (len(header) < 8 or header[0] not in STREAMS or header[1:4] != b"\0\0\0"):
            # not multiplexed after all (a TTY the inspect did not report): raw text
            tty = True
            count(len(header))
            sink("stdout", header)
            continue
        first = False
        if len(header) < 8:
            raise errors.MalformedReply("The container's log stream ended inside a frame header.")
        stream_id, length = struct.unpack(">BxxxL", header)
        stream = STREAMS.get(stream_id)
        if stream is None:
            raise errors.MalformedReply(
                "The container's log stream has a frame of unknown stream %d." % stream_id)
        while length:
            chunk = read(min(length, _CHUNK))
            if not chunk:
                raise errors.MalformedReply("The container's log stream ended inside a frame.")
            length -= len(chunk)
            count(len(chunk))
            sink(stream, chunk)


class Collector:
    """Lines per stream, the newest kept within `max_bytes` (a line counts its
    bytes and its newline)."""

    def __init__(self, max_bytes: int = MAX_LOG_BYTES, max_line: int = MAX_LINE_BYTES) -> None:
        self.max_bytes = max_bytes
        self.max_line = max_line
        self.lines: Deque[Tuple[str, bytes]] = collections.deque()
        self.size = 0
        self.dropped = 0  # earlier lines not kept
        self._partial: Dict[str, bytearray] = {}
        self._cut: Dict[str, int] = {}  # bytes left out of the current, too long, line

    def feed(self, stream: str, data: bytes) -> None:
        pending = self._partial.setdefault(stream, bytearray())
        start = 0
        while True:
            newline = data.find(b"\n", start)
            piece = data[start:] if newline < 0 else data[start:newline]
            room = self.max_line - len(pending)
            if len(piece) > room:
                self._cut[stream] = self._cut.get(stream, 0) + len(piece) - max(room, 0)
                piece = piece[:max(room, 0)]
            pending += piece
            if newline < 0:
                return
            self._line(stream)
            start = newline + 1

    def _line(self, stream: str) -> None:
        pending = self._partial.setdefault(stream, bytearray())
        line = bytes(pending)
        del pending[:]  # in place: feed() holds it
        cut = self._cut.pop(stream, 0)
        if cut:
            line += b" [... %d bytes of this line not shown]" % cut
        self.lines.append((stream, line))
        self.size += len(line) + 1
        while self.size > self.max_bytes and self.lines:
            _stream, old = self.lines.popleft()
            self.size -= len(old) + 1
            self.dropped += 1

    def finish(self) -> None:
        """The last lines without a newline count as lines."""
        for stream in sorted(self._partial):
            if self._partial[stream] or self._cut.get(stream):
                self._line(stream)

    def marker(self) -> Optional[str]:
        if not self.dropped:
            return None
        return ("(%d earlier line%s not shown: get_logs answers at most %d bytes of logs; ask "
                "for fewer lines with tail or a later start with since)"
                % (self.dropped, "" if self.dropped == 1 else "s", self.max_bytes))

    def text(self) -> str:
        """The lines as `docker logs` prints them (both streams, in order), text
        that XML-RPC can carry (characters XML forbids are dropped)."""
        parts = []
        marker = self.marker()
        if marker:
            parts.append(marker + "\n")
        for _stream, line in self.lines:
            parts.append(line.decode("utf-8", "replace") + "\n")
        return xmlenc.strip_illegal("".join(parts))

    def json(self, container: str, timestamps: bool) -> str:
        """The JSON answer: {"container", "lines": [{"stream", "text"[, "timestamp"]}],
        "truncated", "not_shown"}."""
        lines: List[Dict[str, Any]] = []
        for stream, raw in self.lines:
            line: Dict[str, Any] = {"stream": stream}
            text = raw.decode("utf-8", "replace")
            if timestamps:
                found = _TIMESTAMP.match(text)
                line["timestamp"] = found.group(1) if found else ""
                if found:
                    text = text[found.end():]
            line["text"] = text
            lines.append(line)
        return json.dumps({"container": container, "lines": lines,
                           "truncated": bool(self.dropped), "not_shown": self.dropped},
                          sort_keys=False)
