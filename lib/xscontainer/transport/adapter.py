"""BoundedAdapter: the `requests` adapter every transport builds on (base.py
says what it bounds and how the deadline ends a request).

Apart from base.py so that what connecting needs (base.py, ssh.py) loads
without `requests` and urllib3: a plugin call loads those while it connects.
"""

import contextlib
import http.client
from typing import Any, Iterator, List, Optional

import requests.adapters
import urllib3.connection
import urllib3.connectionpool
import urllib3.exceptions

from xscontainer import errors
from xscontainer.transport.base import (
    DEFAULT_MAX_JSON_VALUES,
    DEFAULT_MAX_RESPONSE_BYTES,
    request_deadline_default,
    seconds_left,
    shutdown_socket,
    watch,
    watched,
)

_READ_CHUNK = 1 << 20


class _WatchedHTTPConnection(urllib3.connection.HTTPConnection):
    """Plain HTTP (a BoundedAdapter used on its own) with the deadline's abort."""

    def putrequest(self, *args: Any, **kwargs: Any) -> None:
        watch(lambda: shutdown_socket(self.sock))
        urllib3.connection.HTTPConnection.putrequest(self, *args, **kwargs)


class _WatchedHTTPPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class BoundedAdapter(requests.adapters.HTTPAdapter):
    """An HTTPAdapter that reads non-streamed bodies itself: at most
    max_response_bytes, at most max_json_values JSON values, by the request's
    deadline (request_deadline seconds, or an earlier one of `deadline_at`).

    Replies are asked for and read as they come (``Accept-Encoding: identity``;
    a compressed one is refused, so a small reply cannot expand), and decoded as
    UTF-8 whatever their headers say.
    """

    def __init__(self, max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
                 request_deadline: Optional[float] = None,
                 max_json_values: int = DEFAULT_MAX_JSON_VALUES) -> None:
        self.max_response_bytes = max_response_bytes
        self.request_deadline = (request_deadline_default() if request_deadline is None
                                 else request_deadline)
        self.max_json_values = max_json_values
        requests.adapters.HTTPAdapter.__init__(self)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        requests.adapters.HTTPAdapter.init_poolmanager(self, *args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(
            self.poolmanager.pool_classes_by_scheme, http=_WatchedHTTPPool)

    def _seconds_left(self, what: str, seconds: Optional[float] = None) -> float:
        seconds = seconds_left(self.request_deadline if seconds is None else seconds)
        if seconds <= 0:
            raise errors.Timeout("No time was left to send %s to the Docker engine." % what)
        return seconds

    @contextlib.contextmanager
    def streaming(self, what: str, seconds: Optional[float] = None) -> Iterator[None]:
        """A streamed request sent and read inside the block ends by its deadline
        (`seconds`, default the request deadline; an earlier one of `deadline_at`
        wins), as a non-streamed one does: at the deadline its connection is
        closed and the block raises Timeout. The reader bounds the size itself."""
        seconds = self._seconds_left(what, seconds)
        late = "The Docker engine's reply to %s did not arrive within %gs." % (what, seconds)
        with watched(seconds) as current:
            try:
                yield
            except Exception as exc:
                if current.fired:
                    raise errors.Timeout(late) from exc
                raise
        if current.fired:
            raise errors.Timeout(late)

    def send(self, request: Any, stream: bool = False, **kwargs: Any) -> Any:  # type: ignore[override]
        what = "%s %s" % (request.method, request.path_url.split("?")[0])
        request.headers["Accept-Encoding"] = "identity"
        if stream:
            return requests.adapters.HTTPAdapter.send(self, request, stream=True, **kwargs)
        with self.streaming(what):
            response = requests.adapters.HTTPAdapter.send(self, request, stream=True, **kwargs)
            data = self._read_body(response, what)
        values = data.count(b",") + data.count(b"{") + data.count(b"[")
        if values > self.max_json_values:
            raise errors.ResponseTooLarge(
                "The Docker engine's reply to %s holds more than %d JSON values; refusing to "
                "decode it." % (what, self.max_json_values))
        response._content = data
        response._content_consumed = True  # type: ignore[attr-defined]
        response.encoding = "utf-8"
        return response

    def _read_body(self, response: Any, what: str) -> bytes:
        try:
            encoding = str(response.headers.get("Content-Encoding", "identity")).strip().lower()
            if encoding not in ("", "identity"):
                raise errors.MalformedReply(
                    "The Docker engine answered %s with a %s-encoded reply, which Docker never "
                    "sends." % (what, encoding[:40]))
            parts: List[bytes] = []
            total = 0
            while True:
                try:
                    chunk = response.raw.read(_READ_CHUNK, decode_content=False)
                except (http.client.IncompleteRead, urllib3.exceptions.ProtocolError) as exc:
                    if "IncompleteRead" not in repr(exc):
                        raise
                    raise errors.MalformedReply(
                        "The Docker engine's reply to %s ended before its announced length."
                        % what) from exc
                if not chunk:
                    break
                total += len(chunk)
                if total > self.max_response_bytes:
                    raise errors.ResponseTooLarge(
                        "The Docker engine's reply to %s exceeded %d bytes; refusing to read "
                        "more." % (what, self.max_response_bytes))
                parts.append(chunk)
            announced = str(response.headers.get("Content-Length", "")).strip()
            if announced.isdigit() and total < int(announced):  # urllib3 1.26 does not check
                raise errors.MalformedReply(
                    "The Docker engine's reply to %s ended before its announced length." % what)
            return b"".join(parts)
        finally:
            response.close()

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
