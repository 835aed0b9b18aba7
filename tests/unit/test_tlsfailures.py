"""Telling TLS failures apart (transport/tlsfailures.py) from the exceptions
themselves, wrapped as urllib3 and requests wrap them. The same failures from
real handshakes are in test_certs_handshake.py."""

import ssl

import pytest
import requests.exceptions
import urllib3.exceptions

from xscontainer import errors
from xscontainer.transport import tlsfailures

VM = "5d1c9c39-0000-4000-8000-00000000abcd"
ADDRESS = "10.0.0.5"
WHERE = "VM test (%s)" % VM


def ssl_error(text: str, verify_code: object = None, verify_message: str = "") -> ssl.SSLError:
    exc = ssl.SSLError(1, text)
    if verify_code is not None:
        exc.verify_code = verify_code  # type: ignore[attr-defined]
        exc.verify_message = verify_message  # type: ignore[attr-defined]
    return exc


def as_requests_raise_it(root: BaseException) -> BaseException:
    """requests.SSLError(MaxRetryError(reason=urllib3 SSLError(root)))."""
    retry = urllib3.exceptions.MaxRetryError(None, "/version",  # type: ignore[arg-type]
                                             reason=urllib3.exceptions.SSLError(root))
    return requests.exceptions.SSLError(retry)


def classify(exc: BaseException) -> errors.TLSError:
    result = tlsfailures.classify(exc, ADDRESS, VM, WHERE)
    assert result is not None
    return result


def test_our_own_tls_errors_pass_through() -> None:
    ours = errors.TLSError("already told apart", VM, ADDRESS)
    assert classify(ours) is ours


@pytest.mark.parametrize("exc", [
    ConnectionRefusedError(111, "Connection refused"),
    requests.exceptions.ConnectionError("reset"),
    ssl_error("[SSL] something else entirely"),
])
def test_failures_of_no_known_kind_are_left_to_the_caller(exc: BaseException) -> None:
    assert tlsfailures.classify(exc, ADDRESS, VM, WHERE) is None


def test_the_ssl_error_is_found_under_the_wrappers_and_in_the_cause() -> None:
    root = ssl_error("[SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca")
    assert tlsfailures.ssl_error_in(as_requests_raise_it(root)) is root
    try:
        try:
            raise root
        except ssl.SSLError as exc:
            raise RuntimeError("while reading") from exc
    except RuntimeError as outer:
        assert tlsfailures.ssl_error_in(outer) is root


def test_a_refused_client_certificate() -> None:
    result = classify(as_requests_raise_it(
        ssl_error("[SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca")))
    assert type(result) is errors.TLSError
    assert "refused xscontainer's client certificate" in result.message
    assert "xscontainer-prepare-vm -v %s --mode tls" % VM in result.message


def test_a_server_certificate_of_another_ca() -> None:
    result = classify(ssl_error("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed",
                                20, "unable to get local issuer certificate"))
    assert isinstance(result, errors.TLSCertificateRejected)
    assert "does not chain to the CA stored for the VM" in result.message
    assert "unable to get local issuer certificate" in result.message


@pytest.mark.parametrize("exc", [
    ssl_error("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed", 64,
              "IP address mismatch"),
    ssl.CertificateError("hostname '10.0.0.5' doesn't match '10.9.9.9'"),  # Python 3.6
])
def test_a_server_certificate_for_other_addresses(exc: BaseException) -> None:
    result = classify(exc)
    assert isinstance(result, errors.TLSCertificateRejected)
    assert "not valid for the address %s" % ADDRESS in result.message


def test_no_protocol_or_cipher_in_common() -> None:
    result = classify(ssl_error("[SSL: NO_SHARED_CIPHER] no shared cipher"))
    assert type(result) is errors.TLSError
    assert "No TLS protocol version or cipher in common" in result.message
    assert "port 2376" in result.message


def test_short_prefers_the_reason_and_cuts_long_texts() -> None:
    exc = ssl.SSLError(1, "x")
    exc.reason = "NO_SHARED_CIPHER"
    assert tlsfailures.short(exc) == "NO_SHARED_CIPHER"
    assert tlsfailures.short(OSError()) == "OSError"
    assert tlsfailures.short(ValueError("y" * 400)) == "y" * 300 + "..."
