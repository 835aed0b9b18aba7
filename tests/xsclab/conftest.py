"""Fixtures: a simulator per test module, started from the example seed in a
temporary lab folder, with the test plugins of simplugins.py."""

import os
from typing import Iterator

import pytest
import XenAPI

from xsclab.simharness import Simulator, cleanup, make_lab_dir

from .simplugins import write_plugins


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    lab_dir = make_lab_dir()
    plugins_dir = os.path.join(lab_dir, "plugins")
    write_plugins(plugins_dir)
    simulator = Simulator(lab_dir, plugins_dir).start()
    try:
        yield simulator
    finally:
        simulator.close()
        cleanup(lab_dir)


@pytest.fixture(scope="module")
def session(sim: Simulator) -> Iterator[XenAPI.Session]:
    """root's session over the unix socket, as dom0 processes have."""
    s = sim.unix()
    try:
        yield s
    finally:
        s.xenapi.session.logout()


@pytest.fixture
def vm(session: XenAPI.Session) -> str:
    """The example seed's running guest, xsc-vm1."""
    return str(session.xenapi.VM.get_by_name_label("xsc-vm1")[0])
