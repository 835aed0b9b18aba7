"""One VM's failure episode: when to post its XAPI message, when to clear it, how
long to wait before the next connection attempt.

A plain state machine, like those in coalesce.py: callers pass `now`
(time.monotonic() in the daemon, a fake clock in tests) and ask what is due. It
neither sleeps, locks nor talks to XAPI; the worker does what it says (diagnose
and post the message, clear it) and keeps it under its own lock.

* An episode starts at the first failure to connect or to stay connected. A
  failure that cannot be judged (XAPI unreachable: the VM can neither be
  examined nor a message posted) is retried but starts none.
* `grace` seconds after its start, the message (XSCONTAINER_MONITOR_FAILED)
  is due: once per episode, however many failures follow.
* It ends once a connection has stayed up `stable` seconds (STABLE, or `grace`
  if shorter), so a guest whose Docker fails right after each connect stays in
  its episode, gets its message, and backs off. A connection lost before that
  leaves the episode running, counted from its first failure.
* Its end restarts the backoff and clears a posted message. The first stable
  connection of a worker also clears a message an earlier run may have left.
"""

from typing import NamedTuple, Optional

from xscontainer.monitor.coalesce import Backoff

# A connection that stays up this long (or `grace`, if shorter) ends an episode.
STABLE = 10.0


class Stable(NamedTuple):
    """What a connection becoming stable means for the caller."""

    recovered: bool  # it ended a failure episode
    clear: bool  # remove the VM's failure message (ours, or one an earlier run left)


class FailureEpisode:
    def __init__(self, grace: float, backoff: Backoff, stable: float = STABLE) -> None:
        self.grace = grace
        self.stable = min(stable, grace)
        self._backoff = backoff
        self._failing_since: Optional[float] = None
        self._posted = False
        self._checked = False  # a stable connection has cleared any old message
        self._up_since: Optional[float] = None

    @property
    def failing(self) -> bool:
        return self._failing_since is not None

    @property
    def posted(self) -> bool:
        """The message of the current episode has gone out (take_post said so)."""
        return self._posted

    # -- failing -------------------------------------------------------------------------

    def failed(self, now: float, judged: bool = True) -> None:
        """A connection attempt or a connection failed. `judged` False: a failure
        that says nothing about the VM (XAPI unreachable), which starts no episode."""
        if self._failing_since is None and judged:
            self._failing_since = now

    def next_delay(self) -> float:
        """How long to wait before the next connection attempt (capped, doubling)."""
        return self._backoff.next_delay()

    def restart_backoff(self) -> None:
        """The connection settings changed: the next failure waits the first delay
        again (the episode goes on)."""
        self._backoff.reset()

    def post_at(self) -> Optional[float]:
        """When the message is due (None: not failing, or already posted)."""
        if self._failing_since is None or self._posted:
            return None
        return self._failing_since + self.grace

    def take_post(self, now: float) -> bool:
        """True (once per episode) when the message is due: the caller posts it."""
        due = self.post_at()
        if due is None or now < due:
            return False
        self._posted = True
        return True

    # -- recovering ----------------------------------------------------------------------

    def connected(self, now: float) -> None:
        """Connected and published: stable at `now + stable` if it stays up."""
        self._up_since = now

    def disconnected(self) -> None:
        self._up_since = None

    def stable_at(self) -> Optional[float]:
        """When the current connection counts as stable (None: not connected, or
        nothing would change: no episode and no old message to clear)."""
        if self._up_since is None:
            return None
        if self._failing_since is None and self._checked:
            return None
        return self._up_since + self.stable

    def take_stable(self, now: float) -> Optional[Stable]:
        """If the connection is stable by `now`: end the episode, restart the
        backoff, and say what the caller must do; else None."""
        due = self.stable_at()
        if due is None or now < due:
            return None
        result = Stable(recovered=self._failing_since is not None,
                        clear=self._posted or not self._checked)
        self._failing_since = None
        self._posted = False
        self._checked = True
        self._backoff.reset()
        return result
