"""The config drive in XAPI: a VDI holding the image, a read-only VBD on the VM.

NewDrive makes one, replacing the VM's previous config drives:

* before any change, checks the VM, that the SR is attached to this host, and
  that the VM has a free disk slot (userdevice) once its old drives are gone;
* then, each step noting in an undo log how to reverse it: a VIF on the host
  internal network when the pool asks for one and the VM has none; a VDI
  flagged other-config config-drive=True (the image's size rounded up to
  2 MiB) with the image uploaded into it; the previous drives detached and
  destroyed; a read-only VBD for the new one. When a step fails, what was made
  is destroyed again, newest first, so a failure leaves none of its VDI, VBD
  or VIF behind;
* last, hot-plugs the VBD into a running VM (a refusal only delays the drive to
  the guest's next boot) and seeds VM other-config `xscontainer-monitor=False`
  when asked and absent, so XenCenter offers container management.

read_drive reads a config drive's content back. Session refs are never logged.
"""

import functools
import logging
import os
from types import TracebackType
from typing import IO, Any, Callable, Dict, List, Optional, Tuple, Type, cast

from xscontainer import errors, xapi_keys
from xscontainer.xapi import NULL_REF, Xapi

log = logging.getLogger(__name__)

DRIVE_NAME = "Automatic Config Drive"
HIN_BRIDGE = "xenapi"
TRUE_WORDS = ("1", "yes", "true", "on")

# Sizes: the VDI is the image rounded up to 2 MiB, the allocation unit of xapi's
# VHD-based SRs (they round any size up to it anyway). Reads are bounded.
VDI_ALIGN = 2 << 20
MAX_DRIVE_BYTES = 128 << 20
UPLOAD_TIMEOUT = 300.0
FIRST_USERDEVICE = 1
VBD_CREATE_ATTEMPTS = 3


def _true(value: Optional[str]) -> bool:
    return (value or "").strip().lower() in TRUE_WORDS


# -- the upload -------------------------------------------------------------------------


class Padded:
    """A file read to its end, then zeros up to `size` bytes (the VDI's size)."""

    def __init__(self, f: IO[bytes], size: int) -> None:
        self._f = f
        self._left = size

    def read(self, n: int) -> bytes:
        n = min(n, self._left)
        data = self._f.read(n)
        data += b"\0" * (n - len(data))
        self._left -= len(data)
        return data


