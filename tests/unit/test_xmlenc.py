"""xmlenc: Docker data -> the XML XenCenter and Xen Orchestra parse.

Every document is parsed with minidom, ElementTree and xmltodict, and read the way
the clients read it (XenCenter's container list, inspect tree and process list; Xen
Orchestra's parse of docker_ps and its action buttons), using the small emulations below.
"""

import json
import os
import re
import xml.etree.ElementTree as ET
from typing import Any, Dict, List, Optional, Tuple
from xml.dom import minidom

import pytest
import xmltodict

from xscontainer import errors, xmlenc
from xscontainer.operations import table

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
SPECIAL = "SPECIAL_XS_ENCODED_ELEMENT"
PROLOG = '<?xml version="1.0" ?>'


def load(name: str) -> Any:
    with open(os.path.join(DATA, name), encoding="utf-8") as f:
        return json.load(f)


# --- parsing and client emulation ----------------------------------------------

_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\Z")


def parse(document: str) -> minidom.Document:
    """Parse with all three parsers; check the prolog and that names are plain."""
    assert document.startswith(PROLOG + "<")
    ET.fromstring(document)
    xmltodict.parse(document)
    doc = minidom.parseString(document)
    for element in doc.getElementsByTagName("*"):
        name = element.tagName
        # .NET rejects undeclared prefixes; names must be plain and not reserved
        assert _PLAIN.match(name) and not name.lower().startswith("xml"), name
    return doc


def inner_text(node: minidom.Node) -> str:
    """.NET XmlNode.InnerText: all descendant text, concatenated."""
    if node.nodeType in (node.TEXT_NODE, node.CDATA_SECTION_NODE):
        return node.data
    return "".join(inner_text(child) for child in node.childNodes)


def inner_xml(node: minidom.Node) -> str:
    return "".join(child.toxml() for child in node.childNodes)


def first_child(element: minidom.Element, name: str) -> Optional[minidom.Element]:
    """The first direct child element with exactly this name."""
    for child in element.childNodes:
        if child.nodeType == child.ELEMENT_NODE and child.tagName == name:
            return child
    return None


def xc_containers(document: str) -> List[Dict[str, Any]]:
    """XenCenter's DockerContainers.GetContainersFromOtherConfig (contract 1.3)."""
    doc = minidom.parseString(document)
    containers = []
    for entry in doc.getElementsByTagName("entry"):  # any depth
        fields: Dict[str, Any] = {}
        for name in ("id", "names", "status", "container", "created", "image", "command"):
            child = first_child(entry, name)
            fields[name] = inner_text(child) if child is not None else ""
        ports = first_child(entry, "ports")
        fields["ports"] = []
        if ports is not None:
            items = minidom.parseString("<items>" + inner_xml(ports) + "</items>")
            for item in items.getElementsByTagName("item"):
                port = {}
                for name in ("IP", "PublicPort", "PrivatePort", "Type"):
                    child = first_child(item, name)
                    port[name] = inner_text(child) if child is not None else ""
                fields["ports"].append(port)
        containers.append(fields)
    return containers


def xc_power_state(status: str) -> str:
    """XenCenter's DockerContainer.power_state (contract 1.7)."""
    if "Paused" in status:
        return "Paused"
    return "Running" if status.startswith("Up") else "Halted"


def xc_processes(document: str) -> List[Tuple[str, str, str]]:
    """XenCenter's DockerProcessPage.UpdateList (contract 1.6): rows of (PID, CMD, TIME).

    XenCenter reads `child.FirstChild.Value` of PID, CMD and TIME; an empty element
    dereferences null and aborts the whole refresh, so that fails here too.
    """
    doc = minidom.parseString(document)
    rows = []
    for process in doc.getElementsByTagName("Process"):  # any depth
        columns = {}
        for child in process.childNodes:
            if child.nodeType == child.ELEMENT_NODE and child.tagName in ("PID", "CMD", "TIME"):
                first = child.firstChild
                assert first is not None, "empty <%s> aborts XenCenter's refresh" % child.tagName
                assert first.nodeType == first.TEXT_NODE and first.data, child.tagName
                columns[child.tagName] = first.data
        rows.append((columns.get("PID", ""), columns.get("CMD", ""), columns.get("TIME", "")))
    return rows


def xc_fields(document: str, root: str) -> Dict[str, str]:
    """XenCenter's VM_Docker_Info / VM_Docker_Version: direct children of `root` elements."""
    doc = minidom.parseString(document)
    fields: Dict[str, str] = {}
    for element in doc.getElementsByTagName(root):
        for child in element.childNodes:
            if child.nodeType == child.ELEMENT_NODE and child.tagName not in fields:
                fields[child.tagName] = inner_text(child)
    return fields


