"""The `xscontainer` command's pure parts: options, tables, documents read,
logs -f's de-duplication, exit statuses. (It runs against the lab's dom0 in
tests/integration/test_console.py.)"""

import calendar
import os
import signal
import time
from typing import Any, Dict, List

import pytest

from xscontainer import xmlenc
from xscontainer.cli import exits, follow, options, tables, views
from xscontainer.cli.pool import UUID_RE


def test_bad_options_exit_2_with_one_line(capsys: pytest.CaptureFixture) -> None:
    for argv in (["logs", "vm", "c", "-n", "-1"], ["logs", "vm", "c", "-n", "10x"],
                 ["logs", "vm", "c", "-n", "10001"], ["frobnicate"], ["top", "vm"],
                 ["logs", "-f", "--json", "vm", "c"], ["prepare", "vm", "--generate-certs"],
                 ["prepare", "vm", "--mode", "tls", "--client-cert", "a"]):
        with pytest.raises(SystemExit) as exc:
            options.parse(argv)
        assert exc.value.code == exits.USAGE, argv
        err = capsys.readouterr().err
        assert err.startswith("xscontainer") and "see xscontainer" in err, err


def test_json_before_or_after_the_subcommand() -> None:
    assert options.parse(["--json", "ps"]).json is True
    assert options.parse(["ps", "--json"]).json is True
    assert options.parse(["ps"]).json is False
    args = options.parse(["logs", "-n", "all", "--since", "10m", "vm", "c"])
    assert args.tail == 10000 and args.since > 0


