"""Docker /events messages in every shape the monitor meets, and what each refreshes.

Shapes as the Docker Engine API reference documents them (EventMessage:
Type, Action, Actor{ID, Attributes}, scope, time, timeNano; the deprecated
status/id/from, dropped in API 1.52) and as Podman's compat API sends them
(legacy fields too, a bare health_status with a top-level HealthStatus)."""

import pytest

from xscontainer.monitor import events
from xscontainer.monitor.events import ALL, NOTHING, DockerEvent
from xscontainer.xapi_keys import DOCKER_INFO as INFO
from xscontainer.xapi_keys import DOCKER_PS as PS

CID = "ede54ee1afda366ab42f824e8a5ffd195155d853ceaec74a927f249ea270c743"


def current(type_, action, actor_id=CID, **attributes):
    """API 1.52+: no legacy fields."""
    return {"Type": type_, "Action": action,
            "Actor": {"ID": actor_id, "Attributes": dict(attributes)},
            "scope": "local", "time": 1629574695, "timeNano": 1629574695515050000}


def both(action, actor_id=CID, image="busybox:latest", **attributes):
    """API <= 1.51 container event: legacy and current fields side by side."""
    event = current("container", action, actor_id, image=image, **attributes)
    event.update({"status": action, "id": actor_id, "from": image})
    return event


def test_current_shape():
    assert events.parse(current("container", "start", name="web")) == DockerEvent(
        "container", "start", CID, {"name": "web"})


def test_legacy_and_current_fields_together():
    event = events.parse(both("die", exitCode="137", name="web"))
    assert (event.type, event.action, event.actor_id) == ("container", "die", CID)
    assert event.attributes["exitCode"] == "137"


def test_legacy_only_container_event():
    event = events.parse({"status": "pause", "id": CID, "from": "busybox", "time": 1})
    assert (event.type, event.action, event.actor_id) == ("container", "pause", CID)


def test_legacy_only_image_event_has_no_from():
    event = events.parse({"status": "untag", "id": "sha256:abc", "time": 1})
    assert (event.type, event.action, event.actor_id) == ("image", "untag", "sha256:abc")
    assert events.stale_keys(event) == frozenset((PS, INFO))


@pytest.mark.parametrize("action, base, detail", [
    ("health_status: healthy", "health_status", "healthy"),
    ("health_status: unhealthy", "health_status", "unhealthy"),
    ("exec_start: sh -c 'echo a:b'", "exec_start", "sh -c 'echo a:b'"),
    ("exec_create: /bin/true", "exec_create", "/bin/true"),
    ("exec_die", "exec_die", ""),
])
def test_compound_actions_split_at_the_first_colon(action, base, detail):
    event = events.parse(current("container", action))
    assert (event.action, event.detail) == (base, detail)


def test_docker_health_event_refreshes_ps():
    assert events.stale_keys(events.parse(both("health_status: healthy"))) == frozenset((PS,))


def test_podman_health_status_carries_its_value_beside_the_action():
    message = both("health_status", name="healthcheck-demo")
    message["HealthStatus"] = "healthy"
    event = events.parse(message)
    assert (event.action, event.detail) == ("health_status", "healthy")
    assert events.stale_keys(event) == frozenset((PS,))


def test_podman_names_are_mapped():
    assert events.parse(both("died")).action == "die"
    assert events.parse(both("remove")).action == "destroy"


def test_podman_image_pull_event():
    message = {"status": "pull", "Type": "image", "Action": "pull",
               "Actor": {"ID": "", "Attributes": {"name": "uptime-kuma"}},
               "scope": "local", "time": 1647489403}
    event = events.parse(message)
    assert (event.type, event.action) == ("image", "pull")
    assert events.stale_keys(event) == frozenset((INFO,))


@pytest.mark.parametrize("action, keys", [
    ("create", {PS, INFO}), ("start", {PS, INFO}), ("die", {PS, INFO}), ("kill", {PS}),
    ("stop", {PS}), ("pause", {PS, INFO}), ("unpause", {PS, INFO}), ("restart", {PS}),
    ("destroy", {PS, INFO}), ("rename", {PS}), ("update", {PS}),
    ("health_status: starting", {PS}),
    ("attach", set()), ("resize", set()), ("top", set()), ("exec_start: sh", set()),
    ("exec_die", set()), ("commit", set()), ("copy", set()), ("archive-path", set()),
])
def test_container_actions(action, keys):
    for shape in (both(action), current("container", action)):
        assert events.stale_keys(events.parse(shape)) == frozenset(keys)


@pytest.mark.parametrize("action, keys", [
    ("delete", {PS, INFO}), ("untag", {PS, INFO}), ("tag", {PS, INFO}),
    ("import", {INFO}), ("load", {INFO}), ("pull", {INFO}), ("push", set()), ("save", set()),
])
def test_image_actions(action, keys):
    assert events.stale_keys(events.parse(current("image", action, "sha256:1"))) == frozenset(keys)


def test_other_types_and_garbage_refresh_nothing():
    assert events.stale_keys(events.parse(current("network", "connect"))) == NOTHING
    assert events.stale_keys(events.parse(current("volume", "mount"))) == NOTHING
    assert events.stale_keys(events.parse(current("daemon", "reload"))) == frozenset((INFO,))
    for junk in ({}, {"Type": "container"}, {"Action": ""}, {"status": 5}, [], "start", None):
        assert events.parse(junk) is None  # type: ignore[arg-type]
        assert events.stale_keys(events.parse(junk)) == NOTHING  # type: ignore[arg-type]


def test_rename_event_carries_old_and_new_name():
    event = events.parse(both("rename", name="new", oldName="/old"))
    assert event.attributes == {"image": "busybox:latest", "name": "new", "oldName": "/old"}
    assert events.stale_keys(event) == frozenset((PS,))


def test_malformed_actor_is_tolerated():
    event = events.parse({"Type": "container", "Action": "start", "Actor": "x", "id": CID})
    assert (event.action, event.actor_id, event.attributes) == ("start", CID, {})


def test_all_is_the_three_keys():
    assert ALL == frozenset(("docker_ps", "docker_info", "docker_version"))


@pytest.mark.parametrize("action,settles", [
    ("create", True), ("kill", True), ("start", False), ("die", False), ("destroy", False),
    ("stop", False), ("pause", False),
])
def test_create_and_kill_settle_as_another_event_follows_them(action, settles):
    event = events.parse({"Type": "container", "Action": action, "Actor": {"ID": "c1"}})
    assert events.settles(event) is settles


def test_only_container_events_settle():
    assert not events.settles(events.parse({"Type": "image", "Action": "create",
                                            "Actor": {"ID": "i"}}))
    assert not events.settles(None)
    # legacy shape (Podman)
    assert events.settles(events.parse({"status": "create", "id": "c1", "from": "img"}))
