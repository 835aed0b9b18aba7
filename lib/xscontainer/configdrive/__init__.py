"""Config drives for CoreOS-family guests (today Flatcar Container Linux).

  functions    the three plugin functions (re-exported here, as the plugin
               calls xscontainer.configdrive.<function>)
  cloudconfig  the cloud-config text: the default template, placeholders
  toolsiso     the host's guest tools ISO: the newest, the Linux agent in it
  image        the `config-2` ISO9660 image: built, and read back
  drive        the drive in XAPI: VDI, upload, VBD, replacing the old drive,
               undone on failure

Differences from the original Python 2 xscontainer, besides those each module
names: a failure leaves no VDI, VBD or VIF behind; the cloud-config text, the
key and session refs are never logged.
"""

from xscontainer.configdrive.functions import (
    create_config_drive,
    get_config_drive_configuration,
    get_config_drive_default,
)

__all__ = ["create_config_drive", "get_config_drive_configuration", "get_config_drive_default"]
