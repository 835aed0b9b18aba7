"""get_logs, get_stats, get_ps and format=json through the lab's host.call_plugin,
against a real guest's dockerd: on the direct path (the plugin connects itself)
and over the monitor's connection, with bad arguments, a VM that is not running
and a container that logged 50 MB."""

import json
import os
import subprocess
import time
import xml.etree.ElementTree as ET
import xmlrpc.client
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, Iterator, List, Tuple

import pytest
import XenAPI

from xsclab import labenv

from .monitoring import FAST, Monitor, wait_for

IMAGE = "xsc-test/busybox"
MIB = 1024 * 1024


def call(lab: Any, vm: Any, fn: str, **args: str) -> str:
    value = lab.call_plugin(vm.host, fn, dict(args, vmuuid=vm.uuid))
    assert value.startswith("True"), value[:200]
    return value[4:]


def failure(lab: Any, vm: Any, fn: str, **args: str) -> List[str]:
    with pytest.raises(XenAPI.Failure) as exc:
        lab.call_plugin(vm.host, fn, dict(args, vmuuid=vm.uuid))
    return [str(d) for d in exc.value.details]


def outcomes(lab: Any, vm: Any, calls: List[Tuple[str, Dict[str, str]]]) -> List[Any]:
    """("value", the whole value) or ("error", its details) of each call, four at a time."""

    def one(fn_args: Tuple[str, Dict[str, str]]) -> Any:
        fn, args = fn_args
        try:
            return ("value", lab.call_plugin(vm.host, fn, dict(args, vmuuid=vm.uuid)))
        except XenAPI.Failure as exc:
            return ("error", [str(d) for d in exc.details])

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, calls))


def values(lab: Any, vm: Any, calls: List[Tuple[str, Dict[str, str]]]) -> List[str]:
    """The payload (after `True`) of each call, which must all succeed."""
    results = outcomes(lab, vm, calls)
    for (fn, args), (kind, value) in zip(calls, results):
        assert kind == "value" and value.startswith("True"), (fn, args, value)
    return [value[4:] for _kind, value in results]


def docker(lab: Any, vm: Any, *argv: str) -> str:
    return lab.exec(vm.name, ["docker", *argv]).stdout


def sh(lab: Any, vm: Any, script: str) -> str:
    return lab.exec(vm.name, ["sh", "-c", script]).stdout


NAMES = ("rd-log", "rd-tty", "rd-busy", "rd-exited", "rd-big")


@pytest.fixture(scope="module")
def guest(lab: Any) -> Iterator[Any]:
    """A VM with a container that logged to both streams, one with a TTY, one
    burning a CPU, an exited one and one that logged 50 MB (10,000 lines of 5 KB)."""
    vm = lab.vms[0]
    docker(lab, vm, "rm", "-f", *NAMES)
    docker(lab, vm, "run", "-d", "--name", "rd-log", IMAGE, "sh", "-c",
           "for i in 1 2 3 4 5; do echo out $i; echo err $i >&2; done; sleep 1d")
    docker(lab, vm, "run", "-d", "-t", "--name", "rd-tty", IMAGE, "sh", "-c",
           "echo tty one; echo tty two; sleep 1d")
    docker(lab, vm, "run", "-d", "--name", "rd-busy", IMAGE, "sh", "-c", "while :; do :; done")
    docker(lab, vm, "run", "--name", "rd-exited", IMAGE, "true")
    docker(lab, vm, "run", "-d", "--name", "rd-big", IMAGE, "sh", "-c",
           "awk 'BEGIN { x = sprintf(\"%4990s\", \"\"); gsub(/ /, \"x\", x); "
           "for (i = 0; i < 10000; i++) print i, x; print \"END\" }'; sleep 1d")
    wait_for("rd-big to log 50 MB", lambda: "END" in docker(lab, vm, "logs", "--tail", "1",
                                                               "rd-big"), timeout=120, every=0.5)
    yield vm
    docker(lab, vm, "rm", "-f", *NAMES)


# -- get_logs --------------------------------------------------------------------------