def xc_inspect_tree(document: str) -> List[Any]:
    """XenCenter's DockerDetailsPage tree (contract 1.6): [(label, children)] / text."""

    def nodes(parent: minidom.Node) -> List[Any]:
        result: List[Any] = []
        for child in parent.childNodes:
            if child.nodeType == child.ELEMENT_NODE:
                label = child.getAttribute("name") if child.tagName == SPECIAL else child.tagName
                result.append((label, nodes(child)))
            elif child.nodeType == child.TEXT_NODE:
                result.append(child.data)
        return result

    return nodes(minidom.parseString(document).documentElement)


def tree_lookup(tree: List[Any], *labels: str) -> List[Any]:
    """The children of the node reached by following `labels` in an inspect tree."""
    for label in labels:
        nodes = [node for node in tree if isinstance(node, tuple)]
        matches = [children for node_label, children in nodes if node_label == label]
        assert matches, "no node %r among %r" % (label, [node_label for node_label, _ in nodes])
        tree = matches[0]
    return tree


def xo_parse(document: str) -> Dict[str, Any]:
    """Xen Orchestra's parseXml: attributes kept with no prefix, values as strings."""
    return xmltodict.parse(document, attr_prefix="")


def xo_containers(document: str) -> List[Dict[str, Any]]:
    """XO: ensureArray(parseXml(docker_ps).docker_ps.item) (contract 2.1)."""
    root = xo_parse(document)["docker_ps"]
    items = root.get("item") if isinstance(root, dict) else None
    if items is None:
        return []
    return items if isinstance(items, list) else [items]


def xo_actions(status: str) -> List[str]:
    """The buttons XO's tab-containers.js offers for an exact status (contract 2.2)."""
    return {
        "Up": ["stop", "restart", "pause"],
        "Exited (137)": ["start"],
        "Up (Paused)": ["unpause"],
    }.get(status, [])


# --- encode: shapes, scalars, names, text ----------------------------------------


def test_original_worked_example_now_single_escaped() -> None:
    document = xmlenc.encode("a", {"80/tcp": None, "x": "", "e": [], "amp": "a&b"})
    assert document == (
        PROLOG + '<a><SPECIAL_XS_ENCODED_ELEMENT name="80/tcp">None</SPECIAL_XS_ENCODED_ELEMENT>'
        "<x></x><e/><amp>a&amp;b</amp></a>"
    )
    assert xo_parse(document)["a"]["amp"] == "a&b"


def test_upstream_pinned_list_of_dicts() -> None:
    document = xmlenc.encode("ports", [{"IP": "0.0.0.0"}, {"IP": "0.0.0.1"}])
    assert document == (
        PROLOG + "<ports><item><IP>0.0.0.0</IP></item><item><IP>0.0.0.1</IP></item></ports>"
    )


def test_scalars() -> None:
    value = {
        "t": True,
        "f": False,
        "n": None,
        "zero": 0,
        "neg": -5,
        "big": 2**70,
        "half": 1.5,
        "precise": 1234567890.123456789,
        "sci": 1e16,
        "s": "text",
        "empty_s": "",
        "empty_d": {},
        "empty_l": [],
    }
    assert xmlenc.encode("v", value) == (
        PROLOG + "<v><t>True</t><f>False</f><n>None</n><zero>0</zero><neg>-5</neg>"
        "<big>1180591620717411303424</big><half>1.5</half><precise>1234567890.1234567</precise>"
        "<sci>1e+16</sci><s>text</s><empty_s></empty_s><empty_d/><empty_l/></v>"
    )


def test_nested_lists_and_order_kept() -> None:
    value = {"z": 1, "a": [[1, 2], {"y": 1, "b": 2}], "m": (3,)}
    document = xmlenc.encode("r", value)
    assert document == (
        PROLOG + "<r><z>1</z><a><item><item>1</item><item>2</item></item>"
        "<item><y>1</y><b>2</b></item></a><m><item>3</item></m></r>"
    )
    parse(document)


def test_empty_root_values() -> None:
    assert xmlenc.encode("docker_ps", []) == PROLOG + "<docker_ps/>"
    assert xmlenc.encode("x", {}) == PROLOG + "<x/>"
    assert xmlenc.encode("x", "") == PROLOG + "<x></x>"


@pytest.mark.parametrize("value", [{1, 2}, b"bytes", object()])
def test_non_json_values_are_refused(value: Any) -> None:
    with pytest.raises(TypeError):
        xmlenc.encode("x", {"k": value})


@pytest.mark.parametrize("root", ["", "80/tcp", "a b", "xmlroot", "x:y"])
def test_root_name_must_be_plain(root: str) -> None:
    with pytest.raises(ValueError):
        xmlenc.encode(root, {})


ENCODED_KEYS = [
    "80/tcp",
    "a b",
    "%CPU",
    "org:x",
    "x[0]",
    "1abc",
    ".x",
    "-x",
    "xmlfoo",
    "XMLfoo",
    "Xml",
    "é",
    "naïve",
    "a=b",
    "@timestamp",
    "a&b",
    'q"uote',
    "<tag>",
    "",
    "tab\there",
    "line\nbreak",
    "entry",
    "Process",
    "docker_info",
    "docker_version",
]
PLAIN_KEYS = [
    "traefik.http.routers.x.rule",
    "Labels",
    "_x",
    "x-y",
    "a1",
    "Entry",
    "process",
    "item",
]


