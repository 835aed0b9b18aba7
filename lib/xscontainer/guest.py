"""One object per VM: what XAPI says about it and how to reach its Docker engine.

VM other-config keys (shared with the original xscontainer and its clients):
  xscontainer-mode       ssh (default) | tls
  xscontainer-username   SSH user in the guest (default: core)
  xscontainer-sshhostkey base64 of the guest's SSH host key, pinned on first use
  xscontainer-docker-socket the engine's socket in the guest (default: detected)
  xscontainer-tls-*      uuids of the TLS secrets (tlssecrets.py), mode tls only
"""

import hashlib
import ipaddress
import logging
import re
import ssl
from typing import TYPE_CHECKING, Any, Dict, FrozenSet, List, Mapping, Optional

from xscontainer import errors, poolkey, tlssecrets, transport, xapi_keys
from xscontainer import log as xlog
from xscontainer.apiversions import VersionCache
from xscontainer.transport import SSH_PORT, Material, Timeouts, tlscontext
from xscontainer.transport import base as transport_base
from xscontainer.xapi import NULL_REF, Xapi

if TYPE_CHECKING:  # imported when needed: a plugin call loads paramiko and the Docker
    # SDK in a thread while it reads the VM from XAPI and connects (containers.py)
    from paramiko import PKey

    from xscontainer.docker_api import DockerClient
    from xscontainer.transport.ssh import SSHSession

log = logging.getLogger(__name__)

DEFAULT_USERNAME = "core"
MODES = ("ssh", "tls")

_DEVICE_KEY = re.compile(r"^(\d+)/")


def candidate_addresses(networks: Optional[Mapping[str, str]],
                        own: FrozenSet[str] = frozenset(),
                        host_internal: Optional[bool] = None) -> List[str]:
    """IPv4 addresses from a guest-metrics networks map, in the order to try them.

    The guest reports these itself, so only plausible ones are kept
    (transport.base.plausible): no loopback, multicast, broadcast or reserved
    address, none of this host's own addresses (`own`), and link-local (169.254.*)
    only when that is the host-internal management network (`host_internal`; None:
    when this host has such an address itself). Link-local first: the host-internal
    network is reachable from dom0 even when the VM's other networks are not. Then
    the rest, by device number. IPv6 is ignored (as clients do); duplicates (the
    same address under `0/ip` and `0/ipv4/0`) are tried once.
    """
    if not networks:
        return []

    def order(key: str) -> Any:
        match = _DEVICE_KEY.match(key)
        return (int(match.group(1)) if match else 1 << 30, key)

    found: List[str] = []
    for key in sorted(networks, key=order):
        value = (networks[key] or "").strip()
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            continue
        if address.version == 4 and value not in found \
                and transport_base.plausible(value, own, host_internal):
            found.append(value)
    link_local = [a for a in found if a.startswith("169.254.")]
    return link_local + [a for a in found if not a.startswith("169.254.")]


