"""Logging for every xscontainer process: a shared log file plus syslog, never stdout.

The plugin's stdout is its XML-RPC reply to xapi, so nothing here ever writes to
stdout or stderr: not the handlers, not logging's own error reporting, not its
"last resort" handler. Call `configure` once at the start of each entry point;
library modules just use ``logging.getLogger(__name__)``.

Code must not log secrets in the first place. `RedactingFilter` is only a safety
net for PEM blocks, ``session_id=`` values and ``'password': ...`` items.

Guest text is data. A guest's tenant controls what its SSH server and Docker
engine say, so every message is written as exactly one line: newlines, carriage
returns and other control characters in it are escaped (``\\n``, ``\\x1b``), and
the lines of a traceback are indented, so that nothing a guest said can pass for
a log line of ours. `guest_text` also shortens a guest's text for error messages.
The log file is created mode 0640 (a wider one is narrowed when opened).
"""

import io
import logging
import logging.handlers
import os
import re
import signal
import stat
import sys
import threading
from types import TracebackType
from typing import Any, List, Optional, Type

from xscontainer import paths
from xscontainer.errors import REDACTED

PACKAGE_LOGGER = "xscontainer"
DEBUG_ENV = "XSCONTAINER_DEBUG"
DEBUG_FLAG_FILE = "devlogging_enabled"
SYSLOG_SOCKET = "/dev/log"

# Marks the handlers `configure` installed so that a second call replaces them.
_OURS = "_xscontainer_handler"

_PEM_BLOCK = re.compile(
    r"-----BEGIN ([A-Z0-9 ]*)-----"  # the label, e.g. "RSA PRIVATE KEY"
    r"(?:.*?-----END [A-Z0-9 ]*-----|.*)",  # up to its END line, or everything if cut off
    re.DOTALL,
)
_SESSION_ID = re.compile(r"(session_id=)[^&\s'\"<>]+", re.IGNORECASE)
_PASSWORD_ITEM = re.compile(
    r"""(?P<key>(?P<q>['"])[^'"]*(?:password|passwd)[^'"]*(?P=q)\s*:\s*)"""
    r"""(?:'[^']*'|"[^"]*"|[^,}\s]+)""",
    re.IGNORECASE,
)


# C0 controls but tab, DEL, C1 controls and the Unicode line and paragraph separators
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r"}
GUEST_TEXT_LIMIT = 300
LOG_FILE_MODE = 0o640


def _escape_one(match: Any) -> str:
    char = match.group(0)
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return "\\x%02x" % code if code < 0x100 else "\\u%04x" % code


def escape_controls(text: str) -> str:
    """`text` as one line: newlines and other control characters escaped."""
    return _CONTROL.sub(_escape_one, text)


def guest_text(text: object, limit: int = GUEST_TEXT_LIMIT) -> str:
    """Something a guest said, fit for an error message or a log line: control
    characters escaped, at most about `limit` characters (the rest counted)."""
    escaped = escape_controls(str(text))
    if len(escaped) <= limit:
        return escaped
    return "%s... (%d more characters)" % (escaped[:limit], len(escaped) - limit)


def _indent(text: str) -> str:
    """A traceback's lines, each indented (control characters but newlines escaped)."""
    return "\n".join("  " + escape_controls(line) for line in text.split("\n"))


def redact(text: str) -> str:
    """Mask PEM blocks, ``session_id=`` values and the values of password items."""
    text = _PEM_BLOCK.sub(lambda m: "<redacted %s>" % (m.group(1) or "PEM block"), text)
    text = _SESSION_ID.sub(r"\g<1>" + REDACTED, text)
    return _PASSWORD_ITEM.sub(r"\g<key>'" + REDACTED + "'", text)


_DONE = "_xscontainer_cleaned"


class RedactingFilter(logging.Filter):
    """Rewrites each record's message and traceback text through `redact`; the
    message as one line (`escape_controls`), a traceback's lines indented."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format call: emit() fails on it too, quietly
            return True
        record.msg = escape_controls(redact(message))
        record.args = ()
        if getattr(record, _DONE, False):
            return True  # a second handler: exc_text is rewritten already
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = _indent(redact(record.exc_text))
        if record.stack_info:
            record.stack_info = _indent(redact(record.stack_info))
        setattr(record, _DONE, True)
        return True


class _SilentErrorsMixin:
    """A handler that fails quietly: logging's default prints tracebacks to stderr."""

    def handleError(self, record: logging.LogRecord) -> None:
        pass


class _FileHandler(_SilentErrorsMixin, logging.handlers.WatchedFileHandler):
    def _open(self) -> Any:
        # created 0640 whatever the umask; an existing regular file readable by
        # others (made by an older version, or by hand) is narrowed when it is ours.
        # Anything else (/dev/null, a FIFO) is left exactly as it is.
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(self.baseFilename, flags, LOG_FILE_MODE)
        try:
            st = os.fstat(fd)
            mode = st.st_mode & 0o777
            if stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() \
                    and mode & ~LOG_FILE_MODE:
                try:
                    os.fchmod(fd, mode & LOG_FILE_MODE)
                except OSError:
                    pass  # not ours to change
            return io.open(fd, "a", encoding=self.encoding)
        except BaseException:
            os.close(fd)
            raise

    def emit(self, record: logging.LogRecord) -> None:
        # WatchedFileHandler reopens the file outside logging's own error handling:
        # if that fails (log directory gone), the caller would get the exception.
        try:
            super().emit(record)
        except Exception:
            self.handleError(record)