def test_get_logs_demultiplexes_stdout_and_stderr_as_text_and_json(lab, guest):
    text, as_json, two, none, future, since, tty = values(lab, guest, [
        ("get_logs", {"object": "rd-log"}),
        ("get_logs", {"object": "rd-log", "format": "json"}),
        ("get_logs", {"object": "rd-log", "format": "json", "tail": "2", "timestamps": "true"}),
        ("get_logs", {"object": "rd-log", "tail": "0"}),
        ("get_logs", {"object": "rd-log", "since": "%d" % (time.time() + 3600)}),
        ("get_logs", {"object": "rd-log", "since": "1", "tail": "10000"}),
        ("get_logs", {"object": "rd-tty"})])
    assert sorted(text.splitlines()) == sorted(["out %d" % i for i in range(1, 6)]
                                               + ["err %d" % i for i in range(1, 6)])
    answer = json.loads(as_json)
    assert set(answer) == {"container", "lines", "truncated", "not_shown"}
    assert answer["container"] == "rd-log" and not answer["truncated"]
    assert [line["text"] for line in answer["lines"]] == text.splitlines()
    # each stream as Docker's own CLI separates them
    for stream, redirect in (("stdout", "2>/dev/null"), ("stderr", "2>&1 >/dev/null")):
        assert [line["text"] for line in answer["lines"] if line["stream"] == stream] == \
            sh(lab, guest, "docker logs rd-log %s" % redirect).splitlines()
    # tail, timestamps, since
    two_lines = json.loads(two)["lines"]
    assert [line["text"] for line in two_lines] == text.splitlines()[-2:]
    assert all(line["timestamp"].startswith(time.strftime("%Y-")) for line in two_lines)
    assert none == future == "" and since == text
    # a TTY container's logs are not multiplexed: one stream, as it is
    assert tty.replace("\r", "") == "tty one\ntty two\n"


def test_get_logs_bad_arguments_unknown_container_and_halted_vm(lab, guest):
    bad = [({"tail": "-1"}, "tail"), ({"tail": "10x"}, "tail"), ({"tail": "10001"}, "tail"),
           ({"since": "yesterday"}, "since"), ({"timestamps": "sometimes"}, "timestamps"),
           ({"format": "xml"}, "format")]
    results = outcomes(lab, guest, [("get_logs", dict(args, object="rd-log"))
                                    for args, _key in bad] + [
        ("get_logs", {"object": "no-such"}), ("get_stats", {"object": "no-such"}),
        ("get_ps", {"all": "perhaps"}), ("get_inspect", {"object": "rd-log", "format": "yaml"}),
        ("diagnose", {"format": "html"})])
    assert all(kind == "error" for kind, _details in results), results
    for (_kind, details), (_args, key) in zip(results, bad):
        assert details[0] == "XSCONTAINER_INVALID_ARGUMENT", details
        assert details[2] == key and key + "=" in details[1]
    assert [details[0] for _kind, details in results[len(bad):]] == [
        "XSCONTAINER_NO_SUCH_CONTAINER", "XSCONTAINER_NO_SUCH_CONTAINER",
        "XSCONTAINER_INVALID_ARGUMENT", "XSCONTAINER_INVALID_ARGUMENT",
        "XSCONTAINER_INVALID_ARGUMENT"]
    with lab.xapi_session() as s:
        halted = lab.vms[1]
        ref = s.xenapi.VM.get_by_uuid(halted.uuid)
        host = s.xenapi.host.get_by_uuid(halted.host)
        s.xenapi.VM.hard_shutdown(ref)
        try:
            for kind, details in outcomes(lab, halted, [
                    ("get_logs", {"object": "rd-log"}), ("get_stats", {}),
                    ("get_ps", {"format": "json"})]):
                assert kind == "error" and details[0] == "XSCONTAINER_VM_NOT_RUNNING"
                assert "Halted" in details[1]
        finally:
            s.xenapi.VM.start_on(ref, host, False, False)


