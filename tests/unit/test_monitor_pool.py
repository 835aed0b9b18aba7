"""The supervisor: XAPI records and events in, worker and publisher decisions out."""

import resource
from typing import Any, Dict, List

import pytest

from xscontainer.monitor import daemon, secrets
from xscontainer.monitor.options import Settings
from xscontainer.monitor.pool import Supervisor

from .fakexapi import FakeXapiServer

HERE, THERE = "OpaqueRef:host-here", "OpaqueRef:host-there"


def vm(uuid: str, **changes: Any) -> Dict[str, Any]:
    record = {"uuid": uuid, "name_label": uuid, "power_state": "Running", "resident_on": HERE,
              "guest_metrics": "OpaqueRef:gm", "is_control_domain": False,
              "is_a_template": False, "is_a_snapshot": False,
              "other_config": {"xscontainer-monitor": "True"}}
    config = changes.pop("other_config", None)
    record.update(changes)
    if config is not None:
        record["other_config"] = config
    return record


class FakeWorker:
    def __init__(self, ref: str, record: Dict[str, Any]) -> None:
        self.ref, self.uuid = ref, record["uuid"]
        self.records = [record]
        self.started = self.stopped = False
        self.alive = True

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.stopped = True
        self.alive = False

    def update(self, record: Dict[str, Any]) -> None:
        self.records.append(record)

    def is_alive(self) -> bool:
        return self.alive

    def join(self, timeout: float) -> bool:
        return True


class FakePublisher:
    def __init__(self) -> None:
        self.calls: List[tuple] = []
        self.jobs: List[Any] = []
        self.tracked_refs: set = set()

    def track(self, ref, uuid, current):
        self.calls.append(("track", ref))
        self.tracked_refs.add(ref)

    def observe(self, ref, current):
        self.calls.append(("observe", ref, current["docker_ps"]))

    def withdraw(self, ref):
        self.calls.append(("withdraw", ref))
        self.tracked_refs.discard(ref)

    def forget(self, ref):
        self.calls.append(("forget", ref))
        self.tracked_refs.discard(ref)

    def submit(self, name, job, delay=0.0):
        self.jobs.append((name, job, delay))

    def is_tracked(self, ref):
        return ref in self.tracked_refs


@pytest.fixture
def sup():
    workers: Dict[str, FakeWorker] = {}

    def factory(ref, record):
        workers[ref] = FakeWorker(ref, record)
        return workers[ref]

    supervisor = Supervisor(FakePublisher(), Settings(sweep_delay=7.0), factory)  # type: ignore[arg-type]
    supervisor.fake_workers = workers  # type: ignore[attr-defined]
    return supervisor


def test_full_load_starts_exactly_the_vms_to_monitor(sup):
    records = {"OpaqueRef:a": vm("a"), "OpaqueRef:b": vm("b", resident_on=THERE),
               "OpaqueRef:c": vm("c", other_config={}), "OpaqueRef:t": vm("t", is_a_template=True)}
    sup.full_load(records, HERE, THERE)
    assert [w.uuid for w in sup.workers()] == ["a"]
    assert sup.fake_workers["OpaqueRef:a"].started
    assert ("track", "OpaqueRef:a") in sup.publisher.calls


def test_events_start_update_and_stop(sup):
    sup.full_load({}, HERE, HERE)
    sup.on_events([{"class": "vm", "operation": "add", "ref": "OpaqueRef:a", "snapshot": vm("a")}])
    worker = sup.fake_workers["OpaqueRef:a"]
    changed = vm("a", other_config={"xscontainer-monitor": "True", "docker_ps": "<x/>"})
    sup.on_events([{"class": "vm", "operation": "mod", "ref": "OpaqueRef:a", "snapshot": changed}])
    assert worker.records[-1] is changed
    assert ("observe", "OpaqueRef:a", "<x/>") in sup.publisher.calls
    away = vm("a", resident_on=THERE)  # migrated to another host
    sup.on_events([{"class": "vm", "operation": "mod", "ref": "OpaqueRef:a", "snapshot": away}])
    assert worker.stopped and sup.workers() == []
    assert sup.publisher.calls[-1] == ("withdraw", "OpaqueRef:a")
    back = vm("a")
    sup.on_events([{"class": "vm", "operation": "mod", "ref": "OpaqueRef:a", "snapshot": back}])
    assert sup.fake_workers["OpaqueRef:a"] is not worker and sup.workers()


def test_a_vm_gone_while_disconnected_is_noticed_at_the_next_full_load(sup):
    sup.full_load({"OpaqueRef:a": vm("a")}, HERE, HERE)
    sup.full_load({}, HERE, HERE)
    assert sup.fake_workers["OpaqueRef:a"].stopped
    assert ("forget", "OpaqueRef:a") in sup.publisher.calls


def test_tls_secrets_are_cleaned_up_by_the_master_only(sup):
    tls = {"xscontainer-tls-ca-cert": "s1", "xscontainer-tls-client-key": "s2"}
    for master, expected in ((THERE, 0), (HERE, 1)):
        sup.publisher.jobs.clear()
        sup.full_load({"OpaqueRef:t": vm("t", is_a_template=True, other_config=tls)},
                      HERE, master)
        sup.on_events([{"class": "vm", "operation": "del", "ref": "OpaqueRef:t"}])
        assert len(sup.publisher.jobs) == expected


