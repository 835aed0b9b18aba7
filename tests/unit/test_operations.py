"""The Docker-backed plugin functions: the table (operations/table.py), their one
implementation (operations/implementation.py), and the two paths that run it
(the direct one in containers.py, the monitor's Dispatcher) giving the same
answers for the same engine."""

import os
import subprocess
import sys

import pytest

from xscontainer import errors, xmlenc
from xscontainer.operations import implementation, table

from .operation_fakes import (
    FakeDocker,
    FakePublisher,
    FakeWorker,
    data,
    direct_path,
    dispatcher,
    guest_vm,
)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
READS = ("get_inspect", "get_top")
LIFECYCLES = ("start", "stop", "restart", "pause", "unpause")


# -- the table -----------------------------------------------------------------------------


def test_the_table_is_the_wire_contract():
    assert {name: (op.required, op.kind) for name, op in table.OPERATIONS.items()} == dict(
        [(name, (("vmuuid", "object"), table.READ)) for name in READS]
        + [(name, (("vmuuid", "container"), table.LIFECYCLE)) for name in LIFECYCLES]
        + [("get_logs", (("vmuuid", "object"), table.READ)),
           ("get_stats", (("vmuuid",), table.READ)), ("get_ps", (("vmuuid",), table.READ))])
    assert {name: op.options for name, op in table.OPERATIONS.items() if op.options} == {
        "get_inspect": ("format",), "get_top": ("format",),
        "get_logs": ("tail", "since", "timestamps", "format"),
        "get_stats": ("format",), "get_ps": ("all", "format")}
    for name, op in table.OPERATIONS.items():
        assert op.name == name
        assert op.repeatable == (not op.is_lifecycle) == (name not in LIFECYCLES)


def test_find_and_lookup():
    assert table.find("pause") is table.OPERATIONS["pause"]
    for junk in ("status", "rm", "", None, ["get_top"], {"fn": 1}, 5):
        assert table.find(junk) is None
    with pytest.raises(errors.InvalidArgument):
        table.lookup("rm")


def test_container_ref_comes_from_the_operations_argument():
    assert table.OPERATIONS["get_top"].container_ref({"object": "web", "container": "x"}) == "web"
    assert table.OPERATIONS["stop"].container_ref({"object": "x", "container": "web"}) == "web"
    with pytest.raises(errors.InvalidArgument):
        table.OPERATIONS["stop"].container_ref({"object": "web"})


@pytest.mark.parametrize("ref", [
    "web", "Web_App.1-x", "MyContainer", "e9c2212c65",
    "e9c2212c65c387bba7c216c56cd19ffaa1cdb73cf5885f3259a6b1ae7747c834",
])
def test_container_refs_accepted(ref):
    assert table.check_container_ref(ref) == ref


@pytest.mark.parametrize("ref", [
    "", "-web", ".web", "_web", "web/../../x", "web\n", "we b", "web;rm", "a" * 256, None, 5,
    "../containers", "web?x=1", "web%2f",
])
def test_container_refs_refused(ref):
    with pytest.raises(errors.InvalidArgument) as exc:
        table.check_container_ref(ref)
    assert exc.value.code == "XSCONTAINER_INVALID_ARGUMENT"


def test_the_table_imports_only_the_standard_library():
    """plugin.py and monitor/client.py import it at start-up (the warm path)."""
    code = (
        "import sys; before = set(sys.modules)\n"
        "import xscontainer.operations.table\n"
        "new = sorted(set(sys.modules) - before)\n"
        "ours = [m for m in new if m.split('.')[0] == 'xscontainer']\n"
        "files = [getattr(sys.modules[m], '__file__', None) or '' for m in new]\n"
        "foreign = [f for f in files if 'site-packages' in f or 'dist-packages' in f]\n"
        "print(ours, foreign)\n"
        "sys.exit(0 if not foreign and ours == ['xscontainer', 'xscontainer.errors', "
        "'xscontainer.operations', 'xscontainer.operations.table'] else 1)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            universal_newlines=True,
                            env=dict(os.environ, PYTHONPATH=os.path.join(REPO, "lib")))
    assert result.returncode == 0, result.stdout


# -- the implementation --------------------------------------------------------------------


def test_every_read_has_its_implementation():
    assert set(implementation.READS) == {
        name for name, op in table.OPERATIONS.items() if not op.is_lifecycle}


def test_reads_give_their_xml_and_publish_nothing():
    docker = FakeDocker(web="running")
    published = []
    inspect = implementation.perform(table.OPERATIONS["get_inspect"], docker, "web",
                                     published.append)
    assert inspect == xmlenc.docker_inspect(docker.inspect("web"))
    assert inspect.startswith("<?xml") and "<docker_inspect>" in inspect
    top = implementation.perform(table.OPERATIONS["get_top"], docker, "web", published.append)
    assert top == xmlenc.docker_top(data("docker_top_ps_ef.json"))
    assert published == []


@pytest.mark.parametrize("name", LIFECYCLES)
def test_a_lifecycle_operation_returns_nothing_and_publishes_after_it(name):
    docker = FakeDocker(web="running")
    published = []

    def publish(client):
        published.append((client, list(client.calls)))

    assert implementation.perform(table.OPERATIONS[name], docker, "web", publish) == ""
    assert published == [(docker, [("lifecycle", name, "web")])]


