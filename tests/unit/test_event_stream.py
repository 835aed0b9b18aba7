"""Docker's event stream read without blocking: the chunked-body decoder, the
bounded line splitter and EventStream, fed in pieces of every size."""

import json
import random
from typing import List

import pytest

from xscontainer import errors
from xscontainer.docker_api import EventStream
from xscontainer.transport.stream import ChunkedDecoder, LineSplitter


def chunked(*chunks: bytes, trailers: bytes = b"") -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n" + trailers + b"\r\n"


EVENTS = [{"Type": "container", "Action": "start", "Actor": {"ID": "c%d" % n,
                                                            "Attributes": {"name": "é%d" % n}}}
          for n in range(30)]
BODY = b"".join(json.dumps(e).encode() + b"\n" for e in EVENTS)


@pytest.mark.parametrize("seed", range(20))
def test_any_split_of_a_chunked_body_decodes_to_the_body(seed):
    rng = random.Random(seed)
    # chunks as Docker sends them (one event each) and some of arbitrary sizes
    cuts = sorted(rng.sample(range(1, len(BODY)), 12))
    pieces = [BODY[a:b] for a, b in zip([0, *cuts], [*cuts, len(BODY)])]
    wire = chunked(*pieces, trailers=b"X-Trailer: 1\r\n" if seed % 2 else b"")
    decoder = ChunkedDecoder()
    out, at = [], 0
    while at < len(wire):
        step = rng.randint(1, 40)
        out.append(decoder.feed(wire[at:at + step]))
        at += step
    assert b"".join(out) == BODY and decoder.finished


def test_a_chunk_extension_is_ignored():
    assert ChunkedDecoder().feed(b"3;name=value\r\nabc\r\n") == b"abc"


@pytest.mark.parametrize("wire, words", [
    (b"zz\r\nabc\r\n", "not a hexadecimal number"),
    (b"-3\r\nabc\r\n", "not a hexadecimal number"),
    (b"\r\n", "not a hexadecimal number"),
    (b"ffffffff\r\n", "not a hexadecimal number"),  # 4 GiB: more digits than allowed
    (b"3\r\nabcXY", "not followed by CRLF"),
    (b"7" * 2000, "longer than 1024 bytes"),
    (b"3\r\nabc\r\n0\r\n\r\nmore", "after the end"),
])
def test_what_is_not_chunked_framing_is_a_malformed_reply(wire, words):
    with pytest.raises(errors.MalformedReply) as exc:
        ChunkedDecoder().feed(wire)
    assert words in exc.value.message


def test_a_body_that_is_not_chunked_passes_as_it_is():
    decoder = ChunkedDecoder(chunked=False)
    assert decoder.feed(b"zz\r\n{}") == b"zz\r\n{}" and not decoder.finished


def test_lines_are_cut_at_newlines_and_bounded():
    lines = LineSplitter(10)
    assert lines.feed(b"ab") == []
    assert lines.feed(b"c\nde\nf") == [b"abc", b"de"]
    assert lines.rest() == b"f"
    with pytest.raises(errors.ResponseTooLarge):
        lines.feed(b"x" * 11)  # no newline yet: the pending line is already too long
    with pytest.raises(errors.ResponseTooLarge):
        LineSplitter(10).feed(b"y" * 11 + b"\n")


class Body:
    """A ChannelBody stand-in: hands out the given pieces, then ends."""

    def __init__(self, pieces: List[bytes], chunked_: bool = True) -> None:
        self.pieces = list(pieces)
        self.decoder = ChunkedDecoder(chunked_)
        self.ended = False

    def fileno(self) -> int:
        return 0

    def read_available(self) -> bytes:
        data = self.pieces.pop(0) if self.pieces else b""
        body = self.decoder.feed(data)
        self.ended = self.decoder.finished or not data
        return body


class Response:
    closed = False

    def close(self) -> None:
        self.closed = True


def test_an_event_stream_gives_whole_events_as_they_complete():
    wire = chunked(*(json.dumps(e).encode() + b"\n" for e in EVENTS[:3]))
    response = Response()
    stream = EventStream(Body([wire[:25], wire[25:90], wire[90:]]), response, "VM web (u)", 1000)
    got = []
    while not stream.ended:
        got.extend(stream.read())
    assert got == EVENTS[:3]
    stream.close()
    assert response.closed


def test_an_event_stream_ending_without_a_newline_keeps_its_last_event():
    stream = EventStream(Body([b'{"status": "die", "id": "x"}'], chunked_=False), Response(),
                         "VM web (u)", 1000)
    assert stream.read() == []
    assert stream.read() == [{"status": "die", "id": "x"}] and stream.ended


@pytest.mark.parametrize("pieces, error, words", [
    ([chunked(b"x" * 2000)], errors.ResponseTooLarge,
     "A Docker event from VM web (u) exceeded 1000 bytes"),
    ([b"zz\r\n"], errors.MalformedReply, "Docker in VM web (u) sent a malformed event stream"),
    ([b"5\r\n[1]\n\r\n"], errors.DockerError, "unexpected event"),
])
def test_a_bad_event_stream_fails_with_a_stable_code(pieces, error, words):
    stream = EventStream(Body(pieces), Response(), "VM web (u)", 1000)
    with pytest.raises(error) as exc:
        stream.read()
    assert words in exc.value.message
