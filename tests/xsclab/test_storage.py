"""VDIs, raw disk import/export over HTTP, VBDs."""

import base64
import http.client
import os
from typing import Dict, Iterator, Optional, Tuple
from urllib.parse import urlencode, urlsplit

import pytest
import XenAPI

from xsclab.simharness import PASSWORD, Simulator
from xsclab.xapisim.client import UnixConnection

MiB = 1024 * 1024


def details(excinfo: pytest.ExceptionInfo) -> list:
    return list(excinfo.value.details)


def vdi_record(sr: str, size: int, **extra: object) -> Dict[str, object]:
    record = {"name_label": "Automatic Config Drive", "name_description": "", "SR": sr,
              "virtual_size": str(size), "type": "system", "sharable": False,
              "read_only": False, "other_config": {"config-drive": "True"}}
    record.update(extra)
    return record


@pytest.fixture
def vdi(session: XenAPI.Session) -> Iterator[str]:
    pool = session.xenapi.pool.get_all()[0]
    ref = session.xenapi.VDI.create(vdi_record(session.xenapi.pool.get_default_SR(pool), 2 * MiB))
    yield ref
    if ref in session.xenapi.VDI.get_all():
        session.xenapi.VDI.destroy(ref)


def request(conn: http.client.HTTPConnection, method: str, path: str, body: Optional[bytes] = None,
            headers: Optional[Dict[str, str]] = None) -> Tuple[int, Dict[str, str], bytes]:
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data


def tcp(sim: Simulator) -> http.client.HTTPConnection:
    return http.client.HTTPConnection(urlsplit(sim.url).netloc, timeout=10)


def test_vdi_create_record_and_file(sim: Simulator, session: XenAPI.Session, vdi: str) -> None:
    record = session.xenapi.VDI.get_record(vdi)
    assert record["virtual_size"] == str(2 * MiB)
    assert record["other_config"] == {"config-drive": "True"}
    assert (record["type"], record["read_only"], record["VBDs"]) == ("system", False, [])
    sr_uuid = session.xenapi.SR.get_uuid(record["SR"])
    path = os.path.join(sim.lab_dir, "srs", sr_uuid, record["uuid"] + ".img")
    assert os.path.getsize(path) == 2 * MiB
    session.xenapi.VDI.destroy(vdi)
    assert not os.path.exists(path)


def test_vdi_create_needs_its_fields(session: XenAPI.Session) -> None:
    pool = session.xenapi.pool.get_all()[0]
    record = vdi_record(session.xenapi.pool.get_default_SR(pool), MiB)
    del record["virtual_size"]
    with pytest.raises(XenAPI.Failure) as e:
        session.xenapi.VDI.create(record)
    assert details(e) == ["FIELD_TYPE_ERROR", "virtual_size"]
    with pytest.raises(XenAPI.Failure) as e:
        session.xenapi.VDI.create(dict(record, virtual_size="1", SR="OpaqueRef:NULL"))
    assert details(e) == ["HANDLE_INVALID", "SR", "OpaqueRef:NULL"]


def test_import_export_round_trip_over_tcp(sim: Simulator, session: XenAPI.Session, vdi: str
                                           ) -> None:
    data = os.urandom(MiB + 123)
    query = urlencode({"session_id": session.handle, "vdi": vdi, "format": "raw"})
    status, headers, _ = request(tcp(sim), "PUT", "/import_raw_vdi?" + query, data)
    assert status == 200 and headers["task-id"].startswith("OpaqueRef:")
    uuid = session.xenapi.VDI.get_uuid(vdi)
    query = urlencode({"session_id": session.handle, "vdi": uuid, "format": "raw"})
    status, headers, body = request(tcp(sim), "GET", "/export_raw_vdi?" + query)
    assert status == 200
    assert len(body) == 2 * MiB  # the whole disk
    assert body[:len(data)] == data and body[len(data):] == bytes(2 * MiB - len(data))


def test_disk_transfers_over_the_socket_need_no_session(sim: Simulator, vdi: str) -> None:
    status, _, _ = request(UnixConnection(sim.socket), "PUT", "/import_raw_vdi?vdi=" + vdi,
                           b"config-2")
    assert status == 200
    status, _, body = request(UnixConnection(sim.socket), "GET", "/export_raw_vdi?vdi=" + vdi)
    assert status == 200 and body.startswith(b"config-2\0")


def test_basic_auth_and_cookie(sim: Simulator, session: XenAPI.Session, vdi: str) -> None:
    token = base64.b64encode(("root:" + PASSWORD).encode()).decode()
    status, _, _ = request(tcp(sim), "GET", "/export_raw_vdi?vdi=" + vdi,
                           headers={"Authorization": "Basic " + token})
    assert status == 200
    status, _, _ = request(tcp(sim), "GET", "/export_raw_vdi?vdi=" + vdi,
                           headers={"Cookie": "session_id=" + session.handle})
    assert status == 200


