"""create_config_drive against the in-memory XAPI (fakexapi.py): what it creates,
replaces and leaves behind when a step fails. The lab tests the same through the plugin; this
covers failures the lab cannot provoke (upload, hot-unplug, full VMs)."""

import contextlib
import io
import logging
import os
import tempfile
from typing import Any, Callable, Dict, Iterator, List

import pytest

from xscontainer import errors, iso, poolkey, xapi_keys
from xscontainer.configdrive import functions
from xscontainer.xapi import NULL_REF

from .fakexapi import FakeXapiServer, failure

VM_UUID = "11111111-2222-4333-8444-555555555555"
SR_UUID = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
KEY = "AAAAB3NzaC1yc2EAAAADAQABAAABAQDtest"
CONFIG = "#cloud-config\nhostname: %VMNAMETOHOSTNAME%\nssh_authorized_keys:\n" \
         "  - ssh-rsa %CONTAINERRSAPUB%\n%HINEXISTS%\nhin: %HIN%\n%ENDHINEXISTS%\n"


class Pool:
    """A pool with one host's SR, a VM with a disk, a CD drive and a VIF, and the
    Xapi the plugin would have on that host."""

    def __init__(self, running: bool = True, hin_vif: bool = False) -> None:
        self.server = server = FakeXapiServer()
        self.host = server.add("host")
        self.other_host = server.add("host")
        server.add("pool", master=self.host)
        self.sr = server.add("SR", uuid=SR_UUID)
        server.add("PBD", SR=self.sr, host=self.host, currently_attached=True)
        self.xenbr = server.add("network", bridge="xenbr0")
        self.himn = server.add("network", bridge="xenapi")
        self.vm = server.add("VM", uuid=VM_UUID, name_label="Web VM 1",
                             power_state="Running" if running else "Halted",
                             resident_on=self.host if running else NULL_REF)
        disk = server.add("VDI", SR=self.sr, virtual_size="1000")
        server.add("VBD", VM=self.vm, VDI=disk, userdevice="0", currently_attached=running)
        server.add("VBD", VM=self.vm, VDI=NULL_REF, userdevice="3", type="CD", mode="RO",
                   empty=True, currently_attached=running)
        server.add("VIF", VM=self.vm, network=self.xenbr, device="0")
        if hin_vif:
            server.add("VIF", VM=self.vm, network=self.himn, device="2")
        self.xapi = server.xapi(this_host=self.host)

    def create(self, configuration: str = CONFIG) -> str:
        return functions.create_config_drive(
            self.xapi, {"vmuuid": VM_UUID, "sruuid": SR_UUID, "configuration": configuration})

    def drives(self) -> List[Dict[str, Any]]:
        return [rec for rec in self.server.records("VBD").values()
                if rec["other_config"].get("config-drive") == "True"]

    def counts(self) -> Dict[str, int]:
        return {c: len(self.server.records(c)) for c in ("VDI", "VBD", "VIF")}

    def user_data(self, vdi_uuid: str) -> str:
        ref = self.server.ref_of("VDI", vdi_uuid)
        reader = iso.IsoReader(io.BytesIO(self.server.vdi_data[ref]))
        return reader.read("openstack/latest/user_data", 1 << 20).decode()


@pytest.fixture
def make_pool(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Pool]]:
    """Pool(...), its XAPI also on the socket the raw VDI transfers use."""
    with contextlib.ExitStack() as served:
        def make(running: bool = True, hin_vif: bool = False) -> Pool:
            pool = Pool(running, hin_vif)
            served.enter_context(pool.server.local(monkeypatch))
            return pool

        yield make


@pytest.fixture(autouse=True)
def pool_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(poolkey, "public_key_line", lambda xapi: "ssh-rsa %s pool" % KEY)


