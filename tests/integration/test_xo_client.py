"""Xen Orchestra drives the lab with its own XAPI client.

tests/xo/xo-containers.mjs runs the npm package `xen-api` (the connector
xo-server uses) and fast-xml-parser with xo-server's options, both pinned in
tests/xo/package.json and package-lock.json and installed by this module into
a cache outside the repository (XSC_NPM_CACHE, default
/var/cache/xscontainer-lab/npm; reinstalled only when the pins change). The
script connects as xo-server does, registers the VMs through host.call_plugin
with XO's argument shapes, reads docker_ps, docker_info and docker_version
from the client's event-fed object cache, and presses each Containers-tab
button only where XO shows it. At every step it prints what XO would show and
waits: this test compares each field with the guest's own Docker, then lets it
go on. The monitor runs in both dom0s, as on a real pool.

It fails (never skips) when node or npm is missing, npm cannot install a
package, or the lab cannot start.
"""

import fcntl
import hashlib
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest

from xsclab import labctl

XO_DIR = Path(__file__).resolve().parent.parent / "xo"
SCRIPT = XO_DIR / "xo-containers.mjs"
PIN_FILES = ("package.json", "package-lock.json")
DEFAULT_CACHE = "/var/cache/xscontainer-lab/npm"
IMAGE = "xsc-test/busybox:latest"
STEP_TIMEOUT = 90.0  # one step of the script (it waits up to 60 s for the cache itself)
NPM_TIMEOUT = 600.0

# xo-web's Containers tab: buttons by exact status
BUTTONS = {"Up": ["stop", "restart", "pause"], "Up (Paused)": ["unpause"],
           "Exited (137)": ["start"]}
PLAN = ["stop", "start", "pause", "unpause", "restart"]


def pins() -> Dict[str, str]:
    with open(XO_DIR / "package.json") as f:
        return dict(json.load(f)["dependencies"])


def installed_version(cache: Path, name: str) -> Optional[str]:
    try:
        with open(cache / "node_modules" / name / "package.json") as f:
            return str(json.load(f)["version"])
    except (OSError, ValueError, KeyError):
        return None


