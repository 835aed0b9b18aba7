"""The `xscontainer` command as a person (and a script) uses it, in a lab dom0.

Each call runs scripts/xscontainer (or the installed /usr/bin/xscontainer) in
the dom0 of the lab's last host with that dom0's environment: it logs in on
the simulator's local socket and calls host.call_plugin on its own host, which
forwards calls for VMs resident elsewhere, as xapi does.
"""

import json
import os
import shlex
import signal
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, Iterator, List

import pytest

from xsclab import labenv
from xscontainer import xmlenc

IMAGE = "xsc-test/busybox"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def xsc(lab: Any, *argv: str, timeout: float = 120) -> "subprocess.CompletedProcess[str]":
    """`xscontainer ARGV` in the dom0 of the last host (not the pool's coordinator)."""
    return lab.dom0_run(lab.hosts[-1].uuid, ["xscontainer", *argv], timeout=timeout)


def xsc_many(lab: Any, *argvs: List[str]) -> List["subprocess.CompletedProcess[str]"]:
    """Several independent `xscontainer` runs at once (as several admins would)."""
    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(lambda argv: xsc(lab, *argv), argvs))


def xsc_json(lab: Any, *argv: str, status: int = 0) -> Any:
    out = xsc(lab, "--json", *argv)
    assert out.returncode == status, (argv, out.returncode, out.stdout, out.stderr)
    return json.loads(out.stdout)


def other_config(lab: Any, vm: Any) -> Dict[str, str]:
    with lab.xapi_session() as s:
        return dict(s.xenapi.VM.get_other_config(s.xenapi.VM.get_by_uuid(vm.uuid)))


def set_key(lab: Any, vm: Any, key: str, value: Any) -> None:
    """Set (or with None remove) one other-config key."""
    with lab.xapi_session() as s:
        ref = s.xenapi.VM.get_by_uuid(vm.uuid)
        s.xenapi.VM.remove_from_other_config(ref, key)
        if value is not None:
            s.xenapi.VM.add_to_other_config(ref, key, value)


@pytest.fixture(scope="module")
def vm(lab: Any) -> Any:
    """The first guest (resident on the coordinator: calls from the last host's dom0
    are forwarded)."""
    return lab.vms[0]


@pytest.fixture(scope="module")
def web(lab: Any, vm: Any) -> Iterator[str]:
    """A container that writes a numbered line to stdout and to stderr each 0.2 s."""
    name = "xsc-cli-web"
    lab.exec(vm.name, ["docker", "rm", "-f", name], check=False)
    lab.exec(vm.name, ["docker", "run", "-d", "--init", "--name", name, IMAGE, "sh", "-c",
                       "i=0; while true; do i=$((i+1)); echo out $i; echo err $i >&2; "
                       "sleep 0.2; done"])
    yield name
    lab.exec(vm.name, ["docker", "rm", "-f", name], check=False)


@pytest.fixture
def saved_keys(lab: Any, vm: Any) -> Iterator[None]:
    """The VM's xscontainer-monitor and docker_ps keys as they were, afterwards."""
    keys = ("xscontainer-monitor", "docker_ps")
    before = {k: other_config(lab, vm).get(k) for k in keys}
    yield
    for key in keys:
        set_key(lab, vm, key, before[key])


def test_help_and_usage_errors(lab: Any) -> None:
    out, *wrong = xsc_many(lab, ["--help"], ["logs", "-n", "10x", "vm", "c"],
                           ["logs", "-n", "-1", "vm", "c"], ["nope"])
    assert out.returncode == 0, out.stderr
    assert "examples:" in out.stdout and "exit status:" in out.stdout
    assert "xscontainer logs -n 5" in out.stdout
    for out in wrong:
        assert out.returncode == 2, (out.args, out.stdout, out.stderr)
        assert out.stdout == "" and len(out.stderr.splitlines()) == 1, out.stderr


def test_vm_by_uuid_or_name_label(lab: Any, vm: Any, saved_keys: None) -> None:
    out = xsc(lab, "register", vm.name)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "Registered %s (%s)" % (vm.name, vm.uuid)
    assert other_config(lab, vm)["xscontainer-monitor"] == "True"
    answer = xsc_json(lab, "deregister", vm.uuid)
    assert answer == {"vm": {"uuid": vm.uuid, "name_label": vm.name}, "registered": False}
    assert other_config(lab, vm)["xscontainer-monitor"] == "False"
    # upper-case uuids are uuids too
    assert xsc_json(lab, "register", vm.uuid.upper())["registered"] is True