@pytest.fixture(autouse=True)
def no_tools_iso(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("XSCONTAINER_TOOLS_ISO_DIR", str(tmp_path / "none"))
    monkeypatch.setenv("XSCONTAINER_FILES_DIR", str(tmp_path / "none"))


def test_creates_attaches_plugs_and_seeds_the_monitor_key(make_pool: Callable[..., Pool]) -> None:
    pool = make_pool()
    vdi_uuid = pool.create()
    vdi = pool.server.ref_of("VDI", vdi_uuid)
    record = pool.server.record("VDI", vdi)
    assert record["name_label"] == "Automatic Config Drive"
    assert record["type"] == "system"
    assert record["other_config"] == {"config-drive": "True"}
    assert int(record["virtual_size"]) % (2 << 20) == 0
    assert len(pool.server.vdi_data[vdi]) == int(record["virtual_size"])  # all of it uploaded
    [vbd] = pool.drives()
    assert vbd["VDI"] == vdi
    assert (vbd["mode"], vbd["type"], vbd["bootable"], vbd["userdevice"]) == ("RO", "Disk",
                                                                              False, "1")
    assert vbd["currently_attached"] is True  # running VM: plugged
    assert pool.server.record("VM", pool.vm)["other_config"] == {"xscontainer-monitor": "False"}
    text = pool.user_data(vdi_uuid)
    assert "hostname: webvm1\n" in text and "ssh-rsa %s\n" % KEY in text
    assert "HIN" not in text


def test_second_create_replaces_the_first(make_pool: Callable[..., Pool]) -> None:
    pool = make_pool()
    first = pool.create()
    before = pool.counts()
    second = pool.create()
    assert first != second
    assert pool.counts() == before
    [vbd] = pool.drives()
    assert vbd["userdevice"] == "1"  # the freed slot is reused
    assert pool.server.record("VDI", vbd["VDI"])["uuid"] == second
    assert "VBD.unplug" in pool.server.methods()


def test_drive_flagged_only_on_its_vdi_is_replaced_too(make_pool: Callable[..., Pool]) -> None:
    pool = make_pool(running=False)
    old_vdi = pool.server.add("VDI", SR=pool.sr, virtual_size="2",
                              other_config={"config-drive": "true"})
    pool.server.add("VBD", VM=pool.vm, VDI=old_vdi, userdevice="5", currently_attached=False)
    pool.create()
    assert old_vdi not in pool.server.records("VDI")
    assert [v["userdevice"] for v in pool.server.records("VBD").values()
            if v["VM"] == pool.vm] == ["0", "3", "1"]


def test_monitor_key_never_overwritten_and_not_seeded_for_a_commented_key(
        make_pool: Callable[..., Pool]) -> None:
    pool = make_pool()
    pool.server.record("VM", pool.vm)["other_config"]["xscontainer-monitor"] = "True"
    pool.create()
    assert pool.server.record("VM", pool.vm)["other_config"]["xscontainer-monitor"] == "True"

    pool = make_pool()
    pool.create(CONFIG.replace("  - ssh-rsa", "  # - ssh-rsa"))
    assert "xscontainer-monitor" not in pool.server.record("VM", pool.vm)["other_config"]


def test_hin_vif_keeps_the_block(make_pool: Callable[..., Pool]) -> None:
    pool = make_pool(hin_vif=True)
    text = pool.user_data(pool.create())
    assert "\nhin: 2\n" in text and "%" not in text


def test_pool_preference_adds_a_hin_vif_and_failure_removes_it(
        make_pool: Callable[..., Pool]) -> None:
    pool = make_pool()
    [pool_ref] = pool.server.records("pool")
    pool.server.record("pool", pool_ref)["other_config"][
        xapi_keys.USE_HOST_INTERNAL_NETWORK] = "true"
    before = pool.counts()
    pool.server.fail_on["import_raw_vdi"] = failure("SR_BACKEND_FAILURE", "disk full")
    with pytest.raises(errors.ConfigDriveError, match="Uploading the config drive failed"):
        pool.create()
    assert pool.counts() == before  # the VIF and the VDI are gone again
    del pool.server.fail_on["import_raw_vdi"]
    text = pool.user_data(pool.create())
    [vif] = [v for v in pool.server.records("VIF").values() if v["network"] == pool.himn]
    assert vif["device"] == "1" and vif["VM"] == pool.vm
    assert "\nhin: 1\n" in text
    assert pool.server.record("network", pool.himn)["other_config"] == {"ip_disable_gw": "true"}


@pytest.mark.parametrize(
    "args, error, code_word",
    [
        ({"vmuuid": "00000000-0000-4000-8000-000000000000"}, errors.VMNotFound, "no VM"),
        ({"sruuid": "00000000-0000-4000-8000-000000000000"}, errors.ConfigDriveError, "no SR"),
        ({"configuration": "  \n"}, errors.InvalidArgument, "empty"),
        ({"configuration": " %BR%%BR% "}, errors.InvalidArgument, "empty"),
        ({"configuration": "%HINEXISTS%\nx: 1\n"}, errors.InvalidArgument, "ENDHINEXISTS"),
    ],
)
def test_bad_input_creates_nothing(make_pool: Callable[..., Pool], args: Dict[str, str],
                                   error: type, code_word: str) -> None:
    pool = make_pool()
    before = pool.counts()
    full = {"vmuuid": VM_UUID, "sruuid": SR_UUID, "configuration": CONFIG}
    full.update(args)
    with pytest.raises(error) as raised:
        functions.create_config_drive(pool.xapi, full)
    assert code_word in str(raised.value)
    assert pool.counts() == before
    assert not [m for m in pool.server.methods() if m.endswith(".create")]


def test_sr_not_attached_to_this_host(make_pool: Callable[..., Pool]) -> None:
    pool = make_pool()
    pool.xapi = pool.server.xapi(this_host=pool.other_host)
    with pytest.raises(errors.ConfigDriveError, match="is not attached to host"):
        pool.create()
    assert pool.drives() == []


def test_no_free_userdevice_is_refused_before_anything_is_made(
        make_pool: Callable[..., Pool]) -> None:
    pool = make_pool()
    pool.server.device_slots = 4  # 0 disk, 3 CD: fill 1 and 2
    for device in ("1", "2"):
        pool.server.add("VBD", VM=pool.vm, VDI=NULL_REF, userdevice=device, type="CD",
                        empty=True, currently_attached=True)
    before = pool.counts()
    with pytest.raises(errors.ConfigDriveError, match="no free disk slot"):
        pool.create()
    assert pool.counts() == before
    assert "VDI.create" not in pool.server.methods()


def test_full_vm_with_an_old_drive_reuses_its_slot(make_pool: Callable[..., Pool]) -> None:
    pool = make_pool()
    pool.server.device_slots = 4
    pool.create()
    pool.server.add("VBD", VM=pool.vm, VDI=NULL_REF, userdevice="2", type="CD", empty=True,
                    currently_attached=True)
    pool.create()
    assert [d["userdevice"] for d in pool.drives()] == ["1"]


def test_unplug_refused_keeps_the_old_drive_and_removes_the_new_disk(
        make_pool: Callable[..., Pool]) -> None:
    pool = make_pool()
    first = pool.create()
    before = pool.counts()
    pool.server.fail_on["VBD.unplug"] = failure("DEVICE_DETACH_REJECTED", "VBD", "x", "in use")
    with pytest.raises(errors.ConfigDriveError, match=r"shut VM .* down"):
        pool.create()
    assert pool.counts() == before
    [vbd] = pool.drives()
    assert pool.server.record("VDI", vbd["VDI"])["uuid"] == first


def test_vbd_create_failure_removes_the_new_disk(make_pool: Callable[..., Pool]) -> None:
    pool = make_pool(running=False)
    before = pool.counts()
    pool.server.fail_on["VBD.create"] = failure("SR_BACKEND_FAILURE", "boom")
    with pytest.raises(errors.XAPIError):
        pool.create()
    assert pool.counts() == before


def test_plug_failure_is_only_a_warning(make_pool: Callable[..., Pool],
                                        caplog: pytest.LogCaptureFixture) -> None:
    pool = make_pool()
    pool.server.fail_on["VBD.plug"] = failure("VM_MISSING_PV_DRIVERS", "vm")
    with caplog.at_level(logging.WARNING):
        pool.create()
    [vbd] = pool.drives()
    assert vbd["currently_attached"] is False
    assert "next boot" in caplog.text


def test_nothing_secret_or_configured_is_logged(make_pool: Callable[..., Pool],
                                                caplog: pytest.LogCaptureFixture) -> None:
    pool = make_pool()
    with caplog.at_level(logging.DEBUG):
        pool.create(CONFIG + "password: hunter2-secret\n")
    assert "hunter2" not in caplog.text
    assert KEY not in caplog.text
    assert pool.xapi.session_ref not in caplog.text


def test_temporary_files_are_removed(make_pool: Callable[..., Pool],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    made: List[str] = []
    real_mkdtemp = tempfile.mkdtemp

    def mkdtemp(*args: Any, **kwargs: Any) -> str:
        made.append(real_mkdtemp(*args, **kwargs))
        return made[-1]

    pool = make_pool()
    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    pool.create()
    pool.server.fail_on["import_raw_vdi"] = failure("SR_BACKEND_FAILURE", "disk full")
    with pytest.raises(errors.ConfigDriveError):
        pool.create()
    assert len(made) == 2
    assert [os.path.exists(d) for d in made] == [False, False]


def test_get_configuration_reads_the_template_back(make_pool: Callable[..., Pool]) -> None:
    pool = make_pool()
    configuration = CONFIG.replace("\n", "%BR%")
    vdi_uuid = pool.create(configuration)
    text = functions.get_config_drive_configuration(pool.xapi, {"vdiuuid": vdi_uuid})
    assert text == CONFIG  # %BR% decoded; returned with LF as clients expect
    with pytest.raises(errors.ConfigDriveError, match="no VDI"):
        functions.get_config_drive_configuration(pool.xapi, {"vdiuuid": "nope"})
    big = pool.server.add("VDI", SR=pool.sr, virtual_size=str(10 << 30))
    with pytest.raises(errors.ConfigDriveError, match="too large"):
        functions.get_config_drive_configuration(
            pool.xapi, {"vdiuuid": pool.server.record("VDI", big)["uuid"]})
