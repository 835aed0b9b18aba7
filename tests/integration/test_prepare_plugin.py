"""The plugin's `prepare` through host.call_plugin, always called on a host other
than the VM's (so every call is forwarded), as XenCenter, Xen Orchestra or `xe`
would call it: a guest that already accepts the pool key, a password user with
a password secret (destroyed on every path), the expected host key, TLS with
certificate secrets, TLS with generated certificates in two steps and the CD's
deadline, two calls at once, and a rerun that changes nothing. No password,
key or secret value reaches a log or an error text.
"""

import concurrent.futures
import os
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest
import XenAPI

from xsclab import labctl, tlsadmin

from .test_tls import own_set

IMAGE = "xsc-test/busybox"
XE = str(Path(__file__).resolve().parents[1] / "lab" / "xe")
TLS_KEYS = ("xscontainer-tls-client-cert", "xscontainer-tls-client-key",
            "xscontainer-tls-ca-cert")
PENDING = "xscontainer-prepare-pending"
TEMP_VDI = "Temp Container Management Image"
WORKS = "Result: container management works for this VM."

# every secret value the tests hand to the plugin: none may reach a log
SECRET_VALUES: List[str] = []


# -- helpers -----------------------------------------------------------------------------


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail("timed out after %g s waiting for %s" % (timeout, what))
        time.sleep(0.2)


def other_host(lab: labctl.Lab, vm: labctl.VM) -> str:
    hosts = [h.uuid for h in lab.hosts if h.uuid != vm.host]
    assert hosts, "the lab needs a second host"
    return hosts[0]


def prepare(lab: labctl.Lab, vm: labctl.VM, **args: str) -> str:
    """fn=prepare from a host the VM does not run on."""
    return lab.call_plugin(other_host(lab, vm), "prepare", dict(args, vmuuid=vm.uuid))


def prepare_fails(lab: labctl.Lab, vm: labctl.VM, **args: str) -> List[str]:
    with pytest.raises(XenAPI.Failure) as exc:
        prepare(lab, vm, **args)
    details = [str(d) for d in exc.value.details]
    for value in SECRET_VALUES:
        assert value not in " ".join(details)
    return details


def other_config(lab: labctl.Lab, vm: labctl.VM) -> Dict[str, str]:
    with lab.xapi_session() as s:
        return dict(s.xenapi.VM.get_other_config(s.xenapi.VM.get_by_uuid(vm.uuid)))


def set_key(lab: labctl.Lab, vm: labctl.VM, key: str, value: Optional[str]) -> None:
    with lab.xapi_session() as s:
        ref = s.xenapi.VM.get_by_uuid(vm.uuid)
        s.xenapi.VM.remove_from_other_config(ref, key)
        if value is not None:
            s.xenapi.VM.add_to_other_config(ref, key, value)


def restore_other_config(lab: labctl.Lab, vm: labctl.VM, saved: Dict[str, str]) -> None:
    """Put the xscontainer keys back as they were (single-key edits)."""
    now = other_config(lab, vm)
    for key in set(now) | set(saved):
        if key.startswith("xscontainer-") and now.get(key) != saved.get(key):
            set_key(lab, vm, key, saved.get(key))


def all_secrets(lab: labctl.Lab) -> List[str]:
    with lab.xapi_session() as s:
        return sorted(s.xenapi.secret.get_uuid(r) for r in s.xenapi.secret.get_all())


def secret_value(lab: labctl.Lab, secret_uuid: str) -> str:
    with lab.xapi_session() as s:
        return str(s.xenapi.secret.get_value(s.xenapi.secret.get_by_uuid(secret_uuid)))


