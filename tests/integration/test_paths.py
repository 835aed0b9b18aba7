"""The plugin's two paths to a guest's Docker give the same answers, byte for byte.

A Docker-backed plugin function (get_inspect, get_top, start, stop, restart,
pause, unpause) is served either by the monitor of the VM's host over its live
connection (the warm path) or by the plugin connecting to the guest itself (the
direct path). Both run one implementation; here each is made to serve the same
calls for the same container, through the lab's host.call_plugin as a client
calls it:

* direct: the monitor runs but does not watch the VM (not registered), so it
  answers "unavailable" and the plugin connects itself; or no monitor runs;
* warm: the VM is registered and the monitor's connection is up.

The monitor's `status` control request counts what it served and what it
declined, which tells the paths apart.
"""

import time
import xml.dom.minidom
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
import XenAPI

from xsclab import labctl

from .monitoring import (
    DOCKER_KEYS,
    FAST,
    IMAGE,
    Monitor,
    other_config,
    set_key,
    wait_for,
)

NAME = "paths-web"


def ps_status(xs: Any, vm: labctl.VM) -> Optional[Dict[str, str]]:
    """name -> status as the VM's docker_ps shows them (as XenCenter reads it)."""
    text = other_config(xs, vm).get("docker_ps")
    if text is None:
        return None
    result = {}
    for entry in xml.dom.minidom.parseString(text).getElementsByTagName("entry"):
        fields: Dict[str, str] = {}
        for child in entry.childNodes:
            if child.nodeType == child.ELEMENT_NODE and child.tagName not in fields:
                fields[child.tagName] = "".join(
                    t.data for t in child.childNodes if t.nodeType == t.TEXT_NODE)
        result[fields["names"]] = fields["status"]
    return result


def guest_state(lab: labctl.Lab, vm: labctl.VM) -> str:
    """The container's state as the guest's own Docker says."""
    return lab.exec(vm.name, ["docker", "inspect", "-f", "{{.State.Status}}", NAME]).stdout.strip()


@pytest.fixture
def vm(lab: labctl.Lab, xs: Any) -> Iterator[labctl.VM]:
    """A guest running one container, NAME; left unregistered and empty."""
    vm = lab.vms[0]
    lab.exec(vm.name, ["docker", "run", "-d", "--init", "--name", NAME, IMAGE, "sleep", "1d"])
    # ps's C column (CPU % over the process's life) settles at 0 for an idle process
    time.sleep(2)
    yield vm
    ref = xs.VM.get_by_uuid(vm.uuid)
    for key in ("xscontainer-monitor", *DOCKER_KEYS):
        xs.VM.remove_from_other_config(ref, key)
    lab.exec(vm.name, ["docker", "rm", "-f", NAME], check=False)


@pytest.fixture
def monitor(lab: labctl.Lab, vm: labctl.VM) -> Iterator[Monitor]:
    """The monitor of the VM's host (not yet watching it)."""
    started = Monitor(lab, vm.host, FAST)
    yield started
    started.stop()


def outcome(lab: labctl.Lab, vm: labctl.VM, fn: str, **args: str) -> Tuple[str, Any]:
    """What a client gets: ("value", the string) or ("failure", the error description)."""
    try:
        return ("value", lab.call_plugin(vm.host, fn, dict(vmuuid=vm.uuid, **args)))
    except XenAPI.Failure as exc:
        return ("failure", [str(d) for d in exc.details])


def reads(lab: labctl.Lab, vm: labctl.VM) -> List[Tuple[str, Any]]:
    return [
        outcome(lab, vm, "get_inspect", object=NAME),
        outcome(lab, vm, "get_top", object=NAME),
        outcome(lab, vm, "get_inspect", object="no-such-container"),
        outcome(lab, vm, "get_top", object="no-such-container"),
        outcome(lab, vm, "get_top", object="bad name!"),
    ]


def register_and_connect(xs: Any, vm: labctl.VM, monitor: Monitor) -> None:
    set_key(xs, vm, "xscontainer-monitor", "True")
    wait_for("the monitor's connection to %s" % vm.name,
             lambda: monitor.vm_state(vm.uuid) == "connected", why=monitor.log_tail)
    wait_for("docker_ps", lambda: ps_status(xs, vm) is not None, why=monitor.log_tail)


def test_reads_are_byte_identical_on_both_paths(lab, xs, vm, monitor):
    counts = monitor.counts()
    direct = reads(lab, vm)
    served, declined = monitor.counts()
    # not watched: the monitor declined the four well-formed calls; the bad name
    # was refused before anyone was asked
    assert (served, declined) == (counts[0], counts[1] + 4)

    register_and_connect(xs, vm, monitor)
    warm = reads(lab, vm)
    assert monitor.counts() == (served + 2, declined)  # inspect and top; failures not counted

    assert warm == direct
    (kind, inspect), (_, top) = direct[:2]
    assert kind == "value" and inspect.startswith("True<?xml") and "<docker_inspect>" in inspect
    assert top.startswith("True<?xml") and top.count("<Process>") == 2
    code, message = direct[2][1][:2]
    assert code == "XSCONTAINER_NO_SUCH_CONTAINER" and "no-such-container" in message
    assert direct[4][1][0] == "XSCONTAINER_INVALID_ARGUMENT"

    monitor.stop()  # no monitor at all: the plugin connects itself
    assert reads(lab, vm) == direct


def test_lifecycle_calls_give_true_and_the_same_state_on_both_paths(lab, xs, vm, monitor):
    # the direct path, on a VM that shows docker_ps (as one a monitor published):
    # the plugin refreshes it itself
    set_key(xs, vm, "docker_ps", "<docker_ps/>")
    served, declined = monitor.counts()
    assert outcome(lab, vm, "pause", container=NAME) == ("value", "True")
    assert monitor.counts() == (served, declined + 1)
    direct_state = (guest_state(lab, vm), ps_status(xs, vm),
                    outcome(lab, vm, "get_inspect", object=NAME))
    direct_again = outcome(lab, vm, "pause", container=NAME)  # Docker refuses: already paused
    assert outcome(lab, vm, "unpause", container=NAME) == ("value", "True")
    assert guest_state(lab, vm) == "running" and ps_status(xs, vm) == {NAME: "Up"}
    assert monitor.counts() == (served, declined + 4)  # all four declined

    # the warm path: the monitor publishes docker_ps before it answers
    register_and_connect(xs, vm, monitor)
    wait_for("docker_ps to show the container up",
             lambda: ps_status(xs, vm) == {NAME: "Up"}, why=monitor.log_tail)
    served, declined = monitor.counts()
    assert outcome(lab, vm, "pause", container=NAME) == ("value", "True")
    warm_state = (guest_state(lab, vm), ps_status(xs, vm),
                  outcome(lab, vm, "get_inspect", object=NAME))
    warm_again = outcome(lab, vm, "pause", container=NAME)
    assert outcome(lab, vm, "unpause", container=NAME) == ("value", "True")
    assert monitor.counts() == (served + 3, declined)  # pause, get_inspect, unpause

    assert direct_state[0] == "paused" and direct_state[1] == {NAME: "Up (Paused)"}
    assert warm_state == direct_state  # the get_inspect strings included
    assert direct_again[0] == "failure" and direct_again[1][0] == "XSCONTAINER_DOCKER_ERROR"
    assert warm_again == direct_again
    assert guest_state(lab, vm) == "running" and ps_status(xs, vm) == {NAME: "Up"}
