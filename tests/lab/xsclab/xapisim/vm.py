"""VM power operations (XAPI state only: the guests are simulated elsewhere),
guest metrics, VIFs, and the lab's control of a VM's guest networks."""

import copy
import random
from typing import Any, Dict, List

from .api import Api, Call
from .errors import NULL_REF, ApiError, bad_power_state, field_type_error
from .schema import CLASSES, MAP, OTHER_CONFIG, Field, now_date, record_from_client
from .store import Store, new_uuid

RUNNING_STATES = ("Running", "Paused")
DEVICE_SLOTS = 16  # userdevice / VIF device numbers 0..15


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise field_type_error(name)
    return value


def _vm(call: Call, ref: Any) -> Dict[str, Any]:
    vm = call.store.get("VM", ref)
    if vm["is_a_template"] or vm["is_a_snapshot"]:
        raise ApiError("VM_IS_TEMPLATE", ref)
    return vm


def _require(ref: str, vm: Dict[str, Any], states: tuple) -> None:
    if vm["power_state"] not in states:
        raise bad_power_state(ref, ", ".join(s.lower() for s in states), vm["power_state"])


def device_name(userdevice: str) -> str:
    """userdevice "0" -> "xvda", as a PV disk appears in the guest."""
    if userdevice.isdigit() and int(userdevice) < 26:
        return "xvd" + chr(ord("a") + int(userdevice))
    return userdevice


def apply_guest_networks(store: Store, vm_ref: str) -> None:
    """Make the VM's guest metrics reflect the networks the lab gave it: none
    while halted or when the map is empty, else a VM_guest_metrics with them."""
    vm = store.get("VM", vm_ref)
    networks = store.lab["guest_networks"].get(vm_ref, {})
    metrics = vm["guest_metrics"]
    if vm["power_state"] not in RUNNING_STATES or not networks:
        if metrics != NULL_REF:
            store.update("VM", vm_ref, guest_metrics=NULL_REF)
            store.destroy("VM_guest_metrics", metrics)
    elif metrics == NULL_REF:
        record = CLASSES["VM_guest_metrics"].new_record(
            new_uuid(), networks=dict(networks), last_updated=now_date(),
            PV_drivers_detected=True, PV_drivers_up_to_date=True,
            os_version={"name": "Linux (xscontainer lab)", "distro": "lab"},
            PV_drivers_version={"major": "8", "minor": "3", "micro": "0"},
        )
        store.update("VM", vm_ref, guest_metrics=store.create("VM_guest_metrics", record))
    else:
        store.update("VM_guest_metrics", metrics, networks=dict(networks),
                     last_updated=now_date())
        store.touch(vm_ref)


def _boot(store: Store, ref: str, host: str, paused: bool) -> None:
    domid = store.lab.get("next_domid", 1)
    store.lab["next_domid"] = domid + 1
    store.update("VM", ref, power_state="Paused" if paused else "Running",
                 resident_on=host, domid=str(domid))
    for vbd in store.children("VBD", "VM", ref):
        userdevice = store.get("VBD", vbd)["userdevice"]
        store.update("VBD", vbd, currently_attached=True, device=device_name(userdevice))
    for vif in store.children("VIF", "VM", ref):
        store.update("VIF", vif, currently_attached=True)
    apply_guest_networks(store, ref)


def _halt(store: Store, ref: str) -> None:
    store.update("VM", ref, power_state="Halted", resident_on=NULL_REF, domid="-1")
    for cls in ("VBD", "VIF"):
        for child in store.children(cls, "VM", ref):
            store.update(cls, child, currently_attached=False)
    apply_guest_networks(store, ref)


def _default_host(call: Call, vm: Dict[str, Any]) -> str:
    if call.store.exists("host", vm["affinity"]):
        return vm["affinity"]
    return call.store.objects["pool"][call.store.refs("pool")[0]]["master"]


def _free_devices(used: List[str]) -> List[str]:
    return [str(n) for n in range(DEVICE_SLOTS) if str(n) not in used]


