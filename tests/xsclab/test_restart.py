"""The process: state that survives restarts and SIGKILL, prompt clean stops,
sessions that do not survive, the run interface's files."""

import json
import os
import signal
import subprocess
import sys
import time
import xmlrpc.client
from typing import Iterator

import pytest

from xsclab.simharness import PASSWORD, Simulator, cleanup, env_for, make_lab_dir


@pytest.fixture
def fresh() -> Iterator[Simulator]:
    lab_dir = make_lab_dir()
    plugins_dir = os.path.join(lab_dir, "plugins")
    os.makedirs(plugins_dir)
    simulator = Simulator(lab_dir, plugins_dir).start()
    try:
        yield simulator
    finally:
        simulator.close()
        cleanup(lab_dir)


def xsc_vm(sim: Simulator) -> str:
    return next(v["uuid"] for v in sim.seed["vms"] if v["name_label"] == "xsc-vm1")


def test_run_interface_files_and_clean_stop(fresh: Simulator) -> None:
    assert fresh.proc is not None
    with open(fresh.pidfile) as f:
        assert int(f.read()) == fresh.proc.pid
    assert fresh.url.startswith("http://127.0.0.1:") and fresh.url.endswith("/")
    assert os.path.exists(fresh.socket)
    for host in fresh.seed["hosts"]:
        host_dir = os.path.join(fresh.lab_dir, "hosts", host["uuid"])
        assert sorted(os.listdir(host_dir)) == ["files", "iso", "run", "xensource-inventory"]
    started = time.monotonic()
    assert fresh.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 1.0
    assert not os.path.exists(fresh.socket)
    fresh.start()
    assert fresh.stop(signal.SIGINT) == 0


def test_restart_keeps_objects_but_not_sessions(fresh: Simulator) -> None:
    session = fresh.tcp()
    vm = session.xenapi.VM.get_by_uuid(xsc_vm(fresh))
    session.xenapi.VM.add_to_other_config(vm, "kept", "yes")
    secret = session.xenapi.secret.create({"value": "kept too"})
    old_ref = session.handle
    fresh.restart()

    raw = xmlrpc.client.ServerProxy(fresh.url)
    assert raw.VM.get_all(old_ref) == {"Status": "Failure",
                                       "ErrorDescription": ["SESSION_INVALID", old_ref]}
    session = xmlrpc_session = fresh.tcp()
    assert session.xenapi.VM.get_other_config(vm)["kept"] == "yes"
    assert session.xenapi.secret.get_value(secret) == "kept too"
    xmlrpc_session.xenapi.session.logout()


def test_xenapi_client_logs_in_again_after_a_restart(fresh: Simulator) -> None:
    session = fresh.tcp()
    old = session.handle
    fresh.restart()
    assert session.xenapi.pool.get_all()  # SESSION_INVALID -> XenAPI re-logs in, retries
    assert session.handle != old
    assert int(session.xenapi.lab.session_count()) == 1


def test_sigkill_loses_no_acknowledged_write(fresh: Simulator) -> None:
    session = fresh.unix()
    vm = session.xenapi.VM.get_by_uuid(xsc_vm(fresh))
    started = time.monotonic()
    for i in range(1000):
        session.xenapi.VM.add_to_other_config(vm, "k%04d" % i, "v" * 64)
    elapsed = time.monotonic() - started
    assert elapsed < 10, "1000 other-config writes took %.1f s" % elapsed
    fresh.kill()
    fresh.start()
    config = fresh.unix().xenapi.VM.get_other_config(vm)
    assert all(config["k%04d" % i] == "v" * 64 for i in range(1000))


def test_tokens_stay_valid_across_restarts(fresh: Simulator) -> None:
    session = fresh.unix()
    token = getattr(session.xenapi.event, "from")(["vm"], "", 0.0)["token"]
    fresh.restart()
    session = fresh.unix()
    vm = session.xenapi.VM.get_by_uuid(xsc_vm(fresh))
    session.xenapi.VM.add_to_other_config(vm, "after", "restart")
    events = getattr(session.xenapi.event, "from")(["vm"], token, 5.0)["events"]
    assert [(e["operation"], e["ref"]) for e in events] == [("mod", vm)]


def test_seed_is_ignored_once_state_exists(fresh: Simulator) -> None:
    fresh.stop()
    with open(fresh.seed_file, "w") as f:
        json.dump(dict(fresh.seed, vms=[]), f)
    fresh.start()
    assert fresh.unix().xenapi.VM.get_by_uuid(xsc_vm(fresh))


def test_no_state_and_no_seed_is_an_error() -> None:
    lab_dir = make_lab_dir()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "xsclab.xapisim", "serve", "--state",
             os.path.join(lab_dir, "state.json")],
            env=env_for(lab_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            universal_newlines=True, timeout=30)
        assert proc.returncode != 0
        assert "no --seed" in proc.stderr
    finally:
        cleanup(lab_dir)


def test_seed_example_is_a_seed() -> None:
    out = subprocess.run([sys.executable, "-m", "xsclab.xapisim", "seed-example"],
                         env=env_for("/nonexistent"), stdout=subprocess.PIPE, check=True,
                         universal_newlines=True, timeout=30).stdout
    seed = json.loads(out)
    assert seed["root_password"] == PASSWORD
    assert {"pool", "hosts", "srs", "default_sr", "networks", "secrets", "vms",
            "templates"} <= set(seed)
