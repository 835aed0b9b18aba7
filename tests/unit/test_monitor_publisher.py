"""The publisher against the in-memory XAPI (fakexapi.py), counting every write."""

import threading
from typing import Optional

import pytest

from xscontainer.monitor import secrets
from xscontainer.monitor.publisher import Publisher
from xscontainer.xapi_keys import MONITOR_FAILED_MESSAGE as FAILURE_MESSAGE

from .fakexapi import FakeXapiServer

VM = "OpaqueRef:vm-1"
UUID = "11111111-2222-3333-4444-555555555555"
PS, INFO, VERSION = "docker_ps", "docker_info", "docker_version"


@pytest.fixture
def server():
    server = FakeXapiServer()
    server.add("VM", ref=VM, uuid=UUID, power_state="Running", other_config={"folder": "/mine"})
    return server


@pytest.fixture
def xapi(server):
    """Another client of the same XAPI (an earlier daemon, XenCenter)."""
    return server.xapi()


@pytest.fixture
def publisher(server):
    p = Publisher(server.xapi(), retry_first=0.01, retry_cap=0.05)
    thread = threading.Thread(target=p.run, daemon=True)
    thread.start()
    yield p
    p.stop()
    thread.join(5)
    assert not thread.is_alive()


def edits(server) -> list:
    """The VM's other-config edits: ("add", key, value) and ("remove", key)."""
    return server.other_config_edits("VM", VM)


def sets(key: str, value: str) -> list:
    """The edits of one single-key set: remove the key, then add it."""
    return [("remove", key), ("add", key, value)]


def config(server) -> dict:
    return server.record("VM", VM)["other_config"]


def theirs(server, key: str, value: Optional[str]) -> None:
    """Another XAPI client sets (or with None removes) a key of the VM's other-config."""
    with server.lock:
        if value is None:
            del config(server)[key]
        else:
            config(server)[key] = value


def messages(server) -> list:
    return list(server.records("message").values())


def settle(p: Publisher) -> None:
    assert p.flush(5.0)


def test_values_xapi_already_holds_are_not_written(server, publisher):
    config(server).update({PS: "<ps1/>", INFO: "<i/>"})
    publisher.track(VM, UUID, {PS: "<ps1/>", INFO: "<i/>", VERSION: None})
    publisher.set(VM, PS, "<ps1/>")
    publisher.set(VM, INFO, "<i/>")
    publisher.set(VM, VERSION, "<v/>")
    settle(publisher)
    assert edits(server) == sets(VERSION, "<v/>")
    assert config(server)["folder"] == "/mine"


def test_only_the_latest_value_is_written(server, publisher):
    server.down = True  # hold the writes back while values change
    publisher.track(VM, UUID, {})
    for n in range(100):
        publisher.set(VM, PS, "<ps%d/>" % n)
    server.down = False
    settle(publisher)
    assert edits(server) == sets(PS, "<ps99/>")


def test_writes_failed_while_xapi_was_down_are_redone(server, publisher):
    publisher.track(VM, UUID, {})
    server.down = True
    publisher.set(VM, PS, "<a/>")
    assert not publisher.flush(0.2)
    assert publisher.xapi_failures >= 1
    server.down = False
    settle(publisher)
    assert config(server)[PS] == "<a/>"


def test_a_stale_snapshot_costs_a_read_not_a_write(server, publisher):
    publisher.track(VM, UUID, {})
    publisher.set(VM, PS, "<a/>")
    settle(publisher)
    reads = server.count("VM.get_other_config")
    publisher.observe(VM, {PS: None, INFO: None, VERSION: None})  # from before our write
    settle(publisher)
    assert server.count("VM.get_other_config") == reads + 1
    assert edits(server) == sets(PS, "<a/>")


def test_a_key_someone_else_removed_or_changed_is_republished(server, publisher):
    publisher.track(VM, UUID, {})
    publisher.set(VM, PS, "<a/>")
    settle(publisher)
    theirs(server, PS, None)
    publisher.observe(VM, {PS: None})
    settle(publisher)
    assert config(server)[PS] == "<a/>"
    theirs(server, PS, "<forged/>")
    publisher.observe(VM, {PS: "<forged/>"})
    settle(publisher)
    assert config(server)[PS] == "<a/>"
    assert edits(server) == sets(PS, "<a/>") * 3


def test_a_thousand_foreign_changes_cause_no_write(server, publisher):
    publisher.track(VM, UUID, {})
    publisher.set(VM, PS, "<a/>")
    settle(publisher)
    calls = len(server.calls)
    for n in range(1000):
        theirs(server, "folder", "/x%d" % n)
        publisher.observe(VM, {PS: "<a/>", INFO: None, VERSION: None})
    settle(publisher)
    assert edits(server) == sets(PS, "<a/>")
    assert len(server.calls) == calls  # not even a read
    assert config(server)["folder"] == "/x999"


