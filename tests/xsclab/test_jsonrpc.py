"""The simulator's wire protocols as xapi serves them: JSON-RPC on /jsonrpc
(versions 2.0 and 1.0, xapi's error objects), XML-RPC on any other POST path,
compact XML-RPC replies, system.listMethods and event.inject.

The XenAPI Python package speaks XML-RPC only, so the JSON-RPC side is
checked here with raw requests (and end to end with Xen Orchestra's client by
tests/integration/test_xo_client.py)."""

import http.client
import json
import re
import xmlrpc.client
from typing import Any, Dict, List, Tuple
from urllib.parse import urlsplit

import pytest
import XenAPI

from xsclab.simharness import PASSWORD, Simulator
from xsclab.xapisim.client import UnixConnection


def post(sim: Simulator, path: str, body: bytes, content_type: str,
         unix: bool = False) -> Tuple[int, str, bytes]:
    """(status, Content-Type, body) of one POST to the simulator."""
    if unix:
        conn: http.client.HTTPConnection = UnixConnection(sim.socket, timeout=30)
    else:
        conn = http.client.HTTPConnection(urlsplit(sim.url).netloc, timeout=30)
    try:
        conn.request("POST", path, body, {"Content-Type": content_type})
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        conn.close()


def jsonrpc(sim: Simulator, method: str, params: List[Any], version: str = "2.0",
            id: Any = 1, unix: bool = False) -> Dict[str, Any]:
    request: Dict[str, Any] = {"method": method, "params": params, "id": id}
    if version == "2.0":
        request["jsonrpc"] = "2.0"
    status, content_type, body = post(sim, "/jsonrpc", json.dumps(request).encode(),
                                      "application/json", unix)
    assert (status, content_type) == (200, "application/json")
    reply = json.loads(body)
    assert isinstance(reply, dict)
    return reply


def result(sim: Simulator, method: str, *params: Any) -> Any:
    reply = jsonrpc(sim, method, list(params))
    assert "error" not in reply, reply
    return reply["result"]


def login(sim: Simulator) -> str:
    ref = result(sim, "session.login_with_password", "root", PASSWORD, "2.21", "t")
    assert isinstance(ref, str) and ref.startswith("OpaqueRef:")
    return ref


@pytest.fixture(scope="module")
def ref(sim: Simulator) -> str:
    """A JSON-RPC session."""
    return login(sim)


def vm_ref(sim: Simulator, session: str, name: str = "xsc-vm1") -> str:
    refs = result(sim, "VM.get_by_name_label", session, name)
    assert len(refs) == 1
    return str(refs[0])


# -- JSON-RPC ------------------------------------------------------------------

def test_login_result_is_the_session_ref_in_both_versions(sim: Simulator) -> None:
    for version, id in (("2.0", 7), ("1.0", "seven")):
        reply = jsonrpc(sim, "session.login_with_password", ["root", PASSWORD], version, id)
        session = reply["result"]
        assert isinstance(session, str) and session.startswith("OpaqueRef:")
        if version == "2.0":
            assert reply == {"jsonrpc": "2.0", "result": session, "id": 7}
        else:
            assert reply == {"result": session, "error": None, "id": "seven"}
        assert result(sim, "session.logout", session) == ""


def test_success_values_in_json_types(sim: Simulator, ref: str) -> None:
    vm = vm_ref(sim, ref)
    record = result(sim, "VM.get_record", ref, vm)
    assert record["memory_static_max"] == 1073741824  # int64: a number, not a string
    assert isinstance(record["domid"], int)
    assert record["is_control_domain"] is False
    assert re.fullmatch(r"\d{8}T\d\d:\d\d:\d\dZ", record["snapshot_time"])  # dates: strings
    assert record["power_state"] == "Running"
    assert record["other_config"]["xscontainer-username"] == "xscuser"
    assert result(sim, "VM.get_memory_static_max", ref, vm) == 1073741824
    assert result(sim, "VM.add_to_other_config", ref, vm, "json-key", "v") == ""
    assert result(sim, "VM.get_other_config", ref, vm)["json-key"] == "v"
    assert result(sim, "VM.remove_from_other_config", ref, vm, "json-key") == ""


