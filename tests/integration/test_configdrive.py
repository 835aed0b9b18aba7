"""Config drives through the lab, as XenCenter, Xen Orchestra and `xe` use them:
host.call_plugin for get_config_drive_default, create_config_drive and
get_config_drive_configuration; the drive checked by exporting its VDI from
the simulator and reading it with isoinfo (an independent ISO reader).

Every test leaves the shared lab as it found it: drives it made are destroyed,
VMs it halted are started again where they ran, keys it set are restored.
"""

import os
import re
import subprocess
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest
import XenAPI
import yaml

from xsclab import labctl

FN_DEFAULT = "get_config_drive_default"
FN_CREATE = "create_config_drive"
FN_READ = "get_config_drive_configuration"
MONITOR = "xscontainer-monitor"
HIN_PREF = "xscontainer-use-hostinternalnetwork"

CONFIG = """#cloud-config
hostname: %VMNAMETOHOSTNAME%
ssh_authorized_keys:
  # container management needs the next line
  - ssh-rsa %CONTAINERRSAPUB%
coreos:
  units:
    - name: docker.service
      command: start
    %HINEXISTS%
    - name: 00-eth%HIN%.network
      runtime: true
      content: |
        [Match]
        Name=eth%HIN%
    %ENDHINEXISTS%
    - name: legacy-%XSVMNAMETOHOSTNAME%.service
      command: start
"""
COMMENTED = CONFIG.replace("  - ssh-rsa %CONTAINERRSAPUB%", "  # - ssh-rsa %CONTAINERRSAPUB%")


# -- helpers ------------------------------------------------------------------------------


def ok(lab: labctl.Lab, host: str, fn: str, args: Dict[str, str]) -> str:
    result = lab.call_plugin(host, fn, args)
    assert result.startswith("True"), result
    return result[4:]


def failure(lab: labctl.Lab, host: str, fn: str, args: Dict[str, str]) -> List[str]:
    with pytest.raises(XenAPI.Failure) as raised:
        lab.call_plugin(host, fn, args)
    return [str(d) for d in raised.value.details]


def vm_of(lab: labctl.Lab, index: int) -> labctl.VM:
    return lab.vms[index]


def local_sr(lab: labctl.Lab, host_uuid: str) -> str:
    return next(s.uuid for s in lab.srs if not s.shared and s.hosts == [host_uuid])


def shared_sr(lab: labctl.Lab) -> str:
    return next(s.uuid for s in lab.srs if s.shared)


def other_host(lab: labctl.Lab, host_uuid: str) -> str:
    return next(h.uuid for h in lab.hosts if h.uuid != host_uuid)


def drives(s: Any, vm_uuid: str) -> List[Dict[str, Any]]:
    """Records of the VM's config-drive VBDs, each with its VDI record as `vdi`."""
    found = []
    vm = s.xenapi.VM.get_by_uuid(vm_uuid)
    for vbd in s.xenapi.VM.get_VBDs(vm):
        record = s.xenapi.VBD.get_record(vbd)
        if record["other_config"].get("config-drive", "").lower() == "true":
            record["ref"] = vbd
            record["vdi"] = s.xenapi.VDI.get_record(record["VDI"])
            found.append(record)
    return found


def export(lab: labctl.Lab, s: Any, vdi_uuid: str) -> bytes:
    """The VDI's content, from the simulator's GET /export_raw_vdi over TCP."""
    query = urllib.parse.urlencode({"session_id": s._session, "vdi": vdi_uuid, "format": "raw"})
    url = lab.data["xapi"]["url"].rstrip("/") + "/export_raw_vdi?" + query
    with urllib.request.urlopen(url, timeout=30) as response:
        return bytes(response.read())


class Drive:
    """A config drive image exported from XAPI, read with isoinfo."""

    def __init__(self, data: bytes, tmp: Path) -> None:
        self.path = tmp / "drive.iso"
        self.path.write_bytes(data)

    def isoinfo(self, *args: str) -> bytes:
        return subprocess.run(["isoinfo", "-i", str(self.path), *args], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, check=True, timeout=30).stdout

    @property
    def label(self) -> str:
        match = re.search(r"^Volume id: (.*)$", self.isoinfo("-d").decode(), re.MULTILINE)
        assert match, "no volume id"
        return match.group(1).strip()

    def files(self) -> List[str]:
        listing = self.isoinfo("-R", "-f").decode().split()
        return sorted(p for p in listing if p)

    def text(self, path: str) -> str:
        return self.isoinfo("-R", "-x", path).decode("utf-8")


