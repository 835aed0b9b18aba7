"""The timers of every monitored VM, run by a fixed number of threads.

Each VM worker's own thread connects and then reads the VM's Docker event
stream; what must happen at a time (publishing after connecting, a coalesced
refresh, a probe of a quiet connection, the periodic resync, the end of a
failure episode) is the worker's `tick()`, due at its `next_due()`. One
scheduler thread sleeps until the earliest due time of all members (or a
`poke()`: an event changed one) and hands due ticks to a small pool, never
two at once for the same worker. So a host with hundreds of VMs costs a
thread per VM plus a fixed few, and a VM whose refresh is slow (a burst, a
large container list, a guest that answers late) holds one pool thread, not
the others' publication.
"""

import concurrent.futures
import logging
import threading
import time
from typing import Any, Callable, Dict, Optional, Set

log = logging.getLogger(__name__)

# Ticks run at once at most; a tick blocked on an unresponsive guest ends at
# its request deadline, so this many such guests at once delay the others.
POOL_THREADS = 16


# A member has next_due() -> Optional[float] (monotonic time; None: nothing
# due) and tick(), which handles its own failures.
Member = Any


class Ticker:
    def __init__(self, pool_threads: int = POOL_THREADS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        self._members: Set[Member] = set()
        self._busy: Set[Member] = set()
        self._dirty: Set[Member] = set()  # due time to be asked again
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=pool_threads, thread_name_prefix="tick")
        self._thread: Optional[threading.Thread] = None

    def add(self, member: Member) -> None:
        with self._cond:
            self._members.add(member)
            self._dirty.add(member)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="ticker", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def remove(self, member: Member, timeout: float) -> bool:
        """No more ticks for `member`; waits up to `timeout` for one running now."""
        deadline = self._clock() + timeout
        with self._cond:
            self._members.discard(member)
            while member in self._busy:
                remaining = deadline - self._clock()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def poke(self, member: Optional[Member] = None) -> None:
        """`member`'s next due time may be sooner now (None: any member's)."""
        with self._cond:
            if member is None:
                self._dirty.update(self._members)
            elif member in self._members:
                self._dirty.add(member)
            self._cond.notify_all()

    def _run(self) -> None:
        # Each member's due time is asked again only when it may have changed
        # (poked, added, or its tick ran), not at every wake-up: an idle host
        # of hundreds of VMs costs a few calls a second, not hundreds.
        due_at: Dict[Member, Optional[float]] = {}
        while True:
            with self._cond:
                for member in list(due_at):
                    if member not in self._members:
                        del due_at[member]
                for member in self._dirty:
                    if member in self._members:
                        due_at[member] = member.next_due()
                self._dirty.clear()
                now = self._clock()
                wake: Optional[float] = None
                due = []
                for member, at in due_at.items():
                    if at is None or member in self._busy:
                        continue
                    if at <= now:
                        due.append(member)
                    elif wake is None or at < wake:
                        wake = at
                if not due:
                    self._cond.wait(None if wake is None else wake - now)
                    continue
                for member in due:
                    due_at[member] = None  # asked again once its tick has run
                self._busy.update(due)
            for member in due:
                self._pool.submit(self._tick, member)

    def _tick(self, member: Member) -> None:
        try:
            member.tick()
        except Exception:  # a member handles its own failures; never lose the thread
            log.exception("a monitor timer failed")
        finally:
            with self._cond:
                self._busy.discard(member)
                self._dirty.add(member)
                self._cond.notify_all()


_DEFAULT = Ticker()  # threads start with its first member


def default_ticker() -> Ticker:
    """The process's shared Ticker."""
    return _DEFAULT
