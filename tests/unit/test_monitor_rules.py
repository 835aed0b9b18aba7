"""Which VMs a host monitors: a table of VM records (XAPI VM.get_record shape)."""

import pytest

from xscontainer.monitor import rules

HOST = "OpaqueRef:host-1"
OTHER = "OpaqueRef:host-2"
NULL = "OpaqueRef:NULL"


def vm(**changes):
    record = {
        "uuid": "8a3d1a6e-1111-2222-3333-444455556666",
        "name_label": "web",
        "power_state": "Running",
        "resident_on": HOST,
        "guest_metrics": "OpaqueRef:gm-1",
        "is_control_domain": False,
        "is_a_template": False,
        "is_a_snapshot": False,
        "other_config": {"xscontainer-monitor": "True"},
    }
    other_config = changes.pop("other_config", None)
    record.update(changes)
    if other_config is not None:
        record["other_config"] = other_config
    return record


@pytest.mark.parametrize("record, reason", [
    (vm(), None),
    (vm(other_config={"xscontainer-monitor": "true"}), None),
    (vm(other_config={"xscontainer-monitor": "TRUE "}), None),
    (vm(other_config={"xscontainer-monitor": "False"}), "deregistered"),
    (vm(other_config={"xscontainer-monitor": "yes"}), "deregistered"),
    (vm(other_config={"xscontainer-monitor": ""}), "deregistered"),
    (vm(other_config={}), "not registered"),
    (vm(power_state="Halted", resident_on=NULL), "Halted"),
    (vm(power_state="Paused"), "Paused"),
    (vm(power_state="Suspended", resident_on=NULL), "Suspended"),
    (vm(resident_on=OTHER), "another host"),
    (vm(resident_on=NULL), "another host"),
    (vm(guest_metrics=NULL), "no guest metrics"),
    (vm(guest_metrics=""), "no guest metrics"),
    (vm(is_control_domain=True), "control domain"),
    (vm(is_a_template=True, power_state="Halted"), "template"),
    (vm(is_a_snapshot=True), "snapshot"),
])
def test_should_monitor_table(record, reason):
    found = rules.why_not_monitored(record, HOST)
    if reason is None:
        assert found is None and rules.should_monitor(record, HOST)
    else:
        assert found is not None and reason in found
        assert not rules.should_monitor(record, HOST)


def test_a_record_without_other_config_is_not_monitored():
    record = vm()
    del record["other_config"]
    assert rules.why_not_monitored(record, HOST) == "it is not registered"


def test_connection_settings_pick_the_keys_that_say_how_to_connect():
    record = vm(other_config={
        "xscontainer-monitor": "True", "xscontainer-username": "core",
        "xscontainer-mode": "ssh", "xscontainer-sshhostkey": "AAAA",
        "xscontainer-tls-ca-cert": "u1", "folder": "/x", "docker_ps": "<docker_ps/>",
        "xscontainer-docker-socket": "/run/podman/podman.sock",
    })
    assert rules.connection_settings(record) == (
        ("xscontainer-docker-socket", "/run/podman/podman.sock"),
        ("xscontainer-mode", "ssh"), ("xscontainer-sshhostkey", "AAAA"),
        ("xscontainer-tls-ca-cert", "u1"), ("xscontainer-username", "core"),
    )
    unchanged = vm(other_config=dict(record["other_config"], docker_ps="<x/>", folder="/y"))
    assert rules.connection_settings(unchanged) == rules.connection_settings(record)
    removed = dict(record["other_config"])
    del removed["xscontainer-sshhostkey"]
    assert rules.connection_settings(vm(other_config=removed)) != \
        rules.connection_settings(record)


def test_docker_values_and_tls_uuids():
    record = vm(other_config={"docker_ps": "<docker_ps/>",
                              "xscontainer-tls-client-cert": " c ",
                              "xscontainer-tls-client-key": "k",
                              "xscontainer-tls-ca-cert": ""})
    assert rules.docker_values(record) == {"docker_ps": "<docker_ps/>", "docker_info": None,
                                           "docker_version": None}
    assert rules.tls_secret_uuids(record) == {"c", "k"}


@pytest.mark.parametrize("record, stale", [
    (vm(power_state="Halted", other_config={"docker_ps": "<docker_ps/>"}), True),
    (vm(power_state="Halted", other_config={"xscontainer-monitor": "True"}), False),
    (vm(other_config={"docker_ps": "<docker_ps/>"}), False),  # running: its host decides
    (vm(power_state="Halted", is_a_snapshot=True, other_config={"docker_ps": "x"}), False),
    (vm(power_state="Halted", is_a_template=True, other_config={"docker_ps": "x"}), False),
])
def test_stale_halted(record, stale):
    assert rules.is_stale_halted(record) is stale


def test_flag_absent_only_when_the_key_is_missing():
    assert rules.flag_absent({"other_config": {}})
    assert rules.flag_absent({})
    assert not rules.flag_absent({"other_config": {"xscontainer-monitor": "False"}})
    assert not rules.flag_absent({"other_config": {"xscontainer-monitor": "True"}})
