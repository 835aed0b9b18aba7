"""The plugin's `prepare`: what xscontainer-prepare-vm does, for any XAPI client.

    xe secret-create value=<password>          # prints the secret's uuid
    xe host-call-plugin host-uuid=<any host> plugin=xscontainer fn=prepare \\
        args:vmuuid=<vm> args:username=core args:passwordsecret=<secret uuid>

Arguments (README, "The plugin"): vmuuid; username (default: the VM's
xscontainer-username, else core); mode ssh (default) or tls. ssh:
passwordsecret (a XAPI secret holding the user's password, read once and
destroyed on every path), sshhostkey (the host key to expect). tls: either
clientcertsecret, clientkeysecret, cacertsecret (secrets holding PEM; destroyed
once their content is stored for the VM, kept when the call fails), or
generatecerts=true (two steps, tlsmode.start_generated / tlsmode.advance;
cdtimeout: how long the CD may stay, default 600 s). A call for a VM with a
pending TLS preparation advances it.

The same code as the command line (sshmode.prepare, tlsmode.install, ...)
under the VM's preparation lock (lock.py); the report it prints becomes the
call's result. A failed check becomes the error the plugin's other functions
would raise for the same fault (so the usual codes), with nothing stored.
"""

import logging
from typing import Dict, List, Optional, Set

from xscontainer import certs, errors, tlssecrets, xapi_keys
from xscontainer.guest import Guest
from xscontainer.prepare import common, lock, pending
from xscontainer.prepare.console import Aborted, Collector
from xscontainer.xapi import Xapi

log = logging.getLogger(__name__)

LOCK_WAIT = 60.0  # a second call waits this long for the first, then fails
CERT_ARGS = ("clientcertsecret", "clientkeysecret", "cacertsecret")
TRUE = ("true", "yes", "1")


def _flag(args: Dict[str, str], key: str) -> bool:
    return str(args.get(key, "")).strip().lower() in TRUE


def _seconds(args: Dict[str, str], vm_uuid: str) -> int:
    text = str(args.get("cdtimeout", "")).strip()
    if not text:
        return pending.DEFAULT_SECONDS
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not pending.MIN_SECONDS <= value <= pending.MAX_SECONDS:
        raise errors.InvalidArgument(
            "cdtimeout must be a whole number of seconds from %d to %d."
            % (pending.MIN_SECONDS, pending.MAX_SECONDS), vm_uuid)
    return value


def _own_secrets(xapi: Xapi) -> Set[str]:
    """The secrets xscontainer keeps: the pool's SSH key pair, every VM's TLS secrets
    and those of pending TLS preparations."""
    pool = xapi.pool_other_config()
    own = {pool.get(k, "").strip() for k in (xapi_keys.POOL_PRIVATE_KEY_SECRET,
                                              xapi_keys.POOL_PUBLIC_KEY_SECRET)}
    records = xapi.call("VM.get_all_records")
    own |= tlssecrets.referenced(records)
    for record in records.values():
        state = pending.read(record.get("other_config") or {})
        if state is not None:
            own |= set(state.secrets.values())
    own.discard("")
    return own


def _refuse_own_secrets(xapi: Xapi, args: Dict[str, str], vm_uuid: str) -> None:
    """A secret argument is read (and sent to the guest) and then destroyed: never
    one of xscontainer's own, such as the pool's private key."""
    given = {k: str(args.get(k, "")).strip() for k in ("passwordsecret", *CERT_ARGS)}
    if not any(given.values()):
        return
    own = _own_secrets(xapi)
    wrong = sorted(k for k, uuid in given.items() if uuid and uuid in own)
    if wrong:
        raise errors.InvalidArgument(
            "%s names a secret xscontainer keeps for itself (the pool's SSH key or a VM's "
            "TLS certificates); pass a secret made for this call (xe secret-create)."
            % ", ".join(wrong), vm_uuid)


def prepare(xapi: Xapi, args: Dict[str, str]) -> str:
    vm_uuid = str(args["vmuuid"]).strip()
    password_secret = str(args.get("passwordsecret", "")).strip()
    _refuse_own_secrets(xapi, args, vm_uuid)  # before anything is read or destroyed
    try:
        return _prepare(xapi, args, vm_uuid, password_secret)
    finally:
        if password_secret:  # whatever happened, also when it was never read
            from xscontainer.prepare import sshmode  # noqa: PLC0415 (paramiko only here)

            sshmode.destroy_password_secret(xapi, password_secret)


