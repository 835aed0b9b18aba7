"""Walk the chain from dom0 to a guest's Docker engine and say where it breaks.

Used by the plugin's `diagnose` function, by xscontainer-prepare-vm and by the
monitor (the body of its XSCONTAINER_MONITOR_FAILED message). It changes
nothing: a host key that is not pinned yet is reported, not pinned.

The report, and the Chain the checks record their steps through, are in
diagnose_report.py. The checks of TLS guests are in diagnose_tls.py, imported
only for them: it brings certs.py and cryptography's x509, which SSH guests
never use.
"""

import logging
from typing import Dict, List, Optional

from xscontainer import docker_api, errors, poolkey, transport, xapi_keys
from xscontainer.diagnose_report import Chain, Report, Step
from xscontainer.guest import Guest
from xscontainer.log import guest_text
from xscontainer.transport import SSH_PORT, Timeouts, sshbridge
from xscontainer.transport import ssh as ssh_transport

log = logging.getLogger(__name__)

# What the guest says about its engine's socket: the one the bridge would use
# (the same choice, ssh_transport.choose_socket_script), its owner, group and
# mode, where it leads, who the user is, and which bridge tools exist.
_PROBE = (
    "{choose}; echo sock=$s; echo how=$o; "
    "if [ -S \"$s\" ]; then echo socket=yes; else echo socket=no; fi; "
    "if [ -r \"$s\" ] && [ -w \"$s\" ]; then echo access=yes; else echo access=no; fi; "
    "echo real=$(readlink -f \"$s\" 2>/dev/null); "
    "echo stat=$(stat -L -c '%U %G %a' \"$s\" 2>/dev/null); "
    "echo uid=$(id -u); echo groups=$(id -nG); "
    "for t in socat ncat podman docker; do command -v $t >/dev/null 2>&1 && echo tool=$t; done; "
    "true"
)
PODMAN_DROPIN = "/etc/systemd/system/podman.socket.d/xscontainer.conf"


def probe_command(override: Optional[str]) -> str:
    return _PROBE.format(choose=ssh_transport.choose_socket_script(override))


def _ssh_plan(user: str, socket: str = ssh_transport.DOCKER_SOCKET) -> List[str]:
    return [
        "the guest tools report an IPv4 address",
        "SSH port %d answers" % SSH_PORT,
        "the VM's SSH host key matches the pinned key",
        "the pool's SSH key is accepted for user %s" % user,
        "the VM's Docker socket setting is valid",
        "a shell runs for user %s" % user,
        "the Docker socket %s exists" % socket,
        "user %s may use the Docker socket" % user,
        "a stdio bridge to the socket is installed",
        "the Docker API version is supported",
    ]


def diagnose(guest: Guest, timeouts: Optional[Timeouts] = None) -> Report:
    timeouts = timeouts or Timeouts()
    note = ""
    if guest.other_config.get(xapi_keys.PREPARE_PENDING):
        # a TLS preparation waits for the VM's administrator: complete it if Docker
        # now answers with the new certificate, undo it if its time is up
        from xscontainer.prepare import pending  # noqa: PLC0415 (such VMs only)

        guest, note = pending.on_diagnose(guest)
    report = Report(guest.where)
    if note:
        report.steps.append(Step("the pending TLS preparation", True, note, warning=True))
    chain = Chain(report)
    try:
        _diagnose(guest, chain, timeouts)
    except Exception as exc:  # whatever a guest made a library raise: a failed step
        log.warning("diagnosing %s: unexpected %s: %s", guest.where, type(exc).__name__,
                    guest_text(str(exc)))
        log.debug("diagnosing %s failed unexpectedly", guest.where, exc_info=True)
        chain.fail("the next check", "it failed unexpectedly (%s: %s)" % (
            type(exc).__name__, guest_text(str(exc) or "no message")))
    finally:
        if guest.other_config.get(xapi_keys.MODE, "ssh") != "tls":
            chain.skip_rest(_ssh_plan(guest.username, _planned_socket(guest)))
        else:
            from xscontainer import diagnose_tls  # noqa: PLC0415 (TLS guests only)

            chain.skip_rest(diagnose_tls.PLAN)
    return report


def _diagnose(guest: Guest, chain: Chain, timeouts: Timeouts) -> None:
    chain.check("the VM is running", guest.require_running)
    mode = chain.check("its container management mode is known", lambda: guest.mode, str)
    if mode == "tls":
        from xscontainer import diagnose_tls  # noqa: PLC0415 (TLS guests only)

        diagnose_tls.checks(chain, guest, timeouts)
        return
    addresses = chain.check("the guest tools report an IPv4 address", guest.addresses,
                            ", ".join)
    connected = chain.check(
        "SSH port %d answers" % SSH_PORT,
        lambda: transport.connect_first(addresses or [], SSH_PORT, timeouts.connect),
        lambda c: "at %s" % c[1],
    )
    if connected is None:
        return
    sock, address = connected
    session = _ssh_checks(chain, guest, sock, address, timeouts)
    if session is None:
        return
    try:
        _docker_checks(chain, guest, session, timeouts)
    finally:
        session.close()


