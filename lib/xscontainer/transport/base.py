"""What every transport shares: the ports, the timeouts, the TLS material, the
request deadline and the first-address-that-answers connect.

Each transport is a `requests` adapter that the Docker SDK's APIClient uses in
place of its own (see docker_api.py). Every non-streaming response is read with
a size bound (BoundedAdapter, adapter.py), so a guest cannot make dom0 buffer an unbounded
reply, and within a deadline for the whole request (headers and body), so a
guest that trickles its reply a byte at a time cannot hold dom0 either: at the
deadline a watchdog closes the request's connection (each transport's
connection class says how, through `watch`) and the request ends with
XSCONTAINER_TIMEOUT.
"""

import contextlib
import errno
import heapq
import ipaddress
import itertools
import os
import re
import selectors
import socket
import threading
import time
from typing import Any, Callable, Dict, FrozenSet, Iterator, List, Optional, Tuple, cast

from xscontainer import errors, paths, xapi_keys

SSH_PORT = 22
TLS_PORT = 2376  # Docker's mutual-TLS endpoint

# Large enough for `docker ps -a` with thousands of containers carrying labels.
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024
# JSON values a reply may hold (counted generously: every ',', '[' and '{'
# byte). Decoded JSON can take ten to twenty times its size in Python objects
# (`[{},{},...]`: 3 bytes per dict); this keeps the worst reply within the byte
# bound to about 100 MiB of objects. 1,000 containers in /containers/json with a
# few labels each are about 60,000.
DEFAULT_MAX_JSON_VALUES = 400000
# Seconds one Docker request may take from sending it to its last byte
# (XSCONTAINER_REQUEST_DEADLINE in the environment overrides it).
DEFAULT_REQUEST_DEADLINE = 20.0
REQUEST_DEADLINE_ENV = "XSCONTAINER_REQUEST_DEADLINE"


# A Docker socket path in the guest, as other-config xscontainer-docker-socket
# names it (checked before it goes into the bridge's shell command: ssh.py).
_SOCKET_RE = re.compile(r"\A/[A-Za-z0-9._/@:+-]{1,254}\Z")


def check_socket_path(path: str, where: str = "the VM") -> str:
    """A Docker socket path from other-config, checked (InvalidArgument otherwise)."""
    if not _SOCKET_RE.match(path):
        raise errors.InvalidArgument(
            "%s has other-config %s=%.300r, which is not an absolute path of a unix socket "
            "(letters, digits and ._/@:+- only). Fix it with 'xe vm-param-set uuid=<vm> "
            "other-config:%s=/var/run/docker.sock', or remove the key to let xscontainer "
            "find the socket." % (where, xapi_keys.DOCKER_SOCKET, path, xapi_keys.DOCKER_SOCKET))
    return path


def request_deadline_default() -> float:
    """The deadline of one Docker request: the environment's, else the default."""
    return paths.env_seconds(REQUEST_DEADLINE_ENV, DEFAULT_REQUEST_DEADLINE)


class _Watch:
    """The deadline of the request this thread is making, and how to abort it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.aborts: List[Callable[[], None]] = []
        self.fired = False
        self.done = False  # the request ended: firing now would abort nothing of it

    def attach(self, abort: Callable[[], None]) -> None:
        with self.lock:
            fired = self.fired
            if not fired:
                self.aborts.append(abort)
        if fired:
            _quietly(abort)

    def fire(self) -> None:
        with self.lock:
            if self.done:
                return
            self.fired = True
            aborts, self.aborts = self.aborts, []
        for abort in aborts:
            _quietly(abort)

    def finish(self) -> None:
        with self.lock:
            self.done = True
            self.aborts = []


class _Deadlines:
    """One thread watches the deadline of every request of the process.

    A timer thread per request (threading.Timer) cost more than a small request
    itself: an idle monitor of hundreds of VMs probes several of them a second.
    Here a request costs a heap entry; the thread sleeps until the earliest
    deadline and is woken only for a deadline earlier than that. A request
    that ended leaves its entry, dropped when its time comes.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        self._heap: List[Tuple[float, int, _Watch]] = []
        self._seq = itertools.count()
        self._thread: Optional[threading.Thread] = None
        self._sleeping_until: Optional[float] = None  # None: not sleeping on a deadline

    def add(self, at: float, watch: _Watch) -> None:
        with self._cond:
            heapq.heappush(self._heap, (at, next(self._seq), watch))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="deadlines", daemon=True)
                self._thread.start()
            elif self._sleeping_until is None or at < self._sleeping_until:
                self._cond.notify()

    def pending(self) -> int:
        """Entries not yet dropped (for tests)."""
        with self._cond:
            return len(self._heap)

    def _run(self) -> None:
        while True:
            due: List[_Watch] = []
            with self._cond:
                now = self._clock()
                while self._heap and (self._heap[0][0] <= now or self._heap[0][2].done):
                    watch = heapq.heappop(self._heap)[2]
                    if not watch.done:
                        due.append(watch)
                if not due:
                    self._sleeping_until = self._heap[0][0] if self._heap else None
                    self._cond.wait(None if self._sleeping_until is None
                                    else self._sleeping_until - now)
                    self._sleeping_until = None
            for watch in due:
                watch.fire()


