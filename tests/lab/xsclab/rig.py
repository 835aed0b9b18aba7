"""Guest VMs of the lab, one network namespace each.

Guest I is named xsc-vmI: netns xsc-vmI, veth xsc-hI (root side, 10.200.I.1/24)
and xsc-vI (guest side, 10.200.I.2/24). Its holder process (vm-init) owns its
mount and UTS namespaces; dockerd and sshd join them with `nsenter -t HOLDER`
(not `ip netns exec`, whose /sys remount hides the cgroups dockerd needs), so
they can be stopped and started by PID later. Everything of guest I lives in
<lab_dir>/vms/xsc-vmI:

  holder.pid dockerd.pid sshd.pid     records (procs.py), *.log next to them
  etc-docker/  home/                  bound on the guest's /etc/docker and /home
  docker-data/ docker.sock            the engine's data root and root-side socket
  ssh/{sshd_config,host_rsa,host_rsa.pub}
  tls/{ca,server-cert,server-key,client-cert,client-key}.pem
  engine                              the guest's engine (engines.py), e.g. podman5
  etc-containers/                     Podman's configuration, bound on /etc/containers
  podman-data/                        a rootful Podman's storage

The guest's engine is started as "dockerd" whatever it is (`lab service VM
dockerd restart` restarts Podman's service too). Docker engines serve as
before; a rootful Podman serves `podman system service` on
/run/podman/podman.sock (root:docker 0660, as a socket unit with SocketGroup=docker
would make it) with /var/run/docker.sock linked to it; a rootless
one runs as the SSH user on /run/user/UID/podman/podman.sock and the guest
has no /var/run/docker.sock. The root-side docker.sock is then a link into
the guest's /run (through /proc/HOLDER/root), so it always reaches the
engine the guest itself sees.
"""

import grp
import http.client
import io
import json
import os
import pwd
import select
import shutil
import socket
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from . import engines, labkeys, procs

HERE = os.path.dirname(os.path.abspath(__file__))
VM_INIT = os.path.join(HERE, "vm-init")
IMAGE = "xsc-test/busybox:latest"
DOCKER_CLI = "/usr/bin/docker"  # from docker.io; its 20.10 client matches the engine
SSHD = "/usr/sbin/sshd"  # sshd re-executes itself, so it needs an absolute path
BUSYBOX = "/bin/busybox"
IMAGE_APPLETS = ("sh sleep top ps cat echo ls true false kill wget nc").split()
GUEST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DAEMONS = ("sshd", "dockerd")
# in the holder's environment (kept across its exec of sleep): the folder of
# the lab that owns the guest's namespaces
OWNER_VAR = "XSC_LAB_OWNER"
READY_TIMEOUT = 30.0
# the tools the rig runs; `make deps` (tools/bootstrap apt) installs them
REQUIRED_TOOLS = {
    "ip": "iproute2",
    "nsenter": "util-linux",
    "unshare": "util-linux",
    "setpriv": "util-linux",
    "useradd": "passwd",
    "dockerd": "docker.io",
    "containerd": "docker.io",
    "runc": "docker.io",
    "docker-init": "docker.io",
    DOCKER_CLI: "docker.io",
    SSHD: "openssh-server",
    BUSYBOX: "busybox-static",
}


class RigError(Exception):
    """The rig cannot do what was asked; the message says why."""


@dataclass(frozen=True)
class Guest:
    index: int
    lab_dir: str

    @property
    def name(self) -> str:
        return "xsc-vm%d" % self.index

    @property
    def netns(self) -> str:
        return self.name

    @property
    def host_if(self) -> str:
        return "xsc-h%d" % self.index

    @property
    def guest_if(self) -> str:
        return "xsc-v%d" % self.index

    @property
    def ip(self) -> str:
        return "10.200.%d.2" % self.index

    @property
    def gateway(self) -> str:
        return "10.200.%d.1" % self.index

    @property
    def dir(self) -> str:
        return os.path.join(self.lab_dir, "vms", self.name)

    def path(self, *parts: str) -> str:
        return os.path.join(self.dir, *parts)

    @property
    def docker_socket(self) -> str:
        return self.path("docker.sock")

    @property
    def engine(self) -> engines.Engine:
        """The guest's engine (written at `prepare`; docker20 if none)."""
        try:
            with open(self.path("engine")) as f:
                return engines.get(f.read().strip())
        except FileNotFoundError:
            return engines.get(engines.DEFAULT)

    @property
    def host_key_pub(self) -> str:
        return self.path("ssh", "host_rsa.pub")

    def tls(self, name: str) -> str:
        return self.path("tls", name + ".pem")

    def record(self, daemon: str) -> str:
        return self.path(daemon + ".pid")

    def log(self, daemon: str) -> str:
        return self.path(daemon + ".log")