def test_disk_transfer_errors(sim: Simulator, session: XenAPI.Session, vdi: str) -> None:
    bad_session = urlencode({"session_id": "OpaqueRef:nope", "vdi": vdi})
    status, headers, _ = request(tcp(sim), "PUT", "/import_raw_vdi?" + bad_session, b"x")
    assert status == 401 and "www-authenticate" in headers
    status, _, _ = request(tcp(sim), "GET", "/export_raw_vdi?vdi=" + vdi)
    assert status == 401
    good = {"session_id": session.handle}
    status, _, _ = request(tcp(sim), "GET", "/export_raw_vdi?" + urlencode(dict(good, vdi="x")))
    assert status == 404
    query = urlencode(dict(good, vdi=vdi, format="vhd"))
    status, _, _ = request(tcp(sim), "PUT", "/import_raw_vdi?" + query, b"x")
    assert status == 404
    query = urlencode(dict(good, vdi=vdi))
    status, _, _ = request(tcp(sim), "PUT", "/import_raw_vdi?" + query, bytes(2 * MiB + 1))
    assert status == 400


def test_cd_insert_and_eject(session: XenAPI.Session, vm: str, vdi: str) -> None:
    api = session.xenapi
    cd = next(v for v in api.VM.get_VBDs(vm) if api.VBD.get_type(v) == "CD")
    disk = next(v for v in api.VM.get_VBDs(vm) if api.VBD.get_type(v) == "Disk")
    with pytest.raises(XenAPI.Failure) as e:
        api.VBD.eject(cd)
    assert details(e) == ["VBD_IS_EMPTY", cd]
    api.VBD.insert(cd, vdi)
    assert (api.VBD.get_VDI(cd), api.VBD.get_empty(cd)) == (vdi, False)
    assert api.VDI.get_VBDs(vdi) == [cd]
    with pytest.raises(XenAPI.Failure) as e:
        api.VBD.insert(cd, vdi)
    assert details(e) == ["VBD_NOT_EMPTY", cd]
    with pytest.raises(XenAPI.Failure) as e:
        api.VDI.destroy(vdi)  # the CD drive of a running VM is attached
    assert details(e) == ["VDI_IN_USE", vdi, "destroy"]
    api.VBD.eject(cd)
    assert (api.VBD.get_VDI(cd), api.VBD.get_empty(cd)) == ("OpaqueRef:NULL", True)
    with pytest.raises(XenAPI.Failure) as e:
        api.VBD.eject(disk)
    assert details(e) == ["VBD_NOT_REMOVABLE_MEDIA", disk]


def test_vbd_create_plug_unplug_destroy(session: XenAPI.Session, vm: str, vdi: str) -> None:
    api = session.xenapi
    record = {"VM": vm, "VDI": vdi, "userdevice": "autodetect", "bootable": False, "mode": "RO",
              "type": "Disk", "unpluggable": True, "empty": False,
              "other_config": {"config-drive": "True"}, "qos_algorithm_type": "",
              "qos_algorithm_params": {}}
    with pytest.raises(XenAPI.Failure) as e:
        api.VBD.create(dict(record, userdevice="0"))
    assert details(e) == ["DEVICE_ALREADY_EXISTS", "0"]
    vbd = api.VBD.create(record)
    assert api.VBD.get_userdevice(vbd) == "1"
    assert "1" not in api.VM.get_allowed_VBD_devices(vm)
    assert api.VBD.get_currently_attached(vbd) is False
    api.VBD.plug(vbd)
    assert (api.VBD.get_currently_attached(vbd), api.VBD.get_device(vbd)) == (True, "xvdb")
    with pytest.raises(XenAPI.Failure) as e:
        api.VBD.destroy(vbd)
    assert details(e)[0] == "OPERATION_NOT_ALLOWED"
    with pytest.raises(XenAPI.Failure) as e:
        api.VBD.plug(vbd)
    assert details(e) == ["DEVICE_ALREADY_ATTACHED", vbd]
    api.VBD.unplug(vbd)
    api.VBD.destroy(vbd)
    assert vbd not in api.VM.get_VBDs(vm)


def test_vdi_destroy_takes_detached_vbds_along(session: XenAPI.Session, vm: str, vdi: str
                                               ) -> None:
    api = session.xenapi
    vbd = api.VBD.create({"VM": vm, "VDI": vdi, "userdevice": "5", "bootable": False,
                          "mode": "RW", "type": "Disk", "empty": False, "other_config": {},
                          "qos_algorithm_type": "", "qos_algorithm_params": {}})
    api.VDI.destroy(vdi)
    assert vbd not in api.VBD.get_all()