def hostname(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "", name).lower()


def key_body(lab: labctl.Lab) -> str:
    return Path(lab.pool_key["public"]).read_text().split()[1]


def log_size(host: labctl.Host) -> int:
    path = os.path.join(host.dir, "xscontainer.log")
    return os.path.getsize(path) if os.path.exists(path) else 0


def log_since(host: labctl.Host, offset: int) -> str:
    path = os.path.join(host.dir, "xscontainer.log")
    if not os.path.exists(path):
        return ""
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read().decode("utf-8", "replace")


def counts(s: Any) -> Dict[str, int]:
    return {cls: len(getattr(s.xenapi, cls).get_all()) for cls in ("VDI", "VBD", "VIF")}


# -- keeping the shared lab as it was -------------------------------------------------------


@pytest.fixture
def s(lab: labctl.Lab) -> Iterator[Any]:
    with lab.xapi_session() as session:
        yield session


@pytest.fixture
def restore(lab: labctl.Lab, s: Any) -> Iterator[None]:
    """Undo what a test did: config drives it made, VIFs it added, VMs it halted,
    monitor keys and pool/network keys it changed, files it put in a host's dom0."""
    api = s.xenapi
    vdis = set(api.VDI.get_all())
    vifs = set(api.VIF.get_all())
    vms = {}
    for vm in lab.vms:
        ref = api.VM.get_by_uuid(vm.uuid)
        vms[ref] = (api.VM.get_power_state(ref), api.VM.get_resident_on(ref),
                    api.VM.get_other_config(ref).get(MONITOR))
    pool = api.pool.get_all()[0]
    pool_pref = api.pool.get_other_config(pool).get(HIN_PREF)
    networks = {n: api.network.get_other_config(n).get("ip_disable_gw")
                for n in api.network.get_all()}
    host_files = [os.path.join(h.dir, sub) for h in lab.hosts for sub in ("files", "iso")]
    before_files = {d: set(os.listdir(d)) for d in host_files}
    yield
    for vdi in set(api.VDI.get_all()) - vdis:
        for vbd in api.VDI.get_VBDs(vdi):
            if api.VBD.get_currently_attached(vbd):
                api.VBD.unplug(vbd)
            api.VBD.destroy(vbd)
        api.VDI.destroy(vdi)
    for vif in set(api.VIF.get_all()) - vifs:
        api.VIF.destroy(vif)
    for ref, (state, host, monitor) in vms.items():
        api.VM.remove_from_other_config(ref, MONITOR)
        if monitor is not None:
            api.VM.add_to_other_config(ref, MONITOR, monitor)
        if api.VM.get_power_state(ref) != state:
            if state == "Running":
                api.VM.start_on(ref, host, False, False)
            else:
                api.VM.hard_shutdown(ref)
    api.pool.remove_from_other_config(pool, HIN_PREF)
    if pool_pref is not None:
        api.pool.add_to_other_config(pool, HIN_PREF, pool_pref)
    for network, value in networks.items():
        api.network.remove_from_other_config(network, "ip_disable_gw")
        if value is not None:
            api.network.add_to_other_config(network, "ip_disable_gw", value)
    for d, names in before_files.items():
        for name in set(os.listdir(d)) - names:
            os.unlink(os.path.join(d, name))


def lab_state(lab: labctl.Lab) -> Dict[str, Any]:
    with lab.xapi_session() as session:
        api = session.xenapi
        return {
            "VDI": sorted(api.VDI.get_all()), "VBD": sorted(api.VBD.get_all()),
            "VIF": sorted(api.VIF.get_all()),
            "VM": {vm.uuid: (api.VM.get_power_state(ref), api.VM.get_resident_on(ref),
                             api.VM.get_other_config(ref))
                   for vm in lab.vms for ref in [api.VM.get_by_uuid(vm.uuid)]},
            "pool": api.pool.get_other_config(api.pool.get_all()[0]),
            "network": [api.network.get_other_config(n) for n in sorted(api.network.get_all())],
        }


@pytest.fixture(scope="module", autouse=True)
def lab_left_as_found(lab: labctl.Lab) -> Iterator[None]:
    before = lab_state(lab)
    yield
    assert lab_state(lab) == before


