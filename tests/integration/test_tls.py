"""TLS mode end to end: xscontainer-prepare-vm --mode tls as a dom0 process, the guest's
administrator applying the certificates from the virtual CD (xsclab.tlsadmin),
then the plugin over mutual TLS on 2376; a guest presenting another CA's
certificate refused; an administrator's own certificates (external mode).

Each test puts the guest's lab TLS files back and returns the VM to SSH mode.
"""

import datetime
import ipaddress
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest
import XenAPI
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from xsclab import labctl, tlsadmin

IMAGE = "xsc-test/busybox"
PROG = "xscontainer-prepare-vm"
TLS_KEYS = ("xscontainer-tls-client-cert", "xscontainer-tls-client-key",
            "xscontainer-tls-ca-cert")
TEMP_VDI = "Temp Container Management Image"


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail("timed out after %g s waiting for %s" % (timeout, what))
        time.sleep(0.2)


def other_config(lab: labctl.Lab, vm: labctl.VM) -> Dict[str, str]:
    with lab.xapi_session() as s:
        return dict(s.xenapi.VM.get_other_config(s.xenapi.VM.get_by_uuid(vm.uuid)))


def secret_value(lab: labctl.Lab, secret_uuid: str) -> str:
    with lab.xapi_session() as s:
        return str(s.xenapi.secret.get_value(s.xenapi.secret.get_by_uuid(secret_uuid)))


def all_secrets(lab: labctl.Lab) -> List[str]:
    with lab.xapi_session() as s:
        return [s.xenapi.secret.get_uuid(r) for r in s.xenapi.secret.get_all()]


def temp_vdis(lab: labctl.Lab) -> List[str]:
    with lab.xapi_session() as s:
        return list(s.xenapi.VDI.get_by_name_label(TEMP_VDI))


@pytest.fixture
def tls_vm(lab: labctl.Lab) -> Iterator[labctl.VM]:
    """The third guest; afterwards its lab TLS files are back, it is in SSH mode
    again and the TLS secrets the tests made are gone."""
    vm = lab.vms[2]
    saved = other_config(lab, vm)
    try:
        with tlsadmin.saved_tls(lab, vm.name):
            yield vm
    finally:
        with lab.xapi_session() as s:
            ref = s.xenapi.VM.get_by_uuid(vm.uuid)
            now = s.xenapi.VM.get_other_config(ref)
            for key in [*TLS_KEYS, "xscontainer-mode", "xscontainer-monitor"]:
                s.xenapi.VM.remove_from_other_config(ref, key)
                if key in saved:
                    s.xenapi.VM.add_to_other_config(ref, key, saved[key])
            for key in TLS_KEYS:
                if now.get(key) and now.get(key) != saved.get(key):
                    try:
                        s.xenapi.secret.destroy(s.xenapi.secret.get_by_uuid(now[key]))
                    except XenAPI.Failure:
                        pass


@pytest.fixture
def container(lab: labctl.Lab, tls_vm: labctl.VM) -> Iterator[str]:
    name = "tls-" + uuid.uuid4().hex[:8]
    cid = lab.exec(tls_vm.name, ["docker", "run", "-d", "--init", "--name", name, IMAGE,
                                 "sleep", "1d"]).stdout.strip()
    try:
        yield cid
    finally:
        lab.exec(tls_vm.name, ["docker", "rm", "-f", name], check=False)


def inspect(lab: labctl.Lab, vm: labctl.VM, cid: str) -> str:
    return lab.call_plugin(vm.host, "get_inspect", {"vmuuid": vm.uuid, "object": cid})


