"""Lab stand-in for xapi-core's XenAPIPlugin module (python3/examples/XenAPIPlugin.py
in xapi-project/xen-api), which a real dom0 provides and PyPI does not.

Same contract: Failure(code, params), success_message, failure_message and
dispatch(fn_table). The one lab difference: the session handed to plugin
functions talks to the socket named by XSCONTAINER_XAPI_SOCKET (the simulator)
when that variable is set, instead of the hard-coded /var/lib/xcp/xapi.

Like xapi's module it decodes nothing itself: dispatch hands sys.argv[1], as the
interpreter decoded it, to xmlrpc.client.loads and prints the reply with print().
Under Python 3.6 with no locale (how xapi starts a plugin on a CentOS 7 dom0) a
non-ASCII argument or result then fails here exactly as on a host, unless the
plugin's entry point fixed argv and stdout first (xscontainer.wireio); the
unfixed case is tests/unit/test_wireio.py's.

Runs inside plugin processes, which may be Python 3.6. Tests only; never shipped.
"""

import os
import socket
import sys
import xmlrpc.client

import XenAPI


class Failure(Exception):
    """A plugin-defined API error: the caller sees `code` with `params`."""

    def __init__(self, code, params):
        Exception.__init__(self)
        self.params = [code, *params]

    def __str__(self):
        return str(self.params)


def success_message(result):
    return xmlrpc.client.dumps(({"Status": "Success", "Value": result},), "", True)


def failure_message(description):
    return xmlrpc.client.dumps(({"Status": "Failure", "ErrorDescription": description},), "", True)


class _SocketConnection(XenAPI.UDSHTTPConnection):
    socket_path = ""

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.socket_path)


class _SocketTransport(XenAPI.UDSTransport):
    """XenAPI's UDSTransport, aimed at a given socket path (which, unlike the
    host part of xapi_local()'s URL, may contain underscores)."""

    def __init__(self, path):
        XenAPI.UDSTransport.__init__(self)
        self._path = path

    def make_connection(self, host):
        self._extra_headers = []
        self.with_tracecontext()
        self.with_originator()
        if self._connection and host == self._connection[0]:
            return self._connection[1]
        connection = _SocketConnection(host)
        connection.socket_path = self._path
        self._connection = host, connection
        return connection


def _local_session():
    path = os.environ.get("XSCONTAINER_XAPI_SOCKET")
    if not path:
        return XenAPI.xapi_local()
    return XenAPI.Session("http://_var_lib_xcp_xapi/", transport=_SocketTransport(path))


def dispatch(fn_table):
    if len(sys.argv) != 2:
        raise Exception("Incorrect number of commandline arguments")
    params, methodname = xmlrpc.client.loads(sys.argv[1])
    session_id = params[0]
    args = params[1]
    if methodname in fn_table:
        x = _local_session()
        x._session = session_id
        try:
            result = fn_table[methodname](x, args)
            print(success_message(result))
        except Failure as e:
            print(failure_message(e.params))
        except Exception as e:  # SystemExit and KeyboardInterrupt pass through
            print(failure_message(["XENAPI_PLUGIN_FAILURE", methodname,
                                   e.__class__.__name__, str(e)]))
    else:
        print(failure_message(["UNKNOWN_XENAPI_PLUGIN_FUNCTION", methodname]))
