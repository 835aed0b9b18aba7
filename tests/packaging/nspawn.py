"""A booted container for the systemd checks (test_systemd.py; root).

A minimal Debian root (debootstrap from Debian's packages: systemd, dbus, rpm) is
kept in /var/cache/xscontainer-lab/ (outside any clone, so every clone and run
reuses it; made on first use, about a minute). Each test module boots it once with
`systemd-nspawn -b --volatile=overlay` (changes go to a tmpfs: the cached root is
never written) and runs commands in it with nsenter. Inside:

* /xsc (read-only): the session's RPMs (packaging/build-rpm from a clean clone of
  HEAD: release 1) in /xsc/rel1, release 2 of xscontainer (rpmbuild of the same
  spec) in /xsc/rel2, a dom0 Python stand-in, a stand-in xapi.service;
* dom0's Python 3.6: the bare interpreter .venv36 was made from (bind-mounted at
  its own path), with what dom0's other packages provide (XenAPI, requests) from
  .venv36 and the lab's XenAPIPlugin stand-in, as /usr/bin/python3;
* xapi.service: a unit that only sleeps (xapi's name, no xapi behind it).

`boot(releases)` gives the booted container (`Machine`: `.sh(cmd)`, unit states);
`release2(build)` builds release 2 of xscontainer from the session's clone.
"""

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import pytest
from pkgbuild import REPO, Build

CACHE = Path("/var/cache/xscontainer-lab")
SUITE = "bookworm"
ROOT = CACHE / ("debian-%s-systemd" % SUITE)
MIRROR = "http://deb.debian.org/debian"
PACKAGES = ["systemd", "systemd-sysv", "dbus", "rpm", "libssl3", "libffi8", "procps"]
# what dom0 provides from other packages than ours (xapi-core, python3-requests)
DOM0_PROVIDED = ("XenAPI", "requests", "urllib3", "idna", "charset_normalizer", "certifi")
XAPI_UNIT = """[Unit]
Description=stand-in for xapi (the tests start and stop it)

[Service]
ExecStart=/bin/sleep infinity
"""


def run(argv: List[str], timeout: float = 600, check: bool = True,
        env: Optional[Dict[str, str]] = None, cwd: Optional[Path] = None
        ) -> "subprocess.CompletedProcess[str]":
    proc = subprocess.run([str(a) for a in argv], stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=timeout, env=env, cwd=cwd)
    if check and proc.returncode != 0:
        pytest.fail("%s failed (%d):\n%s\n%s" % (" ".join(map(str, argv)), proc.returncode,
                                               proc.stdout[-3000:], proc.stderr[-3000:]),
                    pytrace=False)
    return proc


def debian_root() -> Path:
    """The cached root, made by debootstrap when absent (one maker at a time)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(str(CACHE / ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (ROOT / "usr/lib/systemd/systemd").exists():
            return ROOT
        for tool in ("debootstrap", "systemd-nspawn", "nsenter"):
            if not shutil.which(tool):
                pytest.fail("%s is missing: make deps installs it" % tool, pytrace=False)
        partial = Path(tempfile.mkdtemp(prefix="debootstrap.", dir=str(CACHE)))
        try:
            run(["debootstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES),
                 SUITE, partial, MIRROR], timeout=1200)
            partial.rename(ROOT)
        finally:
            # debootstrap mounts /proc (and more) in its target: never delete through them
            unmount_under(partial)
            shutil.rmtree(str(partial), ignore_errors=True)
    return ROOT


def unmount_under(path: Path) -> None:
    with open("/proc/self/mounts") as f:
        points = [line.split()[1] for line in f]
    prefix = str(path).rstrip("/") + "/"
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        run(["umount", "--lazy", point], check=False)


def bare_python36() -> Path:
    """The Python 3.6 .venv36 was made from (no third-party packages)."""
    cfg = (REPO / ".venv36" / "pyvenv.cfg").read_text()
    home = next(line.split("=", 1)[1].strip() for line in cfg.splitlines()
                if line.startswith("home"))
    return Path(home) / "python3.6"


def release2(build: Build) -> Path:
    """Release 2 of xscontainer (the package with scriptlets), built from the
    session's clone with the same spec and defines as build-rpm."""
    top = build.top / "release2"
    for sub in ("SOURCES", "BUILD", "RPMS", "SRPMS"):
        (top / sub).mkdir(parents=True)
    version = build.version
    run(["git", "archive", "--format=tar.gz", "--prefix=xscontainer-%s/" % version,
         "-o", top / "SOURCES" / ("xscontainer-%s.tar.gz" % version), "HEAD"], cwd=build.src)
    run(["rpmbuild", "-bb", "--quiet", "--define", "_topdir %s" % top,
         "--define", "xsc_version %s" % version, "--define", "xsc_release 2",
         "--define", "python3_bytecompile %s" % (REPO / ".venv36" / "bin" / "python3"),
         "--define", "_binary_payload w6.xzdio", build.src / "xscontainer.spec"])
    dist = top / "dist"
    dist.mkdir()
    for built in (top / "RPMS").rglob("*.rpm"):
        shutil.copy(str(built), str(dist))
    return dist


