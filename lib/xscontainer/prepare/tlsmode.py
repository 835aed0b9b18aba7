"""xscontainer-prepare-vm --mode tls: Docker on TCP 2376 with mutual TLS (Windows guests).

--generate-certs: a new CA, server and client certificate (certs.py). The VM's
administrator gets the server side on a temporary CD (tlsiso.py, cdrom.py) and
runs configure_tls.cmd from it. dom0 keeps the client side as XAPI secrets,
but only once Docker in the VM answers with the new certificate: an aborted
preparation stores nothing. The CD is ejected and its disk destroyed when the
preparation ends, however it ends.

CD drive holding other media: interactively the tool asks whether to eject it
for the time of the preparation and puts it back afterwards; with --yes it
refuses (and says how to eject it), since ejecting someone's media unasked
could break whatever in the VM reads it.

--client-cert/--client-key/--ca-cert: an administrator's own certificates,
validated (certs.validate_external) and stored; Docker in the VM is assumed to be
configured already.

Either way the secrets are stored, the mode becomes tls and the chain is checked
(diagnose); the VM is registered for monitoring once the check passes. (With
external certificates a failed check leaves them stored: fix what the report
names, e.g. the VM's firewall, and run the tool again.)
"""

import logging
import ssl
import time
from typing import Dict, Iterable, List, Optional, Tuple

from xscontainer import certs, diagnose_tls, errors, tlssecrets, xapi_keys
from xscontainer.diagnose_report import Report
from xscontainer.guest import Guest
from xscontainer.prepare import cdrom, common, pending, tlsiso
from xscontainer.prepare.console import Aborted, Console
from xscontainer.transport import TLS_PORT, Material, tls, tlscontext
from xscontainer.xapi import Xapi

log = logging.getLogger(__name__)

POLL_INTERVAL = 2.0
PROGRESS_INTERVAL = 15.0
SINGLE_USER_WARNING = (
    "Warning: the generated certificates reach the VM on a virtual CD, which every user "
    "and program in the VM can read while it is inserted, including the Docker server's "
    "private key. Do this only where a single, trusted user has access to the VM.")


def run_generated(console: Console, xapi: Xapi, vm_uuid: str, wait: float) -> None:
    guest = common.running_guest(xapi, vm_uuid)
    addresses = certs.ipv4_addresses(guest.addresses())
    console.say("Preparing %s for container management over TLS (Docker on port %d)."
                % (guest.where, TLS_PORT))
    console.say(SINGLE_USER_WARNING)
    console.say("The server certificate will be valid for these addresses of the VM:")
    for address in addresses:
        console.say("    - %s" % address)
    if not console.confirm("Would you like to proceed?"):
        raise Aborted("Nothing was changed.")
    drive = cdrom.cd_drive(xapi, guest.ref, guest.where)
    generated = certs.generate(addresses, vm_uuid)
    log.info("generated a TLS certificate set for %s", guest.where)
    image = tlsiso.build(generated)
    material = generated.client_material()
    _deploy(console, guest, drive, image, material, addresses, wait)
    _store_and_finish(console, guest, material)


def run_external(console: Console, xapi: Xapi, vm_uuid: str,
                 files: Tuple[str, str, str]) -> None:
    guest = common.running_guest(xapi, vm_uuid)
    data = []
    for path in files:
        try:
            with open(path, "rb") as f:
                data.append(f.read(1 << 20))
        except OSError as exc:
            raise errors.InvalidArgument("Cannot read %s: %s." % (path, exc.strerror or exc)) \
                from exc
    material = certs.validate_external(data[0], data[1], data[2], names=files)
    tlscontext.make_context(material, vm_uuid)  # OpenSSL accepts them too
    console.say("The certificates are valid: client certificate %s, CA %s." % files[::2])
    _store_and_finish(console, guest, material)


