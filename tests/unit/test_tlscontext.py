"""The SSL context of TLS mode (transport/tlscontext.py): its protocol and
cipher policy, and the client pair loaded through files that never outlive the
call."""

import os
import ssl
from pathlib import Path

import pytest

from xscontainer import certs, errors
from xscontainer.transport import Material
from xscontainer.transport.tlscontext import make_context

VM = "5d1c9c39-0000-4000-8000-00000000abcd"


@pytest.fixture(autouse=True)
def run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "run"
    monkeypatch.setenv("XSCONTAINER_RUN_DIR", str(path))
    return path


@pytest.fixture(scope="module")
def good() -> certs.GeneratedSet:
    return certs.generate(["127.0.0.1"], VM)


def test_context_settings(good: certs.GeneratedSet) -> None:
    context = make_context(good.client_material(), VM)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    names = {c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"}
    assert names
    assert all(n.startswith("ECDHE-") and ("GCM" in n or "CHACHA20" in n) for n in names), names
    assert "AES128-SHA" not in names
    versions = getattr(ssl, "TLSVersion", None)
    if versions is not None:
        assert context.minimum_version == versions.TLSv1_2
    else:
        assert context.options & ssl.OP_NO_TLSv1 and context.options & ssl.OP_NO_TLSv1_1


def test_the_client_pair_leaves_no_file(good: certs.GeneratedSet, run_dir: Path) -> None:
    make_context(good.client_material(), VM)
    assert os.listdir(str(run_dir)) == []  # the client pair was loaded and deleted
    assert os.stat(str(run_dir)).st_mode & 0o077 == 0


def test_unloadable_material_says_what_to_do(good: certs.GeneratedSet, run_dir: Path) -> None:
    with pytest.raises(errors.TLSConfigMissing) as exc:
        make_context(Material(good.client_cert, good.server_key, good.ca_cert), VM)
    assert "--mode tls" in exc.value.message
    assert "PRIVATE" not in exc.value.message
    assert os.listdir(str(run_dir)) == []  # deleted on error too


def test_an_unreadable_ca_says_what_to_do(good: certs.GeneratedSet, run_dir: Path) -> None:
    with pytest.raises(errors.TLSConfigMissing) as exc:
        make_context(Material(good.client_cert, good.client_key, "not a certificate"), VM)
    assert "The CA certificate stored for VM %s" % VM in exc.value.message
    assert "xscontainer-prepare-vm -v %s --mode tls" % VM in exc.value.message
