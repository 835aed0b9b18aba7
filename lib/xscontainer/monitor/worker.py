"""One monitored VM: a persistent connection to its Docker engine, kept published.

A VM's **worker thread** connects (Guest.docker()) and publishes; then, on
SSH, it hands the VM's Docker event stream to the process's shared reader
(eventreader.py) and ends: a connected VM costs no thread of ours, only
paramiko's transport thread. (A transport whose stream cannot be read so, TLS,
keeps its worker thread blocked in the stream.) An event only notes which
keys it made stale. What happens at a time runs as the worker's tick() on the
process's shared Ticker (ticker.py: one scheduler thread and a small fixed
pool): publishing docker_info, docker_version and docker_ps after
connecting, then refreshing what events made stale (coalesced), probing a
quiet connection (a round trip on the SSH connection, and every third time
Docker's /_ping), resyncing periodically. Nothing grows per event: the
coalescers hold at most three keys, and the changes under way at most
coalesce.MAX_UNDER_WAY container ids.
docker_ps is refreshed `quiet` after a burst of events ends, at the latest
`max_delay` after its first event, and at most once per `min_interval` (a
`create` or `kill` does not start the quiet timer: its `start` or `die`
follows; while containers created or killed still wait for it, a burst is
refreshed every `busy_delay`, then once `quiet` after the last); docker_info
(counts, engine facts no client shows live) on a slower clock (INFO_QUIET /
INFO_MAX_DELAY).

A connection ends when the event stream ends or fails, a probe or refresh
fails, the VM's connection settings change, or monitoring stops: the client
is closed (which ends the stream) and a worker thread (started again when the
shared reader saw the stream end), unless stopping, reconnects: at once after
a settings change, else after a capped exponential backoff. The failure
episode (episode.py) says when: a failure that lasts `grace` seconds posts one
XAPI message on the VM (body: the diagnosis) and removes the VM's docker data,
which can no longer be vouched for; recovery republishes and destroys the
message.

Connecting and publishing the three keys has a deadline as a whole
(connect_deadline: CONNECT_DEADLINE, or XSCONTAINER_MONITOR_CONNECT_DEADLINE),
as has each later refresh: a guest that answers too slowly fails like one that
does not answer, and a failure of an attempt that never published counts from
the attempt's start, so the message is posted `grace` after monitoring began
to fail, not `grace` after the deadline.
"""

import logging
import threading
import time
from typing import Any, Callable, Dict, FrozenSet, Mapping, Optional, Tuple

from xscontainer import errors, paths, xapi_keys, xmlenc
from xscontainer.diagnose import diagnose
from xscontainer.docker_api import DockerClient, EventStream, MemoryVersionCache, deadline_at
from xscontainer.guest import Guest
from xscontainer.monitor import events, rules
from xscontainer.monitor.coalesce import Backoff, ChangesUnderWay, Coalescer
from xscontainer.monitor.episode import FailureEpisode
from xscontainer.monitor.eventreader import EventReader, default_reader
from xscontainer.monitor.options import Settings
from xscontainer.monitor.publisher import Publisher
from xscontainer.monitor.ticker import Ticker, default_ticker
from xscontainer.xapi import Xapi

log = logging.getLogger(__name__)

# /info fields that change on their own (clock, goroutines, file descriptors,
# listeners): a difference only there is not worth a XAPI write.
VOLATILE_INFO = ("SystemTime", "NGoroutines", "NFd", "NEventsListener")
# docker_info only matters for its counts and engine facts, which no client
# shows live: a burst refreshes it on a slower clock than docker_ps.
INFO_QUIET = 1.0
INFO_MAX_DELAY = 5.0
# Containers changed between connecting and the event subscription taking
# effect are caught by one more refresh this long after connecting.
CATCH_UP = 2.0
JOIN_TIMEOUT = 2.0
# A quiet connection's probes: a round trip on the transport, and every this
# many a ping of Docker (a Docker that hangs while its VM answers is noticed
# within this many probe intervals, or at the next resync).
DOCKER_PROBE_EVERY = 3
# Seconds to connect and publish docker_version, docker_info and docker_ps
# (each request also ends within its own deadline), and for any later refresh.
CONNECT_DEADLINE = 60.0
CONNECT_DEADLINE_ENV = "XSCONTAINER_MONITOR_CONNECT_DEADLINE"


