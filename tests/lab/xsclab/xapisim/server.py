"""Starting and stopping the simulator: state, listeners, signals."""

import logging
import os
import signal
import threading
from typing import List, Optional

from .. import labenv
from . import core, generic, plugins, seed, storage, vm
from .api import Api, Config
from .store import Store
from .web import Listener, UnixListener

log = logging.getLogger("xapisim")

MAX_SOCKET_PATH = 107  # sun_path holds 108 bytes including the final NUL
POLL_INTERVAL = 0.1  # how fast serve_forever notices shutdown()


def open_store(state_path: str, seed_path: Optional[str], lab_dir: str) -> Store:
    """The saved state if there is one (the seed is then ignored), else a new
    state built from the seed."""
    if os.path.exists(state_path):
        store = Store.load(state_path)
        store.save()  # fold the journal of the previous run into the snapshot
        return store
    if not seed_path:
        raise SystemExit("xapisim: %s does not exist and no --seed was given" % state_path)
    store = Store(state_path)
    with store.mutation():
        seed.build(store, seed.load(seed_path), lab_dir)
    return store


def make_api(store: Store, config: Config) -> Api:
    api = Api(store, config)
    generic.register(api)
    for module in (core, vm, storage, plugins):
        module.register(api)
    return api


def _write_atomically(path: str, text: str) -> None:
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def serve(state_path: str, *, seed_path: Optional[str], socket_path: Optional[str],
          port: int, url_file: Optional[str], pidfile: Optional[str],
          plugins_dir: Optional[str], plugin_timeout: float) -> None:
    lab_dir = labenv.lab_dir()
    socket_path = os.path.abspath(socket_path or labenv.xapi_socket())
    if len(socket_path.encode()) > MAX_SOCKET_PATH:
        raise SystemExit("xapisim: socket path too long for AF_UNIX (%d > %d bytes): %s"
                         % (len(socket_path.encode()), MAX_SOCKET_PATH, socket_path))
    config = Config(os.path.abspath(plugins_dir or labenv.tree().plugins_dir), lab_dir,
                    plugin_timeout)
    store = open_store(os.path.abspath(state_path), seed_path, lab_dir)
    for host in store.objects["host"].values():
        labenv.ensure_host_dirs(host["uuid"], store.get("VM", host["control_domain"])["uuid"])
    api = make_api(store, config)

    os.makedirs(os.path.dirname(socket_path), exist_ok=True)
    _remove(socket_path)  # a stale socket of a killed simulator
    servers: List = [UnixListener(socket_path, api), Listener(("127.0.0.1", port), api)]
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if pidfile:
        _write_atomically(pidfile, "%d\n" % os.getpid())
    threads = [threading.Thread(target=s.serve_forever, args=(POLL_INTERVAL,), daemon=True)
               for s in servers]
    for t in threads:
        t.start()
    url = "http://127.0.0.1:%d/" % servers[1].server_address[1]
    if url_file:
        _write_atomically(url_file, url + "\n")
    log.info("serving %s and %s (state %s, plugins %s)", socket_path, url, state_path,
             config.plugins_dir)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        for s in servers:
            s.shutdown()
            s.server_close()
        plugins.RUNNING.kill_all()
        store.close()
        for path in (socket_path, url_file, pidfile):
            if path:
                _remove(path)
    log.info("stopped")
