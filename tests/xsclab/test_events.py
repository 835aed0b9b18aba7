"""event.from: tokens, add/mod/del with snapshots, blocking, no missed change."""

import threading
import time
from typing import Any, Dict, List

import pytest
import XenAPI

from xsclab.simharness import Simulator


def event_from(session: XenAPI.Session, classes: List[str], token: str, timeout: float
               ) -> Dict[str, Any]:
    return getattr(session.xenapi.event, "from")(classes, token, timeout)


def current_token(session: XenAPI.Session) -> str:
    return event_from(session, ["pool"], "", 0.0)["token"]


def test_empty_token_returns_every_object_as_add(session: XenAPI.Session, vm: str) -> None:
    result = event_from(session, ["VM"], "", 1.0)
    events = result["events"]
    assert {e["ref"] for e in events} == set(session.xenapi.VM.get_all())
    assert {e["operation"] for e in events} == {"add"}
    assert {e["class"] for e in events} == {"vm"}
    mine = next(e for e in events if e["ref"] == vm)
    assert mine["snapshot"]["name_label"] == "xsc-vm1"
    assert set(mine) == {"id", "timestamp", "class", "operation", "ref", "snapshot"}
    assert result["valid_ref_counts"]["vm"] == len(events)
    first, second = result["token"].split(",")
    assert len(first) == len(second) == 20 and first.isdigit()


def test_mod_and_coalescing(session: XenAPI.Session, vm: str) -> None:
    token = current_token(session)
    session.xenapi.VM.add_to_other_config(vm, "ev-a", "1")
    session.xenapi.VM.add_to_other_config(vm, "ev-b", "2")
    result = event_from(session, ["vm"], token, 5.0)
    assert [(e["operation"], e["ref"]) for e in result["events"]] == [("mod", vm)]
    snapshot = result["events"][0]["snapshot"]
    assert (snapshot["other_config"]["ev-a"], snapshot["other_config"]["ev-b"]) == ("1", "2")
    session.xenapi.VM.remove_from_other_config(vm, "ev-a")
    session.xenapi.VM.remove_from_other_config(vm, "ev-b")


def test_add_and_del(session: XenAPI.Session) -> None:
    token = current_token(session)
    secret = session.xenapi.secret.create({"value": "s"})
    result = event_from(session, ["secret"], token, 5.0)
    assert [(e["operation"], e["ref"]) for e in result["events"]] == [("add", secret)]
    assert result["events"][0]["snapshot"]["value"] == "s"
    session.xenapi.secret.destroy(secret)
    result = event_from(session, ["secret"], result["token"], 5.0)
    assert [(e["operation"], e["ref"]) for e in result["events"]] == [("del", secret)]
    assert "snapshot" not in result["events"][0]


def test_created_and_destroyed_between_calls_gives_nothing(session: XenAPI.Session) -> None:
    token = current_token(session)
    session.xenapi.secret.destroy(session.xenapi.secret.create({"value": "gone"}))
    assert event_from(session, ["secret"], token, 0.2)["events"] == []


def test_message_events(session: XenAPI.Session, vm: str) -> None:
    token = current_token(session)
    ref = session.xenapi.message.create("m", "3", "VM", session.xenapi.VM.get_uuid(vm), "b")
    result = event_from(session, ["message"], token, 5.0)
    assert [(e["class"], e["operation"], e["ref"]) for e in result["events"]] == [
        ("message", "add", ref)]
    session.xenapi.message.destroy(ref)
    result = event_from(session, ["message"], result["token"], 5.0)
    assert [(e["operation"], e["ref"]) for e in result["events"]] == [("del", ref)]


def test_object_subscription(session: XenAPI.Session, vm: str) -> None:
    dom0 = [r for r, v in session.xenapi.VM.get_all_records().items() if v["is_control_domain"]]
    token = current_token(session)
    session.xenapi.VM.add_to_other_config(dom0[0], "ev-dom0", "x")
    session.xenapi.VM.add_to_other_config(vm, "ev-obj", "x")
    result = event_from(session, ["vm/" + vm], token, 5.0)
    assert [e["ref"] for e in result["events"]] == [vm]
    session.xenapi.VM.remove_from_other_config(dom0[0], "ev-dom0")
    session.xenapi.VM.remove_from_other_config(vm, "ev-obj")