def test_a_container_that_logged_50_mb(lab, guest):
    """The newest whole lines within 1 MiB after a marker, read as they stream: the
    plugin's peak memory for these 50 MB is within a few MiB of its peak for the
    container's inspect document (about 5 KB), in the same run."""
    session = lab.xapi()
    try:
        started = time.monotonic()
        with ThreadPoolExecutor(2) as pool:
            measured = pool.submit(plugin_peak_rss, lab, guest, session, "get_logs",
                                   object="rd-big", tail="10000")
            as_json, default_text = values(lab, guest, [
                ("get_logs", {"object": "rd-big", "tail": "10000", "format": "json"}),
                ("get_logs", {"object": "rd-big"})])
            logs_rss, text = measured.result()
        took = time.monotonic() - started
        inspect_rss, _inspect = plugin_peak_rss(lab, guest, session, "get_inspect",
                                                object="rd-big")
    finally:
        session.xenapi.session.logout()
    lines = text.splitlines()
    assert lines[0].startswith("(") and "earlier lines not shown" in lines[0]
    shown = lines[1:]
    assert shown[-1] == "END"
    assert int(lines[0][1:].split()[0]) + len(shown) == 10000  # the last 10,000 lines
    assert len(text.encode()) - len(lines[0]) - 1 <= MIB
    first = int(shown[0].split()[0])
    assert [int(line.split()[0]) for line in shown[:-1]] == list(range(first, 10000))
    assert all(line.endswith(" " + "x" * 4990) for line in shown[:-1])  # whole lines
    print("get_logs of a 50 MB log, tail=10000, text and JSON at once: %.1f s, %d lines shown"
          % (took, len(shown)))
    answer = json.loads(as_json)
    assert answer["truncated"] and answer["not_shown"] + len(answer["lines"]) == 10000
    assert answer["lines"][-1] == {"stream": "stdout", "text": "END"}
    default = default_text.splitlines()
    assert len(default) == 100 and default[-1] == "END" and default[0].startswith("9901 ")
    print("plugin peak RSS: get_logs of 50 MB %.1f MiB, get_inspect %.1f MiB"
          % (logs_rss, inspect_rss))
    assert logs_rss - inspect_rss < 24


def plugin_peak_rss(lab: Any, vm: Any, session: Any, fn: str, **args: str) -> Tuple[float, str]:
    """The peak RSS (MiB) of the plugin run as xapi runs it for one call, and its
    payload."""
    call = xmlrpc.client.dumps((session._session, dict(args, vmuuid=vm.uuid)), methodname=fn)
    plugin = os.path.join(labenv.tree().plugins_dir, "xscontainer")
    proc = lab.dom0_popen(vm.host, [plugin, call], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL)
    out = proc.stdout.read()
    _pid, _status, usage = os.wait4(proc.pid, 0)
    proc.returncode = 0
    (reply,), _ = xmlrpc.client.loads(out)
    assert reply.get("Status") == "Success", reply
    assert reply["Value"].startswith("True")
    return usage.ru_maxrss / 1024.0, reply["Value"][4:]


# -- get_stats -------------------------------------------------------------------------


def rows_of(xml_text: str) -> List[Dict[str, str]]:
    root = ET.fromstring(xml_text)
    assert root.tag == "docker_stats"
    return [{child.tag: child.text or "" for child in item} for item in root.findall("item")]


def test_get_stats_of_one_and_of_every_running_container(lab, guest):
    busy_json, all_xml, exited_json = values(lab, guest, [
        ("get_stats", {"object": "rd-busy", "format": "json"}), ("get_stats", {}),
        ("get_stats", {"object": "rd-exited", "format": "json"})])
    busy = json.loads(busy_json)
    assert busy["not_shown"] == 0 and len(busy["containers"]) == 1
    row = busy["containers"][0]
    assert list(row) == ["id", "name", "cpu_percent", "memory_usage", "memory_limit",
                         "memory_percent", "network_rx", "network_tx", "block_read",
                         "block_write", "pids"]
    assert row["name"] == "rd-busy" and row["id"] == docker(
        lab, guest, "inspect", "-f", "{{.Id}}", "rd-busy").strip()
    # a shell loop keeps a CPU busy, as much as the machine's load leaves it
    assert row["cpu_percent"] > 1
    assert 0 < row["memory_usage"] <= row["memory_limit"] and row["pids"] == 1
    # every running container, in XML, the same keys
    running = set(docker(lab, guest, "ps", "-q", "--no-trunc").split())
    rows = rows_of(all_xml)
    assert {r["id"] for r in rows} == running
    log_row = next(r for r in rows if r["name"] == "rd-log")
    assert float(log_row["cpu_percent"]) < 1 and int(log_row["pids"]) >= 1
    # the CLI's numbers for the same container, sampled moments apart
    cli = json.loads(docker(lab, guest, "stats", "--no-stream", "--format", "{{json .}}",
                            "rd-busy"))
    assert cli["PIDs"] == "1" and float(cli["CPUPerc"].rstrip("%")) > 1
    # an exited container: zeros, at once
    exited = json.loads(exited_json)
    assert exited["containers"][0]["cpu_percent"] == 0.0
    assert exited["containers"][0]["pids"] == 0


