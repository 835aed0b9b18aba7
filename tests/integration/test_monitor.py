"""xscontainer-monitor as a process in the lab's dom0s, against real guests.

Each test starts the monitor(s) it needs with short timings (`Monitor`),
changes things the way users and clients do (docker in the guest, xe / XenAPI,
the plugin, the lab's service and XAPI controls) and checks VM other-config
as XenCenter and Xen Orchestra read it. Every test leaves the lab as it found
it: VMs deregistered and running on their hosts, no containers, daemons up.
"""

import os
import signal
import subprocess
import threading
import time
import uuid
import xml.dom.minidom
from typing import Any, Callable, Dict, Iterator, List

import docker.errors
import pytest
import XenAPI

from xsclab import labctl

from .monitoring import (
    DOCKER_KEYS,
    FAST,
    IMAGE,
    Monitor,
    comparable,
    control_request,
    in_guest,
    other_config,
    ps_entries,
    published,
    ref_of,
    set_key,
    wait_for,
)

FAILURE = "XSCONTAINER_MONITOR_FAILED"


# -- helpers --------------------------------------------------------------------------


@pytest.fixture
def monitors(lab: labctl.Lab) -> Iterator[Callable[..., Monitor]]:
    started: List[Monitor] = []

    def start(host: str, *args: str) -> Monitor:
        monitor = Monitor(lab, host, [*FAST, *args])
        started.append(monitor)
        return monitor

    yield start
    for monitor in started:
        monitor.stop()


def remove_key(xs: Any, vm: labctl.VM, key: str) -> None:
    xs.VM.remove_from_other_config(ref_of(xs, vm), key)


def register(xs: Any, vm: labctl.VM) -> None:
    set_key(xs, vm, "xscontainer-monitor", "True")


def deregister(xs: Any, vm: labctl.VM) -> None:
    set_key(xs, vm, "xscontainer-monitor", "False")


def messages(xs: Any, vm: labctl.VM) -> Dict[str, Dict[str, Any]]:
    return {ref: rec for ref, rec in xs.message.get_all_records().items()
            if rec["name"] == FAILURE and rec["obj_uuid"] == vm.uuid}


def shows_guest(lab: labctl.Lab, xs: Any, vm: labctl.VM) -> Callable[[], bool]:
    return lambda: published(xs, vm) == in_guest(lab, vm)


def run(lab: labctl.Lab, vm: labctl.VM, name: str) -> str:
    return lab.exec(vm.name, ["docker", "run", "-d", "--init", "--name", name, IMAGE,
                              "sleep", "1d"]).stdout.strip()


def clean_guest(lab: labctl.Lab, vm: labctl.VM) -> None:
    ids = lab.exec(vm.name, ["docker", "ps", "-aq"]).stdout.split()
    if ids:
        lab.exec(vm.name, ["docker", "rm", "-f", *ids], check=False)


def docker_keys(xs: Any, vm: labctl.VM) -> Dict[str, str]:
    config = other_config(xs, vm)
    return {k: config[k] for k in DOCKER_KEYS if k in config}


def stats(xs: Any) -> Dict[str, Any]:
    return dict(xs.lab.stats())  # the simulator's lab-only method


def session_count(lab: labctl.Lab) -> int:
    """Live XAPI sessions, not counting the one that asks."""
    with lab.xapi_session() as s:
        return int(s.xenapi.lab.session_count()) - 1


def writes(xs: Any, vm: labctl.VM) -> int:
    return int(stats(xs)["vm_other_config_writes"].get(vm.uuid, 0))


@pytest.fixture
def vm1(lab: labctl.Lab, xs: Any) -> Iterator[labctl.VM]:
    """The first guest (on the pool master), left deregistered, empty and at home."""
    vm = lab.vms[0]
    yield vm
    restore(lab, xs, vm)


@pytest.fixture
def vm2(lab: labctl.Lab, xs: Any) -> Iterator[labctl.VM]:
    """The second guest (on the other host)."""
    vm = lab.vms[1]
    yield vm
    restore(lab, xs, vm)


