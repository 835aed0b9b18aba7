"""The xscontainer XAPI plugin: what XenCenter, Xen Orchestra and `xe` call.

`host.call_plugin(host, 'xscontainer', fn, args)` runs plugins/xscontainer, which
hands `handlers()` to xapi-core's XenAPIPlugin.dispatch. The contract XenCenter,
Xen Orchestra and `xe` rely on:

* argument keys exactly `vmuuid`, `object`, `container` (...); extra keys ignored;
* every success value is a string starting with the literal `True`, payload
  appended directly (`True` alone when there is none);
* a failure is a XAPI failure `[XSCONTAINER_<CODE>, message, details...]`;
  unexpected errors keep xapi's `XENAPI_PLUGIN_FAILURE [fn, class, message]`;
* a call for a VM resident on another host (or a VDI/SR only another host
  reaches) is forwarded there with host.call_plugin and its result, success or
  failure, returned unchanged.
"""

import functools
import importlib
import logging
from typing import Any, Callable, Dict, List, Optional, Tuple

import XenAPIPlugin  # from xapi-core on a host; a test stand-in in the lab

from xscontainer import errors, xapi_keys
from xscontainer import log as xlog
from xscontainer.monitor import client as monitor_client
from xscontainer.operations import table
from xscontainer.xapi import NULL_REF, Xapi

log = logging.getLogger(__name__)

PLUGIN_NAME = "xscontainer"
Handler = Callable[[Xapi, Dict[str, str]], str]


def _guest_ref(xapi: Xapi, args: Dict[str, str]) -> str:
    return xapi.vm_by_uuid(args["vmuuid"])


def register(xapi: Xapi, args: Dict[str, str]) -> str:
    """Set the registration flag to True. A VM already registered is left as it
    is: rewriting the flag (remove, then add) would show it absent for a moment."""
    vm = _guest_ref(xapi, args)
    flag = xapi.vm_other_config(vm).get(xapi_keys.MONITOR)
    if flag is not None and flag.strip().lower() == "true":
        log.info("VM %s is registered for monitoring already", args["vmuuid"])
        return ""
    xapi.set_vm_other_config(vm, xapi_keys.MONITOR, "True")
    log.info("registered VM %s for monitoring", args["vmuuid"])
    return ""


def deregister(xapi: Xapi, args: Dict[str, str]) -> str:
    vm = _guest_ref(xapi, args)
    xapi.set_vm_other_config(vm, xapi_keys.MONITOR, "False")
    for key in xapi_keys.DOCKER:
        xapi.remove_vm_other_config(vm, key)
    log.info("deregistered VM %s", args["vmuuid"])
    return ""


def _lazy(module: str, function: str, *bound: str) -> Handler:
    """A handler imported only when it runs (xscontainer.<module>.<function>)."""

    def run(xapi: Xapi, args: Dict[str, str]) -> str:
        target = getattr(importlib.import_module("xscontainer." + module), function)
        return str(target(*bound, xapi, args))

    run.__name__ = function
    return run


def _docker_backed(op: table.Operation) -> Handler:
    """A handler that asks this host's monitor first (its live connection answers
    in milliseconds; monitor/client.py) and connects directly when it cannot
    (containers.py). Both run the same implementation (operations/)."""
    direct = _lazy("containers", "docker_backed", op.name)

    def run(xapi: Xapi, args: Dict[str, str]) -> str:
        value = monitor_client.call(xapi, op.name, args)
        return value if value is not None else direct(xapi, args)

    run.__name__ = op.name
    return run


# name -> (required argument keys, handler): the Docker-backed functions of
# operations/table.py, then the others
FUNCTIONS: Dict[str, Tuple[Tuple[str, ...], Handler]] = {
    op.name: (op.required, _docker_backed(op)) for op in table.OPERATIONS.values()
}
FUNCTIONS.update({
    "register": (("vmuuid",), register),
    "deregister": (("vmuuid",), deregister),
    "diagnose": (("vmuuid",), _lazy("containers", "diagnose")),
    # xscontainer-prepare-vm's preparation for any XAPI client (prepare/call.py)
    "prepare": (("vmuuid",), _lazy("prepare.call", "prepare")),
    "get_config_drive_default": (
        ("templateuuid",), _lazy("configdrive", "get_config_drive_default")),
    "create_config_drive": (
        ("vmuuid", "sruuid", "configuration"), _lazy("configdrive", "create_config_drive")),
    "get_config_drive_configuration": (
        ("vdiuuid",), _lazy("configdrive", "get_config_drive_configuration")),
})


# -- forwarding -------------------------------------------------------------------


def _lookup(xapi: Xapi, method: str, *args: str) -> Optional[str]:
    """`method(*args)`, or None when XAPI does not know the object (the handler
    then reports it properly); unreachable XAPI raises XAPIError."""
    try:
        return str(xapi.call(method, *args))
    except errors.XAPIError as exc:
        if exc.gone:
            return None
        raise


