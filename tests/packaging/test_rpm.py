"""The xscontainer and xscontainer-pylibs RPMs of both flavours (XCP-ng 8.3 /
XenServer 8, XCP-ng 9): files and modes, dependencies (every one on the stock-host
list), scriptlets, the files they install (unit, preset, bugtool, logrotate),
rpmlint."""

import configparser
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, List, Set

from pkgbuild import REPO, Build, run

FLAVOURS = ("xs8", "xcpng9")
STOCK_LINE = re.compile(r"^#\s+((?:xs8|xcpng9)(?: (?:xs8|xcpng9))*) \| (.+?) \| \S.*$")
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


def requires(rpm: Path) -> List[str]:
    return [r for r in run(["rpm", "-qp", "--nosignature", "--requires", rpm]).stdout
            .split("\n") if r]


def stock_host_list(spec: Path) -> Dict[str, List[str]]:
    """flavour -> what its stock host has, as the spec's comment lists it."""
    stock: Dict[str, List[str]] = {f: [] for f in FLAVOURS}
    for line in spec.read_text().splitlines():
        match = STOCK_LINE.match(line)
        if match:
            for flavour in match.group(1).split():
                stock[flavour].append(match.group(2))
    return stock


def test_every_requires_is_on_the_stock_host_list(build: Build, build9: Build) -> None:
    """xapi applies an update with only its own repository enabled: whatever an RPM
    of the pack requires must be on every host already, or come in the pack."""
    stock = stock_host_list(build.src / "xscontainer.spec")
    assert {"xapi-core", "python3", "systemd"} <= set(stock["xs8"]) & set(stock["xcpng9"])
    assert "python(abi) = 3.6" in stock["xs8"] and "python(abi) = 3.12" in stock["xcpng9"]
    for b in (build, build9):
        in_pack = {"xscontainer", "xscontainer-pylibs"}
        unversioned = {s for s in stock[b.flavour] if " " not in s}
        for rpm in b.rpms:
            name = run(["rpm", "-qp", "--nosignature", "--qf", "%{NAME}", rpm]).stdout
            for need in requires(rpm):
                what = need.split()[0]
                if what.startswith("rpmlib(") or what == "config(%s)" % name:
                    continue  # rpm's own features; the package itself
                if what in in_pack:
                    assert need == "%s = %s-%s" % (what, b.version, b.release), need
                    continue
                assert need in stock[b.flavour] or what in unversioned, (b.flavour, name, need)
            assert not {"genisoimage", "mkisofs", "xorriso", "python3-requests"} & {
                n.split()[0] for n in requires(rpm)}, (b.flavour, name)


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


def test_the_xcpng9_flavour_is_named_and_built_for_python312(build9: Build) -> None:
    for name, arch in (("xscontainer", "noarch"), ("xscontainer-pylibs", "x86_64")):
        assert build9.rpm(name).name == "%s-%s-1.xcpng9.%s.rpm" % (name, build9.version, arch)
    assert "python(abi) = 3.12" in requires(build9.rpm("xscontainer"))
    assert not [p for p in files(build9.rpm("xscontainer")) if "python3.6" in p]


def test_every_file_with_its_mode(flavoured: Build) -> None:
    build = flavoured
    sitelib = "/usr/lib/python%s/site-packages" % build.python_version
    pyc_tag = "cpython-%s" % build.python_version.replace(".", "")
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
    # the whole package as git tracks it, data files included, byte-compiled for dom0's
    # Python (3.6, or 3.12 for XCP-ng 9)
    package = tracked(build, "lib/xscontainer")
    assert "lib/xscontainer/__init__.py" in package
    for path in package:
        rel = path[len("lib/"):]
        want["%s/%s" % (sitelib, rel)] = "-rw-r--r--"
        parent = Path(rel).parent
        while str(parent) != ".":
            want["%s/%s" % (sitelib, parent)] = "drwxr-xr-x"
            parent = parent.parent
        if rel.endswith(".py"):
            pyc = Path(rel).parent / "__pycache__" / ("%s.%s.pyc" % (Path(rel).stem, pyc_tag))
            want["%s/%s" % (sitelib, pyc)] = "-rw-r--r--"
            want["%s/%s" % (sitelib, pyc.parent)] = "drwxr-xr-x"
    # every executable of scripts/ (monitor, prepare-vm: whichever exist in the tree)
    for exe in expected_executables(build):
        want[exe] = "-rwxr-xr-x"
    docs = {p for p in got if p.startswith("/usr/share/doc/")}
    assert {Path(p).name for p in docs} >= {"README.md"}
    assert {p: m for p, m in got.items() if p not in docs} == want


