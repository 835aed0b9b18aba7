"""Docker data -> the XML documents XenCenter and Xen Orchestra parse.

The shapes are fixed by what XenCenter and Xen Orchestra parse:

* one line after the prolog ``<?xml version="1.0" ?>``;
* dict -> child elements in insertion order, list -> repeated ``<item>``,
  bool -> ``True``/``False``, None -> ``None``, numbers in decimal;
* a key that is not a plain XML name, or that a client looks for at any depth
  (``entry``, ``Process``, ...), becomes
  ``<SPECIAL_XS_ENCODED_ELEMENT name="<key>">`` (XenCenter's inspect tree shows
  the ``name`` attribute);
* text is escaped once (the original escaped twice) and characters XML 1.0
  forbids are dropped, so every document loads in .NET's XmlDocument, minidom
  and fast-xml-parser.

Results are ``str``; encode them as UTF-8 where bytes are needed.

Every document has a size limit in characters (the MAX_* below; for ASCII
text, characters are bytes), checked while it is produced, so no input makes
an encoder build more than its limit (plus one escaped string): docker_ps and
docker_top end a list that would pass it with a marker row clients show, the
other documents are refused with XSCONTAINER_RESPONSE_TOO_LARGE. Values nested
deeper than MAX_DEPTH are refused with XSCONTAINER_DOCKER_MALFORMED_REPLY.
"""

import collections.abc
import functools
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from xscontainer import errors

# Size limits (characters of XML). docker_ps: 1,000 containers as Docker 29
# lists them take 2.2 MB with 5 labels each, 5.0 MB with 50 labels each.
MAX_DOCKER_PS = 8 * 1024 * 1024
# get_top: `ps -ef` rows are 100 to 400 characters: 10,000 processes or more.
MAX_DOCKER_TOP = 4 * 1024 * 1024
# get_inspect: a container's inspect document is 4 to 20 KB; environments and
# labels of a few hundred KB still fit.
MAX_DOCKER_INSPECT = 4 * 1024 * 1024
# get_stats: a row is about 300 characters: thousands of containers.
MAX_DOCKER_STATS = 4 * 1024 * 1024
# docker_info and docker_version: 3 KB and 1 KB from Docker 29.
MAX_DOCKER_INFO = 1024 * 1024
MAX_DOCKER_VERSION = 1024 * 1024
# Docker's documents nest 6 levels at most.
MAX_DEPTH = 64
# What a cut list ends with: room kept for the marker row.
_MARKER_ROOM = 1024
# The marker's id: not a container reference (check_container_ref refuses it),
# so a client pressing a button on the marker row gets INVALID_ARGUMENT.
TRUNCATED_ID = "-truncated-"


class _Overflow(Exception):
    """The document would pass its limit."""

PROLOG = '<?xml version="1.0" ?>'
SPECIAL_ELEMENT = "SPECIAL_XS_ENCODED_ELEMENT"

# Element names are emitted only if they are XML 1.0 Names for certain, without a
# namespace prefix (.NET rejects undeclared prefixes) and not reserved ("xml...").
_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\Z")

# Names that clients look up at any depth of a document, so a data key with one of
# them would be taken for structure: XenCenter makes every `entry` a container and
# every `Process` a process row, and reads every `docker_info` / `docker_version`
# element's children. Only the builders below emit them.
RESERVED_NAMES = frozenset(["entry", "Process", "docker_info", "docker_version"])

# Everything outside XML 1.0's Char production (TAB, LF, CR, U+0020-U+D7FF,
# U+E000-U+FFFD, U+10000-U+10FFFF): control characters other than TAB, LF and
# CR, lone surrogates, U+FFFE and U+FFFF. Spelt as the characters themselves,
# not as the complement of the legal ranges, which took 15-25 ms to compile at
# every plugin start.
_ILLEGAL_RANGES = "\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff"
_ILLEGAL_CHARS = re.compile("[%s]" % _ILLEGAL_RANGES)
# Anything text needs done to it: an illegal character, or one to escape.
_TEXT_WORK = re.compile("[&<>\r%s]" % _ILLEGAL_RANGES)


