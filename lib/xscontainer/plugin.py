"""The xscontainer XAPI plugin: what XenCenter, Xen Orchestra and `xe` call.

`host.call_plugin(host, 'xscontainer', fn, args)` runs plugins/xscontainer, which
hands `handlers()` to xapi-core's XenAPIPlugin.dispatch. Contract (see
shared/reference/clients-contract.md section 6):

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
import logging
from typing import Any, Callable, Dict, List, Optional, Tuple

import XenAPI
import XenAPIPlugin  # from xapi-core on a host; a test stand-in in the lab

from xscontainer import diagnose as diagnose_mod
from xscontainer import errors, xmlenc
from xscontainer import log as xlog
from xscontainer.docker_api import DockerClient, check_container_ref
from xscontainer.guest import Guest
from xscontainer.xapi import NULL_REF, Xapi

log = logging.getLogger(__name__)

PLUGIN_NAME = "xscontainer"
MONITOR_KEY = "xscontainer-monitor"
DOCKER_KEYS = ("docker_ps", "docker_info", "docker_version")
# Set on calls this plugin forwards, so a VM that migrates mid-call cannot make
# two hosts bounce a call between them.
FORWARDED_KEY = "xscontainer-forwarded"

Handler = Callable[[Xapi, Dict[str, str]], str]


def _guest(xapi: Xapi, args: Dict[str, str]) -> Guest:
    return Guest.load(xapi, args["vmuuid"])


def _running_guest(xapi: Xapi, args: Dict[str, str]) -> Guest:
    guest = _guest(xapi, args)
    guest.require_running()
    return guest


# -- functions ----------------------------------------------------------------


def get_inspect(xapi: Xapi, args: Dict[str, str]) -> str:
    ref = check_container_ref(args["object"])
    with _running_guest(xapi, args).docker() as docker:
        return xmlenc.docker_inspect(docker.inspect(ref))


def get_top(xapi: Xapi, args: Dict[str, str]) -> str:
    ref = check_container_ref(args["object"])
    with _running_guest(xapi, args).docker() as docker:
        return xmlenc.docker_top(docker.top(ref))


def _lifecycle(operation: str) -> Handler:
    def run(xapi: Xapi, args: Dict[str, str]) -> str:
        ref = check_container_ref(args["container"])  # refused before any connection
        guest = _running_guest(xapi, args)
        with guest.docker() as docker:
            docker.lifecycle(operation, ref)
            if "docker_ps" in guest.other_config:
                refresh_docker_ps(guest, docker)
        return ""

    run.__name__ = operation
    return run


def refresh_docker_ps(guest: Guest, docker: DockerClient) -> None:
    """Publish the container list so a state change shows at once."""
    xml = xmlenc.docker_ps(docker.ps())
    current = guest.xapi.vm_other_config(guest.ref).get("docker_ps")
    if current != xml:
        guest.xapi.set_vm_other_config(guest.ref, "docker_ps", xml)


def register(xapi: Xapi, args: Dict[str, str]) -> str:
    guest = _guest(xapi, args)
    xapi.set_vm_other_config(guest.ref, MONITOR_KEY, "True")
    log.info("registered %s for monitoring", guest.where)
    return ""


def deregister(xapi: Xapi, args: Dict[str, str]) -> str:
    guest = _guest(xapi, args)
    xapi.set_vm_other_config(guest.ref, MONITOR_KEY, "False")
    for key in DOCKER_KEYS:
        xapi.remove_vm_other_config(guest.ref, key)
    log.info("deregistered %s", guest.where)
    return ""


def diagnose(xapi: Xapi, args: Dict[str, str]) -> str:
    return diagnose_mod.diagnose(_guest(xapi, args)).text()


# name -> (required argument keys, handler)
FUNCTIONS: Dict[str, Tuple[Tuple[str, ...], Handler]] = {
    "get_inspect": (("vmuuid", "object"), get_inspect),
    "get_top": (("vmuuid", "object"), get_top),
    "start": (("vmuuid", "container"), _lifecycle("start")),
    "stop": (("vmuuid", "container"), _lifecycle("stop")),
    "restart": (("vmuuid", "container"), _lifecycle("restart")),
    "pause": (("vmuuid", "container"), _lifecycle("pause")),
    "unpause": (("vmuuid", "container"), _lifecycle("unpause")),
    "register": (("vmuuid",), register),
    "deregister": (("vmuuid",), deregister),
    "diagnose": (("vmuuid",), diagnose),
}


# -- forwarding -------------------------------------------------------------------


def owner_host(xapi: Xapi, args: Dict[str, str]) -> Optional[str]:
    """The host that must run this call, or None to run it here.

    The VM's resident host if it runs; else a host with the VDI's SR attached;
    else a host with the SR attached; this host when it qualifies itself.
    """
    vm_uuid = args.get("vmuuid")
    if vm_uuid:
        try:
            resident = xapi.api.VM.get_resident_on(xapi.api.VM.get_by_uuid(vm_uuid))
        except XenAPI.Failure:
            resident = NULL_REF  # unknown VM: the handler reports it
        if resident and resident != NULL_REF:
            return str(resident)
    sr = None
    if args.get("vdiuuid"):
        try:
            sr = xapi.api.VDI.get_SR(xapi.api.VDI.get_by_uuid(args["vdiuuid"]))
        except XenAPI.Failure:
            return None
    elif args.get("sruuid"):
        try:
            sr = xapi.api.SR.get_by_uuid(args["sruuid"])
        except XenAPI.Failure:
            return None
    if sr is None:
        return None
    hosts: List[str] = []
    for pbd in xapi.api.SR.get_PBDs(sr):
        record = xapi.api.PBD.get_record(pbd)
        if record.get("currently_attached"):
            hosts.append(record["host"])
    if not hosts or xapi.this_host() in hosts:
        return None
    return hosts[0]


def _forward(xapi: Xapi, host: str, fn: str, args: Dict[str, str]) -> str:
    forwarded = dict(args)
    forwarded[FORWARDED_KEY] = "1"
    log.info("forwarding %s to host %s", fn, host)
    try:
        return str(xapi.api.host.call_plugin(host, PLUGIN_NAME, fn, forwarded))
    except XenAPI.Failure as exc:
        # the remote failure goes back to the caller unchanged
        raise _plugin_failure(list(exc.details)) from exc


# -- the dispatch edge --------------------------------------------------------------


def _plugin_failure(description: List[Any]) -> Exception:
    return XenAPIPlugin.Failure(str(description[0]), [str(d) for d in description[1:]])


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
                if not args.get(FORWARDED_KEY):
                    host = owner_host(xapi, args)
                    if host is not None and host != xapi.this_host():
                        return _forward(xapi, host, fn, args)
                result = "True" + handler(xapi, args)
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
