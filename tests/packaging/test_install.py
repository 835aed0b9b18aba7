"""The RPMs installed into a scratch root (`rpm --root`), run from there on a
bare Python 3.6 (and the XCP-ng 9 flavour's on a bare Python 3.12), as dom0
would run them: nothing but the installed files plus what a stock dom0 has
(xapi-core's XenAPI and XenAPIPlugin: the lab's stand-ins), and no ISO tool."""

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
# what a stock dom0 provides from other packages than ours (xapi-core)
DOM0_PROVIDED = ("XenAPI",)
# flavour -> the virtualenv whose interpreter and XenAPI stand in for its dom0's
VENVS = {"xs8": ".venv36", "xcpng9": ".venv312"}


def bare_python(venv: str) -> Path:
    """A Python with no third-party packages: the one `venv` was made from."""
    cfg = (REPO / venv / "pyvenv.cfg").read_text()
    home = next(line.split("=", 1)[1].strip() for line in cfg.splitlines()
                if line.startswith("home"))
    python = Path(home) / "python3"
    assert python.exists(), python
    return python


def make_dom0_python(top: Path, flavour: str) -> Path:
    """A folder whose python3 is dom0's interpreter stand-in: the bare Python of
    the flavour with only what dom0's other packages provide added to its path."""
    venv = VENVS[flavour]
    provided = top / "provided"
    provided.mkdir()
    (site,) = (REPO / venv / "lib").glob("python3.*/site-packages")
    for name in DOM0_PROVIDED:
        shutil.copytree(str(site / name), str(provided / name))
    bin_dir = top / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "python3"
    wrapper.write_text('#!/bin/sh\nexport PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}%s"\n'
                       'exec %s "$@"\n' % (provided, bare_python(venv)))
    wrapper.chmod(0o755)
    return bin_dir


@pytest.fixture(scope="module")
def dom0_python(build: Build, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dom0_python(tmp_path_factory.mktemp("dom0py"), "xs8")


@pytest.fixture(scope="module")
def dom0_python9(build9: Build, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dom0_python(tmp_path_factory.mktemp("dom0py312"), "xcpng9")


def flavour_root(request: pytest.FixtureRequest, flavour: str) -> "tuple[Path, Path, str]":
    """(installed root, dom0 python folder, Python version) of a flavour."""
    if flavour == "xs8":
        return (request.getfixturevalue("installed"), request.getfixturevalue("dom0_python"),
                "3.6")
    return (request.getfixturevalue("installed9"), request.getfixturevalue("dom0_python9"),
            "3.12")


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


BUNDLED_MODULES = ("paramiko", "docker", "OpenSSL", "cryptography", "nacl", "bcrypt",
                   "pycdlib", "requests", "urllib3", "idna", "certifi")


@pytest.mark.parametrize("flavour", ["xs8", "xcpng9"])
def test_the_bundled_libraries_load_on_dom0s_python(request: pytest.FixtureRequest,
                                                    flavour: str, tmp_path: Path) -> None:
    root, python_bin, version = flavour_root(request, flavour)
    sitelib = root / ("usr/lib/python%s/site-packages" % version)
    modules = ", ".join(BUNDLED_MODULES)
    code = ("import sys, xscontainer, %s;"
            "from xscontainer import plugin, containers;"
            "print('%%d.%%d' %% sys.version_info[:2]);"
            "[print(m.__name__, m.__file__) for m in (xscontainer, containers, %s)]"
            % (modules, modules))
    env = dict(os.environ, PYTHONPATH="%s:%s" % (sitelib, labenv.STUBS_DIR))
    out = run([python_bin / "python3", "-s", "-W", "error::DeprecationWarning", "-c", code],
              cwd=tmp_path, env=env, timeout=120).stdout.splitlines()
    assert out[0] == version
    where = dict(line.split(" ", 1) for line in out[1:])
    assert where["xscontainer"].startswith(str(sitelib))
    assert where["xscontainer.containers"].startswith(str(sitelib))
    for lib in BUNDLED_MODULES:
        assert where[lib].startswith(str(root / ("usr/lib64/xscontainer/python%s" % version))), \
            lib


ISO_CODE = """
import io, os, shutil, sys, tempfile
from xscontainer import certs, iso
from xscontainer.configdrive import image
from xscontainer.prepare import tlsiso
work = tempfile.mkdtemp()
os.environ["XSCONTAINER_RUN_DIR"] = work
print([t for t in ("genisoimage", "mkisofs", "xorriso", "isoinfo") if shutil.which(t)])
print(iso.pycdlib.__file__)
path = image.build_image(work, "#cloud-config\\nhostname: caf\\u00e9\\n", "tmpl\\n", None)
with open(path, "rb") as f:
    data = f.read()
print(image.read_template_from_image(data + bytes(4096)).strip())
reader = iso.IsoReader(io.BytesIO(tlsiso.build(certs.generate(["10.0.0.2"], "vm"))))
print(reader.volume_id, reader.walk())
shutil.rmtree(work)
"""


@pytest.mark.parametrize("flavour", ["xs8", "xcpng9"])
def test_iso_images_need_no_tool_outside_the_pack(request: pytest.FixtureRequest,
                                                  flavour: str, tmp_path: Path) -> None:
    """The config drive and the TLS CD are built and read with nothing on PATH: no
    genisoimage, mkisofs, xorriso or isoinfo (a stock XCP-ng 8.3 has none of them)."""
    root, python_bin, version = flavour_root(request, flavour)
    sitelib = root / ("usr/lib/python%s/site-packages" % version)
    empty = tmp_path / "empty-path"
    empty.mkdir()
    env = {"PATH": str(empty), "PYTHONPATH": str(sitelib), "HOME": str(tmp_path)}
    out = run([python_bin / "python3", "-s", "-c", ISO_CODE], cwd=tmp_path, env=env,
              timeout=120).stdout.splitlines()
    assert out[0] == "[]"
    assert out[1].startswith(str(root / ("usr/lib64/xscontainer/python%s/pycdlib" % version)))
    assert out[2] == "tmpl"
    assert out[3] == ("Container TLS ['README.txt', 'configure_tls.cmd', 'daemon.json', "
                      "'server/', 'server/ca.pem', 'server/server-cert.pem', "
                      "'server/server-key.pem']")


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
