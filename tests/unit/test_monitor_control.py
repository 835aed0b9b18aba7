"""The control socket: server limits and permissions, the Dispatcher that answers
requests over the workers' live clients, and the plugin's side of it."""

import functools
import os
import socket
import stat
import subprocess
import sys
import threading

import pytest

from xscontainer import errors, xmlenc
from xscontainer.monitor import client, protocol
from xscontainer.monitor.control import ControlServer
from xscontainer.operations import table

from .fakexapi import FakeXapiServer
from .operation_fakes import FakeDocker, FakePublisher, FakeWorker, dispatcher


@pytest.fixture
def run_dir(tmp_path, monkeypatch):
    path = tmp_path / "run"
    monkeypatch.setenv("XSCONTAINER_RUN_DIR", str(path))
    return path


@pytest.fixture
def serve(run_dir):
    servers = []

    def start(handler, **kw):
        server = ControlServer(handler, **kw)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def test_round_trip_and_permissions(run_dir, serve):
    seen = []

    def handler(req):
        seen.append(req)
        return {"value": "<docker_inspect/>"}

    serve(handler)
    assert stat.S_IMODE(os.stat(str(run_dir)).st_mode) == 0o700
    sock_mode = os.stat(protocol.socket_path()).st_mode
    assert stat.S_ISSOCK(sock_mode) and stat.S_IMODE(sock_mode) == 0o600
    answer = client.request({"fn": "get_inspect", "vmuuid": "u", "object": "web"})
    assert answer == {"value": "<docker_inspect/>"}
    assert seen == [{"fn": "get_inspect", "vmuuid": "u", "object": "web"}]


def test_stop_removes_the_socket_and_a_stale_one_is_replaced(run_dir, serve):
    run_dir.mkdir(mode=0o755)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(protocol.socket_path())  # a crashed run's socket: nobody listens
    stale.close()
    server = serve(lambda req: {"value": "x"})
    assert stat.S_IMODE(os.stat(str(run_dir)).st_mode) == 0o700
    assert client.request({"fn": "status"}) == {"value": "x"}
    server.stop()
    assert not os.path.exists(protocol.socket_path())
    with pytest.raises(client._NoAnswer) as exc:
        client.request({"fn": "status"})
    assert not exc.value.sent


def test_a_regular_file_in_the_way_is_not_replaced(run_dir):
    run_dir.mkdir()
    (run_dir / protocol.SOCKET_NAME).write_text("not mine")
    with pytest.raises(OSError):
        ControlServer(lambda req: {}).start()


def test_requests_beyond_the_limit_are_refused_at_once(run_dir, serve):
    release = threading.Event()
    entered = threading.Event()

    def slow(req):
        entered.set()
        release.wait(5)
        return {"value": "slow"}

    serve(slow, max_concurrent=1)
    results = []
    first = threading.Thread(target=lambda: results.append(client.request({"fn": "a"})))
    first.start()
    assert entered.wait(5)
    assert client.request({"fn": "b"}, timeout=2) == {"unavailable": "the monitor is busy"}
    release.set()
    first.join(5)
    assert results == [{"value": "slow"}]


