"""The three TLS secrets of a VM in TLS mode, as in the original xscontainer.

VM other-config names them by uuid:

  xscontainer-tls-client-cert   the client certificate dom0 presents (PEM)
  xscontainer-tls-client-key    its private key (PEM)
  xscontainer-tls-ca-cert       the CA the VM's server certificate must chain to (PEM)

Clones and snapshots copy other-config, so several VMs may name the same
secrets: a secret is destroyed only when no VM record (templates and
snapshots included) names it any more. Replacing a VM's set creates and links
the new secrets first and only then destroys the old ones nobody else uses, so a
failure half way never leaves the VM without a usable set.
"""

import logging
from typing import Any, Dict, Iterable, List, Mapping, Optional, Set

from xscontainer import errors, xapi_keys
from xscontainer.transport import Material
from xscontainer.xapi import Xapi

log = logging.getLogger(__name__)

def secret_uuids(other_config: Mapping[str, str]) -> Dict[str, str]:
    """The TLS secret uuids a VM's other-config names (key -> uuid), present ones only."""
    return {k: other_config[k].strip() for k in xapi_keys.TLS_SECRETS
            if (other_config.get(k) or "").strip()}


def load(xapi: Xapi, vm_uuid: str, other_config: Mapping[str, str], where: str) -> Material:
    """The VM's client certificate, key and CA; TLSConfigMissing if any is missing."""
    uuids = secret_uuids(other_config)
    missing = [k for k in xapi_keys.TLS_SECRETS if k not in uuids]
    hint = ("Store them with 'xscontainer-prepare-vm -v %s --mode tls --generate-certs' (or "
            "--client-cert/--client-key/--ca-cert)." % vm_uuid)
    if missing:
        raise errors.TLSConfigMissing(
            "%s is in TLS mode but its other-config lacks %s. %s"
            % (where, ", ".join(missing), hint), vm_uuid)
    values = {}
    for key, secret_uuid in uuids.items():
        try:
            values[key] = xapi.secret_value(secret_uuid)
        except errors.XAPIError as exc:
            if not exc.gone:
                raise
            raise errors.TLSConfigMissing(
                "The secret %s that %s names in other-config %s no longer exists. %s"
                % (secret_uuid, where, key, hint), vm_uuid) from exc
    return Material(values[xapi_keys.TLS_CLIENT_CERT], values[xapi_keys.TLS_CLIENT_KEY],
                    values[xapi_keys.TLS_CA_CERT])


def referenced(records: Mapping[str, Mapping[str, Any]]) -> Set[str]:
    """Every TLS secret uuid some VM record (templates and snapshots included) names."""
    found: Set[str] = set()
    for record in records.values():
        found.update(secret_uuids(record.get("other_config") or {}).values())
    return found


def destroy_unreferenced(xapi: Xapi, secret_uuids_: Iterable[str]) -> List[str]:
    """Destroy each of the secrets that no VM names any more; returns those destroyed.

    For xscontainer-prepare-vm (a replaced set) and the monitor (a destroyed VM:
    clones share their secrets). A secret already gone is fine.
    """
    wanted = set(secret_uuids_)
    if not wanted:
        return []
    in_use = referenced(xapi.call("VM.get_all_records"))
    destroyed = []
    for secret_uuid in sorted(wanted):
        if secret_uuid in in_use:
            log.info("keeping TLS secret %s: a VM record still names it", secret_uuid)
            continue
        xapi.destroy_secret(secret_uuid)
        log.info("destroyed TLS secret %s (no VM names it)", secret_uuid)
        destroyed.append(secret_uuid)
    return destroyed


def store(xapi: Xapi, vm_ref: str, material: Material) -> None:
    """Give the VM a new set of secrets; old ones no other VM uses are destroyed."""
    old = secret_uuids(xapi.vm_other_config(vm_ref))
    new: Dict[str, str] = {}
    values = dict(zip(xapi_keys.TLS_SECRETS,
                      (material.client_cert, material.client_key, material.ca_cert)))
    try:
        for key in xapi_keys.TLS_SECRETS:
            new[key] = xapi.create_secret(values[key])
        for key in xapi_keys.TLS_SECRETS:
            xapi.set_vm_other_config(vm_ref, key, new[key])
    except BaseException:
        _roll_back(xapi, vm_ref, old, new)
        raise
    log.info("stored new TLS secrets for VM %s", xapi.call("VM.get_uuid", vm_ref))
    destroy_unreferenced(xapi, old.values())


def forget(xapi: Xapi, vm_ref: str) -> None:
    """Unlink the VM's TLS secrets (e.g. it went back to SSH mode); destroy unused ones."""
    old = secret_uuids(xapi.vm_other_config(vm_ref))
    for key in old:
        xapi.remove_vm_other_config(vm_ref, key)
    destroy_unreferenced(xapi, old.values())


def _roll_back(xapi: Xapi, vm_ref: str, old: Mapping[str, str], new: Mapping[str, str]) -> None:
    """Best effort: point the VM at its old secrets again and destroy the new ones."""
    try:
        for key in xapi_keys.TLS_SECRETS:
            previous: Optional[str] = old.get(key)
            if previous:
                xapi.set_vm_other_config(vm_ref, key, previous)
            else:
                xapi.remove_vm_other_config(vm_ref, key)
        for secret_uuid in new.values():
            xapi.destroy_secret(secret_uuid)
    except Exception as exc:  # the original failure matters more; log this one
        log.warning("could not roll back the TLS secrets of a VM: %s", exc)
