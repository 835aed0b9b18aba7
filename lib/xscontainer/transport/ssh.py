"""SSH transport: one paramiko connection per guest, Docker reached through it.

* The TCP socket is ours (TCP_NODELAY, connect timeout) and handed to paramiko.
* The guest's host key is pinned: compared with the pinned one when there is
  one (and only that key type is negotiated, so a guest that also offers a newer
  key type is not mistaken for a changed one), else returned to the caller to pin.
* Authentication uses the pool's key only: no agent, no ~/.ssh keys.
* Docker's unix socket is reached through an exec channel running a stdio bridge:
  socat, else ncat, else the engine's CLI with the socket named
  (`docker -H unix://SOCK system dial-stdio`, or `podman --url` where Podman is
  installed), chosen by the guest's shell in the same exec (no extra round trip).
  The socket is the VM's other-config xscontainer-docker-socket when set, else
  the first usable of /var/run/docker.sock, the user's rootless Podman socket
  and rootless Docker socket (bridge_command). The Docker SDK speaks HTTP/1.1
  over such channels (SSHAdapter).
"""

import base64
import collections
import io
import logging
import shlex
import socket
import struct
import threading
import time
from typing import Any, Callable, Deque, List, Optional, Tuple

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from xscontainer import errors, xapi_keys
from xscontainer.log import guest_text
from xscontainer.transport.base import Timeouts, watch

log = logging.getLogger(__name__)
logging.getLogger("paramiko").setLevel(logging.WARNING)


