"""SSH mode (xscontainer-prepare-vm --mode ssh, plugin prepare): authorise the
pool's SSH key in a Linux guest. `prepare` is the one implementation both
entry points run.

1. The VM must exist, run and report an IPv4 address.
2. With the user's password (typed, on stdin, or from a XAPI secret that is
   destroyed once read, whatever happens): one SSH login as the user (same
   TCP, handshake and host-key code as every other xscontainer connection),
   and the pool's public key is appended to ~USER/.ssh/authorized_keys by a
   fixed shell script that reads the key from stdin: nothing from XAPI is put
   into a command line. Without a password the guest must already accept the
   pool key (config drive, cloud-init). The host key must be the one given
   (sshhostkey / --ssh-host-key), else the one pinned already, if any.
3. The chain is checked as the plugin's diagnose does (key login, Docker socket,
   access to it, API version), with the new settings, before they are stored.
   If the check fails, a key this run added is removed again and nothing is
   written to XAPI.
4. The host key is pinned, xscontainer-username and xscontainer-mode=ssh are
   set (and xscontainer-docker-socket when a socket was given), TLS secrets
   the VM no longer needs are released, and the VM is registered for
   monitoring (a key that already reads True is left alone).

Running it again changes nothing that is already right; it is also how a VM that
moved to another pool (another pool key) is enabled again. A refused password
stops before anything is written: no pin, no key, no other-config change, and
not even a pool key is generated.
"""

import base64
import binascii
import logging
from typing import Any, Optional, Tuple

from xscontainer import errors, poolkey, tlssecrets, transport, xapi_keys
from xscontainer.diagnose_report import Report
from xscontainer.guest import Guest
from xscontainer.prepare import common
from xscontainer.prepare.console import Aborted, Console
from xscontainer.transport import SSH_PORT
from xscontainer.transport import ssh as ssh_transport
from xscontainer.transport.ssh import SSHSession
from xscontainer.xapi import Xapi

log = logging.getLogger(__name__)

# Reads the public key line from stdin; creates ~/.ssh (0700) and
# authorized_keys (0600) when missing; appends the key unless its base64 body is
# already there; keeps every other line; restores SELinux labels where that
# exists. One line, no quotes, backslashes or '!', so that it survives being
# passed through any login shell (sh, bash, zsh, fish, csh) to /bin/sh -c.
# Both scripts start by reading the key line and going home.
_READ_KEY = [
    "umask 077",
    "IFS= read -r key || [ -n \"$key\" ] || exit 3",
    "set -f",
    "set -- $key",
    "[ $# -ge 2 ] || exit 3",
    "body=$2",
    "cd || exit 4",
]
INSTALL_KEY_SCRIPT = "; ".join([
    *_READ_KEY,
    "[ -d .ssh ] || mkdir .ssh || exit 5",
    "f=.ssh/authorized_keys",
    "[ -e $f ] || : > $f || exit 6",
    "if grep -q -F -e \"$body\" $f; then echo present",
    "else if [ -s $f ] && [ $(tail -c 1 $f | wc -l) -eq 0 ]; then echo >> $f || exit 7; fi",
    "echo \"$key\" >> $f || exit 7",
    "echo added; fi",
    "if command -v restorecon >/dev/null 2>&1; then restorecon -F .ssh $f >/dev/null 2>&1",
    "fi",
    "exit 0",
])
INSTALL_KEY_COMMAND = "exec /bin/sh -c '%s'" % INSTALL_KEY_SCRIPT
# Its undo: drops the lines holding the key's base64 body (the same key line
# from stdin), keeping every other line; the file keeps its inode and mode.
REMOVE_KEY_SCRIPT = "; ".join([
    *_READ_KEY,
    "f=.ssh/authorized_keys",
    "[ -e $f ] || exit 0",
    "grep -v -F -e \"$body\" $f > $f.xsc-tmp",
    "cat $f.xsc-tmp > $f || exit 7",
    "rm -f $f.xsc-tmp",
    "exit 0",
])
REMOVE_KEY_COMMAND = "exec /bin/sh -c '%s'" % REMOVE_KEY_SCRIPT
_EXIT_REASONS = {
    3: "it received no key",
    4: "the user has no home directory",
    5: "~/.ssh could not be created",
    6: "~/.ssh/authorized_keys could not be created",
    7: "~/.ssh/authorized_keys could not be written",
}