@pytest.mark.parametrize("key", ENCODED_KEYS)
def test_keys_that_are_not_plain_names_are_encoded(key: str) -> None:
    document = xmlenc.encode("docker_inspect", {"Labels": {key: "v"}})
    parse(document)
    labels = ET.fromstring(document).find("Labels")
    assert labels is not None
    (element,) = list(labels)
    assert element.tag == SPECIAL
    assert element.attrib == {"name": key}  # the original key, exactly
    assert element.text == "v"
    assert tree_lookup(xc_inspect_tree(document), "Labels", key) == ["v"]


@pytest.mark.parametrize("key", PLAIN_KEYS)
def test_plain_names_are_kept(key: str) -> None:
    document = xmlenc.encode("docker_inspect", {"Labels": {key: "v"}})
    parse(document)
    assert ("<%s>v</%s>" % (key, key)) in document
    assert xo_parse(document)["docker_inspect"]["Labels"][key] == "v"


def test_is_plain_name() -> None:
    assert xmlenc.is_plain_name("traefik.http.routers.x.rule")
    assert not xmlenc.is_plain_name("xmlns")
    assert not xmlenc.is_plain_name("a:b")


def test_text_is_escaped_once() -> None:
    document = xmlenc.encode("x", {"v": 'a&b<c>"d"\'e'})
    assert '<v>a&amp;b&lt;c&gt;"d"\'e</v>' in document
    assert "&amp;amp;" not in document
    for value in (
        ET.fromstring(document).findtext("v"),
        xo_parse(document)["x"]["v"],
        inner_text(minidom.parseString(document).getElementsByTagName("v")[0]),
    ):
        assert value == 'a&b<c>"d"\'e'


def test_illegal_characters_are_stripped_and_the_rest_survives() -> None:
    raw = "a\x00b\x01c\x08d\x0be\x0cf\x1fg\ufffeh\uffffi\ud800j\udfffk"
    kept = "\t tab\n lf \x7f \x85 é 🎉 \U0010fffd \ue000"
    document = xmlenc.encode("x", {"bad": raw, "ok": kept})
    parse(document)
    root = ET.fromstring(document)
    assert root.findtext("bad") == "abcdefghijk"
    assert root.findtext("ok") == kept
    assert xmlenc.strip_illegal(raw) == "abcdefghijk"


def test_carriage_return_survives_parsing() -> None:
    document = xmlenc.encode("x", {"v": "line1\r\nline2\r"})
    assert "&#13;" in document and "\r" not in document
    assert ET.fromstring(document).findtext("v") == "line1\r\nline2\r"
    assert xmltodict.parse(document, strip_whitespace=False)["x"]["v"] == "line1\r\nline2\r"
    v = minidom.parseString(document).getElementsByTagName("v")[0]
    assert inner_text(v) == "line1\r\nline2\r"


def test_attribute_values_round_trip() -> None:
    key = 'a&b<c>"d"\ttab\nlf\rcr\x01'
    document = xmlenc.encode("x", {key: 1})
    parse(document)
    (element,) = list(ET.fromstring(document))
    assert element.attrib["name"] == 'a&b<c>"d"\ttab\nlf\rcr'
    assert xo_parse(document)["x"][SPECIAL]["name"] == 'a&b<c>"d"\ttab\nlf\rcr'


def test_document_has_no_layout_whitespace() -> None:
    document = xmlenc.docker_ps(load("docker_ps_api1.41.json"))
    assert "\n" not in document and "> <" not in document


# --- status ------------------------------------------------------------------------

STATUS_TABLE = [
    ("Up 3 minutes (healthy)", "Up"),
    ("Up 2 hours (Paused)", "Up (Paused)"),
    ("Up Less than a second", "Up"),
    ("Up", "Up"),
    ("Up 5 seconds (unhealthy)", "Up"),
    ("Exited (137) 5 seconds ago", "Exited (137)"),
    ("Exited (0) About a minute ago", "Exited (0)"),
    ("Exited (-1) 2 days ago", "Exited (-1)"),
    ("Exited", "Exited"),
    ("Exited (1", "Exited (1"),
    ("Created", "Created"),
    ("Restarting (1) 3 seconds ago", "Restarting (1) 3 seconds ago"),
    ("Dead", "Dead"),
    ("Removal In Progress", "Removal In Progress"),
    ("exit 0", "exit 0"),
    ("Updating", "Updating"),
    ("", ""),
]


@pytest.mark.parametrize("status,expected", STATUS_TABLE)
def test_normalize_status(status: str, expected: str) -> None:
    assert xmlenc.normalize_status(status) == expected


# --- docker_ps -----------------------------------------------------------------------