def test_unknown_and_ambiguous_names(lab: Any, vm: Any, web: str) -> None:
    out = xsc(lab, "top", "no-such-vm", web)
    assert out.returncode == 3, (out.stdout, out.stderr)
    assert "no-such-vm" in out.stderr and "xe vm-list" in out.stderr
    twin = lab.vms[1]
    with lab.xapi_session() as s:
        ref = s.xenapi.VM.get_by_uuid(twin.uuid)
        s.xenapi.VM.set_name_label(ref, vm.name)
        try:
            out = xsc(lab, "top", vm.name, web)
            assert out.returncode == 4, (out.stdout, out.stderr)
            assert "2 VMs are named %r" % vm.name in out.stderr
            assert vm.uuid in out.stderr and twin.uuid in out.stderr
            error = xsc_json(lab, "top", vm.name, web, status=4)["error"]
            assert error["status"] == 4 and twin.uuid in error["message"]
            # the uuid still names either
            assert xsc(lab, "top", vm.uuid, web).returncode == 0
        finally:
            s.xenapi.VM.set_name_label(ref, twin.name)


def test_ps_reads_the_published_lists_and_touches_no_guest(lab: Any, vm: Any,
                                                           saved_keys: None) -> None:
    # a list only XAPI holds: no guest has these containers
    published = xmlenc.docker_ps([
        {"Id": "f" * 64, "Names": ["/only-published"], "Image": "nginx", "Command": "nginx",
         "Created": 1700000000, "Status": "Up 2 hours",
         "Ports": [{"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"}]},
        {"Id": "e" * 64, "Names": ["/stopped-one"], "Image": "busybox", "Command": "true",
         "Created": 1700000000, "Status": "Exited (0) 1 hour ago"}])
    set_key(lab, vm, "xscontainer-monitor", "True")
    set_key(lab, vm, "docker_ps", published)
    with lab.xapi_session() as s:
        before = s.xenapi.lab.stats()["calls"].get("host.call_plugin", 0)
        running = xsc_json(lab, "ps")
        everything = xsc_json(lab, "ps", "-a")
        table = xsc(lab, "ps")
        after = s.xenapi.lab.stats()["calls"].get("host.call_plugin", 0)
    assert after == before  # no plugin call: nothing asked of any guest
    mine = [entry for entry in running["vms"] if entry["uuid"] == vm.uuid]
    assert len(mine) == 1 and mine[0]["name_label"] == vm.name
    assert [c["names"] for c in mine[0]["containers"]] == ["only-published"]
    container = mine[0]["containers"][0]
    assert container["id"] == "f" * 64 and container["container"] == "f" * 10
    assert container["status"] == "Up" and container["created"] == 1700000000
    assert container["ports"] == [{"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080,
                                   "Type": "tcp"}]
    mine = [entry for entry in everything["vms"] if entry["uuid"] == vm.uuid]
    assert [c["names"] for c in mine[0]["containers"]] == ["only-published", "stopped-one"]
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["VM", "CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED",
                                "STATUS", "PORTS", "NAMES"]
    row = [line for line in lines if "only-published" in line]
    assert len(row) == 1 and row[0].startswith(vm.name) and "0.0.0.0:8080->80/tcp" in row[0]
    assert "stopped-one" not in table.stdout


def test_lifecycle_and_what_failures_exit_with(lab: Any, vm: Any, web: str) -> None:
    out = xsc(lab, "pause", vm.name, web)
    assert out.returncode == 0 and out.stdout == web + "\n", (out.stdout, out.stderr)
    state = lab.exec(vm.name, ["docker", "inspect", "-f", "{{.State.Status}}", web])
    assert state.stdout.strip() == "paused"
    answer = xsc_json(lab, "unpause", vm.uuid, web, "no-such-container", status=6)
    assert answer["action"] == "unpause" and answer["vm"]["uuid"] == vm.uuid
    done, missing = answer["containers"]
    assert done == {"container": web, "ok": True}
    assert missing["ok"] is False and missing["code"] == "XSCONTAINER_NO_SUCH_CONTAINER"
    state = lab.exec(vm.name, ["docker", "inspect", "-f", "{{.State.Status}}", web])
    assert state.stdout.strip() == "running"
    # a container reference the plugin refuses: a usage error
    out = xsc(lab, "stop", vm.name, "no/such")
    assert out.returncode == 2 and "not a container name" in out.stderr, out.stderr


