"""An authenticated SSH session does not poll ten times a second, still closes
at once, and proves the guest alive with a round trip (an in-process paramiko
server on a socket pair)."""

import socket
import threading
import time

import paramiko
import pytest

from xscontainer import errors
from xscontainer.transport import ssh, sshbridge


class _Server(paramiko.ServerInterface):
    def __init__(self, frozen: bool = False) -> None:
        self.frozen = frozen
        self.requests: list = []

    def check_global_request(self, kind: str, msg: paramiko.Message) -> bool:
        self.requests.append(kind)
        if self.frozen:  # an sshd that stopped answering
            time.sleep(3)
        return False  # refused, as OpenSSH refuses a request it does not know

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        return paramiko.AUTH_SUCCESSFUL


def _session(interface=None):
    ours, theirs = socket.socketpair()
    server = paramiko.Transport(theirs)
    server.add_server_key(paramiko.RSAKey.generate(2048))
    threading.Thread(target=server.start_server,
                     kwargs={"server": interface or _Server()}, daemon=True).start()
    session = ssh.SSHSession.open(ours, "10.0.0.1", "user", paramiko.RSAKey.generate(2048),
                                  None, "vm-uuid")
    return session, ours, server


def test_an_authenticated_session_waits_long_between_wakeups():
    session, ours, server = _session()
    try:
        assert session.is_active()
        assert ours.gettimeout() == ssh.IDLE_POLL_SECONDS >= 5.0
    finally:
        session.close()
        server.close()


def test_close_ends_the_transport_thread_at_once():
    session, _ours, server = _session()
    time.sleep(0.3)  # the transport thread sits in its (long) read
    started = time.monotonic()
    session.close()
    session.transport.join(ssh.IDLE_POLL_SECONDS / 2)
    assert not session.transport.is_alive()
    assert time.monotonic() - started < ssh.IDLE_POLL_SECONDS / 2  # not at its timeout
    server.close()


def test_a_round_trip_is_answered_even_by_a_refusal():
    interface = _Server()
    session, _ours, server = _session(interface)
    try:
        sshbridge.SSHAdapter(session, 5).probe()
        assert interface.requests == [ssh.ROUND_TRIP_REQUEST]
        assert session.is_active()
    finally:
        session.close()
        server.close()


def test_a_round_trip_unanswered_by_its_deadline_closes_the_connection():
    session, _ours, server = _session(_Server(frozen=True))
    adapter = sshbridge.SSHAdapter(session, 5)
    adapter.request_deadline = 0.5
    started = time.monotonic()
    try:
        with pytest.raises(errors.Timeout) as exc:
            adapter.probe()
        assert time.monotonic() - started < 2.5
        assert "did not answer a keepalive in time" in exc.value.message
        assert not session.is_active()
    finally:
        session.close()
        server.close()