def run(console: Console, xapi: Xapi, vm_uuid: str, username: str,
        password_from_stdin: bool, password_secret: Optional[str] = None,
        expected_key: Optional[str] = None, docker_socket: Optional[str] = None) -> None:
    """The command line's SSH preparation: asks, reads the password, prepares. A
    password secret is destroyed whatever happens."""
    try:
        if docker_socket:
            transport.base.check_socket_path(docker_socket, "--docker-socket")
        guest = common.running_guest(xapi, vm_uuid)
        guest.addresses()
        console.say("Preparing %s for container management over SSH as user %s." % (
            guest.where, username))
        if not console.confirm(
                "Authorise the hosts of this pool to log in to the VM as %s with the pool's SSH "
                "key (it is added to ~%s/.ssh/authorized_keys)?" % (username, username)):
            raise Aborted("Nothing was changed.")
        if password_secret:
            password = take_password(xapi, password_secret, vm_uuid)
        else:
            password = console.password("Password of %s in the VM: " % username,
                                        password_from_stdin)
        prepare(console, guest, username, password, expected_key, docker_socket)
    finally:
        if password_secret:
            destroy_password_secret(xapi, password_secret)


def take_password(xapi: Xapi, secret_uuid: str, vm_uuid: str) -> str:
    """The password a XAPI secret holds; the secret is destroyed, whatever happens."""
    try:
        try:
            password = xapi.secret_value(secret_uuid)
        except errors.XAPIError as exc:
            if not exc.gone:
                raise
            raise errors.InvalidArgument(
                "There is no XAPI secret with uuid %s (passwordsecret). Create one with "
                "'xe secret-create value=<password>' and pass the uuid it prints; each "
                "secret serves one call." % secret_uuid, vm_uuid) from exc
    finally:
        destroy_password_secret(xapi, secret_uuid)
        log.info("read and destroyed the password secret %s", secret_uuid)
    if not password:
        raise errors.InvalidArgument(
            "The secret %s (passwordsecret) holds an empty password." % secret_uuid, vm_uuid)
    return password


def destroy_password_secret(xapi: Xapi, secret_uuid: str) -> None:
    """Destroy it (gone already is fine); a failure is logged, not raised."""
    try:
        xapi.destroy_secret(secret_uuid)
    except errors.XAPIError as exc:
        log.error("could not destroy the password secret %s: %s", secret_uuid, exc.message)


def host_key_body(text: str) -> str:
    """The base64 body of a host key given as 'TYPE BASE64 [COMMENT]' or BASE64."""
    fields = text.split()
    body = fields[1] if len(fields) >= 2 else (fields[0] if fields else "")
    try:
        if not body or not base64.b64decode(body.encode("ascii"), validate=True):
            raise ValueError(body)
    except (ValueError, binascii.Error) as exc:
        raise errors.InvalidArgument(
            "sshhostkey must be the VM's SSH host key as 'ssh-ed25519 AAAA...' (a line of the "
            "VM's /etc/ssh/ssh_host_*_key.pub) or its base64 part alone.") from exc
    return body


def prepare(console: Console, guest: Guest, username: str, password: Optional[str],
            expected_key: Optional[str], docker_socket: Optional[str] = None) -> Report:
    """Prepare a running guest for SSH: the implementation both entry points run.

    With a password: one password login installs the pool key (removed again
    if the check then fails and it was not there before). Without: the guest
    must already accept the pool key (a config drive or cloud-init put it
    there). The host key the guest presents must be `expected_key` when given,
    else the key pinned already, if any; it is pinned only once the whole
    chain works. `docker_socket`, when given, is checked as the VM's socket and
    stored with the rest. Nothing is written to XAPI before the check passes.
    """
    xapi = guest.xapi
    addresses = guest.addresses()
    current_pin = common.other_config_value(guest, xapi_keys.SSH_HOST_KEY)
    pin = expected_key or current_pin
    with_password = password is not None
    sock, address = transport.connect_first(addresses, SSH_PORT, common.TIMEOUTS.connect)
    try:
        if password is not None:
            console.say("Logging in to %s as %s with the password." % (address, username))
            session = SSHSession.open_with_password(sock, address, username, password, pin,
                                                    guest.uuid, common.TIMEOUTS)
        else:
            console.say("Logging in to %s as %s with the pool's SSH key." % (address, username))
            pkey = ssh_transport.load_private_key(poolkey.private_key(xapi))
            session = _open_with_pool_key(sock, address, username, pkey, pin, guest)
    except errors.SSHHostKeyMismatch as exc:
        if expected_key is None:
            raise
        raise errors.SSHHostKeyMismatch(
            "The SSH host key of %s (at %s) is not the key given as sshhostkey: nothing was "
            "changed. Check the key (ssh-keyscan, or /etc/ssh/ssh_host_*_key.pub in the VM) "
            "and the VM's address." % (guest.where, address), guest.uuid, address) from exc
    del password
    added = False
    try:
        server_key = session.server_key_b64
        if current_pin is None or current_pin != server_key:
            console.say("The VM's SSH host key %s." % (
                "is the one given" if expected_key else "was seen for the first time"))
        if with_password:
            added = _install_key(console, session, poolkey.public_key_line(xapi), username,
                                 address)
        settings = {xapi_keys.USERNAME: username, xapi_keys.MODE: "ssh",
                    xapi_keys.SSH_HOST_KEY: server_key}
        if docker_socket:
            settings[xapi_keys.DOCKER_SOCKET] = docker_socket
        probe = common.with_settings(common.reload(guest), **settings)
        report = common.verify(console, probe)
    except BaseException as exc:
        if added:
            if isinstance(exc, common.NotWorking):
                common.classify(exc)  # while the key is still there
            _remove_key(session, poolkey.public_key_line(xapi), username)
        raise
    finally:
        session.close()

    _store(console, guest, username, current_pin, server_key, docker_socket)
    _release_tls(console, guest)
    common.register(console, guest)
    console.say("Done: the pool manages the containers of %s over SSH." % guest.where)
    return report


