"""The config drive image: an ISO9660 image labelled `config-2`, attached
read-only to the VM, which Flatcar Container Linux reads at every boot.

  openstack/latest/user_data           the cloud-config for the VM (placeholders filled in)
  openstack/latest/user_data.template  the text as received (get_config_drive_configuration
                                       gives it back)
  agent/                               the Linux guest agent from the host's tools ISO,
                                       when there is one

Built and read back in Python (xscontainer.iso, pycdlib): no ISO tool, no mount.
"""

import logging
import os
import shutil
from io import BytesIO
from typing import Optional

from xscontainer import errors, iso, paths
from xscontainer.configdrive import cloudconfig, toolsiso

log = logging.getLogger(__name__)

VOLUME_ID = "config-2"
USER_DATA = "openstack/latest/user_data"
USER_DATA_TEMPLATE = "openstack/latest/user_data.template"
AGENT_DIR = "agent"


def _write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(text.encode("utf-8"))
    os.chmod(path, 0o644)


def build_image(workdir: str, user_data: str, template: str,
                tools_iso: Optional[str]) -> str:
    """Build the config drive image in `workdir` (a private folder the caller
    removes); returns the image's path."""
    tree = os.path.join(workdir, "drive")
    _write(os.path.join(tree, USER_DATA), user_data)
    _write(os.path.join(tree, USER_DATA_TEMPLATE), template)
    if tools_iso:
        try:
            copied = toolsiso.copy_agent(tools_iso, os.path.join(tree, AGENT_DIR))
            log.info("guest agent from %s: %s", os.path.basename(tools_iso),
                     ", ".join(copied) or "no agent files in its Linux folder")
        except (iso.IsoError, OSError) as exc:
            # the drive still configures the guest; only the agent is missing
            shutil.rmtree(os.path.join(tree, AGENT_DIR), ignore_errors=True)
            log.warning("config drive without guest agent: cannot read %s: %s", tools_iso, exc)
    else:
        log.info("no *tools-*.iso in %s: config drive without guest agent", paths.tools_iso_dir())
    image = os.path.join(workdir, "config-2.iso")
    try:
        iso.build(tree, image, VOLUME_ID)
    except iso.IsoError as exc:
        raise errors.ConfigDriveError(
            "Building the config drive image failed: %s." % exc
        ) from exc
    return image


def read_template_from_image(data: bytes) -> str:
    """The user_data.template of a config drive image, LF newlines."""
    try:
        image = iso.IsoReader(BytesIO(data), len(data))
        raw = image.read(USER_DATA_TEMPLATE, cloudconfig.MAX_CONFIGURATION_BYTES)
    except iso.IsoError as exc:
        raise errors.ConfigDriveError(
            "This disk is not a config drive made by xscontainer (%s)." % exc
        ) from exc
    return raw.decode("utf-8", "replace").replace("\r\n", "\n")
