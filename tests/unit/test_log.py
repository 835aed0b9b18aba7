"""log: one shared log file plus syslog, never stdout/stderr, secrets masked."""

import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
from typing import Any, Iterator, List, Tuple

import pytest

from xscontainer import log

PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEAsecretsecretsecret\n"
    "c2VjcmV0c2VjcmV0\n"
    "-----END RSA PRIVATE KEY-----"
)


def our_handlers() -> List[logging.Handler]:
    return [h for h in logging.getLogger().handlers if getattr(h, log._OURS, False)]


@pytest.fixture
def env(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Tuple[str, str]]:
    """A log file and files dir of our own, no syslog; root logger restored afterwards."""
    log_file = str(tmp_path / "xscontainer.log")
    files_dir = tmp_path / "files"
    files_dir.mkdir()
    monkeypatch.setenv("XSCONTAINER_LOG_FILE", log_file)
    monkeypatch.setenv("XSCONTAINER_FILES_DIR", str(files_dir))
    monkeypatch.delenv("XSCONTAINER_DEBUG", raising=False)
    monkeypatch.setattr(log, "SYSLOG_SOCKET", str(tmp_path / "no-syslog"))
    root = logging.getLogger()
    level = root.level
    yield log_file, str(files_dir)
    for handler in our_handlers():
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level)


def read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def test_writes_to_the_log_file(env: Tuple[str, str]) -> None:
    log_file, _ = env
    logger = log.configure("plugin")
    assert logger.name == "xscontainer"
    logging.getLogger("xscontainer.unit").info("hello %s", "wörld")
    logging.getLogger("paramiko.transport").warning("library messages are kept")
    text = read(log_file)
    assert " plugin[%d] INFO xscontainer.unit: hello wörld\n" % os.getpid() in text
    assert "WARNING paramiko.transport: library messages are kept" in text
    (handler,) = our_handlers()  # no syslog socket here
    assert isinstance(handler, logging.handlers.WatchedFileHandler)


