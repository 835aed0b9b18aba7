"""A misbehaving Docker engine: what a hostile guest can put on its Docker socket.

A small HTTP/1.1 server on a unix socket (or TCP for tests without a lab) that
answers like a Docker engine (API 1.41) except for the endpoint its mode
spoils. The lab runs it inside a guest in place of dockerd
(`Lab.hostile_engine`); unit tests run it in-process (`serve`).

    python3 -m xsclab.hostile_engine --socket /var/run/docker.sock --mode ps-empty-objects

Modes (MODES below; SIZE and INTERVAL from --size / --interval):

* ps-empty-objects: /containers/json is `[{},{},...]` of SIZE bytes
* top-empty-rows: top's Processes is `[[],[],...]` of SIZE bytes
* inspect-trickle, ps-trickle, version-trickle: that reply, one byte every INTERVAL s
* headers-trickle: every reply's status line and headers, one byte every INTERVAL s
* inspect-list: inspect answers `[1,2,3]`; version-list: /version answers a list
* top-titles-number: top's Titles is `5`
* inspect-deep: inspect is JSON nested 100,000 deep
* inspect-truncated: inspect announces more bytes than it sends, then hangs up
* inspect-not-json: inspect answers text
* inspect-endless: inspect never ends (chunked, as fast as it can be read)
* inspect-huge-string: inspect holds one string of SIZE bytes of '<' (escaping
  grows it fivefold)
* inspect-gzip-bomb: a small gzip reply that expands to 1 GiB
* ps-many-values: /containers/json is `[0,0,...]` of SIZE bytes
* ps-not-containers: /containers/json mixes containers with numbers, strings,
  lists and objects without an id
* error-list: every container request fails with HTTP 500 and a JSON list body
* ping-not-ok: /_ping answers a web page instead of OK
* healthy: a well-behaved engine with a few containers
* podman: a well-behaved engine that answers as Podman 5's compatibility API
  does where it differs from Docker: Server `Libpod/...`, a Podman component in
  /version, no health in the container list (its `health` filter and inspect's
  State.Health say it), HTTP 500 "container state improper" for pausing a paused
  container (Docker, mode healthy: 409; 500 "is not paused" for unpausing a
  running one). Container `web` has a health check
  (healthy), `plain` none.

Every mode refuses an API version above its own as Docker does (HTTP 400
"client version ... is too new").
"""

import argparse
import gzip
import json
import os
import socket
import socketserver
import sys
import threading
import time
import urllib.parse
from typing import Any, Dict, List, Optional, Tuple

API = "1.41"
VERSION = {
    "Version": "20.10.24", "ApiVersion": API, "MinAPIVersion": "1.12", "Os": "linux",
    "Arch": "amd64", "KernelVersion": "6.1.0", "GoVersion": "go1.19",
    "Components": [{"Name": "Engine", "Version": "20.10.24"}],
}
INFO = {"ID": "HOSTILE", "Containers": 1, "ContainersRunning": 1, "Images": 1,
        "ServerVersion": "20.10.24", "Name": "hostile"}
CONTAINER_ID = "a" * 64
CONTAINER = {
    "Id": CONTAINER_ID, "Names": ["/web"], "Image": "busybox", "ImageID": "sha256:" + "b" * 64,
    "Command": "sleep 1d", "Created": 1700000000, "Ports": [], "Labels": {"app": "web"},
    "State": "running", "Status": "Up 5 minutes",
}
INSPECT = {"Id": CONTAINER_ID, "Name": "/web", "State": {"Status": "running", "Pid": 42},
           "Config": {"Image": "busybox", "Env": ["PATH=/bin"]}}
TOP = {"Titles": ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"],
       "Processes": [["root", "42", "1", "0", "10:00", "?", "00:00:00", "sleep 1d"]]}

PODMAN_VERSION = {
    "Version": "5.4.2", "ApiVersion": API, "MinAPIVersion": "1.24", "Os": "linux",
    "Arch": "amd64", "KernelVersion": "6.1.0", "GoVersion": "go1.24",
    "Components": [{"Name": "Podman Engine", "Version": "5.4.2"}],
}
PLAIN_ID = "c" * 64
PLAIN = {
    "Id": PLAIN_ID, "Names": ["/plain"], "Image": "busybox", "ImageID": "sha256:" + "b" * 64,
    "Command": "sleep 1d", "Created": 1700000000, "Ports": [], "Labels": {},
    "State": "running", "Status": "Up 5 minutes",
}
HEALTH = {"web": "healthy"}  # podman mode: the containers with a health check

