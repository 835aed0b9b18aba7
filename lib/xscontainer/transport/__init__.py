"""How bytes reach a guest's Docker engine.

Each transport is a `requests` adapter that the Docker SDK's APIClient uses in
place of its own (see docker_api.py):

  base.py        what they share: ports, Timeouts, Material (the TLS client
                 certificate, key and CA), the request deadline, connect_first
  adapter.py     BoundedAdapter: every non-streamed reply read with a size
                 bound, every request within its deadline
  ssh.py         paramiko: the SSH session, its commands and its bridge
                 channels to the engine's unix socket
  sshbridge.py   SSHAdapter: HTTP over those bridge channels
  tls.py         mutual TLS to TCP 2376: connect, handshake, the adapter's pool
  tlscontext.py  the SSL context: protocol and cipher policy, the VM's CA, the
                 client certificate and key
  tlsfailures.py which of our errors a failed handshake or first read means

The names of base.py are re-exported here: `from xscontainer.transport import
Timeouts`. The other modules are imported by name when needed, so that
importing the package loads neither paramiko, the TLS code nor `requests`
(nor do base.py and ssh.py: a plugin call connects while the Docker SDK and
`requests` load, see containers.py).
"""

from xscontainer.transport.base import (
    DEFAULT_MAX_RESPONSE_BYTES,
    SSH_PORT,
    TLS_PORT,
    Material,
    Timeouts,
    connect_first,
)

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES", "SSH_PORT", "TLS_PORT", "Material", "Timeouts", "connect_first",
]
