"""A hostile guest cannot hurt dom0: the guest's dockerd is replaced by the lab's
misbehaving engine (xsclab.hostile_engine, on the guest's /var/run/docker.sock,
reached through SSH as Docker is) and the plugin and the monitor are driven
against it. Each row: the code a client gets, the bound on what is written or
answered, and the time it takes.
"""

import time
from typing import Any, Dict, Iterator, List, Tuple

import pytest
import XenAPI

from xsclab import labctl

from .monitoring import FAST, Monitor, other_config, ref_of, set_key, wait_for

FAILURE = "XSCONTAINER_MONITOR_FAILED"
# the product's documented limits
REQUEST_DEADLINE = 20.0
MAX_DOCKER_PS = 8 * 1024 * 1024


def plugin_failure(lab: labctl.Lab, vm: labctl.VM, fn: str, **args: str) -> Tuple[List[str], float]:
    started = time.monotonic()
    with pytest.raises(XenAPI.Failure) as exc:
        lab.call_plugin(vm.host, fn, dict(args, vmuuid=vm.uuid))
    return [str(d) for d in exc.value.details], time.monotonic() - started


@pytest.fixture(scope="module")
def pair(lab: labctl.Lab) -> Tuple[labctl.VM, labctl.VM]:
    """Two guests on the same host: the hostile one and a healthy neighbour."""
    for bad in lab.vms:
        for good in lab.vms:
            if good is not bad and good.host == bad.host:
                return bad, good
    pytest.fail("the lab has no two VMs on one host: %r" % [(v.name, v.host) for v in lab.vms])


@pytest.fixture
def bad(pair: Tuple[labctl.VM, labctl.VM]) -> labctl.VM:
    return pair[0]


# -- the plugin --------------------------------------------------------------------------


@pytest.mark.parametrize("mode, fn, code, words", [
    ("inspect-list", "get_inspect", "XSCONTAINER_DOCKER_MALFORMED_REPLY",
     "a JSON list instead of an object"),
    ("version-list", "get_inspect", "XSCONTAINER_DOCKER_MALFORMED_REPLY",
     "a JSON list instead of an object"),
    ("top-titles-number", "get_top", "XSCONTAINER_DOCKER_MALFORMED_REPLY",
     "Titles is a JSON number instead of a list"),
    ("inspect-deep", "get_inspect", "XSCONTAINER_DOCKER_MALFORMED_REPLY", "nested too deeply"),
    ("inspect-truncated", "get_inspect", "XSCONTAINER_DOCKER_MALFORMED_REPLY",
     "ended before its announced length"),
    ("inspect-not-json", "get_inspect", "XSCONTAINER_DOCKER_MALFORMED_REPLY", "not JSON"),
    ("error-list", "get_inspect", "XSCONTAINER_DOCKER_MALFORMED_REPLY", "malformed reply"),
    ("inspect-gzip-bomb", "get_inspect", "XSCONTAINER_DOCKER_MALFORMED_REPLY",
     "gzip-encoded reply"),
    ("inspect-endless", "get_inspect", "XSCONTAINER_RESPONSE_TOO_LARGE",
     "exceeded 33554432 bytes"),
    ("top-empty-rows", "get_top", "XSCONTAINER_RESPONSE_TOO_LARGE", "more than 400000 JSON values"),
])
def test_garbage_gets_a_stable_code_at_once(lab, bad, mode, fn, code, words):
    with lab.hostile_engine(bad.name, mode):
        details, elapsed = plugin_failure(lab, bad, fn, object="web")
    assert details[0] == code, details[:2]
    assert words in details[1]
    assert "Check that Docker is running" not in details[1]
    assert elapsed < 10.0


def test_a_huge_string_is_refused_not_escaped(lab, bad):
    with lab.hostile_engine(bad.name, "inspect-huge-string", size=30 * 1000 * 1000):
        details, elapsed = plugin_failure(lab, bad, "get_inspect", object="web")
    assert details[0] == "XSCONTAINER_RESPONSE_TOO_LARGE"
    assert "inspect document would exceed 4194304 characters" in details[1]
    assert elapsed < 15.0


def test_empty_process_rows_are_dropped_not_amplified(lab, bad):
    # 600 KB of `[],`: 200,000 rows, none a process
    with lab.hostile_engine(bad.name, "top-empty-rows", size=600 * 1000):
        started = time.monotonic()
        value = lab.call_plugin(bad.host, "get_top", {"vmuuid": bad.uuid, "object": "web"})
    assert value == 'True<?xml version="1.0" ?><docker_top/>'
    assert time.monotonic() - started < 10.0


