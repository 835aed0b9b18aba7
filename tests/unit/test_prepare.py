"""xscontainer-prepare-vm without a lab: the TLS ISO, the key installer script,
the command line and its questions."""

import io
import json
import os
import subprocess
from pathlib import Path
from typing import List

import pytest

from xscontainer import certs, iso
from xscontainer.prepare import cli, console, sshmode, tlsiso

VM = "3f1b1b0e-5555-4666-8777-888899990000"


# -- the TLS ISO ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def generated() -> certs.GeneratedSet:
    return certs.generate(["10.1.2.3", "169.254.0.9"], VM)


def test_tls_iso_holds_exactly_the_server_side(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              generated: certs.GeneratedSet) -> None:
    monkeypatch.setenv("XSCONTAINER_RUN_DIR", str(tmp_path / "run"))
    image = tlsiso.build(generated)
    assert os.listdir(str(tmp_path / "run")) == []  # the work directory is gone
    reader = iso.IsoReader(io.BytesIO(image))
    assert reader.volume_id == "Container TLS"
    assert reader.walk() == ["README.txt", "configure_tls.cmd", "daemon.json", "server/",
                             "server/ca.pem", "server/server-cert.pem", "server/server-key.pem"]
    read = {p: reader.read(p, 1 << 20) for p in reader.walk() if not p.endswith("/")}
    assert read["server/ca.pem"].decode() == generated.ca_cert
    assert read["server/server-cert.pem"].decode() == generated.server_cert
    assert read["server/server-key.pem"].decode() == generated.server_key
    # dom0's side stays in dom0
    assert generated.client_key.encode() not in image
    assert generated.client_cert.encode() not in image
    assert reader.mode("server/server-key.pem") == 0o600


def test_tls_iso_scripts_are_windows_text(generated: certs.GeneratedSet) -> None:
    files = tlsiso.contents(generated)
    assert set(files) == {"README.txt", "configure_tls.cmd", "daemon.json", "server/ca.pem",
                          "server/server-cert.pem", "server/server-key.pem"}
    cmd = files["configure_tls.cmd"]
    assert cmd.count("\r\n") == cmd.count("\n") > 20  # CRLF everywhere
    for step in ("net session", "icacls", "/inheritance:r", "certs.d", "daemon.json",
                 "net stop docker", "net start docker", "netsh advfirewall", "localport=2376",
                 "server-key.pem"):
        assert step in cmd, step
    daemon = json.loads(files["daemon.json"])
    assert daemon == {
        "hosts": ["tcp://0.0.0.0:2376", "npipe://"],
        "tlsverify": True,
        "tlscacert": "C:\\ProgramData\\docker\\certs.d\\ca.pem",
        "tlscert": "C:\\ProgramData\\docker\\certs.d\\server-cert.pem",
        "tlskey": "C:\\ProgramData\\docker\\certs.d\\server-key.pem",
    }
    assert files["README.txt"].startswith("Container TLS")


# -- the authorized_keys installer (run here with /bin/sh, as in a guest) --------------

KEY = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7pool xscontainer@dom0"


def install(home: Path, line: str = KEY) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    return subprocess.run(["/bin/sh", "-c", sshmode.INSTALL_KEY_SCRIPT], input=line + "\n",
                          env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=10, check=False)


def test_key_installer_creates_private_files_once(tmp_path: Path) -> None:
    done = install(tmp_path)
    assert (done.returncode, done.stdout.strip()) == (0, "added")
    assert oct(os.stat(str(tmp_path / ".ssh")).st_mode & 0o777) == "0o700"
    assert oct(os.stat(str(tmp_path / ".ssh/authorized_keys")).st_mode & 0o777) == "0o600"
    again = install(tmp_path, KEY.replace("xscontainer@dom0", "root@other-comment"))
    assert (again.returncode, again.stdout.strip()) == (0, "present")
    assert (tmp_path / ".ssh/authorized_keys").read_text() == KEY + "\n"


def test_key_installer_keeps_other_keys(tmp_path: Path) -> None:
    (tmp_path / ".ssh").mkdir(mode=0o755)
    (tmp_path / ".ssh/authorized_keys").write_text("ssh-ed25519 AAAAother me")  # no newline
    os.chmod(str(tmp_path / ".ssh/authorized_keys"), 0o644)
    assert install(tmp_path).returncode == 0
    assert (tmp_path / ".ssh/authorized_keys").read_text() == \
        "ssh-ed25519 AAAAother me\n" + KEY + "\n"
    assert oct(os.stat(str(tmp_path / ".ssh")).st_mode & 0o777) == "0o755"  # left as it was


def test_key_installer_takes_the_key_as_data_only(tmp_path: Path) -> None:
    hostile = "ssh-rsa $(touch pwned) `touch pwned2`;touch pwned3"
    assert install(tmp_path, hostile).returncode == 0
    assert sorted(os.listdir(str(tmp_path))) == [".ssh"]
    assert (tmp_path / ".ssh/authorized_keys").read_text() == hostile + "\n"
    assert install(tmp_path / "none", "").returncode == 3
    assert "'" not in sshmode.INSTALL_KEY_SCRIPT and "\\" not in sshmode.INSTALL_KEY_SCRIPT


