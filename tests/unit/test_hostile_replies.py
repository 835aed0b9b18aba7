"""What a hostile guest can send on its Docker socket, through the real
DockerClient and BoundedAdapter (the lab's misbehaving engine, served on a
unix socket here): every reply ends in a stable code, within its bounds and
its deadline, and never as a Python exception of another kind."""

import socket
import time
from typing import Any, Iterator, List, Tuple

import pytest
import urllib3.connection
import urllib3.connectionpool

from xsclab import hostile_engine
from xscontainer import docker_api, errors, xmlenc
from xscontainer.transport import adapter, base


class _UnixConnection(urllib3.connection.HTTPConnection):
    def __init__(self, pool: "_UnixPool", timeout: float) -> None:
        urllib3.connection.HTTPConnection.__init__(self, "localhost", timeout=timeout)
        self._pool = pool

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(10)
        sock.connect(self._pool.path)
        self._pool.sockets.append(sock)
        self.sock = sock

    def putrequest(self, *args: Any, **kwargs: Any) -> None:
        base.watch(lambda: base.shutdown_socket(self.sock))
        urllib3.connection.HTTPConnection.putrequest(self, *args, **kwargs)


class _UnixPool(urllib3.connectionpool.HTTPConnectionPool):
    def __init__(self, path: str) -> None:
        urllib3.connectionpool.HTTPConnectionPool.__init__(self, "localhost", timeout=10)
        self.path = path
        self.sockets: List[socket.socket] = []

    def _new_conn(self) -> _UnixConnection:
        return _UnixConnection(self, 10)

    def close(self) -> None:
        """As the transports do: busy connections too (an event stream returns)."""
        urllib3.connectionpool.HTTPConnectionPool.close(self)
        for sock in self.sockets:
            base.shutdown_socket(sock)


class UnixAdapter(adapter.BoundedAdapter):
    """The transports' shape (their own pool, the deadline's abort) on a unix socket."""

    def __init__(self, path: str, **kwargs: Any) -> None:
        adapter.BoundedAdapter.__init__(self, **kwargs)
        self._pool = _UnixPool(path)

    def get_connection(self, url: Any, proxies: Any = None) -> Any:
        return self._pool

    def close(self) -> None:
        adapter.BoundedAdapter.close(self)
        self._pool.close()


@pytest.fixture
def engine(tmp_path) -> Iterator[Any]:
    servers = []

    def start(mode: str, **kwargs: Any) -> Tuple[hostile_engine.Engine, str]:
        eng = hostile_engine.Engine(mode, **kwargs)
        server, path = hostile_engine.serve(eng, str(tmp_path / ("%s.sock" % mode)))
        servers.append(server)
        return eng, path

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def client(path: str, **kwargs: Any) -> docker_api.DockerClient:
    return docker_api.DockerClient(UnixAdapter(path, **kwargs), "VM hostile (u)", timeout=10)


def test_a_healthy_engine_answers_everything(engine):
    _, path = engine("healthy")
    with client(path).negotiate() as docker:
        assert docker.api_version == "1.41"
        assert "<names>web</names>" in xmlenc.docker_ps(docker.ps())
        assert "<CMD>sleep 1d</CMD>" in xmlenc.docker_top(docker.top("web"))
        assert "<Pid>42</Pid>" in xmlenc.docker_inspect(docker.inspect("web"))
        docker.lifecycle("stop", "web")
        docker.ping()


def test_a_ping_not_answered_ok_is_a_malformed_reply(engine):
    eng, path = engine("ping-not-ok")
    with client(path).negotiate() as docker:
        with pytest.raises(errors.MalformedReply) as exc:
            docker.ping()
    assert eng.requests[-1] == "GET /v1.41/_ping"
    assert "when asked to answer a ping: not OK" in exc.value.message


