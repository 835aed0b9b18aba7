"""The SSH bridge's shell (transport/ssh.py bridge_command), run by a real sh with
stand-in tools that say how they were called: which socket it picks and which
tool dials it."""

import os
import shutil
import socket
import subprocess

import pytest

from xscontainer.transport import base, ssh


@pytest.fixture
def guest(tmp_path):
    """(run, place): run(tools, override) -> what the bridge exec'd; place(name) makes
    a listening unix socket."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    sockets = []

    def place(name: str) -> str:
        path = str(tmp_path / name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(path)
        sock.listen(1)
        sockets.append(sock)
        return path

    def run(tools, override=None):
        for name in os.listdir(str(bin_dir)):
            os.unlink(str(bin_dir / name))
        for tool in tools:
            script = bin_dir / tool
            script.write_text('#!/bin/sh\necho %s "$@"\n' % tool)
            script.chmod(0o755)
        command = ssh.bridge_command(
            override, system=str(tmp_path / "var/run/docker.sock"),
            rootless=(str(tmp_path / "run/user/$u/podman/podman.sock"),
                      str(tmp_path / "run/user/$u/docker.sock")))
        os.symlink(shutil.which("id") or "/usr/bin/id", str(bin_dir / "id"))
        env = {"PATH": str(bin_dir)}  # the stand-ins and `id`, nothing of the machine's
        done = subprocess.run(["/bin/sh", "-c", command], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=env, universal_newlines=True,
                              timeout=10)
        return done.returncode, done.stdout.strip(), done.stderr.strip()

    yield run, place, tmp_path
    for sock in sockets:
        sock.close()


def test_socat_dials_the_system_socket_itself(guest):
    run, place, _ = guest
    system = place("var/run/docker.sock")
    assert run(["socat", "ncat", "docker"]) == (0, "socat - UNIX-CONNECT:%s" % system, "")


def test_ncat_when_there_is_no_socat(guest):
    run, place, _ = guest
    system = place("var/run/docker.sock")
    assert run(["ncat", "docker"])[1] == "ncat -U %s" % system


def test_podman_docker_never_dials_the_users_rootless_default(guest):
    # podman-docker: `docker` is Podman, whose plain dial-stdio dials the SSH
    # user's rootless socket; the system socket is named instead
    run, place, _ = guest
    system = place("var/run/docker.sock")
    assert run(["docker", "podman"])[1] == "podman --url unix://%s system dial-stdio" % system


def test_the_docker_cli_only_with_the_socket_named(guest):
    run, place, _ = guest
    system = place("var/run/docker.sock")
    assert run(["docker"])[1] == "docker -H unix://%s system dial-stdio" % system


def test_the_users_rootless_podman_when_there_is_no_system_socket(guest):
    run, place, _ = guest
    rootless = place("run/user/%d/podman/podman.sock" % os.getuid())
    place("run/user/%d/docker.sock" % os.getuid())
    assert run(["socat"])[1] == "socat - UNIX-CONNECT:%s" % rootless


def test_the_rootless_docker_socket_last(guest):
    run, place, _ = guest
    rootless = place("run/user/%d/docker.sock" % os.getuid())
    assert run(["socat"])[1] == "socat - UNIX-CONNECT:%s" % rootless


def test_the_vms_setting_wins(guest):
    run, place, _ = guest
    place("var/run/docker.sock")
    mine = place("elsewhere/podman.sock")
    assert run(["socat"], override=mine)[1] == "socat - UNIX-CONNECT:%s" % mine


def test_no_socket_at_all_names_the_system_socket(guest):
    run, _, tmp_path = guest
    assert run(["socat"])[1] == "socat - UNIX-CONNECT:%s" % (tmp_path / "var/run/docker.sock")


def test_no_tool_says_what_to_install(guest):
    run, place, _ = guest
    place("var/run/docker.sock")
    status, _, err = run([])
    assert status == 127 and "neither socat, ncat, podman nor the docker CLI" in err


@pytest.mark.parametrize("bad", ["relative/path", "/a b", "/x;reboot", "/$(id)", "/" + "a" * 300])
def test_a_setting_that_is_not_a_plain_path_is_refused(bad):
    with pytest.raises(ssh.errors.InvalidArgument) as exc:
        base.check_socket_path(bad, "VM x")
    assert "xscontainer-docker-socket" in exc.value.message
