"""Certificates for TLS mode: generating a per-VM set, validating an admin's own.

Generated sets (xscontainer-prepare-vm --mode tls --generate-certs):

* a CA, a server certificate for Docker in the VM (IP SANs: every IPv4 address
  the VM reports) and a client certificate for dom0;
* ECDSA P-256 keys, ECDSA-with-SHA-256 signatures. Chosen over RSA 4096 because
  generating three P-256 keys takes milliseconds where three RSA-4096 keys take
  seconds in dom0, at a strength (~128 bits) above RSA 2048/3072; handshakes are
  smaller and faster, and every peer involved supports it: Go's crypto/tls (the
  Docker engine on Windows and Linux, the docker CLI), OpenSSL in dom0, and the
  ECDHE-ECDSA AES-GCM / ChaCha20 suites that transport/tlscontext.py allows for TLS 1.2;
* valid 730 days (2 x 365) from five minutes ago (clock skew), never longer;
* RFC 5280 extensions: basicConstraints (CA: true, pathlen 0; leaves: false),
  keyUsage (CA: keyCertSign, cRLSign; leaves: digitalSignature), extendedKeyUsage
  (serverAuth / clientAuth), subject and authority key identifiers.

The CA's private key lives only inside `generate`: it signs the two leaves and
is dropped (never serialised, never written), so nobody can issue more
certificates that the VM's Docker engine would trust.

External sets (--client-cert/--client-key/--ca-cert) are checked by
`validate_external` before they are stored, each failure with a message that
says which file is wrong and how.
"""

import datetime
import ipaddress
import socket
from typing import Iterable, List, Optional, Sequence, Tuple

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from xscontainer import errors
from xscontainer.transport import Material

VALIDITY_DAYS = 2 * 365
BACKDATE = datetime.timedelta(minutes=5)
MIN_RSA_BITS = 2048
UTC = datetime.timezone.utc


class GeneratedSet:
    """A generated set, all PEM text: what goes to the VM and what dom0 keeps."""

    def __init__(self, ca_cert: str, server_cert: str, server_key: str, client_cert: str,
                 client_key: str) -> None:
        self.ca_cert = ca_cert
        self.server_cert = server_cert
        self.server_key = server_key
        self.client_cert = client_cert
        self.client_key = client_key

    def client_material(self) -> Material:
        """What dom0 stores as secrets and connects with."""
        return Material(self.client_cert, self.client_key, self.ca_cert)


# -- dates (cryptography 42 added *_utc and deprecated the naive properties) ------


def not_before(cert: x509.Certificate) -> datetime.datetime:
    value = getattr(cert, "not_valid_before_utc", None)
    if value is None:
        value = cert.not_valid_before.replace(tzinfo=UTC)
    return value


def not_after(cert: x509.Certificate) -> datetime.datetime:
    value = getattr(cert, "not_valid_after_utc", None)
    if value is None:
        value = cert.not_valid_after.replace(tzinfo=UTC)
    return value


def _now() -> datetime.datetime:
    return datetime.datetime.now(UTC)


def days_left(cert: x509.Certificate, now: Optional[datetime.datetime] = None) -> float:
    """Days until the certificate expires (negative once expired)."""
    return (not_after(cert) - (now or _now())).total_seconds() / 86400.0


def load_certificate(pem: str) -> x509.Certificate:
    """The first certificate of a PEM text (ValueError if there is none)."""
    return x509.load_pem_x509_certificate(pem.encode("ascii"))


# -- generation -----------------------------------------------------------------


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def _cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _name(common_name: str) -> x509.Name:
    organisation = "%s.xscontainer" % (socket.gethostname() or "dom0")
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation[:64]),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64]),
    ])


def _key_usage(sign_certs: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not sign_certs,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=sign_certs,
        crl_sign=sign_certs,
        encipher_only=False,
        decipher_only=False,
    )


def _builder(subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey,
             start: datetime.datetime) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=VALIDITY_DAYS))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def ipv4_addresses(addresses: Iterable[str]) -> List[str]:
    """The distinct IPv4 addresses among `addresses`, in order."""
    found: List[str] = []
    for text in addresses:
        try:
            address = ipaddress.ip_address(text.strip())
        except ValueError:
            continue
        if address.version == 4 and str(address) not in found:
            found.append(str(address))
    return found


def generate(addresses: Sequence[str], vm_uuid: str,
             now: Optional[datetime.datetime] = None) -> GeneratedSet:
    """A CA, a server certificate for `addresses` and a client certificate."""
    ips = ipv4_addresses(addresses)
    if not ips:
        raise errors.NoIP(
            "The VM reports no IPv4 address for the server certificate. Check the VM's "
            "network and its guest tools, then retry.", vm_uuid)
    start = (now or _now()) - BACKDATE
    ca_key = _new_key()
    ca_name = _name("xscontainer CA for VM %s" % vm_uuid)
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        _builder(ca_name, ca_name, ca_key.public_key(), start)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(sign_certs=True), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(common_name: str, usage: x509.ObjectIdentifier,
             san: Optional[x509.SubjectAlternativeName]) -> Tuple[x509.Certificate, str]:
        key = _new_key()
        builder = (
            _builder(_name(common_name), ca_name, key.public_key(), start)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(sign_certs=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                critical=False)
        )
        if san is not None:
            builder = builder.add_extension(san, critical=False)
        return builder.sign(ca_key, hashes.SHA256()), _key_pem(key)

    san = x509.SubjectAlternativeName(
        [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips])
    server_cert, server_key = leaf("Docker in VM %s" % vm_uuid, ExtendedKeyUsageOID.SERVER_AUTH,
                                   san)
    client_cert, client_key = leaf("xscontainer client for VM %s" % vm_uuid,
                                   ExtendedKeyUsageOID.CLIENT_AUTH, None)
    # ca_key is never serialised and goes out of scope here: nothing can sign for
    # this CA any more.
    return GeneratedSet(_cert_pem(ca_cert), _cert_pem(server_cert), server_key,
                        _cert_pem(client_cert), client_key)


