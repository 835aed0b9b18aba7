"""Processes the lab starts: recorded by PID and start time, stopped by PID.

A record is a file holding "PID STARTTIME" (STARTTIME: field 22 of
/proc/PID/stat). Checking both before signalling means a recycled PID is never
mistaken for one of ours, also after a crash or a reboot.
"""

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Optional, Set


@dataclass(frozen=True)
class Proc:
    pid: int
    start: int

    def running(self) -> bool:
        """True while this very process exists and is not a zombie."""
        stat = _stat(self.pid)
        return stat is not None and stat[1] == self.start and stat[0] != "Z"


def _stat(pid: int) -> Optional[tuple]:
    """(state, start time) of a PID, None if there is no such process."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


def of_pid(pid: int) -> Optional[Proc]:
    stat = _stat(pid)
    return None if stat is None else Proc(pid, stat[1])


def save(path: str, proc: Proc) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d %d\n" % (proc.pid, proc.start))
    os.replace(tmp, path)


def load(path: str) -> Optional[Proc]:
    try:
        with open(path) as f:
            pid, start = f.read().split()
        return Proc(int(pid), int(start))
    except (OSError, ValueError):
        return None


def running_from(path: str) -> Optional[Proc]:
    """The process recorded in `path` if it is still running."""
    proc = load(path)
    return proc if proc is not None and proc.running() else None


def spawn(
    argv: List[str],
    log_path: str,
    record: str,
    env: Optional[Mapping[str, str]] = None,
    cwd: str = "/",
) -> Proc:
    """Start a daemon in its own session, output appended to `log_path`,
    and record it in `record` before returning."""
    with open(log_path, "ab") as log:
        child = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=dict(env) if env is not None else None,
            cwd=cwd,
        )
    proc = of_pid(child.pid)
    if proc is None:  # exited (and was reaped by nobody yet): start time unknown
        child.wait(timeout=5)
        raise RuntimeError(
            "%s exited at once (rc %s); see %s" % (argv[0], child.returncode, log_path)
        )
    save(record, proc)
    return proc


def _reap(pid: int) -> None:
    """Collect our own exited child so it does not stay a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def signal_proc(proc: Proc, sig: int) -> bool:
    if not proc.running():
        return False
    try:
        os.kill(proc.pid, sig)
    except ProcessLookupError:
        return False
    return True


def wait_gone(procs: Iterable[Proc], timeout: float) -> List[Proc]:
    """Wait until none of `procs` runs; returns those still running."""
    left = list(procs)
    deadline = time.monotonic() + timeout
    while True:
        for p in left:
            _reap(p.pid)
        left = [p for p in left if p.running()]
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.02)


def stop(procs: Iterable[Proc], timeout: float) -> None:
    """SIGTERM, wait up to `timeout` seconds, then SIGKILL what is left."""
    targets = [p for p in procs if signal_proc(p, signal.SIGTERM)]
    left = wait_gone(targets, timeout)
    for p in left:
        signal_proc(p, signal.SIGKILL)
    left = wait_gone(left, 5)
    if left:
        raise RuntimeError("could not stop PIDs %s" % [p.pid for p in left])


def stop_recorded(record: str, timeout: float) -> None:
    """Stop the process recorded in `record` (if any) and drop the record."""
    proc = load(record)
    if proc is not None:
        stop([proc], timeout)
    try:
        os.unlink(record)
    except FileNotFoundError:
        pass


def ns_inode(path: str) -> Optional[int]:
    """Inode of a namespace (a /proc/PID/ns/* link or a bind-mounted ns file)."""
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def _all_pids() -> List[int]:
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def _children_map() -> Dict[int, List[int]]:
    children: Dict[int, List[int]] = {}
    for pid in _all_pids():
        try:
            with open("/proc/%d/stat" % pid) as f:
                data = f.read()
        except OSError:
            continue
        ppid = int(data[data.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(pid)
    return children


def in_namespaces(kind: str, inodes: Set[int]) -> List[int]:
    """PIDs of processes in any of the given namespaces (kind: "net", "mnt")
    and all their descendants (e.g. containers, which have namespaces of
    their own but are children of a guest's containerd-shim)."""
    mine = ns_inode("/proc/self/ns/%s" % kind)
    if mine in inodes:
        raise RuntimeError("refusing to sweep the lab's own %s namespace" % kind)
    found = {pid for pid in _all_pids() if ns_inode("/proc/%d/ns/%s" % (pid, kind)) in inodes}
    children = _children_map()
    todo = list(found)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    found.discard(os.getpid())
    return sorted(found)


def kill_all(pids: Iterable[int], timeout: float = 5) -> None:
    """SIGKILL processes by PID (taken from a scan just made) and wait for them."""
    procs = [p for p in (of_pid(pid) for pid in pids) if p is not None]
    for p in procs:
        signal_proc(p, signal.SIGKILL)
    left = wait_gone(procs, timeout)
    if left:
        raise RuntimeError("could not kill PIDs %s" % [p.pid for p in left])
