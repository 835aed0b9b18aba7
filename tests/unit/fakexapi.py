"""One in-memory XAPI server for the unit tests.

Only the server is fake. Tests reach it through the real XenAPI client and the
real `xscontainer.xapi.Xapi`, so the product's own XAPI code runs: single-key
other-config edits, add_key_if_absent, live_records, and the error boundary that
turns XenAPI failures and transport errors into errors.XAPIError.

Two ways in, both on the same database:

* `server.xapi()`: a real Xapi whose XenAPI session speaks XML-RPC to the server
  in-process (requests and answers are encoded and decoded as on the wire);
* `server.local(monkeypatch)`: the server on a unix socket as xapi serves dom0
  (XML-RPC, PUT /import_raw_vdi, GET /export_raw_vdi), with XSCONTAINER_XAPI_SOCKET
  (and the inventory) pointing at it, for code that opens its own connection:
  `Xapi.login`, `Xapi.from_session_ref`, the raw VDI transfers.

What it answers, as xapi does (HANDLE_INVALID [class, ref], UUID_INVALID [class,
uuid], MAP_DUPLICATE_KEY [class, field, ref, key], MESSAGE_METHOD_UNKNOWN [method],
MESSAGE_PARAMETER_COUNT_MISMATCH [method, expected, received] counting the session,
SESSION_INVALID [ref], DEVICE_ALREADY_EXISTS [device], VM_BAD_POWER_STATE, VDI_IN_USE,
FIELD_TYPE_ERROR [field], ...): for the classes in SCHEMA, get_record, get_all,
get_all_records, get_by_uuid, get_by_name_label, a getter per field (relations such
as VM.get_VBDs computed from the children), setters of the writable fields,
add_to_/remove_from_ of the writable maps (removing an absent key is a no-op);
VDI/VBD/VIF/secret create and destroy; VBD plug, unplug, insert, eject;
VM.get_allowed_VBD_devices / get_allowed_VIF_devices; message create, destroy, get,
get_since (records only, no field getters); session login, logout, get_uuid,
get_this_host; host.call_plugin through `plugins`. No events: event.from is unknown.

What a test controls:

* `add(cls, **fields)` makes an object without a call; `record(cls, ref)` is the
  live stored record (edit it to play another XAPI client; hold `lock` while the
  code under test runs in another thread); `ref_of`, `records`, `remove`;
* `down = True`: XAPI is unreachable. In-process calls raise ConnectionRefusedError
  from the transport, the socket refuses connections: the real Xapi turns either
  into an XAPIError with `failure` None. Set inside a call (a plugin hook), the call
  is done but never answered;
* `fail_on[method]`: a XenAPI.Failure (or a list of details) makes every call of
  that method fail with it after it reached the server; any other exception is
  raised by the transport instead (the call never reached XAPI). The keys
  "import_raw_vdi" / "export_raw_vdi" make those HTTP handlers answer 500;
* `calls` (method, args without the session, error code or None) for every call
  that reached the server, `count(method)`, `writes()`, `other_config_edits(cls, ref)`;
* `plugins[name] = fn(host_ref, fn_name, args) -> str` answers host.call_plugin
  (raise XenAPI.Failure for a plugin failure); `device_slots` bounds the allowed
  VBD/VIF devices; `vdi_data[vdi_ref]` holds what was uploaded to a VDI.
"""

import contextlib
import copy
import errno
import http.server
import inspect
import itertools
import os
import shutil
import socketserver
import tempfile
import threading
import time
import xmlrpc.client
from typing import Any, Callable, Dict, Iterator, List, NamedTuple, Optional, Tuple
from urllib.parse import parse_qsl, urlsplit

import XenAPI

from xscontainer.xapi import NULL_REF, Xapi

EPOCH = "19700101T00:00:00Z"
# int64 fields: xapi sends them as decimal strings
INT_FIELDS = frozenset(["virtual_size", "physical_size", "MTU", "priority"])
MESSAGE_CLASSES = {"VM": "VM", "Host": "host", "SR": "SR", "Pool": "pool", "VDI": "VDI"}
POWER_STATES = ("Halted", "Paused", "Running", "Suspended")


def _named(**fields: Any) -> Dict[str, Any]:
    return dict(name_label="", name_description="", **fields)


