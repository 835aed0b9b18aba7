"""Non-ASCII text through every plugin argument and in results, with the plugin run
the way xapi runs it: PATH and lab-only variables, no locale variable, stdin
/dev/null, cwd / (labenv.dom0_env). On Python 3.6 (`make test-py36`) that is an
ASCII locale, as on a CentOS 7 based dom0; on the newest Python (`make test-source`)
UTF-8 mode. Every call also carries an extra argument with a non-ASCII key, which
the plugin ignores. Nothing may appear on a plugin's stderr (the simulator keeps
it in <lab>/plugin-stderr.log) or on the monitor's.
"""

import os
import subprocess
import uuid
import xml.dom.minidom
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
import XenAPI

from xsclab import labctl, labenv
from xsclab.xapisim import plugins as simplugins

from .monitoring import Monitor, published, wait_for
from .test_configdrive import Drive, drives, export, local_sr, restore, s  # noqa: F401

IMAGE = "xsc-test/busybox"
EXTRA = {"clé ☕ ünïcødé": "valeur ☕ é"}
BAD = "nosuché ☕"
LABELS = {"étiquette ☕": "café ☕ crème", "com.example.名前": "値 ÿ ü"}
COMMAND = ["sh", "-c", "sleep 1d; echo 'café ☕ über'"]


def ok(lab: labctl.Lab, host: str, fn: str, **args: str) -> str:
    value = lab.call_plugin(host, fn, dict(args, **EXTRA))
    assert value.startswith("True"), value
    return value[4:]


def failure(lab: labctl.Lab, host: str, fn: str, **args: str) -> List[str]:
    with pytest.raises(XenAPI.Failure) as raised:
        lab.call_plugin(host, fn, dict(args, **EXTRA))
    return [str(d) for d in raised.value.details]


def stderr_size() -> int:
    path = simplugins.stderr_log()
    return os.path.getsize(path) if os.path.exists(path) else 0


@pytest.fixture(autouse=True)
def no_stderr(lab: labctl.Lab) -> Iterator[None]:
    """Every test: the plugins it ran wrote nothing on stderr."""
    before = stderr_size()
    yield
    if stderr_size() != before:
        with open(simplugins.stderr_log(), encoding="utf-8", errors="replace") as f:
            f.seek(before)
            pytest.fail("a plugin wrote on stderr:\n%s" % f.read()[-3000:])


@pytest.fixture
def container(lab: labctl.Lab) -> Iterator[str]:
    vm = lab.vms[0]
    api = lab.docker(vm.name).api
    name = "loc" + uuid.uuid4().hex[:8]
    created = api.create_container(IMAGE, COMMAND, name=name, labels=LABELS,
                                   environment={"GRÜSSE": "grüß dich ☕"},
                                   host_config=api.create_host_config(init=True))
    api.start(created)
    try:
        yield name
    finally:
        api.remove_container(name, force=True)


def text_of(doc: Any, tag: str) -> List[str]:
    return ["".join(t.data for t in e.childNodes if t.nodeType == t.TEXT_NODE)
            for e in doc.getElementsByTagName(tag)]


def test_inspect_top_and_lifecycle_carry_non_ascii(lab: labctl.Lab, container: str) -> None:
    vm = lab.vms[0]
    inspect = ok(lab, vm.host, "get_inspect", vmuuid=vm.uuid, object=container)
    doc = xml.dom.minidom.parseString(inspect)
    assert "café ☕ crème" in inspect and "値 ÿ ü" in inspect
    assert "étiquette ☕" in inspect  # a label key XML cannot name: kept as an attribute
    assert "sleep 1d; echo 'café ☕ über'" in text_of(doc, "item")  # Config.Cmd
    assert any("GRÜSSE=grüß dich ☕" == t for t in text_of(doc, "item"))

    top = xml.dom.minidom.parseString(ok(lab, vm.host, "get_top", vmuuid=vm.uuid,
                                         object=container))
    assert any("café ☕ über" in cmd for cmd in text_of(top, "CMD")), text_of(top, "CMD")

    for fn in ("pause", "unpause", "restart"):
        assert ok(lab, vm.host, fn, vmuuid=vm.uuid, container=container) == ""
    state = lab.docker(vm.name).api.inspect_container(container)["State"]
    assert state["Running"] and not state["Paused"]


