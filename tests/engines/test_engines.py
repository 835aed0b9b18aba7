"""The engine-sensitive integration tests on every engine of the matrix (one lab
guest each, conftest.py): the guest's own engine and CLI; prepare and diagnose;
every Docker-backed plugin function; the same answer to a state conflict; health
in docker_ps; the monitor following each engine's events.

Per engine what does not apply is left out, and says why: a rootless Podman
cannot pause on cgroup v1 (its containers have no cgroup), so pause and unpause
are checked to fail with a readable code there instead.
"""

import json
import time
import uuid
from typing import Any, Dict, Iterator, List

import pytest
import XenAPI

from tests.integration.monitoring import FAST, Monitor, ps_entries, wait_for
from xsclab import labctl

from .conftest import engines

IMAGE = "xsc-test/busybox"
ENGINES = engines()
ROOTFUL = [e for e in ENGINES if not e.endswith("-rootless")]


def guest(lab: labctl.Lab, engine: str) -> labctl.VM:
    (vm,) = [v for v in lab.vms if v.engine == engine]
    return vm


def call(lab: labctl.Lab, vm: labctl.VM, fn: str, **args: str) -> str:
    value = lab.call_plugin(vm.host, fn, dict(args, vmuuid=vm.uuid))
    assert value.startswith("True"), value
    return value[4:]


def failure(lab: labctl.Lab, vm: labctl.VM, fn: str, **args: str) -> List[str]:
    with pytest.raises(XenAPI.Failure) as exc:
        lab.call_plugin(vm.host, fn, dict(args, vmuuid=vm.uuid))
    return [str(d) for d in exc.value.details]


def other_config(lab: labctl.Lab, vm: labctl.VM) -> Dict[str, str]:
    with lab.xapi_session() as s:
        return dict(s.xenapi.VM.get_other_config(s.xenapi.VM.get_by_uuid(vm.uuid)))


def run(lab: labctl.Lab, vm: labctl.VM, name: str, **kw: Any) -> Any:
    """A container on the guest's engine, through its own API (root side)."""
    return lab.docker(vm.name, timeout=60).containers.run(
        IMAGE, ["sleep", "1d"], name=name, detach=True, init=True, **kw
    )


def remove(lab: labctl.Lab, vm: labctl.VM, name: str) -> None:
    try:
        lab.docker(vm.name, timeout=60).api.remove_container(name, force=True)
    except Exception:  # already gone
        pass


def client_state(lab: labctl.Lab, vm: labctl.VM, name: str) -> Dict[str, Any]:
    return dict(lab.docker(vm.name).api.inspect_container(name)["State"])


@pytest.fixture
def name() -> str:
    return "c" + uuid.uuid4().hex[:8]


# -- the lab side -----------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_guest_runs_its_engine_and_sees_only_its_cli(engine_lab, engine):
    vm = guest(engine_lab, engine)
    versions = engine_lab.data["engines"][engine]
    assert versions, "lab.json names the packages of %s" % engine
    info = engine_lab.docker(vm.name).version()
    user = vm.username
    cli = engine_lab.exec(vm.name, ["sh", "-c", "command -v docker || echo none"], user=user)
    sock = engine_lab.exec(vm.name, ["sh", "-c", "ls -l /var/run/docker.sock || true"],
                           user=user)  # fmt: skip
    if engine.startswith("docker"):
        package = versions["docker.io/%s" % ("trixie" if engine == "docker26" else "sid")]
        assert package.startswith(info["Version"].split("+")[0]), (package, info["Version"])
        client = engine_lab.exec(vm.name, ["docker", "version", "--format",
                                           "{{.Client.Version}}"], user=user).stdout  # fmt: skip
        assert client.strip() == info["Version"], "the guest's CLI is the engine's own"
    else:
        component = [c["Name"] for c in info.get("Components", [])]
        assert "Podman Engine" in component, info
        assert vm.engine_socket.endswith("/podman/podman.sock")
    if engine.endswith("-rootless"):
        assert cli.stdout.strip() == "none"
        assert "docker.sock" not in sock.stdout
        assert vm.engine_socket.startswith("/run/user/")
    elif engine.startswith("podman"):
        shim = engine_lab.exec(vm.name, ["cat", "/usr/bin/docker"], user=user).stdout
        assert "exec /usr/bin/podman" in shim, "podman-docker's docker is Podman"
        assert "/run/podman/podman.sock" in sock.stdout
    else:
        assert cli.stdout.strip() == "/usr/bin/docker"


# -- prepare and diagnose ------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_prepare_then_diagnose(engine_lab, engine):
    vm = guest(engine_lab, engine)
    report = call(engine_lab, vm, "prepare")
    assert "[FAIL]" not in report, report
    assert other_config(engine_lab, vm).get("xscontainer-monitor") == "True"
    diagnosis = call(engine_lab, vm, "diagnose")
    assert "[FAIL]" not in diagnosis, diagnosis
    assert diagnosis.endswith("Result: container management works for this VM."), diagnosis
    if engine.startswith("podman"):
        assert "Podman" in diagnosis, diagnosis
        assert ("rootless" in diagnosis) == engine.endswith("-rootless"), diagnosis
        assert "docker group" not in diagnosis, "no docker-group advice for Podman"


