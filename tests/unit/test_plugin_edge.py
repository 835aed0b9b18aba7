"""The plugin's edge: what xapi sees on stdout, argument checks, error mapping.

Runs plugins/xscontainer as xapi does (one argv element, stdout parsed) where no
XAPI is needed, and the handler wrapper in-process with a fake XAPI for the
forwarding rules (the lab's integration tests cover the real thing).
"""

import os
import subprocess
import sys
import xmlrpc.client
from typing import Any, Dict, List, Tuple

import pytest
import XenAPI
import XenAPIPlugin

from xscontainer import errors, plugin, xapi_keys
from xscontainer.operations import table

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


class FakeXapi:
    """Just enough XAPI for the edge: VM residency and host.call_plugin."""

    def __init__(self, resident: str, this_host: str, remote: Any) -> None:
        self.resident = resident
        self._this = this_host
        self.remote = remote
        self.forwarded: List[Tuple[str, str, str, Dict[str, str]]] = []
        self.api = self
        self.host = self

    def __enter__(self) -> "FakeXapi":
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def call(self, method: str, *args: Any) -> str:
        if method == "host.call_plugin":
            return self.call_plugin(*args)
        return {"VM.get_by_uuid": "OpaqueRef:vm", "VM.get_resident_on": self.resident}[method]

    def this_host(self) -> str:
        return self._this

    def call_plugin(self, host: str, name: str, fn: str, args: Dict[str, str]) -> str:
        self.forwarded.append((host, name, fn, args))
        if isinstance(self.remote, Exception):
            raise self.remote
        return str(self.remote)


class FakeSession:
    _session = "OpaqueRef:caller"


def handler(monkeypatch: Any, fake: FakeXapi, fn: str) -> Any:
    monkeypatch.setenv("XSCONTAINER_LOG_FILE", os.devnull)
    monkeypatch.setattr(plugin.Xapi, "from_session_ref", classmethod(lambda cls, ref: fake))
    return plugin.handlers()[fn]


def test_a_call_for_a_vm_on_another_host_is_forwarded_unchanged(monkeypatch):
    fake = FakeXapi("OpaqueRef:host2", "OpaqueRef:host1", "True<?xml version=\"1.0\" ?><x/>")
    args = {"vmuuid": "u", "object": "web", "extra": "kept"}
    result = handler(monkeypatch, fake, "get_inspect")(FakeSession(), args)
    assert result == "True<?xml version=\"1.0\" ?><x/>"
    host, name, fn, sent = fake.forwarded[0]
    assert (host, name, fn) == ("OpaqueRef:host2", "xscontainer", "get_inspect")
    assert sent == dict(args, **{xapi_keys.FORWARDED: "1"})


def test_a_remote_failure_comes_back_as_the_same_xapi_failure(monkeypatch):
    details = ["XSCONTAINER_NO_SUCH_CONTAINER", "No such container: web", "404"]
    remote = errors.XAPIError.from_failure(XenAPI.Failure(details), "host.call_plugin")
    fake = FakeXapi("OpaqueRef:host2", "OpaqueRef:host1", remote)
    with pytest.raises(XenAPIPlugin.Failure) as exc:
        handler(monkeypatch, fake, "stop")(FakeSession(), {"vmuuid": "u", "container": "web"})
    assert exc.value.params == details


def test_an_unreachable_remote_host_is_our_xapi_error(monkeypatch):
    remote = errors.XAPIError.from_failure(ConnectionRefusedError("refused"), "host.call_plugin")
    fake = FakeXapi("OpaqueRef:host2", "OpaqueRef:host1", remote)
    with pytest.raises(XenAPIPlugin.Failure) as exc:
        handler(monkeypatch, fake, "stop")(FakeSession(), {"vmuuid": "u", "container": "web"})
    assert exc.value.params[0] == "XSCONTAINER_XAPI_ERROR"
    assert exc.value.params[2:] == ["ConnectionRefusedError", "refused"]


