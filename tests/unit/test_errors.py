"""errors: one hierarchy, stable unique codes, XAPI failure descriptions."""

import copy
import pickle
from pathlib import Path
from typing import List, Type

import pytest
import XenAPI

from xscontainer import errors
from xscontainer.transport import ssh

VM = "4a3b2c1d-0000-4e5f-8a9b-0c1d2e3f4a5b"

# The codes README promises, with the class that carries each.
EXPECTED = {
    "XSCONTAINER_ERROR": "XSContainerError",
    "XSCONTAINER_INVALID_ARGUMENT": "InvalidArgument",
    "XSCONTAINER_VM_NOT_FOUND": "VMNotFound",
    "XSCONTAINER_VM_NOT_RUNNING": "VMNotRunning",
    "XSCONTAINER_GUEST_CONNECTION_FAILED": "GuestConnectionError",
    "XSCONTAINER_NO_IP": "NoIP",
    "XSCONTAINER_GUEST_UNREACHABLE": "GuestUnreachable",
    "XSCONTAINER_SSH_FAILED": "SSHError",
    "XSCONTAINER_SSH_AUTH_FAILED": "SSHAuthFailed",
    "XSCONTAINER_SSH_HOSTKEY_MISMATCH": "SSHHostKeyMismatch",
    "XSCONTAINER_TLS_FAILED": "TLSError",
    "XSCONTAINER_TLS_CERT_REJECTED": "TLSCertificateRejected",
    "XSCONTAINER_TLS_NOT_CONFIGURED": "TLSConfigMissing",
    "XSCONTAINER_DOCKER_UNREACHABLE": "DockerUnreachable",
    "XSCONTAINER_DOCKER_API_UNSUPPORTED": "DockerAPIUnsupported",
    "XSCONTAINER_DOCKER_ERROR": "DockerError",
    "XSCONTAINER_NO_SUCH_CONTAINER": "NoSuchContainer",
    "XSCONTAINER_DOCKER_MALFORMED_REPLY": "MalformedReply",
    "XSCONTAINER_RESPONSE_TOO_LARGE": "ResponseTooLarge",
    "XSCONTAINER_XAPI_ERROR": "XAPIError",
    "XSCONTAINER_TIMEOUT": "Timeout",
    "XSCONTAINER_PREPARE_IN_PROGRESS": "PrepareInProgress",
    "XSCONTAINER_CONFIG_DRIVE_FAILED": "ConfigDriveError",
}