def strip_illegal(text: str) -> str:
    """`text` without the characters that XML 1.0 does not allow anywhere."""
    return _ILLEGAL_CHARS.sub("", text)


def _escape_text(text: str) -> str:
    if not _TEXT_WORK.search(text):
        return text
    # CR as a character reference: parsers turn a literal CR (and CRLF) into LF.
    return (
        strip_illegal(text)
        .replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("\r", "&#13;")
    )


def _escape_attribute(text: str) -> str:
    # TAB and LF too: attribute-value normalisation would turn them into spaces.
    return _escape_text(text).replace('"', "&quot;").replace("\t", "&#9;").replace("\n", "&#10;")


def is_plain_name(key: str) -> bool:
    """True if `key` can be written as an element name as it is."""
    return bool(_PLAIN_NAME.match(key)) and not key[:3].lower() == "xml"


@functools.lru_cache(maxsize=4096)
def _tag(key: str) -> Tuple[str, str]:
    """(start of the opening tag, element name) for a data key."""
    if is_plain_name(key) and key not in RESERVED_NAMES:
        return "<" + key, key
    return '<%s name="%s"' % (SPECIAL_ELEMENT, _escape_attribute(key)), SPECIAL_ELEMENT


def _scalar(value: Any) -> str:
    if isinstance(value, bool):  # before int: bool is an int
        return "True" if value else "False"
    if value is None:
        return "None"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    raise TypeError(
        "cannot encode a %s as XML: only JSON values are supported" % type(value).__name__
    )


class _Budget:
    """Characters a document may still take: `used` against `limit`."""

    __slots__ = ("limit", "used")

    def __init__(self, limit: int, used: int = 0) -> None:
        self.limit = limit
        self.used = used

    def take(self, size: int) -> None:
        self.used += size
        if self.used > self.limit:
            raise _Overflow()


def _element(parts: List[str], start: str, name: str, value: Any, budget: _Budget,
             depth: int = 0) -> None:
    """Append the element `name` (opening tag begun by `start`) holding `value`."""
    # Strings first: most values are (and typing.Mapping checks are slow).
    if isinstance(value, str):
        if len(value) > budget.limit - budget.used:  # cannot fit, even unescaped
            raise _Overflow()
        piece = start + ">" + _escape_text(value) + "</" + name + ">"
    elif isinstance(value, (list, tuple, collections.abc.Mapping)):
        if not value:
            piece = start + "/>"
        else:
            if depth >= MAX_DEPTH:
                raise _too_deep()
            budget.take(len(start) + 1)
            parts.append(start + ">")
            if isinstance(value, collections.abc.Mapping):
                for key, child in value.items():
                    child_start, child_name = _tag(str(key))
                    _element(parts, child_start, child_name, child, budget, depth + 1)
            else:
                for child in value:
                    _element(parts, "<item", "item", child, budget, depth + 1)
            piece = "</" + name + ">"
    else:
        piece = start + ">" + _scalar(value) + "</" + name + ">"
    budget.take(len(piece))
    parts.append(piece)


def _too_deep() -> errors.MalformedReply:
    return errors.MalformedReply(
        "The Docker engine's reply nests its values more than %d levels deep, which Docker "
        "never does; check the engine in the VM." % MAX_DEPTH)


def _too_large(what: str, limit: int) -> errors.ResponseTooLarge:
    return errors.ResponseTooLarge(
        "The %s would exceed %d characters, its size limit; it is not produced. Check what "
        "the Docker engine in the VM reports." % (what, limit))


def _document(root_name: str, body: List[str]) -> str:
    """The prolog and the root element around already-encoded `body` parts."""
    if not body:
        return "%s<%s/>" % (PROLOG, root_name)
    return "%s<%s>%s</%s>" % (PROLOG, root_name, "".join(body), root_name)


