"""The xscontainer plugin through the lab's host.call_plugin, as clients call it.

Every call goes through the XAPI simulator, which runs plugins/xscontainer the
way xapi does (argv[1] = methodCall, stdout parsed as the response), against
real guests (sshd + dockerd in network namespaces).
"""

import base64
import os
import uuid
import xml.dom.minidom
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, Iterator, List

import pytest
import XenAPI
import xmltodict

IMAGE = "xsc-test/busybox"


# -- helpers -------------------------------------------------------------------


def call(lab: Any, host: str, fn: str, **args: str) -> str:
    """A successful plugin call's payload (the value minus its `True` prefix)."""
    value = lab.call_plugin(host, fn, args)
    assert value.startswith("True"), value
    return value[4:]


def failure(lab: Any, host: str, fn: str, **args: str) -> List[str]:
    with pytest.raises(XenAPI.Failure) as exc:
        lab.call_plugin(host, fn, args)
    return [str(d) for d in exc.value.details]


def run(lab: Any, vm: Any, name: str, *extra: str) -> str:
    out = lab.exec(vm.name, ["docker", "run", "-d", "--init", "--name", name, *extra,
                             IMAGE, "sleep", "1d"])
    return out.stdout.strip()


def remove(lab: Any, vm: Any, *names: str) -> None:
    lab.exec(vm.name, ["docker", "rm", "-f", *names], check=False)


def other_config(lab: Any, vm: Any) -> Dict[str, str]:
    with lab.xapi_session() as s:
        return dict(s.xenapi.VM.get_other_config(s.xenapi.VM.get_by_uuid(vm.uuid)))


def set_key(lab: Any, vm: Any, key: str, value: str) -> None:
    with lab.xapi_session() as s:
        ref = s.xenapi.VM.get_by_uuid(vm.uuid)
        s.xenapi.VM.remove_from_other_config(ref, key)
        s.xenapi.VM.add_to_other_config(ref, key, value)


def remove_key(lab: Any, vm: Any, key: str) -> None:
    with lab.xapi_session() as s:
        s.xenapi.VM.remove_from_other_config(s.xenapi.VM.get_by_uuid(vm.uuid), key)


def docker_ps_entries(xml_text: str) -> List[Dict[str, Any]]:
    """Containers as XenCenter finds them: every `entry` element at any depth."""
    doc = xml.dom.minidom.parseString(xml_text)
    entries = []
    for entry in doc.getElementsByTagName("entry"):
        fields = {}
        for child in entry.childNodes:
            if child.nodeType == child.ELEMENT_NODE and child.tagName not in fields:
                fields[child.tagName] = "".join(
                    t.data for t in child.childNodes if t.nodeType == t.TEXT_NODE)
        entries.append(fields)
    return entries


def parses_everywhere(xml_text: str) -> Any:
    xml.dom.minidom.parseString(xml_text)
    ET.fromstring(xml_text)
    return xmltodict.parse(xml_text)


@pytest.fixture(scope="module")
def vm1(lab: Any) -> Any:
    return lab.vms[0]


@pytest.fixture(scope="module")
def vm2(lab: Any) -> Any:
    """A VM resident on another host than vm1."""
    other = [vm for vm in lab.vms if vm.host != lab.vms[0].host]
    assert other, "the lab must have VMs on two hosts"
    return other[0]


@pytest.fixture
def name() -> str:
    return "c" + uuid.uuid4().hex[:8]


@pytest.fixture
def restore_service(lab: Any) -> Iterator[List[Any]]:
    stopped: List[Any] = []
    yield stopped
    for vm, daemon in stopped:
        lab.service(vm.name, daemon, "start")


# -- inspect and top -------------------------------------------------------------


def test_get_inspect_by_name_full_id_and_short_id(lab, vm1, name):
    full_id = run(lab, vm1, name)
    try:
        by_name = call(lab, vm1.host, "get_inspect", vmuuid=vm1.uuid, object=name)
        by_id = call(lab, vm1.host, "get_inspect", vmuuid=vm1.uuid, object=full_id)
        by_short = call(lab, vm1.host, "get_inspect", vmuuid=vm1.uuid, object=full_id[:10])
        for payload in (by_name, by_id, by_short):
            doc = parses_everywhere(payload)["docker_inspect"]
            assert doc["Id"] == full_id
            assert doc["Name"] == "/" + name
            assert doc["State"]["Running"] == "True"  # XenRT's check
            assert doc["State"]["Paused"] == "False"
    finally:
        remove(lab, vm1, name)