# class -> field -> default. Every class also has `uuid`.
SCHEMA: Dict[str, Dict[str, Any]] = {
    "pool": _named(master=NULL_REF, default_SR=NULL_REF, other_config={}),
    "host": _named(hostname="", address="", enabled=True, other_config={}),
    "VM": _named(power_state="Halted", is_a_template=False, is_a_snapshot=False,
                 is_control_domain=False, resident_on=NULL_REF, guest_metrics=NULL_REF,
                 snapshot_of=NULL_REF, other_config={}, xenstore_data={}),
    "VM_guest_metrics": dict(networks={}, os_version={}, PV_drivers_detected=False,
                             other_config={}),
    "SR": _named(type="", content_type="user", shared=False, physical_size="0",
                 other_config={}, sm_config={}),
    "PBD": dict(host=NULL_REF, SR=NULL_REF, device_config={}, currently_attached=False,
                other_config={}),
    "VDI": _named(SR=NULL_REF, virtual_size="0", type="user", sharable=False, read_only=False,
                  is_tools_iso=False, other_config={}, xenstore_data={}, sm_config={}, tags=[]),
    "VBD": dict(VM=NULL_REF, VDI=NULL_REF, device="", userdevice="", bootable=False, mode="RW",
                type="Disk", unpluggable=True, empty=False, currently_attached=False,
                other_config={}, qos_algorithm_type="", qos_algorithm_params={}),
    "VIF": dict(VM=NULL_REF, network=NULL_REF, device="", MAC="", MTU="1500",
                currently_attached=False, locking_mode="network_default", other_config={},
                qos_algorithm_type="", qos_algorithm_params={}),
    "network": _named(bridge="", MTU="1500", other_config={}),
    "secret": dict(value="", other_config={}),
    "message": dict(name="", priority="0", cls="VM", obj_uuid="", timestamp=EPOCH, body=""),
}
# (class, set field): computed from every child whose reference field names the object
RELATIONS: Dict[Tuple[str, str], Tuple[str, str]] = {
    ("VM", "VBDs"): ("VBD", "VM"),
    ("VM", "VIFs"): ("VIF", "VM"),
    ("VDI", "VBDs"): ("VBD", "VDI"),
    ("SR", "VDIs"): ("VDI", "SR"),
    ("SR", "PBDs"): ("PBD", "SR"),
    ("host", "PBDs"): ("PBD", "host"),
    ("host", "resident_VMs"): ("VM", "resident_on"),
    ("network", "VIFs"): ("VIF", "network"),
}
WRITABLE = frozenset(["name_label", "name_description", "other_config", "xenstore_data",
                      "sm_config", "value", "default_SR"])
WRITABLE_MAPS = frozenset(["other_config", "xenstore_data", "sm_config"])
# <class>.create: the fields xapi requires, then those it also takes
CREATE = {
    "VDI": (("name_label", "name_description", "SR", "virtual_size", "type", "sharable",
             "read_only", "other_config"), ("xenstore_data", "sm_config", "tags")),
    "VBD": (("VM", "VDI", "userdevice", "bootable", "mode", "type", "empty", "other_config",
             "qos_algorithm_type", "qos_algorithm_params"), ("unpluggable", "device")),
    "VIF": (("device", "network", "VM", "MAC", "MTU", "other_config", "qos_algorithm_type",
             "qos_algorithm_params"), ("locking_mode",)),
    "secret": (("value",), ("other_config",)),
}
WRITE_METHODS = ("add_to_", "remove_from_", "set_", "create", "destroy", "plug", "unplug",
                 "insert", "eject")


class Call(NamedTuple):
    """A call that reached the server."""

    method: str
    args: Tuple[Any, ...]  # without the session
    error: Optional[str]  # the failure's code, None if it succeeded


def failure(*details: Any) -> XenAPI.Failure:
    """The failure xapi answers, e.g. failure("HANDLE_INVALID", "VM", ref)."""
    return XenAPI.Failure([str(d) for d in details])


def _refused() -> ConnectionRefusedError:
    return ConnectionRefusedError(errno.ECONNREFUSED, os.strerror(errno.ECONNREFUSED))


def _date(seconds: float) -> str:
    return time.strftime("%Y%m%dT%H:%M:%SZ", time.gmtime(seconds))


