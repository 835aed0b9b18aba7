"""configdrive.drive's parts that need no XAPI: the VDI size, the padded upload,
the undo log. NewDrive itself is exercised through create_config_drive
(test_configdrive_create.py) and the lab."""

import io
import logging

import pytest

from xscontainer.configdrive import drive

MIB = 1 << 20


def test_vdi_size_is_rounded_up_to_2_mib() -> None:
    assert drive.vdi_size(1) == 2 * MIB
    assert drive.vdi_size(2 * MIB) == 2 * MIB  # aligned stays
    assert drive.vdi_size(2 * MIB + 1) == 4 * MIB
    assert drive.vdi_size(0) == 2 * MIB


def test_padded_reads_the_file_then_zeros_up_to_the_size() -> None:
    source = drive.Padded(io.BytesIO(b"abcde"), 12)
    assert source.read(3) == b"abc"
    assert source.read(4) == b"de\0\0"
    assert source.read(100) == b"\0" * 5
    assert source.read(100) == b""


def test_padded_never_reads_past_the_size() -> None:
    source = drive.Padded(io.BytesIO(b"x" * 10), 4)
    assert source.read(100) == b"xxxx"
    assert source.read(1) == b""


def test_undo_runs_newest_first_and_past_a_failing_step(
        caplog: pytest.LogCaptureFixture) -> None:
    done = []

    def broken() -> None:
        raise OSError("already gone")

    undo = drive.Undo()
    undo.add("first", lambda: done.append("first"))
    undo.add("broken", broken)
    undo.add("last", lambda: done.append("last"))
    with caplog.at_level(logging.WARNING):
        undo.run()
    assert done == ["last", "first"]
    assert "broken: already gone" in caplog.text
    undo.run()  # each step runs once
    assert done == ["last", "first"]


def test_undo_forget_keeps_what_was_made() -> None:
    done = []
    undo = drive.Undo()
    undo.add("step", lambda: done.append("step"))
    undo.forget()
    undo.run()
    assert done == []
