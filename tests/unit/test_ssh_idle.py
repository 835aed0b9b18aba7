"""An authenticated SSH session does not poll ten times a second, and still
closes at once (an in-process paramiko server on a socket pair)."""

import socket
import threading
import time

import paramiko

from xscontainer.transport import ssh


class _Server(paramiko.ServerInterface):
    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        return paramiko.AUTH_SUCCESSFUL


def _session():
    ours, theirs = socket.socketpair()
    server = paramiko.Transport(theirs)
    server.add_server_key(paramiko.RSAKey.generate(2048))
    threading.Thread(target=server.start_server, kwargs={"server": _Server()},
                     daemon=True).start()
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
