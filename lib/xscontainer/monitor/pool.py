"""Following the pool: XAPI's VM events decide which VMs this host monitors.

`PoolWatcher` (one thread, the event session) takes an event.from token first,
then loads every VM record, then follows event.from from that token, so no
change between the load and the first wait is missed. On session loss, a XAPI
restart or any failure it logs out where possible, logs in again with capped
backoff and starts over with a full load (which also notices VMs destroyed in
between).

`Supervisor` turns records into decisions: start a worker for a VM that must
be monitored here (rules.why_not_monitored), hand a monitored VM's newer
records to its worker and its docker values to the publisher, stop the worker
and withdraw the docker keys when the VM must no longer be monitored here, and
(pool master only) clean up TLS secrets of destroyed VMs and docker keys left
on halted VMs. It also restarts any worker whose thread died.

A registration flag that vanishes (not one set to False) does not stop the
monitoring at once: rewriting the key as a single-key edit (remove, then add, as
a repeated register or another client does) shows it absent for a moment. The
worker keeps running and the published data stays; only if the flag is still
absent FLAG_SETTLE seconds later does the monitoring stop and the data go.
"""

import logging
import threading
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Set

from xscontainer import errors, xapi_keys
from xscontainer.monitor import rules, secrets, xapiconn
from xscontainer.monitor.coalesce import Backoff
from xscontainer.monitor.options import Settings
from xscontainer.monitor.publisher import Publisher
from xscontainer.monitor.worker import VMWorker
from xscontainer.prepare import pending
from xscontainer.xapi import NULL_REF, Xapi, logout_ref

log = logging.getLogger(__name__)

WorkerFactory = Callable[[str, Mapping[str, Any]], VMWorker]
EVENT_CLASSES = ["vm", "pool"]
FLAG_SETTLE = 5.0  # seconds a vanished registration flag has to come back


