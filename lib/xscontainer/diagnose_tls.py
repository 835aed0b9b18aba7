"""The TLS chain of `diagnose` (xscontainer-mode=tls): secrets, port, handshake, API.

Each failure names its cause: certificates missing from the pool, port 2376
closed, the server refusing our client certificate, the server's certificate
untrusted or issued for other addresses, no protocol or cipher in common. A
certificate (client or server) that expires within 30 days passes with a
warning. Nothing is changed.

`ping` is also how xscontainer-prepare-vm sees that Docker in the VM accepts
the new client certificate.
"""

import datetime
import socket
import ssl
from typing import List, Optional, Tuple

from cryptography import x509

from xscontainer import certs, docker_api, errors, transport
from xscontainer.diagnose_report import Chain
from xscontainer.guest import Guest
from xscontainer.transport import TLS_PORT, Timeouts, tlscontext, tlsfailures
from xscontainer.transport import tls as tls_transport

EXPIRY_WARNING_DAYS = 30

STORED = "the VM's TLS certificates are stored and load"
ADDRESS = "the guest tools report an IPv4 address"
PORT_OPEN = "Docker's TLS port %d answers" % TLS_PORT
HANDSHAKE = "the TLS handshake succeeds (server certificate of the VM's CA, for its address)"
CLIENT_ACCEPTED = "Docker accepts xscontainer's client certificate"
SERVER_DATES = "the server certificate is within its validity period"
API = "the Docker API version is supported"
PLAN: List[str] = [STORED, ADDRESS, PORT_OPEN, HANDSHAKE, CLIENT_ACCEPTED, SERVER_DATES, API]


def _dates(cert: x509.Certificate, what: str, vm_uuid: str) -> Tuple[bool, str]:
    """(needs attention, text) about a certificate's validity; raises once expired."""
    left = certs.days_left(cert)
    until = certs.not_after(cert).strftime("%Y-%m-%d")
    renew = "rerun xscontainer-prepare-vm -v %s --mode tls to renew it" % vm_uuid
    if left < 0:
        raise errors.TLSError("%s expired on %s; %s." % (what, until, renew), vm_uuid)
    if certs.not_before(cert) > datetime.datetime.now(certs.UTC):
        raise errors.TLSError("%s is not valid before %s: check the clocks of dom0 and the VM."
                              % (what, certs.not_before(cert).strftime("%Y-%m-%d %H:%M")),
                              vm_uuid)
    if left < EXPIRY_WARNING_DAYS:
        return True, "%s expires in %d day(s), on %s: %s" % (what, int(left), until, renew)
    return False, "%s valid until %s" % (what, until)



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
        classified = tlsfailures.classify(exc, address, vm_uuid, where)
        if classified is not None:
            raise classified from exc
        raise errors.TLSError(
            "Docker in %s at %s closed the TLS connection before answering (%s): it may have "
            "refused xscontainer's client certificate. Check that Docker in the VM trusts the "
            "CA stored for it (daemon.json tlscacert), or %s."
            % (where, address, tlsfailures.short(exc), tlsfailures.rerun_hint(vm_uuid)),
            vm_uuid, address) from exc
    finally:
        tls_sock.close()
    status = data.split(b"\r\n", 1)[0].decode("latin-1").strip()
    if not status.startswith("HTTP/"):
        raise errors.TLSError("The TLS service at %s port %d in %s did not answer like Docker "
                              "(%r)." % (address, TLS_PORT, where, status[:80]), vm_uuid, address)
    return status


def checks(chain: Chain, guest: Guest, timeouts: Timeouts) -> None:
    """Run the TLS steps (PLAN) through a diagnose chain."""
    loaded = chain.check(STORED, lambda: _load(guest), lambda loaded: loaded[2],
                         warning=lambda loaded: loaded[1])
    addresses = chain.check(ADDRESS, guest.addresses, ", ".join)
    connected = chain.check(
        PORT_OPEN,
        lambda: transport.connect_first(addresses or [], TLS_PORT, timeouts.connect),
        lambda c: "at %s" % c[1],
    )
    if loaded is None or connected is None:
        return
    context = loaded[0]
    sock, address = connected
    tls_sock = chain.check(
        HANDSHAKE,
        lambda: tls_transport.handshake(sock, address, context, timeouts.handshake, guest.uuid,
                                        guest.where),
        lambda s: "%s, %s" % (s.version() or "?", (s.cipher() or ("?",))[0]),
    )
    if tls_sock is None:
        return
    server_der = tls_sock.getpeercert(binary_form=True) or b""
    chain.check(CLIENT_ACCEPTED,
                lambda: ping(tls_sock, address, timeouts.request, guest.uuid, guest.where),
                lambda status: "GET /_ping: %s" % status)
    server_cert: Optional[x509.Certificate] = None
    if server_der:
        server_cert = x509.load_der_x509_certificate(server_der)
    if chain.broken:
        chain.check(SERVER_DATES, lambda: None)
    elif server_cert is None:
        chain.fail(SERVER_DATES, "the server sent no certificate")
    else:
        chain.check(SERVER_DATES,
                    lambda: _dates(server_cert, "the server certificate", guest.uuid),
                    lambda d: d[1], warning=lambda d: d[0])
    chain.check(API, lambda: _api(guest, address, context, timeouts), _describe_api)


def _load(guest: Guest) -> Tuple[ssl.SSLContext, bool, str]:
    """(SSL context, client certificate needs attention, its dates)."""
    material = guest.tls_material()
    context = tlscontext.make_context(material, guest.uuid)
    try:
        client_cert = certs.load_certificate(material.client_cert)
    except ValueError as exc:
        raise errors.TLSConfigMissing("The client certificate stored for %s is unreadable (%s); "
                                      "rerun xscontainer-prepare-vm -v %s --mode tls."
                                      % (guest.where, exc, guest.uuid), guest.uuid) from exc
    warn, text = _dates(client_cert, "the client certificate", guest.uuid)
    return context, warn, text


def _api(guest: Guest, address: str, context: ssl.SSLContext,
         timeouts: Timeouts) -> docker_api.DockerClient:
    adapter = tls_transport.TLSAdapter(address, context, guest.uuid, guest.where,
                                       timeouts.request, connect_timeout=timeouts.connect,
                                       handshake_timeout=timeouts.handshake)
    client = docker_api.DockerClient(adapter, guest.where, timeouts.request)
    try:
        return client.negotiate()
    finally:
        client.close()


def _describe_api(client: docker_api.DockerClient) -> str:
    return "%s %s, API %s (xscontainer speaks %s to %s)" % (
        client.engine, client.version_info.get("Version", "?"), client.api_version,
        docker_api.MIN_API, docker_api.MAX_API)
