"""Generated certificates through the TLS transport (tls.handshake, TLSAdapter)
against local TLS servers: what is accepted, how each kind of refusal is told
apart (tlsfailures.classify, in the handshake and in diagnose_tls.ping), and
the adapter's pool."""

import json
import socket
import ssl
import threading
from pathlib import Path
from typing import Iterator, List, Optional

import pytest

from xscontainer import certs, diagnose_tls, errors
from xscontainer.docker_api import DockerClient
from xscontainer.transport import Material, tls
from xscontainer.transport.tlscontext import make_context

VM = "5d1c9c39-0000-4000-8000-00000000abcd"
LOCAL = "127.0.0.1"


class Server:
    """A one-thread TLS server on 127.0.0.1 answering every request like Docker's /version."""

    def __init__(self, tmp: Path, cert: str, key: str, client_ca: Optional[str] = None,
                 tls12_ciphers: Optional[str] = None, tls12_only: bool = False) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        (tmp / "srv-cert.pem").write_text(cert)
        (tmp / "srv-key.pem").write_text(key)
        context.load_cert_chain(str(tmp / "srv-cert.pem"), str(tmp / "srv-key.pem"))
        if client_ca is not None:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(cadata=client_ca)
        if tls12_ciphers is not None or tls12_only:
            versions = getattr(ssl, "TLSVersion", None)
            if versions is not None:
                context.maximum_version = versions.TLSv1_2
            else:
                context.options |= ssl.OP_NO_TLSv1_3
        if tls12_ciphers is not None:
            context.set_ciphers(tls12_ciphers)
        self.context = context
        self.listener = socket.socket()
        self.listener.bind((LOCAL, 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.errors: List[str] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            try:
                conn.settimeout(5)
                with self.context.wrap_socket(conn, server_side=True) as s:
                    data = b""
                    while b"\r\n\r\n" not in data:
                        chunk = s.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    body = json.dumps({"ApiVersion": "1.41", "MinAPIVersion": "1.12",
                                       "Version": "20.10-test"}).encode()
                    s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                              b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                              % (len(body), body))
            except (OSError, ssl.SSLError) as exc:
                self.errors.append(str(exc))
            finally:
                conn.close()

    def close(self) -> None:
        # close() alone leaves the thread blocked in accept(), and that accept can
        # later take connections meant for a socket that reuses the descriptor
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept
        except OSError:
            pass
        self.listener.close()
        self.thread.join(10)  # a connection being served times out within 5 s
        assert not self.thread.is_alive()

    def tls_socket(self, context: ssl.SSLContext, address: str = LOCAL) -> ssl.SSLSocket:
        sock = socket.create_connection((LOCAL, self.port), timeout=5)
        return tls.handshake(sock, address, context, 5.0, VM, "VM test")


@pytest.fixture(autouse=True)
def run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "run"
    monkeypatch.setenv("XSCONTAINER_RUN_DIR", str(path))
    return path


@pytest.fixture(scope="module")
def good() -> certs.GeneratedSet:
    return certs.generate([LOCAL], VM)


@pytest.fixture(scope="module")
def other() -> certs.GeneratedSet:
    return certs.generate([LOCAL], VM)


@pytest.fixture
def server(tmp_path: Path, good: certs.GeneratedSet) -> Iterator[Server]:
    srv = Server(tmp_path, good.server_cert, good.server_key, client_ca=good.ca_cert)
    yield srv
    srv.close()


def test_generated_set_works(server: Server, good: certs.GeneratedSet) -> None:
    tls_sock = server.tls_socket(make_context(good.client_material(), VM))
    assert tls_sock.version() in ("TLSv1.2", "TLSv1.3")
    assert diagnose_tls.ping(tls_sock, LOCAL, 5.0, VM, "VM test") == "HTTP/1.1 200 OK"


def test_docker_client_over_the_adapter_ignores_ca_bundle_variables(
        server: Server, good: certs.GeneratedSet, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/ca.pem")
    monkeypatch.setenv("CURL_CA_BUNDLE", "/nonexistent/ca.pem")
    context = make_context(good.client_material(), VM)
    adapter = tls.TLSAdapter(LOCAL, context, VM, "VM test", 5.0, port=server.port)
    client = DockerClient(adapter, "VM test", 5.0)
    try:
        client.negotiate()  # a fresh connection through the pool
        assert client.api_version == "1.41"
        assert client.version()["Version"] == "20.10-test"
    finally:
        client.close()


def test_server_of_another_ca_is_rejected(server: Server, good: certs.GeneratedSet,
                                          other: certs.GeneratedSet) -> None:
    material = Material(good.client_cert, good.client_key, other.ca_cert)
    with pytest.raises(errors.TLSCertificateRejected) as exc:
        server.tls_socket(make_context(material, VM))
    assert exc.value.code == "XSCONTAINER_TLS_CERT_REJECTED"
    assert "does not chain to the CA stored for the VM" in exc.value.message
    assert "xscontainer-prepare-vm -v %s --mode tls" % VM in exc.value.message


def test_server_certificate_for_another_address_is_rejected(
        tmp_path: Path, good: certs.GeneratedSet) -> None:
    elsewhere = certs.generate(["10.9.9.9"], VM)
    srv = Server(tmp_path, elsewhere.server_cert, elsewhere.server_key)
    try:
        with pytest.raises(errors.TLSCertificateRejected) as exc:
            srv.tls_socket(make_context(elsewhere.client_material(), VM))
        assert "not valid for the address %s" % LOCAL in exc.value.message
    finally:
        srv.close()


@pytest.mark.parametrize("tls12_only", [True, False])
def test_client_certificate_refused_by_the_server(tmp_path: Path, good: certs.GeneratedSet,
                                                  other: certs.GeneratedSet,
                                                  tls12_only: bool) -> None:
    srv = Server(tmp_path, good.server_cert, good.server_key, client_ca=good.ca_cert,
                 tls12_only=tls12_only)
    material = Material(other.client_cert, other.client_key, good.ca_cert)
    context = make_context(material, VM)
    try:
        with pytest.raises(errors.TLSError) as exc:
            # TLS 1.2 refuses in the handshake, TLS 1.3 at the first read (or, with a
            # server that closes at once, with a reset instead of the alert)
            diagnose_tls.ping(srv.tls_socket(context), LOCAL, 5.0, VM, "VM test")
    finally:
        srv.close()
    assert type(exc.value) is errors.TLSError
    assert "refused xscontainer's client certificate" in exc.value.message


def test_cbc_only_server_has_no_cipher_in_common(tmp_path: Path,
                                                 good: certs.GeneratedSet) -> None:
    srv = Server(tmp_path, good.server_cert, good.server_key,
                 tls12_ciphers="ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA")
    try:
        with pytest.raises(errors.TLSError) as exc:
            srv.tls_socket(make_context(good.client_material(), VM))
        assert "No TLS protocol version or cipher in common" in exc.value.message
    finally:
        srv.close()


class StreamingServer(Server):
    """Answers /version like Docker, and /events with one event and then silence
    (a live stream that is never closed by the server)."""

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        try:
            with self.context.wrap_socket(conn, server_side=True) as s:
                while True:
                    data = b""
                    while b"\r\n\r\n" not in data:
                        chunk = s.recv(4096)
                        if not chunk:
                            return
                        data += chunk
                    if b" /v1.41/events" in data.split(b"\r\n", 1)[0]:
                        event = b'{"Type":"container","Action":"start","Actor":{"ID":"x"}}\n'
                        s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                  b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n"
                                  % (len(event), event))
                        s.recv(1)  # hold the stream open until the client goes away
                        return
                    body = json.dumps({"ApiVersion": "1.41", "Version": "20.10-test"}).encode()
                    s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                              b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        except (OSError, ssl.SSLError):
            pass


def test_closing_the_client_ends_a_blocked_event_stream(tmp_path: Path,
                                                        good: certs.GeneratedSet) -> None:
    srv = StreamingServer(tmp_path, good.server_cert, good.server_key, client_ca=good.ca_cert)
    context = make_context(good.client_material(), VM)
    client = DockerClient(tls.TLSAdapter(LOCAL, context, VM, "VM test", 30.0, port=srv.port),
                          "VM test", 30.0).negotiate()
    seen: List[dict] = []
    first = threading.Event()

    def read() -> None:
        for event in client.events():
            seen.append(event)
            first.set()

    reader = threading.Thread(target=read, daemon=True)
    try:
        reader.start()
        assert first.wait(10)
        client.close()  # the monitor's stop: the reader must not wait for a next event
        reader.join(5)
        assert not reader.is_alive()
        assert seen == [{"Type": "container", "Action": "start", "Actor": {"ID": "x"}}]
    finally:
        client.close()
        srv.close()
