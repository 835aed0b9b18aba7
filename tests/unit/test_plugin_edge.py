"""The plugin's edge: what xapi sees on stdout, argument checks, error mapping.

Runs plugins/xscontainer as xapi does (one argv element, stdout parsed) where no
XAPI is needed, and the handler wrapper in-process with the in-memory XAPI
(fakexapi.py) on the local socket for the forwarding rules (the lab's integration
tests cover the real thing).
"""

import os
import subprocess
import sys
import xmlrpc.client
from typing import Any, Dict, Iterator, List, Tuple

import pytest
import XenAPI
import XenAPIPlugin

from xscontainer import errors, plugin, xapi_keys
from xscontainer.operations import table

from .fakexapi import FakeXapiServer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLUGIN = os.path.join(REPO, "plugins", "xscontainer")


def run_plugin(tmp_path: Any, fn: str, args: Dict[str, str]) -> Tuple[Dict[str, Any], str]:
    env = dict(os.environ)
    env.update({
        "PYTHONPATH": os.pathsep.join([os.path.join(REPO, "lib"),
                                       os.path.join(REPO, "tests", "lab", "stubs")]),
        "XSCONTAINER_XAPI_SOCKET": str(tmp_path / "no-xapi-here"),
        "XSCONTAINER_INVENTORY": str(tmp_path / "inventory"),
        "XSCONTAINER_LOG_FILE": str(tmp_path / "xscontainer.log"),
        "XSCONTAINER_FILES_DIR": str(tmp_path),
    })
    call = xmlrpc.client.dumps(("OpaqueRef:11111111-2222-3333-4444-555555555555", args), fn)
    proc = subprocess.run([sys.executable, PLUGIN, call], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    (response,), method = xmlrpc.client.loads(proc.stdout)  # exactly one methodResponse
    assert method is None
    return response, proc.stderr


def test_missing_argument_is_one_clean_failure(tmp_path):
    response, stderr = run_plugin(tmp_path, "get_inspect", {"vmuuid": "x"})
    assert response["Status"] == "Failure"
    code, message = response["ErrorDescription"][:2]
    assert code == "XSCONTAINER_INVALID_ARGUMENT"
    assert "object" in message and "args:object=" in message
    assert stderr == ""


def test_unknown_function(tmp_path):
    response, _ = run_plugin(tmp_path, "passthrough", {"vmuuid": "x", "command": "id"})
    assert response == {"Status": "Failure",
                        "ErrorDescription": ["UNKNOWN_XENAPI_PLUGIN_FUNCTION", "passthrough"]}


def test_unreachable_xapi_is_a_clear_xapi_error(tmp_path):
    response, stderr = run_plugin(tmp_path, "register", {"vmuuid": "x"})
    assert response["ErrorDescription"][0] == "XSCONTAINER_XAPI_ERROR"
    assert stderr == ""
    log = (tmp_path / "xscontainer.log").read_text()
    assert "register failed" in log
    assert "OpaqueRef:11111111" not in log  # the session ref is a credential


class Pool:
    """Two hosts; this one (the inventory names it) is host1. XAPI is fakexapi's on
    the local socket, where the plugin's Xapi.from_session_ref connects."""

    def __init__(self, server: FakeXapiServer) -> None:
        self.server = server
        self.host1 = server.add("host", name_label="host1")
        self.host2 = server.add("host", name_label="host2")
        server.add("pool", master=self.host1)

    def vm_on(self, host: str) -> str:
        """VM u, running on `host`."""
        return self.server.add("VM", uuid="u", power_state="Running", resident_on=host)

    def caller(self) -> "Caller":
        return Caller(self.server.login())

    def forwarded(self) -> List[Tuple[Any, ...]]:
        return [c.args for c in self.server.calls if c.method == "host.call_plugin"]


class Caller:
    """What XenAPIPlugin.dispatch hands a plugin function: the caller's session."""

    def __init__(self, ref: str) -> None:
        self._session = ref


@pytest.fixture
def pool(monkeypatch: pytest.MonkeyPatch) -> Iterator[Pool]:
    monkeypatch.setenv("XSCONTAINER_LOG_FILE", os.devnull)
    server = FakeXapiServer()
    pool = Pool(server)
    with server.local(monkeypatch, this_host=pool.host1):
        yield pool


def handler(fn: str) -> Any:
    return plugin.handlers()[fn]


def test_a_call_for_a_vm_on_another_host_is_forwarded_unchanged(pool: Pool) -> None:
    pool.vm_on(pool.host2)
    pool.server.plugins["xscontainer"] = lambda host, fn, args: "True<?xml version=\"1.0\" ?><x/>"
    args = {"vmuuid": "u", "object": "web", "extra": "kept"}
    caller = pool.caller()
    result = handler("get_inspect")(caller, args)
    assert result == "True<?xml version=\"1.0\" ?><x/>"
    host, name, fn, sent = pool.forwarded()[0]
    assert (host, name, fn) == (pool.host2, "xscontainer", "get_inspect")
    assert sent == dict(args, **{xapi_keys.FORWARDED: "1"})
    assert caller._session in pool.server.sessions  # the caller's session: not logged out


def test_a_remote_failure_comes_back_as_the_same_xapi_failure(pool: Pool) -> None:
    details = ["XSCONTAINER_NO_SUCH_CONTAINER", "No such container: web", "404"]

    def remote(host: str, fn: str, args: Dict[str, str]) -> str:
        raise XenAPI.Failure(details)

    pool.vm_on(pool.host2)
    pool.server.plugins["xscontainer"] = remote
    with pytest.raises(XenAPIPlugin.Failure) as exc:
        handler("stop")(pool.caller(), {"vmuuid": "u", "container": "web"})
    assert exc.value.params == details


def test_an_unreachable_remote_host_is_our_xapi_error(pool: Pool) -> None:
    def remote(host: str, fn: str, args: Dict[str, str]) -> str:
        pool.server.down = True  # XAPI stops while it forwards the call
        return "True"

    pool.vm_on(pool.host2)
    pool.server.plugins["xscontainer"] = remote
    with pytest.raises(XenAPIPlugin.Failure) as exc:
        handler("stop")(pool.caller(), {"vmuuid": "u", "container": "web"})
    assert exc.value.params[0] == "XSCONTAINER_XAPI_ERROR"
    assert exc.value.params[2] == "ConnectionRefusedError" and "refused" in exc.value.params[3]


def test_failures_hold_no_secrets_and_are_valid_xml_text(
        pool: Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    pool.vm_on(pool.host1)
    pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEsecret\n-----END RSA PRIVATE KEY-----"

    def broken(xapi: Any, args: Dict[str, str]) -> str:
        raise errors.SSHError("Cannot load key %s. Regenerate it.\x00\x1b[0m" % pem,
                              "GET /x?session_id=OpaqueRef:abc")

    monkeypatch.setitem(plugin.FUNCTIONS, "get_top", (("vmuuid", "object"), broken))
    with pytest.raises(XenAPIPlugin.Failure) as exc:
        handler("get_top")(pool.caller(), {"vmuuid": "u", "object": "web"})
    text = " ".join(exc.value.params)
    assert "MIIEsecret" not in text and "OpaqueRef:abc" not in text
    assert "\x00" not in text and "\x1b" not in text
    assert exc.value.params[1].startswith("Cannot load key <redacted RSA PRIVATE KEY>.")


def test_a_forwarded_call_is_not_forwarded_again(
        pool: Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    pool.vm_on(pool.host2)
    calls: List[Dict[str, str]] = []
    monkeypatch.setitem(plugin.FUNCTIONS, "register",
                        (("vmuuid",), lambda xapi, args: calls.append(args) or ""))
    args = {"vmuuid": "u", xapi_keys.FORWARDED: "1"}
    assert handler("register")(pool.caller(), args) == "True"
    assert pool.forwarded() == [] and calls == [args]


def test_xscontainer_errors_become_their_description(
        pool: Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    pool.vm_on(pool.host1)

    def broken(xapi: Any, args: Dict[str, str]) -> str:
        raise errors.VMNotRunning("VM u is Halted. Start it and retry.", "u")

    monkeypatch.setitem(plugin.FUNCTIONS, "get_top", (("vmuuid", "object"), broken))
    with pytest.raises(XenAPIPlugin.Failure) as exc:
        handler("get_top")(pool.caller(), {"vmuuid": "u", "object": "web"})
    assert exc.value.params == ["XSCONTAINER_VM_NOT_RUNNING",
                                "VM u is Halted. Start it and retry.", "u"]


def test_unexpected_errors_keep_xapis_default_shape(
        pool: Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    pool.vm_on(pool.host1)

    def broken(xapi: Any, args: Dict[str, str]) -> str:
        raise KeyError("surprise")

    monkeypatch.setitem(plugin.FUNCTIONS, "get_top", (("vmuuid", "object"), broken))
    with pytest.raises(KeyError):  # XenAPIPlugin.dispatch turns it into XENAPI_PLUGIN_FAILURE
        handler("get_top")(pool.caller(), {"vmuuid": "u", "object": "web"})


def test_the_docker_backed_functions_are_the_operations_table():
    for name, op in table.OPERATIONS.items():
        required, handler_fn = plugin.FUNCTIONS[name]
        assert required == op.required and handler_fn.__name__ == name
    others = set(plugin.FUNCTIONS) - set(table.OPERATIONS)
    assert others == {"register", "deregister", "diagnose", "prepare", "get_config_drive_default",
                      "create_config_drive", "get_config_drive_configuration"}


@pytest.mark.parametrize("name", sorted(table.OPERATIONS))
def test_a_docker_backed_call_asks_the_monitor_then_connects_directly(pool, monkeypatch, name):
    from xscontainer import containers  # noqa: PLC0415 (the plugin imports it lazily)

    pool.vm_on(pool.host1)
    asked: List[Tuple[str, str]] = []
    answers = {"monitor": "<warm/>"}

    def monitor(xapi: Any, fn: str, args: Dict[str, str]) -> Any:
        asked.append(("monitor", fn))
        return answers["monitor"]

    def direct(fn: str, xapi: Any, args: Dict[str, str]) -> str:
        asked.append(("direct", fn))
        return "<direct/>"

    monkeypatch.setattr(plugin.monitor_client, "call", monitor)
    monkeypatch.setattr(containers, "docker_backed", direct)
    args = {"vmuuid": "u", table.OPERATIONS[name].target: "web"}
    assert handler(name)(pool.caller(), args) == "True<warm/>"
    answers["monitor"] = None
    assert handler(name)(pool.caller(), args) == "True<direct/>"
    assert asked == [("monitor", name), ("monitor", name), ("direct", name)]
