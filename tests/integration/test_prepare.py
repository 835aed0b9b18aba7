"""xscontainer-prepare-vm --mode ssh, run as a dom0 process of a lab host.

A fresh guest user that has only a password becomes container-managed; running
the tool again changes nothing; a wrong password or a changed host key stops it
with one line on stderr and nothing written.
"""

import base64
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest
import XenAPI

from xsclab import labctl

IMAGE = "xsc-test/busybox"
PROG = "xscontainer-prepare-vm"


def other_config(lab: labctl.Lab, vm: labctl.VM) -> Dict[str, str]:
    with lab.xapi_session() as s:
        return dict(s.xenapi.VM.get_other_config(s.xenapi.VM.get_by_uuid(vm.uuid)))


def restore_other_config(lab: labctl.Lab, vm: labctl.VM, saved: Dict[str, str]) -> None:
    """Put the xscontainer keys back as they were (single-key edits)."""
    with lab.xapi_session() as s:
        ref = s.xenapi.VM.get_by_uuid(vm.uuid)
        now = s.xenapi.VM.get_other_config(ref)
        for key in set(now) | set(saved):
            if not key.startswith("xscontainer-") or now.get(key) == saved.get(key):
                continue
            s.xenapi.VM.remove_from_other_config(ref, key)
            if key in saved:
                s.xenapi.VM.add_to_other_config(ref, key, saved[key])


def secrets(lab: labctl.Lab) -> List[str]:
    with lab.xapi_session() as s:
        return sorted(s.xenapi.secret.get_all())


def writes(lab: labctl.Lab, vm: labctl.VM) -> int:
    with lab.xapi_session() as s:
        stats = s.xenapi.lab.stats()
    return int(stats["vm_other_config_writes"].get(vm.uuid, 0))


def prepare(lab: labctl.Lab, vm: labctl.VM, *args: str, password: str = "") -> Any:
    return lab.dom0_run(vm.host, [PROG, "-v", vm.uuid, *args], input=password + "\n",
                        timeout=120)


def one_error_line(done: Any) -> str:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(PROG + ": error: ")
    return str(lines[0])


@pytest.fixture
def guest_user(lab: labctl.Lab) -> Iterator[Tuple[labctl.VM, str, str]]:
    """A new user with only a password (no key) in the second guest; the VM's
    xscontainer other-config is restored afterwards."""
    vm = lab.vms[1]
    name = "xscp" + uuid.uuid4().hex[:8]
    password = "pw-" + uuid.uuid4().hex
    saved = other_config(lab, vm)
    lab.exec(vm.name, ["sh", "-c", "useradd -m -s /bin/sh -G docker %s && echo %s:%s | chpasswd"
                       % (name, name, password)])
    try:
        yield vm, name, password
    finally:
        restore_other_config(lab, vm, saved)
        lab.exec(vm.name, ["userdel", "-r", name], check=False)


def authorized_keys(lab: labctl.Lab, vm: labctl.VM, user: str) -> str:
    done = lab.exec(vm.name, ["cat", "/home/%s/.ssh/authorized_keys" % user], check=False)
    return str(done.stdout)


def test_password_user_becomes_managed_and_rerun_changes_nothing(
        lab: labctl.Lab, guest_user: Tuple[labctl.VM, str, str]) -> None:
    vm, user, password = guest_user
    before = secrets(lab)
    done = prepare(lab, vm, "-u", user, "--password-stdin", "--yes", password=password)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""
    assert "Result: container management works for this VM." in done.stdout
    assert password not in done.stdout

    config = other_config(lab, vm)
    assert config["xscontainer-username"] == user
    assert config["xscontainer-mode"] == "ssh"
    assert config["xscontainer-monitor"] == "True"
    assert config["xscontainer-sshhostkey"] == Path(vm.ssh_host_key).read_text().split()[1]
    pool_public = Path(lab.pool_key["public"]).read_text().strip()
    assert authorized_keys(lab, vm, user).splitlines() == [pool_public]
    modes = lab.exec(vm.name, ["stat", "-c", "%a", "/home/%s/.ssh" % user,
                               "/home/%s/.ssh/authorized_keys" % user]).stdout.split()
    assert modes == ["700", "600"]
    assert secrets(lab) == before

    # the plugin now reaches Docker over SSH as that user
    name = "prep-" + uuid.uuid4().hex[:8]
    cid = lab.exec(vm.name, ["docker", "run", "-d", "--init", "--name", name, IMAGE,
                             "sleep", "1d"]).stdout.strip()
    try:
        inspect = lab.call_plugin(vm.host, "get_inspect", {"vmuuid": vm.uuid, "object": cid})
        assert inspect.startswith("True<?xml")
        assert "<Id>%s</Id>" % cid in inspect

        writes_before = writes(lab, vm)
        again = prepare(lab, vm, "-u", user, "--password-stdin", "--yes", password=password)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "already in ~%s/.ssh/authorized_keys" % user in again.stdout
        assert other_config(lab, vm) == config
        assert writes(lab, vm) == writes_before  # not even a rewrite of the same values
        assert authorized_keys(lab, vm, user).splitlines() == [pool_public]
    finally:
        lab.exec(vm.name, ["docker", "rm", "-f", name], check=False)


