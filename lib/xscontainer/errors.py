"""One exception hierarchy for xscontainer, each class with a stable error code.

Every error carries:

* ``code``: a stable string (``XSCONTAINER_...``), the XAPI error code clients see;
* ``message``: what went wrong **and what to do about it**, for a person;
* ``details``: machine-readable strings (the VM uuid first when there is one).

At the plugin edge, `xapi_error_description` turns any exception into the
``ErrorDescription`` of a XAPI failure. Messages and details must never contain
secrets, private keys or session refs; `xapi_description` also passes them
through `log.redact` as a safety net.

    raise errors.VMNotRunning("VM %s is Halted. Start it and retry." % uuid, uuid)
"""

from typing import Any, Dict, List, Optional, Sequence, Type

from xscontainer import log, xapi_keys, xmlenc

# code -> class, in definition order; filled in as the classes are defined.
CODES: Dict[str, Type["XSContainerError"]] = {}

CODE_PREFIX = "XSCONTAINER_"
PLUGIN_FAILURE = "XENAPI_PLUGIN_FAILURE"


def _register(cls: Type["XSContainerError"]) -> None:
    code = cls.__dict__.get("code")
    if not isinstance(code, str) or not code.startswith(CODE_PREFIX):
        raise TypeError(
            "%s must define its own code starting with %s" % (cls.__name__, CODE_PREFIX)
        )
    if code in CODES:
        raise TypeError("%s reuses code %s of %s" % (cls.__name__, code, CODES[code].__name__))
    CODES[code] = cls


class XSContainerError(Exception):
    """Failure of an xscontainer operation (base class; also for otherwise unclassified ones)."""

    code = "XSCONTAINER_ERROR"

    def __init__(self, message: str, *details: str) -> None:
        # All of it in args, so that the error survives copy and pickle.
        super().__init__(message, *details)
        self.message = message
        self.details: List[str] = [str(detail) for detail in details]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _register(cls)

    def __str__(self) -> str:
        return self.message

    def xapi_description(self) -> List[str]:
        """The ErrorDescription of the XAPI failure: ``[code, message] + details``."""
        return [_safe(text) for text in [self.code, self.message, *self.details]]


_register(XSContainerError)


def _safe(text: str) -> str:
    """Text fit for an XML-RPC failure: no secrets, no characters XML forbids."""
    return xmlenc.strip_illegal(log.redact(text))


def xapi_error_description(exc: BaseException, fn: str) -> List[str]:
    """The ErrorDescription the plugin reports for `exc` raised by plugin function `fn`.

    An XSContainerError gives its own description; anything else gives xapi's
    default shape ``['XENAPI_PLUGIN_FAILURE', fn, class name, str(exc)]``.
    """
    if isinstance(exc, XSContainerError):
        return exc.xapi_description()
    return [PLUGIN_FAILURE, _safe(fn), type(exc).__name__, _safe(str(exc))]


# --- arguments and VMs ---------------------------------------------------------


class InvalidArgument(XSContainerError):
    """A plugin argument or a configuration value is missing or malformed."""

    code = "XSCONTAINER_INVALID_ARGUMENT"

    @classmethod
    def missing(cls, argument: str) -> "InvalidArgument":
        return cls(
            "The required argument '%s' is missing. Pass it as args:%s=<value> to "
            "'xe host-call-plugin' (or in the args map of host.call_plugin)."
            % (argument, argument),
            argument,
        )


class VMNotFound(XSContainerError):
    """No VM has the given uuid."""

    code = "XSCONTAINER_VM_NOT_FOUND"


class VMNotRunning(XSContainerError):
    """The VM must be running for this operation."""

    code = "XSCONTAINER_VM_NOT_RUNNING"


# --- reaching the guest and its container engine -------------------------------


class GuestConnectionError(XSContainerError):
    """xscontainer cannot talk to the container engine in the guest (base of the causes)."""

    code = "XSCONTAINER_GUEST_CONNECTION_FAILED"


class NoIP(GuestConnectionError):
    """The guest tools report no IPv4 address, or there are no guest metrics at all."""

    code = "XSCONTAINER_NO_IP"


class GuestUnreachable(GuestConnectionError):
    """No candidate address of the VM accepts connections on the port."""

    code = "XSCONTAINER_GUEST_UNREACHABLE"


class SSHError(GuestConnectionError):
    """The SSH connection to the guest failed."""

    code = "XSCONTAINER_SSH_FAILED"


class SSHAuthFailed(SSHError):
    """The guest's SSH server refused the pool's key."""

    code = "XSCONTAINER_SSH_AUTH_FAILED"


HOSTKEY_KEY = xapi_keys.SSH_HOST_KEY


