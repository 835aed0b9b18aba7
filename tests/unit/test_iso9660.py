"""The ISO9660 reader and builder (xscontainer.iso), on images genisoimage made."""

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


@pytest.mark.parametrize("builder", iso.BUILDERS)
def test_every_supported_builder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 builder: "tuple[str, ...]") -> None:
    monkeypatch.setattr(iso, "BUILDERS", (builder,))
    tree = tmp_path / "tree" / "openstack" / "latest"
    tree.mkdir(parents=True)
    (tree / "user_data").write_text("data")
    image = tmp_path / "out.iso"
    iso.build(str(tmp_path / "tree"), str(image), "config-2")
    with open(str(image), "rb") as f:
        reader = iso.IsoReader(f)
        assert reader.volume_id == "config-2"
        assert reader.rock_ridge
        assert reader.read("openstack/latest/user_data", 10) == b"data"


def test_build_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(iso, "BUILDERS", (("no-such-iso-builder",),))
    with pytest.raises(iso.IsoError, match="install the genisoimage package"):
        iso.build(str(tmp_path), str(tmp_path / "x.iso"), "config-2")

    monkeypatch.setattr(iso, "BUILDERS", (("genisoimage",),))
    with pytest.raises(iso.IsoError, match="failed"):
        iso.build(str(tmp_path / "missing"), str(tmp_path / "x.iso"), "config-2")

    slow = tmp_path / "bin" / "genisoimage"
    slow.parent.mkdir()
    slow.write_text("#!/bin/sh\nexec sleep 30\n")
    slow.chmod(0o755)
    monkeypatch.setenv("PATH", "%s:%s" % (slow.parent, os.environ["PATH"]))
    with pytest.raises(iso.IsoError, match="did not finish"):
        iso.build(str(tmp_path), str(tmp_path / "x.iso"), "config-2", timeout=0.5)


def test_reader_rejects_hostile_directory_sizes(tmp_path: Path) -> None:
    image = bytearray(make_iso(tmp_path, {"a": b"1"}, ["-R"]).read_bytes())
    # root directory record in the primary volume descriptor: claim a 1 GiB directory
    pvd = 16 * 2048
    image[pvd + 156 + 10: pvd + 156 + 14] = (1 << 30).to_bytes(4, "little")
    with pytest.raises(iso.IsoError):
        iso.IsoReader(io.BytesIO(bytes(image))).walk()
