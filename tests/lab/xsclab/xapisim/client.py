"""A small stdlib XenAPI client for lab tools (`xe`) and an XML-RPC transport
over a unix socket, which also plugs into the real XenAPI.Session:

    XenAPI.Session("http://xapi/", transport=UnixTransport(path))
"""

import http.client
import socket
import xmlrpc.client
from typing import Any, List, Optional


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: Optional[float] = None) -> None:
        super().__init__("localhost")
        self.socket_path = path
        self.socket_timeout = timeout

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.socket_timeout)
        sock.connect(self.socket_path)
        self.sock = sock


class UnixTransport(xmlrpc.client.Transport):
    """HTTP/1.1 keep-alive XML-RPC over an AF_UNIX socket at `path`."""

    def __init__(self, path: str, timeout: Optional[float] = None) -> None:
        super().__init__()
        self.socket_path = path
        self.socket_timeout = timeout

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        cached = self._connection
        if cached[1] is not None and host == cached[0]:
            return cached[1]
        connection = UnixConnection(self.socket_path, self.socket_timeout)
        self._connection = host, connection
        return connection


class Failure(Exception):
    """An API failure: details = [code, params...] (as XenAPI.Failure)."""

    def __init__(self, details: List[str]) -> None:
        super().__init__(details)
        self.details = details


def unwrap(response: Any) -> Any:
    if not isinstance(response, dict) or "Status" not in response:
        raise Failure(["PROTOCOL_ERROR", repr(response)])
    if response["Status"] == "Success":
        return response["Value"]
    raise Failure(list(response.get("ErrorDescription") or ["UNKNOWN_ERROR"]))


class Client:
    """Logged-in XenAPI calls: Client(path).call("VM.get_all") (session prepended)."""

    def __init__(self, socket_path: Optional[str] = None, url: Optional[str] = None,
                 timeout: Optional[float] = None) -> None:
        if socket_path:
            self._proxy = xmlrpc.client.ServerProxy(
                "http://xapi/", transport=UnixTransport(socket_path, timeout), allow_none=True)
        elif url:
            self._proxy = xmlrpc.client.ServerProxy(url, allow_none=True)
        else:
            raise ValueError("a socket path or a URL is needed")
        self.session = ""

    def login(self, user: str = "root", password: str = "") -> "Client":
        method = self._proxy.session.login_with_password
        self.session = unwrap(method(user, password, "1.0", "xapisim-client"))
        return self

    def call(self, method: str, *args: Any) -> Any:
        return unwrap(getattr(self._proxy, method)(self.session, *args))

    def logout(self) -> None:
        if self.session:
            self.call("session.logout")
            self.session = ""

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.logout()
        self._proxy("close")()