def restore(lab: labctl.Lab, xs: Any, vm: labctl.VM) -> None:
    for daemon in ("sshd", "dockerd"):
        lab.service(vm.name, daemon, "start")
    ref = ref_of(xs, vm)
    home = xs.host.get_by_uuid(vm.host)
    if xs.VM.get_power_state(ref) == "Halted":
        xs.VM.start_on(ref, home, False, False)
    elif xs.VM.get_resident_on(ref) != home:
        xs.VM.pool_migrate(ref, home, {})
    for key in ("xscontainer-monitor", *DOCKER_KEYS, "xsc-test-key"):
        remove_key(xs, vm, key)
    for ref_ in messages(xs, vm):
        xs.message.destroy(ref_)
    clean_guest(lab, vm)


# -- registering, following the guest, deregistering ---------------------------------------


def test_register_publishes_and_containers_follow_the_guest(lab, xs, monitors, vm1):
    monitor = monitors(vm1.host)
    register(xs, vm1)
    wait_for("docker keys", lambda: len(docker_keys(xs, vm1)) == 3, why=monitor.log_tail)
    keys = docker_keys(xs, vm1)
    info = xml.dom.minidom.parseString(keys["docker_info"]).documentElement
    version = xml.dom.minidom.parseString(keys["docker_version"]).documentElement
    assert info.tagName == "docker_info" and info.getElementsByTagName("Driver")
    assert version.tagName == "docker_version" and version.getElementsByTagName("ApiVersion")
    assert published(xs, vm1) == in_guest(lab, vm1) == {}

    cid = run(lab, vm1, "mon-web")
    wait_for("the new container", shows_guest(lab, xs, vm1), why=monitor.log_tail)
    assert published(xs, vm1) == {cid: ("mon-web", "Up")}
    steps = [
        (["docker", "pause", "mon-web"], ("mon-web", "Up (Paused)")),
        (["docker", "unpause", "mon-web"], ("mon-web", "Up")),
        (["docker", "rename", "mon-web", "mon-renamed"], ("mon-renamed", "Up")),
        (["docker", "stop", "-t", "5", "mon-renamed"], ("mon-renamed", "Exited (143)")),
        (["docker", "start", "mon-renamed"], ("mon-renamed", "Up")),
        (["docker", "kill", "mon-renamed"], ("mon-renamed", "Exited (137)")),
    ]
    for argv, expected in steps:
        lab.exec(vm1.name, argv)
        wait_for("%s to show" % " ".join(argv[1:]),
                 lambda e=expected: (published(xs, vm1) or {}).get(cid) == e,
                 why=monitor.log_tail)
        assert published(xs, vm1) == in_guest(lab, vm1)
    lab.exec(vm1.name, ["docker", "rm", "mon-renamed"])
    wait_for("the removal", lambda: published(xs, vm1) == {}, why=monitor.log_tail)
    assert monitor.vm(vm1.uuid)["state"] == "connected"


def test_health_changes_show(lab, xs, monitors, vm1):
    monitor = monitors(vm1.host)
    register(xs, vm1)
    wait_for("docker keys", lambda: len(docker_keys(xs, vm1)) == 3, why=monitor.log_tail)
    # healthy while /tmp/ok exists; checked every second
    cid = lab.exec(vm1.name, [
        "docker", "run", "-d", "--init", "--name", "mon-health", "--health-cmd",
        "test -e /tmp/ok", "--health-interval", "1s", "--health-retries", "1",
        IMAGE, "sh", "-c", ": > /tmp/ok; exec sleep 1d"]).stdout.strip()

    def health() -> str:
        entries = ps_entries(other_config(xs, vm1).get("docker_ps", "<docker_ps/>"))
        return next((e.get("health", "") for e in entries if e["id"] == cid), "")

    wait_for("healthy", lambda: health() == "healthy", why=monitor.log_tail)
    lab.exec(vm1.name, ["docker", "exec", "mon-health", "busybox", "rm", "/tmp/ok"])
    wait_for("unhealthy", lambda: health() == "unhealthy", why=monitor.log_tail)
    lab.exec(vm1.name, ["docker", "exec", "mon-health", "busybox", "touch", "/tmp/ok"])
    wait_for("healthy again", lambda: health() == "healthy", why=monitor.log_tail)
    assert published(xs, vm1) == {cid: ("mon-health", "Up")}  # status stays what XO compares


