"""register leaves a registered VM's flag alone (a rewrite would show it absent)."""

from xscontainer import plugin

from .fakexapi import FakeXapiServer


def _vm(server: FakeXapiServer, config):
    ref = server.add("VM", uuid="u1", other_config=dict(config))
    return ref


def test_register_of_a_registered_vm_writes_nothing():
    server = FakeXapiServer()
    ref = _vm(server, {"xscontainer-monitor": "True", "docker_ps": "<docker_ps/>"})
    assert plugin.register(server.xapi(), {"vmuuid": "u1"}) == ""
    assert server.count("VM.remove_from_other_config") == 0
    assert server.count("VM.add_to_other_config") == 0
    assert server.records("VM")[ref]["other_config"] == {
        "xscontainer-monitor": "True", "docker_ps": "<docker_ps/>"}


def test_register_sets_an_absent_or_false_flag():
    for config in ({}, {"xscontainer-monitor": "False"}, {"xscontainer-monitor": "garbage"}):
        server = FakeXapiServer()
        ref = _vm(server, config)
        plugin.register(server.xapi(), {"vmuuid": "u1"})
        assert server.records("VM")[ref]["other_config"]["xscontainer-monitor"] == "True"
        assert server.count("VM.add_to_other_config") == 1
