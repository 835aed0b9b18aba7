"""The host's guest tools ISO: which one is the newest, the guest agent read from it."""

import os
import stat
import subprocess
from pathlib import Path

from xscontainer.configdrive import toolsiso

AGENT = {
    "xe-daemon": b"\x7fELF agent binary",
    "xe-linux-distribution": b"#!/bin/sh\necho distro\n",
    "xe-linux-distribution.service": b"[Unit]\n",
    "versions.rpm": b"xe-guest-utilities 8.4.0\n",
}


def test_tools_iso_order_is_by_version_numbers() -> None:
    names = [
        "guest-tools-8.4.0-999.iso",
        "guest-tools-8.4.0-1001.iso",
        "guest-tools-8.4.0.iso",
        "guest-tools-8.10.0-1.iso",
        "guest-tools-8.9.0-5000.iso",
        "xs-tools-7.2.0.iso",
        "xs-tools-6.2.0-70442.iso",
        "guest-tools-latest.iso",
        "guest-tools-8.4.0-1001.el7.iso",
    ]
    ordered = sorted(names, key=toolsiso.tools_iso_key)
    assert ordered == [
        "guest-tools-latest.iso",
        "xs-tools-6.2.0-70442.iso",
        "xs-tools-7.2.0.iso",
        "guest-tools-8.4.0.iso",
        "guest-tools-8.4.0-999.iso",
        "guest-tools-8.4.0-1001.iso",
        "guest-tools-8.4.0-1001.el7.iso",
        "guest-tools-8.9.0-5000.iso",
        "guest-tools-8.10.0-1.iso",
    ]


def test_newest_tools_iso_in_a_folder(tmp_path: Path) -> None:
    assert toolsiso.newest_tools_iso(str(tmp_path)) is None
    assert toolsiso.newest_tools_iso(str(tmp_path / "missing")) is None
    for name in ("guest-tools-8.4.0-999.iso", "guest-tools-8.4.0-1001.iso",
                 "guest-tools-8.4.0.iso", "readme.txt", "other.iso"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "guest-tools-9.0.0-1.iso").mkdir()  # not a file
    newest = toolsiso.newest_tools_iso(str(tmp_path))
    assert newest == os.path.join(str(tmp_path), "guest-tools-8.4.0-1001.iso")


def test_only_release_less_names_still_give_one(tmp_path: Path) -> None:
    # the original raised IndexError here
    for name in ("xs-tools-7.2.0.iso", "xs-tools-7.10.0.iso"):
        (tmp_path / name).write_bytes(b"")
    assert toolsiso.newest_tools_iso(str(tmp_path)).endswith("xs-tools-7.10.0.iso")


# -- the guest agent ----------------------------------------------------------------------


def joliet_tools_iso(tmp: Path) -> Path:
    """A tools ISO with Joliet names only (no Rock Ridge, so no file modes)."""
    tree = tmp / "tree"
    for name, data in AGENT.items():
        target = tree / "Linux" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    image = tmp / "j.iso"
    subprocess.run(["genisoimage", "-quiet", "-input-charset", "utf-8", "-J",
                    "-o", str(image), str(tree)], check=True)
    return image


def test_agent_from_a_tools_iso_with_joliet_names_only(tmp_path: Path) -> None:
    tools = joliet_tools_iso(tmp_path)
    dest = tmp_path / "agent"
    assert sorted(toolsiso.copy_agent(str(tools), str(dest))) == sorted(AGENT)
    daemon = dest / "xe-daemon"
    assert daemon.read_bytes() == AGENT["xe-daemon"]
    assert stat.S_IMODE(daemon.stat().st_mode) == 0o755  # no Rock Ridge: by name
    assert stat.S_IMODE((dest / "versions.rpm").stat().st_mode) == 0o644
