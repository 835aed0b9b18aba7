"""Object semantics: other-config edits, secrets, messages, power operations,
guest metrics and the lab's statistics."""

import xmlrpc.client

import pytest
import XenAPI

from xsclab.simharness import Simulator


def details(excinfo: pytest.ExceptionInfo) -> list:
    return list(excinfo.value.details)


def test_single_key_other_config_edits(session: XenAPI.Session, vm: str) -> None:
    api = session.xenapi
    api.VM.add_to_other_config(vm, "xscontainer-monitor", "True")
    assert api.VM.get_other_config(vm)["xscontainer-monitor"] == "True"
    with pytest.raises(XenAPI.Failure) as e:
        api.VM.add_to_other_config(vm, "xscontainer-monitor", "False")
    assert details(e) == ["MAP_DUPLICATE_KEY", "VM", "other_config", vm, "xscontainer-monitor"]
    api.VM.remove_from_other_config(vm, "xscontainer-monitor")
    api.VM.remove_from_other_config(vm, "xscontainer-monitor")  # absent: no error, as xapi
    assert "xscontainer-monitor" not in api.VM.get_other_config(vm)
    assert api.VM.get_other_config(vm)["xscontainer-username"] == "xscuser"


def test_pool_other_config(session: XenAPI.Session) -> None:
    api = session.xenapi
    pool = api.pool.get_all()[0]
    config = api.pool.get_other_config(pool)
    secret = api.secret.get_by_uuid(config["xscontainer-private-secret-uuid"])
    assert api.secret.get_value(secret).startswith("-----BEGIN RSA PRIVATE KEY-----")
    api.pool.add_to_other_config(pool, "xscontainer-use-hostinternalnetwork", "true")
    api.pool.remove_from_other_config(pool, "xscontainer-use-hostinternalnetwork")
    assert api.pool.get_other_config(pool) == config


def test_set_other_config_replaces_the_map(session: XenAPI.Session) -> None:
    api = session.xenapi
    network = api.network.get_all()[0]
    api.network.set_other_config(network, {"a": "1"})
    assert api.network.get_other_config(network) == {"a": "1"}


def test_secrets(session: XenAPI.Session) -> None:
    api = session.xenapi
    ref = api.secret.create({"value": "tls key"})
    uuid = api.secret.get_uuid(ref)
    assert api.secret.get_by_uuid(uuid) == ref
    assert api.secret.get_record(ref) == {"uuid": uuid, "value": "tls key", "other_config": {}}
    assert ref in api.secret.get_all_records()
    api.secret.destroy(ref)
    with pytest.raises(XenAPI.Failure) as e:
        api.secret.get_value(ref)
    assert details(e) == ["HANDLE_INVALID", "secret", ref]


def test_messages(session: XenAPI.Session, vm: str) -> None:
    api = session.xenapi
    vm_uuid = api.VM.get_uuid(vm)
    since = xmlrpc.client.DateTime("19700101T00:00:00Z")
    ref = api.message.create("Container Management cannot monitor VM", "3", "VM", vm_uuid,
                             "no route to host")
    record = api.message.get_record(ref)
    assert record["priority"] == "3"
    assert (record["cls"], record["obj_uuid"], record["body"]) == ("VM", vm_uuid,
                                                                   "no route to host")
    assert isinstance(record["timestamp"], xmlrpc.client.DateTime)
    assert api.message.get_by_uuid(record["uuid"]) == ref
    assert ref in api.message.get_all()
    assert ref in api.message.get_since(since)
    assert list(api.message.get("VM", vm_uuid, since)) == [ref]
    api.message.destroy(ref)
    assert ref not in api.message.get_all_records()
    with pytest.raises(XenAPI.Failure) as e:
        api.message.create("x", "3", "VM", "not-a-vm", "")
    assert details(e) == ["UUID_INVALID", "VM", "not-a-vm"]
    with pytest.raises(XenAPI.Failure) as e:
        api.message.get_name(ref)  # xapi has no per-field getters for messages
    assert details(e)[0] == "MESSAGE_METHOD_UNKNOWN"


