"""TLS transport: mutual TLS to the Docker engine on TCP 2376 (Windows Server guests).

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

Handshake failures are told apart (`classify`): the server refused our
certificate, the server's certificate is untrusted, it is for other addresses,
or no protocol/cipher in common. A certificate that does not chain to the
stored CA gives TLSCertificateRejected.
"""

import os
import shutil
import socket
import ssl
import tempfile
import threading
import weakref
from typing import Any, List, Optional, Tuple

import urllib3.connection
import urllib3.connectionpool

from xscontainer import errors, paths
from xscontainer.transport.base import (
    DEFAULT_MAX_RESPONSE_BYTES,
    TLS_PORT,
    BoundedAdapter,
    Material,
    connect_first,
)

# OpenSSL cipher string for TLS 1.2 (TLS 1.3 suites are configured separately
# and are all AEAD with forward secrecy).
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!PSK:!SRP"
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


def _rerun_hint(vm_uuid: str) -> str:
    return ("rerun 'xscontainer-prepare-vm -v %s --mode tls --generate-certs' (or with "
            "--client-cert/--client-key/--ca-cert for certificates of your own)" % vm_uuid)


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
            % (vm_uuid, exc, _rerun_hint(vm_uuid)), vm_uuid) from exc
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
                   _rerun_hint(vm_uuid)), vm_uuid) from exc
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# -- telling handshake failures apart -------------------------------------------------


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
            "into the server certificate: %s." % (where, address, address, _rerun_hint(vm_uuid)),
            vm_uuid, address)
    if "CERTIFICATE_VERIFY_FAILED" in text or verify_code is not None:
        detail = getattr(root, "verify_message", None) or "verification failed"
        return errors.TLSCertificateRejected(
            "Docker in %s at %s presented a certificate that does not chain to the CA stored "
            "for the VM (%s). Either the VM's Docker engine uses other certificates now (an "
            "admin installed new ones, or this is not the VM it should be), or they expired. "
            "If the change is expected, %s." % (where, address, detail, _rerun_hint(vm_uuid)),
            vm_uuid, address)
    if any(alert in text for alert in _CLIENT_CERT_ALERTS):
        return errors.TLSError(
            "Docker in %s at %s refused xscontainer's client certificate (%s): the engine "
            "trusts another CA than the one stored for the VM, or the certificate expired. "
            "Install the matching CA in the VM's Docker configuration, or %s."
            % (where, address, _short(root), _rerun_hint(vm_uuid)), vm_uuid, address)
    if any(failure in text for failure in _PROTOCOL_FAILURES):
        return errors.TLSError(
            "No TLS protocol version or cipher in common with Docker in %s at %s (%s). "
            "xscontainer needs TLS 1.2 with ECDHE and AES-GCM or ChaCha20, or TLS 1.3; update "
            "Docker in the VM, and check that port %d serves Docker's TLS endpoint."
            % (where, address, _short(root), TLS_PORT), vm_uuid, address)
    return None