def _planned_socket(guest: Guest) -> str:
    return guest.other_config.get(xapi_keys.DOCKER_SOCKET, "").strip() \
        or ssh_transport.DOCKER_SOCKET


def _ssh_checks(chain: Chain, guest: Guest, sock: object, address: str,
                timeouts: Timeouts) -> Optional[ssh_transport.SSHSession]:
    pinned = guest.other_config.get(xapi_keys.SSH_HOST_KEY, "").strip() or None
    try:
        pkey = ssh_transport.load_private_key(poolkey.private_key(guest.xapi))
        session = ssh_transport.SSHSession.open(sock, address, guest.username, pkey,  # type: ignore[arg-type]
                                                pinned, guest.uuid, timeouts)
    except errors.SSHHostKeyMismatch as exc:
        chain.fail("the VM's SSH host key matches the pinned key", exc.message)
        return None
    except errors.SSHAuthFailed as exc:
        chain.check("the VM's SSH host key matches the pinned key", lambda: None,
                    lambda _: "yes" if pinned else "no key pinned yet (pinned at first use)")
        chain.fail("the pool's SSH key is accepted for user %s" % guest.username, exc.message)
        return None
    except errors.XSContainerError as exc:
        chain.fail("SSH connection to %s" % address, exc.message)
        return None
    except Exception as exc:  # a library's own error: the guest's doing, still a step
        chain.fail("SSH connection to %s" % address, "%s: %s" % (
            type(exc).__name__, guest_text(str(exc) or "no message")))
        return None
    chain.check("the VM's SSH host key matches the pinned key", lambda: None,
                lambda _: "yes" if pinned else "no key pinned yet (pinned at first use)")
    chain.check("the pool's SSH key is accepted for user %s" % guest.username, lambda: None)
    return session


def _docker_checks(chain: Chain, guest: Guest, session: ssh_transport.SSHSession,
                   timeouts: Timeouts) -> None:
    override = chain.check("the VM's Docker socket setting is valid",
                           lambda: guest.docker_socket,
                           lambda o: "%s=%s" % (xapi_keys.DOCKER_SOCKET, o) if o
                           else "not set: the socket is detected")
    if chain.broken:
        return
    session.docker_socket = override

    def probe() -> Dict[str, List[str]]:
        out = session.run(probe_command(override), timeout=timeouts.request)[1]
        facts: Dict[str, List[str]] = {}
        for line in out.decode("utf-8", "replace").splitlines():
            key, _, value = line.partition("=")
            facts.setdefault(key, []).append(guest_text(value, 300))
        return facts

    facts = chain.check("a shell runs for user %s" % guest.username, probe)
    if facts is None:
        return
    found = SocketFacts(facts, guest.username)
    if not found.exists:
        chain.fail("the Docker socket %s exists" % found.path, found.missing_advice(guest.uuid))
        return
    chain.check("the Docker socket %s exists" % found.path, lambda: None,
                lambda _: found.describe())
    if not found.access:
        chain.fail("user %s may use the Docker socket" % guest.username,
                   found.access_advice())
        return
    chain.check("user %s may use the Docker socket" % guest.username, lambda: None)
    if not found.tools:
        chain.fail("a stdio bridge to the socket is installed",
                   "the VM has neither socat, ncat, podman nor the docker CLI. Install socat "
                   "(the quickest bridge), e.g. apt-get install socat or dnf install socat.")
        return
    chain.check("a stdio bridge to the socket is installed", lambda: None,
                lambda _: ", ".join(found.tools))

    def api() -> docker_api.DockerClient:
        adapter = sshbridge.SSHAdapter(session, timeouts.request)
        client = docker_api.DockerClient(adapter, guest.where, timeouts.request)
        try:
            return client.negotiate()
        finally:
            client.close()

    chain.check(
        "the Docker API version is supported",
        api,
        lambda c: "%s %s, API %s (xscontainer speaks %s to %s)" % (
            c.engine, c.version_info.get("Version", "?"), c.api_version,
            docker_api.MIN_API, docker_api.MAX_API),
    )


def _one(facts: Dict[str, List[str]], key: str) -> str:
    return (facts.get(key) or [""])[0].strip()


