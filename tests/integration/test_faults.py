"""Faults real VMs have, made by the lab (xsclab.faults): the guest's address
changes, its network is cut for a while and comes back. Nothing published is lost
meanwhile, the monitoring recovers by itself, and another VM on the same host keeps
being published all along.
"""

import threading
import time
from typing import Any, Callable, Iterator, List, Tuple

import pytest
import XenAPI

from xsclab import faults, labctl

from .monitoring import DOCKER_KEYS, FAST, IMAGE, Monitor, other_config, ref_of, set_key, wait_for


@pytest.fixture
def pair(lab: labctl.Lab, xs: Any) -> Iterator[Tuple[labctl.VM, labctl.VM]]:
    """Two guests on the same host; afterwards as the lab made them, deregistered, empty."""
    first = lab.vms[0]
    other = next(v for v in lab.vms[1:] if v.host == first.host)
    yield first, other
    faults.restore_address(lab, first.name)
    for vm in (first, other):
        for key in ("xscontainer-monitor", *DOCKER_KEYS):
            xs.VM.remove_from_other_config(ref_of(xs, vm), key)
        ids = lab.exec(vm.name, ["docker", "ps", "-aq"]).stdout.split()
        if ids:
            lab.exec(vm.name, ["docker", "rm", "-f", *ids], check=False)
        for ref, record in xs.message.get_all_records().items():
            if record["obj_uuid"] == vm.uuid:
                xs.message.destroy(ref)


def run(lab: labctl.Lab, vm: labctl.VM, name: str) -> str:
    return lab.exec(vm.name, ["docker", "run", "-d", "--init", "--name", name, IMAGE,
                              "sleep", "1d"]).stdout.strip()


def shows(xs: Any, vm: labctl.VM, name: str) -> Callable[[], bool]:
    return lambda: "<names>%s</names>" % name in other_config(xs, vm).get("docker_ps", "")


class Watch:
    """Samples a VM's other-config in the background, on a XAPI session of its own
    (a session is not shared between threads): was docker_ps ever missing? The
    monitor rewrites a key as two single-key edits (remove, then add), so a read
    can fall between them: an absence counts only when a read 0.1 s and another
    0.3 s later still find no docker_ps (`missing` holds when each such absence
    was seen, `instants` how many rewrites were caught)."""

    def __init__(self, lab: labctl.Lab, vm: labctl.VM) -> None:
        self.missing: List[float] = []
        self.instants = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(lab, vm), daemon=True)
        self._thread.start()

    def _run(self, lab: labctl.Lab, vm: labctl.VM) -> None:
        with lab.xapi_session() as session:
            def present() -> bool:
                return "docker_ps" in other_config(session.xenapi, vm)

            while not self._stop.is_set():
                if not present():
                    seen = time.monotonic()
                    for pause in (0.1, 0.3):
                        time.sleep(pause)
                        if present():
                            self.instants += 1
                            break
                    else:
                        self.missing.append(seen)
                time.sleep(0.05)

    def stop(self) -> List[float]:
        self._stop.set()
        self._thread.join()
        return self.missing


def registered(lab: labctl.Lab, xs: Any, pair: Tuple[labctl.VM, labctl.VM]) -> Monitor:
    # the short timings, but a grace period long enough for the faults: a VM that
    # fails longer than that is blanked on purpose (its data is no longer known)
    monitor = Monitor(lab, pair[0].host, [*FAST, "--grace", "60"])
    for vm in pair:
        set_key(xs, vm, "xscontainer-monitor", "True")
    wait_for("both published", lambda: all("docker_ps" in other_config(xs, vm) for vm in pair),
             why=monitor.log_tail)
    return monitor


def test_the_guest_moves_to_a_new_address(lab, xs, pair):
    vm, other = pair
    before = run(lab, vm, "fault-before")
    monitor = registered(lab, xs, pair)
    try:
        wait_for("the first container", shows(xs, vm, "fault-before"), why=monitor.log_tail)
        watch = Watch(lab, vm)
        new_ip = vm.ip.rsplit(".", 1)[0] + ".77"
        faults.move_address(lab, vm.name, new_ip)
        moved = time.monotonic()
        assert faults.addresses(lab, vm.name) == [new_ip]
        run(lab, vm, "fault-after")
        run(lab, other, "fault-neighbour")
        wait_for("the neighbour's container", shows(xs, other, "fault-neighbour"), timeout=10,
                 why=monitor.log_tail)
        wait_for("the container started after the move", shows(xs, vm, "fault-after"),
                 timeout=40, why=monitor.log_tail)
        recovered = time.monotonic() - moved
        assert watch.stop() == []  # docker_ps was there all along
        assert shows(xs, vm, "fault-before")()
        assert monitor.vm(vm.uuid)["state"] == "connected"
        # the plugin finds the guest at its new address too
        inspect = lab.call_plugin(vm.host, "get_inspect", {"vmuuid": vm.uuid,
                                                           "object": before})
        assert inspect.startswith("True") and before in inspect
        report = lab.call_plugin(vm.host, "diagnose", {"vmuuid": vm.uuid})
        assert "SSH port 22 answers: at %s" % new_ip in report
        print("recovered %.1f s after the move" % recovered)
    finally:
        monitor.stop()


def test_the_guest_network_is_cut_and_restored(lab, xs, pair):
    vm, other = pair
    run(lab, vm, "cut-before")
    monitor = registered(lab, xs, pair)
    try:
        wait_for("the first container", shows(xs, vm, "cut-before"), why=monitor.log_tail)
        watch = Watch(lab, vm)
        with faults.network_cut(lab, vm.name):
            run(lab, vm, "cut-during")  # Docker in the guest works, dom0 cannot see it
            run(lab, other, "cut-neighbour")
            wait_for("the neighbour's container", shows(xs, other, "cut-neighbour"),
                     timeout=10, why=monitor.log_tail)
            # a plugin call fails with a stable code, in bounded time
            started = time.monotonic()
            with pytest.raises(XenAPI.Failure) as info:
                lab.call_plugin(vm.host, "get_inspect", {"vmuuid": vm.uuid,
                                                         "object": "cut-before"})
            took = time.monotonic() - started
            assert info.value.details[0] in (
                "XSCONTAINER_TIMEOUT", "XSCONTAINER_GUEST_UNREACHABLE"), info.value.details
            assert took < 30.0
            wait_for("the monitor to notice",
                     lambda: monitor.vm(vm.uuid).get("state") != "connected",
                     timeout=40, why=monitor.log_tail)
            assert not shows(xs, vm, "cut-during")()
            assert shows(xs, vm, "cut-before")()  # what was published stays
        mended = time.monotonic()
        wait_for("the container started during the cut", shows(xs, vm, "cut-during"),
                 timeout=60, why=monitor.log_tail)
        print("recovered %.1f s after the network came back" % (time.monotonic() - mended))
        assert watch.stop() == []
        wait_for("connected", lambda: monitor.vm(vm.uuid).get("state") == "connected", timeout=10)
    finally:
        monitor.stop()