def test_power_and_guest_metrics_changes_are_vm_mods(session: XenAPI.Session, vm: str) -> None:
    networks = session.xenapi.VM_guest_metrics.get_networks(session.xenapi.VM.get_guest_metrics(vm))
    token = current_token(session)
    session.xenapi.lab.VM.set_guest_networks(vm, {})
    result = event_from(session, ["vm"], token, 5.0)
    assert result["events"][0]["snapshot"]["guest_metrics"] == "OpaqueRef:NULL"
    session.xenapi.lab.VM.set_guest_networks(vm, networks)
    result = event_from(session, ["vm"], result["token"], 5.0)
    assert result["events"][0]["snapshot"]["guest_metrics"] != "OpaqueRef:NULL"
    session.xenapi.VM.hard_shutdown(vm)
    result = event_from(session, ["vm"], result["token"], 5.0)
    assert result["events"][0]["snapshot"]["power_state"] == "Halted"
    session.xenapi.VM.start(vm, False, False)


def test_blocks_until_timeout(session: XenAPI.Session) -> None:
    token = current_token(session)
    started = time.monotonic()
    result = event_from(session, ["secret"], token, 0.5)
    assert 0.45 <= time.monotonic() - started < 3
    assert result["events"] == []
    assert result["token"] == token


def test_wakes_up_on_a_change(sim: Simulator, session: XenAPI.Session, vm: str) -> None:
    token = current_token(session)
    writer = sim.unix()
    timer = threading.Timer(0.3, writer.xenapi.VM.add_to_other_config, (vm, "ev-wake", "1"))
    started = time.monotonic()
    timer.start()
    result = event_from(session, ["vm"], token, 30.0)
    timer.join()
    assert time.monotonic() - started < 5
    assert result["events"][0]["snapshot"]["other_config"]["ev-wake"] == "1"
    writer.xenapi.VM.remove_from_other_config(vm, "ev-wake")
    writer.xenapi.session.logout()


def test_no_change_is_missed_between_calls(sim: Simulator, session: XenAPI.Session, vm: str
                                           ) -> None:
    """A writer adds keys while a reader loops on event.from: the reader's last
    snapshot must hold every key, and each snapshot only ever grows."""
    count = 200
    writer = sim.unix()
    token = current_token(session)

    def write() -> None:
        for i in range(count):
            writer.xenapi.VM.add_to_other_config(vm, "seq-%03d" % i, str(i))

    thread = threading.Thread(target=write)
    thread.start()
    seen = 0
    deadline = time.monotonic() + 20
    while seen < count and time.monotonic() < deadline:
        result = event_from(session, ["vm"], token, 5.0)
        token = result["token"]
        for event in result["events"]:
            keys = [k for k in event["snapshot"]["other_config"] if k.startswith("seq-")]
            assert len(keys) >= seen
            seen = len(keys)
    thread.join()
    assert seen == count
    for i in range(count):
        writer.xenapi.VM.remove_from_other_config(vm, "seq-%03d" % i)
    writer.xenapi.session.logout()


def test_logout_ends_a_blocked_call(sim: Simulator) -> None:
    raw = sim.raw()
    ref = raw.session.login_with_password("root", "xscontainer-lab")["Value"]
    token = getattr(raw.event, "from")(ref, ["secret"], "", 0.0)["Value"]["token"]
    results: List[Any] = []
    waiter = threading.Thread(
        target=lambda: results.append(getattr(sim.raw().event, "from")(
            ref, ["secret"], token, 30.0)))
    waiter.start()
    time.sleep(0.3)
    raw.session.logout(ref)
    waiter.join(5)
    assert results == [{"Status": "Failure", "ErrorDescription": ["SESSION_INVALID", ref]}]


@pytest.mark.parametrize("token", ["junk", "1,2,3"])
def test_bad_token(session: XenAPI.Session, token: str) -> None:
    with pytest.raises(XenAPI.Failure) as e:
        event_from(session, ["vm"], token, 0.0)
    assert list(e.value.details) == ["EVENT_FROM_TOKEN_PARSE_FAILURE", token]


def test_event_from_alias_is_unknown_as_in_xapi(session: XenAPI.Session) -> None:
    with pytest.raises(XenAPI.Failure) as e:
        session.xenapi.event_from(["vm"], "", 0.0)
    assert list(e.value.details) == ["MESSAGE_METHOD_UNKNOWN", "event_from"]
