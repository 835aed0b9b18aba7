"""What the plugin's and the monitor's documents say, as rows for people and
as plain values for --json.

docker_ps (published in VM other-config, or from get_ps) and docker_top are
read as XenCenter reads them: each `entry` / `Process` element with its direct
children. Nothing here talks to XAPI.
"""

import xml.etree.ElementTree as ET
from typing import Any, Dict, List, Optional, Sequence, Tuple

from xscontainer.cli import tables

PS_FIELDS = ("id", "names", "container", "status", "created", "image", "command")
PS_HEADER = ("VM", "CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES")
PS_SHRINK = ("VM", "IMAGE", "COMMAND", "PORTS", "NAMES")


class BadDocument(ValueError):
    """A document that is not the XML it should be."""


def _parse(text: str, what: str) -> ET.Element:
    # xmlenc never writes a DTD, comment or CDATA section; refusing "<!" keeps entity
    # expansion (anyone may write other-config) out of the parser
    if "<!" in text:
        raise BadDocument("%s holds a DTD, comment or CDATA section, which xscontainer "
                          "never writes" % what)
    try:
        return ET.fromstring(text.encode("utf-8"))  # noqa: S314 (no DTD: see above)
    except ET.ParseError as exc:
        raise BadDocument("%s is not well-formed XML (%s)" % (what, exc)) from exc


def _port(item: ET.Element) -> Dict[str, Any]:
    port: Dict[str, Any] = {}
    for child in item:
        text = child.text or ""
        port[child.tag] = int(text) if child.tag.endswith("Port") and text.isdigit() else text
    return port


def ps_containers(text: str, what: str = "docker_ps") -> List[Dict[str, Any]]:
    """The containers of a docker_ps document: id, names, container (short id),
    status, created (Unix seconds), image, command, ports."""
    if not text.strip():
        return []
    result = []
    for entry in _parse(text, what).iter("entry"):
        container: Dict[str, Any] = {}
        for name in PS_FIELDS:
            child = entry.find(name)
            container[name] = (child.text or "") if child is not None else ""
        created = str(container["created"])
        container["created"] = int(created) if created.isdigit() else created
        ports = entry.find("ports")
        container["ports"] = [_port(item) for item in (ports.findall("item")
                                                       if ports is not None else [])]
        result.append(container)
    return result


def is_running(container: Dict[str, Any]) -> bool:
    return str(container.get("status", "")).startswith("Up")


def ports_text(ports: Sequence[Dict[str, Any]]) -> str:
    """0.0.0.0:8080->80/tcp, as `docker ps` prints them."""
    shown = []
    for port in ports:
        private = "%s/%s" % (port.get("PrivatePort", ""), port.get("Type", "tcp"))
        public = port.get("PublicPort")
        if public not in (None, ""):
            address = str(port.get("IP", ""))
            address = "[%s]" % address if ":" in address else address
            shown.append("%s:%s->%s" % (address, public, private))
        else:
            shown.append(private)
    return ", ".join(shown)


def ps_row(vm_name: str, container: Dict[str, Any], now: Optional[float] = None) -> List[str]:
    created = container.get("created")
    return [vm_name, str(container.get("container") or str(container.get("id", ""))[:10]),
            str(container.get("image", "")), str(container.get("command", "")),
            tables.ago(created, now) if isinstance(created, int) else str(created or ""),
            str(container.get("status", "")), ports_text(container.get("ports") or []),
            str(container.get("names", ""))]


def top_processes(text: str) -> Tuple[List[str], List[List[str]]]:
    """docker_top: the titles (in the order of the first process) and the rows."""
    titles: List[str] = []
    rows: List[Dict[str, str]] = []
    for process in _parse(text, "docker_top").iter("Process"):
        row = {}
        for child in process:
            if child.tag not in row:
                row[child.tag] = child.text or ""
                if child.tag not in titles:
                    titles.append(child.tag)
        rows.append(row)
    return titles, [[row.get(t, "") for t in titles] for row in rows]


INSPECT_FIELDS = (
    ("Name", "Name"), ("Id", "Id"), ("Image", "Config/Image"), ("Created", "Created"),
    ("Status", "State/Status"), ("Started", "State/StartedAt"),
    ("Finished", "State/FinishedAt"), ("Exit code", "State/ExitCode"),
    ("Health", "State/Health/Status"), ("Command", "Path"), ("Restart", "HostConfig/"
                                                                        "RestartPolicy/Name"),
    ("IP address", "NetworkSettings/IPAddress"),
)


def inspect_summary(text: str) -> List[Tuple[str, str]]:
    """The main facts of a docker_inspect document, (label, value), the absent left out."""
    root = _parse(text, "docker_inspect")
    facts = []
    for label, path in INSPECT_FIELDS:
        value = root.findtext(path)
        if value:
            if label == "Name":
                value = value.lstrip("/")
            if label == "Command":
                args = [a.text or "" for a in root.iterfind("Args/item")]
                value = " ".join([value, *args])
            facts.append((label, value))
    return facts
