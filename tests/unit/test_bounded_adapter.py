"""Every non-streamed response is read with a size bound (a real HTTP server on
loopback stands in for a guest's Docker engine)."""

import http.server
import json
import socketserver
import threading
from typing import Any, Iterator, List

import pytest
import requests

from xscontainer import errors
from xscontainer.transport.adapter import BoundedAdapter


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    clients: List[Any] = []

    def do_GET(self) -> None:
        self.clients.append(self.client_address)
        size = int(self.path.rsplit("/", 1)[1])
        body = json.dumps({"Env": ["X=" + "x" * size]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the client hanging up on an oversize reply is the point of a test


@pytest.fixture
def server() -> Iterator[str]:
    httpd = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d" % httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def session(limit: int) -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    s.mount("http://", BoundedAdapter(limit))
    return s


def test_replies_within_the_bound_are_read_whole_and_the_connection_reused(server):
    s = session(1 << 20)
    del Handler.clients[:]
    for _ in range(3):
        reply = s.get(server + "/json/500000", timeout=10)
        assert len(reply.json()["Env"][0]) == 500002
    # keep-alive: each body was consumed whole, so its connection went back to the pool
    assert len(Handler.clients) == 3 and len(set(Handler.clients)) == 1


def test_a_reply_over_the_bound_is_refused_not_buffered(server):
    with pytest.raises(errors.ResponseTooLarge) as exc:
        session(1 << 20).get(server + "/json/2000000", timeout=10)
    assert exc.value.code == "XSCONTAINER_RESPONSE_TOO_LARGE"
    assert "GET /json/2000000" in exc.value.message and "1048576" in exc.value.message


def test_streamed_replies_are_left_to_the_caller(server):
    reply = session(1000).get(server + "/json/5000", stream=True, timeout=10)
    assert len(reply.raw.read()) > 5000


def test_only_transports_over_ssh_name_a_host_key():
    assert BoundedAdapter().server_key_b64 is None
