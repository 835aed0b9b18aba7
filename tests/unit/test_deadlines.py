"""The process-wide deadline watcher behind every request's deadline
(transport.base._Deadlines): one thread, whatever the number of requests."""

import threading
import time

from xscontainer.transport import adapter as adapter_mod
from xscontainer.transport import base

from .test_monitor_ticker import wait_for


def test_a_watch_fires_at_its_deadline_and_aborts_its_request():
    deadlines = base._Deadlines()
    watch = base._Watch()
    aborted = threading.Event()
    watch.attach(aborted.set)
    started = time.monotonic()
    deadlines.add(started + 0.2, watch)
    assert aborted.wait(3)
    assert watch.fired and time.monotonic() - started >= 0.2


def test_a_finished_request_is_never_aborted():
    deadlines = base._Deadlines()
    watch = base._Watch()
    aborted = threading.Event()
    watch.attach(aborted.set)
    deadlines.add(time.monotonic() + 0.1, watch)
    watch.finish()
    time.sleep(0.3)
    assert not aborted.is_set() and not watch.fired
    wait_for(lambda: deadlines.pending() == 0)


def test_an_earlier_deadline_added_later_wakes_the_watcher():
    deadlines = base._Deadlines()
    late, soon = base._Watch(), base._Watch()
    deadlines.add(time.monotonic() + 60, late)
    time.sleep(0.05)  # the watcher sleeps until the late one
    deadlines.add(time.monotonic() + 0.1, soon)
    wait_for(lambda: soon.fired, timeout=3)
    assert not late.fired


def test_many_requests_cost_one_thread():
    before = threading.active_count()
    deadlines = base._Deadlines()
    watches = [base._Watch() for _ in range(500)]
    for i, watch in enumerate(watches):
        deadlines.add(time.monotonic() + 0.05 + (i % 7) * 0.01, watch)
        if i % 2:
            watch.finish()
    assert threading.active_count() <= before + 1
    wait_for(lambda: all(w.fired for w in watches[::2]))
    assert not any(w.fired for w in watches[1::2])
    wait_for(lambda: deadlines.pending() == 0)


def test_a_bounded_request_starts_no_thread_of_its_own(monkeypatch):
    started = []
    real_start = threading.Thread.start

    def start(self):
        started.append(self.name)
        real_start(self)

    adapter = adapter_mod.BoundedAdapter(request_deadline=5)
    monkeypatch.setattr(threading.Thread, "start", start)
    for _ in range(20):
        with adapter.streaming("GET /_ping"):
            pass
    # at most the process's deadline watcher, started once
    assert started in ([], ["deadlines"])
