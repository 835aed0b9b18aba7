"""The "Container TLS" ISO: what the Windows VM's administrator installs.

  configure_tls.cmd        the installer (run as administrator from the CD)
  daemon.json              Docker's configuration: TLS on 2376 plus the named pipe
  server/ca.pem            the CA that signed the server and client certificates
  server/server-cert.pem   Docker's server certificate (IP SANs of the VM)
  server/server-key.pem    its private key
  README.txt               the same steps in words

The client certificate and key stay in dom0 (XAPI secrets): the VM's users go on
using Docker through its named pipe. The CA's key is on no ISO (it no longer
exists). Built with the shared ISO builder (xscontainer.iso) in a private
directory under the run dir, which is removed at once.
"""

import os
import shutil
import tempfile
from typing import Dict

from xscontainer import errors, iso, paths
from xscontainer.certs import GeneratedSet

VOLUME_ID = "Container TLS"
DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")
MAX_ISO_BYTES = 16 << 20
README = """Container TLS: certificates for Docker in this VM, from the control domain
(xscontainer-prepare-vm). Run configure_tls.cmd from this CD as administrator. It
installs the CA certificate and Docker's server certificate and key into
C:\\ProgramData\\docker\\certs.d (Administrators and SYSTEM only), daemon.json into
C:\\ProgramData\\docker\\config (keeping an existing one as
daemon.json.before-xscontainer), restarts the Docker service and shows the
firewall rule the control domain needs (TCP port 2376). The control domain ejects
and deletes this CD when the preparation ends.
"""


def _data(name: str) -> str:
    with open(os.path.join(DATA_DIR, name), encoding="utf-8") as f:
        return f.read()


def _crlf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\n", "\r\n")


def contents(generated: GeneratedSet) -> Dict[str, str]:
    """Path on the ISO -> text."""
    return {
        "README.txt": _crlf(README),
        "configure_tls.cmd": _crlf(_data("configure_tls.cmd")),
        "daemon.json": _data("daemon.json"),
        "server/ca.pem": generated.ca_cert,
        "server/server-cert.pem": generated.server_cert,
        "server/server-key.pem": generated.server_key,
    }


def build(generated: GeneratedSet) -> bytes:
    """The ISO image. Its files exist on dom0's disk only while it is built (0700/0600)."""
    base = paths.run_dir()
    os.makedirs(base, mode=0o700, exist_ok=True)
    work = tempfile.mkdtemp(prefix="tls-iso-", dir=base)
    try:
        source = os.path.join(work, "image")
        for path, text in contents(generated).items():
            target = os.path.join(source, *path.split("/"))
            os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
                f.write(text)
        output = os.path.join(work, "tls.iso")
        try:
            iso.build(source, output, VOLUME_ID)
        except iso.IsoError as exc:
            raise errors.XSContainerError("Building the TLS ISO failed: %s" % exc) from exc
        size = os.path.getsize(output)
        if size > MAX_ISO_BYTES:
            raise errors.XSContainerError("The TLS ISO came out at %d bytes, more than the %d "
                                          "expected." % (size, MAX_ISO_BYTES))
        with open(output, "rb") as f:
            return f.read()
    finally:
        shutil.rmtree(work, ignore_errors=True)
