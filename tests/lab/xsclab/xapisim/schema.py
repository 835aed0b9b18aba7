"""The XAPI classes the simulator serves: their fields, kinds and defaults.

Records are stored in a JSON-friendly form that is already close to the wire:
int64 fields as decimal strings (xapi marshals int64 as untyped XML-RPC values,
which clients read as strings, and as numbers in JSON-RPC), dates
as "YYYYMMDDTHH:MM:SSZ" strings (sent as XML-RPC dateTime), maps as dicts of
strings, sets as lists. One-to-many relations (VM.VBDs, SR.VDIs, ...) are not
stored: they are computed from the child's reference field, as in xapi's
database.
"""

import copy
import time
import xmlrpc.client
from typing import Any, Dict, List, Sequence, Tuple

from .errors import NULL_REF, ApiError, field_type_error
from .wire import Int64

STR, INT, FLOAT, BOOL, REF, MAP, SET, DATE, ENUM = (
    "str", "int", "float", "bool", "ref", "map", "set", "date", "enum"
)
EPOCH = "19700101T00:00:00Z"


def now_date() -> str:
    return time.strftime("%Y%m%dT%H:%M:%SZ", time.gmtime())


class Field:
    __slots__ = ("default", "kind", "name", "rw", "target", "values")

    def __init__(
        self,
        name: str,
        kind: str,
        default: Any = None,
        *,
        rw: bool = False,
        target: str = "",
        values: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.kind = kind
        self.rw = rw
        self.target = target  # class a REF points to
        self.values = tuple(values)  # allowed ENUM values
        if default is None:
            default = {STR: "", INT: "0", FLOAT: 0.0, BOOL: False, REF: NULL_REF,
                       MAP: {}, SET: [], DATE: EPOCH, ENUM: values[0] if values else ""}[kind]
        self.default = default

    def coerce(self, value: Any) -> Any:
        """A value received from a client -> its stored form (FIELD_TYPE_ERROR if wrong)."""
        kind = self.kind
        if kind in (STR, REF):
            if isinstance(value, str):
                return value
        elif kind == ENUM:
            if isinstance(value, str):
                for allowed in self.values:  # xapi matches enum names case-insensitively
                    if allowed.lower() == value.lower():
                        return allowed
                raise ApiError("INVALID_VALUE", self.name, value)
        elif kind == INT:
            if isinstance(value, bool):
                raise field_type_error(self.name)
            try:
                return str(int(value))
            except (TypeError, ValueError):
                pass
        elif kind == FLOAT:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
        elif kind == BOOL:
            if isinstance(value, bool):
                return value
        elif kind == MAP:
            if isinstance(value, dict) and all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()
            ):
                return dict(value)
        elif kind == SET:
            if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
                return list(value)
        elif kind == DATE:
            if isinstance(value, xmlrpc.client.DateTime):
                return value.value
            if isinstance(value, str):
                return value
        raise field_type_error(self.name)

    def to_wire(self, value: Any) -> Any:
        """The value for the wire writers of wire.py (int64: Int64, dates: DateTime)."""
        if self.kind == DATE:
            return xmlrpc.client.DateTime(value)
        if self.kind == INT:
            return Int64(value)
        return copy.deepcopy(value) if self.kind in (MAP, SET) else value


class ClassSpec:
    def __init__(self, name: str, fields: List[Field], field_methods: bool = True) -> None:
        self.name = name
        self.fields: Dict[str, Field] = {f.name: f for f in fields}
        # message has no per-field getters in xapi (only records)
        self.field_methods = field_methods

    @property
    def event_class(self) -> str:
        return self.name.lower()

    def new_record(self, uuid: str, **values: Any) -> Dict[str, Any]:
        record = {name: copy.deepcopy(f.default) for name, f in self.fields.items()}
        record["uuid"] = uuid
        for name, value in values.items():
            if name not in self.fields:
                raise KeyError("%s has no field %s" % (self.name, name))
            record[name] = value
        return record


def _common(*fields: Field) -> List[Field]:
    return [Field("uuid", STR), *fields]


def _ops() -> List[Field]:
    return [Field("allowed_operations", SET), Field("current_operations", MAP)]


def _named() -> List[Field]:
    return [Field("name_label", STR, rw=True), Field("name_description", STR, rw=True)]