def test_deregister_removes_the_keys(lab, xs, monitors, vm1):
    monitor = monitors(vm1.host)
    run(lab, vm1, "mon-dereg")
    lab.call_plugin(vm1.host, "register", {"vmuuid": vm1.uuid})
    wait_for("docker keys", lambda: len(docker_keys(xs, vm1)) == 3, why=monitor.log_tail)
    deregister(xs, vm1)  # as `xe vm-param-set other-config:xscontainer-monitor=False` does
    wait_for("the monitor to remove the keys", lambda: not docker_keys(xs, vm1),
             why=monitor.log_tail)
    assert other_config(xs, vm1)["xscontainer-monitor"] == "False"
    wait_for("the worker to stop", lambda: not monitor.vm(vm1.uuid))
    lab.call_plugin(vm1.host, "register", {"vmuuid": vm1.uuid})
    wait_for("docker keys again", lambda: len(docker_keys(xs, vm1)) == 3)
    remove_key(xs, vm1, "xscontainer-monitor")  # the key removed altogether
    wait_for("the keys removed again", lambda: not docker_keys(xs, vm1))


def test_a_foreign_key_survives_a_thousand_changes_and_writes_follow_changes(
        lab, xs, monitors, vm1):
    """XenCenter keeps its own keys in the same map. While a thousand container
    changes make the monitor refresh and publish, and another client changes its
    own key a thousand times, nothing of theirs is lost; the monitor writes only
    what changed, and nothing at all while nothing changes."""
    cid = run(lab, vm1, "mon-foreign")
    monitor = monitors(vm1.host, "--resync", "0.05")
    register(xs, vm1)
    wait_for("docker_ps", shows_guest(lab, xs, vm1), why=monitor.log_tail)
    time.sleep(2.5)  # past the catch-up refresh after connecting

    def counters() -> tuple:
        vm = monitor.vm(vm1.uuid)
        return writes(xs, vm1), vm["xapi_writes"], vm["refreshes"]

    # nothing changes: the monitor keeps refreshing and writes nothing
    total0, ours0, refreshes0 = counters()
    time.sleep(2.0)
    total1, ours1, refreshes1 = counters()
    assert refreshes1 - refreshes0 >= 10
    assert (total1 - total0, ours1 - ours0) == (0, 0)

    # a thousand container changes against a thousand changes of someone else's key
    def foreign_client() -> None:
        session = lab.xapi()
        try:
            ref = session.xenapi.VM.get_by_uuid(vm1.uuid)
            for n in range(1000):
                session.xenapi.VM.remove_from_other_config(ref, "xsc-test-key")
                session.xenapi.VM.add_to_other_config(ref, "xsc-test-key", str(n))
        finally:
            session.xenapi.session.logout()

    foreign = threading.Thread(target=foreign_client)
    foreign.start()
    container = lab.docker(vm1.name).containers.get(cid)
    changes, paused = 0, False
    while changes < 1000 or paused:
        try:
            (container.unpause if paused else container.pause)()
            paused = not paused
            changes += 1
        except docker.errors.APIError:
            # flipped this fast, dockerd and containerd now and then disagree for a
            # moment ("already paused", "not paused"): ask, and carry on from there
            time.sleep(0.02)
            container.reload()
            paused = container.status == "paused"
    foreign.join(120)
    wait_for("the final state", shows_guest(lab, xs, vm1), why=monitor.log_tail)
    time.sleep(1.5)  # anything still pending would be written by now
    total2, ours2, refreshes2 = counters()
    assert other_config(xs, vm1)["xsc-test-key"] == "999"
    assert published(xs, vm1) == in_guest(lab, vm1) == {cid: ("mon-foreign", "Up")}
    # every write to the VM's other-config is the other client's or one the
    # monitor made because a docker key's value changed
    assert total2 - total1 == 2000 + (ours2 - ours1)
    assert 2 <= ours2 - ours1 <= 2 * 2 * 1000
    assert ours2 - ours1 <= 2 * 2 * (refreshes2 - refreshes1)
    assert monitor.vm(vm1.uuid)["events"] >= 1000
    print("1000 container changes: %d refreshes, %d monitor writes" % (
        refreshes2 - refreshes1, ours2 - ours1))


