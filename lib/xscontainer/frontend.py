"""The plugin's front end: hand the whole call to this host's monitor, else run it here.

xapi starts plugins/xscontainer once per call, with the XML-RPC methodCall
(the caller's session and the arguments) as argv[1], and reads one
methodResponse from its stdout. Most of the time of a call that the monitor can
answer went into starting Python's XML-RPC and XenAPI modules, this package and
the interpreter's teardown, so this module imports nothing but os, sys and the
C half of the socket module: it sends the raw methodCall to the monitor's
control socket (xscontainer.monitor.plugincall answers it: the VM checked with
the caller's session, the forwarding decision, the Docker request, the
methodResponse with its `True` prefix), writes the answer as it came and ends
the process at once (os._exit: nothing is left to flush or close).

When the monitor is absent, declines (a VM it does not monitor, a call to
forward, a function it does not serve, an argument it leaves the plugin to
explain) or cannot be asked, the call runs the full way (xscontainer.wireio's
plugin_entry, then XenAPIPlugin.dispatch with xscontainer.plugin), which gives
the same answers byte for byte. A
lifecycle call that went out but got no answer is not repeated (the monitor may
have done it): it fails with XSCONTAINER_TIMEOUT.

argv[1] is taken as the bytes xapi passed (os.fsencode undoes the locale's
decoding) and the answer is written as the bytes the monitor sent (UTF-8), so
the locale plays no part on this path.

The exchange on the control socket (one per connection; everything else on
that socket is one JSON line each way, see monitor/protocol.py):

    plugin:  b"call <length>\\n" + the methodCall (its raw bytes)
    monitor: b"answer <length>\\n" + the methodResponse to print, or
             b"decline direct <why>\\n" (the monitor cannot serve this VM now:
             connect to the guest directly), or
             b"decline full <why>\\n" (run the call the full way, which may
             still ask the monitor, e.g. for a forwarded call)
"""

# _socket: socket.py's own imports (enum, selectors) cost more than the call
import _socket
import os
import sys

from xscontainer import paths

CALL = b"call"
ANSWER = b"answer"
DECLINE = b"decline"
# decline kinds
DIRECT = b"direct"
FULL = b"full"

SOCKET_NAME = "monitor.sock"
CONNECT_TIMEOUT = 0.5
# The monitor ends a call's Docker requests within 30 s; its XAPI checks take
# milliseconds. A read may wait this long for the whole answer.
ANSWER_TIMEOUT = 60.0
MAX_CALL_BYTES = 64 * 1024
MAX_HEADER_BYTES = 1024
# get_inspect and get_top are at most 4 MiB of characters: as UTF-8 and inside
# the methodResponse, well under this
MAX_ANSWER_BYTES = 32 * 1024 * 1024

LIFECYCLE = ("start", "stop", "restart", "pause", "unpause")


class Unanswered(Exception):
    """The monitor could not be asked (sent False) or did not answer (sent True)."""

    def __init__(self, why: str, sent: bool) -> None:
        Exception.__init__(self, why)
        self.sent = sent


def socket_path() -> str:
    return os.path.join(paths.run_dir(), SOCKET_NAME)


def method_name(call: bytes) -> str:
    """The methodName of a methodCall, or "" (plain text: xapi writes no entities there)."""
    start = call.find(b"<methodName>")
    end = call.find(b"</methodName>", start)
    if start < 0 or end < 0:
        return ""
    return call[start + len(b"<methodName>"):end].strip().decode("utf-8", "replace")


