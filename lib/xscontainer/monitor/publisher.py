"""The single writer of the monitor's XAPI state.

VM workers say what each docker key of their VM should hold (`set`), the pool
watcher reports what XAPI holds (`observe`), and one thread makes XAPI agree:

* a key is written only when the wanted value differs from what XAPI holds;
  only the latest wanted value is written (workers may update it faster);
* single-key edits only (Xapi.set_vm_other_config / remove_vm_other_config),
  so keys of XenCenter, Xen Orchestra and others in the same map survive;
* when an event snapshot shows a docker key other than what we last wrote
  (someone removed or changed it, or a migration source removed what this host
  had just published), the VM's other-config is read again and the difference
  written back: a stale snapshot costs one read, never a spurious write;
* when XAPI is down or the session is lost, failed writes stay pending and are
  redone with backoff once XAPI answers again;
* `withdraw` removes the docker keys (and any failure message) when monitoring
  stops, then forgets the VM;
* failure messages (XSCONTAINER_MONITOR_FAILED) are reconciled with what XAPI
  holds, so a daemon restart reuses or destroys existing ones.

Other XAPI writes of the monitor (stale-key sweeps, TLS secret clean-up) run
here as jobs, so they too are serialised and retried.
"""

import logging
import threading
import time
from typing import Callable, Dict, List, Mapping, Optional, Set

from xscontainer import errors, xapi_keys
from xscontainer.monitor import xapiconn
from xscontainer.monitor.coalesce import Backoff
from xscontainer.xapi import Xapi

log = logging.getLogger(__name__)

FAILURE_PRIORITY = 3
_UNSET = object()

Job = Callable[[Xapi], None]


class _Entry:
    """What the publisher knows about one VM it publishes for."""

    def __init__(self, uuid: str, written: Mapping[str, Optional[str]]) -> None:
        self.uuid = uuid
        self.desired: Dict[str, Optional[str]] = {}
        self.written: Dict[str, Optional[str]] = dict(written)
        self.verify = False
        self.withdrawing = False
        self.failure_body: Optional[str] = None
        # None: nothing to do; "post": make exactly one message exist; "clear": none
        self.failure_action: Optional[str] = None
        # True once we know XAPI holds no failure message for the VM
        self.message_absent = False
        self.writes = 0

    def pending(self) -> bool:
        if self.verify or self.failure_action is not None:
            return True
        return any(self.written.get(k) != v for k, v in self.desired.items())


