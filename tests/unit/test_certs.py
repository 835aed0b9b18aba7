"""Generated TLS certificate sets and validation of an administrator's own."""

import datetime
import ipaddress
from typing import List, Optional, Tuple

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from xscontainer import certs, errors

VM = "0c2b2f8e-1111-4222-8333-444455556666"
UTC = datetime.timezone.utc


@pytest.fixture(scope="module")
def generated() -> certs.GeneratedSet:
    return certs.generate(["10.0.0.5", "fe80::1", "169.254.0.2", "10.0.0.5", "bogus"], VM)


def load(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def ext(cert: x509.Certificate, cls: type) -> x509.Extension:  # type: ignore[type-arg]
    return cert.extensions.get_extension_for_class(cls)


def test_server_san_lists_every_ipv4_address_once(generated: certs.GeneratedSet) -> None:
    server = load(generated.server_cert)
    san = ext(server, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("10.0.0.5"), ipaddress.ip_address("169.254.0.2")]
    assert san.get_values_for_type(x509.DNSName) == []
    assert certs.san_addresses(server) == ["10.0.0.5", "169.254.0.2"]


def test_validity_is_at_most_730_days_and_starts_now(generated: certs.GeneratedSet) -> None:
    now = datetime.datetime.now(UTC)
    for pem in (generated.ca_cert, generated.server_cert, generated.client_cert):
        cert = load(pem)
        start, end = certs.not_before(cert), certs.not_after(cert)
        assert end - start <= datetime.timedelta(days=730)
        assert end - start >= datetime.timedelta(days=729)
        assert now - datetime.timedelta(minutes=10) < start <= now
        assert 728 < certs.days_left(cert) <= 730


def test_keys_are_p256_and_signatures_sha256(generated: certs.GeneratedSet) -> None:
    for pem in (generated.ca_cert, generated.server_cert, generated.client_cert):
        cert = load(pem)
        key = cert.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)
        assert key.curve.name == "secp256r1"
        assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
        assert cert.version == x509.Version.v3
    for pem in (generated.server_key, generated.client_key):
        assert pem.startswith("-----BEGIN PRIVATE KEY-----")
        key = serialization.load_pem_private_key(pem.encode(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)


def test_ca_extensions(generated: certs.GeneratedSet) -> None:
    ca = load(generated.ca_cert)
    assert ca.subject == ca.issuer
    constraints = ext(ca, x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = ext(ca, x509.KeyUsage)
    assert usage.critical
    assert usage.value.key_cert_sign and usage.value.crl_sign
    assert not usage.value.digital_signature and not usage.value.key_encipherment
    with pytest.raises(x509.ExtensionNotFound):
        ext(ca, x509.ExtendedKeyUsage)
    ski = ext(ca, x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(ca.public_key())
    assert ca.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value.endswith(
        ".xscontainer")
    ca.verify_directly_issued_by(ca)


@pytest.mark.parametrize("which, usage", [
    ("server_cert", ExtendedKeyUsageOID.SERVER_AUTH),
    ("client_cert", ExtendedKeyUsageOID.CLIENT_AUTH),
])
def test_leaf_extensions(generated: certs.GeneratedSet, which: str,
                         usage: x509.ObjectIdentifier) -> None:
    ca = load(generated.ca_cert)
    leaf = load(getattr(generated, which))
    leaf.verify_directly_issued_by(ca)
    constraints = ext(leaf, x509.BasicConstraints)
    assert constraints.critical and not constraints.value.ca
    key_usage = ext(leaf, x509.KeyUsage)
    assert key_usage.critical and key_usage.value.digital_signature
    assert not key_usage.value.key_cert_sign and not key_usage.value.crl_sign
    assert not key_usage.value.key_encipherment  # an EC key cannot encipher
    assert list(ext(leaf, x509.ExtendedKeyUsage).value) == [usage]
    assert ext(leaf, x509.SubjectKeyIdentifier).value == \
        x509.SubjectKeyIdentifier.from_public_key(leaf.public_key())
    aki = ext(leaf, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ext(ca, x509.SubjectKeyIdentifier).value.digest
    assert leaf.serial_number != ca.serial_number


def test_each_generation_makes_a_new_ca(generated: certs.GeneratedSet) -> None:
    again = certs.generate(["10.0.0.5"], VM)
    assert load(again.ca_cert).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != load(generated.ca_cert).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_no_ipv4_address_is_refused() -> None:
    with pytest.raises(errors.NoIP):
        certs.generate(["fe80::1", ""], VM)


def test_generated_client_set_validates_as_external(generated: certs.GeneratedSet) -> None:
    material = certs.validate_external(generated.client_cert.encode(),
                                       generated.client_key.encode(), generated.ca_cert.encode())
    assert material.client_cert == generated.client_cert
    assert material.ca_cert == generated.ca_cert
    assert "KEY" not in repr(material) and "BEGIN" not in repr(material)


# -- an administrator's own certificates ----------------------------------------------


def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_key(key: rsa.RSAPrivateKey, password: Optional[bytes] = None) -> bytes:
    encryption = (serialization.BestAvailableEncryption(password) if password
                  else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.TraditionalOpenSSL, encryption)


def _cert(subject: str, key: rsa.RSAPrivateKey, issuer: Optional[Tuple[str, rsa.RSAPrivateKey]],
          days: Tuple[int, int] = (-1, 30), ca: bool = False,
          usages: Optional[List[x509.ObjectIdentifier]] = None) -> bytes:
    now = datetime.datetime.now(UTC)
    issuer_name, issuer_key = issuer or (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + datetime.timedelta(days=days[0]))
        .not_valid_after(now + datetime.timedelta(days=days[1]))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if usages is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    return builder.sign(issuer_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def own() -> "dict[str, object]":
    ca_key, client_key, other_key = _rsa(), _rsa(), _rsa()
    return {
        "ca_key": ca_key,
        "ca": _cert("My CA", ca_key, None, days=(-10, 3650), ca=True),
        "key": client_key,
        "cert": _cert("client", client_key, ("My CA", ca_key),
                      usages=[ExtendedKeyUsageOID.CLIENT_AUTH]),
        "other_key": other_key,
        "other_ca": _cert("My CA", other_key, None, days=(-10, 3650), ca=True),
    }


def _validate(cert: bytes, key: bytes, ca: bytes) -> errors.InvalidArgument:
    with pytest.raises(errors.InvalidArgument) as exc:
        certs.validate_external(cert, key, ca, names=("client.pem", "key.pem", "ca.pem"))
    return exc.value


def test_own_certificates_are_accepted_and_normalised(own: dict) -> None:  # type: ignore[type-arg]
    key_pem = _pem_key(own["key"])
    material = certs.validate_external(own["cert"], key_pem, own["ca"])
    assert material.client_cert == own["cert"].decode()
    assert material.ca_cert == own["ca"].decode()
    assert material.client_key.startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8


def test_mismatched_key_is_refused(own: dict) -> None:  # type: ignore[type-arg]
    error = _validate(own["cert"], _pem_key(own["other_key"]), own["ca"])
    assert "key.pem does not belong to client.pem" in error.message


def test_expired_and_future_certificates_are_refused(own: dict) -> None:  # type: ignore[type-arg]
    expired = _cert("client", own["key"], ("My CA", own["ca_key"]), days=(-40, -1))
    assert "client.pem expired on" in _validate(expired, _pem_key(own["key"]), own["ca"]).message
    future = _cert("client", own["key"], ("My CA", own["ca_key"]), days=(2, 40))
    assert "client.pem is not valid yet" in _validate(
        future, _pem_key(own["key"]), own["ca"]).message
    old_ca = _cert("My CA", own["ca_key"], None, days=(-40, -2), ca=True)
    assert "ca.pem expired" in _validate(own["cert"], _pem_key(own["key"]), old_ca).message


def test_certificate_of_another_ca_is_refused(own: dict) -> None:  # type: ignore[type-arg]
    # same issuer name, other key: only the signature check tells them apart
    error = _validate(own["cert"], _pem_key(own["key"]), own["other_ca"])
    assert "client.pem was not issued by ca.pem" in error.message


def test_not_a_certificate_is_refused(own: dict) -> None:  # type: ignore[type-arg]
    key_pem = _pem_key(own["key"])
    assert "client.pem is not a PEM certificate" in _validate(b"hello", key_pem, own["ca"]).message
    assert "ca.pem is not a PEM certificate" in _validate(own["cert"], key_pem, key_pem).message
    broken = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    assert "not a valid certificate" in _validate(broken, key_pem, own["ca"]).message
    assert "key.pem is not a PEM private key" in _validate(
        own["cert"], own["cert"], own["ca"]).message


def test_encrypted_key_is_refused(own: dict) -> None:  # type: ignore[type-arg]
    error = _validate(own["cert"], _pem_key(own["key"], b"secret"), own["ca"])
    assert "key.pem is encrypted" in error.message


def test_server_only_certificate_is_refused(own: dict) -> None:  # type: ignore[type-arg]
    server = _cert("srv", own["key"], ("My CA", own["ca_key"]),
                   usages=[ExtendedKeyUsageOID.SERVER_AUTH])
    error = _validate(server, _pem_key(own["key"]), own["ca"])
    assert "clientAuth" in error.message


def test_weak_rsa_key_is_refused(own: dict) -> None:  # type: ignore[type-arg]
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    cert = _cert("client", weak, ("My CA", own["ca_key"]))
    assert "1024-bit RSA key" in _validate(cert, _pem_key(weak), own["ca"]).message