NGINX = {
    "Id": "e9c2212c65c387bba7c216c56cd19ffaa1cdb73cf5885f3259a6b1ae7747c834",
    "Names": ["/nginx"],
    "Image": "nginx",
    "Command": 'nginx -g "daemon off;"',
    "Created": 1423637159,
    "Status": "Up 40 seconds",
    "Ports": [{"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"}],
    "Labels": {},
    "SizeRw": 0,
}


def test_docker_ps_contract_example() -> None:
    """The original xscontainer's docker_ps for one container, in our fixed order."""
    assert xmlenc.docker_ps([NGINX]) == (
        PROLOG + "<docker_ps><item><entry>"
        "<id>e9c2212c65c387bba7c216c56cd19ffaa1cdb73cf5885f3259a6b1ae7747c834</id>"
        "<names>nginx</names><container>e9c2212c65</container><status>Up</status>"
        "<created>1423637159</created><image>nginx</image>"
        '<command>nginx -g "daemon off;"</command>'
        "<ports><item><IP>0.0.0.0</IP><PrivatePort>80</PrivatePort><PublicPort>8080</PublicPort>"
        "<Type>tcp</Type></item></ports><labels/><sizerw>0</sizerw>"
        "</entry></item></docker_ps>"
    )


def test_docker_ps_without_containers() -> None:
    document = xmlenc.docker_ps([])
    assert document == PROLOG + "<docker_ps/>"
    parse(document)
    assert xc_containers(document) == []
    assert xo_containers(document) == []


def test_docker_ps_single_container_is_one_item_for_xo() -> None:
    document = xmlenc.docker_ps([NGINX])
    (item,) = xo_containers(document)
    entry = item["entry"]
    assert (entry["names"], entry["status"], entry["container"]) == ("nginx", "Up", "e9c2212c65")
    assert int(entry["created"]) * 1000 == 1423637159000


FIRST_FIELDS = ["id", "names", "container", "status", "created", "image", "command", "ports"]


@pytest.mark.parametrize(
    "fixture", ["docker_ps_api1.41.json", "docker_ps_api1.52.json", "podman_ps_compat.json"]
)
def test_docker_ps_engine_shapes(fixture: str) -> None:
    containers = load(fixture)
    document = xmlenc.docker_ps(containers)
    doc = parse(document)

    entries = doc.getElementsByTagName("entry")
    assert len(entries) == len(containers)
    for entry in entries:
        assert entry.parentNode.tagName == "item"
        assert entry.parentNode.parentNode.tagName == "docker_ps"
        children = [c.tagName for c in entry.childNodes]
        assert children[:8] == FIRST_FIELDS
        assert len(children) == len(set(children))
        # top-level keys lower-cased, nested keys in Docker's case
        assert all(name == name.lower() for name in children)

    xc = xc_containers(document)
    xo = [item["entry"] for item in xo_containers(document)]
    assert len(xc) == len(xo) == len(containers)
    for source, seen_by_xc, seen_by_xo in zip(containers, xc, xo):
        expected_name = source["Names"][0].lstrip("/")
        expected_status = xmlenc.normalize_status(source["Status"])
        assert seen_by_xc["id"] == seen_by_xo["id"] == source["Id"]
        assert seen_by_xc["names"] == seen_by_xo["names"] == expected_name
        assert seen_by_xc["container"] == seen_by_xo["container"] == source["Id"][:10]
        assert seen_by_xc["status"] == seen_by_xo["status"] == expected_status
        assert seen_by_xc["created"] == seen_by_xo["created"] == str(source["Created"])
        assert seen_by_xc["image"] == seen_by_xo["image"] == source["Image"]
        assert seen_by_xc["command"] == seen_by_xo["command"] == source["Command"]
        assert len(seen_by_xc["ports"]) == len(source["Ports"] or [])
        for port, original in zip(seen_by_xc["ports"], source["Ports"] or []):
            assert port["PrivatePort"] == str(original["PrivatePort"])
            assert port["Type"] == original["Type"]
            assert port["IP"] == original.get("IP", "")
            assert port["PublicPort"] == str(original.get("PublicPort", ""))


def test_docker_ps_states_as_clients_see_them() -> None:
    containers = load("docker_ps_api1.41.json") + load("podman_ps_compat.json")
    document = xmlenc.docker_ps(containers)
    xc = {c["names"]: xc_power_state(c["status"]) for c in xc_containers(document)}
    xo = {i["entry"]["names"]: xo_actions(i["entry"]["status"]) for i in xo_containers(document)}
    assert xc == {
        "web": "Running",
        "batch_job": "Halted",
        "Cache.Redis-1": "Paused",
        "db": "Running",
        "worker": "Paused",
        "init-once": "Halted",
    }
    assert xo == {
        "web": ["stop", "restart", "pause"],
        "batch_job": ["start"],
        "Cache.Redis-1": ["unpause"],
        "db": ["stop", "restart", "pause"],
        "worker": ["unpause"],
        "init-once": [],
    }


