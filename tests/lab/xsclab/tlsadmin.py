"""Play the administrator of a Windows guest who runs configure_tls.cmd from the
"Container TLS" CD that `xscontainer-prepare-vm --mode tls --generate-certs` inserts.

The lab's guests run Linux dockerd with its TLS files in <lab>/vms/<vm>/tls/, so
"running the script" here means: find the VDI in the VM's CD drive through XAPI,
export it from the simulator (GET /export_raw_vdi), read the server certificate,
key and CA from the ISO (xscontainer.iso), install them as the guest dockerd's TLS
files and restart dockerd. `saved_tls` puts the lab's own files back afterwards
(the session lab is shared by all tests).

    PYTHONPATH=tests/lab:lib .venv/bin/python -m xsclab.tlsadmin apply xsc-vm1
    # waits for the CD in the drive
"""

import contextlib
import http.client
import io
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.parse
from typing import Any, Dict, Iterator, Optional

from xscontainer import iso

from . import labctl, labkeys

NULL_REF = "OpaqueRef:NULL"
TEMP_VDI_NAME = "Temp Container Management Image"
# ISO path -> the guest dockerd's TLS file (vms/<vm>/tls/<name>.pem)
INSTALL = {"server/ca.pem": "ca", "server/server-cert.pem": "server-cert",
           "server/server-key.pem": "server-key"}
TLS_FILES = ("ca", "server-cert", "server-key", "client-cert", "client-key")
MAX_IMAGE = 64 << 20


def _tls_dir(lab: labctl.Lab, vm: str) -> str:
    return os.path.dirname(lab.vm(vm).tls["ca"])


def cd_vdi(lab: labctl.Lab, vm: str) -> Optional[str]:
    """The VDI in the VM's CD drive, or None if the drive is empty."""
    with lab.xapi_session() as s:
        ref = s.xenapi.VM.get_by_uuid(lab.vm(vm).uuid)
        for vbd in s.xenapi.VM.get_VBDs(ref):
            record = s.xenapi.VBD.get_record(vbd)
            if record["type"] == "CD" and not record["empty"] and record["VDI"] != NULL_REF:
                return str(record["VDI"])
    return None


def wait_for_cd(lab: labctl.Lab, vm: str, timeout: float = 60.0) -> str:
    """The TLS CD ("Temp Container Management Image") once it is in the VM's drive."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        vdi = cd_vdi(lab, vm)
        if vdi is not None:
            with lab.xapi_session() as s:
                if s.xenapi.VDI.get_name_label(vdi) == TEMP_VDI_NAME:
                    return vdi
        time.sleep(0.2)
    raise labctl.LabError("no TLS CD was inserted into %s within %g s" % (vm, timeout))


def export(lab: labctl.Lab, vdi: str) -> bytes:
    """The VDI's content, as a client downloads it (session over TCP)."""
    url = urllib.parse.urlsplit(lab.data["xapi"]["url"])
    with lab.xapi_session() as s:
        query = urllib.parse.urlencode({"session_id": s._session, "vdi": vdi, "format": "raw"})
        conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=30)
        try:
            conn.request("GET", "/export_raw_vdi?" + query)
            response = conn.getresponse()
            if response.status != 200:
                raise labctl.LabError("export_raw_vdi: HTTP %d" % response.status)
            data = response.read(MAX_IMAGE + 1)
        finally:
            conn.close()
    if len(data) > MAX_IMAGE:
        raise labctl.LabError("the CD image is larger than %d bytes" % MAX_IMAGE)
    return data


def read_cd(image: bytes) -> Dict[str, Any]:
    """Volume id, every path, and the content of each file (bytes) of the TLS ISO."""
    reader = iso.IsoReader(io.BytesIO(image))
    paths = reader.walk()
    return {
        "volume_id": reader.volume_id,
        "paths": paths,
        "files": {p: reader.read(p, 1 << 20) for p in paths if not p.endswith("/")},
        "modes": {p: reader.mode(p) for p in paths if not p.endswith("/")},
    }


def install(lab: labctl.Lab, vm: str, files: Dict[str, bytes]) -> None:
    """Install the server side as the guest dockerd's TLS files and restart it."""
    tls_dir = _tls_dir(lab, vm)
    for path, name in INSTALL.items():
        target = os.path.join(tls_dir, name + ".pem")
        with open(target, "wb") as f:
            f.write(files[path])
        os.chmod(target, 0o600 if name.endswith("key") else 0o644)
    lab.service(vm, "dockerd", "restart")


def apply_cd(lab: labctl.Lab, vm: str, timeout: float = 60.0) -> Dict[str, Any]:
    """Wait for the TLS CD in the VM's drive, then do what configure_tls.cmd does."""
    cd = read_cd(export(lab, wait_for_cd(lab, vm, timeout)))
    install(lab, vm, cd["files"])
    return cd


def install_own(lab: labctl.Lab, vm: str, ca: bytes, cert: bytes, key: bytes) -> None:
    """An administrator installs certificates of their own (external mode)."""
    install(lab, vm, {"server/ca.pem": ca, "server/server-cert.pem": cert,
                      "server/server-key.pem": key})


def reinstall_lab_certificates(lab: labctl.Lab, vm: str) -> None:
    """Go back to the lab's own CA and server certificate (another CA than prepare-vm's)."""
    tls_dir = os.path.join(lab.lab_dir, "keys", "tls")
    cert, key = labkeys.server_cert(tls_dir, lab.vm(vm).ip)
    with open(os.path.join(tls_dir, "ca.pem"), "rb") as f_ca, open(cert, "rb") as f_cert, \
            open(key, "rb") as f_key:
        install_own(lab, vm, f_ca.read(), f_cert.read(), f_key.read())


@contextlib.contextmanager
def saved_tls(lab: labctl.Lab, vm: str) -> Iterator[None]:
    """Put the guest's original lab TLS files back (and restart dockerd) afterwards."""
    tls_dir = _tls_dir(lab, vm)
    backup = tempfile.mkdtemp(prefix="tls-saved-")
    for name in TLS_FILES:
        shutil.copy2(os.path.join(tls_dir, name + ".pem"), backup)
    try:
        yield
    finally:
        changed = False
        for name in TLS_FILES:
            src, dst = os.path.join(backup, name + ".pem"), os.path.join(tls_dir, name + ".pem")
            with open(src, "rb") as a, open(dst, "rb") as b:
                same = a.read() == b.read()
            if not same:
                shutil.copy2(src, dst)
                changed = True
        shutil.rmtree(backup, ignore_errors=True)
        if changed:
            lab.service(vm, "dockerd", "restart")


def main(argv: "list[str]") -> int:
    if len(argv) != 2 or argv[0] != "apply":
        sys.stderr.write("usage: python -m xsclab.tlsadmin apply VM\n")
        return 2
    cd = apply_cd(labctl.Lab.load(), argv[1])
    print(json.dumps({"volume_id": cd["volume_id"], "paths": cd["paths"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
