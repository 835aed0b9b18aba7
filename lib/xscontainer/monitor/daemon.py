"""xscontainer-monitor: wiring, signals and an orderly stop.

Threads: main (signals, supervision), the pool watcher (XAPI events), the
publisher (XAPI writes), the control socket's acceptor plus at most 8 request
threads while requests run, the Ticker's scheduler and at most 16 pool threads
(every VM's timed refreshes), the event reader (every VM's Docker event
stream), the request deadline watcher, and per monitored VM paramiko's
transport thread; a VM's worker thread runs only while it connects or waits
to retry (see worker.py).

Each monitored VM holds three file descriptors (its TCP connection and the
pipe its event stream is waited on with): the soft limit on open files is
raised to the hard one (up to MAX_OPEN_FILES) at start.

SIGTERM / SIGINT: stop serving the control socket, stop following XAPI, close
every guest connection (which ends each worker's event stream), remove the docker keys
of every monitored VM, log out, all within about 4 seconds (systemd waits
longer; the goal is 5 seconds).
"""

import errno
import fcntl
import logging
import os
import resource
import signal
import threading
import time
from typing import IO, Any, Dict, Optional

from xscontainer import errors
from xscontainer import log as xlog
from xscontainer.monitor import options, protocol, xapiconn
from xscontainer.monitor.control import ControlServer, Dispatcher
from xscontainer.monitor.pool import PoolWatcher, Supervisor
from xscontainer.monitor.publisher import Publisher
from xscontainer.monitor.worker import VMWorker
from xscontainer.xapi import DEFAULT_TIMEOUT

log = logging.getLogger(__name__)

SUPERVISE_EVERY = 2.0
MAX_OPEN_FILES = 65536


