"""The plugin's warm path: ask this host's monitor, which holds a live connection.

Each plugin call is a new process: importing the Docker SDK and paramiko and
connecting to the guest costs about 0.8 s. The monitor already has a live
connection to every VM it monitors on this host, so Docker-backed plugin
functions ask it first over its control socket (protocol.py) and fall back
to a direct connection when the socket is absent, does not answer in time for
a read, or answers "unavailable". Standard library only: nothing here may
import the Docker SDK or paramiko.

The caller's session is still used to look the VM up (so its RBAC and the
plugin's checks stay in force); a VM that does not run is left to the direct
path, which reports it exactly as before.
"""

import json
import logging
import socket
from typing import Any, Dict, List, Mapping, Optional

from xscontainer import errors
from xscontainer.monitor import protocol
from xscontainer.operations import table
from xscontainer.xapi import Xapi

log = logging.getLogger(__name__)

# Why this host's monitor declined the call already (xscontainer.frontend asked
# it first): then it is not asked again.
_declined: List[str] = []


def declined(why: str) -> None:
    """The monitor declined this process's call: connect directly."""
    _declined.append(why)


class _NoAnswer(Exception):
    """The monitor could not be asked, or did not answer."""

    def __init__(self, why: str, sent: bool) -> None:
        Exception.__init__(self, why)
        self.sent = sent


def request(payload: Mapping[str, Any], connect_timeout: float = protocol.CONNECT_TIMEOUT,
            timeout: float = protocol.REQUEST_TIMEOUT) -> Dict[str, Any]:
    """Send one request to the monitor's control socket; its answer as a dict.

    Raises _NoAnswer (with .sent telling whether the request went out).
    """
    data = (json.dumps(payload) + "\n").encode("utf-8")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(connect_timeout)
        try:
            sock.connect(protocol.socket_path())
        except OSError as exc:
            raise _NoAnswer("cannot connect: %s" % exc, sent=False) from exc
        sock.settimeout(timeout)
        try:
            try:
                sock.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # a busy monitor answers before reading: its answer is still there
            reply = _read_line(sock, protocol.MAX_REPLY_BYTES)
        except (OSError, ValueError) as exc:
            raise _NoAnswer("no answer: %s" % exc, sent=True) from exc
    finally:
        sock.close()
    try:
        answer = json.loads(reply.decode("utf-8"))
    except ValueError as exc:
        raise _NoAnswer("unreadable answer", sent=True) from exc
    if not isinstance(answer, dict):
        raise _NoAnswer("unexpected answer", sent=True)
    return answer


def _read_line(sock: socket.socket, limit: int) -> bytes:
    parts: List[bytes] = []
    total = 0
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            raise ValueError("the monitor closed the connection")
        newline = chunk.find(b"\n")
        if newline >= 0:
            parts.append(chunk[:newline])
            return b"".join(parts)
        total += len(chunk)
        if total > limit:
            raise ValueError("the answer exceeded %d bytes" % limit)
        parts.append(chunk)


def error_from(description: Any) -> errors.XSContainerError:
    """The XSContainerError whose xapi_description() is `description`."""
    parts = [str(part) for part in description] if isinstance(description, list) else []
    if len(parts) < 2:
        return errors.XSContainerError("The monitor reported an unreadable error: %r"
                                       % (description,))
    code, message, details = parts[0], parts[1], parts[2:]
    cls = errors.CODES.get(code)
    if cls is not None:
        return cls(message, *details)
    exc = errors.XSContainerError(message, *details)
    exc.code = code
    return exc


def unanswered_error(fn: str, why: object) -> errors.XSContainerError:
    """A lifecycle operation handed to the monitor that got no answer."""
    return errors.Timeout(
        "The container operation %s was handed to xscontainer-monitor, which did not "
        "answer (%s). Check the container's state before retrying." % (fn, why))


def call(xapi: Xapi, fn: str, args: Mapping[str, str]) -> Optional[str]:
    """The payload of the Docker-backed function `fn` (operations/table.py) from
    the monitor, or None to connect directly."""
    op = table.lookup(fn)
    if _declined:
        log.debug("monitor not used for %s: %s", fn, _declined[-1])
        return None
    vm_uuid = args[table.VM_ARG]
    vm = xapi.vm_by_uuid(vm_uuid)  # VMNotFound, exactly as the direct path says it
    if xapi.call("VM.get_power_state", vm) != "Running":
        return None  # the direct path reports it
    ref = op.container_ref(args)  # as the monitor and the direct path would refuse it
    options = op.given_options(args)  # likewise
    try:
        answer = request(protocol.operation_request(op, vm_uuid, ref, options))
    except _NoAnswer as exc:
        if exc.sent and not op.repeatable:
            # the monitor may have done it: repeating it directly could do it twice
            raise unanswered_error(fn, exc) from exc
        log.debug("monitor not used for %s: %s", fn, exc)
        return None
    if "value" in answer:
        log.debug("%s served by the monitor", fn)
        return str(answer["value"])
    if "error" in answer:
        raise error_from(answer["error"])
    log.debug("monitor not used for %s: %s", fn, answer.get("unavailable", answer))
    return None
