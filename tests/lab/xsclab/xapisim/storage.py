"""VDIs (each backed by a sparse file under <lab dir>/srs/<sr uuid>/) and VBDs."""

import os
from typing import Any, Dict

from .api import Api, Call
from .errors import NULL_REF, ApiError, bad_power_state
from .schema import CLASSES, OTHER_CONFIG, record_from_client
from .store import Store, new_uuid
from .vm import device_name

USERDEVICE_SLOTS = 16


def vdi_file(lab_dir: str, store: Store, vdi_ref: str) -> str:
    vdi = store.get("VDI", vdi_ref)
    sr_uuid = store.get("SR", vdi["SR"])["uuid"]
    return os.path.join(lab_dir, "srs", sr_uuid, vdi["uuid"] + ".img")


def create_vdi_file(path: str, size: int) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.truncate(size)


def _valid_userdevice(device: str) -> bool:
    """Numbers 0-15, or xvdX / hdX / sdX names, as xapi's VBD.create accepts."""
    if device.isdigit():
        return int(device) < USERDEVICE_SLOTS
    for prefix in ("xvd", "hd", "sd"):
        rest = device[len(prefix):]
        if device.startswith(prefix) and rest and "a" <= rest[0] <= "p":
            return rest[1:] == "" or rest[1:].isdigit()
    return False


def _removable(ref: str, vbd: Dict[str, Any]) -> None:
    if vbd["type"] != "CD":
        raise ApiError("VBD_NOT_REMOVABLE_MEDIA", ref)


def _running_vm(call: Call, vbd: Dict[str, Any]) -> None:
    vm = call.store.get("VM", vbd["VM"])
    if vm["power_state"] != "Running":
        raise bad_power_state(vbd["VM"], "running", vm["power_state"])


def register(api: Api) -> None:
    @api.method("VDI.create")
    def vdi_create(call: Call, args: Any) -> str:
        values = record_from_client(
            "VDI", args,
            required=("name_label", "name_description", "SR", "virtual_size", "type",
                      "sharable", "read_only", OTHER_CONFIG),
            optional=("xenstore_data", "sm_config", "tags"),
        )
        call.store.get("SR", values["SR"])
        if int(values["virtual_size"]) < 0:
            raise ApiError("INVALID_VALUE", "virtual_size", values["virtual_size"])
        uuid = new_uuid()
        ref = call.store.create("VDI", CLASSES["VDI"].new_record(uuid, location=uuid, **values))
        create_vdi_file(vdi_file(call.config.lab_dir, call.store, ref),
                        int(values["virtual_size"]))
        return ref

    @api.method("VDI.destroy")
    def vdi_destroy(call: Call, vdi: Any) -> None:
        path = vdi_file(call.config.lab_dir, call.store, vdi)
        vbds = call.store.children("VBD", "VDI", vdi)
        if any(call.store.get("VBD", v)["currently_attached"] for v in vbds):
            raise ApiError("VDI_IN_USE", vdi, "destroy")
        call.store.destroy("VDI", vdi)
        for vbd in vbds:  # xapi destroys the (detached) VBDs at once too
            call.store.destroy("VBD", vbd)
        if os.path.exists(path):
            os.unlink(path)

    @api.method("VBD.create")
    def vbd_create(call: Call, args: Any) -> str:
        values = record_from_client(
            "VBD", args,
            required=("VM", "VDI", "userdevice", "bootable", "mode", "type", "empty",
                      OTHER_CONFIG, "qos_algorithm_type", "qos_algorithm_params"),
            optional=("unpluggable", "device"),
        )
        store = call.store
        store.get("VM", values["VM"])
        if not values["empty"] or values["VDI"] != NULL_REF:
            store.get("VDI", values["VDI"])
        siblings = store.children("VBD", "VM", values["VM"])
        used = [store.get("VBD", v)["userdevice"] for v in siblings]
        if values["userdevice"] == "autodetect":
            free = [str(n) for n in range(USERDEVICE_SLOTS) if str(n) not in used]
            if not free:
                raise ApiError("INVALID_DEVICE", "autodetect")
            values["userdevice"] = free[0]
        elif not _valid_userdevice(values["userdevice"]):
            raise ApiError("INVALID_DEVICE", values["userdevice"])
        elif values["userdevice"] in used:
            raise ApiError("DEVICE_ALREADY_EXISTS", values["userdevice"])
        return store.create("VBD", CLASSES["VBD"].new_record(new_uuid(), **values))

    @api.method("VBD.destroy")
    def vbd_destroy(call: Call, vbd: Any) -> None:
        record = call.store.get("VBD", vbd)
        if record["currently_attached"]:
            vm_uuid = call.store.get("VM", record["VM"])["uuid"]
            raise ApiError("OPERATION_NOT_ALLOWED",
                           "VBD '%s' still attached to '%s'" % (record["uuid"], vm_uuid))
        call.store.destroy("VBD", vbd)

    @api.method("VBD.plug")
    def vbd_plug(call: Call, vbd: Any) -> None:
        record = call.store.get("VBD", vbd)
        _running_vm(call, record)
        if record["currently_attached"]:
            raise ApiError("DEVICE_ALREADY_ATTACHED", vbd)
        call.store.update("VBD", vbd, currently_attached=True,
                          device=device_name(record["userdevice"]))
        call.store.touch(record["VM"])

    @api.method("VBD.unplug")
    def vbd_unplug(call: Call, vbd: Any) -> None:
        record = call.store.get("VBD", vbd)
        _running_vm(call, record)
        if not record["currently_attached"]:
            raise ApiError("DEVICE_ALREADY_DETACHED", vbd)
        if not record["unpluggable"]:
            raise ApiError("VBD_NOT_UNPLUGGABLE", vbd)
        call.store.update("VBD", vbd, currently_attached=False)
        call.store.touch(record["VM"])

    @api.method("VBD.insert")
    def vbd_insert(call: Call, vbd: Any, vdi: Any) -> None:
        record = call.store.get("VBD", vbd)
        call.store.get("VDI", vdi)
        _removable(vbd, record)
        if not record["empty"]:
            raise ApiError("VBD_NOT_EMPTY", vbd)
        call.store.update("VBD", vbd, VDI=vdi, empty=False)
        call.store.touch(record["VM"])

    @api.method("VBD.eject")
    def vbd_eject(call: Call, vbd: Any) -> None:
        record = call.store.get("VBD", vbd)
        _removable(vbd, record)
        if record["empty"]:
            raise ApiError("VBD_IS_EMPTY", vbd)
        call.store.update("VBD", vbd, VDI=NULL_REF, empty=True)
        call.store.touch(record["VM"])
