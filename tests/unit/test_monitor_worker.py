"""One VM's worker against a fake engine and a recording publisher (short real timings)."""

import json
import queue
import socket
import threading
import time
from typing import Any, Dict, List, Optional

import pytest

from xsclab import hostile_engine
from xscontainer import errors
from xscontainer.docker_api import MAX_EVENT_BYTES, DockerClient, EventStream
from xscontainer.monitor import worker as worker_mod
from xscontainer.monitor.eventreader import EventReader
from xscontainer.monitor.options import Settings
from xscontainer.monitor.ticker import Ticker
from xscontainer.monitor.worker import VMWorker

from .test_hostile_replies import UnixAdapter

REF = "OpaqueRef:vm"
KEY = "AAAAB3NzaC1yc2EAAAADAQABAAABAQC"


def record(**other_config: str) -> Dict[str, Any]:
    config = {"xscontainer-monitor": "True", "xscontainer-username": "core"}
    config.update(other_config)
    return {"uuid": "u-1", "name_label": "web", "other_config": config}


class FakeAdapter:
    server_key_b64 = KEY


class FakeDocker:
    """A DockerClient stand-in: ps() lists `containers`; events() yields what is queued."""

    def __init__(self, engine: "Engine") -> None:
        self.engine = engine
        self.adapter = FakeAdapter()
        self.closed = threading.Event()
        self.where = "VM web (u-1)"

    def ps(self) -> List[Dict[str, Any]]:
        self.engine.calls.append("ps")
        if self.engine.fail_ps:
            raise self.engine.fail_ps
        return [{"Id": c, "Names": ["/" + c], "Status": "Up 1 second"}
                for c in sorted(self.engine.containers)]

    def info(self) -> Dict[str, Any]:
        self.engine.calls.append("info")
        return {"Containers": len(self.engine.containers), "SystemTime": time.time()}

    def version(self) -> Dict[str, Any]:
        self.engine.calls.append("version")
        return {"Version": "20.10", "ApiVersion": "1.41"}

    def ping(self) -> None:
        self.engine.calls.append("ping")

    def probe_transport(self) -> None:
        self.engine.calls.append("probe")

    def event_stream(self, filters: Optional[Dict[str, Any]] = None) -> Optional[EventStream]:
        return None  # read by blocking in events(), as over TLS

    def events(self, filters: Optional[Dict[str, Any]] = None) -> Any:
        while not self.closed.is_set():
            try:
                item = self.engine.events.get(timeout=0.01)
            except queue.Empty:
                continue
            if item is None:
                return  # the stream ends (Docker restarted)
            yield item

    def close(self) -> None:
        self.closed.set()


class SocketBody:
    """transport.sshbridge.ChannelBody's part on one end of a socketpair: readable when
    bytes (or the end) arrived, read without blocking; shut down (not closed) by
    the client's close, as closing a channel sets its pipe."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.setblocking(False)
        self.ended = False

    def fileno(self) -> int:
        return self.sock.fileno()

    @property
    def closed(self) -> bool:
        return self.sock.fileno() < 0

    def read_available(self) -> bytes:
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return b""
        except OSError:
            data = b""
        if not data:
            self.ended = True
        return data


class StreamDocker(FakeDocker):
    """A client whose event stream goes to the shared reader: a real EventStream
    on a socketpair that the engine's events are written to as JSON lines."""

    def __init__(self, engine: "Engine") -> None:
        FakeDocker.__init__(self, engine)
        self.reading: Optional[socket.socket] = None

    def event_stream(self, filters: Optional[Dict[str, Any]] = None) -> EventStream:
        reading, writing = socket.socketpair()
        self.reading = reading
        if self.engine.feed:
            threading.Thread(target=self._feed, args=(writing,), daemon=True).start()
        else:
            self.engine.writers.append(writing)
        return EventStream(SocketBody(reading), reading, self.where, MAX_EVENT_BYTES)

    def _feed(self, writing: socket.socket) -> None:
        with writing:
            for item in self.events():  # until the stream ends or the client closes
                writing.sendall(json.dumps(item).encode() + b"\n")

    def close(self) -> None:
        FakeDocker.close(self)
        if self.reading is not None:
            try:
                self.reading.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Engine:
    def __init__(self, shared: bool = False, feed: bool = True) -> None:
        self.shared = shared  # clients give their stream to the shared reader
        self.feed = feed  # a thread feeds events (else the test writes to `writers`)
        self.writers: List[socket.socket] = []
        self.containers: set = set()
        self.events: "queue.Queue[Optional[Dict[str, Any]]]" = queue.Queue()
        self.calls: List[str] = []
        self.connects = 0
        self.fail_connect: Optional[BaseException] = None
        self.fail_ps: Optional[BaseException] = None
        self.clients: List[FakeDocker] = []

    def connect(self, guest: Any) -> FakeDocker:
        if self.fail_connect is not None:
            raise self.fail_connect
        self.connects += 1
        client = StreamDocker(self) if self.shared else FakeDocker(self)
        self.clients.append(client)
        return client

    def start(self, name: str) -> None:
        self.containers.add(name)
        for action in ("create", "start"):
            self.events.put({"Type": "container", "Action": action, "Actor": {"ID": name}})


