"""The direct path of the plugin's Docker-backed functions, and diagnose.

The plugin connects to the guest itself (Guest.docker()) and runs the
operation (operations/implementation.py); a lifecycle operation then publishes
the refreshed docker_ps with a single-key XAPI write when the VM has one. The
monitor's warm path (monitor/control.py) runs the same implementation over its
live connection.

Kept apart from plugin.py so that calls that don't need Docker (register,
deregister, forwarding to another host, the warm path) never import the Docker
SDK and paramiko, which take about half a second to load.

A direct call is a process of its own that connects once. Its imports are
about half its time and connecting is mostly waiting (for XAPI, then for the
guest's sshd and the bridge's start), so paramiko, then the Docker SDK and the
operations' encoders, load in a thread (preload) while this one reads the VM
and the pool key from XAPI, connects over SSH and starts the bridge to the
engine.
"""

import functools
import importlib
import logging
import os
import sys
import threading
import time
from typing import TYPE_CHECKING, Dict, Optional

from xscontainer import paths, xapi_keys
from xscontainer.apiversions import FileVersionCache
from xscontainer.guest import Guest
from xscontainer.operations import table
from xscontainer.transport.base import deadline_at
from xscontainer.xapi import Xapi

if TYPE_CHECKING:
    from xscontainer.docker_api import DockerClient
    from xscontainer.operations import implementation

log = logging.getLogger(__name__)

# Seconds a Docker-backed plugin call may take on the direct path, connecting
# included: every Docker request ends by then (XSCONTAINER_TIMEOUT), whatever
# the guest does. Connecting has its own, shorter, limits (Timeouts).
CALL_DEADLINE = 50.0


# What a direct call imports in its preload thread, in this order: paramiko
# (needed once the VM and the pool key are read from XAPI), then the Docker
# SDK, requests and the reply's encoders (needed once connected).
PRELOADED = ("xscontainer.transport.ssh", "xscontainer.docker_api",
             "xscontainer.transport.sshbridge", "xscontainer.operations.implementation")


def preload() -> None:
    """Import PRELOADED in a thread (daemon: an import never holds the process).
    Whoever needs one of them meanwhile waits for it on Python's import lock; a
    failed import fails again, and is reported, where the module is needed."""

    def run() -> None:
        for name in PRELOADED:
            try:
                importlib.import_module(name)
            except Exception:  # reported by the import that needs it
                return

    # While it imports, a thread that the guest or XAPI woke waits for the GIL
    # up to the switch interval (5 ms by default) at each of the connection's
    # dozen round trips; this process makes no other use of threads.
    sys.setswitchinterval(0.001)
    threading.Thread(target=run, name="xscontainer-preload", daemon=True).start()


def version_cache() -> FileVersionCache:
    """Where plugin calls keep the API version negotiated with each VM's engine
    (root-only files under the run folder; gone at reboot, which is fine)."""
    return FileVersionCache(os.path.join(paths.run_dir(), "api-versions"))


def _running_guest(xapi: Xapi, args: Dict[str, str]) -> Guest:
    guest = Guest.load(xapi, args["vmuuid"])
    guest.require_running()
    return guest


def docker_backed(name: str, xapi: Xapi, args: Dict[str, str]) -> str:
    """The payload of the Docker-backed plugin function `name`, connecting directly."""
    op = table.lookup(name)
    ref = op.container_ref(args)  # refused before any connection
    options = op.parse_options(args)  # likewise
    preload()
    guest = _running_guest(xapi, args)
    publish: "Optional[implementation.Publish]" = None
    if op.is_lifecycle and xapi_keys.DOCKER_PS in guest.other_config:
        publish = functools.partial(refresh_docker_ps, guest)
    with deadline_at(time.monotonic() + CALL_DEADLINE), \
            guest.docker(cache=version_cache(), early_bridge=True) as docker:
        from xscontainer.operations import implementation  # noqa: PLC0415 (preload)

        return implementation.perform(op, docker, ref, publish, options)


def refresh_docker_ps(guest: Guest, docker: "DockerClient") -> None:
    """Publish the container list so a state change shows at once."""
    from xscontainer import xmlenc  # noqa: PLC0415 (preload)

    xml = xmlenc.docker_ps(docker.ps())
    current = guest.xapi.vm_other_config(guest.ref).get(xapi_keys.DOCKER_PS)
    if current != xml:
        guest.xapi.set_vm_other_config(guest.ref, xapi_keys.DOCKER_PS, xml)


def diagnose(xapi: Xapi, args: Dict[str, str]) -> str:
    """The diagnosis as text, or as JSON with format=json (jsonenc.diagnosis)."""
    from xscontainer import diagnose as diagnose_mod  # noqa: PLC0415 - not on the Docker calls' path
    from xscontainer import jsonenc  # noqa: PLC0415

    fmt = table.parse_format(args, table.TEXT)
    report = diagnose_mod.diagnose(Guest.load(xapi, args["vmuuid"]))
    return jsonenc.diagnosis(report) if fmt == table.JSON else report.text()
