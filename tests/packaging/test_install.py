"""The RPMs installed into a scratch root (`rpm --root`), run from there on a
bare Python 3.6, as dom0 would run them: nothing but the installed files plus
what the RPM requires from dom0 (xapi-core's XenAPI and XenAPIPlugin: the lab's
stand-ins; python3-requests: its release from .venv36)."""

import os
import shutil
import stat
import xmlrpc.client
from pathlib import Path
from typing import Dict, Iterator, List

import pytest
import XenAPI
from pkgbuild import REPO, Build, run

from xsclab import labenv
from xsclab.simharness import Simulator, cleanup, make_lab_dir

SITELIB = "usr/lib/python3.6/site-packages"
# what dom0 provides from other packages than ours (xapi-core, python3-requests)
DOM0_PROVIDED = ("XenAPI", "requests", "urllib3", "idna", "charset_normalizer", "certifi")


def bare_python36() -> Path:
    """A Python 3.6 with no third-party packages: the one .venv36 was made from."""
    cfg = (REPO / ".venv36" / "pyvenv.cfg").read_text()
    home = next(line.split("=", 1)[1].strip() for line in cfg.splitlines()
                if line.startswith("home"))
    python = Path(home) / "python3"
    assert python.exists(), python
    return python


@pytest.fixture(scope="module")
def dom0_python(build: Build, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder whose python3 is dom0's interpreter stand-in: the bare 3.6 with
    only what dom0's other packages provide added to its path."""
    top = tmp_path_factory.mktemp("dom0py")
    provided = top / "provided"
    provided.mkdir()
    site = REPO / ".venv36" / "lib" / "python3.6" / "site-packages"
    for name in DOM0_PROVIDED:
        shutil.copytree(str(site / name), str(provided / name))
    bin_dir = top / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "python3"
    wrapper.write_text('#!/bin/sh\nexport PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}%s"\n'
                       'exec %s "$@"\n' % (provided, bare_python36()))
    wrapper.chmod(0o755)
    return bin_dir


def dom0_env(root: Path, python_bin: Path, extra: Dict[str, str]) -> Dict[str, str]:
    env = dict(os.environ, XSC_LAB_INSTALL_ROOT=str(root), XSC_LAB_PYTHON_BIN=str(python_bin))
    env.update(extra)
    return env


def lab_dom0_env(monkeypatch: pytest.MonkeyPatch, root: Path, python_bin: Path,
                 lab_dir: Path) -> Dict[str, str]:
    """labenv's dom0 environment with the lab switches pointing at the scratch root."""
    for name, value in dom0_env(root, python_bin, {"XSC_LAB_DIR": str(lab_dir)}).items():
        monkeypatch.setenv(name, value)
    return labenv.dom0_env("0" * 8)


def test_rpm_database_of_the_root(installed: Path, build: Build) -> None:
    rpmdb = ["rpm", "--root", installed, "--dbpath", "/var/lib/rpm"]
    names = run([*rpmdb, "-qa", "--qf", "%{NAME}-%{VERSION}-%{RELEASE}\n"]).stdout.split()
    assert sorted(names) == ["xscontainer-%s-1" % build.version,
                             "xscontainer-pylibs-%s-1" % build.version]
    # every file as the package says (modes, digests)
    verify = run([*rpmdb, "-V", "--nodeps", "xscontainer", "xscontainer-pylibs"], check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert stat.S_IMODE((installed / "etc/xapi.d/plugins/xscontainer").stat().st_mode) == 0o755


def test_the_bundled_libraries_load_on_python36(installed: Path, dom0_python: Path,
                                                tmp_path: Path) -> None:
    code = ("import sys, xscontainer, paramiko, docker, OpenSSL, cryptography, nacl, bcrypt;"
            "from xscontainer import plugin, containers;"
            "print(sys.version_info[:2]);"
            "[print(m.__name__, m.__file__) for m in (xscontainer, paramiko, docker, OpenSSL,"
            " cryptography, nacl, bcrypt, containers)]")
    env = dict(os.environ, PYTHONPATH="%s:%s" % (installed / SITELIB, labenv.STUBS_DIR))
    out = run([dom0_python / "python3", "-s", "-c", code], cwd=tmp_path, env=env,
              timeout=120).stdout.splitlines()
    assert out[0] == "(3, 6)"
    where = dict(line.split(" ", 1) for line in out[1:])
    assert where["xscontainer"].startswith(str(installed / SITELIB))
    assert where["xscontainer.containers"].startswith(str(installed / SITELIB))
    for lib in ("paramiko", "docker", "OpenSSL", "cryptography", "nacl", "bcrypt"):
        assert where[lib].startswith(str(installed / "usr/lib64/xscontainer/python3.6")), lib


def test_programs_answer_help_from_the_root(installed: Path, dom0_python: Path, build: Build,
                                            tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    programs = sorted(p.name for p in (installed / "usr/bin").iterdir())
    in_tree = sorted(Path(p).name for p in run(["git", "ls-files", "scripts"], cwd=build.src)
                     .stdout.split())
    assert programs == in_tree
    env = lab_dom0_env(monkeypatch, installed, dom0_python, tmp_path)
    assert env["PATH"].split(":")[0] == str(installed / "usr/bin")
    for name in programs:
        argv = labenv.dom0_argv([name, "--help"], env)
        assert argv[:3] == [str(dom0_python / "python3"), "-s",
                            str(installed / "usr/bin" / name)], argv
        proc = run(argv, env=env, timeout=120, check=False)
        assert proc.returncode == 0, (name, proc.stdout, proc.stderr)
        assert "usage:" in proc.stdout.lower(), (name, proc.stdout)


@pytest.fixture(scope="module")
def sim(installed: Path, dom0_python: Path) -> Iterator[Simulator]:
    """The XAPI simulator running the installed plugin (its dom0 processes on the
    bare Python 3.6)."""
    lab_dir = make_lab_dir()
    saved = dict(os.environ)
    os.environ.update(dom0_env(installed, dom0_python, {}))
    try:
        simulator = Simulator(lab_dir, str(installed / "etc/xapi.d/plugins")).start()
        try:
            yield simulator
        finally:
            simulator.close()
    finally:
        os.environ.clear()
        os.environ.update(saved)
        cleanup(lab_dir)


def call(session: XenAPI.Session, fn: str, args: Dict[str, str]) -> str:
    host = session.xenapi.session.get_this_host(session._session)
    return str(session.xenapi.host.call_plugin(host, "xscontainer", fn, args))


def failure(session: XenAPI.Session, fn: str, args: Dict[str, str]) -> List[str]:
    with pytest.raises(XenAPI.Failure) as e:
        call(session, fn, args)
    return [str(d) for d in e.value.details]


def test_installed_plugin_answers_host_call_plugin(sim: Simulator, installed: Path) -> None:
    assert "plugins %s" % (installed / "etc/xapi.d/plugins") in sim.read_log()
    session = sim.unix()
    try:
        vm_ref = session.xenapi.VM.get_by_name_label("xsc-vm1")[0]
        vm = session.xenapi.VM.get_uuid(vm_ref)
        assert call(session, "register", {"vmuuid": vm}) == "True"
        assert session.xenapi.VM.get_other_config(vm_ref)["xscontainer-monitor"] == "True"
        assert call(session, "deregister", {"vmuuid": vm}) == "True"
        assert session.xenapi.VM.get_other_config(vm_ref)["xscontainer-monitor"] == "False"
        # the plugin's own failures come back as such (not as a crashed process)
        details = failure(session, "register", {})
        assert details[0].startswith("XSCONTAINER_"), details
        assert "register needs the argument(s) vmuuid" in " ".join(details)
        # a Docker call loads the bundled Docker SDK and paramiko: it fails for the
        # simulated VM, which nothing answers, with the product's diagnosis
        details = failure(session, "get_inspect", {"vmuuid": vm, "object": "web"})
        assert details[0].startswith("XSCONTAINER_"), details
        assert "ModuleNotFoundError" not in " ".join(details)
    finally:
        session.xenapi.session.logout()


def test_a_raw_plugin_call_prints_one_xmlrpc_response(installed: Path, dom0_python: Path,
                                                      tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """xapi's side of the contract, without a simulator: argv[1] is the methodCall,
    stdout one methodResponse (a failure here: there is no xapi to talk to)."""
    plugin = installed / "etc/xapi.d/plugins/xscontainer"
    request = xmlrpc.client.dumps(("OpaqueRef:none", {}), "register")
    env = lab_dom0_env(monkeypatch, installed, dom0_python, tmp_path)
    assert env["PYTHONPATH"].split(":")[0] == str(installed / SITELIB)
    proc = run(labenv.dom0_argv([str(plugin), request], env), env=env, timeout=120, cwd=tmp_path)
    (result,), method = xmlrpc.client.loads(proc.stdout)
    assert method is None and result["Status"] == "Failure", result
    assert result["ErrorDescription"][0].startswith("XSCONTAINER_")