def test_docker_ps_ports_keep_docker_case_and_omit_unpublished_sides() -> None:
    container = dict(
        NGINX,
        Ports=[
            {"IP": "::", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
            {"PrivatePort": 443, "Type": "tcp"},
            # an unpublished public side given as zero values
            {"IP": "", "PrivatePort": 53, "PublicPort": 0, "Type": "udp"},
        ],
    )
    document = xmlenc.docker_ps([container])
    ports = ET.fromstring(document).find("item/entry/ports")
    assert ports is not None
    assert [[child.tag for child in item] for item in ports] == [
        ["IP", "PrivatePort", "PublicPort", "Type"],
        ["PrivatePort", "Type"],
        ["PrivatePort", "Type"],
    ]
    assert xc_containers(document)[0]["ports"][0] == {
        "IP": "::",
        "PublicPort": "8080",
        "PrivatePort": "80",
        "Type": "tcp",
    }


def test_docker_ps_nested_keys_keep_docker_case() -> None:
    document = xmlenc.docker_ps(load("docker_ps_api1.52.json"))
    entry = xo_containers(document)[0]["entry"]
    assert entry["networksettings"]["Networks"]["bridge"]["IPAddress"] == "172.17.0.2"
    assert (
        entry["imagemanifestdescriptor"]["mediaType"]
        == "application/vnd.oci.image.manifest.v1+json"
    )
    assert entry["health"] == {"Status": "healthy", "FailingStreak": "0"}
    annotations = entry["hostconfig"]["Annotations"][SPECIAL]
    assert annotations == {"name": "io.example/owner", "#text": "team-a"}


@pytest.mark.parametrize("names", [[], None, "missing", [None], "/solo"])
def test_docker_ps_odd_names_never_crash(names: Any) -> None:
    container = {k: v for k, v in NGINX.items() if k != "Names"}
    if names != "missing":
        container["Names"] = names
    document = xmlenc.docker_ps([container])
    (seen,) = xc_containers(document)
    assert seen["names"] == ("solo" if names == "/solo" else "")
    assert seen["id"] == NGINX["Id"]


def test_docker_ps_minimal_container() -> None:
    document = xmlenc.docker_ps([{"Id": "abc"}])
    (entry,) = [i["entry"] for i in xo_containers(document)]
    assert entry == {
        "id": "abc",
        "names": None,
        "container": "abc",
        "status": None,
        "created": None,
        "image": None,
        "command": None,
        "ports": None,
    }  # xmltodict's None: present but empty
    assert xc_containers(document)[0]["status"] == ""


@pytest.mark.parametrize(
    "created,expected",
    [
        (1700000000.9, "1700000000"),
        ("1700000000", "1700000000"),
        ("2025-11-24T09:55:12Z", "2025-11-24T09:55:12Z"),
    ],
)
def test_docker_ps_created_as_integer_seconds(created: Any, expected: str) -> None:
    document = xmlenc.docker_ps([dict(NGINX, Created=created)])
    assert xc_containers(document)[0]["created"] == expected


HOSTILE_LABELS = {
    "com.example:team": "ops & dev",
    "a/b": "<script>alert('x')</script>",
    "with space": "quote \" and apostrophe '",
    "entry": "phantom container?",
    "Process": "phantom process?",
    "%CPU": "100%",
    "a&b": "&amp; already escaped",
    "x[0]": "ctrl\x01\x02\x1b[31mred\x1b[0m",
    "1abc": "ünïcödé 日本語",
    "emoji🎉": "🐳 whale",
    "c\rr": "a\r\nb",
}


def test_docker_ps_hostile_labels() -> None:
    containers = [dict(NGINX, Id="%064d" % n, Labels=dict(HOSTILE_LABELS)) for n in range(3)]
    document = xmlenc.docker_ps(containers)
    doc = parse(document)
    assert len(doc.getElementsByTagName("entry")) == 3  # no phantom containers
    assert doc.getElementsByTagName("Process") == []  # no phantom process rows
    assert len(xc_containers(document)) == len(xo_containers(document)) == 3
    labels = ET.fromstring(document).find("item/entry/labels")
    assert labels is not None
    seen = {element.attrib["name"]: element.text or "" for element in labels}
    assert seen == {key: xmlenc.strip_illegal(value) for key, value in HOSTILE_LABELS.items()}
    assert seen["x[0]"] == "ctrl[31mred[0m"
    assert seen["c\rr"] == "a\r\nb"


def test_docker_ps_thousand_containers_with_many_labels() -> None:
    def containers(count: int) -> List[Dict[str, Any]]:
        labels = {"com.example.label%d" % n: "value %d & more" % n for n in range(40)}
        labels.update(HOSTILE_LABELS)
        return [
            dict(NGINX, Id="%064x" % n, Names=["/c%d" % n], Labels=labels) for n in range(count)
        ]

    big = containers(1000)
    document = xmlenc.docker_ps(big)
    assert len(xc_containers(document)) == 1000
    assert [i["entry"]["names"] for i in xo_containers(document)] == [
        "c%d" % n for n in range(1000)
    ]


# --- docker_top ------------------------------------------------------------------------


def test_docker_top_contract_example() -> None:
    top = {
        "Titles": ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"],
        "Processes": [
            ["root", "3308", "3290", "0", "07:06", "?", "00:00:00", "nginx: master process"]
        ],
    }
    assert xmlenc.docker_top(top) == (
        PROLOG + "<docker_top><item><Process><UID>root</UID><PID>3308</PID><PPID>3290</PPID>"
        "<C>0</C><STIME>07:06</STIME><TTY>?</TTY><TIME>00:00:00</TIME>"
        "<CMD>nginx: master process</CMD></Process></item></docker_top>"
    )


def test_docker_top_docker_ps_ef() -> None:
    document = xmlenc.docker_top(load("docker_top_ps_ef.json"))
    parse(document)
    assert xc_processes(document) == [
        ("3308", "nginx: master process nginx -g daemon off;", "00:00:00"),
        ("3350", "nginx: worker process", "00:00:00"),
    ]
    processes = xmltodict.parse(document)["docker_top"]["item"]
    assert [p["Process"]["UID"] for p in processes] == ["root", "101"]


def test_docker_top_podman_titles() -> None:
    document = xmlenc.docker_top(load("podman_top_compat.json"))
    parse(document)
    assert xc_processes(document) == [
        ("1", "postgres", "0s"),
        ("27", "postgres: checkpointer ", "0s"),
    ]
    process = ET.fromstring(document).find("item/Process")
    assert process is not None
    assert [(e.tag, e.attrib.get("name")) for e in process] == [
        ("USER", None),
        ("PID", None),
        ("PPID", None),
        (SPECIAL, "%CPU"),
        ("ELAPSED", None),
        ("TTY", None),
        ("TIME", None),
        ("CMD", None),
    ]


def test_docker_top_podman_one_string_title() -> None:
    document = xmlenc.docker_top(load("podman_top_one_string.json"))
    parse(document)
    assert xc_processes(document) == [
        ("1", "sleep 1000", "-"),
        ("7", "/bin/sh -c while true; do date; sleep 5; done", "-"),
    ]
    first = xmltodict.parse(document)["docker_top"]["item"][0]["Process"]
    assert first == {"PID": "1", "USER": "root", "CMD": "sleep 1000", "TIME": "-"}


def test_docker_top_short_long_and_empty_rows() -> None:
    top = {
        "Titles": ["PID", "USER", "TIME", "CMD"],
        "Processes": [
            ["1"],  # fewer cells than titles: padded (the original raised)
            ["", "root", "", ""],  # empty required cells
            ["3", "root", "0:01", "sh", "-c", "sleep 1"],  # extra cells go to the last column
            [4, None, "0:02", "top"],
        ],
    }
    document = xmlenc.docker_top(top)
    assert xc_processes(document) == [
        ("1", "-", "-"),
        ("-", "-", "-"),
        ("3", "sh -c sleep 1", "0:01"),
        ("4", "top", "0:02"),
    ]
    rows = xmltodict.parse(document)["docker_top"]["item"]
    assert rows[0]["Process"]["USER"] == "-"
    assert rows[3]["Process"]["USER"] is None  # non-required cells may be empty


def test_docker_top_missing_required_columns_are_added() -> None:
    document = xmlenc.docker_top({"Titles": ["USER", "ARGS"], "Processes": [["root", "init"]]})
    assert xmltodict.parse(document)["docker_top"]["item"]["Process"] == {
        "USER": "root",
        "ARGS": "init",
        "PID": "-",
        "CMD": "-",
        "TIME": "-",
    }
    assert xc_processes(document) == [("-", "-", "-")]


def test_docker_top_command_kept_when_cmd_exists() -> None:
    document = xmlenc.docker_top(
        {"Titles": ["PID", "CMD", "COMMAND", "TIME"], "Processes": [["1", "sh", "sh -c x", "0"]]}
    )
    process = xmltodict.parse(document)["docker_top"]["item"]["Process"]
    assert process == {"PID": "1", "CMD": "sh", "COMMAND": "sh -c x", "TIME": "0"}


@pytest.mark.parametrize(
    "top", [{}, {"Titles": None, "Processes": None}, {"Titles": ["PID"], "Processes": []}]
)
def test_docker_top_without_processes(top: Dict[str, Any]) -> None:
    assert xmlenc.docker_top(top) == PROLOG + "<docker_top/>"


def test_docker_top_reserved_and_hostile_titles() -> None:
    top = {
        "Titles": ["PID", "entry", "Process", "%MEM", "TIME", "CMD"],
        "Processes": [["1", "e", "p", "0.1", "0:00", "a & <b>"]],
    }
    document = xmlenc.docker_top(top)
    doc = parse(document)
    assert doc.getElementsByTagName("entry") == []
    assert len(doc.getElementsByTagName("Process")) == 1
    assert xc_processes(document) == [("1", "a & <b>", "0:00")]


# --- docker_info, docker_version, docker_inspect ------------------------------------


def test_docker_info() -> None:
    info = load("docker_info.json")
    document = xmlenc.docker_info(info)
    parse(document)
    fields = xc_fields(document, "docker_info")
    assert fields["Driver"] == "overlayfs"
    assert fields["IndexServerAddress"] == "https://index.docker.io/v1/"
    assert fields["IPv4Forwarding"] == "True"
    assert fields["NCPU"] == "4"
    assert fields["MemTotal"] == "8323682304"
    assert "ExecutionDriver" not in fields  # modern Docker: XenCenter shows "None"
    parsed = xo_parse(document)["docker_info"]
    assert parsed["Labels"]["item"] == "com.example.environment=production"
    runtime = parsed["Runtimes"]["io.containerd.runc.v2"]["status"]
    assert (
        json.loads(runtime["org.opencontainers.runtime-spec.features"])["ociVersionMin"] == "1.0.0"
    )


@pytest.mark.parametrize(
    "fixture,version,api",
    [("docker_version.json", "29.0.2", "1.52"), ("podman_version_compat.json", "5.3.1", "1.41")],
)
def test_docker_version(fixture: str, version: str, api: str) -> None:
    source = load(fixture)
    document = xmlenc.docker_version(source)
    parse(document)
    fields = xc_fields(document, "docker_version")
    assert (fields["Version"], fields["ApiVersion"]) == (version, api)
    for name in ("GitCommit", "Os", "Arch", "KernelVersion", "GoVersion"):
        assert fields[name] == source[name]
    assert xmltodict.parse(document)["docker_version"]["Version"] == version  # XenRT
    # both documents non-empty: XenCenter shows its "Docker Information" section
    assert fields and xc_fields(xmlenc.docker_info(load("docker_info.json")), "docker_info")


def test_docker_inspect() -> None:
    source = load("docker_inspect.json")
    document = xmlenc.docker_inspect(source)
    doc = parse(document)
    parsed = xmltodict.parse(document, strip_whitespace=False)["docker_inspect"]
    assert parsed["State"]["Running"] == "True"  # XenRT and contract point 10
    assert parsed["State"]["Paused"] == "False"
    assert parsed["ExecIDs"] == "None"
    assert parsed["Args"]["item"] == ["nginx", "-g", "daemon off;"]
    env = parsed["Config"]["Env"]["item"]
    assert env[2] == 'GREETING=héllo <wörld> & "friends" 🎉'
    assert env[3] == "BELL=ringring[0m"
    health_output = parsed["State"]["Health"]["Log"]["item"]["Output"]
    assert health_output == source["State"]["Health"]["Log"][0]["Output"]  # CRs survive

    # reserved names among the labels do not look like containers or processes
    assert doc.getElementsByTagName("entry") == []
    assert doc.getElementsByTagName("Process") == []

    tree = xc_inspect_tree(document)
    assert tree_lookup(tree, "Config", "ExposedPorts", "80/tcp") == []
    assert tree_lookup(tree, "Config", "Volumes", "/var/cache/nginx") == []
    assert tree_lookup(tree, "Config", "Labels", "com.example:team") == ["a&b"]
    assert tree_lookup(tree, "Config", "Labels", "entry") == ["not a container"]
    assert tree_lookup(tree, "NetworkSettings", "Ports", "443/tcp") == ["None"]
    bindings = tree_lookup(tree, "NetworkSettings", "Ports", "80/tcp")
    assert [tree_lookup([item], "item", "HostIp") for item in bindings] == [["0.0.0.0"], ["::"]]


# --- health ----------------------------------------------------------------------------


@pytest.mark.parametrize("status, health", [
    ("Up 3 minutes (healthy)", "healthy"),
    ("Up 5 seconds (health: starting)", "starting"),
    ("Up About an hour (unhealthy)", "unhealthy"),
    ("Up 2 hours (Paused)", ""),
    ("Exited (0) 3 seconds ago", ""),
    ("Up 3 minutes", ""),
])
def test_health_is_read_from_the_status_text(status: str, health: str) -> None:
    assert xmlenc.health_of(status) == health


def test_docker_ps_keeps_health_in_its_own_field() -> None:
    base = {"Id": "a" * 64, "Names": ["/web"], "Image": "i", "Command": "c", "Created": 1,
            "Ports": [], "State": "running"}
    healthy = ET.fromstring(xmlenc.docker_ps([dict(base, Status="Up 3 minutes (healthy)")]))
    entry = healthy.find("item/entry")
    assert entry is not None
    assert entry.findtext("status") == "Up"  # exactly what Xen Orchestra compares
    assert entry.findtext("health") == "healthy"
    assert [child.tag for child in entry][:9] == [
        "id", "names", "container", "status", "created", "image", "command", "ports", "health"]
    unhealthy = xmlenc.docker_ps([dict(base, Status="Up 4 minutes (unhealthy)")])
    assert ET.fromstring(unhealthy).findtext("item/entry/health") == "unhealthy"
    plain = ET.fromstring(xmlenc.docker_ps([dict(base, Status="Up 3 minutes")]))
    assert plain.find("item/entry/health") is None
    # an engine that sends its own Health object keeps it, in Docker's case
    own = ET.fromstring(xmlenc.docker_ps([dict(base, Status="Up 1 second (healthy)",
                                               Health={"Status": "healthy",
                                                       "FailingStreak": 0})]))
    assert own.findtext("item/entry/health/Status") == "healthy"


# --- bounds: hostile input ------------------------------------------------------------


def test_docker_ps_drops_items_that_are_not_containers() -> None:
    junk: List[Any] = [1, "x", [], {}, {"Id": 5}, {"Id": ""}, {"Names": ["/noid"]}, None, NGINX]
    document = xmlenc.docker_ps(junk)
    assert [c["id"] for c in xc_containers(document)] == [NGINX["Id"]]
    assert xmlenc.docker_ps([{}] * 100000) == PROLOG + "<docker_ps/>"


def test_docker_ps_past_its_limit_is_cut_with_a_marker_both_clients_show() -> None:
    containers = [dict(NGINX, Id="%064x" % n, Names=["/c%d" % n]) for n in range(1000)]
    limit = 100000
    document = xmlenc.docker_ps(containers, limit=limit)
    assert len(document) <= limit
    seen = xc_containers(document)
    shown = len(seen) - 1
    assert 100 < shown < 1000
    assert [c["names"] for c in seen[:-1]] == ["c%d" % n for n in range(shown)]
    marker = seen[-1]
    assert marker["id"] == xmlenc.TRUNCATED_ID and marker["status"] == "Truncated"
    assert marker["names"] == ("(%d more containers not shown: docker_ps is limited to %d "
                               "characters)" % (1000 - shown, limit))
    assert xo_containers(document)[-1]["entry"]["status"] == "Truncated"
    assert xo_actions("Truncated") == []
    with pytest.raises(errors.InvalidArgument):  # a button pressed on the marker
        table.check_container_ref(marker["id"])


def test_the_default_docker_ps_limit_holds_a_thousand_containers_with_fifty_labels() -> None:
    (big,) = [c for c in load("docker_ps_api1.52.json") if c.get("Mounts")][:1] or [
        load("docker_ps_api1.52.json")[0]]
    labels = {"com.example.label%d" % n: "value %d & more" % n for n in range(50)}
    containers = [dict(big, Id="%064x" % n, Names=["/c%d" % n], Labels=labels)
                  for n in range(1000)]
    document = xmlenc.docker_ps(containers)
    assert len(xc_containers(document)) == 1000
    assert xmlenc.TRUNCATED_ID not in document


def test_a_huge_string_is_refused_before_it_is_escaped() -> None:
    with pytest.raises(errors.ResponseTooLarge) as exc:
        xmlenc.docker_inspect({"Id": "x", "Env": ["<" * (xmlenc.MAX_DOCKER_INSPECT + 1)]})
    assert exc.value.message.startswith(
        "The container's inspect document would exceed %d characters" % xmlenc.MAX_DOCKER_INSPECT)
    # escaping makes '<' four times longer: refused once the output passes the limit
    with pytest.raises(errors.ResponseTooLarge):
        xmlenc.docker_info({"A": "<" * (xmlenc.MAX_DOCKER_INFO // 2)})
    with pytest.raises(errors.ResponseTooLarge):
        xmlenc.docker_version({"V": ["<" * 1000] * 1000})


def test_deep_nesting_is_a_malformed_reply_not_a_recursion_error() -> None:
    value: Any = "bottom"
    for _ in range(xmlenc.MAX_DEPTH + 1):
        value = [value]
    with pytest.raises(errors.MalformedReply):
        xmlenc.docker_inspect({"Id": "x", "Deep": value})
    ok: Any = "bottom"
    for _ in range(xmlenc.MAX_DEPTH - 1):
        ok = {"k": ok}
    assert "bottom" in xmlenc.docker_inspect(ok)


def test_docker_top_drops_empty_and_odd_rows_and_cuts_with_a_marker() -> None:
    top = {"Titles": ["PID", "CMD"], "Processes": [[]] * 100000 + [5, None, ["1", "sh"]]}
    assert xc_processes(xmlenc.docker_top(top)) == [("1", "sh", "-")]
    assert xmlenc.docker_top({"Titles": 5, "Processes": [["1", "sh"]]}) == (
        xmlenc.docker_top({"Titles": [], "Processes": [["1", "sh"]]}))
    many = {"Titles": ["PID", "TIME", "CMD"],
            "Processes": [[str(n), "0:00", "worker %d" % n] for n in range(5000)]}
    document = xmlenc.docker_top(many, limit=50000)
    assert len(document) <= 50000
    rows = xc_processes(document)
    shown = len(rows) - 1
    assert 100 < shown < 5000
    assert rows[-1] == ("-", "(%d more processes not shown: get_top is limited to 50000 "
                             "characters)" % (5000 - shown), "-")
