"""create_config_drive against an in-memory XAPI: what it creates, replaces and
leaves behind when a step fails. The lab tests the same through the plugin; this
covers failures the lab cannot provoke (upload, hot-unplug, full VMs)."""

import io
import itertools
import logging
import os
import tempfile
from typing import IO, Any, Callable, Dict, List, Optional

import pytest
import XenAPI

from xscontainer import errors, iso, poolkey, xapi_keys
from xscontainer.configdrive import functions
from xscontainer.xapi import NULL_REF, Xapi

VM_UUID = "11111111-2222-4333-8444-555555555555"
SR_UUID = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
KEY = "AAAAB3NzaC1yc2EAAAADAQABAAABAQDtest"
CONFIG = "#cloud-config\nhostname: %VMNAMETOHOSTNAME%\nssh_authorized_keys:\n" \
         "  - ssh-rsa %CONTAINERRSAPUB%\n%HINEXISTS%\nhin: %HIN%\n%ENDHINEXISTS%\n"


def fail(*details: str) -> XenAPI.Failure:
    return XenAPI.Failure(list(details))


class FakeApi:
    """Just the XAPI classes and methods create_config_drive uses, with xapi's errors."""

    def __init__(self) -> None:
        self.n = itertools.count(1)
        self.db: Dict[str, Dict[str, Dict[str, Any]]] = {
            c: {} for c in ("VM", "VDI", "VBD", "VIF", "network", "SR", "PBD", "host", "pool")}
        self.calls: List[str] = []
        self.fail_on: Dict[str, XenAPI.Failure] = {}
        self.slots = 16

    def add(self, cls: str, **record: Any) -> str:
        ref = "OpaqueRef:%s-%d" % (cls, next(self.n))
        record.setdefault("uuid", "%s-uuid-%d" % (cls.lower(), next(self.n)))
        record.setdefault("other_config", {})
        self.db[cls][ref] = record
        return ref

    def __getattr__(self, cls: str) -> Any:
        api = self

        class Namespace:
            def __getattr__(self, method: str) -> Callable[..., Any]:
                def call(*args: Any) -> Any:
                    name = "%s.%s" % (cls, method)
                    api.calls.append(name)
                    if name in api.fail_on:
                        raise api.fail_on[name]
                    return api.dispatch(cls, method, list(args))

                return call

        return Namespace()

    def get(self, cls: str, ref: str) -> Dict[str, Any]:
        if ref not in self.db[cls]:
            raise fail("HANDLE_INVALID", cls, ref)
        return self.db[cls][ref]

    def children(self, cls: str, field: str, ref: str) -> List[str]:
        return [r for r, rec in self.db[cls].items() if rec.get(field) == ref]

    def dispatch(self, cls: str, method: str, args: List[Any]) -> Any:
        if method == "get_by_uuid":
            for ref, rec in self.db[cls].items():
                if rec["uuid"] == args[0]:
                    return ref
            raise fail("UUID_INVALID", cls, args[0])
        if method == "get_all":
            return list(self.db[cls])
        if method == "get_all_records":
            return dict(self.db[cls])
        if method == "get_record":
            return dict(self.get(cls, args[0]))
        if method == "add_to_other_config":
            config = self.get(cls, args[0])["other_config"]
            if args[1] in config:
                raise fail("MAP_DUPLICATE_KEY", cls, "other_config", args[0], args[1])
            config[args[1]] = args[2]
            return None
        if method == "remove_from_other_config":
            self.get(cls, args[0])["other_config"].pop(args[1], None)
            return None
        if method == "get_VBDs":
            return self.children("VBD", "VM", args[0])
        if method == "get_VIFs":
            return self.children("VIF", "VM", args[0])
        if method == "get_PBDs":
            return self.children("PBD", "SR", args[0])
        if method == "get_allowed_VBD_devices":
            used = {self.db["VBD"][v]["userdevice"] for v in self.children("VBD", "VM", args[0])}
            return [str(n) for n in range(self.slots) if str(n) not in used]
        if method == "get_allowed_VIF_devices":
            used = {self.db["VIF"][v]["device"] for v in self.children("VIF", "VM", args[0])}
            return [str(n) for n in range(self.slots) if str(n) not in used]
        if method == "create":
            record = dict(args[0])
            if cls == "VBD":
                used = {self.db["VBD"][v]["userdevice"]
                        for v in self.children("VBD", "VM", record["VM"])}
                if record["userdevice"] in used:
                    raise fail("DEVICE_ALREADY_EXISTS", record["userdevice"])
                record["currently_attached"] = False
            return self.add(cls, **record)
        if method == "destroy":
            self.get(cls, args[0])
            if cls == "VBD" and self.db["VBD"][args[0]]["currently_attached"]:
                raise fail("OPERATION_NOT_ALLOWED", "attached")
            if cls == "VDI":
                for vbd in self.children("VBD", "VDI", args[0]):
                    if self.db["VBD"][vbd]["currently_attached"]:
                        raise fail("VDI_IN_USE", args[0], "destroy")
                    del self.db["VBD"][vbd]
            del self.db[cls][args[0]]
            return None
        if method in ("plug", "unplug"):
            self.get(cls, args[0])["currently_attached"] = method == "plug"
            return None
        if method.startswith("get_"):
            return self.get(cls, args[0])[method[4:]]
        raise AssertionError("unexpected call %s.%s" % (cls, method))


