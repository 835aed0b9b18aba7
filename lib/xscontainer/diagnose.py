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
import shlex
from typing import Dict, List, Optional

from xscontainer import docker_api, errors, poolkey, transport, xapi_keys
from xscontainer.diagnose_report import Chain, Report, Step
from xscontainer.guest import Guest
from xscontainer.log import guest_text
from xscontainer.transport import SSH_PORT, Timeouts
from xscontainer.transport import ssh as ssh_transport

log = logging.getLogger(__name__)

_PROBE = (
    "s={sock}; "
    "if [ -S $s ]; then echo socket=yes; else echo socket=no; fi; "
    "if [ -r $s ] && [ -w $s ]; then echo access=yes; else echo access=no; fi; "
    "echo groups=$(id -nG); "
    "for t in docker socat ncat; do command -v $t >/dev/null 2>&1 && echo tool=$t; done; "
    "true"
).format(sock=shlex.quote(ssh_transport.DOCKER_SOCKET))


def _ssh_plan(user: str) -> List[str]:
    return [
        "the guest tools report an IPv4 address",
        "SSH port %d answers" % SSH_PORT,
        "the VM's SSH host key matches the pinned key",
        "the pool's SSH key is accepted for user %s" % user,
        "a shell runs for user %s" % user,
        "the Docker socket %s exists" % ssh_transport.DOCKER_SOCKET,
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
            chain.skip_rest(_ssh_plan(guest.username))
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
    def probe() -> Dict[str, List[str]]:
        out = session.run(_PROBE, timeout=timeouts.request)[1]
        facts: Dict[str, List[str]] = {}
        for line in out.decode("utf-8", "replace").splitlines():
            key, _, value = line.partition("=")
            facts.setdefault(key, []).append(value)
        return facts

    facts = chain.check("a shell runs for user %s" % guest.username, probe)
    if facts is None:
        return
    sock = ssh_transport.DOCKER_SOCKET
    if facts.get("socket") != ["yes"]:
        chain.fail("the Docker socket %s exists" % sock,
                   "it does not: Docker is not running in the VM (or not installed). "
                   "Start it (e.g. systemctl enable --now docker), or install it.")
        return
    chain.check("the Docker socket %s exists" % sock, lambda: None)
    if facts.get("access") != ["yes"]:
        groups = (facts.get("groups") or [""])[0]
        chain.fail("user %s may use the Docker socket" % guest.username,
                   "permission denied (groups: %s). Add the user to the docker group in the VM: "
                   "usermod -aG docker %s" % (groups or "none", guest.username))
        return
    chain.check("user %s may use the Docker socket" % guest.username, lambda: None)
    tools = facts.get("tool") or []
    if not tools:
        chain.fail("a stdio bridge to the socket is installed",
                   "the VM has neither the docker CLI, socat nor ncat. Install one of them.")
        return
    chain.check("a stdio bridge to the socket is installed", lambda: None,
                lambda _: ", ".join(tools))

    def api() -> docker_api.DockerClient:
        adapter = ssh_transport.SSHAdapter(session, timeouts.request)
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
