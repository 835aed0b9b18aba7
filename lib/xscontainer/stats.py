"""One `docker stats --no-stream` row from the engine's stats samples.

`GET /containers/{id}/stats?stream=false&one-shot=true` answers at once with
one sample; `docker stats` computes CPU % from two: the container's CPU time
used between them over the whole system's CPU time between them, times the
number of online CPUs (cpu_stats against precpu_stats). An engine that fills
precpu_stats itself (an API older than 1.41 ignores one-shot; Podman may) is
used as it is; otherwise get_stats takes a second sample a second after the
first and computes from the pair, exactly as the CLI does from its pair.

Memory is the CLI's: usage minus the inactive file cache
(`total_inactive_file` on cgroup v1, `inactive_file` on cgroup v2) when that is
smaller than usage; percent of the limit. Network I/O sums every interface's
received and sent bytes, block I/O the read and write bytes of
io_service_bytes_recursive; PIDs is pids_stats.current. Values of the wrong
type (a hostile engine) count as 0.
"""

from typing import Any, Dict, Mapping, Optional, Tuple


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _num(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0
    return int(value)


def has_previous(sample: Mapping[str, Any]) -> bool:
    """Whether the sample carries a previous CPU reading to compute CPU % from."""
    pre = _map(sample.get("precpu_stats"))
    return _num(pre.get("system_cpu_usage")) > 0 and \
        _num(_map(pre.get("cpu_usage")).get("total_usage")) > 0


def cpu_percent(cpu: Mapping[str, Any], previous: Mapping[str, Any]) -> float:
    """CPU % between two cpu_stats readings, as `docker stats` computes it."""
    cpu_delta = _num(_map(cpu.get("cpu_usage")).get("total_usage")) - \
        _num(_map(previous.get("cpu_usage")).get("total_usage"))
    system_delta = _num(cpu.get("system_cpu_usage")) - _num(previous.get("system_cpu_usage"))
    online = _num(cpu.get("online_cpus"))
    if online == 0:
        percpu = _map(cpu.get("cpu_usage")).get("percpu_usage")
        online = len(percpu) if isinstance(percpu, list) else 0
    if system_delta > 0 and cpu_delta > 0:
        return cpu_delta / system_delta * online * 100.0
    return 0.0


def memory(memory_stats: Mapping[str, Any]) -> Tuple[int, int]:
    """(usage without the inactive file cache, limit) in bytes, as the CLI shows them."""
    usage = _num(memory_stats.get("usage"))
    detail = _map(memory_stats.get("stats"))
    if "total_inactive_file" in detail and _num(detail["total_inactive_file"]) < usage:  # v1
        usage -= _num(detail["total_inactive_file"])
    elif _num(detail.get("inactive_file")) < usage:  # v2
        usage -= _num(detail.get("inactive_file"))
    return usage, _num(memory_stats.get("limit"))


def network(sample: Mapping[str, Any]) -> Tuple[int, int]:
    """(received, sent) bytes over every interface."""
    rx = tx = 0
    for interface in _map(sample.get("networks")).values():
        rx += _num(_map(interface).get("rx_bytes"))
        tx += _num(_map(interface).get("tx_bytes"))
    return rx, tx


def block_io(sample: Mapping[str, Any]) -> Tuple[int, int]:
    """(read, written) bytes, from io_service_bytes_recursive."""
    read = write = 0
    entries = _map(sample.get("blkio_stats")).get("io_service_bytes_recursive")
    for entry in entries if isinstance(entries, list) else []:
        op = _map(entry).get("op")
        if isinstance(op, str) and op[:1] in ("r", "R"):
            read += _num(_map(entry).get("value"))
        elif isinstance(op, str) and op[:1] in ("w", "W"):
            write += _num(_map(entry).get("value"))
    return read, write


def _name(sample: Mapping[str, Any]) -> str:
    name = sample.get("name")
    if not isinstance(name, str):
        return ""
    return name[1:] if name.startswith("/") else name


def row(sample: Mapping[str, Any], previous: Optional[Mapping[str, Any]] = None,
        container_id: str = "", name: str = "") -> Dict[str, Any]:
    """One container's row: the keys of get_stats' answer, in this order.

    `previous` is an earlier sample of the same container; without one the
    sample's own precpu_stats is the previous reading.
    """
    cpu = _map(sample.get("cpu_stats"))
    before = _map(previous.get("cpu_stats")) if previous is not None \
        else _map(sample.get("precpu_stats"))
    usage, limit = memory(_map(sample.get("memory_stats")))
    rx, tx = network(sample)
    read, write = block_io(sample)
    sample_id = sample.get("id")
    return {
        "id": container_id or (sample_id if isinstance(sample_id, str) else ""),
        "name": name or _name(sample),
        "cpu_percent": round(cpu_percent(cpu, before), 2),
        "memory_usage": usage,
        "memory_limit": limit,
        "memory_percent": round(usage * 100.0 / limit, 2) if limit else 0.0,
        "network_rx": rx,
        "network_tx": tx,
        "block_read": read,
        "block_write": write,
        "pids": _num(_map(sample.get("pids_stats")).get("current")),
    }