class Publisher:
    def __init__(self, xapi: Xapi, retry_first: float = 0.5, retry_cap: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.xapi = xapi
        self._clock = clock
        self._cond = threading.Condition()
        self._entries: Dict[str, _Entry] = {}
        self._dirty: Set[str] = set()
        self._jobs: List[List[object]] = []  # [due, name, job]
        self._stop = False
        self._busy = False
        self._backoff = Backoff(retry_first, retry_cap)
        self.writes = 0
        self.xapi_failures = 0

    # -- what workers and the watcher say ------------------------------------------

    def track(self, ref: str, uuid: str, current: Mapping[str, Optional[str]]) -> None:
        """Start publishing for a VM whose record currently holds `current`."""
        with self._cond:
            entry = self._entries.get(ref)
            if entry is None:
                self._entries[ref] = _Entry(uuid, current)
            else:  # still withdrawing, or tracked again: read before deciding
                entry.withdrawing = False
                entry.desired.clear()
                entry.verify = True
                self._mark(ref)

    def set(self, ref: str, key: str, value: str) -> None:
        with self._cond:
            entry = self._entries.get(ref)
            if entry is None or entry.withdrawing:
                return
            if entry.desired.get(key, _UNSET) == value:
                return
            entry.desired[key] = value
            if entry.written.get(key) != value:
                self._mark(ref)

    def desired(self, ref: str, key: str) -> Optional[str]:
        with self._cond:
            entry = self._entries.get(ref)
            return entry.desired.get(key) if entry else None

    def observe(self, ref: str, current: Mapping[str, Optional[str]]) -> None:
        """An event snapshot's docker values: re-check if they differ from ours."""
        with self._cond:
            entry = self._entries.get(ref)
            if entry is None or entry.withdrawing:
                # a withdrawal removes each key once; what another host (the
                # migration destination) publishes afterwards is theirs
                return
            if any(entry.written.get(k) != current.get(k) for k in xapi_keys.DOCKER):
                entry.verify = True
                self._mark(ref)

    def withdraw(self, ref: str) -> None:
        """Monitoring stopped: remove the docker keys and failure message, then forget."""
        with self._cond:
            entry = self._entries.get(ref)
            if entry is None:
                return
            entry.withdrawing = True
            entry.verify = False
            entry.desired = {key: None for key in xapi_keys.DOCKER}
            entry.failure_body = None
            if not entry.message_absent:
                entry.failure_action = "clear"
            self._mark(ref)

    def blank(self, ref: str) -> None:
        """Remove the docker keys but keep publishing for the VM (data unknown for now)."""
        with self._cond:
            entry = self._entries.get(ref)
            if entry is None or entry.withdrawing:
                return
            entry.desired = {key: None for key in xapi_keys.DOCKER}
            self._mark(ref)

    def forget(self, ref: str) -> None:
        """The VM no longer exists."""
        with self._cond:
            self._entries.pop(ref, None)
            self._dirty.discard(ref)
            self._cond.notify_all()

    def set_failure(self, ref: str, body: str) -> None:
        with self._cond:
            entry = self._entries.get(ref)
            if entry is None or entry.withdrawing:
                return
            entry.failure_body = body
            entry.failure_action = "post"
            self._mark(ref)

    def clear_failure(self, ref: str) -> None:
        with self._cond:
            entry = self._entries.get(ref)
            if entry is None or (entry.message_absent and entry.failure_action is None):
                return
            entry.failure_body = None
            entry.failure_action = "clear"
            self._mark(ref)

    def submit(self, name: str, job: Job, delay: float = 0.0) -> None:
        """Run job(xapi) in the publisher thread after `delay`; retried on XAPI failure."""
        with self._cond:
            self._jobs.append([self._clock() + delay, name, job])
            self._cond.notify_all()

    def tracked(self) -> List[str]:
        with self._cond:
            return [ref for ref, e in self._entries.items() if not e.withdrawing]

    def is_tracked(self, ref: str) -> bool:
        with self._cond:
            entry = self._entries.get(ref)
            return entry is not None and not entry.withdrawing

    def writes_for(self, ref: str) -> int:
        """other-config write calls made for the VM (a set is two: remove, add)."""
        with self._cond:
            entry = self._entries.get(ref)
            return entry.writes if entry else 0

    def written(self, ref: str) -> Dict[str, Optional[str]]:
        with self._cond:
            entry = self._entries.get(ref)
            return dict(entry.written) if entry else {}

    # -- waiting -----------------------------------------------------------------------

    def wait_written(self, ref: str, key: str, value: str, timeout: float) -> bool:
        """Wait until XAPI holds `value` under `key` as far as we know."""
        deadline = self._clock() + timeout
        with self._cond:
            while True:
                entry = self._entries.get(ref)
                if entry is None or entry.withdrawing:
                    return False
                if entry.written.get(key) == value and not entry.verify:
                    return True
                remaining = deadline - self._clock()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)

    def flush(self, timeout: float) -> bool:
        """Wait until nothing is pending (used at shutdown)."""
        deadline = self._clock() + timeout
        with self._cond:
            while self._dirty or self._busy or any(e.pending() for e in self._entries.values()):
                remaining = deadline - self._clock()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.1))
            return True

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()

    # -- the thread --------------------------------------------------------------------

    def _mark(self, ref: str) -> None:
        self._dirty.add(ref)
        self._cond.notify_all()

    def run(self) -> None:
        while True:
            with self._cond:
                while not self._stop and not self._dirty and not self._due_jobs():
                    self._cond.wait(self._next_job_wait())
                if self._stop:
                    return
                refs = sorted(self._dirty)
                self._dirty.clear()
                jobs = self._due_jobs()
                for job in jobs:
                    self._jobs.remove(job)
                self._busy = True
            failed = False
            try:
                for ref in refs:
                    if not self._process(ref):
                        failed = True
                for job in jobs:
                    if not self._run_job(job):
                        failed = True
            except Exception:  # never let the writer die silently
                log.exception("the XAPI publisher failed unexpectedly; retrying")
                failed = True
                with self._cond:
                    self._dirty.update(refs)
                    self._jobs.extend(j for j in jobs if j not in self._jobs)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
            if failed:
                delay = self._backoff.next_delay()
                with self._cond:
                    if not self._stop:
                        self._cond.wait(delay)
            else:
                self._backoff.reset()

    def _due_jobs(self) -> List[List[object]]:
        now = self._clock()
        return [job for job in self._jobs if job[0] <= now]  # type: ignore[operator]

    def _next_job_wait(self) -> Optional[float]:
        if not self._jobs:
            return None
        return max(0.0, min(float(j[0]) for j in self._jobs) - self._clock())  # type: ignore[arg-type]

    def _run_job(self, job: List[object]) -> bool:
        _due, name, fn = job
        try:
            fn(self.xapi)  # type: ignore[operator]
            return True
        except errors.XSContainerError as exc:
            if isinstance(exc, errors.XAPIError) and exc.gone:
                return True
            self.xapi_failures += 1
            log.warning("%s failed, will retry: %s", name, exc.message)
            with self._cond:
                job[0] = self._clock()
                self._jobs.append(job)
            return False

    def _process(self, ref: str) -> bool:
        """Make XAPI agree for one VM; False if XAPI failed (it stays dirty)."""
        try:
            self._reconcile(ref)
            return True
        except errors.XSContainerError as exc:
            if isinstance(exc, errors.XAPIError) and exc.gone:
                log.info("VM %s is gone; nothing to publish", ref)
                self.forget(ref)
                return True
            self.xapi_failures += 1
            log.warning("publishing for VM %s failed, will retry: %s",
                        ref, exc.message)
            with self._cond:
                if ref in self._entries:
                    self._dirty.add(ref)
            return False

    def _reconcile(self, ref: str) -> None:
        with self._cond:
            entry = self._entries.get(ref)
            if entry is None:
                return
            verify = entry.verify
        if verify:
            fresh = self.xapi.vm_other_config(ref)
            with self._cond:
                entry.verify = False
                for key in xapi_keys.DOCKER:
                    entry.written[key] = fresh.get(key)
                self._cond.notify_all()
        for key in xapi_keys.DOCKER:
            with self._cond:
                if entry.verify:  # a newer snapshot disagreed meanwhile
                    self._dirty.add(ref)
                    break
                want = entry.desired.get(key, _UNSET)
                if want is _UNSET or want == entry.written.get(key):
                    continue
            if want is None:
                self.xapi.remove_vm_other_config(ref, key)
                calls = 1
            else:
                self.xapi.set_vm_other_config(ref, key, str(want))
                calls = 2  # remove_from_other_config + add_to_other_config
            with self._cond:
                entry.written[key] = want  # type: ignore[assignment]
                entry.writes += calls
                self.writes += calls
                if entry.desired.get(key, _UNSET) != want:
                    self._dirty.add(ref)  # changed while we wrote
                self._cond.notify_all()
        self._reconcile_failure(ref, entry)
        with self._cond:
            if entry.withdrawing and not entry.pending() and self._entries.get(ref) is entry:
                del self._entries[ref]
                log.info("withdrew the docker data of VM %s", entry.uuid)
                self._cond.notify_all()

    def _reconcile_failure(self, ref: str, entry: _Entry) -> None:
        with self._cond:
            action, body = entry.failure_action, entry.failure_body
        if action is None:
            return
        existing = xapiconn.vm_messages(self.xapi, xapi_keys.MONITOR_FAILED_MESSAGE, entry.uuid)
        keep = existing[:1] if action == "post" else []
        for message in existing[len(keep):]:
            self.xapi.destroy_message(message)
        if action == "post" and not keep and body is not None:
            self.xapi.create_vm_message(xapi_keys.MONITOR_FAILED_MESSAGE, entry.uuid, body,
                                        FAILURE_PRIORITY)
            log.warning("posted %s for VM %s", xapi_keys.MONITOR_FAILED_MESSAGE, entry.uuid)
        elif action == "clear" and existing:
            log.info("destroyed %s of VM %s", xapi_keys.MONITOR_FAILED_MESSAGE, entry.uuid)
        with self._cond:
            entry.message_absent = action == "clear"
            if entry.failure_action == action and entry.failure_body == body:
                entry.failure_action = None