def test_a_halted_vm(lab: Any, web: str) -> None:
    halted = lab.vms[-1]
    with lab.xapi_session() as s:
        ref = s.xenapi.VM.get_by_uuid(halted.uuid)
        host = s.xenapi.host.get_by_uuid(halted.host)
        networks = s.xenapi.VM_guest_metrics.get_networks(s.xenapi.VM.get_guest_metrics(ref))
        s.xenapi.VM.hard_shutdown(ref)
        try:
            out = xsc(lab, "top", halted.name, web)
            assert out.returncode == 5, (out.stdout, out.stderr)
            assert "Halted" in out.stderr
            # diagnose reports it as a broken link: status 1
            out = xsc(lab, "diagnose", halted.name)
            assert out.returncode == 1, (out.stdout, out.stderr)
            assert "[FAIL] the VM is running" in out.stdout
        finally:
            s.xenapi.VM.start_on(ref, host, False, False)
            s.xenapi.lab.VM.set_guest_networks(ref, networks)


def _completion_script() -> str:
    root = os.environ.get("XSC_LAB_INSTALL_ROOT")
    if root:  # the installed RPM's
        return os.path.join(root, "usr/share/bash-completion/completions/xscontainer")
    return os.path.join(REPO, "packaging", "bash-completion", "xscontainer")


def complete(lab: Any, *words: str) -> List[str]:
    """What bash offers after `words` (the last one being typed)."""
    host = lab.hosts[-1].uuid
    # the program as the lab's dom0 runs it (the installed one's shebang is dom0's
    # /usr/bin/python3, which the lab stands in for with its own interpreter)
    argv = labenv.dom0_argv(["xscontainer"], lab.dom0_env(host))
    wrapper = "" if argv == ["xscontainer"] else "xscontainer() { %s \"$@\"; }; " % " ".join(
        shlex.quote(a) for a in argv)
    script = (wrapper + 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); '
              '_xscontainer; printf "%s\\n" "${COMPREPLY[@]}"')
    out = lab.dom0_run(host, ["bash", "-c", script, "bash", _completion_script(),
                              "xscontainer", *words])
    assert out.returncode == 0, out.stderr
    return sorted(line for line in out.stdout.splitlines() if line)


def test_bash_completion(lab: Any, vm: Any, saved_keys: None) -> None:
    assert complete(lab, "lo") == ["logs"]
    assert complete(lab, "logs", "--ti") == ["--timestamps"]
    prefix = vm.name[:-1]
    assert complete(lab, "logs", prefix) == sorted(v.name for v in lab.vms
                                                   if v.name.startswith(prefix))
    set_key(lab, vm, "docker_ps", xmlenc.docker_ps([
        {"Id": "f" * 64, "Names": ["/only-published"], "Image": "nginx", "Created": 1,
         "Status": "Up 2 hours"}]))
    assert complete(lab, "stop", vm.name, "web", "only-") == ["only-published"]
    assert complete(lab, "logs", "-n", "5", vm.name, "") == ["only-published"]
    assert complete(lab, "prepare", "--mode", "") == ["ssh", "tls"]


# -- on the plugin's get_ps, get_logs, get_stats and format=json -----------------------