def owner_host(xapi: Xapi, args: Dict[str, str]) -> Optional[str]:
    """The host that must run this call, or None to run it here.

    The VM's resident host if it runs; else a host with the VDI's SR attached;
    else a host with the SR attached; this host when it qualifies itself.
    """
    vm_uuid = args.get("vmuuid")
    if vm_uuid:
        try:
            vm: Optional[str] = xapi.vm_by_uuid(vm_uuid)  # remembered for the handler
        except errors.VMNotFound:
            vm = None
        resident = _lookup(xapi, "VM.get_resident_on", vm) if vm else None
        if resident and resident != NULL_REF:
            return resident
    sr = None
    if args.get("vdiuuid"):
        vdi = _lookup(xapi, "VDI.get_by_uuid", args["vdiuuid"])
        sr = _lookup(xapi, "VDI.get_SR", vdi) if vdi else None
    elif args.get("sruuid"):
        sr = _lookup(xapi, "SR.get_by_uuid", args["sruuid"])
    if sr is None:
        return None
    pbds = xapi.live_records("PBD", xapi.call("SR.get_PBDs", sr))
    hosts = [record["host"] for _pbd, record in pbds if record.get("currently_attached")]
    if not hosts or xapi.this_host() in hosts:
        return None
    return hosts[0]


def _forward(xapi: Xapi, host: str, fn: str, args: Dict[str, str]) -> str:
    forwarded = dict(args)
    forwarded[xapi_keys.FORWARDED] = "1"
    log.info("forwarding %s to host %s", fn, host)
    try:
        return str(xapi.call("host.call_plugin", host, PLUGIN_NAME, fn, forwarded))
    except errors.XAPIError as exc:
        if exc.failure is None:
            raise  # XAPI could not be reached: our own failure
        # the remote failure goes back to the caller unchanged
        raise XenAPIPlugin.Failure(exc.failure[0], exc.failure[1:]) from exc


# -- the dispatch edge --------------------------------------------------------------


def _clean(text: str) -> str:
    """Text fit for an XML-RPC failure: no secrets, no characters XML forbids."""
    from xscontainer import xmlenc  # noqa: PLC0415 (only when a call fails)

    return xmlenc.strip_illegal(xlog.redact(text))


def _xml_text(text: str) -> str:
    from xscontainer import xmlenc  # noqa: PLC0415

    return xmlenc.strip_illegal(text)


def _plugin_failure(description: List[Any]) -> Exception:
    texts = [_clean(str(d)) for d in description]
    return XenAPIPlugin.Failure(texts[0], texts[1:])


def failure_response(description: List[Any]) -> str:
    """The methodResponse XenAPIPlugin.dispatch prints for an XSContainerError
    whose xapi_description() is `description` (without print's newline)."""
    failure: Any = _plugin_failure(description)
    return str(XenAPIPlugin.failure_message(failure.params))


def success_response(payload: str) -> str:
    """The methodResponse XenAPIPlugin.dispatch prints for a success (`True` + payload)."""
    return str(XenAPIPlugin.success_message("True" + payload))


def print_unanswered(fn: str, why: str) -> None:
    """The failure of a lifecycle call the monitor got but did not answer."""
    xlog.configure("plugin")
    exc = monitor_client.unanswered_error(fn, why)
    log.warning("%s failed: %s %s", fn, exc.code, exc.message)
    print(failure_response(exc.xapi_description()))


def _wrap(fn: str, required: Tuple[str, ...], handler: Handler) -> Callable[[Any, Any], str]:
    @functools.wraps(handler)
    def call(session: Any, args: Any) -> str:
        xlog.configure("plugin")
        args = dict(args or {})
        try:
            missing = [k for k in required if not str(args.get(k, "")).strip()]
            if missing:
                raise errors.InvalidArgument(
                    "%s needs the argument(s) %s (e.g. xe host-call-plugin ... fn=%s %s)."
                    % (fn, ", ".join(missing), fn, " ".join("args:%s=..." % k for k in required))
                )
            with Xapi.from_session_ref(session._session) as xapi:
                if not args.get(xapi_keys.FORWARDED):
                    host = owner_host(xapi, args)
                    if host is not None and host != xapi.this_host():
                        return _forward(xapi, host, fn, args)
                # no character XML forbids in the reply (a parser refuses the whole reply)
                result = _xml_text("True" + handler(xapi, args))
            log.info("%s succeeded", fn)
            return result
        except XenAPIPlugin.Failure:
            raise  # a forwarded call's failure, passed on unchanged
        except errors.XSContainerError as exc:
            log.warning("%s failed: %s %s", fn, exc.code, exc.message)
            raise _plugin_failure(exc.xapi_description()) from exc
        except Exception:
            log.exception("%s failed unexpectedly", fn)
            raise

    return call


def handlers() -> Dict[str, Callable[[Any, Any], str]]:
    """The function table for XenAPIPlugin.dispatch."""
    return {fn: _wrap(fn, required, handler) for fn, (required, handler) in FUNCTIONS.items()}