def test_a_removed_or_forged_docker_key_is_republished(lab, xs, monitors, vm1):
    monitor = monitors(vm1.host)
    register(xs, vm1)
    wait_for("docker keys", lambda: len(docker_keys(xs, vm1)) == 3, why=monitor.log_tail)
    good = docker_keys(xs, vm1)
    remove_key(xs, vm1, "docker_ps")
    wait_for("docker_ps back", lambda: docker_keys(xs, vm1) == good, why=monitor.log_tail)
    set_key(xs, vm1, "docker_version", "<docker_version/>")
    wait_for("docker_version back", lambda: docker_keys(xs, vm1) == good, why=monitor.log_tail)


# -- the VM's life: shutdown, start, migration, connection settings ------------------------


def test_shutdown_removes_the_keys_and_start_brings_them_back(lab, xs, monitors, vm1):
    monitor = monitors(vm1.host)
    register(xs, vm1)
    wait_for("docker keys", lambda: len(docker_keys(xs, vm1)) == 3, why=monitor.log_tail)
    ref = ref_of(xs, vm1)
    xs.VM.hard_shutdown(ref)
    wait_for("the keys removed", lambda: not docker_keys(xs, vm1), why=monitor.log_tail)
    xs.VM.start_on(ref, xs.host.get_by_uuid(vm1.host), False, False)
    wait_for("docker keys after start", lambda: len(docker_keys(xs, vm1)) == 3,
             why=monitor.log_tail)


def test_monitoring_waits_for_guest_metrics(lab, xs, monitors, vm1):
    """A VM whose guest tools have not reported yet is not monitored; it is as
    soon as they do, and no longer when they stop reporting."""
    ref = ref_of(xs, vm1)
    networks = {"0/ip": vm1.ip, "0/ipv4/0": vm1.ip}
    try:
        xs.lab.VM.set_guest_networks(ref, {})
        monitor = monitors(vm1.host)
        register(xs, vm1)
        time.sleep(1.5)
        assert not monitor.vm(vm1.uuid) and docker_keys(xs, vm1) == {}
        xs.lab.VM.set_guest_networks(ref, networks)
        wait_for("docker keys", lambda: len(docker_keys(xs, vm1)) == 3, why=monitor.log_tail)
        xs.lab.VM.set_guest_networks(ref, {})
        wait_for("the keys removed", lambda: not docker_keys(xs, vm1), why=monitor.log_tail)
    finally:
        xs.lab.VM.set_guest_networks(ref, networks)


def test_master_sweeps_docker_keys_left_on_a_halted_vm(lab, xs, monitors, vm1):
    ref = ref_of(xs, vm1)
    xs.VM.hard_shutdown(ref)  # as if its host's monitor had crashed before removing them
    set_key(xs, vm1, "docker_ps", "<docker_ps/>")
    monitor = monitors(lab.master)
    wait_for("the master to sweep", lambda: not docker_keys(xs, vm1), why=monitor.log_tail)


def test_migration_between_two_monitored_hosts(lab, xs, monitors, vm1):
    source, target = lab.hosts[0].uuid, lab.hosts[1].uuid
    assert vm1.host == source
    mon_source, mon_target = monitors(source), monitors(target)
    cid = run(lab, vm1, "mon-migrant")
    register(xs, vm1)
    wait_for("published by the source", shows_guest(lab, xs, vm1), why=mon_source.log_tail)
    ref = ref_of(xs, vm1)
    for monitor_to, monitor_from, host in ((mon_target, mon_source, target),
                                           (mon_source, mon_target, source)):
        xs.VM.pool_migrate(ref, xs.host.get_by_uuid(host), {})
        wait_for("the destination to monitor it",
                 lambda m=monitor_to: m.vm(vm1.uuid).get("state") == "connected",
                 why=monitor_to.log_tail)
        wait_for("the source to stop", lambda m=monitor_from: not m.vm(vm1.uuid),
                 why=monitor_from.log_tail)
        # whichever order the source's removal and the destination's writes came in,
        # the keys end up present and right
        wait_for("the final state", lambda: len(docker_keys(xs, vm1)) == 3 and
                 shows_guest(lab, xs, vm1)(), why=monitor_to.log_tail)
        time.sleep(1.5)
        assert len(docker_keys(xs, vm1)) == 3 and shows_guest(lab, xs, vm1)()
        lab.exec(vm1.name, ["docker", "pause", "mon-migrant"])
        wait_for("a change seen by the destination",
                 lambda: (published(xs, vm1) or {}).get(cid) == ("mon-migrant", "Up (Paused)"),
                 why=monitor_to.log_tail)
        lab.exec(vm1.name, ["docker", "unpause", "mon-migrant"])
        wait_for("and back", lambda: (published(xs, vm1) or {}).get(cid) == (
            "mon-migrant", "Up"))


