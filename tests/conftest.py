"""The session's lab, for every suite that runs through it (tests/integration and
the lab's own tests in tests/xsclab/test_lab.py).

The session-scoped `lab` fixture brings a fresh lab up (taking down one left
over first) with XSC_TEST_VMS guests (default 3) on XSC_TEST_HOSTS hosts
(default 2), from guest number XSC_TEST_FIRST (default 1), in XSC_LAB_DIR, and
takes it down at the end unless XSC_LAB_KEEP=1, failing if anything of it is
left. When the lab cannot start the tests fail and say why: they never skip.
Tests that need root or a lab are marked `lab` (`-m "not lab"` leaves them out).

This file is loaded by every run under tests/, including the unit tests on
Python 3.6: it imports the lab (Python 3.7+) only when a test asks for it.
"""

import os
from typing import TYPE_CHECKING, Any, Iterator

import pytest

if TYPE_CHECKING:
    from xsclab import labctl


def session_lab(what: str, vms: int, hosts: int, **up: Any) -> "Iterator[labctl.Lab]":
    """A fresh lab for a session (one left over taken down first), from guest
    XSC_TEST_FIRST in XSC_LAB_DIR; taken down at the end unless XSC_LAB_KEEP=1,
    failing if anything of it is left. `what` names it when it cannot start."""
    from xsclab import labctl  # noqa: PLC0415 (see the module's docstring)

    # guest numbering (names xsc-vmI, addresses 10.200.I.2): another range lets a
    # second lab (another XSC_LAB_DIR) run beside this one
    first = int(os.environ.get("XSC_TEST_FIRST", "1"))
    try:
        labctl.down()
        the_lab = labctl.up(vms, hosts, first, **up)
    except Exception as e:
        pytest.fail("%s could not start: %s" % (what, e), pytrace=False)
    yield the_lab
    if os.environ.get("XSC_LAB_KEEP") == "1":
        return
    before = labctl.footprint()
    labctl.down()
    left = before.left()
    if left:
        pytest.fail("`lab down` left: %s" % "; ".join(left), pytrace=False)


@pytest.fixture(scope="session")
def lab() -> "Iterator[labctl.Lab]":
    vms = int(os.environ.get("XSC_TEST_VMS", "3"))
    hosts = int(os.environ.get("XSC_TEST_HOSTS", "2"))
    if vms < 2 or hosts < 2:
        pytest.fail("XSC_TEST_VMS and XSC_TEST_HOSTS must be at least 2", pytrace=False)
    yield from session_lab("the lab", vms, hosts)