class SocketFacts:
    """What the probe found about the engine socket, and the advice that fits:
    Docker's root:docker 0660 socket wants the user in the group; Podman's
    rootful socket (root:root 0600) no group helps; a rootless socket is the
    user's own and must be running."""

    def __init__(self, facts: Dict[str, List[str]], user: str) -> None:
        self.user = user
        self.path = _one(facts, "sock") or ssh_transport.DOCKER_SOCKET
        self.overridden = _one(facts, "how") == "override"
        self.exists = _one(facts, "socket") == "yes"
        self.access = _one(facts, "access") == "yes"
        self.real = _one(facts, "real") or self.path
        stat = _one(facts, "stat").split()
        self.owner, self.group, self.mode = stat if len(stat) == 3 else ("?", "?", "?")
        self.uid = _one(facts, "uid") or "UID"
        self.groups = _one(facts, "groups").split()
        self.tools = [t for t in facts.get("tool") or [] if t]

    @property
    def rootless(self) -> bool:
        return self.real.startswith("/run/user/") or self.path.startswith("/run/user/")

    @property
    def podman(self) -> bool:
        return "podman" in self.real or "podman" in self.path or (
            "podman" in self.tools and self.owner == "root" and self.group == "root")

    def describe(self) -> str:
        kind = "%s %s" % ("rootless" if self.rootless else "rootful",
                          "Podman" if self.podman else "Docker")
        via = " -> %s" % self.real if self.real != self.path else ""
        how = "other-config %s" % xapi_keys.DOCKER_SOCKET if self.overridden else "detected"
        return "%s%s, %s %s:%s %s (%s)" % (kind, via, "socket", self.owner, self.group,
                                           self.mode, how)

    def _rootless_podman_steps(self) -> str:
        return ("as %s: systemctl --user enable --now podman.socket; and as root: "
                "loginctl enable-linger %s (so that it runs without a login); xscontainer then "
                "finds /run/user/%s/podman/podman.sock" % (self.user, self.user, self.uid))

    def missing_advice(self, vm_uuid: str) -> str:
        if self.overridden:
            return ("it does not exist, and the VM's other-config %s names it. Start the engine "
                    "that listens there, or remove the setting to let xscontainer find the "
                    "socket: xe vm-param-remove uuid=%s param-name=other-config param-key=%s"
                    % (xapi_keys.DOCKER_SOCKET, vm_uuid, xapi_keys.DOCKER_SOCKET))
        if "podman" in self.tools:
            return ("no engine socket: neither %s nor user %s's rootless Podman socket "
                    "/run/user/%s/podman/podman.sock exists. For the user's rootless Podman, %s. "
                    "For rootful Podman: systemctl enable --now podman.socket (with podman-docker "
                    "installed it is also %s)."
                    % (ssh_transport.DOCKER_SOCKET, self.user, self.uid,
                       self._rootless_podman_steps(), ssh_transport.DOCKER_SOCKET))
        return ("it does not: Docker is not running in the VM (or not installed). "
                "Start it (e.g. systemctl enable --now docker), or install it.")

    def access_advice(self) -> str:
        where = "%s is %s:%s mode %s" % (self.path if self.real == self.path else
                                         "%s (-> %s)" % (self.path, self.real),
                                         self.owner, self.group, self.mode)
        groups = " ".join(self.groups) or "none"
        group_may = len(self.mode) >= 2 and self.mode[-2] in "67" and self.group not in (
            "root", "?")
        if group_may and self.group not in self.groups:
            return ("permission denied: %s and user %s is not in group %s (groups: %s). Add "
                    "the user to the group in the VM: usermod -aG %s %s"
                    % (where, self.user, self.group, groups, self.group, self.user))
        if group_may:
            return ("permission denied: %s and user %s is in group %s, yet may not use it: "
                    "check the folders on the way (ls -ld %s) and security modules "
                    "(SELinux, AppArmor) in the VM." % (where, self.user, self.group,
                                                        self.path.rsplit("/", 1)[0] or "/"))
        if self.rootless:
            return ("permission denied: %s, a rootless engine of another user. Use that user "
                    "(xscontainer-prepare-vm -v VM -u %s), or the user's own engine."
                    % (where, self.owner))
        if self.podman:
            return ("permission denied: %s: rootful Podman's socket is for root only, and no "
                    "group helps until its socket unit grants one. Either let group docker use "
                    "it: mkdir -p %s && printf '[Socket]\\nSocketGroup=docker\\nSocketMode=0660"
                    "\\n' > %s && systemctl daemon-reload && systemctl restart podman.socket, and "
                    "usermod -aG docker %s; or manage user %s's rootless Podman instead: %s"
                    % (where, PODMAN_DROPIN.rsplit("/", 1)[0], PODMAN_DROPIN, self.user,
                       self.user, self._rootless_podman_steps()))
        return ("permission denied: %s: only its owner may use it, and no group helps. Let "
                "the docker group use it (\"group\": \"docker\" in /etc/docker/daemon.json, "
                "then systemctl restart docker) and add the user: usermod -aG docker %s"
                % (where, self.user))
