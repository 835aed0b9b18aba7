"""One preparation of a VM at a time, across the processes of a host.

A plugin call for a VM runs on the host the VM is resident on (calls are
forwarded there), so a lock on that host is enough: an fcntl lock on
`<run dir>/prepare-<vm uuid>.lock`, held for the whole preparation. The kernel
releases it when the holder exits, however it exits, so a killed call never
leaves a VM locked.

`held(vm_uuid, wait)` waits up to `wait` seconds for a preparation that is
already running, then fails with PrepareInProgress; `wait=0` tries once, for
the chores (diagnose, the monitor) that rather skip a turn than wait.
"""

import contextlib
import errno
import fcntl
import os
import string
import time
from typing import Iterator

from xscontainer import errors, paths

POLL = 0.2
# what of a VM uuid goes into the lock's file name
_SAFE = frozenset(string.ascii_letters + string.digits + "-")


def _path(vm_uuid: str) -> str:
    safe = "".join(c for c in vm_uuid if c in _SAFE)  # ASCII: any locale can name it
    return os.path.join(paths.run_dir(), "prepare-%s.lock" % safe)


@contextlib.contextmanager
def held(vm_uuid: str, wait: float) -> Iterator[None]:
    base = paths.run_dir()
    os.makedirs(base, mode=0o700, exist_ok=True)
    fd = os.open(_path(vm_uuid), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
            if time.monotonic() >= deadline:
                raise errors.PrepareInProgress(
                    "Another preparation of VM %s is running on this host (it did not end "
                    "within %d s). Wait for it to finish, then call prepare again if needed."
                    % (vm_uuid, wait), vm_uuid)
            time.sleep(POLL)
        yield
    finally:
        os.close(fd)  # releases the lock