def _store_and_finish(console: Console, guest: Guest, material: Material) -> None:
    tlssecrets.store(guest.xapi, guest.ref, material)
    console.say("Stored the client certificate, its key and the CA as XAPI secrets "
                "(other-config %s)." % ", ".join(xapi_keys.TLS_SECRETS))
    if common.ensure(guest.xapi, guest.ref, xapi_keys.MODE, "tls"):
        console.say("Set other-config %s=tls." % xapi_keys.MODE)
    common.verify(console, common.reload(guest))
    common.register(console, guest)
    console.say("Done: the pool manages the containers of %s over TLS." % guest.where)


# -- the temporary CD -------------------------------------------------------------------


def _deploy(console: Console, guest: Guest, drive: cdrom.CDDrive, image: bytes,
            material: Material, addresses: List[str], wait: float) -> None:
    xapi = guest.xapi
    displaced = _clear_drive(console, xapi, drive, guest)
    vdi: Optional[str] = None
    try:
        sr = cdrom.target_sr(xapi, guest.ref, guest.where)
        console.say("Deploying the TLS configuration to the VM: a temporary CD (\"%s\")."
                    % cdrom.TEMP_VDI_NAME)
        vdi = cdrom.upload(xapi, sr, image)
        cdrom.insert(xapi, drive, vdi)
        _instructions(console)
        if console.assume_yes:
            _wait_for_certificate(console, guest, material, addresses, wait)
        else:
            _confirm_applied(console, guest, material, addresses)
    finally:
        if vdi is not None:
            _remove(console, xapi, drive, vdi)
        if displaced is not None:
            _put_back(console, xapi, drive, displaced)


def _clear_drive(console: Console, xapi: Xapi, drive: cdrom.CDDrive,
                 guest: Guest) -> Optional[str]:
    """Empty the drive for our CD; the VDI to put back afterwards, if any."""
    current = drive.vdi(xapi)
    if current is None:
        return None
    if cdrom.is_ours(xapi, current):
        console.say("Removing a TLS CD that an earlier, interrupted run left in the drive.")
        cdrom.eject(xapi, drive)
        cdrom.destroy(xapi, current)
        return None
    name = cdrom.vdi_name(xapi, current)
    if console.assume_yes:
        raise Aborted(
            "The CD drive of %s holds \"%s\"; with --yes it is not ejected. Eject it (xe "
            "vm-cd-eject uuid=%s) and run this again, or run without --yes to be asked."
            % (guest.where, name, guest.uuid))
    if not console.confirm("The CD drive of the VM holds \"%s\". Eject it while the "
                           "certificates are deployed (it is put back afterwards)?" % name):
        raise Aborted("Nothing was changed: the CD drive is needed for --generate-certs.")
    cdrom.eject(xapi, drive)
    return current


def _remove(console: Console, xapi: Xapi, drive: cdrom.CDDrive, vdi: str) -> None:
    try:
        if drive.vdi(xapi) == vdi:
            cdrom.eject(xapi, drive)
        cdrom.destroy(xapi, vdi)
        console.say("Ejected and deleted the temporary CD.")
    except errors.XSContainerError as exc:
        log.error("could not remove the temporary TLS CD: %s", exc)
        console.say("WARNING: the temporary CD \"%s\" could not be removed (%s). It holds a "
                    "private key: eject it and delete the disk by hand." % (
                        cdrom.TEMP_VDI_NAME, exc.message))


def _put_back(console: Console, xapi: Xapi, drive: cdrom.CDDrive, vdi: str) -> None:
    try:
        if drive.vdi(xapi) is None:
            cdrom.insert(xapi, drive, vdi)
            console.say("Put \"%s\" back into the CD drive." % cdrom.vdi_name(xapi, vdi))
    except errors.XSContainerError as exc:
        console.say("Could not put \"%s\" back into the CD drive (%s); insert it again by hand."
                    % (cdrom.vdi_name(xapi, vdi), exc.message))


