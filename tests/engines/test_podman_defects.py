"""The defects newer engines showed, each on the engine that showed it, through
the plugin as clients call it and the monitor, on the engine lab's guests
(conftest.py): Docker 28, rootful Podman 5 with podman-docker (its `docker` is
Podman) and rootless Podman 5.

1. podman-docker made the guest unreachable (its dial-stdio dials the SSH user's
   rootless socket);
2. diagnose advised the docker group for rootful Podman's root:root 0600 socket;
3. rootless Podman had no socket xscontainer knew;
4. Podman's health never reached docker_ps;
5. every call paid Podman's slow /version;
6. "already paused" read differently on Docker (409) and Podman (500).
"""

import json
import os
import re
from typing import Any, Dict, List

import pytest
import XenAPI

from tests.integration.monitoring import FAST, Monitor, ps_entries, wait_for
from xsclab import labctl

IMAGE = "xsc-test/busybox"
PODMAN_SOCKET = "/run/podman/podman.sock"


def guest(lab: labctl.Lab, engine: str) -> labctl.VM:
    found = [vm for vm in lab.vms if vm.engine == engine]
    if not found:
        pytest.fail("these tests need a %s guest: add it to XSC_TEST_ENGINES" % engine,
                    pytrace=False)
    return found[0]


def call(lab: labctl.Lab, vm: labctl.VM, fn: str, **args: str) -> str:
    value = lab.call_plugin(vm.host, fn, {"vmuuid": vm.uuid, **args})
    assert value.startswith("True"), value
    return value[4:]


def failure(lab: labctl.Lab, vm: labctl.VM, fn: str, **args: str) -> List[str]:
    with pytest.raises(XenAPI.Failure) as exc:
        lab.call_plugin(vm.host, fn, {"vmuuid": vm.uuid, **args})
    return [str(d) for d in exc.value.details]


def run(lab: labctl.Lab, vm: labctl.VM, name: str, *extra: str) -> None:
    """A container `name` started as the engine's users do (root's docker, which is
    Podman on the podman-docker guest; the SSH user's podman when rootless)."""
    if vm.engine.endswith("-rootless"):
        lab.exec(vm.name, ["podman", "run", "-d", "--replace", "--init", "--network", "none",
                           "--name", name, *extra, IMAGE, "sleep", "1d"], user=vm.username)
    else:
        lab.exec(vm.name, ["docker", "rm", "-f", name], check=False)
        lab.exec(vm.name, ["docker", "run", "-d", "--init", "--name", name, *extra, IMAGE,
                           "sleep", "1d"])


def podman_socket(lab: labctl.Lab, vm: labctl.VM, group: str, mode: str) -> None:
    lab.exec(vm.name, ["sh", "-c", "chgrp %s %s && chmod %s %s" % (
        group, PODMAN_SOCKET, mode, PODMAN_SOCKET)])


@pytest.fixture
def usable_podman(engine_lab: labctl.Lab) -> labctl.VM:
    """The rootful Podman guest with its socket as diagnose's fix leaves it and
    the lab serves it (group docker, 0660, as a podman.socket drop-in makes it)."""
    vm = guest(engine_lab, "podman5")
    podman_socket(engine_lab, vm, "docker", "660")
    return vm


def host_env(lab: labctl.Lab, vm: labctl.VM) -> Dict[str, str]:
    return lab.dom0_env(vm.host)


def log_since(lab: labctl.Lab, vm: labctl.VM, offset: int) -> str:
    with open(host_env(lab, vm)["XSCONTAINER_LOG_FILE"], encoding="utf-8") as f:
        f.seek(offset)
        return f.read()


def log_size(lab: labctl.Lab, vm: labctl.VM) -> int:
    path = host_env(lab, vm)["XSCONTAINER_LOG_FILE"]
    return os.path.getsize(path) if os.path.exists(path) else 0


def same_words(details: List[str], vm: labctl.VM) -> List[str]:
    """An error's code and message with the VM's own name and uuid taken out."""
    return [details[0], details[1].replace("VM %s (%s)" % (vm.name, vm.uuid), "VM X"),
            details[2]]


# -- defect 1: podman-docker made the guest unreachable ----------------------------------


