"""The monitor's control socket: plugin calls served over live connections.

`ControlServer` listens on <run dir>/monitor.sock (directory 0700, socket
0600, peers must be root or our own user), reads one request line (bounded in
size and time), answers one line and closes. Requests run concurrently on
threads started per connection, at most `max_concurrent` at once; beyond that
a request is answered "unavailable" at once and the plugin connects directly.

`Dispatcher` answers requests from the supervisor's workers (protocol.py has
the shapes): the Docker-backed operations of operations/table.py, run by the
same implementation as the plugin's direct path (operations/implementation.py)
on the worker's live client. Container references are validated again here,
before anything else. A lifecycle operation refreshes docker_ps and waits
until it is written before answering, so the new state shows in XAPI when the
plugin call returns. A read whose connection fails is answered "unavailable"
(the plugin then connects directly); a lifecycle operation's failure is an
error (it may have happened: the plugin must not repeat it). A request's
Docker calls end within CALL_DEADLINE; one that did not is an error
(XSCONTAINER_TIMEOUT), never "unavailable": the guest answered too slowly, and
the direct path would wait for it again.
"""

import functools
import json
import logging
import os
import socket
import stat
import struct
import threading
import time
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from xscontainer import errors, frontend, xapi_keys
from xscontainer.docker_api import DockerClient, deadline_at
from xscontainer.monitor import plugincall, protocol
from xscontainer.monitor.pool import Supervisor
from xscontainer.monitor.publisher import Publisher
from xscontainer.monitor.worker import VMWorker
from xscontainer.operations import implementation, table

log = logging.getLogger(__name__)

READ_TIMEOUT = 5.0
WRITE_TIMEOUT = 10.0
PUBLISH_WAIT = 10.0
MAX_CONCURRENT = 8
# Seconds the Docker requests of one control request may take together
# (the plugin waits protocol.REQUEST_TIMEOUT for the answer).
CALL_DEADLINE = 30.0

Handler = Callable[[Mapping[str, Any]], Dict[str, Any]]
CallHandler = Callable[[bytes], bytes]


class Dispatcher:
    def __init__(self, supervisor: Supervisor, publisher: Publisher,
                 status: Callable[[], Dict[str, Any]]) -> None:
        self.supervisor = supervisor
        self.publisher = publisher
        self._status = status
        self.served = 0
        self.unavailable = 0

    def __call__(self, req: Mapping[str, Any]) -> Dict[str, Any]:
        fn = req.get("fn")
        if fn == "status":
            return {"value": self._status()}
        op = table.find(fn)
        try:
            if op is None:
                raise errors.InvalidArgument("Unknown monitor request %r." % (fn,))
            ref = op.container_ref(req)
            options = op.parse_options(req)
        except errors.XSContainerError as exc:
            return {"error": exc.xapi_description()}
        vm_uuid = req.get(table.VM_ARG)
        return self.run(op, vm_uuid if isinstance(vm_uuid, str) else "", ref, options)

    def run(self, op: table.Operation, vm_uuid: str, ref: str,
            options: Optional[Mapping[str, table.Option]] = None) -> Dict[str, Any]:
        """Run `op` on container `ref` with its parsed `options` (both checked) of a
        VM over the worker's live client."""
        worker = self.supervisor.worker_by_uuid(vm_uuid) if vm_uuid else None
        if worker is None:
            return self._unavailable("this host's monitor does not monitor VM %s" % (vm_uuid,))
        client = worker.live_client()
        if client is None:
            return self._unavailable("the monitor's connection to VM %s is not up" % vm_uuid)
        publish = functools.partial(self._publish_ps, worker, op)
        try:
            with deadline_at(time.monotonic() + CALL_DEADLINE):
                value = implementation.perform(op, client, ref, publish, options)
        except errors.Timeout as exc:
            worker.connection_lost()
            return {"error": exc.xapi_description()}
        except errors.GuestConnectionError as exc:
            worker.connection_lost()
            if op.repeatable:
                return self._unavailable("the connection to VM %s failed: %s"
                                         % (vm_uuid, exc.message))
            return {"error": exc.xapi_description()}
        except errors.XSContainerError as exc:
            return {"error": exc.xapi_description()}
        self.served += 1
        return {"value": value}

    def plugin_call(self, call: bytes) -> bytes:
        """The thin plugin's whole call (plugincall.py): the reply to send,
        an answer or a decline (frontend.py has the framing)."""
        try:
            text = plugincall.answer(call, self.run, self.supervisor.this_host)
        except plugincall.Declined as exc:
            log.debug("declined a plugin call: %s", exc)
            return b"%s %s %s\n" % (frontend.DECLINE, exc.kind.encode("ascii"),
                                     str(exc).encode("utf-8", "replace")[:512])
        return b"%s %d\n%s" % (frontend.ANSWER, len(text), text)

    def _publish_ps(self, worker: VMWorker, op: table.Operation, client: DockerClient) -> None:
        """After a lifecycle operation: docker_ps refreshed and written to XAPI."""
        try:
            xml = worker.refresh_ps(client)
            if not self.publisher.wait_written(worker.ref, xapi_keys.DOCKER_PS, xml, PUBLISH_WAIT):
                log.warning("docker_ps of %s not written within %gs after %s",
                            worker.where, PUBLISH_WAIT, op.name)
        except errors.XSContainerError as exc:
            # done, but not yet visible: the event it caused will refresh docker_ps
            log.warning("refreshing docker_ps of %s after %s failed: %s",
                        worker.where, op.name, exc.message)

    def _unavailable(self, why: str) -> Dict[str, Any]:
        self.unavailable += 1
        return {"unavailable": why}


