"""The report of a diagnosis and the chain that records it (diagnose_report.py),
and what importing diagnose.py loads."""

import os
import subprocess
import sys
from typing import List

import pytest

from xscontainer import errors
from xscontainer.diagnose_report import Chain, Report

LIB = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__)))), "lib")


def refused() -> None:
    raise errors.TLSError("Docker refused the certificate", "vm", "10.0.0.5")


def test_a_chain_records_passes_and_skips_everything_after_the_first_failure() -> None:
    report = Report("VM test")
    chain = Chain(report)
    ran: List[str] = []
    assert chain.check("one", lambda: 7, lambda v: "value %d" % v) == 7
    assert not chain.broken
    assert chain.check("two", refused) is None
    assert chain.broken
    assert chain.check("three", lambda: ran.append("three")) is None
    chain.skip_rest(["one", "two", "three", "four"])
    assert ran == []
    assert [(s.title, s.ok, s.detail) for s in report.steps] == [
        ("one", True, "value 7"), ("two", False, "Docker refused the certificate"),
        ("three", None, ""), ("four", None, "")]
    assert not report.ok
    assert report.failure is report.steps[1]
    assert report.text().splitlines() == [
        "Container management diagnosis for VM test",
        "  [ OK ] one: value 7",
        "  [FAIL] two: Docker refused the certificate",
        "  [SKIP] three",
        "  [SKIP] four",
        "Result: container management cannot work until this is fixed: two.",
    ]


def test_a_passed_step_can_need_attention() -> None:
    report = Report("VM test")
    chain = Chain(report)
    chain.check("dates", lambda: (True, "expires in 3 day(s)"), lambda d: d[1],
                warning=lambda d: d[0])
    chain.check("other", lambda: (False, "fine"), lambda d: d[1], warning=lambda d: d[0])
    assert [s.line() for s in report.steps] == ["  [WARN] dates: expires in 3 day(s)",
                                                "  [ OK ] other: fine"]
    assert report.ok and report.failure is None
    assert report.text().endswith("Result: container management works for this VM.")


def test_fail_breaks_the_chain_and_other_exceptions_propagate() -> None:
    chain = Chain(Report("VM test"))
    with pytest.raises(ZeroDivisionError):
        chain.check("bug", lambda: 1 // 0)
    assert not chain.broken
    chain.fail("found otherwise", "why")
    assert chain.broken
    assert chain.report.failure is not None and chain.report.failure.detail == "why"


def test_importing_diagnose_leaves_the_tls_checks_unloaded() -> None:
    # SSH guests never need diagnose_tls, nor certs (x509 certificates)
    code = ("import sys, xscontainer.diagnose; "
            "print(sorted(m for m in ('xscontainer.diagnose_tls', 'xscontainer.certs') "
            "if m in sys.modules))")
    env = dict(os.environ, PYTHONPATH=LIB)
    out = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, env=env,
                         universal_newlines=True, check=True).stdout
    assert out.strip() == "[]"