def test_bad_non_ascii_names_get_stable_codes(lab: labctl.Lab) -> None:
    vm = lab.vms[0]
    host = vm.host
    cases = [
        ("get_inspect", {"vmuuid": vm.uuid, "object": BAD}, "XSCONTAINER_INVALID_ARGUMENT"),
        ("get_top", {"vmuuid": vm.uuid, "object": BAD}, "XSCONTAINER_INVALID_ARGUMENT"),
        ("start", {"vmuuid": vm.uuid, "container": BAD}, "XSCONTAINER_INVALID_ARGUMENT"),
        ("stop", {"vmuuid": vm.uuid, "container": "nosuché"}, "XSCONTAINER_INVALID_ARGUMENT"),
        ("get_inspect", {"vmuuid": BAD, "object": "x"}, "XSCONTAINER_VM_NOT_FOUND"),
        ("register", {"vmuuid": BAD}, "XSCONTAINER_VM_NOT_FOUND"),
        ("deregister", {"vmuuid": BAD}, "XSCONTAINER_VM_NOT_FOUND"),
        ("diagnose", {"vmuuid": BAD}, "XSCONTAINER_VM_NOT_FOUND"),
        ("prepare", {"vmuuid": BAD}, "XSCONTAINER_VM_NOT_FOUND"),
        ("create_config_drive", {"vmuuid": BAD, "sruuid": BAD, "configuration": "#cloud-config\n"},
         "XSCONTAINER_VM_NOT_FOUND"),
        ("create_config_drive", {"vmuuid": vm.uuid, "sruuid": BAD,
                                 "configuration": "#cloud-config\n# é\n"},
         "XSCONTAINER_CONFIG_DRIVE_FAILED"),
        ("get_config_drive_configuration", {"vdiuuid": BAD}, "XSCONTAINER_CONFIG_DRIVE_FAILED"),
    ]
    for fn, args, code in cases:
        details = failure(lab, host, fn, **args)
        assert details[0] == code, (fn, details)
        # readable, and it names what was given exactly
        bad = args.get("object") or args.get("container") or (
            args["sruuid"] if code == "XSCONTAINER_CONFIG_DRIVE_FAILED" and "sruuid" in args
            else args.get("vdiuuid") or args.get("vmuuid"))
        assert bad in details[1], (fn, details)
    # an unknown function with a non-ASCII name: xapi's module answers it
    with pytest.raises(XenAPI.Failure) as raised:
        lab.call_plugin(host, "nosuché_fn_☕", EXTRA)
    assert raised.value.details == ["UNKNOWN_XENAPI_PLUGIN_FUNCTION", "nosuché_fn_☕"]


def test_cloud_config_with_non_ascii_round_trips(lab: labctl.Lab, s: Any,  # noqa: F811
                                                 restore: None,  # noqa: F811
                                                 tmp_path: Path) -> None:
    vm = lab.vms[0]
    config = ("#cloud-config\n# Jürgen's café ☕ — 東京\nhostname: %VMNAMETOHOSTNAME%\n"
              "write_files:\n  - path: /etc/motd\n    content: \"Grüße ☕\"\n"
              "ssh_authorized_keys:\n  - ssh-rsa %CONTAINERRSAPUB%\n")
    template = ok(lab, lab.master, "get_config_drive_default", templateuuid=BAD)
    assert template.startswith("#cloud-config")
    vdi = ok(lab, lab.master, "create_config_drive", vmuuid=vm.uuid,
             sruuid=local_sr(lab, vm.host), configuration=config)
    assert [d["vdi"]["uuid"] for d in drives(s, vm.uuid)] == [vdi]
    assert ok(lab, lab.master, "get_config_drive_configuration", vdiuuid=vdi) == config
    image = Drive(export(lab, s, vdi), tmp_path)
    user_data = image.text("/openstack/latest/user_data")
    assert "# Jürgen's café ☕ — 東京\n" in user_data and "Grüße ☕" in user_data


def test_monitor_publishes_non_ascii_and_writes_nothing_on_stderr(
        lab: labctl.Lab, container: str) -> None:
    vm = lab.vms[0]
    session = lab.xapi()
    xs = session.xenapi
    was = xs.VM.get_other_config(xs.VM.get_by_uuid(vm.uuid)).get("xscontainer-monitor")
    assert ok(lab, vm.host, "register", vmuuid=vm.uuid) == ""
    monitor = Monitor(lab, vm.host, [])
    try:
        try:
            wait_for("docker_ps with the container", lambda: any(
                name == container for name, _ in (published(xs, vm) or {}).values()))
            ps = xs.VM.get_other_config(xs.VM.get_by_uuid(vm.uuid))["docker_ps"]
            assert "café ☕ über" in ps
            # a plugin call answered by the monitor: the same text
            inspect = ok(lab, vm.host, "get_inspect", vmuuid=vm.uuid, object=container)
            assert "café ☕ crème" in inspect
        finally:
            ref = xs.VM.get_by_uuid(vm.uuid)
            xs.VM.remove_from_other_config(ref, "xscontainer-monitor")
            if was is not None:
                xs.VM.add_to_other_config(ref, "xscontainer-monitor", was)
            session.xenapi.session.logout()
    finally:
        monitor.stop()
    assert monitor.proc.stderr is not None
    assert monitor.proc.stderr.read() == b""


def test_prepare_vm_prints_non_ascii_in_no_locale(lab: labctl.Lab) -> None:
    """xscontainer-prepare-vm with a non-ASCII VM name it cannot find: a clear
    message naming it, in UTF-8, whatever the locale."""
    vm = lab.vms[0]
    env = lab.dom0_env(vm.host)
    argv = labenv.dom0_argv(["xscontainer-prepare-vm", "--vmuuid", BAD, "-u", "jürgen"], env)
    proc = subprocess.run(argv, env=env,
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, cwd="/", timeout=120)
    assert proc.returncode != 0
    text = (proc.stdout + proc.stderr).decode("utf-8")
    assert BAD in text, text
    assert "Traceback" not in text and "UnicodeEncodeError" not in text, text


def check_env(env: Dict[str, str]) -> None:
    for name in env:
        assert not name.startswith("LC_") and name not in ("LANG", "LANGUAGE", "HOME"), name


def test_dom0_processes_get_no_locale(lab: labctl.Lab) -> None:
    check_env(lab.dom0_env(lab.vms[0].host))