def halt(s: Any, vm_uuid: str) -> None:
    s.xenapi.VM.hard_shutdown(s.xenapi.VM.get_by_uuid(vm_uuid))


# -- get_config_drive_default ------------------------------------------------------------


def coreos_template(s: Any) -> str:
    return str(s.xenapi.VM.get_uuid(s.xenapi.VM.get_by_name_label("CoreOS")[0]))


def test_default_text_from_every_host(lab: labctl.Lab, s: Any, restore: None) -> None:
    for host in lab.hosts:
        text = ok(lab, host.uuid, FN_DEFAULT, {"templateuuid": coreos_template(s)})
        assert text.startswith("#cloud-config\n")
        assert "\r" not in text
        assert "%CONTAINERRSAPUB%" in text and "%VMNAMETOHOSTNAME%" in text
        assert "\n  - ssh-rsa %CONTAINERRSAPUB%\n" in text
        assert "HINEXISTS" not in text  # the pool does not ask for the internal network
        filled = text.replace("%VMNAMETOHOSTNAME%", "vm").replace("%CONTAINERRSAPUB%", "AAAA")
        data = yaml.safe_load(filled)
        assert data["ssh_authorized_keys"] == ["ssh-rsa AAAA"]
        assert "etcd" not in text and "fleet" not in text


def test_default_honours_the_pool_setting_and_the_admin_override(
        lab: labctl.Lab, s: Any, restore: None) -> None:
    pool = s.xenapi.pool.get_all()[0]
    s.xenapi.pool.add_to_other_config(pool, HIN_PREF, "true")
    text = ok(lab, lab.master, FN_DEFAULT, {"templateuuid": "ignored"})
    assert "%HINEXISTS%" in text and "%ENDHINEXISTS%" in text

    host = lab.host()
    override = Path(host.dir) / "files" / "cloud-config.template"
    override.write_text("#cloud-config\r\nhostname: %VMNAMETOHOSTNAME%\r\n"
                        "ssh_authorized_keys:\r\n  - ssh-rsa %CONTAINERRSAPUB%\r\n")
    text = ok(lab, host.uuid, FN_DEFAULT, {"templateuuid": "ignored"})
    assert text == ("#cloud-config\nhostname: %VMNAMETOHOSTNAME%\nssh_authorized_keys:\n"
                    "  - ssh-rsa %CONTAINERRSAPUB%\n\n# Template loaded from " + str(override)
                    + "\n")


def test_default_needs_templateuuid(lab: labctl.Lab) -> None:
    details = failure(lab, lab.master, FN_DEFAULT, {})
    assert details[0] == "XSCONTAINER_INVALID_ARGUMENT"
    assert "templateuuid" in details[1]


# -- create_config_drive and get_config_drive_configuration ---------------------------------


def test_create_read_back_and_check_the_image(lab: labctl.Lab, s: Any, restore: None,
                                              tmp_path: Path) -> None:
    vm = vm_of(lab, 0)  # running, no host internal network VIF
    sr = local_sr(lab, vm.host)
    vdi_uuid = ok(lab, lab.master, FN_CREATE,
                  {"vmuuid": vm.uuid, "sruuid": sr, "configuration": CONFIG})

    [drive] = drives(s, vm.uuid)
    assert drive["vdi"]["uuid"] == vdi_uuid
    assert drive["vdi"]["name_label"] == "Automatic Config Drive"
    assert drive["vdi"]["other_config"]["config-drive"] == "True"
    assert s.xenapi.SR.get_uuid(drive["vdi"]["SR"]) == sr
    assert int(drive["vdi"]["virtual_size"]) % (2 << 20) == 0
    assert (drive["mode"], drive["type"], drive["bootable"]) == ("RO", "Disk", False)
    assert drive["userdevice"] == "1"
    assert drive["currently_attached"] is True  # the VM runs: plugged

    image = Drive(export(lab, s, vdi_uuid), tmp_path)
    assert image.label == "config-2"
    files = image.files()
    assert "/openstack/latest/user_data" in files
    assert "/openstack/latest/user_data.template" in files
    assert image.text("/openstack/latest/user_data.template") == CONFIG
    user_data = image.text("/openstack/latest/user_data")
    assert "%" not in user_data
    name = hostname(vm.name)
    assert "hostname: %s\n" % name in user_data
    assert "  - ssh-rsa %s\n" % key_body(lab) in user_data
    assert "legacy-%s.service" % name in user_data
    data = yaml.safe_load(user_data)
    assert [u["name"] for u in data["coreos"]["units"]] == [
        "docker.service", "legacy-%s.service" % name]  # no internal network block

    assert ok(lab, lab.master, FN_READ, {"vdiuuid": vdi_uuid}) == CONFIG


