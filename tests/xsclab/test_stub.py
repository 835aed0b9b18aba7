"""The lab's XenAPIPlugin stand-in behaves like xapi-core's, on every
interpreter the product targets that this machine has (3.6 in .venv36)."""

import importlib.util
import os
import subprocess
import sys
import xmlrpc.client
from typing import Any, List, Tuple

import pytest

from xsclab.labenv import REPO, STUBS_DIR

PLUGIN = """
import sys
import XenAPIPlugin

def hello(session, args):
    return "hello " + args["name"] + " " + session._session

def fail(session, args):
    raise XenAPIPlugin.Failure("MY_CODE", ["p1", "p2"])

def crash(session, args):
    raise KeyError("k")

def leave(session, args):
    sys.exit(5)

XenAPIPlugin.dispatch({"hello": hello, "fail": fail, "crash": crash, "leave": leave})
"""
INTERPRETERS = [p for p in (sys.executable, os.path.join(REPO, ".venv36", "bin", "python"))
                if os.path.exists(p)]


def run(python: str, *argv: str) -> Tuple[int, str, str]:
    env = dict(os.environ, PYTHONPATH=STUBS_DIR)
    proc = subprocess.run([python, "-c", PLUGIN, *argv], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=30)
    return proc.returncode, proc.stdout, proc.stderr


def call(python: str, fn: str, args: Any) -> Tuple[int, Any]:
    rc, out, _ = run(python, xmlrpc.client.dumps(("OpaqueRef:caller", args), fn))
    (response,), method = xmlrpc.client.loads(out)
    assert method is None
    assert out.count("<methodResponse>") == 1
    return rc, response


@pytest.mark.parametrize("python", INTERPRETERS)
def test_dispatch(python: str) -> None:
    assert call(python, "hello", {"name": "x"}) == (
        0, {"Status": "Success", "Value": "hello x OpaqueRef:caller"})
    assert call(python, "fail", {}) == (
        0, {"Status": "Failure", "ErrorDescription": ["MY_CODE", "p1", "p2"]})
    assert call(python, "crash", {}) == (
        0, {"Status": "Failure",
            "ErrorDescription": ["XENAPI_PLUGIN_FAILURE", "crash", "KeyError", "'k'"]})
    assert call(python, "other", {}) == (
        0, {"Status": "Failure", "ErrorDescription": ["UNKNOWN_XENAPI_PLUGIN_FUNCTION", "other"]})


@pytest.mark.parametrize("python", INTERPRETERS)
def test_system_exit_and_bad_argv_are_not_caught(python: str) -> None:
    assert run(python, xmlrpc.client.dumps(("s", {}), "leave"))[:2] == (5, "")
    for argv in ([], ["a", "b"]):
        rc, out, err = run(python, *argv)
        assert rc != 0 and out == ""
        assert "Incorrect number of commandline arguments" in err


def test_messages_are_xml_rpc_responses() -> None:
    spec = importlib.util.spec_from_file_location("XenAPIPlugin",
                                                  os.path.join(STUBS_DIR, "XenAPIPlugin.py"))
    assert spec is not None and spec.loader is not None
    XenAPIPlugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(XenAPIPlugin)
    responses: List[Any] = [
        xmlrpc.client.loads(XenAPIPlugin.success_message("v")),
        xmlrpc.client.loads(XenAPIPlugin.failure_message(["C", "p"])),
    ]
    assert responses == [
        (({"Status": "Success", "Value": "v"},), None),
        (({"Status": "Failure", "ErrorDescription": ["C", "p"]},), None),
    ]
    failure = XenAPIPlugin.Failure("CODE", ["a"])
    assert failure.params == ["CODE", "a"]
    assert str(failure) == "['CODE', 'a']"