def install_xo_client() -> Path:
    """The cache folder with the pinned packages in node_modules (npm ci when the
    pins changed since the last install; one installer at a time)."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            pytest.fail("%s is not installed: the Xen Orchestra client test needs Node.js "
                        "and npm" % tool, pytrace=False)
    cache = Path(os.environ.get("XSC_NPM_CACHE", DEFAULT_CACHE))
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        pytest.fail("cannot make the npm cache %s: %s" % (cache, e), pytrace=False)
    digest = hashlib.sha256(b"".join((XO_DIR / n).read_bytes() for n in PIN_FILES)).hexdigest()
    wanted = pins()
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp = cache / ".installed"
        if (stamp.exists() and stamp.read_text() == digest
                and all(installed_version(cache, n) == v for n, v in wanted.items())):
            return cache
        for name in PIN_FILES:
            shutil.copyfile(XO_DIR / name, cache / name)
        try:
            proc = subprocess.run(
                ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=str(cache),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                timeout=NPM_TIMEOUT)
            failed = proc.returncode != 0
            output = proc.stderr + proc.stdout
        except subprocess.TimeoutExpired:
            failed, output = True, "npm ci did not finish in %gs" % NPM_TIMEOUT
        if failed:
            named = [n for n in wanted if n in output] or list(wanted)
            pytest.fail("npm could not install %s into %s:\n%s" % (
                ", ".join("%s@%s" % (n, wanted[n]) for n in named), cache, output[-3000:]),
                pytrace=False)
        for name, version in wanted.items():
            got = installed_version(cache, name)
            if got != version:
                pytest.fail("npm installed %s %s into %s, not the pinned %s" % (
                    name, got, cache, version), pytrace=False)
        stamp.write_text(digest)
    return cache


@pytest.fixture(scope="module")
def xo_modules() -> Path:
    return install_xo_client()


@pytest.fixture(scope="module")
def monitors(lab: labctl.Lab) -> Iterator[None]:
    """xscontainer-monitor in the dom0 of every host."""
    procs = []
    logs = []
    for host in lab.hosts:
        log = tempfile.TemporaryFile()
        logs.append(log)
        procs.append(lab.dom0_popen(host.uuid, ["xscontainer-monitor"],
                                    stdout=subprocess.DEVNULL, stderr=log))
    yield
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for log in logs:
        log.close()


def shown_status(status: str) -> str:
    """What XO shows for Docker's status text (the plugin's normalisation, as
    clients expect it): `Up ...` -> Up, `Up ... (Paused)` -> Up (Paused),
    `Exited (N) ...` -> Exited (N), anything else as it is."""
    exited = re.match(r"Exited \((-?\d+)\)", status)
    if exited:
        return "Exited (%s)" % exited.group(1)
    if status.startswith("Up "):
        return "Up (Paused)" if status.endswith("(Paused)") else "Up"
    return status


class Script:
    """The node script, in lock step: next() reads its next message, ok() lets it go on."""

    def __init__(self, config: Dict[str, Any], folder: Path) -> None:
        self.config_file = folder / "xo-config.json"
        self.config_file.write_text(json.dumps(config))
        self.stderr = open(folder / "xo-stderr.log", "w+")
        self.proc = subprocess.Popen(
            ["node", str(SCRIPT), str(self.config_file)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self.stderr, universal_newlines=True, bufsize=1)
        self.messages: "queue.Queue[Optional[str]]" = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.messages.put(line)
        self.messages.put(None)

    def stderr_tail(self) -> str:
        self.stderr.flush()
        self.stderr.seek(0)
        return self.stderr.read()[-3000:]

    def next(self) -> Dict[str, Any]:
        try:
            line = self.messages.get(timeout=STEP_TIMEOUT)
        except queue.Empty:
            pytest.fail("the Xen Orchestra client said nothing for %gs\n%s" % (
                STEP_TIMEOUT, self.stderr_tail()))
        if line is None:
            pytest.fail("the Xen Orchestra client exited (%s) early\n%s" % (
                self.proc.wait(10), self.stderr_tail()))
        message = json.loads(line)
        if message["type"] == "error":
            pytest.fail("the Xen Orchestra client failed: %s (code %s, params %s)\n%s" % (
                message["message"], message.get("code"), message.get("params"),
                self.stderr_tail()))
        return dict(message)

    def ok(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("ok\n")
        self.proc.stdin.flush()

    def finish(self) -> None:
        assert self.next()["type"] == "done"
        assert self.proc.wait(30) == 0, self.stderr_tail()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.stderr.close()


def check_view(lab: labctl.Lab, view: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    """Every field XO shows for the VM against its Docker; returns the table by name."""
    vm = lab.vm(view["vm"])
    client = lab.docker(vm.name)
    try:
        truth = {c["Names"][0].lstrip("/"): c for c in client.api.containers(all=True)}
        version, info = client.api.version(), client.api.info()
    finally:
        client.close()
    step = "%s on %s" % (view["step"], vm.name)
    docker = view["docker"]
    assert docker["enabled"] is True, step
    table = {row["name"]: row for row in view["table"]}
    assert sorted(table) == sorted(truth), step
    assert len(docker["containers"]) == len(truth), step
    for name, row in table.items():
        c = truth[name]
        assert row["container"] == c["Id"][:10], (step, name)
        assert row["command"] == c["Command"], (step, name)
        assert row["created"] == str(c["Created"]), (step, name)  # seconds: XO multiplies by 1000
        assert row["status"] == shown_status(c["Status"]), (step, name, c["Status"])
        assert row["buttons"] == BUTTONS.get(row["status"], []), (step, name)
    assert docker["version"]["Version"] == version["Version"], step
    assert docker["version"]["ApiVersion"] == version["ApiVersion"], step
    assert docker["info"]["ID"] == info["ID"], step
    assert docker["info"]["Driver"] == info["Driver"], step
    return table


@pytest.fixture
def containers(lab: labctl.Lab) -> Iterator[Dict[str, Any]]:
    """Containers as a user left them: on the VM of a host that is not the master
    (XO then calls that host) `xo-web` running (stop kills it: Exited (137)),
    `xo-Done` exited with 0 (no button) and `xo-sleeper` running; on a second VM
    `xo-other`; the others have none. Removed afterwards, with the VMs'
    registration keys when they had none before."""
    target = next(v for v in lab.vms if v.host != lab.master)
    other = next(v for v in lab.vms if v.uuid != target.uuid)
    made = []
    with lab.xapi_session() as s:
        had_key = {vm.uuid: "xscontainer-monitor" in s.xenapi.VM.get_other_config(
            s.xenapi.VM.get_by_uuid(vm.uuid)) for vm in lab.vms}
    try:
        for vm, name, command, extra in (
            (target, "xo-web", ["sleep", "1d"], {"stop_signal": "SIGKILL"}),
            (target, "xo-Done", ["true"], {}),
            (target, "xo-sleeper", ["sh", "-c", "sleep 1d"], {}),
            (other, "xo-other", ["sleep", "1d"], {}),
        ):
            client = lab.docker(vm.name)
            c = client.containers.run(IMAGE, command, name=name, detach=True, init=True, **extra)
            made.append((vm, name))
            if name == "xo-Done":
                c.wait(timeout=30)
            client.close()
        yield {"target": target, "other": other}
    finally:
        for vm, name in made:
            client = lab.docker(vm.name)
            client.api.remove_container(name, force=True)
            client.close()
        with lab.xapi_session() as s:
            for vm in lab.vms:
                if not had_key[vm.uuid]:
                    s.xenapi.VM.remove_from_other_config(
                        s.xenapi.VM.get_by_uuid(vm.uuid), "xscontainer-monitor")


def run_script(lab: labctl.Lab, modules: Path, tmp_path: Path, transport: str,
               plan: List[str], target: Optional[labctl.VM]) -> Dict[str, Any]:
    """Runs the script through registration, `plan` and deregistration, checking
    every view; returns the client's message (versions)."""
    xapi = lab.data["xapi"]
    config = {
        "modules": str(modules), "url": xapi["url"], "user": xapi["username"],
        "password": xapi["password"], "transport": transport,
        "vms": [vm.uuid for vm in lab.vms], "register": True, "deregister": True,
        "actOn": {"vm": target.uuid, "name": "xo-web"} if target else None, "plan": plan,
        "timeout": 60,
    }
    script = Script(config, tmp_path)
    try:
        client = script.next()
        assert client["type"] == "client"
        assert client["xen-api"] == pins()["xen-api"]
        for _ in lab.vms:
            view = script.next()
            assert view["step"] == "registered"
            table = check_view(lab, view)
            if target and view["vm"] == target.uuid:
                assert table["xo-web"]["buttons"] == ["stop", "restart", "pause"]
                assert table["xo-Done"]["status"] == "Exited (0)"
                assert table["xo-Done"]["buttons"] == []
            script.ok()
        started_at = ""
        for action in plan:
            assert target is not None
            view = script.next()
            assert (view["step"], view["vm"]) == ("after " + action, target.uuid)
            check_view(lab, view)
            engine = lab.docker(target.name)
            state = engine.api.inspect_container("xo-web")["State"]
            engine.close()
            if action == "restart":
                assert state["StartedAt"] != started_at, "restart did not restart xo-web"
            started_at = state["StartedAt"]
            script.ok()
        for _ in lab.vms:
            view = script.next()
            assert view["step"] == "deregistered"
            assert view["docker"] == {"enabled": False} and view["table"] == []
            with lab.xapi_session() as s:
                other_config = s.xenapi.VM.get_other_config(
                    s.xenapi.VM.get_by_uuid(view["vm"]))
            assert other_config["xscontainer-monitor"] == "False"
            script.ok()
        script.finish()
        return client
    finally:
        script.close()


