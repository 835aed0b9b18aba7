"""What every transport shares: the ports, the timeouts, the TLS material, the
bounded adapter and the first-address-that-answers connect.

Each transport is a `requests` adapter that the Docker SDK's APIClient uses in
place of its own (see docker_api.py). Every non-streaming response is read with
a size bound (BoundedAdapter), so a guest cannot make dom0 buffer an unbounded
reply.
"""

import errno
import ipaddress
import os
import selectors
import socket
import time
from typing import Any, Dict, FrozenSet, List, Optional, Tuple, cast

import requests.adapters

from xscontainer import errors

SSH_PORT = 22
TLS_PORT = 2376  # Docker's mutual-TLS endpoint

# Large enough for `docker ps -a` with thousands of containers carrying labels.
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024


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


class BoundedAdapter(requests.adapters.HTTPAdapter):
    """An HTTPAdapter that reads non-streamed bodies itself, at most max_bytes."""

    def __init__(self, max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES) -> None:
        self.max_response_bytes = max_response_bytes
        requests.adapters.HTTPAdapter.__init__(self)

    def send(self, request: Any, stream: bool = False, **kwargs: Any) -> Any:  # type: ignore[override]
        response = requests.adapters.HTTPAdapter.send(self, request, stream=True, **kwargs)
        if stream:
            return response
        data = response.raw.read(self.max_response_bytes + 1, decode_content=True)
        if len(data) > self.max_response_bytes:
            response.close()
            raise errors.ResponseTooLarge(
                "The Docker engine's reply to %s %s exceeded %d bytes; refusing to read more."
                % (request.method, request.path_url.split("?")[0], self.max_response_bytes)
            )
        response._content = data
        response._content_consumed = True  # type: ignore[attr-defined]
        response.close()
        return response

    # requests >= 2.32.2 asks for this instead of get_connection. Transports
    # that connect their own pools (ssh, tls) override get_connection; for them
    # requests' TLS context and proxies do not apply.
    def get_connection_with_tls_context(self, request: Any, verify: Any, proxies: Any = None,
                                        cert: Any = None) -> Any:
        if type(self).get_connection is not requests.adapters.HTTPAdapter.get_connection:
            return self.get_connection(request.url, proxies)
        return requests.adapters.HTTPAdapter.get_connection_with_tls_context(
            self, request, verify, proxies, cert)

    def request_url(self, request: Any, proxies: Any) -> str:
        return str(request.path_url)

    @property
    def server_key_b64(self) -> Optional[str]:
        """The SSH host key the guest presented (base64), for transports over SSH."""
        return None


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
