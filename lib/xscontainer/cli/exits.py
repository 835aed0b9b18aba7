"""The exit status of the `xscontainer` command: what failed, for scripts.

The plugin's failures carry a stable XSCONTAINER_* code; each maps to one
status here, so a script can tell "no such VM" from "the guest cannot be
reached" without reading the message. `xscontainer --help` lists them.
"""

from typing import Dict, List, Tuple

OK = 0
FAILED = 1  # anything not listed below; diagnose found a broken link
USAGE = 2  # wrong options or arguments (the command's own, or the plugin's)
NO_VM = 3  # no VM has that uuid or name-label
AMBIGUOUS = 4  # several VMs have that name-label
VM_NOT_RUNNING = 5
NO_CONTAINER = 6
UNREACHABLE = 7  # the guest, its SSH or TLS, or its container engine cannot be reached
ENGINE = 8  # the container engine refused the request or answered nonsense
XAPI = 9  # XAPI or the plugin could not be reached or failed
TIMEOUT = 10
INTERRUPTED = 130  # Ctrl-C

# (status, what it means), for --help and README
MEANINGS: List[Tuple[int, str]] = [
    (OK, "success"),
    (FAILED, "failed otherwise (the message says why); diagnose found a broken link"),
    (USAGE, "wrong options or arguments"),
    (NO_VM, "no VM has that uuid or name-label"),
    (AMBIGUOUS, "several VMs have that name-label (they are listed)"),
    (VM_NOT_RUNNING, "the VM is not running"),
    (NO_CONTAINER, "no such container in the VM"),
    (UNREACHABLE, "the guest or its container engine cannot be reached (SSH, TLS, Docker)"),
    (ENGINE, "the container engine refused the request or gave a bad reply"),
    (XAPI, "XAPI or the xscontainer plugin cannot be reached, or failed"),
    (TIMEOUT, "an operation took too long"),
    (INTERRUPTED, "interrupted (Ctrl-C)"),
]

_BY_CODE: Dict[str, int] = {
    "XSCONTAINER_INVALID_ARGUMENT": USAGE,
    "XSCONTAINER_VM_NOT_FOUND": NO_VM,
    "XSCONTAINER_VM_NOT_RUNNING": VM_NOT_RUNNING,
    "XSCONTAINER_NO_SUCH_CONTAINER": NO_CONTAINER,
    "XSCONTAINER_GUEST_CONNECTION_FAILED": UNREACHABLE,
    "XSCONTAINER_NO_IP": UNREACHABLE,
    "XSCONTAINER_GUEST_UNREACHABLE": UNREACHABLE,
    "XSCONTAINER_SSH_FAILED": UNREACHABLE,
    "XSCONTAINER_SSH_AUTH_FAILED": UNREACHABLE,
    "XSCONTAINER_SSH_HOSTKEY_MISMATCH": UNREACHABLE,
    "XSCONTAINER_TLS_FAILED": UNREACHABLE,
    "XSCONTAINER_TLS_CERT_REJECTED": UNREACHABLE,
    "XSCONTAINER_TLS_NOT_CONFIGURED": UNREACHABLE,
    "XSCONTAINER_DOCKER_UNREACHABLE": UNREACHABLE,
    "XSCONTAINER_DOCKER_API_UNSUPPORTED": UNREACHABLE,
    "XSCONTAINER_DOCKER_ERROR": ENGINE,
    "XSCONTAINER_DOCKER_MALFORMED_REPLY": ENGINE,
    "XSCONTAINER_RESPONSE_TOO_LARGE": ENGINE,
    "XSCONTAINER_XAPI_ERROR": XAPI,
    "XSCONTAINER_TIMEOUT": TIMEOUT,
}


def for_code(code: str) -> int:
    """The exit status for a failure code (the plugin's XSCONTAINER_* or XAPI's own)."""
    if code in _BY_CODE:
        return _BY_CODE[code]
    if code.startswith("XSCONTAINER_"):
        return FAILED
    # XAPI's own failures: the plugin missing, crashed or timed out, a session
    # refused, an object XAPI does not know
    return XAPI


def help_text() -> str:
    return "\n".join("  %3d  %s" % pair for pair in MEANINGS)