def san_addresses(cert: x509.Certificate) -> List[str]:
    """The IP addresses in a certificate's subjectAltName."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]


# -- validation of an admin's own certificates --------------------------------------


def _invalid(message: str) -> errors.InvalidArgument:
    return errors.InvalidArgument(message)


def _load_certs(data: bytes, what: str) -> List[x509.Certificate]:
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise _invalid(
            "%s is not a PEM certificate (no '-----BEGIN CERTIFICATE-----' block). Give the "
            "certificate in PEM format (convert DER with: openssl x509 -inform der -in FILE "
            "-out FILE.pem)." % what)
    try:
        return list(x509.load_pem_x509_certificates(data))
    except ValueError as exc:
        raise _invalid("%s holds a PEM block that is not a valid certificate (%s)."
                       % (what, exc)) from exc


def _check_dates(cert: x509.Certificate, what: str, now: datetime.datetime) -> None:
    if now < not_before(cert):
        raise _invalid("%s is not valid yet (valid from %s UTC). Check the clocks of dom0 and "
                       "of the machine that issued it."
                       % (what, not_before(cert).strftime("%Y-%m-%d %H:%M")))
    if now > not_after(cert):
        raise _invalid("%s expired on %s UTC. Issue a new one." % (
            what, not_after(cert).strftime("%Y-%m-%d %H:%M")))


def _public_der(key: object) -> bytes:
    return key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _check_key_strength(cert: x509.Certificate, what: str) -> None:
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        raise _invalid("%s has a %d-bit RSA key; use at least %d bits."
                       % (what, key.key_size, MIN_RSA_BITS))
    if isinstance(key, dsa.DSAPublicKey):
        raise _invalid("%s has a DSA key, which TLS 1.2/1.3 peers refuse; use RSA or ECDSA."
                       % what)
    if isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        raise _invalid("%s has an EdDSA key, which Docker engines do not accept for TLS "
                       "client authentication; use RSA or ECDSA." % what)


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def validate_external(client_cert: bytes, client_key: bytes, ca_cert: bytes,
                      names: Sequence[str] = ("the client certificate", "the client key",
                                              "the CA certificate"),
                      now: Optional[datetime.datetime] = None) -> Material:
    """Check an admin's client certificate, key and CA; the material to store.

    The certificate and key must parse and match, be valid now, the
    certificate must be issued (signature checked) by a certificate of the CA
    file, and allow clientAuth if it restricts its usage. `names` name the three
    inputs in messages (e.g. the file names).
    """
    cert_what, key_what, ca_what = names
    now = now or _now()
    client_certs = _load_certs(client_cert, cert_what)
    cert = client_certs[0]
    cas = _load_certs(ca_cert, ca_what)
    if b"PRIVATE KEY-----" not in client_key:
        raise _invalid("%s is not a PEM private key (no '-----BEGIN ... PRIVATE KEY-----' block)."
                       % key_what)
    try:
        key = serialization.load_pem_private_key(client_key, password=None)
    except TypeError as exc:
        raise _invalid("%s is encrypted; give it unencrypted (openssl pkey -in KEY -out "
                       "KEY.plain), it is stored as a XAPI secret." % key_what) from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise _invalid("%s cannot be read as a private key (%s)." % (key_what, exc)) from exc
    if _public_der(key.public_key()) != _public_der(cert.public_key()):
        raise _invalid("%s does not belong to %s (their public keys differ). Give the key the "
                       "certificate was issued for." % (key_what, cert_what))
    _check_key_strength(cert, cert_what)
    _check_dates(cert, cert_what, now)
    for n, ca in enumerate(cas):
        _check_dates(ca, ca_what if len(cas) == 1 else "%s (certificate %d)" % (ca_what, n + 1),
                     now)
    if not any(_issued_by(cert, ca) for ca in cas):
        raise _invalid(
            "%s was not issued by %s (issuer '%s'; the CA file holds '%s'). Give the CA that "
            "signed the client certificate." % (
                cert_what, ca_what, cert.issuer.rfc4514_string(),
                "', '".join(ca.subject.rfc4514_string() for ca in cas)))
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usages = None
    if usages is not None and ExtendedKeyUsageOID.CLIENT_AUTH not in usages and \
            ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in usages:
        raise _invalid("%s does not allow TLS client authentication (its extendedKeyUsage lacks "
                       "clientAuth). Issue a client certificate." % cert_what)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode("ascii")
    chain = "".join(_cert_pem(c) for c in client_certs)
    return Material(chain, key_pem, "".join(_cert_pem(ca) for ca in cas))
