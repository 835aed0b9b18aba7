"""Coalescing and backoff, driven by a fake clock (no sleeps)."""

import math
import random

import pytest

from xscontainer.monitor.coalesce import Backoff, ChangesUnderWay, Coalescer

PS, INFO = "docker_ps", "docker_info"


def test_one_event_is_refreshed_after_the_quiet_period():
    c = Coalescer(quiet=0.15, max_delay=1.0)
    c.note([PS], 10.0)
    assert c.due_at() == pytest.approx(10.15)
    assert c.take(10.1) == frozenset()
    assert c.take(10.15) == frozenset([PS])
    assert not c.pending and c.due_at() is None


def test_keys_accumulate_until_taken():
    c = Coalescer()
    c.note([PS], 0.0)
    c.note([INFO], 0.05)
    c.note([], 0.06)  # an event that makes nothing stale changes nothing
    assert c.due_at() == pytest.approx(0.2)
    assert c.take(0.2) == frozenset([PS, INFO])


def test_continuous_events_are_refreshed_at_most_every_max_delay():
    c = Coalescer(quiet=0.15, max_delay=1.0)
    t = 0.0
    refreshes = []
    while t < 10.0:  # an event every 100 ms for 10 s: never quiet
        c.note([PS], t)
        if c.take(t):
            refreshes.append(t)
        t = round(t + 0.1, 6)
    gaps = [b - a for a, b in zip(refreshes, refreshes[1:])]
    # at most one refresh per max_delay, and never longer than max_delay after
    # the first unrefreshed event (here: the next event, 0.1 s after a refresh)
    assert len(refreshes) == 9
    assert all(1.0 - 1e-9 <= g <= 1.1 + 1e-9 for g in gaps)


def simulate(event_times, quiet, max_delay, refresh_cost=0.02, step=0.001, min_interval=0.0,
             settling=()):
    """A guest whose container count goes up at each event time, a worker that
    refreshes (reads the count) when the coalescer says so: how many refreshes,
    what got published last, and when. Events at the times in `settling` are
    noted as settling ones (a create, a kill)."""
    c = Coalescer(quiet, max_delay, min_interval)
    events = sorted(event_times)
    settling = set(settling)
    state = 0
    published = None
    published_at = None
    refreshes = 0
    t = 0.0
    i = 0
    end = events[-1] + max_delay + 1.0
    while t <= end:
        while i < len(events) and events[i] <= t:
            state += 1
            c.note([PS], events[i], settle=events[i] in settling)
            i += 1
        if c.take(t):
            refreshes += 1
            t += refresh_cost  # the read takes time; events keep arriving
            published = state if i == len(events) or events[i] > t else None
            if published is None:  # read mid-burst: it sees what happened up to now
                published = state + sum(1 for e in events[i:] if e <= t)
            published_at = t
        t = round(t + step, 6)
    return refreshes, published, published_at, state


def test_burst_of_50_starts_gives_few_refreshes_and_the_exact_final_state():
    # 50 `docker run -d` in parallel: create+start events within ~3 s, jittered
    rng = random.Random(4)
    times = sorted(rng.uniform(0.0, 3.0) for _ in range(100))
    refreshes, published, published_at, state = simulate(times, 0.15, 1.0)
    assert published == state == 100
    assert refreshes <= math.ceil(3.0 / 1.0) + 2
    assert published_at - times[-1] <= 0.15 + 0.02 + 0.01


def test_sequential_starts_spaced_wider_than_quiet_refresh_each():
    times = [i * 0.5 for i in range(20)]
    refreshes, published, _at, state = simulate(times, 0.15, 1.0)
    assert published == state and refreshes == 20


def test_sequential_starts_are_refreshed_at_most_once_per_min_interval():
    times = [i * 0.5 for i in range(20)]
    refreshes, published, _at, state = simulate(times, 0.15, 1.0, min_interval=1.0)
    assert published == state
    assert refreshes == 11  # 0.15, 1.15, ..., 10.15: one a second, not 20