def test_get_top_gives_xencenter_its_three_columns(lab, vm1, name):
    run(lab, vm1, name)
    try:
        payload = call(lab, vm1.host, "get_top", vmuuid=vm1.uuid, object=name)
        doc = xml.dom.minidom.parseString(payload)
        assert doc.documentElement.tagName == "docker_top"
        rows = doc.getElementsByTagName("Process")
        assert len(rows) == 2  # docker-init and sleep
        commands = []
        for row in rows:
            for column in ("PID", "CMD", "TIME"):
                element = row.getElementsByTagName(column)[0]
                assert element.firstChild is not None and element.firstChild.nodeValue.strip()
            commands.append(row.getElementsByTagName("CMD")[0].firstChild.nodeValue)
        assert "sleep 1d" in commands
    finally:
        remove(lab, vm1, name)


def test_labels_with_hostile_keys_and_published_ports(lab, vm1, name):
    labels = {"org:example/x y": "1", "entry": "not a container", "Process": "no",
              "com.example.a&b": "<&>\"'", "80/tcp": "x", "%CPU": "y"}
    api = lab.docker(vm1.name).api
    container = api.create_container(
        IMAGE, ["sleep", "1d"], name=name, labels=labels, ports=[80],
        host_config=api.create_host_config(port_bindings={80: 18080}, init=True))
    api.start(container)
    set_key(lab, vm1, "docker_ps", "<docker_ps/>")  # as if the monitor had published
    try:
        doc = parses_everywhere(call(lab, vm1.host, "get_inspect", vmuuid=vm1.uuid, object=name))
        specials = {e["@name"] for e in doc["docker_inspect"]["Config"]["Labels"][
            "SPECIAL_XS_ENCODED_ELEMENT"]}
        assert {"org:example/x y", "entry", "Process", "80/tcp", "%CPU"} <= specials
        # a lifecycle call refreshes docker_ps: still one entry per container
        call(lab, vm1.host, "restart", vmuuid=vm1.uuid, container=name)
        published = other_config(lab, vm1)["docker_ps"]
        parses_everywhere(published)
        entries = docker_ps_entries(published)
        assert len(entries) == len(api.containers(all=True))
        mine = [e for e in entries if e["names"] == name]
        assert len(mine) == 1 and mine[0]["status"] == "Up"
        items = xmltodict.parse(published)["docker_ps"]["item"]
        items = items if isinstance(items, list) else [items]
        ports = next(i["entry"]["ports"] for i in items if i["entry"]["names"] == name)["item"]
        ports = ports if isinstance(ports, list) else [ports]
        assert {"PrivatePort": "80", "PublicPort": "18080", "Type": "tcp"}.items() <= \
            ports[0].items()
    finally:
        remove(lab, vm1, name)
        remove_key(lab, vm1, "docker_ps")


# -- lifecycle ---------------------------------------------------------------------


def test_lifecycle_with_short_id_and_upper_case_name_refreshes_docker_ps(lab, vm1):
    name = "MyApp-" + uuid.uuid4().hex[:6]
    short = run(lab, vm1, name)[:10]
    set_key(lab, vm1, "docker_ps", "<docker_ps/>")
    docker = lab.docker(vm1.name).api

    def status() -> str:
        (entry,) = [e for e in docker_ps_entries(other_config(lab, vm1)["docker_ps"])
                    if e["container"] == short]
        assert entry["names"] == name
        return entry["status"]

    try:
        assert lab.call_plugin(vm1.host, "pause", {"vmuuid": vm1.uuid, "container": short}) \
            == "True"
        assert status() == "Up (Paused)"
        assert docker.inspect_container(name)["State"]["Paused"] is True
        call(lab, vm1.host, "unpause", vmuuid=vm1.uuid, container=name)
        assert status() == "Up"
        call(lab, vm1.host, "stop", vmuuid=vm1.uuid, container=short)
        assert status() == "Exited (143)"  # docker-init passes SIGTERM on
        assert docker.inspect_container(name)["State"]["Running"] is False
        call(lab, vm1.host, "start", vmuuid=vm1.uuid, container=short)
        assert status() == "Up"
        call(lab, vm1.host, "restart", vmuuid=vm1.uuid, container=short)
        assert status() == "Up"
    finally:
        remove(lab, vm1, name)
        remove_key(lab, vm1, "docker_ps")


