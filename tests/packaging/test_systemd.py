"""The RPMs' scriptlets and the monitor's unit under systemd, in one booted
container (nspawn.py: a cached minimal Debian root booted with systemd-nspawn):
install with xapi stopped and running, starting the monitor never starts xapi,
upgrade restarts a running monitor, disable-then-upgrade leaves it disabled and
stopped, erase while running stops it. The tests run in order on the same
container, each starting from the state the previous one left.

The RPMs are installed with --nodeps (Debian has none of dom0's packages); the
monitor runs on dom0's Python 3.6 and, as xapi here is a stand-in with no socket,
waits for xapi, as it does on a host whose xapi is down. systemd here is Debian
12's (252); the scriptlets use only commands systemd 219 has as well (test_rpm).
"""

from typing import Iterator

import pytest
from nspawn import Machine, boot, release2
from pkgbuild import Build

# the first run makes the cached Debian root (debootstrap: minutes on a busy machine)
pytestmark = pytest.mark.timeout(1800)

MONITOR = "xscontainer-monitor.service"
XAPI = "xapi.service"
LOG = "/var/log/xscontainer.log"
WAITING = "cannot log in to XAPI yet"


@pytest.fixture(scope="module")
def machine(build: Build) -> Iterator[Machine]:
    with boot({1: build.dist, 2: release2(build)}) as m:
        yield m


def rpm(machine: Machine, args: str) -> None:
    proc = machine.sh("rpm %s --nodeps" % args)
    # a failing scriptlet is only a warning for rpm: none may appear
    assert "scriptlet" not in proc.stderr.lower() and "warning" not in proc.stderr.lower(), \
        proc.stderr
    assert proc.stdout.strip() == "", proc.stdout


def installed(machine: Machine) -> str:
    return machine.sh("rpm -q --qf '%{VERSION}-%{RELEASE}' xscontainer", check=False
                      ).stdout.strip()


def waiting_for_xapi(machine: Machine) -> bool:
    return WAITING in machine.sh("cat %s 2>/dev/null || true" % LOG).stdout


def monitor_output(machine: Machine) -> str:
    """What the monitor wrote on stdout and stderr (syslog lines excluded)."""
    return machine.sh("journalctl --no-pager -o cat _SYSTEMD_UNIT=%s _TRANSPORT=stdout"
                      % MONITOR).stdout.strip()


def test_install_with_xapi_stopped_enables_but_does_not_start(machine: Machine) -> None:
    assert machine.state(XAPI) == "inactive"
    rpm(machine, "-i /xsc/rel1/*.rpm")
    assert installed(machine).endswith("-1")
    assert machine.enabled(MONITOR) == "enabled"  # the preset
    assert machine.state(MONITOR) == "inactive"
    assert machine.state(XAPI) == "inactive"


def test_starting_the_monitor_leaves_xapi_stopped(machine: Machine) -> None:
    unit = machine.sh("systemctl show -p Wants -p Requires -p BindsTo -p After %s" % MONITOR
                      ).stdout
    assert "xapi.service" not in "".join(line for line in unit.splitlines()
                                         if not line.startswith("After="))
    assert "xapi.service" in unit
    machine.sh("systemctl start %s" % MONITOR)
    machine.wait("the monitor to wait for xapi", lambda: waiting_for_xapi(machine))
    assert machine.state(MONITOR) == "active"
    assert machine.state(XAPI) == "inactive"


def test_xapi_starting_and_stopping_leaves_the_monitor_running(machine: Machine) -> None:
    pid = machine.main_pid(MONITOR)
    assert pid
    machine.sh("systemctl start %s" % XAPI)
    assert machine.state(XAPI) == "active"
    machine.sh("systemctl stop %s" % XAPI)
    assert machine.state(MONITOR) == "active" and machine.main_pid(MONITOR) == pid


def test_upgrade_restarts_a_running_monitor(machine: Machine) -> None:
    pid = machine.main_pid(MONITOR)
    rpm(machine, "-U /xsc/rel2/xscontainer-*.rpm")
    assert installed(machine).endswith("-2")
    machine.wait("the monitor to run again",
                 lambda: machine.state(MONITOR) == "active"
                 and machine.main_pid(MONITOR) not in (0, pid))
    assert machine.enabled(MONITOR) == "enabled"
    assert machine.state(XAPI) == "inactive"


def test_disable_then_upgrade_leaves_it_disabled_and_stopped(machine: Machine) -> None:
    machine.sh("systemctl disable %s && systemctl stop %s" % (MONITOR, MONITOR))
    machine.sh("systemctl start %s" % XAPI)  # xapi runs: %post would start an enabled one
    # release 1 over release 2: the scriptlets of an upgrade ($1 = 2 / 1)
    rpm(machine, "-U --oldpackage /xsc/rel1/xscontainer-[0-9]*.rpm")
    assert installed(machine).endswith("-1")
    assert machine.enabled(MONITOR) == "disabled"
    assert machine.state(MONITOR) == "inactive"


def test_erase_while_running_stops_and_disables(machine: Machine) -> None:
    machine.sh("systemctl enable %s && systemctl start %s" % (MONITOR, MONITOR))
    assert machine.state(MONITOR) == "active"
    rpm(machine, "-e xscontainer xscontainer-pylibs")
    assert installed(machine) == "package xscontainer is not installed"
    assert machine.state(MONITOR) in ("inactive", "unknown")
    assert machine.sh("pgrep -f '[x]scontainer-monitor'", check=False).stdout == ""
    assert machine.sh("ls /etc/systemd/system/*.wants/ 2>/dev/null | grep -c xscontainer",
                      check=False).stdout.strip() == "0"
    assert machine.sh("test -e /usr/lib/systemd/system/%s" % MONITOR, check=False
                      ).returncode != 0


def test_install_with_xapi_running_starts_the_monitor(machine: Machine) -> None:
    assert machine.state(XAPI) == "active"
    rpm(machine, "-i /xsc/rel2/xscontainer-*.rpm /xsc/rel1/xscontainer-pylibs-*.rpm")
    assert machine.enabled(MONITOR) == "enabled"
    machine.wait("the monitor to run", lambda: machine.state(MONITOR) == "active")
    machine.wait("the monitor to wait for xapi", lambda: waiting_for_xapi(machine))


def test_the_monitor_wrote_nothing_on_stdout_or_stderr(machine: Machine) -> None:
    """Over every start above (Python 3.6, no LANG: cryptography's deprecation
    warning would land here), only the log file and syslog got its words."""
    assert monitor_output(machine) == ""
    assert waiting_for_xapi(machine)
