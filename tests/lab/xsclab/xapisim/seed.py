"""Building the initial database from the lab's seed (see HACKING.md, "The XAPI
simulator"), and an example seed."""

import json
from typing import Any, Dict, List

from .errors import NULL_REF
from .schema import CLASSES
from .storage import create_vdi_file, vdi_file
from .store import Store, new_uuid
from .vm import apply_guest_networks, device_name

DISK_SIZE = 10 * 1024 ** 3
SOFTWARE_VERSION = {
    "product_brand": "XCP-ng",
    "product_version": "8.3.0",
    "platform_name": "XCP",
    "platform_version": "3.4.0",
    "xapi": "24.19",
    "xen": "4.17.4",
}


def _new(cls: str, uuid: str, **values: Any) -> Dict[str, Any]:
    return CLASSES[cls].new_record(uuid, **values)


def build(store: Store, seed: Dict[str, Any], lab_dir: str) -> None:
    """Populate an empty store from `seed` (all uuids given by the seed)."""
    store.lab["root_password"] = seed["root_password"]
    hosts: Dict[str, str] = {}  # uuid -> ref
    for h in seed["hosts"]:
        name = h["name_label"]
        host = hosts[h["uuid"]] = store.create("host", _new(
            "host", h["uuid"], name_label=name, address=h["address"], hostname=name,
            software_version=dict(SOFTWARE_VERSION, hostname=name),
        ))
        dom0 = store.create("VM", _new(
            "VM", h["control_domain_uuid"], name_label="Control domain on host: %s" % name,
            power_state="Running", resident_on=host, is_control_domain=True, domid="0",
            domain_type="pv",
        ))
        store.update("host", host, control_domain=dom0)
    first_host = hosts[seed["hosts"][0]["uuid"]]

    srs: Dict[str, str] = {}
    for s in seed["srs"]:
        srs[s["uuid"]] = store.create("SR", _new(
            "SR", s["uuid"], name_label=s["name_label"], type=s["type"], shared=s["shared"],
            physical_size=str(1024 ** 4),
        ))
        for host_uuid in s["hosts"]:
            store.create("PBD", _new("PBD", new_uuid(), host=hosts[host_uuid],
                                     SR=srs[s["uuid"]], currently_attached=True))

    store.create("pool", _new(
        "pool", seed["pool"]["uuid"], name_label=seed["pool"]["name_label"], master=first_host,
        other_config=dict(seed["pool"].get("other_config", {})),
        default_SR=srs[seed["default_sr"]] if seed.get("default_sr") else NULL_REF,
    ))

    networks: Dict[str, str] = {}  # bridge -> ref
    for n in seed["networks"]:
        networks[n["bridge"]] = store.create("network", _new(
            "network", n["uuid"], name_label=n["name_label"], bridge=n["bridge"],
            other_config=dict(n.get("other_config", {})),
        ))

    for secret in seed.get("secrets", []):
        store.create("secret", _new("secret", secret["uuid"], value=secret["value"]))

    for vm in seed.get("vms", []):
        _build_vm(store, vm, hosts=hosts, srs=srs, networks=networks, lab_dir=lab_dir)

    for t in seed.get("templates", []):
        store.create("VM", _new("VM", t["uuid"], name_label=t["name_label"], is_a_template=True))


def _mac(n: int) -> str:
    return "02:00:00:%02x:%02x:%02x" % ((n >> 16) & 255, (n >> 8) & 255, n & 255)