class Guest:
    """A VM as xscontainer sees it."""

    def __init__(self, xapi: Xapi, vm_uuid: str, vm_ref: str, record: Dict[str, Any]) -> None:
        self.xapi = xapi
        self.uuid = vm_uuid
        self.ref = vm_ref
        self.record = record

    @classmethod
    def load(cls, xapi: Xapi, vm_uuid: str) -> "Guest":
        ref = xapi.vm_by_uuid(vm_uuid)
        return cls(xapi, vm_uuid, ref, xapi.vm_record(ref))

    # -- what XAPI says ---------------------------------------------------------

    @property
    def name(self) -> str:
        return str(self.record.get("name_label", ""))

    @property
    def where(self) -> str:
        return "VM %s (%s)" % (self.name, self.uuid)

    @property
    def other_config(self) -> Dict[str, str]:
        return dict(self.record.get("other_config") or {})

    @property
    def power_state(self) -> str:
        return str(self.record.get("power_state", ""))

    @property
    def resident_on(self) -> str:
        return str(self.record.get("resident_on") or NULL_REF)

    @property
    def mode(self) -> str:
        mode = self.other_config.get(xapi_keys.MODE, "ssh").strip().lower() or "ssh"
        if mode not in MODES:
            raise errors.InvalidArgument(
                "%s has other-config %s=%r; it must be 'ssh' or 'tls'. Fix it with "
                "'xe vm-param-set uuid=%s other-config:%s=ssh' or rerun xscontainer-prepare-vm."
                % (self.where, xapi_keys.MODE, mode, self.uuid, xapi_keys.MODE)
            )
        return mode

    @property
    def docker_socket(self) -> Optional[str]:
        """The Docker socket other-config names (checked), or None: detected in the guest."""
        value = self.other_config.get(xapi_keys.DOCKER_SOCKET, "").strip()
        return transport_base.check_socket_path(value, self.where) if value else None

    @property
    def username(self) -> str:
        return self.other_config.get(xapi_keys.USERNAME, "").strip() or DEFAULT_USERNAME

    def require_running(self) -> None:
        if self.power_state != "Running":
            raise errors.VMNotRunning(
                "%s is %s; container management needs it running. Start the VM and retry."
                % (self.where, self.power_state or "not running"),
                self.uuid,
            )

    def addresses(self) -> List[str]:
        metrics = str(self.record.get("guest_metrics") or "")
        networks = self.xapi.guest_networks(self.ref, metrics)
        if networks is None:
            raise errors.NoIP(
                "%s has no guest metrics: XAPI knows no address for it. Install the guest "
                "tools (xe-guest-utilities / xe-daemon) in the VM so it reports its IP."
                % self.where,
                self.uuid,
            )
        found = candidate_addresses(networks, transport_base.local_addresses())
        if not found and any(v.strip() for v in networks.values()):
            raise errors.NoIP(
                "The guest tools of %s report no address xscontainer can use (%s): loopback, "
                "link-local, broadcast and this host's own addresses are not tried. Check "
                "the VM's network configuration." % (
                    self.where, xlog.guest_text(", ".join(sorted(set(networks.values()))), 200)),
                self.uuid,
            )
        if not found:
            raise errors.NoIP(
                "The guest tools of %s report no IPv4 address. Check the VM's network "
                "configuration (xscontainer reaches guests over IPv4)." % self.where,
                self.uuid,
            )
        return found

    # -- reaching the guest -------------------------------------------------------

    def ssh(self, timeouts: Optional[Timeouts] = None) -> "SSHSession":
        """An authenticated SSH session, the host key pinned or checked."""
        timeouts = timeouts or Timeouts()
        docker_socket = self.docker_socket  # refused before connecting
        addresses = self.addresses()
        private_key = poolkey.private_key(self.xapi)
        # Connected before paramiko is needed (a plugin call is still loading it:
        # containers.py), so the guest's sshd starts its side meanwhile.
        try:
            sock, address = transport.connect_first(addresses, SSH_PORT, timeouts.connect)
        except BaseException:
            self._load_key(private_key)  # a broken pool key is reported first
            raise
        try:
            pkey = self._load_key(private_key)
        except BaseException:
            sock.close()
            raise
        from xscontainer.transport import ssh as ssh_transport  # noqa: PLC0415 (see TYPE_CHECKING)

        pinned = self.other_config.get(xapi_keys.SSH_HOST_KEY, "").strip() or None
        session = ssh_transport.SSHSession.open(
            sock, address, self.username, pkey, pinned, self.uuid, timeouts
        )
        session.docker_socket = docker_socket
        if pinned is None:
            try:
                self._pin_host_key(session.server_key_b64)
            except BaseException:
                session.close()
                raise
        return session

    @staticmethod
    def _load_key(private_key: str) -> "PKey":
        from xscontainer.transport import ssh as ssh_transport  # noqa: PLC0415 (see TYPE_CHECKING)

        return ssh_transport.load_private_key(private_key)

    def pin_host_key(self, key_b64: str) -> None:
        """Record the guest's SSH host key (xscontainer-prepare-vm pins at its first login)."""
        self._pin_host_key(key_b64)

    def _pin_host_key(self, key_b64: str) -> None:
        if self.xapi.add_key_if_absent("VM", self.ref, xapi_keys.SSH_HOST_KEY, key_b64):
            log.info("pinned the SSH host key of %s", self.where)
            return
        # pinned concurrently by another process: it must be the same key
        pinned = self.xapi.vm_other_config(self.ref).get(xapi_keys.SSH_HOST_KEY, "").strip()
        if pinned != key_b64:
            from xscontainer.transport import ssh as ssh_transport  # noqa: PLC0415

            raise ssh_transport.hostkey_mismatch(self.uuid, "its address")

    def version_key(self) -> str:
        """The key of this VM's engine in a VersionCache: the VM and how it is
        reached (mode, user, socket), so that new settings negotiate afresh."""
        config = self.other_config
        how = "|".join((self.mode, self.username, config.get(xapi_keys.DOCKER_SOCKET, "")))
        return "%s-%s" % (self.uuid, hashlib.sha256(how.encode("utf-8")).hexdigest()[:12])

    def docker(self, timeouts: Optional[Timeouts] = None,
               cache: Optional[VersionCache] = None,
               early_bridge: bool = False) -> "DockerClient":
        """A Docker client for the guest's engine, API version negotiated (or the
        one `cache` holds for it: see DockerClient.negotiate). `early_bridge`: in
        SSH mode, start the bridge to the engine's socket as soon as the session
        is up (a one-call process: see containers.py)."""
        timeouts = timeouts or Timeouts()
        if self.mode == "tls":
            return self._docker_tls(timeouts, cache)
        session = self.ssh(timeouts)
        try:
            if early_bridge:
                session.prepare_bridge(timeouts.request)
            from xscontainer.docker_api import DockerClient  # noqa: PLC0415 (see TYPE_CHECKING)
            from xscontainer.transport.sshbridge import SSHAdapter  # noqa: PLC0415 (likewise)

            adapter = SSHAdapter(session, timeouts.request)
            client = DockerClient(adapter, self.where, timeouts.request, on_close=session.close)
        except BaseException:
            session.close()
            raise
        try:
            return client.negotiate(cache, self.version_key())
        except BaseException:
            client.close()
            raise

    # -- TLS mode -------------------------------------------------------------------

    def tls_material(self) -> Material:
        """The VM's client certificate, key and CA from its XAPI secrets."""
        return tlssecrets.load(self.xapi, self.uuid, self.other_config, self.where)

    def tls_context(self) -> ssl.SSLContext:
        return tlscontext.make_context(self.tls_material(), self.uuid)

    def _docker_tls(self, timeouts: Timeouts, cache: Optional[VersionCache]) -> "DockerClient":
        from xscontainer.transport import tls as tls_transport  # noqa: PLC0415 (likewise)

        context = self.tls_context()
        tls_sock, address = tls_transport.connect(
            self.addresses(), context, timeouts.connect, timeouts.handshake, self.uuid, self.where
        )
        adapter = tls_transport.TLSAdapter(
            address, context, self.uuid, self.where, timeouts.request,
            connect_timeout=timeouts.connect, handshake_timeout=timeouts.handshake, first=tls_sock,
        )
        from xscontainer.docker_api import DockerClient  # noqa: PLC0415 (see TYPE_CHECKING)

        client = DockerClient(adapter, self.where, timeouts.request)
        try:
            return client.negotiate(cache, self.version_key())
        except BaseException:
            client.close()
            raise