@pytest.mark.parametrize("mode", ["inspect-trickle", "headers-trickle"])
def test_a_trickling_reply_is_a_timeout_within_the_request_deadline(lab, bad, mode):
    with lab.hostile_engine(bad.name, mode, interval=1.0):
        details, elapsed = plugin_failure(lab, bad, "get_inspect", object="web")
    assert details[0] == "XSCONTAINER_TIMEOUT", details
    assert "did not arrive within" in details[1]
    # the first request trickling (negotiation for headers-trickle, else inspect)
    assert REQUEST_DEADLINE - 1 < elapsed < REQUEST_DEADLINE + 8


# -- the monitor -------------------------------------------------------------------------


def messages(xs: Any, vm: labctl.VM) -> Dict[str, Dict[str, Any]]:
    return {ref: rec for ref, rec in xs.message.get_all_records().items()
            if rec["name"] == FAILURE and rec["obj_uuid"] == vm.uuid}


@pytest.fixture
def monitored(lab, xs, pair, monkeypatch) -> Iterator[Any]:
    """Both guests registered; `start()` runs the monitor of their host (short
    timings, connect deadline 4 s); afterwards deregistered and messages gone."""
    monkeypatch.setenv("XSCONTAINER_MONITOR_CONNECT_DEADLINE", "4")
    monitors: List[Monitor] = []
    for vm in pair:
        set_key(xs, vm, "xscontainer-monitor", "True")

    def start() -> Monitor:
        monitor = Monitor(lab, pair[0].host, FAST)
        monitors.append(monitor)
        return monitor

    yield start
    for monitor in monitors:
        monitor.stop()
    for vm in pair:
        set_key(xs, vm, "xscontainer-monitor", "False")
        for key in ("docker_ps", "docker_info", "docker_version"):
            xs.VM.remove_from_other_config(ref_of(xs, vm), key)
        for ref in messages(xs, vm):
            xs.message.destroy(ref)


def test_a_trickling_guest_fails_at_the_deadline_while_its_neighbour_is_published(
        lab, xs, pair, monitored):
    bad, good = pair
    lab.exec(good.name, ["docker", "rm", "-f", "neighbour"], check=False)
    with lab.hostile_engine(bad.name, "ps-trickle", interval=1.0):
        started = time.monotonic()
        monitor = monitored()
        wait_for("the neighbour's docker_ps", lambda: "docker_ps" in other_config(xs, good))
        found = wait_for("the failure message", lambda: messages(xs, bad), timeout=30,
                         why=monitor.log_tail)
        elapsed = time.monotonic() - started
        # the attempt ends at the 4 s deadline, counted as failing from its start:
        # the message follows the 3 s grace at once
        assert 4.0 < elapsed < 12.0
        state = monitor.vm(bad.uuid)
        assert state["state"] == "failing" and state["failures"] >= 1
        assert "did not arrive within" in state["last_error"]
        assert "docker_ps" not in other_config(xs, bad)
        (message,) = found.values()
        assert "Container management diagnosis" in message["body"]
        # the neighbour keeps being published meanwhile
        lab.exec(good.name, ["docker", "run", "-d", "--init", "--name", "neighbour",
                             "xsc-test/busybox", "sleep", "1d"])
        try:
            wait_for("the neighbour's new container",
                     lambda: "<names>neighbour</names>" in other_config(xs, good).get(
                         "docker_ps", ""), timeout=15)
        finally:
            lab.exec(good.name, ["docker", "rm", "-f", "neighbour"], check=False)


def test_a_list_of_empty_objects_publishes_an_empty_docker_ps(lab, xs, pair, monitored):
    bad, _good = pair
    # 600 KB of `{},`: 200,000 items, none a container (the 30.6 MB docker_ps)
    with lab.hostile_engine(bad.name, "ps-empty-objects", size=600 * 1000):
        monitor = monitored()
        ps = wait_for("docker_ps", lambda: other_config(xs, bad).get("docker_ps"),
                      why=monitor.log_tail)
        assert ps == '<?xml version="1.0" ?><docker_ps/>'
        assert monitor.vm(bad.uuid)["state"] == "connected"


def test_a_list_with_too_many_values_is_a_failure_not_memory(lab, xs, pair, monitored):
    bad, good = pair
    # 3 MB of `{},`: a million values (the 153 MB docker_ps, 1.54 GB of memory)
    with lab.hostile_engine(bad.name, "ps-empty-objects", size=3 * 1000 * 1000):
        monitor = monitored()
        wait_for("the failure message", lambda: messages(xs, bad), timeout=30,
                 why=monitor.log_tail)
        assert "more than 400000 JSON values" in monitor.vm(bad.uuid)["last_error"]
        assert "docker_ps" not in other_config(xs, bad)
        assert "docker_ps" in other_config(xs, good)
