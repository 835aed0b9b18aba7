"""get_logs, get_stats, get_ps and format=json: the argument checks, the log
stream's demultiplexing and bounds, docker stats' arithmetic, the JSON shapes,
and both paths giving the same answers."""

import json
import struct

import pytest

from xscontainer import errors, jsonenc, logs, stats, xmlenc
from xscontainer.diagnose_report import Report, Step
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

LOGS = table.OPERATIONS["get_logs"]


# -- arguments -----------------------------------------------------------------------------


@pytest.mark.parametrize("args, key", [
    ({"tail": "-1"}, "tail"), ({"tail": "10x"}, "tail"), ({"tail": "10001"}, "tail"),
    ({"tail": "all"}, "tail"), ({"tail": "1e3"}, "tail"), ({"tail": "\u0661"}, "tail"),
    ({"since": "-5"}, "since"), ({"since": "yesterday"}, "since"),
    ({"since": "2024-01-01"}, "since"), ({"timestamps": "maybe"}, "timestamps"),
    ({"format": "yaml"}, "format"), ({"format": "xml"}, "format"),
])
def test_bad_log_arguments_are_refused_naming_the_argument(args, key):
    with pytest.raises(errors.InvalidArgument) as exc:
        LOGS.parse_options(dict(args, vmuuid="u", object="web"))
    assert exc.value.code == "XSCONTAINER_INVALID_ARGUMENT"
    assert exc.value.details[0] == key and key + "=" in exc.value.message


def test_log_arguments_and_their_defaults():
    assert LOGS.parse_options({}) == {"tail": 100, "since": None, "timestamps": False,
                                      "format": "text"}
    assert LOGS.parse_options({"tail": " 10000 ", "since": "1700000000.25",
                               "timestamps": "TRUE", "format": "JSON"}) == {
        "tail": 10000, "since": "1700000000.25", "timestamps": True, "format": "json"}
    assert LOGS.parse_options({"tail": "0", "format": ""})["tail"] == 0
    ps = table.OPERATIONS["get_ps"]
    assert ps.parse_options({}) == {"all": True, "format": "xml"}
    assert ps.parse_options({"all": "false"})["all"] is False
    with pytest.raises(errors.InvalidArgument):
        ps.parse_options({"all": "2"})
    with pytest.raises(errors.InvalidArgument):
        table.OPERATIONS["get_top"].parse_options({"format": "text"})


def test_container_references_of_the_new_reads():
    assert table.OPERATIONS["get_ps"].container_ref({"object": "../x"}) == ""
    stats_op = table.OPERATIONS["get_stats"]
    assert stats_op.container_ref({}) == stats_op.container_ref({"object": " "}) == ""
    assert stats_op.container_ref({"object": "web"}) == "web"
    with pytest.raises(errors.InvalidArgument):
        stats_op.container_ref({"object": "../x"})


def test_given_options_pass_only_what_the_call_carries():
    assert LOGS.given_options({"tail": "5", "format": "", "other": "x", "vmuuid": "u"}) == \
        {"tail": "5"}
    with pytest.raises(errors.InvalidArgument):
        LOGS.given_options({"tail": "x"})


# -- the log stream ------------------------------------------------------------------------


def frame(stream: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(payload)) + payload


class Reader:
    """read(n) over bytes, recording the largest n asked for."""

    def __init__(self, data: bytes, step: int = 7) -> None:
        self.data = data
        self.pos = 0
        self.step = step
        self.largest = 0

    def __call__(self, size: int) -> bytes:
        self.largest = max(self.largest, size)
        chunk = self.data[self.pos:self.pos + min(size, self.step)]
        self.pos += len(chunk)
        return chunk


def collect(data: bytes, tty: bool = False, **kw) -> logs.Collector:
    collector = logs.Collector(**kw)
    logs.demultiplex(Reader(data), tty, collector.feed)
    collector.finish()
    return collector