def test_dependencies(flavoured: Build) -> None:
    build = flavoured
    pyver = build.python_version
    needs = set(requires(build.rpm("xscontainer")))
    for need in ("xapi-core", "logrotate", "python3 >= %s" % pyver, "python(abi) = %s" % pyver,
                 "xscontainer-pylibs = %s-%s" % (build.version, build.release), "systemd"):
        assert need in needs, needs
    provides = run(["rpm", "-qp", "--nosignature", "--provides", build.rpm("xscontainer-pylibs")]
                   ).stdout
    assert "python(abi) = %s" % pyver in requires(build.rpm("xscontainer-pylibs"))
    # the bundled releases are the set we test on that Python, pinned by hash: the
    # oldest (.venv36) for 8.3, the newest (requirements/dev.txt, .venv312) for XCP-ng 9
    tested, pins = (("py36-oldest.txt", "pylibs-requirements.txt") if build.flavour == "xs8"
                    else ("dev.txt", "pylibs-requirements-py312.txt"))
    venv = dict(line.split("==") for line in (REPO / "requirements" / tested)
                .read_text().split("\n") if "==" in line)
    pinned = (build.src / "packaging" / pins).read_text()
    bundled = dict(re.findall(r"^([A-Za-z][\w.-]*)==(\S+)", pinned, re.M))
    for name in ("paramiko", "docker", "cryptography", "pyOpenSSL", "pycdlib"):
        assert bundled[name] == venv[name], name
    for name, version in bundled.items():
        assert "bundled(python3-%s) = %s" % (name.lower() if name == "PyNaCl" else name,
                                             version) in provides, name
    assert pinned.count("--hash=sha256:") == len(bundled)


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


def test_shebangs_are_dom0s_python(installed: Path, installed9: Path, build: Build) -> None:
    for root in (installed, installed9):
        for exe in [PLUGIN, *expected_executables(build)]:
            first = (root / exe.lstrip("/")).read_text().splitlines()[0]
            assert first == "#!/usr/bin/python3 -s", (exe, first)


def test_bundled_libraries_are_private(flavoured: Build) -> None:
    build = flavoured
    bundle = "/usr/lib64/xscontainer/python%s" % build.python_version
    pyc_tag = "cpython-%s" % build.python_version.replace(".", "")
    got = files(build.rpm("xscontainer-pylibs"))
    assert all(p == "/usr/lib64/xscontainer" or p.startswith(bundle) for p in got), got
    modules = ["paramiko", "docker", "cryptography", "OpenSSL", "nacl", "bcrypt", "cffi",
               "pycparser", "pycdlib", "requests", "urllib3", "idna", "charset_normalizer",
               "certifi"]
    if build.flavour == "xs8":
        modules.append("websocket")  # a dependency of docker 5 only
    for module in modules:
        assert "%s/%s/__init__.py" % (bundle, module) in got, module
        assert "%s/%s/__pycache__/__init__.%s.pyc" % (bundle, module, pyc_tag) in got, module
    # no programs: no console scripts, no .data folders of wheels, no shebangs
    assert not [p for p in got if "/bin/" in p or ".data/" in p], got
    assert not [p for p in got if p.endswith(".so") and got[p] != "-rwxr-xr-x"]
    assert not [p for p in got if got[p] not in ("-rw-r--r--", "-rwxr-xr-x", "drwxr-xr-x")]
    # nothing in it is offered to other packages
    provides = run(["rpm", "-qp", "--nosignature", "--provides", build.rpm("xscontainer-pylibs")]
                   ).stdout.split("\n")
    assert {p.split()[0] for p in provides if p} <= {
        "xscontainer-pylibs", "xscontainer-pylibs(x86-64)"} | {
        p.split()[0] for p in provides if p.startswith("bundled(")}


def test_rpmlint_is_clean_with_the_committed_config(flavoured: Build) -> None:
    build = flavoured
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
