"""The three plugin functions, called by XenCenter's and Xen Orchestra's New VM wizards.

* get_config_drive_default(templateuuid): the default cloud-config, placeholders
  in place (cloudconfig).
* create_config_drive(vmuuid, sruuid, configuration): fill in the placeholders
  (cloudconfig), build the `config-2` image with the host's guest agent (image,
  toolsiso), store it as the VM's config drive, replacing the previous one, and
  seed `xscontainer-monitor=False` when the text keeps the pool key line (drive).
* get_config_drive_configuration(vdiuuid): the text a drive was made from.

The cloud-config text and the pool key are never logged.
"""

import shutil
import tempfile
from typing import Dict

from xscontainer import errors
from xscontainer.configdrive import cloudconfig, drive, image, toolsiso
from xscontainer.xapi import Xapi


def get_config_drive_default(xapi: Xapi, args: Dict[str, str]) -> str:
    """`templateuuid` is required by the contract but does not change the answer."""
    return cloudconfig.default_configuration(drive.use_hin(xapi))


def create_config_drive(xapi: Xapi, args: Dict[str, str]) -> str:
    vm_uuid = args.get("vmuuid", "").strip()
    sr_uuid = args.get("sruuid", "").strip()
    raw = args.get("configuration", "")
    received = cloudconfig.decode_configuration(raw)
    if not received.strip():
        raise errors.InvalidArgument(
            "The configuration is empty. Pass the cloud-config text (get_config_drive_default "
            "gives a starting point) as args:configuration=..., with %BR% for each newline.",
            "configuration",
        )
    if len(raw.encode("utf-8")) > cloudconfig.MAX_CONFIGURATION_BYTES:
        raise errors.InvalidArgument(
            "The configuration is larger than %d bytes." % cloudconfig.MAX_CONFIGURATION_BYTES,
            "configuration",
        )
    # refuse an unclosed block before any change
    cloudconfig.resolve_hin_blocks(received, keep=False)

    new = drive.NewDrive(xapi, vm_uuid, sr_uuid)  # checks before any change
    with new:  # a failure inside undoes what it made
        hin = new.hin_device()
        body = None
        if cloudconfig.needs_pool_key(received):
            from xscontainer import poolkey  # noqa: PLC0415 (cryptography: only when needed)

            body = cloudconfig.key_body(poolkey.public_key_line(xapi))
        hostname = cloudconfig.hostname_from_name(new.vm_name(), vm_uuid)
        user_data = cloudconfig.customize(received, hostname, body, hin)

        workdir = tempfile.mkdtemp(prefix="xscontainer-configdrive-")
        try:
            vdi = new.upload(image.build_image(workdir, user_data, received,
                                               toolsiso.newest_tools_iso()))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        vbd = new.swap(vdi)
    return new.finish(vdi, vbd, seed_monitor=cloudconfig.has_uncommented_key_line(received))


def get_config_drive_configuration(xapi: Xapi, args: Dict[str, str]) -> str:
    vdi_uuid = args.get("vdiuuid", "").strip()
    text = image.read_template_from_image(drive.read_drive(xapi, vdi_uuid))
    if not text:
        raise errors.ConfigDriveError(
            "The config drive %s holds an empty configuration." % vdi_uuid, vdi_uuid
        )
    return text