def test_br_becomes_crlf(lab: labctl.Lab, s: Any, restore: None, tmp_path: Path) -> None:
    vm = vm_of(lab, 0)
    configuration = CONFIG.replace("\n", "%BR%")
    assert "\n" not in configuration
    vdi_uuid = ok(lab, lab.master, FN_CREATE,
                  {"vmuuid": vm.uuid, "sruuid": shared_sr(lab), "configuration": configuration})
    image = Drive(export(lab, s, vdi_uuid), tmp_path)
    user_data = image.text("/openstack/latest/user_data")
    assert "%BR%" not in user_data
    assert user_data.count("\r\n") == len(user_data.split("\n")) - 1  # every newline is CRLF
    assert yaml.safe_load(user_data)["hostname"] == hostname(vm.name)
    assert image.text("/openstack/latest/user_data.template") == CONFIG.replace("\n", "\r\n")
    # read back for editing with LF, as XenCenter expects
    assert ok(lab, lab.master, FN_READ, {"vdiuuid": vdi_uuid}) == CONFIG


def test_second_create_replaces_the_first(lab: labctl.Lab, s: Any, restore: None) -> None:
    vm = vm_of(lab, 0)
    args = {"vmuuid": vm.uuid, "sruuid": local_sr(lab, vm.host), "configuration": CONFIG}
    first = ok(lab, lab.master, FN_CREATE, args)
    before = counts(s)
    second = ok(lab, lab.master, FN_CREATE, args)
    assert second != first
    with pytest.raises(XenAPI.Failure) as gone:
        s.xenapi.VDI.get_by_uuid(first)
    assert gone.value.details[0] == "UUID_INVALID"
    [drive] = drives(s, vm.uuid)
    assert drive["vdi"]["uuid"] == second
    assert drive["userdevice"] == "1" and drive["currently_attached"] is True
    assert counts(s) == before


def test_monitor_key_seeded_only_for_an_uncommented_key_line(
        lab: labctl.Lab, s: Any, restore: None) -> None:
    vm = vm_of(lab, 0)
    ref = s.xenapi.VM.get_by_uuid(vm.uuid)
    args = {"vmuuid": vm.uuid, "sruuid": shared_sr(lab)}
    s.xenapi.VM.remove_from_other_config(ref, MONITOR)

    ok(lab, lab.master, FN_CREATE, dict(args, configuration=COMMENTED))
    assert MONITOR not in s.xenapi.VM.get_other_config(ref)

    ok(lab, lab.master, FN_CREATE, dict(args, configuration=CONFIG))
    assert s.xenapi.VM.get_other_config(ref)[MONITOR] == "False"

    s.xenapi.VM.remove_from_other_config(ref, MONITOR)
    s.xenapi.VM.add_to_other_config(ref, MONITOR, "True")
    ok(lab, lab.master, FN_CREATE, dict(args, configuration=CONFIG))
    assert s.xenapi.VM.get_other_config(ref)[MONITOR] == "True"  # never overwritten


def test_host_internal_network_vm_keeps_the_block(lab: labctl.Lab, s: Any, restore: None,
                                                  tmp_path: Path) -> None:
    vm = vm_of(lab, -1)  # the lab's VM with a VIF on the xenapi network
    vm_ref = s.xenapi.VM.get_by_uuid(vm.uuid)
    devices = [s.xenapi.VIF.get_device(v) for v in s.xenapi.VM.get_VIFs(vm_ref)
               if s.xenapi.network.get_bridge(s.xenapi.VIF.get_network(v)) == "xenapi"]
    assert len(devices) == 1
    vdi_uuid = ok(lab, lab.master, FN_CREATE,
                  {"vmuuid": vm.uuid, "sruuid": shared_sr(lab), "configuration": CONFIG})
    user_data = Drive(export(lab, s, vdi_uuid), tmp_path).text("/openstack/latest/user_data")
    assert "HINEXISTS" not in user_data and "%" not in user_data
    units = yaml.safe_load(user_data)["coreos"]["units"]
    network = [u for u in units if u["name"] == "00-eth%s.network" % devices[0]]
    assert network and "Name=eth%s" % devices[0] in network[0]["content"]


