"""The real Xapi (xapi.py) against the in-memory XAPI server (fakexapi.py): the error
boundary, single-key other-config edits, objects that vanish, sessions, raw VDI
transfers. Also pins what the other unit tests rely on the fake to do as xapi does."""

import io
import threading
from typing import Iterator

import pytest

from xscontainer import errors
from xscontainer.monitor import xapiconn
from xscontainer.xapi import NULL_REF, Xapi

from .fakexapi import FakeXapiServer, failure


@pytest.fixture
def server() -> FakeXapiServer:
    return FakeXapiServer()


@pytest.fixture
def local(server: FakeXapiServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The server on the local socket; this host is its only host."""
    host = server.add("host")
    server.add("pool", master=host)
    with server.local(monkeypatch, this_host=host):
        yield host


def test_xapi_failures_become_xapi_errors_on_both_ways_in(server: FakeXapiServer) -> None:
    xapi = server.xapi()
    for call in (lambda: xapi.call("VM.get_record", "OpaqueRef:nope"),
                 lambda: xapi.api.VM.get_record("OpaqueRef:nope")):
        with pytest.raises(errors.XAPIError) as raised:
            call()
        assert raised.value.xapi_code == "HANDLE_INVALID" and raised.value.gone
        assert raised.value.failure == ["HANDLE_INVALID", "VM", "OpaqueRef:nope"]
    with pytest.raises(errors.XAPIError) as raised:
        xapi.call("VM.get_power_state")
    assert raised.value.failure == ["MESSAGE_PARAMETER_COUNT_MISMATCH", "VM.get_power_state",
                                    "2", "1"]
    with pytest.raises(errors.XAPIError) as raised:
        xapi.call("VM.get_no_such_field", "OpaqueRef:x")
    assert raised.value.failure == ["MESSAGE_METHOD_UNKNOWN", "VM.get_no_such_field"]
    assert not raised.value.gone


def test_unreachable_xapi_is_an_xapi_error_without_failure(server: FakeXapiServer) -> None:
    vm = server.add("VM", name_label="web")
    xapi = server.xapi()
    server.down = True
    with pytest.raises(errors.XAPIError) as raised:
        xapi.vm_record(vm)
    assert raised.value.failure is None and not raised.value.gone
    assert raised.value.details[0] == "ConnectionRefusedError"
    assert server.calls == []  # nothing reached XAPI
    server.down = False
    assert xapi.vm_record(vm)["name_label"] == "web"


def test_other_config_is_edited_one_key_at_a_time(server: FakeXapiServer) -> None:
    vm = server.add("VM", other_config={"folder": "/theirs", "k": "old"})
    xapi = server.xapi()
    xapi.set_vm_other_config(vm, "k", "new")
    xapi.remove_vm_other_config(vm, "absent")  # xapi: a no-op
    assert server.record("VM", vm)["other_config"] == {"folder": "/theirs", "k": "new"}
    assert server.other_config_edits("VM", vm) == [("remove", "k"), ("add", "k", "new"),
                                                   ("remove", "absent")]
    assert server.count("VM.set_other_config") == 0


def test_a_key_someone_keeps_re_adding_is_given_up_on(server: FakeXapiServer) -> None:
    vm = server.add("VM")
    server.fail_on["VM.add_to_other_config"] = failure(
        "MAP_DUPLICATE_KEY", "VM", "other_config", vm, "k")
    with pytest.raises(errors.XAPIError, match="kept being re-added"):
        server.xapi().set_vm_other_config(vm, "k", "v")
    assert server.count("VM.add_to_other_config") == 3


def test_add_key_if_absent_leaves_the_first_value(server: FakeXapiServer) -> None:
    vm = server.add("VM")
    xapi = server.xapi()
    assert xapi.add_key_if_absent("VM", vm, "pin", "first")
    assert not xapi.add_key_if_absent("VM", vm, "pin", "second")
    assert server.record("VM", vm)["other_config"] == {"pin": "first"}
    with pytest.raises(errors.XAPIError) as raised:  # other failures are not "present"
        xapi.add_key_if_absent("VM", "OpaqueRef:gone", "pin", "x")
    assert raised.value.gone


def test_vanished_objects(server: FakeXapiServer) -> None:
    xapi = server.xapi()
    a, b = server.add("PBD"), server.add("PBD")
    server.remove("PBD", a)
    assert [ref for ref, _record in xapi.live_records("PBD", [a, b])] == [b]
    with pytest.raises(errors.VMNotFound):
        xapi.vm_by_uuid("00000000-0000-4000-8000-00000000dead")
    metrics = server.add("VM_guest_metrics", networks={"0/ip": "10.0.0.2"})
    vm = server.add("VM", guest_metrics=metrics)
    assert xapi.guest_networks(vm) == {"0/ip": "10.0.0.2"}
    server.remove("VM_guest_metrics", metrics)  # the guest agent went away meanwhile
    assert xapi.guest_networks(vm) is None
    assert xapi.guest_networks(server.add("VM", guest_metrics=NULL_REF)) is None


def test_pool_other_config(server: FakeXapiServer) -> None:
    pool = server.add("pool", other_config={"theirs": "1"})
    xapi = server.xapi()
    xapi.set_pool_other_config("mine", "2")
    assert xapi.pool_other_config() == {"theirs": "1", "mine": "2"}
    assert server.other_config_edits("pool", pool) == [("remove", "mine"), ("add", "mine", "2")]


def test_secrets_and_messages_already_gone_are_fine(server: FakeXapiServer) -> None:
    xapi = server.xapi()
    uuid = xapi.create_secret("PEM")
    assert xapi.secret_value(uuid) == "PEM"
    xapi.destroy_secret(uuid)
    xapi.destroy_secret(uuid)
    assert server.records("secret") == {}
    vm_uuid = server.record("VM", server.add("VM"))["uuid"]
    first = xapi.create_vm_message("ALERT", vm_uuid, "one")
    second = xapi.create_vm_message("ALERT", vm_uuid, "two")
    xapi.create_vm_message("OTHER", vm_uuid, "three")
    assert sorted(xapi.vm_messages("ALERT", vm_uuid)) == sorted([first, second])
    assert xapiconn.vm_messages(xapi, "ALERT", vm_uuid) == [first, second]  # oldest first
    xapi.destroy_message(first)
    xapi.destroy_message(first)
    assert xapi.vm_messages("ALERT", vm_uuid) == [second]
    with pytest.raises(errors.XAPIError) as raised:  # xapi checks the object exists
        xapi.create_vm_message("ALERT", "00000000-0000-4000-8000-00000000dead", "x")
    assert raised.value.xapi_code == "UUID_INVALID"


def test_a_daemon_session_logs_in_and_out_on_the_local_socket(
        server: FakeXapiServer, local: str) -> None:
    with Xapi.login() as xapi:
        assert xapi.this_host() == local  # from the inventory
        assert xapi.session_ref in server.sessions
        server.expire_sessions()  # xapi restarted: the client logs in again by itself
        assert xapiconn.pool_master(xapi) == local
        ref = xapi.session_ref
        assert ref in server.sessions
    assert ref not in server.sessions
    assert server.count("session.login_with_password") == 2


def test_a_callers_session_is_used_and_never_logged_out(
        server: FakeXapiServer, local: str) -> None:
    caller = server.login()
    with Xapi.from_session_ref(caller) as xapi:
        assert xapi.call("host.get_all") == [local]
    assert caller in server.sessions and server.count("session.logout") == 0
    server.expire_sessions()
    with Xapi.from_session_ref(caller) as xapi, pytest.raises(errors.XAPIError) as raised:
        xapi.call("host.get_all")  # nobody to log in again as
    assert raised.value.failure is None and not raised.value.gone


def test_stopped_xapi_refuses_connections(server: FakeXapiServer, local: str) -> None:
    with Xapi.login() as xapi:
        server.down = True
        with pytest.raises(errors.XAPIError) as raised:
            xapi.call("host.get_all")
        assert raised.value.details[0] == "ConnectionRefusedError"
        with pytest.raises(errors.XAPIError, match="Is xapi running"):
            Xapi.login()
        server.down = False
        assert xapi.call("host.get_all") == [local]


def test_raw_vdi_transfers(server: FakeXapiServer, local: str) -> None:
    sr = server.add("SR")
    vdi = server.add("VDI", SR=sr, virtual_size=4096)
    xapi = server.xapi()
    xapi.import_raw_vdi(vdi, io.BytesIO(b"cloud-config"), 12)
    assert server.vdi_data[vdi] == b"cloud-config"
    data = xapi.export_raw_vdi(vdi, 4096)
    assert data == b"cloud-config" + bytes(4096 - 12)  # a raw VDI is its whole size
    with pytest.raises(errors.ResponseTooLarge):
        xapi.export_raw_vdi(vdi, 100)
    with pytest.raises(errors.XAPIError, match="ended 4 bytes early"):
        xapi.import_raw_vdi(vdi, io.BytesIO(b"abcd"), 8)
    server.fail_on["import_raw_vdi"] = failure("SR_BACKEND_FAILURE", "disk full")
    with pytest.raises(errors.XAPIError, match=r"HTTP 500 .* disk full"):
        xapi.import_raw_vdi(vdi, io.BytesIO(b"x"), 1)
    assert server.vdi_data[vdi] == b"cloud-config"


def test_serial_xapi_shares_one_session_between_threads(
        server: FakeXapiServer, local: str) -> None:
    vm = server.add("VM")
    xapi = xapiconn.SerialXapi.login_serial(5.0)
    failures = []

    def edit(n: int) -> None:
        try:
            for i in range(20):
                xapi.set_vm_other_config(vm, "k%d" % n, str(i))
        except Exception as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=edit, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    xapi.close()
    assert failures == []
    assert server.record("VM", vm)["other_config"] == {"k%d" % n: "19" for n in range(4)}
    assert server.sessions == {}