def test_lifecycle_without_docker_ps_does_not_create_it(lab, vm1, name):
    run(lab, vm1, name)
    try:
        assert "docker_ps" not in other_config(lab, vm1)
        call(lab, vm1.host, "pause", vmuuid=vm1.uuid, container=name)
        assert "docker_ps" not in other_config(lab, vm1)
        call(lab, vm1.host, "unpause", vmuuid=vm1.uuid, container=name)
    finally:
        remove(lab, vm1, name)


def test_docker_refusal_carries_dockers_message(lab, vm1, name):
    run(lab, vm1, name)
    lab.exec(vm1.name, ["docker", "stop", name])
    try:
        details = failure(lab, vm1.host, "pause", vmuuid=vm1.uuid, container=name)
        assert details[0] == "XSCONTAINER_DOCKER_ERROR"
        assert "is not running" in details[1]
        assert "409" in details[2:]
    finally:
        remove(lab, vm1, name)


def test_unknown_container(lab, vm1):
    details = failure(lab, vm1.host, "start", vmuuid=vm1.uuid, container="NoSuchThing")
    assert details[0] == "XSCONTAINER_NO_SUCH_CONTAINER"
    assert "NoSuchThing" in details[1]


@pytest.mark.parametrize(
    "bad", ["bad name", "../../containers/x", "web\n", "-rf", "a;b", "x" * 300])
def test_invalid_container_refused_before_any_connection(lab, vm1, bad, restore_service):
    # with sshd down, anything that tried to connect would fail differently
    lab.service(vm1.name, "sshd", "stop")
    restore_service.append((vm1, "sshd"))
    details = failure(lab, vm1.host, "stop", vmuuid=vm1.uuid, container=bad)
    assert details[0] == "XSCONTAINER_INVALID_ARGUMENT"
    details = failure(lab, vm1.host, "get_inspect", vmuuid=vm1.uuid, object=bad)
    assert details[0] == "XSCONTAINER_INVALID_ARGUMENT"


# -- register / deregister ------------------------------------------------------------


def test_register_and_deregister_edit_only_their_keys(lab, vm1):
    set_key(lab, vm1, "folder", "/XenCenter/folder")
    for key in ("docker_ps", "docker_info", "docker_version"):
        set_key(lab, vm1, key, "<%s/>" % key)
    with lab.xapi_session() as s:
        s.xenapi.lab.reset_stats()
    try:
        assert lab.call_plugin(vm1.host, "register", {"vmuuid": vm1.uuid}) == "True"
        config = other_config(lab, vm1)
        assert config["xscontainer-monitor"] == "True"
        assert config["folder"] == "/XenCenter/folder"
        assert lab.call_plugin(vm1.host, "deregister", {"vmuuid": vm1.uuid,
                                                        "container": "ignored"}) == "True"
        config = other_config(lab, vm1)
        assert config["xscontainer-monitor"] == "False"
        assert not {"docker_ps", "docker_info", "docker_version"} & set(config)
        assert config["folder"] == "/XenCenter/folder"
        with lab.xapi_session() as s:
            calls = s.xenapi.lab.stats()["calls"]
        assert not calls.get("VM.set_other_config")
    finally:
        remove_key(lab, vm1, "folder")
        remove_key(lab, vm1, "xscontainer-monitor")


# -- bad input and broken guests -----------------------------------------------------