# -- every Docker-backed plugin function ---------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_plugin_functions(engine_lab, engine, name):
    vm = guest(engine_lab, engine)
    container = run(engine_lab, vm, name)
    short = container.id[:10]
    try:
        inspect = call(engine_lab, vm, "get_inspect", object=name)
        assert "<docker_inspect>" in inspect and container.id in inspect
        top = call(engine_lab, vm, "get_top", object=short)
        assert "<Process>" in top and "sleep 1d" in top
        logs = json.loads(call(engine_lab, vm, "get_logs", object=name, format="json"))
        assert isinstance(logs, dict)
        stats = call(engine_lab, vm, "get_stats", object=name)
        assert "<docker_stats>" in stats and "<pids>" in stats

        def status() -> str:
            listed = ps_entries(call(engine_lab, vm, "get_ps"))
            (entry,) = [e for e in listed if e.get("names") == name]
            return entry["status"]

        if engine.endswith("-rootless"):
            details = failure(engine_lab, vm, "pause", container=name)
            assert details[0].startswith("XSCONTAINER_"), details
        else:
            call(engine_lab, vm, "pause", container=short)
            assert status() == "Up (Paused)"
            call(engine_lab, vm, "unpause", container=name)
        assert status() == "Up"
        call(engine_lab, vm, "stop", container=name)
        assert status().startswith("Exited (")
        call(engine_lab, vm, "start", container=container.id)
        call(engine_lab, vm, "restart", container=name)
        assert status() == "Up"
        assert client_state(engine_lab, vm, name)["Running"] is True
    finally:
        remove(engine_lab, vm, name)


# Docker 26 and 28 leave id and name out of their one-shot stats sample: the
# row still names the container (from inspect).
@pytest.mark.parametrize("engine", ENGINES)
def test_get_stats_names_the_container(engine_lab, engine, name):
    vm = guest(engine_lab, engine)
    container = run(engine_lab, vm, name)
    try:
        answer = json.loads(call(engine_lab, vm, "get_stats", object=name, format="json"))
        (row,) = answer["containers"]
        assert row["name"] == name and container.id.startswith(row["id"][:12]), row
    finally:
        remove(engine_lab, vm, name)


def test_a_state_conflict_reads_the_same_on_every_engine(engine_lab):
    """Pausing a paused container: Docker answers 409, Podman 500 "container
    state improper"; a user reads one code and one message."""
    answers = {}
    for engine in ROOTFUL:
        vm = guest(engine_lab, engine)
        name = "conflict-" + engine
        run(engine_lab, vm, name)
        try:
            call(engine_lab, vm, "pause", container=name)
            details = failure(engine_lab, vm, "pause", container=name)
            answers[engine] = (details[0], details[1].replace(vm.uuid, "VM"))
        finally:
            remove(engine_lab, vm, name)
    codes = {code for code, _ in answers.values()}
    assert len(codes) == 1 and codes.pop().startswith("XSCONTAINER_"), answers
    for _code, message in answers.values():
        assert "paused" in message, answers


@pytest.mark.parametrize("engine", ENGINES)
def test_health_reaches_docker_ps(engine_lab, engine, name):
    vm = guest(engine_lab, engine)
    run(engine_lab, vm, name,
        healthcheck={"test": ["CMD", "true"], "interval": 1000000000, "retries": 1})  # fmt: skip
    try:
        def health() -> str:
            if engine.startswith("podman"):
                # no systemd timers in a lab guest: run the check as a timer would
                user = vm.username if engine.endswith("-rootless") else None
                engine_lab.exec(vm.name, ["podman", "healthcheck", "run", name], user=user,
                                check=False)  # fmt: skip
            listed = ps_entries(call(engine_lab, vm, "get_ps"))
            (entry,) = [e for e in listed if e.get("names") == name]
            return entry.get("health", "")

        wait_for("%s's health in docker_ps" % name, lambda: health() == "healthy",
                 timeout=30, every=0.5)  # fmt: skip
    finally:
        remove(engine_lab, vm, name)


# -- the monitor ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def monitors(engine_lab) -> Iterator[Dict[str, Monitor]]:
    started = {h.uuid: Monitor(engine_lab, h.uuid, FAST) for h in engine_lab.hosts}
    try:
        yield started
    finally:
        for m in started.values():
            m.stop()


@pytest.mark.parametrize("engine", ENGINES)
def test_monitor_follows_the_engines_events(engine_lab, engine, monitors, name):
    vm = guest(engine_lab, engine)
    call(engine_lab, vm, "register")

    def published() -> Dict[str, str]:
        text = other_config(engine_lab, vm).get("docker_ps")
        return {e["names"]: e["status"] for e in ps_entries(text)} if text else {}

    wait_for("docker_ps of %s" % vm.name, lambda: "docker_info" in other_config(engine_lab, vm),
             timeout=60, why=monitors[vm.host].log_tail)  # fmt: skip
    client = engine_lab.docker(vm.name, timeout=60)
    container = run(engine_lab, vm, name)
    try:
        t0 = time.monotonic()
        wait_for("%s Up" % name, lambda: published().get(name) == "Up", timeout=30,
                 why=monitors[vm.host].log_tail)  # fmt: skip
        if not engine.endswith("-rootless"):
            client.api.pause(container.id)
            wait_for("%s paused" % name, lambda: published().get(name) == "Up (Paused)",
                     timeout=30, why=monitors[vm.host].log_tail)  # fmt: skip
            client.api.unpause(container.id)
        client.api.stop(container.id, timeout=2)
        wait_for("%s exited" % name, lambda: (published().get(name) or "").startswith("Exited ("),
                 timeout=30, why=monitors[vm.host].log_tail)  # fmt: skip
        assert time.monotonic() - t0 < 60
        version = other_config(engine_lab, vm)["docker_version"]
        assert "<docker_version>" in version
    finally:
        remove(engine_lab, vm, name)
    wait_for("%s gone from docker_ps" % name, lambda: name not in published(), timeout=30)