def test_frames_are_demultiplexed_in_order_across_partial_frames():
    data = frame(1, b"out 1\nout ") + frame(2, b"err 1\n") + frame(1, b"2\n") + frame(2, b"end")
    collector = collect(data)
    assert list(collector.lines) == [("stdout", b"out 1"), ("stderr", b"err 1"),
                                     ("stdout", b"out 2"), ("stderr", b"end")]
    assert collector.text() == "out 1\nerr 1\nout 2\nend\n"
    answer = json.loads(collector.json("web", False))
    assert answer == {"container": "web", "truncated": False, "not_shown": 0, "lines": [
        {"stream": "stdout", "text": "out 1"}, {"stream": "stderr", "text": "err 1"},
        {"stream": "stdout", "text": "out 2"}, {"stream": "stderr", "text": "end"}]}


def test_a_tty_stream_is_raw_and_a_misreported_one_is_detected():
    assert collect(b"plain\ntext\n", tty=True).text() == "plain\ntext\n"
    assert collect(b"no frames here\n").text() == "no frames here\n"


def test_timestamps_are_split_in_json():
    collector = collect(frame(1, b"2024-05-01T10:00:00.123456789Z hello\n"))
    line = json.loads(collector.json("web", True))["lines"][0]
    assert line == {"stream": "stdout", "timestamp": "2024-05-01T10:00:00.123456789Z",
                    "text": "hello"}


def test_a_huge_frame_is_read_in_bounded_chunks_and_refused_past_the_read_limit():
    reader = Reader(frame(1, b"x" * 300000), step=1 << 30)
    with pytest.raises(errors.ResponseTooLarge):
        logs.demultiplex(reader, False, lambda s, d: None, max_bytes=200000)
    assert reader.largest <= 64 * 1024


def test_a_frame_cut_short_is_malformed():
    data = frame(1, b"hello\n") + struct.pack(">BxxxL", 1, 0xFFFFFFFF) + b"only this"
    with pytest.raises(errors.MalformedReply):
        logs.demultiplex(Reader(data), False, lambda s, d: None)
    with pytest.raises(errors.MalformedReply):
        logs.demultiplex(Reader(frame(1, b"a\n") + frame(7, b"b\n")), False, lambda s, d: None)


def test_the_newest_whole_lines_are_kept_within_the_bound_with_a_marker():
    lines = b"".join(b"line %05d %s\n" % (n, b"y" * 90) for n in range(1000))  # 101 KB
    collector = collect(frame(1, lines), max_bytes=10000)
    kept = collector.text().splitlines()  # 102 bytes a line: 98 fit
    assert kept[0].startswith("(902 earlier lines not shown: get_logs answers at most 10000")
    assert kept[1].startswith("line 00902 ") and kept[-1].startswith("line 00999 ")
    assert collector.size == 98 * 102 and len(kept) == 99
    answer = json.loads(collector.json("web", False))
    assert answer["truncated"] is True and answer["not_shown"] == 902


def test_a_line_longer_than_the_line_limit_is_cut():
    collector = collect(frame(1, b"z" * 5000 + b"\nnext\n"), max_line=1000)
    assert list(collector.lines) == [
        ("stdout", b"z" * 1000 + b" [... 4000 bytes of this line not shown]"),
        ("stdout", b"next")]


def test_log_text_is_fit_for_xml_rpc():
    text = collect(frame(1, b"\x1b[31mred\x1b[0m \xff\n")).text()
    assert text == "[31mred[0m \ufffd\n"
    assert xmlenc.strip_illegal(text) == text


# -- docker stats' arithmetic --------------------------------------------------------------


def test_cpu_percent_as_the_cli_computes_it():
    cpu = {"cpu_usage": {"total_usage": 3000}, "system_cpu_usage": 20000, "online_cpus": 4}
    pre = {"cpu_usage": {"total_usage": 1000}, "system_cpu_usage": 10000}
    assert stats.cpu_percent(cpu, pre) == pytest.approx(2000 / 10000 * 4 * 100)
    # no online_cpus (old engines): the per-CPU list's length
    cpu = {"cpu_usage": {"total_usage": 3000, "percpu_usage": [1, 2]}, "system_cpu_usage": 20000}
    assert stats.cpu_percent(cpu, pre) == pytest.approx(40.0)
    assert stats.cpu_percent(cpu, cpu) == 0.0 and stats.cpu_percent({}, {}) == 0.0