def test_the_cleanup_keeps_secrets_still_referenced():
    server = FakeXapiServer()
    server.add("VM", uuid="s", is_a_snapshot=True,
               other_config={"xscontainer-tls-ca-cert": "s1"})
    for uuid in ("s1", "s2"):
        server.add("secret", uuid=uuid, value="PEM " + uuid)
    secrets.cleanup_job("OpaqueRef:gone", ["s1", "s2"])(server.xapi())
    assert [r["uuid"] for r in server.records("secret").values()] == ["s1"]
    assert server.count("secret.destroy") == 1


def test_master_learns_about_a_new_master(sup):
    sup.full_load({}, HERE, THERE)
    assert not sup.is_master
    sup.on_events([{"class": "pool", "operation": "mod", "ref": "OpaqueRef:pool",
                    "snapshot": {"master": HERE}}])
    assert sup.is_master


def test_halted_vm_with_docker_data_is_swept_later_by_the_master(sup):
    stale = vm("h", power_state="Halted", resident_on="OpaqueRef:NULL",
               other_config={"docker_ps": "<docker_ps/>"})
    sup.full_load({"OpaqueRef:h": stale}, HERE, HERE)
    ((name, _job, delay),) = sup.publisher.jobs
    assert delay == 7.0 and "sweeping" in name
    sup.on_record("OpaqueRef:h", stale)  # not scheduled twice
    assert len(sup.publisher.jobs) == 1


def test_dead_workers_are_restarted(sup):
    sup.full_load({"OpaqueRef:a": vm("a")}, HERE, HERE)
    first = sup.fake_workers["OpaqueRef:a"]
    first.alive = False
    sup.check()
    assert sup.fake_workers["OpaqueRef:a"] is not first and sup.restarts == 1


def test_stop_all_withdraws_every_monitored_vm(sup):
    sup.full_load({"OpaqueRef:a": vm("a"), "OpaqueRef:b": vm("b")}, HERE, HERE)
    assert sup.stop_all(1.0)
    assert {c for c in sup.publisher.calls if c[0] == "withdraw"} == {
        ("withdraw", "OpaqueRef:a"), ("withdraw", "OpaqueRef:b")}
    sup.on_record("OpaqueRef:c", vm("c"))  # nothing starts once stopped
    assert "OpaqueRef:c" not in sup.fake_workers


def _event(ref, record):
    return [{"class": "vm", "operation": "mod", "ref": ref, "snapshot": record}]


def test_a_flag_removed_and_added_again_keeps_the_worker_and_the_data(sup):
    sup.full_load({"OpaqueRef:a": vm("a")}, HERE, HERE)
    worker = sup.fake_workers["OpaqueRef:a"]
    sup.on_events(_event("OpaqueRef:a", vm("a", other_config={"docker_ps": "<x/>"})))
    assert not worker.stopped and sup.workers() == [worker]
    ((_name, settle, delay),) = [j for j in sup.publisher.jobs if "registration" in j[0]]
    assert delay == sup.flag_settle > 0
    sup.on_events(_event("OpaqueRef:a", vm("a")))  # the add of remove-then-add
    settle(None)  # the settle time passes: nothing to do any more
    assert not worker.stopped and sup.workers() == [worker]
    assert not [c for c in sup.publisher.calls if c[0] == "withdraw"]


def test_a_flag_that_stays_absent_stops_monitoring_after_the_settle_time(sup):
    sup.full_load({"OpaqueRef:a": vm("a")}, HERE, HERE)
    worker = sup.fake_workers["OpaqueRef:a"]
    gone = vm("a", other_config={"docker_ps": "<x/>"})
    sup.on_events(_event("OpaqueRef:a", gone))
    sup.on_events(_event("OpaqueRef:a", gone))  # another event: still one check
    (settle,) = [j[1] for j in sup.publisher.jobs if "registration" in j[0]]
    assert not worker.stopped
    settle(None)
    assert worker.stopped and sup.workers() == []
    assert sup.publisher.calls[-1] == ("withdraw", "OpaqueRef:a")


def test_a_flag_set_to_false_or_a_migration_stops_at_once(sup):
    sup.full_load({"OpaqueRef:a": vm("a"), "OpaqueRef:b": vm("b")}, HERE, HERE)
    sup.on_events(_event("OpaqueRef:a", vm("a", other_config={"xscontainer-monitor": "False"})))
    sup.on_events(_event("OpaqueRef:b", vm("b", other_config={}, resident_on=THERE)))
    assert sup.workers() == []
    assert {c for c in sup.publisher.calls if c[0] == "withdraw"} == {
        ("withdraw", "OpaqueRef:a"), ("withdraw", "OpaqueRef:b")}
    assert not [j for j in sup.publisher.jobs if "registration" in j[0]]


def test_the_monitor_raises_its_open_files_limit_within_the_hard_one():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        want = 4096 if hard == resource.RLIM_INFINITY else min(4096, hard)
        assert daemon.raise_open_files_limit(4096) == want
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (want, hard)
        assert daemon.raise_open_files_limit(128) == want  # never lowered
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