class Recorder:
    """The Publisher methods a worker calls."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.values: Dict[str, Optional[str]] = {}
        self.sets: List[str] = []
        self.failures: List[str] = []
        self.clears = 0
        self.blanks = 0

    def set(self, ref: str, key: str, value: str) -> None:
        with self.lock:
            self.values[key] = value
            self.sets.append(key)

    def desired(self, ref: str, key: str) -> Optional[str]:
        with self.lock:
            return self.values.get(key)

    def set_failure(self, ref: str, body: str) -> None:
        with self.lock:
            self.failures.append(body)

    def clear_failure(self, ref: str) -> None:
        with self.lock:
            self.clears += 1

    def blank(self, ref: str) -> None:
        with self.lock:
            self.blanks += 1
            self.values = {k: None for k in self.values}

    def writes_for(self, ref: str) -> int:
        return 0


def wait_for(check: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail("timed out")
        time.sleep(0.01)


@pytest.fixture(params=["blocking", "shared reader"])
def engine(request) -> Engine:
    """Both ways a worker reads its event stream: blocking in its own thread (the
    TLS transport), or through the shared EventReader (SSH)."""
    return Engine(shared=request.param == "shared reader")


@pytest.fixture
def publisher() -> Recorder:
    return Recorder()


@pytest.fixture
def make(engine, publisher, monkeypatch):
    monkeypatch.setattr(worker_mod, "CATCH_UP", 60.0)
    monkeypatch.setattr(worker_mod, "INFO_QUIET", 0.05)
    monkeypatch.setattr(worker_mod, "INFO_MAX_DELAY", 0.2)
    monkeypatch.setattr(worker_mod, "diagnose", lambda guest: type(
        "Report", (), {"text": lambda self: "diagnosis: FAIL"})())
    workers = []

    def start(rec: Optional[Dict[str, Any]] = None, **settings: Any) -> VMWorker:
        options = dict(resync=60.0, probe=60.0, grace=0.3, quiet=0.05, max_delay=0.2,
                       backoff_first=0.05, backoff_cap=0.1)
        options.update(settings)
        w = VMWorker(REF, rec or record(), None, publisher,  # type: ignore[arg-type]
                     Settings(**options), connect=engine.connect)
        w.start()
        workers.append(w)
        return w

    yield start
    for w in workers:
        w.stop()
        assert w.join(5)


def test_publishes_all_three_then_follows_events_coalesced(make, engine, publisher):
    w = make()
    wait_for(lambda: w.status()["state"] == "connected")
    assert set(publisher.sets) == {"docker_info", "docker_version", "docker_ps"}
    # once the connection proved stable, a message an earlier run may have left goes
    wait_for(lambda: publisher.clears == 1)
    ps_before = engine.calls.count("ps")
    for n in range(50):
        engine.start("c%d" % n)
    wait_for(lambda: publisher.values["docker_ps"].count("<entry>") == 50)
    time.sleep(0.3)
    assert engine.calls.count("ps") - ps_before <= 5  # 100 events, a few refreshes
    assert w.status()["events"] == 100


def container_event(action: str, name: str) -> Dict[str, Any]:
    return {"Type": "container", "Action": action, "Actor": {"ID": name}}


def test_a_burst_waits_for_its_last_created_container_to_start(make, engine, publisher):
    w = make(min_interval=0.0, busy_delay=60.0)
    wait_for(lambda: w.status()["state"] == "connected")
    ps_before = engine.calls.count("ps")
    engine.containers |= {"a", "b"}
    for event in (container_event("create", "a"), container_event("create", "b"),
                  container_event("attach", "b"),  # changes nothing, completes nothing
                  container_event("start", "a")):
        engine.events.put(event)
    wait_for(lambda: w.status()["events"] == 4)
    time.sleep(0.6)  # past quiet and max_delay: "b" is still to start
    assert engine.calls.count("ps") == ps_before
    engine.events.put(container_event("start", "b"))
    wait_for(lambda: engine.calls.count("ps") == ps_before + 1)
    assert publisher.values["docker_ps"].count("<entry>") == 2


def test_a_new_connection_forgets_the_changes_under_way_of_the_old(make, engine, publisher):
    w = make(min_interval=0.0, busy_delay=60.0)
    wait_for(lambda: w.status()["state"] == "connected")
    engine.events.put(container_event("create", "never-started"))
    wait_for(lambda: w.status()["events"] == 1)
    engine.events.put(None)  # the stream ends: a new connection
    wait_for(lambda: engine.connects == 2 and w.status()["state"] == "connected")
    ps_before = engine.calls.count("ps")
    engine.start("web")
    # published quiet after its start, not busy_delay after
    wait_for(lambda: engine.calls.count("ps") > ps_before, timeout=10)


def test_a_newly_pinned_key_does_not_reconnect_but_a_changed_one_does(make, engine):
    w = make()
    wait_for(lambda: w.status()["state"] == "connected")
    w.update(record(**{"xscontainer-sshhostkey": KEY}))  # our own pin arriving
    time.sleep(0.2)
    assert engine.connects == 1
    w.update(record(**{"xscontainer-sshhostkey": KEY, "xscontainer-username": "admin"}))
    wait_for(lambda: engine.connects == 2 and w.status()["state"] == "connected")
    assert engine.clients[0].closed.is_set()


def test_the_stream_ending_reconnects(make, engine):
    w = make()
    wait_for(lambda: w.status()["state"] == "connected")
    engine.events.put(None)
    wait_for(lambda: engine.connects == 2 and w.status()["state"] == "connected")
    assert w.status()["failures"] == 1


def test_failure_posts_one_message_after_grace_then_recovers(make, engine, publisher):
    engine.fail_connect = errors.SSHError("Connection refused")
    w = make()
    wait_for(lambda: publisher.failures, timeout=5)
    assert publisher.failures == ["diagnosis: FAIL"] and publisher.blanks == 1
    time.sleep(0.5)
    assert len(publisher.failures) == 1  # retries go on, the message is not repeated
    assert w.status()["failures"] >= 3
    engine.fail_connect = None
    wait_for(lambda: w.status()["state"] == "connected")
    assert publisher.values["docker_ps"] is not None  # republished after the blank
    wait_for(lambda: publisher.clears == 1)
    assert w.status()["failure_posted"] is False


def test_a_guest_that_fails_right_after_each_connect_still_gets_its_message(
        make, engine, publisher):
    w = make()
    wait_for(lambda: w.status()["state"] == "connected")
    deadline = time.monotonic() + 3.0
    while not publisher.failures and time.monotonic() < deadline:
        engine.events.put(None)  # Docker crashes again and again
        time.sleep(0.02)
    assert publisher.failures == ["diagnosis: FAIL"]
    assert w.status()["failures"] >= 3


def test_xapi_failures_do_not_start_the_grace_period(make, engine, publisher):
    engine.fail_connect = errors.XAPIError("XAPI is down", "OSError")
    w = make()
    time.sleep(0.8)
    assert w.status()["failures"] >= 3 and publisher.failures == []


def test_an_unexpected_error_is_logged_and_retried(make, engine, publisher, caplog):
    engine.fail_ps = KeyError("a bug")
    w = make()
    wait_for(lambda: w.status()["failures"] >= 2)
    assert w.is_alive()
    assert "failed unexpectedly" in caplog.text and "KeyError" in caplog.text
    engine.fail_ps = None
    wait_for(lambda: w.status()["state"] == "connected")


def test_stop_closes_the_connection_and_ends_its_thread(make, engine):
    w = make()
    wait_for(lambda: w.status()["state"] == "connected")
    before = threading.active_count()
    w.stop()
    assert w.join(2)
    assert engine.clients[-1].closed.is_set()
    # blocking: the worker's own thread ended; shared reader: the fake's feeder
    # (the worker's thread had ended once connected, and the one that finished
    # the connection ended too)
    wait_for(lambda: threading.active_count() <= before - 1)


def test_a_blocking_worker_costs_one_thread_however_many_there_are(publisher):
    engine = Engine()  # blocking in its stream (the shared reader: the next test)
    ticker = Ticker(pool_threads=2)
    settings = Settings(resync=60.0, probe=60.0, grace=5.0, quiet=0.05, max_delay=0.2)
    workers = [VMWorker("OpaqueRef:vm%d" % i, record(), None, publisher,  # type: ignore[arg-type]
                        settings, connect=engine.connect, ticker=ticker) for i in range(20)]
    before = threading.active_count()
    for w in workers:
        w.start()
    try:
        wait_for(lambda: all(w.status()["state"] == "connected" for w in workers))
        # a thread per worker, the ticker's scheduler and at most its 2 pool threads
        assert threading.active_count() - before <= 20 + 1 + 2
        # the catch-up refresh CATCH_UP after connecting: every worker's timer ran,
        # on the ticker's two pool threads
        wait_for(lambda: all(w.status()["ps_refreshes"] >= 2 for w in workers),
                 timeout=worker_mod.CATCH_UP + 5)
    finally:
        for w in workers:
            w.stop()
        for w in workers:
            assert w.join(5)


def test_probe_checks_a_quiet_connection(make, engine):
    w = make(probe=0.1)
    wait_for(lambda: w.status()["state"] == "connected")
    wait_for(lambda: w.status()["probes"] >= 3)
    wait_for(lambda: engine.calls.count("ping") >= 2)
    # most probes are a round trip on the connection, every third pings Docker;
    # none re-reads (nor re-publishes) docker_version
    probes, pings = engine.calls.count("probe"), engine.calls.count("ping")
    assert probes >= 2 * pings - 1 and pings >= 2
    assert engine.calls.count("version") == 1


def test_only_pinned():
    old = (("xscontainer-username", "core"),)
    assert worker_mod._only_pinned(old, (*old, ("xscontainer-sshhostkey", "K")))
    assert not worker_mod._only_pinned(old, (("xscontainer-username", "x"),
                                             ("xscontainer-sshhostkey", "K")))
    pinned = (("xscontainer-sshhostkey", "K"),)
    assert not worker_mod._only_pinned(pinned, (("xscontainer-sshhostkey", "L"),))


def test_a_trickling_guest_fails_at_the_connect_deadline_counted_from_the_attempt(
        make, publisher, tmp_path, monkeypatch):
    """A guest whose /containers/json trickles a byte every 0.2 s: the attempt
    ends at the connect deadline as a failure, and since it began failing at the
    attempt's start, the message is posted at once (grace 0.3 s < deadline)."""
    server, path = hostile_engine.serve(hostile_engine.Engine("ps-trickle", interval=0.2),
                                        str(tmp_path / "docker.sock"))
    monkeypatch.setenv(worker_mod.CONNECT_DEADLINE_ENV, "1.5")
    clients: List[DockerClient] = []

    def connect(guest: Any) -> DockerClient:
        client = DockerClient(UnixAdapter(path), "VM web (u-1)", timeout=10).negotiate()
        clients.append(client)
        return client

    try:
        started = time.monotonic()
        w = VMWorker(REF, record(), None, publisher,  # type: ignore[arg-type]
                     Settings(grace=0.3, backoff_first=30.0, backoff_cap=30.0),
                     connect=connect)
        assert w.connect_deadline == 1.5
        w.start()
        wait_for(lambda: publisher.failures, timeout=5)
        elapsed = time.monotonic() - started
        assert 1.4 < elapsed < 2.5
        status = w.status()
        assert status["failures"] == 1 and status["state"] == "failing"
        assert "did not arrive within" in status["last_error"]
        assert "docker_ps" not in publisher.sets
        w.stop()
        assert w.join(5)
    finally:
        server.shutdown()
        server.server_close()