class Machine:
    """A booted container: systemd as PID 1 of its own PID namespace."""

    def __init__(self, name: str, proc: "subprocess.Popen[bytes]", console: Path) -> None:
        self.name = name
        self.proc = proc
        self.console = console
        self.leader = 0

    def sh(self, command: str, check: bool = True, timeout: float = 120
           ) -> "subprocess.CompletedProcess[str]":
        """`command` run by /bin/sh inside, as root, with a clean environment."""
        return run(["nsenter", "-t", str(self.leader), "-m", "-u", "-i", "-p", "--",
                    "/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                    "/bin/sh", "-c", command], timeout=timeout, check=check)

    def state(self, unit: str) -> str:
        return self.sh("systemctl is-active %s" % unit, check=False).stdout.strip()

    def enabled(self, unit: str) -> str:
        return self.sh("systemctl is-enabled %s" % unit, check=False).stdout.strip()

    def main_pid(self, unit: str) -> int:
        return int(self.sh("systemctl show -p MainPID --value %s" % unit).stdout.strip() or 0)

    def wait(self, what: str, check: "object", timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not check():  # type: ignore[operator]
            if time.monotonic() > deadline:
                pytest.fail("timed out waiting for %s\n%s" % (what, self.diagnostics()),
                            pytrace=False)
            time.sleep(0.2)

    def diagnostics(self) -> str:
        return self.sh("systemctl status --no-pager -n 30 xscontainer-monitor.service; "
                       "journalctl --no-pager -o cat -n 30 -u xscontainer-monitor.service; "
                       "tail -n 30 /var/log/xscontainer.log", check=False).stdout[-6000:]

    def boot_log(self) -> str:
        try:
            return self.console.read_text(errors="replace")[-3000:]
        except OSError:
            return ""


def _leader(nspawn_pid: int) -> int:
    """The container's PID 1 as this machine sees it: nspawn's child running systemd."""
    out = run(["ps", "-o", "pid=,args=", "--ppid", str(nspawn_pid)], check=False).stdout
    for line in out.splitlines():
        pid, _, args = line.strip().partition(" ")
        if "systemd" in args:
            return int(pid)
    return 0


def setup_dir(top: Path, releases: Dict[int, Path]) -> Path:
    """What the container sees as /xsc."""
    xsc = top / "xsc"
    xsc.mkdir()
    for release, dist in releases.items():
        (xsc / ("rel%d" % release)).mkdir()
        for rpm in dist.glob("*.rpm"):
            shutil.copy(str(rpm), str(xsc / ("rel%d" % release)))
    site = REPO / ".venv36" / "lib" / "python3.6" / "site-packages"
    for name in DOM0_PROVIDED:
        shutil.copytree(str(site / name), str(xsc / "provided" / name))
    # xapi-core's XenAPIPlugin module: the lab's stand-in
    shutil.copy(str(REPO / "tests" / "lab" / "stubs" / "XenAPIPlugin.py"), str(xsc / "provided"))
    python = xsc / "python3"
    python.write_text("#!/bin/sh\n"
                      "export PYTHONPATH=/usr/lib/python3.6/site-packages:/xsc/provided\n"
                      'exec %s "$@"\n' % bare_python36())
    python.chmod(0o755)
    (xsc / "xapi.service").write_text(XAPI_UNIT)
    for path in [xsc, *xsc.rglob("*")]:
        os.chmod(str(path), 0o755 if path.is_dir() or path.name == "python3" else 0o644)
    return xsc


@contextlib.contextmanager
def boot(releases: Dict[int, Path]) -> Iterator[Machine]:
    """The cached root booted, the RPMs of `releases` in /xsc/rel<N>."""
    root = debian_root()
    top = Path(tempfile.mkdtemp(prefix="xsc-nspawn."))
    name = "xsc-systemd-%d" % os.getpid()
    xsc = setup_dir(top, releases)
    prefix = bare_python36().parent.parent
    console = top / "console.log"
    with open(str(console), "wb") as out:
        proc = subprocess.Popen(
            ["systemd-nspawn", "--quiet", "--boot", "--directory", str(root),
             "--volatile=overlay", "--register=no", "--keep-unit", "--machine", name,
             "--console=read-only", "--bind-ro=%s:/xsc" % xsc,
             "--bind-ro=%s" % prefix],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    m = Machine(name, proc, console)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail("systemd-nspawn exited (%s):\n%s" % (proc.returncode, m.boot_log()),
                            pytrace=False)
            m.leader = m.leader or _leader(proc.pid)
            if m.leader:
                state = m.sh("systemctl is-system-running", check=False).stdout.strip()
                if state in ("running", "degraded"):
                    break
            if time.monotonic() > deadline:
                pytest.fail("the container did not boot within 60 s:\n%s" % m.boot_log(),
                            pytrace=False)
            time.sleep(0.2)
        m.sh("cp /xsc/python3 /usr/bin/python3 && cp /xsc/xapi.service /etc/systemd/system/ "
             "&& systemctl daemon-reload")
        yield m
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # nspawn: an orderly shutdown of the container
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(str(top), ignore_errors=True)