def test_a_settling_event_does_not_start_the_quiet_timer():
    c = Coalescer(quiet=0.15, max_delay=1.0, min_interval=1.0, settle_max=5.0)
    c.note([PS], 0.0, settle=True)  # create
    assert c.due_at() == pytest.approx(5.0)  # only settle_max bounds it
    assert c.take(0.5) == frozenset()
    c.note([PS], 0.6)  # start, 0.6 s later (an image that starts slowly)
    assert c.due_at() == pytest.approx(0.75)
    assert c.take(0.75) == frozenset([PS])


def test_a_start_seconds_after_its_create_on_a_loaded_guest_is_one_refresh():
    c = Coalescer(quiet=0.15, max_delay=1.0, min_interval=1.0, settle_max=5.0)
    c.note([PS], 10.0, settle=True)  # create
    assert c.take(11.5) == frozenset()  # past max_delay: still waiting for the start
    c.note([PS], 12.0)  # start, 2 s later
    assert c.take(12.15) == frozenset([PS])
    assert not c.pending


def test_a_settling_event_suspends_a_running_quiet_timer():
    c = Coalescer(quiet=0.15, max_delay=1.0)
    c.note([PS], 0.0)  # die of one container
    c.note([PS], 0.1, settle=True)  # create of the next
    assert c.due_at() == pytest.approx(1.0)
    c.note([PS], 0.4)  # its start
    assert c.due_at() == pytest.approx(0.55)


def test_a_settling_event_that_nothing_follows_is_published_after_settle_max():
    c = Coalescer(quiet=0.15, max_delay=1.0, min_interval=1.0, settle_max=5.0)
    c.note([PS], 3.0, settle=True)  # a `docker create` on its own
    assert c.take(7.99) == frozenset()
    assert c.take(8.0) == frozenset([PS])


def test_max_delay_bounds_the_wait_once_another_event_is_pending():
    c = Coalescer(quiet=0.15, max_delay=1.0, settle_max=5.0)
    c.note([PS], 0.0, settle=True)  # create of one container
    c.note([PS], 0.1)  # die of another
    c.note([PS], 0.2, settle=True)  # create of a third: the quiet timer waits
    assert c.due_at() == pytest.approx(1.0)


def test_single_run_after_a_recent_refresh_waits_only_for_min_interval():
    # a refresh at 0; a `docker run` whose create (0.1) and start (0.5) are
    # further apart than quiet: one refresh, at 1.0, showing the start
    c = Coalescer(quiet=0.15, max_delay=1.0, min_interval=1.0)
    c.note([PS], 0.0)
    assert c.take(0.15) == frozenset([PS])
    c.note([PS], 0.3, settle=True)
    c.note([PS], 0.5)
    assert c.due_at() == pytest.approx(1.15)
    assert c.take(1.1) == frozenset()
    assert c.take(1.15) == frozenset([PS])


def test_single_runs_are_each_refreshed_once_after_their_start():
    # `docker run` every 2 s, create 0.2 s to 0.6 s before start: without the
    # settling rule the create is published alone and the start held back
    # by min_interval; with it, one refresh per run, quiet after its start
    times, settling = [], []
    for i in range(10):
        create, start = 2.0 * i, 2.0 * i + 0.2 + 0.04 * i
        times += [create, start]
        settling.append(create)
    with_rule = simulate(times, 0.15, 1.0, min_interval=1.0, settling=settling)
    without = simulate(times, 0.15, 1.0, min_interval=1.0)
    assert with_rule[0] == 10 and with_rule[1] == with_rule[3] == 20
    assert with_rule[2] - times[-1] == pytest.approx(0.15 + 0.02, abs=0.005)
    assert without[0] == 20


def test_burst_of_50_runs_with_settling_creates_refreshes_once_a_second():
    rng = random.Random(7)
    creates = sorted(rng.uniform(0.0, 4.0) for _ in range(50))
    starts = [t + rng.uniform(0.1, 0.6) for t in creates]
    refreshes, published, published_at, state = simulate(
        creates + starts, 0.15, 1.0, min_interval=1.0, settling=creates)
    assert published == state == 100
    last = max(starts)
    assert refreshes <= math.ceil(last) + 1
    assert published_at - last <= 1.0 + 0.02 + 0.01