def test_pool_setting_gives_a_vm_a_host_internal_network_vif(
        lab: labctl.Lab, s: Any, restore: None, tmp_path: Path) -> None:
    vm = vm_of(lab, 0)
    vm_ref = s.xenapi.VM.get_by_uuid(vm.uuid)
    s.xenapi.pool.add_to_other_config(s.xenapi.pool.get_all()[0], HIN_PREF, "true")
    vdi_uuid = ok(lab, lab.master, FN_CREATE,
                  {"vmuuid": vm.uuid, "sruuid": shared_sr(lab), "configuration": CONFIG})
    himn = [v for v in s.xenapi.VM.get_VIFs(vm_ref)
            if s.xenapi.network.get_bridge(s.xenapi.VIF.get_network(v)) == "xenapi"]
    assert len(himn) == 1
    device = s.xenapi.VIF.get_device(himn[0])
    network = s.xenapi.VIF.get_network(himn[0])
    assert s.xenapi.network.get_other_config(network)["ip_disable_gw"] == "true"
    user_data = Drive(export(lab, s, vdi_uuid), tmp_path).text("/openstack/latest/user_data")
    assert "Name=eth%s\n" % device in user_data


def test_guest_agent_from_the_newest_tools_iso(lab: labctl.Lab, s: Any, restore: None,
                                               tmp_path: Path) -> None:
    vm = vm_of(lab, 0)
    host = next(h for h in lab.hosts if h.uuid == vm.host)
    for release in ("999", "1001"):
        tree = tmp_path / release / "Linux"
        tree.mkdir(parents=True)
        (tree / "xe-daemon").write_text("#!/bin/sh\necho release %s\n" % release)
        (tree / "xe-daemon").chmod(0o755)
        (tree / "xe-linux-distribution").write_text("#!/bin/sh\n")
        (tree / "xe-linux-distribution").chmod(0o755)
        (tree / "versions.rpm").write_text("8.4.0-%s\n" % release)
        (tree / "unrelated.txt").write_text("not copied\n")
        iso = Path(host.dir) / "iso" / ("guest-tools-8.4.0-%s.iso" % release)
        subprocess.run(["genisoimage", "-quiet", "-R", "-J", "-input-charset", "utf-8",
                        "-o", str(iso), str(tmp_path / release)], check=True)
    vdi_uuid = ok(lab, vm.host, FN_CREATE,
                  {"vmuuid": vm.uuid, "sruuid": shared_sr(lab), "configuration": CONFIG})
    image = Drive(export(lab, s, vdi_uuid), tmp_path)
    assert [f for f in image.files() if f.startswith("/agent")] == [
        "/agent", "/agent/versions.rpm", "/agent/xe-daemon", "/agent/xe-linux-distribution"]
    assert image.text("/agent/xe-daemon") == "#!/bin/sh\necho release 1001\n"  # not 999
    listing = image.isoinfo("-R", "-l").decode().splitlines()
    [daemon] = [line for line in listing if line.rstrip().endswith(" xe-daemon")]
    assert daemon.startswith("-rwxr-xr-x")  # still executable for the unit that runs it


# -- forwarding -------------------------------------------------------------------------------


def test_halted_vm_with_an_sr_local_to_another_host_is_forwarded_there(
        lab: labctl.Lab, s: Any, restore: None) -> None:
    vm = next(v for v in lab.vms if v.host != lab.master)  # runs on host 2
    owner = next(h for h in lab.hosts if h.uuid == vm.host)
    master = lab.host()
    halt(s, vm.uuid)
    sizes = {h.uuid: log_size(h) for h in lab.hosts}

    vdi_uuid = ok(lab, master.uuid, FN_CREATE,
                  {"vmuuid": vm.uuid, "sruuid": local_sr(lab, owner.uuid), "configuration": CONFIG})

    assert "forwarding create_config_drive to host" in log_since(master, sizes[master.uuid])
    assert "create_config_drive succeeded" not in log_since(master, sizes[master.uuid])
    owner_log = log_since(owner, sizes[owner.uuid])
    assert "create_config_drive succeeded" in owner_log
    assert "config drive %s created" % vdi_uuid in owner_log
    [drive] = drives(s, vm.uuid)
    assert drive["currently_attached"] is False  # halted: attached at its next start

    # reading it back from the master is forwarded to the host with the SR too
    sizes = {h.uuid: log_size(h) for h in lab.hosts}
    assert ok(lab, master.uuid, FN_READ, {"vdiuuid": vdi_uuid}) == CONFIG
    assert "forwarding get_config_drive_configuration" in log_since(master, sizes[master.uuid])
    assert "get_config_drive_configuration succeeded" in log_since(owner, sizes[owner.uuid])


