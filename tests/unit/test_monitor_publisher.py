"""The publisher against an in-memory stand-in for XAPI (counting every write)."""

import threading
from typing import Any, Dict, List, Optional

import pytest

from xscontainer import errors
from xscontainer.monitor import secrets
from xscontainer.monitor.publisher import Publisher
from xscontainer.xapi_keys import MONITOR_FAILED_MESSAGE as FAILURE_MESSAGE

VM = "OpaqueRef:vm-1"
UUID = "11111111-2222-3333-4444-555555555555"
PS, INFO, VERSION = "docker_ps", "docker_info", "docker_version"


class FakeXapi:
    """The Xapi methods the publisher uses, on dicts; `down` makes every call fail."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.other_config: Dict[str, Dict[str, str]] = {VM: {"folder": "/mine"}}
        self.uuids = {VM: UUID}
        self.messages: Dict[str, Dict[str, Any]] = {}
        self.secrets = {"s1", "s2", "s3"}
        self.records: Dict[str, Dict[str, Any]] = {}
        self.writes: List[tuple] = []
        self.reads = 0
        self.down = False
        self._n = 0

    def _check(self, ref: Optional[str] = None) -> None:
        if self.down:
            raise errors.XAPIError("XAPI is down", "OSError", "connection refused")
        if ref is not None and ref not in self.other_config:
            raise errors.XAPIError("gone", "HANDLE_INVALID", "VM", ref)

    def vm_other_config(self, ref: str) -> Dict[str, str]:
        with self.lock:
            self._check(ref)
            self.reads += 1
            return dict(self.other_config[ref])

    def set_vm_other_config(self, ref: str, key: str, value: str) -> None:
        with self.lock:
            self._check(ref)
            self.writes.append(("set", key, value))
            self.other_config[ref][key] = value

    def remove_vm_other_config(self, ref: str, key: str) -> None:
        with self.lock:
            self._check(ref)
            self.writes.append(("remove", key))
            self.other_config[ref].pop(key, None)

    def call(self, method: str, *args: Any) -> Any:
        with self.lock:
            self._check()
            if method == "message.get":
                _cls, uuid, _since = args
                return {ref: dict(m) for ref, m in self.messages.items()
                        if m["obj_uuid"] == uuid}
            if method == "VM.get_all_records":
                return {ref: dict(r) for ref, r in self.records.items()}
        raise AssertionError(method)

    def create_vm_message(self, name: str, uuid: str, body: str, priority: int = 3) -> str:
        with self.lock:
            self._check()
            self._n += 1
            ref = "OpaqueRef:msg-%d" % self._n
            self.messages[ref] = {"name": name, "obj_uuid": uuid, "body": body,
                                  "priority": str(priority), "timestamp": "2026%04d" % self._n}
            return ref

    def destroy_message(self, ref: str) -> None:
        with self.lock:
            self._check()
            self.messages.pop(ref, None)

    def destroy_secret(self, uuid: str) -> None:
        with self.lock:
            self._check()
            self.secrets.discard(uuid)


@pytest.fixture
def xapi():
    return FakeXapi()


@pytest.fixture
def publisher(xapi):
    p = Publisher(xapi, retry_first=0.01, retry_cap=0.05)  # type: ignore[arg-type]
    thread = threading.Thread(target=p.run, daemon=True)
    thread.start()
    yield p
    p.stop()
    thread.join(5)
    assert not thread.is_alive()


def settle(p: Publisher) -> None:
    assert p.flush(5.0)


def test_values_xapi_already_holds_are_not_written(xapi, publisher):
    xapi.other_config[VM].update({PS: "<ps1/>", INFO: "<i/>"})
    publisher.track(VM, UUID, {PS: "<ps1/>", INFO: "<i/>", VERSION: None})
    publisher.set(VM, PS, "<ps1/>")
    publisher.set(VM, INFO, "<i/>")
    publisher.set(VM, VERSION, "<v/>")
    settle(publisher)
    assert xapi.writes == [("set", VERSION, "<v/>")]
    assert xapi.other_config[VM]["folder"] == "/mine"


def test_only_the_latest_value_is_written(xapi, publisher):
    xapi.down = True  # hold the writes back while values change
    publisher.track(VM, UUID, {})
    for n in range(100):
        publisher.set(VM, PS, "<ps%d/>" % n)
    xapi.down = False
    settle(publisher)
    assert xapi.writes == [("set", PS, "<ps99/>")]


def test_writes_failed_while_xapi_was_down_are_redone(xapi, publisher):
    publisher.track(VM, UUID, {})
    xapi.down = True
    publisher.set(VM, PS, "<a/>")
    assert not publisher.flush(0.2)
    assert publisher.xapi_failures >= 1
    xapi.down = False
    settle(publisher)
    assert xapi.other_config[VM][PS] == "<a/>"


def test_a_stale_snapshot_costs_a_read_not_a_write(xapi, publisher):
    publisher.track(VM, UUID, {})
    publisher.set(VM, PS, "<a/>")
    settle(publisher)
    reads = xapi.reads
    publisher.observe(VM, {PS: None, INFO: None, VERSION: None})  # from before our write
    settle(publisher)
    assert xapi.reads == reads + 1
    assert xapi.writes == [("set", PS, "<a/>")]


def test_a_key_someone_else_removed_or_changed_is_republished(xapi, publisher):
    publisher.track(VM, UUID, {})
    publisher.set(VM, PS, "<a/>")
    settle(publisher)
    del xapi.other_config[VM][PS]
    publisher.observe(VM, {PS: None})
    settle(publisher)
    assert xapi.other_config[VM][PS] == "<a/>"
    xapi.other_config[VM][PS] = "<forged/>"
    publisher.observe(VM, {PS: "<forged/>"})
    settle(publisher)
    assert xapi.other_config[VM][PS] == "<a/>"
    assert xapi.writes.count(("set", PS, "<a/>")) == 3


def test_a_thousand_foreign_changes_cause_no_write(xapi, publisher):
    publisher.track(VM, UUID, {})
    publisher.set(VM, PS, "<a/>")
    settle(publisher)
    for n in range(1000):
        xapi.other_config[VM]["folder"] = "/x%d" % n
        publisher.observe(VM, {PS: "<a/>", INFO: None, VERSION: None})
    settle(publisher)
    assert xapi.writes == [("set", PS, "<a/>")]
    assert xapi.other_config[VM]["folder"] == "/x999"


def test_withdraw_removes_what_we_wrote_and_forgets(xapi, publisher):
    publisher.track(VM, UUID, {})
    publisher.set(VM, PS, "<a/>")
    publisher.set(VM, VERSION, "<v/>")
    settle(publisher)
    publisher.withdraw(VM)
    settle(publisher)
    assert PS not in xapi.other_config[VM] and VERSION not in xapi.other_config[VM]
    assert ("remove", INFO) not in xapi.writes  # never written, never removed
    assert not publisher.is_tracked(VM)
    # what another host publishes afterwards (migration) is left alone
    xapi.other_config[VM][PS] = "<theirs/>"
    publisher.observe(VM, {PS: "<theirs/>"})
    publisher.set(VM, PS, "<late/>")
    settle(publisher)
    assert xapi.other_config[VM][PS] == "<theirs/>"


def test_tracking_again_during_a_withdrawal_reads_first(xapi, publisher):
    publisher.track(VM, UUID, {})
    publisher.set(VM, PS, "<a/>")
    settle(publisher)
    xapi.down = True
    publisher.withdraw(VM)
    publisher.track(VM, UUID, {PS: "<a/>"})
    publisher.set(VM, PS, "<a/>")
    xapi.down = False
    settle(publisher)
    assert xapi.other_config[VM][PS] == "<a/>"
    assert xapi.writes == [("set", PS, "<a/>")]


def test_a_destroyed_vm_is_forgotten(xapi, publisher):
    publisher.track(VM, UUID, {})
    del xapi.other_config[VM]
    publisher.set(VM, PS, "<a/>")
    settle(publisher)
    assert not publisher.is_tracked(VM)


def test_wait_written(xapi, publisher):
    publisher.track(VM, UUID, {})
    publisher.set(VM, PS, "<a/>")
    assert publisher.wait_written(VM, PS, "<a/>", 5.0)
    assert not publisher.wait_written(VM, PS, "<b/>", 0.05)


def test_failure_message_posted_once_reused_and_destroyed(xapi, publisher):
    publisher.track(VM, UUID, {})
    publisher.set_failure(VM, "diagnosis 1")
    settle(publisher)
    publisher.set_failure(VM, "diagnosis 2")
    settle(publisher)
    assert [m["body"] for m in xapi.messages.values()] == ["diagnosis 1"]
    (message,) = xapi.messages.values()
    assert (message["name"], message["priority"]) == (FAILURE_MESSAGE, "3")
    publisher.clear_failure(VM)
    settle(publisher)
    assert xapi.messages == {}


def test_messages_left_by_an_earlier_run_are_reused_or_destroyed(xapi, publisher):
    for _ in range(3):  # an earlier daemon (or several) posted these
        xapi.create_vm_message(FAILURE_MESSAGE, UUID, "old")
    xapi.create_vm_message("SOMETHING_ELSE", UUID, "keep")
    publisher.track(VM, UUID, {})
    publisher.set_failure(VM, "new")
    settle(publisher)
    bodies = sorted(m["body"] for m in xapi.messages.values())
    assert bodies == ["keep", "old"]
    publisher.clear_failure(VM)
    settle(publisher)
    assert [m["body"] for m in xapi.messages.values()] == ["keep"]
    reads = len(xapi.writes)
    publisher.clear_failure(VM)  # known to be clear: no further XAPI work
    settle(publisher)
    assert len(xapi.writes) == reads


def test_withdraw_clears_a_message_of_unknown_state(xapi, publisher):
    xapi.create_vm_message(FAILURE_MESSAGE, UUID, "old")
    publisher.track(VM, UUID, {})
    publisher.withdraw(VM)
    settle(publisher)
    assert xapi.messages == {}


def test_jobs_are_retried_until_xapi_answers(xapi, publisher):
    done = []

    def job(x):
        x.call("VM.get_all_records")
        done.append(1)

    xapi.down = True
    publisher.submit("job", job)
    threading.Event().wait(0.2)
    assert not done
    xapi.down = False
    for _ in range(100):
        if done:
            break
        threading.Event().wait(0.02)
    assert done == [1]


def test_tls_secrets_of_a_destroyed_vm_go_when_nothing_references_them(xapi, publisher):
    xapi.records = {
        "OpaqueRef:clone": {"other_config": {"xscontainer-tls-ca-cert": "s1"}},
        "OpaqueRef:snap": {"is_a_snapshot": True,
                           "other_config": {"xscontainer-tls-client-key": "s2"}},
    }
    publisher.submit("tls", secrets.cleanup_job("OpaqueRef:gone", ["s1", "s2", "s3", "s9"]))
    for _ in range(100):
        if "s3" not in xapi.secrets:
            break
        threading.Event().wait(0.02)
    assert xapi.secrets == {"s1", "s2"}  # still used by a clone and a snapshot
