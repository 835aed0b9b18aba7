"""The wire format and error codes, seen through the real XenAPI client."""

import xmlrpc.client

import pytest
import XenAPI

from xsclab.simharness import PASSWORD, Simulator


def details(excinfo: pytest.ExceptionInfo) -> list:
    return list(excinfo.value.details)


def test_login_over_tcp_and_unix_socket(sim: Simulator) -> None:
    for session in (sim.tcp(), sim.unix(), sim.unix(password="anything")):
        pool = session.xenapi.pool.get_all()[0]
        assert session.xenapi.pool.get_record(pool)["name_label"] == "xsc-lab"
        session.xenapi.session.logout()


@pytest.mark.parametrize("user,password", [("root", "wrong"), ("admin", PASSWORD)])
def test_bad_credentials_over_tcp(sim: Simulator, user: str, password: str) -> None:
    with pytest.raises(XenAPI.Failure) as e:
        XenAPI.Session(sim.url).login_with_password(user, password, "2.21", "t")
    assert details(e) == ["SESSION_AUTHENTICATION_FAILED", user, "Authentication failure"]


def test_only_root_is_local_superuser_on_the_socket(sim: Simulator) -> None:
    with pytest.raises(XenAPI.Failure) as e:
        sim.unix(user="admin")
    assert details(e)[0] == "SESSION_AUTHENTICATION_FAILED"


def test_slave_local_login_and_local_logout(sim: Simulator) -> None:
    session = XenAPI.Session(sim.url)
    session.slave_local_login_with_password("root", PASSWORD)
    before = sim.tcp()
    count = int(before.xenapi.lab.session_count())
    session.logout()  # XenAPI uses session.local_logout after a slave_local login
    assert int(before.xenapi.lab.session_count()) == count - 1
    before.xenapi.session.logout()


def test_session_invalid_after_logout(sim: Simulator) -> None:
    raw = sim.raw()
    ref = raw.session.login_with_password("root", PASSWORD)["Value"]
    assert raw.pool.get_all(ref)["Status"] == "Success"
    assert raw.session.logout(ref) == {"Status": "Success", "Value": ""}
    assert raw.pool.get_all(ref) == {
        "Status": "Failure", "ErrorDescription": ["SESSION_INVALID", ref]}


def test_session_count_tracks_logins(sim: Simulator) -> None:
    watcher = sim.unix()
    start = int(watcher.xenapi.lab.session_count())
    sessions = [sim.tcp() for _ in range(3)]
    assert int(watcher.xenapi.lab.session_count()) == start + 3
    for s in sessions:
        s.xenapi.session.logout()
    assert int(watcher.xenapi.lab.session_count()) == start
    watcher.xenapi.session.logout()


def test_handle_and_uuid_errors(session: XenAPI.Session) -> None:
    bad = "OpaqueRef:00000000-0000-0000-0000-000000000000"
    cases = [
        (lambda: session.xenapi.VM.get_record(bad), ["HANDLE_INVALID", "VM", bad]),
        (lambda: session.xenapi.host.get_name_label(bad), ["HANDLE_INVALID", "host", bad]),
        (lambda: session.xenapi.VM.get_by_uuid("nope"), ["UUID_INVALID", "VM", "nope"]),
        (lambda: session.xenapi.SR.get_by_uuid("nope"), ["UUID_INVALID", "SR", "nope"]),
        (lambda: session.xenapi.VM.no_such_call(), ["MESSAGE_METHOD_UNKNOWN", "VM.no_such_call"]),
        (lambda: session.xenapi.VM.get_record(),
         ["MESSAGE_PARAMETER_COUNT_MISMATCH", "VM.get_record", "2", "1"]),
        (lambda: session.xenapi.VM.get_all("extra"),
         ["MESSAGE_PARAMETER_COUNT_MISMATCH", "VM.get_all", "1", "2"]),
    ]
    for call, expected in cases:
        with pytest.raises(XenAPI.Failure) as e:
            call()
        assert details(e) == expected


