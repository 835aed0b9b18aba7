"""Which guest addresses xscontainer tries, and in what order."""

import socket
import threading
import time

import pytest

from xscontainer import errors
from xscontainer.guest import candidate_addresses
from xscontainer.transport import base


def test_no_metrics_or_empty_map_gives_nothing():
    assert candidate_addresses(None) == []
    assert candidate_addresses({}) == []


def test_ipv4_only_and_duplicates_tried_once():
    networks = {"0/ip": "10.0.0.5", "0/ipv4/0": "10.0.0.5", "0/ipv6/0": "fe80::1",
                "0/ipv6/1": "2001:db8::5"}
    assert candidate_addresses(networks) == ["10.0.0.5"]


def test_link_local_first_then_by_device_number():
    networks = {
        "10/ip": "192.168.10.2",
        "2/ip": "192.168.2.2",
        "1/ip": "169.254.0.2",
        "0/ip": "10.0.0.5",
        "0/ipv4/1": "10.0.1.5",
    }
    assert candidate_addresses(networks, host_internal=True) == [
        "169.254.0.2", "10.0.0.5", "10.0.1.5", "192.168.2.2", "192.168.10.2"]


def test_garbage_values_are_ignored():
    networks = {"0/ip": "", "1/ip": "not-an-ip", "2/ip": " 10.1.1.1 ", "3/ip": "999.1.1.1"}
    assert candidate_addresses(networks) == ["10.1.1.1"]


def test_only_plausible_addresses_are_kept():
    networks = {"0/ip": "127.0.0.1", "1/ip": "0.0.0.0", "2/ip": "224.0.0.1",
                "3/ip": "255.255.255.255", "4/ip": "240.1.1.1", "5/ip": "10.0.0.1",
                "6/ip": "10.0.0.255", "7/ip": "169.254.0.2", "8/ip": "10.0.0.7"}
    own = frozenset({"10.0.0.1", "10.0.0.255"})
    assert candidate_addresses(networks, own, host_internal=False) == ["10.0.0.7"]
    # link-local is the host-internal network when this host has such an address
    assert candidate_addresses(networks, own | {"169.254.0.1"}) == ["169.254.0.2", "10.0.0.7"]


def test_local_addresses_from_the_routing_tables(tmp_path):
    trie = tmp_path / "fib_trie"
    trie.write_text(
        "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n"
        "        +-- 10.200.1.0/31 1 0 0\n           |-- 10.200.1.0\n"
        "              /24 link UNICAST\n           |-- 10.200.1.1\n"
        "              /32 host LOCAL\n        |-- 10.200.1.255\n"
        "           /32 link BROADCAST\n")
    assert base.local_addresses(str(trie)) == {"10.200.1.1", "10.200.1.255"}
    assert base.local_addresses(str(tmp_path / "none")) == frozenset()
    assert "127.0.0.1" in base.local_addresses()  # this machine's own


def _never_writable() -> socket.socket:
    """A non-blocking socket that never becomes writable (its send buffer full, its
    peer kept and never reading): what a connect to an address that never answers is."""
    ours, peer = socket.socketpair()
    ours.setblocking(False)
    try:
        while True:
            ours.send(b"x" * 65536)
    except BlockingIOError:
        pass
    _PEERS.append(peer)
    return ours


_PEERS = []  # type: list


@pytest.fixture
def silent(monkeypatch):
    """192.0.2.x addresses never answer (this machine's network has none such)."""
    real = base._start_connect
    started = []

    def start(address, port):
        if address.startswith("192.0.2."):
            started.append(address)
            return _never_writable(), ""
        return real(address, port)

    monkeypatch.setattr(base, "_start_connect", start)
    return started


def test_connect_first_takes_the_first_that_answers_without_a_thread_each(silent):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    port = listener.getsockname()[1]
    closed = socket.socket()
    closed.bind(("127.0.0.2", 0))
    dead_port = closed.getsockname()[1]
    closed.close()
    addresses = ["192.0.2.%d" % i for i in range(1, 500)]
    threads = threading.active_count()
    started = time.monotonic()
    sock, address = base.connect_first([*addresses[:2], "127.0.0.1", *addresses[2:]], port, 5.0)
    assert address == "127.0.0.1" and time.monotonic() - started < 1.0
    assert threading.active_count() == threads
    assert sock.gettimeout() == 5.0 and sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    assert silent == addresses[:2]  # the third connect answered before any other started
    sock.close()
    with pytest.raises(errors.GuestUnreachable) as info:
        base.connect_first([*addresses[:3], "127.0.0.2"], dead_port, 0.3)
    assert "127.0.0.2 (Connection refused)" in info.value.message
    assert "192.0.2.1 (timed out after 0.3s)" in info.value.message
    del silent[:]
    started = time.monotonic()
    with pytest.raises(errors.GuestUnreachable) as info:
        base.connect_first(addresses, port, 0.2)
    # at most MAX_ADDRESSES tried, PARALLEL_CONNECTS at a time
    rounds = -(-base.MAX_ADDRESSES // base.PARALLEL_CONNECTS)
    assert rounds * 0.2 - 0.05 < time.monotonic() - started < rounds * 0.2 + 0.5
    assert silent == addresses[:base.MAX_ADDRESSES]
    assert "and %d more address(es) not tried" % (len(addresses) - base.MAX_ADDRESSES) \
        in info.value.message
    listener.close()
