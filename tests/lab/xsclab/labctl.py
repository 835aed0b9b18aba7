"""The lab as a Python API: bring it up and down, reach its guests, its
simulated XAPI and its hosts' dom0 environment. `tests/lab/lab` is the command
line over this module; tests, benchmarks and the demo use `Lab`.

A lab lives in labenv.lab_dir() (XSC_LAB_DIR, default <repo>/.lab):

  plan.json       written first by `up`, removed last by `down`: what the lab
                  may have created (guests I = first..first+count-1), so `down`
                  also cleans a half-up lab
  lab.json        the lab description (HACKING.md), written once the lab is up
  seed.json xapi-state.json xapi.sock xapi.url xapi.pid xapi.log   the simulator
  xapi.proc       the lab's record of the simulator process (procs.py)
  hosts/<uuid>/   each host's dom0 files (labenv.ensure_host_dirs)
  srs/            the simulator's VDI files
  vms/<name>/     each guest (rig.py)
  keys/ cache/    cached key material and image tar, kept across labs
"""

import contextlib
import fcntl
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import time
import uuid
import xmlrpc.client
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence

import XenAPI

from . import engines, labenv, labkeys, light, procs, rig

LAB_USER = "xscuser"
ROOT_PASSWORD = "xscontainer-lab"
XAPI_TIMEOUT = 30.0
XAPI_READY_TIMEOUT = 20.0
MAX_GUEST = 254  # the guest number is the third octet of 10.200.I.2


class LabError(Exception):
    """The lab cannot do what was asked; the message says why and what to do."""


def log(msg: str) -> None:
    """Progress goes to stderr: stdout of `lab up` is the lab description only."""
    sys.stderr.write("lab: %s\n" % msg)
    sys.stderr.flush()


# --- where things are ------------------------------------------------------------


def _path(*parts: str) -> str:
    return os.path.join(labenv.lab_dir(), *parts)


def _plan_path() -> str:
    return _path("plan.json")


def _read_json(path: str) -> Optional[Dict[str, Any]]:
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        return None
    assert isinstance(data, dict)
    return data