def _build_vm(store: Store, vm: Dict[str, Any], *, hosts: Dict[str, str],
              srs: Dict[str, str], networks: Dict[str, str], lab_dir: str) -> None:
    running = vm.get("power_state", "Halted") == "Running"
    ref = store.create("VM", _new(
        "VM", vm["uuid"], name_label=vm["name_label"],
        power_state="Running" if running else "Halted",
        resident_on=hosts[vm["host"]] if running else NULL_REF,
        affinity=hosts[vm["host"]], other_config=dict(vm.get("other_config", {})),
        domid=str(store.lab.setdefault("next_domid", 1)) if running else "-1",
    ))
    if running:
        store.lab["next_domid"] += 1
    for vif in vm.get("vifs", []):
        store.create("VIF", _new(
            "VIF", new_uuid(), device=vif["device"], network=networks[vif["network"]], VM=ref,
            MAC=_mac(len(store.objects["VIF"]) + 1), currently_attached=running,
        ))
    if vm.get("disk_sr"):
        disk_uuid = new_uuid()
        vdi = store.create("VDI", _new(
            "VDI", disk_uuid, name_label="%s disk" % vm["name_label"], SR=srs[vm["disk_sr"]],
            virtual_size=str(DISK_SIZE), type="system", location=disk_uuid,
        ))
        create_vdi_file(vdi_file(lab_dir, store, vdi), DISK_SIZE)
        store.create("VBD", _new(
            "VBD", new_uuid(), VM=ref, VDI=vdi, userdevice="0", bootable=True, mode="RW",
            type="Disk", currently_attached=running, device=device_name("0") if running else "",
        ))
    if vm.get("cd"):
        store.create("VBD", _new(
            "VBD", new_uuid(), VM=ref, userdevice="3", mode="RO", type="CD", empty=True,
            currently_attached=running, device=device_name("3") if running else "",
        ))
    store.lab["guest_networks"][ref] = dict(vm.get("networks") or {})
    apply_guest_networks(store, ref)


def example() -> Dict[str, Any]:
    """A two-host pool with one running VM, shaped like the lab's seed."""
    h1, h2 = new_uuid(), new_uuid()
    local, shared = new_uuid(), new_uuid()
    private, public = new_uuid(), new_uuid()
    hosts: List[Dict[str, Any]] = [
        {"uuid": h, "name_label": "xsc-host%d" % i, "address": "127.0.0.1",
         "control_domain_uuid": new_uuid()}
        for i, h in enumerate((h1, h2), 1)
    ]
    return {
        "pool": {"uuid": new_uuid(), "name_label": "xsc-lab",
                 "other_config": {"xscontainer-private-secret-uuid": private,
                                  "xscontainer-public-secret-uuid": public}},
        "root_password": "xscontainer-lab",
        "hosts": hosts,
        "srs": [
            {"uuid": local, "name_label": "Local storage xsc-host1", "type": "ext",
             "shared": False, "hosts": [h1]},
            {"uuid": shared, "name_label": "Shared NFS storage", "type": "nfs", "shared": True,
             "hosts": [h1, h2]},
        ],
        "default_sr": shared,
        "networks": [
            {"uuid": new_uuid(), "name_label": "Pool-wide network associated with eth0",
             "bridge": "xenbr0"},
            {"uuid": new_uuid(), "name_label": "Host internal management network",
             "bridge": "xenapi", "other_config": {"is_host_internal_management_network": "true"}},
        ],
        "secrets": [{"uuid": private, "value": "-----BEGIN RSA PRIVATE KEY-----\nlab\n"
                                                "-----END RSA PRIVATE KEY-----"},
                    {"uuid": public, "value": "ssh-rsa AAAAlab root@lab"}],
        "vms": [{
            "uuid": new_uuid(), "name_label": "xsc-vm1", "host": h1, "power_state": "Running",
            "networks": {"0/ip": "10.200.1.2", "0/ipv4/0": "10.200.1.2", "0/ipv6/0": "fe80::1"},
            "other_config": {"xscontainer-username": "xscuser"},
            "vifs": [{"network": "xenbr0", "device": "0"}], "disk_sr": local, "cd": True,
        }],
        "templates": [{"uuid": new_uuid(), "name_label": "CoreOS"}],
    }


def load(path: str) -> Dict[str, Any]:
    with open(path) as f:
        seed: Dict[str, Any] = json.load(f)
    return seed

