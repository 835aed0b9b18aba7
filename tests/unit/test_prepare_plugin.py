"""The plugin's prepare without a lab: its arguments, the per-VM lock, the pending
TLS state and its expiry (on the in-memory XAPI server), the host key argument,
and the console that turns what the preparation says into the call's report."""

import json
import threading
import time
from typing import Any, Dict, Iterator, Tuple

import pytest

from xscontainer import errors, xapi_keys
from xscontainer.prepare import call, lock, pending, sshmode
from xscontainer.prepare.console import Collector
from xscontainer.xapi import NULL_REF, Xapi

from .fakexapi import FakeXapiServer

CERT, KEY, CA = xapi_keys.TLS_SECRETS


@pytest.fixture(autouse=True)
def run_dir(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    path = str(tmp_path / "run")
    monkeypatch.setenv("XSCONTAINER_RUN_DIR", path)
    return path


@pytest.fixture
def server() -> FakeXapiServer:
    fake = FakeXapiServer()
    fake.add("pool")  # a pool always has its pool object
    return fake


@pytest.fixture
def xapi(server: FakeXapiServer) -> Iterator[Xapi]:
    with server.xapi() as x:
        yield x


def secret(server: FakeXapiServer, value: str) -> Tuple[str, str]:
    ref = server.add("secret", value=value)
    return ref, server.record("secret", ref)["uuid"]


def vm_with_pending_cd(server: FakeXapiServer,
                       deadline: int) -> Tuple[str, str, str, Dict[str, str]]:
    """A running VM whose CD drive holds our TLS CD, and three pending secrets."""
    vm = server.add("VM", power_state="Running")
    sr = server.add("SR")
    vdi = server.add("VDI", SR=sr, other_config={xapi_keys.TLS_ISO: "True"})
    vbd = server.add("VBD", VM=vm, VDI=vdi, type="CD", userdevice="3")
    secrets = {key: secret(server, "pem " + key)[1] for key in xapi_keys.TLS_SECRETS}
    state = pending.Pending(secrets, server.record("VDI", vdi)["uuid"], deadline)
    server.record("VM", vm)["other_config"][xapi_keys.PREPARE_PENDING] = state.encode()
    return vm, vdi, vbd, secrets


def secret_uuids(server: FakeXapiServer) -> set:
    return {r["uuid"] for r in server.records("secret").values()}


# -- the pending state -----------------------------------------------------------------


def test_pending_state_round_trips_and_an_unreadable_one_is_due() -> None:
    state = pending.Pending({CERT: "a", KEY: "b", CA: "c"}, "vdi-uuid", 1234)
    read = pending.read({xapi_keys.PREPARE_PENDING: state.encode()})
    assert read is not None
    assert (read.secrets, read.vdi, read.deadline) == (state.secrets, "vdi-uuid", 1234)
    assert read.due(now=1234) and not read.due(now=1233)
    assert pending.read({}) is None
    assert pending.read({xapi_keys.PREPARE_PENDING: " "}) is None
    broken = pending.read({xapi_keys.PREPARE_PENDING: "{not json"})
    assert broken is not None and broken.due() and broken.secrets == {}
    # keys other than the three TLS ones are not taken for secrets to destroy
    odd = json.dumps({"secrets": {"xscontainer-monitor": "x", CERT: "a"}, "deadline": 5})
    assert pending.read({xapi_keys.PREPARE_PENDING: odd}).secrets == {CERT: "a"}  # type: ignore[union-attr]
    assert pending.deadline_of({"other_config": {xapi_keys.PREPARE_PENDING: state.encode()}}) \
        == 1234
    assert pending.deadline_of({"other_config": {}}) is None


def test_expire_ejects_and_destroys_the_cd_and_the_unused_secrets(
        server: FakeXapiServer, xapi: Xapi) -> None:
    vm, vdi, vbd, secrets = vm_with_pending_cd(server, 0)
    other = server.add("VM", other_config={CA: secrets[CA]})  # a clone names the CA secret
    state = pending.read(xapi.vm_other_config(vm))
    assert state is not None
    pending.expire(xapi, vm, state)
    assert server.record("VBD", vbd)["empty"] and server.record("VBD", vbd)["VDI"] == NULL_REF
    assert vdi not in server.records("VDI")
    assert secret_uuids(server) == {secrets[CA]}
    assert xapi_keys.PREPARE_PENDING not in server.record("VM", vm)["other_config"]
    assert server.record("VM", other)["other_config"] == {CA: secrets[CA]}
    pending.expire(xapi, vm, state)  # everything gone already: fine


def test_expire_never_destroys_a_disk_that_is_not_our_cd(server: FakeXapiServer,
                                                         xapi: Xapi) -> None:
    vm, vdi, _vbd, _secrets = vm_with_pending_cd(server, 0)
    server.record("VDI", vdi)["other_config"] = {}  # someone's ISO with the same uuid
    state = pending.read(xapi.vm_other_config(vm))
    assert state is not None
    pending.expire(xapi, vm, state)
    assert vdi in server.records("VDI")


def test_the_monitor_expires_only_when_due_and_not_while_a_preparation_runs(
        server: FakeXapiServer, xapi: Xapi) -> None:
    deadline = int(time.time()) + 100
    vm, vdi, _vbd, _secrets = vm_with_pending_cd(server, deadline)
    assert pending.expire_due(xapi, vm) == float(deadline)
    assert vdi in server.records("VDI")

    state = pending.read(xapi.vm_other_config(vm))
    assert state is not None
    state.deadline = 0
    server.record("VM", vm)["other_config"][xapi_keys.PREPARE_PENDING] = state.encode()
    vm_uuid = server.record("VM", vm)["uuid"]
    with lock.held(vm_uuid, 0):
        again = pending.expire_due(xapi, vm)
        assert again is not None and again > time.time()
        assert vdi in server.records("VDI")
    assert pending.expire_due(xapi, vm) is None
    assert vdi not in server.records("VDI")
    assert pending.expire_due(xapi, vm) is None  # nothing pending any more
    assert pending.expire_due(xapi, "OpaqueRef:gone") is None


# -- the lock ------------------------------------------------------------------------------


def test_one_preparation_per_vm_at_a_time(run_dir: str) -> None:
    with lock.held("vm-a", 0):
        started = time.monotonic()
        with pytest.raises(errors.PrepareInProgress) as exc:
            with lock.held("vm-a", 0.5):
                pass
        assert time.monotonic() - started >= 0.5
        assert exc.value.code == "XSCONTAINER_PREPARE_IN_PROGRESS"
        assert exc.value.details == ["vm-a"]
        with lock.held("vm-b", 0):  # another VM is not held up
            pass
    with lock.held("vm-a", 0):  # released on exit
        pass


def test_a_waiting_preparation_runs_once_the_first_ends() -> None:
    order = []
    released = threading.Event()

    def first() -> None:
        with lock.held("vm-c", 0):
            order.append("first")
            released.wait(5)
            time.sleep(0.3)
            order.append("first done")

    thread = threading.Thread(target=first)
    thread.start()
    while not order:
        time.sleep(0.01)
    released.set()
    with lock.held("vm-c", 5):
        order.append("second")
    thread.join()
    assert order == ["first", "first done", "second"]


# -- arguments -----------------------------------------------------------------------------


@pytest.mark.parametrize("args, text", [
    ({"mode": "rdp"}, "mode must be ssh or tls"),
    ({"generatecerts": "true"}, "are for mode=tls"),
    ({"clientcertsecret": "x"}, "are for mode=tls"),
    ({"mode": "tls", "sshhostkey": "AAAA"}, "are for mode=ssh"),
    ({"mode": "tls", "clientcertsecret": "x"}, "either all of"),
    ({"mode": "tls", "clientcertsecret": "x", "clientkeysecret": "y", "cacertsecret": "z",
      "generatecerts": "true"}, "either all of"),
    ({"mode": "tls", "generatecerts": "true", "cdtimeout": "2"}, "cdtimeout must be"),
    ({"mode": "tls", "generatecerts": "true", "cdtimeout": "ten"}, "cdtimeout must be"),
])
def test_bad_arguments_are_refused_before_anything_happens(
        server: FakeXapiServer, xapi: Xapi, args: Dict[str, str], text: str) -> None:
    vm = server.add("VM", power_state="Running")
    with pytest.raises(errors.InvalidArgument, match=text):
        call.prepare(xapi, dict(args, vmuuid=server.record("VM", vm)["uuid"]))
    assert server.writes() == []


def test_the_password_secret_is_destroyed_on_every_path(server: FakeXapiServer,
                                                         xapi: Xapi) -> None:
    vm = server.add("VM", power_state="Halted")
    vm_uuid = server.record("VM", vm)["uuid"]
    for args in ({"vmuuid": vm_uuid, "mode": "tls"},  # refused argument
                 {"vmuuid": "no-such-vm"},  # no VM
                 {"vmuuid": vm_uuid}):  # VM not running
        _ref, secret_uuid = secret(server, "the password")
        with pytest.raises(errors.XSContainerError):
            call.prepare(xapi, dict(args, passwordsecret=secret_uuid))
        assert secret_uuid not in secret_uuids(server)
    assert secret_uuids(server) == set()


def test_take_password_reads_once_and_destroys(server: FakeXapiServer, xapi: Xapi) -> None:
    _ref, secret_uuid = secret(server, "s3cret")
    assert sshmode.take_password(xapi, secret_uuid, "vm") == "s3cret"
    assert secret_uuids(server) == set()
    with pytest.raises(errors.InvalidArgument, match="no XAPI secret with uuid"):
        sshmode.take_password(xapi, secret_uuid, "vm")
    _ref, empty = secret(server, "")
    with pytest.raises(errors.InvalidArgument, match="empty password"):
        sshmode.take_password(xapi, empty, "vm")
    assert secret_uuids(server) == set()


@pytest.mark.parametrize("given, body", [
    ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA== root@vm", "AAAAC3NzaC1lZDI1NTE5AAAAIA=="),
    ("  AAAAC3NzaC1lZDI1NTE5AAAAIA==\n", "AAAAC3NzaC1lZDI1NTE5AAAAIA=="),
])
def test_host_key_argument(given: str, body: str) -> None:
    assert sshmode.host_key_body(given) == body


@pytest.mark.parametrize("given", ["", "ssh-rsa not*base64", "ssh-rsa"])
def test_host_key_argument_that_is_no_key(given: str) -> None:
    with pytest.raises(errors.InvalidArgument, match="sshhostkey must be"):
        sshmode.host_key_body(given)


def test_collector_asks_nothing_and_keeps_what_is_said() -> None:
    console = Collector()
    assert console.confirm("Proceed?") is True
    assert console.confirm("Eject?", default_when_yes=False) is False
    console.say("one")
    console.say("two")
    assert console.text() == "one\ntwo"
    with pytest.raises(Exception, match="passwordsecret"):
        console.password("Password: ", False)


# -- the monitor's part: expiry scheduled for the deadline ----------------------------------


def test_the_monitor_schedules_the_expiry_of_vms_of_its_host(server: FakeXapiServer,
                                                              xapi: Xapi) -> None:
    from xscontainer.monitor.options import Settings  # noqa: PLC0415
    from xscontainer.monitor.pool import Supervisor  # noqa: PLC0415

    from .test_monitor_pool import HERE, THERE, FakePublisher, vm  # noqa: PLC0415

    deadline = int(time.time()) + 30
    ref, vdi, _vbd, _secrets = vm_with_pending_cd(server, deadline)
    config = dict(server.record("VM", ref)["other_config"])
    publisher = FakePublisher()
    sup = Supervisor(publisher, Settings(), lambda r, rec: None)  # type: ignore[arg-type,return-value]
    sup.full_load({}, HERE, THERE)

    sup.on_record("OpaqueRef:elsewhere", vm("x", resident_on=THERE, other_config=config))
    sup.on_record("OpaqueRef:halted", vm("h", resident_on=NULL_REF, power_state="Halted",
                                         other_config=config))  # the master's, not ours
    assert publisher.jobs == []
    sup.on_record(ref, vm("p", other_config=config))
    sup.on_record(ref, vm("p", other_config=config))  # the same deadline: scheduled once
    assert len(publisher.jobs) == 1
    name, job, delay = publisher.jobs[0]
    assert "pending TLS preparation" in name
    assert 28 < delay <= 31

    job(xapi)  # run early: not due, so it looks again at the deadline
    assert vdi in server.records("VDI")
    assert len(publisher.jobs) == 2 and 28 < publisher.jobs[1][2] <= 31
    state = pending.read(server.record("VM", ref)["other_config"])
    assert state is not None
    state.deadline = 0
    server.record("VM", ref)["other_config"][xapi_keys.PREPARE_PENDING] = state.encode()
    publisher.jobs[1][1](xapi)
    assert vdi not in server.records("VDI")
    assert xapi_keys.PREPARE_PENDING not in server.record("VM", ref)["other_config"]
    assert len(publisher.jobs) == 2  # nothing left to look at

    master = Supervisor(FakePublisher(), Settings(), lambda r, rec: None)  # type: ignore[arg-type,return-value]
    master.full_load({}, HERE, HERE)
    master.on_record("OpaqueRef:halted", vm("h", resident_on=NULL_REF, power_state="Halted",
                                            other_config=config))
    assert len(master.publisher.jobs) == 1  # type: ignore[attr-defined]


def test_xscontainers_own_secrets_are_never_taken_as_arguments(server: FakeXapiServer,
                                                                xapi: Xapi) -> None:
    """The pool's private key or a VM's TLS key passed as a password or certificate
    secret is refused: not read (it would go to the guest), not destroyed."""
    _ref, private = secret(server, "-----BEGIN RSA PRIVATE KEY-----")
    _ref, tls_key = secret(server, "-----BEGIN EC PRIVATE KEY-----")
    pool_ref = next(iter(server.records("pool")))
    server.record("pool", pool_ref)["other_config"][xapi_keys.POOL_PRIVATE_KEY_SECRET] = private
    server.add("VM", power_state="Halted",
               other_config={xapi_keys.TLS_CLIENT_KEY: tls_key})
    vm = server.add("VM", power_state="Running")
    vm_uuid = server.record("VM", vm)["uuid"]
    for args in ({"passwordsecret": private},
                 {"mode": "tls", "clientcertsecret": tls_key, "clientkeysecret": tls_key,
                  "cacertsecret": tls_key}):
        with pytest.raises(errors.InvalidArgument, match="keeps for itself"):
            call.prepare(xapi, dict(args, vmuuid=vm_uuid))
    assert {private, tls_key} <= secret_uuids(server)