def test_a_ref_of_another_class_is_invalid(session: XenAPI.Session, vm: str) -> None:
    with pytest.raises(XenAPI.Failure) as e:
        session.xenapi.host.get_record(vm)
    assert details(e) == ["HANDLE_INVALID", "host", vm]


def test_wire_types(session: XenAPI.Session, vm: str) -> None:
    record = session.xenapi.VM.get_record(vm)
    assert record["memory_static_max"] == "1073741824"  # int64 as a string
    assert record["domid"].isdigit()
    assert record["is_control_domain"] is False
    assert isinstance(record["snapshot_time"], xmlrpc.client.DateTime)
    assert record["power_state"] == "Running"
    assert record["other_config"]["xscontainer-username"] == "xscuser"
    host = session.xenapi.host.get_all()[0]
    assert session.xenapi.host.get_API_version_major(host) == "2"
    assert session.API_version == "2.21"


def test_records_and_relations(session: XenAPI.Session, vm: str) -> None:
    record = session.xenapi.VM.get_record(vm)
    host = record["resident_on"]
    assert vm in session.xenapi.host.get_resident_VMs(host)
    vbds = {session.xenapi.VBD.get_userdevice(v): session.xenapi.VBD.get_record(v)
            for v in record["VBDs"]}
    assert vbds["0"]["type"] == "Disk" and vbds["0"]["mode"] == "RW"
    assert vbds["3"]["type"] == "CD" and vbds["3"]["empty"] is True
    assert vbds["3"]["VDI"] == "OpaqueRef:NULL"
    disk = vbds["0"]["VDI"]
    assert session.xenapi.VDI.get_VBDs(disk) == [v for v in record["VBDs"]
                                                 if session.xenapi.VBD.get_VDI(v) == disk]
    sr = session.xenapi.VDI.get_SR(disk)
    assert disk in session.xenapi.SR.get_VDIs(sr)
    pbds = session.xenapi.SR.get_PBDs(sr)
    assert [session.xenapi.PBD.get_host(p) for p in pbds] == [host]
    vif = record["VIFs"][0]
    network = session.xenapi.VIF.get_network(vif)
    assert session.xenapi.network.get_bridge(network) == "xenbr0"
    assert vif in session.xenapi.network.get_VIFs(network)
    metrics = session.xenapi.VM_guest_metrics.get_record(record["guest_metrics"])
    assert metrics["networks"]["0/ip"] == "10.200.1.2"


def test_pool_hosts_and_control_domains(session: XenAPI.Session) -> None:
    pool = session.xenapi.pool.get_all()[0]
    master = session.xenapi.pool.get_master(pool)
    assert session.xenapi.host.get_name_label(master) == "xsc-host1"
    assert session.xenapi.session.get_this_host(session.handle) == master
    shared = session.xenapi.pool.get_default_SR(pool)
    assert session.xenapi.SR.get_shared(shared) is True
    assert len(session.xenapi.SR.get_PBDs(shared)) == 2
    for host, record in session.xenapi.host.get_all_records().items():
        dom0 = session.xenapi.VM.get_record(record["control_domain"])
        assert dom0["is_control_domain"] is True
        assert dom0["resident_on"] == host
        assert dom0["name_label"] == "Control domain on host: " + record["name_label"]
    himn = [n for n in session.xenapi.network.get_all_records().values()
            if n["bridge"] == "xenapi"]
    assert himn[0]["other_config"] == {"is_host_internal_management_network": "true"}
    templates = [r for r in session.xenapi.VM.get_all_records().values() if r["is_a_template"]]
    assert [(t["name_label"], t["power_state"]) for t in templates] == [("CoreOS", "Halted")]


def test_bad_argument_types(session: XenAPI.Session, vm: str) -> None:
    with pytest.raises(XenAPI.Failure) as e:
        session.xenapi.VM.add_to_other_config(vm, "key", 5)
    assert details(e) == ["FIELD_TYPE_ERROR", "other_config"]
    with pytest.raises(XenAPI.Failure) as e:
        session.xenapi.VM.start(vm, "no", False)
    assert details(e) == ["FIELD_TYPE_ERROR", "paused"]
