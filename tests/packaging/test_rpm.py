"""The xscontainer and xscontainer-pylibs RPMs: files and modes, dependencies,
scriptlets, the files they install (unit, preset, bugtool, logrotate), rpmlint."""

import configparser
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, Set

from pkgbuild import REPO, Build, run

SITELIB = "/usr/lib/python3.6/site-packages"
BUNDLE = "/usr/lib64/xscontainer/python3.6"
UNIT = "/usr/lib/systemd/system/xscontainer-monitor.service"
PRESET = "/usr/lib/systemd/system-preset/80-xscontainer.preset"
PLUGIN = "/etc/xapi.d/plugins/xscontainer"
LOGROTATE = "/etc/logrotate.d/xscontainer"
BUGTOOL = "/etc/xensource/bugtool/xscontainer.xml"
BUGTOOL_LOGS = "/etc/xensource/bugtool/xscontainer/xscontainer-logs.xml"
COMPLETION = "/usr/share/bash-completion/completions/xscontainer"


def files(rpm: Path) -> Dict[str, str]:
    """path -> mode string (-rwxr-xr-x)"""
    out = run(["rpm", "-qp", "--nosignature", "--qf", "[%{FILEMODES:perms} %{FILENAMES}\n]",
               rpm]).stdout
    return {line.split(" ", 1)[1]: line.split(" ", 1)[0] for line in out.splitlines()}


def tracked(build: Build, under: str) -> Dict[str, str]:
    """What git tracks under a folder of the built commit: path -> git mode."""
    out = run(["git", "ls-files", "-s", "--", under], cwd=build.src).stdout
    return {line.split("\t", 1)[1]: line.split()[0] for line in out.splitlines()}


def expected_executables(build: Build) -> Set[str]:
    return {"/usr/bin/" + Path(p).name for p, mode in tracked(build, "scripts").items()
            if mode == "100755"}


def test_version_is_the_packages(build: Build) -> None:
    init = (build.src / "lib/xscontainer/__init__.py").read_text()
    version = re.search(r'^__version__ = "(.*)"$', init, re.M).group(1)  # type: ignore[union-attr]
    assert build.version == version
    fallback = re.search(r"%global xsc_version (\S+)}", (build.src / "xscontainer.spec")
                         .read_text()).group(1)  # type: ignore[union-attr]
    assert fallback == version, "xscontainer.spec's fallback version differs from __version__"
    for name, arch in (("xscontainer", "noarch"), ("xscontainer-pylibs", "x86_64")):
        assert build.rpm(name).name == "%s-%s-1.%s.rpm" % (name, version, arch)
    assert build.version.split(".")[0] == "11"  # upgrades the Python 2 package 10.0.4


def test_every_file_with_its_mode(build: Build) -> None:
    got = files(build.rpm("xscontainer"))
    want = {
        PLUGIN: "-rwxr-xr-x",
        UNIT: "-rw-r--r--",
        PRESET: "-rw-r--r--",
        BUGTOOL: "-rw-r--r--",
        "/etc/xensource/bugtool/xscontainer": "drwxr-xr-x",
        BUGTOOL_LOGS: "-rw-r--r--",
        LOGROTATE: "-rw-r--r--",
        COMPLETION: "-rw-r--r--",
    }
    # the whole package as git tracks it, data files included, byte-compiled for 3.6
    package = tracked(build, "lib/xscontainer")
    assert "lib/xscontainer/__init__.py" in package
    for path in package:
        rel = path[len("lib/"):]
        want["%s/%s" % (SITELIB, rel)] = "-rw-r--r--"
        parent = Path(rel).parent
        while str(parent) != ".":
            want["%s/%s" % (SITELIB, parent)] = "drwxr-xr-x"
            parent = parent.parent
        if rel.endswith(".py"):
            pyc = Path(rel).parent / "__pycache__" / (Path(rel).stem + ".cpython-36.pyc")
            want["%s/%s" % (SITELIB, pyc)] = "-rw-r--r--"
            want["%s/%s" % (SITELIB, pyc.parent)] = "drwxr-xr-x"
    # every executable of scripts/ (monitor, prepare-vm: whichever exist in the tree)
    for exe in expected_executables(build):
        want[exe] = "-rwxr-xr-x"
    docs = {p for p in got if p.startswith("/usr/share/doc/")}
    assert {Path(p).name for p in docs} >= {"README.md"}
    assert {p: m for p, m in got.items() if p not in docs} == want