def test_changed_connection_settings_reconnect_at_once(lab, xs, monitors, vm1):
    monitor = monitors(vm1.host, "--backoff-first", "30", "--backoff-cap", "60",
                       "--grace", "60")
    register(xs, vm1)
    wait_for("connected", lambda: monitor.vm(vm1.uuid).get("state") == "connected",
             why=monitor.log_tail)
    connects = monitor.vm(vm1.uuid)["connects"]
    time.sleep(0.5)
    assert monitor.vm(vm1.uuid)["connects"] == connects  # pinning our own key changed nothing
    set_key(xs, vm1, "xscontainer-username", "nobody-here")  # prepare-vm changes the user
    wait_for("the reconnection attempt",
             lambda: monitor.vm(vm1.uuid).get("failures", 0) >= 1, why=monitor.log_tail)
    set_key(xs, vm1, "xscontainer-username", vm1.username)  # and back: no 30 s backoff wait
    wait_for("connected again at once",
             lambda: monitor.vm(vm1.uuid).get("state") == "connected", timeout=10,
             why=monitor.log_tail)
    remove_key(xs, vm1, "xscontainer-sshhostkey")  # the admin resets the host key
    wait_for("reconnected and re-pinned",
             lambda: monitor.vm(vm1.uuid).get("connects", 0) >= connects + 2
             and "xscontainer-sshhostkey" in other_config(xs, vm1), timeout=10)


# -- failures -------------------------------------------------------------------------------


@pytest.mark.parametrize("daemon", ["dockerd", "sshd"])
def test_unreachable_guest_gets_one_message_and_recovers(lab, xs, monitors, vm1, daemon):
    monitor = monitors(vm1.host)
    register(xs, vm1)
    wait_for("docker keys", lambda: len(docker_keys(xs, vm1)) == 3, why=monitor.log_tail)
    lab.service(vm1.name, daemon, "stop")
    if daemon == "sshd":
        # a live SSH session outlives sshd; the guest's dockerd restart ends it
        lab.service(vm1.name, "dockerd", "restart")
    found = wait_for("the failure message", lambda: messages(xs, vm1), timeout=30,
                     why=monitor.log_tail)
    (message,) = found.values()
    assert message["priority"] == "3" and message["cls"] == "VM"
    assert "Container management diagnosis" in message["body"]
    assert "FAIL" in message["body"]
    wait_for("the unvouched data removed", lambda: not docker_keys(xs, vm1))
    time.sleep(3)
    assert len(messages(xs, vm1)) == 1  # one message, however many retries
    lab.service(vm1.name, daemon, "start")
    wait_for("monitoring to resume", lambda: len(docker_keys(xs, vm1)) == 3, timeout=30,
             why=monitor.log_tail)
    wait_for("the message destroyed", lambda: not messages(xs, vm1))
    assert shows_guest(lab, xs, vm1)()


def test_a_restarted_daemon_reuses_the_failure_message(lab, xs, monitors, vm1):
    monitor = monitors(vm1.host)
    register(xs, vm1)
    wait_for("docker keys", lambda: len(docker_keys(xs, vm1)) == 3, why=monitor.log_tail)
    lab.service(vm1.name, "dockerd", "stop")
    (old,) = wait_for("the failure message", lambda: messages(xs, vm1), timeout=30)
    monitor.stop(signal.SIGKILL)  # crashes: nothing cleaned up
    second = monitors(vm1.host)
    time.sleep(3 + 2 + 1)  # grace, a retry, margin
    assert list(messages(xs, vm1)) == [old]
    lab.service(vm1.name, "dockerd", "start")
    wait_for("the message destroyed", lambda: not messages(xs, vm1), timeout=30,
             why=second.log_tail)