def _ref(name: str, target: str, rw: bool = False) -> Field:
    return Field(name, REF, rw=rw, target=target)


def _int(name: str, default: str = "0", rw: bool = False) -> Field:
    return Field(name, INT, default, rw=rw)


OTHER_CONFIG = "other_config"
POWER_STATES = ("Halted", "Paused", "Running", "Suspended")
VDI_TYPES = ("system", "user", "ephemeral", "suspend", "crashdump", "ha_statefile",
             "metadata", "redo_log", "rrd", "pvs_cache", "cbt_metadata")
MESSAGE_CLASSES = ("VM", "Host", "SR", "Pool", "VMPP", "VMSS", "PVS_proxy", "VDI", "Certificate")

CLASSES: Dict[str, ClassSpec] = {
    spec.name: spec
    for spec in [
        ClassSpec("pool", _common(
            *_named(), _ref("master", "host"), _ref("default_SR", "SR", rw=True),
            _ref("suspend_image_SR", "SR", rw=True), _ref("crash_dump_SR", "SR", rw=True),
            Field(OTHER_CONFIG, MAP, rw=True), Field("ha_enabled", BOOL),
            Field("tags", SET, rw=True), Field("gui_config", MAP, rw=True),
            Field("restrictions", MAP), Field("cpu_info", MAP), Field("wlb_enabled", BOOL),
            Field("redo_log_enabled", BOOL), *_ops(),
        )),
        ClassSpec("host", _common(
            *_named(), *_ops(), _int("API_version_major", "2"), _int("API_version_minor", "21"),
            Field("API_version_vendor", STR, "XenSource"),
            Field("API_version_vendor_implementation", MAP), Field("enabled", BOOL, True),
            Field("software_version", MAP), Field(OTHER_CONFIG, MAP, rw=True),
            Field("capabilities", SET), Field("cpu_configuration", MAP),
            Field("sched_policy", STR, "credit"), Field("logging", MAP, rw=True),
            Field("PIFs", SET), _ref("suspend_image_sr", "SR", rw=True),
            _ref("crash_dump_sr", "SR", rw=True), Field("hostname", STR),
            Field("address", STR), _ref("control_domain", "VM"), Field("tags", SET, rw=True),
            _int("memory_overhead"), Field("cpu_info", MAP), Field("edition", STR, "xcp-ng"),
            Field("license_params", MAP), Field("bios_strings", MAP),
            Field("external_auth_type", STR),
        )),
        ClassSpec("VM", _common(
            *_ops(), *_named(), Field("power_state", ENUM, "Halted", values=POWER_STATES),
            _int("user_version", "1", rw=True), Field("is_a_template", BOOL, rw=True),
            Field("is_default_template", BOOL), _ref("suspend_VDI", "VDI"),
            _ref("resident_on", "host"), _ref("scheduled_to_be_resident_on", "host"),
            _ref("affinity", "host", rw=True), _int("memory_overhead"),
            _int("memory_target", "1073741824"), _int("memory_static_max", "1073741824"),
            _int("memory_dynamic_max", "1073741824"), _int("memory_dynamic_min", "1073741824"),
            _int("memory_static_min", "1073741824"), Field("VCPUs_params", MAP, rw=True),
            _int("VCPUs_max", "1"), _int("VCPUs_at_startup", "1"),
            Field("actions_after_shutdown", STR, "destroy"),
            Field("actions_after_reboot", STR, "restart"),
            Field("actions_after_crash", STR, "restart"),
            Field("PV_bootloader", STR, rw=True), Field("PV_kernel", STR, rw=True),
            Field("PV_ramdisk", STR, rw=True), Field("PV_args", STR, rw=True),
            Field("PV_bootloader_args", STR, rw=True), Field("PV_legacy_args", STR, rw=True),
            Field("HVM_boot_policy", STR, "BIOS order", rw=True),
            Field("HVM_boot_params", MAP, {"order": "cd"}, rw=True),
            Field("HVM_shadow_multiplier", FLOAT, 1.0), Field("platform", MAP, rw=True),
            Field("PCI_bus", STR), Field(OTHER_CONFIG, MAP, rw=True), _int("domid", "-1"),
            Field("domarch", STR), Field("last_boot_CPU_flags", MAP),
            Field("is_control_domain", BOOL), _ref("metrics", "VM_metrics"),
            _ref("guest_metrics", "VM_guest_metrics"), Field("last_booted_record", STR),
            Field("recommendations", STR, rw=True), Field("xenstore_data", MAP, rw=True),
            Field("ha_always_run", BOOL), Field("ha_restart_priority", STR),
            Field("is_a_snapshot", BOOL), _ref("snapshot_of", "VM"), Field("snapshots", SET),
            Field("snapshot_time", DATE), Field("transportable_snapshot_id", STR),
            Field("blobs", MAP), Field("tags", SET, rw=True),
            Field("blocked_operations", MAP, rw=True), Field("bios_strings", MAP),
            Field("has_vendor_device", BOOL),
            Field("domain_type", ENUM, "hvm", values=("hvm", "pv", "pvh", "pv_in_pvh",
                                                        "unspecified")),
            _ref("appliance", "VM_appliance"), _int("start_delay"), _int("shutdown_delay"),
            _int("order"), _ref("suspend_SR", "SR"), _int("version"),
            Field("generation_id", STR), _int("hardware_platform_version"),
            Field("requires_reboot", BOOL), Field("reference_label", STR),
            Field("NVRAM", MAP), Field("consoles", SET), Field("crash_dumps", SET),
            Field("VTPMs", SET), Field("VUSBs", SET), Field("VGPUs", SET),
            Field("attached_PCIs", SET), Field("children", SET), _ref("parent", "VM"),
        )),
        ClassSpec("VM_guest_metrics", _common(
            Field("os_version", MAP), Field("PV_drivers_version", MAP),
            Field("PV_drivers_up_to_date", BOOL), Field("memory", MAP), Field("disks", MAP),
            Field("networks", MAP), Field("other", MAP), Field("last_updated", DATE),
            Field(OTHER_CONFIG, MAP, rw=True), Field("live", BOOL, True),
            Field("can_use_hotplug_vbd", STR, "unspecified"),
            Field("can_use_hotplug_vif", STR, "unspecified"),
            Field("PV_drivers_detected", BOOL), Field("netbios_name", MAP),
        )),
        ClassSpec("SR", _common(
            *_named(), *_ops(), _int("virtual_allocation"), _int("physical_utilisation"),
            _int("physical_size"), Field("type", STR), Field("content_type", STR, "user"),
            Field("shared", BOOL, rw=True), Field(OTHER_CONFIG, MAP, rw=True),
            Field("tags", SET, rw=True), Field("sm_config", MAP, rw=True), Field("blobs", MAP),
            Field("local_cache_enabled", BOOL), _ref("introduced_by", "DR_task"),
            Field("clustered", BOOL), Field("is_tools_sr", BOOL),
        )),
        ClassSpec("PBD", _common(
            _ref("host", "host"), _ref("SR", "SR"), Field("device_config", MAP),
            Field("currently_attached", BOOL), Field(OTHER_CONFIG, MAP, rw=True),
        )),
        ClassSpec("VDI", _common(
            *_named(), *_ops(), _ref("SR", "SR"), _int("virtual_size"),
            _int("physical_utilisation"), Field("type", ENUM, "user", values=VDI_TYPES),
            Field("sharable", BOOL, rw=True), Field("read_only", BOOL, rw=True),
            Field(OTHER_CONFIG, MAP, rw=True), Field("storage_lock", BOOL),
            Field("location", STR), Field("managed", BOOL, True), Field("missing", BOOL),
            _ref("parent", "VDI"), Field("xenstore_data", MAP, rw=True),
            Field("sm_config", MAP, rw=True), Field("is_a_snapshot", BOOL),
            _ref("snapshot_of", "VDI"), Field("snapshots", SET), Field("snapshot_time", DATE),
            Field("tags", SET, rw=True), Field("allow_caching", BOOL),
            Field("on_boot", ENUM, "persist", values=("persist", "reset")),
            _ref("metadata_of_pool", "pool"), Field("metadata_latest", BOOL),
            Field("is_tools_iso", BOOL), Field("cbt_enabled", BOOL),
        )),
        ClassSpec("VBD", _common(
            *_ops(), _ref("VM", "VM"), _ref("VDI", "VDI"), Field("device", STR),
            Field("userdevice", STR, rw=True), Field("bootable", BOOL, rw=True),
            Field("mode", ENUM, "RW", rw=True, values=("RO", "RW")),
            Field("type", ENUM, "Disk", rw=True, values=("CD", "Disk", "Floppy")),
            Field("unpluggable", BOOL, True, rw=True), Field("storage_lock", BOOL),
            Field("empty", BOOL), Field(OTHER_CONFIG, MAP, rw=True),
            Field("currently_attached", BOOL), _int("status_code"), Field("status_detail", STR),
            Field("runtime_properties", MAP), Field("qos_algorithm_type", STR, rw=True),
            Field("qos_algorithm_params", MAP, rw=True), Field("qos_supported_algorithms", SET),
            _ref("metrics", "VBD_metrics"),
        )),
        ClassSpec("VIF", _common(
            *_ops(), Field("device", STR), _ref("network", "network"), _ref("VM", "VM"),
            Field("MAC", STR), _int("MTU", "1500"), Field(OTHER_CONFIG, MAP, rw=True),
            Field("currently_attached", BOOL), _int("status_code"), Field("status_detail", STR),
            Field("runtime_properties", MAP), Field("qos_algorithm_type", STR, rw=True),
            Field("qos_algorithm_params", MAP, rw=True), Field("qos_supported_algorithms", SET),
            _ref("metrics", "VIF_metrics"), Field("MAC_autogenerated", BOOL),
            Field("locking_mode", STR, "network_default"), Field("ipv4_allowed", SET),
            Field("ipv6_allowed", SET), Field("ipv4_configuration_mode", STR, "None"),
            Field("ipv4_addresses", SET), Field("ipv4_gateway", STR),
            Field("ipv6_configuration_mode", STR, "None"), Field("ipv6_addresses", SET),
            Field("ipv6_gateway", STR),
        )),
        ClassSpec("network", _common(
            *_named(), *_ops(), Field("PIFs", SET), _int("MTU", "1500", rw=True),
            Field(OTHER_CONFIG, MAP, rw=True), Field("bridge", STR), Field("managed", BOOL, True),
            Field("blobs", MAP), Field("tags", SET, rw=True),
            Field("default_locking_mode", STR, "unlocked"), Field("assigned_ips", MAP),
            Field("purpose", SET),
        )),
        ClassSpec("secret", _common(Field("value", STR, rw=True),
                                    Field(OTHER_CONFIG, MAP, rw=True))),
        ClassSpec("message", _common(
            Field("name", STR), _int("priority"),
            Field("cls", ENUM, "VM", values=MESSAGE_CLASSES), Field("obj_uuid", STR),
            Field("timestamp", DATE), Field("body", STR),
        ), field_methods=False),
    ]
}

