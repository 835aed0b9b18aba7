"""Steps both modes of xscontainer-prepare-vm share: find the VM, verify, register."""

import copy
import logging
from typing import Optional

from xscontainer import diagnose as diagnose_mod
from xscontainer import errors, xapi_keys
from xscontainer.diagnose_report import Report
from xscontainer.guest import Guest
from xscontainer.prepare.console import Console
from xscontainer.transport import Timeouts
from xscontainer.xapi import Xapi

log = logging.getLogger(__name__)

# prepare-vm talks to one guest, interactively: more patience than the plugin
TIMEOUTS = Timeouts(connect=5.0, handshake=15.0, auth=30.0, request=60.0)


class NotWorking(Exception):
    """The check of the whole chain failed; `guest` is the VM as checked (its
    settings as they would be stored), `report` the diagnosis."""

    def __init__(self, message: str, guest: Optional[Guest] = None,
                 report: Optional[Report] = None) -> None:
        super().__init__(message)
        self.guest = guest
        self.report = report
        self.error: Optional[errors.XSContainerError] = None  # classify()'s verdict


def classify(failure: NotWorking) -> errors.XSContainerError:
    """The error the plugin's functions would give for what the check found, so that
    a failed preparation reports the usual code (SSH auth, Docker, TLS...). It
    connects once more, as the plugin would; the first verdict is kept (call it
    before undoing anything the check relied on)."""
    if failure.error is not None:
        return failure.error
    message = str(failure)
    probe = failure.guest
    if probe is None:
        failure.error = errors.DockerUnreachable(message)
        return failure.error
    try:
        client = probe.docker(TIMEOUTS)
    except errors.XSContainerError as exc:
        found = copy.copy(exc)
        found.message = message
        found.details = [probe.uuid] + [d for d in exc.details if d != probe.uuid]
        found.args = (message, *found.details)
        failure.error = found
        return found
    client.close()
    failure.error = errors.DockerUnreachable(message, probe.uuid)
    return failure.error


def running_guest(xapi: Xapi, vm_uuid: str) -> Guest:
    guest = Guest.load(xapi, vm_uuid)
    guest.require_running()
    return guest


def reload(guest: Guest) -> Guest:
    return Guest.load(guest.xapi, guest.uuid)


def with_settings(guest: Guest, **other_config: str) -> Guest:
    """The same VM as if its other-config also had these keys (nothing is written):
    to check a configuration before storing it. It names no pending preparation
    (so that checking it never tries to complete one)."""
    record = copy.deepcopy(guest.record)
    merged = dict(record.get("other_config") or {})
    merged.update(other_config)
    merged.pop(xapi_keys.PREPARE_PENDING, None)
    record["other_config"] = merged
    return Guest(guest.xapi, guest.uuid, guest.ref, record)


def ensure(xapi: Xapi, vm_ref: str, key: str, value: str) -> bool:
    """Set one other-config key unless it already has the value; whether it changed.

    Rerunning prepare-vm on a prepared VM thus writes nothing (no events that
    would make the monitor reconnect for no reason)."""
    if xapi.vm_other_config(vm_ref).get(key) == value:
        return False
    xapi.set_vm_other_config(vm_ref, key, value)
    log.info("set other-config %s of VM ref %s", key, vm_ref[-8:])
    return True


def verify(console: Console, guest: Guest) -> Report:
    """Walk the chain to Docker as the plugin and the monitor will; print the report."""
    console.say("Checking that container management works for the VM:")
    report = diagnose_mod.diagnose(guest, TIMEOUTS)
    console.say(report.text())
    failure = report.failure
    if failure is not None:
        raise NotWorking("Container management does not work yet for %s: %s: %s"
                         % (guest.where, failure.title, failure.detail or "failed"),
                         guest, report)
    return report


def register(console: Console, guest: Guest) -> None:
    changed = ensure(guest.xapi, guest.ref, xapi_keys.MONITOR, "True")
    console.say("The VM is registered for container monitoring%s." % (
        "" if changed else " (it already was)"))


def other_config_value(guest: Guest, key: str) -> Optional[str]:
    value = guest.other_config.get(key, "").strip()
    return value or None