def test_missing_argument_and_unknown_vm(lab, vm1):
    details = failure(lab, vm1.host, "get_inspect", vmuuid=vm1.uuid)
    assert details[0] == "XSCONTAINER_INVALID_ARGUMENT" and "object" in details[1]
    unknown = str(uuid.uuid4())
    details = failure(lab, vm1.host, "register", vmuuid=unknown)
    assert details[0] == "XSCONTAINER_VM_NOT_FOUND" and unknown in details
    details = failure(lab, vm1.host, "get_top", vmuuid=unknown, object="web")
    assert details[0] == "XSCONTAINER_VM_NOT_FOUND"
    details = failure(lab, vm1.host, "no_such_function", vmuuid=vm1.uuid)
    assert details == ["UNKNOWN_XENAPI_PLUGIN_FUNCTION", "no_such_function"]


def test_halted_vm_and_vm_without_guest_metrics(lab, vm1):
    before = other_config(lab, vm1)
    with lab.xapi_session() as s:
        ref = s.xenapi.VM.get_by_uuid(vm1.uuid)
        host = s.xenapi.host.get_by_uuid(vm1.host)
        networks = s.xenapi.VM_guest_metrics.get_networks(s.xenapi.VM.get_guest_metrics(ref))
        s.xenapi.VM.hard_shutdown(ref)
        try:
            details = failure(lab, vm1.host, "get_inspect", vmuuid=vm1.uuid, object="web")
            assert details[0] == "XSCONTAINER_VM_NOT_RUNNING" and "Halted" in details[1]
            assert other_config(lab, vm1) == before
        finally:
            s.xenapi.VM.start_on(ref, host, False, False)
        s.xenapi.lab.VM.set_guest_networks(ref, {})
        try:
            details = failure(lab, vm1.host, "get_inspect", vmuuid=vm1.uuid, object="web")
            assert details[0] == "XSCONTAINER_NO_IP" and "guest tools" in details[1]
        finally:
            s.xenapi.lab.VM.set_guest_networks(ref, networks)
    assert other_config(lab, vm1) == before


def test_sshd_stopped(lab, vm1, restore_service):
    lab.service(vm1.name, "sshd", "stop")
    restore_service.append((vm1, "sshd"))
    details = failure(lab, vm1.host, "get_inspect", vmuuid=vm1.uuid, object="web")
    assert details[0] == "XSCONTAINER_GUEST_UNREACHABLE"
    assert vm1.ip in details[1] and "port 22" in details[1]
    report = call(lab, vm1.host, "diagnose", vmuuid=vm1.uuid)
    assert "[FAIL] SSH port 22 answers" in report
    assert "[SKIP] the Docker API version is supported" in report


def test_dockerd_stopped(lab, vm1, restore_service):
    lab.service(vm1.name, "dockerd", "stop")
    restore_service.append((vm1, "dockerd"))
    details = failure(lab, vm1.host, "get_inspect", vmuuid=vm1.uuid, object="web")
    assert details[0] == "XSCONTAINER_DOCKER_UNREACHABLE"
    assert "Docker" in details[1]
    report = call(lab, vm1.host, "diagnose", vmuuid=vm1.uuid)
    assert "[FAIL] the Docker socket /var/run/docker.sock exists" in report
    assert "Docker is not running in the VM" in report


def test_changed_host_key_is_refused_until_reset(lab, vm1, name):
    run(lab, vm1, name)
    try:
        call(lab, vm1.host, "get_inspect", vmuuid=vm1.uuid, object=name)  # pins the key
        pinned = other_config(lab, vm1)["xscontainer-sshhostkey"]
        lab.rekey(vm1.name)
        before = other_config(lab, vm1)
        details = failure(lab, vm1.host, "get_inspect", vmuuid=vm1.uuid, object=name)
        assert details[0] == "XSCONTAINER_SSH_HOSTKEY_MISMATCH"
        assert ("xe vm-param-remove uuid=%s param-name=other-config "
                "param-key=xscontainer-sshhostkey" % vm1.uuid) in details[1]
        assert other_config(lab, vm1) == before  # nothing else changed
        report = call(lab, vm1.host, "diagnose", vmuuid=vm1.uuid)
        assert "[FAIL] the VM's SSH host key matches the pinned key" in report
        remove_key(lab, vm1, "xscontainer-sshhostkey")  # what the message tells the admin
        call(lab, vm1.host, "get_inspect", vmuuid=vm1.uuid, object=name)
        with open(vm1.ssh_host_key) as f:
            new_key = f.read().split()[1]
        assert other_config(lab, vm1)["xscontainer-sshhostkey"] == new_key != pinned
        assert base64.b64decode(new_key)
    finally:
        remove(lab, vm1, name)