def test_other_keys_are_kept(lab: labctl.Lab, guest_user: Tuple[labctl.VM, str, str]) -> None:
    vm, user, password = guest_user
    mine = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOwn0Wz3c3x7bPq3Gq8fKq1rG2q8t8m3S0Lr0xLr0xLr me@x"
    lab.exec(vm.name, ["sh", "-c", "umask 077; mkdir .ssh && printf %%s '%s' > "
                       ".ssh/authorized_keys" % mine], user=user)  # no trailing newline
    done = prepare(lab, vm, "-u", user, "--password-stdin", "--yes", password=password)
    assert done.returncode == 0, done.stdout + done.stderr
    pool_public = Path(lab.pool_key["public"]).read_text().strip()
    assert authorized_keys(lab, vm, user).splitlines() == [mine, pool_public]


def test_wrong_password_fails_cleanly_writing_nothing(
        lab: labctl.Lab, guest_user: Tuple[labctl.VM, str, str]) -> None:
    vm, user, _password = guest_user
    config, before, writes_before = other_config(lab, vm), secrets(lab), writes(lab, vm)
    done = prepare(lab, vm, "-u", user, "--password-stdin", "--yes", password="not-the-password")
    assert done.returncode == 1
    line = one_error_line(done)
    assert "refused the password for user '%s'" % user in line
    assert "not-the-password" not in done.stdout + done.stderr
    assert other_config(lab, vm) == config
    assert writes(lab, vm) == writes_before
    assert secrets(lab) == before
    assert authorized_keys(lab, vm, user) == ""
    assert lab.exec(vm.name, ["test", "-e", "/home/%s/.ssh" % user], check=False).returncode == 1


def test_changed_host_key_stops_with_the_reset_command(
        lab: labctl.Lab, guest_user: Tuple[labctl.VM, str, str]) -> None:
    vm, user, password = guest_user
    other_key = Path(lab.pool_key["public"]).read_text().split()[1]  # an RSA key, not sshd's
    with lab.xapi_session() as s:
        ref = s.xenapi.VM.get_by_uuid(vm.uuid)
        s.xenapi.VM.remove_from_other_config(ref, "xscontainer-sshhostkey")
        s.xenapi.VM.add_to_other_config(ref, "xscontainer-sshhostkey", other_key)
    done = prepare(lab, vm, "-u", user, "--password-stdin", "--yes", password=password)
    assert done.returncode == 1
    line = one_error_line(done)
    assert ("xe vm-param-remove uuid=%s param-name=other-config "
            "param-key=xscontainer-sshhostkey" % vm.uuid) in line
    assert authorized_keys(lab, vm, user) == ""
    assert other_config(lab, vm)["xscontainer-sshhostkey"] == other_key


