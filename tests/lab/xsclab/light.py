"""Light guests: many cheap VMs for scale runs of the monitor (bench/monitor).

A full guest costs a dockerd (~100 MB); a light guest costs an address, a
unix socket and a few kilobytes of state. All light guests of a lab share:

* one network namespace `xscl-F` (F: the lab's first full guest number, so
  concurrent labs never collide), veth `xscl-hF` (root side, 10.201.F.254/24)
  / `xscl-vF`, and one address per guest, 10.201.F.K (K = 1..250): outside
  the full guests' 10.200.I.0/24;
* one sshd listening on port 22 of every address, with the pool key authorised
  for the lab user and one host key; a ForceCommand sends Docker's bridge
  command (`docker system dial-stdio`, socat, ncat: whatever the client asked)
  to the engine socket of the address the client connected to, and runs any
  other command with /bin/sh;
* one engine process (`python -m xsclab.light engine`): an asyncio server, one
  unix socket per guest (`light/engines/10.201.F.K.sock`), each a separate
  engine speaking the subset of the Docker API xscontainer uses (/_ping,
  /version, /info, /containers/json, inspect, create, start, stop, kill, remove,
  and a streaming /events), plus `POST /light/burst?count=N&prefix=P&gap=S` to
  start N containers from inside the engine (create then start, S seconds
  apart) and `POST /light/run?name=N` (create, then start 0.2 s later, as
  `docker run` does).

Each light guest is a VM in the simulator: a clone of the CoreOS template,
started on a host, with guest networks reporting its address and
`xscontainer-username` set, so the monitor watches it once registered
(`xscontainer-monitor=True`). `up(lab, count)` adds guests (again: more);
`teardown()` (run by `lab down`) stops both processes by PID, kills whatever
else runs in the namespace and deletes it.
"""

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
from typing import Any, Dict, List, Optional, Tuple

from . import labenv, labkeys, procs, rig

MAX_LIGHT = 250
SSH_NAME = "xsc-light"
BRIDGE_SCRIPT = """#!/bin/sh
# ForceCommand of the light guests' sshd: the Docker bridge to this address's engine
addr=$(echo "$SSH_CONNECTION" | cut -d' ' -f3)
case "$SSH_ORIGINAL_COMMAND" in
  *dial-stdio*|*socat*|*ncat*) exec socat - UNIX-CONNECT:{engines}/"$addr".sock ;;
  "") echo "light guest $addr" ;;
  *) exec /bin/sh -c "$SSH_ORIGINAL_COMMAND" ;;
esac
"""


def light_dir() -> str:
    return os.path.join(labenv.lab_dir(), "light")


def _state_path() -> str:
    return os.path.join(light_dir(), "light.json")


def _read_state() -> Optional[Dict[str, Any]]:
    try:
        with open(_state_path()) as f:
            return dict(json.load(f))
    except FileNotFoundError:
        return None


def _write_state(state: Dict[str, Any]) -> None:
    tmp = _state_path() + ".tmp"
    with open(tmp, "w") as f:
        json.dump(state, f, indent=1)
    os.replace(tmp, _state_path())


def netns_of(first: int) -> str:
    return "xscl-%d" % first


def address(first: int, k: int) -> str:
    return "10.201.%d.%d" % (first, k)


def engine_socket(addr: str) -> str:
    return os.path.join(light_dir(), "engines", addr + ".sock")


class LightVM:
    """One light guest as bench/monitor sees it."""

    def __init__(self, data: Dict[str, Any]) -> None:
        self.uuid: str = data["uuid"]
        self.name: str = data["name"]
        self.ip: str = data["ip"]
        self.socket: str = data["socket"]

    def request(self, method: str, path: str, timeout: float = 10) -> Tuple[int, bytes]:
        conn = _UnixHTTP(self.socket, timeout)
        try:
            conn.request(method, path)
            resp = conn.getresponse()
            return resp.status, resp.read(1 << 22)
        finally:
            conn.close()

    def run(self, name: str) -> None:
        """What `docker run -d` does to the engine: create, then start."""
        status, body = self.request("POST", "/light/run?name=" + urllib.parse.quote(name))
        if status != 200:
            raise RuntimeError("light run %s: %s %r" % (name, status, body[:200]))

    def burst(self, count: int, prefix: str, gap: float = 0.02) -> None:
        status, body = self.request(
            "POST", "/light/burst?count=%d&prefix=%s&gap=%g" % (count, prefix, gap), timeout=60)
        if status != 200:
            raise RuntimeError("light burst: %s %r" % (status, body[:200]))

    def names(self) -> Dict[str, str]:
        """Container name -> state, as the engine holds them."""
        _status, body = self.request("GET", "/containers/json?all=1")
        return {c["Names"][0].lstrip("/"): c["State"] for c in json.loads(body.decode())}


