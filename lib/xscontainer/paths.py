"""Where things live in a dom0, each overridable from the environment.

Real hosts use the defaults. The lab (tests/lab) points every one of them at its
own files so that several simulated hosts can share one machine.
"""

import os

_DEFAULTS = {
    # xapi's local XML-RPC (and HTTP) endpoint
    "XSCONTAINER_XAPI_SOCKET": "/var/lib/xcp/xapi",
    # holds INSTALLATION_UUID='<this host's uuid>'
    "XSCONTAINER_INVENTORY": "/etc/xensource-inventory",
    "XSCONTAINER_LOG_FILE": "/var/log/xscontainer.log",
    # admin-provided files: cloud-config.template override, dev-mode flags
    "XSCONTAINER_FILES_DIR": "/opt/xensource/packages/files/xscontainer",
    # guest tools ISOs (*tools-*.iso)
    "XSCONTAINER_TOOLS_ISO_DIR": "/opt/xensource/packages/iso",
    # runtime state of this host's xscontainer processes (pid files, locks)
    "XSCONTAINER_RUN_DIR": "/run/xscontainer",
}


def _get(name: str) -> str:
    value = os.environ.get(name)
    return value if value else _DEFAULTS[name]


def xapi_socket() -> str:
    return _get("XSCONTAINER_XAPI_SOCKET")


def inventory_file() -> str:
    return _get("XSCONTAINER_INVENTORY")


def log_file() -> str:
    return _get("XSCONTAINER_LOG_FILE")


def files_dir() -> str:
    return _get("XSCONTAINER_FILES_DIR")


def tools_iso_dir() -> str:
    return _get("XSCONTAINER_TOOLS_ISO_DIR")


def run_dir() -> str:
    return _get("XSCONTAINER_RUN_DIR")


def env_seconds(name: str, default: float) -> float:
    """A duration from the environment variable `name` when it holds a positive
    number, else `default` (for limits that tests and admins may tune)."""
    try:
        value = float(os.environ.get(name, ""))
    except ValueError:
        return default
    return value if value > 0 else default
