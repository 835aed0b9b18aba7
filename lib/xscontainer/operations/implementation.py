"""Each Docker-backed plugin function, on an already connected Docker client.

`perform(op, client, ref, publish, options)` is what both paths run once they
hold a connected client and have checked the container reference and the
optional arguments (table.Operation.parse_options): the direct path
(containers.py, a client of its own) and the monitor (monitor/control.py,
its worker's live client). Reads return their XML, text or, with
format=json, JSON (jsonenc.py); lifecycle operations
return "" after `publish(client)` has made the new state visible, each path
publishing its own way. Docker's failures arrive as XSContainerErrors from
the client (docker_api.py) and pass through unchanged.
"""

import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional

from xscontainer import errors, jsonenc, logs, stats, xmlenc
from xscontainer.operations.table import (
    ALL_ARG,
    FORMAT_ARG,
    JSON,
    LIFECYCLE,
    SINCE_ARG,
    TAIL_ARG,
    TIMESTAMPS_ARG,
    Operation,
    Option,
)

if TYPE_CHECKING:  # the client is handed in; importing its module loads the Docker SDK
    from xscontainer.docker_api import DockerClient

Publish = Callable[["DockerClient"], None]
Options = Mapping[str, Option]
# get_stats: seconds between the two samples CPU % is computed from
STATS_INTERVAL = 1.0


def _json(options: Options) -> bool:
    return options.get(FORMAT_ARG) == JSON


def get_inspect(client: "DockerClient", ref: str, options: Options = {}) -> str:  # noqa: B006
    inspect = client.inspect(ref)
    return jsonenc.inspect(inspect) if _json(options) else xmlenc.docker_inspect(inspect)


def get_top(client: "DockerClient", ref: str, options: Options = {}) -> str:  # noqa: B006
    top = client.top(ref)
    return jsonenc.top(top) if _json(options) else xmlenc.docker_top(top)


def _listed(container: Any) -> bool:
    """Whether `docker ps` without -a lists the container: running or paused."""
    if not isinstance(container, Mapping):
        return False
    state = container.get("State")
    if isinstance(state, str):
        return state.lower() in ("running", "paused")
    status = container.get("Status")
    return isinstance(status, str) and (status == "Up" or status.startswith("Up "))


def get_ps(client: "DockerClient", ref: str, options: Options = {}) -> str:  # noqa: B006
    """The container list: what the monitor publishes as docker_ps (every
    container); all=false: the running and paused ones only."""
    containers = client.ps()
    if options.get(ALL_ARG) is False:
        containers = [c for c in containers if _listed(c)]
    return jsonenc.ps(containers) if _json(options) else xmlenc.docker_ps(containers)


def get_stats(client: "DockerClient", ref: str, options: Options = {}) -> str:  # noqa: B006
    """One stats row for the container `ref`, or for every running one ("")."""
    if ref:
        targets = [(ref, "")]
    else:
        entries = xmlenc.ps_entries([c for c in client.ps() if _listed(c)])
        targets = [(str(e["id"]), str(e["names"])) for e in entries]
    first: Dict[str, Mapping[str, Any]] = {}
    started = time.monotonic()
    for target, _name in targets:
        sample = _sample(client, target, bool(ref))
        if sample is not None:
            first[target] = sample
    again = [t for t, _name in targets if t in first and not stats.has_previous(first[t])]
    second: Dict[str, Mapping[str, Any]] = {}
    if again:
        time.sleep(max(0.0, started + STATS_INTERVAL - time.monotonic()))
        for target in again:
            sample = _sample(client, target, bool(ref))
            if sample is not None:
                second[target] = sample
    rows: List[Dict[str, Any]] = []
    for target, name in targets:
        if target in second:
            rows.append(stats.row(second[target], first[target], target if not ref else "",
                                  name))
        elif target in first:
            rows.append(stats.row(first[target], None, target if not ref else "", name))
    if ref and rows and not (rows[0]["id"] and rows[0]["name"]):
        # Docker 26 and newer leave id and name out of a one-shot sample
        _identify(client, ref, rows[0])
    return jsonenc.stats(rows) if _json(options) else xmlenc.docker_stats(rows)


def _identify(client: "DockerClient", ref: str, row: Dict[str, Any]) -> None:
    """The container's full id and name in `row`, from its inspect document."""
    inspect = client.inspect(ref)
    full_id, name = inspect.get("Id"), inspect.get("Name")
    if not row["id"] and isinstance(full_id, str):
        row["id"] = full_id
    if not row["name"] and isinstance(name, str):
        row["name"] = name[1:] if name.startswith("/") else name


def _sample(client: "DockerClient", target: str, named: bool) -> Optional[Mapping[str, Any]]:
    """A stats sample; None for a container of the list that is gone meanwhile."""
    try:
        return client.stats(target)
    except errors.NoSuchContainer:
        if named:
            raise
        return None


def get_logs(client: "DockerClient", ref: str, options: Options = {}) -> str:  # noqa: B006
    """The container's last `tail` lines (from `since`), the newest within
    logs.MAX_LOG_BYTES; text as `docker logs` prints it, or JSON."""
    collector = logs.Collector()
    tail = options.get(TAIL_ARG)
    since = options.get(SINCE_ARG)
    timestamps = bool(options.get(TIMESTAMPS_ARG))
    client.logs(ref, collector.feed, tail if isinstance(tail, int) else 100,
                since if isinstance(since, str) else None, timestamps)
    collector.finish()
    return collector.json(ref, timestamps) if _json(options) else collector.text()


def lifecycle(client: "DockerClient", op: Operation, ref: str,
              publish: Optional[Publish] = None) -> str:
    client.lifecycle(op.name, ref)
    if publish is not None:
        publish(client)
    return ""


# the read operations by name: each function above is named as its operation (a
# unit test checks that every read of the table has one)
READS: Dict[str, Callable[["DockerClient", str, Options], str]] = {
    fn.__name__: fn for fn in (get_inspect, get_top, get_ps, get_stats, get_logs)
}


def perform(op: Operation, client: "DockerClient", ref: str,
            publish: Optional[Publish] = None, options: Optional[Options] = None) -> str:
    """The payload of `op` on `ref` (checked by the caller; "" when the operation
    names no container) with its parsed `options`, without `True`.

    `publish` runs after a lifecycle operation succeeded (not after a read).
    """
    if op.kind == LIFECYCLE:
        return lifecycle(client, op, ref, publish)
    return READS[op.name](client, ref, options if options is not None else {})

