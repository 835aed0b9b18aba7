"""The shared Ticker: due members ticked on the pool, one tick at a time each."""

import threading
import time
from typing import List, Optional

from xscontainer.monitor.ticker import Ticker


class Member:
    def __init__(self, due: Optional[float], hold: float = 0.0) -> None:
        self.due = due
        self.hold = hold
        self.ticks: List[float] = []
        self.running = 0
        self.overlapped = False
        self.lock = threading.Lock()

    def next_due(self) -> Optional[float]:
        with self.lock:
            return self.due

    def tick(self) -> None:
        with self.lock:
            self.running += 1
            self.overlapped |= self.running > 1
            self.ticks.append(time.monotonic())
            self.due = None  # done until told otherwise
        time.sleep(self.hold)
        with self.lock:
            self.running -= 1


def wait_for(check, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_due_members_are_ticked_and_idle_ones_not():
    ticker = Ticker(pool_threads=2)
    due, idle = Member(float("-inf")), Member(None)
    ticker.add(due)
    ticker.add(idle)
    wait_for(lambda: len(due.ticks) == 1)
    assert idle.ticks == []
    ticker.remove(due, 1.0)
    ticker.remove(idle, 1.0)


def test_a_poke_makes_a_newly_due_member_tick():
    ticker = Ticker(pool_threads=1)
    m = Member(None)
    ticker.add(m)
    time.sleep(0.05)
    with m.lock:
        m.due = time.monotonic()
    ticker.poke()
    wait_for(lambda: len(m.ticks) == 1)
    ticker.remove(m, 1.0)


def test_a_slow_member_does_not_hold_back_the_others():
    ticker = Ticker(pool_threads=2)
    slow = Member(float("-inf"), hold=3.0)
    ticker.add(slow)
    wait_for(lambda: len(slow.ticks) == 1)
    fast = [Member(float("-inf")) for _ in range(10)]
    for m in fast:
        ticker.add(m)
    wait_for(lambda: all(len(m.ticks) == 1 for m in fast), timeout=2.5)
    assert slow.running == 1  # still in its tick meanwhile
    for m in [slow, *fast]:
        ticker.remove(m, 4.0)


def test_a_member_is_never_ticked_twice_at_once_and_remove_waits_for_its_tick():
    ticker = Ticker(pool_threads=4)

    class Always(Member):
        def tick(self) -> None:
            super().tick()
            with self.lock:
                self.due = float("-inf")  # due again at once

    m = Always(float("-inf"), hold=0.02)
    ticker.add(m)
    wait_for(lambda: len(m.ticks) >= 5)
    assert ticker.remove(m, 2.0)
    assert m.running == 0 and not m.overlapped
    count = len(m.ticks)
    time.sleep(0.1)
    assert len(m.ticks) == count  # removed: no more ticks


def test_idle_members_are_not_asked_again_at_every_wakeup():
    class Counting(Member):
        def __init__(self, due):
            super().__init__(due)
            self.asked = 0

        def next_due(self):
            self.asked += 1
            return super().next_due()

        def tick(self):
            super().tick()
            with self.lock:
                self.due = time.monotonic() + 0.02  # a busy member: due again soon

    ticker = Ticker(pool_threads=2)
    idle = [Counting(time.monotonic() + 3600) for _ in range(20)]
    busy = Counting(float("-inf"))
    for m in [*idle, busy]:
        ticker.add(m)
    wait_for(lambda: len(busy.ticks) >= 10)
    assert all(m.asked <= 2 for m in idle)  # once when added (twice if added mid-scan)
    for m in [*idle, busy]:
        ticker.remove(m, 2.0)