_DEADLINES = _Deadlines()


_current = threading.local()


def watch(abort: Callable[[], None]) -> None:
    """Called by a transport's connection as it sends a request: `abort` is what
    ends that request at once (closing its socket or channel), should the
    request's deadline pass."""
    current: Optional[_Watch] = getattr(_current, "watch", None)
    if current is not None:
        current.attach(abort)


def _quietly(fn: Callable[[], None]) -> None:
    try:
        fn()
    except Exception:  # aborting a connection that is already broken  # noqa: S110
        pass


def shutdown_socket(sock: Any) -> None:
    """Make a blocked recv on `sock` (a socket or an SSL socket) return at once."""
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


_deadline = threading.local()


def seconds_left(seconds: float) -> float:
    """`seconds`, or what is left until an earlier deadline deadline_at set for
    this thread (possibly nothing or less)."""
    outer = getattr(_deadline, "at", None)
    return seconds if outer is None else min(seconds, outer - time.monotonic())


@contextlib.contextmanager
def watched(seconds: float) -> Iterator[_Watch]:
    """Requests this thread sends inside the block are aborted (by what their
    connection gave watch()) once `seconds` have passed; the watch yielded
    tells whether that happened (`fired`)."""
    current = _Watch()
    _current.watch = current
    _DEADLINES.add(time.monotonic() + seconds, current)
    try:
        yield current
    finally:
        current.finish()
        _current.watch = None


@contextlib.contextmanager
def deadline_at(at: Optional[float]) -> Iterator[None]:
    """Requests made by this thread inside the block end by `at` (time.monotonic())
    at the latest, besides their own deadline."""
    outer = getattr(_deadline, "at", None)
    if at is None:
        _deadline.at = outer
    else:
        _deadline.at = at if outer is None else min(at, outer)
    try:
        yield
    finally:
        _deadline.at = outer


class Timeouts:
    """Seconds allowed for each stage of talking to a guest."""

    def __init__(self, connect: float = 5.0, handshake: float = 10.0, auth: float = 10.0,
                 request: float = 30.0) -> None:
        self.connect = connect
        self.handshake = handshake
        self.auth = auth
        self.request = request


class Material:
    """What dom0 holds for one VM in TLS mode: its client certificate and key and
    the CA (PEM)."""

    def __init__(self, client_cert: str, client_key: str, ca_cert: str) -> None:
        self.client_cert = client_cert
        self.client_key = client_key
        self.ca_cert = ca_cert

    def __repr__(self) -> str:  # never shows the key
        return "Material(<client cert>, <client key>, <CA>)"


# connect_first: at most this many candidate addresses, this many at a time
MAX_ADDRESSES = 8
PARALLEL_CONNECTS = 3
FIB_TRIE = "/proc/net/fib_trie"
HOST_INTERNAL = ipaddress.ip_network("169.254.0.0/16")  # XenServer's host-internal network


def local_addresses(fib_trie: str = FIB_TRIE) -> FrozenSet[str]:
    """This host's own IPv4 addresses and its subnets' broadcast addresses (from the
    kernel's routing tables), which are never a guest's; empty when unreadable."""
    found = set()
    try:
        with open(fib_trie, encoding="ascii", errors="replace") as f:
            lines = f.read(1 << 22).splitlines()
    except OSError:
        return frozenset()
    address = None
    for line in lines:
        text = line.strip()
        if text.startswith("|-- "):
            address = text[4:].strip()
        elif address and (text.endswith("host LOCAL") or text.endswith("BROADCAST")):
            found.add(address)
    return frozenset(found)