def test_memory_without_the_inactive_file_cache_v1_and_v2():
    v1 = {"usage": 1000, "limit": 4000, "stats": {"total_inactive_file": 300,
                                                  "inactive_file": 100}}
    v2 = {"usage": 1000, "limit": 4000, "stats": {"inactive_file": 100}}
    assert stats.memory(v1) == (700, 4000)
    assert stats.memory(v2) == (900, 4000)
    assert stats.memory({"usage": 50, "stats": {"inactive_file": 80}}) == (50, 0)


def test_a_row_from_docker_and_from_hostile_values():
    sample = FakeDocker(web="running").stats("web")
    row = stats.row(sample, {"cpu_stats": {"cpu_usage": {"total_usage": 0},
                                           "system_cpu_usage": 0}})
    assert row == {"id": "webwebwebweb", "name": "web", "cpu_percent": 50.0,
                   "memory_usage": 8 << 20, "memory_limit": 100 << 20, "memory_percent": 8.0,
                   "network_rx": 100, "network_tx": 50, "block_read": 4096,
                   "block_write": 8192, "pids": 3}
    assert not stats.has_previous(sample)
    junk = {"cpu_stats": [], "memory_stats": {"usage": "lots"}, "networks": {"e": 5},
            "blkio_stats": {"io_service_bytes_recursive": [None, {"op": 5}]},
            "pids_stats": None, "name": 7}
    assert stats.row(junk)["pids"] == 0 and stats.row(junk)["memory_usage"] == 0


def test_podman_fills_precpu_itself():
    sample = {"cpu_stats": {"cpu_usage": {"total_usage": 2000}, "system_cpu_usage": 9000,
                            "online_cpus": 1},
              "precpu_stats": {"cpu_usage": {"total_usage": 1000}, "system_cpu_usage": 5000}}
    assert stats.has_previous(sample)
    assert stats.row(sample)["cpu_percent"] == 25.0


# -- the implementation and both paths -----------------------------------------------------


@pytest.fixture(autouse=True)
def no_wait(monkeypatch):
    monkeypatch.setattr(implementation, "STATS_INTERVAL", 0.0)


def test_get_stats_of_every_running_container_takes_two_samples_each():
    docker = FakeDocker(web="running", db="paused", old="exited")
    xml = implementation.get_stats(docker, "", {"format": "xml"})
    assert xml.startswith('<?xml version="1.0" ?><docker_stats><item><id>dbdbdbdb</id>')
    answer = json.loads(implementation.get_stats(docker, "", {"format": "json"}))
    assert [row["name"] for row in answer["containers"]] == ["db", "web"]
    assert answer["not_shown"] == 0
    assert [c for c in docker.calls if c[0] == "stats"] == [
        ("stats", "dbdbdbdb"), ("stats", "webwebwebweb")] * 4
    assert answer["containers"][1]["cpu_percent"] == 50.0


def test_get_ps_is_docker_ps_and_all_false_keeps_running_and_paused():
    docker = FakeDocker(web="running", db="paused", old="exited")
    assert implementation.get_ps(docker, "", {}) == xmlenc.docker_ps(docker.ps())
    running = implementation.get_ps(docker, "", {"all": False})
    assert "<names>old</names>" not in running and "<names>db</names>" in running
    answer = json.loads(implementation.get_ps(docker, "", {"format": "json"}))
    assert answer["containers"] == json.loads(json.dumps(xmlenc.ps_entries(docker.ps())))


def test_json_lists_keep_their_first_items_within_the_limit(monkeypatch):
    monkeypatch.setattr(xmlenc, "MAX_DOCKER_PS", 2000)
    many = [dict(item, Id="%064d" % n) for n, item in
            enumerate(data("docker_ps_api1.52.json") * 20)]
    answer = json.loads(jsonenc.ps(many))
    assert 0 < len(answer["containers"]) < len(many)
    assert answer["not_shown"] == len(many) - len(answer["containers"])
    assert len(jsonenc.ps(many)) <= 2000


