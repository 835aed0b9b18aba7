"""The lab's `xe`: real xe syntax and output layout."""

import os
import subprocess
import sys
from typing import Tuple

import XenAPI

from xsclab.labenv import LAB_CODE_DIR
from xsclab.simharness import Simulator

XE = os.path.join(LAB_CODE_DIR, "xe")


def xe(sim: Simulator, *args: str, direct: bool = False) -> Tuple[int, str, str]:
    """Runs xe on this interpreter (quicker), or as an executable if `direct`."""
    env = dict(os.environ, XSCONTAINER_XAPI_SOCKET=sim.socket)
    argv = [XE, *args] if direct else [sys.executable, XE, *args]
    proc = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=30)
    return proc.returncode, proc.stdout, proc.stderr


def test_vm_list_layout(sim: Simulator, session: XenAPI.Session, vm: str) -> None:
    uuid = session.xenapi.VM.get_uuid(vm)
    rc, out, _ = xe(sim, "vm-list", "uuid=" + uuid)
    assert rc == 0
    assert out == (
        "uuid ( RO)           : %s\n"
        "     name-label ( RW): xsc-vm1\n"
        "    power-state ( RO): running\n"
        "\n\n" % uuid
    )
    rc, out, _ = xe(sim, "vm-list", "name-label=xsc-vm1", "params=uuid", "--minimal")
    assert (rc, out) == (0, uuid + "\n")


def test_vm_list_shows_guests_and_control_domains_but_no_templates(sim: Simulator) -> None:
    rc, out, _ = xe(sim, "vm-list", "params=name-label", "--minimal")
    assert rc == 0
    assert sorted(out.strip().split(",")) == [
        "Control domain on host: xsc-host1", "Control domain on host: xsc-host2", "xsc-vm1"]
    rc, out, _ = xe(sim, "vm-list", "is-a-template=true", "params=name-label", "--minimal")
    assert out == "CoreOS\n"


def test_vm_params(sim: Simulator, session: XenAPI.Session, vm: str) -> None:
    uuid = session.xenapi.VM.get_uuid(vm)
    assert xe(sim, "vm-param-set", "uuid=" + uuid, "other-config:xe-key=a b")[0] == 0
    assert session.xenapi.VM.get_other_config(vm)["xe-key"] == "a b"
    assert xe(sim, "vm-param-set", "uuid=" + uuid, "other-config:xe-key=c")[0] == 0
    rc, out, _ = xe(sim, "vm-param-get", "uuid=" + uuid, "param-name=other-config",
                    "param-key=xe-key")
    assert (rc, out) == (0, "c\n")
    assert xe(sim, "vm-param-remove", "uuid=" + uuid, "param-name=other-config",
              "param-key=xe-key")[0] == 0
    assert "xe-key" not in session.xenapi.VM.get_other_config(vm)
    rc, out, _ = xe(sim, "vm-param-get", "uuid=" + uuid, "param-name=networks")
    assert "0/ip: 10.200.1.2" in out


def test_power_verbs(sim: Simulator, session: XenAPI.Session, vm: str) -> None:
    uuid = session.xenapi.VM.get_uuid(vm)
    host2 = next(h for h, r in session.xenapi.host.get_all_records().items()
             if r["name_label"] == "xsc-host2")
    assert xe(sim, "vm-shutdown", "uuid=" + uuid, "--force")[0] == 0
    assert session.xenapi.VM.get_power_state(vm) == "Halted"
    assert xe(sim, "vm-start", "uuid=" + uuid, "on=xsc-host2")[0] == 0
    assert session.xenapi.VM.get_resident_on(vm) == host2
    host1_uuid = session.xenapi.host.get_uuid(session.xenapi.VM.get_affinity(vm))
    assert xe(sim, "vm-migrate", "uuid=" + uuid, "host=" + host1_uuid)[0] == 0
    assert session.xenapi.VM.get_resident_on(vm) == session.xenapi.VM.get_affinity(vm)


def test_other_lists(sim: Simulator, session: XenAPI.Session) -> None:
    rc, out, _ = xe(sim, "host-list", direct=True)
    assert rc == 0 and out.count("name-label ( RW): xsc-host") == 2
    rc, out, _ = xe(sim, "secret-list", "params=value", "--minimal")
    assert "ssh-rsa AAAAlab root@lab" in out
    vm_uuid = session.xenapi.VM.get_uuid(session.xenapi.VM.get_by_name_label("xsc-vm1")[0])
    session.xenapi.message.create("xe-test", "3", "VM", vm_uuid, "body text")
    rc, out, _ = xe(sim, "message-list")
    assert "name ( RO): xe-test" in out and "body ( RO): body text" in out


def test_host_call_plugin(sim: Simulator, session: XenAPI.Session) -> None:
    host = session.xenapi.host.get_uuid(session.xenapi.host.get_all()[0])
    rc, out, _ = xe(sim, "host-call-plugin", "host-uuid=" + host, "plugin=dispatching",
                    "fn=echo", "args:vmuuid=u", "args:container=c")
    assert (rc, out) == (0, '{"container": "c", "vmuuid": "u"}\n')


def test_failures(sim: Simulator) -> None:
    rc, out, err = xe(sim, "vm-param-get", "uuid=nope", "param-name=uuid")
    assert (rc, out) == (1, "")
    assert err == "Error code: UUID_INVALID\nError parameters: VM, nope\n"
    rc, _, err = xe(sim, "no-such-verb")
    assert rc == 1 and err.startswith("Unknown command: no-such-verb")
    rc, _, err = xe(sim, "vm-list", "colour=blue")
    assert rc == 1 and "colour" in err
