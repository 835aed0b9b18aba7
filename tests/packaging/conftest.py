"""Builds the RPMs and update ISOs once per session, as CI would: from a fresh
`git clone` of the repository's HEAD (committed files only), with the same
scripts `make rpm` and `make iso` run, into a temporary folder.

Fixtures: `build` (the XCP-ng 8.3 / XenServer 8 flavour: paths of the clone, the
RPMs, the unsigned ISO and its extracted tree, a signed ISO made with a
throw-away GPG key), `build9` (the XCP-ng 9 flavour from the same clone: RPMs,
unsigned ISO and its tree), `installed` / `installed9` (a flavour's RPMs
installed into a scratch root with `rpm --root`).
"""

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Iterator, List

import pytest
from pkgbuild import REPO, Build, extract_iso, make_gpg_key, run

# The first test to use a build fixture waits for its build (both flavours: about
# 3 minutes on an idle machine, over 5 on a loaded one): more than the default 300 s.
BUILD_TIMEOUT = 1200


def pytest_collection_modifyitems(items: List[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.timeout(BUILD_TIMEOUT))


@pytest.fixture(scope="session")
def build() -> Iterator[Build]:
    for tool in ("git", "rpmbuild", "rpm", "rpmlint", "createrepo_c", "xorriso", "gpg",
                 "rpmsign", "dnf"):
        if not shutil.which(tool):
            pytest.fail("%s is missing: make deps installs it" % tool, pytrace=False)
    python36 = REPO / ".venv36" / "bin" / "python3"
    if not python36.exists():
        pytest.fail("no %s: make deps36 makes it" % python36, pytrace=False)
    top = Path(tempfile.mkdtemp(prefix="xsc-packaging."))
    b = Build(top)
    try:
        run(["git", "clone", "--quiet", REPO, b.src], timeout=120)
        env = dict(os.environ, DIST=str(b.dist), PYTHON36=str(python36),
                   PIP=str(REPO / ".venv" / "bin" / "pip"), WHEELS=str(REPO / "build" / "wheels"))
        run([b.src / "packaging" / "build-rpm"], cwd=b.src, env=env)
        b.version = run(["rpm", "-qp", "--qf", "%{VERSION}", b.rpm("xscontainer")]).stdout
        payload = [b.rpm("xscontainer"), b.rpm("xscontainer-pylibs")]
        pack = [sys.executable, b.src / "packaging" / "build_pack.py"]
        run([*pack, "--out", b.iso, *payload], cwd=b.src)
        extract_iso(b.iso, b.tree)
        # signed: a throw-away key in its own GNUPGHOME
        b.key = make_gpg_key(b.gnupghome)
        b.signed_dist.mkdir()
        run([*pack, "--out", b.signed_iso, "--gpg-key", b.key, *payload], cwd=b.src,
            env=dict(os.environ, GNUPGHOME=str(b.gnupghome)))
        extract_iso(b.signed_iso, b.signed_tree)
        yield b
    finally:
        run(["gpgconf", "--kill", "gpg-agent"], env=dict(os.environ, GNUPGHOME=str(b.gnupghome)),
            check=False, timeout=30)
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture(scope="session")
def build9(build: Build) -> Build:
    """The XCP-ng 9 flavour (FLAVOUR=xcpng9: Python 3.12, the newest libraries),
    from the same clone, as `make iso-xcpng9` makes it."""
    python312 = REPO / ".venv312" / "bin" / "python3"
    if not python312.exists():
        pytest.fail("no %s: make deps312 makes it" % python312, pytrace=False)
    b = Build(build.top / "xcpng9", flavour="xcpng9")
    b.top.mkdir()
    b.src = build.src
    env = dict(os.environ, FLAVOUR="xcpng9", DIST=str(b.dist), PYTHON312=str(python312),
               PIP=str(REPO / ".venv" / "bin" / "pip"), WHEELS=str(REPO / "build" / "wheels"))
    run([b.src / "packaging" / "build-rpm"], cwd=b.src, env=env)
    b.version = build.version
    payload = [b.rpm("xscontainer"), b.rpm("xscontainer-pylibs")]
    run([sys.executable, b.src / "packaging" / "build_pack.py", "--flavour", "xcpng9",
         "--out", b.iso, *payload], cwd=b.src)
    extract_iso(b.iso, b.tree)
    return b


@pytest.fixture(params=("xs8", "xcpng9"))
def flavoured(request: pytest.FixtureRequest) -> Build:
    """The build of each flavour in turn (xs8: `build`, xcpng9: `build9`)."""
    return request.getfixturevalue("build" if request.param == "xs8" else "build9")


def install(b: Build) -> Path:
    """Both RPMs of a flavour installed into a scratch root. Scriptlets are not run:
    they need systemd and a shell inside the root (test_rpm checks their text)."""
    root = b.top / "root"
    root.mkdir()
    proc = run(["rpm", "--root", root, "--dbpath", "/var/lib/rpm", "-ivh", "--nodeps",
                "--noscripts", *b.rpms])
    assert "error" not in proc.stderr.lower(), proc.stderr
    return root


@pytest.fixture(scope="session")
def installed(build: Build) -> Path:
    return install(build)


@pytest.fixture(scope="session")
def installed9(build9: Build) -> Path:
    return install(build9)