def test_help_lists_examples_and_every_exit_status(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        options.parse(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "xscontainer logs -n 5" in out
    for status, meaning in exits.MEANINGS:
        assert "%3d  %s" % (status, meaning) in out


def test_exit_status_by_code() -> None:
    assert exits.for_code("XSCONTAINER_VM_NOT_FOUND") == exits.NO_VM
    assert exits.for_code("XSCONTAINER_NO_SUCH_CONTAINER") == exits.NO_CONTAINER
    assert exits.for_code("XSCONTAINER_SSH_AUTH_FAILED") == exits.UNREACHABLE
    assert exits.for_code("XSCONTAINER_SOMETHING_NEW") == exits.FAILED
    assert exits.for_code("XENAPI_PLUGIN_FAILURE") == exits.XAPI
    assert len({s for s, _ in exits.MEANINGS}) == len(exits.MEANINGS)


def test_uuid_pattern() -> None:
    assert UUID_RE.match("2c28494a-7369-4103-8f66-848903a43614")
    assert not UUID_RE.match("web-vm")


def test_table_fits_the_terminal_cutting_only_the_shrinkable_columns() -> None:
    rows = [["vm1", "0123456789", "sh -c " + "x" * 200, "Up", "a-long-container-name"]]
    header = ("VM", "CONTAINER ID", "COMMAND", "STATUS", "NAMES")
    wide = tables.render(header, rows)
    assert max(len(line) for line in wide.splitlines()) > 200
    narrow = tables.render(header, rows, ("COMMAND", "NAMES"), columns=80)
    lines = narrow.splitlines()
    assert all(len(line) <= 80 for line in lines), lines
    assert "0123456789" in lines[1] and "Up" in lines[1] and "..." in lines[1]
    # too narrow for even the floors: the fixed columns stay whole
    tiny = tables.render(header, rows, ("COMMAND", "NAMES"), columns=10)
    assert "0123456789" in tiny
    # newlines inside a cell never break the table
    assert len(tables.render(("A",), [["x\ny"]]).splitlines()) == 2


def test_sizes_and_ages_as_docker_prints_them() -> None:
    assert tables.human_bytes(0) == "0B"
    assert tables.human_bytes(1500) == "1.5kB"
    assert tables.human_bytes(3 * 1024 * 1024, binary=True) == "3MiB"
    assert tables.ago(1000, now=1000 + 3 * 3600 + 5) == "3 hours ago"
    assert tables.ago(1000, now=1001) == "1 second ago"


def _docker_ps() -> str:
    return xmlenc.docker_ps([
        {"Id": "a" * 64, "Names": ["/web"], "Image": "nginx", "Command": "nginx -g",
         "Created": 1700000000, "Status": "Up 3 minutes (Paused)",
         "Ports": [{"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
                   {"PrivatePort": 443, "Type": "tcp"}],
         "Labels": {"entry": "not a container"}},
        {"Id": "b" * 64, "Names": ["/old"], "Image": "busybox", "Command": "true",
         "Created": 1700000000, "Status": "Exited (137) 5 seconds ago", "Ports": []},
    ])


def test_docker_ps_read_as_xencenter_reads_it() -> None:
    containers = views.ps_containers(_docker_ps())
    assert [c["names"] for c in containers] == ["web", "old"]
    web = containers[0]
    assert web["container"] == "a" * 10 and web["status"] == "Up (Paused)"
    assert web["created"] == 1700000000
    assert views.ports_text(web["ports"]) == "0.0.0.0:8080->80/tcp, 443/tcp"
    assert [views.is_running(c) for c in containers] == [True, False]
    row = views.ps_row("vm1", web, now=1700000000 + 120)
    assert row == ["vm1", "a" * 10, "nginx", "nginx -g", "2 minutes ago", "Up (Paused)",
                   "0.0.0.0:8080->80/tcp, 443/tcp", "web"]
    assert views.ps_containers("") == []
    assert views.ps_containers('<?xml version="1.0" ?><docker_ps/>') == []


def test_documents_with_a_dtd_or_broken_xml_are_refused() -> None:
    bomb = ('<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaa">]>'
            "<docker_ps><item><entry><id>&a;</id></entry></item></docker_ps>")
    for text in (bomb, "<docker_ps><item>"):
        with pytest.raises(views.BadDocument):
            views.ps_containers(text)


def test_top_and_inspect_documents() -> None:
    top = xmlenc.docker_top({"Titles": ["UID", "PID", "TIME", "CMD"],
                             "Processes": [["root", "1", "00:00:00", "sleep 1d"]]})
    assert views.top_processes(top) == (["UID", "PID", "TIME", "CMD"],
                                        [["root", "1", "00:00:00", "sleep 1d"]])
    inspect = xmlenc.docker_inspect({"Name": "/web", "Id": "c" * 64, "Path": "sleep",
                                     "Args": ["1d"], "Config": {"Image": "busybox"},
                                     "State": {"Status": "running", "ExitCode": 0}})
    facts = dict(views.inspect_summary(inspect))
    assert facts["Name"] == "web" and facts["Command"] == "sleep 1d"
    assert facts["Image"] == "busybox" and facts["Status"] == "running"


def test_timestamps_parsed_with_trimmed_nanoseconds_and_zones() -> None:
    base = calendar.timegm((2026, 12, 2, 7, 53, 13, 0, 0, 0))
    assert follow.stamp("2026-12-02T07:53:13.4886Z hello") == ((base, 488600000), "hello")
    assert follow.stamp("2026-12-02T07:53:13Z x y") == ((base, 0), "x y")
    assert follow.stamp("2026-12-02T08:53:13.000000001+01:00 a") == ((base, 1), "a")
    assert follow.stamp("(3 earlier lines not shown)") is None
    assert follow.stamp("2026-12-02T07:53:13.1Z a") > follow.stamp(  # type: ignore[operator]
        "2026-12-02T07:53:13.09Z a")


class _Pool:
    """Answers get_logs from a script of payloads; records the arguments."""

    def __init__(self, payloads: List[str]) -> None:
        self.payloads = payloads
        self.calls: List[Dict[str, str]] = []

    def plugin(self, fn: str, args: Dict[str, str]) -> str:
        assert fn == "get_logs"
        self.calls.append(dict(args))
        if not self.payloads:
            raise KeyboardInterrupt()  # Ctrl-C during a poll
        return self.payloads.pop(0)


def test_follow_prints_each_line_once_and_stops_on_ctrl_c(
        capsys: pytest.CaptureFixture) -> None:
    t = "2026-12-02T07:53:%02d.%sZ "
    pool = _Pool([
        t % (1, "5") + "one\n" + t % (2, "1") + "two\n",
        # the same second again (since is whole seconds), then new lines; a line
        # with the same timestamp as the last one but other text is new
        t % (2, "1") + "two\n" + t % (2, "1") + "two bis\n" + t % (3, "0") + "three\n",
        "",
        t % (3, "0") + "three\n" + t % (4, "25") + "four\n",
    ])
    target: Dict[str, Any] = {"vmuuid": "u", "object": "c", "tail": "5"}
    assert follow.Follower(pool, target, False, 0.001).run() == exits.OK
    assert capsys.readouterr().out == "one\ntwo\ntwo bis\nthree\nfour\n"
    assert pool.calls[0]["tail"] == "5" and "since" not in pool.calls[0]
    assert all(c["timestamps"] == "true" for c in pool.calls)
    base = calendar.timegm((2026, 12, 2, 7, 53, 0, 0, 0, 0))
    assert [c.get("since") for c in pool.calls[1:]] == [
        str(base + 2), str(base + 3), str(base + 3), str(base + 4)]
    assert pool.calls[1]["tail"] == follow.MAX_TAIL


def test_follow_prints_a_line_logged_after_a_later_stamped_one(
        capsys: pytest.CaptureFixture) -> None:
    """stdout and stderr are copied into Docker's log separately: a stdout line
    can land after a stderr line stamped later. It is printed once all the same."""
    t = "2026-12-02T07:53:%02d.%sZ "
    pool = _Pool([
        t % (1, "1") + "out 1\n" + t % (1, "3") + "err 2\n",
        # out 2 (stamped before err 2) reached the log after the first poll
        t % (1, "1") + "out 1\n" + t % (1, "3") + "err 2\n" + t % (1, "2") + "out 2\n",
        t % (1, "2") + "out 2\n" + t % (2, "0") + "out 3\n",
    ])
    assert follow.Follower(pool, {}, False, 0.001).run() == exits.OK
    assert capsys.readouterr().out == "out 1\nerr 2\nout 2\nout 3\n"


def test_follow_never_prints_what_n_left_out(capsys: pytest.CaptureFixture) -> None:
    t = "2026-12-02T07:53:01.%dZ line %d\n"
    pool = _Pool([
        t % (8, 8) + t % (9, 9),  # -n 2
        "".join(t % (n, n) for n in range(1, 10)),  # the whole second, as `since` gives it
    ])
    assert follow.Follower(pool, {"tail": "2"}, False, 0.001).run() == exits.OK
    assert capsys.readouterr().out == "line 8\nline 9\n"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_follow_stops_on_a_signal_whose_exception_was_swallowed(signum: int) -> None:
    """The handler's exception can land in a finalizer, which swallows it: the
    loop still stops after that poll."""

    class Swallowing(_Pool):
        def plugin(self, fn: str, args: Dict[str, str]) -> str:
            self.calls.append(dict(args))
            if len(self.calls) == 2:
                try:
                    os.kill(os.getpid(), signum)
                    time.sleep(1)  # the handler runs here...
                except BaseException:
                    pass
            if len(self.calls) > 5:
                raise AssertionError("still polling after the signal")
            return ""

    before = signal.getsignal(signum)
    pool = Swallowing([])
    assert follow.Follower(pool, {}, False, 0.001).run() == exits.OK
    assert len(pool.calls) == 2
    assert signal.getsignal(signum) == before  # put back


def test_follow_keeps_timestamps_with_t(capsys: pytest.CaptureFixture) -> None:
    line = "2026-12-02T07:53:01.5Z one"
    follow.Follower(_Pool([line + "\n"]), {}, True, 0.001).run()
    assert capsys.readouterr().out == line + "\n"


def test_readme_mirrors_the_help() -> None:
    import os  # noqa: PLC0415

    readme = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")
    with open(readme) as f:
        text = f.read()
    section = text[text.index("## At the console"):]
    block = section[section.index("```\n") + 4:section.index("\n```", section.index("```\n"))]
    assert block.startswith("usage: xscontainer [-h] [--json] COMMAND ...\n")
    assert options.DESCRIPTION in block
    assert block.endswith(options.EXAMPLES.rstrip("\n"))


def test_xapi_unreachable_is_status_9(monkeypatch: pytest.MonkeyPatch, tmp_path: Any,
                                      capsys: pytest.CaptureFixture) -> None:
    from xscontainer import cli  # noqa: PLC0415

    monkeypatch.setenv("XSCONTAINER_XAPI_SOCKET", str(tmp_path / "no-xapi"))
    monkeypatch.setenv("XSCONTAINER_LOG_FILE", str(tmp_path / "log"))
    assert cli.main(["ps"]) == exits.XAPI
    err = capsys.readouterr().err
    assert err.startswith("xscontainer: Cannot log in to the local XAPI") and err.count("\n") == 1
    assert cli.main(["--json", "register", "vm"]) == exits.XAPI
    import json  # noqa: PLC0415

    assert json.loads(capsys.readouterr().out)["error"]["status"] == exits.XAPI
