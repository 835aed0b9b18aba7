"""A misbehaving SSH server: what a hostile (or broken) guest may put on its port 22.

Modes:
  silent        accepts TCP and never says a word (reads and discards what comes)
  garbage       sends junk instead of an SSH banner: lines with control characters,
                a fake xscontainer log line, one very long line; then stays silent
  banner-close  sends a valid SSH banner, then closes the connection
  trickle       sends "SSH-2.0-" and then one byte every TRICKLE_EVERY seconds, never
                ending the line

In-process (unit tests): ``with HostileSSHD("silent") as server: server.port``.
In a lab guest (integration tests): `start_in_guest(lab, vm, mode)` stops the
guest's real sshd (as `lab service VM sshd stop`) and runs this module in the
guest's network namespace on port 22; `stop_in_guest(lab, vm)` stops it and starts
the real sshd again. `lab down` also ends it (it runs in the guest's namespaces).
From the command line: ``python3 -m xsclab.hostile_sshd --mode silent [--port 22]``.
"""

import argparse
import os
import socket
import sys
import threading
import time
from typing import Any, List, Optional

MODES = ("silent", "garbage", "banner-close", "trickle")
TRICKLE_EVERY = 0.5
BANNER = b"SSH-2.0-OpenSSH_9.6 hostile\r\n"
FAKE_LOG_LINE = "2026-01-01 00:00:00,000 plugin[1] INFO xscontainer.plugin: all is well"
GARBAGE = (
    b"HTTP/1.1 400 Bad Request\r\n"
    + b"\x1b[2J\x07 not ssh at all\n"
    + ("x\n%s\n" % FAKE_LOG_LINE).encode()
    + b"".join(b"junk line %d\r\n" % i for i in range(150))
    + b"Y" * 5000 + b"\n"
)
RECORD = "hostile_sshd"  # the lab's record and log name in vms/<vm>/


def _converse(conn: socket.socket, mode: str, stop: threading.Event) -> None:
    try:
        conn.settimeout(0.2)
        if mode == "banner-close":
            conn.sendall(BANNER)
            return
        if mode == "garbage":
            conn.sendall(GARBAGE)
        elif mode == "trickle":
            conn.sendall(b"SSH-2.0-")
        while not stop.is_set():
            if mode == "trickle":
                conn.sendall(b"x")
            try:
                if conn.recv(65536) == b"":
                    return  # the client went away
            except socket.timeout:
                pass
            if mode == "trickle":
                stop.wait(TRICKLE_EVERY)
    except OSError:
        return
    finally:
        conn.close()


class HostileSSHD:
    """A listener on `address` (port `port`, 0 = any) answering in `mode`."""

    def __init__(self, mode: str, address: str = "127.0.0.1", port: int = 0) -> None:
        if mode not in MODES:
            raise ValueError("mode must be one of %s" % ", ".join(MODES))
        self.mode = mode
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((address, port))
        self._listener.listen(64)
        self._listener.settimeout(0.2)
        self.address, self.port = self._listener.getsockname()[:2]
        self._stop = threading.Event()
        self.connections = 0
        self._thread = threading.Thread(target=self._serve, name="hostile-sshd", daemon=True)

    def start(self) -> "HostileSSHD":
        self._thread.start()
        return self

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _peer = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=_converse, args=(conn, self.mode, self._stop),
                             daemon=True).start()

    def serve_forever(self) -> None:
        self._serve()

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        if self._thread.is_alive():
            self._thread.join(2)

    def __enter__(self) -> "HostileSSHD":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()


# -- in a lab guest ---------------------------------------------------------------------


def start_in_guest(lab: Any, vm: str, mode: str, timeout: float = 10.0) -> None:
    """Replace the guest's sshd by a hostile one in `mode` (listening when this returns)."""
    # the lab's side only: the unit tests (Python 3.6 too) use HostileSSHD alone
    from . import procs, rig  # noqa: PLC0415

    if mode not in MODES:
        raise ValueError("mode must be one of %s" % ", ".join(MODES))
    lab.service(vm, "sshd", "stop")
    stop_hostile(lab, vm)
    g = lab._guest(vm)
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=here)
    procs.spawn([*rig.enter_argv(rig.holder(g)), sys.executable, "-m", "xsclab.hostile_sshd",
                 "--mode", mode, "--port", "22"], g.log(RECORD), g.record(RECORD), env=env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((g.ip, 22), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the hostile sshd of %s did not listen within %gs" % (vm, timeout))


def stop_hostile(lab: Any, vm: str) -> None:
    from . import procs  # noqa: PLC0415 (the lab's side only)

    procs.stop_recorded(lab._guest(vm).record(RECORD), timeout=5)


def stop_in_guest(lab: Any, vm: str) -> None:
    """Stop the hostile sshd and start the guest's real one again."""
    stop_hostile(lab, vm)
    lab.service(vm, "sshd", "start")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="hostile_sshd", description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=MODES, required=True)
    parser.add_argument("--address", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=22)
    args = parser.parse_args(argv)
    server = HostileSSHD(args.mode, args.address, args.port)
    sys.stdout.write("hostile sshd (%s) on %s:%d\n" % (args.mode, server.address, server.port))
    sys.stdout.flush()
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
