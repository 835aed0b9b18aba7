"""host.call_plugin, run the way xapi runs a plugin (ocaml/xapi/xapi_plugins.ml):

* the file must be directly in the plugins folder, else XENAPI_MISSING_PLUGIN;
* the file itself is executed (its shebang) with one argument, the XML-RPC
  methodCall `fn(session_ref, args)`, in the dom0 environment of the host
  (a `#!/usr/bin/python3` shebang means the lab's dom0 interpreter: labenv.dom0_argv);
* exit status: killed by a signal -> XENAPI_PLUGIN_FAILURE ["signal: SIGx",
  stdout, stderr]; non-zero -> ["non-zero exit", stdout, stderr];
* stdout is one methodResponse: {Status: Success, Value: <string>} gives the
  string; {Status: Failure, ErrorDescription: [code, params...]} raises that
  error; a <fault> gives ["fault", code, reason]; unparsable output gives
  ["failed to parse plugin output", stdout, error]; anything else gives
  ["unexpected XMLRPC result", stdout].

Whatever a plugin writes on stderr is appended to `<lab>/plugin-stderr.log`.

xapi sets no time limit; the lab kills a plugin after the configured timeout
(SIGKILL to its process group), which then reads as "signal: SIGKILL".
"""

import os
import signal
import subprocess
import threading
import xmlrpc.client
from typing import Any, Set
from xml.parsers.expat import ExpatError

from .. import labenv
from .api import Api, Call
from .errors import ApiError
from .schema import MAP, Field


def _failure(*params: object) -> ApiError:
    return ApiError("XENAPI_PLUGIN_FAILURE", *params)


class Running:
    """The plugin processes in flight, so that a stopping simulator ends them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._procs: Set[subprocess.Popen] = set()

    def add(self, proc: subprocess.Popen) -> None:
        with self._lock:
            self._procs.add(proc)

    def discard(self, proc: subprocess.Popen) -> None:
        with self._lock:
            self._procs.discard(proc)

    def kill_all(self) -> None:
        with self._lock:
            procs = list(self._procs)
        for proc in procs:
            kill_group(proc)


RUNNING = Running()


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL a plugin and whatever it started (it leads its own session)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def parse_output(out: str) -> str:
    try:
        params, method = xmlrpc.client.loads(out)
    except xmlrpc.client.Fault as fault:
        raise _failure("fault", fault.faultCode, fault.faultString) from None
    except (ExpatError, ValueError, TypeError, IndexError) as e:
        raise _failure("failed to parse plugin output", out, str(e)) from None
    result = params[0] if method is None and len(params) == 1 else None
    if isinstance(result, dict):
        status = result.get("Status")
        value = result.get("Value")
        if status == "Success" and isinstance(value, str):
            return value
        description = result.get("ErrorDescription")
        if (status == "Failure" and isinstance(description, list) and description
                and all(isinstance(d, str) for d in description)):
            raise ApiError(description[0], *description[1:])
    raise _failure("unexpected XMLRPC result", out)


def stderr_log() -> str:
    """Where the lab keeps what plugins wrote on stderr (xapi logs it too): a
    normal call writes nothing there."""
    return os.path.join(labenv.lab_dir(), "plugin-stderr.log")


def record_stderr(plugin: str, fn: str, returncode: int, err: str) -> None:
    try:
        with open(stderr_log(), "a", encoding="utf-8") as f:
            f.write("== %s %s (exit %s)\n%s\n" % (plugin, fn, returncode, err.rstrip("\n")))
    except OSError:
        pass


def run(plugins_dir: str, host_uuid: str, session: str, *, plugin: str, fn: str,
        args: dict, timeout: float) -> str:
    try:
        present = plugin in os.listdir(plugins_dir)
    except OSError:
        present = False
    if not present:
        raise ApiError("XENAPI_MISSING_PLUGIN", plugin)
    request = xmlrpc.client.dumps((session, args), fn)
    env = labenv.dom0_env(host_uuid)
    try:
        proc = subprocess.Popen(
            labenv.dom0_argv([os.path.join(plugins_dir, plugin), request], env),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=env, cwd="/", start_new_session=True,
        )
    except OSError as e:  # not executable, bad interpreter: exec fails in xapi's child
        raise _failure("non-zero exit", "", str(e)) from None
    RUNNING.add(proc)
    try:
        try:
            out_b, err_b = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            out_b, err_b = proc.communicate()
    finally:
        RUNNING.discard(proc)
    out = out_b.decode("utf-8", "replace")
    err = err_b.decode("utf-8", "replace")
    if err_b:
        record_stderr(plugin, fn, proc.returncode, err)
    if proc.returncode < 0:
        raise _failure("signal: %s" % signal.Signals(-proc.returncode).name, out, err)
    if proc.returncode > 0:
        raise _failure("non-zero exit", out, err)
    return parse_output(out)


def register(api: Api) -> None:
    @api.method("host.call_plugin", locked=False)
    def call_plugin(call: Call, host: Any, plugin: Any, fn: Any, args: Any) -> str:
        with call.store.lock:
            host_uuid = call.store.get("host", host)["uuid"]
        for name, value in (("plugin", plugin), ("fn", fn)):
            if not isinstance(value, str):
                raise ApiError("FIELD_TYPE_ERROR", name)
        args = Field("args", MAP).coerce(args)
        return run(call.config.plugins_dir, host_uuid, call.session, plugin=plugin, fn=fn,
                   args=args, timeout=call.config.plugin_timeout)