def test_failures_carry_the_error_description(sim: Simulator, ref: str) -> None:
    bad = "OpaqueRef:00000000-0000-0000-0000-000000000000"
    reply = jsonrpc(sim, "VM.get_record", [ref, bad], "2.0", 3)
    assert reply == {"jsonrpc": "2.0", "id": 3, "error": {
        "code": 1, "message": "HANDLE_INVALID", "data": ["VM", bad]}}
    reply = jsonrpc(sim, "VM.get_record", [ref, bad], "1.0", 4)
    assert reply == {"result": None, "id": 4, "error": ["HANDLE_INVALID", "VM", bad]}
    reply = jsonrpc(sim, "VM.no_such_call", [ref])
    assert reply["error"] == {"code": 1, "message": "MESSAGE_METHOD_UNKNOWN",
                              "data": ["VM.no_such_call"]}
    reply = jsonrpc(sim, "VM.get_all", [ref, "extra"])
    assert reply["error"]["data"] == ["VM.get_all", "1", "2"]


def test_session_errors(sim: Simulator) -> None:
    reply = jsonrpc(sim, "session.login_with_password", ["root", "wrong"])
    assert reply["error"] == {"code": 1, "message": "SESSION_AUTHENTICATION_FAILED",
                              "data": ["root", "Authentication failure"]}
    session = login(sim)
    result(sim, "session.logout", session)
    reply = jsonrpc(sim, "pool.get_all", [session])
    assert reply["error"] == {"code": 1, "message": "SESSION_INVALID", "data": [session]}
    reply = jsonrpc(sim, "pool.get_all", [session], "1.0")
    assert reply["error"] == ["SESSION_INVALID", session]
    # over the unix socket root needs no password, as over XML-RPC
    reply = jsonrpc(sim, "session.login_with_password", ["root", ""], unix=True)
    assert reply["result"].startswith("OpaqueRef:")


@pytest.mark.parametrize("body,code", [
    (b"{not json", -32700),
    (b"[]", -32600),
    (b'{"jsonrpc": "2.0", "method": "pool.get_all", "params": []}', -32600),  # no id
    (b'{"jsonrpc": "3.0", "method": "pool.get_all", "params": [], "id": 1}', -32600),
    (b'{"jsonrpc": "2.0", "method": 5, "params": [], "id": 1}', -32600),
])
def test_unusable_requests(sim: Simulator, body: bytes, code: int) -> None:
    status, content_type, reply = post(sim, "/jsonrpc", body, "application/json")
    assert (status, content_type) == (200, "application/json")
    assert json.loads(reply)["error"]["code"] == code


def test_call_plugin_as_over_xml_rpc(sim: Simulator, ref: str, session: XenAPI.Session
                                     ) -> None:
    host = result(sim, "host.get_by_name_label", ref, "xsc-host1")[0]
    args = {"vmuuid": "u", "container": "c"}
    echoed = result(sim, "host.call_plugin", ref, host, "dispatching", "echo", args)
    assert echoed == session.xenapi.host.call_plugin(host, "dispatching", "echo", args)
    assert json.loads(echoed) == args
    reply = jsonrpc(sim, "host.call_plugin", [ref, host, "dispatching", "fail", {}])
    assert reply["error"] == {"code": 1, "message": "XSC_TEST_ERROR",
                              "data": ["first", "second"]}
    reply = jsonrpc(sim, "host.call_plugin", [ref, host, "missing", "any", {}])
    assert reply["error"]["message"] == "XENAPI_MISSING_PLUGIN"


def test_event_from(sim: Simulator, ref: str) -> None:
    first = result(sim, "event.from", ref, ["vm"], "", 0.0)
    adds = {e["ref"]: e for e in first["events"]}
    vm = vm_ref(sim, ref)
    assert adds[vm]["operation"] == "add"
    assert adds[vm]["snapshot"]["memory_static_max"] == 1073741824
    assert isinstance(first["valid_ref_counts"]["vm"], int)
    result(sim, "VM.add_to_other_config", ref, vm, "event-key", "1")
    after = result(sim, "event.from", ref, ["vm"], first["token"], 5.0)
    assert [(e["ref"], e["operation"]) for e in after["events"]] == [(vm, "mod")]
    assert after["events"][0]["snapshot"]["other_config"]["event-key"] == "1"
    result(sim, "VM.remove_from_other_config", ref, vm, "event-key")


def test_event_inject(sim: Simulator, ref: str, session: XenAPI.Session) -> None:
    pool = result(sim, "pool.get_all", ref)[0]
    token = result(sim, "event.inject", ref, "pool", pool)
    assert re.fullmatch(r"\d{20},\d{20}", token)
    got = result(sim, "event.from", ref, ["pool"], token, 5.0)
    assert [(e["class"], e["ref"], e["operation"]) for e in got["events"]] == [
        ("pool", pool, "mod")]
    quiet = result(sim, "event.from", ref, ["pool"], got["token"], 0.2)
    assert quiet["events"] == []
    # over XML-RPC too, and the class must be the object's own
    assert session.xenapi.event.inject("pool", pool)
    with pytest.raises(XenAPI.Failure) as e:
        session.xenapi.event.inject("VM", pool)
    assert e.value.details == ["HANDLE_INVALID", "VM", pool]