def _instructions(console: Console) -> None:
    console.say("Server side preparation complete.")
    console.say("-" * 72)
    console.say("In the VM, run <CD drive>:\\configure_tls.cmd as administrator. It will:")
    console.say("  - install the CA and Docker's server certificate and key into "
                "C:\\ProgramData\\docker\\certs.d (Administrators and SYSTEM only),")
    console.say("  - install daemon.json into C:\\ProgramData\\docker\\config (Docker "
                "listens on TCP 2376 with TLS, and on its named pipe),")
    console.say("  - restart the Docker service (running containers stop),")
    console.say("  - show the Windows Firewall state: TCP port 2376 must be reachable "
                "from the control domain.")
    console.say("-" * 72)


def _probe(guest: Guest, context: ssl.SSLContext, addresses: List[str]) -> str:
    """'' when Docker answers with the new certificate; else why not."""
    try:
        tls_sock, address = tls.connect(addresses, context, 3.0, common.TIMEOUTS.handshake,
                                        guest.uuid, guest.where)
        diagnose_tls.ping(tls_sock, address, common.TIMEOUTS.request, guest.uuid, guest.where)
    except errors.XSContainerError as exc:
        return exc.message
    return ""


def _wait_for_certificate(console: Console, guest: Guest, material: Material,
                          addresses: List[str], wait: float) -> None:
    context = tlscontext.make_context(material, guest.uuid)
    console.say("Waiting up to %d s for Docker in the VM to answer on port %d with the new "
                "certificate." % (wait, TLS_PORT))
    start = time.monotonic()
    last_report = start
    while True:
        reason = _probe(guest, context, addresses)
        now = time.monotonic()
        if not reason:
            console.say("Docker in the VM answers with the new certificate (after %d s)."
                        % (now - start))
            return
        if now - start >= wait:
            raise errors.Timeout(
                "Docker in %s did not answer with the new certificate within %d s (last: %s). "
                "Run configure_tls.cmd from the CD in the VM while this tool waits, or raise "
                "--wait." % (guest.where, wait, reason))
        if now - last_report >= PROGRESS_INTERVAL:
            console.say("  still waiting (%d s of %d s): %s" % (now - start, wait,
                                                               _first_sentence(reason)))
            last_report = now
        time.sleep(POLL_INTERVAL)


def _confirm_applied(console: Console, guest: Guest, material: Material,
                     addresses: List[str]) -> None:
    context = tlscontext.make_context(material, guest.uuid)
    while True:
        if not console.confirm("Has configure_tls.cmd run in the VM (y), or do you abort (n)?"):
            raise Aborted("Aborted: no certificate was stored; the temporary CD is removed.")
        deadline = time.monotonic() + 60.0
        reason = _probe(guest, context, addresses)
        while reason and time.monotonic() < deadline:  # Docker may still be restarting
            time.sleep(POLL_INTERVAL)
            reason = _probe(guest, context, addresses)
        if not reason:
            console.say("Docker in the VM answers with the new certificate.")
            return
        console.say("Docker in the VM does not answer with the new certificate yet: %s" % reason)


def _first_sentence(text: str) -> str:
    head = text.split(". ", 1)[0]
    return head if len(head) < 200 else head[:200] + "..."


# -- the plugin's TLS preparation: nothing stored before the check passes ---------------


def _same_material(a: Material, b: Material) -> bool:
    return (a.client_cert.strip(), a.client_key.strip(), a.ca_cert.strip()) == \
        (b.client_cert.strip(), b.client_key.strip(), b.ca_cert.strip())


def _current_material(guest: Guest) -> Optional[Material]:
    if not tlssecrets.secret_uuids(guest.other_config):
        return None
    try:
        return guest.tls_material()
    except errors.XSContainerError:
        return None


