"""The methods xapi generates for every class: get_record, get_all,
get_all_records, get_by_uuid, get_by_name_label, get_<field>, set_<field> for
writable fields, add_to_/remove_from_<map>, add_/remove_<set>."""

from typing import Any, Dict, List

from .api import Api, Call, Handler
from .errors import NULL_REF, ApiError, handle_invalid
from .schema import CLASSES, MAP, REF, SET, Field, relations_of


def _get_record(cls: str) -> Handler:
    def get_record(call: Call, ref: Any) -> Dict[str, Any]:
        return call.store.render(cls, ref)

    return get_record


def _get_all(cls: str) -> Handler:
    def get_all(call: Call) -> List[str]:
        return call.store.refs(cls)

    return get_all


def _get_all_records(cls: str) -> Handler:
    def get_all_records(call: Call) -> Dict[str, Dict[str, Any]]:
        return {ref: call.store.render(cls, ref) for ref in call.store.refs(cls)}

    return get_all_records


def _get_by_uuid(cls: str) -> Handler:
    def get_by_uuid(call: Call, uuid: Any) -> str:
        return call.store.by_uuid(cls, uuid)

    return get_by_uuid


def _get_by_name_label(cls: str) -> Handler:
    def get_by_name_label(call: Call, label: Any) -> List[str]:
        objects = call.store.objects[cls]
        return [ref for ref, record in objects.items() if record["name_label"] == label]

    return get_by_name_label


def _getter(cls: str, field: Field) -> Handler:
    def get_field(call: Call, ref: Any) -> Any:
        return field.to_wire(call.store.get(cls, ref)[field.name])

    return get_field


def _relation_getter(cls: str, child_cls: str, child_field: str) -> Handler:
    def get_relation(call: Call, ref: Any) -> List[str]:
        call.store.get(cls, ref)
        return call.store.children(child_cls, child_field, ref)

    return get_relation


def _setter(cls: str, field: Field) -> Handler:
    def set_field(call: Call, ref: Any, value: Any) -> None:
        call.store.get(cls, ref)
        value = field.coerce(value)
        if field.kind == REF and value != NULL_REF and not call.store.exists(field.target, value):
            raise handle_invalid(field.target, value)
        call.store.update(cls, ref, **{field.name: value})

    return set_field


def _add_to_map(cls: str, field: Field) -> Handler:
    def add_to_map(call: Call, ref: Any, key: Any, value: Any) -> None:
        current = call.store.get(cls, ref)[field.name]
        if not isinstance(key, str) or not isinstance(value, str):
            raise ApiError("FIELD_TYPE_ERROR", field.name)
        if key in current:
            raise ApiError("MAP_DUPLICATE_KEY", cls, field.name, ref, key)
        call.store.update(cls, ref, **{field.name: {**current, key: value}})

    return add_to_map


def _remove_from_map(cls: str, field: Field) -> Handler:
    def remove_from_map(call: Call, ref: Any, key: Any) -> None:
        current = call.store.get(cls, ref)[field.name]
        # xapi removes a missing key silently, and still records the write
        updated = {k: v for k, v in current.items() if k != key}
        call.store.update(cls, ref, **{field.name: updated})

    return remove_from_map


def _add_to_set(cls: str, field: Field) -> Handler:
    def add_to_set(call: Call, ref: Any, value: Any) -> None:
        current = call.store.get(cls, ref)[field.name]
        if not isinstance(value, str):
            raise ApiError("FIELD_TYPE_ERROR", field.name)
        updated = current if value in current else [*current, value]
        call.store.update(cls, ref, **{field.name: updated})

    return add_to_set


def _remove_from_set(cls: str, field: Field) -> Handler:
    def remove_from_set(call: Call, ref: Any, value: Any) -> None:
        current = call.store.get(cls, ref)[field.name]
        call.store.update(cls, ref, **{field.name: [v for v in current if v != value]})

    return remove_from_set


def register(api: Api) -> None:
    for cls, spec in CLASSES.items():
        api.add(cls + ".get_record", _get_record(cls))
        api.add(cls + ".get_all", _get_all(cls))
        api.add(cls + ".get_all_records", _get_all_records(cls))
        api.add(cls + ".get_by_uuid", _get_by_uuid(cls))
        if not spec.field_methods:
            continue
        if "name_label" in spec.fields:
            api.add(cls + ".get_by_name_label", _get_by_name_label(cls))
        for name, field in spec.fields.items():
            api.add("%s.get_%s" % (cls, name), _getter(cls, field))
            if not field.rw:
                continue
            api.add("%s.set_%s" % (cls, name), _setter(cls, field))
            if field.kind == MAP:
                api.add("%s.add_to_%s" % (cls, name), _add_to_map(cls, field))
                api.add("%s.remove_from_%s" % (cls, name), _remove_from_map(cls, field))
            elif field.kind == SET:
                api.add("%s.add_%s" % (cls, name), _add_to_set(cls, field))
                api.add("%s.remove_%s" % (cls, name), _remove_from_set(cls, field))
        for parent_field, child_cls, child_field in relations_of(cls):
            api.add("%s.get_%s" % (cls, parent_field),
                    _relation_getter(cls, child_cls, child_field))
