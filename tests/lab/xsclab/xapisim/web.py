"""The HTTP side of the simulator, served on both listeners as xapi serves
/var/lib/xcp/xapi and port 80/443: JSON-RPC on POST /jsonrpc, XML-RPC on a POST
to any other path (/, /RPC2, /xmlrpc, ...), both written by wire.py, and the
raw disk handlers PUT /import_raw_vdi and GET /export_raw_vdi.

Disk handlers authenticate like xapi: a request on the unix socket is trusted
(it comes from root in dom0); over TCP it needs a valid session_id (query
string or cookie) or root's Basic credentials, else 401.
"""

import base64
import http.server
import logging
import os
import shutil
import socketserver
import uuid as uuidlib
import xmlrpc.client
from typing import Dict, Optional, Tuple
from urllib.parse import parse_qsl, urlsplit
from xml.parsers.expat import ExpatError

from . import wire
from .api import Api
from .errors import ApiError
from .storage import create_vdi_file, vdi_file

log = logging.getLogger("xapisim")

MAX_RPC_BODY = 256 * 1024 * 1024
MAX_DISCARD = 64 * 1024 * 1024  # an unwanted upload up to this size is read before answering
CHUNK = 1024 * 1024


class Listener(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """An HTTP server for the simulator on TCP; UnixListener below for the socket."""

    daemon_threads = True
    allow_reuse_address = True
    over_unix_socket = False

    def __init__(self, address: Tuple[str, int], api: Api) -> None:
        self.api = api
        super().__init__(address, TcpHandler)


class UnixListener(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    over_unix_socket = True

    def __init__(self, path: str, api: Api) -> None:
        self.api = api
        super().__init__(path, Handler)


class Handler(http.server.BaseHTTPRequestHandler):
    server: "Listener | UnixListener"
    protocol_version = "HTTP/1.1"
    server_version = "xapi-simulator"
    sys_version = ""
    _unread: int  # bytes of the request body not read yet

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.command, format % args)

    @property
    def api(self) -> Api:
        return self.server.api

    @property
    def over_unix_socket(self) -> bool:
        return bool(self.server.over_unix_socket)

    # -- helpers ---------------------------------------------------------------

    def _reply(self, status: int, body: bytes = b"", headers: Optional[Dict[str, str]] = None,
               close: bool = False) -> None:
        if close:
            self._drain()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, text: str) -> None:
        self._reply(status, (text + "\n").encode(), {"Content-Type": "text/plain"}, close=True)

    def _content_length(self) -> Optional[int]:
        try:
            return int(self.headers.get("Content-Length", ""))
        except ValueError:
            return None

    def _drain(self) -> None:
        """Read a request body nobody wants: closing a socket with unread data
        sends a reset, which could destroy the answer before the client reads it."""
        left = self._unread if 0 < self._unread <= MAX_DISCARD else 0
        while left:
            chunk = self.rfile.read(min(CHUNK, left))
            if not chunk:
                break
            left -= len(chunk)
        self._unread = 0

    def parse_request(self) -> bool:
        ok = super().parse_request()
        self._unread = (self._content_length() or 0) if ok else 0
        return ok

    # -- XML-RPC and JSON-RPC --------------------------------------------------

    def do_POST(self) -> None:
        """JSON-RPC on /jsonrpc, XML-RPC on every other path (as xapi)."""
        length = self._content_length()
        if length is None or not 0 <= length <= MAX_RPC_BODY:
            self._error(411, "a Content-Length up to %d is required" % MAX_RPC_BODY)
            return
        body = self.rfile.read(length)
        self._unread = 0
        if urlsplit(self.path).path == "/jsonrpc":
            self._json_rpc(body)
        else:
            self._xml_rpc(body)

    def _xml_rpc(self, body: bytes) -> None:
        try:
            params, method = xmlrpc.client.loads(body)
        except (ExpatError, ValueError, TypeError) as e:
            self._error(400, "bad XML-RPC request: %s" % e)
            return
        if method is None:
            self._error(400, "not an XML-RPC methodCall")
            return
        self.api.stats.record_protocol("xml-rpc")
        response = self.api.dispatch(method, params, self.over_unix_socket)
        self._reply(200, wire.xmlrpc_response(response), {"Content-Type": "text/xml"})

    def _json_rpc(self, body: bytes) -> None:
        request, error = wire.parse_json_request(body)
        if request is None:
            self._reply(200, error, {"Content-Type": "application/json"})
            return
        self.api.stats.record_protocol("json-rpc")
        response = self.api.dispatch(request.method, request.params, self.over_unix_socket)
        self._reply(200, request.answer(response), {"Content-Type": "application/json"})

    # -- raw disks -------------------------------------------------------------

    def _query(self) -> Dict[str, str]:
        query = dict(parse_qsl(urlsplit(self.path).query))
        for part in self.headers.get("Cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name and name not in query:
                query[name] = value
        return query

    def _authorised(self, query: Dict[str, str]) -> bool:
        if self.over_unix_socket:
            return True
        if "session_id" in query:
            try:
                self.api.sessions.check(query["session_id"])
            except ApiError:
                return False
            return True
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
                self.api.sessions.authenticate(
                    user, password, self.api.store.lab["root_password"], False)
            except (ApiError, ValueError):
                return False
            return True
        return False

    def _disk_request(self) -> Optional[Tuple[str, int]]:
        """Check a disk request; answer it with an error and return None if bad,
        else return the VDI's file and virtual size."""
        query = self._query()
        if not self._authorised(query):
            self._reply(401, b"", {"WWW-Authenticate": 'Basic realm="xapi"'}, close=True)
            return None
        fmt = query.get("format", "raw")
        if fmt != "raw":  # xapi answers an unusable format with 404
            self._error(404, "format %r is not supported by the lab" % fmt)
            return None
        store = self.api.store
        with store.lock:
            vdi = query.get("vdi", "")
            if not store.exists("VDI", vdi):
                try:
                    vdi = store.by_uuid("VDI", vdi)
                except ApiError:
                    self._error(404, "no VDI %r" % query.get("vdi", ""))
                    return None
            path = vdi_file(self.api.config.lab_dir, store, vdi)
            size = int(store.get("VDI", vdi)["virtual_size"])
        if not os.path.exists(path):
            create_vdi_file(path, size)
        return path, size

    def _task_headers(self) -> Dict[str, str]:
        return {"task-id": "OpaqueRef:%s" % uuidlib.uuid4(),
                "Content-Type": "application/octet-stream"}

    def do_PUT(self) -> None:
        if urlsplit(self.path).path != "/import_raw_vdi":
            self._error(404, "not found")
            return
        target = self._disk_request()
        if target is None:
            return
        path, size = target
        if "Transfer-Encoding" in self.headers:  # xapi: "Cannot handle encoding"
            self._error(404, "chunked uploads are not supported")
            return
        length = self._content_length()
        if length is None or length < 0:
            self._error(411, "Content-Length required")
            return
        if length > size:
            self._error(400, "body of %d bytes exceeds the VDI's virtual size %d"
                        % (length, size))
            return
        with open(path, "r+b") as f:
            remaining = length
            while remaining:
                chunk = self.rfile.read(min(CHUNK, remaining))
                if not chunk:
                    break
                f.write(chunk)
                remaining -= len(chunk)
        self._unread = 0
        if remaining:
            self._error(400, "connection closed %d bytes short" % remaining)
            return
        self._reply(200, b"", self._task_headers(), close=True)

    def do_GET(self) -> None:
        if urlsplit(self.path).path != "/export_raw_vdi":
            self._error(404, "not found")
            return
        target = self._disk_request()
        if target is None:
            return
        path, size = target
        self.send_response(200)
        for name, value in self._task_headers().items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(size))
        self.send_header("Connection", "close")
        self.close_connection = True
        self.end_headers()
        with open(path, "rb") as f:
            shutil.copyfileobj(f, self.wfile, CHUNK)


class TcpHandler(Handler):
    # TCP_NODELAY (AF_UNIX has no such option): no Nagle delay between the header
    # and body writes of a response
    disable_nagle_algorithm = True