def test_dependencies(build: Build) -> None:
    requires = set(run(["rpm", "-qp", "--nosignature", "--requires", build.rpm("xscontainer")])
                   .stdout.split("\n"))
    for need in ("xapi-core", "genisoimage", "python3-requests", "logrotate", "python3 >= 3.6",
                 "python(abi) = 3.6", "xscontainer-pylibs = %s-1" % build.version, "systemd"):
        assert need in requires, requires
    provides = run(["rpm", "-qp", "--nosignature", "--provides", build.rpm("xscontainer-pylibs")]
                   ).stdout
    assert "python(abi) = 3.6" in run(["rpm", "-qp", "--nosignature", "--requires",
                                       build.rpm("xscontainer-pylibs")]).stdout
    # the bundled releases are the oldest set we test (.venv36), pinned by hash
    oldest = dict(line.split("==") for line in (REPO / "requirements/py36-oldest.txt")
                  .read_text().split("\n") if "==" in line)
    bundled = dict(re.findall(r"^([A-Za-z][\w.-]*)==(\S+)", (build.src / "packaging"
                   / "pylibs-requirements.txt").read_text(), re.M))
    for name in ("paramiko", "docker", "cryptography", "pyOpenSSL"):
        assert bundled[name] == oldest[name], name
        assert "bundled(python3-%s) = %s" % (name, bundled[name]) in provides
    assert (build.src / "packaging/pylibs-requirements.txt").read_text().count("--hash=sha256:") \
        == len(bundled)


def test_scriptlets(build: Build) -> None:
    scripts = run(["rpm", "-qp", "--nosignature", "--scripts", build.rpm("xscontainer")]).stdout
    post = scripts.split("postinstall scriptlet")[1].split("preuninstall scriptlet")[0]
    preun = scripts.split("preuninstall scriptlet")[1].split("postuninstall scriptlet")[0]
    postun = scripts.split("postuninstall scriptlet")[1]
    # the preset on first install
    assert re.search(r"systemctl (--no-reload )?preset xscontainer-monitor\.service", post)
    # started right away only when xapi runs (not in an installer's chroot)
    assert re.search(r"systemctl is-active -q xapi\.service &&.*\n\s*systemctl start "
                     r"xscontainer-monitor\.service", post)
    # stopped and disabled on removal only, with commands systemd 219 has (no
    # `disable --now`, no systemd-update-helper); tests/systemd runs them
    assert "$1 -eq 0" in preun and "disable xscontainer-monitor.service" in preun
    assert "systemctl stop xscontainer-monitor.service" in preun
    assert "--now" not in scripts and "update-helper" not in scripts
    # restarted on upgrade
    assert "try-restart xscontainer-monitor.service" in postun and "$1 -ge 1" in postun
    assert run(["rpm", "-qp", "--nosignature", "--scripts", build.rpm("xscontainer-pylibs")]
               ).stdout.strip() == ""


def test_unit_and_preset(installed: Path) -> None:
    unit = configparser.ConfigParser(strict=False)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(installed / UNIT.lstrip("/"))
    # ordered after xapi, never pulling it in (the monitor waits for xapi itself)
    assert unit["Unit"]["After"] == "xapi.service"
    for dependency in ("Wants", "Requires", "Requisite", "BindsTo", "PartOf"):
        assert dependency not in unit["Unit"], dependency
    service = unit["Service"]
    assert service["ExecStart"] == "/usr/bin/xscontainer-monitor"
    assert service["Restart"] == "on-failure"
    assert service["Nice"] == "10"
    # the monitor stops within 5 s of SIGTERM: SIGTERM to it, SIGKILL only after a margin
    assert service["KillMode"] == "mixed" and service.get("KillSignal", "SIGTERM") == "SIGTERM"
    assert 5 < int(service["TimeoutStopSec"]) <= 15
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    preset = [line for line in (installed / PRESET.lstrip("/")).read_text().splitlines()
              if line and not line.startswith("#")]
    assert preset == ["enable xscontainer-monitor.service"]


