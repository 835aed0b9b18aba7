"""The lab itself: guests that answer like VMs, each with its own engine, SSH
and mutual TLS as a client uses them, the `lab` verbs, the simulated pool, the
dom0 environment, and a teardown that leaves nothing behind."""

import base64
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Tuple

import docker
import paramiko
import pytest
import XenAPI

from xsclab import labctl, labenv, labkeys, procs, rig

# root and a lab, for every test here (`make quick` leaves them out)
pytestmark = pytest.mark.lab

LAB = os.path.join(labenv.LAB_CODE_DIR, "lab")
IMAGE = "xsc-test/busybox:latest"
PW_USER = "xscpwtest"
# the session lab's first guest number (the fixture's XSC_TEST_FIRST)
FIRST = int(os.environ.get("XSC_TEST_FIRST", "1"))


def lab_cmd(
    *args: str, input: Optional[str] = None, env: Optional[Dict[str, str]] = None
) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(
        [LAB, *args],
        input=input,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        universal_newlines=True,
        timeout=120,
    )


def host_key(vm: labctl.VM) -> paramiko.RSAKey:
    kind, data = Path(vm.ssh_host_key).read_text().split()[:2]
    assert kind == "ssh-rsa"
    return paramiko.RSAKey(data=base64.b64decode(data))


