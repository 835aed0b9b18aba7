"""get_logs, get_stats and get_ps on every engine of the matrix (Docker 26 and 28,
Podman 4 and 5, rootless Podman 5), XML or text and JSON: stdout and stderr
demultiplexed as the engine's own API separates them, a busy container's CPU
against an idle one's, the running containers listed with all=false.

Left out, and why: rootless Podman on the lab's cgroups v1 has no per-container
accounting (its own `podman stats` refuses), so its rows are only checked to
name the containers.
"""

import json
import uuid
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Tuple

import pytest
import XenAPI

from xsclab import labctl

from .conftest import engines

IMAGE = "xsc-test/busybox"
ENGINES = engines()
LOGGER = "for i in 1 2 3; do echo out $i; echo err $i >&2; done; sleep 1d"


def outcomes(lab: labctl.Lab, vm: labctl.VM,
             calls: List[Tuple[str, Dict[str, str]]]) -> List[Any]:
    """("value", payload after True) or ("error", details) of each call, four at a time."""

    def one(fn_args: Tuple[str, Dict[str, str]]) -> Any:
        fn, args = fn_args
        try:
            value = lab.call_plugin(vm.host, fn, dict(args, vmuuid=vm.uuid))
        except XenAPI.Failure as exc:
            return ("error", [str(d) for d in exc.details])
        assert value.startswith("True"), value[:200]
        return ("value", value[4:])

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, calls))


@pytest.mark.parametrize("engine", ENGINES)
def test_logs_stats_and_ps(engine_lab, engine):
    (vm,) = [v for v in engine_lab.vms if v.engine == engine]
    api = engine_lab.docker(vm.name, timeout=60)
    tag = uuid.uuid4().hex[:6]
    log, busy, gone = "lg" + tag, "busy" + tag, "gone" + tag
    api.containers.run(IMAGE, ["sh", "-c", LOGGER], name=log, detach=True)
    api.containers.run(IMAGE, ["sh", "-c", "while :; do :; done"], name=busy, detach=True)
    api.containers.run(IMAGE, ["true"], name=gone, detach=False, remove=False)
    try:
        results = outcomes(engine_lab, vm, [
            ("get_logs", {"object": log}),
            ("get_logs", {"object": log, "format": "json", "timestamps": "true"}),
            ("get_stats", {"format": "json"}), ("get_stats", {"object": busy}),
            ("get_ps", {"all": "false", "format": "json"}), ("get_ps", {}),
            ("get_logs", {"object": "no-such-" + tag}),
            ("get_logs", {"object": log, "tail": "10x"})])
        assert [kind for kind, _value in results] == ["value"] * 6 + ["error"] * 2, results
        text, logs_json, stats_json, busy_xml, running_json, ps_xml, no_such, bad = \
            [value for _kind, value in results]
        # stdout and stderr demultiplexed, each as the engine's API separates them
        lines = json.loads(logs_json)["lines"]
        assert sorted(text.splitlines()) == sorted(line["text"] for line in lines)
        for stream in ("stdout", "stderr"):
            own = api.api.logs(log, stdout=stream == "stdout", stderr=stream == "stderr")
            assert [line["text"] for line in lines if line["stream"] == stream] == \
                own.decode().splitlines()
        assert all(line["timestamp"][:2] == "20" for line in lines)
        # a sample of every running container, each named
        rows = {row["name"]: row for row in json.loads(stats_json)["containers"]}
        assert {log, busy} <= set(rows) and gone not in rows
        busy_row = {child.tag: child.text for child in ET.fromstring(busy_xml).find("item")}
        assert busy_row["name"] == busy and busy_row["id"] == rows[busy]["id"]
        if not engine.endswith("-rootless"):
            assert rows[busy]["cpu_percent"] > max(1.0, rows[log]["cpu_percent"]), rows
            assert all(rows[n]["pids"] == 1 and 0 < rows[n]["memory_usage"]
                       <= rows[n]["memory_limit"] for n in (log, busy))
        # every container in XML, the running ones with all=false
        assert {e.findtext("names") for e in ET.fromstring(ps_xml).iter("entry")} >= \
            {log, busy, gone}
        running = {c["names"] for c in json.loads(running_json)["containers"]}
        assert {log, busy} <= running and gone not in running
        assert no_such[0] == "XSCONTAINER_NO_SUCH_CONTAINER"
        assert bad[0] == "XSCONTAINER_INVALID_ARGUMENT" and bad[2] == "tail"
    finally:
        for name in (log, busy, gone):
            try:
                api.api.remove_container(name, force=True)
            except Exception:  # already gone
                pass