def plausible(address: str, own: FrozenSet[str], host_internal: Optional[bool] = None) -> bool:
    """Whether a reported IPv4 address can be a guest's: a unicast address that is
    not loopback, unspecified, multicast, reserved or broadcast, not one of this
    host's own (`own`); link-local only when this host is on the host-internal
    network (has a 169.254.* address itself; None: decide from `own`)."""
    try:
        ip = ipaddress.IPv4Address(address)
    except ValueError:
        return False
    if (ip.is_loopback or ip.is_unspecified or ip.is_multicast or ip.is_reserved
            or address == "255.255.255.255" or address in own):
        return False
    if ip in HOST_INTERNAL:
        if host_internal is None:
            host_internal = any(_in_host_internal(a) for a in own)
        return host_internal
    return True


def _in_host_internal(address: str) -> bool:
    try:
        return ipaddress.IPv4Address(address) in HOST_INTERNAL
    except ValueError:
        return False


def connect_first(addresses: List[str], port: int, timeout: float) -> Tuple[socket.socket, str]:
    """Open a TCP connection to the first of `addresses` that answers on `port`.

    The first MAX_ADDRESSES candidates are tried, PARALLEL_CONNECTS at a time with
    non-blocking connects in this thread (no thread per address), each for at most
    `timeout` seconds; the next starts as soon as one fails. Earlier addresses win
    ties (the order expresses preference). The winning socket is blocking again,
    with TCP_NODELAY set (SSH and HTTP exchange small packets; without it each
    round trip waits ~40 ms for a delayed ACK). Raises GuestUnreachable naming the
    addresses tried and their errors.
    """
    if not addresses:
        raise errors.NoIP("No IPv4 address to connect to.")
    queue = list(addresses[:MAX_ADDRESSES])
    skipped = len(addresses) - len(queue)
    failures: Dict[str, str] = {}
    selector = selectors.DefaultSelector()
    order = 0
    try:
        while queue or selector.get_map():
            while queue and len(selector.get_map()) < PARALLEL_CONNECTS:
                address = queue.pop(0)
                sock, err = _start_connect(address, port)
                if sock is None:
                    failures[address] = err
                else:
                    selector.register(sock, selectors.EVENT_WRITE,
                                      (order, address, time.monotonic() + timeout))
                    order += 1
            keys = list(selector.get_map().values())
            if not keys:
                break
            wait = max(0.0, min(k.data[2] for k in keys) - time.monotonic())
            ready = sorted(((key.data, key.fileobj) for key, _mask in selector.select(wait)),
                           key=lambda item: item[0])
            for (_order, address, _deadline), fileobj in ready:
                sock = cast(socket.socket, fileobj)
                selector.unregister(sock)
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code == 0:
                    sock.setblocking(True)
                    sock.settimeout(timeout)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    return sock, address
                sock.close()
                failures[address] = os.strerror(code)
            now = time.monotonic()
            for key in list(selector.get_map().values()):
                if key.data[2] <= now:
                    selector.unregister(key.fileobj)
                    key.fileobj.close()  # type: ignore[union-attr]
                    failures[key.data[1]] = "timed out after %gs" % timeout
    finally:
        for key in list(selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        selector.close()
    tried = ", ".join("%s (%s)" % (a, failures.get(a, "not tried"))
                      for a in addresses[:MAX_ADDRESSES])
    if skipped:
        tried += " and %d more address(es) not tried" % skipped
    raise errors.GuestUnreachable(
        "No address of the VM accepts connections on port %d: tried %s. Check that the VM's "
        "network is up, that the service listens on port %d and that no firewall blocks it."
        % (port, tried, port)
    )


def _start_connect(address: str, port: int) -> Tuple[Optional[socket.socket], str]:
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    except OSError as exc:
        return None, exc.strerror or str(exc)
    sock.setblocking(False)
    code = sock.connect_ex((address, port))
    if code in (0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
        return sock, ""
    sock.close()
    return None, os.strerror(code)
