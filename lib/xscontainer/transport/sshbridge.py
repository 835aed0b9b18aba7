"""The Docker SDK over SSH: each HTTP connection of SSHAdapter is a bridge channel
(ssh.SSHSession.open_bridge) to the guest's Docker socket.

Apart from ssh.py so that connecting loads without `requests` and urllib3.
"""

import queue
from typing import Any, Optional

import paramiko
import urllib3.connection
import urllib3.connectionpool
import urllib3.exceptions

from xscontainer import errors
from xscontainer.transport.adapter import BoundedAdapter
from xscontainer.transport.base import DEFAULT_MAX_RESPONSE_BYTES, watch
from xscontainer.transport.ssh import SSHSession, channel_usable
from xscontainer.transport.stream import ChunkedDecoder


class _BridgeConnection(urllib3.connection.HTTPConnection):
    def __init__(self, ssh: SSHSession, timeout: float) -> None:
        urllib3.connection.HTTPConnection.__init__(self, "localhost", timeout=timeout)
        self._ssh = ssh
        self._bridge_timeout = timeout

    def connect(self) -> None:
        self.sock = self._ssh.open_bridge(self._bridge_timeout)

    def putrequest(self, *args: Any, **kwargs: Any) -> None:
        # past the request's deadline, closing the channel ends a blocked read
        watch(self._abort)
        urllib3.connection.HTTPConnection.putrequest(self, *args, **kwargs)

    def _abort(self) -> None:
        chan = self.sock
        if chan is not None:
            chan.close()


class _BridgePool(urllib3.connectionpool.HTTPConnectionPool):
    def __init__(self, ssh: SSHSession, timeout: float, maxsize: int) -> None:
        urllib3.connectionpool.HTTPConnectionPool.__init__(
            self, "localhost", timeout=timeout, maxsize=maxsize
        )
        self._ssh = ssh
        self._bridge_timeout = timeout

    def _new_conn(self) -> _BridgeConnection:
        return _BridgeConnection(self._ssh, self._bridge_timeout)

    def _get_conn(self, timeout: Optional[float] = None) -> Any:
        # urllib3's own check polls fileno(), which makes paramiko create a pipe
        # per channel: channel_usable reads the channel's own flags instead.
        if self.pool is None:
            raise urllib3.exceptions.ClosedPoolError(self, "Pool is closed.")
        try:
            conn = self.pool.get(block=False)
        except queue.Empty:
            conn = None
        if conn is not None and conn.sock is not None and not channel_usable(conn.sock):
            conn.close()
            conn = None
        return conn or self._new_conn()


class ChannelBody:
    """A streamed response's body on its bridge channel, read without blocking:
    `fileno()` becomes readable when data (or the channel's end) arrives, and
    `read_available()` returns the body bytes that have arrived (at most
    READ_BYTES of the channel's at a time, so one busy stream cannot keep a
    shared reader from the others), then `ended` once the body or the
    channel ended."""

    READ_BYTES = 256 * 1024

    def __init__(self, chan: paramiko.Channel, leftover: bytes, chunked: bool) -> None:
        self._chan = chan
        self._leftover = leftover
        self._decoder = ChunkedDecoder(chunked)
        self.ended = False

    def fileno(self) -> int:
        return int(self._chan.fileno())

    @property
    def closed(self) -> bool:
        """The channel is closed (read_available() then ends the body)."""
        return bool(self._chan.closed)

    def read_available(self) -> bytes:
        data, self._leftover = self._leftover, b""
        while len(data) < self.READ_BYTES and self._chan.recv_ready():
            piece = self._chan.recv(self.READ_BYTES - len(data))
            if not piece:
                break
            data += piece
        # fileno() is readable while the bridge's stderr holds data too: read
        # (and drop) it, or the stream would look readable for ever
        dropped = 0
        while dropped < self.READ_BYTES and self._chan.recv_stderr_ready():
            dropped += len(self._chan.recv_stderr(self.READ_BYTES))
        body = self._decoder.feed(data)
        if self._decoder.finished or (not data and (self._chan.closed or
                                                    self._chan.eof_received)):
            self.ended = True
        return body


def channel_body(response: Any) -> Optional[ChannelBody]:
    """The body of a streamed response (requests) that came over a bridge
    channel, to read without blocking; None when it did not, or when the
    libraries' objects are not the expected ones (then read it as usual)."""
    raw = getattr(response, "raw", None)
    connection = getattr(raw, "connection", None)
    chan = getattr(connection, "sock", None)
    http_response = getattr(raw, "_fp", None)  # what urllib3 reads (the SDK reads it too)
    fp = getattr(http_response, "fp", None)
    if not (isinstance(connection, _BridgeConnection) and isinstance(chan, paramiko.Channel)
            and isinstance(fp, paramiko.ChannelFile) and fp.channel is chan
            and getattr(http_response, "chunk_left", None) is None):
        return None
    # paramiko's file read the headers a line at a time and may hold the
    # beginning of the body in its read buffer
    leftover = getattr(fp, "_rbuffer", None)
    if not isinstance(leftover, bytes):
        return None
    fp._rbuffer = b""  # type: ignore[attr-defined]
    return ChannelBody(chan, leftover, bool(getattr(http_response, "chunked", False)))


class SSHAdapter(BoundedAdapter):
    """requests adapter: every HTTP connection is a bridge channel of one SSH session."""

    def __init__(self, ssh: SSHSession, timeout: float,
                 max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES, pool_size: int = 4) -> None:
        BoundedAdapter.__init__(self, max_response_bytes)
        self.ssh = ssh
        self._pool = _BridgePool(ssh, timeout, pool_size)

    def get_connection(self, url: Any, proxies: Any = None) -> Any:
        return self._pool

    def failure_details(self) -> str:
        return self.ssh.bridge_failure()

    def probe(self) -> None:
        """Check that the guest still answers on this connection (SSHSession.round_trip),
        within the request deadline."""
        try:
            with self.streaming("an SSH round trip"):
                self.ssh.round_trip()
        except errors.Timeout as exc:
            raise errors.Timeout(
                "The SSH server of the VM at %s did not answer a keepalive in time; the "
                "connection is closed." % self.ssh.address) from exc

    def selectable_body(self, response: Any) -> Optional[ChannelBody]:
        """A streamed response's body to read without blocking (channel_body)."""
        return channel_body(response)

    @property
    def server_key_b64(self) -> Optional[str]:
        return self.ssh.server_key_b64

    def close(self) -> None:
        BoundedAdapter.close(self)
        self._pool.close()