def test_refreshes_of_a_busy_vm_are_at_least_min_interval_apart():
    c = Coalescer(quiet=0.15, max_delay=1.0, min_interval=1.0)
    rng = random.Random(3)
    t, taken = 0.0, []
    while t < 30.0:
        if rng.random() < 0.3:
            c.note([PS], t, settle=rng.random() < 0.5)
        if c.take(t):
            taken.append(t)
        t = round(t + 0.01, 6)
    assert len(taken) >= 20
    assert all(b - a >= 1.0 - 1e-9 for a, b in zip(taken, taken[1:]))


def test_changes_under_way_follow_each_container_until_its_completing_event():
    changes = ChangesUnderWay(window=30.0, limit=3)
    assert changes.until() is None
    changes.note("a", 1.0, settle=True)  # create
    changes.note("b", 2.0, settle=True)  # create
    assert len(changes) == 2 and changes.until() == pytest.approx(32.0)
    changes.note("b", 2.5, settle=False)  # its start
    assert len(changes) == 1 and changes.until() == pytest.approx(31.0)
    changes.note("c", 3.0, settle=False)  # an event of another container changes nothing
    changes.note("", 3.0, settle=True)  # nor one that names no container
    assert len(changes) == 1
    changes.note("a", 4.0, settle=True)  # its kill after all: followed from then on
    assert changes.until() == pytest.approx(34.0)
    for name in "defg":  # more than `limit`: the oldest is forgotten
        changes.note(name, 5.0, settle=True)
    assert len(changes) == 3
    changes.note("x", 35.0, settle=False)  # every change began more than `window` ago
    assert len(changes) == 0 and changes.until() is None
    changes.note("y", 36.0, settle=True)
    changes.clear()
    assert changes.until() is None
    with pytest.raises(ValueError):
        ChangesUnderWay(window=0)


def burst_timeline(seed, count=50, span=8.5):
    """A burst of `docker run` as a Docker engine gives it: every create within
    0.6 s, then the starts one by one over `span` seconds, with pauses between
    them up to a second (longer than quiet, as long as max_delay)."""
    rng = random.Random(seed)
    creates = sorted(rng.uniform(0.0, 0.6) for _ in range(count))
    gaps = [rng.choice((0.01, 0.05, 0.2, 0.4, 1.0)) for _ in range(count)]
    scale = (span - 1.0) / sum(gaps)
    starts, t = [], 1.0
    for gap in gaps:
        t += gap * scale
        starts.append(t)
    order = list(range(count))
    rng.shuffle(order)
    events = [(t, "c%d" % i, True) for i, t in enumerate(creates)]
    events += [(t, "c%d" % i, False) for i, t in zip(order, starts)]
    return sorted(events)


def run_burst(events, changes, refresh_cost=0.08, step=0.001, **timing):
    """A worker that reads the guest's state when the coalescer says so: the
    refresh times, and what the last one saw."""
    c = Coalescer(changes=changes, **timing)
    taken, seen, i, t = [], 0, 0, 0.0
    while t <= events[-1][0] + 5.0:
        while i < len(events) and events[i][0] <= t:
            at, container, settle = events[i]
            if changes is not None:
                changes.note(container, at, settle)
            c.note([PS], at, settle)
            i += 1
        if c.take(t):
            taken.append(t)
            seen = i
            t += refresh_cost
        t = round(t + step, 6)
    return taken, seen


@pytest.mark.parametrize("seed", range(5))
def test_a_burst_is_refreshed_every_busy_delay_then_once_its_last_container_started(seed):
    events = burst_timeline(seed)
    timing = dict(quiet=0.15, max_delay=1.0, min_interval=1.0, busy_delay=2.0)
    taken, seen = run_burst(events, ChangesUnderWay(), **timing)
    without, _seen = run_burst(events, None, **timing)
    last = events[-1][0]
    assert seen == len(events)  # the last refresh saw the final state
    assert taken[-1] - last <= 1.0 + 1e-6  # within min_interval of the last start
    # while containers wait for their start, refreshes come busy_delay apart
    during = [t for t in taken if t < last]
    assert all(b - a >= 2.0 - 1e-6 for a, b in zip(during, during[1:]))
    assert len(taken) <= math.ceil(last / 2.0) + 1
    # the pauses between starts alone would refresh it about once a second
    assert len(without) >= len(taken) + 2


