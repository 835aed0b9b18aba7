"""Helpers of the packaging tests: running tools with a timeout, the build's paths."""

import os
import subprocess
from pathlib import Path
from typing import Dict, List, Optional

import pytest

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 600


def run(argv: List[str], cwd: Optional[Path] = None, env: Optional[Dict[str, str]] = None,
        timeout: float = TIMEOUT, check: bool = True) -> "subprocess.CompletedProcess[str]":
    proc = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, universal_newlines=True, timeout=timeout, check=False,
    )
    if check and proc.returncode != 0:
        pytest.fail("%s failed (%d):\n%s\n%s" % (" ".join(map(str, argv)), proc.returncode,
                                               proc.stdout[-4000:], proc.stderr[-4000:]),
                    pytrace=False)
    return proc


def extract_iso(iso: Path, dest: Path) -> Path:
    dest.mkdir(parents=True)
    run(["xorriso", "-osirrox", "on", "-indev", iso, "-extract", "/", dest])
    for p in dest.rglob("*"):  # xorriso keeps the ISO's read-only modes
        p.chmod(0o755 if p.is_dir() else 0o644)
    return dest


# flavour -> dom0's Python version (packaging/build-rpm's FLAVOUR)
PYTHON_VERSION = {"xs8": "3.6", "xcpng9": "3.12"}


class Build:
    def __init__(self, top: Path, flavour: str = "xs8") -> None:
        self.top = top
        self.flavour = flavour
        self.python_version = PYTHON_VERSION[flavour]
        # the release of its RPMs: 1, or 1.xcpng9 (the flavour's dist tag)
        self.release = "1" if flavour == "xs8" else "1." + flavour
        self.src = top / "src"
        self.dist = top / "dist"
        self.signed_dist = top / "signed"
        self.gnupghome = top / "gnupg"
        self.version = ""
        self.key = ""

    def rpm(self, name: str) -> Path:
        found = [p for p in self.dist.glob("*.rpm")
                 if run(["rpm", "-qp", "--nosignature", "--qf", "%{NAME}", p]).stdout == name]
        assert len(found) == 1, found
        return found[0]

    @property
    def rpms(self) -> List[Path]:
        return sorted(self.dist.glob("*.rpm"))

    @property
    def iso(self) -> Path:
        return self.dist / ("xscontainer-%s.iso" % self.version)

    @property
    def signed_iso(self) -> Path:
        return self.signed_dist / ("xscontainer-%s.iso" % self.version)

    @property
    def tree(self) -> Path:
        return self.top / "iso"

    @property
    def signed_tree(self) -> Path:
        return self.top / "signed-iso"


def make_gpg_key(home: Path) -> str:
    home.mkdir(mode=0o700)
    env = dict(os.environ, GNUPGHOME=str(home))
    run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key",
         "xscontainer test key <xscontainer-test@example.invalid>", "rsa2048", "sign", "1d"],
        env=env)
    out = run(["gpg", "--batch", "--with-colons", "--list-keys"], env=env).stdout
    return next(line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:"))


