"""VM.clone and VM.destroy as xapi does them, through the real XenAPI client."""

import pytest
import XenAPI


@pytest.fixture
def api(session):
    return session.xenapi


def test_clone_needs_a_halted_vm_and_copies_settings_and_disks(api, vm):
    with pytest.raises(XenAPI.Failure) as exc:
        api.VM.clone(vm, "copy")
    assert exc.value.details[0] == "VM_BAD_POWER_STATE"
    api.VM.add_to_other_config(vm, "xscontainer-tls-ca-cert", "secret-uuid")
    api.VM.hard_shutdown(vm)
    clone = api.VM.clone(vm, "copy")
    record, original = api.VM.get_record(clone), api.VM.get_record(vm)
    assert record["name_label"] == "copy" and record["power_state"] == "Halted"
    assert record["uuid"] != original["uuid"]
    assert record["other_config"] == original["other_config"]
    disks = [api.VBD.get_VDI(v) for v in record["VBDs"] if api.VBD.get_type(v) == "Disk"]
    originals = [api.VBD.get_VDI(v) for v in original["VBDs"] if api.VBD.get_type(v) == "Disk"]
    assert len(disks) == len(originals) and not set(disks) & set(originals)
    api.VM.start(vm, False, False)


def test_destroy_removes_the_vm_and_its_devices_but_keeps_disks(api, vm):
    api.VM.hard_shutdown(vm)
    clone = api.VM.clone(vm, "doomed")
    vbds = api.VM.get_VBDs(clone)
    disks = [api.VBD.get_VDI(v) for v in vbds if api.VBD.get_type(v) == "Disk"]
    token = getattr(api.event, "from")(["vm"], "", 0.0)["token"]
    api.VM.destroy(clone)
    with pytest.raises(XenAPI.Failure) as exc:
        api.VM.get_record(clone)
    assert exc.value.details[:2] == ["HANDLE_INVALID", "VM"]
    for vbd in vbds:
        with pytest.raises(XenAPI.Failure):
            api.VBD.get_record(vbd)
    for vdi in disks:
        assert api.VDI.get_record(vdi)["uuid"]
    events = getattr(api.event, "from")(["vm"], token, 1.0)["events"]
    assert {"class": "vm", "operation": "del", "ref": clone}.items() <= events[-1].items()
    api.VM.start(vm, False, False)
    with pytest.raises(XenAPI.Failure) as exc:
        api.VM.destroy(vm)
    assert exc.value.details[0] == "VM_BAD_POWER_STATE"