def test_ps_of_named_vms_asks_their_engines(lab: Any, vm: Any, web: str) -> None:
    stopped = "xsc-cli-stopped"
    lab.exec(vm.name, ["docker", "rm", "-f", stopped], check=False)
    lab.exec(vm.name, ["docker", "create", "--name", stopped, IMAGE, "true"])
    try:
        outs = xsc_many(lab, ["--json", "ps", vm.name], ["--json", "ps", "-a", vm.uuid],
                        ["ps", vm.name, "no-such-vm"])
    finally:
        lab.exec(vm.name, ["docker", "rm", "-f", stopped], check=False)
    for out in outs[:2]:
        assert out.returncode == 0, (out.args, out.stdout, out.stderr)
    running, everything = (json.loads(out.stdout) for out in outs[:2])
    table = outs[2]
    (entry,) = running["vms"]
    assert entry["uuid"] == vm.uuid and "published" not in entry
    names = [c["names"] for c in entry["containers"]]
    assert web in names and stopped not in names
    (mine,) = [c for c in entry["containers"] if c["names"] == web]
    assert mine["status"] == "Up" and mine["image"] == IMAGE and len(mine["id"]) == 64
    assert stopped in [c["names"] for c in everything["vms"][0]["containers"]]
    # one VM unknown: the others listed, the status says what failed
    assert table.returncode == 3 and "no-such-vm" in table.stderr, table.stderr
    assert any(line.startswith(vm.name) and line.endswith(web)
               for line in table.stdout.splitlines()), table.stdout


def test_logs(lab: Any, vm: Any, web: str) -> None:
    out, as_json, missing = xsc_many(lab, ["logs", "-n", "5", vm.name, web],
                                     ["--json", "logs", "--tail", "4", "-t", vm.uuid, web],
                                     ["logs", vm.name, "no-such-container"])
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 5 and all(line.split()[0] in ("out", "err") for line in lines), lines
    assert as_json.returncode == 0, as_json.stderr
    answer = json.loads(as_json.stdout)
    assert answer["container"] == web and len(answer["lines"]) == 4
    assert {line["stream"] for line in answer["lines"]} <= {"stdout", "stderr"}
    assert all(line["timestamp"] and line["text"].split()[0] in ("out", "err")
               for line in answer["lines"])
    assert missing.returncode == 6, (missing.stdout, missing.stderr)


def test_logs_follow_prints_new_lines_once_and_stops_on_ctrl_c(lab: Any, vm: Any,
                                                               web: str) -> None:
    proc = lab.dom0_popen(lab.hosts[-1].uuid, ["xscontainer", "logs", "-f", "-n", "2",
                                               "--interval", "0.3", vm.name, web],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True)
    seen: List[str] = []
    try:
        deadline = time.time() + 60
        # the two last lines, then new ones as the container writes them (5 a second)
        while len(seen) < 12 and time.time() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line.rstrip("\n"))
        started = time.time()
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, (proc.returncode, err)
    assert time.time() - started < 10
    assert "Traceback" not in err and err == "", err
    seen += rest.splitlines()
    assert len(seen) >= 12, seen
    # every line once, in order: each stream's numbers go up by one
    for stream in ("out", "err"):
        numbers = [int(line.split()[1]) for line in seen if line.split()[0] == stream]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), (stream, seen)


def test_stats(lab: Any, vm: Any, web: str) -> None:
    as_json, out = xsc_many(lab, ["--json", "stats", vm.name, web], ["stats", vm.name])
    assert as_json.returncode == 0, as_json.stderr
    (row,) = json.loads(as_json.stdout)["containers"]
    assert row["name"].lstrip("/") == web and row["pids"] >= 1
    assert 0 < row["memory_usage"] <= row["memory_limit"]
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:4] == ["CONTAINER", "ID", "NAME", "CPU"]
    (line,) = [line for line in lines[1:] if line.split()[1] == web]
    assert line.split()[2].endswith("%") and "/" in line


def test_inspect_top_diagnose_as_text_and_json(lab: Any, vm: Any, web: str) -> None:
    container_id = lab.exec(vm.name, ["docker", "inspect", "-f", "{{.Id}}", web]).stdout.strip()
    outs = xsc_many(lab, ["inspect", vm.name, web], ["top", vm.name, web],
                    ["diagnose", vm.name], ["--json", "inspect", vm.name, web],
                    ["--json", "top", vm.name, web], ["--json", "diagnose", vm.name])
    for out in outs:
        assert out.returncode == 0, (out.args, out.stdout, out.stderr)
    inspect, top, diagnose, inspect_json, top_json, diagnose_json = (o.stdout for o in outs)
    facts = dict(line.split(None, 1) for line in inspect.splitlines()[1:]
                 if len(line.split(None, 1)) == 2)
    assert facts["Id"].strip() == container_id and facts["Name"].strip() == web
    lines = top.splitlines()
    assert lines[0].split()[:2] == ["UID", "PID"] and lines[0].split()[-1] == "CMD"
    assert any("sleep 0.2" in line for line in lines[1:]), lines
    assert "Result: container management works for this VM." in diagnose
    document = json.loads(inspect_json)
    assert document["Id"] == container_id and document["Name"] == "/" + web
    processes = json.loads(top_json)
    assert "PID" in processes["titles"]
    assert any("sleep" in p["CMD"] for p in processes["processes"])
    report = json.loads(diagnose_json)
    assert report["ok"] is True and all(step["status"] == "ok" for step in report["steps"])