def connect_deadline() -> float:
    """CONNECT_DEADLINE, or the environment's when it is a positive number."""
    return paths.env_seconds(CONNECT_DEADLINE_ENV, CONNECT_DEADLINE)

Connect = Callable[[Guest], DockerClient]
# the API version negotiated with each VM's engine, for reconnections
VERSIONS = MemoryVersionCache()


def _default_connect(guest: Guest) -> DockerClient:
    return guest.docker(cache=VERSIONS)


def info_fingerprint(info: Mapping[str, Any]) -> str:
    return xmlenc.docker_info({k: v for k, v in info.items() if k not in VOLATILE_INFO})


class VMWorker:
    def __init__(self, ref: str, record: Mapping[str, Any], xapi: Xapi, publisher: Publisher,
                 settings: Settings, connect: Connect = _default_connect,
                 clock: Callable[[], float] = time.monotonic,
                 ticker: Optional[Ticker] = None,
                 reader: Optional[EventReader] = None) -> None:
        self.ref = ref
        self.uuid = str(record.get("uuid", ""))
        self.name = str(record.get("name_label", ""))
        self.xapi = xapi
        self.publisher = publisher
        self.settings = settings
        self._connect = connect
        self._clock = clock
        self._cond = threading.Condition()
        self._refresh_lock = threading.Lock()
        self._record: Dict[str, Any] = dict(record)
        self._stopping = False
        self._reconnect = False
        self._client: Optional[DockerClient] = None
        self._healthy = False
        self._ticker = ticker if ticker is not None else default_ticker()
        self._reader = reader if reader is not None else default_reader()
        # the event stream the shared reader reads for us, and its client
        self._stream: Optional[EventStream] = None
        self._stream_client: Optional[DockerClient] = None
        self._publish_deadline: Optional[float] = None
        self._tick_error: Optional[BaseException] = None
        self._next_resync = 0.0
        self._catch_up: Optional[float] = None
        self._last_traffic = 0.0
        self._probes_to_ping = DOCKER_PROBE_EVERY  # probes until the next is a ping
        # containers created (or killed) whose start (or die) has not come yet
        self._under_way = ChangesUnderWay()
        self._coalescer = Coalescer(settings.quiet, settings.max_delay,  # docker_ps
                                    settings.min_interval, busy_delay=settings.busy_delay,
                                    changes=self._under_way)
        self._info_coalescer = Coalescer(max(settings.quiet, INFO_QUIET),
                                         max(settings.max_delay, INFO_MAX_DELAY),
                                         settings.min_interval, busy_delay=settings.busy_delay,
                                         changes=self._under_way)
        self._episode = FailureEpisode(settings.grace,
                                       Backoff(settings.backoff_first, settings.backoff_cap))
        self._settings_key: Tuple[Tuple[str, str], ...] = rules.connection_settings(record)
        self._info_fingerprint: Optional[str] = None
        self._thread: Optional[threading.Thread] = None
        self._last_event_at = 0.0
        self.connect_deadline = connect_deadline()
        self._attempt_started: Optional[float] = None  # None once the attempt published
        self.stats: Dict[str, Any] = {
            "connects": 0, "failures": 0, "events": 0, "refreshes": 0,
            "ps_refreshes": 0, "probes": 0, "last_error": "",
        }

    @property
    def where(self) -> str:
        return "VM %s (%s)" % (self.name, self.uuid)

    # -- control from the supervisor ---------------------------------------------------

    def start(self) -> None:
        with self._cond:
            self._start_thread(None)

    def _start_thread(self, ended: Optional[Tuple[DockerClient, Optional[BaseException]]]
                      ) -> None:
        # with self._cond held
        self._thread = threading.Thread(target=self._run, args=(ended,),
                                        name="vm-" + self.uuid[:8], daemon=True)
        self._thread.start()

    def is_alive(self) -> bool:
        """Monitoring: a thread of ours runs, or the shared reader reads our stream."""
        with self._cond:
            thread, streaming = self._thread, self._stream is not None
        return streaming or (thread is not None and thread.is_alive())

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            client = self._client
            self._cond.notify_all()
        if client is not None:
            _close_quietly(client)

    def join(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                thread, streaming = self._thread, self._stream is not None
                remaining = deadline - time.monotonic()
                if streaming and remaining > 0:
                    self._cond.wait(min(remaining, 0.1))
                    continue
            if thread is not None and thread.is_alive() and remaining > 0:
                thread.join(min(remaining, 0.1))
                continue
            return not self.is_alive()

    def update(self, record: Mapping[str, Any]) -> None:
        """A newer record of the VM (still to be monitored here)."""
        new_settings = rules.connection_settings(record)
        client = None
        with self._cond:
            self._record = dict(record)
            self.name = str(record.get("name_label", self.name))
            if self._client is None and _only_pinned(self._settings_key, new_settings):
                # most likely our own connection attempt pinning the key: checked
                # against the server's key once connected (_connection)
                self._settings_key = new_settings
            elif new_settings != self._settings_key:
                log.info("the connection settings of %s changed: reconnecting", self.where)
                self._settings_key = new_settings
                self._reconnect = True
                client = self._client
                self._cond.notify_all()
        if client is not None:
            _close_quietly(client)

    # -- for the control socket ----------------------------------------------------------

    def live_client(self) -> Optional[DockerClient]:
        with self._cond:
            return self._client if self._healthy and not self._stopping else None

    def refresh_ps(self, client: DockerClient) -> str:
        """Fetch and publish docker_ps now; returns the XML."""
        with self._refresh_lock:
            xml = xmlenc.docker_ps(client.ps())
            self.publisher.set(self.ref, xapi_keys.DOCKER_PS, xml)
            self.stats["ps_refreshes"] += 1
        return xml

    def connection_lost(self) -> None:
        """A control request found the connection broken: reconnect."""
        with self._cond:
            client = self._client
            self._healthy = False
        if client is not None:
            _close_quietly(client)

    def status(self) -> Dict[str, Any]:
        xapi_writes = self.publisher.writes_for(self.ref)
        with self._cond:
            state = "connected" if self._healthy else (
                "failing" if self._episode.failing else "connecting")
            result = dict(self.stats)
            result.update(state=state, name=self.name, alive=self.is_alive(),
                          failure_posted=self._episode.posted,
                          xapi_writes=xapi_writes)
        return result

    # -- the worker thread -----------------------------------------------------------------

    def _run(self, ended: Optional[Tuple[DockerClient, Optional[BaseException]]]) -> None:
        """A worker thread: connects, and after a failure waits and connects again.
        Once connected, the thread ends if the shared reader reads the event
        stream; when that stream ends, a new thread starts here with `ended`
        (the client and the stream's error) to finish that connection."""
        if ended is None:
            log.info("monitoring %s", self.where)
        while True:
            try:
                if ended is not None:
                    client, error = ended
                    ended = None
                    self._finish_connection(client, error)
                else:
                    with self._cond:
                        if self._stopping:
                            break
                        self._reconnect = False
                        self._attempt_started = self._clock()
                    if self._connection():
                        return  # the shared reader has the stream; this thread ends
            except Exception as exc:  # every failure is logged and retried
                with self._cond:
                    if self._stopping:
                        break
                    reconnecting = self._reconnect
                if not reconnecting:
                    self._failed(exc)
            with self._cond:
                if self._stopping:
                    break
                if self._reconnect:
                    self._episode.restart_backoff()
                    continue
                delay = self._episode.next_delay()
            self._wait_before_retry(delay)
        log.info("stopped monitoring %s", self.where)

    def _connection(self) -> bool:
        """Connect, publish (as the first tick) and follow the event stream: True
        once the shared reader reads the stream; else (a transport whose stream
        must be read by blocking in it) until the connection ends."""
        with self._cond:
            record = dict(self._record)
            settings_key = rules.connection_settings(record)
        guest = Guest(self.xapi, self.uuid, self.ref, record)
        deadline = time.monotonic() + self.connect_deadline
        with deadline_at(deadline):
            client = self._connect(guest)
        try:
            with self._cond:
                self._client = client
                self._settings_key = self._effective_settings(settings_key, client)
                latest = rules.connection_settings(self._record)
                if latest != self._settings_key and not _only_pinned(latest, self._settings_key):
                    log.info("the connection settings of %s changed while connecting: "
                             "reconnecting", self.where)
                    self._reconnect = True
                self.stats["connects"] += 1
                self._under_way.clear()  # a new connection, a new event history
                stop = self._stopping or self._reconnect
                # the first tick publishes all three keys (within the connect deadline);
                # later ones refresh what events made stale, probe and resync
                self._publish_deadline = deadline
                self._tick_error = None
        except BaseException:
            self._drop_client(client)
            raise
        if stop:
            self._drop_client(client)
            return False
        error: Optional[BaseException] = None
        try:
            self._ticker.add(self)
            # the event stream for the shared reader, if the transport gives one
            stream = client.event_stream(filters=events.EVENT_FILTERS)
        except Exception as exc:  # the connection ends as if its stream had failed
            error = exc
        else:
            if stream is not None:
                with self._cond:
                    handed = self._client is client and not self._stopping
                    if handed:
                        self._stream, self._stream_client = stream, client
                if handed:
                    self._reader.add(stream, self)
                    return True
                stream.close()
            else:
                error = self._read_events(client)
        self._finish_connection(client, error)
        return False

    def _finish_connection(self, client: DockerClient, error: Optional[BaseException]) -> None:
        """The connection's stream is over: close it; raise what ended it (nothing
        when stopping or reconnecting)."""
        self._ticker.remove(self, JOIN_TIMEOUT)
        self._drop_client(client)
        with self._cond:
            if self._stopping or self._reconnect:
                return
            error = self._tick_error or error
        if error is not None:
            raise error
        raise errors.DockerUnreachable(
            "The Docker event stream of %s ended (Docker restarted or the "
            "connection closed)." % self.where)

    def _drop_client(self, client: DockerClient) -> None:
        with self._cond:
            if self._client is client:
                self._client = None
                self._healthy = False
                self._episode.disconnected()
        _close_quietly(client)

    def _effective_settings(self, key: Tuple[Tuple[str, str], ...],
                            client: DockerClient) -> Tuple[Tuple[str, str], ...]:
        """The settings as they will read once we pinned the guest's host key ourselves."""
        items = dict(key)
        server_key = client.adapter.server_key_b64
        if xapi_keys.SSH_HOST_KEY not in items and server_key is not None:
            items[xapi_keys.SSH_HOST_KEY] = server_key
        return tuple(sorted(items.items()))

    # -- timers, run by the shared Ticker ------------------------------------------------

    def next_due(self) -> Optional[float]:
        """When tick() has something to do (None: nothing while connected like this)."""
        with self._cond:
            if self._client is None or self._tick_error is not None or self._stopping:
                return None
            if self._publish_deadline is not None:
                return float("-inf")  # connected, nothing published yet: at once
            self._last_traffic = max(self._last_traffic, self._last_event_at)
            wake = min(self._next_resync, self._last_traffic + self.settings.probe)
            for timer in (self._coalescer.due_at(), self._info_coalescer.due_at(),
                          self._catch_up, self._episode.stable_at()):
                if timer is not None:
                    wake = min(wake, timer)
            return wake

    def tick(self) -> None:
        """Publish after connecting; then refresh what events made stale (coalesced),
        resync, catch up, probe a quiet connection. A failure ends the connection
        (the event stream closes; the worker thread then handles the failure)."""
        with self._cond:
            client = self._client
            deadline = self._publish_deadline
        if client is None:
            return
        try:
            if deadline is not None:
                self._refresh(client, events.ALL, deadline)
                now = self._clock()
                with self._cond:
                    self._publish_deadline = None
                    self._next_resync = now + self.settings.resync
                    self._catch_up = now + CATCH_UP
                    self._last_traffic = now
                self._became_healthy()
                return
            self._follow_step(client)
        except Exception as exc:  # handed to the worker thread, which logs it
            with self._cond:
                if self._client is client and self._tick_error is None:
                    self._tick_error = exc
            _close_quietly(client)

    def _follow_step(self, client: DockerClient) -> None:
        now = self._clock()
        with self._cond:
            keys = self._coalescer.take(now) | self._info_coalescer.take(now)
        self._check_stable(now)
        if now >= self._next_resync:
            keys = events.ALL
            self._next_resync = now + self.settings.resync
        if self._catch_up is not None and now >= self._catch_up:
            keys = keys | frozenset((xapi_keys.DOCKER_PS, xapi_keys.DOCKER_INFO))
            self._catch_up = None
        probe = not keys and now >= self._last_traffic + self.settings.probe
        with self._cond:  # a resync or catch-up read is a refresh too
            if xapi_keys.DOCKER_PS in keys:
                self._coalescer.take_all(now)
            if xapi_keys.DOCKER_INFO in keys:
                self._info_coalescer.take_all(now)
        if keys:
            self._refresh(client, keys)
        elif probe:
            # At hundreds of VMs the probes are most of an idle monitor's work:
            # most are a round trip on the connection (an SSH request, no Docker
            # request), every DOCKER_PROBE_EVERY-th a ping of Docker itself
            # (docker_version is re-read at each resync)
            self.stats["probes"] += 1
            self._probes_to_ping -= 1
            with deadline_at(time.monotonic() + self.connect_deadline):
                if self._probes_to_ping <= 0:
                    self._probes_to_ping = DOCKER_PROBE_EVERY
                    client.ping()
                else:
                    client.probe_transport()
        with self._cond:
            self._last_traffic = self._clock()

    # -- the event stream, read by the worker thread -----------------------------------------

    def _read_events(self, client: DockerClient) -> Optional[BaseException]:
        """Block in the event stream, noting what each event makes stale, until the
        stream ends (for a transport whose stream cannot go to the shared
        reader); its error, if any."""
        try:
            for message in client.events(filters=events.EVENT_FILTERS):
                if not self._note_event(client, message):
                    break  # a connection we closed
        except Exception as exc:  # handled by the caller
            return exc
        return None

    def stream_event(self, stream: EventStream, message: Dict[str, Any]) -> None:
        """From the shared reader: one event of our stream."""
        with self._cond:
            client = self._stream_client if self._stream is stream else None
        if client is not None:
            self._note_event(client, message)

    def stream_ended(self, stream: EventStream, error: Optional[BaseException]) -> None:
        """From the shared reader: our stream ended (error None), failed, or was
        closed. A new worker thread finishes the connection and reconnects."""
        with self._cond:
            if self._stream is not stream:
                return
            client = self._stream_client
            self._stream = self._stream_client = None
            if client is not None:
                self._start_thread((client, error))
            self._cond.notify_all()
        stream.close()

    def _note_event(self, client: DockerClient, message: Dict[str, Any]) -> bool:
        """Note what one event makes stale; False if `client` is not ours any more."""
        event = events.parse(message)
        keys = events.stale_keys(event)
        settle = events.settles(event)
        now = self._clock()
        with self._cond:
            if self._client is not client:
                return False
            self.stats["events"] += 1
            self._last_event_at = now
            if keys:
                if event is not None and event.type == "container":
                    # an event that changes nothing (attach, exec, init) neither
                    # begins nor completes a change
                    self._under_way.note(event.actor_id, now, settle)
                self._coalescer.note(keys - {xapi_keys.DOCKER_INFO}, now, settle)
                self._info_coalescer.note(keys & {xapi_keys.DOCKER_INFO}, now, settle)
        if keys:
            self._ticker.poke(self)
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s: %r -> refresh %s", self.where, event, ", ".join(sorted(keys)))
        return True

    def _refresh(self, client: DockerClient, keys: FrozenSet[str],
                 deadline: Optional[float] = None) -> None:
        if deadline is None:
            deadline = time.monotonic() + self.connect_deadline
        with self._refresh_lock, deadline_at(deadline):
            if xapi_keys.DOCKER_VERSION in keys:
                self.publisher.set(self.ref, xapi_keys.DOCKER_VERSION,
                                   xmlenc.docker_version(client.version()))
            if xapi_keys.DOCKER_INFO in keys:
                info = client.info()
                fingerprint = info_fingerprint(info)
                if (fingerprint != self._info_fingerprint
                        or self.publisher.desired(self.ref, xapi_keys.DOCKER_INFO) is None):
                    self._info_fingerprint = fingerprint
                    self.publisher.set(self.ref, xapi_keys.DOCKER_INFO, xmlenc.docker_info(info))
            if xapi_keys.DOCKER_PS in keys:
                self.publisher.set(self.ref, xapi_keys.DOCKER_PS, xmlenc.docker_ps(client.ps()))
                self.stats["ps_refreshes"] += 1
            self.stats["refreshes"] += 1

    # -- health ------------------------------------------------------------------------------

    def _became_healthy(self) -> None:
        """Connected and published. The failure episode ends only once the
        connection has stayed up a while (_check_stable)."""
        with self._cond:
            self._healthy = True
            self._attempt_started = None
            self._episode.connected(self._clock())
            self.stats["last_error"] = ""

    def _check_stable(self, now: float) -> None:
        with self._cond:
            stable = self._episode.take_stable(now)
        if stable is None:
            return
        if stable.recovered:
            log.info("monitoring %s works again", self.where)
        if stable.clear:
            self.publisher.clear_failure(self.ref)

    def _failed(self, exc: BaseException) -> None:
        now = self._clock()
        with self._cond:
            # An attempt that never published failed from its start (a guest
            # answering too slowly held it until the deadline).
            since = now if self._attempt_started is None else min(now, self._attempt_started)
            # Without XAPI the VM cannot be judged (nor a message posted): such
            # failures are retried but do not start the grace period.
            self._episode.failed(since, judged=not isinstance(exc, errors.XAPIError))
            self.stats["failures"] += 1
            self.stats["last_error"] = _describe(exc)
        if isinstance(exc, errors.XSContainerError):
            log.warning("cannot monitor %s, will retry: %s", self.where, exc.message)
        else:
            log.error("monitoring %s failed unexpectedly, will retry", self.where,
                      exc_info=(type(exc), exc, exc.__traceback__))

    def _wait_before_retry(self, delay: float) -> None:
        deadline = self._clock() + delay
        while True:
            with self._cond:
                if self._stopping or self._reconnect:
                    return
                now = self._clock()
                if not self._episode.take_post(now):
                    if now >= deadline:
                        return
                    post_at = self._episode.post_at()
                    wake = deadline if post_at is None else min(deadline, post_at)
                    self._cond.wait(wake - now)
                    continue
            self._post_failure()  # outside the lock: diagnosing takes a while

    def _post_failure(self) -> None:
        with self._cond:
            record = dict(self._record)
        try:
            body = diagnose(Guest(self.xapi, self.uuid, self.ref, record)).text()
        except Exception as exc:  # the message must still go out
            log.exception("diagnosing %s failed", self.where)
            body = "Container management cannot monitor %s: %s" % (self.where, _describe(exc))
        log.warning("monitoring %s has failed for %gs; posting a XAPI message",
                    self.where, self.settings.grace)
        self.publisher.set_failure(self.ref, body)
        self.publisher.blank(self.ref)
        with self._cond:
            self._info_fingerprint = None


def _only_pinned(old: Tuple[Tuple[str, str], ...], new: Tuple[Tuple[str, str], ...]) -> bool:
    """True if `new` is `old` plus a newly pinned SSH host key."""
    old_items, new_items = dict(old), dict(new)
    if xapi_keys.SSH_HOST_KEY in old_items or xapi_keys.SSH_HOST_KEY not in new_items:
        return False
    del new_items[xapi_keys.SSH_HOST_KEY]
    return old_items == new_items


def _close_quietly(client: DockerClient) -> None:
    try:
        client.close()
    except Exception:  # closing a broken connection may fail any way
        log.debug("closing a Docker client failed", exc_info=True)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, errors.XSContainerError):
        return exc.message
    return "%s: %s" % (exc.__class__.__name__, exc)