def ask_monitor(call: bytes, path: str = "", connect_timeout: float = CONNECT_TIMEOUT,
                timeout: float = ANSWER_TIMEOUT) -> tuple:
    """Hand the methodCall to the monitor: ("answer", the methodResponse bytes)
    or ("decline", kind, why). Raises Unanswered."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(connect_timeout)
        try:
            sock.connect(path or socket_path())
        except OSError as exc:
            raise Unanswered("cannot connect: %s" % exc, sent=False) from None
        sock.settimeout(timeout)
        try:
            try:
                sock.sendall(b"%s %d\n%s" % (CALL, len(call), call))
            except (BrokenPipeError, ConnectionResetError):
                pass  # a monitor that answers before reading: the answer is there
            return _read_answer(sock)
        except (OSError, ValueError) as exc:
            raise Unanswered("no answer: %s" % exc, sent=True) from None
    finally:
        sock.close()


def _read_answer(sock: _socket.socket) -> tuple:
    data = b""
    while b"\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ValueError("the monitor closed the connection")
        data += chunk
        if len(data) > MAX_ANSWER_BYTES:
            raise ValueError("the answer exceeded %d bytes" % MAX_ANSWER_BYTES)
    header, _, body = data.partition(b"\n")
    if len(header) > MAX_HEADER_BYTES:
        raise ValueError("unreadable answer")
    words = header.split(b" ", 2)
    if words[0] == DECLINE and len(words) >= 2:
        return ("decline", words[1], words[2].decode("utf-8", "replace") if len(words) > 2
                else "")
    if words[0] != ANSWER or len(words) != 2 or not words[1].isdigit():
        raise ValueError("unreadable answer")
    length = int(words[1])
    if length > MAX_ANSWER_BYTES:
        raise ValueError("the answer exceeded %d bytes" % MAX_ANSWER_BYTES)
    parts = [body]
    got = len(body)
    while got < length:
        chunk = sock.recv(min(1 << 20, length - got))
        if not chunk:
            raise ValueError("the answer was cut short")
        parts.append(chunk)
        got += len(chunk)
    answer = b"".join(parts)
    if len(answer) != length:
        raise ValueError("the answer is longer than announced")
    return ("answer", answer)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def full_path(monitor_declined: str = "") -> None:
    """Run the call the full way: XenAPIPlugin.dispatch with xscontainer.plugin's
    table. `monitor_declined`: why the monitor cannot serve the VM (the full
    path then does not ask it again)."""
    from xscontainer import wireio  # noqa: PLC0415 - only when the monitor does not answer

    wireio.plugin_entry()  # before XenAPIPlugin reads argv or anything writes
    import XenAPIPlugin  # noqa: PLC0415

    from xscontainer import plugin  # noqa: PLC0415

    if monitor_declined:
        from xscontainer.monitor import client  # noqa: PLC0415

        client.declined(monitor_declined)
    XenAPIPlugin.dispatch(plugin.handlers())


def unanswered(fn: str, why: str) -> None:
    """A lifecycle call the monitor got but did not answer: XSCONTAINER_TIMEOUT."""
    from xscontainer import plugin  # noqa: PLC0415

    plugin.print_unanswered(fn, why)


def end() -> None:
    """End the process now: stdout and the logs flushed, no teardown (closing
    guest connections and running exit handlers took a tenth of a second)."""
    try:
        sys.stdout.flush()
    finally:
        logging = sys.modules.get("logging")
        if logging is not None:
            logging.shutdown()
        os._exit(0)


def main() -> None:
    """The plugin executable's body."""
    call = os.fsencode(sys.argv[1]) if len(sys.argv) == 2 else b""
    declined = ""
    if call and len(call) <= MAX_CALL_BYTES:
        try:
            reply = ask_monitor(call)
        except Unanswered as exc:
            fn = method_name(call)
            if exc.sent and fn in LIFECYCLE:
                unanswered(fn, str(exc))
                end()
            # not reachable: the full path need not try again (a direct call
            # then saves two XAPI requests and a connect); no answer: it may
            reply = ("decline", FULL if exc.sent else DIRECT, str(exc))
        if reply[0] == "answer":
            write_all(1, reply[1])
            os._exit(0)
        if reply[1] == DIRECT:
            declined = reply[2] or "declined"
    full_path(declined)
    end()
