"""What the monitor's integration tests share: xscontainer-monitor as a process in a
lab host's dom0 (`Monitor`, with short timings `FAST`), its control socket, and
VM other-config as a client reads and writes it.
"""

import json
import os
import re
import signal
import socket
import subprocess
import time
import xml.dom.minidom
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest

from xsclab import labctl
from xscontainer.xmlenc import normalize_status

IMAGE = "xsc-test/busybox:latest"
DOCKER_KEYS = ("docker_ps", "docker_info", "docker_version")
FAST = ["--resync", "5", "--probe", "3", "--grace", "3", "--backoff-first", "0.5",
        "--backoff-cap", "2", "--sweep-delay", "1", "--event-timeout", "5"]


def wait_for(what: str, check: Callable[[], Any], timeout: float = 20.0,
             every: float = 0.1, why: Callable[[], str] = lambda: "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail("timed out after %gs waiting for %s%s" % (
                timeout, what, ("\n" + why()) if why() else ""))
        time.sleep(every)


class Monitor:
    """xscontainer-monitor running in the dom0 of one lab host."""

    def __init__(self, lab: labctl.Lab, host: str, args: List[str]) -> None:
        env = lab.dom0_env(host)
        self.host = host
        self.run_dir = env["XSCONTAINER_RUN_DIR"]
        self.log_file = env["XSCONTAINER_LOG_FILE"]
        self.log_offset = os.path.getsize(self.log_file) if os.path.exists(self.log_file) else 0
        self.proc = lab.dom0_popen(host, ["xscontainer-monitor", *args],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for("the monitor on %s to follow XAPI" % host,
                 lambda: (self.status() or {}).get("xapi_loads"), why=self.log_tail)

    def status(self) -> Optional[Dict[str, Any]]:
        if self.proc.poll() is not None:
            pytest.fail("the monitor exited with %s: %s\n%s" % (
                self.proc.returncode, self.proc.stderr.read().decode()[-2000:] if
                self.proc.stderr else "", self.log_tail()))
        try:
            answer = control_request(self.run_dir, {"fn": "status"})
        except OSError:
            return None
        return answer.get("value")

    def vm(self, vm_uuid: str) -> Dict[str, Any]:
        return ((self.status() or {}).get("vms") or {}).get(vm_uuid) or {}

    def vm_state(self, vm_uuid: str) -> Optional[str]:
        return self.vm(vm_uuid).get("state")

    def counts(self) -> Tuple[int, int]:
        """(served, declined) control requests so far."""
        status = self.status() or {}
        return int(status["control_served"]), int(status["control_unavailable"])

    def log_tail(self, lines: int = 40) -> str:
        try:
            with open(self.log_file, errors="replace") as f:
                f.seek(self.log_offset)
                text = f.read()
        except OSError:
            return ""
        kept = [line for line in text.splitlines() if "paramiko" not in line]
        return "\n".join(kept[-lines:])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> float:
        """Signal it; seconds until it exited."""
        if self.proc.poll() is not None:
            return 0.0
        start = time.monotonic()
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail("the monitor did not stop within %gs\n%s" % (timeout, self.log_tail()))
        return time.monotonic() - start


def control_request(run_dir: str, payload: Dict[str, Any], timeout: float = 10.0) -> Any:
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(timeout)
    try:
        sock.connect(os.path.join(run_dir, "monitor.sock"))
        sock.sendall((json.dumps(payload) + "\n").encode())
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        sock.close()
    return json.loads(data.decode())


def comparable(results: List[Any]) -> List[Any]:
    """Outcomes ((kind, value) pairs) with the values of get_top's C (CPU %)
    and TIME columns blanked: `ps` changes them by itself between two calls
    (C is CPU time over the process's whole life, so it falls as it idles);
    every other byte is kept."""
    return [tuple(re.sub(r"<(C|TIME)>[^<]*</\1>", r"<\1>-</\1>", part)
                  if isinstance(part, str) else part for part in result)
            for result in results]


def ref_of(xs: Any, vm: labctl.VM) -> str:
    return str(xs.VM.get_by_uuid(vm.uuid))


def set_key(xs: Any, vm: labctl.VM, key: str, value: str) -> None:
    ref = ref_of(xs, vm)
    xs.VM.remove_from_other_config(ref, key)
    xs.VM.add_to_other_config(ref, key, value)


def other_config(xs: Any, vm: labctl.VM) -> Dict[str, str]:
    return dict(xs.VM.get_other_config(ref_of(xs, vm)))

def ps_entries(xml_text: str) -> List[Dict[str, str]]:
    """docker_ps as XenCenter reads it: every `entry`, its direct children's text."""
    entries = []
    for entry in xml.dom.minidom.parseString(xml_text).getElementsByTagName("entry"):
        fields: Dict[str, str] = {}
        for child in entry.childNodes:
            if child.nodeType == child.ELEMENT_NODE and child.tagName not in fields:
                fields[child.tagName] = "".join(
                    t.data for t in child.childNodes if t.nodeType == t.TEXT_NODE)
        entries.append(fields)
    return entries

def published(xs: Any, vm: labctl.VM) -> Optional[Dict[str, tuple]]:
    """id -> (name, status) from the VM's docker_ps, None without one."""
    text = other_config(xs, vm).get("docker_ps")
    if text is None:
        return None
    return {e["id"]: (e["names"], e["status"]) for e in ps_entries(text)}

def in_guest(lab: labctl.Lab, vm: labctl.VM) -> Dict[str, tuple]:
    """id -> (name, normalised status) as the guest's Docker says."""
    out = lab.exec(vm.name, ["docker", "ps", "-a", "--no-trunc",
                             "--format", "{{.ID}}\t{{.Names}}\t{{.Status}}"]).stdout
    result = {}
    for line in out.splitlines():
        cid, name, status = line.split("\t")
        result[cid] = (name, normalize_status(status))
    return result