class InProcessTransport(xmlrpc.client.Transport):
    """XML-RPC to a FakeXapiServer without a socket; XenAPI.Session's transport."""

    def __init__(self, server: "FakeXapiServer") -> None:
        xmlrpc.client.Transport.__init__(self)
        self.server = server

    def request(self, host: Any, handler: Any, request_body: Any, verbose: bool = False) -> Any:
        params, method = xmlrpc.client.loads(request_body)
        answer = self.server.answer(str(method), params)
        return xmlrpc.client.loads(xmlrpc.client.dumps((answer,), methodresponse=True))[0]

    def close(self) -> None:
        pass


class FakeXapiServer:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.objects: Dict[str, Dict[str, Dict[str, Any]]] = {cls: {} for cls in SCHEMA}
        self.sessions: Dict[str, str] = {}  # ref -> uuid
        self.calls: List[Call] = []
        self.fail_on: Dict[str, Any] = {}
        self.plugins: Dict[str, Callable[[str, str, Dict[str, str]], str]] = {}
        self.device_slots = 16
        self.vdi_data: Dict[str, bytes] = {}
        self._n = itertools.count(1)
        self._clock = 1767225600.0  # 2026-01-01: message timestamps, one second apart
        self._down = False
        self._listeners: List["Listener"] = []

    # -- the database, for tests ------------------------------------------------------

    def add(self, xapi_class: str, ref: Optional[str] = None, **fields: Any) -> str:
        """A new object (no call made), its ref `ref` if given; unknown fields are a
        test's mistake."""
        cls = xapi_class  # not a parameter name: messages have a field `cls`
        n = next(self._n)
        record = copy.deepcopy(SCHEMA[cls])
        record["uuid"] = "%08x-0000-4000-8000-%012x" % (n, n)
        if cls == "message":
            self._clock += 1
            record["timestamp"] = _date(self._clock)
        for name, value in fields.items():
            if name not in record:
                raise TypeError("%s has no field %s" % (cls, name))
            record[name] = str(value) if name in INT_FIELDS else value
        ref = ref or "OpaqueRef:%s-%d" % (cls, n)
        with self.lock:
            if ref in self.objects[cls]:
                raise ValueError("%s %s exists already" % (cls, ref))
            self.objects[cls][ref] = record
        return ref

    def record(self, cls: str, ref: str) -> Dict[str, Any]:
        """The stored record itself (KeyError if there is none)."""
        return self.objects[cls][ref]

    def records(self, cls: str) -> Dict[str, Dict[str, Any]]:
        return self.objects[cls]

    def ref_of(self, cls: str, uuid: str) -> str:
        for ref, record in self.objects[cls].items():
            if record["uuid"] == uuid:
                return ref
        raise KeyError("no %s with uuid %s" % (cls, uuid))

    def remove(self, cls: str, ref: str) -> None:
        """Destroy an object as another client would (no call recorded)."""
        with self.lock:
            del self.objects[cls][ref]

    # -- what happened ---------------------------------------------------------------

    def count(self, method: str) -> int:
        return sum(1 for c in self.calls if c.method == method)

    def methods(self) -> List[str]:
        return [c.method for c in self.calls]

    def writes(self) -> List[Call]:
        """The successful calls that changed something."""
        return [c for c in self.calls if c.error is None
                and c.method.partition(".")[2].startswith(WRITE_METHODS)]

    def other_config_edits(self, cls: str, ref: str) -> List[Tuple[str, ...]]:
        """The object's successful other-config edits in order: ("add", key, value)
        and ("remove", key)."""
        edits: List[Tuple[str, ...]] = []
        for c in self.calls:
            if c.error is None and c.args[:1] == (ref,):
                if c.method == cls + ".add_to_other_config":
                    edits.append(("add", *c.args[1:]))
                elif c.method == cls + ".remove_from_other_config":
                    edits.append(("remove", c.args[1]))
        return edits

    # -- sessions and clients -----------------------------------------------------------

    def login(self) -> str:
        """A new session ref (no call recorded), as a caller's session."""
        with self.lock:
            n = next(self._n)
            ref = "OpaqueRef:session-%d" % n
            self.sessions[ref] = "%08x-5555-4000-8000-%012x" % (n, n)
        return ref

    def expire_sessions(self) -> None:
        """Every session becomes invalid, as after a xapi restart."""
        with self.lock:
            self.sessions.clear()

    def session(self, ref: Optional[str] = None) -> Any:
        """A real XenAPI.Session on this server, using session `ref` (default: a new one)."""
        session = XenAPI.Session("http://fakexapi/", transport=InProcessTransport(self))
        session._session = ref or self.login()
        return session

    def xapi(self, this_host: Optional[str] = None) -> Xapi:
        """A real Xapi on a session of its own, not logged out on close (as the
        plugin's). `this_host`: the host ref this_host() gives, as if the
        inventory named it."""
        xapi = Xapi(self.session(), owned=False)
        if this_host is not None:
            xapi._this_host = this_host
        return xapi

    # -- reachability ----------------------------------------------------------------

    @property
    def down(self) -> bool:
        return self._down

    @down.setter
    def down(self, value: bool) -> None:
        with self.lock:
            self._down = bool(value)
            listeners = list(self._listeners)
        for listener in listeners:
            if value:
                listener.pause()
            else:
                listener.resume()

    def listen(self, path: str) -> "Listener":
        listener = Listener(self, path)
        with self.lock:
            self._listeners.append(listener)
        if not self._down:
            listener.resume()
        return listener

    @contextlib.contextmanager
    def local(self, monkeypatch: Any, this_host: Optional[str] = None) -> Iterator[str]:
        """Serve on a unix socket that XSCONTAINER_XAPI_SOCKET names, and with
        `this_host` give an inventory naming that host (XSCONTAINER_INVENTORY).
        Yields the socket's path."""
        # in the temporary folder, not a test's tmp_path: AF_UNIX paths are short
        folder = tempfile.mkdtemp(prefix="fakexapi-")
        path = os.path.join(folder, "xapi.sock")
        listener = self.listen(path)
        monkeypatch.setenv("XSCONTAINER_XAPI_SOCKET", path)
        if this_host is not None:
            inventory = os.path.join(folder, "xensource-inventory")
            with open(inventory, "w") as f:
                f.write("INSTALLATION_UUID='%s'\n" % self.record("host", this_host)["uuid"])
            monkeypatch.setenv("XSCONTAINER_INVENTORY", inventory)
        try:
            yield path
        finally:
            listener.close()
            shutil.rmtree(folder, ignore_errors=True)

    # -- answering ----------------------------------------------------------------------

    def answer(self, method: str, params: Tuple[Any, ...]) -> Dict[str, Any]:
        """XAPI's answer to one XML-RPC call; raises the transport's error instead
        when XAPI is unreachable."""
        if self._down:
            raise _refused()
        injected = self.fail_on.get(method)
        if injected is not None and not isinstance(injected, (XenAPI.Failure, list, tuple)):
            raise injected
        try:
            value = self._call(method, list(params))
            result = {"Status": "Success", "Value": "" if value is None else value}
        except XenAPI.Failure as exc:
            result = {"Status": "Failure", "ErrorDescription": [str(d) for d in exc.details]}
        if self._down:  # went down while answering: the answer never leaves
            raise _refused()
        return result

    def _record_call(self, method: str, args: List[Any], error: Optional[str]) -> None:
        with self.lock:
            self.calls.append(Call(method, tuple(args), error))

    def _call(self, method: str, params: List[Any]) -> Any:
        if method in ("session.login_with_password", "session.slave_local_login_with_password"):
            self._record_call(method, params[:1], None)
            if not params or params[0] != "root":
                raise failure("SESSION_AUTHENTICATION_FAILED", params[0] if params else "",
                              "Authentication failure")
            return self.login()
        args = params[1:]
        with self.lock:
            known = bool(params) and params[0] in self.sessions
        if not known:
            self._record_call(method, args, "SESSION_INVALID")
            raise failure("SESSION_INVALID", params[0] if params else "")
        try:
            value = self._dispatch(method, params[0], args)
        except XenAPI.Failure as exc:
            self._record_call(method, args, str(exc.details[0]))
            raise
        self._record_call(method, args, None)
        return value

    def _dispatch(self, method: str, session: str, args: List[Any]) -> Any:
        cls, _, name = method.partition(".")
        handler = self._handler(cls, name, session)
        if handler is None:
            raise failure("MESSAGE_METHOD_UNKNOWN", method)
        expected = len(inspect.signature(handler).parameters)
        if len(args) != expected:
            raise failure("MESSAGE_PARAMETER_COUNT_MISMATCH", method, expected + 1, len(args) + 1)
        injected = self.fail_on.get(method)
        if injected is not None:
            raise injected if isinstance(injected, XenAPI.Failure) else failure(*injected)
        if method == "host.call_plugin":
            return handler(*args)  # the hook may call back: not under the lock
        with self.lock:
            return handler(*args)

    def _get(self, cls: str, ref: Any) -> Dict[str, Any]:
        record = self.objects[cls].get(ref) if isinstance(ref, str) else None
        if record is None:
            raise failure("HANDLE_INVALID", cls, ref)
        return record

    def _children(self, cls: str, field: str, ref: str) -> List[str]:
        return [r for r, rec in self.objects[cls].items() if rec.get(field) == ref]

    def _relation(self, cls: str, child: str, child_field: str, ref: Any) -> List[str]:
        self._get(cls, ref)
        return self._children(child, child_field, ref)

    def _render(self, cls: str, ref: str) -> Dict[str, Any]:
        record = copy.deepcopy(self._get(cls, ref))
        for (parent, field), (child, child_field) in RELATIONS.items():
            if parent == cls:
                record[field] = self._children(child, child_field, ref)
        if cls == "message":
            record["timestamp"] = xmlrpc.client.DateTime(record["timestamp"])
        return record

    def _handler(self, cls: str, name: str, session: str) -> Optional[Callable[..., Any]]:
        if cls == "session":
            return {"logout": lambda: self.sessions.pop(session, None),
                    "local_logout": lambda: self.sessions.pop(session, None),
                    "get_uuid": self._session_uuid,
                    "get_this_host": self._session_host}.get(name)
        if cls not in SCHEMA:
            return None
        special = getattr(self, "_%s_%s" % (cls, name), None)
        if special is not None:
            return special  # type: ignore[no-any-return]
        generic = {
            "get_record": lambda ref: self._render(cls, ref),
            "get_all": lambda: list(self.objects[cls]),
            "get_all_records": lambda: {r: self._render(cls, r) for r in self.objects[cls]},
            "get_by_uuid": lambda uuid: self._by_uuid(cls, uuid),
        }
        if name in generic:
            return generic[name]
        fields = SCHEMA[cls]
        if cls == "message":
            return None  # xapi has records only for messages
        if name == "get_by_name_label" and "name_label" in fields:
            return lambda label: [r for r, rec in self.objects[cls].items()
                                  if rec["name_label"] == label]
        verb, _, field = name.partition("_")
        if name.startswith("get_") and (field in fields or field == "uuid"):
            return lambda ref: copy.deepcopy(self._get(cls, ref)[field])
        if name.startswith("get_") and (cls, field) in RELATIONS:
            child, child_field = RELATIONS[(cls, field)]
            return _bind(self._relation, cls, child, child_field)
        if verb == "set" and field in fields and field in WRITABLE:
            return lambda ref, value: self._set(cls, ref, field, value)
        for prefix, edit in (("add_to_", self._add_to_map), ("remove_from_", self._remove_key)):
            field = name[len(prefix):]
            if name.startswith(prefix) and field in fields and field in WRITABLE_MAPS:
                return _bind(edit, cls, field)
        if name == "create" and cls in CREATE:
            return lambda args: self._create(cls, args)
        if name == "destroy" and cls in ("VIF", "secret"):
            return lambda ref: self._destroy(cls, ref)
        return None

    # -- generic methods --------------------------------------------------------------

    def _by_uuid(self, cls: str, uuid: Any) -> str:
        for ref, record in self.objects[cls].items():
            if record["uuid"] == uuid:
                return ref
        raise failure("UUID_INVALID", cls, uuid)

    def _coerce(self, cls: str, field: str, value: Any) -> Any:
        """A value received for a field, in its stored form; FIELD_TYPE_ERROR if wrong."""
        default = SCHEMA[cls][field]
        if field in INT_FIELDS:
            if isinstance(value, (int, str)) and not isinstance(value, bool):
                try:
                    return str(int(value))
                except ValueError:
                    pass
        elif isinstance(default, bool):
            if isinstance(value, bool):
                return value
        elif isinstance(default, str):
            if isinstance(value, str):
                return value
        elif isinstance(default, dict):
            if isinstance(value, dict) and all(
                    isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
                return dict(value)
        elif isinstance(default, list):
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return list(value)
        raise failure("FIELD_TYPE_ERROR", field)

    def _set(self, cls: str, ref: Any, field: str, value: Any) -> None:
        record = self._get(cls, ref)
        record[field] = self._coerce(cls, field, value)

    def _add_to_map(self, cls: str, field: str, ref: Any, key: Any, value: Any) -> None:
        current = self._get(cls, ref)[field]
        if not isinstance(key, str) or not isinstance(value, str):
            raise failure("FIELD_TYPE_ERROR", field)
        if key in current:
            raise failure("MAP_DUPLICATE_KEY", cls, field, ref, key)
        current[key] = value

    def _remove_key(self, cls: str, field: str, ref: Any, key: Any) -> None:
        self._get(cls, ref)[field].pop(key, None)  # an absent key: nothing to do

    def _create(self, cls: str, args: Any) -> str:
        if not isinstance(args, dict):
            raise failure("FIELD_TYPE_ERROR", "args")
        required, optional = CREATE[cls]
        values = {}
        for field in required + optional:
            if field in args:
                values[field] = self._coerce(cls, field, args[field])
            elif field in required:
                raise failure("FIELD_TYPE_ERROR", field)
        check = getattr(self, "_check_new_%s" % cls, None)
        if check is not None:
            check(values)
        return self.add(cls, **values)

    def _destroy(self, cls: str, ref: Any) -> None:
        self._get(cls, ref)
        del self.objects[cls][ref]

    # -- session -------------------------------------------------------------------------

    def _session_uuid(self, ref: Any) -> str:
        if ref not in self.sessions:
            raise failure("HANDLE_INVALID", "session", ref)
        return self.sessions[ref]

    def _session_host(self, ref: Any) -> str:
        self._session_uuid(ref)
        pools = list(self.objects["pool"].values())
        return str(pools[0]["master"]) if pools else NULL_REF

    # -- VM, VBD, VDI, VIF -------------------------------------------------------------

    def _allowed(self, cls: str, field: str, vm: Any) -> List[str]:
        self._get("VM", vm)
        used = {self.objects[cls][c][field] for c in self._children(cls, "VM", vm)}
        return [str(n) for n in range(self.device_slots) if str(n) not in used]

    def _VM_get_allowed_VBD_devices(self, vm: Any) -> List[str]:
        return self._allowed("VBD", "userdevice", vm)

    def _VM_get_allowed_VIF_devices(self, vm: Any) -> List[str]:
        return self._allowed("VIF", "device", vm)

    def _check_new_VDI(self, values: Dict[str, Any]) -> None:
        self._get("SR", values["SR"])

    def _check_new_VBD(self, values: Dict[str, Any]) -> None:
        self._get("VM", values["VM"])
        if not values["empty"] or values["VDI"] != NULL_REF:
            self._get("VDI", values["VDI"])
        used = [self.objects["VBD"][v]["userdevice"]
                for v in self._children("VBD", "VM", values["VM"])]
        if values["userdevice"] in used:
            raise failure("DEVICE_ALREADY_EXISTS", values["userdevice"])

    def _check_new_VIF(self, values: Dict[str, Any]) -> None:
        self._get("VM", values["VM"])
        self._get("network", values["network"])
        used = [self.objects["VIF"][v]["device"]
                for v in self._children("VIF", "VM", values["VM"])]
        if values["device"] in used:
            raise failure("DEVICE_ALREADY_EXISTS", values["device"])

    def _running_vm(self, vbd: Dict[str, Any]) -> None:
        state = self._get("VM", vbd["VM"])["power_state"]
        if state != "Running":
            raise failure("VM_BAD_POWER_STATE", vbd["VM"], "running", state.lower())

    def _VBD_plug(self, ref: Any) -> None:
        vbd = self._get("VBD", ref)
        self._running_vm(vbd)
        if vbd["currently_attached"]:
            raise failure("DEVICE_ALREADY_ATTACHED", ref)
        vbd["currently_attached"] = True

    def _VBD_unplug(self, ref: Any) -> None:
        vbd = self._get("VBD", ref)
        self._running_vm(vbd)
        if not vbd["currently_attached"]:
            raise failure("DEVICE_ALREADY_DETACHED", ref)
        if not vbd["unpluggable"]:
            raise failure("VBD_NOT_UNPLUGGABLE", ref)
        vbd["currently_attached"] = False

    def _VBD_destroy(self, ref: Any) -> None:
        vbd = self._get("VBD", ref)
        if vbd["currently_attached"]:
            raise failure("OPERATION_NOT_ALLOWED", "VBD '%s' still attached to '%s'"
                          % (vbd["uuid"], self._get("VM", vbd["VM"])["uuid"]))
        del self.objects["VBD"][ref]

    def _VBD_insert(self, ref: Any, vdi: Any) -> None:
        vbd = self._get("VBD", ref)
        self._get("VDI", vdi)
        if vbd["type"] != "CD":
            raise failure("VBD_NOT_REMOVABLE_MEDIA", ref)
        if not vbd["empty"]:
            raise failure("VBD_NOT_EMPTY", ref)
        vbd.update(VDI=vdi, empty=False)

    def _VBD_eject(self, ref: Any) -> None:
        vbd = self._get("VBD", ref)
        if vbd["type"] != "CD":
            raise failure("VBD_NOT_REMOVABLE_MEDIA", ref)
        if vbd["empty"]:
            raise failure("VBD_IS_EMPTY", ref)
        vbd.update(VDI=NULL_REF, empty=True)

    def _VDI_destroy(self, ref: Any) -> None:
        self._get("VDI", ref)
        vbds = self._children("VBD", "VDI", ref)
        if any(self.objects["VBD"][v]["currently_attached"] for v in vbds):
            raise failure("VDI_IN_USE", ref, "destroy")
        for vbd in vbds:  # xapi destroys the detached VBDs with it
            del self.objects["VBD"][vbd]
        del self.objects["VDI"][ref]
        self.vdi_data.pop(ref, None)

    # -- message, host --------------------------------------------------------------------

    def _message_create(self, name: Any, priority: Any, cls: Any, obj_uuid: Any,
                        body: Any) -> str:
        target = MESSAGE_CLASSES.get(cls)
        if target is None or all(r["uuid"] != obj_uuid for r in self.objects[target].values()):
            raise failure("UUID_INVALID", cls, obj_uuid)
        for field, value in (("name", name), ("obj_uuid", obj_uuid), ("body", body)):
            self._coerce("message", field, value)
        return self.add("message", name=name, priority=self._coerce("message", "priority",
                                                                      priority),
                        cls=cls, obj_uuid=obj_uuid, body=body)

    def _message_destroy(self, ref: Any) -> None:
        self._destroy("message", ref)

    def _messages_after(self, since: Any, keep: Callable[[Dict[str, Any]], bool]
                        ) -> Dict[str, Dict[str, Any]]:
        if not isinstance(since, xmlrpc.client.DateTime):
            raise failure("FIELD_TYPE_ERROR", "since")
        return {ref: self._render("message", ref) for ref, m in self.objects["message"].items()
                if m["timestamp"][:17] > since.value[:17] and keep(m)}

    def _message_get(self, cls: Any, obj_uuid: Any, since: Any) -> Dict[str, Dict[str, Any]]:
        return self._messages_after(since, lambda m: m["cls"] == cls
                                    and m["obj_uuid"] == obj_uuid)

    def _message_get_since(self, since: Any) -> Dict[str, Dict[str, Any]]:
        return self._messages_after(since, lambda m: True)

    def _host_call_plugin(self, host: Any, plugin: Any, fn: Any, args: Any) -> str:
        with self.lock:
            self._get("host", host)
            hook = self.plugins.get(plugin)
        if hook is None:
            raise failure("XENAPI_MISSING_PLUGIN", plugin)
        return str(hook(host, fn, dict(args)))

    # -- raw VDI transfers ------------------------------------------------------------------

    def _vdi_for(self, method: str, query: Dict[str, str]) -> Tuple[Optional[str], int, str]:
        """(VDI ref, HTTP status, reason) of a disk request."""
        vdi = query.get("vdi", "")
        with self.lock:
            if vdi not in self.objects["VDI"]:
                try:
                    vdi = self._by_uuid("VDI", vdi)
                except XenAPI.Failure:
                    self._record_call(method, (query.get("vdi", ""),), "HANDLE_INVALID")
                    return None, 404, "no VDI %r" % query.get("vdi", "")
        injected = self.fail_on.get(method)
        if query.get("format", "raw") != "raw":
            return None, 404, "format %r is not supported" % query.get("format")
        if injected is not None:
            details = injected.details if isinstance(injected, XenAPI.Failure) else injected
            self._record_call(method, (vdi,), str(details[0]))
            return None, 500, " ".join(str(d) for d in details)
        return vdi, 200, "OK"

    def put_vdi(self, query: Dict[str, str], data: bytes) -> Tuple[int, str]:
        vdi, status, reason = self._vdi_for("import_raw_vdi", query)
        if vdi is None:
            return status, reason
        with self.lock:
            size = int(self.objects["VDI"][vdi]["virtual_size"])
            if len(data) > size:
                self._record_call("import_raw_vdi", (vdi,), "VDI_TOO_SMALL")
                return 400, "%d bytes exceed the VDI's virtual size %d" % (len(data), size)
            old = self.vdi_data.get(vdi, b"")
            self.vdi_data[vdi] = data + old[len(data):]
        self._record_call("import_raw_vdi", (vdi,), None)
        return 200, "OK"

    def get_vdi(self, query: Dict[str, str]) -> Tuple[int, str, bytes, int]:
        """(status, reason, content, virtual size): the content then zeros up to the size."""
        vdi, status, reason = self._vdi_for("export_raw_vdi", query)
        if vdi is None:
            return status, reason, b"", 0
        with self.lock:
            size = int(self.objects["VDI"][vdi]["virtual_size"])
            data = self.vdi_data.get(vdi, b"")
        self._record_call("export_raw_vdi", (vdi,), None)
        return 200, "OK", data, size


def _bind(func: Callable[..., Any], *bound: Any) -> Callable[..., Any]:
    """functools.partial with a signature the parameter count check can read."""
    params = list(inspect.signature(func).parameters.values())[len(bound):]

    def call(*args: Any) -> Any:
        return func(*bound, *args)

    call.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    return call


# -- the unix socket --------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_SocketServer"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def address_string(self) -> str:
        return "dom0"  # a unix socket peer has no address

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _drop(self) -> None:
        """XAPI is down: close without answering."""
        self.close_connection = True

    def _reply(self, status: int, body: bytes = b"") -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        try:
            self.end_headers()
            if body:
                self.wfile.write(body)
        except OSError:
            self.close_connection = True  # the client has gone: nobody to answer

    def do_POST(self) -> None:
        body = self._body()
        fake = self.server.fake
        if fake.down:
            self._drop()
            return
        params, method = xmlrpc.client.loads(body)
        try:
            answer = fake.answer(str(method), params)
        except OSError:
            self._drop()
            return
        self._reply(200, xmlrpc.client.dumps((answer,), methodresponse=True).encode("utf-8"))

    def do_PUT(self) -> None:
        url = urlsplit(self.path)
        data = self._body()
        if self.server.fake.down or len(data) < int(self.headers.get("Content-Length") or 0):
            self._drop()  # down, or the client stopped short: nothing is written
            return
        if url.path != "/import_raw_vdi":
            self._reply(404)
            return
        status, reason = self.server.fake.put_vdi(dict(parse_qsl(url.query)), data)
        self._reply(status, reason.encode() if status != 200 else b"")

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if self.server.fake.down:
            self._drop()
            return
        if url.path != "/export_raw_vdi":
            self._reply(404)
            return
        status, reason, data, size = self.server.fake.get_vdi(dict(parse_qsl(url.query)))
        if status != 200:
            self._reply(status, reason.encode())
            return
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        try:
            self.end_headers()
            self.wfile.write(data[:size])
            left = size - min(len(data), size)
            while left:  # a raw VDI is its whole virtual size
                chunk = min(left, 1 << 20)
                self.wfile.write(bytes(chunk))
                left -= chunk
        except OSError:
            pass  # the client read what it wanted and closed
        self.close_connection = True


class _SocketServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, path: str, fake: FakeXapiServer) -> None:
        self.fake = fake
        socketserver.UnixStreamServer.__init__(self, path, _Handler)
        # serve_forever polls, then accepts: should the connection be gone by then,
        # accept must not block (it would never see a shutdown request)
        self.socket.setblocking(False)


class Listener:
    """A FakeXapiServer on a unix socket. While the server is down the socket
    file stays but nobody listens: connecting is refused, as when xapi is stopped."""

    def __init__(self, fake: FakeXapiServer, path: str) -> None:
        self.fake = fake
        self.path = path
        self._server: Optional[_SocketServer] = None
        self._lock = threading.Lock()

    def resume(self) -> None:
        with self._lock:
            if self._server is not None:
                return
            if os.path.exists(self.path):
                os.unlink(self.path)
            self._server = _SocketServer(self.path, self.fake)
            threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                             daemon=True).start()

    def pause(self) -> None:
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def close(self) -> None:
        self.pause()
        with self.fake.lock:
            if self in self.fake._listeners:
                self.fake._listeners.remove(self)
        if os.path.exists(self.path):
            os.unlink(self.path)
