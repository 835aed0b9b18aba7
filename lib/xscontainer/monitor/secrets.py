"""TLS secret clean-up after a VM is destroyed (pool master only).

VM other-config keys xscontainer-tls-client-cert / -client-key / -ca-cert hold
uuids of XAPI secrets that clones (and templates and snapshots made from the
VM) share. XAPI's `del` event carries no record, so the monitor remembers the
uuids each VM record held; when a VM is destroyed it destroys each of them
that no remaining VM record references. Only the pool master's monitor does
this, so hosts do not race; a secret already gone is fine.
"""

import logging
from typing import Iterable

from xscontainer import tlssecrets
from xscontainer.monitor.publisher import Job
from xscontainer.xapi import Xapi

log = logging.getLogger(__name__)


def cleanup_job(vm_ref: str, candidates: Iterable[str]) -> Job:
    wanted = sorted(set(candidates))

    def run(xapi: Xapi) -> None:
        destroyed = tlssecrets.destroy_unreferenced(xapi, wanted)
        if destroyed:
            log.info("destroyed VM %s: removed the TLS secrets no VM names any more", vm_ref)

    return run
