"""The plugin's two paths to a guest's Docker give the same answers, byte for byte.

A Docker-backed plugin function (get_inspect, get_top, start, stop, restart,
pause, unpause) is served either by the monitor of the VM's host over its live
connection (the warm path) or by the plugin connecting to the guest itself (the
direct path). Both run one implementation; here each is made to serve the same
calls for the same container, through the lab's host.call_plugin as a client
calls it:

* direct: the monitor runs but does not watch the VM (not registered), so it
  declines and the plugin connects itself; or no monitor runs;
* warm: the VM is registered and the monitor's connection is up: the plugin's
  front end hands it the whole call (xscontainer.frontend) and prints its answer.

The monitor's `status` control request counts what it served and what it
declined, which tells the paths apart. The container carries non-ASCII text
(a label) and the calls include a non-ASCII container name; a call for a VM on
another host is forwarded, and a call with a session XAPI refuses is never
served by the monitor: the full path answers it, exactly as without a monitor.
Two get_top answers differ only where `ps` itself moves between calls (the C
and TIME columns of a process); those values are blanked before comparing.
"""

import os
import subprocess
import xml.dom.minidom
import xmlrpc.client
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
import XenAPI

from xsclab import labctl, labenv

from .monitoring import (
    DOCKER_KEYS,
    FAST,
    IMAGE,
    Monitor,
    comparable,
    other_config,
    set_key,
    wait_for,
)

NAME = "paths-web"
NOTE = "café ☕ 日本語 — ünïcode"


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
    lab.exec(vm.name, ["docker", "run", "-d", "--init", "--name", NAME, "--label",
                       "xsc.note=" + NOTE, IMAGE, "sleep", "1d"])
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


def outcome(lab: labctl.Lab, vm: labctl.VM, fn: str, on: Optional[str] = None,
            **args: str) -> Tuple[str, Any]:
    """What a client gets from host `on` (default: the VM's): ("value", the
    string) or ("failure", the error description)."""
    try:
        return ("value", lab.call_plugin(on or vm.host, fn, dict(vmuuid=vm.uuid, **args)))
    except XenAPI.Failure as exc:
        return ("failure", [str(d) for d in exc.details])


def reads(lab: labctl.Lab, vm: labctl.VM, on: Optional[str] = None) -> List[Tuple[str, Any]]:
    return [
        outcome(lab, vm, "get_inspect", on, object=NAME),
        outcome(lab, vm, "get_top", on, object=NAME),
        outcome(lab, vm, "get_inspect", on, object="no-such-container"),
        outcome(lab, vm, "get_top", on, object="no-such-container"),
        outcome(lab, vm, "get_top", on, object="bad name!"),
        outcome(lab, vm, "get_inspect", on, object="café"),
    ]


def plugin_stdout(lab: labctl.Lab, host: str, session_ref: str, fn: str,
                  args: Dict[str, str]) -> bytes:
    """The bytes the plugin prints, started as xapi starts it (argv[1] the
    methodCall as UTF-8, the host's dom0 environment, cwd /)."""
    env = labenv.dom0_env(host)
    request = xmlrpc.client.dumps((session_ref, args), fn)
    proc = subprocess.run(
        labenv.dom0_argv([os.path.join(labenv.tree().plugins_dir, "xscontainer"), request], env),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        cwd="/", start_new_session=True, timeout=120)
    assert (proc.returncode, proc.stderr) == (0, b""), proc.stderr[-2000:]
    return proc.stdout


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

    # get_top's C and TIME columns are ps's own; comparable() blanks only those
    assert comparable(warm) == comparable(direct)
    (kind, inspect), (_, top) = direct[:2]
    assert kind == "value" and inspect.startswith("True<?xml") and "<docker_inspect>" in inspect
    assert NOTE in inspect
    assert top.startswith("True<?xml") and top.count("<Process>") == 2
    code, message = direct[2][1][:2]
    assert code == "XSCONTAINER_NO_SUCH_CONTAINER" and "no-such-container" in message
    assert direct[4][1][0] == "XSCONTAINER_INVALID_ARGUMENT"
    assert direct[5][1][0] == "XSCONTAINER_INVALID_ARGUMENT" and "café" in direct[5][1][1]

    monitor.stop()  # no monitor at all: the plugin connects itself
    assert comparable(reads(lab, vm)) == comparable(direct)


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


def test_the_thin_path_prints_the_full_paths_bytes_and_checks_the_session(lab, xs, vm, monitor):
    with lab.xapi_session() as session:
        ref = session._session
        args = {"vmuuid": vm.uuid, "object": NAME}
        register_and_connect(xs, vm, monitor)
        served, _declined = monitor.counts()
        warm = [plugin_stdout(lab, vm.host, ref, "get_inspect", args),
                plugin_stdout(lab, vm.host, ref, "get_top", dict(args, object="café"))]
        assert monitor.counts()[0] == served + 1  # the bad name is refused, not counted
        # a session XAPI refuses: the monitor does nothing with it, and the full
        # path's failure is printed
        bogus = plugin_stdout(lab, vm.host, "OpaqueRef:00000000-not-a-session", "get_inspect",
                              args)
        assert monitor.counts()[0] == served + 1
        monitor.stop()
        direct = [plugin_stdout(lab, vm.host, ref, "get_inspect", args),
                  plugin_stdout(lab, vm.host, ref, "get_top", dict(args, object="café"))]
        assert plugin_stdout(lab, vm.host, "OpaqueRef:00000000-not-a-session", "get_inspect",
                             args) == bogus
    assert warm == direct  # byte for byte, UTF-8 included
    assert NOTE.encode("utf-8") in warm[0] and b"caf\xc3\xa9" in warm[1]
    failure = xmlrpc.client.loads(bogus.decode("utf-8"))[0][0]
    assert failure["Status"] == "Failure"
    code, message = failure["ErrorDescription"][:2]
    assert code == "XSCONTAINER_XAPI_ERROR" and "VM.get_by_uuid" in message  # XAPI refused it
    assert "not-a-session" not in bogus.decode("utf-8")


def test_a_call_made_on_another_host_is_forwarded_with_the_same_answers(lab, xs, vm, monitor):
    other = next(h.uuid for h in lab.hosts if h.uuid != vm.host)
    register_and_connect(xs, vm, monitor)
    served, declined = monitor.counts()
    here = reads(lab, vm)
    assert monitor.counts() == (served + 2, declined)
    forwarded = reads(lab, vm, on=other)
    # the VM's host runs the forwarded calls: its front end leaves them to the
    # full path, which asks the same monitor
    assert monitor.counts() == (served + 4, declined)
    assert comparable(forwarded) == comparable(here)
    assert here[0][0] == "value" and NOTE in here[0][1]
