"""A whole plugin call answered by the monitor (the thin plugin's warm path).

xscontainer.frontend sends the raw methodCall xapi gave the plugin; this
answers it the way the full path (XenAPIPlugin.dispatch with
xscontainer.plugin) would, byte for byte, or declines so that the full path
runs. The caller's session (the methodCall's first parameter) is used for
every XAPI check, so a call with a session XAPI refuses is never acted on; it
is never logged.

Served: the Docker-backed functions (operations/table.py) for a VM that runs
on this host and whose connection the monitor holds. Declined, for the full
path to decide and explain: any other function, a forwarded call, a missing
argument, a XAPI check that fails (an unknown VM, a refused session), a VM
that is not running here (it forwards or reports), and a VM the monitor does
not hold a connection to ("direct": the full path then connects itself
without asking again). A container reference that is not one is refused here
as the full path refuses it, and so are bad optional arguments (format, tail,
...); Docker's failures are its answer too.
"""

import logging
import xmlrpc.client
from typing import Any, Callable, Dict, List, Optional, Tuple
from xml.parsers.expat import ExpatError

from xscontainer import errors, plugin, xapi_keys
from xscontainer.operations import table
from xscontainer.xapi import Xapi

log = logging.getLogger(__name__)

# The XAPI checks are three calls on the local socket.
XAPI_TIMEOUT = 10.0

DIRECT = "direct"
FULL = "full"


class Declined(Exception):
    """The full path must run the call; `kind` is DIRECT or FULL."""

    def __init__(self, why: str, kind: str = FULL) -> None:
        Exception.__init__(self, why)
        self.kind = kind


Run = Callable[[table.Operation, str, str, Dict[str, table.Option]], Dict[str, Any]]


def parse(call: bytes) -> Tuple[str, table.Operation, Dict[str, Any]]:
    """(session, operation, args) of a methodCall this module serves; Declined otherwise."""
    try:
        params, fn = xmlrpc.client.loads(call.decode("utf-8"))
    except (UnicodeDecodeError, ExpatError, ValueError, TypeError, IndexError,
            xmlrpc.client.Error):
        raise Declined("not a methodCall") from None
    op = table.find(fn)
    if op is None:
        raise Declined("the monitor does not serve %r" % (fn,))
    if len(params) != 2 or not isinstance(params[0], str) or not isinstance(params[1], dict):
        raise Declined("unexpected parameters")
    args = dict(params[1])
    if args.get(xapi_keys.FORWARDED):
        raise Declined("a forwarded call")
    if any(not str(args.get(key, "")).strip() for key in op.required):
        raise Declined("an argument is missing")
    return params[0], op, args


def check_vm(session: str, vm_uuid: str, this_host: Optional[str]) -> None:
    """Declined unless the VM runs on this host, as the caller's session sees it."""
    if this_host is None:
        raise Declined("the monitor has not loaded the pool yet")
    with Xapi.from_session_ref(session, XAPI_TIMEOUT) as xapi:
        try:
            vm = xapi.call("VM.get_by_uuid", vm_uuid)
            resident = xapi.call("VM.get_resident_on", vm)
            power = xapi.call("VM.get_power_state", vm)
        except errors.XAPIError as exc:
            raise Declined("a XAPI check failed (%s)" % (exc.xapi_code or "no answer")) from None
    if resident != this_host:
        raise Declined("the VM is not resident on this host")
    if power != "Running":
        raise Declined("the VM is %s" % power)


def answer(call: bytes, run: Run, this_host: Optional[str]) -> bytes:
    """The methodResponse the plugin prints for `call` (UTF-8, with print's
    newline), running the operation with `run` (control.Dispatcher.run)."""
    session, op, args = parse(call)
    vm_uuid = str(args[table.VM_ARG])
    check_vm(session, vm_uuid, this_host)
    try:
        ref = op.container_ref(args)
        options = op.parse_options(args)
    except errors.XSContainerError as exc:
        return _failure(op.name, exc.xapi_description())
    result = run(op, vm_uuid, ref, options)
    if "value" in result:
        log.info("%s succeeded (monitor)", op.name)
        text = plugin.success_response(str(result["value"]))
    elif isinstance(result.get("error"), list) and len(result["error"]) >= 2:
        return _failure(op.name, result["error"])
    else:
        raise Declined(str(result.get("unavailable", "unavailable")), DIRECT)
    return (text + "\n").encode("utf-8")


def _failure(fn: str, description: List[Any]) -> bytes:
    log.warning("%s failed: %s %s", fn, description[0], description[1])
    return (plugin.failure_response(description) + "\n").encode("utf-8")