def test_failures_hold_no_secrets_and_are_valid_xml_text(monkeypatch):
    fake = FakeXapi("OpaqueRef:host1", "OpaqueRef:host1", "unused")
    pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEsecret\n-----END RSA PRIVATE KEY-----"

    def broken(xapi: Any, args: Dict[str, str]) -> str:
        raise errors.SSHError("Cannot load key %s. Regenerate it.\x00\x1b[0m" % pem,
                              "GET /x?session_id=OpaqueRef:abc")

    monkeypatch.setitem(plugin.FUNCTIONS, "get_top", (("vmuuid", "object"), broken))
    with pytest.raises(XenAPIPlugin.Failure) as exc:
        handler(monkeypatch, fake, "get_top")(FakeSession(), {"vmuuid": "u", "object": "web"})
    text = " ".join(exc.value.params)
    assert "MIIEsecret" not in text and "OpaqueRef:abc" not in text
    assert "\x00" not in text and "\x1b" not in text
    assert exc.value.params[1].startswith("Cannot load key <redacted RSA PRIVATE KEY>.")


def test_a_forwarded_call_is_not_forwarded_again(monkeypatch):
    fake = FakeXapi("OpaqueRef:host2", "OpaqueRef:host1", "True")
    calls: List[Dict[str, str]] = []
    monkeypatch.setitem(plugin.FUNCTIONS, "register",
                        (("vmuuid",), lambda xapi, args: calls.append(args) or ""))
    args = {"vmuuid": "u", xapi_keys.FORWARDED: "1"}
    assert handler(monkeypatch, fake, "register")(FakeSession(), args) == "True"
    assert fake.forwarded == [] and calls == [args]


def test_xscontainer_errors_become_their_description(monkeypatch):
    fake = FakeXapi("OpaqueRef:host1", "OpaqueRef:host1", "unused")

    def broken(xapi: Any, args: Dict[str, str]) -> str:
        raise errors.VMNotRunning("VM u is Halted. Start it and retry.", "u")

    monkeypatch.setitem(plugin.FUNCTIONS, "get_top", (("vmuuid", "object"), broken))
    with pytest.raises(XenAPIPlugin.Failure) as exc:
        handler(monkeypatch, fake, "get_top")(FakeSession(), {"vmuuid": "u", "object": "web"})
    assert exc.value.params == ["XSCONTAINER_VM_NOT_RUNNING",
                                "VM u is Halted. Start it and retry.", "u"]


def test_unexpected_errors_keep_xapis_default_shape(monkeypatch):
    fake = FakeXapi("OpaqueRef:host1", "OpaqueRef:host1", "unused")

    def broken(xapi: Any, args: Dict[str, str]) -> str:
        raise KeyError("surprise")

    monkeypatch.setitem(plugin.FUNCTIONS, "get_top", (("vmuuid", "object"), broken))
    with pytest.raises(KeyError):  # XenAPIPlugin.dispatch turns it into XENAPI_PLUGIN_FAILURE
        handler(monkeypatch, fake, "get_top")(FakeSession(), {"vmuuid": "u", "object": "web"})


def test_the_docker_backed_functions_are_the_operations_table():
    for name, op in table.OPERATIONS.items():
        required, handler_fn = plugin.FUNCTIONS[name]
        assert required == op.required and handler_fn.__name__ == name
    others = set(plugin.FUNCTIONS) - set(table.OPERATIONS)
    assert others == {"register", "deregister", "diagnose", "get_config_drive_default",
                      "create_config_drive", "get_config_drive_configuration"}


@pytest.mark.parametrize("name", sorted(table.OPERATIONS))
def test_a_docker_backed_call_asks_the_monitor_then_connects_directly(monkeypatch, name):
    from xscontainer import containers  # noqa: PLC0415 (the plugin imports it lazily)

    fake = FakeXapi("OpaqueRef:host1", "OpaqueRef:host1", "unused")
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
    assert handler(monkeypatch, fake, name)(FakeSession(), args) == "True<warm/>"
    answers["monitor"] = None
    assert handler(monkeypatch, fake, name)(FakeSession(), args) == "True<direct/>"
    assert asked == [("monitor", name), ("monitor", name), ("direct", name)]