def register(api: Api) -> None:
    @api.method("VM.start")
    def start(call: Call, vm: Any, paused: Any, force: Any) -> None:
        paused = _bool("paused", paused)
        _bool("force", force)
        record = _vm(call, vm)
        _require(vm, record, ("Halted",))
        _boot(call.store, vm, _default_host(call, record), paused)

    @api.method("VM.start_on")
    def start_on(call: Call, vm: Any, host: Any, paused: Any, force: Any) -> None:
        paused = _bool("paused", paused)
        _bool("force", force)
        record = _vm(call, vm)
        call.store.get("host", host)
        _require(vm, record, ("Halted",))
        _boot(call.store, vm, host, paused)

    @api.method("VM.clean_shutdown")
    def clean_shutdown(call: Call, vm: Any) -> None:
        _require(vm, _vm(call, vm), ("Running",))
        _halt(call.store, vm)

    @api.method("VM.hard_shutdown")
    def hard_shutdown(call: Call, vm: Any) -> None:
        _require(vm, _vm(call, vm), ("Running", "Paused", "Suspended"))
        _halt(call.store, vm)

    def reboot(call: Call, vm: Any) -> None:
        record = _vm(call, vm)
        _require(vm, record, ("Running",))
        _halt(call.store, vm)
        _boot(call.store, vm, _default_host(call, record), False)

    api.add("VM.clean_reboot", reboot)
    api.add("VM.hard_reboot", reboot)

    @api.method("VM.pool_migrate")
    def pool_migrate(call: Call, vm: Any, host: Any, options: Any) -> None:
        record = _vm(call, vm)
        call.store.get("host", host)
        Field("options", MAP).coerce(options)
        _require(vm, record, ("Running",))
        call.store.update("VM", vm, resident_on=host)

    @api.method("VM.clone")
    def clone(call: Call, vm: Any, new_name: Any) -> str:
        """A halted copy: same settings and other-config (so the TLS secrets it
        names are shared, as xapi's clones share them), copies of its disks, an
        empty CD drive where it has one, its VIFs with new MACs."""
        from .storage import create_vdi_file, vdi_file  # noqa: PLC0415 (storage imports vm)

        record = call.store.get("VM", vm)
        if record["is_control_domain"]:
            raise ApiError("OPERATION_NOT_ALLOWED", "cannot clone a control domain")
        if not record["is_a_template"]:
            _require(vm, record, ("Halted",))
        if not isinstance(new_name, str):
            raise field_type_error("new_name")
        values = copy.deepcopy(record)
        values.update(uuid=new_uuid(), name_label=new_name, power_state="Halted",
                      resident_on=NULL_REF, guest_metrics=NULL_REF, domid="-1")
        new_vm = call.store.create("VM", values)
        for vbd in call.store.children("VBD", "VM", vm):
            vbd_values = copy.deepcopy(call.store.get("VBD", vbd))
            vbd_values.update(uuid=new_uuid(), VM=new_vm, currently_attached=False)
            if vbd_values["VDI"] != NULL_REF and vbd_values["type"] == "Disk":
                vdi_values = copy.deepcopy(call.store.get("VDI", vbd_values["VDI"]))
                vdi_values["uuid"] = vdi_values["location"] = new_uuid()
                new_vdi = call.store.create("VDI", vdi_values)
                # the lab's VM disks hold no data: a sparse file of the same size
                create_vdi_file(vdi_file(call.config.lab_dir, call.store, new_vdi),
                                int(vdi_values["virtual_size"]))
                vbd_values["VDI"] = new_vdi
            elif vbd_values["type"] == "CD":
                vbd_values.update(VDI=NULL_REF, empty=True)
            call.store.create("VBD", vbd_values)
        for vif in call.store.children("VIF", "VM", vm):
            vif_values = copy.deepcopy(call.store.get("VIF", vif))
            octets = [0x02] + [random.randint(0, 255) for _ in range(5)]
            vif_values.update(uuid=new_uuid(), VM=new_vm, currently_attached=False,
                              MAC=":".join("%02x" % o for o in octets))
            call.store.create("VIF", vif_values)
        return new_vm

    @api.method("VM.destroy")
    def destroy(call: Call, vm: Any) -> None:
        """Forget a halted VM: its VBDs and VIFs go, its VDIs stay (as in xapi)."""
        record = call.store.get("VM", vm)
        if record["is_control_domain"]:
            raise ApiError("OPERATION_NOT_ALLOWED", "cannot destroy a control domain")
        _require(vm, record, ("Halted",))
        for cls in ("VBD", "VIF"):
            for child in call.store.children(cls, "VM", vm):
                call.store.destroy(cls, child)
        call.store.lab["guest_networks"].pop(vm, None)
        call.store.destroy("VM", vm)

    @api.method("VM.get_allowed_VBD_devices")
    def allowed_vbd_devices(call: Call, vm: Any) -> List[str]:
        call.store.get("VM", vm)
        used = [call.store.get("VBD", v)["userdevice"]
                for v in call.store.children("VBD", "VM", vm)]
        return _free_devices(used)

    @api.method("VM.get_allowed_VIF_devices")
    def allowed_vif_devices(call: Call, vm: Any) -> List[str]:
        call.store.get("VM", vm)
        used = [call.store.get("VIF", v)["device"] for v in call.store.children("VIF", "VM", vm)]
        return _free_devices(used)

    @api.method("VIF.create")
    def vif_create(call: Call, args: Any) -> str:
        values = record_from_client(
            "VIF", args,
            required=("device", "network", "VM", "MAC", "MTU", OTHER_CONFIG,
                      "qos_algorithm_type", "qos_algorithm_params"),
            optional=("locking_mode", "ipv4_allowed", "ipv6_allowed"),
        )
        call.store.get("VM", values["VM"])
        call.store.get("network", values["network"])
        siblings = call.store.children("VIF", "VM", values["VM"])
        if any(call.store.get("VIF", v)["device"] == values["device"] for v in siblings):
            raise ApiError("DEVICE_ALREADY_EXISTS", values["device"])
        if not values["MAC"]:
            octets = [0x02] + [random.randint(0, 255) for _ in range(5)]
            values["MAC"] = ":".join("%02x" % o for o in octets)
            values["MAC_autogenerated"] = True
        return call.store.create("VIF", CLASSES["VIF"].new_record(new_uuid(), **values))

    @api.method("VIF.destroy")
    def vif_destroy(call: Call, vif: Any) -> None:
        call.store.get("VIF", vif)
        call.store.destroy("VIF", vif)

    @api.method("lab.VM.set_guest_networks")
    def set_guest_networks(call: Call, vm: Any, networks: Any) -> None:
        call.store.get("VM", vm)
        call.store.lab["guest_networks"][vm] = Field("networks", MAP).coerce(networks)
        call.store.touch(vm)
        apply_guest_networks(call.store, vm)
