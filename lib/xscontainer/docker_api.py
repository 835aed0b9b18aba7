"""The Docker Engine API as xscontainer uses it, through the Docker SDK.

The SDK's APIClient builds URLs and parameters and raises its error types; a
transport adapter (xscontainer.transport) carries the bytes and bounds every
response. The API version is negotiated from the engine's unversioned /version,
so the same code talks to Docker 20.10 (API 1.41), Docker 29 (minimum 1.44) and
Podman's compatibility API (1.40/1.41), with every SDK release from 5.0.3 on.

Engines differ where clients must not see it, and DockerClient evens it out:

* The negotiated version can be kept per engine (a VersionCache: a file per VM
  for the plugin's processes, memory for the monitor), so a call need not ask
  /version (Podman takes about 0.4 s to answer it). Every reply names its
  engine (the Server header, e.g. "Docker/28.5.2 (linux)", "Libpod/5.4.2
  (linux)"): a reply from another engine than the cached one, or a request
  refused for its API version, negotiates again.
* Podman's container list has no health in Status; the health filters of the
  same endpoint say which running containers are healthy, unhealthy or
  starting (one to three more requests, whatever the number of containers),
  and Status gets Docker's suffix, so docker_ps reads the same.
* A lifecycle operation the container's state does not allow (pausing a
  paused container) is Docker's 409 (500 for unpausing a running one) and
  Podman's 500 "container state improper": all become the same error, which
  says the container's state.
"""

import functools
import json
import logging
import re
import threading
from typing import Any, Callable, Dict, Iterator, List, Optional

import docker
import docker.errors
import docker.utils
import requests.exceptions
import urllib3.exceptions

from xscontainer import errors
from xscontainer import logs as logs_mod
from xscontainer.apiversions import (
    MAX_API,
    MIN_API,
    FileVersionCache,
    MemoryVersionCache,
    VersionCache,
    version_tuple,
)
from xscontainer.log import guest_text
from xscontainer.operations import table
from xscontainer.operations.table import check_container_ref
from xscontainer.transport.adapter import BoundedAdapter
from xscontainer.transport.base import deadline_at
from xscontainer.transport.stream import LineSplitter

__all__ = ["MAX_API", "MIN_API", "DockerClient", "FileVersionCache", "MemoryVersionCache",
           "VersionCache", "deadline_at", "engine_name", "negotiate"]

log = logging.getLogger(__name__)

MAX_EVENT_BYTES = 1 << 20
# Bytes of an error reply's body read for its message.
MAX_ERROR_BODY = 64 * 1024
STOP_TIMEOUT = 10  # seconds Docker waits before killing on stop/restart
# Seconds a logs request may take, first byte sent to last byte read (the
# call's own deadline still ends it earlier): Docker itself takes about 5 s to
# read 10,000 lines of a container that logged 50 MB.
LOGS_DEADLINE = 45.0
# Docker's messages are quoted in errors up to this many characters.
MAX_DOCKER_MESSAGE = 500


def negotiate(version_info: Dict[str, Any]) -> str:
    """The API version to use with an engine, from its /version reply."""
    server = version_info.get("ApiVersion")
    if not server or not isinstance(server, str):
        raise errors.DockerAPIUnsupported(
            "The Docker engine did not report its API version; is this a Docker engine?"
        )
    server_min = version_info.get("MinAPIVersion") or MIN_API
    if not isinstance(server_min, str):
        raise errors.DockerAPIUnsupported(
            "The Docker engine reported an unreadable minimum API version %.100r." % (server_min,)
        )
    chosen = min(server, MAX_API, key=version_tuple)
    if version_tuple(chosen) < version_tuple(MIN_API):
        raise errors.DockerAPIUnsupported(
            "The Docker engine speaks API %s; xscontainer needs %s or newer. Upgrade Docker "
            "in the VM." % (server, MIN_API)
        )
    if version_tuple(chosen) < version_tuple(server_min):
        raise errors.DockerAPIUnsupported(
            "The Docker engine requires API %s or newer; xscontainer speaks up to %s. Upgrade "
            "xscontainer." % (server_min, MAX_API)
        )
    return chosen