def test_oversized_and_garbage_requests_get_an_error(run_dir, serve):
    serve(lambda req: {"value": "never"})
    for data in (b"x" * (protocol.MAX_REQUEST_BYTES + 10), b"[1, 2]\n", b"{nope\n"):
        sock = socket.socket(socket.AF_UNIX)
        sock.settimeout(5)
        sock.connect(protocol.socket_path())
        try:
            sock.sendall(data)
        except OSError:
            pass  # the server may stop reading and close first
        reply = b""
        try:
            while not reply.endswith(b"\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                reply += chunk
        except OSError:
            pass
        sock.close()
        assert b"XSCONTAINER_INVALID_ARGUMENT" in reply


def test_a_handler_crash_is_answered_unavailable(run_dir, serve):
    def crash(req):
        raise KeyError("bug")

    serve(crash)
    answer = client.request({"fn": "get_top"})
    assert "unavailable" in answer


def test_the_plugin_side_imports_neither_docker_nor_paramiko():
    code = ("import sys; import xscontainer.plugin; "
            "bad = [m for m in sys.modules if m.split('.')[0] in "
            "('docker', 'paramiko', 'requests', 'urllib3', 'cryptography')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(os.path.dirname(here))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.join(repo, "lib"), os.path.join(repo, "tests", "lab", "stubs")]))
    result = subprocess.run([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                            universal_newlines=True)
    assert result.returncode == 0, result.stdout


def vm_xapi(power="Running"):
    """A real Xapi over a fake XAPI that holds one VM, uuid u, in this power state."""
    server = FakeXapiServer()
    server.add("VM", uuid="u", power_state=power)
    return server.xapi()


def test_call_passes_values_and_errors_through(run_dir, serve):
    description = errors.NoSuchContainer.from_response(
        404, "No such container: web", "inspect container web", "VM x (u)").xapi_description()
    answers = {"get_inspect": {"value": "<docker_inspect/>"},
               "get_top": {"error": description},
               "pause": {"unavailable": "not monitored"}}
    serve(lambda req: answers[req["fn"]])
    xapi = vm_xapi()
    assert client.call(xapi, "get_inspect", {"vmuuid": "u", "object": "web"}) == \
        "<docker_inspect/>"
    with pytest.raises(errors.NoSuchContainer) as exc:
        client.call(xapi, "get_top", {"vmuuid": "u", "object": "web"})
    assert exc.value.xapi_description() == description
    assert client.call(xapi, "pause", {"vmuuid": "u", "container": "web"}) is None


def test_call_sends_the_operations_request_only(run_dir, serve):
    seen = []
    serve(lambda req: seen.append(req) or {"value": ""})
    xapi = vm_xapi()
    client.call(xapi, "stop", {"vmuuid": "u", "container": "web", "object": "x", "more": "y"})
    client.call(xapi, "get_top", {"vmuuid": "u", "object": "web", "container": "x"})
    assert seen == [{"fn": "stop", "vmuuid": "u", "container": "web"},
                    {"fn": "get_top", "vmuuid": "u", "object": "web"}]
    assert seen[0] == protocol.operation_request(table.OPERATIONS["stop"], "u", "web")


def test_call_refuses_a_bad_reference_without_asking(run_dir, serve):
    seen = []
    serve(lambda req: seen.append(req) or {"value": ""})
    for fn, key in (("get_inspect", "object"), ("pause", "container")):
        with pytest.raises(errors.InvalidArgument):
            client.call(vm_xapi(), fn, {"vmuuid": "u", key: "a/../b"})
    assert seen == []
    with pytest.raises(errors.VMNotFound):  # the VM is looked up first, as before
        client.call(vm_xapi(), "get_inspect", {"vmuuid": "nope", "object": "a/../b"})
    with pytest.raises(errors.InvalidArgument):
        client.call(vm_xapi(), "rm", {"vmuuid": "u", "container": "web"})


def test_call_falls_back_without_a_monitor_or_a_running_vm(run_dir):
    assert client.call(vm_xapi(), "get_inspect", {"vmuuid": "u", "object": "w"}) is None
    assert client.call(vm_xapi("Halted"), "start", {"vmuuid": "u", "container": "w"}) is None
    with pytest.raises(errors.VMNotFound):
        client.call(vm_xapi(), "get_inspect", {"vmuuid": "nope", "object": "w"})


def test_a_lifecycle_call_without_answer_is_not_repeated(run_dir, serve, monkeypatch):
    hang = threading.Event()
    serve(lambda req: (hang.wait(5), {"value": ""})[1])
    monkeypatch.setattr(client, "request", functools.partial(client.request, timeout=0.2))
    with pytest.raises(errors.Timeout):  # the monitor may have stopped it: no second stop
        client.call(vm_xapi(), "stop", {"vmuuid": "u", "container": "w"})
    assert client.call(vm_xapi(), "get_top", {"vmuuid": "u", "object": "w"}) is None  # read
    hang.set()


def test_error_from_unknown_code_keeps_it():
    exc = client.error_from(["XSCONTAINER_FROM_THE_FUTURE", "msg", "d1"])
    assert exc.xapi_description() == ["XSCONTAINER_FROM_THE_FUTURE", "msg", "d1"]
    assert client.error_from("junk").code == "XSCONTAINER_ERROR"


# -- the Dispatcher -------------------------------------------------------------------------


def test_dispatcher_refuses_unknown_requests_and_bad_references_first():
    worker = FakeWorker("u", FakeDocker(), FakePublisher())
    dispatch = dispatcher(worker)
    for req in ({"fn": "rm", "vmuuid": "u", "container": "web"}, {"vmuuid": "u"},
                {"fn": ["get_top"], "vmuuid": "u", "object": "web"},
                {"fn": "get_top", "vmuuid": "u", "container": "web"},  # not its argument
                {"fn": "stop", "vmuuid": "nobody", "container": "../x"}):
        answer = dispatch(req)
        assert answer["error"][0] == "XSCONTAINER_INVALID_ARGUMENT", req
    assert dispatch({"fn": "rm"})["error"][1] == "Unknown monitor request 'rm'."
    assert worker.engine.calls == [] and dispatch.served == dispatch.unavailable == 0


def test_dispatcher_is_unavailable_for_vms_it_cannot_serve():
    dispatch = dispatcher(FakeWorker("down", None, FakePublisher()))
    for req in ({"fn": "get_top", "vmuuid": "other", "object": "web"},
                {"fn": "stop", "vmuuid": "down", "container": "web"},
                {"fn": "stop", "container": "web"}):
        assert "unavailable" in dispatch(req)
    assert dispatch.unavailable == 3 and dispatch.served == 0


def test_dispatcher_serves_reads_on_the_live_client():
    engine = FakeDocker(web="running")
    publisher = FakePublisher()
    dispatch = dispatcher(FakeWorker("u", engine, publisher), publisher=publisher)
    assert dispatch({"fn": "get_inspect", "vmuuid": "u", "object": "web"}) == {
        "value": xmlenc.docker_inspect(engine.inspect("web"))}
    answer = dispatch({"fn": "get_top", "vmuuid": "u", "object": "nope"})
    assert answer["error"][0] == "XSCONTAINER_NO_SUCH_CONTAINER"
    assert dispatch.served == 1 and publisher.waited == []


def test_dispatcher_lifecycle_publishes_docker_ps_before_answering():
    engine = FakeDocker(web="running")
    publisher = FakePublisher()
    dispatch = dispatcher(FakeWorker("u", engine, publisher), publisher=publisher)
    assert dispatch({"fn": "pause", "vmuuid": "u", "container": "web"}) == {"value": ""}
    xml = xmlenc.docker_ps(engine.ps())
    assert publisher.waited == [("OpaqueRef:u", "docker_ps", xml)]
    assert "(Paused)" in xml and dispatch.served == 1
    answer = dispatch({"fn": "pause", "vmuuid": "u", "container": "web"})  # Docker's 409
    assert answer["error"][0] == "XSCONTAINER_DOCKER_ERROR" and len(publisher.waited) == 1


def test_dispatcher_lifecycle_done_but_not_published_still_succeeds():
    engine = FakeDocker(web="running")
    for worker in (FakeWorker("u", engine, FakePublisher(writes=False)),
                   FakeWorker("u", engine, FakePublisher(),
                              ps_fails=errors.DockerUnreachable("gone"))):
        dispatch = dispatcher(worker, publisher=worker.publisher)
        assert dispatch({"fn": "stop", "vmuuid": "u", "container": "web"}) == {"value": ""}
        assert worker.lost == 0


@pytest.mark.parametrize("failure", [errors.DockerUnreachable("gone"), errors.Timeout("slow")])
def test_dispatcher_connection_failures(failure):
    """A read is left to the direct path, unless the guest was too slow (the direct
    path would wait for it again: the plugin's call would pass its minute); a
    lifecycle operation may have happened, so its failure is the answer. Either
    way the worker reconnects."""
    engine = FakeDocker(web="running")
    worker = FakeWorker("u", engine, FakePublisher())
    dispatch = dispatcher(worker)
    engine.fail = failure
    answer = dispatch({"fn": "get_inspect", "vmuuid": "u", "object": "web"})
    if isinstance(failure, errors.Timeout):
        assert answer == {"error": failure.xapi_description()}
    else:
        assert "unavailable" in answer
    engine.fail = failure
    answer = dispatch({"fn": "restart", "vmuuid": "u", "container": "web"})
    assert answer == {"error": failure.xapi_description()}
    assert worker.lost == 2 and dispatch.served == 0
