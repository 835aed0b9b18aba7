"""Two more faults of a hostile or unlucky guest (xsclab.faults): it reboots, and
it holds about a thousand containers that keep changing. Nothing published is
lost, the monitoring recovers or keeps up by itself, and its writes stay bounded.
"""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterator, List

import pytest

from xsclab import faults, labctl
from xscontainer.xmlenc import MAX_DOCKER_PS

from .monitoring import (
    DOCKER_KEYS,
    IMAGE,
    in_guest,
    other_config,
    ps_entries,
    published,
    ref_of,
    wait_for,
)
from .test_faults import Watch, registered


def forget(lab: labctl.Lab, xs: Any, vm: labctl.VM) -> None:
    """Deregistered, without containers or messages."""
    for key in ("xscontainer-monitor", *DOCKER_KEYS):
        xs.VM.remove_from_other_config(ref_of(xs, vm), key)
    client = lab.docker(vm.name, timeout=60)
    try:
        ids = [c["Id"] for c in client.api.containers(all=True)]
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda cid: client.api.remove_container(cid, force=True), ids))
    finally:
        client.close()
    for ref, record in xs.message.get_all_records().items():
        if record["obj_uuid"] == vm.uuid:
            xs.message.destroy(ref)


@pytest.fixture
def two(lab: labctl.Lab, xs: Any) -> Iterator[List[labctl.VM]]:
    """Two guests on the same host; afterwards deregistered and empty."""
    first = lab.vms[0]
    other = next(v for v in lab.vms[1:] if v.host == first.host)
    yield [first, other]
    for vm in (first, other):
        forget(lab, xs, vm)


class Sampler:
    """Reads docker_ps in the background on a XAPI session of its own: was it ever
    missing (more than for the instant of a rewrite), unparseable or past its limit?"""

    def __init__(self, lab: labctl.Lab, vm: labctl.VM, least: int) -> None:
        self.least = least  # entries it must always have
        self.samples = 0
        self.instants = 0
        self.bad: List[str] = []
        self.largest = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(lab, vm), daemon=True)
        self._thread.start()

    def _run(self, lab: labctl.Lab, vm: labctl.VM) -> None:
        with lab.xapi_session() as session:
            while not self._stop.is_set():
                text = other_config(session.xenapi, vm).get("docker_ps")
                self.samples += 1
                for pause in (0.1, 0.3):
                    if text is not None:
                        break
                    # the monitor rewrites a key as two single-key edits (remove,
                    # then add): caught between them it is gone for an instant
                    self.instants += 1
                    time.sleep(pause)
                    text = other_config(session.xenapi, vm).get("docker_ps")
                if text is None:
                    self.bad.append("missing for 0.4 s")
                else:
                    self.largest = max(self.largest, len(text))
                    try:
                        if len(ps_entries(text)) < self.least:
                            self.bad.append("only %d entries" % len(ps_entries(text)))
                    except Exception as e:  # any parse error is a finding
                        self.bad.append("unparseable: %s" % e)
                time.sleep(0.1)

    def stop(self) -> List[str]:
        self._stop.set()
        self._thread.join()
        return self.bad


def test_the_guest_reboots(lab, xs, two):
    vm, other = two
    for name, policy in (("reboot-always", "always"), ("reboot-unless", "unless-stopped"),
                         ("reboot-plain", "no")):
        lab.exec(vm.name, ["docker", "run", "-d", "--init", "--restart", policy, "--name", name,
                           IMAGE, "sleep", "1d"])
    monitor = registered(lab, xs, two)
    try:
        wait_for("the three containers, up", lambda: sorted(
            s for _, s in (published(xs, vm) or {}).values()) == ["Up"] * 3,
            why=monitor.log_tail)
        wait_for("connected", lambda: monitor.vm(vm.uuid).get("state") == "connected")
        before = {vm.uuid: other_config(xs, vm), other.uuid: other_config(xs, other)}
        watch, neighbour = Watch(lab, vm), Sampler(lab, other, 0)
        started = time.monotonic()
        faults.reboot(lab, vm.name)
        took = time.monotonic() - started
        # every process of the guest is new: engine, containers, sshd
        lab.exec(other.name, ["docker", "run", "-d", "--init", "--name", "reboot-neighbour",
                              IMAGE, "sleep", "1d"])
        wait_for("the neighbour's container",
                 lambda: "reboot-neighbour" in [n for n, _ in published(xs, other).values()],
                 timeout=10, why=monitor.log_tail)

        def after_reboot() -> bool:
            states = {n: s for n, s in (published(xs, vm) or {}).values()}
            return (states.get("reboot-always") == "Up" and states.get("reboot-unless") == "Up"
                    and states.get("reboot-plain", "").startswith("Exited"))

        wait_for("the restart-policy containers up again, the other exited", after_reboot,
                 timeout=60, why=monitor.log_tail)
        recovered = time.monotonic() - started
        # while the guest had no guest metrics the monitor withdrew its keys (a VM
        # without them is not monitored); the neighbour's were there all along
        gap = watch.stop()
        assert neighbour.stop() == [] and neighbour.samples > 0
        wait_for("connected", lambda: monitor.vm(vm.uuid).get("state") == "connected",
                 timeout=10, why=monitor.log_tail)
        assert published(xs, vm) == in_guest(lab, vm)
        for each in (vm, other):  # only the docker keys changed
            now = other_config(xs, each)
            assert {k: v for k, v in now.items() if k not in DOCKER_KEYS} == {
                k: v for k, v in before[each.uuid].items() if k not in DOCKER_KEYS}
        # the plugin reaches the rebooted guest (same address, same host key)
        inspect = lab.call_plugin(vm.host, "get_inspect", {"vmuuid": vm.uuid,
                                                           "object": "reboot-always"})
        assert inspect.startswith("True") and "reboot-always" in inspect
        print("reboot %.1f s, recovered %.1f s after it began, docker_ps withdrawn for "
              "%.1f s" % (took, recovered, (gap[-1] - gap[0]) if gap else 0.0))
    finally:
        monitor.stop()