def test_list_methods_needs_no_session(sim: Simulator) -> None:
    methods = result(sim, "system.listMethods")
    for name in ("VM.get_all_records", "host.call_plugin", "event.from", "event.inject",
                 "session.login_with_password", "system.listMethods"):
        assert name in methods
    assert methods == sorted(methods)
    assert sim.raw().system.listMethods() == {"Status": "Success", "Value": methods}


# -- XML-RPC ---------------------------------------------------------------------

def xml_call(method: str, *params: Any) -> bytes:
    return xmlrpc.client.dumps(params, method, allow_none=True).encode()


@pytest.mark.parametrize("path", ["/", "/RPC2", "/xmlrpc", "/any/path?x=1"])
def test_xml_rpc_on_any_post_path(sim: Simulator, path: str) -> None:
    status, content_type, body = post(
        sim, path, xml_call("session.login_with_password", "root", PASSWORD), "text/xml")
    assert (status, content_type) == (200, "text/xml")
    (reply,), _ = xmlrpc.client.loads(body)
    assert reply["Status"] == "Success" and reply["Value"].startswith("OpaqueRef:")


def raw_reply(sim: Simulator, method: str, *params: Any) -> str:
    status, _, body = post(sim, "/", xml_call(method, *params), "text/xml")
    assert status == 200
    return body.decode()


def test_xml_rpc_replies_are_compact_as_xapi_writes_them(sim: Simulator,
                                                          session: XenAPI.Session) -> None:
    vm = session.xenapi.VM.get_by_name_label("xsc-vm1")[0]
    text = raw_reply(sim, "VM.get_record", session.handle, vm)
    assert text.startswith('<?xml version="1.0"?><methodResponse><params><param><value>'
                           '<struct><member><name>Status</name><value>Success</value>')
    assert "\n" not in text and not re.search(r">\s+<", text)
    # strings and int64 untyped, booleans 1/0, dates dateTime.iso8601
    assert "<name>memory_static_max</name><value>1073741824</value>" in text
    assert "<name>is_control_domain</name><value><boolean>0</boolean></value>" in text
    assert re.search(r"<name>snapshot_time</name><value><dateTime.iso8601>\d{8}T", text)
    failure = raw_reply(sim, "VM.get_record", session.handle, "OpaqueRef:x")
    assert failure == (
        '<?xml version="1.0"?><methodResponse><params><param><value><struct>'
        "<member><name>Status</name><value>Failure</value></member>"
        "<member><name>ErrorDescription</name><value><array><data><value>HANDLE_INVALID"
        "</value><value>VM</value><value>OpaqueRef:x</value></data></array></value></member>"
        "</struct></value></param></params></methodResponse>")


def test_xml_rpc_text_escaping(sim: Simulator, session: XenAPI.Session, ref: str) -> None:
    vm = session.xenapi.VM.get_by_name_label("xsc-vm1")[0]
    value = 'a<b>&"c\' \u00e9\t'
    # a control character XML cannot carry: stored over JSON-RPC, dropped by XML-RPC
    result(sim, "VM.add_to_other_config", ref, vm, "escape-key", value + "\x01")
    try:
        text = raw_reply(sim, "VM.get_other_config", session.handle, vm)
        assert "<value>a&lt;b&gt;&amp;&quot;c' \u00e9\t</value>" in text
        assert session.xenapi.VM.get_other_config(vm)["escape-key"] == value
        assert result(sim, "VM.get_other_config", ref, vm)["escape-key"] == value + "\x01"
    finally:
        session.xenapi.VM.remove_from_other_config(vm, "escape-key")


def test_stats_count_requests_per_protocol(sim: Simulator, ref: str,
                                           session: XenAPI.Session) -> None:
    before = session.xenapi.lab.stats()["protocols"]
    result(sim, "pool.get_all", ref)
    result(sim, "pool.get_all", ref)
    after = session.xenapi.lab.stats()["protocols"]  # counts itself, as `before` did
    assert after["json-rpc"] == before.get("json-rpc", 0) + 2
    assert after["xml-rpc"] == before["xml-rpc"] + 1
