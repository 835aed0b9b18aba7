"""Docker's /events messages: both shapes, and what each one makes stale.

* Current shape (API 1.22+): ``{"Type", "Action", "Actor": {"ID", "Attributes"}}``.
  API 1.52 dropped the legacy fields below, so they cannot be relied on.
* Legacy shape (and still sent beside the current one up to API 1.51, and by
  Podman): ``{"status", "id", "from"}``; an image event has no ``from``.
* Compound actions carry a detail after a colon: ``health_status: healthy``,
  ``exec_start: sh -c ...``, ``exec_create: ...``; only the part before the
  colon names the action.
* Podman: a bare ``health_status`` with the value in a top-level
  ``HealthStatus``; older releases say ``died`` for ``die``; ``remove`` for a
  removed container.
"""

from typing import Any, Dict, FrozenSet, Mapping, Optional

from xscontainer import xapi_keys

ALL = frozenset((xapi_keys.DOCKER_PS, xapi_keys.DOCKER_INFO, xapi_keys.DOCKER_VERSION))
NOTHING: FrozenSet[str] = frozenset()

# Container actions that change what `docker ps -a` shows.
PS_ACTIONS = frozenset((
    "create", "start", "die", "kill", "stop", "pause", "unpause", "restart",
    "destroy", "rename", "health_status", "update",
))
# Container actions that change /info's counts (Containers, ContainersRunning,
# ContainersPaused, ContainersStopped).
INFO_CONTAINER_ACTIONS = frozenset(("create", "destroy", "start", "die", "pause", "unpause"))
# Image actions: /info counts images; `docker ps` shows a container's image by
# the name it resolves to now, so (un)tagging and deleting change it too.
# Container actions normally followed within moments by another that completes
# the change (`create` by `start` in a `docker run`, `kill` by `die`): they do
# not start the coalescer's quiet timer (see settles()).
SETTLING_ACTIONS = frozenset(("create", "kill"))
IMAGE_ACTIONS = frozenset(("delete", "import", "load", "pull", "tag", "untag"))
IMAGE_PS_ACTIONS = frozenset(("delete", "tag", "untag"))
# Legacy (untyped) events with these statuses came from images.
_LEGACY_IMAGE_STATUSES = IMAGE_ACTIONS | frozenset(("push", "save"))
_ALIASES = {"died": "die", "remove": "destroy"}


class DockerEvent:
    """One event, normalised: type, base action, the actor's id and attributes."""

    __slots__ = ("action", "actor_id", "attributes", "detail", "type")

    def __init__(self, type_: str, action: str, actor_id: str,
                 attributes: Optional[Dict[str, str]] = None, detail: str = "") -> None:
        self.type = type_
        self.action = action
        self.actor_id = actor_id
        self.attributes = attributes or {}
        self.detail = detail

    def __repr__(self) -> str:
        return "DockerEvent(%s %s %s%s)" % (
            self.type, self.action, self.actor_id[:12],
            " " + self.detail if self.detail else "")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DockerEvent) and all(
            getattr(self, name) == getattr(other, name) for name in self.__slots__)

    def __hash__(self) -> int:
        return hash((self.type, self.action, self.actor_id))


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def parse(message: Mapping[str, Any]) -> Optional[DockerEvent]:
    """A DockerEvent from one decoded /events message; None if it names no action."""
    if not isinstance(message, Mapping):
        return None
    raw_action = _text(message.get("Action")) or _text(message.get("status"))
    if not raw_action:
        return None
    base, _, detail = raw_action.partition(":")
    action = _ALIASES.get(base.strip(), base.strip())
    detail = detail.strip() or _text(message.get("HealthStatus"))
    actor = message.get("Actor")
    actor = actor if isinstance(actor, Mapping) else {}
    attributes = actor.get("Attributes")
    attributes = {
        str(k): str(v) for k, v in attributes.items()
    } if isinstance(attributes, Mapping) else {}
    actor_id = _text(actor.get("ID")) or _text(message.get("id"))
    type_ = _text(message.get("Type")).lower()
    if not type_:
        # legacy: container events name their image in `from`
        if "from" not in message and action in _LEGACY_IMAGE_STATUSES:
            type_ = "image"
        else:
            type_ = "container"
    return DockerEvent(type_, action, actor_id, attributes, detail)


def stale_keys(event: Optional[DockerEvent]) -> FrozenSet[str]:
    """The docker keys this event may have made stale."""
    if event is None:
        return NOTHING
    if event.type == "container":
        keys = set()
        if event.action in PS_ACTIONS:
            keys.add(xapi_keys.DOCKER_PS)
        if event.action in INFO_CONTAINER_ACTIONS:
            keys.add(xapi_keys.DOCKER_INFO)
        return frozenset(keys)
    if event.type == "image" and event.action in IMAGE_ACTIONS:
        if event.action in IMAGE_PS_ACTIONS:
            return frozenset((xapi_keys.DOCKER_PS, xapi_keys.DOCKER_INFO))
        return frozenset((xapi_keys.DOCKER_INFO,))
    if event.type == "daemon" and event.action == "reload":
        return frozenset((xapi_keys.DOCKER_INFO,))
    return NOTHING


def settles(event: Optional[DockerEvent]) -> bool:
    """True for an event that another normally follows at once (SETTLING_ACTIONS):
    publishing the state between the two would only cost a write."""
    return event is not None and event.type == "container" and event.action in SETTLING_ACTIONS


# The event types the monitor asks Docker for. Filtering by type (not by
# action) works the same on Docker and Podman; Podman's compat API matched
# action filters against its own names ("died") in some releases.
EVENT_FILTERS = {"type": ["container", "image", "daemon"]}
