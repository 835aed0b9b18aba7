"""Runs the XAPI simulator as a subprocess in a throw-away lab folder, and
gives real XenAPI sessions to it over TCP and over its unix socket (the
simulator's tests and the packaging tests use it)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xmlrpc.client
from typing import Any, Dict, List, Optional

import XenAPI

from . import labenv
from .xapisim.client import UnixTransport
from .xapisim.seed import example

PASSWORD = "xscontainer-lab"
START_TIMEOUT = 15.0


def make_lab_dir() -> str:
    # short, underscore-free path: AF_UNIX paths are limited to 107 bytes
    return tempfile.mkdtemp(prefix="xsim", dir="/tmp")


def env_for(lab_dir: str) -> Dict[str, str]:
    env = dict(os.environ)
    env["XSC_LAB_DIR"] = lab_dir
    env["PYTHONPATH"] = labenv.LAB_CODE_DIR
    env.pop("XSCONTAINER_XAPI_SOCKET", None)
    return env


class Simulator:
    """One simulator process: start(), stop(), kill(), restart()."""

    def __init__(self, lab_dir: str, plugins_dir: str, seed: Optional[Dict[str, Any]] = None,
                 extra_args: Optional[List[str]] = None) -> None:
        self.lab_dir = lab_dir
        self.plugins_dir = plugins_dir
        self.seed = seed if seed is not None else example()
        self.extra_args = list(extra_args or [])
        self.state = os.path.join(lab_dir, "state.json")
        self.seed_file = os.path.join(lab_dir, "seed.json")
        self.socket = os.path.join(lab_dir, "xapi.sock")
        self.url_file = os.path.join(lab_dir, "url")
        self.pidfile = os.path.join(lab_dir, "xapisim.pid")
        self.log = os.path.join(lab_dir, "xapisim.log")
        self.url = ""
        self.port = 0  # the first start picks a port; restarts keep it, as the lab does
        self.proc: Optional[subprocess.Popen] = None
        with open(self.seed_file, "w") as f:
            json.dump(self.seed, f)

    def start(self) -> "Simulator":
        if os.path.exists(self.url_file):
            os.unlink(self.url_file)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "xsclab.xapisim", "serve", "--state", self.state,
                 "--seed", self.seed_file, "--url-file", self.url_file,
                 "--pidfile", self.pidfile, "--plugins-dir", self.plugins_dir,
                 "--port", str(self.port), *self.extra_args],
                env=env_for(self.lab_dir), stdout=log, stderr=log,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not os.path.exists(self.url_file):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("simulator did not start:\n" + self.read_log())
            time.sleep(0.02)
        with open(self.url_file) as f:
            self.url = f.read().strip()
        self.port = int(self.url.rstrip("/").rsplit(":", 1)[1])
        return self

    def read_log(self) -> str:
        with open(self.log) as f:
            return f.read()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        rc = self.proc.wait(timeout)
        self.proc = None
        return rc

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def restart(self) -> "Simulator":
        self.stop()
        return self.start()

    def close(self) -> None:
        if self.proc is not None:
            self.kill()

    # -- clients ---------------------------------------------------------------

    def tcp(self) -> XenAPI.Session:
        """A logged-in XenAPI session over TCP (root + password)."""
        session = XenAPI.Session(self.url)
        session.login_with_password("root", PASSWORD, "2.21", "xsc-tests")
        return session

    def unix(self, user: str = "root", password: str = "") -> XenAPI.Session:
        """A logged-in XenAPI session over the unix socket (dom0's local root)."""
        session = XenAPI.Session("http://xapi/", transport=UnixTransport(self.socket))
        session.login_with_password(user, password, "2.21", "xsc-tests")
        return session

    def raw(self) -> xmlrpc.client.ServerProxy:
        """Plain XML-RPC over TCP: shows the responses without XenAPI's handling."""
        return xmlrpc.client.ServerProxy(self.url, allow_none=True)


def cleanup(lab_dir: str) -> None:
    shutil.rmtree(lab_dir, ignore_errors=True)