def install(console: Console, guest: Guest, material: Material) -> Report:
    """Give a running VM this client side and make it a TLS guest, checking first.

    The material goes into three new secrets; the chain is checked with them as
    if they were stored; only then does the VM name them (and the secrets it
    named before, unless another VM names them, are destroyed). A failed check
    destroys the new secrets and leaves the VM as it was. A VM that already has
    this material changes nothing."""
    xapi = guest.xapi
    current = _current_material(guest)
    if current is not None and _same_material(current, material):
        console.say("The VM already uses these certificates.")
        probe = common.with_settings(common.reload(guest), **{xapi_keys.MODE: "tls"})
        report = common.verify(console, probe)
        _link(console, guest, tlssecrets.secret_uuids(guest.other_config))
        return report
    values = dict(zip(xapi_keys.TLS_SECRETS,
                      (material.client_cert, material.client_key, material.ca_cert)))
    new: Dict[str, str] = {}
    try:
        for key in xapi_keys.TLS_SECRETS:
            new[key] = xapi.create_secret(values[key])
        report = verify_pending(console, guest, new)
    except BaseException as exc:
        if isinstance(exc, common.NotWorking):
            common.classify(exc)  # while the secrets it was checked with exist
        _destroy_secrets(xapi, new.values())
        raise
    _link(console, guest, new)
    return report


def verify_pending(console: Console, guest: Guest, secrets: Dict[str, str]) -> Report:
    """Check the chain as if the VM were in TLS mode with these secrets (nothing written)."""
    settings = dict(secrets)
    settings[xapi_keys.MODE] = "tls"
    return common.verify(console, common.with_settings(common.reload(guest), **settings))


def _link(console: Console, guest: Guest, new: Dict[str, str]) -> None:
    """Make the VM name these secrets and use TLS; register it."""
    xapi = guest.xapi
    old = tlssecrets.secret_uuids(xapi.vm_other_config(guest.ref))
    changed = [key for key in xapi_keys.TLS_SECRETS if old.get(key) != new[key]]
    try:
        for key in changed:
            xapi.set_vm_other_config(guest.ref, key, new[key])
    except BaseException:
        for key in changed:  # best effort: the VM names its old set again
            try:
                if old.get(key):
                    xapi.set_vm_other_config(guest.ref, key, old[key])
                else:
                    xapi.remove_vm_other_config(guest.ref, key)
            except errors.XSContainerError as exc:
                log.warning("could not restore other-config %s: %s", key, exc.message)
        raise
    if changed:
        console.say("Stored the client certificate, its key and the CA as XAPI secrets "
                    "(other-config %s)." % ", ".join(xapi_keys.TLS_SECRETS))
        stale = set(old.values()) - set(new.values())
        tlssecrets.destroy_unreferenced(xapi, stale)
    if common.ensure(xapi, guest.ref, xapi_keys.MODE, "tls"):
        console.say("Set other-config %s=tls." % xapi_keys.MODE)
    common.register(console, guest)
    console.say("Done: the pool manages the containers of %s over TLS." % guest.where)


def _destroy_secrets(xapi: Xapi, uuids: Iterable[str]) -> None:
    for secret_uuid in uuids:
        try:
            xapi.destroy_secret(secret_uuid)
        except errors.XSContainerError as exc:
            log.error("could not destroy secret %s: %s", secret_uuid, exc.message)


# -- generatecerts through the plugin: two steps, the state in other-config ---------------


