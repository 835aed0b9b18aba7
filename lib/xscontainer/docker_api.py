"""The Docker Engine API as xscontainer uses it, through the Docker SDK.

The SDK's APIClient builds URLs and parameters and raises its error types; a
transport adapter (xscontainer.transport) carries the bytes and bounds every
response. The API version is negotiated from the engine's unversioned /version,
so the same code talks to Docker 20.10 (API 1.41), Docker 29 (minimum 1.44) and
Podman's compatibility API (1.40/1.41), with every SDK release from 5.0.3 on.
"""

import json
import logging
import threading
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import docker
import docker.errors
import requests.exceptions
import urllib3.exceptions

from xscontainer import errors
from xscontainer.operations import table
from xscontainer.operations.table import check_container_ref
from xscontainer.transport import BoundedAdapter
from xscontainer.transport.base import deadline_at

__all__ = ["MAX_API", "MIN_API", "DockerClient", "deadline_at", "engine_name", "negotiate"]

log = logging.getLogger(__name__)

# Oldest API we speak (Docker 1.12, the SDK's floor) and the newest whose
# response shapes we know; newer engines are asked for MAX_API (they serve it
# as long as their minimum allows).
MIN_API = "1.24"
MAX_API = "1.53"
MAX_EVENT_BYTES = 1 << 20
STOP_TIMEOUT = 10  # seconds Docker waits before killing on stop/restart
# Docker's messages are quoted in errors up to this many characters.
MAX_DOCKER_MESSAGE = 500


def _version_tuple(version: str) -> Tuple[int, ...]:
    try:
        return tuple(int(p) for p in version.split("."))
    except ValueError as exc:
        raise errors.DockerAPIUnsupported(
            "The Docker engine reported an unreadable API version %r." % version
        ) from exc


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
    chosen = min(server, MAX_API, key=_version_tuple)
    if _version_tuple(chosen) < _version_tuple(MIN_API):
        raise errors.DockerAPIUnsupported(
            "The Docker engine speaks API %s; xscontainer needs %s or newer. Upgrade Docker "
            "in the VM." % (server, MIN_API)
        )
    if _version_tuple(chosen) < _version_tuple(server_min):
        raise errors.DockerAPIUnsupported(
            "The Docker engine requires API %s or newer; xscontainer speaks up to %s. Upgrade "
            "xscontainer." % (server_min, MAX_API)
        )
    return chosen


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
        self.version_info: Dict[str, Any] = {}
        self.api_version = MIN_API
        self.engine = "Docker"

    def negotiate(self) -> "DockerClient":
        self.version_info = self._object("read its version", self._api.version,
                                         api_version=False)
        self.api_version = negotiate(self.version_info)
        self.engine = engine_name(self.version_info)
        self._api._version = self.api_version
        return self

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
        return result

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

    def info(self) -> Dict[str, Any]:
        return self._object("report its info", self._api.info)

    def version(self) -> Dict[str, Any]:
        return self._object("report its version", self._api.version)

    # -- lifecycle ------------------------------------------------------------------

    def lifecycle(self, operation: str, ref: str) -> None:
        """A lifecycle operation of the table (operations/table.py) on a container."""
        op = table.find(operation)
        if op is None or not op.is_lifecycle:
            raise errors.InvalidArgument("Unknown container operation %r." % (operation,))
        check_container_ref(ref)
        method = getattr(self._api, operation)
        action = "%s container %s" % (operation, ref)
        if operation in ("stop", "restart"):
            self._call(action, method, ref, timeout=STOP_TIMEOUT)
        else:
            self._call(action, method, ref)

    # -- events ---------------------------------------------------------------------

    def events(self, filters: Optional[Dict[str, Any]] = None,
               max_event_bytes: int = MAX_EVENT_BYTES) -> Iterator[Dict[str, Any]]:
        """Docker's /events stream as dicts (either event shape), until closed.

        Events are newline-delimited JSON; each is bounded by max_event_bytes.
        Returns when the stream ends or close() is called from another thread.
        """
        stream = self._call("stream its events", self._api.events, filters=filters, decode=False)
        pending = b""
        try:
            for chunk in stream:
                pending += chunk
                while b"\n" in pending:
                    line, _, pending = pending.partition(b"\n")
                    if line.strip():
                        yield _decode_event(line)
                if len(pending) > max_event_bytes:
                    raise errors.ResponseTooLarge(
                        "A Docker event from %s exceeded %d bytes." % (self.where, max_event_bytes)
                    )
            if pending.strip():
                yield _decode_event(pending)
        except errors.XSContainerError:
            raise
        except Exception as exc:  # the stream's failure modes vary by SDK/urllib3 release
            if self._closing.is_set():
                return
            raise self._unreachable(exc) from exc
        finally:
            stream.close()

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
            "Cannot reach the Docker engine in %s: %s. Check that Docker is running in the VM "
            "and that the user may use its socket (e.g. is in the docker group)."
            % (self.where, detail or _short(exc))
        )


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