def _peer_uid(conn: socket.socket) -> Optional[int]:
    try:
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


class ControlServer:
    def __init__(self, handler: Handler, path: Optional[str] = None,
                 max_concurrent: int = MAX_CONCURRENT,
                 plugin_call: Optional[CallHandler] = None) -> None:
        self.handler = handler
        self.plugin_call = plugin_call
        self.path = path or protocol.socket_path()
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._sock: Optional[socket.socket] = None
        self._thread: Optional[threading.Thread] = None
        self._stopping = threading.Event()
        self.busy_refusals = 0

    def start(self) -> None:
        directory = os.path.dirname(self.path)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        os.chmod(directory, 0o700)
        if os.path.lexists(self.path):  # left by a run that crashed (we hold the lock)
            mode = os.lstat(self.path).st_mode
            if not stat.S_ISSOCK(mode):
                raise OSError("%s exists and is not a socket; not replacing it" % self.path)
            os.unlink(self.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            sock.bind(self.path)
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o600)
        sock.listen(32)
        self._sock = sock
        self._thread = threading.Thread(target=self._accept_loop, name="control", daemon=True)
        self._thread.start()
        log.info("serving the control socket %s", self.path)

    def stop(self) -> None:
        self._stopping.set()
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass
        if self._thread is not None:
            self._thread.join(1.0)

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            sock = self._sock
            if sock is None:
                return
            try:
                conn, _addr = sock.accept()
            except OSError:
                if self._stopping.is_set():
                    return
                log.exception("the control socket failed to accept; continuing")
                continue
            try:
                self._dispatch(conn)
            except Exception:  # keep serving
                log.exception("handling a control connection failed")
                conn.close()

    def _dispatch(self, conn: socket.socket) -> None:
        uid = _peer_uid(conn)
        if uid is None or uid not in (0, os.getuid()):
            log.warning("refused a control connection from uid %s", uid)
            conn.close()
            return
        if not self._slots.acquire(blocking=False):
            self.busy_refusals += 1
            _reply(conn, {"unavailable": "the monitor is busy"})
            conn.close()
            return
        try:
            threading.Thread(target=self._serve, args=(conn,), name="control-req",
                             daemon=True).start()
        except BaseException:
            self._slots.release()
            conn.close()
            raise

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(READ_TIMEOUT)
            try:
                line, rest = _read_line(conn)
                if line.startswith(frontend.CALL + b" "):
                    self._serve_call(conn, line, rest)
                    return
                req = json.loads(line.decode("utf-8"))
            except (OSError, ValueError) as exc:
                _reply(conn, {"error": errors.InvalidArgument(
                    "Unreadable control request: %s" % exc).xapi_description()})
                return
            if not isinstance(req, dict):
                _reply(conn, {"error": errors.InvalidArgument(
                    "A control request must be a JSON object.").xapi_description()})
                return
            try:
                answer = self.handler(req)
            except Exception as exc:  # answered, so the plugin need not wait
                log.exception("control request %s failed", req.get("fn"))
                answer = {"unavailable": "the monitor failed: %s" % exc}
            _reply(conn, answer)
        finally:
            conn.close()
            self._slots.release()

    def _serve_call(self, conn: socket.socket, line: bytes, rest: bytes) -> None:
        """The thin plugin's raw methodCall (frontend.py): answered or declined."""
        length = line[len(frontend.CALL) + 1:]
        if not length.isdigit() or int(length) > protocol.MAX_REQUEST_BYTES:
            raise ValueError("a plugin call must announce at most %d bytes"
                             % protocol.MAX_REQUEST_BYTES)
        call = _read_exactly(conn, int(length), rest)
        if self.plugin_call is None:
            reply = b"%s %s not served\n" % (frontend.DECLINE, frontend.FULL)
        else:
            try:
                reply = self.plugin_call(call)
            except Exception:  # never the call's text: it holds the session
                log.exception("a plugin call failed in the monitor")
                reply = b"%s %s the monitor failed\n" % (frontend.DECLINE, frontend.FULL)
        _send(conn, reply)


def _read_line(conn: socket.socket) -> Tuple[bytes, bytes]:
    """The first line of a request, and what came after it."""
    data = b""
    while b"\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
        if b"\n" not in data and len(data) > protocol.MAX_REQUEST_BYTES:
            raise ValueError("request larger than %d bytes" % protocol.MAX_REQUEST_BYTES)
    line, _, rest = data.partition(b"\n")
    return line, rest


def _read_exactly(conn: socket.socket, length: int, data: bytes) -> bytes:
    while len(data) < length:
        chunk = conn.recv(min(65536, length - len(data)))
        if not chunk:
            raise ValueError("the plugin call was cut short")
        data += chunk
    if len(data) != length:
        raise ValueError("the plugin call is longer than announced")
    return data


def _send(conn: socket.socket, data: bytes) -> None:
    try:
        conn.settimeout(WRITE_TIMEOUT)
        conn.sendall(data)
    except OSError as exc:
        log.debug("could not answer a plugin call: %s", exc)


def _reply(conn: socket.socket, answer: Mapping[str, Any]) -> None:
    try:
        conn.settimeout(WRITE_TIMEOUT)
        conn.sendall((json.dumps(answer) + "\n").encode("utf-8"))
    except OSError as exc:
        log.debug("could not answer a control request: %s", exc)
