"""TLS secret clean-up after a VM is destroyed (pool master only).

VM other-config keys xscontainer-tls-client-cert / -client-key / -ca-cert hold
uuids of XAPI secrets that clones (and templates and snapshots made from the
VM) share. XAPI's `del` event carries no record, so the monitor remembers the
uuids each VM record held; when a VM is destroyed it destroys each of them
that no remaining VM record references. Only the pool master's monitor does
this, so hosts do not race; a secret already gone is fine.
"""

import logging
from typing import Any, Dict, Iterable, Mapping, Set

from xscontainer.monitor import rules
from xscontainer.monitor.publisher import Job
from xscontainer.xapi import Xapi

log = logging.getLogger(__name__)


def referenced(records: Mapping[str, Mapping[str, Any]]) -> Set[str]:
    """Every secret uuid some VM record (templates and snapshots included) holds."""
    found: Set[str] = set()
    for record in records.values():
        found |= rules.tls_secret_uuids(record)
    return found


def unreferenced(candidates: Iterable[str], records: Mapping[str, Mapping[str, Any]]) -> Set[str]:
    return set(candidates) - referenced(records)


def cleanup_job(vm_ref: str, candidates: Iterable[str]) -> Job:
    wanted = sorted(set(candidates))

    def run(xapi: Xapi) -> None:
        records: Dict[str, Mapping[str, Any]] = xapi.call("VM.get_all_records")
        for uuid in sorted(unreferenced(wanted, records)):
            xapi.destroy_secret(uuid)  # an already destroyed secret is fine
            log.info("destroyed TLS secret %s of destroyed VM %s: no VM uses it any more",
                     uuid, vm_ref)

    return run
