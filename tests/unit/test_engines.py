"""What differs between engines and must not show: the lab's engine imitating
Podman 5's compatibility API where it differs from Docker (xsclab.hostile_engine
modes podman and healthy), through the real DockerClient. Real Podman is in
tests/integration/test_engines.py."""

import json
import os
import stat
import xml.etree.ElementTree as ET

import pytest

from xscontainer import docker_api, errors, xmlenc

from .test_hostile_replies import UnixAdapter, client, engine  # noqa: F401 (fixture)


def _entries(xml):
    return {e.findtext("names"): {c.tag: c.text for c in e}
            for e in ET.fromstring(xml).iter("entry")}


def _versions(eng):
    return [r for r in eng.requests if r.split("?")[0].endswith("/version")]


def test_podman_health_reaches_docker_ps_as_dockers_does(engine):  # noqa: F811
    _, path = engine("podman")
    with client(path).negotiate() as docker:
        assert docker.engine == "Podman"
        entries = _entries(xmlenc.docker_ps(docker.ps()))
    assert entries["web"]["health"] == "healthy" and entries["web"]["status"] == "Up"
    assert "health" not in entries["plain"] and entries["plain"]["status"] == "Up"


def test_podman_health_costs_a_bounded_number_of_requests(engine):  # noqa: F811
    eng, path = engine("podman")
    with client(path).negotiate() as docker:
        before = len(eng.requests)
        docker.ps()
        assert len(eng.requests) - before <= 4  # the list, then at most 3 filtered lists


def test_docker_ps_on_docker_asks_nothing_more(engine):  # noqa: F811
    eng, path = engine("healthy")
    with client(path).negotiate() as docker:
        before = len(eng.requests)
        docker.ps()
        assert len(eng.requests) - before == 1


@pytest.mark.parametrize("mode", ["healthy", "podman"])
def test_already_paused_reads_the_same_on_docker_and_podman(engine, mode):  # noqa: F811
    _, path = engine(mode)
    with client(path).negotiate() as docker:
        docker.lifecycle("pause", "web")
        with pytest.raises(errors.DockerError) as exc:
            docker.lifecycle("pause", "web")
        docker.lifecycle("unpause", "web")
        with pytest.raises(errors.DockerError) as again:
            docker.lifecycle("unpause", "web")
    assert exc.value.code == "XSCONTAINER_DOCKER_ERROR" and exc.value.status == 409
    assert exc.value.message == (
        "Docker in VM hostile (u) could not pause container web: the container's state does "
        "not allow it (it is paused). Refresh the container list and retry.")
    assert exc.value.details[0] == "409"
    assert again.value.message.endswith("(it is running). Refresh the container list and retry.")


def test_the_version_cache_spares_version_and_notices_another_engine(engine, tmp_path):  # noqa: F811
    cache = docker_api.FileVersionCache(str(tmp_path / "versions"))
    podman, podman_path = engine("podman")
    first = client(podman_path).negotiate(cache, "vm-1")
    assert first.negotiations == 1 and not first.from_cache
    first.close()
    folder = tmp_path / "versions"
    assert stat.S_IMODE(os.stat(str(folder)).st_mode) == 0o700
    (entry,) = os.listdir(str(folder))
    assert stat.S_IMODE(os.stat(str(folder / entry)).st_mode) == 0o600
    assert json.loads((folder / entry).read_text()) == {
        "api": "1.41", "engine": "Podman", "server": "Libpod/5.4.2 (linux)"}

    asked = len(_versions(podman))
    with client(podman_path).negotiate(cache, "vm-1") as docker:
        assert docker.from_cache and docker.engine == "Podman"
        assert "<health>healthy</health>" in xmlenc.docker_ps(docker.ps())
    assert len(_versions(podman)) == asked  # no /version at all

    # the VM's engine is now Docker on the same socket: the first reply says so
    _, docker_path = engine("healthy")
    with client(docker_path).negotiate(cache, "vm-1") as docker:
        docker.ps()
        assert docker.engine == "Docker" and docker.negotiations == 1
    assert cache.get("vm-1")["engine"] == "Docker"


def test_a_version_the_engine_refuses_negotiates_again(engine, tmp_path):  # noqa: F811
    cache = docker_api.MemoryVersionCache()
    cache.put("vm-1", {"api": "1.45", "engine": "Docker", "server": "Docker/20.10.24 (linux)"})
    _, path = engine("healthy")
    with client(path).negotiate(cache, "vm-1") as docker:
        assert docker.api_version == "1.45"
        assert "<names>web</names>" in xmlenc.docker_ps(docker.ps())
        assert docker.api_version == "1.41" and docker.negotiations == 1
    assert cache.get("vm-1")["api"] == "1.41"


@pytest.mark.parametrize("content", [b"", b"{", b"[]", b'{"api": "9", "engine": "Docker"}',
                                     b'{"api": "1.41", "engine": "x", "server": ""}',
                                     b"{" + b" " * 5000 + b"}"])
def test_an_unreadable_cache_file_is_a_miss(tmp_path, content):
    cache = docker_api.FileVersionCache(str(tmp_path))
    (tmp_path / "vm-1.json").write_bytes(content)
    assert cache.get("vm-1") is None
