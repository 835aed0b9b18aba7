"""The key and message names xscontainer uses in XAPI: part of the wire contract.

XenCenter, Xen Orchestra and pools that used the original xscontainer read or
wrote these, so they never change. README ("What xscontainer keeps in XAPI")
says what each means.
"""

# VM other-config
MONITOR = "xscontainer-monitor"  # "True" | "False": registered for monitoring
MODE = "xscontainer-mode"  # "ssh" (default) | "tls"
USERNAME = "xscontainer-username"  # SSH user in the guest (default "core")
SSH_HOST_KEY = "xscontainer-sshhostkey"  # base64 host key, pinned on first use
# the guest's Docker (or Podman) socket, when set (an absolute path); else the
# first usable of the system socket and the SSH user's rootless ones
DOCKER_SOCKET = "xscontainer-docker-socket"
TLS_CLIENT_CERT = "xscontainer-tls-client-cert"  # uuids of XAPI secrets
TLS_CLIENT_KEY = "xscontainer-tls-client-key"
TLS_CA_CERT = "xscontainer-tls-ca-cert"
TLS_SECRETS = (TLS_CLIENT_CERT, TLS_CLIENT_KEY, TLS_CA_CERT)
TLS_PREFIX = "xscontainer-tls-"
DOCKER_PS = "docker_ps"
DOCKER_INFO = "docker_info"
DOCKER_VERSION = "docker_version"
DOCKER = (DOCKER_PS, DOCKER_INFO, DOCKER_VERSION)
# a TLS preparation waiting for the VM's administrator (plugin `prepare` with
# generatecerts=true): JSON with the uuids of the three pending secrets and of
# the temporary CD's VDI, and the deadline (Unix time) when the CD is ejected
PREPARE_PENDING = "xscontainer-prepare-pending"

# pool other-config
POOL_PRIVATE_KEY_SECRET = "xscontainer-private-secret-uuid"  # noqa: S105 (a key name)
POOL_PUBLIC_KEY_SECRET = "xscontainer-public-secret-uuid"  # noqa: S105 (a key name)
USE_HOST_INTERNAL_NETWORK = "xscontainer-use-hostinternalnetwork"

# VDI and VBD other-config
CONFIG_DRIVE = "config-drive"  # "True" on config drives; XenCenter reads the VDI's,
# case-insensitively
TLS_ISO = "xscontainer-tls-iso"  # marks prepare-vm's temporary TLS CD

# the XAPI message a VM gets when it cannot be monitored
MONITOR_FAILED_MESSAGE = "XSCONTAINER_MONITOR_FAILED"

# plugin argument added to calls one host forwards to another, so that a VM that
# migrates mid-call cannot make two hosts bounce a call between them
FORWARDED = "xscontainer-forwarded"
