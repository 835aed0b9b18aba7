"""A hostile guest cannot hurt dom0: the plugin and the monitor against a guest
whose port 22 misbehaves (xsclab.hostile_sshd in place of its sshd), a guest that
reports hundreds of addresses, guest text that looks like log lines, and a
registration flag rewritten while the monitor publishes.

Every test leaves the lab as it found it: the real sshd back, guest metrics as the
lab set them, VMs deregistered.
"""

import os
import re
import stat
import subprocess
import threading
import time
from typing import Any, Dict, Iterator, List, Tuple

import pytest
import XenAPI

from xsclab import hostile_sshd, labctl

from .monitoring import DOCKER_KEYS, FAST, IMAGE, Monitor, other_config, ref_of, set_key, wait_for

# the plugin's own timeouts (transport.Timeouts): connect 5 s, handshake 10 s
HANDSHAKE = 10.0
# what a plugin call costs besides the guest (python start, XAPI round trips)
SLACK = 4.0


@pytest.fixture
def guest(lab: labctl.Lab, xs: Any) -> Iterator[labctl.VM]:
    """The first guest, its real sshd and guest metrics restored afterwards."""
    vm = lab.vms[0]
    yield vm
    hostile_sshd.stop_in_guest(lab, vm.name)
    set_networks(xs, vm, {"0/ip": vm.ip, "0/ipv4/0": vm.ip})
    for key in ("xscontainer-monitor", *DOCKER_KEYS):
        xs.VM.remove_from_other_config(ref_of(xs, vm), key)


def set_networks(xs: Any, vm: labctl.VM, networks: Dict[str, str]) -> None:
    xs.lab.VM.set_guest_networks(ref_of(xs, vm), networks)


def call(lab: labctl.Lab, vm: labctl.VM, fn: str,
         args: Dict[str, str]) -> Tuple[List[str], float]:
    """(ErrorDescription, seconds) of a plugin call that must fail."""
    started = time.monotonic()
    with pytest.raises(XenAPI.Failure) as info:
        lab.call_plugin(vm.host, fn, dict(args, vmuuid=vm.uuid))
    return [str(d) for d in info.value.details], time.monotonic() - started