def raise_open_files_limit(wanted: int = MAX_OPEN_FILES) -> int:
    """Raise the soft limit on open files towards `wanted` (never above the hard
    limit); returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the limit on open files from %d to %d: %s",
                        soft, target, exc)
    return soft


class Daemon:
    def __init__(self, settings: options.Settings) -> None:
        self.settings = settings
        self.stop_requested = threading.Event()
        self.started = time.monotonic()
        self.publisher: Optional[Publisher] = None
        self.supervisor: Optional[Supervisor] = None
        self.watcher: Optional[PoolWatcher] = None
        self.control: Optional[ControlServer] = None
        self.dispatcher: Optional[Dispatcher] = None
        self._threads: Dict[str, threading.Thread] = {}

    def request_stop(self, signum: int = 0, _frame: Any = None) -> None:
        if signum:
            log.info("signal %d received: stopping", signum)
        self.stop_requested.set()

    # -- running -------------------------------------------------------------------------

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        log.info("up to %d open files (three per monitored VM)", raise_open_files_limit())
        calls = self._login()
        if calls is None:
            return 0  # asked to stop before XAPI answered
        publisher = Publisher(calls)
        supervisor = Supervisor(
            publisher, self.settings,
            lambda ref, record: VMWorker(ref, record, calls, publisher, self.settings),
        )
        self.publisher, self.supervisor = publisher, supervisor
        self.watcher = PoolWatcher(supervisor, self.settings)
        self._spawn("publisher", publisher.run)
        self._spawn("xapi-events", self.watcher.run)
        if self.settings.control:
            self.dispatcher = Dispatcher(supervisor, publisher, self.status)
            self.control = ControlServer(self.dispatcher,
                                         plugin_call=self.dispatcher.plugin_call)
            try:
                self.control.start()
            except OSError as exc:
                log.error("cannot serve the control socket (%s); plugin calls will connect "
                          "to guests directly", exc)
                self.control = None
        try:
            while not self.stop_requested.wait(SUPERVISE_EVERY):
                supervisor.check()
                self._check_threads()
        finally:
            self._shutdown(calls)
        return 0

    def _login(self) -> Optional[xapiconn.SerialXapi]:
        delay = 1.0
        while not self.stop_requested.is_set():
            try:
                return xapiconn.SerialXapi.login_serial(DEFAULT_TIMEOUT)
            except errors.XSContainerError as exc:
                log.warning("cannot log in to XAPI yet (%s); retrying in %gs", exc.message, delay)
            self.stop_requested.wait(delay)
            delay = min(delay * 2, 30.0)
        return None

    def _spawn(self, name: str, target: Any) -> None:
        thread = threading.Thread(target=self._guarded, args=(name, target), name=name,
                                  daemon=True)
        self._threads[name] = thread
        thread.start()

    def _guarded(self, name: str, target: Any) -> None:
        try:
            target()
        except Exception:  # logged here; restarted by _check_threads
            log.exception("the %s thread failed", name)

    def _check_threads(self) -> None:
        for name, thread in list(self._threads.items()):
            if not thread.is_alive() and not self.stop_requested.is_set():
                log.error("the %s thread stopped unexpectedly; restarting it", name)
                target = {"publisher": self.publisher and self.publisher.run,
                          "xapi-events": self.watcher and self.watcher.run}[name]
                self._spawn(name, target)

    def _shutdown(self, calls: xapiconn.SerialXapi) -> None:
        deadline = time.monotonic() + self.settings.stop_timeout
        log.info("stopping: closing guest connections and removing docker data")
        if self.control is not None:
            self.control.stop()
        if self.watcher is not None:
            self.watcher.stop()
        if self.supervisor is not None:
            self.supervisor.stop_all(max(0.1, (deadline - time.monotonic()) * 0.4))
        if self.publisher is not None:
            if not self.publisher.flush(max(0.1, deadline - time.monotonic() - 0.5)):
                log.warning("could not remove all docker data before stopping")
            self.publisher.stop()
        publisher_thread = self._threads.get("publisher")
        if publisher_thread is not None:
            publisher_thread.join(max(0.0, deadline - time.monotonic()))
        calls.close()
        watcher_thread = self._threads.get("xapi-events")
        if watcher_thread is not None:
            watcher_thread.join(max(0.1, deadline - time.monotonic()))
        log.info("stopped")

    # -- status (control socket "status") ------------------------------------------------

    def status(self) -> Dict[str, Any]:
        workers: Dict[str, Any] = {}
        if self.supervisor is not None:
            for worker in self.supervisor.workers():
                workers[worker.uuid] = worker.status()
        result: Dict[str, Any] = {
            "pid": os.getpid(),
            "uptime": round(time.monotonic() - self.started, 3),
            "threads": threading.active_count(),
            "rss_kib": _rss_kib(),
            "vms": workers,
        }
        if self.publisher is not None:
            result["xapi_writes"] = self.publisher.writes
            result["xapi_failures"] = self.publisher.xapi_failures
        if self.watcher is not None:
            result["xapi_logins"] = self.watcher.logins
            result["xapi_loads"] = self.watcher.loads
        if self.supervisor is not None:
            result["worker_restarts"] = self.supervisor.restarts
            result["pool_master"] = self.supervisor.is_master
        if self.dispatcher is not None:
            result["control_served"] = self.dispatcher.served
            result["control_unavailable"] = self.dispatcher.unavailable
        return result


def _rss_kib() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _lock_single_instance() -> Optional[IO[str]]:
    """Hold <run dir>/monitor.lock for the life of the process; None if another holds it."""
    directory = os.path.dirname(protocol.lock_path())
    os.makedirs(directory, mode=0o700, exist_ok=True)
    handle = open(protocol.lock_path(), "a")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        handle.close()
        if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return None
        raise
    return handle


def run(settings: options.Settings) -> int:
    logger = xlog.configure("monitor", logging.DEBUG if settings.debug else None)
    xlog.install_daemon_hooks(logger)
    lock = _lock_single_instance()
    if lock is None:
        log.error("another xscontainer-monitor is running on this host (%s is locked)",
                  protocol.lock_path())
        return 1
    log.info("xscontainer-monitor starting (pid %d)", os.getpid())
    try:
        return Daemon(settings).run()
    finally:
        lock.close()
