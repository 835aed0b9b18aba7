"""XAPI access for xscontainer.

* Sessions on the host's local socket (path from paths.xapi_socket(), so the lab
  can point it at its simulator) with a timeout on every call; the plugin reuses
  the caller's session and never logs it out; daemons log in as root and log out.
* Single-key other-config edits only (remove_from_other_config +
  add_to_other_config): XenCenter, Xen Orchestra and others write other keys of
  the same maps concurrently, so a whole-map write could lose theirs.
* The handful of objects xscontainer touches: VMs, guest metrics, the pool's
  other-config, secrets, messages, and the raw VDI upload/download handlers.
* The XAPI boundary: this module alone imports XenAPI. Every XAPI failure and
  every transport failure leaves it as `errors.XAPIError` (the XAPI code in
  `.xapi_code`, "object gone" as `.gone`), whether through `Xapi.call` or
  `Xapi.api.Class.method`.

Session refs are credentials: nothing here logs them.
"""

import http.client
import logging
import socket
import urllib.parse
import xmlrpc.client
from typing import IO, Any, Dict, Iterable, Iterator, List, Optional, Tuple, cast

import XenAPI

from xscontainer import errors, paths

log = logging.getLogger(__name__)

NULL_REF = "OpaqueRef:NULL"
ORIGINATOR = "xscontainer"
# Long enough for any XAPI call we make; event.from callers pass their own.
DEFAULT_TIMEOUT = 60.0


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        http.client.HTTPConnection.__init__(self, "localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class UnixTransport(xmlrpc.client.Transport):
    """XML-RPC over xapi's unix socket, with a timeout (XenAPI's own has none)."""

    def __init__(self, path: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        xmlrpc.client.Transport.__init__(self)
        self.path = path
        self.timeout = timeout

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        # one connection per transport, reused across calls (HTTP/1.1 keep-alive)
        cached = self._connection[1] if self._connection else None
        if cached is not None and self._connection[0] == self.path:
            return cached
        conn = _UnixHTTPConnection(self.path, self.timeout)
        self._connection = (self.path, conn)
        return conn


class _Guarded:
    """XenAPI's method dispatcher with every failure turned into XAPIError: XAPI's
    own (XenAPI.Failure) and the transport's (socket errors, HTTP errors, XML-RPC
    faults such as an expired reused session)."""

    def __init__(self, target: Any, name: str = "") -> None:
        self._target = target
        self._name = name

    def __getattr__(self, name: str) -> "_Guarded":
        return _Guarded(getattr(self._target, name), self._name + "." + name if self._name
                        else name)

    def __call__(self, *args: Any) -> Any:
        try:
            return self._target(*args)
        except (XenAPI.Failure, OSError, http.client.HTTPException, xmlrpc.client.Error) as exc:
            raise errors.XAPIError.from_failure(exc, self._name) from exc


def _new_session(timeout: float) -> Any:
    path = paths.xapi_socket()
    # The host part is unused by UnixTransport; XenAPI only needs a parsable URL.
    return XenAPI.Session("http://localhost/", transport=UnixTransport(path, timeout))


def read_inventory(path: Optional[str] = None) -> Dict[str, str]:
    """Parse /etc/xensource-inventory (KEY='value' lines)."""
    result = {}
    with open(path or paths.inventory_file()) as f:
        for line in f:
            key, sep, value = line.strip().partition("=")
            if sep:
                result[key.strip()] = value.strip().strip("'\"")
    return result


def this_host_uuid() -> str:
    try:
        return read_inventory()["INSTALLATION_UUID"]
    except (OSError, KeyError) as exc:
        raise errors.XAPIError(
            "Cannot tell which host this is: %s has no INSTALLATION_UUID (%s)."
            % (paths.inventory_file(), exc)
        ) from exc


def logout_ref(session_ref: Optional[str], timeout: float = 5.0) -> None:
    """Log out a session by its ref over a connection of our own (best effort)."""
    if not session_ref:
        return
    session = _new_session(timeout)
    try:
        getattr(session, "session.logout")(session_ref)
    except (OSError, xmlrpc.client.Error) as exc:
        log.debug("logging out failed: %s", _describe(exc))
    finally:
        session.transport.close()


class Xapi:
    """A XAPI session plus the operations xscontainer needs.

    Use `Xapi.login()` in daemons and tools (logs out on close), or
    `Xapi.from_session_ref(ref)` in the plugin (the caller's session; never
    logged out).
    """

    def __init__(self, session: Any, owned: bool) -> None:
        self.session = session
        self._owned = owned
        self._this_host: Optional[str] = None
        # VM refs by uuid, for a session that lives for one plugin call (a VM
        # keeps its ref for that long); None: always asked
        self._vm_refs: Optional[Dict[str, str]] = None

    # -- sessions -----------------------------------------------------------

    @classmethod
    def login(cls, timeout: float = DEFAULT_TIMEOUT) -> "Xapi":
        session = _new_session(timeout)
        try:
            session.xenapi.login_with_password("root", "", "1.0", ORIGINATOR)
        except (OSError, xmlrpc.client.Error, XenAPI.Failure) as exc:
            raise errors.XAPIError(
                "Cannot log in to the local XAPI at %s: %s. Is xapi running?"
                % (paths.xapi_socket(), _describe(exc))
            ) from exc
        return cls(session, owned=True)

    @classmethod
    def from_session_ref(cls, session_ref: str, timeout: float = DEFAULT_TIMEOUT) -> "Xapi":
        session = _new_session(timeout)
        session._session = session_ref
        xapi = cls(session, owned=False)
        xapi._vm_refs = {}
        return xapi

    @property
    def session_ref(self) -> str:
        return cast(str, self.session._session)

    def close(self) -> None:
        if self._owned and self.session._session:
            try:
                self.session.xenapi.session.logout()
            except (OSError, xmlrpc.client.Error, XenAPI.Failure) as exc:
                log.debug("logout failed: %s", _describe(exc))
        transport = self.session.transport
        if transport is not None:
            transport.close()

    def __enter__(self) -> "Xapi":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    @property
    def api(self) -> Any:
        """`xapi.api.VM.get_record(ref)` etc.; any failure raises XAPIError."""
        return _Guarded(self.session.xenapi)

    def call(self, method: str, *args: Any) -> Any:
        """Call `Class.method` with args; any failure raises XAPIError."""
        target = self.api
        for part in method.split("."):
            target = getattr(target, part)
        return target(*args)

    # -- hosts ----------------------------------------------------------------

    def this_host(self) -> str:
        if self._this_host is None:
            self._this_host = self.call("host.get_by_uuid", this_host_uuid())
        return self._this_host

    # -- VMs ------------------------------------------------------------------

    def by_uuid(self, cls: str, uuid: str, missing: errors.XSContainerError) -> str:
        """The ref of the `cls` object with this uuid; raises `missing` if there is none."""
        try:
            return cast(str, self.call(cls + ".get_by_uuid", uuid))
        except errors.XAPIError as exc:
            if exc.gone:
                raise missing from exc
            raise

    def live_records(self, cls: str, refs: Iterable[str]) -> Iterator[Tuple[str, Dict[str, Any]]]:
        """(ref, record) of each of `refs` that still exists: objects can vanish
        between listing them and reading them."""
        for ref in refs:
            try:
                yield ref, self.call(cls + ".get_record", ref)
            except errors.XAPIError as exc:
                if not exc.gone:
                    raise

    def vm_by_uuid(self, vm_uuid: str) -> str:
        known = self._vm_refs.get(vm_uuid) if self._vm_refs is not None else None
        if known is not None:
            return known
        ref = self.by_uuid("VM", vm_uuid, errors.VMNotFound(
            "There is no VM with uuid %s in this pool. Check the uuid with 'xe vm-list'."
            % vm_uuid, vm_uuid))
        if self._vm_refs is not None:
            self._vm_refs[vm_uuid] = ref
        return ref

    def vm_record(self, vm_ref: str) -> Dict[str, Any]:
        return cast(Dict[str, Any], self.call("VM.get_record", vm_ref))

    def vm_other_config(self, vm_ref: str) -> Dict[str, str]:
        return cast(Dict[str, str], self.call("VM.get_other_config", vm_ref))

    def set_other_config_key(self, cls: str, ref: str, key: str, value: str) -> None:
        """Set one key of `cls`.other_config without touching the others."""
        for _attempt in range(3):
            self._remove_key(cls, ref, key)
            # someone else re-added the key between our remove and add: redo
            if self.add_key_if_absent(cls, ref, key, value):
                return
        raise errors.XAPIError(
            "Could not set other-config key %s: it kept being re-added concurrently." % key
        )

    def add_key_if_absent(self, cls: str, ref: str, key: str, value: str) -> bool:
        """Add one key to `cls`.other_config unless it is there already (then
        False: whoever set it first wins, and their value stays)."""
        try:
            self.call(cls + ".add_to_other_config", ref, key, value)
            return True
        except errors.XAPIError as exc:
            if exc.xapi_code != "MAP_DUPLICATE_KEY":
                raise
            return False

    def _remove_key(self, cls: str, ref: str, key: str) -> None:
        # remove_from_other_config on an absent key is a no-op in xapi
        self.call(cls + ".remove_from_other_config", ref, key)

    def set_vm_other_config(self, vm_ref: str, key: str, value: str) -> None:
        self.set_other_config_key("VM", vm_ref, key, value)

    def remove_vm_other_config(self, vm_ref: str, key: str) -> None:
        self._remove_key("VM", vm_ref, key)

    def guest_networks(self, vm_ref: str, metrics: str = "") -> Optional[Dict[str, str]]:
        """The VM's guest-metrics networks map, or None without guest metrics.
        `metrics`: the guest-metrics ref of a VM record just read (one request
        fewer; a ref that is gone meanwhile is looked up again)."""
        if metrics and metrics != NULL_REF:
            try:
                return cast(Dict[str, str], self.call("VM_guest_metrics.get_networks", metrics))
            except errors.XAPIError as exc:
                if not exc.gone:
                    raise
        metrics = self.call("VM.get_guest_metrics", vm_ref)
        if not metrics or metrics == NULL_REF:
            return None
        try:
            return cast(Dict[str, str], self.call("VM_guest_metrics.get_networks", metrics))
        except errors.XAPIError as exc:
            if exc.gone:  # metrics vanished under us
                return None
            raise

    # -- pool -------------------------------------------------------------------

    def pool(self) -> str:
        return cast(str, self.call("pool.get_all")[0])

    def pool_other_config(self) -> Dict[str, str]:
        return cast(Dict[str, str], self.call("pool.get_other_config", self.pool()))

    def set_pool_other_config(self, key: str, value: str) -> None:
        self.set_other_config_key("pool", self.pool(), key, value)

    # -- secrets ----------------------------------------------------------------

    def create_secret(self, value: str) -> str:
        """Store `value` as a XAPI secret; returns the secret's uuid."""
        ref = self.call("secret.create", {"value": value})
        return cast(str, self.call("secret.get_uuid", ref))

    def secret_value(self, secret_uuid: str) -> str:
        ref = self.call("secret.get_by_uuid", secret_uuid)
        return cast(str, self.call("secret.get_value", ref))

    def destroy_secret(self, secret_uuid: str) -> None:
        try:
            self.call("secret.destroy", self.call("secret.get_by_uuid", secret_uuid))
        except errors.XAPIError as exc:
            if not exc.gone:  # gone already is fine
                raise

    # -- messages (XenCenter shows them as alerts) --------------------------------

    def create_vm_message(self, name: str, vm_uuid: str, body: str, priority: int = 3) -> str:
        return cast(str, self.call("message.create", name, str(priority), "VM", vm_uuid, body))

    def vm_messages(self, name: str, vm_uuid: str) -> List[str]:
        """Refs of the messages called `name` attached to the VM."""
        records = self.call("message.get_all_records")
        return [
            ref
            for ref, rec in records.items()
            if rec.get("name") == name and rec.get("obj_uuid") == vm_uuid
        ]

    def destroy_message(self, ref: str) -> None:
        try:
            self.call("message.destroy", ref)
        except errors.XAPIError as exc:
            if not exc.gone:  # gone already is fine
                raise

    # -- raw VDI transfer (xapi's HTTP handlers on the same socket) ---------------

    def import_raw_vdi(self, vdi_ref: str, source: IO[bytes], size: int,
                       timeout: float = 300.0) -> None:
        """Upload `size` bytes from `source` into the VDI (PUT /import_raw_vdi)."""
        conn = _UnixHTTPConnection(paths.xapi_socket(), timeout)
        try:
            conn.putrequest("PUT", self._vdi_url("/import_raw_vdi", vdi_ref))
            conn.putheader("Content-Length", str(size))
            conn.endheaders()
            remaining = size
            while remaining:
                chunk = source.read(min(remaining, 1 << 20))
                if not chunk:
                    raise errors.XAPIError("The image ended %d bytes early." % remaining)
                conn.send(chunk)
                remaining -= len(chunk)
            response = conn.getresponse()
            body = response.read(4096)
            if response.status // 100 != 2:
                raise errors.XAPIError(
                    "Uploading the image failed: HTTP %d %s %s"
                    % (response.status, response.reason, body.decode("utf-8", "replace").strip())
                )
        except OSError as exc:
            raise errors.XAPIError("Uploading the image failed: %s" % exc) from exc
        finally:
            conn.close()

    def export_raw_vdi(self, vdi_ref: str, max_bytes: int, timeout: float = 300.0) -> bytes:
        """Download a VDI's raw content (GET /export_raw_vdi), at most max_bytes."""
        conn = _UnixHTTPConnection(paths.xapi_socket(), timeout)
        try:
            conn.request("GET", self._vdi_url("/export_raw_vdi", vdi_ref))
            response = conn.getresponse()
            if response.status // 100 != 2:
                raise errors.XAPIError(
                    "Reading the disk failed: HTTP %d %s" % (response.status, response.reason)
                )
            data = response.read(max_bytes + 1)
            if len(data) > max_bytes:
                raise errors.ResponseTooLarge(
                    "The disk is larger than the %d bytes expected." % max_bytes
                )
            return data
        except OSError as exc:
            raise errors.XAPIError("Reading the disk failed: %s" % exc) from exc
        finally:
            conn.close()

    def _vdi_url(self, handler: str, vdi_ref: str) -> str:
        query = urllib.parse.urlencode(
            {"session_id": self.session_ref, "vdi": vdi_ref, "format": "raw"}
        )
        return handler + "?" + query


def _describe(exc: BaseException) -> str:
    """A loggable description of an XAPI/transport error (no session refs)."""
    if isinstance(exc, XenAPI.Failure):
        return " ".join(str(d) for d in exc.details)
    if isinstance(exc, xmlrpc.client.Fault):
        return "XML-RPC fault %s: %s" % (exc.faultCode, exc.faultString)
    return "%s: %s" % (exc.__class__.__name__, exc)
