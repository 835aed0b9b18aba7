"""A long-lived response body read without blocking: Docker's event stream.

The Docker SDK reads a stream by blocking in it, which costs a thread per
stream. The monitor instead has one thread wait for every VM's event stream
to become readable (monitor/eventreader.py) and read what has arrived. The
SDK still sends the request and reads the status line and headers; what
follows is the body, which Docker sends with HTTP/1.1's chunked transfer
coding (a hexadecimal size line, that many bytes, CRLF; a size of 0 ends it),
or, from an engine that does not, as plain bytes until the connection closes.

ChunkedDecoder turns the bytes as they arrive into the body's bytes, whatever
the pieces; it refuses what is not that framing (a size line that is not
hexadecimal, too long, or a chunk not followed by CRLF). LineSplitter cuts the
body into lines, each at most a given size.
"""

from typing import List, Optional

from xscontainer import errors

# A chunk-size line: hexadecimal digits, optional extensions, CRLF.
MAX_SIZE_LINE = 1024
# Hexadecimal digits in a chunk size: 16 MiB at most.
MAX_SIZE_DIGITS = 7


class ChunkedDecoder:
    """Feed bytes as they arrive; get the body's bytes. `finished` once the last
    chunk (size 0) and the trailers' end were read. With chunked=False the
    bytes are the body as they are (the stream ends when the connection does)."""

    def __init__(self, chunked: bool = True) -> None:
        self.chunked = chunked
        self.finished = False
        self._buffer = b""
        self._left = 0  # bytes of the current chunk still to come
        self._state = "size" if chunked else "plain"  # size, data, crlf, trailer, plain

    def feed(self, data: bytes) -> bytes:
        if self._state == "plain":
            return data
        if self.finished:
            if data:
                raise errors.MalformedReply("bytes arrived after the end of a chunked body")
            return b""
        self._buffer += data
        out: List[bytes] = []
        while True:
            if self._state == "data":
                if not self._buffer:
                    break
                piece = self._buffer[:self._left]
                self._buffer = self._buffer[len(piece):]
                self._left -= len(piece)
                out.append(piece)
                if self._left:
                    break
                self._state = "crlf"
            elif self._state == "crlf":
                if len(self._buffer) < 2:
                    break
                if self._buffer[:2] != b"\r\n":
                    raise errors.MalformedReply("a chunk of the body was not followed by CRLF")
                self._buffer = self._buffer[2:]
                self._state = "size"
            else:  # a size line, or (after the last chunk) a trailer line
                line = self._line()
                if line is None:
                    break
                if self._state == "trailer":
                    if not line:
                        self.finished = True
                        if self._buffer:
                            raise errors.MalformedReply(
                                "bytes arrived after the end of a chunked body")
                        break
                    continue
                self._left = _chunk_size(line)
                self._state = "data" if self._left else "trailer"
        return b"".join(out)

    def _line(self) -> Optional[bytes]:
        end = self._buffer.find(b"\r\n")
        if end < 0:
            if len(self._buffer) > MAX_SIZE_LINE:
                raise errors.MalformedReply("a chunk-size line is longer than %d bytes"
                                            % MAX_SIZE_LINE)
            return None
        if end > MAX_SIZE_LINE:
            raise errors.MalformedReply("a chunk-size line is longer than %d bytes"
                                        % MAX_SIZE_LINE)
        line, self._buffer = self._buffer[:end], self._buffer[end + 2:]
        return line


def _chunk_size(line: bytes) -> int:
    digits = line.split(b";", 1)[0].strip()
    if not digits or len(digits) > MAX_SIZE_DIGITS or any(
            c not in b"0123456789abcdefABCDEF" for c in digits):
        raise errors.MalformedReply("a chunk size was %.40r, not a hexadecimal number"
                                    % (digits,))
    return int(digits, 16)


class LineSplitter:
    """Bytes in; complete lines out (without their newline), each at most
    `max_line` bytes, else ResponseTooLarge."""

    def __init__(self, max_line: int) -> None:
        self.max_line = max_line
        self._pending = b""

    def feed(self, data: bytes) -> List[bytes]:
        self._pending += data
        if b"\n" not in data:
            self._check()
            return []
        *lines, self._pending = self._pending.split(b"\n")
        for line in lines:
            if len(line) > self.max_line:
                raise errors.ResponseTooLarge("a line exceeded %d bytes" % self.max_line)
        self._check()
        return lines

    def rest(self) -> bytes:
        """What came after the last newline (the stream's last line, once it ended)."""
        rest, self._pending = self._pending, b""
        return rest

    def _check(self) -> None:
        if len(self._pending) > self.max_line:
            raise errors.ResponseTooLarge("a line exceeded %d bytes" % self.max_line)