def _open_with_pool_key(sock: Any, address: str, username: str, pkey: Any,
                        pin: Optional[str], guest: Guest) -> SSHSession:
    try:
        return SSHSession.open(sock, address, username, pkey, pin, guest.uuid, common.TIMEOUTS)
    except errors.SSHAuthFailed as exc:
        raise errors.SSHAuthFailed(
            "%s refused the pool's SSH key for user '%s' at %s. Give the user's password as "
            "a XAPI secret (xe secret-create value=<password>; args:passwordsecret=<its uuid>) "
            "so that the key can be installed, or seed the key with a config drive or "
            "cloud-init." % (guest.where, username, address), guest.uuid) from exc


def _store(console: Console, guest: Guest, username: str, current_pin: Optional[str],
           server_key: str, docker_socket: Optional[str] = None) -> None:
    xapi = guest.xapi
    if current_pin is None:
        guest.pin_host_key(server_key)
        console.say("Recorded the VM's SSH host key (other-config %s)." % xapi_keys.SSH_HOST_KEY)
    elif current_pin != server_key:
        xapi.set_vm_other_config(guest.ref, xapi_keys.SSH_HOST_KEY, server_key)
        console.say("Replaced the recorded SSH host key with the one given (other-config %s)."
                    % xapi_keys.SSH_HOST_KEY)
    wanted: Tuple[Tuple[str, str], ...] = (
        (xapi_keys.USERNAME, username), (xapi_keys.MODE, "ssh"))
    if docker_socket:
        wanted += ((xapi_keys.DOCKER_SOCKET, docker_socket),)
    changed = [key for key, value in wanted if common.ensure(xapi, guest.ref, key, value)]
    if changed:
        console.say("Stored other-config %s." % ", ".join(
            "%s=%s" % (k, v) for k, v in wanted if k in changed))


def _install_key(console: Console, session: SSHSession, public_line: str, username: str,
                 address: str) -> bool:
    """Append the pool key to the user's authorized_keys; whether it was added (False:
    it was there already)."""
    status, out, err = session.run(INSTALL_KEY_COMMAND, stdin=(public_line + "\n").encode("ascii"),
                                   timeout=common.TIMEOUTS.request, max_bytes=64 * 1024)
    if status != 0:
        reason = _EXIT_REASONS.get(status) or err.decode("utf-8", "replace").strip()[-300:] or (
            "exit status %d" % status)
        raise errors.SSHError(
            "Adding the pool's key to ~%s/.ssh/authorized_keys at %s failed: %s. Check the "
            "user's home directory and its permissions in the VM." % (username, address, reason))
    if out.strip().endswith(b"present"):
        console.say("The pool's SSH key was already in ~%s/.ssh/authorized_keys." % username)
        return False
    console.say("Added the pool's SSH key to ~%s/.ssh/authorized_keys." % username)
    return True


def _remove_key(session: SSHSession, public_line: str, username: str) -> None:
    """Undo _install_key after a failed check (best effort: the failure matters more)."""
    try:
        status, _out, err = session.run(
            REMOVE_KEY_COMMAND, stdin=(public_line + "\n").encode("ascii"),
            timeout=common.TIMEOUTS.request, max_bytes=64 * 1024)
        if status == 0:
            log.info("removed the pool key from ~%s/.ssh/authorized_keys again", username)
            return
        reason = err.decode("utf-8", "replace").strip()[-300:] or "exit status %d" % status
    except Exception as exc:  # reported below; the original error is raised
        reason = str(exc)
    log.error("could not remove the pool key from ~%s/.ssh/authorized_keys after the "
              "failed check: %s", username, reason)


def _release_tls(console: Console, guest: Guest) -> None:
    """A VM that was in TLS mode keeps no TLS secrets once it uses SSH."""
    if tlssecrets.secret_uuids(guest.xapi.vm_other_config(guest.ref)):
        tlssecrets.forget(guest.xapi, guest.ref)
        console.say("Removed the VM's TLS certificates from the pool (it uses SSH now).")