def test_a_podman_docker_guest_is_reached_on_its_system_socket(engine_lab, usable_podman):
    vm = usable_podman
    run(engine_lab, vm, "pd-web")
    # the old bridge's way: podman-docker's dial-stdio dials the user's rootless socket
    old = engine_lab.exec(vm.name, ["docker", "system", "dial-stdio"], user=vm.username,
                    input="", check=False, timeout=30)
    assert old.returncode != 0
    inspect = call(engine_lab, vm, "get_inspect", object="pd-web")
    assert "<Name>/pd-web</Name>" in inspect or "<Name>pd-web</Name>" in inspect
    top = call(engine_lab, vm, "get_top", object="pd-web")
    assert "sleep 1d" in top
    report = call(engine_lab, vm, "diagnose")
    assert "Result: container management works for this VM." in report, report
    assert "rootful Podman -> /run/podman/podman.sock" in report
    assert "[ OK ] the Docker API version is supported: Podman 5.4.2" in report


# -- defect 2: diagnose advised the docker group for Podman's root-only socket ------------


def test_diagnose_on_rootful_podman_gives_the_fix_that_works(engine_lab):
    vm = guest(engine_lab, "podman5")
    podman_socket(engine_lab, vm, "root", "600")  # Podman's own: for root only
    try:
        report = call(engine_lab, vm, "diagnose")
    finally:
        podman_socket(engine_lab, vm, "docker", "660")
    assert ("[FAIL] user %s may use the Docker socket: permission denied: /var/run/docker.sock "
            "(-> /run/podman/podman.sock) is root:root mode 600: rootful Podman's socket is for "
            "root only" % vm.username) in report, report
    assert "Add the user to the docker group" not in report
    assert "SocketGroup=docker" in report
    assert "systemctl --user enable --now podman.socket" in report
    # the fix it gives (the socket unit's group and mode, as the lab serves it) works
    assert "Result: container management works" in call(engine_lab, vm, "diagnose")


# -- defect 3: rootless Podman had no socket xscontainer knew ----------------------------


def test_rootless_podman_is_found_and_managed(engine_lab):
    vm = guest(engine_lab, "podman5-rootless")
    run(engine_lab, vm, "pd-mine")
    assert "sleep" in call(engine_lab, vm, "get_top", object="pd-mine")
    # (no pause here: rootless containers on this machine's cgroup v1 cannot pause)
    call(engine_lab, vm, "stop", container="pd-mine")
    state = json.loads(engine_lab.exec(vm.name, ["podman", "inspect", "--format", "{{json .State}}",
                                           "pd-mine"], user=vm.username).stdout)
    assert state["Status"] == "exited"
    call(engine_lab, vm, "start", container="pd-mine")
    report = call(engine_lab, vm, "diagnose")
    assert "Result: container management works for this VM." in report, report
    uid = engine_lab.exec(vm.name, ["id", "-u"], user=vm.username).stdout.strip()
    assert "the Docker socket /run/user/%s/podman/podman.sock exists: rootless Podman" % uid \
        in report


# -- defect 6: already paused read differently on Docker and Podman -----------------------


def test_already_paused_reads_the_same_on_docker_and_podman(engine_lab, usable_podman):
    seen = []
    for vm in (guest(engine_lab, "docker28"), usable_podman):
        run(engine_lab, vm, "pd-pz")
        call(engine_lab, vm, "pause", container="pd-pz")
        paused = failure(engine_lab, vm, "pause", container="pd-pz")
        call(engine_lab, vm, "unpause", container="pd-pz")
        running = failure(engine_lab, vm, "unpause", container="pd-pz")
        seen.append((same_words(paused, vm), same_words(running, vm)))
    docker, podman = seen
    assert docker == podman
    assert docker[0] == [
        "XSCONTAINER_DOCKER_ERROR",
        "Docker in VM X could not pause container pd-pz: the container's state does not "
        "allow it (it is paused). Refresh the container list and retry.", "409"]
    assert "(it is running)" in docker[1][1]


# -- defect 5: every call paid Podman's slow /version -------------------------------------


