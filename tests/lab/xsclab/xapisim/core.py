"""session, secret, message, event and system methods, and the lab's own methods."""

import xmlrpc.client
from typing import Any, Callable, Dict, List

from .api import Api, Call
from .errors import ApiError, field_type_error, handle_invalid, uuid_invalid
from .events import event_from, make_token
from .schema import CLASSES, OTHER_CONFIG, now_date, record_from_client
from .store import new_uuid

# message.cls -> the class whose uuid obj_uuid must name
MESSAGE_TARGETS = {"VM": "VM", "Host": "host", "SR": "SR", "Pool": "pool", "VDI": "VDI"}


def _string(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise field_type_error(name)
    return value


def _date(name: str, value: Any) -> str:
    """A client's dateTime as a stored date ("YYYYMMDDTHH:MM:SS" prefix compares in
    order): an XML-RPC dateTime, or over JSON-RPC the same text as a string."""
    if isinstance(value, xmlrpc.client.DateTime):
        return value.value[:17]
    if isinstance(value, str) and len(value) >= 17:
        return value[:17]
    raise field_type_error(name)


def _register_session(api: Api) -> None:
    def login(call: Call, user: Any, password: Any, version: Any = "", originator: Any = ""
              ) -> str:
        """version and originator are accepted and ignored, as the lab has one API version."""
        return call.sessions.login(_string("uname", user), _string("pwd", password),
                                   call.store.lab["root_password"], call.over_unix_socket)

    def slave_local_login(call: Call, user: Any, password: Any) -> str:
        return login(call, user, password)

    def logout(call: Call) -> None:
        call.sessions.logout(call.session)

    def get_uuid(call: Call, session: Any) -> str:
        try:
            return call.sessions.check(session)
        except ApiError:
            raise handle_invalid("session", session) from None

    def get_this_host(call: Call, session: Any) -> str:
        """Every session belongs to the pool master here (one socket serves all hosts)."""
        get_uuid(call, session)
        pool = call.store.refs("pool")[0]
        return str(call.store.get("pool", pool)["master"])

    api.add("session.login_with_password", login, with_session=False)
    api.add("session.slave_local_login_with_password", slave_local_login, with_session=False)
    api.add("session.logout", logout, locked=False)
    api.add("session.local_logout", logout, locked=False)
    api.add("session.get_this_host", get_this_host)
    api.add("session.get_uuid", get_uuid)


def _register_secret(api: Api) -> None:
    @api.method("secret.create")
    def create(call: Call, args: Any) -> str:
        values = record_from_client("secret", args, required=("value",), optional=(OTHER_CONFIG,))
        return call.store.create("secret", CLASSES["secret"].new_record(new_uuid(), **values))

    @api.method("secret.destroy")
    def destroy(call: Call, ref: Any) -> None:
        call.store.get("secret", ref)
        call.store.destroy("secret", ref)


def _register_message(api: Api) -> None:
    def records(call: Call, keep: Callable[[Dict[str, Any]], bool]
                ) -> Dict[str, Dict[str, Any]]:
        store = call.store
        return {ref: store.render("message", ref)
                for ref, msg in store.objects["message"].items() if keep(msg)}

    @api.method("message.create")
    def create(
        call: Call, name: Any, priority: Any, cls: Any, obj_uuid: Any, body: Any
    ) -> str:
        fields = CLASSES["message"].fields
        cls = fields["cls"].coerce(cls)
        target = MESSAGE_TARGETS.get(cls)
        obj_uuid = _string("obj_uuid", obj_uuid)
        if target is None or obj_uuid not in (
            rec["uuid"] for rec in call.store.objects[target].values()
        ):
            raise uuid_invalid(cls, obj_uuid)
        record = CLASSES["message"].new_record(
            new_uuid(), name=_string("name", name), priority=fields["priority"].coerce(priority),
            cls=cls, obj_uuid=obj_uuid, timestamp=now_date(), body=_string("body", body),
        )
        return call.store.create("message", record)

    @api.method("message.destroy")
    def destroy(call: Call, ref: Any) -> None:
        call.store.get("message", ref)
        call.store.destroy("message", ref)

    @api.method("message.get_since")
    def get_since(call: Call, since: Any) -> Dict[str, Dict[str, Any]]:
        after = _date("since", since)
        return records(call, lambda msg: msg["timestamp"][:17] > after)

    @api.method("message.get")
    def get(call: Call, cls: Any, obj_uuid: Any, since: Any) -> Dict[str, Dict[str, Any]]:
        cls = CLASSES["message"].fields["cls"].coerce(cls)
        after = _date("since", since)
        return records(call, lambda msg: msg["cls"] == cls and msg["obj_uuid"] == obj_uuid
                       and msg["timestamp"][:17] > after)


def _register_event(api: Api) -> None:
    def from_(call: Call, classes: Any, token: Any, timeout: Any) -> Dict[str, Any]:
        return event_from(call.store, call.sessions, call.session, classes=classes,
                          token=token, timeout=timeout)

    def inject(call: Call, cls: Any, ref: Any) -> str:
        """xapi's event.inject: a `mod` event for the object, and a token from
        which event.from returns it (the generation just before the injection)."""
        if not isinstance(cls, str) or cls not in CLASSES or not call.store.exists(cls, ref):
            raise handle_invalid(str(cls), ref)
        call.store.touch(ref)
        return make_token(call.store.generation - 1)

    api.add("event.from", from_, locked=False)
    api.add("event.inject", inject)


def _register_system(api: Api) -> None:
    def list_methods(call: Call) -> List[str]:
        """Every method name, as xapi's introspection (clients such as Xen
        Orchestra's take the classes to watch from the `*.get_all_records`)."""
        return sorted(call.api.methods)

    api.add("system.listMethods", list_methods, locked=False, with_session=False)


def _register_lab(api: Api) -> None:
    @api.method("lab.session_count", locked=False)
    def session_count(call: Call) -> int:
        return call.sessions.count()

    @api.method("lab.stats", locked=False)
    def stats(call: Call) -> Dict[str, Any]:
        return call.api.stats.snapshot()

    @api.method("lab.reset_stats", locked=False)
    def reset_stats(call: Call) -> None:
        call.api.stats.reset()

    @api.method("lab.methods", locked=False)
    def methods(call: Call) -> List[str]:
        return sorted(call.api.methods)


def register(api: Api) -> None:
    _register_session(api)
    _register_secret(api)
    _register_message(api)
    _register_event(api)
    _register_system(api)
    _register_lab(api)
