"""Host plugins the simulator tests run through host.call_plugin."""

import os
import stat

DISPATCHING = r'''#!/usr/bin/env python3
"""Test plugin built on XenAPIPlugin.dispatch, like the product's."""
import json
import os
import sys
import time

import XenAPIPlugin


def echo(session, args):
    return json.dumps(args, sort_keys=True)


def fail(session, args):
    raise XenAPIPlugin.Failure("XSC_TEST_ERROR", ["first", "second"])


def boom(session, args):
    raise ValueError("bad thing")


def leave(session, args):
    sys.exit(3)


def number(session, args):
    return 42


def env(session, args):
    with open(os.environ["XSCONTAINER_INVENTORY"]) as f:
        inventory = f.read()
    this_host = inventory.split("INSTALLATION_UUID='")[1].split("'")[0]
    host_ref = session.xenapi.host.get_by_uuid(this_host)
    return json.dumps({
        "argv": len(sys.argv),
        "cwd": os.getcwd(),
        "env": {k: v for k, v in os.environ.items() if k.startswith("XSC")},
        "host_name": session.xenapi.host.get_name_label(host_ref),
        "inventory": inventory,
        "python": sys.executable,
    })


def callback(session, args):
    """Uses the caller's session: writes to a VM and reads it back."""
    vm = session.xenapi.VM.get_by_uuid(args["vmuuid"])
    session.xenapi.VM.add_to_other_config(vm, args["key"], args["value"])
    return session.xenapi.VM.get_other_config(vm)[args["key"]]


def nested(session, args):
    """A plugin that calls a plugin on another host, as forwarding does."""
    host = session.xenapi.host.get_by_uuid(args["host"])
    return "nested:" + session.xenapi.host.call_plugin(host, "dispatching", "env", {})


def sleep(session, args):
    time.sleep(float(args["seconds"]))
    return "slept"


XenAPIPlugin.dispatch({"echo": echo, "fail": fail, "boom": boom, "leave": leave,
                       "number": number, "env": env, "callback": callback,
                       "nested": nested, "sleep": sleep})
'''

CRASHING = """#!/bin/sh
echo partial output
echo something went wrong >&2
exit 3
"""

GARBAGE = """#!/bin/sh
echo this is not XML
"""

FAULT = """#!/usr/bin/env python3
import xmlrpc.client
print(xmlrpc.client.dumps(xmlrpc.client.Fault(7, "plugin fault"), methodresponse=True))
"""


def write_plugins(folder: str) -> None:
    os.makedirs(folder, exist_ok=True)
    for name, text, executable in (
        ("dispatching", DISPATCHING, True),
        ("crashing", CRASHING, True),
        ("garbage", GARBAGE, True),
        ("fault", FAULT, True),
        ("not-executable", GARBAGE, False),
    ):
        path = os.path.join(folder, name)
        with open(path, "w") as f:
            f.write(text)
        if executable:
            os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