def test_diagnose_on_a_healthy_guest(lab, vm1):
    report = call(lab, vm1.host, "diagnose", vmuuid=vm1.uuid)
    assert "[FAIL]" not in report and "[SKIP]" not in report
    assert report.endswith("Result: container management works for this VM.")
    assert "API 1.41" in report


# -- forwarding ------------------------------------------------------------------------


def _log_lines(lab: Any, host: str) -> List[str]:
    path = os.path.join(lab.host(host).dir, "xscontainer.log")
    if not os.path.exists(path):  # no plugin has run on that host yet
        return []
    with open(path) as f:
        return f.read().splitlines()


def test_calls_are_forwarded_to_the_resident_host(lab, vm1, vm2, name):
    run(lab, vm2, name)
    try:
        before1, before2 = len(_log_lines(lab, vm1.host)), len(_log_lines(lab, vm2.host))
        payload = call(lab, vm1.host, "get_inspect", vmuuid=vm2.uuid, object=name)
        assert parses_everywhere(payload)["docker_inspect"]["Name"] == "/" + name
        new1 = _log_lines(lab, vm1.host)[before1:]
        new2 = _log_lines(lab, vm2.host)[before2:]
        assert any("forwarding get_inspect to host" in line for line in new1)
        assert any("get_inspect succeeded" in line for line in new2)
        assert not any("get_inspect succeeded" in line for line in new1)
        # a failure on the remote host comes back unchanged, not as "non-zero exit"
        details = failure(lab, vm1.host, "stop", vmuuid=vm2.uuid, container="NoSuchThing")
        assert details[0] == "XSCONTAINER_NO_SUCH_CONTAINER"
        assert call(lab, vm1.host, "pause", vmuuid=vm2.uuid, container=name) == ""
        assert lab.docker(vm2.name).api.inspect_container(name)["State"]["Paused"] is True
    finally:
        remove(lab, vm2, name)


def test_logs_hold_no_secrets(lab, vm1, vm2):
    with lab.xapi_session() as s:
        session_ref = s._session
        pool = s.xenapi.pool.get_all()[0]
        private = s.xenapi.secret.get_value(s.xenapi.secret.get_by_uuid(
            s.xenapi.pool.get_other_config(pool)["xscontainer-private-secret-uuid"]))
        host = s.xenapi.host.get_by_uuid(vm1.host)
        # a forwarded call made with this very session
        with pytest.raises(XenAPI.Failure):
            s.xenapi.host.call_plugin(host, "xscontainer", "get_top",
                                      {"vmuuid": vm2.uuid, "object": "nothing"})
    key_line = private.strip().splitlines()[1]
    for h in lab.hosts:
        text = "\n".join(_log_lines(lab, h.uuid))
        assert "PRIVATE KEY" not in text and key_line not in text
        assert session_ref not in text


# -- scale -----------------------------------------------------------------------------


def test_a_thousand_containers(lab, vm1, name):
    api = lab.docker(vm1.name, timeout=120).api
    run(lab, vm1, name)
    set_key(lab, vm1, "docker_ps", "<docker_ps/>")
    try:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda i: api.create_container(
                IMAGE, ["true"], name="%s-%04d" % (name, i),
                labels={"bulk": name, "com.example.n": str(i), "a b": "c"}), range(1000)))
        call(lab, vm1.host, "pause", vmuuid=vm1.uuid, container=name)
        entries = docker_ps_entries(other_config(lab, vm1)["docker_ps"])
        assert len(entries) == len(api.containers(all=True)) >= 1001
        assert len({e["id"] for e in entries}) == len(entries)
        call(lab, vm1.host, "unpause", vmuuid=vm1.uuid, container=name)
    finally:
        api.prune_containers(filters={"label": "bulk=" + name})
        remove(lab, vm1, name)
        remove_key(lab, vm1, "docker_ps")
