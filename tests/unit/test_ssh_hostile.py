"""A guest's port 22 that does not speak SSH properly: stable codes, bounded time.

The misbehaving server is the lab's (xsclab.hostile_sshd), here on 127.0.0.1.
"""

import socket
import threading
import time

import paramiko
import pytest

from xsclab.hostile_sshd import FAKE_LOG_LINE, HostileSSHD
from xscontainer import errors
from xscontainer.transport import Timeouts
from xscontainer.transport.ssh import SSHSession

HANDSHAKE = 1.5
TIMEOUTS = Timeouts(connect=2.0, handshake=HANDSHAKE, auth=1.5, request=2.0)


@pytest.fixture(scope="module")
def pkey() -> paramiko.PKey:
    return paramiko.RSAKey.generate(1024)


def _open(server: HostileSSHD, pkey: paramiko.PKey) -> "tuple[BaseException, float]":
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=2)
    started = time.monotonic()
    with pytest.raises(errors.XSContainerError) as info:
        SSHSession.open(sock, "127.0.0.1", "core", pkey, None, "vm-uuid", TIMEOUTS)
    return info.value, time.monotonic() - started


@pytest.mark.parametrize("mode", ["silent", "trickle"])
def test_an_sshd_that_never_completes_its_banner_times_out(mode, pkey):
    threads = threading.active_count()
    with HostileSSHD(mode) as server:
        error, took = _open(server, pkey)
    assert error.code == "XSCONTAINER_TIMEOUT"
    assert "did not answer" in error.message and "127.0.0.1" in error.message
    assert HANDSHAKE - 0.2 < took < HANDSHAKE + 1.0
    time.sleep(0.3)
    assert threading.active_count() <= threads + 1  # paramiko's thread and our timer end


def test_garbage_instead_of_a_banner_is_ssh_failed_with_the_text_escaped_and_short(pkey):
    with HostileSSHD("garbage") as server:
        error, took = _open(server, pkey)
    assert error.code == "XSCONTAINER_SSH_FAILED"
    assert "did not answer with an SSH banner" in error.message
    assert took < HANDSHAKE
    assert "\n" not in error.message and "\x1b" not in error.message
    assert len(error.message) < 700
    assert FAKE_LOG_LINE not in error.message.split("\\n")  # never a line of its own


def test_banner_then_close_is_ssh_failed_quickly(pkey):
    with HostileSSHD("banner-close") as server:
        error, took = _open(server, pkey)
    assert error.code == "XSCONTAINER_SSH_FAILED"
    assert "closed the connection during the SSH handshake" in error.message
    assert took < HANDSHAKE


def test_paramikos_transport_thread_logs_no_traceback(pkey, caplog):
    with caplog.at_level("DEBUG"):
        with HostileSSHD("garbage") as server:
            _open(server, pkey)
    assert not [r for r in caplog.records if r.levelno >= 30 and r.name.startswith("paramiko")]