def test_running_vm_with_an_sr_its_host_cannot_reach(lab: labctl.Lab, s: Any,
                                                     restore: None) -> None:
    vm = vm_of(lab, 0)
    before = counts(s)
    details = failure(lab, lab.master, FN_CREATE,
                      {"vmuuid": vm.uuid, "sruuid": local_sr(lab, other_host(lab, vm.host)),
                       "configuration": CONFIG})
    assert details[0] == "XSCONTAINER_CONFIG_DRIVE_FAILED"
    assert "is not attached to host" in details[1]
    assert counts(s) == before


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, code, words",
    [
        ({"vmuuid": "00000000-0000-4000-8000-00000000dead"}, "XSCONTAINER_VM_NOT_FOUND",
         "no VM with uuid"),
        ({"sruuid": "00000000-0000-4000-8000-00000000dead"}, "XSCONTAINER_CONFIG_DRIVE_FAILED",
         "no SR with uuid"),
        ({"configuration": ""}, "XSCONTAINER_INVALID_ARGUMENT", "configuration"),
        ({"configuration": " %BR% "}, "XSCONTAINER_INVALID_ARGUMENT", "empty"),
        ({"configuration": "a: 1\n%HINEXISTS%\nb: 2\n"}, "XSCONTAINER_INVALID_ARGUMENT",
         "ENDHINEXISTS"),
        ({"sruuid": None}, "XSCONTAINER_INVALID_ARGUMENT", "sruuid"),
    ],
)
def test_bad_input_fails_clearly_and_creates_nothing(
        lab: labctl.Lab, s: Any, restore: None, change: Dict[str, Optional[str]], code: str,
        words: str) -> None:
    vm = vm_of(lab, 0)
    args = {"vmuuid": vm.uuid, "sruuid": shared_sr(lab), "configuration": CONFIG}
    for key, value in change.items():
        if value is None:
            del args[key]
        else:
            args[key] = value
    before = counts(s)
    details = failure(lab, lab.master, FN_CREATE, args)
    assert details[0] == code
    assert words in details[1]
    assert counts(s) == before
    assert drives(s, vm.uuid) == []


def test_reading_something_that_is_not_a_config_drive(lab: labctl.Lab, s: Any) -> None:
    details = failure(lab, lab.master, FN_READ, {"vdiuuid": "00000000-0000-4000-8000-00000000dead"})
    assert details[0] == "XSCONTAINER_CONFIG_DRIVE_FAILED" and "no VDI" in details[1]
    vm = s.xenapi.VM.get_by_uuid(vm_of(lab, 0).uuid)
    disk = next(s.xenapi.VBD.get_VDI(v) for v in s.xenapi.VM.get_VBDs(vm)
                if s.xenapi.VBD.get_userdevice(v) == "0")
    details = failure(lab, lab.master, FN_READ, {"vdiuuid": s.xenapi.VDI.get_uuid(disk)})
    assert details[0] == "XSCONTAINER_CONFIG_DRIVE_FAILED"
    assert "config drive" in details[1]


def test_no_temporary_files_or_secrets_left(lab: labctl.Lab, s: Any, restore: None) -> None:
    vm = vm_of(lab, 0)
    before = set(os.listdir(tempfile.gettempdir()))
    secret = "password-%s" % os.getpid()
    sizes = {h.uuid: log_size(h) for h in lab.hosts}
    ok(lab, lab.master, FN_CREATE, {"vmuuid": vm.uuid, "sruuid": shared_sr(lab),
                                    "configuration": CONFIG + "# %s\n" % secret})
    left = [n for n in set(os.listdir(tempfile.gettempdir())) - before
            if n.startswith("xscontainer")]
    assert left == []
    for host in lab.hosts:
        text = log_since(host, sizes[host.uuid])
        assert secret not in text
        assert "OpaqueRef:" not in text
        assert key_body(lab) not in text