def test_the_api_version_is_negotiated_once_per_engine(engine_lab, usable_podman):
    vm = usable_podman
    run(engine_lab, vm, "pd-v")
    engine_lab.forget_api_versions(vm.name)
    folder = os.path.join(host_env(engine_lab, vm)["XSCONTAINER_RUN_DIR"], "api-versions")
    offset = log_size(engine_lab, vm)
    for _ in range(3):
        call(engine_lab, vm, "get_inspect", object="pd-v")
    negotiated = re.findall(r"negotiated API (\S+) with (\S+ \S+) in VM " + vm.name,
                            log_since(engine_lab, vm, offset))
    assert negotiated == [("1.41", "Podman 5.4.2")]
    (name,) = [n for n in os.listdir(folder) if n.startswith(vm.uuid)]
    path = os.path.join(folder, name)
    assert oct(os.stat(folder).st_mode & 0o777) == "0o700"
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    with open(path) as f:
        assert json.load(f) == {"api": "1.41", "engine": "Podman",
                                "server": "Libpod/5.4.2 (linux)"}
    # the VM's engine was Docker when the version was cached: the first reply,
    # from Podman, says otherwise, and the version is negotiated again
    with open(path, "w") as f:
        json.dump({"api": "1.51", "engine": "Docker", "server": "Docker/28.5.2 (linux)"}, f)
    offset = log_size(engine_lab, vm)
    call(engine_lab, vm, "get_inspect", object="pd-v")
    assert "another engine answers (Libpod/5.4.2 (linux))" in log_since(engine_lab, vm, offset)
    with open(path) as f:
        assert json.load(f)["engine"] == "Podman"


# -- defect 4: Podman's health never reached docker_ps -------------------------------------


def test_podman_health_reaches_docker_ps(engine_lab, usable_podman):
    vm = usable_podman
    run(engine_lab, vm, "pd-hc", "--health-cmd", "true", "--health-interval", "1h")
    run(engine_lab, vm, "pd-nohc")
    # no systemd in a lab guest to run Podman's health timers: run the check once
    engine_lab.exec(vm.name, ["podman", "healthcheck", "run", "pd-hc"])
    monitor = Monitor(engine_lab, vm.host, FAST)
    try:
        with engine_lab.xapi_session() as s:
            ref = s.xenapi.VM.get_by_uuid(vm.uuid)
            s.xenapi.VM.remove_from_other_config(ref, "xscontainer-monitor")
            s.xenapi.VM.add_to_other_config(ref, "xscontainer-monitor", "True")

        def entries() -> Any:
            with engine_lab.xapi_session() as s:
                config = s.xenapi.VM.get_other_config(s.xenapi.VM.get_by_uuid(vm.uuid))
            if not config.get("docker_ps"):
                return None
            found = {e.get("names"): e for e in ps_entries(config["docker_ps"])}
            return found if "pd-hc" in found and found["pd-hc"].get("health") == "healthy" else None

        found = wait_for("docker_ps with hc healthy", entries, timeout=30,
                         why=monitor.log_tail)
        assert found["pd-hc"]["status"] == "Up"
        assert "health" not in found["pd-nohc"]
    finally:
        monitor.stop()
        with engine_lab.xapi_session() as s:
            ref = s.xenapi.VM.get_by_uuid(vm.uuid)
            s.xenapi.VM.remove_from_other_config(ref, "xscontainer-monitor")


# -- the VM's own setting: xscontainer-docker-socket ---------------------------------------


def set_key(lab: labctl.Lab, vm: labctl.VM, key: str, value: str) -> None:
    with lab.xapi_session() as s:
        ref = s.xenapi.VM.get_by_uuid(vm.uuid)
        s.xenapi.VM.remove_from_other_config(ref, key)
        if value:
            s.xenapi.VM.add_to_other_config(ref, key, value)


def test_the_socket_the_vm_names_is_used_and_a_bad_one_refused(engine_lab, usable_podman):
    vm = usable_podman
    run(engine_lab, vm, "pd-named")
    key = "xscontainer-docker-socket"
    try:
        set_key(engine_lab, vm, key, PODMAN_SOCKET)
        assert "sleep 1d" in call(engine_lab, vm, "get_top", object="pd-named")
        report = call(engine_lab, vm, "diagnose")
        assert "[ OK ] the Docker socket %s exists: rootful Podman" % PODMAN_SOCKET in report
        assert "(other-config %s)" % key in report
        set_key(engine_lab, vm, key, "/run/podman/podman.sock; reboot")
        details = failure(engine_lab, vm, "get_top", object="pd-named")
        assert details[0] == "XSCONTAINER_INVALID_ARGUMENT"
        assert "xe vm-param-set uuid=<vm> other-config:%s=" % key in details[1]
        with engine_lab.xapi_session() as s:
            config = s.xenapi.VM.get_other_config(s.xenapi.VM.get_by_uuid(vm.uuid))
        assert config[key] == "/run/podman/podman.sock; reboot"
        set_key(engine_lab, vm, key, "/run/nothing-here.sock")
        report = call(engine_lab, vm, "diagnose")
        assert "[FAIL] the Docker socket /run/nothing-here.sock exists" in report
        assert "param-key=%s" % key in report
    finally:
        set_key(engine_lab, vm, key, "")