def start_generated(console: Console, guest: Guest, seconds: int) -> None:
    """Step one: certificates, the CD in the drive, the pending state; returns at once.

    The client side goes into three new secrets that the VM does not name yet;
    other-config xscontainer-prepare-pending names them, the CD's VDI and the
    deadline. Everything made is removed again if a step fails."""
    xapi = guest.xapi
    addresses = certs.ipv4_addresses(guest.addresses())
    drive = cdrom.cd_drive(xapi, guest.ref, guest.where)
    current = drive.vdi(xapi)
    if current is not None:
        if not cdrom.is_ours(xapi, current):
            raise errors.InvalidArgument(
                "The CD drive of %s holds \"%s\"; the plugin does not eject it. Eject it (xe "
                "vm-cd-eject uuid=%s) and call prepare again." % (
                    guest.where, cdrom.vdi_name(xapi, current), guest.uuid), guest.uuid)
        console.say("Removed a TLS CD that an earlier, interrupted preparation left.")
        cdrom.eject(xapi, drive)
        cdrom.destroy(xapi, current)
    generated = certs.generate(addresses, guest.uuid)
    log.info("generated a TLS certificate set for %s", guest.where)
    image = tlsiso.build(generated)
    material = generated.client_material()
    values = (material.client_cert, material.client_key, material.ca_cert)
    secrets: Dict[str, str] = {}
    vdi: Optional[str] = None
    try:
        for key, value in zip(xapi_keys.TLS_SECRETS, values):
            secrets[key] = xapi.create_secret(value)
        vdi = cdrom.upload(xapi, cdrom.target_sr(xapi, guest.ref, guest.where), image)
        deadline = int(time.time()) + seconds
        state = pending.Pending(secrets, str(xapi.call("VDI.get_uuid", vdi)), deadline)
        xapi.set_vm_other_config(guest.ref, xapi_keys.PREPARE_PENDING, state.encode())
        cdrom.insert(xapi, drive, vdi)
    except BaseException:
        if vdi is not None:
            _remove(console, xapi, drive, vdi)
        xapi.remove_vm_other_config(guest.ref, xapi_keys.PREPARE_PENDING)
        _destroy_secrets(xapi, secrets.values())
        raise
    console.say("Generated a CA, a server certificate for %s and a client certificate; the "
                "server side is on a temporary CD (\"%s\") in the VM's drive."
                % (", ".join(addresses), cdrom.TEMP_VDI_NAME))
    console.say(SINGLE_USER_WARNING)
    _instructions(console)
    console.say("Then call prepare again (or diagnose) for this VM: the preparation completes "
                "once Docker answers with the new certificate. The CD is ejected and deleted "
                "then, or at %s (in %d s) if that has not happened by then."
                % (pending.utc(deadline), seconds))


def advance(console: Console, guest: Guest) -> Optional[Report]:
    """Step two, for a VM with a pending TLS preparation (the caller holds the VM's
    lock): complete it if Docker answers with the new certificate (the report),
    else say what is missing (None). An expired one is undone."""
    xapi = guest.xapi
    state = pending.read(guest.other_config)
    if state is None:
        return None
    if state.due():
        pending.expire(xapi, guest.ref, state)
        console.say("The pending TLS preparation expired at %s: the CD was ejected and "
                    "deleted, the certificates destroyed. Call prepare with generatecerts=true "
                    "to start again." % pending.utc(state.deadline))
        return None
    try:
        material = tlssecrets.load(xapi, guest.uuid, state.secrets, guest.where)
    except errors.TLSConfigMissing:
        pending.expire(xapi, guest.ref, state)
        console.say("The pending TLS preparation lost its certificates; it was undone. Call "
                    "prepare with generatecerts=true to start again.")
        return None
    context = tlscontext.make_context(material, guest.uuid)
    reason = _probe(guest, context, certs.ipv4_addresses(guest.addresses()))
    if reason:
        console.say("Waiting for the VM's administrator: Docker does not answer with the new "
                    "certificate yet (%s). Run configure_tls.cmd from the CD in the VM, then "
                    "call prepare again. The CD is ejected and deleted at %s."
                    % (_first_sentence(reason), pending.utc(state.deadline)))
        return None
    console.say("Docker in the VM answers with the new certificate.")
    report = verify_pending(console, guest, state.secrets)
    pending.remove_cd(xapi, guest.ref, state)
    console.say("Ejected and deleted the temporary CD.")
    _link(console, guest, state.secrets)
    xapi.remove_vm_other_config(guest.ref, xapi_keys.PREPARE_PENDING)
    return report