# A request refused for the API version it asked for (Docker: "client version
# 1.53 is too new. Maximum supported API version is 1.41"; "... is too old.
# Minimum supported API version is 1.44"; Podman: "... API version ...").
_VERSION_REFUSED = re.compile(r"client version .* is too (new|old)|api version", re.IGNORECASE)
# HTTP 500 answers that mean what 409 Conflict means: Podman's "container state
# improper" (for pausing a paused container, unpausing a running one, ...) and
# Docker's own "Container ... is not paused" for unpausing a running one.
_STATE_IMPROPER = re.compile(r"container state improper|is not paused|is already paused"
                             r"|is not running", re.IGNORECASE)
_CONFLICT = 409
# How a container's State.Status reads in the conflict error.
_STATE_WORDS = {"running": "running", "paused": "paused", "exited": "not running (exited)",
                "created": "not running (created, never started)", "dead": "dead",
                "restarting": "restarting", "removing": "being removed",
                "stopped": "not running (stopped)", "configured": "not running (created, never "
                "started)"}
HEALTH_STATES = ("healthy", "unhealthy", "starting")
_HEALTH_SUFFIX = {"healthy": " (healthy)", "unhealthy": " (unhealthy)",
                  "starting": " (health: starting)"}


def engine_name(version_info: Dict[str, Any]) -> str:
    """'Podman' for Podman's compatibility API, else 'Docker'."""
    components = version_info.get("Components")
    for component in components if isinstance(components, list) else []:
        if isinstance(component, dict) and "podman" in str(component.get("Name", "")).lower():
            return "Podman"
    return "Docker"


