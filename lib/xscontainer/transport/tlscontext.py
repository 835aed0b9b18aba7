"""The SSL context of TLS mode: what dom0 accepts from a guest's Docker engine
and what it presents to it.

* TLS 1.2 or newer. For TLS 1.2 only forward-secret AEAD suites (ECDHE with
  AES-GCM or ChaCha20-Poly1305, RSA or ECDSA certificates); TLS 1.3 suites are
  all of that kind. The original's AES128-SHA is refused by current engines.
* The server certificate must chain to the VM's own CA (held in a XAPI secret,
  loaded from memory; the system's CA store and REQUESTS_CA_BUNDLE /
  CURL_CA_BUNDLE play no part: requests never builds this TLS context).
* Hostname checking is on, with the IP address we connect to as the name: the
  server certificate must list that address as an IP SAN (prepare-vm puts every
  IPv4 address of the VM there). Any certificate of the VM's CA for another
  address is refused, so a certificate that leaked from one VM cannot
  impersonate another VM that shares the CA (clones do). Python 3.7+ lets
  OpenSSL match the IP during the handshake; 3.6 matches IP SANs after it
  (ssl.match_hostname); the outcome is the same.
* The client certificate and key are given to OpenSSL through files (the only
  way `SSLContext.load_cert_chain` takes them): written to a fresh 0700
  directory under paths.run_dir(), loaded, deleted at once, also on error.
"""

import os
import shutil
import ssl
import tempfile

from xscontainer import errors, paths
from xscontainer.transport.base import Material
from xscontainer.transport.tlsfailures import rerun_hint

# OpenSSL cipher string for TLS 1.2 (TLS 1.3 suites are configured separately
# and are all AEAD with forward secrecy).
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!PSK:!SRP"


def _write_private(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _restrict_versions(context: ssl.SSLContext) -> None:
    """TLS 1.2 at least: minimum_version where it exists (3.7+), else the OP_NO flags."""
    versions = getattr(ssl, "TLSVersion", None)
    if versions is not None:
        setattr(context, "minimum_version", versions.TLSv1_2)  # noqa: B010 (3.7+, vermin)
    else:
        context.options |= ssl.OP_NO_SSLv2 | ssl.OP_NO_SSLv3 | ssl.OP_NO_TLSv1 | ssl.OP_NO_TLSv1_1


def make_context(material: Material, vm_uuid: str = "") -> ssl.SSLContext:
    """An SSLContext that trusts only the VM's CA and presents its client certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.verify_mode = ssl.CERT_REQUIRED
    context.check_hostname = True
    _restrict_versions(context)
    context.set_ciphers(TLS12_CIPHERS)
    context.options |= getattr(ssl, "OP_NO_COMPRESSION", 0) | getattr(ssl, "OP_NO_RENEGOTIATION", 0)
    try:
        context.load_verify_locations(cadata=material.ca_cert)
    except (ssl.SSLError, ValueError) as exc:
        raise errors.TLSConfigMissing(
            "The CA certificate stored for VM %s cannot be loaded (%s); %s."
            % (vm_uuid, exc, rerun_hint(vm_uuid)), vm_uuid) from exc
    _load_client_pair(context, material, vm_uuid)
    return context


def _load_client_pair(context: ssl.SSLContext, material: Material, vm_uuid: str) -> None:
    base = paths.run_dir()
    os.makedirs(base, mode=0o700, exist_ok=True)
    directory = tempfile.mkdtemp(prefix="tls-", dir=base)  # 0700, ours alone
    try:
        cert_path = os.path.join(directory, "cert.pem")
        key_path = os.path.join(directory, "key.pem")
        _write_private(cert_path, material.client_cert)
        _write_private(key_path, material.client_key)
        try:
            context.load_cert_chain(cert_path, key_path)
        except (ssl.SSLError, ValueError) as exc:
            raise errors.TLSConfigMissing(
                "The client certificate and key stored for VM %s cannot be loaded (%s); %s."
                % (vm_uuid, getattr(exc, "reason", None) or exc.__class__.__name__,
                   rerun_hint(vm_uuid)), vm_uuid) from exc
    finally:
        shutil.rmtree(directory, ignore_errors=True)
