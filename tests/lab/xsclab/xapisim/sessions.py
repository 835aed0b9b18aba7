"""Sessions: login rules and validity. Sessions live in memory only, so a
restarted simulator answers SESSION_INVALID to every old session ref, as xapi
does after a restart."""

import threading
import uuid as uuidlib
from typing import Dict, Optional

from .errors import ApiError

ROOT = "root"


class Sessions:
    def __init__(self, changed: threading.Condition) -> None:
        # shares the store's lock so that a logout wakes blocked event.from calls
        self._changed = changed
        self._live: Dict[str, str] = {}  # session ref -> session uuid

    @staticmethod
    def authenticate(user: str, password: str, root_password: str, over_unix_socket: bool
                     ) -> None:
        """Root with the pool's password; over the unix socket root needs no
        password (dom0's local superuser), as with xapi."""
        if user != ROOT or (not over_unix_socket and password != root_password):
            raise ApiError("SESSION_AUTHENTICATION_FAILED", user, "Authentication failure")

    def login(self, user: str, password: str, root_password: str, over_unix_socket: bool
              ) -> str:
        self.authenticate(user, password, root_password, over_unix_socket)
        ref = "OpaqueRef:%s" % uuidlib.uuid4()
        with self._changed:
            self._live[ref] = str(uuidlib.uuid4())
        return ref

    def check(self, ref: object) -> str:
        """The session's uuid; SESSION_INVALID unless `ref` is a live session."""
        with self._changed:
            uuid: Optional[str] = self._live.get(ref) if isinstance(ref, str) else None
        if uuid is None:
            raise ApiError("SESSION_INVALID", ref)
        return uuid

    def logout(self, ref: str) -> None:
        with self._changed:
            self._live.pop(ref, None)
            self._changed.notify_all()

    def count(self) -> int:
        with self._changed:
            return len(self._live)
