"""Key material of the lab, made with `cryptography` and cached under
<lab_dir>/keys (never committed: .lab/ is ignored) so that repeated `lab up`s
are fast:

* the pool SSH key pair (RSA 4096, PEM private key, "ssh-rsa AAAA... xscontainer"
  public line), as a pool that already used xscontainer has it;
* one RSA sshd host key per guest name;
* a TLS CA, one server certificate per guest IP (SAN IP + localhost, serverAuth)
  and one client certificate (clientAuth).
"""

import datetime
import ipaddress
import os
from typing import Optional, Tuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CERT_DAYS = 90
RENEW_BEFORE = datetime.timedelta(days=2)


def _write(path: str, data: bytes, mode: int) -> None:
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _rsa(bits: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def write_ssh_keypair(path: str, bits: int, comment: str) -> None:
    """`path`: PEM (traditional OpenSSL) private key; `path`.pub: OpenSSH line."""
    key = _rsa(bits)
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    _write(path + ".pub", public + b" " + comment.encode() + b"\n", 0o644)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    _write(path, private, 0o600)


def pool_key(keys_dir: str) -> Tuple[str, str]:
    """(private, public) paths of the pool key, made on first use."""
    path = os.path.join(keys_dir, "pool_rsa")
    if not (os.path.exists(path) and os.path.exists(path + ".pub")):
        write_ssh_keypair(path, 4096, "xscontainer")
    return path, path + ".pub"


def host_key(keys_dir: str, name: str) -> str:
    """Path of the cached sshd host key of guest `name` (made on first use)."""
    path = os.path.join(keys_dir, "ssh_host", "%s_rsa" % name)
    if not (os.path.exists(path) and os.path.exists(path + ".pub")):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_ssh_keypair(path, 2048, "root@%s" % name)
    return path


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "xscontainer lab"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _fresh(cert_path: str) -> bool:
    try:
        with open(cert_path, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
    except (OSError, ValueError):
        return False
    now = datetime.datetime.now(datetime.timezone.utc)
    return cert.not_valid_after_utc - now > RENEW_BEFORE


def _load_ca(tls_dir: str) -> Tuple[x509.Certificate, rsa.RSAPrivateKey]:
    with open(os.path.join(tls_dir, "ca.pem"), "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    with open(os.path.join(tls_dir, "ca-key.pem"), "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return cert, key


def _issue(
    tls_dir: str,
    stem: str,
    cn: str,
    eku: x509.ObjectIdentifier,
    san: Optional[x509.SubjectAlternativeName] = None,
) -> None:
    """Write <stem>-cert.pem and <stem>-key.pem, signed by the lab CA."""
    ca_cert, ca_key = _load_ca(tls_dir)
    key = _rsa(2048)
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CERT_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
    )
    if san is not None:
        builder = builder.add_extension(san, critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    _write(
        os.path.join(tls_dir, stem + "-key.pem"),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ),
        0o600,
    )
    _write(
        os.path.join(tls_dir, stem + "-cert.pem"),
        cert.public_bytes(serialization.Encoding.PEM),
        0o644,
    )


def tls_ca(tls_dir: str) -> None:
    """Make the CA and the client certificate unless fresh ones exist; a new
    CA invalidates every certificate made by the old one."""
    os.makedirs(tls_dir, exist_ok=True)
    if _fresh(os.path.join(tls_dir, "ca.pem")):
        if not _fresh(os.path.join(tls_dir, "client-cert.pem")):
            _issue(tls_dir, "client", "xscontainer-client", ExtendedKeyUsageOID.CLIENT_AUTH)
        return
    for name in os.listdir(tls_dir):
        os.unlink(os.path.join(tls_dir, name))
    key = _rsa(2048)
    now = datetime.datetime.now(datetime.timezone.utc)
    subject = _name("xscontainer lab CA")
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CERT_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write(
        os.path.join(tls_dir, "ca-key.pem"),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ),
        0o600,
    )
    _write(os.path.join(tls_dir, "ca.pem"), cert.public_bytes(serialization.Encoding.PEM), 0o644)
    _issue(tls_dir, "client", "xscontainer-client", ExtendedKeyUsageOID.CLIENT_AUTH)


def server_cert(tls_dir: str, ip: str) -> Tuple[str, str]:
    """(cert, key) paths of the server certificate for `ip` (made when missing
    or expiring; call tls_ca first)."""
    stem = "server-%s" % ip
    cert = os.path.join(tls_dir, stem + "-cert.pem")
    if not _fresh(cert):
        san = x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address(ip)), x509.DNSName("localhost")]
        )
        _issue(tls_dir, stem, ip, ExtendedKeyUsageOID.SERVER_AUTH, san)
    return cert, os.path.join(tls_dir, stem + "-key.pem")
