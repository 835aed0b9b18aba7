"""Telling TLS failures apart: which of our errors a failed handshake, or a
failed first read, means.

`classify` finds the ssl error under the wrappers of urllib3 and requests and
says which of these it is: the server's certificate is for other addresses, it
does not chain to the CA stored for the VM (TLSCertificateRejected), the server
refused our client certificate, or no protocol version or cipher in common. Any
other failure gives None and the caller says what it was doing.
"""

import ssl
from typing import Optional

from xscontainer import errors
from xscontainer.transport.base import TLS_PORT

# OpenSSL verify codes that mean "the certificate is not for this address".
_NAME_MISMATCH_CODES = (62, 64)  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH
# Alerts with which a server refuses the client's certificate.
_CLIENT_CERT_ALERTS = (
    "ALERT_BAD_CERTIFICATE", "ALERT_UNKNOWN_CA", "ALERT_CERTIFICATE_EXPIRED",
    "ALERT_CERTIFICATE_REVOKED", "ALERT_CERTIFICATE_UNKNOWN", "ALERT_UNSUPPORTED_CERTIFICATE",
    "ALERT_CERTIFICATE_REQUIRED", "ALERT_ACCESS_DENIED", "ALERT_DECRYPT_ERROR",
)
_PROTOCOL_FAILURES = (
    "ALERT_HANDSHAKE_FAILURE", "ALERT_PROTOCOL_VERSION", "UNSUPPORTED_PROTOCOL",
    "NO_PROTOCOLS_AVAILABLE", "NO_SHARED_CIPHER", "NO_CIPHERS_AVAILABLE",
    "ALERT_INSUFFICIENT_SECURITY", "WRONG_VERSION_NUMBER", "VERSION_TOO_LOW",
    "UNKNOWN_PROTOCOL", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG",
)


def rerun_hint(vm_uuid: str) -> str:
    """How the admin stores a new set of TLS certificates for the VM."""
    return ("rerun 'xscontainer-prepare-vm -v %s --mode tls --generate-certs' (or with "
            "--client-cert/--client-key/--ca-cert for certificates of your own)" % vm_uuid)


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or ""
    text = "%s %s" % (reason, exc)
    return text.upper()


def ssl_error_in(exc: BaseException) -> Optional[BaseException]:
    """The ssl.SSLError / CertificateError at the root of `exc` (urllib3 and
    requests wrap them), or None."""
    seen = 0
    current: Optional[BaseException] = exc
    while current is not None and seen < 12:
        if isinstance(current, (ssl.SSLError, ssl.CertificateError)):
            return current
        for arg in getattr(current, "args", ()):
            if isinstance(arg, BaseException):
                found = ssl_error_in(arg) if arg is not current else None
                if found is not None:
                    return found
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException) and reason is not current:
            found = ssl_error_in(reason)
            if found is not None:
                return found
        current = current.__cause__ or current.__context__
        seen += 1
    return None


def classify(exc: BaseException, address: str, vm_uuid: str,
             where: str) -> Optional[errors.TLSError]:
    """Our error for a TLS failure of a known kind talking to `address`, else None."""
    if isinstance(exc, errors.TLSError):
        return exc
    root = ssl_error_in(exc)
    if root is None:
        return None
    text = _reason(root)
    verify_code = getattr(root, "verify_code", None)
    if verify_code in _NAME_MISMATCH_CODES or (
            isinstance(root, ssl.CertificateError) and verify_code is None
            and "CERTIFICATE_VERIFY_FAILED" not in text):
        return errors.TLSCertificateRejected(
            "Docker in %s presented a certificate that is not valid for the address %s (its "
            "subjectAltName lists other addresses; the VM's address may have changed). Put %s "
            "into the server certificate: %s." % (where, address, address, rerun_hint(vm_uuid)),
            vm_uuid, address)
    if "CERTIFICATE_VERIFY_FAILED" in text or verify_code is not None:
        detail = getattr(root, "verify_message", None) or "verification failed"
        return errors.TLSCertificateRejected(
            "Docker in %s at %s presented a certificate that does not chain to the CA stored "
            "for the VM (%s). Either the VM's Docker engine uses other certificates now (an "
            "admin installed new ones, or this is not the VM it should be), or they expired. "
            "If the change is expected, %s." % (where, address, detail, rerun_hint(vm_uuid)),
            vm_uuid, address)
    if any(alert in text for alert in _CLIENT_CERT_ALERTS):
        return errors.TLSError(
            "Docker in %s at %s refused xscontainer's client certificate (%s): the engine "
            "trusts another CA than the one stored for the VM, or the certificate expired. "
            "Install the matching CA in the VM's Docker configuration, or %s."
            % (where, address, short(root), rerun_hint(vm_uuid)), vm_uuid, address)
    if any(failure in text for failure in _PROTOCOL_FAILURES):
        return errors.TLSError(
            "No TLS protocol version or cipher in common with Docker in %s at %s (%s). "
            "xscontainer needs TLS 1.2 with ECDHE and AES-GCM or ChaCha20, or TLS 1.3; update "
            "Docker in the VM, and check that port %d serves Docker's TLS endpoint."
            % (where, address, short(root), TLS_PORT), vm_uuid, address)
    return None


def short(exc: BaseException) -> str:
    """An ssl error's reason (or its text, cut at 300 characters), for messages."""
    reason = getattr(exc, "reason", None)
    if reason:
        return str(reason)
    text = str(exc) or exc.__class__.__name__
    return text if len(text) < 300 else text[:300] + "..."
