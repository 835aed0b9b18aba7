"""Timing logic with an injectable clock: coalescing refreshes, and backoff.

Both are plain state machines: callers pass `now` (time.monotonic() in the
daemon, a fake clock in tests) and ask when something is due.
"""

from typing import FrozenSet, Iterable, Optional, Set

# Refresh a burst once it has been quiet this long ...
DEFAULT_QUIET = 0.15
# ... but never later than this after its first event.
DEFAULT_MAX_DELAY = 1.0


class Coalescer:
    """Collects the keys events made stale; says when to refresh them.

    A refresh is due `quiet` seconds after the last event, or `max_delay`
    seconds after the first one not yet refreshed, whichever comes first. So
    one event is published after `quiet`, and a continuous stream of events
    gives at most one refresh per `max_delay`.
    """

    def __init__(self, quiet: float = DEFAULT_QUIET, max_delay: float = DEFAULT_MAX_DELAY) -> None:
        if quiet < 0 or max_delay < quiet:
            raise ValueError("need 0 <= quiet <= max_delay")
        self.quiet = quiet
        self.max_delay = max_delay
        self._keys: Set[str] = set()
        self._first: Optional[float] = None
        self._last: Optional[float] = None

    @property
    def pending(self) -> bool:
        return bool(self._keys)

    def note(self, keys: Iterable[str], now: float) -> None:
        keys = set(keys)
        if not keys:
            return
        if not self._keys:
            self._first = now
        self._keys |= keys
        self._last = now

    def due_at(self) -> Optional[float]:
        """When the pending keys must be refreshed (None: nothing pending)."""
        if not self._keys or self._first is None or self._last is None:
            return None
        return min(self._last + self.quiet, self._first + self.max_delay)

    def take(self, now: float) -> FrozenSet[str]:
        """The keys to refresh now, if due (clearing them); else nothing."""
        due = self.due_at()
        if due is None or now < due:
            return frozenset()
        return self.take_all()

    def take_all(self) -> FrozenSet[str]:
        keys = frozenset(self._keys)
        self._keys.clear()
        self._first = self._last = None
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