def failure(lab: labctl.Lab, vm: labctl.VM, cid: str) -> List[str]:
    with pytest.raises(XenAPI.Failure) as exc:
        inspect(lab, vm, cid)
    return [str(d) for d in exc.value.details]


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def test_generated_certificates_end_to_end(lab: labctl.Lab, tls_vm: labctl.VM,
                                           container: str) -> None:
    vm = tls_vm
    secrets_before = set(all_secrets(lab))
    proc = lab.dom0_popen(vm.host, [PROG, "-v", vm.uuid, "--mode", "tls", "--generate-certs",
                                    "--yes", "--wait", "120"],
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True)
    try:
        cd = tlsadmin.apply_cd(lab, vm.name, timeout=60)
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out + err
    assert err == ""
    assert "Docker in the VM answers with the new certificate" in out
    assert "Result: container management works for this VM." in out
    assert "PRIVATE KEY" not in out

    # what the VM got on its CD, and that the CD is gone again
    assert cd["volume_id"] == "Container TLS"
    assert cd["paths"] == ["README.txt", "configure_tls.cmd", "daemon.json", "server/",
                           "server/ca.pem", "server/server-cert.pem", "server/server-key.pem"]
    assert b"net session" in cd["files"]["configure_tls.cmd"]
    assert b"\r\n" in cd["files"]["configure_tls.cmd"]
    assert tlsadmin.cd_vdi(lab, vm.name) is None
    assert temp_vdis(lab) == []
    server = x509.load_pem_x509_certificate(cd["files"]["server/server-cert.pem"])
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address(vm.ip)]

    # dom0 keeps the client side as three new secrets; the CA is the CD's CA
    config = other_config(lab, vm)
    assert config["xscontainer-mode"] == "tls"
    assert config["xscontainer-monitor"] == "True"
    new = {config[k] for k in TLS_KEYS}
    assert len(new) == 3 and not new & secrets_before
    assert set(all_secrets(lab)) == secrets_before | new
    assert secret_value(lab, config["xscontainer-tls-ca-cert"]).encode() == \
        cd["files"]["server/ca.pem"]
    assert "PRIVATE KEY" in secret_value(lab, config["xscontainer-tls-client-key"])

    # the plugin over TLS
    value = inspect(lab, vm, container)
    assert value.startswith("True<?xml") and "<Id>%s</Id>" % container in value
    diagnosis = lab.call_plugin(vm.host, "diagnose", {"vmuuid": vm.uuid})
    assert "[ OK ] Docker accepts xscontainer's client certificate" in diagnosis
    assert "Result: container management works for this VM." in diagnosis

    # the monitor over TLS: the container list appears, and follows Docker's events
    monitor = lab.dom0_popen(vm.host, ["xscontainer-monitor", "--resync", "30"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    name = "tls-event-" + uuid.uuid4().hex[:6]
    try:
        wait_for("docker_ps with the container",
                 lambda: container[:10] in other_config(lab, vm).get("docker_ps", ""))
        lab.exec(vm.name, ["docker", "run", "-d", "--init", "--name", name, IMAGE, "sleep",
                           "1d"])
        wait_for("docker_ps with the new container",
                 lambda: "<names>%s</names>" % name in other_config(lab, vm).get("docker_ps", ""))
        assert "<ApiVersion>" in other_config(lab, vm).get("docker_version", "")
    finally:
        monitor.terminate()
        monitor.wait(30)
        lab.exec(vm.name, ["docker", "rm", "-f", name], check=False)
        lab.call_plugin(vm.host, "deregister", {"vmuuid": vm.uuid})

    # the guest's administrator goes back to the lab's own certificates: another CA
    tlsadmin.reinstall_lab_certificates(lab, vm.name)
    details = failure(lab, vm, container)
    assert details[0] == "XSCONTAINER_TLS_CERT_REJECTED", details
    assert "does not chain to the CA stored for the VM" in details[1]
    assert "xscontainer-prepare-vm -v %s --mode tls" % vm.uuid in details[1]


# -- an administrator's own certificates --------------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def own_set(ip: str) -> Dict[str, bytes]:
    """A CA, a server certificate for `ip` and a client certificate, RSA 2048."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def issue(subject: str, key: rsa.RSAPrivateKey, ca: bool,
              usage: Optional[x509.ObjectIdentifier] = None,
              san: Optional[str] = None) -> bytes:
        builder = (x509.CertificateBuilder().subject_name(_name(subject))
                   .issuer_name(_name("Admin CA")).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(hours=1))
                   .not_valid_after(now + datetime.timedelta(days=90))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if usage is not None:
            builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if san is not None:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(san))]), critical=False)
        return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)

    server_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    client_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return {
        "ca.pem": issue("Admin CA", ca_key, True),
        "server-cert.pem": issue("docker", server_key, False, ExtendedKeyUsageOID.SERVER_AUTH,
                                 ip),
        "server-key.pem": _pem(server_key),
        "cert.pem": issue("dom0", client_key, False, ExtendedKeyUsageOID.CLIENT_AUTH),
        "key.pem": _pem(client_key),
    }


def write(tmp_path: Path, files: Dict[str, bytes]) -> Dict[str, str]:
    tmp_path.chmod(0o700)
    paths = {}
    for name, data in files.items():
        path = tmp_path / name
        path.write_bytes(data)
        paths[name] = str(path)
    return paths


def external(lab: labctl.Lab, vm: labctl.VM, paths: Dict[str, str], cert: str = "cert.pem",
             key: str = "key.pem", ca: str = "ca.pem") -> Any:
    return lab.dom0_run(vm.host, [PROG, "-v", vm.uuid, "--mode", "tls", "--client-cert",
                                  paths[cert], "--client-key", paths[key], "--ca-cert",
                                  paths[ca]], timeout=120)


def test_external_certificates(lab: labctl.Lab, tls_vm: labctl.VM, container: str,
                               tmp_path: Path) -> None:
    vm = tls_vm
    files = own_set(vm.ip)
    tlsadmin.install_own(lab, vm.name, files["ca.pem"], files["server-cert.pem"],
                         files["server-key.pem"])
    paths = write(tmp_path, files)
    done = external(lab, vm, paths)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Result: container management works for this VM." in done.stdout
    config = other_config(lab, vm)
    assert config["xscontainer-mode"] == "tls"
    assert secret_value(lab, config["xscontainer-tls-client-cert"]).encode() == files["cert.pem"]
    assert "<Id>%s</Id>" % container in inspect(lab, vm, container)

    # replacing the set destroys the old secrets nobody else uses...
    old = {config[k] for k in TLS_KEYS}
    again = external(lab, vm, paths)
    assert again.returncode == 0, again.stderr
    config = other_config(lab, vm)
    new = {config[k] for k in TLS_KEYS}
    assert not old & new
    assert not old & set(all_secrets(lab))

    # ... but keeps those a clone (same other-config keys) still uses
    clone = lab.vms[0]
    with lab.xapi_session() as s:
        clone_ref = s.xenapi.VM.get_by_uuid(clone.uuid)
        for key in TLS_KEYS:
            s.xenapi.VM.add_to_other_config(clone_ref, key, config[key])
    try:
        third = external(lab, vm, paths)
        assert third.returncode == 0, third.stderr
        assert new <= set(all_secrets(lab))
        assert not new & {other_config(lab, vm)[k] for k in TLS_KEYS}
    finally:
        with lab.xapi_session() as s:
            for key in TLS_KEYS:
                s.xenapi.VM.remove_from_other_config(clone_ref, key)
            for secret in new:
                s.xenapi.secret.destroy(s.xenapi.secret.get_by_uuid(secret))


def test_external_certificates_of_another_ca_store_nothing(
        lab: labctl.Lab, tls_vm: labctl.VM, tmp_path: Path) -> None:
    vm = tls_vm
    files = own_set(vm.ip)
    other = own_set(vm.ip)
    files["other-ca.pem"] = other["ca.pem"]
    paths = write(tmp_path, files)
    before = (other_config(lab, vm), set(all_secrets(lab)))
    done = external(lab, vm, paths, ca="other-ca.pem")
    assert done.returncode == 1
    line = one_error_line(done.stderr)
    assert "was not issued by %s" % paths["other-ca.pem"] in line
    mismatched = external(lab, vm, paths, key="server-key.pem")
    assert mismatched.returncode == 1
    assert "does not belong to" in one_error_line(mismatched.stderr)
    assert (other_config(lab, vm), set(all_secrets(lab))) == before


def test_server_certificate_for_another_address_is_refused(
        lab: labctl.Lab, tls_vm: labctl.VM, container: str, tmp_path: Path) -> None:
    vm = tls_vm
    files = own_set("192.0.2.7")  # valid chain, wrong IP SAN
    tlsadmin.install_own(lab, vm.name, files["ca.pem"], files["server-cert.pem"],
                         files["server-key.pem"])
    done = external(lab, vm, write(tmp_path, files))
    assert done.returncode == 1
    assert "[FAIL] the TLS handshake succeeds" in done.stdout
    assert "not valid for the address %s" % vm.ip in one_error_line(done.stderr)
    details = failure(lab, vm, container)
    assert details[0] == "XSCONTAINER_TLS_CERT_REJECTED"
    assert "not valid for the address %s" % vm.ip in details[1]


def test_tls_without_certificates_says_how_to_prepare(lab: labctl.Lab, tls_vm: labctl.VM,
                                                      container: str) -> None:
    vm = tls_vm
    with lab.xapi_session() as s:
        ref = s.xenapi.VM.get_by_uuid(vm.uuid)
        s.xenapi.VM.remove_from_other_config(ref, "xscontainer-mode")
        s.xenapi.VM.add_to_other_config(ref, "xscontainer-mode", "tls")
    details = failure(lab, vm, container)
    assert details[0] == "XSCONTAINER_TLS_NOT_CONFIGURED"
    assert "--mode tls --generate-certs" in details[1]


# -- the CD drive ----------------------------------------------------------------------------


def cd_vbd(s: Any, vm: labctl.VM) -> str:
    for vbd in s.xenapi.VM.get_VBDs(s.xenapi.VM.get_by_uuid(vm.uuid)):
        if s.xenapi.VBD.get_type(vbd) == "CD":
            return str(vbd)
    raise AssertionError("the lab VM has no CD drive")


@pytest.fixture
def media_in_drive(lab: labctl.Lab, tls_vm: labctl.VM) -> Iterator[str]:
    """A disk of the user's in the VM's CD drive; ejected and deleted afterwards."""
    with lab.xapi_session() as s:
        sr = s.xenapi.pool.get_default_SR(s.xenapi.pool.get_all()[0])
        vdi = s.xenapi.VDI.create({
            "name_label": "the user's installer ISO", "name_description": "", "SR": sr,
            "virtual_size": str(1 << 20), "type": "user", "sharable": False,
            "read_only": False, "other_config": {}, "xenstore_data": {}, "sm_config": {},
            "tags": []})
        s.xenapi.VBD.insert(cd_vbd(s, tls_vm), vdi)
    try:
        yield vdi
    finally:
        with lab.xapi_session() as s:
            if tlsadmin.cd_vdi(lab, tls_vm.name) is not None:
                s.xenapi.VBD.eject(cd_vbd(s, tls_vm))
            s.xenapi.VDI.destroy(vdi)


def test_media_in_the_drive_is_kept_with_yes_and_put_back_when_asked(
        lab: labctl.Lab, tls_vm: labctl.VM, media_in_drive: str, container: str) -> None:
    vm = tls_vm
    before = (other_config(lab, vm), set(all_secrets(lab)))
    refused = lab.dom0_run(vm.host, [PROG, "-v", vm.uuid, "--mode", "tls", "--generate-certs",
                                     "--yes"], timeout=120)
    assert refused.returncode == 1
    line = one_error_line(refused.stderr)
    assert "holds \"the user's installer ISO\"; with --yes it is not ejected" in line
    assert "xe vm-cd-eject uuid=%s" % vm.uuid in line
    assert tlsadmin.cd_vdi(lab, vm.name) == media_in_drive
    assert temp_vdis(lab) == []
    assert (other_config(lab, vm), set(all_secrets(lab))) == before

    # interactively: proceed, eject the user's disk, the script has run
    proc = lab.dom0_popen(vm.host, [PROG, "-v", vm.uuid, "--mode", "tls", "--generate-certs"],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True)
    try:
        assert proc.stdin is not None
        proc.stdin.write("y\ny\ny\n")
        proc.stdin.close()
        tlsadmin.apply_cd(lab, vm.name, timeout=60)
        out = proc.stdout.read() if proc.stdout else ""
        err = proc.stderr.read() if proc.stderr else ""
        proc.wait(120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out + err
    assert "Eject it while the certificates are deployed" in out
    assert "Put \"the user's installer ISO\" back into the CD drive." in out
    assert tlsadmin.cd_vdi(lab, vm.name) == media_in_drive
    assert temp_vdis(lab) == []
    assert "<Id>%s</Id>" % container in inspect(lab, vm, container)


def test_leftover_cd_is_removed_and_a_timeout_stores_nothing(
        lab: labctl.Lab, tls_vm: labctl.VM) -> None:
    vm = tls_vm
    with lab.xapi_session() as s:  # what a killed earlier run would have left
        sr = s.xenapi.pool.get_default_SR(s.xenapi.pool.get_all()[0])
        leftover = s.xenapi.VDI.create({
            "name_label": TEMP_VDI, "name_description": "", "SR": sr,
            "virtual_size": str(1 << 20), "type": "user", "sharable": False,
            "read_only": False, "other_config": {"xscontainer-tls-iso": "True"},
            "xenstore_data": {}, "sm_config": {}, "tags": []})
        s.xenapi.VBD.insert(cd_vbd(s, vm), leftover)
    before = (other_config(lab, vm), set(all_secrets(lab)))
    done = lab.dom0_run(vm.host, [PROG, "-v", vm.uuid, "--mode", "tls", "--generate-certs",
                                  "--yes", "--wait", "4"], timeout=120)
    assert done.returncode == 1
    assert "an earlier, interrupted run left" in done.stdout
    assert "Ejected and deleted the temporary CD." in done.stdout
    line = one_error_line(done.stderr)
    assert "did not answer with the new certificate within 4 s" in line
    assert "does not chain to the CA stored" in line  # the lab's own certificate
    assert temp_vdis(lab) == []
    assert tlsadmin.cd_vdi(lab, vm.name) is None
    assert (other_config(lab, vm), set(all_secrets(lab))) == before