class _NoTransportDumps(logging.Filter):
    """paramiko's transport thread logs each of its failures at ERROR as a traceback,
    line by line, quoting what the guest sent; the same failure reaches us as an
    exception, reported once and shortened. Its other messages are kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.ERROR


logging.getLogger("paramiko.transport").addFilter(_NoTransportDumps())


DOCKER_SOCKET = "/var/run/docker.sock"
# The sockets tried, in order, when the VM names none (other-config
# xscontainer-docker-socket): the system engine's (Docker's, or rootful Podman's
# when podman-docker links it there), then the SSH user's own rootless Podman and
# rootless Docker. The first the user may read and write is used; when there is
# none, the system socket (whose error then says why).
ROOTLESS_SOCKETS = ("/run/user/$u/podman/podman.sock", "/run/user/$u/docker.sock")
# Sets $s to the socket to use (shell builtins only, but for `id -u` when the
# system socket cannot be used), $o to "override" when the VM names it.
_CHOOSE = (
    "s={sock}; o=override; "
    "if [ -z \"$s\" ]; then o=detected; "
    "if [ -S {system} ] && [ -r {system} ] && [ -w {system} ]; then s={system}; "
    "else u=$(id -u); for c in {rootless}; do "
    "if [ -S \"$c\" ] && [ -r \"$c\" ] && [ -w \"$c\" ]; then s=$c; break; fi; done; "
    "[ -n \"$s\" ] || s={system}; fi; fi"
)
# The bridge: socat, else ncat (each dials the socket itself, and costs least),
# else the docker CLI with the socket named (`docker system dial-stdio` alone
# dials the CLI's default, which podman-docker makes the user's rootless
# socket), which only a real Docker CLI understands: with Podman installed
# (podman-docker), `podman --url` instead.
_BRIDGE = (
    "if command -v socat >/dev/null 2>&1; then exec socat - \"UNIX-CONNECT:$s\"; "
    "elif command -v ncat >/dev/null 2>&1; then exec ncat -U \"$s\"; "
    "elif command -v podman >/dev/null 2>&1; then "
    "exec podman --url \"unix://$s\" system dial-stdio; "
    "elif command -v docker >/dev/null 2>&1; then "
    "exec docker -H \"unix://$s\" system dial-stdio; "
    "else echo \"xscontainer: the VM has neither socat, ncat, podman nor the docker CLI to "
    "reach $s\" >&2; exit 127; fi"
)


def choose_socket_script(override: Optional[str] = None, system: str = DOCKER_SOCKET,
                         rootless: Tuple[str, ...] = ROOTLESS_SOCKETS) -> str:
    """Shell that sets $s to the Docker socket to use and $o to how it was chosen
    (`system` and `rootless`: other places, for tests)."""
    return _CHOOSE.format(sock=shlex.quote(override) if override else "",
                          system=shlex.quote(system), rootless=" ".join(rootless))


def bridge_command(override: Optional[str] = None, **places: Any) -> str:
    """The exec command connecting a channel's stdio to the guest's Docker socket."""
    return choose_socket_script(override, **places) + "; " + _BRIDGE


BRIDGE_COMMAND = bridge_command()
# paramiko sends a keepalive after this long without traffic. The monitor's
# probe (a round trip every --probe seconds of quiet, 20 by default) keeps its
# connections busier than that; a plugin's connection lasts a call.
KEEPALIVE_SECONDS = 60
# The global request of a round trip (round_trip), as OpenSSH's client sends
# for ServerAliveInterval.
ROUND_TRIP_REQUEST = "keepalive@openssh.com"
# paramiko's transport thread reads its socket with a 0.1 s timeout, waking ten
# times a second per connection to check whether to stop, send a keepalive or
# start a rekey: 2,000 wake-ups a second for a monitor of 200 VMs. Once
# authenticated, a session's socket times out after this instead. Nothing
# waits for those wake-ups: close() shuts the socket down first, which ends the
# thread's read at once; incoming data wakes it as before; a keepalive goes out
# within this of being due; a rekey we start ourselves (after 512 MiB) too.
IDLE_POLL_SECONDS = 5.0
# Host key algorithms to negotiate for each pinned key type.
_HOSTKEY_ALGORITHMS = {
    "ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"),
}


def reset_hostkey_command(vm_uuid: str) -> str:
    """The xe command that forgets the SSH host key pinned for a VM."""
    return "xe vm-param-remove uuid=%s param-name=other-config param-key=%s" % (
        vm_uuid, xapi_keys.SSH_HOST_KEY)


def hostkey_mismatch(vm_uuid: str, address: str) -> errors.SSHHostKeyMismatch:
    """The error for a VM whose SSH host key is not the one pinned for it."""
    return errors.SSHHostKeyMismatch(
        "The SSH host key of VM %s (at %s) does not match the key recorded when "
        "xscontainer first connected to it, which could be a security breach. If the "
        "change is expected (the VM was reinstalled or its SSH host keys regenerated), "
        "reset the recorded key with: %s" % (vm_uuid, address, reset_hostkey_command(vm_uuid)),
        vm_uuid,
        address,
    )


def key_type_of(key_b64: str) -> str:
    """The algorithm name inside an SSH public key blob (base64)."""
    try:
        blob = base64.b64decode(key_b64.encode("ascii"), validate=True)
        (length,) = struct.unpack(">I", blob[:4])
        return blob[4:4 + length].decode("ascii")
    except (ValueError, struct.error, UnicodeDecodeError):
        return ""


def load_private_key(text: str) -> paramiko.PKey:
    """Load the pool's private key (PEM or OpenSSH format; RSA, ECDSA or Ed25519).

    An RSA PEM key is loaded without re-checking its primes: the key comes from
    a XAPI secret xscontainer generated, and OpenSSL's check of a 4096-bit key
    costs ~0.4 s on every plugin call.
    """
    if "BEGIN RSA PRIVATE KEY" in text or "BEGIN PRIVATE KEY" in text:
        try:
            key = serialization.load_pem_private_key(
                text.encode("ascii"), password=None, unsafe_skip_rsa_key_validation=True
            )
        except (ValueError, TypeError, UnicodeEncodeError):
            key = None
        if isinstance(key, rsa.RSAPrivateKey):
            return paramiko.RSAKey(key=key)
    last: Optional[Exception] = None
    for cls in (paramiko.RSAKey, paramiko.ECDSAKey, paramiko.Ed25519Key):
        try:
            return cls.from_private_key(io.StringIO(text))
        except (paramiko.SSHException, ValueError) as exc:
            last = exc
    raise errors.SSHError(
        "The pool's SSH private key (a XAPI secret) cannot be loaded (%s). Remove pool "
        "other-config keys xscontainer-private-secret-uuid and xscontainer-public-secret-uuid "
        "to generate a new key, then run xscontainer-prepare-vm for each VM." % last
    )


class SSHSession:
    """An authenticated SSH connection to one guest."""

    def __init__(self, transport: paramiko.Transport, address: str, username: str,
                 timeouts: Timeouts) -> None:
        self.transport = transport
        self.address = address
        self.username = username
        self.timeouts = timeouts
        self._bridges: Deque[paramiko.Channel] = collections.deque(maxlen=8)
        self._prepared: Optional[paramiko.Channel] = None  # prepare_bridge's
        # the VM's other-config xscontainer-docker-socket (None: detected)
        self.docker_socket: Optional[str] = None

    @classmethod
    def open(cls, sock: socket.socket, address: str, username: str, pkey: paramiko.PKey,
             pinned_key_b64: Optional[str], vm_uuid: str,
             timeouts: Optional[Timeouts] = None) -> "SSHSession":
        """Handshake, check the host key against the pin (if any), authenticate.

        The caller pins `session.server_key_b64` when there was no pin yet.
        """
        def authenticate(transport: paramiko.Transport) -> None:
            try:
                transport.auth_publickey(username, pkey)
            except paramiko.AuthenticationException as exc:
                raise errors.SSHAuthFailed(
                    "The VM refused the pool's SSH key for user '%s' at %s. Install the key with "
                    "'xscontainer-prepare-vm -v %s -u %s', or set other-config "
                    "xscontainer-username to the right user." % (username, address, vm_uuid,
                                                                   username),
                    vm_uuid,
                ) from exc

        return cls._open(sock, address, username, pinned_key_b64, vm_uuid, timeouts,
                         authenticate)

    @classmethod
    def open_with_password(cls, sock: socket.socket, address: str, username: str, password: str,
                           pinned_key_b64: Optional[str], vm_uuid: str,
                           timeouts: Optional[Timeouts] = None) -> "SSHSession":
        """As `open`, authenticating with the user's password (keyboard-interactive
        as a fallback, for sshd set up for PAM prompts). For xscontainer-prepare-vm."""

        def authenticate(transport: paramiko.Transport) -> None:
            try:
                transport.auth_password(username, password, fallback=True)
            except paramiko.BadAuthenticationType as exc:
                raise errors.SSHAuthFailed(
                    "The SSH server of the VM at %s does not accept passwords (it allows: %s). "
                    "Allow password logins for a moment (PasswordAuthentication yes in the VM's "
                    "sshd_config), or add the pool's public key to ~%s/.ssh/authorized_keys "
                    "yourself." % (address, ", ".join(exc.allowed_types) or "nothing", username),
                    vm_uuid,
                ) from exc
            except paramiko.AuthenticationException as exc:
                raise errors.SSHAuthFailed(
                    "The VM at %s refused the password for user '%s'. Check the user name and "
                    "the password, and that the account may log in over SSH." % (address,
                                                                                   username),
                    vm_uuid,
                ) from exc

        return cls._open(sock, address, username, pinned_key_b64, vm_uuid, timeouts,
                         authenticate)

    @classmethod
    def _open(cls, sock: socket.socket, address: str, username: str,
              pinned_key_b64: Optional[str], vm_uuid: str, timeouts: Optional[Timeouts],
              authenticate: Callable[[paramiko.Transport], None]) -> "SSHSession":
        """Handshake (host key checked), `authenticate`, keepalives; closed on failure."""
        session = cls._handshake(sock, address, username, pinned_key_b64, vm_uuid, timeouts)
        try:
            timeouts = timeouts or Timeouts()
            watchdog = _Watchdog(timeouts.auth, session.transport)
            try:
                authenticate(session.transport)
            except errors.XSContainerError:
                raise
            except Exception as exc:
                if watchdog.fired:
                    raise errors.Timeout(
                        "The SSH server of the VM at %s did not finish authenticating "
                        "within %gs." % (address, timeouts.auth), vm_uuid) from exc
                raise errors.SSHError(
                    "SSH authentication with %s failed: %s" % (address, guest_text(_text(exc)))
                ) from exc
            finally:
                watchdog.cancel()
            session.transport.set_keepalive(KEEPALIVE_SECONDS)
            sock.settimeout(IDLE_POLL_SECONDS)
            return session
        except BaseException:
            session.close()
            raise

    @classmethod
    def _handshake(cls, sock: socket.socket, address: str, username: str,
                   pinned_key_b64: Optional[str], vm_uuid: str,
                   timeouts: Optional[Timeouts]) -> "SSHSession":
        """Key exchange on `sock`; the host key checked against the pin (if any)."""
        timeouts = timeouts or Timeouts()
        transport = paramiko.Transport(sock)
        transport.banner_timeout = timeouts.handshake
        transport.handshake_timeout = timeouts.handshake
        transport.auth_timeout = timeouts.auth
        if pinned_key_b64:
            _restrict_host_key_types(transport, key_type_of(pinned_key_b64))
        session = cls(transport, address, username, timeouts)
        # a deadline for the handshake as a whole: paramiko's own timeouts are per
        # read, so an sshd that trickles its banner would otherwise keep us forever
        watchdog = _Watchdog(timeouts.handshake, transport)
        try:
            try:
                transport.start_client(timeout=timeouts.handshake)
            except Exception as exc:
                text = _text(exc)
                if pinned_key_b64 and "host key" in text.lower():
                    raise hostkey_mismatch(vm_uuid, address) from exc
                if watchdog.fired or "timed out" in text.lower() or (
                        "banner" in text.lower() and watchdog.elapsed() >= timeouts.handshake):
                    raise errors.Timeout(
                        "The SSH server of the VM at %s did not answer: no SSH handshake "
                        "within %gs. Check that sshd runs in the VM and is not overloaded."
                        % (address, timeouts.handshake), vm_uuid) from exc
                if "banner" in text.lower() or "protocol version" in text.lower():
                    raise errors.SSHError(
                        "The SSH server of the VM at %s did not answer with an SSH banner "
                        "(port 22 speaks something else, or closed the connection): %s."
                        % (address, guest_text(text)), vm_uuid) from exc
                if isinstance(exc, (EOFError, ConnectionError)):
                    raise errors.SSHError(
                        "The SSH server of the VM at %s closed the connection during the SSH "
                        "handshake (%s). Check that sshd runs in the VM and accepts "
                        "connections from this host." % (address, guest_text(text)),
                        vm_uuid) from exc
                raise errors.SSHError(
                    "SSH handshake with %s failed: %s. Check that sshd runs in the VM."
                    % (address, guest_text(text)), vm_uuid
                ) from exc
            finally:
                watchdog.cancel()
            if pinned_key_b64 and session.server_key_b64 != pinned_key_b64:
                raise hostkey_mismatch(vm_uuid, address)
            return session
        except BaseException:
            session.close()
            raise

    @property
    def server_key_b64(self) -> str:
        return str(self.transport.get_remote_server_key().get_base64())

    def is_active(self) -> bool:
        return bool(self.transport.is_active())

    def round_trip(self) -> None:
        """A request the guest's sshd must answer (any answer will do: OpenSSH
        refuses a request it does not know, which is an answer): proof that the
        guest and its sshd are alive, at a tenth of the cost of a Docker request.
        Inside a request deadline (BoundedAdapter.streaming), whose passing
        closes the connection."""
        watch(self.close)
        self.transport.global_request(ROUND_TRIP_REQUEST, wait=True)
        if not self.transport.is_active():
            raise errors.SSHError("The SSH connection to the VM at %s closed." % self.address)

    def close(self) -> None:
        # ends the transport thread's read now, not at its next timeout
        sock = getattr(self.transport, "sock", None)
        if isinstance(sock, socket.socket):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # not connected (any more)
        self.transport.close()

    # -- commands -----------------------------------------------------------

    def _channel(self, timeout: float) -> paramiko.Channel:
        try:
            return self.transport.open_session(timeout=timeout)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise errors.SSHError(
                "Cannot open an SSH channel to %s: %s" % (self.address, _text(exc))
            ) from exc

    def run(self, command: str, stdin: bytes = b"", timeout: Optional[float] = None,
            max_bytes: int = 1 << 20) -> Tuple[int, bytes, bytes]:
        """Run a command in the guest; returns (exit status, stdout, stderr)."""
        timeout = self.timeouts.request if timeout is None else timeout
        deadline = time.monotonic() + timeout
        chan = self._channel(timeout)
        try:
            chan.settimeout(timeout)
            chan.exec_command(command)
            if stdin:
                chan.sendall(stdin)
            chan.shutdown_write()
            out = _read_all(chan.recv, max_bytes, deadline, "output of %r" % command)
            err = _read_all(chan.recv_stderr, max_bytes, deadline, "errors of %r" % command)
            if not chan.status_event.wait(max(0.0, deadline - time.monotonic())):
                raise errors.Timeout("%r did not finish within %gs in the VM." % (command, timeout))
            return chan.recv_exit_status(), out, err
        except socket.timeout as exc:
            raise errors.Timeout(
                "%r did not finish within %gs in the VM." % (command, timeout)
            ) from exc
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise errors.SSHError(
                "Running %r in the VM failed: %s" % (command, _text(exc))
            ) from exc
        finally:
            chan.close()

    def prepare_bridge(self, timeout: float) -> None:
        """Open a bridge now, for the next open_bridge: the guest starts it while
        this process does other work. A failure is left to open_bridge to report."""
        try:
            self._prepared = self.open_bridge(timeout)
        except errors.SSHError as exc:
            log.debug("bridge not prepared: %s", exc)

    def open_bridge(self, timeout: float) -> paramiko.Channel:
        """A channel whose stdio is connected to the guest's Docker socket."""
        prepared, self._prepared = self._prepared, None
        if prepared is not None and channel_usable(prepared):
            prepared.settimeout(timeout)
            return prepared
        chan = self._channel(timeout)
        chan.settimeout(timeout)
        try:
            chan.exec_command(bridge_command(self.docker_socket))
        except (paramiko.SSHException, OSError, EOFError) as exc:
            chan.close()
            raise errors.SSHError(
                "Cannot start the Docker socket bridge in the VM: %s" % _text(exc)
            ) from exc
        self._bridges.append(chan)
        return chan

    def bridge_failure(self, wait: float = 1.0) -> str:
        """What the most recent failed bridge said on stderr (for error messages)."""
        for chan in reversed(self._bridges):
            if not chan.status_event.wait(wait):
                continue
            status = chan.recv_exit_status()
            if status == 0:
                continue
            stderr = b""
            while chan.recv_stderr_ready() and len(stderr) < 4096:
                stderr += chan.recv_stderr(4096)
            text = stderr.decode("utf-8", "replace").strip()
            return text or "the Docker socket bridge exited with status %d" % status
        return ""


