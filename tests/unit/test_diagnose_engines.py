"""Diagnose's reading of the engine socket (diagnose.SocketFacts): rootful or
rootless, Docker or Podman, and the fix that fits each; and its probe, run by a
real sh on a real socket."""

import os
import socket
import subprocess

from xscontainer import diagnose


def facts(**values):
    base = {"sock": "/var/run/docker.sock", "how": "detected", "socket": "yes",
            "access": "no", "real": "/var/run/docker.sock", "stat": "root docker 660",
            "uid": "1001", "groups": "xscuser", "tool": ["socat", "docker"]}
    base.update(values)
    return diagnose.SocketFacts({k: v if isinstance(v, list) else [v]
                                 for k, v in base.items()}, "xscuser")


def test_dockers_socket_wants_the_user_in_its_group():
    advice = facts().access_advice()
    assert "root:docker mode 660" in advice
    assert advice.endswith("usermod -aG docker xscuser")


def test_rootful_podmans_socket_is_not_fixed_by_a_group():
    found = facts(real="/run/podman/podman.sock", stat="root root 600",
                  groups="xscuser docker", tool=["socat", "podman", "docker"])
    assert found.podman and not found.rootless
    advice = found.access_advice()
    assert "/var/run/docker.sock (-> /run/podman/podman.sock) is root:root mode 600" in advice
    assert "rootful Podman's socket is for root only" in advice
    assert "SocketGroup=docker" in advice and "systemctl restart podman.socket" in advice
    assert "systemctl --user enable --now podman.socket" in advice
    assert "loginctl enable-linger xscuser" in advice
    assert not advice.startswith("permission denied: %s and user" % found.path)
    assert "rootful Podman -> /run/podman/podman.sock" in found.describe()


def test_in_the_group_yet_refused_says_where_else_to_look():
    advice = facts(groups="xscuser docker").access_advice()
    assert "is in group docker, yet may not use it" in advice and "usermod" not in advice


def test_no_socket_with_podman_installed_says_how_to_start_either_podman():
    advice = facts(socket="no", tool=["podman"]).missing_advice("vm-uuid")
    assert "/run/user/1001/podman/podman.sock" in advice
    assert "as xscuser: systemctl --user enable --now podman.socket" in advice
    assert "systemctl enable --now podman.socket" in advice


def test_no_socket_without_podman_is_dockers_advice():
    advice = facts(socket="no").missing_advice("vm-uuid")
    assert "systemctl enable --now docker" in advice


def test_a_missing_socket_the_vm_names_says_how_to_drop_the_setting():
    advice = facts(socket="no", how="override", sock="/srv/x.sock").missing_advice("vm-uuid")
    assert ("xe vm-param-remove uuid=vm-uuid param-name=other-config "
            "param-key=xscontainer-docker-socket") in advice


def test_a_rootless_socket_is_described_as_such():
    found = facts(sock="/run/user/1001/podman/podman.sock",
                  real="/run/user/1001/podman/podman.sock", stat="xscuser xscuser 660",
                  access="yes")
    assert found.describe() == ("rootless Podman, socket xscuser:xscuser 660 (detected)")


def test_the_probe_reports_the_socket_it_would_bridge_to(tmp_path):
    path = str(tmp_path / "engine.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    os.chmod(path, 0o640)
    try:
        out = subprocess.run(["/bin/sh", "-c", diagnose.probe_command(path)],
                             stdout=subprocess.PIPE, universal_newlines=True, timeout=10).stdout
    finally:
        sock.close()
    lines = out.splitlines()
    assert "sock=%s" % path in lines and "how=override" in lines and "socket=yes" in lines
    assert "real=%s" % path in lines and "uid=%d" % os.getuid() in lines
    stat_line = next(line for line in lines if line.startswith("stat="))
    assert stat_line.endswith(" 640")
