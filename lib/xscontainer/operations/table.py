"""The Docker-backed plugin functions: names, arguments, kinds.

Standard library only (besides xscontainer.errors, which imports nothing of
the package): plugin.py and monitor/client.py import this at start-up, on the
path that must not load the Docker SDK or paramiko.

Every operation takes the VM (`vmuuid`) and, for most, one container
reference, under the argument name its clients have always used (`object` for
the reads, `container` for the lifecycle operations); get_stats may omit it
(every running container) and get_ps has none. Optional arguments (`format`,
`tail`, `since`, `timestamps`, `all`) are checked here, before any connection,
by the same parsers both paths use. A read may be repeated on another path when
the first did not answer; a lifecycle operation may not (it may have happened).
"""

import re
from typing import Any, Dict, Mapping, NamedTuple, Optional, Tuple, Union

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


# -- optional arguments ----------------------------------------------------------

FORMAT_ARG = "format"
XML = "xml"
TEXT = "text"
JSON = "json"
TAIL_ARG = "tail"
SINCE_ARG = "since"
TIMESTAMPS_ARG = "timestamps"
ALL_ARG = "all"
DEFAULT_TAIL = 100
MAX_TAIL = 10000
_DIGITS = re.compile(r"\A[0-9]{1,12}\Z")
_SECONDS = re.compile(r"\A[0-9]{1,12}(\.[0-9]{1,9})?\Z")
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


def _given(args: Mapping[str, Any], key: str) -> Optional[str]:
    """The argument `key` as a stripped string, None when absent or empty."""
    value = args.get(key)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _bad(key: str, value: str, what: str) -> errors.InvalidArgument:
    return errors.InvalidArgument(
        "%s=%.40r is not valid: %s." % (key, value, what), key, value[:40])


def parse_format(args: Mapping[str, Any], default: str) -> str:
    """The answer's format: `default` (xml or text, what clients always got) or json."""
    value = _given(args, FORMAT_ARG)
    if value is None:
        return default
    if value.lower() in (default, JSON):
        return value.lower()
    raise _bad(FORMAT_ARG, value, "use format=%s (the default) or format=json" % default)


def parse_tail(args: Mapping[str, Any]) -> int:
    """The number of log lines asked for: 0 to MAX_TAIL, DEFAULT_TAIL when absent."""
    value = _given(args, TAIL_ARG)
    if value is None:
        return DEFAULT_TAIL
    if not _DIGITS.match(value) or int(value) > MAX_TAIL:
        raise _bad(TAIL_ARG, value, "use a whole number of lines from 0 to %d (default %d)"
                   % (MAX_TAIL, DEFAULT_TAIL))
    return int(value)


def parse_since(args: Mapping[str, Any]) -> Optional[str]:
    """The earliest log time asked for, Unix seconds (a fraction allowed), or None."""
    value = _given(args, SINCE_ARG)
    if value is None:
        return None
    if not _SECONDS.match(value):
        raise _bad(SINCE_ARG, value, "use Unix seconds, e.g. since=1700000000 or "
                   "since=1700000000.25 (date +%s prints the current time)")
    return value


def parse_flag(args: Mapping[str, Any], key: str, default: bool) -> bool:
    """A true/false argument (true, false, 1, 0, yes, no, on, off)."""
    value = _given(args, key)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise _bad(key, value, "use %s=true or %s=false" % (key, key))


Option = Union[str, int, bool, None]


class Operation(NamedTuple):
    """One Docker-backed plugin function."""

    name: str  # the plugin function, and the monitor request's "fn"
    target: str  # the argument that names the container ("" for none)
    kind: str  # READ or LIFECYCLE
    options: Tuple[str, ...] = ()  # the optional arguments it reads
    target_optional: bool = False  # without the target: every running container
    default_format: str = XML  # what it answers without format=json

    @property
    def required(self) -> Tuple[str, ...]:
        """The argument keys a call must carry."""
        if not self.target or self.target_optional:
            return (VM_ARG,)
        return (VM_ARG, self.target)

    @property
    def is_lifecycle(self) -> bool:
        return self.kind == LIFECYCLE

    @property
    def repeatable(self) -> bool:
        """Whether a call that got no answer may be made again another way."""
        return self.kind == READ

    def container_ref(self, args: Mapping[str, Any]) -> str:
        """The call's container reference, checked (InvalidArgument otherwise);
        "" for an operation without one, or an optional one that is absent."""
        if not self.target or (self.target_optional and _given(args, self.target) is None):
            return ""
        return check_container_ref(args.get(self.target))

    def parse_options(self, args: Mapping[str, Any]) -> Dict[str, Option]:
        """The call's optional arguments, checked and parsed (InvalidArgument
        otherwise): each of `options` with its default when absent."""
        parsed: Dict[str, Option] = {}
        for key in self.options:
            if key == FORMAT_ARG:
                parsed[key] = parse_format(args, self.default_format)
            elif key == TAIL_ARG:
                parsed[key] = parse_tail(args)
            elif key == SINCE_ARG:
                parsed[key] = parse_since(args)
            elif key == TIMESTAMPS_ARG:
                parsed[key] = parse_flag(args, key, False)
            elif key == ALL_ARG:
                parsed[key] = parse_flag(args, key, True)
        return parsed

    def given_options(self, args: Mapping[str, Any]) -> Dict[str, str]:
        """The optional arguments the call carries, as given (after checking them):
        what the plugin hands to the monitor."""
        self.parse_options(args)
        return {key: str(args[key]) for key in self.options if _given(args, key) is not None}


OPERATIONS: Dict[str, Operation] = {op.name: op for op in (
    Operation("get_inspect", "object", READ, (FORMAT_ARG,)),
    Operation("get_top", "object", READ, (FORMAT_ARG,)),
    Operation("get_logs", "object", READ,
              (TAIL_ARG, SINCE_ARG, TIMESTAMPS_ARG, FORMAT_ARG), default_format=TEXT),
    Operation("get_stats", "object", READ, (FORMAT_ARG,), target_optional=True),
    Operation("get_ps", "", READ, (ALL_ARG, FORMAT_ARG)),
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