def test_user_outside_the_docker_group_is_told_what_is_missing(lab: labctl.Lab) -> None:
    vm = lab.vms[1]
    user = "xscq" + uuid.uuid4().hex[:8]
    password = "pw-" + uuid.uuid4().hex
    saved = other_config(lab, vm)
    lab.exec(vm.name, ["sh", "-c", "useradd -m -s /bin/sh %s && echo %s:%s | chpasswd"
                       % (user, user, password)])
    try:
        done = prepare(lab, vm, "-u", user, "--password-stdin", "--yes", password=password)
        assert done.returncode == 1
        assert "[FAIL] user %s may use the Docker socket" % user in done.stdout
        line = one_error_line(done)
        assert "usermod -aG docker %s" % user in line
        config = other_config(lab, vm)
        assert config.get("xscontainer-username") == saved.get("xscontainer-username")
    finally:
        restore_other_config(lab, vm, saved)
        lab.exec(vm.name, ["userdel", "-r", user], check=False)


def test_usage_errors_are_one_line(lab: labctl.Lab) -> None:
    vm = lab.vms[1]
    done = lab.dom0_run(vm.host, [PROG, "-v", vm.uuid])
    assert done.returncode == 2
    assert "--mode ssh needs --username USER" in one_error_line(done)
    missing = lab.dom0_run(vm.host, [PROG, "-v", str(uuid.uuid4()), "-u", "x", "--yes",
                                     "--password-stdin"], input="pw\n")
    assert missing.returncode == 1
    assert "There is no VM with uuid" in one_error_line(missing)
    helped = lab.dom0_run(vm.host, [PROG, "--help"])
    assert helped.returncode == 0
    for text in ("--mode ssh", "--mode tls", "--generate-certs", "--password-stdin", "--yes"):
        assert text in helped.stdout


def test_key_login_works_as_the_new_user(lab: labctl.Lab,
                                         guest_user: Tuple[labctl.VM, str, str]) -> None:
    """After preparation the pool key (not the password) logs in: the plugin's path."""
    vm, user, password = guest_user
    done = prepare(lab, vm, "-u", user, "--password-stdin", "--yes", password=password)
    assert done.returncode == 0, done.stderr
    lab.exec(vm.name, ["passwd", "-d", user])  # no password any more: keys only
    diagnosis = lab.call_plugin(vm.host, "diagnose", {"vmuuid": vm.uuid})
    assert "the pool's SSH key is accepted for user %s" % user in diagnosis
    assert "Result: container management works for this VM." in diagnosis
    with pytest.raises(XenAPI.Failure):
        lab.call_plugin(vm.host, "get_inspect", {"vmuuid": vm.uuid, "object": "no-such-c"})
    assert base64.b64decode(other_config(lab, vm)["xscontainer-sshhostkey"])


def test_password_secret_and_expected_host_key_for_scripts(
        lab: labctl.Lab, guest_user: Tuple[labctl.VM, str, str]) -> None:
    """--password-secret takes the password from a XAPI secret and destroys it,
    also when the VM presents another host key than --ssh-host-key."""
    vm, user, password = guest_user
    before = secrets(lab)
    with lab.xapi_session() as s:
        s.xenapi.VM.remove_from_other_config(s.xenapi.VM.get_by_uuid(vm.uuid),
                                             "xscontainer-sshhostkey")
    config = other_config(lab, vm)

    def password_secret() -> str:
        with lab.xapi_session() as s:
            return str(s.xenapi.secret.get_uuid(s.xenapi.secret.create({"value": password})))

    other_key = Path(lab.pool_key["public"]).read_text().strip()
    refused = prepare(lab, vm, "-u", user, "--yes", "--password-secret", password_secret(),
                      "--ssh-host-key", other_key)
    assert refused.returncode == 1
    assert "not the key given as sshhostkey" in one_error_line(refused)
    assert secrets(lab) == before
    assert other_config(lab, vm) == config
    assert authorized_keys(lab, vm, user) == ""

    host_key = Path(vm.ssh_host_key).read_text().strip()
    done = prepare(lab, vm, "-u", user, "--yes", "--password-secret", password_secret(),
                   "--ssh-host-key", host_key)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Result: container management works for this VM." in done.stdout
    assert password not in done.stdout + done.stderr
    assert secrets(lab) == before
    assert other_config(lab, vm)["xscontainer-sshhostkey"] == host_key.split()[1]

    both = lab.dom0_run(vm.host, [PROG, "-v", vm.uuid, "-u", user, "--password-stdin",
                                  "--password-secret", "x"])
    assert both.returncode == 2
    assert "either --password-stdin or --password-secret" in one_error_line(both)
