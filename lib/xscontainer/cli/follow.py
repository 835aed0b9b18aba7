"""`xscontainer logs -f`: new lines as they come, by polling get_logs.

The plugin answers one request at a time, so following is polling: each poll
asks get_logs for the lines since the second of the last line printed, with
Docker's timestamps, and prints those not printed yet (a line is known by its
timestamp and text). Without -t the timestamps are taken off again. Ctrl-C
(or SIGTERM) ends it cleanly with status 0, between or during polls. The
signal also sets a flag the loop checks after each step: an exception a
signal handler raises is lost when it lands in a finalizer (Python reports
it as "ignored"), which the XAPI client's responses run at every poll, so a
Ctrl-C must not depend on it alone.
"""

import calendar
import re
import signal
import time
from typing import Any, Dict, List, Optional, Tuple

from xscontainer.cli import exits, tables

MAX_TAIL = "10000"
# Docker's RFC 3339 timestamps with nanoseconds (trailing zeros trimmed)
STAMP_RE = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?"
                      r"(Z|[+-]\d\d:\d\d) ")

Key = Tuple[int, int]  # (Unix seconds, nanoseconds)


def stamp(line: str) -> Optional[Tuple[Key, str]]:
    """((seconds, nanoseconds), the text after the timestamp) of a timestamped
    line, or None when the line has no timestamp."""
    match = STAMP_RE.match(line)
    if not match:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction, zone = match.group(7) or "", match.group(8)
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    if zone != "Z":
        offset = int(zone[1:3]) * 3600 + int(zone[4:6]) * 60
        seconds -= offset if zone[0] == "+" else -offset
    return (seconds, int(fraction.ljust(9, "0"))), line[match.end():]


class _Stop(BaseException):  # not an Exception: no `except Exception` may stop it
    pass


class Follower:
    def __init__(self, pool: Any, target: Dict[str, str], timestamps: bool,
                 interval: float) -> None:
        self.pool = pool
        self.target = dict(target, timestamps="true")
        self.timestamps = timestamps
        self.interval = interval
        self.last: Optional[Key] = None
        # the lines printed that a later poll can return again, with their
        # timestamp (a line is known by its timestamp and text; stdout and stderr
        # lines reach Docker's log in an order their timestamps need not follow)
        self.seen: Dict[str, Key] = {}
        self.floor: Optional[Key] = None  # the oldest line the first poll printed
        self.stopped = False  # a Ctrl-C or SIGTERM came

    def run(self) -> int:
        self.stopped = False

        def stop(_signum: int, _frame: Any) -> None:
            self.stopped = True
            raise _Stop()

        previous = {signum: signal.signal(signum, stop)
                    for signum in (signal.SIGINT, signal.SIGTERM)}
        try:
            while not self.stopped:
                self.poll()
                if self.stopped:
                    break
                time.sleep(self.interval)
        except (KeyboardInterrupt, _Stop):
            pass
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return exits.OK

    def poll(self) -> None:
        if self.last is not None:
            self.target["since"] = str(self.last[0])
            self.target["tail"] = MAX_TAIL
        self.show(self.pool.plugin("get_logs", self.target))

    def show(self, payload: str) -> None:
        out: List[str] = []
        for line in payload.split("\n")[:-1] if payload.endswith("\n") else payload.split("\n"):
            parsed = stamp(line)
            if parsed is None:  # no timestamp (the plugin's marker of a cut): as it is
                if line:
                    out.append(line)
                continue
            key, text = parsed
            if line in self.seen or (self.floor is not None and key < self.floor):
                continue
            self.seen[line] = key
            if self.last is None or key > self.last:
                self.last = key
            out.append(line if self.timestamps else text)
        if self.floor is None and self.seen:
            # what the first poll printed starts the output: older lines (those
            # -n left out) are never printed, whatever a later poll returns
            self.floor = min(self.seen.values())
        if self.last is not None:
            # the next poll returns the lines from the last one's second on:
            # only those can come back
            self.seen = {seen: key for seen, key in self.seen.items()
                         if key[0] >= self.last[0]}
        if out:
            tables.write("\n".join(out) + "\n")
