"""API-version negotiation, and what DockerClient refuses before any request (no
engine needed; the container reference rules are tested with the operations table).

The /version payloads are shaped as the Docker Engine API reference and Podman's
compat handler document them."""

import pytest

from xscontainer import docker_api, errors
from xscontainer.operations import table

DOCKER_20 = {"Version": "20.10.24", "ApiVersion": "1.41", "MinAPIVersion": "1.12",
             "Components": [{"Name": "Engine", "Version": "20.10.24"}]}
DOCKER_29 = {"Version": "29.0.1", "ApiVersion": "1.52", "MinAPIVersion": "1.44",
             "Components": [{"Name": "Engine", "Version": "29.0.1",
                             "Details": {"ApiVersion": "1.52", "MinAPIVersion": "1.44"}}]}
FUTURE = {"Version": "35.0.0", "ApiVersion": "1.60", "MinAPIVersion": "1.48"}
TOO_NEW = {"Version": "40.0.0", "ApiVersion": "1.70", "MinAPIVersion": "1.60"}
PODMAN_4 = {"Version": "4.3.1", "ApiVersion": "1.41", "MinAPIVersion": "1.24",
            "Components": [{"Name": "Podman Engine", "Version": "4.3.1",
                            "Details": {"APIVersion": "4.3.1", "MinAPIVersion": "4.0.0"}},
                           {"Name": "Conmon", "Version": "conmon version 2.1.6"}]}
PODMAN_2_OLD = {"Version": "2.0.6", "ApiVersion": "1.0.0", "MinAPIVersion": "1.0.0",
                "Components": [{"Name": "Podman Engine", "Version": "2.0.6"}]}


@pytest.mark.parametrize("info, expected", [
    (DOCKER_20, "1.41"), (DOCKER_29, "1.52"), (PODMAN_4, "1.41"), (FUTURE, docker_api.MAX_API),
])
def test_negotiation_picks_the_newest_common_version(info, expected):
    assert docker_api.negotiate(info) == expected


def test_engine_newer_than_us_is_refused_with_advice():
    with pytest.raises(errors.DockerAPIUnsupported) as exc:
        docker_api.negotiate(TOO_NEW)
    assert "1.60" in exc.value.message and "Upgrade xscontainer" in exc.value.message


def test_engine_older_than_us_is_refused_with_advice():
    with pytest.raises(errors.DockerAPIUnsupported) as exc:
        docker_api.negotiate(PODMAN_2_OLD)
    assert "Upgrade Docker" in exc.value.message


def test_missing_or_garbage_version_is_refused():
    with pytest.raises(errors.DockerAPIUnsupported):
        docker_api.negotiate({"Version": "x"})
    with pytest.raises(errors.DockerAPIUnsupported):
        docker_api.negotiate({"ApiVersion": "one.two"})


def test_engine_name():
    assert docker_api.engine_name(PODMAN_4) == "Podman"
    assert docker_api.engine_name(DOCKER_29) == "Docker"
    assert docker_api.engine_name({}) == "Docker"


class NoAdapter:
    """A transport that must not be used: nothing here reaches an engine."""

    def send(self, *args, **kwargs):
        raise AssertionError("no request expected")

    def close(self):
        pass


def client():
    return docker_api.DockerClient(NoAdapter(), "VM web (u)")


def test_lifecycle_runs_the_tables_lifecycle_operations(monkeypatch):
    docker = client()
    calls = []
    for name, op in table.OPERATIONS.items():
        if op.is_lifecycle:
            monkeypatch.setattr(docker._api, name,
                                lambda ref, _n=name, **kw: calls.append((_n, ref, kw)))
            docker.lifecycle(name, "web")
    assert calls == [("start", "web", {}), ("stop", "web", {"timeout": docker_api.STOP_TIMEOUT}),
                     ("restart", "web", {"timeout": docker_api.STOP_TIMEOUT}),
                     ("pause", "web", {}), ("unpause", "web", {})]


@pytest.mark.parametrize("operation", ["get_top", "get_inspect", "kill", "remove", ""])
def test_lifecycle_refuses_anything_else_before_a_request(operation):
    with pytest.raises(errors.InvalidArgument) as exc:
        client().lifecycle(operation, "web")
    assert exc.value.message == "Unknown container operation %r." % operation


@pytest.mark.parametrize("method", ["inspect", "top"])
def test_bad_references_never_reach_a_request(method):
    with pytest.raises(errors.InvalidArgument):
        getattr(client(), method)("../web")
    with pytest.raises(errors.InvalidArgument):
        client().lifecycle("stop", "web;rm")
