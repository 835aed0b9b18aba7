"""Where the lab keeps its files, and what a process "in a host's dom0" sees.

One definition shared by the XAPI simulator (which runs plugins the way xapi
does on a given host) and by `tests/lab/lab dom0` (which runs a command as if in
that host's control domain), so both give a process the same world:

* XSCONTAINER_* variables (see lib/xscontainer/paths.py) pointing at the
  simulator's socket and at this host's inventory, log and files;
* PATH with the project's executables and the lab's Python interpreter first, so
  `#!/usr/bin/env python3` executables run on the interpreter under test;
* PYTHONPATH with the project's package and the lab-only XenAPIPlugin stand-in
  (tests/lab/stubs), which a real dom0 gets from xapi-core.

Nothing else: xapi's forkexecd starts a plugin with PATH as its only variable and
systemd gives the monitor no LANG either, so a dom0 process here gets no locale
variable, no HOME, none of the test machine's variables. Besides PATH, every
variable it sees is lab-only: the XSCONTAINER_* paths above, PYTHONPATH,
XSC_LAB_HOST and XSC_LAB_DIR, plus any XSCONTAINER_* / XSC_LAB_* the caller set
(a test's switch). Python 3.6 with no locale variable runs with an ASCII locale,
as on a CentOS 7 based dom0 (which has no C.UTF-8 locale; Python 3.6 predates
locale coercion), so the Python 3.6 runs are where a locale bug shows.

Switches (environment):
* XSC_LAB_DIR: the lab's state folder (default: <repo>/.lab)
* XSC_LAB_PYTHON_BIN: folder holding the python3 that dom0 processes run on
  (default: the folder of the interpreter running this code, e.g. .venv/bin)
* XSC_LAB_INSTALL_ROOT: run the product from an installed tree (a scratch root
  the RPM was installed into) instead of the source tree. Its executables start
  with `#!/usr/bin/python3`, dom0's interpreter (the RPM rewrites the shebangs):
  `dom0_argv` runs them on the lab's dom0 interpreter instead.
"""

import glob
import os
import shutil
import sys
from typing import Dict, List, Mapping, Optional, Sequence

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
# tests/lab: holds this package, the executables (lab, xe, demo) and stubs/; a
# process that imports xsclab needs it on its path
LAB_CODE_DIR = os.path.dirname(PACKAGE_DIR)
REPO = os.path.dirname(os.path.dirname(LAB_CODE_DIR))
STUBS_DIR = os.path.join(LAB_CODE_DIR, "stubs")
# dom0's Python, as installed executables name it in their shebang
DOM0_PYTHON = "/usr/bin/python3"


def lab_dir() -> str:
    return os.path.abspath(os.environ.get("XSC_LAB_DIR") or os.path.join(REPO, ".lab"))


def lab_json() -> str:
    return os.path.join(lab_dir(), "lab.json")


def xapi_socket() -> str:
    return os.path.join(lab_dir(), "xapi.sock")


def python_bin_dir() -> str:
    return os.path.abspath(
        os.environ.get("XSC_LAB_PYTHON_BIN") or os.path.dirname(sys.executable)
    )


class Tree:
    """Where the product's plugins, package and executables are found."""

    def __init__(self, plugins_dir: str, pythonpath: List[str], bin_dir: str) -> None:
        self.plugins_dir = plugins_dir
        self.pythonpath = pythonpath
        self.bin_dir = bin_dir

    def __repr__(self) -> str:
        return "Tree(plugins=%s, pythonpath=%s, bin=%s)" % (
            self.plugins_dir,
            self.pythonpath,
            self.bin_dir,
        )


def tree() -> Tree:
    root = os.environ.get("XSC_LAB_INSTALL_ROOT")
    if not root:
        return Tree(
            os.path.join(REPO, "plugins"),
            [os.path.join(REPO, "lib")],
            os.path.join(REPO, "scripts"),
        )
    root = os.path.abspath(root)
    sitelibs = sorted(
        glob.glob(os.path.join(root, "usr/lib/python3*/site-packages"))
        + glob.glob(os.path.join(root, "usr/local/lib/python3*/site-packages"))
    )
    return Tree(os.path.join(root, "etc/xapi.d/plugins"), sitelibs, os.path.join(root, "usr/bin"))