def encode(root_name: str, value: Any, limit: int = MAX_DOCKER_PS,
           what: Optional[str] = None) -> str:
    """The XML document for the JSON-like `value` under the root `root_name`.

    `root_name` is ours and must be a plain name; data keys are encoded as the
    module docstring says. Raises TypeError for values JSON cannot hold,
    ResponseTooLarge past `limit` characters (`what` names the document in the
    message), MalformedReply past MAX_DEPTH levels.
    """
    if not is_plain_name(root_name):
        raise ValueError("invalid XML root element name %r" % root_name)
    parts = [PROLOG]
    try:
        _element(parts, "<" + root_name, root_name, value, _Budget(limit, len(PROLOG)))
    except _Overflow:
        raise _too_large(what or root_name, limit) from None
    return "".join(parts)


# --- docker_ps -----------------------------------------------------------------

_EXITED = re.compile(r"Exited \([^)]*\)")
_HEALTH = re.compile(r"\((healthy|unhealthy|health: starting)\)")


def normalize_status(status: str) -> str:
    """Docker's status text, stripped of the parts that go stale.

    ``Up 3 minutes (healthy)`` -> ``Up``; ``Up 2 hours (Paused)`` -> ``Up (Paused)``;
    ``Exited (137) 5 seconds ago`` -> ``Exited (137)``; anything else (``Created``,
    ``Restarting (1) ...``, ``Dead``, an ``Exited`` without its code) is unchanged.
    Xen Orchestra compares these exact strings; XenCenter looks for ``Paused``
    and a leading ``Up``.
    """
    if status == "Up" or status.startswith("Up "):
        return "Up (Paused)" if "(Paused)" in status else "Up"
    exited = _EXITED.match(status)
    return exited.group(0) if exited else status


def health_of(status: str) -> str:
    """The health in Docker's status text: ``Up 3 minutes (healthy)`` -> ``healthy``;
    ``unhealthy``, ``starting`` likewise; '' for a container without a health check."""
    found = _HEALTH.search(status)
    if found is None:
        return ""
    return "starting" if found.group(1) == "health: starting" else found.group(1)


def _first_name(names: Any) -> str:
    if isinstance(names, str):  # some engines (and old API versions) send one string
        first = names
    elif isinstance(names, (list, tuple)) and names and isinstance(names[0], str):
        first = names[0]
    else:
        return ""
    return first[1:] if first.startswith("/") else first


def _unix_seconds(created: Any) -> Any:
    """`created` as integer seconds if it is a number; otherwise as given."""
    if isinstance(created, bool):
        return created
    if isinstance(created, (int, float)):
        return int(created)
    if isinstance(created, str):
        try:
            return int(float(created))
        except ValueError:
            return created  # XenCenter shows an unparsable date as it is
    return "" if created is None else created


def _port(port: Any) -> Any:
    """A port record with an unpublished public side left out, as Docker does."""
    if not isinstance(port, Mapping):
        return port
    return {
        key: value
        for key, value in port.items()
        if not (key == "IP" and value in ("", None))
        and not (key == "PublicPort" and value in (0, "", None))
    }


def _ps_entry(container: Mapping) -> Dict[str, Any]:
    """One `GET /containers/json` object as the original's lower-cased `entry`."""
    lowered: Dict[str, Any] = {}
    for key, value in container.items():
        lowered.setdefault(str(key).lower(), value)  # first one wins on a clash
    container_id = lowered.get("id")
    container_id = "" if container_id is None else str(container_id)
    status = lowered.get("status")
    ports = lowered.get("ports")
    entry: Dict[str, Any] = {
        # The fields XenCenter reads, first; then everything else in Docker's order.
        "id": container_id,
        "names": _first_name(lowered.get("names")),
        "container": container_id[:10],
        "status": normalize_status(status) if isinstance(status, str) else "",
        "created": _unix_seconds(lowered.get("created")),
        "image": "" if lowered.get("image") is None else lowered["image"],
        "command": "" if lowered.get("command") is None else lowered["command"],
        "ports": [_port(port) for port in ports] if isinstance(ports, list) else [],
    }
    # normalize_status drops the health suffix (clients compare exact strings), so
    # the health is kept in a field of its own, and a health change shows; newer
    # engines that send their own Health object keep theirs.
    health = health_of(status) if isinstance(status, str) else ""
    if health and "health" not in lowered:
        entry["health"] = health
    for key, value in lowered.items():
        if key not in entry:
            entry[key] = value
    return entry


