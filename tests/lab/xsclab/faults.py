"""Faults the lab makes on a guest, as they happen to real VMs.

* `move_address(lab, vm, new_ip)`: the guest gets another IPv4 address (as after a
  DHCP change): its interface loses the old address and gets `new_ip` (same /24),
  its sshd listens on the new one, and its guest metrics report it (what the guest
  agent would do, through the simulator's lab.VM.set_guest_networks). Docker's TLS
  port keeps the old address: the faults are for SSH guests.
  `restore_address(lab, vm)` puts everything back as `lab up` made it.
* `cut(lab, vm)` / `mend(lab, vm)`: the guest's network cut (its end of the link
  down: packets to it vanish without an answer, as when a VM's network fails) and
  restored; `network_cut(lab, vm)` does both around a block.
* `reboot(lab, vm)`: the guest reboots. Its guest metrics disappear (the agent is
  gone), dockerd shuts down as on a clean shutdown (its containers stopped), then
  every process left in the guest ends (sshd, `lab exec` sessions, the holder and
  with it the guest's `/run`); the guest comes back as `lab up` made it (same
  address, host keys, engine data: Docker starts again the containers whose restart
  policy says so) and its guest metrics are reported again.

All of it works on the guest's namespace and records only; nothing here touches
the other guests. `lab down` undoes whatever a test left.
"""

import contextlib
import socket
import subprocess
import time
from typing import Any, Dict, Iterator, List

from . import procs, rig


def _ip(g: rig.Guest, *args: str) -> None:
    subprocess.run(["ip", "-n", g.netns, *args], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, timeout=10)


def addresses(lab: Any, vm: str) -> List[str]:
    """The guest's IPv4 addresses on its link, as the kernel has them."""
    g = lab._guest(vm)
    out = subprocess.run(["ip", "-n", g.netns, "-4", "-o", "addr", "show", "dev", g.guest_if],
                         check=True, stdout=subprocess.PIPE, universal_newlines=True,
                         timeout=10).stdout
    return [line.split()[3].split("/")[0] for line in out.splitlines()]


def set_guest_networks(lab: Any, vm: str, networks: Dict[str, str]) -> None:
    """What the guest agent reports, through the simulator's lab-only method."""
    with lab.xapi_session() as s:
        ref = s.xenapi.VM.get_by_uuid(lab.vm(vm).uuid)
        s.xenapi.lab.VM.set_guest_networks(ref, networks)


def _wait_listening(ip: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((ip, 22), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError("sshd does not listen on %s:22" % ip) from None
            time.sleep(0.05)


def _sshd_on(g: rig.Guest, ip: str) -> None:
    rig.stop_daemon(g, "sshd")
    procs.spawn([*rig.enter_argv(rig.holder(g)), rig.SSHD, "-D", "-e", "-f",
                 g.path("ssh", "sshd_config"), "-o", "ListenAddress=%s:22" % ip],
                g.log("sshd"), g.record("sshd"))
    _wait_listening(ip, 10)


def move_address(lab: Any, vm: str, new_ip: str) -> None:
    """The guest's address becomes `new_ip`; sshd and guest metrics follow."""
    g = lab._guest(vm)
    for old in addresses(lab, vm):
        if old != new_ip:
            _ip(g, "addr", "del", "%s/24" % old, "dev", g.guest_if)
    if new_ip not in addresses(lab, vm):
        _ip(g, "addr", "add", "%s/24" % new_ip, "dev", g.guest_if)
    _sshd_on(g, new_ip)
    set_guest_networks(lab, vm, {"0/ip": new_ip, "0/ipv4/0": new_ip})


def restore_address(lab: Any, vm: str) -> None:
    """The address, sshd and guest metrics as `lab up` made them."""
    g = lab._guest(vm)
    mend(lab, vm)
    for old in addresses(lab, vm):
        if old != g.ip:
            _ip(g, "addr", "del", "%s/24" % old, "dev", g.guest_if)
    if g.ip not in addresses(lab, vm):
        _ip(g, "addr", "add", "%s/24" % g.ip, "dev", g.guest_if)
    rig.stop_daemon(g, "sshd")
    lab.service(vm, "sshd", "start")
    set_guest_networks(lab, vm, {"0/ip": g.ip, "0/ipv4/0": g.ip})


def cut(lab: Any, vm: str) -> None:
    """The guest's network fails: its end of the link goes down, the other end loses
    its carrier, and whatever dom0 sends it is dropped without an answer."""
    g = lab._guest(vm)
    _ip(g, "link", "set", g.guest_if, "down")


def mend(lab: Any, vm: str) -> None:
    """The guest's network works again (its addresses kept)."""
    g = lab._guest(vm)
    _ip(g, "link", "set", g.guest_if, "up")


@contextlib.contextmanager
def network_cut(lab: Any, vm: str) -> Iterator[None]:
    cut(lab, vm)
    try:
        yield
    finally:
        mend(lab, vm)


def reboot(lab: Any, vm: str) -> None:
    """The guest reboots: everything in it ends, then it starts as at `lab up`."""
    g = lab._guest(vm)
    set_guest_networks(lab, vm, {})
    holder_proc = rig.holder(g)
    mnt = procs.ns_inode("/proc/%d/ns/mnt" % holder_proc.pid)
    # a clean shutdown: dockerd stops its containers (a container stopped this way
    # keeps its restart policy, unlike one stopped or killed through the API)
    rig.stop_daemon(g, "dockerd")
    rig.stop_daemon(g, "sshd")
    procs.stop_recorded(g.record("holder"), timeout=5)
    if mnt is not None:  # whatever else ran in the guest, and its descendants
        procs.kill_all(procs.in_namespaces("mnt", {mnt}))
    rig.start_holder(g)
    rig.start_daemon(g, "sshd")
    rig.start_daemon(g, "dockerd")
    set_guest_networks(lab, vm, {"0/ip": g.ip, "0/ipv4/0": g.ip})
