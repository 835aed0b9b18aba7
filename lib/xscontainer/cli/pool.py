"""The `xscontainer` command's side of XAPI: VMs by uuid or name-label, the
plugin through host.call_plugin on this host, published container lists.

The command runs in the dom0 of any host of the pool and logs in as root on
that host's local XAPI socket (xapi.py). It calls the plugin on this host;
the plugin forwards a call to the host the VM runs on, so the command needs
nothing the plugin does not.
"""

import logging
import re
from typing import Any, Dict, List, NamedTuple

from xscontainer import errors, xapi_keys
from xscontainer.cli import exits
from xscontainer.xapi import Xapi

log = logging.getLogger(__name__)

PLUGIN = "xscontainer"
UUID_RE = re.compile(r"\A[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                     r"[0-9a-fA-F]{12}\Z")


class CommandError(Exception):
    """What the command reports on stderr, and its exit status."""

    def __init__(self, message: str, status: int, code: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code  # the XSCONTAINER_* (or XAPI) code behind it, if any

    def __str__(self) -> str:
        return self.message


class VM(NamedTuple):
    uuid: str
    name: str
    power_state: str
    other_config: Dict[str, str]

    @property
    def registered(self) -> bool:
        return self.other_config.get(xapi_keys.MONITOR, "").strip().lower() == "true"


def _is_guest(record: Dict[str, Any]) -> bool:
    return not (record.get("is_a_template") or record.get("is_control_domain")
                or record.get("is_a_snapshot"))


def _vm(record: Dict[str, Any]) -> VM:
    return VM(str(record.get("uuid", "")), str(record.get("name_label", "")),
              str(record.get("power_state", "")), dict(record.get("other_config") or {}))


def from_failure(exc: errors.XAPIError, what: str) -> CommandError:
    """The command's error for a failed XAPI or plugin call."""
    failure = exc.failure
    if failure is None:  # XAPI not reached at all
        return CommandError("%s: %s" % (what, exc.message), exits.XAPI, exc.code)
    code = failure[0] if failure else ""
    if code.startswith(errors.CODE_PREFIX) and len(failure) > 1:
        return CommandError(failure[1], exits.for_code(code), code)
    if code == "UNKNOWN_XENAPI_PLUGIN_FUNCTION":
        return CommandError(
            "%s: the xscontainer plugin on this host has no function %s; update xscontainer "
            "on every host of the pool." % (what, failure[1] if len(failure) > 1 else "?"),
            exits.XAPI, code)
    text = " ".join(failure)
    if len(text) > 600:  # a plugin's traceback, say: the log has it whole
        text = text[:600] + " ..."
    return CommandError("%s: XAPI failed: %s" % (what, text), exits.for_code(code), code)


class Pool:
    """A root session on this host's XAPI and what the command asks of it."""

    def __init__(self, xapi: Xapi) -> None:
        self.xapi = xapi

    @classmethod
    def connect(cls, timeout: float) -> "Pool":
        try:
            return cls(Xapi.login(timeout))
        except errors.XAPIError as exc:
            raise CommandError(exc.message, exits.XAPI, exc.code) from exc

    def close(self) -> None:
        self.xapi.close()

    def __enter__(self) -> "Pool":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def _call(self, method: str, *args: Any) -> Any:
        try:
            return self.xapi.call(method, *args)
        except errors.XAPIError as exc:
            raise from_failure(exc, method) from exc

    # -- VMs -----------------------------------------------------------------

    def vm(self, name: str) -> VM:
        """The VM called `name`: its uuid, else its name-label (unique)."""
        name = name.strip()
        if not name:
            raise CommandError("A VM must be named by its uuid or its name-label.", exits.USAGE)
        if UUID_RE.match(name):
            try:
                ref = self.xapi.call("VM.get_by_uuid", name.lower())
            except errors.XAPIError as exc:
                if not exc.gone:
                    raise from_failure(exc, "VM.get_by_uuid") from exc
            else:
                return _vm(self._call("VM.get_record", ref))
        matches = []
        for ref in self._call("VM.get_by_name_label", name):
            try:
                record = self.xapi.call("VM.get_record", ref)
            except errors.XAPIError as exc:
                if exc.gone:
                    continue
                raise from_failure(exc, "VM.get_record") from exc
            if _is_guest(record):
                matches.append(_vm(record))
        if not matches:
            raise CommandError(
                "There is no VM with uuid or name-label %r in this pool. List them with "
                "'xe vm-list params=uuid,name-label'." % name, exits.NO_VM,
                "XSCONTAINER_VM_NOT_FOUND")
        if len(matches) > 1:
            listed = "".join("\n  %s  %s" % (vm.uuid, vm.power_state)
                             for vm in sorted(matches, key=lambda vm: vm.uuid))
            raise CommandError(
                "%d VMs are named %r; name one by its uuid:%s" % (len(matches), name, listed),
                exits.AMBIGUOUS)
        return matches[0]

    def all_vms(self) -> List[VM]:
        records = self._call("VM.get_all_records")
        return sorted((_vm(r) for r in records.values() if _is_guest(r)),
                      key=lambda vm: (vm.name, vm.uuid))

    # -- the plugin ------------------------------------------------------------

    def this_host(self) -> str:
        try:
            return self.xapi.this_host()
        except errors.XAPIError as exc:
            raise from_failure(exc, "Finding this host") from exc

    def plugin(self, fn: str, args: Dict[str, str]) -> str:
        """The plugin function's payload: its value without the `True` prefix."""
        log.info("calling the plugin's %s", fn)
        value = str(self._call("host.call_plugin", self.this_host(), PLUGIN, fn, args))
        if not value.startswith("True"):
            raise CommandError("The plugin's %s answered %r instead of a result."
                               % (fn, value[:80]), exits.XAPI)
        return value[len("True"):]

    # -- secrets (prepare) -------------------------------------------------------

    def create_secret(self, value: str) -> str:
        try:
            return self.xapi.create_secret(value)
        except errors.XAPIError as exc:
            raise from_failure(exc, "secret.create") from exc

    def destroy_secret(self, uuid: str) -> None:
        try:
            self.xapi.destroy_secret(uuid)
        except errors.XAPIError as exc:
            log.warning("could not destroy a secret of ours: %s", exc.code)