def _prepare(xapi: Xapi, args: Dict[str, str], vm_uuid: str, password_secret: str) -> str:
    mode = str(args.get("mode", "")).strip().lower() or "ssh"
    if mode not in ("ssh", "tls"):
        raise errors.InvalidArgument("mode must be ssh or tls, not %r." % mode, vm_uuid)
    cert_secrets = [str(args.get(k, "")).strip() for k in CERT_ARGS]
    generate = _flag(args, "generatecerts")
    if mode == "ssh" and (generate or any(cert_secrets)):
        raise errors.InvalidArgument(
            "generatecerts and %s are for mode=tls." % ", ".join(CERT_ARGS), vm_uuid)
    if mode == "tls" and (password_secret or args.get("sshhostkey")):
        raise errors.InvalidArgument("passwordsecret and sshhostkey are for mode=ssh.", vm_uuid)
    if any(cert_secrets) and (generate or not all(cert_secrets)):
        raise errors.InvalidArgument(
            "mode=tls takes either all of %s, or generatecerts=true." % ", ".join(CERT_ARGS),
            vm_uuid)
    seconds = _seconds(args, vm_uuid)
    console = Collector()
    guest = Guest.load(xapi, vm_uuid)  # VMNotFound before anything else
    log.info("prepare of VM %s, mode %s", vm_uuid, mode)
    with lock.held(vm_uuid, LOCK_WAIT):
        guest = common.running_guest(xapi, vm_uuid)
        try:
            if mode == "ssh":
                _ssh(console, guest, args, password_secret)
            elif all(cert_secrets):
                _tls_secrets(console, guest, cert_secrets)
            else:
                _tls_generated(console, guest, generate, seconds)
        except common.NotWorking as exc:
            raise common.classify(exc) from exc
        except Aborted as exc:
            raise errors.InvalidArgument(str(exc), vm_uuid) from exc
    return console.text()


def _ssh(console: Collector, guest: Guest, args: Dict[str, str], password_secret: str) -> None:
    from xscontainer.prepare import sshmode  # noqa: PLC0415 (paramiko only here)

    username = str(args.get("username", "")).strip() or guest.username
    expected = str(args.get("sshhostkey", "")).strip()
    expected_key = sshmode.host_key_body(expected) if expected else None
    password: Optional[str] = None
    if password_secret:
        password = sshmode.take_password(guest.xapi, password_secret, guest.uuid)
    console.say("Preparing %s for container management over SSH as user %s."
                % (guest.where, username))
    sshmode.prepare(console, guest, username, password, expected_key)
    _cancel_pending(console, guest)


def _tls_secrets(console: Collector, guest: Guest, uuids: List[str]) -> None:
    from xscontainer.prepare import tlsmode  # noqa: PLC0415
    from xscontainer.transport import tlscontext  # noqa: PLC0415

    xapi = guest.xapi
    data = []
    for name, secret_uuid in zip(CERT_ARGS, uuids):
        try:
            data.append(xapi.secret_value(secret_uuid).encode("utf-8"))
        except errors.XAPIError as exc:
            if not exc.gone:
                raise
            raise errors.InvalidArgument(
                "There is no XAPI secret with uuid %s (%s)." % (secret_uuid, name),
                guest.uuid) from exc
    names = ("the client certificate (%s)" % CERT_ARGS[0], "the client key (%s)" % CERT_ARGS[1],
             "the CA certificate (%s)" % CERT_ARGS[2])
    try:
        material = certs.validate_external(data[0], data[1], data[2], names=names)
        tlscontext.make_context(material, guest.uuid)
    except errors.InvalidArgument as exc:
        raise errors.TLSError(
            "The certificates cannot be used: %s" % exc.message, guest.uuid) from exc
    console.say("Preparing %s for container management over TLS with the certificates "
                "given; they are valid." % guest.where)
    tlsmode.install(console, guest, material)
    _cancel_pending(console, guest)
    named = set(tlssecrets.secret_uuids(xapi.vm_other_config(guest.ref)).values())
    for secret_uuid in uuids:  # copied into the VM's own secrets: no longer needed
        if secret_uuid not in named:
            xapi.destroy_secret(secret_uuid)


def _tls_generated(console: Collector, guest: Guest, generate: bool, seconds: int) -> None:
    from xscontainer.prepare import tlsmode  # noqa: PLC0415

    state = pending.read(guest.other_config)
    if state is not None:
        was_due = state.due()
        tlsmode.advance(console, guest)
        if not was_due or not generate:
            return
        guest = common.running_guest(guest.xapi, guest.uuid)
    elif not generate:
        raise errors.InvalidArgument(
            "mode=tls needs either generatecerts=true, or %s (uuids of XAPI secrets holding "
            "PEM)." % ", ".join(CERT_ARGS), guest.uuid)
    console.say("Preparing %s for container management over TLS with new certificates."
                % guest.where)
    tlsmode.start_generated(console, guest, seconds)


def _cancel_pending(console: Collector, guest: Guest) -> None:
    state = pending.read(guest.xapi.vm_other_config(guest.ref))
    if state is not None:
        pending.expire(guest.xapi, guest.ref, state)
        console.say("Cancelled the pending TLS preparation (its CD and certificates are gone).")
