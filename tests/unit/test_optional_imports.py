"""No optional module that dom0 does not need is imported or bundled.

paramiko imports invoke (about 0.1 s: a tenth of a direct plugin call) and
gssapi when they are installed; xscontainer uses neither. The development
environment has invoke installed (paramiko 5.1 requires it), so the first test
shows the import is avoided even where the module is there.
"""

import os
import re
import subprocess
import sys

import xscontainer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Modules that only optional features of the bundled libraries use
NOT_NEEDED = {"invoke", "gssapi", "pyasn1", "pywin32", "pypiwin32", "pywin32-ctypes",
              "sspi", "paramiko-invoke"}


def _imported_after(code: str) -> set:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([os.path.join(REPO, "lib"),
                                         os.path.join(REPO, "tests", "lab", "stubs")])
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys\nprint(' '.join(k for k, v in "
         "sys.modules.items() if v is not None))"],
        stdout=subprocess.PIPE, env=env, check=True, timeout=120, universal_newlines=True)
    return set(out.stdout.split())


def test_the_direct_path_and_the_monitor_import_neither_invoke_nor_gssapi():
    installed = subprocess.run([sys.executable, "-c", "import invoke"],
                               stderr=subprocess.DEVNULL, check=False).returncode == 0
    modules = _imported_after(
        "import xscontainer.containers, xscontainer.plugin, xscontainer.monitor.daemon\n"
        "import xscontainer.transport.ssh, xscontainer.transport.tls, paramiko, docker")
    assert "paramiko" in modules and "docker" in modules
    found = {m for m in modules if m.split(".")[0] in xscontainer.OPTIONAL_IMPORTS_HIDDEN}
    assert found == set(), "imported: %s (installed: invoke %s)" % (sorted(found), installed)


def test_the_front_end_imports_almost_nothing():
    before = _imported_after("pass")
    after = _imported_after("import xscontainer.frontend")
    assert after - before == {"xscontainer", "xscontainer.frontend", "xscontainer.paths",
                              "_socket"} - before


def _names(path: str) -> set:
    names = set()
    with open(os.path.join(REPO, path)) as f:
        for line in f:
            match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:[=<>!~;\[]|$)", line)
            if match and not line.lstrip().startswith(("#", "--")):
                names.add(match.group(1).lower().replace("_", "-"))
    return names


def test_the_bundled_and_required_libraries_do_not_pull_optional_modules_in():
    bundled = _names("packaging/pylibs-requirements.txt")
    assert {"paramiko", "docker", "cryptography", "pyopenssl"} <= bundled
    # the XCP-ng 9 flavour's bundle (Python 3.12, the newest releases)
    bundled312 = _names("packaging/pylibs-requirements-py312.txt")
    assert {"paramiko", "docker", "cryptography", "pyopenssl"} <= bundled312
    assert bundled312 & NOT_NEEDED == set()
    runtime = _names("requirements/runtime.txt")
    assert {"paramiko", "docker"} <= runtime
    assert bundled & NOT_NEEDED == set()
    assert runtime & NOT_NEEDED == set()
    with open(os.path.join(REPO, "xscontainer.spec")) as f:
        spec = f.read().lower()
    with open(os.path.join(REPO, "packaging", "xscontainer-pylibs.spec")) as f:
        spec += f.read().lower()
    for name in NOT_NEEDED:
        assert not re.search(r"requires:.*\b%s\b" % re.escape(name), spec), name


# What a direct plugin call loads in its preload thread (containers.PRELOADED)
# while it reads XAPI and connects: the modules that read XAPI must not pull
# any of them in, and connecting (ssh.py) needs paramiko only.
SSH_LIBRARIES = ("paramiko", "cryptography", "nacl", "bcrypt")
HTTP_LIBRARIES = ("requests", "urllib3", "docker", "charset_normalizer", "idna", "certifi")


def _roots(modules: set, roots: tuple) -> list:
    return sorted(m for m in modules if m.split(".")[0] in roots)


def test_reading_the_vm_and_the_pool_key_loads_no_ssh_nor_http_library():
    modules = _imported_after(
        "import xscontainer.plugin, xscontainer.containers, xscontainer.guest\n"
        "import xscontainer.apiversions, xscontainer.poolkey, xscontainer.transport")
    assert "xscontainer.guest" in modules
    assert _roots(modules, SSH_LIBRARIES + HTTP_LIBRARIES) == []
    assert "xscontainer.transport.ssh" not in modules
    assert "xscontainer.transport.tls" not in modules  # TLS mode's, loaded when used


def test_connecting_over_ssh_loads_neither_requests_nor_the_docker_sdk():
    modules = _imported_after("import xscontainer.guest, xscontainer.transport.ssh")
    assert "paramiko" in modules
    assert _roots(modules, HTTP_LIBRARIES) == []


def test_the_preload_thread_loads_paramiko_the_docker_sdk_and_the_encoders():
    modules = _imported_after(
        "import threading\n"
        "from xscontainer import containers\n"
        "containers.preload()\n"
        "for t in threading.enumerate():\n"
        "    if t.name == 'xscontainer-preload':\n"
        "        t.join(60)\n")
    assert {"paramiko", "docker", "requests", "xscontainer.transport.ssh",
            "xscontainer.docker_api", "xscontainer.xmlenc",
            "xscontainer.operations.implementation", "xscontainer.transport.sshbridge"} - \
        modules == set()
