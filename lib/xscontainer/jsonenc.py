"""The answers of format=json: what a script reads instead of XML or text.

Each is one JSON object with stable keys (README, "format=json" documents
them); strings are ASCII with \\u escapes, so the answer reads the same in
every locale and XML-RPC carries it unchanged. Size limits are xmlenc's for
the same answer: a list that would pass it keeps its first items and
`not_shown` counts the rest; a single document (inspect) past it is
XSCONTAINER_RESPONSE_TOO_LARGE. Values nested deeper than xmlenc.MAX_DEPTH are
XSCONTAINER_DOCKER_MALFORMED_REPLY, as in XML.

    get_inspect  Docker's inspect object as the engine sent it
    get_top      {"titles": [...], "processes": [{title: cell}], "not_shown": n}
    get_ps       {"containers": [entry], "not_shown": n}   (entry: docker_ps's fields)
    get_stats    {"containers": [row], "not_shown": n}     (row: stats.row's keys)
    get_logs     {"container", "lines": [{"stream", "text"[, "timestamp"]}],
                  "truncated", "not_shown"}                 (logs.Collector.json)
    diagnose     {"vm", "ok", "steps": [{"title", "status", "detail"}], "result"}
"""

import json
from typing import Any, Dict, List, Mapping, Sequence

from xscontainer import errors, xmlenc
from xscontainer.diagnose_report import Report

_ROOM = 256  # kept for the keys around a list


def dumps(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=True, allow_nan=False)
    except ValueError as exc:  # NaN or Infinity, which Python's decoder accepts
        raise errors.MalformedReply(
            "The Docker engine's reply holds a number JSON cannot carry (%s); check the engine "
            "in the VM." % exc) from exc


def _check_depth(value: Any) -> None:
    """MalformedReply when `value` nests deeper than xmlenc.MAX_DEPTH."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, tuple, Mapping)):
            if depth >= xmlenc.MAX_DEPTH:
                raise xmlenc._too_deep()
            children = item.values() if isinstance(item, Mapping) else item
            stack.extend((child, depth + 1) for child in children)


def _bounded(document: Dict[str, Any], key: str, items: Sequence[Any], limit: int) -> str:
    """`document` with as many of `items` under `key` as fit in `limit` characters,
    and `not_shown` counting the others."""
    _check_depth(list(items))
    size = len(dumps(document)) + _ROOM
    kept = 0
    for item in items:
        size += len(dumps(item)) + 2
        if size > limit:
            break
        kept += 1
    document[key] = list(items[:kept])
    document["not_shown"] = len(items) - kept
    return dumps(document)


def inspect(obj: Mapping[str, Any]) -> str:
    _check_depth(obj)
    text = dumps(obj)
    if len(text) > xmlenc.MAX_DOCKER_INSPECT:
        raise xmlenc._too_large("container's inspect document", xmlenc.MAX_DOCKER_INSPECT)
    return text


def top(top_obj: Mapping[str, Any]) -> str:
    titles, processes = xmlenc.top_processes(top_obj)
    return _bounded({"titles": titles}, "processes", processes, xmlenc.MAX_DOCKER_TOP)


def ps(containers: Sequence[Any]) -> str:
    return _bounded({}, "containers", xmlenc.ps_entries(containers), xmlenc.MAX_DOCKER_PS)


def stats(rows: Sequence[Mapping[str, Any]]) -> str:
    return _bounded({}, "containers", list(rows), xmlenc.MAX_DOCKER_STATS)


_STATUS = {True: "ok", False: "failed", None: "skipped"}


def diagnosis(report: Report) -> str:
    steps: List[Dict[str, Any]] = []
    for step in report.steps:
        status = "warning" if step.ok and step.warning else _STATUS[step.ok]
        steps.append({"title": step.title, "status": status, "detail": step.detail})
    result = report.text().splitlines()[-1]
    return dumps({"vm": report.where, "ok": report.ok, "steps": steps, "result": result})
