"""How bytes reach a guest's Docker engine.

Each transport is a `requests` adapter that the Docker SDK's APIClient uses in
place of its own (see docker_api.py):

  base.py        what they share: ports, Timeouts, Material (the TLS client
                 certificate, key and CA), BoundedAdapter (every non-streamed
                 reply read with a size bound), connect_first
  ssh.py         paramiko: the engine's unix socket through an SSH channel
  tls.py         mutual TLS to TCP 2376: connect, handshake, the adapter's pool
  tlscontext.py  the SSL context: protocol and cipher policy, the VM's CA, the
                 client certificate and key
  tlsfailures.py which of our errors a failed handshake or first read means

The names of base.py are re-exported here: `from xscontainer.transport import
Timeouts`. The TLS and SSH modules are imported by name when needed, so that
importing the package loads neither paramiko nor the TLS code.
"""

from xscontainer.transport.base import (
    DEFAULT_MAX_RESPONSE_BYTES,
    SSH_PORT,
    TLS_PORT,
    BoundedAdapter,
    Material,
    Timeouts,
    connect_first,
)

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES", "SSH_PORT", "TLS_PORT", "BoundedAdapter", "Material",
    "Timeouts", "connect_first",
]