def _short(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    if reason:
        return str(reason)
    text = str(exc) or exc.__class__.__name__
    return text if len(text) < 300 else text[:300] + "..."


def handshake(sock: socket.socket, address: str, context: ssl.SSLContext, timeout: float,
              vm_uuid: str, where: str) -> ssl.SSLSocket:
    """Wrap a connected socket and run the handshake; classified errors."""
    sock.settimeout(timeout)
    try:
        tls_sock = context.wrap_socket(sock, server_hostname=address,
                                       do_handshake_on_connect=False)
    except BaseException:
        sock.close()
        raise
    try:
        tls_sock.do_handshake()
    except socket.timeout as exc:
        tls_sock.close()
        raise errors.Timeout("The TLS handshake with Docker in %s at %s did not finish within "
                             "%gs." % (where, address, timeout)) from exc
    except (ssl.SSLError, ssl.CertificateError, OSError) as exc:
        tls_sock.close()
        classified = classify(exc, address, vm_uuid, where)
        if classified is not None:
            raise classified from exc
        raise errors.TLSError(
            "The TLS handshake with Docker in %s at %s failed: %s. Check that Docker runs "
            "and serves TLS on port %d, and its TLS configuration in the VM (daemon.json "
            "tlsverify, tlscacert, tlscert, tlskey)." % (where, address, _short(exc), TLS_PORT),
            vm_uuid, address) from exc
    return tls_sock


def connect(addresses: List[str], context: ssl.SSLContext, timeout: float, handshake_timeout: float,
            vm_uuid: str, where: str) -> Tuple[ssl.SSLSocket, str]:
    """A TLS connection to port 2376 of the first address that answers."""
    sock, address = connect_first(addresses, TLS_PORT, timeout)
    return handshake(sock, address, context, handshake_timeout, vm_uuid, where), address


def peer_certificate_der(tls_sock: ssl.SSLSocket) -> bytes:
    return tls_sock.getpeercert(binary_form=True) or b""


def ping(tls_sock: ssl.SSLSocket, address: str, timeout: float, vm_uuid: str,
         where: str) -> str:
    """GET /_ping on a fresh TLS connection; its HTTP status line.

    With TLS 1.3 the server judges our certificate after the handshake, so only
    a first exchange of data tells whether it accepted it. Closes the socket.
    """
    try:
        tls_sock.settimeout(timeout)
        tls_sock.sendall(b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
        data = b""
        while b"\r\n" not in data and len(data) < 4096:
            chunk = tls_sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except socket.timeout as exc:
        raise errors.Timeout("Docker in %s at %s did not answer within %gs over TLS."
                             % (where, address, timeout)) from exc
    except (ssl.SSLError, ssl.CertificateError, OSError) as exc:
        classified = classify(exc, address, vm_uuid, where)
        if classified is not None:
            raise classified from exc
        raise errors.TLSError(
            "Docker in %s at %s closed the TLS connection before answering (%s): it may have "
            "refused xscontainer's client certificate. Check that Docker in the VM trusts the "
            "CA stored for it (daemon.json tlscacert), or %s."
            % (where, address, _short(exc), _rerun_hint(vm_uuid)), vm_uuid, address) from exc
    finally:
        tls_sock.close()
    status = data.split(b"\r\n", 1)[0].decode("latin-1").strip()
    if not status.startswith("HTTP/"):
        raise errors.TLSError("The TLS service at %s port %d in %s did not answer like Docker "
                              "(%r)." % (address, TLS_PORT, where, status[:80]), vm_uuid, address)
    return status


# -- the Docker SDK over TLS connections ----------------------------------------------


class _TLSConnection(urllib3.connection.HTTPConnection):
    """An HTTP connection whose socket is a TLS connection made with our context."""

    def __init__(self, pool: "_TLSPool", first: Optional[ssl.SSLSocket]) -> None:
        urllib3.connection.HTTPConnection.__init__(self, pool.address, pool.tls_port,
                                                   timeout=pool.io_timeout)
        self._pool = pool
        self._first = first

    def connect(self) -> None:
        if self._first is not None:
            self.sock, self._first = self._first, None
            self.sock.settimeout(self._pool.io_timeout)
            self._pool.track(self.sock)
            return
        pool = self._pool
        try:
            raw = socket.create_connection((pool.address, pool.tls_port),
                                           timeout=pool.connect_timeout)
        except OSError as exc:
            raise errors.GuestUnreachable(
                "Cannot connect to Docker's TLS port %d in %s at %s: %s. Check that Docker "
                "runs and that the VM's firewall allows the port."
                % (pool.tls_port, pool.where, pool.address, exc.strerror or exc),
                pool.vm_uuid) from exc
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        tls_sock = handshake(raw, pool.address, pool.context, pool.handshake_timeout,
                             pool.vm_uuid, pool.where)
        tls_sock.settimeout(pool.io_timeout)
        pool.track(tls_sock)
        self.sock = tls_sock


class _TLSPool(urllib3.connectionpool.HTTPConnectionPool):
    """HTTPS to address:2376: connections carry TLS from our own context, made by
    _TLSConnection (so urllib3 1.26 and 2.x, and every requests release, behave
    alike, and no environment CA bundle is ever consulted)."""

    def __init__(self, address: str, context: ssl.SSLContext, vm_uuid: str, where: str,
                 timeout: float, connect_timeout: float, handshake_timeout: float,
                 maxsize: int, first: Optional[ssl.SSLSocket], port: int = TLS_PORT) -> None:
        urllib3.connectionpool.HTTPConnectionPool.__init__(
            self, address, port, timeout=timeout, maxsize=maxsize)
        self.address = address
        self.context = context
        self.vm_uuid = vm_uuid
        self.where = where
        self.tls_port = port
        self.io_timeout = timeout  # the pool's own `timeout` is a urllib3 Timeout object
        self.connect_timeout = connect_timeout
        self.handshake_timeout = handshake_timeout
        self._first = first
        # every socket handed out, idle or in use (e.g. carrying an event stream)
        self._sockets: "weakref.WeakSet[ssl.SSLSocket]" = weakref.WeakSet()
        self._sockets_lock = threading.Lock()

    def track(self, sock: ssl.SSLSocket) -> None:
        with self._sockets_lock:
            self._sockets.add(sock)

    def _new_conn(self) -> _TLSConnection:
        first, self._first = self._first, None
        return _TLSConnection(self, first)

    def close(self) -> None:
        """Close idle connections and shut down the busy ones too, so that a
        thread blocked reading (an event stream) returns at once."""
        first, self._first = self._first, None
        if first is not None:
            first.close()
        urllib3.connectionpool.HTTPConnectionPool.close(self)
        with self._sockets_lock:
            busy = list(self._sockets)
        for sock in busy:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed


class TLSAdapter(BoundedAdapter):
    """requests adapter: every HTTP connection is a mutual-TLS connection to address:2376."""

    def __init__(self, address: str, context: ssl.SSLContext, vm_uuid: str, where: str,
                 timeout: float, connect_timeout: float = 5.0, handshake_timeout: float = 10.0,
                 first: Optional[ssl.SSLSocket] = None,
                 max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES, pool_size: int = 4,
                 port: int = TLS_PORT) -> None:
        BoundedAdapter.__init__(self, max_response_bytes)
        self.address = address
        self.vm_uuid = vm_uuid
        self.where = where
        self._pool = _TLSPool(address, context, vm_uuid, where, timeout, connect_timeout,
                              handshake_timeout, pool_size, first, port)

    def get_connection(self, url: Any, proxies: Any = None) -> Any:
        return self._pool

    def send(self, request: Any, stream: bool = False, **kwargs: Any) -> Any:  # type: ignore[override]
        try:
            return BoundedAdapter.send(self, request, stream=stream, **kwargs)
        except errors.XSContainerError:
            raise
        except Exception as exc:
            # With TLS 1.3 a server refuses our certificate after the handshake, on
            # the first read: such failures get the same diagnosis as handshake ones.
            classified = classify(exc, self.address, self.vm_uuid, self.where)
            if classified is not None:
                raise classified from exc
            raise

    def close(self) -> None:
        BoundedAdapter.close(self)
        self._pool.close()
