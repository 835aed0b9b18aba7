"""The plugin's front end and the monitor's side of a whole plugin call.

The control socket here is the real ControlServer; what answers the call is a
function of the test's (the lab's integration tests, tests/integration/
test_paths.py, run the monitor's own answers against the full path's).
"""

import os
import socket
import subprocess
import sys
import threading
import xmlrpc.client

import pytest

from xscontainer import frontend, xapi_keys
from xscontainer.monitor import plugincall, protocol
from xscontainer.monitor.control import ControlServer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLUGIN = os.path.join(REPO, "plugins", "xscontainer")


@pytest.fixture
def run_dir(tmp_path, monkeypatch):
    path = tmp_path / "run"
    monkeypatch.setenv("XSCONTAINER_RUN_DIR", str(path))
    return path


@pytest.fixture
def serve(run_dir):
    servers = []

    def start(plugin_call):
        server = ControlServer(lambda req: {"value": "json"}, plugin_call=plugin_call)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def call_text(fn, args, session="OpaqueRef:s"):
    return xmlrpc.client.dumps((session, args), fn).encode("utf-8")


def answer_with(body):
    return lambda call: b"%s %d\n%s" % (frontend.ANSWER, len(body), body)


def test_the_raw_call_goes_over_and_the_answer_comes_back_whole(serve):
    seen = []
    body = "True<é ☕>".encode("utf-8") * 100000  # several reads

    def handler(call):
        seen.append(call)
        return answer_with(body)(call)

    serve(handler)
    call = call_text("get_inspect", {"vmuuid": "u", "object": "café"})
    assert frontend.ask_monitor(call) == ("answer", body)
    assert seen == [call]


def test_a_decline_says_its_kind_and_why(serve):
    serve(lambda call: b"decline direct the monitor does not monitor VM u\n")
    assert frontend.ask_monitor(call_text("get_top", {})) == (
        "decline", frontend.DIRECT, "the monitor does not monitor VM u")


def test_a_monitor_without_a_plugin_call_handler_declines_and_json_still_works(serve):
    serve(None)
    kind, how, _why = frontend.ask_monitor(call_text("get_top", {}))
    assert (kind, how) == ("decline", frontend.FULL)
    from xscontainer.monitor import client  # noqa: PLC0415

    assert client.request({"fn": "anything"}) == {"value": "json"}


def test_no_monitor_is_not_sent_and_silence_is_sent(run_dir, tmp_path):
    with pytest.raises(frontend.Unanswered) as raised:
        frontend.ask_monitor(b"x")
    assert raised.value.sent is False
    # a monitor that takes the call and never answers
    path = str(tmp_path / "mute.sock")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(1)
    held = []
    threading.Thread(target=lambda: held.append(listener.accept()), daemon=True).start()
    with pytest.raises(frontend.Unanswered) as raised:
        frontend.ask_monitor(b"x", path=path, timeout=0.3)
    assert raised.value.sent is True
    listener.close()


@pytest.mark.parametrize("reply", [
    b"answer 10\nshort",  # cut short
    b"answer 2\nlonger",  # more than announced
    b"answer x\n",
    b"nonsense\n",
])
def test_a_broken_answer_is_no_answer(serve, reply):
    serve(lambda call: reply)
    with pytest.raises(frontend.Unanswered) as raised:
        frontend.ask_monitor(b"x", timeout=2)
    assert raised.value.sent is True


def test_method_name():
    assert frontend.method_name(call_text("pause", {"container": "web"})) == "pause"
    assert frontend.method_name(b"garbage") == ""


def test_the_monitor_takes_only_what_it_serves():
    session, op, args = plugincall.parse(call_text("get_inspect", {"vmuuid": "u", "object": "w"}))
    assert (session, op.name, args) == ("OpaqueRef:s", "get_inspect",
                                        {"vmuuid": "u", "object": "w"})
    for call in (
        b"\xff not UTF-8",
        b"<methodCall><methodName>get_inspect</methodName>",  # not XML
        call_text("register", {"vmuuid": "u"}),  # not a Docker-backed function
        call_text("get_inspect", {"vmuuid": "u"}),  # missing argument: the full path says it
        call_text("get_inspect", {"vmuuid": " ", "object": "w"}),
        call_text("get_inspect", {"vmuuid": "u", "object": "w", xapi_keys.FORWARDED: "1"}),
        xmlrpc.client.dumps(("OpaqueRef:s",), "get_inspect").encode("utf-8"),
    ):
        with pytest.raises(plugincall.Declined) as raised:
            plugincall.parse(call)
        assert raised.value.kind == plugincall.FULL


def test_the_monitor_declines_before_it_loaded_the_pool():
    with pytest.raises(plugincall.Declined):
        plugincall.check_vm("OpaqueRef:s", "u", None)


def test_the_plugin_runs_the_full_path_when_no_monitor_answers(tmp_path):
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "PYTHONPATH": os.pathsep.join([os.path.join(REPO, "lib"),
                                       os.path.join(REPO, "tests", "lab", "stubs")]),
        "XSCONTAINER_RUN_DIR": str(tmp_path / "run"),
        "XSCONTAINER_XAPI_SOCKET": str(tmp_path / "no-xapi-here"),
        "XSCONTAINER_LOG_FILE": str(tmp_path / "xscontainer.log"),
        "XSCONTAINER_INVENTORY": str(tmp_path / "inventory"),
    }
    out = subprocess.run(
        [sys.executable, PLUGIN, call_text("get_inspect", {"vmuuid": "u"}).decode()],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=120, check=True)
    assert out.stderr == b""
    (reply,), _ = xmlrpc.client.loads(out.stdout.decode("utf-8"))
    assert reply["Status"] == "Failure"
    assert reply["ErrorDescription"][0] == "XSCONTAINER_INVALID_ARGUMENT"
    assert protocol.SOCKET_NAME == frontend.SOCKET_NAME
