"""xapi's two wire formats for one API result.

Handlers return plain Python values plus two markers: `Int64` for xapi's
int64 fields and `xmlrpc.client.DateTime` for dates. Each protocol writes them
as xapi does:

* XML-RPC (any POST path but /jsonrpc): one line, no whitespace between
  elements, `<?xml version="1.0"?>` first. Strings and int64 values are
  untyped `<value>text</value>` (so clients read int64 fields as strings),
  int32 counts `<i4>`, booleans `<boolean>1|0</boolean>`, doubles with 16
  significant digits, dates `<dateTime.iso8601>`, `<nil/>` for None. Text
  escapes `& < > "` and drops the control characters XML 1.0 forbids.
* JSON-RPC (POST /jsonrpc): int64 values are JSON numbers, dates are strings
  ("20260101T00:00:00Z"). A request with `"jsonrpc": "2.0"` gets
  `{"jsonrpc": "2.0", "result": V, "id": ID}` or, on failure,
  `{"jsonrpc": "2.0", "error": {"code": 1, "message": CODE, "data": [PARAMS]},
  "id": ID}`; a request without it (JSON-RPC 1.0) gets
  `{"result": V, "error": null, "id": ID}` or
  `{"result": null, "error": [CODE, PARAMS...], "id": ID}`.
  session.login_with_password's result is the session ref itself, as for
  every other call: no Status/Value struct on this protocol.
"""

import json
import re
import xmlrpc.client
from typing import Any, Dict, List, Optional, Tuple

INT32 = (-(2 ** 31), 2 ** 31 - 1)
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}
_ESCAPE = re.compile('[&<>"]')

# JSON-RPC 2.0's own error codes, for requests that never reach the API
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
# xapi puts 1 in error.code of every API failure (clients read message and data)
XAPI_ERROR_CODE = 1


class Int64:
    """An int64 field's value (stored as a decimal string)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Int64) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return "Int64(%r)" % self.text


def _text(value: str) -> str:
    return _ESCAPE.sub(lambda m: _ESCAPES[m.group()], _FORBIDDEN.sub("", value))


def _xml_value(value: Any, out: List[str]) -> None:
    if value is None:
        out.append("<value><nil/></value>")
    elif isinstance(value, bool):
        out.append("<value><boolean>%d</boolean></value>" % value)
    elif isinstance(value, str):
        out.append("<value>%s</value>" % _text(value))
    elif isinstance(value, Int64):
        out.append("<value>%s</value>" % value.text)
    elif isinstance(value, int):
        if INT32[0] <= value <= INT32[1]:
            out.append("<value><i4>%d</i4></value>" % value)
        else:  # as xapi writes an int64
            out.append("<value>%d</value>" % value)
    elif isinstance(value, float):
        out.append("<value><double>%.16g</double></value>" % value)
    elif isinstance(value, xmlrpc.client.DateTime):
        out.append("<value><dateTime.iso8601>%s</dateTime.iso8601></value>" % value.value)
    elif isinstance(value, (list, tuple)):
        out.append("<value><array><data>")
        for item in value:
            _xml_value(item, out)
        out.append("</data></array></value>")
    elif isinstance(value, dict):
        out.append("<value><struct>")
        for key, item in value.items():
            out.append("<member><name>%s</name>" % _text(str(key)))
            _xml_value(item, out)
            out.append("</member>")
        out.append("</struct></value>")
    else:
        raise TypeError("cannot write %s to XML-RPC" % type(value).__name__)


def xmlrpc_response(result: Any) -> bytes:
    """The methodResponse carrying `result` (the Status struct), on one line."""
    out = ['<?xml version="1.0"?><methodResponse><params><param>']
    _xml_value(result, out)
    out.append("</param></params></methodResponse>")
    return "".join(out).encode("utf-8")


def json_value(value: Any) -> Any:
    """A result in JSON-RPC's types."""
    if isinstance(value, Int64):
        return int(value.text)
    if isinstance(value, xmlrpc.client.DateTime):
        return value.value
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    return value


class JsonRequest:
    """One JSON-RPC call: its version ("1.0" or "2.0"), id, method and params."""

    def __init__(self, version: str, id: Any, method: str, params: List[Any]) -> None:
        self.version = version
        self.id = id
        self.method = method
        self.params = params

    def answer(self, response: Dict[str, Any]) -> bytes:
        """The reply to this request for the API's {Status, Value | ErrorDescription}."""
        if response["Status"] == "Success":
            value = json_value(response["Value"])
            if self.version == "2.0":
                reply = {"jsonrpc": "2.0", "result": value, "id": self.id}
            else:
                reply = {"result": value, "error": None, "id": self.id}
        else:
            description = list(response["ErrorDescription"])
            if self.version == "2.0":
                error = {"code": XAPI_ERROR_CODE, "message": description[0],
                         "data": description[1:]}
                reply = {"jsonrpc": "2.0", "error": error, "id": self.id}
            else:
                reply = {"result": None, "error": description, "id": self.id}
        return json.dumps(reply, separators=(",", ":")).encode("utf-8")


def protocol_error(code: int, message: str, id: Any = None) -> bytes:
    """A JSON-RPC 2.0 error for a body that is not a usable request."""
    reply = {"jsonrpc": "2.0", "error": {"code": code, "message": message}, "id": id}
    return json.dumps(reply, separators=(",", ":")).encode("utf-8")


def parse_json_request(body: bytes) -> Tuple[Optional[JsonRequest], bytes]:
    """(the request, b"") or (None, the error reply to send)."""
    try:
        message = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None, protocol_error(PARSE_ERROR, "Parse error")
    if not isinstance(message, dict):
        return None, protocol_error(INVALID_REQUEST, "Invalid Request")
    id = message.get("id")
    if message.get("jsonrpc") not in (None, "2.0"):
        return None, protocol_error(INVALID_REQUEST, "Invalid field 'jsonrpc'", id)
    version = "2.0" if message.get("jsonrpc") == "2.0" else "1.0"
    method = message.get("method")
    params = message.get("params")
    if version == "2.0" and params is None:
        params = []
    elif version == "2.0" and isinstance(params, dict):  # by-name: one struct argument
        params = [params]
    if not isinstance(method, str) or not isinstance(params, list):
        return None, protocol_error(INVALID_REQUEST, "Invalid Request", id)
    if id is None or isinstance(id, bool) or not isinstance(id, (int, float, str)):
        # xapi answers every call and needs an id to do so: no notifications
        return None, protocol_error(INVALID_REQUEST, "Invalid field 'id'", id)
    return JsonRequest(version, id, method, params), b""
