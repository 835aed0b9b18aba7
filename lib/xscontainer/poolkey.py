"""The pool's SSH key pair: RSA 4096, generated once per pool, kept as XAPI secrets.

Pool other-config `xscontainer-private-secret-uuid` / `xscontainer-public-secret-uuid`
name the two secrets, as in the original xscontainer, so a pool that used it keeps
its key (already in guests' authorized_keys).

Creation is race-free across hosts and processes: whoever first adds the
private-key uuid to pool other-config (add_to_other_config fails with
MAP_DUPLICATE_KEY for everyone else) owns the pair; losers destroy their secrets
and use the winner's. The original could end with two keys and orphaned secrets.

cryptography is imported where a key is made or read (a plugin call loads it,
with paramiko, in a thread while it reads the secret: containers.py).
"""

import logging
import socket
import time
from typing import Optional, Tuple

from xscontainer import errors, xapi_keys
from xscontainer.xapi import Xapi

log = logging.getLogger(__name__)

KEY_BITS = 4096
# How long to wait for another process that claimed the key to publish its public half.
CLAIM_WAIT = 30.0


def generate() -> Tuple[str, str]:
    """A new RSA key pair: (PEM private key, `ssh-rsa AAAA... comment` line)."""
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415 (see the module's doc)
    from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: PLC0415

    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode("ascii")
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode("ascii")
    return private.strip(), "%s xscontainer@%s" % (public, socket.gethostname())


def public_line_from_private(private_pem: str) -> str:
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

    key = serialization.load_pem_private_key(private_pem.encode("ascii"), password=None)
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode("ascii")
    return "%s xscontainer@%s" % (public, socket.gethostname())


def private_key(xapi: Xapi) -> str:
    config = xapi.pool_other_config()
    private_uuid = config.get(xapi_keys.POOL_PRIVATE_KEY_SECRET)
    if private_uuid and config.get(xapi_keys.POOL_PUBLIC_KEY_SECRET):
        return xapi.secret_value(private_uuid).strip()  # the usual case: one secret read
    return get_or_create(xapi)[0]


def public_key_line(xapi: Xapi) -> str:
    return get_or_create(xapi)[1]


def get_or_create(xapi: Xapi) -> Tuple[str, str]:
    """(private PEM, public line) of the pool key, creating it if the pool has none."""
    deadline = time.monotonic() + CLAIM_WAIT
    while True:
        config = xapi.pool_other_config()
        private_uuid = config.get(xapi_keys.POOL_PRIVATE_KEY_SECRET)
        public_uuid = config.get(xapi_keys.POOL_PUBLIC_KEY_SECRET)
        if private_uuid and public_uuid:
            return xapi.secret_value(private_uuid).strip(), xapi.secret_value(public_uuid).strip()
        if private_uuid:
            if time.monotonic() < deadline:
                time.sleep(0.2)  # the claimer is about to publish the public half
                continue
            # the claimer died in between: complete the pair from the private key
            private = xapi.secret_value(private_uuid).strip()
            public = public_line_from_private(private)
            xapi.set_pool_other_config(xapi_keys.POOL_PUBLIC_KEY_SECRET, xapi.create_secret(public))
            return private, public
        pair = _create(xapi)
        if pair is not None:
            return pair


def _create(xapi: Xapi) -> Optional[Tuple[str, str]]:
    log.info("generating the pool's SSH key pair (RSA %d)", KEY_BITS)
    private, public = generate()
    private_uuid = xapi.create_secret(private)
    public_uuid = xapi.create_secret(public)
    try:
        added = xapi.add_key_if_absent(
            "pool", xapi.pool(), xapi_keys.POOL_PRIVATE_KEY_SECRET, private_uuid)
    except errors.XAPIError:
        xapi.destroy_secret(private_uuid)
        xapi.destroy_secret(public_uuid)
        raise
    if not added:
        xapi.destroy_secret(private_uuid)
        xapi.destroy_secret(public_uuid)
        log.info("another process created the pool key first; using theirs")
        return None
    xapi.set_pool_other_config(xapi_keys.POOL_PUBLIC_KEY_SECRET, public_uuid)
    return private, public