class DockerClient:
    """One guest's Docker engine over a transport adapter."""

    def __init__(self, adapter: BoundedAdapter, where: str, timeout: float = 30.0,
                 on_close: Optional[Callable[[], None]] = None) -> None:
        self.where = where
        self.adapter = adapter
        self._on_close = on_close
        self._closing = threading.Event()
        # The unix URL only makes the SDK set up its "http+docker://" scheme; the
        # adapter mounted over it decides where requests really go.
        self._api = docker.APIClient(base_url="unix:///var/run/docker.sock",
                                     version=MIN_API, timeout=timeout)
        self._api.mount("http+docker://", adapter)
        # requests would otherwise read the environment's proxy settings and
        # ~/.netrc on every request (a third of an idle monitor's work); they
        # never apply to a guest's Docker socket
        self._api.trust_env = False
        self.version_info: Dict[str, Any] = {}
        self.api_version = MIN_API
        self.engine = "Docker"
        # the version cache and this engine's key in it; the Server header the
        # cached entry expects (None: negotiated by this client itself)
        self._cache: Optional[VersionCache] = None
        self._cache_key = ""
        self._expected_server: Optional[str] = None
        self._last_server = ""
        self._engine_changed = False
        self.negotiations = 0  # /version requests made to negotiate (for tests)
        self._api.hooks["response"].append(self._on_response)

    def negotiate(self, cache: Optional[VersionCache] = None,
                  key: str = "") -> "DockerClient":
        """Settle the API version: from `cache` under `key` when it has one (the
        engine is checked on every reply), else from the engine's /version."""
        self._cache, self._cache_key = cache, key
        entry = cache.get(key) if cache is not None else None
        if entry is None:
            return self._negotiate_now()
        self.api_version = entry["api"]
        self.engine = entry["engine"]
        self._expected_server = entry["server"]
        self._api._version = self.api_version
        return self

    def _negotiate_now(self) -> "DockerClient":
        self._expected_server = None
        self._engine_changed = False
        self.negotiations += 1
        self.version_info = self._object("read its version", self._api.version,
                                         api_version=False)
        self.api_version = negotiate(self.version_info)
        self.engine = engine_name(self.version_info)
        self._api._version = self.api_version
        log.info("negotiated API %s with %s %s in %s", self.api_version, self.engine,
                 guest_text(self.version_info.get("Version", "?"), 40), self.where)
        if self._cache is not None:
            self._cache.put(self._cache_key, {"api": self.api_version, "engine": self.engine,
                                              "server": self._last_server})
        return self

    @property
    def from_cache(self) -> bool:
        """Whether the API version in use came from the cache (no /version asked)."""
        return self._expected_server is not None

    def _on_response(self, response: Any, *args: Any, **kwargs: Any) -> Any:
        server = response.headers.get("Server", "") if response is not None else ""
        server = server[:200] if isinstance(server, str) else ""
        self._last_server = server
        if self._expected_server is not None and server and server != self._expected_server:
            self._engine_changed = True
        return response

    def _renegotiate(self, why: str) -> None:
        log.info("Docker in %s: %s; negotiating the API version again", self.where, why)
        if self._cache is not None:
            self._cache.drop(self._cache_key)
        self._negotiate_now()

    def close(self) -> None:
        self._closing.set()
        try:
            self._api.close()
        finally:
            if self._on_close is not None:
                self._on_close()

    def __enter__(self) -> "DockerClient":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # -- queries ----------------------------------------------------------------

    def ps(self) -> List[Any]:
        """The container list as Docker sent it: a list (its items are checked by
        xmlenc.docker_ps, which drops what is not a container)."""
        action = "list containers"
        result = self._call(action, self._api.containers, all=True)
        if not isinstance(result, list):
            raise self._malformed(action, "a JSON %s instead of a list" % _json_type(result))
        if self.engine == "Podman":
            self._add_health(result)
        return result

    def _ids(self, health: List[str]) -> List[str]:
        action = "list containers by health"
        result = self._call(action, self._api.containers, filters={"health": health})
        if not isinstance(result, list):
            raise self._malformed(action, "a JSON %s instead of a list" % _json_type(result))
        return [str(c.get("Id") or c.get("ID") or "") for c in result if isinstance(c, dict)]

    def _add_health(self, containers: List[Any]) -> None:
        """Podman's list carries no health: Status gets Docker's suffix, from the
        list's own health filters (running containers with a health check only)."""
        running = [c for c in containers if isinstance(c, dict) and c.get("State") == "running"
                   and isinstance(c.get("Status"), str) and "(health" not in c["Status"]
                   and "(unhealthy)" not in c["Status"] and "Health" not in c]
        if not running:
            return
        checked = set(self._ids(list(HEALTH_STATES)))
        if not any(c.get("Id") in checked for c in running):
            return
        healthy = set(self._ids(["healthy"]))
        unhealthy = set(self._ids(["unhealthy"]))
        for c in running:
            if c.get("Id") not in checked:
                continue
            state = "healthy" if c["Id"] in healthy else (
                "unhealthy" if c["Id"] in unhealthy else "starting")
            c["Status"] = c["Status"] + _HEALTH_SUFFIX[state]

    def inspect(self, ref: str) -> Dict[str, Any]:
        check_container_ref(ref)
        return self._object("inspect container %s" % ref, self._api.inspect_container, ref)

    def top(self, ref: str) -> Dict[str, Any]:
        check_container_ref(ref)
        action = "list the processes of container %s" % ref
        top = self._object(action, self._api.top, ref)
        for key in ("Titles", "Processes"):
            if top.get(key) is not None and not isinstance(top[key], list):
                raise self._malformed(action, "%s is a JSON %s instead of a list"
                                      % (key, _json_type(top[key])))
        return top

    def stats(self, ref: str) -> Dict[str, Any]:
        """One stats sample of a container, at once (one-shot: precpu_stats is
        empty unless the engine fills it anyway; stats.py says what follows)."""
        check_container_ref(ref)
        url = self._api._url("/containers/{0}/stats", ref)

        def sample() -> Any:
            return self._api._result(
                self._api._get(url, params={"stream": "false", "one-shot": "true"}), json=True)

        return self._object("report the resource use of container %s" % ref, sample)

    def logs(self, ref: str, sink: Callable[[str, bytes], None], tail: int,
             since: Optional[str] = None, timestamps: bool = False,
             max_bytes: int = logs_mod.MAX_LOG_READ) -> None:
        """A container's logs (stdout and stderr, the last `tail` lines, from
        `since` in Unix seconds), each payload handed to `sink(stream, data)` as
        it is read (logs.demultiplex): bounded in bytes and by the request's
        deadline, never held whole."""
        inspect = self.inspect(ref)  # NoSuchContainer, and whether it has a TTY
        config = inspect.get("Config")
        tty = bool(config.get("Tty")) if isinstance(config, dict) else False
        params: Dict[str, Any] = {"stdout": "1", "stderr": "1", "tail": str(tail),
                                  "timestamps": "1" if timestamps else "0"}
        if since is not None:
            params["since"] = since
        action = "read the logs of container %s" % ref
        url = self._api._url("/containers/{0}/logs", ref)
        with self.adapter.streaming("GET /containers/%s/logs" % ref, LOGS_DEADLINE):
            response = self._call(action, self._api._get, url, params=params, stream=True)
            try:
                self._check_stream(action, response)
                read = functools.partial(response.raw.read, decode_content=False)
                self._call(action, logs_mod.demultiplex,
                           read, tty, sink, max_bytes)
            finally:
                response.close()

    def _check_stream(self, action: str, response: Any) -> None:
        """A streamed reply's status and encoding, its error read with a bound."""
        encoding = str(response.headers.get("Content-Encoding", "identity")).strip().lower()
        if encoding not in ("", "identity"):
            raise self._malformed(action, "a %s-encoded reply" % encoding[:40])
        status = int(response.status_code)
        if status < 400:
            return
        body = response.raw.read(MAX_DOCKER_MESSAGE * 8, decode_content=False) or b""
        try:
            message = json.loads(body.decode("utf-8", "replace")).get("message")
        except (ValueError, AttributeError):
            message = None
        text = str(message if message else body.decode("utf-8", "replace")).strip()
        text = text if len(text) <= MAX_DOCKER_MESSAGE else text[:MAX_DOCKER_MESSAGE] + "..."
        cls = errors.NoSuchContainer if status == 404 else errors.DockerError
        raise cls.from_response(status, text, action, self.where)

    def info(self) -> Dict[str, Any]:
        return self._object("report its info", self._api.info)

    def version(self) -> Dict[str, Any]:
        return self._object("report its version", self._api.version)

    def probe_transport(self) -> None:
        """Check that the guest still answers, as cheaply as the transport can
        (SSH: a round trip its sshd answers, no Docker request); a transport
        without such a check pings Docker."""
        probe = getattr(self.adapter, "probe", None)
        if probe is None:
            self.ping()
        else:
            probe()

    def ping(self) -> None:
        """Check that the engine answers (GET /_ping, whose body is "OK"): the
        cheapest request there is, for probing a quiet connection."""
        action = "answer a ping"
        if self._call(action, self._api.ping) is not True:
            raise self._malformed(action, "not OK")

    # -- lifecycle ------------------------------------------------------------------

    def lifecycle(self, operation: str, ref: str) -> None:
        """A lifecycle operation of the table (operations/table.py) on a container."""
        op = table.find(operation)
        if op is None or not op.is_lifecycle:
            raise errors.InvalidArgument("Unknown container operation %r." % (operation,))
        check_container_ref(ref)
        method = getattr(self._api, operation)
        action = "%s container %s" % (operation, ref)
        try:
            if operation in ("stop", "restart"):
                self._call(action, method, ref, timeout=STOP_TIMEOUT)
            else:
                self._call(action, method, ref)
        except errors.DockerError as exc:
            if type(exc) is not errors.DockerError or not _is_state_conflict(exc):
                raise
            raise self._conflict(action, ref, exc) from exc

    def _conflict(self, action: str, ref: str, exc: errors.DockerError) -> errors.DockerError:
        """The same error for every engine: Docker's 409 and Podman's 500 "container
        state improper" both say what state the container is in."""
        try:
            state = self.inspect(ref).get("State")
            status = state.get("Status") if isinstance(state, dict) else None
            described = "it is %s" % _STATE_WORDS.get(status, str(status)[:40]) \
                if isinstance(status, str) and status else "its state is unknown"
        except errors.XSContainerError:
            described = "its state is unknown"
        return errors.DockerError(
            "Docker in %s could not %s: the container's state does not allow it (%s). "
            "Refresh the container list and retry." % (self.where, action, described),
            str(_CONFLICT), exc.docker_message, status=_CONFLICT,
            docker_message=exc.docker_message)

    # -- events ---------------------------------------------------------------------

    def events(self, filters: Optional[Dict[str, Any]] = None,
               max_event_bytes: int = MAX_EVENT_BYTES) -> Iterator[Dict[str, Any]]:
        """Docker's /events stream as dicts (either event shape), until closed.

        Events are newline-delimited JSON; each is bounded by max_event_bytes.
        Returns when the stream ends or close() is called from another thread.
        """
        stream = self._call("stream its events", self._api.events, filters=filters, decode=False)
        lines = LineSplitter(max_event_bytes)
        try:
            for chunk in stream:
                for line in lines.feed(chunk):
                    if line.strip():
                        yield _decode_event(line)
            rest = lines.rest()
            if rest.strip():
                yield _decode_event(rest)
        except errors.ResponseTooLarge as exc:
            raise _event_too_large(self.where, max_event_bytes) from exc
        except errors.XSContainerError:
            raise
        except Exception as exc:  # the stream's failure modes vary by SDK/urllib3 release
            if self._closing.is_set():
                return
            raise self._unreachable(exc) from exc
        finally:
            stream.close()

    def event_stream(self, filters: Optional[Dict[str, Any]] = None,
                     max_event_bytes: int = MAX_EVENT_BYTES) -> Optional["EventStream"]:
        """Docker's /events as an EventStream, read without blocking, when the
        transport can give its body so (SSH); else None: read events()."""
        selectable = getattr(self.adapter, "selectable_body", None)
        if selectable is None:
            return None
        action = "stream its events"

        def open_stream() -> Any:
            params = {"filters": docker.utils.convert_filters(filters)} if filters else {}
            response = self._api._get(self._api._url("/events"), params=params, stream=True,
                                      timeout=None)
            if response.status_code >= 400:  # its message, read within a bound
                response._content = response.raw.read(MAX_ERROR_BODY)
                response._content_consumed = True
                response.close()
                self._api._raise_for_status(response)
            return response

        response = self._call(action, open_stream)
        body = selectable(response)
        if body is None:
            response.close()
            return None
        return EventStream(body, response, self.where, max_event_bytes)

    # -- error translation ----------------------------------------------------------

    def _object(self, action: str, fn: Callable[..., Any], *args: Any, **kwargs: Any
                ) -> Dict[str, Any]:
        result = self._call(action, fn, *args, **kwargs)
        if not isinstance(result, dict):
            raise self._malformed(action, "a JSON %s instead of an object" % _json_type(result))
        return result

    def _malformed(self, action: str, what: str) -> errors.MalformedReply:
        return errors.MalformedReply(
            "Docker in %s sent a malformed reply when asked to %s: %s. Whatever answers on the "
            "VM's Docker socket is not a working Docker engine; check the engine in the VM."
            % (self.where, action, what))

    def _call(self, action: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            result = self._call_once(action, fn, *args, **kwargs)
        except errors.DockerError as exc:
            if not (self.from_cache and type(exc) is errors.DockerError and exc.status == 400
                    and _VERSION_REFUSED.search(exc.docker_message)):
                raise
            # refused before doing anything: negotiate, then ask again once
            self._renegotiate("API %s was refused" % self.api_version)
            return self._call_once(action, fn, *args, **kwargs)
        if self._engine_changed and self.from_cache:
            self._renegotiate("another engine answers (%s)" % self._last_server)
        return result

    def _call_once(self, action: str, fn: Callable[..., Any], *args: Any, **kwargs: Any
                   ) -> Any:
        try:
            return fn(*args, **kwargs)
        except (errors.Timeout, errors.ResponseTooLarge, errors.MalformedReply) as exc:
            # from the adapter, which does not know the VM
            raise type(exc)("Docker in %s could not %s: %s" % (self.where, action, exc.message),
                            *exc.details) from exc
        except errors.XSContainerError:
            raise
        except RecursionError as exc:
            raise self._malformed(action, "JSON nested too deeply") from exc
        except docker.errors.APIError as exc:
            status = int(getattr(exc.response, "status_code", 0) or 0)
            cls = errors.NoSuchContainer if isinstance(exc, docker.errors.NotFound) \
                else errors.DockerError
            raise cls.from_response(status, _explanation(exc), action, self.where) from exc
        except docker.errors.DockerException as exc:
            raise self._unreachable(exc) from exc
        except requests.exceptions.Timeout as exc:
            raise errors.Timeout(
                "Docker in %s did not answer in time (%s)." % (self.where, exc)
            ) from exc
        except (UnicodeError, json.JSONDecodeError) as exc:
            raise self._malformed(action, "not JSON (%s)" % _short(exc)) from exc
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError,
                OSError) as exc:
            if isinstance(exc, ValueError):  # requests' JSONDecodeError is one
                raise self._malformed(action, "not JSON (%s)" % _short(exc)) from exc
            raise self._unreachable(exc) from exc
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
            # the SDK reading a reply of the wrong shape (an error body that is a
            # list, a JSON value where it wants an object)
            raise self._malformed(action, "%s" % _short(exc)) from exc

    def _unreachable(self, exc: BaseException) -> errors.DockerUnreachable:
        detail = ""
        failure_details = getattr(self.adapter, "failure_details", None)
        if failure_details is not None:
            detail = failure_details()
        return errors.DockerUnreachable(
            "Cannot reach the Docker engine in %s: %s. Check that Docker (or Podman) is running "
            "in the VM and that the user may use its socket; diagnose (xscontainer diagnose VM, "
            "or the plugin's diagnose function) says which socket it found, its owner, group "
            "and mode, and how to fix it."
            % (self.where, detail or _short(exc))
        )