@pytest.mark.parametrize("mode, call, words", [
    ("inspect-list", "inspect", "a JSON list instead of an object"),
    ("version-list", "negotiate", "a JSON list instead of an object"),
    ("top-titles-number", "top", "Titles is a JSON number instead of a list"),
    ("inspect-deep", "inspect", "nested too deeply"),
    ("inspect-truncated", "inspect", "ended before its announced length"),
    ("inspect-not-json", "inspect", "not JSON"),
    ("inspect-gzip-bomb", "inspect", "gzip-encoded reply"),
    ("error-list", "inspect", "sent a malformed reply"),
])
def test_garbage_is_a_malformed_reply_never_advice_about_a_stopped_docker(engine, mode, call,
                                                                           words):
    _, path = engine(mode)
    docker = client(path)
    with pytest.raises(errors.MalformedReply) as exc:
        if call == "negotiate":
            docker.negotiate()
        else:
            docker.negotiate()
            getattr(docker, call)("web")
    docker.close()
    assert exc.value.code == "XSCONTAINER_DOCKER_MALFORMED_REPLY"
    assert words in exc.value.message and "VM hostile (u)" in exc.value.message
    assert "Check that Docker is running" not in exc.value.message


def test_an_endless_reply_stops_at_the_byte_bound(engine):
    _, path = engine("inspect-endless")
    docker = client(path, max_response_bytes=4 << 20).negotiate()
    with pytest.raises(errors.ResponseTooLarge) as exc:
        docker.inspect("web")
    assert "exceeded 4194304 bytes" in exc.value.message


@pytest.mark.parametrize("mode", ["ps-empty-objects", "ps-many-values"])
def test_too_many_json_values_are_refused_before_decoding(engine, mode):
    _, path = engine(mode, size=3 * 1000 * 1000)
    docker = client(path).negotiate()
    with pytest.raises(errors.ResponseTooLarge) as exc:
        docker.ps()
    assert "more than %d JSON values" % base.DEFAULT_MAX_JSON_VALUES in exc.value.message


@pytest.mark.parametrize("mode, call", [
    ("inspect-trickle", "inspect"), ("ps-trickle", "ps"), ("headers-trickle", "inspect"),
])
def test_a_trickling_reply_ends_at_the_request_deadline(engine, mode, call):
    _, path = engine(mode, interval=0.2)
    docker = client(path, request_deadline=1.5)
    if mode != "headers-trickle":
        docker.negotiate()
    started = time.monotonic()
    with pytest.raises(errors.Timeout) as exc:
        getattr(docker, call)() if call == "ps" else getattr(docker, call)("web")
    elapsed = time.monotonic() - started
    docker.close()
    assert 1.4 < elapsed < 2.5
    assert "did not arrive within 1.5s" in exc.value.message


def test_an_outer_deadline_shortens_every_request_inside_it(engine):
    _, path = engine("inspect-trickle", interval=0.2)
    docker = client(path).negotiate()
    started = time.monotonic()
    with docker_api.deadline_at(time.monotonic() + 1.0), pytest.raises(errors.Timeout):
        docker.inspect("web")
    assert time.monotonic() - started < 1.8
    with docker_api.deadline_at(time.monotonic() - 1), pytest.raises(errors.Timeout) as exc:
        docker.ps()
    assert "No time was left" in exc.value.message
    docker.close()


def test_a_connection_is_reused_after_a_healthy_reply(engine):
    eng, path = engine("healthy")
    docker = client(path).negotiate()
    for _ in range(3):
        docker.ps()
    docker.close()
    assert len(eng.requests) == 4


def test_containers_that_are_not_containers_are_dropped(engine):
    _, path = engine("ps-not-containers")
    with client(path).negotiate() as docker:
        xml = xmlenc.docker_ps(docker.ps())
    assert xml.count("<entry>") == 1 and "<names>web</names>" in xml


def test_the_request_deadline_comes_from_the_environment(monkeypatch):
    assert adapter.BoundedAdapter().request_deadline == base.DEFAULT_REQUEST_DEADLINE == 20.0
    monkeypatch.setenv("XSCONTAINER_REQUEST_DEADLINE", "2.5")
    assert adapter.BoundedAdapter().request_deadline == 2.5
    for junk in ("", "x", "-1", "0"):
        monkeypatch.setenv("XSCONTAINER_REQUEST_DEADLINE", junk)
        assert adapter.BoundedAdapter().request_deadline == 20.0
