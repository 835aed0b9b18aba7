"""One exception hierarchy for xscontainer, each class with a stable error code.

Every error carries:

* ``code``: a stable string (``XSCONTAINER_...``), the XAPI error code clients see;
* ``message``: what went wrong **and what to do about it**, for a person;
* ``details``: machine-readable strings (the VM uuid first when there is one).

`xapi_description()` is the ``ErrorDescription`` of the XAPI failure a client
gets. Messages and details must never contain secrets, private keys or session
refs; the edge that renders a description (the plugin's dispatch) also passes it
through the log's redaction and XML's character rules as a safety net.

This module imports nothing from the package, so that any module can raise
these errors without import cycles.

    raise errors.VMNotRunning("VM %s is Halted. Start it and retry." % uuid, uuid)
"""

from typing import Any, Dict, List, Optional, Sequence, Type

# code -> class, in definition order; filled in as the classes are defined.
CODES: Dict[str, Type["XSContainerError"]] = {}

CODE_PREFIX = "XSCONTAINER_"
# What replaces a secret in texts that leave the process (logs, errors).
REDACTED = "<redacted>"


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
        return [self.code, self.message, *self.details]


_register(XSContainerError)


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


class SSHHostKeyMismatch(SSHError):
    """The guest's SSH host key differs from the one pinned in VM other-config."""

    code = "XSCONTAINER_SSH_HOSTKEY_MISMATCH"


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


class MalformedReply(DockerError):
    """The engine's reply is not what the Docker API answers: not JSON, cut short,
    nested too deeply, or a JSON value of the wrong type."""

    code = "XSCONTAINER_DOCKER_MALFORMED_REPLY"


# --- everything else -----------------------------------------------------------


class ResponseTooLarge(XSContainerError):
    """A reply exceeded its size bound and was not read further."""

    code = "XSCONTAINER_RESPONSE_TOO_LARGE"


# Failures whose parameters are session refs, which must not leave the host.
_SESSION_FAILURES = frozenset(["SESSION_INVALID", "SESSION_NOT_REGISTERED"])
# XAPI's codes for "no such object": a uuid or a ref that does not (or no longer) exist.
GONE = frozenset(["UUID_INVALID", "HANDLE_INVALID"])


class XAPIError(XSContainerError):
    """A XAPI call failed, or XAPI could not be reached.

    For a failure XAPI reported, details are its ErrorDescription (code first) and
    `failure` holds it too; for a transport failure `failure` is None.
    """

    code = "XSCONTAINER_XAPI_ERROR"

    def __init__(self, message: str, *details: str) -> None:
        if details and details[0] in _SESSION_FAILURES:
            for secret in details[1:]:
                if secret:
                    message = message.replace(secret, REDACTED)
            details = (details[0],) + (REDACTED,) * (len(details) - 1)
        super().__init__(message, *details)
        self.failure: Optional[List[str]] = None

    @classmethod
    def from_failure(cls, failure: BaseException, call: str) -> "XAPIError":
        """Wrap the failure the XAPI call `call` raised: a XAPI failure (an
        exception with `details`, XAPI's ErrorDescription) or a transport error."""
        xapi_details: Optional[Sequence[Any]] = getattr(failure, "details", None)
        failure_details = xapi_details or [type(failure).__name__, str(failure)]
        details = [str(detail) for detail in failure_details]
        error = cls(
            "XAPI call %s failed: %s. See /var/log/xensource.log on the pool "
            "coordinator for details." % (call, " ".join(details)),
            *details,
        )
        if xapi_details:
            error.failure = [str(detail) for detail in xapi_details]
        return error

    @property
    def xapi_code(self) -> str:
        """The XAPI error code, e.g. ``HANDLE_INVALID`` ('' if unknown)."""
        return self.details[0] if self.details else ""

    @property
    def gone(self) -> bool:
        """The object the call named does not exist (any more)."""
        return self.xapi_code in GONE


class Timeout(XSContainerError):
    """An operation did not finish within its time limit."""

    code = "XSCONTAINER_TIMEOUT"


class ConfigDriveError(XSContainerError):
    """Creating or reading a CoreOS config drive failed."""

    code = "XSCONTAINER_CONFIG_DRIVE_FAILED"


class PrepareInProgress(XSContainerError):
    """Another preparation of the same VM holds its lock on this host."""

    code = "XSCONTAINER_PREPARE_IN_PROGRESS"
