"""The monitor's XAPI sessions.

The daemon holds exactly two sessions on the local XAPI:

* the **event session**, used only by the pool watcher for its blocking
  event.from long-poll (a blocked XML-RPC connection cannot carry other calls);
* the **call session**, shared by every other thread (publisher, VM workers
  connecting to guests, control-socket handlers). A XenAPI session object and
  its HTTP connection are not thread-safe, so `SerialXapi` sends one request
  at a time. XAPI calls here are short (local socket, < 10 ms) and rare next
  to Docker traffic, so one connection is plenty; one session per VM would
  also multiply sessions (xapi caps them per originator).

Both re-login on SESSION_INVALID by themselves (the XenAPI client does it; the
old session is already gone then). After a transport failure the watcher
logs its session out, where XAPI still answers, before logging in again.
"""

import logging
import socket
import threading
import xmlrpc.client
from typing import Any, List, Optional, Tuple

from xscontainer.xapi import Xapi

log = logging.getLogger(__name__)

EPOCH = xmlrpc.client.DateTime("19700101T00:00:00Z")


class SerialXapi(Xapi):
    """A logged-in Xapi whose requests may come from several threads."""

    def __init__(self, inner: Xapi) -> None:
        Xapi.__init__(self, inner.session, owned=True)
        self._lock = threading.RLock()
        request = inner.session.xenapi_request

        def serial_request(method: str, params: Tuple[Any, ...]) -> Any:
            with self._lock:
                return request(method, params)

        # XenAPI.Session dispatches every call through self.xenapi_request
        inner.session.xenapi_request = serial_request

    @classmethod
    def login_serial(cls, timeout: float) -> "SerialXapi":
        return cls(Xapi.login(timeout))

    def close(self) -> None:
        with self._lock:
            Xapi.close(self)


def interrupt(xapi: Xapi) -> None:
    """Make every call on `xapi` fail from now on, including one blocked in event.from.

    The transport refuses new connections (xmlrpc.client retries a request
    once on a fresh connection after a disconnect) and the current
    connection's socket is shut down, which wakes a thread blocked reading it.
    The session itself stays valid: log it out with `xapi.logout_ref`.
    """
    transport = getattr(xapi.session, "transport", None)
    if transport is None:
        return

    def refuse(host: Any) -> Any:
        raise ConnectionAbortedError("the XAPI session is being closed")

    transport.make_connection = refuse
    connection = getattr(transport, "_connection", None)
    conn = connection[1] if connection else None
    sock = getattr(conn, "sock", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def vm_messages(xapi: Xapi, name: str, vm_uuid: str) -> List[str]:
    """Refs of the VM's messages called `name`, oldest first."""
    records = xapi.call("message.get", "VM", vm_uuid, EPOCH)
    found = [(str(rec.get("timestamp", "")), ref) for ref, rec in records.items()
             if rec.get("name") == name]
    return [ref for _stamp, ref in sorted(found)]


def pool_master(xapi: Xapi) -> Optional[str]:
    pools = xapi.call("pool.get_all")
    if not pools:
        return None
    return str(xapi.call("pool.get_master", pools[0]))