# -- get_ps, inspect, top, diagnose ----------------------------------------------------


def test_get_ps_and_the_json_of_inspect_top_and_diagnose(lab, guest):
    xml_all, xml_running, ps_json, inspect_json, inspect_xml, inspect_default, top_json, \
        diagnose_json, diagnose_text = values(lab, guest, [
            ("get_ps", {}), ("get_ps", {"all": "false"}), ("get_ps", {"format": "json"}),
            ("get_inspect", {"object": "rd-log", "format": "json"}),
            ("get_inspect", {"object": "rd-log", "format": "xml"}),
            ("get_inspect", {"object": "rd-log"}),
            ("get_top", {"object": "rd-log", "format": "json"}),
            ("diagnose", {"format": "json"}), ("diagnose", {})])
    ids = set(docker(lab, guest, "ps", "-aq", "--no-trunc").split())
    assert {e.findtext("id") for e in ET.fromstring(xml_all).iter("entry")} == ids
    running = ET.fromstring(xml_running)
    names = {e.findtext("names") for e in running.iter("entry")}
    assert "rd-log" in names and "rd-exited" not in names
    listed = json.loads(ps_json)
    assert listed["not_shown"] == 0
    assert [(c["id"], c["names"], c["status"]) for c in listed["containers"]] == [
        (e.findtext("id"), e.findtext("names"), e.findtext("status"))
        for e in ET.fromstring(xml_all).iter("entry")]
    # format=json of the existing reads; their default answer is unchanged
    inspect = json.loads(inspect_json)
    assert inspect == json.loads(docker(lab, guest, "inspect", "rd-log"))[0]
    assert inspect_xml == inspect_default and inspect_xml.startswith("<?xml")
    top = json.loads(top_json)
    assert {"PID", "CMD", "TIME"} <= set(top["titles"])
    assert "sleep 1d" in [p["CMD"] for p in top["processes"]]
    report = json.loads(diagnose_json)
    assert report["ok"] is True and report["vm"].endswith("(%s)" % guest.uuid)
    assert {s["status"] for s in report["steps"]} <= {"ok", "warning"}
    assert report["result"] == diagnose_text.splitlines()[-1]


# -- over the monitor's connection -----------------------------------------------------


def test_the_monitor_answers_the_new_reads_as_the_direct_path(lab, guest):
    calls = [("get_ps", {}), ("get_ps", {"all": "false", "format": "json"}),
             ("get_logs", {"object": "rd-log", "tail": "4", "format": "json"}),
             ("get_logs", {"object": "rd-tty"}), ("get_inspect", {"object": "rd-log",
                                                                  "format": "json"}),
             ("get_logs", {"object": "no-such"})]
    direct = outcomes(lab, guest, calls)
    with lab.xapi_session() as s:
        ref = s.xenapi.VM.get_by_uuid(guest.uuid)
        s.xenapi.VM.remove_from_other_config(ref, "xscontainer-monitor")
        s.xenapi.VM.add_to_other_config(ref, "xscontainer-monitor", "True")
    monitor = Monitor(lab, guest.host, FAST)
    try:
        wait_for("the monitor to connect", lambda: monitor.vm_state(guest.uuid) == "connected",
                 why=monitor.log_tail)
        published = wait_for("docker_ps", lambda: docker_ps(lab, ref))
        served = monitor.counts()[0]
        warm = outcomes(lab, guest, calls)
        assert monitor.counts()[0] - served == 5  # the five answers; errors are not counted
        assert warm == direct
        # get_ps is what the monitor publishes, byte for byte
        assert call(lab, guest, "get_ps") == published
        stats = json.loads(call(lab, guest, "get_stats", format="json"))
        assert {r["name"] for r in stats["containers"]} >= {"rd-log", "rd-busy"}
    finally:
        monitor.stop()
        with lab.xapi_session() as s:
            for key in ("xscontainer-monitor", "docker_ps", "docker_info", "docker_version"):
                s.xenapi.VM.remove_from_other_config(ref, key)


def docker_ps(lab: Any, ref: str) -> Any:
    with lab.xapi_session() as s:
        return dict(s.xenapi.VM.get_other_config(ref)).get("docker_ps")