def remove(home: Path, line: str = KEY) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    return subprocess.run(["/bin/sh", "-c", sshmode.REMOVE_KEY_SCRIPT], input=line + "\n",
                          env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=10, check=False)


def test_key_remover_takes_back_only_the_pool_key(tmp_path: Path) -> None:
    (tmp_path / ".ssh").mkdir(mode=0o700)
    keys = tmp_path / ".ssh/authorized_keys"
    keys.write_text("ssh-ed25519 AAAAother me\n")
    os.chmod(str(keys), 0o600)
    assert install(tmp_path).returncode == 0
    inode = os.stat(str(keys)).st_ino
    assert remove(tmp_path).returncode == 0
    assert keys.read_text() == "ssh-ed25519 AAAAother me\n"
    assert os.stat(str(keys)).st_ino == inode
    assert oct(os.stat(str(keys)).st_mode & 0o777) == "0o600"
    assert sorted(os.listdir(str(tmp_path / ".ssh"))) == ["authorized_keys"]
    assert remove(tmp_path / "none").returncode == 4  # no home: nothing to take back
    assert "'" not in sshmode.REMOVE_KEY_SCRIPT and "\\" not in sshmode.REMOVE_KEY_SCRIPT


# -- command line -----------------------------------------------------------------------


def run_cli(argv: List[str], capsys: pytest.CaptureFixture) -> "tuple[int, str, str]":  # type: ignore[type-arg]
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


@pytest.mark.parametrize("argv, message", [
    (["-v", VM], "--mode ssh needs --username USER"),
    (["-v", VM, "-u", "core", "--generate-certs"], "are for --mode tls"),
    (["-v", VM, "--mode", "tls"], "--mode tls needs either --generate-certs"),
    (["-v", VM, "--mode", "tls", "--client-cert", "a"], "all of --client-cert FILE"),
    (["-v", VM, "--mode", "tls", "--generate-certs", "--ca-cert", "a"], "not both"),
    (["-v", VM, "--mode", "tls", "--generate-certs", "--password-stdin"], "for --mode ssh"),
    (["-v", VM, "--mode", "tls", "--generate-certs", "--password-secret", "s"], "for --mode ssh"),
    (["-v", VM, "--mode", "tls", "--generate-certs", "--ssh-host-key", "k"], "for --mode ssh"),
    (["-v", VM, "--mode", "tls", "--generate-certs", "--docker-socket", "/s"], "for --mode ssh"),
    (["-v", VM, "-u", "core", "--password-stdin", "--password-secret", "s"],
     "either --password-stdin or --password-secret"),
    (["-u", "core"], "the following arguments are required: -v/--vmuuid"),
    (["-v", VM, "--mode", "rdp"], "invalid choice"),
])
def test_usage_errors_are_one_line_exit_2(argv: List[str], message: str,
                                          capsys: pytest.CaptureFixture) -> None:  # type: ignore[type-arg]
    status, out, err = run_cli(argv, capsys)
    assert status == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("xscontainer-prepare-vm: error: ") and message in err


def test_help_explains_both_modes(capsys: pytest.CaptureFixture) -> None:  # type: ignore[type-arg]
    status, out, _err = run_cli(["--help"], capsys)
    assert status == 0
    for text in ("--mode ssh (default", "--mode tls (Windows", "authorized_keys",
                 "configure_tls.cmd", "single trusted user", "--password-stdin", "--yes",
                 "with --yes the tool refuses"):
        assert text in out, text


# -- questions and the password ----------------------------------------------------------


def make(answers: str, yes: bool = False) -> "tuple[console.Console, io.StringIO]":
    out = io.StringIO()
    return console.Console(assume_yes=yes, stdin=io.StringIO(answers), stdout=out), out


def test_confirm_repeats_until_yes_or_no() -> None:
    con, out = make("maybe\nYES\n")
    assert con.confirm("Go?") is True
    assert out.getvalue().count("Answer y/n: ") == 2
    con, _ = make("n\n")
    assert con.confirm("Go?") is False
    con, _ = make("")
    with pytest.raises(console.Aborted):
        con.confirm("Go?")
    con, out = make("", yes=True)
    assert con.confirm("Go?") is True and "Go? yes (--yes)" in out.getvalue()
    assert con.confirm("Eject?", default_when_yes=False) is False


def test_password_from_stdin_keeps_spaces_and_is_never_echoed() -> None:
    con, out = make(" p a s s \r\nnext\n")
    assert con.password("Password: ", from_stdin=True) == " p a s s "
    assert out.getvalue() == ""
    con, _ = make("\n")
    with pytest.raises(console.Aborted):
        con.password("Password: ", from_stdin=True)
