"""Text in and out of dom0 programs in any locale (xscontainer.wireio).

The plugin runs here as xapi runs it on a CentOS 7 based dom0: PATH and only the
variables the test needs, no locale variable (Python 3.6 then decodes argv and
encodes stdout as ASCII), the methodCall in argv[1] as UTF-8 bytes, the lab's
XenAPIPlugin stand-in (which decodes and prints exactly as xapi's module does).
The same entry point without wireio fails there, which is what this guards.
"""

import os
import subprocess
import sys
import xmlrpc.client
from typing import Any, Dict, Tuple

import pytest

from xscontainer import wireio

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLUGIN = os.path.join(REPO, "plugins", "xscontainer")
INTERPRETERS = [p for p in (sys.executable, os.path.join(REPO, ".venv36", "bin", "python"))
                if os.path.exists(p)]

# The entry point as it was before wireio: what xapi's module sees unaided.
UNFIXED = """
import XenAPIPlugin
from xscontainer import plugin
XenAPIPlugin.dispatch(plugin.handlers())
"""


def bare_env(tmp_path: Any) -> Dict[str, str]:
    return {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "PYTHONPATH": os.pathsep.join([os.path.join(REPO, "lib"),
                                       os.path.join(REPO, "tests", "lab", "stubs")]),
        "XSCONTAINER_XAPI_SOCKET": str(tmp_path / "no-xapi-here"),
        "XSCONTAINER_LOG_FILE": str(tmp_path / "xscontainer.log"),
        "XSCONTAINER_INVENTORY": str(tmp_path / "inventory"),
        "XSCONTAINER_FILES_DIR": str(tmp_path),
    }


def run(python: str, tmp_path: Any, program: list, fn: str,
        args: Dict[str, str]) -> Tuple[int, bytes, bytes]:
    call = xmlrpc.client.dumps(("OpaqueRef:x", args), fn)
    proc = subprocess.run([python, *program, call.encode("utf-8")], env=bare_env(tmp_path),
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, cwd="/", timeout=60)
    return proc.returncode, proc.stdout, proc.stderr


def response(out: bytes) -> Any:
    (value,), method = xmlrpc.client.loads(out.decode("utf-8"))
    assert method is None
    return value


@pytest.mark.parametrize("python", INTERPRETERS)
def test_non_ascii_method_and_arguments_in_no_locale(python: str, tmp_path: Any) -> None:
    rc, out, err = run(python, tmp_path, [PLUGIN], "nosuché ☕", {"clé": "café ☕"})
    assert (rc, err) == (0, b"")
    assert response(out) == {"Status": "Failure", "ErrorDescription": [
        "UNKNOWN_XENAPI_PLUGIN_FUNCTION", "nosuché ☕"]}
    # a known function, a non-ASCII key beside a missing one: our own code, readable
    rc, out, err = run(python, tmp_path, [PLUGIN], "get_inspect", {"clé ☕": "valeur é"})
    assert (rc, err) == (0, b"")
    description = response(out)["ErrorDescription"]
    assert description[0] == "XSCONTAINER_INVALID_ARGUMENT"
    assert "vmuuid" in description[1]


PYTHON36 = os.path.join(REPO, ".venv36", "bin", "python")


@pytest.mark.skipif(not os.path.exists(PYTHON36), reason="no .venv36 here (make deps36)")
def test_the_unfixed_entry_point_fails_on_python36(tmp_path: Any) -> None:
    python = PYTHON36
    rc, out, err = run(python, tmp_path, ["-c", UNFIXED], "nosuché", {})
    assert rc != 0 and out == b""
    assert b"surrogates not allowed" in err


def test_utf8_arg_undoes_the_locale_decoding() -> None:
    # what Python 3.6 makes of b"caf\xc3\xa9" in an ASCII locale
    assert wireio.utf8_arg("caf\udcc3\udca9") == "café"
    assert wireio.utf8_arg("café ☕") == "café ☕"
    assert wireio.utf8_arg("bad \udcff byte") == "bad \ufffd byte"


def test_xml_illegal_characters_are_dropped() -> None:
    assert wireio.drop_xml_illegal("a\tb\nc\rd") == "a\tb\nc\rd"
    assert wireio.drop_xml_illegal("a\x00b\x01c\x1b[0m\ufffe\ud800é") == "abc[0mé"
    argv = ["prog", "caf\udcc3\udca9\x07"]
    assert wireio.plugin_argv(argv) is argv and argv == ["prog", "café"]


@pytest.mark.skipif(not os.path.exists(PYTHON36), reason="no .venv36 here (make deps36)")
def test_library_warnings_are_silenced_before_the_imports(tmp_path: Any) -> None:
    """cryptography 40 warns about Python 3.6 on import (through paramiko): xapi
    would log it from every plugin call. The entry points silence it."""
    def stderr(code: str) -> bytes:
        return subprocess.run([PYTHON36, "-c", code], env=bare_env(tmp_path),
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=60).stderr

    assert b"CryptographyDeprecationWarning" in stderr("import paramiko")
    assert stderr("from xscontainer import wireio\nwireio.plugin_entry()\nimport paramiko") == b""
    assert stderr("from xscontainer import wireio\nwireio.command_entry()\nimport paramiko") == b""
