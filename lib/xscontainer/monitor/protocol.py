"""The monitor's local control socket: path, limits and message shapes.

Shared by the daemon (control.py) and the plugin (client.py); standard library
only, so that the plugin's warm path never imports the Docker SDK or paramiko.

One request per connection, one JSON object per line each way:

    {"fn": NAME, "vmuuid": U, TARGET: C}    (a Docker-backed operation: NAME and
                                             its TARGET argument as in
                                             operations/table.py, e.g. "object"
                                             for get_inspect, "container" for stop;
                                             the operation's optional arguments, e.g.
                                             "tail", "format", as the plugin got them;
                                             no TARGET for get_ps, nor for get_stats of
                                             every running container)
    {"fn": "status"}                        (for tests and operators)

and the answer is one of

    {"value": "<payload, without the plugin's True prefix>"}
    {"error": [CODE, message, details...]}             (an XSContainerError description)
    {"unavailable": "<why>"}                           (use a direct connection instead)
"""

import os
from typing import Dict, Mapping, Optional

from xscontainer import paths
from xscontainer.operations.table import VM_ARG, Operation

SOCKET_NAME = "monitor.sock"
LOCK_NAME = "monitor.lock"
MAX_REQUEST_BYTES = 64 * 1024
# get_inspect of a container with many labels and mounts can be large
MAX_REPLY_BYTES = 32 * 1024 * 1024
# The plugin waits this long for an answer; the monitor bounds its work below it.
REQUEST_TIMEOUT = 60.0
CONNECT_TIMEOUT = 0.5


def socket_path() -> str:
    return os.path.join(paths.run_dir(), SOCKET_NAME)


def lock_path() -> str:
    return os.path.join(paths.run_dir(), LOCK_NAME)


def operation_request(op: Operation, vm_uuid: str, ref: str,
                      options: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """The request that asks the monitor to run `op` on container `ref` of a VM
    ("" when it names none) with the optional arguments `options`."""
    request = {"fn": op.name, VM_ARG: vm_uuid}
    if ref:
        request[op.target] = ref
    request.update(options or {})
    return request
