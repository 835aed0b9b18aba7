"""Plugin functions that talk to a guest's Docker engine.

Kept apart from plugin.py so that calls that don't need Docker (register,
deregister, forwarding to another host) never import the Docker SDK and
paramiko, which take about half a second to load.
"""

import logging
from typing import Dict

from xscontainer import diagnose as diagnose_mod
from xscontainer import xapi_keys, xmlenc
from xscontainer.docker_api import DockerClient, check_container_ref
from xscontainer.guest import Guest
from xscontainer.xapi import Xapi

log = logging.getLogger(__name__)


def _running_guest(xapi: Xapi, args: Dict[str, str]) -> Guest:
    guest = Guest.load(xapi, args["vmuuid"])
    guest.require_running()
    return guest


def get_inspect(xapi: Xapi, args: Dict[str, str]) -> str:
    ref = check_container_ref(args["object"])
    with _running_guest(xapi, args).docker() as docker:
        return xmlenc.docker_inspect(docker.inspect(ref))


def get_top(xapi: Xapi, args: Dict[str, str]) -> str:
    ref = check_container_ref(args["object"])
    with _running_guest(xapi, args).docker() as docker:
        return xmlenc.docker_top(docker.top(ref))


def lifecycle(operation: str, xapi: Xapi, args: Dict[str, str]) -> str:
    ref = check_container_ref(args["container"])  # refused before any connection
    guest = _running_guest(xapi, args)
    with guest.docker() as docker:
        docker.lifecycle(operation, ref)
        if xapi_keys.DOCKER_PS in guest.other_config:
            refresh_docker_ps(guest, docker)
    return ""


def refresh_docker_ps(guest: Guest, docker: DockerClient) -> None:
    """Publish the container list so a state change shows at once."""
    xml = xmlenc.docker_ps(docker.ps())
    current = guest.xapi.vm_other_config(guest.ref).get(xapi_keys.DOCKER_PS)
    if current != xml:
        guest.xapi.set_vm_other_config(guest.ref, xapi_keys.DOCKER_PS, xml)


def diagnose(xapi: Xapi, args: Dict[str, str]) -> str:
    return diagnose_mod.diagnose(Guest.load(xapi, args["vmuuid"])).text()