def log_of(lab: labctl.Lab, vm: labctl.VM) -> str:
    path = lab.dom0_env(vm.host)["XSCONTAINER_LOG_FILE"]
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def sever(vm: labctl.VM) -> None:
    """Close dom0's TCP connections to the guest's port 22 (as a network fault would)."""
    subprocess.run(["ss", "-K", "dst", vm.ip, "dport", "=", ":22"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=10)


LINE_START = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \S+\[\d+\] [A-Z]+ ")

EXPECTED = {
    "silent": ("XSCONTAINER_TIMEOUT", "did not answer: no SSH handshake within 10s", True),
    "trickle": ("XSCONTAINER_TIMEOUT", "did not answer: no SSH handshake within 10s", True),
    "garbage": ("XSCONTAINER_SSH_FAILED", "did not answer with an SSH banner", False),
    "banner-close": ("XSCONTAINER_SSH_FAILED",
                     "closed the connection during the SSH handshake", False),
}


@pytest.mark.parametrize("mode", sorted(EXPECTED))
def test_a_misbehaving_sshd_gets_a_stable_code_in_bounded_time(lab, xs, guest, mode):
    code, text, slow = EXPECTED[mode]
    hostile_sshd.start_in_guest(lab, guest.name, mode)
    before = len(log_of(lab, guest))
    description, took = call(lab, guest, "get_inspect", {"object": "anything"})
    assert description[0] == code, description
    assert text in description[1] and guest.ip in description[1]
    assert took < HANDSHAKE + SLACK
    if slow:
        assert took > HANDSHAKE - 0.5  # it waited for the handshake deadline, not less
    else:
        assert took < SLACK
    # diagnose says the same as a failed step, never XENAPI_PLUGIN_FAILURE
    started = time.monotonic()
    report = lab.call_plugin(guest.host, "diagnose", {"vmuuid": guest.uuid})
    assert time.monotonic() - started < HANDSHAKE + SLACK
    assert report.startswith("True")
    assert "[FAIL] SSH connection to %s: " % guest.ip in report and text in report
    log = log_of(lab, guest)[before:]
    assert "Traceback" not in log and "XENAPI_PLUGIN_FAILURE" not in log


def test_guest_text_is_escaped_in_the_log_and_shortened_once_in_the_error(lab, xs, guest):
    hostile_sshd.start_in_guest(lab, guest.name, "garbage")
    before = len(log_of(lab, guest))
    description, _took = call(lab, guest, "get_top", {"object": "anything"})
    assert description[0] == "XSCONTAINER_SSH_FAILED"
    text = " ".join(description[1:])
    assert "\n" not in text and "\x1b" not in text
    assert len(description[1]) < 800 and "more characters" not in " ".join(description[2:])
    log = log_of(lab, guest)[before:]
    assert "\x1b" not in log
    for line in log.splitlines():  # the fake line never stands as a line of its own
        assert not line.startswith(hostile_sshd.FAKE_LOG_LINE[:20]), line
        assert LINE_START.match(line) or line.startswith("  "), line
    mode = stat.S_IMODE(os.stat(lab.dom0_env(guest.host)["XSCONTAINER_LOG_FILE"]).st_mode)
    assert mode & 0o037 == 0, oct(mode)


def test_hundreds_of_reported_addresses_cost_nothing(lab, xs, guest):
    # the real address first, then 504 others: loopback, link-local, this host's
    # own (the lab's root side of each guest), broadcast, and addresses on the
    # guests' links that nobody has (no ARP answer: unreachable after a while)
    networks = {"0/ip": guest.ip}
    junk = ["127.0.0.1", "169.254.0.2", "255.255.255.255", "0.0.0.0", "224.0.0.1"]
    junk += [v.ip.rsplit(".", 1)[0] + ".1" for v in lab.vms]
    nobody = ["%s.%d" % (v.ip.rsplit(".", 1)[0], i) for v in lab.vms for i in range(3, 255)]
    junk += nobody[:504 - len(junk)]
    for n, address in enumerate(junk, 1):
        networks["%d/ip" % n] = address
    assert len(networks) == 505
    set_networks(xs, guest, networks)
    started = time.monotonic()
    report = lab.call_plugin(guest.host, "diagnose", {"vmuuid": guest.uuid})
    assert time.monotonic() - started < SLACK
    assert "[ OK ] SSH port 22 answers: at %s" % guest.ip in report
    # without the real one, at most 8 are tried, 3 at a time, 5 s each at worst
    del networks["0/ip"]
    set_networks(xs, guest, {k: v for k, v in networks.items() if v not in nobody})
    description, took = call(lab, guest, "get_inspect", {"object": "anything"})
    assert description[0] == "XSCONTAINER_NO_IP", description
    assert "report no address xscontainer can use" in description[1]
    assert len(description[1]) < 800 and took < SLACK
    set_networks(xs, guest, networks)
    description, took = call(lab, guest, "get_inspect", {"object": "anything"})
    assert description[0] == "XSCONTAINER_GUEST_UNREACHABLE", description
    assert "more address(es) not tried" in description[1]
    assert took < 3 * 5.0 + SLACK


# -- the monitor ---------------------------------------------------------------------------


@pytest.fixture
def monitor_pair(lab: labctl.Lab, xs: Any) -> Iterator[Tuple[labctl.VM, labctl.VM]]:
    """Two guests on the same host, registered, their real sshd back afterwards."""
    first = lab.vms[0]
    other = next(v for v in lab.vms[1:] if v.host == first.host)
    yield first, other
    for vm in (first, other):
        hostile_sshd.stop_in_guest(lab, vm.name)
        for key in ("xscontainer-monitor", *DOCKER_KEYS):
            xs.VM.remove_from_other_config(ref_of(xs, vm), key)
        ids = lab.exec(vm.name, ["docker", "ps", "-aq"]).stdout.split()
        if ids:
            lab.exec(vm.name, ["docker", "rm", "-f", *ids], check=False)
        for ref, record in xs.message.get_all_records().items():
            if record["obj_uuid"] == vm.uuid:
                xs.message.destroy(ref)


def names_published(xs: Any, vm: labctl.VM) -> str:
    return other_config(xs, vm).get("docker_ps", "")


@pytest.mark.parametrize("mode", ["silent", "garbage"])
def test_the_monitor_counts_a_hostile_sshd_as_a_failure_and_others_go_on(
        lab, xs, monitor_pair, mode):
    hostile, other = monitor_pair
    monitor = Monitor(lab, hostile.host, [*FAST])
    try:
        for vm in (hostile, other):
            set_key(xs, vm, "xscontainer-monitor", "True")
        wait_for("both published", lambda: all(
            "docker_ps" in other_config(xs, vm) for vm in (hostile, other)),
            why=monitor.log_tail)
        offset = os.path.getsize(monitor.log_file)
        hostile_sshd.start_in_guest(lab, hostile.name, mode)
        sever(hostile)  # the monitor's connection drops; it reconnects to the hostile one
        wait_for("two failures counted", lambda: monitor.vm(hostile.uuid).get("failures", 0) >= 2,
                 timeout=3 * (HANDSHAKE + 5), why=monitor.log_tail)
        # meanwhile the other VM on the same host keeps being published
        lab.exec(other.name, ["docker", "run", "-d", "--init", "--name", "hostile-neighbour",
                              IMAGE, "sleep", "1d"])
        wait_for("the neighbour's new container", lambda: "hostile-neighbour" in
                 names_published(xs, other), timeout=10, why=monitor.log_tail)
        status = monitor.vm(hostile.uuid)
        assert status["state"] in ("connecting", "failing")
        assert EXPECTED[mode][1] in status.get("last_error", "")
        with open(monitor.log_file, errors="replace") as f:
            f.seek(offset)
            log = f.read()
        assert "Traceback" not in log and "failed unexpectedly" not in log
        assert log.count("cannot monitor") >= 2
        # the real sshd back: monitoring recovers by itself
        hostile_sshd.stop_in_guest(lab, hostile.name)
        wait_for("connected again", lambda: monitor.vm(hostile.uuid).get("state") == "connected",
                 timeout=30, why=monitor.log_tail)
    finally:
        monitor.stop()


def test_register_prepare_again_and_a_rewritten_flag_never_blank_docker_ps(
        lab, xs, monitor_pair):
    vm, _other = monitor_pair
    monitor = Monitor(lab, vm.host, [*FAST])
    try:
        lab.call_plugin(vm.host, "register", {"vmuuid": vm.uuid})
        wait_for("docker_ps", lambda: "docker_ps" in other_config(xs, vm), why=monitor.log_tail)
        gaps: List[float] = []
        stop = threading.Event()

        def sample() -> None:
            with lab.xapi_session() as session:  # its own: sessions are not shared
                while not stop.is_set():
                    if "docker_ps" not in other_config(session.xenapi, vm):
                        gaps.append(time.monotonic())
                    time.sleep(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        for _ in range(3):
            lab.call_plugin(vm.host, "register", {"vmuuid": vm.uuid})  # a rerun
        # a rerun of the preparation (the guest accepts the pool key already)
        done = lab.call_plugin(vm.host, "prepare", {"vmuuid": vm.uuid,
                                                    "username": vm.username})
        assert done.startswith("True") and "container management works" in done
        for _ in range(3):  # another client rewrites the flag: remove, then add
            set_key(xs, vm, "xscontainer-monitor", "True")
            time.sleep(0.3)
        time.sleep(2.0)
        stop.set()
        sampler.join()
        assert gaps == []
        assert monitor.vm(vm.uuid).get("state") == "connected"
        assert other_config(xs, vm)["xscontainer-monitor"] == "True"
        # a flag that stays absent does end the monitoring, after the settle time
        xs.VM.remove_from_other_config(ref_of(xs, vm), "xscontainer-monitor")
        started = time.monotonic()
        wait_for("the docker keys withdrawn", lambda: "docker_ps" not in other_config(xs, vm),
                 timeout=20, why=monitor.log_tail)
        assert time.monotonic() - started > 4.0  # FLAG_SETTLE is 5 s
    finally:
        monitor.stop()
