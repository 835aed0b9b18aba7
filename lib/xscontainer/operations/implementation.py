"""Each Docker-backed plugin function, on an already connected Docker client.

`perform(op, client, ref, publish)` is what both paths run once they hold a
connected client and have checked the container reference: the direct path
(containers.py, a client of its own) and the monitor (monitor/control.py,
its worker's live client). Reads return their XML; lifecycle operations
return "" after `publish(client)` has made the new state visible, each path
publishing its own way. Docker's failures arrive as XSContainerErrors from
the client (docker_api.py) and pass through unchanged.
"""

from typing import TYPE_CHECKING, Callable, Dict, Optional

from xscontainer import xmlenc
from xscontainer.operations.table import LIFECYCLE, Operation

if TYPE_CHECKING:  # the client is handed in; importing its module loads the Docker SDK
    from xscontainer.docker_api import DockerClient

Publish = Callable[["DockerClient"], None]


def get_inspect(client: "DockerClient", ref: str) -> str:
    return xmlenc.docker_inspect(client.inspect(ref))


def get_top(client: "DockerClient", ref: str) -> str:
    return xmlenc.docker_top(client.top(ref))


def lifecycle(client: "DockerClient", op: Operation, ref: str,
              publish: Optional[Publish] = None) -> str:
    client.lifecycle(op.name, ref)
    if publish is not None:
        publish(client)
    return ""


# the read operations by name: each function above is named as its operation (a
# unit test checks that every read of the table has one)
READS: Dict[str, Callable[["DockerClient", str], str]] = {
    fn.__name__: fn for fn in (get_inspect, get_top)
}


def perform(op: Operation, client: "DockerClient", ref: str,
            publish: Optional[Publish] = None) -> str:
    """The payload of `op` on `ref` (checked by the caller), without `True`.

    `publish` runs after a lifecycle operation succeeded (not after a read).
    """
    if op.kind == LIFECYCLE:
        return lifecycle(client, op, ref, publish)
    return READS[op.name](client, ref)