def all_classes() -> List[Type[errors.XSContainerError]]:
    found: List[Type[errors.XSContainerError]] = []
    pending: List[Type[errors.XSContainerError]] = [errors.XSContainerError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def test_code_table_is_complete_and_unique() -> None:
    classes = all_classes()
    assert len({cls.code for cls in classes}) == len(classes)  # unique
    assert {cls.code: cls for cls in classes} == errors.CODES  # the table lists them all
    assert {code: cls.__name__ for code, cls in errors.CODES.items()} == EXPECTED
    for code, cls in errors.CODES.items():
        assert code.startswith("XSCONTAINER_")
        assert getattr(errors, cls.__name__) is cls
        assert cls.__doc__, "the table's documentation comes from the docstring"


def test_a_duplicate_or_missing_code_is_refused() -> None:
    with pytest.raises(TypeError, match="reuses code XSCONTAINER_TIMEOUT"):
        type("Again", (errors.XSContainerError,), {"code": "XSCONTAINER_TIMEOUT"})
    with pytest.raises(TypeError, match="must define its own code"):
        type("Inherits", (errors.Timeout,), {})
    with pytest.raises(TypeError, match="must define its own code"):
        type("Foreign", (errors.XSContainerError,), {"code": "OTHER_CODE"})
    assert {code: cls.__name__ for code, cls in errors.CODES.items()} == EXPECTED


@pytest.mark.parametrize(
    "child,parent",
    [
        (errors.NoIP, errors.GuestConnectionError),
        (errors.GuestUnreachable, errors.GuestConnectionError),
        (errors.SSHAuthFailed, errors.SSHError),
        (errors.SSHHostKeyMismatch, errors.SSHError),
        (errors.SSHError, errors.GuestConnectionError),
        (errors.TLSCertificateRejected, errors.TLSError),
        (errors.TLSConfigMissing, errors.TLSError),
        (errors.TLSError, errors.GuestConnectionError),
        (errors.DockerUnreachable, errors.GuestConnectionError),
        (errors.DockerAPIUnsupported, errors.GuestConnectionError),
        (errors.NoSuchContainer, errors.DockerError),
    ],
)
def test_grouping(child: type, parent: type) -> None:
    assert issubclass(child, parent)
    assert issubclass(child, errors.XSContainerError)


@pytest.mark.parametrize("cls", all_classes(), ids=lambda cls: cls.__name__)
def test_every_error_has_a_description_of_strings(cls: Type[errors.XSContainerError]) -> None:
    error = cls("Something failed. Do this to fix it.", VM, "detail")
    assert str(error) == error.message == "Something failed. Do this to fix it."
    assert error.details == [VM, "detail"]
    description = error.xapi_description()
    assert description == [cls.code, "Something failed. Do this to fix it.", VM, "detail"]
    assert all(isinstance(item, str) for item in description)


def test_details_are_strings() -> None:
    error = errors.Timeout("Docker did not answer within 30 s. Retry later.", 30, None)
    assert error.details == ["30", "None"]
    assert error.xapi_description()[2:] == ["30", "None"]


def test_errors_survive_copy_and_pickle() -> None:
    error = errors.VMNotRunning("VM is Halted. Start it.", VM)
    for clone in (copy.copy(error), pickle.loads(pickle.dumps(error))):
        assert type(clone) is errors.VMNotRunning
        assert (clone.message, clone.details) == (error.message, error.details)


def test_hostkey_mismatch_names_the_reset_command() -> None:
    error = ssh.hostkey_mismatch(VM, "10.0.0.7")
    command = (
        "xe vm-param-remove uuid=%s param-name=other-config param-key=xscontainer-sshhostkey" % VM
    )
    assert command == ssh.reset_hostkey_command(VM)
    assert type(error) is errors.SSHHostKeyMismatch
    assert command in error.message
    assert "10.0.0.7" in error.message and "security" in error.message
    assert error.details == [VM, "10.0.0.7"]
    assert error.xapi_description()[0] == "XSCONTAINER_SSH_HOSTKEY_MISMATCH"
    assert command in error.xapi_description()[1]


def test_missing_argument() -> None:
    error = errors.InvalidArgument.missing("vmuuid")
    assert error.code == "XSCONTAINER_INVALID_ARGUMENT"
    assert "'vmuuid'" in error.message and "args:vmuuid=" in error.message
    assert error.details == ["vmuuid"]


def test_docker_error_carries_status_and_dockers_message() -> None:
    error = errors.DockerError.from_response(
        409, "Container 3f4e8c1b2a9d is not running", "pause container web", "VM " + VM
    )
    assert (error.status, error.docker_message) == (409, "Container 3f4e8c1b2a9d is not running")
    assert error.details == ["409", "Container 3f4e8c1b2a9d is not running"]
    assert error.message.startswith(
        "Docker in VM %s could not pause container web (HTTP 409): "
        "Container 3f4e8c1b2a9d is not running. " % VM
    )
    assert "refresh the container list" in error.message
    plain = errors.DockerError("Docker sent an unreadable event.")
    assert (plain.status, plain.docker_message, plain.details) == (None, "", [])


def test_no_such_container_from_response_keeps_its_class() -> None:
    error = errors.NoSuchContainer.from_response(404, "No such container: web", "stop web", "VM x")
    assert type(error) is errors.NoSuchContainer
    assert error.xapi_description()[:2] == [
        "XSCONTAINER_NO_SUCH_CONTAINER",
        "Docker in VM x could not stop web (HTTP 404): No such container: web. Check the "
        "container's name or id; the container list may be out of date.",
    ]


def test_xapi_error_wraps_a_failure_keeping_its_details() -> None:
    failure = XenAPI.Failure(["HANDLE_INVALID", "VM", "OpaqueRef:5e6f"])
    error = errors.XAPIError.from_failure(failure, "VM.get_record")
    assert error.details == ["HANDLE_INVALID", "VM", "OpaqueRef:5e6f"]
    assert error.failure == ["HANDLE_INVALID", "VM", "OpaqueRef:5e6f"]
    assert error.xapi_code == "HANDLE_INVALID" and error.gone
    assert "XAPI call VM.get_record failed: HANDLE_INVALID VM OpaqueRef:5e6f." in error.message
    assert error.xapi_description() == [
        "XSCONTAINER_XAPI_ERROR",
        error.message,
        "HANDLE_INVALID",
        "VM",
        "OpaqueRef:5e6f",
    ]


def test_xapi_error_from_a_non_failure() -> None:
    error = errors.XAPIError.from_failure(ConnectionRefusedError("refused"), "session.login")
    assert error.details == ["ConnectionRefusedError", "refused"]
    assert error.failure is None and not error.gone
    assert errors.XAPIError("Cannot log in.").xapi_code == ""


@pytest.mark.parametrize("code, gone", [
    ("UUID_INVALID", True), ("HANDLE_INVALID", True), ("MAP_DUPLICATE_KEY", False),
])
def test_gone_is_xapis_no_such_object(code: str, gone: bool) -> None:
    assert errors.XAPIError.from_failure(XenAPI.Failure([code, "x"]), "VM.get_by_uuid").gone is gone


def test_xapi_error_never_carries_session_refs() -> None:
    session = "OpaqueRef:9c8b7a65-4321-4fed-8cba-0123456789ab"
    for error in (
        errors.XAPIError.from_failure(XenAPI.Failure(["SESSION_INVALID", session]), "VM.get_all"),
        errors.XAPIError(
            "XAPI call failed: SESSION_INVALID %s" % session, "SESSION_INVALID", session
        ),
    ):
        assert session not in " ".join(error.xapi_description())
        assert error.details == ["SESSION_INVALID", "<redacted>"]


def test_the_error_module_imports_nothing_of_the_package() -> None:
    """Any module can raise these errors without an import cycle."""
    source = Path(errors.__file__).read_text()
    assert "from xscontainer" not in source and "import xscontainer" not in source