def test_a_single_run_is_refreshed_quiet_after_its_start_when_nothing_else_is_under_way():
    changes = ChangesUnderWay()
    c = Coalescer(quiet=0.15, max_delay=1.0, min_interval=1.0, busy_delay=2.0, changes=changes)
    changes.note("a", 0.0, settle=True)
    c.note([PS], 0.0, settle=True)  # create
    assert c.due_at() == pytest.approx(5.0)  # settle_max, as without `changes`
    changes.note("a", 0.6, settle=False)
    c.note([PS], 0.6)  # its start: nothing under way any more
    assert c.due_at() == pytest.approx(0.75)


def test_a_container_left_created_slows_other_refreshes_only_within_its_window():
    changes = ChangesUnderWay(window=30.0)
    c = Coalescer(quiet=0.15, max_delay=1.0, min_interval=1.0, busy_delay=2.0, changes=changes)
    changes.note("left", 0.0, settle=True)  # `docker create` alone
    c.note([PS], 0.0, settle=True)
    assert c.take(5.0) == frozenset([PS])
    changes.note("web", 10.0, settle=False)
    c.note([PS], 10.0)  # `docker stop web` while "left" may still start
    assert c.due_at() == pytest.approx(12.0)  # busy_delay, not quiet
    assert c.take(12.0) == frozenset([PS])
    changes.note("web", 29.5, settle=False)
    c.note([PS], 29.5)
    # the window ends at 30.0: then max_delay bounds it as usual
    assert c.due_at() == pytest.approx(30.0)
    assert c.take(30.0) == frozenset([PS])
    changes.note("web", 40.0, settle=False)
    c.note([PS], 40.0)
    assert c.due_at() == pytest.approx(40.15)  # quiet again


def test_take_all_with_a_time_counts_as_a_refresh():
    c = Coalescer(quiet=0.15, max_delay=1.0, min_interval=1.0)
    c.note([PS], 0.0)
    assert c.take_all(0.05) == frozenset([PS])  # a resync read everything
    c.note([PS], 0.1)
    assert c.due_at() == pytest.approx(1.05)
    assert c.take_all(0.2) == frozenset([PS])
    assert c.take_all(5.0) == frozenset()  # nothing pending: not a refresh
    c.note([PS], 5.0)
    assert c.due_at() == pytest.approx(5.15)


def test_quiet_cannot_exceed_max_delay():
    with pytest.raises(ValueError):
        Coalescer(quiet=2.0, max_delay=1.0)
    with pytest.raises(ValueError):
        Coalescer(min_interval=-1.0)
    with pytest.raises(ValueError):
        Coalescer(busy_delay=-1.0)


def test_take_all_ignores_timing():
    c = Coalescer()
    c.note([PS], 5.0)
    assert c.take_all() == frozenset([PS])
    assert c.take_all() == frozenset()


def test_backoff_doubles_to_its_cap_and_resets():
    b = Backoff(2.0, 60.0)
    assert [b.next_delay() for _ in range(7)] == [2, 4, 8, 16, 32, 60, 60]
    b.reset()
    assert b.next_delay() == 2


def test_backoff_rejects_nonsense():
    with pytest.raises(ValueError):
        Backoff(0, 1)
    with pytest.raises(ValueError):
        Backoff(5, 1)


def test_the_monitor_takes_the_busy_delay_from_its_command_line_or_environment(monkeypatch):
    from xscontainer.monitor import options  # noqa: PLC0415

    assert options.parse([]).busy_delay == 2.0
    assert options.parse(["--busy-delay", "3.5"]).busy_delay == 3.5
    monkeypatch.setenv("XSCONTAINER_MONITOR_BUSY_DELAY", "0.5")
    assert options.parse([]).busy_delay == 0.5
