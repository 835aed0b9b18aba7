"""xscontainer-monitor: keeps every registered VM's containers visible in XAPI.

Modules: rules (which VMs), events (Docker event shapes), coalesce (timing),
episode (a VM's failure episode: grace, message, backoff), publisher (the
single XAPI writer), worker (one VM's connection), pool (XAPI events and
supervision), xapiconn (the daemon's XAPI sessions), secrets (TLS secret
clean-up), control + protocol (the local control socket), client (the plugin's
side of it), options (command line), daemon (wiring).

Kept light on purpose: the plugin imports xscontainer.monitor.client, which
must not pull in the Docker SDK or paramiko.
"""

import sys
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    from xscontainer.monitor import options  # noqa: PLC0415

    settings = options.parse(sys.argv[1:] if argv is None else argv)  # --help exits here
    from xscontainer.monitor import daemon  # noqa: PLC0415 - heavy; not for the plugin

    return daemon.run(settings)
