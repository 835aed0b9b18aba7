"""The failure episode, driven by a fake clock (no sleeps, no threads)."""

import pytest

from xscontainer.monitor.coalesce import Backoff
from xscontainer.monitor.episode import STABLE, FailureEpisode, Stable

GRACE = 120.0


def episode(grace: float = GRACE) -> FailureEpisode:
    return FailureEpisode(grace, Backoff(2.0, 60.0))


def settled() -> FailureEpisode:
    """A worker whose first connection proved stable (an old message cleared)."""
    e = episode()
    e.connected(0.0)
    assert e.take_stable(STABLE) == Stable(recovered=False, clear=True)
    e.disconnected()
    return e


def test_a_fresh_worker_clears_an_old_message_once_its_first_connection_is_stable():
    e = episode()
    assert not e.failing and e.post_at() is None
    assert e.stable_at() is None  # not connected
    e.connected(100.0)
    assert e.stable_at() == 100.0 + STABLE
    assert e.take_stable(100.0 + STABLE - 0.1) is None
    # no episode to end, but a message an earlier run left may be there
    assert e.take_stable(100.0 + STABLE) == Stable(recovered=False, clear=True)
    # after that a healthy connection has nothing left to do
    assert e.stable_at() is None
    e.disconnected()
    e.connected(200.0)
    assert e.stable_at() is None and e.take_stable(1000.0) is None


def test_first_failure_starts_the_grace_period():
    e = settled()
    e.failed(500.0)
    assert e.failing and not e.posted
    assert e.post_at() == 500.0 + GRACE


def test_still_failing_within_grace_keeps_the_first_failure_time():
    e = settled()
    e.failed(500.0)
    for t in (510.0, 560.0, 619.9):
        e.failed(t)
        assert e.post_at() == 500.0 + GRACE
        assert not e.take_post(t)
    assert e.failing and not e.posted


def test_grace_passed_posts_once_per_episode():
    e = settled()
    e.failed(500.0)
    assert e.take_post(500.0 + GRACE)
    assert e.posted and e.failing
    assert e.post_at() is None
    e.failed(700.0)
    assert not e.take_post(10_000.0)  # retries go on, the message is not repeated


def test_recovered_but_not_yet_stable_changes_nothing():
    e = settled()
    e.failed(500.0)
    assert e.take_post(620.0)
    e.connected(650.0)
    assert e.stable_at() == 650.0 + STABLE
    assert e.take_stable(650.0 + STABLE - 0.1) is None
    assert e.failing and e.posted


def test_stable_ends_the_episode_clears_the_message_and_restarts_the_backoff():
    e = settled()
    e.failed(500.0)
    assert [e.next_delay() for _ in range(4)] == [2.0, 4.0, 8.0, 16.0]
    assert e.take_post(620.0)
    e.connected(650.0)
    assert e.take_stable(650.0 + STABLE) == Stable(recovered=True, clear=True)
    assert not e.failing and not e.posted
    assert e.stable_at() is None
    assert e.next_delay() == 2.0


def test_an_episode_that_ends_within_grace_has_nothing_to_clear():
    e = settled()
    e.failed(500.0)
    e.connected(502.0)
    assert e.take_stable(502.0 + STABLE) == Stable(recovered=True, clear=False)
    assert e.post_at() is None


def test_failing_again_during_recovery_continues_the_episode():
    e = settled()
    e.failed(500.0)
    e.connected(505.0)  # up, not yet stable ...
    e.disconnected()  # ... and down again: the same episode
    e.failed(506.0)
    assert e.stable_at() is None
    assert e.post_at() == 500.0 + GRACE  # counted from the first failure
    # a guest that fails right after each connect still gets its message
    for t in range(510, 620, 10):
        e.connected(float(t))
        e.disconnected()
        e.failed(t + 1.0)
    assert e.take_post(620.0)
    # a relapse after the message: still posted, cleared only once stable
    e.connected(630.0)
    e.disconnected()
    e.failed(631.0)
    assert e.posted and not e.take_post(700.0)
    e.connected(700.0)
    assert e.take_stable(700.0 + STABLE) == Stable(recovered=True, clear=True)


def test_unjudged_failures_start_no_episode_but_back_off():
    e = settled()
    e.failed(500.0, judged=False)
    e.failed(510.0, judged=False)
    assert not e.failing and e.post_at() is None
    assert [e.next_delay() for _ in range(3)] == [2.0, 4.0, 8.0]
    # a judged failure later starts the grace period from its own time
    e.failed(520.0)
    assert e.post_at() == 520.0 + GRACE


def test_a_settings_change_restarts_the_backoff_not_the_episode():
    e = settled()
    e.failed(500.0)
    e.next_delay()
    e.next_delay()
    e.restart_backoff()
    assert e.next_delay() == 2.0
    assert e.failing and e.post_at() == 500.0 + GRACE


@pytest.mark.parametrize("grace, stable", [(120.0, STABLE), (3.0, 3.0), (0.3, 0.3)])
def test_stable_is_never_longer_than_grace(grace: float, stable: float):
    e = episode(grace)
    assert e.stable == stable
    e.failed(0.0)
    e.connected(1.0)
    assert e.stable_at() == 1.0 + stable
