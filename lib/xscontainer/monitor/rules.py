"""Which VMs this host's monitor watches, and what in a VM record matters to it.

Pure functions of VM records (as XAPI's VM.get_record / event.from snapshots
give them), so the rules are testable as tables.
"""

from typing import Any, Dict, Mapping, Optional, Set, Tuple

from xscontainer import xapi_keys
from xscontainer.xapi import NULL_REF


def other_config(record: Mapping[str, Any]) -> Dict[str, str]:
    value = record.get("other_config")
    return dict(value) if isinstance(value, Mapping) else {}


def _is_ref(value: Any) -> bool:
    return isinstance(value, str) and value not in ("", NULL_REF)


def is_real_vm(record: Mapping[str, Any]) -> bool:
    """Not dom0, not a template, not a snapshot (XenCenter's IsRealVm)."""
    return not (
        record.get("is_control_domain")
        or record.get("is_a_template")
        or record.get("is_a_snapshot")
    )


def why_not_monitored(record: Mapping[str, Any], this_host: str) -> Optional[str]:
    """None if this host must monitor the VM, else the (first) reason it must not."""
    if record.get("is_control_domain"):
        return "it is a control domain"
    if record.get("is_a_template"):
        return "it is a template"
    if record.get("is_a_snapshot"):
        return "it is a snapshot"
    flag = other_config(record).get(xapi_keys.MONITOR)
    if flag is None:
        return "it is not registered"
    if flag.strip().lower() != "true":
        return "it is deregistered (%s=%s)" % (xapi_keys.MONITOR, flag)
    if record.get("power_state") != "Running":
        return "it is %s" % (record.get("power_state") or "not running")
    if record.get("resident_on") != this_host:
        return "it runs on another host"
    if not _is_ref(record.get("guest_metrics")):
        return "it has no guest metrics yet"
    return None


def flag_absent(record: Mapping[str, Any]) -> bool:
    """The registration flag is missing altogether: possibly only for a moment,
    as a single-key edit (remove_from_other_config, then add_to_other_config)
    rewrites it. A flag set to anything but true is a deliberate decision."""
    return other_config(record).get(xapi_keys.MONITOR) is None


def should_monitor(record: Mapping[str, Any], this_host: str) -> bool:
    return why_not_monitored(record, this_host) is None


def connection_settings(record: Mapping[str, Any]) -> Tuple[Tuple[str, str], ...]:
    """The other-config items that say how to reach the guest (sorted): a change
    means the worker reconnects at once (xscontainer-prepare-vm relies on it)."""
    config = other_config(record)
    return tuple(sorted(
        (key, value) for key, value in config.items()
        if key in (xapi_keys.USERNAME, xapi_keys.MODE, xapi_keys.SSH_HOST_KEY,
                   xapi_keys.DOCKER_SOCKET)
        or key.startswith(xapi_keys.TLS_PREFIX)
    ))


def docker_values(record: Mapping[str, Any]) -> Dict[str, Optional[str]]:
    """What the record holds under each docker key (None when absent)."""
    config = other_config(record)
    return {key: config.get(key) for key in xapi_keys.DOCKER}


def tls_secret_uuids(record: Mapping[str, Any]) -> Set[str]:
    config = other_config(record)
    return {config[key].strip() for key in xapi_keys.TLS_SECRETS if config.get(key, "").strip()}


def is_stale_halted(record: Mapping[str, Any]) -> bool:
    """A real VM that is not running on any host but still shows docker data."""
    return (
        is_real_vm(record)
        and record.get("power_state") == "Halted"
        and any(value is not None for value in docker_values(record).values())
    )