class Supervisor:
    def __init__(self, publisher: Publisher, settings: Settings,
                 worker_factory: WorkerFactory) -> None:
        self.publisher = publisher
        self.settings = settings
        self._factory = worker_factory
        self._lock = threading.RLock()
        self.this_host: Optional[str] = None
        self.master: Optional[str] = None
        self._workers: Dict[str, VMWorker] = {}
        self._records: Dict[str, Dict[str, Any]] = {}  # monitored VMs' latest records
        self._retired: List[VMWorker] = []
        self._tls: Dict[str, Set[str]] = {}  # every VM ref seen -> TLS secret uuids
        self._known: Set[str] = set()  # every VM ref seen
        self._sweeps: Set[str] = set()
        self._expiries: Dict[str, int] = {}  # VM ref -> deadline of its pending preparation
        self._settling: Dict[str, int] = {}  # VM ref -> generation of its vanished flag
        self._generation = 0
        self.flag_settle = FLAG_SETTLE
        self._stopped = False
        self.restarts = 0

    @property
    def is_master(self) -> bool:
        return self.this_host is not None and self.this_host == self.master

    # -- input from the watcher ------------------------------------------------------

    def full_load(self, records: Mapping[str, Mapping[str, Any]], this_host: str,
                  master: Optional[str]) -> None:
        with self._lock:
            self.this_host = this_host
            self.master = master
            for ref in sorted(self._known - set(records)):
                self.on_delete(ref)
            for ref, record in records.items():
                self.on_record(ref, record)
            log.info("following %d VMs; monitoring %d on this host%s", len(records),
                     len(self._workers), " (pool master)" if self.is_master else "")

    def on_events(self, events: List[Mapping[str, Any]]) -> None:
        for event in events:
            cls = str(event.get("class", "")).lower()
            ref = str(event.get("ref", ""))
            operation = event.get("operation")
            snapshot = event.get("snapshot")
            if cls == "vm":
                if operation == "del":
                    self.on_delete(ref)
                elif isinstance(snapshot, Mapping):
                    self.on_record(ref, snapshot)
            elif cls == "pool" and isinstance(snapshot, Mapping):
                master = snapshot.get("master")
                with self._lock:
                    if isinstance(master, str) and master != self.master:
                        self.master = master
                        log.info("the pool master is now %s%s", master,
                                 " (this host)" if self.is_master else "")

    def on_record(self, ref: str, record: Mapping[str, Any], may_settle: bool = True) -> None:
        with self._lock:
            if self._stopped or self.this_host is None:
                return
            self._known.add(ref)
            self._tls[ref] = rules.tls_secret_uuids(record)
            self._expire_pending_later(ref, record)
            reason = rules.why_not_monitored(record, self.this_host)
            worker = self._workers.get(ref)
            current = rules.docker_values(record)
            if reason is None:
                self._records[ref] = dict(record)
                if self._settling.pop(ref, None) is not None:
                    log.info("VM %s is registered again; its monitoring goes on",
                             record.get("uuid"))
                if worker is None:
                    self.publisher.track(ref, str(record.get("uuid", "")), current)
                    self._start(ref, record)
                else:
                    worker.update(record)
                    self.publisher.observe(ref, current)
                return
            if may_settle and worker is not None and rules.flag_absent(record) \
                    and self.flag_settle > 0 \
                    and rules.why_not_monitored(self._with_flag(record), self.this_host) is None:
                self._records[ref] = dict(record)
                self._settle_later(ref, record)
                return
            self._records.pop(ref, None)
            self._settling.pop(ref, None)
            if worker is not None:
                log.info("stopping monitoring VM %s: %s", record.get("uuid"), reason)
                self._retire(ref)
                self.publisher.withdraw(ref)
            elif self.is_master and rules.is_stale_halted(record):
                self._sweep_later(ref)

    @staticmethod
    def _with_flag(record: Mapping[str, Any]) -> Dict[str, Any]:
        """The record as it would be with the registration flag set to True."""
        config = rules.other_config(record)
        config[xapi_keys.MONITOR] = "True"
        changed = dict(record)
        changed["other_config"] = config
        return changed

    def _settle_later(self, ref: str, record: Mapping[str, Any]) -> None:
        """The flag of a monitored VM vanished: decide FLAG_SETTLE seconds later."""
        if ref in self._settling:
            return
        self._generation += 1
        generation = self._settling[ref] = self._generation
        log.info("the registration flag of VM %s vanished; monitoring goes on unless it "
                 "stays absent for %.1f s", record.get("uuid"), self.flag_settle)

        def settle(_xapi: Xapi) -> None:
            with self._lock:
                if self._settling.get(ref) != generation:
                    return  # registered again, or decided otherwise meanwhile
                del self._settling[ref]
                latest = self._records.get(ref)
                if latest is not None:
                    self.on_record(ref, latest, may_settle=False)

        self.publisher.submit("checking the registration flag of VM %s" % ref, settle,
                              self.flag_settle)

    def on_delete(self, ref: str) -> None:
        with self._lock:
            self._known.discard(ref)
            self._records.pop(ref, None)
            self._settling.pop(ref, None)
            if ref in self._workers:
                log.info("VM %s was destroyed; stopping its monitoring", ref)
                self._retire(ref)
            self.publisher.forget(ref)
            uuids = self._tls.pop(ref, set())
            if uuids and self.is_master:
                self.publisher.submit("cleaning up the TLS secrets of VM %s" % ref,
                                      secrets.cleanup_job(ref, uuids))

    # -- workers ---------------------------------------------------------------------------

    def _start(self, ref: str, record: Mapping[str, Any]) -> None:
        worker = self._factory(ref, record)
        self._workers[ref] = worker
        worker.start()

    def _retire(self, ref: str) -> None:
        worker = self._workers.pop(ref)
        worker.stop()
        self._retired.append(worker)

    def worker_by_uuid(self, uuid: str) -> Optional[VMWorker]:
        with self._lock:
            for worker in self._workers.values():
                if worker.uuid == uuid:
                    return worker
        return None

    def workers(self) -> List[VMWorker]:
        with self._lock:
            return list(self._workers.values())

    def check(self) -> None:
        """Restart dead worker threads; forget retired ones that finished."""
        with self._lock:
            if self._stopped:
                return
            for ref, worker in list(self._workers.items()):
                if not worker.is_alive():
                    log.error("the worker of VM %s died; restarting it", worker.uuid)
                    self.restarts += 1
                    self._start(ref, self._records.get(ref) or {"uuid": worker.uuid})
            self._retired = [w for w in self._retired if w.is_alive()]

    def stop_all(self, timeout: float) -> bool:
        """Stop every worker, withdraw their docker keys; True if all stopped in time."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._stopped = True
            refs = list(self._workers)
            for ref in refs:
                self._retire(ref)
                self.publisher.withdraw(ref)
            workers = list(self._retired)
        ok = True
        for worker in workers:
            if not worker.join(max(0.0, deadline - time.monotonic())):
                log.warning("the worker of VM %s did not stop in time", worker.uuid)
                ok = False
        return ok

    # -- pending TLS preparations of VMs on this host -----------------------------------------

    def _expire_pending_later(self, ref: str, record: Mapping[str, Any]) -> None:
        """A VM resident here (or halted, on the pool master) with a pending TLS
        preparation (plugin prepare, generatecerts): undo it at its deadline unless
        it completes first, so that the CD with the server key never stays longer
        (prepare/pending.py)."""
        deadline = pending.deadline_of(record)
        resident = record.get("resident_on")
        ours = resident == self.this_host or (
            self.is_master and (not resident or resident == NULL_REF))  # halted: the master's
        if deadline is None or not ours:
            self._expiries.pop(ref, None)
            return
        if self._expiries.get(ref) == deadline:
            return
        self._expiries[ref] = deadline
        self._submit_expiry(ref, deadline)

    def _submit_expiry(self, ref: str, when: float) -> None:
        def expire(xapi: Xapi) -> None:
            again = pending.expire_due(xapi, ref)
            with self._lock:
                if again is None:
                    self._expiries.pop(ref, None)
                elif ref in self._expiries:
                    self._submit_expiry(ref, again)

        delay = max(0.0, when - time.time()) + 0.5
        self.publisher.submit("expiring the pending TLS preparation of VM %s" % ref, expire,
                              delay)

    # -- pool master's chores ---------------------------------------------------------------

    def _sweep_later(self, ref: str) -> None:
        if ref in self._sweeps:
            return
        self._sweeps.add(ref)

        def sweep(xapi: Xapi) -> None:
            with self._lock:
                self._sweeps.discard(ref)
            if self.publisher.is_tracked(ref):
                return
            record = xapi.vm_record(ref)
            if not rules.is_stale_halted(record):
                return
            for key, value in rules.docker_values(record).items():
                if value is not None:
                    xapi.remove_vm_other_config(ref, key)
            log.info("removed docker data left on halted VM %s", record.get("uuid"))

        self.publisher.submit("sweeping halted VM %s" % ref, sweep, self.settings.sweep_delay)


class PoolWatcher:
    """Follows XAPI's VM events on its own session and feeds the supervisor."""

    def __init__(self, supervisor: Supervisor, settings: Settings,
                 login: Optional[Callable[[float], Xapi]] = None) -> None:
        self.supervisor = supervisor
        self.settings = settings
        self._login = login or Xapi.login
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._xapi: Optional[Xapi] = None
        self.logins = 0
        self.loads = 0
        self.ready = threading.Event()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            xapi = self._xapi
        if xapi is not None:
            xapiconn.interrupt(xapi)

    def run(self) -> None:
        backoff = Backoff(1.0, 30.0)
        while not self._stop.is_set():
            try:
                self._session(backoff)
            except Exception as exc:  # logged, then log in again
                if self._stop.is_set():
                    break
                if isinstance(exc, errors.XSContainerError):
                    log.warning("lost XAPI (%s); logging in again", exc.message)
                else:
                    log.exception("following XAPI events failed; logging in again")
            self._stop.wait(backoff.next_delay())

    def _session(self, backoff: Backoff) -> None:
        xapi = self._login(self.settings.event_timeout + 30.0)
        self.logins += 1
        with self._lock:
            self._xapi = xapi
        try:
            if self._stop.is_set():
                return
            # the token first, then the records: a change in between shows up as
            # an event after the load (handled twice, harmlessly), never lost
            token = xapi.call("event.from", EVENT_CLASSES, "", 0.0)["token"]
            records = xapi.call("VM.get_all_records")
            this_host = xapi.this_host()
            master = xapiconn.pool_master(xapi)
            self.supervisor.full_load(records, this_host, master)
            self.loads += 1
            self.ready.set()
            backoff.reset()
            while not self._stop.is_set():
                result = xapi.call("event.from", EVENT_CLASSES, token,
                                   float(self.settings.event_timeout))
                token = result["token"]
                self.supervisor.on_events(result.get("events") or [])
        finally:
            with self._lock:
                self._xapi = None
            if self._stop.is_set():  # stop() disabled this session's transport
                logout_ref(xapi.session_ref)
            else:
                xapi.close()  # logs out if XAPI still knows the session