def test_power_cycle(session: XenAPI.Session, vm: str) -> None:
    api = session.xenapi
    pool = api.pool.get_all()[0]
    master = api.pool.get_master(pool)
    other = next(h for h in api.host.get_all() if h != master)
    networks = api.VM_guest_metrics.get_networks(api.VM.get_guest_metrics(vm))

    api.VM.clean_shutdown(vm)
    record = api.VM.get_record(vm)
    assert (record["power_state"], record["resident_on"], record["guest_metrics"]) == (
        "Halted", "OpaqueRef:NULL", "OpaqueRef:NULL")
    assert not any(api.VBD.get_currently_attached(v) for v in record["VBDs"])
    with pytest.raises(XenAPI.Failure) as e:
        api.VM.clean_shutdown(vm)
    assert details(e) == ["VM_BAD_POWER_STATE", vm, "running", "halted"]

    api.VM.start_on(vm, other, False, False)
    record = api.VM.get_record(vm)
    assert (record["power_state"], record["resident_on"]) == ("Running", other)
    assert api.VM_guest_metrics.get_networks(record["guest_metrics"]) == networks
    assert all(api.VBD.get_currently_attached(v) for v in record["VBDs"])
    with pytest.raises(XenAPI.Failure) as e:
        api.VM.start(vm, False, False)
    assert details(e) == ["VM_BAD_POWER_STATE", vm, "halted", "running"]

    api.VM.pool_migrate(vm, master, {"live": "true"})
    assert api.VM.get_resident_on(vm) == master
    api.VM.hard_shutdown(vm)
    api.VM.start(vm, False, False)
    assert api.VM.get_resident_on(vm) == master  # its affinity


def test_templates_cannot_start(session: XenAPI.Session) -> None:
    template = session.xenapi.VM.get_by_name_label("CoreOS")[0]
    with pytest.raises(XenAPI.Failure) as e:
        session.xenapi.VM.start(template, False, False)
    assert details(e) == ["VM_IS_TEMPLATE", template]


def test_lab_sets_guest_networks(session: XenAPI.Session, vm: str) -> None:
    api = session.xenapi
    original = api.VM_guest_metrics.get_networks(api.VM.get_guest_metrics(vm))
    api.lab.VM.set_guest_networks(vm, {})
    assert api.VM.get_guest_metrics(vm) == "OpaqueRef:NULL"
    api.lab.VM.set_guest_networks(vm, {"0/ip": "10.9.9.9"})
    metrics = api.VM.get_guest_metrics(vm)
    assert api.VM_guest_metrics.get_record(metrics)["networks"] == {"0/ip": "10.9.9.9"}
    api.lab.VM.set_guest_networks(vm, original)
    assert api.VM_guest_metrics.get_networks(api.VM.get_guest_metrics(vm)) == original


def test_vifs(session: XenAPI.Session, vm: str) -> None:
    api = session.xenapi
    himn = next(r for r, n in api.network.get_all_records().items() if n["bridge"] == "xenapi")
    record = {"device": "0", "network": himn, "VM": vm, "MAC": "", "MTU": "1500",
              "other_config": {}, "qos_algorithm_type": "", "qos_algorithm_params": {}}
    with pytest.raises(XenAPI.Failure) as e:
        api.VIF.create(record)
    assert details(e) == ["DEVICE_ALREADY_EXISTS", "0"]
    assert api.VM.get_allowed_VIF_devices(vm)[:2] == ["1", "2"]
    vif = api.VIF.create(dict(record, device="1"))
    assert api.VIF.get_VM(vif) == vm and api.VIF.get_device(vif) == "1"
    assert len(api.VIF.get_MAC(vif)) == 17
    assert vif in api.VM.get_VIFs(vm)
    api.VIF.destroy(vif)
    assert vif not in api.VM.get_VIFs(vm)


def test_stats_count_vm_other_config_writes(sim: Simulator, vm: str) -> None:
    watcher = sim.unix()
    api = watcher.xenapi
    api.lab.reset_stats()
    uuid = api.VM.get_uuid(vm)
    for i in range(5):
        api.VM.add_to_other_config(vm, "stat-%d" % i, "x")
        api.VM.remove_from_other_config(vm, "stat-%d" % i)
    stats = api.lab.stats()
    assert stats["vm_other_config_writes"] == {uuid: 10}
    assert stats["vm_other_config_writes_total"] == 10
    assert stats["calls"]["VM.add_to_other_config"] == 5
    api.lab.reset_stats()
    assert api.lab.stats()["vm_other_config_writes_total"] == 0
    watcher.xenapi.session.logout()