class SSHHostKeyMismatch(SSHError):
    """The guest's SSH host key differs from the one pinned in VM other-config."""

    code = "XSCONTAINER_SSH_HOSTKEY_MISMATCH"

    @classmethod
    def for_vm(cls, vm_uuid: str, address: str) -> "SSHHostKeyMismatch":
        return cls(
            "The SSH host key of VM %s (at %s) does not match the key recorded when "
            "xscontainer first connected to it, which could be a security breach. If the "
            "change is expected (the VM was reinstalled or its SSH host keys regenerated), "
            "reset the recorded key with: %s" % (vm_uuid, address, reset_hostkey_command(vm_uuid)),
            vm_uuid,
            address,
        )


def reset_hostkey_command(vm_uuid: str) -> str:
    """The xe command that forgets the SSH host key pinned for a VM."""
    return "xe vm-param-remove uuid=%s param-name=other-config param-key=%s" % (
        vm_uuid,
        HOSTKEY_KEY,
    )


class TLSError(GuestConnectionError):
    """The TLS connection to Docker in the guest failed."""

    code = "XSCONTAINER_TLS_FAILED"


class TLSCertificateRejected(TLSError):
    """The guest's server certificate does not chain to the CA stored for the VM."""

    code = "XSCONTAINER_TLS_CERT_REJECTED"


class TLSConfigMissing(TLSError):
    """The VM is in TLS mode but its certificates are not (all) stored."""

    code = "XSCONTAINER_TLS_NOT_CONFIGURED"


class DockerUnreachable(GuestConnectionError):
    """Connected to the guest, but not to Docker: socket missing, daemon down, permission
    denied, or no relay (docker system dial-stdio, socat, ncat) in the guest."""

    code = "XSCONTAINER_DOCKER_UNREACHABLE"


class DockerAPIUnsupported(GuestConnectionError):
    """The engine's Docker API versions and ours do not overlap."""

    code = "XSCONTAINER_DOCKER_API_UNSUPPORTED"


# --- answers from Docker -------------------------------------------------------


class DockerError(XSContainerError):
    """Docker refused a request; carries Docker's own message and the HTTP status."""

    code = "XSCONTAINER_DOCKER_ERROR"

    def __init__(
        self,
        message: str,
        *details: str,
        status: Optional[int] = None,
        docker_message: str = "",
    ) -> None:
        super().__init__(message, *details)
        self.status = status
        self.docker_message = docker_message

    @classmethod
    def from_response(
        cls, status: int, docker_message: str, action: str, where: str
    ) -> "DockerError":
        """The error for Docker answering `status` to `action` ("start container web")
        in `where` ("VM <uuid>"). Details: ``[status, docker_message]``."""
        hint = _DOCKER_HINTS.get(status, "")
        return cls(
            "Docker in %s could not %s (HTTP %d): %s%s"
            % (where, action, status, docker_message or "no message", hint),
            str(status),
            docker_message,
            status=status,
            docker_message=docker_message,
        )


_DOCKER_HINTS = {
    304: ". The container is already in the requested state.",
    404: ". Check the container's name or id; the container list may be out of date.",
    409: ". The container's state does not allow this; refresh the container list and retry.",
}


class NoSuchContainer(DockerError):
    """No container in the VM has the given name or id."""

    code = "XSCONTAINER_NO_SUCH_CONTAINER"


# --- everything else -----------------------------------------------------------


class ResponseTooLarge(XSContainerError):
    """A reply exceeded its size bound and was not read further."""

    code = "XSCONTAINER_RESPONSE_TOO_LARGE"


# Failures whose parameters are session refs, which must not leave the host.
_SESSION_FAILURES = frozenset(["SESSION_INVALID", "SESSION_NOT_REGISTERED"])


class XAPIError(XSContainerError):
    """A XAPI call failed; details are the XenAPI.Failure details (code first)."""

    code = "XSCONTAINER_XAPI_ERROR"

    def __init__(self, message: str, *details: str) -> None:
        if details and details[0] in _SESSION_FAILURES:
            for secret in details[1:]:
                if secret:
                    message = message.replace(secret, log.REDACTED)
            details = (details[0],) + (log.REDACTED,) * (len(details) - 1)
        super().__init__(message, *details)

    @classmethod
    def from_failure(cls, failure: BaseException, call: str) -> "XAPIError":
        """Wrap a XenAPI.Failure (or any error) raised by the XAPI call `call`."""
        failure_details: Sequence[Any] = getattr(failure, "details", None) or [
            type(failure).__name__,
            str(failure),
        ]
        details = [str(detail) for detail in failure_details]
        return cls(
            "XAPI call %s failed: %s. See /var/log/xensource.log on the pool "
            "coordinator for details." % (call, " ".join(details)),
            *details,
        )

    @property
    def xapi_code(self) -> str:
        """The XAPI error code, e.g. ``HANDLE_INVALID`` ('' if unknown)."""
        return self.details[0] if self.details else ""


class Timeout(XSContainerError):
    """An operation did not finish within its time limit."""

    code = "XSCONTAINER_TIMEOUT"


class ConfigDriveError(XSContainerError):
    """Creating or reading a CoreOS config drive failed."""

    code = "XSCONTAINER_CONFIG_DRIVE_FAILED"
