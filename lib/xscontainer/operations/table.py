"""The Docker-backed plugin functions: names, arguments, kinds.

Standard library only (besides xscontainer.errors, which imports nothing of
the package): plugin.py and monitor/client.py import this at start-up, on the
path that must not load the Docker SDK or paramiko.

Every operation takes the VM (`vmuuid`) and one container reference, under
the argument name its clients have always used (`object` for the reads,
`container` for the lifecycle operations). A read may be repeated on another
path when the first did not answer; a lifecycle operation may not (it may
have happened).
"""

import re
from typing import Any, Dict, Mapping, NamedTuple, Optional, Tuple

from xscontainer import errors

VM_ARG = "vmuuid"
READ = "read"
LIFECYCLE = "lifecycle"

# A container reference from a client: a name, a short or full id.
CONTAINER_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
MAX_CONTAINER_REF = 255


def check_container_ref(ref: Any) -> str:
    """Validate a container name, short id or full id before it goes into a URL."""
    if not isinstance(ref, str) or not CONTAINER_RE.match(ref) or len(ref) > MAX_CONTAINER_REF:
        raise errors.InvalidArgument(
            "%r is not a container name or id: use the name (letters, digits, '_', '.', '-', "
            "starting with a letter or digit), the 10-character short id or the full id."
            % (ref,)
        )
    return ref


class Operation(NamedTuple):
    """One Docker-backed plugin function."""

    name: str  # the plugin function, and the monitor request's "fn"
    target: str  # the argument that names the container
    kind: str  # READ or LIFECYCLE

    @property
    def required(self) -> Tuple[str, ...]:
        """The argument keys a call must carry."""
        return (VM_ARG, self.target)

    @property
    def is_lifecycle(self) -> bool:
        return self.kind == LIFECYCLE

    @property
    def repeatable(self) -> bool:
        """Whether a call that got no answer may be made again another way."""
        return self.kind == READ

    def container_ref(self, args: Mapping[str, Any]) -> str:
        """The call's container reference, checked (InvalidArgument otherwise)."""
        return check_container_ref(args.get(self.target))


OPERATIONS: Dict[str, Operation] = {op.name: op for op in (
    Operation("get_inspect", "object", READ),
    Operation("get_top", "object", READ),
    Operation("start", "container", LIFECYCLE),
    Operation("stop", "container", LIFECYCLE),
    Operation("restart", "container", LIFECYCLE),
    Operation("pause", "container", LIFECYCLE),
    Operation("unpause", "container", LIFECYCLE),
)}


def find(name: Any) -> Optional[Operation]:
    """The operation called `name`, or None (for any value a request may hold)."""
    return OPERATIONS.get(name) if isinstance(name, str) else None


def lookup(name: Any) -> Operation:
    """The operation called `name`; InvalidArgument when there is none."""
    op = find(name)
    if op is None:
        raise errors.InvalidArgument("Unknown container operation %r." % (name,))
    return op
