"""Timing logic with an injectable clock: coalescing refreshes, and backoff.

Both are plain state machines: callers pass `now` (time.monotonic() in the
daemon, a fake clock in tests) and ask when something is due.
"""

from collections import OrderedDict
from typing import FrozenSet, Iterable, Optional, Set

# Refresh a burst once it has been quiet this long ...
DEFAULT_QUIET = 0.15
# ... but never later than this after its first event ...
DEFAULT_MAX_DELAY = 1.0
# ... and never sooner than this after the previous refresh: under sustained
# churn a VM costs at most one refresh (two XAPI writes) per key per second.
DEFAULT_MIN_INTERVAL = 1.0
# Events that another normally follows (settle=True) alone are refreshed this
# long after the first of them: a `docker run` on a busy guest can take
# seconds between its create and its start.
DEFAULT_SETTLE_MAX = 5.0
# While a change is under way in the engine (see ChangesUnderWay), pending
# events are refreshed at most this long after the first of them, and only
# then: a burst of `docker run` is published every 2 s, then once when its
# last container has started.
DEFAULT_BUSY_DELAY = 2.0
# A settling event whose completing event has not come this long after it
# (a container created and never started, a `docker kill -s HUP` that did not
# stop it) no longer counts as under way.
UNDER_WAY_WINDOW = 30.0
# Containers followed at once; beyond this the oldest is forgotten.
MAX_UNDER_WAY = 256


class ChangesUnderWay:
    """The containers whose change an engine has begun but not finished: a
    settling event (Docker's `create`, `kill`) seen, the event that completes
    it (its `start`, `die`, or any other non-settling event of the same
    container) not yet. A burst of `docker run` creates its containers first
    and starts them over many seconds, with pauses between starts as long as
    a second: the pauses look like the end of the burst, the containers still
    waiting for their start tell that it is not over.

    Bounded: at most MAX_UNDER_WAY containers, each for at most `window`
    seconds after its settling event.
    """

    def __init__(self, window: float = UNDER_WAY_WINDOW, limit: int = MAX_UNDER_WAY) -> None:
        if window <= 0 or limit <= 0:
            raise ValueError("need window > 0 and limit > 0")
        self.window = window
        self.limit = limit
        self._since: "OrderedDict[str, float]" = OrderedDict()  # oldest first

    def note(self, container: str, now: float, settle: bool) -> None:
        """One event of `container` ("" for an event of no container: ignored)."""
        self._expire(now)
        if not container:
            return
        self._since.pop(container, None)
        if settle:
            self._since[container] = now
            while len(self._since) > self.limit:
                self._since.popitem(last=False)

    def until(self) -> Optional[float]:
        """Until when a change is under way, unless completed sooner (None: none is)."""
        if not self._since:
            return None
        return next(reversed(self._since.values())) + self.window

    def clear(self) -> None:
        self._since.clear()

    def __len__(self) -> int:
        return len(self._since)

    def _expire(self, now: float) -> None:
        while self._since and next(iter(self._since.values())) + self.window <= now:
            self._since.popitem(last=False)


class Coalescer:
    """Collects the keys events made stale; says when to refresh them.

    A refresh is due `quiet` seconds after the last event, or `max_delay`
    seconds after the first one not yet refreshed, whichever comes first; but
    not sooner than `min_interval` after the previous refresh. So one event is
    published after `quiet`, and a continuous stream of events gives at most
    one refresh per max(`max_delay`, `min_interval`).

    An event noted with `settle=True` is one that is normally followed by
    another within moments (Docker's `create` before `start`, `kill` before
    `die`): it does not start the quiet timer, and it suspends one already
    running, so the refresh waits for the event that completes the change
    instead of publishing the intermediate state and then, held back by
    `min_interval`, the final one a second later. While only such events are
    pending, the wait is bounded by `settle_max` (not `max_delay`): a loaded
    guest may take seconds between a create and its start. Once any other
    event is pending, `max_delay` bounds it as usual.

    With `changes` (the engine's ChangesUnderWay), while a change is under
    way the quiet timer does not run and the wait is bounded by `busy_delay`
    instead of `max_delay`: a burst is refreshed every `busy_delay`, then
    `quiet` after the event that completes its last change (still no sooner
    than `min_interval` after the previous refresh).
    """

    def __init__(self, quiet: float = DEFAULT_QUIET, max_delay: float = DEFAULT_MAX_DELAY,
                 min_interval: float = 0.0, settle_max: float = DEFAULT_SETTLE_MAX,
                 busy_delay: float = DEFAULT_BUSY_DELAY,
                 changes: Optional[ChangesUnderWay] = None) -> None:
        if quiet < 0 or max_delay < quiet or min_interval < 0 or busy_delay < 0:
            raise ValueError("need 0 <= quiet <= max_delay, 0 <= min_interval "
                             "and 0 <= busy_delay")
        self.quiet = quiet
        self.max_delay = max_delay
        self.min_interval = min_interval
        self.settle_max = max(settle_max, max_delay)
        self.busy_delay = max(busy_delay, max_delay)
        self.changes = changes
        self._keys: Set[str] = set()
        self._first: Optional[float] = None
        self._plain = False  # an event that does not settle is pending
        self._last: Optional[float] = None  # None: no quiet timer running
        self._taken: Optional[float] = None  # when the previous refresh was taken

    @property
    def pending(self) -> bool:
        return bool(self._keys)

    def note(self, keys: Iterable[str], now: float, settle: bool = False) -> None:
        keys = set(keys)
        if not keys:
            return
        if not self._keys:
            self._first = now
        self._keys |= keys
        self._last = None if settle else now
        self._plain = self._plain or not settle

    def due_at(self) -> Optional[float]:
        """When the pending keys must be refreshed (None: nothing pending)."""
        if not self._keys or self._first is None:
            return None
        busy_until = self.changes.until() if self.changes is not None else None
        if not self._plain:
            due = self._first + self.settle_max
        elif busy_until is None:
            due = self._first + self.max_delay
        else:  # a change under way stretches the wait, up to busy_delay
            due = max(self._first + self.max_delay,
                      min(self._first + self.busy_delay, busy_until))
        if self._last is not None:
            quiet_at = self._last + self.quiet
            if busy_until is not None:
                quiet_at = max(quiet_at, busy_until)
            due = min(due, quiet_at)
        if self._taken is not None:
            due = max(due, self._taken + self.min_interval)
        return due

    def take(self, now: float) -> FrozenSet[str]:
        """The keys to refresh now, if due (clearing them); else nothing."""
        due = self.due_at()
        if due is None or now < due:
            return frozenset()
        return self.take_all(now)

    def take_all(self, now: Optional[float] = None) -> FrozenSet[str]:
        """Every pending key, due or not; `now` (if given) counts as a refresh
        for `min_interval`."""
        keys = frozenset(self._keys)
        self._keys.clear()
        self._first = self._last = None
        self._plain = False
        if now is not None and keys:
            self._taken = now
        return keys


class Backoff:
    """Capped exponential backoff: first, first*2, ... up to cap; reset on success."""

    def __init__(self, first: float = 2.0, cap: float = 60.0) -> None:
        if first <= 0 or cap < first:
            raise ValueError("need 0 < first <= cap")
        self.first = first
        self.cap = cap
        self._next = first

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self.cap)
        return delay

    def reset(self) -> None:
        self._next = self.first