# (parent class, parent field, child class, child field): the parent's set is
# computed as every child whose reference field points at the parent.
RELATIONS: List[Tuple[str, str, str, str]] = [
    ("VM", "VBDs", "VBD", "VM"),
    ("VM", "VIFs", "VIF", "VM"),
    ("VDI", "VBDs", "VBD", "VDI"),
    ("SR", "VDIs", "VDI", "SR"),
    ("SR", "PBDs", "PBD", "SR"),
    ("host", "PBDs", "PBD", "host"),
    ("host", "resident_VMs", "VM", "resident_on"),
    ("network", "VIFs", "VIF", "network"),
]


def relations_of(cls: str) -> List[Tuple[str, str, str]]:
    """(parent field, child class, child field) computed for `cls`."""
    return [(pf, cc, cf) for pc, pf, cc, cf in RELATIONS if pc == cls]


def parents_of(cls: str) -> List[Tuple[str, str]]:
    """(child field, parent class) for the relations in which `cls` is the child."""
    return [(cf, pc) for pc, _pf, cc, cf in RELATIONS if cc == cls]




def record_from_client(
    cls: str, received: Any, required: Sequence[str], optional: Sequence[str]
) -> Dict[str, Any]:
    """The fields a <class>.create call may set, coerced to their stored form.
    Fields that xapi requires must be present; unknown fields are ignored."""
    if not isinstance(received, dict):
        raise field_type_error("args")
    fields = CLASSES[cls].fields
    values = {}
    for name in list(required) + list(optional):
        if name in received:
            values[name] = fields[name].coerce(received[name])
        elif name in required:
            raise field_type_error(name)
    return values