def run(argv: List[str], timeout: float = 30, input: Optional[str] = None) -> str:
    """Run a tool; its stdout, or RigError with its stderr."""
    try:
        done = subprocess.run(
            argv,
            input=input,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            universal_newlines=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as e:
        raise RigError("%s timed out after %s s" % (" ".join(argv), timeout)) from e
    if done.returncode != 0:
        raise RigError(
            "%s failed (rc %d): %s" % (" ".join(argv), done.returncode, done.stderr.strip())
        )
    return done.stdout


def _tail(path: str, lines: int = 15) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


# --- preflight ---------------------------------------------------------------------


def missing_tools() -> List[str]:
    """'tool (package)' for each tool the rig needs but cannot find."""
    return [
        "%s (%s)" % (tool, pkg)
        for tool, pkg in REQUIRED_TOOLS.items()
        if not (os.access(tool, os.X_OK) if tool.startswith("/") else shutil.which(tool))
    ]


def conflicts(guests: List[Guest]) -> List[str]:
    """Names and addresses the guests would take but something already has."""
    found = []
    addrs = run(["ip", "-o", "-4", "addr", "show"], timeout=10)
    for g in guests:
        if os.path.exists(os.path.join("/run/netns", g.netns)):
            found.append("network namespace %s exists" % g.netns)
        if os.path.exists(os.path.join("/sys/class/net", g.host_if)):
            found.append("network interface %s exists" % g.host_if)
        if " 10.200.%d." % g.index in addrs:
            found.append("an address in 10.200.%d.0/24 is in use" % g.index)
    return found


def abandoned(guests: List[Guest]) -> List[Guest]:
    """Guests whose network namespace is still there with no process in it:
    what a lab leaves when all its processes were killed without `down` (the
    session that ran it ended, the machine reaped it). A live lab always has
    its holder in each guest's namespace, so such a namespace is nobody's."""
    found = []
    for g in guests:
        inode = procs.ns_inode(os.path.join("/run/netns", g.netns))
        if inode is not None and not procs.in_namespaces("net", {inode}):
            found.append(g)
    return found


def owner(g: Guest) -> Optional[str]:
    """The folder of the lab whose holder is in g's network namespace now (its
    OWNER_VAR), None if no holder is in it. After a reclaim, a lab that was
    never taken down still names guests that are another lab's."""
    inode = procs.ns_inode(os.path.join("/run/netns", g.netns))
    if inode is None:
        return None
    prefix = OWNER_VAR.encode() + b"="
    for pid in procs.in_namespaces("net", {inode}):
        try:
            with open("/proc/%d/environ" % pid, "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        for item in env:
            if item.startswith(prefix):
                return item[len(prefix) :].decode(errors="replace")
    return None


# --- shared setup (once per `up`) -----------------------------------------------------


def ensure_user(name: str) -> pwd.struct_passwd:
    """The guest user: from the machine's passwd (guests share it), shell
    /bin/sh, member of group docker, password '*' (no password, but not
    locked: sshd refuses locked accounts even with a valid key when UsePAM is
    off). Its home directory exists only inside the guests."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        run(
            [
                "useradd",
                "--no-create-home",
                "--home-dir",
                "/home/" + name,
                "--shell",
                "/bin/sh",
                "--user-group",
                "--groups",
                "docker",
                "--password",
                "*",
                name,
            ]
        )
        return pwd.getpwnam(name)
    run(["usermod", "--append", "--groups", "docker", name])
    with open("/etc/shadow") as f:
        hashes = dict(line.split(":")[:2] for line in f if line.count(":") >= 1)
    if hashes.get(name, "").startswith("!") and len(hashes[name]) <= 2:
        run(["usermod", "--password", "*", name])  # locked without a password: unlock
    return entry


def busybox_tar(cache_dir: str) -> str:
    """A busybox-static root filesystem as a tar for `docker import` (cached)."""
    path = os.path.join(cache_dir, "busybox-rootfs.tar")
    if os.path.exists(path):
        return path
    os.makedirs(cache_dir, exist_ok=True)
    tmp = path + ".tmp"

    def entry(name: str, kind: bytes, mode: int, size: int = 0, link: str = "") -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.size, info.linkname = kind, mode, size, link
        return info

    with tarfile.open(tmp, "w") as tar:
        for d, mode in (
            ("bin", 0o755),
            ("etc", 0o755),
            ("dev", 0o755),
            ("proc", 0o555),
            ("sys", 0o555),
            ("root", 0o700),
            ("tmp", 0o1777),
        ):
            tar.addfile(entry(d, tarfile.DIRTYPE, mode))
        with open(BUSYBOX, "rb") as f:
            tar.addfile(entry("bin/busybox", tarfile.REGTYPE, 0o755, os.path.getsize(BUSYBOX)), f)
        for applet in IMAGE_APPLETS:
            tar.addfile(entry("bin/" + applet, tarfile.SYMTYPE, 0o777, link="busybox"))
        for name, text in (
            ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
            ("etc/group", "root:x:0:\n"),
        ):
            data = text.encode()
            tar.addfile(entry(name, tarfile.REGTYPE, 0o644, len(data)), io.BytesIO(data))
    os.replace(tmp, path)
    return path


def create_network(guests: List[Guest]) -> None:
    """Namespaces and root-side veth ends for all guests, in one `ip` run (so
    the first `ip netns add`, which mounts /run/netns, never races another)."""
    lines = []
    for g in guests:
        lines += [
            "netns add %s" % g.netns,
            "link add %s type veth peer name %s netns %s" % (g.host_if, g.guest_if, g.netns),
            "addr add %s/24 dev %s" % (g.gateway, g.host_if),
            "link set %s up" % g.host_if,
        ]
    run(["ip", "-batch", "-"], input="\n".join(lines) + "\n")


def configure_guest_network(g: Guest) -> None:
    lines = [
        "addr add %s/24 dev %s" % (g.ip, g.guest_if),
        "link set %s up" % g.guest_if,
        "link set lo up",
    ]
    run(["ip", "-n", g.netns, "-batch", "-"], input="\n".join(lines) + "\n")


def delete_namespaces(guests: List[Guest]) -> List[str]:
    """Delete the guests' namespaces (those that exist) and wait up to 3 s for
    their veths, which go with them as the kernel destroys the namespace
    asynchronously; the root-side interfaces still there after that."""
    for g in guests:
        if os.path.exists(os.path.join("/run/netns", g.netns)):
            run(["ip", "netns", "delete", g.netns])
    deadline = time.monotonic() + 3
    left = [g.host_if for g in guests]
    while left and time.monotonic() < deadline:
        time.sleep(0.02)
        left = [i for i in left if os.path.exists(os.path.join("/sys/class/net", i))]
    return left


def delete_network(guests: List[Guest]) -> None:
    """Delete the guests' namespaces and veths (whatever of them exists), then
    unmount /run/netns if no namespace is left in it."""
    # a veth still there after its namespace went (the namespace lingers or was
    # deleted by hand before) is deleted here
    for interface in delete_namespaces(guests):
        subprocess.run(["ip", "link", "delete", interface], stderr=subprocess.DEVNULL, timeout=10)
    release_netns_dir()


def mount_points() -> List[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f]


def release_netns_dir() -> None:
    """`ip netns add` bind-mounts /run/netns on itself; undo that once empty."""
    for _ in range(5):
        if "/run/netns" not in mount_points() or os.listdir("/run/netns"):
            return
        run(["umount", "/run/netns"])


# --- one guest -----------------------------------------------------------------------


def sshd_config(g: Guest) -> str:
    return "\n".join(
        [
            "ListenAddress %s:22" % g.ip,
            "HostKey %s" % g.path("ssh", "host_rsa"),
            "PidFile /run/sshd.pid",
            "UsePAM no",
            "PasswordAuthentication yes",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin no",
            "AuthorizedKeysFile .ssh/authorized_keys",
            "AllowStreamLocalForwarding yes",
            "MaxStartups 100:30:200",
            "MaxSessions 50",
            "PrintMotd no",
            "Subsystem sftp /usr/lib/openssh/sftp-server",
            "",
        ]
    )


def _copy(src: str, dst: str, mode: int) -> None:
    shutil.copyfile(src, dst)
    os.chmod(dst, mode)


def prepare(
    g: Guest, user: pwd.struct_passwd, pool_pub: str, keys_dir: str, engine: str = engines.DEFAULT
) -> None:
    """The guest's files: home with the pool key authorised for `user`, sshd
    config and host key, TLS files, an empty /etc/docker, the engine's name
    and configuration."""
    os.makedirs(g.path("etc-docker"))
    with open(g.path("engine"), "w") as f:
        f.write(engine + "\n")
    podman_config(g, user)
    os.makedirs(g.path("ssh"))
    os.makedirs(g.path("tls"))
    home = g.path("home", user.pw_name)
    os.makedirs(os.path.join(home, ".ssh"))
    _copy(pool_pub, os.path.join(home, ".ssh", "authorized_keys"), 0o600)
    for path, mode in (
        (home, 0o755),
        (os.path.join(home, ".ssh"), 0o700),
        (os.path.join(home, ".ssh", "authorized_keys"), 0o600),
    ):
        os.chown(path, user.pw_uid, user.pw_gid)
        os.chmod(path, mode)
    host_key = labkeys.host_key(keys_dir, g.name)
    _copy(host_key, g.path("ssh", "host_rsa"), 0o600)
    _copy(host_key + ".pub", g.host_key_pub, 0o644)
    with open(g.path("ssh", "sshd_config"), "w") as f:
        f.write(sshd_config(g))
    tls_dir = os.path.join(keys_dir, "tls")
    cert, key = labkeys.server_cert(tls_dir, g.ip)
    for src, name, mode in (
        (os.path.join(tls_dir, "ca.pem"), "ca", 0o644),
        (cert, "server-cert", 0o644),
        (key, "server-key", 0o600),
        (os.path.join(tls_dir, "client-cert.pem"), "client-cert", 0o644),
        (os.path.join(tls_dir, "client-key.pem"), "client-key", 0o600),
    ):
        _copy(src, g.tls(name), mode)


PODMAN_SOCKET = "/run/podman/podman.sock"


def _engine_user(g: Guest) -> pwd.struct_passwd:
    with open(g.path("engine-user")) as f:
        return pwd.getpwnam(f.read().strip())


def engine_socket(g: Guest) -> str:
    """The engine's socket as the guest sees it."""
    e = g.engine
    if e.kind == "docker":
        return "/var/run/docker.sock"
    if e.rootless:
        return "/run/user/%d/podman/podman.sock" % _engine_user(g).pw_uid
    return PODMAN_SOCKET


def _layer_env(g: Guest) -> Dict[str, str]:
    """vm-init's overlays for the guest's engine (engines.py)."""
    env = {"XSC_ENGINE_LAYER": os.path.join(engines.ensure(g.engine), "root")}
    if os.path.isdir(g.path("etc-containers")):
        os.makedirs("/etc/containers", exist_ok=True)  # the mount point (empty)
        env["XSC_ETC_CONTAINERS"] = g.path("etc-containers")
    return env


def podman_config(g: Guest, user: pwd.struct_passwd) -> None:
    """/etc/containers for a Podman guest: no journald here (events to a
    file), container rlimits below the hard limits (root has no
    CAP_SYS_RESOURCE), cgroupfs, netavark with iptables (no nftables), the
    machine's runc; a rootful engine keeps its storage in the guest's folder."""
    with open(g.path("engine-user"), "w") as f:
        f.write(user.pw_name + "\n")
    e = g.engine
    if e.kind != "podman":
        return
    conf = g.path("etc-containers")
    shutil.copytree(os.path.join(engines.ensure(e), "root", "etc", "containers"), conf)
    network = ['network_backend = "netavark"']
    if not e.rootless:  # the default, /etc/containers/networks, is read-only here
        network.append('network_config_dir = "/run/containers/networks"')
    if e.name.startswith("podman5"):
        network.append('firewall_driver = "iptables"')
    with open(os.path.join(conf, "containers.conf"), "w") as f:
        f.write(
            "\n".join(
                [
                    "[containers]",
                    'default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]',
                    'log_driver = "k8s-file"',
                    "[engine]",
                    'cgroup_manager = "cgroupfs"',
                    'events_logger = "file"',
                    'runtime = "runc"',
                    "[network]",
                    *network,
                    "",
                ]
            )
        )
    if e.rootless:
        return  # storage in the user's home (~/.local/share/containers)
    os.makedirs(g.path("podman-data"))
    with open(os.path.join(conf, "storage.conf"), "w") as f:
        f.write(
            '[storage]\ndriver = "overlay"\nrunroot = "/run/containers/storage"\n'
            'graphroot = "%s"\n' % g.path("podman-data")
        )


def start_holder(g: Guest) -> procs.Proc:
    """Start vm-init in the guest's netns and new mount + UTS namespaces, and
    wait until it has set them up."""
    argv = [
        "nsenter",
        "--net=/run/netns/" + g.netns,
        "--",
        "unshare",
        "--mount",
        "--uts",
        "--propagation",
        "slave",
        "--",
        VM_INIT,
        g.name,
        g.dir,
    ]
    with open(g.log("holder"), "ab") as log:
        child = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,
            cwd="/",
            env=dict(os.environ, **{OWNER_VAR: g.lab_dir}, **_layer_env(g)),
        )
    assert child.stdout is not None
    proc = procs.of_pid(child.pid)
    if proc is not None:
        procs.save(g.record("holder"), proc)
    ready, _, _ = select.select([child.stdout], [], [], READY_TIMEOUT)
    line = child.stdout.readline() if ready else b""
    child.stdout.close()
    if proc is None or line != b"ready\n":
        raise RigError("%s: vm-init did not start: %s" % (g.name, _tail(g.log("holder")).strip()))
    return proc


def holder(g: Guest) -> procs.Proc:
    proc = procs.running_from(g.record("holder"))
    if proc is None:
        raise RigError("%s is down (its holder process is not running)" % g.name)
    return proc


def enter_argv(holder_proc: procs.Proc, wd: str = "/") -> List[str]:
    """Prefix that runs a command in the guest's net, mount and UTS namespaces."""
    return ["nsenter", "-t", str(holder_proc.pid), "--net", "--mount", "--uts", "--wd=" + wd, "--"]


def guest_env(user: pwd.struct_passwd) -> Dict[str, str]:
    """A login-like environment (nothing of the caller's leaks into the guest)."""
    env = {
        "PATH": GUEST_PATH,
        "HOME": user.pw_dir,
        "USER": user.pw_name,
        "LOGNAME": user.pw_name,
        "SHELL": user.pw_shell or "/bin/sh",
        "LANG": "C.UTF-8",
    }
    if user.pw_uid != 0:
        env["XDG_RUNTIME_DIR"] = "/run/user/%d" % user.pw_uid
    if "TERM" in os.environ:
        env["TERM"] = os.environ["TERM"]
    return env


def exec_command(
    g: Guest, argv: List[str], user: Optional[str] = None
) -> Tuple[List[str], Dict[str, str]]:
    """(argv, env) running `argv` in guest `g` as `user` (default root), from
    the user's home directory when the guest has it."""
    entry = pwd.getpwnam(user or "root")
    h = holder(g)
    # nsenter opens --wd before entering: name the home as seen in the guest
    home = "/proc/%d/root%s" % (h.pid, entry.pw_dir)
    prefix = enter_argv(h, home if os.path.isdir(home) else "/")
    if entry.pw_uid != 0:
        prefix += [
            "setpriv",
            "--reuid=%d" % entry.pw_uid,
            "--regid=%d" % entry.pw_gid,
            "--init-groups",
            "--",
        ]
    return prefix + argv, guest_env(entry)


def _storage_driver_file(g: Guest) -> str:
    return g.path("storage-driver")


def dockerd_argv(g: Guest, driver: str) -> List[str]:
    return [
        "dockerd",
        "-H",
        "unix:///var/run/docker.sock",
        "-H",
        "unix://" + g.docker_socket,
        "-H",
        "tcp://%s:2376" % g.ip,
        "--tlsverify",
        "--tlscacert",
        g.tls("ca"),
        "--tlscert",
        g.tls("server-cert"),
        "--tlskey",
        g.tls("server-key"),
        "--data-root",
        g.path("docker-data"),
        "--exec-root",
        "/run/docker",
        "--pidfile",
        "/run/docker.pid",
        "--storage-driver",
        driver,
        # The default bridge (docker0) and its iptables rules live in the guest's
        # own network namespace, so containers can publish ports as on a real VM
        # without touching the host's links or firewall.
        "--ip6tables=false",
        "--shutdown-timeout",
        "2",
    ]


def _daemon_env() -> Dict[str, str]:
    return {"PATH": GUEST_PATH, "HOME": "/root", "LANG": "C.UTF-8"}


def _connects(ip: str, port: int, banner: bytes = b"") -> bool:
    try:
        with socket.create_connection((ip, port), timeout=1) as s:
            return not banner or s.recv(64).startswith(banner)
    except OSError:
        return False


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("docker", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def docker_api(g: Guest, method: str, path: str, timeout: float = 5) -> Tuple[int, bytes]:
    """One request to the guest's engine on its root-side socket."""
    conn = _UnixHTTPConnection(g.docker_socket, timeout)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, resp.read(1 << 20)
    finally:
        conn.close()


def _engine_ready(g: Guest) -> bool:
    try:
        if docker_api(g, "GET", "/_ping", timeout=1) != (200, b"OK"):
            return False
    except (OSError, http.client.HTTPException):
        return False
    return g.engine.kind != "docker" or _connects(g.ip, 2376)


def _sshd_ready(g: Guest) -> bool:
    return _connects(g.ip, 22, b"SSH-")


def _wait(g: Guest, daemon: str, proc: procs.Proc) -> bool:
    """Wait until the daemon serves; False if it died first."""
    ready = _engine_ready if daemon == "dockerd" else _sshd_ready
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if ready(g):
            return True
        if not proc.running():
            procs.wait_gone([proc], 0)  # reap it
            return False
        time.sleep(0.02)
    raise RigError(
        "%s: %s not ready after %s s: %s"
        % (g.name, daemon, READY_TIMEOUT, _tail(g.log(daemon)).strip())
    )


def start_daemon(g: Guest, daemon: str, storage_driver: str = "overlay2") -> procs.Proc:
    """Start sshd or dockerd in the guest and wait until it serves. dockerd
    falls back to vfs if overlay2 does not work here; the driver that worked
    is kept for later starts."""
    prefix = enter_argv(holder(g))
    if daemon == "sshd":
        proc = procs.spawn(
            [*prefix, SSHD, "-D", "-e", "-f", g.path("ssh", "sshd_config")],
            g.log("sshd"),
            g.record("sshd"),
            env=_daemon_env(),
        )
        if not _wait(g, "sshd", proc):
            raise RigError("%s: sshd exited: %s" % (g.name, _tail(g.log("sshd")).strip()))
        return proc
    if g.engine.kind == "podman":
        return _start_podman(g)
    try:
        with open(_storage_driver_file(g)) as f:
            drivers = [f.read().strip()]
    except FileNotFoundError:
        drivers = [storage_driver] + (["vfs"] if storage_driver != "vfs" else [])
    for driver in drivers:
        proc = procs.spawn(
            prefix + dockerd_argv(g, driver),
            g.log("dockerd"),
            g.record("dockerd"),
            env=_daemon_env(),
        )
        if _wait(g, "dockerd", proc):
            with open(_storage_driver_file(g), "w") as f:
                f.write(driver + "\n")
            return proc
        sys.stderr.write("lab: %s: dockerd failed with storage driver %s\n" % (g.name, driver))
    raise RigError("%s: dockerd exited: %s" % (g.name, _tail(g.log("dockerd")).strip()))


def _start_podman(g: Guest) -> procs.Proc:
    """`podman system service` in the guest (rootful: root on
    /run/podman/podman.sock, /var/run/docker.sock linked to it; rootless:
    the SSH user on its own runtime folder's socket); the root-side
    docker.sock links into the guest's /run."""
    h = holder(g)
    guest_root = "/proc/%d/root" % h.pid
    sock = engine_socket(g)
    env = _daemon_env()
    prefix = enter_argv(h)
    if g.engine.rootless:
        user = _engine_user(g)
        run_dir = guest_root + "/run/user/%d" % user.pw_uid
        os.makedirs(run_dir, exist_ok=True)
        os.chown(run_dir, user.pw_uid, user.pw_gid)
        os.chmod(run_dir, 0o700)
        os.makedirs(run_dir + "/podman", exist_ok=True)
        os.chown(run_dir + "/podman", user.pw_uid, user.pw_gid)
        env = guest_env(user)
        prefix = [
            *enter_argv(h, "/"),
            "setpriv",
            "--reuid=%d" % user.pw_uid,
            "--regid=%d" % user.pw_gid,
            "--init-groups",
            "--",
        ]
    else:
        os.makedirs(guest_root + "/run/podman", exist_ok=True)
        link = guest_root + "/run/docker.sock"
        if not os.path.lexists(link):
            os.symlink(PODMAN_SOCKET, link)
    if os.path.lexists(g.docker_socket):
        os.unlink(g.docker_socket)
    os.symlink(guest_root + sock, g.docker_socket)
    proc = procs.spawn(
        [*prefix, "podman", "system", "service", "--time=0", "unix://" + sock],
        g.log("dockerd"),
        g.record("dockerd"),
        env=env,
    )
    if not _wait(g, "dockerd", proc):
        raise RigError("%s: podman exited: %s" % (g.name, _tail(g.log("dockerd")).strip()))
    if not g.engine.rootless:
        # as a socket unit with SocketGroup=docker and SocketMode=0660 makes it (the
        # admin's fix: Podman's own is root:root 0600, for root only)
        path = guest_root + sock
        os.chown(path, 0, grp.getgrnam("docker").gr_gid)
        os.chmod(path, 0o660)
    return proc


def import_image(g: Guest, tar: str, cli_config: str) -> None:
    if g.engine.kind == "podman":
        user = _engine_user(g).pw_name if g.engine.rootless else None
        argv, env = exec_command(
            g, ["podman", "import", "--change", 'CMD ["/bin/sh"]', "-", IMAGE], user
        )
        with open(tar, "rb") as f:
            done = subprocess.run(
                argv, env=env, stdin=f, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60
            )
        if done.returncode != 0:
            err = done.stderr.decode(errors="replace").strip()
            raise RigError("%s: podman import failed: %s" % (g.name, err))
        return
    run(
        [
            DOCKER_CLI,
            "--config",
            cli_config,
            "-H",
            "unix://" + g.docker_socket,
            "import",
            "-c",
            'CMD ["/bin/sh"]',
            tar,
            IMAGE,
        ],
        timeout=60,
    )


def stop_daemon(g: Guest, daemon: str) -> None:
    # dockerd: up to --shutdown-timeout (2 s) per container that ignores SIGTERM,
    # then containerd's own stop
    procs.stop_recorded(g.record(daemon), timeout=15 if daemon == "dockerd" else 5)


def daemon_status(g: Guest, daemon: str) -> Optional[procs.Proc]:
    return procs.running_from(g.record(daemon))


def rekey(g: Guest) -> None:
    """A new sshd host key (as after a guest reinstall), then restart sshd."""
    labkeys.write_ssh_keypair(g.path("ssh", "host_rsa"), 2048, "root@%s" % g.name)
    stop_daemon(g, "sshd")
    start_daemon(g, "sshd")


def _kill_containers(g: Guest) -> None:
    """SIGKILL the guest's running containers, so dockerd stops at once."""
    try:
        status, body = docker_api(g, "GET", "/containers/json")
        if status != 200:
            return
        for c in json.loads(body.decode()):
            docker_api(g, "POST", "/containers/%s/kill" % c["Id"])
    except (OSError, ValueError, http.client.HTTPException):
        pass  # the engine is not answering: stopping it by PID still works


def teardown(g: Guest) -> None:
    """Stop everything of the guest by PID: containers (killed), sshd and
    dockerd (which stops its containerd), the holder; then whatever still runs
    in the guest's namespaces (sessions, `lab exec` leftovers, orphans of a
    crash) and their descendants. Safe on a half-up or already-down guest."""
    holder_proc = procs.running_from(g.record("holder"))
    namespaces = {
        "net": procs.ns_inode(os.path.join("/run/netns", g.netns)),
        "mnt": procs.ns_inode("/proc/%d/ns/mnt" % holder_proc.pid) if holder_proc else None,
    }
    if daemon_status(g, "dockerd") is not None:
        _kill_containers(g)
    daemons = [p for p in (procs.load(g.record(d)) for d in DAEMONS) if p is not None]
    procs.stop(daemons, timeout=15)
    procs.stop_recorded(g.record("holder"), timeout=5)
    for d in DAEMONS:
        procs.stop_recorded(g.record(d), timeout=5)
    for kind, inode in namespaces.items():
        if inode is not None:
            procs.kill_all(procs.in_namespaces(kind, {inode}))