def _is_container(item: Any) -> bool:
    if not isinstance(item, Mapping):
        return False
    for key, value in item.items():
        if str(key).lower() == "id":
            return isinstance(value, str) and bool(value)
    return False


def ps_entries(containers: Sequence[Any]) -> List[Dict[str, Any]]:
    """The containers of a ``GET /containers/json`` array as docker_ps has them:
    each one's ``entry`` (what is not a container is dropped)."""
    return [_ps_entry(item) for item in containers if _is_container(item)]


def docker_ps(containers: Sequence[Any], limit: int = MAX_DOCKER_PS) -> str:
    """The ``docker_ps`` document from a ``GET /containers/json?all=1`` array.

    One ``<item><entry>`` per container with lower-cased top-level keys (nested
    keys keep Docker's case), ``names`` = first name without its ``/``,
    ``container`` = the first 10 characters of the id, ``status`` normalised and
    ``created`` in integer seconds. Accepts Docker's and Podman's compat shapes.

    Items that are not containers (not an object, no string id) are dropped.
    Containers that would take the document past `limit` characters are left
    out, and a last entry says how many (id TRUNCATED_ID, status ``Truncated``,
    the count in ``names``), so clients show it as one more row.
    """
    body: List[str] = []
    budget = _Budget(limit - _MARKER_ROOM, len(PROLOG) + 40)
    items = [item for item in containers if _is_container(item)]
    for index, container in enumerate(items):
        entry: List[str] = ["<item><entry>"]
        mark = budget.used
        try:
            for key, value in _ps_entry(container).items():
                start, name = _tag(key)
                _element(entry, start, name, value, budget)
            budget.take(28)
        except _Overflow:
            budget.used = mark
            left = len(items) - index
            body.append(_ps_marker(left, limit))
            break
        entry.append("</entry></item>")
        body.append("".join(entry))
    return _document("docker_ps", body)


def _ps_marker(left: int, limit: int) -> str:
    parts: List[str] = ["<item><entry>"]
    marker = {
        "id": TRUNCATED_ID, "names": "(%d more container%s not shown: docker_ps is limited to "
        "%d characters)" % (left, "" if left == 1 else "s", limit),
        "container": TRUNCATED_ID, "status": "Truncated", "created": "", "image": "",
        "command": "", "ports": [],
    }
    for key, value in marker.items():
        start, name = _tag(key)
        _element(parts, start, name, value, _Budget(_MARKER_ROOM))
    parts.append("</entry></item>")
    return "".join(parts)


# --- docker_top ----------------------------------------------------------------

PLACEHOLDER = "-"
# XenCenter fills its three columns from these; an empty one aborts its refresh.
_TOP_REQUIRED = ("PID", "CMD", "TIME")
# Other ps implementations (Podman, busybox) name the command column COMMAND.
_TOP_TITLE_ALIASES = {"COMMAND": "CMD"}


def _top_titles(raw_titles: Sequence[Any]) -> Tuple[List[str], bool]:
    """The column titles, and whether they came as one whitespace-separated string."""
    titles = [str(title).strip() for title in raw_titles]
    joined = len(titles) == 1 and len(titles[0].split()) > 1
    if joined:
        titles = titles[0].split()
    mapped = []
    for title in titles:
        alias = _TOP_TITLE_ALIASES.get(title)
        mapped.append(alias if alias is not None and alias not in titles else title)
    return mapped, joined


def _top_cells(row: Any, width: int, joined: bool) -> List[str]:
    """One process row as exactly `width` cells."""
    cells = [row] if isinstance(row, str) else ["" if cell is None else str(cell) for cell in row]
    if joined and len(cells) == 1 and width > 1:
        cells = cells[0].split(None, width - 1)
    if width and len(cells) > width:  # the last column (the command) takes the rest
        cells = [*cells[: width - 1], " ".join(cells[width - 1 :])]
    return cells[:width] + [PLACEHOLDER] * (width - len(cells))


