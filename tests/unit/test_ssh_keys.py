"""Pool key generation and host-key blob parsing."""

import base64
import struct

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from xscontainer import errors, poolkey
from xscontainer.transport import ssh


def _blob(key_type: bytes) -> str:
    return base64.b64encode(struct.pack(">I", len(key_type)) + key_type + b"\0\0\0\1x").decode()


def test_key_type_is_read_from_the_blob():
    assert ssh.key_type_of(_blob(b"ssh-rsa")) == "ssh-rsa"
    assert ssh.key_type_of(_blob(b"ssh-ed25519")) == "ssh-ed25519"
    assert ssh.key_type_of("!!not base64") == ""
    assert ssh.key_type_of("") == ""


def test_generated_pool_key_is_rsa_4096_pem_and_loads_in_paramiko():
    private, public = poolkey.generate()
    assert private.startswith("-----BEGIN RSA PRIVATE KEY-----")
    key = ssh.load_private_key(private)
    assert isinstance(key, paramiko.RSAKey)
    assert key.get_bits() == 4096
    kind, body, comment = public.split(" ", 2)
    assert kind == "ssh-rsa" and body == key.get_base64() and comment.startswith("xscontainer@")
    assert poolkey.public_line_from_private(private).split()[:2] == [kind, body]


def test_openssh_format_ed25519_key_loads():
    text = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption()).decode()
    assert isinstance(ssh.load_private_key(text), paramiko.Ed25519Key)


def test_garbage_private_key_says_how_to_recover():
    with pytest.raises(errors.SSHError) as exc:
        ssh.load_private_key("not a key")
    assert "xscontainer-private-secret-uuid" in exc.value.message
