"""xscontainer-prepare-vm --mode ssh: authorise the pool's SSH key in a Linux guest.

1. The VM must exist, run and report an IPv4 address.
2. One SSH login as the user with the user's password (same TCP, handshake and
   host-key code as every other xscontainer connection). The guest's host key
   is pinned now if it was not yet (or must match the pin). The pool's public
   key is appended to ~USER/.ssh/authorized_keys by a fixed shell script that
   reads the key from stdin: nothing from XAPI is put into a command line.
3. The chain is checked as the plugin's diagnose does (key login, Docker socket,
   access to it, API version), with the new settings, before they are stored.
4. xscontainer-username and xscontainer-mode=ssh are set, TLS secrets the VM
   no longer needs are released, and the VM is registered for monitoring.

Running it again changes nothing that is already right; it is also how a VM that
moved to another pool (another pool key) is enabled again. A refused password
stops before anything is written: no pin, no key, no other-config change, and
not even a pool key is generated.
"""

import logging

from xscontainer import errors, poolkey, tlssecrets, transport, xapi_keys
from xscontainer.guest import Guest
from xscontainer.prepare import common
from xscontainer.prepare.console import Aborted, Console
from xscontainer.transport import SSH_PORT
from xscontainer.transport.ssh import SSHSession
from xscontainer.xapi import Xapi

log = logging.getLogger(__name__)

# Reads the public key line from stdin; creates ~/.ssh (0700) and
# authorized_keys (0600) when missing; appends the key unless its base64 body is
# already there; keeps every other line; restores SELinux labels where that
# exists. One line, no quotes, backslashes or '!', so that it survives being
# passed through any login shell (sh, bash, zsh, fish, csh) to /bin/sh -c.
INSTALL_KEY_SCRIPT = "; ".join([
    "umask 077",
    "IFS= read -r key || [ -n \"$key\" ] || exit 3",
    "set -f",
    "set -- $key",
    "[ $# -ge 2 ] || exit 3",
    "body=$2",
    "cd || exit 4",
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
_EXIT_REASONS = {
    3: "it received no key",
    4: "the user has no home directory",
    5: "~/.ssh could not be created",
    6: "~/.ssh/authorized_keys could not be created",
    7: "~/.ssh/authorized_keys could not be written",
}


def run(console: Console, xapi: Xapi, vm_uuid: str, username: str,
        password_from_stdin: bool) -> None:
    guest = common.running_guest(xapi, vm_uuid)
    addresses = guest.addresses()
    console.say("Preparing %s for container management over SSH as user %s." % (
        guest.where, username))
    if not console.confirm(
            "Authorise the hosts of this pool to log in to the VM as %s with the pool's SSH key "
            "(it is added to ~%s/.ssh/authorized_keys)?" % (username, username)):
        raise Aborted("Nothing was changed.")
    password = console.password("Password of %s in the VM: " % username, password_from_stdin)
    sock, address = transport.connect_first(addresses, SSH_PORT, common.TIMEOUTS.connect)
    pinned = common.other_config_value(guest, xapi_keys.SSH_HOST_KEY)
    console.say("Logging in to %s as %s with the password." % (address, username))
    session = SSHSession.open_with_password(sock, address, username, password, pinned, vm_uuid,
                                            common.TIMEOUTS)
    del password
    try:
        if pinned is None:
            guest.pin_host_key(session.server_key_b64)
            console.say("Recorded the VM's SSH host key (other-config %s)."
                        % xapi_keys.SSH_HOST_KEY)
        _install_key(console, session, poolkey.public_key_line(xapi), username, address)
    finally:
        session.close()

    probe = common.with_settings(common.reload(guest), **{xapi_keys.USERNAME: username,
                                                          xapi_keys.MODE: "ssh"})
    common.verify(console, probe)
    changed = [key for key, value in ((xapi_keys.USERNAME, username), (xapi_keys.MODE, "ssh"))
               if common.ensure(xapi, guest.ref, key, value)]
    if changed:
        console.say("Stored other-config %s." % ", ".join(
            "%s=%s" % (k, v) for k, v in ((xapi_keys.USERNAME, username), (xapi_keys.MODE, "ssh"))
            if k in changed))
    _release_tls(console, guest)
    common.register(console, guest)
    console.say("Done: the pool manages the containers of %s over SSH." % guest.where)


def _install_key(console: Console, session: SSHSession, public_line: str, username: str,
                 address: str) -> None:
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
    else:
        console.say("Added the pool's SSH key to ~%s/.ssh/authorized_keys." % username)


def _release_tls(console: Console, guest: Guest) -> None:
    """A VM that was in TLS mode keeps no TLS secrets once it uses SSH."""
    if tlssecrets.secret_uuids(guest.xapi.vm_other_config(guest.ref)):
        tlssecrets.forget(guest.xapi, guest.ref)
        console.say("Removed the VM's TLS certificates from the pool (it uses SSH now).")