class EventStream:
    """Docker's /events on a body read without blocking (transport.sshbridge.ChannelBody):
    `fileno()` to wait on, `read()` for the events that arrived (either shape,
    each bounded by max_event_bytes), `ended` once the stream is over."""

    def __init__(self, body: Any, response: Any, where: str, max_event_bytes: int) -> None:
        self._body = body
        self._response = response
        self.where = where
        self.max_event_bytes = max_event_bytes
        self._lines = LineSplitter(max_event_bytes)

    def fileno(self) -> int:
        return int(self._body.fileno())

    @property
    def ended(self) -> bool:
        return bool(self._body.ended)

    @property
    def closed(self) -> bool:
        """The connection under the stream is closed (the next read ends it)."""
        return bool(getattr(self._body, "closed", False))

    def read(self) -> List[Dict[str, Any]]:
        try:
            lines = self._lines.feed(self._body.read_available())
            if self._body.ended:
                lines.append(self._lines.rest())
        except errors.ResponseTooLarge as exc:
            raise _event_too_large(self.where, self.max_event_bytes) from exc
        except errors.MalformedReply as exc:
            raise errors.MalformedReply(
                "Docker in %s sent a malformed event stream: %s." % (self.where, exc.message)
            ) from exc
        except (OSError, EOFError) as exc:
            raise errors.DockerUnreachable(
                "The Docker event stream of %s failed: %s" % (self.where, _short(exc))) from exc
        return [_decode_event(line) for line in lines if line.strip()]

    def close(self) -> None:
        try:
            self._response.close()
        except Exception:  # a broken connection may fail to close any way
            log.debug("closing the event stream of %s failed", self.where, exc_info=True)


