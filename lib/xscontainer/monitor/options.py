"""xscontainer-monitor's command line; each option also has an environment variable."""

import argparse
import os
from typing import List, Optional

from xscontainer.monitor import coalesce

DESCRIPTION = """\
Keeps the containers of every registered VM running on this host visible in
XAPI: VM other-config docker_ps, docker_info and docker_version, refreshed from
each guest's Docker event stream. Run by systemd (xscontainer-monitor.service)
on every pool host. Logs go to the xscontainer log file and syslog."""


class Settings:
    """Timings and switches of the daemon (seconds unless stated)."""

    def __init__(self, resync: float = 300.0, probe: float = 20.0, grace: float = 120.0,
                 quiet: float = coalesce.DEFAULT_QUIET,
                 max_delay: float = coalesce.DEFAULT_MAX_DELAY,
                 min_interval: float = coalesce.DEFAULT_MIN_INTERVAL,
                 busy_delay: float = coalesce.DEFAULT_BUSY_DELAY,
                 backoff_first: float = 2.0, backoff_cap: float = 60.0,
                 event_timeout: float = 30.0, control: bool = True,
                 sweep_delay: float = 30.0, stop_timeout: float = 4.0,
                 debug: bool = False) -> None:
        self.resync = resync
        self.probe = probe
        self.grace = grace
        self.quiet = quiet
        self.max_delay = max_delay
        self.min_interval = min_interval
        self.busy_delay = busy_delay
        self.backoff_first = backoff_first
        self.backoff_cap = backoff_cap
        self.event_timeout = event_timeout
        self.control = control
        self.sweep_delay = sweep_delay
        self.stop_timeout = stop_timeout
        self.debug = debug


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return float(value)
    except ValueError:
        raise SystemExit("xscontainer-monitor: %s=%r is not a number" % (name, value)) from None


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a number" % text) from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def parser() -> argparse.ArgumentParser:
    d = Settings()
    p = argparse.ArgumentParser(
        prog="xscontainer-monitor", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )

    def option(flag: str, env: str, default: float, text: str) -> None:
        p.add_argument(flag, type=_positive, default=_env_float(env, default), metavar="SECONDS",
                       help="%s (default %g; environment %s)" % (text, default, env))

    option("--resync", "XSCONTAINER_MONITOR_RESYNC", d.resync,
           "re-read every monitored VM's info, version and containers this often, to catch "
           "anything an event stream missed")
    option("--probe", "XSCONTAINER_MONITOR_PROBE", d.probe,
           "check a quiet connection is alive after this long without traffic (a dead guest "
           "is detected within about this plus 30 s)")
    option("--grace", "XSCONTAINER_MONITOR_GRACE", d.grace,
           "post the XSCONTAINER_MONITOR_FAILED message on a VM that cannot be monitored for "
           "this long")
    option("--quiet", "XSCONTAINER_MONITOR_QUIET", d.quiet,
           "publish a burst of container events once it has been quiet this long")
    option("--max-delay", "XSCONTAINER_MONITOR_MAX_DELAY", d.max_delay,
           "... but at the latest this long after the burst's first event")
    option("--min-interval", "XSCONTAINER_MONITOR_MIN_INTERVAL", d.min_interval,
           "refresh a VM's containers at most once per this long, however busy it is")
    option("--busy-delay", "XSCONTAINER_MONITOR_BUSY_DELAY", d.busy_delay,
           "while containers created (or killed) still wait for their start (or end), "
           "publish their VM's events at the latest this long after the first")
    option("--backoff-first", "XSCONTAINER_MONITOR_BACKOFF_FIRST", d.backoff_first,
           "first retry delay for an unreachable VM (doubles on each failure)")
    option("--backoff-cap", "XSCONTAINER_MONITOR_BACKOFF_CAP", d.backoff_cap,
           "longest retry delay for an unreachable VM")
    option("--event-timeout", "XSCONTAINER_MONITOR_EVENT_TIMEOUT", d.event_timeout,
           "XAPI event.from long-poll timeout")
    option("--sweep-delay", "XSCONTAINER_MONITOR_SWEEP_DELAY", d.sweep_delay,
           "pool master only: remove docker data left on a halted VM after this long")
    p.add_argument("--no-control", dest="control", action="store_false",
                   help="do not serve the local control socket the plugin uses for fast calls")
    p.add_argument("--debug", action="store_true", help="log at debug level")
    return p


def parse(argv: Optional[List[str]] = None) -> Settings:
    args = parser().parse_args(argv)
    if args.max_delay < args.quiet:
        parser().error("--max-delay must not be shorter than --quiet")
    if args.backoff_cap < args.backoff_first:
        parser().error("--backoff-cap must not be shorter than --backoff-first")
    return Settings(
        resync=args.resync, probe=args.probe, grace=args.grace, quiet=args.quiet,
        max_delay=args.max_delay, min_interval=args.min_interval, busy_delay=args.busy_delay,
        backoff_first=args.backoff_first,
        backoff_cap=args.backoff_cap, event_timeout=args.event_timeout,
        control=args.control, sweep_delay=args.sweep_delay, debug=args.debug,
    )
