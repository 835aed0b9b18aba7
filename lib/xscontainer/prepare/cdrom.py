"""The VM's CD drive and the temporary disk that carries the TLS files to it.

The ISO is imported as a raw VDI named "Temp Container Management Image" (VDI
other-config xscontainer-tls-iso=True) on the SR of the VM's first disk, or the
pool's default SR, and inserted into the VM's first CD drive. It holds a server
private key, so it is ejected and destroyed as soon as it has served, also on
errors and Ctrl-C; a copy left behind by a killed run is recognised by its
marker and removed by the next run.
"""

import io
import logging
from typing import Any, Dict, List, Optional, Tuple

from xscontainer import errors, xapi_keys
from xscontainer.xapi import NULL_REF, Xapi

log = logging.getLogger(__name__)

TEMP_VDI_NAME = "Temp Container Management Image"
SIZE_UNIT = 1 << 20


class CDDrive:
    """A VM's CD VBD and what it holds."""

    def __init__(self, ref: str, record: Dict[str, Any]) -> None:
        self.ref = ref
        self.record = record

    @property
    def device(self) -> str:
        return str(self.record.get("userdevice", "?"))

    def vdi(self, xapi: Xapi) -> Optional[str]:
        """The VDI in the drive now, or None when it is empty."""
        record = xapi.call("VBD.get_record", self.ref)
        vdi = record.get("VDI") or NULL_REF
        return None if record.get("empty") or vdi == NULL_REF else str(vdi)


def _by_device(item: Tuple[str, Dict[str, Any]]) -> Tuple[int, str]:
    device = str(item[1].get("userdevice", ""))
    return (int(device) if device.isdigit() else 1 << 20, device)


def _vbds(xapi: Xapi, vm_ref: str, kind: str) -> List[Tuple[str, Dict[str, Any]]]:
    found = []
    for ref in xapi.call("VM.get_VBDs", vm_ref):
        record = xapi.call("VBD.get_record", ref)
        if record.get("type") == kind:
            found.append((ref, record))
    return sorted(found, key=_by_device)


def cd_drive(xapi: Xapi, vm_ref: str, where: str) -> CDDrive:
    drives = _vbds(xapi, vm_ref, "CD")
    if not drives:
        raise errors.InvalidArgument(
            "%s has no CD drive, which --generate-certs needs to hand the certificates to the "
            "VM. Add a CD drive (XenCenter: the VM's Storage tab; it may stay empty) and run "
            "this again, or configure Docker in the VM yourself and use --client-cert, "
            "--client-key and --ca-cert." % where)
    return CDDrive(*drives[0])


def is_ours(xapi: Xapi, vdi_ref: str) -> bool:
    """Whether a VDI is a TLS image an earlier run left behind."""
    try:
        record = xapi.call("VDI.get_record", vdi_ref)
    except errors.XAPIError:
        return False
    return bool((record.get("other_config") or {}).get(xapi_keys.TLS_ISO) == "True")


def vdi_name(xapi: Xapi, vdi_ref: str) -> str:
    try:
        return str(xapi.call("VDI.get_name_label", vdi_ref))
    except errors.XAPIError:
        return vdi_ref


def target_sr(xapi: Xapi, vm_ref: str, where: str) -> str:
    """The SR of the VM's first disk, else the pool's default SR."""
    for _ref, record in _vbds(xapi, vm_ref, "Disk"):
        vdi = record.get("VDI") or NULL_REF
        if vdi != NULL_REF:
            try:
                return str(xapi.call("VDI.get_SR", vdi))
            except errors.XAPIError as exc:
                log.warning("cannot tell the SR of the VM's disk: %s", exc)
                break
    sr = xapi.call("pool.get_default_SR", xapi.pool())
    if not sr or sr == NULL_REF:
        raise errors.InvalidArgument(
            "Neither a disk of %s nor a pool default SR tells where to put the temporary "
            "image. Set a default SR for the pool (xe pool-param-set uuid=<pool> "
            "default-SR=<sr uuid>) and run this again." % where)
    return str(sr)


def upload(xapi: Xapi, sr_ref: str, image: bytes) -> str:
    """A new VDI holding `image` (zero-padded to whole MiB); destroyed again on failure."""
    size = -(-len(image) // SIZE_UNIT) * SIZE_UNIT
    vdi = xapi.call("VDI.create", {
        "name_label": TEMP_VDI_NAME,
        "name_description": "TLS certificates for Docker, from xscontainer-prepare-vm; "
                            "removed when the preparation ends",
        "SR": sr_ref,
        "virtual_size": str(size),
        "type": "user",
        "sharable": False,
        "read_only": False,
        "other_config": {xapi_keys.TLS_ISO: "True"},
        "xenstore_data": {},
        "sm_config": {},
        "tags": [],
    })
    try:
        padded = io.BytesIO(image + b"\0" * (size - len(image)))
        xapi.import_raw_vdi(vdi, padded, size)
    except BaseException:
        destroy(xapi, vdi)
        raise
    return str(vdi)


def insert(xapi: Xapi, drive: CDDrive, vdi_ref: str) -> None:
    xapi.call("VBD.insert", drive.ref, vdi_ref)


def eject(xapi: Xapi, drive: CDDrive) -> None:
    try:
        xapi.call("VBD.eject", drive.ref)
    except errors.XAPIError as exc:
        if exc.xapi_code != "VBD_IS_EMPTY":
            raise


def destroy(xapi: Xapi, vdi_ref: str) -> None:
    try:
        xapi.call("VDI.destroy", vdi_ref)
    except errors.XAPIError as exc:
        if not exc.gone:
            raise