MODES = (
    "healthy", "podman", "ps-empty-objects", "top-empty-rows", "inspect-trickle", "ps-trickle",
    "version-trickle", "headers-trickle", "inspect-list", "version-list", "top-titles-number",
    "inspect-deep", "inspect-truncated", "inspect-not-json", "inspect-endless",
    "inspect-huge-string", "inspect-gzip-bomb", "ps-many-values", "ps-not-containers",
    "error-list", "ping-not-ok",
)
MAX_REQUEST = 64 * 1024


def _repeat(unit: bytes, size: int) -> bytes:
    count = max(1, (size - 2) // (len(unit) + 1))
    return b"[" + b",".join([unit] * count) + b"]"


def _endpoint(path: str) -> str:
    """'ps', 'inspect', 'top', 'version', 'info', 'events', 'ping', 'lifecycle' or ''."""
    parts = path.split("?", maxsplit=1)[0].strip("/").split("/")
    if parts and parts[0].startswith("v1."):
        parts = parts[1:]
    if parts == ["_ping"]:
        return "ping"
    if parts in (["version"], ["info"], ["events"]):
        return parts[0]
    if parts == ["containers", "json"]:
        return "ps"
    if len(parts) == 3 and parts[0] == "containers":
        return {"json": "inspect", "top": "top"}.get(parts[2], "lifecycle")
    return ""


class Engine:
    """What to answer: `reply(method, path)` -> (status, headers, body or a
    generator of body pieces, trickle interval)."""

    def __init__(self, mode: str = "healthy", size: int = 3 * 1000 * 1000,
                 interval: float = 10.0) -> None:
        if mode not in MODES:
            raise ValueError("unknown mode %r (modes: %s)" % (mode, ", ".join(MODES)))
        self.mode = mode
        self.size = size
        self.interval = interval
        self.requests: List[str] = []
        self.paused: set = set()
        self._lock = threading.Lock()
        if mode == "inspect-gzip-bomb":
            _gzip_bomb()  # made before serving: its 5 s are not the client's

    def reply(self, method: str, path: str) -> Tuple[int, Dict[str, str], Any, float]:
        with self._lock:
            self.requests.append("%s %s" % (method, path))
        endpoint = _endpoint(path)
        mode = self.mode
        trickle = 0.0
        if mode == "headers-trickle":
            trickle = -self.interval  # negative: the headers trickle
        if mode == "error-list" and endpoint in ("inspect", "top", "ps", "lifecycle"):
            return 500, {}, b"[1,2,3]", trickle
        if endpoint == "ping" and mode == "ping-not-ok":
            return 200, {"Content-Type": "text/html"}, b"<html>It works!</html>", trickle
        if endpoint == "ping":
            return 200, {"Content-Type": "text/plain"}, b"OK", trickle
        if endpoint == "events":
            return 200, {}, _forever(), trickle
        podman = mode == "podman"
        headers: Dict[str, str] = {"Server": "Libpod/5.4.2 (linux)"} if podman else {}
        asked = path.split("?", maxsplit=1)[0].strip("/").split("/")[0]
        if asked.startswith("v1.") and _api(asked[1:]) > _api(API):
            return 400, headers, json.dumps({
                "message": "client version %s is too new. Maximum supported API version is %s"
                % (asked[1:], API)}).encode(), trickle
        if endpoint == "lifecycle":
            return (*self._lifecycle(path, headers), trickle)
        if endpoint == "version":
            if mode == "version-list":
                return 200, {}, json.dumps([VERSION]).encode(), trickle
            return 200, headers, json.dumps(PODMAN_VERSION if podman else VERSION).encode(), (
                self.interval if mode == "version-trickle" else trickle)
        if endpoint == "info":
            return 200, {}, json.dumps(INFO).encode(), trickle
        if endpoint == "ps":
            if mode == "ps-empty-objects":
                return 200, {}, _repeat(b"{}", self.size), trickle
            if mode == "ps-many-values":
                return 200, {}, _repeat(b"0", self.size), trickle
            if mode == "ps-not-containers":
                junk = [1, "x", [], {}, {"Id": 5}, {"Names": ["/noid"]}, None, CONTAINER]
                return 200, {}, json.dumps(junk).encode(), trickle
            if podman:
                return 200, headers, json.dumps(self._podman_ps(path)).encode(), trickle
            body = json.dumps([CONTAINER]).encode()
            return 200, {}, body, self.interval if mode == "ps-trickle" else trickle
        if endpoint == "top":
            if mode == "top-empty-rows":
                rows = _repeat(b"[]", self.size - 40)
                return 200, {}, b'{"Titles":["PID","CMD"],"Processes":' + rows + b"}", trickle
            if mode == "top-titles-number":
                return 200, {}, b'{"Titles":5,"Processes":[["1","sh"]]}', trickle
            return 200, {}, json.dumps(TOP).encode(), trickle
        if endpoint == "inspect":
            if mode == "inspect-list":
                return 200, {}, b"[1,2,3]", trickle
            if mode == "inspect-deep":
                return 200, {}, b"[" * 100000 + b"]" * 100000, trickle
            if mode == "inspect-truncated":
                body = json.dumps(INSPECT).encode()
                return 200, {"Content-Length": str(len(body) + 100)}, body[: len(body) // 2], -0.0
            if mode == "inspect-not-json":
                return 200, {}, b"<html>this is not Docker</html>", trickle
            if mode == "inspect-endless":
                return 200, {}, _endless(), trickle
            if mode == "inspect-huge-string":
                return 200, {}, (b'{"Id":"' + CONTAINER_ID.encode() + b'","Config":{"Env":["'
                                 + b"<" * self.size + b'"]}}'), trickle
            if mode == "inspect-gzip-bomb":
                return 200, {"Content-Encoding": "gzip"}, _gzip_bomb(), trickle
            inspect = dict(INSPECT)
            if path.split("?", maxsplit=1)[0].strip("/").split("/")[-2] in self.paused:
                inspect["State"] = {"Status": "paused", "Paused": True, "Pid": 42}
            body = json.dumps(inspect).encode()
            return 200, headers, body, self.interval if mode == "inspect-trickle" else trickle
        return 404, {}, b'{"message":"page not found"}', trickle

    def _lifecycle(self, path: str, headers: Dict[str, str]) -> Tuple[int, Dict[str, str], bytes]:
        parts = path.split("?", maxsplit=1)[0].strip("/").split("/")
        name, action = parts[-2], parts[-1]
        with self._lock:
            conflict = (action == "pause") == (name in self.paused) and action in (
                "pause", "unpause")
            if not conflict and action == "pause":
                self.paused.add(name)
            elif not conflict and action == "unpause":
                self.paused.discard(name)
        if not conflict:
            return 204, headers, b""
        if self.mode == "podman":
            return 500, headers, json.dumps({
                "cause": "container state improper",
                "message": "\"%s\" is %s: container state improper" % (
                    name, "paused" if action == "pause" else "running"),
                "response": 500}).encode()
        if action == "pause":
            return 409, headers, json.dumps({"message": "Container %s is already paused"
                                             % name}).encode()
        # Docker's own error for unpausing a running container is a 500
        return 500, headers, json.dumps({"message": "Container %s is not paused"
                                         % name}).encode()

    def _podman_ps(self, path: str) -> List[Dict[str, Any]]:
        """The list as Podman sends it: no health in Status; the health filter works."""
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
        filters = json.loads(query["filters"][0]) if "filters" in query else {}
        wanted = filters.get("health")
        found: List[Dict[str, Any]] = []
        for container, name in ((CONTAINER, "web"), (PLAIN, "plain")):
            entry = dict(container)
            if name in self.paused:
                entry.update(State="paused", Status="Paused")
            if wanted is not None and (entry["State"] != "running"
                                       or HEALTH.get(name, "none") not in wanted):
                continue
            if wanted is None and "all=" not in path and entry["State"] != "running":
                continue
            found.append(entry)
        return found


def _api(version: str) -> Tuple[int, ...]:
    try:
        return tuple(int(p) for p in version.split("."))
    except ValueError:
        return (0,)


def _forever() -> Any:
    while True:
        time.sleep(3600)
        yield b""


def _endless() -> Any:
    yield b'{"Id":"' + CONTAINER_ID.encode() + b'","Junk":"'
    block = b"x" * 65536
    while True:
        yield block


_BOMB: Optional[bytes] = None


def _gzip_bomb() -> bytes:
    global _BOMB
    if _BOMB is None:
        _BOMB = gzip.compress(b" " * (1 << 30), compresslevel=9)
    return _BOMB


class _Handler(socketserver.BaseRequestHandler):
    server: "_Server"

    def handle(self) -> None:
        sock: socket.socket = self.request
        pending = b""
        try:
            while True:
                while b"\r\n\r\n" not in pending:
                    data = sock.recv(65536)
                    if not data:
                        return
                    pending += data
                    if len(pending) > MAX_REQUEST:
                        return
                head, _, pending = pending.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path = lines[0].split(" ")[:2]
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value.strip() or 0)
                while len(pending) < length:
                    data = sock.recv(65536)
                    if not data:
                        return
                    pending += data
                pending = pending[length:]
                if not self._answer(sock, *self.server.engine.reply(method, path)):
                    return
        except (OSError, ValueError):
            return

    def _answer(self, sock: socket.socket, status: int, headers: Dict[str, str], body: Any,
                trickle: float) -> bool:
        """Send one reply; False when the connection must end after it."""
        reasons = {200: "OK", 204: "No Content", 400: "Bad Request", 404: "Not Found",
                   409: "Conflict", 500: "Server Error"}
        head = ["HTTP/1.1 %d %s" % (status, reasons.get(status, "X"))]
        fields = {"Content-Type": "application/json", "Api-Version": API,
                  "Server": "Docker/20.10.24 (linux)"}
        fields.update(headers)
        streamed = not isinstance(body, bytes)
        if streamed:
            fields["Transfer-Encoding"] = "chunked"
        elif "Content-Length" not in fields:
            fields["Content-Length"] = str(len(body))
        head += ["%s: %s" % item for item in fields.items()]
        head_bytes = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        if trickle < 0:
            _trickle(sock, head_bytes, -trickle)
        else:
            sock.sendall(head_bytes)
        if streamed:
            for piece in body:
                if piece:
                    sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            return False
        if trickle > 0:
            _trickle(sock, body, trickle)
        else:
            sock.sendall(body)
        return "Content-Length" not in headers  # a lying length: hang up


def _trickle(sock: socket.socket, data: bytes, interval: float) -> None:
    for i in range(len(data)):
        sock.sendall(data[i:i + 1])
        time.sleep(interval)


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    engine: Engine


class _TCPServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True
    engine: Engine


def serve(engine: Engine, path: Optional[str] = None) -> Tuple[Any, str]:
    """Serve `engine` on a unix socket `path` (or TCP on loopback when None) in
    a thread; returns (server, address). `server.shutdown()` stops it."""
    server: Any
    if path is None:
        server = _TCPServer(("127.0.0.1", 0), _Handler)
        address = "127.0.0.1:%d" % server.server_address[1]
    else:
        if os.path.lexists(path):
            os.unlink(path)
        server = _Server(path, _Handler)
        address = path
    server.engine = engine
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, address


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="hostile_engine", description=__doc__.split("\n")[0])
    p.add_argument("--socket", required=True)
    p.add_argument("--mode", choices=MODES, required=True)
    p.add_argument("--size", type=int, default=3 * 1000 * 1000)
    p.add_argument("--interval", type=float, default=10.0)
    p.add_argument("--group", default="docker", help="group that may use the socket")
    args = p.parse_args(argv)
    engine = Engine(args.mode, args.size, args.interval)
    server, address = serve(engine, args.socket)
    try:
        import grp  # noqa: PLC0415

        os.chown(address, 0, grp.getgrnam(args.group).gr_gid)
    except (KeyError, OSError):
        pass
    os.chmod(address, 0o660)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