class FakeSession:
    def __init__(self, api: FakeApi) -> None:
        self.xenapi = api
        self._session = "OpaqueRef:session"
        self.transport = None


class FakeXapi(Xapi):
    def __init__(self, api: FakeApi, host: str) -> None:
        super().__init__(FakeSession(api), owned=False)
        self._this_host = host
        self.fake = api
        self.uploads: Dict[str, bytes] = {}
        self.upload_error: Optional[Exception] = None

    def import_raw_vdi(self, vdi_ref: str, source: IO[bytes], size: int,
                       timeout: float = 300.0) -> None:
        if self.upload_error is not None:
            raise self.upload_error
        data = source.read(size)
        assert len(data) == size == int(self.fake.db["VDI"][vdi_ref]["virtual_size"])
        self.uploads[vdi_ref] = data

    def export_raw_vdi(self, vdi_ref: str, max_bytes: int, timeout: float = 300.0) -> bytes:
        return self.uploads[vdi_ref][:max_bytes]


class Pool:
    def __init__(self, running: bool = True, hin_vif: bool = False) -> None:
        self.api = api = FakeApi()
        self.host = api.add("host")
        self.other_host = api.add("host")
        api.add("pool", other_config={})
        self.sr = api.add("SR", uuid=SR_UUID)
        api.add("PBD", SR=self.sr, host=self.host, currently_attached=True)
        self.xenbr = api.add("network", bridge="xenbr0")
        self.himn = api.add("network", bridge="xenapi")
        self.vm = api.add("VM", uuid=VM_UUID, name_label="Web VM 1",
                          power_state="Running" if running else "Halted")
        disk = api.add("VDI", SR=self.sr, virtual_size="1000")
        api.add("VBD", VM=self.vm, VDI=disk, userdevice="0", currently_attached=running)
        api.add("VBD", VM=self.vm, VDI=NULL_REF, userdevice="3", currently_attached=running)
        api.add("VIF", VM=self.vm, network=self.xenbr, device="0")
        if hin_vif:
            api.add("VIF", VM=self.vm, network=self.himn, device="2")
        self.xapi = FakeXapi(api, self.host)

    def create(self, configuration: str = CONFIG) -> str:
        return functions.create_config_drive(
            self.xapi, {"vmuuid": VM_UUID, "sruuid": SR_UUID, "configuration": configuration})

    def drives(self) -> List[Dict[str, Any]]:
        return [rec for rec in self.api.db["VBD"].values()
                if rec["other_config"].get("config-drive") == "True"]

    def counts(self) -> Dict[str, int]:
        return {c: len(self.api.db[c]) for c in ("VDI", "VBD", "VIF")}

    def user_data(self, vdi_uuid: str) -> str:
        ref = self.api.dispatch("VDI", "get_by_uuid", [vdi_uuid])
        reader = iso.IsoReader(io.BytesIO(self.xapi.uploads[ref]))
        return reader.read("openstack/latest/user_data", 1 << 20).decode()


@pytest.fixture(autouse=True)
def pool_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(poolkey, "public_key_line", lambda xapi: "ssh-rsa %s pool" % KEY)