def _is_state_conflict(exc: errors.DockerError) -> bool:
    return exc.status == _CONFLICT or (
        exc.status == 500 and _STATE_IMPROPER.search(exc.docker_message) is not None)


def _event_too_large(where: str, max_event_bytes: int) -> errors.ResponseTooLarge:
    return errors.ResponseTooLarge(
        "A Docker event from %s exceeded %d bytes." % (where, max_event_bytes))


def _decode_event(line: bytes) -> Dict[str, Any]:
    try:
        event = json.loads(line.decode("utf-8", "replace"))
    except ValueError as exc:
        raise errors.DockerError("Docker sent an unreadable event: %s" % exc) from exc
    if not isinstance(event, dict):
        raise errors.DockerError("Docker sent an unexpected event: %.100r" % (event,))
    return event


def _explanation(exc: Any) -> str:
    explanation = getattr(exc, "explanation", None)
    if explanation:
        text = str(explanation.decode("utf-8", "replace")
                   if isinstance(explanation, (bytes, bytearray)) else explanation).strip()
        return text if len(text) <= MAX_DOCKER_MESSAGE else text[:MAX_DOCKER_MESSAGE] + "..."
    return _short(exc)


def _short(exc: BaseException) -> str:
    text = str(exc) or exc.__class__.__name__
    return text if len(text) < MAX_DOCKER_MESSAGE else text[:MAX_DOCKER_MESSAGE] + "..."


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {dict: "object", list: "list", str: "string", type(None): "null"}.get(
        type(value), type(value).__name__)
