"""The ISO 9660 reader and builder (xscontainer.iso): images genisoimage made read
back, images we build read by genisoimage's isoinfo."""

import io
import os
import subprocess
from pathlib import Path
from typing import Dict, List

import pytest

from xscontainer import iso


def make_iso(tmp: Path, files: Dict[str, bytes], options: List[str]) -> Path:
    tree = tmp / "tree"
    for path, data in files.items():
        target = tree / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    image = tmp / "t.iso"
    subprocess.run(["genisoimage", "-quiet", "-input-charset", "utf-8", *options,
                    "-o", str(image), str(tree)], check=True)
    return image


@pytest.mark.parametrize(
    "options, names",
    [(["-R", "-J"], "rockridge"), (["-R"], "rockridge"), (["-J"], "joliet"),
     ([], "iso9660")],
)
def test_reader_name_sources(tmp_path: Path, options: List[str], names: str) -> None:
    image = make_iso(tmp_path, {"dir/sub/file.txt": b"hello"}, [*options, "-V", "LBL"])
    with open(str(image), "rb") as f:
        reader = iso.IsoReader(f)
        assert reader.names == names
        assert reader.volume_id == "LBL"
        # 8.3 names are upper case; lookups fall back to case-insensitive
        assert reader.read("dir/sub/file.txt", 10) == b"hello"
        assert reader.exists("/DIR/SUB/FILE.TXT")
        assert not reader.exists("dir/nope")
        with pytest.raises(iso.IsoError, match="more than"):
            reader.read("dir/sub/file.txt", 4)
        with pytest.raises(iso.IsoError, match="is a directory"):
            reader.read("dir", 10)


def test_reader_long_names_and_many_files(tmp_path: Path) -> None:
    files = {"d/%03d-%s.txt" % (n, "x" * 40): b"%d" % n for n in range(150)}
    image = make_iso(tmp_path, files, ["-R", "-J", "-joliet-long"])
    with open(str(image), "rb") as f:
        reader = iso.IsoReader(f)
        assert len(reader.listdir("d")) == 150
        assert reader.read("d/149-%s.txt" % ("x" * 40), 10) == b"149"


def test_build_reads_back_like_genisoimage(tmp_path: Path) -> None:
    """What build writes: the label, Rock Ridge names and modes, Joliet names, 8.3
    names; read back by our reader and by isoinfo (genisoimage's reader)."""
    tree = tmp_path / "tree"
    (tree / "openstack" / "latest").mkdir(parents=True)
    (tree / "openstack" / "latest" / "user_data").write_text("data")
    (tree / "openstack" / "latest" / "user_data.template").write_text("template")
    (tree / "agent").mkdir()
    (tree / "agent" / "install.sh").write_text("#!/bin/sh\n")
    (tree / "agent" / "install.sh").chmod(0o755)
    (tree / "agent" / "xe-linux-distribution").write_text("x")
    (tree / "agent" / "xe-linux-distribution").chmod(0o600)
    image = tmp_path / "out.iso"
    iso.build(str(tree), str(image), "config-2")
    with open(str(image), "rb") as f:
        reader = iso.IsoReader(f)
        assert reader.volume_id == "config-2" and reader.joliet_volume_id == "config-2"
        assert reader.rock_ridge and reader.names == "rockridge"
        assert reader.walk() == [
            "agent/", "agent/install.sh", "agent/xe-linux-distribution", "openstack/",
            "openstack/latest/", "openstack/latest/user_data",
            "openstack/latest/user_data.template"]
        assert reader.read("openstack/latest/user_data", 10) == b"data"
        assert reader.read("openstack/latest/user_data.template", 10) == b"template"
        assert reader.mode("agent/install.sh") == 0o755
        assert reader.mode("agent/xe-linux-distribution") == 0o600
    # an independent reader: isoinfo (genisoimage) sees the same three name spaces
    for option, want in (("-R", "user_data.template"), ("-J", "user_data.template"),
                         ("", "USER_DAT.TEM;1")):
        out = subprocess.run(["isoinfo", "-i", str(image), "-f", *option.split()],
                             check=True, stdout=subprocess.PIPE, universal_newlines=True).stdout
        assert any(line.endswith("/" + want) for line in out.splitlines()), (option, out)
    pvd = image.read_bytes()[16 * 2048:17 * 2048]
    assert pvd[40:72].decode().rstrip() == "config-2"


def test_build_needs_no_iso_tool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No genisoimage, mkisofs or xorriso on PATH: building and reading still work."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "file").write_bytes(b"x" * 5000)
    iso.build(str(tree), str(tmp_path / "x.iso"), "LABEL")
    f, reader = iso.open_image(str(tmp_path / "x.iso"))
    with f:
        assert reader.read("file", 5000) == b"x" * 5000


def test_build_errors(tmp_path: Path) -> None:
    with pytest.raises(iso.IsoError, match="no such directory"):
        iso.build(str(tmp_path / "missing"), str(tmp_path / "x.iso"), "config-2")
    tree = tmp_path / "tree"
    tree.mkdir()
    os.symlink("/etc/passwd", str(tree / "link"))
    with pytest.raises(iso.IsoError, match="neither a regular file"):
        iso.build(str(tree), str(tmp_path / "x.iso"), "config-2")


def test_reader_rejects_hostile_directory_sizes(tmp_path: Path) -> None:
    image = bytearray(make_iso(tmp_path, {"a": b"1"}, ["-R"]).read_bytes())
    # root directory record in the primary volume descriptor: claim a 1 GiB directory
    pvd = 16 * 2048
    image[pvd + 156 + 10: pvd + 156 + 14] = (1 << 30).to_bytes(4, "little")
    with pytest.raises(iso.IsoError):
        iso.IsoReader(io.BytesIO(bytes(image))).walk()
