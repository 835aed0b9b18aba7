"""What every transport shares: the ports, the timeouts, the TLS material, the
bounded adapter and the first-address-that-answers connect.

Each transport is a `requests` adapter that the Docker SDK's APIClient uses in
place of its own (see docker_api.py). Every non-streaming response is read with
a size bound (BoundedAdapter), so a guest cannot make dom0 buffer an unbounded
reply.
"""

import socket
from concurrent import futures
from typing import Any, List, Optional, Tuple

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


def connect_first(addresses: List[str], port: int, timeout: float) -> Tuple[socket.socket, str]:
    """Open a TCP connection to the first of `addresses` that answers on `port`.

    Several candidates are tried in parallel; earlier addresses win ties (the
    order expresses preference). The winning socket has TCP_NODELAY set (SSH and
    HTTP exchange small packets; without it each round trip waits ~40 ms for a
    delayed ACK). Raises GuestUnreachable naming every address and its error.
    """
    if not addresses:
        raise errors.NoIP("No IPv4 address to connect to.")
    if len(addresses) == 1:
        results = [_try_connect(addresses[0], port, timeout)]
    else:
        with futures.ThreadPoolExecutor(max_workers=len(addresses)) as pool:
            results = list(pool.map(lambda a: _try_connect(a, port, timeout), addresses))
    winner: Optional[Tuple[socket.socket, str]] = None
    for addr, (sock, _err) in zip(addresses, results):
        if sock is None:
            continue
        if winner is None:
            winner = (sock, addr)
        else:
            sock.close()
    if winner is not None:
        return winner
    tried = ", ".join("%s (%s)" % (a, err) for a, (_s, err) in zip(addresses, results))
    raise errors.GuestUnreachable(
        "No address of the VM accepts connections on port %d: tried %s. Check that the VM's "
        "network is up, that the service listens on port %d and that no firewall blocks it."
        % (port, tried, port)
    )


def _try_connect(address: str, port: int,
                 timeout: float) -> Tuple[Optional[socket.socket], str]:
    try:
        sock = socket.create_connection((address, port), timeout=timeout)
    except socket.timeout:
        return None, "timed out after %gs" % timeout
    except OSError as exc:
        return None, exc.strerror or str(exc)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock, ""