def test_on_the_shared_reader_a_connected_vm_costs_no_thread_of_ours(publisher):
    engine = Engine(shared=True, feed=False)
    ticker, reader = Ticker(pool_threads=2), EventReader()
    settings = Settings(resync=60.0, probe=60.0, grace=5.0, quiet=0.05, max_delay=0.2)
    workers = [VMWorker("OpaqueRef:vm%d" % i, record(), None, publisher,  # type: ignore[arg-type]
                        settings, connect=engine.connect, ticker=ticker, reader=reader)
               for i in range(20)]
    before = threading.active_count()
    for w in workers:
        w.start()
    try:
        wait_for(lambda: all(w.status()["state"] == "connected" for w in workers)
                 and reader.streams == 20)
        wait_for(lambda: threading.active_count() - before <= 1 + 1 + 2)
        # the reader, the ticker's scheduler and its 2 pool threads; no worker thread
        assert all(w.is_alive() for w in workers)
        # events of every stream still arrive, through the one reader thread
        for n, writing in enumerate(engine.writers):
            writing.sendall(json.dumps({"Type": "container", "Action": "start",
                                        "Actor": {"ID": "c%d" % n}}).encode() + b"\n")
        wait_for(lambda: all(w.status()["events"] == 1 for w in workers))
        # a stream that ends starts a worker thread again, which reconnects
        engine.writers[0].close()
        wait_for(lambda: engine.connects == 21 and reader.streams == 20)
        assert sum(w.status()["failures"] for w in workers) == 1
    finally:
        for w in workers:
            w.stop()
        for w in workers:
            assert w.join(5)
        for writing in engine.writers:
            writing.close()
    assert reader.streams == 0