def test_dead_guest_is_detected_by_the_probe(lab, xs, monitors, vm1):
    """A guest that stops answering (its sshd frozen) is noticed by the probe
    and the request timeout, not left hanging on the event stream."""
    monitor = monitors(vm1.host, "--probe", "1")
    register(xs, vm1)
    wait_for("connected", lambda: monitor.vm(vm1.uuid).get("state") == "connected",
             why=monitor.log_tail)
    in_netns = subprocess.run(["ip", "netns", "pids", vm1.netns], stdout=subprocess.PIPE,
                              universal_newlines=True, check=True).stdout.split()
    pids = [int(p) for p in in_netns if _comm(int(p)) == "sshd"]
    assert len(pids) >= 2  # the listener and our connection's
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        wait_for("the dead connection noticed",
                 lambda: monitor.vm(vm1.uuid).get("state") != "connected", timeout=60,
                 why=monitor.log_tail)
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    wait_for("connected again", lambda: monitor.vm(vm1.uuid).get("state") == "connected",
             timeout=30, why=monitor.log_tail)


def _comm(pid: int) -> str:
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return ""


# -- XAPI and the daemon's own life ------------------------------------------------------------


def test_xapi_restart_and_outage_under_a_running_monitor(lab, xs, monitors, vm1):
    monitor = monitors(vm1.host)
    register(xs, vm1)
    wait_for("docker keys", lambda: len(docker_keys(xs, vm1)) == 3, why=monitor.log_tail)

    def sessions() -> int:
        return session_count(lab)  # the test's module session died with the restart

    logins = monitor.status()["xapi_logins"]
    for n in range(2):
        lab.xapi_restart()
        wait_for("the monitor to log in again",
                 lambda before=logins: monitor.status()["xapi_logins"] > before,
                 why=monitor.log_tail)
        logins = monitor.status()["xapi_logins"]
        cid = run(lab, vm1, "mon-restart%d" % n)
        fresh = lab.xapi()
        try:
            wait_for("a container started after the restart",
                     lambda s=fresh.xenapi, c=cid: c in (published(s, vm1) or {}),
                     why=monitor.log_tail)
        finally:
            fresh.xenapi.session.logout()
        # the monitor's two sessions, no leak (the test's own old session died too)
        assert sessions() == 2

    lab.xapi_stop()
    try:
        cid = run(lab, vm1, "mon-outage")  # published once XAPI is back
        time.sleep(2)
    finally:
        lab.xapi_start()
    session = lab.xapi()
    try:
        wait_for("the change made during the outage",
                 lambda: cid in (published(session.xenapi, vm1) or {}), timeout=30,
                 why=monitor.log_tail)
        assert monitor.vm(vm1.uuid)["state"] == "connected"
    finally:
        session.xenapi.session.logout()
    wait_for("two sessions", lambda: sessions() == 2, timeout=10)


def test_sigterm_stops_within_5s_removes_the_keys_and_logs_out(lab, xs, monitors, vm1, vm2):
    vm3 = lab.vms[2]
    assert vm3.host == vm1.host
    try:
        monitor = monitors(vm1.host)
        for vm in (vm1, vm3):
            run(lab, vm, "mon-term")
            register(xs, vm)
        for vm in (vm1, vm3):
            wait_for("docker keys of %s" % vm.name, lambda v=vm: len(docker_keys(xs, v)) == 3,
                     why=monitor.log_tail)
        assert session_count(lab) == 3  # the test's, the monitor's two
        took = monitor.stop()
        assert took < 5.0
        assert monitor.proc.returncode == 0
        for vm in (vm1, vm3):
            assert docker_keys(xs, vm) == {}
            assert other_config(xs, vm)["xscontainer-monitor"] == "True"
        assert session_count(lab) == 1  # the monitor logged out
        assert not os.path.exists(os.path.join(monitor.run_dir, "monitor.sock"))
    finally:
        restore(lab, xs, vm3)


def test_a_second_monitor_on_the_same_host_refuses_to_run(lab, monitors, vm1):
    monitors(vm1.host)
    second = lab.dom0_run(vm1.host, ["xscontainer-monitor", *FAST], timeout=30)
    assert second.returncode == 1


# -- the plugin's warm path -------------------------------------------------------------------