def test_nothing_on_stdout_or_stderr(
    env: Tuple[str, str], monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> None:
    # only our handlers, as in production (pytest's capture handler re-raises errors)
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    log.configure("plugin", logging.DEBUG)
    logger = logging.getLogger("xscontainer.unit")
    logger.debug("debug")
    logger.error("error")
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("failed")
    logger.info("%d", "not a number")  # a broken call must not print logging's traceback
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")
    assert "boom" in read(env[0])


def test_unopenable_log_file_falls_back_silently(
    env: Tuple[str, str],
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture,
) -> None:
    monkeypatch.setenv("XSCONTAINER_LOG_FILE", str(tmp_path / "missing-dir" / "x.log"))
    log.configure("plugin")
    (handler,) = our_handlers()
    assert isinstance(handler, logging.NullHandler)  # not logging.lastResort, i.e. stderr
    logging.getLogger("xscontainer.unit").critical("nowhere to go")
    assert capfd.readouterr() == ("", "")


def test_log_directory_lost_under_a_running_process(
    env: Tuple[str, str],
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture,
) -> None:
    directory = tmp_path / "logdir"
    directory.mkdir()
    log_file = str(directory / "xscontainer.log")
    monkeypatch.setenv("XSCONTAINER_LOG_FILE", log_file)
    log.configure("monitor")
    logger = logging.getLogger("xscontainer.unit")
    shutil.rmtree(str(directory))
    logger.error("lost")  # the reopen fails: no exception for the caller, no output
    assert capfd.readouterr() == ("", "")
    directory.mkdir()
    logger.error("back")
    assert "back" in read(log_file)


@pytest.fixture
def syslog_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    directory = tempfile.mkdtemp(prefix="xsc")  # short: AF_UNIX paths are limited
    path = os.path.join(directory, "log")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    server.settimeout(5)
    monkeypatch.setattr(log, "SYSLOG_SOCKET", path)
    yield server
    server.close()
    shutil.rmtree(directory)


def test_syslog_ident_and_facility(env: Tuple[str, str], syslog_socket: socket.socket) -> None:
    log.configure("monitor")
    assert len(our_handlers()) == 2
    logging.getLogger("xscontainer.unit").warning("to syslog, %s", "session_id=OpaqueRef:abc")
    datagram = syslog_socket.recv(65536).decode("utf-8")
    # <facility daemon (3) * 8 + warning (4)>ident[pid]: ...
    assert (
        datagram
        == "<28>xscontainer-monitor[%d]: WARNING xscontainer.unit: to syslog, " % (os.getpid())
        + "session_id=<redacted>\x00"
    )


def test_syslog_only_when_the_file_cannot_be_opened(
    env: Tuple[str, str],
    syslog_socket: socket.socket,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture,
) -> None:
    monkeypatch.setenv("XSCONTAINER_LOG_FILE", str(tmp_path / "missing-dir" / "x.log"))
    log.configure("plugin")
    (handler,) = our_handlers()
    assert isinstance(handler, logging.handlers.SysLogHandler)
    logging.getLogger("xscontainer.unit").error("only here")
    assert b"only here" in syslog_socket.recv(65536)
    assert capfd.readouterr() == ("", "")


def test_configure_is_idempotent(env: Tuple[str, str]) -> None:
    log.configure("plugin")
    log.configure("plugin")
    assert len(our_handlers()) == 1
    logging.getLogger("xscontainer.unit").info("once")
    assert read(env[0]).count("once") == 1


def test_reconfigure_replaces_the_program_name(env: Tuple[str, str]) -> None:
    log.configure("plugin")
    log.configure("prepare-vm")
    logging.getLogger("xscontainer.unit").info("which program")
    (line,) = read(env[0]).splitlines()
    assert " prepare-vm[" in line


def test_follows_logrotate(env: Tuple[str, str]) -> None:
    log_file, _ = env
    log.configure("monitor")
    logger = logging.getLogger("xscontainer.unit")
    logger.info("before rotation")
    os.rename(log_file, log_file + ".1")  # what logrotate does (no copytruncate)
    logger.info("after rotation")
    assert "before rotation" in read(log_file + ".1")
    assert "after rotation" not in read(log_file + ".1")
    assert "after rotation" in read(log_file)


def test_info_by_default(env: Tuple[str, str]) -> None:
    log.configure("plugin")
    assert logging.getLogger().level == logging.INFO
    logging.getLogger("xscontainer.unit").debug("hidden")
    assert "hidden" not in read(env[0])


def test_debug_via_flag_file(env: Tuple[str, str]) -> None:
    log_file, files_dir = env
    open(os.path.join(files_dir, "devlogging_enabled"), "w").close()
    log.configure("plugin")
    assert logging.getLogger().level == logging.DEBUG
    logging.getLogger("xscontainer.unit").debug("visible")
    assert "DEBUG xscontainer.unit: visible" in read(log_file)


@pytest.mark.parametrize("value,debug", [("1", True), ("true", True), ("0", False), ("", False)])
def test_debug_via_environment(
    env: Tuple[str, str], monkeypatch: pytest.MonkeyPatch, value: str, debug: bool
) -> None:
    monkeypatch.setenv("XSCONTAINER_DEBUG", value)
    assert log.debug_enabled() is debug
    log.configure("plugin")
    assert logging.getLogger().level == (logging.DEBUG if debug else logging.INFO)


def test_explicit_level_wins(env: Tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XSCONTAINER_DEBUG", "1")
    log.configure("plugin", logging.WARNING)
    assert logging.getLogger().level == logging.WARNING


# --- redaction -------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,secret,expected",
    [
        ("key: " + PEM + " end", "secretsecret", "key: <redacted RSA PRIVATE KEY> end"),
        (
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk (cut off)",
            "b3BlbnNzaC1rZXk",
            "<redacted OPENSSH PRIVATE KEY>",
        ),
        (
            "PUT /import_raw_vdi?session_id=OpaqueRef:1234-abcd&vdi=OpaqueRef:5 HTTP/1.1",
            "1234-abcd",
            "PUT /import_raw_vdi?session_id=<redacted>&vdi=OpaqueRef:5 HTTP/1.1",
        ),
        (
            "{'username': 'root', 'password': 'hunter2'}",
            "hunter2",
            "{'username': 'root', 'password': '<redacted>'}",
        ),
        ('{"root_password": "p4ss, word"}', "p4ss", "{\"root_password\": '<redacted>'}"),
        ("{'Password': b'raw', 'x': 1}", "raw", "{'Password': '<redacted>', 'x': 1}"),
    ],
)
def test_redact(text: str, secret: str, expected: str) -> None:
    redacted = log.redact(text)
    assert redacted == expected
    assert secret not in redacted


def test_redact_leaves_ordinary_text_alone() -> None:
    text = "VM 0b1c started; password policy unchanged; session ok"
    assert log.redact(text) == text


def test_logged_secrets_are_masked(env: Tuple[str, str]) -> None:
    log.configure("plugin")
    logger = logging.getLogger("xscontainer.unit")
    logger.info("private key %s", PEM)
    logger.info("url http://host/export_raw_vdi?session_id=OpaqueRef:cafe&format=raw")
    logger.info("login %r", {"username": "root", "password": "hunter2"})
    try:
        raise RuntimeError("cannot parse " + PEM)
    except RuntimeError:
        logger.exception("key rejected")
    text = read(env[0])
    for secret in ("secretsecret", "c2VjcmV0c2VjcmV0", "OpaqueRef:cafe", "hunter2"):
        assert secret not in text
    assert text.count("<redacted RSA PRIVATE KEY>") == 2
    assert "session_id=<redacted>&format=raw" in text
    assert "Traceback (most recent call last)" in text


# --- daemon hooks ------------------------------------------------------------------


@pytest.fixture
def hooks(monkeypatch: pytest.MonkeyPatch) -> Iterator[List[Any]]:
    """Record what the previous hooks receive; restore hooks and SIGPIPE afterwards."""
    seen: List[Any] = []
    monkeypatch.setattr(sys, "excepthook", lambda *exc_info: seen.append(exc_info[0]))
    if hasattr(threading, "excepthook"):
        monkeypatch.setattr(threading, "excepthook", lambda args: seen.append(args.exc_type))
    sigpipe = signal.getsignal(signal.SIGPIPE)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    yield seen
    signal.signal(signal.SIGPIPE, sigpipe)


def test_uncaught_exceptions_are_logged(env: Tuple[str, str], hooks: List[Any]) -> None:
    logger = log.configure("monitor")
    log.install_daemon_hooks(logger)
    try:
        raise ValueError("boom in main")
    except ValueError:
        sys.excepthook(*sys.exc_info())
    sys.excepthook(KeyboardInterrupt, KeyboardInterrupt(), None)
    text = read(env[0])
    assert "CRITICAL xscontainer: Uncaught exception, exiting" in text
    assert "ValueError: boom in main" in text
    assert "KeyboardInterrupt" not in text
    assert hooks == [ValueError, KeyboardInterrupt]  # the previous hook still runs


def test_uncaught_thread_exceptions_are_logged(env: Tuple[str, str], hooks: List[Any]) -> None:
    logger = log.configure("monitor")
    log.install_daemon_hooks(logger)

    def fail() -> None:
        raise RuntimeError("boom in thread")

    thread = threading.Thread(target=fail, name="vm-monitor")
    thread.start()
    thread.join()
    text = read(env[0])
    if sys.version_info >= (3, 8):
        assert "Uncaught exception in thread vm-monitor" in text
        assert "RuntimeError: boom in thread" in text
        assert hooks == [RuntimeError]
    else:  # no threading.excepthook: threads must catch their own exceptions
        assert not hasattr(threading, "excepthook")
        assert "boom in thread" not in text


def test_sigpipe_is_ignored_so_broken_pipes_raise(env: Tuple[str, str], hooks: List[Any]) -> None:
    log.install_daemon_hooks(log.configure("monitor"))
    assert signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN
    reader, writer = socket.socketpair()
    reader.close()
    with pytest.raises(BrokenPipeError):  # instead of a silent death by SIGPIPE
        writer.sendall(b"x" * 65536)
    writer.close()


FAKE = "fine\n2026-01-01 00:00:00,000 plugin[1] INFO xscontainer.plugin: all is well\x1b[2J"


def test_guest_text_cannot_forge_a_log_line(env: Tuple[str, str]) -> None:
    log_file, _ = env
    log.configure("plugin")
    logger = logging.getLogger("xscontainer.unit")
    logger.warning("the guest said %s", FAKE)
    try:
        raise RuntimeError(FAKE)
    except RuntimeError:
        logger.exception("it failed\r\nagain")
    lines = read(log_file).splitlines()
    # the message is one line; every traceback line is indented
    assert lines[0].endswith(
        "the guest said fine\\n2026-01-01 00:00:00,000 plugin[1] INFO xscontainer.plugin: "
        "all is well\\x1b[2J")
    assert lines[1].endswith("it failed\\r\\nagain")
    assert lines[2] == "  Traceback (most recent call last):"
    assert all(line.startswith("  ") for line in lines[2:])
    assert "  2026-01-01 00:00:00,000 plugin[1] INFO" in read(log_file)
    assert "\x1b" not in read(log_file)
    assert sum(1 for line in lines if line.startswith("2026-01-01")) == 0


def test_guest_text_escapes_and_shortens_once() -> None:
    assert log.guest_text("a\nb\x00c\u2028\x85\tz") == "a\\nb\\x00c\\u2028\\x85\tz"
    long = log.guest_text("é" * 1000)
    assert long == "é" * 300 + "... (700 more characters)"
    assert log.guest_text("x" * 300) == "x" * 300


def test_the_log_file_is_created_0640_and_narrowed(env: Tuple[str, str]) -> None:
    log_file, _ = env
    old = os.umask(0)
    try:
        log.configure("plugin")
        logging.getLogger("xscontainer.unit").info("x")
    finally:
        os.umask(old)
    assert os.stat(log_file).st_mode & 0o777 == 0o640
    os.chmod(log_file, 0o666)
    log.configure("monitor")  # reopened: narrowed to 0640
    assert os.stat(log_file).st_mode & 0o777 == 0o640


def test_only_a_regular_file_of_ours_is_narrowed(env: Tuple[str, str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    changed: List[Any] = []
    monkeypatch.setattr(os, "fchmod", lambda fd, mode: changed.append(mode))
    monkeypatch.setenv("XSCONTAINER_LOG_FILE", os.devnull)  # a device: never touched
    log.configure("plugin")
    logging.getLogger("xscontainer.unit").info("x")
    assert changed == []


def test_the_logrotate_entry_creates_0640() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "..", "packaging", "xscontainer.logrotate")) as f:
        text = f.read()
    assert "create 0640 root root" in text and "0644" not in text
