"""A TLS preparation waiting for the VM's administrator (plugin prepare, generatecerts).

A plugin call cannot wait for someone to run configure_tls.cmd in the VM, so
the generated preparation has two steps. The first leaves its state in VM
other-config xscontainer-prepare-pending, a JSON object:

    {"secrets": {"xscontainer-tls-client-cert": <secret uuid>, ...the key, the CA},
     "vdi": <uuid of the temporary CD's VDI>, "deadline": <Unix time>}

The secrets exist but the VM does not name them yet (its TLS keys are
untouched), so an unfinished preparation changes nothing that the plugin or
the monitor use. The second step runs when `prepare` or `diagnose` is called
for the VM: if Docker answers with the new certificate the VM names the
secrets, the CD is ejected and deleted and the key removed (tlsmode.advance).

At the deadline the preparation is undone, whoever notices first: the next
prepare or diagnose call, or the monitor of the VM's host, which schedules
the expiry for the deadline of every VM resident there (`expire_due`). The
CD is then ejected and its VDI destroyed, the pending secrets destroyed
(unless a VM names them) and the key removed. All of it runs under the VM's
preparation lock (lock.py); this module needs XAPI only.
"""

import json
import logging
import time
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional, Tuple

from xscontainer import errors, tlssecrets, xapi_keys
from xscontainer.prepare import cdrom, lock
from xscontainer.xapi import NULL_REF, Xapi

if TYPE_CHECKING:
    from xscontainer.guest import Guest

log = logging.getLogger(__name__)

DEFAULT_SECONDS = 600  # how long the CD may stay in the drive (README says so)
MIN_SECONDS = 5
MAX_SECONDS = 3600


class Pending:
    def __init__(self, secrets: Dict[str, str], vdi: str, deadline: int) -> None:
        self.secrets = secrets
        self.vdi = vdi
        self.deadline = deadline

    def encode(self) -> str:
        return json.dumps({"secrets": self.secrets, "vdi": self.vdi, "deadline": self.deadline},
                          sort_keys=True)

    def due(self, now: Optional[float] = None) -> bool:
        return (time.time() if now is None else now) >= self.deadline


def read(other_config: Mapping[str, str]) -> Optional[Pending]:
    """The VM's pending preparation; one that cannot be read is due at once."""
    text = (other_config.get(xapi_keys.PREPARE_PENDING) or "").strip()
    if not text:
        return None
    try:
        data = json.loads(text)
        secrets = {k: str(v) for k, v in dict(data.get("secrets") or {}).items()
                   if k in xapi_keys.TLS_SECRETS and v}
        return Pending(secrets, str(data.get("vdi") or ""), int(data.get("deadline") or 0))
    except (ValueError, TypeError, AttributeError):
        log.warning("other-config %s cannot be read; it is removed", xapi_keys.PREPARE_PENDING)
        return Pending({}, "", 0)


def utc(deadline: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(deadline))


def remove_cd(xapi: Xapi, vm_ref: str, state: Pending) -> None:
    """Eject the pending CD from the VM's drives and destroy its VDI (gone already: fine)."""
    if not state.vdi:
        return
    try:
        vdi = str(xapi.call("VDI.get_by_uuid", state.vdi))
    except errors.XAPIError as exc:
        if exc.gone:
            return
        raise
    for vbd in xapi.call("VM.get_VBDs", vm_ref):
        try:
            record = xapi.call("VBD.get_record", vbd)
        except errors.XAPIError as exc:
            if exc.gone:
                continue
            raise
        if record.get("type") == "CD" and (record.get("VDI") or NULL_REF) == vdi \
                and not record.get("empty"):
            cdrom.eject(xapi, cdrom.CDDrive(vbd, record))
    if cdrom.is_ours(xapi, vdi):  # never destroy a disk that is not our CD
        cdrom.destroy(xapi, vdi)


def expire(xapi: Xapi, vm_ref: str, state: Pending) -> None:
    """Undo a pending preparation: CD, secrets (unless a VM names them), the key."""
    remove_cd(xapi, vm_ref, state)
    tlssecrets.destroy_unreferenced(xapi, state.secrets.values())
    xapi.remove_vm_other_config(vm_ref, xapi_keys.PREPARE_PENDING)
    log.info("undid the expired TLS preparation of VM ref %s", vm_ref[-8:])


def expire_due(xapi: Xapi, vm_ref: str) -> Optional[float]:
    """For the monitor: undo the VM's pending preparation if it is due.

    Returns when to look again (a Unix time: not due yet, or the VM's lock was
    busy), or None when nothing is pending any more."""
    try:
        vm_uuid = str(xapi.call("VM.get_uuid", vm_ref))
    except errors.XAPIError as exc:
        if exc.gone:
            return None
        raise
    try:
        with lock.held(vm_uuid, 0):
            state = read(xapi.vm_other_config(vm_ref))
            if state is None:
                return None
            if not state.due():
                return float(state.deadline)
            expire(xapi, vm_ref, state)
            return None
    except errors.PrepareInProgress:
        return time.time() + 5.0


def deadline_of(record: Mapping[str, Any]) -> Optional[int]:
    """The deadline of the pending preparation a VM record names, if any."""
    state = read(dict(record.get("other_config") or {}))
    return None if state is None else state.deadline


def on_diagnose(guest: "Guest") -> Tuple["Guest", str]:
    """diagnose's hook: advance the VM's pending preparation; (the VM as it is now,
    a line for the report)."""
    from xscontainer.guest import Guest  # noqa: PLC0415 (diagnose imports this lazily)
    from xscontainer.prepare import common, tlsmode  # noqa: PLC0415
    from xscontainer.prepare.console import Collector  # noqa: PLC0415

    console = Collector()
    try:
        with lock.held(guest.uuid, 0):
            current = Guest.load(guest.xapi, guest.uuid)
            if read(current.other_config) is None:
                return current, ""
            tlsmode.advance(console, current)  # undoes a due one even if the VM is halted
    except errors.PrepareInProgress:
        return guest, "a preparation of this VM is running"
    except common.NotWorking as exc:
        console.say(str(exc))
    except errors.XSContainerError as exc:
        log.warning("could not advance the pending TLS preparation of %s: %s", guest.where,
                    exc.message)
        console.say("The pending TLS preparation could not advance: %s" % exc.message)
    lines = [line for line in console.text().splitlines() if line.strip()]
    note = lines[-1] if lines else ""
    return Guest.load(guest.xapi, guest.uuid), note