def plugin_results(lab: labctl.Lab, vm: labctl.VM, name: str) -> List[Any]:
    """What a client gets from each Docker-backed plugin function."""
    results: List[Any] = []

    def call(fn: str, **args: str) -> None:
        try:
            results.append((fn, args, lab.call_plugin(vm.host, fn, dict(vmuuid=vm.uuid, **args))))
        except XenAPI.Failure as exc:
            results.append((fn, args, "failure", list(exc.details)))

    call("get_inspect", object=name)
    call("get_top", object=name)
    call("pause", container=name)
    call("get_inspect", object=name)
    call("pause", container=name)  # already paused: Docker's refusal
    call("unpause", container=name)
    call("get_inspect", object="no-such-container")
    call("get_top", object="bad name!")
    call("restart", container="no-such-container")
    return results


def test_warm_path_gives_the_same_results_as_the_direct_path(lab, xs, monitors, vm1):
    name = "mon-warm"
    run(lab, vm1, name)
    register(xs, vm1)
    direct = plugin_results(lab, vm1, name)
    monitor = monitors(vm1.host)
    wait_for("connected", lambda: monitor.vm(vm1.uuid).get("state") == "connected",
             why=monitor.log_tail)
    served = monitor.status()["control_served"]
    warm = plugin_results(lab, vm1, name)
    status = monitor.status()
    assert status["control_served"] - served == 5  # inspect x3, top, pause, unpause, minus errors
    assert comparable(warm) == comparable(direct)
    # the lifecycle calls refreshed docker_ps before answering
    lab.call_plugin(vm1.host, "pause", {"vmuuid": vm1.uuid, "container": name})
    assert published(xs, vm1)[lab.exec(vm1.name, ["docker", "inspect", "-f", "{{.Id}}", name])
                               .stdout.strip()] == (name, "Up (Paused)")
    lab.call_plugin(vm1.host, "unpause", {"vmuuid": vm1.uuid, "container": name})


def test_warm_path_answers_only_for_vms_it_monitors(lab, xs, monitors, vm1, vm2):
    monitor = monitors(vm1.host)
    answer = control_request(monitor.run_dir, {"fn": "get_top", "vmuuid": vm1.uuid,
                                               "object": "x"})
    assert "unavailable" in answer  # not registered
    answer = control_request(monitor.run_dir, {"fn": "get_top", "vmuuid": str(uuid.uuid4()),
                                               "object": "x"})
    assert "unavailable" in answer
    answer = control_request(monitor.run_dir, {"fn": "get_top", "vmuuid": vm1.uuid,
                                               "object": "../x"})
    assert answer["error"][0] == "XSCONTAINER_INVALID_ARGUMENT"
    answer = control_request(monitor.run_dir, {"fn": "rm", "vmuuid": vm1.uuid})
    assert answer["error"][0] == "XSCONTAINER_INVALID_ARGUMENT"


# -- TLS secrets ----------------------------------------------------------------------------


def test_tls_secrets_go_with_the_last_vm_that_names_them(lab, xs, monitors, vm1):
    """Clones share their TLS secrets; the master's monitor destroys them only
    when the last VM naming them is destroyed."""
    monitors(lab.master)
    home = ref_of(xs, vm1)
    xs.VM.hard_shutdown(home)
    clones = [xs.VM.clone(home, "xsc-clone-%d" % n) for n in (1, 2)]
    secrets = {key: xs.secret.get_uuid(xs.secret.create({"value": "pem for " + key}))
               for key in ("xscontainer-tls-client-cert", "xscontainer-tls-client-key",
                           "xscontainer-tls-ca-cert")}

    def alive() -> List[str]:
        existing = {record["uuid"] for record in xs.secret.get_all_records().values()}
        return sorted(uuid for uuid in secrets.values() if uuid in existing)

    try:
        for clone in clones:
            for key, uuid_ in secrets.items():
                xs.VM.add_to_other_config(clone, key, uuid_)
        time.sleep(1)  # the monitor has seen both records
        xs.VM.destroy(clones.pop())
        time.sleep(3)
        assert alive() == sorted(secrets.values())  # the other clone still names them
        xs.VM.destroy(clones.pop())
        wait_for("the secrets to go", lambda: alive() == [])
    finally:
        for clone in clones:
            xs.VM.destroy(clone)
        for uuid_ in alive():
            xs.secret.destroy(xs.secret.get_by_uuid(uuid_))