def _top_row(titles: List[str], cells: List[str]) -> List[Tuple[str, str]]:
    process = [
        (title, PLACEHOLDER if title in _TOP_REQUIRED and not cell.strip() else cell)
        for title, cell in zip(titles, cells)
    ]
    return process + [(required, PLACEHOLDER) for required in _TOP_REQUIRED
                      if required not in titles]


def top_processes(top: Mapping) -> Tuple[List[str], List[Dict[str, str]]]:
    """(titles, processes) of a ``GET /containers/{id}/top`` object as docker_top
    has them: each process a mapping from title to cell, PID, CMD and TIME
    always present and non-empty."""
    raw_titles = top.get("Titles")
    raw_rows = top.get("Processes")
    titles, joined = _top_titles(raw_titles if isinstance(raw_titles, (list, tuple)) else [])
    rows = [row for row in (raw_rows if isinstance(raw_rows, (list, tuple)) else [])
            if (isinstance(row, str) and row.strip()) or (isinstance(row, (list, tuple)) and row)]
    processes = [dict(_top_row(titles, _top_cells(row, len(titles), joined))) for row in rows]
    return titles + [t for t in _TOP_REQUIRED if t not in titles], processes


def docker_top(top: Mapping, limit: int = MAX_DOCKER_TOP) -> str:
    """The ``docker_top`` document from a ``GET /containers/{id}/top`` object.

    One ``<item><Process>`` per row with children named after the titles
    (``COMMAND`` -> ``CMD``; Podman's single-string title is split). Missing cells
    are ``-``, and ``PID``, ``CMD`` and ``TIME`` are always present and non-empty.

    Rows that are neither a list nor a string are dropped, as are empty rows.
    Rows that would take the document past `limit` characters are left out and
    a last row says how many (CMD ``(N more processes not shown ...)``).
    """
    raw_titles = top.get("Titles")
    raw_rows = top.get("Processes")
    titles, joined = _top_titles(raw_titles if isinstance(raw_titles, (list, tuple)) else [])
    rows = [row for row in (raw_rows if isinstance(raw_rows, (list, tuple)) else [])
            if (isinstance(row, str) and row.strip()) or (isinstance(row, (list, tuple)) and row)]
    body: List[str] = []
    budget = _Budget(limit - _MARKER_ROOM, len(PROLOG) + 40)
    for index, row in enumerate(rows):
        process: List[str] = ["<item><Process>"]
        mark = budget.used
        try:
            for title, cell in _top_row(titles, _top_cells(row, len(titles), joined)):
                start, name = _tag(title)
                _element(process, start, name, cell, budget)
            budget.take(32)
        except _Overflow:
            budget.used = mark
            left = len(rows) - index
            note = "(%d more process%s not shown: get_top is limited to %d characters)" % (
                left, "" if left == 1 else "es", limit)
            marker = ["<item><Process>"]
            for title, cell in _top_row(titles, [PLACEHOLDER] * len(titles)):
                start, name = _tag(title)
                _element(marker, start, name, note if title == "CMD" else cell,
                         _Budget(_MARKER_ROOM))
            body.append("".join(marker) + "</Process></item>")
            break
        process.append("</Process></item>")
        body.append("".join(process))
    return _document("docker_top", body)


# --- info, version, inspect ----------------------------------------------------


def docker_info(info: Mapping) -> str:
    """The ``docker_info`` document: ``GET /info`` with Docker's key case."""
    return encode("docker_info", info, MAX_DOCKER_INFO, "docker_info document")


def docker_version(version: Mapping) -> str:
    """The ``docker_version`` document: ``GET /version`` with Docker's key case."""
    return encode("docker_version", version, MAX_DOCKER_VERSION, "docker_version document")


def docker_stats(rows: Sequence[Mapping[str, Any]]) -> str:
    """The ``docker_stats`` document of get_stats: one ``<item>`` per container
    holding its row (stats.row's keys)."""
    return encode("docker_stats", list(rows), MAX_DOCKER_STATS, "get_stats answer")


def docker_inspect(obj: Mapping) -> str:
    """The ``docker_inspect`` document: ``GET /containers/{id}/json`` as it is."""
    return encode("docker_inspect", obj, MAX_DOCKER_INSPECT, "container's inspect document")