def test_json_top_and_inspect():
    top = json.loads(jsonenc.top(data("podman_top_compat.json")))
    assert "CMD" in top["titles"] and all(p["PID"] and p["CMD"] for p in top["processes"])
    inspect = data("docker_inspect.json")
    assert json.loads(jsonenc.inspect(inspect)) == inspect
    deep: object = []
    for _ in range(100):
        deep = [deep]
    with pytest.raises(errors.MalformedReply):
        jsonenc.inspect({"x": deep})
    with pytest.raises(errors.MalformedReply):
        jsonenc.inspect({"x": float("nan")})


def test_json_diagnosis():
    report = Report("VM web (u-1)")
    report.steps += [Step("VM is running", True), Step("SSH", False, "refused"),
                     Step("Docker", None)]
    answer = json.loads(jsonenc.diagnosis(report))
    assert answer == {"vm": "VM web (u-1)", "ok": False, "steps": [
        {"title": "VM is running", "status": "ok", "detail": ""},
        {"title": "SSH", "status": "failed", "detail": "refused"},
        {"title": "Docker", "status": "skipped", "detail": ""}],
        "result": report.text().splitlines()[-1]}


NEW_CALLS = [
    ("get_logs", {"object": "web"}), ("get_logs", {"object": "web", "tail": "2"}),
    ("get_logs", {"object": "web", "format": "json", "tail": "0"}),
    ("get_logs", {"object": "nope"}), ("get_logs", {"object": "web", "tail": "-1"}),
    ("get_stats", {}), ("get_stats", {"object": "web", "format": "json"}),
    ("get_stats", {"object": "nope"}), ("get_ps", {}), ("get_ps", {"all": "no"}),
    ("get_ps", {"format": "json"}), ("get_inspect", {"object": "web", "format": "json"}),
    ("get_top", {"object": "web", "format": "json"}), ("get_top", {"object": "web",
                                                                   "format": "csv"}),
]


def test_the_direct_path_and_the_monitor_answer_the_new_reads_alike(monkeypatch):
    server, _vm = guest_vm({})
    run_direct = direct_path(monkeypatch, FakeDocker(web="running", old="exited"), server)
    publisher = FakePublisher()
    dispatch = dispatcher(FakeWorker("u-1", FakeDocker(web="running", old="exited"),
                                     publisher), publisher=publisher)
    results = []
    for name, args in NEW_CALLS:
        args = dict(args, vmuuid="u-1")
        try:
            direct = ("value", run_direct(name, args))
        except errors.XSContainerError as exc:
            direct = ("error", exc.xapi_description())
        answer = dispatch(dict(args, fn=name))
        warm = ("value", answer["value"]) if "value" in answer else ("error", answer["error"])
        assert warm == direct, name
        results.append(direct)
    assert results[0] == ("value", "line 1\nline 2\nline 3\nline 4\nline 5\n")
    assert results[1] == ("value", "line 4\nline 5\n")
    assert json.loads(results[2][1])["lines"] == []
    assert [r[1][0] for r in results if r[0] == "error"] == [
        "XSCONTAINER_NO_SUCH_CONTAINER", "XSCONTAINER_INVALID_ARGUMENT",
        "XSCONTAINER_NO_SUCH_CONTAINER", "XSCONTAINER_INVALID_ARGUMENT"]
    assert publisher.waited == []


def test_get_stats_of_one_container_names_it_when_the_sample_does_not():
    """Docker 26 and newer send a one-shot sample without id and name."""
    docker = FakeDocker(web="running")
    plain = docker.stats

    def anonymous(ref):
        sample = dict(plain(ref))
        del sample["id"], sample["name"]
        return sample

    docker.stats = anonymous
    (row,) = json.loads(implementation.get_stats(docker, "web", {"format": "json"}))["containers"]
    assert row["name"] == "web" and row["id"] == data("docker_inspect.json")["Id"]
    assert ("inspect", "web") in docker.calls
    docker.calls.clear()
    docker.stats = plain  # a sample that names it: no inspect
    implementation.get_stats(docker, "web", {})
    assert ("inspect", "web") not in docker.calls