class _UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("light", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def vms() -> List[LightVM]:
    state = _read_state()
    return [LightVM(v) for v in (state or {}).get("vms", [])]


# --- up and down ----------------------------------------------------------------------


def _sshd_config(first: int, keys: str) -> str:
    d = light_dir()
    return "\n".join([
        "ListenAddress 0.0.0.0:22",
        "HostKey %s" % keys,
        "PidFile %s" % os.path.join(d, "sshd.pidfile"),
        "UsePAM no",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin no",
        "StrictModes no",
        "AuthorizedKeysFile %s" % os.path.join(d, "authorized_keys"),
        "ForceCommand %s" % os.path.join(d, "bridge"),
        "MaxStartups 1000:30:2000",
        "MaxSessions 100",
        "PrintMotd no",
        "UseDNS no",
        "",
    ])


def _start(first: int, lab: Any) -> Dict[str, Any]:
    """Namespace, sshd and engine for this lab's light guests (none yet)."""
    d = light_dir()
    os.makedirs(os.path.join(d, "engines"), exist_ok=True)
    for path in (labenv.lab_dir(), d, os.path.join(d, "engines")):
        os.chmod(path, 0o755)
    ns, host_if, guest_if = netns_of(first), "xscl-h%d" % first, "xscl-v%d" % first
    state = {"first": first, "netns": ns, "host_if": host_if, "guest_if": guest_if, "vms": []}
    _write_state(state)  # teardown works from it, also for a half-started one
    rig.run(["ip", "-batch", "-"], input="\n".join([
        "netns add %s" % ns,
        "link add %s type veth peer name %s netns %s" % (host_if, guest_if, ns),
        "addr add 10.201.%d.254/24 dev %s" % (first, host_if),
        "link set %s up" % host_if,
    ]) + "\n")
    rig.run(["ip", "-n", ns, "-batch", "-"], input="link set %s up\nlink set lo up\n" % guest_if)
    key = labkeys.host_key(os.path.join(labenv.lab_dir(), "keys"), SSH_NAME)
    shutil.copyfile(key, os.path.join(d, "host_rsa"))
    os.chmod(os.path.join(d, "host_rsa"), 0o600)
    shutil.copyfile(key + ".pub", os.path.join(d, "host_rsa.pub"))
    shutil.copyfile(lab.pool_key["public"], os.path.join(d, "authorized_keys"))
    os.chmod(os.path.join(d, "authorized_keys"), 0o644)
    with open(os.path.join(d, "bridge"), "w") as f:
        f.write(BRIDGE_SCRIPT.format(engines=os.path.join(d, "engines")))
    os.chmod(os.path.join(d, "bridge"), 0o755)
    with open(os.path.join(d, "sshd_config"), "w") as f:
        f.write(_sshd_config(first, os.path.join(d, "host_rsa")))
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation dir
    enter = ["nsenter", "--net=/run/netns/%s" % ns]
    env = {"PATH": rig.GUEST_PATH, "HOME": "/root", "LANG": "C.UTF-8"}
    procs.spawn([*enter, rig.SSHD, "-D", "-e", "-f", os.path.join(d, "sshd_config")],
                os.path.join(d, "sshd.log"), os.path.join(d, "sshd.pid"), env=env)
    lab_path = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    procs.spawn([sys.executable, "-m", "xsclab.light", "engine", "--dir", d],
                os.path.join(d, "engine.log"), os.path.join(d, "engine.pid"),
                env={**env, "PYTHONPATH": lab_path, "XSC_LAB_DIR": labenv.lab_dir()})
    return state


def up(lab: Any, count: int, host: Optional[str] = None) -> List[LightVM]:
    """Add `count` light guests (VMs in the simulator, running on `host`, the
    first host by default); returns all of them."""
    first = min(int(v.name.replace("xsc-vm", "")) for v in lab.vms)
    state = _read_state()
    if state is None:
        state = _start(first, lab)
    have = len(state["vms"])
    if count <= 0:
        return vms()
    if have + count > MAX_LIGHT:
        raise ValueError("at most %d light guests" % MAX_LIGHT)
    host_uuid = host or lab.hosts[0].uuid
    ns = state["netns"]
    new = [address(first, k) for k in range(have + 1, have + count + 1)]
    rig.run(["ip", "-n", ns, "-batch", "-"], input="".join(
        "addr add %s/24 dev %s\n" % (a, state["guest_if"]) for a in new))
    with lab.xapi_session() as s:
        x = s.xenapi
        template = x.VM.get_by_name_label("CoreOS")[0]
        host_ref = x.host.get_by_uuid(host_uuid)
        for addr in new:
            k = int(addr.rsplit(".", 1)[1])
            name = "xsc-light%d-%d" % (first, k)
            ref = x.VM.clone(template, name)
            x.VM.set_is_a_template(ref, False)
            x.VM.add_to_other_config(ref, "xscontainer-username", "xscuser")
            x.VM.start_on(ref, host_ref, False, False)
            x.lab.VM.set_guest_networks(ref, {"0/ip": addr, "0/ipv4/0": addr})
            state["vms"].append({"uuid": x.VM.get_uuid(ref), "name": name, "ip": addr,
                                 "socket": engine_socket(addr)})
    _write_state(state)
    deadline = time.monotonic() + 30
    while not all(os.path.exists(engine_socket(a)) for a in new) or not rig._connects(
            new[-1], 22, b"SSH-"):
        if time.monotonic() > deadline:
            raise rig.RigError("light guests did not come up; see %s" % light_dir())
        time.sleep(0.05)
    return vms()


def teardown() -> None:
    """Stop this lab's light guests (if any): engine and sshd by PID, whatever
    else runs in their namespace, the namespace and its veth."""
    state = _read_state()
    if state is None:
        return
    d = light_dir()
    procs.stop_recorded(os.path.join(d, "engine.pid"), timeout=5)
    procs.stop_recorded(os.path.join(d, "sshd.pid"), timeout=5)
    ns_path = os.path.join("/run/netns", state["netns"])
    inode = procs.ns_inode(ns_path)
    if inode is not None:
        procs.kill_all(procs.in_namespaces("net", {inode}))
    if os.path.exists(ns_path):
        rig.run(["ip", "netns", "delete", state["netns"]])
    deadline = time.monotonic() + 3
    host_if = os.path.join("/sys/class/net", state["host_if"])
    while os.path.exists(host_if) and time.monotonic() < deadline:
        time.sleep(0.02)
    if os.path.exists(host_if):
        subprocess.run(["ip", "link", "delete", state["host_if"]], stderr=subprocess.DEVNULL,
                       timeout=10)
    shutil.rmtree(d, ignore_errors=True)


# --- the engine -------------------------------------------------------------------------

API_VERSION = "1.43"
ENGINE_VERSION = "24.0.0-xsclab-light"
IMAGE = "xsc-test/busybox:latest"
IMAGE_ID = "sha256:" + "0" * 64


def _status_text(c: Dict[str, Any]) -> str:
    if c["State"] == "running":
        return "Up Less than a second"
    if c["State"] == "exited":
        return "Exited (%d) Less than a second ago" % c["ExitCode"]
    return "Created"


class Engine:
    """One light guest's engine: containers and event subscribers."""

    def __init__(self, addr: str) -> None:
        self.addr = addr
        self.engine_id = "LIGHT:" + addr
        self.containers: Dict[str, Dict[str, Any]] = {}
        self.subscribers: List["asyncio.Queue[bytes]"] = []

    def emit(self, action: str, c: Dict[str, Any]) -> None:
        now = time.time()
        name = c["Name"]
        event = {
            "status": action, "id": c["Id"], "from": IMAGE,
            "Type": "container", "Action": action,
            "Actor": {"ID": c["Id"], "Attributes": {"image": IMAGE, "name": name}},
            "scope": "local", "time": int(now), "timeNano": int(now * 1e9),
        }
        line = json.dumps(event).encode() + b"\n"
        for q in self.subscribers:
            q.put_nowait(line)

    def find(self, ref: str) -> Optional[Dict[str, Any]]:
        if ref in self.containers:
            return self.containers[ref]
        for c in self.containers.values():
            if c["Name"] == ref or c["Id"].startswith(ref):
                return c
        return None

    def create(self, name: str) -> Dict[str, Any]:
        cid = "%064x" % random.getrandbits(256)
        name = name or "light_" + cid[:8]
        c = {"Id": cid, "Name": name, "State": "created", "ExitCode": 0,
             "Created": int(time.time())}
        self.containers[cid] = c
        self.emit("create", c)
        return c

    def set_state(self, c: Dict[str, Any], state: str) -> None:
        if state == "running" and c["State"] != "running":
            c["State"] = "running"
            self.emit("start", c)
        elif state == "exited" and c["State"] == "running":
            self.emit("kill", c)
            c["State"], c["ExitCode"] = "exited", 137
            self.emit("die", c)

    def ps_entry(self, c: Dict[str, Any]) -> Dict[str, Any]:
        return {
            "Id": c["Id"], "Names": ["/" + c["Name"]], "Image": IMAGE, "ImageID": IMAGE_ID,
            "Command": "sleep 1d", "Created": c["Created"], "Ports": [], "Labels": {},
            "State": c["State"], "Status": _status_text(c),
            "HostConfig": {"NetworkMode": "default"}, "NetworkSettings": {"Networks": {}},
            "Mounts": [],
        }

    def inspect(self, c: Dict[str, Any]) -> Dict[str, Any]:
        return {
            "Id": c["Id"], "Name": "/" + c["Name"], "Image": IMAGE_ID, "Path": "sleep",
            "Args": ["1d"], "Created": "2026-01-01T00:00:00Z",
            "State": {"Status": c["State"], "Running": c["State"] == "running",
                      "Paused": False, "ExitCode": c["ExitCode"]},
            "Config": {"Image": IMAGE, "Cmd": ["sleep", "1d"], "Labels": {}},
            "HostConfig": {}, "NetworkSettings": {}, "Mounts": [],
        }

    def info(self) -> Dict[str, Any]:
        states = [c["State"] for c in self.containers.values()]
        return {
            "ID": self.engine_id, "Containers": len(states),
            "ContainersRunning": states.count("running"), "ContainersPaused": 0,
            "ContainersStopped": len(states) - states.count("running"), "Images": 1,
            "Driver": "light", "OSType": "linux", "Architecture": "x86_64", "NCPU": 1,
            "MemTotal": 1 << 30, "Name": "light-" + self.addr.replace(".", "-"),
            "OperatingSystem": "xscontainer lab light guest", "KernelVersion": "6.0.0",
            "ServerVersion": ENGINE_VERSION, "SystemTime": time.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }

    @staticmethod
    def version() -> Dict[str, Any]:
        return {
            "Version": ENGINE_VERSION, "ApiVersion": API_VERSION, "MinAPIVersion": "1.12",
            "Os": "linux", "Arch": "amd64", "KernelVersion": "6.0.0", "GitCommit": "light",
            "GoVersion": "none", "Components": [{"Name": "Engine", "Version": ENGINE_VERSION}],
        }


async def _respond(writer: asyncio.StreamWriter, status: int, body: Any = None,
                   head: bool = False) -> None:
    reason = {200: "OK", 201: "Created", 204: "No Content", 304: "Not Modified",
              404: "Not Found", 400: "Bad Request"}.get(status, "Error")
    if body is None:
        data = b""
    elif isinstance(body, bytes):
        data = body
    else:
        data = json.dumps(body).encode()
    ctype = "text/plain" if isinstance(body, bytes) else "application/json"
    writer.write(("HTTP/1.1 %d %s\r\nContent-Type: %s\r\nApi-Version: %s\r\n"
                  "Server: Docker/%s (linux)\r\nContent-Length: %d\r\n\r\n" % (
                      status, reason, ctype, API_VERSION, ENGINE_VERSION, len(data))).encode())
    if not head:
        writer.write(data)
    await writer.drain()


async def _events(engine: Engine, writer: asyncio.StreamWriter) -> None:
    queue: "asyncio.Queue[bytes]" = asyncio.Queue()
    engine.subscribers.append(queue)
    try:
        writer.write(("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nApi-Version: %s\r\n"
                      "Transfer-Encoding: chunked\r\n\r\n" % API_VERSION).encode())
        await writer.drain()
        while True:
            line = await queue.get()
            writer.write(b"%x\r\n%s\r\n" % (len(line), line))
            await writer.drain()
    finally:
        engine.subscribers.remove(queue)


async def _handle(engine: Engine, reader: asyncio.StreamReader,
                  writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                return
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = [*lines[0].split(" "), "", ""][:3]
            headers = {k.strip().lower(): v.strip() for k, _, v in
                       (h.partition(":") for h in lines[1:] if h)}
            length = int(headers.get("content-length") or 0)
            if length:
                await reader.readexactly(length)
            url = urllib.parse.urlsplit(target)
            path = url.path
            if path.startswith("/v") and "/" in path[1:]:
                path = "/" + path.split("/", 2)[2]
            query = dict(urllib.parse.parse_qsl(url.query))
            if path == "/events":
                await _events(engine, writer)
                return
            await _route(engine, writer, method, path, query)
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def _route(engine: Engine, writer: asyncio.StreamWriter, method: str, path: str,
                 query: Dict[str, str]) -> None:
    parts = path.strip("/").split("/")
    if path == "/_ping":
        await _respond(writer, 200, b"OK", head=method == "HEAD")
    elif path == "/version":
        await _respond(writer, 200, engine.version())
    elif path == "/info":
        await _respond(writer, 200, engine.info())
    elif path == "/containers/json":
        every = query.get("all") in ("1", "true", "True")
        await _respond(writer, 200, [engine.ps_entry(c) for c in engine.containers.values()
                                     if every or c["State"] == "running"])
    elif path == "/containers/create" and method == "POST":
        created = engine.create(query.get("name", ""))
        await _respond(writer, 201, {"Id": created["Id"], "Warnings": []})
    elif path == "/light/run" and method == "POST":
        created = engine.create(query.get("name", ""))
        await asyncio.sleep(0.2)
        engine.set_state(created, "running")
        await _respond(writer, 200, {"Id": created["Id"]})
    elif path == "/light/burst" and method == "POST":
        gap = float(query.get("gap", "0.02"))
        made = [engine.create("%s%d" % (query.get("prefix", "b"), i))
                for i in range(int(query.get("count", "50")))]
        for one in made:
            await asyncio.sleep(gap)
            engine.set_state(one, "running")
        await _respond(writer, 200, {"count": len(made)})
    elif len(parts) >= 2 and parts[0] == "containers":
        c = engine.find(parts[1])
        if c is None:
            await _respond(writer, 404, {"message": "No such container: %s" % parts[1]})
        elif method == "DELETE" and len(parts) == 2:
            engine.set_state(c, "exited")
            del engine.containers[c["Id"]]
            engine.emit("destroy", c)
            await _respond(writer, 204)
        elif len(parts) == 3 and parts[2] == "json":
            await _respond(writer, 200, engine.inspect(c))
        elif len(parts) == 3 and parts[2] == "start":
            running = c["State"] == "running"
            engine.set_state(c, "running")
            await _respond(writer, 304 if running else 204)
        elif len(parts) == 3 and parts[2] in ("stop", "kill"):
            engine.set_state(c, "exited")
            await _respond(writer, 204)
        else:
            await _respond(writer, 404, {"message": "not served by a light guest"})
    else:
        await _respond(writer, 404, {"message": "page not found"})


def _handler(engine: Engine) -> Any:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _handle(engine, reader, writer)
    return handle


async def _serve(directory: str) -> None:
    engines_dir = os.path.join(directory, "engines")
    served: Dict[str, Any] = {}
    while True:  # addresses are added while running: a socket for each new one
        vms_now = (_read_state() or {}).get("vms", [])
        for vm in vms_now:
            addr = vm["ip"]
            if addr in served:
                continue
            engine = Engine(addr)
            path = os.path.join(engines_dir, addr + ".sock")
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            served[addr] = await asyncio.start_unix_server(_handler(engine), path=path)
            os.chmod(path, 0o666)
        await asyncio.sleep(0.2)


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m xsclab.light")
    sub = parser.add_subparsers(dest="verb", required=True)
    engine = sub.add_parser("engine", help="serve the light guests' engines (lab internal)")
    engine.add_argument("--dir", required=True)
    args = parser.parse_args(argv)
    if args.verb == "engine":
        asyncio.run(_serve(args.dir))


if __name__ == "__main__":
    main()
