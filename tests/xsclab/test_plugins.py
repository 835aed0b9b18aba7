"""host.call_plugin: execution, environment and error mapping, as xapi does."""

import json
import os
import sys
from typing import Dict, Iterator

import pytest
import XenAPI

from xsclab.simharness import Simulator, cleanup, make_lab_dir

from .simplugins import write_plugins


def details(excinfo: pytest.ExceptionInfo) -> list:
    return list(excinfo.value.details)


def hosts(session: XenAPI.Session) -> Dict[str, str]:
    """name-label -> ref"""
    return {r["name_label"]: ref for ref, r in session.xenapi.host.get_all_records().items()}


def call(session: XenAPI.Session, plugin: str, fn: str, args: Dict[str, str],
         host: str = "xsc-host1") -> str:
    return str(session.xenapi.host.call_plugin(hosts(session)[host], plugin, fn, args))


def test_success_value_is_returned_verbatim(session: XenAPI.Session) -> None:
    assert call(session, "dispatching", "echo", {"b": "2", "a": "1"}) == '{"a": "1", "b": "2"}'


@pytest.mark.parametrize("plugin,fn,expected", [
    ("dispatching", "fail", ["XSC_TEST_ERROR", "first", "second"]),
    ("dispatching", "boom", ["XENAPI_PLUGIN_FAILURE", "boom", "ValueError", "bad thing"]),
    ("dispatching", "nope", ["UNKNOWN_XENAPI_PLUGIN_FUNCTION", "nope"]),
    ("dispatching", "leave", ["XENAPI_PLUGIN_FAILURE", "non-zero exit", "", ""]),
    ("crashing", "any", ["XENAPI_PLUGIN_FAILURE", "non-zero exit", "partial output\n",
                         "something went wrong\n"]),
    ("fault", "any", ["XENAPI_PLUGIN_FAILURE", "fault", "7", "plugin fault"]),
    ("missing", "any", ["XENAPI_MISSING_PLUGIN", "missing"]),
    ("../xapi.sock", "any", ["XENAPI_MISSING_PLUGIN", "../xapi.sock"]),
])
def test_error_mapping(session: XenAPI.Session, plugin: str, fn: str, expected: list) -> None:
    with pytest.raises(XenAPI.Failure) as e:
        call(session, plugin, fn, {})
    assert details(e) == expected


def test_unparsable_and_unexpected_output(session: XenAPI.Session) -> None:
    with pytest.raises(XenAPI.Failure) as e:
        call(session, "garbage", "any", {})
    assert details(e)[:3] == ["XENAPI_PLUGIN_FAILURE", "failed to parse plugin output",
                              "this is not XML\n"]
    assert details(e)[3]  # the parser's message
    with pytest.raises(XenAPI.Failure) as e:
        call(session, "dispatching", "number", {})  # Value must be a string
    assert details(e)[:2] == ["XENAPI_PLUGIN_FAILURE", "unexpected XMLRPC result"]
    assert "<int>42</int>" in details(e)[2]


def test_not_executable(session: XenAPI.Session) -> None:
    with pytest.raises(XenAPI.Failure) as e:
        call(session, "not-executable", "any", {})
    assert details(e)[:3] == ["XENAPI_PLUGIN_FAILURE", "non-zero exit", ""]
    assert "Permission denied" in details(e)[3]


def test_bad_host_and_arguments(session: XenAPI.Session, vm: str) -> None:
    with pytest.raises(XenAPI.Failure) as e:
        session.xenapi.host.call_plugin(vm, "dispatching", "echo", {})
    assert details(e) == ["HANDLE_INVALID", "host", vm]
    with pytest.raises(XenAPI.Failure) as e:
        call(session, "dispatching", "echo", {"n": 1})
    assert details(e) == ["FIELD_TYPE_ERROR", "args"]


@pytest.mark.parametrize("host", ["xsc-host1", "xsc-host2"])
def test_plugin_runs_in_that_hosts_dom0(sim: Simulator, session: XenAPI.Session, host: str
                                         ) -> None:
    seen = json.loads(call(session, "dispatching", "env", {}, host))
    record = session.xenapi.host.get_record(hosts(session)[host])
    dom0_uuid = session.xenapi.VM.get_uuid(record["control_domain"])
    assert seen["host_name"] == host  # found through the inventory and the caller's session
    assert "INSTALLATION_UUID='%s'" % record["uuid"] in seen["inventory"]
    assert "CONTROL_DOMAIN_UUID='%s'" % dom0_uuid in seen["inventory"]
    assert seen["env"]["XSC_LAB_HOST"] == record["uuid"]
    assert seen["env"]["XSC_LAB_DIR"] == sim.lab_dir
    assert seen["argv"] == 2
    assert seen["cwd"] == "/"
    assert os.path.dirname(seen["python"]) == os.path.dirname(sys.executable)


def test_plugin_calls_back_with_the_callers_session(sim: Simulator, vm: str) -> None:
    caller = sim.tcp()  # a TCP session is usable on the socket too: sessions are pool-wide
    count = int(caller.xenapi.lab.session_count())
    uuid = caller.xenapi.VM.get_uuid(vm)
    value = call(caller, "dispatching", "callback", {"vmuuid": uuid, "key": "cb", "value": "v"})
    assert value == "v"
    assert caller.xenapi.VM.get_other_config(vm)["cb"] == "v"
    assert int(caller.xenapi.lab.session_count()) == count  # no login inside the plugin
    caller.xenapi.VM.remove_from_other_config(vm, "cb")
    caller.xenapi.session.logout()


def test_nested_call_plugin(session: XenAPI.Session) -> None:
    host2 = session.xenapi.host.get_uuid(hosts(session)["xsc-host2"])
    value = call(session, "dispatching", "nested", {"host": host2}, "xsc-host1")
    assert value.startswith("nested:")
    assert json.loads(value[len("nested:"):])["host_name"] == "xsc-host2"


@pytest.fixture(scope="module")
def impatient() -> Iterator[Simulator]:
    """A simulator that kills plugins after one second."""
    lab_dir = make_lab_dir()
    plugins_dir = os.path.join(lab_dir, "plugins")
    write_plugins(plugins_dir)
    simulator = Simulator(lab_dir, plugins_dir, extra_args=["--plugin-timeout", "1"]).start()
    try:
        yield simulator
    finally:
        simulator.close()
        cleanup(lab_dir)


def test_timeout_kills_the_plugin(impatient: Simulator) -> None:
    session = impatient.unix()
    assert call(session, "dispatching", "sleep", {"seconds": "0"}) == "slept"
    with pytest.raises(XenAPI.Failure) as e:
        call(session, "dispatching", "sleep", {"seconds": "30"})
    assert details(e)[:2] == ["XENAPI_PLUGIN_FAILURE", "signal: SIGKILL"]
    session.xenapi.session.logout()