def xe(lab: labctl.Lab, *argv: str) -> str:
    """The lab's xe, as an admin types it."""
    env = dict(os.environ, XSCONTAINER_XAPI_SOCKET=lab.data["xapi"]["socket"])
    done = subprocess.run([XE, *argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def secret(lab: labctl.Lab, value: str) -> str:
    SECRET_VALUES.append(value)
    return xe(lab, "secret-create", "value=" + value)


def writes(lab: labctl.Lab, vm: labctl.VM) -> int:
    with lab.xapi_session() as s:
        stats = s.xenapi.lab.stats()
    return int(stats["vm_other_config_writes"].get(vm.uuid, 0))


def authorized_keys(lab: labctl.Lab, vm: labctl.VM, user: str) -> str:
    done = lab.exec(vm.name, ["cat", "/home/%s/.ssh/authorized_keys" % user], check=False)
    return str(done.stdout)


def host_key_line(vm: labctl.VM) -> str:
    return Path(vm.ssh_host_key).read_text().strip()


def temp_vdis(lab: labctl.Lab) -> List[str]:
    with lab.xapi_session() as s:
        return list(s.xenapi.VDI.get_by_name_label(TEMP_VDI))


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def ssh_vm(lab: labctl.Lab) -> Iterator[labctl.VM]:
    """The first guest (its xscuser accepts the pool key, as a config drive seeds
    it), with no host key pinned, no mode, not registered; restored afterwards."""
    vm = lab.vms[0]
    saved = other_config(lab, vm)
    for key in ("xscontainer-sshhostkey", "xscontainer-mode", "xscontainer-monitor"):
        set_key(lab, vm, key, None)
    try:
        yield vm
    finally:
        restore_other_config(lab, vm, saved)


@pytest.fixture
def password_user(lab: labctl.Lab) -> Iterator[Tuple[labctl.VM, str, str]]:
    """A new user of the docker group with only a password in the second guest;
    the VM's xscontainer other-config is restored afterwards."""
    vm = lab.vms[1]
    name = "xscg" + uuid.uuid4().hex[:8]
    password = "pw-" + uuid.uuid4().hex
    SECRET_VALUES.append(password)
    saved = other_config(lab, vm)
    set_key(lab, vm, "xscontainer-sshhostkey", None)
    lab.exec(vm.name, ["sh", "-c", "useradd -m -s /bin/sh -G docker %s && echo %s:%s | chpasswd"
                       % (name, name, password)])
    try:
        yield vm, name, password
    finally:
        restore_other_config(lab, vm, saved)
        lab.exec(vm.name, ["userdel", "-r", name], check=False)


@pytest.fixture
def tls_vm(lab: labctl.Lab) -> Iterator[labctl.VM]:
    """The third guest; afterwards its lab TLS files are back, no CD is in its
    drive, its xscontainer other-config is as before and the secrets made are gone."""
    vm = lab.vms[2]
    saved = other_config(lab, vm)
    secrets_before = set(all_secrets(lab))
    try:
        with tlsadmin.saved_tls(lab, vm.name):
            yield vm
    finally:
        with lab.xapi_session() as s:
            ref = s.xenapi.VM.get_by_uuid(vm.uuid)
            for vbd in s.xenapi.VM.get_VBDs(ref):
                if s.xenapi.VBD.get_type(vbd) == "CD" and not s.xenapi.VBD.get_empty(vbd):
                    s.xenapi.VBD.eject(vbd)
            for vdi in s.xenapi.VDI.get_by_name_label(TEMP_VDI):
                s.xenapi.VDI.destroy(vdi)
        restore_other_config(lab, vm, saved)
        with lab.xapi_session() as s:
            for secret_uuid in set(all_secrets(lab)) - secrets_before:
                s.xenapi.secret.destroy(s.xenapi.secret.get_by_uuid(secret_uuid))


@pytest.fixture
def container(lab: labctl.Lab) -> Iterator[Callable[[labctl.VM], str]]:
    made: List[Tuple[labctl.VM, str]] = []

    def run(vm: labctl.VM) -> str:
        name = "prep-" + uuid.uuid4().hex[:8]
        made.append((vm, name))
        return str(lab.exec(vm.name, ["docker", "run", "-d", "--init", "--name", name, IMAGE,
                                      "sleep", "1d"]).stdout.strip())

    yield run
    for vm, name in made:
        lab.exec(vm.name, ["docker", "rm", "-f", name], check=False)


@pytest.fixture
def monitor(lab: labctl.Lab) -> Iterator[Callable[[labctl.VM], None]]:
    """Start xscontainer-monitor on a VM's host; stopped afterwards."""
    procs: List[Any] = []

    def start(vm: labctl.VM) -> None:
        procs.append(lab.dom0_popen(vm.host, ["xscontainer-monitor", "--resync", "30"],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL))

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(30)


# -- SSH -----------------------------------------------------------------------------------


def test_seeded_guest_needs_no_secret_and_a_rerun_changes_nothing(
        lab: labctl.Lab, ssh_vm: labctl.VM, container: Callable[[labctl.VM], str],
        monitor: Callable[[labctl.VM], None]) -> None:
    vm = ssh_vm
    secrets_before = all_secrets(lab)
    result = prepare(lab, vm)
    assert result.startswith("True")
    assert "with the pool's SSH key" in result
    assert WORKS in result
    assert "The VM is registered for container monitoring." in result
    config = other_config(lab, vm)
    assert config["xscontainer-username"] == vm.username
    assert config["xscontainer-mode"] == "ssh"
    assert config["xscontainer-monitor"] == "True"
    assert config["xscontainer-sshhostkey"] == host_key_line(vm).split()[1]
    assert all_secrets(lab) == secrets_before

    # the monitor publishes docker_ps; a second prepare writes nothing, so the
    # published list stays (no remove/add of xscontainer-monitor)
    cid = container(vm)
    monitor(vm)
    wait_for("docker_ps with the container",
             lambda: cid[:10] in other_config(lab, vm).get("docker_ps", ""))
    time.sleep(1.0)
    published, writes_before = other_config(lab, vm), writes(lab, vm)
    again = prepare(lab, vm)
    assert WORKS in again
    assert "(it already was)" in again
    assert "Recorded" not in again and "Stored" not in again
    assert writes(lab, vm) == writes_before
    assert other_config(lab, vm) == published


def test_guest_refusing_the_pool_key_says_to_give_a_password_secret(
        lab: labctl.Lab, password_user: Tuple[labctl.VM, str, str]) -> None:
    vm, user, _password = password_user
    config, writes_before = other_config(lab, vm), writes(lab, vm)
    details = prepare_fails(lab, vm, username=user)
    assert details[0] == "XSCONTAINER_SSH_AUTH_FAILED"
    assert "passwordsecret" in details[1]
    assert details[2] == vm.uuid
    assert other_config(lab, vm) == config
    assert writes(lab, vm) == writes_before


def test_password_secret_installs_the_key_and_is_destroyed(
        lab: labctl.Lab, password_user: Tuple[labctl.VM, str, str]) -> None:
    vm, user, password = password_user
    before = all_secrets(lab)
    secret_uuid = secret(lab, password)
    assert secret_uuid in all_secrets(lab)
    result = prepare(lab, vm, username=user, passwordsecret=secret_uuid)
    assert "with the password" in result
    assert "Added the pool's SSH key to ~%s/.ssh/authorized_keys." % user in result
    assert WORKS in result
    assert password not in result
    assert all_secrets(lab) == before  # the password secret is gone
    config = other_config(lab, vm)
    assert config["xscontainer-username"] == user
    assert config["xscontainer-monitor"] == "True"
    assert config["xscontainer-sshhostkey"] == host_key_line(vm).split()[1]
    pool_public = Path(lab.pool_key["public"]).read_text().strip()
    assert authorized_keys(lab, vm, user).splitlines() == [pool_public]

    # the key now works without any password; the rerun changes nothing
    writes_before = writes(lab, vm)
    lab.exec(vm.name, ["passwd", "-d", user])
    again = prepare(lab, vm, username=user)
    assert WORKS in again
    assert writes(lab, vm) == writes_before
    assert other_config(lab, vm) == config


def test_wrong_password_fails_writes_nothing_and_destroys_the_secret(
        lab: labctl.Lab, password_user: Tuple[labctl.VM, str, str]) -> None:
    vm, user, _password = password_user
    config, writes_before, before = other_config(lab, vm), writes(lab, vm), all_secrets(lab)
    wrong = "wrong-" + uuid.uuid4().hex
    details = prepare_fails(lab, vm, username=user, passwordsecret=secret(lab, wrong))
    assert details[0] == "XSCONTAINER_SSH_AUTH_FAILED"
    assert "refused the password for user '%s'" % user in details[1]
    assert all_secrets(lab) == before
    assert other_config(lab, vm) == config
    assert writes(lab, vm) == writes_before
    assert authorized_keys(lab, vm, user) == ""

    # a secret that does not exist, and a VM that does not: clear codes, still no secret left
    missing = prepare_fails(lab, vm, username=user, passwordsecret=str(uuid.uuid4()))
    assert missing[0] == "XSCONTAINER_INVALID_ARGUMENT"
    orphan = secret(lab, "pw-" + uuid.uuid4().hex)
    with pytest.raises(XenAPI.Failure) as exc:
        lab.call_plugin(vm.host, "prepare", {"vmuuid": str(uuid.uuid4()),
                                             "passwordsecret": orphan})
    assert exc.value.details[0] == "XSCONTAINER_VM_NOT_FOUND"
    assert all_secrets(lab) == before


def test_expected_host_key_matching_and_not(
        lab: labctl.Lab, password_user: Tuple[labctl.VM, str, str]) -> None:
    vm, user, password = password_user
    config, before = other_config(lab, vm), all_secrets(lab)
    other_key = Path(lab.pool_key["public"]).read_text().strip()  # an RSA key, not sshd's
    details = prepare_fails(lab, vm, username=user, passwordsecret=secret(lab, password),
                            sshhostkey=other_key)
    assert details[0] == "XSCONTAINER_SSH_HOSTKEY_MISMATCH"
    assert "not the key given as sshhostkey" in details[1]
    assert all_secrets(lab) == before
    assert other_config(lab, vm) == config
    assert authorized_keys(lab, vm, user) == ""

    result = prepare(lab, vm, username=user, passwordsecret=secret(lab, password),
                     sshhostkey=host_key_line(vm))
    assert "is the one given" in result and WORKS in result
    assert other_config(lab, vm)["xscontainer-sshhostkey"] == host_key_line(vm).split()[1]
    assert all_secrets(lab) == before

    # the base64 part alone will do; a recorded key that is stale is replaced by the one given
    set_key(lab, vm, "xscontainer-sshhostkey", other_key.split()[1])
    again = prepare(lab, vm, username=user, sshhostkey=host_key_line(vm).split()[1])
    assert "Replaced the recorded SSH host key with the one given" in again
    assert other_config(lab, vm)["xscontainer-sshhostkey"] == host_key_line(vm).split()[1]


def test_failed_check_takes_the_key_back(lab: labctl.Lab) -> None:
    """A user outside the docker group: the password works, the check fails, the
    key this call added is removed again and nothing is stored."""
    vm = lab.vms[1]
    user = "xscn" + uuid.uuid4().hex[:8]
    password = "pw-" + uuid.uuid4().hex
    SECRET_VALUES.append(password)
    saved = other_config(lab, vm)
    lab.exec(vm.name, ["sh", "-c", "useradd -m -s /bin/sh %s && echo %s:%s | chpasswd"
                       % (user, user, password)])
    try:
        before, writes_before = all_secrets(lab), writes(lab, vm)
        details = prepare_fails(lab, vm, username=user, passwordsecret=secret(lab, password))
        assert details[0] == "XSCONTAINER_DOCKER_UNREACHABLE", details
        assert "user %s may use the Docker socket" % user in details[1]
        assert "usermod -aG docker %s" % user in details[1]
        assert authorized_keys(lab, vm, user).strip() == ""
        assert other_config(lab, vm) == saved
        assert writes(lab, vm) == writes_before
        assert all_secrets(lab) == before
    finally:
        restore_other_config(lab, vm, saved)
        lab.exec(vm.name, ["userdel", "-r", user], check=False)


def test_two_calls_at_once_never_both_write(lab: labctl.Lab, ssh_vm: labctl.VM) -> None:
    vm = ssh_vm
    start = writes(lab, vm)
    prepare(lab, vm)
    single = writes(lab, vm) - start
    assert single > 0
    for key in ("xscontainer-sshhostkey", "xscontainer-mode", "xscontainer-monitor"):
        set_key(lab, vm, key, None)

    start = writes(lab, vm)
    barrier = threading.Barrier(2)

    def call(_i: int) -> Any:
        barrier.wait()
        try:
            return prepare(lab, vm)
        except XenAPI.Failure as exc:
            return exc

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(call, range(2)))
    succeeded = [r for r in results if isinstance(r, str)]
    for r in results:
        if not isinstance(r, str):
            assert r.details[0] == "XSCONTAINER_PREPARE_IN_PROGRESS", r.details
    assert succeeded
    assert sum("Recorded the VM's SSH host key" in r for r in succeeded) == 1
    assert writes(lab, vm) - start == single  # the second found everything done
    assert other_config(lab, vm)["xscontainer-monitor"] == "True"


# -- TLS with the admin's own certificates ---------------------------------------------


def cert_secrets(lab: labctl.Lab, files: Dict[str, bytes], cert: str = "cert.pem",
                 key: str = "key.pem", ca: str = "ca.pem") -> Dict[str, str]:
    return {"clientcertsecret": secret(lab, files[cert].decode()),
            "clientkeysecret": secret(lab, files[key].decode()),
            "cacertsecret": secret(lab, files[ca].decode())}


def test_tls_with_certificate_secrets(lab: labctl.Lab, tls_vm: labctl.VM,
                                      container: Callable[[labctl.VM], str]) -> None:
    vm = tls_vm
    cid = container(vm)
    files = own_set(vm.ip)
    before_config, before_secrets = other_config(lab, vm), set(all_secrets(lab))

    # the engine still has the lab's certificates: another CA, refused; nothing stored
    given = cert_secrets(lab, files)
    details = prepare_fails(lab, vm, mode="tls", **given)
    assert details[0] == "XSCONTAINER_TLS_CERT_REJECTED", details
    assert other_config(lab, vm) == before_config
    assert set(all_secrets(lab)) == before_secrets | set(given.values())  # kept for a retry

    # a key that is not the certificate's: TLS_FAILED, checked as the CLI checks files
    mismatched = cert_secrets(lab, files, key="server-key.pem")
    details = prepare_fails(lab, vm, mode="tls", **mismatched)
    assert details[0] == "XSCONTAINER_TLS_FAILED"
    assert "does not belong to" in details[1]
    assert other_config(lab, vm) == before_config

    # the admin installs them in the engine: the same secrets now work
    tlsadmin.install_own(lab, vm.name, files["ca.pem"], files["server-cert.pem"],
                         files["server-key.pem"])
    result = prepare(lab, vm, mode="tls", **given)
    assert WORKS in result
    config = other_config(lab, vm)
    assert config["xscontainer-mode"] == "tls"
    assert config["xscontainer-monitor"] == "True"
    assert secret_value(lab, config["xscontainer-tls-client-cert"]).encode() == files["cert.pem"]
    assert not set(given.values()) & set(all_secrets(lab))  # copied, then destroyed
    assert "<Id>%s</Id>" % cid in lab.call_plugin(
        other_host(lab, vm), "get_inspect", {"vmuuid": vm.uuid, "object": cid})

    # the same certificates again: nothing changes
    writes_before = writes(lab, vm)
    again = prepare(lab, vm, mode="tls", **cert_secrets(lab, files))
    assert "The VM already uses these certificates." in again and WORKS in again
    assert writes(lab, vm) == writes_before
    assert other_config(lab, vm) == config


# -- TLS with generated certificates: two steps ---------------------------------------------


def test_generated_certificates_in_two_steps(lab: labctl.Lab, tls_vm: labctl.VM,
                                             container: Callable[[labctl.VM], str]) -> None:
    vm = tls_vm
    cid = container(vm)
    before_config = other_config(lab, vm)
    secrets_before = set(all_secrets(lab))

    first = prepare(lab, vm, mode="tls", generatecerts="true")
    assert first.startswith("True")
    assert "configure_tls.cmd" in first
    assert "PRIVATE KEY" not in first
    config = other_config(lab, vm)
    assert PENDING in config
    assert {k: config.get(k) for k in TLS_KEYS} == {k: before_config.get(k) for k in TLS_KEYS}
    assert config.get("xscontainer-mode") == before_config.get("xscontainer-mode")
    assert tlsadmin.cd_vdi(lab, vm.name) is not None
    pending_secrets = set(all_secrets(lab)) - secrets_before
    assert len(pending_secrets) == 3

    # before the admin has run the script: still pending, the call says so
    waiting = prepare(lab, vm, mode="tls")
    assert "Waiting for the VM's administrator" in waiting
    assert PENDING in other_config(lab, vm)

    # the admin runs configure_tls.cmd; the next prepare completes the preparation
    cd = tlsadmin.apply_cd(lab, vm.name, timeout=60)
    assert cd["volume_id"] == "Container TLS"
    done = prepare(lab, vm, mode="tls")
    assert "Docker in the VM answers with the new certificate." in done
    assert "Ejected and deleted the temporary CD." in done
    assert WORKS in done
    config = other_config(lab, vm)
    assert PENDING not in config
    assert config["xscontainer-mode"] == "tls"
    assert config["xscontainer-monitor"] == "True"
    assert {config[k] for k in TLS_KEYS} == pending_secrets
    assert tlsadmin.cd_vdi(lab, vm.name) is None
    assert temp_vdis(lab) == []
    assert "<Id>%s</Id>" % cid in lab.call_plugin(
        other_host(lab, vm), "get_inspect", {"vmuuid": vm.uuid, "object": cid})
    for secret_uuid in pending_secrets:
        SECRET_VALUES.append(secret_value(lab, secret_uuid))


def test_generated_certificates_completed_by_diagnose(lab: labctl.Lab,
                                                      tls_vm: labctl.VM) -> None:
    vm = tls_vm
    prepare(lab, vm, mode="tls", generatecerts="true")
    tlsadmin.apply_cd(lab, vm.name, timeout=60)
    report = lab.call_plugin(other_host(lab, vm), "diagnose", {"vmuuid": vm.uuid})
    assert "the pending TLS preparation: Done" in report
    assert "[ OK ] Docker accepts xscontainer's client certificate" in report
    assert WORKS in report
    config = other_config(lab, vm)
    assert PENDING not in config and config["xscontainer-mode"] == "tls"
    assert tlsadmin.cd_vdi(lab, vm.name) is None
    assert temp_vdis(lab) == []


def test_the_cd_never_stays_past_its_deadline(lab: labctl.Lab, tls_vm: labctl.VM,
                                              monitor: Callable[[labctl.VM], None]) -> None:
    vm = tls_vm
    before_config, before_secrets = other_config(lab, vm), set(all_secrets(lab))

    # undone by the next diagnose call after the deadline
    prepare(lab, vm, mode="tls", generatecerts="true", cdtimeout="5")
    assert tlsadmin.cd_vdi(lab, vm.name) is not None
    time.sleep(5.5)
    report = lab.call_plugin(other_host(lab, vm), "diagnose", {"vmuuid": vm.uuid})
    assert "expired" in report
    assert tlsadmin.cd_vdi(lab, vm.name) is None
    assert temp_vdis(lab) == []
    assert other_config(lab, vm) == before_config
    assert set(all_secrets(lab)) == before_secrets

    # undone by the monitor of the VM's host at the deadline, with no call at all
    monitor(vm)
    first = prepare(lab, vm, mode="tls", generatecerts="true", cdtimeout="5")
    assert "in 5 s" in first
    assert tlsadmin.cd_vdi(lab, vm.name) is not None
    wait_for("the monitor to eject the CD", lambda: tlsadmin.cd_vdi(lab, vm.name) is None,
             timeout=20)
    wait_for("the pending key to go", lambda: PENDING not in other_config(lab, vm), timeout=10)
    assert temp_vdis(lab) == []
    assert set(all_secrets(lab)) == before_secrets
    assert {k: v for k, v in other_config(lab, vm).items() if not k.startswith("docker_")} == \
        {k: v for k, v in before_config.items() if not k.startswith("docker_")}

    # a drive holding someone's media is not emptied: the call says how
    with lab.xapi_session() as s:
        sr = s.xenapi.pool.get_default_SR(s.xenapi.pool.get_all()[0])
        media = s.xenapi.VDI.create({
            "name_label": "an installer ISO", "name_description": "", "SR": sr,
            "virtual_size": str(1 << 20), "type": "user", "sharable": False,
            "read_only": False, "other_config": {}, "xenstore_data": {}, "sm_config": {},
            "tags": []})
        drive = next(v for v in s.xenapi.VM.get_VBDs(s.xenapi.VM.get_by_uuid(vm.uuid))
                 if s.xenapi.VBD.get_type(v) == "CD")
        s.xenapi.VBD.insert(drive, media)
    try:
        details = prepare_fails(lab, vm, mode="tls", generatecerts="true")
        assert details[0] == "XSCONTAINER_INVALID_ARGUMENT"
        assert "xe vm-cd-eject uuid=%s" % vm.uuid in details[1]
        assert tlsadmin.cd_vdi(lab, vm.name) == media
        assert set(all_secrets(lab)) == before_secrets
    finally:
        with lab.xapi_session() as s:
            s.xenapi.VBD.eject(drive)
            s.xenapi.VDI.destroy(media)


# -- what leaves the hosts ---------------------------------------------------------------------


def test_no_password_key_or_secret_value_in_any_log(lab: labctl.Lab) -> None:
    assert SECRET_VALUES, "run with the tests above"
    pool_private = Path(lab.pool_key["private"]).read_text()
    needles = [*list(SECRET_VALUES), pool_private]
    needles += [line for value in SECRET_VALUES if "PRIVATE KEY" in value
                for line in value.splitlines() if len(line) > 40]
    logs = [Path(h.dir) / "xscontainer.log" for h in lab.hosts]
    logs.append(Path(lab.lab_dir) / "xapi.log")
    checked = 0
    for path in logs:
        if not path.exists():
            continue
        text = path.read_text(errors="replace")
        checked += len(text)
        for needle in needles:
            assert needle.strip() not in text, "a secret value is in %s" % path
    assert checked > 0