def protocol_counts(lab: labctl.Lab) -> Dict[str, int]:
    with lab.xapi_session() as s:
        return {k: int(v) for k, v in s.xenapi.lab.stats()["protocols"].items()}


def test_xen_orchestra_containers_workflow(lab: labctl.Lab, xo_modules: Path, monitors: None,
                                           containers: Dict[str, Any], tmp_path: Path,
                                           capsys: pytest.CaptureFixture) -> None:
    """XO's client over JSON-RPC (its first choice): register, every button, deregister."""
    before = protocol_counts(lab)
    client = run_script(lab, xo_modules, tmp_path, "auto", PLAN, containers["target"])
    after = protocol_counts(lab)
    assert after.get("json-rpc", 0) > before.get("json-rpc", 0) + 10
    with capsys.disabled():
        print("\nXen Orchestra client: xen-api %s, fast-xml-parser %s, node %s (JSON-RPC)"
              % (client["xen-api"], client["fast-xml-parser"], client["node"]))


def test_xen_orchestra_client_over_xml_rpc(lab: labctl.Lab, xo_modules: Path, monitors: None,
                                           containers: Dict[str, Any], tmp_path: Path) -> None:
    """The same client on its XML-RPC transport (older hosts): xapi's compact
    replies parse, the cache follows events, the views match Docker."""
    before = protocol_counts(lab)
    run_script(lab, xo_modules, tmp_path, "xml-rpc", ["stop", "start"], containers["target"])
    after = protocol_counts(lab)
    assert after.get("json-rpc", 0) == before.get("json-rpc", 0)