CROWD = 1000
RUNNING = 30   # busybox sleep with --init: the rest are created or exited
EXITED = 20
CHURN_SECONDS = 20.0


def test_a_thousand_containers_churning(lab, xs, two):
    vm = two[0]
    client = lab.docker(vm.name, timeout=60)
    api = client.api
    t0 = time.monotonic()

    def create(i: int, command: List[str]) -> str:
        return api.create_container(
            IMAGE, command, name="crowd-%04d" % i,
            host_config=api.create_host_config(init=True, network_mode="none"))["Id"]

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda i: create(i, ["true"] if i < EXITED else ["sleep", "1d"]),
                            range(CROWD)))
        list(pool.map(api.start, ids[:EXITED + RUNNING]))
    made = time.monotonic() - t0
    monitor = registered(lab, xs, two)
    try:
        wait_for("the crowd published", lambda: len(published(xs, vm) or {}) == CROWD,
                 timeout=30, why=monitor.log_tail)
        time.sleep(2.0)  # past the catch-up refresh after connecting
        counted = time.monotonic()
        writes0, refreshes0 = (monitor.vm(vm.uuid)[k] for k in ("xapi_writes", "ps_refreshes"))
        sampler = Sampler(lab, vm, CROWD - 50)
        stop = threading.Event()
        changes = [0]

        def churn(worker: int) -> None:
            # containers of its own come and go; created ones of the crowd start and stop
            n = 0
            while not stop.is_set():
                cid = api.create_container(
                    IMAGE, ["sleep", "1d"], name="churn-%d-%d" % (worker, n),
                    host_config=api.create_host_config(init=True, network_mode="none"))["Id"]
                api.start(cid)
                victim = ids[EXITED + RUNNING + (n * 2 + worker) % (CROWD - EXITED - RUNNING)]
                api.start(victim)
                api.stop(victim, timeout=1)
                api.remove_container(cid, force=True)
                n += 1
                changes[0] += 5

        workers = [threading.Thread(target=churn, args=(w,)) for w in range(2)]
        churn_start = time.monotonic()
        for w in workers:
            w.start()
        inspected = []
        while time.monotonic() - churn_start < CHURN_SECONDS:
            # the monitor answers the plugin while it keeps up with the churn
            served = monitor.counts()[0]
            asked = time.monotonic()
            inspect = lab.call_plugin(vm.host, "get_inspect", {"vmuuid": vm.uuid,
                                                               "object": ids[EXITED]})
            inspected.append(time.monotonic() - asked)
            assert inspect.startswith("True") and ids[EXITED] in inspect
            assert monitor.counts()[0] > served
            time.sleep(1.0)
        stop.set()
        for w in workers:
            w.join(60)
        stopped = time.monotonic()
        churned = stopped - churn_start
        wait_for("docker_ps as the guest's docker ps -a", lambda: published(xs, vm) == in_guest(
            lab, vm), timeout=10, every=0.5, why=monitor.log_tail)
        settled = time.monotonic() - stopped
        bad = sampler.stop()
        elapsed = time.monotonic() - counted
        writes = monitor.vm(vm.uuid)["xapi_writes"] - writes0
        refreshes = monitor.vm(vm.uuid)["ps_refreshes"] - refreshes0
        assert bad == [], bad[:5]
        assert sampler.samples >= 5
        assert sampler.largest < MAX_DOCKER_PS
        # coalesced: about one docker_ps refresh a second, whatever the rate of
        # events; XAPI writes at most one docker_ps and one docker_info change a
        # second (each change two single-key edits)
        assert refreshes <= 1.5 * elapsed + 5, (refreshes, elapsed)
        assert writes <= 2 * 2 * (elapsed + 3), (writes, elapsed)
        assert max(inspected) < 10.0
        print("%d containers made in %.1f s; %d changes in %.1f s: %d docker_ps refreshes, "
              "%d monitor writes in %.1f s, settled %.1f s after, get_inspect at most %.2f s, "
              "docker_ps %d KiB, %d samples (%d between a rewrite's two edits)" % (
                  CROWD, made, changes[0], churned, refreshes, writes, elapsed, settled,
                  max(inspected), sampler.largest // 1024, sampler.samples, sampler.instants))
    finally:
        monitor.stop()
        client.close()