def _write_json(path: str, data: Mapping[str, Any]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def _guests(plan: Mapping[str, Any]) -> List[rig.Guest]:
    first = int(plan["first"])
    return [rig.Guest(i, labenv.lab_dir()) for i in range(first, first + int(plan["count"]))]


def _guest_of_name(name: str) -> rig.Guest:
    return rig.Guest(int(name[len("xsc-vm") :]), labenv.lab_dir())


# --- records of lab.json -----------------------------------------------------------


@dataclass(frozen=True)
class Host:
    uuid: str
    name: str
    dir: str


@dataclass(frozen=True)
class SR:
    uuid: str
    name: str
    shared: bool
    hosts: List[str]


@dataclass(frozen=True)
class VM:
    uuid: str
    name: str
    ip: str
    username: str
    host: str
    netns: str
    docker_socket: str
    ssh_host_key: str
    tls: Dict[str, str]
    engine: str = engines.DEFAULT
    engine_socket: str = "/var/run/docker.sock"


# --- the XAPI simulator ------------------------------------------------------------


def _xapi_record() -> str:
    return _path("xapi.proc")


def _xapi_argv(port: int) -> List[str]:
    return [
        sys.executable,
        "-m",
        "xsclab.xapisim",
        "serve",
        "--state",
        _path("xapi-state.json"),
        "--seed",
        _path("seed.json"),
        "--socket",
        labenv.xapi_socket(),
        "--port",
        str(port),
        "--url-file",
        _path("xapi.url"),
        "--pidfile",
        _path("xapi.pid"),
    ]


def _socket_accepts(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(1)
        try:
            s.connect(path)
        except OSError:
            return False
    return True


def _start_xapi(port: int = 0) -> procs.Proc:
    """Start the simulator (state kept in xapi-state.json; the seed is only
    read when there is no state yet) and wait until it serves."""
    url_file = _path("xapi.url")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(url_file)
    env = dict(os.environ, PYTHONPATH=labenv.LAB_CODE_DIR)
    proc = procs.spawn(_xapi_argv(port), _path("xapi.log"), _xapi_record(), env=env)
    deadline = time.monotonic() + XAPI_READY_TIMEOUT
    while time.monotonic() < deadline:
        if os.path.exists(url_file) and _socket_accepts(labenv.xapi_socket()):
            return proc
        if not proc.running():
            procs.wait_gone([proc], 0)
            break
        time.sleep(0.02)
    else:
        procs.stop([proc], 5)
    with open(_path("xapi.log"), errors="replace") as f:
        tail = "".join(f.readlines()[-15:]).strip()
    raise LabError("the XAPI simulator did not start (see %s):\n%s" % (_path("xapi.log"), tail))


def _xapi_url() -> str:
    with open(_path("xapi.url")) as f:
        return f.read().strip()


def _stop_xapi() -> None:
    procs.stop_recorded(_xapi_record(), timeout=10)


# --- seed and description ------------------------------------------------------------


def _uuid() -> str:
    return str(uuid.uuid4())


def _seed(
    guests: List[rig.Guest], n_hosts: int, pool_private: str, pool_public: str
) -> Dict[str, Any]:
    """The pool the simulator starts from: hosts with a local SR each, one
    shared SR, the usual two networks, and the pool key stored as secrets
    referenced from the pool's other-config, as after earlier xscontainer use."""
    hosts = [
        {
            "uuid": _uuid(),
            "name_label": "xsc-host%d" % (i + 1),
            "address": "127.0.0.1",
            "control_domain_uuid": _uuid(),
        }
        for i in range(n_hosts)
    ]
    host_uuids = [h["uuid"] for h in hosts]
    local_srs = [
        {
            "uuid": _uuid(),
            "name_label": "Local storage %s" % h["name_label"],
            "type": "ext",
            "shared": False,
            "hosts": [h["uuid"]],
        }
        for h in hosts
    ]
    shared_sr = {
        "uuid": _uuid(),
        "name_label": "Shared NFS storage",
        "type": "nfs",
        "shared": True,
        "hosts": host_uuids,
    }
    private_secret = {"uuid": _uuid(), "value": pool_private}
    public_secret = {"uuid": _uuid(), "value": pool_public}
    vms = []
    for n, g in enumerate(guests):
        vifs = [{"network": "xenbr0", "device": "0"}]
        if n == len(guests) - 1:  # one VM with a VIF on the host-internal network
            vifs.append({"network": "xenapi", "device": "1"})
        vms.append(
            {
                "uuid": _uuid(),
                "name_label": g.name,
                "host": host_uuids[n % n_hosts],
                "power_state": "Running",
                "networks": {"0/ip": g.ip, "0/ipv4/0": g.ip},
                "other_config": {"xscontainer-username": LAB_USER},
                "vifs": vifs,
                "disk_sr": local_srs[n % n_hosts]["uuid"],
                "cd": True,
            }
        )
    return {
        "pool": {
            "uuid": _uuid(),
            "name_label": "xsc-lab",
            "other_config": {
                "xscontainer-private-secret-uuid": private_secret["uuid"],
                "xscontainer-public-secret-uuid": public_secret["uuid"],
            },
        },
        "root_password": ROOT_PASSWORD,
        "hosts": hosts,
        "srs": [*local_srs, shared_sr],
        "default_sr": shared_sr["uuid"],
        "networks": [
            {
                "uuid": _uuid(),
                "name_label": "Pool-wide network associated with eth0",
                "bridge": "xenbr0",
            },
            {
                "uuid": _uuid(),
                "name_label": "Host internal management network",
                "bridge": "xenapi",
                "other_config": {"is_host_internal_management_network": "true"},
            },
        ],
        "secrets": [private_secret, public_secret],
        "vms": vms,
        "templates": [{"uuid": _uuid(), "name_label": "CoreOS"}],
    }


def _description(seed: Mapping[str, Any], xapi: procs.Proc) -> Dict[str, Any]:
    """lab.json, in the format HACKING.md documents."""
    private, public = labkeys.pool_key(_path("keys"))
    vms = []
    for vm in seed["vms"]:
        g = _guest_of_name(vm["name_label"])
        vms.append(
            {
                "uuid": vm["uuid"],
                "name": g.name,
                "ip": g.ip,
                "username": LAB_USER,
                "host": vm["host"],
                "netns": g.netns,
                "docker_socket": g.docker_socket,
                "ssh_host_key": g.host_key_pub,
                "tls": {
                    "ca": g.tls("ca"),
                    "client_cert": g.tls("client-cert"),
                    "client_key": g.tls("client-key"),
                },
                "engine": g.engine.name,
                "engine_socket": rig.engine_socket(g),
            }
        )
    used = sorted({vm["engine"] for vm in vms})
    return {
        "lab_dir": labenv.lab_dir(),
        "xapi": {
            "socket": labenv.xapi_socket(),
            "url": _xapi_url(),
            "pid": xapi.pid,
            "username": "root",
            "password": ROOT_PASSWORD,
        },
        "pool": {"uuid": seed["pool"]["uuid"], "master": seed["hosts"][0]["uuid"]},
        "hosts": [
            {"uuid": h["uuid"], "name": h["name_label"], "dir": labenv.host_dir(h["uuid"])}
            for h in seed["hosts"]
        ],
        "srs": [
            {"uuid": s["uuid"], "name": s["name_label"], "shared": s["shared"], "hosts": s["hosts"]}
            for s in seed["srs"]
        ],
        "pool_key": {"private": private, "public": public},
        "vms": vms,
        "engines": {name: engines.get(name).versions() for name in used},
        "newest_docker": engines.newest_docker(),
    }


# --- up and down ---------------------------------------------------------------------


def preflight(guests: List[rig.Guest]) -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, mounts, daemons): run it as root")
    missing = rig.missing_tools()
    if missing:
        raise LabError("missing %s: run `make deps` (or tools/bootstrap apt)" % ", ".join(missing))
    try:
        rig.run(["ip", "netns", "list"], timeout=10)
    except rig.RigError as e:
        raise LabError("network namespaces do not work here: %s" % e) from e
    if guests[-1].index > MAX_GUEST:
        raise LabError("guest numbers go up to %d (10.200.I.2)" % MAX_GUEST)
    stale = rig.abandoned(guests)
    if stale:
        log(
            "removing network namespaces %s: left by a lab that was never taken down "
            "and whose processes are all gone" % ", ".join(g.netns for g in stale)
        )
        rig.delete_namespaces(stale)  # a same-named veth that stays: reported below
    taken = rig.conflicts(guests)
    if taken:
        raise LabError(
            "%s: another lab (XSC_LAB_DIR) or something else uses these names; "
            "choose other guest numbers with --first" % "; ".join(taken)
        )


def _clean_runtime() -> None:
    """Forget the files of an earlier lab (keys/ and cache/ are kept)."""
    for sub in ("vms", "hosts", "srs"):  # srs/: the simulator's VDI files
        shutil.rmtree(_path(sub), ignore_errors=True)
    # xapi*: the simulator's state (and journal), socket, url, pid, log; our record
    for name in os.listdir(labenv.lab_dir()):
        if name in ("lab.json", "seed.json") or name.startswith("xapi"):
            os.unlink(_path(name))


def _up_guest(
    g: rig.Guest, user: Any, pool_public: str, tar: "Future[str]", engine: str
) -> None:
    t0 = time.monotonic()
    os.makedirs(g.dir)
    rig.configure_guest_network(g)
    rig.prepare(g, user, pool_public, _path("keys"), engine)
    rig.start_holder(g)
    rig.start_daemon(g, "sshd")
    rig.start_daemon(g, "dockerd", os.environ.get("XSC_LAB_STORAGE_DRIVER") or "overlay2")
    rig.import_image(g, tar.result(), _path("cache", "docker-cli"))
    log("%s up at %s, %s (%.2f s)" % (g.name, g.ip, engine, time.monotonic() - t0))


@contextlib.contextmanager
def _locked(timeout: float = 300) -> Iterator[None]:
    """Serialise the commands that change a lab (up, down, service, rekey,
    xapi): several people and test runs may share one lab folder."""
    os.makedirs(labenv.lab_dir(), exist_ok=True)
    fd = os.open(_path("lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
                    raise LabError(
                        "another lab command (pid %s) holds %s" % (holder, _path("lock"))
                    ) from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, b"%d\n" % os.getpid(), 0)
        yield
    finally:
        os.close(fd)


def fill_cache(names: Sequence[str] = ()) -> Dict[str, Dict[str, str]]:
    """Fetch the newest packages of the engines (all by default) into the
    kept cache; {engine: {package/suite: version}}."""
    try:
        return engines.fill([engines.get(n).name for n in names or engines.ENGINES])
    except engines.EngineError as e:
        raise LabError(str(e)) from e


def up(
    vms: int = 2,
    hosts: int = 2,
    first: int = 1,
    replace: bool = False,
    engine_spec: str = "",
) -> "Lab":
    """Bring a lab up from nothing; on failure take down what was started.
    engine_spec: one engine for every guest or one per guest (engines.parse)."""
    if vms < 1 or hosts < 1 or first < 1:
        raise LabError("--vms, --hosts and --first must be at least 1")
    try:
        names = engines.parse(engine_spec, vms)
        for name in sorted(set(names)):
            t0 = time.monotonic()
            engines.ensure(engines.get(name))
            took = time.monotonic() - t0
            if took > 1:
                log("engine %s fetched into %s (%.1f s)" % (name, engines.CACHE_DIR, took))
    except engines.EngineError as e:
        raise LabError(str(e)) from e
    guests = [rig.Guest(i, labenv.lab_dir()) for i in range(first, first + vms)]
    with _locked():
        if os.path.exists(_plan_path()):
            if not replace:
                raise LabError(
                    "a lab is already up in %s: `tests/lab/lab down` first, or `up --replace`"
                    % labenv.lab_dir()
                )
            _down()
        preflight(guests)
        _clean_runtime()
        _write_json(
            _plan_path(), {"first": first, "count": vms, "hosts": hosts, "engines": names}
        )
        try:
            _up(guests, hosts, names)
        except BaseException as e:
            log("up failed: %s; taking down what was started" % e)
            _teardown(guests)
            if isinstance(e, (rig.RigError, OSError)):
                raise LabError(str(e)) from e
            raise
    return Lab.load()


def _up(guests: List[rig.Guest], hosts: int, names: List[str]) -> None:
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(guests) + 4) as pool:
        key_f = pool.submit(labkeys.pool_key, _path("keys"))
        tls_f = pool.submit(labkeys.tls_ca, _path("keys", "tls"))
        tar_f = pool.submit(rig.busybox_tar, _path("cache"))
        user = rig.ensure_user(LAB_USER)
        rig.create_network(guests)
        private, public = key_f.result()
        tls_f.result()
        with open(private) as f_priv, open(public) as f_pub:
            seed = _seed(guests, hosts, f_priv.read(), f_pub.read().strip())
        _write_json(_path("seed.json"), seed)
        for h in seed["hosts"]:
            labenv.ensure_host_dirs(h["uuid"], h["control_domain_uuid"])
        xapi_f = pool.submit(_start_xapi)
        guest_fs = [
            pool.submit(_up_guest, g, user, public, tar_f, e) for g, e in zip(guests, names)
        ]
        for f in guest_fs:
            f.result()
        xapi = xapi_f.result()
    _write_json(labenv.lab_json(), _description(seed, xapi))
    log("up: %d VMs on %d hosts in %.2f s" % (len(guests), hosts, time.monotonic() - t0))


def down() -> None:
    """Stop everything the lab started, by PID, delete its namespaces and
    veths, unmount /run/netns if no namespace is left. Idempotent; also cleans
    a half-up lab."""
    with _locked():
        _down()


def _down() -> None:
    t0 = time.monotonic()
    plan = _read_json(_plan_path())
    if plan is None:
        log("down: no lab in %s" % labenv.lab_dir())
        return
    _teardown(_guests(plan))
    log("down in %.2f s" % (time.monotonic() - t0))


def _teardown(guests: List[rig.Guest]) -> None:
    """Stop the simulator and the guests, remove their network; the lab is
    then down (no lab.json, no plan.json). A guest whose namespace another
    lab holds now (it reclaimed what this one left) is that lab's: left alone."""
    mine = []
    for g in guests:
        other = rig.owner(g)
        if other in (None, g.lab_dir):
            mine.append(g)
        else:
            log("%s belongs to the lab in %s now: left alone" % (g.name, other))
    guests = mine
    try:
        with ThreadPoolExecutor(max_workers=len(guests) + 1) as pool:
            futures = [pool.submit(_stop_xapi)] + [pool.submit(rig.teardown, g) for g in guests]
            for f in futures:
                f.result()
        light.teardown()
        rig.delete_network(guests)
    except (rig.RigError, RuntimeError, OSError) as e:
        raise LabError("down failed (run it again; %s):\n%s" % (labenv.lab_dir(), e)) from e
    for path in (labenv.lab_json(), _plan_path()):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def status() -> "tuple[List[str], bool]":
    """What is up, by PID: (lines to show, whether everything runs)."""
    plan = _read_json(_plan_path())
    if plan is None:
        return ["no lab in %s" % labenv.lab_dir()], False
    described = os.path.exists(labenv.lab_json())
    lines = ["lab %s: %s" % (labenv.lab_dir(), "up" if described else "half up (no lab.json)")]
    ok = described

    def show(what: str, proc: Optional[procs.Proc]) -> str:
        nonlocal ok
        ok = ok and proc is not None
        return "%s pid %d" % (what, proc.pid) if proc else "%s STOPPED" % what

    lines.append("  xapi     %s" % show("simulator", procs.running_from(_xapi_record())))
    for g in _guests(plan):
        daemons = [show(d, procs.running_from(g.record(d))) for d in ("holder", *rig.DAEMONS)]
        lines.append("  %-8s %-12s %s" % (g.name, g.ip, ", ".join(daemons)))
    return lines, ok


@dataclass(frozen=True)
class Footprint:
    """What a lab has on the machine: its processes (recorded ones, anything
    in its guests' namespaces and their descendants), namespaces, interfaces."""

    lab_dir: str
    procs: List[procs.Proc]
    netns: List[str]
    interfaces: List[str]

    def left(self) -> List[str]:
        """What of it still exists (after `down`: should be nothing)."""
        found = ["process %d (%s)" % (p.pid, _comm(p.pid)) for p in self.procs if p.running()]
        found += [
            "network namespace %s" % n
            for n in self.netns
            if os.path.exists(os.path.join("/run/netns", n))
        ]
        found += [
            "interface %s" % i
            for i in self.interfaces
            if os.path.exists(os.path.join("/sys/class/net", i))
        ]
        marks = [
            self.lab_dir + "/",
            *("/run/netns/%s " % n for n in self.netns),
            *(" tmpfs-%s " % n for n in self.netns),
        ]
        with open("/proc/self/mountinfo") as f:
            found += ["mount %s" % line.split()[4] for line in f if any(m in line for m in marks)]
        if "/run/netns" in rig.mount_points() and not os.listdir("/run/netns"):
            found.append("mount /run/netns (no namespace left in it)")
        return found


def _comm(pid: int) -> str:
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return "?"


def footprint() -> Footprint:
    plan = _read_json(_plan_path())
    guests = _guests(plan) if plan else []
    records = [_xapi_record()] + [g.record(d) for g in guests for d in ("holder", *rig.DAEMONS)]
    found = {p for p in (procs.running_from(r) for r in records) if p is not None}
    for g in guests:
        holder = procs.running_from(g.record("holder"))
        for kind, path in (
            ("net", os.path.join("/run/netns", g.netns)),
            ("mnt", "/proc/%d/ns/mnt" % holder.pid if holder else ""),
        ):
            inode = procs.ns_inode(path) if path else None
            if inode is not None:
                found.update(p for p in map(procs.of_pid, procs.in_namespaces(kind, {inode})) if p)
    return Footprint(
        labenv.lab_dir(),
        sorted(found, key=lambda p: p.pid),
        [g.netns for g in guests],
        [g.host_if for g in guests],
    )


# --- the lab as tests see it ---------------------------------------------------------


class _TimeoutTransport(xmlrpc.client.Transport):
    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._timeout = timeout

    def make_connection(self, host: Any) -> Any:
        conn = super().make_connection(host)
        conn.timeout = self._timeout
        return conn


class Lab:
    """A lab that is up, as described by its lab.json."""

    def __init__(self, data: Dict[str, Any]) -> None:
        self.data = data
        self.lab_dir: str = data["lab_dir"]
        self.pool_uuid: str = data["pool"]["uuid"]
        self.master: str = data["pool"]["master"]
        self.hosts = [Host(**h) for h in data["hosts"]]
        self.srs = [SR(**s) for s in data["srs"]]
        self.vms = [VM(**v) for v in data["vms"]]
        self.pool_key: Dict[str, str] = data["pool_key"]

    @classmethod
    def load(cls) -> "Lab":
        data = _read_json(labenv.lab_json())
        if data is None:
            raise LabError("no lab is up in %s: run `tests/lab/lab up`" % labenv.lab_dir())
        return cls(data)

    @classmethod
    def up(
        cls,
        vms: int = 2,
        hosts: int = 2,
        first: int = 1,
        replace: bool = False,
        engines: str = "",
    ) -> "Lab":
        return up(vms, hosts, first, replace, engines)

    @staticmethod
    def down() -> None:
        down()

    # guests

    def vm(self, name_or_uuid: str) -> VM:
        for vm in self.vms:
            if name_or_uuid in (vm.name, vm.uuid):
                return vm
        raise LabError(
            "no VM %r in the lab (%s)" % (name_or_uuid, ", ".join(v.name for v in self.vms))
        )

    def host(self, name_or_uuid: Optional[str] = None) -> Host:
        """A host by name or uuid; the pool master by default."""
        for h in self.hosts:
            if name_or_uuid in (h.name, h.uuid) or (name_or_uuid is None and h.uuid == self.master):
                return h
        raise LabError(
            "no host %r in the lab (%s)" % (name_or_uuid, ", ".join(h.name for h in self.hosts))
        )

    def _guest(self, vm: str) -> rig.Guest:
        return _guest_of_name(self.vm(vm).name)

    def exec_argv(
        self, vm: str, argv: Sequence[str], user: Optional[str] = None
    ) -> "tuple[List[str], Dict[str, str]]":
        """(argv, env) that run `argv` inside guest `vm` as `user` (default root)."""
        try:
            return rig.exec_command(self._guest(vm), list(argv), user)
        except (rig.RigError, KeyError) as e:
            raise LabError(str(e)) from e

    def exec(
        self,
        vm: str,
        argv: Sequence[str],
        *,
        user: Optional[str] = None,
        check: bool = True,
        input: Optional[str] = None,
        timeout: float = 60,
    ) -> "subprocess.CompletedProcess[str]":
        """Run `argv` in guest `vm`; stdout and stderr captured as text."""
        cmd, env = self.exec_argv(vm, argv, user)
        return subprocess.run(
            cmd,
            env=env,
            input=input,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            universal_newlines=True,
            timeout=timeout,
            check=check,
        )

    def docker(self, vm: str, timeout: float = 30) -> Any:
        """A docker SDK client on the guest engine's root-side socket."""
        import docker  # noqa: PLC0415 (0.6 s to import: only for those who use it)

        return docker.DockerClient(base_url="unix://" + self.vm(vm).docker_socket, timeout=timeout)

    def service(self, vm: str, name: str, action: str) -> str:
        """stop|start|restart|status of sshd or dockerd in guest `vm`; returns
        the status ("running (pid N)" or "stopped")."""
        if name not in rig.DAEMONS:
            raise LabError("service must be one of %s" % ", ".join(rig.DAEMONS))
        if action not in ("stop", "start", "restart", "status"):
            raise LabError("action must be stop, start, restart or status")
        g = self._guest(vm)
        with _locked():
            try:
                if action in ("stop", "restart"):
                    rig.stop_daemon(g, name)
                if action in ("start", "restart") and rig.daemon_status(g, name) is None:
                    rig.start_daemon(g, name)
            except rig.RigError as e:
                raise LabError(str(e)) from e
        proc = rig.daemon_status(g, name)
        return "running (pid %d)" % proc.pid if proc else "stopped"

    def rekey(self, vm: str) -> None:
        """Give the guest's sshd a new host key (lab.json's ssh_host_key file
        changes) and restart it."""
        with _locked():
            try:
                rig.rekey(self._guest(vm))
            except rig.RigError as e:
                raise LabError(str(e)) from e

    # XAPI

    def xapi(self, timeout: float = XAPI_TIMEOUT) -> Any:
        """A logged-in XenAPI.Session over TCP; log out when done, or use
        xapi_session()."""
        session = XenAPI.Session(self.data["xapi"]["url"], transport=_TimeoutTransport(timeout))
        session.xenapi.login_with_password(
            self.data["xapi"]["username"], self.data["xapi"]["password"], "1.0", "xscontainer-lab"
        )
        return session

    @contextlib.contextmanager
    def xapi_session(self, timeout: float = XAPI_TIMEOUT) -> Iterator[Any]:
        session = self.xapi(timeout)
        try:
            yield session
        finally:
            session.xenapi.session.logout()

    def call_plugin(
        self, host_uuid: str, fn: str, args: Mapping[str, str], plugin: str = "xscontainer"
    ) -> str:
        """host.call_plugin as a client makes it; raises XenAPI.Failure."""
        with self.xapi_session() as s:
            ref = s.xenapi.host.get_by_uuid(host_uuid)
            result = s.xenapi.host.call_plugin(ref, plugin, fn, dict(args))
        assert isinstance(result, str)
        return result

    def xapi_status(self) -> Optional[procs.Proc]:
        return procs.running_from(_xapi_record())

    def xapi_stop(self) -> None:
        with _locked():
            _stop_xapi()

    def xapi_start(self) -> None:
        """Start the simulator (if stopped) keeping its state, on its former
        port so that clients keep their URL."""
        with _locked():
            self._xapi_start()

    def xapi_restart(self) -> None:
        with _locked():
            _stop_xapi()
            self._xapi_start()

    def _xapi_start(self) -> None:
        if self.xapi_status() is not None:
            return
        port = int(self.data["xapi"]["url"].rstrip("/").rsplit(":", 1)[1])
        try:
            proc = _start_xapi(port)
        except LabError as e:
            log("%s; starting it on a new port" % e)
            proc = _start_xapi(0)
        self.data["xapi"]["pid"] = proc.pid
        self.data["xapi"]["url"] = _xapi_url()
        _write_json(labenv.lab_json(), self.data)

    # dom0 of a host

    def dom0_env(self, host_uuid: str) -> Dict[str, str]:
        return labenv.dom0_env(self.host(host_uuid).uuid)

    def dom0_popen(self, host_uuid: str, argv: Sequence[str], **kw: Any) -> "subprocess.Popen[Any]":
        """Start `argv` as a process in the dom0 of `host_uuid` (e.g. the monitor)."""
        env = self.dom0_env(host_uuid)
        return subprocess.Popen(labenv.dom0_argv(argv, env), env=env, **kw)

    def dom0_run(
        self, host_uuid: str, argv: Sequence[str], input: Optional[str] = None, timeout: float = 60
    ) -> "subprocess.CompletedProcess[str]":
        """Run `argv` in the dom0 of `host_uuid`; output captured as text, not checked."""
        env = self.dom0_env(host_uuid)
        return subprocess.run(
            labenv.dom0_argv(argv, env),
            env=env,
            input=input,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            universal_newlines=True,
            timeout=timeout,
        )

    # a hostile guest

    @contextlib.contextmanager
    def hostile_engine(self, vm: str, mode: str, size: int = 3 * 1000 * 1000,
                       interval: float = 10.0) -> Iterator["subprocess.Popen[bytes]"]:
        """For the block, guest `vm`'s dockerd is replaced by xsclab.hostile_engine in
        `mode` on the guest's /var/run/docker.sock (what the SSH bridge reaches);
        dockerd is started again afterwards. The API version the plugins of the
        lab remember for the guest is forgotten before and after: the engine met
        is a new one (it may claim the replaced dockerd's identity)."""
        self.forget_api_versions(vm)
        self.service(vm, "dockerd", "stop")
        argv = [sys.executable, "-m", "xsclab.hostile_engine", "--socket", "/var/run/docker.sock",
                "--mode", mode, "--size", str(size), "--interval", str(interval)]
        cmd, env = self.exec_argv(vm, argv)
        env["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert proc.stdout is not None
            ready, _, _ = select.select([proc.stdout], [], [], 20)
            line = proc.stdout.readline() if ready else b""
            if line != b"ready\n":
                proc.kill()
                raise LabError("the hostile engine did not start in %s: %s" % (
                    vm, proc.stderr.read().decode(errors="replace") if proc.stderr else ""))
            yield proc
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
            self.service(vm, "dockerd", "start")
            self.forget_api_versions(vm)

    def forget_api_versions(self, vm: str) -> None:
        """Remove what every host's plugin remembers of guest `vm`'s engine (its
        negotiated API version), so that the next call negotiates again."""
        uuid = self.vm(vm).uuid
        for host in self.hosts:
            folder = os.path.join(self.dom0_env(host.uuid)["XSCONTAINER_RUN_DIR"], "api-versions")
            for name in os.listdir(folder) if os.path.isdir(folder) else []:
                if name.startswith(uuid):
                    os.unlink(os.path.join(folder, name))
