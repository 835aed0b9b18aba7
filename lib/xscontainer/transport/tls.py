"""TLS transport: mutual TLS to the Docker engine on TCP 2376 (Windows Server guests).

`connect` opens a TLS connection to the first address of the VM that answers;
TLSAdapter carries the Docker SDK's requests over connections made with the
VM's own SSL context (tlscontext.make_context). Failures in the handshake, and
with TLS 1.3 a refusal of our certificate at the first read, are told apart by
tlsfailures.classify.
"""

import socket
import ssl
import threading
import weakref
from typing import Any, List, Optional, Tuple

import urllib3.connection
import urllib3.connectionpool

from xscontainer import errors
from xscontainer.transport.adapter import BoundedAdapter
from xscontainer.transport.base import (
    DEFAULT_MAX_RESPONSE_BYTES,
    TLS_PORT,
    connect_first,
    shutdown_socket,
    watch,
)
from xscontainer.transport.tlsfailures import classify, short


def handshake(sock: socket.socket, address: str, context: ssl.SSLContext, timeout: float,
              vm_uuid: str, where: str) -> ssl.SSLSocket:
    """Wrap a connected socket and run the handshake; classified errors."""
    sock.settimeout(timeout)
    try:
        tls_sock = context.wrap_socket(sock, server_hostname=address,
                                       do_handshake_on_connect=False)
    except BaseException:
        sock.close()
        raise
    try:
        tls_sock.do_handshake()
    except socket.timeout as exc:
        tls_sock.close()
        raise errors.Timeout("The TLS handshake with Docker in %s at %s did not finish within "
                             "%gs." % (where, address, timeout)) from exc
    except (ssl.SSLError, ssl.CertificateError, OSError) as exc:
        tls_sock.close()
        classified = classify(exc, address, vm_uuid, where)
        if classified is not None:
            raise classified from exc
        raise errors.TLSError(
            "The TLS handshake with Docker in %s at %s failed: %s. Check that Docker runs "
            "and serves TLS on port %d, and its TLS configuration in the VM (daemon.json "
            "tlsverify, tlscacert, tlscert, tlskey)." % (where, address, short(exc), TLS_PORT),
            vm_uuid, address) from exc
    return tls_sock


def connect(addresses: List[str], context: ssl.SSLContext, timeout: float, handshake_timeout: float,
            vm_uuid: str, where: str) -> Tuple[ssl.SSLSocket, str]:
    """A TLS connection to port 2376 of the first address that answers."""
    sock, address = connect_first(addresses, TLS_PORT, timeout)
    return handshake(sock, address, context, handshake_timeout, vm_uuid, where), address


# -- the Docker SDK over TLS connections ----------------------------------------------


class _TLSConnection(urllib3.connection.HTTPConnection):
    """An HTTP connection whose socket is a TLS connection made with our context."""

    def __init__(self, pool: "_TLSPool", first: Optional[ssl.SSLSocket]) -> None:
        urllib3.connection.HTTPConnection.__init__(self, pool.address, pool.tls_port,
                                                   timeout=pool.io_timeout)
        self._pool = pool
        self._first = first

    def connect(self) -> None:
        if self._first is not None:
            self.sock, self._first = self._first, None
            self.sock.settimeout(self._pool.io_timeout)
            self._pool.track(self.sock)
            return
        pool = self._pool
        try:
            raw = socket.create_connection((pool.address, pool.tls_port),
                                           timeout=pool.connect_timeout)
        except OSError as exc:
            raise errors.GuestUnreachable(
                "Cannot connect to Docker's TLS port %d in %s at %s: %s. Check that Docker "
                "runs and that the VM's firewall allows the port."
                % (pool.tls_port, pool.where, pool.address, exc.strerror or exc),
                pool.vm_uuid) from exc
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        tls_sock = handshake(raw, pool.address, pool.context, pool.handshake_timeout,
                             pool.vm_uuid, pool.where)
        tls_sock.settimeout(pool.io_timeout)
        pool.track(tls_sock)
        self.sock = tls_sock

    def putrequest(self, *args: Any, **kwargs: Any) -> None:
        # past the request's deadline, shutting the socket down ends a blocked read
        watch(lambda: shutdown_socket(self.sock))
        urllib3.connection.HTTPConnection.putrequest(self, *args, **kwargs)


class _TLSPool(urllib3.connectionpool.HTTPConnectionPool):
    """HTTPS to address:2376: connections carry TLS from our own context, made by
    _TLSConnection (so urllib3 1.26 and 2.x, and every requests release, behave
    alike, and no environment CA bundle is ever consulted)."""

    def __init__(self, address: str, context: ssl.SSLContext, vm_uuid: str, where: str,
                 timeout: float, connect_timeout: float, handshake_timeout: float,
                 maxsize: int, first: Optional[ssl.SSLSocket], port: int = TLS_PORT) -> None:
        urllib3.connectionpool.HTTPConnectionPool.__init__(
            self, address, port, timeout=timeout, maxsize=maxsize)
        self.address = address
        self.context = context
        self.vm_uuid = vm_uuid
        self.where = where
        self.tls_port = port
        self.io_timeout = timeout  # the pool's own `timeout` is a urllib3 Timeout object
        self.connect_timeout = connect_timeout
        self.handshake_timeout = handshake_timeout
        self._first = first
        # every socket handed out, idle or in use (e.g. carrying an event stream)
        self._sockets: "weakref.WeakSet[ssl.SSLSocket]" = weakref.WeakSet()
        self._sockets_lock = threading.Lock()

    def track(self, sock: ssl.SSLSocket) -> None:
        with self._sockets_lock:
            self._sockets.add(sock)

    def _new_conn(self) -> _TLSConnection:
        first, self._first = self._first, None
        return _TLSConnection(self, first)

    def close(self) -> None:
        """Close idle connections and shut down the busy ones too, so that a
        thread blocked reading (an event stream) returns at once."""
        first, self._first = self._first, None
        if first is not None:
            first.close()
        urllib3.connectionpool.HTTPConnectionPool.close(self)
        with self._sockets_lock:
            busy = list(self._sockets)
        for sock in busy:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed


class TLSAdapter(BoundedAdapter):
    """requests adapter: every HTTP connection is a mutual-TLS connection to address:2376."""

    def __init__(self, address: str, context: ssl.SSLContext, vm_uuid: str, where: str,
                 timeout: float, connect_timeout: float = 5.0, handshake_timeout: float = 10.0,
                 first: Optional[ssl.SSLSocket] = None,
                 max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES, pool_size: int = 4,
                 port: int = TLS_PORT) -> None:
        BoundedAdapter.__init__(self, max_response_bytes)
        self.address = address
        self.vm_uuid = vm_uuid
        self.where = where
        self._pool = _TLSPool(address, context, vm_uuid, where, timeout, connect_timeout,
                              handshake_timeout, pool_size, first, port)

    def get_connection(self, url: Any, proxies: Any = None) -> Any:
        return self._pool

    def send(self, request: Any, stream: bool = False, **kwargs: Any) -> Any:  # type: ignore[override]
        try:
            return BoundedAdapter.send(self, request, stream=stream, **kwargs)
        except errors.XSContainerError:
            raise
        except Exception as exc:
            # With TLS 1.3 a server refuses our certificate after the handshake, on
            # the first read: such failures get the same diagnosis as handshake ones.
            classified = classify(exc, self.address, self.vm_uuid, self.where)
            if classified is not None:
                raise classified from exc
            raise

    def close(self) -> None:
        BoundedAdapter.close(self)
        self._pool.close()