def test_bugtool_collects_the_logs_as_maybe_personal(installed: Path) -> None:
    cap = ET.parse(str(installed / BUGTOOL.lstrip("/"))).getroot()
    assert cap.tag == "capability"
    assert cap.get("pii") == "maybe" and cap.get("mime") == "text/plain"
    assert cap.get("checked") == "true"
    collect = ET.parse(str(installed / BUGTOOL_LOGS.lstrip("/"))).getroot()
    assert collect.tag == "collect"
    (directory,) = collect.findall("directory")
    assert directory.text == "/var/log"
    pattern = re.compile(directory.get("pattern") or "")
    for name in ("xscontainer.log", "xscontainer.log.1", "xscontainer.log.4.gz"):
        assert pattern.match(name) and pattern.match("/var/log/" + name), name
    for name in ("xensource.log", "xscontainer.log.bak", "messages"):
        assert not pattern.match(name), name


def test_logrotate_entry(installed: Path) -> None:
    text = (installed / LOGROTATE.lstrip("/")).read_text()
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert re.match(r"\s*/var/log/xscontainer\.log \{", body)
    directives = {line.split()[0] for line in body.splitlines()[1:] if line.strip() not in ("}",)}
    # WatchedFileHandler reopens a renamed file: plain rename rotation, no copytruncate
    assert "copytruncate" not in directives and "postrotate" not in directives
    assert {"rotate", "compress", "delaycompress", "missingok"} <= directives
    assert LOGROTATE in run(["rpm", "-qc", "--root", installed, "--dbpath", "/var/lib/rpm",
                             "xscontainer"]).stdout


def test_shebangs_are_dom0s_python(installed: Path, build: Build) -> None:
    for exe in [PLUGIN, *expected_executables(build)]:
        first = (installed / exe.lstrip("/")).read_text().splitlines()[0]
        assert first == "#!/usr/bin/python3 -s", (exe, first)


def test_bundled_libraries_are_private(build: Build) -> None:
    got = files(build.rpm("xscontainer-pylibs"))
    assert all(p == "/usr/lib64/xscontainer" or p.startswith(BUNDLE) for p in got), got
    for module in ("paramiko", "docker", "cryptography", "OpenSSL", "nacl", "bcrypt", "cffi",
                   "pycparser", "websocket"):
        assert "%s/%s/__init__.py" % (BUNDLE, module) in got, module
        assert "%s/%s/__pycache__/__init__.cpython-36.pyc" % (BUNDLE, module) in got, module
    assert not [p for p in got if p.endswith(".so") and got[p] != "-rwxr-xr-x"]
    # nothing in it is offered to other packages
    provides = run(["rpm", "-qp", "--nosignature", "--provides", build.rpm("xscontainer-pylibs")]
                   ).stdout.split("\n")
    assert {p.split()[0] for p in provides if p} <= {
        "xscontainer-pylibs", "xscontainer-pylibs(x86-64)"} | {
        p.split()[0] for p in provides if p.startswith("bundled(")}


def test_rpmlint_is_clean_with_the_committed_config(build: Build) -> None:
    proc = run(["rpmlint", "-c", build.src / "packaging/rpmlint.toml", *build.rpms,
                build.src / "xscontainer.spec", build.src / "packaging/xscontainer-pylibs.spec"],
               check=False, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"\b0 errors, 0 warnings\b", proc.stdout), proc.stdout
    # every filter is explained by a comment
    lines = (build.src / "packaging/rpmlint.toml").read_text().splitlines()
    start = lines.index("Filters = [")
    for i, line in enumerate(lines[start + 1:], start + 1):
        if line.strip().startswith("'"):
            j = i - 1
            while lines[j].strip().startswith("'"):
                j -= 1
            assert lines[j].strip().startswith("#"), "filter without a comment: %s" % line
