"""The shared event reader: one thread for every VM's event stream."""

import json
import socket
import threading
from typing import Any, List, Optional

from xscontainer import errors
from xscontainer.docker_api import EventStream
from xscontainer.monitor.eventreader import EventReader

from .test_monitor_worker import SocketBody, wait_for


class Member:
    def __init__(self, fail_on: str = "") -> None:
        self.events: List[Any] = []
        self.ended: List[Optional[BaseException]] = []
        self.fail_on = fail_on

    def stream_event(self, stream: Any, message: Any) -> None:
        if message.get("Action") == self.fail_on:
            raise RuntimeError("a bug in one member")
        self.events.append(message)

    def stream_ended(self, stream: Any, error: Optional[BaseException]) -> None:
        self.ended.append(error)


def pair(max_event_bytes: int = 1000):
    reading, writing = socket.socketpair()
    return EventStream(SocketBody(reading), reading, "VM %d" % reading.fileno(),
                       max_event_bytes), writing


def send(writing: socket.socket, action: str) -> None:
    writing.sendall(json.dumps({"Type": "container", "Action": action}).encode() + b"\n")


def test_one_thread_reads_every_stream_and_tells_each_end_once():
    reader = EventReader()
    before = threading.active_count()
    streams = [pair() for _ in range(50)]
    members = [Member() for _ in streams]
    for (stream, writing), member in zip(streams, members):
        send(writing, "create")  # before the reader has it: read when added
        reader.add(stream, member)
    assert threading.active_count() - before == 1
    for _stream, writing in streams:
        send(writing, "start")
    wait_for(lambda: all(len(m.events) == 2 for m in members))
    assert reader.streams == 50
    for _stream, writing in streams:
        writing.close()
    wait_for(lambda: all(m.ended == [None] for m in members))
    assert reader.streams == 0


def test_a_failing_stream_or_member_does_not_stop_the_others():
    reader = EventReader()
    (bad, bad_w), (good, good_w), (buggy, buggy_w) = pair(100), pair(), pair()
    bad_m, good_m, buggy_m = Member(), Member(), Member(fail_on="die")
    for stream, member in ((bad, bad_m), (good, good_m), (buggy, buggy_m)):
        reader.add(stream, member)
    bad_w.sendall(b"x" * 500)  # an event longer than its bound
    send(buggy_w, "die")
    send(buggy_w, "start")
    send(good_w, "start")
    wait_for(lambda: bad_m.ended and good_m.events and len(buggy_m.events) == 1)
    assert isinstance(bad_m.ended[0], errors.ResponseTooLarge)
    assert buggy_m.ended == [] and good_m.ended == []
    assert reader.streams == 2
    for writing in (bad_w, good_w, buggy_w):
        writing.close()


def test_a_stream_closed_without_a_word_from_its_descriptor_is_found_by_the_sweep():
    reader = EventReader(sweep_seconds=0.2)
    (quiet, quiet_w), (other, other_w) = pair(), pair()
    quiet_m, other_m = Member(), Member()
    reader.add(quiet, quiet_m)
    reader.add(other, other_m)
    wait_for(lambda: reader.streams == 2)
    # its descriptor closed outright: the selector forgets it and says nothing
    quiet._response.close()
    wait_for(lambda: quiet_m.ended == [None], timeout=3)
    assert reader.streams == 1 and other_m.ended == []
    send(other_w, "start")
    wait_for(lambda: len(other_m.events) == 1)
    for writing in (quiet_w, other_w):
        writing.close()