def channel_usable(chan: paramiko.Channel) -> bool:
    """Whether a bridge channel may carry another request: not closed, its
    command not ended. From the channel's own flags: polling its fileno()
    would make paramiko create a pipe for it."""
    return not (chan.closed or chan.eof_received or chan.exit_status_ready())


def _read_all(read: Any, max_bytes: int, deadline: float, what: str) -> bytes:
    parts: List[bytes] = []
    total = 0
    while True:
        if time.monotonic() > deadline:
            raise socket.timeout()
        data = read(65536)
        if not data:
            return b"".join(parts)
        total += len(data)
        if total > max_bytes:
            raise errors.ResponseTooLarge("The %s exceeded %d bytes." % (what, max_bytes))
        parts.append(data)


def _restrict_host_key_types(transport: paramiko.Transport, key_type: str) -> None:
    options = transport.get_security_options()
    wanted = _HOSTKEY_ALGORITHMS.get(key_type, (key_type,))
    usable = tuple(k for k in wanted if k in options.key_types)
    if usable:
        options.key_types = usable


class _Watchdog:
    """Closes a paramiko transport (and its socket) once `seconds` have passed,
    which ends whatever paramiko waits for; `fired` says whether it did."""

    def __init__(self, seconds: float, transport: paramiko.Transport) -> None:
        self._started = time.monotonic()
        self._transport = transport
        self.fired = False
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        self.fired = True
        sock = getattr(self._transport, "sock", None)
        try:
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # closed already
        self._transport.close()

    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def cancel(self) -> None:
        self._timer.cancel()


def _text(exc: BaseException) -> str:
    return str(exc) or exc.__class__.__name__
