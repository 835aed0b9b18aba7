"""xscontainer: container management for XenServer and XCP-ng pools.

The package holds all logic; the executables in plugins/ and scripts/ are thin
entry points. Runtime code must stay Python 3.6 compatible (dom0 of XCP-ng 8.3).
"""

__version__ = "11.0.0"

import os as _os
import sys as _sys


def _use_bundled_libraries() -> None:
    """Put the libraries the xscontainer-pylibs RPM bundles first on sys.path.

    The dom0 of XCP-ng 8.3 / XenServer 8 has no paramiko, Docker SDK,
    cryptography >= 40 or pyOpenSSL for its Python 3.6, so the RPMs bundle them,
    built for that interpreter, in <prefix>/lib64/xscontainer/python3.6, beside
    <prefix>/lib/python3.6/site-packages/xscontainer (found from this file, so an
    RPM installed into a scratch root works alike). Nothing else in dom0 sees them.
    Another interpreter, or a source tree, has no such folder: nothing changes.
    """
    package_dir = _os.path.dirname(_os.path.abspath(__file__))
    prefix = _os.path.dirname(_os.path.dirname(_os.path.dirname(_os.path.dirname(package_dir))))
    bundle = _os.path.join(prefix, "lib64", "xscontainer", "python%d.%d" % _sys.version_info[:2])
    if _os.path.isdir(bundle) and bundle not in _sys.path:
        _sys.path.insert(0, bundle)


_use_bundled_libraries()

# Optional modules the libraries import when they are installed, which no
# xscontainer process uses: paramiko (directly and through the Docker SDK) imports
# invoke for ssh_config's "Match exec" (about 0.1 s; paramiko 5.1 requires it, so it
# is often installed) and gssapi for Kerberos logins; xscontainer reads no
# ssh_config and logs in with the pool's key only. A None entry makes their import
# fail at once, as if they were absent, which those libraries expect.
OPTIONAL_IMPORTS_HIDDEN = ("invoke", "gssapi")
for _name in OPTIONAL_IMPORTS_HIDDEN:
    _sys.modules.setdefault(_name, None)  # type: ignore[arg-type]