def test_withdraw_removes_what_we_wrote_and_forgets(server, publisher):
    publisher.track(VM, UUID, {})
    publisher.set(VM, PS, "<a/>")
    publisher.set(VM, VERSION, "<v/>")
    settle(publisher)
    publisher.withdraw(VM)
    settle(publisher)
    assert PS not in config(server) and VERSION not in config(server)
    assert ("remove", INFO) not in edits(server)  # never written, never removed
    assert not publisher.is_tracked(VM)
    # what another host publishes afterwards (migration) is left alone
    theirs(server, PS, "<theirs/>")
    publisher.observe(VM, {PS: "<theirs/>"})
    publisher.set(VM, PS, "<late/>")
    settle(publisher)
    assert config(server)[PS] == "<theirs/>"


def test_tracking_again_during_a_withdrawal_reads_first(server, publisher):
    publisher.track(VM, UUID, {})
    publisher.set(VM, PS, "<a/>")
    settle(publisher)
    server.down = True
    publisher.withdraw(VM)
    publisher.track(VM, UUID, {PS: "<a/>"})
    publisher.set(VM, PS, "<a/>")
    server.down = False
    settle(publisher)
    assert config(server)[PS] == "<a/>"
    assert edits(server) == sets(PS, "<a/>")


def test_a_destroyed_vm_is_forgotten(server, publisher):
    publisher.track(VM, UUID, {})
    server.remove("VM", VM)
    publisher.set(VM, PS, "<a/>")
    settle(publisher)
    assert not publisher.is_tracked(VM)


def test_wait_written(publisher):
    publisher.track(VM, UUID, {})
    publisher.set(VM, PS, "<a/>")
    assert publisher.wait_written(VM, PS, "<a/>", 5.0)
    assert not publisher.wait_written(VM, PS, "<b/>", 0.05)


def test_failure_message_posted_once_reused_and_destroyed(server, publisher):
    publisher.track(VM, UUID, {})
    publisher.set_failure(VM, "diagnosis 1")
    settle(publisher)
    publisher.set_failure(VM, "diagnosis 2")
    settle(publisher)
    assert [m["body"] for m in messages(server)] == ["diagnosis 1"]
    (message,) = messages(server)
    assert (message["name"], message["priority"]) == (FAILURE_MESSAGE, "3")
    assert (message["cls"], message["obj_uuid"]) == ("VM", UUID)
    publisher.clear_failure(VM)
    settle(publisher)
    assert messages(server) == []


def test_messages_left_by_an_earlier_run_are_reused_or_destroyed(server, xapi, publisher):
    for _ in range(3):  # an earlier daemon (or several) posted these
        xapi.create_vm_message(FAILURE_MESSAGE, UUID, "old")
    xapi.create_vm_message("SOMETHING_ELSE", UUID, "keep")
    publisher.track(VM, UUID, {})
    publisher.set_failure(VM, "new")
    settle(publisher)
    bodies = sorted(m["body"] for m in messages(server))
    assert bodies == ["keep", "old"]
    publisher.clear_failure(VM)
    settle(publisher)
    assert [m["body"] for m in messages(server)] == ["keep"]
    calls = len(server.calls)
    publisher.clear_failure(VM)  # known to be clear: no further XAPI work
    settle(publisher)
    assert len(server.calls) == calls


def test_withdraw_clears_a_message_of_unknown_state(server, xapi, publisher):
    xapi.create_vm_message(FAILURE_MESSAGE, UUID, "old")
    publisher.track(VM, UUID, {})
    publisher.withdraw(VM)
    settle(publisher)
    assert messages(server) == []


def test_jobs_are_retried_until_xapi_answers(server, publisher):
    done = []

    def job(x):
        x.call("VM.get_all_records")
        done.append(1)

    server.down = True
    publisher.submit("job", job)
    threading.Event().wait(0.2)
    assert not done
    server.down = False
    for _ in range(100):
        if done:
            break
        threading.Event().wait(0.02)
    assert done == [1]


def secret_uuids(server) -> set:
    return {record["uuid"] for record in server.records("secret").values()}


def test_tls_secrets_of_a_destroyed_vm_go_when_nothing_references_them(server, publisher):
    server.add("VM", other_config={"xscontainer-tls-ca-cert": "s1"})  # a clone
    server.add("VM", is_a_snapshot=True, other_config={"xscontainer-tls-client-key": "s2"})
    for uuid in ("s1", "s2", "s3"):
        server.add("secret", uuid=uuid, value="PEM " + uuid)
    publisher.submit("tls", secrets.cleanup_job("OpaqueRef:gone", ["s1", "s2", "s3", "s9"]))
    for _ in range(100):
        if "s3" not in secret_uuids(server):
            break
        threading.Event().wait(0.02)
    assert secret_uuids(server) == {"s1", "s2"}  # still used by a clone and a snapshot
