"""API-version negotiation and container references (no engine needed).

The /version payloads are shaped as the Docker Engine API reference and Podman's
compat handler document them."""

import pytest

from xscontainer import docker_api, errors

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


@pytest.mark.parametrize("ref", [
    "web", "Web_App.1-x", "MyContainer", "e9c2212c65",
    "e9c2212c65c387bba7c216c56cd19ffaa1cdb73cf5885f3259a6b1ae7747c834",
])
def test_container_refs_accepted(ref):
    assert docker_api.check_container_ref(ref) == ref


@pytest.mark.parametrize("ref", [
    "", "-web", ".web", "_web", "web/../../x", "web\n", "we b", "web;rm", "a" * 256, None, 5,
    "../containers", "web?x=1", "web%2f",
])
def test_container_refs_refused(ref):
    with pytest.raises(errors.InvalidArgument) as exc:
        docker_api.check_container_ref(ref)
    assert exc.value.code == "XSCONTAINER_INVALID_ARGUMENT"
