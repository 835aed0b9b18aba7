"""Method registry and dispatch: XML-RPC method name + params -> the
{'Status': ..., 'Value' | 'ErrorDescription': ...} struct xapi returns."""

import inspect
import logging
import threading
from collections import Counter
from typing import Any, Callable, Dict, Sequence

from .errors import ApiError
from .sessions import Sessions
from .store import Store

log = logging.getLogger("xapisim")

VM_OTHER_CONFIG_WRITES = (
    "VM.add_to_other_config",
    "VM.remove_from_other_config",
    "VM.set_other_config",
)


class Config:
    def __init__(self, plugins_dir: str, lab_dir: str, plugin_timeout: float) -> None:
        self.plugins_dir = plugins_dir
        self.lab_dir = lab_dir
        self.plugin_timeout = plugin_timeout


class Call:
    """What a handler gets besides its XML-RPC arguments."""

    def __init__(self, api: "Api", session: str, over_unix_socket: bool) -> None:
        self.api = api
        self.store = api.store
        self.sessions = api.sessions
        self.config = api.config
        self.session = session
        self.over_unix_socket = over_unix_socket


Handler = Callable[..., Any]


class Method:
    __slots__ = ("func", "locked", "max_args", "min_args", "with_session")

    def __init__(self, func: Handler, locked: bool, with_session: bool) -> None:
        params = list(inspect.signature(func).parameters.values())[1:]  # after `call`
        self.func = func
        self.min_args = sum(1 for p in params if p.default is inspect.Parameter.empty)
        self.max_args = len(params)
        self.locked = locked  # False: the handler manages the lock (blocking calls)
        self.with_session = with_session  # first XML-RPC param is a session ref


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: Counter = Counter()
        self.vm_other_config_writes: Counter = Counter()
        self.protocols: Counter = Counter()  # requests per wire protocol

    def record(self, method: str, vm_uuid: str = "") -> None:
        with self._lock:
            self.calls[method] += 1
            if vm_uuid:
                self.vm_other_config_writes[vm_uuid] += 1

    def record_protocol(self, protocol: str) -> None:
        with self._lock:
            self.protocols[protocol] += 1

    def snapshot(self) -> Dict[str, Any]:
        with self._lock:
            return {
                "calls": dict(self.calls),
                "calls_total": sum(self.calls.values()),
                "vm_other_config_writes": dict(self.vm_other_config_writes),
                "vm_other_config_writes_total": sum(self.vm_other_config_writes.values()),
                "protocols": dict(self.protocols),
            }

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.vm_other_config_writes.clear()
            self.protocols.clear()


class Api:
    def __init__(self, store: Store, config: Config) -> None:
        self.store = store
        self.config = config
        self.sessions = Sessions(store.changed)
        self.stats = Stats()
        self.methods: Dict[str, Method] = {}

    def add(self, name: str, func: Handler, locked: bool = True, with_session: bool = True
            ) -> None:
        self.methods[name] = Method(func, locked, with_session)

    def method(self, name: str, locked: bool = True, with_session: bool = True
               ) -> Callable[[Handler], Handler]:
        def register(func: Handler) -> Handler:
            self.add(name, func, locked, with_session)
            return func

        return register

    def dispatch(self, name: str, params: Sequence[Any], over_unix_socket: bool
                 ) -> Dict[str, Any]:
        try:
            value = self._call(name, list(params), over_unix_socket)
        except ApiError as e:
            return {"Status": "Failure", "ErrorDescription": e.description}
        except Exception as e:  # a simulator bug: report it the way xapi reports its own
            log.exception("%s failed", name)
            return {"Status": "Failure", "ErrorDescription": ["INTERNAL_ERROR", repr(e)]}
        return {"Status": "Success", "Value": "" if value is None else value}

    def _call(self, name: str, params: list, over_unix_socket: bool) -> Any:
        method = self.methods.get(name)
        if method is None:
            raise ApiError("MESSAGE_METHOD_UNKNOWN", name)
        offset = 1 if method.with_session else 0
        received = len(params) - offset
        if not method.min_args <= received <= method.max_args:
            raise ApiError("MESSAGE_PARAMETER_COUNT_MISMATCH", name,
                           method.max_args + offset, len(params))
        session = ""
        if method.with_session:
            session = params.pop(0)
            self.sessions.check(session)
        call = Call(self, session, over_unix_socket)
        if not method.locked:
            result = method.func(call, *params)
            self.stats.record(name)
            return result
        with self.store.mutation():
            result = method.func(call, *params)
            is_vm_write = name in VM_OTHER_CONFIG_WRITES
            self.stats.record(name, self.store.get("VM", params[0])["uuid"] if is_vm_write else "")
        return result
