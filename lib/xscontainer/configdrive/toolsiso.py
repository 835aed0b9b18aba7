"""The host's guest tools ISO: finding the newest, reading the Linux guest agent from it.

The agent's files (from the ISO's Linux/ folder) go on the config drive under
agent/, where the cloud-config's xe-linux-distribution unit starts them. The
newest ISO is chosen by version numbers (the original compared names as
strings), and the ISO is read without mounting it.
"""

import os
import re
from typing import Any, List, Optional, Tuple

from xscontainer import iso, paths

# The Linux guest agent files the original copied from the tools ISO's Linux/ folder.
AGENT_FILES = (
    "xe-daemon",
    "xe-linux-distribution",
    "xe-linux-distribution.service",
    "xen-vcpu-hotplug.rules",
    "install.sh",
    "versions.deb",
    "versions.rpm",
    "versions.tgz",
)
AGENT_EXECUTABLES = ("xe-daemon", "xe-linux-distribution", "install.sh")
TOOLS_ISO_GLOB = re.compile(r"^.*tools-.*\.iso$")
MAX_AGENT_FILE_BYTES = 32 << 20

_TOOLS_VERSION = re.compile(
    r"^.*tools-(?P<version>\d+(?:\.\d+)*)(?:-(?P<release>[0-9A-Za-z][0-9A-Za-z._~+]*?))?\.iso$"
)


def _release_key(release: str) -> Tuple[Tuple[int, int, str], ...]:
    # numbers compare as numbers and rank above letters, as in rpm's version order
    return tuple(
        (1, int(part), "") if part.isdigit() else (0, 0, part)
        for part in re.findall(r"\d+|[A-Za-z]+", release)
    )


def tools_iso_key(name: str) -> Tuple[Any, ...]:
    """Sort key of a tools ISO file name: by version numbers, then release numbers;
    a name without a release ranks below released ones of the same version, and a
    name without a version below all others."""
    match = _TOOLS_VERSION.match(os.path.basename(name))
    if match is None:
        return (0, (), 0, (), name)
    version = tuple(int(n) for n in match.group("version").split("."))
    release = match.group("release")
    if release is None:
        return (1, version, 0, (), name)
    return (1, version, 1, _release_key(release), name)


def newest_tools_iso(directory: Optional[str] = None) -> Optional[str]:
    """The newest `*tools-*.iso` in the tools ISO folder, or None."""
    directory = directory or paths.tools_iso_dir()
    try:
        names = os.listdir(directory)
    except OSError:
        return None
    candidates = [
        n for n in names if TOOLS_ISO_GLOB.match(n) and os.path.isfile(os.path.join(directory, n))
    ]
    if not candidates:
        return None
    return os.path.join(directory, max(candidates, key=tools_iso_key))


def copy_agent(tools_iso: str, destination: str) -> List[str]:
    """Copy the guest agent files found in the tools ISO's Linux/ folder to
    `destination`; returns their names. Raises iso.IsoError."""
    copied = []
    f, image = iso.open_image(tools_iso)
    with f:
        if not image.exists("Linux"):
            return []
        os.makedirs(destination, exist_ok=True)
        for name in AGENT_FILES:
            path = "Linux/" + name
            if not image.exists(path):
                continue
            data = image.read(path, MAX_AGENT_FILE_BYTES)
            mode = image.mode(path)
            if mode is None:
                mode = 0o755 if name in AGENT_EXECUTABLES else 0o644
            target = os.path.join(destination, name)
            with open(target, "wb") as out:
                out.write(data)
            os.chmod(target, mode & 0o755)
            copied.append(name)
    return copied