class _SyslogHandler(_SilentErrorsMixin, logging.handlers.SysLogHandler):
    pass


def debug_enabled() -> bool:
    """True if XSCONTAINER_DEBUG=1 or the dev-logging flag file exists (as the original)."""
    if os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes", "on"):
        return True
    return os.path.exists(os.path.join(paths.files_dir(), DEBUG_FLAG_FILE))


def _file_handler(fmt: str) -> Optional[logging.Handler]:
    # WatchedFileHandler, not RotatingFileHandler: every plugin call, the monitor and
    # prepare-vm append to this one file from separate processes, and logrotate (the
    # RPM ships an entry) rotates it. A per-process RotatingFileHandler would race
    # with the other processes when it renames the file; WatchedFileHandler only
    # appends (O_APPEND) and reopens the file when logrotate has moved it away.
    try:
        handler = _FileHandler(paths.log_file(), encoding="utf-8")
    except OSError:
        return None
    handler.setFormatter(logging.Formatter(fmt))
    return handler


def _syslog_handler(program: str) -> Optional[logging.Handler]:
    if not os.path.exists(SYSLOG_SOCKET):
        return None
    try:
        handler = _SyslogHandler(
            address=SYSLOG_SOCKET, facility=logging.handlers.SysLogHandler.LOG_DAEMON
        )
    except OSError:
        return None
    # syslog's own convention: "<ident>[<pid>]: <message>"
    handler.ident = "xscontainer-%s" % program
    handler.setFormatter(logging.Formatter("[%(process)d]: %(levelname)s %(name)s: %(message)s"))
    return handler


def configure(program: str, level: Optional[int] = None) -> logging.Logger:
    """Send all logging of this process to the xscontainer log file and syslog.

    `program` names the process in each line (``plugin``, ``monitor``,
    ``prepare-vm``). `level` defaults to INFO, or DEBUG when `debug_enabled`.
    Handlers go on the root logger so library messages (paramiko, docker) are
    kept too. If the log file cannot be opened, syslog alone is used; if neither
    works, logging is silent rather than falling back to stderr. Calling it again
    replaces the handlers installed before. Returns the ``xscontainer`` logger.
    """
    if level is None:
        level = logging.DEBUG if debug_enabled() else logging.INFO
    fmt = "%(asctime)s {}[%(process)d] %(levelname)s %(name)s: %(message)s".format(
        program.replace("%", "%%")
    )

    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _OURS, False)]:
        root.removeHandler(old)
        old.close()

    handlers: List[logging.Handler] = []
    for handler in (_file_handler(fmt), _syslog_handler(program)):
        if handler is not None:
            handlers.append(handler)
    if not handlers:
        # Without any handler logging would use logging.lastResort, i.e. stderr.
        handlers.append(logging.NullHandler())
    for handler in handlers:
        handler.addFilter(RedactingFilter())
        setattr(handler, _OURS, True)
        root.addHandler(handler)
    root.setLevel(level)
    return logging.getLogger(PACKAGE_LOGGER)


def install_daemon_hooks(logger: logging.Logger) -> None:
    """For long-running processes: log uncaught exceptions; survive broken pipes.

    Uncaught exceptions (except KeyboardInterrupt) in the main thread, and in other
    threads on Python 3.8+, are logged before the previous hook runs. SIGPIPE is
    kept ignored so that writing to a closed socket raises BrokenPipeError, which
    callers handle and which is logged if not, instead of killing the process
    without a trace (the original reset SIGPIPE to SIG_DFL). Call from the main
    thread.
    """
    previous_hook = sys.excepthook

    def excepthook(
        exc_type: Type[BaseException],
        exc: BaseException,
        tb: Optional[TracebackType],
    ) -> None:
        if not issubclass(exc_type, KeyboardInterrupt):
            logger.critical("Uncaught exception, exiting", exc_info=(exc_type, exc, tb))
        previous_hook(exc_type, exc, tb)

    sys.excepthook = excepthook

    # threading.excepthook exists from Python 3.8; on 3.6 threads must catch their own.
    previous_thread_hook = getattr(threading, "excepthook", None)
    if previous_thread_hook is not None:

        def thread_excepthook(args: Any) -> None:
            if not issubclass(args.exc_type, KeyboardInterrupt):
                name = args.thread.name if args.thread is not None else "?"
                logger.critical(
                    "Uncaught exception in thread %s",
                    name,
                    exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
                )
            previous_thread_hook(args)

        # setattr: a plain assignment reads as 3.8-only to vermin, though guarded above
        setattr(threading, "excepthook", thread_excepthook)  # noqa: B010

    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
