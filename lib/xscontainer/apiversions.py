"""The Docker API versions xscontainer speaks, and where the version negotiated
with each engine is kept (docker_api.DockerClient.negotiate).

Apart from docker_api.py so that a plugin call can name its cache without
loading the Docker SDK (which it loads while it connects: containers.py).
"""

import json
import logging
import os
import re
import tempfile
import threading
from typing import Any, Dict, Optional, Tuple

from xscontainer import errors

log = logging.getLogger(__name__)

# Oldest API we speak (Docker 1.12, the SDK's floor) and the newest whose
# response shapes we know; newer engines are asked for MAX_API (they serve it
# as long as their minimum allows).
MIN_API = "1.24"
MAX_API = "1.53"
_API_RE = re.compile(r"\A1\.\d{1,3}\Z")
MAX_CACHE_FILE = 4096


def version_tuple(version: str) -> Tuple[int, ...]:
    try:
        return tuple(int(p) for p in version.split("."))
    except ValueError as exc:
        raise errors.DockerAPIUnsupported(
            "The Docker engine reported an unreadable API version %r." % version
        ) from exc


class VersionCache:
    """What was negotiated with an engine, by key (a VM and how it is reached):
    {"api": "1.41", "engine": "Podman", "server": "Libpod/5.4.2 (linux)"}."""

    def get(self, key: str) -> Optional[Dict[str, str]]:
        raise NotImplementedError

    def put(self, key: str, value: Dict[str, str]) -> None:
        raise NotImplementedError

    def drop(self, key: str) -> None:
        raise NotImplementedError


def _valid_entry(value: Any) -> Optional[Dict[str, str]]:
    if not isinstance(value, dict):
        return None
    api, engine, server = value.get("api"), value.get("engine"), value.get("server")
    if not (isinstance(api, str) and _API_RE.match(api) and engine in ("Docker", "Podman")
            and isinstance(server, str) and len(server) <= 200):
        return None
    if not (version_tuple(MIN_API) <= version_tuple(api) <= version_tuple(MAX_API)):
        return None
    return {"api": api, "engine": engine, "server": server}


class MemoryVersionCache(VersionCache):
    """For a long-lived process (the monitor)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: Dict[str, Dict[str, str]] = {}

    def get(self, key: str) -> Optional[Dict[str, str]]:
        with self._lock:
            entry = self._entries.get(key)
            return dict(entry) if entry else None

    def put(self, key: str, value: Dict[str, str]) -> None:
        entry = _valid_entry(value)
        with self._lock:
            if entry is not None:
                self._entries[key] = entry
            else:
                self._entries.pop(key, None)

    def drop(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)


class FileVersionCache(VersionCache):
    """One small JSON file per key in a root-only folder (the plugin runs as a
    new process per call). What cannot be read is a miss; what cannot be
    written is logged and forgotten: the cache only saves a request."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def _path(self, key: str) -> str:
        return os.path.join(self.folder, re.sub(r"[^A-Za-z0-9_.-]", "_", key)[:200] + ".json")

    def get(self, key: str) -> Optional[Dict[str, str]]:
        try:
            with open(self._path(key), "rb") as f:
                data = f.read(MAX_CACHE_FILE + 1)
            if len(data) > MAX_CACHE_FILE:
                return None
            return _valid_entry(json.loads(data.decode("utf-8")))
        except (OSError, ValueError, errors.DockerAPIUnsupported):
            return None

    def put(self, key: str, value: Dict[str, str]) -> None:
        entry = _valid_entry(value)
        if entry is None:
            self.drop(key)
            return
        try:
            os.makedirs(self.folder, mode=0o700, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-")  # mode 0600
            try:
                with os.fdopen(fd, "w") as f:
                    json.dump(entry, f)
                os.replace(tmp, self._path(key))
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError as exc:
            log.debug("cannot keep the negotiated API version in %s: %s", self.folder, exc)

    def drop(self, key: str) -> None:
        try:
            os.unlink(self._path(key))
        except OSError:
            pass  # not there