@pytest.fixture(autouse=True)
def no_tools_iso(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("XSCONTAINER_TOOLS_ISO_DIR", str(tmp_path / "none"))
    monkeypatch.setenv("XSCONTAINER_FILES_DIR", str(tmp_path / "none"))


def test_creates_attaches_plugs_and_seeds_the_monitor_key() -> None:
    pool = Pool()
    vdi_uuid = pool.create()
    vdi = pool.api.dispatch("VDI", "get_by_uuid", [vdi_uuid])
    record = pool.api.db["VDI"][vdi]
    assert record["name_label"] == "Automatic Config Drive"
    assert record["type"] == "system"
    assert record["other_config"] == {"config-drive": "True"}
    assert int(record["virtual_size"]) % (2 << 20) == 0
    [vbd] = pool.drives()
    assert vbd["VDI"] == vdi
    assert (vbd["mode"], vbd["type"], vbd["bootable"], vbd["userdevice"]) == ("RO", "Disk",
                                                                              False, "1")
    assert vbd["currently_attached"] is True  # running VM: plugged
    assert pool.api.db["VM"][pool.vm]["other_config"] == {"xscontainer-monitor": "False"}
    text = pool.user_data(vdi_uuid)
    assert "hostname: webvm1\n" in text and "ssh-rsa %s\n" % KEY in text
    assert "HIN" not in text


def test_second_create_replaces_the_first() -> None:
    pool = Pool()
    first = pool.create()
    before = pool.counts()
    second = pool.create()
    assert first != second
    assert pool.counts() == before
    [vbd] = pool.drives()
    assert vbd["userdevice"] == "1"  # the freed slot is reused
    assert pool.api.db["VDI"][vbd["VDI"]]["uuid"] == second
    assert "VBD.unplug" in pool.api.calls


def test_drive_flagged_only_on_its_vdi_is_replaced_too() -> None:
    pool = Pool(running=False)
    old_vdi = pool.api.add("VDI", SR=pool.sr, virtual_size="2",
                           other_config={"config-drive": "true"})
    pool.api.add("VBD", VM=pool.vm, VDI=old_vdi, userdevice="5", currently_attached=False)
    pool.create()
    assert old_vdi not in pool.api.db["VDI"]
    assert [v["userdevice"] for v in pool.api.db["VBD"].values()
            if v["VM"] == pool.vm] == ["0", "3", "1"]


def test_monitor_key_never_overwritten_and_not_seeded_for_a_commented_key() -> None:
    pool = Pool()
    pool.api.db["VM"][pool.vm]["other_config"]["xscontainer-monitor"] = "True"
    pool.create()
    assert pool.api.db["VM"][pool.vm]["other_config"]["xscontainer-monitor"] == "True"

    pool = Pool()
    pool.create(CONFIG.replace("  - ssh-rsa", "  # - ssh-rsa"))
    assert "xscontainer-monitor" not in pool.api.db["VM"][pool.vm]["other_config"]


def test_hin_vif_keeps_the_block() -> None:
    pool = Pool(hin_vif=True)
    text = pool.user_data(pool.create())
    assert "\nhin: 2\n" in text and "%" not in text


def test_pool_preference_adds_a_hin_vif_and_failure_removes_it() -> None:
    pool = Pool()
    pool.api.db["pool"][next(iter(pool.api.db["pool"]))]["other_config"][
        xapi_keys.USE_HOST_INTERNAL_NETWORK] = "true"
    before = pool.counts()
    pool.xapi.upload_error = errors.XAPIError("disk full")
    with pytest.raises(errors.ConfigDriveError, match="Uploading the config drive failed"):
        pool.create()
    assert pool.counts() == before  # the VIF and the VDI are gone again
    pool.xapi.upload_error = None
    text = pool.user_data(pool.create())
    [vif] = [v for v in pool.api.db["VIF"].values() if v["network"] == pool.himn]
    assert vif["device"] == "1" and vif["VM"] == pool.vm
    assert "\nhin: 1\n" in text
    assert pool.api.db["network"][pool.himn]["other_config"] == {"ip_disable_gw": "true"}


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
def test_bad_input_creates_nothing(args: Dict[str, str], error: type, code_word: str) -> None:
    pool = Pool()
    before = pool.counts()
    full = {"vmuuid": VM_UUID, "sruuid": SR_UUID, "configuration": CONFIG}
    full.update(args)
    with pytest.raises(error) as raised:
        functions.create_config_drive(pool.xapi, full)
    assert code_word in str(raised.value)
    assert pool.counts() == before
    assert not [c for c in pool.api.calls if c.endswith(".create")]


def test_sr_not_attached_to_this_host() -> None:
    pool = Pool()
    pool.xapi._this_host = pool.other_host
    with pytest.raises(errors.ConfigDriveError, match="is not attached to host"):
        pool.create()
    assert pool.drives() == []


def test_no_free_userdevice_is_refused_before_anything_is_made() -> None:
    pool = Pool()
    pool.api.slots = 4  # 0 disk, 3 CD: fill 1 and 2
    for device in ("1", "2"):
        pool.api.add("VBD", VM=pool.vm, VDI=NULL_REF, userdevice=device, currently_attached=True)
    before = pool.counts()
    with pytest.raises(errors.ConfigDriveError, match="no free disk slot"):
        pool.create()
    assert pool.counts() == before
    assert "VDI.create" not in pool.api.calls


def test_full_vm_with_an_old_drive_reuses_its_slot() -> None:
    pool = Pool()
    pool.api.slots = 4
    pool.create()
    pool.api.add("VBD", VM=pool.vm, VDI=NULL_REF, userdevice="2", currently_attached=True)
    pool.create()
    assert [d["userdevice"] for d in pool.drives()] == ["1"]


def test_unplug_refused_keeps_the_old_drive_and_removes_the_new_disk() -> None:
    pool = Pool()
    first = pool.create()
    before = pool.counts()
    pool.api.fail_on["VBD.unplug"] = fail("DEVICE_DETACH_REJECTED", "VBD", "x", "in use")
    with pytest.raises(errors.ConfigDriveError, match=r"shut VM .* down"):
        pool.create()
    assert pool.counts() == before
    [vbd] = pool.drives()
    assert pool.api.db["VDI"][vbd["VDI"]]["uuid"] == first


def test_vbd_create_failure_removes_the_new_disk() -> None:
    pool = Pool(running=False)
    before = pool.counts()
    pool.api.fail_on["VBD.create"] = fail("SR_BACKEND_FAILURE", "boom")
    with pytest.raises(errors.XAPIError):
        pool.create()
    assert pool.counts() == before


def test_plug_failure_is_only_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    pool = Pool()
    pool.api.fail_on["VBD.plug"] = fail("VM_MISSING_PV_DRIVERS", "vm")
    with caplog.at_level(logging.WARNING):
        pool.create()
    [vbd] = pool.drives()
    assert vbd["currently_attached"] is False
    assert "next boot" in caplog.text


def test_nothing_secret_or_configured_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    pool = Pool()
    with caplog.at_level(logging.DEBUG):
        pool.create(CONFIG + "password: hunter2-secret\n")
    assert "hunter2" not in caplog.text
    assert KEY not in caplog.text
    assert "OpaqueRef:session" not in caplog.text


def test_temporary_files_are_removed(monkeypatch: pytest.MonkeyPatch) -> None:
    made: List[str] = []
    real_mkdtemp = tempfile.mkdtemp

    def mkdtemp(*args: Any, **kwargs: Any) -> str:
        made.append(real_mkdtemp(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    pool = Pool()
    pool.create()
    pool.xapi.upload_error = errors.XAPIError("disk full")
    with pytest.raises(errors.ConfigDriveError):
        pool.create()
    assert len(made) == 2
    assert [os.path.exists(d) for d in made] == [False, False]


def test_get_configuration_reads_the_template_back() -> None:
    pool = Pool()
    configuration = CONFIG.replace("\n", "%BR%")
    vdi_uuid = pool.create(configuration)
    text = functions.get_config_drive_configuration(pool.xapi, {"vdiuuid": vdi_uuid})
    assert text == CONFIG  # %BR% decoded; returned with LF as clients expect
    with pytest.raises(errors.ConfigDriveError, match="no VDI"):
        functions.get_config_drive_configuration(pool.xapi, {"vdiuuid": "nope"})
    big = pool.api.add("VDI", SR=pool.sr, virtual_size=str(10 << 30))
    with pytest.raises(errors.ConfigDriveError, match="too large"):
        functions.get_config_drive_configuration(
            pool.xapi, {"vdiuuid": pool.api.db["VDI"][big]["uuid"]})
