"""diagnose against a guest whose port 22 misbehaves: a failed step, never an exception."""

import time
from typing import Any, Dict, List

import paramiko
import pytest

from xsclab.hostile_sshd import HostileSSHD
from xscontainer import diagnose, poolkey
from xscontainer.transport import Timeouts, base
from xscontainer.transport import ssh as ssh_transport

TIMEOUTS = Timeouts(connect=1.0, handshake=1.0, auth=1.0, request=1.0)


class StubGuest:
    """What diagnose reads of a guest (guest.Guest needs XAPI)."""

    uuid = "vm-uuid"
    where = "VM test (vm-uuid)"
    username = "core"
    mode = "ssh"
    xapi = None

    def __init__(self) -> None:
        self.other_config: Dict[str, str] = {}

    def require_running(self) -> None:
        pass

    def addresses(self) -> List[str]:
        return ["127.0.0.1"]


@pytest.fixture
def guest(monkeypatch: pytest.MonkeyPatch) -> StubGuest:
    key = paramiko.RSAKey.generate(1024)
    monkeypatch.setattr(poolkey, "private_key", lambda xapi: "unused")
    monkeypatch.setattr(ssh_transport, "load_private_key", lambda text: key)
    return StubGuest()


def _port_22_is(monkeypatch: pytest.MonkeyPatch, port: int) -> None:
    real = base.connect_first
    monkeypatch.setattr(diagnose.transport, "connect_first",
                        lambda addresses, _port, timeout: real(addresses, port, timeout))


@pytest.mark.parametrize("mode,expected", [
    ("silent", "did not answer: no SSH handshake within 1s"),
    ("trickle", "did not answer: no SSH handshake within 1s"),
    ("garbage", "did not answer with an SSH banner"),
    ("banner-close", "closed the connection during the SSH handshake"),
])
def test_a_misbehaving_sshd_is_a_failed_step(monkeypatch, guest, mode, expected):
    with HostileSSHD(mode) as server:
        _port_22_is(monkeypatch, server.port)
        started = time.monotonic()
        report = diagnose.diagnose(guest, TIMEOUTS)  # type: ignore[arg-type]
    assert time.monotonic() - started < 3.0
    failure = report.failure
    assert failure is not None and failure.title == "SSH connection to 127.0.0.1"
    assert expected in failure.detail and "\n" not in failure.detail


def test_a_library_error_is_a_failed_step_not_an_exception(monkeypatch, guest):
    def broken(*args: Any, **kwargs: Any) -> None:
        raise paramiko.SSHException("No existing session\n2026-01-01 fake line")

    monkeypatch.setattr(ssh_transport.SSHSession, "open", broken)
    with HostileSSHD("silent") as server:
        _port_22_is(monkeypatch, server.port)
        report = diagnose.diagnose(guest, TIMEOUTS)  # type: ignore[arg-type]
    assert report.failure is not None
    assert report.failure.detail == "SSHException: No existing session\\n2026-01-01 fake line"


def test_an_unexpected_error_in_a_later_check_is_a_failed_step(monkeypatch, guest):
    def boom(*args: Any, **kwargs: Any) -> None:
        raise KeyError("odd")

    monkeypatch.setattr(diagnose, "_ssh_checks", boom)
    with HostileSSHD("silent") as server:
        _port_22_is(monkeypatch, server.port)
        report = diagnose.diagnose(guest, TIMEOUTS)  # type: ignore[arg-type]
    assert report.failure is not None and "KeyError" in report.failure.detail
    assert not report.ok