def test_non_ascii_names_in_a_c_locale(lab: Any, vm: Any, saved_keys: None,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """dom0 of XCP-ng 8.3 has no UTF-8 locale: with LANG=C, Python 3.6 decodes argv
    and encodes stdout as ASCII. A name-label given and printed still works."""
    monkeypatch.setenv("LC_ALL", "C")
    monkeypatch.setenv("LANG", "C")
    name = "caf\u00e9-\u00fcber-\u4e2d"
    with lab.xapi_session() as s:
        ref = s.xenapi.VM.get_by_uuid(vm.uuid)
        s.xenapi.VM.set_name_label(ref, name)
        try:
            out = lab.dom0_run(lab.hosts[-1].uuid, ["xscontainer", "register", name])
            assert out.returncode == 0, (out.stdout, out.stderr)
            assert out.stdout == "Registered %s (%s)\n" % (name, vm.uuid)
            answer = xsc_json(lab, "deregister", name)
            assert answer["vm"] == {"uuid": vm.uuid, "name_label": name}
            out = lab.dom0_run(lab.hosts[-1].uuid, ["xscontainer", "top", name + "x", "c"])
            assert out.returncode == 3 and name + "x" in out.stderr, out.stderr
        finally:
            s.xenapi.VM.set_name_label(ref, vm.name)


def _secrets(lab: Any) -> List[str]:
    with lab.xapi_session() as s:
        return sorted(s.xenapi.secret.get_uuid(ref) for ref in s.xenapi.secret.get_all())


def test_prepare_with_a_password_on_stdin(lab: Any) -> None:
    """prepare asks the plugin's prepare, the password in a XAPI secret the command
    makes for the call: afterwards no secret of it is left, and the password was
    never printed or logged."""
    vm = lab.vms[1]
    user = "xsccli" + uuid.uuid4().hex[:6]
    password = "pw-" + uuid.uuid4().hex
    saved = other_config(lab, vm)
    secrets = _secrets(lab)
    set_key(lab, vm, "xscontainer-sshhostkey", None)
    lab.exec(vm.name, ["sh", "-c", "useradd -m -s /bin/sh -G docker %s && echo %s:%s | chpasswd"
                       % (user, user, password)])
    host = lab.hosts[-1].uuid
    try:
        wrong = lab.dom0_run(host, ["xscontainer", "prepare", vm.name, "-u", user,
                                    "--password-stdin"], input="not-the-password\n")
        assert wrong.returncode == 7, (wrong.stdout, wrong.stderr)
        assert _secrets(lab) == secrets
        done = lab.dom0_run(host, ["xscontainer", "--json", "prepare", vm.name, "-u", user,
                                   "--password-stdin"], input=password + "\n", timeout=300)
        assert done.returncode == 0, (done.stdout, done.stderr)
        answer = json.loads(done.stdout)
        assert answer["vm"]["uuid"] == vm.uuid and user in answer["report"]
        config = other_config(lab, vm)
        assert config["xscontainer-username"] == user
        assert config["xscontainer-monitor"] == "True"
        assert _secrets(lab) == secrets
        for text in (wrong.stdout, wrong.stderr, done.stdout, done.stderr,
                     open(lab.dom0_env(host)["XSCONTAINER_LOG_FILE"]).read()):
            assert password not in text
    finally:
        now = other_config(lab, vm)
        for key in set(saved) | set(now):
            if saved.get(key) != now.get(key):
                set_key(lab, vm, key, saved.get(key))
        lab.exec(vm.name, ["userdel", "-r", user], check=False)