def dom0_argv(argv: Sequence[str], env: Mapping[str, str]) -> List[str]:
    """The command line that runs `argv` in a lab dom0 with environment `env`.

    An executable whose shebang is dom0's interpreter (`#!/usr/bin/python3 [flag]`,
    as the RPM installs them) runs on the lab's dom0 interpreter
    (python_bin_dir()/python3) with the same flag; anything else runs as it is
    (`#!/usr/bin/env python3` already finds that interpreter on PATH).
    """
    argv = list(argv)
    path = argv[0] if os.sep in argv[0] else shutil.which(argv[0], path=env.get("PATH"))
    try:
        with open(path or "", "rb") as f:
            first = f.readline(256).decode("utf-8", "replace").split()
    except OSError:
        return argv
    if first[:1] != ["#!" + DOM0_PYTHON]:
        return argv
    return [os.path.join(python_bin_dir(), "python3"), *first[1:], path or argv[0], *argv[1:]]


def host_dir(host_uuid: str) -> str:
    return os.path.join(lab_dir(), "hosts", host_uuid)


# forkexecd's PATH for the programs it runs
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"
# the caller's variables a dom0 process inherits: the product's documented
# overrides and the lab's switches
_PASSED_PREFIXES = ("XSCONTAINER_", "XSC_LAB_")


def bare_env() -> Dict[str, str]:
    """What a dom0 process starts from: the system PATH and the caller's
    XSCONTAINER_* / XSC_LAB_* variables, nothing else (no locale, no HOME)."""
    env = {k: v for k, v in os.environ.items() if k.startswith(_PASSED_PREFIXES)}
    env["PATH"] = SYSTEM_PATH
    return env


def dom0_env(host_uuid: str, base: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """The environment of a process running in the dom0 of host `host_uuid`:
    PATH and lab-only variables (see above); `base` replaces that bare start."""
    env = dict(bare_env() if base is None else base)
    hdir = host_dir(host_uuid)
    t = tree()
    env.update(
        {
            "XSCONTAINER_XAPI_SOCKET": xapi_socket(),
            "XSCONTAINER_INVENTORY": os.path.join(hdir, "xensource-inventory"),
            "XSCONTAINER_LOG_FILE": os.path.join(hdir, "xscontainer.log"),
            "XSCONTAINER_FILES_DIR": os.path.join(hdir, "files"),
            "XSCONTAINER_TOOLS_ISO_DIR": os.path.join(hdir, "iso"),
            "XSCONTAINER_RUN_DIR": os.path.join(hdir, "run"),
            "XSC_LAB_HOST": host_uuid,
            "XSC_LAB_DIR": lab_dir(),
        }
    )
    path = [t.bin_dir, python_bin_dir()] + [
        p for p in env.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin").split(":") if p
    ]
    env["PATH"] = ":".join(path)
    env["PYTHONPATH"] = ":".join([*t.pythonpath, STUBS_DIR])
    # the machine's CA bundle variables would override the per-VM CA of the Docker SDK
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        env.pop(name, None)
    return env


def ensure_host_dirs(host_uuid: str, control_domain_uuid: str) -> str:
    """Create a host's folders and its inventory file (as dom0's
    /etc/xensource-inventory); returns the host folder."""
    hdir = host_dir(host_uuid)
    for sub in ("files", "iso", "run"):
        os.makedirs(os.path.join(hdir, sub), exist_ok=True)
    inventory = os.path.join(hdir, "xensource-inventory")
    if not os.path.exists(inventory):
        with open(inventory, "w") as f:
            f.write("PRIMARY_DISK='/dev/disk/by-id/lab'\n")
            f.write("BUILD_NUMBER='lab'\n")
            f.write("INSTALLATION_UUID='%s'\n" % host_uuid)
            f.write("CONTROL_DOMAIN_UUID='%s'\n" % control_domain_uuid)
    return hdir