def vdi_size(image_bytes: int) -> int:
    """The image size rounded up to the next 2 MiB (an aligned size stays)."""
    return max(VDI_ALIGN, -(-image_bytes // VDI_ALIGN) * VDI_ALIGN)


# -- XAPI objects -------------------------------------------------------------------


def _sr(xapi: Xapi, sr_uuid: str) -> str:
    return xapi.by_uuid("SR", sr_uuid, errors.ConfigDriveError(
        "There is no SR with uuid %s in this pool. Pass the SR of the VM's first disk "
        "(xe sr-list lists them)." % sr_uuid, sr_uuid))


def _require_sr_here(xapi: Xapi, sr: str, sr_uuid: str, vm_uuid: str) -> None:
    host = xapi.this_host()
    for pbd in xapi.call("SR.get_PBDs", sr):
        record = xapi.call("PBD.get_record", pbd)
        if record.get("host") == host and record.get("currently_attached"):
            return
    host_uuid = xapi.call("host.get_uuid", host)
    raise errors.ConfigDriveError(
        "SR %s is not attached to host %s, where the config drive of VM %s must be made "
        "(the host the VM runs on, or one with the SR). Use a shared SR or one local to "
        "that host, or plug the SR's PBD on it." % (sr_uuid, host_uuid, vm_uuid),
        vm_uuid,
        sr_uuid,
    )


def _vbd_is_drive(xapi: Xapi, record: Dict[str, Any]) -> bool:
    if _true(record.get("other_config", {}).get(xapi_keys.CONFIG_DRIVE)):
        return True
    vdi = record.get("VDI")
    if not vdi or vdi == NULL_REF:
        return False
    try:
        return _true(xapi.call("VDI.get_other_config", vdi).get(xapi_keys.CONFIG_DRIVE))
    except errors.XAPIError as exc:
        if exc.gone:  # its VDI is gone
            return False
        raise


def config_drive_vbds(xapi: Xapi, vm: str) -> List[Tuple[str, Dict[str, Any]]]:
    """(ref, record) of each VBD of the VM that is a config drive."""
    return [(vbd, record)
            for vbd, record in xapi.live_records("VBD", xapi.call("VM.get_VBDs", vm))
            if _vbd_is_drive(xapi, record)]


def _free_userdevices(xapi: Xapi, vm: str, also_free: List[str]) -> List[str]:
    allowed = set(xapi.call("VM.get_allowed_VBD_devices", vm)) | set(also_free)
    numbers = sorted(int(d) for d in allowed if str(d).isdigit() and int(d) >= FIRST_USERDEVICE)
    return [str(n) for n in numbers]


def _no_userdevice(vm_uuid: str) -> errors.ConfigDriveError:
    return errors.ConfigDriveError(
        "VM %s has no free disk slot (userdevice) for the config drive. Remove a disk or "
        "an empty CD drive from it and retry." % vm_uuid,
        vm_uuid,
    )


def _remove_drive(xapi: Xapi, vbd: str, record: Dict[str, Any], vm_uuid: str) -> None:
    try:
        if record.get("currently_attached") and xapi.api.VBD.get_currently_attached(vbd):
            xapi.api.VBD.unplug(vbd)
        xapi.api.VBD.destroy(vbd)
    except errors.XAPIError as exc:
        if not exc.gone:  # gone already is fine
            raise errors.ConfigDriveError(
                "The VM's current config drive could not be detached (%s). The guest may be "
                "using it: shut VM %s down and retry." % (" ".join(exc.details), vm_uuid),
                vm_uuid,
            ) from exc
    vdi = record.get("VDI")
    if vdi and vdi != NULL_REF:
        try:
            xapi.call("VDI.destroy", vdi)
        except errors.XAPIError as exc:
            if not exc.gone:
                raise


class Undo:
    """What a create made so far, destroyed again (newest first) if it fails."""

    def __init__(self) -> None:
        self._steps: List[Tuple[str, Callable[[], None]]] = []

    def add(self, what: str, step: Callable[[], None]) -> None:
        self._steps.append((what, step))

    def run(self) -> None:
        while self._steps:
            what, step = self._steps.pop()
            try:
                step()
            except Exception as exc:  # keep undoing the rest
                log.warning("cleanup after a failed create_config_drive: %s: %s", what, exc)

    def forget(self) -> None:
        self._steps = []


def use_hin(xapi: Xapi) -> bool:
    """Pool other-config xscontainer-use-hostinternalnetwork (set by the admin)."""
    return _true(xapi.pool_other_config().get(xapi_keys.USE_HOST_INTERNAL_NETWORK))


def _hin_network(xapi: Xapi) -> Optional[str]:
    """The host internal management network (bridge xenapi), if the pool has it."""
    for ref, record in xapi.call("network.get_all_records").items():
        if record.get("bridge") == HIN_BRIDGE:
            return str(ref)
    return None


def _hin_device(xapi: Xapi, vm: str, network: Optional[str]) -> Optional[str]:
    if network is None:
        return None
    for _vif, record in xapi.live_records("VIF", xapi.call("VM.get_VIFs", vm)):
        if record.get("network") == network:
            return str(record.get("device"))
    return None


def _add_hin_vif(xapi: Xapi, vm: str, network: str, undo: Undo) -> str:
    """As the original, when the pool asks for it: no default gateway from the
    host internal network, and a VIF on it for the VM. Returns its device."""
    xapi.set_other_config_key("network", network, "ip_disable_gw", "true")
    for _attempt in range(3):
        free = xapi.call("VM.get_allowed_VIF_devices", vm)
        if not free:
            raise errors.ConfigDriveError(
                "The pool asks for a host internal network interface in config-drive VMs "
                "(%s), but the VM has no free network device slot. Remove a network "
                "interface, or remove that pool setting." % xapi_keys.USE_HOST_INTERNAL_NETWORK
            )
        device = str(sorted(free, key=lambda d: int(d) if str(d).isdigit() else 1 << 30)[0])
        try:
            vif = xapi.api.VIF.create({
                "device": device, "network": network, "VM": vm, "MAC": "", "MTU": "1500",
                "other_config": {}, "qos_algorithm_type": "", "qos_algorithm_params": {},
            })
        except errors.XAPIError as exc:
            if exc.xapi_code == "DEVICE_ALREADY_EXISTS":
                continue
            raise
        undo.add("destroy VIF %s" % device, functools.partial(xapi.api.VIF.destroy, vif))
        log.info("added a VIF (device %s) on the host internal network", device)
        return device
    raise errors.ConfigDriveError("Could not add a host internal network interface: its "
                                  "device numbers kept being taken concurrently. Retry.")


def _import_image(xapi: Xapi, sr: str, image: str, vm_uuid: str, undo: Undo) -> str:
    size = vdi_size(os.path.getsize(image))
    try:
        vdi = xapi.call("VDI.create", {
            "name_label": DRIVE_NAME,
            "name_description": "Cloud-config drive for VM %s, made by xscontainer" % vm_uuid,
            "SR": sr,
            "virtual_size": str(size),
            "type": "system",  # made and replaced by the system, as the original's
            "sharable": False,
            "read_only": False,  # written once below; the VM gets it read-only
            "other_config": {xapi_keys.CONFIG_DRIVE: "True"},
        })
    except errors.XAPIError as exc:
        raise errors.ConfigDriveError(
            "Creating the config drive's disk failed: %s Check that the SR has %d MiB free."
            % (exc.message, size >> 20),
            vm_uuid,
        ) from exc
    undo.add("destroy the new VDI", lambda: xapi.api.VDI.destroy(vdi))
    try:
        with open(image, "rb") as f:
            source = cast(IO[bytes], Padded(f, size))  # it only reads
            xapi.import_raw_vdi(vdi, source, size, timeout=UPLOAD_TIMEOUT)
    except (errors.XSContainerError, OSError) as exc:
        raise errors.ConfigDriveError(
            "Uploading the config drive failed: %s Check the SR and retry." % exc, vm_uuid
        ) from exc
    return str(vdi)


def _attach(xapi: Xapi, vm: str, vdi: str, vm_uuid: str, undo: Undo) -> str:
    for _attempt in range(VBD_CREATE_ATTEMPTS):
        free = _free_userdevices(xapi, vm, [])
        if not free:
            raise _no_userdevice(vm_uuid)
        try:
            vbd = xapi.api.VBD.create({
                "VM": vm, "VDI": vdi, "userdevice": free[0], "bootable": False,
                "mode": "RO", "type": "Disk", "unpluggable": True, "empty": False,
                "other_config": {xapi_keys.CONFIG_DRIVE: "True"},
                "qos_algorithm_type": "", "qos_algorithm_params": {},
            })
        except errors.XAPIError as exc:
            if exc.xapi_code == "DEVICE_ALREADY_EXISTS":
                continue  # taken meanwhile: the next free one
            raise
        undo.add("destroy the new VBD", functools.partial(xapi.api.VBD.destroy, vbd))
        return str(vbd)
    raise _no_userdevice(vm_uuid)


def _plug_if_running(xapi: Xapi, vm: str, vbd: str) -> None:
    if xapi.call("VM.get_power_state", vm) != "Running":
        return
    try:
        xapi.api.VBD.plug(vbd)
    except errors.XAPIError as exc:
        if exc.failure is None:  # XAPI itself is unreachable: not a plug problem
            raise
        # Attached all the same: the guest sees it at its next boot, which is when
        # it reads its cloud-config.
        log.warning("the new config drive could not be hot-plugged (%s); the VM gets it "
                    "at its next boot", " ".join(exc.failure))


def _seed_monitor_key(xapi: Xapi, vm: str) -> None:
    """xscontainer-monitor=False if absent, so XenCenter offers container management."""
    if xapi_keys.MONITOR in xapi.vm_other_config(vm):
        return
    # someone may set it meanwhile: theirs stays
    xapi.add_key_if_absent("VM", vm, xapi_keys.MONITOR, "False")


# -- create and read ------------------------------------------------------------------


class NewDrive:
    """One config drive being made for a VM on an SR (see the module's docstring).

    The constructor checks, changing nothing. Then, inside `with`: hin_device(),
    upload(image) -> VDI, swap(VDI) -> VBD; an exception undoes them. After the
    `with`, finish(VDI, VBD, seed_monitor) -> the new VDI's uuid.
    """

    def __init__(self, xapi: Xapi, vm_uuid: str, sr_uuid: str) -> None:
        self.xapi = xapi
        self.vm_uuid = vm_uuid
        self.sr_uuid = sr_uuid
        self.vm = xapi.vm_by_uuid(vm_uuid)
        self.sr = _sr(xapi, sr_uuid)
        _require_sr_here(xapi, self.sr, sr_uuid, vm_uuid)
        self.old = config_drive_vbds(xapi, self.vm)
        if not _free_userdevices(xapi, self.vm, [str(r.get("userdevice")) for _, r in self.old]):
            raise _no_userdevice(vm_uuid)
        self._undo = Undo()

    def __enter__(self) -> "NewDrive":
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                 traceback: Optional[TracebackType]) -> None:
        if exc_type is None:
            self._undo.forget()
        else:
            self._undo.run()

    def vm_name(self) -> str:
        return str(self.xapi.call("VM.get_name_label", self.vm))

    def hin_device(self) -> Optional[str]:
        """The device number of the VM's VIF on the host internal network, after
        adding one if the pool asks for it; None if the VM has none."""
        network = _hin_network(self.xapi)
        hin = _hin_device(self.xapi, self.vm, network)
        if hin is None and network is not None and use_hin(self.xapi):
            hin = _add_hin_vif(self.xapi, self.vm, network, self._undo)
        return hin

    def upload(self, image: str) -> str:
        """A new VDI on the SR holding the image file; returns its ref."""
        return _import_image(self.xapi, self.sr, image, self.vm_uuid, self._undo)

    def swap(self, vdi: str) -> str:
        """The previous drives detached and destroyed, `vdi` attached; returns the VBD."""
        for old_vbd, old_record in self.old:
            _remove_drive(self.xapi, old_vbd, old_record, self.vm_uuid)
        return _attach(self.xapi, self.vm, vdi, self.vm_uuid, self._undo)

    def finish(self, vdi: str, vbd: str, seed_monitor: bool) -> str:
        """Plug the new drive into a running VM, seed xscontainer-monitor=False if
        `seed_monitor`; returns the new VDI's uuid."""
        _plug_if_running(self.xapi, self.vm, vbd)
        if seed_monitor:
            _seed_monitor_key(self.xapi, self.vm)
        vdi_uuid = str(self.xapi.call("VDI.get_uuid", vdi))
        log.info("config drive %s created on SR %s for VM %s%s", vdi_uuid, self.sr_uuid,
                 self.vm_uuid, " (replacing %d)" % len(self.old) if self.old else "")
        return vdi_uuid


def read_drive(xapi: Xapi, vdi_uuid: str) -> bytes:
    """The content of a config drive's VDI (one larger than a config drive is refused)."""
    vdi = xapi.by_uuid("VDI", vdi_uuid, errors.ConfigDriveError(
        "There is no VDI with uuid %s in this pool. Pass the uuid of the VM's config drive "
        "(its VDI has other-config config-drive=True)." % vdi_uuid, vdi_uuid))
    size = int(xapi.call("VDI.get_virtual_size", vdi))
    if size > MAX_DRIVE_BYTES:
        raise errors.ConfigDriveError(
            "VDI %s (%d MiB) is too large to be a config drive; pass the uuid of the VM's "
            "config drive." % (vdi_uuid, size >> 20),
            vdi_uuid,
        )
    return xapi.export_raw_vdi(vdi, MAX_DRIVE_BYTES, timeout=UPLOAD_TIMEOUT)