def ssh(
    vm: labctl.VM, pinned: Optional[paramiko.PKey] = None, username: str = "", **auth: Any
) -> paramiko.SSHClient:
    """Connect as a client of the product does: own socket with TCP_NODELAY,
    the guest's host key pinned, anything else rejected."""
    sock = socket.create_connection((vm.ip, 22), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client = paramiko.SSHClient()
    client.get_host_keys().add(vm.ip, "ssh-rsa", pinned or host_key(vm))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(
            vm.ip,
            username=username or vm.username,
            sock=sock,
            timeout=10,
            banner_timeout=10,
            auth_timeout=10,
            look_for_keys=False,
            allow_agent=False,
            **auth,
        )
    except BaseException:
        client.close()
        sock.close()
        raise
    return client


def ssh_run(client: paramiko.SSHClient, command: str, data: bytes = b"") -> Tuple[int, bytes]:
    stdin, stdout, _ = client.exec_command(command, timeout=30)
    if data:
        stdin.write(data)
    stdin.channel.shutdown_write()
    out = stdout.read()
    return stdout.channel.recv_exit_status(), out


def pool_key(lab: labctl.Lab) -> paramiko.RSAKey:
    return paramiko.RSAKey.from_private_key_file(lab.pool_key["private"])


def banner(ip: str, port: int = 22) -> bytes:
    with socket.create_connection((ip, port), timeout=5) as s:
        s.settimeout(5)
        return s.recv(64)


def tls_ping(vm: labctl.VM, ca: str, cert: Optional[Tuple[str, str]]) -> bytes:
    ctx = ssl.create_default_context(cafile=ca)
    if cert:
        ctx.load_cert_chain(*cert)
    with socket.create_connection((vm.ip, 2376), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=vm.ip) as s:
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    return data
                data += chunk


def client_cert(vm: labctl.VM) -> Tuple[str, str]:
    return vm.tls["client_cert"], vm.tls["client_key"]


# --- the description and the command ---------------------------------------------------


def test_lab_json_describes_the_lab(lab: labctl.Lab) -> None:
    shown = lab_cmd("json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data == json.loads(Path(labenv.lab_json()).read_text()) == lab.data
    assert set(data) == {
        "lab_dir", "xapi", "pool", "hosts", "srs", "pool_key", "vms", "engines", "newest_docker"
    }
    assert set(data["xapi"]) == {"socket", "url", "pid", "username", "password"}
    assert data["pool"]["master"] == lab.hosts[0].uuid
    assert len(lab.vms) == int(os.environ.get("XSC_TEST_VMS", "3"))
    assert len(lab.hosts) == int(os.environ.get("XSC_TEST_HOSTS", "2"))
    for n, vm in enumerate(lab.vms):
        assert vm.host == lab.hosts[n % len(lab.hosts)].uuid  # round-robin
        assert vm.name == vm.netns == "xsc-vm%d" % (FIRST + n)
        assert vm.ip == "10.200.%d.2" % (FIRST + n)
        assert Path(vm.docker_socket).is_socket()
        for path in [vm.ssh_host_key, *vm.tls.values()]:
            assert Path(path).is_file(), path
    for h in lab.hosts:
        inventory = Path(h.dir, "xensource-inventory").read_text()
        assert "INSTALLATION_UUID='%s'" % h.uuid in inventory
    assert [s.shared for s in lab.srs].count(True) == 1
    private = Path(lab.pool_key["private"])
    assert private.read_text().startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert private.stat().st_mode & 0o077 == 0
    public = Path(lab.pool_key["public"]).read_text().split()
    assert public[0] == "ssh-rsa" and public[2] == "xscontainer"
    assert pool_key(lab).get_bits() == 4096
    status = lab_cmd("status")
    assert status.returncode == 0, status.stdout + status.stderr


def test_up_refuses_while_a_lab_is_up(lab: labctl.Lab) -> None:
    again = lab_cmd("up")
    assert again.returncode != 0
    assert again.stdout == ""
    assert "already up" in again.stderr
    assert lab_cmd("status").returncode == 0


def test_up_refuses_names_another_lab_uses(lab: labctl.Lab, tmp_path: Path) -> None:
    other = dict(os.environ, XSC_LAB_DIR=str(tmp_path / "lab"))
    try:
        clash = lab_cmd("up", "--vms", "1", "--hosts", "1", "--first", str(FIRST), env=other)
    finally:
        lab_cmd("down", env=other)  # should it have come up after all, leave nothing behind
    assert clash.returncode != 0
    assert "network namespace %s exists" % lab.vms[0].name in clash.stderr
    assert lab_cmd("status").returncode == 0  # the running lab was not touched


def test_up_reclaims_what_a_lab_killed_without_down_left(lab: labctl.Lab) -> None:
    """A lab whose processes were all killed (the session that ran it ended)
    leaves its namespaces and veths: the next `up` of those guest numbers, from
    any folder, removes them and comes up; a late `down` of the dead lab then
    leaves the new one alone. A namespace that still has a process is never
    taken (test_up_refuses_names_another_lab_uses)."""
    first = labctl.MAX_GUEST - 4
    assert all(int(vm.name[len("xsc-vm") :]) < first for vm in lab.vms)
    dead = dict(os.environ, XSC_LAB_DIR="/tmp/xsc-lab-dead-%d" % os.getpid())
    new = dict(os.environ, XSC_LAB_DIR="/tmp/xsc-lab-new-%d" % os.getpid())
    names = ["xsc-vm%d" % i for i in (first, first + 1)]
    try:
        up = lab_cmd("up", "--vms", "2", "--hosts", "1", "--first", str(first), env=dead)
        assert up.returncode == 0, up.stderr
        inodes = {procs.ns_inode("/run/netns/" + n) for n in names}
        pids = procs.in_namespaces("net", inodes)
        xapi = procs.load(os.path.join(dead["XSC_LAB_DIR"], "xapi.proc"))
        assert pids and xapi is not None
        procs.kill_all([*pids, xapi.pid])
        assert all(os.path.exists("/run/netns/" + n) for n in names)
        assert os.path.exists("/sys/class/net/xsc-h%d" % first)

        up = lab_cmd("up", "--vms", "2", "--hosts", "1", "--first", str(first), env=new)
        assert up.returncode == 0, up.stderr
        assert "removing network namespaces %s, %s" % tuple(names) in up.stderr
        reborn = json.loads(up.stdout)["vms"]
        assert [v["name"] for v in reborn] == names

        late = lab_cmd("down", env=dead)
        assert late.returncode == 0, late.stderr
        assert "%s belongs to the lab in %s now" % (names[0], new["XSC_LAB_DIR"]) in late.stderr
        assert lab_cmd("status", env=new).returncode == 0
        for v in reborn:
            assert banner(v["ip"]).startswith(b"SSH-2.0-OpenSSH")
    finally:
        for env in (new, dead):
            lab_cmd("down", env=env)
            shutil.rmtree(env["XSC_LAB_DIR"], ignore_errors=True)
    assert not any(os.path.exists("/run/netns/" + n) for n in names)
    assert lab_cmd("status").returncode == 0  # the session's lab is untouched


def test_up_needs_root(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    nobody = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", LAB, "up"],
        env=dict(os.environ, XSC_LAB_DIR=str(tmp_path / "lab")),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        universal_newlines=True,
        timeout=60,
    )
    assert nobody.returncode == 1
    assert "needs root" in nobody.stderr


# --- guests -----------------------------------------------------------------------------


def test_guests_answer_on_their_ips(lab: labctl.Lab) -> None:
    for vm in lab.vms:
        assert banner(vm.ip).startswith(b"SSH-2.0-OpenSSH")
        socket.create_connection((vm.ip, 2376), timeout=5).close()
        assert lab.exec(vm.name, ["hostname"]).stdout.strip() == vm.name
        addresses = lab.exec(vm.name, ["ip", "-4", "-o", "addr", "show"]).stdout
        assert " %s/24 " % vm.ip in addresses


def test_each_guest_has_its_own_engine(lab: labctl.Lab) -> None:
    ids = set()
    for vm in lab.vms:
        client = lab.docker(vm.name)
        info = client.info()
        assert info["Name"] == vm.name
        ids.add(info["ID"])
        assert client.images.get(IMAGE).attrs["Config"]["Cmd"] == ["/bin/sh"]
        client.close()
        # the engine behind the guest's own /var/run/docker.sock
        pid = lab.exec(vm.name, ["cat", "/var/run/docker.pid"]).stdout.strip()
        assert lab.service(vm.name, "dockerd", "status") == "running (pid %s)" % pid
    assert len(ids) == len(lab.vms)


def test_each_guest_has_its_own_home(lab: labctl.Lab) -> None:
    first, second = lab.vms[0], lab.vms[1]
    pub = Path(lab.pool_key["public"]).read_text()
    for vm in (first, second):
        listing = lab.exec(vm.name, ["ls", "-ld", ".ssh", ".ssh/authorized_keys"], user=vm.username)
        assert listing.stdout.splitlines()[0].startswith("drwx------")
        assert listing.stdout.splitlines()[1].startswith("-rw-------")
        keys_text = lab.exec(vm.name, ["cat", ".ssh/authorized_keys"], user=vm.username).stdout
        assert keys_text == pub
    lab.exec(first.name, ["touch", "only-here"], user=first.username)
    try:
        assert (
            lab.exec(
                second.name, ["test", "-e", "only-here"], user=second.username, check=False
            ).returncode
            == 1
        )
    finally:
        lab.exec(first.name, ["rm", "only-here"], user=first.username)


def test_docker_run_with_init_via_lab_exec(lab: labctl.Lab) -> None:
    vm = lab.vms[0]
    name = "web-%s" % uuid.uuid4().hex[:8]
    run = lab_cmd(
        "exec", vm.name, "--", "docker", "run", "-d", "--init", "--name", name, IMAGE, "sleep", "1d"
    )
    assert run.returncode == 0, run.stderr
    client = lab.docker(vm.name)
    try:
        container = client.containers.get(name)
        assert container.status == "running"
        t0 = time.monotonic()
        container.stop(timeout=10)
        assert time.monotonic() - t0 < 2  # --init: SIGTERM ends it at once
    finally:
        client.containers.get(name).remove(force=True)
        client.close()


def test_lab_exec_passes_stdin_and_exit_code(lab: labctl.Lab) -> None:
    vm = lab.vms[-1]
    r = lab_cmd(
        "exec",
        "--user",
        vm.username,
        vm.uuid,
        "--",
        "sh",
        "-c",
        "cat; id -un; docker ps -q | wc -l; exit 7",
        input="hello\n",
    )
    assert r.returncode == 7, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:2] == ["hello", vm.username]
    assert lines[2].isdigit()  # the user reaches the engine: group docker


# --- SSH and TLS as the product uses them ---------------------------------------------------


def test_docker_socket_over_ssh_with_pinned_host_key(lab: labctl.Lab) -> None:
    for vm in lab.vms:
        client = ssh(vm, pkey=pool_key(lab))
        try:
            sock = client.get_transport().sock
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            rc, out = ssh_run(
                client,
                "ncat -U /var/run/docker.sock",
                b"GET /info HTTP/1.0\r\nHost: docker\r\n\r\n",
            )
        finally:
            client.close()
        assert rc == 0
        head, body = out.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.0 200")
        assert json.loads(body)["Name"] == vm.name


def test_ssh_refuses_a_wrong_or_unknown_host_key(lab: labctl.Lab) -> None:
    first, second = lab.vms[0], lab.vms[1]
    with pytest.raises(paramiko.BadHostKeyException):
        ssh(first, pinned=host_key(second), pkey=pool_key(lab))
    sock = socket.create_connection((first.ip, 22), timeout=10)
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
            client.connect(
                first.ip,
                username=first.username,
                sock=sock,
                pkey=pool_key(lab),
                timeout=10,
                look_for_keys=False,
                allow_agent=False,
            )
    finally:
        client.close()
        sock.close()


@pytest.fixture
def pw_user() -> Iterator[Tuple[str, str]]:
    """A machine user with a password (guests share the machine's accounts)."""
    password = uuid.uuid4().hex
    subprocess.run(["userdel", PW_USER], stderr=subprocess.DEVNULL, timeout=30)
    rig.run(["useradd", "--no-create-home", "--shell", "/bin/sh", PW_USER])
    rig.run(["chpasswd"], input="%s:%s\n" % (PW_USER, password))
    try:
        yield PW_USER, password
    finally:
        # sshd's session process for the user may outlive the client's close by
        # a moment; userdel refuses a user that has a process (rc 8)
        deadline = time.monotonic() + 10
        while True:
            gone = subprocess.run(
                ["userdel", PW_USER], stderr=subprocess.PIPE, universal_newlines=True, timeout=30
            )
            if gone.returncode != 8 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert gone.returncode == 0, gone.stderr


def test_password_login(lab: labctl.Lab, pw_user: Tuple[str, str]) -> None:
    user, password = pw_user
    vm = lab.vms[0]
    client = ssh(vm, username=user, password=password)
    try:
        assert ssh_run(client, "id -un") == (0, user.encode() + b"\n")
    finally:
        client.close()
    with pytest.raises(paramiko.AuthenticationException):
        ssh(vm, username=user, password="wrong")
    with pytest.raises(paramiko.AuthenticationException):  # the lab user has no password
        ssh(vm, password=password)


def test_tls_2376_requires_a_client_certificate(
    lab: labctl.Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    vm = lab.vms[0]
    assert tls_ping(vm, vm.tls["ca"], client_cert(vm)).endswith(b"\r\n\r\nOK")
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        tls_ping(vm, vm.tls["ca"], None)
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):  # they override the SDK's CA
        monkeypatch.delenv(name, raising=False)
    tls = docker.tls.TLSConfig(client_cert=client_cert(vm), ca_cert=vm.tls["ca"], verify=True)
    client = docker.DockerClient(base_url="https://%s:2376" % vm.ip, tls=tls, timeout=30)
    try:
        assert client.info()["Name"] == vm.name
    finally:
        client.close()


# --- lab verbs -----------------------------------------------------------------------------


def test_service_stops_and_starts_sshd(lab: labctl.Lab) -> None:
    vm = lab.vms[-1]
    stopped = lab_cmd("service", vm.name, "sshd", "stop")
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    with pytest.raises(ConnectionRefusedError):
        banner(vm.ip)
    assert lab_cmd("service", vm.name, "sshd", "status").returncode == 3
    started = lab_cmd("service", vm.name, "sshd", "start")
    assert started.returncode == 0 and "running (pid" in started.stdout
    assert banner(vm.ip).startswith(b"SSH-2.0-")


def test_service_restarts_dockerd_keeping_the_engine(lab: labctl.Lab) -> None:
    vm = lab.vms[-1]
    before = lab.service(vm.name, "dockerd", "status")
    engine_id = lab.docker(vm.name).info()["ID"]
    after = lab.service(vm.name, "dockerd", "restart")
    assert after.startswith("running") and after != before
    client = lab.docker(vm.name)
    assert client.info()["ID"] == engine_id  # /etc/docker/key.json is the guest's own
    assert client.images.get(IMAGE)
    client.close()


def test_dockerd_uses_the_tls_files_in_the_vm_dir(lab: labctl.Lab, tmp_path: Path) -> None:
    """An administrator installs a new CA and server certificate in the guest
    and restarts the engine: clients need the new CA from then on."""
    vm = lab.vms[-1]
    tls_dir = Path(vm.tls["ca"]).parent
    saved = tmp_path / "saved"
    shutil.copytree(tls_dir, saved)
    new = tmp_path / "new"
    labkeys.tls_ca(str(new))
    cert, key = labkeys.server_cert(str(new), vm.ip)
    try:
        for src, name in (
            (new / "ca.pem", "ca.pem"),
            (cert, "server-cert.pem"),
            (key, "server-key.pem"),
        ):
            shutil.copyfile(src, tls_dir / name)
        lab.service(vm.name, "dockerd", "restart")
        new_client = (str(new / "client-cert.pem"), str(new / "client-key.pem"))
        assert tls_ping(vm, str(new / "ca.pem"), new_client).endswith(b"OK")
        with pytest.raises(ssl.SSLCertVerificationError):
            tls_ping(
                vm,
                str(saved / "ca.pem"),
                (str(saved / "client-cert.pem"), str(saved / "client-key.pem")),
            )
    finally:
        for path in saved.iterdir():
            shutil.copyfile(path, tls_dir / path.name)
        lab.service(vm.name, "dockerd", "restart")
    assert tls_ping(vm, vm.tls["ca"], client_cert(vm)).endswith(b"OK")


def test_rekey_gives_sshd_a_new_host_key(lab: labctl.Lab) -> None:
    vm = lab.vms[0]
    old = host_key(vm)
    r = lab_cmd("rekey", vm.name)
    assert r.returncode == 0, r.stderr
    new = host_key(vm)
    assert new != old
    with pytest.raises(paramiko.BadHostKeyException):
        ssh(vm, pinned=old, pkey=pool_key(lab))
    ssh(vm, pinned=new, pkey=pool_key(lab)).close()


# --- the simulated pool and dom0 -------------------------------------------------------------


def test_simulator_lists_the_vms_with_their_ips(lab: labctl.Lab) -> None:
    with lab.xapi_session() as s:
        records = s.xenapi.VM.get_all_records()
        seen = {}
        for r in records.values():
            if r["is_a_template"] or r["is_control_domain"]:
                continue
            networks = s.xenapi.VM_guest_metrics.get_networks(r["guest_metrics"])
            bridges = {
                s.xenapi.VIF.get_device(vif): s.xenapi.network.get_bridge(
                    s.xenapi.VIF.get_network(vif)
                )
                for vif in r["VIFs"]
            }
            seen[r["uuid"]] = (
                r["name_label"],
                r["power_state"],
                s.xenapi.host.get_uuid(r["resident_on"]),
                networks["0/ip"],
                r["other_config"].get("xscontainer-username"),
                bridges,
            )
        pool = s.xenapi.pool.get_all()[0]
        other = s.xenapi.pool.get_other_config(pool)
        secrets = [
            s.xenapi.secret.get_value(s.xenapi.secret.get_by_uuid(other[k]))
            for k in ("xscontainer-private-secret-uuid", "xscontainer-public-secret-uuid")
        ]
    want = {}
    for n, vm in enumerate(lab.vms):
        bridges = {"0": "xenbr0"}
        if n == len(lab.vms) - 1:
            bridges["1"] = "xenapi"  # the host-internal management network
        want[vm.uuid] = (vm.name, "Running", vm.host, vm.ip, vm.username, bridges)
    assert seen == want
    assert secrets[0] == Path(lab.pool_key["private"]).read_text()
    assert secrets[1] == Path(lab.pool_key["public"]).read_text().strip()


def test_xapi_restart_keeps_state_and_url(lab: labctl.Lab) -> None:
    key, value = "xsc-lab-test", uuid.uuid4().hex
    with lab.xapi_session() as s:
        s.xenapi.pool.add_to_other_config(s.xenapi.pool.get_all()[0], key, value)
    pid, url = lab.data["xapi"]["pid"], lab.data["xapi"]["url"]
    restarted = lab_cmd("xapi", "restart")
    assert restarted.returncode == 0, restarted.stderr
    again = labctl.Lab.load()
    assert again.data["xapi"]["url"] == url
    assert again.data["xapi"]["pid"] != pid
    with again.xapi_session() as s:
        pool = s.xenapi.pool.get_all()[0]
        assert s.xenapi.pool.get_other_config(pool)[key] == value
        s.xenapi.pool.remove_from_other_config(pool, key)
    lab.data["xapi"]["pid"] = again.data["xapi"]["pid"]


def test_call_plugin_reports_failures_as_xenapi_failures(lab: labctl.Lab) -> None:
    with pytest.raises(XenAPI.Failure):
        lab.call_plugin(lab.master, "no-such-function", {}, plugin="no-such-plugin")


def test_dom0_is_the_hosts_environment(lab: labctl.Lab) -> None:
    for host, args in ((lab.hosts[0], []), (lab.hosts[1], ["--host", lab.hosts[1].name])):
        r = lab_cmd("dom0", *args, "--", "env")
        assert r.returncode == 0, r.stderr
        env = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
        assert env["XSCONTAINER_XAPI_SOCKET"] == lab.data["xapi"]["socket"]
        assert env["XSC_LAB_HOST"] == host.uuid
        inventory = Path(env["XSCONTAINER_INVENTORY"]).read_text()
        assert "INSTALLATION_UUID='%s'" % host.uuid in inventory
        assert env["PATH"].split(":")[0] == labenv.tree().bin_dir
    ran = lab.dom0_run(lab.hosts[1].uuid, ["sh", "-c", "echo $XSC_LAB_HOST"])
    assert ran.stdout.strip() == lab.hosts[1].uuid


# --- teardown --------------------------------------------------------------------------------


def test_down_leaves_nothing(lab: labctl.Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second lab in its own folder, with guest numbers the session's lab does
    not use (names and addresses must never collide), brought up, loaded
    with what makes teardown hard, half-crashed, then taken down: nothing of it
    may be left, and the session's lab must be untouched."""
    lab_dir = "/tmp/xsc-lab-down-%d" % os.getpid()
    session_lab_dir = labenv.lab_dir()
    env = dict(os.environ, XSC_LAB_DIR=lab_dir)
    first = labctl.MAX_GUEST - 1
    assert all(int(vm.name[len("xsc-vm") :]) < first for vm in lab.vms)
    try:
        up = lab_cmd("up", "--vms", "2", "--hosts", "1", "--first", str(first), env=env)
        assert up.returncode == 0, up.stderr
        other = json.loads(up.stdout)
        a, b = (v["name"] for v in other["vms"])
        assert (a, b) == ("xsc-vm%d" % first, "xsc-vm%d" % (first + 1))
        # a container that ignores SIGTERM, one with --init, a background process
        # left by `lab exec`, an open SSH session
        for vm, init in ((a, []), (b, ["--init"])):
            r = lab_cmd(
                "exec", vm, "--", "docker", "run", "-d", *init, IMAGE, "sleep", "1d", env=env
            )
            assert r.returncode == 0, r.stderr
        assert (
            lab_cmd("exec", a, "--", "sh", "-c", "sleep 1d >/dev/null 2>&1 &", env=env).returncode
            == 0
        )
        monkeypatch.setenv("XSC_LAB_DIR", lab_dir)
        second = labctl.Lab.load()
        session = ssh(second.vm(a), pkey=pool_key(second))
        session.exec_command("sleep 1d", timeout=10)
        # half-crashed: b's engine killed (its containerd-shim and container live
        # on), and no lab.json, as if `up` had died before writing it
        dockerd_b = procs.load(os.path.join(lab_dir, "vms", b, "dockerd.pid"))
        assert dockerd_b is not None
        os.kill(dockerd_b.pid, signal.SIGKILL)
        os.unlink(labenv.lab_json())
        footprint = labctl.footprint()
        names = {_comm(p) for p in footprint.procs}
        assert {"sleep", "dockerd", "sshd", "containerd-shim"} <= names
        t0 = time.monotonic()
        down = lab_cmd("down", env=env)
        took = time.monotonic() - t0
        session.close()
        assert down.returncode == 0, down.stderr
        assert footprint.left() == []
        assert took < 15
        assert lab_cmd("down", env=env).returncode == 0  # idempotent
        assert lab_cmd("status", env=env).returncode == 1
    finally:
        lab_cmd("down", env=env)
        shutil.rmtree(lab_dir, ignore_errors=True)
    monkeypatch.setenv("XSC_LAB_DIR", session_lab_dir)
    assert lab_cmd("status").returncode == 0  # the session's lab is untouched
    for vm in lab.vms:
        assert banner(vm.ip).startswith(b"SSH-")


def _comm(p: procs.Proc) -> str:
    try:
        return Path("/proc/%d/comm" % p.pid).read_text().strip()
    except OSError:
        return "?"


# -- engines (xsclab.engines) ------------------------------------------------------------


def test_default_guests_run_docker20_and_see_its_own_cli(lab: labctl.Lab) -> None:
    """The machine's unpackaged /usr/local/bin/docker (another version) never
    shows in a guest: over SSH, as the product's bridge runs, `docker` is the
    engine's own 20.10 CLI."""
    vm = lab.vms[0]
    assert vm.engine == "docker20" and vm.engine_socket == "/var/run/docker.sock"
    assert lab.data["engines"] == {"docker20": {}}
    client = ssh(vm, pkey=pool_key(lab))
    try:
        rc, out = ssh_run(
            client, "command -v docker; docker version --format '{{.Client.Version}}'"
        )
    finally:
        client.close()
    assert rc == 0, out
    path, version = out.decode().split()
    assert path == "/usr/bin/docker"
    assert version.startswith("20.10.")
    assert not os.path.exists("/proc/%d/root/usr/local/bin/docker" % _holder_pid(lab, vm))


def _holder_pid(lab: labctl.Lab, vm: labctl.VM) -> int:
    proc = procs.running_from(os.path.join(lab.lab_dir, "vms", vm.name, "holder.pid"))
    assert proc is not None
    return proc.pid


def test_engine_names_are_checked_before_anything_starts(tmp_path: Path) -> None:
    env = dict(os.environ, XSC_LAB_DIR=str(tmp_path / "lab"))
    bad = lab_cmd("up", "--vms", "2", "--engines", "docker28,lxc", env=env)
    assert bad.returncode != 0
    assert "unknown engine 'lxc' (one of docker20, docker26, docker28, podman4" in bad.stderr
    many = lab_cmd("up", "--vms", "1", "--engines", "docker20,docker28", env=env)
    assert many.returncode != 0 and "2 engines named for 1 guests" in many.stderr
    assert not (tmp_path / "lab" / "plan.json").exists()


def test_a_package_debian_does_not_have_is_named() -> None:
    from xsclab import engines  # noqa: PLC0415

    engines.ensure_lists()
    with pytest.raises(engines.EngineError, match=r"xsc-no-such-package \(sid\)"):
        engines.newest_versions([("sid", "docker.io"), ("sid", "xsc-no-such-package")])


def test_up_with_one_engine_per_guest(lab: labctl.Lab) -> None:
    """A second lab beside the session's, a guest on Docker 28 and one on
    rootless Podman 5: each serves its own engine where lab.json says, the
    guest's `docker` is the engine's own CLI or absent, and `down` leaves
    nothing."""
    first = labctl.MAX_GUEST - 8  # below the reclaim test's numbers
    env = dict(os.environ, XSC_LAB_DIR="/tmp/xsc-lab-engines-%d" % os.getpid())
    try:
        up = lab_cmd("up", "--vms", "2", "--hosts", "1", "--first", str(first),
                     "--engines", "docker28,podman5-rootless", env=env)  # fmt: skip
        assert up.returncode == 0, up.stderr
        data = json.loads(up.stdout)
        d28, rootless = data["vms"]
        assert (d28["engine"], rootless["engine"]) == ("docker28", "podman5-rootless")
        assert d28["engine_socket"] == "/var/run/docker.sock"
        assert rootless["engine_socket"].startswith("/run/user/")
        assert data["engines"]["docker28"]["docker.io/sid"].startswith("28.")
        assert data["engines"]["podman5-rootless"]["podman/trixie"].startswith("5.")
        assert data["newest_docker"]["suite"] == "sid"
        for vm, product in ((d28, "Engine"), (rootless, "Podman Engine")):
            engine = lab_cmd("exec", "--user", "xscuser", vm["name"], "--", "sh", "-c",
                             "command -v docker || echo none; ls /var/run/docker.sock || true",
                             env=env)  # fmt: skip
            if vm is d28:
                assert engine.stdout.startswith("/usr/bin/docker\n/var/run/docker.sock")
            else:
                assert engine.stdout.startswith("none\n")
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(10)
                s.connect(vm["docker_socket"])
                s.sendall(b"GET /version HTTP/1.0\r\nHost: docker\r\n\r\n")
                reply = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    reply += chunk
            body = json.loads(reply.split(b"\r\n\r\n", 1)[1])
            assert product in [c["Name"] for c in body["Components"]], body
    finally:
        down = lab_cmd("down", env=env)
        shutil.rmtree(env["XSC_LAB_DIR"], ignore_errors=True)
    assert down.returncode == 0, down.stderr
    assert not any(os.path.exists("/run/netns/xsc-vm%d" % i) for i in (first, first + 1))
