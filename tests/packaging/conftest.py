"""Builds the RPMs and update ISOs once per session, as CI would: from a fresh
`git clone` of the repository's HEAD (committed files only), with the same
scripts `make rpm` and `make iso` run, into a temporary folder.

Fixtures: `build` (paths of the clone, the RPMs, the unsigned ISO and its
extracted tree, a signed ISO made with a throw-away GPG key), `installed` (the
RPMs installed into a scratch root with `rpm --root`).
"""

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import pytest
from pkgbuild import REPO, Build, extract_iso, make_gpg_key, run


@pytest.fixture(scope="session")
def build() -> Iterator[Build]:
    for tool in ("git", "rpmbuild", "rpm", "rpmlint", "createrepo_c", "xorriso", "gpg",
                 "rpmsign"):
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
def installed(build: Build) -> Path:
    """Both RPMs installed into a scratch root. Scriptlets are not run: they need
    systemd and a shell inside the root (test_rpm checks their text)."""
    root = build.top / "root"
    root.mkdir()
    proc = run(["rpm", "--root", root, "--dbpath", "/var/lib/rpm", "-ivh", "--nodeps",
                "--noscripts", *build.rpms])
    assert "error" not in proc.stderr.lower(), proc.stderr
    return root
