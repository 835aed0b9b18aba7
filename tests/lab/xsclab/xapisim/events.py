"""event.from as xapi implements it (ocaml/xapi/xapi_event.ml).

* A token is "%020d,%020d" (database generation, message generation); the
  empty token means generation 0, so the first call returns every current
  object of the subscribed classes as an `add` event. Messages share the
  database generation counter here, so both halves are equal.
* Changes are coalesced per object: an object created since the token gives
  one `add`, one modified gives one `mod` carrying its current record, one
  created and destroyed in between gives nothing; `del` events carry no
  snapshot.
* The call blocks until at least one event matches or the timeout passes,
  then returns the (possibly empty) events, valid_ref_counts and a new token.
  The token is taken under the same lock as the events, so a loop that passes
  each token back never misses a change.
"""

import time
from typing import Any, Dict, List, Optional, Set, Tuple

from .errors import ApiError
from .schema import CLASSES
from .sessions import Sessions
from .store import Store


def parse_token(token: Any) -> int:
    if token == "":
        return 0
    parts = token.split(",") if isinstance(token, str) else []
    if len(parts) == 2:
        try:
            return int(parts[0])
        except ValueError:
            pass
    raise ApiError("EVENT_FROM_TOKEN_PARSE_FAILURE", token)


def make_token(generation: int) -> str:
    return "%020d,%020d" % (generation, generation)


class Subscription:
    """'*', a class name ('vm', 'VM') or one object ('vm/OpaqueRef:...')."""

    def __init__(self, classes: Any) -> None:
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            raise ApiError("FIELD_TYPE_ERROR", "classes")
        self.everything = "*" in classes
        self.classes: Set[str] = set()
        self.objects: Set[Tuple[str, str]] = set()
        for item in classes:
            if item == "*":
                continue
            cls, _, ref = item.partition("/")
            if ref:
                self.objects.add((cls.lower(), ref))
            else:
                self.classes.add(cls.lower())

    def matches(self, event_class: str, ref: str) -> bool:
        return (
            self.everything
            or event_class in self.classes
            or (event_class, ref) in self.objects
        )


def _event(
    generation: int, event_class: str, operation: str, ref: str, snapshot: Optional[Dict]
) -> Dict[str, Any]:
    event: Dict[str, Any] = {
        "id": str(generation),
        "timestamp": "0.0",  # what xapi's event.from puts there
        "class": event_class,
        "operation": operation,
        "ref": ref,
    }
    if snapshot is not None:
        event["snapshot"] = snapshot
    return event


def collect(store: Store, subscription: Subscription, since: int) -> List[Dict[str, Any]]:
    """Every change after generation `since` that the subscription selects."""
    found: List[Tuple[int, Dict[str, Any]]] = []
    for cls, spec in CLASSES.items():
        event_class = spec.event_class
        for ref in store.objects[cls]:
            created, modified = store.meta[ref]
            if modified <= since or not subscription.matches(event_class, ref):
                continue
            if created > since:
                found.append((created, _event(created, event_class, "add", ref,
                                              store.render(cls, ref))))
            else:
                found.append((modified, _event(modified, event_class, "mod", ref,
                                               store.render(cls, ref))))
    for cls, ref, created, deleted in store.tombstones:
        event_class = CLASSES[cls].event_class
        if deleted > since >= created and subscription.matches(event_class, ref):
            found.append((deleted, _event(deleted, event_class, "del", ref, None)))
    found.sort(key=lambda item: item[0])
    return [event for _, event in found]


def event_from(
    store: Store, sessions: Sessions, session: str, *, classes: Any, token: Any, timeout: Any
) -> Dict[str, Any]:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise ApiError("FIELD_TYPE_ERROR", "timeout")
    subscription = Subscription(classes)
    since = parse_token(token)
    deadline = time.monotonic() + max(0.0, float(timeout))
    with store.changed:
        while True:
            sessions.check(session)  # a logout elsewhere ends the wait
            events = collect(store, subscription, since)
            remaining = deadline - time.monotonic()
            if events or remaining <= 0:
                break
            store.changed.wait(remaining)
        return {
            "events": events,
            "valid_ref_counts": {
                spec.event_class: len(store.objects[cls])
                for cls, spec in CLASSES.items()
                if cls != "message"  # messages are not database objects in xapi
            },
            "token": make_token(store.generation),
        }