def test_a_failed_lifecycle_operation_publishes_nothing():
    docker = FakeDocker(web="running")
    published = []
    with pytest.raises(errors.NoSuchContainer):
        implementation.perform(table.OPERATIONS["stop"], docker, "db", published.append)
    docker.fail = errors.DockerUnreachable("gone")
    with pytest.raises(errors.DockerUnreachable):
        implementation.perform(table.OPERATIONS["stop"], docker, "web", published.append)
    assert published == []


# -- the direct path (containers.py) -------------------------------------------------------


def test_direct_refuses_a_bad_reference_before_looking_the_vm_up(monkeypatch):
    docker = FakeDocker()
    server, _vm = guest_vm({})
    run = direct_path(monkeypatch, docker, server)
    for name, op in table.OPERATIONS.items():
        if op.target:
            with pytest.raises(errors.InvalidArgument):
                run(name, {"vmuuid": "u-1", op.target: "../x"})
        if op.options:
            with pytest.raises(errors.InvalidArgument):
                run(name, {"vmuuid": "u-1", op.target or "x": "web", "format": "yaml"})
    with pytest.raises(errors.InvalidArgument):
        run("get_logs", {"vmuuid": "u-1", "object": "web", "tail": "-1"})
    assert server.calls == [] and docker.calls == []


def test_direct_lifecycle_writes_docker_ps_only_when_the_vm_has_it(monkeypatch):
    docker = FakeDocker(web="running")
    server, vm = guest_vm({"xscontainer-monitor": "True"})
    run = direct_path(monkeypatch, docker, server)
    assert run("pause", {"vmuuid": "u-1", "container": "web"}) == ""
    assert server.writes() == [] and ("ps",) not in docker.calls and docker.closed

    server.record("VM", vm)["other_config"]["docker_ps"] = "<old/>"
    assert run("unpause", {"vmuuid": "u-1", "container": "web"}) == ""
    xml = xmlenc.docker_ps(docker.ps())
    assert server.other_config_edits("VM", vm) == [("remove", "docker_ps"),
                                                   ("add", "docker_ps", xml)]
    assert run("start", {"vmuuid": "u-1", "container": "web"}) == ""  # already running
    assert len(server.writes()) == 2  # the same list: no further write


def test_direct_reads_publish_nothing(monkeypatch):
    docker = FakeDocker(web="running")
    server, _vm = guest_vm({"docker_ps": "<old/>"})
    run = direct_path(monkeypatch, docker, server)
    assert "<docker_top>" in run("get_top", {"vmuuid": "u-1", "object": "web"})
    assert server.writes() == [] and docker.calls == [("top", "web")]


# -- both paths, one answer ----------------------------------------------------------------


CALLS = [
    ("get_inspect", "web"), ("get_top", "web"), ("pause", "web"), ("get_inspect", "web"),
    ("pause", "web"), ("unpause", "web"), ("stop", "web"), ("start", "web"),
    ("restart", "web"), ("get_inspect", "nope"), ("get_top", "nope"), ("stop", "nope"),
    ("get_top", "bad name!"), ("start", ""),
]


def _outcomes(run):
    results = []
    for name, ref in CALLS:
        args = {"vmuuid": "u-1", table.OPERATIONS[name].target: ref}
        results.append(run(name, args))
    return results


def test_the_direct_path_and_the_monitor_answer_alike(monkeypatch):
    """The same engine behind each path: the same payloads, the same errors, the
    same Docker requests, the same docker_ps published after each operation."""
    direct_engine = FakeDocker(web="running")
    server, vm = guest_vm({"docker_ps": "<old/>"})
    run_direct = direct_path(monkeypatch, direct_engine, server)

    def direct(name, args):
        try:
            return ("value", run_direct(name, args))
        except errors.XSContainerError as exc:
            return ("error", exc.xapi_description())

    warm_engine = FakeDocker(web="running")
    publisher = FakePublisher()
    dispatch = dispatcher(FakeWorker("u-1", warm_engine, publisher), publisher=publisher)

    def warm(name, args):
        answer = dispatch(dict(args, fn=name))
        return ("value", answer["value"]) if "value" in answer else ("error", answer["error"])

    direct_results = _outcomes(direct)
    assert _outcomes(warm) == direct_results
    assert [kind for kind, _ in direct_results].count("error") == 6
    assert [c for c in warm_engine.calls if c != ("ps",)] == \
        [c for c in direct_engine.calls if c != ("ps",)]
    assert direct_engine.containers == warm_engine.containers == {"web": "running"}
    # the five lifecycle operations that succeeded each published the list on both
    # paths (the direct path skips a write that would change nothing)
    assert direct_engine.calls.count(("ps",)) == warm_engine.calls.count(("ps",)) == 5
    assert len(publisher.waited) == 5
    assert server.record("VM", vm)["other_config"]["docker_ps"] == \
        publisher.values[("OpaqueRef:u-1", "docker_ps")]
