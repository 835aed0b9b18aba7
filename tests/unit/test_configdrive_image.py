"""The config drive image (configdrive.image): built with the host's tool, read back
without mounting, checked against isoinfo as an independent reader."""

import subprocess
from pathlib import Path
from typing import Dict, List

import pytest

from xscontainer import errors, iso
from xscontainer.configdrive import image as drive_image

USER_DATA = "#cloud-config\r\nhostname: myhost\r\n"
TEMPLATE = "#cloud-config\r\nhostname: %VMNAMETOHOSTNAME%\r\n"
AGENT = {
    "xe-daemon": (b"\x7fELF agent binary", 0o755),
    "xe-linux-distribution": (b"#!/bin/sh\necho distro\n", 0o755),
    "xe-linux-distribution.service": (b"[Unit]\n", 0o644),
    "versions.rpm": (b"xe-guest-utilities 8.4.0\n", 0o644),
}


def make_iso(tmp: Path, files: Dict[str, bytes], options: List[str], name: str = "t.iso",
             modes: "Dict[str, int] | None" = None) -> Path:
    tree = tmp / (name + ".tree")
    for path, data in files.items():
        target = tree / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        target.chmod((modes or {}).get(path, 0o644))
    tree.mkdir(exist_ok=True)
    image = tmp / name
    subprocess.run(["genisoimage", "-quiet", "-input-charset", "utf-8", *options,
                    "-o", str(image), str(tree)], check=True)
    return image


def tools_iso(tmp: Path, name: str = "guest-tools-8.4.0-1.iso") -> Path:
    files = {"Linux/" + n: data for n, (data, _mode) in AGENT.items()}
    files["Windows/setup.exe"] = b"MZ"
    modes = {"Linux/" + n: mode for n, (_data, mode) in AGENT.items()}
    return make_iso(tmp, files, ["-R", "-J", "-V", "XenServer Tools"], name, modes)


def isoinfo(image: Path, *args: str) -> str:
    result = subprocess.run(["isoinfo", "-i", str(image), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, check=True)
    return result.stdout.decode("utf-8", "replace")


def build(tmp: Path, tools: "Path | None") -> Path:
    work = tmp / "work"
    work.mkdir()
    return Path(drive_image.build_image(str(work), USER_DATA, TEMPLATE,
                                        str(tools) if tools else None))


# -- the config drive image -------------------------------------------------------------


def test_drive_label_files_and_contents(tmp_path: Path) -> None:
    image = build(tmp_path, tools_iso(tmp_path))
    with open(str(image), "rb") as f:
        reader = iso.IsoReader(f)
        assert reader.volume_id == "config-2"
        assert reader.joliet_volume_id == "config-2"
        assert reader.names == "rockridge"
        assert reader.walk() == [
            "agent/",
            "agent/versions.rpm",
            "agent/xe-daemon",
            "agent/xe-linux-distribution",
            "agent/xe-linux-distribution.service",
            "openstack/",
            "openstack/latest/",
            "openstack/latest/user_data",
            "openstack/latest/user_data.template",
        ]
        assert reader.read("openstack/latest/user_data", 1000) == USER_DATA.encode()
        assert reader.read("openstack/latest/user_data.template", 1000) == TEMPLATE.encode()
        for name, (data, mode) in AGENT.items():
            assert reader.read("agent/" + name, 1000) == data
            assert reader.mode("agent/" + name) == mode
    # an independent reader agrees
    assert "Volume id: config-2" in isoinfo(image, "-d")
    assert isoinfo(image, "-R", "-x", "/openstack/latest/user_data") == USER_DATA
    assert isoinfo(image, "-J", "-x", "/openstack/latest/user_data.template") == TEMPLATE
    assert "Rock Ridge" in isoinfo(image, "-d")
    listing = isoinfo(image, "-R", "-l")
    assert "xe-daemon" in listing and "user_data.template" in listing


def test_drive_without_tools_iso_has_no_agent(tmp_path: Path) -> None:
    image = build(tmp_path, None)
    with open(str(image), "rb") as f:
        assert iso.IsoReader(f).walk() == [
            "openstack/", "openstack/latest/", "openstack/latest/user_data",
            "openstack/latest/user_data.template"]


def test_tools_iso_without_linux_folder_or_unreadable(tmp_path: Path) -> None:
    no_linux = make_iso(tmp_path, {"Windows/setup.exe": b"MZ"}, ["-R", "-J"], "w.iso")
    broken = tmp_path / "broken-tools-1.0.iso"
    broken.write_bytes(b"\0" * 40000)
    for tools in (no_linux, broken):
        work = tmp_path / ("work-" + tools.name)
        work.mkdir()
        image = drive_image.build_image(str(work), USER_DATA, TEMPLATE, str(tools))
        with open(image, "rb") as f:
            assert not [p for p in iso.IsoReader(f).walk() if p.startswith("agent")]


def test_template_read_back_from_image_bytes(tmp_path: Path) -> None:
    image = build(tmp_path, None)
    data = image.read_bytes() + b"\0" * 4096  # a VDI is larger than its image
    assert drive_image.read_template_from_image(data) == TEMPLATE.replace("\r\n", "\n")


@pytest.mark.parametrize("data", [b"", b"\0" * 70000, b"x" * 5000])
def test_not_an_image_is_a_clear_error(data: bytes) -> None:
    with pytest.raises(errors.ConfigDriveError, match="not a config drive"):
        drive_image.read_template_from_image(data)


def test_truncated_image_is_a_clear_error(tmp_path: Path) -> None:
    data = build(tmp_path, None).read_bytes()
    with pytest.raises(errors.ConfigDriveError, match="not a config drive"):
        drive_image.read_template_from_image(data[: 18 * 2048])


def test_image_without_the_template_file(tmp_path: Path) -> None:
    image = make_iso(tmp_path, {"openstack/latest/user_data": b"x"}, ["-R", "-V", "config-2"])
    with pytest.raises(errors.ConfigDriveError, match="no such file"):
        drive_image.read_template_from_image(image.read_bytes())


def test_build_image_failure_is_a_config_drive_error(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(iso, "MAX_BUILD_BYTES", 10)
    with pytest.raises(errors.ConfigDriveError, match="Building the config drive image failed"):
        drive_image.build_image(str(tmp_path), USER_DATA, TEMPLATE, None)
